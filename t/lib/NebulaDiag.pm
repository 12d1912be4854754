# Loaded into every test (t/TEST sets PERL5OPT): Apache::Test points
# Test::More's failure diagnostics at STDOUT, where prove hides them unless
# run verbose, so a failing test said neither what it got nor where. Keep
# them on STDERR, which prove shows and `./nebula test` keeps for its summary.
package NebulaDiag;
use strict;
use warnings;
use Test::Builder ();

my $set = \&Test::Builder::failure_output;
{
    no warnings 'redefine';
    *Test::Builder::failure_output = sub {
        my ($self, $fh) = @_;
        return $set->($self) if ref $fh eq 'GLOB' && *{$fh}{NAME} eq 'STDOUT';
        return $set->(@_);
    };
}

1;
