# nebulactl import-newapi: a new-api SQLite database built from new-api's
# schema (t/data/newapi/schema.sqlite.sql) and seeded with users, tokens,
# channels on the mock, abilities, redemption codes and options is imported
# into the suite's database. Then: every active imported key authenticates
# and relays through each imported channel (with that channel's upstream
# key); disabled and expired keys are refused; every balance equals the old
# quota and the ledger verifies; an unused code redeems once; the dry run
# writes nothing and a rerun imports nothing. The source is SQLite, and also
# PostgreSQL and MariaDB (schema.postgres.sql, schema.mysql.sql) when
# scripts/testdb.sh's servers are there (NEBULA_TEST_PG_PARAMS,
# NEBULA_TEST_MYSQL_PARAMS and NEBULA_TESTDB_DIR in the environment).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use FindBin;
use lib "$FindBin::Bin";
use lib "$FindBin::Bin/../lib";
use AdminT qw(api api_ok db_rows db_value login new_ua);
use NebulaTest qw(top_dir);
use NebulaAdmin qw(mock_url mock_records chat);

$ENV{CRYPTO_SECRET} = 'nebula-test-crypto-secret-0123456789abcdef';
my $ctl = $ENV{NEBULA_CTL} || top_dir() . '/admin/nebulactl/nebulactl';
my @db = ('--driver', $ENV{NEBULA_TEST_DBD_DRIVER}, '--params', $ENV{NEBULA_TEST_DBD_PARAMS});

sub ctl { return NebulaTest::run_cmd3($ctl, @_) }

# "kind: source=N imported=N ..." lines of a report as { kind => [numbers] }
sub counts {
    my ($out) = @_;
    my %c;
    while ($out =~ /^(\w+): source=(\d+) \w+=(\d+) already=(\d+) skipped=(\d+) conflict=(\d+)$/mg) {
        $c{$1} = [ $2, $3, $4, $5, $6 ];
    }
    return \%c;
}

