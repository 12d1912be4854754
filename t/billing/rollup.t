# The hourly rollup of request_logs and their retention (billing_rollup.c,
# billing_retention.c), run by POST /api/billing/scheduler/run on the
# nebula_rollup vhost (NebulaLogRollup 48, NebulaLogRetention 12000d,
# NebulaRetentionBatch 3; the main server has both off). Rows come from real
# billed requests and from direct inserts, moved into closed hours with SQL.
# Checked: the rollup rows equal the raw aggregates of each hour; the usage
# dashboard answers the same before and after (and does read the rollup);
# the summary's rollup (hours and whole UTC days per dimension, with latency
# histograms) gives GET /api/stats/summary the same answers as the raw rows
# for every grouping and single filter, is read (and the raw rows of rolled
# days are not needed), and is recomputed rather than added to;
# running again, re-running hours (a pass killed half-way) and four passes at
# once change nothing; retention deletes exactly the oldest rows past the limit,
# three a pass, and the ledger rows of a deleted log stay.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../admin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok new_ua uniq db_rows db_value db_exec);
use NebulaAdmin qw(log_row);
use NebulaBilling qw(billed_chat billed_setup ledger_rows wallet);
use POSIX ();
use Time::HiRes qw(time);

plan tests => 27 + 18 + 3;

my $H = 3600 * 1000;
my $now = int(time() * 1000);
my $HNOW = $now - $now % $H;               # the current hour
my $RB = 'http://' . NebulaAdmin::hostport_of('nebula_rollup');
my $M = uniq('rollup-m');
sub eq_deeply_json { return JSON::PP->new->canonical->encode($_[0]) eq JSON::PP->new->canonical->encode($_[1]) }
sub run_rollup { return api_ok('POST', '/api/billing/scheduler/run', undef, base => $RB, @_) }
sub done_to {
    return db_value("SELECT done_to FROM nebula_rollup_state WHERE name = 'request_logs'");
}
# the rollup rows of the test's model, as comparable text
sub my_rollup {
    return db_rows("SELECT hour_start, COALESCE(user_id, -1), COALESCE(key_id, -1), "
                   . "COALESCE(channel_id, -1), status_class, requests, errors, prompt_tokens, "
                   . "completion_tokens, cached_tokens, cost, latency_ms_sum, ttfb_ms_sum "
                   . "FROM request_log_hourly WHERE model = '$M' ORDER BY 1, 2, 3, 4, 5");
}
# the same aggregates straight from the raw rows of the rolled hours
sub my_raw {
    return db_rows("SELECT created_at - created_at % 3600000, COALESCE(user_id, -1), "
                   . "COALESCE(key_id, -1), COALESCE(channel_id, -1), status - status % 100, "
                   . "COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
                   . "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
                   . "SUM(cost), SUM(latency_ms), SUM(ttfb_ms) FROM request_logs WHERE "
                   . "model = '$M' AND created_at < " . done_to()
                   . ' GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5');
}

# The state is shared by every run of the suite on this database: put it
# back as found (nothing rolled up: the other tests write into old hours).
END { eval { db_exec("DELETE FROM request_log_hourly");
             db_exec("DELETE FROM request_log_hourly_total");
             db_exec("DELETE FROM request_log_summary");
             db_exec("UPDATE nebula_rollup_state SET done_to = 0") } }
# rows older than the test's own old rows: left by an interrupted run
db_exec('DELETE FROM request_logs WHERE created_at < 788918400000');

# ---- rows: real billed requests, then direct inserts -----------------------
my %s = billed_setup(name => 'rollup', balance => 100000,
                     price => { model_ratio => '1', completion_ratio => '1' });
