// The SMS screen (#/sms, sms.read): conversations grouped by the other
// party's number (outbox `to`, inbox `from`), newest first; a conversation
// as a thread (inbound left, outbound right) with delivery ticks; a filter
// for inbox or outbox; the composer (sms.send) with a live segment counter
// that follows the server's rule; and the SMS statistics.  Status changes
// arrive live through the `telephony` room, whose events carry no
// numbers or text: a message not yet on screen is fetched by id.
import { h, clear, field, fmtTime, errorText, showErrors } from '/js/dom.js';
import { qs } from '/js/api.js';
import { segments, MAX_SEGMENTS, MAX_CHARS, SMS_BAD, tabs, mountStats } from './telephony.js';

const PAGE = 200;
const party = (m) => (m.direction === 'inbound' ? m.from : m.to);
// Status only moves forward (the server's order); an event and a fetch
// may arrive in either order.
const RANK = { queued: 0, sending: 1, unknown: 1, sent: 2, delivered: 3, undelivered: 3, failed: 3, received: 0 };
const merge = (old, m) => (old && (RANK[m.status] ?? 0) < (RANK[old.status] ?? 0)
  ? { ...old, ...m, status: old.status, error_code: old.error_code, error_message: old.error_message } : { ...old, ...m });
const newer = (a, b) => (a.created_at === b.created_at ? a.id > b.id : a.created_at > b.created_at);

// Delivery ticks: one grey while queued or sending, one when sent, two
// when delivered, a warning sign (error_message as its title) when it
// failed, was not delivered or its fate is unknown.
const STATUS_WORDS = { queued: 'Queued', sending: 'Sending', sent: 'Sent', delivered: 'Delivered',
  failed: 'Failed', undelivered: 'Not delivered', unknown: 'Unknown whether sent', received: 'Received' };
function ticks(m) {
  const word = STATUS_WORDS[m.status] || m.status;
  if (m.direction === 'inbound') return h('span', { class: 'ticks', 'data-status': m.status }, h('span', { class: 'sr-only' }, word));
  let glyph = '✓';
  let cls = 'sent';
  let kind = '1';
  if (m.status === 'queued' || m.status === 'sending') cls = 'pending';
  else if (m.status === 'delivered') { glyph = '✓✓'; cls = 'delivered'; kind = '2'; } else if (SMS_BAD.has(m.status)) { glyph = '⚠'; cls = 'bad'; kind = 'fail'; }
  const why = SMS_BAD.has(m.status) ? (m.error_message || (m.error_code ? `Error ${m.error_code}` : word)) : word;
  return h('span', { class: `ticks ${cls}`, 'data-status': m.status, 'data-ticks': kind, title: why },
    h('span', { 'aria-hidden': 'true' }, glyph),
    h('span', { class: 'sr-only' }, SMS_BAD.has(m.status) ? `${word}: ${why}` : word));
}

