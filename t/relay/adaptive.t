# NebulaAdaptiveRouting: two channels with equal weights, one slow; the
# relay learns the latencies (shared by all processes) and sends the slow one
# much less traffic, while a server without it keeps splitting evenly.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use LWP::UserAgent;
use JSON::PP qw(encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records);

plan tests => 3;

my $key = new_key();
Apache::TestRequest::module('nebula_relay_adaptive');
my $hp = Apache::TestRequest::hostport();
my $ua = LWP::UserAgent->new(keep_alive => 2);
sub ask {
    my ($m) = @_;
    return $ua->post("http://$hp/v1/chat/completions", Authorization => "Bearer $key",
        'Content-Type' => 'application/json',
        Content => encode_json({ model => $m, messages => [{ role => 'user', content => 'hi' }] }))->code;
}
sub served { return scalar @{ mock_records($_[0], 5000) } }

my $m = "adapt-$$";
my (undef, $slow) = new_channel(models => [$m], weight => 1, controls => 'header_delay_ms=150');
my (undef, $fast) = new_channel(models => [$m], weight => 1);
my $ok = 0;
$ok += ask($m) == 200 for 1 .. 150;
is($ok, 150, 'all answered');
my ($ns, $nf) = (served($slow), served($fast));
# without adaptation the slow one would get ~75 of 150 (sd 6)
cmp_ok($ns, '<', 50, "the slow channel got $ns of 150");
cmp_ok($nf, '>', 100, "the fast channel got $nf of 150");
