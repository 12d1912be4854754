// anthropic-sdk.mjs: drives the official @anthropic-ai/sdk against the
// gateway exactly as its README shows (baseURL and apiKey changed, nothing
// else) and prints one JSON object of what the SDK handed back; t/sdk/sdks.t
// asserts on it. Mock controls ride in the prompt as [[mock ...]] markers.
//
//   node anthropic-sdk.mjs BASE_URL API_KEY MODEL
//
// Each section is caught on its own: a failure reports { error } and the
// others still run.
import Anthropic from '@anthropic-ai/sdk';
import { section, report } from './report.mjs';

const [baseURL, apiKey, model] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  console.error('usage: node anthropic-sdk.mjs BASE_URL API_KEY MODEL');
  process.exit(2);
}
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });

const ask = (controls) => [{ role: 'user', content: `[[mock ${controls}]] hello world` }];

await section('create', async () => {
  const msg = await client.messages.create({
    model, max_tokens: 100, system: 'be brief', messages: ask('events=3'),
  });
  return { type: msg.type, role: msg.role, stop_reason: msg.stop_reason,
           text: msg.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
           usage: msg.usage };
});

await section('stream', async () => {
  const deltas = [];
  const stream = client.messages.stream({ model, max_tokens: 100, messages: ask('events=4') });
  stream.on('text', (t) => deltas.push(t));
  const msg = await stream.finalMessage();
  return { deltas, stop_reason: msg.stop_reason, usage: msg.usage,
           text: msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('') };
});

await section('raw_stream', async () => {
  const types = [];
  const stream = await client.messages.create({
    model, max_tokens: 100, messages: ask('events=2'), stream: true,
  });
  for await (const ev of stream) types.push(ev.type);
  return { types };
});

await section('count', async () => {
  const r = await client.messages.countTokens({ model, messages: ask('events=1') });
  return { input_tokens: r.input_tokens };
});

await section('bad_key', async () => {
  const bad = new Anthropic({ baseURL, apiKey: 'sk-nebula-not-a-key', maxRetries: 0 });
  await bad.messages.create({ model, max_tokens: 10, messages: ask('events=1') });
  return { unexpected: 'no error' };
});

report();
