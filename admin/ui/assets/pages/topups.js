// Payments (top-up orders): list, detail with the provider's events,
// complete a pending order by hand.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { toast, modal, loading } from '../core/ui.js';
import { accountStrings } from './accounts.js';
import { canWrite, money, when, statusBadge, listView, formDialog, pageHead, mount, kv, dataTable,
                  errorView, button, notice, jsonText } from '../core/billing-ui.js';

export const topupStrings = {
    en: {
        'topups.c.id': '#', 'topups.c.provider': 'Provider', 'topups.c.amount': 'Paid', 'topups.c.quota': 'Credited',
        'topups.c.status': 'Status', 'topups.c.created': 'Created', 'topups.c.paid': 'Paid at', 'topups.c.user': 'User',
        'topups.c.trade': 'Order',
        'topups.status.pending': 'pending', 'topups.status.paid': 'paid', 'topups.status.failed': 'failed',
        'topups.status.expired': 'expired',
        'topups.provider.stripe': 'Stripe', 'topups.provider.epay': 'EPay',
    },
    'zh-CN': {
        'topups.c.id': '#', 'topups.c.provider': '支付方式', 'topups.c.amount': '支付金额', 'topups.c.quota': '到账额度',
        'topups.c.status': '状态', 'topups.c.created': '创建时间', 'topups.c.paid': '支付时间', 'topups.c.user': '用户',
        'topups.c.trade': '订单号',
        'topups.status.pending': '待支付', 'topups.status.paid': '已支付', 'topups.status.failed': '失败',
        'topups.status.expired': '已过期',
        'topups.provider.stripe': 'Stripe', 'topups.provider.epay': '易支付',
    },
};

export function topupColumns({ user = true } = {}) {
    const cols = [
        { key: 'id', label: t('topups.c.id'), align: 'right' },
        { key: 'trade_no', label: t('topups.c.trade'), render: (o) => h('code', {}, o.trade_no) },
        { key: 'provider', label: t('topups.c.provider'), render: (o) => t(`topups.provider.${o.provider}`) },
        { key: 'amount', label: t('topups.c.amount'), align: 'right', render: (o) => `${o.amount} ${o.currency || ''}`.trim() },
        { key: 'quota', label: t('topups.c.quota'), align: 'right', render: (o) => money(o.quota) },
        { key: 'status', label: t('topups.c.status'), render: (o) => statusBadge(o.status) },
        { key: 'created_at', label: t('topups.c.created'), render: (o) => when(o.created_at) },
        { key: 'paid_at', label: t('topups.c.paid'), render: (o) => when(o.paid_at) },
    ];
    if (user) cols.splice(3, 0, { key: 'user_id', label: t('topups.c.user'), align: 'right', render: (o) => `#${o.user_id}` });
    return cols;
}

