// Client API keys: create (shown once), limits, expiry, models, IPs, group;
// list, edit, enable/disable, delete; bulk import of new-api keys.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, ApiError } from '../core/api.js';
import { fmt, money, pageHeader, button, badge, form, modal, confirmDialog, toast, secretBox, getQuotaPerUsd }
    from '../core/ui.js';
import { listView } from '../core/list.js';

const en = {
    'nav.keys': 'API keys',
    'keys.title': 'API keys',
    'keys.create': 'New key',
    'keys.import': 'Import keys',
    'keys.new': 'New API key',
    'keys.edit': 'Edit key {name}',
    'keys.created': 'Key created',
    'keys.secret': 'The new API key',
    'keys.done': 'Done',
    'keys.f.q': 'Name or prefix',
    'keys.f.status': 'Status',
    'keys.f.user_id': 'Owner (user ID)',
    'keys.f.group': 'Group',
    'keys.any': 'Any',
    'keys.name': 'Name',
    'keys.user': 'Owner',
    'keys.user.id': 'Owner (user ID)',
    'keys.group': 'Group',
    'keys.group.owner': 'The owner\'s group',
    'keys.quota': 'Quota (USD)',
    'keys.quota.help': '{per} quota units make 1 USD.',
    'keys.unlimited': 'Unlimited quota',
    'keys.expires': 'Expires',
    'keys.expires.help': 'Empty: never.',
    'keys.models': 'Allowed models',
    'keys.models.help': 'Empty: any model. Commas or new lines between names.',
    'keys.ips': 'Allowed client IPs',
    'keys.ips.help': 'Empty: any address. IPv4/IPv6 addresses or CIDR blocks.',
    'keys.maxbody': 'Largest request body (bytes)',
    'keys.maxbody.help': 'Empty: the server\'s limit.',
    'keys.status': 'Status',
    'keys.status.active': 'Active',
    'keys.status.disabled': 'Disabled',
    'keys.status.expired': 'Expired',
    'keys.status.exhausted': 'Exhausted',
    'keys.col.id': 'ID',
    'keys.col.name': 'Name',
    'keys.col.key': 'Key',
    'keys.col.owner': 'Owner',
    'keys.col.status': 'Status',
    'keys.col.group': 'Group',
    'keys.col.quota': 'Remaining / used',
    'keys.col.expires': 'Expires',
    'keys.col.accessed': 'Last used',
    'keys.col.actions': 'Actions',
    'keys.unlimited.short': 'Unlimited',
    'keys.enable': 'Enable',
    'keys.disable': 'Disable',
    'keys.editbtn': 'Edit',
    'keys.delete': 'Delete',
    'keys.delete.confirm': 'Delete key “{name}” ({prefix}…)? Clients using it are refused from now on.',
    'keys.deleted': 'Key deleted.',
    'keys.saved': 'Key saved.',
    'keys.import.title': 'Import keys issued by new-api',
    'keys.import.keys': 'Keys',
    'keys.import.help': 'One key per line: 48 characters, with or without “sk-”. Each keeps working unchanged.',
    'keys.import.done': 'Imported {ok} of {n} keys.',
    'keys.import.failed': 'Line {n}: {msg}',
    'keys.never': 'Never',
};
const zh = {
    'nav.keys': 'API 密钥',
    'keys.title': 'API 密钥',
    'keys.create': '新建密钥',
    'keys.import': '导入密钥',
    'keys.new': '新建 API 密钥',
    'keys.edit': '编辑密钥 {name}',
    'keys.created': '密钥已创建',
    'keys.secret': '新的 API 密钥',
    'keys.done': '完成',
    'keys.f.q': '名称或前缀',
    'keys.f.status': '状态',
    'keys.f.user_id': '所有者（用户 ID）',
    'keys.f.group': '分组',
    'keys.any': '任意',
    'keys.name': '名称',
    'keys.user': '所有者',
    'keys.user.id': '所有者（用户 ID）',
    'keys.group': '分组',
    'keys.group.owner': '所有者的分组',
    'keys.quota': '额度（美元）',
    'keys.quota.help': '{per} 额度单位 = 1 美元。',
    'keys.unlimited': '不限额度',
    'keys.expires': '过期时间',
    'keys.expires.help': '留空：永不过期。',
    'keys.models': '允许的模型',
    'keys.models.help': '留空：任意模型。用逗号或换行分隔。',
    'keys.ips': '允许的客户端 IP',
    'keys.ips.help': '留空：任意地址。IPv4/IPv6 地址或 CIDR 网段。',
    'keys.maxbody': '请求体上限（字节）',
    'keys.maxbody.help': '留空：使用服务器限制。',
    'keys.status': '状态',
    'keys.status.active': '有效',
    'keys.status.disabled': '已禁用',
    'keys.status.expired': '已过期',
    'keys.status.exhausted': '额度耗尽',
    'keys.col.id': 'ID',
    'keys.col.name': '名称',
    'keys.col.key': '密钥',
    'keys.col.owner': '所有者',
    'keys.col.status': '状态',
    'keys.col.group': '分组',
    'keys.col.quota': '剩余 / 已用',
    'keys.col.expires': '过期时间',
    'keys.col.accessed': '最近使用',
    'keys.col.actions': '操作',
    'keys.unlimited.short': '不限',
    'keys.enable': '启用',
    'keys.disable': '禁用',
    'keys.editbtn': '编辑',
    'keys.delete': '删除',
    'keys.delete.confirm': '删除密钥“{name}”（{prefix}…）？使用它的客户端将立即被拒绝。',
    'keys.deleted': '密钥已删除。',
    'keys.saved': '密钥已保存。',
    'keys.import.title': '导入 new-api 签发的密钥',
    'keys.import.keys': '密钥',
    'keys.import.help': '每行一个密钥：48 个字符，可带或不带“sk-”。导入后原密钥继续可用。',
    'keys.import.done': '已导入 {ok} / {n} 个密钥。',
    'keys.import.failed': '第 {n} 行：{msg}',
    'keys.never': '永不',
};

