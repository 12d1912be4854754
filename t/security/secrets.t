# Secrets hygiene (reliability targets T15): a canary client key and a canary
# upstream key go through everything the gateway does with keys, on the
# nebula_secrets_admin and nebula_secrets_relay vhosts (t/conf/extra.conf.in:
# LogLevel debug, trace for the NebulaGate modules, an access log holding the
# request line, the query and the headers an operator might log): successful
# chat in three protocols (the Gemini key also as ?key=), a stream, upstream
# 401 / 500 / 503 errors whose bodies echo the upstream key (the mock's
# echo_auth control), auto-disable, failover, the channel test, a wrong
# client key, a governance hit (audit), Redis-backed rate limits when the
# suite has a Redis, and the admin UI and API pages that show channels,
# keys, logs and audit rows. Then neither canary, in any form (raw, URL-
# encoded, hex, base64 and base64url at every alignment), may be in: the
# vhosts' error and access logs, the server's error and access logs, the
# governance audit file, any response body or header the test got (but the
# one that shows the new client key once), any column of any table of the
# database (but channel_keys.key_ciphertext), any Redis key or value.
# And the sealed upstream keys: a flipped bit in a stored ciphertext, or a
# ciphertext moved to another channel's row, does not open (AES-256-GCM with
# the channel id as AAD): the channel has no usable key, nothing reaches the
# upstream, the request and the channel test fail cleanly; put back, it
# works again.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use HTTP::Request;
use MIME::Base64 ();
use FindBin;
use lib "$FindBin::Bin/../lib", "$FindBin::Bin/../admin";
use AdminT qw(db_rows db_exec db_value ROOT_TOKEN);
use NebulaAdmin qw(mock_url mock_records);
use NebulaTest qw(top_dir);
use NebulaSecurity qw(canary canary_forms canary_hits db_text redis_text);

