# Tenant isolation. Two users A and B (role user), each with a client key,
# wallet top-ups (ledger rows), a voucher redemption and a payment top-up
# order: nothing of B's is readable or writable by A through any route A may
# call (the routes parsed out of the C route tables, B's ids put in every
# path parameter and in every id-like query or body member), and A's own
# routes show A's things. And an admin cannot act on root's user or keys,
# nor on another admin.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP ();
sub encode_json { return JSON::PP->new->canonical->encode($_[0]) }
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq login make_user new_ua db_exec db_value db_rows);
use NebulaTest qw(top_dir);

my @routes;
for my $f (glob(top_dir() . '/mod_nebula_relay/admin_*.c')) {
    open my $fh, '<', $f or die "$f: $!";
    my $src = do { local $/; <$fh> };
    while ($src =~ /\{\s*"(GET|POST|PUT|PATCH|DELETE)",\s*"(\/api[^"]*)",\s*(\w+),\s*([^}]*?)\s*\}/gs) {
        push @routes, { method => $1, path => $2, fn => $3, flags => $4 };
    }
}
@routes = grep { $_->{flags} !~ /ROUTE_PUBLIC/ } @routes;
cmp_ok(scalar @routes, '>=', 90, scalar(@routes) . ' authenticated routes');
sub own_account { my ($p) = @_; return $p =~ m{^/api/(self|auth)/} || $p eq '/api/user/topup' }

# ---- two tenants ---------------------------------------------------------------
my $batch = api_ok('POST', '/api/vouchers', { name => uniq('tb'), amount => 7, codes => 2 });
my ($res) = api('GET', "/api/vouchers/$batch->{id}/export");
my (undef, @lines) = split /\n/, $res->content;    # the first line is the header
my @codes = map { (split /,/)[0] } @lines;
is(scalar @codes, 2, 'two voucher codes');

