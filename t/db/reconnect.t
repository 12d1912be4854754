# The database server ends every gateway connection while httpd runs (a
# failover, a quick restart, an idle-connection reaper). PostgreSQL's driver
# reconnects the same handle and the server forgets the statements prepared
# on it; MariaDB's connections are replaced (reconnect=0). Either way the
# gateway must come back by itself: a query or transaction that meets a
# dead connection is sent again on another (nothing was done on the server),
# so no request fails, and the scheduler and the ledger are whole.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(encode_json);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(api);
use NebulaTest qw(top_dir);
use NebulaBilling qw(billed_chat wallet ledger_rows billed_setup reconcile);

my $db = $ENV{NEBULA_TEST_DB} // 'sqlite';
my $dir = $ENV{NEBULA_TESTDB_DIR};
if ($db eq 'sqlite' || !$dir) {
    plan skip_all => 'needs a database server (NEBULA_TEST_DB=pgsql or mysql)';
}
plan tests => 7;
my $svc = $db eq 'pgsql' ? 'pg' : 'mysql';

my %s = billed_setup(name => 'reconnect', balance => 10_000_000);
my $body = encode_json({ model => $s{model}, max_tokens => 5,
                         messages => [ { role => 'user', content => 'a b c' } ] });

# $workers clients at once, $each rounds apiece of a relay request, an
# admin API read and a top-up: the status codes
sub burst {
    my ($workers, $each) = @_;
    my @kids;
    for my $w (1 .. $workers) {
        pipe(my $r, my $wr) or die;
        my $pid = fork() // die;
        if (!$pid) {
            close $r;
            for my $i (1 .. $each) {
                print {$wr} billed_chat($s{key}, $body)->code, "\n";
                print {$wr} 'a', (api('GET', "/api/users/$s{user}/account"))[0], "\n";
                # a ledger posting: a transaction whose first statement is a
                # prepared one (the one a reset connection has forgotten)
                my ($tc) = api('POST', "/api/users/$s{user}/topup",
                               { amount => 1, reason => 'reconnect test',
                                 idempotency_key => "reconnect-$$-$w-$i-" . int(rand(1e9)) });
                print {$wr} 't', ($tc >= 200 && $tc < 300 ? 'ok' : $tc), "\n";
            }
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [ $pid, $r ];
    }
    my @codes;
    for (@kids) {
        my ($pid, $r) = @$_;
        push @codes, map { chomp; $_ } <$r>;
        waitpid $pid, 0;
    }
    return @codes;
}
sub count { my $c = shift; scalar grep { $_ eq $c } @_ }
sub served { return count(200, @_) + count('a200', @_) + count('tok', @_) }

# many pooled connections, each with its statements prepared
my @warm = burst(12, 4);
is(served(@warm), 144, 'warm-up: 144 requests served on many connections');

my $ended = `"${\ top_dir()}/scripts/testdb.sh" drop-clients "$dir" $svc`;
chomp $ended;
cmp_ok($ended, '>', 0, "the server ended $ended gateway connection(s)");

my @churn = burst(12, 4);
is(served(@churn), 144, 'after the drop: every request is served, top-ups included')
    or diag(join ' ', @churn);
my @after = burst(12, 4);
is(served(@after), 144, '... and after that too')
    or diag(join ' ', @after);

my ($code) = api('POST', '/api/billing/scheduler/run');
is($code, 200, 'the scheduler runs on the new connections');

my $acct = wallet($s{user})->{id};
my $rows = [ grep { $_->{kind} eq 'consume' } @{ ledger_rows($acct) } ];
is(scalar @$rows, count(200, @warm, @churn, @after), 'one consume row per served request');
ok(reconcile()->{ok}, 'reconciliation is clean');
