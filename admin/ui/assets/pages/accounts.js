// Balances: the accounts of mod_nebula_billing (wallets of users and
// organisations, subscription allowances), top-up and adjustment with a reason,
// overdraft and billing preference.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { toast, fmt } from '../core/ui.js';
import { canWrite, money, when, toInt, listView, formDialog, pageHead, button, notice, mount,
                  usdToUnits, toBool } from '../core/billing-ui.js';

const PREFS = ['subscription_first', 'wallet_first', 'subscription_only', 'wallet_only'];

export function amountOf(acc, units) {
    return !acc || acc.unit === 'quota' ? money(units) : `${fmt.num(units)} ${t(`accounts.unit.${acc.unit}`)}`;
}

export function ownerLink(kind, id) {
    if (kind === 'sub') return h('a', { href: '#/subscriptions' }, `${t('accounts.kind.sub')} #${id}`);
    return `${t(`accounts.kind.${kind}`)} #${id}`;
}

export const accountStrings = {
    en: {
        'accounts.kind.user': 'user', 'accounts.kind.org': 'organisation', 'accounts.kind.sub': 'subscription',
        'accounts.unit.quota': 'quota', 'accounts.unit.tokens': 'tokens', 'accounts.unit.requests': 'requests',
    },
    'zh-CN': {
        'accounts.kind.user': '用户', 'accounts.kind.org': '组织', 'accounts.kind.sub': '订阅',
        'accounts.unit.quota': '额度', 'accounts.unit.tokens': '令牌', 'accounts.unit.requests': '次请求',
    },
};

