# /api/billing/accounts and the admin's money movements: top-ups and signed
# adjustments through mod_nebula_billing (one ledger row each), their
# idempotency (body key or Idempotency-Key header: a replay changes nothing
# and answers 200 with the first effect), overdraft limits, and the users
# API's quota, which is the user's wallet balance.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user db_value db_rows);

plan tests => 85;

my $tag = uniq('a');
my $u = make_user();
sub ledger_sum { db_value("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account_id = $_[0]") }
sub ledger_count { db_value("SELECT COUNT(*) FROM ledger WHERE account_id = $_[0]") }

# ---- the wallet of a user, before and after its first top-up ---------------
my ($res, $j) = api('GET', "/api/users/$u->{id}/account");
is($res->code, 200, 'a wallet never used: 200');
is_deeply([ @{ $j->{data} }{qw(id owner_kind owner_id unit balance reserved available
                               overdraft_limit billing_preference ledger_seq)} ],
          [ undef, 'user', $u->{id}, 'quota', 0, 0, 0, 0, 'subscription_first', 0 ],
          'shown with id null and zeros');
is(db_value("SELECT COUNT(*) FROM accounts WHERE owner_kind = 'user' AND owner_id = $u->{id}"),
   0, 'reading created no account');
($res) = api('GET', '/api/users/999999999/account');
is($res->code, 404, 'the wallet of an unknown user: 404');

($res, $j) = api('POST', "/api/users/$u->{id}/topup", { amount => 5000, reason => 'first top-up' });
is($res->code, 201, 'top-up by owner: 201');
my $e = $j->{data}{entry};
my $acct = $j->{data}{account};
ok(!$j->{data}{replayed}, 'replayed false');
is_deeply([ @$e{qw(account_id seq kind amount balance_after actor request_id)} ],
          [ $acct->{id}, 1, 'topup', 5000, 5000, 'root', undef ], 'the ledger entry');
is_deeply($e->{detail}, { reason => 'first top-up' }, 'detail holds the reason');
like($e->{idem_key}, qr/^admin:[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/,
     'without a client key: admin: and a fresh UUIDv7');
like($e->{row_hash}, qr/^[0-9a-f]{64}$/, 'a row hash');
is($e->{prev_hash}, '0' x 64, 'the first row chains to the genesis hash');
is_deeply([ @$acct{qw(owner_kind owner_id balance reserved available ledger_seq)} ],
          [ 'user', $u->{id}, 5000, 0, 5000, 1 ], 'the wallet was created');

# ---- accounts --------------------------------------------------------------
($res, $j) = api('GET', "/api/billing/accounts/$acct->{id}");
is_deeply([ $res->code, @{ $j->{data} }{qw(id balance available unit)} ],
          [ 200, $acct->{id}, 5000, 5000, 'quota' ], 'GET /api/billing/accounts/{id}');
ok($j->{data}{created_at} > 1600000000000 && $j->{data}{updated_at} >= $j->{data}{created_at},
   'created_at, updated_at');
($res, $j) = api('GET', "/api/billing/accounts?owner_kind=user&owner_id=$u->{id}");
is_deeply([ $j->{total}, map { $_->{id} } @{ $j->{data} } ], [ 1, $acct->{id} ],
          'list filtered by owner');
($res, $j) = api('GET', '/api/billing/accounts?owner_kind=user&per_page=1');
is(scalar @{ $j->{data} }, 1, 'per_page');
for my $q ('owner_kind=team', 'owner_id=0', 'owner_id=x', 'balance=1') {
    ($res) = api('GET', "/api/billing/accounts?$q");
    is($res->code, 400, "accounts with $q: 400");
}
($res) = api('GET', '/api/billing/accounts/999999999');
is($res->code, 404, 'unknown account: 404');

# ---- adjust, and the balances agree ---------------------------------------
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -1500, reason => 'correction' });
is($res->code, 201, 'adjust: 201');
is_deeply([ @{ $j->{data}{entry} }{qw(kind amount balance_after seq)} ], [ 'adjustment', -1500, 3500, 2 ],
          'an adjustment row');
is($j->{data}{entry}{prev_hash}, $e->{row_hash}, 'chained to the previous row');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/topup", { amount => 250, reason => 'bonus' });
is_deeply([ $res->code, $j->{data}{account}{balance} ], [ 201, 3750 ], 'top-up by account id');
is(db_value("SELECT balance FROM accounts WHERE id = $acct->{id}"), 3750, 'the account\'s balance');
is(ledger_sum($acct->{id}), 3750, 'equals the sum of its ledger rows');
is(api_ok('GET', "/api/users/$u->{id}")->{quota}, 3750, 'and the user\'s quota');
is(api_ok('GET', "/api/users/$u->{id}/account")->{id}, $acct->{id}, 'GET /api/users/{id}/account');

