# Group commit (mod_nebula_billing/billing_group.c): settlements that threads
# of one process make at the same moment share a transaction on SQLite.
# 40 clients send 5 billed requests each, in waves, to a vhost whose pool has
# one connection per child (t/conf/pool_one.conf.in), so settlements wait
# for each other: every request is charged exactly once, the balance is the
# sum of its ledger rows, nothing stays reserved, each has its request-log
# row with its cost; on SQLite some settlements committed in groups, on
# PostgreSQL and MySQL none did (they lock rows, and keep one transaction
# per settlement).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin);
use NebulaBilling qw(wallet ledger_rows billed_setup reconcile);

plan tests => 9;

my $db = $ENV{NEBULA_TEST_DB} || 'sqlite';
my $relay = 'http://' . NebulaAdmin::hostport_of('nebula_billed_pool1');
my $logf = Apache::Test::vars('t_logs') . '/error_log';
my $log_at = -s $logf // 0;
my ($clients, $each) = (40, 5);
my $n = $clients * $each;
my $words = 20;
my $cost = $words + 5; # ratio 1: prompt words + 5 completion events
my %s = billed_setup(name => 'group', balance => 1_000_000,
                     controls => 'header_delay_ms=20');
my $body = encode_json({ model => $s{model}, max_tokens => 5,
                         messages => [ { role => 'user', content => join(' ', ('w') x $words) } ] });

# the clients send in waves, all of a wave at the same moment, so that their
# settlements meet
my $start = time + 1.5;
my %kid;
for my $c (1 .. $clients) {
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        close $r;
        my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 30);
        my @codes;
        for my $k (1 .. $each) {
            my $wait = $start + ($k - 1) * 0.4 - time;
            sleep($wait) if $wait > 0;
            my $req = HTTP::Request->new(POST => "$relay/v1/chat/completions");
            $req->header(Authorization => "Bearer $s{key}", 'Content-Type' => 'application/json');
            $req->content($body);
            my $res = $ua->request($req);
            my $id = $res->header('X-Request-Id') // '';
            push @codes, $res->code . ":$id";
        }
        print $w join("\n", @codes);
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    $kid{$pid} = $r;
}
my (%count, %ids);
for my $pid (keys %kid) {
    my $fh = $kid{$pid};
    for (split /\n/, do { local $/; <$fh> } // '') {
        my ($code, $id) = split /:/, $_, 2;
        $count{$code}++;
        $ids{$id}++ if $code == 200 && $id;
    }
    close $fh;
    waitpid($pid, 0);
}
is($count{200} // 0, $n, "all $n requests answered 200") or diag(encode_json(\%count));

my $w = wallet($s{user});
is($w->{reserved} // 0, 0, 'nothing is left reserved');
is($w->{balance}, 1_000_000 - $n * $cost, "each request charged its cost once ($cost)");
my $rows = ledger_rows($w->{id});
my @consume = grep { $_->{kind} eq 'consume' } @$rows;
is(scalar(@consume), $n, 'one consume row per request');
my %seen;
$seen{ $_->{request_id} // '' }++ for @consume;
is(scalar(grep { $ids{$_} } keys %seen), scalar(keys %ids), '... each for a request answered');
my $sum = 0;
$sum += $_->{amount} for @$rows;
is($sum, $w->{balance}, 'balance = the sum of its ledger rows');
ok(reconcile()->{ok}, 'reconciliation is clean');

# the request logs of the key, each with its cost (written in the settlement)
my @logs;
for my $page (1 .. 3) {
    push @logs, @{ admin('GET', "/api/logs?key_id=$s{key_id}&per_page=100&page=$page")->{data} };
}
is(scalar(grep { ($_->{cost} // 0) == $cost && $ids{ $_->{id} } } @logs), $n,
   "$n request-log rows for the key, each with its cost");

open(my $fh, '<', $logf) or die "$logf: $!";
seek($fh, $log_at, 0);
my (%groups, $failed);
while (<$fh>) {
    $groups{$1}++ if /group commit of (\d+) billing writes: committed/;
    $failed++ if /NEB0206[01]/;
}
close $fh;
my $grouped = 0;
$grouped += $groups{$_} for grep { $_ > 1 } keys %groups;
t_debug('groups: ' . encode_json(\%groups));
if ($db eq 'sqlite') {
    ok($grouped > 0 && !$failed, 'SQLite: settlements committed in groups of several')
        or diag('group sizes: ' . encode_json(\%groups));
}
else {
    ok(!%groups && !$failed, "$db: every settlement in its own transaction")
        or diag('group sizes: ' . encode_json(\%groups));
}
