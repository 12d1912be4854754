# Admin sessions: "__Host-" cookie names when the cookies are Secure (https,
# or NebulaAdminCookieSecure On), the idle and absolute limits and the
# renewal of the cookie as it is used, GET /api/auth/me's csrf_token and
# expiry, and the CSRF token required on every state-changing route of every
# area (the routes parsed out of the C route tables).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use HTTP::Request;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq login make_user new_ua);
use NebulaTest qw(top_dir);

# ---- helpers --------------------------------------------------------------
sub port_of {
    my ($vhost) = @_;
    Apache::TestRequest::module($vhost);
    my $hp = Apache::TestRequest::hostport();
    Apache::TestRequest::module('default');
    return (split /:/, $hp)[-1];
}
my %base = (plain => 'http://127.0.0.1:' . port_of('nebula_admin'),
            tls   => 'https://localhost:' . port_of('nebula_admin_tls'),
            short => 'http://127.0.0.1:' . port_of('nebula_admin_short'));
# no cookie jar: every cookie is sent by hand, so nothing is sent by accident
my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 1,
                             ssl_opts => { verify_hostname => 0, SSL_verify_mode => 0 });

# req(VHOST, METHOD, PATH, BODY, headers...) -> (response, json)
sub req {
    my ($vh, $method, $path, $body, %h) = @_;
    my $r = HTTP::Request->new($method, $base{$vh} . $path);
    if (defined $body) {
        $r->content(encode_json($body));
        $r->header('Content-Type' => 'application/json');
    }
    $r->header('Content-Length' => length($r->content // ''));
    $r->header($_ => $h{$_}) for keys %h;
    my $res = $ua->request($r);
    return ($res, eval { decode_json($res->content) });
}

# The Set-Cookie headers of a response by cookie name: name => full header.
sub set_cookies {
    my ($res) = @_;
    return map { /^([^=]+)=/ ? ($1 => $_) : () } $res->header('Set-Cookie');
}
sub cookie_value { my ($sc) = @_; return $sc =~ /^[^=]+=([^;]*)/ ? $1 : undef }

sub sign_in {
    my ($vh, $user) = @_;
    return req($vh, 'POST', '/api/auth/login',
               { username => $user->{username}, password => "pw-$user->{username}-secret" });
}

my $adm = make_user(role => 'admin');

# ---- __Host- cookies over https -------------------------------------------
my ($res, $j) = sign_in('tls', $adm);
is($res->code, 200, 'https: sign-in 200');
my %sc = set_cookies($res);
is_deeply([sort keys %sc], ['__Host-nebula_csrf', '__Host-nebula_session'],
          'https: the cookies are named __Host-nebula_session and __Host-nebula_csrf');
my $sess = $sc{'__Host-nebula_session'};
like($sess, qr/; Path=\/(;|$)/, 'session cookie: Path=/');
like($sess, qr/; Secure(;|$)/, 'session cookie: Secure');
like($sess, qr/; HttpOnly(;|$)/, 'session cookie: HttpOnly');
like($sess, qr/; SameSite=Strict(;|$)/, 'session cookie: SameSite=Strict');
unlike($sess, qr/Domain=/i, 'session cookie: no Domain');
like($sc{'__Host-nebula_csrf'}, qr/; Secure(;|$)/, 'CSRF cookie: Secure');
unlike($sc{'__Host-nebula_csrf'}, qr/HttpOnly|Domain=/i, 'CSRF cookie: readable, no Domain');
is(cookie_value($sc{'__Host-nebula_csrf'}), $j->{data}{csrf_token},
   'CSRF cookie holds the csrf_token of the answer');
my $tls_value = cookie_value($sess);
my $tls_csrf = $j->{data}{csrf_token};

($res, $j) = req('tls', 'GET', '/api/auth/me', undef,
                 Cookie => "__Host-nebula_session=$tls_value");
is($res->code, 200, 'https: the __Host- cookie signs in');
is($j->{data}{csrf_token}, $tls_csrf, 'me: csrf_token of the session');
($res, $j) = req('tls', 'GET', '/api/auth/me', undef, Cookie => "nebula_session=$tls_value");
is($res->code . ' ' . $j->{error}{code}, '401 missing_credentials',
   'https: the plain cookie name is not accepted');
($res) = req('tls', 'POST', '/api/groups', { name => uniq('g') },
             Cookie => "__Host-nebula_session=$tls_value", 'X-CSRF-Token' => $tls_csrf);
is($res->code, 201, 'https: a write with the session and its CSRF token');

# plain http keeps today's names and takes no __Host- cookie
($res, $j) = sign_in('plain', $adm);
%sc = set_cookies($res);
is_deeply([sort keys %sc], ['nebula_csrf', 'nebula_session'], 'http: the plain names');
unlike($sc{nebula_session}, qr/Secure/, 'http: not Secure');
my $plain_value = cookie_value($sc{nebula_session});
($res, $j) = req('plain', 'GET', '/api/auth/me', undef,
                 Cookie => "__Host-nebula_session=$plain_value");
is($res->code . ' ' . $j->{error}{code}, '401 missing_credentials',
   'http: a __Host- cookie is not accepted');
($res) = req('plain', 'GET', '/api/auth/me', undef, Cookie => "nebula_session=$plain_value");
is($res->code, 200, 'http: the plain cookie signs in');

# ---- /api/auth/me: csrf_token and expiry ------------------------------------
my $t0 = time;
($res, $j) = sign_in('plain', $adm);
my $login = $j->{data};
($res, $j) = req('plain', 'GET', '/api/auth/me', undef,
                 Cookie => 'nebula_session=' . cookie_value(+{ set_cookies($res) }->{nebula_session}));
is($j->{data}{auth}, 'session', 'me: via session');
is($j->{data}{csrf_token}, $login->{csrf_token}, 'me: the csrf_token sign-in gave');
is($j->{data}{expires_at}, $login->{expires_at}, 'me: expires_at as at sign-in');
cmp_ok(abs($j->{data}{expires_at} - ($t0 * 1000 + 12 * 3600 * 1000)), '<', 5000,
       'default absolute limit: 12 h after sign-in');
cmp_ok(abs($j->{data}{idle_expires_at} - ($t0 * 1000 + 30 * 60 * 1000)), '<', 5000,
       'default idle limit: 30 min after the last use');
($res, $j) = api('GET', '/api/auth/me');
ok(exists $j->{data}{csrf_token} && !defined $j->{data}{csrf_token},
   'me with the admin token: csrf_token null');
ok(!defined $j->{data}{expires_at} && !defined $j->{data}{idle_expires_at},
   'me with the admin token: no expiry');

# ---- idle and absolute limits (idle 2s, TTL 5s, __Host- over http) ---------
$t0 = time;
($res, $j) = sign_in('short', $adm);
%sc = set_cookies($res);
ok($sc{'__Host-nebula_session'}, 'NebulaAdminCookieSecure On: __Host- names over http');
like($sc{'__Host-nebula_session'}, qr/; Secure(;|$)/, 'NebulaAdminCookieSecure On: Secure');
like($sc{'__Host-nebula_session'}, qr/Max-Age=5;/, 'Max-Age is the absolute limit (5 s)');
my $first = cookie_value($sc{'__Host-nebula_session'});
my $csrf = $j->{data}{csrf_token};
cmp_ok($j->{data}{idle_expires_at} - $j->{data}{expires_at}, '==', -3000,
       'sign-in: idle end 2 s, absolute end 5 s after it');
$t0 = $j->{data}{expires_at} / 1000 - 5;    # the sign-in, by the server's clock

sleep(1.2 - (time - $t0));
($res, $j) = req('short', 'GET', '/api/auth/me', undef,
                 Cookie => "__Host-nebula_session=$first");
is($res->code, 200, 'used within the idle time: 200');
%sc = set_cookies($res);
my $second = cookie_value($sc{'__Host-nebula_session'} // '');
ok($second && $second ne $first, 'activity re-issues the session cookie');
is(cookie_value($sc{'__Host-nebula_csrf'} // ''), $csrf, 'the CSRF token stays the same');
is($j->{data}{csrf_token}, $csrf, 'me: same csrf_token after renewal');
my ($maxage) = ($sc{'__Host-nebula_session'} // '') =~ /Max-Age=(\d+)/;
ok(defined $maxage && $maxage >= 3 && $maxage <= 4,
   "the renewed cookie ends with the absolute limit (Max-Age $maxage)");
cmp_ok($j->{data}{idle_expires_at}, '>', $t0 * 1000 + 2900, 'idle end moved on');

($res) = req('short', 'GET', '/api/auth/me', undef, Cookie => "__Host-nebula_session=$second");
ok(!+{ set_cookies($res) }->{'__Host-nebula_session'},
   'no new cookie while the last one is fresh (under a tenth of the idle time)');

sleep(2.4 - (time - $t0));    # 2.4 s since sign-in: the first cookie is idle, the second is not
($res, $j) = req('short', 'GET', '/api/auth/me', undef, Cookie => "__Host-nebula_session=$first");
is($res->code . ' ' . $j->{error}{code}, '401 session_expired',
   'a cookie unused for more than the idle time: 401 session_expired');
($res, $j) = req('short', 'POST', '/api/groups', { name => uniq('g') },
                 Cookie => "__Host-nebula_session=$second", 'X-CSRF-Token' => $csrf);
is($res->code, 201, 'the renewed cookie works past the first one\'s idle end');
my $third = cookie_value(+{ set_cookies($res) }->{'__Host-nebula_session'} // '') || $second;

my $last = $third;
while (time - $t0 < 4.6) {    # keep it busy up to the absolute end
    sleep 0.8;
    ($res) = req('short', 'GET', '/api/auth/me', undef, Cookie => "__Host-nebula_session=$last");
    last unless $res->code == 200;
    $last = cookie_value(+{ set_cookies($res) }->{'__Host-nebula_session'} // '') || $last;
}
is($res->code, 200, 'a busy session lives up to the absolute limit');
sleep(5.3 - (time - $t0)) if time - $t0 < 5.3;
($res, $j) = req('short', 'GET', '/api/auth/me', undef, Cookie => "__Host-nebula_session=$last");
is($res->code . ' ' . ($j->{error}{code} // ''), '401 session_expired',
   'past the absolute limit: 401 session_expired, however busy')
    or diag(sprintf('%.3f s after sign-in: %s', time - $t0, $res->as_string));

# ---- CSRF on every state-changing route -----------------------------------
# The route tables: {"METHOD", "/api/...", handler, FLAGS} in mod_nebula_relay.
my @routes;
for my $f (glob(top_dir() . '/mod_nebula_relay/admin_*.c')) {
    open my $fh, '<', $f or die "$f: $!";
    my $src = do { local $/; <$fh> };
    while ($src =~ /\{\s*"(GET|POST|PUT|PATCH|DELETE)",\s*"(\/api[^"]*)",\s*(\w+),\s*([^}]*?)\s*\}/gs) {
        push @routes, { method => $1, path => $2, fn => $3, flags => $4 };
    }
}
my @writes = grep { $_->{method} ne 'GET' && $_->{flags} !~ /ROUTE_PUBLIC/ } @routes;
cmp_ok(scalar @writes, '>=', 50, scalar(@writes) . ' state-changing routes in the tables');
for my $area (qw(/api/users /api/groups /api/keys /api/channels /api/billing/accounts
                 /api/billing/prices /api/billing/plans /api/vouchers /api/self/topup
                 /api/policies /api/rate-limits /api/orgs /api/auth/logout)) {
    ok((grep { index($_->{path}, $area) == 0 } @writes), "the tables have writes under $area");
}

sub fill {
    my ($p) = @_;
    $p =~ s/\{id\}/987654321/g;
    $p =~ s/\{name\}/no-such-name/g;
    $p =~ s/\{uuid\}/00000000-0000-4000-8000-000000000000/g;
    return $p;
}
my ($ra, $ja) = sign_in('plain', $adm);
my $cookie_a = 'nebula_session=' . cookie_value(+{ set_cookies($ra) }->{nebula_session});
my $csrf_a = $ja->{data}{csrf_token};
my $adm2 = make_user(role => 'admin');
my ($rb, $jb) = sign_in('plain', $adm2);
my $csrf_b = $jb->{data}{csrf_token};
isnt($csrf_a, $csrf_b, 'two sessions, two CSRF tokens');

for my $rt (@writes) {
    my $path = fill($rt->{path});
    my @bad = ([none => ()], [wrong => ('X-CSRF-Token' => 'A' x 32)],
               ['another session\'s' => ('X-CSRF-Token' => $csrf_b)],
               [empty => ('X-CSRF-Token' => '')]);
    my @got;
    for my $b (@bad) {
        my ($what, @h) = @$b;
        my ($r, $jj) = req('plain', $rt->{method}, $path, {}, Cookie => $cookie_a, @h);
        push @got, "$what:" . $r->code . '/' . ($jj->{error}{code} // '-')
            unless $r->code == 403 && ($jj->{error}{code} // '') eq 'csrf_failed';
    }
    is("@got", '', "$rt->{method} $rt->{path}: 403 csrf_failed without, with a wrong, "
                   . 'an empty or another session\'s token');
}
# the same session with its own token passes the check (and the route runs)
($res, $j) = req('plain', 'PATCH', '/api/groups/no-such-name', { description => 'x' },
                 Cookie => $cookie_a, 'X-CSRF-Token' => $csrf_a);
is($res->code . ' ' . ($j->{error}{code} // ''), '404 not_found',
   'with its own token the request reaches the route');

done_testing();
