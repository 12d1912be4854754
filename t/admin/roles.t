# The role matrix, built from the route tables parsed out of the C source
# (mod_nebula_relay/admin_*.c: {"METHOD", "/api/...", handler, FLAGS}), for
# real users signed in both with an access token and with a session:
#  - operator: every GET an admin may use but those that show secrets
#    (voucher code export) is something other than 403; every write is 403
#    forbidden, except its own account's (/api/self/*, /api/auth/*, new-api's
#    /api/user/topup) and the policy sandbox (POST /api/policies/test, which
#    changes nothing);
#  - user: 403 on every route outside /api/self/* and /api/auth/* (and
#    /api/user/topup, new-api's self top-up); its own routes answer;
#  - admin: nothing is 403 for its role.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq login make_user new_ua);
use NebulaTest qw(top_dir);

# ---- the route tables -------------------------------------------------------
my @routes;
for my $f (glob(top_dir() . '/mod_nebula_relay/admin_*.c')) {
    open my $fh, '<', $f or die "$f: $!";
    my $src = do { local $/; <$fh> };
    while ($src =~ /\{\s*"(GET|POST|PUT|PATCH|DELETE)",\s*"(\/api[^"]*)",\s*(\w+),\s*([^}]*?)\s*\}/gs) {
        push @routes, { method => $1, path => $2, fn => $3, flags => $4 };
    }
}
@routes = grep { $_->{flags} !~ /ROUTE_PUBLIC/ } @routes;
cmp_ok(scalar @routes, '>=', 90, scalar(@routes) . ' authenticated routes in the tables');
ok((grep { $_->{path} eq '/api/vouchers/{id}/export' } @routes), 'the export route is parsed');

sub own_account { my ($p) = @_; return $p =~ m{^/api/(self|auth)/} || $p eq '/api/user/topup' }
sub secret_read { my ($rt) = @_; return $rt->{method} eq 'GET' && $rt->{path} eq '/api/vouchers/{id}/export' }
sub sandbox     { my ($rt) = @_; return $rt->{method} eq 'POST' && $rt->{path} eq '/api/policies/test' }

sub fill {
    my ($p) = @_;
    $p =~ s/\{id\}/987654321/g;
    $p =~ s/\{name\}/no-such-name/g;
    $p =~ s/\{uuid\}/00000000-0000-4000-8000-000000000000/g;
    return $p;
}

# ---- the callers: each role with an access token and with a session ---------
my %who;
for my $role (qw(admin operator user)) {
    my $u = make_user(role => $role);
    my $tok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
    my $ua = new_ua();
    my ($res, $j) = login($ua, $u->{username}, "pw-$u->{username}-secret");
    die "sign-in of $role failed: " . $res->code . "\n" unless $res->code == 200;
    $who{$role} = { token => [ token => $tok ],
                    session => [ token => undef, ua => $ua,
                                 headers => { 'X-CSRF-Token' => $j->{data}{csrf_token} } ] };
}

sub call {
    my ($role, $how, $rt) = @_;
    my ($res, $j) = api($rt->{method}, fill($rt->{path}), $rt->{method} eq 'GET' ? undef : {},
                        @{ $who{$role}{$how} });
    return ($res->code, $j->{error}{code} // '');
}

for my $how (qw(token session)) {
    # ---- operator ----
    my (@bad_read, @bad_write, @ok_write);
    for my $rt (@routes) {
        next if own_account($rt->{path}) && $rt->{method} ne 'GET';   # would act on itself
        my ($code, $err) = call('operator', $how, $rt);
        my $name = "$rt->{method} $rt->{path}";
        if ($rt->{method} eq 'GET') {
            if (secret_read($rt)) {
                push @bad_read, "$name:$code" unless $code == 403 && $err eq 'forbidden';
            }
            elsif ($code == 403 || $code == 401 || $code >= 500) {
                push @bad_read, "$name:$code/$err";
            }
        }
        elsif (sandbox($rt)) {
            push @ok_write, "$name:$code" if $code == 403 || $code == 401;
        }
        else {
            push @bad_write, "$name:$code/$err" unless $code == 403 && $err eq 'forbidden';
        }
    }
    is("@bad_read", '', "operator ($how): every GET but the secret ones answers, "
                        . 'the code export is 403');
    is("@bad_write", '', "operator ($how): every write is 403 forbidden");
    is("@ok_write", '', "operator ($how): the policy sandbox is allowed");

    # ---- user ----
    my (@bad_user, @bad_self);
    for my $rt (@routes) {
        my $name = "$rt->{method} $rt->{path}";
        if (own_account($rt->{path})) {
            next unless $rt->{method} eq 'GET';
            my ($code, $err) = call('user', $how, $rt);
            push @bad_self, "$name:$code/$err" if $code == 403 || $code == 401 || $code >= 500;
            next;
        }
        my ($code, $err) = call('user', $how, $rt);
        push @bad_user, "$name:$code/$err" unless $code == 403 && $err eq 'forbidden';
    }
    is("@bad_user", '', "user ($how): 403 forbidden outside /api/self and /api/auth");
    is("@bad_self", '', "user ($how): its own GET routes answer");

    # ---- admin: reads only (its writes are the other tests') ----
    my @bad_admin;
    for my $rt (grep { $_->{method} eq 'GET' } @routes) {
        my ($code, $err) = call('admin', $how, $rt);
        push @bad_admin, "$rt->{method} $rt->{path}:$code/$err"
            if $code == 403 || $code == 401 || $code >= 500;
    }
    is("@bad_admin", '', "admin ($how): no GET is refused");
}

# ---- a few exact answers ------------------------------------------------------
my ($res, $j) = api('HEAD', '/api/users', undef, @{ $who{operator}{token} });
is($res->code, 200, 'operator: HEAD like GET');
($res, $j) = api('GET', '/api/users', undef, @{ $who{operator}{token} });
is($res->code, 200, 'operator: GET /api/users 200');
ok(ref $j->{data} eq 'ARRAY' && @{ $j->{data} } >= 3, 'operator sees the user list');
($res, $j) = api('POST', '/api/groups', { name => uniq('g') }, @{ $who{operator}{token} });
is($j->{error}{message}, 'this route needs the role admin or root', 'operator write: message');
my $batch = api_ok('POST', '/api/vouchers', { name => uniq('vb'), amount => 5, codes => 1 });
($res, $j) = api('GET', "/api/vouchers/$batch->{id}/export", undef, @{ $who{operator}{token} });
is($res->code . ' ' . $j->{error}{code}, '403 forbidden', 'operator: no code export');
like($j->{error}{message}, qr/secrets/, 'message: the route shows secrets');
($res) = api('GET', "/api/vouchers/$batch->{id}", undef, @{ $who{operator}{token} });
is($res->code, 200, 'operator: the batch itself (no codes) is readable');
($res) = api('GET', "/api/vouchers/$batch->{id}/export");
is($res->code, 200, 'root exports the codes (still there after the operator\'s try)');
# operator writes to its own account
($res, $j) = api('POST', '/api/self/redeem', { code => 'NOPE-NOPE' }, @{ $who{operator}{token} });
isnt($res->code, 403, 'operator: /api/self writes are allowed (' . $res->code . ')');

done_testing();
