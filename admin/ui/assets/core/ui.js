// Shared widgets: tables, forms, dialogs, toasts, pager, badges, secrets,
// filters, loading and error boxes, number formats. Every string through t().
import { h, clear, uid } from './dom.js';
import { t, addStrings, lang } from './i18n.js';
import { ApiError } from './api.js';

addStrings('en', {
    'ui.loading': 'Loading…',
    'ui.empty': 'Nothing here yet.',
    'ui.save': 'Save',
    'ui.cancel': 'Cancel',
    'ui.close': 'Close',
    'ui.ok': 'OK',
    'ui.confirm': 'Confirm',
    'ui.confirm.title': 'Please confirm',
    'ui.apply': 'Apply',
    'ui.reset': 'Reset',
    'ui.copy': 'Copy',
    'ui.copied': 'Copied',
    'ui.copy.failed': 'Copy failed: select the text and copy it by hand.',
    'ui.secret.warning': 'This is shown only once. Copy it now and keep it somewhere safe: it cannot be shown again.',
    'ui.pager.prev': 'Previous',
    'ui.pager.next': 'Next',
    'ui.pager.info': 'Page {page} of {pages} · {total} in all',
    'ui.pager.label': 'Pages',
    'ui.error.title': 'Something went wrong',
    'ui.error.status': 'HTTP {status}',
    'ui.error.network': 'The server could not be reached.',
    'ui.required': 'Required',
    'ui.tags.help': 'Separate entries with commas or new lines.',
    'ui.any': 'Any',
    'ui.yes': 'Yes',
    'ui.no': 'No',
    'ui.never': 'Never',
    'ui.none': '—',
    'ui.units': '{n} quota units',
    'ui.notify': 'Notifications',
});
addStrings('zh-CN', {
    'ui.loading': '加载中…',
    'ui.empty': '暂无数据。',
    'ui.save': '保存',
    'ui.cancel': '取消',
    'ui.close': '关闭',
    'ui.ok': '确定',
    'ui.confirm': '确认',
    'ui.confirm.title': '请确认',
    'ui.apply': '应用',
    'ui.reset': '重置',
    'ui.copy': '复制',
    'ui.copied': '已复制',
    'ui.copy.failed': '复制失败：请选中文本后手动复制。',
    'ui.secret.warning': '此内容只显示一次。请立即复制并妥善保存：之后无法再次查看。',
    'ui.pager.prev': '上一页',
    'ui.pager.next': '下一页',
    'ui.pager.info': '第 {page} / {pages} 页 · 共 {total} 条',
    'ui.pager.label': '分页',
    'ui.error.title': '出错了',
    'ui.error.status': 'HTTP {status}',
    'ui.error.network': '无法连接服务器。',
    'ui.required': '必填',
    'ui.tags.help': '多个条目用逗号或换行分隔。',
    'ui.any': '任意',
    'ui.yes': '是',
    'ui.no': '否',
    'ui.never': '永不',
    'ui.none': '—',
    'ui.units': '{n} 额度单位',
    'ui.notify': '通知',
});

// ---------------------------------------------------------------- formats
let quotaPerUsd = 500000;
export function setQuotaPerUsd(n) { if (Number.isFinite(n) && n > 0) quotaPerUsd = n; }
export function getQuotaPerUsd() { return quotaPerUsd; }

const locale = () => (lang() === 'zh-CN' ? 'zh-CN' : 'en-US');
const num = (n, o) => (n === null || n === undefined || Number.isNaN(n) ? t('ui.none')
    : new Intl.NumberFormat(locale(), o).format(n));

