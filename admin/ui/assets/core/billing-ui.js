// Helpers shared by the billing, voucher, governance and self-service pages
// (helper U2): list views with filters and a pager, form dialogs, money cells,
// value coercion. Built only on the contract's core modules.
import { h, clear } from './dom.js';
import { t, addStrings } from './i18n.js';
import { table, form, modal, pager, filters, loading, errorBox, fmt, badge } from './ui.js';
import * as core from './ui.js';

addStrings('en', {
    'bui.empty': 'Nothing here yet.',
    'bui.none': '—',
    'bui.units': '{n} quota units',
    'bui.yes': 'yes',
    'bui.no': 'no',
    'bui.readonly': 'Read-only: your role may look but not change anything here.',
    'bui.unavailable': 'Not available on this server yet.',
    'bui.no_user': 'This page needs a signed-in user account (the admin token has no account).',
    'bui.cancel': 'Cancel',
    'bui.close': 'Close',
    'bui.refresh': 'Refresh',
    'bui.actions': 'Actions',
    'bui.saved': 'Saved.',
    'bui.deleted': 'Deleted.',
    'bui.bad_json': 'Not valid JSON: {msg}',
    'bui.any': 'any',
    'bui.edit': 'Edit',
    'bui.delete': 'Delete',
    'bui.detail': 'Details',
});
addStrings('zh-CN', {
    'bui.empty': '暂无数据。',
    'bui.none': '—',
    'bui.units': '{n} 额度单位',
    'bui.yes': '是',
    'bui.no': '否',
    'bui.readonly': '只读：你的角色只能查看，不能修改。',
    'bui.unavailable': '此服务器尚未提供该功能。',
    'bui.no_user': '此页面需要已登录的用户账号（管理令牌没有账号）。',
    'bui.cancel': '取消',
    'bui.close': '关闭',
    'bui.refresh': '刷新',
    'bui.actions': '操作',
    'bui.saved': '已保存。',
    'bui.deleted': '已删除。',
    'bui.bad_json': 'JSON 无效：{msg}',
    'bui.any': '任意',
    'bui.edit': '编辑',
    'bui.delete': '删除',
    'bui.detail': '详情',
});

// t(key), or the fallback when no language has the key (values from the server).
export function tr(key, fallback) {
    const s = t(key);
    return s === key ? fallback : s;
}

export function canWrite(ctx) {
    return ctx.role === 'root' || ctx.role === 'admin';
}

// A quota amount as USD, the raw units on hover.
export function money(units) {
    if (units === null || units === undefined) return t('bui.none');
    return h('span', { class: 'money', attrs: { title: t('bui.units', { n: fmt.num(units) }) } },
                      fmt.usd(units));
}

export function when(ms) {
    return ms ? fmt.time(ms) : t('bui.none');
}

export function yesNo(b) {
    return b ? t('bui.yes') : t('bui.no');
}

export function statusBadge(s) {
    const ok = ['active', 'enabled', 'paid', 'credited', 'allow'];
    const bad = ['disabled', 'failed', 'cancelled', 'expired', 'block', 'archived'];
    return badge(s, ok.includes(s) ? 'ok' : bad.includes(s) ? 'error' : 'info');
}

