# When the upstream reports no usage, the gateway counts the tokens itself:
# exactly with the model's BPE encoding (NebulaTokenizerDir), chat overhead
# included, and flags the row as its own count. Expected numbers come from
# the reference tokenizer (scripts/tokenizer-data.sh --reference o200k_base):
#   "[[mock events=3,no_usage=1]] Hello world, how are you today?" -> 18
#   "user" -> 1;  "tok1 tok2 tok3 " -> 7
#   chat: 3 per message + role + content, + 3 for the reply = 25
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(api new_key new_channel chat relay_hostport key_logs);
use NebulaTest qw(timed_sse_post);

plan tests => 7;

my $m = "gpt-4o-tok-$$";   # an o200k_base model name
new_channel(models => [$m]);
my ($key, $kid) = new_key();
my $content = '[[mock events=3,no_usage=1]] Hello world, how are you today?';

my $res = chat($key, { model => $m, messages => [{ role => 'user', content => $content }] });
is($res->code, 200, 'answered');
ok(!exists decode_json($res->content)->{usage}, 'the upstream reported no usage');

my $s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true, stream_options => { include_usage => JSON::PP::true },
                  messages => [{ role => 'user', content => $content }] }));
my ($u) = grep { ref $_->{usage} } map { decode_json($_->[1]) } grep { $_->[1] ne '[DONE]' } @{ $s->{events} };
is_deeply($u && [@{ $u->{usage} }{qw(prompt_tokens completion_tokens total_tokens)}], [25, 7, 32],
          'stream: the synthesised usage chunk carries the exact BPE counts');

my @rows = @{ key_logs($kid, 2) };
is(scalar @rows, 2, 'two log rows');
for my $row (@rows) {
    is_deeply([@{$row}{qw(prompt_tokens completion_tokens)}], [25, 7],
              ($row->{is_stream} ? 'stream' : 'complete') . ': exact counts logged');
}
ok(!(grep { !$_->{usage_estimated} } @rows), 'both flagged as the gateway\'s own count');
