# Real answers of the admin API validate against docs/admin-api.yaml
# (t/lib/NebulaSpec.pm): every GET route and a representative set of writes
# per area, on fixtures made through the API itself (users, keys, a channel on
# the mock, groups, prices, organisations, accounts, caps, plans,
# subscriptions, rate limits, policies, vouchers, new-api codes, top-up
# orders on the payments vhost), and the error answers (400 unknown member,
# 401, 403 role and CSRF, 404, 405, 409, 410, 415). Each call checks its status
# and that status, content type and body are what the spec says. At the end
# every operation of the spec must have had a valid answer, except the ones
# listed in %SKIP (printed). First, NebulaSpec itself must fail wrong answers.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use lib "$FindBin::Bin/../lib";
use AdminT qw(uniq);
use NebulaAdmin qw(mock_url chat);
use NebulaSpec qw(spec spec_operations spec_find spec_validate spec_template_key);
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use HTTP::Request;
use HTTP::Cookies;
use Digest::SHA qw(hmac_sha256_hex);
use Digest::MD5 qw(md5_hex);
use URI::Escape qw(uri_escape);

use constant WHSEC    => 'whsec_nebula_test_0123456789abcdef';
use constant EPAY_KEY => 'nebula-test-epay-key-0123456789';
my $ROOT = AdminT::ROOT_TOKEN;

# operations no test configuration reaches, with the reason (printed)
my %SKIP = ();

# ---- NebulaSpec must be able to fail -------------------------------------------
{
    my $group = { name => 'g1', ratio_ppm => 1000000, description => '', created_at => 1 };
    my $page = sub { encode_json({ data => [@_], total => scalar(@_), page => 1,
                                   per_page => 20 }) };
    my @p = spec_validate('GET', '/api/groups', 200, 'application/json', $page->($group));
    is_deeply(\@p, [], 'self-test: a right list of groups validates');
    @p = spec_validate('GET', '/api/groups?page=1', 200, 'application/json; charset=utf-8',
                       $page->({ %$group, ratio_ppm => '1000000' }));
    ok(@p && "@p" =~ /ratio_ppm/, 'self-test: a string where an integer belongs fails')
        or diag(explain \@p);
    @p = spec_validate('GET', '/api/groups', 200, 'application/json',
                       $page->({ %$group, secret => 'x' }));
    ok(@p && "@p" =~ /secret/, 'self-test: an unknown member fails') or diag(explain \@p);
    my %g = %$group;
    delete $g{created_at};
    @p = spec_validate('GET', '/api/groups', 200, 'application/json', $page->(\%g));
    ok(@p && "@p" =~ /created_at|Missing/, 'self-test: a missing member fails')
        or diag(explain \@p);
    @p = spec_validate('GET', '/api/groups', 200, 'application/json',
                       encode_json({ data => [$group] }));
    ok(@p && "@p" =~ /total|Missing/, 'self-test: a list without total fails');
    @p = spec_validate('GET', '/api/groups', 418, 'application/json', '{}');
    ok(@p && "@p" =~ /not documented/, 'self-test: an undocumented status fails');
    @p = spec_validate('GET', '/api/groups', 200, 'text/html', $page->($group));
    ok(@p && "@p" =~ /content type/, 'self-test: another content type fails');
    @p = spec_validate('DELETE', '/api/groups/g1', 204, '', 'x');
    ok(@p && "@p" =~ /no body/, 'self-test: a body on 204 fails');
    @p = spec_validate('GET', '/api/groups/g1', 404, 'application/json',
                       encode_json({ error => { message => 'm', type => 'not_found_error',
                                                param => undef, code => 'not_found' } }));
    is_deeply(\@p, [], 'self-test: an OpenAI-shaped 404 validates');
    @p = spec_validate('GET', '/api/groups/g1', 404, 'application/json',
                       encode_json({ error => { message => 'm', type => 'oops' } }));
    ok(@p >= 1, 'self-test: a malformed error fails');
    @p = spec_validate('GET', '/api/no-such-thing', 200, 'application/json', '{}');
    ok(@p && "@p" =~ /no path/, 'self-test: an unknown path fails');
    @p = spec_validate('PUT', '/api/groups', 405, 'application/json',
                       encode_json({ error => { message => 'm', type => 'invalid_request_error',
                                                param => undef, code => 'method_not_allowed' } }));
    is_deeply(\@p, [], 'self-test: 405 on a known path is the MethodNotAllowed response');
    @p = spec_validate('GET', '/api/users/7', 200, 'application/json',
                       encode_json({ data => { id => 7 } }));
    ok(@p >= 1, 'self-test: a user with members missing fails');
    @p = spec_validate('POST', '/api/keys/import', 999, 'application/json', '{}');
    ok("@p" =~ m{POST /api/keys/import\b}, 'self-test: /api/keys/import is not taken for '
       . '/api/keys/{key_id}') or diag(explain \@p);
}

