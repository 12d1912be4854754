# The rest of the protocol conversions, end to end through the relay and
# the mock provider: image parts in every client's shape reaching every
# channel kind with the same bytes; Anthropic thinking blocks and their
# signatures passed through byte for byte; error bodies in each client's
# protocol (bad key, unknown model, upstream 429 / 500); Gemini
# streamGenerateContent as one JSON array without alt=sse; count_tokens,
# countTokens and the model lists in Anthropic's and Gemini's shapes;
# GET / DELETE /v1/responses/{id}; Azure's api-version.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use LWP::UserAgent;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_key new_channel mock_records mock_url relay_hostport);
use NebulaTest qw(timed_sse_post);

my @clients = qw(openai anthropic gemini responses);
my @kinds = qw(openai anthropic gemini);
plan tests => @clients * @kinds             # images
            + 8                             # thinking
            + @clients * 2                  # bad key, unknown model
            + @clients * @kinds * 2         # upstream 429 and 500
            + 2 * 2 * 4                     # Gemini stream, array or SSE
            + 6                             # counting, model lists
            + 7                             # stored responses
            + 8;                            # Azure

my $ua = LWP::UserAgent->new(timeout => 30);
my $JC = JSON::PP->new->canonical;
my $seq = 0;
sub uniq { return sprintf('%s-%d-%d', $_[0], $$, ++$seq) }

# A group of its own, so that a key sees exactly the channels made for it.
sub new_group {
    my $g = uniq('g');
    admin('POST', '/api/groups', { name => $g });
    return $g;
}

# A model served by a new channel of $kind: (model, key, tag)
sub setup {
    my ($kind, %o) = @_;
    my $m = uniq("pm-$kind");
    my (undef, $tag) = new_channel(kind => $kind, models => [$m],
                                   ($o{controls} ? (controls => $o{controls}) : ()));
    return ($m, scalar new_key(), $tag);
}

