// responses-sdk.mjs: the official `openai` SDK's Responses API against the
// gateway (baseURL and apiKey changed only): responses.create and the
// responses.stream helper; prints one JSON object for t/sdk/sdks.t.
//
//   node responses-sdk.mjs BASE_URL API_KEY MODEL
import OpenAI from 'openai';
import { section, report } from './report.mjs';

const [baseURL, apiKey, model] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  console.error('usage: node responses-sdk.mjs BASE_URL API_KEY MODEL');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

await section('create', async () => {
  const r = await client.responses.create({
    model, input: '[[mock events=3]] hello world', instructions: 'be brief',
  });
  return { object: r.object, status: r.status, output_text: r.output_text, usage: r.usage };
});

await section('stream', async () => {
  const deltas = [];
  const stream = client.responses.stream({ model, input: '[[mock events=4]] hello world' });
  stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
  const r = await stream.finalResponse();
  return { deltas, status: r.status, output_text: r.output_text, usage: r.usage };
});

report();
