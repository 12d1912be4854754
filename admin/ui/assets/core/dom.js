// Building DOM nodes without innerHTML: text always becomes text nodes.
const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'readOnly',
    'required', 'multiple', 'min', 'max', 'step', 'placeholder', 'tabIndex', 'title', 'name',
    'type', 'id', 'href', 'rows', 'colSpan', 'autocomplete', 'maxLength', 'target', 'rel']);

function append(el, c) {
    if (c === null || c === undefined || c === false || c === true) return;
    if (Array.isArray(c)) { for (const x of c) append(el, x); return; }
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
}

export function h(tag, props, ...children) {
    const svg = tag.startsWith('svg:');
    const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
        : document.createElement(tag);
    if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
        children.unshift(props);
        props = null;
    }
    for (const [k, v] of Object.entries(props || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') {
            const c = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
            if (svg) el.setAttribute('class', c); else el.className = c;
        } else if (k === 'on') {
            for (const [ev, fn] of Object.entries(v)) if (fn) el.addEventListener(ev, fn);
        } else if (k === 'dataset') {
            for (const [dk, dv] of Object.entries(v)) if (dv !== undefined && dv !== null) el.dataset[dk] = dv;
        } else if (k === 'attrs') {
            for (const [ak, av] of Object.entries(v)) if (av !== undefined && av !== null && av !== false) el.setAttribute(ak, av === true ? '' : av);
        } else if (k === 'for') {
            el.htmlFor = v;
        } else if (k === 'style') {
            // CSSOM only: a style attribute would be refused by the CSP
            if (typeof v === 'object') Object.assign(el.style, v);
        } else if (!svg && PROPS.has(k)) {
            el[k] = v;
        } else {
            el.setAttribute(k, v === true ? '' : v);
        }
    }
    append(el, children);
    return el;
}

export function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
}

let seq = 0;
export function uid(prefix = 'f') { return `${prefix}-${++seq}`; }
