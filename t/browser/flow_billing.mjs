// The billing and governance flow in headless Chromium (t/browser/flow_billing.t):
// as root, signed in through the form: top up a user's wallet on the balances
// page and find the top-up in the ledger page; a request with that user's key
// through the billed gateway shows its charge in the ledger page; create a plan
// and a voucher batch for it, export the codes once; as the user (a new
// browser context) redeem a code and see the subscription; as root edit a
// keyword-block policy and watch the sandbox decide allow -> block -> allow
// (shadow). Screenshots of every page at 1366x768 and 390x844.
import { readFileSync } from 'node:fs';
import { launch, login, shot, admin, adminApi, tap, uniq, env, watch, unexpected } from './lib.mjs';

const T = uniq('u2');
const PASSWORD = 'browser-pass-0123';
const usd = (units) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(units / 500000);
const num = (n) => new Intl.NumberFormat('en-US').format(n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// HTTP answers the pages may get by design: self-service routes a server may
// not have yet, and the top-up page asking whether a provider is configured.
const allow = (e) => (e.status === 503 && /\/api\/self\/topup\//.test(e.url))
    || (e.status === 400 && /\/api\/self\/topup\//.test(e.url));

async function waitFor(fn, ms = 10000) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v || Date.now() > end) return v;
        await sleep(200);
    }
}

// fill the fields of the form (name -> value) in a locator
async function fill(scope, values) {
    for (const [name, v] of Object.entries(values)) {
        const el = scope.locator(`[name="${name}"]`).first();
        const tag = await el.evaluate((x) => x.tagName.toLowerCase() + (x.type ? `:${x.type}` : ''));
        if (tag.startsWith('select')) await el.selectOption(String(v));
        else if (tag === 'input:checkbox') await el.setChecked(!!v);
        else await el.fill(String(v));
    }
}

