// Channels: the upstreams. List with health, create/edit (models, mapping,
// weights, priority, groups), upstream keys, test, enable/disable, import.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, ApiError } from '../core/api.js';
import { fmt, pageHeader, button, badge, form, modal, confirmDialog, toast, table, loading, errorBox, dl }
    from '../core/ui.js';
import { listView } from '../core/list.js';

const KINDS = ['openai', 'azure', 'openai-compatible', 'anthropic', 'gemini'];

const en = {
    'nav.channels': 'Channels',
    'ch.title': 'Channels',
    'ch.create': 'New channel',
    'ch.import': 'Import',
    'ch.edit': 'Edit channel {name}',
    'ch.new': 'New channel',
    'ch.keys.title': 'Upstream keys of {name}',
    'ch.f.q': 'Name contains',
    'ch.f.status': 'Status',
    'ch.f.kind': 'Type',
    'ch.f.group': 'Group',
    'ch.f.model': 'Model',
    'ch.any': 'Any',
    'ch.name': 'Name',
    'ch.kind': 'Type',
    'ch.base_url': 'Base URL',
    'ch.base_url.help': 'Empty: the provider\'s public endpoint. Azure and OpenAI-compatible channels need one.',
    'ch.key_mode': 'Key rotation',
    'ch.key_mode.round_robin': 'Round robin',
    'ch.key_mode.random': 'Random',
    'ch.models': 'Models',
    'ch.models.help': 'The model names clients ask for; commas or new lines between them.',
    'ch.mapping': 'Model mapping',
    'ch.mapping.help': 'One per line: client-model = upstream-model. Empty: none.',
    'ch.mapping.bad': 'Line {n}: write client-model = upstream-model.',
    'ch.groups': 'Groups',
    'ch.priority': 'Priority',
    'ch.priority.help': 'Higher is tried first.',
    'ch.weight': 'Weight',
    'ch.weight.help': 'Share among channels of the same priority.',
    'ch.timeout': 'Timeout (ms)',
    'ch.timeout.help': '0: the server\'s default.',
    'ch.proxy': 'Outbound proxy',
    'ch.auto_disable': 'Disable automatically on repeated failures',
    'ch.test_model': 'Test model',
    'ch.headers': 'Extra upstream headers',
    'ch.headers.help': 'One per line: Header-Name: value.',
    'ch.headers.bad': 'Line {n}: write Header-Name: value.',
    'ch.keys': 'Upstream API keys',
    'ch.keys.help': 'One key per line. They are stored encrypted and never shown again.',
    'ch.keys.add': 'Add keys',
    'ch.keys.added': '{n} keys in the channel now.',
    'ch.keys.addhelp': 'Paste one key per line (up to 100 at once).',
    'ch.col.id': 'ID',
    'ch.col.name': 'Name',
    'ch.col.kind': 'Type',
    'ch.col.models': 'Models',
    'ch.col.groups': 'Groups',
    'ch.col.prio': 'Priority / weight',
    'ch.col.health': 'Health',
    'ch.col.keys': 'Keys',
    'ch.col.resp': 'Last test',
    'ch.col.actions': 'Actions',
    'ch.more': '+{n} more',
    'ch.status.enabled': 'Enabled',
    'ch.status.disabled': 'Disabled',
    'ch.status.auto_disabled': 'Auto-disabled',
    'ch.test': 'Test',
    'ch.testing': 'Testing {name}…',
    'ch.test.ok': 'Test passed: {model} answered in {ms}.',
    'ch.test.fail': 'Test failed: {msg}',
    'ch.test.reenabled': 'The channel was enabled again.',
    'ch.enable': 'Enable',
    'ch.disable': 'Disable',
    'ch.editbtn': 'Edit',
    'ch.keysbtn': 'Keys',
    'ch.delete': 'Delete',
    'ch.delete.confirm': 'Delete channel “{name}”, its keys and its routes? Request logs keep its id.',
    'ch.deleted': 'Channel deleted.',
    'ch.saved': 'Channel saved.',
    'ch.created': 'Channel created.',
    'ch.key.masked': 'Key',
    'ch.key.status': 'Status',
    'ch.key.failures': 'Failures',
    'ch.key.error': 'Last error',
    'ch.key.cooldown': 'Cooling down until',
    'ch.key.delete.confirm': 'Delete key {masked}?',
    'ch.never': 'never tested',
    'ch.import.title': 'Import channels',
    'ch.import.json': 'Channels (JSON)',
    'ch.import.help': 'A JSON array of channel objects as the API takes them (name, kind, models, keys, …).',
    'ch.import.bad': 'Not a JSON array of objects.',
    'ch.import.done': 'Imported {ok} of {n} channels.',
    'ch.import.failed': 'Channel {n} ({name}): {msg}',
    'ch.reason': 'Reason',
    'ch.changed': 'Changed',
};
const zh = {
    'nav.channels': '渠道',
    'ch.title': '渠道',
    'ch.create': '新建渠道',
    'ch.import': '导入',
    'ch.edit': '编辑渠道 {name}',
    'ch.new': '新建渠道',
    'ch.keys.title': '{name} 的上游密钥',
    'ch.f.q': '名称包含',
    'ch.f.status': '状态',
    'ch.f.kind': '类型',
    'ch.f.group': '分组',
    'ch.f.model': '模型',
    'ch.any': '任意',
    'ch.name': '名称',
    'ch.kind': '类型',
    'ch.base_url': '基础 URL',
    'ch.base_url.help': '留空：使用服务商的公共端点。Azure 和 OpenAI 兼容渠道必须填写。',
    'ch.key_mode': '密钥轮换',
    'ch.key_mode.round_robin': '轮询',
    'ch.key_mode.random': '随机',
    'ch.models': '模型',
    'ch.models.help': '客户端请求的模型名；用逗号或换行分隔。',
    'ch.mapping': '模型映射',
    'ch.mapping.help': '每行一条：客户端模型 = 上游模型。留空：不映射。',
    'ch.mapping.bad': '第 {n} 行：请写成 客户端模型 = 上游模型。',
    'ch.groups': '分组',
    'ch.priority': '优先级',
    'ch.priority.help': '数值越大越先尝试。',
    'ch.weight': '权重',
    'ch.weight.help': '同一优先级渠道之间的分配比例。',
    'ch.timeout': '超时（毫秒）',
    'ch.timeout.help': '0：使用服务器默认值。',
    'ch.proxy': '出站代理',
    'ch.auto_disable': '连续失败时自动禁用',
    'ch.test_model': '测试模型',
    'ch.headers': '附加上游请求头',
    'ch.headers.help': '每行一条：Header-Name: 值。',
    'ch.headers.bad': '第 {n} 行：请写成 Header-Name: 值。',
    'ch.keys': '上游 API 密钥',
    'ch.keys.help': '每行一个密钥。密钥加密保存，之后不再显示。',
    'ch.keys.add': '添加密钥',
    'ch.keys.added': '渠道现有 {n} 个密钥。',
    'ch.keys.addhelp': '每行粘贴一个密钥（一次最多 100 个）。',
    'ch.col.id': 'ID',
    'ch.col.name': '名称',
    'ch.col.kind': '类型',
    'ch.col.models': '模型',
    'ch.col.groups': '分组',
    'ch.col.prio': '优先级 / 权重',
    'ch.col.health': '健康状态',
    'ch.col.keys': '密钥',
    'ch.col.resp': '最近测试',
    'ch.col.actions': '操作',
    'ch.more': '另有 {n} 个',
    'ch.status.enabled': '已启用',
    'ch.status.disabled': '已禁用',
    'ch.status.auto_disabled': '已自动禁用',
    'ch.test': '测试',
    'ch.testing': '正在测试 {name}…',
    'ch.test.ok': '测试通过：{model} 用时 {ms}。',
    'ch.test.fail': '测试失败：{msg}',
    'ch.test.reenabled': '渠道已重新启用。',
    'ch.enable': '启用',
    'ch.disable': '禁用',
    'ch.editbtn': '编辑',
    'ch.keysbtn': '密钥',
    'ch.delete': '删除',
    'ch.delete.confirm': '删除渠道“{name}”及其密钥和路由？请求日志会保留其 ID。',
    'ch.deleted': '渠道已删除。',
    'ch.saved': '渠道已保存。',
    'ch.created': '渠道已创建。',
    'ch.key.masked': '密钥',
    'ch.key.status': '状态',
    'ch.key.failures': '失败次数',
    'ch.key.error': '最近错误',
    'ch.key.cooldown': '冷却至',
    'ch.key.delete.confirm': '删除密钥 {masked}？',
    'ch.never': '从未测试',
    'ch.import.title': '导入渠道',
    'ch.import.json': '渠道（JSON）',
    'ch.import.help': '渠道对象的 JSON 数组，字段与 API 相同（name、kind、models、keys 等）。',
    'ch.import.bad': '不是对象组成的 JSON 数组。',
    'ch.import.done': '已导入 {ok} / {n} 个渠道。',
    'ch.import.failed': '第 {n} 个渠道（{name}）：{msg}',
    'ch.reason': '原因',
    'ch.changed': '变更时间',
};