sub sq { my $s = shift; $s =~ s/'/''/g; return "'$s'" }

# One source: seed it with $load (SQL -> the --from DSN), import, check.
sub run_case {
    my ($label, $load) = @_;
    note("new-api source: $label");
    # ---- the new-api database ------------------------------------------------
    my $t = "$$" . (time % 100000) . $label;
    my $grp = "imp$t";
    my %user = (root => "nroot$t", alice => "nalice$t", bob => "nbob$t", gone => "ngone$t",
                clash => "nclash$t");
    my %quota = (root => 5000000, alice => 1234567, bob => 0, gone => 77, clash => 10);
    my %tok = map { $_ => join('', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[ rand 62 ] } 1 .. 44) . $_ }
              qw(Root Alic Disb Expd Delt Clsh);
    my %model = (oa => "imp-oa-$t", an => "imp-an-$t", ge => "imp-ge-$t", mj => "imp-mj-$t");
    my %up = map { $_ => "sk-upstream-$_-$t" } qw(oa an ge);
    my %code = map { $_ => join('', map { sprintf('%x', rand 16) } 1 .. 32) } qw(unused used);
    my $past = time - 3600;
    # what Go's bcrypt (new-api) stores, cost 10, for 'alice-old-password'
    my $alice_bcrypt = '$2a$10$C49nu6mr5oQpmhfWefxRNepEq2PV2iruus0.Qn5I5/K1iO2eytNuC';

    my $seed = join("\n",
        "INSERT INTO users (id, username, password, display_name, role, status, email, quota, "
        . "used_quota, request_count, `group`) VALUES "
        . "(1, '$user{root}', '\$2a\$10\$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy', "
        . "'Root', 100, 1, 'root\@example.com', $quota{root}, 500, 7, '$grp'), "
        . "(2, '$user{alice}', '$alice_bcrypt', "
        . "'Alice', 1, 1, NULL, $quota{alice}, 0, 0, '$grp'), "
        . "(3, '$user{bob}', 'x', '', 1, 2, NULL, $quota{bob}, 0, 0, '$grp'), "
        . "(5, '$user{clash}', 'x', '', 1, 1, NULL, $quota{clash}, 0, 0, 'default'), "
        . "(6, 'has space $t', 'x', '', 1, 1, NULL, 99, 0, 0, 'default');",
        "INSERT INTO users (id, username, password, quota, `group`, deleted_at) VALUES "
        . "(4, '$user{gone}', 'x', $quota{gone}, '$grp', '2025-01-01 00:00:00');",
        "INSERT INTO tokens (id, user_id, `key`, status, name, created_time, accessed_time, "
        . "expired_time, remain_quota, unlimited_quota, model_limits_enabled, model_limits, "
        . "allow_ips, `group`, deleted_at) VALUES "
        . "(1, 1, '$tok{Root}', 1, 'root key', 1700000000, 0, -1, 0, true, false, '', '', '', NULL), "
        . "(2, 2, '$tok{Alic}', 1, 'alice key', 1700000000, 0, -1, 900000, false, true, "
        . "'$model{oa},$model{an},$model{ge}', '127.0.0.1', '', NULL), "
        . "(3, 2, '$tok{Disb}', 2, 'disabled', 1700000000, 0, -1, 900000, false, false, '', '', '', NULL), "
        . "(4, 2, '$tok{Expd}', 1, 'expired', 1700000000, 0, $past, 900000, false, false, '', '', '', NULL), "
        . "(5, 2, '$tok{Delt}', 1, 'deleted', 1700000000, 0, -1, 900000, false, false, '', '', '', "
        . "'2025-01-01 00:00:00'), "
        . "(6, 5, '$tok{Clsh}', 1, 'clash', 1700000000, 0, -1, 900000, false, false, '', '', '', NULL);",
        "INSERT INTO channels (id, type, `key`, status, name, weight, base_url, models, `group`, "
        . "priority, auto_ban, model_mapping, channel_info, other) VALUES "
        . "(1, 1, '$up{oa}', 1, 'oa-$t', 0, " . sq(mock_url("tag=oa$t") . '/') . ", '$model{oa}', "
        . "'$grp', 5, 1, NULL, '{\"is_multi_key\":false}', NULL), "
        . "(2, 14, '$up{an}', 1, 'an-$t', 10, " . sq(mock_url("tag=an$t")) . ", '$model{an}', "
        . "'$grp', 0, 0, NULL, NULL, NULL), "
        . "(3, 24, '$up{ge}', 1, 'ge-$t', 0, " . sq(mock_url("tag=ge$t")) . ", '$model{ge}', "
        . "'$grp', 0, 1, NULL, NULL, 'v1beta'), "
        . "(4, 2, 'mj-key', 1, 'mj-$t', 0, '', '$model{mj}', '$grp', 0, 1, NULL, NULL, NULL);",
        "INSERT INTO abilities (`group`, model, channel_id, enabled, priority, weight) VALUES "
        . "('$grp', '$model{oa}', 1, true, 5, 0), ('$grp', '$model{an}', 2, true, 0, 10), "
        . "('$grp', '$model{ge}', 3, true, 0, 0), ('$grp', '$model{mj}', 4, true, 0, 0);",
        "INSERT INTO redemptions (id, user_id, `key`, status, name, quota, created_time, "
        . "redeemed_time, used_user_id, expired_time, deleted_at) VALUES "
        . "(1, 1, '$code{unused}', 1, 'promo$t', 250000, 1700000000, 0, 0, 0, NULL), "
        . "(2, 1, '$code{used}', 3, 'promo$t', 250000, 1700000000, 1700000100, 2, 0, NULL);",
        "INSERT INTO options (`key`, value) VALUES "
        . "('ModelRatio', '{\"$model{oa}\":1,\"$model{an}\":1.5,\"$model{ge}\":0.5}'), "
        . "('CompletionRatio', '{\"$model{an}\":5}'), "
        . "('GroupRatio', '{\"default\":1,\"$grp\":1}'), "
        . "('ModelPrice', '{\"$model{mj}\":0.1}');");
    my $from = $load->($seed);
    # a user of ours that has a new-api user's name: a conflict, kept
    api_ok('POST', '/api/users', { username => $user{clash}, role => 'user' });

    # ---- dry run -------------------------------------------------------------
    my ($rc, $out, $err) = ctl('import-newapi', '--from', $from, '--dry-run', @db);
    is($rc, 0, 'dry run: exit 0') or diag $err;
    like($out, qr/^  channel 2 'an-$t' \(type 14 Anthropic\) -> channel \d+ kind anthropic, 1 key\(s\), enabled$/m,
         'the report maps each channel to its kind');
    like($out, qr/\(dry run: nothing was written\)/, 'dry run: says so');
    my $c = counts($out);
    is_deeply($c->{users}, [ 6, 4, 0, 1, 1 ], 'dry run: users 6, 4 to import, 1 bad name, 1 clash')
        or diag $out;
    is_deeply($c->{tokens}, [ 6, 4, 0, 2, 0 ], 'dry run: tokens 6, 4 to import (deleted, clash skipped)')
        or diag $out;
    is_deeply($c->{channels}, [ 4, 3, 0, 1, 0 ], 'dry run: channels 4, 3 to import, Midjourney skipped');
    is_deeply($c->{redemptions}, [ 2, 2, 0, 0, 0 ], 'dry run: 2 codes');
    like($out, qr/^  skip channel 4 'mj-$t' \(type 2 Midjourney\): no NebulaGate protocol/m,
         'the skipped channel is named with its reason');
    like($out, qr/^  conflict user 5 '$user{clash}'/m, 'the clashing username is reported');
    like($out, qr/^quota: users=4 total=${\($quota{root} + $quota{alice} + $quota{bob} + $quota{gone})} /m,
         'the quota total of the users to import');
    is(db_value("SELECT COUNT(*) FROM users WHERE username = '$user{root}'"), 0,
       'dry run: nothing written');

    # ---- the import ----------------------------------------------------------
    ($rc, $out, $err) = ctl('import-newapi', '--from', $from, @db);
    is($rc, 0, 'import: exit 0') or diag $err;
    $c = counts($out);
    is_deeply([ map { $c->{$_}[1] } qw(users tokens channels abilities redemptions prices) ],
              [ 4, 4, 3, 3, 2, 4 ], 'imported: 4 users, 4 tokens, 3 channels, 3 abilities, 2 codes, 4 prices')
        or diag $out;
    my %uid = map { $_ => db_value("SELECT id FROM users WHERE username = '$user{$_}'") } keys %user;
    my %bal = map { $_ => db_value("SELECT balance FROM accounts WHERE owner_kind = 'user' "
                                   . "AND owner_id = $uid{$_}") } qw(root alice bob gone);
    is_deeply(\%bal, { map { $_ => $quota{$_} } qw(root alice bob gone) },
              'every imported balance equals the new-api quota');
    is_deeply(db_rows("SELECT role, status, user_group, used_quota, request_count, email FROM users "
                      . "WHERE id = $uid{root}")->[0],
              [ 'root', 'active', $grp, 500, 7, 'root@example.com' ], 'root: role, status, group, usage');
    is(db_value("SELECT status FROM users WHERE id = $uid{bob}"), 'disabled', 'status 2: disabled');
    is(db_value("SELECT status FROM users WHERE id = $uid{gone}"), 'deleted', 'soft-deleted: deleted');
    is(db_value("SELECT COUNT(*) FROM accounts WHERE owner_kind = 'user' AND owner_id = $uid{clash}"),
       0, 'the clashing user of ours got nothing');
    my $led = db_rows("SELECT l.kind, l.amount, l.idem_key, l.actor FROM ledger l JOIN accounts a "
                      . "ON a.id = l.account_id WHERE a.owner_kind = 'user' AND a.owner_id = $uid{alice}");
    is_deeply($led, [ [ 'adjustment', $quota{alice}, 'newapi:user:2', 'nebulactl import-newapi' ] ],
              'the opening balance is one keyed adjustment row');
    for my $u (qw(root alice)) {
        my $acct = db_value("SELECT id FROM accounts WHERE owner_kind = 'user' AND owner_id = $uid{$u}");
        my ($vrc, $vout) = ctl('verify-ledger', '--account', $acct, @db);
        is($vrc, 0, "verify-ledger of $u\'s wallet: clean") or diag $vout;
    }
    is_deeply(db_rows("SELECT kind, base_url, status, priority, weight, auto_disable FROM channels "
                      . "WHERE name IN ('oa-$t', 'an-$t', 'ge-$t') ORDER BY name"),
              [ [ 'anthropic', mock_url("tag=an$t"), 'enabled', 0, 10, 0 ],
                [ 'gemini', mock_url("tag=ge$t"), 'enabled', 0, 1, 1 ],
                [ 'openai', mock_url("tag=oa$t"), 'enabled', 5, 1, 1 ] ],
              'channels: kinds, base URLs, priority, weight, auto-ban');
    unlike(db_value("SELECT key_ciphertext FROM channel_keys k JOIN channels c ON c.id = k.channel_id "
                    . "WHERE c.name = 'oa-$t'"), qr/\Q$up{oa}\E/, 'the upstream key is stored sealed');
    is(db_value("SELECT COUNT(*) FROM abilities WHERE user_group = '$grp'"), 3, 'one ability a channel');
    is_deeply(db_rows("SELECT model_ratio_ppm, completion_ratio_ppm, price_per_call_micro_usd FROM "
                      . "model_prices WHERE model IN ('$model{an}', '$model{mj}') ORDER BY model"),
              [ [ 1500000, 5000000, undef ], [ 0, 1000000, 100000 ] ], 'prices: ratios in ppm, per call in micro-USD');

    # ---- keys at the gateway -------------------------------------------------
    my %ch = (oa => [ "oa$t", 'authorization', "Bearer $up{oa}" ], an => [ "an$t", 'x-api-key', $up{an} ],
              ge => [ "ge$t", 'x-goog-api-key', $up{ge} ]);
    for my $k (qw(oa an ge)) {
        my $body = { model => $model{$k}, messages => [ { role => 'user', content => 'hello' } ] };
        my $res = chat("sk-$tok{Root}", $body);
        is($res->code, 200, "root's key relays through the imported $k channel") or diag $res->content;
        my $rec = mock_records($ch{$k}[0])->[-1] // {};
        is($rec->{headers}{ $ch{$k}[1] }, $ch{$k}[2], "$k: the mock got that channel's upstream key");
    }
    my $body = { model => $model{oa}, messages => [ { role => 'user', content => 'hello' } ] };
    is(chat($tok{Alic}, $body)->code, 200, 'alice\'s key without sk-, as new-api accepts it: 200');
    my $res = chat("sk-$tok{Alic}", { %$body, model => "imp-other-$t" });
    is($res->code, 403, 'alice\'s model allow-list came along: another model is refused');
    $res = chat("sk-$tok{Disb}", $body);
    is($res->code, 401, 'the disabled token: 401');
    like($res->content, qr/disabled/, 'as disabled');
    $res = chat("sk-$tok{Expd}", $body);
    is($res->code, 401, 'the expired token: 401');
    like($res->content, qr/expired/, 'as expired');
    is(chat("sk-$tok{Delt}", $body)->code, 401, 'the deleted token was not imported: 401');
    is(chat("sk-$tok{Clsh}", $body)->code, 401, 'the clashing user\'s token was not imported: 401');

    # ---- passwords: new-api's bcrypt hash signs in once, then argon2id ------
    my ($lr) = login(new_ua(), $user{alice}, 'wrong-password');
    is($lr->code, 401, 'a wrong password against the imported bcrypt hash: 401');
    ($lr) = login(new_ua(), $user{alice}, 'alice-old-password');
    is($lr->code, 200, 'alice signs in with her new-api password') or diag $lr->content;
    like(db_value("SELECT password_hash FROM users WHERE id = $uid{alice}"), qr/^\$argon2id\$/,
         '... and her hash is now argon2id');
    ($lr) = login(new_ua(), $user{alice}, 'alice-old-password');
    is($lr->code, 200, '... which takes the same password');

    # ---- redemption codes ----------------------------------------------------
    my ($r1, $j1) = api('POST', "/api/users/$uid{alice}/redeem", { code => $code{unused} });
    is($r1->code, 200, 'the unused code redeems') or diag $r1->content;
    is_deeply([ @{ $j1->{data} || {} }{qw(user_id kind amount)} ], [ $uid{alice}, 'quota', 250000 ],
              'for its new-api quota');
    ($r1, $j1) = api('POST', "/api/users/$uid{alice}/redeem", { code => $code{unused} });
    is_deeply([ $r1->code, $j1->{error}{code} ], [ 409, 'voucher_used' ], 'once only');
    ($r1, $j1) = api('POST', "/api/users/$uid{alice}/redeem", { code => $code{used} });
    is_deeply([ $r1->code, $j1->{error}{code} ], [ 409, 'voucher_used' ], 'the code used in new-api stays used');

    # ---- a rerun ---------------------------------------------------------------
    ($rc, $out, $err) = ctl('import-newapi', '--from', $from, @db);
    is($rc, 0, 'rerun: exit 0') or diag $err;
    $c = counts($out);
    is_deeply([ map { $c->{$_}[1] } qw(groups users tokens channels abilities redemptions prices) ],
              [ 0, 0, 0, 0, 0, 0, 0 ], 'rerun: nothing imported') or diag $out;
    is_deeply([ map { $c->{$_}[2] } qw(users tokens channels redemptions) ], [ 4, 4, 3, 2 ],
              'rerun: all recognised as imported already');
    is(db_value("SELECT COUNT(*) FROM channels WHERE name = 'oa-$t'"), 1, 'rerun: still one channel');
}

