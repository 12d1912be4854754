// The ledger: filter by account / kind / request / time, pager, CSV export,
// and "verify" (GET /api/billing/reconcile) with its result shown plainly.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, download } from '../core/api.js';
import { toast, fmt, modal, loading, badge } from '../core/ui.js';
import { money, when, listView, pageHead, button, mount, kv, dataTable, errorView, clean,
                  jsonText } from '../core/billing-ui.js';
import { accountStrings } from './accounts.js';

export const KINDS = ['topup', 'consume', 'refund', 'voucher', 'plan_grant', 'period_reset', 'rollover',
    'expiry', 'adjustment'];

export const ledgerStrings = {
    en: {
        'ledger.kind.topup': 'top-up', 'ledger.kind.consume': 'usage', 'ledger.kind.refund': 'refund',
        'ledger.kind.voucher': 'voucher', 'ledger.kind.plan_grant': 'plan grant', 'ledger.kind.period_reset': 'period reset',
        'ledger.kind.rollover': 'rollover', 'ledger.kind.expiry': 'expiry', 'ledger.kind.adjustment': 'adjustment',
        'ledger.c.when': 'Time', 'ledger.c.kind': 'Kind', 'ledger.c.amount': 'Amount', 'ledger.c.after': 'Balance after',
        'ledger.c.account': 'Account', 'ledger.c.seq': 'Seq', 'ledger.c.actor': 'By', 'ledger.c.request': 'Request',
        'ledger.c.note': 'Note',
        'ledger.f.kind': 'Kind', 'ledger.f.from': 'From', 'ledger.f.to': 'Until', 'ledger.f.request_id': 'Request id',
        'ledger.f.account_id': 'Account',
        'ledger.row': 'Ledger row #{id}', 'ledger.detail': 'Detail', 'ledger.idem': 'Idempotency key',
        'ledger.hash': 'Row hash', 'ledger.prev': 'Previous hash',
    },
    'zh-CN': {
        'ledger.kind.topup': '充值', 'ledger.kind.consume': '消费', 'ledger.kind.refund': '退款',
        'ledger.kind.voucher': '兑换码', 'ledger.kind.plan_grant': '套餐发放', 'ledger.kind.period_reset': '周期重置',
        'ledger.kind.rollover': '结转', 'ledger.kind.expiry': '过期', 'ledger.kind.adjustment': '调整',
        'ledger.c.when': '时间', 'ledger.c.kind': '类型', 'ledger.c.amount': '金额', 'ledger.c.after': '变动后余额',
        'ledger.c.account': '账户', 'ledger.c.seq': '序号', 'ledger.c.actor': '操作者', 'ledger.c.request': '请求',
        'ledger.c.note': '说明',
        'ledger.f.kind': '类型', 'ledger.f.from': '起始', 'ledger.f.to': '截止', 'ledger.f.request_id': '请求 ID',
        'ledger.f.account_id': '账户',
        'ledger.row': '流水 #{id}', 'ledger.detail': '详情', 'ledger.idem': '幂等键',
        'ledger.hash': '行哈希', 'ledger.prev': '上一行哈希',
    },
};

function note(r) {
    const d = r.detail || {};
    return d.reason || d.note || (d.model ? String(d.model) : '') || '';
}

// Ledger columns (shared with the self-service balance page).
// An amount in its account's unit: USD for quota (wallets), else tokens or requests.
function inUnit(r, v) {
    return r._unit && r._unit !== 'quota' ? `${fmt.num(v)} ${t(`accounts.unit.${r._unit}`)}` : money(v);
}

