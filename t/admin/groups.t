# /api/groups: user groups and their price ratio; names are checked, a group
# in use (or "default") cannot be deleted.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user);

plan tests => 22;

my $g = uniq('g');
my ($res, $j) = api('POST', '/api/groups', { name => $g, ratio_ppm => 1500000,
                    description => 'VIP' });
is($res->code, 201, 'create: 201');
is_deeply([ @{ $j->{data} }{qw(name ratio_ppm description)} ], [ $g, 1500000, 'VIP' ],
          'create: the fields');
($res, $j) = api('POST', '/api/groups', { name => $g });
is($res->code, 409, 'duplicate: 409');
is($j->{error}{code}, 'group_exists', 'code group_exists');
($res, $j) = api('POST', '/api/groups', { name => "$g-d" });
is($j->{data}{ratio_ppm}, 1000000, 'ratio_ppm defaults to 1000000 (1.0)');

for my $b ([ { name => 'a b' }, 'name' ], [ { name => '' }, 'name' ], [ {}, 'name' ],
           [ { name => 'x' x 65 }, 'name' ], [ { name => "$g-x", ratio_ppm => -1 }, 'ratio_ppm' ],
           [ { name => "$g-x", ratio_ppm => 1000000001 }, 'ratio_ppm' ],
           [ { name => "$g-x", colour => 'red' }, 'colour' ]) {
    ($res, $j) = api('POST', '/api/groups', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for param $b->[1]");
}

($res, $j) = api('GET', "/api/groups/$g");
is($j->{data}{name}, $g, 'GET by name');
($res, $j) = api('GET', "/api/groups?q=$g");
is($j->{total}, 2, 'list with q');
($res, $j) = api('GET', '/api/groups/no-such-group');
is($res->code, 404, 'unknown group: 404');
($res, $j) = api('PATCH', "/api/groups/$g", { ratio_ppm => 800000, description => 'cheaper' });
is_deeply([ @{ $j->{data} }{qw(ratio_ppm description)} ], [ 800000, 'cheaper' ], 'PATCH');
($res, $j) = api('PATCH', "/api/groups/$g", { name => 'renamed' });
is($res->code, 400, 'groups are not renamed');

my $u = make_user(user_group => $g);
($res, $j) = api('DELETE', "/api/groups/$g");
is($res->code, 409, 'a group with users cannot be deleted');
like($j->{error}{message}, qr/users/, 'the message says what uses it');
($res, $j) = api('DELETE', '/api/groups/default');
is($res->code, 409, 'default cannot be deleted');
($res) = api('DELETE', "/api/groups/$g-d");
is($res->code, 204, 'an unused group is deleted');
($res) = api('GET', "/api/groups/$g-d");
is($res->code, 404, 'and gone');
