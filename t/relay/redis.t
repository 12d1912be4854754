# Cross-host cache invalidation: two more "hosts" (httpd servers of their
# own) share this server's database and Redis. Host B has NebulaRedis, host C
# does not; both cache keys for 300s. A key disabled through this server's
# admin API is refused by B at once (Redis pub/sub), while C still serves it
# from its cache: the invalidation really came through Redis.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaHost qw(extra_host stop_host host_ask);
use NebulaAdmin qw(admin new_key new_channel);

plan tests => 8;

my $redis = $ENV{NEBULA_TEST_REDIS_URL}
    or BAIL_OUT('NEBULA_TEST_REDIS_URL is not set: run the suite with ./nebula test');
# NebulaCacheTTL 300: only invalidation can make a host drop a cached key
sub start_host {
    return extra_host(settle => 0.5, # the Redis subscriber connects
                      conf => "NebulaCacheTTL 300\n" . ($_[0] ? "NebulaRedis $redis" : ''));
}
sub ask { return host_ask(@_) }

my $m = "redis-$$";
new_channel(models => [$m]);
my ($key, $kid) = new_key();
my $b = start_host(1);
my $c = start_host(0);
is(ask($b, $key, $m), 200, 'host B serves the key (and caches it)');
is(ask($c, $key, $m), 200, 'host C serves the key (and caches it)');

admin('PATCH', "/api/keys/$kid", { status => 'disabled' });
my ($t0, $code) = (time, 0);
while (time - $t0 < 5) { last if ($code = ask($b, $key, $m)) == 401; sleep 0.05 }
is($code, 401, 'host B refuses the disabled key');
cmp_ok(time - $t0, '<', 3, sprintf('within %.2fs of the change, not after its 300s cache TTL', time - $t0));
is(ask($c, $key, $m), 200, 'host C, without Redis, still serves it from its cache');

# a fresh key, deleted: the same through a delete
my ($k2, $k2id) = new_key();
is(ask($b, $k2, $m), 200, 'host B serves a second key');
admin('DELETE', "/api/keys/$k2id");
($t0, $code) = (time, 0);
while (time - $t0 < 5) { last if ($code = ask($b, $k2, $m)) == 401; sleep 0.05 }
is($code, 401, 'and refuses it at once after it was deleted');

stop_host($_) for $b, $c;
my $log = do { local (@ARGV, $/) = "$b->{dir}/error_log"; <> } // '';
unlike($log, qr/\[(\w+:)?(error|crit|emerg)\]/, 'host B logged no errors');
