# /api/audit: the governance audit log (gov_audit), read-only: filters (time
# as Unix ms or RFC 3339, policy, action, stage, shadow, key, user, request
# id), newest first, pages; the export as JSON lines and CSV (oldest first,
# every matching row across batches, quoted, formula-safe); roles (operator
# reads, user 403); no route writes or deletes a row. The rows are written
# here through the database (mod_nebula_gov appends them in production).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json);
use POSIX qw(strftime);
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user db_exec db_value);

plan tests => 53;

my $t = uniq('aud');
# a window of time no other run uses: some day in 2001, from the pid and clock
my $T0 = 978307200000 + (($$ * 7919 + time) % 30_000_000) * 1000;
my ($K, $U) = (900000 + $$ % 1000, 800000 + $$ % 1000);
my $F = "from=$T0&to=" . ($T0 + 10_000);

sub sqlq { my ($v) = @_; return defined $v ? "'" . ($v =~ s/'/''/gr) . "'" : 'NULL' }
my @rows = (
    # created_at, request_id, key, user, ip, model, route, stage, policy, matcher, action, shadow, excerpt
    [ $T0, "$t-r1", $K, $U, '10.1.2.3', 'gpt-4o', 'chat', 'request', "$t-a", 'keywords',
      'block', 0, 'say "[keyword]", then, more' ],
    [ $T0 + 1000, "$t-r2", $K, undef, '10.1.2.4', 'claude-x', 'messages', 'response', "$t-b",
      'detector', 'redact', 0, 'mail [email] now' ],
    [ $T0 + 2000, "$t-r3", undef, $U, undef, 'gpt-4o', 'chat', 'request', "$t-a", undef, 'tag',
      1, undef ],
    [ $T0 + 3000, "$t-r4", $K + 1, undef, '::1', 'gpt-4o', 'chat', 'limit', "$t-rpm", undef,
      'block', 0, '=HYPERLINK("http://x")' ],
);
db_exec('INSERT INTO gov_audit (created_at, request_id, key_id, user_id, client_ip, model, route, '
        . 'stage, policy, matcher, action, shadow, excerpt) VALUES '
        . join(', ', map { '(' . join(', ', map { defined && /^-?\d+$/ ? $_ : sqlq($_) } @$_) . ')' } @rows)
        . '');
my @ids = map { db_value("SELECT id FROM gov_audit WHERE request_id = '$t-r$_'") } 1 .. 4;
sub ids { [ map { $_->{id} } @{ $_[0]{data} } ] }

# ---- the list ---------------------------------------------------------------
my ($res, $j) = api('GET', "/api/audit?$F");
is($res->code, 200, 'list: 200');
is_deeply([ $j->{total}, @{ ids($j) } ], [ 4, reverse @ids ], 'newest first');
is_deeply($j->{data}[3], { id => $ids[0], created_at => $T0, request_id => "$t-r1",
                           key_id => $K, user_id => $U, client_ip => '10.1.2.3', model => 'gpt-4o',
                           route => 'chat', stage => 'request', policy => "$t-a",
                           matcher => 'keywords', action => 'block', shadow => JSON::PP::false,
                           excerpt => 'say "[keyword]", then, more' }, 'a row: every field');
is_deeply([ @{ $j->{data}[1] }{qw(key_id client_ip matcher excerpt shadow)} ],
          [ undef, undef, undef, undef, JSON::PP::true ], 'NULLs are null, shadow is a bool');
my %f = (
    "policy=$t-a" => [ 3, 1 ], 'action=redact' => [2], 'stage=response' => [2],
    'stage=limit' => [4], 'shadow=true' => [3], 'shadow=0' => [ 4, 2, 1 ], "key_id=$K" => [ 2, 1 ],
    "user_id=$U" => [ 3, 1 ], "request_id=$t-r2" => [2], 'model=claude-x' => [2],
    'route=messages' => [2], "policy=$t-a&action=tag" => [3],
);
for my $q (sort keys %f) {
    ($res, $j) = api('GET', "/api/audit?$F&$q");
    is_deeply(ids($j), [ map { $ids[ $_ - 1 ] } @{ $f{$q} } ], "filter $q");
}
($res, $j) = api('GET', "/api/audit?from=" . ($T0 + 1000) . '&to=' . ($T0 + 3000));
is_deeply(ids($j), [ @ids[ 2, 1 ] ], 'from inclusive, to exclusive');
sub rfc3339 {
    my ($ms, $off) = @_;   # $off minutes east of UTC
    my $s = strftime('%Y-%m-%dT%H:%M:%S', gmtime(int($ms / 1000) + $off * 60));
    $s .= sprintf('.%03d', $ms % 1000);
    return $s . ($off ? sprintf('%s%02d:%02d', $off < 0 ? '-' : '+', abs($off) / 60, abs($off) % 60)
                      : 'Z');
}
($res, $j) = api('GET', '/api/audit?from=' . rfc3339($T0 + 1000, 0) . '&to=' . rfc3339($T0 + 3000, 0));
is_deeply(ids($j), [ @ids[ 2, 1 ] ], 'from/to as RFC 3339 (Z)');
($res, $j) = api('GET', '/api/audit?from=' . (rfc3339($T0 + 1000, 120) =~ s/\+/%2B/gr)
                 . '&to=' . rfc3339($T0 + 3000, -330));
is_deeply(ids($j), [ @ids[ 2, 1 ] ], 'from/to as RFC 3339 with offsets');
($res, $j) = api('GET', "/api/audit?$F&per_page=3&page=2");
is_deeply([ $j->{total}, $j->{page}, $j->{per_page}, @{ ids($j) } ], [ 4, 2, 3, $ids[0] ],
          'page 2 of 3 per page');
for my $q ('stage=later', 'shadow=maybe', 'from=yesterday', 'from=2026-13-01T00:00:00Z',
           'from=2026-01-01T00:00:00', 'from=5&to=4', 'key_id=0', 'colour=red',
           'request_id=' . ('x' x 41)) {
    ($res, $j) = api('GET', "/api/audit?$q");
    is($res->code, 400, "list with $q: 400");
}

# ---- export ---------------------------------------------------------------------
($res) = api('GET', "/api/audit/export?$F&format=jsonl");
is($res->code, 200, 'export jsonl: 200');
is($res->header('Content-Type'), 'application/x-ndjson', 'export jsonl: the type');
like($res->header('Content-Disposition'), qr/attachment; filename="audit\.jsonl"/, 'a file name');
my @l = split /\n/, $res->decoded_content;
($res, $j) = api('GET', "/api/audit?$F");
is_deeply([ map { decode_json($_) } @l ], [ reverse @{ $j->{data} } ],
          'export jsonl: the listed rows, oldest first');

sub csv_fields {
    my ($line) = @_;
    my @f;
    while ($line =~ /\G(?:"((?:[^"]|"")*)"|([^,"]*))(,|\z)/gc) {
        my ($quoted, $plain, $sep) = ($1, $2, $3);
        push @f, defined $quoted ? ($quoted =~ s/""/"/gr) : $plain;
        last if $sep eq '';
    }
    return \@f;
}
($res) = api('GET', "/api/audit/export?$F");
is($res->header('Content-Type'), 'text/csv; charset=utf-8', 'export: CSV by default');
@l = split /\r\n/, $res->decoded_content;
is($l[0], 'id,created_at,request_id,key_id,user_id,client_ip,model,route,stage,policy,matcher,'
          . 'action,shadow,excerpt', 'csv: the header');
