# Fault injection: errors in each protocol's own shape, slow headers, cut and
# malformed streams, missing usage, fail_first, and the providers' auth and
# input checks.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(timed_sse_post);

plan tests => 64, need_module('nebula_mock');

Apache::TestRequest::module('nebula_mock');
my $hp = Apache::TestRequest::hostport();
my $ua = Apache::TestRequest::user_agent(keep_alive => 1);

my %OA = (Authorization => 'Bearer sk-fault', 'Content-Type' => 'application/json');
my %AN = ('x-api-key' => 'ak-fault', 'anthropic-version' => '2023-06-01',
          'Content-Type' => 'application/json');
my %GM = ('x-goog-api-key' => 'gk-fault', 'Content-Type' => 'application/json');
my $chat = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };
my $msgs = { model => 'claude-3-5-haiku-latest', max_tokens => 50,
             messages => [ { role => 'user', content => 'hi' } ] };
my $gem = { contents => [ { role => 'user', parts => [ { text => 'hi' } ] } ] };
my $GPATH = '/v1beta/models/gemini-2.0-flash';

sub post_json {
    my ($path, $hdrs, $body) = @_;
    my $res = $ua->post("http://$hp$path", %$hdrs,
                        Content => ref $body ? encode_json($body) : $body);
    return ($res, eval { decode_json($res->content) });
}

# --- status=... in each protocol's error shape -----------------------------
my ($res, $j) = post_json('/v1/chat/completions',
    { %OA, 'X-Mock-Control' => 'status=503,error_message=upstream+on+fire' }, $chat);
is($res->code, 503, 'openai status=503');
is($j->{error}{message}, 'upstream on fire', 'openai: error_message');
is($j->{error}{type}, 'server_error', 'openai: error type');
ok(exists $j->{error}{param} && exists $j->{error}{code}, 'openai: param and code present');

($res, $j) = post_json('/v1/chat/completions', { %OA, 'X-Mock-Control' => 'status=429' }, $chat);
is($res->code, 429, 'openai status=429');
is($res->header('Retry-After'), '1', '429: Retry-After');
is($j->{error}{code}, 'rate_limit_exceeded', '429: rate_limit_exceeded');
($res) = post_json('/v1/chat/completions', { %OA, 'X-Mock-Control' => 'status=429,retry_after=7' },
                   $chat);
is($res->header('Retry-After'), '7', '429: retry_after control');

($res, $j) = post_json('/v1/messages', { %AN, 'X-Mock-Control' => 'status=529' }, $msgs);
is($res->code, 529, 'anthropic status=529');
is($j->{type}, 'error', 'anthropic: type error');
is($j->{error}{type}, 'overloaded_error', 'anthropic: overloaded_error');
ok(length $j->{error}{message}, 'anthropic: message');
($res, $j) = post_json('/v1/messages', { %AN, 'X-Mock-Control' => 'status=429' }, $msgs);
is($j->{error}{type}, 'rate_limit_error', 'anthropic 429: rate_limit_error');

($res, $j) = post_json("$GPATH:generateContent", { %GM, 'X-Mock-Control' => 'status=500' }, $gem);
is($res->code, 500, 'gemini status=500');
is_deeply([ @{ $j->{error} }{qw(code status)} ], [ 500, 'INTERNAL' ], 'gemini: code and status');
($res, $j) = post_json("$GPATH:streamGenerateContent?alt=sse",
                       { %GM, 'X-Mock-Control' => 'status=429' }, $gem);
is($j->{error}{status}, 'RESOURCE_EXHAUSTED', 'gemini stream 429: error before the stream');

($res, $j) = post_json('/_mock/status=403,tag=f403/v1/chat/completions', \%OA, $chat);
is($res->code, 403, 'control prefix: status applies');
is($res->header('X-Mock-Served-By'), 'f403', 'control prefix: served-by tag');

# --- priority: URL prefix < header < marker ----------------------------------
($res) = post_json('/_mock/status=500/v1/chat/completions',
    { %OA, 'X-Mock-Control' => 'status=502' }, $chat);
is($res->code, 502, 'the header beats the URL prefix');
($res) = post_json('/_mock/status=500/v1/chat/completions',
    { %OA, 'X-Mock-Control' => 'status=502' },
    { model => 'm', messages => [ { role => 'user', content => '[[mock status=200]]' } ] });
