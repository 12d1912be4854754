# Protocol abuse on raw sockets against the billed gateway (nebula_billed:
# RequestReadTimeout header=5-10 body=5, LimitRequestFields 100,
# LimitRequestBody 8 MiB, NebulaMaxBodySize 1 MiB): slow headers and
# bodies, absurd Content-Lengths, TE+CL smuggling, chunk-size overflow, bare
# LF, obs-fold, 10 000 headers, a 100 MB body. Each is refused (its status
# line) or closed within its bound; after each the server still answers a
# probe, and nothing reached the upstream or the user's balance: no mock
# record, nothing reserved, no ledger row, no request-log row but refusals.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use JSON::PP qw(encode_json decode_json);
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(api admin mock_records);
use NebulaBilling qw(billed_hostport billed_setup billed_chat wallet ledger_rows);

$SIG{PIPE} = 'IGNORE';

my %s = billed_setup(name => 'abuse', balance => 1000000);      # the cases' user
my %p = billed_setup(name => 'abuse-probe', balance => 1000000); # the probe's
my $hp = billed_hostport();
my $acct = wallet($s{user})->{id};
my $ledger0 = scalar @{ ledger_rows($acct) };
# a request refused before billing when it is read at all (400 invalid_model)
my $decoy = encode_json({ model => 'no such model', messages => [{ role => 'user', content => 'x' }] });
my $chat = encode_json({ model => $s{model}, messages => [{ role => 'user', content => 'hi' }] });
my $auth = "Authorization: Bearer $s{key}\r\nContent-Type: application/json\r\n";
my $probes = 0;

my @cases = (
    [ 'slow headers',          \&slow_headers ],
    [ 'slow body',             \&slow_body ],
    [ 'Content-Length 2^31',   sub { announced('2147483648') } ],
    [ 'Content-Length 2^63',   sub { announced('9223372036854775808') } ],
    [ 'Content-Length -1',     sub { announced('-1') } ],
    [ 'CL larger than body',   \&short_body ],
    [ 'TE and CL',             \&te_and_cl ],
    [ 'TE chunked, identity',  \&te_not_last ],
    [ 'chunk-size overflow',   \&chunk_overflow ],
    [ 'bare LF chunks',        \&bare_lf_chunks ],
    [ 'bare LF headers',       \&bare_lf_headers ],
    [ 'obs-fold',              \&obs_fold ],
    [ '10 000 headers',        \&many_headers ],
    [ '100 MB announced',      \&huge_announced ],
    [ '100 MB streamed',       \&huge_streamed ],
);
# per case: its own checks (3), probe, no record, nothing reserved
plan tests => 6 * @cases + 4 + 4;

# ---- raw HTTP --------------------------------------------------------------

sub connect_gw {
    my $sock = IO::Socket::INET->new(PeerAddr => $hp, Timeout => 10) or die "connect $hp: $!";
    return $sock;
}

# Write all of $data (or as much as the server takes before it closes).
sub put {
    my ($sock, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        return $off if !defined $n;
        $off += $n;
    }
    return $off;
}

