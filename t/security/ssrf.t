# SSRF protection (reliability-targets T14; docs/design-notes.md "SSRF"): on
# the nebula_ssrf vhost (no NebulaUpstreamAllow), the admin API refuses
# internal, oddly spelt and non-HTTP base URLs with 400 naming the reason and
# writes nothing; a channel pointed at a loopback canary directly in the
# database is refused when the relay would connect, and the canary sees no
# connection; an upstream redirect is not followed; the suite's allow-listed
# vhosts still reach the mock on loopback.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use IO::Socket::INET;
use Socket qw(getaddrinfo AF_INET6 SOCK_STREAM);
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use FindBin;
use lib "$FindBin::Bin/../lib", "$FindBin::Bin/../admin";
use AdminT qw(api api_ok uniq db_value db_exec);
use NebulaAdmin qw(new_key new_channel mock_url mock_records chat);

my @resolves_v6 = do {
    my ($err, @ai) = getaddrinfo('ip6-localhost', 80, { socktype => SOCK_STREAM });
    $err ? () : grep { $_->{family} == AF_INET6 } @ai;
};

# [base_url, what the 400's message must say, name]
my $odd = qr/looks like an IPv4 address but is not written as four decimal numbers/;
my $scheme = qr/must be an http:\/\/ or https:\/\/ URL/;
my @matrix = (
    [ 'http://127.0.0.1:8080/v1',          qr/127\.0\.0\.1 is in 127\.0\.0\.0\/8 \(loopback\)/, 'loopback' ],
    [ 'http://localhost:8080',             qr/the host 'localhost' resolves to \S+, in .*loopback/, 'a name resolving to loopback' ],
    [ 'http://169.254.169.254/latest',     qr/169\.254\.0\.0\/16 \(link-local, cloud metadata\)/, 'cloud metadata' ],
    [ 'http://[::1]:8080',                 qr/::1 is in ::1\/128 \(loopback\)/, 'IPv6 loopback' ],
    [ 'http://[::ffff:127.0.0.1]:8080',    qr/127\.0\.0\.0\/8 \(loopback\)/, 'IPv4-mapped IPv6 loopback' ],
    [ 'http://[::ffff:a9fe:a9fe]/',        qr/169\.254\.0\.0\/16/, 'IPv4-mapped metadata, in hex' ],
    [ 'http://[64:ff9b::7f00:1]/',         qr/NAT64 form of 127\.0\.0\.1/, 'NAT64 loopback' ],
    [ 'http://2130706433:8080',            $odd, 'decimal IPv4' ],
    [ 'http://0x7f.1:8080',                $odd, 'hex IPv4' ],
    [ 'http://0177.0.0.1:8080',            $odd, 'octal IPv4' ],
    [ 'http://127.1:8080',                 $odd, 'short IPv4' ],
    [ 'http://127.0.0.1.:8080',            $odd, 'IPv4 with a trailing dot' ],
    [ 'http://0.0.0.0:8080',               qr/0\.0\.0\.0\/8 \(this network\)/, 'the unspecified IPv4 address' ],
    [ 'http://[::]:8080',                  qr/::\/128 \(unspecified\)/, 'the unspecified IPv6 address' ],
    [ 'http://10.0.0.1',                   qr/10\.0\.0\.0\/8 \(private\)/, '10/8' ],
    [ 'http://172.16.5.4',                 qr/172\.16\.0\.0\/12 \(private\)/, '172.16/12' ],
    [ 'http://192.168.1.1',                qr/192\.168\.0\.0\/16 \(private\)/, '192.168/16' ],
    [ 'http://100.64.0.1',                 qr/100\.64\.0\.0\/10 \(carrier-grade NAT\)/, '100.64/10' ],
    [ 'http://224.0.0.1',                  qr/224\.0\.0\.0\/4 \(multicast\)/, 'multicast' ],
    [ 'http://255.255.255.255',            qr/255\.255\.255\.255 \(broadcast\)/, 'broadcast' ],
    [ 'http://[fe80::1]',                  qr/fe80::\/10 \(link-local\)/, 'IPv6 link-local' ],
    [ 'http://[fd00:ec2::254]',            qr/fc00::\/7 \(unique local\)/, 'IPv6 unique local (AWS metadata)' ],
    [ 'http://[ff02::1]',                  qr/ff00::\/8 \(multicast\)/, 'IPv6 multicast' ],
    [ 'file:///etc/passwd',                $scheme, 'file://' ],
    [ 'gopher://x',                        $scheme, 'gopher://' ],
    [ 'ftp://x',                           $scheme, 'ftp://' ],
    (@resolves_v6 ? ([ 'http://ip6-localhost:8080', qr/'ip6-localhost' resolves to .*loopback/,
                       'ip6-localhost' ]) : ()),
);

plan tests => 2 * @matrix + 23;

Apache::TestRequest::module('nebula_ssrf');
my $ssrf = 'http://' . Apache::TestRequest::hostport();
Apache::TestRequest::module('default');
my $tag = uniq('ssrf');
sub names_like { db_value("SELECT COUNT(*) FROM channels WHERE name LIKE '$_[0]%'") }

