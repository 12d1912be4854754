// openai-sdk.mjs: drives the official `openai` npm SDK against the gateway and
// prints one JSON object of what the SDK handed back (t/sdk/openai.t asserts on
// it). The client is built exactly as a user would point it at NebulaGate:
// baseURL and apiKey, nothing else. Mock controls ride in the prompt as
// [[mock ...]] markers, so no request option or header is added either.
//
//   node openai-sdk.mjs BASE_URL API_KEY TAG
//
// Each section is caught on its own: a section the SDK rejects reports
// { error: { name, status, message } } and the others still run.
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const [baseURL, apiKey, tag] = process.argv.slice(2);
if (!baseURL || !apiKey || !tag) {
  console.error('usage: node openai-sdk.mjs BASE_URL API_KEY TAG');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey });
const mark = (controls = '') => `[[mock ${controls ? `${controls},` : ''}tag=${tag}]]`;
const out = {
  sdk_version: JSON.parse(
    readFileSync(new URL('./node_modules/openai/package.json', import.meta.url), 'utf8'),
  ).version,
  node_version: process.versions.node,
};

function describe(err) {
  return {
    name: err?.constructor?.name ?? typeof err,
    status: err?.status ?? null,
    code: err?.code ?? null,
    type: err?.type ?? null,
    message: String(err?.message ?? err),
  };
}

async function section(name, fn) {
  try {
    out[name] = await fn();
  } catch (err) {
    out[name] = { error: describe(err) };
  }
}

// Iterates a stream, noting when each chunk reached the SDK's consumer.
async function drain(stream) {
  const t0 = performance.now();
  const chunks = [];
  for await (const chunk of stream) {
    const choice = chunk.choices?.[0];
    chunks.push({
      ms: performance.now() - t0,
      object: chunk.object,
      choices: chunk.choices?.length ?? null,
      role: choice?.delta?.role ?? null,
      content: choice?.delta?.content ?? null,
      finish_reason: choice?.finish_reason ?? null,
      usage: chunk.usage ?? null,
    });
  }
  const content = chunks.filter((c) => c.content);
  const withUsage = chunks.filter((c) => c.usage);
  return {
    chunks: chunks.length,
    objects: [...new Set(chunks.map((c) => c.object))],
    role: chunks.find((c) => c.role)?.role ?? null,
    text: content.map((c) => c.content).join(''),
    content_chunks: content.length,
    spread_ms: content.length ? content[content.length - 1].ms - content[0].ms : 0,
    finish_reason: chunks.map((c) => c.finish_reason).filter(Boolean).pop() ?? null,
    usage_chunks: withUsage.length,
    usage: withUsage.length ? withUsage[withUsage.length - 1].usage : null,
    usage_chunk_is_last: withUsage.length ? chunks[chunks.length - 1].usage !== null : null,
    usage_chunk_choices: withUsage.length ? withUsage[withUsage.length - 1].choices : null,
  };
}

await section('chat', async () => {
  const { data, response } = await client.chat.completions
    .create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `one two three ${mark('events=3')}` }],
    })
    .withResponse();
  return {
    http_status: response.status,
    object: data.object,
    id: data.id,
    model: data.model,
    role: data.choices?.[0]?.message?.role,
    content: data.choices?.[0]?.message?.content,
    finish_reason: data.choices?.[0]?.finish_reason,
    usage: data.usage,
    request_id: data._request_id ?? null,
  };
});

await section('stream', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `stream please ${mark('events=5,delay_ms=200')}` }],
    stream: true,
    stream_options: { include_usage: true },
  });
  return drain(stream);
});

await section('stream_no_usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `no usage please ${mark('events=2')}` }],
    stream: true,
  });
  return drain(stream);
});

// the SDK's stream helper, which rebuilds the whole completion from the chunks
await section('stream_helper', async () => {
  const runner = client.chat.completions.stream({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `helper ${mark('events=4')}` }],
    stream_options: { include_usage: true },
  });
  const final = await runner.finalChatCompletion();
  return {
    content: final.choices?.[0]?.message?.content,
    role: final.choices?.[0]?.message?.role,
    finish_reason: final.choices?.[0]?.finish_reason,
    usage: final.usage ?? null,
  };
});

// The SDK asks for base64 unless told otherwise and decodes it into floats;
// the same request with encoding_format "float" must give the same numbers.
await section('embeddings', async () => {
  const input = [`alpha beta ${mark()}`, 'gamma'];
  const dflt = await client.embeddings.create({ model: 'text-embedding-3-small', input });
  const flt = await client.embeddings.create({
    model: 'text-embedding-3-small',
    input,
    encoding_format: 'float',
  });
  const sized = await client.embeddings.create({
    model: 'text-embedding-3-small',
    input: `delta ${mark()}`,
    dimensions: 16,
  });
  const vectors = (r) => r.data.map((d) => Array.from(d.embedding));
  return {
    object: dflt.object,
    model: dflt.model,
    count: dflt.data.length,
    indexes: dflt.data.map((d) => d.index),
    lengths: dflt.data.map((d) => d.embedding.length),
    all_numbers: vectors(dflt).flat().every((x) => typeof x === 'number' && Number.isFinite(x)),
    in_range: vectors(dflt).flat().every((x) => x >= -1 && x <= 1),
    base64_equals_float: JSON.stringify(vectors(dflt)) === JSON.stringify(vectors(flt)),
    float_lengths: flt.data.map((d) => d.embedding.length),
    usage: dflt.usage,
    dimensions_16: sized.data[0]?.embedding.length,
  };
});

await section('models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  const one = await client.models.retrieve('gpt-4o-mini');
  return { ids, retrieved: { id: one.id, object: one.object, owned_by: one.owned_by } };
});

// errors come back as the SDK's typed exceptions
await section('bad_key', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'bad-key-for-the-sdk-test' });
  try {
    await bad.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `hi ${mark('events=1')}` }],
    });
    return { thrown: null };
  } catch (err) {
    return {
      thrown: describe(err),
      is_authentication_error: err instanceof OpenAI.AuthenticationError,
    };
  }
});

await section('unknown_model', async () => {
  try {
    await client.models.retrieve('no-such-model');
    return { thrown: null };
  } catch (err) {
    return { thrown: describe(err), is_not_found_error: err instanceof OpenAI.NotFoundError };
  }
});

process.stdout.write(JSON.stringify(out) + '\n');
