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

plan tests => 281, need_module('nebula_mock');

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

# =============================================================================
# Issue 5: tool calls, thinking, caching, count/embed/models, stored responses,
# rerank, images, audio, Azure paths.
# =============================================================================
use URI::Escape qw(uri_escape);
use Time::HiRes ();

sub recs {
    my ($tag) = @_;
    return decode_json($ua->get("http://$hp/_mock/records?tag=$tag")->content);
}
sub ctl_hdr { return ('X-Mock-Control' => $_[0]) }
my $ARGS = '{"city":"Paris","days":2}';
my $ARGS_CTL = 'tool_call=get_weather,tool_args=' . uri_escape($ARGS);

# --- tool calls: OpenAI chat --------------------------------------------------
($res, $j) = post_json('/v1/chat/completions', { %OA, ctl_hdr($ARGS_CTL) }, {
    model => 'gpt-4o', tools => [ { type => 'function', function => { name => 'get_weather' } } ],
    messages => [ { role => 'user', content => 'weather in paris' } ] });
my $msg = $j->{choices}[0]{message};
is($j->{choices}[0]{finish_reason}, 'tool_calls', 'chat tool: finish_reason tool_calls');
ok(exists $msg->{content} && !defined $msg->{content}, 'chat tool: content null');
is(scalar @{ $msg->{tool_calls} }, 1, 'chat tool: one call');
like($msg->{tool_calls}[0]{id}, qr/^call_[A-Za-z0-9]{24}$/, 'chat tool: id call_...');
is_deeply([ @{ $msg->{tool_calls}[0] }{qw(type)}, $msg->{tool_calls}[0]{function} ],
          [ 'function', { name => 'get_weather', arguments => $ARGS } ],
          'chat tool: type function, name and arguments');
is_deeply([ @{ $j->{usage} }{qw(prompt_tokens completion_tokens total_tokens)} ], [ 3, 5, 8 ],
          'chat tool: usage P + N as for text');

$s = stream('/v1/chat/completions', { %OA, ctl_hdr("$ARGS_CTL,events=3") }, {
    model => 'gpt-4o', stream => JSON::PP::true,
    stream_options => { include_usage => JSON::PP::true },
    messages => [ { role => 'user', content => 'x y' } ] });
@d = @{ $s->{data} };
is(scalar @d, 7, 'chat tool stream: head + 3 pieces + finish + usage + [DONE]');
my $d0 = $d[0]{choices}[0]{delta};
is($d0->{role}, 'assistant', 'chat tool stream: role first');
ok(exists $d0->{content} && !defined $d0->{content}, 'chat tool stream: content null first');
my $tc0 = $d0->{tool_calls}[0];
is_deeply([ @$tc0{qw(index type)}, $tc0->{function} ],
          [ 0, 'function', { name => 'get_weather', arguments => '' } ],
          'chat tool stream: first delta has index, type, name, arguments ""');
like($tc0->{id}, qr/^call_/, 'chat tool stream: id in the first delta');
my @pieces = map { $_->{choices}[0]{delta}{tool_calls}[0]{function}{arguments} } @d[1 .. 3];
is(join('', @pieces), $ARGS, 'chat tool stream: pieces join to the arguments');
is_deeply([ map { length } @pieces ], [ 8, 8, 9 ], 'chat tool stream: 3 near-equal pieces');
ok(!grep({ exists $_->{choices}[0]{delta}{tool_calls}[0]{id} } @d[1 .. 3]),
   'chat tool stream: later deltas carry no id');
is_deeply([ map { $_->{choices}[0]{delta}{tool_calls}[0]{index} } @d[1 .. 3] ], [ 0, 0, 0 ],
          'chat tool stream: index 0 on every piece');
is($d[4]{choices}[0]{finish_reason}, 'tool_calls', 'chat tool stream: finish tool_calls');
is_deeply($d[4]{choices}[0]{delta}, {}, 'chat tool stream: finish delta empty');
is($d[5]{usage}{completion_tokens}, 3, 'chat tool stream: usage completion = N');
is($d[6], '[DONE]', 'chat tool stream: [DONE]');

$s = stream('/v1/chat/completions', { %OA, ctl_hdr('tool_call=f,events=1') },
    { model => 'm', stream => JSON::PP::true, messages => [ { role => 'user', content => 'x' } ] });
is_deeply([ map { $_->{choices}[0]{delta}{tool_calls}[0]{function}{arguments} }
            @{ $s->{data} }[1 .. 2] ], [ '{"q":"', 'tok1"}' ],
          'chat tool stream: default {"q":"tok1"}, at least 2 pieces even for N=1');

$s = stream('/v1/chat/completions', { %OA, ctl_hdr('tool_call=f,events=3,drop_after=1') },
    { model => 'm', stream => JSON::PP::true, messages => [ { role => 'user', content => 'x' } ] });
is(scalar @{ $s->{data} }, 2, 'chat tool stream: drop_after=1 counts argument pieces');
ok(!$s->{complete}, 'chat tool stream: drop_after cuts the body');

