# Top-up by payment (docs/payments.md): Stripe Checkout and EPay against the
# mock provider (t/c-modules/nebula_mock, vhost nebula_paymock), which takes
# the Checkout Session / submit.php calls and delivers the signed webhook and
# notify back to nebula_payadmin exactly as the providers sign them; every
# signature is also checked here in Perl. Each paid order is one ledger row,
# however often (or concurrently) its notification arrives.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api_ok uniq db_rows db_value make_user);
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use HTTP::Request;
use Digest::SHA qw(hmac_sha256_hex);
use Digest::MD5 qw(md5_hex);
use URI::Escape qw(uri_unescape);

plan tests => 91;

use constant WHSEC    => 'whsec_nebula_test_0123456789abcdef';
use constant SK       => 'sk_test_nebula_0123456789abcdef';
use constant EPAY_KEY => 'nebula-test-epay-key-0123456789';
use constant RATE     => 500000;

sub base_of {
    Apache::TestRequest::module($_[0]);
    # the addresses httpd.conf names (payments.conf.in)
    (my $b = 'http://' . Apache::TestRequest::hostport()) =~ s/localhost/127.0.0.1/;
    Apache::TestRequest::module('default');
    return $b;
}
my $PAY  = base_of('nebula_payadmin');
my $MOCK = base_of('nebula_paymock');
my $ua   = LWP::UserAgent->new(timeout => 120, max_redirect => 0);

