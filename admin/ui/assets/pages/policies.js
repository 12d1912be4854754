// Governance policies: list, create/edit with a live sandbox beside the
// editor (POST /api/policies/test with the policy being edited, debounced),
// shadow toggle, delete. Config-declared policies are shown read-only.
import { h, clear } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { confirmDialog, toast, fmt, badge, loading } from '../core/ui.js';
import { canWrite, listView, pageHead, button, notice, mount, dataTable, errorView, toList,
                  jsonText, yesNo } from '../core/billing-ui.js';

const MATCHERS = ['keywords', 'regex', 'detector', 'model', 'route', 'ip', 'country', 'time', 'size', 'tokens'];
const ACTIONS = ['block', 'downgrade', 'reroute', 'redact', 'tag'];
const STAGES = ['request', 'response', 'both'];
const SCOPES = ['groups', 'users', 'keys', 'models', 'routes'];
const ROUTES = ['chat', 'messages', 'responses', 'embeddings', 'gemini_generate', 'completions'];

let seqId = 0;
const uid = (p) => `${p}-u2-${++seqId}`;

// ---- small labelled controls (the editor is live, not a submit form) ----
function field(label, control, help) {
    const id = control.id || uid('pol');
    control.id = id;
    const helpEl = help ? h('div', { class: 'help', id: `${id}-help` }, help) : null;
    if (helpEl) control.setAttribute('aria-describedby', helpEl.id);
    return control.type === 'checkbox'
        ? h('div', { class: 'field field-checkbox' }, h('div', { class: 'check' }, control, h('label', { for: id }, label)), helpEl)
        : h('div', { class: 'field' }, h('label', { for: id }, label), control, helpEl);
}
function input(name, value, on, type = 'text', extra = {}) {
    const el = h('input', { type, name, value: value ?? '', ...extra });
    if (type === 'checkbox') el.checked = !!value;
    el.addEventListener(type === 'checkbox' ? 'change' : 'input', on);
    return el;
}
function select(name, value, options, on) {
    const el = h('select', { name }, options.map((o) => h('option', { value: o.value, selected: String(o.value) === String(value ?? '') }, o.label)));
    el.addEventListener('change', on);
    return el;
}
const list = (v) => (Array.isArray(v) ? v.join(', ') : v ?? '');
const nums = (v) => toList(v).map((x) => (/^\d+$/.test(x) ? Number(x) : x));

// ---- the sample request for the sandbox, in the route's protocol ----
function sampleBody(route, model, prompt) {
    switch (route) {
    case 'messages': return { model, max_tokens: 256, messages: [{ role: 'user', content: prompt }] };
    case 'responses': return { model, input: prompt };
    case 'embeddings': return { model, input: prompt };
    case 'completions': return { model, prompt };
    case 'gemini_generate': return { contents: [{ role: 'user', parts: [{ text: prompt }] }] };
    default: return { model, messages: [{ role: 'user', content: prompt }] };
    }
}

// Spans the edited policy's text matchers find in the prompt (keywords: case-
// insensitive substrings; regex: when JavaScript can read the pattern).
function spans(spec, text) {
    const out = [];
    for (const m of spec.match || []) {
        if (m.negate) continue;
        if (m.type === 'keywords') {
            const low = text.toLowerCase();
            for (const k of m.values || []) {
                const kw = String(k).toLowerCase();
                if (!kw) continue;
                for (let i = low.indexOf(kw); i >= 0; i = low.indexOf(kw, i + kw.length)) out.push([i, i + kw.length]);
            }
        } else if (m.type === 'regex' && m.pattern) {
            try {
                const re = new RegExp(m.pattern, `gu${m.case_insensitive ? 'i' : ''}`);
                for (const x of text.matchAll(re)) if (x[0]) out.push([x.index, x.index + x[0].length]);
            } catch { /* PCRE-only syntax: the server's decision still shows */ }
        }
    }
    out.sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const s of out) {
        const last = merged[merged.length - 1];
        if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]); else merged.push([...s]);
    }
    return merged;
}
function highlighted(text, sp) {
    const parts = [];
    let pos = 0;
    for (const [a, b] of sp) {
        if (a > pos) parts.push(text.slice(pos, a));
        parts.push(h('mark', {}, text.slice(a, b)));
        pos = b;
    }
    parts.push(text.slice(pos));
    return parts;
}

