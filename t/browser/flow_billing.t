# The admin UI's billing and governance flow in headless Chromium, signed in
# through the form: top up a user's wallet and find it in the ledger page; a
# request with that user's key through the billed gateway (nebula_billed,
# billing on) shows its charge there; create a plan and a voucher batch for
# it, export the codes once; as the user redeem a code and see the
# subscription; edit a keyword-block policy and watch the sandbox decide
# allow -> block -> allow (shadow). t/browser/flow_billing.mjs drives the
# browser; RELAY_URL is the billed gateway here.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib $FindBin::Bin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin ();
use NebulaBrowser qw(browser_missing run_browser);

if (my $why = browser_missing()) {
    plan skip_all => $why;
}
run_browser('flow_billing.mjs', RELAY_URL => 'http://' . NebulaAdmin::hostport_of('nebula_billed'));
done_testing();