export function ledgerColumns({ account = true, amount = (r) => inUnit(r, r.amount), after = (r) => inUnit(r, r.balance_after) } = {}) {
    const cols = [
        { key: 'created_at', label: t('ledger.c.when'), render: (r) => when(r.created_at) },
        { key: 'kind', label: t('ledger.c.kind'), render: (r) => badge(t(`ledger.kind.${r.kind}`), r.amount < 0 ? 'muted' : 'ok') },
        { key: 'amount', label: t('ledger.c.amount'), align: 'right', render: amount },
        { key: 'balance_after', label: t('ledger.c.after'), align: 'right', render: after },
    ];
    if (account) {
        cols.push({ key: 'account_id', label: t('ledger.c.account'), align: 'right',
            render: (r) => `#${r.account_id}` });
        cols.push({ key: 'actor', label: t('ledger.c.actor') });
    }
    cols.push({ key: 'request_id', label: t('ledger.c.request'),
        render: (r) => (r.request_id ? h('code', { title: r.request_id }, r.request_id.slice(0, 8)) : '') });
    cols.push({ key: 'note', label: t('ledger.c.note'), render: note });
    return cols;
}

export function ledgerRowDialog(r, { hashes = true } = {}) {
    modal({ title: t('ledger.row', { id: r.id }), wide: true, actions: [], body: h('div', {},
        kv([
            [t('ledger.c.when'), when(r.created_at)],
            [t('ledger.c.kind'), t(`ledger.kind.${r.kind}`)],
            [t('ledger.c.amount'), inUnit(r, r.amount)],
            [t('ledger.c.after'), inUnit(r, r.balance_after)],
            [t('ledger.c.account'), `#${r.account_id}`],
            [t('ledger.c.seq'), fmt.num(r.seq)],
            [t('ledger.c.actor'), r.actor],
            [t('ledger.c.request'), r.request_id],
            [t('ledger.idem'), r.idem_key],
            hashes ? [t('ledger.prev'), h('code', {}, r.prev_hash || '')] : null,
            hashes ? [t('ledger.hash'), h('code', {}, r.row_hash || '')] : null,
        ]),
        r.detail ? h('pre', { class: 'json' }, jsonText(r.detail)) : null) });
}

