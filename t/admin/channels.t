# /api/channels: upstream keys are stored sealed (AES-256-GCM) and never come
# back in clear; abilities follow every change of a channel in the same
# transaction; the keys sub-API; validation of every field.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq db_rows db_value);

plan tests => 68;

my $tag = uniq('c');
api_ok('POST', '/api/groups', { name => "$tag-vip" });
my @plain = ("sk-$tag-upstream-secret-one-0123456789", "sk-$tag-upstream-secret-two-9876543210");
my ($res, $j) = api('POST', '/api/channels', {
    name => "$tag-ch", kind => 'openai-compatible', base_url => 'https://llm.example.com/v1/',
    keys => \@plain, key_mode => 'random', models => [ "$tag-m1", "$tag-m2" ],
    model_mapping => { "$tag-m1" => "$tag-up1" }, channel_groups => [ 'default', "$tag-vip" ],
    priority => 10, weight => 3, header_override => { 'X-Org' => 'acme' }, timeout_ms => 20000,
    auto_disable => JSON::PP::false, test_model => "$tag-m1" });
is($res->code, 201, 'create: 201');
my $c = $j->{data};
is($c->{base_url}, 'https://llm.example.com/v1', 'base_url kept, trailing slash dropped');
is_deeply([ @$c{qw(kind key_mode priority weight status timeout_ms test_model)} ],
          [ 'openai-compatible', 'random', 10, 3, 'enabled', 20000, "$tag-m1" ], 'create: the fields');
ok(!$c->{auto_disable}, 'auto_disable false');
is_deeply($c->{model_mapping}, { "$tag-m1" => "$tag-up1" }, 'model_mapping');
is_deeply($c->{header_override}, { 'X-Org' => 'acme' }, 'header_override');
is(scalar @{ $c->{keys} }, 2, 'two keys listed');
is($c->{keys}[0]{masked}, substr($plain[0], 0, 5) . "\x{2026}" . substr($plain[0], -4),
   'a key is shown masked: first 5, ellipsis, last 4');
is($c->{key_count}, 2, 'key_count');
unlike($res->content, qr/upstream-secret/, 'no key in clear in the answer');

# sealed at rest, bound to the channel
my $rows = db_rows("SELECT key_ciphertext, key_version FROM channel_keys WHERE channel_id = $c->{id} ORDER BY id");
like($rows->[0][0], qr/^nbk1:[A-Za-z0-9_-]+$/, 'stored as a keyring token (nbk1:...)');
unlike($rows->[0][0] . $rows->[1][0], qr/upstream-secret/, 'the ciphertext does not contain the key');
is($rows->[0][1], 1, 'key_version 1');
($res) = api('GET', "/api/channels/$c->{id}");
unlike($res->content, qr/upstream-secret/, 'GET never returns a key in clear');
($res) = api('GET', "/api/channels?q=$tag");
unlike($res->content, qr/upstream-secret/, 'nor does the list');
($res, $j) = api('GET', "/api/channels?q=$tag");
is($j->{data}[0]{keys_enabled}, 2, 'the list counts enabled keys');

# abilities: groups x models, in step with the channel
sub abilities {
    my ($id) = @_;
    my (undef, $j) = api('GET', "/api/abilities?channel_id=$id&per_page=100");
    return [ map { "$_->{user_group}/$_->{model}/" . ($_->{enabled} ? 1 : 0) . "/$_->{priority}/$_->{weight}" }
             @{ $j->{data} } ];
}
is_deeply(abilities($c->{id}), [ sort("default/$tag-m1/1/10/3", "default/$tag-m2/1/10/3",
          "$tag-vip/$tag-m1/1/10/3", "$tag-vip/$tag-m2/1/10/3") ], 'abilities: 2 groups x 2 models');
($res, $j) = api('GET', "/api/abilities?group=$tag-vip&model=$tag-m2");
is($j->{total}, 1, 'abilities filtered by group and model');

api_ok('PATCH', "/api/channels/$c->{id}", { models => ["$tag-m3"], channel_groups => ["$tag-vip"],
       priority => 5, weight => 7 });
