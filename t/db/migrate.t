# t/db/migrate.t: schema migrations through `nebulactl migrate`, on the
# database named by NEBULA_TEST_DB (sqlite | pgsql | mysql):
#   - a fresh database is brought to the latest version, every table exists
#     and nebula_schema_version records each file's sha256;
#   - a second run applies nothing;
#   - a database at an older version, holding rows, migrates forward and
#     keeps them;
#   - a tampered checksum is refused, naming the file;
#   - a failing migration is rolled back (SQLite, PostgreSQL) or reported
#     as partially applied (MySQL), and a fixed file then applies;
#   - the migration lock is real: held elsewhere, migrate waits and times out;
#   - 4 concurrent runs apply each migration exactly once, all exit 0.
#
# Environment: NEBULA_CTL (default: the built admin/nebulactl/nebulactl), NEBULA_TEST_DB, and for
# pgsql/mysql NEBULA_TEST_PG_PARAMS / NEBULA_TEST_MYSQL_PARAMS (apr_dbd
# parameter strings, as printed by `scripts/testdb.sh env`). The database is
# emptied between scenarios. Checked with the native clients (sqlite3, psql,
# mariadb/mysql), not with nebulactl itself.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Basename qw(basename);
use File::Path qw(make_path);
use Digest::SHA qw(sha256_hex);
use FindBin;
use POSIX qw(_exit);
use IO::Handle;

my $ctl = $ENV{NEBULA_CTL} || "$FindBin::Bin/../../admin/nebulactl/nebulactl";
die "$ctl is not executable (build first, or set NEBULA_CTL)\n" unless -x $ctl;

my $kind = $ENV{NEBULA_TEST_DB} || 'sqlite';
my $top  = "$FindBin::Bin/../..";
my $tmp  = tempdir('nebula-migrate-XXXXXX', TMPDIR => 1, CLEANUP => 1);
alarm 600;    # every step below is bounded; this is the backstop

my %backend = (sqlite => \&sqlite_backend, pgsql => \&pgsql_backend,
               mysql => \&mysql_backend);
die "NEBULA_TEST_DB must be sqlite, pgsql or mysql, not '$kind'\n"
    unless $backend{$kind};
my $db = $backend{$kind}->();

my @tables = qw(nebula_schema_version users api_keys channels channel_keys
                abilities request_logs);
my @files  = sort glob("$top/sql/$db->{dir}/[0-9][0-9][0-9][0-9]_*.sql");
die "no migrations in $top/sql/$db->{dir}\n" unless @files;
my $latest = version_of($files[-1]);

# ---- helpers ---------------------------------------------------------------

sub version_of { my ($f) = @_; basename($f) =~ /^(\d{4})_/ or die $f; return 0 + $1 }

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($f, $text) = @_;
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh $text;
    close $fh or die "$f: $!";
}

# Start a command with stdout/stderr in files; returns a handle for finish().
sub start {
    my (@cmd) = @_;
    my $n   = int(rand(1e9));
    my %job = (out => "$tmp/out.$n", err => "$tmp/err.$n");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $job{out} or _exit(125);
        open STDERR, '>', $job{err} or _exit(125);
        exec @cmd or _exit(126);
    }
    $job{pid} = $pid;
    return \%job;
}

sub finish {
    my ($job) = @_;
    waitpid($job->{pid}, 0);
    my $rc = $? >> 8;
    return ($rc, slurp($job->{out}), slurp($job->{err}));
}

sub run { return finish(start(@_)) }

# A client reading SQL from a pipe we keep open (its stdout discarded).
sub pipe_to {
    my (@cmd) = @_;
    my $pid = open(my $fh, '|-') // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null' or _exit(125);
        exec @cmd or _exit(126);
    }
    $fh->autoflush(1);
    return $fh;
}

# nebulactl <command> on the test database; returns (rc, stdout, stderr).
sub ctl {
    my ($cmd, @opts) = @_;
    return run($ctl, $cmd, @{ $db->{args} }, @opts);
}

sub rows { my ($sql) = @_; return $db->{sql}->($sql) }

