# Gemini :embedContent through the billed gateway: passed through to a
# Gemini channel, converted to /v1/embeddings for an OpenAI channel and
# back to Gemini's {"embedding":{"values":[...]}}; the mock gives the same
# vector for the same text either way, so the two answers must match. The
# converted request is charged the provider's prompt tokens exactly; the
# native one (Gemini reports no usage for embeddings) the gateway's count.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(mock_records);
use NebulaBilling qw(billed_hostport billed_setup wallet);
use NebulaTest qw(timed_sse_post);

plan tests => 11;

my $text = 'the quick brown fox';   # P = 4 words
my %v;
for my $kind (qw(gemini openai)) {
    my %s = billed_setup(name => "emb$kind", balance => 100000,
                         channel => { kind => $kind });
    my $res = timed_sse_post(billed_hostport(), "/v1beta/models/$s{model}:embedContent",
                             { 'x-goog-api-key' => $s{key}, 'Content-Type' => 'application/json' },
                             encode_json({ content => { parts => [{ text => $text }] } }));
    is($res->{status}, 200, "$kind channel: 200") or diag($res->{body});
    my $j = eval { decode_json($res->{body}) } // {};
    $v{$kind} = $j->{embedding}{values} // [];
    cmp_ok(scalar @{ $v{$kind} }, '>', 0, "$kind channel: an embedding with values");
    my $rec = mock_records($s{tag})->[-1] // {};
    my $up = eval { decode_json($rec->{body} // '') } // {};
    if ($kind eq 'gemini') {
        like($rec->{path} // '', qr{/v1beta/models/\Q$s{model}\E:embedContent$},
             'gemini channel: passed through to :embedContent');
        is_deeply($up, { content => { parts => [{ text => $text }] } },
                  'gemini channel: the body as the client sent it');
        my $paid = 100000 - wallet($s{user})->{balance};
        cmp_ok($paid, '>', 0, "gemini channel: charged the gateway's count ($paid)");
    }
    else {
        like($rec->{path} // '', qr{/v1/embeddings$}, 'openai channel: converted to /v1/embeddings');
        is_deeply([@$up{qw(model input)}], [$s{model}, $text],
                  'openai channel: model and input');
        is(wallet($s{user})->{balance}, 100000 - 4, 'openai channel: charged the 4 prompt tokens');
    }
}
is_deeply($v{openai}, $v{gemini}, 'the same vector whichever way it went');
