package AdminT;
# Helpers of the admin API tests (t/admin/*.t): requests to the test server's
# nebula_admin vhost, and reading or writing its database directly with the
# database's own command-line client (sqlite3, psql, mysql), whichever
# NEBULA_TEST_DB the run uses. Tests never assume an empty database (the
# PostgreSQL and MariaDB ones outlive a run): names are made unique.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use HTTP::Request;
use HTTP::Cookies;
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd top_dir);

our @EXPORT_OK = qw(admin_base api api_ok new_ua uniq db_rows db_exec db_value login
                    make_user ROOT_TOKEN);

use constant ROOT_TOKEN => 'nebula-test-admin-token-0123456789abcdef';

my $base;
sub admin_base {
    return $base if $base;
    Apache::TestRequest::module('nebula_admin');
    $base = 'http://' . Apache::TestRequest::hostport();
    Apache::TestRequest::module('default');
    return $base;
}

# A user agent with its own cookie jar (one per "browser").
sub new_ua {
    my (%o) = @_;
    return LWP::UserAgent->new(keep_alive => $o{keep_alive} // 1, timeout => 60,
                               cookie_jar => HTTP::Cookies->new);
}
my $root_ua = new_ua();

my $seq = 0;
sub uniq { return sprintf('%s%d%d%d', $_[0] // 'x', $$, time % 100000, ++$seq) }

# api(METHOD, PATH, BODY, %opt) -> (HTTP::Response, decoded JSON or undef).
# opt: token (default: the root token; undef for none), ua, headers => {},
# base => another admin vhost's http://host:port,
# raw => body text instead of JSON, type => Content-Type.
sub api {
    my ($method, $path, $body, %o) = @_;
    my $req = HTTP::Request->new($method, ($o{base} // admin_base()) . $path);
    my $token = exists $o{token} ? $o{token} : ROOT_TOKEN;
    $req->header(Authorization => "Bearer $token") if defined $token;
    if (defined $o{raw}) {
        $req->content($o{raw});
        $req->header('Content-Type' => $o{type} // 'application/json');
    }
    elsif (defined $body) {
        $req->content(encode_json($body));
        $req->header('Content-Type' => $o{type} // 'application/json');
    }
    $req->header('Content-Length' => length($req->content // ''));
    $req->header($_ => $o{headers}{$_}) for keys %{ $o{headers} || {} };
    my $res = ($o{ua} || $root_ua)->request($req);
    my $json = eval { decode_json($res->content) };
    return ($res, $json);
}

# api() that dies unless the status is the expected one (default 2xx); the data.
sub api_ok {
    my ($method, $path, $body, %o) = @_;
    my ($res, $j) = api($method, $path, $body, %o);
    my $want = $o{expect};
    if ($want ? $res->code != $want : !$res->is_success) {
        die "$method $path: " . $res->code . ' ' . $res->content . "\n";
    }
    return $j ? ($j->{data} // $j) : undef;
}

# A user via the API; returns its data. Password "pw-" . username.
sub make_user {
    my (%o) = @_;
    my $name = delete $o{username} // uniq('u');
    return api_ok('POST', '/api/users',
                  { username => $name, password => "pw-$name-secret", role => 'user', %o });
}

# Sign in on $ua; returns (response, json).
sub login {
    my ($ua, $user, $pw) = @_;
    return api('POST', '/api/auth/login', { username => $user, password => $pw },
               token => undef, ua => $ua);
}

# ---- the database, through its own client ------------------------------

sub db_cmd {
    my ($sql) = @_;
    my $drv = $ENV{NEBULA_TEST_DBD_DRIVER} // 'sqlite3';
    my %p = map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () } split /\s+/, $ENV{NEBULA_TEST_DBD_PARAMS} // '';
    if ($drv eq 'sqlite3') {
        return ('sqlite3', '-batch', '-noheader', '-separator', "\t", '-cmd', '.timeout 5000',
                $ENV{NEBULA_TEST_DBD_PARAMS}, $sql);
    }
    if ($drv eq 'pgsql') {
        $ENV{PGPASSWORD} = $p{password} if defined $p{password};
        return ('psql', '-X', '-q', '-h', $p{host}, '-p', $p{port}, '-U', $p{user}, '-d',
                $p{dbname}, '-At', '-F', "\t", '-v', 'ON_ERROR_STOP=1', '-c', $sql);
    }
    return ('mysql', '-h', $p{host}, '-P', $p{port}, '-u', $p{user},
            (defined $p{pass} ? "-p$p{pass}" : ()), '-D', $p{dbname}, '-N', '-B', '-e', $sql);
}

# Rows of a SELECT as array refs of strings (NULL as undef).
sub db_rows {
    my ($sql) = @_;
    my ($rc, $out) = run_cmd(db_cmd($sql));
    die "db query failed ($rc): $out\nSQL: $sql\n" if $rc;
    return [ map { [ map { $_ eq 'NULL' || $_ eq '' ? undef : $_ } split /\t/, $_, -1 ] }
             grep { length } split /\n/, $out ];
}

sub db_value {
    my $rows = db_rows(@_);
    return @$rows ? $rows->[0][0] : undef;
}

sub db_exec {
    my ($sql) = @_;
    my ($rc, $out) = run_cmd(db_cmd($sql));
    die "db statement failed ($rc): $out\nSQL: $sql\n" if $rc;
    return 1;
}

1;