sub scalar_of {
    my ($sql) = @_;
    my @r = rows($sql);
    return @r ? $r[0][0] : undef;
}

sub applied_versions {
    return [ map { $_->[0] + 0 }
             rows('SELECT version FROM nebula_schema_version ORDER BY version') ];
}

# A copy of the dialect's migrations plus extra files: the --sql-dir tree.
sub fixture_dir {
    my ($name, %extra) = @_;
    my $dir = "$tmp/$name/sql";
    make_path("$dir/$db->{dir}");
    spew("$dir/$db->{dir}/" . basename($_), slurp($_)) for @files;
    spew("$dir/$db->{dir}/$_", $extra{$_}) for keys %extra;
    return "$tmp/$name/sql";
}

sub forward_sql {
    my $v = sprintf '%04d', $latest + 1;
    return ("${v}_test_forward.sql" => <<"SQL");
-- test fixture: a later migration that changes a table holding rows
ALTER TABLE users ADD COLUMN nickname VARCHAR(64) NOT NULL DEFAULT 'none';
CREATE TABLE test_forward (
    id INTEGER NOT NULL PRIMARY KEY,
    note VARCHAR(64)
);
INSERT INTO test_forward (id, note) VALUES (1, 'added by migration');
SQL
}

sub insert_rows {
    rows(q{INSERT INTO users (username, display_name, role, user_group, status,
           quota, used_quota, request_count, created_at, updated_at)
           VALUES ('alice', 'Alice', 'admin', 'default', 'active',
                   9007199254740993, 0, 0, 1700000000000, 1700000000000)});
    my $uid = scalar_of(q{SELECT id FROM users WHERE username = 'alice'});
    rows(qq{INSERT INTO api_keys (user_id, name, key_hash, key_prefix, created_at)
            VALUES ($uid, 'k1', '} . ('ab' x 32) . q{', 'sk-abc', 1700000000001)});
    rows(q{INSERT INTO channels (name, kind, models, channel_groups, created_at,
           updated_at) VALUES ('c1', 'openai', '["gpt-4o"]', '["default"]', 1, 2)});
}

sub check_rows_kept {
    is_deeply([ rows(q{SELECT username, quota FROM users}) ],
              [ [ 'alice', '9007199254740993' ] ], 'users row kept, BIGINT exact');
    is(scalar_of(q{SELECT COUNT(*) FROM api_keys WHERE key_prefix = 'sk-abc'}), 1,
       'api_keys row kept');
    is(scalar_of(q{SELECT COUNT(*) FROM channels WHERE name = 'c1'}), 1,
       'channels row kept');
}

# ---- scenarios ---------------------------------------------------------------

subtest 'fresh database migrates to the latest version' => sub {
    $db->{fresh}->();
    my ($rc, $out, $err) = ctl('migrate');
    is($rc, 0, 'migrate exits 0') or diag $err;
    like($out, qr/^migrated from version 0 to version $latest \(\d+ applied, 0 pending\)/,
         'reports from/to versions');
    is_deeply(applied_versions(), [ map { version_of($_) } @files ],
              'every migration recorded');
    for my $f (@files) {
        is(scalar_of('SELECT checksum FROM nebula_schema_version WHERE version = '
                     . version_of($f)), sha256_hex(slurp($f)),
           'checksum of ' . basename($f) . ' is its sha256');
    }
    for my $t (@tables) {
        my $n = scalar_of("SELECT COUNT(*) FROM $t");
        ok(defined $n && $n =~ /^\d+$/, "table $t exists and answers");
    }
    ($rc, $out) = ctl('schema-version');
    is($rc, 0, 'schema-version exits 0');
    like($out, qr/^current version: $latest\nlatest version: $latest\npending: 0$/m,
         'schema-version: current = latest, none pending');
};

subtest 'a second run applies nothing' => sub {
    my @before = rows('SELECT version, applied_at FROM nebula_schema_version');
    my ($rc, $out, $err) = ctl('migrate');
    is($rc, 0, 'migrate exits 0') or diag $err;
    like($out, qr/^up to date at version $latest \(0 applied, 0 pending\)/,
         'reports nothing applied');
    is_deeply([ rows('SELECT version, applied_at FROM nebula_schema_version') ],
              \@before, 'version rows untouched');
};

