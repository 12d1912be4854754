# Rate and concurrency limits (mod_nebula_gov, gov_limit*.c) through the real
# relay against the mock provider: requests and tokens per minute per key,
# user, group and model, concurrent streams per key, the x-ratelimit-*
# headers and the 429 (OpenAI- and Anthropic-shaped), a refusal that costs
# nothing on the billed gateway, and the admin API /api/rate-limits.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use IO::Socket::INET;
use JSON::PP qw(encode_json decode_json);
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_user new_key new_channel mock_records chat relay_hostport);
use NebulaBilling qw(billed_setup billed_chat wallet ledger_rows);

plan tests => 102;

my $m = "rl-$$";
my ($cid, $tag) = new_channel(models => [$m, "rlglob-$$-a", "rlglob-$$-b", "rlcfg-$$-a",
                                         "rlcfg-$$-b"]);
my $body = { model => $m, messages => [{ role => 'user', content => 'hi' }] };

sub limit {
    my (%o) = @_;
    my $d = admin('POST', '/api/rate-limits', \%o);
    return $d->{data}{id};
}
sub err_of { my $j = eval { decode_json($_[0]->content) } // {}; return $j->{error} // {} }

# --- rpm per key: 3 pass, the 4th is refused and never reaches the mock ---
{
    my ($key, $kid) = new_key();
    limit(scope_kind => 'key', scope_value => "$kid", rpm => 3);
    my @res = map { chat($key, $body) } 1 .. 3;
    is_deeply([map { $_->code } @res], [200, 200, 200], 'rpm=3: three requests pass');
    is($res[0]->header('x-ratelimit-limit-requests'), 3, 'x-ratelimit-limit-requests on a success');
    is($res[0]->header('x-ratelimit-remaining-requests'), 2, 'x-ratelimit-remaining-requests after one');
    like($res[0]->header('x-ratelimit-reset-requests') // '', qr/^(19|20)(\.\d+)?s$/,
         'x-ratelimit-reset-requests in OpenAI\'s format (one request takes 20s to come back)');
    is($res[2]->header('x-ratelimit-remaining-requests'), 0, 'none remaining after three');
    like($res[2]->header('x-ratelimit-reset-requests') // '', qr/^(59(\.\d+)?s|1m0s)$/,
         'reset after three: a minute ("59.9s" or "1m0s")');
    ok(!defined $res[0]->header('x-ratelimit-limit-tokens'), 'no token headers without a tpm limit');
    my $r = chat($key, $body);
    is($r->code, 429, 'the 4th request within the minute: 429');
    my $ra = $r->header('Retry-After') // '';
    like($ra, qr/^\d+$/, 'Retry-After is whole seconds');
    ok($ra >= 19 && $ra <= 20, "Retry-After is the time until one more fits ($ra, 20s per request)");
    my $e = err_of($r);
    is($e->{type}, 'requests', 'OpenAI error type "requests"');
    like($e->{message} // '', qr/^Rate limit reached for requests per minute on key $kid: limit 3, used 3\. Try again in (19|20)s\.$/,
         'the message names the limit, the key, the limit and the use');
    is($e->{code}, 'rate_limit_exceeded', 'OpenAI error code rate_limit_exceeded');
    is($r->header('x-ratelimit-remaining-requests'), 0, 'x-ratelimit-* on the refusal too');
    is(scalar @{ mock_records($tag, 1000) }, 3, 'the mock received three requests, not the 4th');
}

# --- a refusal on the billed gateway reserves and charges nothing ---
{
    my %s = billed_setup(name => 'rl', balance => 1000000);
    limit(scope_kind => 'key', scope_value => "$s{key_id}", rpm => 1);
    my $b = { model => $s{model}, messages => [{ role => 'user', content => 'hi' }] };
    is(billed_chat($s{key}, $b)->code, 200, 'billed: the first request passes');
    my $w = wallet($s{user});
    my $rows = scalar @{ ledger_rows($w->{id}) };
    my $r = billed_chat($s{key}, $b);
    is($r->code, 429, 'billed: the second is refused');
    my $w2 = wallet($s{user});
    is(scalar @{ ledger_rows($w2->{id}) }, $rows, 'no ledger row for the refused request');
    is($w2->{reserved} // 0, 0, 'nothing reserved for it');
    is($w2->{balance}, $w->{balance}, 'the balance did not move');
    is(scalar @{ mock_records($s{tag}) }, 1, 'and the mock saw only the first');
}

# --- tpm per key: the estimate counts at admission, the usage at the end ---
{
    my ($key, $kid) = new_key();
    limit(scope_kind => 'key', scope_value => "$kid", tpm => 50);
    my $big = join(' ', ('word') x 80);
    my $r = chat($key, { model => $m, messages => [{ role => 'user', content => $big }] });
    is($r->code, 200, 'tpm=50: a big prompt passes while the window is empty');
    is($r->header('x-ratelimit-limit-tokens'), 50, 'x-ratelimit-limit-tokens');
    is($r->header('x-ratelimit-remaining-tokens'), 0, 'the big prompt used the minute\'s tokens');
    ok(!defined $r->header('x-ratelimit-limit-requests'), 'no request headers without an rpm limit');
    $r = chat($key, $body);
    is($r->code, 429, 'the next request is refused: the window\'s tokens are above the limit');
    is(err_of($r)->{type}, 'tokens', 'OpenAI error type "tokens"');
    like(err_of($r)->{message} // '', qr/^Rate limit reached for tokens per minute on key $kid: limit 50, used \d+\. Try again in \d+s\.$/,
         'the message names the tokens limit');
    my ($used) = (err_of($r)->{message} // '') =~ /used (\d+)/;
    ok(($used // 0) >= 84, "used counts prompt and completion from the mock's usage ($used, 80 + 5)");
}
{
    my ($key, $kid) = new_key();
    limit(scope_kind => 'key', scope_value => "$kid", tpm => 600);
    my $b = { model => $m, messages => [{ role => 'user', content => '[[mock events=400]] hi' }] };
    my $r1 = chat($key, $b);
    is($r1->code, 200, 'tpm=600: the first request');
    my $left1 = $r1->header('x-ratelimit-remaining-tokens');
    ok($left1 > 560 && $left1 < 600, "admission counted the prompt's estimate only ($left1 left)");
    my $r2 = chat($key, $b);
    is($r2->code, 200, 'the second request');
    my $left2 = $r2->header('x-ratelimit-remaining-tokens');
    my $diff = $left1 - $left2;
    ok($diff >= 395 && $diff <= 401,
       "done added the real usage (1 + 400) minus the estimate: $diff fewer left");
    my $r3 = chat($key, $b);
    is($r3->code, 429, 'the third is refused (401 + 401 > 600)');
}

# --- per user: two keys share it ---
{
    my $uid = new_user();
    my ($k1) = new_key(user_id => $uid);
    my ($k2) = new_key(user_id => $uid);
    limit(scope_kind => 'user', scope_value => "$uid", rpm => 2);
    is(chat($k1, $body)->code, 200, 'user rpm=2: key 1');
    is(chat($k2, $body)->code, 200, 'user rpm=2: key 2');
    my $r = chat($k1, $body);
    is($r->code, 429, 'user rpm=2: the third of the user, by either key, is refused');
    like(err_of($r)->{message} // '', qr/on user $uid: limit 2, used 2/, 'naming the user');
}

# --- per group ---
{
    my $g = "rlg-$$";
    admin('POST', '/api/groups', { name => $g });
    my ($gch, $gtag) = new_channel(models => [$m], channel_groups => [$g]);
    my ($k1) = new_key(user_group => $g);
    my ($k2) = new_key(user_group => $g);
    my ($other) = new_key();
    limit(scope_kind => 'group', scope_value => $g, rpm => 1);
    is(chat($k1, $body)->code, 200, 'group rpm=1: the first request of the group');
    my $r = chat($k2, $body);
    is($r->code, 429, 'the group\'s second, by another user, is refused');
    like(err_of($r)->{message} // '', qr/on group \Q$g\E: limit 1, used 1/, 'naming the group');
    is(chat($other, $body)->code, 200, 'a key of another group is not limited');
}

# --- per model: a glob, each model apart ---
{
    limit(scope_kind => 'model', scope_value => "rlglob-$$-*", rpm => 1);
    my ($key) = new_key();
    my $b = sub { { model => $_[0], messages => [{ role => 'user', content => 'hi' }] } };
    is(chat($key, $b->("rlglob-$$-a"))->code, 200, 'model glob rpm=1: model a');
    my $r = chat($key, $b->("rlglob-$$-a"));
    is($r->code, 429, 'model a again: refused');
    like(err_of($r)->{message} // '', qr/on model rlglob-$$-a: limit 1/, 'naming the model');
    my ($key2) = new_key();
    is(chat($key2, $b->("rlglob-$$-a"))->code, 429, 'by any key');
    is(chat($key, $b->("rlglob-$$-b"))->code, 200, 'model b has its own count');
    is(chat($key, $body)->code, 200, 'a model the glob does not match is not limited');
}

# --- per model '*' declared in the configuration (vhost nebula_limited) ---
sub limited_chat {
    my ($key, $b) = @_;
    my $req = HTTP::Request->new(POST => 'http://' . NebulaAdmin::hostport_of('nebula_limited')
                                 . '/v1/chat/completions');
    $req->header(Authorization => "Bearer $key", 'Content-Type' => 'application/json');
    $req->content(encode_json($b));
    return NebulaAdmin::ua()->request($req);
}
{
    my ($key) = new_key();
    my $b = sub { { model => $_[0], messages => [{ role => 'user', content => 'hi' }] } };
    is(limited_chat($key, $b->("rlcfg-$$-a"))->code, 200, 'NebulaRateLimit model * rpm=2: 1st');
    is(limited_chat($key, $b->("rlcfg-$$-a"))->code, 200, '2nd');
    my $r = limited_chat($key, $b->("rlcfg-$$-a"));
    is($r->code, 429, '3rd refused');
    like(err_of($r)->{message} // '', qr/on model rlcfg-$$-a: limit 2, used 2/, 'naming the model');
    is(limited_chat($key, $b->("rlcfg-$$-b"))->code, 200, 'another model: its own count');
    is(chat($key, $b->("rlcfg-$$-a"))->code, 200, 'the other vhosts do not have the limit');
}

# --- concurrent streams per key ---
sub open_stream {
    my ($key, $events) = @_;
    my $b = encode_json({ model => $m, stream => JSON::PP::true,
                          messages => [{ role => 'user', content => "[[mock events=$events,delay_ms=100]] go" }] });
    my $s = IO::Socket::INET->new(PeerAddr => relay_hostport(), Timeout => 10) or die $!;
    print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $key\r\n"
        . "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " . length($b)
        . "\r\n\r\n$b";
    my $status = <$s> // '';
    my ($code) = $status =~ m{^HTTP/1\.\d (\d+)};
    return ($s, $code // 0);
}
{
    my ($key, $kid) = new_key();
    limit(scope_kind => 'key', scope_value => "$kid", max_streams => 2);
    my ($s1, $c1) = open_stream($key, 20);
    my ($s2, $c2) = open_stream($key, 20);
    is($c1, 200, 'streams=2: the first stream');
    is($c2, 200, 'the second stream');
    my ($s3, $c3) = open_stream($key, 1);
    is($c3, 429, 'a third stream while two run: 429');
    my $rest = do { local $/; <$s3> } // '';
    like($rest, qr/concurrent streams on key $kid: limit 2, used 2/, 'naming the streams limit');
    like($rest, qr/Retry-After: \d+/i, 'with Retry-After');
    is(chat($key, $body)->code, 200, 'a request that does not stream is not counted');
    my $all = join('', map { local $/; <$_> // '' } $s1, $s2);
    is(() = $all =~ /data: \[DONE\]/g, 2, 'both streams ran to their end');
    my ($t0, $code) = (time, 0);
    while (time - $t0 < 3) { (undef, $code) = open_stream($key, 1); last if $code == 200; sleep 0.05 }
    is($code, 200, 'once they ended a stream is allowed again');
}

# --- an Anthropic client gets Anthropic's 429 ---
{
    my ($key, $kid) = new_key();
    limit(scope_kind => 'key', scope_value => "$kid", rpm => 1);
    my $ab = { model => $m, max_tokens => 16, messages => [{ role => 'user', content => 'hi' }] };
    my %h = (path => '/v1/messages', 'x-api-key' => $key, 'anthropic-version' => '2023-06-01');
    is(chat(undef, $ab, %h)->code, 200, 'anthropic: the first message');
    my $r = chat(undef, $ab, %h);
    is($r->code, 429, 'anthropic: the second is refused');
    my $j = eval { decode_json($r->content) } // {};
    is($j->{type}, 'error', 'Anthropic error envelope');
    is($j->{error}{type}, 'rate_limit_error', 'Anthropic error type rate_limit_error');
    like($j->{error}{message} // '', qr/requests per minute on key $kid/, 'with the message');
    like($r->header('Retry-After') // '', qr/^[1-9]\d*$/, 'and Retry-After');
}

# --- the admin API ---
{
    my ($key, $kid) = new_key();
    my $uid = new_user();
    my @bad = (
        [{ scope_kind => 'team', scope_value => '1', rpm => 1 }, 'scope_kind'],
        [{ scope_kind => 'key', scope_value => 'abc', rpm => 1 }, 'scope_value'],
        [{ scope_kind => 'key', scope_value => '999999999', rpm => 1 }, 'scope_value'],
        [{ scope_kind => 'group', scope_value => "nogroup-$$", rpm => 1 }, 'scope_value'],
        [{ scope_kind => 'model', scope_value => 'gpt 4', rpm => 1 }, 'scope_value'],
        [{ scope_kind => 'user', scope_value => "$uid", max_streams => 2 }, 'max_streams'],
        [{ scope_kind => 'key', scope_value => "$kid", rpm => -1 }, 'rpm'],
        [{ scope_kind => 'key', scope_value => "$kid" }, undef],
        [{ scope_kind => 'key', scope_value => "$kid", rpm => 1, burst => 2 }, 'burst'],
    );
    for my $c (@bad) {
        my ($code, $d) = api('POST', '/api/rate-limits', $c->[0]);
        is($code, 400, '400 for ' . encode_json($c->[0]));
        is($d->{error}{param}, $c->[1], '... naming ' . ($c->[1] // 'no field')) if defined $c->[1];
    }
    my ($code, $d) = api('POST', '/api/rate-limits',
                         { scope_kind => 'user', scope_value => "$uid", rpm => 7, tpm => 7000 });
    is($code, 201, 'create');
    my $id = $d->{data}{id};
    is_deeply([@{ $d->{data} }{qw(scope_kind scope_value rpm tpm max_streams enabled source)}],
              ['user', "$uid", 7, 7000, 0, JSON::PP::true, 'db'], 'the created limit');
    ($code) = api('POST', '/api/rate-limits', { scope_kind => 'user', scope_value => "$uid", rpm => 1 });
    is($code, 409, 'a second limit on the same scope: 409');
    ($code, $d) = api('PATCH', "/api/rate-limits/$id", { rpm => 9, enabled => JSON::PP::false });
    is($code, 200, 'patch');
    is_deeply([@{ $d->{data} }{qw(rpm tpm enabled)}], [9, 7000, JSON::PP::false], 'patched');
    ($code) = api('PATCH', "/api/rate-limits/$id", { max_streams => 1 });
    is($code, 400, 'max_streams on a user limit: 400');
    ($code) = api('PATCH', "/api/rate-limits/$id", { rpm => 0, tpm => 0 });
    is($code, 400, 'a limit that limits nothing: 400');
    ($code, $d) = api('GET', "/api/rate-limits/$id");
    is($d->{data}{rpm}, 9, 'get');
    ($code, $d) = api('GET', '/api/rate-limits');
    is($code, 200, 'list');
    my ($cfg) = grep { $_->{source} eq 'config' } @{ $d->{data} };
    is_deeply($cfg && [@{$cfg}{qw(id scope_kind scope_value rpm tpm max_streams source)}],
              [undef, 'model', '*', 2, 0, 0, 'config'], 'the list shows NebulaRateLimit read-only');
    ok((grep { defined $_->{id} && $_->{id} == $id } @{ $d->{data} }), 'and the stored ones');
    ($code, $d) = api('GET', '/api/rate-limits?scope_kind=user');
    ok(!(grep { $_->{scope_kind} ne 'user' } @{ $d->{data} }), 'filter by scope_kind');
    ($code) = api('DELETE', "/api/rate-limits/$id");
    is($code, 204, 'delete');
    ($code) = api('GET', "/api/rate-limits/$id");
    is($code, 404, 'gone');

    # a change applies at once (the generation): disable, then enable
    my $lid = limit(scope_kind => 'key', scope_value => "$kid", rpm => 1);
    is(chat($key, $body)->code, 200, 'limit rpm=1: first');
    is(chat($key, $body)->code, 429, 'second refused');
    admin('PATCH', "/api/rate-limits/$lid", { enabled => JSON::PP::false });
    is(chat($key, $body)->code, 200, 'disabled through the API: applies at once');
    admin('DELETE', "/api/rate-limits/$lid");
}
