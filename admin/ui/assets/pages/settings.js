// Settings: what GET /api/settings says, grouped; the signed-in identity.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, ApiError } from '../core/api.js';
import { fmt, pageHeader, dl, badge } from '../core/ui.js';

const en = {
    'nav.settings': 'Settings',
    'set.title': 'Settings',
    'set.general': 'General',
    'set.me': 'Signed in',
    'set.auth': 'Credentials',
    'set.auth.session': 'Session (sign-in)',
    'set.auth.access_token': 'Access token',
    'set.auth.admin_token': 'Admin token',
    'set.role': 'Role',
    'set.user': 'User',
    'set.na': 'This server does not offer GET /api/settings yet: the settings live in the httpd configuration (conf/nebula.conf). Shown here is what GET /api/auth/me says.',
    'set.readonly': 'Settings are read from the server configuration; change them there and reload httpd.',
    'set.yes': 'Yes',
    'set.no': 'No',
};
const zh = {
    'nav.settings': '设置',
    'set.title': '设置',
    'set.general': '常规',
    'set.me': '当前登录',
    'set.auth': '凭据',
    'set.auth.session': '会话（登录）',
    'set.auth.access_token': '访问令牌',
    'set.auth.admin_token': '管理令牌',
    'set.role': '角色',
    'set.user': '用户',
    'set.na': '此服务器尚未提供 GET /api/settings：设置位于 httpd 配置中（conf/nebula.conf）。此处显示 GET /api/auth/me 的内容。',
    'set.readonly': '设置来自服务器配置；请在配置中修改并重新加载 httpd。',
    'set.yes': '是',
    'set.no': '否',
};

// a member name as a label: quota_per_usd -> Quota per usd
function label(k) {
    const s = k.replace(/_/g, ' ');
    return s.charAt(0).toUpperCase() + s.slice(1);
}

function value(k, v) {
    if (v === null || v === undefined) return null;
    if (typeof v === 'boolean') return badge(t(v ? 'set.yes' : 'set.no'), v ? 'ok' : 'muted');
    if (Array.isArray(v)) return v.every((x) => typeof x !== 'object') ? v.join(', ')
        : h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
    if (typeof v === 'object') return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
    if (typeof v === 'number' && /(_at|_ms_time)$/.test(k)) return fmt.time(v);
    return typeof v === 'number' ? fmt.num(v) : String(v);
}

function card(title, obj) {
    return h('div', { class: 'card', dataset: { group: title } }, h('h2', null, title),
        dl(Object.entries(obj).map(([k, v]) => [label(k), value(k, v)])));
}

function meCard(me) {
    return h('div', { class: 'card', dataset: { group: 'me' } }, h('h2', null, t('set.me')), dl([
        [t('set.auth'), t(`set.auth.${me.auth}`)],
        [t('set.role'), t(`role.${me.role}`)],
        [t('set.user'), me.user ? `${me.user.username} (#${me.user.id})` : null],
    ]));
}

export default {
    id: 'settings',
    nav: 'nav.settings',
    section: 'system',
    roles: ['root', 'admin', 'operator'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        root.append(pageHeader(t('set.title')));
        let s = null;
        try {
            s = (await api('GET', '/api/settings')).data;
        } catch (err) {
            if (!(err instanceof ApiError && err.status === 404)) throw err;
        }
        if (!s) {
            root.append(h('p', { class: 'note', dataset: { na: 'settings' } }, t('set.na')),
                h('div', { class: 'grid' }, meCard(ctx.me)));
            return;
        }
        const general = {};
        const groups = [];
        for (const [k, v] of Object.entries(s)) {
            if (v && typeof v === 'object' && !Array.isArray(v)) groups.push([k, v]); else general[k] = v;
        }
        root.append(h('p', { class: 'muted' }, t('set.readonly')), h('div', { class: 'grid' },
            Object.keys(general).length ? card(t('set.general'), general) : null,
            groups.map(([k, v]) => card(label(k), v)), meCard(ctx.me)));
    },
};
