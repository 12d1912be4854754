package OpsMetrics;
# Reading /metrics the way Prometheus does: the text goes through the
# Prometheus client library's own parser (Debian's python3-prometheus-client,
# prometheus_client.parser.text_string_to_metric_families); a text it
# refuses fails the scrape. What it parsed comes back as Perl data.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP qw(decode_json);
use File::Temp qw(tempfile);
use LWP::UserAgent;

our @EXPORT_OK = qw(scrape prom_parse sample samples_of python);

sub python { return -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3' }

my $PARSER = <<'PY';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding='utf-8').read()
out = {'families': {}, 'samples': []}
for fam in text_string_to_metric_families(text):
    out['families'][fam.name] = fam.type
    for s in fam.samples:
        v = s.value
        out['samples'].append({'name': s.name, 'labels': s.labels,
                               'value': None if v != v else v})
print(json.dumps(out))
PY

# prom_parse(TEXT) -> { families => {name => type}, samples => [{name, labels, value}] }
# or { error => what the parser said }
sub prom_parse {
    my ($text) = @_;
    my ($fh, $file) = tempfile(UNLINK => 1);
    binmode $fh;
    print $fh $text;
    close $fh;
    my $py = python();
    open(my $p, '-|', $py, '-c', $PARSER, $file) or return { error => "cannot run $py: $!" };
    my $json = do { local $/; <$p> };
    close $p;
    return { error => "the Prometheus parser refused the text (exit " . ($? >> 8) . ")" }
        if $? || !$json;
    return decode_json($json);
}

# scrape(HOSTPORT, TOKEN) -> { code, content_type, text, parsed (prom_parse) }
sub scrape {
    my ($hp, $token) = @_;
    my $ua = LWP::UserAgent->new(timeout => 30);
    my @h = $token ? (Authorization => "Bearer $token") : ();
    my $res = $ua->get("http://$hp/metrics", @h);
    my %r = (code => $res->code, content_type => scalar $res->header('Content-Type'),
             text => $res->content);
    $r{parsed} = prom_parse($res->content) if $res->code == 200;
    return \%r;
}

# The samples of NAME whose labels include LABELS (a hash).
sub samples_of {
    my ($parsed, $name, %want) = @_;
    return grep {
        my $s = $_;
        $s->{name} eq $name && !grep { ($s->{labels}{$_} // "\0") ne $want{$_} } keys %want
    } @{ $parsed->{samples} };
}

# The value of the one sample of NAME with LABELS; undef when none.
sub sample {
    my @s = samples_of(@_);
    return @s ? $s[0]{value} : undef;
}

1;