my @rid;
for my $i (1 .. 4) {
    my $res = billed_chat($s{key}, { model => $s{model},
                                     messages => [ { role => 'user', content => "hi $i" } ] });
    die 'a billed request failed: ' . $res->code . ' ' . $res->content unless $res->code == 200;
    push @rid, $res->header('X-Request-Id');
}
log_row($_) for @rid;
my $acct = wallet($s{user})->{id};
# real rows 0, 1 -> hour -5 ; row 2 -> hour -4; row 3 -> 1990 (retention, below)
my @at = ($HNOW - 5 * $H + 1000, $HNOW - 5 * $H + 2000, $HNOW - 4 * $H + 5000, 631152000000);
for my $i (0 .. 2) {
    db_exec("UPDATE request_logs SET model = '$M', created_at = $at[$i] WHERE id = '$rid[$i]'");
}
my $n = 0;
sub put {
    my ($t, $uid, $kid, $status, $stream, $pt, $ct, $cost, $lat, $ttfb) = @_;
    my $id = sprintf('%08x-0000-7000-8000-%012x', $$, ++$n + int(rand(2**30)) * 1000);
    db_exec(sprintf("INSERT INTO request_logs (id, created_at, key_id, user_id, model, "
                    . "channel_id, status, is_stream, prompt_tokens, completion_tokens, "
                    . "cached_tokens, cost, latency_ms, ttfb_ms) VALUES ('%s', %d, %s, %s, "
                    . "'%s', %d, %d, %d, %d, %d, 1, %d, %d, %d)", $id, $t, $kid // 'NULL',
                    $uid // 'NULL', $M, $s{channel}, $status, $stream, $pt, $ct, $cost, $lat,
                    $ttfb));
    return $id;
}
put($HNOW - 4 * $H + 60000 * $_, $s{user}, $s{key_id}, 200, 1, 10, 20, 30, 100 * $_, 7)
    for 1 .. 3;
put($HNOW - 4 * $H + 70000, $s{user}, $s{key_id}, 502, 0, 0, 0, 0, 9, 0);
put($HNOW - 3 * $H + 10, undef, undef, 401, 0, 0, 0, 0, 1, 0) for 1 .. 2;
put($HNOW - 3 * $H + $H - 1, $s{user}, $s{key_id}, 200, 0, 5, 5, 11, 50, 0);
# the open hour: only ever read raw
put($now - 1000, $s{user}, $s{key_id}, 200, 0, 1, 1, 1, 1, 0);

# ---- dashboards before the rollup ---------------------------------------------
my $from = $HNOW - 6 * $H;
my @queries = ("model=$M&bucket=hour&from=$from&to=$now",
               "model=$M&bucket=hour&from=" . ($from + 1800000) . "&to=" . ($now - 5),
               "user_id=$s{user}&bucket=day&tz_offset=60&from=$from&to=$now",
               "model=$M&bucket=hour&tz_offset=330&from=$from&to=$now",
               "key_id=$s{key_id}&channel_id=$s{channel}&from=$from&to=$now",
               "bucket=hour&from=$from&to=$now");
my @before = map { api_ok('GET', "/api/stats/usage?$_") } @queries;
is($before[0]{total}{requests}, 2 + 5 + 3 + 1, 'the raw rows of the range: 11 requests');
is($before[0]{total}{errors}, 3, 'three of them errors');

# ---- the rollup ---------------------------------------------------------------
db_exec("UPDATE nebula_rollup_state SET done_to = $from");
run_rollup();
my $closed = int(time() * 1000) - 600000;
$closed -= $closed % $H;
ok(done_to() >= $HNOW - $H && done_to() <= $closed && done_to() % $H == 0,
   'done_to moved to the end of the closed hours');
my $roll = my_rollup();
is_deeply($roll, my_raw(), 'the rollup rows are the raw aggregates of each hour');
is_deeply(db_rows("SELECT hour_start, status_class, requests, errors, prompt_tokens, "
                  . "completion_tokens, cached_tokens, cost, latency_ms_sum, ttfb_ms_sum FROM "
                  . "request_log_hourly_total WHERE model = '$M' ORDER BY 1, 2"),
          db_rows("SELECT created_at - created_at % 3600000, status - status % 100, COUNT(*), "
                  . "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "
                  . "SUM(completion_tokens), SUM(cached_tokens), SUM(cost), SUM(latency_ms), "
                  . "SUM(ttfb_ms) FROM request_logs WHERE model = '$M' AND created_at < "
                  . done_to() . ' GROUP BY 1, 2 ORDER BY 1, 2'),
          'and the per-model totals too');