($res, $j) = post_json('/v1/chat/completions', { %OA, ctl_hdr('tool_call=f,tool_args=%5B1%5D') },
    { model => 'm', messages => [ { role => 'user', content => 'x' } ] });
is($res->code, 400, 'tool_args not an object: 400');
like($j->{error}{message}, qr/tool_args/, 'tool_args not an object: named');

# --- tool calls: Responses ----------------------------------------------------
($res, $j) = post_json('/v1/responses', { %OA, ctl_hdr($ARGS_CTL) },
    { model => 'gpt-4o', input => 'weather now' });
my $fc = $j->{output}[0];
is_deeply([ @$fc{qw(type status name arguments)} ],
          [ 'function_call', 'completed', 'get_weather', $ARGS ], 'responses tool: function_call item');
like($fc->{id}, qr/^fc_/, 'responses tool: item id fc_...');
like($fc->{call_id}, qr/^call_/, 'responses tool: call_id call_...');
is($j->{status}, 'completed', 'responses tool: completed');
is($j->{usage}{output_tokens}, 5, 'responses tool: output tokens N');

$s = stream('/v1/responses', { %OA, ctl_hdr("$ARGS_CTL,events=2") },
    { model => 'gpt-4o', input => 'a', stream => JSON::PP::true });
is_deeply($s->{names}, [ qw(response.created response.in_progress response.output_item.added),
    ('response.function_call_arguments.delta') x 2, qw(response.function_call_arguments.done
    response.output_item.done response.completed) ], 'responses tool stream: event sequence');
is_deeply([ map { $_->{sequence_number} } @{ $s->{data} } ], [ 0 .. 7 ],
          'responses tool stream: sequence numbers');
my $added = $s->{data}[2]{item};
is_deeply([ @$added{qw(type status arguments name)} ], [ 'function_call', 'in_progress', '', 'get_weather' ],
          'responses tool stream: item added with arguments ""');
is(join('', map { $_->{delta} } @{ $s->{data} }[3, 4]), $ARGS, 'responses tool stream: deltas');
ok(!grep({ $_->{item_id} ne $added->{id} || $_->{output_index} != 0 } @{ $s->{data} }[3 .. 5]),
   'responses tool stream: item_id and output_index on the argument events');
is_deeply([ @{ $s->{data}[5] }{qw(arguments name)} ], [ $ARGS, 'get_weather' ],
          'responses tool stream: arguments.done');
is_deeply([ @{ $s->{data}[6]{item} }{qw(status arguments call_id)} ],
          [ 'completed', $ARGS, $added->{call_id} ], 'responses tool stream: item done');
is($s->{data}[7]{response}{output}[0]{type}, 'function_call', 'responses tool stream: completed output');

# --- tool calls: Anthropic ----------------------------------------------------
($res, $j) = post_json('/v1/messages', { %AN, ctl_hdr($ARGS_CTL) }, { model => 'claude-x',
    max_tokens => 100, messages => [ { role => 'user', content => 'weather please' } ] });
is($j->{stop_reason}, 'tool_use', 'anthropic tool: stop_reason tool_use');
is(scalar @{ $j->{content} }, 1, 'anthropic tool: one block');
like($j->{content}[0]{id}, qr/^toolu_/, 'anthropic tool: id toolu_...');
is_deeply([ @{ $j->{content}[0] }{qw(type name input)} ],
          [ 'tool_use', 'get_weather', { city => 'Paris', days => 2 } ], 'anthropic tool: tool_use block');
is($j->{usage}{output_tokens}, 5, 'anthropic tool: output tokens N');

$s = stream('/v1/messages', { %AN, ctl_hdr("$ARGS_CTL,events=4") }, { model => 'claude-x',
    max_tokens => 100, stream => JSON::PP::true, messages => [ { role => 'user', content => 'a' } ] });
is_deeply($s->{names}, [ qw(message_start content_block_start ping), ('content_block_delta') x 4,
    qw(content_block_stop message_delta message_stop) ], 'anthropic tool stream: event sequence');
my $cb = $s->{data}[1]{content_block};
is_deeply([ @$cb{qw(type name input)} ], [ 'tool_use', 'get_weather', {} ],
          'anthropic tool stream: content_block_start tool_use with input {}');
like($cb->{id}, qr/^toolu_/, 'anthropic tool stream: id');
is_deeply([ map { $_->{delta}{type} } @{ $s->{data} }[3 .. 6] ], [ ('input_json_delta') x 4 ],
          'anthropic tool stream: input_json_delta');
is(join('', map { $_->{delta}{partial_json} } @{ $s->{data} }[3 .. 6]), $ARGS,
   'anthropic tool stream: partial_json pieces');
is($s->{data}[8]{delta}{stop_reason}, 'tool_use', 'anthropic tool stream: stop tool_use');
is($s->{data}[8]{usage}{output_tokens}, 4, 'anthropic tool stream: output tokens');

