# Tenant isolation, generated from the route table (reliability targets
# T16). The operations of docs/admin-api.yaml are the routes of the code
# (t/admin/spec_routes.t holds them equal), and the spec names each path
# parameter ({user_id}, {key_id}, {group}, ...). For EVERY operation with a
# path parameter and every method, user A (role user; with an access token
# and with a session) calls it with user B's objects in every parameter: one
# object of each kind the parameters name, made for B (B's user, client key,
# wallet account, request log, subscription, cap, rate limit, top-up order,
# organisation, ...) or named after B (channel, channel key, group, policy,
# plan, voucher batch, redemption code). Each answer is 403 or 404 and holds
# nothing of B's (names, the key, B's ids as id members); afterwards every
# one of B's objects reads the same as before. A parameter whose kind this
# test does not know FAILS the test (teach %KINDS below how to make one):
# new routes are covered, never skipped. The guessed neighbours of B's key
# id get 404 on A's own key routes too.
# And an admin against root's objects: every write route that takes a user
# or client-key id is 403 forbidden with root's ids, but those %ADMIN_MAY
# lists (crediting a wallet, which any admin may do for any user), and
# root's objects are unchanged. (t/admin/tenant.t covers the query and body
# members of A's own routes and the list routes; t/admin/roles.t the role
# matrix.)
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP ();
use FindBin;
use lib "$FindBin::Bin/../lib", "$FindBin::Bin/../admin";
use AdminT qw(api api_ok uniq login make_user new_ua db_exec db_value db_rows);
use NebulaAdmin ();
use NebulaSpec qw(spec spec_operations);
sub canon { return JSON::PP->new->canonical->allow_nonref->encode($_[0]) }

# ---- the operations with path parameters -------------------------------------------
my @ops = grep { $_->{path} =~ /\{/ } spec_operations(spec());
cmp_ok(scalar @ops, '>=', 50, scalar(@ops) . ' operations take a path parameter');
sub params_of { my ($path) = @_; return $path =~ /\{([^}\/]+)\}/g }
# the kind of object a parameter names (the path decides for key_id)
sub kind_of {
    my ($path, $param) = @_;
    return 'chankey' if $param eq 'key_id' && $path =~ m{^/api/channels/};
    my %k = (user_id => 'user', key_id => 'key', channel_id => 'channel', group => 'group',
             request_id => 'log', policy => 'policy', org_id => 'org', account_id => 'account',
             cap_id => 'cap', plan_id => 'plan', subscription_id => 'subscription',
             limit_id => 'limit', order_id => 'order', batch_id => 'batch', code_id => 'code');
    return $k{$param};
}
my @unknown = map { my $o = $_; map { "$o->{method} $o->{path}: {$_}" }
                    grep { !kind_of($o->{path}, $_) } params_of($o->{path}) } @ops;
is("@unknown", '', 'every path parameter is of a kind this test can fill')
    or diag('teach t/security/tenant_routes.t (kind_of, %KINDS) to make an object of B for: '
            . join('; ', @unknown));

# ---- B's objects ----------------------------------------------------------------------
my $mark = 'bmark' . uniq('');
my $B = make_user(role => 'user', username => "$mark-user");
my $bkey = api_ok('POST', '/api/keys', { user_id => $B->{id}, name => "$mark-key",
                                         remain_quota => 100000 });
