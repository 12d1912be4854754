// Vouchers: batch create (quota or plan grant), list with stats, batch detail
// with redemptions, disable/enable, export the codes once as CSV.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, download } from '../core/api.js';
import { modal, toast, fmt, loading, badge, pager } from '../core/ui.js';
import { canWrite, money, when, statusBadge, toInt, toMs, toList, listView, formDialog, pageHead as head,
                  button, notice, mount, kv, dataTable, errorView, usdToUnits, dependentFields } from '../core/billing-ui.js';

function stats(b) {
    return `${fmt.num(b.redeemed || 0)} / ${fmt.num(b.remaining || 0)}`;
}

export default {
    id: 'vouchers',
    nav: 'nav.vouchers',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.vouchers': 'Vouchers',
            'vouchers.title': 'Vouchers',
            'vouchers.create': 'New batch',
            'vouchers.c.name': 'Batch', 'vouchers.c.kind': 'Grants', 'vouchers.c.codes': 'Codes',
            'vouchers.c.stats': 'Redeemed / remaining', 'vouchers.c.users': 'Users', 'vouchers.c.window': 'Valid',
            'vouchers.c.status': 'Status', 'vouchers.c.exported': 'Codes exported',
            'vouchers.kind.quota': 'quota', 'vouchers.kind.plan': 'plan',
            'vouchers.grants_quota': '{amount}', 'vouchers.grants_plan': 'plan {plan} ({days})',
            'vouchers.always': 'always', 'vouchers.once_each': 'each code once',
            'vouchers.days': '{n} days', 'vouchers.no_end': 'no end',
            'vouchers.f.name': 'Name', 'vouchers.f.kind': 'Grants', 'vouchers.f.amount_usd': 'Amount (USD)',
            'vouchers.f.plan_id': 'Plan', 'vouchers.f.plan_days': 'Subscription length (days)',
            'vouchers.f.starts_at': 'Valid from', 'vouchers.f.expires_at': 'Valid until',
            'vouchers.f.groups': 'Only for groups', 'vouchers.f.plans': 'Only for subscribers of plans (ids)',
            'vouchers.f.total_uses': 'Total uses', 'vouchers.f.per_user': 'Uses per user',
            'vouchers.f.codes': 'Number of codes', 'vouchers.f.prefix': 'Code prefix', 'vouchers.f.note': 'Note',
            'vouchers.h.amount': 'Quota vouchers: credited to the wallet.',
            'vouchers.h.plan_days': '0: the subscription has no end.',
            'vouchers.h.window': 'Empty: no limit.',
            'vouchers.h.total_uses': '0: each code once. Otherwise every code may be used until the batch reaches this many.',
            'vouchers.h.per_user': 'At least 1.',
            'vouchers.h.prefix': 'Up to 8 characters.',
            'vouchers.created': 'Batch created. Export its codes now: they can be downloaded only once.',
            'vouchers.export': 'Export codes (CSV)',
            'vouchers.exported': 'Codes exported. They cannot be shown again.',
            'vouchers.already': 'already exported',
            'vouchers.not_yet': 'not yet',
            'vouchers.disable': 'Disable', 'vouchers.enable': 'Enable',
            'vouchers.detail': 'Batch {name}',
            'vouchers.redemptions': 'Redemptions',
            'vouchers.r.user': 'User', 'vouchers.r.code': 'Code', 'vouchers.r.use': 'Use', 'vouchers.r.amount': 'Amount',
            'vouchers.r.when': 'When', 'vouchers.r.ip': 'Address', 'vouchers.r.sub': 'Subscription',
            'vouchers.status.active': 'active', 'vouchers.status.disabled': 'disabled',
            'vouchers.filter.status': 'Status', 'vouchers.filter.format': 'Format',
            'vouchers.format.voucher': 'voucher', 'vouchers.format.newapi': 'new-api',
            'vouchers.note': 'Note', 'vouchers.created_by': 'Created by', 'vouchers.scope': 'Scope',
            'vouchers.last': 'Last redeemed',
        },
        'zh-CN': {
            'nav.vouchers': '兑换码',
            'vouchers.title': '兑换码',
            'vouchers.create': '新建批次',
            'vouchers.c.name': '批次', 'vouchers.c.kind': '发放', 'vouchers.c.codes': '码数',
            'vouchers.c.stats': '已兑换 / 剩余', 'vouchers.c.users': '用户数', 'vouchers.c.window': '有效期',
            'vouchers.c.status': '状态', 'vouchers.c.exported': '已导出',
            'vouchers.kind.quota': '额度', 'vouchers.kind.plan': '套餐',
            'vouchers.grants_quota': '{amount}', 'vouchers.grants_plan': '套餐 {plan}（{days}）',
            'vouchers.always': '长期有效', 'vouchers.once_each': '每个码一次',
            'vouchers.days': '{n} 天', 'vouchers.no_end': '不限期',
            'vouchers.f.name': '名称', 'vouchers.f.kind': '发放', 'vouchers.f.amount_usd': '金额（美元）',
            'vouchers.f.plan_id': '套餐', 'vouchers.f.plan_days': '订阅时长（天）',
            'vouchers.f.starts_at': '生效时间', 'vouchers.f.expires_at': '失效时间',
            'vouchers.f.groups': '仅限分组', 'vouchers.f.plans': '仅限套餐订阅者（ID）',
            'vouchers.f.total_uses': '总使用次数', 'vouchers.f.per_user': '每用户次数',
            'vouchers.f.codes': '兑换码数量', 'vouchers.f.prefix': '兑换码前缀', 'vouchers.f.note': '备注',
            'vouchers.h.amount': '额度兑换码：充入钱包。',
            'vouchers.h.plan_days': '0：订阅不设结束时间。',
            'vouchers.h.window': '留空：不限。',
            'vouchers.h.total_uses': '0：每个码只能用一次。否则每个码都可使用，直到批次总次数用完。',
            'vouchers.h.per_user': '至少为 1。',
            'vouchers.h.prefix': '最多 8 个字符。',
            'vouchers.created': '批次已创建。请立即导出兑换码：只能下载一次。',
            'vouchers.export': '导出兑换码（CSV）',
            'vouchers.exported': '兑换码已导出，之后无法再次查看。',
            'vouchers.already': '已导出',
            'vouchers.not_yet': '未导出',
            'vouchers.disable': '停用', 'vouchers.enable': '启用',
            'vouchers.detail': '批次 {name}',
            'vouchers.redemptions': '兑换记录',
            'vouchers.r.user': '用户', 'vouchers.r.code': '兑换码', 'vouchers.r.use': '次序', 'vouchers.r.amount': '金额',
            'vouchers.r.when': '时间', 'vouchers.r.ip': '地址', 'vouchers.r.sub': '订阅',
            'vouchers.status.active': '有效', 'vouchers.status.disabled': '已停用',
            'vouchers.filter.status': '状态', 'vouchers.filter.format': '格式',
            'vouchers.format.voucher': '兑换码', 'vouchers.format.newapi': 'new-api',
            'vouchers.note': '备注', 'vouchers.created_by': '创建者', 'vouchers.scope': '范围',
            'vouchers.last': '最近兑换',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'vouchers';
        const write = canWrite(ctx);
        const planNames = {};
        try {
            for (const p of (await api('GET', '/api/billing/plans', { query: { per_page: 100 } })).data || []) planNames[p.id] = p.name;
        } catch { /* ids stand in for names */ }
        const grants = (b) => (b.kind === 'plan'
            ? t('vouchers.grants_plan', { plan: planNames[b.plan_id] || `#${b.plan_id}`, days: b.plan_days ? t('vouchers.days', { n: b.plan_days }) : t('vouchers.no_end') })
            : money(b.amount));
        const window = (b) => (!b.starts_at && !b.expires_at ? t('vouchers.always')
            : `${b.starts_at ? when(b.starts_at) : '…'} – ${b.expires_at ? when(b.expires_at) : '…'}`);
        const exported = (b) => (b.exported_at || b.format === 'newapi'
            ? badge(t('vouchers.already'), 'info') : badge(t('vouchers.not_yet'), 'warn'));
        const columns = [
            { key: 'name', label: t('vouchers.c.name') },
            { key: 'kind', label: t('vouchers.c.kind'), render: grants },
            { key: 'codes', label: t('vouchers.c.codes'), align: 'right', render: (b) => fmt.num(b.codes) },
            { key: 'stats', label: t('vouchers.c.stats'), align: 'right', render: stats },
            { key: 'users', label: t('vouchers.c.users'), align: 'right', render: (b) => fmt.num(b.users || 0) },
            { key: 'window', label: t('vouchers.c.window'), render: window },
            { key: 'status', label: t('vouchers.c.status'), render: (b) => statusBadge(b.status) },
            { key: 'exported_at', label: t('vouchers.c.exported'), render: exported },
            { key: '_a', label: t('bui.actions'), render: (b) => h('span', { class: 'row-actions' },
                button(t('bui.detail'), 'detail', (e) => { e.stopPropagation(); detail(b); })) },
        ];
        const any = { value: '', label: t('bui.any') };
        const list = listView({
            id: 'vouchers', columns,
            load: (query) => api('GET', '/api/vouchers', { query }),
            filterFields: [
                { name: 'status', label: t('vouchers.filter.status'), type: 'select',
                    options: [any, ...['active', 'disabled'].map((v) => ({ value: v, label: t(`vouchers.status.${v}`) }))] },
                { name: 'format', label: t('vouchers.filter.format'), type: 'select',
                    options: [any, ...['voucher', 'newapi'].map((v) => ({ value: v, label: t(`vouchers.format.${v}`) }))] },
            ],
            onRow: (b) => detail(b),
        });

        async function exportCodes(b) {
            try {
                await download(`/api/vouchers/${b.id}/export`, {}, `vouchers-${b.id}.csv`);
                toast(t('vouchers.exported'));
            } catch (err) {
                toast(err.message, 'error');
            }
            list.refresh();
        }
        async function setStatus(b, status) {
            try {
                await api('PATCH', `/api/vouchers/${b.id}`, { body: { status } });
                toast(t('bui.saved'));
                list.refresh();
                return true;
            } catch (err) { toast(err.message, 'error'); return false; }
        }

        async function detail(b0) {
            const body = h('div', { class: 'voucher-detail', dataset: { batch: String(b0.id) } }, loading());
            const dlg = modal({ title: t('vouchers.detail', { name: b0.name }), body, actions: [] });
            let page = 1;
            async function load() {
                let d;
                try {
                    d = (await api('GET', `/api/vouchers/${b0.id}`, { query: { page, per_page: 20 } })).data;
                } catch (err) { clear(body); body.append(errorView(err)); return; }
                const r = d.redemptions || { data: [], total: 0 };
                clear(body);
                const scope = d.scope ? Object.entries(d.scope).map(([k, v]) => `${k}: ${(v || []).join(', ')}`).join('; ') : t('bui.any');
                body.append(kv([
                    [t('vouchers.c.kind'), grants(d)],
                    [t('vouchers.c.codes'), fmt.num(d.codes)],
                    [t('vouchers.c.stats'), stats(d)],
                    [t('vouchers.c.users'), fmt.num(d.users || 0)],
                    [t('vouchers.last'), when(d.last_redeemed_at)],
                    [t('vouchers.c.window'), window(d)],
                    [t('vouchers.f.total_uses'), d.total_uses ? fmt.num(d.total_uses) : t('vouchers.once_each')],
                    [t('vouchers.f.per_user'), fmt.num(d.per_user)],
                    [t('vouchers.scope'), scope],
                    [t('vouchers.note'), d.note],
                    [t('vouchers.created_by'), d.created_by],
                    [t('vouchers.c.status'), statusBadge(d.status)],
                    [t('vouchers.c.exported'), exported(d)],
                ]));
                if (write) {
                    const acts = h('div', { class: 'actions' });
                    if (!d.exported_at && d.format !== 'newapi') {
                        acts.append(button(t('vouchers.export'), 'export', async () => { await exportCodes(d); load(); }, 'primary'));
                    }
                    acts.append(d.status === 'active'
                        ? button(t('vouchers.disable'), 'disable', async () => { if (await setStatus(d, 'disabled')) load(); }, 'danger')
                        : button(t('vouchers.enable'), 'enable', async () => { if (await setStatus(d, 'active')) load(); }));
                    body.append(acts);
                }
                body.append(h('h2', {}, t('vouchers.redemptions')));
                body.append(dataTable('redemptions', {
                    rows: r.data || [], empty: t('bui.empty'),
                    columns: [
                        { key: 'username', label: t('vouchers.r.user'), render: (x) => x.username || `#${x.user_id}` },
                        { key: 'code_hint', label: t('vouchers.r.code'), render: (x) => `…${x.code_hint}` },
                        { key: 'use_no', label: t('vouchers.r.use'), align: 'right' },
                        { key: 'amount', label: t('vouchers.r.amount'), align: 'right', render: (x) => (x.sub_id ? `#${x.sub_id}` : money(x.amount)) },
                        { key: 'client_ip', label: t('vouchers.r.ip') },
                        { key: 'redeemed_at', label: t('vouchers.r.when'), render: (x) => when(x.redeemed_at) },
                    ],
                }));
                if ((r.total || 0) > 20) {
                    body.append(pager({ page, perPage: 20, total: r.total, onPage: (p) => { page = p; load(); } }));
                }
            }
            await load();
            return dlg;
        }

        async function create() {
            let plans = [];
            try {
                plans = (await api('GET', '/api/billing/plans', { query: { status: 'active', per_page: 100 } })).data || [];
            } catch (err) { /* plan vouchers need a plan; the form says so */ }
            const created = await formDialog({
                title: t('vouchers.create'), id: 'voucher', action: 'save',
                fields: [
                    { name: 'name', label: t('vouchers.f.name'), type: 'text', required: true },
                    { name: 'kind', label: t('vouchers.f.kind'), type: 'select', value: 'quota',
                        options: ['quota', 'plan'].map((v) => ({ value: v, label: t(`vouchers.kind.${v}`) })) },
                    { name: 'amount', label: t('vouchers.f.amount_usd'), type: 'text', help: t('vouchers.h.amount'), placeholder: '5.00' },
                    { name: 'plan_id', label: t('vouchers.f.plan_id'), type: 'select',
                        options: [{ value: '', label: t('bui.none') }, ...plans.map((p) => ({ value: String(p.id), label: p.name }))] },
                    { name: 'plan_days', label: t('vouchers.f.plan_days'), type: 'number', value: 30, help: t('vouchers.h.plan_days') },
                    { name: 'starts_at', label: t('vouchers.f.starts_at'), type: 'datetime', help: t('vouchers.h.window') },
                    { name: 'expires_at', label: t('vouchers.f.expires_at'), type: 'datetime', help: t('vouchers.h.window') },
                    { name: 'scope_groups', label: t('vouchers.f.groups'), type: 'tags' },
                    { name: 'scope_plans', label: t('vouchers.f.plans'), type: 'tags' },
                    { name: 'total_uses', label: t('vouchers.f.total_uses'), type: 'number', value: 0, help: t('vouchers.h.total_uses') },
                    { name: 'per_user', label: t('vouchers.f.per_user'), type: 'number', value: 1, help: t('vouchers.h.per_user') },
                    { name: 'codes', label: t('vouchers.f.codes'), type: 'number', value: 1, required: true },
                    { name: 'prefix', label: t('vouchers.f.prefix'), type: 'text', help: t('vouchers.h.prefix') },
                    { name: 'note', label: t('vouchers.f.note'), type: 'textarea' },
                ],
                after: (f) => dependentFields(f, 'kind', { quota: ['amount'], plan: ['plan_id', 'plan_days'] }),
                onSubmit: async (v) => {
                    const body = { name: v.name, kind: v.kind || 'quota' };
                    if (body.kind === 'quota') body.amount = usdToUnits(v.amount);
                    else {
                        body.plan_id = toInt(v.plan_id);
                        if (v.plan_days !== '' && v.plan_days !== undefined) body.plan_days = toInt(v.plan_days);
                    }
                    const s = toMs(v.starts_at); if (s !== undefined) body.starts_at = s;
                    const e = toMs(v.expires_at); if (e !== undefined) body.expires_at = e;
                    const groups = toList(v.scope_groups);
                    const pl = toList(v.scope_plans).map((x) => toInt(x));
                    if (groups.length || pl.length) {
                        body.scope = {};
                        if (groups.length) body.scope.groups = groups;
                        if (pl.length) body.scope.plans = pl;
                    }
                    for (const k of ['total_uses', 'per_user', 'codes']) {
                        const n = toInt(v[k]); if (n !== undefined) body[k] = n;
                    }
                    if (v.prefix) body.prefix = v.prefix;
                    if (v.note) body.note = v.note;
                    return (await api('POST', '/api/vouchers', { body })).data;
                },
            });
            if (created && created.id) {
                list.refresh();
                toast(t('vouchers.created'));
                detail(created);
            }
        }
        mount(root, head(t('vouchers.title'), write ? button(t('vouchers.create'), 'create', create, 'primary') : null),
                    write ? null : notice(t('bui.readonly')), list.el);
        await list.refresh();
    },
};