my $top = top_dir();
my $logs = Apache::Test::vars('t_logs');
sub hostport {
    Apache::TestRequest::module($_[0]);
    my $hp = Apache::TestRequest::hostport();
    Apache::TestRequest::module('default');
    return $hp;
}
my $ADMIN = 'http://' . hostport('nebula_secrets_admin');
my $RELAY = 'http://' . hostport('nebula_secrets_relay');
my $ua = LWP::UserAgent->new(keep_alive => 2, timeout => 60);
my $run = "sec$$" . time % 100000;
# the logs are scanned from where they stand now (some outlive a server start)
my @LOGS = qw(secrets_error_log secrets_access_log error_log access_log nebula-audit.jsonl);
my %log_start = map { $_ => (-s "$logs/$_") // 0 } @LOGS;
sub log_text {
    my ($f) = @_;
    open(my $fh, '<', "$logs/$f") or return undef;
    seek($fh, $log_start{$f}, 0) if (-s "$logs/$f") >= $log_start{$f};
    local $/;
    return <$fh>;
}

# ---- requests: every answer is kept for the scan ------------------------------------
my @seen;    # [what, status line, headers, body]
# req(METHOD, URL, BODY (ref: JSON; else raw), headers...; shown_once => 1 keeps
# the answer out of the scan) -> (HTTP::Response, JSON or undef)
sub req {
    my ($method, $url, $body, %h) = @_;
    my $once = delete $h{shown_once};
    my $r = HTTP::Request->new($method, $url);
    if (defined $body) {
        $r->content(ref $body ? encode_json($body) : $body);
        $r->header('Content-Type' => 'application/json');
    }
    $r->header('Content-Length' => length($r->content // ''));
    $r->header($_ => $h{$_}) for keys %h;
    my $res = $ua->request($r);
    push @seen, [ "$method $url", $res->status_line, $res->headers->as_string, $res->content // '' ]
        unless $once;
    return ($res, scalar eval { decode_json($res->content) });
}
sub adm {
    my ($method, $path, $body, %h) = @_;
    return req($method, "$ADMIN$path", $body, Authorization => 'Bearer ' . ROOT_TOKEN, %h);
}
sub adm_ok {
    my ($res, $j) = adm(@_);
    die "$_[0] $_[1]: " . $res->code . ' ' . $res->content . "\n" unless $res->is_success;
    return $j->{data} // $j;
}
sub chat {
    my ($key, $model, $text, %o) = @_;
    return req('POST', "$RELAY/v1/chat/completions",
               { model => $model, messages => [{ role => 'user', content => $text }],
                 ($o{stream} ? (stream => JSON::PP::true) : ()) },
               Authorization => "Bearer $key");
}
sub records { my ($tag) = @_; return mock_records($tag, 1000) }

# ---- the canaries ------------------------------------------------------------------
# the upstream key: no "sk-" (the relay must not rely on a key's shape to
# mask it), and characters that URL-encode
my $UP = canary('nbUPcanary', '+/Q');
my $user = adm_ok('POST', '/api/users', { username => "$run-u", password => "pw-$run-u-secret",
                                          role => 'user', user_group => 'default' });
my ($kres, $kj) = adm('POST', '/api/keys', { user_id => $user->{id}, name => "$run-key",
                                              remain_quota => 100000000 }, shown_once => 1);
my $CLIENT = $kj->{data}{key} // $kj->{key};
my $kid = $kj->{data}{id} // $kj->{id};
ok($kres->code == 201 && $CLIENT && length($CLIENT) >= 24, 'the canary client key, shown once')
    or BAIL_OUT('no client key: ' . $kres->content);
# the key also counts without its "sk-" (clients may send it so)
my %canaries = (client => canary_forms($CLIENT), client_secret => canary_forms($CLIENT =~ s/^sk-//r),
                upstream => canary_forms($UP));
is(join(' ', grep { $canaries{upstream}{$_} } qw(raw url url_lc hex base64_0 base64_1 base64_2)),
   'raw url url_lc hex base64_0 base64_1 base64_2', 'the upstream canary\'s forms: '
   . join(' ', sort keys %{ $canaries{upstream} }));

# ---- channels whose upstream echoes the key ------------------------------------------
my %ch;    # name => { id, tag, model }
sub channel {
    my ($name, $controls, %o) = @_;
    my $tag = "$run-$name";
    my $model = $o{model} // "$run-$name-model";
    my $d = adm_ok('POST', '/api/channels', {
        name => $tag, kind => $o{kind} // 'openai',
        base_url => mock_url(join(',', "tag=$tag", 'echo_auth=1', $controls ? $controls : ())),
        keys => [ $o{key} // $UP ], models => [$model], channel_groups => ['default'],
        priority => $o{priority} // 0, weight => 1 });
    $ch{$name} = { id => $d->{id}, tag => $tag, model => $model };
    return $ch{$name};
}
channel('ok');
channel('e401', 'status=401');
channel('e500', 'status=500');
channel('ant', 'status=401', kind => 'anthropic');
channel('gem', 'status=500', kind => 'gemini');
channel('fo_bad', 'status=503', model => "$run-fo-model", priority => 10);
channel('fo_good', undef, model => "$run-fo-model", priority => 0);

# control: the mock does echo the key it gets
{
    my $r = $ua->request(HTTP::Request->new(
        POST => mock_url("status=401,echo_auth=1") . '/v1/chat/completions',
        [ Authorization => "Bearer $UP", 'Content-Type' => 'application/json' ],
        encode_json({ model => 'm', messages => [{ role => 'user', content => 'hi' }] })));
    ok(index($r->content, $UP) >= 0 && ($r->header('X-Mock-Auth-Echo') // '') eq $UP,
       'control: the mock echoes the upstream key in its error body and a header');
}

# ---- what the gateway does with keys ---------------------------------------------------
my ($r, $j) = chat($CLIENT, $ch{ok}{model}, 'hello');
is($r->code, 200, 'chat with the canary keys: 200');
($r) = chat($CLIENT, $ch{ok}{model}, 'hello', stream => 1);
ok($r->code == 200 && $r->content =~ /\[DONE\]/, 'a stream: 200 to [DONE]');
($r) = req('POST', "$RELAY/v1/messages",
           { model => $ch{ok}{model}, max_tokens => 16, messages => [{ role => 'user', content => 'hi' }] },
           'x-api-key' => $CLIENT, 'anthropic-version' => '2023-06-01');
is($r->code, 200, 'Anthropic Messages, the key in x-api-key: 200');
($r) = req('POST', "$RELAY/v1beta/models/$ch{ok}{model}:generateContent?key=$CLIENT",
           { contents => [{ parts => [{ text => 'hi' }] }] });
is($r->code, 200, 'Gemini, the key as ?key=: 200');
my $okrec = records($ch{ok}{tag});
is(scalar(grep { ($_->{headers}{authorization} // '') eq "Bearer $UP" } @$okrec), 4,
   'the mock got the upstream canary (Bearer) on all four');

my @errs;
for my $n (1 .. 3) {
    ($r, $j) = chat($CLIENT, $ch{e401}{model}, "401 please $n");
    push @errs, $r->code;
}
is("@errs", '401 401 401', 'upstream 401 echoing the key: the client gets 401 three times');
like($j->{error}{message} // '', qr/the key you sent: \*{10,}/, '... with the echoed key masked');
($r, $j) = chat($CLIENT, $ch{e500}{model}, '500 please');
is($r->code, 500, 'upstream 500 echoing the key: 500');
like($j->{error}{message} // '', qr/the key you sent: \*{10,}/, '... masked');
($r, $j) = chat($CLIENT, $ch{ant}{model}, 'anthropic 401');
is($r->code, 401, 'an Anthropic channel\'s 401 (x-api-key echoed): 401');
($r, $j) = chat($CLIENT, $ch{gem}{model}, 'gemini 500');
is($r->code, 500, 'a Gemini channel\'s 500 (x-goog-api-key echoed): 500');
my $gemrec = records($ch{gem}{tag});
ok(@$gemrec && ($gemrec->[-1]{headers}{'x-goog-api-key'} // '') eq $UP,
   'the Gemini channel sent the key in x-goog-api-key');
($r) = chat($CLIENT, "$run-fo-model", 'failover');
is($r->code, 200, 'failover past an upstream 503 that echoed the key: 200');
is(scalar @{ records($ch{fo_bad}{tag}) }, 1, '... after one try of the failing channel');

($r, $j) = adm('POST', "/api/channels/$ch{e500}{id}/test");
ok(!$j->{data}{ok} && ($j->{data}{status} // 0) == 500, 'channel test of the 500 channel: not ok');
($r, $j) = adm('POST', "/api/channels/$ch{ok}{id}/test");
ok($j->{data}{ok}, 'channel test of the good channel: ok');

($r, $j) = chat("${CLIENT}0", $ch{ok}{model}, 'wrong key');
is($r->code, 401, 'a wrong client key (the canary and one more character): 401');

# governance: a policy hit is audited
my $word = "$run-forbidden";
my $pol = adm_ok('POST', '/api/policies', { name => "$run-pol",
                 match => [{ type => 'keywords', values => [$word] }],
                 action => { type => 'block', message => 'not here' } });
($r, $j) = chat($CLIENT, $ch{ok}{model}, "say $word");
ok($r->code >= 400 && $r->code < 500, 'a blocked request (' . $r->code . ')');

# Redis-backed limits, when the suite has a Redis: a limit of its own model,
# slow enough (rpm=6: 10 s a request) that its counters are still there
# when Redis is read right after
my $redis = $ENV{NEBULA_TEST_REDIS_URL};
my ($lim, $redis_text);
if ($redis) {
    my $lc = channel('lim');
    $lim = adm_ok('POST', '/api/rate-limits', { scope_kind => 'model', scope_value => $lc->{model},
                                                 rpm => 6 });
    my @c = map { (chat($CLIENT, $lc->{model}, "limited $_"))[0]->code } 1 .. 3;
    is("@c", '200 200 200', 'three requests under a Redis-counted limit');
    $redis_text = redis_text($redis);
    ok(defined $redis_text && $redis_text =~ /\S/, 'Redis read at once: its keys and values ('
       . length($redis_text // '') . ' bytes)');
}

# ---- the admin UI and API pages that show channels, keys, logs, audit ------------------
($r) = req('GET', "$ADMIN/");
like($r->content, qr/<html/i, 'the admin UI page');
my @pages = ('/api/channels?per_page=100', '/api/keys?per_page=100', "/api/keys/$kid",
             "/api/keys?user_id=$user->{id}", "/api/users/$user->{id}",
             "/api/logs?key_id=$kid&per_page=100", '/api/audit?per_page=100',
             "/api/audit?key_id=$kid&per_page=100", "/api/audit/export?format=csv&key_id=$kid",
             "/api/audit/export?key_id=$kid", '/api/stats/summary', '/api/settings',
             map { ("/api/channels/$ch{$_}{id}") } sort keys %ch);
my @bad_pages = grep { !(adm('GET', $_))[0]->is_success } @pages;
is("@bad_pages", '', 'every admin page answered');
my $logs_j = adm_ok('GET', "/api/logs?key_id=$kid&per_page=100");
cmp_ok(scalar @$logs_j, '>=', 10, 'the key\'s request-log rows (' . scalar(@$logs_j) . ')');
my @log_codes = map { (adm('GET', "/api/logs/$_->{id}"))[0]->code } @$logs_j;
is(scalar(grep { $_ == 200 } @log_codes), scalar(@$logs_j), 'each request-log row\'s page: 200');
my $aud = adm_ok('GET', "/api/audit?key_id=$kid&per_page=100");
ok(scalar @$aud >= 1, 'the key\'s audit rows (' . scalar(@$aud) . ')');
my $tok = adm_ok('POST', "/api/users/$user->{id}/access-token")->{access_token};
for my $p ('/api/self/keys', "/api/self/keys/$kid", '/api/self/logs', '/api/auth/me') {
    req('GET', "$ADMIN$p", undef, Authorization => "Bearer $tok");
}
my ($kgone) = grep { $_->[0] eq "GET $ADMIN/api/keys/$kid" } @seen;
like($kgone->[3] // '', qr/"id"\s*:\s*$kid\b/, 'control: the key\'s page is in the scan');

# ---- the scan ---------------------------------------------------------------------------
my @leaks;
sub scan {
    my ($where, $text) = @_;
    push @leaks, map { "$where: $_" } canary_hits($text, \%canaries);
}
select(undef, undef, undef, 1.0);    # the request-log thread, the audit file
for my $f (@LOGS) {
    my $text = log_text($f);
    ok(defined $text && length $text, "$f: this run's part is there") if $f =~ /^secrets_/;
    scan("t/logs/$f", $text);
}
my $acc = log_text('secrets_access_log') // '';
like($acc, qr/key=REDACTED/, 'the access log has the ?key= request, its key redacted');
like($acc, qr{"POST /v1/chat/completions HTTP/1\.1" 401 .* user=$run-u }, 'and the 401s, by user');
my $elog = log_text('secrets_error_log') // '';
like($elog, qr/\[nebula_relay:(debug|trace\d)\]|\[\w+:debug\]/, 'the vhosts logged at debug level');
scan("response to $_->[0]", join("\n", @$_[1 .. 3])) for @seen;
my $db = db_text(skip => { 'channel_keys.key_ciphertext' => 1 });
ok(scalar(keys %$db) >= 20, 'the database: ' . scalar(keys %$db) . ' tables read');
for my $t (sort keys %$db) {
    for my $hit (canary_hits($db->{$t}, \%canaries)) {
        my ($c, $f) = split m{/}, $hit;
        push @leaks, "database $t." . NebulaSecurity::db_column_of($t, $canaries{$c}{$f}) . ": $hit";
    }
}
# control: the ciphertext column (skipped) and the masked key are there
my $ct = db_value("SELECT key_ciphertext FROM channel_keys ck JOIN channels c ON c.id = ck.channel_id "
                  . "WHERE c.name = '$ch{ok}{tag}'");
like($ct // '', qr/^nbk\d+:[A-Za-z0-9_-]+$/, 'control: the sealed key is in its column');
like($db->{users} // '', qr/\Q$run-u\E/, 'control: the dump holds this test\'s rows');
if ($redis) {
    scan('Redis, read after the limited requests', $redis_text);
    scan('Redis, read now', redis_text($redis));
}
else {
    pass('no Redis in this run (NEBULA_TEST_REDIS_URL unset): nothing to read');
}
is(join("\n", @leaks), '', 'no canary in logs, answers, the database or Redis');
# and the client's key never goes upstream: what the mock received
my %client_only = map { $_ => $canaries{$_} } qw(client client_secret);
my @upstream_leaks = map { my $t = $_; map { "mock records of $t: $_" }
                           canary_hits(encode_json(records($ch{$t}{tag})), \%client_only) } sort keys %ch;
is("@upstream_leaks", '', 'the client key never reached an upstream');

# ---- sealed keys: a flipped bit, a ciphertext moved between channels --------------------
my $UP2 = canary('nbUPsecond');
my $ca = channel('ca', undef);
my $cb = channel('cb', undef, key => $UP2);
is((chat($CLIENT, $ca->{model}, 'a'))[0]->code, 200, 'channel A answers');
is((chat($CLIENT, $cb->{model}, 'b'))[0]->code, 200, 'channel B answers');
my ($ka) = @{ db_rows("SELECT id, key_ciphertext FROM channel_keys WHERE channel_id = $ca->{id}") };
my ($kb) = @{ db_rows("SELECT id, key_ciphertext FROM channel_keys WHERE channel_id = $cb->{id}") };
sub set_ct {
    my ($key_id, $ct, $cid, $weight) = @_;
    db_exec("UPDATE channel_keys SET key_ciphertext = '$ct' WHERE id = $key_id");
    # any admin change of the channel makes every process reload the channels
    adm_ok('PATCH', "/api/channels/$cid", { weight => $weight });
}
sub b64url_dec {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' while length($s) % 4;
    return MIME::Base64::decode_base64($s);
}
sub b64url_enc { (my $s = MIME::Base64::encode_base64($_[0], '')) =~ tr{+/}{-_}; $s =~ s/=+$//; return $s }
my ($ver, $body) = $ka->[1] =~ /^(nbk\d+):(.*)$/;
my $raw = b64url_dec($body);
substr($raw, 20, 1) = chr(ord(substr($raw, 20, 1)) ^ 0x04);    # one bit of the ciphertext
my $flipped = "$ver:" . b64url_enc($raw);
isnt($flipped, $ka->[1], 'one bit of channel A\'s sealed key flipped');

sub refused {
    my ($what) = @_;
    my $n = scalar @{ records($ca->{tag}) };
    my ($res, $jj) = chat($CLIENT, $ca->{model}, "after $what");
    is($res->code . ' ' . ($jj->{error}{code} // ''), '503 no_available_channel',
       "$what: the request gets 503 no_available_channel");
    is(scalar @{ records($ca->{tag}) }, $n, "$what: nothing reached the upstream");
    ($res, $jj) = adm('POST', "/api/channels/$ca->{id}/test");
    is($res->code . ' ' . ($jj->{error}{code} // ''), '409 no_usable_key',
       "$what: the channel test refuses (409 no_usable_key)");
}
set_ct($ka->[0], $flipped, $ca->{id}, 2);
refused('a flipped bit');
set_ct($ka->[0], $kb->[1], $ca->{id}, 3);
refused('channel B\'s ciphertext in channel A\'s row');
is((chat($CLIENT, $cb->{model}, 'b again'))[0]->code, 200, 'channel B still answers');
$elog = log_text('secrets_error_log') // '';
like($elog, qr/NEB01030: cannot decrypt key $ka->[0] of channel $ca->{id}\b/,
     'the error log names the key that does not open');
set_ct($ka->[0], $ka->[1], $ca->{id}, 4);
($r) = chat($CLIENT, $ca->{model}, 'restored');
is($r->code, 200, 'its own ciphertext back: channel A answers again');
my $last = records($ca->{tag})->[-1];
is($last->{headers}{authorization} // '', "Bearer $UP", '... with its own key');
ok(!(grep { ($_->{headers}{authorization} // '') eq "Bearer $UP2" } @{ records($ca->{tag}) }),
   'channel B\'s key never went out through channel A');

# ---- clean up: nothing of this test is used by another ----------------------------------
adm('DELETE', "/api/channels/$_->{id}") for values %ch;
adm('DELETE', "/api/policies/$pol->{id}");
adm('DELETE', "/api/rate-limits/$lim->{id}") if $lim;
adm('DELETE', "/api/keys/$kid");

done_testing();
