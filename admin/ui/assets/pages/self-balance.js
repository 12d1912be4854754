// My balance: the wallet the signed-in user pays from, and its ledger.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { money, listView, pageHead, mount, errorView, button } from '../core/billing-ui.js';
import { KINDS, ledgerStrings, ledgerColumns, ledgerRowDialog } from './ledger.js';
import { accountStrings } from './accounts.js';

export default {
    id: 'self-balance',
    nav: 'nav.self-balance',
    section: 'self',
    roles: ['user', 'operator', 'admin', 'root'],
    strings: {
        en: {
            ...ledgerStrings.en,
            ...accountStrings.en,
            'nav.self-balance': 'Balance',
            'sbal.title': 'My balance',
            'sbal.available': 'Available',
            'sbal.balance': 'Balance',
            'sbal.reserved': 'Held by requests in flight',
            'sbal.overdraft': 'Overdraft allowed',
            'sbal.org': 'Your organisation\'s wallet: members share it.',
            'sbal.never': 'Your wallet has not been used yet.',
            'sbal.history': 'History',
            'sbal.redeem': 'Redeem a voucher', 'sbal.topup': 'Top up',
        },
        'zh-CN': {
            ...ledgerStrings['zh-CN'],
            ...accountStrings['zh-CN'],
            'nav.self-balance': '余额',
            'sbal.title': '我的余额',
            'sbal.available': '可用',
            'sbal.balance': '余额',
            'sbal.reserved': '进行中请求冻结',
            'sbal.overdraft': '允许透支',
            'sbal.org': '这是你所在组织的钱包，成员共用。',
            'sbal.never': '你的钱包尚未使用过。',
            'sbal.history': '明细',
            'sbal.redeem': '兑换兑换码', 'sbal.topup': '充值',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'self-balance';
        const summary = h('div', { class: 'stats', dataset: { self: 'account' } });
        mount(root, pageHead(t('sbal.title'),
            button(t('sbal.redeem'), 'redeem', () => ctx.go('self-redeem')),
            button(t('sbal.topup'), 'topup', () => ctx.go('self-topup'), 'primary')), summary);
        let acc;
        try {
            acc = (await api('GET', '/api/self/account')).data;
        } catch (err) {
            summary.append(errorView(err));
            return;
        }
        const stat = (label, value, key) => h('div', { class: 'stat card', dataset: { stat: key } },
            h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value));
        clear(summary);
        summary.append(stat(t('sbal.available'), money(acc.available), 'available'),
            stat(t('sbal.balance'), money(acc.balance), 'balance'),
            stat(t('sbal.reserved'), money(acc.reserved), 'reserved'));
        if (acc.overdraft_limit) summary.append(stat(t('sbal.overdraft'), money(acc.overdraft_limit), 'overdraft'));
        const notes = [];
        if (acc.owner_kind === 'org') notes.push(h('p', { class: 'note' }, t('sbal.org')));
        if (acc.id === null) notes.push(h('p', { class: 'note' }, t('sbal.never')));
        const any = { value: '', label: t('bui.any') };
        const list = listView({
            id: 'self-ledger', columns: ledgerColumns({ account: false }),
            load: (query) => api('GET', '/api/self/ledger', { query }),
            filterFields: [
                { name: 'kind', label: t('ledger.f.kind'), type: 'select', options: [any, ...KINDS.map((k) => ({ value: k, label: t(`ledger.kind.${k}`) }))] },
                { name: 'from', label: t('ledger.f.from'), type: 'datetime' },
                { name: 'to', label: t('ledger.f.to'), type: 'datetime' },
            ],
            onRow: (r) => ledgerRowDialog(r, { hashes: false }),
        });
        mount(root, notes, h('h2', {}, t('sbal.history')), list.el);
        await list.refresh();
    },
};
