# /api/policies: governance policies stored in gov_policies (create, read,
# change, delete; every invalid spec refused with the engine's message, a
# duplicate name with 409), listed with the ones the configuration declares
# (read-only: 403 read_only on PATCH/DELETE), roles (operator reads, user
# 403), and POST /api/policies/test: the decision and trace for Anthropic,
# Gemini and chat samples (a stored keyword policy, a detector, a shadow
# policy, "policies" given beside the stored ones, identity and origin).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user db_rows db_exec db_value);

plan tests => 128;

my $t = uniq('pol');
my $CFG = 'cfg-adm-stub'; # the <NebulaPolicy> the test configuration declares
sub spec { my (%o) = @_; return { name => "$t-" . delete($o{n}), %o } }
my $kw = { type => 'keywords', values => ["zanzibar-$t"] };
my $block = { type => 'block', status => 403, message => 'not here' };

# ---- create -----------------------------------------------------------------
my ($res, $j) = api('POST', '/api/policies',
                    spec(n => 'kw', description => 'no zanzibar', priority => 1000,
                         match => [$kw], action => $block));
is($res->code, 201, 'create: 201');
my $P = $j->{data};
ok($P->{id} && $P->{id} =~ /^\d+$/, 'create: an id');
is_deeply([ @$P{qw(source name description priority enabled shadow stage)} ],
          [ 'db', "$t-kw", 'no zanzibar', 1000, JSON::PP::true, JSON::PP::false, 'request' ],
          'create: the canonical spec (defaults filled in)');
is_deeply([ $P->{action}{type}, $P->{action}{status}, $P->{match}[0]{values} ],
          [ 'block', 403, ["zanzibar-$t"] ], 'create: match and action');
ok($P->{created_at} > 1.7e12 && $P->{updated_at} == $P->{created_at}, 'create: times');
my $row = db_rows("SELECT name, description, priority, enabled, shadow, spec FROM gov_policies "
                  . "WHERE id = $P->{id}")->[0];
is_deeply([ @$row[0 .. 4] ], [ "$t-kw", 'no zanzibar', 1000, 1, 0 ], 'stored: the columns');
my %stored = %{ decode_json($row->[5]) };
my %shown = %$P;
delete @shown{qw(id source created_at updated_at)};
is_deeply(\%stored, \%shown, 'stored: spec is the canonical spec the API shows');

($res, $j) = api('POST', '/api/policies', spec(n => 'kw', action => $block));
is($res->code . ' ' . $j->{error}{code}, '409 policy_exists', 'duplicate name: 409');
is(db_value("SELECT COUNT(*) FROM gov_policies WHERE name = '$t-kw'"), 1, 'still one row');

