# The request-log rows the relay writes itself go through a writer thread
# per process (relay_logq.c), batched into transactions: under concurrency
# every answered request has exactly its one row, with what the answer said,
# and the prompt is counted only when something needs the count.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/../lib", "$FindBin::Bin/../admin";
use NebulaAdmin qw(new_key new_channel chat key_logs log_row);
use AdminT qw(db_value);

plan tests => 8;

my $m = "gpt-4o-logq-$$";
new_channel(models => [$m]);
my ($key, $kid) = new_key();

# 20 clients, 10 requests each, at once
my ($W, $N) = (20, 10);
my @kids;
for my $w (1 .. $W) {
    pipe(my $r, my $wr) or die;
    my $pid = fork() // die;
    if (!$pid) {
        close $r;
        for my $i (1 .. $N) {
            my $res = chat($key, { model => $m, max_tokens => 5,
                                   messages => [{ role => 'user', content => "client $w request $i" }] });
            my $u = eval { decode_json($res->content)->{usage} } || {};
            printf {$wr} "%d %s %d %d\n", $res->code, $res->header('X-Request-Id') // '-',
                $u->{prompt_tokens} // -1, $u->{completion_tokens} // -1;
        }
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    push @kids, [ $pid, $r ];
}
my %sent;
for (@kids) {
    my ($pid, $r) = @$_;
    for (<$r>) {
        my ($code, $rid, $pt, $ct) = split;
        $sent{$rid} = [ $code, $pt, $ct ];
    }
    waitpid $pid, 0;
}
is(scalar(grep { $_->[0] == 200 } values %sent), $W * $N, "$W x $N concurrent requests answered");

my $total = 0;
for (1 .. 100) {
    $total = db_value("SELECT COUNT(*) FROM request_logs WHERE key_id = $kid");
    last if $total >= $W * $N;
    select(undef, undef, undef, 0.1);
}
is($total, $W * $N, 'one row per request, none lost');
is(db_value("SELECT COUNT(DISTINCT id) FROM request_logs WHERE key_id = $kid"), $W * $N,
   '... none written twice');
is(db_value("SELECT COUNT(*) FROM request_logs WHERE key_id = $kid AND status = 200 "
            . "AND end_reason = 'complete' AND model = '$m'"), $W * $N,
   '... each with its status, end and model');

# a row says what its answer said
my ($rid) = sort keys %sent;
my $row = log_row($rid);
is_deeply([ @{$row}{qw(prompt_tokens completion_tokens)} ], [ @{ $sent{$rid} }[1, 2] ],
          "a row's tokens are its answer's usage");
is($row->{usage_estimated}, 0, '... the upstream\'s own count');

# the upstream omits usage: the prompt is counted then, and the row says so
my $res = chat($key, { model => $m,
                       messages => [{ role => 'user', content => '[[mock no_usage=1]] count me' }] });
is($res->code, 200, 'an answer without usage');
$row = log_row($res->header('X-Request-Id'));
ok($row->{usage_estimated} && $row->{prompt_tokens} > 0,
   '... is logged with the gateway\'s own count of its prompt (' . ($row->{prompt_tokens} // '?') . ')');
