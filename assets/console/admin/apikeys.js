// API keys (api_keys.manage): the keys (never their secrets), a form for
// a new one (name, scopes, optional expiry) and Revoke.  The secret the
// server returns at creation is shown once, in this screen's DOM only:
// it is not kept in any variable that outlives the screen, nor in
// storage, and leaving the screen forgets it.
import { h, clear, field, fmtTime, errorText, showErrors, confirmAction } from '/js/dom.js';
import { qs } from '/js/api.js';
import { permissionPicker } from './roles.js';

// datetime-local (the user's local time) -> RFC 3339 UTC, whole seconds.
export function localToRfc3339(value) {
  if (!value) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return undefined;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function keyState(k) {
  if (k.revoked_at) return { text: 'Revoked', cls: 'bad' };
  if (k.expires_at && Date.parse(k.expires_at) <= Date.now()) return { text: 'Expired', cls: 'warn' };
  return { text: 'Active', cls: 'ok' };
}

const when = (iso) => (iso ? h('time', { datetime: iso, title: iso }, fmtTime(iso)) : '—');

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let cursor = null;
  let perms = [];

  const status = h('p', { class: 'status-line error', role: 'alert' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'more-btn', hidden: true, on: { click: () => load(false) } }, 'Load more');
  const reveal = h('div', { 'aria-live': 'polite' });
  const formBox = h('div');
  const newBtn = h('button', { type: 'button', class: 'primary', on: { click: () => openForm() } }, 'New API key');

  root.append(h('div', { class: 'admin apikeys' },
    h('div', { class: 'admin-head' }, h('h1', null, 'API keys'), h('div', { class: 'actions' }, newBtn)),
    h('p', { class: 'muted' }, 'Keys let integrations call the API with the X-API-Key header. A key carries only the scopes given here and can be revoked at any time.'),
    reveal, formBox, status,
    h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'API keys' },
      h('thead', null, h('tr', null,
        ['Name', 'Prefix', 'Scopes', 'Expires', 'Last used', 'Created', 'State', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    more));

  function row(k) {
    const st = keyState(k);
    return h('tr', { 'data-key-id': k.id, 'data-key-name': k.name },
      h('th', { scope: 'row' }, k.name),
      h('td', null, h('code', null, `sbk_${k.prefix}_…`)),
      h('td', null, k.scopes?.length ? h('div', { class: 'perm-list' }, k.scopes.map((s) => h('code', null, s))) : h('span', { class: 'muted' }, 'none')),
      h('td', { class: 'nowrap' }, k.expires_at ? when(k.expires_at) : 'Never'),
      h('td', { class: 'nowrap' }, when(k.last_used_at)),
      h('td', { class: 'nowrap' }, when(k.created_at)),
      h('td', null, h('span', { class: `pill ${st.cls}`, 'data-testid': 'key-state' }, st.text),
        k.revoked_at ? h('small', { class: 'hint' }, fmtTime(k.revoked_at)) : null),
      h('td', { class: 'actions-cell' }, k.revoked_at ? null
        : h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${k.name}`, on: { click: () => revoke(k) } }, 'Revoke')));
  }

  async function load(reset = true) {
    if (reset) cursor = null;
    more.disabled = true;
    status.textContent = '';
    try {
      const page = await api.get(`/api/v1/api-keys${qs({ cursor, limit: 50 })}`);
      if (!alive) return;
      if (reset) clear(tbody);
      for (const k of page.data) tbody.append(row(k));
      if (reset && page.data.length === 0) tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: 8 }, 'No API keys yet.')));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      if (alive) status.textContent = `Cannot load the API keys: ${errorText(err)}`;
    } finally {
      more.disabled = false;
    }
  }

  function closeForm() {
    clear(formBox);
    newBtn.disabled = false;
  }

  async function openForm() {
    newBtn.disabled = true;
    await permsReady;
    if (!alive) return;
    clear(formBox);
    clear(reveal);
    const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off' });
    const expires = h('input', { name: 'expires_at', type: 'datetime-local' });
    const held = perms.filter((p) => ctx.can(p.name));
    const picker = permissionPicker(held, { name: 'scopes', idPrefix: 'scope' });
    const alertEl = h('p', { class: 'error', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Create key');
    const form = h('form', { class: 'card', 'aria-labelledby': 'new-key-title', on: { submit: async (e) => {
      e.preventDefault();
      showErrors(form, alertEl, null);
      const exp = localToRfc3339(expires.value);
      if (exp === undefined) {
        showErrors(form, alertEl, { message: 'Invalid expiry', errors: [{ field: 'expires_at', message: 'not a valid date and time' }] });
        return;
      }
      const body = { name: name.value.trim(), scopes: picker.selected() };
      if (exp) body.expires_at = exp;
      save.disabled = true;
      try {
        const created = await api.post('/api/v1/api-keys', body);
        if (!alive) return;
        closeForm();
        showOnce(created);
        load(true);
      } catch (err) {
        if (alive) showErrors(form, alertEl, err);
      } finally {
        save.disabled = false;
      }
    } } },
    h('h2', { id: 'new-key-title' }, 'New API key'),
    h('div', { class: 'row' }, field('Name', name, 'Who or what uses it, e.g. “CRM sync”'),
      field('Expires at', expires, 'Optional, in your local time; empty means it never expires')),
    h('h3', null, 'Scopes'),
    held.length ? picker.el : h('p', { class: 'muted' }, 'You hold no permission a key could carry.'),
    alertEl,
    h('div', { class: 'actions' }, save, h('button', { type: 'button', on: { click: closeForm } }, 'Cancel')));
    formBox.append(form);
    name.focus();
  }

  // The secret, once.  Only the DOM holds it; "Done" or leaving the
  // screen removes it.
  function showOnce(created) {
    clear(reveal);
    const secret = h('code', { class: 'secret', 'data-testid': 'new-api-key', tabindex: '0', 'aria-label': 'The new API key' }, created.key);
    const copyNote = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', { type: 'button', on: { click: async () => {
      try {
        await navigator.clipboard.writeText(secret.textContent);
        copyNote.textContent = 'Copied.';
      } catch {
        // No clipboard (permissions, insecure context): select it instead.
        const range = document.createRange();
        range.selectNodeContents(secret);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        copyNote.textContent = 'Copying is not allowed here: the key is selected, copy it with Ctrl+C / ⌘C.';
      }
    } } }, 'Copy');
    const done = h('button', { type: 'button', on: { click: () => { clear(reveal); newBtn.focus(); } } }, 'Done');
    reveal.append(h('section', { class: 'card key-once', 'aria-labelledby': 'key-once-title' },
      h('h2', { id: 'key-once-title' }, `API key “${created.name}” created`),
      h('p', null, h('strong', null, 'This key is shown only once.'), ' Copy it now and store it somewhere safe: it cannot be shown again. If it is lost, revoke it and create another.'),
      secret,
      h('div', { class: 'actions' }, copy, done, copyNote)));
    secret.focus();
  }

  function revoke(k) {
    confirmAction(`Revoke ${k.name}?`, `Requests with the key sbk_${k.prefix}_… are refused from now on. This cannot be undone.`,
      'Revoke', async () => {
        await api.del(`/api/v1/api-keys/${k.id}`);
        ctx.toast(`${k.name} revoked`);
        if (alive) load(true);
      });
  }

  const permsReady = (async () => {
    try {
      perms = (await api.get('/api/v1/permissions')).data;
    } catch (err) {
      if (alive) status.textContent = `Cannot load the permissions: ${errorText(err)}`;
    }
  })();
  load(true);

  return () => {
    alive = false;
    clear(reveal);
  };
}
