# GET /api/stats/summary over request_logs rows written straight into the
# database (as the relay would), in an hour of the past no other test uses:
# totals, success rate, tokens, cost, latency and TTFT percentiles (checked
# against the documented histogram and against the exact values: within
# 1/32, exact below 64 ms), grouping by model / channel / key / user with
# their names, the top-N limit, the filters, and who may ask.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq db_exec make_user);

plan tests => 52;

my $tag = uniq('sum');
my $H = 3600000;
# an hour between 2015 and 2020, picked per run (the pgsql and mysql
# databases outlive runs; other tests write around 2023 and now)
my $T0 = 1420070400000 + int(rand(40000)) * $H;
my $RANGE = "from=$T0&to=" . ($T0 + $H);

# owners, keys and channels with names (the summary shows them)
my @u = map { make_user(username => "$tag-u$_") } 1 .. 3;
my @k = map { api_ok('POST', '/api/keys', { user_id => $u[$_]{id}, name => "$tag-k$_",
                                            unlimited_quota => JSON::PP::true() }) } 0 .. 2;
my @c = map { api_ok('POST', '/api/channels',
                     { name => "$tag-c$_", kind => 'openai', models => ["$tag-m"],
                       keys => ["sk-$tag-$_"] }) } 0 .. 1;
my ($mA, $mB, $mC) = map { "$tag-$_" } qw(a b c);

my @rows;   # [model, user idx|undef, key idx|undef, chan idx|undef, status, stream,
            #  prompt, completion, cost, latency, ttfb]
push @rows, [ $mA, 0, 0, 0, 200, 0, 10, 5, 100, 10 * $_, 0 ] for 1 .. 20;
push @rows, [ $mA, 0, 0, 1, 500, 0, 0, 0, 0, 5, 0 ] for 1 .. 2;
push @rows, [ $mB, 1, 1, 1, 200, 1, 20, 40, 300, 1000 * $_, 100 * $_ ] for 1 .. 5;
push @rows, [ $mB, 1, 1, 1, 429, 1, 0, 0, 0, 2, 0 ];
push @rows, [ $mB, undef, undef, undef, 401, 0, 0, 0, 0, 1, 0 ];
push @rows, [ $mC, 2, 2, 0, 200, 0, 1, 1, 7, $_, 0 ] for 3, 5, 8, 13, 21, 34;
my $n = 0;
for my $r (@rows) {
    my ($m, $ui, $ki, $ci, @v) = @$r;
    my $id = sprintf('%08x-0000-7000-8000-%012x', $$, ++$n + int(rand(2**30)) * 1000);
    db_exec(sprintf("INSERT INTO request_logs (id, created_at, key_id, user_id, model, "
                    . "channel_id, status, is_stream, prompt_tokens, completion_tokens, cost, "
                    . "latency_ms, ttfb_ms) VALUES ('%s', %d, %s, %s, '%s', %s, %d, %d, %d, "
                    . "%d, %d, %d, %d)", $id, $T0 + $n * 1000,
                    defined $ki ? $k[$ki]{id} : 'NULL', defined $ui ? $u[$ui]{id} : 'NULL', $m,
                    defined $ci ? $c[$ci]{id} : 'NULL', @v));
}

# ---- the expected percentiles ------------------------------------------------
# the bucket of a value: itself below 64; else 32 equal buckets an octave
sub bucket {
    my ($v) = @_;
    return ($v, 1) if $v < 64;
    my $e = 6;
    ++$e while $v >= 2**($e + 1);
    my $d = 2**($e - 5);
    return ($v - $v % $d, $d);
}
# the j-th value (0-based) of a sorted list: exact, or read back from buckets
sub nth_exact { $_[0][ $_[1] ] }
sub nth_hist {
    my ($vals, $j) = @_;
    my (%count, %width);
    for (@$vals) { my ($lo, $d) = bucket($_); $count{$lo}++; $width{$lo} = $d }
    my $before = 0;
    for my $lo (sort { $a <=> $b } keys %count) {
        my $c = $count{$lo};
        return $lo + ($width{$lo} - 1) * (($j - $before) + 0.5) / $c if $j < $before + $c;
        $before += $c;
    }
}
sub pct {
    my ($nth, $p, @v) = @_;
    my @s = sort { $a <=> $b } @v;
    my $k = $p / 100 * (@s - 1);
    my $i = int($k);
    my $x = $nth->(\@s, $i);
    $x += ($k - $i) * ($nth->(\@s, $i + 1) - $x) if $i + 1 < @s;
    return $x;
}
sub pcts { my @v = @_; return @v ? { map { ("p$_" => int(pct(\&nth_hist, $_, @v) + 0.5)) } 50, 95, 99 }
                                 : undef }
