# Channel selection and failover: weights, priority tiers, retries on
# 429/500/503/connection refused/timeout with one clean answer for the
# client, no retry once a stream has begun, and the retry budget.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin new_key new_channel mock_records chat relay_hostport);
use NebulaTest qw(timed_sse_post);

plan tests => 20;

my $key = new_key();
sub ask { my ($m, %h) = @_; return chat($key, { model => $m, messages => [{ role => 'user', content => 'hi' }] }, %h) }
sub served { return scalar @{ mock_records($_[0], 5000) } }

# weights: 1000 requests over weights 1 and 3 in one tier
{
    my $m = "w-$$";
    my (undef, $a) = new_channel(models => [$m], weight => 1);
    my (undef, $b) = new_channel(models => [$m], weight => 3);
    my $ok = 0;
    $ok += ask($m)->code == 200 for 1 .. 1000;
    is($ok, 1000, '1000 requests answered');
    my ($na, $nb) = (served($a), served($b));
    is($na + $nb, 1000, 'all served by the two channels');
    # expected 250 / 750; sd = sqrt(1000 * .25 * .75) = 13.7: allow 4 sd
    cmp_ok(abs($na - 250), '<', 55, "weight 1 got $na of 1000 (expected 250 +- 55)");
}

# priority: the higher tier serves while it is healthy; the lower when it fails
{
    my $m = "p-$$";
    my (undef, $hi) = new_channel(models => [$m], priority => 10);
    my (undef, $lo) = new_channel(models => [$m], priority => 1);
    ask($m) for 1 .. 20;
    is(served($hi), 20, 'the higher priority tier takes all traffic');
    is(served($lo), 0, 'the lower one none');
    my ($m2) = ("p2-$$");
    my (undef, $hi2) = new_channel(models => [$m2], priority => 10, controls => 'status=503');
    my (undef, $lo2) = new_channel(models => [$m2], priority => 1);
    my $res = ask($m2);
    is($res->code, 200, 'the top tier fails with 503: the client still gets 200');
    is(served($lo2), 1, 'served by the lower tier');
}

# retries on each retriable failure, the client sees one clean answer
for my $case (['status=429', '429'], ['status=500', '500'], ['status=503', '503']) {
    my $m = "r-$case->[1]-$$";
    my (undef, $bad) = new_channel(models => [$m], priority => 5, controls => $case->[0]);
    my (undef, $good) = new_channel(models => [$m], priority => 1);
    my $res = ask($m);
    is($res->code . ' ' . (decode_json($res->content)->{object} // ''), '200 chat.completion',
       "upstream $case->[1]: retried, one clean answer");
}
{
    my $m = "r-refused-$$";
    new_channel(models => [$m], priority => 5, base_url => 'http://127.0.0.1:9');
    my (undef, $good) = new_channel(models => [$m], priority => 1);
    is(ask($m)->code, 200, 'connection refused: retried on another channel');
    is(served($good), 1, 'which served it');
}
{
    my $m = "r-timeout-$$";
    new_channel(models => [$m], priority => 5, controls => 'header_delay_ms=3000', timeout_ms => 500);
    my (undef, $good) = new_channel(models => [$m], priority => 1);
    my $t0 = time;
    is(ask($m)->code, 200, 'upstream timeout: retried on another channel');
    cmp_ok(time - $t0, '<', 3, 'without waiting for the slow upstream');
}

# no retry after the first streamed byte
{
    my $m = "s-$$";
    my (undef, $drop) = new_channel(models => [$m], priority => 5, controls => 'events=6,drop_after=2,delay_ms=50');
    my (undef, $other) = new_channel(models => [$m], priority => 1);
    my $s = timed_sse_post(relay_hostport(), '/v1/chat/completions',
        { Authorization => "Bearer $key", 'Content-Type' => 'application/json' },
        encode_json({ model => $m, stream => JSON::PP::true, messages => [{ role => 'user', content => 'x' }] }));
    is($s->{status}, 200, 'stream began');
    ok(!(grep { $_->[1] eq '[DONE]' } @{ $s->{events} }), 'the broken stream has no [DONE]');
    like($s->{body}, qr/stream_interrupted/, 'the client is told in the stream');
    is(served($other), 0, 'no retry after the first streamed byte');
}

# the retry budget (NebulaRetries 2: three attempts) and the last error
{
    my $m = "b-$$";
    new_channel(models => [$m], priority => $_, controls => 'status=500,error_message=boom') for 1 .. 4;
    my $res = ask($m);
    is($res->code, 500, 'all channels fail: the upstream status');
    is(decode_json($res->content)->{error}{message}, 'boom', 'and its error message');
}
