package NebulaBrowser;
# Runs a browser test script (t/browser/<x>.mjs: headless Chromium through
# playwright-core) against the test server and turns its TAP output into
# this test's results. The script gets ADMIN_URL, RELAY_URL, MOCK_URL and
# ADMIN_TOKEN in its environment.
use strict;
use warnings;
use Exporter 'import';
use FindBin;
use Test::More ();
use lib "$FindBin::Bin/../lib";
use NebulaAdmin ();

our @EXPORT_OK = qw(browser_missing run_browser);

my $dir = $FindBin::Bin;
my $chromium = $ENV{CHROMIUM} || '/usr/bin/chromium';

# why the browser tests cannot run here, or undef; under CI a missing
# browser is a failure, not a skip (./nebula test installs both)
sub browser_missing {
    my $why = _missing();
    if ($why && $ENV{CI}) {
        Test::More::plan(tests => 1);
        Test::More::ok(0, "the browser tests must run in CI: $why");
        exit 1;
    }
    return $why;
}

sub _missing {
    return "no Chromium at $chromium (Debian: apt-get install chromium)" unless -x $chromium;
    return "no t/browser/node_modules/playwright-core (run scripts/npm-deps.sh)"
        unless -f "$dir/node_modules/playwright-core/package.json";
    my $v = `node --version 2>/dev/null` // '';
    return "node is missing" unless $v =~ /^v(\d+)/;
    return;
}

# run_browser('pages.mjs'): one Test::More result per TAP line of the script
sub run_browser {
    my ($script, %extra) = @_;
    local $ENV{ADMIN_URL} = 'http://' . NebulaAdmin::hostport_of('nebula_admin');
    local $ENV{RELAY_URL} = 'http://' . NebulaAdmin::relay_hostport();
    local $ENV{MOCK_URL} = NebulaAdmin::mock_url();
    local $ENV{ADMIN_TOKEN} = $NebulaAdmin::TOKEN;
    local @ENV{ keys %extra } = values %extra;
    my $t0 = time;
    open(my $out, '-|', 'timeout', '170', 'node', "$dir/$script") or die "cannot run node: $!";
    my ($seen, $planned) = (0, undef);
    while (my $l = <$out>) {
        chomp $l;
        if ($l =~ /^(not )?ok \d+(?: - (.*))?$/) {
            $seen++;
            Test::More::ok(!$1, $2 // "$script test $seen");
        }
        elsif ($l =~ /^1\.\.(\d+)$/) { $planned = $1 }
        elsif ($l =~ /^Bail out!\s*(.*)$/) { Test::More::ok(0, "$script bailed out: $1") }
        elsif ($l =~ /^#\s?(.*)$/) { Test::More::diag($1) }
        elsif (length $l) { Test::More::diag("$script: $l") }
    }
    close $out;
    my $rc = $? >> 8;
    Test::More::ok($rc == 0 && defined $planned && $planned == $seen,
        "$script finished (exit $rc, " . ($planned // 'no') . " planned, $seen run, "
        . (time - $t0) . ' s)');
}

1;
