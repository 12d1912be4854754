# Rate limits shared across hosts through Redis (gov_limit_redis.c): two more
# "hosts" (httpd servers of their own, one child each) share this server's
# database and the test Redis, and hold one limit together: rpm=4 over both
# lets 4 requests in, in total. Two more hosts point at a Redis that is not
# there: limits degrade to each host apart (4 each), nothing fails with a
# 5xx, and each logs one warning (not an error) for the outage.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd);
use NebulaHost qw(extra_host stop_host host_ask host_error_log free_port);
use NebulaAdmin qw(admin new_key new_channel mock_records);

plan tests => 15;

my $redis = $ENV{NEBULA_TEST_REDIS_URL}
    or BAIL_OUT('NEBULA_TEST_REDIS_URL is not set: run the suite with ./nebula test');
sub start_host { return extra_host(gov => 1, loglevel => 'warn nebula_gov:notice', conf => "NebulaRedis $_[0]") }
sub ask { return host_ask(@_) }
sub error_log { return host_error_log(@_) }

my $m = "rlredis-$$";
my (undef, $tag) = new_channel(models => [$m]);

# --- shared: rpm=4 over hosts B and C together ---
my ($key, $kid) = new_key();
admin('POST', '/api/rate-limits', { scope_kind => 'key', scope_value => "$kid", rpm => 4 });
my $b = start_host($redis);
my $c = start_host($redis);
my @codes = map { ask($_ % 2 ? $c : $b, $key, $m) } 0 .. 7;
is(scalar(grep { $_ == 200 } @codes), 4, 'rpm=4 shared by two hosts: 4 pass in total (' . "@codes" . ')');
is(scalar(grep { $_ == 429 } @codes), 4, 'the other 4 are refused');
is_deeply([@codes[0 .. 3]], [200, 200, 200, 200], 'the first four pass, whichever host');
is(scalar @{ mock_records($tag, 1000) }, 4, 'the mock received 4');

# --- Redis down (a dead port): per host, no 5xx, one warning ---
my $dead_port = free_port();
my $dead = "redis://127.0.0.1:$dead_port";
my ($k2, $k2id) = new_key();
admin('POST', '/api/rate-limits', { scope_kind => 'key', scope_value => "$k2id", rpm => 4 });
my $d = start_host($dead);
my $e = start_host($dead);
my @dc = map { ask($d, $k2, $m) } 1 .. 5;
my @ec = map { ask($e, $k2, $m) } 1 .. 5;
is_deeply(\@dc, [200, 200, 200, 200, 429], 'Redis down: host D applies the limit itself (4, then 429)');
is_deeply(\@ec, [200, 200, 200, 200, 429], 'and host E apart: per-host limits');
ok(!(grep { $_ >= 500 || $_ == 0 } @dc, @ec), 'no 5xx while Redis is down');

# Redis comes up on D's port: D shares its limits again and says so
my $rdir = tempdir(CLEANUP => 1);
my ($rrc, $rout) = run_cmd('redis-server', '--port', $dead_port, '--bind', '127.0.0.1', '--save', '',
                           '--appendonly', 'no', '--dir', $rdir, '--daemonize', 'yes',
                           '--pidfile', "$rdir/redis.pid", '--logfile', "$rdir/redis.log");
for (1 .. 50) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$dead_port"); select(undef, undef, undef, 0.1) }
select(undef, undef, undef, 1.1); # past the back-off
is(ask($d, $k2, $m), 200, 'Redis is back: host D counts there again (a fresh counter)');
if (open(my $pf, '<', "$rdir/redis.pid")) { chomp(my $pid = <$pf>); kill 'TERM', $pid if $pid }

stop_host($_) for $b, $c, $d, $e;
my $dlog = error_log($d);
my @warn = $dlog =~ /^(.*NEB03110.*)$/mg;
is(scalar @warn, 1, 'one NEB03110 for the outage, not one a request');
like($warn[0] // '', qr/\[nebula_gov:warn\]/, 'logged as a warning');
like($warn[0] // '', qr/rate limits are counted on each host apart/, 'saying what it means');
like($dlog, qr/\[nebula_gov:notice\].*NEB03111: .*rate limits are shared again/,
     'and logs that limits are shared again (notice)');
unlike($dlog, qr/\[(\w+:)?(error|crit|emerg)\]/, 'host D logged no errors');
unlike(error_log($b), qr/NEB03110|\[(\w+:)?(error|crit|emerg)\]/, 'host B: no Redis failure, no errors');
unlike(error_log($c), qr/NEB03110|\[(\w+:)?(error|crit|emerg)\]/, 'host C: no Redis failure, no errors');
