// Notifications (#/inbox): the caller's in-app inbox, newest first, live
// over user:{me} (notifications.created / notifications.read).  Every
// change of read state tells the shell's bell (sb:inbox-changed).
import { h, clear, fmtTime, errorText } from '/js/dom.js';
import { qs } from '/js/api.js';

const PAGE = 50;
let unreadOnly = false;		// remembered across visits

const inboxChanged = () => window.dispatchEvent(new Event('sb:inbox-changed'));

export function mount(root, ctx) {
  const { api } = ctx;
  const me = ctx.user.id;
  let alive = true;
  let cursor = null;
  let seq = 0;
  const rows = new Map();	// id -> {entry, li}

  const only = h('input', { type: 'checkbox', name: 'unread', checked: unreadOnly,
    on: { change: () => { unreadOnly = only.checked; load(true); } } });
  const allBtn = h('button', { type: 'button', on: { click: markAll } }, 'Mark all read');
  const list = h('ul', { class: 'inbox-list', 'data-testid': 'inbox-list', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const summary = h('p', { class: 'muted', role: 'status', 'data-testid': 'inbox-summary' });
  const errorEl = h('p', { class: 'error', role: 'alert' });
  const more = h('button', { type: 'button', hidden: true, on: { click: () => load(false) } }, 'Load more');

  root.append(h('section', { class: 'inbox-screen', 'aria-labelledby': 'inbox-title' },
    h('h1', { id: 'inbox-title' }, 'Notifications'),
    h('div', { class: 'row inbox-tools' },
      h('label', { class: 'check' }, only, ' Unread only'),
      h('div', { class: 'spacer' }), allBtn),
    summary, errorEl, list, more));

  function queryIdOf(n) {
    const d = n.data || {};
    const id = d.query_id ?? (n.event?.startsWith('concierge.query.') ? d.id : null);
    return id === null || id === undefined || id === '' ? null : Number(id);
  }

  function item(n) {
    const qid = queryIdOf(n);
    const markBtn = n.read ? null : h('button', { type: 'button', class: 'mark-read', 'aria-label': `Mark read: ${n.title}`,
      on: { click: () => markOne(n.id) } }, 'Mark read');
    return h('li', { class: `inbox-item card${n.read ? ' read' : ' unread'}`, 'data-testid': 'notification',
      'data-id': String(n.id), 'data-event': n.event || '', 'data-read': String(!!n.read) },
    h('div', { class: 'inbox-main' },
      h('h2', { class: 'inbox-title' }, n.read ? null : h('span', { class: 'dot', 'aria-hidden': 'true' }),
        n.read ? null : h('span', { class: 'sr-only' }, 'Unread: '), n.title || n.event),
      n.body ? h('p', { class: 'inbox-body' }, n.body) : null,
      h('p', { class: 'muted inbox-meta' }, h('time', { datetime: n.created_at }, fmtTime(n.created_at)),
        qid ? [' · ', h('a', { href: `#/query/${qid}`, on: { click: () => { if (!n.read) markOne(n.id, true); } } }, `Open query #${qid}`)] : null)),
    markBtn ? h('div', { class: 'inbox-actions' }, markBtn) : null);
  }

  function put(n, { top = false } = {}) {
    if (unreadOnly && n.read) {
      const old = rows.get(n.id);
      if (old) { old.li.remove(); rows.delete(n.id); }
      return;
    }
    const li = item(n);
    const old = rows.get(n.id);
    if (old) {
      // Keep focus near where it was when a button disappears.
      const hadFocus = old.li.contains(document.activeElement);
      old.li.replaceWith(li);
      if (hadFocus) li.querySelector('a, button')?.focus();
    } else if (top) {
      list.prepend(li);
    } else {
      list.append(li);
    }
    rows.set(n.id, { entry: n, li });
  }

  function updateSummary() {
    const unread = [...rows.values()].filter((r) => !r.entry.read).length;
    summary.textContent = rows.size === 0
      ? (unreadOnly ? 'No unread notifications.' : 'No notifications yet.')
      : `${rows.size}${cursor ? '+' : ''} shown, ${unread} unread`;
    allBtn.disabled = unread === 0 && !cursor;
  }

  async function load(reset) {
    const mySeq = ++seq;
    if (reset) cursor = null;
    errorEl.textContent = '';
    more.disabled = true;
    list.setAttribute('aria-busy', 'true');
    try {
      const r = await api.get(`/api/v1/notifications${qs({ unread: unreadOnly ? 'true' : null, limit: PAGE, cursor })}`);
      if (!alive || mySeq !== seq) return;
      if (reset) { clear(list); rows.clear(); }
      for (const n of r.data || []) if (!rows.has(n.id)) put(n);
      cursor = r.next_cursor ?? null;
      more.hidden = !cursor;
    } catch (e) {
      if (!alive || mySeq !== seq) return;
      errorEl.textContent = `The notifications did not load: ${errorText(e)}`;
    } finally {
      if (alive && mySeq === seq) {
        more.disabled = false;
        list.removeAttribute('aria-busy');
        updateSummary();
      }
    }
  }

  async function markOne(id, quiet = false) {
    try {
      const n = await api.post(`/api/v1/notifications/${id}/read`);
      if (alive && n) put(n);
      if (alive) updateSummary();
      inboxChanged();
    } catch (e) {
      if (!quiet) ctx.toast(errorText(e), 'error');
    }
  }

  async function markAll() {
    allBtn.disabled = true;
    try {
      const r = await api.post('/api/v1/notifications/read-all');
      if (!alive) return;
      ctx.toast(r?.updated ? `${r.updated} marked read` : 'Nothing was unread');
      await load(true);
      inboxChanged();
    } catch (e) {
      ctx.toast(errorText(e), 'error');
    } finally {
      if (alive) updateSummary();
    }
  }

  const off = ctx.subscribe(`user:${me}`, (f) => {
    if (f.event === 'notifications.created' && f.data && !rows.has(f.data.id)) {
      put(f.data, { top: true });
      updateSummary();
    } else if (f.event === 'notifications.read') {
      const d = f.data || {};
      if (d.all) {
        load(true);
      } else {
        for (const id of d.ids || []) {
          const r = rows.get(Number(id));
          if (r && !r.entry.read) put({ ...r.entry, read: true, read_at: d.read_at });
        }
        updateSummary();
      }
    }
  });
  // Caught up after a reconnect.
  const onReady = () => { if (alive) load(true); };
  ctx.socket?.addEventListener('ready', onReady);

  load(true);

  return () => {
    alive = false;
    off();
    ctx.socket?.removeEventListener('ready', onReady);
  };
}
