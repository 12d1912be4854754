// Strings by language: t(key, {vars}) falls back to English, then to the key.
const dicts = { en: {}, 'zh-CN': {} };
const LANGS = ['en', 'zh-CN'];
const KEY = 'nebula.lang';
let current = pick();
const listeners = [];

function pick() {
    let l = null;
    try { l = localStorage.getItem(KEY); } catch { /* storage disabled */ }
    if (LANGS.includes(l)) return l;
    const nav = (navigator.languages || [navigator.language || 'en']).map((x) => String(x).toLowerCase());
    return nav.some((x) => x.startsWith('zh')) ? 'zh-CN' : 'en';
}

export function addStrings(l, dict) {
    if (!dicts[l]) dicts[l] = {};
    Object.assign(dicts[l], dict);
}

export function t(key, vars) {
    let s = dicts[current]?.[key];
    if (s === undefined) s = dicts.en[key];
    if (s === undefined) s = key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k])));
    return s;
}

export function has(key) { return dicts.en[key] !== undefined; }
export function lang() { return current; }
export function langs() { return LANGS.slice(); }

export function setLang(l) {
    if (!LANGS.includes(l)) l = 'en';
    current = l;
    try { localStorage.setItem(KEY, l); } catch { /* storage disabled */ }
    document.documentElement.lang = l;
    for (const fn of listeners) fn(l);
}

// app.js re-renders the layout and the page when the language changes
export function onLangChange(fn) { listeners.push(fn); }

document.documentElement.lang = current;
