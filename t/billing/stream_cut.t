# A stream that outgrows its hold: the hold grows while the payer can cover
# it; when it cannot, the stream is cut with a clear final event and the
# balance stays within its overdraft limit.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json encode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin);
use NebulaBilling qw(billed_chat wallet ledger_rows billed_setup reconcile);

plan tests => 9;

# NebulaReserveMaxOutput 1000 on the billed vhost: without max_tokens a
# request holds 500 (prompt floor) + 1000 tokens. These streams produce 2000.
my $EVENTS = 2000;
my $body = sub {
    encode_json({ model => $_[0], stream => JSON::PP::true,
                  messages => [ { role => 'user', content => 'go on' } ] });
};

# ---- enough balance: the hold grows, the whole answer is billed ------------------
my %r = billed_setup(name => 'grow', balance => 100000, controls => "events=$EVENTS");
my $res = billed_chat($r{key}, $body->($r{model}));
is($res->code, 200, 'a long stream is served');
like($res->content, qr/data: \[DONE\]\s*$/, '... to the end');
my $w = wallet($r{user});
is($w->{balance}, 100000 - (2 + $EVENTS), '... and billed its whole usage, past the first hold');
is($w->{reserved}, 0, '... nothing left held');

# ---- not enough: cut with a final error event ---------------------------------------
my %c = billed_setup(name => 'cut', balance => 1600, controls => "events=$EVENTS");
$res = billed_chat($c{key}, $body->($c{model}));
is($res->code, 200, 'a stream the balance cannot cover starts');
my @events = $res->content =~ /^data: (.*)$/mg;
my $last = decode_json($events[-1]);
is($last->{error}{code}, 'insufficient_quota', 'it ends with an insufficient_quota error event');
unlike($res->content, qr/\[DONE\]/, '... and no [DONE]');
$w = wallet($c{user});
ok($w->{balance} >= 0 && $w->{balance} < 1600, "charged what was delivered, never below zero ($w->{balance})");
ok(reconcile()->{ok}, 'reconciliation is clean');