is(scalar @$roll, 5, 'five groups: 1 in hour -5, 2 in hour -4, 2 in hour -3');
is_deeply([ map { [ @$_[4 .. 6] ] } grep { $_->[0] == $HNOW - 4 * $H } @$roll ],
          [ [ 200, 4, 0 ], [ 500, 1, 1 ] ], 'hour -4: four 2xx, one 5xx (an error)');
is_deeply([ map { $_->[5] } grep { $_->[0] == $HNOW - 3 * $H } @$roll ], [ 2, 1 ],
          'hour -3: the two unowned 401s apart from the owned 200');
my ($sums) = @{ db_rows("SELECT COUNT(*) FROM request_logs WHERE created_at >= $from "
                        . "AND created_at < " . done_to()) };
is(db_value("SELECT SUM(requests) FROM request_log_hourly WHERE hour_start >= $from "
            . "AND hour_start < " . done_to()), $sums->[0],
   'every raw row of the rolled hours is counted once (all models)');
my @after = map { api_ok('GET', "/api/stats/usage?$_") } @queries;
is_deeply($after[$_], $before[$_], "dashboard $_ answers as before the rollup")
    for 0 .. $#queries;

# the dashboard reads the rollup for the closed hours (and only those): the
# per-model totals without other filters, the detailed rows with them
db_exec("UPDATE request_log_hourly SET cost = cost + 1000 WHERE model = '$M' "
        . "AND hour_start = " . ($HNOW - 5 * $H));
db_exec("UPDATE request_log_hourly_total SET cost = cost + 2000 WHERE model = '$M' "
        . "AND hour_start = " . ($HNOW - 5 * $H));
is(api_ok('GET', "/api/stats/usage?$queries[0]")->{total}{cost},
   $before[0]{total}{cost} + 2000, 'the usage of closed hours by model: the totals');
is(api_ok('GET', "/api/stats/usage?$queries[2]")->{total}{cost},
   $before[2]{total}{cost} + 1000, 'by user (day buckets, +1 h): the detailed rollup');
is(api_ok('GET', "/api/stats/usage?$queries[3]")->{total}{cost}, $before[3]{total}{cost},
   'a half-hour offset reads the raw rows');
# without a filter: the summary rollup's hour rows of dimension none, then,
# past its watermark, the per-model totals
my $H5 = $HNOW - 5 * $H;
db_exec("UPDATE request_log_summary SET cost = cost + 4000 WHERE dim = 'none' "
        . "AND span_hours = 1 AND period_start = $H5");
is(api_ok('GET', "/api/stats/usage?$queries[5]")->{total}{cost},
   $before[5]{total}{cost} + 4000, 'the usage of closed hours, no filter: the summary rollup');
my $sdone = db_value("SELECT done_to FROM nebula_rollup_state WHERE name = 'request_logs_summary'");
db_exec("UPDATE nebula_rollup_state SET done_to = $H5 WHERE name = 'request_logs_summary'");
is(api_ok('GET', "/api/stats/usage?$queries[5]")->{total}{cost},
   $before[5]{total}{cost} + 2000, 'past the summary rollup: the per-model totals');
db_exec("UPDATE nebula_rollup_state SET done_to = $sdone WHERE name = 'request_logs_summary'");
db_exec("UPDATE request_log_summary SET cost = cost - 4000 WHERE dim = 'none' "
        . "AND span_hours = 1 AND period_start = $H5");

