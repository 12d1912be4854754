# Governance policies through the real relay and the mock provider: every
# matcher and every request-stage action, evasion, every protocol's body,
# shadow mode, priorities, the audit log (table and JSON-lines sink) and the
# policies declared in the configuration. Each policy is scoped to models of
# its own, so it touches no other test.
use strict;
use warnings;
use utf8;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil qw(t_catfile);
use JSON::PP qw(encode_json decode_json);
use POSIX qw(strftime);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api new_key new_user new_channel mock_records);
use NebulaBilling qw(billed_setup billed_chat wallet ledger_rows);
use NebulaGov qw(policy audit_of gov_post);

plan tests => 86;

my $n = 0;
# A model of its own, a channel serving it (and any extra models), a key.
sub setup {
    my (%o) = @_;
    my $m = sprintf('gov-%s-%d-%d', $o{name} // 'm', $$, ++$n);
    my ($ch, $tag) = new_channel(models => [$m, @{ $o{models} // [] }], %{ $o{channel} // {} });
    my ($key, $kid) = new_key(%{ $o{key} // {} });
    return ($m, $key, $tag, $ch, $kid);
}
sub chat_body { my ($m, $text, %o) = @_; return { model => $m, messages => [{ role => 'user', content => $text }], %o } }
sub post { my ($path, $key, $body, %h) = @_; return gov_post('nebula_relay', $path, $key, $body, %h) }
sub chat { return post('/v1/chat/completions', $_[0], chat_body(@_[1 .. $#_])) }
sub err_of { my $j = eval { decode_json($_[0]->content) } // {}; return $j }
sub rid { return $_[0]->header('X-Request-Id') }
sub received { return scalar @{ mock_records($_[0], 1000) } }
sub upstream_body { my $r = mock_records($_[0], 1)->[-1] // {}; return $r->{body} // '' }

# ---- keywords: block, evasion, every protocol -----------------------------
{
    my ($m, $key, $tag) = setup(name => 'kw');
    my (undef, $pname) = policy('kw', scope => { models => [$m] },
        match => [{ type => 'keywords', values => ['forbidden phrase', '秘密项目'] }],
        action => { type => 'block', status => 403, message => 'Not allowed here.' });
    is(chat($key, $m, 'hello there')->code, 200, 'keywords: a clean prompt passes');
    my $res = chat($key, $m, 'This has a FORBIDDEN Phrase inside');
    is($res->code, 403, 'keywords: mixed case is caught');
    is(err_of($res)->{error}{message}, 'Not allowed here.', '... with the policy\'s message');
    is(err_of($res)->{error}{code}, 'blocked_by_policy', '... and code blocked_by_policy');
    my $blocked = rid($res);
    is(chat($key, $m, "ｆｏｒｂｉｄｄｅｎ　ｐｈｒａｓｅ")->code, 403, 'evasion: full-width forms are caught');
    is(chat($key, $m, "forbid\x{200B}den phr\x{200D}ase")->code, 403, 'evasion: zero-width characters are caught');
    is(chat($key, $m, '关于秘密项目的问题')->code, 403, 'a CJK keyword inside CJK text');
    is(post('/v1/chat/completions', $key, { model => $m, messages => [
        { role => 'system', content => 'the forbidden phrase' }, { role => 'user', content => 'hi' }] })->code,
       403, 'the system prompt is read');
    is(post('/v1/chat/completions', $key, { model => $m, messages => [
        { role => 'user', content => [{ type => 'text', text => 'part one' }, { type => 'text', text => 'forbidden phrase' }] }] })->code,
       403, 'content parts are read');
    is(post('/v1/chat/completions', $key, { model => $m, messages => [
        { role => 'user', content => 'call it' },
        { role => 'assistant', content => undef, tool_calls => [{ id => 'c1', type => 'function', function => { name => 'f', arguments => '{}' } }] },
        { role => 'tool', tool_call_id => 'c1', content => 'result: forbidden phrase' }] })->code,
       403, 'tool results are read');
    $res = post('/v1/messages', $key, { model => $m, max_tokens => 50, system => 'be nice',
        messages => [{ role => 'user', content => [{ type => 'text', text => 'a Forbidden phrase' }] }] });
    is($res->code, 403, 'Anthropic Messages body: blocked');
    is(err_of($res)->{type}, 'error', '... with an Anthropic-shaped error');
    $res = post("/v1beta/models/$m:generateContent", $key,
        { contents => [{ role => 'user', parts => [{ text => 'forbidden phrase' }] }] });
    is($res->code, 403, 'Gemini body: blocked');
    is(err_of($res)->{error}{code}, 403, '... with a Gemini-shaped error');
    is(post('/v1/responses', $key, { model => $m, instructions => 'x', input => 'the forbidden phrase' })->code,
       403, 'Responses body: blocked');
    is(post('/v1/completions', $key, { model => $m, prompt => 'forbidden phrase' })->code, 403,
       'legacy completions prompt: blocked');
    is(received($tag), 1, 'no blocked request reached the provider');
    my $rows = audit_of($blocked);
    is(scalar @$rows, 1, 'a block is audited once');
    is_deeply([@{ $rows->[0] }{qw(policy matcher action stage)}, $rows->[0]{shadow} ? 1 : 0],
              [$pname, 'keywords', 'block', 'request', 0], '... with policy, matcher, action');
    unlike($rows->[0]{excerpt} // '', qr/forbidden phrase/i, '... and the match masked in the excerpt');
    like($rows->[0]{excerpt} // '', qr/This has a \[keyword\] inside/, '... its context kept');
}

# ---- a blocked request reserves and charges nothing ------------------------
{
    my %s = billed_setup(name => 'gov-block', balance => 5_000_000);
    policy('billed', scope => { models => [$s{model}] },
           match => [{ type => 'keywords', values => ['nope'] }], action => { type => 'block' });
    my $before = wallet($s{user});
    my $res = billed_chat($s{key}, chat_body($s{model}, 'nope nope'));
    is($res->code, 403, 'billed gateway: blocked (default status 403)');
    my $after = wallet($s{user});
    is_deeply([@$after{qw(balance reserved)}], [@$before{qw(balance reserved)}],
              'nothing reserved or charged');
    is(scalar @{ ledger_rows($after->{id}) }, 1, 'the ledger holds the top-up only');
    is(received($s{tag}), 0, 'the provider was not asked');
}

# ---- redaction: detectors and regex, every protocol, native channels -------
{
    my ($m, $key, $tag) = setup(name => 'redact');
    my (undef, $pii) = policy('pii', scope => { models => [$m] },
        match => [{ type => 'detector', detectors => ['card', 'email', 'cn_id'] }],
        action => { type => 'redact', mask => '[PII]' });
    policy('code', scope => { models => [$m] },
        match => [{ type => 'regex', pattern => 'project-[0-9]{4}', case_insensitive => JSON::PP::true }],
        action => { type => 'redact', mask => '[CODE]' });
    my $res = chat($key, $m, 'Card 4111 1111 1111 1111, mail bob@example.com, code PROJECT-1234, '
                            . 'id 11010519491231002X, not a card 4111 1111 1111 1112.');
    is($res->code, 200, 'redaction: the request is served');
    my $up = upstream_body($tag);
    like($up, qr/Card \[PII\], mail \[PII\], code \[CODE\], id \[PII\]/, 'the provider received the masks');
    unlike($up, qr/4111 1111 1111 1111|bob\@example|1234|11010519491231002X/, '... and none of the matches');
    like($up, qr/4111 1111 1111 1112/, 'a Luhn-invalid number is left alone');
    my $rows = audit_of(rid($res));
    is(scalar @$rows, 2, 'both redact policies audited');
    unlike(encode_json($rows), qr/4111 1111 1111 1111|bob\@example/, 'no excerpt holds a match');

    my ($am, $akey, $atag) = setup(name => 'redact-a', channel => { kind => 'anthropic' });
    policy('pii-a', scope => { models => [$am] }, match => [{ type => 'detector', detectors => ['email'] }],
           action => { type => 'redact' });
    $res = post('/v1/messages', $akey, { model => $am, max_tokens => 20, system => 'write to eve@example.org',
        messages => [{ role => 'user', content => 'and cc zed@example.net' }] });
    is($res->code, 200, 'native Anthropic channel: served');
    $up = upstream_body($atag);
    like($up, qr/"system":"write to \[REDACTED\]"/, '... the system prompt redacted (default mask)');
    unlike($up, qr/example\.(org|net)/, '... and the message');

    my ($gm, $gkey, $gtag) = setup(name => 'redact-g', channel => { kind => 'gemini' });
    policy('pii-g', scope => { models => [$gm] }, match => [{ type => 'detector', detectors => ['card'] }],
           action => { type => 'redact', mask => '#' });
    $res = post("/v1beta/models/$gm:generateContent", $gkey,
        { contents => [{ role => 'user', parts => [{ text => 'pay with 5555-5555-5555-4444 now' }] }] });
    is($res->code, 200, 'native Gemini channel: served');
    like(upstream_body($gtag), qr/pay with # now/, '... the part redacted');
}

# ---- the secret and phone detectors block --------------------------------
{
    my ($m, $key, $tag) = setup(name => 'secrets');
    policy('secrets', scope => { models => [$m] },
           match => [{ type => 'detector', detectors => ['secret', 'phone'] }],
           action => { type => 'block', status => 400, message => 'No secrets or phone numbers.' });
    is(chat($key, $m, 'my key is sk-proj-' . ('aB3xK9mQ2vL7' x 3))->code, 400, 'secret detector: an API key is refused');
    is(chat($key, $m, 'AKIAIOSFODNN7EXAMPLE is the id')->code, 400, '... an AWS key id too');
    is(chat($key, $m, 'call me on +44 20 7946 0958')->code, 400, 'phone detector: an E.164 number');
    is(chat($key, $m, '请拨打 138 0013 8000')->code, 400, '... a Chinese mobile');
    is(chat($key, $m, 'order 2026-11-27, ticket 12345, build 1.2.3.4')->code, 200, '... dates and ids pass');
    is(received($tag), 1, 'only the clean request reached the provider');
}

# ---- downgrade on a token estimate ----------------------------------------
{
    my $cheap = sprintf('gov-cheap-%d', $$);
    my ($m, $key, $tag) = setup(name => 'down', models => [$cheap]);
    my (undef, $pname) = policy('down', scope => { models => [$m] },
        match => [{ type => 'tokens', min => 40 }], action => { type => 'downgrade', model => $cheap });
    is(chat($key, $m, 'short')->code, 200, 'downgrade: a short prompt is served');
    like(upstream_body($tag), qr/"model":"\Q$m\E"/, '... as asked');
    my $res = chat($key, $m, join(' ', ('word') x 80));
    is($res->code, 200, 'a long prompt is served');
    like(upstream_body($tag), qr/"model":"\Q$cheap\E"/, '... by the cheaper model');
    is(audit_of(rid($res))->[0]{matcher}, 'tokens', 'audited with the tokens matcher');
}

# ---- reroute to a group, and to a named channel ---------------------------
{
    my $g = sprintf('govg%d', $$);
    admin('POST', '/api/groups', { name => $g });
    my ($m, $key, $x) = setup(name => 'route', channel => { priority => 10 });
    my (undef, $y) = new_channel(models => [$m], channel_groups => [$g]);
    my (undef, $z) = new_channel(models => [$m], priority => -10);
    policy('to-group', scope => { models => [$m] }, match => [{ type => 'keywords', values => ['route-me'] }],
           action => { type => 'reroute', group => $g });
    policy('to-chan', scope => { models => [$m] }, match => [{ type => 'keywords', values => ['to-named'] }],
           action => { type => 'reroute', channel => $z });
    is(chat($key, $m, 'plain')->code, 200, 'reroute: a plain request is served');
    is(received($x), 1, '... by the key\'s group');
    is(chat($key, $m, 'please route-me')->code, 200, 'a matching request is served');
    is(received($y), 1, '... by the other group\'s channel');
    is(chat($key, $m, 'go to-named')->code, 200, 'reroute to a channel by name');
    is(received($z), 1, '... that channel served it');
    is(received($x), 1, '... and not the usual one');
}

# ---- tag, shadow and priority ----------------------------------------------
{
    my ($m, $key, $tag) = setup(name => 'shadow', models => [sprintf('gov-lite-%d', $$)]);
    my (undef, $tp) = policy('tag', scope => { models => [$m] }, match => [{ type => 'keywords', values => ['tagme'] }],
                             action => { type => 'tag', tag => 'marked' });
    my (undef, $sp) = policy('shadow', scope => { models => [$m] }, shadow => JSON::PP::true,
                             match => [{ type => 'keywords', values => ['shadowme'] }],
                             action => { type => 'block' });
    my $res = chat($key, $m, 'tagme please');
    is($res->code, 200, 'tag: served');
    my $a0 = audit_of(rid($res))->[0];
    is_deeply([@$a0{qw(policy action)}, $a0->{shadow} ? 1 : 0], [$tp, 'tag', 0], '... and audited');
    $res = chat($key, $m, 'shadowme please');
    is($res->code, 200, 'shadow block: served all the same');
    $a0 = audit_of(rid($res))->[0];
    is_deeply([@$a0{qw(policy action)}, $a0->{shadow} ? 1 : 0], [$sp, 'block', 1],
              '... audited as what would have happened');
    is(received($tag), 2, 'both reached the provider');

    my $lite = sprintf('gov-lite-%d', $$);
    my (undef, $lo) = policy('lo', priority => 10, scope => { models => [$m] },
        match => [{ type => 'keywords', values => ['both'] }], action => { type => 'block' });
    my (undef, $hi) = policy('hi', priority => 20, scope => { models => [$m] },
        match => [{ type => 'keywords', values => ['both'] }], action => { type => 'downgrade', model => $lite });
    $res = chat($key, $m, 'both rules match');
    is($res->code, 200, 'priority: the higher policy (downgrade) decides');
    like(upstream_body($tag), qr/"model":"\Q$lite\E"/, '... the request downgraded');
    my @pol = map { $_->{policy} } @{ audit_of(rid($res)) };
    is_deeply(\@pol, [$hi], '... and the lower terminal policy was not evaluated');
}

# ---- request matchers: route, ip, country, time, size, model glob ---------
{
    my ($m, $key, $tag) = setup(name => 'match');
    policy('route', scope => { models => [$m] }, match => [{ type => 'route', values => ['messages'] }],
           action => { type => 'block', status => 400, message => 'Use chat.' });
    my $res = post('/v1/messages', $key, { model => $m, max_tokens => 5, messages => [{ role => 'user', content => 'x' }] });
    is($res->code, 400, 'route matcher: messages blocked');
    is(chat($key, $m, 'x')->code, 200, '... chat allowed');

    policy('ip-no', scope => { models => [$m] },
           match => [{ type => 'ip', values => ['10.0.0.0/8'] }, { type => 'keywords', values => ['ipcheck'] }],
           action => { type => 'block' });
    is(chat($key, $m, 'ipcheck')->code, 200, 'ip matcher: another network does not match');
    policy('ip-yes', scope => { models => [$m] },
           match => [{ type => 'ip', values => ['127.0.0.0/8', '::1'] }, { type => 'keywords', values => ['ipsame'] }],
           action => { type => 'block' });
    is(chat($key, $m, 'ipsame')->code, 403, '... the client\'s network matches');
    policy('ip-not', scope => { models => [$m] },
           match => [{ type => 'ip', values => ['10.0.0.0/8'], negate => JSON::PP::true },
                     { type => 'keywords', values => ['ipneg'] }], action => { type => 'block' });
    is(chat($key, $m, 'ipneg')->code, 403, '... negated');

    policy('geo', scope => { models => [$m] },
           match => [{ type => 'country', values => ['CN'] }, { type => 'keywords', values => ['geo'] }],
           action => { type => 'block', status => 451 });
    is(post('/v1/chat/completions', $key, chat_body($m, 'geo'), 'X-Test-Country' => 'cn')->code, 451,
       'country matcher: from the trusted header');
    is(post('/v1/chat/completions', $key, chat_body($m, 'geo'), 'X-Test-Country' => 'US')->code, 200,
       '... another country passes');
    is(chat($key, $m, 'geo')->code, 200, '... no country known: no match');

    my $h = (gmtime)[2];
    policy('now', scope => { models => [$m] },
           match => [{ type => 'time', from => '00:00', to => '23:59' }, { type => 'keywords', values => ['inwindow'] }],
           action => { type => 'block' });
    policy('later', scope => { models => [$m] },
           match => [{ type => 'time', from => sprintf('%02d:00', ($h + 2) % 24), to => sprintf('%02d:00', ($h + 3) % 24) },
                     { type => 'keywords', values => ['outwindow'] }], action => { type => 'block' });
    is(chat($key, $m, 'inwindow')->code, 403, 'time matcher: inside the window');
    is(chat($key, $m, 'outwindow')->code, 200, '... outside it');

    policy('size', scope => { models => [$m] }, match => [{ type => 'size', min => 3000 }],
           action => { type => 'block', status => 413, message => 'Too big for policy.' });
    is(chat($key, $m, 'y' x 200)->code, 200, 'size matcher: a small body passes');
    is(chat($key, $m, 'y ' x 2000)->code, 413, '... a big one is refused');

    my $glob = sprintf('gov-glob-%d', $$);
    my ($gk) = new_key();
    new_channel(models => ["$glob-a", "$glob-b"]);
    policy('glob', match => [{ type => 'model', values => ["$glob-?"] }], action => { type => 'block' });
    is(chat($gk, "$glob-a", 'hi')->code, 403, 'model matcher: a glob');

    my ($km, $kkey, undef, undef, $kid) = setup(name => 'scope-key');
    my ($okey) = new_key();
    policy('keyscope', scope => { keys => [$kid] }, match => [{ type => 'keywords', values => ['scoped'] }],
           action => { type => 'block' });
    is(chat($kkey, $km, 'scoped')->code, 403, 'scope keys: that key is governed');
    is(chat($okey, $km, 'scoped')->code, 200, '... another key is not');
}

# ---- policies declared in the configuration, and the JSON-lines sink ------
{
    my ($m, $key) = setup(name => 'cfg');
    my $res = gov_post('nebula_governed', '/v1/chat/completions', $key, chat_body($m, 'this is Config-Forbidden'));
    is($res->code, 451, 'a <NebulaPolicy> section blocks');
    is(err_of($res)->{error}{message}, 'Blocked by the configuration.', '... with its message');
    is(gov_post('nebula_relay', '/v1/chat/completions', $key, chat_body($m, 'config-forbidden'))->code, 200,
       '... on its own virtual host only');
    $res = gov_post('nebula_governed', '/v1/chat/completions', $key, chat_body($m, 'card 378282246310005'));
    is($res->code, 200, 'a tag section');
    my $rows = audit_of(rid($res));
    is_deeply([@{ $rows->[0] }{qw(policy action matcher)}], ['cfg-tag-cards', 'tag', 'detector'], '... audited');
    my (undef, $list) = api('GET', '/api/policies');
    my ($cfg) = grep { $_->{name} eq 'cfg-block-word' } @{ $list->{data} };
    is($cfg && $cfg->{source}, 'config', 'the admin API lists it as declared in the configuration');
    my $file = t_catfile(Apache::Test::vars('serverroot'), 'logs', 'nebula-audit.jsonl');
    my $rid = rid($res);
    my @lines;
    for (1 .. 20) {
        open(my $fh, '<', $file) or last;
        @lines = grep { /\Q$rid\E/ } <$fh>;
        close $fh;
        last if @lines;
        select(undef, undef, undef, 0.1);
    }
    is(scalar @lines, 1, 'the audit row is in the JSON-lines sink');
    my $j = eval { decode_json($lines[0] // '{}') } // {};
    is_deeply([@$j{qw(policy action stage)}], ['cfg-tag-cards', 'tag', 'request'], '... as JSON');
    unlike($lines[0] // '', qr/378282246310005/, '... without the card number');
}
