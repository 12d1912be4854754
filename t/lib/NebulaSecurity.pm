package NebulaSecurity;
# Helpers of the security tests (t/security/*.t): canary secrets and the forms
# they could leak in (raw, URL-encoded, base64 at every alignment, hex), and
# dumps of every place a secret could end up: every column of every table of
# the test database (through its own client, as t/admin/AdminT.pm reaches it)
# and every key and value in Redis.
use strict;
use warnings;
use Exporter 'import';
use MIME::Base64 qw(encode_base64);
use File::Temp qw(tempfile);
use FindBin;
use lib "$FindBin::Bin/../lib", "$FindBin::Bin/../admin";
use NebulaTest qw(run_cmd);
use AdminT ();

our @EXPORT_OK = qw(canary canary_forms canary_hits db_text redis_text);

# A distinctive random secret: $prefix, then random letters and digits,
# then $suffix; 3n characters long so that its base64 forms are stable.
sub canary {
    my ($prefix, $suffix) = @_;
    my @a = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');
    my $s = $prefix . join('', map { $a[ int rand @a ] } 1 .. 24) . ($suffix // '');
    $s .= $a[ int rand @a ] while length($s) % 3;
    return $s;
}

sub uri_escape_all {
    my ($s) = @_;
    (my $e = $s) =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $e;
}

# name => substring for each form a leak of $secret would take: the secret,
# its URL encoding (upper and lower case hex), its hex bytes, and its
# base64 and base64url encodings at each of the three alignments it can
# have inside a longer encoded text (the part that does not depend on the
# neighbouring bytes).
sub canary_forms {
    my ($secret) = @_;
    my %f = (raw => $secret, hex => unpack('H*', $secret));
    my $u = uri_escape_all($secret);
    @f{qw(url url_lc)} = ($u, $u =~ s/(%[0-9A-F]{2})/lc $1/ger) if $u ne $secret;
    for my $pad (0 .. 2) {
        my $b = encode_base64(('x' x $pad) . $secret . 'xxx', '');
        # the whole groups made of secret bytes only
        my $from = $pad ? 4 : 0;
        my $len = int((length($secret) - ($pad ? 3 - $pad : 0)) / 3) * 4;
        my $inner = substr($b, $from, $len);
        $f{"base64_$pad"} = $inner;
        (my $url = $inner) =~ tr{+/}{-_};
        $f{"base64url_$pad"} = $url if $url ne $inner;
    }
    return \%f;
}

# The forms of any of the secrets (name => forms) found in $text: a list of
# "secret/form" names, empty when clean.
sub canary_hits {
    my ($text, $canaries) = @_;
    return () unless defined $text && length $text;
    my @hits;
    for my $name (sort keys %$canaries) {
        my $forms = $canaries->{$name};
        for my $f (sort keys %$forms) {
            push @hits, "$name/$f" if index($text, $forms->{$f}) >= 0;
        }
    }
    return @hits;
}

# ---- the database ----------------------------------------------------------------

sub db_driver { return $ENV{NEBULA_TEST_DBD_DRIVER} // 'sqlite3' }

sub qid {
    my ($id) = @_;
    return db_driver() eq 'mysql' ? "`$id`" : qq{"$id"};
}

# [table, column] of every column of every table of the schema.
sub db_columns {
    my $drv = db_driver();
    my $sql = $drv eq 'sqlite3'
        ? "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p "
          . "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        : "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
          . ($drv eq 'pgsql' ? 'current_schema()' : 'DATABASE()')
          . ' ORDER BY table_name, ordinal_position';
    return AdminT::db_rows($sql);
}

# db_text(skip => { 'table.column' => 1 }): table => the text of every row of
# every column but the skipped ones (as the database's client prints them).
sub db_text {
    my (%o) = @_;
    my %cols;
    for my $tc (@{ db_columns() }) {
        my ($t, $c) = @$tc;
        next if $o{skip}{"$t.$c"};
        push @{ $cols{$t} }, $c;
    }
    my %text;
    for my $t (sort keys %cols) {
        my $sql = 'SELECT ' . join(', ', map { qid($_) } @{ $cols{$t} }) . ' FROM ' . qid($t);
        my ($rc, $out) = run_cmd(AdminT::db_cmd($sql));
        die "db dump of $t failed ($rc): $out\n" if $rc;
        $text{$t} = $out;
    }
    return \%text;
}

# The column of $table whose text holds $needle (to name a leak).
sub db_column_of {
    my ($table, $needle) = @_;
    for my $tc (@{ db_columns() }) {
        next unless $tc->[0] eq $table;
        my ($rc, $out) = run_cmd(AdminT::db_cmd('SELECT ' . qid($tc->[1]) . ' FROM ' . qid($table)));
        return $tc->[1] if !$rc && index($out, $needle) >= 0;
    }
    return '?';
}

# ---- Redis -----------------------------------------------------------------------

# Every key of the Redis at $url and its value (strings, hashes, lists, sets,
# sorted sets, streams), as one text; undef when redis-cli cannot reach it.
sub redis_text {
    my ($url) = @_;
    my ($rc, $keys) = run_cmd('redis-cli', '-u', $url, '--scan');
    return undef if $rc;
    my @keys = grep { length } split /\n/, $keys;
    my $text = $keys;
    return $text unless @keys;
    my %read = (string => 'GET %s', hash => 'HGETALL %s', list => 'LRANGE %s 0 -1',
                set => 'SMEMBERS %s', zset => 'ZRANGE %s 0 -1 WITHSCORES',
                stream => 'XRANGE %s - +');
    my $quote = sub { my $k = shift; $k =~ s/(["\\])/\\$1/g; return qq{"$k"} };
    my $types = redis_batch($url, map { 'TYPE ' . $quote->($_) } @keys);
    my @types = split /\n/, $types;
    my @cmds;
    for my $i (0 .. $#keys) {
        my $fmt = $read{ $types[$i] // '' } or next;
        push @cmds, sprintf($fmt, $quote->($keys[$i]));
    }
    $text .= redis_batch($url, @cmds) if @cmds;
    return $text;
}

# Run commands through one redis-cli (its stdin); their raw answers.
sub redis_batch {
    my ($url, @cmds) = @_;
    my ($fh, $file) = tempfile(UNLINK => 1);
    print $fh map { "$_\n" } @cmds;
    close $fh;
    my ($rc, $out) = run_cmd('sh', '-c', 'exec redis-cli -u "$1" < "$2"', 'sh', $url, $file);
    die "redis-cli failed ($rc): $out\n" if $rc;
    return $out;
}

1;