# ---- the summary's rollup: hours and whole days --------------------------------
my $DAY = 24 * $H;
my $D = $HNOW - $HNOW % $DAY - 3 * $DAY;    # a UTC day three days ago
my ($MX, $MY) = ("$M-x", "$M-y");
sub put2 {
    my ($t, $m, $uid, $kid, $cid, $status, $stream, $pt, $ct, $cost, $lat, $ttfb) = @_;
    my $id = sprintf('%08x-0000-7000-8000-%012x', $$, ++$n + int(rand(2**30)) * 1000);
    db_exec(sprintf("INSERT INTO request_logs (id, created_at, key_id, user_id, model, "
                    . "channel_id, status, is_stream, prompt_tokens, completion_tokens, "
                    . "cost, latency_ms, ttfb_ms) VALUES ('%s', %d, %s, %s, '%s', %s, %d, %d, "
                    . "%d, %d, %d, %d, %d)", $id, $t, $kid // 'NULL', $uid // 'NULL', $m,
                    $cid // 'NULL', $status, $stream, $pt, $ct, $cost, $lat, $ttfb));
}
# the day before (hours 20-23), the day (every 3 hours), the day after (0-7);
# latencies over several octaves, streams with a first token, errors, rows
# without key, user or channel
my $i = 0;
for my $t ((map { $D - $DAY + $_ * $H } 20 .. 23), (map { $D + $_ * 3 * $H } 0 .. 7),
           (map { $D + $DAY + $_ * $H } 0 .. 7)) {
    for my $j (0 .. 5) {
        ++$i;
        my $own = $j != 5;
        put2($t + 1000 * $j + 7, $j % 2 ? $MX : $MY, $own ? $s{user} : undef,
             $own ? $s{key_id} : undef, $j == 4 ? undef : $s{channel},
             $j == 3 ? 500 : $j == 5 ? 401 : 200, $j % 3 == 0 ? 1 : 0,
             10 + $i, 3 * $i, 7 * $i, 5 + 37 * $i + 900 * ($j == 2), $j % 3 == 0 ? 3 + $i : 0);
    }
}
sub summary_done {
    return db_rows("SELECT name, done_to FROM nebula_rollup_state WHERE name IN "
                   . "('request_logs_summary', 'request_logs_summary_day') ORDER BY name");
}
sub my_summary_rows {
    return db_rows("SELECT period_start, span_hours, dim, COALESCE(model, ''), "
                   . "COALESCE(channel_id, -1), COALESCE(key_id, -1), COALESCE(user_id, -1), "
                   . "requests, errors, prompt_tokens, completion_tokens, cost, latency_hist, "
                   . "ttft_hist FROM request_log_summary WHERE period_start >= " . ($D - $DAY)
                   . " AND period_start < " . ($D + 2 * $DAY) . " ORDER BY 1, 2, 3, 4, 5, 6, 7");
}
# raw head [D-1d 21:30, D-1d 22:00), hours to D, the day D, hours D+1d 0-5,
# raw tail 06:00-06:30; a whole day alone; hours within one day
my @ranges = ("from=" . ($D - 2 * $H - 1800000) . "&to=" . ($D + $DAY + 6 * $H + 1800000),
              "from=$D&to=" . ($D + $DAY),
              "from=" . ($D + $DAY + $H) . "&to=" . ($D + $DAY + 4 * $H + 5));
my @sq;
for my $r (@ranges) {
    push @sq, map { "$r&$_" } ('by=none', "by=model&model=$MX", "model=$MY",
                               "by=channel&limit=100", "by=key&key_id=$s{key_id}",
                               "by=user&limit=100", "user_id=$s{user}",
                               "by=key&model=$MX");
}
push @sq, "$ranges[0]&by=model&limit=100", "$ranges[0]&by=model&limit=1";
db_exec("UPDATE nebula_rollup_state SET done_to = " . ($D - $DAY)
        . " WHERE name IN ('request_logs_summary', 'request_logs_summary_day')");
my @sbefore = map { api_ok('GET', "/api/stats/summary?$_") } @sq;
my $mine = (grep { $_->{model} eq $MY } @{ $sbefore[-2]{rows} })[0];
is($mine->{requests}, 17 * 3, 'the raw rows of the wide range: 51 of one model');
ok($mine->{latency_ms} && $mine->{ttft_ms}, 'with latency and TTFT percentiles');
run_rollup() for 1 .. 2;    # 48 hours with rows a pass
my %sd = map { @$_ } @{ summary_done() };
is($sd{request_logs_summary}, done_to(), 'the summary rollup reached the closed hours');
ok($sd{request_logs_summary_day} >= $D + 2 * $DAY && $sd{request_logs_summary_day} % $DAY == 0,
   'and its days every whole day of them');
my $srows = my_summary_rows();
is(scalar(grep { $_->[1] == 24 && $_->[0] == $D } @$srows) > 0, 1, 'day D has day rows');
is_deeply([ map { $_->[7] } grep { $_->[0] == $D && $_->[1] == 24 && $_->[2] eq 'model' &&
                                   ($_->[3] eq $MX || $_->[3] eq $MY) } @$srows ],
          [ 24, 24 ], 'its per-model rows count the day\'s 48 rows of the two models');
my @safter = map { api_ok('GET', "/api/stats/summary?$_") } @sq;
my @diff = grep { !eq_deeply_json($safter[$_], $sbefore[$_]) } 0 .. $#sq;
is_deeply([ @sq[@diff] ], [], 'every summary answers as before the rollup (' . @sq
          . ' queries: 3 ranges x groupings and filters)');

# it is read: the day row, the hour rows, not the raw rows of the rolled hours
sub total_cost { api_ok('GET', "/api/stats/summary?$_[0]")->{total}{cost} }
db_exec("UPDATE request_log_summary SET cost = cost + 1000 WHERE dim = 'model' AND "
        . "model = '$MY' AND span_hours = 24 AND period_start = $D");
db_exec("UPDATE request_log_summary SET cost = cost + 20 WHERE dim = 'model' AND "
        . "model = '$MY' AND span_hours = 1 AND period_start = " . ($D - $H));
db_exec("UPDATE request_log_summary SET cost = cost + 300 WHERE dim = 'model' AND "
        . "model = '$MY' AND span_hours = 1 AND period_start = " . ($D + $DAY + 2 * $H));
is(total_cost("$ranges[0]&model=$MY"), $sbefore[2]{total}{cost} + 1320,
   'the wide range reads the day row and both sides\' hour rows');
is(total_cost("$ranges[1]&model=$MY"), $sbefore[10]{total}{cost} + 1000,
   'a whole day: the day row alone');
is(total_cost("$ranges[2]&model=$MY"), $sbefore[18]{total}{cost} + 300,
   'hours of a day: the hour rows');
my $two = api_ok('GET', "/api/stats/summary?$ranges[0]&model=$MY&user_id=$s{user}");
my $raw_two = db_value("SELECT SUM(cost) FROM request_logs WHERE model = '$MY' AND user_id = "
                       . "$s{user} AND created_at >= " . ($D - 2 * $H - 1800000)
                       . " AND created_at < " . ($D + $DAY + 6 * $H + 1800000));
is($two->{total}{cost}, $raw_two, 'two filtered columns: the raw rows, untampered');

# recomputed, not added to: roll the summary's hours and days again
db_exec("UPDATE nebula_rollup_state SET done_to = " . ($D - $DAY)
        . " WHERE name IN ('request_logs_summary', 'request_logs_summary_day')");
run_rollup() for 1 .. 2;
is_deeply(my_summary_rows(), $srows, 'rolled again: the same rows, the tampering undone');
@safter = map { api_ok('GET', "/api/stats/summary?$_") } @sq;
@diff = grep { !eq_deeply_json($safter[$_], $sbefore[$_]) } 0 .. $#sq;
is_deeply([ @sq[@diff] ], [], 'and the same answers');

# the raw rows of the rolled hours are not needed: delete the day's
db_exec("DELETE FROM request_logs WHERE model IN ('$MX', '$MY') AND created_at >= $D "
        . "AND created_at < " . ($D + $DAY));
is_deeply(api_ok('GET', "/api/stats/summary?$sq[1]"), $sbefore[1],
          'by model over the wide range: as before, with day D\'s raw rows gone');
is_deeply(api_ok('GET', "/api/stats/summary?$sq[9]"), $sbefore[9],
          'a whole day from its day rows alone');
isnt(api_ok('GET', "/api/stats/summary?$ranges[1]&by=key&model=$MX")->{total}{requests},
     $sbefore[15]{total}{requests}, 'while a two-column query reads the (deleted) raw rows');

# a malformed histogram is left out, with a warning, not a failure
db_exec("UPDATE request_log_summary SET latency_hist = 'x' WHERE dim = 'none' AND "
        . "span_hours = 24 AND period_start = $D");
my $bad = api_ok('GET', "/api/stats/summary?$ranges[1]");
is($bad->{total}{requests}, $sbefore[8]{total}{requests}, 'a malformed histogram: sums kept');
ok(!defined $bad->{total}{latency_ms} || ref $bad->{total}{latency_ms} eq 'HASH',
   'and the answer still a summary');
db_exec("UPDATE request_log_summary SET latency_hist = '' WHERE latency_hist = 'x'");

# ---- idempotent: again, hours re-run, four passes at once ---------------------
my $done = done_to();
run_rollup();
is(done_to(), $done, 'a second run moves nothing (the next hour is open)');
isnt(my_rollup()->[0][10], $roll->[0][10], 'and leaves the rolled hours alone');
db_exec("UPDATE nebula_rollup_state SET done_to = $from");
run_rollup();
is_deeply(my_rollup(), $roll, 'hours rolled again are recomputed, not added to');
db_exec("UPDATE nebula_rollup_state SET done_to = $from");
my @pids;
for (1 .. 4) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) { run_rollup(ua => new_ua()); POSIX::_exit(0) }
    push @pids, $pid;
}
waitpid($_, 0) for @pids;
is_deeply(my_rollup(), $roll, 'four concurrent passes: every hour counted once');
is(done_to(), $done, 'and done_to where one pass leaves it');

