# Every OpenAI route through the real relay, against the mock: what the
# client gets, what the upstream received (mapped model, upstream key), and
# the request-log row each request leaves.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_key new_channel mock_records chat relay_hostport key_logs);
use NebulaTest qw(timed_sse_post);

plan tests => 33;

my $m = "routes-$$";
my ($cid, $tag) = new_channel(models => [$m, "$m-alias", "$m-emb", "omni-moderation-latest"],
                              model_mapping => { "$m-alias" => $m });
my ($key, $kid) = new_key();

# chat, non-streaming
my $res = chat($key, { model => $m, messages => [{ role => 'user', content => '[[mock events=4]] one two three' }] });
is($res->code, 200, 'chat: 200');
my $j = decode_json($res->content);
is($j->{object}, 'chat.completion', 'chat: a chat.completion');
is($j->{choices}[0]{message}{content}, 'tok1 tok2 tok3 tok4 ', 'chat: the upstream text');
is_deeply([@{ $j->{usage} }{qw(prompt_tokens completion_tokens)}], [3, 4], 'chat: usage');
like($res->header('X-Request-Id') // '', qr/^[0-9a-f]{8}-[0-9a-f]{4}-7/, 'X-Request-Id is a UUIDv7');
my $rec = mock_records($tag)->[-1];
my %h = map { lc($_) => $rec->{headers}{$_} } keys %{ $rec->{headers} };
is($h{authorization}, "Bearer sk-upstream-$tag", 'the upstream got the channel key, not the client key');

# model mapping: the upstream receives the mapped model
$res = chat($key, { model => "$m-alias", messages => [{ role => 'user', content => 'hi' }] });
is($res->code, 200, 'mapped model: 200');
is(decode_json(mock_records($tag)->[-1]{body})->{model}, $m, 'the mock received the mapped model');

# chat, streaming; usage chunk only when asked
my $s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true, messages => [{ role => 'user', content => '[[mock events=3]] a b' }] }));
is($s->{status}, 200, 'stream: 200');
is($s->{events}[-1][1], '[DONE]', 'stream: ends with [DONE]');
my @chunks = map { decode_json($_->[1]) } grep { $_->[1] ne '[DONE]' } @{ $s->{events} };
ok(!(grep { exists $_->{usage} } @chunks), 'stream without include_usage: no usage member anywhere');
is(join('', map { $_->{choices}[0]{delta}{content} // '' } @chunks), 'tok1 tok2 tok3 ', 'stream: text');
my $up = decode_json(mock_records($tag)->[-1]{body});
ok($up->{stream_options}{include_usage}, 'the gateway asked the upstream for usage anyway');

$s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true, stream_options => { include_usage => JSON::PP::true },
                  messages => [{ role => 'user', content => '[[mock events=2]] a b c' }] }));
@chunks = map { decode_json($_->[1]) } grep { $_->[1] ne '[DONE]' } @{ $s->{events} };
my ($u) = grep { ref $_->{usage} } @chunks;
is_deeply($u && [@{ $u->{usage} }{qw(prompt_tokens completion_tokens)}], [3, 2], 'include_usage: the usage chunk');
is(scalar(@{ $u->{choices} // [1] }), 0, 'the usage chunk has no choices');

$s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true, stream_options => { include_usage => JSON::PP::true },
                  messages => [{ role => 'user', content => '[[mock events=2,no_usage=1]] a b c' }] }));
@chunks = map { decode_json($_->[1]) } grep { $_->[1] ne '[DONE]' } @{ $s->{events} };
($u) = grep { ref $_->{usage} } @chunks;
ok($u && $u->{usage}{completion_tokens} > 0, 'upstream sent no usage: the gateway synthesised one');
is($s->{events}[-1][1], '[DONE]', 'and still ends with [DONE]');

# completions
$res = chat($key, { model => $m, prompt => 'say something' }, path => '/v1/completions');
is($res->code, 200, 'completions: 200');
is(decode_json($res->content)->{object}, 'text_completion', 'completions: text_completion');

# embeddings
$res = chat($key, { model => "$m-emb", input => 'embed me' }, path => '/v1/embeddings');
is($res->code, 200, 'embeddings: 200');
$j = decode_json($res->content);
is($j->{object}, 'list', 'embeddings: a list');
is($j->{usage}{prompt_tokens}, 2, 'embeddings: usage');

# moderations (the default model when none is given)
$res = chat($key, { input => 'moderate me' }, path => '/v1/moderations');
is($res->code, 200, 'moderations: 200') or diag $res->content;
is(mock_records($tag)->[-1]{path}, "/_mock/tag=$tag/v1/moderations", 'moderations reached the upstream');

# models: only what the key may use
$res = LWP::UserAgent->new->get('http://' . relay_hostport() . '/v1/models', Authorization => "Bearer $key");
is($res->code, 200, 'models: 200');
my %ids = map { $_->{id} => 1 } @{ decode_json($res->content)->{data} };
ok($ids{$m} && $ids{"$m-alias"}, 'models: lists the channel\'s models');
my ($limited) = new_key(allowed_models => [$m]);
$res = LWP::UserAgent->new->get('http://' . relay_hostport() . '/v1/models', Authorization => "Bearer $limited");
is_deeply([map { $_->{id} } @{ decode_json($res->content)->{data} }], [$m], 'models: a key\'s allow-list filters them');
$res = LWP::UserAgent->new->get('http://' . relay_hostport() . "/v1/models/$m", Authorization => "Bearer $key");
is(decode_json($res->content)->{id}, $m, 'models/{id}: the model');
$res = LWP::UserAgent->new->get('http://' . relay_hostport() . '/v1/models/nope', Authorization => "Bearer $key");
is($res->code, 404, 'models/{id}: unknown model 404');

# legacy billing routes of chat front-ends
$res = LWP::UserAgent->new->get('http://' . relay_hostport() . '/dashboard/billing/subscription', Authorization => "Bearer $key");
is(decode_json($res->content)->{hard_limit_usd}, 200, 'subscription: the key\'s quota in USD (500000 units = $1)');
$res = LWP::UserAgent->new->get('http://' . relay_hostport() . '/v1/dashboard/billing/usage', Authorization => "Bearer $key");
is($res->code, 200, '/v1/dashboard/billing/usage: 200');

# the request log: one row per request, with tokens and channel
my ($code) = api('GET', "/api/logs?key_id=$kid&per_page=100");
is($code, 200, 'request logs readable');
my ($row) = grep { $_->{model} eq "$m-alias" } @{ key_logs($kid, 1, sub { $_[0]{model} eq "$m-alias" }) };
ok($row && $row->{upstream_model} eq $m && $row->{channel_id} == $cid
   && $row->{prompt_tokens} == 1 && $row->{status} == 200, 'a log row: model, upstream model, channel, tokens, status')
    or diag encode_json($row);