# --- tool calls: Gemini -------------------------------------------------------
($res, $j) = post_json('/v1beta/models/gemini-2.0-flash:generateContent', { %GM, ctl_hdr($ARGS_CTL) },
    { contents => [ { role => 'user', parts => [ { text => 'weather' } ] } ] });
is_deeply($j->{candidates}[0]{content}{parts},
          [ { functionCall => { name => 'get_weather', args => { city => 'Paris', days => 2 } } } ],
          'gemini tool: functionCall part');
is($j->{candidates}[0]{finishReason}, 'STOP', 'gemini tool: STOP');
is($j->{usageMetadata}{candidatesTokenCount}, 5, 'gemini tool: candidates tokens N');
$s = stream('/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse', { %GM, ctl_hdr($ARGS_CTL) },
    { contents => [ { role => 'user', parts => [ { text => 'weather' } ] } ] });
is(scalar @{ $s->{data} }, 1, 'gemini tool stream: one chunk');
is($s->{data}[0]{candidates}[0]{content}{parts}[0]{functionCall}{name}, 'get_weather',
   'gemini tool stream: the whole call');
is($s->{data}[0]{candidates}[0]{finishReason}, 'STOP', 'gemini tool stream: STOP');
is($s->{data}[0]{usageMetadata}{totalTokenCount}, 6, 'gemini tool stream: usage');

$res = $ua->post("http://$hp/v1beta/models/gemini-2.0-flash:streamGenerateContent?key=gk",
    'Content-Type' => 'application/json', ctl_hdr('tool_call=lookup'),
    Content => encode_json({ contents => [ { parts => [ { text => 'x' } ] } ] }));
$j = eval { decode_json($res->content) } || [];
is_deeply([ scalar @$j, $j->[0]{candidates}[0]{content}{parts}[0]{functionCall} ],
          [ 1, { name => 'lookup', args => { q => 'tok1' } } ],
          'gemini tool stream without alt=sse: an array of one chunk');

# --- Anthropic thinking, cache, count_tokens ----------------------------------
my $sig = 'bmVidWxhLW1vY2stdGhpbmtpbmctc2lnbmF0dXJlOnRoaW5rZXI=';  # ...signature:thinker
($res, $j) = post_json('/v1/messages', { %AN, ctl_hdr('thinking=2,tag=thinker,events=3') },
    { model => 'claude-x', max_tokens => 100, messages => [ { role => 'user', content => 'a b' } ] });
is_deeply($j->{content}, [ { type => 'thinking', thinking => 'think1 think2 ', signature => $sig },
                           { type => 'text', text => 'tok1 tok2 tok3 ' } ],
          'thinking: thinking block (fixed signature) then text');
is($j->{usage}{output_tokens}, 5, 'thinking: output_tokens = N + K');
is($j->{usage}{output_tokens_details}{thinking_tokens}, 2, 'thinking: thinking_tokens K');
my $rec = recs('thinker')->[-1];
is($rec->{completion_tokens}, 5, 'thinking: record completion_tokens N + K');

$s = stream('/v1/messages', { %AN, ctl_hdr('thinking=2,tag=thinker,events=2') }, { model => 'claude-x',
    max_tokens => 100, stream => JSON::PP::true, messages => [ { role => 'user', content => 'a' } ] });
is_deeply($s->{names}, [ qw(message_start content_block_start ping content_block_delta
    content_block_delta content_block_delta content_block_stop content_block_start
    content_block_delta content_block_delta content_block_stop message_delta message_stop) ],
    'thinking stream: event sequence');
is_deeply($s->{data}[1]{content_block}, { type => 'thinking', thinking => '', signature => '' },
          'thinking stream: thinking block starts empty');
is_deeply([ map { $_->{delta} } @{ $s->{data} }[3 .. 5] ],
          [ { type => 'thinking_delta', thinking => 'think1 ' },
            { type => 'thinking_delta', thinking => 'think2 ' },
            { type => 'signature_delta', signature => $sig } ], 'thinking stream: deltas, signature last');
is_deeply([ map { $_->{index} } @{ $s->{data} }[1, 3, 6, 7, 8, 10] ], [ 0, 0, 0, 1, 1, 1 ],
          'thinking stream: thinking index 0, text index 1');
is($s->{data}[7]{content_block}{type}, 'text', 'thinking stream: then the text block');
is($s->{data}[11]{usage}{output_tokens}, 4, 'thinking stream: output N + K');

(undef, $j) = post_json('/v1/messages', { %AN, ctl_hdr('thinking=1') },
    { model => 'c', max_tokens => 100, messages => [ { role => 'user', content => 'a' } ] });
is($j->{content}[0]{signature}, 'bmVidWxhLW1vY2stdGhpbmtpbmctc2lnbmF0dXJlOm1vY2s=',
   'thinking: without a tag the signature seeds with "mock"');

$s = stream('/v1/messages', { %AN, ctl_hdr('thinking=1,tool_call=f,events=2') }, { model => 'c',
    max_tokens => 100, stream => JSON::PP::true, messages => [ { role => 'user', content => 'a' } ] });
