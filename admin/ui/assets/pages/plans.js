// Plans (billing): list, create, edit, delete (archive when subscribed).
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { confirmDialog, toast, fmt } from '../core/ui.js';
import { canWrite, money, when, statusBadge, toInt, toList, listView, formDialog, pageHead,
                  button, notice, clean, mount, dependentFields } from '../core/billing-ui.js';

const METRICS = ['quota', 'tokens', 'requests'];
const PERIODS = ['month', 'week', 'day', 'custom'];

function opts(list, prefix) {
    return list.map((v) => ({ value: v, label: t(`${prefix}.${v}`) }));
}

export function planFields(p = {}) {
    const used = (p.active_subscriptions || 0) > 0;
    return [
        { name: 'name', label: t('plans.f.name'), type: 'text', required: true, value: p.name || '' },
        { name: 'description', label: t('plans.f.description'), type: 'text', value: p.description || '' },
        { name: 'metric', label: t('plans.f.metric'), type: 'select', options: opts(METRICS, 'plans.metric'), value: p.metric || 'quota',
            help: used ? t('plans.fixed') : t('plans.h.metric') },
        { name: 'quota_per_period', label: t('plans.f.quota_per_period'), type: 'number', required: true,
            value: p.quota_per_period ?? '', help: t('plans.h.quota') },
        { name: 'period', label: t('plans.f.period'), type: 'select', options: opts(PERIODS, 'plans.period'), value: p.period || 'month' },
        { name: 'period_seconds', label: t('plans.f.period_seconds'), type: 'number', value: p.period_seconds || '',
            help: t('plans.h.period_seconds') },
        { name: 'alignment', label: t('plans.f.alignment'), type: 'select',
            options: [{ value: '', label: t('plans.alignment.default') }, ...opts(['calendar', 'anniversary'], 'plans.alignment')],
            value: p.alignment || '' },
        { name: 'rollover', label: t('plans.f.rollover'), type: 'select', options: opts(['none', 'full', 'capped'], 'plans.rollover'),
            value: p.rollover || 'none' },
        { name: 'rollover_cap', label: t('plans.f.rollover_cap'), type: 'number', value: p.rollover_cap ?? 0 },
        { name: 'allowed_models', label: t('plans.f.allowed_models'), type: 'tags', value: p.allowed_models || [],
            help: t('plans.h.any') },
        { name: 'allowed_groups', label: t('plans.f.allowed_groups'), type: 'tags', value: p.allowed_groups || [],
            help: t('plans.h.any') },
        { name: 'price', label: t('plans.f.price'), type: 'number', value: p.price ?? 0, help: t('plans.h.price') },
        { name: 'status', label: t('plans.f.status'), type: 'select', options: opts(['active', 'archived'], 'plans.status'),
            value: p.status || 'active' },
    ];
}

export function planBody(v, old) {
    const period = v.period || 'month';
    const models = toList(v.allowed_models);
    const groups = toList(v.allowed_groups);
    const b = {
        name: v.name, description: v.description || '', metric: v.metric, period,
        quota_per_period: toInt(v.quota_per_period), rollover: v.rollover,
        rollover_cap: toInt(v.rollover_cap) ?? 0, price: toInt(v.price) ?? 0, status: v.status,
        allowed_models: models.length ? models : null, allowed_groups: groups.length ? groups : null,
    };
    if (period === 'custom') b.period_seconds = toInt(v.period_seconds);
    if (v.alignment) b.alignment = v.alignment;
    if (!old) return clean(b);
    // PATCH: only what changed (metric/period/alignment are fixed once subscribed)
    const out = {};
    for (const [k, val] of Object.entries(b)) {
        if (JSON.stringify(val ?? null) !== JSON.stringify(old[k] ?? null)) out[k] = val;
    }
    return out;
}

