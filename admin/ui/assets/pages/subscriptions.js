// Subscriptions (billing): list, subscribe a user / organisation / key, cancel.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { confirmDialog, toast, fmt } from '../core/ui.js';
import { canWrite, money, when, statusBadge, toInt, toMs, listView, formDialog, pageHead,
                  button, notice, mount } from '../core/billing-ui.js';

const KINDS = ['user', 'org', 'key'];

function amount(s, v) {
    return s.metric === 'quota' ? money(v) : fmt.num(v);
}

export default {
    id: 'subscriptions',
    nav: 'nav.subscriptions',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.subscriptions': 'Subscriptions',
            'subs.title': 'Subscriptions',
            'subs.create': 'Subscribe',
            'subs.cancel': 'Cancel',
            'subs.cancel_q': 'Cancel subscription #{id}? What is still available on it expires now.',
            'subs.cancelled': 'Subscription cancelled.',
            'subs.c.id': '#', 'subs.c.plan': 'Plan', 'subs.c.subject': 'Subscriber', 'subs.c.status': 'Status',
            'subs.c.period': 'Current period', 'subs.c.available': 'Available', 'subs.c.expires': 'Expires',
            'subs.f.plan_id': 'Plan', 'subs.f.subject_kind': 'Subscriber kind', 'subs.f.subject_id': 'Subscriber id',
            'subs.f.starts_at': 'Starts', 'subs.f.expires_at': 'Expires',
            'subs.h.starts_at': 'Empty: now.', 'subs.h.expires_at': 'Empty: never.',
            'subs.kind.user': 'user', 'subs.kind.org': 'organisation', 'subs.kind.key': 'key',
            'subs.status.active': 'active', 'subs.status.expired': 'expired', 'subs.status.cancelled': 'cancelled',
            'subs.filter.status': 'Status', 'subs.filter.plan': 'Plan id', 'subs.filter.kind': 'Subscriber kind',
            'subs.filter.subject': 'Subscriber id',
            'subs.never': 'never',
        },
        'zh-CN': {
            'nav.subscriptions': '订阅',
            'subs.title': '订阅',
            'subs.create': '新建订阅',
            'subs.cancel': '取消订阅',
            'subs.cancel_q': '取消订阅 #{id}？其剩余可用额度将立即失效。',
            'subs.cancelled': '订阅已取消。',
            'subs.c.id': '#', 'subs.c.plan': '套餐', 'subs.c.subject': '订阅者', 'subs.c.status': '状态',
            'subs.c.period': '当前周期', 'subs.c.available': '可用', 'subs.c.expires': '到期',
            'subs.f.plan_id': '套餐', 'subs.f.subject_kind': '订阅者类型', 'subs.f.subject_id': '订阅者 ID',
            'subs.f.starts_at': '开始时间', 'subs.f.expires_at': '到期时间',
            'subs.h.starts_at': '留空：现在。', 'subs.h.expires_at': '留空：永不到期。',
            'subs.kind.user': '用户', 'subs.kind.org': '组织', 'subs.kind.key': '密钥',
            'subs.status.active': '有效', 'subs.status.expired': '已过期', 'subs.status.cancelled': '已取消',
            'subs.filter.status': '状态', 'subs.filter.plan': '套餐 ID', 'subs.filter.kind': '订阅者类型',
            'subs.filter.subject': '订阅者 ID',
            'subs.never': '永不',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'subscriptions';
        const write = canWrite(ctx);
        const q = ctx.query || {};
        const columns = [
            { key: 'id', label: t('subs.c.id'), align: 'right' },
            { key: 'plan_name', label: t('subs.c.plan'), render: (s) => h('a', { href: `#/plans` }, s.plan_name || `#${s.plan_id}`) },
            { key: 'subject', label: t('subs.c.subject'),
                render: (s) => `${t(`subs.kind.${s.subject_kind}`)} #${s.subject_id}` },
            { key: 'status', label: t('subs.c.status'), render: (s) => statusBadge(s.status) },
            { key: 'period', label: t('subs.c.period'), render: (s) => `${when(s.period_start)} – ${when(s.period_end)}` },
            { key: 'available', label: t('subs.c.available'), align: 'right',
                render: (s) => h('span', {}, amount(s, s.available), ' / ', amount(s, s.quota_per_period)) },
            { key: 'expires_at', label: t('subs.c.expires'), render: (s) => (s.expires_at ? when(s.expires_at) : t('subs.never')) },
        ];
        if (write) {
            columns.push({ key: '_a', label: t('bui.actions'),
                render: (s) => (s.status === 'active' ? button(t('subs.cancel'), 'cancel', (e) => { e.stopPropagation(); cancel(s); }, 'danger') : '') });
        }
        const any = { value: '', label: t('bui.any') };
        const list = listView({
            id: 'subscriptions', columns,
            initial: { plan_id: q.plan_id || '', subject_kind: q.subject_kind || '', subject_id: q.subject_id || '' },
            load: (query) => api('GET', '/api/billing/subscriptions', { query }),
            filterFields: [
                { name: 'status', label: t('subs.filter.status'), type: 'select',
                    options: [any, ...['active', 'expired', 'cancelled'].map((v) => ({ value: v, label: t(`subs.status.${v}`) }))] },
                { name: 'plan_id', label: t('subs.filter.plan'), type: 'number' },
                { name: 'subject_kind', label: t('subs.filter.kind'), type: 'select',
                    options: [any, ...KINDS.map((v) => ({ value: v, label: t(`subs.kind.${v}`) }))] },
                { name: 'subject_id', label: t('subs.filter.subject'), type: 'number' },
            ],
        });
        async function create() {
            let plans = [];
            try {
                plans = (await api('GET', '/api/billing/plans', { query: { status: 'active', per_page: 100 } })).data || [];
            } catch (err) { toast(err.message, 'error'); }
            const ok = await formDialog({
                title: t('subs.create'), id: 'subscription', action: 'save',
                fields: [
                    { name: 'plan_id', label: t('subs.f.plan_id'), type: 'select', required: true,
                        options: plans.map((p) => ({ value: String(p.id), label: p.name })), value: q.plan_id || (plans[0] && String(plans[0].id)) },
                    { name: 'subject_kind', label: t('subs.f.subject_kind'), type: 'select', value: 'user',
                        options: KINDS.map((v) => ({ value: v, label: t(`subs.kind.${v}`) })) },
                    { name: 'subject_id', label: t('subs.f.subject_id'), type: 'number', required: true, value: q.subject_id || '' },
                    { name: 'starts_at', label: t('subs.f.starts_at'), type: 'datetime', help: t('subs.h.starts_at') },
                    { name: 'expires_at', label: t('subs.f.expires_at'), type: 'datetime', help: t('subs.h.expires_at') },
                ],
                onSubmit: (v) => {
                    const body = { plan_id: toInt(v.plan_id), subject_kind: v.subject_kind, subject_id: toInt(v.subject_id) };
                    const s = toMs(v.starts_at); if (s !== undefined) body.starts_at = s;
                    const e = toMs(v.expires_at); if (e !== undefined) body.expires_at = e;
                    return api('POST', '/api/billing/subscriptions', { body });
                },
            });
            if (ok) { toast(t('bui.saved')); list.refresh(); }
        }
        async function cancel(s) {
            if (!(await confirmDialog(t('subs.cancel_q', { id: s.id })))) return;
            try {
                await api('DELETE', `/api/billing/subscriptions/${s.id}`);
                toast(t('subs.cancelled'));
                list.refresh();
            } catch (err) { toast(err.message, 'error'); }
        }
        mount(root, pageHead(t('subs.title'), write ? button(t('subs.create'), 'create', create, 'primary') : null),
                    write ? null : notice(t('bui.readonly')), list.el);
        await list.refresh();
    },
};
