# nebulactl verify-ledger and ledger-export against ledgers the running
# server wrote: admin top-ups (POST /api/users/{id}/topup) and requests
# relayed through the billed gateway and settled by mod_nebula_billing. A
# sound ledger verifies; then each kind of tampering done behind the
# server's back (an edited amount, a deleted row, an edited detail, a wrong
# reserved or ledger head) is reported with its account and seq, exit 1, and
# verifies again once undone. The export carries every hashed field exactly:
# the row hashes are recomputed here from it, independently of the C code.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Digest::SHA qw(sha256_hex);
use JSON::PP qw(decode_json encode_json);
use LWP::UserAgent;
use HTTP::Request;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin";
use lib "$FindBin::Bin/../lib";
use AdminT qw(api_ok uniq make_user db_rows db_value db_exec);
use NebulaAdmin ();
use NebulaTest qw(top_dir);

plan tests => 64;

my $ctl = $ENV{NEBULA_CTL} || top_dir() . '/admin/nebulactl/nebulactl';
my $driver = $ENV{NEBULA_TEST_DBD_DRIVER};
my @db = ('--driver', $driver, '--params', $ENV{NEBULA_TEST_DBD_PARAMS});
my $GENESIS = '0' x 64;

# (exit code, stdout, stderr) of nebulactl with @args
sub ctl { return NebulaTest::run_cmd3($ctl, @_) }

sub verify { return ctl('verify-ledger', @_, @db) }

# an SQL literal for the test database's own client
sub lit {
    my ($v) = @_;
    return 'NULL' unless defined $v;
    return $v if $v =~ /^-?\d+$/;
    $v =~ s/'/''/g;
    $v =~ s/\\/\\\\/g if $driver eq 'mysql';
    return "'$v'";
}

my @COLS = qw(id account_id seq kind amount balance_after request_id idem_key actor
              created_at detail prev_hash row_hash);

# the ledger rows of an account, in seq order, as hashes
sub ledger_of {
    my ($acct) = @_;
    my $rows = db_rows('SELECT ' . join(', ', @COLS)
                       . " FROM ledger WHERE account_id = $acct ORDER BY seq");
    return [ map { my %r; @r{@COLS} = @$_; \%r } @$rows ];
}

# the row_hash nebula_ledger.h defines, computed here from scratch
sub row_hash {
    my ($r) = @_;
    return sha256_hex(join("\n", 'nebula-ledger-v1',
        map { $r->{$_} // '' } qw(account_id seq kind amount balance_after request_id
                                  idem_key actor created_at detail prev_hash)));
}

sub topup {
    my ($uid, $amount, $reason) = @_;
    api_ok('POST', "/api/users/$uid/topup", { amount => $amount, reason => $reason },
           expect => 201);
}

sub account_of {
    my ($uid) = @_;
    return db_value("SELECT id FROM accounts WHERE owner_kind = 'user' AND owner_id = $uid");
}

# ---- ledgers made by the server ------------------------------------------
my $tag = uniq('vl');
my $model = "$tag-model";
api_ok('PUT', '/api/billing/prices', { model => $model, model_ratio => 1, completion_ratio => 1 });

my ($ua_, $ub_, $uc_) = map { make_user()->{id} } 1 .. 3;
topup($ua_, 1000000, 'opening balance');
topup($ua_, 250000, 'second');
topup($ua_, 5000, 'third');
topup($ub_, 100000, "b$_") for 1 .. 4;
topup($uc_, 70000, 'first');
topup($uc_, 30000, 'a gift');
topup($uc_, 20000, 'last');
my ($A, $B, $C) = map { account_of($_) } $ua_, $ub_, $uc_;
ok($A && $B && $C, "the top-ups opened three accounts ($A, $B, $C)");

