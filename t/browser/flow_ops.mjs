// The operator's flow through the admin UI: sign in through the form; create
// a channel on the mock provider; create a client key and read it from the
// one-time secret box; call the gateway with that key from node; find the
// request in the logs page (filtered by the key) and open its detail; switch
// the language to zh-CN and back.
import { launch, login, shot, admin, adminApi, unexpected, tap, uniq, env } from './lib.mjs';

const PASSWORD = 'browser-test-password-1';
const tag = uniq('uiflow');
const model = `ui-model-${tag}`;
const group = `g${tag}`;

const optional = [];
for (const [path, q] of [['/api/stats/summary', '?by=none'], ['/api/settings', '']]) {
    if ((await adminApi('GET', path + q)).status === 404) optional.push(path);
}
const allow = (e) => e.status === 404 && optional.some((p) => new URL(e.url).pathname === p);

// setup through the API: the operator, the key's owner, a group of this test
// alone (so that no other test's channel serves the request)
const rootName = uniq('uiops');
await admin('POST', '/api/users', { username: rootName, password: PASSWORD, role: 'root' });
const owner = (await admin('POST', '/api/users', { username: uniq('uiowner'), role: 'user' })).data;
await admin('POST', '/api/groups', { name: group });

const { browser, page, errors } = await launch({ width: 1366, height: 768 });
const noErrors = (what) => {
    const bad = unexpected(errors, allow);
    tap.ok(bad.length === 0, `${what}: no console, page or HTTP error`, bad);
    errors.length = 0;
};
try {
    // 1. sign in through the form (a wrong password first: the form says so)
    await page.goto(`${env.ADMIN_URL}/`);
    await page.waitForSelector('form[data-form="login"]');
    tap.ok(/#\/login/.test(page.url()), 'signed out, the app opens the login page');
    errors.length = 0;
    await page.fill('form[data-form="login"] input[name="username"]', rootName);
    await page.fill('form[data-form="login"] input[name="password"]', 'not-the-password');
    await page.click('form[data-form="login"] button[data-action="login"]');
    await page.waitForSelector('form[data-form="login"] .form-error:not([hidden])');
    tap.is(await page.innerText('form[data-form="login"] .form-error'), 'Wrong username or password.',
        'a wrong password: the form shows the error');
    tap.ok(errors.length > 0 && errors.every((e) => e.status === 401 || /401/.test(e.text)),
        'the only errors meanwhile are the refused sign-in (401)', errors);
    errors.length = 0;
    await login(page, { username: rootName, password: PASSWORD });
    tap.ok(await page.locator('main [data-page="dashboard"]').isVisible(), 'signed in: the dashboard shows');
    tap.ok(!(await page.evaluate(() => document.cookie)).includes('nebula_session'),
        'the session cookie is not readable by the page (HttpOnly)');

    // 2. a channel on the mock provider
    await page.click('#sidenav a[data-nav="channels"]');
    await page.waitForSelector('main [data-page="channels"]');
    // the dialog by keyboard: focus starts inside, Tab stays inside, Escape
    // closes it and gives the focus back to the button that opened it
    const createBtn = page.locator('main [data-page="channels"] button[data-action="create"]');
    await createBtn.focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('[role="dialog"] form[data-form="channel"]');
    const inDialog = () => page.evaluate(() => !!document.activeElement.closest('[role="dialog"]'));
    let inside = await inDialog();
    for (let i = 0; i < 40 && inside; i++) {
        await page.keyboard.press(i % 3 === 2 ? 'Shift+Tab' : 'Tab');
        inside = await inDialog();
    }
    tap.ok(inside, 'the channel dialog keeps the keyboard focus inside while tabbing');
    await page.keyboard.press('Escape');
    await page.waitForSelector('[role="dialog"]', { state: 'detached' });
    tap.ok(await createBtn.evaluate((b) => b === document.activeElement),
        'Escape closes the dialog and the focus returns to its button');
    await createBtn.click();
    const cf = page.locator('form[data-form="channel"]');
    await cf.waitFor();
    await cf.locator('input[name="name"]').fill(tag);
    await cf.locator('select[name="kind"]').selectOption('openai');
    await cf.locator('input[name="base_url"]').fill(`${env.MOCK_URL}/_mock/tag=${tag}`);
    await cf.locator('[name="models"]').fill(model);
    await cf.locator('[name="channel_groups"]').fill(group);
    await cf.locator('input[name="priority"]').fill('5');
    await cf.locator('input[name="weight"]').fill('3');
    await cf.locator('textarea[name="keys"]').fill(`sk-upstream-${tag}`);
    await shot(page, 'flow-channel-form');
    await cf.locator('button[data-action="save"]').click();
    await cf.waitFor({ state: 'detached' });
    // the list is in id order and the suite may have made many channels
    // before: find ours with the name filter
    await page.locator('main [data-page="channels"] input[name="q"]').fill(tag);
    await page.locator('main [data-page="channels"] button[data-action="apply"]').click();
    const row = page.locator('table[data-table="channels"] tr', { hasText: tag });
    await row.waitFor();
    const chans = (await admin('GET', `/api/channels?q=${tag}`)).data;
    tap.ok(chans.length === 1 && chans[0].kind === 'openai' && chans[0].models.join() === model
        && chans[0].channel_groups.join() === group && chans[0].priority === 5 && chans[0].weight === 3
        && chans[0].key_count === 1 && chans[0].base_url === `${env.MOCK_URL}/_mock/tag=${tag}`,
    'the channel form made the channel: kind, base URL, model, group, priority, weight, one key', chans);
    tap.ok((await row.innerText()).includes('Enabled') && (await row.innerText()).includes('1 / 1'),
        'the list shows it enabled with 1 of 1 keys');
    // its test button runs one request through the mock
    await row.locator('button[data-action="test"]').click();
    // (waitForSelector has no hasText: it returned at the "Channel created." toast)
    await page.locator('.toast', { hasText: 'Test passed' }).first().waitFor().catch(() => {});
    const toastText = (await page.locator('.toast').allInnerTexts()).join(' | ');
    tap.ok(/Test passed: .* answered in/.test(toastText), 'the test button: the channel answered', toastText);
    await shot(page, 'flow-channels');
    noErrors('channels');

    // 3. a client key, read from the one-time secret box
    await page.click('#sidenav a[data-nav="keys"]');
    await page.waitForSelector('main [data-page="keys"]');
    await page.click('main [data-page="keys"] button[data-action="create"]');
    const kf = page.locator('form[data-form="key"]');
    await kf.waitFor();
    await kf.locator('input[name="name"]').fill(`key-${tag}`);
    const ownerInput = kf.locator('[name="user_id"]');
    if (await ownerInput.evaluate((e) => e.tagName) === 'SELECT') await ownerInput.selectOption(String(owner.id));
    else await ownerInput.fill(String(owner.id));
    await kf.locator('select[name="key_group"]').selectOption(group);
    await kf.locator('input[name="remain_usd"]').fill('2');
    await kf.locator('button[data-action="create"]').click();
    const secret = page.locator('.secret-box input[data-secret]');
    await secret.waitFor();
    const key = await secret.inputValue();
    tap.ok(/^sk-[0-9A-Za-z]{48}$/.test(key), 'the secret box shows the new key once (sk- and 48 characters)');
    await shot(page, 'flow-key-secret');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    tap.ok(!stored.includes(key.slice(3)), 'the key is in neither localStorage nor sessionStorage');
    await page.click('button[data-action="done"]');
    await secret.waitFor({ state: 'detached' });
    const keys = (await admin('GET', `/api/keys?q=key-${tag}`)).data;
    tap.ok(keys.length === 1 && keys[0].user_id === owner.id && keys[0].key_group === group
        && keys[0].remain_quota === 1000000 && key.startsWith(keys[0].key_prefix),
    'the key form made the key: owner, group, 2 USD = 1000000 units, its prefix', keys);
    const keyId = keys[0] && keys[0].id;
    tap.ok(!(await page.locator('main [data-page="keys"]').innerText()).includes(key.slice(10)),
        'the list never shows the key itself');
    noErrors('keys');

    // 4. the gateway, called with that key from node
    const res = await fetch(`${env.RELAY_URL}/v1/chat/completions`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello from the browser test' }] }),
    });
    const answer = await res.json().catch(() => ({}));
    tap.ok(res.status === 200 && answer.object === 'chat.completion' && answer.model === model,
        `the gateway answered the UI's key through the UI's channel (HTTP ${res.status})`, answer);
    const requestId = res.headers.get('x-request-id');

    // 5. the request in the logs page, filtered by the key; its detail
    let found = 0;
    for (let i = 0; i < 20 && !found; i++) {
        await page.goto(`${env.ADMIN_URL}/#/logs?key_id=${keyId}`);
        await page.waitForSelector('main [data-page="logs"] .list-body > :not(.loading)');
        found = await page.locator('table[data-table="logs"] tbody tr').count();
        if (!found) await page.waitForTimeout(250);
    }
    tap.is(found, 1, 'the logs page filtered by the key lists that one request');
    tap.is(await page.inputValue('form[data-form="logs-filters"] input[name="key_id"]'), String(keyId),
        'the filter form shows the key filter');
    // and the filter form itself: filter by another key -> nothing
    await page.fill('form[data-form="logs-filters"] input[name="key_id"]', String(keyId + 100000));
    await page.click('form[data-form="logs-filters"] button[data-action="apply"]');
    await page.waitForSelector('main [data-page="logs"] [data-table="logs"][data-empty]');
    tap.ok(/key_id=\d+/.test(page.url()), 'applying the filter puts it into the address');
    await page.goBack();
    await page.waitForSelector('table[data-table="logs"] tbody tr');
    const logRow = page.locator('table[data-table="logs"] tbody tr').first();
    const rowText = await logRow.innerText();
    tap.ok(rowText.includes(model) && rowText.includes('200'), 'the row shows the model and status 200', rowText);
    await logRow.locator('button[data-action="detail"]').click();
    const detail = page.locator('[role="dialog"] [data-log]');
    await detail.waitFor();
    const logId = await detail.getAttribute('data-log');
    const text = await detail.innerText();
    tap.ok(/^[0-9a-f-]{36}$/.test(logId) && text.includes(model) && text.includes(String(keyId))
        && text.includes(String(chans[0].id)), 'the detail shows the log: id, model, key, channel', text);
    if (requestId) tap.is(logId, requestId, 'the detail is the request the gateway answered (x-request-id)');
    tap.ok(!text.includes(key.slice(3)) && !text.includes(`sk-upstream-${tag}`),
        'the detail shows neither the client key nor the upstream key');
    await shot(page, 'flow-log-detail');
    await page.keyboard.press('Escape');
    tap.ok(await detail.waitFor({ state: 'detached', timeout: 3000 }).then(() => true, () => false),
        'Escape closes the detail dialog');
    noErrors('logs');

    // 6. the language: zh-CN and back
    const navText = () => page.innerText('#sidenav a[data-nav="channels"]');
    tap.is(await navText(), 'Channels', 'the nav is in English');
    await page.selectOption('select[name="lang"]', 'zh-CN');
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    tap.is(await navText(), '渠道', 'after switching to zh-CN the nav says 渠道');
    tap.is(await page.innerText('main [data-page="logs"] h1'), '请求日志', '... and the page heading is Chinese');
    await shot(page, 'flow-logs-zh');
    await page.reload();
    await page.waitForSelector('main [data-page="logs"]');
    tap.is(await navText(), '渠道', 'the language is kept across a reload');
    await page.selectOption('select[name="lang"]', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    tap.is(await navText(), 'Channels', 'and back to English');
    noErrors('language');

    // 7. sign out: the app returns to the login page, the API refuses
    await page.click('button[data-action="account"]');
    await page.click('button[data-action="logout"]');
    await page.waitForSelector('form[data-form="login"]');
    const me = await page.evaluate(async () => (await fetch('api/auth/me')).status);
    tap.is(me, 401, 'signed out: /api/auth/me answers 401');
} catch (e) {
    tap.ok(false, `the flow ran to its end: ${String(e.message).split('\n')[0]}`);
    await shot(page, 'flow-failure').catch(() => {});
} finally {
    await browser.close();
}
process.exitCode = tap.done() ? 1 : 0;
