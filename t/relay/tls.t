# Real providers are HTTPS: the relay reaches the mock over TLS through
# mod_ssl's proxy engine and verifies it against the test CA (vhosts in
# t/conf/tls.conf.in, certificates from t/tls/mkcerts.sh). Answers and streams
# come back as over plain HTTP; an upstream whose certificate a vhost does not
# trust, or that is for another name, is refused with an OpenAI-shaped 502
# before any request reaches it -- even when another vhost has verified
# connections to the same origin waiting in the pool.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use JSON::PP qw(decode_json encode_json);
use LWP::UserAgent;
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(timed_sse_post);

plan tests => 29;

sub hostport_of { Apache::TestRequest::module(shift); return Apache::TestRequest::hostport() }
sub port_of     { my ($hp) = @_; return (split /:/, $hp)[-1] }

my $mock     = hostport_of('nebula_mock');                  # records are read here
my $rogue    = hostport_of('nebula_mock_tls_rogue');
my $wrong    = hostport_of('nebula_mock_tls_wrongname');
my $gw       = hostport_of('nebula_gateway_tls');
my $gw_rogue = hostport_of('nebula_gateway_tls_rogue');
my $gw_wrong = hostport_of('nebula_gateway_tls_wrongname');
my $gw_dist  = hostport_of('nebula_gateway_tls_distrust');
my $ua = Apache::TestRequest::user_agent(keep_alive => 1);
my $error_log = Apache::Test::vars('t_logs') . '/error_log';
# the record file outlives server restarts: tags unique to this run
my $run = sprintf('%x%x', time, $$);

sub mock_records {
    my ($tag) = @_;
    my $res = $ua->get("http://$mock/_mock/records?last=100&tag=$tag");
    die "mock records: " . $res->status_line unless $res->is_success;
    return decode_json($res->content);
}

sub lc_headers { my ($h) = @_; return { map { lc($_) => $h->{$_} } keys %$h } }

sub chat {
    my ($ua, $hostport, $control) = @_;
    return $ua->post("http://$hostport/v1/chat/completions",
        'Content-Type' => 'application/json', Authorization => 'Bearer sk-tls-1',
        'X-Mock-Control' => $control,
        Content => encode_json({ model => 'gpt-4o-mini', messages => [
            { role => 'user', content => 'one two three four' } ] }));
}

sub error_log_has {
    my ($re) = @_;
    open(my $fh, '<', $error_log) or return 0;
    while (<$fh>) { return 1 if $_ =~ $re }
    return 0;
}

