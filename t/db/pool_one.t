# No thread holds two database connections. mod_dbd lends without a
# timeout: when DBDMax threads each hold one and wait for a second, none is
# ever lent again and the child hangs (seen with 20 concurrent voucher
# redemptions on PostgreSQL: the admin API held its connection while the
# billing module borrowed another). Here every path that crosses modules
# runs on vhosts whose pool has a single connection (t/conf/pool_one.conf.in),
# where a nested borrow waits for ever at once: each request must be
# answered within its timeout.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../admin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq make_user);
use NebulaAdmin ();
use NebulaBilling qw(billed_setup wallet);
use NebulaTest qw(sse_events);
use JSON::PP qw(encode_json);
use LWP::UserAgent;

plan tests => 19;

my $base = 'http://' . NebulaAdmin::hostport_of('nebula_admin_pool1');
my $relay = 'http://' . NebulaAdmin::hostport_of('nebula_billed_pool1');
my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 20);
sub one { my ($m, $p, $b, %o) = @_; return api($m, $p, $b, base => $base, ua => $ua, %o) }
sub status_of { my ($res, $j) = @_; return $res->code . ($res->code >= 300 ? ' ' . $res->content : '') }

my %s = billed_setup(name => 'pool1', balance => 1_000_000);
my $uid = $s{user};

# ---- admin API -> billing ------------------------------------------------
my ($res, $j) = one('POST', "/api/users/$uid/topup",
                    { amount => 500, reason => 'pool of one', idempotency_key => uniq('p1') });
like(status_of($res), qr/^20[01]$/, 'a top-up (the admin API, then a billing posting)');

# two batches (a user may redeem one code of a batch)
my @codes = map {
    my $batch = api_ok('POST', '/api/vouchers', { name => uniq('p1'), kind => 'quota',
                                                  amount => 700, codes => 1 });
    my ($r) = api('GET', "/api/vouchers/$batch->{id}/export");
    (split /,/, (split /\n/, $r->content)[1])[0];
} 1 .. 2;
($res, $j) = one('POST', "/api/users/$uid/redeem", { code => $codes[0] });
is(status_of($res), '200', 'a voucher redeemed by an admin');
my $tok = api_ok('POST', "/api/users/$uid/access-token")->{access_token};
($res, $j) = one('POST', '/api/self/redeem', { code => $codes[1] }, token => $tok);
is(status_of($res), '200', 'a voucher redeemed by its user (token looked up first)');
($res, $j) = one('POST', '/api/self/redeem', { code => $codes[1] }, token => $tok);
is($res->code, 409, 'a used code is refused');

my $plan = api_ok('POST', '/api/billing/plans', { name => uniq('p1plan'), quota_per_period => 1000 });
($res, $j) = one('POST', '/api/billing/subscriptions',
                 { plan_id => $plan->{id}, subject_kind => 'user', subject_id => $uid });
is(status_of($res), '201', 'a subscription');
my $sub = $j->{data} // {};
($res) = one('DELETE', "/api/billing/subscriptions/$sub->{id}");
is(status_of($res), '204', 'its cancellation');
($res) = one('POST', '/api/billing/scheduler/run');
is(status_of($res), '200', 'a scheduler run');

# ---- admin API -> governance, relay ---------------------------------------
($res, $j) = one('POST', '/api/policies/test',
                 { body => { model => 'gpt-4o', messages => [ { role => 'user', content => 'hi' } ] } });
is(status_of($res), '200', 'a policy test');
($res, $j) = one('POST', "/api/channels/$s{channel}/test", {});
is(status_of($res), '200', 'a channel test (the channel snapshot, the upstream, the record)');
ok($j->{data}{ok}, '... which passed');

($res, $j) = one('GET', "/api/users/$uid/account");
is(status_of($res), '200', 'the account');
is($j->{data}{balance}, 1_000_000 + 500 + 700 + 700, 'every credit landed once');

# ---- relay -> governance, billing ----------------------------------------
sub relay {
    my ($body) = @_;
    my $req = HTTP::Request->new(POST => "$relay/v1/chat/completions");
    $req->header(Authorization => "Bearer $s{key}", 'Content-Type' => 'application/json');
    $req->content(encode_json($body));
    return $ua->request($req);
}
my $msg = [ { role => 'user', content => 'a b c' } ];
$res = relay({ model => $s{model}, max_tokens => 5, messages => $msg });
is(status_of($res), '200', 'a billed chat completion');
like($res->content, qr/"usage"/, '... with its usage');
$res = relay({ model => $s{model}, max_tokens => 5, messages => $msg, stream => JSON::PP::true });
is(status_of($res), '200', 'a billed stream');
my $ev = sse_events($res->content);
is($ev->[-1][1], '[DONE]', '... to its end');
$res = relay({ model => 'no-such-model-pool1', messages => $msg });
like($res->code, qr/^4\d\d$/, 'an unknown model: refused, not hung');

my $w = wallet($uid);
cmp_ok($w->{balance}, '<', 1_000_000 + 1900, 'the two answers were charged');
is($w->{reserved} // 0, 0, 'nothing is left reserved');