is($s->{data}[6]{content_block}{type}, 'tool_use', 'thinking + tool: tool_use block second');
is_deeply([ map { $_->{index} } @{ $s->{data} }[7, 8, 9] ], [ 1, 1, 1 ],
          'thinking + tool: input_json_delta at index 1');

($res, $j) = post_json('/v1/messages', { %AN, ctl_hdr('cache_read=3,cache_write=2') }, {
    model => 'c', max_tokens => 10, system => 'one two three four five',
    messages => [ { role => 'user', content => 'six seven eight nine ten' } ] });
is_deeply([ @{ $j->{usage} }{qw(input_tokens cache_read_input_tokens cache_creation_input_tokens)} ],
          [ 5, 3, 2 ], 'cache: input = P - R - W, read R, creation W');
is($j->{usage}{cache_creation}{ephemeral_5m_input_tokens}, 2, 'cache: cache_creation.ephemeral_5m');
($res, $j) = post_json('/v1/messages', { %AN, ctl_hdr('cache_read=2,cache_write=5') },
    { model => 'c', max_tokens => 10, messages => [ { role => 'user', content => 'a b c' } ] });
is($j->{usage}{input_tokens}, 0, 'cache: input never below 0');
$s = stream('/v1/messages', { %AN, ctl_hdr('cache_read=1,cache_write=1') }, { model => 'c',
    max_tokens => 10, stream => JSON::PP::true, messages => [ { role => 'user', content => 'a b c' } ] });
is_deeply([ @{ $s->{data}[0]{message}{usage} }{qw(input_tokens cache_read_input_tokens cache_creation_input_tokens)} ],
          [ 1, 1, 1 ], 'cache stream: message_start usage');
is_deeply([ @{ $s->{data}[-2]{usage} }{qw(input_tokens cache_read_input_tokens cache_creation_input_tokens)} ],
          [ 1, 1, 1 ], 'cache stream: message_delta usage');

($res, $j) = post_json('/v1/messages/count_tokens', \%AN, { model => 'claude-x',
    system => 'be terse', messages => [ { role => 'user', content => 'count these three' } ] });
is($res->code, 200, 'count_tokens: 200');
is_deeply($j, { input_tokens => 5 }, 'count_tokens: {input_tokens: P}');
($res, $j) = post_json('/v1/messages/count_tokens', \%AN, { messages => [] });
is($res->code, 400, 'count_tokens: model required');
is($j->{type}, 'error', 'count_tokens: Anthropic error shape');

# --- Gemini: countTokens, embedContent, models, thoughts, block ----------------
($res, $j) = post_json('/v1beta/models/gemini-2.0-flash:countTokens', \%GM,
    { contents => [ { parts => [ { text => 'one two three' } ] } ] });
is($j->{totalTokens}, 3, 'gemini countTokens: totalTokens P');
(undef, $j) = post_json('/v1beta/models/gemini-2.0-flash:countTokens', \%GM,
    { generateContentRequest => { model => 'models/gemini-2.0-flash',
        contents => [ { parts => [ { text => 'a b' } ] } ] } });
is($j->{totalTokens}, 2, 'gemini countTokens: of a generateContentRequest');
($res, $j) = post_json('/v1beta/models/text-embedding-004:embedContent', \%GM,
    { content => { parts => [ { text => 'a b' } ] }, outputDimensionality => 4 });
is($res->code, 200, 'gemini embedContent: 200');
is_deeply($j->{embedding}{values}, $vec, 'gemini embedContent: the vector /v1/embeddings gives');
(undef, $j) = post_json('/v1beta/models/text-embedding-004:batchEmbedContents', \%GM,
    { requests => [ { content => { parts => [ { text => 'a b' } ] }, outputDimensionality => 4 },
                    { content => { parts => [ { text => 'zz' } ] } } ] });
is(scalar @{ $j->{embeddings} }, 2, 'gemini batchEmbedContents: one per request');
is_deeply($j->{embeddings}[0]{values}, $vec, 'gemini batchEmbedContents: same vector');
is(scalar @{ $j->{embeddings}[1]{values} }, 8, 'gemini batchEmbedContents: 8 by default');

$res = $ua->get("http://$hp/v1beta/models", 'x-goog-api-key' => 'gk');
$j = decode_json($res->content);
my ($gm) = grep { $_->{name} eq 'models/gemini-2.0-flash' } @{ $j->{models} };
ok($gm, 'gemini models: models/<id>');
is($gm->{displayName}, 'gemini-2.0-flash', 'gemini models: displayName');
is_deeply($gm->{supportedGenerationMethods}, [ qw(generateContent streamGenerateContent countTokens) ],
          'gemini models: supportedGenerationMethods');
ok($gm->{inputTokenLimit} > 0 && $gm->{outputTokenLimit} > 0, 'gemini models: token limits');
is(scalar @{ $j->{models} }, scalar @{ decode_json($ua->get("http://$hp/v1/models",
   Authorization => 'Bearer k')->content)->{data} }, 'gemini models: every NebulaMockModels id');
