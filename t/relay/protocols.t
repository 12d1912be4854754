# Every client protocol (OpenAI chat, Anthropic Messages, Gemini, Responses)
# against every channel kind (OpenAI, Anthropic, Gemini), complete and
# streamed, through the billed gateway and the mock provider: the body the
# mock received (converted, or passed through when the protocols match),
# the answer the client got in its own protocol (text, finish reason, event
# order, usage), and the exact charge (P + N units at ratio 1: the mock's
# usage, read in the upstream's protocol).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(mock_records);
use NebulaBilling qw(billed_hostport billed_setup wallet);
use NebulaTest qw(timed_sse_post sse_events);

my @clients = qw(openai anthropic gemini responses);
my @kinds = qw(openai anthropic gemini);
plan tests => @clients * @kinds * 2 * 6;

my $TEXT = 'tok1 tok2 tok3 ';
my $P = 2;    # "hello world" (the marker is cut out)
my $N = 3;

# The request of client protocol $c for $model: (path, headers, body)
sub request {
    my ($c, $model, $key, $stream) = @_;
    my $words = '[[mock events=3]] hello world';
    if ($c eq 'openai') {
        return ('/v1/chat/completions', { Authorization => "Bearer $key" },
                { model => $model, messages => [{ role => 'user', content => $words }],
                  ($stream ? (stream => JSON::PP::true,
                              stream_options => { include_usage => JSON::PP::true }) : ()) });
    }
    if ($c eq 'anthropic') {
        return ('/v1/messages', { 'x-api-key' => $key, 'anthropic-version' => '2023-06-01' },
                { model => $model, max_tokens => 100,
                  messages => [{ role => 'user', content => $words }],
                  ($stream ? (stream => JSON::PP::true) : ()) });
    }
    if ($c eq 'gemini') {
        return ("/v1beta/models/$model:" . ($stream ? 'streamGenerateContent?alt=sse'
                                                    : 'generateContent'),
                { 'x-goog-api-key' => $key },
                { contents => [{ role => 'user', parts => [{ text => $words }] }] });
    }
    return ('/v1/responses', { Authorization => "Bearer $key" },
            { model => $model, input => $words, ($stream ? (stream => JSON::PP::true) : ()) });
}

