// NebulaGate admin UI: boot (language, theme, session), layout, router.
import { h, clear } from './core/dom.js';
import { t, addStrings, lang, setLang, onLangChange } from './core/i18n.js';
import { api, setCsrf, ApiError, setUnauthorizedHandler } from './core/api.js';
import { form, modal, toast, errorBox, loading, setQuotaPerUsd } from './core/ui.js';
import { current, go, onRoute } from './core/router.js';
import pages from './pages/index.js';

addStrings('en', {
    'app.name': 'NebulaGate',
    'app.admin': 'Admin',
    'app.skip': 'Skip to content',
    'app.menu': 'Menu',
    'app.nav': 'Main navigation',
    'app.language': 'Language',
    'app.theme.dark': 'Switch to the dark theme',
    'app.theme.light': 'Switch to the light theme',
    'app.account': 'Account',
    'app.signedin': 'Signed in as {name} ({role})',
    'app.password': 'Change password',
    'app.logout': 'Sign out',
    'app.loggedout': 'You are signed out.',
    'app.nopages': 'There is no page for your role ({role}).',
    'app.notfound': 'No such page.',
    'app.roottoken': 'the admin token',
    'section.overview': 'Overview',
    'section.ops': 'Operations',
    'section.billing': 'Billing',
    'section.gov': 'Governance',
    'section.self': 'My account',
    'section.system': 'System',
    'role.root': 'root',
    'role.admin': 'admin',
    'role.operator': 'operator',
    'role.user': 'user',
    'login.title': 'Sign in',
    'login.subtitle': 'NebulaGate administration',
    'login.username': 'Username',
    'login.password': 'Password',
    'login.submit': 'Sign in',
    'login.failed': 'Wrong username or password.',
    'login.throttled': 'Too many failed attempts. Try again later.',
    'login.disabled': 'Sign-in is not configured on this server (NebulaSessionSecret is unset).',
    'pw.current': 'Current password',
    'pw.new': 'New password',
    'pw.repeat': 'New password again',
    'pw.help': '8 characters or more.',
    'pw.mismatch': 'The two new passwords differ.',
    'pw.short': 'At least 8 characters.',
    'pw.done': 'Password changed. Other sessions were signed out.',
});
addStrings('zh-CN', {
    'app.name': 'NebulaGate',
    'app.admin': '管理后台',
    'app.skip': '跳到正文',
    'app.menu': '菜单',
    'app.nav': '主导航',
    'app.language': '语言',
    'app.theme.dark': '切换到深色主题',
    'app.theme.light': '切换到浅色主题',
    'app.account': '账户',
    'app.signedin': '当前用户：{name}（{role}）',
    'app.password': '修改密码',
    'app.logout': '退出登录',
    'app.loggedout': '您已退出登录。',
    'app.nopages': '您的角色（{role}）没有可用的页面。',
    'app.notfound': '页面不存在。',
    'app.roottoken': '管理令牌',
    'section.overview': '概览',
    'section.ops': '运维',
    'section.billing': '计费',
    'section.gov': '治理',
    'section.self': '我的账户',
    'section.system': '系统',
    'role.root': '超级管理员',
    'role.admin': '管理员',
    'role.operator': '运维员',
    'role.user': '用户',
    'login.title': '登录',
    'login.subtitle': 'NebulaGate 管理后台',
    'login.username': '用户名',
    'login.password': '密码',
    'login.submit': '登录',
    'login.failed': '用户名或密码错误。',
    'login.throttled': '失败次数过多，请稍后再试。',
    'login.disabled': '此服务器未配置登录（未设置 NebulaSessionSecret）。',
    'pw.current': '当前密码',
    'pw.new': '新密码',
    'pw.repeat': '再次输入新密码',
    'pw.help': '至少 8 个字符。',
    'pw.mismatch': '两次输入的新密码不一致。',
    'pw.short': '至少 8 个字符。',
    'pw.done': '密码已修改，其他会话已退出。',
});
for (const p of pages) for (const [l, d] of Object.entries(p.strings || {})) addStrings(l, d);

