// Top up by payment: Stripe Checkout or EPay (each hidden when the server
// says it is not configured), and the user's own orders.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { dataForm, listView, pageHead, mount, notice, isStatus } from '../core/billing-ui.js';
import { topupStrings, topupColumns } from './topups.js';

// The amount as a JSON number (the server refuses strings); text it cannot read goes as is.
function money(v) {
    const n = Number(String(v).trim());
    return String(v).trim() !== '' && Number.isFinite(n) ? n : v;
}

// Providers the server said are not configured (503 payments_unconfigured):
// hidden from then on in this browser session. Not a secret, only a hint.
const OFF = 'nebula.payments.off';
function off() {
    try { return JSON.parse(sessionStorage.getItem(OFF) || '[]'); } catch { return []; }
}
function markOff(provider) {
    try { sessionStorage.setItem(OFF, JSON.stringify([...new Set([...off(), provider])])); } catch { /* storage disabled */ }
}

export default {
    id: 'self-topup',
    nav: 'nav.self-topup',
    section: 'self',
    roles: ['user', 'operator', 'admin', 'root'],
    strings: {
        en: {
            ...topupStrings.en,
            'nav.self-topup': 'Top up',
            'stop.title': 'Top up',
            'stop.amount': 'Amount',
            'stop.amount_help': 'In the shop\'s currency, up to two decimals.',
            'stop.stripe': 'Pay by card (Stripe)',
            'stop.epay': 'Pay with EPay',
            'stop.type': 'Payment method',
            'stop.type.alipay': 'Alipay', 'stop.type.wxpay': 'WeChat Pay', 'stop.type.qqpay': 'QQ Wallet',
            'stop.none': 'Payments are not configured on this server. Ask an administrator, or redeem a voucher.',
            'stop.redirect': 'Taking you to the payment page…',
            'stop.orders': 'My orders',
        },
        'zh-CN': {
            ...topupStrings['zh-CN'],
            'nav.self-topup': '充值',
            'stop.title': '充值',
            'stop.amount': '金额',
            'stop.amount_help': '以商户币种计，最多两位小数。',
            'stop.stripe': '银行卡支付（Stripe）',
            'stop.epay': '易支付',
            'stop.type': '支付方式',
            'stop.type.alipay': '支付宝', 'stop.type.wxpay': '微信支付', 'stop.type.qqpay': 'QQ 钱包',
            'stop.none': '此服务器未配置在线支付。请联系管理员，或使用兑换码。',
            'stop.redirect': '正在跳转到支付页面…',
            'stop.orders': '我的订单',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'self-topup';
        const box = h('div', { class: 'topup-forms' });
        const list = listView({
            id: 'self-topups', columns: topupColumns({ user: false }),
            load: (query) => api('GET', '/api/self/topups', { query }),
        });
        mount(root, pageHead(t('stop.title')), box, h('h2', {}, t('stop.orders')), list.el);
        const amount = { name: 'amount', label: t('stop.amount'), type: 'text', required: true, help: t('stop.amount_help'),
            placeholder: '10.00', attrs: { inputmode: 'decimal' } };
        const go = (url) => {
            box.append(notice(t('stop.redirect')));
            window.location.assign(url);
        };
        // start a payment; a provider the server has not configured disappears
        const pay = async (provider, body) => {
            try {
                return (await api('POST', `/api/self/topup/${provider}`, { body })).data;
            } catch (err) {
                if (isStatus(err, 503, 'payments_unconfigured')) {
                    markOff(provider);
                    draw();
                    box.prepend(notice(err.message, 'warn'));
                    return null;
                }
                throw err;
            }
        };
        function draw() {
            clear(box);
            const gone = off();
            const stripe = !gone.includes('stripe');
            const epay = !gone.includes('epay');
            if (stripe) {
                box.append(h('section', { class: 'card', dataset: { provider: 'stripe' } }, h('h2', {}, t('stop.stripe')),
                    dataForm('topup-stripe', { submitLabel: t('stop.stripe'), fields: [amount],
                        onSubmit: async (v) => {
                            const r = await pay('stripe', { amount: money(v.amount) });
                            if (r) go(r.checkout_url);
                        } }, 'pay-stripe')));
            }
            if (epay) {
                box.append(h('section', { class: 'card', dataset: { provider: 'epay' } }, h('h2', {}, t('stop.epay')),
                    dataForm('topup-epay', { submitLabel: t('stop.epay'), fields: [amount,
                        { name: 'type', label: t('stop.type'), type: 'select', value: 'alipay',
                            options: ['alipay', 'wxpay', 'qqpay'].map((v) => ({ value: v, label: t(`stop.type.${v}`) })) }],
                        onSubmit: async (v) => {
                            const r = await pay('epay', { amount: money(v.amount), type: v.type });
                            if (r) go(r.pay_url);
                        } }, 'pay-epay')));
            }
            if (!stripe && !epay) box.append(notice(t('stop.none')));
        }
        draw();
        await list.refresh();
    },
};