async function main() {
    // ---- setup through the API (root token) ----
    const model = `u2-model-${T}`;
    await admin('PUT', '/api/billing/prices', { model, model_ratio: '1', completion_ratio: '1' });
    const ch = (await admin('POST', '/api/channels', {
        name: `u2-ch-${T}`, kind: 'openai', base_url: `${env.MOCK_URL}/_mock/tag=u2-${T}`,
        keys: [`sk-upstream-${T}`], models: [model], channel_groups: ['default'] })).data;
    const rootName = `u2root-${T}`;
    await admin('POST', '/api/users', { username: rootName, password: PASSWORD, role: 'root' });
    const userName = `u2user-${T}`;
    const user = (await admin('POST', '/api/users', { username: userName, password: PASSWORD, role: 'user' })).data;
    const key = (await admin('POST', '/api/keys', { user_id: user.id, name: `u2-key-${T}`, unlimited_quota: true })).data;
    tap.ok(ch.id && user.id && key.key, 'setup: a priced model, a channel on the mock, a user and its key');

    const { browser, context, page, errors } = await launch();
    try {
        // ---- root signs in through the form ----
        await login(page, { username: rootName, password: PASSWORD });
        tap.ok(true, 'root signed in through the login form');

        // ---- top up the user's wallet on the balances page ----
        await page.goto(`${env.ADMIN_URL}/#/accounts`);
        await page.waitForSelector('[data-page="accounts"] .list-body > *:not(.loading)');
        await page.click('[data-page="accounts"] [data-action="topup-owner"]');
        const tf = page.locator('form[data-form="topup"]');
        await fill(tf, { owner_kind: 'user', owner_id: user.id, amount: '2', reason: `browser top-up ${T}` });
        const [topRes] = await Promise.all([
            page.waitForResponse((r) => r.url().endsWith(`/api/users/${user.id}/topup`)),
            tf.locator('button[data-action="topup"]').click(),
        ]);
        tap.is(topRes.status(), 201, 'the top-up form posted the movement (201)');
        const wallet = (await admin('GET', `/api/users/${user.id}/account`)).data;
        tap.is(wallet.balance, 1000000, 'the wallet holds 2 USD = 1000000 quota units');
        await shot(page, 'billing-accounts');

        // ---- the ledger page shows the top-up ----
        await page.goto(`${env.ADMIN_URL}/#/ledger?account_id=${wallet.id}`);
        const topRow = page.locator('table[data-table="ledger"] tbody tr', { hasText: `browser top-up ${T}` });
        await topRow.first().waitFor();
        const topText = await topRow.first().innerText();
        tap.ok(topText.includes(usd(1000000)) && /top-up/.test(topText),
            'the ledger page lists the top-up: kind, $2.00, the reason', topText);

        // ---- a request with the user's key: its charge in the ledger page ----
        const res = await fetch(`${env.RELAY_URL}/v1/chat/completions`, {
            method: 'POST', headers: { Authorization: `Bearer ${key.key}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello from the browser test' }] }) });
        const reqId = res.headers.get('x-request-id');
        await res.text();
        tap.ok(res.status === 200 && reqId, `the billed gateway answered the key's request (${res.status}, ${reqId})`);
        const charge = await waitFor(async () => {
            const l = await admin('GET', `/api/billing/ledger?account_id=${wallet.id}&kind=consume`);
            return l.data.find((r) => r.request_id === reqId);
        });
        tap.ok(charge && charge.amount < 0, 'the ledger holds the request\'s charge', charge);
        await page.goto(`${env.ADMIN_URL}/#/ledger?account_id=${wallet.id}&request_id=${reqId}`);
        const chargeRow = page.locator(`table[data-table="ledger"] tbody tr:has(code[title="${reqId}"])`);
        await chargeRow.first().waitFor();
        const chargeText = await chargeRow.first().innerText();
        const amountTitle = await chargeRow.first().locator('td[data-col="amount"] .money').getAttribute('title');
        tap.ok(chargeText.includes('usage') && amountTitle === `${num(charge ? charge.amount : 0)} quota units`
            && (await page.locator('table[data-table="ledger"] tbody tr').count()) === 1,
        `the ledger page, filtered by the request id, shows its charge alone (${amountTitle})`, chargeText);
        await shot(page, 'billing-ledger');

        // verify: the reconcile result shown plainly
        await page.click('[data-page="ledger"] [data-action="verify"]');
        const vr = page.locator('.verify-result[data-ok]');
        await vr.waitFor();
        tap.is(await vr.getAttribute('data-ok'), 'true', 'verify: every account matches its ledger');
        await shot(page, 'billing-ledger-verify');
        await page.keyboard.press('Escape');

        // ---- a plan, then a voucher batch for it; export the codes once ----
        const planName = `u2-plan-${T}`;
        await page.goto(`${env.ADMIN_URL}/#/plans`);
        await page.waitForSelector('[data-page="plans"] .list-body > *:not(.loading)');
        await page.click('[data-page="plans"] [data-action="create"]');
        const pf = page.locator('form[data-form="plan"]');
        await fill(pf, { name: planName, quota_per_period: '750000', metric: 'quota', period: 'month' });
        await Promise.all([
            page.waitForResponse((r) => r.url().endsWith('/api/billing/plans') && r.request().method() === 'POST'),
            pf.locator('button[data-action="save"]').click(),
        ]);
        // the list is in id order and the suite may have made many plans before
        await page.locator('[data-page="plans"] input[name="q"]').fill(planName);
        await page.locator('[data-page="plans"] button[data-action="apply"]').click();
        await page.locator('table[data-table="plans"] tbody tr', { hasText: planName }).first().waitFor();
        const plan = (await admin('GET', `/api/billing/plans?q=${planName}`)).data[0];
        tap.ok(plan && plan.quota_per_period === 750000 && plan.status === 'active', 'the plan made in the UI is stored', plan);
        await shot(page, 'billing-plans');

        await page.goto(`${env.ADMIN_URL}/#/vouchers`);
        await page.waitForSelector('[data-page="vouchers"] .list-body > *:not(.loading)');
        await page.click('[data-page="vouchers"] [data-action="create"]');
        const vf = page.locator('form[data-form="voucher"]');
        await fill(vf, { name: `u2-vb-${T}`, kind: 'plan', plan_id: String(plan.id), plan_days: '30', codes: '2', per_user: '1' });
        const [vres] = await Promise.all([
            page.waitForResponse((r) => r.url().endsWith('/api/vouchers') && r.request().method() === 'POST'),
            vf.locator('button[data-action="save"]').click(),
        ]);
        const batch = (await vres.json()).data;
        tap.ok(vres.status() === 201 && batch.kind === 'plan' && batch.plan_id === plan.id && batch.codes === 2,
            'the voucher batch was created for the plan', batch);
        const detail = page.locator(`.voucher-detail[data-batch="${batch.id}"]`);
        const [download] = await Promise.all([
            page.waitForEvent('download'),
            detail.locator('[data-action="export"]').click(),
        ]);
        const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
        const codes = csv.slice(1).map((l) => l.split(',')[0]);
        tap.ok(csv[0] === 'code,hint,uses,max_uses,status' && codes.length === 2 && codes.every((c) => c.length >= 16),
            `the export downloaded the two codes as CSV (${download.suggestedFilename()})`, csv);
        await detail.locator('.badge', { hasText: 'already exported' }).first().waitFor();
        tap.ok(!(await detail.locator('[data-action="export"]').count()), 'the batch now says "already exported", no export button');
        const again = await adminApi('GET', `/api/vouchers/${batch.id}/export`);
        tap.is(again.status, 410, 'a second export is refused by the server (410)');
        await shot(page, 'billing-voucher-detail');
        await page.keyboard.press('Escape');

        // ---- the user redeems a code (a browser context of its own) ----
        const uctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'en-US' });
        const upage = await uctx.newPage();
        const uerrors = watch(upage);
        await login(upage, { username: userName, password: PASSWORD });
        await upage.goto(`${env.ADMIN_URL}/#/self-redeem`);
        const rf = upage.locator('form[data-form="redeem"]');
        await rf.locator('input[name="code"]').fill(codes[0]);
        await rf.locator('button[data-action="redeem"]').click();
        const out = upage.locator('[data-redeem="result"][data-outcome="ok"]');
        await out.waitFor();
        const subs = (await admin('GET', `/api/billing/subscriptions?subject_kind=user&subject_id=${user.id}`)).data;
        tap.ok(subs.length === 1 && subs[0].plan_id === plan.id && subs[0].status === 'active',
            'the redemption subscribed the user to the plan', subs);
        const outText = await out.innerText();
        tap.ok(subs.length === 1 && outText.includes(`#${subs[0].id}`) && outText.includes(num(750000)),
            'the page shows the subscription and its allowance', outText);
        await shot(upage, 'self-redeem-ok');
        // the same code again: the server's refusal, as it wrote it
        await rf.locator('input[name="code"]').fill(codes[0]);
        const [refused] = await Promise.all([
            upage.waitForResponse((r) => r.url().endsWith('/api/self/redeem')),
            rf.locator('button[data-action="redeem"]').click(),
        ]);
        const refusal = (await refused.json()).error;
        const ferr = rf.locator('.field-error:not([hidden])');
        await ferr.waitFor();
        tap.ok(refused.status() === 409 && (await ferr.innerText()).includes(refusal.message),
            `a used code: the server's message next to the field ("${refusal.message}")`);
        await shot(upage, 'self-redeem-refused');
        await upage.goto(`${env.ADMIN_URL}/#/self-balance`);
        const avail = upage.locator('[data-stat="available"] .stat-value');
        await avail.waitFor();
        const w2 = (await admin('GET', `/api/users/${user.id}/account`)).data;
        tap.is(await avail.innerText(), usd(w2.available), 'the balance page shows the wallet\'s available amount');
        await shot(upage, 'self-balance');
        // top-up: the test server configures no payment provider, so each
        // disappears once the server says so, with its message
        await upage.goto(`${env.ADMIN_URL}/#/self-topup`);
        await upage.locator('form[data-form="topup-stripe"] input[name="amount"]').fill('10');
        const [st] = await Promise.all([
            upage.waitForResponse((r) => r.url().endsWith('/api/self/topup/stripe')),
            upage.click('form[data-form="topup-stripe"] [data-action="pay-stripe"]'),
        ]);
        const stErr = (await st.json()).error || {};
        await upage.locator('[data-page="self-topup"] .note', { hasText: stErr.message || '-' }).first().waitFor();
        tap.ok(st.status() === 503 && stErr.code === 'payments_unconfigured'
            && (await upage.locator('[data-provider="stripe"]').count()) === 0
            && (await upage.locator('[data-provider="epay"]').count()) === 1,
        'self-topup: Stripe, not configured, is hidden with the server\'s message; EPay stays');
        await upage.locator('form[data-form="topup-epay"] input[name="amount"]').fill('10');
        await upage.click('form[data-form="topup-epay"] [data-action="pay-epay"]');
        await upage.locator('[data-page="self-topup"] .note', { hasText: 'Payments are not configured' }).waitFor();
        tap.ok((await upage.locator('[data-provider]').count()) === 0, 'self-topup: with neither provider the page says so');
        await shot(upage, 'self-topup-unconfigured');
        const allowUser = (e) => allow(e) || (e.status === 409 && e.url.endsWith('/api/self/redeem'));
        tap.ok(unexpected(uerrors, allowUser).length === 0, 'the user\'s pages: no console or page errors', unexpected(uerrors, allowUser));
        await uctx.close();

        // ---- a keyword-block policy: the sandbox follows the editor ----
        const word = `zanzibar${T}`;
        const pol = (await admin('POST', '/api/policies', { name: `u2-pol-${T}`, priority: 900,
            match: [{ type: 'keywords', values: [`placeholder${T}`] }],
            action: { type: 'block', status: 403, message: 'Blocked by the browser test.' } })).data;
        await page.goto(`${env.ADMIN_URL}/#/policies?edit=${pol.id}`);
        const result = page.locator('[data-sandbox="result"]');
        await page.fill('textarea[name="prompt"]', `please tell me about ${word} today`);
        await page.waitForSelector('[data-sandbox="result"][data-decision="allow"]');
        tap.ok(true, 'sandbox: the prompt without the keyword is allowed');
        await shot(page, 'gov-policy-allow');
        await page.fill('input[name="match.0.values"]', `placeholder${T}, ${word}`);
        await page.waitForSelector('[data-sandbox="result"][data-decision="block"]');
        tap.is(await result.getAttribute('data-policy'), pol.name, 'sandbox: with the keyword added the edited policy blocks');
        tap.ok((await result.locator('mark', { hasText: word }).count()) === 1, 'sandbox: the keyword is highlighted in the text');
        await shot(page, 'gov-policy-block');
        await page.check('input[name="shadow"]');
        await page.waitForSelector('[data-sandbox="result"][data-decision="allow"]');
        const hitRow = result.locator('table[data-table="policy-hits"] tbody tr', { hasText: pol.name });
        tap.ok((await hitRow.count()) === 1 && /yes/.test(await hitRow.innerText()),
            'sandbox: in shadow mode the policy still holds but the decision is allow');
        await Promise.all([
            page.waitForResponse((r) => r.url().endsWith(`/api/policies/${pol.id}`) && r.request().method() === 'PATCH'),
            page.click('form[data-form="policy"] [data-action="save"]'),
        ]);
        const stored = (await admin('GET', `/api/policies/${pol.id}`)).data;
        tap.ok(stored.shadow === true && stored.match[0].values.includes(word), 'save: the stored policy has the keyword and shadow on', stored);
        await shot(page, 'gov-policy-shadow');
        await admin('DELETE', `/api/policies/${pol.id}`);
        // a policy declared in httpd.conf (t/conf/extra.conf.in) opens read-only; the sandbox still works
        await page.goto(`${env.ADMIN_URL}/#/policies?edit=cfg-adm-stub`);
        const cf = page.locator('form[data-form="policy"]');
        await cf.waitFor();
        tap.ok(await cf.locator('input[name="name"]').isDisabled() && (await cf.locator('[data-action="save"]').count()) === 0,
            'a declared policy opens read-only (no save)');
        await page.fill('textarea[name="prompt"]', 'this text holds cfg-forbidden');
        await page.waitForSelector('[data-sandbox="result"][data-decision="block"]');
        tap.is(await result.getAttribute('data-policy'), 'cfg-adm-stub', 'sandbox: the declared policy blocks its keyword');

        // ---- every page of this helper, both widths: screenshots, no errors ----
        const pages = ['plans', 'subscriptions', 'vouchers', 'accounts', 'ledger', 'prices', 'topups', 'policies', 'audit',
            'ratelimits', 'self-balance', 'self-keys', 'self-usage', 'self-redeem', 'self-topup'];
        errors.length = 0;
        for (const [w, h] of [[1366, 768], [390, 844]]) {
            await page.setViewportSize({ width: w, height: h });
            for (const id of pages) {
                await page.goto(`${env.ADMIN_URL}/#/${id}`);
                await page.waitForSelector(`[data-page="${id}"]`);
                await page.waitForFunction(() => !document.querySelector('main .loading'), null, { timeout: 10000 }).catch(() => {});
                await shot(page, `u2-${id}-${w}`);
            }
        }
        const bad = unexpected(errors, allow);
        tap.ok(bad.length === 0, 'root: every page renders at 1366x768 and 390x844 without console errors', bad);
        await page.setViewportSize({ width: 1366, height: 768 });
        // the language switch reaches these pages
        await page.goto(`${env.ADMIN_URL}/#/ledger`);
        await page.selectOption('select[name="lang"]', 'zh-CN');
        await page.waitForSelector('[data-page="ledger"] h1:has-text("流水")');
        tap.ok(true, 'zh-CN: the ledger page switches language');
        await shot(page, 'billing-ledger-zh');
        await page.selectOption('select[name="lang"]', 'en');
    } finally {
        await browser.close();
    }
}

try {
    await main();
} catch (e) {
    tap.ok(false, `the flow ran to its end: ${e.message}`);
    tap.diag(e.stack || String(e));
}
process.exit(tap.done() ? 1 : 0);