export default {
    id: 'accounts',
    nav: 'nav.accounts',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            ...accountStrings.en,
            'nav.accounts': 'Balances',
            'accounts.title': 'Balances',
            'accounts.topup_owner': 'Top up a wallet',
            'accounts.topup': 'Top up', 'accounts.adjust': 'Adjust', 'accounts.settings': 'Settings',
            'accounts.ledger': 'Ledger',
            'accounts.c.id': '#', 'accounts.c.owner': 'Owner', 'accounts.c.balance': 'Balance',
            'accounts.c.reserved': 'Reserved', 'accounts.c.available': 'Available', 'accounts.c.overdraft': 'Overdraft limit',
            'accounts.c.pref': 'Pays with', 'accounts.c.rows': 'Ledger rows', 'accounts.c.updated': 'Updated',
            'accounts.f.owner_kind': 'Owner kind', 'accounts.f.owner_id': 'Owner id',
            'accounts.f.amount_usd': 'Amount (USD)', 'accounts.f.amount_units': 'Amount ({unit})',
            'accounts.f.reason': 'Reason', 'accounts.f.allow_negative': 'Allow the balance below the overdraft limit',
            'accounts.f.overdraft_limit': 'Overdraft limit (quota units)', 'accounts.f.billing_preference': 'Pays with',
            'accounts.h.adjust': 'Signed: a negative amount takes money away.',
            'accounts.h.idem': 'Optional: retrying with the same key applies the movement once.',
            'accounts.f.idempotency_key': 'Idempotency key',
            'accounts.done': 'Done: the balance is now {balance}.',
            'accounts.replayed': 'Already applied earlier with this key (nothing changed).',
            'accounts.topup_title': 'Top up account #{id}', 'accounts.adjust_title': 'Adjust account #{id}',
            'accounts.settings_title': 'Settings of account #{id}',
            'accounts.pref.subscription_first': 'subscription first', 'accounts.pref.wallet_first': 'wallet first',
            'accounts.pref.subscription_only': 'subscription only', 'accounts.pref.wallet_only': 'wallet only',
            'accounts.filter.kind': 'Owner kind', 'accounts.filter.owner': 'Owner id',
            'accounts.prices_hint': 'Group price ratios are set on the groups page.',
        },
        'zh-CN': {
            ...accountStrings['zh-CN'],
            'nav.accounts': '余额',
            'accounts.title': '余额',
            'accounts.topup_owner': '为钱包充值',
            'accounts.topup': '充值', 'accounts.adjust': '调整', 'accounts.settings': '设置',
            'accounts.ledger': '流水',
            'accounts.c.id': '#', 'accounts.c.owner': '所有者', 'accounts.c.balance': '余额',
            'accounts.c.reserved': '冻结', 'accounts.c.available': '可用', 'accounts.c.overdraft': '透支额度',
            'accounts.c.pref': '扣费方式', 'accounts.c.rows': '流水条数', 'accounts.c.updated': '更新时间',
            'accounts.f.owner_kind': '所有者类型', 'accounts.f.owner_id': '所有者 ID',
            'accounts.f.amount_usd': '金额（美元）', 'accounts.f.amount_units': '数量（{unit}）',
            'accounts.f.reason': '原因', 'accounts.f.allow_negative': '允许余额低于透支额度',
            'accounts.f.overdraft_limit': '透支额度（额度单位）', 'accounts.f.billing_preference': '扣费方式',
            'accounts.h.adjust': '可为负数：负数表示扣减。',
            'accounts.h.idem': '可选：用同一个键重试只会生效一次。',
            'accounts.f.idempotency_key': '幂等键',
            'accounts.done': '完成：当前余额 {balance}。',
            'accounts.replayed': '此键之前已生效（没有变化）。',
            'accounts.topup_title': '为账户 #{id} 充值', 'accounts.adjust_title': '调整账户 #{id}',
            'accounts.settings_title': '账户 #{id} 的设置',
            'accounts.pref.subscription_first': '优先订阅', 'accounts.pref.wallet_first': '优先钱包',
            'accounts.pref.subscription_only': '仅订阅', 'accounts.pref.wallet_only': '仅钱包',
            'accounts.filter.kind': '所有者类型', 'accounts.filter.owner': '所有者 ID',
            'accounts.prices_hint': '分组价格倍率在分组页面设置。',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'accounts';
        const write = canWrite(ctx);
        const q = ctx.query || {};
        const columns = [
            { key: 'id', label: t('accounts.c.id'), align: 'right' },
            { key: 'owner', label: t('accounts.c.owner'), render: (a) => ownerLink(a.owner_kind, a.owner_id) },
            { key: 'balance', label: t('accounts.c.balance'), align: 'right', render: (a) => amountOf(a, a.balance) },
            { key: 'reserved', label: t('accounts.c.reserved'), align: 'right', render: (a) => amountOf(a, a.reserved) },
            { key: 'available', label: t('accounts.c.available'), align: 'right', render: (a) => amountOf(a, a.available) },
            { key: 'overdraft_limit', label: t('accounts.c.overdraft'), align: 'right', render: (a) => amountOf(a, a.overdraft_limit) },
            { key: 'billing_preference', label: t('accounts.c.pref'), render: (a) => t(`accounts.pref.${a.billing_preference}`) },
            { key: 'ledger_seq', label: t('accounts.c.rows'), align: 'right',
                render: (a) => h('a', { href: `#/ledger?account_id=${a.id}` }, fmt.num(a.ledger_seq)) },
            { key: 'updated_at', label: t('accounts.c.updated'), render: (a) => when(a.updated_at) },
        ];
        if (write) {
            columns.push({ key: '_a', label: t('bui.actions'), render: (a) => h('span', { class: 'row-actions' },
                button(t('accounts.topup'), 'topup', () => move(a, 'topup')),
                button(t('accounts.adjust'), 'adjust', () => move(a, 'adjust')),
                button(t('accounts.settings'), 'edit', () => settings(a))) });
        }
        const any = { value: '', label: t('bui.any') };
        const kinds = ['user', 'org', 'sub'].map((v) => ({ value: v, label: t(`accounts.kind.${v}`) }));
        const list = listView({
            id: 'accounts', columns,
            initial: { owner_kind: q.owner_kind || '', owner_id: q.owner_id || '' },
            load: (query) => api('GET', '/api/billing/accounts', { query }),
            filterFields: [
                { name: 'owner_kind', label: t('accounts.filter.kind'), type: 'select', options: [any, ...kinds] },
                { name: 'owner_id', label: t('accounts.filter.owner'), type: 'number' },
            ],
        });
        function done(r) {
            const d = r && r.data;
            if (d) toast(d.replayed ? t('accounts.replayed') : t('accounts.done', { balance: fmt.usd(d.account.balance) }));
            list.refresh();
        }
        function amountField(acc) {
            return acc.unit === 'quota'
                ? { name: 'amount', label: t('accounts.f.amount_usd'), type: 'text', required: true, placeholder: '10.00' }
                : { name: 'amount', label: t('accounts.f.amount_units', { unit: t(`accounts.unit.${acc.unit}`) }), type: 'number', required: true };
        }
        async function move(acc, kind) {
            const fields = [amountField(acc),
                { name: 'reason', label: t('accounts.f.reason'), type: 'text', required: true },
                { name: 'idempotency_key', label: t('accounts.f.idempotency_key'), type: 'text', help: t('accounts.h.idem') }];
            if (kind === 'adjust') {
                fields[0].help = t('accounts.h.adjust');
                fields.push({ name: 'allow_negative', label: t('accounts.f.allow_negative'), type: 'checkbox' });
            }
            const r = await formDialog({
                title: t(kind === 'topup' ? 'accounts.topup_title' : 'accounts.adjust_title', { id: acc.id }),
                id: kind, action: kind, fields,
                onSubmit: (v) => {
                    const body = { amount: acc.unit === 'quota' ? usdToUnits(v.amount) : toInt(v.amount), reason: v.reason };
                    if (v.idempotency_key) body.idempotency_key = v.idempotency_key;
                    if (kind === 'adjust' && toBool(v.allow_negative)) body.allow_negative = true;
                    return api('POST', `/api/billing/accounts/${acc.id}/${kind}`, { body });
                },
            });
            if (r && r !== true) done(r);
        }
        async function settings(acc) {
            const r = await formDialog({
                title: t('accounts.settings_title', { id: acc.id }), id: 'account', fields: [
                    { name: 'overdraft_limit', label: t('accounts.f.overdraft_limit'), type: 'number', value: acc.overdraft_limit },
                    { name: 'billing_preference', label: t('accounts.f.billing_preference'), type: 'select', value: acc.billing_preference,
                        options: PREFS.map((v) => ({ value: v, label: t(`accounts.pref.${v}`) })) },
                ],
                onSubmit: (v) => api('PATCH', `/api/billing/accounts/${acc.id}`,
                    { body: { overdraft_limit: toInt(v.overdraft_limit) ?? 0, billing_preference: v.billing_preference } }),
            });
            if (r) { toast(t('bui.saved')); list.refresh(); }
        }
        async function topupOwner() {
            const r = await formDialog({
                title: t('accounts.topup_owner'), id: 'topup', action: 'topup', fields: [
                    { name: 'owner_kind', label: t('accounts.f.owner_kind'), type: 'select', value: q.owner_kind === 'org' ? 'org' : 'user',
                        options: kinds.filter((k) => k.value !== 'sub') },
                    { name: 'owner_id', label: t('accounts.f.owner_id'), type: 'number', required: true, value: q.owner_id || '' },
                    { name: 'amount', label: t('accounts.f.amount_usd'), type: 'text', required: true, placeholder: '10.00' },
                    { name: 'reason', label: t('accounts.f.reason'), type: 'text', required: true },
                    { name: 'idempotency_key', label: t('accounts.f.idempotency_key'), type: 'text', help: t('accounts.h.idem') },
                ],
                onSubmit: (v) => {
                    const body = { amount: usdToUnits(v.amount), reason: v.reason };
                    if (v.idempotency_key) body.idempotency_key = v.idempotency_key;
                    const base = v.owner_kind === 'org' ? '/api/orgs' : '/api/users';
                    return api('POST', `${base}/${toInt(v.owner_id)}/topup`, { body });
                },
            });
            if (r && r !== true) done(r);
        }
        mount(root, pageHead(t('accounts.title'), write ? button(t('accounts.topup_owner'), 'topup-owner', topupOwner, 'primary') : null),
                    write ? null : notice(t('bui.readonly')), list.el);
        await list.refresh();
    },
};
