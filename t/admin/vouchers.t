# /api/vouchers (batches: create, list with statistics, one batch with its
# redemptions, PATCH, the one-time CSV export), redemption by an admin and
# by the user itself, codes never stored in clear, and new-api's redemption
# routes (/api/redemption/, /api/user/topup) with new-api's answer shapes.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq db_rows db_value db_exec make_user);
use Digest::SHA qw(hmac_sha256_hex);
use Time::HiRes ();

plan tests => 77;

use constant SECRET => 'nebula-test-crypto-secret-0123456789abcdef';
sub now_ms { return int(Time::HiRes::time() * 1000) }
sub token_of { return api_ok('POST', "/api/users/$_[0]{id}/access-token")->{access_token} }
sub norm { (my $c = uc $_[0]) =~ s/[-\s]//g; $c =~ tr/OIL/011/; return $c }

db_exec('DELETE FROM redeem_failures');

# ---- create: validation ----------------------------------------------------
my @bad = (
    [ {}, 'name', 'no name' ],
    [ { name => 'x' }, 'amount', 'a quota voucher without amount' ],
    [ { name => 'x', amount => 0 }, 'amount', 'amount 0' ],
    [ { name => 'x', amount => 5, codes => 10001 }, 'codes', 'more than 10000 codes' ],
    [ { name => 'x', amount => 5, kind => 'gift' }, 'kind', 'an unknown kind' ],
    [ { name => 'x', kind => 'plan' }, 'plan_id', 'a plan voucher without plan' ],
    [ { name => 'x', kind => 'plan', plan_id => 999999999 }, 'plan_id', 'a plan that does not exist' ],
    [ { name => 'x', amount => 5, scope => { models => ['gpt-4o'] } }, 'scope.models',
      'models on a quota voucher' ],
    [ { name => 'x', amount => 5, scope => { groups => ['no-such-group-zz'] } }, 'scope.groups',
      'an unknown group' ],
    [ { name => 'x', amount => 5, scope => { plans => [999999999] } }, 'scope.plans', 'an unknown plan' ],
    [ { name => 'x', amount => 5, scope => { users => [1] } }, 'users', 'an unknown scope member' ],
    [ { name => 'x', amount => 5, expires_at => now_ms() - 1000 }, 'expires_at', 'an end in the past' ],
    [ { name => 'x', amount => 5, prefix => 'AB-U' }, 'prefix', 'a prefix outside the alphabet' ],
    [ { name => 'x', amount => 5, per_user => 0 }, 'per_user', 'per_user 0' ],
);
for my $b (@bad) {
    my ($res, $j) = api('POST', '/api/vouchers', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for $b->[2]");
}
my ($res, $j) = api('POST', '/api/vouchers', { name => 'x', amount => 5, scope => { models => ['m'] } });
like($j->{error}{message}, qr/quota voucher credits the wallet.*plan voucher/,
     'the models refusal says what to do instead');

# ---- create, the batch (never the codes) ------------------------------------
my $name = uniq('batch');
($res, $j) = api('POST', '/api/vouchers', { name => $name, note => 'launch promo', amount => 1234,
                                            codes => 5, per_user => 1 });
is($res->code, 201, 'create: 201');
my $b = $j->{data};
is_deeply([ @$b{qw(name note kind amount codes redeemed remaining users status format total_uses
                   per_user starts_at expires_at exported_at scope)} ],
          [ $name, 'launch promo', 'quota', 1234, 5, 0, 5, 0, 'active', 'voucher', 0, 1, 0, 0, undef,
            undef ], 'the batch with its statistics');
is($b->{created_by}, 'root', 'created_by: who made it');
unlike($res->content, qr/[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}/, 'the answer holds no code');

# codes in the database: hashed and sealed, never in clear
my $rows = db_rows("SELECT code_hash, code_enc, hint, uses, max_uses, status FROM voucher_codes "
                   . "WHERE batch_id = $b->{id} ORDER BY id");
is(scalar(@$rows), 5, 'five code rows');
ok(!grep({ $_->[0] !~ /^[0-9a-f]{64}$/ || $_->[1] !~ /^nbk1:/ } @$rows),
   'each: a 64-hex hash and a sealed copy (nbk1:)');

# ---- the one export ----------------------------------------------------------
($res) = api('GET', "/api/vouchers/$b->{id}/export");
is($res->code, 200, 'export: 200');
like($res->header('Content-Type'), qr{^text/csv}, 'as CSV');
like($res->header('Content-Disposition'), qr/attachment; filename="vouchers-$b->{id}\.csv"/, 'an attachment');
my @lines = split /\n/, $res->content;
is(shift(@lines), 'code,hint,uses,max_uses,status', 'the header line');
my @codes = map { [ split /,/ ] } @lines;
is(scalar(@codes), 5, 'five codes');
is_deeply([ map { [ @$_[1 .. 4] ] } @codes ],
          [ map { [ substr(norm($_->[0]), -4), 0, 1, 'active' ] } @codes ], 'hint, uses, max_uses, status');
my %hash = map { $_->[0] => 1 } @$rows;
ok(!grep({ !$hash{ hmac_sha256_hex('voucher:' . norm($_->[0]), SECRET) } } @codes),
   'each stored hash is HMAC-SHA256(NebulaCryptoSecret, "voucher:" + the normalised code)');
my %uniq = map { $_->[0] => 1 } @codes;
is(scalar(keys %uniq), 5, 'five different codes');
$rows = db_rows("SELECT * FROM voucher_codes WHERE batch_id = $b->{id}");
my $dump = join("\n", map { join("\t", map { $_ // '' } @$_) } @$rows);
ok(!grep({ index($dump, $_->[0]) >= 0 || index($dump, norm($_->[0])) >= 0 } @codes),
   'after the export no column holds a code in clear');
is(db_value("SELECT COUNT(*) FROM voucher_codes WHERE batch_id = $b->{id} AND code_enc IS NOT NULL"), 0,
   'and the sealed copies are gone');
($res, $j) = api('GET', "/api/vouchers/$b->{id}/export");
is_deeply([ $res->code, $j->{error}{code} ], [ 410, 'already_exported' ], 'a second export: 410 Gone');
like($j->{error}{message}, qr/cannot be shown again/, 'with a message that says why');
($res) = api('GET', '/api/vouchers/999999999/export');
is($res->code, 404, 'export of no batch: 404');

# ---- redemption: by an admin, by the user itself -----------------------------
my $u1 = make_user();
my $u2 = make_user();
my $t2 = token_of($u2);
($res, $j) = api('POST', "/api/users/$u1->{id}/redeem", { code => $codes[0][0] });
is($res->code, 200, 'an admin redeems for a user: 200');
is_deeply([ @{ $j->{data} }{qw(user_id kind amount balance_after batch_id)} ],
          [ $u1->{id}, 'quota', 1234, 1234, $b->{id} ], 'the credit');
is(api_ok('GET', "/api/users/$u1->{id}/account")->{balance}, 1234, 'the user\'s wallet holds it');
my $led = db_rows("SELECT kind, amount, idem_key, actor, detail FROM ledger WHERE id = $j->{data}{ledger_id}")->[0];
my $cid = db_value("SELECT id FROM voucher_codes WHERE code_hash = '"
                   . hmac_sha256_hex('voucher:' . norm($codes[0][0]), SECRET) . "'");
is_deeply([ @$led[0 .. 3] ], [ 'voucher', 1234, "voucher:$cid:1", 'root' ], 'one ledger row: kind voucher, keyed, actor');
like($led->[4], qr/"batch_id":$b->{id}/, 'its detail names the batch');
($res, $j) = api('POST', '/api/self/redeem', { code => $codes[1][0] }, token => $t2);
is_deeply([ $res->code, $j->{data}{user_id}, $j->{data}{amount} ], [ 200, $u2->{id}, 1234 ],
          'a user redeems for itself: 200');
($res, $j) = api('POST', '/api/self/redeem', { code => $codes[2][0] }, token => $t2);
is_deeply([ $res->code, $j->{error}{code} ], [ 409, 'voucher_limit' ], 'per_user 1: a second code of the batch is refused');
($res, $j) = api('POST', '/api/self/redeem', { code => $codes[2][0] });
is_deeply([ $res->code, $j->{error}{code} ], [ 400, 'no_user' ], 'the root token has no user to redeem for');
($res, $j) = api('POST', "/api/users/$u1->{id}/redeem", { code => $codes[2][0] }, token => $t2);
is($res->code, 403, 'a user cannot redeem for another');
($res, $j) = api('POST', '/api/users/999999999/redeem', { code => $codes[2][0] });
is($res->code, 404, 'for no user: 404');
($res, $j) = api('POST', '/api/self/redeem', { code => $codes[2][0], extra => 1 }, token => $t2);
is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'extra' ], 'unknown body members: 400');

# ---- statistics, list, PATCH ------------------------------------------------
($res, $j) = api('GET', "/api/vouchers/$b->{id}");
is($res->code, 200, 'GET one batch: 200');
is_deeply([ @{ $j->{data} }{qw(redeemed remaining users)} ], [ 2, 3, 2 ], 'redeemed 2, remaining 3, by 2 users');
ok($j->{data}{exported_at} > 0, 'exported_at is set');
my $red = $j->{data}{redemptions};
is($red->{total}, 2, 'two redemptions');
is_deeply([ map { [ @$_{qw(user_id username code_hint use_no amount actor)} ] } @{ $red->{data} } ],
          [ [ $u2->{id}, $u2->{username}, $codes[1][1], 1, 1234, "user:$u2->{id}" ],
            [ $u1->{id}, $u1->{username}, $codes[0][1], 1, 1234, 'root' ] ],
          'by whom (newest first), which code (its hint), how much, who acted');
ok(!grep({ !($_->{redeemed_at} > now_ms() - 600000) || $_->{client_ip} ne '127.0.0.1' } @{ $red->{data} }),
   'when, and from where');
($res, $j) = api('GET', "/api/vouchers/$b->{id}?per_page=1&page=2");
is_deeply([ $j->{data}{redemptions}{total}, map { $_->{user_id} } @{ $j->{data}{redemptions}{data} } ],
          [ 2, $u1->{id} ], 'redemptions are paginated');
($res, $j) = api('GET', '/api/vouchers?per_page=100');
my ($listed) = grep { $_->{id} == $b->{id} } @{ $j->{data} };
is_deeply([ @$listed{qw(name redeemed remaining)} ], [ $name, 2, 3 ], 'the list carries the statistics');
($res, $j) = api('PATCH', "/api/vouchers/$b->{id}", { status => 'disabled', note => 'ended early' });
is_deeply([ $res->code, @{ $j->{data} }{qw(status note)} ], [ 200, 'disabled', 'ended early' ], 'PATCH: disable');
($res, $j) = api('GET', '/api/vouchers?status=disabled&per_page=100');
ok(grep({ $_->{id} == $b->{id} } @{ $j->{data} }), 'the status filter finds it');
($res, $j) = api('PATCH', "/api/vouchers/$b->{id}", { amount => 5 });
is_deeply([ $res->code, $j->{error}{param} ], [ 400, 'amount' ], 'PATCH cannot change the amount');
($res, $j) = api('PATCH', "/api/vouchers/$b->{id}", {});
is($res->code, 400, 'an empty PATCH: 400');
($res) = api('PATCH', '/api/vouchers/999999999', { note => 'x' });
is($res->code, 404, 'PATCH of no batch: 404');
($res) = api('GET', '/api/vouchers', undef, token => $t2);
is($res->code, 403, 'role user: 403 on /api/vouchers');

# ---- new-api's routes ---------------------------------------------------------
db_exec('DELETE FROM redeem_failures');
my $rname = substr(uniq('na'), 0, 20);
($res, $j) = api('POST', '/api/redemption/', { name => $rname, count => 3, quota => 777, expired_time => 0 });
is($res->code, 200, 'POST /api/redemption/: 200');
is_deeply([ $j->{success}, $j->{message}, scalar @{ $j->{data} } ], [ JSON::PP::true, '', 3 ],
          'new-api\'s shape: success, message "", data the keys');
ok(!grep({ !/^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/ } @{ $j->{data} }),
   'each key: 32 lowercase hex digits, a UUIDv4 without dashes');
my @keys = @{ $j->{data} };
($res, $j) = api('POST', '/api/redemption/', { name => $rname, count => 101, quota => 1 });
is_deeply([ $res->code, $j->{success} ], [ 200, JSON::PP::false ], 'count 101: success false (new-api answers 200)');
($res, $j) = api('POST', '/api/redemption/', { name => 'x' x 21, count => 1, quota => 1 });
is($j->{success}, JSON::PP::false, 'a name of 21 characters: refused');
($res, $j) = api('POST', '/api/redemption/', { name => 'x', count => 1, quota => 1, expired_time => time() - 10 });
is($j->{success}, JSON::PP::false, 'an expiry in the past: refused');

($res, $j) = api('GET', '/api/redemption/?p=1&page_size=100');
is_deeply([ $res->code, $j->{success} ], [ 200, JSON::PP::true ], 'GET /api/redemption/: success');
my @mine = grep { $_->{name} eq $rname } @{ $j->{data}{items} };
is_deeply([ map { [ @$_{qw(status quota used_user_id redeemed_time)} ] } @mine ],
          [ ([ 1, 777, 0, 0 ]) x 3 ], 'three unused codes (status 1) of 777');
ok($j->{data}{total} >= 3 && $j->{data}{page} == 1 && $j->{data}{page_size} == 100, 'items, total, page, page_size');
is_deeply([ sort map { $_->{key} } @mine ], [ sort map { '****' . substr($_, -4) } @keys ],
          'keys shown by their last four digits only');

my $u3 = make_user();
my $t3 = token_of($u3);
($res, $j) = api('POST', '/api/user/topup', { key => $keys[0] }, token => $t3);
is_deeply([ $res->code, $j->{success}, $j->{message}, $j->{data} ], [ 200, JSON::PP::true, '', 777 ],
          'POST /api/user/topup: success, data the quota');
is(api_ok('GET', "/api/users/$u3->{id}/account")->{balance}, 777, 'the wallet holds it');
($res, $j) = api('POST', '/api/user/topup', { key => $keys[0] }, token => $t3);
is_deeply([ $res->code, $j->{success}, $j->{message} ], [ 200, JSON::PP::false, 'This code has already been used.' ],
          'a second time: success false, already used');
($res, $j) = api('GET', '/api/redemption/?p=1&page_size=100');
my ($item) = grep { $_->{name} eq $rname && $_->{status} == 3 } @{ $j->{data}{items} };
is_deeply([ $item->{used_user_id}, $item->{redeemed_time} > 0 ? 1 : 0 ], [ $u3->{id}, 1 ],
          'listed as used (3) by that user, with the time');
my ($other) = grep { $_->{name} eq $rname && $_->{status} == 1 } @{ $j->{data}{items} };
($res, $j) = api('DELETE', "/api/redemption/$other->{id}");
is_deeply([ $res->code, $j->{success}, $j->{message} ], [ 200, JSON::PP::true, '' ], 'DELETE /api/redemption/{id}');
my ($gone) = grep { $other->{key} eq '****' . substr($_, -4) } @keys;
($res, $j) = api('POST', '/api/user/topup', { key => $gone }, token => $t3);
is_deeply([ $j->{success}, $j->{message} ], [ JSON::PP::false, 'This code is not valid.' ], 'a deleted code is not valid');
my ($left) = grep { $_ ne $gone && $_ ne $keys[0] } @keys;
($res, $j) = api('POST', '/api/user/topup', { key => uc($left) }, token => $t3);
is_deeply([ $j->{success}, $j->{data} ], [ JSON::PP::true, 777 ], 'keys are matched case-insensitively');
my $nb = db_value("SELECT batch_id FROM voucher_codes WHERE id = $other->{id}");
($res, $j) = api('GET', "/api/vouchers/$nb/export");
is($res->code, 410, 'a new-api batch cannot be exported: its keys were answered once');
db_exec('DELETE FROM redeem_failures');
