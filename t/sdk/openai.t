# The official `openai` npm SDK works against the gateway with only its base
# URL and key changed (issue 3): chat, streamed chat (with and without usage,
# and through the SDK's stream helper), embeddings in the SDK's default base64
# form and as floats, the model list, and errors as the SDK's typed
# exceptions. t/sdk/openai-sdk.mjs drives the SDK and reports what it got;
# this file asserts on that report and on the mock's records. Run against the
# plain gateway and the one whose upstream is HTTPS (t/conf/tls.conf.in),
# and through the relay proper: a client key and a channel made with the
# admin API, nothing else.
#
# Needs node and t/sdk/node_modules (scripts/npm-deps.sh installs it from the
# lockfile); without them the tests fail, they are not skipped.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd);
use NebulaAdmin qw(admin new_key new_channel);

my @targets = qw(nebula_gateway nebula_gateway_tls nebula_relay);
my $per_target = 26;
plan tests => 2 + $per_target * @targets;

my $sdk_dir = $FindBin::Bin;
my $script  = "$sdk_dir/openai-sdk.mjs";
my $locked  = eval {
    open(my $fh, '<', "$sdk_dir/package-lock.json") or die $!;
    decode_json(do { local $/; <$fh> })->{packages}{'node_modules/openai'}{version};
} // 'unknown';
my $installed = eval {
    open(my $fh, '<', "$sdk_dir/node_modules/openai/package.json") or die $!;
    decode_json(do { local $/; <$fh> })->{version};
};

# the pinned SDK supports Node.js 20 and later
my ($node_rc, $node_v) = run_cmd('node', '--version');
$node_v = $node_rc == 0 ? $node_v =~ s/\s+$//r : 'missing';
ok($node_v =~ /^v(\d+)\./ && $1 >= 20, "node >= 20 is installed ($node_v)");
is($installed // 'not installed (run scripts/npm-deps.sh)', $locked,
   't/sdk/node_modules holds the locked openai SDK');

Apache::TestRequest::module('nebula_mock');
my $mock = Apache::TestRequest::hostport();
my $ua = Apache::TestRequest::user_agent(keep_alive => 1);

sub mock_records {
    my ($tag) = @_;
    my $res = $ua->get("http://$mock/_mock/records?last=100&tag=$tag");
    return $res->is_success ? decode_json($res->content) : [];
}

