# Tool calls through every client protocol (OpenAI chat, Anthropic Messages,
# Gemini, Responses) x every channel kind (OpenAI, Anthropic, Gemini),
# complete and streamed, on the billed gateway. Turn 1: the client declares
# a tool in its own shape; the mock must receive it in the channel's shape
# (name, description, parameters) and answers with a call to it (the
# tool_call control); the client must get that call in its shape (name,
# arguments, finish reason, event order when streamed) and pay exactly P + N.
# Turn 2: the client sends the call and its result back in its own shape;
# the mock must receive both converted (assistant call + tool message /
# tool_use + tool_result / functionCall + functionResponse / function_call +
# function_call_output), with the ids matching.
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
plan tests => @clients * @kinds * 2 * 9;

my $TOOL = 'get_weather';
my $DESC = 'The weather in a city';
my $ARGS = { city => 'Paris', unit => 'celsius' };
# the mock's arguments: compact JSON, as tool_args gives them (%2C: a comma)
my $ARGS_JSON = '{"city":"Paris","unit":"celsius"}';
my $MARK = qq{[[mock events=3,tool_call=$TOOL,tool_args={"city":"Paris"%2C"unit":"celsius"}]]};
my $ASK = "$MARK what is the weather in Paris";
my $P = 6;    # "what is the weather in Paris": tool definitions do not count
my $N = 3;
my $RESULT = 'sunny and 21 degrees';
my $JC = JSON::PP->new->canonical;

# The parameters as JSON Schema (OpenAI, Anthropic, Responses) and as
# Gemini's Schema (types upper-case)
sub schema {
    my ($upper) = @_;
    my $t = sub { $upper ? uc $_[0] : $_[0] };
    return { type => $t->('object'),
             properties => { city => { type => $t->('string'), description => 'the city' },
                             unit => { type => $t->('string'),
                                       enum => ['celsius', 'fahrenheit'] } },
             required => ['city'] };
}

sub tools_for {
    my ($c) = @_;
    return [{ type => 'function',
              function => { name => $TOOL, description => $DESC, parameters => schema(0) } }]
        if $c eq 'openai';
    return [{ name => $TOOL, description => $DESC, input_schema => schema(0) }]
        if $c eq 'anthropic';
    return [{ functionDeclarations => [{ name => $TOOL, description => $DESC,
                                         parameters => schema(1) }] }]
        if $c eq 'gemini';
    return [{ type => 'function', name => $TOOL, description => $DESC,
              parameters => schema(0) }];
}

# The request of client protocol $c: (path, headers, body). $call: the call
# of turn 1 ({id, name, args}) to send back with its result (turn 2).
sub request {
    my ($c, $model, $key, $stream, $call) = @_;
    my $tools = tools_for($c);
    my $q = $call ? 'what is the weather in Paris' : $ASK;
    if ($c eq 'openai') {
        my @msgs = ({ role => 'user', content => $q });
        push @msgs, { role => 'assistant', content => undef,
                      tool_calls => [{ id => $call->{id}, type => 'function',
                                       function => { name => $TOOL,
                                                     arguments => encode_json($call->{args}) },
                                     }] },
                    { role => 'tool', tool_call_id => $call->{id}, content => $RESULT }
            if $call;
        return ('/v1/chat/completions', { Authorization => "Bearer $key" },
                { model => $model, messages => \@msgs, tools => $tools,
                  ($stream ? (stream => JSON::PP::true,
                              stream_options => { include_usage => JSON::PP::true }) : ()) });
    }
    if ($c eq 'anthropic') {
        my @msgs = ({ role => 'user', content => $q });
        push @msgs, { role => 'assistant',
                      content => [{ type => 'tool_use', id => $call->{id}, name => $TOOL,
                                    input => $call->{args} }] },
                    { role => 'user',
                      content => [{ type => 'tool_result', tool_use_id => $call->{id},
                                    content => $RESULT }] }
            if $call;
        return ('/v1/messages', { 'x-api-key' => $key, 'anthropic-version' => '2023-06-01' },
                { model => $model, max_tokens => 100, messages => \@msgs, tools => $tools,
                  ($stream ? (stream => JSON::PP::true) : ()) });
    }
    if ($c eq 'gemini') {
        my @contents = ({ role => 'user', parts => [{ text => $q }] });
        push @contents, { role => 'model',
                          parts => [{ functionCall => { name => $TOOL,
                                                        args => $call->{args} } }] },
                        { role => 'user',
                          parts => [{ functionResponse => {
                                          name => $TOOL, response => { result => $RESULT } } }] }
            if $call;
        return ("/v1beta/models/$model:" . ($stream ? 'streamGenerateContent?alt=sse'
                                                    : 'generateContent'),
                { 'x-goog-api-key' => $key }, { contents => \@contents, tools => $tools });
    }
    my $input = $q;
    $input = [{ role => 'user', content => $q },
              { type => 'function_call', call_id => $call->{id}, name => $TOOL,
                arguments => encode_json($call->{args}) },
              { type => 'function_call_output', call_id => $call->{id}, output => $RESULT }]
        if $call;
    return ('/v1/responses', { Authorization => "Bearer $key" },
            { model => $model, input => $input, tools => $tools,
              ($stream ? (stream => JSON::PP::true) : ()) });
}

