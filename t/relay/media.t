# The media routes (rerank, images, audio) through the billed gateway and the
# mock provider: what the mock received (multipart bodies byte for byte, the
# model spliced only when a channel maps it), what the client got, and the
# exact charge in each route's unit (docs/media.md):
#   rerank        usage.total_tokens as prompt tokens (or a per-call price)
#   images        per image (calls = n) with a per-call price
#   speech        characters of `input` as prompt tokens
#   transcripts   seconds: usage.seconds, else verbose_json's duration, else
#                 ceil(file bytes / 16000)
# At model ratio 1 a prompt token is 1 quota unit; a per-call price of
# 0.01 USD is 5000 units (NebulaQuotaPerUSD 500000).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use MIME::Base64 qw(decode_base64);
use IO::Socket::INET;
use Time::HiRes qw(time);
use LWP::UserAgent;
use HTTP::Request;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin mock_records log_row);
use NebulaBilling qw(billed_hostport billed_setup wallet uniq_model);

plan tests => 72;

my $ua = LWP::UserAgent->new(timeout => 30);
my $BAL = 100000;
my $CALL = { price_per_call_usd => '0.01' };    # 5000 units a call

sub post {
    my ($path, $key, $ct, $body, %h) = @_;
    my $req = HTTP::Request->new(POST => 'http://' . billed_hostport() . $path);
    $req->header(Authorization => "Bearer $key");
    $req->header('Content-Type' => $ct);
    $req->header($_ => $h{$_}) for keys %h;
    $req->content($body);
    return $ua->request($req);
}

sub post_json { my ($path, $key, $j, %h) = @_; return post($path, $key, 'application/json', encode_json($j), %h) }

# multipart/form-data: parts are [name, value] or [name, bytes, filename, type]
my $B = 'nebula-media-test-boundary-7f3a';
sub form {
    my (@parts) = @_;
    my $b = '';
    for my $p (@parts) {
        $b .= "--$B\r\nContent-Disposition: form-data; name=\"$p->[0]\""
            . (defined $p->[2] ? "; filename=\"$p->[2]\"" : '') . "\r\n"
            . (defined $p->[3] ? "Content-Type: $p->[3]\r\n" : '') . "\r\n$p->[1]\r\n";
    }
    return $b . "--$B--\r\n";
}
sub post_form { my ($path, $key, $body, %h) = @_; return post($path, $key, "multipart/form-data; boundary=$B", $body, %h) }

# bytes a parser must not take for a boundary: CRLF, dashes, NULs
sub blob {
    my ($n) = @_;
    my $s = join('', map { chr(($_ * 7 + 3) % 256) } 0 .. $n - 1);
    substr($s, 100, 12) = "\r\n--\r\n\0--x\r\n";
    return $s;
}

