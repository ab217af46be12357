// The agent workspace: the queues (#/queues) and, beside them on wide
// screens, one query (#/query/<id>) with its live thread, the state
// changes an agent may make, and calls.  Everything stays live over the
// socket: `agents` and `user:{me}` move the queues, `query:{id}` the open
// query.  After a reconnect the socket subscribes again by itself; this
// screen then catches up on what it missed (messages after the last one
// it has, the query, the calls, the first page of every queue).
import { h, clear, field, fmtTime, errorText } from '/js/dom.js';
import { qs } from '/js/api.js';

const DQ = '/api/v1/donor-queries';
const COMM = '/api/v1/communication';
const OPEN = new Set(['IN_PROGRESS', 'TRANSFERRED']);
const PAGE = 50;
const MODES = ['VIDEO', 'AUDIO', 'SCREEN'];

// Remembered across mounts (opening a query remounts the screen).
let lastTab = 'unassigned';
const previews = new Map();	// query id -> first line of its first message

const num = (v) => (v === null || v === undefined || v === '' ? null : Number(v));
const newer = (a, b) => (a?.updated_at || '') > (b?.updated_at || '');

export function statusPill(status, attrs = {}) {
  const kind = status === 'RESOLVED' ? 'ok' : status === 'IN_PROGRESS' ? 'warn' : status === 'TRANSFERRED' ? 'warn' : '';
  return h('span', { class: `pill status-pill ${kind}`, 'data-status': status, ...attrs }, status);
}

// The staff who can take queries (GET /api/v1/concierge/agents): names
// for the thread and the transfer dialog's choices.  Loaded once per page.
let directory = null;
function loadDirectory(ctx) {
  if (!directory) {
    directory = ctx.api.get('/api/v1/concierge/agents')
      .then((r) => new Map((r.data || []).map((u) => [u.id, u])))
      .catch(() => { directory = null; return new Map(); });
  }
  return directory;
}
let names = new Map();

function staffName(ctx, id) {
  if (id === null || id === undefined) return 'nobody';
  if (num(id) === ctx.user.id) return 'you';
  const u = names.get(num(id));
  return u ? (u.name || u.username) : `agent #${id}`;
}

export function mount(root, ctx, params) {
  const offs = [];
  let alive = true;
  loadDirectory(ctx).then((m) => { names = m; });
  const queryId = params.head === 'query' ? Number(params.rest[0]) : null;

  const queues = queuePane(ctx, queryId);
  offs.push(queues.cleanup);
  const side = h('section', { class: 'query-pane', 'aria-label': 'Query' });
  const ws = h('div', { class: `workspace${queryId ? ' has-query' : ''}` }, queues.el, side);
  root.append(ws);

  if (queryId && Number.isInteger(queryId) && queryId > 0) {
    const view = queryView(side, ctx, queryId, queues);
    offs.push(view.cleanup);
  } else if (params.head === 'query') {
    side.append(h('p', { class: 'error', role: 'alert' }, 'That is not a query number.'));
  } else {
    side.append(h('div', { class: 'query-empty card' },
      h('h2', null, 'No query open'),
      h('p', { class: 'muted' }, 'Choose a query from a queue to read and answer it. New queries appear in “Unassigned” as donors open them.')));
  }

  // After a reconnect, once the server has taken the agents room again:
  // whatever happened meanwhile.
  const onSubscribed = (e) => { if (alive && e.detail === 'agents' && ctx.socket.connects > 1) queues.resync(); };
  ctx.socket?.addEventListener('subscribed', onSubscribed);
  offs.push(() => ctx.socket?.removeEventListener('subscribed', onSubscribed));

  return () => {
    alive = false;
    for (const off of offs.splice(0)) {
      try { off(); } catch (e) { console.warn(e); }
    }
  };
}

/* ----------------------------------------------------------------- queues */

