// genai-sdk.mjs: drives the official @google/genai SDK against the gateway
// exactly as its README shows (apiKey, and httpOptions.baseUrl pointing at
// the gateway) and prints one JSON object of what the SDK handed back;
// t/sdk/sdks.t asserts on it.
//
//   node genai-sdk.mjs BASE_URL API_KEY MODEL
import { GoogleGenAI } from '@google/genai';
import { section, report } from './report.mjs';

const [baseUrl, apiKey, model] = process.argv.slice(2);
if (!baseUrl || !apiKey || !model) {
  console.error('usage: node genai-sdk.mjs BASE_URL API_KEY MODEL');
  process.exit(2);
}
const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl } });

await section('generate', async () => {
  const r = await ai.models.generateContent({
    model, contents: '[[mock events=3]] hello world',
  });
  return { text: r.text, finish: r.candidates?.[0]?.finishReason ?? null,
           usage: r.usageMetadata ?? null };
});

await section('stream', async () => {
  const texts = [];
  let finish = null;
  let usage = null;
  const stream = await ai.models.generateContentStream({
    model, contents: '[[mock events=4]] hello world',
  });
  for await (const chunk of stream) {
    if (chunk.text) texts.push(chunk.text);
    finish = chunk.candidates?.[0]?.finishReason ?? finish;
    usage = chunk.usageMetadata ?? usage;
  }
  return { texts, finish, usage };
});

await section('count', async () => {
  const r = await ai.models.countTokens({ model, contents: 'hello big world' });
  return { totalTokens: r.totalTokens };
});

await section('bad_key', async () => {
  const bad = new GoogleGenAI({ apiKey: 'sk-nebula-not-a-key', httpOptions: { baseUrl } });
  await bad.models.generateContent({ model, contents: 'hi' });
  return { unexpected: 'no error' };
});

report();