const STATUS_KIND = { enabled: 'ok', disabled: 'muted', auto_disabled: 'error' };

function statusBadge(s) { return badge(t(`ch.status.${s}`), STATUS_KIND[s] || 'warn'); }

function list(arr, max = 3) {
    if (!arr || !arr.length) return null;
    const shown = arr.slice(0, max).join(', ');
    return arr.length > max ? h('span', { title: arr.join(', ') }, shown, ' ', h('span', { class: 'muted' },
        t('ch.more', { n: arr.length - max }))) : shown;
}

function mappingText(m) { return m ? Object.entries(m).map(([k, v]) => `${k} = ${v}`).join('\n') : ''; }
function headersText(m) { return m ? Object.entries(m).map(([k, v]) => `${k}: ${v}`).join('\n') : ''; }

function parseLines(text, sep, param, badKey) {
    const out = {};
    const lines = (text || '').split('\n');
    for (let i = 0; i < lines.length; i++) {
        const l = lines[i].trim();
        if (!l) continue;
        const at = l.indexOf(sep);
        if (at <= 0) throw new ApiError(400, { param, message: t(badKey, { n: i + 1 }) });
        out[l.slice(0, at).trim()] = l.slice(at + sep.length).trim();
    }
    return Object.keys(out).length ? out : null;
}