function queuePane(ctx, currentId) {
  const { api } = ctx;
  const me = ctx.user.id;
  const latest = new Map();	// id -> freshest copy seen
  const gone = new Set();		// deleted ids
  const calling = new Set();	// query ids with a pending call request (live only)
  let alive = true;
  let gen = 0;

  const tabs = [
    { key: 'unassigned', label: 'Unassigned', empty: 'No query waits to be accepted.',
      sources: () => [{ path: `${DQ}/in-progress`, params: {} }],
      has: (q) => q.status === 'IN_PROGRESS' && q.assigned_to == null },
    // A transfer makes the target the assignee (status TRANSFERRED), so
    // "Mine" is every open query assigned to me, transferred or not;
    // "Transferred to me" holds those I have not accepted yet (accepting
    // makes them IN_PROGRESS).
    { key: 'mine', label: 'Mine', empty: 'You have no open queries.',
      sources: () => [{ path: DQ, params: { status: 'IN_PROGRESS', assigned_to: me } },
        { path: DQ, params: { status: 'TRANSFERRED', assigned_to: me } }],
      has: (q) => OPEN.has(q.status) && num(q.assigned_to) === me },
    { key: 'transferred', label: 'Transferred to me', empty: 'Nothing has been transferred to you.',
      sources: () => [{ path: `${DQ}/transferred`, params: { assigned_to: me } }],
      has: (q) => q.status === 'TRANSFERRED' && num(q.transferred_to_user_id) === me },
    { key: 'resolved', label: 'Resolved', empty: 'No resolved queries yet.',
      sources: () => [{ path: `${DQ}/resolved`, params: {} }],
      has: (q) => q.status === 'RESOLVED' },
  ];
  if (!tabs.some((t) => t.key === lastTab)) lastTab = 'unassigned';

  const tablist = h('div', { class: 'queue-tabs', role: 'tablist', 'aria-label': 'Queues' });
  const list = h('ul', { class: 'queue-list', 'data-testid': 'queue-list' });
  const emptyMsg = h('p', { class: 'muted queue-empty', hidden: true });
  const errorMsg = h('p', { class: 'error', role: 'alert' });
  const more = h('button', { type: 'button', class: 'load-more', hidden: true, on: { click: () => loadMore(active()) } }, 'Load more');
  const panel = h('div', { id: 'queue-panel', role: 'tabpanel', tabindex: '0', class: 'queue-panel' }, list, emptyMsg, errorMsg, more);
  const announce = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite', 'data-testid': 'queue-announce' });

  for (const t of tabs) {
    t.items = new Map();
    t.rows = new Map();		// id -> li
    t.loading = null;
    t.loaded = false;
    t.state = t.sources().map((s) => ({ ...s, cursor: null, done: false }));
    // The name is the visible text plus a word for screen readers:
    // "Unassigned 3 queries".
    t.count = h('span', { class: 'count' }, '…');
    t.desc = h('span', { class: 'sr-only' }, ' loading');
    t.tab = h('button', {
      type: 'button', role: 'tab', id: `tab-${t.key}`, 'aria-controls': 'queue-panel',
      'data-tab': t.key,
      on: { click: () => select(t.key, false), keydown: tabKeys },
    }, h('span', { class: 'label' }, t.label), ' ', t.count, t.desc);
    tablist.append(t.tab);
  }

  const el = h('section', { class: 'queue-pane', 'aria-labelledby': 'queues-title' },
    h('h1', { id: 'queues-title' }, 'Queues'), tablist, panel, announce);

  function active() { return tabs.find((t) => t.key === lastTab); }

  function tabKeys(e) {
    const i = tabs.findIndex((t) => t.key === e.currentTarget.dataset.tab);
    let j = null;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') j = (i + 1) % tabs.length;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') j = (i - 1 + tabs.length) % tabs.length;
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = tabs.length - 1;
    if (j === null) return;
    e.preventDefault();
    select(tabs[j].key, true);
  }

  function select(key, focus) {
    lastTab = key;
    for (const t of tabs) {
      const on = t.key === key;
      t.tab.setAttribute('aria-selected', String(on));
      t.tab.tabIndex = on ? 0 : -1;
    }
    const t = active();
    panel.setAttribute('aria-labelledby', t.tab.id);
    clear(list);
    renderList(t);
    if (focus) t.tab.focus();
    if (!t.loaded && !t.loading) loadMore(t);
  }

  // Freshest known copy of q (events and fetches race).
  function freshest(q) {
    const known = latest.get(q.id);
    if (known && newer(known, q)) return known;
    latest.set(q.id, q);
    return q;
  }

  // The next page of t (the first page again when t.replace is set, as
  // after a reconnect: then the new page replaces what the list held).
  function loadMore(t) {
    if (t.loading) return t.loading;
    const myGen = gen;
    const replace = !!t.replace;
    const into = replace ? new Map() : t.items;
    const touched = new Set();	// changed by events meanwhile
    t.replace = false;
    t.touched = touched;
    t.error = null;
    if (t === active()) {
      list.setAttribute('aria-busy', 'true');
      more.disabled = true;
    }
    const p = (async () => {
      let added = 0;
      let pages = 0;
      // A page of in-progress queries may hold no unassigned one: keep
      // going a little so the list does not look empty while it is not.
      do {
        const pending = t.state.filter((s) => !s.done);
        const results = await Promise.all(pending.map(async (s) => {
          const r = await api.get(s.path + qs({ ...s.params, limit: PAGE, cursor: s.cursor }));
          if (myGen !== gen) return [];
          s.cursor = r.next_cursor ?? null;
          s.done = !r.next_cursor;
          return r.data || [];
        }));
        if (myGen !== gen) return;
        for (const raw of results.flat()) {
          if (gone.has(raw.id)) continue;
          const q = freshest(raw);
          if (t.has(q)) { into.set(q.id, q); added++; }
        }
        pages++;
      } while (added === 0 && pages < 5 && t.state.some((s) => !s.done));
      for (const id of touched) {
        const q = latest.get(id);
        if (!q || gone.has(id) || !t.has(q)) into.delete(id);
        else into.set(id, q);
      }
      t.items = into;
      t.loaded = true;
    })().catch((e) => {
      if (myGen === gen) t.error = e;
    }).finally(() => {
      if (t.loading === p) t.loading = null;
      if (t.touched === touched) t.touched = null;
      if (!alive || myGen !== gen) return;
      updateCount(t);
      if (t === active()) {
        list.removeAttribute('aria-busy');
        renderList(t);
      }
    });
    t.loading = p;
    return p;
  }

  function updateCount(t) {
    const n = t.items.size;
    const moreLeft = t.state.some((s) => !s.done);
    const text = t.loaded ? `${n}${moreLeft ? '+' : ''}` : '…';
    t.count.textContent = text;
    t.count.dataset.count = String(n);
    t.desc.textContent = t.loaded ? ` ${n === 1 && !moreLeft ? 'query' : 'queries'}` : ' loading';
  }

  function renderList(t) {
    if (t !== active()) return;
    const sorted = [...t.items.values()].sort((a, b) => b.id - a.id);
    const keep = new Set(sorted.map((q) => q.id));
    for (const [id, li] of t.rows) {
      if (!keep.has(id)) { li.remove(); t.rows.delete(id); }
    }
    let at = list.firstElementChild;
    for (const q of sorted) {
      // Lists carry the question's start; a query heard live does not.
      if (typeof q.preview === 'string' && !previews.has(q.id)) previews.set(q.id, q.preview.split('\n')[0]);
      let li = t.rows.get(q.id);
      if (!li || li.dataset.version !== versionOf(q)) {
        const fresh = queueItem(q);
        if (li && li.parentNode === list) {
          if (at === li) at = fresh;
          li.replaceWith(fresh);
        }
        li = fresh;
        t.rows.set(q.id, li);
      }
      const line = previews.get(q.id);
      const lineEl = li.querySelector('.qi-line');
      const text = line === undefined ? '…' : (line || '(no message)');
      if (lineEl.textContent !== text) lineEl.textContent = text;
      if (li === at) at = at.nextElementSibling;
      else list.insertBefore(li, at);
    }
    // Anything left after the sorted rows is stale.
    while (at) { const next = at.nextElementSibling; at.remove(); at = next; }
    emptyMsg.textContent = t.empty;
    emptyMsg.hidden = !t.loaded || t.items.size > 0;
    errorMsg.textContent = t.error ? `This queue did not load: ${errorText(t.error)}` : '';
    more.hidden = !t.loaded || !t.state.some((s) => !s.done);
    more.disabled = !!t.loading;
    for (const x of tabs) updateCount(x);
    wantPreviews(sorted.map((q) => q.id));
  }

  const versionOf = (q) => `${q.updated_at}|${q.status}|${calling.has(q.id)}`;

  function queueItem(q) {
    const current = q.id === currentId;
    const line = previews.get(q.id);
    const li = h('li', { 'data-testid': 'queue-item', 'data-query-id': String(q.id), 'data-status': q.status,
      class: `queue-item${current ? ' current' : ''}` },
    h('a', { href: `#/query/${q.id}`, class: 'queue-link', 'aria-current': current ? 'true' : null },
      h('span', { class: 'qi-top' },
        h('strong', { class: 'qi-donor' }, q.donor || 'Donor'),
        statusPill(q.status)),
      h('span', { class: 'qi-line' }, line === undefined ? '…' : (line || '(no message)')),
      h('span', { class: 'qi-meta' },
        h('time', { datetime: q.created_at }, fmtTime(q.created_at)),
        ` · #${q.id}`,
        q.donor_id ? ` · ${q.donor_id}` : '',
        calling.has(q.id) ? h('span', { class: 'pill warn qi-call' }, 'Call requested') : null)));
    li.dataset.version = versionOf(q);
    return li;
  }

  // First lines of queries that came without one (heard live), a few at
  // a time, once per query (the first message never changes).
  const wanted = [];
  let fetching = 0;
  function wantPreviews(ids) {
    for (const id of ids) if (!previews.has(id) && !wanted.includes(id)) wanted.push(id);
    while (fetching < 4 && wanted.length) {
      const id = wanted.shift();
      fetching++;
      api.get(`${DQ}/${id}/messages?limit=1`).then((r) => {
        const first = (r.data && r.data[0]?.content) || '';
        previews.set(id, first.split('\n')[0].slice(0, 140));
      }, () => previews.set(id, '')).finally(() => {
        fetching--;
        if (!alive) return;
        renderList(active());
        wantPreviews([]);
      });
    }
  }

  function say(text) {
    announce.textContent = '';
    setTimeout(() => { announce.textContent = text; }, 50);
  }

  // A query as an event (or an action) reports it: into or out of each list.
  function apply(q, how) {
    if (!q || q.id === undefined) return;
    if (gone.has(q.id)) return;
    const cur = freshest(q);
    if (cur !== q && newer(cur, q)) return;	// stale copy
    for (const t of tabs) {
      t.touched?.add(q.id);
      if (t.has(q)) t.items.set(q.id, q);
      else t.items.delete(q.id);
    }
    renderList(active());
    if (how) say(how);
  }

  function remove(id) {
    gone.add(id);
    for (const t of tabs) { t.touched?.add(id); t.items.delete(id); }
    renderList(active());
  }

  function onFrame(f) {
    const d = f.data || {};
    switch (f.event) {
      case 'concierge.query.created':
        apply(d, `New query from ${d.donor || 'a donor'}`);
        if (num(d.assigned_to) === null) ctx.toast(`New query from ${d.donor || 'a donor'} (#${d.id})`);
        break;
      case 'concierge.query.accepted':
        apply(d, num(d.assigned_to) === me ? `Query #${d.id} is yours` : `Query #${d.id} was accepted by ${staffName(ctx, d.assigned_to)}`);
        break;
      case 'concierge.query.transferred':
        apply(d, num(d.transferred_to_user_id) === me ? `Query #${d.id} was transferred to you` : `Query #${d.id} was transferred`);
        if (num(d.transferred_to_user_id) === me && f.room === `user:${me}`) ctx.toast(`Query #${d.id} from ${d.donor || 'a donor'} was transferred to you`);
        break;
      case 'concierge.query.resolved':
        apply(d, `Query #${d.id} was resolved`);
        break;
      case 'concierge.query.closed':
        apply(d, `Query #${d.id} was closed by the donor`);
        break;
      case 'concierge.query.deleted':
        remove(num(d.id));
        break;
      case 'concierge.reminder':
        if (f.room === 'agents' || f.room === `user:${me}`) {
          if (num(d.sent_by) !== me) ctx.toast(`Reminder: query #${d.query_id} from ${d.donor || 'a donor'} is waiting`);
        }
        break;
      case 'calls.request.created':
        if (!calling.has(num(d.query_id))) {
          calling.add(num(d.query_id));
          renderList(active());
        }
        break;
      case 'calls.request.accepted': case 'calls.request.rejected': case 'calls.request.cancelled':
        if (calling.delete(num(d.query_id))) renderList(active());
        break;
      default:
    }
  }

  const offs = [ctx.subscribe('agents', onFrame), ctx.subscribe(`user:${me}`, onFrame)];

  // Start over (after a reconnect): first pages again, nothing lost.
  function resync() {
    gen++;
    for (const t of tabs) {
      t.loading = null;
      t.replace = true;
      t.state = t.sources().map((s) => ({ ...s, cursor: null, done: false }));
    }
    for (const t of tabs) loadMore(t);
  }

  select(lastTab, false);
  for (const t of tabs) if (!t.loaded && !t.loading) loadMore(t);

  return {
    el,
    apply,
    remove,
    resync,
    cleanup() { alive = false; for (const off of offs) off(); },
  };
}

