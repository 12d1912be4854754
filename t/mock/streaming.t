# The mock streams for real: each event is flushed on its own and delay_ms is
# slept between events, so a client reading incrementally sees the events
# spread over time (not one burst at the end), in every protocol.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(timed_sse_post);

plan tests => 18, need_module('nebula_mock');

Apache::TestRequest::module('nebula_mock');
my $hp = Apache::TestRequest::hostport();

my %OA = (Authorization => 'Bearer sk-stream', 'Content-Type' => 'application/json');
my %AN = ('x-api-key' => 'ak-stream', 'anthropic-version' => '2023-06-01',
          'Content-Type' => 'application/json');
my %GM = ('x-goog-api-key' => 'gk-stream', 'Content-Type' => 'application/json');
my $ctl = 'events=10,delay_ms=200';

# Checks that the events of $r arrived spread out: first to last >= 1.5 s and
# no two consecutive events closer than 0.12 s (the mock sleeps 0.2 s).
sub spread_ok {
    my ($r, $want_events, $what) = @_;
    my @t = map { $_->[0] } @{ $r->{events} };
    is(scalar @t, $want_events, "$what: $want_events events");
    cmp_ok($t[-1] - $t[0], '>=', 1.5, "$what: first event >= 1.5 s before the last");
    my @gaps = map { $t[$_] - $t[ $_ - 1 ] } 1 .. $#t;
    my ($min) = sort { $a <=> $b } @gaps;
    cmp_ok($min, '>=', 0.12, "$what: every gap >= 0.12 s (no burst)");
    ok($r->{complete}, "$what: stream completed");
}

my $chat = encode_json({ model => 'gpt-4o-mini', stream => JSON::PP::true,
    messages => [ { role => 'user', content => 'hello' } ] });
my $t0 = Time::HiRes::time();
my $r = timed_sse_post($hp, '/v1/chat/completions', { %OA, 'X-Mock-Control' => $ctl }, $chat);
cmp_ok($r->{events}[0][0] - $t0, '<', 1.0, 'chat: the first event comes at once');
# role chunk, 10 content chunks, finish chunk, [DONE]
spread_ok($r, 13, 'openai chat');

$r = timed_sse_post($hp, '/v1/messages', { %AN, 'X-Mock-Control' => $ctl },
    encode_json({ model => 'claude-3-5-haiku-latest', max_tokens => 100, stream => JSON::PP::true,
                  messages => [ { role => 'user', content => 'hello' } ] }));
# message_start, content_block_start, ping, 10 deltas, block_stop, message_delta, message_stop
spread_ok($r, 16, 'anthropic');

$r = timed_sse_post($hp, '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse',
    { %GM, 'X-Mock-Control' => $ctl },
    encode_json({ contents => [ { role => 'user', parts => [ { text => 'hello' } ] } ] }));
spread_ok($r, 11, 'gemini');

# the marker form of the controls, through the Responses API
$r = timed_sse_post($hp, '/v1/responses', \%OA, encode_json({ model => 'gpt-4o',
    stream => JSON::PP::true, input => "hello [[mock $ctl]]" }));
# created, in_progress, item.added, part.added, 10 deltas, text.done, part.done,
# item.done, completed
spread_ok($r, 18, 'responses');

# delay_ms=0: the same stream arrives quickly
$r = timed_sse_post($hp, '/v1/chat/completions', { %OA, 'X-Mock-Control' => 'events=10' }, $chat);
cmp_ok($r->{events}[-1][0] - $r->{events}[0][0], '<', 1.0, 'no delay_ms: no waiting');
