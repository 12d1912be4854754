# /api/billing/ledger (filters, newest first, pages), its export as CSV and
# JSON lines (every matching row, oldest first, across several batches of
# 500, properly quoted), and /api/billing/reconcile (accounts against their
# ledger rows and open holds; a tampered balance is reported).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq make_user db_value db_exec);
use NebulaBilling qw(billed_setup billed_chat);

plan tests => 49;

my $tag = uniq('l');
my $u = make_user();
my $reason = 'bonus, "vip" client';            # a comma and quotes: CSV must quote it
my @posted;
for my $p ([ 'topup', 1000 ], [ 'adjust', -200 ], [ 'topup', 300 ]) {
    my $acct = @posted ? $posted[0]{account}{id} : undef;
    my $path = $acct ? "/api/billing/accounts/$acct/$p->[0]" : "/api/users/$u->{id}/topup";
    push @posted, api_ok('POST', $path, { amount => $p->[1], reason => $reason });
    sleep 0.005;                                 # distinct created_at
}
my $A = $posted[0]{account}{id};
my @E = map { $_->{entry} } @posted;
sub ids { [ map { $_->{id} } @{ $_[0]{data} } ] }

# ---- the list ---------------------------------------------------------------
my ($res, $j) = api('GET', "/api/billing/ledger?account_id=$A");
is($res->code, 200, 'list: 200');
is($j->{total}, 3, 'three rows of the account');
is_deeply(ids($j), [ map { $_->{id} } reverse @E ], 'newest first');
my $r = $j->{data}[2];
is_deeply([ @$r{qw(account_id seq kind amount balance_after actor)} ],
          [ $A, 1, 'topup', 1000, 1000, 'root' ], 'the first row');
is_deeply($r->{detail}, { reason => $reason }, 'detail as JSON');
is_deeply([ map { $_->{seq} } @{ $j->{data} } ], [ 3, 2, 1 ], 'seq');
is($j->{data}[1]{prev_hash}, $r->{row_hash}, 'each row chains to the previous one');
($res, $j) = api('GET', "/api/billing/ledger?account_id=$A&kind=topup");
is_deeply(ids($j), [ $E[2]{id}, $E[0]{id} ], 'kind=topup');
($res, $j) = api('GET', "/api/billing/ledger?account_id=$A&kind=adjustment");
is_deeply(ids($j), [ $E[1]{id} ], 'kind=adjustment');
($res, $j) = api('GET', "/api/billing/ledger?account_id=$A&from=$E[1]{created_at}");
is_deeply(ids($j), [ $E[2]{id}, $E[1]{id} ], 'from is inclusive');
($res, $j) = api('GET', "/api/billing/ledger?account_id=$A&to=$E[1]{created_at}");
is_deeply(ids($j), [ $E[0]{id} ], 'to is exclusive');
($res, $j) = api('GET', "/api/billing/ledger?account_id=$A&per_page=2&page=2");
is_deeply([ $j->{total}, @{ ids($j) } ], [ 3, $E[0]{id} ], 'page 2 of 2 per page');
for my $q ('kind=gift', 'account_id=0', 'from=5&to=4', 'request_id=' . ('x' x 65), 'seq=1') {
    ($res) = api('GET', "/api/billing/ledger?$q");
    is($res->code, 400, "ledger with $q: 400");
}

# a relayed request's consume row carries its request id
my %s = billed_setup(name => "$tag-rq", balance => 5000,
                     price => { model_ratio => '1', completion_ratio => '1' });
$res = billed_chat($s{key}, { model => $s{model}, messages => [ { role => 'user', content => 'hi' } ] });
my $rid = $res->header('X-Request-Id');
ok($res->code == 200 && $rid, 'a billed request (for its consume row)');
($res, $j) = api('GET', "/api/billing/ledger?request_id=$rid");
is_deeply([ $j->{total}, $j->{data}[0]{kind}, $j->{data}[0]{request_id} ], [ 1, 'consume', $rid ],
          'request_id finds its row');
($res, $j) = api('GET', "/api/billing/ledger?request_id=$rid&account_id=$A");
is($j->{total}, 0, 'filters combine');

# ---- export -----------------------------------------------------------------
sub csv_fields {
    my ($line) = @_;
    my @f;
    while ($line =~ /\G(?:"((?:[^"]|"")*)"|([^,"]*))(,|\z)/gc) {
        my ($quoted, $plain, $sep) = ($1, $2, $3);
        push @f, defined $quoted ? ($quoted =~ s/""/"/gr) : $plain;
        last if $sep eq '';
    }
    return \@f;
}
my @cols = qw(id account_id seq kind amount balance_after request_id idem_key actor created_at
              detail prev_hash row_hash);
