# The self-service routes of a signed-in user's own account: /api/self/keys
# (create: shown once; list, read, change, delete), /api/self/logs and
# /api/self/stats/usage and /summary. User A never sees, reads, changes or
# counts anything of user B: a foreign key id is 404 like a missing one, and
# the query cannot name another user. What an owner may set of a key is
# limited (key_group, max_body_bytes are the managers').
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use JSON::PP ();
use LWP::UserAgent;
use AdminT qw(api api_ok uniq new_ua login make_user db_exec);

plan tests => 68;

my $tag = uniq('self');
my $A = make_user(username => "$tag-a");
my $B = make_user(username => "$tag-b");
my %a = (token => api_ok('POST', "/api/users/$A->{id}/access-token")->{access_token});
my %b = (token => api_ok('POST', "/api/users/$B->{id}/access-token")->{access_token});
my $T = JSON::PP::true();
my $F = JSON::PP::false();

# ---- keys -------------------------------------------------------------------
my ($res, $j) = api('POST', '/api/self/keys', { name => "$tag-a1" }, %a);
is($res->code, 201, 'A creates a key: 201');
my $ka = $j->{data};
like($ka->{key}, qr/^sk-[0-9A-Za-z]{48}$/, 'the key is shown at creation');
is_deeply([ @$ka{qw(user_id username name status key_group max_body_bytes)} ],
          [ $A->{id}, "$tag-a", "$tag-a1", 'active', undef, undef ], 'owned by the caller');
ok($ka->{unlimited_quota}, 'with billing loaded a new key is unlimited (the wallet is the limit)');
is($ka->{key_prefix}, substr($ka->{key}, 0, 8), 'its prefix');

# the key works on the gateway
Apache::TestRequest::module('nebula_relay');
my $relay = 'http://' . Apache::TestRequest::hostport();
Apache::TestRequest::module('default');
my $gw = LWP::UserAgent->new(timeout => 30);
is($gw->get("$relay/v1/models", Authorization => "Bearer $ka->{key}")->code, 200,
   'the new key is accepted by the gateway');

($res, $j) = api('POST', '/api/self/keys',
                 { name => "$tag-a2", expires_at => time * 1000 + 86400000,
                   allowed_models => [ 'gpt-4o', 'gpt-4o-mini' ], allowed_ips => ['10.0.0.0/8'],
                   remain_quota => 5000 }, %a);
is($res->code, 201, 'A creates a second key with limits');
my $ka2 = $j->{data};
is_deeply([ @$ka2{qw(remain_quota allowed_models allowed_ips)} ],
          [ 5000, [ 'gpt-4o', 'gpt-4o-mini' ], ['10.0.0.0/8'] ], 'its limits');
ok(!$ka2->{unlimited_quota}, 'a remain_quota given: not unlimited');
($res, $j) = api('POST', '/api/self/keys', { name => "$tag-b1" }, %b);
my $kb = $j->{data};
is($kb->{user_id}, $B->{id}, 'B creates its own key');

# what an owner may not set
for my $f ([ key_group => 'default' ], [ max_body_bytes => 4096 ], [ user_id => $B->{id} ]) {
    ($res, $j) = api('POST', '/api/self/keys', { name => 'x', @$f }, %a);
    is($res->code . ' ' . $j->{error}{param}, "403 $f->[0]", "create with $f->[0]: 403");
}
($res, $j) = api('POST', '/api/self/keys', { key => 'sk-' . ('a' x 48) }, %a);
is($res->code . ' ' . $j->{error}{param}, '403 key', 'no import through self-service');
($res, $j) = api('POST', '/api/self/keys', { status => 'disabled' }, %a);
is($res->code . ' ' . $j->{error}{param}, '400 status', 'a new key has no status to set');
($res, $j) = api('POST', '/api/self/keys', { allowed_ips => ['10.1'] }, %a);
is($res->code . ' ' . $j->{error}{param}, '400 allowed_ips', 'the managers\' validation');
($res, $j) = api('POST', '/api/self/keys', { expires_at => 1000 }, %a);
is($res->code . ' ' . $j->{error}{param}, '400 expires_at', 'expiry in the past: 400');
($res, $j) = api('POST', '/api/self/keys', { nme => 'typo' }, %a);
is($res->code . ' ' . $j->{error}{param}, '400 nme', 'unknown member: 400');
($res, $j) = api('POST', '/api/self/keys', { name => 'x' });
is($res->code . ' ' . $j->{error}{code}, '400 no_user', 'the root token has no own keys');

# lists: own keys only
($res, $j) = api('GET', '/api/self/keys', undef, %a);
is($res->code, 200, 'A lists its keys');
is_deeply([ $j->{total}, map { $_->{id} } @{ $j->{data} } ], [ 2, $ka2->{id}, $ka->{id} ],
          'only its two, newest first');