sub exact_close {   # every percentile within 1/32 of the exact one
    my ($got, @v) = @_;
    for my $p (50, 95, 99) {
        my $x = pct(\&nth_exact, $p, @v);
        return 0 if abs($got->{"p$p"} - $x) > $x / 32 + 0.5;
    }
    return 1;
}
sub ok_rows { grep { $_->[4] < 400 } @rows }
sub lat_of { map { $_->[9] } grep { $_->[4] < 400 } @_ }
sub ttft_of { map { $_->[10] } grep { $_->[4] < 400 && $_->[5] && $_->[10] > 0 } @_ }

# ---- totals ------------------------------------------------------------------
my ($res, $j) = api('GET', "/api/stats/summary?$RANGE");
is($res->code, 200, 'summary: 200');
my $t = $j->{data}{total};
is_deeply([ @{ $j->{data} }{qw(from to by limit)} ], [ $T0, $T0 + $H, 'none', 10 ],
          'range, grouping and limit echoed');
is_deeply($j->{data}{rows}, [], 'by none: no rows');
is_deeply([ @$t{qw(requests errors prompt_tokens completion_tokens cost)} ],
          [ 35, 4, 306, 306, 3542 ], 'requests, errors (status >= 400), tokens, cost');
ok(abs($t->{success_rate} - 31 / 35) < 1e-9, 'success rate 31/35');
my @lat = lat_of(@rows);
is_deeply($t->{latency_ms}, pcts(@lat), 'latency p50/p95/p99 of the successful requests');
ok(exact_close($t->{latency_ms}, @lat), 'within 1/32 of the exact percentiles');
is_deeply($t->{ttft_ms}, pcts(ttft_of(@rows)), 'ttft from ttfb_ms of successful streams');
is_deeply($t->{ttft_ms}, { p50 => 300, p95 => 480, p99 => 496 }, 'ttft numbers');
ok(exact_close($t->{ttft_ms}, ttft_of(@rows)), 'ttft within 1/32 of exact');

# values below 64 ms are exact
($res, $j) = api('GET', "/api/stats/summary?$RANGE&model=$mC");
is_deeply($j->{data}{total}{latency_ms}, { p50 => 11, p95 => 31, p99 => 33 },
          'below 64 ms: the exact percentiles (interpolated)');
is($j->{data}{total}{ttft_ms}, undef, 'no stream request: ttft null');
is_deeply([ @{ $j->{data}{total} }{qw(requests errors success_rate cost)} ], [ 6, 0, 1, 42 ],
          'model filter: its rows only');

# model A: latencies 10..200 ms
($res, $j) = api('GET', "/api/stats/summary?$RANGE&model=$mA");
is_deeply($j->{data}{total}{latency_ms}, pcts(map { 10 * $_ } 1 .. 20), 'model A latency');
is_deeply($j->{data}{total}{latency_ms}, { p50 => 106, p95 => 190, p99 => 199 },
          'model A numbers (exact: 105, 190.5, 198.1)');

# nothing in range
($res, $j) = api('GET', '/api/stats/summary?from=1000&to=2000');
is_deeply($j->{data}{total}, { requests => 0, errors => 0, success_rate => undef,
                               prompt_tokens => 0, completion_tokens => 0, cost => 0,
                               latency_ms => undef, ttft_ms => undef }, 'empty range');

# ---- grouped -----------------------------------------------------------------
sub row_of { my ($r, @f) = @_; [ @$r{@f} ] }
($res, $j) = api('GET', "/api/stats/summary?$RANGE&by=model");
is($res->code, 200, 'by model: 200');
is_deeply([ map { row_of($_, qw(model requests errors cost)) } @{ $j->{data}{rows} } ],
          [ [ $mA, 22, 2, 2000 ], [ $mB, 7, 2, 1500 ], [ $mC, 6, 0, 42 ] ],
          'by model: top by requests, with their sums');
my %by = map { $_->{model} => $_ } @{ $j->{data}{rows} };
is_deeply($by{$mB}{latency_ms}, pcts(map { 1000 * $_ } 1 .. 5), 'model B latency');
is_deeply($by{$mB}{ttft_ms}, pcts(100, 200, 300, 400, 500), 'model B ttft');
is($by{$mA}{ttft_ms}, undef, 'model A: no stream, ttft null');
ok(abs($by{$mB}{success_rate} - 5 / 7) < 1e-9, 'model B success rate');
is_deeply($by{$mC}{latency_ms}, { p50 => 11, p95 => 31, p99 => 33 }, 'model C exact');

($res, $j) = api('GET', "/api/stats/summary?$RANGE&by=model&limit=2");
is_deeply([ map { $_->{model} } @{ $j->{data}{rows} } ], [ $mA, $mB ], 'limit=2: the top two');
is($j->{data}{total}{requests}, 35, 'the total still counts everything');

