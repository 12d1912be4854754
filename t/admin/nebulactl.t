# nebulactl user-create and key-create against the running server's database:
# the users and keys they write are the ones the admin API and the relay use
# (argon2id password, key stored as its hash and printed once).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Digest::SHA qw(sha256_hex);
use IPC::Open3 qw(open3);
use Symbol qw(gensym);
use FindBin;
use lib "$FindBin::Bin";
use lib "$FindBin::Bin/../lib";
use AdminT qw(api api_ok new_ua uniq login db_value db_rows);
use NebulaTest qw(top_dir);

plan tests => 29;

my $ctl = $ENV{NEBULA_CTL} || top_dir() . '/admin/nebulactl/nebulactl';
my @db = ('--driver', $ENV{NEBULA_TEST_DBD_DRIVER}, '--params', $ENV{NEBULA_TEST_DBD_PARAMS});

# (exit code, stdout, stderr) of nebulactl with @args, $stdin on its input
sub ctl {
    my ($stdin, @args) = @_;
    my $err = gensym;
    my $pid = open3(my $in, my $out, $err, $ctl, @args);
    print $in $stdin if defined $stdin;
    close $in;
    my $o = do { local $/; <$out> } // '';
    my $e = do { local $/; <$err> } // '';
    waitpid($pid, 0);
    return ($? >> 8, $o, $e);
}

my $name = uniq('ctl');
my ($rc, $out, $err) = ctl("pass-word-123\n", 'user-create', '--username', $name,
                           '--password-stdin', '--role', 'root', @db);
is($rc, 0, 'user-create: exit 0') or diag $err;
my ($id) = $out =~ /^id: (\d+)$/m;
ok($id, 'prints the id');
like($out, qr/^username: \Q$name\E$/m, 'prints the username');
like($out, qr/^role: root$/m, 'prints the role');
like(db_value("SELECT password_hash FROM users WHERE id = $id"), qr/^\$argon2id\$/,
     'the password is stored as argon2id');
my $ua = new_ua();
my ($res, $j) = login($ua, $name, 'pass-word-123');
is($res->code, 200, 'the admin API signs the user in with that password');
($res, $j) = api('GET', '/api/auth/me', undef, token => undef, ua => $ua);
is($j->{data}{role}, 'root', 'as root');

($rc, $out, $err) = ctl(undef, 'user-create', '--username', $name, @db);
is($rc, 1, 'the same user again: exit 1');
like($err, qr/exists/, 'says it exists');
($rc, $out, $err) = ctl(undef, 'user-create', '--username', $name, '--exists-ok', @db);
is($rc, 0, '--exists-ok: exit 0');
like($out, qr/^id: $id\n.*^exists: yes$/ms, 'and names the existing user');

my $rnd = uniq('rnd');
($rc, $out, $err) = ctl(undef, 'user-create', '--username', $rnd, '--random-password',
                        '--role', 'admin', @db);
my ($pw) = $out =~ /^password: (\S+)$/m;
ok($pw && length($pw) >= 20, '--random-password prints a long password');
is((login(new_ua(), $rnd, $pw))[0]->code, 200, 'which signs in');

for my $bad ([ [ '--username', uniq('b'), '--role', 'emperor' ], 2, 'unknown role' ],
             [ [ '--username', '-x' ], 2, 'bad username' ],
             [ [ '--username', uniq('b'), '--password', 'short' ], 2, 'short password' ],
             [ [ '--username', uniq('b'), '--password', 'long-enough-1', '--password-stdin' ], 2,
               'two password sources' ],
             [ [ '--username', uniq('b'), '--group', 'no-such-group' ], 1, 'unknown group' ],
             [ [ '--username', uniq('b'), '--unlimited' ], 2, 'a key-create option' ]) {
    ($rc, $out, $err) = ctl(undef, 'user-create', @{ $bad->[0] }, @db);
    is($rc, $bad->[1], "user-create with $bad->[2]: exit $bad->[1]");
}

# key-create: printed once, stored as its hash
($rc, $out, $err) = ctl(undef, 'key-create', '--username', $name, '--name', 'demo',
                        '--unlimited', @db);
is($rc, 0, 'key-create: exit 0') or diag $err;
chomp(my $key = $out);
like($key, qr/^sk-[0-9A-Za-z]{48}$/, 'prints the key alone');
my $row = db_rows("SELECT id, key_hash, unlimited_quota, name FROM api_keys WHERE user_id = $id")->[0];
is($row->[1], sha256_hex(substr($key, 3)), 'stores the hash of its secret part');
is_deeply([ @$row[2, 3] ], [ 1, 'demo' ], 'unlimited, named');
($res, $j) = api('GET', "/api/keys/$row->[0]");
is($j->{data}{key_prefix}, substr($key, 0, 8), 'the API shows its prefix');
unlike($res->content, qr/\Q$key\E/, 'but never the key');
($rc, $out, $err) = ctl(undef, 'key-create', '--username', $name, '--quota', '500', @db);
is(db_value("SELECT remain_quota FROM api_keys WHERE user_id = $id AND unlimited_quota = 0"), 500,
   '--quota sets remain_quota');

($rc, $out, $err) = ctl(undef, 'key-create', '--username', uniq('nobody'), @db);
is($rc, 1, 'key-create for an unknown user: exit 1');
($rc, $out, $err) = ctl(undef, 'key-create', '--username', $name, '--role', 'root', @db);
is($rc, 2, 'key-create with a user-create option: exit 2');
($rc, $out) = ctl(undef, 'help');
like($out, qr/user-create.*key-create/s, 'help lists both commands');
