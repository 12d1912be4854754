# Notifications: a subscription at 80 % and at 100 % of its period's
# allowance, and one expiring within NebulaNotifyExpiryDays, each queue one
# event, once (however many schedulers run), again in the next period. The
# webhook (the mock provider's /hooks/ route) receives the JSON payload with
# X-Nebula-Event, X-Nebula-Delivery and an HMAC-SHA256 X-Nebula-Signature this
# test verifies; a failing endpoint is retried; e-mail goes through SMTP (a
# sink this test runs on the port NebulaNotifySMTP names) and is retried too
# when the relay is down.
#
# Usage is made by holding part of the allowance (accounts.reserved, what
# in-flight requests hold): used = quota_per_period - available.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../admin", "$FindBin::Bin/../lib";
use AdminT qw(api api_ok uniq db_rows db_value db_exec make_user);
use NebulaAdmin qw(mock_records new_key);
use Digest::SHA qw(hmac_sha256_hex);
use IO::Socket::INET;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(sleep time);

plan tests => 47;

my $SECRET = 'nebula-test-webhook-secret-0123456789';  # extra.conf.in
my $H = 3600 * 1000;
sub now_ms { return int(time() * 1000) }
sub wait_for {
    my ($secs, $cond) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) { my $v = $cond->(); return $v if $v; sleep 0.2 }
    return $cond->();
}
sub run_now { api_ok('POST', '/api/billing/scheduler/run') }
sub hold { db_exec("UPDATE accounts SET reserved = $_[1] WHERE id = $_[0]") }

