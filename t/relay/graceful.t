# Graceful restarts under long streams: 50 billed streams of 30 s (one event
# a second) through a gateway host of its own (t/lib/NebulaHost.pm, on the
# suite's database and mock), and `httpd -k graceful` three times while they
# run, the second with a configuration change. Every stream ends with its
# final events ([DONE] after the usage chunk), the new configuration serves
# new requests while the old streams still run, and each stream is charged
# exactly once: 50 consume rows of the right amount, nothing left reserved.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(encode_json decode_json);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin);
use NebulaBilling qw(billed_setup wallet ledger_rows);
use NebulaHost qw(extra_host stop_host host_error_log);
use NebulaTest qw(timed_sse_post httpd_bin run_cmd);

plan tests => 9;

my ($streams, $events) = (50, 30);
my $words = 10;
my $cost = $words + $events; # ratio 1: prompt words + one token an event
my %s = billed_setup(name => 'graceful', balance => 1_000_000,
                     controls => "events=$events,delay_ms=1000");
my $h = extra_host(billing => 1, servers => 6, start => 2, threads => 32, settle => 1);
my $hp = "127.0.0.1:$h->{port}";
my $body = encode_json({ model => $s{model}, stream => JSON::PP::true, max_tokens => 100,
                         stream_options => { include_usage => JSON::PP::true },
                         messages => [ { role => 'user', content => join(' ', ('w') x $words) } ] });
my $hdr = { Authorization => "Bearer $s{key}", 'Content-Type' => 'application/json' };

sub graceful { run_cmd(httpd_bin(), '-f', "$h->{dir}/httpd.conf", '-k', 'graceful') }
# GET a path on the host: its status
sub status_of {
    my $sk = IO::Socket::INET->new(PeerAddr => $hp, Timeout => 5) or return 0;
    print $sk "GET $_[0] HTTP/1.0\r\n\r\n";
    my ($code) = (do { local $/; <$sk> } // '') =~ m{^HTTP/1\.\d (\d+)};
    return $code // 0;
}

my %kid;
for my $i (1 .. $streams) {
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        close $r;
        my $res = timed_sse_post($hp, '/v1/chat/completions', $hdr, $body, 90);
        my @data = map { $_->[1] } @{ $res->{events} };
        my $content = grep { /"content":"[^"]/ } @data; # the deltas, not the role chunk
        print $w encode_json({ status => $res->{status} // 0, done => ($data[-1] // '') eq '[DONE]',
                               usage => scalar(grep { /"usage":\{/ } @data), content => $content });
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    $kid{$pid} = $r;
}
# the probe path: refused by the change below, 404 from the relay before it
my $probe = '/graceful-probe';
my $before = status_of($probe);
sleep 5;
graceful();
sleep 5;
open(my $fh, '>>', "$h->{dir}/httpd.conf") or die $!;
print $fh "<Location $probe>\n    Require all denied\n</Location>\n";
close $fh;
graceful();
sleep 3;
my $after = status_of($probe);
sleep 4;
graceful();

my (@res, %st);
for my $pid (keys %kid) {
    my $fh = $kid{$pid};
    my $j = do { local $/; <$fh> } // '';
    close $fh;
    waitpid($pid, 0);
    push @res, eval { decode_json($j) } // {};
}
$st{ $_->{status} }++ for @res;
t_debug('statuses: ' . encode_json(\%st));
is(scalar(grep { $_->{status} == 200 } @res), $streams, "all $streams streams answered 200");
is(scalar(grep { $_->{done} } @res), $streams, '... and ended with [DONE]');
is(scalar(grep { $_->{content} == $events } @res), $streams, "... after their $events deltas");
is(scalar(grep { $_->{usage} == 1 } @res), $streams, '... and their usage chunk');
isnt($before, 403, "before the change the probe path was not refused ($before)");
is($after, 403, 'the changed configuration served a new request while the streams ran');

my $w = wallet($s{user});
my @consume = grep { $_->{kind} eq 'consume' } @{ ledger_rows($w->{id}) };
is(scalar(@consume), $streams, 'one consume row per stream');
is(scalar(grep { $_->{amount} == -$cost } @consume), $streams, "each of the stream's cost ($cost)")
    or diag(encode_json([ map { $_->{amount} } @consume ]));
is($w->{reserved} // 0, 0, 'nothing left reserved');
my $log = host_error_log($h);
t_debug($1) while $log =~ /^(.*\[(?:error|crit|alert|emerg)\].*)$/mg;
stop_host($h);
