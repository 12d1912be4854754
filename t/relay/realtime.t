# The Realtime API through the gateway: GET /v1/realtime?model=M upgraded to
# a WebSocket, relayed both ways to a channel on the mock Realtime server
# (t/c-modules/nebula_mock_ws), every response.done billed as one request:
# one consume ledger row and one request-log row with the exact cost. Refused
# before the upgrade with plain HTTP errors (unknown key 401, no balance
# 429); a payer who runs dry mid-session gets an "error" event and a close;
# a client that vanishes leaves no hold behind. The client is a raw socket
# WebSocket client (masking, framing, ping and close by hand).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use IO::Socket::INET;
use IO::Select;
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha1_base64);
use JSON::PP qw(encode_json decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_user new_key new_channel log_row key_logs);
use NebulaBilling qw(billed_hostport set_price topup wallet ledger_rows uniq_model);

plan tests => 54;

# ---- a WebSocket client ---------------------------------------------------------

# ws_open(PATH, HEADERS...) -> { sock, status, headers{lc}, body, key }
sub ws_open {
    my ($path, %h) = @_;
    my $hp = delete $h{_hostport} // billed_hostport();
    my $sock = IO::Socket::INET->new(PeerAddr => $hp, Timeout => 10) or die "connect: $!";
    binmode $sock;
    my $key = encode_base64(join('', map { chr(int rand 256) } 1 .. 16), '');
    my $req = "GET $path HTTP/1.1\r\nHost: $hp\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\nSec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n"
            . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n";
    syswrite($sock, $req);
    my $head = '';
    while ($head !~ /\r\n\r\n\z/) {   # byte by byte: frames may follow at once
        my $n = sysread($sock, my $c, 1);
        last unless $n;
        $head .= $c;
    }
    my ($status) = $head =~ m{^HTTP/1\.1 (\d{3})};
    my %hdr;
    $hdr{ lc $1 } = $2 while $head =~ /^([\w-]+):\s*(.*?)\r$/mg;
    my $ws = { sock => $sock, status => $status // 0, headers => \%hdr, key => $key,
               buf => '' };
    if (($status // 0) != 101 && $hdr{'content-length'}) {
        my $body = '';
        while (length $body < $hdr{'content-length'}) {
            my $n = sysread($sock, $body, $hdr{'content-length'} - length $body, length $body);
            last unless $n;
        }
        $ws->{body} = $body;
    }
    return $ws;
}

sub ws_send_frame {
    my ($ws, $op, $payload) = @_;
    my $len = length $payload;
    my $mask = join('', map { chr(int rand 256) } 1 .. 4);
    my $h = chr(0x80 | $op);
    $h .= $len < 126 ? chr(0x80 | $len)
        : $len < 65536 ? chr(0x80 | 126) . pack('n', $len)
        : chr(0x80 | 127) . pack('Q>', $len);
    my @m = map { ord } split //, $mask;
    my $i = 0;
    my $masked = join '', map { chr(ord($_) ^ $m[$i++ % 4]) } split //, $payload;
    syswrite($ws->{sock}, $h . $mask . $masked);
}

sub ws_send { my ($ws, $ev) = @_; ws_send_frame($ws, 1, encode_json($ev)) }

# next frame: (opcode, payload); () on EOF or after TIMEOUT seconds
sub ws_frame {
    my ($ws, $timeout) = @_;
    my $sel = IO::Select->new($ws->{sock});
    for (;;) {
        my $b = $ws->{buf};
        if (length $b >= 2) {
            my ($b0, $b1) = unpack('CC', $b);
            my ($len, $off) = ($b1 & 0x7F, 2);
            ($len, $off) = (unpack('n', substr($b, 2, 2)), 4) if $len == 126 && length $b >= 4;
            ($len, $off) = (unpack('Q>', substr($b, 2, 8)), 10) if $len == 127 && length $b >= 10;
            if (($b1 & 0x7F) < 126 || $off > 2) {
                die "the gateway sent a masked frame\n" if $b1 & 0x80;
                if (length $b >= $off + $len) {
                    $ws->{buf} = substr($b, $off + $len);
                    return ($b0 & 0x0F, substr($b, $off, $len), $b0 & 0x80);
                }
            }
        }
        return () unless $sel->can_read($timeout // 10);
        my $n = sysread($ws->{sock}, $ws->{buf}, 65536, length $ws->{buf});
        return () unless $n;
    }
}

# next event (decoded text message); {close => code} for a close frame
sub ws_event {
    my ($ws, $timeout) = @_;
    for (;;) {
        my ($op, $p) = ws_frame($ws, $timeout);
        return undef unless defined $op;
        return decode_json($p) if $op == 1;
        return { close => length $p >= 2 ? unpack('n', $p) : 0 } if $op == 8;
        return { pong => $p } if $op == 10;
    }
}

# events until (and with) the first of type TYPE
sub ws_until {
    my ($ws, $type) = @_;
    my @ev;
    while (my $e = ws_event($ws)) {
        push @ev, $e;
        last if ($e->{type} // '') eq $type || $e->{close};
    }
    return \@ev;
}


my $mock_ws = 'http://' . NebulaAdmin::hostport_of('nebula_mock_ws');

# a priced model on a channel of the mock, mapped to another upstream name;
# a funded user and a key
sub setup {
    my (%o) = @_;
    my $model = uniq_model('rt');
    set_price($model, model_ratio => '1', completion_ratio => '2');
    my ($ch) = new_channel(models => [$model], base_url => $mock_ws,
                           model_mapping => { $model => "$model-upstream" });
    my $uid = new_user();
    topup($uid, $o{balance}) if $o{balance};
    my ($key, $kid) = new_key(user_id => $uid);
    return (model => $model, user => $uid, key => $key, key_id => $kid, channel => $ch);
}

# ---- a session: events both ways, each response billed -----------------------------
my %s = setup(balance => 10000);
my $ws = ws_open("/v1/realtime?model=$s{model}", Authorization => "Bearer $s{key}",
                 'Sec-WebSocket-Protocol' => 'realtime',
                 'Sec-WebSocket-Extensions' => 'permessage-deflate; client_max_window_bits');
is($ws->{status}, 101, 'the upgrade is answered 101 Switching Protocols');
is($ws->{headers}{'sec-websocket-accept'},
   sha1_base64($ws->{key} . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11') . '=',
   "... with the accept of the client's own key");
is($ws->{headers}{'sec-websocket-protocol'}, 'realtime', '... the subprotocol chosen');
ok(!exists $ws->{headers}{'sec-websocket-extensions'}, '... and no compression negotiated');
my $sid = $ws->{headers}{'x-request-id'};
like($sid // '', qr/^[0-9a-f-]{36}$/, '... and the session has a request id');

my $ev = ws_event($ws);
is($ev->{type}, 'session.created', 'the upstream greets with session.created');
is($ev->{session}{model}, "$s{model}-upstream", '... for the mapped model');

ws_send($ws, { type => 'session.update',
               session => { type => 'realtime', instructions => 'be brief [[mock events=4]]' } });
$ev = ws_event($ws);
is_deeply([ $ev->{type}, $ev->{session}{instructions} ], [ 'session.updated', 'be brief ' ],
          'session.update goes up, session.updated comes down');

ws_send($ws, { type => 'conversation.item.create',
               item => { type => 'message', role => 'user',
                         content => [ { type => 'input_text', text => 'one two three' } ] } });
$ev = ws_event($ws);
is($ev->{type}, 'conversation.item.created', 'conversation.item.create is answered');
is($ev->{item}{content}[0]{text}, 'one two three', '... with the item the client sent');

ws_send($ws, { type => 'response.create' });
my $evs = ws_until($ws, 'response.done');
is_deeply([ map { $_->{type} } @$evs ],
          [ 'response.created', ('response.output_text.delta') x 4, 'response.done' ],
          'response.create: response.created, 4 deltas, response.done, in order');
is(join('', map { $_->{delta} // '' } @$evs), 'tok1 tok2 tok3 tok4 ', '... the deltas unchanged');
my $u = $evs->[-1]{response}{usage};
is_deeply([ @$u{qw(input_tokens output_tokens)} ], [ 5, 4 ], '... usage 5 in (2 + 3 words), 4 out');

my $w = wallet($s{user});
# (5 + 4 x 2) x 1 = 13
is($w->{balance}, 10000 - 13, 'the response is charged exactly (5 + 4 x 2) = 13 units');
is($w->{reserved}, 0, '... nothing stays reserved');
my $rows = ledger_rows($w->{id});
is_deeply([ map { [ $_->{kind}, $_->{amount} ] } @$rows ], [ [ 'topup', 10000 ], [ 'consume', -13 ] ],
          '... one consume ledger row');
my $rid1 = $rows->[1]{request_id};
isnt($rid1, $sid, '... under a request id of its own');
my $log = log_row($rid1);
is_deeply([ @$log{qw(cost prompt_tokens completion_tokens model upstream_model status)} ],
          [ 13, 5, 4, $s{model}, "$s{model}-upstream", 200 ],
          '... and one request-log row with the cost and usage');

ws_send($ws, { type => 'response.create' });
$evs = ws_until($ws, 'response.done');
$u = $evs->[-1]{response}{usage};
is_deeply([ @$u{qw(input_tokens output_tokens)} ], [ 9, 4 ],
          'a second response: the conversation grew (5 + 4 earlier output)');
$w = wallet($s{user});
is($w->{balance}, 10000 - 13 - 17, '... charged (9 + 4 x 2) = 17 more');
$rows = ledger_rows($w->{id});
is(scalar(grep { $_->{kind} eq 'consume' } @$rows), 2, '... a second consume row');

ws_send_frame($ws, 9, 'are-you-there');
$ev = ws_event($ws);
is($ev->{pong}, 'are-you-there', 'a ping goes up, its pong comes down');

ws_send_frame($ws, 8, pack('n', 1000) . 'bye');
$ev = ws_event($ws);
is($ev->{close}, 1000, 'a close goes up, the close answer comes down');
ok(!defined ws_event($ws, 5), '... and the connection ends');

my $logs = key_logs($s{key_id}, 3);
is_deeply([ map { [ $_->{status}, $_->{cost} ] } @$logs ], [ [ 101, 0 ], [ 200, 13 ], [ 200, 17 ] ],
          "the key's request log: the session (101, cost 0), then one row per response");
is($logs->[0]{id}, $sid, "... the session's row under its X-Request-Id");

# ---- the browser's way: the key as a subprotocol -------------------------------------
$ws = ws_open("/v1/realtime?model=$s{model}",
              'Sec-WebSocket-Protocol' => "realtime, openai-insecure-api-key.$s{key}");
is($ws->{status}, 101, 'the key as subprotocol openai-insecure-api-key.<key> is accepted');
is($ws->{headers}{'sec-websocket-protocol'}, 'realtime', '... "realtime" chosen, never the key');
# the mock refuses any key subprotocol: a session proves it was not passed on
is(ws_event($ws)->{type}, 'session.created', '... and the key did not travel upstream');
close $ws->{sock};

# ---- refused before the upgrade ------------------------------------------------------
$ws = ws_open("/v1/realtime?model=$s{model}", Authorization => 'Bearer sk-not-a-key');
is($ws->{status}, 401, 'an unknown key: 401 before any upgrade');
ok(!exists $ws->{headers}{upgrade}, '... no Upgrade');
is(eval { decode_json($ws->{body})->{error}{type} }, 'invalid_request_error',
   '... an OpenAI-shaped error');
close $ws->{sock};

$ws = ws_open("/v1/realtime?model=$s{model}");
is($ws->{status}, 401, 'no key at all: 401');
close $ws->{sock};

$ws = ws_open("/v1/realtime", Authorization => "Bearer $s{key}");
is($ws->{status}, 400, 'no model: 400');
close $ws->{sock};

$ws = ws_open("/v1/realtime?model=no-such-model-$$", Authorization => "Bearer $s{key}");
is($ws->{status}, 404, 'a model no channel serves: 404');
close $ws->{sock};

my %p = setup(balance => 100);
$ws = ws_open("/v1/realtime?model=$p{model}", Authorization => "Bearer $p{key}");
is($ws->{status}, 429, 'a balance below a minimal request: 429 before the upgrade');
is(eval { decode_json($ws->{body})->{error}{code} }, 'insufficient_quota',
   '... insufficient_quota');
close $ws->{sock};
is_deeply([ @{ wallet($p{user}) }{qw(balance reserved)} ], [ 100, 0 ], '... nothing charged or held');

# ---- the payer runs dry mid-session --------------------------------------------------
# a hold is (max(prompt, 500) + output x 2): 502 to open, 508 per response here;
# 520 pays the first response (13), then 507 cannot hold the second
my %d = setup(balance => 520);
$ws = ws_open("/v1/realtime?model=$d{model}", Authorization => "Bearer $d{key}");
is($ws->{status}, 101, 'a payer with 520 units opens a session');
ws_event($ws);
ws_send($ws, { type => 'session.update', session => { instructions => 'be brief [[mock events=4]]' } });
ws_event($ws);
ws_send($ws, { type => 'conversation.item.create',
               item => { type => 'message', role => 'user',
                         content => [ { type => 'input_text', text => 'one two three' } ] } });
ws_event($ws);
ws_send($ws, { type => 'response.create' });
ws_until($ws, 'response.done');
is(wallet($d{user})->{balance}, 520 - 13, 'the first response is charged');
ws_send($ws, { type => 'response.create' });
$evs = ws_until($ws, 'response.done');
is($evs->[-1]{type}, 'response.done', 'the second response is delivered');
$ev = ws_event($ws);
is_deeply([ $ev->{type}, $ev->{error}{code} ], [ 'error', 'insufficient_quota' ],
          '... then an "error" event: insufficient_quota');
is(ws_event($ws)->{close}, 1008, '... and a close frame (1008)');
ws_send_frame($ws, 8, pack('n', 1000));
ok(!defined ws_event($ws, 5), '... and the session ends');
$w = wallet($d{user});
is_deeply([ @$w{qw(balance reserved)} ], [ 507, 0 ], '... nothing more charged, nothing held');
$logs = key_logs($d{key_id}, 3);
is_deeply([ map { [ $_->{status}, $_->{cost}, $_->{end_reason} ] } @$logs ],
          [ [ 101, 0, 'session_open' ], [ 200, 13, 'complete' ],
            [ 429, 0, 'insufficient_quota' ] ],
          '... the unpaid response has its row, with its usage and no cost');

# ---- a client that vanishes mid-response ---------------------------------------------
my %g = setup(balance => 10000);
$ws = ws_open("/v1/realtime?model=$g{model}", Authorization => "Bearer $g{key}");
ws_event($ws);
ws_send($ws, { type => 'session.update',
               session => { instructions => 'slow [[mock events=100,delay_ms=50]]' } });
ws_event($ws);
ws_send($ws, { type => 'response.create' });
ws_event($ws);
$ev = ws_event($ws);
is($ev->{type}, 'response.output_text.delta', 'a slow response begins');
close $ws->{sock};
sleep 7;
$w = wallet($g{user});
is_deeply([ @$w{qw(balance reserved)} ], [ 10000, 0 ],
          'the client left mid-response: nothing charged, no hold left');

# ---- an upstream that refuses the upgrade ----------------------------------------------
# a channel on the HTTP mock, which has no /v1/realtime: its 404 is passed on
my %n = setup(balance => 10000);
my $hm = uniq_model('rt-nows');
set_price($hm, model_ratio => '1', completion_ratio => '2');
new_channel(models => [$hm]);
$ws = ws_open("/v1/realtime?model=$hm", Authorization => "Bearer $n{key}");
is($ws->{status}, 404, "an upstream without the Realtime API: its 404, not an upgrade");
is(eval { decode_json($ws->{body})->{error}{type} }, 'invalid_request_error',
   "... with the upstream's error");
close $ws->{sock};
is_deeply([ @{ wallet($n{user}) }{qw(balance reserved)} ], [ 10000, 0 ],
          '... nothing charged, the check hold given back');

# ---- without billing (the nebula_relay vhost): relayed and logged, not charged ----------
my %f = setup(balance => 10000);
$ws = ws_open("/v1/realtime?model=$f{model}", Authorization => "Bearer $f{key}",
              _hostport => NebulaAdmin::relay_hostport());
is($ws->{status}, 101, 'billing off: the session opens');
ws_event($ws);
ws_send($ws, { type => 'response.create' });
$evs = ws_until($ws, 'response.done');
is($evs->[-1]{response}{usage}{output_tokens}, 3, '... a response comes (3 deltas by default)');
ws_send_frame($ws, 8, pack('n', 1000));
ws_event($ws);
close $ws->{sock};
my $fl = key_logs($f{key_id}, 2);
is_deeply([ map { [ $_->{status}, $_->{cost}, $_->{completion_tokens} ] } @$fl ],
          [ [ 101, 0, 0 ], [ 200, 0, 3 ] ], '... one request-log row per response, cost 0');
