# Voucher redemption (mod_nebula_billing's nebula_billing_redeem through the
# admin API): one credit per use under concurrency, per-user and total
# limits, the validity window and the scope with messages that say why,
# disabled batches, typo detection, the brute-force lockout per user and per
# IP (and that it reveals nothing), and plan vouchers.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../admin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq db_rows db_value db_exec make_user new_ua);
use Time::HiRes ();
use POSIX qw(_exit);

plan tests => 70;

sub now_ms { return int(Time::HiRes::time() * 1000) }
my $DAY = 86400000;

sub token_of { return api_ok('POST', "/api/users/$_[0]{id}/access-token")->{access_token} }
sub user_with_token { my $u = make_user(@_); $u->{token} = token_of($u); return $u }
sub balance { return api_ok('GET', "/api/users/$_[0]{id}/account")->{balance} }
# (a forked client needs a connection of its own: ua => new_ua())
sub self_redeem { return api('POST', '/api/self/redeem', { code => $_[1] }, token => $_[0]{token}, @_[2 .. $#_]) }

# Luhn mod 32 over Crockford's base32: the check character of @a body.
my $ALPHA = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
sub check_char {
    my ($body) = @_;
    my ($factor, $sum) = (2, 0);
    for my $ch (reverse split //, $body) {
        my $add = $factor * index($ALPHA, $ch);
        $factor = $factor == 2 ? 1 : 2;
        $sum += int($add / 32) + $add % 32;
    }
    return substr($ALPHA, (32 - $sum % 32) % 32, 1);
}
# A well-formed code that no batch holds.
sub unknown_code {
    my ($n) = @_;
    my $body = sprintf('%04d%04dZZZZ%04d', $n % 10000, 7, 7);
    return join('-', unpack('(A4)*', $body)) . '-' . check_char($body);
}
sub admin_redeem { return api('POST', "/api/users/$_[0]{id}/redeem", { code => $_[1] }) }
sub clear_failures { db_exec('DELETE FROM redeem_failures') }

# A batch and its codes (exported once, here).
sub batch {
    my (%o) = @_;
    my $b = api_ok('POST', '/api/vouchers', { name => uniq('vb'), kind => 'quota', %o });
    my ($res) = api('GET', "/api/vouchers/$b->{id}/export");
    die 'export failed: ' . $res->code unless $res->code == 200;
    my @lines = split /\n/, $res->content;
    shift @lines;
    $b->{codes} = [ map { (split /,/)[0] } @lines ];
    return $b;
}
sub code_id {
    my ($b) = @_;
    return db_value("SELECT MIN(id) FROM voucher_codes WHERE batch_id = $b->{id}");
}

clear_failures();

# ---- 20 concurrent clients, one single-use code: exactly one credit ------
{
    my $b = batch(amount => 5000, codes => 1);
    my $code = $b->{codes}[0];
    like($code, qr/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}-[0-9A-HJKMNP-TV-Z]$/,
         'a code looks like XXXX-XXXX-XXXX-XXXX-C in Crockford base32');
    my @users = map { user_with_token() } 1 .. 20;
    my $start = Time::HiRes::time() + 1.5;
    my %pid;
    for my $i (0 .. $#users) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            Time::HiRes::sleep($start - Time::HiRes::time()) if $start > Time::HiRes::time();
            my ($res, $j) = self_redeem($users[$i], $code, ua => new_ua(keep_alive => 0));
            my $c = $res->code;
            _exit($c == 200 ? 0 : $c == 409 && ($j->{error}{code} // '') eq 'voucher_used' ? 1 : 2);
        }
        $pid{$pid} = $i;
    }
    my %by;
    while ((my $pid = wait()) > 0) { $by{ $? >> 8 }++ }
    is_deeply([ $by{0} // 0, $by{1} // 0, $by{2} // 0 ], [ 1, 19, 0 ],
              '20 concurrent redemptions: one 200, nineteen 409 voucher_used');
    my $cid = code_id($b);
    my $rows = db_rows("SELECT amount, kind, idem_key FROM ledger WHERE idem_key LIKE 'voucher:$cid:%'");
    is_deeply($rows, [ [ 5000, 'voucher', "voucher:$cid:1" ] ], 'exactly one ledger row, keyed voucher:<code>:1');
    my $sum = 0;
    $sum += balance($_) for @users;
    is($sum, 5000, 'the balances of the 20 users grew by the amount once');
    is(db_value("SELECT COUNT(*) FROM voucher_redemptions WHERE batch_id = $b->{id}"), 1,
       'one redemption row');
    is(db_value("SELECT uses FROM voucher_codes WHERE id = $cid"), 1, 'the code counts one use');
    clear_failures();
}

# ---- one user, 10 codes of a per_user=1 batch, concurrently ---------------
{
    my $b = batch(amount => 100, codes => 10);
    my $u = user_with_token();
    my $start = Time::HiRes::time() + 1.0;
    for my $code (@{ $b->{codes} }) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            Time::HiRes::sleep($start - Time::HiRes::time()) if $start > Time::HiRes::time();
            my ($res, $j) = self_redeem($u, $code, ua => new_ua(keep_alive => 0));
            _exit($res->code == 200 ? 0 : ($j->{error}{code} // '') eq 'voucher_limit' ? 1 : 2);
        }
    }
    my %by;
    while ((my $pid = wait()) > 0) { $by{ $? >> 8 }++ }
    is_deeply([ $by{0} // 0, $by{1} // 0, $by{2} // 0 ], [ 1, 9, 0 ],
              'one user, ten codes of a one-per-user batch at once: one 200, nine voucher_limit');
    is(balance($u), 100, 'credited once');
    clear_failures();
}

# ---- per_user and total_uses ------------------------------------------------
{
    my $b = batch(amount => 10, codes => 1, total_uses => 3, per_user => 2);
    my ($c) = @{ $b->{codes} };
    my ($ua, $ub, $uc) = map { make_user() } 1 .. 3;
    my ($res, $j) = admin_redeem($ua, $c);
    is_deeply([ $res->code, @{ $j->{data} }{qw(kind amount balance_after)} ], [ 200, 'quota', 10, 10 ],
              'a shared code: first use');
    ($res, $j) = admin_redeem($ua, $c);
    is_deeply([ $res->code, $j->{data}{balance_after} ], [ 200, 20 ], 'second use by the same user (per_user 2)');
    ($res, $j) = admin_redeem($ua, $c);
    is_deeply([ $res->code, $j->{error}{code} ], [ 409, 'voucher_limit' ], 'third use by that user: 409 voucher_limit');
    like($j->{error}{message}, qr/already redeemed this voucher \(2 uses per user\)/, 'the message says the limit');
    ($res, $j) = admin_redeem($ub, $c);
    is($res->code, 200, 'another user: the third use');
    ($res, $j) = admin_redeem($uc, $c);
    is_deeply([ $res->code, $j->{error}{code} ], [ 409, 'voucher_used' ], 'a fourth: 409 voucher_used');
    my $cid = code_id($b);
    is_deeply(db_rows("SELECT idem_key FROM ledger WHERE idem_key LIKE 'voucher:$cid:%' ORDER BY id"),
              [ ["voucher:$cid:1"], ["voucher:$cid:2"], ["voucher:$cid:3"] ], 'one ledger row per use');

    my $t = batch(amount => 7, codes => 3, total_uses => 2);
    admin_redeem($ua, $t->{codes}[0]);
    admin_redeem($ub, $t->{codes}[1]);
    ($res, $j) = admin_redeem($uc, $t->{codes}[2]);
    is_deeply([ $res->code, $j->{error}{code} ], [ 409, 'voucher_used_up' ],
              'total_uses 2 over three codes: the third code is refused');
    like($j->{error}{message}, qr/used up \(2 uses in all\)/, 'and says so');
    is(balance($uc), 0, 'nothing credited');
}

# ---- the window -------------------------------------------------------------
{
    my $future = now_ms() + 3 * $DAY;
    my $b = batch(amount => 5, codes => 1, starts_at => $future);
    my $u = make_user();
    my ($res, $j) = admin_redeem($u, $b->{codes}[0]);
    is_deeply([ $res->code, $j->{error}{code} ], [ 403, 'voucher_not_yet_valid' ], 'before the window: 403');
    my @t = gmtime($future / 1000);
    my $date = sprintf('%04d-%02d-%02d %02d:%02d UTC', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1]);
    is($j->{error}{message}, "This voucher is not valid before $date.", 'the message names the date');

    my $e = batch(amount => 5, codes => 1, expires_at => now_ms() + $DAY);
    my $past = now_ms() - 1000;
    api_ok('PATCH', "/api/vouchers/$e->{id}", { expires_at => $past });
    ($res, $j) = admin_redeem($u, $e->{codes}[0]);
    @t = gmtime($past / 1000);
    $date = sprintf('%04d-%02d-%02d %02d:%02d UTC', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1]);
    is_deeply([ $res->code, $j->{error}{code}, $j->{error}{message} ],
              [ 403, 'voucher_expired', "This voucher expired on $date." ], 'after the window: 403 naming the date');
    api_ok('PATCH', "/api/vouchers/$e->{id}", { expires_at => 0 });
    ($res) = admin_redeem($u, $e->{codes}[0]);
    is($res->code, 200, 'no end any more: redeemed');
}

# ---- the scope ----------------------------------------------------------------
{
    my $g = uniq('vg');
    api_ok('POST', '/api/groups', { name => $g });
    my $b = batch(amount => 9, codes => 2, scope => { groups => [$g] });
    is_deeply($b->{scope}, { groups => [$g] }, 'the batch keeps its scope');
    my $out = make_user();
    my $in = make_user(user_group => $g);
    my ($res, $j) = admin_redeem($out, $b->{codes}[0]);
    is_deeply([ $res->code, $j->{error}{code} ], [ 403, 'voucher_out_of_scope' ], 'another group: 403');
    is($j->{error}{message}, "This voucher is only for the user groups $g; your group is 'default'.",
       'the message names the groups and the user\'s');
    ($res) = admin_redeem($in, $b->{codes}[0]);
    is($res->code, 200, 'a member of the group: 200');

    my $plan = api_ok('POST', '/api/billing/plans', { name => uniq('vp'), quota_per_period => 100 });
    my $p = batch(amount => 11, codes => 1, scope => { plans => [ $plan->{id} ] });
    my $u = make_user();
    ($res, $j) = admin_redeem($u, $p->{codes}[0]);
    is_deeply([ $res->code, $j->{error}{code} ], [ 403, 'voucher_out_of_scope' ], 'no subscription: 403');
    is($j->{error}{message}, "This voucher is only for subscribers of the plans $plan->{id}; you hold "
       . 'no active subscription to one of them.', 'the message names the plans');
    api_ok('POST', '/api/billing/subscriptions', { plan_id => $plan->{id}, subject_kind => 'user',
                                                   subject_id => $u->{id} });
    ($res, $j) = admin_redeem($u, $p->{codes}[0]);
    is_deeply([ $res->code, $j->{data}{amount} ], [ 200, 11 ], 'a subscriber: 200');
}

# ---- disabled batches, deleted users, typos, normalisation --------------------
{
    my $b = batch(amount => 3, codes => 2, prefix => 'Lo');
    like($b->{codes}[0], qr/^10-/, 'the prefix is normalised (L -> 1, o -> 0) and leads the code');
    my $u = make_user();
    api_ok('PATCH', "/api/vouchers/$b->{id}", { status => 'disabled' });
    my ($res, $j) = admin_redeem($u, $b->{codes}[0]);
    is_deeply([ $res->code, $j->{error}{code}, $j->{error}{message} ],
              [ 403, 'voucher_disabled', 'This voucher has been disabled.' ], 'a disabled batch: 403');
    api_ok('PATCH', "/api/vouchers/$b->{id}", { status => 'active' });

    my $code = $b->{codes}[0];
    my $last = substr($code, -1);
    my $wrong = substr($code, 0, -1) . ($last eq '7' ? '8' : '7');
    ($res, $j) = admin_redeem($u, $wrong);
    is_deeply([ $res->code, $j->{error}{code} ], [ 400, 'mistyped' ], 'a wrong check character: 400 mistyped');
    like($j->{error}{message}, qr/mistyped/, 'says so');
    (my $swap = $code) =~ s/^(\d\d-)(.)(.)/$1$3$2/;
    ($res, $j) = admin_redeem($u, $swap) if $swap ne $code;
    is($res->code, 400, 'two characters swapped: caught too (400)');

    (my $typed = lc $code) =~ s/-/ /g;
    $typed =~ tr/01/ol/;
    ($res, $j) = admin_redeem($u, "  $typed ");
    is_deeply([ $res->code, $j->{data}{amount} ], [ 200, 3 ],
              'lower case, spaces, o for 0 and l for 1: still the code');

    ($res, $j) = admin_redeem($u, 'NOT-A-CODE');
    is_deeply([ $res->code, $j->{error}{code}, $j->{error}{message} ],
              [ 400, 'invalid_code', 'This code is not valid.' ], 'garbage: 400 invalid_code');
    ($res, $j) = admin_redeem($u, unknown_code(1));
    my ($res2, $j2) = admin_redeem($u, unknown_code(2));
    is(substr(unknown_code(1), 0, -1) . check_char('0001' . '0007' . 'ZZZZ' . '0007'), unknown_code(1),
       'the test computes check characters as the server does');
    is_deeply([ $res->code, $j->{error}{code} ], [ 400, 'invalid_code' ], 'a well-formed unknown code: 400 invalid_code');
    is_deeply([ $res->code, $j->{error}{message} ], [ $res2->code, $j2->{error}{message} ],
              'unknown codes all get the same answer');

    my $gone = make_user();
    api_ok('PATCH', "/api/users/$gone->{id}", { status => 'disabled' });
    ($res, $j) = admin_redeem($gone, $b->{codes}[1]);
    is_deeply([ $res->code, $j->{error}{code} ], [ 403, 'user_inactive' ], 'a disabled user cannot redeem');
}

# ---- 1000 wrong guesses from one user: the lockout ------------------------
{
    clear_failures();
    my $b = batch(amount => 42, codes => 1);
    my $u = user_with_token();
    my (@status, $first429);
    for my $i (1 .. 1000) {
        my ($res, $j) = self_redeem($u, unknown_code($i));
        push @status, $res->code;
        $first429 //= [ $i, $res, $j ] if $res->code == 429;
        last if $i > 40 && $res->code != 429; # would fail below anyway
    }
    is(scalar(@status), 1000, '1000 guesses made');
    is_deeply([ @status[0 .. 9] ], [ (400) x 10 ], 'the first 10 failures are answered as such');
    is($first429->[0], 11, 'the 11th attempt is refused: locked out');
    is(scalar(grep { $_ == 429 } @status), 990, 'and every one after it');
    my ($res, $j) = @$first429[1, 2];
    is($j->{error}{code}, 'too_many_attempts', 'code too_many_attempts');
    like($j->{error}{message},
         qr/^Too many failed redemption attempts; try again after \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 15 minutes\)\.$/,
         'the message says when to retry');
    ok($res->header('Retry-After') >= 890 && $res->header('Retry-After') <= 900, 'Retry-After about 900 s');
    # a valid code while locked: the same refusal, the code untouched
    my ($rv, $jv) = self_redeem($u, $b->{codes}[0]);
    my ($ri, $ji) = self_redeem($u, unknown_code(5000));
    is_deeply([ $rv->code, $jv->{error}{code} ], [ 429, 'too_many_attempts' ], 'a valid code while locked: 429');
    is_deeply([ $jv->{error}{message} =~ s/after .*//r ], [ $ji->{error}{message} =~ s/after .*//r ],
              'worded as for a wrong one');
    is(db_value('SELECT uses FROM voucher_codes WHERE id = ' . code_id($b)), 0, 'and not used');
    is(balance($u), 0, 'nothing credited');
    is(db_value("SELECT failures FROM redeem_failures WHERE scope_key = 'i:127.0.0.1'"), 10,
       'the IP counted the 10 failures, not the refused attempts');
    my ($ok) = admin_redeem(make_user(), $b->{codes}[0]);
    is($ok->code, 200, 'the code still works for someone else');
    my $log = do { local (@ARGV, $/) = Apache::Test::vars('t_logs') . '/error_log'; <> };
    my @audit = $log =~ /\[nebula_billing:notice\][^\n]*NEB02410: voucher redemption refused for user $u->{id} from 127\.0\.0\.1 by user:$u->{id}: (\w+)/g;
    is_deeply([ @audit[0 .. 10] ], [ ('invalid_code') x 10, 'too_many_attempts' ],
              'each failure is audited at notice level, with its reason');
    ok($log =~ /NEB02411: voucher redemption locked out for u:$u->{id} until/, 'and the lockout');
    ok($log !~ /\[nebula_billing:error\][^\n]*NEB0241/, 'never at [error]');
    clear_failures();
}

# ---- the IP lockout across users -----------------------------------------
{
    clear_failures();
    my @users = map { user_with_token() } 1 .. 4;
    my @codes;
    for my $u (@users) {
        for my $i (1 .. 8) {
            my ($res) = self_redeem($u, unknown_code(100 * $u->{id} + $i));
            push @codes, $res->code;
        }
    }
    is_deeply([ @codes[0 .. 29] ], [ (400) x 30 ], '30 failures from one IP over four users');
    is_deeply([ @codes[30, 31] ], [ 429, 429 ], 'then the IP is locked: 429 for the 31st and 32nd');
    my $fresh = user_with_token();
    my ($res, $j) = self_redeem($fresh, unknown_code(9999));
    is_deeply([ $res->code, $j->{error}{code} ], [ 429, 'too_many_attempts' ],
              'a user with no failure of its own is locked out on that IP too');
    ok(db_value("SELECT locked_until FROM redeem_failures WHERE scope_key = 'i:127.0.0.1'") > now_ms(),
       'the IP lock is stored for every process and host');
    my $b = batch(amount => 1, codes => 1);
    ($res) = admin_redeem($fresh, $b->{codes}[0]);
    is($res->code, 200, 'an admin redeeming for a user is not held by the lockout');
    clear_failures();
}

# ---- plan vouchers ------------------------------------------------------------
{
    my $plan = api_ok('POST', '/api/billing/plans', { name => uniq('vplan'), quota_per_period => 2500,
                                                       allowed_models => [ 'gpt-4o', 'gpt-4o-mini' ] });
    my ($res, $j) = api('POST', '/api/vouchers', { name => uniq('vb'), kind => 'plan', plan_id => $plan->{id},
                                                   plan_days => 30, scope => { models => ['claude-3'] } });
    is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'scope.models' ], 'models the plan does not cover: 400');
    my $b = batch(kind => 'plan', plan_id => $plan->{id}, plan_days => 30, codes => 1,
                  scope => { models => ['gpt-4o'] });
    my $u = user_with_token();
    my $t0 = now_ms();
    ($res, $j) = self_redeem($u, $b->{codes}[0]);
    is_deeply([ $res->code, @{ $j->{data} }{qw(kind amount)} ], [ 200, 'plan', 0 ], 'a plan voucher: 200');
    my $sub = $j->{data}{sub_id};
    my $row = db_rows("SELECT plan_id, subject_kind, subject_id, status, expires_at FROM subscriptions WHERE id = $sub")->[0];
    is_deeply([ @$row[0 .. 3] ], [ $plan->{id}, 'user', $u->{id}, 'active' ], 'the user is subscribed to the plan');
    ok($row->[4] >= $t0 + 30 * $DAY && $row->[4] <= now_ms() + 30 * $DAY, 'for 30 days');
    my $grant = db_rows("SELECT l.kind, l.amount, l.id FROM ledger l JOIN subscriptions s ON s.account_id = "
                        . "l.account_id WHERE s.id = $sub");
    is_deeply([ map { [ @$_[0, 1] ] } @$grant ], [ [ 'plan_grant', 2500 ] ], 'its first grant, one ledger row');
    is(db_value("SELECT ledger_id FROM voucher_redemptions WHERE sub_id = $sub"), $grant->[0][2],
       'the redemption names that row');
    ($res, $j) = self_redeem($u, $b->{codes}[0]);
    is($res->code, 409, 'the code cannot subscribe twice');
    is(db_value("SELECT COUNT(*) FROM subscriptions WHERE subject_kind = 'user' AND subject_id = $u->{id}"), 1,
       'still one subscription');
    clear_failures();
}

# ---- the ledger stays consistent -----------------------------------------
my ($res, $j) = api('GET', '/api/billing/reconcile');
is_deeply([ $res->code, $j->{data}{ok} ], [ 200, JSON::PP::true ], 'reconcile: balances and chains match the ledger')
    or diag explain $j;
