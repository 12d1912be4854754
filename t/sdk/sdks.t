# The official Anthropic, Google GenAI and OpenAI (Responses API) SDKs work
# against the gateway with only their base URL and key changed, on a channel
# that speaks their protocol (passed through) and on one that does not
# (converted): t/sdk/{anthropic,genai,responses}-sdk.mjs drive the SDKs and
# report what they got; this file asserts on the reports.
#
# Needs node and t/sdk/node_modules (scripts/npm-deps.sh); without them the
# tests fail, they are not skipped.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd);
use NebulaAdmin qw(new_key new_channel relay_hostport);

my @runs = (
    [anthropic => 'anthropic'], [anthropic => 'openai'],
    [genai => 'gemini'], [genai => 'openai'],
    [responses => 'openai'], [responses => 'anthropic'],
);
my %per = (anthropic => 12, genai => 8, responses => 7);
my $total = 0;
$total += $per{ $_->[0] } for @runs;
plan tests => $total;

my $base = 'http://' . relay_hostport();
my $key = new_key();

sub drive {
    my ($sdk, $model) = @_;
    # the openai SDK's base URL ends in /v1; the others add their own paths
    my ($rc, $out) = run_cmd('node', "$FindBin::Bin/$sdk-sdk.mjs",
                             $sdk eq 'responses' ? "$base/v1" : $base, $key, $model);
    my $r = eval { decode_json((split /\n/, $out)[-1] // '') };
    diag("$sdk-sdk.mjs exited $rc: $out") if $rc || !$r;
    return $r // {};
}

for my $run (@runs) {
    my ($sdk, $kind) = @$run;
    my $model = "sdk-$sdk-$kind-$$";
    new_channel(kind => $kind, models => [$model]);
    my $r = drive($sdk, $model);
    my $name = "$sdk SDK, $kind channel";
    if ($sdk eq 'anthropic') {
        my $c = $r->{create} // {};
        is_deeply([@$c{qw(type role stop_reason text)}],
                  ['message', 'assistant', 'end_turn', 'tok1 tok2 tok3 '],
                  "$name: messages.create") or diag(encode_json($r));
        is($c->{usage}{input_tokens}, 4, "$name: input tokens (system and prompt)");
        is($c->{usage}{output_tokens}, 3, "$name: output tokens");
        my $s = $r->{stream} // {};
        is(join('', @{ $s->{deltas} // [] }), 'tok1 tok2 tok3 tok4 ', "$name: stream text events");
        cmp_ok(scalar @{ $s->{deltas} // [] }, '>=', 2, "$name: ... in several deltas");
        is($s->{text}, 'tok1 tok2 tok3 tok4 ', "$name: finalMessage text");
        is_deeply([$s->{stop_reason}, $s->{usage}{output_tokens}], ['end_turn', 4],
                  "$name: finalMessage stop reason and usage");
        my @types = grep { $_ ne 'ping' } @{ $r->{raw_stream}{types} // [] };
        is_deeply(\@types, [qw(message_start content_block_start content_block_delta
                               content_block_delta content_block_stop message_delta
                               message_stop)], "$name: the raw event sequence")
            or diag(encode_json($r->{raw_stream}));
        like($r->{count}{input_tokens} // '', qr/^[1-9]\d*$/, "$name: countTokens");
        my $e = $r->{bad_key}{error} // {};
        is($e->{status}, 401, "$name: a bad key is a 401");
        is($e->{name}, 'AuthenticationError', "$name: ... as the SDK's AuthenticationError");
        ok(!grep({ ref $r->{$_} eq 'HASH' && $r->{$_}{error} } qw(create stream raw_stream count)),
           "$name: no section failed") or diag(encode_json($r));
    }
    elsif ($sdk eq 'genai') {
        my $g = $r->{generate} // {};
        is($g->{text}, 'tok1 tok2 tok3 ', "$name: generateContent text") or diag(encode_json($r));
        is($g->{finish}, 'STOP', "$name: finish reason");
        is_deeply([@{ $g->{usage} // {} }{qw(promptTokenCount candidatesTokenCount)}], [2, 3],
                  "$name: usageMetadata");
        my $s = $r->{stream} // {};
        is(join('', @{ $s->{texts} // [] }), 'tok1 tok2 tok3 tok4 ', "$name: stream text");
        is_deeply([$s->{finish}, $s->{usage}{candidatesTokenCount}], ['STOP', 4],
                  "$name: stream finish and usage");
        like($r->{count}{totalTokens} // '', qr/^[1-9]\d*$/, "$name: countTokens");
        is($r->{bad_key}{error}{status}, 401, "$name: a bad key is a 401")
            or diag(encode_json($r->{bad_key}));
        ok(!grep({ ref $r->{$_} eq 'HASH' && $r->{$_}{error} } qw(generate stream count)),
           "$name: no section failed") or diag(encode_json($r));
    }
    else {
        my $c = $r->{create} // {};
        is_deeply([@$c{qw(object status output_text)}], ['response', 'completed', 'tok1 tok2 tok3 '],
                  "$name: responses.create") or diag(encode_json($r));
        is_deeply([@{ $c->{usage} // {} }{qw(input_tokens output_tokens)}], [4, 3],
                  "$name: usage");
        my $s = $r->{stream} // {};
        is(join('', @{ $s->{deltas} // [] }), 'tok1 tok2 tok3 tok4 ', "$name: stream deltas");
        is($s->{output_text}, 'tok1 tok2 tok3 tok4 ', "$name: finalResponse text");
        is($s->{status}, 'completed', "$name: finalResponse status");
        is($s->{usage}{output_tokens}, 4, "$name: finalResponse usage");
        ok(!grep({ ref $r->{$_} eq 'HASH' && $r->{$_}{error} } qw(create stream)),
           "$name: no section failed") or diag(encode_json($r));
    }
}
