# /api/billing/prices: model prices as decimal strings over ppm integers;
# upsert with PUT (201 then 200, absent members kept), lookups by exact
# model and substring, deletion by query, and the validation of every member.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use URI::Escape qw(uri_escape);
use FindBin;
use lib "$FindBin::Bin";
use AdminT qw(api api_ok uniq make_user db_rows);

plan tests => 58;

my $tag = uniq('p');
my $m1 = "$tag-vendor/model-one";      # model names may hold '/'
my $m2 = "$tag-vendor/model-two";
sub q_model { '/api/billing/prices?model=' . uri_escape($_[0]) }
sub stored {
    my ($model) = @_;
    my $r = db_rows("SELECT model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, "
                    . "cache_write_ratio_ppm, price_per_call_micro_usd FROM model_prices "
                    . "WHERE model = '$model'");
    return @$r ? $r->[0] : undef;
}

# ---- create, then update ---------------------------------------------------
my ($res, $j) = api('PUT', '/api/billing/prices',
                    { model => $m1, model_ratio => '1.25', completion_ratio => 4,
                      cache_read_ratio => '0.1' });
is($res->code, 201, 'PUT of a new model: 201');
my $p = $j->{data};
is_deeply([ @$p{qw(model model_ratio completion_ratio cache_read_ratio cache_write_ratio)} ],
          [ $m1, '1.25', '4', '0.1', '1.25' ],
          'ratios as decimal strings; cache_write_ratio takes the default 1.25');
ok(exists $p->{price_per_call_usd} && !defined $p->{price_per_call_usd},
   'price_per_call_usd null');
ok($p->{updated_at} > 1600000000000, 'updated_at in ms');
is_deeply(stored($m1), [ 1250000, 4000000, 100000, 1250000, undef ], 'stored as ppm integers');

($res, $j) = api('PUT', '/api/billing/prices',
                 { model => $m1, model_ratio => 2.5, price_per_call_usd => '0.04' });
is($res->code, 200, 'PUT of an existing model: 200');
is_deeply([ @{ $j->{data} }{qw(model_ratio completion_ratio cache_read_ratio price_per_call_usd)} ],
          [ '2.5', '4', '0.1', '0.04' ], 'given members changed, absent ones kept');
is_deeply(stored($m1), [ 2500000, 4000000, 100000, 1250000, 40000 ],
          'a JSON number ratio, and the per-call price in micro-dollars');

($res, $j) = api('PUT', '/api/billing/prices',
                 { model => $m1, model_ratio => '1.23456789', completion_ratio => '0.0000015',
                   cache_write_ratio => '0', price_per_call_usd => undef });
is($res->code, 200, 'more than six decimals: accepted');
is_deeply([ @{ $j->{data} }{qw(model_ratio completion_ratio cache_write_ratio)} ],
          [ '1.234568', '0.000002', '0' ], 'rounded half up to the sixth decimal');
ok(!defined $j->{data}{price_per_call_usd}, 'price_per_call_usd null clears it');
is_deeply(stored($m1), [ 1234568, 2, 100000, 0, undef ], 'the rounded values are stored');

($res, $j) = api('PUT', '/api/billing/prices',
                 { model => $m2, model_ratio => 0, price_per_call_usd => 1.5 });
is($res->code, 201, 'a second model');
is($j->{data}{price_per_call_usd}, '1.5', 'price_per_call_usd as a JSON number');
is_deeply(stored($m2), [ 0, 1000000, 1000000, 1250000, 1500000 ], 'schema defaults for the rest');

