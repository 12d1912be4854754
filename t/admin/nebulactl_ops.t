# nebulactl operations commands (issue 11, item 4): create-admin / create-key,
# rotate-secret with gateways running (before, during with
# NebulaCryptoSecretPrevious, after), export / import (round trip through
# empty databases, --dry-run, --prune, bad documents, the SSRF check), and
# backup / restore of SQLite during a write load.
# Rotation and import run on the suite's database (any of the three);
# backup/restore and the empty databases of the round trip are SQLite files.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin";
use lib "$FindBin::Bin/../lib";
use AdminT qw(api db_value db_rows uniq);
use NebulaAdmin qw(admin new_key new_channel mock_url);
use NebulaHost qw(extra_host stop_host host_ask host_error_log);
use NebulaTest qw(top_dir);

plan tests => 72;

my $ctl = $ENV{NEBULA_CTL} || top_dir() . '/admin/nebulactl/nebulactl';
my @db = ('--driver', $ENV{NEBULA_TEST_DBD_DRIVER}, '--params', $ENV{NEBULA_TEST_DBD_PARAMS});
my $sqlite = $ENV{NEBULA_TEST_DBD_DRIVER} eq 'sqlite3';
my $tmp = tempdir(CLEANUP => 1);
my $S = 'nebula-test-crypto-secret-0123456789abcdef';   # t/conf/extra.conf.in
my $T = 'nebulactl-ops-rotated-secret-' . $$ . '-abcdefgh';
local $ENV{NEB_OPS_OLD} = $S;
local $ENV{NEB_OPS_NEW} = $T;
local $ENV{CRYPTO_SECRET} = $S;

# (exit code, stdout, stderr) of nebulactl with @args
sub ctl { return NebulaTest::run_cmd3($ctl, @_) }
sub sq { my ($f, $sql) = @_; chomp(my $v = `sqlite3 '$f' "$sql"`); return $v }
sub fresh_db {
    my $f = "$tmp/$_[0].db";
    my ($rc, $o, $e) = ctl('migrate', '--dsn', "sqlite:$f");
    die "migrate $f: $e" if $rc;
    return ('--dsn', "sqlite:$f");
}

# ---- create-admin / create-key --------------------------------------------
my $boss = uniq('boss');
my ($rc, $out, $err) = ctl('create-admin', '--username', $boss, '--random-password', @db);
is($rc, 0, 'create-admin: exit 0') or diag $err;
like($out, qr/^role: root$/m, 'create-admin makes a root user');
($rc, $out, $err) = ctl('create-admin', '--username', uniq('b'), '--role', 'user', @db);
is($rc, 2, 'create-admin --role: exit 2');
($rc, $out, $err) = ctl('create-key', '--username', $boss, '--unlimited', @db);
like($out, qr/^sk-[0-9A-Za-z]{48}$/, 'create-key prints a key');

# ---- rotate-secret with gateways running -----------------------------------
my $m = uniq('rot-model');
my ($cid, $tag) = new_channel(models => [$m]);
my ($key) = new_key();
my $cipher = sub { db_value("SELECT key_ciphertext FROM channel_keys WHERE channel_id = $cid") };
# a voucher batch not exported yet: its codes are sealed, and hashed with the secret
my ($vres, $vj) = api('POST', '/api/vouchers', { name => uniq('rot'), amount => 321, codes => 2 });
is($vres->code, 201, 'a voucher batch') or diag $vres->content;
my $vid = $vj->{data}{id};
my $vhash = sub { [ map { $_->[0] } @{ db_rows("SELECT code_hash FROM voucher_codes WHERE "
                                               . "batch_id = $vid ORDER BY id") } ] };
my $h0 = $vhash->();
# a batch handed out (exported: only the codes' HMACs are kept)
my ($xres, $xj) = api('POST', '/api/vouchers', { name => uniq('rotx'), amount => 55, codes => 2 });
my @handed = map { (split /,/)[0] } grep { !/^code,/ }
    split /\n/, (api('GET', "/api/vouchers/$xj->{data}{id}/export"))[0]->content;
is(scalar(@handed), 2, 'a batch exported before the rotation');
my $vkey = sub { db_value("SELECT sealed FROM nebula_secrets WHERE name = 'voucher_hmac_key'") };
my $k0 = $vkey->();
like($k0, qr/^nbk1:/, 'the key of the codes\' hashes is sealed in nebula_secrets');
my $c0 = $cipher->();
like($c0, qr/^nbk1:/, 'the channel key is sealed');
my @open = map { extra_host(conf => $_) } "", "NebulaCryptoSecret \"$T\"\n"
    . "NebulaCryptoSecretPrevious \"$S\"";
is(host_ask($open[0], $key, $m), 200, 'before: a gateway on the old secret relays');
is(host_ask($open[1], $key, $m), 200,
   'during: a gateway on the new secret with the old as PREVIOUS relays (old rows)');