const STATUS_KIND = { active: 'ok', disabled: 'muted', expired: 'warn', exhausted: 'error' };

async function options() {
    const [users, groups] = await Promise.all([
        api('GET', '/api/users', { query: { per_page: 100 } }).catch(() => null),
        api('GET', '/api/groups', { query: { per_page: 100 } }).catch(() => null),
    ]);
    return { users: users && users.total <= 100 ? users.data : null,
        groups: groups ? groups.data.map((g) => g.name) : [] };
}

function limitFields(k, opts, editing) {
    const per = getQuotaPerUsd();
    return [
        { name: 'name', label: t('keys.name'), value: k.name || '' },
        !editing && (opts.users
            ? { name: 'user_id', label: t('keys.user'), type: 'select', required: true, value: k.user_id ?? '',
                options: [{ value: '', label: '' }, ...opts.users.map((u) => ({ value: u.id, label: `${u.username} (#${u.id})` }))] }
            : { name: 'user_id', label: t('keys.user.id'), type: 'number', required: true, min: 1, step: 1 }),
        { name: 'key_group', label: t('keys.group'), type: 'select', value: k.key_group || '',
            options: [{ value: '', label: t('keys.group.owner') }, ...opts.groups.map((g) => ({ value: g, label: g }))] },
        { name: 'remain_usd', label: t('keys.quota'), type: 'number', min: 0, step: 'any',
            value: k.remain_quota !== undefined ? k.remain_quota / per : '', help: t('keys.quota.help', { per: fmt.num(per) }) },
        { name: 'unlimited_quota', label: t('keys.unlimited'), type: 'checkbox', value: !!k.unlimited_quota },
        { name: 'expires_at', label: t('keys.expires'), type: 'datetime', value: k.expires_at, help: t('keys.expires.help') },
        { name: 'allowed_models', label: t('keys.models'), type: 'tags', value: k.allowed_models || [],
            help: t('keys.models.help') },
        { name: 'allowed_ips', label: t('keys.ips'), type: 'tags', value: k.allowed_ips || [], help: t('keys.ips.help') },
        { name: 'max_body_bytes', label: t('keys.maxbody'), type: 'number', min: 1024, step: 1, value: k.max_body_bytes,
            help: t('keys.maxbody.help') },
        editing && { name: 'status', label: t('keys.status'), type: 'select', value: k.status === 'disabled' ? 'disabled' : 'active',
            options: ['active', 'disabled'].map((s) => ({ value: s, label: t(`keys.status.${s}`) })) },
    ].filter(Boolean);
}

function bodyOf(v, editing) {
    const b = {
        name: v.name,
        key_group: v.key_group || null,
        unlimited_quota: v.unlimited_quota,
        expires_at: v.expires_at,
        allowed_models: v.allowed_models.length ? v.allowed_models : null,
        allowed_ips: v.allowed_ips.length ? v.allowed_ips : null,
        max_body_bytes: v.max_body_bytes,
    };
    if (v.remain_usd !== null) b.remain_quota = Math.round(v.remain_usd * getQuotaPerUsd());
    if (!editing) {
        b.user_id = Number(v.user_id);
        for (const k of ['expires_at', 'allowed_models', 'allowed_ips', 'max_body_bytes', 'key_group']) {
            if (b[k] === null) delete b[k];
        }
    } else if (v.status) b.status = v.status;
    return b;
}

async function openEditor(k, reload) {
    const opts = await options();
    const editing = !!k;
    const dlg = modal({
        title: editing ? t('keys.edit', { name: k.name || k.key_prefix }) : t('keys.new'),
        wide: true,
        body: form({
            id: 'key',
            action: editing ? 'save' : 'create',
            fields: limitFields(k || {}, opts, editing),
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                if (editing) {
                    await api('PATCH', `/api/keys/${k.id}`, { body: bodyOf(v, true) });
                    toast(t('keys.saved'));
                    dlg.close();
                    reload();
                    return;
                }
                const r = (await api('POST', '/api/keys', { body: bodyOf(v, false) })).data;
                dlg.close();
                reload();
                modal({
                    title: t('keys.created'),
                    body: secretBox(t('keys.secret'), r.key),
                    actions: [{ label: t('keys.done'), kind: 'primary', action: 'done', onClick: (c) => c() }],
                });
            },
        }),
    });
}