is(scalar @l, 5, 'csv: four rows');
is_deeply(csv_fields($l[1]), [ $ids[0], $T0, "$t-r1", $K, $U, '10.1.2.3', 'gpt-4o', 'chat',
                               'request', "$t-a", 'keywords', 'block', 'false',
                               'say "[keyword]", then, more' ], 'csv: quoted fields');
is(csv_fields($l[3])->[12], 'true', 'csv: shadow as true/false');
is(csv_fields($l[4])->[13], q('=HYPERLINK("http://x")), 'csv: a formula is defused');
($res) = api('GET', "/api/audit/export?$F&stage=limit&format=csv");
is(scalar(split /\r\n/, $res->decoded_content), 2, 'export: filters apply');
($res, $j) = api('GET', '/api/audit/export?format=xml');
is($res->code . ' ' . $j->{error}{param}, '400 format', 'export: unknown format 400');

# every row across batches of 500
my $n = 1203;
db_exec('INSERT INTO gov_audit (created_at, stage, policy, action, shadow) VALUES '
        . join(', ', map { '(' . ($T0 + 5000 + $_) . ", 'request', '$t-bulk', 'tag', 0)" } 1 .. $n));
($res) = api('GET', "/api/audit/export?policy=$t-bulk&format=jsonl");
@l = map { decode_json($_) } split /\n/, $res->decoded_content;
is(scalar @l, $n, "export: all $n rows (three batches)");
is_deeply([ map { $_->{created_at} } @l ], [ map { $T0 + 5000 + $_ } 1 .. $n ],
          'export: oldest first, none twice');
($res, $j) = api('GET', "/api/audit?policy=$t-bulk&per_page=100&page=13");
is_deeply([ $j->{total}, scalar @{ $j->{data} } ], [ $n, 3 ], 'list: the last page');

# ---- read-only, roles -------------------------------------------------------------
for my $m ('POST', 'PATCH', 'DELETE') {
    ($res) = api($m, '/api/audit', $m eq 'DELETE' ? undef : { policy => 'x' });
    is($res->code, 405, "$m /api/audit: 405");
}
($res) = api('DELETE', "/api/audit/$ids[0]");
is($res->code, 404, 'no route deletes one row');
is(db_value("SELECT COUNT(*) FROM gov_audit WHERE request_id LIKE '$t-r%'"), 4, 'rows intact');
my $u = make_user();
my $utok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
my $o = make_user();
my $otok = api_ok('POST', "/api/users/$o->{id}/access-token")->{access_token};
db_exec("UPDATE users SET role = 'operator' WHERE id = $o->{id}");
for my $p ("/api/audit?$F", "/api/audit/export?$F") {
    ($res) = api('GET', $p, undef, token => $utok);
    is($res->code, 403, "user: $p 403");
    ($res) = api('GET', $p, undef, token => $otok);
    is($res->code, 200, "operator: $p 200");
}
