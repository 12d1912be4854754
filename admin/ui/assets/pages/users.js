// Users: create, role, group, organisation, status, password reset, access
// token (shown once), delete (soft).
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { fmt, money, pageHeader, button, badge, form, modal, confirmDialog, toast, secretBox, getQuotaPerUsd }
    from '../core/ui.js';
import { listView } from '../core/list.js';

const ROLES = ['user', 'operator', 'admin', 'root'];

const en = {
    'nav.users': 'Users',
    'users.title': 'Users',
    'users.create': 'New user',
    'users.new': 'New user',
    'users.edit': 'Edit user {name}',
    'users.f.q': 'Name contains',
    'users.f.role': 'Role',
    'users.f.status': 'Status',
    'users.f.group': 'Group',
    'users.any': 'Any',
    'users.username': 'Username',
    'users.display_name': 'Display name',
    'users.password': 'Password',
    'users.password.help': '8 characters or more. Empty: no password (no sign-in until one is set).',
    'users.role': 'Role',
    'users.group': 'Group',
    'users.org': 'Organisation',
    'users.org.none': 'None',
    'users.quota': 'Wallet balance (USD)',
    'users.quota.help': 'Setting it posts an adjustment to the ledger.',
    'users.status': 'Status',
    'users.status.active': 'Active',
    'users.status.disabled': 'Disabled',
    'users.status.deleted': 'Deleted',
    'users.role.user': 'User',
    'users.role.operator': 'Operator (read-only)',
    'users.role.admin': 'Admin',
    'users.role.root': 'Root',
    'users.col.id': 'ID',
    'users.col.username': 'Username',
    'users.col.role': 'Role',
    'users.col.group': 'Group',
    'users.col.org': 'Org',
    'users.col.status': 'Status',
    'users.col.balance': 'Balance',
    'users.col.requests': 'Requests',
    'users.col.login': 'Sign-in',
    'users.col.actions': 'Actions',
    'users.haspw': 'Password',
    'users.hastoken': 'Token',
    'users.editbtn': 'Edit',
    'users.resetpw': 'Password',
    'users.resetpw.title': 'Set the password of {name}',
    'users.resetpw.new': 'New password',
    'users.resetpw.help': '8 characters or more; empty removes the password. The user\'s sessions end.',
    'users.resetpw.done': 'Password set; the user\'s sessions ended.',
    'users.token': 'Access token',
    'users.token.title': 'Access token of {name}',
    'users.token.confirm': 'Make a new management access token for {name}? Any previous token stops working at once.',
    'users.token.secret': 'Management access token (Authorization: Bearer …)',
    'users.token.revoke': 'Revoke token',
    'users.token.revoked': 'Token revoked.',
    'users.done': 'Done',
    'users.delete': 'Delete',
    'users.delete.confirm': 'Delete user “{name}”? Its keys are disabled and its sessions end; logs and the ledger keep it.',
    'users.deleted': 'User deleted.',
    'users.saved': 'User saved.',
    'users.created': 'User created.',
};
const zh = {
    'nav.users': '用户',
    'users.title': '用户',
    'users.create': '新建用户',
    'users.new': '新建用户',
    'users.edit': '编辑用户 {name}',
    'users.f.q': '名称包含',
    'users.f.role': '角色',
    'users.f.status': '状态',
    'users.f.group': '分组',
    'users.any': '任意',
    'users.username': '用户名',
    'users.display_name': '显示名称',
    'users.password': '密码',
    'users.password.help': '至少 8 个字符。留空：无密码（设置前无法登录）。',
    'users.role': '角色',
    'users.group': '分组',
    'users.org': '组织',
    'users.org.none': '无',
    'users.quota': '钱包余额（美元）',
    'users.quota.help': '修改后会在账本中记一笔调整。',
    'users.status': '状态',
    'users.status.active': '正常',
    'users.status.disabled': '已禁用',
    'users.status.deleted': '已删除',
    'users.role.user': '用户',
    'users.role.operator': '运维员（只读）',
    'users.role.admin': '管理员',
    'users.role.root': '超级管理员',
    'users.col.id': 'ID',
    'users.col.username': '用户名',
    'users.col.role': '角色',
    'users.col.group': '分组',
    'users.col.org': '组织',
    'users.col.status': '状态',
    'users.col.balance': '余额',
    'users.col.requests': '请求数',
    'users.col.login': '登录方式',
    'users.col.actions': '操作',
    'users.haspw': '密码',
    'users.hastoken': '令牌',
    'users.editbtn': '编辑',
    'users.resetpw': '密码',
    'users.resetpw.title': '设置 {name} 的密码',
    'users.resetpw.new': '新密码',
    'users.resetpw.help': '至少 8 个字符；留空则删除密码。该用户的会话将结束。',
    'users.resetpw.done': '密码已设置，该用户的会话已结束。',
    'users.token': '访问令牌',
    'users.token.title': '{name} 的访问令牌',
    'users.token.confirm': '为 {name} 生成新的管理访问令牌？之前的令牌将立即失效。',
    'users.token.secret': '管理访问令牌（Authorization: Bearer …）',
    'users.token.revoke': '撤销令牌',
    'users.token.revoked': '令牌已撤销。',
    'users.done': '完成',
    'users.delete': '删除',
    'users.delete.confirm': '删除用户“{name}”？其密钥将被禁用、会话结束；日志和账本仍保留该用户。',
    'users.deleted': '用户已删除。',
    'users.saved': '用户已保存。',
    'users.created': '用户已创建。',
};