# Read until the server closes (or $limit s): {status, head, body, raw, eof}
sub answer {
    my ($sock, $limit) = @_;
    my $sel = IO::Select->new($sock);
    my $raw = '';
    my $eof = 0;
    my $end = time + ($limit // 15);
    while (time < $end) {
        next unless $sel->can_read(0.2);
        my $n = sysread($sock, my $buf, 65536);
        if (!$n) { $eof = 1; last }
        $raw .= $buf;
    }
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($raw =~ m{^HTTP/1\.\d (\d{3})});
    return { status => $status // 0, head => $head // '', body => $body // '', raw => $raw,
             eof => $eof };
}

# Send $data a byte every $gap s until the server answers or closes;
# returns the seconds it took.
sub trickle {
    my ($sock, $data, $gap, $limit) = @_;
    my $sel = IO::Select->new($sock);
    my $t0 = time;
    for (my $i = 0; time - $t0 < $limit; ++$i) {
        last if $i < length($data) && !defined syswrite($sock, substr($data, $i, 1));
        last if $sel->can_read($gap);
    }
    return time - $t0;
}

sub err_code {
    my ($a) = @_;
    my $j = eval { decode_json($a->{body}) } || {};
    return ($j->{error} || {})->{code} // '';
}

# ---- the cases: each returns 3 results (ok, name) --------------------------

# The request line at once, then the headers a byte a second: 408 once the
# header timeout is over. (A request line itself that slow gets no answer
# at all: httpd logs the 408 and closes.)
sub slow_headers {
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
    my $took = trickle($sock, $auth . "X-Slow: " . ('s' x 200) . "\r\n", 1, 20);
    my $a = answer($sock, 5);
    return ([ $a->{status} == 408, "408 (got $a->{status})" ],
            [ $took >= 4 && $took < 10.5, sprintf('cut after the header timeout (%.1fs)', $took) ],
            [ $a->{eof}, 'the connection is closed' ]);
}

sub slow_body {
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Length: " . length($chat) . "\r\n\r\n");
    my $took = trickle($sock, $chat, 1, 20);
    my $a = answer($sock, 5);
    return ([ $a->{status} == 408, "408 (got $a->{status})" ],
            [ $took >= 4 && $took < 10.5, sprintf('cut after the body timeout (%.1fs)', $took) ],
            [ $a->{eof}, 'the connection is closed' ]);
}

sub short_body {
    my $sock = connect_gw();
    my $t0 = time;
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Length: 0100000\r\n\r\n" . substr($chat, 0, 10));
    my $a = answer($sock, 15);
    my $took = time - $t0;
    return ([ $a->{status} == 408, "408 (got $a->{status})" ],
            [ $took >= 4 && $took < 10.5, sprintf('cut after the body timeout (%.1fs)', $took) ],
            [ $a->{eof}, 'the connection is closed' ]);
}

# A Content-Length and a short body: refused from the header, at once.
sub announced {
    my ($cl) = @_;
    my $sock = connect_gw();
    my $t0 = time;
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Length: $cl\r\n\r\n$chat");
    my $a = answer($sock, 10);
    my $want = $cl =~ /^\d+$/ && length($cl) < 19 ? 413 : 400;
    return ([ $a->{status} == $want, "$want (got $a->{status} " . err_code($a) . ')' ],
            [ time - $t0 < 3 && $a->{eof}, 'at once, and closed' ],
            [ $a->{head} =~ /^Connection: close\r?$/mi, 'announcing the close' ]);
}

# Chunked framing with a Content-Length too: httpd drops the Content-Length,
# reads the chunks and closes the connection after its answer, so the
# request smuggled behind the chunks (a billable chat) never runs.
sub te_and_cl {
    my $smuggled = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Length: " . length($chat) . "\r\n\r\n$chat";
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $decoy, $decoy) . $smuggled);
    my $a = answer($sock, 10);
    my $answers = () = $a->{raw} =~ m{^HTTP/1\.\d \d{3}}mg;
    return ([ $a->{status} == 400 && err_code($a) eq 'invalid_model',
              "the chunked body was read: 400 invalid_model (got $a->{status} " . err_code($a) . ')' ],
            [ $answers == 1, "one answer, not two ($answers)" ],
            [ $a->{eof}, 'the connection is closed' ]);
}

sub te_not_last {
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Transfer-Encoding: chunked, identity\r\n\r\n"
        . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $chat, $chat));
    my $a = answer($sock, 10);
    my $answers = () = $a->{raw} =~ m{^HTTP/1\.\d \d{3}}mg;
    return ([ $a->{status} == 400, "400 (got $a->{status})" ],
            [ $answers == 1, 'one answer' ], [ $a->{eof}, 'the connection is closed' ]);
}

sub chunk_overflow {
    my $sock = connect_gw();
    my $t0 = time;
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n$chat\r\n0\r\n\r\n");
    my $a = answer($sock, 10);
    return ([ $a->{status} == 413 || $a->{status} == 400, "400/413 (got $a->{status})" ],
            [ time - $t0 < 3, 'at once' ], [ $a->{eof}, 'the connection is closed' ]);
}

sub bare_lf_chunks {
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Transfer-Encoding: chunked\r\n\r\n" . sprintf("%x\n%s\n0\n\n", length $chat, $chat));
    my $a = answer($sock, 10);
    return ([ $a->{status} == 400, "400 (got $a->{status})" ],
            [ $a->{raw} !~ /chat\.completion/, 'nothing answered from upstream' ],
            [ $a->{eof}, 'the connection is closed' ]);
}

# Bare LF line ends, on the decoy: refused by httpd, or read as the same
# request with CRLF would be (400 invalid_model): never an upstream call.
sub bare_lf_headers {
    my $sock = connect_gw();
    (my $h = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth") =~ s/\r\n/\n/g;
    put($sock, $h . "Connection: close\nContent-Length: " . length($decoy) . "\n\n$decoy");
    my $a = answer($sock, 10);
    my $answers = () = $a->{raw} =~ m{^HTTP/1\.\d \d{3}}mg;
    return ([ $a->{status} == 400, "400 (got $a->{status} " . err_code($a) . ')' ],
            [ $answers == 1, 'one answer' ], [ $a->{eof}, 'the connection is closed' ]);
}

# A continuation line (obs-fold) holding the credential: refused (400), or
# unfolded into X-Fold's value (401): never read as an Authorization header.
sub obs_fold {
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fold: a\r\n"
        . " Authorization: Bearer $s{key}\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($chat) . "\r\n\r\n$chat");
    my $a = answer($sock, 10);
    return ([ $a->{status} == 400 || $a->{status} == 401, "400 or 401 (got $a->{status})" ],
            [ $a->{raw} !~ /chat\.completion/, 'nothing answered from upstream' ],
            [ $a->{eof}, 'answered and closed' ]);
}

sub many_headers {
    my $sock = connect_gw();
    my $t0 = time;
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . join('', map { "X-H$_: $_\r\n" } 1 .. 10000)
        . "Content-Length: " . length($chat) . "\r\n\r\n$chat");
    my $a = answer($sock, 10);
    return ([ $a->{status} == 400 || $a->{status} == 431, "400/431 (got $a->{status})" ],
            [ time - $t0 < 5, 'at once' ], [ $a->{eof}, 'the connection is closed' ]);
}

