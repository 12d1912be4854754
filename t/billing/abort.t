# Streams the client leaves at random points are billed exactly once, by
# the disconnect policy, and never at zero: drain (the default) keeps
# reading the upstream and bills its real usage; stop (<Location /stop>)
# bills what was delivered, counted by the gateway.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use IO::Socket::INET;
use JSON::PP qw(encode_json);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin);
use NebulaBilling qw(billed_hostport wallet ledger_rows billed_setup reconcile);

my $seed = $ENV{NEBULA_ABORT_SEED} // (time() ^ $$) & 0xffff;
srand($seed);
my $RUNS = 4;
plan tests => 2 * 4 * $RUNS + 3;
t_debug("seed $seed (NEBULA_ABORT_SEED replays it)");

# Send a streaming chat, read until @a $after "data:" lines, then close.
sub abort_after {
    my ($path, $key, $body, $after) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => billed_hostport(), Timeout => 10) or die $!;
    print $sock "POST $path HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $key\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($body)
        . "\r\n\r\n$body";
    my ($buf, $lines) = ('', 0);
    my $deadline = time + 20;
    while ($lines < $after && time < $deadline) {
        my $n = sysread($sock, my $d, 4096) or last;
        $buf .= $d;
        $lines = () = $buf =~ /^data: /mg;
    }
    close $sock;
    return $lines;
}

# The consume rows of an account, waiting until @a $n exist.
sub consumes {
    my ($acct, $n) = @_;
    my $rows = [];
    for (1 .. 100) {
        $rows = [ grep { $_->{kind} eq 'consume' } @{ ledger_rows($acct) } ];
        last if @$rows >= $n;
        sleep 0.2;
    }
    return $rows;
}

my $EVENTS = 30;
for my $policy ('drain', 'stop') {
    my $path = $policy eq 'stop' ? '/stop/v1/chat/completions' : '/v1/chat/completions';
    my %s = billed_setup(name => "abort-$policy", balance => 1000000,
                         controls => "events=$EVENTS,delay_ms=60");
    my $acct = wallet($s{user})->{id};
    my $P = 4;
    my $body = encode_json({ model => $s{model}, stream => JSON::PP::true,
                             messages => [ { role => 'user', content => 'w1 w2 w3 w4' } ] });
    for my $run (1 .. $RUNS) {
        my $after = 1 + int(rand($EVENTS - 5));
        my $got = abort_after($path, $s{key}, $body, $after);
        my $rows = consumes($acct, $run);
        sleep 0.5;
        $rows = consumes($acct, $run);
        is(scalar @$rows, $run, "$policy, left after $got events: billed once");
        my $amount = -$rows->[-1]{amount};
        ok($amount > 0, "$policy: never zero ($amount units)");
        if ($policy eq 'drain') {
            is($amount, $P + $EVENTS, 'drain: the upstream\'s real usage (P + all events)');
            is($rows->[-1]{detail}{estimated}, JSON::PP::false, '... reported by the provider');
        }
        else {
            is($rows->[-1]{detail}{estimated}, JSON::PP::true,
               "stop: the gateway's own count of what was delivered");
            ok($amount >= $got, "stop: at least one unit per delivered event ($got seen)");
        }
    }
}
# drain, an upstream that reports no usage: the gateway counts all the text
# the upstream sent, also after the client left, so a client that leaves
# early is charged what one that stays is
{
    my %s = billed_setup(name => 'abort-nousage', balance => 1000000,
                         controls => "events=$EVENTS,delay_ms=30,no_usage=1");
    my $acct = wallet($s{user})->{id};
    my $body = encode_json({ model => $s{model}, stream => JSON::PP::true,
                             messages => [ { role => 'user', content => 'w1 w2 w3 w4' } ] });
    abort_after('/v1/chat/completions', $s{key}, $body, $EVENTS + 5); # the whole answer
    my $whole = -consumes($acct, 1)->[-1]{amount};
    my $got = abort_after('/v1/chat/completions', $s{key}, $body, 3);
    my $rows = consumes($acct, 2);
    is(scalar @$rows, 2, "drain without usage, left after $got events: billed once");
    is(-$rows->[-1]{amount}, $whole, "... the whole answer's count ($whole), as the client that stayed");
}
ok(reconcile()->{ok}, 'reconciliation is clean');