# --- the verifying gateway: non-streaming chat over TLS ---------------------
my $res = chat($ua, $gw, "tag=tls1-$run,events=3");
is($res->code, 200, 'chat through the verifying gateway: 200');
my $j = eval { decode_json($res->content) } || {};
is($j->{object}, 'chat.completion', 'the answer is the mock\'s chat.completion');
is($j->{choices}[0]{message}{content}, 'tok1 tok2 tok3 ', 'with the mock\'s text');
is_deeply([ @{ $j->{usage} // {} }{qw(prompt_tokens completion_tokens)} ], [ 4, 3 ],
    'and the mock\'s usage');
is($res->header('X-Mock-Vhost'), 'nebula_mock_tls', 'answered by the mock\'s TLS vhost');
my $rec = mock_records("tls1-$run");
is(scalar @$rec, 1, 'the TLS mock received exactly one request');
my $h = lc_headers($rec->[0]{headers} // {});
like($h->{'x-mock-tls-protocol'} // '', qr/^TLSv1\.[23]$/,
    'the mock received it over TLS (' . ($h->{'x-mock-tls-protocol'} // 'no TLS') . ')');
is($h->{'x-mock-tls-sni'}, 'localhost', 'the gateway sent SNI with the upstream\'s name');
is($h->{authorization}, 'Bearer sk-tls-1', 'Authorization forwarded inside TLS');
is(eval { decode_json($rec->[0]{body})->{model} }, 'gpt-4o-mini', 'body forwarded');

# --- the verifying gateway: streaming over TLS ------------------------------
my $s = timed_sse_post($gw, '/v1/chat/completions',
    { 'Content-Type' => 'application/json', Authorization => 'Bearer sk-tls-1',
      'X-Mock-Control' => "tag=tls2-$run,events=10,delay_ms=200" },
    encode_json({ model => 'gpt-4o-mini', stream => JSON::PP::true,
                  messages => [ { role => 'user', content => 'stream please' } ] }));
is($s->{status}, 200, 'stream over TLS: 200');
like($s->{headers}{'content-type'} // '', qr{^text/event-stream}, 'stream: event-stream');
my @ev = @{ $s->{events} };
my @content = grep { $_->[1] =~ /"content":"tok/ } @ev;
is(scalar @content, 10, 'ten content events');
is(@ev ? $ev[-1][1] : undef, '[DONE]', 'stream ends with [DONE]');
my $spread = @content ? $content[-1][0] - $content[0][0] : 0;
cmp_ok($spread, '>=', 1.5,
    sprintf('first event arrived %.2fs before the last: TLS does not buffer the stream', $spread));
$rec = mock_records("tls2-$run");
ok(@$rec == 1 && $rec->[0]{stream}
   && (lc_headers($rec->[0]{headers})->{'x-mock-tls-protocol'} // '') =~ /^TLSv1/,
   'the mock served that stream over TLS');

# --- refusals: OpenAI-shaped 502, the mock never reached --------------------
sub refused_ok {
    my ($what, $res, $tag) = @_;
    is($res->code, 502, "$what: 502");
    my $e = (eval { decode_json($res->content) } || {})->{error};
    ok(ref $e eq 'HASH' && defined $e->{message} && !ref $e->{message}
       && defined $e->{type} && exists $e->{code},
       "$what: an OpenAI error object (message, type, code)");
    like($e->{code} // 'null', qr/^upstream_(unreachable|tls_error)$/,
         "$what: error code names the upstream failure (got "
         . ($e->{code} // 'null') . ')');
    is(scalar @{ mock_records($tag) }, 0, "$what: the request never reached the mock");
}

# an impostor: the right name, a certificate from a CA this vhost does not trust
refused_ok('untrusted issuer', chat($ua, $gw_rogue, "tag=tls3-$run"), "tls3-$run");
ok(error_log_has(qr/\[remote [^\]]*:@{[port_of($rogue)]}\] AH02276: Certificate Verification: Error/),
   'untrusted issuer: refused by certificate verification (AH02276 in the error log)');

# the trusted CA, but a certificate for wrong-name.invalid
refused_ok('name mismatch', chat($ua, $gw_wrong, "tag=tls4-$run"), "tls4-$run");
ok(error_log_has(qr/\[remote [^\]]*:@{[port_of($wrong)]}\] AH02411: .*does not match for hostname localhost/),
   'name mismatch: refused by SSLProxyCheckPeerName (AH02411 in the error log)');

# The distrusting vhost relays to the very origin the verifying one uses (same
# worker key: origin and timeout). First, concurrent requests through
# nebula_gateway_tls leave verified connections in the pools of the children
# that serve them; then the distrusting vhost is asked on new client
# connections (any child): it must never be handed one of those.
my $fresh = LWP::UserAgent->new(keep_alive => 0, timeout => 30);
my %kid;
for my $i (1 .. 8) {
    my $pid = fork() // die "fork: $!";
    if (!$pid) {   # the overlap (header_delay_ms) spreads them over children and threads
        my $code = chat($fresh, $gw, "tag=tls5ok-$run,header_delay_ms=300")->code;
        POSIX::_exit($code == 200 ? 0 : 1);
    }
    $kid{$pid} = 1;
}
my $warm_ok = 0;
while (%kid) { my $pid = wait; last if $pid < 0; delete $kid{$pid}; $warm_ok++ if $? == 0 }
my @dist = map { chat($fresh, $gw_dist, "tag=tls5-$run")->code } 1 .. 8;
is($warm_ok, 8, 'the verifying gateway answered 8 concurrent requests (its pools are warm)');
is("@dist", join(' ', ('502') x 8),
   'a vhost trusting another CA is refused every time, pooled connections or not');
is(scalar @{ mock_records("tls5-$run") }, 0,
   'none of its requests reached the mock over another vhost\'s connection');
