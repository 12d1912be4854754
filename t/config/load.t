# conf/nebula.load + conf/nebula.conf pass `httpd -t`, and each module loads
# alone (and all three together) in a stock Debian httpd.
use strict;
use IO::Socket::INET;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir libexecdir httpd_bin run_cmd);

my $top  = top_dir();
my $lib  = libexecdir();
my $tmp  = tempdir(CLEANUP => 1);
my %so   = map { $_ => "$top/mod_nebula_$_/.libs/mod_nebula_$_.so" } qw(relay billing gov);

sub base_conf {
    my ($extra) = @_;
    return <<"CONF";
ServerRoot "$tmp"
PidFile "$tmp/httpd.pid"
DefaultRuntimeDir "$tmp"
ErrorLog "$tmp/error_log"
Listen 127.0.0.1:1
ServerName 127.0.0.1
LoadModule mpm_event_module $lib/mod_mpm_event.so
LoadModule authz_core_module $lib/mod_authz_core.so
$extra
CONF
}

sub syntax_ok {
    my ($name, $conf) = @_;
    my $file = "$tmp/$name.conf";
    open(my $fh, '>', $file) or die $!;
    print $fh $conf;
    close $fh;
    local $ENV{NEBULA_DB_PATH} = "$tmp/nebula.db";
    local $ENV{CRYPTO_SECRET} = 'load-test-crypto-secret-0123456789';
    local $ENV{SESSION_SECRET} = 'load-test-session-secret-0123456789';
    my ($rc, $out) = run_cmd(httpd_bin(), '-t', '-f', $file);
    ok($rc == 0 && $out =~ /Syntax OK/, "$name: httpd -t") or diag $out;
}

# the shipped files, with the DSOs where the build put them
(my $load = do { local (@ARGV, $/) = "$top/conf/nebula.load"; <> }) =~
    s{modules/mod_nebula_(\w+)\.so}{$so{$1}}g;
$load =~ s{modules/(mod_\w+\.so)}{$lib/$1}g;
syntax_ok('nebula.load+nebula.conf', base_conf("$load\nInclude $top/conf/nebula.conf\n"));

# each module alone (the relay needs mod_proxy, as mod_proxy_http does)
syntax_ok('relay alone', base_conf("LoadModule proxy_module $lib/mod_proxy.so\n"
    . "LoadModule nebula_relay_module $so{relay}\n<Location /v1>\nNebulaRelay On\n</Location>\n"));
syntax_ok('billing alone', base_conf("LoadModule nebula_billing_module $so{billing}\nNebulaQuotaPerUSD 1000\n"));
syntax_ok('gov alone', base_conf("LoadModule nebula_gov_module $so{gov}\nNebulaAuditRetention 30\n"));