const STATUS_KIND = { active: 'ok', disabled: 'muted', deleted: 'error' };

async function options() {
    const [groups, orgs] = await Promise.all([
        api('GET', '/api/groups', { query: { per_page: 100 } }).then((r) => r.data.map((g) => g.name)).catch(() => ['default']),
        api('GET', '/api/orgs', { query: { per_page: 100 } }).then((r) => r.data).catch(() => []),
    ]);
    return { groups, orgs };
}

async function openEditor(u, ctx, reload) {
    const { groups, orgs } = await options();
    const editing = !!u;
    u = u || {};
    const per = getQuotaPerUsd();
    // an admin may give only the role user
    const roles = ctx.role === 'root' ? ROLES : ['user'];
    const fields = [
        { name: 'username', label: t('users.username'), required: true, value: u.username, autocomplete: 'off' },
        { name: 'display_name', label: t('users.display_name'), value: u.display_name || '' },
        !editing && { name: 'password', label: t('users.password'), type: 'password', autocomplete: 'new-password',
            help: t('users.password.help') },
        { name: 'role', label: t('users.role'), type: 'select', value: u.role || 'user',
            options: (roles.includes(u.role || 'user') ? roles : [u.role, ...roles]).map((r) => ({ value: r, label: t(`users.role.${r}`) })) },
        { name: 'user_group', label: t('users.group'), type: 'select', value: u.user_group || 'default',
            options: groups.map((g) => ({ value: g, label: g })) },
        { name: 'org_id', label: t('users.org'), type: 'select', value: u.org_id ?? '',
            options: [{ value: '', label: t('users.org.none') }, ...orgs.map((o) => ({ value: o.id, label: o.display_name || o.name }))] },
        { name: 'quota_usd', label: t('users.quota'), type: 'number', step: 'any', value: editing ? u.quota / per : '',
            help: t('users.quota.help') },
        { name: 'status', label: t('users.status'), type: 'select', value: u.status === 'disabled' ? 'disabled' : 'active',
            options: ['active', 'disabled'].map((s) => ({ value: s, label: t(`users.status.${s}`) })) },
    ].filter(Boolean);
    const dlg = modal({
        title: editing ? t('users.edit', { name: u.username }) : t('users.new'),
        wide: true,
        body: form({
            id: 'user', action: editing ? 'save' : 'create', fields,
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                const b = { username: v.username, display_name: v.display_name, user_group: v.user_group,
                    org_id: v.org_id === '' ? null : Number(v.org_id) };
                if (!editing || v.role !== u.role) b.role = v.role;
                if (!editing || v.status !== u.status) b.status = v.status;
                if (v.quota_usd !== null) {
                    const q = Math.round(v.quota_usd * per);
                    if (!editing ? q > 0 : q !== u.quota) b.quota = q;
                }
                if (editing) {
                    if (b.username === u.username) delete b.username;
                    if ((u.org_id ?? null) === b.org_id) delete b.org_id;
                    await api('PATCH', `/api/users/${u.id}`, { body: b });
                    toast(t('users.saved'));
                } else {
                    if (v.password) b.password = v.password;
                    if (b.org_id === null) delete b.org_id;
                    await api('POST', '/api/users', { body: b });
                    toast(t('users.created'));
                }
                dlg.close();
                reload();
            },
        }),
    });
}