# ---- validation ------------------------------------------------------------
my @bad = (
    [ { model_ratio => '1' }, 'model', 'missing model' ],
    [ { model => '', model_ratio => '1' }, 'model', 'empty model' ],
    [ { model => "a\nb", model_ratio => '1' }, 'model', 'control character in model' ],
    [ { model => ' lead', model_ratio => '1' }, 'model', 'leading space in model' ],
    [ { model => 'x' x 256, model_ratio => '1' }, 'model', 'model of 256 characters' ],
    [ { model => 5, model_ratio => '1' }, 'model', 'model not a string' ],
    [ { model => "$tag-v" }, 'model_ratio', 'missing model_ratio' ],
    [ { model => "$tag-v", model_ratio => '-1' }, 'model_ratio', 'negative ratio string' ],
    [ { model => "$tag-v", model_ratio => -0.5 }, 'model_ratio', 'negative ratio number' ],
    [ { model => "$tag-v", model_ratio => 'abc' }, 'model_ratio', 'ratio not a number' ],
    [ { model => "$tag-v", model_ratio => '' }, 'model_ratio', 'empty ratio' ],
    [ { model => "$tag-v", model_ratio => '1e3' }, 'model_ratio', 'exponent notation' ],
    [ { model => "$tag-v", model_ratio => '1.' }, 'model_ratio', 'no decimals after the point' ],
    [ { model => "$tag-v", model_ratio => '.5' }, 'model_ratio', 'no digit before the point' ],
    [ { model => "$tag-v", model_ratio => ' 1' }, 'model_ratio', 'a space' ],
    [ { model => "$tag-v", model_ratio => '1000.000001' }, 'model_ratio', 'above 1000' ],
    [ { model => "$tag-v", model_ratio => JSON::PP::true }, 'model_ratio', 'a boolean' ],
    [ { model => "$tag-v", model_ratio => '1', completion_ratio => undef }, 'completion_ratio',
      'null ratio' ],
    [ { model => "$tag-v", model_ratio => '1', cache_read_ratio => '1,5' }, 'cache_read_ratio',
      'decimal comma' ],
    [ { model => "$tag-v", model_ratio => '1', price_per_call_usd => '0.0000001' },
      'price_per_call_usd', 'seven decimals of a dollar' ],
    [ { model => "$tag-v", model_ratio => '1', price_per_call_usd => '-1' },
      'price_per_call_usd', 'negative price' ],
    [ { model => "$tag-v", model_ratio => '1', price_per_call_usd => 'free' },
      'price_per_call_usd', 'price not a number' ],
    [ { model => "$tag-v", model_ratio => '1', price_per_call_usd => '1000001' },
      'price_per_call_usd', 'above a million dollars' ],
    [ { model => "$tag-v", model_ratio => '1', ratio => '1' }, 'ratio', 'unknown member' ],
    [ { model => "$tag-v", model_ratio_ppm => 1000000 }, 'model_ratio_ppm',
      'the stored name is not a member' ],
);
for my $b (@bad) {
    ($res, $j) = api('PUT', '/api/billing/prices', $b->[0]);
    is($res->code . ' ' . ($j->{error}{param} // ''), "400 $b->[1]", "400 for $b->[2]");
}
is(scalar @{ db_rows("SELECT model FROM model_prices WHERE model = '$tag-v'") }, 0,
   'no invalid request stored a price');

# ---- reading ---------------------------------------------------------------
($res, $j) = api('GET', q_model($m1));
is_deeply([ $j->{total}, map { $_->{model} } @{ $j->{data} } ], [ 1, $m1 ],
          'model= is an exact match');
($res, $j) = api('GET', q_model("$tag-vendor/model"));
is($j->{total}, 0, 'model= does not match a prefix');
($res, $j) = api('GET', "/api/billing/prices?q=$tag&per_page=1");
is_deeply([ $j->{total}, map { $_->{model} } @{ $j->{data} } ], [ 2, $m1 ],
          'q= is a substring; ordered by model; per_page');
($res, $j) = api('GET', "/api/billing/prices?q=$tag&per_page=1&page=2");
is_deeply([ map { $_->{model} } @{ $j->{data} } ], [$m2], 'page 2');
($res, $j) = api('GET', '/api/billing/prices?q=' . uc($tag) . '-VENDOR%2FMODEL-T');
is($j->{total}, 1, 'q is case-insensitive');
($res, $j) = api('GET', '/api/billing/prices?model=gpt-4o');
is($j->{total}, 1, 'the seeded prices are listed too');
($res, $j) = api('GET', '/api/billing/prices?sort=model');
is($res->code, 400, 'unknown query parameter: 400');

# ---- deleting --------------------------------------------------------------
($res) = api('DELETE', q_model($m2));
is($res->code, 204, 'DELETE ?model=: 204');
is(stored($m2), undef, 'the row is gone');
($res, $j) = api('DELETE', q_model($m2));
is($res->code, 404, 'DELETE again: 404');
is($j->{error}{code}, 'not_found', 'code not_found');
($res, $j) = api('DELETE', '/api/billing/prices');
is($res->code . ' ' . ($j->{error}{param} // ''), '400 model', 'DELETE without model: 400');
($res) = api('PATCH', '/api/billing/prices', { model => $m1 });
is($res->code, 405, 'PATCH is not a method of the prices');
like($res->header('Allow') // '', qr/GET, PUT, DELETE/, 'Allow lists GET, PUT, DELETE');

# ---- roles -----------------------------------------------------------------
my $u = make_user();
my $tok = api_ok('POST', "/api/users/$u->{id}/access-token")->{access_token};
($res, $j) = api('GET', '/api/billing/prices', undef, token => $tok);
is($res->code, 403, 'role user: 403 on the prices');
($res, $j) = api('PUT', '/api/billing/prices', { model => $m1, model_ratio => '9' }, token => $tok);
is($res->code, 403, 'and cannot change them');
is(stored($m1)->[0], 1234568, 'unchanged');
