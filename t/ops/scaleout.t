# Scale-out (issue 11, item 1): two gateway hosts, each an httpd of its own
# with its own shared memory (t/lib/NebulaHost.pm: relay, billing,
# governance, the admin API and the scheduler, two children each), share this
# suite's database (PostgreSQL and MariaDB in their suites) and Redis:
#   - balances: 60 requests at once for one wallet over both hosts never
#     spend more than it holds; each answered request is charged once;
#   - limits: a key's rpm is counted across the hosts (10 in all, not 10 each);
#   - cache invalidation: a key revoked through host A's admin API is refused
#     by host B within 1 s, though both cache keys for 300 s;
#   - the scheduler: both hosts' schedulers and this server's run at once;
#     each subscription gets each period reset once.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use HTTP::Request;
use JSON::PP qw(encode_json decode_json);
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin new_key new_user);
use NebulaBilling qw(billed_setup wallet ledger_rows reconcile topup);
use NebulaHost qw(extra_host stop_host host_ask host_error_log);

plan tests => 14;

my $redis = $ENV{NEBULA_TEST_REDIS_URL}
    or BAIL_OUT('NEBULA_TEST_REDIS_URL is not set: run the suite with ./nebula test');

my $words = 1; # host_ask sends 'hi'
my $events = 5;
my $cost = $words + $events;
my %s = billed_setup(name => 'scale');
# limits are read when a host starts: this key's exists before they do
my ($lkey, $lkid) = new_key(user_id => $s{user});
admin('POST', '/api/rate-limits', { scope_kind => 'key', scope_value => "$lkid", rpm => 10 });
topup($s{user}, 1_000_000);

# one child each, so that what a host caches is what it serves from; holds
# of at most 10 tokens out
my $conf = "NebulaRedis $redis\nNebulaCacheTTL 300\nNebulaScheduler On\n"
         . "NebulaSchedulerInterval 1s\nNebulaReserveMinPrompt 1\nNebulaReserveMaxOutput 10\n";
my @h = map { extra_host(billing => 1, gov => 1, admin => 1, threads => 40, settle => 0.5,
                         conf => $conf) } 1 .. 2;

