// Request logs: filters, pages, and one log's metadata (never secrets: the
// log holds no key, prompt or answer).
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { fmt, money, pageHeader, badge, modal, dl, toast } from '../core/ui.js';
import { listView } from '../core/list.js';

const en = {
    'nav.logs': 'Request logs',
    'logs.title': 'Request logs',
    'logs.f.from': 'From',
    'logs.f.to': 'To',
    'logs.f.model': 'Model',
    'logs.f.key_id': 'Key ID',
    'logs.f.user_id': 'User ID',
    'logs.f.channel_id': 'Channel ID',
    'logs.f.status': 'HTTP status',
    'logs.f.stream': 'Streamed',
    'logs.any': 'Any',
    'logs.yes': 'Yes',
    'logs.no': 'No',
    'logs.col.time': 'Time',
    'logs.col.model': 'Model',
    'logs.col.status': 'Status',
    'logs.col.key': 'Key',
    'logs.col.user': 'User',
    'logs.col.channel': 'Channel',
    'logs.col.tokens': 'Tokens in / out',
    'logs.col.cost': 'Cost',
    'logs.col.latency': 'Latency',
    'logs.col.stream': 'Stream',
    'logs.detail': 'Request {id}',
    'logs.close': 'Close',
    'logs.d.id': 'Request ID',
    'logs.d.created_at': 'Time',
    'logs.d.model': 'Model requested',
    'logs.d.upstream_model': 'Upstream model',
    'logs.d.status': 'HTTP status',
    'logs.d.key_id': 'Key ID',
    'logs.d.user_id': 'User ID',
    'logs.d.channel_id': 'Channel ID',
    'logs.d.attempts': 'Attempts',
    'logs.d.prompt_tokens': 'Prompt tokens',
    'logs.d.completion_tokens': 'Completion tokens',
    'logs.d.cached_tokens': 'Cached tokens',
    'logs.d.usage_estimated': 'Usage estimated',
    'logs.d.cost': 'Cost',
    'logs.d.latency_ms': 'Latency',
    'logs.d.ttfb_ms': 'Time to first byte',
    'logs.d.is_stream': 'Streamed',
    'logs.d.client_ip': 'Client IP',
    'logs.d.end_reason': 'End reason',
    'logs.d.error': 'Error',
    'logs.d.other': 'Other fields',
};
const zh = {
    'nav.logs': '请求日志',
    'logs.title': '请求日志',
    'logs.f.from': '开始',
    'logs.f.to': '结束',
    'logs.f.model': '模型',
    'logs.f.key_id': '密钥 ID',
    'logs.f.user_id': '用户 ID',
    'logs.f.channel_id': '渠道 ID',
    'logs.f.status': 'HTTP 状态码',
    'logs.f.stream': '流式',
    'logs.any': '任意',
    'logs.yes': '是',
    'logs.no': '否',
    'logs.col.time': '时间',
    'logs.col.model': '模型',
    'logs.col.status': '状态',
    'logs.col.key': '密钥',
    'logs.col.user': '用户',
    'logs.col.channel': '渠道',
    'logs.col.tokens': '输入 / 输出令牌',
    'logs.col.cost': '费用',
    'logs.col.latency': '延迟',
    'logs.col.stream': '流式',
    'logs.detail': '请求 {id}',
    'logs.close': '关闭',
    'logs.d.id': '请求 ID',
    'logs.d.created_at': '时间',
    'logs.d.model': '请求的模型',
    'logs.d.upstream_model': '上游模型',
    'logs.d.status': 'HTTP 状态码',
    'logs.d.key_id': '密钥 ID',
    'logs.d.user_id': '用户 ID',
    'logs.d.channel_id': '渠道 ID',
    'logs.d.attempts': '尝试次数',
    'logs.d.prompt_tokens': '输入令牌',
    'logs.d.completion_tokens': '输出令牌',
    'logs.d.cached_tokens': '缓存令牌',
    'logs.d.usage_estimated': '用量为估算',
    'logs.d.cost': '费用',
    'logs.d.latency_ms': '延迟',
    'logs.d.ttfb_ms': '首字节时间',
    'logs.d.is_stream': '流式',
    'logs.d.client_ip': '客户端 IP',
    'logs.d.end_reason': '结束原因',
    'logs.d.error': '错误',
    'logs.d.other': '其他字段',
};

// names of members never shown, should a server ever add them
const SECRET = /key$|secret|token$|password|authorization|cookie/i;

