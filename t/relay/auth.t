# Client keys: every way to present one, and every reason to refuse one,
# each with OpenAI's error JSON and the right status.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_user new_key new_channel mock_records chat relay_hostport);

plan tests => 26;

my $m = "auth-$$";
my ($cid, $tag) = new_channel(models => [$m]);
my $body = { model => $m, messages => [{ role => 'user', content => 'hi' }] };

sub err_of { my $r = shift; my $j = eval { decode_json($r->content) } || {}; return $j->{error} || {} }

my $res = chat(undef, $body);
is($res->code, 401, 'no key: 401');
is(err_of($res)->{code}, 'invalid_api_key', 'no key: invalid_api_key');
$res = chat('sk-' . ('x' x 48), $body);
is($res->code, 401, 'unknown key: 401');
is(err_of($res)->{type}, 'invalid_request_error', 'OpenAI error type');

my ($key, $kid) = new_key();
is(chat($key, $body)->code, 200, 'Bearer sk-...: 200');
(my $bare = $key) =~ s/^sk-//;
is(chat($bare, $body)->code, 200, 'without the sk- prefix: 200');
my $ua = LWP::UserAgent->new;
$res = $ua->post('http://' . relay_hostport() . '/v1/chat/completions', 'x-api-key' => $key,
                 'Content-Type' => 'application/json', Content => JSON::PP::encode_json($body));
is($res->code, 200, 'x-api-key header: 200');

# a disabled key, an expired key, a key with no quota
my ($k2, $k2id) = new_key();
admin('PATCH', "/api/keys/$k2id", { status => 'disabled' });
$res = chat($k2, $body);
is($res->code, 401, 'disabled key: 401 (the cache was dropped on the change)');
my ($k3) = new_key(expires_at => int((time + 1) * 1000));
select(undef, undef, undef, 1.5);
is(chat($k3, $body)->code, 401, 'expired key: 401');
my ($k4) = new_key(remain_quota => 0);
$res = chat($k4, $body);
is($res->code, 429, 'key without quota: 429');
is(err_of($res)->{code}, 'insufficient_quota', 'insufficient_quota');
my ($k5) = new_key(remain_quota => 0, unlimited_quota => JSON::PP::true);
is(chat($k5, $body)->code, 200, 'unlimited key without quota: 200');

# IP allow-list
my ($k6) = new_key(allowed_ips => ['10.9.8.0/24']);
$res = chat($k6, $body);
is($res->code, 403, 'client IP not in the allow-list: 403');
is(err_of($res)->{code}, 'ip_not_allowed', 'ip_not_allowed');
my ($k7) = new_key(allowed_ips => ['127.0.0.0/8']);
is(chat($k7, $body)->code, 200, 'client IP in the allow-list (CIDR): 200');

# model allow-list
my ($k8) = new_key(allowed_models => ['something-else']);
$res = chat($k8, $body);
is($res->code, 403, 'model not in the key\'s allow-list: 403');
is(err_of($res)->{code}, 'model_not_allowed', 'model_not_allowed');

# a disabled owner
my $uid = new_user();
my ($k9) = new_key(user_id => $uid);
admin('PATCH', "/api/users/$uid", { status => 'disabled' });
is(chat($k9, $body)->code, 403, 'owner disabled: 403');

# sk-KEY-CHANNELID: only an admin's key may force a channel
my ($other_cid, $other_tag) = new_channel(models => ["$m-other"]);
$res = chat("$key-$other_cid", $body);
is($res->code, 403, 'a user\'s key forcing a channel: 403');
is(err_of($res)->{code}, 'channel_forcing_not_allowed', 'channel_forcing_not_allowed');
my ($admin_key) = new_key(role => 'admin');
$res = chat("$admin_key-$other_cid", $body);
is($res->code, 200, 'an admin\'s key forcing a channel: 200');
is(scalar @{ mock_records($other_tag) }, 1, 'the forced channel served it');
$res = chat("$admin_key-abc", $body);
is($res->code, 401, 'a malformed channel suffix: 401');

# a key deleted while cached
my ($k10, $k10id) = new_key();
is(chat($k10, $body)->code, 200, 'a fresh key works');
admin('DELETE', "/api/keys/$k10id");
is(chat($k10, $body)->code, 401, 'after deletion it is refused at once');
my ($code) = api('GET', "/api/keys/$k10id");
is($code, 404, 'and gone from the admin API');
