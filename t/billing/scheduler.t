# The billing scheduler: period resets with each rollover policy (exact ledger
# rows: kinds, amounts, balances, keys, details), catching up several periods
# one step at a time, reserved amounts never taken, expiry (by the watchdog
# alone, and a subscription that expired between two missed resets), and the
# race: eight concurrent POST /api/billing/scheduler/run plus the watchdog
# (every second in extra.conf.in) apply every effect exactly once. Every
# account's balance equals the sum of its rows, whose hash chain is intact.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../admin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok new_ua uniq db_rows db_value db_exec make_user);
use Digest::SHA qw(sha256_hex);
use JSON::PP qw(encode_json);
use POSIX ();
use Time::HiRes qw(sleep time);

plan tests => 29;

my $H = 3600 * 1000;   # the plans' period: one hour (custom, anniversary)
my $Q = 1000;          # allowance per period
sub now_ms { return int(time() * 1000) }

sub plan_of {
    my (%o) = @_;
    return api_ok('POST', '/api/billing/plans',
                  { name => uniq('sched'), period => 'custom', period_seconds => $H / 1000,
                    quota_per_period => $Q, %o })->{id};
}
my $uid = make_user()->{id};
sub subscribe {
    my ($plan, $starts, $expires) = @_;
    return api_ok('POST', '/api/billing/subscriptions',
                  { plan_id => $plan, subject_kind => 'user', subject_id => $uid,
                    starts_at => $starts, defined $expires ? (expires_at => $expires) : () });
}
sub sub_get { return api_ok('GET', "/api/billing/subscriptions/$_[0]") }
sub run_now { return api_ok('POST', '/api/billing/scheduler/run')->{effects} }

# The rows of an account as [kind, amount, balance_after, idem_key, actor, detail].
sub rows_of {
    my ($acct) = @_;
    return db_rows("SELECT kind, amount, balance_after, idem_key, actor, COALESCE(detail, '') "
                   . "FROM ledger WHERE account_id = $acct ORDER BY seq");
}

