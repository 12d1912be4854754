# The official `openai` npm SDK's media calls through the relay (nebula_relay
# vhost, a client key and an OpenAI channel made with the admin API):
# images.generate, audio.speech.create read back as an ArrayBuffer, and
# audio.transcriptions / translations.create uploading a generated WAV with
# toFile (multipart/form-data). t/sdk/media-sdk.mjs drives the SDK and
# reports what it got; this file asserts on the report and on what the mock
# provider received.
#
# Needs node and t/sdk/node_modules (scripts/npm-deps.sh); without them the
# tests fail, they are not skipped.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use JSON::PP qw(decode_json encode_json);
use Digest::SHA qw(sha256_hex);
use FindBin;
use lib "$FindBin::Bin/../lib";
use NebulaTest qw(run_cmd);
use NebulaAdmin qw(new_key new_channel relay_hostport mock_records);

plan tests => 10;

my $model = "sdk-media-$$";
my (undef, $tag) = new_channel(models => [$model]);
my $key = new_key();
my ($rc, $out) = run_cmd('node', "$FindBin::Bin/media-sdk.mjs",
                         'http://' . relay_hostport() . '/v1', $key, $model);
my $r = eval { decode_json((split /\n/, $out)[-1] // '') } // {};
diag("media-sdk.mjs exited $rc: $out") if $rc || !%$r;

my $TEXT = 'tok1 tok2 tok3 tok4 tok5 ';
my $i = $r->{image} // {};
is_deeply($i->{revised}, ['a red fox', 'a red fox'], 'images.generate: two images')
    or diag(encode_json($r));
ok(@{ $i->{urls} // [] } == 2 && !grep({ !m{^https://images\.mock\.nebula\.test/.+-\d\.png$} } @{ $i->{urls} }),
   'images.generate: their URLs');

# 'hello world': 11 characters, 64 bytes each, byte k = (31 k + 17) mod 256
my $audio = join('', map { chr((31 * $_ + 17) % 256) } 0 .. 64 * 11 - 1);
is_deeply($r->{speech}, { type => 'audio/mpeg', length => length $audio, sha256 => sha256_hex($audio) },
          'audio.speech.create: the audio bytes and their type') or diag(encode_json($r->{speech}));

# the WAV: 44 header bytes + 2 s x 16000 bytes: ceil(32044 / 16000) = 3 s
is_deeply($r->{transcription}, { text => $TEXT, usage => { type => 'duration', seconds => 3 } },
          'audio.transcriptions.create: text and usage') or diag(encode_json($r->{transcription}));
my $v = $r->{verbose} // {};
is_deeply([@$v{qw(text language segments)}, 0 + ($v->{duration} // -1)], [$TEXT, 'french', 1, 3],
          'transcriptions verbose_json: text, language, one segment, duration')
    or diag(encode_json($v));
is_deeply($r->{translation}, { text => $TEXT }, 'audio.translations.create: the text');

my @recs = @{ mock_records($tag) };
is_deeply([map { $_->{route} } @recs],
          [qw(openai.images.generations openai.audio.speech openai.audio.transcriptions
              openai.audio.transcriptions openai.audio.translations)],
          'the mock got the five requests') or diag(encode_json([map { $_->{path} } @recs]));
my $t = $recs[2] // {};
my %parts = map { $_->{name} => $_ } @{ $t->{multipart} // [] };
is_deeply([@{ $parts{file} // {} }{qw(filename size content_type)}], ['tone.wav', 32044, 'audio/wav'],
          'the SDK\'s upload reached the upstream as a file part of 32044 bytes')
    or diag(encode_json($t->{multipart}));
is(($parts{model} // {})->{value}, $model, '... with its model field');
like($t->{headers}{'content-type'} // '', qr{^multipart/form-data; boundary=},
     '... under the SDK\'s own multipart Content-Type');