/* ------------------------------------------------------------ query view */

function queryView(pane, ctx, id, queues) {
  const { api } = ctx;
  const me = ctx.user.id;
  let q = null;
  let alive = true;
  let busy = false;
  let sending = false;
  let deleted = false;
  const seen = new Set();
  let lastId = 0;
  const offs = [];

  const title = h('h2', { id: 'query-title', class: 'query-title' }, `Query #${id}`);
  const status = h('span', { 'data-testid': 'query-status', class: 'pill status-pill' }, '…');
  const facts = h('dl', { class: 'query-facts' });
  const note = h('p', { class: 'notice transfer-note', 'data-testid': 'transfer-note' });
  const actions = h('div', { class: 'actions query-actions', role: 'group', 'aria-label': 'Query actions' });
  const announce = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
  const thread = h('div', { class: 'thread', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation',
    'data-testid': 'thread', tabindex: '0' });
  const reply = h('textarea', { name: 'reply', rows: '3', maxlength: '4000', autocomplete: 'off' });
  const sendBtn = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const composerHint = h('p', { class: 'muted composer-closed', role: 'note' });
  const composer = h('form', { class: 'composer', 'aria-label': 'Reply to the donor', on: { submit: send } },
    field('Reply', reply, 'Enter sends; Shift+Enter starts a new line.'),
    h('div', { class: 'actions' }, sendBtn), composerHint);
  const calls = callsPanel(ctx, id, () => q);
  offs.push(calls.cleanup);

  const head = h('header', { class: 'query-head' },
    h('a', { href: '#/queues', class: 'back-link' }, h('span', { 'aria-hidden': 'true' }, '← '), 'Back to queues'),
    h('div', { class: 'query-title-row' }, title, status), facts, note, actions, announce);
  const loading = h('p', { class: 'loading' }, 'Loading the query…');
  const body = h('div', { class: 'query-body', hidden: true }, head, thread, composer, calls.el);
  pane.setAttribute('aria-labelledby', 'query-title');
  pane.append(loading, body);

  reply.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });

  function say(text) {
    announce.textContent = '';
    setTimeout(() => { announce.textContent = text; }, 50);
  }

  /* -- the query -- */

  function setQuery(next, how) {
    if (!next || num(next.id) !== id) return;
    if (q && newer(q, next)) return;
    const before = q?.status;
    q = next;
    render();
    queues.apply(next);
    calls.render();
    if (how) say(how);
    else if (before && before !== q.status) say(`The query is now ${q.status}`);
  }

  function render() {
    if (!q) return;
    document.title = `${q.donor || 'Query'} · #${q.id} · Switchboard`;
    title.textContent = q.donor || `Query #${q.id}`;
    status.textContent = deleted ? 'DELETED' : q.status;
    status.dataset.status = deleted ? 'DELETED' : q.status;
    status.className = `pill status-pill ${q.status === 'RESOLVED' ? 'ok' : OPEN.has(q.status) ? 'warn' : ''}`;
    clear(facts);
    const fact = (k, v) => (v === null || v === undefined || v === '' ? null : h('div', { class: 'fact' }, h('dt', null, k), h('dd', null, String(v))));
    facts.append(...[
      fact('Query', `#${q.id}`),
      fact('Donor ID', q.donor_id),
      fact('Test', q.test), fact('Stage', q.stage), fact('Device', q.device),
      fact('Assigned to', q.assigned_to == null ? 'nobody yet' : staffName(ctx, q.assigned_to)),
      fact('Opened', fmtTime(q.created_at)),
      q.resolved_by != null ? fact('Resolved by', staffName(ctx, q.resolved_by)) : null,
    ].filter(Boolean));
    note.textContent = q.transfer_note ? `Transfer note: ${q.transfer_note}` : '';
    note.hidden = !q.transfer_note;

    const open = OPEN.has(q.status) && !deleted;
    const mineOrManager = num(q.assigned_to) === me || ctx.can('queries.manage');
    const handle = ctx.can('queries.handle');
    const legalChange = (q.status === 'IN_PROGRESS' && q.assigned_to != null) || q.status === 'TRANSFERRED';
    clear(actions);
    const btn = (label, fn, cls = '') => h('button', { type: 'button', class: cls, disabled: busy, on: { click: fn } }, label);
    // Accept takes an unassigned query, or one transferred to me: a
    // transfer makes me the assignee already, and accepting makes it
    // IN_PROGRESS, out of "Transferred to me" (API.md accept).
    const acceptable = (q.status === 'IN_PROGRESS' && q.assigned_to == null)
      || (q.status === 'TRANSFERRED' && num(q.assigned_to) === me);
    if (handle && acceptable && !deleted) actions.append(btn('Accept', accept, 'primary'));
    if (handle && legalChange && mineOrManager && !deleted) actions.append(btn('Transfer', transfer));
    if (((handle && num(q.assigned_to) === me) || ctx.can('queries.manage')) && legalChange && !deleted) actions.append(btn('Resolve', resolve));
    if (handle && open) actions.append(btn('Send reminder', remind));

    reply.disabled = !open;
    sendBtn.disabled = !open || sending;
    composerHint.textContent = deleted ? 'This query was deleted.'
      : open ? '' : `This query is ${q.status === 'CLOSED' ? 'closed by the donor' : 'resolved'}; it takes no more messages.`;
  }

  async function act(label, fn) {
    if (busy) return;
    busy = true;
    render();
    try {
      await fn();
    } catch (e) {
      if (e.status === 409) {
        ctx.toast(label === 'accept'
          ? 'Someone else has taken this query. The view has been refreshed.'
          : `${errorText(e)}. The view has been refreshed.`, 'error');
        await reload().catch(() => {});
      } else if (e.status === 404) {
        ctx.toast('This query no longer exists.', 'error');
        deleted = true;
      } else {
        ctx.toast(errorText(e), 'error');
      }
    } finally {
      busy = false;
      if (alive) render();
    }
  }

  const accept = () => act('accept', async () => {
    setQuery(await api.patch(`${DQ}/${id}/accept`), 'You accepted the query');
    ctx.toast(`Query #${id} is yours`);
    reply.focus();
  });
  const resolve = () => act('resolve', async () => {
    setQuery(await api.patch(`${DQ}/${id}/resolve`), 'The query is resolved');
    ctx.toast(`Query #${id} resolved`);
  });
  const remind = () => act('remind', async () => {
    const r = await api.post(`${DQ}/${id}/send-reminder`);
    ctx.toast(num(r?.assigned_to) ? `Reminder sent to ${staffName(ctx, r.assigned_to)}` : 'Reminder sent to all agents');
  });

  async function colleagues() {
    const m = await loadDirectory(ctx);
    return [...m.values()].filter((u) => u.id !== me)
      .sort((a, b) => (a.name || a.username).localeCompare(b.name || b.username));
  }

  async function transfer() {
    let people = null;
    try { people = await colleagues(); } catch { people = null; }
    if (!alive) return;
    let target;
    let control;
    if (people && people.length) {
      target = h('select', { name: 'to_user_id', required: true },
        h('option', { value: '' }, 'Choose a colleague…'),
        people.map((u) => h('option', { value: String(u.id) }, `${u.name || u.username} (${u.username})`)));
      control = field('Transfer to', target);
    } else {
      target = h('input', { name: 'to_user_id', type: 'number', min: '1', step: '1', inputmode: 'numeric', required: true });
      control = field('User ID', target, 'The user id of the colleague who takes the query over.');
    }
    const noteIn = h('textarea', { name: 'note', rows: '3', maxlength: '1000' });
    const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'transfer-error' });
    dialog(`Transfer query #${id}`, [control, field('Note', noteIn, 'Optional: what your colleague should know.'), err], [{
      label: 'Transfer', class: 'primary',
      onClick: async () => {
        err.textContent = '';
        const to = Number(target.value);
        if (!Number.isInteger(to) || to < 1) {
          err.textContent = 'Choose who takes the query over.';
          target.focus();
          return false;
        }
        if (to === me) {
          err.textContent = 'The query is already yours: choose a colleague.';
          target.focus();
          return false;
        }
        try {
          const r = await api.patch(`${DQ}/${id}/transfer`, { to_user_id: to, note: noteIn.value.trim() || null });
          setQuery(r, 'The query was transferred');
          ctx.toast(`Query #${id} transferred`);
          return true;
        } catch (e) {
          if (e.status === 409) {
            reload().catch(() => {});
            ctx.toast(`${errorText(e)}. The view has been refreshed.`, 'error');
            return true;
          }
          err.textContent = e.status === 422 ? 'That user cannot take queries (not an active agent).' : errorText(e);
          return false;
        }
      },
    }]);
  }

  function dialog(...args) { return ctx.dialog(...args); }

  /* -- the thread -- */

  function senderOf(m) {
    if (m.sender_type === 'SYSTEM' || m.message_type === 'SYSTEM') return 'System';
    if (m.sender_type === 'DONOR') return q?.donor || 'Donor';
    if (num(m.sender_id) === me) return 'You';
    return staffName(ctx, m.sender_id);
  }

  function messageEl(m) {
    const system = m.sender_type === 'SYSTEM' || ['SYSTEM', 'CALL_STARTED', 'CALL_ENDED'].includes(m.message_type);
    const mine = m.sender_type === 'STAFF' && num(m.sender_id) === me;
    return h('div', { class: `msg${mine ? ' mine' : ''}${system ? ' system' : ''}${m.sender_type === 'DONOR' ? ' donor' : ''}`,
      'data-message-id': String(m.id), 'data-sender': m.sender_type, 'data-type': m.message_type },
    h('span', { class: 'meta' }, `${senderOf(m)} · `, h('time', { datetime: m.created_at }, fmtTime(m.created_at))),
    h('span', { class: 'content' }, m.content));
  }

  function addMessage(m) {
    if (!m || num(m.query_id) !== id || seen.has(m.id)) return false;
    seen.add(m.id);
    const nearBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
    const el = messageEl(m);
    if (m.id > lastId) {
      thread.append(el);
      lastId = m.id;
    } else {
      const after = [...thread.children].find((c) => Number(c.dataset.messageId) > m.id);
      thread.insertBefore(el, after || null);
    }
    if (nearBottom || (m.sender_type === 'STAFF' && num(m.sender_id) === me)) thread.scrollTop = thread.scrollHeight;
    return true;
  }

  // Everything after the last message we hold (all of it the first time).
  let syncing = null;
  let again = false;
  function syncMessages() {
    if (syncing) { again = true; return syncing; }
    syncing = (async () => {
      do {
        again = false;
        for (let i = 0; i < 100 && alive; i++) {
          const r = await api.get(`${DQ}/${id}/messages${qs({ after_id: lastId || null, limit: 200 })}`);
          for (const m of r.data || []) addMessage(m);
          if (!r.next_cursor || !(r.data || []).length) break;
        }
      } while (again && alive);
    })().finally(() => { syncing = null; });
    return syncing;
  }

  async function send(e) {
    e.preventDefault();
    const content = reply.value;
    if (!content.trim() || sending) return;
    sending = true;
    sendBtn.disabled = true;
    // Cleared at once; given back if the message does not go out.
    reply.value = '';
    try {
      const m = await api.post(`${DQ}/${id}/messages`, { content });
      addMessage(m);
    } catch (x) {
      if (alive && !reply.value) reply.value = content;
      ctx.toast(errorText(x), 'error');
      if (x.status === 409) reload().catch(() => {});
    } finally {
      sending = false;
      if (alive) {
        render();
        if (!reply.disabled) reply.focus();
      }
    }
  }

  /* -- live -- */

  function onFrame(f) {
    const d = f.data || {};
    if (f.event === 'concierge.message.created') {
      addMessage(d);
    } else if (f.event === 'concierge.query.deleted') {
      deleted = true;
      queues.remove(id);
      render();
      calls.render();
      say('This query was deleted');
    } else if (f.event.startsWith('concierge.query.')) {
      setQuery(d);
    } else if (f.event.startsWith('calls.')) {
      if (num(d.query_id) === id) calls.refresh();
      if (d.message) addMessage(d.message);
    }
  }
  offs.push(ctx.subscribe(`query:${id}`, onFrame));
  // Calls events also reach agents and the assignee: one handler for all.
  const callFrames = (f) => {
    if (f.event.startsWith('calls.') && num(f.data?.query_id) === id) calls.refresh();
  };
  offs.push(ctx.subscribe('agents', callFrames), ctx.subscribe(`user:${me}`, callFrames));

  async function reload() {
    const fresh = await api.get(`${DQ}/${id}`);
    if (!alive) return;
    q = null;
    setQuery(fresh);
  }

  // After a reconnect, once the server has taken query:{id} again: what
  // happened while the line was down (messages after the last id seen).
  const catchUp = () => {
    if (!alive || !q) return;
    reload().catch(() => {});
    syncMessages().catch(() => {});
    calls.refresh();
  };
  const onSubscribed = (e) => { if (e.detail === `query:${id}` && ctx.socket.connects > 1) catchUp(); };
  ctx.socket?.addEventListener('subscribed', onSubscribed);
  offs.push(() => ctx.socket?.removeEventListener('subscribed', onSubscribed));

  (async () => {
    try {
      const first = await api.get(`${DQ}/${id}`);
      if (!alive) return;
      setQuery(first);
      loading.remove();
      body.hidden = false;
      await syncMessages();
      thread.scrollTop = thread.scrollHeight;
      calls.refresh();
    } catch (e) {
      if (!alive) return;
      loading.remove();
      pane.append(h('p', { class: 'error', role: 'alert' },
        e.status === 404 ? `Query #${id} does not exist (or was deleted).` : `The query did not load: ${errorText(e)}`));
    }
  })();

  return {
    cleanup() {
      alive = false;
      for (const off of offs) off();
    },
  };
}