$res = $ua->get("http://$hp/v1beta/models/gemini-2.0-flash?key=gk");
is(decode_json($res->content)->{name}, 'models/gemini-2.0-flash', 'gemini model: get one');
$res = $ua->get("http://$hp/v1beta/models/nope?key=gk");
is($res->code, 404, 'gemini model: unknown 404');
is(decode_json($res->content)->{error}{status}, 'NOT_FOUND', 'gemini model: Google error shape');
$res = $ua->get("http://$hp/v1beta/models");
is($res->code, 401, 'gemini models: key required');

($res, $j) = post_json('/v1beta/models/gemini-2.5-pro:generateContent', { %GM, ctl_hdr('thoughts=7') },
    { contents => [ { parts => [ { text => 'a b' } ] } ] });
is_deeply([ @{ $j->{usageMetadata} }{qw(promptTokenCount candidatesTokenCount thoughtsTokenCount totalTokenCount)} ],
          [ 2, 5, 7, 14 ], 'gemini thoughts: thoughtsTokenCount T, total P + N + T');
(undef, $j) = post_json('/v1beta/models/gemini-2.5-pro:generateContent', \%GM,
    { contents => [ { parts => [ { text => 'a b' } ] } ] });
ok(!exists $j->{usageMetadata}{thoughtsTokenCount}, 'gemini: no thoughtsTokenCount without the control');

($res, $j) = post_json('/v1beta/models/gemini-2.0-flash:generateContent', { %GM, ctl_hdr('block=1,tag=gblock') },
    { contents => [ { parts => [ { text => 'bad words' } ] } ] });
is($res->code, 200, 'gemini block: 200');
ok(!exists $j->{candidates}, 'gemini block: no candidates');
is($j->{promptFeedback}{blockReason}, 'SAFETY', 'gemini block: blockReason SAFETY');
ok(grep({ $_->{blocked} } @{ $j->{promptFeedback}{safetyRatings} }), 'gemini block: a blocked rating');
is_deeply([ @{ $j->{usageMetadata} }{qw(promptTokenCount totalTokenCount)} ], [ 2, 2 ],
          'gemini block: prompt tokens only');
is(recs('gblock')->[-1]{completion_tokens}, 0, 'gemini block: record 0 completion');
$s = stream('/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse', { %GM, ctl_hdr('block=1') },
    { contents => [ { parts => [ { text => 'bad' } ] } ] });
is(scalar @{ $s->{data} }, 1, 'gemini block stream: one chunk');
is($s->{data}[0]{promptFeedback}{blockReason}, 'SAFETY', 'gemini block stream: promptFeedback');

# --- Responses: retrieve, delete ---------------------------------------------
$res = $ua->get("http://$hp/v1/responses/resp_abc123", Authorization => 'Bearer k');
$j = decode_json($res->content);
is($res->code, 200, 'responses get: 200');
is_deeply([ @$j{qw(id object status)} ], [ 'resp_abc123', 'response', 'completed' ],
          'responses get: that id, completed');
is($j->{output}[0]{content}[0]{text}, $five, 'responses get: the usual text');
$res = $ua->delete("http://$hp/v1/responses/resp_abc123", Authorization => 'Bearer k');
is_deeply(decode_json($res->content), { id => 'resp_abc123', object => 'response.deleted',
          deleted => JSON::PP::true }, 'responses delete: deleted');
$res = $ua->post("http://$hp/v1/responses/resp_abc123", Authorization => 'Bearer k');
is($res->code, 405, 'responses item: POST 405');
is($res->header('Allow'), 'GET, DELETE', 'responses item: Allow');
$res = $ua->get("http://$hp/v1/responses/resp_abc123");
is($res->code, 401, 'responses get: key required');

# --- Rerank ---------------------------------------------------------------------
($res, $j) = post_json('/v1/rerank', { %OA, ctl_hdr('tag=rr') }, { model => 'jina-reranker-v2',
    query => 'Apple banana', documents => [ 'banana split', { text => 'apple, banana pie' },
    'cherry', 'BANANA apple' ], top_n => 3 });
is($res->code, 200, 'rerank: 200');
is_deeply([ map { [ $_->{index}, $_->{relevance_score}, $_->{document}{text} ] } @{ $j->{results} } ],
          [ [ 1, 1, 'apple, banana pie' ], [ 3, 1, 'BANANA apple' ], [ 0, 0.5, 'banana split' ] ],
          'rerank: word-overlap scores, sorted, ties by index, cut at top_n');
is_deeply($j->{usage}, { total_tokens => 10 }, 'rerank: usage total_tokens = query + documents words');
is_deeply($j->{meta}, { billed_units => { search_units => 1 } }, 'rerank: Cohere meta');
is($j->{model}, 'jina-reranker-v2', 'rerank: model');
ok(length $j->{id}, 'rerank: id');
is(recs('rr')->[-1]{route}, 'rerank', 'rerank: record route');
(undef, $j) = post_json('/v2/rerank', \%OA, { model => 'rerank-v3.5', query => 'a',
    documents => [ 'b', 'a' ], return_documents => JSON::PP::false });
