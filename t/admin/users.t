# /api/users: create, read, list with filters and pages, change, passwords,
# soft delete (keys disabled, name kept), and the validation of each field.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok new_ua uniq login make_user db_value db_rows);

plan tests => 67;

my $tag = uniq('t');
my ($res, $j) = api('POST', '/api/users', { username => "$tag-a", password => 'secret-pass-1',
                    display_name => 'Ann', role => 'user', quota => 5000 });
is($res->code, 201, 'create: 201');
my $a = $j->{data};
ok($a->{id} > 0, 'create: an id');
is_deeply([ @$a{qw(username display_name role user_group status quota used_quota)} ],
          [ "$tag-a", 'Ann', 'user', 'default', 'active', 5000, 0 ], 'create: the fields');
ok($a->{has_password}, 'has_password');
ok(!exists $a->{password_hash} && !exists $a->{password}, 'no password or hash in the answer');
like(db_value("SELECT password_hash FROM users WHERE id = $a->{id}"), qr/^\$argon2id\$v=19\$/,
     'stored as an argon2id hash');
unlike(db_value("SELECT password_hash FROM users WHERE id = $a->{id}"), qr/secret-pass-1/,
       'not the password');

($res, $j) = api('POST', '/api/users', { username => "$tag-a" });
is($res->code, 409, 'duplicate username: 409');
is($j->{error}{code}, 'username_taken', 'code username_taken');
is($j->{error}{param}, 'username', 'param username');

