package NebulaSpec;
# The admin API's OpenAPI 3.1 description (docs/admin-api.yaml) for the tests:
# loading it, finding the operation of a concrete request, and validating a
# response (status, content type, body) against it.
#
# JSON::Validator 5.14 (Debian) has no OpenAPI 3.1 class (its OpenAPIv3 is 3.0,
# with `nullable`), so the schemas are validated as JSON Schema draft 2019-09,
# which OpenAPI 3.1's dialect (2020-12) agrees with for every keyword the spec
# uses (type arrays, const, enum, allOf/oneOf, additionalProperties, ...).
# Local `$ref`s (#/components/...) are resolved here before that.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP ();
use YAML::XS ();
use JSON::Validator::Schema::Draft201909;
use FindBin;
use File::Spec;

our @EXPORT_OK = qw(spec spec_file spec_operations spec_find spec_validate spec_resolve
                    spec_template_key);

my @METHODS = qw(get put post delete options head patch trace);
my %spec_cache;

# The path of docs/admin-api.yaml: $ENV{NEBULA_SPEC_FILE}, else from the top
# directory of the tree the test runs in (t/<dir>/x.t or t/x.t).
sub spec_file {
    return $ENV{NEBULA_SPEC_FILE} if $ENV{NEBULA_SPEC_FILE};
    (my $top = File::Spec->rel2abs($FindBin::Bin)) =~ s{/t(/[^/]+)?$}{};
    return "$top/docs/admin-api.yaml";
}

# The spec as Perl data (booleans as JSON::PP::Boolean); cached per file.
sub spec {
    my ($file) = @_;
    $file //= spec_file();
    return $spec_cache{$file} //= do {
        local $YAML::XS::Boolean = 'JSON::PP';
        YAML::XS::LoadFile($file);
    };
}

# "METHOD /path/{}/..." for a template: parameters normalised to {}.
sub spec_template_key {
    my ($method, $path) = @_;
    (my $p = $path) =~ s/\{[^}\/]*\}/{}/g;
    return uc($method) . " $p";
}

# Every operation: list of { method, path, op }.
sub spec_operations {
    my ($spec) = @_;
    $spec //= spec();
    my @ops;
    for my $path (sort keys %{ $spec->{paths} || {} }) {
        my $item = $spec->{paths}{$path};
        for my $m (@METHODS) {
            push @ops, { method => uc $m, path => $path, op => $item->{$m} } if $item->{$m};
        }
    }
    return @ops;
}

# A copy of @a node with every local $ref replaced by its target (recursively).
sub spec_resolve {
    my ($node, $spec, $depth) = @_;
    $spec //= spec();
    $depth //= 0;
    die "spec_resolve: \$ref nesting deeper than 64 (a cycle?)\n" if $depth > 64;
    if (ref $node eq 'HASH') {
        if (defined $node->{'$ref'}) {
            my $ref = $node->{'$ref'};
            die "spec_resolve: only local references are supported: $ref\n"
                unless $ref =~ m{^#/(.*)$};
            my $t = $spec;
            for my $seg (split m{/}, $1) {
                $seg =~ s/~1/\//g;
                $seg =~ s/~0/~/g;
                die "spec_resolve: $ref does not resolve\n"
                    unless ref $t eq 'HASH' && exists $t->{$seg};
                $t = $t->{$seg};
            }
            my $r = spec_resolve($t, $spec, $depth + 1);
            # siblings of $ref (3.1 allows them, e.g. description) are kept
            my %rest = map { $_ => $node->{$_} } grep { $_ ne '$ref' } keys %$node;
            return $r unless %rest;
            return { allOf => [ $r, spec_resolve(\%rest, $spec, $depth + 1) ] };
        }
        return { map { $_ => spec_resolve($node->{$_}, $spec, $depth + 1) } keys %$node };
    }
    if (ref $node eq 'ARRAY') {
        return [ map { spec_resolve($_, $spec, $depth + 1) } @$node ];
    }
    return $node;
}

# The template of @a path (no query) and its path item: the matching template
# with the most literal segments (so /api/keys/import wins over
# /api/keys/{key_id}). () when none matches.
sub spec_find_path {
    my ($spec, $path) = @_;
    my @segs = split m{/}, $path, -1;
    my ($best, $best_lit);
    for my $tpl (keys %{ $spec->{paths} || {} }) {
        my @t = split m{/}, $tpl, -1;
        next unless @t == @segs;
        my ($ok, $lit) = (1, 0);
        for my $i (0 .. $#t) {
            if ($t[$i] =~ /^\{[^}]+\}$/) {
                if ($segs[$i] eq '') {
                    $ok = 0;
                    last;
                }
            }
            elsif ($t[$i] eq $segs[$i]) {
                ++$lit;
            }
            else {
                $ok = 0;
                last;
            }
        }
        next unless $ok;
        ($best, $best_lit) = ($tpl, $lit) if !defined $best || $lit > $best_lit;
    }
    return defined $best ? ($best, $spec->{paths}{$best}) : ();
}

