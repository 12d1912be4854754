# NebulaJsonMaxDepth (default 64): a JSON request body nested deeper is
# refused with 400 json_too_deep before it is routed, reserved or relayed,
# on the API (OpenAI- and Anthropic-shaped errors) and on the admin API;
# brackets inside strings do not count; 100 000 '[' are refused at once.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(encode_json decode_json);
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records chat);

plan tests => 28;

my $m = "depth-$$";
my (undef, $tag) = new_channel(models => [$m]);
my $key = new_key();
sub nest { my ($n) = @_; return ('[' x $n) . (']' x $n) }
sub err_of { my $j = eval { decode_json($_[0]->content) } || {}; return $j->{error} || {} }
sub received { return scalar @{ mock_records($tag, 1000) } }
# a chat body whose arrays and objects nest $depth levels (the body is level 1)
sub deep_chat {
    my ($depth) = @_;
    return '{"model":' . encode_json($m) . ',"messages":[{"role":"user","content":"hi"}],'
         . '"x_nest":' . nest($depth - 1) . '}';
}

# ---- the API ---------------------------------------------------------------
my $res = chat($key, deep_chat(64));
is($res->code, 200, 'API: 64 levels are accepted');
is(received(), 1, '... and relayed');

$res = chat($key, deep_chat(65));
is($res->code, 400, 'API: 65 levels are refused with 400');
is(err_of($res)->{type}, 'invalid_request_error', '... invalid_request_error');
is(err_of($res)->{code}, 'json_too_deep', '... code json_too_deep');
like(err_of($res)->{message}, qr/nests arrays and objects deeper than the limit of 64 levels/,
     '... the message names the limit');
ok(exists err_of($res)->{param}, '... in OpenAI\'s shape (param present)');

my $t0 = time;
$res = chat($key, '[' x 100000);
my $took = time - $t0;
is($res->code, 400, 'API: 100 000 [ are refused with 400');
is(err_of($res)->{code}, 'json_too_deep', '... as too deep');
cmp_ok($took, '<', 2, "... quickly (${\ sprintf('%.3f', $took)} s)");

$res = chat($key, '{"model":' . encode_json($m) . ',"x":' . ('[' x 70) . '1,}');
is($res->code, 400, 'API: deep and malformed: 400');
is(err_of($res)->{code}, 'json_too_deep', '... refused as too deep first');

$res = chat($key, encode_json({ model => $m, messages => [{ role => 'user', content => '[{' x 5000 }] }));
is($res->code, 200, 'API: brackets inside a string do not count');

$res = chat($key, '{"model":' . encode_json($m) . ',"max_tokens":8,"messages":[{"role":"user",'
                . '"content":"hi"}],"metadata":' . nest(70) . '}',
            path => '/v1/messages', 'x-api-key' => $key, 'anthropic-version' => '2023-06-01');
is($res->code, 400, 'Anthropic route: too deep is a 400');
my $body = eval { decode_json($res->content) } || {};
is($body->{type}, 'error', '... in Anthropic\'s error shape');
is($body->{error}{type}, 'invalid_request_error', '... invalid_request_error');

is(received(), 2, 'nothing refused reached the upstream');

# ---- the admin API ---------------------------------------------------------
sub admin_post {
    my ($raw) = @_;
    my $req = HTTP::Request->new(POST => 'http://' . NebulaAdmin::hostport_of('nebula_admin')
                                         . '/api/policies/test');
    $req->header(Authorization => "Bearer $NebulaAdmin::TOKEN");
    $req->header('Content-Type' => 'application/json');
    $req->content($raw);
    return NebulaAdmin::ua()->request($req);
}
# a policy test whose body nests $depth levels in all
sub deep_policy_test {
    my ($depth) = @_;
    return '{"body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
         . '"x_nest":' . nest($depth - 2) . '}}';
}

$res = admin_post(deep_policy_test(64));
is($res->code, 200, 'admin API: 64 levels are accepted');
$body = eval { decode_json($res->content) } || {};
ok(exists $body->{data}{decision}, '... and the request is served');

$res = admin_post(deep_policy_test(65));
is($res->code, 400, 'admin API: 65 levels are refused with 400');
is(err_of($res)->{code}, 'json_too_deep', '... code json_too_deep');
is(err_of($res)->{type}, 'invalid_request_error', '... in the admin API\'s error shape');
like(err_of($res)->{message}, qr/deeper than 64 levels/, '... the message names the limit');

$t0 = time;
$res = admin_post('[' x 100000);
$took = time - $t0;
is($res->code, 400, 'admin API: 100 000 [ are refused with 400');
is(err_of($res)->{code}, 'json_too_deep', '... as too deep');
cmp_ok($took, '<', 2, "... quickly (${\ sprintf('%.3f', $took)} s)");

$res = admin_post('{"body":' . nest(100) . ',');
is($res->code, 400, 'admin API: deep and malformed: 400');
is(received(), 2, 'the upstream still saw only the two accepted requests');