async function groupOptions() {
    try {
        const r = await api('GET', '/api/groups', { query: { per_page: 100 } });
        return r.data.map((g) => g.name);
    } catch { return ['default']; }
}

function health(c) {
    const parts = [statusBadge(c.status)];
    if (c.circuit || c.breaker) {
        const b = c.circuit || c.breaker;
        const state = typeof b === 'string' ? b : b.state;
        if (state) parts.push(' ', badge(state, state === 'closed' ? 'ok' : state === 'open' ? 'error' : 'warn'));
    }
    const title = [c.status_reason, c.status_changed_at ? fmt.time(c.status_changed_at) : null].filter(Boolean).join(' · ');
    return h('span', { title: title || null }, parts, c.status_reason
        ? h('div', { class: 'muted small' }, c.status_reason) : null);
}

function editForm(c, groups, done) {
    const editing = !!c;
    c = c || {};
    const fields = [
        { name: 'name', label: t('ch.name'), required: true, value: c.name },
        { name: 'kind', label: t('ch.kind'), type: 'select', required: true, value: c.kind || 'openai',
            options: KINDS.map((k) => ({ value: k, label: k })) },
        { name: 'base_url', label: t('ch.base_url'), value: c.base_url, help: t('ch.base_url.help'),
            placeholder: 'https://api.example.com', full: true },
        { name: 'models', label: t('ch.models'), type: 'tags', rows: 2, required: true, value: c.models,
            help: t('ch.models.help'), full: true },
        { name: 'model_mapping', label: t('ch.mapping'), type: 'textarea', rows: 3, value: mappingText(c.model_mapping),
            help: t('ch.mapping.help'), placeholder: 'gpt-4o = gpt-4o-2024-08-06' },
        { name: 'channel_groups', label: t('ch.groups'), type: 'tags', value: c.channel_groups || ['default'],
            help: groups.join(', ') },
        { name: 'priority', label: t('ch.priority'), type: 'number', value: c.priority ?? 0, step: 1,
            help: t('ch.priority.help') },
        { name: 'weight', label: t('ch.weight'), type: 'number', value: c.weight ?? 1, min: 0, step: 1,
            help: t('ch.weight.help') },
        { name: 'key_mode', label: t('ch.key_mode'), type: 'select', value: c.key_mode || 'round_robin',
            options: ['round_robin', 'random'].map((k) => ({ value: k, label: t(`ch.key_mode.${k}`) })) },
        { name: 'timeout_ms', label: t('ch.timeout'), type: 'number', value: c.timeout_ms ?? 0, min: 0, step: 1,
            help: t('ch.timeout.help') },
        { name: 'test_model', label: t('ch.test_model'), value: c.test_model || '' },
        { name: 'proxy', label: t('ch.proxy'), value: c.proxy || '', placeholder: 'socks5://127.0.0.1:1080' },
        { name: 'header_override', label: t('ch.headers'), type: 'textarea', rows: 2,
            value: headersText(c.header_override), help: t('ch.headers.help') },
        { name: 'auto_disable', label: t('ch.auto_disable'), type: 'checkbox', value: c.auto_disable ?? true },
    ];
    if (!editing) {
        fields.push({ name: 'keys', label: t('ch.keys'), type: 'textarea', rows: 3, help: t('ch.keys.help'),
            attrs: { autocomplete: 'off', spellcheck: 'false' } });
    }
    return form({
        id: 'channel',
        fields,
        onCancel: () => done(null),
        onSubmit: async (v) => {
            const body = {
                name: v.name, kind: v.kind, models: v.models, channel_groups: v.channel_groups,
                model_mapping: parseLines(v.model_mapping, '=', 'model_mapping', 'ch.mapping.bad'),
                header_override: parseLines(v.header_override, ':', 'header_override', 'ch.headers.bad'),
                priority: v.priority ?? 0, weight: v.weight ?? 1, key_mode: v.key_mode,
                timeout_ms: v.timeout_ms ?? 0, test_model: v.test_model || null, proxy: v.proxy || null,
                auto_disable: v.auto_disable,
            };
            if (v.base_url || editing) body.base_url = v.base_url;
            if (!editing) {
                const keys = (v.keys || '').split('\n').map((s) => s.trim()).filter(Boolean);
                if (keys.length) body.keys = keys;
            }
            const r = editing ? await api('PATCH', `/api/channels/${c.id}`, { body })
                : await api('POST', '/api/channels', { body });
            toast(t(editing ? 'ch.saved' : 'ch.created'));
            done(r.data);
        },
    });
}

