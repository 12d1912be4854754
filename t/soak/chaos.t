# The stream chaos soak (docs/reliability.md, "Stream chaos soak"): seeded
# rounds of billed SSE requests through a gateway host of its own, with
#   - 30 % of clients leaving at a random byte offset of the answer,
#   - `kill -9` of a random child of that host every NEBULA_SOAK_KILL_EVERY s,
#   - the mock omitting usage in 10 %, cutting the stream in 5 % and
#     reporting negative usage in 1 % of the requests.
# After quiescence and the scheduler's sweep (NebulaReservationTTL 15s on the
# host), every charge must be the one the documented policy gives for its
# request's shape: the mock's own usage, the gateway's count when usage is
# missing or cut (docs/billing.md), the reservation when usage is absurd.
# Each shape's charge is measured once, calmly, before the chaos. A request
# may instead be charged nothing only when a kill took its process (its hold
# is reclaimed: docs/billing.md, "Stale holds"). Nothing is charged twice,
# nothing is credited, nothing stays held, every balance equals its ledger,
# the ledger verifies, and the same seed gives the same totals.
#
# Not part of `./nebula test`: `./nebula soak [--seed N] [--requests N]`
# runs it (NEBULA_SOAK=1).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use IO::Socket::INET;
use JSON::PP qw(encode_json decode_json);
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin new_user new_key);
use NebulaBilling qw(billed_setup wallet ledger_rows reconcile topup);
use NebulaHost qw(extra_host stop_host host_error_log);
use NebulaTest qw(run_cmd);

plan skip_all => 'the chaos soak runs from ./nebula soak (NEBULA_SOAK=1)' unless $ENV{NEBULA_SOAK};

my $SEED = $ENV{NEBULA_SOAK_SEED} // 20261127;
my $N = $ENV{NEBULA_SOAK_REQUESTS} // 1000;
my $ROUNDS = $ENV{NEBULA_SOAK_ROUNDS} // 2;
my $KILL_EVERY = $ENV{NEBULA_SOAK_KILL_EVERY} // 20;
my $CONC = $ENV{NEBULA_SOAK_CONCURRENCY} // 20;
# 200 ms between events: a round of 1000 requests lasts about two minutes
my $DELAY_MS = 200;
my $MAX_TOKENS = 64;
my $TTL = 15;

plan tests => 3 + 12 * $ROUNDS + ($ROUNDS > 1 ? 2 : 0);
t_debug("seed $SEED, $N requests a round, $ROUNDS rounds, a kill every ${KILL_EVERY}s, "
        . "$CONC clients");

# ---- the plan: one seeded shape per request --------------------------------------------
# class: ok (the mock's usage) | no_usage | drop (cut after K events) | negative
sub plan_round {
    my ($seed) = @_;
    srand($seed);
    my @plan;
    for my $i (0 .. $N - 1) {
        my $r = rand();
        my $class = $r < 0.01 ? 'negative' : $r < 0.06 ? 'drop' : $r < 0.16 ? 'no_usage' : 'ok';
        my %p = (i => $i, class => $class, words => (6, 12, 24)[int rand 3],
                 events => (8, 16, 24)[int rand 3]);
        $p{k} = (2, 5)[int rand 2] if $class eq 'drop';
        # a client that leaves: after this many bytes of the answer's body
        my $abort = rand() < 0.30;
        $p{abort} = $abort ? 1 + int(rand(900)) : 0;
        push @plan, \%p;
    }
    return \@plan;
}