is_deeply($j->{results}, [ { index => 1, relevance_score => 1 }, { index => 0, relevance_score => 0 } ],
          'rerank v2: no documents when return_documents false');
($res, $j) = post_json('/v1/rerank', \%OA, { model => 'r', documents => [ 'a' ] });
is($res->code, 400, 'rerank: query required');
is($j->{error}{param}, 'query', 'rerank: param query');

# --- Images ---------------------------------------------------------------------
($res, $j) = post_json('/v1/images/generations', { %OA, ctl_hdr('tag=imggen') },
    { model => 'dall-e-3', prompt => 'a red cat', n => 2, size => '1024x1024' });
is($res->code, 200, 'images gen: 200');
ok($j->{created} > 1_600_000_000, 'images gen: created');
is(scalar @{ $j->{data} }, 2, 'images gen: n images');
like($j->{data}[1]{url}, qr{^https://images\.mock\.nebula\.test/\S+-1\.png$}, 'images gen: url');
is($j->{data}[0]{revised_prompt}, 'a red cat', 'images gen: revised_prompt');
is_deeply([ @{ recs('imggen')->[-1] }{qw(route prompt_tokens completion_tokens)} ],
          [ 'openai.images.generations', 3, 2 ], 'images gen: record (P, images)');
(undef, $j) = post_json('/v1/images/generations', \%OA,
    { prompt => 'x', response_format => 'b64_json' });
is(substr(decode_base64($j->{data}[0]{b64_json}), 0, 8), "\x89PNG\r\n\x1a\n", 'images gen: b64_json PNG');
ok(!exists $j->{data}[0]{url}, 'images gen: b64_json has no url');
($res, $j) = post_json('/v1/images/generations', \%OA, { prompt => 'x', n => 11 });
is($res->code, 400, 'images gen: n > 10: 400');
is($j->{error}{param}, 'n', 'images gen: param n');

my $B = 'nebulaB0undary';
sub form {
    my (@parts) = @_;
    my $body = '';
    while (my ($name, $v) = splice(@parts, 0, 2)) {
        if (ref $v) {
            $body .= "--$B\r\nContent-Disposition: form-data; name=\"$name\"; filename=\"$v->[0]\"\r\n"
                   . "Content-Type: $v->[2]\r\n\r\n$v->[1]\r\n";
        }
        else {
            $body .= "--$B\r\nContent-Disposition: form-data; name=\"$name\"\r\n\r\n$v\r\n";
        }
    }
    return $body . "--$B--\r\n";
}
sub post_form {
    my ($path, $hdrs, $body) = @_;
    my $r = $ua->post("http://$hp$path", %$hdrs, 'Content-Type' => "multipart/form-data; boundary=$B",
                      Content => $body);
    return ($r, eval { decode_json($r->content) });
}
my %OAF = (Authorization => 'Bearer sk-proto');
my $png1 = "\x89PNG\r\n\x1a\n\0\r\n--not-the-boundary\r\n" . ("\xff" x 20);
my $png2 = 'second-image';
my $form = form('model' => 'gpt-image-1', 'prompt' => 'add a hat', 'n' => '1', 'size' => '512x512',
    'image[]' => [ 'a.png', $png1, 'image/png' ], 'image[]' => [ 'b.png', $png2, 'image/png' ]);
($res, $j) = post_form('/v1/images/edits', { %OAF, ctl_hdr('tag=imgedit') }, $form);
is($res->code, 200, 'images edit: 200');
is(scalar @{ $j->{data} }, 1, 'images edit: n from the form');
is($j->{data}[0]{revised_prompt}, 'add a hat', 'images edit: prompt from the form');
$rec = recs('imgedit')->[-1];
is($rec->{model}, 'gpt-image-1', 'images edit: model from the form');
is(decode_base64($rec->{body_base64}), $form, 'images edit: record body_base64 is the raw body');
is_deeply($rec->{multipart}, [
    { name => 'model', value => 'gpt-image-1', size => 11 },
    { name => 'prompt', value => 'add a hat', size => 9 },
    { name => 'n', value => '1', size => 1 },
    { name => 'size', value => '512x512', size => 7 },
    { name => 'image[]', filename => 'a.png', content_type => 'image/png', size => length $png1 },
    { name => 'image[]', filename => 'b.png', content_type => 'image/png', size => length $png2 } ],
    'images edit: every part parsed (binary file with CRLF and dashes inside)');
is($rec->{prompt_tokens}, 3, 'images edit: prompt tokens of the prompt field');
($res, $j) = post_form('/v1/images/edits', \%OAF, form(prompt => 'x', mask => [ 'm.png', 'm', 'image/png' ]));
is($res->code, 400, 'images edit: no image: 400');
is_deeply([ @{ $j->{error} }{qw(message type param code)} ],
          [ "Missing required parameter: 'image'.", 'invalid_request_error', 'image',
            'missing_required_parameter' ], 'images edit: OpenAI error shape, param image');
($res, $j) = post_form('/v1/images/edits', \%OAF, form(image => [ 'a.png', 'x', 'image/png' ]));
is($j->{error}{param}, 'prompt', 'images edit: prompt required');
($res, $j) = post_json('/v1/images/edits', \%OA, { prompt => 'x' });
is($res->code, 400, 'images edit: JSON body: 400');
like($j->{error}{message}, qr/expected multipart\/form-data/, 'images edit: says multipart');
($res, $j) = post_form('/v1/images/variations', \%OAF,
    form(image => [ 'v.png', 'v', 'image/png' ], n => '3', response_format => 'b64_json'));
is(scalar @{ $j->{data} }, 3, 'images variations: n images');
ok(!exists $j->{data}[0]{revised_prompt} && $j->{data}[0]{b64_json}, 'images variations: b64, no prompt');
($res, $j) = post_form('/v1/images/variations', \%OAF, form(n => '1'));
is($j->{error}{param}, 'image', 'images variations: image required');
$res = $ua->post("http://$hp/v1/images/variations", %OAF,
    'Content-Type' => "multipart/form-data; boundary=$B",
    Content => "--$B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\nabc");
is($res->code, 400, 'multipart: no closing boundary: 400');

# --- Audio: speech --------------------------------------------------------------
my $input = "h\x{e9}llo";    # 5 characters, 6 UTF-8 bytes
my $want = join '', map { chr((31 * $_ + 17) % 256) } 0 .. 64 * 5 - 1;
my $t0 = Time::HiRes::time();
my $r = timed_sse_post($hp, '/v1/audio/speech', { %OA, ctl_hdr('events=4,delay_ms=150,tag=tts') },
    JSON::PP->new->utf8->encode({ model => 'tts-1', input => $input, voice => 'alloy' }));
my $elapsed = Time::HiRes::time() - $t0;
is($r->{status}, 200, 'speech: 200');
is($r->{headers}{'content-type'}, 'audio/mpeg', 'speech: mp3 is audio/mpeg by default');
like($r->{headers}{'transfer-encoding'} // '', qr/chunked/, 'speech: chunked');
ok($r->{complete}, 'speech: body terminated');
is(length $r->{body}, 320, 'speech: 64 bytes per character');
is($r->{body}, $want, 'speech: deterministic bytes (31 i + 17) mod 256');
my ($rawbody) = $r->{raw} =~ /\r\n\r\n(.*)\z/s;
my @chunks;
while ($rawbody =~ s/^([0-9a-fA-F]+)\r\n//) { my $n = hex $1; last if !$n; push @chunks, $n;
    substr($rawbody, 0, $n + 2, '') }
is_deeply(\@chunks, [ 80, 80, 80, 80 ], 'speech: sent in `events` chunks');
ok($elapsed >= 0.45, "speech: delay_ms between chunks (${elapsed}s)");
is(recs('tts')->[-1]{prompt_tokens}, 1, 'speech: record prompt tokens = words of input');
$res = $ua->post("http://$hp/v1/audio/speech", %OA,
    Content => encode_json({ model => 'tts-1', input => 'ab', voice => 'alloy', response_format => 'wav' }));
is($res->header('Content-Type'), 'audio/wav', 'speech: wav');
is(length $res->content, 128, 'speech: wav length');
($res, $j) = post_json('/v1/audio/speech', \%OA, { model => 'tts-1', input => 'ab' });
is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'voice' ], 'speech: voice required');
($res, $j) = post_json('/v1/audio/speech', \%OA, { model => 'tts-1', input => 'ab', voice => 'a',
    response_format => 'ogg' });
is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'response_format' ], 'speech: bad format 400');