const SECTIONS = ['overview', 'ops', 'billing', 'gov', 'self', 'system'];
const app = document.getElementById('app');
let me = null;          // {auth, role, user}
let shell = null;       // {nav, main, menuBtn, ...} while the layout is shown

// ---------------------------------------------------------------- theme
const THEME_KEY = 'nebula.theme';
function theme() {
    let v = null;
    try { v = localStorage.getItem(THEME_KEY); } catch { /* storage disabled */ }
    if (v === 'light' || v === 'dark') return v;
    return window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}
function setTheme(v) {
    document.documentElement.dataset.theme = v;
    try { localStorage.setItem(THEME_KEY, v); } catch { /* storage disabled */ }
}
document.documentElement.dataset.theme = theme();

function themeButton() {
    const dark = theme() === 'dark';
    return h('button', { type: 'button', class: 'btn-icon', dataset: { action: 'theme' },
        attrs: { 'aria-label': t(dark ? 'app.theme.light' : 'app.theme.dark'), title: t(dark ? 'app.theme.light' : 'app.theme.dark') },
        on: { click: (e) => {
            setTheme(theme() === 'dark' ? 'light' : 'dark');
            e.currentTarget.replaceWith(themeButton());
            document.querySelector('[data-action="theme"]')?.focus();
        } } }, dark ? '☀' : '☾');
}

function langSelect() {
    const id = 'lang-select';
    return h('div', { class: 'lang' },
        h('label', { for: id, class: 'sr-only' }, t('app.language')),
        h('select', { id, name: 'lang', dataset: { action: 'lang' }, on: { change: (e) => setLang(e.target.value) } },
            [['en', 'English'], ['zh-CN', '简体中文']].map(([v, l]) => h('option', { value: v, selected: v === lang(),
                attrs: { lang: v } }, l))));
}

// ---------------------------------------------------------------- session
function roleOf() { return me ? me.role : null; }
function allowed() { return pages.filter((p) => (p.roles || []).includes(roleOf())); }

async function loadMe() {
    const r = await api('GET', '/api/auth/me');
    me = r.data;
    if (me.csrf_token) setCsrf(me.csrf_token);
    if (['root', 'admin', 'operator'].includes(me.role)) loadSettings();
    return me;
}

// the quota per USD, when the server says it (GET /api/settings)
let settingsTried = false;
async function loadSettings() {
    if (settingsTried) return;
    settingsTried = true;
    try {
        const s = (await api('GET', '/api/settings')).data || {};
        const q = s.quota_per_usd ?? s.billing?.quota_per_usd;
        if (q) setQuotaPerUsd(Number(q));
    } catch { /* older server: the default 500000 */ }
}

async function logout() {
    try { await api('POST', '/api/auth/logout'); } catch { /* signed out anyway */ }
    setCsrf(null);
    me = null;
    shell = null;
    go('login');
    toast(t('app.loggedout'));
}

function changePassword() {
    const dlg = modal({
        title: t('app.password'),
        body: form({
            id: 'password',
            fields: [
                { name: 'current_password', label: t('pw.current'), type: 'password', required: true,
                    autocomplete: 'current-password' },
                { name: 'new_password', label: t('pw.new'), type: 'password', required: true,
                    autocomplete: 'new-password', help: t('pw.help') },
                { name: 'repeat', label: t('pw.repeat'), type: 'password', required: true, autocomplete: 'new-password' },
            ],
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                if (v.new_password.length < 8) throw { param: 'new_password', message: t('pw.short') };
                if (v.new_password !== v.repeat) throw { param: 'repeat', message: t('pw.mismatch') };
                const r = await api('POST', '/api/auth/password',
                    { body: { current_password: v.current_password, new_password: v.new_password } });
                if (r?.data?.csrf_token) setCsrf(r.data.csrf_token);
                if (r?.data?.user) me.user = r.data.user;
                dlg.close();
                toast(t('pw.done'));
            },
        }),
    });
}