# two requests through the billed gateway, paid from A
NebulaAdmin::new_channel(models => [$model]);
my $key = NebulaAdmin::new_key(user_id => $ua_);
my $billed = NebulaAdmin::hostport_of('nebula_billed');
my $ua = LWP::UserAgent->new(timeout => 30);
for my $n (1, 2) {
    my $req = HTTP::Request->new(POST => "http://$billed/v1/chat/completions");
    $req->header(Authorization => "Bearer $key", 'Content-Type' => 'application/json');
    $req->content(encode_json({ model => $model,
                                messages => [{ role => 'user', content => "ledger call $n" }] }));
    my $res = $ua->request($req);
    is($res->code, 200, "billed request $n: 200") or diag $res->content;
}
my $consumed = 0;
for (1 .. 50) { # settlement may finish just after the response
    $consumed = db_value("SELECT COUNT(*) FROM ledger WHERE account_id = $A AND kind = 'consume'");
    last if $consumed >= 2;
    sleep 0.1;
}
is($consumed, 2, 'both requests were settled into the ledger of A');
my $la = ledger_of($A);
is_deeply([ map { $_->{kind} } @$la ], [ ('topup') x 3, ('consume') x 2 ],
          'A: three top-ups, then two consume rows');
ok(!grep({ $_->{amount} >= 0 || !$_->{request_id} } @$la[3, 4]),
   'the consume rows are debits carrying the request id');

# ---- a sound ledger ------------------------------------------------------
my ($rc, $out, $err) = verify();
is($rc, 0, 'verify-ledger on the whole database: exit 0') or diag "$out$err";
my ($nacc, $nrows) = $out =~ /^verified (\d+) accounts?, (\d+) rows?: OK$/m;
ok($nacc && $nacc >= 3 && $nrows >= 12, "says OK ($nacc accounts, $nrows rows)") or diag $out;
($rc, $out) = verify('--account', $A);
is($rc, 0, '--account A: exit 0');
is($out, "verified 1 account, 5 rows: OK\n", 'one account, its five rows, nothing else');
($rc, $out) = verify('--batch', 2);
is($rc, 0, '--batch 2 (every ledger read two rows at a time): exit 0');
like($out, qr/^verified $nacc accounts, $nrows rows: OK$/m, 'the same totals');
($rc, $out) = verify('--json', '--account', $B);
my $j = eval { decode_json($out) };
is_deeply($j, { problems => [], accounts => 1, rows => 4, ok => JSON::PP::true },
          '--json: ok, no problems') or diag $out;

# ---- tampering 1: an amount edited in place --------------------------------
my $a2 = $la->[1];
db_exec("UPDATE ledger SET amount = amount + 1 WHERE id = $a2->{id}");
($rc, $out) = verify('--account', $A);
is($rc, 1, 'an edited amount: exit 1');
like($out, qr/^account $A seq 2: row_hash mismatch \(row edited\?\)$/m,
     'names account and seq: row_hash mismatch');
like($out, qr/^account $A seq 2: balance_after $a2->{balance_after}, but the previous balance $la->[0]{balance_after} plus the amount @{[ $a2->{amount} + 1 ]} is /m,
     'and the broken running balance of that row');
like($out, qr/^account $A: balance \d+ but the rows sum to \d+$/m, 'and the account balance');
like($out, qr/^verified 1 account, 5 rows: 3 problems$/m, 'three problems, nothing about seq 3..5');
($rc, $out) = verify();
is($rc, 1, 'the whole database: exit 1');
my @lines = grep { !/^verified / } split /\n/, $out;
ok(@lines == 3 && !grep({ !/^account $A[: ]/ } @lines), 'every problem is in account A')
    or diag $out;