export default {
    id: 'ledger',
    nav: 'nav.ledger',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            ...ledgerStrings.en,
            ...accountStrings.en,
            'nav.ledger': 'Ledger',
            'ledger.title': 'Ledger',
            'ledger.export': 'Export CSV',
            'ledger.verify': 'Verify',
            'ledger.verify_title': 'Ledger verification',
            'ledger.ok': 'All {n} accounts match their ledger.',
            'ledger.bad': '{n} of {total} accounts do not match their ledger.',
            'ledger.truncated': 'More mismatches exist than are listed.',
            'ledger.m.account': 'Account', 'ledger.m.balance': 'Balance', 'ledger.m.sum': 'Ledger sum',
            'ledger.m.reserved': 'Reserved', 'ledger.m.held': 'Held', 'ledger.m.seq': 'Seq', 'ledger.m.rows': 'Rows',
            'ledger.exported': 'Export started.',
            'ledger.verified': 'verified', 'ledger.mismatch': 'mismatch',
        },
        'zh-CN': {
            ...ledgerStrings['zh-CN'],
            ...accountStrings['zh-CN'],
            'nav.ledger': '流水',
            'ledger.title': '流水',
            'ledger.export': '导出 CSV',
            'ledger.verify': '校验',
            'ledger.verify_title': '流水校验',
            'ledger.ok': '全部 {n} 个账户与流水一致。',
            'ledger.bad': '{total} 个账户中有 {n} 个与流水不一致。',
            'ledger.truncated': '不一致的账户比列出的更多。',
            'ledger.m.account': '账户', 'ledger.m.balance': '余额', 'ledger.m.sum': '流水合计',
            'ledger.m.reserved': '冻结', 'ledger.m.held': '占用', 'ledger.m.seq': '序号', 'ledger.m.rows': '行数',
            'ledger.exported': '已开始导出。',
            'ledger.verified': '一致', 'ledger.mismatch': '不一致',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'ledger';
        const q = ctx.query || {};
        const any = { value: '', label: t('bui.any') };
        // the unit of each account on the page (subscription allowances may count tokens)
        const units = {};
        async function withUnits(r) {
            const ids = [...new Set((r.data || []).map((x) => x.account_id))].filter((id) => !(id in units));
            await Promise.all(ids.map(async (id) => {
                try { units[id] = (await api('GET', `/api/billing/accounts/${id}`)).data.unit; } catch { units[id] = null; }
            }));
            for (const x of r.data || []) x._unit = units[x.account_id];
            return r;
        }
        const list = listView({
            id: 'ledger', columns: ledgerColumns(),
            initial: { account_id: q.account_id || '', kind: q.kind || '', request_id: q.request_id || '' },
            load: async (query) => withUnits(await api('GET', '/api/billing/ledger', { query })),
            filterFields: [
                { name: 'account_id', label: t('ledger.f.account_id'), type: 'number' },
                { name: 'kind', label: t('ledger.f.kind'), type: 'select',
                    options: [any, ...KINDS.map((k) => ({ value: k, label: t(`ledger.kind.${k}`) }))] },
                { name: 'request_id', label: t('ledger.f.request_id'), type: 'text' },
                { name: 'from', label: t('ledger.f.from'), type: 'datetime' },
                { name: 'to', label: t('ledger.f.to'), type: 'datetime' },
            ],
            onRow: (r) => ledgerRowDialog(r),
        });
        async function exportCsv() {
            try {
                await download('/api/billing/ledger/export', { format: 'csv', ...clean(list.state.filters) }, 'ledger.csv');
                toast(t('ledger.exported'));
            } catch (err) { toast(err.message, 'error'); }
        }
        async function verify() {
            const out = h('div', { class: 'verify-result', attrs: { 'aria-live': 'polite' } }, loading());
            modal({ title: t('ledger.verify_title'), body: out, wide: true, actions: [] });
            let d;
            try {
                d = (await api('GET', '/api/billing/reconcile')).data;
            } catch (err) { clear(out); out.append(errorView(err)); return; }
            clear(out);
            out.dataset.ok = d.ok ? 'true' : 'false';
            const mm = d.mismatches || [];
            out.append(h('p', { class: d.ok ? 'verify-ok' : 'verify-bad', attrs: { role: 'status' } },
                badge(d.ok ? t('ledger.verified') : t('ledger.mismatch'), d.ok ? 'ok' : 'error'), ' ',
                d.ok ? t('ledger.ok', { n: fmt.num(d.accounts_checked) })
                    : t('ledger.bad', { n: fmt.num(mm.length), total: fmt.num(d.accounts_checked) })));
            if (d.truncated) out.append(h('p', {}, t('ledger.truncated')));
            if (mm.length) {
                out.append(dataTable('mismatches', { rows: mm, columns: [
                    { key: 'account_id', label: t('ledger.m.account'), align: 'right' },
                    { key: 'balance', label: t('ledger.m.balance'), align: 'right', render: (m) => fmt.num(m.balance) },
                    { key: 'ledger_sum', label: t('ledger.m.sum'), align: 'right', render: (m) => fmt.num(m.ledger_sum) },
                    { key: 'reserved', label: t('ledger.m.reserved'), align: 'right', render: (m) => fmt.num(m.reserved) },
                    { key: 'held_sum', label: t('ledger.m.held'), align: 'right', render: (m) => fmt.num(m.held_sum) },
                    { key: 'ledger_seq', label: t('ledger.m.seq'), align: 'right' },
                    { key: 'ledger_rows', label: t('ledger.m.rows'), align: 'right' },
                ] }));
            }
        }
        mount(root, pageHead(t('ledger.title'),
            button(t('ledger.verify'), 'verify', verify),
            button(t('ledger.export'), 'export', exportCsv, 'primary')), list.el);
        await list.refresh();
    },
};