export const fmt = {
    num: (n) => num(n),
    quota: (units) => num(units),
    usd(units) {
        if (units === null || units === undefined) return t('ui.none');
        const v = units / quotaPerUsd;
        const a = Math.abs(v);
        const digits = a === 0 ? 2 : a < 0.01 ? 6 : a < 1 ? 4 : 2;
        return num(v, { style: 'currency', currency: 'USD', minimumFractionDigits: 2,
            maximumFractionDigits: digits });
    },
    ms(n) {
        if (n === null || n === undefined) return t('ui.none');
        return n >= 10000 ? `${num(n / 1000, { maximumFractionDigits: 1 })} s` : `${num(Math.round(n))} ms`;
    },
    time: (ms) => (ms ? new Date(ms).toLocaleString(locale(), { dateStyle: 'medium', timeStyle: 'medium' })
        : t('ui.none')),
    date: (ms) => (ms ? new Date(ms).toLocaleDateString(locale(), { dateStyle: 'medium' }) : t('ui.none')),
    pct: (x) => (x === null || x === undefined ? t('ui.none')
        : num(x, { style: 'percent', maximumFractionDigits: 1 })),
};

// money in USD, the quota units on hover (and for screen readers)
export function money(units) {
    return h('span', { class: 'money', title: t('ui.units', { n: fmt.quota(units) }) }, fmt.usd(units));
}

// ---------------------------------------------------------------- small pieces
export function badge(text, kind = 'muted') {
    return h('span', { class: ['badge', `badge-${kind}`] }, text);
}

export function loading() {
    return h('div', { class: 'loading', attrs: { role: 'status', 'aria-live': 'polite' } },
        h('span', { class: 'spinner', attrs: { 'aria-hidden': 'true' } }), t('ui.loading'));
}

export function errorMessage(err) {
    if (err instanceof ApiError) {
        if (err.status === 0) return t('ui.error.network');
        return err.message || t('ui.error.status', { status: err.status });
    }
    return (err && err.message) || String(err);
}

export function errorBox(err) {
    const code = err instanceof ApiError && err.code ? ` (${err.code})` : '';
    return h('div', { class: 'error-box', attrs: { role: 'alert' } },
        h('strong', null, t('ui.error.title')), h('p', null, errorMessage(err) + code));
}

let toastHost = null;
export function toast(message, kind = 'ok') {
    if (!toastHost || !toastHost.isConnected) {
        toastHost = h('div', { class: 'toasts', attrs: { 'aria-live': 'polite', role: 'status',
            'aria-label': t('ui.notify') } });
        document.body.appendChild(toastHost);
    }
    const el = h('div', { class: ['toast', `toast-${kind}`], dataset: { kind } }, message);
    toastHost.appendChild(el);
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
    return el;
}

// ---------------------------------------------------------------- table
export function table({ id, columns, rows, empty, onRow, caption }) {
    if (!rows || rows.length === 0) {
        return h('div', { class: 'empty', dataset: { table: id, empty: '1' } }, empty || t('ui.empty'));
    }
    const head = h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.align ? `al-${c.align}` : null },
        c.label)));
    const body = rows.map((r) => {
        const tr = h('tr', null, columns.map((c, i) => {
            let v = c.render ? c.render(r) : r[c.key];
            if (v === null || v === undefined || v === '') v = t('ui.none');
            const cell = i === 0 && c.rowHeader ? 'th' : 'td';
            return h(cell, { class: c.align ? `al-${c.align}` : null, scope: cell === 'th' ? 'row' : null,
                dataset: { label: typeof c.label === 'string' ? c.label : null, col: c.key } }, v);
        }));
        if (onRow) {
            tr.classList.add('clickable');
            tr.tabIndex = 0;
            tr.addEventListener('click', (e) => {
                if (e.target.closest('button, a, input, select, textarea, label')) return;
                onRow(r, e);
            });
            tr.addEventListener('keydown', (e) => {
                if (e.target === tr && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); onRow(r, e); }
            });
        }
        return tr;
    });
    return h('div', { class: 'table-wrap' },
        h('table', { class: 'table', dataset: { table: id } },
            caption ? h('caption', { class: 'sr-only' }, caption) : null,
            h('thead', null, head), h('tbody', null, body)));
}

