# Auto-disabled channels and keys come back by themselves: after
# NebulaRetestInterval (4s here) they are enabled on probation; one that
# still fails is taken out again after NebulaAutoDisable's 3 errors, one that
# was mended serves again. Clients never see the failures (failover).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin new_key new_channel mock_records chat);

plan tests => 8;

my $key = new_key();
sub ask { return chat($key, { model => $_[0], messages => [{ role => 'user', content => 'hi' }] })->code }
sub channel { return admin('GET', "/api/channels/$_[0]")->{data} }
sub wait_status {
    my ($id, $want, $secs) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) { return 1 if channel($id)->{status} eq $want; sleep 0.25 }
    return 0;
}

my $m = "rt-$$";
my ($bad) = new_channel(models => [$m], priority => 10, keys => ['bad-still-bad']);
new_channel(models => [$m], priority => 1);
is(ask($m), 200, 'answered') for 1 .. 3;
is(channel($bad)->{status}, 'auto_disabled', 'the bad channel was auto-disabled');
ok(wait_status($bad, 'enabled', 8), 'after the re-test interval it is enabled on probation');
ask($m) for 1 .. 3;
ok(wait_status($bad, 'auto_disabled', 3), 'still failing: taken out again after three errors');

# one bad key of a multi-key channel comes back too
my $m2 = "rtk-$$";
my ($mk) = new_channel(models => [$m2], keys => ['bad-key-rt', 'sk-good-rt']);
ask($m2) for 1 .. 8;
my @st = sort map { $_->{status} } @{ channel($mk)->{keys} };
is_deeply(\@st, ['auto_disabled', 'enabled'], 'a bad key of a multi-key channel was disabled');
my $t0 = time;
my $back = 0;
while (time - $t0 < 8) {
    last if $back = !grep { $_->{status} ne 'enabled' } @{ channel($mk)->{keys} };
    sleep 0.25;
}
ok($back, 'after the re-test interval the key is enabled on probation');