($res, $j) = api('GET', "/api/stats/summary?$RANGE&by=user");
is_deeply([ map { row_of($_, qw(user_id username requests)) } @{ $j->{data}{rows} } ],
          [ [ $u[0]{id}, "$tag-u1", 22 ], [ $u[1]{id}, "$tag-u2", 6 ],
            [ $u[2]{id}, "$tag-u3", 6 ], [ undef, undef, 1 ] ],
          'by user: id and username; the keyless request as null');
is_deeply($j->{data}{rows}[1]{ttft_ms}, pcts(100, 200, 300, 400, 500), 'user two: its ttft');
is_deeply($j->{data}{rows}[0]{latency_ms}, pcts(map { 10 * $_ } 1 .. 20),
          'user one: its latency');

($res, $j) = api('GET', "/api/stats/summary?$RANGE&by=key");
is_deeply([ map { row_of($_, qw(key_id key_name requests prompt_tokens)) } @{ $j->{data}{rows} } ],
          [ [ $k[0]{id}, "$tag-k0", 22, 200 ], [ $k[1]{id}, "$tag-k1", 6, 100 ],
            [ $k[2]{id}, "$tag-k2", 6, 6 ], [ undef, undef, 1, 0 ] ], 'by key: id and name');

($res, $j) = api('GET', "/api/stats/summary?$RANGE&by=channel");
is_deeply([ map { row_of($_, qw(channel_id channel_name requests errors)) } @{ $j->{data}{rows} } ],
          [ [ $c[0]{id}, "$tag-c0", 26, 0 ], [ $c[1]{id}, "$tag-c1", 8, 3 ],
            [ undef, undef, 1, 1 ] ], 'by channel: id and name');
my %ch = map { ($_->{channel_id} // 'none') => $_ } @{ $j->{data}{rows} };
is_deeply($ch{ $c[0]{id} }{latency_ms}, pcts((map { 10 * $_ } 1 .. 20), 3, 5, 8, 13, 21, 34),
          'channel one: latency over its two models');
ok(exact_close($ch{ $c[0]{id} }{latency_ms}, (map { 10 * $_ } 1 .. 20), 3, 5, 8, 13, 21, 34),
   'within 1/32 of exact');
is_deeply($ch{ $c[1]{id} }{latency_ms}, pcts(map { 1000 * $_ } 1 .. 5),
          'channel two: its successful requests only');

# a key that was deleted keeps its rows, without a name
api_ok('DELETE', "/api/keys/$k[2]{id}", undef, expect => 204);
($res, $j) = api('GET', "/api/stats/summary?$RANGE&by=key&key_id=$k[2]{id}");
is_deeply([ map { row_of($_, qw(key_id key_name requests)) } @{ $j->{data}{rows} } ],
          [ [ $k[2]{id}, undef, 6 ] ], 'a deleted key: its id, name null');

# filters
for my $f ([ "user_id=$u[1]{id}", 6, 1 ], [ "key_id=$k[0]{id}", 22, 2 ],
           [ "channel_id=$c[1]{id}", 8, 3 ], [ "model=$mB&channel_id=$c[1]{id}", 6, 1 ]) {
    ($res, $j) = api('GET', "/api/stats/summary?$RANGE&$f->[0]");
    is_deeply([ @{ $j->{data}{total} }{qw(requests errors)} ], [ @$f[1, 2] ], "filter $f->[0]");
}

# the default range is the last 24 hours: the rows of $T0 are not in it
($res, $j) = api('GET', "/api/stats/summary?model=$mA");
is($j->{data}{total}{requests}, 0, 'default range: the last 24 hours');
ok(abs($j->{data}{to} - $j->{data}{from} - 24 * $H) < 1, 'from = to - 24 h');

# ---- errors and roles --------------------------------------------------------
for my $q ('by=week', 'limit=0', 'limit=101', 'from=5&to=4', 'status=200', 'by=model&by=key',
           'key_id=abc') {
    ($res, $j) = api('GET', "/api/stats/summary?$q");
    is($res->code, 400, "summary with $q: 400");
}
is($j->{error}{param}, 'key_id', 'the parameter is named');
my $user = make_user(username => "$tag-plain");
my $tok = api_ok('POST', "/api/users/$user->{id}/access-token")->{access_token};
($res, $j) = api('GET', "/api/stats/summary?$RANGE", undef, token => $tok);
is($res->code . ' ' . $j->{error}{code}, '403 forbidden', 'role user: 403');
my $adm = make_user(username => "$tag-adm", role => 'admin');
$tok = api_ok('POST', "/api/users/$adm->{id}/access-token")->{access_token};
($res, $j) = api('GET', "/api/stats/summary?$RANGE", undef, token => $tok);
is($res->code . ' ' . $j->{data}{total}{requests}, '200 35', 'role admin: 200');
($res) = api('POST', '/api/stats/summary', {});
is($res->code, 405, 'POST: 405');
($res) = api('GET', '/api/stats/summary', undef, token => undef);
is($res->code, 401, 'no credentials: 401');
