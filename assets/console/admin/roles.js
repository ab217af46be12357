// Roles (roles.manage): every role with its permissions, and an editor
// (Name, Description, one checkbox per registered permission grouped by
// the plugin that registered it).  SUPER_ADMIN holds everything and is
// not editable; the built-ins ADMIN and AGENT keep their names and cannot
// be deleted; a role still assigned to users cannot be deleted either.
import { h, clear, field, errorText, showErrors, confirmAction } from '/js/dom.js';

// Permissions grouped by plugin, host first.
export function groupPermissions(perms) {
  const groups = new Map();
  for (const p of perms) {
    const g = p.plugin || 'host';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(p);
  }
  return [...groups.entries()].sort(([a], [b]) => (a === 'host' ? -1 : b === 'host' ? 1 : a.localeCompare(b)));
}

// One fieldset per plugin, one labelled checkbox per permission, its
// description as the hint.  Returns {el, selected(), set(names)}.
export function permissionPicker(perms, { name = 'permissions', idPrefix = 'perm', checked = [], disabled = () => false } = {}) {
  const boxes = [];
  const el = h('div', { class: 'perm-groups' }, groupPermissions(perms).map(([plugin, list]) =>
    h('fieldset', null, h('legend', null, plugin === 'host' ? 'Host' : plugin),
      list.map((p) => {
        const id = `${idPrefix}-${p.name.replace(/[^a-z0-9]/gi, '-')}`;
        const box = h('input', { type: 'checkbox', name, value: p.name, id, checked: checked.includes(p.name),
          disabled: disabled(p.name), 'aria-describedby': p.description ? `${id}-hint` : null });
        boxes.push(box);
        return h('div', { class: 'check' }, box, h('div', null, h('label', { for: id }, p.name),
          p.description ? h('small', { class: 'hint', id: `${id}-hint` }, p.description) : null));
      }))));
  return {
    el,
    selected: () => boxes.filter((b) => b.checked).map((b) => b.value),
  };
}

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let perms = [];

  const status = h('p', { class: 'status-line error', role: 'alert' });
  const tbody = h('tbody');
  const editorBox = h('div');
  const newBtn = h('button', { type: 'button', class: 'primary', on: { click: () => openEditor(null) } }, 'New role');

  root.append(h('div', { class: 'admin roles' },
    h('div', { class: 'admin-head' }, h('h1', null, 'Roles'), h('div', { class: 'actions' }, newBtn)),
    editorBox, status,
    h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Roles' },
      h('thead', null, h('tr', null, ['Name', 'Permissions', 'Users', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody))));

  function row(r) {
    const sa = r.name === 'SUPER_ADMIN';
    const delWhy = r.builtin ? 'Built-in roles cannot be deleted' : r.users > 0 ? `Assigned to ${r.users} user(s)` : null;
    return h('tr', { 'data-role': r.name },
      h('th', { scope: 'row' }, h('div', null, r.name, ' ', r.builtin ? h('span', { class: 'pill' }, 'built-in') : null),
        r.description ? h('small', { class: 'hint' }, r.description) : null),
      h('td', null, sa ? h('span', { class: 'muted' }, 'Every permission, including those plugins add later')
        : r.permissions.length ? h('div', { class: 'perm-list' }, r.permissions.map((p) => h('code', null, p)))
          : h('span', { class: 'muted' }, 'None')),
      h('td', { class: 'num' }, String(r.users ?? 0)),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', disabled: sa, title: sa ? 'SUPER_ADMIN cannot be changed' : null,
          'aria-label': `Edit ${r.name}`, on: { click: () => openEditor(r) } }, 'Edit'),
        h('button', { type: 'button', class: 'danger', disabled: !!delWhy, title: delWhy,
          'aria-label': `Delete ${r.name}`, on: { click: () => remove(r) } }, 'Delete'),
        delWhy && !r.builtin ? h('small', { class: 'hint' }, delWhy) : null));
  }

  async function load() {
    status.textContent = '';
    try {
      const r = await api.get('/api/v1/roles');
      if (!alive) return;
      clear(tbody);
      for (const role of r.data) tbody.append(row(role));
    } catch (err) {
      if (alive) status.textContent = `Cannot load the roles: ${errorText(err)}`;
    }
  }

  function closeEditor() {
    clear(editorBox);
    newBtn.disabled = false;
    newBtn.focus();
  }

  async function openEditor(role) {
    newBtn.disabled = true;
    await permsReady;
    if (!alive) return;
    clear(editorBox);
    const name = h('input', { name: 'name', required: true, maxlength: 64, value: role?.name || '',
      disabled: !!role?.builtin, autocapitalize: 'characters' });
    const desc = h('input', { name: 'description', maxlength: 500, value: role?.description || '' });
    // Only what the caller holds may be granted (the server checks too).
    const picker = permissionPicker(perms, { idPrefix: 'role-perm', checked: role?.permissions || [], disabled: (p) => !ctx.can(p) });
    const alertEl = h('p', { class: 'error', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'primary' }, role ? 'Save role' : 'Create role');
    const title = role ? `Edit role ${role.name}` : 'New role';
    const form = h('form', { class: 'card role-editor', 'aria-labelledby': 'role-editor-title', on: { submit: async (e) => {
      e.preventDefault();
      showErrors(form, alertEl, null);
      save.disabled = true;
      const body = { permissions: picker.selected(), description: desc.value.trim() };
      if (!role?.builtin) body.name = name.value.trim();
      try {
        const saved = role ? await api.patch(`/api/v1/roles/${role.id}`, body) : await api.post('/api/v1/roles', body);
        if (!alive) return;
        ctx.toast(`Role ${saved.name} ${role ? 'saved' : 'created'}`);
        closeEditor();
        await load();
      } catch (err) {
        if (alive) showErrors(form, alertEl, err);
      } finally {
        save.disabled = false;
      }
    } } },
    h('h2', { id: 'role-editor-title' }, title),
    h('div', { class: 'row' },
      field('Name', name, role?.builtin ? 'Built-in roles keep their names' : 'Letters, digits and _, starting with a letter'),
      field('Description', desc)),
    h('h3', null, 'Permissions'),
    perms.length ? picker.el : h('p', { class: 'muted' }, 'No permissions are registered.'),
    alertEl,
    h('div', { class: 'actions' }, save, h('button', { type: 'button', on: { click: closeEditor } }, 'Cancel')));
    editorBox.append(form);
    (role?.builtin ? desc : name).focus();
  }

  function remove(r) {
    confirmAction(`Delete role ${r.name}?`, 'The role is removed for good. No user holds it.', 'Delete', async () => {
      await api.del(`/api/v1/roles/${r.id}`);
      ctx.toast(`Role ${r.name} deleted`);
      if (alive) load();
    });
  }

  const permsReady = (async () => {
    try {
      perms = (await api.get('/api/v1/permissions')).data;
    } catch (err) {
      if (alive) status.textContent = `Cannot load the permissions: ${errorText(err)}`;
    }
  })();
  load();

  return () => { alive = false; };
}