my $wallet = api_ok('POST', "/api/users/$B->{id}/topup", { amount => 1000, reason => "$mark-topup" });
my ($chid, $chtag) = NebulaAdmin::new_channel(models => ["$mark-model"], name => "$mark-ch");
my $chan = api_ok('GET', "/api/channels/$chid");
my $plan = api_ok('POST', '/api/billing/plans', { name => "$mark-plan", quota_per_period => 100000 });
my $rname = 'r' . substr(uniq(''), -15);
my ($res, $j) = api('POST', '/api/redemption/', { name => $rname, count => 1, quota => 5 });
my $code_of = sub {
    my (undef, $l) = api('GET', '/api/redemption/?p=1&page_size=100');
    my ($it) = grep { $_->{name} eq $rname } @{ $l->{data}{items} || [] };
    return $it;
};
# kind => B's object: the value that goes in the path, and how root reads it
my %KINDS = (
    user => [ $B->{id}, "/api/users/$B->{id}" ],
    key => [ $bkey->{id}, "/api/keys/$bkey->{id}" ],
    account => [ $wallet->{account}{id} // $wallet->{account_id},
                 '/api/billing/accounts/' . ($wallet->{account}{id} // $wallet->{account_id}) ],
    channel => [ $chid, "/api/channels/$chid" ],
    chankey => [ $chan->{keys}[0]{id}, "/api/channels/$chid" ],
    group => [ api_ok('POST', '/api/groups', { name => "$mark-g" })->{name}, "/api/groups/$mark-g" ],
    policy => [ api_ok('POST', '/api/policies', {
                    name => "$mark-p", enabled => JSON::PP::false,
                    match => [{ type => 'keywords', values => ["$mark-word"] }],
                    action => { type => 'block', message => 'no' } })->{name},
                "/api/policies/$mark-p" ],
    org => [ api_ok('POST', '/api/orgs', { name => "$mark-o" })->{id} ],
    cap => [ api_ok('POST', '/api/billing/caps', { subject_kind => 'key', subject_id => $bkey->{id} + 0,
                                                   limit => 1000000, metric => 'requests',
                                                   period => 'day' })->{id} ],
    plan => [ $plan->{id}, "/api/billing/plans/$plan->{id}" ],
    subscription => [ api_ok('POST', '/api/billing/subscriptions',
                             { plan_id => $plan->{id}, subject_kind => 'user',
                               subject_id => $B->{id} + 0 })->{id} ],
    limit => [ api_ok('POST', '/api/rate-limits', { scope_kind => 'key', scope_value => "$bkey->{id}",
                                                    rpm => 1000 })->{id} ],
    batch => [ api_ok('POST', '/api/vouchers', { name => "$mark-v", amount => 7, codes => 2 })->{id} ],
    code => [ ($code_of->() // {})->{id} ],
);
$KINDS{org}[1] = "/api/orgs/$KINDS{org}[0]";
$KINDS{cap}[1] = "/api/billing/caps/$KINDS{cap}[0]";
$KINDS{subscription}[1] = "/api/billing/subscriptions/$KINDS{subscription}[0]";
$KINDS{limit}[1] = "/api/rate-limits/$KINDS{limit}[0]";
$KINDS{batch}[1] = "/api/vouchers/$KINDS{batch}[0]";
api_ok('PATCH', "/api/users/$B->{id}", { org_id => $KINDS{org}[0] + 0 });
# a top-up order of B's (as the payment routes store one)
my $now = int(time * 1000);
db_exec("INSERT INTO topup_orders (provider, trade_no, user_id, owner_kind, owner_id, currency, "
        . "amount_minor, quota, status, created_at) VALUES ('stripe', 'ngt_$mark', $B->{id}, 'user', "
        . "$B->{id}, 'usd', 100, 1000, 'pending', $now)");
my $order = db_value("SELECT id FROM topup_orders WHERE trade_no = 'ngt_$mark'");
$KINDS{order} = [ $order, "/api/topups/$order" ];
# a request of B's key: its request-log row
{
    my $r = NebulaAdmin::chat($bkey->{key}, { model => "$mark-model",
                                              messages => [{ role => 'user', content => 'hi' }] });
    die "B's request: " . $r->code . ' ' . $r->content . "\n" unless $r->code == 200;
    my $rows = NebulaAdmin::key_logs($bkey->{id}, 1);
    my $rid = $rows->[0]{id};
    $KINDS{log} = [ $rid, "/api/logs/$rid" ];
}
my @missing = grep { !defined $KINDS{$_}[0] } sort keys %KINDS;
is("@missing", '', 'B has one object of every kind');

# B's objects as root reads them (the redemption code through new-api's list,
# the ledger through its row count)
sub b_state {
    my %s = map { $_ => ($KINDS{$_}[1] ? canon(api_ok('GET', $KINDS{$_}[1])) : '') } sort keys %KINDS;
    $s{code} = canon($code_of->());
    $s{ledger} = db_value("SELECT COUNT(*) FROM ledger WHERE account_id = $KINDS{account}[0]");
    return \%s;
}
my $before = b_state();
ok(index($before->{user}, "$mark-user") >= 0 && index($before->{key}, "$mark-key") >= 0,
   'control: root reads B\'s objects, and they carry B\'s marks');

# what of B's may not be in an answer to A
my @b_ids = map { $KINDS{$_}[0] } grep { $KINDS{$_}[0] =~ /^\d+$/ } sort keys %KINDS;
sub shows_b {
    my ($text) = @_;
    return '' unless defined $text && length $text;
    for my $m ($mark, $bkey->{key}, $B->{username}, $KINDS{log}[0]) {
        return "mark '$m'" if index($text, $m) >= 0;
    }
    for my $k (qw(user key account channel chankey org cap plan subscription limit batch code order)) {
        my $id = $KINDS{$k}[0];
        return "\"id\": $id ($k)" if $text =~ /"id"\s*:\s*"?$id"?[,}]/;
    }
    return "\"user_id\": $B->{id}" if $text =~ /"(user_id|owner_id|subject_id)"\s*:\s*"?$B->{id}"?[,}]/;
    return '';
}

# ---- user A ---------------------------------------------------------------------------
my $A = make_user(role => 'user');
my $akey = api_ok('POST', '/api/keys', { user_id => $A->{id}, name => uniq('akey'), remain_quota => 10 });
my $atok = api_ok('POST', "/api/users/$A->{id}/access-token")->{access_token};
my $aua = new_ua();
my (undef, $lj) = login($aua, $A->{username}, "pw-$A->{username}-secret");
my %as = (token => [ token => $atok ],
          session => [ token => undef, ua => $aua,
                       headers => { 'X-CSRF-Token' => $lj->{data}{csrf_token} } ]);
ok($lj->{data}{csrf_token}, 'A signed in (session and CSRF token)');
# control: A's own key through the same routes answers (the 404s below are
# isolation, not a broken route)
($res) = api('GET', "/api/self/keys/$akey->{id}", undef, @{ $as{token} });
is($res->code, 200, 'control: A reads its own key through /api/self/keys/{key_id}');

# a body that would change something, were the route to let the caller in:
# a valid one where the route checks its fields before whose object it is
my %WRITE_BODY = ('PATCH /api/users/{user_id}' => { display_name => 'pwned' },
                  'PUT /api/users/{user_id}/password' => { password => 'pwned-password-1' },
                  'PATCH /api/keys/{key_id}' => { name => 'pwned' },
                  'PATCH /api/self/keys/{key_id}' => { name => 'pwned' });
sub body_for {
    my ($op) = @_;
    return undef if $op->{method} eq 'GET' || $op->{method} eq 'DELETE';
    return $WRITE_BODY{"$op->{method} $op->{path}"} if $WRITE_BODY{"$op->{method} $op->{path}"};
    return { name => "pwned-$mark", display_name => 'pwned', description => 'pwned',
             status => 'disabled', amount => 1, reason => 'pwned', code => 'NOPE-NOPE',
             password => 'pwned-password-1', weight => 9 }
        if $op->{method} eq 'POST' || $op->{method} eq 'PUT';
    return { name => "pwned-$mark" } if $op->{path} =~ m{^/api/self/};
    return { display_name => 'pwned', description => 'pwned', status => 'disabled' };
}
sub fill {
    my ($path, %ids) = @_;
    $path =~ s/\{([^}\/]+)\}/$ids{ kind_of($path, $1) } \/\/ "{$1}"/ge;
    return $path;
}

my (@bad, @leaks, %covered);
for my $how (qw(token session)) {
    for my $op (@ops) {
        next if grep { !kind_of($op->{path}, $_) } params_of($op->{path});
        my $path = fill($op->{path}, map { $_ => $KINDS{$_}[0] } keys %KINDS);
        my ($r, $jj) = api($op->{method}, $path, body_for($op), @{ $as{$how} });
        my $name = "$how $op->{method} $path";
        $covered{"$op->{method} $op->{path}"} = 1;
        push @bad, "$name:" . $r->code unless $r->code == 403 || $r->code == 404;
        my $why = shows_b($r->content);
        push @leaks, "$name ($why)" if $why;
    }
}
is(scalar(keys %covered), scalar(@ops), 'every operation with a path parameter was called');
is("@bad", '', 'A gets 403 or 404 on every one, with B\'s objects in the path');
is("@leaks", '', 'and no answer holds anything of B\'s');

# guessed ids: the neighbours of B's key on A's own key routes
my @guess;
for my $id (grep { $_ > 0 && $_ != $akey->{id} } map { $bkey->{id} + $_ } -2 .. 2) {
    for my $m (qw(GET PATCH DELETE)) {
        my ($r) = api($m, "/api/self/keys/$id", $m eq 'PATCH' ? { name => "pwned-$mark" } : undef,
                      @{ $as{token} });
        push @guess, "$m $id:" . $r->code unless $r->code == 404;
    }
}
is("@guess", '', 'A\'s key routes: 404 for the ids next to B\'s key too');

my $after = b_state();
my @changed = grep { $before->{$_} ne $after->{$_} } sort keys %$before;
is("@changed", '', 'every one of B\'s objects is unchanged');

# ---- an admin against root's objects ----------------------------------------------------
# write routes taking a user or client-key id that an admin may use on any
# user, root included: crediting a wallet (not called here)
my %ADMIN_MAY = ('POST /api/users/{user_id}/topup' => 'credits a wallet',
                 'POST /api/users/{user_id}/redeem' => 'redeems a voucher into a wallet');
my $root = make_user(role => 'root');
my $rkey = api_ok('POST', '/api/keys', { user_id => $root->{id}, name => uniq('rkey'),
                                         remain_quota => 10 });
my $adm = make_user(role => 'admin');
my $admtok = api_ok('POST', "/api/users/$adm->{id}/access-token")->{access_token};
sub root_state { return canon([ api_ok('GET', "/api/users/$root->{id}"),
                                api_ok('GET', "/api/keys/$rkey->{id}") ]) }
my $rbefore = root_state();
my (@adm_bad, $adm_n);
for my $op (@ops) {
    next if $op->{method} eq 'GET';
    my @kinds = map { kind_of($op->{path}, $_) // '' } params_of($op->{path});
    next unless grep { $_ eq 'user' || $_ eq 'key' } @kinds;
    next if $ADMIN_MAY{"$op->{method} $op->{path}"};
    my $path = fill($op->{path}, user => $root->{id}, key => $rkey->{id});
    my ($r, $jj) = api($op->{method}, $path, body_for($op), token => $admtok);
    ++$adm_n;
    # its own account's routes: root's key is not the admin's (404)
    my $want = $op->{path} =~ m{^/api/self/} ? '404 not_found' : '403 forbidden';
    push @adm_bad, "$op->{method} $path:" . $r->code . '/' . ($jj->{error}{code} // '')
        unless $r->code . ' ' . ($jj->{error}{code} // '') eq $want;
}
cmp_ok($adm_n, '>=', 7, "$adm_n write routes on a user or a key tried as an admin");
is("@adm_bad", '', 'an admin gets 403 forbidden on all of them with root\'s ids (404 on '
                   . 'its own /api/self/keys)');
is(root_state(), $rbefore, 'root\'s user and key are unchanged');

# ---- clean up what other tests could see ---------------------------------------------
api('DELETE', "/api/channels/$chid");
api('DELETE', "/api/policies/$mark-p");
api('DELETE', "/api/rate-limits/$KINDS{limit}[0]");

done_testing();