// ---------------------------------------------------------------- forms
function toLocalInput(ms) {
    if (ms === null || ms === undefined || ms === '') return '';
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function control(f, id, helpId) {
    const common = { id, name: f.name, required: !!f.required, disabled: !!f.disabled,
        placeholder: f.placeholder || null, autocomplete: f.autocomplete || null,
        attrs: { 'aria-describedby': helpId, ...(f.attrs || {}) } };
    switch (f.type) {
    case 'select':
        return h('select', common, (f.options || []).map((o) => h('option', {
            value: String(o.value), selected: String(o.value) === String(f.value ?? '') }, o.label)));
    case 'textarea':
        return h('textarea', { ...common, rows: f.rows || 4, value: f.value ?? '' });
    case 'checkbox':
        return h('input', { ...common, type: 'checkbox', checked: !!f.value, placeholder: null });
    case 'datetime':
        return h('input', { ...common, type: 'datetime-local', value: toLocalInput(f.value) });
    case 'tags': {
        const v = Array.isArray(f.value) ? f.value.join(', ') : (f.value ?? '');
        return f.rows ? h('textarea', { ...common, rows: f.rows, value: v })
            : h('input', { ...common, type: 'text', value: v });
    }
    case 'number':
        return h('input', { ...common, type: 'number', value: f.value ?? '', min: f.min ?? null,
            max: f.max ?? null, step: f.step ?? 'any', attrs: { ...common.attrs, inputmode: 'decimal' } });
    default:
        return h('input', { ...common, type: f.type || 'text', value: f.value ?? '' });
    }
}

function readValue(f, el) {
    switch (f.type) {
    case 'checkbox': return el.checked;
    case 'number': return el.value === '' ? null : Number(el.value);
    case 'datetime': return el.value === '' ? null : new Date(el.value).getTime();
    case 'tags': return el.value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
    default: return el.value;
    }
}

// fields: [{name, label, type, options, required, value, help, placeholder, min, max, full}]
export function form({ id, fields, submitLabel, onSubmit, onCancel, cancelLabel, action = 'save',
    inline = false }) {
    const top = h('div', { class: 'form-error', attrs: { role: 'alert' }, hidden: true });
    const inputs = new Map();
    const errs = new Map();
    const rows = fields.map((f) => {
        const fid = uid(`f-${f.name}`);
        const helpId = `${fid}-help`;
        const errId = `${fid}-err`;
        const el = control(f, fid, f.help ? helpId : null);
        inputs.set(f.name, { f, el });
        const err = h('div', { class: 'field-error', id: errId, hidden: true });
        errs.set(f.name, err);
        const label = h('label', { for: fid }, f.label, f.required ? h('span', { class: 'req',
            attrs: { 'aria-hidden': 'true' } }, ' *') : null);
        const help = f.help || f.type === 'tags' ? h('div', { class: 'help', id: helpId },
            f.help || t('ui.tags.help')) : null;
        if (f.type === 'tags' && !f.help) el.setAttribute('aria-describedby', helpId);
        const cls = ['field', `field-${f.type || 'text'}`, f.full || f.type === 'textarea' ? 'full' : null];
        return f.type === 'checkbox'
            ? h('div', { class: cls }, h('div', { class: 'check' }, el, label), help, err)
            : h('div', { class: cls }, label, el, help, err);
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', dataset: { action } },
        submitLabel || t('ui.save'));
    const buttons = h('div', { class: 'form-actions' }, submit,
        onCancel ? h('button', { type: 'button', class: 'btn', dataset: { action: 'cancel' },
            on: { click: () => onCancel() } }, cancelLabel || t('ui.cancel')) : null);
    const el = h('form', { class: ['form', inline ? 'form-inline' : null], dataset: { form: id },
        attrs: { novalidate: true } }, top, h('div', { class: 'fields' }, rows), buttons);

    const values = () => {
        const v = {};
        for (const [name, { f, el: c }] of inputs) v[name] = readValue(f, c);
        return v;
    };
    const resetErrors = () => {
        top.hidden = true;
        clear(top);
        for (const [name, e] of errs) {
            e.hidden = true;
            clear(e);
            inputs.get(name).el.removeAttribute('aria-invalid');
        }
    };
    const showError = (err) => {
        const param = err && err.param ? String(err.param).split(/[.[]/)[0] : null;
        if (param && errs.has(param)) {
            const e = errs.get(param);
            const c = inputs.get(param).el;
            e.append(errorMessage(err));
            e.hidden = false;
            c.setAttribute('aria-invalid', 'true');
            c.setAttribute('aria-describedby', [c.getAttribute('aria-describedby'), e.id].filter(Boolean).join(' '));
            c.focus();
        } else {
            top.append(errorMessage(err));
            top.hidden = false;
        }
    };
    el.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        resetErrors();
        for (const [name, { f, el: c }] of inputs) {
            const v = readValue(f, c);
            if (f.required && (v === '' || v === null || (Array.isArray(v) && v.length === 0))) {
                showError({ param: name, message: t('ui.required') });
                return;
            }
        }
        submit.disabled = true;
        el.setAttribute('aria-busy', 'true');
        try {
            await onSubmit(values(), el);
        } catch (err) {
            showError(err);
        } finally {
            submit.disabled = false;
            el.removeAttribute('aria-busy');
        }
    });
    el.values = values;
    el.showError = showError;
    el.input = (name) => inputs.get(name)?.el;
    return el;
}

// ---------------------------------------------------------------- dialogs
const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), '
    + 'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

