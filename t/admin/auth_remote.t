# NebulaAdminTrustRemoteUser: the user mod_auth_basic authenticated (a
# password file written here with htpasswd) becomes the admin API's caller.
# An existing users row gives its role; an unknown user is provisioned with
# NebulaAdminRemoteUserRole (refused without one); the role in
# NebulaAdminRemoteRoleEnv wins; writes need the remote user's CSRF token
# from GET /api/auth/me (Basic credentials are ambient).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use HTTP::Request;
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(hmac_sha256_hex);
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq make_user db_value db_rows);
use NebulaTest qw(run_cmd);

sub port_of {
    my ($vhost) = @_;
    Apache::TestRequest::module($vhost);
    my $hp = Apache::TestRequest::hostport();
    Apache::TestRequest::module('default');
    return (split /:/, $hp)[-1];
}
my %base = (remote => 'http://127.0.0.1:' . port_of('nebula_admin_remote'),
            strict => 'http://127.0.0.1:' . port_of('nebula_admin_remote_strict'));
my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 1);

# the password file both vhosts read (AuthUserFile, read on every request)
my $htpasswd = Apache::Test::vars('t_logs') . '/nebula-admin.htpasswd';
unlink $htpasswd;
my %pw;
sub add_login {
    my ($name) = @_;
    $pw{$name} = "basic-$name";
    my ($rc, $out) = run_cmd('htpasswd', (-e $htpasswd ? '-bB' : '-cbB'), $htpasswd, $name,
                             $pw{$name});
    die "htpasswd: $out" if $rc;
    return $name;
}

