# /api/keys: a new key is shown once and only its hash is stored; keys from
# new-api are imported by hash; fields are validated (IPs and CIDRs, expiry,
# model lists); filters, changes and deletion.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user db_rows db_value);

plan tests => 49;

my $u = make_user();
my $tag = uniq('k');
my $future = (time + 86400) * 1000;
my ($res, $j) = api('POST', '/api/keys', { user_id => $u->{id}, name => "$tag-1",
                    expires_at => $future, remain_quota => 1000, allowed_models => ['gpt-4o'],
                    allowed_ips => [ '10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1' ],
                    max_body_bytes => 65536 });
is($res->code, 201, 'create: 201');
my $k = $j->{data};
like($k->{key}, qr/^sk-[0-9A-Za-z]{48}$/, 'the key: sk- and 48 characters');
is($k->{key_prefix}, substr($k->{key}, 0, 8), 'key_prefix: its first 8 characters');
is_deeply([ @$k{qw(user_id name status remain_quota unlimited_quota expires_at max_body_bytes)} ],
          [ $u->{id}, "$tag-1", 'active', 1000, JSON::PP::false, $future, 65536 ],
          'create: the fields');
is_deeply($k->{allowed_ips}, [ '10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1' ],
          'allowed_ips kept');
is($k->{username}, $u->{username}, 'the owner\'s name');