// actions: [{label, kind: 'primary'|'danger'|'', action, onClick(close)}]
export function modal({ title, body, actions = [], onClose, wide = false }) {
    const before = document.activeElement;
    const titleId = uid('dlg');
    let closed = false;
    const close = () => {
        if (closed) return;
        closed = true;
        backdrop.remove();
        document.removeEventListener('keydown', onKey, true);
        if (before && before.focus && before.isConnected) before.focus();
        if (onClose) onClose();
    };
    const btns = actions.map((a) => h('button', { type: 'button', class: ['btn', a.kind ? `btn-${a.kind}` : null],
        dataset: { action: a.action || null }, on: { click: () => (a.onClick ? a.onClick(close) : close()) } },
    a.label));
    const dialog = h('div', { class: ['dialog', wide ? 'dialog-wide' : null],
        attrs: { role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': titleId } },
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title),
        h('button', { type: 'button', class: 'btn-icon', attrs: { 'aria-label': t('ui.close') },
            dataset: { action: 'close' }, on: { click: close } }, '×')),
    h('div', { class: 'dialog-body' }, body),
    btns.length ? h('div', { class: 'dialog-actions' }, btns) : null);
    const backdrop = h('div', { class: 'backdrop', on: { mousedown: (e) => { if (e.target === backdrop) close(); } } },
        dialog);
    function onKey(e) {
        if (!backdrop.isConnected) return;
        if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); return; }
        if (e.key !== 'Tab') return;
        const f = [...dialog.querySelectorAll(FOCUSABLE)].filter((x) => x.offsetParent !== null);
        if (!f.length) return;
        const first = f[0];
        const last = f[f.length - 1];
        if (!dialog.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
        else if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    }
    document.addEventListener('keydown', onKey, true);
    document.body.appendChild(backdrop);
    const first = dialog.querySelector('.dialog-body ' + FOCUSABLE) || dialog.querySelector(FOCUSABLE);
    if (first) first.focus();
    return { close, element: dialog };
}

export function confirmDialog(message, { okLabel, danger = true } = {}) {
    return new Promise((resolve) => {
        let answered = false;
        modal({
            title: t('ui.confirm.title'),
            body: h('p', null, message),
            onClose: () => { if (!answered) resolve(false); },
            actions: [
                { label: t('ui.cancel'), action: 'cancel', onClick: (close) => close() },
                { label: okLabel || t('ui.confirm'), kind: danger ? 'danger' : 'primary', action: 'confirm',
                    onClick: (close) => { answered = true; resolve(true); close(); } },
            ],
        });
    });
}

