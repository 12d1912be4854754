# The mock's record of what it received: one entry per request with the
# method, path, headers, body, model, tag, arrival time and a sequence
# number, readable through /_mock/records.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time);

plan tests => 27, need_module('nebula_mock');

Apache::TestRequest::module('nebula_mock');
my $hp = Apache::TestRequest::hostport();
my $ua = Apache::TestRequest::user_agent(keep_alive => 1);

sub records {
    my ($query) = @_;
    my $res = $ua->get("http://$hp/_mock/records?$query");
    return decode_json($res->content);
}

my $res = $ua->get("http://$hp/_mock/health");
is($res->code, 200, 'health: 200');

my $tag = "rec$$";
my $before = time;
my $body = encode_json({ model => 'gpt-4o-mini',
    messages => [ { role => 'user', content => 'one two three' } ] });
$res = $ua->post("http://$hp/v1/chat/completions?trace=1", 'Content-Type' => 'application/json',
    Authorization => 'Bearer sk-records', 'X-Custom-Thing' => 'kept',
    'X-Mock-Control' => "tag=$tag,events=2", Content => $body);
is($res->code, 200, 'request answered');
my $seq = $res->header('X-Mock-Seq');
like($seq, qr/^\d+$/, 'X-Mock-Seq header');

my $recs = records("tag=$tag");
is(scalar @$recs, 1, 'one record for the tag');
my $r = $recs->[0];
is($r->{seq}, $seq, 'record seq = X-Mock-Seq');
is($r->{method}, 'POST', 'method');
is($r->{path}, '/v1/chat/completions?trace=1', 'path with query');
is($r->{body}, $body, 'body verbatim');
is($r->{model}, 'gpt-4o-mini', 'model');
is($r->{tag}, $tag, 'tag');
is($r->{route}, 'openai.chat', 'route');
is($r->{status}, 200, 'status answered');
is_deeply([ $r->{prompt_tokens}, $r->{completion_tokens} ], [ 3, 2 ], 'token counts');
is($r->{headers}{authorization}, 'Bearer sk-records', 'headers: Authorization (lower-cased)');
is($r->{headers}{'x-custom-thing'}, 'kept', 'headers: custom header');
is($r->{headers}{'content-type'}, 'application/json', 'headers: content-type');
cmp_ok(abs($r->{time_ms} / 1000 - $before), '<', 5, 'arrival time in ms');

# several requests: seq increases, last=N keeps the newest, oldest first
for my $i (1 .. 4) {
    $ua->post("http://$hp/v1/messages", 'Content-Type' => 'application/json',
        'x-api-key' => 'ak', 'anthropic-version' => '2023-06-01',
        'X-Mock-Control' => "tag=$tag-m", Content => encode_json({ model => "claude-$i",
            max_tokens => 9, messages => [ { role => 'user', content => "n$i" } ] }));
}
$recs = records("tag=$tag-m");
is(scalar @$recs, 4, 'four records');
is_deeply([ map { $_->{model} } @$recs ], [ map { "claude-$_" } 1 .. 4 ], 'in arrival order');
ok(!grep({ $recs->[$_]{seq} <= $recs->[ $_ - 1 ]{seq} } 1 .. 3), 'seq strictly increasing');
ok($recs->[0]{seq} > $seq, 'seq continues across requests');
$recs = records("tag=$tag-m&last=2");
is_deeply([ map { $_->{model} } @$recs ], [ 'claude-3', 'claude-4' ], 'last=2: the newest two');

# errors are recorded with their status; the marker's tag counts
$ua->post("http://$hp/v1/chat/completions", 'Content-Type' => 'application/json',
    Authorization => 'Bearer bad-key',
    Content => encode_json({ model => 'x', messages => [ { role => 'user',
        content => "[[mock tag=$tag-e]] hi" } ] }));
$recs = records("tag=$tag-e");
is($recs->[0]{status}, 401, 'a refused request is recorded with its status');

# records of a Gemini call: model from the path, key from the query
$ua->post("http://$hp/v1beta/models/gemini-2.0-flash:generateContent?key=gk",
    'Content-Type' => 'application/json', 'X-Mock-Control' => "tag=$tag-g",
    Content => encode_json({ contents => [ { parts => [ { text => 'a b' } ] } ] }));
$recs = records("tag=$tag-g");
is($recs->[0]{model}, 'gemini-2.0-flash', 'gemini: model from the path');

# clearing
$res = $ua->delete("http://$hp/_mock/records");
is($res->code, 200, 'DELETE /_mock/records');
is(scalar @{ records("tag=$tag") }, 0, 'records cleared');
$ua->post("http://$hp/v1/chat/completions", 'Content-Type' => 'application/json',
    Authorization => 'Bearer sk', 'X-Mock-Control' => "tag=$tag-after", Content => $body);
$recs = records("tag=$tag-after");
ok(@$recs == 1 && $recs->[0]{seq} > $seq, 'recording goes on after clearing; seq keeps rising');