# ---- every class of invalid spec: 400 invalid_policy, param = the member -----
my @bad = (
    [ {}, 'name', qr/^name: required/ ],
    [ { name => 'a b', action => $block }, 'name', qr/^name: / ],
    [ spec(n => 'x', prio => 1, action => $block), 'prio', qr/unknown field 'prio'/ ],
    [ spec(n => 'x'), 'action', qr/^action: required/ ],
    [ spec(n => 'x', action => { type => 'explode' }), 'action.type', qr/^action\.type: / ],
    [ spec(n => 'x', action => { type => 'block', status => 200 }), 'action.status',
      qr/^action\.status: must be 400\.\.599/ ],
    [ spec(n => 'x', stage => 'later', action => $block), 'stage', qr/^stage: / ],
    [ spec(n => 'x', priority => 'high', action => $block), 'priority', qr/^priority: / ],
    [ spec(n => 'x', match => [ { type => 'telepathy' } ], action => $block), 'match[0].type',
      qr/^match\[0\]\.type: unknown matcher 'telepathy'/ ],
    [ spec(n => 'x', match => [ $kw, { type => 'regex', pattern => 'a(b' } ], action => $block),
      'match[1].pattern', qr/^match\[1\]\.pattern: .* at offset \d+/ ],
    [ spec(n => 'x', match => [ { type => 'keywords', values => [] } ], action => $block),
      'match[0].values', qr/^match\[0\]\.values: / ],
    [ spec(n => 'x', match => [ { type => 'detector', detectors => ['dna'] } ], action => $block),
      'match[0].detectors[0]', qr/unknown detector 'dna'/ ],
    [ spec(n => 'x', match => [ { type => 'ip', values => ['10.0.0.300'] } ], action => $block),
      'match[0].values[0]', qr/not an IP address or CIDR/ ],
    [ spec(n => 'x', match => [ { type => 'time', from => '25:00', to => '18:00' } ],
           action => $block), 'match[0].from', qr/^match\[0\]\.from: must be HH:MM/ ],
    [ spec(n => 'x', match => [ { type => 'country', values => ['Germany'] } ], action => $block),
      'match[0].values[0]', qr/ISO 3166/ ],
    [ spec(n => 'x', stage => 'response', match => [$kw],
           action => { type => 'downgrade', model => 'gpt-4o-mini' }), 'action',
      qr/^action: downgrade is for the request stage only/ ],
    [ spec(n => 'x', match => [ { type => 'model', values => ['gpt-*'] } ],
           action => { type => 'redact' }), 'action', qr/^action: redact needs a text matcher/ ],
);
for my $b (@bad) {
    ($res, $j) = api('POST', '/api/policies', $b->[0]);
    is(join(' ', $res->code, $j->{error}{code} // '', $j->{error}{param} // ''),
       "400 invalid_policy $b->[1]", "invalid: 400 for $b->[1]");
    like($j->{error}{message} // '', $b->[2], "invalid: the engine's message for $b->[1]");
}
is(db_value("SELECT COUNT(*) FROM gov_policies WHERE name = '$t-x'"), 0, 'nothing stored');
($res, $j) = api('POST', '/api/policies', { %{ spec(n => 'ro', action => $block) }, id => 5 });
is($res->code . " $j->{error}{code} $j->{error}{param}", '400 invalid_field id',
   'read-only member id in a body: 400');
($res, $j) = api('POST', '/api/policies', undef);
is($res->code . ' ' . $j->{error}{code}, '400 invalid_json', 'no body: 400');

# ---- read, change, delete ----------------------------------------------------
($res, $j) = api('GET', "/api/policies/$P->{id}");
is_deeply($j->{data}, $P, 'GET by id');
($res, $j) = api('GET', "/api/policies/$t-kw");
is_deeply($j->{data}, $P, 'GET by name');
($res) = api('GET', "/api/policies/$t-none");
is($res->code, 404, 'unknown name: 404');
($res) = api('GET', '/api/policies/999999999');
is($res->code, 404, 'unknown id: 404');

select(undef, undef, undef, 0.01);
($res, $j) = api('PATCH', "/api/policies/$P->{id}", { enabled => JSON::PP::false });
is($res->code, 200, 'PATCH enabled false: 200');
is_deeply([ @{ $j->{data} }{qw(enabled priority description)}, $j->{data}{match} ],
          [ JSON::PP::false, 1000, 'no zanzibar', $P->{match} ], 'PATCH: only that changed');
ok($j->{data}{updated_at} > $P->{updated_at}, 'PATCH: updated_at moves');
is(db_value("SELECT enabled FROM gov_policies WHERE id = $P->{id}"), 0, 'PATCH: the column');
($res, $j) = api('PATCH', "/api/policies/$P->{id}",
                 { enabled => JSON::PP::true, shadow => JSON::PP::true, description => undef });
is_deeply([ @{ $j->{data} }{qw(enabled shadow)} ], [ JSON::PP::true, JSON::PP::true ],
          'PATCH: shadow on');
isnt($j->{data}{description} // '', 'no zanzibar', 'PATCH: null resets a member');
is(db_value("SELECT shadow FROM gov_policies WHERE id = $P->{id}"), 1, 'shadow column');
($res, $j) = api('PATCH', "/api/policies/$P->{id}", { shadow => JSON::PP::false,
                                                      stage => 'response',
                                                      action => { type => 'downgrade', model => 'm' } });
is($res->code . " $j->{error}{param}", '400 action', 'PATCH re-validates the whole policy');
($res, $j) = api('GET', "/api/policies/$P->{id}");
is_deeply([ @{ $j->{data} }{qw(stage shadow)} ], [ 'request', JSON::PP::true ],
          'a refused PATCH changes nothing');
($res, $j) = api('PATCH', "/api/policies/$P->{id}", {});
is($res->code, 400, 'PATCH with nothing: 400');
($res, $j) = api('PATCH', "/api/policies/$P->{id}", { shadow => JSON::PP::false });
my $other = api_ok('POST', '/api/policies', spec(n => 'other', action => $block));
($res, $j) = api('PATCH', "/api/policies/$other->{id}", { name => "$t-kw" });
is($res->code . ' ' . $j->{error}{code}, '409 policy_exists', 'rename onto a taken name: 409');
($res, $j) = api('PATCH', "/api/policies/$other->{id}", { name => "$t-other2" });
is($j->{data}{name}, "$t-other2", 'rename');
is(db_value("SELECT name FROM gov_policies WHERE id = $other->{id}"), "$t-other2",
   'rename: the column');
($res) = api('DELETE', "/api/policies/$other->{id}");
is($res->code, 204, 'DELETE: 204');
($res) = api('GET', "/api/policies/$other->{id}");
is($res->code, 404, 'deleted: 404');
($res) = api('DELETE', "/api/policies/$other->{id}");
is($res->code, 404, 'DELETE again: 404');

# ---- the list ----------------------------------------------------------------
api_ok('POST', '/api/policies', spec(n => 'l1', priority => 10, match => [$kw], action => $block));
api_ok('POST', '/api/policies', spec(n => 'l2', priority => 30, shadow => JSON::PP::true,
                                     description => 'second', match => [$kw], action => $block));
api_ok('POST', '/api/policies', spec(n => 'l0', priority => 10, stage => 'response',
                                     enabled => JSON::PP::false,
                                     match => [$kw], action => { type => 'tag', tag => 'x' }));
sub names { [ map { $_->{name} } @{ $_[0]{data} } ] }
($res, $j) = api('GET', "/api/policies?q=$t-l");
is_deeply([ $j->{total}, @{ names($j) } ], [ 3, "$t-l2", "$t-l0", "$t-l1" ],
          'list: priority high to low, then name');
($res, $j) = api('GET', "/api/policies?q=$t-l&per_page=2&page=2");
is_deeply([ $j->{total}, $j->{page}, $j->{per_page}, @{ names($j) } ], [ 3, 2, 2, "$t-l1" ],
          'list: page 2');
($res, $j) = api('GET', "/api/policies?q=$t-l&enabled=false");
is_deeply(names($j), ["$t-l0"], 'enabled=false');
($res, $j) = api('GET', "/api/policies?q=$t-l&shadow=true");
is_deeply(names($j), ["$t-l2"], 'shadow=true');
($res, $j) = api('GET', "/api/policies?q=$t-l&stage=response");
is_deeply(names($j), ["$t-l0"], 'stage=response');
($res, $j) = api('GET', '/api/policies?q=SECOND');
ok((grep { $_ eq "$t-l2" } @{ names($j) }), 'q matches the description, any case');
for my $q ('enabled=maybe', 'stage=sometimes', 'colour=red', 'per_page=0') {
    ($res) = api('GET', "/api/policies?$q");
    is($res->code, 400, "list with $q: 400");
}
db_exec("DELETE FROM gov_policies WHERE name LIKE '$t-l%'"); # out of the tests below

# ---- the configuration's own policies: listed, read-only ----------------------
($res, $j) = api('GET', "/api/policies?q=$CFG");
my ($cfg) = grep { $_->{name} eq $CFG } @{ $j->{data} };
SKIP: {
    skip "no <NebulaPolicy $CFG> in the test configuration", 8 unless $cfg;
    is_deeply([ $cfg->{source}, $cfg->{id}, $cfg->{action}{type} ], [ 'config', undef, 'block' ],
              'config policy: listed with source config, id null');
    ($res, $j) = api('GET', "/api/policies/$CFG");
    is_deeply([ $res->code, $j->{data}{source} ], [ 200, 'config' ], 'config policy: GET by name');
    ($res, $j) = api('PATCH', "/api/policies/$CFG", { enabled => JSON::PP::false });
    is($res->code . ' ' . $j->{error}{code}, '403 read_only', 'config policy: PATCH 403');
    like($j->{error}{message}, qr/configuration/, 'config policy: the message says where');
    ($res, $j) = api('DELETE', "/api/policies/$CFG");
    is($res->code . ' ' . $j->{error}{code}, '403 read_only', 'config policy: DELETE 403');
    ($res, $j) = api('POST', '/api/policies', { name => $CFG, action => $block });
    is($res->code . ' ' . $j->{error}{code}, '409 policy_exists',
       'a stored policy may not take a declared name');
    ($res, $j) = api('PATCH', "/api/policies/$P->{id}", { name => $CFG });
    is($res->code, 409, 'nor be renamed to one');
    ($res, $j) = api('POST', '/api/policies/test',
                     { body => { model => 'gpt-4o', messages => [ { role => 'user',
                                                                  content => 'cfg-forbidden' } ] } });
    is_deeply([ @{ $j->{data}{decision} }{qw(action policy status)} ], [ 'block', $CFG, 451 ],
              'the test evaluates declared policies too');
}

# ---- roles --------------------------------------------------------------------
my $u = make_user();
my $utok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
my $o = make_user();
my $otok = api_ok('POST', "/api/users/$o->{id}/access-token")->{access_token};
db_exec("UPDATE users SET role = 'operator' WHERE id = $o->{id}");
my $sample = { body => { model => 'gpt-4o', messages => [ { role => 'user', content => 'hi' } ] } };
for my $c ([ 'GET', '/api/policies' ], [ 'GET', "/api/policies/$P->{id}" ],
           [ 'POST', '/api/policies/test', $sample ]) {
    ($res) = api($c->[0], $c->[1], $c->[2], token => $utok);
    is($res->code, 403, "user: $c->[0] $c->[1] 403");
    ($res) = api($c->[0], $c->[1], $c->[2], token => $otok);
    is($res->code, 200, "operator: $c->[0] $c->[1] 200");
}
for my $c ([ 'POST', '/api/policies', spec(n => 'op', action => $block) ],
           [ 'PATCH', "/api/policies/$P->{id}", { priority => 1 } ],
           [ 'DELETE', "/api/policies/$P->{id}" ]) {
    ($res, $j) = api($c->[0], $c->[1], $c->[2], token => $otok);
    is($res->code . ' ' . $j->{error}{code}, '403 forbidden', "operator: $c->[0] refused");
}
is(db_value("SELECT priority FROM gov_policies WHERE id = $P->{id}"), 1000,
   'the operator changed nothing');

# ---- POST /api/policies/test ----------------------------------------------------
# a stored keyword policy on an Anthropic body: case and full width do not evade it
my $anth = { model => 'claude-3-5-haiku-latest', max_tokens => 64,
             system => 'You are terse.',
             messages => [ { role => 'user', content => [
                 { type => 'text', text => "Tell me about \x{FF3A}ANZIBAR-" . uc($t) } ] } ] };
($res, $j) = api('POST', '/api/policies/test', { route => 'messages', body => $anth });
is($res->code, 200, 'test: 200');
my $d = $j->{data};
is_deeply([ @{ $d->{decision} }{qw(action policy status message)} ],
          [ 'block', "$t-kw", 403, 'not here' ], 'test (anthropic): blocked by the keyword policy');
my ($hit) = grep { $_->{policy} eq "$t-kw" } @{ $d->{hits} };
is_deeply([ @$hit{qw(matcher action terminal shadow)} ],
          [ 'keywords', 'block', JSON::PP::true, JSON::PP::false ], 'test: the hit');
unlike($hit->{excerpt} // '', qr/anzibar/i, 'test: the excerpt masks the match');
sub lines { [ sort split /\n/, $_[0] // '' ] }
is_deeply(lines($d->{prompt_text}), [ "Tell me about \x{FF3A}ANZIBAR-" . uc($t), 'You are terse.' ],
          'test: prompt_text is what the matchers saw (system and the text block)');
is_deeply([ @{ $d->{subject} }{qw(route model group)} ],
          [ 'messages', 'claude-3-5-haiku-latest', 'default' ], 'test: the subject');
ok($d->{evaluated} >= 1, 'test: evaluated counts the policies');

# the same text as a shadow policy: reported, decides nothing
api_ok('PATCH', "/api/policies/$P->{id}", { shadow => JSON::PP::true });
($res, $j) = api('POST', '/api/policies/test', { route => 'messages', body => $anth });
$d = $j->{data};
($hit) = grep { $_->{policy} eq "$t-kw" } @{ $d->{hits} };
is_deeply([ $d->{decision}{action}, @$hit{qw(shadow terminal)} ],
          [ 'allow', JSON::PP::true, JSON::PP::false ], 'test: a shadow hit decides nothing');
api_ok('PATCH', "/api/policies/$P->{id}", { enabled => JSON::PP::false, shadow => JSON::PP::false });
($res, $j) = api('POST', '/api/policies/test', { route => 'messages', body => $anth });
ok(!(grep { $_->{policy} eq "$t-kw" } @{ $j->{data}{hits} }), 'test: disabled: no hit');

# a detector given in "policies" on a Gemini body (the model is in the URL path)
my $gem = { contents => [ { role => 'user', parts => [ { text => 'mail me at ann@example.com' } ] } ],
            systemInstruction => { parts => [ { text => 'be nice' } ] } };
my $redact = spec(n => 'pii', match => [ { type => 'detector', detectors => ['email'] } ],
                  action => { type => 'redact' });
($res, $j) = api('POST', '/api/policies/test', { route => 'gemini_generate', body => $gem,
                                                  policies => [$redact] });
is($res->code . ' ' . ($j->{error}{param} // ''), '400 model', 'test (gemini): model required');
($res, $j) = api('POST', '/api/policies/test', { route => 'gemini_generate', body => $gem,
                                                  model => 'gemini-2.0-flash',
                                                  policies => [$redact] });
$d = $j->{data};
($hit) = grep { $_->{policy} eq "$t-pii" } @{ $d->{hits} };
is_deeply([ $d->{decision}{action}, $d->{redact}, @$hit{qw(matcher action)} ],
          [ 'allow', JSON::PP::true, 'detector', 'redact' ], 'test (gemini): the detector redacts');
like($hit->{excerpt}, qr/\[email\]/, 'test: the excerpt names the detector');
unlike($hit->{excerpt}, qr/ann\@example/, 'test: ... and hides the address');
is_deeply(lines($d->{prompt_text}), [ 'be nice', 'mail me at ann@example.com' ],
          'test (gemini): prompt_text (parts of contents and systemInstruction)');
is($d->{subject}{model}, 'gemini-2.0-flash', 'test (gemini): the model given');
is(db_value("SELECT COUNT(*) FROM gov_policies WHERE name = '$t-pii'"), 0,
   'policies given to the test are not stored');

# "policies" beside the stored ones: priorities decide which terminal one wins
my $chat = { model => 'gpt-4o', messages => [ { role => 'user', content => 'zanzibar-' . $t } ] };
api_ok('PATCH', "/api/policies/$P->{id}", { enabled => JSON::PP::true });
($res, $j) = api('POST', '/api/policies/test', { body => $chat, policies => [
    spec(n => 'dg', priority => 2000, match => [$kw],
         action => { type => 'downgrade', model => 'gpt-4o-mini' }) ] });
is_deeply([ @{ $j->{data}{decision} }{qw(action policy model)} ],
          [ 'downgrade', "$t-dg", 'gpt-4o-mini' ], 'test: a higher extra policy decides first');
($res, $j) = api('POST', '/api/policies/test', { body => $chat, policies => [
    spec(n => 'sh', priority => 3000, shadow => JSON::PP::true, match => [$kw],
         action => $block) ] });
is_deeply([ $j->{data}{decision}{policy},
            [ map { "$_->{policy}:" . ($_->{shadow} ? 1 : 0) } @{ $j->{data}{hits} } ] ],
          [ "$t-kw", [ "$t-sh:1", "$t-kw:0" ] ], 'test: shadow extra, then the stored one decides');
($res, $j) = api('POST', '/api/policies/test', { body => $chat,
                                                  policies => [ { name => 'bad one' } ] });
is($res->code . ' ' . $j->{error}{code} . ' ' . $j->{error}{param}, '400 invalid_policy policies',
   'test: an invalid extra policy: 400');

# identity and origin: a key's group and user, client_ip, country
my $g = uniq('pg');
api_ok('POST', '/api/groups', { name => $g });
my $ku = make_user(user_group => $g);
my $key = api_ok('POST', '/api/keys', { user_id => $ku->{id}, name => 'k' });
my $scoped = spec(n => 'sc', priority => 5000, scope => { groups => [$g] },
                  match => [ { type => 'ip', values => ['10.0.0.0/8'] },
                             { type => 'country', values => ['DE'] } ],
                  action => { type => 'reroute', group => 'default' });
my $hi = { model => 'gpt-4o', messages => [ { role => 'user', content => 'hi' } ] };
($res, $j) = api('POST', '/api/policies/test', { body => $hi, key_id => $key->{id},
                                                  client_ip => '10.1.2.3', country => 'de',
                                                  policies => [$scoped] });
is_deeply([ @{ $j->{data}{subject} }{qw(key_id user_id group client_ip country)} ],
          [ $key->{id}, $ku->{id}, $g, '10.1.2.3', 'DE' ], 'test: identity from the key');
is_deeply([ @{ $j->{data}{decision} }{qw(action policy group)} ], [ 'reroute', "$t-sc", 'default' ],
          'test: group scope, ip and country hold');
($res, $j) = api('POST', '/api/policies/test', { body => $hi, user_id => $ku->{id},
                                                  client_ip => '192.0.2.1', country => 'DE',
                                                  policies => [$scoped] });
is_deeply([ $j->{data}{subject}{group}, $j->{data}{decision}{action} ], [ $g, 'allow' ],
          'test: another address: allowed');
($res, $j) = api('POST', '/api/policies/test', { body => $hi, client_ip => '10.1.2.3',
                                                  country => 'DE', policies => [$scoped] });
is_deeply([ $j->{data}{subject}{group}, $j->{data}{decision}{action} ], [ 'default', 'allow' ],
          'test: no identity: group default, out of scope');
($res, $j) = api('POST', '/api/policies/test', { body => $hi, group => $g, client_ip => '10.9.9.9',
                                                  country => 'DE', policies => [$scoped] });
is($j->{data}{decision}{action}, 'reroute', 'test: a group given outright');

for my $b ([ { body => $hi, route => 'teleport' }, 'route' ], [ { route => 'chat' }, 'body' ],
           [ { body => 'hi' }, 'body' ], [ { body => $hi, key_id => 999999999 }, 'key_id' ],
           [ { body => $hi, key_id => $key->{id}, user_id => $ku->{id} }, 'user_id' ],
           [ { body => $hi, client_ip => '10.0.0.0/8' }, 'client_ip' ],
           [ { body => $hi, country => 'DEU' }, 'country' ],
           [ { body => { messages => [] } }, 'model' ],
           [ { body => $hi, policies => {} }, 'policies' ], [ { body => $hi, colour => 1 }, 'colour' ]) {
    ($res, $j) = api('POST', '/api/policies/test', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "test: 400 for $b->[1]");
}

# ---- clean up (shared databases outlive a run) ---------------------------------
db_exec("DELETE FROM gov_policies WHERE name LIKE '$t-%'");
