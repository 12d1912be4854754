// Shared helpers of the browser tests (t/browser/*.mjs): headless Debian
// Chromium driven by playwright-core, a small TAP writer, and the admin API
// with the root token for setting up. The Perl wrappers (t/browser/*.t) set
// ADMIN_URL, RELAY_URL, MOCK_URL and ADMIN_TOKEN.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const SHOTS = join(here, 'screenshots');
export const env = {
    ADMIN_URL: (process.env.ADMIN_URL || 'http://127.0.0.1:3001').replace(/\/$/, ''),
    RELAY_URL: (process.env.RELAY_URL || 'http://127.0.0.1:3000').replace(/\/$/, ''),
    MOCK_URL: (process.env.MOCK_URL || '').replace(/\/$/, ''),
    ADMIN_TOKEN: process.env.ADMIN_TOKEN || '',
};
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// launch() -> {browser, context, page, errors}; errors collects console
// errors and page errors (each {kind, text, url})
export async function launch({ width = 1366, height = 768, locale = 'en-US' } = {}) {
    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-background-networking'],
    });
    const context = await browser.newContext({ viewport: { width, height }, locale,
        colorScheme: 'light' });
    const page = await context.newPage();
    const errors = watch(page);
    // generous: a loaded CI machine is slow, and a wait ends as soon as it can
    page.setDefaultTimeout(30000);
    return { browser, context, page, errors };
}

export function watch(page) {
    const errors = [];
    page.on('console', (m) => {
        if (m.type() === 'error') errors.push({ kind: 'console', text: m.text(), url: m.location()?.url || '' });
    });
    page.on('pageerror', (e) => errors.push({ kind: 'pageerror', text: String(e && e.stack || e), url: '' }));
    page.on('response', (r) => {
        if (r.status() >= 400) errors.push({ kind: 'http', text: `${r.status()} ${r.request().method()} ${r.url()}`,
            url: r.url(), status: r.status() });
    });
    return errors;
}

// The console's "Failed to load resource" lines repeat what the 'http'
// entries say: an expected HTTP error (allow(entry) true) drops both.
export function unexpected(errors, allow = () => false) {
    const allowed = errors.filter((e) => e.kind === 'http' && allow(e));
    return errors.filter((e) => {
        if (e.kind === 'http') return !allow(e);
        if (e.kind === 'console' && /Failed to load resource/.test(e.text)) {
            return !allowed.some((a) => a.url === e.url) && !errors.some((x) => x.kind === 'http' && x.url === e.url && !allow(x));
        }
        return true;
    });
}

export async function login(page, { username, password }) {
    await page.goto(`${env.ADMIN_URL}/#/login`);
    const f = page.locator('form[data-form="login"]');
    await f.locator('input[name="username"]').fill(username);
    await f.locator('input[name="password"]').fill(password);
    await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/api/auth/login')),
        f.locator('button[data-action="login"]').click(),
    ]);
    await page.waitForSelector('main#main [data-page]:not([data-page="login"])');
}

export async function shot(page, name) {
    mkdirSync(SHOTS, { recursive: true });
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: false });
    return path;
}

// the admin API with the root token: {status, body}
export async function adminApi(method, path, body) {
    const res = await fetch(`${env.ADMIN_URL}${path}`, {
        method,
        headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}`,
            ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, body: json };
}

export async function admin(method, path, body) {
    const r = await adminApi(method, path, body);
    if (r.status < 200 || r.status > 299) {
        throw new Error(`admin API ${method} ${path} answered ${r.status}: ${JSON.stringify(r.body)}`);
    }
    return r.body;
}

// ---------------------------------------------------------------- TAP
let n = 0;
let failed = 0;
export const tap = {
    plan(k) { console.log(`1..${k}`); },
    ok(cond, name, diag) {
        n++;
        if (!cond) failed++;
        console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${String(name).replace(/\n/g, ' ')}`);
        if (!cond && diag !== undefined) tap.diag(typeof diag === 'string' ? diag : JSON.stringify(diag, null, 1));
        return !!cond;
    },
    is(got, want, name) {
        return tap.ok(got === want, name, `got: ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
    },
    diag(s) { for (const l of String(s).split('\n')) console.log(`# ${l}`); },
    done() { console.log(`1..${n}`); return failed; },
    bail(s) { console.log(`Bail out! ${s}`); },
    get count() { return n; },
    get failed() { return failed; },
};

export function uniq(prefix) {
    return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
