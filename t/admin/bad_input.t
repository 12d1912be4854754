# The admin API's answers to malformed requests: each a JSON error with the
# right status (400, 404, 405, 413, 415) and nothing changed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api uniq db_value);

plan tests => 39;

my $name = uniq('bad');
my ($res, $j);
sub err_is {
    my ($res, $j, $status, $code, $what) = @_;
    is($res->code . ' ' . ($j && $j->{error} ? $j->{error}{code} // '' : 'no JSON error'),
       "$status $code", $what);
}

($res, $j) = api('POST', '/api/users', undef, raw => '{"username": "x",');
err_is($res, $j, 400, 'invalid_json', 'truncated JSON: 400 invalid_json');
unlike($j->{error}{message}, qr/username/, 'the message does not quote the body');
($res, $j) = api('POST', '/api/users', undef, raw => '["x"]');
err_is($res, $j, 400, 'invalid_json', 'a JSON array: 400');
($res, $j) = api('POST', '/api/users', undef, raw => '"x"');
err_is($res, $j, 400, 'invalid_json', 'a JSON string: 400');
($res, $j) = api('POST', '/api/users', undef, raw => '{"username":"a","username":"b"}');
err_is($res, $j, 400, 'invalid_json', 'duplicate members: 400');
($res, $j) = api('POST', '/api/users', undef, raw => "{\"username\":\"$name\"} x");
err_is($res, $j, 400, 'invalid_json', 'trailing garbage: 400');
($res, $j) = api('POST', '/api/users', undef);
err_is($res, $j, 400, 'invalid_json', 'no body where one is needed: 400');
($res, $j) = api('POST', '/api/users', undef, raw => "username=$name",
                 type => 'application/x-www-form-urlencoded');
err_is($res, $j, 415, 'unsupported_media_type', 'a form post: 415');
($res, $j) = api('POST', '/api/users', undef, raw => "{\"username\":\"$name\"}", type => 'text/plain');
err_is($res, $j, 415, 'unsupported_media_type', 'text/plain JSON: 415');
($res, $j) = api('POST', '/api/users', undef, raw => "{\"username\":\"$name-ct\"}",
                 type => 'Application/JSON; charset=utf-8');
is($res->code, 201, 'application/json with parameters and any case: accepted');
($res, $j) = api('POST', '/api/users', undef,
                 raw => '{"display_name":"' . ('x' x (1024 * 1024)) . '"}');
err_is($res, $j, 413, 'body_too_large', 'a body over 1 MiB: 413');
is(db_value("SELECT COUNT(*) FROM users WHERE username = '$name'"), 0,
   'none of the refused requests created the user');
($res, $j) = api('POST', '/api/users', { username => $name, display_name => "\x{1F600}ok" });
is($res->code, 201, 'UTF-8 text is fine');
is($j->{data}{display_name}, "\x{1F600}ok", 'and comes back intact');
($res, $j) = api('POST', '/api/users', undef, raw => "{\"username\":\"x\\u0000y\"}");
err_is($res, $j, 400, 'invalid_json', 'NUL in a string: 400');

# routes and methods
($res, $j) = api('GET', '/api/nothing');
err_is($res, $j, 404, 'not_found', 'unknown route: 404');
($res, $j) = api('GET', '/api/users/');
err_is($res, $j, 404, 'not_found', 'trailing slash: 404');
($res, $j) = api('GET', '/api/users/abc');
err_is($res, $j, 404, 'not_found', 'non-numeric id: 404');
($res, $j) = api('GET', '/api/users/0');
err_is($res, $j, 404, 'not_found', 'id 0: 404');
($res, $j) = api('GET', '/api/users/99999999999999999999999');
err_is($res, $j, 404, 'not_found', 'id beyond 64 bits: 404');
($res, $j) = api('GET', '/api/users/007');
err_is($res, $j, 404, 'not_found', 'leading zeros: 404');
($res, $j) = api('PUT', '/api/users');
err_is($res, $j, 405, 'method_not_allowed', 'PUT on /api/users: 405');
is($res->header('Allow'), 'GET, POST', 'Allow lists the methods');
($res, $j) = api('GET', '/api/keys/import');
err_is($res, $j, 405, 'method_not_allowed', 'GET on /api/keys/import: 405');
is($res->header('Allow'), 'POST', 'Allow: POST');
($res, $j) = api('DELETE', '/api/auth/me');
is($res->header('Allow'), 'GET', 'Allow on /api/auth/me');
($res) = api('OPTIONS', '/api/channels/1', undef, token => undef);
is($res->code . ' ' . ($res->header('Allow') // ''), '204 GET, PATCH, DELETE', 'OPTIONS: 204 and Allow');
($res) = api('HEAD', '/api/users');
is($res->code, 200, 'HEAD on a GET route: 200');
is($res->content, '', 'without a body');

# query strings
($res, $j) = api('GET', '/api/users?page=1&page=2');
err_is($res, $j, 400, 'invalid_query', 'a parameter twice: 400');
($res, $j) = api('GET', '/api/users?q=%zz');
err_is($res, $j, 400, 'invalid_query', 'a bad %-escape: 400');
($res, $j) = api('GET', '/api/users?q=a%00b');
err_is($res, $j, 400, 'invalid_query', 'an escaped NUL: 400');
($res, $j) = api('GET', '/api/users?per_page=1e2');
err_is($res, $j, 400, 'invalid_field', 'a non-integer number: 400');
is($j->{error}{param}, 'per_page', 'param per_page');

# errors are JSON and never cached
($res, $j) = api('GET', '/api/users/abc');
is($res->header('Content-Type'), 'application/json', 'errors are application/json');
is($res->header('Cache-Control'), 'no-store', 'and not cached');
($res, $j) = api('GET', '/api/users?per_page=1');
is($res->header('Cache-Control'), 'no-store', 'answers are not cached either');
is($j->{error}, undef, 'a good request has no error member');
ok(exists $j->{data} && exists $j->{total}, 'lists have data and total');