my %FINISH = (openai => 'tool_calls', anthropic => 'tool_use', gemini => 'STOP',
              responses => 'completed');

# The call the client got from a complete answer: {id, name, args (decoded),
# finish, p, n, text (any text beside the call)}.
sub complete_call {
    my ($c, $j) = @_;
    if ($c eq 'openai') {
        my $m = $j->{choices}[0]{message};
        my $tc = $m->{tool_calls}[0];
        return { id => $tc->{id}, name => $tc->{function}{name},
                 args => decode_json($tc->{function}{arguments}),
                 ntools => scalar @{ $m->{tool_calls} },
                 type => $tc->{type}, finish => $j->{choices}[0]{finish_reason},
                 p => $j->{usage}{prompt_tokens}, n => $j->{usage}{completion_tokens},
                 text => $m->{content} // '' };
    }
    if ($c eq 'anthropic') {
        my @tu = grep { $_->{type} eq 'tool_use' } @{ $j->{content} };
        return { id => $tu[0]{id}, name => $tu[0]{name}, args => $tu[0]{input},
                 ntools => scalar @tu, type => 'function', finish => $j->{stop_reason},
                 p => $j->{usage}{input_tokens}, n => $j->{usage}{output_tokens},
                 text => join('', map { $_->{text} // '' } @{ $j->{content} }) };
    }
    if ($c eq 'gemini') {
        my @parts = @{ $j->{candidates}[0]{content}{parts} };
        my @fc = grep { $_->{functionCall} } @parts;
        return { id => 'gemini', name => $fc[0]{functionCall}{name},
                 args => $fc[0]{functionCall}{args}, ntools => scalar @fc, type => 'function',
                 finish => $j->{candidates}[0]{finishReason},
                 p => $j->{usageMetadata}{promptTokenCount},
                 n => $j->{usageMetadata}{candidatesTokenCount},
                 text => join('', map { $_->{text} // '' } @parts) };
    }
    my @fc = grep { $_->{type} eq 'function_call' } @{ $j->{output} };
    return { id => $fc[0]{call_id}, name => $fc[0]{name},
             args => decode_json($fc[0]{arguments}),
             ntools => scalar @fc, type => 'function', finish => $j->{status},
             p => $j->{usage}{input_tokens}, n => $j->{usage}{output_tokens},
             text => join('', map { map { $_->{text} // '' } @{ $_->{content} // [] } }
                          @{ $j->{output} }) };
}

# The same from a stream, plus order: whether the events came in the
# protocol's order for a tool call.
sub stream_call {
    my ($c, $evs) = @_;
    my %r = (type => 'function', text => '', ntools => 0);
    if ($c eq 'openai') {
        my $args = '';
        my %idx;
        for (@$evs) {
            my $d = $_->[1];
            next unless ref $d;
            for my $ch (@{ $d->{choices} }) {
                $r{text} .= $ch->{delta}{content} // '';
                $r{finish} //= $ch->{finish_reason};
                for my $tc (@{ $ch->{delta}{tool_calls} // [] }) {
                    $idx{ $tc->{index} } = 1;
                    $r{id} //= $tc->{id};
                    $r{name} //= $tc->{function}{name};
                    $args .= $tc->{function}{arguments} // '';
                }
            }
            @r{qw(p n)} = @{ $d->{usage} }{qw(prompt_tokens completion_tokens)} if $d->{usage};
        }
        $r{ntools} = keys %idx;
        $r{args} = eval { decode_json($args) } // $args;
        $r{order} = !ref $evs->[-1][1] && $evs->[-1][1] eq '[DONE]'
                 && ref $evs->[-2][1] && $evs->[-2][1]{usage};
        return \%r;
    }
    if ($c eq 'anthropic') {
        my @names = grep { $_ ne 'ping' } map { $_->[0] // '' } @$evs;
        my ($args, $tu_index) = ('', undef);
        for (@$evs) {
            my ($e, $d) = @$_;
            $e //= '';
            if ($e eq 'content_block_start' && $d->{content_block}{type} eq 'tool_use') {
                $r{ntools}++;
                $tu_index = $d->{index};
                @r{qw(id name)} = @{ $d->{content_block} }{qw(id name)};
                $r{start_input} = $d->{content_block}{input};
            }
            if ($e eq 'content_block_delta') {
                $r{text} .= $d->{delta}{text} // '';
                $args .= $d->{delta}{partial_json}
                    if $d->{delta}{type} eq 'input_json_delta' && $d->{index} == $tu_index;
            }
            $r{p} = $d->{message}{usage}{input_tokens} if $e eq 'message_start';
            @r{qw(finish n p)} = ($d->{delta}{stop_reason}, $d->{usage}{output_tokens},
                                  $d->{usage}{input_tokens} // $r{p})
                if $e eq 'message_delta';
        }
        $r{args} = eval { decode_json($args) } // $args;
        $r{order} = $names[0] eq 'message_start' && $names[-3] eq 'content_block_stop'
                 && $names[-2] eq 'message_delta' && $names[-1] eq 'message_stop'
                 && !grep({ $_->[0] ne ($_->[1]{type} // '') } grep { ref $_->[1] } @$evs)
                 && ref $r{start_input} eq 'HASH' && !%{ $r{start_input} };
        return \%r;
    }
    if ($c eq 'gemini') {
        for (@$evs) {
            my $d = $_->[1];
            for my $part (@{ $d->{candidates}[0]{content}{parts} // [] }) {
                $r{text} .= $part->{text} // '';
                if (my $fc = $part->{functionCall}) {
                    $r{ntools}++;
                    @r{qw(id name args)} = ('gemini', $fc->{name}, $fc->{args});
                }
            }
            $r{finish} = $d->{candidates}[0]{finishReason} if $d->{candidates}[0]{finishReason};
            @r{qw(p n)} = @{ $d->{usageMetadata} }{qw(promptTokenCount candidatesTokenCount)}
                if $d->{usageMetadata};
        }
        $r{order} = !grep { !ref $_->[1] || $_->[0] } @$evs;
        return \%r;
    }
    my @types = map { $_->[0] // '' } @$evs;
    my ($deltas, $added, $done, $item_done) = ('', undef, undef, undef);
    for (@$evs) {
        my ($e, $d) = @$_;
        $e //= '';
        $r{text} .= $d->{delta} if $e eq 'response.output_text.delta';
        $added = $d->{item} if $e eq 'response.output_item.added'
                            && $d->{item}{type} eq 'function_call';
        $deltas .= $d->{delta} if $e eq 'response.function_call_arguments.delta';
        $done = $d if $e eq 'response.function_call_arguments.done';
        $item_done = $d->{item} if $e eq 'response.output_item.done'
                                && $d->{item}{type} eq 'function_call';
        if ($e eq 'response.completed') {
            my @fc = grep { $_->{type} eq 'function_call' } @{ $d->{response}{output} };
            $r{ntools} = @fc;
            @r{qw(id name)} = @{ $fc[0] // {} }{qw(call_id name)};
            $r{args} = eval { decode_json($fc[0]{arguments}) };
            @r{qw(finish p n)} = ($d->{response}{status},
                                  @{ $d->{response}{usage} }{qw(input_tokens output_tokens)});
        }
    }
    # the pieces, the done event and the finished item all carry the same call
    $r{order} = $types[0] eq 'response.created' && $types[1] eq 'response.in_progress'
             && $types[-1] eq 'response.completed' && $added && $done && $item_done
             && ($added->{arguments} // 'x') eq '' && $added->{name} eq $TOOL
             && $deltas eq $done->{arguments} && $done->{arguments} eq $item_done->{arguments}
             && $item_done->{call_id} eq ($r{id} // '')
             && eval { $JC->encode(decode_json($deltas)) } eq $JC->encode($ARGS);
    return \%r;
}

# The tool declaration as the channel kind received it (Responses natively
# on an OpenAI channel): [name, description, parameters]
sub upstream_tool {
    my ($c, $kind, $b) = @_;
    if ($kind eq 'anthropic') {
        my $t = $b->{tools}[0];
        return [$t->{name}, $t->{description}, $t->{input_schema}, scalar @{ $b->{tools} }];
    }
    if ($kind eq 'gemini') {
        my $d = $b->{tools}[0]{functionDeclarations};
        return [$d->[0]{name}, $d->[0]{description}, $d->[0]{parameters}, scalar @$d];
    }
    if ($c eq 'responses') {
        my $t = $b->{tools}[0];
        return [$t->{name}, $t->{description}, $t->{parameters}, scalar @{ $b->{tools} }]
            if ($t->{type} // '') eq 'function';
        return [];
    }
    my $t = $b->{tools}[0];
    return [] unless ($t->{type} // '') eq 'function';
    return [$t->{function}{name}, $t->{function}{description}, $t->{function}{parameters},
            scalar @{ $b->{tools} }];
}

# Turn 2 as the channel received it: the call and the result, whatever the
# shape: {name, args, id (of the call), result_id, result (text)}
sub upstream_result {
    my ($c, $kind, $b) = @_;
    my %r;
    if ($kind eq 'anthropic') {
        for my $m (@{ $b->{messages} }) {
            next unless ref $m->{content};
            for my $blk (@{ $m->{content} }) {
                if ($blk->{type} eq 'tool_use' && $m->{role} eq 'assistant') {
                    @r{qw(name args id)} = @{$blk}{qw(name input id)};
                }
                if ($blk->{type} eq 'tool_result' && $m->{role} eq 'user') {
                    $r{result_id} = $blk->{tool_use_id};
                    $r{result} = ref $blk->{content}
                        ? join('', map { $_->{text} // '' } @{ $blk->{content} })
                        : $blk->{content};
                }
            }
        }
        $r{roles} = join ',', map { $_->{role} } @{ $b->{messages} };
        return \%r;
    }
    if ($kind eq 'gemini') {
        for my $ct (@{ $b->{contents} }) {
            for my $part (@{ $ct->{parts} }) {
                if (my $fc = $part->{functionCall}) {
                    @r{qw(name args)} = @{$fc}{qw(name args)};
                    $r{id} = 'gemini';
                    $r{call_role} = $ct->{role};
                }
                if (my $fr = $part->{functionResponse}) {
                    $r{result_id} = 'gemini';
                    $r{result_name} = $fr->{name};
                    $r{result} = encode_json($fr->{response});
                }
            }
        }
        $r{roles} = join ',', map { $_->{role} } @{ $b->{contents} };
        return \%r;
    }
    if ($c eq 'responses') {
        for my $it (ref $b->{input} ? @{ $b->{input} } : ()) {
            if (($it->{type} // '') eq 'function_call') {
                @r{qw(name id)} = @{$it}{qw(name call_id)};
                $r{args} = eval { decode_json($it->{arguments}) };
            }
            if (($it->{type} // '') eq 'function_call_output') {
                @r{qw(result_id result)} = @{$it}{qw(call_id output)};
            }
        }
        $r{roles} = 'native';
        return \%r;
    }
    for my $m (@{ $b->{messages} }) {
        if ($m->{role} eq 'assistant' && $m->{tool_calls}) {
            my $tc = $m->{tool_calls}[0];
            @r{qw(name id)} = ($tc->{function}{name}, $tc->{id});
            $r{args} = eval { decode_json($tc->{function}{arguments}) };
        }
        if ($m->{role} eq 'tool') {
            $r{result_id} = $m->{tool_call_id};
            $r{result} = ref $m->{content}
                ? join('', map { $_->{text} // '' } @{ $m->{content} }) : $m->{content};
        }
    }
    $r{roles} = join ',', map { $_->{role} } @{ $b->{messages} };
    return \%r;
}

my %ROLES = (anthropic => 'user,assistant,user', gemini => 'user,model,user',
             openai => 'user,assistant,tool');

for my $c (@clients) {
    for my $kind (@kinds) {
        for my $stream (0, 1) {
            my $name = "$c client, $kind channel, " . ($stream ? 'streamed' : 'complete');
            my %s = billed_setup(name => "t$c$kind", balance => 100000,
                                 channel => { kind => $kind });
            my ($path, $h, $body) = request($c, $s{model}, $s{key}, $stream);
            my $res = timed_sse_post(billed_hostport(), $path,
                                     { %$h, 'Content-Type' => 'application/json' },
                                     encode_json($body));
            is($res->{status}, 200, "$name: 200") or diag($res->{body});

            # the tool, in the channel's shape
            my $rec = mock_records($s{tag})->[-1] // {};
            my $up = eval { decode_json($rec->{body} // '') } // {};
            is_deeply(upstream_tool($c, $kind, $up),
                      [$TOOL, $DESC, schema($kind eq 'gemini'), 1],
                      "$name: the mock got the tool in its shape") or diag($rec->{body});

            # the call, in the client's shape
            my $call = eval {
                $stream ? stream_call($c, sse_events($res->{body} // ''))
                        : complete_call($c, decode_json($res->{body}));
            } // {};
            diag("cannot read the answer: $@") if $@;
            ok($stream ? $call->{order} : !eval { decode_json($res->{body})->{error} },
               "$name: " . ($stream ? "the events in the protocol's order" : 'not an error'))
                or diag($res->{body});
            is_deeply([@{$call}{qw(ntools name type text)}], [1, $TOOL, 'function', ''],
                      "$name: one call to $TOOL, no text") or diag($res->{body});
            is_deeply($call->{args}, $ARGS, "$name: its arguments") or diag($res->{body});
            ok(defined $call->{id} && ($c eq 'gemini' || length $call->{id} > 5),
               "$name: the call has an id") or diag($res->{body});
            is_deeply([@{$call}{qw(finish p n)}], [$FINISH{$c}, $P, $N],
                      "$name: finish reason and usage") or diag($res->{body});
            # a converted Gemini stream holds a functionCall back to the end:
            # it is still charged (relay_stream.c counts the final delivery)
            is(wallet($s{user})->{balance}, 100000 - ($P + $N), "$name: charged exactly P + N");

            # turn 2: the result goes back
            my $id = $c eq 'gemini' ? undef : $call->{id};
            ($path, $h, $body) = request($c, $s{model}, $s{key}, $stream,
                                         { id => $id // 'call_x', args => $ARGS });
            $res = timed_sse_post(billed_hostport(), $path,
                                  { %$h, 'Content-Type' => 'application/json' },
                                  encode_json($body));
            $rec = mock_records($s{tag})->[-1] // {};
            $up = eval { decode_json($rec->{body} // '') } // {};
            my $got = upstream_result($c, $kind, $up);
            my $want_id = $kind eq 'gemini' ? 'gemini' : $id // $got->{id};
            my $result_ok = $kind eq 'gemini' ? ($got->{result} // '') =~ /\Q$RESULT\E/
                                              : ($got->{result} // '') eq $RESULT
                                                || ($c eq 'gemini'
                                                    && ($got->{result} // '') =~ /\Q$RESULT\E/);
            ok($res->{status} == 200 && defined $got->{id}
               && ($got->{name} // '') eq $TOOL
               && $JC->encode($got->{args} // {}) eq $JC->encode($ARGS)
               && $got->{id} eq $want_id && ($got->{result_id} // '') eq $got->{id}
               && $result_ok
               && ($kind ne 'gemini' || ($got->{result_name} // '') eq $TOOL)
               && ($c eq 'responses' && $kind eq 'openai'
                   || $got->{roles} eq $ROLES{$kind}),
               "$name: turn 2, the call and its result reached the mock in its shape")
                or diag("status $res->{status}; got " . encode_json($got) . "; sent "
                        . ($rec->{body} // '') . "; answer $res->{body}");
        }
    }
}
