// Users (users.manage): the staff list, a form for a new user, and per
// user Edit (name, e-mail, role, active), Reset password and Deactivate
// (DELETE deactivates; the server refuses the last active super-admin
// with 409, shown as it says).  Roles come from GET /api/v1/roles when
// the caller may read them; otherwise the role is typed.
import { h, clear, field, fmtTime, errorText, dialog, showErrors, confirmAction } from '/js/dom.js';
import { qs } from '/js/api.js';

// Field errors of the envelope next to their controls; the whole error
// in the form's alert line.
const BUILTIN_ROLES = ['SUPER_ADMIN', 'ADMIN', 'AGENT'];

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let cursor = null;
  let roles = [];		// role names
  let query = '';

  const status = h('p', { class: 'status-line error', role: 'alert' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'more-btn', hidden: true, on: { click: () => load(false) } }, 'Load more');
  const newBtn = h('button', { type: 'button', class: 'primary', 'aria-expanded': 'false', 'aria-controls': 'new-user-form',
    on: { click: () => toggleForm() } }, 'New user');
  const search = h('input', { name: 'q', type: 'search', placeholder: 'username, name or e-mail' });
  const searchForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Find users',
    on: { submit: (e) => { e.preventDefault(); query = search.value.trim(); load(true); } } },
  field('Search', search), h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Search')));

  // ---- the new-user form
  const nf = {
    username: h('input', { name: 'username', autocomplete: 'off', autocapitalize: 'none', required: true, maxlength: 150 }),
    password: h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }),
    name: h('input', { name: 'name', autocomplete: 'off', maxlength: 200 }),
    email: h('input', { name: 'email', type: 'email', autocomplete: 'off', maxlength: 254 }),
    role: roleControl('role'),
  };
  const nfAlert = h('p', { class: 'error', role: 'alert' });
  const nfSubmit = h('button', { type: 'submit', class: 'primary' }, 'Create user');
  const form = h('form', { id: 'new-user-form', class: 'card', hidden: true, 'aria-labelledby': 'new-user-title',
    on: { submit: createUser } },
  h('h2', { id: 'new-user-title' }, 'New user'),
  h('div', { class: 'row' }, field('Username', nf.username), field('Password', nf.password, 'At least 10 characters, not the username')),
  h('div', { class: 'row' }, field('Name', nf.name), field('Email', nf.email), field('Role', nf.role)),
  nfAlert,
  h('div', { class: 'actions' }, nfSubmit, h('button', { type: 'button', on: { click: () => toggleForm(false) } }, 'Cancel')));

  root.append(h('div', { class: 'admin users' },
    h('div', { class: 'admin-head' }, h('h1', null, 'Users'), h('div', { class: 'actions' }, newBtn)),
    form, searchForm, status,
    h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Staff users' },
      h('thead', null, h('tr', null,
        ['Username', 'Name', 'Email', 'Role', 'Active', 'Last sign-in', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    more));

  // A <select> of roles when they can be read, else a text input.
  function roleControl(name, current) {
    if (ctx.can('roles.manage')) {
      const sel = h('select', { name, required: true });
      fillRoles(sel, current);
      return sel;
    }
    return h('input', { name, required: true, list: 'known-roles', value: current || 'AGENT', autocapitalize: 'characters' });
  }

  function fillRoles(sel, current) {
    const names = roles.length ? roles : [current || 'AGENT'];
    const want = current || (names.includes('AGENT') ? 'AGENT' : names[0]);
    clear(sel);
    for (const r of names) sel.append(h('option', { value: r, selected: r === want }, r));
    if (current && !names.includes(current)) sel.append(h('option', { value: current, selected: true }, current));
  }

  function toggleForm(open = form.hidden) {
    form.hidden = !open;
    newBtn.setAttribute('aria-expanded', String(open));
    if (open) {
      showErrors(form, nfAlert, null);
      nf.username.focus();
    } else {
      newBtn.focus();
    }
  }

  async function createUser(e) {
    e.preventDefault();
    showErrors(form, nfAlert, null);
    nfSubmit.disabled = true;
    const body = { username: nf.username.value.trim(), password: nf.password.value, role: nf.role.value.trim() };
    if (nf.name.value.trim()) body.name = nf.name.value.trim();
    if (nf.email.value.trim()) body.email = nf.email.value.trim();
    try {
      const u = await api.post('/api/v1/users', body);
      if (!alive) return;
      ctx.toast(`User ${u.username} created`);
      form.reset();
      if (nf.role.tagName === 'SELECT') fillRoles(nf.role);
      toggleForm(false);
      tbody.prepend(row(u));
      tbody.querySelector('.empty-row')?.remove();
    } catch (err) {
      if (alive) showErrors(form, nfAlert, err);
    } finally {
      nfSubmit.disabled = false;
    }
  }

  // ---- the list
  function row(u) {
    const tr = h('tr', { class: u.is_active ? '' : 'inactive', 'data-user-id': u.id, 'data-username': u.username },
      h('th', { scope: 'row' }, u.username),
      h('td', null, u.name || ''),
      h('td', null, u.email || ''),
      h('td', null, u.role),
      h('td', null, h('span', { class: `pill ${u.is_active ? 'ok' : 'bad'}`, 'data-testid': 'user-active' }, u.is_active ? 'Active' : 'Inactive')),
      h('td', { class: 'nowrap' }, u.last_login_at ? h('time', { datetime: u.last_login_at, title: u.last_login_at }, fmtTime(u.last_login_at)) : '—'),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', 'aria-label': `Edit ${u.username}`, on: { click: () => edit(u, tr) } }, 'Edit'),
        h('button', { type: 'button', 'aria-label': `Reset password of ${u.username}`, on: { click: () => resetPassword(u) } }, 'Reset password'),
        u.is_active
          ? h('button', { type: 'button', class: 'danger', 'aria-label': `Deactivate ${u.username}`, on: { click: () => deactivate(u, tr) } }, 'Deactivate')
          : h('button', { type: 'button', 'aria-label': `Reactivate ${u.username}`, on: { click: () => reactivate(u, tr) } }, 'Reactivate')));
    return tr;
  }

  function replace(tr, u) {
    const fresh = row(u);
    tr.replaceWith(fresh);
    return fresh;
  }

  async function load(reset) {
    if (reset) cursor = null;
    more.disabled = true;
    status.textContent = '';
    try {
      const page = await api.get(`/api/v1/users${qs({ q: query, cursor, limit: 50 })}`);
      if (!alive) return;
      if (reset) clear(tbody);
      for (const u of page.data) tbody.append(row(u));
      if (reset && page.data.length === 0) {
        tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: 7 }, query ? 'No user matches.' : 'No users yet.')));
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      if (alive) status.textContent = `Cannot load the users: ${errorText(err)}`;
    } finally {
      more.disabled = false;
    }
  }

  // ---- per-user actions
  function edit(u, tr) {
    const c = {
      name: h('input', { name: 'name', value: u.name || '', maxlength: 200 }),
      email: h('input', { name: 'email', type: 'email', value: u.email || '', maxlength: 254 }),
      role: roleControl('role', u.role),
      is_active: h('input', { name: 'is_active', type: 'checkbox', checked: !!u.is_active, id: `active-${u.id}` }),
    };
    const alertEl = h('p', { class: 'error', role: 'alert' });
    const f = h('form', { class: 'edit-user', on: { submit: (e) => e.preventDefault() } },
      field('Name', c.name), field('Email', c.email), field('Role', c.role),
      h('div', { class: 'check' }, c.is_active, h('label', { for: c.is_active.id }, 'Active')),
      alertEl);
    dialog(`Edit ${u.username}`, f, [{ label: 'Save', class: 'primary', onClick: async () => {
      showErrors(f, alertEl, null);
      const body = { name: c.name.value.trim(), email: c.email.value.trim() || null, is_active: c.is_active.checked };
      if (c.role.value.trim() && c.role.value.trim() !== u.role) body.role = c.role.value.trim();
      try {
        const fresh = await api.patch(`/api/v1/users/${u.id}`, body);
        if (alive && tr.isConnected) replace(tr, fresh);
        ctx.toast(`${fresh.username} saved`);
        return true;
      } catch (err) {
        showErrors(f, alertEl, err);
        return false;
      }
    } }]);
    c.name.focus();
  }

  function resetPassword(u) {
    const pw = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
    const alertEl = h('p', { class: 'error', role: 'alert' });
    const f = h('form', { on: { submit: (e) => e.preventDefault() } },
      h('p', null, `${u.username} will be signed out everywhere and must sign in with the new password.`),
      field('New password', pw, 'At least 10 characters, not the username'), alertEl);
    dialog(`Reset the password of ${u.username}`, f, [{ label: 'Set password', class: 'primary', onClick: async () => {
      showErrors(f, alertEl, null);
      try {
        await api.patch(`/api/v1/users/${u.id}`, { password: pw.value });
        ctx.toast(`The password of ${u.username} was reset`);
        return true;
      } catch (err) {
        showErrors(f, alertEl, err);
        return false;
      }
    } }]);
    pw.focus();
  }

  function deactivate(u, tr) {
    confirmAction(`Deactivate ${u.username}?`,
      `${u.username} will be signed out at once and can no longer sign in. The account and its history stay; it can be reactivated later.`,
      'Deactivate', async () => {
        const fresh = await api.del(`/api/v1/users/${u.id}`);
        if (alive && tr.isConnected) replace(tr, fresh);
        ctx.toast(`${u.username} deactivated`);
      }, { 'data-testid': 'deactivate-error' });
  }

  async function reactivate(u, tr) {
    try {
      const fresh = await api.patch(`/api/v1/users/${u.id}`, { is_active: true });
      if (alive && tr.isConnected) replace(tr, fresh);
      ctx.toast(`${u.username} reactivated`);
    } catch (err) {
      if (alive) status.textContent = errorText(err);
    }
  }

  // ---- start
  (async () => {
    if (ctx.can('roles.manage')) {
      try {
        const r = await api.get('/api/v1/roles');
        roles = r.data.map((x) => x.name);
      } catch { roles = []; }
      if (!alive) return;
      fillRoles(nf.role);
    } else {
      roles = BUILTIN_ROLES;
      root.append(h('datalist', { id: 'known-roles' }, roles.map((r) => h('option', { value: r }))));
    }
  })();
  load(true);

  return () => { alive = false; };
}