export function mount(root, ctx) {
  const { api } = ctx;
  const canSend = ctx.can('sms.send');
  let alive = true;
  let view = 'all';			// all | inbound | outbound
  let open = null;			// the number of the open conversation
  const msgs = new Map();		// id -> message
  const cursors = { inbox: null, outbox: null };
  let stats = null;

  /* ------------------------------------------------------------ layout */
  const filter = h('select', { id: 'sms-filter', name: 'view', on: { change: () => { view = filter.value; drawList(); drawThread(); } } },
    h('option', { value: 'all' }, 'Inbox and outbox'), h('option', { value: 'inbound' }, 'Inbox (received)'),
    h('option', { value: 'outbound' }, 'Outbox (sent)'));
  const convList = h('ul', { class: 'conv-list', 'data-testid': 'sms-conversations', 'aria-labelledby': 'sms-conv-title' });
  const convEmpty = h('p', { class: 'muted', hidden: true }, 'No messages yet.');
  const listErr = h('p', { class: 'error', role: 'alert' });
  const more = h('button', { type: 'button', hidden: true, on: { click: () => loadPage(false) } }, 'Load older');
  const threadTitle = h('h2', { id: 'sms-thread-title', tabindex: '-1' }, 'Conversation');
  const thread = h('div', { class: 'thread sms-thread', role: 'log', 'aria-live': 'polite', 'aria-labelledby': 'sms-thread-title',
    'data-testid': 'sms-thread' });
  const threadHint = h('p', { class: 'muted' }, canSend ? 'Choose a conversation, or write to a new number below.' : 'Choose a conversation.');

  // The composer.
  const toIn = h('input', { name: 'to', type: 'tel', autocomplete: 'off', maxlength: '64', required: true });
  const bodyIn = h('textarea', { name: 'body', rows: '3', required: true, on: { input: () => count() } });
  const counter = h('p', { class: 'sms-counter', id: 'sms-counter', 'data-testid': 'sms-counter' });
  bodyIn.setAttribute('aria-describedby', counter.id);
  const sendErr = h('p', { class: 'error', role: 'alert', 'data-testid': 'sms-send-error' });
  const sendBtn = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const composer = h('form', { class: 'card sms-composer', 'aria-labelledby': 'sms-compose-title', on: { submit: send } },
    h('h2', { id: 'sms-compose-title' }, 'New message'),
    field('To', toIn, 'A phone number; spaces and dashes are fine'), field('Message', bodyIn), counter, sendErr, sendBtn);

  const messagesView = h('div', { class: 'sms-layout' },
    h('section', { class: 'sms-conversations', 'aria-labelledby': 'sms-conv-title' },
      h('h2', { id: 'sms-conv-title' }, 'Conversations'),
      h('div', { class: 'field' }, h('label', { for: filter.id }, 'Show'), filter),
      listErr, convList, convEmpty, more),
    h('section', { class: 'sms-open', 'aria-labelledby': 'sms-thread-title' },
      threadTitle, threadHint, thread, canSend ? composer : null));
  const statsView = h('div', { class: 'sms-stats' });
  const t = tabs('SMS views', [{ key: 'messages', label: 'Messages' }, { key: 'stats', label: 'Statistics' }], (key) => {
    clear(t.panel);
    if (key === 'messages') { t.panel.append(messagesView); return; }
    t.panel.append(statsView);
    if (!stats) stats = mountStats(statsView, ctx, { sms: true, calls: false }, 'sms-stats');
    else stats.reload();
  }, 'sms');
  root.append(h('section', { class: 'sms-screen', 'aria-labelledby': 'sms-title' },
    h('h1', { id: 'sms-title' }, 'SMS'), t.list, t.panel));

  /* ---------------------------------------------------------- counting */
  function count() {
    const s = segments(bodyIn.value);
    const over = s.segments > MAX_SEGMENTS || s.chars > MAX_CHARS;
    counter.textContent = `${s.segments}/${MAX_SEGMENTS} segments · ${s.encoding}`;
    counter.classList.toggle('error', over);
    counter.dataset.segments = String(s.segments);
    counter.dataset.encoding = s.encoding;
    if (over) {
      counter.append(' — too long: ', s.chars > MAX_CHARS ? `at most ${MAX_CHARS} characters` : `at most ${MAX_SEGMENTS} segments`);
    }
    sendBtn.disabled = over;
    return !over;
  }

  /* ----------------------------------------------------------- drawing */
  const visible = (m) => view === 'all' || m.direction === view;

  function conversations() {
    const by = new Map();
    for (const m of msgs.values()) {
      if (!visible(m) || !party(m)) continue;
      const c = by.get(party(m));
      if (!c) by.set(party(m), { number: party(m), last: m, n: 1 });
      else {
        c.n++;
        if (newer(m, c.last)) c.last = m;
      }
    }
    return [...by.values()].sort((a, b) => (newer(a.last, b.last) ? -1 : 1));
  }

  function drawList() {
    clear(convList);
    const list = conversations();
    for (const c of list) {
      const m = c.last;
      const current = c.number === open;
      convList.append(h('li', { 'data-number': c.number },
        h('button', { type: 'button', class: `conv${current ? ' current' : ''}`, 'aria-current': current ? 'true' : null,
          on: { click: () => openConversation(c.number, true) } },
        h('span', { class: 'conv-number' }, c.number),
        h('span', { class: 'conv-when' }, fmtTime(m.created_at)),
        h('span', { class: 'conv-last' }, m.direction === 'inbound' ? '' : 'You: ', m.body ?? ''),
        h('span', { class: 'sr-only' }, `, ${c.n} message${c.n === 1 ? '' : 's'}`))));
    }
    convEmpty.hidden = list.length > 0;
  }

  function bubble(m) {
    const out = m.direction !== 'inbound';
    return h('div', { class: `msg sms ${out ? 'out' : 'in'}`, 'data-sms-id': String(m.id), 'data-status': m.status },
      h('span', { class: 'sr-only' }, out ? 'You: ' : `${m.from}: `),
      h('span', { class: 'body' }, m.body ?? ''),
      h('span', { class: 'meta' }, h('time', { datetime: m.created_at }, fmtTime(m.created_at)),
        m.segments > 1 ? ` · ${m.segments} segments` : null, ' ', ticks(m)));
  }

  function drawThread() {
    clear(thread);
    threadHint.hidden = !!open;
    thread.hidden = !open;
    if (!open) { threadTitle.textContent = 'Conversation'; return; }
    threadTitle.textContent = `Conversation with ${open}`;
    const list = [...msgs.values()].filter((m) => party(m) === open && visible(m))
      .sort((a, b) => (newer(a, b) ? 1 : -1));
    for (const m of list) thread.append(bubble(m));
    if (!list.length) thread.append(h('p', { class: 'muted' }, 'No messages in this view.'));
    thread.scrollTop = thread.scrollHeight;
  }

  // A message changed or arrived: redraw only what shows it.
  function upsert(m) {
    msgs.set(m.id, merge(msgs.get(m.id), m));
    const cur = msgs.get(m.id);
    const el = thread.querySelector(`[data-sms-id="${m.id}"]`);
    if (el && party(cur) === open) el.replaceWith(bubble(cur));
    else if (party(cur) === open) drawThread();
    drawList();
  }

  /* ----------------------------------------------------------- loading */
  // A page of the inbox and the outbox (the first again when reset).
  async function loadPage(reset) {
    listErr.textContent = '';
    if (reset) { cursors.inbox = null; cursors.outbox = null; }
    const want = reset ? ['inbox', 'outbox'] : ['inbox', 'outbox'].filter((k) => cursors[k]);
    try {
      const pages = await Promise.all(want.map((k) => api.get(`/api/v1/sms/${k}${qs({ limit: PAGE, cursor: cursors[k] })}`)));
      if (!alive) return;
      pages.forEach((r, i) => {
        cursors[want[i]] = r.next_cursor ?? null;
        for (const m of r.data || []) msgs.set(m.id, merge(msgs.get(m.id), m));
      });
      more.hidden = !cursors.inbox && !cursors.outbox;
      drawList();
      drawThread();
    } catch (e) {
      if (alive) listErr.textContent = `The messages did not load: ${errorText(e)}`;
    }
  }

  // Everything with one number, whatever the pages loaded so far hold.
  async function openConversation(number, focus) {
    open = number;
    if (canSend) toIn.value = number;
    drawList();
    drawThread();
    if (focus) threadTitle.focus();
    try {
      const [o, i] = await Promise.all([api.get(`/api/v1/sms/outbox${qs({ to: number, limit: PAGE })}`),
        api.get(`/api/v1/sms/inbox${qs({ from: number, limit: PAGE })}`)]);
      if (!alive || open !== number) return;
      for (const m of [...(o.data || []), ...(i.data || [])]) msgs.set(m.id, merge(msgs.get(m.id), m));
      drawThread();
      drawList();
    } catch (e) {
      if (alive) listErr.textContent = `This conversation did not load: ${errorText(e)}`;
    }
  }

  /* ----------------------------------------------------------- sending */
  async function send(e) {
    e.preventDefault();
    showErrors(composer, sendErr, null);
    if (!count()) return;
    if (!toIn.value.trim() || !bodyIn.value.length) {
      sendErr.textContent = 'Both the number and the message are needed.';
      return;
    }
    sendBtn.disabled = true;
    try {
      const m = await api.post('/api/v1/sms', { to: toIn.value.trim(), body: bodyIn.value });
      if (!alive) return;
      bodyIn.value = '';
      count();
      msgs.set(m.id, merge(msgs.get(m.id), m));
      if (view === 'inbound') { view = 'all'; filter.value = 'all'; }
      openConversation(m.to, false);
      ctx.toast(`Message to ${m.to} queued`);
    } catch (err) {
      if (!alive) return;
      if (err.status === 422 || err.status === 400) {
        showErrors(composer, sendErr, err);
        sendErr.textContent = `Not sent: ${errorText(err)}`;
      } else if (err.status === 429) {
        sendErr.textContent = err.retryAfter
          ? `Not sent: too many messages just now. Try again in ${err.retryAfter} second${err.retryAfter === 1 ? '' : 's'}.`
          : 'Not sent: too many messages just now. Try again in a moment.';
      } else if (err.status === 503) {
        sendErr.textContent = 'Not sent: no SMS provider is available for this number right now (none is configured, '
          + 'or it is down). Try again later or ask an administrator.';
      } else if (err.status === 403) {
        sendErr.textContent = 'Not sent: your role does not allow sending SMS.';
      } else {
        sendErr.textContent = `Not sent: ${errorText(err)}`;
      }
    } finally {
      if (alive) sendBtn.disabled = !count();
    }
  }

  /* -------------------------------------------------------------- live */
  const onEvent = async (f) => {
    if (!f.event?.startsWith('telephony.sms.') || !f.data?.id) return;
    const known = msgs.get(f.data.id);
    if (known) { upsert(f.data); return; }
    try {
      const m = await api.get(`/api/v1/sms/${f.data.id}`);
      if (alive) upsert(m);
    } catch { /* erased meanwhile, or not ours to see */ }
  };
  const off = ctx.subscribe('telephony', onEvent);
  // After a reconnect the room is subscribed again: catch up on what
  // changed during the drop.
  let first = true;
  const onSubscribed = (e) => {
    if (e.detail !== 'telephony') return;
    if (first) { first = false; return; }
    loadPage(true);
    if (open) openConversation(open, false);
  };
  ctx.socket?.addEventListener('subscribed', onSubscribed);

  count();
  t.choose(0, false);
  loadPage(true);
  return () => {
    alive = false;
    off();
    ctx.socket?.removeEventListener('subscribed', onSubscribed);
    stats?.stop();
  };
}