export default {
    id: 'plans',
    nav: 'nav.plans',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.plans': 'Plans',
            'plans.title': 'Plans',
            'plans.create': 'New plan',
            'plans.edit': 'Edit plan {name}',
            'plans.delete_q': 'Delete plan {name}? A plan with subscriptions is archived instead.',
            'plans.archived': 'The plan has subscriptions: it is archived, they run on until they end.',
            'plans.c.name': 'Name', 'plans.c.metric': 'Metric', 'plans.c.period': 'Period',
            'plans.c.quota': 'Per period', 'plans.c.price': 'Price', 'plans.c.subs': 'Subscriptions',
            'plans.c.status': 'Status',
            'plans.f.name': 'Name', 'plans.f.description': 'Description', 'plans.f.metric': 'Metric',
            'plans.f.quota_per_period': 'Allowance per period', 'plans.f.period': 'Period',
            'plans.f.period_seconds': 'Custom period (seconds)', 'plans.f.alignment': 'Alignment',
            'plans.f.rollover': 'Rollover', 'plans.f.rollover_cap': 'Rollover cap',
            'plans.f.allowed_models': 'Allowed models', 'plans.f.allowed_groups': 'Allowed groups',
            'plans.f.price': 'Price (quota units)', 'plans.f.status': 'Status',
            'plans.h.metric': 'The unit of the allowance.',
            'plans.h.quota': 'In the metric\'s unit (quota units: 500000 = 1 USD).',
            'plans.h.period_seconds': 'Custom periods only: 60 to 315360000.',
            'plans.h.any': 'Empty: any.',
            'plans.h.price': 'Informational.',
            'plans.fixed': 'Fixed once the plan has subscriptions.',
            'plans.metric.quota': 'quota', 'plans.metric.tokens': 'tokens', 'plans.metric.requests': 'requests',
            'plans.period.month': 'month', 'plans.period.week': 'week', 'plans.period.day': 'day',
            'plans.period.custom': 'custom',
            'plans.alignment.default': 'default', 'plans.alignment.calendar': 'calendar',
            'plans.alignment.anniversary': 'anniversary',
            'plans.rollover.none': 'none', 'plans.rollover.full': 'full', 'plans.rollover.capped': 'capped',
            'plans.status.active': 'active', 'plans.status.archived': 'archived',
            'plans.filter.q': 'Name contains', 'plans.filter.status': 'Status',
            'plans.subs': 'Subscriptions',
            'plans.seconds': '{n} s',
        },
        'zh-CN': {
            'nav.plans': '套餐',
            'plans.title': '套餐',
            'plans.create': '新建套餐',
            'plans.edit': '编辑套餐 {name}',
            'plans.delete_q': '删除套餐 {name}？有订阅的套餐会被归档而不是删除。',
            'plans.archived': '该套餐仍有订阅：已归档，现有订阅持续到结束。',
            'plans.c.name': '名称', 'plans.c.metric': '计量', 'plans.c.period': '周期',
            'plans.c.quota': '每周期额度', 'plans.c.price': '价格', 'plans.c.subs': '订阅数',
            'plans.c.status': '状态',
            'plans.f.name': '名称', 'plans.f.description': '描述', 'plans.f.metric': '计量',
            'plans.f.quota_per_period': '每周期额度', 'plans.f.period': '周期',
            'plans.f.period_seconds': '自定义周期（秒）', 'plans.f.alignment': '对齐方式',
            'plans.f.rollover': '结转', 'plans.f.rollover_cap': '结转上限',
            'plans.f.allowed_models': '允许的模型', 'plans.f.allowed_groups': '允许的分组',
            'plans.f.price': '价格（额度单位）', 'plans.f.status': '状态',
            'plans.h.metric': '额度的计量单位。',
            'plans.h.quota': '以计量单位计（额度单位：500000 = 1 美元）。',
            'plans.h.period_seconds': '仅自定义周期：60 到 315360000。',
            'plans.h.any': '留空：不限。',
            'plans.h.price': '仅供参考。',
            'plans.fixed': '套餐有订阅后不可更改。',
            'plans.metric.quota': '额度', 'plans.metric.tokens': '令牌数', 'plans.metric.requests': '请求数',
            'plans.period.month': '月', 'plans.period.week': '周', 'plans.period.day': '天',
            'plans.period.custom': '自定义',
            'plans.alignment.default': '默认', 'plans.alignment.calendar': '按日历',
            'plans.alignment.anniversary': '按订阅日',
            'plans.rollover.none': '不结转', 'plans.rollover.full': '全部结转', 'plans.rollover.capped': '有上限结转',
            'plans.status.active': '启用', 'plans.status.archived': '已归档',
            'plans.filter.q': '名称包含', 'plans.filter.status': '状态',
            'plans.subs': '订阅',
            'plans.seconds': '{n} 秒',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'plans';
        const write = canWrite(ctx);
        const columns = [
            { key: 'name', label: t('plans.c.name') },
            { key: 'metric', label: t('plans.c.metric'), render: (p) => t(`plans.metric.${p.metric}`) },
            { key: 'period', label: t('plans.c.period'),
                render: (p) => (p.period === 'custom' ? t('plans.seconds', { n: fmt.num(p.period_seconds) }) : t(`plans.period.${p.period}`)) },
            { key: 'quota_per_period', label: t('plans.c.quota'), align: 'right',
                render: (p) => (p.metric === 'quota' ? money(p.quota_per_period) : fmt.num(p.quota_per_period)) },
            { key: 'price', label: t('plans.c.price'), align: 'right', render: (p) => money(p.price) },
            { key: 'active_subscriptions', label: t('plans.c.subs'), align: 'right',
                render: (p) => h('a', { href: `#/subscriptions?plan_id=${p.id}` }, fmt.num(p.active_subscriptions || 0)) },
            { key: 'status', label: t('plans.c.status'), render: (p) => statusBadge(p.status) },
        ];
        if (write) {
            columns.push({ key: '_a', label: t('bui.actions'), render: (p) => h('span', { class: 'row-actions' },
                button(t('bui.edit'), 'edit', (e) => { e.stopPropagation(); edit(p); }),
                button(t('bui.delete'), 'delete', (e) => { e.stopPropagation(); del(p); }, 'danger')) });
        }
        const list = listView({
            id: 'plans', columns,
            load: (q) => api('GET', '/api/billing/plans', { query: q }),
            filterFields: [
                { name: 'q', label: t('plans.filter.q'), type: 'text' },
                { name: 'status', label: t('plans.filter.status'), type: 'select',
                    options: [{ value: '', label: t('bui.any') }, ...opts(['active', 'archived'], 'plans.status')] },
            ],
            onRow: write ? (p) => edit(p) : undefined,
        });
        const deps = (f) => {
            dependentFields(f, 'period', { custom: ['period_seconds'] });
            dependentFields(f, 'rollover', { capped: ['rollover_cap'] });
        };
        async function create() {
            const ok = await formDialog({ title: t('plans.create'), id: 'plan', fields: planFields(), action: 'save', after: deps,
                onSubmit: (v) => api('POST', '/api/billing/plans', { body: planBody(v) }) });
            if (ok) { toast(t('bui.saved')); list.refresh(); }
        }
        async function edit(p) {
            const ok = await formDialog({ title: t('plans.edit', { name: p.name }), id: 'plan', fields: planFields(p), after: deps,
                onSubmit: (v) => api('PATCH', `/api/billing/plans/${p.id}`, { body: planBody(v, p) }) });
            if (ok) { toast(t('bui.saved')); list.refresh(); }
        }
        async function del(p) {
            if (!(await confirmDialog(t('plans.delete_q', { name: p.name })))) return;
            try {
                const r = await api('DELETE', `/api/billing/plans/${p.id}`);
                toast(r ? t('plans.archived') : t('bui.deleted'));
                list.refresh();
            } catch (err) { toast(err.message, 'error'); }
        }
        mount(root, pageHead(t('plans.title'), write ? button(t('plans.create'), 'create', create, 'primary') : null),
                                write ? null : notice(t('bui.readonly')), list.el);
        await list.refresh();
    },
};
