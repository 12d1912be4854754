# Observability (issue 11, item 2; docs/observability.md): /metrics in the
# Prometheus text format, read with the Prometheus client library's parser,
# counts exactly the requests driven here (ok, a stream, a 4xx and a 5xx
# from the mock's fault switches), with consistent histograms; who may read
# it; /healthz and /readyz (503 naming what failed, on extra hosts whose
# Redis or database is gone); W3C traceparent taken or replaced upstream;
# the JSON access-log recipe writes only lines that parse.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Apache::TestUtil;
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin/../lib", $FindBin::Bin;
use NebulaAdmin qw(new_key new_channel mock_records log_row);
use NebulaHost qw(extra_host stop_host free_port host_ask host_error_log);
use OpsMetrics qw(scrape prom_parse sample samples_of python);

my $have_parser = system(python(), '-c', 'import prometheus_client') == 0;
plan skip_all => 'needs python3-prometheus-client (./nebula test installs it)' unless $have_parser;
plan tests => 68;

sub hp_of { Apache::TestRequest::module($_[0]); my $hp = Apache::TestRequest::hostport();
            Apache::TestRequest::module('default'); return $hp }
my $ops = hp_of('nebula_ops');
my $admin = hp_of('nebula_admin');
my $ua = LWP::UserAgent->new(timeout => 30);

# a chat completion on the ops vhost (its JSON access log is ours)
sub ask {
    my ($key, $model, %o) = @_;
    my $h = delete $o{headers} // {};
    my $req = HTTP::Request->new(POST => "http://$ops/v1/chat/completions");
    $req->header(Authorization => "Bearer $key", 'Content-Type' => 'application/json', %$h);
    $req->content(encode_json({ model => $model, messages => [{ role => 'user', content => 'hi' }],
                                %o }));
    return $ua->request($req);
}

my $m_ok = "ops-ok-$$";
my $m_bad = "ops-bad-$$";
my $m_5xx = "ops-5xx-$$";
my ($c_ok, $tag_ok) = new_channel(models => [$m_ok]);
my ($c_bad) = new_channel(models => [$m_bad], controls => 'status=400');
my ($c_5xx) = new_channel(models => [$m_5xx], controls => 'status=500');
my $key = new_key();

# ---- counters and histograms ------------------------------------------------
my $before = scrape($admin);
is($before->{code}, 200, '/metrics answers 200 on the admin vhost from loopback');
ok(!$before->{parsed}{error}, 'the Prometheus parser reads it')
    or diag($before->{parsed}{error} . "\n" . $before->{text});
