# `./nebula up` starts a working server (gateway and admin vhost answer, the
# database is created and migrated, secrets are private) and `./nebula down`
# stops it. Run on spare ports and a private var dir, beside the test server.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir run_cmd);

my $top = top_dir();
my $var = tempdir(CLEANUP => 1);
sub free_port { my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die $!; my $p = $s->sockport; close $s; $p }
local $ENV{NEBULA_VAR} = $var;
local $ENV{NEBULA_GATEWAY_PORT} = my $gw = free_port();
local $ENV{NEBULA_ADMIN_PORT} = my $admin = free_port();

sub http_get {
    my ($port, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5) or return '';
    print $s "GET $path HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    local $/;
    return <$s> // '';
}

my ($rc, $out) = run_cmd("$top/nebula", 'up');
is($rc, 0, './nebula up succeeds') or diag $out;
like($out, qr/gateway\s+http:\/\/127\.0\.0\.1:$gw\/v1/, 'it prints where the gateway is');
like(http_get($gw, '/v1/models'), qr{^HTTP/1\.1 401 .*"code":"invalid_api_key"}s,
     'the gateway answers (OpenAI-shaped: no key)');
my ($key) = $out =~ /demo key (sk-\w{48})/;
ok($key, 'it prints a demo key');
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$gw", Timeout => 5);
print $s "GET /v1/models HTTP/1.0\r\nAuthorization: Bearer $key\r\n\r\n";
like(do { local $/; <$s> }, qr{^HTTP/1\.1 200 .*"object":"list"}s, 'the demo key works');
my ($pw) = $out =~ m{login\s+admin / (\S+)};
ok($pw && length($pw) >= 12, 'it prints the admin login');
$s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$admin", Timeout => 5);
my $login = qq({"username":"admin","password":"$pw"});
print $s "POST /api/auth/login HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: "
    . length($login) . "\r\n\r\n$login";
like(do { local $/; <$s> }, qr{^HTTP/1\.1 200 }, 'the admin login works on the admin API');
like(http_get($admin, '/'), qr{^HTTP/1\.1 200 .*NebulaGate admin}s, 'the admin vhost answers');
ok(-s "$var/nebula.db", 'the SQLite database exists');
my @st = stat("$var/secrets");
is($st[2] & 0777, 0600, 'var/secrets is mode 600');
like(do { local (@ARGV, $/) = "$var/secrets"; <> }, qr/^SESSION_SECRET=\S{32,}\nCRYPTO_SECRET=\S{32,}$/m,
     'it holds generated secrets');
($rc, $out) = run_cmd("$top/admin/nebulactl/nebulactl", 'schema-version', '--dsn', "sqlite:$var/nebula.db");
like($out, qr/^pending: 0$/m, 'the server migrated its database');
($rc, $out) = run_cmd("$top/nebula", 'status');
is($rc, 0, './nebula status: running');

($rc, $out) = run_cmd("$top/nebula", 'down');
is($rc, 0, './nebula down succeeds') or diag $out;
is(http_get($gw, '/'), '', 'the gateway port is closed');
($rc, $out) = run_cmd("$top/nebula", 'status');
is($rc, 3, './nebula status: not running (exit 3)');
done_testing();
