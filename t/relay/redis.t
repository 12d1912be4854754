# Cross-host cache invalidation: two more "hosts" (httpd servers of their
# own) share this server's database and Redis. Host B has NebulaRedis, host C
# does not; both cache keys for 300s. A key disabled through this server's
# admin API is refused by B at once (Redis pub/sub), while C still serves it
# from its cache: the invalidation really came through Redis.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use JSON::PP qw(encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir libexecdir httpd_bin run_cmd);
use NebulaAdmin qw(admin new_key new_channel);

plan tests => 8;

my $redis = $ENV{NEBULA_TEST_REDIS_URL}
    or BAIL_OUT('NEBULA_TEST_REDIS_URL is not set: run the suite with ./nebula test');
my $top = top_dir();
my $lib = libexecdir();

sub free_port { my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die $!; my $p = $s->sockport; close $s; $p }

sub start_host {
    my ($with_redis) = @_;
    my $dir = tempdir(CLEANUP => 1);
    my $port = free_port();
    open(my $fh, '>', "$dir/httpd.conf") or die $!;
    print $fh <<"CONF";
ServerRoot "$dir"
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error_log"
LogLevel warn
Listen 127.0.0.1:$port
ServerName 127.0.0.1
LoadModule mpm_event_module $lib/mod_mpm_event.so
# one child, so one key cache: what a host serves from cache is predictable
ServerLimit 1
StartServers 1
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
LoadModule authz_core_module $lib/mod_authz_core.so
LoadModule proxy_module $lib/mod_proxy.so
LoadModule dbd_module $lib/mod_dbd.so
LoadModule nebula_relay_module $top/mod_nebula_relay/.libs/mod_nebula_relay.so
DBDriver $ENV{NEBULA_TEST_DBD_DRIVER}
DBDParams "$ENV{NEBULA_TEST_DBD_PARAMS}"
NebulaCryptoSecret "nebula-test-crypto-secret-0123456789abcdef"
NebulaCacheTTL 300
@{[ $with_redis ? "NebulaRedis $redis" : '' ]}
<Location />
    Require all granted
    NebulaRelay On
</Location>
CONF
    close $fh;
    my ($rc, $out) = run_cmd(httpd_bin(), '-f', "$dir/httpd.conf", '-k', 'start');
    die "host did not start: $out" if $rc;
    for (1 .. 100) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port"); sleep 0.1 }
    sleep 0.5; # the Redis subscriber connects
    return { dir => $dir, port => $port };
}

sub stop_host { run_cmd(httpd_bin(), '-f', "$_[0]{dir}/httpd.conf", '-k', 'stop') }

sub ask {
    my ($host, $key, $m) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$host->{port}", Timeout => 10) or return 0;
    my $body = encode_json({ model => $m, messages => [{ role => 'user', content => 'hi' }] });
    print $s "POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer $key\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    my ($code) = (do { local $/; <$s> } // '') =~ m{^HTTP/1\.\d (\d+)};
    return $code // 0;
}

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
