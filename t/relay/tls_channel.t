# Channels on HTTPS upstreams through the relay proper: a channel whose
# certificate the test CA vouches for answers (streaming in real time too);
# one whose certificate comes from another CA is refused before any byte
# reaches it, and the request fails over to the next channel.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(timed_sse_post);
use NebulaAdmin qw(admin new_key new_channel mock_records);

plan tests => 8;

sub port_of { Apache::TestRequest::module($_[0]); my ($p) = Apache::TestRequest::hostport() =~ /:(\d+)$/; return $p }
my $good_port = port_of('nebula_mock_tls');
my $rogue_port = port_of('nebula_mock_tls_rogue');
Apache::TestRequest::module('nebula_relay_tls');
my $relay = Apache::TestRequest::hostport();

my $group = "tls$$";
admin('POST', '/api/groups', { name => $group });
my $key = new_key(key_group => $group);
my $m = "tls-$$";
my $tag = "tlsch-$$";
new_channel(models => [$m], channel_groups => [$group], tag => $tag,
            base_url => "https://localhost:$good_port/_mock/tag=$tag");
my %h = (Authorization => "Bearer $key", 'Content-Type' => 'application/json');

my $ua = LWP::UserAgent->new;
my $res = $ua->post("http://$relay/v1/chat/completions", %h,
    Content => encode_json({ model => $m, messages => [{ role => 'user', content => 'over tls' }] }));
is($res->code, 200, 'an HTTPS channel answers through the relay');
is(decode_json($res->content)->{object}, 'chat.completion', 'with the mock\'s completion');
my $rec = mock_records($tag)->[-1] // {};
like($rec->{headers}{'x-mock-tls-protocol'} // '', qr/^TLSv1\.[23]$/, 'the mock received it over TLS');
is($rec->{headers}{authorization}, "Bearer sk-upstream-$tag", 'with the channel\'s key');

my $s = timed_sse_post($relay, '/v1/chat/completions', \%h,
    encode_json({ model => $m, stream => JSON::PP::true,
                  messages => [{ role => 'user', content => '[[mock events=10,delay_ms=200]] go' }] }));
my @content = grep { $_->[1] =~ /"content":"tok/ } @{ $s->{events} };
cmp_ok(@content ? $content[-1][0] - $content[0][0] : 0, '>=', 1.5,
       'streaming over TLS arrives event by event');

# a rogue certificate: refused, never reached, failed over
my $m2 = "tls-rogue-$$";
my $rtag = "tlsrogue-$$";
new_channel(models => [$m2], channel_groups => [$group], priority => 10, tag => $rtag,
            base_url => "https://localhost:$rogue_port/_mock/tag=$rtag");
new_channel(models => [$m2], channel_groups => [$group], priority => 1, tag => "$rtag-ok",
            base_url => "https://localhost:$good_port/_mock/tag=$rtag-ok");
$res = $ua->post("http://$relay/v1/chat/completions", %h,
    Content => encode_json({ model => $m2, messages => [{ role => 'user', content => 'hi' }] }));
is($res->code, 200, 'a channel with an untrusted certificate: the request fails over');
is(scalar @{ mock_records($rtag) }, 0, 'the rogue upstream never received the request (or its key)');
is(scalar @{ mock_records("$rtag-ok") }, 1, 'the trusted channel served it');