# ---- calls ----------------------------------------------------------------------
sub base_of {
    Apache::TestRequest::module($_[0]);
    (my $b = 'http://' . Apache::TestRequest::hostport()) =~ s/localhost/127.0.0.1/;
    Apache::TestRequest::module('default');
    return $b;
}
my $ADMIN = base_of('nebula_admin');
my $PAY   = base_of('nebula_payadmin');

my %covered;
my $root_ua = LWP::UserAgent->new(keep_alive => 1, timeout => 60, max_redirect => 0);

# call(METHOD, PATH, %o) -> (response, JSON or undef). o: body (ref: JSON;
# text: raw with type), token (default root; undef: none), ua, base, headers.
sub call {
    my ($method, $path, %o) = @_;
    my $req = HTTP::Request->new($method, ($o{base} // $ADMIN) . $path);
    my $token = exists $o{token} ? $o{token} : $ROOT;
    $req->header(Authorization => "Bearer $token") if defined $token;
    if (defined $o{body}) {
        $req->content(ref $o{body} ? encode_json($o{body}) : $o{body});
        $req->header('Content-Type' => $o{type} // 'application/json');
    }
    $req->header('Content-Length' => length($req->content // ''));
    $req->header($_ => $o{headers}{$_}) for keys %{ $o{headers} || {} };
    my $res = ($o{ua} || $root_ua)->request($req);
    return ($res, eval { decode_json($res->content) });
}

# check(LABEL, METHOD, PATH, STATUS, %o): one test: the status is STATUS and
# the answer validates. Returns (response, JSON).
sub check {
    my ($label, $method, $path, $want, %o) = @_;
    my ($res, $j) = call($method, $path, %o);
    my @p = spec_validate($method, $path, $res->code, scalar($res->header('Content-Type')),
                          $res->content);
    my ($tpl, $op) = spec_find($method, $path);
    $covered{ spec_template_key($method, $tpl) }++ if $op && !@p && $res->code == $want;
    ok($res->code == $want && !@p, "$label: $method $path -> $want and valid")
        or diag("got " . $res->code . ': ' . substr($res->content // '', 0, 600)
                . join('', map { "\n  $_" } @p));
    return ($res, $j);
}
sub data_of { my ($res, $j) = check(@_); return $j ? ($j->{data} // $j) : undef }

# ---- users, auth ----------------------------------------------------------------
my $t = uniq('s');
my $pw = "pw-$t-secret";
my $user = data_of('create user', 'POST', '/api/users', 201,
                   body => { username => "$t-u", password => $pw, role => 'user',
                             display_name => 'Spec User' });
my $uid = $user->{id};
my $oper = data_of('create operator', 'POST', '/api/users', 201,
                   body => { username => "$t-op", password => $pw, role => 'operator' });
check('list users', 'GET', "/api/users?q=$t&per_page=5", 200);
check('get user', 'GET', "/api/users/$uid", 200);
check('patch user', 'PATCH', "/api/users/$uid", 200, body => { display_name => 'Spec U' });
check('unknown member', 'POST', '/api/users', 400, body => { username => "$t-x", bogus => 1 });
check('duplicate username', 'POST', '/api/users', 409, body => { username => "$t-u" });
check('no such user', 'GET', '/api/users/999999999', 404);
check('not a number', 'GET', '/api/users/abc', 404);
check('other method', 'PUT', '/api/users', 405, body => {});
check('no route', 'GET', '/api/no-such-route', 404);
check('no credentials', 'GET', '/api/users', 401, token => undef);
check('wrong token', 'GET', '/api/users', 401, token => 'nope');
check('not json', 'POST', '/api/groups', 415, body => 'name=x', type => 'text/plain');
check('set password', 'PUT', "/api/users/$uid/password", 200, body => { password => $pw });
my $tok = data_of('access token', 'POST', "/api/users/$uid/access-token", 200)->{access_token};
my $optok = data_of('operator access token', 'POST', "/api/users/$oper->{id}/access-token",
                    200)->{access_token};
check('a user is not a manager', 'GET', '/api/users', 403, token => $tok);
check('auth me (root)', 'GET', '/api/auth/me', 200);
check('auth me (access token)', 'GET', '/api/auth/me', 200, token => $tok);
my $gone = data_of('user to delete', 'POST', '/api/users', 201, body => { username => "$t-d" });
check('token of a user to revoke', 'POST', "/api/users/$gone->{id}/access-token", 200);
check('revoke token', 'DELETE', "/api/users/$gone->{id}/access-token", 204);
check('delete user', 'DELETE', "/api/users/$gone->{id}", 204);

# sessions
my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 60, cookie_jar => HTTP::Cookies->new);
check('wrong password', 'POST', '/api/auth/login', 401, token => undef,
      body => { username => "$t-u", password => 'wrong-password' });
my $sess = data_of('login', 'POST', '/api/auth/login', 200, token => undef, ua => $ua,
                   body => { username => "$t-u", password => $pw });
check('auth me (session)', 'GET', '/api/auth/me', 200, token => undef, ua => $ua);
check('no CSRF token', 'POST', '/api/auth/logout', 403, token => undef, ua => $ua);
my $pwd = data_of('change own password', 'POST', '/api/auth/password', 200, token => undef,
                  ua => $ua, headers => { 'X-CSRF-Token' => $sess->{csrf_token} },
                  body => { current_password => $pw, new_password => "$pw-2" });
check('logout', 'POST', '/api/auth/logout', 204, token => undef, ua => $ua,
      headers => { 'X-CSRF-Token' => $pwd->{csrf_token} // '' });
check('password with the root token', 'POST', '/api/auth/password', 400,
      body => { current_password => 'x', new_password => 'yyyyyyyy' });

# ---- groups -----------------------------------------------------------------------
my $g = "$t-g";
check('create group', 'POST', '/api/groups', 201, body => { name => $g, ratio_ppm => 1500000 });
check('duplicate group', 'POST', '/api/groups', 409, body => { name => $g });
check('list groups', 'GET', "/api/groups?q=$t", 200);
check('get group', 'GET', "/api/groups/$g", 200);
check('patch group', 'PATCH', "/api/groups/$g", 200, body => { description => 'spec' });
check('groups: other method', 'PUT', "/api/groups/$g", 405, body => {});

# ---- keys -------------------------------------------------------------------------
my $key = data_of('create key', 'POST', '/api/keys', 201,
                  body => { user_id => $uid, name => "$t-k", remain_quota => 100000000 });
my $kid = $key->{id};
check('list keys', 'GET', "/api/keys?user_id=$uid", 200);
check('get key', 'GET', "/api/keys/$kid", 200);
check('patch key', 'PATCH', "/api/keys/$kid", 200,
      body => { allowed_ips => ['127.0.0.1/32', '::1'] });
check('patch key back', 'PATCH', "/api/keys/$kid", 200, body => { allowed_ips => undef });
my $imp = data_of('import key', 'POST', '/api/keys/import', 201,
                  body => { user_id => $uid, key => 'sk-' . substr(md5_hex($t) x 2, 0, 48) });
check('no such key', 'GET', '/api/keys/999999999', 404);
check('delete key', 'DELETE', "/api/keys/$imp->{id}", 204);

# ---- channels -----------------------------------------------------------------------
my $chan = data_of('create channel', 'POST', '/api/channels', 201,
                   body => { name => "$t-c", kind => 'openai', base_url => mock_url("tag=$t-c"),
                             keys => ["sk-upstream-$t"], models => ['gpt-4o-mini'],
                             channel_groups => ['default'], test_model => 'gpt-4o-mini' });
my $cid = $chan->{id};
check('list channels', 'GET', "/api/channels?q=$t", 200);
check('get channel', 'GET', "/api/channels/$cid", 200);
check('patch channel', 'PATCH', "/api/channels/$cid", 200, body => { weight => 2 });
{
    my ($res) = call('POST', "/api/channels/$cid/test", body => {});
    check('test channel', 'POST', "/api/channels/$cid/test", $res->code == 501 ? 501 : 200,
          body => {});
}
my $ckeys = data_of('add channel key', 'POST', "/api/channels/$cid/keys", 201,
                    body => { keys => ["sk-second-$t"] });
my ($ck) = grep { $_->{masked} !~ /upstream/ } @{ $ckeys || [] };
$ck //= $ckeys->[-1];
check('patch channel key', 'PATCH', "/api/channels/$cid/keys/$ck->{id}", 200,
      body => { status => 'disabled' });
check('delete channel key', 'DELETE', "/api/channels/$cid/keys/$ck->{id}", 204);
check('abilities', 'GET', "/api/abilities?channel_id=$cid", 200);

# ---- a request through the relay: logs, stats -----------------------------------
{
    my $r = chat($key->{key}, { model => 'gpt-4o-mini',
                                messages => [{ role => 'user', content => 'hello spec' }] });
    note('relay answered ' . $r->code);
    my $logs;
    for (1 .. 20) {
        (undef, $logs) = call('GET', "/api/logs?key_id=$kid");
        last if $logs && @{ $logs->{data} || [] };
        select(undef, undef, undef, 0.25);
    }
    check('list logs', 'GET', "/api/logs?key_id=$kid&per_page=5", 200);
    my $lid = $logs->{data}[0]{id};
    ok($lid, 'the relayed request was logged') or diag(explain $logs);
    check('get log', 'GET', "/api/logs/$lid", 200) if $lid;
    check('no such log', 'GET', '/api/logs/00000000-0000-0000-0000-000000000000', 404);
    check('usage stats', 'GET', '/api/stats/usage?bucket=hour', 200);
    check('usage stats by day', 'GET', "/api/stats/usage?bucket=day&key_id=$kid&tz_offset=60", 200);
    check('usage stats: bad bucket', 'GET', '/api/stats/usage?bucket=week', 400);
}

# ---- governance -------------------------------------------------------------------
my $pol = data_of('create policy', 'POST', '/api/policies', 201,
                  body => { name => "$t-p", enabled => JSON::PP::false, scope => { groups => [$g] },
                            match => [{ type => 'keywords', values => ['spec-forbidden'] }],
                            action => { type => 'block', message => 'not here' } });
check('list policies', 'GET', "/api/policies?q=$t", 200);
check('list policies (operator)', 'GET', '/api/policies', 200, token => $optok);
check('get policy by id', 'GET', "/api/policies/$pol->{id}", 200);
check('get policy by name', 'GET', "/api/policies/$t-p", 200);
check('patch policy', 'PATCH', "/api/policies/$pol->{id}", 200,
      body => { shadow => JSON::PP::true });
check('operator may not write', 'PATCH', "/api/policies/$pol->{id}", 403, token => $optok,
      body => { shadow => JSON::PP::false });
check('invalid policy', 'POST', '/api/policies', 400, body => { name => "$t-bad" });
check('policy test', 'POST', '/api/policies/test', 200,
      body => { group => $g, body => { model => 'gpt-4o-mini',
                messages => [{ role => 'user', content => 'say spec-forbidden' }] },
                policies => [{ name => "$t-extra", match => [{ type => 'keywords',
                               values => ['spec-forbidden'] }], action => { type => 'tag',
                               tag => 'x' } }] });
check('policy test (operator)', 'POST', '/api/policies/test', 200, token => $optok,
      body => { body => { model => 'm', messages => [{ role => 'user', content => 'hi' }] } });
check('delete policy', 'DELETE', "/api/policies/$pol->{id}", 204);
check('audit log', 'GET', '/api/audit?per_page=5', 200);
check('audit log (operator)', 'GET', '/api/audit?stage=request', 200, token => $optok);
check('audit export', 'GET', '/api/audit/export?from=2026-01-01T00:00:00Z', 200);
check('audit export (jsonl)', 'GET', '/api/audit/export?format=jsonl&user_id=999999999', 200);
check('audit: no writes', 'POST', '/api/audit', 405, body => {});

# ---- rate limits ------------------------------------------------------------------
my $rl = data_of('create rate limit', 'POST', '/api/rate-limits', 201,
                 body => { scope_kind => 'key', scope_value => "$kid", rpm => 100000 });
check('list rate limits', 'GET', '/api/rate-limits?scope_kind=key', 200);
check('get rate limit', 'GET', "/api/rate-limits/$rl->{id}", 200);
check('patch rate limit', 'PATCH', "/api/rate-limits/$rl->{id}", 200, body => { tpm => 5000000 });
check('delete rate limit', 'DELETE', "/api/rate-limits/$rl->{id}", 204);

# ---- billing: prices, organisations, accounts, ledger, caps -------------------------
my $model = "$t-model";
check('create price', 'PUT', '/api/billing/prices', 201, body => { model => $model,
      model_ratio => '1.5', completion_ratio => 2, price_per_call_usd => '0.01' });
check('replace price', 'PUT', '/api/billing/prices', 200,
      body => { model => $model, model_ratio => 0.75 });
check('list prices', 'GET', "/api/billing/prices?q=$t", 200);
check('delete price', 'DELETE', "/api/billing/prices?model=$model", 204);
check('no such price', 'DELETE', "/api/billing/prices?model=$model", 404);

my $org = data_of('create org', 'POST', '/api/orgs', 201, body => { name => "$t-o" });
check('list orgs', 'GET', "/api/orgs?q=$t", 200);
check('get org', 'GET', "/api/orgs/$org->{id}", 200);
check('patch org', 'PATCH', "/api/orgs/$org->{id}", 200, body => { display_name => 'Spec Org' });
check('org account (none yet)', 'GET', "/api/orgs/$org->{id}/account", 200);
check('org topup', 'POST', "/api/orgs/$org->{id}/topup", 201,
      body => { amount => 1000, reason => 'spec' });
my $org2 = data_of('org to delete', 'POST', '/api/orgs', 201, body => { name => "$t-o2" });
check('delete org', 'DELETE', "/api/orgs/$org2->{id}", 204);

check('user account', 'GET', "/api/users/$uid/account", 200);
my $post = data_of('user topup', 'POST', "/api/users/$uid/topup", 201,
                   body => { amount => 5000000, reason => 'spec', idempotency_key => "$t-i" });
my $aid = $post->{account}{id};
check('user topup replayed', 'POST', "/api/users/$uid/topup", 200,
      body => { amount => 5000000, reason => 'spec', idempotency_key => "$t-i" });
check('idempotency key reused', 'POST', "/api/users/$uid/topup", 422,
      body => { amount => 7, reason => 'spec', idempotency_key => "$t-i" });
check('list accounts', 'GET', "/api/billing/accounts?owner_kind=user&owner_id=$uid", 200);
check('get account', 'GET', "/api/billing/accounts/$aid", 200);
check('patch account', 'PATCH', "/api/billing/accounts/$aid", 200,
      body => { billing_preference => 'wallet_first' });
check('account topup', 'POST', "/api/billing/accounts/$aid/topup", 201,
      body => { amount => 10, reason => 'spec' }, headers => { 'Idempotency-Key' => "$t-h" });
check('account adjust', 'POST', "/api/billing/accounts/$aid/adjust", 201,
      body => { amount => -10, reason => 'spec' });
check('ledger', 'GET', "/api/billing/ledger?account_id=$aid", 200);
check('ledger export', 'GET', "/api/billing/ledger/export?account_id=$aid", 200);
check('ledger export (jsonl)', 'GET', "/api/billing/ledger/export?format=jsonl&kind=topup"
      . "&account_id=$aid", 200);
check('reconcile', 'GET', '/api/billing/reconcile', 200);
check('self account', 'GET', '/api/self/account', 200, token => $tok);
check('self account (root token)', 'GET', '/api/self/account', 400);
check('self ledger', 'GET', '/api/self/ledger?kind=topup', 200, token => $tok);

# the caller's own keys, logs and statistics, the dashboard summary, settings
my $sk = data_of('self key create', 'POST', '/api/self/keys', 201, token => $tok,
                 body => { name => "$t-self", remain_quota => 1000 });
check('self keys', 'GET', '/api/self/keys', 200, token => $tok);
check('self key', 'GET', "/api/self/keys/$sk->{id}", 200, token => $tok);
my $okey = data_of('a key of another user', 'POST', '/api/keys', 201,
                   body => { user_id => $oper->{id}, name => "$t-ok", remain_quota => 1 });
check('self key: foreign id', 'GET', "/api/self/keys/$okey->{id}", 404, token => $tok);
check('self key patch', 'PATCH', "/api/self/keys/$sk->{id}", 200, token => $tok,
      body => { name => "$t-self2" });
check('self key: group refused', 'PATCH', "/api/self/keys/$sk->{id}", 403, token => $tok,
      body => { key_group => 'default' });
check('self key delete', 'DELETE', "/api/self/keys/$sk->{id}", 204, token => $tok);
check('self logs', 'GET', '/api/self/logs?per_page=5', 200, token => $tok);
check('self logs: user_id refused', 'GET', "/api/self/logs?user_id=$uid", 400, token => $tok);
check('self usage', 'GET', '/api/self/stats/usage?bucket=day', 200, token => $tok);
check('self summary', 'GET', '/api/self/stats/summary?by=model', 200, token => $tok);
check('summary', 'GET', '/api/stats/summary?by=model&limit=5', 200);
check('summary by user', 'GET', '/api/stats/summary?by=user', 200);
check('summary: bad by', 'GET', '/api/stats/summary?by=planet', 400);
check('settings', 'GET', '/api/settings', 200);

my $cap = data_of('create cap', 'POST', '/api/billing/caps', 201,
                  body => { subject_kind => 'key', subject_id => $kid + 0, limit => 1000000,
                            metric => 'requests', period => 'day' });
check('list caps', 'GET', "/api/billing/caps?subject_kind=key&subject_id=$kid", 200);
check('get cap', 'GET', "/api/billing/caps/$cap->{id}", 200);
check('delete cap', 'DELETE', "/api/billing/caps/$cap->{id}", 204);

# ---- plans and subscriptions ------------------------------------------------------
my $plan = data_of('create plan', 'POST', '/api/billing/plans', 201,
                   body => { name => "$t-plan", quota_per_period => 100000,
                             allowed_models => ['gpt-4o-mini'] });
check('list plans', 'GET', "/api/billing/plans?q=$t", 200);
check('get plan', 'GET', "/api/billing/plans/$plan->{id}", 200);
check('patch plan', 'PATCH', "/api/billing/plans/$plan->{id}", 200,
      body => { description => 'spec plan' });
my $sub = data_of('subscribe', 'POST', '/api/billing/subscriptions', 201,
                  body => { plan_id => $plan->{id}, subject_kind => 'user', subject_id => $uid });
check('list subscriptions', 'GET', "/api/billing/subscriptions?plan_id=$plan->{id}", 200);
check('get subscription', 'GET', "/api/billing/subscriptions/$sub->{id}", 200);
check('archive a used plan', 'DELETE', "/api/billing/plans/$plan->{id}", 200);
check('cancel subscription', 'DELETE', "/api/billing/subscriptions/$sub->{id}", 204);
check('cancel again', 'DELETE', "/api/billing/subscriptions/$sub->{id}", 409);
my $plan2 = data_of('unused plan', 'POST', '/api/billing/plans', 201,
                    body => { name => "$t-plan2", quota_per_period => 5 });
check('delete plan', 'DELETE', "/api/billing/plans/$plan2->{id}", 204);
check('scheduler run', 'POST', '/api/billing/scheduler/run', 200, body => {});

# ---- vouchers, new-api ----------------------------------------------------------
my $batch = data_of('create voucher batch', 'POST', '/api/vouchers', 201,
                    body => { name => "$t-v", amount => 1000, codes => 3, per_user => 2 });
check('list voucher batches', 'GET', '/api/vouchers?status=active', 200);
check('patch voucher batch', 'PATCH', "/api/vouchers/$batch->{id}", 200,
      body => { note => 'spec' });
my ($eres) = check('export codes', 'GET', "/api/vouchers/$batch->{id}/export", 200);
my @codes = map { (split /,/)[0] } grep { !/^code,/ && /\S/ } split /\r?\n/, $eres->content;
is(scalar(@codes), 3, 'three codes exported');
check('export again', 'GET', "/api/vouchers/$batch->{id}/export", 410);
check('redeem for a user', 'POST', "/api/users/$uid/redeem", 200, body => { code => $codes[0] });
check('redeem self', 'POST', '/api/self/redeem', 200, token => $tok, body => { code => $codes[1] });
check('redeem used code', 'POST', '/api/self/redeem', 409, token => $tok,
      body => { code => $codes[1] });
check('get voucher batch', 'GET', "/api/vouchers/$batch->{id}?per_page=5", 200);
check('no such batch', 'GET', '/api/vouchers/999999999', 404);

my (undef, $na) = check('new-api create', 'POST', '/api/redemption/', 200,
                        body => { name => 'spec', count => 2, quota => 100, expired_time => 0 });
my @nk = @{ $na->{data} || [] };
check('new-api topup', 'POST', '/api/user/topup', 200, token => $tok, body => { key => $nk[0] });
my (undef, $nl) = check('new-api list', 'GET', '/api/redemption/?p=1&page_size=50', 200);
my ($item) = grep { $_->{status} == 1 } @{ $nl->{data}{items} || [] };
check('new-api delete', 'DELETE', "/api/redemption/$item->{id}", 200) if $item;
ok($item, 'an unused new-api code is listed');

# ---- payments (the payments vhost) ----------------------------------------------
{
    my %pay = (base => $PAY, token => $tok);
    my $st = data_of('stripe top-up', 'POST', '/api/self/topup/stripe', 200, %pay,
                     body => { amount => 5 });
    my $ep = data_of('epay top-up', 'POST', '/api/self/topup/epay', 200, %pay,
                     body => { amount => 3, type => 'alipay' });
    check('own top-ups', 'GET', '/api/self/topups?provider=epay', 200, %pay);
    check('all top-ups', 'GET', "/api/topups?user_id=$uid", 200, base => $PAY);
    my $oid = $ep->{order}{id};
    check('get top-up', 'GET', "/api/topups/$oid", 200, base => $PAY);
    check('complete top-up', 'POST', "/api/topups/$oid/complete", 200, base => $PAY,
          body => { note => 'paid at the desk' });
    check('complete again', 'POST', "/api/topups/$oid/complete", 409, base => $PAY, body => {});
    check('top-up on the plain admin vhost', 'POST', '/api/self/topup/stripe', 503,
          token => $tok, body => { amount => 5 });

    my $payload = encode_json({ id => "evt_$t", type => 'customer.created',
                                data => { object => { id => "cus_$t" } } });
    my $ts = time;
    check('stripe webhook', 'POST', '/api/payments/stripe/webhook', 200, base => $PAY,
          token => undef, body => $payload, headers => {
              'Stripe-Signature' => "t=$ts,v1=" . hmac_sha256_hex("$ts.$payload", WHSEC) });
    check('stripe webhook unsigned', 'POST', '/api/payments/stripe/webhook', 400, base => $PAY,
          token => undef, body => $payload);
    check('epay notify (unsigned)', 'GET', '/api/payments/epay/notify?out_trade_no=x', 200,
          base => $PAY, token => undef);
    check('epay notify form (unsigned)', 'POST', '/api/payments/epay/notify', 200, base => $PAY,
          token => undef, body => 'out_trade_no=x&sign=00',
          type => 'application/x-www-form-urlencoded');
    my %p = (pid => '1001', out_trade_no => $ep->{order}{trade_no},
             trade_status => 'TRADE_SUCCESS', type => 'alipay');
    $p{sign} = md5_hex(join('&', map { "$_=$p{$_}" } sort keys %p) . EPAY_KEY);
    $p{sign_type} = 'MD5';
    my $q = join '&', map { uri_escape($_) . '=' . uri_escape($p{$_}) } sort keys %p;
    check('epay return', 'GET', "/api/payments/epay/return?$q", 200, base => $PAY,
          token => undef);
    check('epay return unsigned', 'GET', '/api/payments/epay/return?out_trade_no=x', 400,
          base => $PAY, token => undef);
    ok($st->{checkout_url}, 'stripe answered a checkout url');
}

# ---- clean-up writes --------------------------------------------------------------
check('delete channel', 'DELETE', "/api/channels/$cid", 204);
check('delete key', 'DELETE', "/api/keys/$kid", 204);
check('delete group', 'DELETE', "/api/groups/$g", 204);

# ---- the operations endpoints (docs/observability.md) ----
check('metrics', 'GET', '/metrics', 200, token => undef);
check('healthz', 'GET', '/healthz', 200, token => undef);
check('readyz', 'GET', '/readyz', 200, token => undef);
check('metrics by POST', 'POST', '/metrics', 405, token => undef, body => {});

# ---- every operation answered -------------------------------------------------------
my @all = map { spec_template_key($_->{method}, $_->{path}) } spec_operations();
my @missing = sort grep { !$covered{$_} && !$SKIP{$_} } @all;
note("not reached here: $_ ($SKIP{$_})") for sort grep { !$covered{$_} } keys %SKIP;
note(scalar(grep { $covered{$_} } @all) . ' of ' . scalar(@all)
     . ' operations answered and validated');
is_deeply(\@missing, [], 'every operation of the spec had a valid answer')
    or diag("operations without a validated answer:\n" . join('', map { "  $_\n" } @missing));

done_testing();