# validation, one field at a time: [body, param, what]
my @bad = (
    [ {}, 'username', 'missing username' ],
    [ { username => '' }, 'username', 'empty username' ],
    [ { username => '-x' }, 'username', 'username starting with -' ],
    [ { username => 'a b' }, 'username', 'username with a space' ],
    [ { username => 'x' x 65 }, 'username', 'username of 65 characters' ],
    [ { username => 5 }, 'username', 'username not a string' ],
    [ { username => "$tag-v", password => 'short' }, 'password', 'password under 8 bytes' ],
    [ { username => "$tag-v", role => 'god' }, 'role', 'unknown role' ],
    [ { username => "$tag-v", user_group => 'no-such-group' }, 'user_group', 'unknown group' ],
    [ { username => "$tag-v", quota => -1 }, 'quota', 'negative quota' ],
    [ { username => "$tag-v", quota => '10' }, 'quota', 'quota as a string' ],
    [ { username => "$tag-v", quota => 1.5 }, 'quota', 'fractional quota' ],
    [ { username => "$tag-v", status => 'deleted' }, 'status', 'status deleted on create' ],
    [ { username => "$tag-v", display_name => "a\nb" }, 'display_name', 'control character' ],
    [ { username => "$tag-v", admin => JSON::PP::true }, 'admin', 'unknown field' ],
);
for my $b (@bad) {
    ($res, $j) = api('POST', '/api/users', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for $b->[2]");
}
is(db_value("SELECT COUNT(*) FROM users WHERE username = '$tag-v'"), 0,
   'no invalid request created a user');

# read
($res, $j) = api('GET', "/api/users/$a->{id}");
is($j->{data}{username}, "$tag-a", 'GET by id');
($res, $j) = api('GET', '/api/users/999999999');
is($res->code, 404, 'unknown id: 404');
is($j->{error}{code}, 'not_found', 'code not_found');

# list: filters and pages
make_user(username => "$tag-b", role => 'admin', display_name => 'Bob');
make_user(username => "$tag-c", display_name => 'Cyd');
($res, $j) = api('GET', "/api/users?q=$tag&per_page=2");
is($j->{total}, 3, 'q matches the three users');
is(scalar @{ $j->{data} }, 2, 'per_page=2: two on the first page');
is_deeply([ $j->{page}, $j->{per_page} ], [ 1, 2 ], 'page and per_page echoed');
($res, $j) = api('GET', "/api/users?q=$tag&per_page=2&page=2");
is_deeply([ map { $_->{username} } @{ $j->{data} } ], ["$tag-c"], 'page 2: the third');
($res, $j) = api('GET', "/api/users?q=$tag&role=admin");
is_deeply([ map { $_->{username} } @{ $j->{data} } ], ["$tag-b"], 'role filter');
($res, $j) = api('GET', '/api/users?q=' . uc($tag) . '-C');
is($j->{total}, 1, 'q is case-insensitive');
($res, $j) = api('GET', '/api/users?q=%25');
ok(!grep({ $_->{username} !~ /%/ } @{ $j->{data} }), 'q=% is literal, not a wildcard');
for my $q ('per_page=101', 'per_page=0', 'page=0', 'page=x', 'role=x', 'status=x', 'sort=id') {
    ($res, $j) = api('GET', "/api/users?$q");
    is($res->code, 400, "list with $q: 400");
}

# change
($res, $j) = api('PATCH', "/api/users/$a->{id}", { display_name => 'Anne', quota => 7,
                 role => 'admin' });
is($res->code, 200, 'PATCH: 200');
is_deeply([ @{ $j->{data} }{qw(display_name quota role)} ], [ 'Anne', 7, 'admin' ],
          'PATCH changed the fields');
($res, $j) = api('PATCH', "/api/users/$a->{id}", {});
is($res->code, 400, 'empty PATCH: 400');
($res, $j) = api('PATCH', "/api/users/$a->{id}", { username => "$tag-b" });
is($res->code, 409, 'rename onto a taken username: 409');
($res, $j) = api('PATCH', "/api/users/$a->{id}", { password => 'x' x 10 });
is($j->{error}{param}, 'password', 'password is not a PATCH field');
api_ok('POST', '/api/groups', { name => "$tag-g" });
($res, $j) = api('PATCH', "/api/users/$a->{id}", { user_group => "$tag-g" });
is($j->{data}{user_group}, "$tag-g", 'moved to an existing group');

# passwords
($res) = api('PUT', "/api/users/$a->{id}/password", { password => 'another-pass-2' });
is($res->code, 200, 'set password: 200');
is((login(new_ua(), "$tag-a", 'another-pass-2'))[0]->code, 200, 'the new password signs in');
is((login(new_ua(), "$tag-a", 'secret-pass-1'))[0]->code, 401, 'the old one does not');
($res, $j) = api('PUT', "/api/users/$a->{id}/password", { password => undef });
ok(!$j->{data}{has_password}, 'password null: no password any more');
is((login(new_ua(), "$tag-a", 'another-pass-2'))[0]->code, 401, 'so no sign-in');
($res) = api('PUT', "/api/users/$a->{id}/password", {});
is($res->code, 400, 'PUT password without the field: 400');

# soft delete
my $k = api_ok('POST', '/api/keys', { user_id => $a->{id}, name => 'k' });
($res) = api('DELETE', "/api/users/$a->{id}");
is($res->code, 204, 'DELETE: 204');
($res, $j) = api('GET', "/api/users/$a->{id}");
is($j->{data}{status}, 'deleted', 'the row stays, status deleted');
is(db_value("SELECT status FROM api_keys WHERE id = $k->{id}"), 'disabled', 'its keys are disabled');
($res, $j) = api('GET', "/api/users?q=$tag-a");
is($j->{total}, 0, 'deleted users are not listed by default');
($res, $j) = api('GET', "/api/users?q=$tag-a&status=deleted");
is($j->{total}, 1, 'but with status=deleted');
($res, $j) = api('PATCH', "/api/users/$a->{id}", { display_name => 'zombie' });
is($res->code, 409, 'a deleted user cannot be changed');
($res, $j) = api('POST', '/api/users', { username => "$tag-a" });
is($res->code, 409, 'its username stays taken');
($res) = api('DELETE', "/api/users/$a->{id}");
is($res->code, 204, 'DELETE again: 204 (idempotent)');
($res) = api('DELETE', '/api/users/999999999');
is($res->code, 404, 'DELETE unknown: 404');

# nobody deletes, disables or demotes themselves
my $me = make_user(username => "$tag-me", role => 'root');
my $mt = api_ok('POST', "/api/users/$me->{id}/access-token")->{access_token};
($res, $j) = api('DELETE', "/api/users/$me->{id}", undef, token => $mt);
is($res->code, 409, 'delete yourself: 409');
($res, $j) = api('PATCH', "/api/users/$me->{id}", { role => 'user' }, token => $mt);
is($res->code, 409, 'demote yourself: 409');
($res, $j) = api('PATCH', "/api/users/$me->{id}", { status => 'disabled' }, token => $mt);
is($res->code, 409, 'disable yourself: 409');