# ---- the sources: SQLite always; PostgreSQL and MariaDB when scripts/testdb.sh
# runs them (a database of their own, dropped at the end) ------------------
my $dir = tempdir(CLEANUP => 1);
my $schema_dir = top_dir() . '/t/data/newapi';
sub slurp { local (@ARGV, $/) = @_; return <> }
sub pipe_to {
    my ($sql, @cmd) = @_;
    open(my $p, '|-', @cmd) or die "$cmd[0]: $!";
    print $p $sql;
    close $p or die "$cmd[0] failed loading the new-api database\n";
}
my $srcdb = "newapi_src_$$";
$ENV{PGOPTIONS} = '-c client_min_messages=warning';
my %pg = map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () } split /\s+/, $ENV{NEBULA_TEST_PG_PARAMS} // '';
my %my = map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () } split /\s+/, $ENV{NEBULA_TEST_MYSQL_PARAMS} // '';
my $mysock = $ENV{NEBULA_TESTDB_DIR} && -r "$ENV{NEBULA_TESTDB_DIR}/mariadb/socket"
    ? slurp("$ENV{NEBULA_TESTDB_DIR}/mariadb/socket") : undef;
chomp $mysock if defined $mysock;
my @psql = ('psql', '-X', '-q', '-h', $pg{host} // '', '-p', $pg{port} // '', '-U', $pg{user} // '',
            '-v', 'ON_ERROR_STOP=1');
