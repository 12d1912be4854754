package NebulaBilling;
# Helpers for the billing tests: prices, funded users, the billed gateway
# (nebula_billed vhost), wallets and their ledgers through the admin API.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP qw(encode_json decode_json);
use LWP::UserAgent;
use NebulaAdmin qw(admin api new_user new_key new_channel);

our @EXPORT_OK = qw(billed_hostport billed_chat set_price topup wallet settled ledger_rows
                    billed_setup uniq_model reconcile);

# one user agent per process: a forked child must not write into the
# parent's kept-alive connections
my ($ua, $ua_pid);
sub ua {
    ($ua, $ua_pid) = (LWP::UserAgent->new(keep_alive => 8, timeout => 60), $$)
        unless $ua && $ua_pid == $$;
    return $ua;
}
my $seq = 0;

sub billed_hostport { return NebulaAdmin::hostport_of('nebula_billed') }

sub uniq_model { return sprintf('bill-%s-%d-%d', $_[0] // 'm', $$, ++$seq) }

# set_price(MODEL, field => value ...): ratios as decimal strings
sub set_price {
    my ($model, %o) = @_;
    return admin('PUT', '/api/billing/prices',
                 { model => $model, model_ratio => '1', completion_ratio => '1', %o });
}

sub topup {
    my ($uid, $amount, %o) = @_;
    my $d = admin('POST', "/api/users/$uid/topup",
                  { amount => $amount, reason => 'test funding', %o });
    return $d->{data} // $d;
}

# The user's wallet account (JSON object), once no hold is left on it: a
# request's settlement commits right after its response was written, so a
# client may read its balance a moment before the charge (5 s at most).
sub wallet { return settled("/api/users/$_[0]/account") }

# The account at @a $path once it holds nothing.
sub settled {
    my ($path) = @_;
    my $w;
    for (1 .. 50) {
        my $d = admin('GET', $path);
        $w = $d->{data} // $d;
        last if !$w->{reserved};
        select(undef, undef, undef, 0.1);
    }
    return $w;
}

# Every ledger row of an account, oldest first.
sub ledger_rows {
    my ($account_id, %f) = @_;
    my (@rows, $page);
    for ($page = 1; ; $page++) {
        my $q = join('&', "account_id=$account_id", "per_page=100", "page=$page",
                     map { "$_=$f{$_}" } sort keys %f);
        my $d = admin('GET', "/api/billing/ledger?$q");
        push @rows, @{ $d->{data} };
        last if @{ $d->{data} } < 100;
    }
    return [ sort { $a->{seq} <=> $b->{seq} } @rows ];
}

sub reconcile {
    my $d = admin('GET', '/api/billing/reconcile');
    return $d->{data} // $d;
}

# A priced model, a channel serving it (channel => {kind => ...} for more),
# a user funded with BALANCE and a key:
# returns a hash (model, user, key, key_id, channel, tag).
sub billed_setup {
    my (%o) = @_;
    my $model = $o{model} // uniq_model($o{name});
    set_price($model, %{ $o{price} // {} }) unless $o{unpriced};
    my ($ch, $tag) = new_channel(models => [$model], ($o{controls} ? (controls => $o{controls}) : ()),
                                 %{ $o{channel} // {} });
    my $uid = new_user(%{ $o{user} // {} });
    topup($uid, $o{balance}) if $o{balance};
    my ($key, $kid) = new_key(user_id => $uid, %{ $o{key} // {} });
    return (model => $model, user => $uid, key => $key, key_id => $kid, channel => $ch,
            tag => $tag);
}

# POST a chat completion to the billed gateway; returns the HTTP::Response.
sub billed_chat {
    my ($key, $body, %h) = @_;
    my $path = delete $h{path} // '/v1/chat/completions';
    my $req = HTTP::Request->new(POST => 'http://' . billed_hostport() . $path);
    $req->header(Authorization => "Bearer $key") if defined $key;
    $req->header('Content-Type' => 'application/json');
    $req->header($_ => $h{$_}) for keys %h;
    $req->content(ref $body ? encode_json($body) : $body);
    return ua()->request($req);
}

1;