# --- Audio: transcriptions / translations ------------------------------------
my $wav = 'RIFF' . ("\0" x 39996);    # 40000 bytes: 3 seconds
($res, $j) = post_form('/v1/audio/transcriptions', { %OAF, ctl_hdr('events=3,tag=stt') },
    form(model => 'whisper-1', file => [ 'a.wav', $wav, 'audio/wav' ]));
is($res->code, 200, 'transcription: 200');
is_deeply($j, { text => 'tok1 tok2 tok3 ', usage => { type => 'duration', seconds => 3 } },
          'transcription: json text + usage duration ceil(bytes / 16000)');
$rec = recs('stt')->[-1];
is_deeply([ @$rec{qw(route model)} ], [ 'openai.audio.transcriptions', 'whisper-1' ],
          'transcription: record route and model');
is($rec->{multipart}[1]{size}, 40000, 'transcription: record file size');
(undef, $j) = post_form('/v1/audio/transcriptions', { %OAF, ctl_hdr('audio_seconds=42') },
    form(model => 'whisper-1', file => [ 'a.wav', 'x', 'audio/wav' ]));
is($j->{usage}{seconds}, 42, 'transcription: audio_seconds');
$res = $ua->post("http://$hp/v1/audio/transcriptions", %OAF, ctl_hdr('events=2'),
    'Content-Type' => "multipart/form-data; boundary=$B",
    Content => form(model => 'whisper-1', response_format => 'text', file => [ 'a', 'x', 'audio/wav' ]));
