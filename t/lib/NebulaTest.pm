package NebulaTest;
# Helpers shared by NebulaGate's .t files.
use strict;
use warnings;
use Exporter 'import';
use FindBin;
use File::Spec;
use IO::Socket::INET;
use Time::HiRes qw(time);
use JSON::PP ();
our @EXPORT_OK = qw(top_dir libexecdir httpd_bin run_cmd run_cmd3 timed_sse_post sse_events);

# The repository root (t/..).
sub top_dir {
    my $t = File::Spec->rel2abs("$FindBin::Bin");
    $t =~ s{/t(/[^/]+)?$}{};
    return $t;
}

sub libexecdir { chomp(my $d = `apxs -q LIBEXECDIR`); return $d }
# NEBULA_HTTPD: another httpd to start (scripts/asan.sh: a wrapper that preloads ASan)
sub httpd_bin  {
    return $ENV{NEBULA_HTTPD} if $ENV{NEBULA_HTTPD};
    chomp(my $s = `apxs -q SBINDIR`); chomp(my $t = `apxs -q TARGET`); return "$s/$t";
}

# Run a command (no shell); returns (exit code, stdout and stderr together).
sub run_cmd {
    my @cmd = @_;
    my $pid = open(my $fh, '-|') // die "cannot fork: $!";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT) or die $!;
        exec(@cmd) or do { print "cannot run $cmd[0]: $!\n"; exit 127 };
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

# Run a command (no shell; stdin closed); returns (exit code, stdout, stderr).
sub run_cmd3 {
    my @cmd = @_;
    require IPC::Open3;
    require Symbol;
    my $err = Symbol::gensym();
    my $pid = IPC::Open3::open3(my $in, my $out, $err, @cmd);
    close $in;
    my $o = do { local $/; <$out> } // '';
    my $e = do { local $/; <$err> } // '';
    waitpid($pid, 0);
    return ($? >> 8, $o, $e);
}

# POST $body to http://$hostport$path over a raw socket and read the response
# as it arrives. Returns { status, headers (lc name => value), events => [
# [arrival time in s, data] ... ], raw }: one entry per SSE "data:" line, timed
# when its bytes reached the client. Chunked framing is undone as it arrives.
sub timed_sse_post {
    my ($hostport, $path, $headers, $body, $timeout) = @_;
    $timeout ||= 30;
    my $sock = IO::Socket::INET->new(PeerAddr => $hostport, Timeout => 10)
        or die "connect $hostport: $!";
    my $req = "POST $path HTTP/1.1\r\nHost: $hostport\r\nConnection: close\r\n"
        . join('', map { "$_: $headers->{$_}\r\n" } sort keys %$headers)
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    print $sock $req;
    my ($buf, $head, %res) = ('', undef);
    my $text = '';        # de-chunked body so far
    my $raw = '';
    my $chunked;
    my $deadline = time + $timeout;
    $res{events} = [];
    my $pending = '';     # body bytes not yet split into lines
    while (time < $deadline) {
        my $n = sysread($sock, my $data, 65536);
        last if !$n;
        my $now = time;
        $raw .= $data;
        $buf .= $data;
        if (!defined $head) {
            my $i = index($buf, "\r\n\r\n");
            next if $i < 0;
            $head = substr($buf, 0, $i);
            $buf = substr($buf, $i + 4);
            my ($sl, @h) = split /\r\n/, $head;
            ($res{status}) = $sl =~ m{^HTTP/1\.\d (\d{3})};
            for (@h) { my ($k, $v) = /^([^:]+):\s*(.*)$/; $res{headers}{lc $k} = $v }
            $chunked = ($res{headers}{'transfer-encoding'} // '') =~ /chunked/i;
        }
        my $new = '';
        if ($chunked) {
            while ($buf =~ /^([0-9a-fA-F]+)\r\n/) {
                my $len = hex $1;
                my $hl = length($1) + 2;
                last if length($buf) < $hl + $len + 2;
                $new .= substr($buf, $hl, $len);
                $buf = substr($buf, $hl + $len + 2);
                if ($len == 0) { $res{complete} = 1; last }
            }
        }
        else { $new = $buf; $buf = '' }
        $text .= $new;
        $pending .= $new;
        while ($pending =~ s/^(.*?)\r?\n//) {
            my $line = $1;
            push @{ $res{events} }, [$now, $1] if $line =~ /^data: ?(.*)$/;
        }
        last if $res{complete};
    }
    close $sock;
    $res{body} = $text;
    $res{raw} = $raw;
    return \%res;
}

# An SSE body -> [[event name or undef, decoded JSON or the raw data] ...]
sub sse_events {
    my ($body) = @_;
    my @out;
    for my $block (split /\r?\n\r?\n/, $body) {
        my ($ev, @data);
        for (split /\r?\n/, $block) {
            $ev = $1 if /^event: ?(.*)$/;
            push @data, $1 if /^data: ?(.*)$/;
        }
        next unless @data;
        my $d = join "\n", @data;
        push @out, [$ev, ($d =~ /^\{/ ? JSON::PP::decode_json($d) : $d)];
    }
    return \@out;
}

1;
