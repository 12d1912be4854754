// Realtime API sessions through the gateway, driven by real WebSocket
// clients: the `ws` package as a browser would use it (the key as the
// subprotocol "openai-insecure-api-key.<key>", ws://), and the official
// openai SDK's OpenAIRealtimeWS (Authorization header, always wss://).
// Usage: node realtime.mjs '<json config>'; prints one JSON report line.
// t/sdk/realtime.t asserts on the report and on the ledger.
import fs from 'node:fs';
import WebSocket from 'ws';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const cfg = JSON.parse(process.argv[2]);
const version = (pkg) => JSON.parse(fs.readFileSync(
  new URL(`./node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version;
const report = { ws_version: version('ws'), sdk_version: version('openai') };

function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))]);
}

const itemCreate = {
  type: 'conversation.item.create',
  item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'one two three' }] },
};

// the browser's way: ws://, the key as a subprotocol, events both ways
function browser() {
  return new Promise((resolve) => {
    const out = { types: [], text: '' };
    const ws = new WebSocket(`${cfg.ws_url}/v1/realtime?model=${encodeURIComponent(cfg.model)}`,
                             ['realtime', `openai-insecure-api-key.${cfg.key}`]);
    ws.on('open', () => {
      out.protocol = ws.protocol;
      out.extensions = ws.extensions;
    });
    ws.on('message', (data, isBinary) => {
      const ev = JSON.parse(data.toString());
      out.types.push(ev.type);
      if (isBinary) out.binary = true;
      if (ev.type === 'session.created') {
        out.session_model = ev.session.model;
        ws.send(JSON.stringify({ type: 'session.update',
                                 session: { type: 'realtime', instructions: '[[mock events=3]]' } }));
        ws.send(JSON.stringify(itemCreate));
        ws.send(JSON.stringify({ type: 'response.create' }));
      } else if (ev.type === 'conversation.item.created') {
        out.item_text = ev.item.content[0].text;
      } else if (ev.type === 'response.output_text.delta') {
        out.text += ev.delta;
      } else if (ev.type === 'response.done') {
        out.usage = ev.response.usage;
        ws.ping('still-there');
      }
    });
    ws.on('pong', (data) => {
      out.pong = data.toString();
      ws.close(1000, 'done');
    });
    ws.on('close', (code) => { out.close_code = code; resolve(out); });
    ws.on('error', (err) => { out.error = err.message; });
    ws.on('unexpected-response', (req, res) => { out.error = `HTTP ${res.statusCode}`; ws.terminate(); });
  });
}

// refused before the upgrade: the HTTP status the client sees
function refused(key) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${cfg.ws_url}/v1/realtime?model=${encodeURIComponent(cfg.model)}`,
                             { headers: { Authorization: `Bearer ${key}` } });
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let error = null;
        try { error = JSON.parse(body).error; } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, error });
      });
    });
    ws.on('open', () => { ws.close(); resolve({ status: 101 }); });
    ws.on('error', (err) => resolve({ status: 0, message: err.message }));
  });
}

// the official SDK: OpenAIRealtimeWS over wss:// to the TLS gateway
function sdk() {
  return new Promise((resolve) => {
    const out = { types: [], text: '', errors: [] };
    const client = new OpenAI({ apiKey: cfg.tls_key, baseURL: cfg.tls_base });
    const rt = new OpenAIRealtimeWS({ model: cfg.tls_model,
                                      options: { ca: fs.readFileSync(cfg.ca_file) } }, client);
    out.url = rt.url.toString();
    rt.on('event', (ev) => out.types.push(ev.type));
    rt.on('error', (err) => out.errors.push(err.message));
    rt.on('session.created', (ev) => {
      out.session_model = ev.session.model;
      rt.send({ type: 'session.update', session: { type: 'realtime', instructions: 'be brief [[mock events=5]]' } });
      rt.send(itemCreate);
      rt.send({ type: 'response.create' });
    });
    rt.on('response.output_text.delta', (ev) => { out.text += ev.delta; });
    rt.on('response.done', (ev) => {
      out.usage = ev.response.usage;
      rt.close({ code: 1000, reason: 'done' });
    });
    rt.socket.on('close', (code) => { out.close_code = code; resolve(out); });
  });
}

const sections = { browser, sdk, refused: () => refused('sk-not-a-key') };
for (const name of cfg.sections) {
  try {
    report[name] = await withTimeout(sections[name](), 20000, name);
  } catch (err) {
    report[name] = { error: err.message };
  }
}
console.log(JSON.stringify(report));
process.exit(0);
