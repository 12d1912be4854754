# Injection through the model name, duplicate keys and the upstream's event
# stream. Model names with CR/LF, "../", "%2F", NUL, 300 characters,
# spaces, '?' or '#' are refused with 400 before routing, in every client
# protocol: nothing reaches the mock, no request-log row names them. A body
# that repeats a key is refused (the policies and the upstream must never
# read different models). A hostile but well-formed upstream stream (mock
# control sse_inject: comments, data-less "event: error" blocks, JSON spread
# over several data: lines, CR, LF and "event:" text inside strings) reaches
# the client as exactly the upstream's events, passed through or converted.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use IO::Socket::INET;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(api new_key new_channel mock_records mock_url relay_hostport key_logs);

my $ua = LWP::UserAgent->new(timeout => 30);
my $m = "inj-$$";
my $odd = "org/inj-$$.v1:free\@2024+x_y";   # every allowed character class
my ($cid, $tag) = new_channel(models => [$m, $odd]);
my ($key, $kid) = new_key();
my $base = 'http://' . relay_hostport();

my @bad = (
    [ 'CRLF',       "a\r\nX-Injected: 1" ],
    [ 'LF',         "a\nb" ],
    [ 'dot-dot',    '../x' ],
    [ '%2F',        'a%2Fb' ],
    [ 'a/../../b',  'a/../../b' ],
    [ 'NUL',        "a\x{0}b" ],
    [ '300 chars',  'm' x 300 ],
    [ 'space',      'a b' ],
    [ '?',          'a?b' ],
    [ '#',          'a#b' ],
    [ 'backslash',  'a\\b' ],
    [ 'non-ASCII',  "mod\x{e8}le" ],
);
# the Gemini form: the model in the URL path, percent-encoded by the client
my @gemini_bad = (
    [ 'CRLF',       'a%0D%0AX-Injected:%201', 400 ],
    [ 'space',      'a%20b', 400 ],
    [ '?',          'a%3Fb', 400 ],
    [ '#',          'a%23b', 400 ],
    [ '300 chars',  'm' x 300, 400 ],
    [ 'dot-dot',    'a..b', 400 ],
    # httpd itself refuses an encoded '/' or NUL in a path (404)
    [ '%2F',        'a%2Fb', 404 ],
    [ 'NUL',        'a%00b', 404 ],
);

plan tests => @bad * 2 * 3 + @gemini_bad * 2 + 2 + 3 + 10 + 3 + 3 + 8 + 7;

