# Channel health: the circuit breaker (open after 3 failures, one half-open
# probe after the 2s cool-down, closed by its success), auto-disable of a
# channel or of one key after 3 definitive errors (never on one, never with
# the opt-out), and the channel test that re-enables a mended channel.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_key new_channel mock_records chat);

plan tests => 23;

my $key = new_key();
sub ask { return chat($key, { model => $_[0], messages => [{ role => 'user', content => 'hi' }] }) }
sub served { return scalar @{ mock_records($_[0], 5000) } }
sub channel { return admin('GET', "/api/channels/$_[0]")->{data} }

# ---- breaker ---------------------------------------------------------------
{
    my $m = "brk-$$";
    my ($a_id, $a) = new_channel(models => [$m], priority => 10, controls => 'fail_first=3,status=500');
    my (undef, $b) = new_channel(models => [$m], priority => 1);
    is(ask($m)->code, 200, 'request 1: answered (A failed, B served)') for 1 .. 3;
    is(served($a), 3, 'A was tried three times');
    is(ask($m)->code, 200, 'request 4: answered');
    is(served($a), 3, 'A\'s breaker is open: not tried again');
    is(served($b), 4, 'B served all four');
    sleep 3; # the 2s cool-down
    is(ask($m)->code, 200, 'after the cool-down: answered');
    is(served($a), 4, 'A got the half-open probe (and answered: fail_first is spent)');
    ask($m) for 1 .. 3;
    is(served($a), 7, 'the probe\'s success closed the breaker: A serves again');
    is(served($b), 4, 'and B is idle');
}

# ---- auto-disable of a channel with an invalid upstream key -----------------
{
    my $m = "dis-$$";
    my ($c_id, $c) = new_channel(models => [$m], priority => 10, keys => ['bad-upstream-key']);
    my (undef, $d) = new_channel(models => [$m], priority => 1);
    ask($m);
    is(channel($c_id)->{status}, 'enabled', 'one 401 does not disable a channel');
    ask($m) for 1 .. 2;
    my $ch = channel($c_id);
    is($ch->{status}, 'auto_disabled', 'three 401s in the window: auto-disabled');
    like($ch->{status_reason} // '', qr/./, 'with a reason');
    my $before = served($c);
    is(ask($m)->code, 200, 'requests still answered');
    is(served($c), $before, 'by the other channel only');

    my ($code, $t) = api('POST', "/api/channels/$c_id/test", {});
    ok($code == 200 && !$t->{data}{ok} && $t->{data}{status} == 401, 'channel test: still failing (401)');
    admin('PATCH', "/api/channels/$c_id", { keys => ['sk-mended'] });
    ($code, $t) = api('POST', "/api/channels/$c_id/test", {});
    ok($code == 200 && $t->{data}{ok} && $t->{data}{reenabled}, 'channel test after mending: ok, re-enabled');
    is(channel($c_id)->{status}, 'enabled', 'the channel is enabled again');
    ask($m);
    is(served($c), $before + 3, 'and serves again (the two tests, then the request)');
}

# ---- the opt-out -------------------------------------------------------------
{
    my $m = "keep-$$";
    my ($e_id) = new_channel(models => [$m], priority => 10, keys => ['bad-key-kept'], auto_disable => JSON::PP::false);
    new_channel(models => [$m], priority => 1);
    ask($m) for 1 .. 4;
    is(channel($e_id)->{status}, 'enabled', 'auto_disable off: never disabled');
}

# ---- one bad key of a multi-key channel -------------------------------------
{
    my $m = "mk-$$";
    my ($f_id) = new_channel(models => [$m], keys => ['bad-key-one', 'sk-good-two']);
    my $ok = 0;
    $ok += ask($m)->code == 200 for 1 .. 8;
    is($ok, 8, 'multi-key channel: every request answered (the next key is tried)');
    my %st = map { ($_->{masked} // $_->{key_masked} // $_->{id}) => $_->{status} } @{ channel($f_id)->{keys} };
    is_deeply([sort values %st], ['auto_disabled', 'enabled'], 'the bad key alone was disabled');
}