my @maria = ('mariadb', '--no-defaults', "--socket=" . ($mysock // ''), '-uroot');
my @cases = ([ 'sqlite', sub {
    my $src = "$dir/one-api.db";
    pipe_to(slurp("$schema_dir/schema.sqlite.sql") . $_[0], 'sqlite3', '-bail', $src);
    return $src;
} ]);
push @cases, [ 'pgsql', sub {
    (my $seed = $_[0]) =~ tr/`/"/;
    pipe_to("DROP DATABASE IF EXISTS $srcdb; CREATE DATABASE $srcdb;", @psql, '-d', 'postgres');
    pipe_to(slurp("$schema_dir/schema.postgres.sql") . $seed, @psql, '-d', $srcdb);
    return "postgres://$pg{user}\@$pg{host}:$pg{port}/$srcdb";
} ] if $pg{port};
push @cases, [ 'mysql', sub {
    pipe_to("DROP DATABASE IF EXISTS $srcdb; CREATE DATABASE $srcdb CHARACTER SET utf8mb4; "
            . "GRANT ALL ON $srcdb.* TO '$my{user}'\@'127.0.0.1';", @maria);
    pipe_to(slurp("$schema_dir/schema.mysql.sql") . $_[0], @maria, $srcdb);
    return "$my{user}:$my{pass}\@tcp($my{host}:$my{port})/$srcdb";
} ] if $my{port} && $mysock && -S $mysock;
END {
    pipe_to("DROP DATABASE IF EXISTS $srcdb;", @psql, '-d', 'postgres') if $pg{port};
    pipe_to("DROP DATABASE IF EXISTS $srcdb;", @maria) if $my{port} && $mysock && -S $mysock;
}

plan tests => 51 * @cases + 2;
run_case(@$_) for @cases;

# ---- bad input -------------------------------------------------------------
my ($rc, $out, $err) = ctl('import-newapi', @db);
is($rc, 2, 'no --from: exit 2');
($rc, $out, $err) = ctl('import-newapi', '--from', "$dir/missing.db", @db);
is_deeply([ $rc, $err =~ /no SQLite database file/ ? 1 : 0 ], [ 2, 1 ], 'a missing file: exit 2, named');
