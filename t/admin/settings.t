# GET /api/settings: the effective configuration for the settings page, as
# t/conf/extra.conf.in and payments.conf.in set it: version, loaded modules,
# database driver, billing (off here, on in two gateway vhosts), sessions,
# governance, the rate-limit store, payments (none on nebula_admin, Stripe and
# EPay on nebula_payadmin) and the note that settings live in httpd's
# configuration. Never a secret, in any form.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user ROOT_TOKEN);

plan tests => 22;

my ($res, $j) = api('GET', '/api/settings');
is($res->code, 200, 'settings: 200');
my $s = $j->{data};
like($s->{version}, qr/^\d+\.\d+\.\d+/, 'the version');
is_deeply($s->{modules}, { relay => JSON::PP::true(), billing => JSON::PP::true(),
                           gov => JSON::PP::true() }, 'the three modules are loaded');
my %drv = (sqlite => 'sqlite3', pgsql => 'pgsql', mysql => 'mysql');
is($s->{database}{driver}, $drv{ $ENV{NEBULA_TEST_DB} // 'sqlite' }, 'the database driver');
is($s->{quota_per_usd}, 500000, 'quota units per USD');
ok($s->{billing}{loaded} && !$s->{billing}{enabled}, 'billing loaded, Off on the admin vhost');
is($s->{billing}{unpriced}, 'refuse', 'unpriced models refused');
my @on = @{ $s->{billing}{enabled_on} };
ok(@on >= 2 && !grep({ !/^[^:]+:\d+$/ } @on), 'billing On in the billed gateways (host:port)');
is_deeply([ @{ $s->{sessions} }{qw(enabled ttl_s idle_s admin_token_set)} ],
          [ JSON::PP::true(), 43200, 1800, JSON::PP::true() ], 'sessions: on, 12 h, idle 30 min');
is_deeply([ @{ $s->{governance} }{qw(loaded enabled audit_retention_days)} ],
          [ JSON::PP::true(), JSON::PP::true(), 90 ], 'governance on, audit kept 90 days');
is($s->{rate_limits}{backend}, $ENV{NEBULA_TEST_REDIS_URL} ? 'redis' : 'shm',
   'the rate-limit store');
is_deeply($s->{payments}, { currency => 'usd', rate => 500000, min_amount => '1.00',
                            max_amount => '10000.00',
                            providers => { stripe => JSON::PP::false(),
                                           epay => JSON::PP::false() } },
          'payments: defaults, no provider on this vhost');
like($s->{config_note}, qr/httpd configuration/, 'settings live in the httpd configuration');
ok($s->{relay}{crypto_secret_set}, 'the crypto secret is said to be set');

# the vhost with payment settings
Apache::TestRequest::module('nebula_payadmin');
my $pay = 'http://' . Apache::TestRequest::hostport();
Apache::TestRequest::module('default');
my $ua = LWP::UserAgent->new(timeout => 30);
my $r2 = $ua->get("$pay/api/settings", Authorization => 'Bearer ' . ROOT_TOKEN);
my $p = JSON::PP::decode_json($r2->content)->{data}{payments};
is_deeply($p, { currency => 'usd', rate => 500000, min_amount => '1.00', max_amount => '500.00',
                providers => { stripe => JSON::PP::true(), epay => JSON::PP::true() } },
          'nebula_payadmin: its top-up limits, Stripe and EPay enabled');

# never a secret
my $all = $res->content . $r2->content;
for my $secret ('nebula-test-crypto-secret', 'nebula-test-session-secret', ROOT_TOKEN,
                'sk_test_nebula', 'whsec_nebula', 'nebula-test-epay-key') {
    unlike($all, qr/\Q$secret\E/, "no secret: $secret");
}

my $u = make_user(username => uniq('settings-u'));
my $tok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
($res, $j) = api('GET', '/api/settings', undef, token => $tok);
is($res->code . ' ' . $j->{error}{code}, '403 forbidden', 'role user: 403');
