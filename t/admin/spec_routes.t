# docs/admin-api.yaml against the code: every route of every table in
# mod_nebula_relay/*.c ({"METHOD", "/api/...", handler, flags}) is an operation
# of the spec and every operation of the spec is a route (path parameters
# compared as {}); each operation has what the spec promises (summary, tags,
# x-roles, responses, declared path parameters) and its x-roles and security
# agree with the route's flags (ROUTE_PUBLIC, ROUTE_ANY_ROLE, managers only).
# Every $ref of the spec resolves, and, where Python's openapi-spec-validator
# is installed, the document is valid OpenAPI 3.1. No server is needed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(top_dir);
use NebulaSpec qw(spec spec_file spec_operations spec_resolve spec_template_key);

plan tests => 17;

my $top = top_dir();
my $spec = spec(spec_file());
is($spec->{openapi}, '3.1.0', 'the spec is OpenAPI 3.1.0');

# ---- the routes of the code ----------------------------------------------------
my (%route, @dups);
my @files = glob("$top/mod_nebula_relay/*.c");
for my $f (@files) {
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    my $src = <$fh>;
    $src =~ s{/\*.*?\*/}{ }gs;    # comments out (they may quote routes)
    $src =~ s{//[^\n]*}{}g;
    (my $base = $f) =~ s{.*/}{};
    while ($src =~ /\{\s*"([A-Z]+)"\s*,\s*"(\/api[^"]*)"\s*,\s*(\w+)\s*,\s*([^{}]*?)\s*\}/g) {
        my ($m, $p, $fn, $flags) = ($1, $2, $3, $4);
        my $k = spec_template_key($m, $p);
        push @dups, "$k ($base)" if $route{$k};
        $route{$k} = { method => $m, path => $p, fn => $fn, flags => $flags, file => $base };
    }
}
cmp_ok(scalar(keys %route), '>=', 100, 'the route tables were found ('
       . scalar(keys %route) . ' routes)');
