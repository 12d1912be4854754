# /api/billing/plans and /api/billing/subscriptions: plans are validated and
# keep their shape once subscribed to; a subscription is one transaction
# (its row, its allowance account in the plan's metric, the first period's
# plan_grant row); calendar periods start at midnight, Monday and the 1st
# (NebulaTimeZone UTC), anniversary months clamp to the month's end;
# cancelling takes back what is available (never what is reserved).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../admin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq db_rows db_value db_exec make_user);
use NebulaAdmin qw(new_key);
use POSIX qw(floor);
use Time::Local qw(timegm);

plan tests => 70;

my $DAY = 86400000;
sub now_ms { return int(Time::HiRes::time() * 1000) }
use Time::HiRes ();

sub ledger {
    my ($acct) = @_;
    return db_rows("SELECT kind, amount, balance_after, idem_key, actor, COALESCE(detail, '') "
                   . "FROM ledger WHERE account_id = $acct ORDER BY seq");
}

# ---- plans: create, defaults, validation --------------------------------
my $name = uniq('plan');
my ($res, $j) = api('POST', '/api/billing/plans', { name => $name, quota_per_period => 1000 });
is($res->code, 201, 'create a plan: 201');
my $p = $j->{data};
is_deeply([ @$p{qw(name metric period period_seconds alignment quota_per_period rollover
                   rollover_cap price status active_subscriptions)} ],
          [ $name, 'quota', 'month', 0, 'calendar', 1000, 'none', 0, 0, 'active', 0 ],
          'the defaults: quota per calendar month, no rollover, free, active');