# ---- refused when saved -------------------------------------------------------
my $i = 0;
for my $case (@matrix) {
    my ($url, $why, $name) = @$case;
    my ($res, $j) = api('POST', '/api/channels', { name => "$tag-bad-" . $i++,
        kind => 'openai-compatible', base_url => $url, models => ["$tag-x"] }, base => $ssrf);
    is($res->code . ' ' . ($j->{error}{param} // ''), '400 base_url', "save refused: $name");
    like($j->{error}{message} // '', $why, "... with the reason ($url)");
}
is(names_like("$tag-bad-"), 0, 'no refused channel was written');

my ($res, $j) = api('POST', '/api/channels', { name => "$tag-proxy", kind => 'openai',
    models => ["$tag-x"], proxy => 'http://127.0.0.1:3128' }, base => $ssrf);
is($res->code . ' ' . ($j->{error}{param} // ''), '400 proxy', 'a loopback proxy is refused');
like($j->{error}{message} // '', qr/'proxy' is refused \(SSRF protection\).*NebulaUpstreamAllow/,
     '... saying why and what allows it');

# public addresses and names that do not resolve (here) are accepted
my @ok;
for my $url ('http://93.184.215.14:8080/v1', 'https://llm.example.com/v1', 'http://[2001:db8::1]') {
    ($res, $j) = api('POST', '/api/channels', { name => "$tag-ok-" . @ok, kind => 'openai-compatible',
        base_url => $url, models => ["$tag-x"] }, base => $ssrf);
    is($res->code, 201, "a public base URL is saved ($url)");
    push @ok, $j->{data}{id};
}
# an update is checked too, and leaves the row as it was
($res, $j) = api('PATCH', "/api/channels/$ok[0]", { base_url => 'http://169.254.169.254' },
                 base => $ssrf);
is($res->code . ' ' . ($j->{error}{param} // ''), '400 base_url', 'PATCH to metadata refused');
is(db_value("SELECT base_url FROM channels WHERE id = $ok[0]"), 'http://93.184.215.14:8080/v1',
   '... and the row is unchanged');
api_ok('DELETE', "/api/channels/$_", undef, expect => 204) for @ok;
# the suite's admin vhost allow-lists loopback
($res, $j) = api('POST', '/api/channels', { name => "$tag-allowed", kind => 'openai-compatible',
    base_url => 'http://127.0.0.1:9/v1', models => ["$tag-x"] });
is($res->code, 201, 'loopback is saved where NebulaUpstreamAllow lists it');
api_ok('DELETE', "/api/channels/$j->{data}{id}", undef, expect => 204);

# ---- refused when connecting ------------------------------------------------------
my $canary = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', ReuseAddr => 1) or die "canary: $!";
my $cport = $canary->sockport;
$canary->blocking(0);
sub canary_hits { my $n = 0; while (my $c = $canary->accept) { $n++; close $c } return $n }

my $key = new_key();
my $ua = LWP::UserAgent->new(timeout => 30);
sub ask_ssrf {
    my ($model) = @_;
    my $r = $ua->post("$ssrf/v1/chat/completions", Authorization => "Bearer $key",
                      'Content-Type' => 'application/json',
                      Content => encode_json({ model => $model,
                                               messages => [{ role => 'user', content => 'hi' }] }));
    return ($r, eval { decode_json($r->content) } // {});
}
my @sneaky;
# a channel made through the allow-listed admin API, then pointed at the
# canary behind the API's back (a row the check never saw)
sub sneaky_channel {
    my ($url) = @_;
    my $m = uniq("$tag-m");
    my ($id) = new_channel(models => [$m]);
    db_exec("UPDATE channels SET base_url = '$url' WHERE id = $id");
    api_ok('PATCH', "/api/channels/$id", { weight => 2 });   # the relay reloads channels
    push @sneaky, $id;
    return ($id, $m);
}
my $n = 0;
for my $case ([ "http://127.0.0.1:$cport", qr/127\.0\.0\.1 is in 127\.0\.0\.0\/8/ ],
              [ "http://localhost:$cport", qr/'localhost' resolves to 127\.0\.0\.1, in 127\.0\.0\.0\/8/ ],
              [ "http://2130706433:$cport", $odd ],
              [ "http://[::ffff:127.0.0.1]:$cport", qr/127\.0\.0\.0\/8 \(loopback\)/ ]) {
    my ($url, $why) = @$case;
    my ($id, $m) = sneaky_channel($url);
    my ($r, $e) = ask_ssrf($m);
    is($r->code . ' ' . ($e->{error}{code} // ''), '502 upstream_not_allowed',
       "relay refuses to connect to $url");
    $n += canary_hits();
    ($r, $e) = api('POST', "/api/channels/$id/test", {}, base => $ssrf);
    like($e->{data}{message} // '', qr/not allowed \(NebulaUpstreamAllow\): .*$why/,
         '... and so does the channel test, saying why');
}
is($n + canary_hits(), 0, 'the canary listener saw 0 connections');
api_ok('DELETE', "/api/channels/$_", undef, expect => 204) for @sneaky;

my $log = Apache::Test::vars('t_logs') . '/error_log';
my $text = do { local (@ARGV, $/) = $log; <> } // '';
like($text, qr/:warn\].*NEB01440: upstream http:\/\/localhost:$cport refused .*resolves to 127\.0\.0\.1/,
     'the refusal is logged with its reason (NEB01440)');

# ---- redirects are not followed; the allow-listed vhosts still relay ------------------
{
    my $m = uniq("$tag-r");
    my (undef, $rt) = new_channel(models => [$m], controls => 'status=302');
    my $r = chat($key, { model => $m, messages => [{ role => 'user', content => 'hi' }] });
    my $e = eval { decode_json($r->content) } // {};
    is($r->code . ' ' . ($e->{error}{code} // ''), '502 upstream_redirect',
       'an upstream 302 is an upstream error');
    is(scalar @{ mock_records($rt) }, 1, '... after exactly one upstream request');
}
{
    my $m = uniq("$tag-ok");
    my (undef, $ot) = new_channel(models => [$m]);
    my $r = chat($key, { model => $m, messages => [{ role => 'user', content => 'hi' }] });
    is($r->code, 200, 'the allow-listed relay vhost still reaches the mock on loopback');
    is(scalar @{ mock_records($ot) }, 1, '... which served it');
}