async function openEditor(c, reload) {
    const groups = await groupOptions();
    let full = c;
    if (c) full = (await api('GET', `/api/channels/${c.id}`)).data;
    const dlg = modal({
        title: c ? t('ch.edit', { name: c.name }) : t('ch.new'),
        wide: true,
        body: editForm(full, groups, (saved) => { dlg.close(); if (saved) reload(); }),
    });
}

function keysTable(ch, keys, refresh) {
    return table({
        id: 'channel-keys',
        rows: keys,
        columns: [
            { key: 'masked', label: t('ch.key.masked'), render: (k) => h('code', null, k.masked) },
            { key: 'status', label: t('ch.key.status'), render: (k) => statusBadge(k.status) },
            { key: 'failures', label: t('ch.key.failures'), align: 'right', render: (k) => fmt.num(k.failures) },
            { key: 'last_error', label: t('ch.key.error'), render: (k) => k.last_error },
            { key: 'cooldown_until', label: t('ch.key.cooldown'),
                render: (k) => (k.cooldown_until > Date.now() ? fmt.time(k.cooldown_until) : null) },
            { key: 'actions', label: t('ch.col.actions'), render: (k) => h('div', { class: 'cell-actions' },
                button(k.status === 'enabled' ? t('ch.disable') : t('ch.enable'),
                    k.status === 'enabled' ? 'disable-key' : 'enable-key', async () => {
                        try {
                            await api('PATCH', `/api/channels/${ch.id}/keys/${k.id}`,
                                { body: { status: k.status === 'enabled' ? 'disabled' : 'enabled' } });
                            refresh();
                        } catch (err) { toast(err.message, 'error'); }
                    }, 'small'),
                button(t('ch.delete'), 'delete-key', async () => {
                    if (!await confirmDialog(t('ch.key.delete.confirm', { masked: k.masked }))) return;
                    try {
                        await api('DELETE', `/api/channels/${ch.id}/keys/${k.id}`);
                        refresh();
                    } catch (err) { toast(err.message, 'error'); }
                }, 'small')) },
        ],
    });
}