# ---- retention ------------------------------------------------------------------
# seven old rows (1990), the billed row 3 older still, two newer than the limit
db_exec("UPDATE request_logs SET model = '$M', created_at = $at[3] WHERE id = '$rid[3]'");
my @old = map { put(631152000000 + 1000 * $_, $s{user}, $s{key_id}, 200, 0, 1, 1, 1, 1, 0) }
    1 .. 7;
my @kept = map { put(820454400000 + $_, $s{user}, $s{key_id}, 200, 0, 1, 1, 1, 1, 0) } 1 .. 2;
my $ledger = ledger_rows($acct);
my ($consume) = grep { ($_->{request_id} // '') eq $rid[3] } @$ledger;
ok($consume, 'the request moved to 1990 has its ledger row');
sub left {
    my $ids = join(', ', map { "'$_'" } @old, $rid[3], @kept);
    return [ map { $_->[0] } @{ db_rows("SELECT id FROM request_logs WHERE id IN ($ids) "
                                        . "ORDER BY created_at") } ];
}
run_rollup();
# the oldest first: the billed row (1990-01-01 00:00:00) and two more
is_deeply(left(), [ @old[2 .. 6], @kept ], 'one pass deletes the three oldest rows');
run_rollup();
is_deeply(left(), [ @old[5 .. 6], @kept ], 'the next pass three more');
run_rollup();
is_deeply(left(), [@kept], 'then the last old one: rows newer than the limit stay');
is_deeply(ledger_rows($acct), $ledger, 'the ledger is untouched, the deleted log\'s row too');