sub j { return eval { decode_json($_[0]->decoded_content // $_[0]->content) } // {} }
sub spent { return $BAL - wallet($_[0])->{balance} }
sub last_rec { return mock_records($_[0])->[-1] // {} }

# ---- rerank --------------------------------------------------------------------
{
    my %s = billed_setup(name => 'rerank', balance => $BAL);
    my $res = post_json('/v1/rerank', $s{key},
                        { model => $s{model}, query => 'apple banana',
                          documents => ['apple pie', 'banana split cherry', { text => 'kiwi' }] });
    is($res->code, 200, 'rerank: 200') or diag($res->content);
    my $j = j($res);
    is_deeply([map { [$_->{index}, 0 + $_->{relevance_score}] } @{ $j->{results} // [] }],
              [[0, 0.5], [1, 0.5], [2, 0]], 'rerank: the results passed through');
    my $rec = last_rec($s{tag});
    my $up = eval { decode_json($rec->{body}) } // {};
    ok($rec->{path} =~ m{/v1/rerank$} && $up->{model} eq $s{model} && $up->{query} eq 'apple banana'
       && $rec->{headers}{authorization} eq "Bearer sk-upstream-$s{tag}",
       'rerank: the mock got the request with the channel key') or diag(encode_json($rec));
    # P = query 2 + documents 2 + 3 + 1 words
    is(spent($s{user}), 8, 'rerank: charged usage.total_tokens = 8 prompt tokens');
    my $log = log_row($res->header('X-Request-Id'));
    is_deeply([@$log{qw(prompt_tokens completion_tokens cost)}], [8, 0, 8],
              'rerank: the request-log row') or diag(encode_json($log));

    my %c = billed_setup(name => 'rerankcall', balance => $BAL, price => $CALL);
    $res = post_json('/v1/rerank', $c{key}, { model => $c{model}, query => 'a', documents => ['a'] });
    is($res->code, 200, 'rerank, per-call price: 200');
    is(spent($c{user}), 5000, 'rerank, per-call price: one call');
}

# ---- images ----------------------------------------------------------------------
{
    my %s = billed_setup(name => 'imggen', balance => $BAL, price => $CALL);
    my $res = post_json('/v1/images/generations', $s{key},
                        { model => $s{model}, prompt => 'a red fox', n => 3, size => '256x256' });
    is($res->code, 200, 'images/generations: 200') or diag($res->content);
    my $j = j($res);
    is_deeply([map { $_->{revised_prompt} } @{ $j->{data} // [] }], ['a red fox', 'a red fox', 'a red fox'],
              'images/generations: three images');
    my $up = eval { decode_json(last_rec($s{tag})->{body}) } // {};
    is_deeply([@$up{qw(model n size)}], [$s{model}, 3, '256x256'], 'images/generations: the JSON body upstream');
    is(spent($s{user}), 3 * 5000, 'images/generations: charged per image (n = 3)');
    $res = post_json('/v1/images/generations', $s{key}, { model => $s{model}, prompt => 'x', n => 0 });
    is_deeply([$res->code, j($res)->{error}{param}], [400, 'n'], 'images: n = 0 is a 400 on n');
}
{
    # the channel maps the model: the form goes up with only its value changed
    my $upm = "img-upstream-$$";
    my $m = uniq_model('imgedit');
    my %s = billed_setup(model => $m, balance => $BAL, price => $CALL,
                         channel => { model_mapping => { $m => $upm } });
    my $png = blob(5000);
    my @parts = (['image', $png, 'fox.png', 'image/png'], ['prompt', 'a red fox'], ['n', '2']);
    my $body = form(['model', $s{model}], @parts);
    my $res = post_form('/v1/images/edits', $s{key}, $body);
    is($res->code, 200, 'images/edits: 200') or diag($res->content);
    is(scalar @{ j($res)->{data} // [] }, 2, 'images/edits: two images');
    my $rec = last_rec($s{tag});
    is(decode_base64($rec->{body_base64} // ''), form(['model', $upm], @parts),
       'images/edits: the form upstream is the client\'s, the mapped model spliced in');
    is($rec->{headers}{'content-type'}, "multipart/form-data; boundary=$B",
       'images/edits: with the client\'s Content-Type and boundary');
    is_deeply([map { [$_->{name}, $_->{size}] } @{ $rec->{multipart} // [] }],
              [['model', length $upm], ['image', 5000], ['prompt', 9], ['n', 1]],
              'images/edits: the mock read every part');
    is(spent($s{user}), 2 * 5000, 'images/edits: charged per image (n = 2)');
}
{
    my %s = billed_setup(name => 'imgvar', balance => $BAL, price => $CALL);
    my $body = form(['image', blob(3000), 'a.png', 'image/png'], ['model', $s{model}],
                    ['response_format', 'b64_json']);
    my $res = post_form('/v1/images/variations', $s{key}, $body);
    is($res->code, 200, 'images/variations: 200') or diag($res->content);
    ok(j($res)->{data}[0]{b64_json}, 'images/variations: b64_json as asked');
    is(decode_base64(last_rec($s{tag})->{body_base64} // ''), $body,
       'images/variations: the body upstream byte for byte');
    is(spent($s{user}), 5000, 'images/variations: one image');
}

# ---- speech ----------------------------------------------------------------------

# POST over a raw socket; returns (status, headers, body, [arrival time, bytes]...)
sub timed_post {
    my ($path, $headers, $body) = @_;
    my $hp = billed_hostport();
    my $sock = IO::Socket::INET->new(PeerAddr => $hp, Timeout => 10) or die "connect: $!";
    print $sock "POST $path HTTP/1.1\r\nHost: $hp\r\nConnection: close\r\n"
        . join('', map { "$_: $headers->{$_}\r\n" } sort keys %$headers)
        . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;
    my ($raw, @t) = ('');
    while (sysread($sock, my $d, 65536)) {
        $raw .= $d;
        push @t, [time, length $raw];
    }
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head;
    my ($out, $complete) = ('', 0);
    if (($h{'transfer-encoding'} // '') =~ /chunked/) {
        while ($rest =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            if (!$n) { $complete = 1; last }
            $out .= substr($rest, 0, $n, '');
            $rest =~ s/^\r\n//;
        }
    }
    else { ($out, $complete) = ($rest, 1) }
    # the arrival time of the first and the last body byte
    my $hlen = length($head) + 4;
    my @body_t = grep { $_->[1] > $hlen } @t;
    return ($status, \%h, $out, $body_t[0][0], $body_t[-1][0], $complete);
}

{
    # 4 pieces, 400 ms apart
    my %s = billed_setup(name => 'speech', balance => $BAL, controls => 'events=4,delay_ms=400');
    my $input = "h\x{e9}llo w\x{f6}rld";    # 11 characters, 13 bytes in UTF-8
    my $json = JSON::PP->new->utf8->canonical;
    my ($status, $h, $audio, $first, $last) = timed_post('/v1/audio/speech',
        { Authorization => "Bearer $s{key}", 'Content-Type' => 'application/json' },
        $json->encode({ model => $s{model}, input => $input, voice => 'alloy',
                        response_format => 'wav' }));
    is($status, 200, 'speech: 200');
    is($h->{'content-type'}, 'audio/wav', 'speech: the upstream\'s Content-Type');
    my $want = join('', map { chr((31 * $_ + 17) % 256) } 0 .. 64 * 11 - 1);
    ok($audio eq $want, 'speech: the audio byte for byte (64 bytes a character)')
        or diag('got ' . length($audio) . ' bytes');
    cmp_ok($last - $first, '>=', 0.8, 'speech: relayed as it came (first bytes >= 0.8 s before the last)');
    is(spent($s{user}), 11, 'speech: charged 11 characters as prompt tokens');
    # the record's body is text (characters), not UTF-8 bytes
    my $up = eval { JSON::PP->new->decode(last_rec($s{tag})->{body}) } // {};
    is($up->{input}, $input, 'speech: the input upstream');

    # the upstream dies after 2 of 4 pieces: the client's answer ends unfinished
    my %d = billed_setup(name => 'speechdrop', balance => $BAL, controls => 'events=4,drop_after=2');
    my $complete;
    ($status, $h, $audio, undef, undef, $complete) = timed_post('/v1/audio/speech',
        { Authorization => "Bearer $d{key}", 'Content-Type' => 'application/json' },
        $json->encode({ model => $d{model}, input => $input, voice => 'alloy' }));
    is($status, 200, 'speech, upstream dies: 200 was under way');
    ok($audio eq substr($want, 0, 2 * 176) && !$complete,
       'speech, upstream dies: the first two pieces, then no last chunk')
        or diag('got ' . length($audio) . " bytes, complete $complete");
    is(spent($d{user}), 11, 'speech, upstream dies: the input was charged (audio was delivered)');
    my $log = log_row($h->{'x-request-id'});
    is_deeply([@$log{qw(end_reason cost)}], ['upstream_error', 11],
              'speech, upstream dies: the request-log row says so') or diag(encode_json($log));
}

# ---- transcriptions and translations --------------------------------------------
my $WAV = blob(40000);    # ceil(40000 / 16000) = 3 s by the file-size rule
{
    my %s = billed_setup(name => 'stt', balance => $BAL, controls => 'audio_seconds=7');
    my $res = post_form('/v1/audio/transcriptions', $s{key},
                        form(['file', $WAV, 'a.wav', 'audio/wav'], ['model', $s{model}]));
    is($res->code, 200, 'transcriptions: 200') or diag($res->content);
    is_deeply(j($res), { text => 'tok1 tok2 tok3 tok4 tok5 ', usage => { type => 'duration', seconds => 7 } },
              'transcriptions: the json answer passed through');
    is(spent($s{user}), 7, 'transcriptions: charged usage.seconds = 7');
    my $log = log_row($res->header('X-Request-Id'));
    is_deeply([@$log{qw(prompt_tokens cost)}], [7, 7], 'transcriptions: the request-log row');

    my $before = wallet($s{user})->{balance};
    $res = post_form('/v1/audio/transcriptions', $s{key},
                     form(['file', $WAV, 'a.wav', 'audio/wav'], ['model', $s{model}],
                          ['response_format', 'srt']));
    is($res->code, 200, 'transcriptions srt: 200');
    is($res->content, "1\n00:00:00,000 --> 00:00:07,000\ntok1 tok2 tok3 tok4 tok5 \n\n",
       'transcriptions srt: the text passed through');
    like($res->header('Content-Type'), qr{^text/plain}, 'transcriptions srt: its Content-Type');
    is($before - wallet($s{user})->{balance}, 3, 'transcriptions srt: no usage: 3 s from the file size');
    $log = log_row($res->header('X-Request-Id'));
    is_deeply([@$log{qw(prompt_tokens cost)}, $log->{usage_estimated} ? 1 : 0], [3, 3, 1],
              'transcriptions srt: logged as an estimate');
}
{
    my %s = billed_setup(name => 'sttv', balance => $BAL, controls => 'audio_seconds=9,no_usage=1');
    my $res = post_form('/v1/audio/transcriptions', $s{key},
                        form(['file', $WAV, 'a.wav', 'audio/wav'], ['model', $s{model}],
                             ['response_format', 'verbose_json'], ['language', 'de']));
    is($res->code, 200, 'transcriptions verbose_json: 200');
    my $v = j($res);
    is_deeply([@$v{qw(task language)}, 0 + ($v->{duration} // -1)], ['transcribe', 'german', 9],
              'transcriptions verbose_json: passed through');
    is(spent($s{user}), 9, 'transcriptions verbose_json without usage: charged its duration, 9 s');
}
{
    my %s = billed_setup(name => 'tts', balance => $BAL);
    my $body = form(['model', $s{model}], ['file', blob(20000), 'b.mp3', 'audio/mpeg']);
    my $res = post_form('/v1/audio/translations', $s{key}, $body);
    is($res->code, 200, 'translations: 200') or diag($res->content);
    is(j($res)->{usage}{seconds}, 2, 'translations: 2 s of audio');
    my $rec = last_rec($s{tag});
    ok($rec->{path} =~ m{/v1/audio/translations$} && decode_base64($rec->{body_base64} // '') eq $body,
       'translations: the form upstream byte for byte');
    is(spent($s{user}), 2, 'translations: charged 2 s');
}

# ---- Azure ---------------------------------------------------------------------------
{
    my %s = billed_setup(name => 'azimg', balance => $BAL, price => $CALL,
                         channel => { kind => 'azure' });
    my $res = post_json('/v1/images/generations', $s{key}, { model => $s{model}, prompt => 'fox' });
    is($res->code, 200, 'Azure images/generations: 200') or diag($res->content);
    my $rec = last_rec($s{tag});
    like($rec->{path} // '', qr{/openai/deployments/\Q$s{model}\E/images/generations\?api-version=},
         'Azure images/generations: the deployment path');
    is($rec->{headers}{'api-key'}, "sk-upstream-$s{tag}", 'Azure: the api-key header');
    my $body = form(['file', blob(16000), 'c.wav', 'audio/wav'], ['model', $s{model}]);
    $res = post_form('/v1/audio/transcriptions', $s{key}, $body);
    is($res->code, 200, 'Azure transcriptions: 200') or diag($res->content);
    $rec = last_rec($s{tag});
    ok($rec->{path} =~ m{/openai/deployments/\Q$s{model}\E/audio/transcriptions\?api-version=}
       && decode_base64($rec->{body_base64} // '') eq $body, 'Azure transcriptions: path, body as sent')
        or diag($rec->{path});
    is(spent($s{user}), 5000 + 5000, 'Azure: one image, one per-call transcription');
}

# ---- refusals ---------------------------------------------------------------------------
{
    my %s = billed_setup(name => 'refuse', balance => $BAL);
    my $res = post_form('/v1/audio/transcriptions', $s{key},
                        form(['file', $WAV, 'a.wav', 'audio/wav'], ['language', 'en']));
    is($res->code, 400, 'a form without model: 400');
    is_deeply([@{ j($res)->{error} // {} }{qw(type code param)}],
              ['invalid_request_error', 'missing_required_parameter', 'model'],
              'a form without model: OpenAI-shaped, param model');
    $res = post_form('/v1/audio/transcriptions', $s{key}, form(['model', $s{model}]));
    is_deeply([$res->code, j($res)->{error}{param}], [400, 'file'], 'a transcription without file: 400 on file');
    $res = post_form('/v1/images/edits', $s{key},
                     form(['model', $s{model}], ['image', blob(1_100_000), 'big.png', 'image/png']));
    is($res->code, 413, 'a form over NebulaMaxBodySize: 413');
    is(j($res)->{error}{code}, 'request_too_large', '... request_too_large');
    $res = post_json('/v1/audio/transcriptions', $s{key}, { model => $s{model} });
    is($res->code, 415, 'JSON to a multipart route: 415');
    $res = post('/v1/images/edits', $s{key}, 'multipart/form-data', form(['model', $s{model}]));
    is_deeply([$res->code, j($res)->{error}{code}], [400, 'invalid_multipart'],
              'multipart without a boundary: 400 invalid_multipart');
    is(scalar @{ mock_records($s{tag}) }, 0, 'none of them reached the upstream');
    is(spent($s{user}), 0, 'none of them was charged');

    my %a = billed_setup(name => 'anth', balance => $BAL, channel => { kind => 'anthropic' });
    $res = post_json('/v1/rerank', $a{key}, { model => $a{model}, query => 'a', documents => ['a'] });
    is_deeply([$res->code, j($res)->{error}{code}], [400, 'unsupported_api'],
              'rerank on an Anthropic channel: 400 unsupported_api');
    $res = post_form('/v1/audio/transcriptions', $a{key},
                     form(['file', $WAV, 'a.wav', 'audio/wav'], ['model', $a{model}]));
    is_deeply([$res->code, j($res)->{error}{code}], [400, 'unsupported_api'],
              'transcriptions on an Anthropic channel: 400 unsupported_api');
    is(spent($a{user}), 0, '... and nothing charged');
}

# ---- Idempotency-Key on a multipart body --------------------------------------------
{
    my %s = billed_setup(name => 'idem', balance => $BAL);
    my $body = form(['file', $WAV, 'a.wav', 'audio/wav'], ['model', $s{model}]);
    my $k = "media-idem-$$";
    my $r1 = post_form('/v1/audio/transcriptions', $s{key}, $body, 'Idempotency-Key' => $k);
    wallet($s{user});    # the first one has settled
    my $r2 = post_form('/v1/audio/transcriptions', $s{key}, $body, 'Idempotency-Key' => $k);
    is_deeply([$r1->code, $r2->code], [200, 200], 'idempotency: both answered 200');
    is($r2->header('Idempotent-Replayed'), 'true', 'idempotency: the second is a replay');
    is($r2->content, $r1->content, 'idempotency: ... of the same answer');
    is(scalar @{ mock_records($s{tag}) }, 1, 'idempotency: the upstream was asked once');
    is(spent($s{user}), 3, 'idempotency: charged once (3 s)');
    my $other = form(['file', blob(40001), 'a.wav', 'audio/wav'], ['model', $s{model}]);
    my $r3 = post_form('/v1/audio/transcriptions', $s{key}, $other, 'Idempotency-Key' => $k);
    is($r3->code, 422, 'idempotency: the same key with another file: 422');
}
