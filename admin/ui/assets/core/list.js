// A list page's body: filters, a table and a pager, their state in the URL
// query (#/<page>?status=x&page=2), so that back/forward and links work.
import { h, clear } from './dom.js';
import { api } from './api.js';
import { filters as filterForm, table, pager, loading, errorBox } from './ui.js';

// opts: {page: route id, ctx, path, params: extra query, filters: [field],
//        columns, id: data-table id, onRow, empty, perPage, map(rows)}
export function listView(opts) {
    const { ctx, page: pageId, path, columns, id, onRow, empty, perPage = 20 } = opts;
    const q = ctx.query || {};
    const values = {};
    for (const f of opts.filters || []) {
        const v = q[f.name];
        if (v === undefined) continue;
        values[f.name] = f.type === 'datetime' ? Number(v) : f.type === 'checkbox' ? v === 'true' : v;
    }
    const page = Math.max(1, parseInt(q.page, 10) || 1);
    const el = h('div', { class: 'list' });
    if (opts.filters && opts.filters.length) {
        el.append(filterForm({
            id: `${id}-filters`, fields: opts.filters, values,
            onApply: (v) => ctx.go(pageId, { ...v, page: null }),
        }));
    }
    const body = h('div', { class: 'list-body' });
    el.append(body);
    const reload = async () => {
        clear(body).append(loading());
        const query = { page, per_page: perPage, ...(opts.params || {}) };
        for (const f of opts.filters || []) {
            let v = values[f.name];
            if (v === undefined || v === '') continue;
            if (f.type === 'datetime') v = Number(v);
            query[f.name] = f.toQuery ? f.toQuery(v) : v;
        }
        try {
            const r = await api('GET', path, { query });
            const rows = opts.map ? opts.map(r.data) : r.data;
            clear(body).append(table({ id, columns, rows, onRow, empty }));
            if (r.total > perPage || page > 1) {
                body.append(pager({ page: r.page || page, perPage: r.per_page || perPage, total: r.total,
                    onPage: (p) => ctx.go(pageId, { ...values, page: p }) }));
            }
        } catch (err) {
            clear(body).append(errorBox(err));
        }
    };
    reload();
    el.reload = reload;
    return el;
}
