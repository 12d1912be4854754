# Malformed requests on the new protocol routes: each is refused with the
# client protocol's own error shape and the right status, never reaches the
# mock provider, and charges nothing.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use LWP::UserAgent;
use HTTP::Request;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(mock_records);
use NebulaBilling qw(billed_hostport billed_setup wallet);

my $ua = LWP::UserAgent->new(timeout => 30);
my $BAL = 100000;

sub send_req {
    my ($method, $path, $h, $body) = @_;
    my $req = HTTP::Request->new($method => 'http://' . billed_hostport() . $path);
    $req->header('Content-Type' => 'application/json');
    $req->header($_ => $h->{$_}) for keys %$h;
    $req->content(ref $body ? encode_json($body) : $body) if defined $body;
    my $res = $ua->request($req);
    return ($res->code, eval { decode_json($res->content) } // {});
}

my %a = billed_setup(name => 'bad-anthropic', balance => $BAL, channel => { kind => 'anthropic' });
my %g = billed_setup(name => 'bad-gemini', balance => $BAL, channel => { kind => 'gemini' });
my %r = billed_setup(name => 'bad-responses', balance => $BAL, channel => { kind => 'anthropic' });
my %ah = ('x-api-key' => $a{key}, 'anthropic-version' => '2023-06-01');
my %gh = ('x-goog-api-key' => $g{key});
my %rh = (Authorization => "Bearer $r{key}");
my $gen = "/v1beta/models/$g{model}:generateContent";

# [name, method, path, headers, body, status, shape]
my @cases = (
    ['anthropic: not JSON', 'POST', '/v1/messages', \%ah, '{"model":', 400, 'anthropic'],
    ['anthropic: no messages', 'POST', '/v1/messages', \%ah,
     { model => $a{model}, max_tokens => 10 }, 400, 'anthropic'],
    ['anthropic: max_tokens not an integer', 'POST', '/v1/messages', \%ah,
     { model => $a{model}, max_tokens => 'x', messages => [{ role => 'user', content => 'hi' }] },
     400, 'anthropic'],
    ['anthropic: a content block of an unknown type', 'POST', '/v1/messages', \%ah,
     { model => $a{model}, max_tokens => 10,
       messages => [{ role => 'user', content => [{ type => 'nonsense' }] }] }, 400, 'anthropic'],
    ['anthropic: GET', 'GET', '/v1/messages', \%ah, undef, 405, 'anthropic'],
    ['gemini: not JSON', 'POST', $gen, \%gh, '[1,', 400, 'gemini'],
    ['gemini: contents not an array', 'POST', $gen, \%gh, { contents => 'hi' }, 400, 'gemini'],
    ['gemini: a part of an unknown shape', 'POST', $gen, \%gh,
     { contents => [{ role => 'user', parts => [{ nonsense => 1 }] }] }, 400, 'gemini'],
    ['responses: previous_response_id on a channel without Responses', 'POST', '/v1/responses',
     \%rh, { model => $r{model}, input => 'hi', previous_response_id => 'resp_x' }, 400, 'openai'],
    ['responses: a hosted tool on a channel without Responses', 'POST', '/v1/responses', \%rh,
     { model => $r{model}, input => 'hi', tools => [{ type => 'web_search' }] }, 400, 'openai'],
);
plan tests => @cases * 2 + 3;

for my $c (@cases) {
    my ($name, $method, $path, $h, $body, $want, $shape) = @$c;
    my ($code, $j) = send_req($method, $path, $h, $body);
    is($code, $want, "$name: $want");
    my $ok = $shape eq 'anthropic'
        ? ($j->{type} // '') eq 'error' && defined $j->{error}{type} && defined $j->{error}{message}
        : $shape eq 'gemini'
        ? ($j->{error}{code} // 0) == $want && defined $j->{error}{status}
          && defined $j->{error}{message}
        : defined $j->{error}{message} && exists $j->{error}{type};
    ok($ok, "$name: in the $shape error shape") or diag(encode_json($j));
}
for my $s (\%a, \%g, \%r) {
    my $n = scalar @{ mock_records($s->{tag}) };
    my $w = wallet($s->{user});
    ok($n == 0 && $w->{balance} == $BAL && !$w->{reserved},
       "$s->{tag}: nothing reached the mock, nothing charged or held")
        or diag("records $n, " . encode_json($w));
}