// ---------------------------------------------------------------- pager
export function pager({ page, perPage, total, onPage }) {
    const pages = Math.max(1, Math.ceil((total || 0) / perPage));
    return h('nav', { class: 'pager', attrs: { 'aria-label': t('ui.pager.label') } },
        h('button', { type: 'button', class: 'btn', disabled: page <= 1, dataset: { action: 'prev' },
            on: { click: () => onPage(page - 1) } }, t('ui.pager.prev')),
        h('span', { class: 'pager-info' }, t('ui.pager.info', { page, pages, total: fmt.num(total || 0) })),
        h('button', { type: 'button', class: 'btn', disabled: page >= pages, dataset: { action: 'next' },
            on: { click: () => onPage(page + 1) } }, t('ui.pager.next')));
}

// ---------------------------------------------------------------- secrets
export function secretBox(label, secret) {
    const id = uid('secret');
    const status = h('span', { class: 'copy-status', attrs: { 'aria-live': 'polite' } });
    const field = h('input', { id, type: 'text', readOnly: true, value: secret, class: 'secret-value',
        dataset: { secret: '' }, autocomplete: 'off', attrs: { spellcheck: 'false' },
        on: { focus: (e) => e.target.select() } });
    const copy = async () => {
        clear(status);
        try {
            await navigator.clipboard.writeText(secret);
            status.append(t('ui.copied'));
        } catch {
            field.select();
            status.append(t('ui.copy.failed'));
        }
    };
    return h('div', { class: 'secret-box' },
        h('label', { for: id }, label),
        h('div', { class: 'secret-row' }, field,
            h('button', { type: 'button', class: 'btn', dataset: { action: 'copy' }, on: { click: copy } },
                t('ui.copy'))),
        status,
        h('p', { class: 'secret-warning' }, t('ui.secret.warning')));
}

// ---------------------------------------------------------------- filters
// fields as for form(); values: the current ones; onApply(values without empties)
export function filters({ id = 'filters', fields, values = {}, onApply }) {
    const f = fields.map((x) => ({ ...x, value: values[x.name] ?? x.value, required: false }));
    const el = form({
        id, fields: f, inline: true, action: 'apply', submitLabel: t('ui.apply'),
        onSubmit: async (v) => {
            const out = {};
            for (const [k, val] of Object.entries(v)) {
                if (val === '' || val === null || val === false || (Array.isArray(val) && !val.length)) continue;
                out[k] = val;
            }
            await onApply(out);
        },
        onCancel: () => onApply({}), cancelLabel: t('ui.reset'),
    });
    el.classList.add('filters');
    el.querySelector('[data-action="cancel"]').dataset.action = 'reset';
    return el;
}

// ---------------------------------------------------------------- page helpers
// A page header: title, optional actions (buttons) on the right.
export function pageHeader(title, ...actions) {
    return h('div', { class: 'page-head' }, h('h1', null, title),
        actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

// A button with a data-action hook; kind: '', 'primary', 'danger', 'small', 'small danger' ...
export function button(label, action, onClick, kind = '') {
    const cls = ['btn', ...String(kind || '').split(/\s+/).filter(Boolean).map((k) => `btn-${k}`)];
    return h('button', { type: 'button', class: cls, dataset: { action },
        on: { click: onClick } }, label);
}

// A definition list of [label, value] pairs.
export function dl(pairs) {
    return h('dl', { class: 'dl' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k),
        h('dd', null, v === null || v === undefined || v === '' ? t('ui.none') : v)]));
}

// Runs loader() into el: a spinner meanwhile, the error box when it throws.
export async function load(el, loader) {
    clear(el).append(loading());
    try {
        const node = await loader();
        clear(el);
        if (node) el.append(node);
    } catch (err) {
        clear(el).append(errorBox(err));
    }
}