# (template, operation) of METHOD PATH; operation undef when the path is
# known but not the method; () when the path is unknown.
sub spec_find {
    my ($method, $path, $spec) = @_;
    $spec //= spec();
    $path =~ s/\?.*//s;
    my ($tpl, $item) = spec_find_path($spec, $path);
    return () unless defined $tpl;
    return ($tpl, $item->{ lc $method });
}

# Problems of a JSON body against a (resolved) schema.
sub schema_problems {
    my ($schema, $data, $where) = @_;
    my @errs = eval { JSON::Validator::Schema::Draft201909->new($schema)->validate($data) };
    return ("$where: the validator died: $@") if $@;
    return map { "$where: $_" } @errs;
}

# spec_validate(METHOD, PATH, STATUS, CONTENT_TYPE, BODY_TEXT) -> problems (empty: valid).
# PATH may carry a query string. The response is looked up as the spec says:
# the operation's response for STATUS; a 405 on a known path and a 404/401 on
# an unknown path are checked against components/responses (MethodNotAllowed,
# NotFound, Unauthorized).
sub spec_validate {
    my ($method, $path, $status, $ctype, $body) = @_;
    my $spec = spec();
    my $what = uc($method) . " $path -> $status";
    my ($tpl, $op) = spec_find($method, $path, $spec);
    my $resp;
    if (!defined $tpl) {
        my %generic = (404 => 'NotFound', 401 => 'Unauthorized');
        return ("$what: no path of the spec matches") unless $generic{$status};
        $resp = $spec->{components}{responses}{ $generic{$status} };
    }
    elsif (!$op) {
        return ("$what: $tpl has no operation " . uc($method) . " (and $status is not 405)")
            unless $status == 405 || ($status == 401 && uc($method) ne 'OPTIONS');
        $resp = $spec->{components}{responses}{ $status == 405 ? 'MethodNotAllowed'
                                                                 : 'Unauthorized' };
    }
    else {
        $resp = $op->{responses}{$status} // $op->{responses}{default};
        return ("$what: status $status is not documented for " . uc($method) . " $tpl")
            unless $resp;
    }
    $resp = spec_resolve($resp, $spec);
    my $content = $resp->{content};
    $body //= '';
    if (!$content || !%$content) {
        return length($body) ? ("$what: the spec says no body, got " . length($body)
                                . ' bytes') : ();
    }
    (my $mt = lc($ctype // '')) =~ s/\s*;.*//s;
    my $media = $content->{$mt};
    unless ($media) {
        return ("$what: content type '" . ($ctype // '') . "' is not one of "
                . join(', ', sort keys %$content));
    }
    my $schema = $media->{schema} // {};
    if ($mt =~ m{^application/(?:[a-z.+-]*\+)?json$}) {
        my $data = eval { JSON::PP->new->allow_nonref->decode($body) };
        return ("$what: the body is not JSON: " . substr($body, 0, 200)) if $@;
        return schema_problems($schema, $data, $what);
    }
    # text bodies (CSV, JSON lines, EPay's success/fail): a string schema
    return schema_problems($schema, $body, $what);
}

1;
