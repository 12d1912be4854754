// Rate and concurrency limits: list (stored and declared), create, edit, delete.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { confirmDialog, toast, fmt, badge } from '../core/ui.js';
import { canWrite, when, toInt, toBool, listView, formDialog, pageHead, button, notice, mount,
                  yesNo } from '../core/billing-ui.js';

const SCOPES = ['key', 'user', 'group', 'model'];
const unlimited = (n) => (n ? fmt.num(n) : t('rl.unlimited'));

function countFields(l = {}, scope) {
    const f = [
        { name: 'rpm', label: t('rl.f.rpm'), type: 'number', value: l.rpm ?? 0, help: t('rl.h.zero') },
        { name: 'tpm', label: t('rl.f.tpm'), type: 'number', value: l.tpm ?? 0, help: t('rl.h.zero') },
    ];
    if (!scope || scope === 'key') {
        f.push({ name: 'max_streams', label: t('rl.f.max_streams'), type: 'number', value: l.max_streams ?? 0, help: t('rl.h.streams') });
    }
    f.push({ name: 'enabled', label: t('rl.f.enabled'), type: 'checkbox', value: l.enabled ?? true });
    return f;
}
function counts(v, scope) {
    const b = { rpm: toInt(v.rpm) ?? 0, tpm: toInt(v.tpm) ?? 0, enabled: toBool(v.enabled) };
    if (scope === 'key') b.max_streams = toInt(v.max_streams) ?? 0;
    return b;
}