like($res->header('Content-Type'), qr{^text/plain}, 'transcription text: text/plain');
is($res->content, "tok1 tok2 \n", 'transcription text: the text');
$res = $ua->post("http://$hp/v1/audio/transcriptions", %OAF, ctl_hdr('events=1,audio_seconds=65'),
    'Content-Type' => "multipart/form-data; boundary=$B",
    Content => form(model => 'whisper-1', response_format => 'srt', file => [ 'a', 'x', 'audio/wav' ]));
is($res->content, "1\n00:00:00,000 --> 00:01:05,000\ntok1 \n\n", 'transcription srt');
$res = $ua->post("http://$hp/v1/audio/transcriptions", %OAF, ctl_hdr('events=1,audio_seconds=2'),
    'Content-Type' => "multipart/form-data; boundary=$B",
    Content => form(model => 'whisper-1', response_format => 'vtt', file => [ 'a', 'x', 'audio/wav' ]));
is($res->content, "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\ntok1 \n\n", 'transcription vtt');
(undef, $j) = post_form('/v1/audio/transcriptions', { %OAF, ctl_hdr('events=2,audio_seconds=4') },
    form(model => 'whisper-1', response_format => 'verbose_json', language => 'de',
         file => [ 'a', 'x', 'audio/wav' ]));
is_deeply([ @$j{qw(task language duration text)} ], [ 'transcribe', 'german', 4, 'tok1 tok2 ' ],
          'transcription verbose_json: task, language, duration, text');
is_deeply([ @{ $j->{segments}[0] }{qw(id start end text)} ], [ 0, 0, 4, 'tok1 tok2 ' ],
          'transcription verbose_json: segment');
(undef, $j) = post_form('/v1/audio/translations', { %OAF, ctl_hdr('audio_seconds=1') },
    form(model => 'whisper-1', response_format => 'verbose_json', file => [ 'a', 'x', 'audio/wav' ]));
is_deeply([ @$j{qw(task language)} ], [ 'translate', 'english' ], 'translation verbose_json');
($res, $j) = post_form('/v1/audio/translations', \%OAF, form(model => 'whisper-1'));
is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'file' ], 'translation: file required');
($res, $j) = post_form('/v1/audio/transcriptions', \%OAF,
    form(model => 'whisper-1', response_format => 'mp3', file => [ 'a', 'x', 'audio/wav' ]));
is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'response_format' ], 'transcription: bad format');

# --- Azure paths ---------------------------------------------------------------
my %AZ = ('api-key' => 'az-key', 'Content-Type' => 'application/json');
my $AZQ = '?api-version=2024-10-21';
($res, $j) = post_json("/openai/deployments/my-dep/chat/completions$AZQ", \%AZ,
    { messages => [ { role => 'user', content => 'hi' } ] });
is_deeply([ $res->code, $j->{model}, $j->{object} ], [ 200, 'my-dep', 'chat.completion' ],
          'azure chat: the deployment is the model');
(undef, $j) = post_json("/openai/deployments/my-dep/completions$AZQ", \%AZ, { prompt => 'a' });
is_deeply([ $j->{model}, $j->{object} ], [ 'my-dep', 'text_completion' ], 'azure completions');
(undef, $j) = post_json("/openai/deployments/emb/embeddings$AZQ", \%AZ, { input => 'a b' });
is_deeply([ $j->{model}, $j->{usage}{prompt_tokens} ], [ 'emb', 2 ], 'azure embeddings');
($res, $j) = post_json("/openai/deployments/dalle/images/generations$AZQ", \%AZ, { prompt => 'a cat' });
is_deeply([ $res->code, scalar @{ $j->{data} } ], [ 200, 1 ], 'azure images/generations');
$res = $ua->post("http://$hp/openai/deployments/tts/audio/speech$AZQ", %AZ,
    Content => encode_json({ input => 'abc', voice => 'alloy' }));
is_deeply([ $res->code, length $res->content ], [ 200, 192 ], 'azure audio/speech');
($res, $j) = post_form("/openai/deployments/whisper/audio/transcriptions$AZQ",
    { 'api-key' => 'az-key', ctl_hdr('tag=azstt,events=1') }, form(file => [ 'a', 'x', 'audio/wav' ]));
is_deeply([ $res->code, $j->{text} ], [ 200, 'tok1 ' ], 'azure audio/transcriptions');
is(recs('azstt')->[-1]{model}, 'whisper', 'azure transcriptions: deployment as model');
$res = $ua->post("http://$hp/openai/deployments/my-dep/chat/completions", %AZ,
    Content => encode_json({ messages => [] }));
is($res->code, 404, 'azure: api-version required');
