# Every page of the admin UI renders in headless Chromium, without console
# or page errors, at a laptop (1366x768) and a phone (390x844) width, for a
# root user and for a user of role `user`; screenshots go to
# t/browser/screenshots/. t/browser/pages.mjs drives the browser.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib $FindBin::Bin;
use NebulaBrowser qw(browser_missing run_browser);

if (my $why = browser_missing()) {
    plan skip_all => $why;
}
run_browser('pages.mjs');
done_testing();
