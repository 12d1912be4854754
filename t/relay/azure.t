# Azure OpenAI channels: the deployment in the path, api-version in the
# query, the key in api-key (never as a Bearer token); streaming too.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records chat relay_hostport);
use NebulaTest qw(timed_sse_post);

plan tests => 7;

my $key = new_key();
my $m = "az-$$";
my (undef, $tag) = new_channel(models => [$m], kind => 'azure',
                               model_mapping => { $m => "my-deploy-$$" });
my $res = chat($key, { model => $m, messages => [{ role => 'user', content => 'hi azure' }] });
is($res->code, 200, 'an Azure channel answers');
is(decode_json($res->content)->{object}, 'chat.completion', 'an OpenAI-shaped completion');
my $rec = mock_records($tag)->[-1] // {};
like($rec->{path} // '', qr{/openai/deployments/my-deploy-$$/chat/completions\?api-version=\d{4}-\d\d-\d\d},
     'the deployment (the mapped model) in the path, api-version in the query');
is($rec->{headers}{'api-key'}, "sk-upstream-$tag", 'the key in api-key');
ok(!exists $rec->{headers}{authorization}, 'and no Authorization header');

my $s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m, stream => JSON::PP::true,
                  messages => [{ role => 'user', content => '[[mock events=3]] go' }] }));
is(scalar(grep { $_->[1] =~ /"content":"tok/ } @{ $s->{events} }), 3, 'streaming: three events');
is($s->{events}[-1][1], '[DONE]', 'and [DONE]');
