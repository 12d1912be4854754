// My API keys (/api/self/keys: the shapes of /api/keys, the owner implied):
// list, create (the key shown once), edit, disable, delete.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { confirmDialog, toast, modal, secretBox } from '../core/ui.js';
import { money, when, statusBadge, toBool, listView, formDialog, pageHead, button, mount,
                  usdToUnits } from '../core/billing-ui.js';

function keyFields(k = {}) {
    const perUsd = k.remain_quota !== undefined ? (k.remain_quota / usdToUnits(1)) : '';
    return [
        { name: 'name', label: t('skeys.f.name'), type: 'text', value: k.name || '' },
        { name: 'remain_quota', label: t('skeys.f.remain_usd'), type: 'text', value: perUsd === '' ? '' : String(perUsd),
            help: t('skeys.h.remain') },
        { name: 'unlimited_quota', label: t('skeys.f.unlimited'), type: 'checkbox', value: k.unlimited_quota ?? true },
        { name: 'expires_at', label: t('skeys.f.expires_at'), type: 'datetime', value: k.expires_at || null, help: t('skeys.h.never') },
        { name: 'allowed_models', label: t('skeys.f.models'), type: 'tags', value: k.allowed_models || [], help: t('skeys.h.any') },
        { name: 'allowed_ips', label: t('skeys.f.ips'), type: 'tags', value: k.allowed_ips || [], help: t('skeys.h.ips') },
    ];
}
function keyBody(v, editing) {
    const b = { name: v.name || '', unlimited_quota: toBool(v.unlimited_quota) };
    const r = String(v.remain_quota ?? '').trim();
    if (r !== '') b.remain_quota = usdToUnits(r);
    const e = v.expires_at || null;
    if (e) b.expires_at = typeof e === 'number' ? e : Date.parse(e);
    else if (editing) b.expires_at = null;
    const models = Array.isArray(v.allowed_models) ? v.allowed_models : [];
    const ips = Array.isArray(v.allowed_ips) ? v.allowed_ips : [];
    if (models.length) b.allowed_models = models; else if (editing) b.allowed_models = null;
    if (ips.length) b.allowed_ips = ips; else if (editing) b.allowed_ips = null;
    return b;
}

