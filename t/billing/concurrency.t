# 200 concurrent requests, each costing C, against a balance of 50 x C:
# the holds are conditional updates, so at most 50 are served, the others get
# insufficient_quota, the balance never goes below zero and equals the sum of
# its ledger rows exactly (the new-api / one-api overdraft race, issue #2440).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin);
use NebulaBilling qw(billed_chat wallet ledger_rows billed_setup reconcile);

plan tests => 9;

my $N = 200;
my $words = 600;                 # the prompt: above the 500-token floor
my $cost = $words + 5;           # ratio 1: P + N (5 events)
my %s = billed_setup(name => 'race', balance => 50 * $cost,
                     controls => 'header_delay_ms=50');
my $body = encode_json({ model => $s{model}, max_tokens => 5,
                         messages => [ { role => 'user', content => join(' ', ('w') x $words) } ] });

my (%kid, %code);
for my $i (1 .. $N) {
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        close $r;
        my $res = billed_chat($s{key}, $body);
        my $code = $res->code;
        if ($code == 429) {
            my $e = eval { decode_json($res->content)->{error}{code} } // '';
            $code = "429:$e";
        }
        elsif ($code != 200) {
            $code .= ':' . ($res->header('Client-Warning') // '') . ' ' . $res->message;
        }
        print $w $code;
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    $kid{$pid} = $r;
}
my %count;
for my $pid (keys %kid) {
    my $fh = $kid{$pid};
    my $c = do { local $/; <$fh> } // 'none';
    close $fh;
    waitpid($pid, 0);
    $count{$c}++;
}
my $ok = $count{200} // 0;
my $refused = $count{'429:insufficient_quota'} // 0;
t_debug('outcomes: ' . encode_json(\%count));
ok($ok <= 50, "at most 50 of $N served ($ok)");
ok($ok >= 40, "the balance was used, not refused wholesale ($ok served)");
is($ok + $refused, $N, 'every other request got insufficient_quota')
    or diag(encode_json(\%count));

my $w = wallet($s{user});
ok($w->{balance} >= 0, "the balance never went below zero ($w->{balance})");
my $rows = ledger_rows($w->{id});
my %amounts;
$amounts{ $_->{amount} }++ for grep { $_->{kind} eq 'consume' } @$rows;
is($w->{balance}, 50 * $cost - $ok * $cost, 'charged exactly C for each served request')
    or diag('consume amounts: ' . encode_json(\%amounts) . ", reserved $w->{reserved}");
is($w->{reserved}, 0, 'no hold is left');
my $sum = 0;
$sum += $_->{amount} for @$rows;
is($sum, $w->{balance}, 'balance = the sum of its ledger rows');
is(scalar(grep { $_->{kind} eq 'consume' } @$rows), $ok, 'one consume row per served request');
ok(reconcile()->{ok}, 'reconciliation is clean');
