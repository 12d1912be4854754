# The mock provider speaks each protocol as the provider's API reference
# shows it: every route, streaming and not, with exact, predictable usage
# (prompt = words of the input text, completion = events, "tok<k> " each).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json encode_json);
use MIME::Base64 qw(decode_base64);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(timed_sse_post);

plan tests => 98, need_module('nebula_mock');

Apache::TestRequest::module('nebula_mock');
my $hp = Apache::TestRequest::hostport();
my $ua = Apache::TestRequest::user_agent(keep_alive => 1);

my %OA = (Authorization => 'Bearer sk-proto', 'Content-Type' => 'application/json');
my %AN = ('x-api-key' => 'ak-proto', 'anthropic-version' => '2023-06-01',
          'Content-Type' => 'application/json');
my %GM = ('x-goog-api-key' => 'gk-proto', 'Content-Type' => 'application/json');

sub post_json {
    my ($path, $hdrs, $body) = @_;
    my $res = $ua->post("http://$hp$path", %$hdrs, Content => encode_json($body));
    return ($res, eval { decode_json($res->content) });
}

# Streams $body to $path; returns the response and its data payloads decoded.
sub stream {
    my ($path, $hdrs, $body) = @_;
    my $r = timed_sse_post($hp, $path, $hdrs, encode_json($body));
    $r->{data} = [ map { $_->[1] eq '[DONE]' ? '[DONE]' : decode_json($_->[1]) }
                   @{ $r->{events} } ];
    $r->{names} = [ $r->{body} =~ /^event: (\S+)$/mg ];
    return $r;
}

my $five = 'tok1 tok2 tok3 tok4 tok5 ';

# --- OpenAI chat completions -------------------------------------------------
my ($res, $j) = post_json('/v1/chat/completions', \%OA, {
    model => 'gpt-4o-mini',
    messages => [ { role => 'system', content => 'be brief' },
                  { role => 'user', content => [ { type => 'text', text => 'one two three' } ] } ] });
is($res->code, 200, 'chat: 200');
is($res->header('Content-Type'), 'application/json', 'chat: JSON');
is($j->{object}, 'chat.completion', 'chat: object');
like($j->{id}, qr/^chatcmpl-/, 'chat: id');
is($j->{model}, 'gpt-4o-mini', 'chat: model echoed');
ok($j->{created} > 1_600_000_000, 'chat: created is a Unix time');
is($j->{choices}[0]{message}{role}, 'assistant', 'chat: role');
is($j->{choices}[0]{message}{content}, $five, 'chat: 5 words by default');
is($j->{choices}[0]{finish_reason}, 'stop', 'chat: finish_reason stop');
is_deeply([ @{ $j->{usage} }{qw(prompt_tokens completion_tokens total_tokens)} ],
          [ 5, 5, 10 ], 'chat: usage = words of system + user, events');

($res, $j) = post_json('/v1/chat/completions', \%OA, {
    model => 'gpt-4o', max_completion_tokens => 2,
    messages => [ { role => 'user', content => 'a b' } ] });
is($j->{choices}[0]{message}{content}, 'tok1 tok2 ', 'chat: max_completion_tokens caps');
is($j->{choices}[0]{finish_reason}, 'length', 'chat: finish_reason length');
is($j->{usage}{completion_tokens}, 2, 'chat: capped completion tokens');

my $s = stream('/v1/chat/completions', \%OA, {
    model => 'gpt-4o-mini', stream => JSON::PP::true,
    stream_options => { include_usage => JSON::PP::true },
    messages => [ { role => 'user', content => 'one two three four' } ] });