# The webhook deliveries the mock recorded for subscription $sid (and event).
sub hooks {
    my ($sid, $event, $tag) = @_;
    my @r = grep {
        my $b = eval { decode_json($_->{body}) } // {};
        $_->{path} =~ m{/hooks/billing$} && ($b->{subscription}{id} // 0) == $sid
            && (!$event || ($b->{event} // '') eq $event)
    } @{ mock_records($tag // 'nebula-webhook', 1000) };
    return \@r;
}
sub signed_ok {
    my ($rec) = @_;
    my ($t, $v1) = ($rec->{headers}{'x-nebula-signature'} // '') =~ /^t=(\d+),v1=([0-9a-f]{64})$/
        or return 0;
    return abs($t - time) < 120 && hmac_sha256_hex("$t.$rec->{body}", $SECRET) eq $v1;
}
sub outbox {
    my ($key) = @_;
    my $r = db_rows("SELECT id, event, state, attempts, COALESCE(user_id, 0), "
                    . "COALESCE(last_error, ''), next_at FROM notifications WHERE idem_key = '$key'");
    return @$r ? $r->[0] : undef;
}

# ---- the SMTP sink ----------------------------------------------------------
my $conf = do { local (@ARGV, $/) = ("$FindBin::Bin/../conf/extra.conf"); <> };
my ($smtp_port) = $conf =~ /^NebulaNotifySMTP 127\.0\.0\.1:(\d+)/m or die "no NebulaNotifySMTP\n";
my $mailbox = "$FindBin::Bin/../logs/smtp-sink-$$.txt";
my $sink;
sub sink_start {
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $smtp_port, Listen => 5,
                                  ReuseAddr => 1) or die "cannot listen on $smtp_port: $!";
    $sink = fork() // die "fork: $!";
    return if $sink;
    while (my $c = $l->accept) {
        open(my $out, '>>', $mailbox) or die $!;
        my $say = sub { print $c "$_[0]\r\n"; print $out "S: $_[0]\n" };
        $say->('220 sink.nebula.test ESMTP');
        while (defined(my $line = <$c>)) {
            $line =~ s/\r?\n$//;
            print $out "C: $line\n";
            if ($line =~ /^EHLO /i) { print $c "250-sink.nebula.test\r\n"; $say->('250 8BITMIME') }
            elsif ($line =~ /^(MAIL|RCPT) /i) { $say->('250 OK') }
            elsif ($line =~ /^DATA$/i) {
                $say->('354 go ahead');
                while (defined(my $d = <$c>)) {
                    $d =~ s/\r?\n$//;
                    last if $d eq '.';
                    print $out "D: $d\n";
                }
                $say->('250 queued');
            }
            elsif ($line =~ /^QUIT$/i) { $say->('221 bye'); last }
            else { $say->('500 what?') }
        }
        close $out;
        close $c;
    }
    POSIX::_exit(0);
}
END { local $?; if ($sink) { kill "TERM", $sink; waitpid($sink, 0) } unlink $mailbox }
sub mails {
    open(my $in, '<', $mailbox) or return [];
    my @m = split /^S: 220 /m, do { local $/; <$in> };
    return [ grep { /\S/ } @m ];
}

# ---- usage at 80 % and 100 %: webhook and e-mail --------------------------
my $plan = api_ok('POST', '/api/billing/plans',
                  { name => uniq('notify'), period => 'custom', period_seconds => $H / 1000,
                    quota_per_period => 1000, metric => 'tokens' });
my $user = make_user();
my $email = "owner-$$\@example.test";
db_exec("UPDATE users SET email = '$email' WHERE id = $user->{id}");
my $s = api_ok('POST', '/api/billing/subscriptions',
               { plan_id => $plan->{id}, subject_kind => 'user', subject_id => $user->{id} });
my $key80 = "usage80:$s->{id}:$s->{period_start}";

hold($s->{account_id}, 790);
run_now();
ok(!outbox($key80), 'at 79 % nothing is queued');
hold($s->{account_id}, 850);                # 85 % used; the SMTP relay is down
my $rows = wait_for(10, sub { my $r = hooks($s->{id}); @$r ? $r : undef });
is(scalar @{ $rows || [] }, 1, 'at 85 % the webhook gets one delivery');
my $rec = $rows->[0];
my $body = decode_json($rec->{body});
is_deeply([ @{ $rec->{headers} }{qw(content-type x-nebula-event)}, $rec->{method}, $rec->{status} ],
          [ 'application/json', 'subscription.usage_80', 'POST', 200 ],
          'POSTed as JSON, the event named in X-Nebula-Event, answered 200');
ok(signed_ok($rec), 'X-Nebula-Signature: t=<unix time>,v1=HMAC-SHA256(secret, "t.body")');
is_deeply([ @$body{qw(event threshold)}, @{ $body->{subscription} }{qw(id plan_id plan_name subject_kind subject_id period_start period_end)},
            @{ $body->{usage} }{qw(metric quota_per_period used available percent)} ],
          [ 'subscription.usage_80', 80, $s->{id}, $plan->{id}, $plan->{name}, 'user', $user->{id},
            $s->{period_start}, $s->{period_end}, 'tokens', 1000, 850, 150, 85 ],
          'the payload: event, threshold, subscription and usage');
my $ob = wait_for(5, sub { my $o = outbox($key80); $o && $o->[2] eq 'delivered' ? $o : undef });
is_deeply([ @{ $ob || [] }[1 .. 4] ], [ 'subscription.usage_80', 'delivered', 1, $user->{id} ],
          "outbox row $key80: delivered at the first attempt");
is($rec->{headers}{'x-nebula-delivery'}, $ob->[0], 'X-Nebula-Delivery is the outbox row id');
is(api_ok('GET', "/api/billing/subscriptions/$s->{id}")->{notified_pct}, 80,
   'the subscription remembers the level sent');
my $mail = wait_for(10, sub { my $o = outbox("$key80:mail"); $o && $o->[3] >= 1 ? $o : undef });
is_deeply([ @{ $mail || [] }[2, 3] ], [ 'pending', 1 ], 'the e-mail failed once (no SMTP relay yet)');
like($mail->[5] // '', qr/connect/, 'and says why');
ok($mail->[6] >= now_ms() + 30_000, 'its next attempt waits (30 s x 2^attempts)');

sink_start();
db_exec("UPDATE notifications SET next_at = 0 WHERE idem_key = '$key80:mail'");
run_now();
$mail = wait_for(10, sub { my $o = outbox("$key80:mail"); $o && $o->[2] eq 'delivered' ? $o : undef });
is_deeply([ @{ $mail || [] }[2, 3] ], [ 'delivered', 2 ], 'with the relay up the e-mail goes out');
my $m = (grep { /C: RCPT TO:<\Q$email\E>/ } @{ mails() })[0] // '';
like($m, qr/^C: EHLO \S+$/m, 'SMTP: EHLO');
like($m, qr/^C: MAIL FROM:<billing\@nebula\.test>$/m, 'MAIL FROM: NebulaNotifyFrom');
like($m, qr/^D: To: \Q$email\E$/m, 'To: the user\'s address');
like($m, qr/^D: Subject: Plan '\Q$plan->{name}\E': 85% of this period's allowance used$/m, 'the subject');
like($m, qr/^D: X-Nebula-Event: subscription\.usage_80$/m, 'X-Nebula-Event');
like($m, qr/^D: X-Nebula-Delivery: $mail->[0]$/m, 'X-Nebula-Delivery: the e-mail\'s row');
like($m, qr/has used 850 of its 1000 tokens \(85%\)/, 'the text says how much is used');
like($m, qr/^C: QUIT$/m, 'QUIT');

hold($s->{account_id}, 1000);               # all of it
my $key100 = "usage100:$s->{id}:$s->{period_start}";
$rows = wait_for(10, sub { my $r = hooks($s->{id}, 'subscription.usage_100'); @$r ? $r : undef });
is(scalar @{ $rows || [] }, 1, 'at 100 % one more event');
is(decode_json($rows->[0]{body})->{threshold}, 100, 'threshold 100');
ok(signed_ok($rows->[0]), 'signed too');
wait_for(10, sub { my $o = outbox("$key100:mail"); $o && $o->[2] eq 'delivered' });
is((outbox("$key100:mail") // [])->[2], 'delivered', 'and its e-mail');
run_now() for 1 .. 3;
sleep 1.5;                                  # and the watchdog's passes
is(scalar @{ hooks($s->{id}) }, 2, 'once each: more passes send nothing more');
is(db_value("SELECT COUNT(*) FROM notifications WHERE idem_key LIKE 'usage%:$s->{id}:%'"), 4,
   'four outbox rows: two events, two channels');
hold($s->{account_id}, 0);

# ---- the next period notifies again -----------------------------------------
my $E = now_ms() + 5000;
my $p = api_ok('POST', '/api/billing/subscriptions',
               { plan_id => $plan->{id}, subject_kind => 'user', subject_id => $user->{id},
                 starts_at => $E - $H });
hold($p->{account_id}, 900);
ok(wait_for(10, sub { @{ hooks($p->{id}, 'subscription.usage_80') } == 1 }),
   'period 1 at 90 %: usage_80');
sleep(($E - now_ms()) / 1000 + 0.3) if $E > now_ms();
run_now();
my $ps = wait_for(10, sub { my $x = api_ok('GET', "/api/billing/subscriptions/$p->{id}");
                             $x->{period_start} == $E ? $x : undef });
is_deeply([ @{ $ps || {} }{qw(notified_pct available)} ], [ 0, 1000 ],
          'the reset starts the level again (the 900 still held are not taken)');
hold($p->{account_id}, 900 + 850);
ok(wait_for(10, sub { @{ hooks($p->{id}, 'subscription.usage_80') } == 2 }),
   'period 2 at 85 %: usage_80 again');
ok(outbox("usage80:$p->{id}:$E"), 'keyed by the new period');
hold($p->{account_id}, 0);

# ---- a failing endpoint is retried --------------------------------------------
my $tag = uniq('hf');
my $fplan = api_ok('POST', '/api/billing/plans',
                   { name => "$tag [[mock tag=$tag,fail_first=1]]", quota_per_period => 100 });
my $org = uniq('org');
my $f = api_ok('POST', '/api/billing/subscriptions',
               { plan_id => $fplan->{id}, subject_kind => 'org',
                 subject_id => do {
                     db_exec("INSERT INTO organizations (name, display_name, created_at) "
                             . "VALUES ('$org', 'Org', 0)");
                     0 + db_value("SELECT id FROM organizations WHERE name = '$org'") } });
my $fkey = "usage80:$f->{id}:$f->{period_start}";
hold($f->{account_id}, 95);
my $fo = wait_for(10, sub { my $o = outbox($fkey); $o && $o->[3] == 1 && $o->[2] eq 'pending' ? $o : undef });
ok($fo, 'the endpoint answered 503: the row waits for another attempt');
like($fo->[5] // '', qr/HTTP 503/, 'last_error says what the endpoint answered');
my $wait = ($fo->[6] - now_ms()) / 1000;
ok($wait > 50 && $wait <= 60, "next attempt in 60 s (30 s x 2^1): $wait s");
ok(!outbox("$fkey:mail"), 'an organisation has no e-mail address: webhook only');
db_exec("UPDATE notifications SET next_at = 0 WHERE idem_key = '$fkey'");
run_now();
$fo = wait_for(10, sub { my $o = outbox($fkey); $o && $o->[2] eq 'delivered' ? $o : undef });
is_deeply([ @{ $fo || [] }[2, 3, 5] ], [ 'delivered', 2, undef ],
          'the retry is delivered (attempt 2), last_error cleared');
my $tries = hooks($f->{id}, undef, $tag);
is_deeply([ map { $_->{status} } @$tries ], [ 503, 200 ], 'the mock saw 503, then 200');
is_deeply([ map { $_->{headers}{'x-nebula-delivery'} } @$tries ], [ ($fo->[0]) x 2 ],
          'both attempts carry the same delivery id');
is($tries->[0]{body}, $tries->[1]{body}, 'and the same body');
ok(signed_ok($tries->[1]), 'the retry is signed afresh');
hold($f->{account_id}, 0);

# ---- expiring soon -----------------------------------------------------------
my ($kstr, $kid) = new_key(user_id => $user->{id});
my $xat = now_ms() + 86_400_000;            # in one day, within the three
my $x = api_ok('POST', '/api/billing/subscriptions',
               { plan_id => $plan->{id}, subject_kind => 'key', subject_id => $kid,
                 expires_at => $xat });
$rows = wait_for(10, sub { my $r = hooks($x->{id}, 'subscription.expiring'); @$r ? $r : undef });
is(scalar @{ $rows || [] }, 1, 'a subscription expiring within 3 days: one event');
my $xb = decode_json($rows->[0]{body});
is_deeply([ $xb->{subscription}{expires_at}, $xb->{subscription}{subject_kind}, exists $xb->{threshold} ? 1 : 0 ],
          [ $xat, 'key', 0 ], 'the payload says when');
ok(signed_ok($rows->[0]), 'signed');
my $xo = wait_for(10, sub { my $o = outbox("expiring:$x->{id}:$xat:mail"); $o && $o->[2] eq 'delivered' ? $o : undef });
is(($xo // [])->[4], $user->{id}, 'a key\'s notice is mailed to its owner');
ok((grep { /Subject: Your plan '\Q$plan->{name}\E' expires on \d{4}-\d\d-\d\d \d\d:\d\d UTC/ } @{ mails() }),
   'the e-mail names the plan and the date');
run_now() for 1 .. 2;
is(scalar @{ hooks($x->{id}, 'subscription.expiring') }, 1, 'once');
ok(api_ok('GET', "/api/billing/subscriptions/$x->{id}")->{expiry_notified}, 'expiry_notified is set');
my $far = api_ok('POST', '/api/billing/subscriptions',
                 { plan_id => $plan->{id}, subject_kind => 'user', subject_id => $user->{id},
                   expires_at => now_ms() + 5 * 86_400_000 });
run_now();
is(db_value("SELECT COUNT(*) FROM notifications WHERE idem_key LIKE 'expiring:$far->{id}:%'"), 0,
   'five days ahead: not yet');