($rc, $out) = verify('--json', '--account', $A);
$j = eval { decode_json($out) } || {};
is($rc, 1, '--json: exit 1 too');
ok(!$j->{ok} && (grep { $_->{account} == $A && ($_->{seq} // 0) == 2
                        && $_->{check} eq 'row_hash' } @{ $j->{problems} || [] }),
   '--json: a row_hash problem for account A, seq 2') or diag $out;
db_exec("UPDATE ledger SET amount = amount - 1 WHERE id = $a2->{id}");
($rc, $out) = verify('--account', $A);
is($rc, 0, 'undone: exit 0 again');

# ---- tampering 2: a middle row deleted -----------------------------------
my $lb = ledger_of($B);
my $b2 = $lb->[1];
db_exec("DELETE FROM ledger WHERE id = $b2->{id}");
($rc, $out) = verify('--account', $B);
is($rc, 1, 'a deleted row: exit 1');
like($out, qr/^account $B seq 3: seq 2 is missing \(row deleted\?\)$/m,
     'names account and seq: seq 2 is missing');
like($out, qr/^account $B seq 3: prev_hash is not the row_hash of seq 1 /m, 'the chain is broken at seq 3');
like($out, qr/^account $B seq 3: balance_after /m, 'so is the running balance');
like($out, qr/^account $B: balance 400000 but the rows sum to 300000$/m, 'and the sum');
like($out, qr/^verified 1 account, 3 rows: 4 problems$/m, 'four problems in three rows');
($rc, $out) = verify('--batch', 1, '--account', $B);
like($out, qr/^account $B seq 3: seq 2 is missing/m, 'found the same reading one row at a time');
# put it back exactly (NOT NULL text columns: NULL and '' hash alike)
$b2->{$_} //= '' for qw(idem_key actor);
db_exec('INSERT INTO ledger (' . join(', ', @COLS) . ') VALUES ('
        . join(', ', map { lit($b2->{$_}) } @COLS) . ')');
($rc, $out) = verify('--account', $B);
is($rc, 0, 'the row restored: exit 0') or diag $out;

# ---- tampering 3: a detail edited ------------------------------------------
my $lc = ledger_of($C);
my $c2 = $lc->[1];
like($c2->{detail} // '', qr/a gift/, "the top-up's reason is in its detail");
db_exec("UPDATE ledger SET detail = " . lit('{"reason":"a much bigger gift"}') . " WHERE id = $c2->{id}");
($rc, $out) = verify('--account', $C);
is($rc, 1, 'an edited detail: exit 1');
is($out, "account $C seq 2: row_hash mismatch (row edited?)\n"
         . "verified 1 account, 3 rows: 1 problem\n",
   'exactly one problem: the row_hash of account C seq 2');
db_exec("UPDATE ledger SET detail = " . lit($c2->{detail}) . " WHERE id = $c2->{id}");
($rc, $out) = verify('--account', $C);
is($rc, 0, 'undone: exit 0');

# ---- tampering 4: the account row ------------------------------------------
db_exec("UPDATE accounts SET reserved = reserved + 7 WHERE id = $C");
($rc, $out) = verify('--account', $C);
is($rc, 1, 'reserved without a held reservation: exit 1');
like($out, qr/^account $C: reserved 7 but its held reservations sum to 0$/m, 'says so');
db_exec("UPDATE accounts SET reserved = reserved - 7 WHERE id = $C");
db_exec("UPDATE accounts SET ledger_seq = 2, ledger_hash = " . lit($c2->{row_hash}) . " WHERE id = $C");
($rc, $out) = verify('--account', $C);
is($rc, 1, 'a ledger head that is not the last row: exit 1');
like($out, qr/^account $C: ledger_seq 2 but the last row is seq 3$/m, 'ledger_seq');
like($out, qr/^account $C: ledger_hash is not the row_hash of the last row, seq 3$/m, 'ledger_hash');
db_exec("UPDATE accounts SET ledger_seq = 3, ledger_hash = " . lit($lc->[2]{row_hash}) . " WHERE id = $C");
($rc, $out) = verify();
is($rc, 0, 'everything undone: the whole database verifies');
like($out, qr/^verified $nacc accounts, $nrows rows: OK$/m, 'with the same totals as before');

# ---- ledger-export ---------------------------------------------------------
($rc, $out, $err) = ctl('ledger-export', '--format', 'jsonl', '--account', $A, '--batch', 2, @db);
is($rc, 0, 'ledger-export --format jsonl: exit 0') or diag $err;
my @x = map { decode_json($_) } split /\n/, $out;
is_deeply([ map { $_->{id} } @x ], [ map { $_->{id} } @$la ], 'the rows of A, in id order');
is_deeply([ map { $_->{seq} } @x ], [ 1 .. 5 ], 'seq 1 to 5');
is(scalar(grep { row_hash($_) eq $_->{row_hash} } @x), 5,
   'every row_hash recomputed from the export (Perl SHA-256) matches');
is($x[0]{prev_hash}, $GENESIS, 'the first row links to the genesis hash');
is(scalar(grep { $x[$_]{prev_hash} eq $x[$_ - 1]{row_hash} } 1 .. 4), 4, 'each next row links to the one before');
is_deeply([ @{ $x[1] }{qw(kind amount balance_after)} ], [ 'topup', 250000, 1250000 ],
          'amounts are JSON integers');
is($x[0]{detail}, '{"reason":"opening balance"}', 'detail is the stored JSON text');

($rc, $out) = ctl('ledger-export', '--account', $B, @db);
my @csv = split /\n/, $out;
is($rc, 0, 'ledger-export (csv by default): exit 0');
is($csv[0], join(',', @COLS), 'a header line');
is(scalar @csv, 5, 'and the four rows of B');
# the detail holds quotes and a comma-free JSON text: quoted, quotes doubled
my $b3 = ledger_of($B)->[2];
is($csv[3], join(',', @$b3{qw(id account_id seq kind amount balance_after)}, '',
                 @$b3{qw(idem_key actor created_at)}, '"' . ($b3->{detail} =~ s/"/""/gr) . '"',
                 @$b3{qw(prev_hash row_hash)}),
   'a row as RFC 4180 CSV: empty request_id, the detail quoted');

my ($from, $to) = ($lb->[1]{created_at}, $lb->[3]{created_at});
($rc, $out) = ctl('ledger-export', '--format', 'jsonl', '--account', $B, '--from', $from,
                  '--to', $to, @db);
my $want = db_rows("SELECT id FROM ledger WHERE account_id = $B AND created_at >= $from "
                   . "AND created_at < $to ORDER BY id");
is_deeply([ map { decode_json($_)->{id} } split /\n/, $out ], [ map { $_->[0] } @$want ],
          '--from (inclusive) and --to (exclusive) select by created_at');

($rc, $out) = ctl('ledger-export', '--format', 'csv', @db);
is(scalar(split /\n/, $out) - 1, db_value('SELECT COUNT(*) FROM ledger'),
   'without --account: every row of the ledger');

# ---- usage and database errors: exit 2 -------------------------------------
my $nobody = db_value('SELECT MAX(id) FROM accounts') + 1000;
($rc, $out, $err) = verify('--account', $nobody);
is($rc, 2, 'an account that does not exist: exit 2');
like($err, qr/no account $nobody/, 'says so');
($rc) = verify('--account', 0);
is($rc, 2, '--account 0: exit 2');
($rc) = verify('--format', 'csv');
is($rc, 2, 'an export option: exit 2');
($rc) = verify('surplus');
is($rc, 2, 'a stray argument: exit 2');
($rc, $out, $err) = ctl('verify-ledger', '--driver', 'sqlite3', '--params',
                        '/nonexistent-dir/nebula.db');
is($rc, 2, 'a database that cannot be opened: exit 2');
($rc) = ctl('ledger-export', '--format', 'xml', @db);
is($rc, 2, 'ledger-export --format xml: exit 2');
($rc, $out) = ctl('help');
like($out, qr/verify-ledger.*ledger-export/s, 'help lists both commands');