// Coercions for form values (the form may give strings or typed values).
export function toInt(v) {
    if (v === null || v === undefined || v === '') return undefined;
    const n = typeof v === 'number' ? v : Number(String(v).trim());
    return Number.isFinite(n) ? Math.trunc(n) : v;
}
export function toMs(v) {
    if (v === null || v === undefined || v === '') return undefined;
    if (typeof v === 'number') return v;
    if (v instanceof Date) return v.getTime();
    if (/^\d+$/.test(String(v))) return Number(v);
    const ms = Date.parse(v);
    return Number.isFinite(ms) ? ms : undefined;
}
export function toList(v) {
    if (v === null || v === undefined || v === '') return [];
    if (Array.isArray(v)) return v.map((x) => String(x).trim()).filter(Boolean);
    return String(v).split(/[,\n]/).map((x) => x.trim()).filter(Boolean);
}
export function toBool(v) {
    return v === true || v === 'true' || v === 'on' || v === '1' || v === 1;
}
// USD typed by a person -> quota units (500000 units = 1 USD unless fmt knows better)
export function usdToUnits(v) {
    const n = Number(String(v).trim());
    if (!Number.isFinite(n)) return v;
    const per = typeof core.getQuotaPerUsd === 'function' ? core.getQuotaPerUsd() : 500000;
    return Math.round(n * per);
}
// datetime-local value of ms (local time), for form defaults
export function msToLocal(ms) {
    if (!ms) return '';
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// Drop empty values (the API refuses unknown or empty-but-wrong parameters).
export function clean(obj) {
    const out = {};
    for (const [k, v] of Object.entries(obj || {})) {
        if (v === undefined || v === null || v === '' || (Array.isArray(v) && !v.length)) continue;
        out[k] = v;
    }
    return out;
}

// table() with the data-table hook (also set when the core's table() does not).
export function dataTable(id, opts) {
    const el = table({ id, ...opts });
    const x = el.matches && el.matches('table') ? el : el.querySelector && el.querySelector('table');
    if (x) x.setAttribute('data-table', id);
    else if (el.setAttribute) el.setAttribute('data-table', id);
    return el;
}

// form() with the data-form hook and data-action on its submit button.
export function dataForm(id, opts, action = 'save') {
    const f = form({ id, action, ...opts });
    const x = f.matches && f.matches('form') ? f : f.querySelector('form');
    if (x) x.setAttribute('data-form', id);
    const b = f.querySelector && f.querySelector('button[type="submit"]');
    if (b) b.setAttribute('data-action', action);
    return f;
}

// A form in a dialog; closes it when onSubmit resolves. Resolves to what
// onSubmit returned (true when undefined), or null when the dialog was closed.
export function formDialog({ title, id, fields, submitLabel, onSubmit, action = 'save', before, wide = true, after }) {
    return new Promise((resolve) => {
        let dlg = null;
        let done = false;
        const f = dataForm(id, {
            fields, submitLabel,
            onSubmit: async (values) => {
                const r = await onSubmit(values);
                done = true;
                resolve(r === undefined || r === null ? true : r);
                if (dlg) dlg.close();
            },
        }, action);
        dlg = modal({ title, body: h('div', {}, before || null, f), actions: [], wide,
                                    onClose: () => { if (!done) resolve(null); } });
        if (after) after(f);
    });
}

// Show the fields named in show[value of the select `name`] only for that
// value (the others of any list hidden), following the select as it changes.
export function dependentFields(formEl, name, show) {
    const sel = formEl.querySelector(`[name="${name}"]`);
    if (!sel) return;
    const all = [...new Set(Object.values(show).flat())];
    const sync = () => {
        const want = show[sel.value] || [];
        for (const n of all) {
            const el = formEl.querySelector(`[name="${n}"]`);
            const box = el && (el.closest('.field') || el);
            if (box) box.style.display = want.includes(n) ? '' : 'none';
        }
    };
    sel.addEventListener('change', sync);
    sync();
}

// Simple key/value listing.
export function kv(rows) {
    return h('dl', { class: 'dl' }, rows.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? t('bui.none') : v)]));
}

// Append the nodes that are not null/false.
export function mount(root, ...nodes) {
    for (const n of nodes.flat()) if (n !== null && n !== undefined && n !== false) root.append(n);
}

export function pageHead(title, ...actions) {
    return h('div', { class: 'page-head' }, h('h1', {}, title),
                      h('div', { class: 'page-actions' }, actions.filter(Boolean)));
}

export function button(label, action, onClick, kind) {
    return h('button', { type: 'button', class: kind ? `btn btn-${kind}` : 'btn', dataset: { action }, on: { click: onClick } }, label);
}

export function notice(text, kind = 'info') {
    return h('p', { class: kind === 'info' ? 'note' : `note note-${kind}`, attrs: { role: kind === 'error' ? 'alert' : 'status' } }, text);
}

export function isStatus(err, status, code) {
    return err && err.status === status && (!code || err.code === code);
}

// An error box, or a clear "not available" state for routes that 404 / no_user.
export function errorView(err) {
    if (isStatus(err, 404)) return notice(t('bui.unavailable'), 'info');
    if (isStatus(err, 400, 'no_user')) return notice(t('bui.no_user'), 'info');
    return errorBox(err);
}

// A paged list with optional filters. load(query) -> {data, total, page, per_page}.
// Returns {el, refresh, state}.
export function listView({ id, columns, load, filterFields, initial = {}, perPage = 20, onRow, empty, paged = true }) {
    const state = { page: 1, filters: { ...initial } };
    const body = h('div', { class: 'list-body' });
    const el = h('section', { class: 'list' });
    if (filterFields && filterFields.length) {
        el.append(filters({ fields: filterFields, values: state.filters,
                                                onApply: (v) => { state.filters = v || {}; state.page = 1; refresh(); } }));
    }
    el.append(body);
    async function refresh() {
        clear(body);
        body.append(loading());
        try {
            const q = clean(state.filters);
            if (paged) { q.page = state.page; q.per_page = perPage; }
            const r = await load(q);
            const rows = (r && r.data) || [];
            clear(body);
            body.append(dataTable(id, { columns, rows, empty: empty || t('bui.empty'), onRow }));
            const total = r && typeof r.total === 'number' ? r.total : rows.length;
            if (paged && total > perPage) {
                body.append(pager({ page: state.page, perPage, total,
                                                        onPage: (p) => { state.page = p; refresh(); } }));
            }
            return r;
        } catch (err) {
            clear(body);
            body.append(errorView(err));
            return null;
        }
    }
    return { el, refresh, state };
}

// JSON text of a value, for textareas.
export function jsonText(v) {
    return v === null || v === undefined ? '' : JSON.stringify(v, null, 2);
}
export function parseJson(text, param) {
    if (text === undefined || text === null || String(text).trim() === '') return undefined;
    try {
        return JSON.parse(text);
    } catch (e) {
        const err = new Error(t('bui.bad_json', { msg: e.message }));
        err.param = param;
        throw err;
    }
}
