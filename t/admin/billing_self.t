# /api/self/account and /api/self/ledger: any signed-in user reads the wallet
# it pays from (its organisation's when it has one) and that wallet's rows,
# never another account's; the root token has no wallet.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq new_ua login make_user);

plan tests => 29;

my $tag = uniq('s');
my $u1 = make_user(username => "$tag-one");
my $u2 = make_user(username => "$tag-two");
my $org = api_ok('POST', '/api/orgs', { name => "$tag-org" });
my $u3 = make_user(username => "$tag-three", org_id => $org->{id});
my $u4 = make_user(username => "$tag-four");
my $w1 = api_ok('POST', "/api/users/$u1->{id}/topup", { amount => 1000, reason => 'one' })->{account};
api_ok('POST', "/api/billing/accounts/$w1->{id}/adjust", { amount => -100, reason => 'fee one' });
my $w2 = api_ok('POST', "/api/users/$u2->{id}/topup", { amount => 2000, reason => 'two' })->{account};
my $wo = api_ok('POST', "/api/orgs/$org->{id}/topup", { amount => 3000, reason => 'org' })->{account};
api_ok('POST', "/api/users/$u3->{id}/topup", { amount => 7, reason => 'own wallet of three' });

# user one through a session (cookies), user two and three through access tokens
my $ua1 = new_ua();
my ($res, $j) = login($ua1, "$tag-one", "pw-$tag-one-secret");
is($res->code, 200, 'user one signs in');
my %one = (token => undef, ua => $ua1);
my %two = (token => api_ok('POST', "/api/users/$u2->{id}/access-token")->{access_token});
my %three = (token => api_ok('POST', "/api/users/$u3->{id}/access-token")->{access_token});
my %four = (token => api_ok('POST', "/api/users/$u4->{id}/access-token")->{access_token});

($res, $j) = api('GET', '/api/self/account', undef, %one);
is($res->code, 200, 'role user: GET /api/self/account 200');
is_deeply([ @{ $j->{data} }{qw(id owner_kind owner_id balance available)} ],
          [ $w1->{id}, 'user', $u1->{id}, 900, 900 ], 'user one sees its own wallet');
($res, $j) = api('GET', '/api/self/ledger', undef, %one);
is($res->code, 200, 'GET /api/self/ledger 200');
is($j->{total}, 2, 'its two rows');
is_deeply([ map { [ $_->{account_id}, $_->{amount} ] } @{ $j->{data} } ],
          [ [ $w1->{id}, -100 ], [ $w1->{id}, 1000 ] ], 'newest first, only its account');
($res, $j) = api('GET', '/api/self/ledger?kind=topup', undef, %one);
is_deeply([ map { $_->{amount} } @{ $j->{data} } ], [1000], 'kind filter');
($res, $j) = api('GET', '/api/self/ledger?per_page=1&page=2', undef, %one);
is_deeply([ $j->{total}, map { $_->{amount} } @{ $j->{data} } ], [ 2, 1000 ], 'pages');

($res, $j) = api('GET', '/api/self/account', undef, %two);
is_deeply([ @{ $j->{data} }{qw(id owner_id balance)} ], [ $w2->{id}, $u2->{id}, 2000 ],
          'user two sees its own wallet');
($res, $j) = api('GET', '/api/self/ledger', undef, %two);
is_deeply([ $j->{total}, map { [ $_->{account_id}, $_->{amount} ] } @{ $j->{data} } ],
          [ 1, [ $w2->{id}, 2000 ] ], 'and only its own row');

# no way to name another account
($res, $j) = api('GET', "/api/self/ledger?account_id=$w1->{id}", undef, %two);
is($res->code . ' ' . ($j->{error}{param} // ''), '400 account_id',
   'account_id is not a parameter of /api/self/ledger');
for my $path ("/api/billing/ledger?account_id=$w1->{id}", "/api/billing/accounts/$w1->{id}",
              "/api/users/$u1->{id}/account", '/api/billing/ledger/export', '/api/billing/reconcile',
              "/api/orgs/$org->{id}/account") {
    ($res) = api('GET', $path, undef, %two);
    is($res->code, 403, "role user: 403 on $path");
}
($res) = api('POST', "/api/users/$u2->{id}/topup", { amount => 5, reason => 'self-service?' }, %two);
is($res->code, 403, 'role user cannot top itself up');
($res) = api('GET', '/api/self/account', undef, token => undef, ua => new_ua());
is($res->code, 401, 'no credentials: 401');

# a member pays from its organisation's wallet
($res, $j) = api('GET', '/api/self/account', undef, %three);
is_deeply([ @{ $j->{data} }{qw(id owner_kind owner_id balance)} ],
          [ $wo->{id}, 'org', $org->{id}, 3000 ], 'a member sees the organisation\'s wallet');
($res, $j) = api('GET', '/api/self/ledger', undef, %three);
is_deeply([ map { [ $_->{account_id}, $_->{amount} ] } @{ $j->{data} } ], [ [ $wo->{id}, 3000 ] ],
          'and its rows, not those of its own wallet');
api_ok('PATCH', "/api/users/$u3->{id}", { org_id => undef });
($res, $j) = api('GET', '/api/self/account', undef, %three);
is_deeply([ @{ $j->{data} }{qw(owner_kind balance)} ], [ 'user', 7 ],
          'after leaving: its own wallet again');

# a user that never had money
($res, $j) = api('GET', '/api/self/account', undef, %four);
is_deeply([ $res->code, @{ $j->{data} }{qw(id owner_kind owner_id balance)} ],
          [ 200, undef, 'user', $u4->{id}, 0 ], 'no wallet yet: id null, balance 0');
($res, $j) = api('GET', '/api/self/ledger', undef, %four);
is_deeply([ $res->code, $j->{total}, $j->{data} ], [ 200, 0, [] ], 'and no rows');

# an admin uses the same routes for its own wallet; the root token has none
my $adm = make_user(role => 'admin');
my %adm = (token => api_ok('POST', "/api/users/$adm->{id}/access-token")->{access_token});
($res, $j) = api('GET', '/api/self/account', undef, %adm);
is_deeply([ $res->code, $j->{data}{owner_id} ], [ 200, $adm->{id} ], 'an admin\'s own wallet');
($res, $j) = api('GET', '/api/self/account');
is($res->code . ' ' . $j->{error}{code}, '400 no_user', 'the root token: 400 no_user');
like($j->{error}{message}, qr/no user/, 'with a clear message');
($res, $j) = api('GET', '/api/self/ledger');
is($res->code, 400, 'the same for the ledger');
($res) = api('GET', '/api/self/account?x=1', undef, %one);
is($res->code, 400, 'unknown query parameter: 400');
