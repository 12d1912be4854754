package NebulaGov;
# Governance test helpers: policies through the admin API (removed again when
# the test ends), the audit rows of a request, and requests in each protocol
# to any relay vhost.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP qw(encode_json decode_json);
use NebulaAdmin qw(admin api);

our @EXPORT_OK = qw(policy audit_of gov_post gov_hostport);

my @made;
my $seq = 0;

# policy(name-prefix, spec fields...) -> (id, name); deleted at the end
sub policy {
    my ($prefix, %spec) = @_;
    my $name = sprintf('%s-%d-%d', $prefix, $$, ++$seq);
    my $d = admin('POST', '/api/policies', { name => $name, %spec });
    my $id = ($d->{data} // $d)->{id};
    push @made, $id;
    return wantarray ? ($id, $name) : $id;
}

END { api('DELETE', "/api/policies/$_") for @made }

# The audit rows of a request id, oldest first.
sub audit_of {
    my ($rid) = @_;
    my $d = admin('GET', "/api/audit?request_id=$rid&per_page=100");
    return [ sort { $a->{id} <=> $b->{id} } @{ $d->{data} } ];
}

sub gov_hostport { return NebulaAdmin::hostport_of($_[0] // 'nebula_relay') }

# gov_post(vhost, path, key, body, headers...) -> HTTP::Response; the key
# goes where the path's protocol wants it.
sub gov_post {
    my ($vhost, $path, $key, $body, %h) = @_;
    my $req = HTTP::Request->new(POST => 'http://' . gov_hostport($vhost) . $path);
    if ($path =~ m{^/v1/messages}) {
        $req->header('x-api-key' => $key);
        $req->header('anthropic-version' => '2023-06-01');
    }
    elsif ($path =~ m{^/v1beta/}) {
        $req->header('x-goog-api-key' => $key);
    }
    else {
        $req->header(Authorization => "Bearer $key");
    }
    $req->header('Content-Type' => 'application/json');
    $req->header($_ => $h{$_}) for keys %h;
    $req->content(ref $body ? encode_json($body) : $body);
    return NebulaAdmin::ua()->request($req);
}

1;
