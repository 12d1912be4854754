# Admin API authentication: the root token, users' access tokens, session
# sign-in with signed cookies and CSRF, sign-out revoking every session,
# roles, and the failed sign-in limit.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok new_ua uniq login make_user db_value);

plan tests => 65;

# ---- tokens -------------------------------------------------------------
my ($res, $j) = api('GET', '/api/users', undef, token => undef);
is($res->code, 401, 'no credentials: 401');
is($j->{error}{code}, 'missing_credentials', 'code missing_credentials');
is($j->{error}{type}, 'authentication_error', 'OpenAI-shaped error type');
like($res->header('WWW-Authenticate') // '', qr/^Bearer realm=/, 'WWW-Authenticate: Bearer');

($res, $j) = api('GET', '/api/users', undef, token => 'nebula-test-admin-token-0123456789abcdeX');
is($res->code, 401, 'wrong admin token: 401');
is($j->{error}{code}, 'invalid_token', 'code invalid_token');
($res) = api('GET', '/api/users', undef, token => undef,
             headers => { Authorization => 'Basic YWRtaW46YWRtaW4=' });
is($res->code, 401, 'Basic credentials: 401');
($res) = api('GET', '/api/users', undef, token => 'nat-' . ('A' x 48));
is($res->code, 401, 'unknown access token: 401');

($res, $j) = api('GET', '/api/users');
is($res->code, 200, 'admin token: 200');
($res, $j) = api('GET', '/api/auth/me');
is($j->{data}{auth}, 'admin_token', 'me: via the admin token');
is($j->{data}{role}, 'root', 'me: the admin token is root');
ok(!defined $j->{data}{user}, 'me: the admin token is no user');

# a user's management access token: shown once, stored as its SHA-256
my $adm = make_user(role => 'admin');
my $tok = api_ok('POST', "/api/users/$adm->{id}/access-token");
like($tok->{access_token}, qr/^nat-[0-9A-Za-z]{48}$/, 'access token: nat- and 48 characters');
use Digest::SHA qw(sha256_hex);
is(db_value("SELECT access_token_hash FROM users WHERE id = $adm->{id}"),
   sha256_hex($tok->{access_token}), 'the database holds only its SHA-256');
($res, $j) = api('GET', '/api/auth/me', undef, token => $tok->{access_token});
is($res->code, 200, 'access token: 200');
is($j->{data}{user}{id}, $adm->{id}, 'me: the token\'s user');
is($j->{data}{auth}, 'access_token', 'me: via access token');
ok($j->{data}{user}{has_access_token}, 'user shows has_access_token');
($res) = api('POST', '/api/groups', { name => uniq('g') }, token => $tok->{access_token});
is($res->code, 201, 'bearer requests need no CSRF token');
my $tok2 = api_ok('POST', "/api/users/$adm->{id}/access-token");
($res) = api('GET', '/api/users', undef, token => $tok->{access_token});
is($res->code, 401, 'rotating the token ends the old one');
api_ok('DELETE', "/api/users/$adm->{id}/access-token", undef, expect => 204);
($res) = api('GET', '/api/users', undef, token => $tok2->{access_token});
is($res->code, 401, 'a revoked token: 401');

# ---- sessions ------------------------------------------------------------
my $ua = new_ua();
my $name = uniq('s');
my $u = make_user(username => $name, role => 'admin');
($res, $j) = login($ua, $name, 'wrong password');
is($res->code, 401, 'wrong password: 401');
is($j->{error}{code}, 'invalid_credentials', 'code invalid_credentials');
($res, $j) = login($ua, uniq('nobody'), 'whatever-password');
is($res->code, 401, 'unknown user: 401, same answer');
is($j->{error}{message}, 'wrong username or password', 'same message for both');

($res, $j) = login($ua, $name, "pw-$name-secret");
is($res->code, 200, 'sign-in: 200');
my @cookies = $res->header('Set-Cookie');
my ($sess) = grep { /^nebula_session=/ } @cookies;
my ($csrfc) = grep { /^nebula_csrf=/ } @cookies;
like($sess, qr/; HttpOnly/, 'session cookie is HttpOnly');
like($sess, qr/; SameSite=Strict/, 'session cookie is SameSite=Strict');
like($sess, qr/; Path=\//, 'session cookie Path=/');
unlike($csrfc, qr/HttpOnly/, 'the CSRF cookie is readable by the page');
my $csrf = $j->{data}{csrf_token};
like($csrfc, qr/^nebula_csrf=\Q$csrf\E;/, 'the body\'s csrf_token is the cookie\'s');
is($j->{data}{user}{id}, $u->{id}, 'sign-in returns the user');
cmp_ok($j->{data}{expires_at}, '>', time * 1000, 'the session expires in the future');

($res, $j) = api('GET', '/api/auth/me', undef, token => undef, ua => $ua);
is($res->code, 200, 'me with the cookie: 200');
is($j->{data}{auth}, 'session', 'me: via session');
($res) = api('GET', '/api/users', undef, token => undef, ua => $ua);
is($res->code, 200, 'GET with the cookie needs no CSRF token');
($res, $j) = api('POST', '/api/groups', { name => uniq('g') }, token => undef, ua => $ua);
is($res->code, 403, 'cookie POST without X-CSRF-Token: 403');
is($j->{error}{code}, 'csrf_failed', 'code csrf_failed');
($res) = api('POST', '/api/groups', { name => uniq('g') }, token => undef, ua => $ua,
             headers => { 'X-CSRF-Token' => 'x' x 32 });
is($res->code, 403, 'wrong CSRF token: 403');
($res) = api('POST', '/api/groups', { name => uniq('g') }, token => undef, ua => $ua,
             headers => { 'X-CSRF-Token' => $csrf });
is($res->code, 201, 'cookie POST with the CSRF token: 201');

# the cookie alone (no jar) is the credential; a forged or tampered one is not
my ($value) = $sess =~ /^nebula_session=([^;]+)/;
($res) = api('GET', '/api/auth/me', undef, token => undef, ua => new_ua(),
             headers => { Cookie => "nebula_session=$value" });
is($res->code, 200, 'the session cookie sent by hand: 200');
my @f = split /\./, $value;
my $forged = join('.', $f[0], $f[1], $f[2] + 1, @f[3, 4]);
($res, $j) = api('GET', '/api/auth/me', undef, token => undef, ua => new_ua(),
                 headers => { Cookie => "nebula_session=$forged" });
is($j->{error}{code} // $res->code, 'session_expired', 'a cookie with a changed expiry does not verify');

# sign-out ends every session of the user
my $ua2 = new_ua();
login($ua2, $name, "pw-$name-secret");
($res) = api('POST', '/api/auth/logout', undef, token => undef, ua => $ua);
is($res->code, 403, 'sign-out is state-changing: CSRF required');
($res) = api('POST', '/api/auth/logout', undef, token => undef, ua => $ua,
             headers => { 'X-CSRF-Token' => $csrf });
is($res->code, 204, 'sign-out: 204');
like(join(' ', $res->header('Set-Cookie')), qr/nebula_session=; .*Max-Age=0/, 'cookie cleared');
($res, $j) = api('GET', '/api/auth/me', undef, token => undef, ua => new_ua(),
                 headers => { Cookie => "nebula_session=$value" });
is($res->code, 401, 'the old cookie is revoked');
is($j->{error}{code}, 'session_expired', 'code session_expired');
($res) = api('GET', '/api/auth/me', undef, token => undef, ua => $ua2);
is($res->code, 401, 'the user\'s other session is revoked too');

# ---- roles ---------------------------------------------------------------
my $plain = make_user(role => 'user');
my $pua = new_ua();
($res) = login($pua, $plain->{username}, "pw-$plain->{username}-secret");
is($res->code, 200, 'a user-role account may sign in');
($res, $j) = api('GET', '/api/auth/me', undef, token => undef, ua => $pua);
is($j->{data}{role}, 'user', 'me: role user');
($res, $j) = api('GET', '/api/users', undef, token => undef, ua => $pua);
is($res->code, 403, 'role user: management routes 403');
is($j->{error}{type}, 'permission_error', 'permission_error');
($res) = api('GET', '/api/nope', undef, token => undef, ua => $pua);
is($res->code, 404, 'role user: unknown route still 404');

# an admin may not touch root users nor make roots
my $atok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
my $root = make_user(role => 'root');
($res) = api('PATCH', "/api/users/$root->{id}", { display_name => 'x' }, token => $atok);
is($res->code, 403, 'admin cannot change a root user');
($res) = api('POST', '/api/users', { username => uniq('r'), role => 'root' }, token => $atok);
is($res->code, 403, 'admin cannot create a root user');
($res) = api('PATCH', "/api/users/$plain->{id}", { display_name => 'ok' }, token => $atok);
is($res->code, 200, 'admin may change a user-role user');

# a disabled user's session and token stop working
api_ok('PATCH', "/api/users/$plain->{id}", { status => 'disabled' });
($res) = api('GET', '/api/auth/me', undef, token => undef, ua => $pua);
is($res->code, 401, 'disabling a user ends its session');

# ---- own password ----------------------------------------------------------
my $cua = new_ua();
my $cn = uniq('c');
make_user(username => $cn, role => 'admin');
(undef, $j) = login($cua, $cn, "pw-$cn-secret");
my $cc = $j->{data}{csrf_token};
($res) = api('POST', '/api/auth/password', { current_password => 'nope-nope',
             new_password => 'new-password-1' }, token => undef, ua => $cua,
             headers => { 'X-CSRF-Token' => $cc });
is($res->code, 403, 'password change with a wrong current password: 403');
($res, $j) = api('POST', '/api/auth/password', { current_password => "pw-$cn-secret",
                 new_password => 'new-password-1' }, token => undef, ua => $cua,
                 headers => { 'X-CSRF-Token' => $cc });
is($res->code, 200, 'password changed');
ok($j->{data}{csrf_token} && $j->{data}{csrf_token} ne $cc, 'a new session was issued');
($res) = api('GET', '/api/auth/me', undef, token => undef, ua => $cua);
is($res->code, 200, 'the new session works');
($res) = login(new_ua(), $cn, 'new-password-1');
is($res->code, 200, 'the new password signs in');

# ---- failed sign-ins are limited (one keep-alive connection: one process) ----
my $rl = new_ua(keep_alive => 1);
my $rn = uniq('rl');
make_user(username => $rn);
my @codes = map { (login($rl, $rn, "bad-password-$_"))[0]->code } 1 .. 5;
is_deeply(\@codes, [ (401) x 5 ], 'five wrong passwords: 401 each');
($res, $j) = login($rl, $rn, "pw-$rn-secret");
is($res->code, 429, 'then even the right password is refused: 429');
like($res->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After');
