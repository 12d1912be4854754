// Overview: totals, latency, charts over time and breakdowns for a time range.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api, ApiError } from '../core/api.js';
import { fmt, money, pageHeader, loading, errorBox, table, form, getQuotaPerUsd } from '../core/ui.js';
import { lineChart, barChart } from '../core/chart.js';

const RANGES = { '1h': 3600000, '24h': 86400000, '7d': 7 * 86400000, '30d': 30 * 86400000 };
const BY = ['model', 'channel', 'key', 'user'];

const en = {
    'nav.dashboard': 'Dashboard',
    'dash.title': 'Dashboard',
    'dash.range': 'Time range',
    'dash.range.1h': '1 hour',
    'dash.range.24h': '24 hours',
    'dash.range.7d': '7 days',
    'dash.range.30d': '30 days',
    'dash.range.custom': 'Custom',
    'dash.from': 'From',
    'dash.to': 'To',
    'dash.span': '{from} – {to}',
    'dash.badrange': '“From” must be before “To”.',
    'dash.requests': 'Requests',
    'dash.errors': 'Errors',
    'dash.tokens': 'Tokens',
    'dash.tokens.sub': '{p} in · {c} out',
    'dash.cost': 'Cost',
    'dash.success': 'Success rate',
    'dash.latency': 'Latency p50 / p95 / p99',
    'dash.ttft': 'Time to first token p50 / p95 / p99',
    'dash.na': 'Not available',
    'dash.na.summary': 'Latency, time to first token and the breakdowns need GET /api/stats/summary, which this server does not offer yet. The totals above come from GET /api/stats/usage.',
    'dash.chart.requests': 'Requests over time',
    'dash.chart.cost': 'Cost over time',
    'dash.breakdown': 'Breakdown',
    'dash.by': 'Group by',
    'dash.by.model': 'Model',
    'dash.by.channel': 'Channel',
    'dash.by.key': 'Key',
    'dash.by.user': 'User',
    'dash.top': 'Top 10 by requests',
    'dash.col.name': 'Name',
    'dash.col.requests': 'Requests',
    'dash.col.success': 'Success',
    'dash.col.tokens': 'Tokens in / out',
    'dash.col.cost': 'Cost',
    'dash.col.p50': 'p50',
    'dash.col.p95': 'p95',
    'dash.col.p99': 'p99',
    'dash.col.ttft': 'TTFT p50',
    'dash.empty': 'No requests in this range.',
    'dash.none': '(none)',
};
const zh = {
    'nav.dashboard': '仪表盘',
    'dash.title': '仪表盘',
    'dash.range': '时间范围',
    'dash.range.1h': '1 小时',
    'dash.range.24h': '24 小时',
    'dash.range.7d': '7 天',
    'dash.range.30d': '30 天',
    'dash.range.custom': '自定义',
    'dash.from': '开始',
    'dash.to': '结束',
    'dash.span': '{from} – {to}',
    'dash.badrange': '“开始”必须早于“结束”。',
    'dash.requests': '请求数',
    'dash.errors': '错误数',
    'dash.tokens': '令牌数',
    'dash.tokens.sub': '输入 {p} · 输出 {c}',
    'dash.cost': '费用',
    'dash.success': '成功率',
    'dash.latency': '延迟 p50 / p95 / p99',
    'dash.ttft': '首字延迟 p50 / p95 / p99',
    'dash.na': '不可用',
    'dash.na.summary': '延迟、首字延迟和分组统计需要 GET /api/stats/summary，此服务器尚未提供。上方的合计来自 GET /api/stats/usage。',
    'dash.chart.requests': '请求趋势',
    'dash.chart.cost': '费用趋势',
    'dash.breakdown': '分组统计',
    'dash.by': '分组方式',
    'dash.by.model': '模型',
    'dash.by.channel': '渠道',
    'dash.by.key': '密钥',
    'dash.by.user': '用户',
    'dash.top': '请求数前 10',
    'dash.col.name': '名称',
    'dash.col.requests': '请求数',
    'dash.col.success': '成功率',
    'dash.col.tokens': '输入 / 输出令牌',
    'dash.col.cost': '费用',
    'dash.col.p50': 'p50',
    'dash.col.p95': 'p95',
    'dash.col.p99': 'p99',
    'dash.col.ttft': '首字 p50',
    'dash.empty': '此时间范围内没有请求。',
    'dash.none': '（无）',
};

