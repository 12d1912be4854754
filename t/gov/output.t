# Response governance: completion text scanned on its way out, streamed and
# complete, in every client protocol, native and converted. The mock writes
# "tok1 tok2 ... tokN "; one policy masks "tok2", another stops the answer
# at "tok4" with the protocol's content-filter ending.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(encode_json decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin new_key new_channel);
use NebulaTest qw(sse_events);
use NebulaGov qw(policy audit_of gov_post);

plan tests => 36;

my ($key) = new_key();
my $n = 0;
# a model served by a channel of @a kind writing @a events deltas, with the
# two output policies
sub model {
    my ($kind, $events) = @_;
    my $m = sprintf('gov-out-%s-%d-%d', $kind, $$, ++$n);
    new_channel(models => [$m], kind => $kind, controls => "events=$events");
    policy('mask', stage => 'response', scope => { models => [$m] },
           match => [{ type => 'keywords', values => ['tok2'], word => JSON::PP::true }],
           action => { type => 'redact', mask => '[X]' });
    policy('stop', stage => 'response', scope => { models => [$m] },
           match => [{ type => 'keywords', values => ['tok4'], word => JSON::PP::true }],
           action => { type => 'block' });
    return $m;
}
sub post { return gov_post('nebula_relay', @_) }
sub chat_body { return { model => $_[0], messages => [{ role => 'user', content => 'count' }], @_[1 .. $#_] } }
sub j { return eval { decode_json($_[0]->content) } // {} }

# ---- complete answers ------------------------------------------------------
{
    my $m = model('openai', 3);
    my $res = post('/v1/chat/completions', $key, chat_body($m));
    is($res->code, 200, 'chat, complete: served');
    is(j($res)->{choices}[0]{message}{content}, 'tok1 [X] tok3 ', '... text masked');
    is(j($res)->{choices}[0]{finish_reason}, 'stop', '... finished normally');
    my $rows = audit_of($res->header('X-Request-Id'));
    is_deeply([map { "$_->{stage}:$_->{action}" } @$rows], ['response:redact'], 'audited on the response stage');

    $m = model('openai', 5);
    $res = post('/v1/chat/completions', $key, chat_body($m));
    is($res->code, 200, 'chat, complete, stopped: 200');
    is(j($res)->{choices}[0]{message}{content}, '', '... the text withheld');
    is(j($res)->{choices}[0]{finish_reason}, 'content_filter', '... finish_reason content_filter');

    my $am = model('anthropic', 5);
    $res = post('/v1/messages', $key, { model => $am, max_tokens => 50, messages => [{ role => 'user', content => 'x' }] });
    is($res->code, 200, 'Anthropic native, complete, stopped: 200');
    is(j($res)->{stop_reason}, 'refusal', '... stop_reason refusal');
    unlike($res->content, qr/tok[1-5]/, '... no text');
}

# ---- streams: OpenAI native ------------------------------------------------
sub stream_text {
    my ($events) = @_;
    return join '', map { $_->[1]{choices}[0]{delta}{content} // '' } grep { ref $_->[1] } @$events;
}
{
    my $m = model('openai', 6);
    my $res = post('/v1/chat/completions', $key, chat_body($m, stream => JSON::PP::true));
    is($res->code, 200, 'chat stream: 200');
    my $ev = sse_events($res->content);
    is(stream_text($ev), 'tok1 [X] tok3 ', '... text masked, cut before the stopping delta');
    my @fin = grep { ref $_->[1] && ($_->[1]{choices}[0]{finish_reason} // '') eq 'content_filter' } @$ev;
    is(scalar @fin, 1, '... one content_filter chunk');
    is($ev->[-1][1], '[DONE]', '... then [DONE]');
    unlike($res->content, qr/tok[456]/, '... nothing after the stop');
    my $rows = audit_of($res->header('X-Request-Id'));
    is_deeply([sort map { "$_->{stage}:$_->{action}" } @$rows], ['response:block', 'response:redact'],
              '... each response policy audited once');
}

# ---- streams: converted and native, other protocols ----------------------
{
    my $m = model('openai', 6);
    my $res = post('/v1/messages', $key, { model => $m, max_tokens => 50, stream => JSON::PP::true,
                                           messages => [{ role => 'user', content => 'x' }] });
    my $ev = sse_events($res->content);
    my $text = join '', map { $_->[1]{delta}{text} // '' } grep { ($_->[0] // '') eq 'content_block_delta' } @$ev;
    is($text, 'tok1 [X] tok3 ', 'Anthropic client, OpenAI channel: masked and cut');
    my ($md) = grep { ($_->[0] // '') eq 'message_delta' } @$ev;
    is($md && $md->[1]{delta}{stop_reason}, 'refusal', '... message_delta stop_reason refusal');
    is($ev->[-1][0], 'message_stop', '... ends with message_stop');

    my $am = model('anthropic', 6);
    $res = post('/v1/messages', $key, { model => $am, max_tokens => 50, stream => JSON::PP::true,
                                        messages => [{ role => 'user', content => 'x' }] });
    is($res->code, 200, 'Anthropic native stream: 200');
    $ev = sse_events($res->content);
    $text = join '', map { $_->[1]{delta}{text} // '' } grep { ($_->[0] // '') eq 'content_block_delta' } @$ev;
    is($text, 'tok1 [X] tok3 ', '... masked and cut');
    ($md) = grep { ($_->[0] // '') eq 'message_delta' } @$ev;
    is($md && $md->[1]{delta}{stop_reason}, 'refusal', '... stop_reason refusal');
    is($ev->[-1][0], 'message_stop', '... ends with message_stop');
    is(scalar(grep { ($_->[0] // '') eq 'message_start' } @$ev), 1, '... one message_start');

    my $gm = model('gemini', 6);
    $res = post("/v1beta/models/$gm:streamGenerateContent?alt=sse", $key,
                { contents => [{ role => 'user', parts => [{ text => 'x' }] }] });
    is($res->code, 200, 'Gemini native stream: 200');
    $ev = sse_events($res->content);
    $text = join '', map { $_->[1]{candidates}[0]{content}{parts}[0]{text} // '' } grep { ref $_->[1] } @$ev;
    is($text, 'tok1 [X] tok3 ', '... masked and cut');
    my @safety = grep { ref $_->[1] && ($_->[1]{candidates}[0]{finishReason} // '') eq 'SAFETY' } @$ev;
    is(scalar @safety, 1, '... finishReason SAFETY');

    $m = model('openai', 6);
    $res = post('/v1/responses', $key, { model => $m, input => 'x', stream => JSON::PP::true });
    is($res->code, 200, 'Responses stream: 200');
    $ev = sse_events($res->content);
    $text = join '', map { $_->[1]{delta} // '' } grep { ($_->[0] // '') eq 'response.output_text.delta' } @$ev;
    is($text, 'tok1 [X] tok3 ', '... masked and cut');
    my ($inc) = grep { ($_->[0] // '') eq 'response.incomplete' } @$ev;
    is($inc && $inc->[1]{response}{incomplete_details}{reason}, 'content_filter',
       '... response.incomplete for the content filter');

    $gm = model('openai', 3);
    $res = post("/v1beta/models/$gm:generateContent", $key, { contents => [{ role => 'user', parts => [{ text => 'x' }] }] });
    is(j($res)->{candidates}[0]{content}{parts}[0]{text}, 'tok1 [X] tok3 ', 'Gemini client, complete: masked');
}

# ---- a phrase split across deltas still stops the stream -------------------
{
    my $m = sprintf('gov-out-split-%d', $$);
    new_channel(models => [$m], controls => 'events=6');
    policy('split', stage => 'response', scope => { models => [$m] },
           match => [{ type => 'regex', pattern => 'tok2 tok3' }], action => { type => 'block' });
    my $res = post('/v1/chat/completions', $key, chat_body($m, stream => JSON::PP::true));
    my $ev = sse_events($res->content);
    is(stream_text($ev), 'tok1 tok2 ', 'a match across two deltas stops at its second part');
    is(scalar(grep { ref $_->[1] && ($_->[1]{choices}[0]{finish_reason} // '') eq 'content_filter' } @$ev), 1,
       '... with content_filter');
}

# ---- request-stage policies do not scan output, and vice versa -------------
{
    my $m = sprintf('gov-out-req-%d', $$);
    new_channel(models => [$m], controls => 'events=3');
    policy('reqonly', scope => { models => [$m] }, match => [{ type => 'keywords', values => ['tok2'] }],
           action => { type => 'block' });
    my $res = post('/v1/chat/completions', $key, chat_body($m));
    is($res->code, 200, 'a request-stage policy ignores the completion');
    is(j($res)->{choices}[0]{message}{content}, 'tok1 tok2 tok3 ', '... text untouched');
    is(scalar @{ audit_of($res->header('X-Request-Id')) }, 0, '... nothing audited');
}