# ---- idempotency -----------------------------------------------------------
my $key = "$tag-k1";
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/topup",
                 { amount => 700, reason => 'order 1', idempotency_key => $key });
is($res->code, 201, 'with an idempotency key: 201');
my $first = $j->{data}{entry};
is($first->{idem_key}, "admin:$key", 'idem_key is admin: and the client\'s key');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/topup",
                 { amount => 700, reason => 'order 1', idempotency_key => $key });
is($res->code, 200, 'the same key again: 200');
ok($j->{data}{replayed}, 'replayed true');
is($j->{data}{entry}{id}, $first->{id}, 'the first effect is returned');
is($j->{data}{account}{balance}, 4450, 'the balance moved once');
is(db_value("SELECT COUNT(*) FROM ledger WHERE account_id = $acct->{id} AND idem_key = 'admin:$key'"),
   1, 'one ledger row for the key');
($res, $j) = api('POST', "/api/users/$u->{id}/topup",
                 { amount => 700, reason => 'order 1', idempotency_key => $key });
is_deeply([ $res->code, $j->{data}{entry}{id} ], [ 200, $first->{id} ],
          'the owner route replays it too');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/topup",
                 { amount => 701, reason => 'order 1', idempotency_key => $key });
is($res->code . ' ' . $j->{error}{code}, '422 idempotency_key_reused',
   'the same key for another amount: 422');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => 700, reason => 'order 1', idempotency_key => $key });
is($res->code, 422, 'the same key for another kind: 422');
is(ledger_count($acct->{id}), 4, 'four rows so far');

my %hdr = (headers => { 'Idempotency-Key' => "$tag-h1" });
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -50, reason => 'fee' }, %hdr);
is_deeply([ $res->code, $j->{data}{entry}{idem_key} ], [ 201, "admin:$tag-h1" ],
          'the Idempotency-Key header is the same thing');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -50, reason => 'fee', idempotency_key => "$tag-h1" }, %hdr);
is_deeply([ $res->code, $j->{data}{account}{balance} ], [ 200, 4400 ],
          'header and body with the same key: a replay');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -50, reason => 'fee', idempotency_key => "$tag-h2" }, %hdr);
is($res->code . ' ' . $j->{error}{param}, '400 idempotency_key', 'header and body differ: 400');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/topup", { amount => 1, reason => 'x' },
                 headers => { 'Idempotency-Key' => 'x' x 201 });
is($res->code . ' ' . $j->{error}{param}, '400 Idempotency-Key', 'an overlong header: 400');

# ---- the floor: overdraft limit and allow_negative ------------------------
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -4401, reason => 'too much' });
is($res->code . ' ' . $j->{error}{code}, '409 insufficient_balance',
   'below zero without an overdraft: 409 insufficient_balance');
is(ledger_count($acct->{id}), 5, 'no row written');
($res, $j) = api('PATCH', "/api/billing/accounts/$acct->{id}",
                 { overdraft_limit => 1000, billing_preference => 'wallet_first' });
is_deeply([ $res->code, @{ $j->{data} }{qw(overdraft_limit billing_preference balance)} ],
          [ 200, 1000, 'wallet_first', 4400 ], 'PATCH overdraft_limit and billing_preference');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -5400, reason => 'within the overdraft' });
is_deeply([ $res->code, @{ $j->{data}{account} }{qw(balance available)} ], [ 201, -1000, -1000 ],
          'down to -overdraft_limit: 201');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -1, reason => 'one more' });
is($res->code, 409, 'one unit past the overdraft: 409');
($res, $j) = api('POST', "/api/billing/accounts/$acct->{id}/adjust",
                 { amount => -1, reason => 'forced', allow_negative => JSON::PP::true });
is_deeply([ $res->code, $j->{data}{account}{balance} ], [ 201, -1001 ], 'allow_negative passes it');
api_ok('POST', "/api/billing/accounts/$acct->{id}/topup", { amount => 1001, reason => 'settle up' });
is(db_value("SELECT balance FROM accounts WHERE id = $acct->{id}"), 0, 'back to 0');
is(ledger_sum($acct->{id}), 0, 'the ledger agrees');
is(db_value("SELECT ledger_seq FROM accounts WHERE id = $acct->{id}"), ledger_count($acct->{id}),
   'ledger_seq counts the rows');

