// Every page in the nav renders, at 1366x768 and 390x844, for a root user and
// for a user of role `user`: the page root is visible, no error box, no
// console error, no page error, no HTTP error, no sideways scrolling of the
// page itself. Screenshots: t/browser/screenshots/<id>-<width>.png.
import { launch, login, shot, admin, adminApi, unexpected, tap, uniq, env } from './lib.mjs';

const SIZES = [[1366, 768], [390, 844]];
const PASSWORD = 'browser-test-password-1';

const root = uniq('uiroot');
const user = uniq('uiuser');
const oper = uniq('uioper');
await admin('POST', '/api/users', { username: root, password: PASSWORD, role: 'root' });
await admin('POST', '/api/users', { username: user, password: PASSWORD, role: 'user' });
await admin('POST', '/api/users', { username: oper, password: PASSWORD, role: 'operator' });

async function settle(page, id) {
    const sel = `main [data-page="${id}"]`;
    await page.waitForSelector(sel, { state: 'visible' });
    // every loading spinner gone (lists and charts loaded)
    await page.waitForFunction(() => !document.querySelector('main .loading'), null, { timeout: 15000 });
    return sel;
}

async function visit(page, errors, id, w, who) {
    errors.length = 0;
    const phone = w < 800;
    if (phone) {
        await page.click('button[data-action="menu"]');
        await page.waitForSelector('#sidenav a[data-nav]', { state: 'visible' });
    }
    await page.click(`#sidenav a[data-nav="${id}"]`);
    let sel;
    try {
        sel = await settle(page, id);
    } catch (e) {
        tap.ok(false, `${who} ${id} @${w}: the page rendered`, String(e.message).split('\n')[0]);
        return;
    }
    if (phone) {
        tap.ok(!(await page.locator('#sidenav').isVisible()), `${who} ${id} @${w}: the menu closed after choosing`);
    }
    const errBoxes = await page.locator(`${sel} .error-box`).allInnerTexts();
    const heading = await page.locator(`${sel} h1`).first().innerText().catch(() => '');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const bad = unexpected(errors);
    tap.ok(errBoxes.length === 0 && heading.length > 0 && bad.length === 0 && overflow <= 0,
        `${who} ${id} @${w}: rendered with a heading, no error box, no console/page/HTTP error, no sideways scroll`,
        { errorBoxes: errBoxes, heading, errors: bad, overflow });
    await shot(page, `${id}${who === 'root' ? '' : `-${who}`}-${w}`);
}

for (const [w, hgt] of SIZES) {
    const { browser, page, errors } = await launch({ width: w, height: hgt });
    try {
        await login(page, { username: root, password: PASSWORD });
        const ids = await page.locator('#sidenav a[data-nav]').evaluateAll((as) => as.map((a) => a.dataset.nav));
        tap.ok(ids.length >= 8 && ['dashboard', 'channels', 'keys', 'users', 'logs', 'settings'].every((i) => ids.includes(i)),
            `root @${w}: the nav lists every page (${ids.join(', ')})`);
        tap.is(await page.locator('#sidenav').isVisible(), w >= 800,
            `root @${w}: the side nav is ${w >= 800 ? 'shown' : 'behind the menu button'}`);
        for (const id of ids) await visit(page, errors, id, w, 'root');
        // the dark theme, once per width, on the dashboard
        await page.click('#sidenav a[data-nav="dashboard"]', { force: true }).catch(() => {});
        await page.evaluate(() => { location.hash = '#/dashboard'; });
        await settle(page, 'dashboard');
        await page.click('button[data-action="theme"]');
        tap.is(await page.evaluate(() => document.documentElement.dataset.theme), 'dark',
            `root @${w}: the theme button switches to the dark theme`);
        await shot(page, `dashboard-dark-${w}`);
        await page.click('button[data-action="theme"]');
    } finally {
        await browser.close();
    }
}

// a user of role `user`: only its own pages; the operations pages are not
// in its nav and do not render for it
{
    const { browser, page, errors } = await launch({ width: 1366, height: 768 });
    try {
        await login(page, { username: user, password: PASSWORD });
        const ids = await page.locator('#sidenav a[data-nav]').evaluateAll((as) => as.map((a) => a.dataset.nav));
        tap.ok(!ids.some((i) => ['dashboard', 'channels', 'keys', 'users', 'orgs', 'groups', 'logs', 'settings'].includes(i)),
            `user: no operations page in the nav (${ids.join(', ') || 'none'})`);
        for (const id of ids) await visit(page, errors, id, 1366, 'user');
        if (!ids.length) {
            await page.evaluate(() => { location.hash = '#/'; });
            tap.ok(await page.locator('main [data-page="none"] .error-box').isVisible(),
                'user: with no page for the role, the app says so');
        }
        await page.evaluate(() => { location.hash = '#/channels'; });
        await page.waitForSelector('main [data-page="none"]');
        tap.is(await page.locator('main [data-page="channels"]').count(), 0,
            'user: #/channels does not render the channels page');
        await shot(page, 'user-refused-1366');
    } finally {
        await browser.close();
    }
}
// an operator reads: the overview, logs, billing and governance pages and
// settings render without errors, the editing pages are not offered, and the
// read-only pages offer no button that would change anything
{
    const { browser, page, errors } = await launch({ width: 1366, height: 768 });
    try {
        await login(page, { username: oper, password: PASSWORD });
        const ids = await page.locator('#sidenav a[data-nav]').evaluateAll((as) => as.map((a) => a.dataset.nav));
        tap.ok(['dashboard', 'logs', 'plans', 'ledger', 'policies', 'audit', 'settings'].every((i) => ids.includes(i))
            && !ids.some((i) => ['channels', 'keys', 'users', 'orgs', 'groups'].includes(i)),
            `operator: the read pages and no editing page in the nav (${ids.join(', ')})`);
        for (const id of ids) await visit(page, errors, id, 1366, 'operator');
        for (const id of ['plans', 'vouchers', 'policies', 'ratelimits']) {
            await page.evaluate((p) => { location.hash = `#/${p}`; }, id);
            await settle(page, id);
            tap.is(await page.locator(`main [data-page="${id}"] button[data-action="create"]`).count(), 0,
                `operator: ${id} offers no create button`);
        }
    } finally {
        await browser.close();
    }
}
process.exitCode = tap.done() ? 1 : 0;
