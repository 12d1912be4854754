# Realtime sessions through the billed gateway with real WebSocket clients
# (t/sdk/realtime.mjs): the `ws` package as a browser uses it (ws://, the
# key as the subprotocol openai-insecure-api-key.<key>) and the official
# openai SDK's OpenAIRealtimeWS (wss:// to the gateway, whose channel is the
# mock Realtime server over TLS). Each response.done is charged exactly:
# one consume ledger row. An unknown key is refused before the upgrade.
#
# Needs node and t/sdk/node_modules (scripts/npm-deps.sh installs it from the
# lockfile); without them the tests fail, they are not skipped.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use JSON::PP qw(encode_json decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd);
use NebulaAdmin qw(admin new_user new_key new_channel);
use NebulaBilling qw(set_price topup wallet ledger_rows uniq_model);

plan tests => 24;

my $hp  = sub { NebulaAdmin::hostport_of($_[0]) };
my $top = Apache::Test::vars('serverroot');

# a priced model on a channel at BASE, a funded user and a key
sub fixture {
    my ($base) = @_;
    my $model = uniq_model('rtsdk');
    set_price($model, model_ratio => '1', completion_ratio => '2');
    new_channel(models => [$model], base_url => $base);
    my $uid = new_user();
    topup($uid, 10000);
    my ($key) = new_key(user_id => $uid);
    return { model => $model, user => $uid, key => $key };
}
my $plain = fixture('http://' . $hp->('nebula_mock_ws'));
my $tls   = fixture('https://localhost:' . (split /:/, $hp->('nebula_mock_ws_tls'))[1]);

my $cfg = {
    sections  => [qw(browser sdk refused)],
    ws_url    => 'ws://' . $hp->('nebula_billed'),
    model     => $plain->{model},
    key       => $plain->{key},
    tls_base  => 'https://localhost:' . (split /:/, $hp->('nebula_billed_tls'))[1] . '/v1',
    tls_model => $tls->{model},
    tls_key   => $tls->{key},
    ca_file   => "$top/logs/tls/ca.crt",
};
# only the config: no OPENAI_* variable may configure the SDK
local %ENV = map { $_ => $ENV{$_} } grep { !/^OPENAI_/ } keys %ENV;
my ($rc, $out) = run_cmd('timeout', '90', 'node', "$FindBin::Bin/realtime.mjs", encode_json($cfg));
my ($line) = grep { /^\{/ } reverse split /\n/, $out;
my $r = eval { decode_json($line // '') } || {};
diag("realtime.mjs failed (exit $rc):\n$out") if $rc != 0 || !%$r;
is($r->{ws_version}, '8.18.3', 'the script ran with the pinned ws package');

# ---- the browser's way -----------------------------------------------------------
my $b = $r->{browser} // {};
ok(!$b->{error}, 'browser: the session opened and ran') or diag(explain($b));
is($b->{protocol}, 'realtime', 'browser: the subprotocol "realtime" was chosen, not the key');
is($b->{extensions}, '', 'browser: no extension (compression) negotiated');
is($b->{session_model}, $plain->{model}, 'browser: session.created for the model asked');
is_deeply($b->{types},
          [ 'session.created', 'session.updated', 'conversation.item.created',
            'response.created', ('response.output_text.delta') x 3, 'response.done' ],
          'browser: every event, in order');
is($b->{item_text}, 'one two three', 'browser: the item went up and came back');
is($b->{text}, 'tok1 tok2 tok3 ', 'browser: the deltas');
is_deeply([ @{ $b->{usage} // {} }{qw(input_tokens output_tokens total_tokens)} ], [ 3, 3, 6 ],
          'browser: response.done carries the usage');
is($b->{pong}, 'still-there', 'browser: a ping is answered with its payload');
is($b->{close_code}, 1000, 'browser: closed cleanly (1000)');
my $w = wallet($plain->{user});
is_deeply([ @$w{qw(balance reserved)} ], [ 10000 - 9, 0 ],
          'browser: charged (3 + 3 x 2) = 9 units, nothing held');
my $rows = ledger_rows($w->{id});
is_deeply([ map { [ $_->{kind}, $_->{amount} ] } @$rows ], [ [ 'topup', 10000 ], [ 'consume', -9 ] ],
          'browser: one consume ledger row');

# ---- the official SDK, TLS on both sides --------------------------------------------
my $s = $r->{sdk} // {};
like($s->{url} // '', qr{^wss://localhost:\d+/v1/realtime\?model=}, 'sdk: OpenAIRealtimeWS used wss://');
is_deeply($s->{errors}, [], 'sdk: no error event') or diag(explain($s));
is($s->{session_model}, $tls->{model}, 'sdk: session.created through TLS both ways');
is_deeply($s->{types},
          [ 'session.created', 'session.updated', 'conversation.item.created',
            'response.created', ('response.output_text.delta') x 5, 'response.done' ],
          'sdk: every event, in order');
is($s->{text}, 'tok1 tok2 tok3 tok4 tok5 ', 'sdk: the deltas');
is_deeply([ @{ $s->{usage} // {} }{qw(input_tokens output_tokens)} ], [ 5, 5 ], 'sdk: the usage');
is($s->{close_code}, 1000, 'sdk: closed cleanly (1000)');
$w = wallet($tls->{user});
is_deeply([ @$w{qw(balance reserved)} ], [ 10000 - 15, 0 ],
          'sdk: charged (5 + 5 x 2) = 15 units, nothing held');
is(scalar(grep { $_->{kind} eq 'consume' } @{ ledger_rows($w->{id}) }), 1,
   'sdk: one consume ledger row');

# ---- refused --------------------------------------------------------------------------
my $f = $r->{refused} // {};
is($f->{status}, 401, 'an unknown key: the client sees 401 instead of the upgrade');
is($f->{error}{type}, 'invalid_request_error', '... with an OpenAI-shaped error body');
