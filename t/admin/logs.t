# /api/logs and /api/stats/usage over request_logs rows written straight into
# the database (as the relay would): filters, newest-first pages, one log by
# id, and hour/day buckets with time-zone offsets.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api uniq db_exec);

plan tests => 36;

my $M = uniq('model-');            # every row of this run carries this model
my $T0 = 1700006400000;            # a UTC midnight
my $H = 3600000;
my @rows = (  # minutes after T0, key, user, channel, status, stream, prompt, completion, cost
    [ 10, 11, 21, 31, 200, 0, 10, 5, 100 ],
    [ 20, 11, 21, 32, 200, 1, 20, 10, 200 ],
    [ 70, 12, 22, 31, 500, 0, 30, 0, 0 ],
    [ 130, 12, 22, 32, 429, 1, 40, 0, 0 ],
    [ 25 * 60, 11, 21, 31, 200, 0, 50, 25, 500 ],
);
my @ids;
for my $r (@rows) {
    my $id = sprintf('%08x-%04x-7%03x-8%03x-%012x', int(rand(2**32)), int(rand(2**16)),
                     int(rand(4096)), int(rand(4096)), int(rand(2**32)) * 4096 + int(rand(4096)));
    push @ids, $id;
    db_exec(sprintf("INSERT INTO request_logs (id, created_at, key_id, user_id, model, channel_id, "
                    . "status, is_stream, prompt_tokens, completion_tokens, cost, latency_ms, "
                    . "client_ip, end_reason) VALUES ('%s', %d, %d, %d, '%s', %d, %d, %d, %d, %d, "
                    . "%d, 123, '192.0.2.1', 'complete')",
                    $id, $T0 + $r->[0] * 60000, @$r[1, 2], $M, @$r[3 .. 8]));
}
sub ids_of { [ map { $_->{id} } @{ $_[0]{data} } ] }

my ($res, $j) = api('GET', "/api/logs?model=$M");
is($res->code, 200, 'list: 200');
is($j->{total}, 5, 'all five rows of the model');
is_deeply(ids_of($j), [ reverse @ids ], 'newest first');
($res, $j) = api('GET', "/api/logs?model=$M&per_page=2&page=2");
is_deeply(ids_of($j), [ @ids[2, 1] ], 'page 2 of 2-per-page');
is($j->{total}, 5, 'total counts all pages');

my %filters = ('key_id=11' => [ 4, 1, 0 ], 'user_id=22' => [ 3, 2 ], 'channel_id=32' => [ 3, 1 ],
               'status=200' => [ 4, 1, 0 ], 'stream=1' => [ 3, 1 ], 'stream=0' => [ 4, 2, 0 ],
               'from=' . ($T0 + 20 * 60000) . '&to=' . ($T0 + 130 * 60000) => [ 2, 1 ],
               'status=500&channel_id=31' => [2]);
for my $f (sort keys %filters) {
    ($res, $j) = api('GET', "/api/logs?model=$M&$f");
    is_deeply(ids_of($j), [ @ids[ @{ $filters{$f} } ] ], "filter $f");
}

($res, $j) = api('GET', "/api/logs/$ids[0]");
is($res->code, 200, 'one log by id');
is_deeply([ @{ $j->{data} }{qw(created_at key_id user_id channel_id status prompt_tokens
                               completion_tokens cost client_ip end_reason)} ],
          [ $T0 + 600000, 11, 21, 31, 200, 10, 5, 100, '192.0.2.1', 'complete' ], 'its fields');
ok(!$j->{data}{is_stream}, 'is_stream false');
($res, $j) = api('GET', '/api/logs/' . uc $ids[0]);
is($j->{data}{id}, $ids[0], 'the id is case-insensitive');
($res) = api('GET', '/api/logs/00000000-0000-7000-8000-000000000000');
is($res->code, 404, 'unknown id: 404');
($res) = api('GET', '/api/logs/not-a-log-id');
is($res->code, 404, 'not an id: 404');
for my $q ('status=99', 'stream=2', "from=5&to=4", 'key_id=abc', 'since=1') {
    ($res) = api('GET', "/api/logs?$q");
    is($res->code, 400, "logs with $q: 400");
}

# ---- statistics ------------------------------------------------------------
sub buckets { [ map { join ',', @$_{qw(t requests prompt_tokens completion_tokens cost errors)} }
                @{ $_[0]{data}{buckets} } ] }
($res, $j) = api('GET', "/api/stats/usage?model=$M&bucket=hour&from=$T0&to=" . ($T0 + 3 * $H));
is($res->code, 200, 'stats: 200');
is_deeply(buckets($j), [ "$T0,2,30,15,300,0", ($T0 + $H) . ',1,30,0,0,1', ($T0 + 2 * $H) . ',1,40,0,0,1' ],
          'hourly buckets: requests, tokens, cost, errors');
is_deeply([ @{ $j->{data}{total} }{qw(requests prompt_tokens completion_tokens cost errors)} ],
          [ 4, 100, 15, 300, 2 ], 'totals');
($res, $j) = api('GET', "/api/stats/usage?model=$M&bucket=day&from=$T0&to=" . ($T0 + 48 * $H));
is_deeply(buckets($j), [ "$T0,4,100,15,300,2", ($T0 + 24 * $H) . ',1,50,25,500,0' ], 'daily buckets');
($res, $j) = api('GET', "/api/stats/usage?model=$M&bucket=day&tz_offset=-120&from=$T0&to="
                 . ($T0 + 48 * $H));
is_deeply([ map { (split /,/)[ 0, 1 ] } @{ buckets($j) } ],
          [ $T0 - 22 * $H, 3, $T0 + 2 * $H, 2, $T0 + 26 * $H, 0 ],
          'days of UTC-2: local midnight is 02:00 UTC; empty buckets are zeros');
($res, $j) = api('GET', "/api/stats/usage?model=$M&user_id=21&bucket=hour&from=$T0&to=" . ($T0 + $H));
is_deeply(buckets($j), ["$T0,2,30,15,300,0"], 'stats filtered by user');
($res, $j) = api('GET', "/api/stats/usage?model=$M&channel_id=31&bucket=day&from=$T0&to=" . ($T0 + 24 * $H));
is($j->{data}{buckets}[0]{requests}, 2, 'stats filtered by channel');
for my $q ('bucket=week', 'tz_offset=7', 'tz_offset=900', "from=0&to=$T0", 'status=200') {
    ($res) = api('GET', "/api/stats/usage?$q");
    is($res->code, 400, "stats with $q: 400");
}