# a bad value is refused with a message naming the directive
{
    my $file = "$tmp/bad.conf";
    open(my $fh, '>', $file) or die $!;
    print $fh base_conf("LoadModule nebula_billing_module $so{billing}\nNebulaQuotaPerUSD -5\n");
    close $fh;
    my ($rc, $out) = run_cmd(httpd_bin(), '-t', '-f', $file);
    isnt($rc, 0, 'a bad directive value fails httpd -t');
    like($out, qr/NebulaQuotaPerUSD: give a whole number/, 'the error names the directive');
}
# each billing directive refuses a bad value, naming itself
for my $case (
    [ 'NebulaBillingUnpriced Maybe',            qr/NebulaBillingUnpriced: give Refuse or Free/ ],
    [ 'NebulaReserveMaxOutput -1',              qr/NebulaReserveMaxOutput: give a whole number/ ],
    [ 'NebulaReservationTTL 2s',                qr/NebulaReservationTTL: give a duration/ ],
    [ 'NebulaIdempotencyTTL forever',           qr/NebulaIdempotencyTTL: give a duration/ ],
    [ 'NebulaIdempotencyMaxBody 10',            qr/NebulaIdempotencyMaxBody: give a whole number/ ],
    [ 'NebulaSchedulerInterval 0',              qr/NebulaSchedulerInterval: give a duration/ ],
    [ 'NebulaLogRollup some',                   qr/NebulaLogRollup: give a whole number/ ],
    [ 'NebulaLogRetention 30m',                 qr/NebulaLogRetention: give a duration of at least 1h/ ],
    [ 'NebulaRetentionBatch 0',                 qr/NebulaRetentionBatch: give a whole number/ ],
    [ 'NebulaTimeZone "Europe/Berlin;rm"',      qr/NebulaTimeZone: give a time zone name/ ],
    [ 'NebulaNotifyWebhook ftp://x/ secret-of-sixteen-chars', qr/NebulaNotifyWebhook: give an http/ ],
    [ 'NebulaNotifyWebhook http://x/ short',    qr/NebulaNotifyWebhook: give the signing secret/ ],
    [ 'NebulaNotifySMTP localhost',             qr/NebulaNotifySMTP: give host:port/ ],
    [ 'NebulaNotifyFrom nobody',                qr/NebulaNotifyFrom: give an e-mail address/ ],
    [ 'NebulaNotifyExpiryDays 400',             qr/NebulaNotifyExpiryDays: give a whole number/ ],
) {
    my ($line, $re) = @$case;
    my $file = "$tmp/bad-billing.conf";
    open(my $fh, '>', $file) or die $!;
    print $fh base_conf("LoadModule nebula_billing_module $so{billing}\n$line\n");
    close $fh;
    my ($rc, $out) = run_cmd(httpd_bin(), '-t', '-f', $file);
    ok($rc != 0 && $out =~ $re, "refused: $line") or diag $out;
}
# the governance and relay directives too (issues 6 to 9); a bad
# <NebulaPolicy> stops httpd with the line it is on
for my $case (
    [ gov => 'NebulaRateLimit key * rpm=abc',          qr/NebulaRateLimit: 'rpm=abc' is not rpm=N/ ],
    [ gov => 'NebulaRateLimit planet * rpm=5',         qr/NebulaRateLimit: 'planet' is not a scope/ ],
    [ gov => 'NebulaGovCountryHeader X-Country nope',  qr/NebulaGovCountryHeader: 'nope' is not an address/ ],
    [ gov => 'NebulaAuditRetention 0',                 qr/NebulaAuditRetention: give a number of days/ ],
    [ gov => 'NebulaGovernance maybe',                 qr/NebulaGovernance must be On or Off/ ],
    [ gov => "<NebulaPolicy p1>\n  Action explode\n</NebulaPolicy>",
      qr/line 11 of .*\n<NebulaPolicy p1>: action.type: unknown action 'explode'/ ],
    [ relay => 'NebulaTopupMin abc',                   qr/NebulaTopupMin: give a positive amount/ ],
    [ relay => 'NebulaTopupRate -1',                   qr/NebulaTopupRate: give the quota units/ ],
    [ relay => 'NebulaEpayURL ftp://x',                qr/NebulaEpayURL: give an absolute http/ ],
    [ relay => 'NebulaAdminSessionIdle 0',             qr/NebulaAdminSessionIdle: give a duration/ ],
    [ relay => 'NebulaAdminRemoteUserRole god',        qr/NebulaAdminRemoteUserRole: give user, operator/ ],
    [ relay => 'NebulaAdminRemoteRoleEnv "bad name"',  qr/NebulaAdminRemoteRoleEnv: give the name/ ],
    [ relay => 'NebulaAdminCookieSecure Maybe',        qr/NebulaAdminCookieSecure must be On or Off/ ],
    [ relay => 'NebulaOverheadHeader Maybe',           qr/NebulaOverheadHeader must be On or Off/ ],
    [ relay => 'NebulaRetryBudget lots',               qr/NebulaRetryBudget: give a ratio of retries/ ],
    [ relay => 'NebulaRetryBudget 0.2 -1',             qr/NebulaRetryBudget: the retries a second/ ],
    [ relay => 'NebulaJsonMaxDepth 0',                 qr/NebulaJsonMaxDepth: give a nesting depth/ ],
    [ relay => 'NebulaJsonMaxDepth 99999',             qr/NebulaJsonMaxDepth: give a nesting depth/ ],
    [ relay => 'NebulaUpstreamAllow 10.0.0.0/99',      qr/NebulaUpstreamAllow: '10\.0\.0\.0\/99' is not a valid range/ ],
    [ relay => 'NebulaMetricsSeries lots',             qr/NebulaMetricsSeries: 'lots' is not a number/ ],
    [ relay => 'NebulaMetricsAllow not-an-address',    qr/NebulaMetricsAllow: 'not-an-address' is not an address/ ],
    [ relay => 'NebulaMetricsToken short',             qr/NebulaMetricsToken: the token must have/ ],
) {
    my ($mod, $line, $re) = @$case;
    my $file = "$tmp/bad-$mod.conf";
    open(my $fh, '>', $file) or die $!;
    my $text = $line;
    print $fh base_conf("LoadModule proxy_module $lib/mod_proxy.so\n"
                        . "LoadModule nebula_${mod}_module $so{$mod}\n$text\n");
    close $fh;
    my ($rc, $out) = run_cmd(httpd_bin(), '-t', '-f', $file);
    (my $shown = $line) =~ s/\n\s*/ /g;
    ok($rc != 0 && $out =~ $re, "refused: $shown") or diag $out;
}
# checked at start-up (post_config), not by -t: a previous secret without
# the new one refuses to start, naming both directives
{
    my $port = do {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0);
        my $p = $s->sockport;
        close $s;
        $p;
    };
    (my $conf = base_conf("LoadModule proxy_module $lib/mod_proxy.so\n"
                          . "LoadModule nebula_relay_module $so{relay}\n"
                          . "NebulaCryptoSecretPrevious \"load-test-previous-secret-0123456789\"\n"))
        =~ s/127\.0\.0\.1:1\b/127.0.0.1:$port/;
    my $file = "$tmp/previous-only.conf";
    open(my $fh, '>', $file) or die $!;
    print $fh $conf;
    close $fh;
    # in the foreground (-k start detaches before the check); a server that
    # did start is ended by timeout's TERM (rc 124)
    my ($rc, $out) = run_cmd('timeout', '10', httpd_bin(), '-X', '-f', $file);
    my $log = -e "$tmp/error_log" ? do { local (@ARGV, $/) = "$tmp/error_log"; <> } : '';
    ok($rc != 0 && $rc != 124 && "$out$log" =~ /NEB01011: NebulaCryptoSecretPrevious needs NebulaCryptoSecret/,
       'refused at start: NebulaCryptoSecretPrevious without NebulaCryptoSecret') or diag "$out$log";
}
# every directive the modules define is documented in conf/nebula.conf
{
    my $conf = do { local (@ARGV, $/) = "$top/conf/nebula.conf"; <> };
    my %seen;
    for my $src (glob("$top/mod_nebula_*/*.c")) {
        my $text = do { local (@ARGV, $/) = $src; <> };
        $seen{$1} = $src while $text =~ /AP_INIT_\w+\(\s*"(Nebula\w+)"/g;
    }
    ok(scalar(keys %seen) > 20, 'directives found in the sources');
    for my $d (sort keys %seen) {
        like($conf, qr/^\s*#?\s*\Q$d\E\b/m, "$d is documented in conf/nebula.conf");
    }
}
done_testing();
