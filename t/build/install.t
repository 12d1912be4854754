# `make install` installs the three DSOs through apxs into LIBEXECDIR (here
# under a DESTDIR), the way the Docker image's build stage does.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir libexecdir run_cmd);

my $top  = top_dir();
my $dest = tempdir(CLEANUP => 1);
my ($rc, $out) = run_cmd('make', '-s', '-C', $top, 'install-exec-local', "DESTDIR=$dest");
is($rc, 0, 'make install-exec-local succeeds') or diag $out;
for my $m (qw(relay billing gov)) {
    ok(-f $dest . libexecdir() . "/mod_nebula_$m.so", "mod_nebula_$m.so installed");
}
unlike($out, qr/LoadModule/i, 'apxs was not asked to edit httpd.conf (-a)');
done_testing();
