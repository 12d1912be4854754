// Model prices and ratios: list, create/edit (PUT), delete. Group ratios live
// on the groups page.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { confirmDialog, toast } from '../core/ui.js';
import { canWrite, when, listView, formDialog, pageHead, button, notice, mount } from '../core/billing-ui.js';

function priceFields(p) {
    const f = (name, help) => ({ name, label: t(`prices.f.${name}`), type: 'text', value: p ? (p[name] ?? '') : '',
        help: help ? t(help) : undefined, placeholder: p ? undefined : '1' });
    return [
        { name: 'model', label: t('prices.f.model'), type: 'text', required: true, value: p ? p.model : '',
            disabled: !!p },
        { ...f('model_ratio', 'prices.h.model_ratio'), required: true },
        f('completion_ratio', 'prices.h.completion_ratio'),
        f('cache_read_ratio'),
        f('cache_write_ratio'),
        { ...f('price_per_call_usd', 'prices.h.per_call'), placeholder: undefined },
    ];
}

function priceBody(v, p) {
    const b = { model: p ? p.model : String(v.model || '').trim() };
    for (const k of ['model_ratio', 'completion_ratio', 'cache_read_ratio', 'cache_write_ratio']) {
        const s = String(v[k] ?? '').trim();
        if (s !== '') b[k] = s;
    }
    const call = String(v.price_per_call_usd ?? '').trim();
    if (call !== '') b.price_per_call_usd = call;
    else if (p && p.price_per_call_usd !== null) b.price_per_call_usd = null;
    return b;
}

export default {
    id: 'prices',
    nav: 'nav.prices',
    section: 'billing',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.prices': 'Prices',
            'prices.title': 'Model prices',
            'prices.create': 'New price',
            'prices.edit': 'Price of {model}',
            'prices.delete_q': 'Delete the price of {model}? The model is then refused or free, as the server is configured.',
            'prices.groups': 'Group ratios are set on the groups page.',
            'prices.c.model': 'Model', 'prices.c.model_ratio': 'Model ratio', 'prices.c.completion_ratio': 'Completion ratio',
            'prices.c.cache_read_ratio': 'Cache read', 'prices.c.cache_write_ratio': 'Cache write',
            'prices.c.per_call': 'Per call', 'prices.c.updated': 'Updated', 'prices.by_tokens': 'by tokens',
            'prices.f.model': 'Model', 'prices.f.model_ratio': 'Model ratio', 'prices.f.completion_ratio': 'Completion ratio',
            'prices.f.cache_read_ratio': 'Cache read ratio', 'prices.f.cache_write_ratio': 'Cache write ratio',
            'prices.f.price_per_call_usd': 'Price per call (USD)',
            'prices.h.model_ratio': '1 = 2 USD per million input tokens.',
            'prices.h.completion_ratio': 'Multiplies output tokens.',
            'prices.h.per_call': 'Empty: priced by tokens. When set it wins over the ratios.',
            'prices.filter.q': 'Model contains',
        },
        'zh-CN': {
            'nav.prices': '价格',
            'prices.title': '模型价格',
            'prices.create': '新建价格',
            'prices.edit': '{model} 的价格',
            'prices.delete_q': '删除 {model} 的价格？之后该模型按服务器配置被拒绝或免费。',
            'prices.groups': '分组倍率在分组页面设置。',
            'prices.c.model': '模型', 'prices.c.model_ratio': '模型倍率', 'prices.c.completion_ratio': '补全倍率',
            'prices.c.cache_read_ratio': '缓存读取', 'prices.c.cache_write_ratio': '缓存写入',
            'prices.c.per_call': '按次价格', 'prices.c.updated': '更新时间', 'prices.by_tokens': '按令牌计费',
            'prices.f.model': '模型', 'prices.f.model_ratio': '模型倍率', 'prices.f.completion_ratio': '补全倍率',
            'prices.f.cache_read_ratio': '缓存读取倍率', 'prices.f.cache_write_ratio': '缓存写入倍率',
            'prices.f.price_per_call_usd': '每次调用价格（美元）',
            'prices.h.model_ratio': '1 = 每百万输入令牌 2 美元。',
            'prices.h.completion_ratio': '乘以输出令牌数。',
            'prices.h.per_call': '留空：按令牌计费。设置后优先于倍率。',
            'prices.filter.q': '模型包含',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'prices';
        const write = canWrite(ctx);
        const columns = [
            { key: 'model', label: t('prices.c.model') },
            { key: 'model_ratio', label: t('prices.c.model_ratio'), align: 'right' },
            { key: 'completion_ratio', label: t('prices.c.completion_ratio'), align: 'right' },
            { key: 'cache_read_ratio', label: t('prices.c.cache_read_ratio'), align: 'right' },
            { key: 'cache_write_ratio', label: t('prices.c.cache_write_ratio'), align: 'right' },
            { key: 'price_per_call_usd', label: t('prices.c.per_call'), align: 'right',
                render: (p) => (p.price_per_call_usd === null ? t('prices.by_tokens') : `$${p.price_per_call_usd}`) },
            { key: 'updated_at', label: t('prices.c.updated'), render: (p) => when(p.updated_at) },
        ];
        if (write) {
            columns.push({ key: '_a', label: t('bui.actions'), render: (p) => h('span', { class: 'row-actions' },
                button(t('bui.edit'), 'edit', () => edit(p)),
                button(t('bui.delete'), 'delete', () => del(p), 'danger')) });
        }
        const list = listView({
            id: 'prices', columns,
            load: (query) => api('GET', '/api/billing/prices', { query }),
            filterFields: [{ name: 'q', label: t('prices.filter.q'), type: 'text' }],
            onRow: write ? (p) => edit(p) : undefined,
        });
        async function edit(p) {
            const ok = await formDialog({ title: p ? t('prices.edit', { model: p.model }) : t('prices.create'), id: 'price',
                fields: priceFields(p), onSubmit: (v) => api('PUT', '/api/billing/prices', { body: priceBody(v, p) }) });
            if (ok) { toast(t('bui.saved')); list.refresh(); }
        }
        async function del(p) {
            if (!(await confirmDialog(t('prices.delete_q', { model: p.model })))) return;
            try {
                await api('DELETE', '/api/billing/prices', { query: { model: p.model } });
                toast(t('bui.deleted'));
                list.refresh();
            } catch (err) { toast(err.message, 'error'); }
        }
        mount(root, pageHead(t('prices.title'), write ? button(t('prices.create'), 'create', () => edit(null), 'primary') : null),
                    write ? null : notice(t('bui.readonly')),
                    h('p', { class: 'hint' }, h('a', { href: '#/groups' }, t('prices.groups'))), list.el);
        await list.refresh();
    },
};
