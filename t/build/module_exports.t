# Each DSO exports only its *_module symbol, so the three static copies of
# libnebula_common never bind to each other (httpd loads DSOs RTLD_GLOBAL).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir run_cmd);

my $top = top_dir();
for my $m (qw(relay billing gov)) {
    my $so = "$top/mod_nebula_$m/.libs/mod_nebula_$m.so";
    ok(-f $so, "mod_nebula_$m.so built");
    my ($rc, $out) = run_cmd('nm', '-D', '--defined-only', $so);
    is($rc, 0, "nm reads mod_nebula_$m.so");
    my @syms = grep { !/^(_init|_fini|_edata|_end|__bss_start)$/ }
               map { (split ' ')[2] // () } split /\n/, $out;
    is_deeply(\@syms, ["nebula_${m}_module"], "mod_nebula_$m exports only nebula_${m}_module")
        or diag "exported: @syms";
}
done_testing();
