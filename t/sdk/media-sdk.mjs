// media-sdk.mjs: the official `openai` SDK's media calls against the gateway
// (baseURL and apiKey changed only): images.generate, audio.speech.create
// (read back as an ArrayBuffer), audio.transcriptions.create with a small
// generated WAV (toFile: a multipart upload) in json and verbose_json, and
// audio.translations.create; prints one JSON object for t/sdk/media.t.
//
//   node media-sdk.mjs BASE_URL API_KEY MODEL
import OpenAI, { toFile } from 'openai';
import { createHash } from 'node:crypto';
import { section, report } from './report.mjs';

const [baseURL, apiKey, model] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  console.error('usage: node media-sdk.mjs BASE_URL API_KEY MODEL');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

// A PCM WAV of `seconds` of 8 kHz 16-bit mono silence with a 440 Hz tone:
// 16000 bytes a second of samples, plus the 44-byte header.
function wav(seconds) {
  const rate = 8000, samples = rate * seconds, buf = Buffer.alloc(44 + samples * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);          // PCM
  buf.writeUInt16LE(1, 22);          // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) {
    buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + 2 * i);
  }
  return buf;
}

await section('image', async () => {
  const r = await client.images.generate({ model, prompt: 'a red fox', n: 2, size: '256x256' });
  return { created: typeof r.created, urls: r.data.map((d) => d.url),
           revised: r.data.map((d) => d.revised_prompt) };
});

await section('speech', async () => {
  const res = await client.audio.speech.create({ model, voice: 'alloy', input: 'hello world',
                                                 response_format: 'mp3' });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { type: res.headers.get('content-type'), length: bytes.length,
           sha256: createHash('sha256').update(bytes).digest('hex') };
});

const audio = wav(2);
await section('transcription', async () => {
  const r = await client.audio.transcriptions.create({
    model, file: await toFile(audio, 'tone.wav', { type: 'audio/wav' }),
  });
  return { text: r.text, usage: r.usage };
});

await section('verbose', async () => {
  const r = await client.audio.transcriptions.create({
    model, file: await toFile(audio, 'tone.wav', { type: 'audio/wav' }),
    response_format: 'verbose_json', language: 'fr',
  });
  return { text: r.text, language: r.language, duration: r.duration,
           segments: r.segments?.length };
});

await section('translation', async () => {
  const r = await client.audio.translations.create({
    model, file: await toFile(audio, 'tone.wav', { type: 'audio/wav' }),
  });
  return { text: r.text };
});

report();
