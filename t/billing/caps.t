# Usage caps: per model and route on a key, a user or a plan, per calendar
# period, enforced at reserve time with the worst case held and corrected to
# the real use at settle.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestUtil;
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin api);
use NebulaBilling qw(billed_chat wallet billed_setup uniq_model set_price);

plan tests => 14;

sub chat_body {
    my ($model, %o) = @_;
    return { model => $model, max_tokens => 10,
             messages => [ { role => 'user', content => 'a b c' } ], %o };
}

# ---- 3 requests a day of one model on a key --------------------------------------
my %s = billed_setup(name => 'caps', balance => 1000000);
my $cap = admin('POST', '/api/billing/caps', { subject_kind => 'key', subject_id => $s{key_id},
                                               model => $s{model}, metric => 'requests',
                                               period => 'day', limit => 3 });
$cap = $cap->{data};
is_deeply([ @$cap{qw(model metric period limit used)} ], [ $s{model}, 'requests', 'day', 3, 0 ],
          'a cap of 3 requests a day on a key');
my @codes = map { billed_chat($s{key}, chat_body($s{model}))->code } 1 .. 4;
is("@codes", '200 200 200 429', 'three are served, the fourth refused');
my $res = billed_chat($s{key}, chat_body($s{model}));
my $err = decode_json($res->content)->{error};
is($err->{code}, 'insufficient_quota', '... insufficient_quota');
like($err->{message}, qr/usage cap \d+ \(3 requests per day\) is reached/, '... naming the cap');
my $other = uniq_model('other');
set_price($other);
admin('POST', '/api/channels', { name => "capch-$$", kind => 'openai',
                                 base_url => NebulaAdmin::mock_url("tag=capch-$$"),
                                 keys => ['sk-x'], models => [$other], channel_groups => ['default'] });
is(billed_chat($s{key}, chat_body($other))->code, 200, 'another model is not capped');
wallet($s{user});
is(admin('GET', "/api/billing/caps/$cap->{id}")->{data}{used}, 3, 'the counter says 3');

# ---- a token cap: the worst case held, the real use kept -----------------------------
my %t = billed_setup(name => 'tokcap', balance => 1000000);
my $tc = admin('POST', '/api/billing/caps', { subject_kind => 'user', subject_id => $t{user},
                                              metric => 'tokens', period => 'month',
                                              limit => 600 })->{data};
is($tc->{model}, '*', 'a cap on every model of a user');
is(billed_chat($t{key}, chat_body($t{model}))->code, 200, 'a request holding 510 of 600 tokens');
wallet($t{user});   # settled
is(admin('GET', "/api/billing/caps/$tc->{id}")->{data}{used}, 3 + 5, '... keeps what it used (P + N)');
is(billed_chat($t{key}, chat_body($t{model}))->code, 200, 'another fits (8 + 510 <= 600)');
wallet($t{user});
is(billed_chat($t{key}, chat_body($t{model}, max_tokens => 100))->code, 429,
   'one whose worst case (16 + 600) would pass the cap is refused');
is(admin('GET', "/api/billing/caps/$tc->{id}")->{data}{used}, 16, '... and holds nothing');

# ---- validation and removal ------------------------------------------------------------
my ($code) = api('POST', '/api/billing/caps', { subject_kind => 'team', subject_id => 1, limit => 1 });
is($code, 400, 'an unknown subject kind: 400');
($code) = api('DELETE', "/api/billing/caps/$cap->{id}");
is($code, 204, 'a cap is deleted') ;
