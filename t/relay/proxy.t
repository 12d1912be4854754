# A channel's outbound proxy: the relay reaches the upstream through the
# forward proxy the channel names (the upstream sees the proxy's Via), and
# a channel whose proxy is down fails over like any unreachable upstream.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records chat);

plan tests => 5;

Apache::TestRequest::module('nebula_fwdproxy');
my ($fwd) = Apache::TestRequest::hostport() =~ /:(\d+)$/;
Apache::TestRequest::module('default');
my $key = new_key();
sub ask { return chat($key, { model => $_[0], messages => [{ role => 'user', content => 'hi' }] })->code }

my $m = "px-$$";
my (undef, $tag) = new_channel(models => [$m], proxy => "http://127.0.0.1:$fwd");
is(ask($m), 200, 'a channel with an outbound proxy answers');
my $rec = mock_records($tag)->[-1] // {};
like($rec->{headers}{via} // '', qr/\S/, 'the upstream was reached through the proxy (Via: '
     . ($rec->{headers}{via} // 'none') . ')');
is($rec->{headers}{authorization}, "Bearer sk-upstream-$tag", 'with the channel\'s key');

my $m2 = "px2-$$";
my (undef, $dead) = new_channel(models => [$m2], priority => 5, proxy => 'http://127.0.0.1:9');
my (undef, $ok) = new_channel(models => [$m2], priority => 1);
is(ask($m2), 200, 'a channel whose proxy is down: the request fails over');
is(scalar @{ mock_records($ok) }, 1, 'to the next channel');