// The spec the editor holds, cleaned for the API (no id/source/times).
function specOf(p) {
    const s = {};
    for (const k of ['name', 'description', 'priority', 'enabled', 'shadow', 'stage', 'scope', 'match', 'action']) {
        if (p[k] !== undefined) s[k] = p[k];
    }
    return s;
}

export default {
    id: 'policies',
    nav: 'nav.policies',
    section: 'gov',
    roles: ['root', 'admin', 'operator'],
    strings: {
        en: {
            'nav.policies': 'Policies',
            'pol.title': 'Policies',
            'pol.create': 'New policy',
            'pol.back': 'All policies',
            'pol.edit': 'Policy {name}',
            'pol.new': 'New policy',
            'pol.config': 'Declared in the server configuration: read-only here.',
            'pol.delete_q': 'Delete policy {name}? It stops applying at once.',
            'pol.saved': 'Policy saved: it applies at once.',
            'pol.c.name': 'Name', 'pol.c.source': 'Source', 'pol.c.priority': 'Priority', 'pol.c.stage': 'Stage',
            'pol.c.match': 'Matches', 'pol.c.action': 'Action', 'pol.c.enabled': 'Enabled', 'pol.c.shadow': 'Shadow',
            'pol.source.db': 'stored', 'pol.source.config': 'configuration',
            'pol.f.name': 'Name', 'pol.f.description': 'Description', 'pol.f.priority': 'Priority', 'pol.f.stage': 'Stage',
            'pol.f.enabled': 'Enabled', 'pol.f.shadow': 'Shadow mode (evaluate and audit, change nothing)',
            'pol.h.name': 'Letters, digits, _ . - (up to 64).', 'pol.h.priority': 'Higher is evaluated first.',
            'pol.scope': 'Scope', 'pol.h.scope': 'Each part optional; all given parts must hold. Comma-separated.',
            'pol.scope.groups': 'Groups', 'pol.scope.users': 'User ids', 'pol.scope.keys': 'Key ids',
            'pol.scope.models': 'Models (globs)', 'pol.scope.routes': 'Routes',
            'pol.match': 'Matchers (all must hold)', 'pol.add_matcher': 'Add matcher', 'pol.remove': 'Remove',
            'pol.matcher': 'Matcher {n}', 'pol.m.type': 'Type', 'pol.m.negate': 'Negate',
            'pol.m.values': 'Values', 'pol.m.word': 'Whole words only', 'pol.m.pattern': 'Pattern (PCRE2)',
            'pol.m.case_insensitive': 'Ignore case', 'pol.m.detectors': 'Detectors (email, phone, card, cn_id, secret)',
            'pol.m.days': 'Days (mon..sun)', 'pol.m.from': 'From (HH:MM)', 'pol.m.to': 'To (HH:MM)',
            'pol.m.utc_offset': 'UTC offset (+08:00)', 'pol.m.min': 'Minimum', 'pol.m.max': 'Maximum',
            'pol.type.keywords': 'keywords', 'pol.type.regex': 'regular expression', 'pol.type.detector': 'detector',
            'pol.type.model': 'model', 'pol.type.route': 'route', 'pol.type.ip': 'client address', 'pol.type.country': 'country',
            'pol.type.time': 'time window', 'pol.type.size': 'body size', 'pol.type.tokens': 'prompt tokens',
            'pol.action': 'Action', 'pol.a.type': 'Action',
            'pol.a.status': 'HTTP status', 'pol.a.message': 'Message', 'pol.a.model': 'Model', 'pol.a.group': 'Group',
            'pol.a.channel': 'Channel', 'pol.a.mask': 'Mask', 'pol.a.tag': 'Tag',
            'pol.act.allow': 'allow', 'pol.act.block': 'block', 'pol.act.downgrade': 'downgrade', 'pol.act.reroute': 'reroute',
            'pol.act.redact': 'redact', 'pol.act.tag': 'tag',
            'pol.stage.request': 'request', 'pol.stage.response': 'response', 'pol.stage.both': 'both',
            'pol.json': 'Spec (JSON)',
            'pol.sandbox': 'Sandbox',
            'pol.sandbox_help': 'Evaluates the policies in force with this one as edited, without effects.',
            'pol.s.prompt': 'Prompt', 'pol.s.model': 'Model', 'pol.s.route': 'Route', 'pol.s.group': 'Group',
            'pol.s.placeholder': 'Type a prompt…',
            'pol.s.decision': 'Decision',
            'pol.s.by': 'by policy {policy}',
            'pol.s.status': 'HTTP {status}: {message}',
            'pol.s.to': '→ {target}',
            'pol.s.hits': 'Policies that held',
            'pol.s.none': 'No policy held.',
            'pol.s.evaluated': '{n} policies evaluated, about {tokens} prompt tokens.',
            'pol.s.text': 'Text the matchers read',
            'pol.s.redact': 'The prompt would be redacted.',
            'pol.s.invalid': 'Not testable yet: {msg}',
            'pol.h.policy': 'Policy', 'pol.h.matcher': 'Matcher', 'pol.h.action': 'Action', 'pol.h.shadow': 'Shadow',
            'pol.h.terminal': 'Decides', 'pol.h.excerpt': 'Excerpt',
            'pol.filter.q': 'Name contains', 'pol.filter.enabled': 'Enabled', 'pol.filter.shadow': 'Shadow',
            'pol.yes': 'yes', 'pol.no': 'no',
            'pol.shadow_on': 'Shadow on', 'pol.shadow_off': 'Shadow off',
            'pol.save': 'Save',
        },
        'zh-CN': {
            'nav.policies': '策略',
            'pol.title': '策略',
            'pol.create': '新建策略',
            'pol.back': '全部策略',
            'pol.edit': '策略 {name}',
            'pol.new': '新建策略',
            'pol.config': '在服务器配置中声明：此处只读。',
            'pol.delete_q': '删除策略 {name}？将立即停止生效。',
            'pol.saved': '策略已保存，立即生效。',
            'pol.c.name': '名称', 'pol.c.source': '来源', 'pol.c.priority': '优先级', 'pol.c.stage': '阶段',
            'pol.c.match': '匹配条件', 'pol.c.action': '动作', 'pol.c.enabled': '启用', 'pol.c.shadow': '影子模式',
            'pol.source.db': '数据库', 'pol.source.config': '配置文件',
            'pol.f.name': '名称', 'pol.f.description': '描述', 'pol.f.priority': '优先级', 'pol.f.stage': '阶段',
            'pol.f.enabled': '启用', 'pol.f.shadow': '影子模式（仅评估和审计，不做改变）',
            'pol.h.name': '字母、数字、_ . -（最多 64 个）。', 'pol.h.priority': '数值越大越先评估。',
            'pol.scope': '范围', 'pol.h.scope': '各项可选；填写的各项须同时满足。用逗号分隔。',
            'pol.scope.groups': '分组', 'pol.scope.users': '用户 ID', 'pol.scope.keys': '密钥 ID',
            'pol.scope.models': '模型（通配符）', 'pol.scope.routes': '路由',
            'pol.match': '匹配条件（须全部满足）', 'pol.add_matcher': '添加条件', 'pol.remove': '移除',
            'pol.matcher': '条件 {n}', 'pol.m.type': '类型', 'pol.m.negate': '取反',
            'pol.m.values': '取值', 'pol.m.word': '仅匹配整词', 'pol.m.pattern': '正则表达式（PCRE2）',
            'pol.m.case_insensitive': '忽略大小写', 'pol.m.detectors': '检测器（email、phone、card、cn_id、secret）',
            'pol.m.days': '星期（mon..sun）', 'pol.m.from': '开始（HH:MM）', 'pol.m.to': '结束（HH:MM）',
            'pol.m.utc_offset': 'UTC 偏移（+08:00）', 'pol.m.min': '最小值', 'pol.m.max': '最大值',
            'pol.type.keywords': '关键词', 'pol.type.regex': '正则表达式', 'pol.type.detector': '检测器',
            'pol.type.model': '模型', 'pol.type.route': '路由', 'pol.type.ip': '客户端地址', 'pol.type.country': '国家/地区',
            'pol.type.time': '时间窗口', 'pol.type.size': '请求体大小', 'pol.type.tokens': '提示词令牌数',
            'pol.action': '动作', 'pol.a.type': '动作',
            'pol.a.status': 'HTTP 状态码', 'pol.a.message': '提示信息', 'pol.a.model': '模型', 'pol.a.group': '分组',
            'pol.a.channel': '渠道', 'pol.a.mask': '掩码', 'pol.a.tag': '标签',
            'pol.act.allow': '放行', 'pol.act.block': '拦截', 'pol.act.downgrade': '降级', 'pol.act.reroute': '改道',
            'pol.act.redact': '脱敏', 'pol.act.tag': '标记',
            'pol.stage.request': '请求', 'pol.stage.response': '响应', 'pol.stage.both': '两者',
            'pol.json': '规则（JSON）',
            'pol.sandbox': '沙盒',
            'pol.sandbox_help': '用当前编辑中的策略和其他生效策略评估示例请求，不产生任何影响。',
            'pol.s.prompt': '提示词', 'pol.s.model': '模型', 'pol.s.route': '路由', 'pol.s.group': '分组',
            'pol.s.placeholder': '输入提示词…',
            'pol.s.decision': '决定',
            'pol.s.by': '由策略 {policy} 决定',
            'pol.s.status': 'HTTP {status}：{message}',
            'pol.s.to': '→ {target}',
            'pol.s.hits': '命中的策略',
            'pol.s.none': '没有策略命中。',
            'pol.s.evaluated': '评估了 {n} 条策略，提示词约 {tokens} 个令牌。',
            'pol.s.text': '匹配条件读取的文本',
            'pol.s.redact': '提示词将被脱敏。',
            'pol.s.invalid': '暂时无法测试：{msg}',
            'pol.h.policy': '策略', 'pol.h.matcher': '条件', 'pol.h.action': '动作', 'pol.h.shadow': '影子',
            'pol.h.terminal': '决定性', 'pol.h.excerpt': '摘录',
            'pol.filter.q': '名称包含', 'pol.filter.enabled': '启用', 'pol.filter.shadow': '影子模式',
            'pol.yes': '是', 'pol.no': '否',
            'pol.shadow_on': '开启影子模式', 'pol.shadow_off': '关闭影子模式',
            'pol.save': '保存',
        },
    },
    async render(root, ctx) {
        root.dataset.page = 'policies';
        const q = ctx.query || {};
        if (q.edit || q.new) return editor(root, ctx, q.edit || null);
        const write = canWrite(ctx);
        const yn = [{ value: '', label: t('bui.any') }, { value: 'true', label: t('pol.yes') }, { value: 'false', label: t('pol.no') }];
        const columns = [
            { key: 'name', label: t('pol.c.name') },
            { key: 'source', label: t('pol.c.source'), render: (p) => badge(t(`pol.source.${p.source}`), p.source === 'db' ? 'info' : 'warn') },
            { key: 'priority', label: t('pol.c.priority'), align: 'right' },
            { key: 'stage', label: t('pol.c.stage'), render: (p) => t(`pol.stage.${p.stage || 'request'}`) },
            { key: 'match', label: t('pol.c.match'), render: (p) => (p.match || []).map((m) => `${m.negate ? '!' : ''}${t(`pol.type.${m.type}`)}`).join(', ') },
            { key: 'action', label: t('pol.c.action'), render: (p) => badge(t(`pol.act.${p.action && p.action.type}`), p.action && p.action.type === 'block' ? 'error' : 'info') },
            { key: 'enabled', label: t('pol.c.enabled'), render: (p) => yesNo(p.enabled !== false) },
            { key: 'shadow', label: t('pol.c.shadow'), render: (p) => yesNo(!!p.shadow) },
        ];
        if (write) {
            columns.push({ key: '_a', label: t('bui.actions'), render: (p) => (p.source !== 'db' ? '' : h('span', { class: 'row-actions' },
                button(p.shadow ? t('pol.shadow_off') : t('pol.shadow_on'), 'shadow', async () => {
                    try { await api('PATCH', `/api/policies/${p.id}`, { body: { shadow: !p.shadow } }); toast(t('pol.saved')); lv.refresh(); }
                    catch (err) { toast(err.message, 'error'); }
                }),
                button(t('bui.delete'), 'delete', async () => {
                    if (!(await confirmDialog(t('pol.delete_q', { name: p.name })))) return;
                    try { await api('DELETE', `/api/policies/${p.id}`); toast(t('bui.deleted')); lv.refresh(); }
                    catch (err) { toast(err.message, 'error'); }
                }, 'danger'))) });
        }
        const lv = listView({
            id: 'policies', columns, perPage: 100,
            load: (query) => api('GET', '/api/policies', { query }),
            filterFields: [
                { name: 'q', label: t('pol.filter.q'), type: 'text' },
                { name: 'enabled', label: t('pol.filter.enabled'), type: 'select', options: yn },
                { name: 'shadow', label: t('pol.filter.shadow'), type: 'select', options: yn },
            ],
            onRow: (p) => ctx.go('policies', { edit: p.id || p.name }),
        });
        mount(root, pageHead(t('pol.title'), write ? button(t('pol.create'), 'create', () => ctx.go('policies', { new: 1 }), 'primary') : null),
                    write ? null : notice(t('bui.readonly')), lv.el);
        await lv.refresh();
    },
};