# Runs the SDK script; returns its report ({} when it printed none).
sub run_sdk {
    my ($base_url, $key, $tag) = @_;
    # only baseURL and apiKey: no OPENAI_* variable may configure the client
    local %ENV = map { $_ => $ENV{$_} } grep { !/^OPENAI_/ } keys %ENV;
    my ($rc, $out) = run_cmd('timeout', '120', 'node', $script, $base_url, $key, $tag);
    my ($line) = grep { /^\{/ } reverse split /\n/, $out;
    my $report = eval { decode_json($line // '') };
    diag("the SDK script failed (exit $rc):\n$out") if $rc != 0 || !$report;
    return $report || {};
}

# true when the SDK accepted a section's answers; otherwise says what it threw
sub accepted {
    my ($name, $sec) = @_;
    my $err = !$sec ? { name => 'nothing', message => 'the section did not run' } : $sec->{error};
    ok(!$err, "$name: the SDK accepted the gateway's answer")
        or diag("$name: the SDK threw $err->{name} (status " . ($err->{status} // 'none')
                . "): $err->{message}");
    return !$err;
}

sub usage_of { my ($u) = @_; return [ map { $u->{$_} } qw(prompt_tokens completion_tokens total_tokens) ] }

# the relay's fixtures: a group of its own, so no other test's channel serves it
my $group = "sdk$$";
admin('POST', '/api/groups', { name => $group });
my ($relay_ch, $relay_chtag) = new_channel(models => ['gpt-4o-mini', 'text-embedding-3-small'],
                                           channel_groups => [$group]);
my $relay_key = new_key(key_group => $group);

for my $target (@targets) {
    my $relay = $target eq 'nebula_relay';
    Apache::TestRequest::module($target);
    my $hp = Apache::TestRequest::hostport();
    my $tag = sprintf('sdk-%s-%x%x', ($relay ? 'relay' : $target =~ /tls/ ? 'tls' : 'http'), time, $$);
    my $t = $relay ? '[relay: key + channel] ' : $target =~ /tls/ ? '[https upstream] ' : '[http upstream] ';
    my $r = run_sdk("http://$hp/v1", $relay ? $relay_key : 'sk-sdk-1', $tag);
    ok(($r->{sdk_version} // '') eq $locked, "${t}the SDK script ran (openai $locked)");

    # chat, not streamed
    my $c = $r->{chat};
    accepted("${t}chat", $c);
    is($c->{content}, 'tok1 tok2 tok3 ', "${t}chat: the SDK read the mock's text");
    is_deeply([ @{$c}{qw(object role finish_reason)} ], [ 'chat.completion', 'assistant', 'stop' ],
        "${t}chat: object, role, finish_reason");
    is_deeply(usage_of($c->{usage}), [ 3, 3, 6 ], "${t}chat: usage");
    like($c->{request_id} // '', $relay ? qr/^[0-9a-f]{8}-[0-9a-f]{4}-7/ : qr/^req_/,
         "${t}chat: the SDK read x-request-id through the gateway");

    # chat, streamed with stream_options.include_usage
    my $s = $r->{stream};
    accepted("${t}stream", $s);
    is($s->{text}, 'tok1 tok2 tok3 tok4 tok5 ', "${t}stream: the chunks' deltas make the text");
    is_deeply([ $s->{content_chunks}, $s->{role}, $s->{finish_reason}, $s->{objects} ],
        [ 5, 'assistant', 'stop', ['chat.completion.chunk'] ],
        "${t}stream: five content chunks, role, finish_reason, chunk objects");
    ok(($s->{usage_chunks} // 0) == 1 && $s->{usage_chunk_is_last}
       && defined $s->{usage_chunk_choices} && $s->{usage_chunk_choices} == 0
       && "@{ usage_of($s->{usage}) }" eq '2 5 7',
       "${t}stream: include_usage brings one last chunk, no choices, usage 2+5=7");
    cmp_ok($s->{spread_ms} // 0, '>=', 600,
        sprintf('%sstream: chunks reached the SDK as sent (first %.0f ms before the last)',
                $t, $s->{spread_ms} // 0));

    # chat, streamed without include_usage: no usage chunk
    my $n = $r->{stream_no_usage};
    accepted("${t}stream without include_usage", $n);
    ok(($n->{text} // '') eq 'tok1 tok2 ' && defined $n->{usage_chunks} && $n->{usage_chunks} == 0,
       "${t}stream without include_usage: the text, and no usage chunk");

    # the SDK's stream helper rebuilds the completion from the chunks
    my $h = $r->{stream_helper};
    ok(!$h->{error} && ($h->{content} // '') eq 'tok1 tok2 tok3 tok4 '
       && ($h->{finish_reason} // '') eq 'stop' && ($h->{usage}{completion_tokens} // 0) == 4,
       "${t}stream helper: finalChatCompletion() has the text, finish_reason, usage")
        or diag(explain($h));

    # embeddings: base64 (the SDK's default, decoded by it) and float agree
    my $e = $r->{embeddings};
    accepted("${t}embeddings", $e);
    is_deeply([ $e->{count}, $e->{indexes}, $e->{lengths} ], [ 2, [ 0, 1 ], [ 8, 8 ] ],
        "${t}embeddings: two vectors of the mock's 8 dimensions, in order");
    ok($e->{all_numbers} && $e->{in_range}, "${t}embeddings: the decoded values are numbers in [-1, 1]");
    ok($e->{base64_equals_float}, "${t}embeddings: base64 decodes to exactly the float answer");
    is_deeply([ @{ $e->{usage} // {} }{qw(prompt_tokens total_tokens)} ], [ 3, 3 ],
        "${t}embeddings: usage");
    is($e->{dimensions_16}, 16, "${t}embeddings: dimensions passed through");

    # models
    my $m = $r->{models};
    accepted("${t}models", $m);
    ok(!$m->{error} && (grep { $_ eq 'gpt-4o-mini' } @{ $m->{ids} // [] })
       && ($m->{retrieved}{id} // '') eq 'gpt-4o-mini' && ($m->{retrieved}{object} // '') eq 'model',
       "${t}models: list() iterates the models, retrieve() reads one")
        or diag(explain($m));

    # errors become the SDK's typed exceptions
    my $b = $r->{bad_key}{thrown} // {};
    ok($r->{bad_key}{is_authentication_error} && ($b->{status} // 0) == 401
       && ($b->{code} // '') eq 'invalid_api_key',
       "${t}a rejected key: AuthenticationError, 401, invalid_api_key") or diag(explain($r->{bad_key}));
    my $u = $r->{unknown_model}{thrown} // {};
    ok($r->{unknown_model}{is_not_found_error} && ($u->{status} // 0) == 404,
       "${t}an unknown model: NotFoundError, 404") or diag(explain($r->{unknown_model}));

    # what the mock received from the SDK through the gateway
    my $rec = mock_records($tag);
    my @emb = grep { $_->{route} eq 'openai.embeddings' } @$rec;
    my @fmt = map { (eval { decode_json($_->{body}) } || {})->{encoding_format} // 'none' } @emb;
    is("@fmt", 'base64 float base64',
       "${t}the SDK asked for base64 unless told otherwise, and the gateway kept it");
    my @keys = map { my $hh = $_->{headers}; (map { $hh->{$_} } grep { lc eq 'authorization' } keys %$hh) } @$rec;
    if ($relay) {
        # the rejected key never reaches the upstream; the channel's key does
        ok(@$rec == 7 && !grep({ $_ ne "Bearer sk-upstream-$relay_chtag" } @keys)
           && (grep { ($_->{headers}{'user-agent'} // '') =~ m{^NebulaGate/} } @$rec) == @$rec,
           "${t}the mock got each accepted SDK request once (7 tagged; got " . scalar(@$rec)
           . "), with the channel's key, never the client's");
        next;
    }
    ok(@$rec == 8 && !grep({ $_ ne 'Bearer sk-sdk-1' && $_ ne 'Bearer bad-key-for-the-sdk-test' } @keys)
       && (grep { ($_->{headers}{'user-agent'} // '') =~ m{^OpenAI/JS } } @$rec) == @$rec,
       "${t}the mock got each SDK request once (8 tagged; got " . scalar(@$rec)
       . "), with the SDK's key and user agent");
}