is_deeply(\@dups, [], 'no route is in the tables twice');
# every table admin_route.c searches is one this test read
{
    open my $fh, '<', "$top/mod_nebula_relay/admin_route.c" or die $!;
    local $/;
    my $src = <$fh>;
    my ($list) = $src =~ /tables\[\]\s*=\s*\{(.*?)\};/s;
    my @tables = grep { $_ ne 'NULL' } ($list // '') =~ /(\w+)/g;
    my %defined;
    for my $f (@files) {
        open my $g, '<', $f or die $!;
        my $s = do { local $/; <$g> };
        $defined{$1} = 1 while $s =~ /admin_route_t\s+(\w+)\s*\[\]\s*=/g;
    }
    my @missing = grep { !$defined{$_} } @tables;
    ok(@tables >= 2 && !@missing, 'every table of admin_route.c is defined in '
       . 'mod_nebula_relay/*.c: ' . join(', ', @tables))
        or diag("not found: @missing");
}

# ---- the operations of the spec ------------------------------------------------
my %op;
for my $o (spec_operations($spec)) {
    $op{ spec_template_key($o->{method}, $o->{path}) } = $o;
}
# the operations endpoints are handlers (SetHandler nebula-metrics ...), not
# routes of the admin API's tables
delete @op{'GET /metrics', 'GET /healthz', 'GET /readyz'};
my @no_spec = sort grep { !$op{$_} } keys %route;
my @no_route = sort grep { !$route{$_} } keys %op;
is_deeply(\@no_spec, [], 'every route of the code is in docs/admin-api.yaml')
    or diag("routes missing from the spec:\n" . join('',
            map { "  $_ ($route{$_}{fn}, $route{$_}{file})\n" } @no_spec));
is_deeply(\@no_route, [], 'every operation of docs/admin-api.yaml is a route of the code')
    or diag("spec operations without a route:\n" . join('', map { "  $_\n" } @no_route));
is(scalar(keys %op), scalar(keys %route), 'as many operations as routes');

# ---- what each operation says --------------------------------------------------
my %tags = map { $_->{name} => 1 } @{ $spec->{tags} || [] };
my (@bad_tags, @no_summary, @no_roles, @no_resp, @bad_params, @ids, %seen_id);
for my $k (sort keys %op) {
    my ($o, $path) = ($op{$k}{op}, $op{$k}{path});
    push @no_summary, $k unless ($o->{summary} // '') =~ /\S/;
    push @bad_tags, $k unless @{ $o->{tags} || [] } == 1 && $tags{ $o->{tags}[0] };
    push @no_roles, $k unless ref $o->{'x-roles'} eq 'ARRAY';
    push @no_resp, $k unless grep { /^[2]\d\d$/ } keys %{ $o->{responses} || {} };
    push @ids, $k if !$o->{operationId} || $seen_id{ $o->{operationId} }++;
    # every {param} of the path is declared (path item or operation), in: path
    my @declared = map { spec_resolve($_, $spec) }
                   @{ $spec->{paths}{$path}{parameters} || [] }, @{ $o->{parameters} || [] };
    my %pp = map { $_->{name} => 1 } grep { $_->{in} eq 'path' && $_->{required} } @declared;
    for my $name ($path =~ /\{([^}]+)\}/g) {
        push @bad_params, "$k: {$name}" unless $pp{$name};
    }
}
is_deeply(\@no_summary, [], 'every operation has a summary');
is_deeply(\@bad_tags, [], 'every operation has one of the declared tags');
is_deeply(\@ids, [], 'every operation has a unique operationId');
is_deeply(\@no_resp, [], 'every operation documents a 2xx response');
is_deeply(\@bad_params, [], 'every path parameter is declared as a required path parameter');

# x-roles and security against the route's flags
my @role_mismatch;
for my $k (sort grep { $op{$_} } keys %route) {
    my ($o, $flags) = ($op{$k}{op}, $route{$k}{flags});
    my $roles = join(',', sort @{ $o->{'x-roles'} || [] });
    my $public = ref $o->{security} eq 'ARRAY' && !@{ $o->{security} };
    if ($flags =~ /ROUTE_PUBLIC/) {
        push @role_mismatch, "$k: public, spec says roles [$roles]" if $roles ne '' || !$public;
    }
    elsif ($flags =~ /ROUTE_ANY_ROLE/) {
        # any signed-in role passes the gate; a handler may still refuse users
        # (governance: operators read, users do not)
        push @role_mismatch, "$k: any role, spec says [$roles]"
            unless $roles =~ /\boperator\b/ && !$public;
    }
    elsif ($k =~ /^GET / && $k ne 'GET /api/vouchers/{}/export') {
        # operators read what managers read (admin_route.c role_allows), but
        # not the voucher codes in clear
        push @role_mismatch, "$k: managers and operators, spec says [$roles]"
            unless $roles eq 'admin,operator,root' && !$public;
    }
    else {
        push @role_mismatch, "$k: managers only, spec says [$roles]"
            unless $roles eq 'admin,root' && !$public;
    }
}
is_deeply(\@role_mismatch, [], 'x-roles and security agree with each route\'s flags');

# ---- the document itself -------------------------------------------------------
my @unresolved;
sub walk {
    my ($n, $where) = @_;
    if (ref $n eq 'HASH') {
        if (defined $n->{'$ref'}) {
            eval { spec_resolve({ '$ref' => $n->{'$ref'} }, $spec); 1 }
                or push @unresolved, "$where: $n->{'$ref'}";
        }
        walk($n->{$_}, "$where/$_") for keys %$n;
    }
    elsif (ref $n eq 'ARRAY') {
        walk($n->[$_], "$where/$_") for 0 .. $#$n;
    }
}
walk($spec, '#');
is_deeply(\@unresolved, [], 'every $ref of the spec resolves');
ok($spec->{components}{schemas}{Error} && $spec->{components}{responses}{NotFound},
   'the shared Error schema and error responses are components');
is_deeply([ sort keys %{ $spec->{components}{securitySchemes} || {} } ],
          [qw(accessToken adminToken csrf remoteUser session sessionHost)], 'the six security schemes');

# ---- a valid OpenAPI 3.1 document (when a validator is at hand) ----------------
SKIP: {
    my $py = (grep { system("$_ -c 'import openapi_spec_validator, yaml' 2>/dev/null") == 0 }
              qw(python3 python3.11))[0];
    skip 'no Python with openapi_spec_validator and yaml', 1 unless $py;
    my $file = spec_file();
    my $out = `$py - '$file' 2>&1 <<'PY'
import sys, yaml
from openapi_spec_validator import OpenAPIV31SpecValidator
spec = yaml.safe_load(open(sys.argv[1]))
errs = list(OpenAPIV31SpecValidator(spec).iter_errors())
for e in errs[:20]:
    print('/'.join(str(p) for p in e.absolute_path) + ': ' + e.message[:300])
print('errors: %d' % len(errs))
PY
`;
    like($out, qr/^errors: 0$/m, "openapi-spec-validator ($py) finds the spec valid OpenAPI 3.1")
        or diag($out);
}
