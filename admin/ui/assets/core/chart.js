// SVG charts without a library: a line chart over time and horizontal bars.
// Colours come from CSS variables (.series-0 ...), so both themes apply.
import { h } from './dom.js';
import { lang } from './i18n.js';

const W = 560;
const PAD = { l: 70, r: 16, t: 12, b: 28 };

function niceMax(v) {
    if (v <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    const f = v / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function timeLabel(ms, span) {
    const d = new Date(ms);
    const loc = lang() === 'zh-CN' ? 'zh-CN' : 'en-US';
    return span > 2 * 86400000 ? d.toLocaleDateString(loc, { month: 'short', day: 'numeric' })
        : d.toLocaleTimeString(loc, { hour: '2-digit', minute: '2-digit' });
}

// series: [{name, points: [[t, v]]}]; yFormat(v) -> string; label: aria text;
// minMax: the least top of the y axis (when every value is 0 or small)
export function lineChart({ series, yFormat = String, height = 220, label = '', minMax = 1 }) {
    const all = series.flatMap((s) => s.points);
    const xs = all.map((p) => p[0]);
    const x0 = xs.length ? Math.min(...xs) : 0;
    const x1 = xs.length ? Math.max(...xs) : 1;
    const yMax = niceMax(Math.max(minMax, ...all.map((p) => p[1])));
    const iw = W - PAD.l - PAD.r;
    const ih = height - PAD.t - PAD.b;
    const sx = (x) => PAD.l + (x1 === x0 ? iw / 2 : ((x - x0) / (x1 - x0)) * iw);
    const sy = (y) => PAD.t + ih - (y / yMax) * ih;
    const summary = `${label} ${series.map((s) => `${s.name}: ${s.points.length}`).join(', ')}`.trim();
    const svg = h('svg:svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart', role: 'img',
        'aria-label': summary, preserveAspectRatio: 'none' }, h('svg:title', null, summary));
    for (let i = 0; i <= 4; i++) {
        const v = (yMax * i) / 4;
        const y = sy(v);
        svg.append(h('svg:line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'grid' }),
            h('svg:text', { x: PAD.l - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, yFormat(v)));
    }
    const ticks = Math.min(4, Math.max(1, xs.length ? new Set(xs).size - 1 : 1));
    for (let i = 0; i <= ticks; i++) {
        const x = x0 + ((x1 - x0) * i) / ticks;
        svg.append(h('svg:text', { x: sx(x), y: height - 8, class: 'axis',
            'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' }, timeLabel(x, x1 - x0)));
    }
    series.forEach((s, i) => {
        if (!s.points.length) return;
        const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
        svg.append(h('svg:path', { d, class: `line series-${i % 6}` }));
        if (s.points.length <= 60) {
            for (const p of s.points) {
                svg.append(h('svg:circle', { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, class: `dot series-${i % 6}` },
                    h('svg:title', null, `${s.name} ${timeLabel(p[0], 0)}: ${yFormat(p[1])}`)));
            }
        }
    });
    const legend = h('div', { class: 'legend', attrs: { 'aria-hidden': 'true' } },
        series.map((s, i) => h('span', { class: 'legend-item' }, h('span', { class: `swatch series-${i % 6}` }), s.name)));
    return h('figure', { class: 'chart-box' }, svg, series.length > 1 ? legend : null);
}

// rows: [{label, value}]; format(v) -> string
export function barChart({ rows, format = String, label = '' }) {
    const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
    const rowH = 22;
    const height = rows.length * rowH + 4;
    const summary = `${label} ${rows.map((r) => `${r.label}: ${format(r.value)}`).join(', ')}`.trim();
    const svg = h('svg:svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart bars', role: 'img',
        'aria-label': summary }, h('svg:title', null, summary));
    const lw = 170;
    rows.forEach((r, i) => {
        const y = i * rowH + 2;
        const w = Math.max(1, ((W - lw - 90) * r.value) / max);
        svg.append(
            h('svg:text', { x: lw - 8, y: y + 14, class: 'axis', 'text-anchor': 'end' },
                r.label.length > 24 ? `${r.label.slice(0, 23)}…` : r.label),
            h('svg:rect', { x: lw, y: y + 3, width: w, height: rowH - 8, rx: 3, class: 'bar series-0' }),
            h('svg:text', { x: lw + w + 6, y: y + 14, class: 'axis' }, format(r.value)));
    });
    return h('figure', { class: 'chart-box' }, svg);
}
