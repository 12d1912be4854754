// report.mjs: what the SDK scripts share: one JSON report of named
// sections, each run on its own so that one the SDK rejects does not hide
// the others (it reports { error: { name, status, message } }).
export const out = {};

export function describe(err) {
  return { name: err?.constructor?.name ?? typeof err, status: err?.status ?? null,
           message: String(err?.message ?? err) };
}

export async function section(name, fn) {
  try {
    out[name] = await fn();
  } catch (err) {
    out[name] = { error: describe(err) };
  }
}

export function report() {
  process.stdout.write(JSON.stringify(out) + '\n');
}