# call(METHOD, URL, BODY (ref: JSON, text: raw), token, headers) -> (res, json)
sub call {
    my ($method, $url, $body, $token, %h) = @_;
    my $req = HTTP::Request->new($method, $url);
    $req->header(Authorization => "Bearer $token") if $token;
    if (defined $body) {
        $req->content(ref $body ? encode_json($body) : $body);
        $req->header('Content-Type' => ref $body ? 'application/json' : ($h{type} // 'application/json'));
    }
    delete $h{type};
    $req->header('Content-Length' => length($req->content // ''));
    $req->header($_ => $h{$_}) for keys %h;
    my $res = LWP::UserAgent->new(timeout => 120, max_redirect => 0)->request($req);
    return ($res, eval { decode_json($res->content) });
}
sub root { return call($_[0], "$PAY$_[1]", $_[2], AdminT::ROOT_TOKEN) }

sub query_params {
    my ($q) = @_;
    return { map { my ($k, $v) = split /=/, $_, 2; (uri_unescape($k) => uri_unescape($v // '')) }
             split /&/, $q };
}
sub epay_sign {
    my ($p, $key) = @_;
    my $s = join '&', map { "$_=$p->{$_}" }
        sort grep { $_ ne 'sign' && $_ ne 'sign_type' && length($p->{$_} // '') } keys %$p;
    return md5_hex($s . $key);
}
sub ledger_of {
    my ($key) = @_;
    return db_rows("SELECT COUNT(*), COALESCE(SUM(amount), 0), MAX(id) FROM ledger "
                   . "WHERE idem_key = '$key'")->[0];
}
sub token_of { return api_ok('POST', "/api/users/$_[0]/access-token")->{access_token} }
sub mock_last { my ($r, $j) = call('GET', "$MOCK/_mock/records?last=1"); return $j->[0] }

my $tag = uniq('pay');
my $ua_a = make_user(username => "$tag-a");
my $ua_b = make_user(username => "$tag-b");
my $ua_c = make_user(username => "$tag-c");
my ($ta, $tb, $tc) = map { token_of($_->{id}) } $ua_a, $ua_b, $ua_c;

# ---- Stripe: the Checkout Session ------------------------------------------
my ($res, $j) = call('POST', "$PAY/api/self/topup/stripe", { amount => 10 }, $ta);
is($res->code, 200, 'POST /api/self/topup/stripe 200') or diag $res->content;
my $o = $j->{data}{order};
my $sid = $j->{data}{session_id};
like($o->{trade_no}, qr/^ngt_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/,
     'trade_no is ngt_<uuid7>');
is_deeply([ @$o{qw(provider status currency amount_minor amount quota user_id owner_kind owner_id)} ],
          [ 'stripe', 'pending', 'usd', 1000, '10.00', 10 * RATE, $ua_a->{id}, 'user', $ua_a->{id} ],
          'the order: pending, 10.00 usd, 10 x NebulaTopupRate quota, for the caller');
like($sid, qr/^cs_test_[A-Za-z0-9]{48}$/, 'the session id from Stripe');
is($o->{provider_ref}, $sid, 'stored on the order as provider_ref');
is($j->{data}{checkout_url}, "https://checkout.stripe.com/c/pay/$sid", 'checkout_url is session.url');

my $rec = mock_last();
is_deeply([ @$rec{qw(method path route status)} ], [ 'POST', '/v1/checkout/sessions',
          'stripe.checkout.sessions', 200 ], 'the mock received POST /v1/checkout/sessions');
is($rec->{headers}{authorization}, 'Bearer ' . SK, 'Bearer secret key');
is($rec->{headers}{'content-type'}, 'application/x-www-form-urlencoded', 'form-encoded');
is($rec->{headers}{'idempotency-key'}, $o->{trade_no}, 'Idempotency-Key: the trade_no');
is_deeply(query_params($rec->{body}), {
    'mode' => 'payment',
    'line_items[0][price_data][currency]' => 'usd',
    'line_items[0][price_data][unit_amount]' => '1000',
    'line_items[0][price_data][product_data][name]' => 'Top-up: 5000000 quota',
    'line_items[0][quantity]' => '1',
    'success_url' => 'https://nebula.test/topup/done?session={CHECKOUT_SESSION_ID}',
    'cancel_url' => 'https://nebula.test/topup/cancelled',
    'client_reference_id' => $o->{trade_no},
    'metadata[trade_no]' => $o->{trade_no},
    'metadata[user_id]' => "$ua_a->{id}",
}, 'the form body, field by field, as Stripe takes it');
like($rec->{body}, qr/^mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=usd&/,
     'keys percent-encoded as the official SDKs send them');

# ---- Stripe: the webhook, 5 times + a bad signature + a stale one ---------
my $t0 = time() * 1000 - 1000;
($res, $j) = call('POST', "$MOCK/_mock/stripe/complete", {
    session => $sid, url => "$PAY/api/payments/stripe/webhook", secret => WHSEC,
    times => 5, bad_sig => JSON::PP::true, stale => JSON::PP::true });
is($res->code, 200, 'the mock delivered the event') or diag $res->content;
my $ev = $j;
my @d = @{ $ev->{deliveries} };
is_deeply([ map { "$_->{kind} $_->{status}" } @d ],
          [ ('good 200') x 5, 'bad_sig 400', 'stale 400' ], '5 good deliveries 200, the bad ones 400');
is_deeply([ map { decode_json($_->{body})->{outcome} } @d[0 .. 4] ],
          [ 'credited', ('already_credited') x 4 ], 'credited by the first, never again');
my $bad = decode_json($d[5]{body})->{error};
is($bad->{code}, 'signature_mismatch', 'bad signature: signature_mismatch');
like($bad->{message}, qr/^signature mismatch/, '... "signature mismatch"');
my $stale = decode_json($d[6]{body})->{error};
is($stale->{code}, 'timestamp_outside_tolerance', 'stale: timestamp_outside_tolerance');
like($stale->{message}, qr/^timestamp outside the tolerance: the signature is 6\d\d s old/,
     '... "timestamp outside the tolerance", how old');

# the mock signs as Stripe documents it: HMAC-SHA256 of "<t>.<payload>"
my ($st, $sv) = $d[0]{signature} =~ /^t=(\d+),v1=([0-9a-f]{64})$/;
is($sv, hmac_sha256_hex("$st.$ev->{payload}", WHSEC), 'the mock\'s v1 = Perl\'s HMAC');
like($ev->{payload}, qr/^\{\n  "id": "evt_/, 'indented JSON, as Stripe sends it');

my $key = "topup:stripe:$o->{trade_no}";
my $l = ledger_of($key);
is_deeply([ $l->[0], $l->[1] ], [ 1, 10 * RATE ], 'exactly one ledger row of 5000000');
($res, $j) = call('GET', "$PAY/api/self/account", undef, $ta);
is($j->{data}{balance}, 10 * RATE, 'the balance grew once');
($res, $j) = root('GET', "/api/topups/$o->{id}");
is_deeply([ @{ $j->{data} }{qw(status ledger_id completed_by)} ], [ 'paid', $l->[2], 'stripe' ],
          'the order is paid, with its ledger row');
my ($erow) = grep { ($_->{event_id} // '') eq $ev->{event_id} } @{ $j->{data}{events} };
is_deeply([ @$erow{qw(type outcome deliveries)} ], [ 'checkout.session.completed', 'credited', 5 ],
          'the event: recorded once, 5 deliveries, credited');
my $refused = db_rows("SELECT detail FROM payment_events WHERE provider = 'stripe' AND "
                      . "event_id IS NULL AND outcome = 'refused' AND received_at >= $t0 ORDER BY id");
is_deeply([ map { decode_json($_->[0])->{reason} } @$refused ],
          [ 'signature mismatch', 'timestamp outside the tolerance' ],
          'the refused deliveries are recorded, without an event id');

# 10 concurrent replays, signed in Perl, the right v1 among a wrong one
my $t = time();
my $hdr = "t=$t,v1=" . ('0' x 64) . ',v1=' . hmac_sha256_hex("$t.$ev->{payload}", WHSEC);
my @kids;
for (1 .. 10) {
    my $pid = fork();
    if ($pid == 0) {
        my ($r) = call('POST', "$PAY/api/payments/stripe/webhook", $ev->{payload}, undef,
                       'Stripe-Signature' => $hdr);
        exit($r->code == 200 && decode_json($r->content)->{outcome} eq 'already_credited' ? 0 : 1);
    }
    push @kids, $pid;
}
my $ok = 0;
for (@kids) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 10, '10 concurrent replays (any of several v1 matches): 200 already_credited');
$l = ledger_of($key);
is_deeply([ $l->[0], $l->[1] ], [ 1, 10 * RATE ], 'still one ledger row');
($res, $j) = call('POST', "$PAY/api/payments/stripe/webhook", $ev->{payload});
is($res->code . ' ' . $j->{error}{code}, '400 signature_mismatch', 'no Stripe-Signature: 400');
($res, $j) = call('POST', "$PAY/api/payments/stripe/webhook", $ev->{payload} . ' ', undef,
                  'Stripe-Signature' => $hdr);
is($res->code . ' ' . $j->{error}{code}, '400 signature_mismatch',
   'one byte more in the body: signature mismatch');
$t = time() + 400;
($res, $j) = call('POST', "$PAY/api/payments/stripe/webhook", $ev->{payload}, undef,
                  'Stripe-Signature' => "t=$t,v1=" . hmac_sha256_hex("$t.$ev->{payload}", WHSEC));
is($res->code . ' ' . $j->{error}{code}, '400 timestamp_outside_tolerance',
   'a timestamp 400 s ahead is outside the tolerance too');

# ---- Stripe: amount mismatch, then an admin completes by hand --------------
($res, $j) = call('POST', "$PAY/api/self/topup/stripe", { amount => 20 }, $tb);
my $ob = $j->{data}{order};
my $sidb = $j->{data}{session_id};
($res, $j) = call('POST', "$MOCK/_mock/stripe/complete", {
    session => $sidb, url => "$PAY/api/payments/stripe/webhook", secret => WHSEC,
    amount_total => 100 });
my $m = $j->{deliveries}[0];
is($m->{status}, 400, 'amount_total 100 for an order of 2000: 400');
is(decode_json($m->{body})->{error}{code}, 'amount_mismatch', '... amount_mismatch');
my $keyb = "topup:stripe:$ob->{trade_no}";
is(ledger_of($keyb)->[0], 0, 'nothing credited');
($res, $j) = root('GET', "/api/topups/$ob->{id}");
is($j->{data}{status}, 'pending', 'the order stays pending');
is($j->{data}{events}[0]{outcome}, 'mismatch', 'the event is recorded as a mismatch');

($res, $j) = call('POST', "$PAY/api/topups/$ob->{id}/complete", { note => 'paid, no webhook' }, $tb);
is($res->code, 403, 'a user cannot complete an order');
($res, $j) = root('POST', "/api/topups/$ob->{id}/complete", { note => 'paid, no webhook' });
is($res->code, 200, 'POST /api/topups/{id}/complete 200') or diag $res->content;
is_deeply([ @{ $j->{data} }{qw(status completed_by)} ], [ 'paid', 'root' ], 'paid by root');
$l = ledger_of($keyb);
is_deeply([ $l->[0], $l->[1] ], [ 1, 20 * RATE ], 'one ledger row, keyed as the webhook is');
is_deeply(db_rows("SELECT actor, kind FROM ledger WHERE idem_key = '$keyb'")->[0],
          [ 'root', 'topup' ], 'actor root, kind topup');
($res, $j) = call('POST', "$MOCK/_mock/stripe/complete", {
    session => $sidb, url => "$PAY/api/payments/stripe/webhook", secret => WHSEC,
    amount_total => 2000 });
is(decode_json($j->{deliveries}[0]{body})->{outcome}, 'already_credited',
   'the late webhook credits nothing');
is(ledger_of($keyb)->[0], 1, 'still one row');
($res, $j) = root('POST', "/api/topups/$ob->{id}/complete", {});
is($res->code . ' ' . $j->{error}{code}, '409 order_not_pending', 'completing twice: 409');

# ---- Stripe: limits, amounts, expiry ---------------------------------------
for my $case ([0.5, 'amount_out_of_range'], [501, 'amount_out_of_range'], [10.123, undef],
              ['10', undef], [-1, undef]) {
    ($res, $j) = call('POST', "$PAY/api/self/topup/stripe", { amount => $case->[0] }, $tc);
    is($res->code . ' ' . $j->{error}{param}, '400 amount', "amount $case->[0]: 400 on amount");
    is($j->{error}{code}, $case->[1], "... $case->[1]") if $case->[1];
}
like($j->{error}{message}, qr/amount must be a positive number of usd/, 'the message says why');
($res, $j) = call('POST', "$PAY/api/self/topup/stripe", { amount => 0.5 }, $tc);
is($j->{error}{message}, 'a top-up is from 1.00 to 500.00 usd; 0.50 is outside that range',
   'the range in the message');
($res, $j) = call('POST', "$PAY/api/self/topup/stripe", { amount => 9.99 }, $tc);
is_deeply([ @{ $j->{data}{order} }{qw(amount_minor quota)} ], [ 999, 4995000 ],
          '9.99: 999 cents, 4995000 quota (exact)');
is(query_params(mock_last()->{body})->{'line_items[0][price_data][unit_amount]'}, '999',
   'unit_amount 999');
my $oc = $j->{data}{order};
($res, $j) = call('POST', "$MOCK/_mock/stripe/complete", {
    session => $j->{data}{session_id}, url => "$PAY/api/payments/stripe/webhook",
    secret => WHSEC, type => 'checkout.session.expired' });
is(decode_json($j->{deliveries}[0]{body})->{outcome}, 'marked', 'checkout.session.expired: marked');
($res, $j) = root('GET', "/api/topups/$oc->{id}");
is($j->{data}{status}, 'expired', 'the order is expired');
($res, $j) = call('POST', "$PAY/api/self/topup/stripe", { amount => 10 }, undef);
is($res->code, 401, 'no credentials: 401');
($res, $j) = root('POST', '/api/self/topup/stripe', { amount => 10 });
is($res->code . ' ' . $j->{error}{code}, '400 no_user', 'the root token has no wallet');

# ---- EPay: the signed redirect ---------------------------------------------
($res, $j) = call('POST', "$PAY/api/self/topup/epay", { amount => 10, type => 'wxpay' }, $ta);
is($res->code, 200, 'POST /api/self/topup/epay 200') or diag $res->content;
my $oe = $j->{data}{order};
is_deeply([ @$oe{qw(provider status amount_minor quota pay_type)} ],
          [ 'epay', 'pending', 1000, 10 * RATE, 'wxpay' ], 'the EPay order');
my ($submit, $q) = $j->{data}{pay_url} =~ /^(.*?)\?(.*)$/;
is($submit, "$MOCK/submit.php", 'the URL is the gateway\'s submit.php');
my $p = query_params($q);
is_deeply($p, { pid => '1001', type => 'wxpay', out_trade_no => $oe->{trade_no},
                notify_url => "$PAY/api/payments/epay/notify",
                return_url => "$PAY/api/payments/epay/return", name => 'Top-up 5000000 quota',
                money => '10.00', sign => $p->{sign}, sign_type => 'MD5' },
          'the parameters EPay takes');
is($p->{sign}, epay_sign($p, EPAY_KEY), 'sign = md5(sorted k=v&... . key), checked in Perl');
is_deeply($j->{data}{params}, $p, 'the same parameters for a form POST');
($res) = call('GET', $j->{data}{pay_url});
is($res->code . ' ' . $res->header('X-Mock-Epay-Result'), '200 ok', 'EPay accepts the signature');
(my $tampered = $j->{data}{pay_url}) =~ s/money=10\.00/money=1.00/;
($res) = call('GET', $tampered);
is($res->code . ' ' . $res->content, '400 sign error', 'a changed amount: sign error');

# ---- EPay: the notify, 3 times + a bad signature ---------------------------
($res, $j) = call('POST', "$MOCK/_mock/epay/notify",
                  { out_trade_no => $oe->{trade_no}, times => 3, bad_sign => JSON::PP::true });
is_deeply([ map { "$_->{kind} $_->{status} $_->{body}" } @{ $j->{deliveries} } ],
          [ ('good 200 success') x 3, 'bad_sign 200 fail' ], 'success three times, fail once');
my $np = query_params($j->{deliveries}[0]{query});
is($np->{sign}, epay_sign($np, EPAY_KEY), 'the notify is signed as EPay signs (Perl agrees)');
my $keye = "topup:epay:$oe->{trade_no}";
$l = ledger_of($keye);
is_deeply([ $l->[0], $l->[1] ], [ 1, 10 * RATE ], 'one ledger row');
($res, $j) = root('GET', "/api/topups/$oe->{id}");
is_deeply([ @{ $j->{data} }{qw(status provider_ref completed_by ledger_id)} ],
          [ 'paid', $np->{trade_no}, 'epay', $l->[2] ], 'paid; provider_ref is EPay\'s trade_no');
($erow) = grep { ($_->{event_id} // '') eq "epay:$oe->{trade_no}:TRADE_SUCCESS" } @{ $j->{data}{events} };
is_deeply([ @$erow{qw(outcome deliveries)} ], [ 'credited', 3 ], 'one event, 3 deliveries');
($res, $j) = call('GET', "$PAY/api/self/account", undef, $ta);
is($j->{data}{balance}, 20 * RATE, 'user a: 10 (Stripe) + 10 (EPay)');

# a POSTed notify, Perl-signed, a wrong pid, a wrong amount
my %n = (%$np);
$n{sign} = epay_sign(\%n, EPAY_KEY);
my $form = join '&', map { "$_=" . URI::Escape::uri_escape($n{$_}) } sort keys %n;
($res) = call('POST', "$PAY/api/payments/epay/notify", $form, undef,
              type => 'application/x-www-form-urlencoded');
is($res->code . ' ' . $res->content, '200 success', 'a POSTed notify, signed in Perl: success');
is(ledger_of($keye)->[0], 1, 'still one row');
%n = (%$np, pid => '9999');
$n{sign} = epay_sign(\%n, EPAY_KEY);
($res) = call('GET', "$PAY/api/payments/epay/notify?" . join('&', map { "$_=" . URI::Escape::uri_escape($n{$_}) } sort keys %n));
is($res->content, 'fail', 'another merchant\'s pid: fail');
($res, $j) = call('POST', "$PAY/api/self/topup/epay", { amount => 3 }, $tb);
my $oe2 = $j->{data}{order};
is($oe2->{pay_type}, 'alipay', 'type defaults to alipay');
call('GET', $j->{data}{pay_url});
($res, $j) = call('POST', "$MOCK/_mock/epay/notify", { out_trade_no => $oe2->{trade_no}, money => '0.03' });
is($j->{deliveries}[0]{body}, 'fail', 'money 0.03 for 3.00: fail');
is(ledger_of("topup:epay:$oe2->{trade_no}")->[0], 0, 'nothing credited');
($res, $j) = call('POST', "$MOCK/_mock/epay/notify", { out_trade_no => $oe2->{trade_no}, method => 'POST' });
is($j->{deliveries}[0]{body}, 'success', 'then the right amount, POSTed: success');
is(ledger_of("topup:epay:$oe2->{trade_no}")->[1], 3 * RATE, 'credited 3 x rate');

# the browser's return
($res, $j) = call('GET', "$PAY/api/payments/epay/return?" . $j->{deliveries}[0]{query});
is_deeply([ $res->code, @{ $j->{data} }{qw(verified trade_no status)} ],
          [ 200, JSON::PP::true, $oe2->{trade_no}, 'paid' ], 'return: verified, the order paid');
($res, $j) = call('GET', "$PAY/api/payments/epay/return?out_trade_no=$oe2->{trade_no}&sign=00");
is($res->code . ' ' . $j->{error}{code}, '400 signature_mismatch', 'an unsigned return: 400');

# ---- lists -------------------------------------------------------------------
($res, $j) = call('GET', "$PAY/api/self/topups", undef, $ta);
is_deeply([ $j->{total}, map { $_->{id} } @{ $j->{data} } ], [ 2, $oe->{id}, $o->{id} ],
          'GET /api/self/topups: the caller\'s orders, newest first');
($res, $j) = call('GET', "$PAY/api/self/topups?user_id=$ua_b->{id}", undef, $ta);
is($res->code . ' ' . $j->{error}{param}, '400 user_id', 'no user_id on the self list');
($res, $j) = call('GET', "$PAY/api/topups", undef, $ta);
is($res->code, 403, 'a user cannot list all orders');
($res, $j) = root('GET', "/api/topups?user_id=$ua_b->{id}&provider=stripe");
is_deeply([ $j->{total}, map { $_->{id} } @{ $j->{data} } ], [ 1, $ob->{id} ],
          'GET /api/topups?user_id&provider');
($res, $j) = root('GET', "/api/topups?user_id=$ua_c->{id}&status=expired");
is_deeply([ map { $_->{id} } @{ $j->{data} } ], [ $oc->{id} ], 'status filter');
($res, $j) = root('GET', '/api/topups?status=gone');
is($res->code . ' ' . $j->{error}{param}, '400 status', 'an unknown status: 400');
($res, $j) = call('GET', "$PAY/api/self/ledger?kind=topup", undef, $ta);
is_deeply([ map { $_->{amount} } @{ $j->{data} } ], [ 10 * RATE, 10 * RATE ],
          'the credits in the ledger the user reads');
($res, $j) = root('GET', "/api/billing/ledger?kind=topup&account_id=" . $j->{data}[0]{account_id});
is_deeply([ sort map { $_->{idem_key} } @{ $j->{data} } ], [ sort $key, $keye ],
          '... and in /api/billing/ledger, keyed topup:<provider>:<trade_no>');