sub huge_announced {
    my $sock = connect_gw();
    my $t0 = time;
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Length: 104857600\r\n\r\n" . ('x' x 65536));
    my $a = answer($sock, 10);
    return ([ $a->{status} == 413, "413 (got $a->{status})" ],
            [ err_code($a) eq 'request_too_large', 'OpenAI-shaped request_too_large' ],
            [ time - $t0 < 3 && $a->{eof}, 'at once, and closed' ]);
}

# 100 MB in 1 MiB chunks, stopping as soon as the server answers: refused
# at NebulaMaxBodySize, long before the end.
sub huge_streamed {
    my $sock = connect_gw();
    my $sel = IO::Select->new($sock);
    my $t0 = time;
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n$auth"
        . "Transfer-Encoding: chunked\r\n\r\n");
    my $chunk = sprintf("%x\r\n%s\r\n", 1 << 20, 'x' x (1 << 20));
    my ($buf, $sent) = ('', 0);
    $sock->blocking(0);
    while ($sent < 100 * (1 << 20) && time - $t0 < 30) {
        last if $sel->can_read(0);
        $buf = $chunk if $buf eq '';
        my $n = syswrite($sock, $buf);
        if (!defined $n) {
            last unless $!{EAGAIN} || $!{EWOULDBLOCK};
            IO::Select->new($sock)->can_write(0.1);
            next;
        }
        $sent += $n;
        substr($buf, 0, $n) = '';
    }
    $sock->blocking(1);
    my $a = answer($sock, 10);
    t_debug(sprintf('sent %.1f MiB in %.1fs', $sent / (1 << 20), time - $t0));
    return ([ $a->{status} == 413, "413 (got $a->{status})" ],
            [ $sent < 40 * (1 << 20), sprintf('refused long before 100 MB (%.1f MiB sent)', $sent / (1 << 20)) ],
            [ err_code($a) eq 'request_too_large', 'OpenAI-shaped request_too_large' ]);
}

# ---- run -------------------------------------------------------------------

for my $c (@cases) {
    my ($name, $fn) = @$c;
    my @r = $fn->();
    ok($_->[0], "$name: $_->[1]") for @r;
    my $t0 = time;
    my $res = billed_chat($p{key}, { model => $p{model}, messages => [{ role => 'user', content => 'hi' }] });
    $probes++ if $res->code == 200;
    ok($res->code == 200 && time - $t0 < 10, "$name: the server still answers (" . $res->code . ')');
    is(scalar @{ mock_records($s{tag}) }, 0, "$name: no upstream call");
    my $w = admin('GET', "/api/users/$s{user}/account");   # as it is, not once settled
    is(($w->{data} // $w)->{reserved}, 0, "$name: nothing reserved");
}

# CVE-2009-1890's shape: "Content-Length: 0100000" is 100 000 decimal; the
# body sent in two halves with a pause is read whole and relayed once.
{
    my $pad = 100000 - length(encode_json({ model => $p{model}, user => '',
                                            messages => [{ role => 'user', content => 'hi' }] }));
    my $body = encode_json({ model => $p{model}, user => 'u' x $pad,
                             messages => [{ role => 'user', content => 'hi' }] });
    my $before = scalar @{ mock_records($p{tag}) };
    my $sock = connect_gw();
    put($sock, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Authorization: Bearer $p{key}\r\nContent-Type: application/json\r\n"
        . "Content-Length: 0100000\r\n\r\n" . substr($body, 0, 50000));
    sleep 1;
    put($sock, substr($body, 50000));
    my $a = answer($sock, 15);
    is(length($body), 100000, 'the body is 100 000 bytes');
    is($a->{status}, 200, 'Content-Length 0100000 (decimal) and a paused body: 200');
    my $recs = mock_records($p{tag});
    is(scalar @$recs, $before + 1, '... relayed once');
    is(length($recs->[-1]{body} // ''), 100000, '... with the whole body');
}

# In the end: the user's account untouched; request-log rows only refusals.
{
    sleep 1;
    my $w = wallet($s{user});
    is($w->{reserved}, 0, 'nothing reserved in the end');
    is(scalar @{ ledger_rows($acct) }, $ledger0, 'no ledger row but the funding');
    my ($code, $d) = api('GET', "/api/logs?key_id=$s{key_id}&per_page=100");
    my @served = grep { $_->{status} < 400 || $_->{cost} || ($_->{end_reason} // '') ne 'refused' }
                 @{ $d->{data} || [] };
    is(scalar @served, 0, 'no request-log row but refusals (end_reason refused, cost 0)')
        or diag explain \@served;
    is($probes, scalar @cases, 'every probe answered 200');
}
