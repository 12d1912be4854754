# NebulaRetryStatus and NebulaDisableKeyword: which upstream answers are
# retried elsewhere, and which error phrases count toward auto-disable.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use LWP::UserAgent;
use JSON::PP qw(encode_json decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin new_key new_channel mock_records);

plan tests => 6;

my $key = new_key();
Apache::TestRequest::module('nebula_relay_strict');
my $hp = Apache::TestRequest::hostport();
my $ua = LWP::UserAgent->new;
sub ask {
    return $ua->post("http://$hp/v1/chat/completions", Authorization => "Bearer $key",
        'Content-Type' => 'application/json',
        Content => encode_json({ model => $_[0], messages => [{ role => 'user', content => 'hi' }] }));
}
sub served { return scalar @{ mock_records($_[0], 5000) } }

my $m = "pol5-$$";
new_channel(models => [$m], priority => 5, controls => 'status=500');
my (undef, $low) = new_channel(models => [$m], priority => 1);
is(ask($m)->code, 500, 'NebulaRetryStatus 503: a 500 is not retried');
is(served($low), 0, 'the other channel was not asked');

my $m2 = "pol3-$$";
new_channel(models => [$m2], priority => 5, controls => 'status=503');
my (undef, $low2) = new_channel(models => [$m2], priority => 1);
is(ask($m2)->code, 200, 'a 503 is retried');

my $m3 = "polk-$$";
my ($cid) = new_channel(models => [$m3], controls => 'status=403,error_message=Account+suspended+for+abuse');
my $res = ask($m3);
is($res->code, 403, 'a 403 is passed on (not retriable here)');
like(decode_json($res->content)->{error}{message}, qr/Account suspended/, 'with the upstream\'s message');
ask($m3) for 1 .. 2;
is(admin('GET', "/api/channels/$cid")->{data}{status}, 'auto_disabled',
   'three errors with a configured phrase: auto-disabled');
