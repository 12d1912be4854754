# A request reaches the mock provider through mod_nebula_relay
# (NebulaPassThrough): body, headers and path are forwarded, the answer comes
# back unchanged, streams arrive event by event, bad input gets OpenAI errors.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest qw(GET POST);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(timed_sse_post);

plan tests => 19;

Apache::TestRequest::module('nebula_mock');
my $mock = Apache::TestRequest::hostport();
Apache::TestRequest::module('nebula_gateway');
my $gw = Apache::TestRequest::hostport();
my $ua = Apache::TestRequest::user_agent(keep_alive => 1);

sub mock_records {
    my ($tag) = @_;
    my $res = $ua->get("http://$mock/_mock/records?last=50&tag=$tag");
    return decode_json($res->content);
}

# non-streaming chat: forwarded verbatim, answered verbatim
my $body = encode_json({ model => 'gpt-4o-mini', messages => [
    { role => 'user', content => 'one two three four' } ] });
my $res = $ua->post("http://$gw/v1/chat/completions",
    'Content-Type' => 'application/json', Authorization => 'Bearer sk-pass-1',
    'X-Mock-Control' => 'tag=pt1,events=3', Content => $body);
is($res->code, 200, 'chat through the relay: 200');
my $j = decode_json($res->content);
is($j->{object}, 'chat.completion', 'the answer is the mock\'s chat.completion');
is($j->{usage}{prompt_tokens}, 4, 'prompt tokens as the mock counted them');
is($j->{usage}{completion_tokens}, 3, 'completion tokens = events');
my $rec = mock_records('pt1');
is(scalar @$rec, 1, 'the mock received exactly one request');
is($rec->[0]{path}, '/v1/chat/completions', 'path forwarded');
is(decode_json($rec->[0]{body})->{model}, 'gpt-4o-mini', 'body forwarded');
my %h = map { lc($_) => $rec->[0]{headers}{$_} } keys %{ $rec->[0]{headers} };
is($h{authorization}, 'Bearer sk-pass-1', 'Authorization forwarded');

# keep-alive to the upstream: several requests, few upstream connections
for my $i (1 .. 5) {
    $ua->post("http://$gw/v1/chat/completions", 'Content-Type' => 'application/json',
        Authorization => 'Bearer sk-pass-1', 'X-Mock-Control' => 'tag=pt2,events=1',
        Content => $body);
}
is(scalar @{ mock_records('pt2') }, 5, 'five more requests reached the mock');

# streaming: 10 events 200 ms apart reach the client spread in time
my $s = timed_sse_post($gw, '/v1/chat/completions',
    { 'Content-Type' => 'application/json', Authorization => 'Bearer sk-pass-1',
      'X-Mock-Control' => 'tag=pt3,events=10,delay_ms=200' },
    encode_json({ model => 'gpt-4o-mini', stream => JSON::PP::true,
                  messages => [ { role => 'user', content => 'stream please' } ] }));
is($s->{status}, 200, 'stream: 200');
like($s->{headers}{'content-type'} // '', qr{^text/event-stream}, 'stream: event-stream');
my @ev = @{ $s->{events} };
is($ev[-1][1], '[DONE]', 'stream ends with [DONE]');
my @content = grep { $_->[1] =~ /"content":"tok/ } @ev;
is(scalar @content, 10, 'ten content events');
my $spread = $content[-1][0] - $content[0][0];
cmp_ok($spread, '>=', 1.5, sprintf('first event arrived %.2fs before the last', $spread));

# bad input: OpenAI-shaped errors with the right status
$res = $ua->post("http://$gw/v1/chat/completions", 'Content-Type' => 'application/json',
    Content => 'x' x (1048576 + 10));
is($res->code, 413, 'body over NebulaMaxBodySize: 413');
$j = eval { decode_json($res->content) } || {};
is($j->{error}{code}, 'request_too_large', '413 carries an OpenAI error');
is($j->{error}{type}, 'invalid_request_error', 'error type');

# an upstream that is down: 502 with an OpenAI error, not a hang or a 500
Apache::TestRequest::module('nebula_gateway_dead');
my $dead = Apache::TestRequest::hostport();
$res = $ua->post("http://$dead/v1/chat/completions", 'Content-Type' => 'application/json',
    Content => $body);
is($res->code, 502, 'unreachable upstream: 502');
is((eval { decode_json($res->content) } || {})->{error}{code}, 'upstream_unreachable',
   'with code upstream_unreachable');