function resetPassword(u) {
    const dlg = modal({
        title: t('users.resetpw.title', { name: u.username }),
        body: form({
            id: 'user-password',
            fields: [{ name: 'password', label: t('users.resetpw.new'), type: 'password', autocomplete: 'new-password',
                help: t('users.resetpw.help') }],
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                await api('PUT', `/api/users/${u.id}/password`, { body: { password: v.password || null } });
                toast(t('users.resetpw.done'));
                dlg.close();
            },
        }),
    });
}

async function accessToken(u, reload) {
    if (!await confirmDialog(t('users.token.confirm', { name: u.username }), { danger: false })) return;
    try {
        const r = (await api('POST', `/api/users/${u.id}/access-token`)).data;
        reload();
        modal({
            title: t('users.token.title', { name: u.username }),
            body: secretBox(t('users.token.secret'), r.access_token),
            actions: [{ label: t('users.done'), kind: 'primary', action: 'done', onClick: (c) => c() }],
        });
    } catch (err) { toast(err.message, 'error'); }
}

export default {
    id: 'users',
    nav: 'nav.users',
    section: 'ops',
    roles: ['root', 'admin'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        let lv;
        const reload = () => lv.reload();
        const fail = (e) => toast(e.message, 'error');
        const any = { value: '', label: t('users.any') };
        const self = ctx.me.user ? ctx.me.user.id : null;
        lv = listView({
            ctx, page: 'users', path: '/api/users', id: 'users',
            filters: [
                { name: 'q', label: t('users.f.q') },
                { name: 'role', label: t('users.f.role'), type: 'select',
                    options: [any, ...ROLES.map((r) => ({ value: r, label: t(`users.role.${r}`) }))] },
                { name: 'status', label: t('users.f.status'), type: 'select',
                    options: [any, ...['active', 'disabled', 'deleted'].map((s) => ({ value: s, label: t(`users.status.${s}`) }))] },
                { name: 'group', label: t('users.f.group') },
            ],
            columns: [
                { key: 'id', label: t('users.col.id'), align: 'right' },
                { key: 'username', label: t('users.col.username'), render: (u) => h('span', null, h('strong', null, u.username),
                    u.display_name ? h('div', { class: 'muted small' }, u.display_name) : null) },
                { key: 'role', label: t('users.col.role'), render: (u) => badge(t(`role.${u.role}`), u.role === 'user' ? 'muted' : 'info') },
                { key: 'user_group', label: t('users.col.group') },
                { key: 'org_id', label: t('users.col.org'), render: (u) => (u.org_id ? `#${u.org_id}` : null) },
                { key: 'status', label: t('users.col.status'), render: (u) => badge(t(`users.status.${u.status}`), STATUS_KIND[u.status]) },
                { key: 'quota', label: t('users.col.balance'), align: 'right', render: (u) => money(u.quota) },
                { key: 'request_count', label: t('users.col.requests'), align: 'right', render: (u) => fmt.num(u.request_count) },
                { key: 'login', label: t('users.col.login'), render: (u) => h('span', null,
                    u.has_password ? badge(t('users.haspw'), 'ok') : null, ' ',
                    u.has_access_token ? badge(t('users.hastoken'), 'info') : null) },
                { key: 'actions', label: t('users.col.actions'), render: (u) => (u.status === 'deleted' ? null
                    : h('div', { class: 'cell-actions' },
                        button(t('users.editbtn'), 'edit', () => openEditor(u, ctx, reload).catch(fail), 'small'),
                        button(t('users.resetpw'), 'password', () => resetPassword(u), 'small'),
                        button(t('users.token'), 'token', () => accessToken(u, reload), 'small'),
                        u.has_access_token ? button(t('users.token.revoke'), 'revoke', async () => {
                            try { await api('DELETE', `/api/users/${u.id}/access-token`); toast(t('users.token.revoked')); reload(); }
                            catch (err) { fail(err); }
                        }, 'small') : null,
                        u.id !== self ? button(t('users.delete'), 'delete', async () => {
                            if (!await confirmDialog(t('users.delete.confirm', { name: u.username }))) return;
                            try { await api('DELETE', `/api/users/${u.id}`); toast(t('users.deleted')); reload(); }
                            catch (err) { fail(err); }
                        }, 'small danger') : null)) },
            ],
        });
        root.append(pageHeader(t('users.title'),
            button(t('users.create'), 'create', () => openEditor(null, ctx, reload).catch(fail), 'primary')), lv);
    },
};