# ---- validation ------------------------------------------------------------
my $T = "/api/billing/accounts/$acct->{id}/topup";
my $A = "/api/billing/accounts/$acct->{id}/adjust";
my @bad = (
    [ $T, { amount => 0, reason => 'x' }, 'amount', 'top-up of 0' ],
    [ $T, { amount => -5, reason => 'x' }, 'amount', 'negative top-up' ],
    [ $T, { amount => '5', reason => 'x' }, 'amount', 'amount as a string' ],
    [ $T, { amount => 1.5, reason => 'x' }, 'amount', 'fractional amount' ],
    [ $T, { amount => 9007199254740992, reason => 'x' }, 'amount', 'amount above 2^53-1' ],
    [ $T, { reason => 'x' }, 'amount', 'missing amount' ],
    [ $T, { amount => 5 }, 'reason', 'missing reason' ],
    [ $T, { amount => 5, reason => '' }, 'reason', 'empty reason' ],
    [ $T, { amount => 5, reason => 'x' x 256 }, 'reason', 'reason of 256 bytes' ],
    [ $T, { amount => 5, reason => 'x', allow_negative => JSON::PP::true }, 'allow_negative',
      'allow_negative is not a top-up member' ],
    [ $T, { amount => 5, reason => 'x', idempotency_key => '' }, 'idempotency_key', 'empty key' ],
    [ $T, { amount => 5, reason => 'x', idempotency_key => 'k' x 201 }, 'idempotency_key',
      'key of 201 bytes' ],
    [ $A, { amount => 0, reason => 'x' }, 'amount', 'adjustment of 0' ],
    [ $A, { amount => 5, reason => 'x', allow_negative => 1 }, 'allow_negative',
      'allow_negative not a boolean' ],
);
for my $b (@bad) {
    ($res, $j) = api('POST', $b->[0], $b->[1]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[2]", "400 for $b->[3]");
}
for my $b ({ overdraft_limit => -1 }, { billing_preference => 'cheapest' }, { balance => 5 }, {}) {
    ($res) = api('PATCH', "/api/billing/accounts/$acct->{id}", $b);
    is($res->code, 400, 'PATCH refuses ' . JSON::PP->new->canonical->encode($b));
}
is(db_value("SELECT balance FROM accounts WHERE id = $acct->{id}"), 0, 'nothing moved');
($res) = api('POST', '/api/billing/accounts/999999999/topup', { amount => 5, reason => 'x' });
is($res->code, 404, 'top-up of an unknown account: 404');
($res) = api('POST', '/api/users/999999999/topup', { amount => 5, reason => 'x' });
is($res->code, 404, 'top-up of an unknown user: 404');
my $gone = make_user();
api_ok('DELETE', "/api/users/$gone->{id}", undef, expect => 204);
($res, $j) = api('POST', "/api/users/$gone->{id}/topup", { amount => 5, reason => 'x' });
is($res->code . ' ' . $j->{error}{code}, '409 user_deleted', 'top-up of a deleted user: 409');

# ---- the users API's quota is the wallet -----------------------------------
my $q = make_user(quota => 2500);
is($q->{quota}, 2500, 'POST /api/users with quota: the wallet holds it');
my $qa = db_value("SELECT id FROM accounts WHERE owner_kind = 'user' AND owner_id = $q->{id}");
is_deeply(db_rows("SELECT kind, amount, balance_after, actor, detail FROM ledger WHERE account_id = $qa"),
          [ [ 'adjustment', 2500, 2500, 'root', '{"reason":"quota set through the users API"}' ] ],
          'as one adjustment row');
like(db_value("SELECT idem_key FROM ledger WHERE account_id = $qa"), qr/^user-quota:$q->{id}:[0-9a-f-]{36}$/,
     'keyed user-quota:<id>:<uuid>');
($res, $j) = api('PATCH', "/api/users/$q->{id}", { quota => 1000 });
is($j->{data}{quota}, 1000, 'PATCH quota sets the balance');
is_deeply(db_rows("SELECT amount, balance_after FROM ledger WHERE account_id = $qa ORDER BY seq"),
          [ [ 2500, 2500 ], [ -1500, 1000 ] ], 'with a row for the difference');
is(db_value("SELECT quota FROM users WHERE id = $q->{id}"), 0, 'users.quota is no longer written');
($res, $j) = api('PATCH', "/api/users/$q->{id}", { quota => 1000, display_name => 'Quincy' });
is_deeply([ $j->{data}{quota}, ledger_count($qa) ], [ 1000, 2 ],
          'PATCH with the quota it already has: no row');
($res, $j) = api('GET', "/api/users?q=$q->{username}");
is($j->{data}[0]{quota}, 1000, 'the user list shows the wallet balance too');
api_ok('POST', "/api/billing/accounts/$qa/topup", { amount => 11, reason => 'gift' });
is(api_ok('GET', "/api/users/$q->{id}")->{quota}, 1011, 'a top-up shows in the quota');
my $z = make_user(quota => 0);
is(db_value("SELECT COUNT(*) FROM accounts WHERE owner_kind = 'user' AND owner_id = $z->{id}"), 0,
   'quota 0 on create: no wallet, no row');