function openKeys(ch, reload) {
    const holder = h('div', null, loading());
    const refresh = async () => {
        try {
            const full = (await api('GET', `/api/channels/${ch.id}`)).data;
            clear(holder).append(keysTable(ch, full.keys || [], refresh));
        } catch (err) { clear(holder).append(errorBox(err)); }
    };
    const add = form({
        id: 'channel-keys-add', action: 'add-keys', submitLabel: t('ch.keys.add'),
        fields: [{ name: 'keys', label: t('ch.keys.add'), type: 'textarea', rows: 4, required: true,
            help: t('ch.keys.addhelp'), attrs: { autocomplete: 'off', spellcheck: 'false' } }],
        onSubmit: async (v, f) => {
            const keys = v.keys.split('\n').map((s) => s.trim()).filter(Boolean);
            const r = await api('POST', `/api/channels/${ch.id}/keys`, { body: { keys } });
            f.input('keys').value = '';
            toast(t('ch.keys.added', { n: r.data.length }));
            refresh();
        },
    });
    modal({ title: t('ch.keys.title', { name: ch.name }), wide: true, body: [holder, add],
        onClose: reload });
    refresh();
}

async function testChannel(c, reload) {
    toast(t('ch.testing', { name: c.name }));
    try {
        const r = (await api('POST', `/api/channels/${c.id}/test`, { body: {} })).data;
        if (r.ok) toast(t('ch.test.ok', { model: r.model, ms: fmt.ms(r.latency_ms) }));
        else toast(t('ch.test.fail', { msg: `${r.status ? `HTTP ${r.status}: ` : ''}${r.message || ''}` }), 'error');
        if (r.reenabled) toast(t('ch.test.reenabled'));
    } catch (err) {
        toast(t('ch.test.fail', { msg: err.message }), 'error');
    }
    reload();
}

function openImport(reload) {
    const dlg = modal({
        title: t('ch.import.title'), wide: true,
        body: form({
            id: 'channel-import', action: 'import', submitLabel: t('ch.import'),
            fields: [{ name: 'json', label: t('ch.import.json'), type: 'textarea', rows: 10, required: true,
                help: t('ch.import.help'), placeholder: '[{"name": "…", "kind": "openai", "models": ["gpt-4o"], "keys": ["sk-…"]}]' }],
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                let arr;
                try { arr = JSON.parse(v.json); } catch { arr = null; }
                if (!Array.isArray(arr) || !arr.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
                    throw new ApiError(400, { param: 'json', message: t('ch.import.bad') });
                }
                let ok = 0;
                const fails = [];
                for (let i = 0; i < arr.length; i++) {
                    try { await api('POST', '/api/channels', { body: arr[i] }); ok++; } catch (err) {
                        fails.push(t('ch.import.failed', { n: i + 1, name: arr[i].name || '?', msg: err.message }));
                    }
                }
                toast(t('ch.import.done', { ok, n: arr.length }), fails.length ? 'error' : 'ok');
                reload();
                if (fails.length) throw new ApiError(400, { message: fails.join(' · ') });
                dlg.close();
            },
        }),
    });
}