ok(!grep({ exists $_->{key} } @{ $j->{data} }), 'never the key itself');
($res, $j) = api('GET', '/api/self/keys', undef, %b);
is_deeply([ $j->{total}, map { $_->{id} } @{ $j->{data} } ], [ 1, $kb->{id} ], 'B: only its own');
($res, $j) = api('GET', "/api/self/keys?q=$tag-a2", undef, %a);
is_deeply([ map { $_->{id} } @{ $j->{data} } ], [ $ka2->{id} ], 'q filter');
($res, $j) = api('GET', "/api/self/keys?user_id=$B->{id}", undef, %a);
is($res->code . ' ' . $j->{error}{param}, '400 user_id', 'user_id is not a parameter');
($res, $j) = api('GET', '/api/self/keys?status=gone', undef, %a);
is($res->code, 400, 'bad status filter: 400');

# one key; another's is 404, exactly like a missing one
($res, $j) = api('GET', "/api/self/keys/$ka->{id}", undef, %a);
is_deeply([ $res->code, $j->{data}{id}, exists $j->{data}{key} ? 1 : 0 ], [ 200, $ka->{id}, 0 ],
          'A reads its key');
my ($missing) = api('GET', '/api/self/keys/999999999', undef, %a);
for my $m ([ 'GET', undef ], [ 'PATCH', { name => 'stolen' } ], [ 'DELETE', undef ]) {
    ($res, $j) = api($m->[0], "/api/self/keys/$ka->{id}", $m->[1], %b);
    is($res->code . ' ' . $j->{error}{code}, '404 not_found', "B $m->[0]s A's key: 404");
}
is($missing->code, 404, 'a missing key: 404 too');
($res, $j) = api('GET', "/api/keys/$ka->{id}");
is_deeply([ @{ $j->{data} }{qw(name status)} ], [ "$tag-a1", 'active' ], 'A\'s key untouched');

# changes
($res, $j) = api('PATCH', "/api/self/keys/$ka->{id}",
                 { name => "$tag-a1x", allowed_models => ['m1'], allowed_ips => ['192.0.2.1'],
                   unlimited_quota => $F, remain_quota => 1234, expires_at => undef }, %a);
is($res->code, 200, 'A changes its key');
is_deeply([ @{ $j->{data} }{qw(name allowed_models allowed_ips remain_quota expires_at)} ],
          [ "$tag-a1x", ['m1'], ['192.0.2.1'], 1234, undef ], 'the new values');
ok(!$j->{data}{unlimited_quota}, 'no longer unlimited');
($res, $j) = api('PATCH', "/api/self/keys/$ka->{id}", { status => 'disabled' }, %a);
is($j->{data}{status}, 'disabled', 'A disables it');
is($gw->get("$relay/v1/models", Authorization => "Bearer $ka->{key}")->code, 401,
   'the gateway refuses it now');
($res, $j) = api('PATCH', "/api/self/keys/$ka->{id}", { status => 'active' }, %a);
is($j->{data}{status}, 'active', 'and enables it again');
for my $f ([ key_group => 'default' ], [ max_body_bytes => undef ], [ user_id => $B->{id} ]) {
    ($res, $j) = api('PATCH', "/api/self/keys/$ka->{id}", {@$f}, %a);
    is($res->code . ' ' . $j->{error}{param}, "403 $f->[0]", "PATCH $f->[0]: 403");
}
($res, $j) = api('PATCH', "/api/self/keys/$ka->{id}", { status => 'expired' }, %a);
is($res->code . ' ' . $j->{error}{param}, '400 status', 'only active or disabled');
($res, $j) = api('PATCH', "/api/self/keys/$ka->{id}", {}, %a);
is($res->code, 400, 'an empty PATCH: 400');

# a session needs its CSRF token for changes
my $ua = new_ua();
($res, $j) = login($ua, "$tag-a", "pw-$tag-a-secret");
my $csrf = $j->{data}{csrf_token};
($res, $j) = api('POST', '/api/self/keys', { name => 's' }, token => undef, ua => $ua);
is($res->code . ' ' . $j->{error}{code}, '403 csrf_failed', 'session POST without CSRF: 403');
($res, $j) = api('POST', '/api/self/keys', { name => "$tag-s" }, token => undef, ua => $ua,
                 headers => { 'X-CSRF-Token' => $csrf });
is($res->code . ' ' . $j->{data}{user_id}, "201 $A->{id}", 'with it: 201, A\'s key');
my $ks = $j->{data};

