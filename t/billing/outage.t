# The database stops for 30 s under load (PostgreSQL and MariaDB; SQLite is
# a file inside the gateway, see docs/billing.md): new requests fail closed
# at once with 503 and Retry-After; the settlements of streams already in
# flight go to the fsynced local spool and are replayed exactly once when
# the database is back; the ledger's invariants hold to the unit.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api);
use NebulaTest qw(top_dir);
use NebulaBilling qw(billed_chat wallet ledger_rows billed_setup reconcile);

my $db = $ENV{NEBULA_TEST_DB} // 'sqlite';
my $dir = $ENV{NEBULA_TESTDB_DIR};
my $OUTAGE = $ENV{NEBULA_OUTAGE_SECONDS} // 30;
if ($db eq 'sqlite' || !$dir) {
    plan skip_all => 'needs a database server to stop (NEBULA_TEST_DB=pgsql or mysql)';
}
plan tests => 12;
my $svc = $db eq 'pgsql' ? 'pg' : 'mysql';
my $spool = Apache::Test::vars('t_logs') . '/nebula-billing.spool';

my $INFLIGHT = 6;
my $EVENTS = 30;
my %s = billed_setup(name => 'outage', balance => 1000000,
                     controls => "events=$EVENTS,delay_ms=100");
my $acct = wallet($s{user})->{id};
my $stream = encode_json({ model => $s{model}, stream => JSON::PP::true,
                           messages => [ { role => 'user', content => 'a b c' } ] });
my $plain = encode_json({ model => $s{model}, max_tokens => 5,
                          messages => [ { role => 'user', content => 'a b c' } ] });
# the key is in the gateway's cache from here on
is(billed_chat($s{key}, $plain)->code, 200, 'before the outage: served');

# streams that will end while the database is away
my %kid;
for (1 .. $INFLIGHT) {
    my $pid = fork() // die;
    if (!$pid) {
        my $r = billed_chat($s{key}, $stream);
        my $done = $r->code == 200 && $r->content =~ /\[DONE\]/;
        print STDERR "# in-flight stream: ", $r->code, " ", substr($r->content, -200), "\n"
            unless $done;
        POSIX::_exit($done ? 0 : 1);
    }
    $kid{$pid} = 1;
}
sleep 1;   # they have their holds and are streaming
system(top_dir() . "/scripts/testdb.sh", 'pause', $dir, $svc) == 0 or die "pause $svc";
my $stopped = time;

# new requests during the outage: 503 with Retry-After, fast
my ($n, $fast, $closed, %seen) = (0, 0, 0);
while (time - $stopped < $OUTAGE) {
    my $t0 = time;
    my $r = billed_chat($s{key}, $plain);
    my $dt = time - $t0;
    $n++;
    $closed++ if $r->code == 503 && defined $r->header('Retry-After');
    $seen{$r->code . ' ' . (eval { decode_json($r->content)->{error}{code} } // '')}++;
    $fast++ if $dt < 1.0;
    sleep 0.25;
}
my $ok_streams = 0;
while (%kid) { my $pid = wait; last if $pid < 0; delete $kid{$pid}; $ok_streams++ if $? == 0 }
is($closed, $n, "all $n requests during the outage failed closed: 503 with Retry-After")
    or diag(encode_json(\%seen));
is($fast, $n, '... each within 1 s');
is($ok_streams, $INFLIGHT, 'the streams in flight were served to the end');
my @spooled = -f $spool ? do { open my $fh, '<', $spool or die; grep { /\S/ } <$fh> } : ();
is(scalar @spooled, $INFLIGHT, 'their settlements are in the spool');

system(top_dir() . "/scripts/testdb.sh", 'resume', $dir, $svc) == 0 or die "resume $svc";
# the scheduler replays the spool
my $rows = [];
for (1 .. 150) {
    $rows = eval { [ grep { $_->{kind} eq 'consume' } @{ ledger_rows($acct) } ] } // [];
    last if @$rows >= 1 + $INFLIGHT && !-s $spool;
    sleep 0.2;
}
is(scalar @$rows, 1 + $INFLIGHT, 'after recovery: one consume row per served request');
ok(!-s $spool, 'the spool is empty');
is(scalar(grep { $_->{amount} == -(3 + $EVENTS) } @$rows), $INFLIGHT,
   'each stream charged its real usage');
my ($code) = api('POST', '/api/billing/scheduler/run');
my $again = [ grep { $_->{kind} eq 'consume' } @{ ledger_rows($acct) } ];
is(scalar @$again, 1 + $INFLIGHT, 'another scheduler pass changes nothing');
my $w = wallet($s{user});
my $sum = 0;
$sum += $_->{amount} for @{ ledger_rows($acct) };
is_deeply([ $w->{balance}, $w->{reserved} ], [ $sum, 0 ], 'balance = sum of the ledger, nothing held');
is(billed_chat($s{key}, $plain)->code, 200, 'after the outage: served again');
ok(reconcile()->{ok}, 'reconciliation is clean');