// ---------------------------------------------------------------- layout
function userMenu() {
    const name = me.user ? (me.user.display_name || me.user.username) : t('app.roottoken');
    const menu = h('div', { class: 'menu', id: 'user-menu', hidden: true },
        h('p', { class: 'menu-who' }, t('app.signedin', { name, role: t(`role.${me.role}`) })),
        me.user ? h('button', { type: 'button', class: 'menu-item', dataset: { action: 'password' },
            on: { click: () => { toggle(false); changePassword(); } } }, t('app.password')) : null,
        h('button', { type: 'button', class: 'menu-item', dataset: { action: 'logout' },
            on: { click: () => { toggle(false); logout(); } } }, t('app.logout')));
    const btn = h('button', { type: 'button', class: 'btn user-btn', dataset: { action: 'account' },
        attrs: { 'aria-expanded': 'false', 'aria-controls': 'user-menu', 'aria-label': `${t('app.account')}: ${name}` },
        on: { click: () => toggle(menu.hidden) } },
    h('span', { class: 'avatar', attrs: { 'aria-hidden': 'true' } }, name.slice(0, 1).toUpperCase()),
    h('span', { class: 'user-name' }, name));
    const box = h('div', { class: 'user-menu' }, btn, menu);
    function toggle(open) {
        menu.hidden = !open;
        btn.setAttribute('aria-expanded', String(open));
        if (open) {
            menu.querySelector('button')?.focus();
            setTimeout(() => document.addEventListener('click', outside), 0);
        } else document.removeEventListener('click', outside);
    }
    function outside(e) { if (!box.contains(e.target)) toggle(false); }
    box.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !menu.hidden) { toggle(false); btn.focus(); } });
    return box;
}

function navLinks() {
    const mine = allowed();
    return SECTIONS.map((s) => {
        const list = mine.filter((p) => p.section === s);
        if (!list.length) return null;
        return h('div', { class: 'nav-section' },
            h('h2', { class: 'nav-title', id: `nav-${s}` }, t(`section.${s}`)),
            h('ul', { attrs: { 'aria-labelledby': `nav-${s}` } }, list.map((p) => h('li', null,
                h('a', { href: `#/${p.id}`, dataset: { nav: p.id }, on: { click: () => openNav(false) } }, t(p.nav))))));
    });
}

function openNav(open) {
    if (!shell) return;
    shell.layout.classList.toggle('nav-open', open);
    shell.menuBtn.setAttribute('aria-expanded', String(open));
}

function layout() {
    const main = h('main', { id: 'main', class: 'main', tabIndex: -1 });
    const nav = h('nav', { id: 'sidenav', class: 'sidenav', attrs: { 'aria-label': t('app.nav') } }, navLinks());
    const menuBtn = h('button', { type: 'button', class: 'btn-icon menu-btn', dataset: { action: 'menu' },
        attrs: { 'aria-expanded': 'false', 'aria-controls': 'sidenav', 'aria-label': t('app.menu') },
        on: { click: () => openNav(!shell.layout.classList.contains('nav-open')) } }, '☰');
    const top = h('header', { class: 'topbar' },
        h('button', { type: 'button', class: 'skip', on: { click: () => main.focus() } }, t('app.skip')),
        menuBtn,
        h('a', { class: 'brand', href: '#/' }, h('span', { class: 'logo', attrs: { 'aria-hidden': 'true' } }, '✦'),
            t('app.name'), h('span', { class: 'brand-sub' }, t('app.admin'))),
        h('div', { class: 'spacer' }),
        langSelect(), themeButton(), userMenu());
    const el = h('div', { class: 'layout' }, top, h('div', { class: 'body' }, nav,
        h('div', { class: 'scrim', on: { click: () => openNav(false) } }), main));
    el.addEventListener('keydown', (e) => {
        if (e.key === 'Escape' && el.classList.contains('nav-open')) { openNav(false); menuBtn.focus(); }
    });
    clear(app).append(el);
    shell = { layout: el, main, nav, menuBtn };
}

