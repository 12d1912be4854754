# Client Idempotency-Key on relay requests: one charge per key, the stored
# outcome replayed byte for byte, 409 while the first is running, 422 for a
# different body, failures that cost nothing not kept, keys scoped per account.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin mock_records new_user new_key);
use NebulaBilling qw(billed_chat wallet ledger_rows billed_setup topup);

plan tests => 22;

sub body { encode_json({ model => $_[0], messages => [ { role => 'user', content => $_[1] } ], @_[2 .. $#_] }) }

sub consumes {
    NebulaBilling::settled("/api/billing/accounts/$_[0]");   # no hold left
    return scalar grep { $_->{kind} eq 'consume' } @{ ledger_rows($_[0]) };
}

my %s = billed_setup(name => 'idem', balance => 1000000);
my $acct = wallet($s{user})->{id};

# ---- 100 sequential replays: one charge ---------------------------------------
my $b1 = body($s{model}, 'same question');
my $first = billed_chat($s{key}, $b1, 'Idempotency-Key' => "seq-$$");
is($first->code, 200, 'the first request with a key is served');
my ($same, $replayed) = (0, 0);
for (1 .. 99) {
    my $r = billed_chat($s{key}, $b1, 'Idempotency-Key' => "seq-$$");
    $same++ if $r->code == 200 && $r->content eq $first->content;
    $replayed++ if ($r->header('Idempotent-Replayed') // '') eq 'true';
}
is($same, 99, '99 replays answer the same status and body, byte for byte');
is($replayed, 99, '... each marked Idempotent-Replayed: true');
is(scalar @{ mock_records($s{tag}) }, 1, 'the upstream was called once');
is(consumes($acct), 1, 'exactly one charge');

# ---- the same key with another body: 422 ---------------------------------------
my $r = billed_chat($s{key}, body($s{model}, 'another question'), 'Idempotency-Key' => "seq-$$");
is($r->code, 422, 'the key reused with a different body: 422');
is(decode_json($r->content)->{error}{code}, 'idempotency_key_reused', '... idempotency_key_reused');
is(consumes($acct), 1, '... nothing charged');

# ---- 20 concurrent: one runs, the others 409 or the replay -----------------------
my %c = billed_setup(name => 'idemc', balance => 1000000, controls => 'header_delay_ms=400');
my $cacct = wallet($c{user})->{id};
my $b2 = body($c{model}, 'concurrent question');
my $ckey = "conc-$$";
my %kid;
for my $i (1 .. 20) {
    pipe(my $rd, my $wr) or die;
    my $pid = fork() // die;
    if (!$pid) {
        close $rd;
        my $res = billed_chat($c{key}, $b2, 'Idempotency-Key' => $ckey);
        my $tag = $res->code;
        $tag .= ':replay' if ($res->header('Idempotent-Replayed') // '') eq 'true';
        $tag .= ':' . (eval { decode_json($res->content)->{error}{code} } // '') if $res->code == 409;
        print $wr $tag;
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    $kid{$pid} = $rd;
}
my %out;
for my $pid (keys %kid) {
    my $fh = $kid{$pid};
    my $t = do { local $/; <$fh> } // '';
    waitpid($pid, 0);
    $out{$t}++;
}
t_debug(encode_json(\%out));
is($out{200} // 0, 1, 'of 20 concurrent requests with one key, exactly one ran');
is(($out{200} // 0) + ($out{'200:replay'} // 0) + ($out{'409:idempotency_key_in_use'} // 0), 20,
   'the others got 409 idempotency_key_in_use or the replay') or diag(encode_json(\%out));
is(scalar @{ mock_records($c{tag}) }, 1, 'the upstream was called once');
is(consumes($cacct), 1, 'exactly one charge');
$r = billed_chat($c{key}, $b2, 'Idempotency-Key' => $ckey);
is(($r->header('Idempotent-Replayed') // '') . $r->code, 'true200', 'afterwards it is replayed');

# ---- streams are replayed too ------------------------------------------------------
my $b3 = body($s{model}, 'stream me', stream => JSON::PP::true);
my $s1 = billed_chat($s{key}, $b3, 'Idempotency-Key' => "stream-$$");
my $s2 = billed_chat($s{key}, $b3, 'Idempotency-Key' => "stream-$$");
like($s1->content, qr/data: \[DONE\]/, 'a stream with a key is served');
is($s2->content, $s1->content, 'its replay is the same event stream');
like($s2->header('Content-Type') // '', qr{^text/event-stream}, '... with its content type');

# ---- a failure that cost nothing is not kept: the client may retry -----------------
my %f = billed_setup(name => 'idemf', balance => 1000000, controls => 'fail_first=1,status=500');
# one body, sent twice: two encode_json() calls may order the keys apart
# (Perl randomises each hash's order), which is another request (422)
my $bf = body($f{model}, 'try');
$r = billed_chat($f{key}, $bf, 'Idempotency-Key' => "fail-$$");
is($r->code, 500, 'the upstream fails: 500');
$r = billed_chat($f{key}, $bf, 'Idempotency-Key' => "fail-$$");
is($r->code . ($r->header('Idempotent-Replayed') // ''), '200', 'the retry with the same key runs again and succeeds');

# ---- keys are scoped per account ----------------------------------------------------
my $u2 = new_user();
topup($u2, 1000000);
my $k2 = new_key(user_id => $u2);
$r = billed_chat($k2, $b1, 'Idempotency-Key' => "seq-$$");
is($r->code . ($r->header('Idempotent-Replayed') // ''), '200',
   "another account's identical key is its own: served, not replayed");
is(consumes(wallet($u2)->{id}), 1, '... and charged to that account');

# ---- a bad key ---------------------------------------------------------------------
$r = billed_chat($s{key}, $b1, 'Idempotency-Key' => 'x' x 300);
is($r->code, 400, 'a key longer than 255 characters: 400');
is(decode_json($r->content)->{error}{code}, 'invalid_idempotency_key', '... invalid_idempotency_key');
