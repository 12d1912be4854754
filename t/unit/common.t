# The C unit tests of libnebula_common (libcheck, TAP on stdout).
use strict;
use warnings;
use FindBin;
my $bin = "$FindBin::Bin/test_common";
if (!-x $bin) {
    print "1..1\nnot ok 1 - t/unit/test_common is built (install check, rebuild)\n";
    exit 1;
}
$ENV{CK_TAP_LOG_FILE_NAME} = '-';
$ENV{CK_VERBOSITY} = 'silent';
exec $bin or die "cannot run $bin: $!";
