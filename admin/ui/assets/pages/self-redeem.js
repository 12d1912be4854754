// Redeem a voucher (POST /api/self/redeem): the amount credited or the plan
// subscribed on success; the server's own message when refused (the lockout
// included, with the time it ends).
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { fmt } from '../core/ui.js';
import { dataForm, pageHead, mount, notice, isStatus } from '../core/billing-ui.js';

export default {
    id: 'self-redeem',
    nav: 'nav.self-redeem',
    section: 'self',
    roles: ['user', 'operator', 'admin', 'root'],
    strings: {
        en: {
            'nav.self-redeem': 'Redeem',
            'sred.title': 'Redeem a voucher',
            'sred.code': 'Voucher code',
            'sred.help': 'Dashes and spaces do not matter; O, I and L are read as 0, 1 and 1.',
            'sred.submit': 'Redeem',
            'sred.ok_quota': '{amount} was added to your wallet.',
            'sred.ok_plan': 'You are subscribed (subscription #{sub}).',
            'sred.balance': 'Balance now: {balance}.',
            'sred.allowance': 'Allowance now: {balance}.',
            'sred.locked': 'Too many failed attempts: redeeming is locked for now.',
            'sred.retry': 'Try again in about {n} minutes.',
            'sred.retry_s': 'Try again in {n} seconds.',
            'sred.see': 'See your balance',
        },
        'zh-CN': {
            'nav.self-redeem': '兑换',
            'sred.title': '兑换兑换码',
            'sred.code': '兑换码',
            'sred.help': '短横线和空格无关紧要；O、I、L 分别按 0、1、1 识别。',
            'sred.submit': '兑换',
            'sred.ok_quota': '已向你的钱包充入 {amount}。',
            'sred.ok_plan': '已为你开通订阅（订阅 #{sub}）。',
            'sred.balance': '当前余额：{balance}。',
            'sred.allowance': '当前套餐额度：{balance}。',
            'sred.locked': '失败次数过多：兑换暂时被锁定。',
            'sred.retry': '请约 {n} 分钟后再试。',
            'sred.retry_s': '请 {n} 秒后再试。',
            'sred.see': '查看余额',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'self-redeem';
        const out = h('div', { class: 'redeem-result', dataset: { redeem: 'result' }, attrs: { 'aria-live': 'polite' } });
        let f;
        f = dataForm('redeem', {
            submitLabel: t('sred.submit'),
            fields: [{ name: 'code', label: t('sred.code'), type: 'text', required: true, help: t('sred.help'),
                autocomplete: 'off', attrs: { spellcheck: 'false', autocapitalize: 'characters' } }],
            onSubmit: async (v) => {
                clear(out);
                out.dataset.outcome = '';
                let r;
                try {
                    r = (await api('POST', '/api/self/redeem', { body: { code: String(v.code).trim() } })).data;
                } catch (err) {
                    out.dataset.outcome = 'refused';
                    out.dataset.code = err.code || '';
                    if (isStatus(err, 429)) {
                        // the server's message names the end of the lockout; Retry-After when the core gives it
                        const secs = Number(err.retryAfter || (err.headers && err.headers.get && err.headers.get('Retry-After')));
                        const mins = (/\(in (\d+) minutes?\)/.exec(err.message || '') || [])[1];
                        out.append(notice(t('sred.locked'), 'error'), h('p', { class: 'server-message' }, err.message),
                            secs ? h('p', {}, t('sred.retry_s', { n: secs })) : mins ? h('p', {}, t('sred.retry', { n: mins })) : null);
                        return;
                    }
                    throw err; // shown next to the code field: the server's exact message
                }
                out.dataset.outcome = 'ok';
                const input = f.querySelector('input[name="code"]');
                if (input) input.value = '';
                const units = (n) => t('bui.units', { n: fmt.num(n) });
                const plan = r.kind === 'plan';
                out.append(h('div', { class: 'note', attrs: { role: 'status' } },
                    h('p', { class: 'redeem-amount', title: plan ? null : units(r.amount) },
                        plan ? t('sred.ok_plan', { sub: r.sub_id }) : t('sred.ok_quota', { amount: fmt.usd(r.amount) })),
                    h('p', { class: 'redeem-balance', title: plan ? null : units(r.balance_after) },
                        plan ? t('sred.allowance', { balance: fmt.num(r.balance_after) })
                            : t('sred.balance', { balance: fmt.usd(r.balance_after) })),
                    h('p', {}, h('a', { href: '#/self-balance' }, t('sred.see')))));
            },
        }, 'redeem');
        mount(root, pageHead(t('sred.title')), f, out);
    },
};