export default {
    id: 'self-keys',
    nav: 'nav.self-keys',
    section: 'self',
    roles: ['user', 'operator', 'admin', 'root'],
    strings: {
        en: {
            'nav.self-keys': 'My API keys',
            'skeys.title': 'My API keys',
            'skeys.create': 'New key',
            'skeys.created': 'Your new key',
            'skeys.secret': 'API key',
            'skeys.edit': 'Key {name}',
            'skeys.delete_q': 'Delete key {name}? Clients using it stop working at once.',
            'skeys.disable': 'Disable', 'skeys.enable': 'Enable',
            'skeys.c.name': 'Name', 'skeys.c.prefix': 'Key', 'skeys.c.status': 'Status', 'skeys.c.remain': 'Remaining',
            'skeys.c.used': 'Used', 'skeys.c.expires': 'Expires', 'skeys.c.accessed': 'Last used',
            'skeys.f.name': 'Name', 'skeys.f.remain_usd': 'Quota (USD)', 'skeys.f.unlimited': 'Unlimited (limited by your balance only)',
            'skeys.f.expires_at': 'Expires', 'skeys.f.models': 'Allowed models', 'skeys.f.ips': 'Allowed client addresses',
            'skeys.h.remain': 'What the key may spend, when not unlimited.', 'skeys.h.never': 'Empty: never.',
            'skeys.h.any': 'Empty: any.', 'skeys.h.ips': 'Addresses or CIDR blocks. Empty: any.',
            'skeys.unlimited': 'unlimited', 'skeys.never': 'never',
        },
        'zh-CN': {
            'nav.self-keys': '我的 API 密钥',
            'skeys.title': '我的 API 密钥',
            'skeys.create': '新建密钥',
            'skeys.created': '你的新密钥',
            'skeys.secret': 'API 密钥',
            'skeys.edit': '密钥 {name}',
            'skeys.delete_q': '删除密钥 {name}？使用它的客户端将立即失效。',
            'skeys.disable': '停用', 'skeys.enable': '启用',
            'skeys.c.name': '名称', 'skeys.c.prefix': '密钥', 'skeys.c.status': '状态', 'skeys.c.remain': '剩余额度',
            'skeys.c.used': '已用', 'skeys.c.expires': '到期', 'skeys.c.accessed': '最近使用',
            'skeys.f.name': '名称', 'skeys.f.remain_usd': '额度（美元）', 'skeys.f.unlimited': '不限额度（仅受余额限制）',
            'skeys.f.expires_at': '到期时间', 'skeys.f.models': '允许的模型', 'skeys.f.ips': '允许的客户端地址',
            'skeys.h.remain': '不设为不限额度时，密钥可花费的金额。', 'skeys.h.never': '留空：永不到期。',
            'skeys.h.any': '留空：不限。', 'skeys.h.ips': '地址或 CIDR 网段。留空：不限。',
            'skeys.unlimited': '不限', 'skeys.never': '永不',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'self-keys';
        const columns = [
            { key: 'name', label: t('skeys.c.name') },
            { key: 'key_prefix', label: t('skeys.c.prefix'), render: (k) => h('code', {}, `${k.key_prefix}…`) },
            { key: 'status', label: t('skeys.c.status'), render: (k) => statusBadge(k.status) },
            { key: 'remain_quota', label: t('skeys.c.remain'), align: 'right', render: (k) => (k.unlimited_quota ? t('skeys.unlimited') : money(k.remain_quota)) },
            { key: 'used_quota', label: t('skeys.c.used'), align: 'right', render: (k) => money(k.used_quota) },
            { key: 'expires_at', label: t('skeys.c.expires'), render: (k) => (k.expires_at ? when(k.expires_at) : t('skeys.never')) },
            { key: 'accessed_at', label: t('skeys.c.accessed'), render: (k) => when(k.accessed_at) },
            { key: '_a', label: t('bui.actions'), render: (k) => h('span', { class: 'row-actions' },
                k.status === 'active' ? button(t('skeys.disable'), 'disable', () => setStatus(k, 'disabled'))
                    : k.status === 'disabled' ? button(t('skeys.enable'), 'enable', () => setStatus(k, 'active')) : null,
                button(t('bui.delete'), 'delete', () => del(k), 'danger')) },
        ];
        const list = listView({ id: 'self-keys', columns,
            load: (query) => api('GET', '/api/self/keys', { query }), onRow: (k) => edit(k) });
        async function create() {
            const r = await formDialog({ title: t('skeys.create'), id: 'self-key', action: 'save', fields: keyFields(),
                onSubmit: (v) => api('POST', '/api/self/keys', { body: keyBody(v, false) }) });
            if (r && r.data) {
                modal({ title: t('skeys.created'), body: secretBox(t('skeys.secret'), r.data.key), actions: [] });
                list.refresh();
            }
        }
        async function edit(k) {
            const r = await formDialog({ title: t('skeys.edit', { name: k.name || k.key_prefix }), id: 'self-key', fields: keyFields(k),
                onSubmit: (v) => api('PATCH', `/api/self/keys/${k.id}`, { body: keyBody(v, true) }) });
            if (r) { toast(t('bui.saved')); list.refresh(); }
        }
        async function setStatus(k, status) {
            try { await api('PATCH', `/api/self/keys/${k.id}`, { body: { status } }); toast(t('bui.saved')); list.refresh(); }
            catch (err) { toast(err.message, 'error'); }
        }
        async function del(k) {
            if (!(await confirmDialog(t('skeys.delete_q', { name: k.name || k.key_prefix })))) return;
            try { await api('DELETE', `/api/self/keys/${k.id}`); toast(t('bui.deleted')); list.refresh(); }
            catch (err) { toast(err.message, 'error'); }
        }
        const createBtn = button(t('skeys.create'), 'create', create, 'primary');
        mount(root, pageHead(t('skeys.title'), createBtn), list.el);
        // no create button where the server has no self-service keys (or refuses them)
        if (!(await list.refresh())) createBtn.style.display = 'none';
    },
};