ok(!defined $p->{allowed_models} && !defined $p->{allowed_groups}, 'no model or group limits');
($res, $j) = api('POST', '/api/billing/plans', { name => $name, quota_per_period => 5 });
is($res->code . ' ' . ($j->{error}{code} // ''), '409 plan_exists', 'a second plan of that name: 409');

my $custom = api_ok('POST', '/api/billing/plans',
                    { name => uniq('c'), period => 'custom', period_seconds => 60,
                      quota_per_period => 7, metric => 'tokens', rollover => 'capped',
                      rollover_cap => 3, allowed_models => ['gpt-4o-mini'],
                      allowed_groups => ['default'], price => 250000 });
is_deeply([ @$custom{qw(period period_seconds alignment metric rollover rollover_cap price)},
            $custom->{allowed_models}, $custom->{allowed_groups} ],
          [ 'custom', 60, 'anniversary', 'tokens', 'capped', 3, 250000, ['gpt-4o-mini'], ['default'] ],
          'custom 60 s: the shortest period, anniversary by nature; the other fields as given');

for my $b ([ { quota_per_period => 1 }, 'name' ],
           [ { name => uniq('x') }, 'quota_per_period' ],
           [ { name => uniq('x'), quota_per_period => 0 }, 'quota_per_period' ],
           [ { name => uniq('x'), quota_per_period => 1, metric => 'dollars' }, 'metric' ],
           [ { name => uniq('x'), quota_per_period => 1, period => 'year' }, 'period' ],
           [ { name => uniq('x'), quota_per_period => 1, period => 'custom' }, 'period_seconds' ],
           [ { name => uniq('x'), quota_per_period => 1, period => 'custom', period_seconds => 59 }, 'period_seconds' ],
           [ { name => uniq('x'), quota_per_period => 1, period => 'day', period_seconds => 3600 }, 'period_seconds' ],
           [ { name => uniq('x'), quota_per_period => 1, period => 'custom', period_seconds => 3600, alignment => 'calendar' }, 'alignment' ],
           [ { name => uniq('x'), quota_per_period => 1, alignment => 'fiscal' }, 'alignment' ],
           [ { name => uniq('x'), quota_per_period => 1, rollover => 'some' }, 'rollover' ],
           [ { name => uniq('x'), quota_per_period => 1, rollover_cap => -1 }, 'rollover_cap' ],
           [ { name => uniq('x'), quota_per_period => 1, price => -1 }, 'price' ],
           [ { name => uniq('x'), quota_per_period => 1, allowed_models => 'gpt-4o' }, 'allowed_models' ],
           [ { name => uniq('x'), quota_per_period => 1, allowed_models => [1] }, 'allowed_models' ],
           [ { name => uniq('x'), quota_per_period => 1, allowed_groups => ['no-such-group-x'] }, 'allowed_groups' ],
           [ { name => uniq('x'), quota_per_period => 1, colour => 'red' }, 'colour' ]) {
    ($res, $j) = api('POST', '/api/billing/plans', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 naming $b->[1]");
}

($res, $j) = api('GET', "/api/billing/plans?q=$name");
is($j->{total}, 1, 'list with q finds it');
($res, $j) = api('GET', '/api/billing/plans?metric=tokens&status=active&per_page=100');
ok((grep { $_->{id} == $custom->{id} } @{ $j->{data} }), 'list by metric and status');
($res, $j) = api('GET', '/api/billing/plans?status=gone');
is($res->code, 400, 'a bad status filter: 400');
($res, $j) = api('PATCH', "/api/billing/plans/$p->{id}",
                 { quota_per_period => 2000, rollover => 'full', description => 'more',
                   allowed_models => ['gpt-4o'] });
is_deeply([ @{ $j->{data} }{qw(quota_per_period rollover description)}, $j->{data}{allowed_models} ],
          [ 2000, 'full', 'more', ['gpt-4o'] ], 'PATCH changes what it names');
($res, $j) = api('PATCH', "/api/billing/plans/$p->{id}", { allowed_models => undef });
ok(!defined $j->{data}{allowed_models}, 'PATCH null clears a limit');
($res, $j) = api('PATCH', "/api/billing/plans/$p->{id}", { period => 'custom' });
is($res->code . ' ' . ($j->{error}{param} // ''), '400 period_seconds',
   'PATCH is checked on the plan as it would be');
($res) = api('GET', '/api/billing/plans/999999999');
is($res->code, 404, 'an unknown plan: 404');

# ---- subscribe: row, account, first grant --------------------------------
my $uid = make_user()->{id};
my $t0 = now_ms();
($res, $j) = api('POST', '/api/billing/subscriptions',
                 { plan_id => $p->{id}, subject_kind => 'user', subject_id => $uid });
is($res->code, 201, 'subscribe a user: 201');
my $s = $j->{data};
is_deeply([ @$s{qw(plan_id plan_name subject_kind subject_id status balance reserved available
                   quota_per_period metric notified_pct)} ],
          [ $p->{id}, $name, 'user', $uid, 'active', 2000, 0, 2000, 2000, 'quota', 0 ],
          'active, with the first period\'s allowance on its account');
ok($s->{starts_at} >= $t0 - 1000 && $s->{starts_at} <= now_ms(), 'starts now by default');
my @g = gmtime(floor($s->{starts_at} / 1000));
my $month0 = timegm(0, 0, 0, 1, $g[4], $g[5]) * 1000;
my $month1 = timegm(0, 0, 0, 1, ($g[4] + 1) % 12, $g[5] + ($g[4] == 11 ? 1 : 0)) * 1000;
is_deeply([ $s->{period_start}, $s->{period_end} ], [ $month0, $month1 ],
          'a calendar month: from the 1st 00:00 UTC to the next 1st');
is_deeply(db_rows("SELECT owner_kind, owner_id, unit FROM accounts WHERE id = $s->{account_id}"),
          [ [ 'sub', $s->{id}, 'quota' ] ], 'its account: owner sub, in the plan\'s metric');
is_deeply(ledger($s->{account_id}),
          [ [ 'plan_grant', 2000, 2000, "grant:$s->{id}:$month0", 'root',
              qq({"period_start":$month0,"period_end":$month1}) ] ],
          'one plan_grant row keyed by the period start, actor root');
($res, $j) = api('GET', "/api/billing/subscriptions/$s->{id}");
is($j->{data}{available}, 2000, 'GET shows balance, reserved and available');
($res, $j) = api('GET', "/api/billing/subscriptions?subject_kind=user&subject_id=$uid");
is_deeply([ map { $_->{id} } @{ $j->{data} } ], [ $s->{id} ], 'list by subject');
($res, $j) = api('GET', '/api/billing/subscriptions?subject_kind=team');
is($res->code, 400, 'a bad subject_kind filter: 400');

# the subjects: a key and an organisation must exist too
my (undef, $kid) = new_key(user_id => $uid);
($res, $j) = api('POST', '/api/billing/subscriptions',
                 { plan_id => $custom->{id}, subject_kind => 'key', subject_id => $kid });
is($res->code, 201, 'subscribe a key');
is(db_value("SELECT unit FROM accounts WHERE id = $j->{data}{account_id}"), 'tokens',
   'a tokens plan gives a tokens account');
for my $b ([ { plan_id => 999999999, subject_kind => 'user', subject_id => $uid }, 400, 'plan_id' ],
           [ { plan_id => $p->{id}, subject_kind => 'user', subject_id => 999999999 }, 400, 'subject_id' ],
           [ { plan_id => $p->{id}, subject_kind => 'org', subject_id => 999999999 }, 400, 'subject_id' ],
           [ { plan_id => $p->{id}, subject_kind => 'team', subject_id => 1 }, 400, 'subject_kind' ],
           [ { plan_id => $p->{id}, subject_kind => 'user', subject_id => $uid,
               starts_at => $t0, expires_at => $t0 }, 400, 'expires_at' ],
           [ { plan_id => $p->{id}, subject_kind => 'user' }, 400, 'subject_id' ],
           # the scheduler would replay every period since: at most 100 back
           [ { plan_id => $custom->{id}, subject_kind => 'user', subject_id => $uid,
               starts_at => $t0 - 101 * 60_000 }, 400, 'starts_at' ]) {
    ($res, $j) = api('POST', '/api/billing/subscriptions', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "$b->[1] $b->[2]", "refused: $b->[2]");
}

# ---- the shape of a plan with subscriptions is fixed; delete archives ----
($res, $j) = api('PATCH', "/api/billing/plans/$p->{id}", { period => 'week' });
is($res->code . ' ' . ($j->{error}{code} // ''), '409 plan_in_use',
   'a subscribed plan cannot change its period');
($res, $j) = api('PATCH', "/api/billing/plans/$p->{id}", { metric => 'tokens' });
is($res->code, 409, 'nor its metric');
($res, $j) = api('GET', "/api/billing/plans/$p->{id}");
is($j->{data}{active_subscriptions}, 1, 'the plan counts its active subscriptions');
($res, $j) = api('DELETE', "/api/billing/plans/$p->{id}");
is($res->code . ' ' . $j->{data}{status}, '200 archived', 'DELETE with subscriptions archives');
($res, $j) = api('POST', '/api/billing/subscriptions',
                 { plan_id => $p->{id}, subject_kind => 'user', subject_id => $uid });
is($res->code . ' ' . ($j->{error}{code} // ''), '409 plan_archived',
   'an archived plan takes no new subscriptions');
is(api_ok('GET', "/api/billing/subscriptions/$s->{id}")->{status}, 'active',
   'its existing subscriptions run on');
my $lonely = api_ok('POST', '/api/billing/plans', { name => uniq('l'), quota_per_period => 1 });
($res) = api('DELETE', "/api/billing/plans/$lonely->{id}");
is($res->code, 204, 'a plan without subscriptions is deleted');
($res) = api('GET', "/api/billing/plans/$lonely->{id}");
is($res->code, 404, 'and gone');

# ---- cancel: what is available goes, what is reserved stays --------------
db_exec("UPDATE accounts SET reserved = 300 WHERE id = $s->{account_id}");
($res) = api('DELETE', "/api/billing/subscriptions/$s->{id}");
is($res->code, 204, 'cancel: 204');
db_exec("UPDATE accounts SET reserved = 0 WHERE id = $s->{account_id}");
($res, $j) = api('GET', "/api/billing/subscriptions/$s->{id}");
is($j->{data}{status}, 'cancelled', 'status cancelled');
is_deeply((ledger($s->{account_id}))->[1],
          [ 'expiry', -1700, 300, "expiry:$s->{id}", 'root', '{"status":"cancelled","available":1700}' ],
          'an expiry row takes the 1700 available, leaves the 300 reserved');
($res, $j) = api('DELETE', "/api/billing/subscriptions/$s->{id}");
is($res->code . ' ' . ($j->{error}{code} // ''), '409 not_active', 'cancelling twice: 409');
is(scalar @{ ledger($s->{account_id}) }, 2, 'and no second row');
($res) = api('DELETE', '/api/billing/subscriptions/999999999');
is($res->code, 404, 'an unknown subscription: 404');

# ---- calendar and anniversary periods ------------------------------------
sub sub_of {
    my ($plan, $starts) = @_;
    my $pl = api_ok('POST', '/api/billing/plans', { name => uniq('per'), quota_per_period => 10, %$plan });
    return api_ok('POST', '/api/billing/subscriptions',
                  { plan_id => $pl->{id}, subject_kind => 'user', subject_id => $uid,
                    starts_at => $starts, expires_at => $starts + 1000 });
}
# 2031-01-31 13:45:10.250 UTC is a Friday
my $jan31 = timegm(10, 45, 13, 31, 0, 2031) * 1000 + 250;
my $x = sub_of({ period => 'day' }, $jan31);
is_deeply([ @$x{qw(period_start period_end)} ],
          [ timegm(0, 0, 0, 31, 0, 2031) * 1000, timegm(0, 0, 0, 1, 1, 2031) * 1000 ],
          'calendar day: midnight to midnight');
$x = sub_of({ period => 'week' }, $jan31);
is_deeply([ @$x{qw(period_start period_end)} ],
          [ timegm(0, 0, 0, 27, 0, 2031) * 1000, timegm(0, 0, 0, 3, 1, 2031) * 1000 ],
          'calendar week: Monday to Monday');
$x = sub_of({ period => 'month', alignment => 'anniversary' }, $jan31);
is_deeply([ @$x{qw(period_start period_end)} ],
          [ $jan31, timegm(10, 45, 13, 28, 1, 2031) * 1000 + 250 ],
          'anniversary month from Jan 31: ends Feb 28 at the same time of day');
$x = sub_of({ period => 'week', alignment => 'anniversary' }, $jan31);
is($x->{period_end} - $x->{period_start}, 7 * $DAY, 'anniversary week: seven days from the start');
$x = sub_of({ period => 'custom', period_seconds => 90 }, $jan31);
is_deeply([ @$x{qw(period_start period_end)} ], [ $jan31, $jan31 + 90000 ], 'custom: starts_at + 90 s');

# ---- the scheduler route --------------------------------------------------
($res, $j) = api('POST', '/api/billing/scheduler/run');
is($res->code, 200, 'POST /api/billing/scheduler/run: 200');
like($j->{data}{effects} // '', qr/^\d+$/, 'it says how many effects the pass applied');
($res, $j) = api('POST', '/api/billing/scheduler/run', { now => 1 });
is($res->code . ' ' . ($j->{error}{param} // ''), '400 now', 'it takes no parameters');
($res) = api('GET', '/api/billing/scheduler/run');
is($res->code, 405, 'GET: 405');
