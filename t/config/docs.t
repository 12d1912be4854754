# docs/configuration.md stays true to the code:
#   - every directive the three modules register (AP_INIT_* in
#     mod_nebula_*/*.c and *.h) has a row there (t/config/load.t checks
#     conf/nebula.conf);
#   - every Nebula... name on the page is a registered directive (no stale
#     or misspelt ones);
#   - each row's context is the one the code allows: OR_* "server config,
#     virtual host, directory, .htaccess"; RSRC_CONF "server config, virtual
#     host", or "server config" when the setter refuses virtual hosts
#     (GLOBAL_ONLY);
#   - every environment variable the Docker entrypoint and the image's
#     httpd-nebula.conf read, and every one nebulactl reads, is on the page;
#   - its links and operations.md's reach a file and a heading;
#   - README.zh-CN.md has README.md's sections and code blocks, and the two
#     link to each other.
# The directive checks also run on a copy of the page with a row removed, a
# context changed and a stale name added, and must find exactly those.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir);

my $top = top_dir();

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

# The directives the code registers: name => context expected on the page.
sub code_directives {
    my (%src, %dirs);
    for my $f (glob("$top/mod_nebula_*/*.c"), glob("$top/mod_nebula_*/*.h")) {
        $src{$f} = slurp($f);
    }
    my $all = join "\n", values %src;
    while ($all =~ /AP_INIT_\w+\(\s*"<?(Nebula\w+)"\s*,\s*(\w+)\s*,.*?,\s*
                    (RSRC_CONF|ACCESS_CONF|OR_[A-Z]+)\s*,/gsx) {
        my ($name, $setter, $where) = ($1, $2, $3);
        my $ctx;
        if ($where =~ /^OR_/) {
            $ctx = 'server config, virtual host, directory, .htaccess';
        }
        elsif ($where eq 'ACCESS_CONF') {
            $ctx = 'directory';
        }
        else {
            # the setter's body: from its definition to the first "}" in column 0
            # (a definition: no ';' before its '{', unlike a prototype)
            my ($body) = $all =~ /(^(?:static\s+)?const\s+char\s+\*\s*\Q$setter\E\s*
                                   \([^;{]*\)\s*\{.*?^\})/msx;
            $ctx = defined $body && $body =~ /\bGLOBAL_ONLY\b/
                 ? 'server config' : 'server config, virtual host';
        }
        die "$name registered twice\n" if exists $dirs{$name};
        $dirs{$name} = $ctx;
    }
    return %dirs;
}

# The page: directive => its row's context cell, and every Nebula... name.
sub doc_directives {
    my ($text) = @_;
    my (%rows, %named);
    for my $line (split /\n/, $text) {
        if ($line =~ /^\|\s*`<?(Nebula\w+)[\s>`]/) {
            my $name = $1;
            my @cells = split /(?<!\\)\|/, $line;
            (my $ctx = $cells[2] // '') =~ s/^\s+|\s+$//g;
            $rows{$name} = $ctx;
        }
        elsif ($line =~ /^#+\s.*`<?(Nebula\w+)/) {
            $rows{$1} //= '';
        }
    }
    $named{$1} = 1 while $text =~ /\b(Nebula[A-Z]\w*)/g;
    delete $named{NebulaGate};
    return (\%rows, \%named);
}

# Problems of a page: a list of messages (empty: true to the code).
sub problems {
    my ($text, $code) = @_;
    my ($rows, $named) = doc_directives($text);
    my @p;
    for my $d (sort keys %$code) {
        if (!exists $rows->{$d}) {
            push @p, "$d: registered but has no row";
        }
        elsif ($rows->{$d} ne '' && $rows->{$d} ne $code->{$d}) {
            push @p, "$d: context '$rows->{$d}', the code allows '$code->{$d}'";
        }
    }
    push @p, map { "$_: named on the page but not registered" }
        grep { !exists $code->{$_} } sort keys %$named;
    return @p;
}

my %code = code_directives();
my $doc = slurp("$top/docs/configuration.md");

# the parse found the modules' tables (75 directives when this test was written)
cmp_ok(scalar(keys %code), '>=', 70, 'directives registered in the code: ' . keys %code);
is($code{NebulaRedis}, 'server config', 'a GLOBAL_ONLY setter is recognised');
is($code{NebulaRelay}, 'server config, virtual host, directory, .htaccess',
   'an OR_OPTIONS directive is recognised');
is($code{NebulaPolicy}, 'server config, virtual host',
   'the <NebulaPolicy> section is recognised');

my @p = problems($doc, \%code);
is_deeply(\@p, [], 'docs/configuration.md matches the code') or diag join "\n", @p;

# the checker itself: a row removed, a stale name added, a context changed
(my $bad = $doc) =~ s/^\|\s*`NebulaDrainTimeout [^\n]*\n//m;
$bad .= "\n| `NebulaNoSuchThing N` | server config | 1 | stale |\n";
$bad =~ s/^(\|\s*`NebulaBreaker\ [^|]*\|)\s*server\ config\s*\|
         /$1 server config, virtual host |/mx;
is_deeply([ problems($bad, \%code) ],
          [ "NebulaBreaker: context 'server config, virtual host', the code allows "
            . "'server config'",
            'NebulaDrainTimeout: registered but has no row',
            'NebulaNoSuchThing: named on the page but not registered' ],
          'the checker finds a missing row, a wrong context and a stale name');

# environment variables: the Docker entrypoint and the image's configuration
my %env;
my $entry = slurp("$top/docker/entrypoint.sh");
$entry =~ s/^\s*#.*$//mg; # comments name forms, not variables
$env{$1} = 1 while $entry =~ /\$\{?([A-Z][A-Z0-9_]*)\b/g;
$env{$1} = 1 while $entry =~ /^\s*export\s+([A-Z][A-Z0-9_]*)=/mg;
my $image = slurp("$top/docker/httpd-nebula.conf");
$env{$1} = 1 while $image =~ /\$\{([A-Z][A-Z0-9_]*)\}/g;
for my $f (glob("$top/admin/nebulactl/*.c")) {
    my $c = slurp($f);
    $env{$1} = 1 while $c =~ /apr_env_get\([^,]+,\s*"([A-Z][A-Z0-9_]*)"/g;
}
ok($env{SQL_DSN} && $env{SQLITE_PATH} && $env{UPSTREAM_ALLOW},
   'variables found: ' . join(' ', sort keys %env));
my @undoc = grep { $doc !~ /`\Q$_\E`/ } sort keys %env;
is_deeply(\@undoc, [],
          'every variable the entrypoint, the image and nebulactl read is on the page')
    or diag join "\n", @undoc;

# links from configuration.md and operations.md reach a file and a heading
# (GitHub's anchors: lower case, punctuation dropped, spaces as '-');
# operations-data.md is issue 11 item 6's, linked before it lands
sub anchors {
    my ($file) = @_;
    my %a;
    for (split /\n/, slurp($file)) {
        next unless /^#+\s+(.*?)\s*$/;
        (my $slug = lc $1) =~ s/[^\w\- ]//g;
        $slug =~ s/ /-/g;
        $a{$slug} = 1;
    }
    return \%a;
}
my @bad;
for my $page (qw(configuration.md operations.md)) {
    my $text = slurp("$top/docs/$page");
    while ($text =~ /\]\(([^)#\s]*)(?:#([^)\s]+))?\)/g) {
        my ($path, $anchor) = ($1, $2);
        next if $path =~ m{^[a-z]+://};
        next if $path eq 'operations-data.md' && !-e "$top/docs/$path";
        my $file = $path eq '' ? "$top/docs/$page" : "$top/docs/$path";
        if (!-e $file) {
            push @bad, "$page: $path does not exist";
        }
        elsif (defined $anchor && !anchors($file)->{$anchor}) {
            push @bad, "$page: $path#$anchor: no such heading";
        }
    }
}
is_deeply(\@bad, [], 'links of configuration.md and operations.md resolve')
    or diag join "\n", @bad;

# README.zh-CN.md translates README.md: the same sections, the same commands
my $en = slurp("$top/README.md");
my $zh = slurp("$top/README.zh-CN.md");
my @blocks_en = $en =~ /^(```.*?^```)$/msg;
my @blocks_zh = $zh =~ /^(```.*?^```)$/msg;
ok(@blocks_en >= 5, 'README.md has its code blocks: ' . @blocks_en);
is_deeply(\@blocks_zh, \@blocks_en, 'README.zh-CN.md has the same code blocks');
is(scalar(() = $zh =~ /^## /mg), scalar(() = $en =~ /^## /mg), 'and as many sections');
like($zh, qr/\(README\.md\)/, 'README.zh-CN.md links back to README.md');
like($en, qr/\(README\.zh-CN\.md\)/, 'README.md links to README.zh-CN.md');

done_testing();
