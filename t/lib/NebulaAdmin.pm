package NebulaAdmin;
# Setting up users, keys and channels for relay tests through the real admin
# API (the test server's nebula_admin vhost, root token from extra.conf.in),
# and reading what the mock provider received.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use Apache::TestRequest ();

our @EXPORT_OK = qw(admin api mock_url mock_records mock_clear relay_hostport
                    new_user new_key new_channel chat log_row key_logs);

our $TOKEN = 'nebula-test-admin-token-0123456789abcdef';
# one user agent per process: a forked child must not write into the
# parent's kept-alive connections
my ($ua, $ua_pid);
sub ua {
    ($ua, $ua_pid) = (LWP::UserAgent->new(keep_alive => 4, timeout => 60), $$)
        unless $ua && $ua_pid == $$;
    return $ua;
}

sub hostport_of {
    my ($vhost) = @_;
    Apache::TestRequest::module($vhost);
    my $hp = Apache::TestRequest::hostport();
    Apache::TestRequest::module('default');
    return $hp;
}

sub relay_hostport { return hostport_of('nebula_relay') }

# api(METHOD, PATH, BODY) -> (status, decoded body or raw text)
sub api {
    my ($method, $path, $body) = @_;
    my $req = HTTP::Request->new($method, 'http://' . hostport_of('nebula_admin') . $path);
    $req->header(Authorization => "Bearer $TOKEN");
    if (defined $body) {
        $req->header('Content-Type' => 'application/json');
        $req->content(encode_json($body));
    }
    my $res = ua()->request($req);
    spec_record($method, $path, $res) if $ENV{NEBULA_SPEC_RECORD};
    my $data = eval { decode_json($res->content) } // $res->content;
    return ($res->code, $data);
}

# With NEBULA_SPEC_RECORD set to a directory, one JSON line per response of
# api() goes to <dir>/<pid>.jsonl, for validating the whole suite's answers
# against docs/admin-api.yaml (t/lib/NebulaSpec.pm).
sub spec_record {
    my ($method, $path, $res) = @_;
    my $file = "$ENV{NEBULA_SPEC_RECORD}/$$.jsonl";
    open my $fh, '>>', $file or die "NEBULA_SPEC_RECORD: $file: $!\n";
    print $fh JSON::PP->new->canonical->encode({
        method => $method, path => $path, status => $res->code + 0,
        content_type => scalar($res->header('Content-Type')) // '',
        body => $res->content // '' }), "\n";
    close $fh or die "NEBULA_SPEC_RECORD: $file: $!\n";
}

# admin(...) like api, but dies unless 2xx: for setting up a test
sub admin {
    my ($code, $data) = api(@_);
    die "admin API $_[0] $_[1] answered $code: " . (ref $data ? encode_json($data) : $data) . "\n"
        unless $code >= 200 && $code < 300;
    return $data;
}

# Request-log rows the relay writes itself (no settlement) are written by a
# thread of each process a moment after the answer (relay_logq.c): these
# wait for them, 10 s at most.
# log_row(REQUEST_ID): the row, once there (else the 404's body)
sub log_row {
    my ($rid) = @_;
    my ($code, $d);
    for (1 .. 100) {
        ($code, $d) = api('GET', "/api/logs/$rid");
        last if $code != 404;
        select(undef, undef, undef, 0.1);
    }
    return ref $d ? ($d->{data} // $d) : $d;
}
# key_logs(KEY_ID, N, WANT): the key's rows (at most 100), oldest first,
# once there are N of them and, with WANT (a sub), one it is true of
sub key_logs {
    my ($kid, $n, $want) = @_;
    my $rows = [];
    for (1 .. 100) {
        my ($code, $d) = api('GET', "/api/logs?key_id=$kid&per_page=100");
        $rows = [ sort { $a->{created_at} <=> $b->{created_at} } @{ (ref $d && $d->{data}) || [] } ];
        last if @$rows >= ($n // 1) && (!$want || grep { $want->($_) } @$rows);
        select(undef, undef, undef, 0.1);
    }
    return $rows;
}

my $seq = 0;
sub uniq { return sprintf('%s-%d-%d', $_[0], $$, ++$seq) }

sub new_user {
    my (%o) = @_;
    my $u = admin('POST', '/api/users', { username => uniq('user'), role => 'user',
                                          user_group => 'default', %o });
    return $u->{id} // $u->{data}{id};
}

# A client key for a new (or given) user; returns (key string, key id).
sub new_key {
    my (%o) = @_;
    my $uid = delete $o{user_id} // new_user(map { $_ => delete $o{$_} } grep { /^(role|user_group)$/ } keys %o);
    my $k = admin('POST', '/api/keys', { user_id => $uid, name => uniq('key'),
                                         remain_quota => 100000000, %o });
    my $d = $k->{data} // $k;
    return wantarray ? ($d->{key}, $d->{id}) : $d->{key};
}

sub mock_url {
    my ($controls) = @_;
    my $base = 'http://' . hostport_of('nebula_mock');
    return $controls ? "$base/_mock/$controls" : $base;
}

# A channel on the mock; tag names it in the mock's records.
sub new_channel {
    my (%o) = @_;
    my $controls = delete $o{controls};
    my $tag = delete $o{tag} // uniq('ch');
    my $c = admin('POST', '/api/channels', {
        name => $tag, kind => 'openai',
        base_url => mock_url(join(',', "tag=$tag", $controls ? $controls : ())),
        keys => ['sk-upstream-' . $tag], models => ['gpt-4o-mini'],
        channel_groups => ['default'], priority => 0, weight => 1, %o });
    my $d = $c->{data} // $c;
    return wantarray ? ($d->{id}, $tag) : $d->{id};
}

sub mock_records {
    my ($tag, $last) = @_;
    my $res = ua()->get(mock_url() . "/_mock/records?last=" . ($last || 100) . "&tag=$tag");
    return decode_json($res->content);
}

# POST a chat completion to the relay; returns the HTTP::Response.
sub chat {
    my ($key, $body, %h) = @_;
    my $path = delete $h{path} // '/v1/chat/completions';
    my $req = HTTP::Request->new(POST => 'http://' . relay_hostport() . $path);
    $req->header(Authorization => "Bearer $key") if defined $key;
    $req->header('Content-Type' => 'application/json');
    $req->header($_ => $h{$_}) for keys %h;
    $req->content(ref $body ? encode_json($body) : $body);
    return ua()->request($req);
}

1;
