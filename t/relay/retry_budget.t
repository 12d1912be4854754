# The retry budget (NebulaRetryBudget, mod_nebula_relay/relay_budget.c): two
# channels of equal weight, one failing two of every three requests (never
# three in a row, so its breaker stays closed): a third of the first attempts
# fail, more than the budget allows to retry. Retries stay within
# RATIO x requests + MIN a second (nebula_relay_budget: 0.2 and 1), every
# retry goes to another channel, and a request whose retry the budget
# refused gets the failed attempt's error. On a vhost with the default
# budget (0.2 and 10 a second) the same few failures are all retried.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json encode_json);
use LWP::UserAgent;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records relay_hostport);

plan tests => 10;

my $key = new_key();
my $ua = LWP::UserAgent->new(keep_alive => 2, timeout => 30);
sub ask {
    my ($hp, $m) = @_;
    return $ua->post("http://$hp/v1/chat/completions", Authorization => "Bearer $key",
        'Content-Type' => 'application/json',
        Content => encode_json({ model => $m, messages => [{ role => 'user', content => 'hi' }] }));
}
sub served { return scalar @{ mock_records($_[0], 5000) } }

# ---- the tight budget: 300 requests, a third of the first attempts fail ----
my $hp = NebulaAdmin::hostport_of('nebula_relay_budget');
my $m = "budget-$$";
my (undef, $bad) = new_channel(models => [$m], weight => 1,
                               controls => 'fail_mod=3,status=503,error_message=down');
my (undef, $good) = new_channel(models => [$m], weight => 1);
my $n = 300;
my (%codes, $other);
my $t0 = time;
for (1 .. $n) {
    my $res = ask($hp, $m);
    $codes{ $res->code }++;
    if ($res->code == 503) {
        my $e = eval { decode_json($res->content)->{error} } // {};
        $other++ unless ($e->{message} // '') eq 'down';
    }
}
my $elapsed = time - $t0;
my ($na, $nb) = (served($bad), served($good));
my $retries = $na + $nb - $n;
t_debug(sprintf('codes %s, bad %d, good %d, retries %d, %.1f s',
                encode_json(\%codes), $na, $nb, $retries, $elapsed));
is(($codes{200} // 0) + ($codes{503} // 0), $n, 'every answer is 200 or the upstream 503');
ok(!$other, "... the 503s carry the failed attempt's error");
my $fa = $na - int($na / 3); # its calls that failed: all but every third
cmp_ok($fa, '>', $n / 4, "about half the first attempts went to the failing channel ($na)");
# each retry goes from the failing channel to the other one and succeeds;
# a first attempt that failed and was not retried is a 503
is($fa, ($codes{503} // 0) + $retries, 'failed first attempts = 503s + retries');
is($nb + $na - $fa, ($codes{200} // 0), 'each 200 was served once');
# the budget: 20 % of the requests + 1 a second over the window (the run
# lasts a few seconds: the window's floor is at most 10 + the run's length)
my $bound = int(0.2 * $n + 1 * (10 + $elapsed + 1)) + 3;
cmp_ok($retries, '<=', $bound, "retries ($retries) within the budget (<= $bound)");
cmp_ok($retries, '>=', int(0.2 * $n * 0.5), "... and the budget was used ($retries)");
cmp_ok($codes{503} // 0, '>', 0, 'requests past the budget got the upstream error');

# ---- the default budget retries a handful of failures -----------------------
my $m2 = "budget-default-$$";
my (undef, $bad2) = new_channel(models => [$m2], weight => 1, controls => 'fail_mod=3');
my (undef, $good2) = new_channel(models => [$m2], weight => 1);
my $ok = 0;
$ok += ask(relay_hostport(), $m2)->code == 200 for 1 .. 40;
is($ok, 40, 'default budget: all 40 answered 200');
my $nb2 = served($bad2);
is(served($good2) + int($nb2 / 3), 40, 'every failed first attempt was retried on the other channel');
