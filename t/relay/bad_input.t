# Bad input: each a clear OpenAI-shaped error with the right status, nothing
# relayed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records chat relay_hostport);

plan tests => 18;

my $m = "bad-$$";
my ($cid, $tag) = new_channel(models => [$m]);
my $key = new_key();
sub err_of { my $r = shift; my $j = eval { decode_json($r->content) } || {}; return $j->{error} || {} }

my $res = chat($key, '{"model": "x", "messages": [');
is($res->code, 400, 'invalid JSON: 400');
is(err_of($res)->{code}, 'invalid_json', 'invalid_json');
like(err_of($res)->{message}, qr/line \d+, column \d+/, 'the message says where');

$res = chat($key, '[1, 2]');
is($res->code, 400, 'a JSON array: 400');

$res = chat($key, { messages => [{ role => 'user', content => 'hi' }] });
is($res->code, 400, 'missing model: 400');
is(err_of($res)->{param}, 'model', 'param: model');

$res = chat($key, { model => 42, messages => [] });
is($res->code, 400, 'model not a string: 400');

$res = chat($key, { model => 'no-such-model', messages => [{ role => 'user', content => 'hi' }] });
is($res->code, 404, 'unknown model: 404');
is(err_of($res)->{code}, 'model_not_found', 'model_not_found');

$res = chat($key, { model => $m, stream => 'yes', messages => [] });
is($res->code, 400, 'stream not a boolean: 400');

$res = chat($key, encode_json({ model => $m, input => 'x' x (1048576 + 10) }));
is($res->code, 413, 'body over NebulaMaxBodySize: 413');
is(err_of($res)->{code}, 'request_too_large', 'request_too_large');

my $ua = LWP::UserAgent->new;
$res = $ua->post('http://' . relay_hostport() . '/v1/chat/completions', Authorization => "Bearer $key",
                 'Content-Type' => 'text/plain', Content => '{}');
is($res->code, 415, 'wrong content type: 415');

$res = $ua->post('http://' . relay_hostport() . '/v1/no/such/route', Authorization => "Bearer $key",
                 'Content-Type' => 'application/json', Content => '{}');
is($res->code, 404, 'unknown route: 404');
is(err_of($res)->{code}, 'unknown_url', 'unknown_url');

$res = $ua->get('http://' . relay_hostport() . '/v1/chat/completions', Authorization => "Bearer $key");
is($res->code, 405, 'GET on a POST route: 405');
is($res->header('Allow'), 'POST', 'with Allow: POST');

is(scalar @{ mock_records($tag) }, 0, 'nothing refused reached the upstream');