export default {
    id: 'topups',
    nav: 'nav.topups',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            ...topupStrings.en,
            ...accountStrings.en,
            'nav.topups': 'Payments',
            'topups.title': 'Payments',
            'topups.detail': 'Order #{id}',
            'topups.complete': 'Complete by hand',
            'topups.complete_title': 'Complete order #{id}',
            'topups.complete_help': 'Only when the money arrived and the provider\'s notification did not: the wallet is credited once.',
            'topups.f.note': 'Note',
            'topups.completed': 'Order completed: the wallet was credited.',
            'topups.events': 'Provider events',
            'topups.e.type': 'Event', 'topups.e.received': 'Received', 'topups.e.last': 'Last', 'topups.e.deliveries': 'Deliveries',
            'topups.e.outcome': 'Outcome',
            'topups.owner': 'Wallet', 'topups.ref': 'Provider reference', 'topups.by': 'Completed by', 'topups.ledger': 'Ledger row',
            'topups.filter.status': 'Status', 'topups.filter.provider': 'Provider', 'topups.filter.user': 'User id',
        },
        'zh-CN': {
            ...topupStrings['zh-CN'],
            ...accountStrings['zh-CN'],
            'nav.topups': '支付订单',
            'topups.title': '支付订单',
            'topups.detail': '订单 #{id}',
            'topups.complete': '手动完成',
            'topups.complete_title': '完成订单 #{id}',
            'topups.complete_help': '仅在款项已到账但支付通知未送达时使用：钱包只会入账一次。',
            'topups.f.note': '备注',
            'topups.completed': '订单已完成：已为钱包入账。',
            'topups.events': '支付平台事件',
            'topups.e.type': '事件', 'topups.e.received': '收到时间', 'topups.e.last': '最近', 'topups.e.deliveries': '投递次数',
            'topups.e.outcome': '结果',
            'topups.owner': '钱包', 'topups.ref': '平台单号', 'topups.by': '完成者', 'topups.ledger': '流水行',
            'topups.filter.status': '状态', 'topups.filter.provider': '支付方式', 'topups.filter.user': '用户 ID',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'topups';
        const write = canWrite(ctx);
        const any = { value: '', label: t('bui.any') };
        const list = listView({
            id: 'topups', columns: topupColumns(),
            load: (query) => api('GET', '/api/topups', { query }),
            filterFields: [
                { name: 'status', label: t('topups.filter.status'), type: 'select',
                    options: [any, ...['pending', 'paid', 'failed', 'expired'].map((v) => ({ value: v, label: t(`topups.status.${v}`) }))] },
                { name: 'provider', label: t('topups.filter.provider'), type: 'select',
                    options: [any, ...['stripe', 'epay'].map((v) => ({ value: v, label: t(`topups.provider.${v}`) }))] },
                { name: 'user_id', label: t('topups.filter.user'), type: 'number' },
            ],
            onRow: (o) => detail(o),
        });
        async function detail(o) {
            const body = h('div', { class: 'topup-detail' }, loading());
            const dlg = modal({ title: t('topups.detail', { id: o.id }), body, wide: true, actions: [] });
            let d;
            try {
                d = (await api('GET', `/api/topups/${o.id}`)).data;
            } catch (err) { clear(body); body.append(errorView(err)); return; }
            const ord = d.order || d;
            clear(body);
            body.append(kv([
                [t('topups.c.trade'), h('code', {}, ord.trade_no)],
                [t('topups.c.provider'), t(`topups.provider.${ord.provider}`)],
                [t('topups.ref'), ord.provider_ref],
                [t('topups.c.user'), `#${ord.user_id}`],
                [t('topups.owner'), `${t(`accounts.kind.${ord.owner_kind}`)} #${ord.owner_id}`],
                [t('topups.c.amount'), `${ord.amount} ${ord.currency || ''}`],
                [t('topups.c.quota'), money(ord.quota)],
                [t('topups.c.status'), statusBadge(ord.status)],
                [t('topups.c.created'), when(ord.created_at)],
                [t('topups.c.paid'), when(ord.paid_at)],
                [t('topups.by'), ord.completed_by],
                [t('topups.ledger'), ord.ledger_id ? `#${ord.ledger_id}` : null],
            ]));
            if (ord.detail) body.append(h('pre', { class: 'json' }, jsonText(ord.detail)));
            body.append(h('h3', {}, t('topups.events')));
            body.append(dataTable('topup-events', { rows: d.events || [], empty: t('bui.empty'), columns: [
                { key: 'type', label: t('topups.e.type') },
                { key: 'received_at', label: t('topups.e.received'), render: (e) => when(e.received_at) },
                { key: 'last_at', label: t('topups.e.last'), render: (e) => when(e.last_at) },
                { key: 'deliveries', label: t('topups.e.deliveries'), align: 'right' },
                { key: 'outcome', label: t('topups.e.outcome') },
            ] }));
            if (write && ord.status === 'pending') {
                body.append(button(t('topups.complete'), 'complete', async () => {
                    const r = await formDialog({ title: t('topups.complete_title', { id: ord.id }), id: 'complete', action: 'complete',
                        before: h('p', {}, t('topups.complete_help')),
                        fields: [{ name: 'note', label: t('topups.f.note'), type: 'text' }],
                        onSubmit: (v) => api('POST', `/api/topups/${ord.id}/complete`, { body: v.note ? { note: v.note } : {} }) });
                    if (r) { toast(t('topups.completed')); dlg.close(); list.refresh(); }
                }, 'primary'));
            }
        }
        mount(root, pageHead(t('topups.title')), write ? null : notice(t('bui.readonly')), list.el);
        await list.refresh();
    },
};