# the admin API of host $i: (status, decoded body)
sub host_api {
    my ($i, $method, $path, $body) = @_;
    my $req = HTTP::Request->new($method, "http://127.0.0.1:$h[$i]{admin_port}$path");
    $req->header(Authorization => "Bearer $NebulaAdmin::TOKEN");
    if (defined $body) {
        $req->header('Content-Type' => 'application/json');
        $req->content(encode_json($body));
    }
    my $res = NebulaAdmin::ua()->request($req);
    return ($res->code, eval { decode_json($res->content) } // $res->content);
}

# $n requests at once, alternating hosts: their statuses
sub burst {
    my ($n, $key) = @_;
    my %kid;
    for my $i (0 .. $n - 1) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork() // die "fork: $!";
        if (!$pid) {
            close $r;
            print $w host_ask($h[$i % 2], $key, $s{model});
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        $kid{$pid} = $r;
    }
    my @codes;
    for my $pid (keys %kid) {
        my $r = $kid{$pid};
        push @codes, do { local $/; <$r> } // 0;
        waitpid($pid, 0);
    }
    return @codes;
}

# ---- both hosts serve, and see the same data --------------------------------------
my ($code, $me) = host_api(0, 'GET', '/api/auth/me');
is($code, 200, "host A's admin API answers");
is(host_ask($h[1], $s{key}, $s{model}), 200, 'host B relays a billed request');

# ---- balances: one wallet, two hosts, 60 requests at once -----------------------------
# each request holds its prompt estimate and 10 tokens out, and costs 6: a
# wallet of 120 pays for 20 at most, and for at least the 6 or so that fit
# in it at once
{
    my $u = new_user();
    topup($u, 120);
    my ($key) = new_key(user_id => $u);
    my @codes = burst(60, $key);
    my $ok = grep { $_ == 200 } @codes;
    my $refused = grep { $_ == 429 } @codes;
    my $w = wallet($u);
    my @consume = grep { $_->{kind} eq 'consume' } @{ ledger_rows($w->{id}) };
    t_debug("60 at once over two hosts: $ok answered, $refused refused, balance $w->{balance}");
    is($ok + $refused, 60, 'every request was answered 200 or refused 429 (insufficient_quota)')
        or diag("@codes");
    ok($ok >= 1 && $ok <= 20, "no more were served than the wallet could pay for ($ok)");
    is(scalar(@consume), $ok, 'one consume row for each answered request');
    is($w->{balance}, 120 - $cost * $ok, "the balance is the top-up less $cost for each, never below 0");
}

# ---- limits: rpm=10 across both hosts ---------------------------------------------------
{
    my @codes = map { host_ask($h[$_ % 2], $lkey, $s{model}) } 1 .. 24;
    is(scalar(grep { $_ == 200 } @codes), 10, 'rpm=10 on a key admits 10 over both hosts, not 10 each')
        or diag("@codes");
    is(scalar(grep { $_ == 429 } @codes), 14, '... and refuses the other 14 with 429');
}

# ---- cache invalidation: revoked on A, refused by B within 1 s --------------------
{
    my ($key, $kid) = new_key(user_id => $s{user});
    my @first = map { host_ask($_, $key, $s{model}) } @h;
    is("@first", '200 200', 'both hosts serve a new key (and cache it for 300 s)');
    my ($c) = host_api(0, 'PATCH', "/api/keys/$kid", { status => 'disabled' });
    my ($t0, $got) = (time, 0);
    while (time - $t0 < 5) { last if ($got = host_ask($h[1], $key, $s{model})) == 401; sleep 0.02 }
    my $took = time - $t0;
    ok($c == 200 && $got == 401 && $took <= 1,
       sprintf('disabled through host A (%d): host B refuses it %.2f s later', $c, $took));
}

# ---- the scheduler: three of them, each reset once ------------------------------------
{
    my $H = 3600;
    my $plan = admin('POST', '/api/billing/plans',
                     { name => "scale-$$", period => 'custom', period_seconds => $H,
                       quota_per_period => 1000 })->{data};
    $plan = $plan->{id} // die 'no plan id';
    my $u = new_user();
    # two periods behind: two resets each are due at once
    my $start = int(time() * 1000) - 2 * $H * 1000 - 30_000;
    my @subs = map { admin('POST', '/api/billing/subscriptions',
                           { plan_id => $plan, subject_kind => 'user', subject_id => $u,
                             starts_at => $start }) } 1 .. 6;
    @subs = map { $_->{data} // $_ } @subs;
    # three schedulers, each pass a second: wait until every subscription
    # has its resets (asking often: a kept-alive connection idle for the
    # server's KeepAliveTimeout would be closed under the next request),
    # then two passes more of each, for any duplicate to show
    my $want = 'plan_grant,period_reset,plan_grant,period_reset,plan_grant';
    my (%kinds, @dup);
    my $look = sub {
        (%kinds, @dup) = ();
        for my $sub (@subs) {
            my $rows = ledger_rows($sub->{account_id});
            my %k;
            $k{ $_->{idem_key} }++ for @$rows;
            push @dup, grep { $k{$_} > 1 } keys %k;
            $kinds{ join(',', map { $_->{kind} } @$rows) }++;
        }
    };
    my $t0 = time;
    while (time - $t0 < 15) {
        $look->();
        last if ($kinds{$want} // 0) == @subs;
        sleep 0.5;
    }
    sleep 2.5;
    $look->();
    is_deeply(\%kinds, { $want => 6 },
              'six subscriptions two periods behind: each got its two resets once')
        or diag(encode_json(\%kinds));
    is("@dup", '', 'no effect applied twice');
}

my $rec = reconcile();
ok($rec->{ok}, 'the books reconcile') or diag(encode_json($rec));
my @bad;
for my $x (@h) {
    push @bad, grep { /\[(?:\w+:)?(?:error|crit|alert|emerg)\]/ } split /\n/, host_error_log($x);
}
is(scalar(@bad), 0, 'no host logged an error') or diag(join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]));
stop_host($_) for @h;
