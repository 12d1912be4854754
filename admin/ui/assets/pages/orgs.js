// Organisations: create, rename, delete; their wallet and a top-up.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { fmt, money, pageHeader, button, form, modal, confirmDialog, toast, dl, getQuotaPerUsd, loading, errorBox }
    from '../core/ui.js';
import { listView } from '../core/list.js';

const en = {
    'nav.orgs': 'Organisations',
    'orgs.title': 'Organisations',
    'orgs.create': 'New organisation',
    'orgs.new': 'New organisation',
    'orgs.edit': 'Edit organisation {name}',
    'orgs.f.q': 'Name contains',
    'orgs.name': 'Name',
    'orgs.name.help': 'Letters, digits, “_”, “.”, “-”.',
    'orgs.display_name': 'Display name',
    'orgs.col.id': 'ID',
    'orgs.col.name': 'Name',
    'orgs.col.display': 'Display name',
    'orgs.col.members': 'Members',
    'orgs.col.created': 'Created',
    'orgs.col.actions': 'Actions',
    'orgs.editbtn': 'Edit',
    'orgs.wallet': 'Wallet',
    'orgs.wallet.title': 'Wallet of {name}',
    'orgs.balance': 'Balance',
    'orgs.reserved': 'Reserved',
    'orgs.available': 'Available',
    'orgs.overdraft': 'Overdraft limit',
    'orgs.pref': 'Billing preference',
    'orgs.seq': 'Ledger rows',
    'orgs.notused': 'Never used yet.',
    'orgs.topup': 'Top up',
    'orgs.topup.amount': 'Amount (USD)',
    'orgs.topup.reason': 'Reason',
    'orgs.topup.done': 'Top-up booked.',
    'orgs.delete': 'Delete',
    'orgs.delete.confirm': 'Delete organisation “{name}”?',
    'orgs.deleted': 'Organisation deleted.',
    'orgs.saved': 'Organisation saved.',
};
const zh = {
    'nav.orgs': '组织',
    'orgs.title': '组织',
    'orgs.create': '新建组织',
    'orgs.new': '新建组织',
    'orgs.edit': '编辑组织 {name}',
    'orgs.f.q': '名称包含',
    'orgs.name': '名称',
    'orgs.name.help': '字母、数字、“_”、“.”、“-”。',
    'orgs.display_name': '显示名称',
    'orgs.col.id': 'ID',
    'orgs.col.name': '名称',
    'orgs.col.display': '显示名称',
    'orgs.col.members': '成员数',
    'orgs.col.created': '创建时间',
    'orgs.col.actions': '操作',
    'orgs.editbtn': '编辑',
    'orgs.wallet': '钱包',
    'orgs.wallet.title': '{name} 的钱包',
    'orgs.balance': '余额',
    'orgs.reserved': '预留',
    'orgs.available': '可用',
    'orgs.overdraft': '透支额度',
    'orgs.pref': '扣费偏好',
    'orgs.seq': '账本条数',
    'orgs.notused': '尚未使用。',
    'orgs.topup': '充值',
    'orgs.topup.amount': '金额（美元）',
    'orgs.topup.reason': '原因',
    'orgs.topup.done': '充值已入账。',
    'orgs.delete': '删除',
    'orgs.delete.confirm': '删除组织“{name}”？',
    'orgs.deleted': '组织已删除。',
    'orgs.saved': '组织已保存。',
};

function openEditor(o, reload) {
    const editing = !!o;
    o = o || {};
    const dlg = modal({
        title: editing ? t('orgs.edit', { name: o.name }) : t('orgs.new'),
        body: form({
            id: 'org', action: editing ? 'save' : 'create',
            fields: [
                { name: 'name', label: t('orgs.name'), required: true, value: o.name, help: t('orgs.name.help') },
                { name: 'display_name', label: t('orgs.display_name'), value: o.display_name || '' },
            ],
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                if (editing) await api('PATCH', `/api/orgs/${o.id}`, { body: v });
                else await api('POST', '/api/orgs', { body: v });
                toast(t('orgs.saved'));
                dlg.close();
                reload();
            },
        }),
    });
}

function openWallet(o, ctx) {
    const box = h('div', null, loading());
    const show = async () => {
        try {
            const a = (await api('GET', `/api/orgs/${o.id}/account`)).data;
            clear(box).append(dl([
                [t('orgs.balance'), money(a.balance)],
                [t('orgs.reserved'), money(a.reserved)],
                [t('orgs.available'), money(a.available)],
                [t('orgs.overdraft'), money(a.overdraft_limit)],
                [t('orgs.pref'), a.billing_preference],
                [t('orgs.seq'), fmt.num(a.ledger_seq)],
            ]));
            if (a.id === null) box.append(h('p', { class: 'muted' }, t('orgs.notused')));
        } catch (err) { clear(box).append(errorBox(err)); }
    };
    const topup = ctx.role === 'operator' ? null : form({
        id: 'org-topup', action: 'topup', submitLabel: t('orgs.topup'),
        fields: [
            { name: 'amount', label: t('orgs.topup.amount'), type: 'number', min: 0, step: 'any', required: true },
            { name: 'reason', label: t('orgs.topup.reason'), required: true },
        ],
        onSubmit: async (v, f) => {
            await api('POST', `/api/orgs/${o.id}/topup`,
                { body: { amount: Math.round(v.amount * getQuotaPerUsd()), reason: v.reason } });
            toast(t('orgs.topup.done'));
            f.reset();
            show();
        },
    });
    modal({ title: t('orgs.wallet.title', { name: o.display_name || o.name }), body: [box, topup] });
    show();
}

export default {
    id: 'orgs',
    nav: 'nav.orgs',
    section: 'ops',
    roles: ['root', 'admin'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        let lv;
        const reload = () => lv.reload();
        const fail = (e) => toast(e.message, 'error');
        lv = listView({
            ctx, page: 'orgs', path: '/api/orgs', id: 'orgs',
            filters: [{ name: 'q', label: t('orgs.f.q') }],
            columns: [
                { key: 'id', label: t('orgs.col.id'), align: 'right' },
                { key: 'name', label: t('orgs.col.name'), render: (o) => h('strong', null, o.name) },
                { key: 'display_name', label: t('orgs.col.display') },
                { key: 'members', label: t('orgs.col.members'), align: 'right', render: (o) => fmt.num(o.members) },
                { key: 'created_at', label: t('orgs.col.created'), render: (o) => fmt.date(o.created_at) },
                { key: 'actions', label: t('orgs.col.actions'), render: (o) => h('div', { class: 'cell-actions' },
                    button(t('orgs.wallet'), 'wallet', () => openWallet(o, ctx), 'small'),
                    button(t('orgs.editbtn'), 'edit', () => openEditor(o, reload), 'small'),
                    button(t('orgs.delete'), 'delete', async () => {
                        if (!await confirmDialog(t('orgs.delete.confirm', { name: o.name }))) return;
                        try { await api('DELETE', `/api/orgs/${o.id}`); toast(t('orgs.deleted')); reload(); } catch (err) { fail(err); }
                    }, 'small danger')) },
            ],
        });
        root.append(pageHeader(t('orgs.title'), button(t('orgs.create'), 'create', () => openEditor(null, reload), 'primary')), lv);
    },
};