async function editor(root, ctx, key) {
    let p;
    if (key) {
        mount(root, loading());
        try {
            p = (await api('GET', `/api/policies/${encodeURIComponent(key)}`)).data;
        } catch (err) {
            clear(root);
            mount(root, pageHead(t('pol.title'), button(t('pol.back'), 'back', () => ctx.go('policies'))), errorView(err));
            return;
        }
        clear(root);
    } else {
        p = { name: '', description: '', priority: 0, enabled: true, shadow: false, stage: 'request',
                    match: [{ type: 'keywords', values: [] }], action: { type: 'block', status: 403 } };
    }
    const readOnly = !canWrite(ctx) || p.source === 'config';
    const spec = specOf(p);
    spec.match = (spec.match || []).map((m) => ({ ...m }));
    spec.action = { ...(spec.action || { type: 'block' }) };
    spec.scope = { ...(spec.scope || {}) };

    // ---------------- the sandbox ----------------
    const sb = { route: 'chat', model: 'gpt-4o-mini', prompt: '', group: '' };
    const result = h('div', { class: 'sandbox-result', dataset: { sandbox: 'result' }, attrs: { 'aria-live': 'polite' } });
    let timer = null;
    let seqNo = 0;
    function schedule() {
        clearTimeout(timer);
        timer = setTimeout(runTest, 300);
    }
    function apiSpec() {
        const s = JSON.parse(JSON.stringify(spec));
        const scope = {};
        for (const k of SCOPES) if (s.scope && s.scope[k] && s.scope[k].length) scope[k] = s.scope[k];
        if (Object.keys(scope).length) s.scope = scope; else delete s.scope;
        if (!s.description) delete s.description;
        return s;
    }
    async function runTest() {
        const my = ++seqNo;
        if (!sb.prompt.trim()) {
            clear(result);
            result.dataset.decision = '';
            result.append(h('p', { class: 'muted' }, t('pol.sandbox_help')));
            return;
        }
        const body = { route: sb.route, body: sampleBody(sb.route, sb.model, sb.prompt) };
        if (sb.route === 'gemini_generate' || sb.model) body.model = sb.model || 'gemini-2.0-flash';
        if (sb.group) body.group = sb.group;
        if (!readOnly) {
            const draft = apiSpec();
            if (!draft.name) draft.name = 'draft-policy';
            body.policies = [draft];
        }
        let d;
        result.setAttribute('aria-busy', 'true');
        try {
            d = (await api('POST', '/api/policies/test', { body })).data;
        } catch (err) {
            if (my !== seqNo) return;
            result.removeAttribute('aria-busy');
            clear(result);
            result.dataset.decision = 'error';
            result.append(err.code === 'invalid_policy' || err.code === 'invalid_field'
                ? notice(t('pol.s.invalid', { msg: err.message }), 'warn') : errorView(err));
            return;
        }
        if (my !== seqNo) return;
        result.removeAttribute('aria-busy');
        clear(result);
        const dec = d.decision || { action: 'allow' };
        result.dataset.decision = dec.action;
        result.dataset.policy = dec.policy || '';
        const target = dec.model || dec.group || dec.channel;
        result.append(h('div', { class: `decision decision-${dec.action}`, dataset: { decision: dec.action } },
            h('span', { class: 'muted' }, t('pol.s.decision'), ' '),
            badge(t(`pol.act.${dec.action}`), dec.action === 'allow' ? 'ok' : dec.action === 'block' ? 'error' : 'warn'),
            dec.policy ? h('span', {}, ' ', t('pol.s.by', { policy: dec.policy })) : null,
            dec.status ? h('div', {}, t('pol.s.status', { status: dec.status, message: dec.message || '' })) : null,
            target ? h('div', {}, t('pol.s.to', { target })) : null));
        if (d.redact) result.append(h('p', {}, t('pol.s.redact')));
        const subj = d.subject || {};
        result.append(h('p', { class: 'muted' }, t('pol.s.evaluated', { n: fmt.num(d.evaluated || 0), tokens: fmt.num(subj.prompt_tokens || 0) })));
        result.append(h('h3', {}, t('pol.s.hits')));
        result.append((d.hits || []).length ? dataTable('policy-hits', { rows: d.hits, columns: [
            { key: 'policy', label: t('pol.h.policy') },
            { key: 'matcher', label: t('pol.h.matcher') },
            { key: 'action', label: t('pol.h.action'), render: (x) => t(`pol.act.${x.action}`) },
            { key: 'shadow', label: t('pol.h.shadow'), render: (x) => yesNo(x.shadow) },
            { key: 'terminal', label: t('pol.h.terminal'), render: (x) => yesNo(x.terminal) },
            { key: 'excerpt', label: t('pol.h.excerpt'), render: (x) => x.excerpt || '' },
        ] }) : h('p', {}, t('pol.s.none')));
        const text = d.prompt_text || '';
        result.append(h('h3', {}, t('pol.s.text')));
        result.append(h('pre', { class: 'prompt-text', dataset: { sandbox: 'text' } }, highlighted(text, readOnly ? [] : spans(spec, text))));
    }
    const sandbox = h('section', { class: 'card sandbox', dataset: { sandbox: 'panel' }, attrs: { 'aria-labelledby': 'pol-sandbox-title' } },
        h('h2', { id: 'pol-sandbox-title' }, t('pol.sandbox')),
        h('p', { class: 'muted' }, t('pol.sandbox_help')),
        field(t('pol.s.route'), select('sandbox_route', sb.route, ROUTES.map((r) => ({ value: r, label: r })), (e) => { sb.route = e.target.value; schedule(); })),
        field(t('pol.s.model'), input('sandbox_model', sb.model, (e) => { sb.model = e.target.value; schedule(); })),
        field(t('pol.s.group'), input('sandbox_group', sb.group, (e) => { sb.group = e.target.value.trim(); schedule(); })),
        field(t('pol.s.prompt'), (() => {
            const ta = h('textarea', { name: 'prompt', rows: 5, placeholder: t('pol.s.placeholder'), dataset: { sandbox: 'prompt' } });
            ta.addEventListener('input', (e) => { sb.prompt = e.target.value; schedule(); });
            return ta;
        })()),
        result);

    // ---------------- the editor ----------------
    const changed = () => { jsonBox.value = jsonText(apiSpec()); schedule(); };
    const dis = readOnly ? { disabled: true } : {};
    const matchBox = h('div', { class: 'matchers' });
    function matcherRow(m, i) {
        const set = (k, v) => { if (v === '' || v === undefined || (Array.isArray(v) && !v.length && k !== 'values')) delete m[k]; else m[k] = v; changed(); };
        const pre = `match.${i}`;
        const parts = [];
        const txt = (k, label, conv = (x) => x) => parts.push(field(label, input(`${pre}.${k}`, Array.isArray(m[k]) ? list(m[k]) : m[k], (e) => set(k, conv(e.target.value)), 'text', dis)));
        const chk = (k, label) => parts.push(field(label, input(`${pre}.${k}`, !!m[k], (e) => set(k, e.target.checked || undefined), 'checkbox', dis)));
        const numf = (k, label) => parts.push(field(label, input(`${pre}.${k}`, m[k], (e) => set(k, e.target.value === '' ? undefined : Number(e.target.value)), 'number', dis)));
        switch (m.type) {
        case 'keywords': txt('values', t('pol.m.values'), toList); chk('word', t('pol.m.word')); break;
        case 'regex': txt('pattern', t('pol.m.pattern')); chk('case_insensitive', t('pol.m.case_insensitive')); break;
        case 'detector': txt('detectors', t('pol.m.detectors'), toList); break;
        case 'time': txt('days', t('pol.m.days'), toList); txt('from', t('pol.m.from')); txt('to', t('pol.m.to')); txt('utc_offset', t('pol.m.utc_offset')); break;
        case 'size': case 'tokens': numf('min', t('pol.m.min')); numf('max', t('pol.m.max')); break;
        default: txt('values', t('pol.m.values'), toList);
        }
        chk('negate', t('pol.m.negate'));
        const typeSel = select(`${pre}.type`, m.type, MATCHERS.map((x) => ({ value: x, label: t(`pol.type.${x}`) })), (e) => {
            const keep = { type: e.target.value };
            if (m.negate) keep.negate = true;
            if (m.name) keep.name = m.name;
            if (['keywords', 'model', 'route', 'ip', 'country'].includes(keep.type)) keep.values = Array.isArray(m.values) ? m.values : [];
            if (keep.type === 'detector') keep.detectors = [];
            if (keep.type === 'regex') keep.pattern = '';
            spec.match[i] = keep;
            drawMatchers();
            changed();
        });
        if (readOnly) typeSel.disabled = true;
        return h('fieldset', { class: 'matcher', dataset: { matcher: String(i) } },
            h('legend', {}, t('pol.matcher', { n: i + 1 })),
            field(t('pol.m.type'), typeSel), parts,
            readOnly ? null : button(t('pol.remove'), 'remove-matcher', () => { spec.match.splice(i, 1); drawMatchers(); changed(); }));
    }
    function drawMatchers() {
        clear(matchBox);
        spec.match.forEach((m, i) => matchBox.append(matcherRow(m, i)));
        if (!readOnly) matchBox.append(button(t('pol.add_matcher'), 'add-matcher', () => { spec.match.push({ type: 'keywords', values: [] }); drawMatchers(); changed(); }));
    }
    const actBox = h('div', { class: 'action-fields' });
    function drawAction() {
        clear(actBox);
        const a = spec.action;
        const set = (k, v) => { if (v === '' || v === undefined) delete a[k]; else a[k] = v; changed(); };
        const typeSel = select('action.type', a.type, ACTIONS.map((x) => ({ value: x, label: t(`pol.act.${x}`) })), (e) => {
            spec.action = { type: e.target.value };
            drawAction();
            changed();
        });
        if (readOnly) typeSel.disabled = true;
        actBox.append(field(t('pol.a.type'), typeSel));
        const txt = (k) => actBox.append(field(t(`pol.a.${k}`), input(`action.${k}`, a[k], (e) => set(k, e.target.value), 'text', dis)));
        if (a.type === 'block') {
            actBox.append(field(t('pol.a.status'), input('action.status', a.status, (e) => set('status', e.target.value === '' ? undefined : Number(e.target.value)), 'number', dis)));
            txt('message');
        } else if (a.type === 'downgrade') txt('model');
        else if (a.type === 'reroute') { txt('group'); txt('channel'); }
        else if (a.type === 'redact') txt('mask');
        else if (a.type === 'tag') txt('tag');
    }
    const top = (k, type = 'text', conv = (x) => x) => input(k, spec[k], (e) => {
        const v = type === 'checkbox' ? e.target.checked : conv(e.target.value);
        spec[k] = v;
        changed();
    }, type, dis);
    const scopeFields = SCOPES.map((k) => field(t(`pol.scope.${k}`), input(`scope.${k}`, list(spec.scope[k]), (e) => {
        spec.scope[k] = k === 'users' || k === 'keys' ? nums(e.target.value) : toList(e.target.value);
        changed();
    }, 'text', dis)));
    const jsonBox = h('textarea', { name: 'spec_json', rows: 10, readOnly: true, class: 'json' });
    const err = h('div', { class: 'form-error', attrs: { role: 'alert' }, hidden: true });
    async function save() {
        err.hidden = true;
        clear(err);
        try {
            const body = apiSpec();
            let saved;
            if (p.id) {
                if (!body.scope) body.scope = null;
                if (!body.description) body.description = null;
                saved = (await api('PATCH', `/api/policies/${p.id}`, { body })).data;
            } else {
                saved = (await api('POST', '/api/policies', { body })).data;
            }
            toast(t('pol.saved'));
            p = saved;
            if (!key) ctx.go('policies', { edit: saved.id });
        } catch (e) {
            err.append(e.param ? `${e.param}: ${e.message}` : e.message);
            err.hidden = false;
        }
    }
    const editorEl = h('form', { class: 'card form policy-editor', dataset: { form: 'policy' }, attrs: { novalidate: true },
        on: { submit: (e) => { e.preventDefault(); if (!readOnly) save(); } } },
        err,
        h('div', { class: 'fields' },
            field(t('pol.f.name'), top('name'), t('pol.h.name')),
            field(t('pol.f.description'), top('description')),
            field(t('pol.f.priority'), top('priority', 'number', (v) => (v === '' ? 0 : Number(v))), t('pol.h.priority')),
            field(t('pol.f.stage'), (() => { const s = select('stage', spec.stage || 'request', STAGES.map((x) => ({ value: x, label: t(`pol.stage.${x}`) })), (e) => { spec.stage = e.target.value; changed(); }); s.disabled = readOnly; return s; })()),
            field(t('pol.f.enabled'), top('enabled', 'checkbox')),
            field(t('pol.f.shadow'), top('shadow', 'checkbox'))),
        h('fieldset', { class: 'scope' }, h('legend', {}, t('pol.scope')), h('p', { class: 'help' }, t('pol.h.scope')), scopeFields),
        h('fieldset', { class: 'match' }, h('legend', {}, t('pol.match')), matchBox),
        h('fieldset', { class: 'action' }, h('legend', {}, t('pol.action')), actBox),
        h('details', {}, h('summary', {}, t('pol.json')), field(t('pol.json'), jsonBox)),
        readOnly ? null : h('div', { class: 'form-actions' },
            h('button', { type: 'submit', class: 'btn btn-primary', dataset: { action: 'save' } }, t('pol.save'))));
    drawMatchers();
    drawAction();
    jsonBox.value = jsonText(apiSpec());
    mount(root, pageHead(key ? t('pol.edit', { name: p.name }) : t('pol.new'), button(t('pol.back'), 'back', () => ctx.go('policies'))),
                p.source === 'config' ? notice(t('pol.config'), 'warn') : (readOnly ? notice(t('bui.readonly')) : null),
                h('div', { class: 'grid policy-grid' }, editorEl, sandbox));
    runTest();
}
