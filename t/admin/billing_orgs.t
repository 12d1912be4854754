# /api/orgs: organisations, their members (PATCH /api/users/{id} org_id),
# their wallet (GET .../account, POST .../topup) and deletion, refused while
# members, money or subscriptions depend on the organisation.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user db_value db_rows);

plan tests => 46;

my $tag = uniq('o');
my ($res, $j) = api('POST', '/api/orgs', { name => "$tag-acme", display_name => 'Acme Ltd' });
is($res->code, 201, 'create: 201');
my $org = $j->{data};
ok($org->{id} > 0, 'an id');
is_deeply([ @$org{qw(name display_name members)} ], [ "$tag-acme", 'Acme Ltd', 0 ], 'the fields');
ok($org->{created_at} > 1600000000000, 'created_at in ms');
is(db_value("SELECT name FROM organizations WHERE id = $org->{id}"), "$tag-acme", 'stored');

($res, $j) = api('POST', '/api/orgs', { name => "$tag-acme" });
is($res->code . ' ' . $j->{error}{code}, '409 org_exists', 'duplicate name: 409 org_exists');
for my $b ([ {}, 'name' ], [ { name => '' }, 'name' ], [ { name => 'a b' }, 'name' ],
           [ { name => 'x' x 65 }, 'name' ], [ { name => "$tag-x", display_name => 'x' x 256 },
           'display_name' ], [ { name => "$tag-x", owner => 1 }, 'owner' ]) {
    ($res, $j) = api('POST', '/api/orgs', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for param $b->[1]");
}

# read and list
($res, $j) = api('GET', "/api/orgs/$org->{id}");
is($j->{data}{name}, "$tag-acme", 'GET by id');
($res, $j) = api('GET', '/api/orgs/999999999');
is($res->code, 404, 'unknown id: 404');
my $o2 = api_ok('POST', '/api/orgs', { name => "$tag-beta" });
($res, $j) = api('GET', "/api/orgs?q=$tag&per_page=1");
is_deeply([ $j->{total}, map { $_->{id} } @{ $j->{data} } ], [ 2, $org->{id} ],
          'list: q, per_page, ordered by id');
($res, $j) = api('GET', '/api/orgs?q=' . uc("$tag-BE"));
is($j->{total}, 1, 'q is case-insensitive');

# change
($res, $j) = api('PATCH', "/api/orgs/$org->{id}", { name => "$tag-acme2", display_name => 'Acme' });
is_deeply([ $res->code, @{ $j->{data} }{qw(name display_name)} ], [ 200, "$tag-acme2", 'Acme' ],
          'PATCH renames');
($res, $j) = api('PATCH', "/api/orgs/$org->{id}", { name => "$tag-beta" });
is($res->code . ' ' . $j->{error}{code}, '409 org_exists', 'rename onto a taken name: 409');
($res, $j) = api('PATCH', "/api/orgs/$org->{id}", {});
is($res->code, 400, 'empty PATCH: 400');
($res) = api('PATCH', '/api/orgs/999999999', { display_name => 'x' });
is($res->code, 404, 'PATCH unknown: 404');

# members
my $u = make_user();
($res, $j) = api('PATCH', "/api/users/$u->{id}", { org_id => $org->{id} });
is_deeply([ $res->code, $j->{data}{org_id} ], [ 200, $org->{id} ], 'a user joins: org_id');
is(db_value("SELECT org_id FROM users WHERE id = $u->{id}"), $org->{id}, 'stored');
($res, $j) = api('GET', "/api/orgs/$org->{id}");
is($j->{data}{members}, 1, 'members counts it');
($res, $j) = api('PATCH', "/api/users/$u->{id}", { org_id => 999999999 });
is($res->code . ' ' . ($j->{error}{param} // ''), '400 org_id', 'an unknown org_id: 400');
($res, $j) = api('PATCH', "/api/users/$u->{id}", { org_id => 0 });
is($res->code . ' ' . ($j->{error}{param} // ''), '400 org_id', 'org_id 0: 400');
my $v = make_user(org_id => $o2->{id});
is($v->{org_id}, $o2->{id}, 'POST /api/users takes org_id too');
($res, $j) = api('DELETE', "/api/orgs/$org->{id}");
is($res->code . ' ' . $j->{error}{code}, '409 org_in_use', 'an organisation with members: 409');
like($j->{error}{message}, qr/member/, 'the message says why');

# the wallet
($res, $j) = api('GET', "/api/orgs/$org->{id}/account");
is($res->code, 200, 'the wallet of an organisation that never paid: 200');
is_deeply([ @{ $j->{data} }{qw(id owner_kind owner_id balance reserved available)} ],
          [ undef, 'org', $org->{id}, 0, 0, 0 ], 'id null and zeros');
is(db_value("SELECT COUNT(*) FROM accounts WHERE owner_kind = 'org' AND owner_id = $org->{id}"),
   0, 'reading created no account');
($res, $j) = api('POST', "/api/orgs/$org->{id}/topup", { amount => 3000, reason => 'invoice 1' });
is($res->code, 201, 'top-up of the organisation: 201');
my $acct = $j->{data}{account};
is_deeply([ @$acct{qw(owner_kind owner_id balance available)} ], [ 'org', $org->{id}, 3000, 3000 ],
          'its wallet was created with the amount');
($res, $j) = api('GET', "/api/orgs/$org->{id}/account");
is_deeply([ @{ $j->{data} }{qw(id balance)} ], [ $acct->{id}, 3000 ], 'GET .../account shows it');
($res) = api('GET', '/api/orgs/999999999/account');
is($res->code, 404, 'the wallet of an unknown organisation: 404');
($res) = api('POST', '/api/orgs/999999999/topup', { amount => 1, reason => 'x' });
is($res->code, 404, 'top-up of an unknown organisation: 404');

# leaving, and deletion
($res, $j) = api('PATCH', "/api/users/$u->{id}", { org_id => undef });
ok($res->code == 200 && !defined $j->{data}{org_id}, 'org_id null: the user leaves');
($res, $j) = api('DELETE', "/api/orgs/$org->{id}");
is($res->code . ' ' . $j->{error}{code}, '409 org_in_use', 'no members but money: 409');
like($j->{error}{message}, qr/wallet/, 'the message names the wallet');
api_ok('POST', "/api/billing/accounts/$acct->{id}/adjust",
       { amount => -3000, reason => 'refund of the rest' });
($res) = api('DELETE', "/api/orgs/$org->{id}");
is($res->code, 204, 'an empty organisation: 204');
($res) = api('GET', "/api/orgs/$org->{id}");
is($res->code, 404, 'gone');
is(db_value("SELECT COUNT(*) FROM ledger WHERE account_id = $acct->{id}"), 2,
   'its wallet keeps its ledger');

# a deleted member does not hold an organisation; its link is cleared
api_ok('DELETE', "/api/users/$v->{id}", undef, expect => 204);
($res, $j) = api('GET', "/api/orgs/$o2->{id}");
is($j->{data}{members}, 0, 'deleted users are not members');
($res) = api('DELETE', "/api/orgs/$o2->{id}");
is($res->code, 204, 'so the organisation can be deleted');
is(db_value("SELECT org_id FROM users WHERE id = $v->{id}"), undef, 'the deleted user\'s org_id is cleared');
($res) = api('DELETE', "/api/orgs/$o2->{id}");
is($res->code, 404, 'DELETE again: 404');