# The account's chain: seq 1..n, each prev_hash the row before's row_hash,
# each row_hash recomputed (nebula_ledger.h), the balance the sum of amounts,
# one row per idempotency key. Returns a list of failures (empty when sound).
sub audit {
    my ($acct) = @_;
    my $rows = db_rows("SELECT account_id, seq, kind, amount, balance_after, request_id, "
                       . "idem_key, actor, created_at, detail, prev_hash, row_hash FROM ledger "
                       . "WHERE account_id = $acct ORDER BY seq");
    my ($prev, $sum, %keys, @bad) = ('0' x 64, 0);
    for my $i (0 .. $#$rows) {
        my @r = map { $_ // '' } @{ $rows->[$i] };
        push @bad, "seq $r[1] is not " . ($i + 1) if $r[1] != $i + 1;
        push @bad, "seq $r[1]: prev_hash" if $r[10] ne $prev;
        my $text = join("\n", 'nebula-ledger-v1', @r[0 .. 10]);
        push @bad, "seq $r[1]: row_hash" if sha256_hex($text) ne $r[11];
        $sum += $r[3];
        push @bad, "seq $r[1]: balance_after $r[4] != $sum" if $r[4] != $sum;
        push @bad, "key $r[6] twice" if $keys{ $r[6] }++;
        $prev = $r[11];
    }
    my ($bal, $head) = @{ db_rows("SELECT balance, ledger_hash FROM accounts WHERE id = $acct")->[0] };
    push @bad, "balance $bal != sum $sum" if $bal != $sum;
    push @bad, 'account head is not the last row_hash' if $head ne $prev;
    return @bad;
}

sub grant { my ($s, $start, $bal, $actor) = @_;
    return [ 'plan_grant', $Q, $bal, "grant:$s:$start", $actor // 'scheduler',
             qq({"period_start":$start,"period_end":) . ($start + $H) . '}' ] }
sub detail { my ($left, $carried, $end) = @_;
    return qq({"leftover":$left,"carried":$carried,"period_end":$end}) }
sub reset_row { my ($s, $end, $amount, $bal, $left, $carried) = @_;
    return [ 'period_reset', $amount, $bal, "reset:$s:$end", 'scheduler', detail($left, $carried, $end) ] }
sub rollover_row { my ($s, $end, $bal, $left, $carried) = @_;
    return [ 'rollover', 0, $bal, "rollover:$s:$end", 'scheduler', detail($left, $carried, $end) ] }

# ---- three periods behind, three policies, raced ------------------------
my %plan = (none => plan_of(rollover => 'none'), full => plan_of(rollover => 'full'),
            capped => plan_of(rollover => 'capped', rollover_cap => 300));
my $S = now_ms() - 3 * $H - 60_000;      # three period ends have passed
my %sub = map { $_ => subscribe($plan{$_}, $S) } qw(none full capped);

# eight "run now" at once (the watchdog runs too)
my (%kid, @codes);
for my $i (1 .. 8) {
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        close $r;
        # a connection of its own (not the parent's kept-alive one)
        my ($res, $j) = api('POST', '/api/billing/scheduler/run', undef, ua => new_ua(keep_alive => 0));
        print $w $res->code . ' ' . ($j->{data}{effects} // '-');
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    $kid{$pid} = $r;
}
for my $pid (keys %kid) {
    my $fh = $kid{$pid};
    push @codes, do { local $/; <$fh> } // 'none';
    waitpid($pid, 0);
}
is_deeply([ map { (split / /)[0] } @codes ], [ ('200') x 8 ], 'eight concurrent passes: all 200');

for my $k (qw(none full capped)) {
    my $s = sub_get($sub{$k}{id});
    is_deeply([ @$s{qw(status period_start period_end)} ], [ 'active', $S + 3 * $H, $S + 4 * $H ],
              "$k: caught up: the fourth period runs now");
}
my $n = $sub{none}{id};
is_deeply(rows_of($sub{none}{account_id}),
          [ grant($n, $S, 1000, 'root'),
            reset_row($n, $S + $H, -1000, 0, 1000, 0), grant($n, $S + $H, 1000),
            reset_row($n, $S + 2 * $H, -1000, 0, 1000, 0), grant($n, $S + 2 * $H, 1000),
            reset_row($n, $S + 3 * $H, -1000, 0, 1000, 0), grant($n, $S + 3 * $H, 1000) ],
          'rollover none: each period the leftover goes, the new allowance comes, once each');
my $f = $sub{full}{id};
is_deeply(rows_of($sub{full}{account_id}),
          [ grant($f, $S, 1000, 'root'),
            rollover_row($f, $S + $H, 1000, 1000, 1000), grant($f, $S + $H, 2000),
            rollover_row($f, $S + 2 * $H, 2000, 2000, 2000), grant($f, $S + 2 * $H, 3000),
            rollover_row($f, $S + 3 * $H, 3000, 3000, 3000), grant($f, $S + 3 * $H, 4000) ],
          'rollover full: a zero rollover row records what is carried; the allowance adds up');
my $c = $sub{capped}{id};
is_deeply(rows_of($sub{capped}{account_id}),
          [ grant($c, $S, 1000, 'root'),
            reset_row($c, $S + $H, -700, 300, 1000, 300), rollover_row($c, $S + $H, 300, 1000, 300),
            grant($c, $S + $H, 1300),
            reset_row($c, $S + 2 * $H, -1000, 300, 1300, 300), rollover_row($c, $S + 2 * $H, 300, 1300, 300),
            grant($c, $S + 2 * $H, 1300),
            reset_row($c, $S + 3 * $H, -1000, 300, 1300, 300), rollover_row($c, $S + 3 * $H, 300, 1300, 300),
            grant($c, $S + 3 * $H, 1300) ],
          'rollover capped at 300: what is above the cap goes, 300 is carried');
for my $k (qw(none full capped)) {
    my @bad = audit($sub{$k}{account_id});
    ok(!@bad, "$k: chain intact, balance = sum of rows, one row per key")
        or diag(join("\n", @bad));
}
is(sub_get($c)->{available}, 1300, 'the subscription shows the available allowance');
# nothing is left to do for them: passes change nothing
run_now() for 1 .. 3;
is(scalar @{ rows_of($sub{capped}{account_id}) }, 10, 'more passes add no rows');

# ---- a subscription three periods behind, caught up by the watchdog alone --
my $w = subscribe($plan{none}, now_ms() - 2 * $H - 30_000);
my $t0 = time;
my $wsub;
while (time - $t0 < 15) {
    $wsub = sub_get($w->{id});
    last if $wsub->{period_end} > now_ms();
    sleep 0.25;
}
ok($wsub->{period_end} > now_ms(), 'the watchdog alone brings a late subscription up to date');
is(scalar @{ rows_of($w->{account_id}) }, 5, 'two resets and two grants after the first');

# ---- what is reserved is never taken -------------------------------------
my $E = now_ms() + 6000;                 # the period ends in six seconds
my $r = subscribe($plan{none}, $E - $H);
db_exec("UPDATE accounts SET reserved = 250 WHERE id = $r->{account_id}");
sleep(($E - now_ms()) / 1000 + 0.3) if $E > now_ms();
run_now();
$t0 = time;
sleep 0.25 while scalar @{ rows_of($r->{account_id}) } < 3 && time - $t0 < 10;
is_deeply(rows_of($r->{account_id}),
          [ grant($r->{id}, $E - $H, 1000, 'root'),
            reset_row($r->{id}, $E, -750, 250, 750, 0), grant($r->{id}, $E, 1250) ],
          'a reset takes the available 750 and leaves the 250 held by requests in flight');
my $rs = sub_get($r->{id});
is_deeply([ @$rs{qw(balance reserved available)} ], [ 1250, 250, 1000 ],
          'the new period has its full allowance available');
db_exec("UPDATE accounts SET reserved = 0 WHERE id = $r->{account_id}");

# ---- expiry ---------------------------------------------------------------
# expired between two missed period ends: the reset before it happens, the
# one after it does not, then the expiry takes what is left
my $S2 = now_ms() - 3 * $H - 60_000;
my $x = subscribe($plan{none}, $S2, $S2 + $H + $H / 2);
run_now();
$t0 = time;
sleep 0.25 while sub_get($x->{id})->{status} ne 'expired' && time - $t0 < 10;
my $xs = sub_get($x->{id});
is_deeply([ @$xs{qw(status period_start period_end balance)} ],
          [ 'expired', $S2 + $H, $S2 + 2 * $H, 0 ],
          'expired: no period after expires_at was started');
is_deeply(rows_of($x->{account_id}),
          [ grant($x->{id}, $S2, 1000, 'root'), reset_row($x->{id}, $S2 + $H, -1000, 0, 1000, 0),
            grant($x->{id}, $S2 + $H, 1000),
            [ 'expiry', -1000, 0, "expiry:$x->{id}", 'scheduler', '{"status":"expired","available":1000}' ] ],
          'one reset, one grant, then an expiry row taking the 1000 available');
ok(!audit($x->{account_id}), 'its chain is intact');

# expires two seconds from now: the watchdog alone ends it
my $e = subscribe($plan{full}, now_ms() - 1000, now_ms() + 2000);
$t0 = time;
sleep 0.25 while sub_get($e->{id})->{status} eq 'active' && time - $t0 < 10;
my $es = sub_get($e->{id});
is($es->{status}, 'expired', 'the watchdog expires a subscription when expires_at passes');
is_deeply(rows_of($e->{account_id})->[-1],
          [ 'expiry', -1000, 0, "expiry:$e->{id}", 'scheduler', '{"status":"expired","available":1000}' ],
          'with an expiry row for the whole allowance');
is(scalar @{ rows_of($e->{account_id}) }, 2, 'and nothing else');
my ($dres) = api('DELETE', "/api/billing/subscriptions/$e->{id}");
is($dres->code, 409, 'an expired subscription cannot be cancelled');
is(scalar @{ rows_of($e->{account_id}) }, 2, 'cancelling it adds no row');

# ---- racing many subscriptions: each effect exactly once ------------------
# three of each policy two periods behind, and three that also expire soon;
# eight passes at once when they are due for resets, eight more when the
# three are due to expire
sub burst {
    my %k;
    for my $i (1 .. 8) {
        my $pid = fork() // die "fork: $!";
        if (!$pid) {
            api('POST', '/api/billing/scheduler/run', undef, ua => new_ua(keep_alive => 0));
            POSIX::_exit(0);
        }
        $k{$pid} = 1;
    }
    waitpid($_, 0) for keys %k;
}
my $S3 = now_ms() - 2 * $H - 30_000;
my @many = ((map { subscribe($plan{$_}, $S3) } (qw(none full capped)) x 3),
            map { subscribe($plan{none}, $S3, now_ms() + 2000) } 1 .. 3);
burst();
sleep 2.1;
burst();
run_now();
my (@wrong, %kinds);
for my $m (@many) {
    push @wrong, map { "sub $m->{id}: $_" } audit($m->{account_id});
    my $rows = rows_of($m->{account_id});
    $kinds{ join(',', map { $_->[0] } @$rows) }++;
    my $st = sub_get($m->{id});
    push @wrong, "sub $m->{id}: period not caught up" if $st->{period_end} <= now_ms() && $st->{status} eq 'active';
}
ok(!@wrong, 'twelve subscriptions, eight passes and the watchdog at once: every chain sound, '
   . 'every key once') or diag(join("\n", @wrong));
my %want = ('plan_grant,period_reset,plan_grant,period_reset,plan_grant' => 3,
            'plan_grant,rollover,plan_grant,rollover,plan_grant' => 3,
            'plan_grant,period_reset,rollover,plan_grant,period_reset,rollover,plan_grant' => 3);
$want{'plan_grant,period_reset,plan_grant,period_reset,plan_grant,expiry'} = 3;
is_deeply(\%kinds, \%want, 'each subscription got exactly its two resets (and its expiry)')
    or diag(encode_json(\%kinds));
my $expired = grep { sub_get($_->{id})->{status} eq 'expired' } @many;
is($expired, 3, 'the three that expired are expired');

# ---- bad input to the run route and the optional function's guard ---------
my ($res, $j) = api('POST', '/api/billing/scheduler/run', { dry => 1 });
is($res->code, 400, 'unknown members are refused');
is(db_value("SELECT COUNT(*) FROM subscriptions WHERE status = 'active' AND period_end <= "
            . (now_ms() - 5000) . " AND (expires_at IS NULL OR period_end < expires_at) "
            . "AND id >= $sub{none}{id}"), 0, 'no subscription of this test is left behind');
