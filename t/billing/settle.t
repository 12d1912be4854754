# Reserve -> settle on the billed gateway: exact charges from the
# provider's usage (prices as new-api ratios, integer units), the ledger row,
# the request-log row, the key's cap, refusals (no price, no balance), holds
# released when nothing reached the client, usage that cannot be trusted.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_user new_key new_channel);
use NebulaBilling qw(billed_chat set_price topup wallet ledger_rows billed_setup uniq_model
                     reconcile);

plan tests => 49;

sub chat_body {
    my ($model, $text, %o) = @_;
    return { model => $model, messages => [ { role => 'user', content => $text } ], %o };
}

# ---- an exact charge: (P + N x completion ratio) x model ratio ---------------
my %s = billed_setup(name => 'exact', balance => 10000,
                     price => { model_ratio => '1', completion_ratio => '2' });
my $w0 = wallet($s{user});
is($w0->{balance}, 10000, 'the top-up is the wallet balance');
my $res = billed_chat($s{key}, chat_body($s{model}, 'one two three'));
is($res->code, 200, 'a funded request is served');
my $rid = $res->header('X-Request-Id');
my $w1 = wallet($s{user});
# P = 3 words, N = 5 events: 3 + 5 x 2 = 13 units
is($w1->{balance}, 10000 - 13, 'charged exactly (3 + 5 x 2) x 1 = 13 units');
is($w1->{reserved}, 0, 'nothing stays reserved');
my $rows = ledger_rows($w1->{id});
is(scalar @$rows, 2, 'two ledger rows: the top-up and the charge');
my $c = $rows->[1];
is_deeply([ @$c{qw(kind amount balance_after request_id)} ],
          [ 'consume', -13, 9987, $rid ], 'one consume row, with the request id');
is($c->{idem_key}, "consume:$rid", 'keyed by the request id');
is($c->{detail}{prompt}, 3, 'its detail names the usage');
my $log = admin('GET', "/api/logs/$rid");
$log = $log->{data} // $log;
is($log->{cost}, 13, 'the request-log row carries the cost');
my $k = admin('GET', "/api/keys/$s{key_id}");
$k = $k->{data} // $k;
is($k->{used_quota}, 13, 'the key counts what it spent');
is($k->{remain_quota}, 100000000 - 13, "the key's cap went down by the cost, the hold given back");

# ---- the model asked for is priced, not the mapped one -----------------------
my $cheap = uniq_model('cheap');
set_price($cheap, model_ratio => '0.5', completion_ratio => '1');
my $dear = uniq_model('dear');
set_price($dear, model_ratio => '10', completion_ratio => '1');
my $map = new_channel(models => [$cheap], model_mapping => { $cheap => $dear });
my %m = (user => new_user());
topup($m{user}, 10000);
my $mkey = new_key(user_id => $m{user});
$res = billed_chat($mkey, chat_body($cheap, 'a b c d'));
is($res->code, 200, 'a mapped model is served');
# (4 + 5) x 0.5 = 4.5 -> rounded up to 5
is(wallet($m{user})->{balance}, 10000 - 5, 'priced as the requested model (rounded up), not the mapped one');

# ---- cached tokens: OpenAI counts them inside prompt_tokens ------------------
my %ca = billed_setup(name => 'cache', balance => 10000,
                      price => { model_ratio => '1', completion_ratio => '1',
                                 cache_read_ratio => '0.5' });
$res = billed_chat($ca{key}, chat_body($ca{model}, 'w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 [[mock cached=4]]'));
is($res->code, 200, 'served with cached tokens');
# uncached 10 - 4 = 6, cached 4 x 0.5 = 2, output 5: 13
is(wallet($ca{user})->{balance}, 10000 - 13, 'cache reads priced at their ratio, apart from the rest');

# ---- group ratio --------------------------------------------------------------
my $gname = "vip-$$";
admin('POST', '/api/groups', { name => $gname, ratio_ppm => 2000000 });
my %g = billed_setup(name => 'group', balance => 10000, user => { user_group => $gname },
                     key => { key_group => $gname });
admin('PATCH', "/api/channels/$g{channel}", { channel_groups => [ 'default', $gname ] });
$res = billed_chat($g{key}, chat_body($g{model}, 'x y'));
is($res->code, 200, 'a request in a group with ratio 2 is served');
is(wallet($g{user})->{balance}, 10000 - (2 + 5) * 2, 'the group ratio doubles the cost');

# ---- a model without a price is refused ---------------------------------------
my %u = billed_setup(name => 'unpriced', unpriced => 1, balance => 10000);
$res = billed_chat($u{key}, chat_body($u{model}, 'hello'));
is($res->code, 400, 'a model with no price: 400');
my $err = decode_json($res->content)->{error};
is($err->{code}, 'model_price_error', '... code model_price_error');
like($err->{message}, qr/\Q$u{model}\E/, '... naming the model');
is(wallet($u{user})->{balance}, 10000, '... nothing charged');

# ---- not enough balance: refused before relaying -------------------------------
my %p = billed_setup(name => 'poor', balance => 100);
$res = billed_chat($p{key}, chat_body($p{model}, 'hello', max_tokens => 10));
is($res->code, 429, 'a balance below the worst case (500-token prompt floor + output): 429');
$err = decode_json($res->content)->{error};
is_deeply([ @$err{qw(type code)} ], [ 'insufficient_quota', 'insufficient_quota' ],
          '... an OpenAI-shaped insufficient_quota error');