# What the client got, reduced to (text, finish, prompt, completion).
sub complete_answer {
    my ($c, $j) = @_;
    return ($j->{choices}[0]{message}{content}, $j->{choices}[0]{finish_reason},
            $j->{usage}{prompt_tokens}, $j->{usage}{completion_tokens}) if $c eq 'openai';
    return (join('', map { $_->{text} // '' } @{ $j->{content} }), $j->{stop_reason},
            $j->{usage}{input_tokens}, $j->{usage}{output_tokens}) if $c eq 'anthropic';
    return (join('', map { $_->{text} // '' } @{ $j->{candidates}[0]{content}{parts} }),
            $j->{candidates}[0]{finishReason}, $j->{usageMetadata}{promptTokenCount},
            $j->{usageMetadata}{candidatesTokenCount}) if $c eq 'gemini';
    return (join('', map { map { $_->{text} // '' } @{ $_->{content} // [] } } @{ $j->{output} }),
            $j->{status}, $j->{usage}{input_tokens}, $j->{usage}{output_tokens});
}

my %FINISH = (openai => 'stop', anthropic => 'end_turn', gemini => 'STOP',
              responses => 'completed');

# The same from a stream; also whether the events came in the protocol's order.
sub stream_answer {
    my ($c, $evs) = @_;
    my ($text, $finish, $p, $n, $order) = ('', undef, undef, undef, 0);
    if ($c eq 'openai') {
        for (@$evs) {
            my $d = $_->[1];
            next unless ref $d;
            $text .= $_->{delta}{content} // '' for @{ $d->{choices} };
            $finish //= $_->{finish_reason} for @{ $d->{choices} };
            ($p, $n) = @{ $d->{usage} }{qw(prompt_tokens completion_tokens)} if $d->{usage};
        }
        $order = !ref $evs->[-1][1] && $evs->[-1][1] eq '[DONE]'
              && ref $evs->[-2][1] && $evs->[-2][1]{usage};
        return ($text, $finish, $p, $n, $order);
    }
    if ($c eq 'anthropic') {
        my @names = grep { $_ ne 'ping' } map { $_->[0] // '' } @$evs;
        $order = $names[0] eq 'message_start' && $names[1] eq 'content_block_start'
              && $names[-3] eq 'content_block_stop' && $names[-2] eq 'message_delta'
              && $names[-1] eq 'message_stop'
              && !grep({ $_->[0] ne ($_->[1]{type} // '') } grep { ref $_->[1] } @$evs);
        for (@$evs) {
            my ($e, $d) = @$_;
            $text .= $d->{delta}{text} // '' if ($e // '') eq 'content_block_delta';
            $p = $d->{message}{usage}{input_tokens} if ($e // '') eq 'message_start';
            # message_delta's usage has the final counts (input too, when a
            # converted stream could only estimate it in message_start)
            ($finish, $n, $p) = ($d->{delta}{stop_reason}, $d->{usage}{output_tokens},
                                 $d->{usage}{input_tokens} // $p)
                if ($e // '') eq 'message_delta';
        }
        return ($text, $finish, $p, $n, $order);
    }
    if ($c eq 'gemini') {
        for (@$evs) {
            my $d = $_->[1];
            $text .= $_->{text} // '' for @{ $d->{candidates}[0]{content}{parts} // [] };
            $finish = $d->{candidates}[0]{finishReason} if $d->{candidates}[0]{finishReason};
            ($p, $n) = @{ $d->{usageMetadata} }{qw(promptTokenCount candidatesTokenCount)}
                if $d->{usageMetadata};
        }
        $order = !grep { !ref $_->[1] || $_->[0] } @$evs;
        return ($text, $finish, $p, $n, $order);
    }
    my @types = map { $_->[0] // '' } @$evs;
    $order = $types[0] eq 'response.created' && $types[1] eq 'response.in_progress'
          && $types[-1] eq 'response.completed';
    for (@$evs) {
        my ($e, $d) = @$_;
        $text .= $d->{delta} if ($e // '') eq 'response.output_text.delta';
        ($finish, $p, $n) = ($d->{response}{status}, @{ $d->{response}{usage} }{qw(input_tokens output_tokens)})
            if ($e // '') eq 'response.completed';
    }
    return ($text, $finish, $p, $n, $order);
}

# What the mock must have been asked, by channel kind (and native or not).
sub check_upstream {
    my ($c, $kind, $rec, $model, $stream, $name) = @_;
    my $body = eval { decode_json($rec->{body} // '') } // {};
    if ($kind eq 'anthropic') {
        ok($rec->{path} =~ m{/v1/messages$} && $body->{max_tokens} && $rec->{headers}{'x-api-key'}
           && $body->{messages}[0]{role} eq 'user',
           "$name: the mock got a Messages request with x-api-key")
            or diag(encode_json($rec));
    }
    elsif ($kind eq 'gemini') {
        my $m = $stream ? ':streamGenerateContent\?alt=sse' : ':generateContent';
        ok($rec->{path} =~ m{/v1beta/models/\Q$model\E$m$} && $rec->{headers}{'x-goog-api-key'}
           && ($body->{contents}[0]{parts}[0]{text} // '') =~ /hello world/,
           "$name: the mock got a generateContent request with x-goog-api-key")
            or diag(encode_json($rec));
    }
    elsif ($c eq 'responses') {
        ok($rec->{path} =~ m{/v1/responses$} && $body->{input},
           "$name: the Responses request went through natively") or diag(encode_json($rec));
    }
    else {
        ok($rec->{path} =~ m{/v1/chat/completions$}
           && ($body->{messages}[-1]{content} // '') =~ /hello world/
           && (!$stream || $body->{stream_options}{include_usage}),
           "$name: the mock got a chat request" . ($stream ? ' asking for usage' : ''))
            or diag(encode_json($rec));
    }
}

for my $c (@clients) {
    for my $kind (@kinds) {
        for my $stream (0, 1) {
            my $name = "$c client, $kind channel, " . ($stream ? 'streamed' : 'complete');
            my %s = billed_setup(name => "p$c$kind", balance => 100000,
                                 channel => { kind => $kind });
            my ($path, $h, $body) = request($c, $s{model}, $s{key}, $stream);
            my $res = timed_sse_post(billed_hostport(), $path,
                                     { %$h, 'Content-Type' => 'application/json' },
                                     encode_json($body));
            is($res->{status}, 200, "$name: 200") or diag($res->{body});
            my ($text, $finish, $p, $n, $order);
            if ($stream) {
                ($text, $finish, $p, $n, $order) =
                    eval { stream_answer($c, sse_events($res->{body} // '')) };
                diag("cannot read the stream: $@") if $@;
                ok($order, "$name: the events in the protocol's order") or diag($res->{body});
            }
            else {
                my $j = eval { decode_json($res->{body}) } // {};
                ($text, $finish, $p, $n) = eval { complete_answer($c, $j) };
                ok(!$j->{error}, "$name: an answer, not an error") or diag($res->{body});
            }
            is($text, $TEXT, "$name: the text");
            is_deeply([$finish, $p, $n], [$FINISH{$c}, $P, $N], "$name: finish and usage")
                or diag($res->{body});
            check_upstream($c, $kind, mock_records($s{tag})->[-1] // {}, $s{model}, $stream,
                           $name);
            is(wallet($s{user})->{balance}, 100000 - ($P + $N), "$name: charged exactly P + N");
        }
    }
}
