# httpd itself brought its database to the latest schema when its children
# started (mod_dbd connection, migration lock), on whichever database this
# run uses (NEBULA_TEST_DB): nothing ran nebulactl against it before.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir run_cmd);

plan tests => 5;

my $ctl = $ENV{NEBULA_CTL} || top_dir() . '/admin/nebulactl/nebulactl';
my @db = ('--driver', $ENV{NEBULA_TEST_DBD_DRIVER}, '--params', $ENV{NEBULA_TEST_DBD_PARAMS});

# the latest version this build knows: the highest NNNN in sql/<dialect>/
my %dir = (sqlite3 => 'sqlite', pgsql => 'postgresql', mysql => 'mysql');
my ($latest) = sort { $b <=> $a } map { /(\d{4})_\w+\.sql$/ ? 0 + $1 : () }
    glob(top_dir() . "/sql/$dir{$ENV{NEBULA_TEST_DBD_DRIVER}}/*.sql");
ok($latest, "this build has migrations for $ENV{NEBULA_TEST_DBD_DRIVER}");

my ($rc, $out) = run_cmd($ctl, 'schema-version', @db);
is($rc, 0, 'nebulactl reads the schema version of the server\'s database') or diag $out;
like($out, qr/^current version: $latest$/m, "the server migrated it to version $latest") or diag $out;
like($out, qr/^pending: 0$/m, 'nothing pending') or diag $out;

# the error log tells which process did it, once
my $log = do { local (@ARGV, $/) = Apache::Test::vars('t_logs') . '/error_log'; <> };
my @applied = $log =~ /NEB00209: database schema migrated/g;
cmp_ok(scalar @applied, '<=', 1, 'at most one child applied migrations (the others found them done)');