export default {
    id: 'channels',
    nav: 'nav.channels',
    section: 'ops',
    roles: ['root', 'admin'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        let lv;
        const reload = () => lv.reload();
        const any = { value: '', label: t('ch.any') };
        lv = listView({
            ctx, page: 'channels', path: '/api/channels', id: 'channels',
            filters: [
                { name: 'q', label: t('ch.f.q') },
                { name: 'status', label: t('ch.f.status'), type: 'select', options: [any,
                    ...['enabled', 'disabled', 'auto_disabled'].map((s) => ({ value: s, label: t(`ch.status.${s}`) }))] },
                { name: 'kind', label: t('ch.f.kind'), type: 'select', options: [any, ...KINDS.map((k) => ({ value: k, label: k }))] },
                { name: 'group', label: t('ch.f.group') },
                { name: 'model', label: t('ch.f.model') },
            ],
            columns: [
                { key: 'id', label: t('ch.col.id'), align: 'right' },
                { key: 'name', label: t('ch.col.name'), render: (c) => h('strong', null, c.name) },
                { key: 'kind', label: t('ch.col.kind'), render: (c) => badge(c.kind, 'info') },
                { key: 'models', label: t('ch.col.models'), render: (c) => list(c.models) },
                { key: 'channel_groups', label: t('ch.col.groups'), render: (c) => list(c.channel_groups) },
                { key: 'prio', label: t('ch.col.prio'), align: 'right', render: (c) => `${c.priority} / ${c.weight}` },
                { key: 'health', label: t('ch.col.health'), render: health },
                { key: 'keys', label: t('ch.col.keys'), align: 'right', render: (c) => `${c.keys_enabled} / ${c.key_count}` },
                { key: 'resp', label: t('ch.col.resp'), render: (c) => (c.tested_at
                    ? h('span', { title: fmt.time(c.tested_at) }, fmt.ms(c.response_ms)) : h('span', { class: 'muted' }, t('ch.never'))) },
                { key: 'actions', label: t('ch.col.actions'), render: (c) => h('div', { class: 'cell-actions' },
                    button(t('ch.test'), 'test', () => testChannel(c, reload), 'small'),
                    button(t('ch.editbtn'), 'edit', () => openEditor(c, reload).catch((e) => toast(e.message, 'error')), 'small'),
                    button(t('ch.keysbtn'), 'keys', () => openKeys(c, reload), 'small'),
                    button(c.status === 'enabled' ? t('ch.disable') : t('ch.enable'),
                        c.status === 'enabled' ? 'disable' : 'enable', async () => {
                            try {
                                await api('PATCH', `/api/channels/${c.id}`,
                                    { body: { status: c.status === 'enabled' ? 'disabled' : 'enabled' } });
                                reload();
                            } catch (err) { toast(err.message, 'error'); }
                        }, 'small'),
                    button(t('ch.delete'), 'delete', async () => {
                        if (!await confirmDialog(t('ch.delete.confirm', { name: c.name }))) return;
                        try { await api('DELETE', `/api/channels/${c.id}`); toast(t('ch.deleted')); reload(); }
                        catch (err) { toast(err.message, 'error'); }
                    }, 'small danger')) },
            ],
        });
        root.append(pageHeader(t('ch.title'),
            button(t('ch.import'), 'import', () => openImport(reload)),
            button(t('ch.create'), 'create', () => openEditor(null, reload).catch((e) => toast(e.message, 'error')), 'primary')),
        lv);
    },
};