is_deeply(abilities($c->{id}), ["$tag-vip/$tag-m3/1/5/7"], 'PATCH models/groups/priority: abilities rebuilt');
($res, $j) = api('PATCH', "/api/channels/$c->{id}", { status => 'disabled' });
is($j->{data}{status}, 'disabled', 'disabled');
like($j->{data}{status_reason} // '', qr/disabled by/, 'with a reason');
is_deeply(abilities($c->{id}), ["$tag-vip/$tag-m3/0/5/7"], 'a disabled channel\'s abilities are disabled');
($res, $j) = api('PATCH', "/api/channels/$c->{id}", { status => 'enabled' });
ok(!defined $j->{data}{status_reason}, 're-enabled: reason cleared');
is_deeply(abilities($c->{id}), ["$tag-vip/$tag-m3/1/5/7"], 'and abilities enabled again');
($res, $j) = api('GET', "/api/channels?model=$tag-m3");
is_deeply([ map { $_->{id} } @{ $j->{data} } ], [ $c->{id} ], 'channels filtered by model');
($res, $j) = api('GET', "/api/channels?group=$tag-vip&status=enabled");
is($j->{total}, 1, 'channels filtered by group and status');
($res, $j) = api('DELETE', "/api/groups/$tag-vip");
is($res->code, 409, 'a group a channel serves cannot be deleted');

# the keys sub-API
($res, $j) = api('POST', "/api/channels/$c->{id}/keys", { keys => ["sk-$tag-third-key-abcdefghij"] });
is($res->code, 201, 'add a key: 201');
is(scalar @{ $j->{data} }, 3, 'the channel has three keys');
my $kid = $j->{data}[2]{id};
($res, $j) = api('PATCH', "/api/channels/$c->{id}/keys/$kid", { status => 'disabled' });
is($j->{data}{status}, 'disabled', 'disable one key');
ok($j->{data}{disabled_at}, 'disabled_at set');
AdminT::db_exec("UPDATE channel_keys SET failures = 4, last_error = 'HTTP 429', cooldown_until = 99 WHERE id = $kid");
($res, $j) = api('PATCH', "/api/channels/$c->{id}/keys/$kid", { status => 'enabled' });
is_deeply([ @{ $j->{data} }{qw(status failures last_error cooldown_until disabled_at)} ],
          [ 'enabled', 0, undef, 0, undef ], 'enabling a key gives it a clean slate');
($res, $j) = api('PATCH', "/api/channels/$c->{id}/keys/$kid", { status => 'broken' });
is($j->{error}{param}, 'status', 'key status enabled|disabled only');
($res) = api('DELETE', "/api/channels/$c->{id}/keys/$kid");
is($res->code, 204, 'delete a key: 204');
($res) = api('DELETE', "/api/channels/$c->{id}/keys/$kid");
is($res->code, 404, 'twice: 404');
($res, $j) = api('POST', "/api/channels/$c->{id}/keys", { keys => [] });
is($res->code, 400, 'adding no keys: 400');

# PATCH keys replaces the set
($res, $j) = api('PATCH', "/api/channels/$c->{id}", { keys => ["sk-$tag-replacement-key-000000"] });
is(scalar @{ $j->{data}{keys} }, 1, 'PATCH keys replaces all keys');
is(db_value("SELECT COUNT(*) FROM channel_keys WHERE channel_id = $c->{id}"), 1, 'one row left');

# defaults and the base URL of each kind
($res, $j) = api('POST', '/api/channels', { name => "$tag-2", kind => 'anthropic',
                 models => ['claude-x'] });
is($j->{data}{base_url}, 'https://api.anthropic.com', 'anthropic: the public endpoint by default');
is_deeply($j->{data}{channel_groups}, ['default'], 'channel_groups default ["default"]');
is_deeply([ @{ $j->{data} }{qw(key_mode weight priority)} ], [ 'round_robin', 1, 0 ], 'defaults');
is_deeply($j->{data}{keys}, [], 'a channel may start without keys');
my $c2 = $j->{data}{id};

# validation: [body, param, what]
my %ok = (name => 'x', kind => 'openai', models => ['m']);
my @bad = (
    [ { %ok, kind => 'cohere' }, 'kind', 'unknown kind' ],
    [ { %ok, base_url => 'ftp://x.example' }, 'base_url', 'ftp base_url' ],
    [ { %ok, base_url => 'https://x.example/?a=1' }, 'base_url', 'base_url with a query' ],
    [ { %ok, base_url => 'https://user:pw@x.example' }, 'base_url', 'base_url with credentials' ],
    [ { %ok, kind => 'azure' }, 'base_url', 'azure without base_url' ],
    [ { %ok, models => [] }, 'models', 'no models' ],
    [ { name => 'x', kind => 'openai' }, 'models', 'models missing' ],
    [ { %ok, model_mapping => { a => 'b', b => 'a' } }, 'model_mapping', 'a mapping cycle' ],
    [ { %ok, model_mapping => { a => 1 } }, 'model_mapping', 'a mapping to a number' ],
    [ { %ok, model_mapping => ['a'] }, 'model_mapping', 'a mapping that is an array' ],
    [ { %ok, header_override => { Host => 'x' } }, 'header_override', 'overriding Host' ],
    [ { %ok, header_override => { 'Bad Name' => 'x' } }, 'header_override', 'a header name with a space' ],
    [ { %ok, weight => -1 }, 'weight', 'negative weight' ],
    [ { %ok, status => 'auto_disabled' }, 'status', 'status auto_disabled by hand' ],
    [ { %ok, channel_groups => ['no-such-group'] }, 'channel_groups', 'unknown group' ],
    [ { %ok, channel_groups => [] }, 'channel_groups', 'no group' ],
    [ { %ok, keys => ['has space'] }, 'keys', 'a key with a space' ],
    [ { %ok, keys => [ 'dup-key-1', 'dup-key-1' ] }, 'keys', 'the same key twice' ],
    [ { %ok, key_mode => 'sticky' }, 'key_mode', 'unknown key_mode' ],
    [ { %ok, proxy => 'gopher://p' }, 'proxy', 'a gopher proxy' ],
    [ { %ok, timeout_ms => 86400001 }, 'timeout_ms', 'timeout over a day' ],
);
for my $b (@bad) {
    ($res, $j) = api('POST', '/api/channels', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for $b->[2]");
}

# the test route exists and needs credentials (the relay core implements it;
# until then it answers 501 not_implemented)
($res, $j) = api('POST', "/api/channels/$c->{id}/test", {});
ok($res->code != 404 && $res->code != 405, 'POST /api/channels/{id}/test is routed');
($res, $j) = api('POST', "/api/channels/$c->{id}/test", {}, token => undef);
is($res->code, 401, 'and needs credentials');

# delete: keys and abilities go with it
($res) = api('DELETE', "/api/channels/$c->{id}");
is($res->code, 204, 'DELETE: 204');
is(db_value("SELECT COUNT(*) FROM channel_keys WHERE channel_id = $c->{id}") +
   db_value("SELECT COUNT(*) FROM abilities WHERE channel_id = $c->{id}"), 0,
   'its keys and abilities are gone');
($res) = api('GET', "/api/channels/$c->{id}");
is($res->code, 404, 'GET after delete: 404');
api_ok('DELETE', "/api/channels/$c2", undef, expect => 204);
