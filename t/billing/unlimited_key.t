# An unlimited key is billed on every database: its hold subtracts nothing
# from the key, and the update that takes it must still count as finding the
# key (MySQL counts matched rows only with CLIENT_FOUND_ROWS, which every
# connection is checked for: docs/design-notes.md). A limited key's hold,
# charge and refusal when its quota is short are checked beside it.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(encode_json decode_json);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaAdmin qw(admin);
use NebulaBilling qw(billed_chat wallet ledger_rows billed_setup);

plan tests => 10;

my $words = 30;
my $cost = $words + 5;
my %s = billed_setup(name => 'unlim', balance => 100_000,
                     key => { unlimited_quota => JSON::PP::true, remain_quota => 0 });
my $body = encode_json({ model => $s{model}, max_tokens => 5,
                         messages => [ { role => 'user', content => join(' ', ('w') x $words) } ] });

for my $i (1 .. 2) {
    my $res = billed_chat($s{key}, $body);
    is($res->code, 200, "unlimited key, request $i: 200")
        or diag($res->content);
}
my $w = wallet($s{user});
is($w->{balance}, 100_000 - 2 * $cost, 'both charged to the wallet');
is(scalar(grep { $_->{kind} eq 'consume' } @{ ledger_rows($w->{id}) }), 2, 'two consume rows');
my $k = admin('GET', "/api/keys/$s{key_id}")->{data};
ok($k->{unlimited_quota}, 'the key is unlimited');
is($k->{used_quota}, 2 * $cost, 'its used quota counts both');

# a limited key of the same user: charged while its quota lasts, then refused
# (the hold is the worst case: the prompt, at least the 500-token floor, and
# max_tokens; the charge is the usage)
my $lim = admin('POST', '/api/keys', { user_id => $s{user}, name => "lim-$$",
                                       remain_quota => 1000 })->{data};
my $res = billed_chat($lim->{key}, $body);
is($res->code, 200, 'limited key: 200 while its quota lasts');
$k = admin('GET', "/api/keys/$lim->{id}")->{data};
is($k->{remain_quota}, 1000 - $cost, 'its remaining quota lost exactly the cost');
admin('PATCH', "/api/keys/$lim->{id}", { remain_quota => 1 });
$res = billed_chat($lim->{key}, $body);
is($res->code, 429, 'with too little quota left: 429');
my $e = eval { decode_json($res->content)->{error} } // {};
is($e->{code}, 'insufficient_quota', '... insufficient_quota');
