# The Docker image's parts that run without a Docker engine: the entrypoint
# maps SQL_DSN and the other env vars onto the directives and migrates the
# database; the image's httpd config (docker/httpd-nebula.conf with
# conf/nebula.load) passes httpd -t with the built modules.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir libexecdir httpd_bin run_cmd);

my $top = top_dir();
my $tmp = tempdir(CLEANUP => 1);
my $ctldir = "$top/admin/nebulactl";
local $ENV{PATH} = "$ctldir:$ENV{PATH}";

# --- the entrypoint --------------------------------------------------------
{
    local $ENV{SESSION_SECRET} = 's' x 32;
    local $ENV{CRYPTO_SECRET}  = 'c' x 32;
    local $ENV{SQL_DSN}        = "sqlite:$tmp/entry.db";
    local $ENV{STREAMING_TIMEOUT} = '120';
    my ($rc, $out) = run_cmd('sh', "$top/docker/entrypoint.sh", 'sh', '-c',
        'printf "%s|%s|%s|%s\n" "$NEBULA_DBD_DRIVER" "$NEBULA_DBD_PARAMS" "$STREAMING_TIMEOUT" "$TZ"');
    is($rc, 0, 'entrypoint runs the command') or diag $out;
    like($out, qr{^sqlite3\|\Q$tmp\E/entry\.db\|120\|UTC$}m,
         'SQL_DSN becomes DBDriver/DBDParams; STREAMING_TIMEOUT and TZ pass through') or diag $out;
    my ($rc2, $ver) = run_cmd('nebulactl', 'schema-version', '--dsn', "sqlite:$tmp/entry.db");
    like($ver, qr/^pending: 0$/m, 'the entrypoint migrated the database') or diag $ver;
}
{
    local $ENV{CRYPTO_SECRET} = 'c' x 32;
    delete local $ENV{SESSION_SECRET};
    my ($rc, $out) = run_cmd('sh', "$top/docker/entrypoint.sh", 'true');
    isnt($rc, 0, 'entrypoint refuses to start without SESSION_SECRET');
    like($out, qr/SESSION_SECRET must be set/, 'and says why');
}
{
    local $ENV{SESSION_SECRET} = 's' x 32;
    local $ENV{CRYPTO_SECRET}  = 'c' x 32;
    local $ENV{SQL_DSN}        = 'nosuch://x';
    my ($rc, $out) = run_cmd('sh', "$top/docker/entrypoint.sh", 'true');
    isnt($rc, 0, 'a malformed SQL_DSN stops the entrypoint');
    like($out, qr/unrecognised DSN/, 'with the parser\'s message');
}

# --- the image's httpd configuration ----------------------------------------
{
    my $root = "$tmp/apache2";
    make_path("$root/conf/nebula", "$root/modules", "$root/logs", "$root/nebula-admin");
    my $lib = libexecdir();
    symlink($_, "$root/modules/" . (split m{/}, $_)[-1]) for glob("$lib/*.so");
    symlink("$top/mod_nebula_$_/.libs/mod_nebula_$_.so", "$root/modules/mod_nebula_$_.so")
        for qw(relay billing gov);
    for my $f (qw(nebula.load nebula.conf)) {
        symlink("$top/conf/$f", "$root/conf/nebula/$f");
    }
    (my $conf = do { local (@ARGV, $/) = "$top/docker/httpd-nebula.conf"; <> })
        =~ s{/usr/local/apache2}{$root}g;
    open(my $fh, '>', "$root/conf/httpd.conf") or die $!;
    print $fh "ServerRoot \"$root\"\nPidFile logs/httpd.pid\nErrorLog logs/error_log\n"
        . "ServerName localhost\nLoadModule mpm_event_module modules/mod_mpm_event.so\n"
        . "LoadModule authz_core_module modules/mod_authz_core.so\n"
        # the official image's httpd.conf loads mod_dir (DirectoryIndex)
        . "LoadModule dir_module modules/mod_dir.so\n$conf";
    close $fh;
    local $ENV{NEBULA_DBD_DRIVER} = 'sqlite3';
    local $ENV{NEBULA_DBD_PARAMS} = "$tmp/image.db";
    local $ENV{STREAMING_TIMEOUT} = '300';
    local $ENV{CRYPTO_SECRET} = 'c' x 32;
    local $ENV{SESSION_SECRET} = 's' x 32;
    local $ENV{REDIS_CONN_STRING} = 'redis://redis:6379/0';
    local $ENV{AZURE_DEFAULT_API_VERSION} = '2024-10-21'; # the entrypoint's default
    local $ENV{UPSTREAM_ALLOW} = 'none';                    # the entrypoint's default
    my ($rc, $out) = run_cmd(httpd_bin(), '-t', '-f', "$root/conf/httpd.conf");
    ok($rc == 0 && $out =~ /Syntax OK/, 'the image\'s httpd config passes httpd -t') or diag $out;
}
done_testing();