my %t;
for my $n (qw(A B)) {
    my $u = make_user(role => 'user');
    my $mark = lc($n) . '-mark-' . uniq('');
    my $tok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
    my $key = api_ok('POST', '/api/keys', { user_id => $u->{id}, name => "$mark-key",
                                            remain_quota => 1000 });
    my $w = api_ok('POST', "/api/users/$u->{id}/topup", { amount => 1000, reason => "$mark-topup" });
    api_ok('POST', "/api/users/$u->{id}/redeem", { code => shift @codes });
    my $now = int(time * 1000);
    db_exec("INSERT INTO topup_orders (provider, trade_no, user_id, owner_kind, owner_id, "
            . "currency, amount_minor, quota, status, created_at) VALUES ('stripe', "
            . "'ngt_$mark', $u->{id}, 'user', $u->{id}, 'usd', 100, 1000, 'pending', $now)");
    my $ua = new_ua();
    my (undef, $j) = login($ua, $u->{username}, "pw-$u->{username}-secret");
    $t{$n} = { user => $u, mark => $mark, token => $tok, key => $key,
               account => $w->{account}{id} // $w->{account_id},
               ledger => [ map { $_->[0] } @{ db_rows("SELECT id FROM ledger WHERE account_id = "
                                                        . ($w->{account}{id} // 0)) } ],
               order => db_value("SELECT id FROM topup_orders WHERE trade_no = 'ngt_$mark'"),
               session => [ token => undef, ua => $ua,
                            headers => { 'X-CSRF-Token' => $j->{data}{csrf_token} } ] };
}
my ($A, $B) = @t{qw(A B)};
ok($B->{account} && @{ $B->{ledger} } >= 2 && $B->{order}, "B's wallet, ledger rows and order");

# what B's things look like in an answer
my @b_marks = ($B->{mark}, $B->{user}{username}, "ngt_$B->{mark}");
my @b_ids = grep { defined } ($B->{user}{id}, $B->{key}{id}, $B->{account}, @{ $B->{ledger} },
                              $B->{order});
sub shows_b {
    my ($text) = @_;
    return 0 unless defined $text;
    for my $m (@b_marks) { return "mark $m" if index($text, $m) >= 0 }
    return "user_id $B->{user}{id}" if $text =~ /"user_id"\s*:\s*$B->{user}{id}\b/;
    return "account_id $B->{account}" if $text =~ /"account_id"\s*:\s*$B->{account}\b/;
    return "owner_id $B->{user}{id}" if $text =~ /"owner_id"\s*:\s*$B->{user}{id}\b/;
    return 0;
}
# B's state, read by root, to compare after A's attempts
sub b_state {
    return encode_json([ api_ok('GET', "/api/users/$B->{user}{id}"),
                         api_ok('GET', "/api/keys/$B->{key}{id}"),
                         api_ok('GET', "/api/users/$B->{user}{id}/account"),
                         db_value("SELECT COUNT(*) FROM ledger WHERE account_id = $B->{account}"),
                         db_value("SELECT status FROM topup_orders WHERE id = $B->{order}") ]);
}
my $before = b_state();
my ($rc) = api('GET', "/api/keys?user_id=$B->{user}{id}");
ok(shows_b($rc->content), 'control: root\'s key list for B shows B\'s key (the check can see B)');

# A's own routes show A's things, not B's
my ($r2, $j2) = api('GET', '/api/self/ledger', undef, token => $A->{token});
ok($r2->code == 200 && index($r2->content, $A->{mark}) >= 0 && !shows_b($r2->content),
   'A\'s ledger: A\'s rows only');
($r2) = api('GET', '/api/self/topups', undef, token => $A->{token});
ok($r2->code == 200 && index($r2->content, "ngt_$A->{mark}") >= 0 && !shows_b($r2->content),
   'A\'s top-up orders: A\'s only');

# ---- every route A may call, with B's ids everywhere ------------------------------
my @leaks;
my @refused;
my @params = qw(id user_id account_id key_id owner_id org_id token_id order_id);
for my $how (qw(token session)) {
    my @cred = $how eq 'token' ? (token => $A->{token}) : @{ $A->{session} };
    for my $rt (@routes) {
        next if $rt->{path} =~ m{^/api/auth/(logout|password)$};    # A's own, no ids
        # outside A's own account one try per route is enough: all of it is 403
        for my $id (own_account($rt->{path}) ? @b_ids : $b_ids[0]) {
            (my $path = $rt->{path}) =~ s/\{id\}/$id/g;
            $path =~ s/\{name\}/default/g;
            $path =~ s/\{uuid\}/00000000-0000-4000-8000-000000000000/g;
            my @queries = $rt->{method} eq 'GET' && own_account($rt->{path})
                ? ('', map { "?$_=$id" } @params) : ('');
            for my $q (@queries) {
                my $body = $rt->{method} eq 'GET' ? undef
                         : { (map { $_ => $id + 0 } @params), code => 'NOPE', amount => 1 };
                my ($r, $j) = api($rt->{method}, "$path$q", $body, @cred);
                my $name = "$how $rt->{method} $path$q";
                if (!own_account($rt->{path})) {
                    push @refused, "$name:" . $r->code unless $r->code == 403;
                    next;
                }
                if ($r->is_success and my $why = shows_b($r->content)) {
                    push @leaks, "$name ($why)";
                }
            }
        }
    }
}
is("@refused", '', 'A gets 403 on every route outside its own account, B\'s ids or not');
is("@leaks", '', 'no answer to A holds anything of B\'s');
is(b_state(), $before, 'B\'s user, key, wallet, ledger and order are unchanged');

# ---- an admin and root's things ---------------------------------------------------
my $root = make_user(role => 'root');
my $rkey = api_ok('POST', '/api/keys', { user_id => $root->{id}, name => uniq('rkey'),
                                         remain_quota => 10 });
my $adm = make_user(role => 'admin');
my $adm2 = make_user(role => 'admin');
my $atok = api_ok('POST', "/api/users/$adm->{id}/access-token")->{access_token};
my $rbefore = encode_json([ api_ok('GET', "/api/users/$root->{id}"),
                            api_ok('GET', "/api/keys/$rkey->{id}") ]);
for my $c (['PATCH', "/api/users/$root->{id}", { display_name => 'pwned' }],
           ['DELETE', "/api/users/$root->{id}"],
           ['PUT', "/api/users/$root->{id}/password", { password => 'pwned-password-1' }],
           ['POST', "/api/users/$root->{id}/access-token"],
           ['DELETE', "/api/users/$root->{id}/access-token"],
           ['PATCH', "/api/keys/$rkey->{id}", { name => 'pwned' }],
           ['DELETE', "/api/keys/$rkey->{id}"],
           ['POST', '/api/keys', { user_id => $root->{id}, name => uniq('k'), remain_quota => 1 }],
           ['PATCH', "/api/users/$adm2->{id}", { display_name => 'pwned' }],
           ['PUT', "/api/users/$adm2->{id}/password", { password => 'pwned-password-1' }],
           ['PATCH', "/api/users/$B->{user}{id}", { role => 'root' }],
           ['POST', '/api/users', { username => uniq('r'), password => 'pwned-password-1',
                                    role => 'root' }]) {
    my ($r, $j) = api($c->[0], $c->[1], $c->[2], token => $atok);
    is($r->code . ' ' . ($j->{error}{code} // ''), '403 forbidden',
       "admin: $c->[0] $c->[1]" . ($c->[2] ? ' ' . encode_json($c->[2]) : '') . ' is 403');
}
is(encode_json([ api_ok('GET', "/api/users/$root->{id}"), api_ok('GET', "/api/keys/$rkey->{id}") ]),
   $rbefore, 'root\'s user and key are unchanged');
is(db_value("SELECT role FROM users WHERE id = $B->{user}{id}"), 'user', 'B is still a user');

done_testing();