function span(query) {
    const now = Date.now();
    if (query.range === 'custom' && query.from && query.to) {
        return { range: 'custom', from: Number(query.from), to: Number(query.to) };
    }
    const range = RANGES[query.range] ? query.range : '24h';
    return { range, from: now - RANGES[range], to: now };
}

function tzOffset() {
    const m = -new Date().getTimezoneOffset();
    return Math.max(-720, Math.min(840, Math.round(m / 15) * 15));
}

function stat(label, value, sub, testid, multi = false) {
    return h('div', { class: 'stat', dataset: { stat: testid } },
        h('div', { class: 'stat-label' }, label),
        h('div', { class: ['stat-value', value === t('dash.na') ? 'stat-na' : null, multi ? 'stat-multi' : null] }, value),
        sub ? h('div', { class: 'stat-sub' }, sub) : null);
}

function pcts(o) {
    if (!o) return t('dash.na');
    return `${fmt.ms(o.p50)} / ${fmt.ms(o.p95)} / ${fmt.ms(o.p99)}`;
}

// a breakdown row's name: GET /api/stats/summary puts the group's key in the
// row itself (model; channel_id + channel_name; key_id + key_name; user_id +
// username); a deleted one keeps its id with a null name
const KEY_FIELDS = { model: ['model', null], channel: ['channel_name', 'channel_id'],
    key: ['key_name', 'key_id'], user: ['username', 'user_id'] };
function keyName(row, by) {
    const [nf, idf] = KEY_FIELDS[by] || [null, null];
    const name = nf ? row[nf] : null;
    const id = idf ? row[idf] : null;
    if (name !== undefined && name !== null && name !== '') return id !== undefined && id !== null ? `${name} (#${id})` : String(name);
    if (id !== undefined && id !== null) return `#${id}`;
    return t('dash.none');
}

