# Redis dies under two gateway hosts that share rate limits through it, and
# comes back (issue 10, item 4). The hosts (t/lib/NebulaHost.pm: billing and
# governance loaded, this suite's database and mock) use a Redis of this
# test's own, stopped and started again while they serve:
# - while Redis is down no request fails with a 5xx, every answered request
#   is billed (one consume row of its cost each, nothing left reserved), and
#   a limit is applied by each host apart (rpm=5: five on each host);
# - once Redis answers again the hosts share limits within 5 s.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP qw(encode_json);
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd);
use NebulaHost qw(extra_host stop_host host_ask host_error_log free_port);
use NebulaAdmin qw(admin new_key);
use NebulaBilling qw(billed_setup wallet ledger_rows);

plan tests => 9;

my $port = free_port();
my $rdir = tempdir(CLEANUP => 1);
sub redis_up {
    my ($rc, $out) = run_cmd('redis-server', '--port', $port, '--bind', '127.0.0.1', '--save', '',
                             '--appendonly', 'no', '--dir', $rdir, '--daemonize', 'yes',
                             '--pidfile', "$rdir/redis.pid", '--logfile', "$rdir/redis.log");
    die "redis-server: $out" if $rc;
    for (1 .. 50) { return 1 if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port"); sleep 0.1 }
    die "redis-server did not listen on $port";
}
sub redis_down {
    open(my $pf, '<', "$rdir/redis.pid") or return;
    chomp(my $pid = <$pf>);
    kill 'TERM', $pid if $pid;
    for (1 .. 50) { last unless IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port"); sleep 0.1 }
}

redis_up();
my %s = billed_setup(name => 'rdown', balance => 10_000_000);
my $words = 1; # 'hi'
my $cost = $words + 5;
# the limits exist before the hosts start (they read them at start)
my ($k2, $k2id) = new_key(user_id => $s{user});
admin('POST', '/api/rate-limits', { scope_kind => 'key', scope_value => "$k2id", rpm => 5 });
my ($k3, $k3id) = new_key(user_id => $s{user});
admin('POST', '/api/rate-limits', { scope_kind => 'key', scope_value => "$k3id", rpm => 1000000 });
my @hosts = map { extra_host(gov => 1, billing => 1, loglevel => 'warn nebula_gov:notice',
                             conf => "NebulaRedis redis://127.0.0.1:$port") } 1 .. 2;
sub ask_on { my ($i, $key) = @_; return host_ask($hosts[$i % 2], $key // $s{key}, $s{model}) }

# ---- Redis goes away under load -------------------------------------------
my @codes = map { ask_on($_) } 1 .. 20;
is(scalar(grep { $_ == 200 } @codes), 20, 'with Redis: 20 requests over both hosts answered');
redis_down();
@codes = map { ask_on($_) } 1 .. 200;
my $fivexx = grep { $_ >= 500 || $_ == 0 } @codes;
is($fivexx, 0, 'Redis down: none of 200 requests failed with a 5xx or went unanswered')
    or diag("@codes");
is(scalar(grep { $_ == 200 } @codes), 200, '... all answered 200');

# a limit while Redis is down: each host counts apart (5 + 5)
my @lc = map { ask_on($_, $k2) } 0 .. 13;
is(scalar(grep { $_ == 200 } @lc), 10, 'rpm=5 with Redis down: each host admits 5 (10 in all)')
    or diag("@lc");

# billing did not notice: one consume row of the cost per answered request
my $w = wallet($s{user});
my @consume = grep { $_->{kind} eq 'consume' } @{ ledger_rows($w->{id}) };
my $answered = 20 + 200 + scalar(grep { $_ == 200 } @lc);
is(scalar(@consume), $answered, "one consume row per answered request ($answered)");
is(scalar(grep { $_->{amount} == -$cost } @consume), $answered, "... each of the cost ($cost)");
is($w->{reserved} // 0, 0, 'nothing left reserved');

# ---- Redis comes back: shared limits within 5 s ----------------------------
redis_up();
my $t0 = time;
my $shared;
# a request on each host; when both are counted in Redis the limit is shared
while (time - $t0 < 8 && !$shared) {
    ask_on(0, $k3);
    ask_on(1, $k3);
    my ($rc, $out) = run_cmd('redis-cli', '-p', $port, '--scan', '--pattern', "nebula:rl:*key:$k3id");
    $shared = 1 if $out =~ /nebula:rl:/;
    sleep 0.2 unless $shared;
}
my $took = time - $t0;
ok($shared && $took <= 5, sprintf('limits counted in Redis again %.1f s after it returned', $took));

redis_down();
stop_host($_) for @hosts;
my $errors = join '', map { host_error_log($_) } @hosts;
my @bad = $errors =~ /^(.*\[(?:\w+:)?(?:error|crit|alert|emerg)\].*)$/mg;
is(scalar(@bad), 0, 'the hosts logged no errors (the outage is a warning)') or diag(join "\n", @bad[0 .. 4]);
