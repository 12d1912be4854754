// The governance audit log: filters, detail, export (CSV / JSON lines).
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, download } from '../core/api.js';
import { toast, modal, badge } from '../core/ui.js';
import { when, listView, pageHead, button, mount, kv, clean, yesNo, tr } from '../core/billing-ui.js';

const ACTIONS = ['block', 'downgrade', 'reroute', 'redact', 'tag', 'limit'];

export default {
    id: 'audit',
    nav: 'nav.audit',
    section: 'gov',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.audit': 'Audit log',
            'audit.title': 'Audit log',
            'audit.export': 'Export CSV', 'audit.export_jsonl': 'Export JSON lines', 'audit.exported': 'Export started.',
            'audit.c.when': 'Time', 'audit.c.policy': 'Policy', 'audit.c.action': 'Action', 'audit.c.stage': 'Stage',
            'audit.c.shadow': 'Shadow', 'audit.c.model': 'Model', 'audit.c.route': 'Route', 'audit.c.key': 'Key',
            'audit.c.user': 'User', 'audit.c.ip': 'Address', 'audit.c.excerpt': 'Excerpt', 'audit.c.matcher': 'Matcher',
            'audit.c.request': 'Request',
            'audit.f.from': 'From', 'audit.f.to': 'Until', 'audit.f.policy': 'Policy', 'audit.f.action': 'Action',
            'audit.f.stage': 'Stage', 'audit.f.shadow': 'Shadow', 'audit.f.key_id': 'Key id', 'audit.f.user_id': 'User id',
            'audit.f.model': 'Model', 'audit.f.route': 'Route', 'audit.f.request_id': 'Request id',
            'audit.row': 'Audit row #{id}',
            'audit.stage.request': 'request', 'audit.stage.response': 'response', 'audit.stage.limit': 'limit',
            'audit.shadow': 'shadow',
            'audit.act.block': 'block', 'audit.act.downgrade': 'downgrade', 'audit.act.reroute': 'reroute',
            'audit.act.redact': 'redact', 'audit.act.tag': 'tag', 'audit.act.limit': 'limit',
        },
        'zh-CN': {
            'nav.audit': '审计日志',
            'audit.title': '审计日志',
            'audit.export': '导出 CSV', 'audit.export_jsonl': '导出 JSON Lines', 'audit.exported': '已开始导出。',
            'audit.c.when': '时间', 'audit.c.policy': '策略', 'audit.c.action': '动作', 'audit.c.stage': '阶段',
            'audit.c.shadow': '影子', 'audit.c.model': '模型', 'audit.c.route': '路由', 'audit.c.key': '密钥',
            'audit.c.user': '用户', 'audit.c.ip': '地址', 'audit.c.excerpt': '摘录', 'audit.c.matcher': '条件',
            'audit.c.request': '请求',
            'audit.f.from': '起始', 'audit.f.to': '截止', 'audit.f.policy': '策略', 'audit.f.action': '动作',
            'audit.f.stage': '阶段', 'audit.f.shadow': '影子模式', 'audit.f.key_id': '密钥 ID', 'audit.f.user_id': '用户 ID',
            'audit.f.model': '模型', 'audit.f.route': '路由', 'audit.f.request_id': '请求 ID',
            'audit.row': '审计记录 #{id}',
            'audit.stage.request': '请求', 'audit.stage.response': '响应', 'audit.stage.limit': '限流',
            'audit.shadow': '影子',
            'audit.act.block': '拦截', 'audit.act.downgrade': '降级', 'audit.act.reroute': '改道',
            'audit.act.redact': '脱敏', 'audit.act.tag': '标记', 'audit.act.limit': '限流',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'audit';
        const q = ctx.query || {};
        const any = { value: '', label: t('bui.any') };
        const columns = [
            { key: 'created_at', label: t('audit.c.when'), render: (r) => when(r.created_at) },
            { key: 'policy', label: t('audit.c.policy') },
            { key: 'action', label: t('audit.c.action'), render: (r) => h('span', {}, badge(tr(`audit.act.${r.action}`, r.action), r.action === 'block' ? 'error' : 'info'),
                r.shadow ? h('span', {}, ' ', badge(t('audit.shadow'), 'warn')) : null) },
            { key: 'stage', label: t('audit.c.stage'), render: (r) => tr(`audit.stage.${r.stage}`, r.stage) },
            { key: 'model', label: t('audit.c.model') },
            { key: 'route', label: t('audit.c.route') },
            { key: 'user_id', label: t('audit.c.user'), align: 'right' },
            { key: 'excerpt', label: t('audit.c.excerpt'), render: (r) => r.excerpt || '' },
        ];
        const list = listView({
            id: 'audit', columns,
            initial: { policy: q.policy || '', request_id: q.request_id || '' },
            load: (query) => api('GET', '/api/audit', { query }),
            filterFields: [
                { name: 'from', label: t('audit.f.from'), type: 'datetime' },
                { name: 'to', label: t('audit.f.to'), type: 'datetime' },
                { name: 'policy', label: t('audit.f.policy'), type: 'text' },
                { name: 'action', label: t('audit.f.action'), type: 'select', options: [any, ...ACTIONS.map((a) => ({ value: a, label: t(`audit.act.${a}`) }))] },
                { name: 'stage', label: t('audit.f.stage'), type: 'select',
                    options: [any, ...['request', 'response', 'limit'].map((s) => ({ value: s, label: t(`audit.stage.${s}`) }))] },
                { name: 'shadow', label: t('audit.f.shadow'), type: 'select',
                    options: [any, { value: 'true', label: t('bui.yes') }, { value: 'false', label: t('bui.no') }] },
                { name: 'user_id', label: t('audit.f.user_id'), type: 'number' },
                { name: 'key_id', label: t('audit.f.key_id'), type: 'number' },
                { name: 'model', label: t('audit.f.model'), type: 'text' },
                { name: 'request_id', label: t('audit.f.request_id'), type: 'text' },
            ],
            onRow: (r) => modal({ title: t('audit.row', { id: r.id }), wide: true, actions: [], body: kv([
                [t('audit.c.when'), when(r.created_at)],
                [t('audit.c.policy'), r.policy],
                [t('audit.c.matcher'), r.matcher],
                [t('audit.c.action'), tr(`audit.act.${r.action}`, r.action)],
                [t('audit.c.shadow'), yesNo(r.shadow)],
                [t('audit.c.stage'), tr(`audit.stage.${r.stage}`, r.stage)],
                [t('audit.c.request'), r.request_id ? h('a', { href: `#/logs?id=${encodeURIComponent(r.request_id)}` }, r.request_id) : null],
                [t('audit.c.key'), r.key_id],
                [t('audit.c.user'), r.user_id],
                [t('audit.c.ip'), r.client_ip],
                [t('audit.c.model'), r.model],
                [t('audit.c.route'), r.route],
                [t('audit.c.excerpt'), r.excerpt ? h('code', {}, r.excerpt) : null],
            ]) }),
        });
        async function exp(format) {
            try {
                await download('/api/audit/export', { format, ...clean(list.state.filters) }, `audit.${format}`);
                toast(t('audit.exported'));
            } catch (err) { toast(err.message, 'error'); }
        }
        mount(root, pageHead(t('audit.title'),
            button(t('audit.export_jsonl'), 'export-jsonl', () => exp('jsonl')),
            button(t('audit.export'), 'export', () => exp('csv'), 'primary')), list.el);
        await list.refresh();
    },
};