export default {
    id: 'dashboard',
    nav: 'nav.dashboard',
    section: 'overview',
    roles: ['root', 'admin', 'operator'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        const sp = span(ctx.query);
        const by = BY.includes(ctx.query.by) ? ctx.query.by : 'model';
        const setQuery = (q) => ctx.go('dashboard', { range: sp.range, by, ...(sp.range === 'custom'
            ? { from: sp.from, to: sp.to } : {}), ...q });

        const seg = h('div', { class: 'seg', attrs: { role: 'group', 'aria-label': t('dash.range') } },
            [...Object.keys(RANGES), 'custom'].map((r) => h('button', { type: 'button', dataset: { range: r },
                attrs: { 'aria-pressed': String(sp.range === r) },
                on: { click: () => (r === 'custom' ? (custom.hidden = !custom.hidden)
                    : setQuery({ range: r, from: null, to: null })) } }, t(`dash.range.${r}`))));
        const custom = form({
            id: 'range', inline: true, action: 'apply', submitLabel: t('ui.apply'),
            fields: [
                { name: 'from', label: t('dash.from'), type: 'datetime', value: sp.from, required: true },
                { name: 'to', label: t('dash.to'), type: 'datetime', value: sp.to, required: true },
            ],
            onSubmit: async (v) => {
                if (!(v.from < v.to)) throw { param: 'from', message: t('dash.badrange') };
                setQuery({ range: 'custom', from: v.from, to: v.to });
            },
        });
        custom.hidden = sp.range !== 'custom';
        custom.classList.add('filters');

        root.append(pageHeader(t('dash.title'), seg), custom,
            h('p', { class: 'muted' }, t('dash.span', { from: fmt.time(sp.from), to: fmt.time(sp.to) })));
        const body = h('div', { class: 'stack' }, loading());
        root.append(body);

        const span7 = sp.to - sp.from;
        const q = { from: Math.floor(sp.from), to: Math.floor(sp.to), tz_offset: tzOffset(),
            bucket: span7 > 7 * 86400000 ? 'day' : 'hour' };
        const usageP = api('GET', '/api/stats/usage', { query: q });
        const summary = async (b) => {
            try {
                return (await api('GET', '/api/stats/summary', { query: { from: q.from, to: q.to, by: b,
                    ...(b === 'none' ? {} : { limit: 50 }) } })).data;
            } catch (err) {
                if (err instanceof ApiError && err.status === 404) return null;
                throw err;
            }
        };
        let usage;
        let total;
        try {
            [usage, total] = await Promise.all([usageP.then((r) => r.data), summary('none')]);
        } catch (err) {
            clear(body).append(errorBox(err));
            return;
        }
        clear(body);
        const u = usage.total;
        const st = total ? total.total : null;
        const reqs = st ? st.requests : u.requests;
        const errs = st ? st.errors : u.errors;
        const rate = st ? st.success_rate : (u.requests ? (u.requests - u.errors) / u.requests : null);
        const pt = st ? st.prompt_tokens : u.prompt_tokens;
        const ct = st ? st.completion_tokens : u.completion_tokens;
        body.append(h('div', { class: 'stats' },
            stat(t('dash.requests'), fmt.num(reqs), `${t('dash.errors')}: ${fmt.num(errs)}`, 'requests'),
            stat(t('dash.tokens'), fmt.num(pt + ct), t('dash.tokens.sub', { p: fmt.num(pt), c: fmt.num(ct) }), 'tokens'),
            stat(t('dash.cost'), money(st ? st.cost : u.cost), null, 'cost'),
            stat(t('dash.success'), fmt.pct(rate), null, 'success'),
            stat(t('dash.latency'), st ? pcts(st.latency_ms) : t('dash.na'), null, 'latency', true),
            stat(t('dash.ttft'), st ? pcts(st.ttft_ms) : t('dash.na'), null, 'ttft', true)));

        const pts = (f) => usage.buckets.map((b) => [b.t, f(b)]);
        body.append(h('div', { class: 'grid' },
            h('div', { class: 'card' }, h('h2', null, t('dash.chart.requests')),
                lineChart({ label: t('dash.chart.requests'), yFormat: (v) => fmt.num(v), series: [
                    { name: t('dash.requests'), points: pts((b) => b.requests) },
                    { name: t('dash.errors'), points: pts((b) => b.errors) }] })),
            h('div', { class: 'card' }, h('h2', null, t('dash.chart.cost')),
                lineChart({ label: t('dash.chart.cost'), yFormat: (v) => fmt.usd(v), minMax: getQuotaPerUsd() / 100,
                    series: [{ name: t('dash.cost'), points: pts((b) => b.cost) }] }))));

        const card = h('div', { class: 'card', dataset: { breakdown: by } });
        body.append(card);
        if (!total) {
            card.append(h('h2', null, t('dash.breakdown')),
                h('p', { class: 'note', dataset: { na: 'summary' } }, t('dash.na.summary')));
            return;
        }
        const tabs = h('div', { class: 'seg', attrs: { role: 'group', 'aria-label': t('dash.by') } },
            BY.map((b) => h('button', { type: 'button', dataset: { by: b }, attrs: { 'aria-pressed': String(b === by) },
                on: { click: () => setQuery({ by: b }) } }, t(`dash.by.${b}`))));
        card.append(h('h2', null, t('dash.breakdown'), tabs));
        const inner = h('div', null, loading());
        card.append(inner);
        let rows;
        try {
            rows = ((await summary(by)) || { rows: [] }).rows || [];
        } catch (err) {
            clear(inner).append(errorBox(err));
            return;
        }
        clear(inner);
        if (!rows.length) { inner.append(h('p', { class: 'muted' }, t('dash.empty'))); return; }
        const top = [...rows].sort((a, b) => b.requests - a.requests).slice(0, 10);
        inner.append(h('h3', null, t('dash.top')),
            barChart({ label: t('dash.top'), format: (v) => fmt.num(v),
                rows: top.map((r) => ({ label: keyName(r, by), value: r.requests })) }),
            table({
                id: `breakdown-${by}`,
                rows,
                columns: [
                    { key: 'name', label: t(`dash.by.${by}`), render: (r) => keyName(r, by) },
                    { key: 'requests', label: t('dash.col.requests'), align: 'right', render: (r) => fmt.num(r.requests) },
                    { key: 'success', label: t('dash.col.success'), align: 'right', render: (r) => fmt.pct(r.success_rate) },
                    { key: 'tokens', label: t('dash.col.tokens'), align: 'right',
                        render: (r) => `${fmt.num(r.prompt_tokens)} / ${fmt.num(r.completion_tokens)}` },
                    { key: 'cost', label: t('dash.col.cost'), align: 'right', render: (r) => money(r.cost) },
                    { key: 'p50', label: t('dash.col.p50'), align: 'right', render: (r) => fmt.ms(r.latency_ms?.p50) },
                    { key: 'p95', label: t('dash.col.p95'), align: 'right', render: (r) => fmt.ms(r.latency_ms?.p95) },
                    { key: 'p99', label: t('dash.col.p99'), align: 'right', render: (r) => fmt.ms(r.latency_ms?.p99) },
                    { key: 'ttft', label: t('dash.col.ttft'), align: 'right', render: (r) => fmt.ms(r.ttft_ms?.p50) },
                ],
            }));
    },
};
