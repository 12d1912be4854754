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

# the admin UI's static files, every one of them
my $ui = tempdir(CLEANUP => 1);
($rc, $out) = run_cmd('make', '-s', '-C', $top, 'install-data-local', "DESTDIR=$ui",
                      'datadir=/usr/share');
is($rc, 0, 'make install-data-local succeeds') or diag $out;
my @want = split /\n/, `cd $top/admin/ui && find . -type f | sort`;
my @got = split /\n/, `cd $ui/usr/share/nebula/admin-ui && find . -type f | sort`;
ok(@want >= 10 && grep({ $_ eq './assets/app.js' } @want), 'the UI has its files');
is_deeply(\@got, \@want, 'every file of admin/ui installed under datadir/nebula/admin-ui');
done_testing();
