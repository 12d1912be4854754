// The admin API client: JSON in and out, the session's CSRF token on every
// state-changing call, 401 -> the login page, other errors as ApiError.
export class ApiError extends Error {
    constructor(status, error = {}) {
        super(error.message || `HTTP ${status}`);
        this.name = 'ApiError';
        this.status = status;
        this.code = error.code || null;
        this.type = error.type || null;
        this.param = error.param || null;
    }
}

let csrfToken = null;

// login and /api/auth/me give the token; the readable cookie is the fallback
export function setCsrf(token) { csrfToken = token || null; }

function csrf() {
    if (csrfToken) return csrfToken;
    for (const part of document.cookie.split(';')) {
        const [k, ...v] = part.trim().split('=');
        if (k === '__Host-nebula_csrf' || k === 'nebula_csrf') return decodeURIComponent(v.join('='));
    }
    return null;
}

// where API paths start: the page's own directory (the vhost may mount the UI at /)
function url(path, query) {
    const u = new URL(path.replace(/^\//, ''), new URL('.', document.baseURI));
    if (query) {
        for (const [k, v] of Object.entries(query)) {
            if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
        }
    }
    return u;
}

let onUnauthorized = () => { if (!location.hash.startsWith('#/login')) location.hash = '#/login'; };
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

async function send(method, path, { body, query, headers = {} } = {}) {
    const h = { Accept: 'application/json', ...headers };
    const init = { method, headers: h, credentials: 'same-origin' };
    if (body !== undefined) {
        h['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
    }
    if (!['GET', 'HEAD', 'OPTIONS'].includes(method)) {
        const t = csrf();
        if (t) h['X-CSRF-Token'] = t;
    }
    let res;
    try {
        res = await fetch(url(path, query), init);
    } catch (e) {
        throw new ApiError(0, { message: e.message || 'network error', code: 'network_error' });
    }
    if (res.status === 401 && path !== '/api/auth/login') {
        setCsrf(null);
        onUnauthorized();
    }
    return res;
}

async function errorOf(res) {
    let err = {};
    try {
        const j = await res.json();
        err = (j && j.error) || {};
        if (!err.message && j && j.message) err.message = j.message;
    } catch { /* not JSON */ }
    const e = new ApiError(res.status, err);
    // a refusal that says when to try again (429 with Retry-After, seconds)
    const ra = res.headers.get('Retry-After');
    if (ra && /^\d+$/.test(ra)) e.retryAfter = Number(ra);
    return e;
}

export async function api(method, path, { body, query, headers } = {}) {
    const res = await send(method, path, { body, query, headers });
    if (!res.ok) throw await errorOf(res);
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
}

// GET an export and hand it to the browser as a file
export async function download(path, query, filename) {
    const res = await send('GET', path, { query, headers: { Accept: '*/*' } });
    if (!res.ok) throw await errorOf(res);
    const blob = await res.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    const cd = res.headers.get('Content-Disposition') || '';
    const m = cd.match(/filename="([^"]+)"/);
    a.download = filename || (m && m[1]) || 'export';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