# only the hash is stored: of the part after "sk-" (nebula_apikey.h)
my $secret = substr($k->{key}, 3);
my $row = db_rows("SELECT key_hash, key_prefix, name FROM api_keys WHERE id = $k->{id}")->[0];
is($row->[0], sha256_hex($secret), 'key_hash = SHA-256 of the secret part');
my $dump = join("\n", map { join("\t", map { $_ // '' } @$_) }
                @{ db_rows("SELECT * FROM api_keys WHERE id = $k->{id}") });
unlike($dump, qr/\Q$secret\E/, 'the key itself is nowhere in its row');

($res, $j) = api('GET', "/api/keys/$k->{id}");
ok(!exists $j->{data}{key}, 'GET never returns the key');
($res, $j) = api('GET', "/api/keys?user_id=$u->{id}");
ok(!grep({ exists $_->{key} } @{ $j->{data} }), 'nor does the list');
unlike($res->content, qr/\Q$secret\E/, 'the key is nowhere in the list');

# validation: [body, param, what]
my @bad = (
    [ { name => 'x' }, 'user_id', 'no user_id' ],
    [ { user_id => $u->{id}, allowed_ips => ['10.0.0.0/33'] }, 'allowed_ips', 'prefix /33' ],
    [ { user_id => $u->{id}, allowed_ips => ['not-an-ip'] }, 'allowed_ips', 'not an IP' ],
    [ { user_id => $u->{id}, allowed_ips => ['10.1'] }, 'allowed_ips', 'short IPv4' ],
    [ { user_id => $u->{id}, allowed_ips => ['10.0.0.0/'] }, 'allowed_ips', 'empty prefix' ],
    [ { user_id => $u->{id}, allowed_ips => ['::1/129'] }, 'allowed_ips', 'IPv6 /129' ],
    [ { user_id => $u->{id}, allowed_ips => '10.0.0.1' }, 'allowed_ips', 'not an array' ],
    [ { user_id => $u->{id}, expires_at => 1000 }, 'expires_at', 'expiry in the past' ],
    [ { user_id => $u->{id}, allowed_models => [ 'a', 'a' ] }, 'allowed_models', 'duplicate model' ],
    [ { user_id => $u->{id}, allowed_models => [''] }, 'allowed_models', 'empty model' ],
    [ { user_id => $u->{id}, max_body_bytes => 10 }, 'max_body_bytes', 'body limit < 1024' ],
    [ { user_id => $u->{id}, unlimited_quota => 1 }, 'unlimited_quota', 'flag not boolean' ],
    [ { user_id => $u->{id}, key_group => 'no-such-group' }, 'key_group', 'unknown group' ],
    [ { user_id => $u->{id}, key => 'sk-' . 'a' x 48 }, 'key', 'a key given to create' ],
);
for my $b (@bad) {
    ($res, $j) = api('POST', '/api/keys', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for $b->[2]");
}
($res, $j) = api('POST', '/api/keys', { user_id => 999999999 });
is($res->code, 404, 'unknown owner: 404');

# import a new-api key: stored by hash, with or without "sk-"
my $imp = join '', map { ('A' .. 'Z', 'a' .. 'z', 0 .. 9)[ rand 62 ] } 1 .. 48;
($res, $j) = api('POST', '/api/keys/import', { user_id => $u->{id}, key => $imp,
                 name => "$tag-imp", unlimited_quota => JSON::PP::true });
is($res->code, 201, 'import: 201');
ok(!exists $j->{data}{key}, 'import does not echo the key');
is($j->{data}{key_prefix}, 'sk-' . substr($imp, 0, 5), 'prefix like a new key\'s');
ok($j->{data}{unlimited_quota}, 'fields apply to imports too');
is(db_value("SELECT key_hash FROM api_keys WHERE id = $j->{data}{id}"), sha256_hex($imp),
   'the stored hash is the same as for "sk-KEY": the key keeps working');
($res, $j) = api('POST', '/api/keys/import', { user_id => $u->{id}, key => "sk-$imp" });
is($res->code, 409, 'the same key again (with sk-): 409');
is($j->{error}{code}, 'key_exists', 'code key_exists');
($res, $j) = api('POST', '/api/keys/import', { user_id => $u->{id}, key => substr($imp, 1) });
is($j->{error}{param}, 'key', '47 characters: 400 on key');
($res, $j) = api('POST', '/api/keys/import', { user_id => $u->{id}, key => substr($imp, 1) . '!' });
is($j->{error}{param}, 'key', 'a non-alphanumeric character: 400 on key');

# list filters
($res, $j) = api('GET', "/api/keys?user_id=$u->{id}");
is($j->{total}, 2, 'filter by user');
($res, $j) = api('GET', "/api/keys?q=$tag-imp");
is_deeply([ map { $_->{name} } @{ $j->{data} } ], ["$tag-imp"], 'filter by q (name)');
($res, $j) = api('GET', "/api/keys?user_id=$u->{id}&status=disabled");
is($j->{total}, 0, 'filter by status');
($res, $j) = api('GET', '/api/keys?status=gone');
is($res->code, 400, 'unknown status filter: 400');

# change
($res, $j) = api('PATCH', "/api/keys/$k->{id}", { status => 'disabled', allowed_ips => undef,
                 expires_at => undef, name => "$tag-renamed", remain_quota => 5 });
is($res->code, 200, 'PATCH: 200');
is_deeply([ @{ $j->{data} }{qw(status allowed_ips expires_at name remain_quota)} ],
          [ 'disabled', undef, undef, "$tag-renamed", 5 ], 'PATCH: the fields, nulls clear');
is(db_value("SELECT allowed_ips FROM api_keys WHERE id = $k->{id}"), undef,
   'allowed_ips NULL in the database (any IP)');
($res, $j) = api('PATCH', "/api/keys/$k->{id}", { status => 'exhausted' });
is($j->{error}{param}, 'status', 'exhausted is set by the relay, not the API');
($res, $j) = api('PATCH', "/api/keys/$k->{id}", { user_id => 1 });
is($j->{error}{param}, 'user_id', 'a key does not change owner');
($res, $j) = api('PATCH', '/api/keys/999999999', { name => 'x' });
is($res->code, 404, 'PATCH unknown key: 404');

# delete
($res) = api('DELETE', "/api/keys/$k->{id}");
is($res->code, 204, 'DELETE: 204');
($res) = api('GET', "/api/keys/$k->{id}");
is($res->code, 404, 'gone');
is(db_value("SELECT COUNT(*) FROM api_keys WHERE id = $k->{id}"), 0, 'the row is gone');

# a deleted owner gets no new keys
my $gone = make_user();
api_ok('DELETE', "/api/users/$gone->{id}", undef, expect => 204);
($res, $j) = api('POST', '/api/keys', { user_id => $gone->{id} });
is($res->code, 409, 'key for a deleted user: 409');
