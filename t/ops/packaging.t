# Packaging (docs/packaging.md): every compose file parses as YAML and its
# services reference each other and agree on credentials; the Docker
# entrypoint maps each of new-api's SQL_DSN forms, unchanged, onto the mod_dbd
# driver and parameters; `make install DESTDIR=...` lays out Debian's and the
# official httpd image's trees, and the installed nebulactl migrates. The
# .deb itself is installed and loaded by scripts/package-test.sh (as root).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use File::Find ();
use YAML::XS ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir libexecdir run_cmd);

my $top = top_dir();
my @compose = sort glob("$top/docker/docker-compose*.yml");
my %db_image = (postgres => 'pgsql', mariadb => 'mysql', mysql => 'mysql');

plan tests => 1 + 9 * 3 + 15 + 13;

# ---- compose files -----------------------------------------------------------
is_deeply([map { s{.*/}{}r } @compose],
          [qw(docker-compose.mysql.yml docker-compose.postgres.yml docker-compose.yml)],
          'the three compose files');
my %dsn_of;
for my $file (@compose) {
    my $name = $file =~ s{.*/}{}r;
    my $y = eval { YAML::XS::LoadFile($file) };
    ok($y && ref $y->{services} eq 'HASH', "$name parses as YAML with services")
        or diag($@);
    $y ||= {services => {}};
    my $svc = $y->{services};
    my $gw = $svc->{gateway} || {};
    is("$gw->{build}{context}/$gw->{build}{dockerfile}", '../docker/Dockerfile',
       "$name: the gateway builds docker/Dockerfile from the repository root");
    ok(-f "$top/docker/$gw->{build}{context}/$gw->{build}{dockerfile}",
       "$name: that Dockerfile exists");
    my @deps = sort keys %{ $gw->{depends_on} || {} };
    my @missing = grep { !$svc->{$_} } @deps;
    ok(@deps >= 2 && !@missing, "$name: depends_on names defined services (@deps)");
    my ($db) = grep { my $i = $svc->{$_}{image} // ''; grep { $i =~ /^$_:/ } keys %db_image } @deps;
    my $dsn = $gw->{environment}{SQL_DSN} // '';
    $dsn_of{$name} = $dsn;
    # user:pass@host as URL or as the Go driver's user:pass@tcp(host:port)
    my ($user, $pass, $host, $dbname) =
        $dsn =~ m{^(?:\w+://)?([^:@/]+):([^@]+)@(?:tcp\()?([^:/)]+)(?::\d+)?\)?/([^?]+)};
    is($host, $db, "$name: SQL_DSN's host is the database service ($db)");
    my $env = $db ? $svc->{$db}{environment} : {};
    my ($envuser) = map { $env->{$_} } grep { /^(POSTGRES|MARIADB|MYSQL)_USER$/ } keys %$env;
    my ($envpass) = map { $env->{$_} } grep { /^(POSTGRES|MARIADB|MYSQL)_PASSWORD$/ } keys %$env;
    my ($envdb)   = map { $env->{$_} } grep { /^(POSTGRES_DB|MARIADB_DATABASE|MYSQL_DATABASE)$/ } keys %$env;
    is(join(' ', $user // '-', $pass // '-', $dbname // '-'),
       join(' ', $envuser // '?', $envpass // '?', $envdb // '?'),
       "$name: SQL_DSN's user, password and database are the ones $db creates");
    ok($db && $svc->{$db}{healthcheck} && ($gw->{depends_on}{$db}{condition} // '') eq 'service_healthy',
       "$name: the gateway waits for $db to be healthy");
    my ($redis) = ($gw->{environment}{REDIS_CONN_STRING} // '') =~ m{^redis://([^:/]+)};
    ok($redis && $svc->{$redis}, "$name: REDIS_CONN_STRING names a service ($redis)");
    my @vols = map { m{^([^/:.][^:]*):} ? $1 : () } map { @{ $_->{volumes} || [] } } values %$svc;
    my @undeclared = grep { !exists(($y->{volumes} || {})->{$_}) } @vols;
    ok(@vols && !@undeclared, "$name: named volumes are declared (@vols)");
}

# ---- the entrypoint's SQL_DSN mapping ------------------------------------------
my $bin = tempdir(CLEANUP => 1);
my $ctl = $ENV{NEBULA_CTL} || "$top/admin/nebulactl/nebulactl";
symlink($ctl, "$bin/nebulactl") or die "symlink: $!";
sub entry {
    my (%env) = @_;
    local %ENV = (PATH => "$bin:$ENV{PATH}", SESSION_SECRET => 's' x 32,
                  CRYPTO_SECRET => 'c' x 32, %env);
    delete $ENV{$_} for grep { !defined $ENV{$_} } keys %ENV;
    return run_cmd('sh', "$top/docker/entrypoint.sh", '--print-dbd');
}
my $mysql_tail = 'reconnect=0 flags=CLIENT_FOUND_ROWS';
my @forms = (
    ['root:123456@tcp(localhost:3306)/oneapi?charset=utf8mb4&parseTime=True&loc=Local',
     'mysql', "host=localhost port=3306 user=root pass=123456 dbname=oneapi $mysql_tail"],
    ['u:p@unix(/run/mysqld/mysqld.sock)/db?charset=utf8mb4&parseTime=true',
     'mysql', "user=u pass=p dbname=db sock=/run/mysqld/mysqld.sock $mysql_tail"],
    ['root:p@ss:w@tcp(db:3306)/x', 'mysql', "host=db port=3306 user=root pass=p\@ss:w dbname=x $mysql_tail"],
    ['postgres://u:p@pg:5432/newapi?sslmode=disable', 'pgsql',
     "host='pg' port='5432' user='u' password='p' dbname='newapi' sslmode='disable'"],
    ['postgresql://u:p%40x@pg/newapi', 'pgsql', "host='pg' user='u' password='p\@x' dbname='newapi'"],
    ['mysql://u:p@h:3306/d', 'mysql', "host=h port=3306 user=u pass=p dbname=d $mysql_tail"],
    ['sqlite:/data/gw.db', 'sqlite3', '/data/gw.db'],
);
for my $f (@forms) {
    my ($rc, $out) = entry(SQL_DSN => $f->[0]);
    is($out, "$f->[1]\n$f->[2]\n", "SQL_DSN=$f->[0]");
}
# new-api: empty or "local" is SQLite at SQLITE_PATH (its default has a query)
my ($rc, $out) = entry(SQL_DSN => 'local', SQLITE_PATH => undef);
is($out, "sqlite3\n/var/lib/nebula/nebula.db\n", 'SQL_DSN=local: the image\'s SQLite file');
($rc, $out) = entry(SQL_DSN => undef, SQLITE_PATH => 'one-api.db?_busy_timeout=30000');
is($out, "sqlite3\n/var/lib/nebula/one-api.db\n",
   'no SQL_DSN, new-api\'s SQLITE_PATH: the query dropped, under /var/lib/nebula');
($rc, $out) = entry(SQL_DSN => 'local', SQLITE_PATH => '/srv/new-api/one-api.db');
is($out, "sqlite3\n/srv/new-api/one-api.db\n", 'SQL_DSN=local with an absolute SQLITE_PATH');
($rc, $out) = entry(SQL_DSN => 'oracle://u:p@h/d');
ok($rc != 0 && $out =~ /unrecognised DSN/ && $out !~ /^oracle|^mysql|^pgsql/m,
   'an unknown DSN stops the entrypoint with nebulactl\'s message');
($rc, $out) = entry(SQL_DSN => 'sqlite:/x.db', CRYPTO_SECRET => undef);
ok($rc != 0 && $out =~ /CRYPTO_SECRET must be set/, 'no CRYPTO_SECRET: refused');
# each compose file's own SQL_DSN
my %want = ('docker-compose.mysql.yml' => "mysql\nhost=mysql port=3306 user=nebula pass=nebula",
            'docker-compose.postgres.yml' => "pgsql\nhost='postgres' port='5432' user='nebula'",
            'docker-compose.yml' => "mysql\nhost=mysql port=3306 user=nebula pass=nebula");
for my $name (sort keys %want) {
    ($rc, $out) = entry(SQL_DSN => $dsn_of{$name} // '');
    like($out, qr/^\Q$want{$name}\E/,
         "$name: its SQL_DSN maps to " . ($want{$name} =~ s/\n/ | /r) . ' ...');
}

# ---- make install DESTDIR=... ---------------------------------------------------
sub files_under {
    my ($root) = @_;
    my @f;
    File::Find::find(sub { push @f, $File::Find::name =~ s{^\Q$root\E}{}r if -f || -l }, $root);
    return sort @f;
}
my $libexec = libexecdir();
my $deb = tempdir(CLEANUP => 1);
($rc, $out) = run_cmd('make', '-C', $top, '-s', 'install', "DESTDIR=$deb", 'prefix=/usr');
is($rc, 0, 'make install DESTDIR prefix=/usr') or diag(substr($out, -2000));
my @files = files_under($deb);
is_deeply([grep { m{^\Q$libexec\E/} } @files],
          [map { "$libexec/mod_nebula_$_.so" } qw(billing gov relay)],
          "the three modules, alone, in apxs's LIBEXECDIR ($libexec)");
is_deeply([grep { m{/bin/} } @files], ['/usr/bin/nebulactl'], 'nebulactl in /usr/bin');
ok((grep { $_ eq '/usr/share/nebula/admin-ui/index.html' } @files)
   && (grep { m{^/usr/share/nebula/admin-ui/.+\.js$} } @files), 'the admin UI in /usr/share/nebula/admin-ui');
my @sql = grep { m{^/usr/share/nebula/sql/} } @files;
my @src_sql = map { s{^\Q$top\E/sql}{/usr/share/nebula/sql}r } glob("$top/sql/{sqlite,postgresql,mysql}/*.sql");
is_deeply(\@sql, [sort @src_sql], 'the migrations of each dialect in /usr/share/nebula/sql');
my @other = grep { !m{^(\Q$libexec\E|/usr/bin|/usr/share/nebula/(admin-ui|sql))/} } @files;
is_deeply(\@other, [], 'nothing else installed');
# the installed nebulactl, with its embedded migrations and with the installed files
my $db = "$deb/x.db";
($rc, $out) = run_cmd("$deb/usr/bin/nebulactl", 'migrate', '--dsn', "sqlite:$db");
is($rc, 0, 'the installed nebulactl migrates a new SQLite database') or diag($out);
my ($rc1, $embedded) = run_cmd("$deb/usr/bin/nebulactl", 'schema-version', '--dsn', "sqlite:$db");
my ($rc2, $fromdir) = run_cmd("$deb/usr/bin/nebulactl", 'schema-version', '--dsn', "sqlite:$db",
                              '--sql-dir', "$deb/usr/share/nebula/sql");
ok($rc1 == 0 && $embedded =~ /^current version: [1-9]\d*\n.*\npending: 0$/s,
   'schema-version after migrate: nothing pending') or diag($embedded);
is($fromdir, $embedded, '--sql-dir /usr/share/nebula/sql: the same schema as the embedded copy');
# the official httpd image's layout: modules in /usr/local/apache2/modules
my $img = tempdir(CLEANUP => 1);
($rc, $out) = run_cmd('make', '-C', $top, '-s', 'install', "DESTDIR=$img",
                      'HTTPD_LIBEXECDIR=/usr/local/apache2/modules', 'prefix=/usr/local');
is($rc, 0, 'make install for the httpd image (HTTPD_LIBEXECDIR, prefix=/usr/local)')
    or diag(substr($out, -2000));
@files = files_under($img);
is_deeply([grep { m{/modules/|/bin/} } @files],
          [(map { "/usr/local/apache2/modules/mod_nebula_$_.so" } qw(billing gov relay)),
           '/usr/local/bin/nebulactl'], 'modules in /usr/local/apache2/modules, nebulactl in /usr/local/bin');
ok(-f "$img/usr/local/share/nebula/admin-ui/index.html", 'the admin UI in /usr/local/share/nebula');
# uninstall takes back what install put
($rc, $out) = run_cmd('make', '-C', $top, '-s', 'uninstall', "DESTDIR=$img",
                      'HTTPD_LIBEXECDIR=/usr/local/apache2/modules', 'prefix=/usr/local');
is_deeply([files_under($img)], [], 'make uninstall leaves no file') or diag($out);
