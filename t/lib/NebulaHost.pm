package NebulaHost;
# Extra one-child gateway hosts beside the Apache::Test server, on the same
# database (and Redis when asked): what a second httpd of a scale-out sees.
#   my $h = extra_host(conf => "NebulaRedis $url", gov => 1, loglevel => '...');
#   host_ask($h, $key, $model) -> HTTP status;  host_error_log($h);  stop_host($h)
use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP qw(encode_json);
use Time::HiRes qw(sleep);
use NebulaTest qw(top_dir libexecdir httpd_bin run_cmd);

our @EXPORT_OK = qw(extra_host stop_host host_ask host_error_log free_port);

# A port nothing listens on, never one this process was given before: the
# kernel may hand a just-closed ephemeral port out again at once, and two
# Listen lines of one host on the same port stop it from starting.
my %given;
my (@started, $started_by);
$started_by = $$;
sub free_port {
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0)
            or die $!;
        my $p = $s->sockport;
        close $s;
        return $p if !$given{$p}++;
    }
    die "no free port";
}

# extra_host(conf => "directives", gov => 1, billing => 1, loglevel => "warn",
#            settle => seconds, servers => N, start => N, threads => N,
#            admin => 1): one child of 8 threads unless servers/start/threads
#            say more; admin => 1 adds the admin API (/api, the suite's admin
#            token) on a port of its own, $h->{admin_port}
sub extra_host {
    my (%o) = @_;
    my ($top, $lib) = (top_dir(), libexecdir());
    my $dir = tempdir(CLEANUP => 1);
    my $port = free_port();
    my $gov = $o{gov} ? "LoadModule nebula_gov_module $top/mod_nebula_gov/.libs/mod_nebula_gov.so" : '';
    $gov .= "\nLoadModule nebula_billing_module $top/mod_nebula_billing/.libs/mod_nebula_billing.so"
          . "\nNebulaBilling On\nNebulaBillingSpool $dir/billing.spool"
          # the rollups' watermarks are t/billing/rollup.t's to move
          . "\nNebulaLogRollup Off" if $o{billing};
    my ($servers, $threads, $start) = ($o{servers} // 1, $o{threads} // 8, $o{start} // 1);
    my $workers = $servers * $threads;
    my $loglevel = $o{loglevel} // 'warn';
    my $conf = $o{conf} // '';
    my $admin_port = $o{admin} ? free_port() : 0;
    my $sites = "<Location />\n    Require all granted\n    NebulaRelay On\n</Location>\n";
    $sites = <<"SITES" if $o{admin};
Listen 127.0.0.1:$admin_port
NebulaAdminToken "nebula-test-admin-token-0123456789abcdef"
NebulaSessionSecret "nebula-test-session-secret-0123456789abcdef"
<VirtualHost 127.0.0.1:$port>
$sites</VirtualHost>
<VirtualHost 127.0.0.1:$admin_port>
    <Location /api>
        Require all granted
        NebulaAdmin On
    </Location>
</VirtualHost>
SITES
    open(my $fh, '>', "$dir/httpd.conf") or die $!;
    print $fh <<"CONF";
ServerRoot "$dir"
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error_log"
LogLevel $loglevel
Listen 127.0.0.1:$port
ServerName 127.0.0.1
LoadModule mpm_event_module $lib/mod_mpm_event.so
# one child unless asked, so one cache: what a host serves from cache is predictable
ServerLimit $servers
StartServers $start
ThreadLimit $threads
ThreadsPerChild $threads
MaxRequestWorkers $workers
MinSpareThreads 1
MaxSpareThreads $workers
LoadModule authz_core_module $lib/mod_authz_core.so
LoadModule proxy_module $lib/mod_proxy.so
LoadModule dbd_module $lib/mod_dbd.so
LoadModule nebula_relay_module $top/mod_nebula_relay/.libs/mod_nebula_relay.so
$gov
DBDriver $ENV{NEBULA_TEST_DBD_DRIVER}
DBDParams "$ENV{NEBULA_TEST_DBD_PARAMS}"
NebulaCryptoSecret "nebula-test-crypto-secret-0123456789abcdef"
# the suite's upstreams are on loopback (SSRF protection allows them here)
NebulaUpstreamAllow 127.0.0.1/32 ::1/128 localhost
$conf
$sites
CONF
    close $fh;
    my ($rc, $out) = run_cmd(httpd_bin(), '-f', "$dir/httpd.conf", '-k', 'start');
    die "host did not start: $out" if $rc;
    for (1 .. 100) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port"); sleep 0.1 }
    sleep($o{settle}) if $o{settle};
    if ($admin_port) {
        for (1 .. 100) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$admin_port"); sleep 0.1 }
    }
    my $h = { dir => $dir, port => $port, admin_port => $admin_port };
    push @started, $h;
    return $h;
}

sub stop_host {
    my ($h) = @_;
    @started = grep { $_ != $h } @started;
    return run_cmd(httpd_bin(), '-f', "$h->{dir}/httpd.conf", '-k', 'stop');
}

# A test that dies before its stop_host() leaves no host running (only the
# process that started them stops them; the exit status is kept).
END {
    local $?;
    if ($started_by == $$) {
        run_cmd(httpd_bin(), '-f', "$_->{dir}/httpd.conf", '-k', 'stop') for @started;
    }
}

# A chat completion to host @a $h; its HTTP status (0: no answer).
sub host_ask {
    my ($h, $key, $m) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$h->{port}", Timeout => 10) or return 0;
    my $body = encode_json({ model => $m, messages => [{ role => 'user', content => 'hi' }] });
    print $s "POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer $key\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    my ($code) = (do { local $/; <$s> } // '') =~ m{^HTTP/1\.\d (\d+)};
    return $code // 0;
}

sub host_error_log { my $f = "$_[0]{dir}/error_log"; return do { local (@ARGV, $/) = $f; <> } // '' }

1;
