# NebulaFirstByteTimeout: an upstream that is slow to start answering fails
# over after it; once it answered, the (longer) idle timeout applies between
# stream events.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time);
use JSON::PP qw(encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(new_key new_channel mock_records chat relay_hostport);
use NebulaTest qw(timed_sse_post);

plan tests => 6;

my $key = new_key();
my $m = "fbt-$$";
my (undef, $slow) = new_channel(models => [$m], priority => 5, controls => 'header_delay_ms=1500');
my (undef, $fast) = new_channel(models => [$m], priority => 1);
my $body = { model => $m, messages => [{ role => 'user', content => 'hi' }] };

my $t0 = time;
is(chat($key, $body, path => '/fbt/v1/chat/completions')->code, 200,
   'with NebulaFirstByteTimeout 500ms: answered');
cmp_ok(time - $t0, '<', 1.3, 'without waiting for the slow upstream to start');
is(scalar @{ mock_records($fast) }, 1, 'by the next channel');

$t0 = time;
is(chat($key, $body)->code, 200, 'without it (idle timeout 5s): answered');
cmp_ok(scalar @{ mock_records($fast) }, '==', 1, 'by the slow upstream, which was waited for');

my $m2 = "fbt2-$$";
new_channel(models => [$m2]);
my $s = timed_sse_post(relay_hostport(), '/fbt/v1/chat/completions',
    { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
    encode_json({ model => $m2, stream => JSON::PP::true,
                  messages => [{ role => 'user', content => '[[mock events=3,delay_ms=1200]] go' }] }));
is($s->{events}[-1][1], '[DONE]', 'a stream idle 1.2s between events is not cut by the 500ms first-byte limit');
