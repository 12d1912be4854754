// Hash router: '#/<page>?a=1&b=2'.
const listeners = [];

export function current() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [page, qs = ''] = raw.split('?');
    const query = {};
    for (const [k, v] of new URLSearchParams(qs)) query[k] = v;
    return { page: decodeURIComponent(page || ''), query };
}

export function href(page, query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) {
        if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    return `#/${encodeURIComponent(page)}${s ? `?${s}` : ''}`;
}

// go(page, query): a new history entry; the same hash renders again
export function go(page, query, { replace = false } = {}) {
    const target = href(page, query);
    if (target === location.hash) { notify(); return; }
    if (replace) { history.replaceState(null, '', target); notify(); } else location.hash = target;
}

export function onRoute(fn) { listeners.push(fn); }
function notify() { const c = current(); for (const fn of listeners) fn(c); }
window.addEventListener('hashchange', notify);