# delete
($res) = api('DELETE', "/api/self/keys/$ks->{id}", undef, %a);
is($res->code, 204, 'A deletes a key: 204');
($res) = api('GET', "/api/self/keys/$ks->{id}", undef, %a);
is($res->code, 404, 'then it is gone');
($res, $j) = api('GET', "/api/self/keys/$kb->{id}", undef, %b);
is($res->code, 200, 'B\'s key still there');

# ---- own request logs and statistics ------------------------------------------
my $H = 3600000;
my $T0 = 1420070400000 + int(rand(40000)) * $H;
my $RANGE = "from=$T0&to=" . ($T0 + $H);
my $n = 0;
sub log_row {   # key, user, status, stream, latency, ttfb, cost, channel
    my ($k, $u, $st, $s, $lat, $ttfb, $cost) = @_;
    db_exec(sprintf("INSERT INTO request_logs (id, created_at, key_id, user_id, model, channel_id, "
                    . "status, is_stream, prompt_tokens, completion_tokens, cost, latency_ms, "
                    . "ttfb_ms) VALUES ('%08x-0000-7000-8000-%012x', %d, %d, %d, '%s', 77, %d, %d, "
                    . "3, 4, %d, %d, %d)", $$, ++$n + int(rand(2**30)) * 1000, $T0 + $n * 1000,
                    $k, $u, "$tag-m", $st, $s, $cost, $lat, $ttfb));
}
log_row($ka->{id}, $A->{id}, 200, 0, 100, 0, 10);
log_row($ka2->{id}, $A->{id}, 200, 1, 200, 50, 20);
log_row($ka2->{id}, $A->{id}, 500, 0, 30, 0, 0);
log_row($kb->{id}, $B->{id}, 200, 0, 50, 0, 1000) for 1 .. 4;

($res, $j) = api('GET', "/api/self/logs?$RANGE", undef, %a);
is($res->code, 200, 'A lists its request logs');
is_deeply([ $j->{total}, map { $_->{cost} } @{ $j->{data} } ], [ 3, 0, 20, 10 ],
          'its three rows only, newest first');
ok(!grep({ exists $_->{channel_id} || exists $_->{user_id} } @{ $j->{data} }),
   'no channel (nor user) in a self-service log');
($res, $j) = api('GET', "/api/self/logs?$RANGE&key_id=$kb->{id}", undef, %a);
is($j->{total}, 0, 'B\'s key id as a filter: nothing of B');
($res, $j) = api('GET', "/api/self/logs?$RANGE&status=500", undef, %a);
is($j->{total}, 1, 'status filter');
($res, $j) = api('GET', "/api/self/logs?$RANGE", undef, %b);
is($j->{total}, 4, 'B sees its four');
for my $q ("user_id=$B->{id}", 'channel_id=77') {
    ($res, $j) = api('GET', "/api/self/logs?$RANGE&$q", undef, %a);
    is($res->code . ' ' . $j->{error}{param}, '400 ' . ($q =~ /^(\w+)/)[0], "logs with $q: 400");
}

($res, $j) = api('GET', "/api/self/stats/usage?$RANGE", undef, %a);
is($res->code, 200, 'A: usage statistics');
is_deeply([ @{ $j->{data}{total} }{qw(requests cost errors prompt_tokens)} ], [ 3, 30, 1, 9 ],
          'its own totals only');
($res, $j) = api('GET', "/api/self/stats/usage?$RANGE&user_id=$B->{id}", undef, %a);
is($res->code . ' ' . $j->{error}{param}, '400 user_id', 'usage: user_id refused');

($res, $j) = api('GET', "/api/self/stats/summary?$RANGE&by=key", undef, %a);
is($res->code, 200, 'A: summary by key');
is_deeply([ map { [ @$_{qw(key_id key_name requests errors cost)} ] } @{ $j->{data}{rows} } ],
          [ [ $ka2->{id}, "$tag-a2", 2, 1, 20 ], [ $ka->{id}, "$tag-a1x", 1, 0, 10 ] ],
          'its keys only');
is_deeply([ @{ $j->{data}{total} }{qw(requests errors cost)} ], [ 3, 1, 30 ], 'its totals');
is_deeply($j->{data}{total}{ttft_ms}, { p50 => 50, p95 => 50, p99 => 50 }, 'its ttft');
($res, $j) = api('GET', "/api/self/stats/summary?$RANGE", undef, %b);
is_deeply([ @{ $j->{data}{total} }{qw(requests cost)}, $j->{data}{total}{latency_ms}{p50} ],
          [ 4, 4000, 50 ], 'B: its own');
for my $q ('by=user', 'by=channel', "user_id=$A->{id}", 'channel_id=77') {
    ($res, $j) = api('GET', "/api/self/stats/summary?$RANGE&$q", undef, %a);
    is($res->code, 400, "self summary with $q: 400");
}