like($before->{content_type}, qr{^text/plain; version=0\.0\.4}, 'as the text format 0.0.4');
my $err400_0 = sample($before->{parsed}, 'nebula_errors_total', status => '400') // 0;
my %db0 = map { $_ => sample($before->{parsed}, "nebula_db_$_") // -1 }
          qw(borrows_total borrow_failures_total nested_borrows_total);

my (@ok_rids, @codes);
for (1 .. 3) {
    my $r = ask($key, $m_ok);
    push @codes, $r->code;
    push @ok_rids, $r->header('X-Request-Id');
}
my $sr = ask($key, $m_ok, stream => JSON::PP::true);
push @codes, $sr->code;
push @ok_rids, $sr->header('X-Request-Id');
is("@codes", '200 200 200 200', 'three answers and a stream, 200 each');
my $bad = ask($key, $m_bad);
is($bad->code, 400, 'the 4xx channel answers 400');
my $five = ask($key, $m_5xx);
cmp_ok($five->code, '>=', 500, 'the 5xx channel answers a 5xx (' . $five->code . ')');

my $ok_l = { model => $m_ok, channel => "$c_ok", status_class => '2xx' };
my $after;
for (1 .. 50) { # the metrics are counted as each request ends, after its answer
    $after = scrape($admin);
    last if (sample($after->{parsed}, 'nebula_requests_total', %$ok_l) // 0) == 4
         && sample($after->{parsed}, 'nebula_requests_total', model => $m_5xx);
    sleep 0.1;
}
my $p = $after->{parsed};
ok(!$p->{error}, 'the second scrape parses too') or diag($after->{text});
is(sample($p, 'nebula_requests_total', %$ok_l), 4, 'requests_total counts the 4 answered requests');
is(sample($p, 'nebula_requests_total', model => $m_bad, channel => "$c_bad", status_class => '4xx'),
   1, '... the 400 in its own series (channel, 4xx)');
is(sample($p, 'nebula_requests_total', model => $m_5xx, channel => "$c_5xx", status_class => '5xx'),
   1, '... the 5xx in its own');
is(sample($p, 'nebula_errors_total', status => '400') - $err400_0, 1, 'errors_total{status="400"} +1');
ok(sample($p, 'nebula_errors_total', status => $five->code) >= 1,
   'errors_total counts the ' . $five->code);
is($p->{families}{nebula_requests}, 'counter', 'requests_total is a counter');
is($p->{families}{nebula_request_duration_seconds}, 'histogram', 'the latency is a histogram');

# tokens: what the request log says each request used
my ($pt, $ct) = (0, 0);
for (@ok_rids) { my $row = log_row($_); $pt += $row->{prompt_tokens}; $ct += $row->{completion_tokens} }
cmp_ok($ct, '>', 0, "the log rows hold the usage ($pt prompt, $ct completion)");
is(sample($p, 'nebula_prompt_tokens_total', %$ok_l), $pt, 'prompt_tokens_total = the log rows\' sum');
is(sample($p, 'nebula_completion_tokens_total', %$ok_l), $ct, 'completion_tokens_total likewise');
is(sample($p, 'nebula_cost_quota_total', %$ok_l), 0, 'cost 0: billing is off on this vhost');

# histograms: cumulative buckets, +Inf == _count == requests, a sum
for my $h (qw(nebula_request_duration_seconds nebula_time_to_first_token_seconds)) {
    my @b = sort { ($a->{labels}{le} eq '+Inf' ? 1e9 : $a->{labels}{le})
                   <=> ($b->{labels}{le} eq '+Inf' ? 1e9 : $b->{labels}{le}) }
            samples_of($p, "${h}_bucket", %$ok_l);
    is(scalar(@b), 14, "$h: 14 buckets (0.005 .. 60 s and +Inf)");
    my $mono = !grep { $b[$_]{value} < $b[$_ - 1]{value} } 1 .. $#b;
    ok($mono, "$h: the buckets never decrease");
    is($b[-1]{labels}{le}, '+Inf', "$h: the last is +Inf");
    is($b[-1]{value}, sample($p, "${h}_count", %$ok_l), "$h: +Inf == _count");
    is(sample($p, "${h}_count", %$ok_l), 4, "$h: 4 requests observed");
    cmp_ok(sample($p, "${h}_sum", %$ok_l), '>', 0, "$h: a sum in seconds");
}

is(sample($p, 'nebula_streams_open'), 0, 'no stream open any more');
is(sample($p, 'nebula_channel_breaker_state', channel => "$c_ok", key => 'all'), 0,
   'the ok channel\'s breaker is closed (0)');
is(sample($p, 'nebula_db_up'), 1, 'the database answered');
# the requests above borrowed (key lookups, log rows, the scrapes' probes):
# counted host-wide, whichever child served them; none is lent out at rest
cmp_ok(sample($p, 'nebula_db_borrows_total') // -1, '>', $db0{borrows_total},
       'db_borrows_total grew with the requests');
is(sample($p, 'nebula_db_borrow_failures_total'), $db0{borrow_failures_total},
   'no borrow failed meanwhile');
is(sample($p, 'nebula_db_nested_borrows_total'), $db0{nested_borrows_total},
   'no nested borrow meanwhile (NEB00014)');
cmp_ok(sample($p, 'nebula_db_connections_borrowed') // -1, '<=', 2,
       'at most the scrape\'s own probe and one in flight are lent out');
my $rconf = do { local (@ARGV, $/) = Apache::Test::vars('serverroot') . '/logs/nebula-redis.conf'; <> };
if ($rconf =~ /^NebulaRedis /m) {
    is(sample($p, 'nebula_redis_up'), 1, 'Redis (NebulaRedis) answered PING');
}
else {
    ok(!samples_of($p, 'nebula_redis_up'), 'no NebulaRedis: no nebula_redis_up');
}
cmp_ok(sample($p, 'nebula_reservations_held') // -1, '>=', 0, 'held reservations are shown');
my $spool = Apache::Test::vars('serverroot') . '/logs/nebula-billing.spool';
my $lines = -e $spool ? do { open my $f, '<', $spool; my @l = <$f>; scalar @l } : 0;
is(sample($p, 'nebula_billing_spool_records'), $lines, "the spool backlog ($lines records)");

# mod_status shows the totals too
my $auto = $ua->get("http://$admin/server-status?auto")->content;
like($auto, qr/^NebulaErrors: \d+$/m, 'mod_status: NebulaErrors');
like($auto, qr/^NebulaMetricsSeries: [1-9]\d*$/m, 'mod_status: the series in use');

# ---- access -------------------------------------------------------------------
my $tok = hp_of('nebula_ops_token');
my $no = scrape($tok);
is($no->{code}, 403, 'NebulaMetricsAllow none: loopback without the token gets 403');
is(eval { decode_json($no->{text})->{error}{code} } // '', 'metrics_forbidden',
   '... an OpenAI-shaped error');
is(scrape($tok, 'nebula-test-metrics-token-0123456789-wrong')->{code}, 403, 'a wrong token: 403');
is(scrape($tok, 'nebula-test-metrics-token-0123456789')->{code}, 200, 'the token opens it');
is($ua->post("http://$ops/metrics")->code, 405, 'POST /metrics: 405');

# ---- health --------------------------------------------------------------------
my $hz = $ua->get("http://$ops/healthz");
is($hz->code . ' ' . $hz->content, qq(200 {"status":"ok"}\n), '/healthz: 200 {"status":"ok"}');
my $rz = $ua->get("http://$ops/readyz");
is($rz->code, 200, '/readyz: 200 with the database answering');

# an extra host whose Redis is a closed port, with a vhost whose database
# cannot be opened
my ($p2, $p3, $dead) = (free_port(), free_port(), free_port());
my $h = extra_host(loglevel => 'info', conf => <<"CONF");
NebulaRedis redis://127.0.0.1:$dead
NebulaMetricsSeries 16
ErrorLogFormat "[%l] [trace %{nebula-trace-id}n] %M"
Listen 127.0.0.1:$p2
Listen 127.0.0.1:$p3
<VirtualHost 127.0.0.1:$p2>
    <Location /readyz>
        NebulaRelay Off
        SetHandler nebula-readyz
    </Location>
    <Location /metrics>
        NebulaRelay Off
        SetHandler nebula-metrics
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:$p3>
    DBDriver sqlite3
    DBDParams /nonexistent-nebula-dir/none.db
    <Location /readyz>
        NebulaRelay Off
        SetHandler nebula-readyz
    </Location>
</VirtualHost>
CONF
# ... and room for 16 series: 20 models no channel serves, the first a name
# the relay refuses (400 invalid_model: counted without a model name)
my $esc = qq(ops-esc-"q"\\-$$);
my @st = map { host_ask($h, $key, $_) } $esc, map { "ops-many-$$-$_" } 1 .. 19;
my $hm = scrape("127.0.0.1:$p2")->{parsed};
my $total = 0;
$total += $_->{value} for samples_of($hm, 'nebula_requests_total');
is(join(' ', map { sample($hm, $_) // '-' }
             qw(nebula_metrics_series nebula_metrics_series_max nebula_metrics_series_overflow_total)),
   '16 16 4', "NebulaMetricsSeries 16: 16 series, 4 requests past them (statuses @st)");
is($total, 20, '... all 20 requests counted');
my ($other) = samples_of($hm, 'nebula_requests_total', model => '__other__', channel => '__other__');
is($other && $other->{value}, 4, '... 4 in the __other__ series of their status class');
is(sample($hm, 'nebula_requests_total', model => '', channel => 'none', status_class => '4xx'), 1,
   'the refused name counts as model "", channel "none", 4xx');
my $r2 = $ua->get("http://127.0.0.1:$p2/readyz");
is($r2->code, 503, 'Redis gone: /readyz 503');
is_deeply(eval { decode_json($r2->content)->{failed} }, ['redis'], '... naming redis only')
    or diag($r2->content);
my $r3 = $ua->get("http://127.0.0.1:$p3/readyz");
is_deeply([ $r3->code, eval { decode_json($r3->content)->{failed} } ], [ 503, ['database', 'redis'] ],
          'database and Redis gone: 503 naming both') or diag($r3->content);
# the request's error-log lines name its trace (ErrorLogFormat %{nebula-trace-id}n)
my $etid = join '', map { sprintf '%08x', int(rand(2**32)) } 1 .. 4;
my $ereq = HTTP::Request->new(POST => "http://127.0.0.1:$h->{port}/v1/chat/completions");
$ereq->header(Authorization => "Bearer $key", 'Content-Type' => 'application/json',
              traceparent => "00-$etid-00f067aa0ba902b7-00");
$ereq->content(encode_json({ model => 'bad model', messages => [] }));
is($ua->request($ereq)->code, 400, 'a refused model name (400) on the extra host');
like(host_error_log($h), qr/^\[info\] \[trace $etid\] .*NEB01420/m,
     '... its NEB01420 line carries the client\'s trace id');
stop_host($h);

# ---- traceparent ----------------------------------------------------------------
my $tid = join '', map { sprintf '%08x', int(rand(2**32)) } 1 .. 4;
my $pid = '00f067aa0ba902b7';
my $tr = ask($key, $m_ok, headers => { traceparent => "00-$tid-$pid-01", tracestate => 'acme=7' });
my $bad_tp = ask($key, $m_ok, headers => { traceparent => '00-' . ('0' x 32) . "-$pid-01",
                                           tracestate => 'acme=8' });
my $upper = ask($key, $m_ok, headers => { traceparent => '00-' . uc($tid) . "-$pid-01" });
my $none = ask($key, $m_ok);
my %up;
for (1 .. 50) {
    %up = map { ($_->{headers}{'x-request-id'} // '') => $_->{headers} } @{ mock_records($tag_ok, 20) };
    last if $up{ $none->header('X-Request-Id') };
    sleep 0.1;
}
my $got = $up{ $tr->header('X-Request-Id') } // {};
my ($span) = ($got->{traceparent} // '') =~ /^00-\Q$tid\E-([0-9a-f]{16})-01$/;
ok($span, "upstream gets the client's trace id ($got->{traceparent})");
ok($span && $span ne $pid && $span ne '0' x 16, '... with a new span id of ours');
is($got->{tracestate}, 'acme=7', '... and the tracestate');
my $rep = $up{ $bad_tp->header('X-Request-Id') } // {};
like($rep->{traceparent} // '', qr/^00-(?!0{32})[0-9a-f]{32}-[0-9a-f]{16}-01$/,
     'an all-zero trace id is replaced by a new trace');
ok(!exists $rep->{tracestate}, '... and its tracestate not forwarded');
my ($utid) = ($up{ $upper->header('X-Request-Id') }{traceparent} // '') =~ /^00-([0-9a-f]{32})-/;
ok($utid && $utid ne $tid, 'upper-case hex is not version 00: a new trace');
my ($ntid) = ($up{ $none->header('X-Request-Id') }{traceparent} // '') =~ /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/;
ok($ntid && $ntid ne $utid, 'no traceparent: a new trace of its own');

# ---- the JSON access log ----------------------------------------------------------
my $weird = $ua->get("http://$ops/healthz", 'User-Agent' => "caf\xc3\xa9 \"q\" \\ end");
my $log = Apache::Test::vars('serverroot') . '/logs/ops_json_log';
my (@rows, $bad_lines, $mine);
for (1 .. 50) {
    open(my $lf, '<', $log) or die "$log: $!";
    my @l = <$lf>;
    $bad_lines = grep { !eval { decode_json($_); 1 } } @l;
    @rows = map { eval { decode_json($_) } // () } @l;
    ($mine) = grep { $_->{request_id} eq ($tr->header('X-Request-Id') // '?') } @rows;
    last if $mine && grep { $_->{agent} =~ /^caf/ } @rows;
    sleep 0.1;
}
is($bad_lines, 0, 'every line of the JSON access log parses (' . scalar(@rows) . ' lines)');
is(join(' ', map { $mine->{$_} // '-' } qw(trace_id model channel status)),
   "$tid $m_ok $c_ok 200", 'the traced request\'s line: trace id, model, channel, status');
my ($w) = grep { $_->{agent} =~ /^caf/ } @rows;
is($w->{agent} // '', 'caf%C3%A9 "q" \\ end', 'a client\'s non-ASCII bytes are %-encoded, quotes kept');