is($res->code, 200, 'the marker beats the header');
($res, $j) = post_json('/v1/chat/completions', { %OA, 'X-Mock-Control' => 'evnts=3' }, $chat);
is($res->code, 400, 'an unknown control is a 400');
like($j->{error}{message}, qr/unknown control 'evnts'/, '... naming the control');

# --- header_delay_ms -----------------------------------------------------------
my $t0 = time;
($res) = post_json('/v1/chat/completions', { %OA, 'X-Mock-Control' => 'header_delay_ms=800' },
                   $chat);
cmp_ok(time - $t0, '>=', 0.75, 'header_delay_ms=800: answer after >= 0.75 s');
$t0 = time;
my $r = timed_sse_post($hp, '/v1/chat/completions',
    { %OA, 'X-Mock-Control' => 'header_delay_ms=800' },
    encode_json({ %$chat, stream => JSON::PP::true }));
cmp_ok($r->{events}[0][0] - $t0, '>=', 0.75, 'header_delay_ms: first event late too');

# --- drop_after: the chunked body never ends -------------------------------
$r = timed_sse_post($hp, '/v1/chat/completions', { %OA, 'X-Mock-Control' => 'drop_after=2' },
    encode_json({ %$chat, stream => JSON::PP::true }));
is($r->{status}, 200, 'drop_after: 200 with headers');
is(scalar @{ $r->{events} }, 3, 'drop_after=2: role chunk + 2 content chunks');
ok(!$r->{complete}, 'drop_after: no terminating chunk (truncated)');
unlike($r->{body}, qr/\[DONE\]|finish_reason":"stop/, 'drop_after: no finish, no [DONE]');

$r = timed_sse_post($hp, '/v1/messages', { %AN, 'X-Mock-Control' => 'drop_after=1' },
    encode_json({ %$msgs, stream => JSON::PP::true }));
ok(!$r->{complete}, 'anthropic drop_after: truncated');
unlike($r->{body}, qr/message_stop/, 'anthropic drop_after: no message_stop');
$r = timed_sse_post($hp, "$GPATH:streamGenerateContent?alt=sse",
    { %GM, 'X-Mock-Control' => 'drop_after=0' }, encode_json($gem));
is($r->{status}, 200, 'gemini drop_after=0: headers sent');
ok(!$r->{complete} && !@{ $r->{events} }, 'gemini drop_after=0: nothing, then cut');

# --- malformed_after --------------------------------------------------------
$r = timed_sse_post($hp, '/v1/chat/completions',
    { %OA, 'X-Mock-Control' => 'malformed_after=2,events=3' },
    encode_json({ %$chat, stream => JSON::PP::true }));
my @bad = grep { !eval { $_->[1] eq '[DONE]' || decode_json($_->[1]) } } @{ $r->{events} };
is(scalar @bad, 1, 'malformed_after: one data line is not JSON');
is($r->{events}[3][1], $bad[0][1], 'malformed_after=2: after role + 2 content chunks');
ok($r->{complete} && $r->{body} =~ /\[DONE\]/, 'malformed_after: the stream goes on to [DONE]');
is(scalar @{ $r->{events} }, 7, 'malformed_after: role + 3 content + bad + finish + [DONE]');

# --- no_usage ------------------------------------------------------------------
($res, $j) = post_json('/v1/chat/completions', { %OA, 'X-Mock-Control' => 'no_usage=1' }, $chat);
ok(!exists $j->{usage}, 'no_usage: chat has no usage');
$r = timed_sse_post($hp, '/v1/chat/completions', { %OA, 'X-Mock-Control' => 'no_usage=1' },
    encode_json({ %$chat, stream => JSON::PP::true,
                  stream_options => { include_usage => JSON::PP::true } }));
unlike($r->{body}, qr/"usage"/, 'no_usage: no usage chunk nor usage: null');
$r = timed_sse_post($hp, '/v1/messages', { %AN, 'X-Mock-Control' => 'no_usage=1' },
    encode_json({ %$msgs, stream => JSON::PP::true }));
unlike($r->{body}, qr/"usage"/, 'no_usage: anthropic stream without usage');
($res, $j) = post_json("$GPATH:generateContent", { %GM, 'X-Mock-Control' => 'no_usage=1' }, $gem);
ok(!exists $j->{usageMetadata}, 'no_usage: gemini without usageMetadata');