my @rot = ('rotate-secret', '--old-secret-env', 'NEB_OPS_OLD', '--new-secret-env', 'NEB_OPS_NEW');
($rc, $out, $err) = ctl(@rot, '--dry-run', @db);
my ($todo) = $out =~ /^channel_keys\.key_ciphertext: (\d+) to re-encrypt/m;
my $bad0 = 0;
$bad0 += $_ for $out =~ /(\d+) unreadable/g;
cmp_ok($todo // 0, '>=', 1, '--dry-run counts the rows to re-encrypt') or diag "$out$err";
is($cipher->(), $c0, '--dry-run changes nothing');
($rc, $out, $err) = ctl(@rot, '--batch', '2', @db);
is($rc, $bad0 ? 1 : 0, 'rotate-secret: exit 0 (1 only when some row opens under neither)')
    or diag $err;
my ($done) = $out =~ /^channel_keys\.key_ciphertext: (\d+) re-encrypted/m;
is($done, $todo, 'it re-encrypts what --dry-run counted, in batches of 2');
my $c1 = $cipher->();
isnt($c1, $c0, 'the ciphertext changed');
like($c1, qr/^nbk1:/, 'still a sealed token');
my ($vdone) = $out =~ /^voucher_codes\.code_enc: (\d+) re-encrypted/m;
cmp_ok($vdone // 0, '>=', 2, 'the voucher codes are re-encrypted');
is_deeply($vhash->(), $h0,
          'their hashes unchanged: they are keyed by the voucher key, not the secret');
isnt($vkey->(), $k0, 'which is re-sealed under the new secret');
($rc, $out, $err) = ctl(@rot, @db);
like($out, qr/^channel_keys\.key_ciphertext: 0 re-encrypted, [1-9]\d* already under the new secret/m,
     'a second run finds everything under the new secret (idempotent)');
is($cipher->(), $c1, 'and changes nothing');
is(host_ask($open[1], $key, $m), 200, 'during: the PREVIOUS gateway still relays');
my @after = map { extra_host(conf => $_) } "NebulaCryptoSecret \"$T\"", "";
is(host_ask($after[0], $key, $m), 200, 'after: a gateway on the new secret alone relays');
isnt(host_ask($after[1], $key, $m), 200, 'a gateway on the old secret alone cannot');
like(host_error_log($after[1]), qr/NEB01030: cannot decrypt key \d+ of channel $cid/,
     'and says it cannot decrypt the key');
my $vh = extra_host(admin => 1, billing => 1, conf => "NebulaCryptoSecret \"$T\"");
my $vu = NebulaAdmin::new_user();
($vres, $vj) = api('POST', "/api/users/$vu/redeem", { code => $handed[0] },
                   base => "http://127.0.0.1:$vh->{admin_port}");
is($vres->code . ' ' . ($vj->{data}{amount} // ''), '200 55',
   'a code handed out before the rotation redeems on a gateway with the new secret alone')
    or diag $vres->content;
stop_host($_) for @open, @after, $vh;
($rc, $out, $err) = ctl('rotate-secret', '--old-secret-env', 'NEB_OPS_NEW', '--new-secret-env',
                        'NEB_OPS_OLD', @db);
is($rc, $bad0 ? 1 : 0, 'rotating back to the suite secret') or diag $err;
is_deeply($vhash->(), $h0, 'the voucher hashes are the original ones again (HMAC)');
my $csv = (api('GET', "/api/vouchers/$vid/export"))[0];
my @vcodes = map { (split /,/)[0] } grep { !/^code,/ } split /\n/, $csv->content;
is(scalar(@vcodes), 2, 'the batch exports (its sealed codes open)');
my $vuser = NebulaAdmin::new_user();
($vres, $vj) = api('POST', "/api/users/$vuser/redeem", { code => $vcodes[0] });
is($vres->code . ' ' . ($vj->{data}{amount} // ''), '200 321', 'and a code redeems')
    or diag $vres->content;
my $r = NebulaAdmin::chat($key, { model => $m, messages => [{ role => 'user', content => 'hi' }] });
is($r->code, 200, 'the suite server relays through the channel again');
($rc, $out, $err) = ctl(@rot[0 .. 2], '--new-secret-env', 'NEB_OPS_UNSET', @db);
is($rc, 2, 'an unset secret variable: exit 2');
like($err, qr/NEB_OPS_UNSET is not set/, 'naming it');
($rc, $out, $err) = ctl('rotate-secret', '--old-secret-env', 'NEB_OPS_OLD', '--new-secret-env',
                        'NEB_OPS_OLD', @db);
is($rc, 2, 'the same secret twice: exit 2');

# ---- export / import ----------------------------------------------------------
my $n = uniq('cfg');
my $vip = "$n-vip";
my $doc = { version => 1,
    channels => [
        { name => "$n-b", kind => 'openai', base_url => mock_url("tag=$n"),
          models => ["$n-m1", "$n-m2"], channel_groups => ['default', $vip], priority => 7,
          weight => 3, keys => ['sk-ops-upstream-key-0001', 'sk-ops-upstream-key-0002'] },
        { name => "$n-a", kind => 'openai', models => ["$n-m3"],
          model_mapping => { "$n-m3" => 'gpt-4o-mini' }, status => 'disabled' } ],
    policies => [ { name => "$n-pol", priority => 5,
                    match => [{ type => 'keywords', values => ['zanzibar'] }],
                    action => { type => 'block', status => 403, message => 'no' } } ] };
my $file = "$tmp/doc.json";
sub write_json { open(my $fh, '>', $_[0]) or die $!; print $fh encode_json($_[1]); close $fh }
write_json($file, $doc);
sub add_group {   # an empty database has only "default"
    sq($_[0], "INSERT INTO user_groups (name, ratio_ppm, description, created_at) "
              . "VALUES ('$vip', 1000000, '', 0)");
}

($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', @db);
is($rc, 1, 'import naming a group that does not exist: exit 1');
like($err, qr/channel_groups: the group '\Q$vip\E' does not exist/, 'naming the group');
api('POST', '/api/groups', { name => $vip });

($rc, $out, $err) = ctl('import', '--file', $file, @db);
is($rc, 1, 'import of a loopback base_url without --allow-private: exit 1');
like($err, qr/channels\[0\] \(\Q$n\E-b\)\.base_url: .*loopback.*nothing was changed/,
     'the SSRF check names the channel and the reason');
my $count = sub { db_value("SELECT COUNT(*) FROM channels WHERE name LIKE '$n-%'") };
($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', '--dry-run', @db);
like($out, qr/dry run: 3 created, 0 updated/, '--dry-run says what it would create');
is($count->(), 0, '--dry-run creates nothing');
($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', @db);
is($rc, 0, 'import: exit 0') or diag $err;
like($out, qr/^3 created, 0 updated, 0 unchanged/m, 'creates two channels and a policy');
my $bid = db_value("SELECT id FROM channels WHERE name = '$n-b'");
is(db_value("SELECT COUNT(*) FROM abilities WHERE channel_id = $bid AND priority = 7 AND weight = 3"),
   4, 'abilities: 2 groups x 2 models, with the priority and weight');
is(db_value("SELECT COUNT(*) FROM channel_keys WHERE channel_id = $bid"), 2, 'two keys stored');
unlike(db_value("SELECT key_ciphertext FROM channel_keys WHERE channel_id = $bid"), qr/sk-ops/,
       'sealed, not in clear');
is(db_value("SELECT priority FROM gov_policies WHERE name = '$n-pol'"), 5, 'the policy is stored');
($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', @db);
like($out, qr/^0 created, 0 updated, 3 unchanged, 0 deleted/m, 'a second import changes nothing');
$doc->{channels}[0]{weight} = 9;
write_json($file, $doc);
($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', @db);
like($out, qr/^channel \Q$n\E-b: update\n.*^0 created, 1 updated, 2 unchanged/ms, 'a change updates one');
is(db_value("SELECT COUNT(*) FROM abilities WHERE channel_id = $bid AND weight = 9"), 4,
   'and rebuilds its abilities');
# a fresh gateway (the suite server's cache would see it within NebulaCacheTTL)
my $fresh = extra_host(loglevel => 'info');
is(host_ask($fresh, scalar(new_key()), "$n-m1"), 200, 'a gateway relays through an imported channel')
    or diag host_error_log($fresh);
stop_host($fresh);

# round trip through two empty databases: the same bytes
my @d1 = fresh_db('x1');
add_group("$tmp/x1.db");
($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', @d1);
is($rc, 0, 'import into an empty database') or diag $err;
my ($rc1, $e1) = ctl('export', '--with-keys', @d1);
my @d2 = fresh_db('x2');
add_group("$tmp/x2.db");
write_json("$tmp/e1.json", decode_json($e1));
($rc, $out, $err) = ctl('import', '--file', "$tmp/e1.json", '--allow-private', @d2);
my ($rc2, $e2) = ctl('export', '--with-keys', @d2);
is($e2, $e1, 'export -> import into an empty database -> export: the same document');
my $j1 = decode_json($e1);
is_deeply([ map { $_->{name} } @{ $j1->{channels} } ], [ "$n-a", "$n-b" ], 'channels by name');
is_deeply($j1->{channels}[1]{keys}, $doc->{channels}[0]{keys}, '--with-keys: the keys in clear');
is($j1->{version}, 1, 'the document has a version');
($rc, $out) = ctl('export', '--what', 'policies', @d1);
is_deeply([ sort keys %{ decode_json($out) } ], [ 'policies', 'version' ], '--what policies');
($rc, $out) = ctl('export', @db);
ok(!grep({ exists $_->{keys} } @{ decode_json($out)->{channels} }), 'no keys without --with-keys');
# --prune
delete $doc->{policies};
pop @{ $doc->{channels} };
write_json($file, $doc);
($rc, $out, $err) = ctl('import', '--file', $file, '--allow-private', '--prune', @d1);
like($out, qr/^channel \Q$n\E-a: delete$/m, '--prune deletes the channel the file lacks');
is(sq("$tmp/x1.db", 'SELECT COUNT(*) FROM gov_policies'), 1,
   'and keeps the policies (the file has none of that kind)');

# bad documents: a clear error, nothing changed
for my $bad ([ '{"version": 1, "channels": [{"name": "x"', qr/is not JSON/ ],
             [ '{"version": 2}', qr/version: this nebulactl reads version 1/ ],
             [ '{"version": 1, "channels": [{"name": "x", "kind": "nope", "models": ["m"]}]}',
               qr/channels\[0\] \(x\)\.kind: 'nope'/ ],
             [ '{"version": 1, "policies": [{"name": "p", "action": {"type": "jump"}}]}',
               qr/policies\[0\]: action/ ]) {
    open(my $fh, '>', "$tmp/bad.json") or die $!;
    print $fh $bad->[0];
    close $fh;
    ($rc, $out, $err) = ctl('import', '--file', "$tmp/bad.json", @d1);
    ok($rc == 1 && $err =~ $bad->[1] && $err =~ /nothing was changed/,
       "bad document refused: $bad->[1]") or diag $err;
}
admin('DELETE', "/api/channels/$_") for map { $_->[0] } @{ db_rows("SELECT id FROM channels WHERE name LIKE '$n-%'") };
admin('DELETE', "/api/policies/$n-pol");
api('DELETE', "/api/groups/$vip");

# ---- backup / restore (SQLite) ---------------------------------------------------
SKIP: {
    skip 'backup/restore are for SQLite (pg_dump / mysqldump otherwise)', 9 unless $sqlite;
    my $live = $ENV{NEBULA_TEST_DBD_PARAMS};
    my $before = db_value('SELECT COUNT(*) FROM users');
    my $pid = fork // die;
    if (!$pid) {   # the write load: users created through the admin API until told
        for my $i (1 .. 3000) {
            last if -e "$tmp/stop";
            NebulaAdmin::admin('POST', '/api/users', { username => uniq("load$i"), role => 'user' });
        }
        exit 0;
    }
    sleep 0.5;
    ($rc, $out, $err) = ctl('backup', '--to', "$tmp/bk.db", @db);
    open(my $stop, '>', "$tmp/stop") or die $!;
    close $stop;
    waitpid($pid, 0);
    my $after = db_value('SELECT COUNT(*) FROM users');
    is($rc, 0, 'backup during a write load: exit 0') or diag $err;
    like($out, qr/\(integrity ok\)/, 'the copy passed integrity_check');
    my ($users) = $out =~ /^rows users: (\d+)$/m;
    is(sq("$tmp/bk.db", 'SELECT COUNT(*) FROM users'), $users, 'the printed count is the copy\'s');
    ok($users > $before && $users <= $after,
       "a point in time during the load: $before < $users <= $after");
    is((stat "$tmp/bk.db")[2] & 0777, 0600, 'the backup is mode 600');
    my ($live_rc) = ctl('verify-ledger', @db);
    ($rc, $out, $err) = ctl('verify-ledger', '--dsn', "sqlite:$tmp/bk.db");
    is("$rc $live_rc", '0 0', 'the ledger of the backup verifies (as the live one does)')
        or diag "$out$err";
    # restore into a database a gateway holds: refused; stopped: done
    my @t = fresh_db('target');
    my $h = do { local $ENV{NEBULA_TEST_DBD_PARAMS} = "$tmp/target.db"; extra_host() };
    host_ask($h, 'sk-none', 'm');   # its child opens the database
    ($rc, $out, $err) = ctl('restore', '--from', "$tmp/bk.db", @t);
    ok($rc == 1 && $err =~ /has \Q$tmp\E\/target\.db open/, 'restore refuses while a gateway has it open')
        or diag $err;
    stop_host($h);
    sleep 0.5;
    ($rc, $out, $err) = ctl('restore', '--from', "$tmp/bk.db", @t);
    is(($rc == 0) . ' ' . sq("$tmp/target.db", 'SELECT COUNT(*) FROM users'), "1 $users",
       'restore (gateway stopped): the backup\'s rows') or diag $err;
    ok(-f "$tmp/target.db.bak", 'the previous file is kept as .bak');
}