# The request of client protocol $c: (path, headers, body). $content: the
# user turn's content in that protocol (default: a text).
sub request {
    my ($c, $model, $key, %o) = @_;
    my $text = $o{text} // '[[mock events=3]] hello world';
    if ($c eq 'openai') {
        return ('/v1/chat/completions', { Authorization => "Bearer $key" },
                { model => $model,
                  messages => [{ role => 'user', content => $o{content} // $text }],
                  ($o{stream} ? (stream => JSON::PP::true) : ()) });
    }
    if ($c eq 'anthropic') {
        return ('/v1/messages', { 'x-api-key' => $key, 'anthropic-version' => '2023-06-01' },
                { model => $model, max_tokens => 100,
                  messages => [{ role => 'user', content => $o{content} // $text }],
                  ($o{stream} ? (stream => JSON::PP::true) : ()) });
    }
    if ($c eq 'gemini') {
        my $method = $o{method} // ($o{stream} ? 'streamGenerateContent?alt=sse'
                                               : 'generateContent');
        return ("/v1beta/models/$model:$method", { 'x-goog-api-key' => $key },
                { contents => [{ role => 'user',
                                 parts => $o{content} // [{ text => $text }] }] });
    }
    return ('/v1/responses', { Authorization => "Bearer $key" },
            { model => $model,
              input => $o{content} ? [{ role => 'user', content => $o{content} }] : $text,
              ($o{stream} ? (stream => JSON::PP::true) : ()) });
}

sub post {
    my ($hp, $path, $h, $body) = @_;
    return timed_sse_post($hp // relay_hostport(), $path,
                          { %$h, 'Content-Type' => 'application/json' },
                          ref $body ? encode_json($body) : $body);
}

sub get {
    my ($method, $path, %h) = @_;
    my $req = HTTP::Request->new($method => 'http://' . relay_hostport() . $path);
    $req->header($_ => $h{$_}) for keys %h;
    my $res = $ua->request($req);
    return ($res, eval { decode_json($res->content) });
}

# ---- 1. images ------------------------------------------------------------
# a 1x1 PNG
my $PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw'
        . 'AAAABJRU5ErkJggg==';
my $DATA_URL = "data:image/png;base64,$PNG";
my %IMAGE = (
    openai    => [{ type => 'text', text => 'what is this' },
                  { type => 'image_url', image_url => { url => $DATA_URL } }],
    anthropic => [{ type => 'text', text => 'what is this' },
                  { type => 'image', source => { type => 'base64', media_type => 'image/png',
                                                 data => $PNG } }],
    gemini    => [{ text => 'what is this' },
                  { inlineData => { mimeType => 'image/png', data => $PNG } }],
    responses => [{ type => 'input_text', text => 'what is this' },
                  { type => 'input_image', image_url => $DATA_URL }],
);

# The image parts the mock received, as [mime type, base64 data]
sub upstream_images {
    my ($c, $kind, $b) = @_;
    my @out;
    if ($kind eq 'anthropic') {
        for my $m (@{ $b->{messages} }) {
            push @out, map { [$_->{source}{media_type}, $_->{source}{data}, $_->{source}{type}] }
                       grep { $_->{type} eq 'image' } @{ ref $m->{content} ? $m->{content} : [] };
        }
        return \@out;
    }
    if ($kind eq 'gemini') {
        for my $ct (@{ $b->{contents} }) {
            push @out, map { [$_->{inlineData}{mimeType}, $_->{inlineData}{data}, 'base64'] }
                       grep { $_->{inlineData} } @{ $ct->{parts} };
        }
        return \@out;
    }
    my @urls;
    if ($c eq 'responses') {   # natively to an OpenAI channel
        for my $it (@{ ref $b->{input} ? $b->{input} : [] }) {
            push @urls, map { $_->{image_url} } grep { $_->{type} eq 'input_image' }
                        @{ ref $it->{content} ? $it->{content} : [] };
        }
    }
    else {
        for my $m (@{ $b->{messages} }) {
            push @urls, map { ref $_->{image_url} ? $_->{image_url}{url} : $_->{image_url} }
                        grep { $_->{type} eq 'image_url' }
                        @{ ref $m->{content} ? $m->{content} : [] };
        }
    }
    return [map { m{^data:([^;]+);base64,(.*)$}s ? [$1, $2, 'base64'] : [$_] } @urls];
}

for my $c (@clients) {
    for my $kind (@kinds) {
        my ($m, $key, $tag) = setup($kind);
        my $res = post(undef, request($c, $m, $key, content => $IMAGE{$c}));
        my $rec = mock_records($tag)->[-1] // {};
        my $up = eval { decode_json($rec->{body} // '') } // {};
        ok($res->{status} == 200
           && $JC->encode(upstream_images($c, $kind, $up))
              eq $JC->encode([['image/png', $PNG, 'base64']]),
           "images: $c client, $kind channel: the same PNG bytes in the channel's shape")
            or diag("status $res->{status}: $res->{body}; the mock got " . ($rec->{body} // ''));
    }
}

# ---- 2. Anthropic thinking, passed through byte for byte -------------------
{
    my ($m, $key, $tag) = setup('anthropic');
    my $body = { model => $m, max_tokens => 100,
                 messages => [{ role => 'user',
                                content => '[[mock thinking=2,events=3]] think' }] };
    my %h = ('x-api-key' => $key, 'anthropic-version' => '2023-06-01');
    my %mh = ('x-api-key' => 'ak-direct', 'anthropic-version' => '2023-06-01');
    my $mock_hp = NebulaAdmin::hostport_of('nebula_mock');
    my $block = qr/(\{[^{}]*"type":"thinking"[^{}]*\})/;

    my $gw = post(undef, '/v1/messages', \%h, $body);
    my $direct = post($mock_hp, "/_mock/tag=$tag/v1/messages", \%mh, $body);
    my ($g) = ($gw->{body} // '') =~ $block;
    my ($d) = ($direct->{body} // '') =~ $block;
    ok(defined $d && decode_json($d)->{signature}, 'thinking: the mock sends a signed block')
        or diag($direct->{body});
    is($g, $d, 'thinking: the gateway passes the thinking block through byte for byte')
        or diag("gateway: $gw->{body}\nmock: $direct->{body}");

    # streamed: content_block_start (thinking), thinking_delta ... signature_delta
    my $pick = sub {
        my ($r) = @_;
        return [grep { /"type":"(?:thinking|thinking_delta|signature_delta)"/ }
                map { $_->[1] } @{ $r->{events} }];
    };
    $body->{stream} = JSON::PP::true;
    $gw = post(undef, '/v1/messages', \%h, $body);
    $direct = post($mock_hp, "/_mock/tag=$tag/v1/messages", \%mh, $body);
    my ($gl, $dl) = ($pick->($gw), $pick->($direct));
    is(scalar @$dl, 4, 'thinking stream: the mock sends a block start, 2 thinking deltas '
                       . 'and a signature delta') or diag($direct->{body});
    is_deeply($gl, $dl, 'thinking stream: the gateway passes those events byte for byte')
        or diag("gateway: $gw->{body}");
    like($gw->{body}, qr/^event: content_block_delta\r?\ndata: \{[^\n]*"signature_delta"/m,
         'thinking stream: the signature delta keeps its event name');

    # turn 2: the client sends the signed block back; the mock gets it intact
    my ($blk) = $g // '{}';
    my $turn2 = { model => $m, max_tokens => 100,
                  messages => [{ role => 'user', content => 'think' },
                               { role => 'assistant',
                                 content => [decode_json($blk),
                                             { type => 'text', text => 'tok1 tok2 tok3 ' }] },
                               { role => 'user', content => 'again' }] };
    my $raw = encode_json($turn2);
    my ($sent) = $raw =~ $block;
    my $res = post(undef, '/v1/messages', \%h, $raw);
    is($res->{status}, 200, 'thinking turn 2: 200') or diag($res->{body});
    my $rec = mock_records($tag)->[-1] // {};
    my ($got) = ($rec->{body} // '') =~ $block;
    is($got, $sent, 'thinking turn 2: the signed block reaches the mock byte for byte')
        or diag($rec->{body});
    is(decode_json($got // '{}')->{signature}, decode_json($d // '{}')->{signature},
       'thinking turn 2: with the signature the mock made');
}

# ---- 3. errors in each client's protocol ----------------------------------
my %ANTHROPIC_TYPE = (401 => 'authentication_error', 404 => 'not_found_error',
                      429 => 'rate_limit_error', 500 => 'api_error', 502 => 'api_error');
my %GEMINI_STATUS = (401 => 'UNAUTHENTICATED', 404 => 'NOT_FOUND',
                     429 => 'RESOURCE_EXHAUSTED', 500 => 'INTERNAL', 502 => 'UNAVAILABLE');

# Whether $body is client $c's error for HTTP $status.
sub error_shape {
    my ($c, $status, $body) = @_;
    my $j = eval { decode_json($body // '') };
    return 0 unless ref $j eq 'HASH' && ref $j->{error} eq 'HASH';
    my $e = $j->{error};
    return 0 unless defined $e->{message} && !ref $e->{message} && length $e->{message};
    if ($c eq 'anthropic') {
        return $j->{type} eq 'error' && keys %$j == 2
            && $e->{type} eq ($ANTHROPIC_TYPE{$status} // 'none');
    }
    if ($c eq 'gemini') {
        return keys %$j == 1 && !JSON::PP::is_bool($e->{code}) && $e->{code} == $status
            && $e->{code} =~ /^\d+$/ && $e->{status} eq ($GEMINI_STATUS{$status} // 'none');
    }
    return keys %$j == 1 && defined $e->{type} && !ref $e->{type} && exists $e->{code};
}

for my $c (@clients) {
    my ($m, $key) = setup('openai');
    my $res = post(undef, request($c, $m, 'sk-nebula-no-such-key-0123456789'));
    ok($res->{status} == 401 && error_shape($c, 401, $res->{body}),
       "errors: $c client, a bad key: 401 in its protocol")
        or diag("status $res->{status}: $res->{body}");
    $res = post(undef, request($c, uniq('no-such-model'), $key));
    ok($res->{status} == 404 && error_shape($c, 404, $res->{body}),
       "errors: $c client, an unknown model: 404 in its protocol")
        or diag("status $res->{status}: $res->{body}");
}

for my $status (429, 500) {
    for my $c (@clients) {
        for my $kind (@kinds) {
            my ($m, $key, $tag) = setup($kind, controls => "status=$status,retry_after=0");
            my $res = post(undef, request($c, $m, $key));
            my $recs = mock_records($tag);
            ok($res->{status} == $status && error_shape($c, $status, $res->{body})
               && @$recs && $recs->[-1]{status} == $status,
               "errors: $c client, $kind channel answering $status: $status in the client's "
               . "protocol") or diag("status $res->{status}: $res->{body}");
        }
    }
}

# ---- 4. Gemini streamGenerateContent: a JSON array, or SSE with alt=sse -----
for my $kind (qw(gemini openai)) {
    my ($m, $key, $tag) = setup($kind);
    for my $sse (0, 1) {
        my $how = $sse ? 'alt=sse' : 'no alt';
        my $method = 'streamGenerateContent' . ($sse ? '?alt=sse' : '');
        my $res = post(undef, request('gemini', $m, $key, method => $method));
        my $chunks;
        if ($sse) {
            like($res->{headers}{'content-type'} // '', qr{^text/event-stream},
                 "gemini stream, $kind channel, $how: text/event-stream");
            $chunks = eval { [map { decode_json($_->[1]) } @{ $res->{events} }] };
        }
        else {
            like($res->{headers}{'content-type'} // '', qr{^application/json},
                 "gemini stream, $kind channel, $how: application/json");
            $chunks = eval { decode_json($res->{body}) };
        }
        ok(ref $chunks eq 'ARRAY' && @$chunks >= 3
           && !grep({ ref $_ ne 'HASH' || !$_->{candidates} } @$chunks),
           "gemini stream, $kind channel, $how: " . ($sse ? 'SSE events' : 'one JSON array')
           . ' of GenerateContentResponse chunks') or diag($res->{body});
        my $text = join '', map { $_->{text} // '' }
                            map { @{ $_->{candidates}[0]{content}{parts} // [] } }
                            @{ ref $chunks eq 'ARRAY' ? $chunks : [] };
        is($text, 'tok1 tok2 tok3 ', "gemini stream, $kind channel, $how: the text");
        my $last = ref $chunks eq 'ARRAY' ? $chunks->[-1] : {};
        is_deeply([$last->{candidates}[0]{finishReason}, $last->{usageMetadata}{promptTokenCount},
                   $last->{usageMetadata}{candidatesTokenCount}], ['STOP', 2, 3],
                  "gemini stream, $kind channel, $how: the last chunk finishes with the usage")
            or diag($res->{body});
    }
}

# ---- 5. counting tokens, listing models -----------------------------------
{
    my $g = new_group();
    my @models = map { uniq("lm$_") } 1 .. 2;
    new_channel(kind => 'anthropic', models => [$models[0]], channel_groups => [$g]);
    new_channel(kind => 'gemini', models => [$models[1]], channel_groups => [$g]);
    my $key = new_key(user_group => $g);

    my %an = ('x-api-key' => $key, 'anthropic-version' => '2023-06-01');
    my @counts;
    for my $words ('hello', 'hello world, how are you doing on this fine day?') {
        my $res = post(undef, '/v1/messages/count_tokens', \%an,
                       { model => $models[0],
                         messages => [{ role => 'user', content => $words }] });
        my $j = eval { decode_json($res->{body}) } // {};
        push @counts, [$res->{status}, [sort keys %$j], $j->{input_tokens}];
    }
    ok($counts[0][0] == 200 && "@{ $counts[0][1] }" eq 'input_tokens' && $counts[0][2] > 0
       && $counts[1][2] > $counts[0][2],
       'count_tokens: {"input_tokens": n}, n > 0 and growing with the text')
        or diag(encode_json(\@counts));
    @counts = ();
    for my $words ('hello', 'hello world, how are you doing on this fine day?') {
        my $res = post(undef, "/v1beta/models/$models[1]:countTokens",
                       { 'x-goog-api-key' => $key },
                       { contents => [{ role => 'user', parts => [{ text => $words }] }] });
        my $j = eval { decode_json($res->{body}) } // {};
        push @counts, [$res->{status}, [sort keys %$j], $j->{totalTokens}];
    }
    ok($counts[0][0] == 200 && "@{ $counts[0][1] }" eq 'totalTokens' && $counts[0][2] > 0
       && $counts[1][2] > $counts[0][2],
       'countTokens: {"totalTokens": n}, n > 0 and growing with the text')
        or diag(encode_json(\@counts));

    my ($res, $j) = get(GET => '/v1beta/models', 'x-goog-api-key' => $key);
    is_deeply([sort map { $_->{name} } @{ $j->{models} // [] }],
              [sort map { "models/$_" } @models],
              "GET /v1beta/models: the key's models as Gemini's models/{id}")
        or diag($res->content);
    ok(!grep({ !grep { $_ eq 'generateContent' } @{ $_->{supportedGenerationMethods} // [] } }
             @{ $j->{models} // [] }),
       'GET /v1beta/models: each supports generateContent') or diag($res->content);

    ($res, $j) = get(GET => '/v1/models', %an);
    my @data = @{ $j->{data} // [] };
    ok($res->code == 200 && !grep({ ($_->{type} // '') ne 'model' || !$_->{display_name}
                                      || ($_->{created_at} // '') !~ /^\d{4}-\d\d-\d\dT/ } @data)
       && JSON::PP::is_bool($j->{has_more}) && !$j->{has_more}
       && $j->{first_id} eq $data[0]{id} && $j->{last_id} eq $data[-1]{id},
       'GET /v1/models with anthropic-version: Anthropic ModelInfo items, has_more, '
       . 'first_id, last_id') or diag($res->content);
    is_deeply([sort map { $_->{id} } @data], [sort @models],
              "GET /v1/models with anthropic-version: the key's models")
        or diag($res->content);
}

# ---- 6. stored responses: GET / DELETE /v1/responses/{id} -----------------
{
    my $g = new_group();
    my $m = uniq('rs');
    my (undef, $tag) = new_channel(kind => 'openai', models => [$m], channel_groups => [$g]);
    my $key = new_key(user_group => $g);
    my $id = 'resp_' . ('ab12' x 6);

    my ($res, $j) = get(GET => "/v1/responses/$id", Authorization => "Bearer $key");
    my $rec = mock_records($tag)->[-1] // {};
    ok($res->code == 200 && $j->{id} eq $id && $j->{object} eq 'response'
       && $j->{status} eq 'completed',
       'GET /v1/responses/{id}: the stored response the channel answered') or diag($res->content);
    ok(($rec->{method} // '') eq 'GET' && ($rec->{path} // '') =~ m{/v1/responses/\Q$id\E$}
       && ($rec->{headers}{authorization} // '') eq "Bearer sk-upstream-$tag",
       'GET /v1/responses/{id}: the mock was asked with the channel key')
        or diag(encode_json($rec));

    ($res, $j) = get(DELETE => "/v1/responses/$id", Authorization => "Bearer $key");
    $rec = mock_records($tag)->[-1] // {};
    is_deeply($j, { id => $id, object => 'response.deleted', deleted => JSON::PP::true },
              'DELETE /v1/responses/{id}: the deletion the channel answered')
        or diag($res->content);
    ok($res->code == 200 && ($rec->{method} // '') eq 'DELETE'
       && ($rec->{path} // '') =~ m{/v1/responses/\Q$id\E$},
       'DELETE /v1/responses/{id}: the mock got the DELETE') or diag(encode_json($rec));

    # no OpenAI channel in the key's group: nobody knows the id
    my $g2 = new_group();
    my (undef, $tag2) = new_channel(kind => 'anthropic', models => [uniq('rs')],
                                    channel_groups => [$g2]);
    my $key2 = new_key(user_group => $g2);
    ($res, $j) = get(GET => "/v1/responses/$id", Authorization => "Bearer $key2");
    ok($res->code == 404 && error_shape('openai', 404, $res->content)
       && !@{ mock_records($tag2) },
       'GET /v1/responses/{id} with no OpenAI channel: 404, nothing asked upstream')
        or diag($res->code . ' ' . $res->content);

    # an OpenAI channel that does not know it
    my $g3 = new_group();
    my (undef, $tag3) = new_channel(kind => 'openai', models => [uniq('rs')],
                                    channel_groups => [$g3], controls => 'status=404');
    my $key3 = new_key(user_group => $g3);
    ($res, $j) = get(GET => "/v1/responses/$id", Authorization => "Bearer $key3");
    $rec = mock_records($tag3)->[-1] // {};
    ok($res->code == 404 && error_shape('openai', 404, $res->content)
       && ($rec->{path} // '') =~ m{/v1/responses/\Q$id\E$},
       'GET /v1/responses/{id} unknown to the channel: asked, then 404')
        or diag($res->code . ' ' . $res->content);
    ($res, $j) = get(DELETE => "/v1/responses/$id", Authorization => "Bearer $key2");
    is($res->code, 404, 'DELETE /v1/responses/{id} with no OpenAI channel: 404')
        or diag($res->content);
}

# ---- 7. Azure api-version ------------------------------------------------
{
    my $key = new_key();
    my $m = uniq('az');
    my (undef, $tag) = new_channel(kind => 'azure', models => [$m]);
    my $res = post(undef, request('openai', $m, $key));
    my $rec = mock_records($tag)->[-1] // {};
    is($res->{status}, 200, 'azure: 200') or diag($res->{body});
    like($rec->{path} // '',
         qr{/openai/deployments/\Q$m\E/chat/completions\?api-version=2024-10-21$},
         'azure: NebulaAzureAPIVersion unset: api-version=2024-10-21')
        or diag(encode_json($rec));

    # NebulaAzureAPIVersion set on a vhost (t/conf/relay_azure.conf.in)
    {
        $res = post(NebulaAdmin::hostport_of('nebula_relay_azure'), request('openai', $m, $key));
        $rec = mock_records($tag)->[-1] // {};
        is($res->{status}, 200, 'azure, NebulaAzureAPIVersion 2025-01-01-preview: 200')
            or diag($res->{body});
        like($rec->{path} // '',
             qr{/openai/deployments/\Q$m\E/chat/completions\?api-version=2025-01-01-preview$},
             'azure: NebulaAzureAPIVersion is the api-version sent') or diag(encode_json($rec));
    }

    # the channel's own api-version, from its base URL (docs/protocols.md)
    my $m2 = uniq('az');
    my $tag2 = uniq('azv');
    my ($code, $d) = api('POST', '/api/channels', {
        name => $tag2, kind => 'azure', keys => ["sk-upstream-$tag2"], models => [$m2],
        channel_groups => ['default'], priority => 0, weight => 1,
        base_url => mock_url("tag=$tag2") . '?api-version=2025-03-01-preview' });
    {
        ok($code == 200 || $code == 201, 'azure: the admin API takes a base URL ending in '
                                         . '?api-version=') or diag(encode_json($d));
        $res = post(undef, request('openai', $m2, $key, stream => 1));
        $rec = mock_records($tag2)->[-1] // {};
        like($rec->{path} // '',
             qr{/openai/deployments/\Q$m2\E/chat/completions\?api-version=2025-03-01-preview$},
             "azure: the channel's ?api-version= wins (streamed)") or diag(encode_json($rec));
        is(scalar(grep { $_->[1] =~ /"content":"tok/ } @{ $res->{events} }), 3,
           'azure: and the stream comes through') or diag($res->{body});
    }
    # only an Azure channel's base URL may carry a query
    my $tag3 = uniq('azq');
    ($code) = api('POST', '/api/channels', {
        name => $tag3, kind => 'openai', keys => ["sk-upstream-$tag3"], models => [uniq('q')],
        channel_groups => ['default'], base_url => mock_url("tag=$tag3") . '?api-version=x1' });
    is($code, 400, 'an OpenAI channel\'s base URL with ?api-version= is refused');
}