sub shape_of { my $p = shift; join ':', $p->{class}, $p->{words}, $p->{events}, $p->{k} // 0 }

sub body_of {
    my ($model, $p) = @_;
    my $ctl = "events=$p->{events}";
    $ctl .= ',no_usage=1' if $p->{class} eq 'no_usage';
    $ctl .= ",drop_after=$p->{k}" if $p->{class} eq 'drop';
    $ctl .= ',negative_usage=1' if $p->{class} eq 'negative';
    my $text = join(' ', map { "w$_" } 1 .. $p->{words}) . " [[mock $ctl]]";
    return encode_json({ model => $model, stream => JSON::PP::true, max_tokens => $MAX_TOKENS,
                         stream_options => { include_usage => JSON::PP::true },
                         messages => [ { role => 'user', content => $text } ] });
}

# ---- one client ----------------------------------------------------------------------------
# POST, read the answer (or leave after $abort body bytes); returns what it saw.
sub one_request {
    my ($hp, $key, $body, $abort) = @_;
    my %out = (status => 0, rid => '', done => 0, aborted => 0, bytes => 0);
    my $sock = IO::Socket::INET->new(PeerAddr => $hp, Timeout => 10) or return \%out;
    print $sock "POST /v1/chat/completions HTTP/1.1\r\nHost: $hp\r\nConnection: close\r\n"
        . "Authorization: Bearer $key\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    my ($buf, $head) = ('', undef);
    my $deadline = time + 60;
    while (time < $deadline) {
        my $n = sysread($sock, my $d, 16384);
        last if !$n;
        $buf .= $d;
        if (!defined $head) {
            my $at = index($buf, "\r\n\r\n");
            next if $at < 0;
            $head = substr($buf, 0, $at);
            $buf = substr($buf, $at + 4);
            ($out{status}) = $head =~ m{^HTTP/1\.\d (\d{3})};
            ($out{rid}) = $head =~ m{^X-Request-Id:\s*(\S+)}mi;
            $out{rid} //= '';
        }
        if ($abort && length($buf) >= $abort) {
            $out{aborted} = 1;
            last;
        }
    }
    close $sock;
    $out{bytes} = length $buf;
    $out{done} = $buf =~ /data: \[DONE\]/ ? 1 : 0;
    $out{error_event} = $buf =~ /data: \{"error"/ ? 1 : 0;
    return \%out;
}

# ---- the gateway host under test ----------------------------------------------------------
my %s = billed_setup(name => 'chaos', controls => "delay_ms=$DELAY_MS");
my $h = extra_host(billing => 1, servers => 4, start => 4, threads => 32, settle => 1,
                   conf => "NebulaScheduler On\nNebulaSchedulerInterval 2s\n"
                         . "NebulaReservationTTL ${TTL}s\n");
my $hp = "127.0.0.1:$h->{port}";

sub children {
    open(my $fh, '<', "$h->{dir}/httpd.pid") or return ();
    chomp(my $parent = <$fh> // '');
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $s, '<', $stat) or next;
        my $line = <$s> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @kids, $pid if $ppid == $parent;
    }
    return sort { $a <=> $b } @kids;
}

# charges by request id on an account (consume rows), and every row
sub charges {
    my ($acct) = @_;
    my (%by, @rows);
    @rows = @{ ledger_rows($acct) };
    for (grep { $_->{kind} eq 'consume' } @rows) {
        push @{ $by{ $_->{request_id} // '' } }, $_->{amount};
    }
    return (\%by, \@rows);
}

# ---- the reference charge of every shape, measured calmly ----------------------------------
my %ref;
{
    my %shapes;
    for my $r (1 .. $ROUNDS) {
        $shapes{ shape_of($_) } //= $_ for @{ plan_round($SEED) };
    }
    my $uid = new_user();
    topup($uid, 10_000_000);
    my ($key) = new_key(user_id => $uid);
    # one client a shape, all at once (no aborts, no kills, no other load)
    my (%rid, %kid);
    for my $shape (sort keys %shapes) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork() // die "fork: $!";
        if (!$pid) {
            close $r;
            print $w one_request($hp, $key, body_of($s{model}, $shapes{$shape}), 0)->{rid};
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        $kid{$pid} = [ $r, $shape ];
    }
    for my $pid (keys %kid) {
        my ($r, $shape) = @{ $kid{$pid} };
        my $rid = do { local $/; <$r> } // '';
        waitpid($pid, 0);
        $rid{$rid} = $shape if $rid;
    }
    my $acct = wallet($uid)->{id};
    my ($by) = charges($acct);
    $ref{ $rid{$_} } = -$by->{$_}[0] for grep { exists $rid{$_} } keys %$by;
    my @ok = grep { /^ok:/ } keys %shapes;
    my @wrong = grep { my ($c, $w, $e) = split /:/; $ref{$_} != $w + $e } @ok;
    is(scalar(keys %ref), scalar(keys %shapes),
       'every shape was measured once, calmly (' . scalar(keys %shapes) . ' shapes)');
    is("@wrong", '', "a complete answer costs the mock's usage: prompt words + events");
    t_debug("reference charges: " . encode_json(\%ref));
}

my (%total, %expected_total);
for my $round (1 .. $ROUNDS) {
    my $seed = $SEED; # every round: the same seed
    my $plan = plan_round($seed);
    my $uid = new_user();
    my $balance = 50_000_000;
    topup($uid, $balance);
    my ($key) = new_key(user_id => $uid);
    my $acct = wallet($uid)->{id};

    # the clients: $CONC processes, each taking every $CONC-th request
    my $dir = "$h->{dir}/round$round";
    mkdir $dir;
    my @pids;
    my $t0 = time;
    for my $w (0 .. $CONC - 1) {
        my $pid = fork() // die "fork: $!";
        if (!$pid) {
            open(my $out, '>', "$dir/$w.jsonl") or POSIX::_exit(1);
            for (my $i = $w; $i < $N; $i += $CONC) {
                my $p = $plan->[$i];
                my $res = one_request($hp, $key, body_of($s{model}, $p), $p->{abort});
                print $out encode_json({ %$res, i => $i }), "\n";
            }
            close $out;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    # the killer: a random child of the host every $KILL_EVERY s while clients run
    srand($seed ^ 0x5eed);
    my @kills;
    my $next = time + $KILL_EVERY;
    my %left = map { $_ => 1 } @pids;
    while (%left) {
        for (keys %left) { delete $left{$_} if waitpid($_, POSIX::WNOHANG()) > 0 }
        if ($KILL_EVERY && time >= $next && %left) {
            my @kids = children();
            if (@kids) {
                my $victim = $kids[int rand @kids];
                kill 'KILL', $victim and push @kills, $victim;
            }
            $next += $KILL_EVERY;
        }
        sleep 0.1;
    }
    my $elapsed = time - $t0;

    # quiescence: the scheduler reclaims the holds of killed requests
    my $w;
    my $wait0 = time;
    for (1 .. 4 * ($TTL + 20)) {
        $w = admin('GET', "/api/users/$uid/account");
        $w = $w->{data} // $w;
        last if !$w->{reserved};
        sleep 0.25;
    }
    my $quiet = time - $wait0;

    my @res;
    for my $f (glob "$dir/*.jsonl") {
        open(my $fh, '<', $f) or next;
        push @res, map { decode_json($_) } <$fh>;
    }
    my %byi = map { $_->{i} => $_ } @res;
    my ($by, $rows) = charges($acct);

    my (@twice, @wrong, @uncharged, @unknown, $charged, $expected);
    my %seen_rid;
    $charged = $expected = 0;
    for my $p (@$plan) {
        my $r = $byi{ $p->{i} } // {};
        my $want = $ref{ shape_of($p) };
        $expected += $want;
        my $rid = $r->{rid} // '';
        $seen_rid{$rid} = 1 if $rid;
        my $got = $rid ? $by->{$rid} : undef;
        if (!$got) { push @uncharged, $p->{i}; next }
        push @twice, $p->{i} if @$got > 1;
        push @wrong, "$p->{i}(" . shape_of($p) . "): $got->[0] not -$want"
            if $got->[0] != -$want;
        $charged += -$got->[0];
    }
    # consume rows of requests no client saw an id for (killed before the headers)
    @unknown = grep { !$seen_rid{$_} } keys %$by;
    my %st;
    $st{ $_->{status} }++ for @res;
    my $aborted = grep { $_->{aborted} } @res;
    my $complete = grep { $_->{done} && !$_->{aborted} } @res;
    my %cls;
    $cls{ $_->{class} }++ for @$plan;
    t_debug(sprintf('round %d: %d requests in %.1f s, %d kills, statuses %s, classes %s, '
                    . '%d left early, %d complete, %d uncharged; quiet after %.1f s',
                    $round, scalar(@res), $elapsed, scalar(@kills), encode_json(\%st),
                    encode_json(\%cls), $aborted, $complete, scalar(@uncharged), $quiet));

    is(scalar(@res), $N, "round $round: every client reported");
    is($w->{reserved} // -1, 0, "round $round: nothing held after the scheduler's sweep");
    is("@twice", '', "round $round: no request charged twice");
    is(join('; ', @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]), '',
       "round $round: every charge is its shape's (policy or the mock's usage)");
    is(scalar(@unknown), 0, "round $round: every consume row belongs to a request a client sent")
        or diag("unknown: @unknown[0 .. ($#unknown < 9 ? $#unknown : 9)]");
    is(scalar(grep { $_->{kind} eq 'consume' && $_->{amount} > 0 } @$rows), 0,
       "round $round: no consume row credits anyone (negative usage included)");
    my @neg = grep { $_->{class} eq 'negative' && $byi{ $_->{i} }{rid}
                     && $by->{ $byi{ $_->{i} }{rid} } } @$plan;
    ok(!grep({ -$by->{ $byi{ $_->{i} }{rid} }[0] < $ref{ shape_of($_) } } @neg),
       "round $round: negative usage is charged the reservation (" . scalar(@neg) . ' seen)');
    # a request goes uncharged only when a kill took it: at most the
    # requests in flight in one child (a quarter of the clients) a kill
    my $bound = scalar(@kills) * $CONC;
    ok(@uncharged <= $bound, "round $round: uncharged only by kills (" . scalar(@uncharged)
       . " uncharged, " . scalar(@kills) . " kills)");
    my $due = int($elapsed / ($KILL_EVERY || 1));
    ok(!$KILL_EVERY || (@kills >= 1 && @kills >= $due),
       "round $round: a child killed every ${KILL_EVERY}s (" . scalar(@kills) . " kills in "
       . sprintf('%.0f s)', $elapsed));
    is($w->{balance}, $balance - $charged, "round $round: the balance is the top-up less the charges");
    my $sum = 0;
    $sum += $_->{amount} for @$rows;
    is($sum, $w->{balance}, "round $round: the balance equals the sum of its ledger rows");
    my $rec = reconcile();
    ok($rec->{ok}, "round $round: the books reconcile") or diag(encode_json($rec));

    my $lost = 0;
    $lost += $ref{ shape_of($plan->[$_]) } for @uncharged;
    $total{$round} = $charged + $lost;
    $expected_total{$round} = $expected;
    t_debug("round $round: charged $charged, uncharged (killed) requests' worth $lost, "
            . "expected $expected");
}

if ($ROUNDS > 1) {
    my @t = map { $total{$_} } sort keys %total;
    my @e = map { $expected_total{$_} } sort keys %expected_total;
    is(scalar(grep { $_ != $t[0] } @t), 0,
       "the same seed, the same totals (charged + killed requests' worth): @t");
    is(scalar(grep { $_ != $e[0] } @e), 0, "... equal to the plan's: @e");
}

my ($rc, $out) = run_cmd($ENV{NEBULA_CTL} // "$FindBin::Bin/../../admin/nebulactl/nebulactl",
                         'verify-ledger', '--driver', $ENV{NEBULA_TEST_DBD_DRIVER},
                         '--params', $ENV{NEBULA_TEST_DBD_PARAMS});
is($rc, 0, 'nebulactl verify-ledger finds nothing wrong') or diag($out);
my $log = host_error_log($h);
my @bad = grep { /\[(?:\w+:)?(?:error|crit|alert|emerg)\]/ } split /\n/, $log;
t_debug("host error log: " . scalar(@bad) . " error lines");
t_debug($_) for @bad[0 .. ($#bad < 19 ? $#bad : 19)];
stop_host($h);