subtest 'an older database with rows migrates forward and keeps them' => sub {
    SKIP: {
        skip 'one embedded migration only: covered by the --sql-dir case below', 3
            if $latest < 2;
        $db->{fresh}->();
        my ($rc) = ctl('migrate', '--to', $latest - 1);
        is($rc, 0, 'migrate --to N-1');
        is_deeply(applied_versions(), [ 1 .. $latest - 1 ], 'stopped at N-1');
        insert_rows();
        ($rc) = ctl('migrate');
        is($rc, 0, 'migrate to N');
        check_rows_kept();
    }
    $db->{fresh}->();
    my $dir = fixture_dir('forward', forward_sql());
    my ($rc, $out, $err) = ctl('migrate', '--sql-dir', $dir, '--to', $latest);
    is($rc, 0, "--sql-dir copy, --to $latest") or diag $err;
    like($out, qr/\(\d+ applied, 1 pending\)/, 'one left pending');
    insert_rows();
    ($rc, $out, $err) = ctl('migrate', '--sql-dir', $dir);
    is($rc, 0, 'migrate forward') or diag $err;
    like($out, qr/^migrated from version $latest to version @{[$latest + 1]} \(1 applied/,
         'applied the later migration only');
    check_rows_kept();
    is(scalar_of(q{SELECT nickname FROM users WHERE username = 'alice'}), 'none',
       'old row got the new column default');
    is(scalar_of('SELECT note FROM test_forward WHERE id = 1'), 'added by migration',
       'new table and its data');
    ($rc, $out) = ctl('schema-version');
    is($rc, 0, 'an older binary still reads the status');
    like($out, qr/newer than this build/, 'and notes the newer migration');
};

subtest 'a tampered checksum is refused, naming the file' => sub {
    $db->{fresh}->();
    my ($rc) = ctl('migrate');
    is($rc, 0, 'fresh migrate');
    rows(q{UPDATE nebula_schema_version SET checksum = '} . ('0' x 64)
         . q{' WHERE version = 1});
    my ($out, $err);
    ($rc, $out, $err) = ctl('migrate');
    is($rc, 1, 'migrate exits 1');
    my $file = "sql/$db->{dir}/" . basename($files[0]);
    like($err, qr/\Q$file\E/, 'the message names the file');
    like($err, qr/checksum/, 'and says why');
    ($rc, $out, $err) = ctl('schema-version');
    is($rc, 1, 'schema-version refuses too');
    like($err, qr/\Q$file\E/, 'naming the file');
};

subtest 'a failing migration is rolled back or reported' => sub {
    $db->{fresh}->();
    my $v      = sprintf '%04d', $latest + 1;
    my $create = $db->{dir} eq 'mysql' ? 'CREATE TABLE IF NOT EXISTS' : 'CREATE TABLE';
    my $dir    = fixture_dir('broken', "${v}_test_broken.sql" => <<"SQL");
$create test_broken (id INTEGER NOT NULL PRIMARY KEY);
INSERT INTO no_such_table (id) VALUES (1);
SQL
    my ($rc, $out, $err) = ctl('migrate', '--sql-dir', $dir);
    is($rc, 1, 'migrate exits 1');
    like($err, qr/${v}_test_broken\.sql failed at line 2/, 'names the file and line');
    is_deeply(applied_versions(), [ map { version_of($_) } @files ],
              'the earlier migrations stay applied, the broken one is not recorded');
    my $exists = grep { $_->[0] eq 'test_broken' } $db->{tables}->();
    if ($db->{dir} eq 'mysql') {
        ok($exists, 'MySQL: DDL before the failure stays (it auto-commits)');
        like($err, qr/MySQL cannot roll back DDL/, 'and the message says so');
    }
    else {
        ok(!$exists, 'the file was rolled back');
    }
    spew("$dir/$db->{dir}/${v}_test_broken.sql",
         "$create test_broken (id INTEGER NOT NULL PRIMARY KEY);\n");
    ($rc, $out, $err) = ctl('migrate', '--sql-dir', $dir);
    is($rc, 0, 'the fixed file applies') or diag $err;
    like($out, qr/\(1 applied, 0 pending\)/, 'one applied');
    spew("$dir/$db->{dir}/${v}_test_broken.sql", "SELECT 1; SELECT 2;\n");
    ($rc, $out, $err) = ctl('migrate', '--sql-dir', $dir);
    is($rc, 1, 'an edited applied file is refused');
    like($err, qr/${v}_test_broken\.sql.*checksum/, 'by its checksum');
};

subtest 'the migration lock is held across processes' => sub {
    $db->{fresh}->();
    my $holder = $db->{hold_lock}->();
    my $t0 = time;
    my ($rc, $out, $err) = ctl('migrate', '--lock-timeout', 2);
    my $took = time - $t0;
    $db->{release_lock}->($holder);
    is($rc, 1, 'migrate fails while another session holds the lock');
    like($err, qr/could not take the migration lock within 2000 ms/, 'says so');
    ok($took >= 1 && $took < 30, "waited for the timeout (${took}s)");
    is(scalar(@{ applied_versions_if_any() }), 0, 'nothing applied meanwhile');
    ($rc) = ctl('migrate');
    is($rc, 0, 'migrate succeeds once the lock is free');
};

sub applied_versions_if_any {
    my $exists = grep { $_->[0] eq 'nebula_schema_version' } $db->{tables}->();
    return $exists ? applied_versions() : [];
}

for my $case ([ 'embedded', undef ], [ 'with a later data migration', 'forward' ]) {
    my ($label, $fixture) = @$case;
    subtest "4 concurrent runs apply each migration once ($label)" => sub {
        $db->{fresh}->();
        my @extra = $fixture ? ('--sql-dir', fixture_dir("conc-$fixture", forward_sql()))
                             : ();
        my $want = $latest + ($fixture ? 1 : 0);
        my @jobs = map { start($ctl, 'migrate', @{ $db->{args} }, @extra) } 1 .. 4;
        my ($applied, $ok) = (0, 0);
        for my $job (@jobs) {
            my ($rc, $out, $err) = finish($job);
            $ok++ if $rc == 0;
            diag "exit $rc: $err" if $rc != 0;
            $applied += $1 if $out =~ /\((\d+) applied/;
        }
        is($ok, 4, 'all 4 exit 0');
        is($applied, $want, "$want migration(s) applied in total");
        is_deeply([ rows('SELECT version, COUNT(*) FROM nebula_schema_version '
                         . 'GROUP BY version ORDER BY version') ],
                  [ map { [ $_, 1 ] } 1 .. $want ], 'each version recorded once');
        if ($fixture) {
            is(scalar_of('SELECT COUNT(*) FROM test_forward'), 1,
               'the data migration ran once');
        }
    };
}

done_testing();

# ---- backends ------------------------------------------------------------------

sub capture {
    my (@cmd) = @_;
    my ($rc, $out, $err) = run(@cmd);
    die "$cmd[0] failed ($rc): $err\n" if $rc != 0;
    return map { [ split /\t/, $_, -1 ] } split /\n/, $out;
}

sub sqlite_backend {
    system('sqlite3 -version >/dev/null 2>&1') == 0
        or plan skip_all => 'the sqlite3 command-line client is not installed';
    my $n = 0;
    my $b = { dir => 'sqlite' };
    $b->{fresh} = sub {
        $b->{file} = "$tmp/db" . ++$n . '.sqlite';
        $b->{args} = [ '--driver', 'sqlite3', '--params', $b->{file} ];
    };
    $b->{sql} = sub {
        my ($sql) = @_;
        return capture('sqlite3', '-batch', '-bail', '-separator', "\t",
                       '-cmd', '.timeout 10000', $b->{file}, $sql);
    };
    $b->{tables} = sub {
        return $b->{sql}->(q{SELECT name FROM sqlite_master WHERE type = 'table'});
    };
    $b->{hold_lock} = sub {
        # a second process holding the database's write lock
        my $fh = pipe_to('sqlite3', $b->{file});
        print $fh ".timeout 10000\nBEGIN IMMEDIATE;\n";
        wait_until(sub {
            my ($rc) = run('sqlite3', '-cmd', '.timeout 0', $b->{file},
                           'BEGIN IMMEDIATE; ROLLBACK;');
            return $rc != 0;
        });
        return $fh;
    };
    $b->{release_lock} = sub { my ($fh) = @_; print $fh "ROLLBACK;\n"; close $fh };
    $b->{fresh}->();
    return $b;
}

sub pgsql_backend {
    my $params = $ENV{NEBULA_TEST_PG_PARAMS}
        or plan skip_all => 'NEBULA_TEST_PG_PARAMS not set (scripts/testdb.sh env)';
    my $b = { dir => 'postgresql', args => [ '--driver', 'pgsql', '--params', $params ] };
    my @psql = ('psql', '-X', '-q', '-A', '-t', '-F', "\t", '-v', 'ON_ERROR_STOP=1',
                '-d', $params);
    $b->{sql}    = sub { return capture(@psql, '-c', $_[0]) };
    $b->{fresh}  = sub { $b->{sql}->('DROP SCHEMA public CASCADE; CREATE SCHEMA public') };
    $b->{tables} = sub {
        return $b->{sql}->(q{SELECT table_name FROM information_schema.tables
                             WHERE table_schema = current_schema()});
    };
    $b->{hold_lock} = sub {
        my $fh = pipe_to(@psql);
        print $fh "SELECT pg_advisory_lock(5649029564075167047);\n";
        wait_until(sub {
            return $b->{sql}->(q{SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                                 AND granted}) > 0;
        });
        return $fh;
    };
    $b->{release_lock} = sub { my ($fh) = @_; print $fh "\\q\n"; close $fh };
    return $b;
}

sub mysql_backend {
    my $params = $ENV{NEBULA_TEST_MYSQL_PARAMS}
        or plan skip_all => 'NEBULA_TEST_MYSQL_PARAMS not set (scripts/testdb.sh env)';
    my %p = map { split /=/, $_, 2 } split ' ', $params;
    my ($client) = grep { system("$_ --version >/dev/null 2>&1") == 0 } qw(mariadb mysql);
    plan skip_all => 'no mariadb/mysql command-line client' unless $client;
    my @cli = ($client, '--no-defaults', '-N', '-B', '-u', $p{user},
               ($p{pass} ? "-p$p{pass}" : ()),
               ($p{sock} ? "--socket=$p{sock}" : ('-h', $p{host} // '127.0.0.1')),
               ($p{port} ? ('-P', $p{port}) : ()));
    my $b = { dir => 'mysql', args => [ '--driver', 'mysql', '--params', $params ] };
    $b->{sql}   = sub { return capture(@cli, '-D', $p{dbname}, '-e', $_[0]) };
    $b->{fresh} = sub {
        capture(@cli, '-e', "DROP DATABASE IF EXISTS `$p{dbname}`; CREATE DATABASE "
                . "`$p{dbname}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
    };
    $b->{tables} = sub {
        return $b->{sql}->(q{SELECT table_name FROM information_schema.tables
                             WHERE table_schema = DATABASE()});
    };
    $b->{hold_lock} = sub {
        my $fh = pipe_to(@cli, '-D', $p{dbname});
        print $fh "SELECT GET_LOCK(CONCAT('nebula_migrate:', DATABASE()), 30);\n";
        wait_until(sub {
            my @r = $b->{sql}->(q{SELECT IS_USED_LOCK(CONCAT('nebula_migrate:',
                                  DATABASE())) IS NOT NULL});
            return $r[0][0] eq '1';
        });
        return $fh;
    };
    $b->{release_lock} = sub { my ($fh) = @_; print $fh "quit\n"; close $fh };
    return $b;
}

sub wait_until {
    my ($cond) = @_;
    for (1 .. 100) {
        return 1 if $cond->();
        select(undef, undef, undef, 0.1);
    }
    die "condition not met within 10 s\n";
}