// ---------------------------------------------------------------- pages
function loginPage(query) {
    shell = null;
    const f = form({
        id: 'login',
        action: 'login',
        submitLabel: t('login.submit'),
        fields: [
            { name: 'username', label: t('login.username'), required: true, autocomplete: 'username' },
            { name: 'password', label: t('login.password'), type: 'password', required: true,
                autocomplete: 'current-password' },
        ],
        onSubmit: async (v) => {
            try {
                const r = await api('POST', '/api/auth/login', { body: { username: v.username, password: v.password } });
                setCsrf(r.data.csrf_token);
                me = { auth: 'session', role: r.data.user.role, user: r.data.user };
                settingsTried = false;
                if (['root', 'admin', 'operator'].includes(me.role)) loadSettings();
            } catch (err) {
                if (err instanceof ApiError) {
                    const m = err.status === 401 ? t('login.failed') : err.status === 429 ? t('login.throttled')
                        : err.code === 'sessions_disabled' ? t('login.disabled') : null;
                    if (m) throw new ApiError(err.status, { message: m, code: err.code });
                }
                throw err;
            }
            const next = query.next && query.next !== 'login' ? query.next : null;
            go(next && allowed().some((p) => p.id === next) ? next : (allowed()[0]?.id || ''));
        },
    });
    const card = h('div', { class: 'login-card', dataset: { page: 'login' } },
        h('div', { class: 'login-brand' }, h('span', { class: 'logo', attrs: { 'aria-hidden': 'true' } }, '✦'),
            t('app.name')),
        h('h1', null, t('login.title')),
        h('p', { class: 'muted' }, t('login.subtitle')),
        f);
    clear(app).append(h('div', { class: 'login' },
        h('div', { class: 'login-tools' }, langSelect(), themeButton()),
        h('main', { id: 'main', class: 'login-main' }, card)));
    f.querySelector('input[name="username"]').focus();
}

let renderSeq = 0;
async function route() {
    const { page, query } = current();
    const seq = ++renderSeq;
    if (page === 'login') { loginPage(query); return; }
    if (!me) {
        clear(app).append(h('div', { class: 'boot' }, loading()));
        try {
            await loadMe();
        } catch (err) {
            if (seq !== renderSeq) return;
            if (err instanceof ApiError && err.status === 401) {
                // the API's 401 handler has gone to the login page already
                if (current().page !== 'login') go('login', page ? { next: page } : {}, { replace: true });
                return;
            }
            clear(app).append(h('div', { class: 'boot' }, errorBox(err)));
            return;
        }
        if (seq !== renderSeq) return;
    }
    const mine = allowed();
    if (!page) {
        if (mine.length) { go(mine[0].id, {}, { replace: true }); return; }
    }
    if (!shell) layout();
    const mod = mine.find((p) => p.id === page);
    for (const a of shell.nav.querySelectorAll('a[data-nav]')) {
        if (a.dataset.nav === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    const main = clear(shell.main);
    if (!mod) {
        main.append(h('section', { class: 'page', dataset: { page: 'none' } },
            errorBox(new Error(mine.length ? t('app.notfound') : t('app.nopages', { role: t(`role.${me.role}`) })))));
        return;
    }
    document.title = `${t(mod.nav)} · ${t('app.name')}`;
    const root = h('section', { class: 'page', dataset: { page: mod.id }, attrs: { 'aria-label': t(mod.nav) } });
    main.append(root);
    try {
        await mod.render(root, { query, me, role: me.role, go, refresh: () => route() });
    } catch (err) {
        if (root.isConnected) root.append(errorBox(err));
        if (!(err instanceof ApiError)) console.warn(err); // eslint-disable-line no-console
    }
}

// a session that ended meanwhile (expired, signed out elsewhere): sign in again
setUnauthorizedHandler(() => {
    me = null;
    const { page } = current();
    if (page !== 'login') go('login', page ? { next: page } : {}, { replace: true });
});
onRoute(() => route());
onLangChange(() => { shell = null; route(); });
route();
