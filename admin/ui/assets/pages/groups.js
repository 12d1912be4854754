// Groups: price ratios that users, keys and channels refer to by name.
import { h } from '../core/dom.js';
import { t } from '../core/i18n.js';
import { api } from '../core/api.js';
import { fmt, pageHeader, button, form, modal, confirmDialog, toast } from '../core/ui.js';
import { listView } from '../core/list.js';

const en = {
    'nav.groups': 'Groups',
    'groups.title': 'Groups',
    'groups.create': 'New group',
    'groups.new': 'New group',
    'groups.edit': 'Edit group {name}',
    'groups.f.q': 'Name contains',
    'groups.name': 'Name',
    'groups.name.help': 'Letters, digits, “_”, “.”, “-”. Groups cannot be renamed.',
    'groups.ratio': 'Price ratio',
    'groups.ratio.help': '1 = list price; 0.8 = 20% off.',
    'groups.description': 'Description',
    'groups.col.name': 'Name',
    'groups.col.ratio': 'Price ratio',
    'groups.col.description': 'Description',
    'groups.col.created': 'Created',
    'groups.col.actions': 'Actions',
    'groups.editbtn': 'Edit',
    'groups.delete': 'Delete',
    'groups.delete.confirm': 'Delete group “{name}”?',
    'groups.deleted': 'Group deleted.',
    'groups.saved': 'Group saved.',
};
const zh = {
    'nav.groups': '分组',
    'groups.title': '分组',
    'groups.create': '新建分组',
    'groups.new': '新建分组',
    'groups.edit': '编辑分组 {name}',
    'groups.f.q': '名称包含',
    'groups.name': '名称',
    'groups.name.help': '字母、数字、“_”、“.”、“-”。分组不能改名。',
    'groups.ratio': '价格倍率',
    'groups.ratio.help': '1 = 原价；0.8 = 八折。',
    'groups.description': '描述',
    'groups.col.name': '名称',
    'groups.col.ratio': '价格倍率',
    'groups.col.description': '描述',
    'groups.col.created': '创建时间',
    'groups.col.actions': '操作',
    'groups.editbtn': '编辑',
    'groups.delete': '删除',
    'groups.delete.confirm': '删除分组“{name}”？',
    'groups.deleted': '分组已删除。',
    'groups.saved': '分组已保存。',
};

function openEditor(g, reload) {
    const editing = !!g;
    g = g || {};
    const fields = [
        !editing && { name: 'name', label: t('groups.name'), required: true, help: t('groups.name.help') },
        { name: 'ratio', label: t('groups.ratio'), type: 'number', min: 0, step: 'any', required: true,
            value: g.ratio_ppm !== undefined ? g.ratio_ppm / 1e6 : 1, help: t('groups.ratio.help') },
        { name: 'description', label: t('groups.description'), value: g.description || '', full: true },
    ].filter(Boolean);
    const dlg = modal({
        title: editing ? t('groups.edit', { name: g.name }) : t('groups.new'),
        body: form({
            id: 'group', action: editing ? 'save' : 'create', fields,
            onCancel: () => dlg.close(),
            onSubmit: async (v) => {
                const b = { ratio_ppm: Math.round(v.ratio * 1e6), description: v.description };
                try {
                    if (editing) await api('PATCH', `/api/groups/${encodeURIComponent(g.name)}`, { body: b });
                    else await api('POST', '/api/groups', { body: { name: v.name, ...b } });
                } catch (err) {
                    if (err.param === 'ratio_ppm') err.param = 'ratio';
                    throw err;
                }
                toast(t('groups.saved'));
                dlg.close();
                reload();
            },
        }),
    });
}

export default {
    id: 'groups',
    nav: 'nav.groups',
    section: 'ops',
    roles: ['root', 'admin'],
    strings: { en, 'zh-CN': zh },

    async render(root, ctx) {
        let lv;
        const reload = () => lv.reload();
        lv = listView({
            ctx, page: 'groups', path: '/api/groups', id: 'groups',
            filters: [{ name: 'q', label: t('groups.f.q') }],
            columns: [
                { key: 'name', label: t('groups.col.name'), render: (g) => h('strong', null, g.name) },
                { key: 'ratio', label: t('groups.col.ratio'), align: 'right',
                    render: (g) => fmt.num(g.ratio_ppm / 1e6) },
                { key: 'description', label: t('groups.col.description') },
                { key: 'created_at', label: t('groups.col.created'), render: (g) => fmt.date(g.created_at) },
                { key: 'actions', label: t('groups.col.actions'), render: (g) => h('div', { class: 'cell-actions' },
                    button(t('groups.editbtn'), 'edit', () => openEditor(g, reload), 'small'),
                    g.name !== 'default' ? button(t('groups.delete'), 'delete', async () => {
                        if (!await confirmDialog(t('groups.delete.confirm', { name: g.name }))) return;
                        try {
                            await api('DELETE', `/api/groups/${encodeURIComponent(g.name)}`);
                            toast(t('groups.deleted'));
                            reload();
                        } catch (err) { toast(err.message, 'error'); }
                    }, 'small danger') : null) },
            ],
        });
        root.append(pageHeader(t('groups.title'), button(t('groups.create'), 'create', () => openEditor(null, reload), 'primary')), lv);
    },
};