/* ----------------------------------------------------------------- calls */

function callsPanel(ctx, id, getQuery) {
  const { api } = ctx;
  const me = ctx.user.id;
  const mayHandle = ctx.can('calls.handle');
  let off = false;		// the calls plugin is absent or not configured
  let alive = true;
  let pending = [];
  let live = null;		// the query's live session, if any
  let mine = null;		// my live session with its token
  let busy = false;

  const requests = h('ul', { class: 'call-requests-list' });
  const reqBox = h('div', { 'data-testid': 'call-requests', class: 'call-requests', 'aria-live': 'polite' },
    h('h4', null, 'Call requests'), requests);
  const mode = h('select', { name: 'mode' }, MODES.map((m) => h('option', { value: m }, m.charAt(0) + m.slice(1).toLowerCase())));
  const startBtn = h('button', { type: 'button', on: { click: start } }, 'Start call');
  const starter = h('div', { class: 'row call-start' }, field('Call type', mode), startBtn);
  const stage = h('div', { class: 'call-stage' });
  const other = h('p', { class: 'muted', 'data-testid': 'call-elsewhere' });
  const offNote = h('p', { class: 'muted', hidden: true }, 'Calls are not available on this server.');
  const el = h('section', { class: 'calls card', 'aria-labelledby': 'calls-title', hidden: true },
    h('h3', { id: 'calls-title' }, 'Calls'), reqBox, starter, other, stage, offNote);

  let frameFor = null;	// the session id the frame shows

  function showFrame(s) {
    if (frameFor === s.id && stage.firstChild) return;
    clear(stage);
    frameFor = s.id;
    const src = `${s.room_url}?t=${encodeURIComponent(s.token)}`;
    stage.append(
      h('p', { class: 'call-info' }, `${(s.mode || 'VIDEO').toLowerCase()} call · room ${s.room_name} · ${s.status}`),
      h('iframe', { 'data-testid': 'call-frame', class: 'call-frame', title: 'Video call', src,
        allow: 'camera; microphone; fullscreen; display-capture; autoplay', referrerpolicy: 'no-referrer' }),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'danger', on: { click: () => end(s) } }, 'End call')));
  }

  function render() {
    const q = getQuery();
    el.hidden = off || !q;
    if (off || !q) return;
    offNote.hidden = true;
    const open = OPEN.has(q.status);
    clear(requests);
    for (const r of pending) {
      requests.append(h('li', { 'data-request-id': String(r.id), class: 'call-request' },
        h('span', null, h('strong', null, `${r.mode} call`), ' requested ',
          h('time', { datetime: r.created_at }, fmtTime(r.created_at)),
          r.message ? ` — “${r.message}”` : ''),
        mayHandle ? h('span', { class: 'actions' },
          h('button', { type: 'button', class: 'primary', disabled: busy || !!live, on: { click: () => acceptReq(r) } }, 'Accept call'),
          h('button', { type: 'button', disabled: busy, on: { click: () => rejectReq(r) } }, 'Reject call')) : null));
    }
    if (!pending.length) requests.append(h('li', { class: 'muted' }, 'No pending call requests.'));
    starter.hidden = !mayHandle || !open || !!live;
    startBtn.disabled = busy;
    if (mine) showFrame(mine);
    else { clear(stage); frameFor = null; }
    other.textContent = live && !mine ? `A ${String(live.mode).toLowerCase()} call is in progress with ${staffName(ctx, live.admin_id)}.` : '';
    other.hidden = !other.textContent;
  }

  function failed(e) {
    if (e.status === 503) {
      off = true;
      render();
      ctx.toast('Calls are not available on this server.', 'error');
      return;
    }
    ctx.toast(errorText(e), 'error');
  }

  async function load() {
    if (off) return;
    let reqs;
    let sessions;
    try {
      [reqs, sessions] = await Promise.all([
        api.get(`${COMM}/call/${id}/requests`),
        api.get(`${COMM}/calls/${id}`),
      ]);
    } catch (e) {
      // No calls plugin (404 for the route) or not configured: no call UI.
      if (e.status === 404 || e.status === 503 || e.status === 403) { off = true; render(); return; }
      throw e;
    }
    if (!alive) return;
    pending = (reqs.data || []).filter((r) => r.status === 'PENDING');
    live = (sessions.data || []).find((s) => s.status !== 'ENDED') || null;
    mine = live && num(live.admin_id) === me && live.token ? live : null;
    render();
  }

  let running = null;
  let again = false;
  function refresh() {
    if (running) { again = true; return running; }
    running = (async () => {
      do { again = false; await load(); } while (again && alive);
    })().catch((e) => { if (alive) console.warn('calls', e); }).finally(() => { running = null; });
    return running;
  }

  async function withBusy(fn) {
    if (busy) return;
    busy = true;
    render();
    try { await fn(); } catch (e) {
      failed(e);
      if (e.status === 409) refresh();
    } finally {
      busy = false;
      if (alive) render();
    }
  }

  const acceptReq = (r) => withBusy(async () => {
    const out = await api.post(`${COMM}/call/${id}/accept-request/${r.id}`);
    if (out?.session) { live = out.session; mine = out.session.token ? out.session : null; }
    pending = pending.filter((x) => x.id !== r.id);
    ctx.toast('Call accepted: joining the room');
    refresh();
  });
  const rejectReq = (r) => withBusy(async () => {
    await api.post(`${COMM}/call/${id}/reject-request/${r.id}`);
    pending = pending.filter((x) => x.id !== r.id);
    ctx.toast('Call request rejected');
    refresh();
  });
  async function start() {
    await withBusy(async () => {
      const out = await api.post(`${COMM}/call/${id}`, { mode: mode.value });
      if (out?.session) { live = out.session; mine = out.session.token ? out.session : null; }
      refresh();
    });
  }
  const end = (s) => withBusy(async () => {
    await api.post(`${COMM}/call/${encodeURIComponent(s.room_name)}/end`);
    live = null;
    mine = null;
    ctx.toast('Call ended');
    refresh();
  });

  return { el, refresh, render, cleanup() { alive = false; } };
}
