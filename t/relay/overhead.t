# The gateway's own time per request (docs/overhead.md): the time in the
# relay handler minus the waits for the upstream. NebulaOverheadHeader On
# sends it as x-nebula-overhead-us with the response head; /server-status
# counts every request into a host-wide histogram.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use LWP::UserAgent;
use HTTP::Request;
use JSON::PP qw(encode_json);
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel relay_hostport);
use NebulaTest qw(timed_sse_post);

plan tests => 22, need_module('mod_status.c');

my $m = "oh-$$";
new_channel(models => [$m]);
my $key = new_key();
my $ua = LWP::UserAgent->new(timeout => 30);

Apache::TestRequest::module('nebula_relay_overhead');
my $on = Apache::TestRequest::hostport();
Apache::TestRequest::module('nebula_admin');
my $admin = Apache::TestRequest::hostport();
Apache::TestRequest::module('default');

# the upstream takes 200 ms before its head: time the gateway must not count
my $slow = '[[mock header_delay_ms=200]] hi';

sub post {
    my ($hp, $body) = @_;
    my $req = HTTP::Request->new(POST => "http://$hp/v1/chat/completions");
    $req->header(Authorization => "Bearer $key", 'Content-Type' => 'application/json');
    $req->content(encode_json($body));
    my $t0 = time;
    my $res = $ua->request($req);
    return ($res, time - $t0);
}

sub status {
    my $auto = $ua->get("http://$admin/server-status?auto")->content;
    my %s = $auto =~ /^(NebulaOverhead\w+): (\d+)$/mg;
    return \%s;
}

my $before = status();
is(scalar(keys %$before), 4, 'server-status?auto has the four NebulaOverhead lines')
    or diag explain $before;

# Off (the default): no header
my $chat = { model => $m, messages => [{ role => 'user', content => $slow }] };
my ($res) = post(relay_hostport(), $chat);
is($res->code, 200, 'complete chat, NebulaOverheadHeader Off: 200');
is($res->header('x-nebula-overhead-us'), undef, 'Off: no x-nebula-overhead-us');

# On: complete chat
my $elapsed;
($res, $elapsed) = post($on, $chat);
is($res->code, 200, 'complete chat, On: 200');
my $oh = $res->header('x-nebula-overhead-us');
like($oh // '', qr/^\d+$/, 'On: x-nebula-overhead-us is an integer (' . ($oh // 'none') . ')');
cmp_ok($elapsed, '>=', 0.2,
       sprintf('the client waited %.3fs (the upstream took 200 ms)', $elapsed));
cmp_ok($oh // 1e9, '<', $elapsed * 1e6,
       'the overhead is less than the client\'s total latency');
cmp_ok($oh // 1e9, '<', 100_000,
       'and far below the upstream\'s 200 ms: upstream time is subtracted');

# On: a streamed chat (the header covers the time before the head)
my $t0 = time;
my $s = timed_sse_post($on, '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true, messages => [{ role => 'user',
        content => '[[mock header_delay_ms=200,events=4,delay_ms=50]] hi' }] }));
my $stream_elapsed = time - $t0;
is($s->{status}, 200, 'streamed chat, On: 200');
my @content = grep { $_->[1] =~ /"content":"tok/ } @{ $s->{events} };
is(scalar @content, 4, 'four content events');
is($s->{events}[-1][1], '[DONE]', 'ending with [DONE]');
my $soh = $s->{headers}{'x-nebula-overhead-us'};
like($soh // '', qr/^\d+$/,
     'stream: x-nebula-overhead-us is an integer (' . ($soh // 'none') . ')');
cmp_ok($stream_elapsed, '>=', 0.35, sprintf('the stream took %.3fs', $stream_elapsed));
cmp_ok($soh // 1e9, '<', 100_000, 'stream: far below the upstream\'s 200 ms before its head');

# Off: a stream has no header either
my $so = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true,
                  messages => [{ role => 'user', content => '[[mock events=2]] hi' }] }));
is($so->{status}, 200, 'streamed chat, Off: 200');
ok(!exists $so->{headers}{'x-nebula-overhead-us'}, 'Off: no header on the stream');

# the metric: every request counted, whatever the header setting; the
# upstream's waits (200 ms before each head, 3 x 50 ms between events) not
my $after = status();
my $n = 4;
is($after->{NebulaOverheadCount} - $before->{NebulaOverheadCount}, $n,
   "NebulaOverheadCount rose by the $n requests");
my $sum = $after->{NebulaOverheadUsSum} - $before->{NebulaOverheadUsSum};
cmp_ok($sum, '>', 0, "NebulaOverheadUsSum rose ($sum us)");
cmp_ok($sum, '<', $n * 100_000, 'by far less than the upstream\'s 750 ms of waits');
cmp_ok($sum, '>=', ($oh // 0) + ($soh // 0), 'and at least what the headers said');
cmp_ok($after->{NebulaOverheadUsP50}, '>', 0, "p50 $after->{NebulaOverheadUsP50} us");
cmp_ok($after->{NebulaOverheadUsP99}, '>=', $after->{NebulaOverheadUsP50},
       "p99 $after->{NebulaOverheadUsP99} us, not below p50");