is(scalar @{ NebulaAdmin::mock_records($p{tag}) }, 0, '... and nothing reached the upstream');
topup($p{user}, 500);
$res = billed_chat($p{key}, chat_body($p{model}, 'hello', max_tokens => 10));
is($res->code, 200, 'with 600 units the worst case (500 + 10) fits: served');
is(wallet($p{user})->{balance}, 600 - (1 + 5), '... and charged what it used');

# ---- the key's own cap ----------------------------------------------------------
my %kc = billed_setup(name => 'keycap', balance => 100000, key => { remain_quota => 50 });
$res = billed_chat($kc{key}, chat_body($kc{model}, 'hello', max_tokens => 10));
is($res->code, 429, "the key's cap refuses although the wallet could pay");
is(wallet($kc{user})->{balance}, 100000, '... nothing charged');

# ---- overdraft limit --------------------------------------------------------------
my %od = billed_setup(name => 'overdraft', balance => 0);
$res = billed_chat($od{key}, chat_body($od{model}, 'hello', max_tokens => 10));
is($res->code, 429, 'an empty wallet without overdraft: 429');
my $acct = wallet($od{user});
admin('PATCH', "/api/billing/accounts/$acct->{id}", { overdraft_limit => 1000 });
$res = billed_chat($od{key}, chat_body($od{model}, 'hello', max_tokens => 10));
is($res->code, 200, 'with an overdraft limit of 1000 it is served');
is(wallet($od{user})->{balance}, -6, '... and the balance goes below zero, within the limit');

# ---- nothing reached the client: the hold is released, nothing charged ------------
my %f = billed_setup(name => 'fail', balance => 10000, controls => 'status=500');
$res = billed_chat($f{key}, chat_body($f{model}, 'hello'));
is($res->code, 500, "the only channel fails: the upstream's 500 is passed on");
my $wf = wallet($f{user});
is_deeply([ @$wf{qw(balance reserved)} ], [ 10000, 0 ], '... the hold released, nothing charged');
is(scalar @{ ledger_rows($wf->{id}) }, 1, '... no consume row');
$log = admin('GET', '/api/logs/' . $res->header('X-Request-Id'));
$log = $log->{data} // $log;
is_deeply([ @$log{qw(cost status)} ], [ 0, 500 ], '... one request-log row with cost 0');

# ---- usage the upstream got wrong is refused, never credited -----------------------
my %n = billed_setup(name => 'negative', balance => 10000, controls => 'negative_usage=1');
$res = billed_chat($n{key}, chat_body($n{model}, 'hello', max_tokens => 20));
is($res->code, 200, 'an answer with negative usage is still relayed');
my $wn = wallet($n{user});
# the worst case held: max(prompt estimate, 500) + 20
is($wn->{balance}, 10000 - 520, 'negative usage is refused: the hold (worst case) is charged, nothing credited');
my $nrows = ledger_rows($wn->{id});
ok($nrows->[-1]{detail}{refused_usage}, '... the row says the usage was refused');

# ---- streams are billed from the provider's usage --------------------------------
my %st = billed_setup(name => 'stream', balance => 10000,
                      price => { model_ratio => '1', completion_ratio => '3' });
$res = billed_chat($st{key}, chat_body($st{model}, 'a b', stream => JSON::PP::true));
is($res->code, 200, 'a stream is served');
like($res->content, qr/data: \[DONE\]/, '... to the end');
is(wallet($st{user})->{balance}, 10000 - (2 + 5 * 3), '... and charged from the usage the gateway asked for');

# ---- absent usage: the gateway's own count ----------------------------------------
my %nu = billed_setup(name => 'nousage', balance => 10000, controls => 'no_usage=1');
$res = billed_chat($nu{key}, chat_body($nu{model}, 'hello there'));
is($res->code, 200, 'an answer without usage is served');
my $wnu = wallet($nu{user});
ok($wnu->{balance} < 10000, 'and still charged (the gateway counts the tokens)');
$rows = ledger_rows($wnu->{id});
is($rows->[-1]{detail}{estimated}, JSON::PP::true, '... marked as an estimate');

# ---- organisations: members pay from the shared wallet ----------------------------
my $org = admin('POST', '/api/orgs', { name => "org-$$" });
$org = $org->{data} // $org;
my %o1 = billed_setup(name => 'org1');
my $u2 = new_user();
admin('PATCH', "/api/users/$o1{user}", { org_id => $org->{id} });
admin('PATCH', "/api/users/$u2", { org_id => $org->{id} });
admin('POST', "/api/orgs/$org->{id}/topup", { amount => 2000, reason => 'org funding' });
my $k2 = new_key(user_id => $u2);
is(billed_chat($o1{key}, chat_body($o1{model}, 'a'))->code, 200, 'an org member is served');
is(billed_chat($k2, chat_body($o1{model}, 'a b'))->code, 200, 'another member too');
my $ow = NebulaBilling::settled("/api/orgs/$org->{id}/account");
is($ow->{balance}, 2000 - 6 - 7, 'both charged to the one organisation wallet');
is(wallet($o1{user})->{balance}, 0, "... not to the member's own");

# ---- the books balance ------------------------------------------------------------
my $rec = reconcile();
ok($rec->{ok}, 'reconciliation: every balance equals the sum of its ledger rows')
    or diag(JSON::PP->new->canonical->encode($rec));