export default {
    id: 'ratelimits',
    nav: 'nav.ratelimits',
    section: 'gov',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.ratelimits': 'Rate limits',
            'rl.title': 'Rate limits',
            'rl.create': 'New limit',
            'rl.edit': 'Limit on {scope} {value}',
            'rl.delete_q': 'Delete the limit on {scope} {value}?',
            'rl.config': 'configuration',
            'rl.db': 'stored',
            'rl.unlimited': 'no limit',
            'rl.c.scope': 'Scope', 'rl.c.value': 'Value', 'rl.c.rpm': 'Requests / min', 'rl.c.tpm': 'Tokens / min',
            'rl.c.streams': 'Streams', 'rl.c.enabled': 'Enabled', 'rl.c.source': 'Source', 'rl.c.updated': 'Updated',
            'rl.f.scope_kind': 'Scope', 'rl.f.scope_value': 'Value',
            'rl.f.rpm': 'Requests per minute', 'rl.f.tpm': 'Tokens per minute', 'rl.f.max_streams': 'Concurrent streams',
            'rl.f.enabled': 'Enabled',
            'rl.h.value': 'A key or user id, a group name, a model glob (gpt-4o*), or * for each one apart.',
            'rl.h.zero': '0: no limit.', 'rl.h.streams': 'Key limits only. 0: no limit.',
            'rl.scope.key': 'key', 'rl.scope.user': 'user', 'rl.scope.group': 'group', 'rl.scope.model': 'model',
            'rl.filter.scope': 'Scope',
        },
        'zh-CN': {
            'nav.ratelimits': '限流',
            'rl.title': '限流',
            'rl.create': '新建限流',
            'rl.edit': '{scope} {value} 的限流',
            'rl.delete_q': '删除 {scope} {value} 的限流？',
            'rl.config': '配置文件',
            'rl.db': '数据库',
            'rl.unlimited': '不限',
            'rl.c.scope': '范围', 'rl.c.value': '取值', 'rl.c.rpm': '每分钟请求', 'rl.c.tpm': '每分钟令牌',
            'rl.c.streams': '并发流', 'rl.c.enabled': '启用', 'rl.c.source': '来源', 'rl.c.updated': '更新时间',
            'rl.f.scope_kind': '范围', 'rl.f.scope_value': '取值',
            'rl.f.rpm': '每分钟请求数', 'rl.f.tpm': '每分钟令牌数', 'rl.f.max_streams': '并发流数',
            'rl.f.enabled': '启用',
            'rl.h.value': '密钥或用户 ID、分组名、模型通配符（gpt-4o*），或用 * 表示逐个分别限制。',
            'rl.h.zero': '0：不限。', 'rl.h.streams': '仅密钥限流。0：不限。',
            'rl.scope.key': '密钥', 'rl.scope.user': '用户', 'rl.scope.group': '分组', 'rl.scope.model': '模型',
            'rl.filter.scope': '范围',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'ratelimits';
        const write = canWrite(ctx);
        const columns = [
            { key: 'scope_kind', label: t('rl.c.scope'), render: (l) => t(`rl.scope.${l.scope_kind}`) },
            { key: 'scope_value', label: t('rl.c.value'), render: (l) => h('code', {}, l.scope_value) },
            { key: 'rpm', label: t('rl.c.rpm'), align: 'right', render: (l) => unlimited(l.rpm) },
            { key: 'tpm', label: t('rl.c.tpm'), align: 'right', render: (l) => unlimited(l.tpm) },
            { key: 'max_streams', label: t('rl.c.streams'), align: 'right', render: (l) => unlimited(l.max_streams ?? l.streams) },
            { key: 'enabled', label: t('rl.c.enabled'), render: (l) => yesNo(l.enabled !== false) },
            { key: 'source', label: t('rl.c.source'), render: (l) => badge(l.source === 'config' ? t('rl.config') : t('rl.db'), l.source === 'config' ? 'warn' : 'info') },
            { key: 'updated_at', label: t('rl.c.updated'), render: (l) => when(l.updated_at) },
        ];
        if (write) {
            columns.push({ key: '_a', label: t('bui.actions'), render: (l) => (l.source === 'config' ? '' : h('span', { class: 'row-actions' },
                button(t('bui.edit'), 'edit', () => edit(l)),
                button(t('bui.delete'), 'delete', () => del(l), 'danger'))) });
        }
        const list = listView({
            id: 'ratelimits', columns, paged: false,
            load: (query) => api('GET', '/api/rate-limits', { query }),
            filterFields: [{ name: 'scope_kind', label: t('rl.filter.scope'), type: 'select',
                options: [{ value: '', label: t('bui.any') }, ...SCOPES.map((s) => ({ value: s, label: t(`rl.scope.${s}`) }))] }],
            onRow: write ? (l) => (l.source === 'config' ? null : edit(l)) : undefined,
        });
        async function create() {
            const ok = await formDialog({ title: t('rl.create'), id: 'ratelimit', fields: [
                { name: 'scope_kind', label: t('rl.f.scope_kind'), type: 'select', value: 'key',
                    options: SCOPES.map((s) => ({ value: s, label: t(`rl.scope.${s}`) })) },
                { name: 'scope_value', label: t('rl.f.scope_value'), type: 'text', required: true, help: t('rl.h.value') },
                ...countFields(),
            ], onSubmit: (v) => {
                const body = { scope_kind: v.scope_kind, scope_value: String(v.scope_value).trim(), ...counts(v, v.scope_kind) };
                return api('POST', '/api/rate-limits', { body });
            } });
            if (ok) { toast(t('bui.saved')); list.refresh(); }
        }
        async function edit(l) {
            const ok = await formDialog({ title: t('rl.edit', { scope: t(`rl.scope.${l.scope_kind}`), value: l.scope_value }), id: 'ratelimit',
                fields: countFields(l, l.scope_kind),
                onSubmit: (v) => api('PATCH', `/api/rate-limits/${l.id}`, { body: counts(v, l.scope_kind) }) });
            if (ok) { toast(t('bui.saved')); list.refresh(); }
        }
        async function del(l) {
            if (!(await confirmDialog(t('rl.delete_q', { scope: t(`rl.scope.${l.scope_kind}`), value: l.scope_value })))) return;
            try { await api('DELETE', `/api/rate-limits/${l.id}`); toast(t('bui.deleted')); list.refresh(); }
            catch (err) { toast(err.message, 'error'); }
        }
        mount(root, pageHead(t('rl.title'), write ? button(t('rl.create'), 'create', create, 'primary') : null),
                    write ? null : notice(t('bui.readonly')), list.el);
        await list.refresh();
    },
};