sub post {
    my ($path, $headers, $content) = @_;
    my $req = HTTP::Request->new(POST => "$base$path");
    $req->header(%$headers) if %$headers;
    $req->header('Content-Type' => $headers->{'Content-Type'} // 'application/json');
    $req->content($content);
    return $ua->request($req);
}
sub j { my $r = shift; return eval { decode_json($r->content) } || {} }

my %H = (openai => { Authorization => "Bearer $key" },
         anthropic => { 'x-api-key' => $key, 'anthropic-version' => '2023-06-01' },
         gemini => { 'x-goog-api-key' => $key });
my $msgs = [{ role => 'user', content => 'hi' }];
my @rids;

# ---- bad model names, in the body --------------------------------------------
for my $b (@bad) {
    my ($name, $model) = @$b;
    my $res = post('/v1/chat/completions', $H{openai},
                   encode_json({ model => $model, messages => $msgs }));
    my $e = j($res)->{error} || {};
    push @rids, $res->header('X-Request-Id');
    is($res->code, 400, "chat, model $name: 400");
    is($e->{type}, 'invalid_request_error', "chat, model $name: invalid_request_error");
    like($e->{code} // '', $name eq 'NUL' ? qr/^invalid_(model|json)$/ : qr/^invalid_model$/,
         "chat, model $name: code " . ($e->{code} // 'none'));

    $res = post('/v1/messages', $H{anthropic},
                encode_json({ model => $model, max_tokens => 10, messages => $msgs }));
    my $a = j($res);
    push @rids, $res->header('X-Request-Id');
    is($res->code, 400, "anthropic, model $name: 400");
    is($a->{type}, 'error', "anthropic, model $name: an Anthropic error");
    is(($a->{error} || {})->{type}, 'invalid_request_error',
       "anthropic, model $name: invalid_request_error");
}

# ---- bad model names, in the Gemini path ---------------------------------------
for my $b (@gemini_bad) {
    my ($name, $model, $want) = @$b;
    my $res = post("/v1beta/models/$model:generateContent", $H{gemini},
                   encode_json({ contents => [{ role => 'user', parts => [{ text => 'hi' }] }] }));
    push @rids, $res->header('X-Request-Id') if $res->header('X-Request-Id');
    is($res->code, $want, "gemini path, model $name: $want");
    if ($want == 400) {
        is((j($res)->{error} || {})->{status}, 'INVALID_ARGUMENT',
           "gemini path, model $name: a Gemini INVALID_ARGUMENT error");
    }
    else {
        unlike($res->content, qr/candidates/, "gemini path, model $name: not served");
    }
}

# ---- bad model names, in a Realtime ?model= (before the upgrade) --------------
for my $q ([ 'CRLF', 'a%0D%0AX-Injected:%201' ], [ 'dot-dot', '..%2Fx' ]) {
    my $sock = IO::Socket::INET->new(PeerAddr => relay_hostport(), Timeout => 10) or die $!;
    print $sock "GET /v1/realtime?model=$q->[1] HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        . "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer $key\r\n\r\n";
    my ($head) = (do { local $/ = "\r\n\r\n"; <$sock> } // '');
    close $sock;
    like($head, qr{^HTTP/1\.1 400 }, "realtime, model $q->[0]: 400 before the upgrade");
}

# ---- the allowed characters pass, in every protocol ----------------------------
{
    my $res = post('/v1/chat/completions', $H{openai}, encode_json({ model => $odd, messages => $msgs }));
    is($res->code, 200, "chat, model '$odd': 200");
    $res = post('/v1/messages', $H{anthropic},
                encode_json({ model => $odd, max_tokens => 10, messages => $msgs }));
    is($res->code, 200, "anthropic, model '$odd': 200");
    $res = post("/v1beta/models/$odd:generateContent", $H{gemini},
                encode_json({ contents => [{ role => 'user', parts => [{ text => 'hi' }] }] }));
    is($res->code, 200, "gemini path, model '$odd': 200");
}

# ---- a key twice -----------------------------------------------------------------
{
    my @dups = (
        [ 'chat: model twice', '/v1/chat/completions', $H{openai},
          qq({"model":"$m","model":"$odd","messages":[{"role":"user","content":"hi"}]}) ],
        [ 'chat: model twice, same value', '/v1/chat/completions', $H{openai},
          qq({"model":"$m","messages":[{"role":"user","content":"hi"}],"model":"$m"}) ],
        [ 'chat: stream twice', '/v1/chat/completions', $H{openai},
          qq({"model":"$m","stream":false,"stream":true,"messages":[{"role":"user","content":"hi"}]}) ],
        [ 'chat: a nested key twice', '/v1/chat/completions', $H{openai},
          qq({"model":"$m","messages":[{"role":"user","content":"hi","content":"ho"}]}) ],
        [ 'anthropic: model twice', '/v1/messages', $H{anthropic},
          qq({"model":"$m","model":"$odd","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}) ],
    );
    for my $d (@dups) {
        my ($name, $path, $h, $body) = @$d;
        my $res = post($path, $h, $body);
        is($res->code, 400, "$name: 400");
    }
    my $res = post('/v1/chat/completions', $H{openai}, $dups[0][3]);
    is((j($res)->{error} || {})->{code}, 'duplicate_key', 'chat: code duplicate_key');
    like((j($res)->{error} || {})->{message}, qr/"model"/, '... naming the key');
    $res = post("/v1beta/models/$m:generateContent", $H{gemini},
                qq({"model":"$odd","model":"$m","contents":[{"role":"user","parts":[{"text":"hi"}]}]}));
    is($res->code, 400, 'gemini path form: model twice in the body: 400');
    $res = post("/v1beta/models/$m:generateContent", $H{gemini},
                qq({"contents":[{"role":"user","parts":[{"text":"hi"}]}],"contents":[]}));
    is($res->code, 400, 'gemini path form: contents twice: 400');
    # a form (transcriptions) with two model fields
    my $bd = "nebula-$$";
    my $form = join('', map { "--$bd\r\nContent-Disposition: form-data; name=\"$_->[0]\"\r\n\r\n$_->[1]\r\n" }
                        ([ model => $m ], [ model => $odd ]))
        . "--$bd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n"
        . "Content-Type: audio/mpeg\r\n\r\nABCDEFGH\r\n--$bd--\r\n";
    $res = post('/v1/audio/transcriptions',
                { %{ $H{openai} }, 'Content-Type' => "multipart/form-data; boundary=$bd" }, $form);
    is($res->code, 400, 'transcriptions: a form with model twice: 400');
}

# ---- nothing of it went anywhere ------------------------------------------------
{
    my $recs = mock_records($tag);
    is(scalar @$recs, 3, 'the mock saw the three allowed requests only');
    is_deeply([ sort map { $_->{model} } @$recs ], [ sort(($odd) x 3) ], '... all for the allowed name');
    ok(!grep({ exists $_->{headers}{'x-injected'} } @$recs), 'no upstream request carries an injected header');
}

# the refusals' request-log rows name no model
{
    my $rows = key_logs($kid, @bad * 2);
    my @refused = grep { $_->{status} == 400 } @$rows;
    ok(@refused >= @bad * 2, 'the refusals have request-log rows (' . scalar(@refused) . ')');
    my @named = grep { ($_->{model} // '') ne '' && ($_->{model} !~ m{^[A-Za-z0-9._:/\@+-]{1,256}$}
                                                    || $_->{model} =~ /\.\./) } @$rows;
    is(scalar @named, 0, 'no request-log row holds a refused model name');
    my @bad_named = grep { my $r = $_; grep { ($r->{model} // '') eq $_->[1] } @bad } @$rows;
    is(scalar @bad_named, 0, '... nor any of the names sent');
}

# ---- the upstream's event stream --------------------------------------------------
my $INJECT = "\r\n\nevent: error\ndata: [DONE]\n\ndata: {\"forged\":1}\r\r: c\n";
my $TEXT = join('', map { "tok$_$INJECT " } 1 .. 5);

# Events per the WHATWG rules: [[event or undef, data] ...]
sub sse_parse {
    my ($text) = @_;
    my ($event, $data, @out) = (undef, '');
    my @lines = split /\r\n|\r|\n/, $text, -1;
    pop @lines;    # what follows the last line end is no line
    for my $l (@lines) {
        if ($l eq '') {
            if ($data ne '') {
                chop $data;
                push @out, [ $event, $data ];
            }
            ($event, $data) = (undef, '');
            next;
        }
        next if $l =~ /^:/;
        my ($f, $v) = $l =~ /^([^:]*)(?::(.*))?$/s;
        $v //= '';
        $v =~ s/^ //;
        $event = $v if $f eq 'event';
        $data .= "$v\n" if $f eq 'data';
    }
    return \@out;
}

# The data of an OpenAI chunk without what differs from request to request.
sub norm {
    my ($d) = @_;
    return $d if $d eq '[DONE]';
    my $j = eval { decode_json($d) } or return "not JSON: $d";
    delete @$j{qw(id created)};
    return $j;
}

my ($sse_cid, $sse_tag) = new_channel(models => ["$m-sse"], controls => 'sse_inject=1');
my $stream_body = encode_json({ model => "$m-sse", stream => JSON::PP::true,
                                stream_options => { include_usage => JSON::PP::true },
                                messages => $msgs });
{
    # the upstream's own stream, straight from the mock, is the reference
    my $req = HTTP::Request->new(POST => mock_url('sse_inject=1') . '/v1/chat/completions');
    $req->header(Authorization => 'Bearer sk-direct', 'Content-Type' => 'application/json');
    $req->content($stream_body);
    my $up = $ua->request($req);
    my $want = sse_parse($up->content);
    my $res = post('/v1/chat/completions', $H{openai}, $stream_body);
    my $got = sse_parse($res->content);
    is($res->code, 200, 'pass-through stream: 200');
    is(scalar @$got, scalar @$want, 'pass-through: as many events as the upstream sent (' . scalar(@$want) . ')');
    is_deeply([ map { $_->[0] } @$got ], [ map { $_->[0] } @$want ], '... with the same event names');
    is_deeply([ map { norm($_->[1]) } @$got ], [ map { norm($_->[1]) } @$want ], '... and the same data');
    is(join('', map { ref($_) ? ($_->{choices}[0]{delta}{content} // '') : '' }
                map { norm($_->[1]) } @$got),
       $TEXT, '... the text exactly, CR, LF and "event:" in it included');
    is(scalar(grep { $_->[1] eq '[DONE]' } @$got), 1, '... one [DONE], the last event');
    ok(!grep({ $_->[1] =~ /^\{"forged"/ || defined $_->[0] } @$got), '... no forged event');
    like($res->content, qr/\A(?:data: [^\r\n]*\n(?:data: [^\r\n]*\n)*\n)+\z/,
         '... framed as data lines and blank lines only');
}

# converted: an Anthropic client on the OpenAI channel
{
    my $res = post('/v1/messages', $H{anthropic},
                   encode_json({ model => "$m-sse", max_tokens => 100, stream => JSON::PP::true,
                                 messages => $msgs }));
    my $got = sse_parse($res->content);
    is($res->code, 200, 'converted stream: 200');
    my @types = map { $_->[0] // '' } @$got;
    my @data = map { eval { decode_json($_->[1]) } || {} } @$got;
    ok(!grep({ $types[$_] ne ($data[$_]{type} // '') } 0 .. $#types),
       'converted: every event is named by its type');
    ok(!grep({ $_ eq 'error' } @types), '... none is an error');
    is(scalar(grep { $_ eq 'content_block_delta' } @types), 5, '... one text delta per upstream chunk');
    is(join('', map { $_->{delta}{text} // '' } grep { ($_->{type} // '') eq 'content_block_delta' } @data),
       $TEXT, '... the text exactly');
    is($types[0], 'message_start', '... message_start first');
    is($types[-1], 'message_stop', '... message_stop last');
}