is($s->{status}, 200, 'chat stream: 200');
like($s->{headers}{'content-type'}, qr{^text/event-stream}, 'chat stream: event stream');
is(scalar @{ $s->{data} }, 9, 'chat stream: role + 5 content + finish + usage + [DONE]');
my @d = @{ $s->{data} };
is($d[0]{choices}[0]{delta}{role}, 'assistant', 'chat stream: first chunk has the role');
is(join('', map { $_->{choices}[0]{delta}{content} // '' } @d[1 .. 5]), $five,
   'chat stream: content chunks');
is($d[6]{choices}[0]{finish_reason}, 'stop', 'chat stream: finish chunk');
ok(!grep({ $_->{object} ne 'chat.completion.chunk' } @d[0 .. 7]), 'chat stream: chunk objects');
ok(!grep({ !exists $_->{usage} || defined $_->{usage} } @d[0 .. 6]),
   'chat stream: "usage": null on every chunk with include_usage');
is_deeply($d[7]{choices}, [], 'chat stream: usage chunk has no choices');
is_deeply([ @{ $d[7]{usage} }{qw(prompt_tokens completion_tokens total_tokens)} ],
          [ 4, 5, 9 ], 'chat stream: usage chunk');
is($d[8], '[DONE]', 'chat stream: [DONE]');
ok($s->{complete}, 'chat stream: chunked body terminated');

$s = stream('/v1/chat/completions', \%OA, { model => 'gpt-4o-mini', stream => JSON::PP::true,
    messages => [ { role => 'user', content => 'x' } ] });
ok(!grep({ ref $_ && exists $_->{usage} } @{ $s->{data} }),
   'chat stream without include_usage: no usage field at all');

# --- OpenAI legacy completions ----------------------------------------------
($res, $j) = post_json('/v1/completions', \%OA,
    { model => 'gpt-3.5-turbo-instruct', prompt => 'say this please' });
is($j->{object}, 'text_completion', 'completions: object');
is($j->{choices}[0]{text}, $five, 'completions: text');
is_deeply([ @{ $j->{usage} }{qw(prompt_tokens completion_tokens total_tokens)} ],
          [ 3, 5, 8 ], 'completions: usage');
$s = stream('/v1/completions', \%OA, { model => 'gpt-3.5-turbo-instruct', prompt => [ 'a b', 'c' ],
    stream => JSON::PP::true, max_tokens => 2, stream_options => { include_usage => JSON::PP::true } });
is(scalar @{ $s->{data} }, 5, 'completions stream: 2 content + finish + usage + [DONE]');
is($s->{data}[2]{choices}[0]{finish_reason}, 'length', 'completions stream: length');
is($s->{data}[3]{usage}{prompt_tokens}, 3, 'completions stream: prompt tokens of all prompts');

# --- OpenAI embeddings and models -------------------------------------------
($res, $j) = post_json('/v1/embeddings', \%OA,
    { model => 'text-embedding-3-small', input => [ 'a b', 'c d e' ], dimensions => 4 });
is($j->{object}, 'list', 'embeddings: list');
is(scalar @{ $j->{data} }, 2, 'embeddings: one per input');
is($j->{data}[1]{object}, 'embedding', 'embeddings: embedding object');
is($j->{data}[1]{index}, 1, 'embeddings: index');
is(scalar @{ $j->{data}[0]{embedding} }, 4, 'embeddings: dimensions from the request');
is_deeply($j->{usage}, { prompt_tokens => 5, total_tokens => 5 }, 'embeddings: usage');
my $vec = $j->{data}[0]{embedding};
(undef, $j) = post_json('/v1/embeddings', \%OA,
    { model => 'text-embedding-3-small', input => 'a b', dimensions => 4 });
is_deeply($j->{data}[0]{embedding}, $vec, 'embeddings: deterministic per input');
(undef, $j) = post_json('/v1/embeddings', \%OA,
    { model => 'text-embedding-3-small', input => 'a b', dimensions => 4,
      encoding_format => 'base64' });
is_deeply([ unpack('f<*', decode_base64($j->{data}[0]{embedding})) ], $vec,
          'embeddings: base64 is float32 LE of the same vector');
(undef, $j) = post_json('/v1/embeddings', \%OA, { model => 'e', input => 'x' });
is(scalar @{ $j->{data}[0]{embedding} }, 8, 'embeddings: 8 dimensions by default');

$res = $ua->get("http://$hp/v1/models", Authorization => 'Bearer sk-proto');
$j = decode_json($res->content);
is($j->{object}, 'list', 'models: list');
ok(scalar(@{ $j->{data} }) && !grep({ $_->{object} ne 'model' || !$_->{id} || !$_->{owned_by} }
                                     @{ $j->{data} }), 'models: model objects');
$res = $ua->get("http://$hp/v1/models/gpt-4o", Authorization => 'Bearer sk-proto');
is(decode_json($res->content)->{id}, 'gpt-4o', 'models: retrieve one');
$res = $ua->get("http://$hp/v1/models", 'x-api-key' => 'k', 'anthropic-version' => '2023-06-01');
$j = decode_json($res->content);
is($j->{data}[0]{type}, 'model', 'models (anthropic-version): Anthropic shape');
ok(exists $j->{has_more}, 'models (anthropic-version): has_more');

# --- OpenAI Responses API ----------------------------------------------------
($res, $j) = post_json('/v1/responses', \%OA, { model => 'gpt-4o', instructions => 'be kind',
    input => [ { role => 'user', content => [ { type => 'input_text', text => 'x y z' } ] } ] });
is($j->{object}, 'response', 'responses: object');
like($j->{id}, qr/^resp_/, 'responses: id');
is($j->{status}, 'completed', 'responses: completed');
is($j->{output}[0]{type}, 'message', 'responses: output message');
is($j->{output}[0]{content}[0]{type}, 'output_text', 'responses: output_text part');
is($j->{output}[0]{content}[0]{text}, $five, 'responses: text');
is_deeply([ @{ $j->{usage} }{qw(input_tokens output_tokens total_tokens)} ], [ 5, 5, 10 ],
          'responses: usage = instructions + input words');

$s = stream('/v1/responses', \%OA, { model => 'gpt-4o', input => 'p q', stream => JSON::PP::true });
is_deeply($s->{names}, [ qw(response.created response.in_progress response.output_item.added
    response.content_part.added), ('response.output_text.delta') x 5, qw(response.output_text.done
    response.content_part.done response.output_item.done response.completed) ],
    'responses stream: event sequence');
is_deeply([ map { $_->{sequence_number} } @{ $s->{data} } ], [ 0 .. 12 ],
          'responses stream: sequence_number 0..12');
is_deeply([ map { $_->{type} } @{ $s->{data} } ], $s->{names}, 'responses stream: type = event');
is(join('', map { $_->{delta} } @{ $s->{data} }[4 .. 8]), $five, 'responses stream: deltas');
is($s->{data}[9]{text}, $five, 'responses stream: output_text.done text');
my $fin = $s->{data}[12]{response};
is($fin->{status}, 'completed', 'responses stream: completed response');
is_deeply([ @{ $fin->{usage} }{qw(input_tokens output_tokens total_tokens)} ], [ 2, 5, 7 ],
          'responses stream: usage in response.completed');
ok(!defined $s->{data}[0]{response}{usage}, 'responses stream: created has usage null');

$s = stream('/v1/responses', \%OA, { model => 'gpt-4o', input => 'p', stream => JSON::PP::true,
    max_output_tokens => 1 });
is($s->{names}[-1], 'response.incomplete', 'responses stream: max_output_tokens: incomplete');
is($s->{data}[-1]{response}{incomplete_details}{reason}, 'max_output_tokens',
   'responses stream: incomplete_details');

# --- Anthropic messages -----------------------------------------------------
($res, $j) = post_json('/v1/messages', \%AN, { model => 'claude-3-5-haiku-latest',
    max_tokens => 100, system => 'you are terse',
    messages => [ { role => 'user', content => [ { type => 'text', text => 'hi there' } ] } ] });
is($res->code, 200, 'anthropic: 200');
is($j->{type}, 'message', 'anthropic: type message');
like($j->{id}, qr/^msg_/, 'anthropic: id');
is($j->{role}, 'assistant', 'anthropic: role');
is($j->{model}, 'claude-3-5-haiku-latest', 'anthropic: model echoed');
is_deeply($j->{content}, [ { type => 'text', text => $five } ], 'anthropic: content');
is($j->{stop_reason}, 'end_turn', 'anthropic: end_turn');
is_deeply([ @{ $j->{usage} }{qw(input_tokens output_tokens)} ], [ 5, 5 ],
          'anthropic: usage = system + messages words');

$s = stream('/v1/messages', \%AN, { model => 'claude-3-5-haiku-latest', max_tokens => 3,
    stream => JSON::PP::true, messages => [ { role => 'user', content => 'a b c d' } ] });
is_deeply($s->{names}, [ qw(message_start content_block_start ping), ('content_block_delta') x 3,
    qw(content_block_stop message_delta message_stop) ], 'anthropic stream: event sequence');
is_deeply([ map { $_->{type} } @{ $s->{data} } ], $s->{names}, 'anthropic stream: type = event');
is($s->{data}[0]{message}{usage}{input_tokens}, 4, 'anthropic stream: input tokens in message_start');
is($s->{data}[0]{message}{usage}{output_tokens}, 1, 'anthropic stream: message_start output 1 (as real)');
is(join('', map { $_->{delta}{text} } @{ $s->{data} }[3 .. 5]), 'tok1 tok2 tok3 ',
   'anthropic stream: text_delta');
is($s->{data}[3]{delta}{type}, 'text_delta', 'anthropic stream: delta type');
is($s->{data}[7]{delta}{stop_reason}, 'max_tokens', 'anthropic stream: max_tokens stop');
is($s->{data}[7]{usage}{output_tokens}, 3, 'anthropic stream: final output tokens');

# --- Gemini -----------------------------------------------------------------
($res, $j) = post_json('/v1beta/models/gemini-2.0-flash:generateContent', \%GM, {
    systemInstruction => { parts => [ { text => 'be nice' } ] },
    contents => [ { role => 'user', parts => [ { text => 'one two' }, { text => 'three' } ] } ] });
is($res->code, 200, 'gemini: 200');
my $c = $j->{candidates}[0];
is($c->{content}{role}, 'model', 'gemini: role model');
is($c->{content}{parts}[0]{text}, $five, 'gemini: text');
is($c->{finishReason}, 'STOP', 'gemini: STOP');
is_deeply([ @{ $j->{usageMetadata} }{qw(promptTokenCount candidatesTokenCount totalTokenCount)} ],
          [ 5, 5, 10 ], 'gemini: usageMetadata');
is($j->{modelVersion}, 'gemini-2.0-flash', 'gemini: model from the path');

$s = stream('/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse', \%GM, {
    contents => [ { role => 'user', parts => [ { text => 'one two' } ] } ],
    generationConfig => { maxOutputTokens => 3 } });
like($s->{headers}{'content-type'}, qr{^text/event-stream}, 'gemini stream: event stream');
is(scalar @{ $s->{data} }, 4, 'gemini stream: 3 content chunks + final');
is(join('', map { $_->{candidates}[0]{content}{parts}[0]{text} } @{ $s->{data} }),
   'tok1 tok2 tok3 ', 'gemini stream: text');
ok(!grep({ exists $_->{usageMetadata} || exists $_->{candidates}[0]{finishReason} }
         @{ $s->{data} }[0 .. 2]), 'gemini stream: only the last chunk finishes');
is($s->{data}[3]{candidates}[0]{finishReason}, 'MAX_TOKENS', 'gemini stream: MAX_TOKENS');
is_deeply([ @{ $s->{data}[3]{usageMetadata} }{qw(promptTokenCount candidatesTokenCount)} ],
          [ 2, 3 ], 'gemini stream: usageMetadata on the last chunk');

$res = $ua->post("http://$hp/v1beta/models/gemini-2.0-flash:streamGenerateContent?key=gk",
    'Content-Type' => 'application/json',
    Content => encode_json({ contents => [ { parts => [ { text => 'x' } ] } ] }));
$j = eval { decode_json($res->content) };
is(ref $j, 'ARRAY', 'gemini stream without alt=sse: one JSON array');
is(scalar @{ $j || [] }, 6, 'gemini stream without alt=sse: 5 chunks + final');

# --- markers and the control prefix ----------------------------------------
($res, $j) = post_json('/v1/chat/completions', \%OA, { model => 'm',
    messages => [ { role => 'user', content => 'one [[mock events=2,tag=pm1]] two' } ] });
is($j->{usage}{prompt_tokens}, 2, 'marker: cut out before counting');
is($j->{usage}{completion_tokens}, 2, 'marker: events applied');
is($res->header('X-Mock-Tag'), 'pm1', 'marker: tag echoed');
($res, $j) = post_json('/_mock/events=1,tag=pm2/v1/chat/completions', \%OA,
    { model => 'm', messages => [ { role => 'user', content => 'x' } ] });
is($j->{usage}{completion_tokens}, 1, 'control prefix: events applied');
is($res->header('X-Mock-Served-By'), 'pm2', 'control prefix: X-Mock-Served-By');