# --- fail_first -----------------------------------------------------------------
my $tag = 'ff' . $$;
my @codes = map {
    (post_json("/_mock/fail_first=2,status=500,tag=$tag/v1/chat/completions", \%OA, $chat))[0]->code
} 1 .. 4;
is_deeply(\@codes, [ 500, 500, 200, 200 ], 'fail_first=2: two failures, then success');
@codes = map {
    (post_json('/v1/messages', { %AN, 'X-Mock-Control' => "fail_first=1,tag=a$tag" }, $msgs))[0]->code
} 1 .. 2;
is_deeply(\@codes, [ 503, 200 ], 'fail_first without status: 503 first');
$res = $ua->delete("http://$hp/_mock/counters");
is($res->code, 200, 'DELETE /_mock/counters');
($res) = post_json("/_mock/fail_first=2,status=500,tag=$tag/v1/chat/completions", \%OA, $chat);
is($res->code, 500, 'fail_first counts again after the reset');

# --- auth, as the providers check it ---------------------------------------------
($res, $j) = post_json('/v1/chat/completions', { 'Content-Type' => 'application/json' }, $chat);
is($res->code, 401, 'openai: no key: 401');
like($j->{error}{message}, qr/didn't provide an API key/, 'openai: no key message');
($res, $j) = post_json('/v1/chat/completions', { %OA, Authorization => 'Bearer bad-key-0001' }, $chat);
is($res->code, 401, 'openai: bad key: 401');
is($j->{error}{code}, 'invalid_api_key', 'openai: invalid_api_key');
($res, $j) = post_json('/v1/chat/completions', { %OA, Authorization => 'Bearer quota-exceeded' },
                       $chat);
is($res->code, 429, 'openai: quota-exceeded: 429');
is($j->{error}{type}, 'insufficient_quota', 'openai: insufficient_quota');
like($j->{error}{message}, qr/^You exceeded your current quota, please check your plan and billing details\./,
     'openai: the quota message');
($res, $j) = post_json('/v1/messages', { %AN, 'x-api-key' => 'bad' }, $msgs);
is_deeply([ $res->code, $j->{error}{type} ], [ 401, 'authentication_error' ],
          'anthropic: bad key: 401 authentication_error');
my %nover = %AN;
delete $nover{'anthropic-version'};
($res, $j) = post_json('/v1/messages', \%nover, $msgs);
is($res->code, 400, 'anthropic: anthropic-version is required');
($res, $j) = post_json("$GPATH:generateContent?key=bad1", { 'Content-Type' => 'application/json' },
                       $gem);
is_deeply([ $res->code, $j->{error}{status} ], [ 401, 'UNAUTHENTICATED' ],
          'gemini: bad key in ?key=: 401');
($res) = post_json("$GPATH:generateContent?key=good", { 'Content-Type' => 'application/json' },
                   $gem);
is($res->code, 200, 'gemini: key in ?key= accepted');

# --- bad input ------------------------------------------------------------------
($res, $j) = post_json('/v1/chat/completions', \%OA, '{"model": "m", ');
is($res->code, 400, 'invalid JSON: 400');
is($j->{error}{type}, 'invalid_request_error', 'invalid JSON: OpenAI shape');
($res, $j) = post_json('/v1/messages', \%AN, { max_tokens => 5, messages => [] });
is_deeply([ $res->code, $j->{error}{type} ], [ 400, 'invalid_request_error' ],
          'anthropic: missing model: 400');
($res, $j) = post_json('/v1/chat/completions', \%OA, { messages => [] });
like($j->{error}{message}, qr/model/, 'openai: missing model named');
($res, $j) = post_json('/v1/nope', \%OA, $chat);
is($res->code, 404, 'unknown route: 404');
$res = $ua->get("http://$hp/v1/chat/completions", Authorization => 'Bearer sk-fault');
is($res->code, 405, 'GET on a POST route: 405');
is($res->header('Allow'), 'POST', '405: Allow header');
($res, $j) = post_json('/v1/chat/completions', \%OA, 'x' x (8 * 1024 * 1024 + 10));
is($res->code, 413, 'body over 8 MiB: 413');
is($j->{error}{code}, 'request_too_large', '413: OpenAI shape');
