# mod_status shows the relay: requests relayed and streams open host-wide,
# and each channel's breaker and moving averages.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use LWP::UserAgent;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel chat);

plan tests => 4, need_module('mod_status.c');

my $m = "status-$$";
my ($cid) = new_channel(models => [$m]);
my $key = new_key();
chat($key, { model => $m, messages => [{ role => 'user', content => 'hi' }] }) for 1 .. 3;

Apache::TestRequest::module('nebula_admin');
my $hp = Apache::TestRequest::hostport();
my $ua = LWP::UserAgent->new;
my $auto = $ua->get("http://$hp/server-status?auto")->content;
my ($n) = $auto =~ /^NebulaRequests: (\d+)$/m;
cmp_ok($n // 0, '>=', 3, 'the machine-readable status counts relayed requests');
like($auto, qr/^NebulaStreamsOpen: 0$/m, 'and open streams (none now)');
my $html = $ua->get("http://$hp/server-status")->content;
like($html, qr{<h2>NebulaGate relay</h2>}, 'the HTML status has a relay section');
like($html, qr{<tr><td>$cid</td><td>all</td><td>closed</td>}, 'with the channel\'s breaker');
