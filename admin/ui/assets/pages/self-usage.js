// My usage: totals, requests and cost over time (/api/self/stats/usage,
// /api/self/stats/summary) and my request log (/api/self/logs), the shapes of
// /api/stats/usage and /api/logs. A route the server lacks shows "not available".
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { fmt, loading, modal } from '../core/ui.js';
import { lineChart } from '../core/chart.js';
import { money, when, listView, pageHead, mount, errorView, kv, yesNo } from '../core/billing-ui.js';

const RANGES = { '24h': ['hour', 86400000], '7d': ['hour', 7 * 86400000], '30d': ['day', 30 * 86400000] };

export default {
    id: 'self-usage',
    nav: 'nav.self-usage',
    section: 'self',
    roles: ['user', 'operator', 'admin', 'root'],
    strings: {
        en: {
            'nav.self-usage': 'My usage',
            'suse.title': 'My usage',
            'suse.range': 'Time range',
            'suse.range.24h': 'Last 24 hours', 'suse.range.7d': 'Last 7 days', 'suse.range.30d': 'Last 30 days',
            'suse.requests': 'Requests', 'suse.tokens': 'Tokens', 'suse.cost': 'Cost', 'suse.errors': 'Errors',
            'suse.chart_requests': 'Requests over time', 'suse.chart_cost': 'Cost over time',
            'suse.logs': 'My requests',
            'suse.c.when': 'Time', 'suse.c.model': 'Model', 'suse.c.status': 'Status', 'suse.c.tokens': 'Tokens (in / out)',
            'suse.c.cost': 'Cost', 'suse.c.latency': 'Latency', 'suse.c.stream': 'Stream', 'suse.c.key': 'Key',
            'suse.c.error': 'Error', 'suse.c.end': 'End', 'suse.c.ttfb': 'First byte',
            'suse.log': 'Request {id}',
            'suse.f.model': 'Model', 'suse.f.status': 'HTTP status',
        },
        'zh-CN': {
            'nav.self-usage': '我的用量',
            'suse.title': '我的用量',
            'suse.range': '时间范围',
            'suse.range.24h': '最近 24 小时', 'suse.range.7d': '最近 7 天', 'suse.range.30d': '最近 30 天',
            'suse.requests': '请求数', 'suse.tokens': '令牌数', 'suse.cost': '费用', 'suse.errors': '错误数',
            'suse.chart_requests': '请求数趋势', 'suse.chart_cost': '费用趋势',
            'suse.logs': '我的请求',
            'suse.c.when': '时间', 'suse.c.model': '模型', 'suse.c.status': '状态', 'suse.c.tokens': '令牌（输入 / 输出）',
            'suse.c.cost': '费用', 'suse.c.latency': '延迟', 'suse.c.stream': '流式', 'suse.c.key': '密钥',
            'suse.c.error': '错误', 'suse.c.end': '结束原因', 'suse.c.ttfb': '首字节',
            'suse.log': '请求 {id}',
            'suse.f.model': '模型', 'suse.f.status': 'HTTP 状态码',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'self-usage';
        const q = ctx.query || {};
        const range = RANGES[q.range] ? q.range : '24h';
        const sel = h('select', { id: 'self-usage-range', name: 'range', on: { change: (e) => ctx.go('self-usage', { range: e.target.value }) } },
            Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === range }, t(`suse.range.${r}`))));
        const stats = h('div', { class: 'stats', dataset: { self: 'summary' } }, loading());
        const charts = h('div', { class: 'grid' });
        mount(root, pageHead(t('suse.title'), h('div', { class: 'field' }, h('label', { for: 'self-usage-range' }, t('suse.range')), sel)),
                    stats, charts);
        const [bucket, span] = RANGES[range];
        const to = Date.now();
        const from = to - span;
        const tz = -new Date().getTimezoneOffset();
        const tzOk = tz % 15 === 0 && tz >= -720 && tz <= 840;
        let usage = null;
        try {
            usage = (await api('GET', '/api/self/stats/usage', { query: { bucket, from, to, ...(tzOk ? { tz_offset: tz } : {}) } })).data;
        } catch (err) {
            clear(stats);
            stats.append(errorView(err));
        }
        let summary = null;
        try {
            summary = (await api('GET', '/api/self/stats/summary', { query: { from, to } })).data;
        } catch { /* the usage totals stand in */ }
        const tot = Object.assign({}, usage && usage.total, summary && (summary.total || summary));
        if (usage || summary) {
            clear(stats);
            const stat = (label, value, key) => h('div', { class: 'stat card', dataset: { stat: key } },
                h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value));
            stats.append(stat(t('suse.requests'), fmt.num(tot.requests || 0), 'requests'),
                stat(t('suse.tokens'), fmt.num((tot.prompt_tokens || 0) + (tot.completion_tokens || 0)), 'tokens'),
                stat(t('suse.cost'), money(tot.cost || 0), 'cost'),
                stat(t('suse.errors'), fmt.num(tot.errors || 0), 'errors'));
        }
        if (usage && usage.buckets) {
            const pts = (k) => usage.buckets.map((b) => [b.t, b[k] || 0]);
            charts.append(
                h('section', { class: 'card chart-box' }, h('h2', {}, t('suse.chart_requests')),
                    lineChart({ series: [{ name: t('suse.requests'), points: pts('requests') }], yFormat: fmt.num, label: t('suse.chart_requests') })),
                h('section', { class: 'card chart-box' }, h('h2', {}, t('suse.chart_cost')),
                    lineChart({ series: [{ name: t('suse.cost'), points: pts('cost') }], yFormat: fmt.usd, label: t('suse.chart_cost') })));
        }
        const list = listView({
            id: 'self-logs',
            columns: [
                { key: 'created_at', label: t('suse.c.when'), render: (l) => when(l.created_at) },
                { key: 'model', label: t('suse.c.model') },
                { key: 'status', label: t('suse.c.status'), align: 'right' },
                { key: 'tokens', label: t('suse.c.tokens'), align: 'right', render: (l) => `${fmt.num(l.prompt_tokens)} / ${fmt.num(l.completion_tokens)}` },
                { key: 'cost', label: t('suse.c.cost'), align: 'right', render: (l) => money(l.cost) },
                { key: 'latency_ms', label: t('suse.c.latency'), align: 'right', render: (l) => fmt.ms(l.latency_ms) },
                { key: 'is_stream', label: t('suse.c.stream'), render: (l) => yesNo(l.is_stream) },
            ],
            load: (query) => api('GET', '/api/self/logs', { query }),
            filterFields: [
                { name: 'model', label: t('suse.f.model'), type: 'text' },
                { name: 'status', label: t('suse.f.status'), type: 'number' },
            ],
            onRow: (l) => modal({ title: t('suse.log', { id: l.id }), wide: true, actions: [], body: kv([
                [t('suse.c.when'), when(l.created_at)],
                [t('suse.c.model'), l.upstream_model && l.upstream_model !== l.model ? `${l.model} → ${l.upstream_model}` : l.model],
                [t('suse.c.key'), l.key_id ? `#${l.key_id}` : null],
                [t('suse.c.status'), String(l.status)],
                [t('suse.c.tokens'), `${fmt.num(l.prompt_tokens)} / ${fmt.num(l.completion_tokens)}`],
                [t('suse.c.cost'), money(l.cost)],
                [t('suse.c.latency'), fmt.ms(l.latency_ms)],
                [t('suse.c.ttfb'), fmt.ms(l.ttfb_ms)],
                [t('suse.c.stream'), yesNo(l.is_stream)],
                [t('suse.c.end'), l.end_reason],
                [t('suse.c.error'), l.error],
            ]) }),
        });
        mount(root, h('h2', {}, t('suse.logs')), list.el);
        await list.refresh();
    },
};