# req(VHOST, USER, METHOD, PATH, BODY, headers...) -> (response, json)
sub req {
    my ($vh, $user, $method, $path, $body, %h) = @_;
    my $r = HTTP::Request->new($method, $base{$vh} . $path);
    $r->header(Authorization => 'Basic ' . encode_base64("$user:" . ($pw{$user} // 'x'), ''))
        if defined $user;
    if (defined $body) {
        $r->content(encode_json($body));
        $r->header('Content-Type' => 'application/json');
    }
    $r->header('Content-Length' => length($r->content // ''));
    $r->header($_ => $h{$_}) for keys %h;
    my $res = $ua->request($r);
    return ($res, eval { decode_json($res->content) });
}
sub code_of { my ($res, $j) = @_; return $res->code . ' ' . ($j->{error}{code} // '') }

my $secret = 'nebula-test-session-secret-0123456789abcdef';
sub expected_csrf {
    my ($user, $day) = @_;
    $day //= int(time / 86400);
    return substr(hmac_sha256_hex("nebula-admin-remote-csrf/v1:$user:$day", $secret), 0, 32);
}
sub audit_lines {
    my ($what) = @_;
    open my $fh, '<', Apache::Test::vars('t_logs') . '/error_log' or return 0;
    return scalar grep { /NEB01501: admin audit: \Q$what\E/ } <$fh>;
}

# ---- no or wrong credentials: the auth module answers ---------------------
my $newbie = add_login(uniq('remote'));
my ($res, $j) = req('remote', undef, 'GET', '/api/auth/me');
is($res->code, 401, 'no Basic credentials: mod_auth_basic answers 401');
$pw{$newbie} = 'wrong';
($res) = req('remote', $newbie, 'GET', '/api/auth/me');
is($res->code, 401, 'wrong Basic password: 401');
$pw{$newbie} = "basic-$newbie";
is(db_value("SELECT COUNT(*) FROM users WHERE username = '$newbie'"), 0,
   'a refused user is not provisioned');

# ---- an unknown user is provisioned with NebulaAdminRemoteUserRole ---------
($res, $j) = req('remote', $newbie, 'GET', '/api/auth/me');
is($res->code, 200, 'unknown remote user: 200');
is($j->{data}{auth}, 'remote_user', 'me: via remote_user');
is($j->{data}{role}, 'user', 'provisioned with NebulaAdminRemoteUserRole (user)');
is($j->{data}{user}{username}, $newbie, 'me: the remote user\'s row');
ok(!$j->{data}{user}{has_password}, 'the provisioned row has no password');
is($j->{data}{csrf_token}, expected_csrf($newbie),
   'csrf_token: HMAC of the username and the day under NebulaSessionSecret');
ok(!defined $j->{data}{expires_at}, 'no session expiry for a remote user');
my $newbie_id = $j->{data}{user}{id};
my $newbie_csrf = $j->{data}{csrf_token};
is(join('/', @{ db_rows("SELECT role, status FROM users WHERE username = '$newbie'")->[0] }),
   'user/active', 'the users row: role user, active');
is(audit_lines("provision-remote-user $newbie_id '$newbie' (user) by $newbie"), 1,
   'the provisioning is audit-logged');
($res, $j) = req('remote', $newbie, 'GET', '/api/auth/me');
is($j->{data}{user}{id}, $newbie_id, 'the second request finds the same row');
is(db_value("SELECT COUNT(*) FROM users WHERE username = '$newbie'"), 1, 'one row only');
($res, $j) = req('remote', $newbie, 'GET', '/api/users');
is(code_of($res, $j), '403 forbidden', 'role user: management routes 403');
($res, $j) = req('remote', $newbie, 'GET', '/api/self/account');
isnt($res->code, 403, 'role user: self routes allowed');

# ---- writes need the remote user's CSRF token -----------------------------
my $other = add_login(uniq('remote'));
my (undef, $jo) = req('remote', $other, 'GET', '/api/auth/me');
my $other_csrf = $jo->{data}{csrf_token};
isnt($other_csrf, $newbie_csrf, 'each remote user has its own CSRF token');
($res, $j) = req('remote', $newbie, 'POST', '/api/self/redeem', { code => 'NOPE' });
is(code_of($res, $j), '403 csrf_failed', 'write without X-CSRF-Token: 403 csrf_failed');
($res, $j) = req('remote', $newbie, 'POST', '/api/self/redeem', { code => 'NOPE' },
                 'X-CSRF-Token' => $other_csrf);
is(code_of($res, $j), '403 csrf_failed', 'another user\'s token: 403 csrf_failed');
($res, $j) = req('remote', $newbie, 'POST', '/api/self/redeem', { code => 'NOPE' },
                 'X-CSRF-Token' => expected_csrf($newbie, int(time / 86400) - 2));
is(code_of($res, $j), '403 csrf_failed', 'a token two days old: 403 csrf_failed');
($res, $j) = req('remote', $newbie, 'POST', '/api/self/redeem', { code => 'NOPE' },
                 'X-CSRF-Token' => expected_csrf($newbie, int(time / 86400) - 1));
isnt(($j->{error}{code} // ''), 'csrf_failed', 'yesterday\'s token is still accepted');
($res, $j) = req('remote', $newbie, 'POST', '/api/self/redeem', { code => 'NOPE' },
                 'X-CSRF-Token' => $newbie_csrf);
isnt(($j->{error}{code} // ''), 'csrf_failed', 'with its token the write reaches the route');
like(code_of($res, $j), qr/^(400|404|409|422|429) /,
     'and the route answers (about the voucher code): ' . code_of($res, $j));

# ---- an existing row gives its role ----------------------------------------
my $adm = make_user(role => 'admin');
add_login($adm->{username});
($res, $j) = req('remote', $adm->{username}, 'GET', '/api/auth/me');
is($j->{data}{role} . ' ' . $j->{data}{user}{id}, "admin $adm->{id}",
   'an existing user: its row and role');
my $csrf = $j->{data}{csrf_token};
($res, $j) = req('remote', $adm->{username}, 'POST', '/api/groups', { name => uniq('g') });
is(code_of($res, $j), '403 csrf_failed', 'admin write without the token: 403 csrf_failed');
($res, $j) = req('remote', $adm->{username}, 'POST', '/api/groups', { name => uniq('g') },
                 'X-CSRF-Token' => $csrf);
is($res->code, 201, 'admin write with the token: 201');

api_ok('PATCH', "/api/users/$adm->{id}", { status => 'disabled' });
($res, $j) = req('remote', $adm->{username}, 'GET', '/api/auth/me');
is(code_of($res, $j), '403 forbidden', 'a disabled user: 403 forbidden');
like($j->{error}{message}, qr/not active/, 'message: not active');
api_ok('PATCH', "/api/users/$adm->{id}", { status => 'active' });

# ---- the role from NebulaAdminRemoteRoleEnv wins ---------------------------
my $op = add_login(uniq('operator-'));
($res, $j) = req('remote', $op, 'GET', '/api/auth/me');
is($j->{data}{role}, 'operator', 'env role operator: provisioned as operator, not user');
is(db_value("SELECT role FROM users WHERE username = '$op'"), 'operator', 'stored');
($res) = req('remote', $op, 'GET', '/api/users');
is($res->code, 200, 'operator reads');
($res, $j) = req('remote', $op, 'POST', '/api/groups', { name => uniq('g') },
                 'X-CSRF-Token' => $j->{data}{csrf_token});
is(code_of($res, $j), '403 forbidden', 'operator writes: 403 forbidden');

my $promoted = make_user(username => uniq('admin-'), role => 'user');
add_login($promoted->{username});
($res, $j) = req('remote', $promoted->{username}, 'GET', '/api/auth/me');
is($j->{data}{role} . ' ' . $j->{data}{user}{id}, "admin $promoted->{id}",
   'env role admin wins over the row\'s role user');
is(db_value("SELECT role FROM users WHERE id = $promoted->{id}"), 'admin',
   'the row takes the role the auth module gave');
is(audit_lines("remote-user-role $promoted->{id} '$promoted->{username}' user -> admin"), 1,
   'the role change is audit-logged');

my $bogus = add_login(uniq('bogus-'));
($res, $j) = req('remote', $bogus, 'GET', '/api/auth/me');
is($j->{data}{role}, 'user', 'an env value that is no role is ignored (default role)');

# ---- no NebulaAdminRemoteUserRole: unknown users are refused ----------------
my $stranger = add_login(uniq('stranger'));
($res, $j) = req('strict', $stranger, 'GET', '/api/auth/me');
is(code_of($res, $j), '403 forbidden', 'strict vhost: an unknown user is 403 forbidden');
like($j->{error}{message}, qr/not provisioned/, 'message: not provisioned');
is(db_value("SELECT COUNT(*) FROM users WHERE username = '$stranger'"), 0, 'no row made');
($res, $j) = req('strict', $newbie, 'GET', '/api/auth/me');
is($res->code . ' ' . ($j->{data}{user}{id} // ''), "200 $newbie_id",
   'strict vhost: a known user signs in');
my $odd = add_login('_odd' . uniq(''));
($res, $j) = req('remote', $odd, 'GET', '/api/auth/me');
is(code_of($res, $j), '403 forbidden', 'a remote name that is no valid username: 403');

# ---- Basic credentials are ignored where remote users are not trusted ------
Apache::TestRequest::module('nebula_admin');
my $plain = 'http://127.0.0.1:' . (split /:/, Apache::TestRequest::hostport())[-1];
Apache::TestRequest::module('default');
my $r = HTTP::Request->new(GET => "$plain/api/auth/me");
$r->header(Authorization => 'Basic ' . encode_base64("$newbie:$pw{$newbie}", ''));
$res = $ua->request($r);
is($res->code, 401, 'the plain admin vhost does not take Basic credentials');

unlink $htpasswd;
done_testing();