async function openImport(reload) {
    const opts = await options();
    const fields = limitFields({}, opts, false);
    fields.unshift({ name: 'keys', label: t('keys.import.keys'), type: 'textarea', rows: 6, required: true,
        help: t('keys.import.help'), attrs: { autocomplete: 'off', spellcheck: 'false' } });
    const dlg = modal({
        title: t('keys.import.title'), wide: true,
        body: form({
            id: 'key-import', action: 'import', submitLabel: t('keys.import'),
            fields,
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                const keys = v.keys.split('\n').map((s) => s.trim()).filter(Boolean);
                const base = bodyOf(v, false);
                let ok = 0;
                const fails = [];
                for (let i = 0; i < keys.length; i++) {
                    try { await api('POST', '/api/keys/import', { body: { ...base, key: keys[i] } }); ok++; } catch (err) {
                        if (err.param && err.param !== 'key' && ok === 0) throw err;
                        fails.push(t('keys.import.failed', { n: i + 1, msg: err.message }));
                    }
                }
                toast(t('keys.import.done', { ok, n: keys.length }), fails.length ? 'error' : 'ok');
                reload();
                if (fails.length) throw new ApiError(400, { message: fails.join(' · ') });
                dlg.close();
            },
        }),
    });
}

export default {
    id: 'keys',
    nav: 'nav.keys',
    section: 'ops',
    roles: ['root', 'admin'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        let lv;
        const reload = () => lv.reload();
        const any = { value: '', label: t('keys.any') };
        const fail = (e) => toast(e.message, 'error');
        lv = listView({
            ctx, page: 'keys', path: '/api/keys', id: 'keys',
            filters: [
                { name: 'q', label: t('keys.f.q') },
                { name: 'status', label: t('keys.f.status'), type: 'select', options: [any,
                    ...['active', 'disabled', 'expired', 'exhausted'].map((s) => ({ value: s, label: t(`keys.status.${s}`) }))] },
                { name: 'user_id', label: t('keys.f.user_id'), type: 'number', min: 1, step: 1 },
                { name: 'group', label: t('keys.f.group') },
            ],
            columns: [
                { key: 'id', label: t('keys.col.id'), align: 'right' },
                { key: 'name', label: t('keys.col.name'), render: (k) => h('strong', null, k.name) },
                { key: 'key_prefix', label: t('keys.col.key'), render: (k) => h('code', null, `${k.key_prefix}…`) },
                { key: 'owner', label: t('keys.col.owner'), render: (k) => `${k.username ?? '?'} (#${k.user_id})` },
                { key: 'status', label: t('keys.col.status'),
                    render: (k) => badge(t(`keys.status.${k.status}`), STATUS_KIND[k.status] || 'warn') },
                { key: 'key_group', label: t('keys.col.group') },
                { key: 'quota', label: t('keys.col.quota'), align: 'right', render: (k) => h('span', null,
                    k.unlimited_quota ? t('keys.unlimited.short') : money(k.remain_quota), ' / ', money(k.used_quota)) },
                { key: 'expires_at', label: t('keys.col.expires'), render: (k) => (k.expires_at ? fmt.time(k.expires_at) : t('keys.never')) },
                { key: 'accessed_at', label: t('keys.col.accessed'), render: (k) => (k.accessed_at ? fmt.time(k.accessed_at) : null) },
                { key: 'actions', label: t('keys.col.actions'), render: (k) => h('div', { class: 'cell-actions' },
                    button(t('keys.editbtn'), 'edit', () => openEditor(k, reload).catch(fail), 'small'),
                    k.status === 'active' || k.status === 'disabled' ? button(
                        k.status === 'active' ? t('keys.disable') : t('keys.enable'), k.status === 'active' ? 'disable' : 'enable',
                        async () => {
                            try {
                                await api('PATCH', `/api/keys/${k.id}`, { body: { status: k.status === 'active' ? 'disabled' : 'active' } });
                                reload();
                            } catch (err) { fail(err); }
                        }, 'small') : null,
                    button(t('keys.delete'), 'delete', async () => {
                        if (!await confirmDialog(t('keys.delete.confirm', { name: k.name, prefix: k.key_prefix }))) return;
                        try { await api('DELETE', `/api/keys/${k.id}`); toast(t('keys.deleted')); reload(); } catch (err) { fail(err); }
                    }, 'small danger')) },
            ],
        });
        root.append(pageHeader(t('keys.title'),
            button(t('keys.import'), 'import', () => openImport(reload).catch(fail)),
            button(t('keys.create'), 'create', () => openEditor(null, reload).catch(fail), 'primary')),
        lv);
    },
};