($res) = api('GET', "/api/billing/ledger/export?format=csv&account_id=$A");
is($res->code, 200, 'CSV export: 200');
like($res->header('Content-Type'), qr{^text/csv}, 'Content-Type text/csv');
like($res->header('Content-Disposition') // '', qr/^attachment; filename="ledger\.csv"$/,
     'Content-Disposition attachment');
my @lines = split /\r\n/, $res->content, -1;
is(pop @lines, '', 'every line ends with CRLF');
is($lines[0], join(',', @cols), 'the header line');
is(scalar @lines, 4, 'the header and three rows');
($res, $j) = api('GET', "/api/billing/ledger?account_id=$A");
my @want = reverse @{ $j->{data} };              # oldest first
for my $i (1 .. 3) {
    my $w = $want[ $i - 1 ];
    my %got;
    @got{@cols} = @{ csv_fields($lines[$i]) };
    is_deeply([ @got{qw(id account_id seq kind amount balance_after idem_key actor created_at
                        prev_hash row_hash)} ],
              [ @$w{qw(id account_id seq kind amount balance_after idem_key actor created_at
                       prev_hash row_hash)} ], "CSV row $i: the row's values, in id order");
    is_deeply(decode_json($got{detail}), $w->{detail}, "CSV row $i: detail unquoted back to its JSON");
}
like($lines[1], qr/,"\{""reason"":""bonus, \\""vip\\"" client""\}",/,
     'detail quoted, its quotes doubled');

($res) = api('GET', "/api/billing/ledger/export?format=jsonl&account_id=$A&kind=topup");
is($res->header('Content-Type'), 'application/x-ndjson', 'JSON lines: application/x-ndjson');
like($res->header('Content-Disposition') // '', qr/filename="ledger\.jsonl"/, 'attachment .jsonl');
@lines = split /\n/, $res->content;
is_deeply([ map { decode_json($_) } @lines ], [ grep { $_->{kind} eq 'topup' } @want ],
          'one JSON object a line: the filtered rows as the list shows them, oldest first');
like($res->content, qr/\n\z/, 'the last line ends with a newline');

# an export longer than a batch: 1000 rows, exactly two batches of 500
my $big = make_user();
my $B = api_ok('POST', "/api/users/$big->{id}/topup", { amount => 1, reason => 'row 1' })->{account}{id};
api_ok('POST', "/api/billing/accounts/$B/topup", { amount => 1, reason => "row $_" }) for 2 .. 1000;
($res) = api('GET', "/api/billing/ledger/export?format=jsonl&account_id=$B");
my @big = map { decode_json($_) } split /\n/, $res->content;
is(scalar @big, 1000, 'all 1000 rows');
is_deeply([ map { $_->{seq} } @big ], [ 1 .. 1000 ], 'in order, none twice, none missing');
is_deeply([ map { $_->{balance_after} } @big[ 499, 500, 999 ] ], [ 500, 501, 1000 ],
          'across the batch boundary');
($res) = api('GET', "/api/billing/ledger/export?account_id=$B&from=$big[600]{created_at}");
@lines = split /\r\n/, $res->content;
is(scalar(@lines) - 1, scalar(grep { $_->{created_at} >= $big[600]{created_at} } @big),
   'CSV is the default format; filters apply to the export');
($res) = api('GET', '/api/billing/ledger/export?format=xml');
is($res->code, 400, 'format=xml: 400');
($res) = api('GET', '/api/billing/ledger/export?page=2');
is($res->code, 400, 'the export has no pages: 400');

# ---- reconciliation -----------------------------------------------------------
($res, $j) = api('GET', '/api/billing/reconcile');
is($res->code, 200, 'reconcile: 200');
my $rc = $j->{data};
ok($rc->{accounts_checked} >= 3, 'accounts_checked counts the accounts');
is_deeply([ $rc->{ok}, $rc->{mismatches} ], [ JSON::PP::true, [] ],
          'a clean database: ok, no mismatches')
    or diag(JSON::PP->new->canonical->encode($rc));
db_exec("UPDATE accounts SET balance = balance + 7 WHERE id = $A");   # tamper, then restore
($res, $j) = api('GET', '/api/billing/reconcile');
my ($m) = grep { $_->{account_id} == $A } @{ $j->{data}{mismatches} };
ok(!$j->{data}{ok}, 'a tampered balance: ok false');
is_deeply($m, { account_id => $A, balance => 1107, ledger_sum => 1100, reserved => 0,
                held_sum => 0, ledger_seq => 3, ledger_rows => 3 }, 'the account and its sums');
db_exec("UPDATE accounts SET balance = balance - 7 WHERE id = $A");
($res, $j) = api('GET', '/api/billing/reconcile');
ok(!grep({ $_->{account_id} == $A } @{ $j->{data}{mismatches} }), 'restored: no longer listed');