function statusBadge(s) {
    return badge(String(s), s >= 500 ? 'error' : s >= 400 ? 'warn' : 'ok');
}

function val(k, v) {
    if (v === null || v === undefined) return null;
    if (typeof v === 'boolean') return t(v ? 'logs.yes' : 'logs.no');
    if (k === 'created_at') return fmt.time(v);
    if (k === 'cost') return money(v);
    if (k === 'latency_ms' || k === 'ttfb_ms') return fmt.ms(v);
    if (k === 'status') return statusBadge(v);
    if (typeof v === 'object') return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
    return typeof v === 'number' ? fmt.num(v) : String(v);
}

async function openDetail(id) {
    let log;
    try { log = (await api('GET', `/api/logs/${encodeURIComponent(id)}`)).data; } catch (err) {
        toast(err.message, 'error');
        return;
    }
    const known = Object.keys(en).filter((k) => k.startsWith('logs.d.') && k !== 'logs.d.other').map((k) => k.slice(7));
    const pairs = known.filter((k) => k in log).map((k) => [t(`logs.d.${k}`), val(k, log[k])]);
    const rest = Object.keys(log).filter((k) => !known.includes(k) && !SECRET.test(k));
    if (rest.length) {
        const o = {};
        for (const k of rest) o[k] = log[k];
        pairs.push([t('logs.d.other'), h('pre', { class: 'json' }, JSON.stringify(o, null, 2))]);
    }
    modal({
        title: t('logs.detail', { id: log.id.slice(0, 13) }), wide: true,
        body: h('div', { dataset: { log: log.id } }, dl(pairs)),
        actions: [{ label: t('logs.close'), action: 'close-detail', onClick: (c) => c() }],
    });
}

export default {
    id: 'logs',
    nav: 'nav.logs',
    section: 'ops',
    roles: ['root', 'admin', 'operator'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        const any = { value: '', label: t('logs.any') };
        root.append(pageHeader(t('logs.title')), listView({
            ctx, page: 'logs', path: '/api/logs', id: 'logs', perPage: 50,
            filters: [
                { name: 'from', label: t('logs.f.from'), type: 'datetime' },
                { name: 'to', label: t('logs.f.to'), type: 'datetime' },
                { name: 'model', label: t('logs.f.model') },
                { name: 'key_id', label: t('logs.f.key_id'), type: 'number', min: 1, step: 1 },
                { name: 'user_id', label: t('logs.f.user_id'), type: 'number', min: 1, step: 1 },
                { name: 'channel_id', label: t('logs.f.channel_id'), type: 'number', min: 1, step: 1 },
                { name: 'status', label: t('logs.f.status'), type: 'number', min: 100, max: 599, step: 1 },
                { name: 'stream', label: t('logs.f.stream'), type: 'select',
                    options: [any, { value: '1', label: t('logs.yes') }, { value: '0', label: t('logs.no') }] },
            ],
            onRow: (l) => openDetail(l.id),
            columns: [
                { key: 'created_at', label: t('logs.col.time'), render: (l) => h('button', { type: 'button',
                    class: 'linkish', dataset: { action: 'detail', log: l.id }, on: { click: () => openDetail(l.id) } },
                fmt.time(l.created_at)) },
                { key: 'model', label: t('logs.col.model'), render: (l) => h('span', null, l.model,
                    l.upstream_model && l.upstream_model !== l.model ? h('div', { class: 'muted small' }, `→ ${l.upstream_model}`) : null) },
                { key: 'status', label: t('logs.col.status'), render: (l) => h('span', { title: l.error || null },
                    statusBadge(l.status)) },
                { key: 'key_id', label: t('logs.col.key'), align: 'right' },
                { key: 'user_id', label: t('logs.col.user'), align: 'right' },
                { key: 'channel_id', label: t('logs.col.channel'), align: 'right' },
                { key: 'tokens', label: t('logs.col.tokens'), align: 'right',
                    render: (l) => `${fmt.num(l.prompt_tokens)} / ${fmt.num(l.completion_tokens)}` },
                { key: 'cost', label: t('logs.col.cost'), align: 'right', render: (l) => money(l.cost) },
                { key: 'latency_ms', label: t('logs.col.latency'), align: 'right', render: (l) => fmt.ms(l.latency_ms) },
                { key: 'is_stream', label: t('logs.col.stream'), render: (l) => (l.is_stream ? t('logs.yes') : t('logs.no')) },
            ],
        }));
        if (ctx.query.id) openDetail(ctx.query.id);
    },
};
