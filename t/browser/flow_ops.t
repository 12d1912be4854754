# The operator's flow in the admin UI, in headless Chromium: sign in through
# the form, create a channel on the mock provider, create a client key and
# read it from the one-time secret box, call the gateway with it, find that
# request in the logs page and open its detail, switch the language to
# Chinese and back. t/browser/flow_ops.mjs drives the browser.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib $FindBin::Bin;
use NebulaBrowser qw(browser_missing run_browser);

if (my $why = browser_missing()) {
    plan skip_all => $why;
}
run_browser('flow_ops.mjs');
done_testing();
