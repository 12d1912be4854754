# True streaming through the relay: events arrive as the upstream sends
# them, and a client that leaves mid-stream is logged with what it got.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(api new_key new_channel mock_records relay_hostport);
use NebulaTest qw(timed_sse_post);

plan tests => 12;

my $m = "st-$$";
my ($cid, $tag) = new_channel(models => [$m]);
my ($key, $kid) = new_key();

my $s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true,
                  messages => [{ role => 'user', content => '[[mock events=10,delay_ms=200]] go' }] }));
my @content = grep { $_->[1] =~ /"content":"tok/ } @{ $s->{events} };
is(scalar @content, 10, 'ten content events');
my $spread = $content[-1][0] - $content[0][0];
cmp_ok($spread, '>=', 1.5, sprintf('the first arrived %.2fs before the last', $spread));

# a client that leaves after 3 of 20 events (location with NebulaStreamDisconnect stop)
sub leave_early {
    my ($path, $tagctl) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => relay_hostport(), Timeout => 5) or die $!;
    my $body = encode_json({ model => $m, stream => JSON::PP::true,
        messages => [{ role => 'user', content => "[[mock events=20,delay_ms=100,$tagctl]] go" }] });
    print $sock "POST $path HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $key\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $got = '';
    while ($got !~ /tok3 /) { sysread($sock, $got, 4096, length $got) or last }
    close $sock;
    return $got;
}

my $got = leave_early('/stop/v1/chat/completions', 'tag=gone-stop');
like($got, qr/tok3 /, 'the client read three events, then left');
my $row;
for (1 .. 50) { # the server notices on its next write
    sleep 0.2;
    my ($code, $logs) = api('GET', "/api/logs?key_id=$kid&per_page=50");
    ($row) = grep { ($_->{end_reason} // '') eq 'client_gone' } @{ $logs->{data} || [] };
    last if $row;
}
ok($row, 'the request log says client_gone') or diag 'no client_gone row';
# the client read 3 events; a few more may have reached its socket before the
# gateway's next write failed, never all 20
ok($row && $row->{completion_tokens} >= 3 && $row->{completion_tokens} <= 15,
   'stop: billed for what was delivered (' . ($row ? $row->{completion_tokens} : '?') . ' tokens), not 20');
is($row && $row->{usage_estimated}, 1, 'flagged as the gateway\'s own count');

# drain (the default): the upstream is read to its end and its usage billed
leave_early('/v1/chat/completions', 'tag=gone-drain');
my $drained;
for (1 .. 50) {
    sleep 0.2;
    my ($code, $logs) = api('GET', "/api/logs?key_id=$kid&per_page=50");
    ($drained) = grep { ($_->{end_reason} // '') eq 'client_gone' && $_->{completion_tokens} == 20 }
        @{ $logs->{data} || [] };
    last if $drained;
}
ok($drained, 'drain: the upstream\'s real usage (20 tokens) was billed');
is($drained && $drained->{usage_estimated}, 0, 'from the upstream\'s own usage');
cmp_ok($drained ? $drained->{latency_ms} : 0, '>=', 1800, 'the gateway kept reading the upstream to its end');

# NebulaStreamPing 200ms: keep-alive comments while the upstream is silent
my $p = timed_sse_post(relay_hostport(), '/ping/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true,
                  messages => [{ role => 'user', content => '[[mock events=3,delay_ms=700]] go' }] }));
my @pings = $p->{body} =~ /^: PING$/mg;
cmp_ok(scalar @pings, '>=', 4, scalar(@pings) . ' ": PING" comments during 1.4s of upstream silence');
is(scalar(grep { $_->[1] =~ /"content":"tok/ } @{ $p->{events} }), 3, 'the events are all there');
is($p->{events}[-1][1], '[DONE]', 'and the stream ends normally');
