// The WhatsApp inbox (#/whatsapp, whatsapp.read): conversations by status
// (Open is NEW and ACTIVE together; "Mine" narrows to the caller's), each
// with its unread count, the customer, the last message and the 24-hour
// window counting down on the page (no server call for it); the open
// conversation as a thread (inbound left, outbound right) with delivery
// ticks that only move forward; and, with whatsapp.send, a composer that
// sends text or an attachment (through the media picker) while the window
// is open and only templates once it has closed, plus assign and close.
// Live through the rooms `whatsapp` (conversations) and
// `whatsapp:{id}` (the open conversation's messages and their statuses).
import { h, clear, field, fmtTime, errorText } from '/js/dom.js';
import { qs } from '/js/api.js';
import { mediaPicker, fmtBytes } from '/js/media.js';
import { tabs } from './telephony.js';

const PAGE = 50;
const MSG_PAGE = 200;
const MINUTE = 60000;

// The list views: the statuses each asks the server for ([] is all; the
// server takes several, comma-separated, in one list).
const VIEWS = [
  { key: 'open', label: 'Open', statuses: ['NEW', 'ACTIVE'] },
  { key: 'expired', label: 'Expired', statuses: ['EXPIRED'] },
  { key: 'closed', label: 'Closed', statuses: ['CLOSED'] },
  { key: 'all', label: 'All', statuses: [] },
];
const STATUS_WORDS = { NEW: 'New', ACTIVE: 'Active', EXPIRED: 'Expired', CLOSED: 'Closed' };
const STATUS_PILL = { NEW: 'warn', ACTIVE: 'ok', EXPIRED: '', CLOSED: '' };

// A message's status only moves forward, whatever order the events and
// the fetches arrive in (the server's order: a failure can still be
// followed by a delivery report).
const RANK = { received: 0, queued: 0, sent: 1, failed: 2, delivered: 3, read: 4 };
function mergeMsg(old, m) {
  if (old && (RANK[m.status] ?? 0) < (RANK[old.status] ?? 0)) return { ...old, ...m, status: old.status, error: old.error };
  return { ...old, ...m };
}
// A conversation: the later updated_at wins (an event may overtake a fetch).
const mergeConv = (old, c) => (old && old.updated_at && c.updated_at && c.updated_at < old.updated_at ? old : { ...old, ...c });

const activity = (c) => c.last_message_at || c.updated_at || c.created_at || '';
const byActivity = (a, b) => (activity(a) === activity(b) ? b.id - a.id : (activity(a) < activity(b) ? 1 : -1));
// The customer's number: `phone` (E.164), or wa_id (Meta's digits).
const number = (c) => c.phone || (c.wa_id ? `+${String(c.wa_id).replace(/^\+/, '')}` : null);
const customer = (c) => c.customer_name || number(c) || `Conversation ${c.id}`;

// The 24-hour window: open while window_expires_at is in the future.
const windowLeft = (c) => (c?.window_expires_at ? Date.parse(c.window_expires_at) - Date.now() : -1);
// A window the server has called closed (a 409 on a send) stays closed
// on this page, whatever this computer's clock says, until the customer
// writes again (window_expires_at moves): conversation id -> the
// window_expires_at the server refused.
const refused = new Map();
const windowOpen = (c) => windowLeft(c) > 0 && !(refused.has(c.id) && refused.get(c.id) === (c.window_expires_at ?? null));
export function windowText(c) {
  const left = windowLeft(c);
  if (!windowOpen(c)) return 'Window closed';
  const min = Math.ceil(left / MINUTE);
  const hrs = Math.floor(min / 60);
  return hrs ? `Window closes in ${hrs} h ${min % 60} m` : `Window closes in ${min} m`;
}

// The send type of an uploaded file, from its (sniffed) MIME type.
export function mediaType(mime) {
  const top = String(mime || '').split('/')[0];
  return top === 'image' || top === 'video' || top === 'audio' ? top : 'document';
}

// A template's body text and its filled-in preview ({{1}} ... {{n}}).
const bodyOf = (t) => (t?.components || []).find((c) => String(c.type).toUpperCase() === 'BODY')?.text || '';
const bodyParams = (t) => Number(t?.parameters?.body ?? 0) || 0;
export function fillTemplate(text, values) {
  return text.replace(/\{\{(\d+)\}\}/g, (all, n) => (values[n - 1] ? values[n - 1] : all));
}

function preview(m) {
  if (!m) return '';
  switch (m.type) {
  case 'text': return m.text ?? '';
  case 'template': return m.text || `Template ${m.template?.name ?? ''}`.trim();
  case 'image': return m.text || m.caption ? `Image: ${m.caption || m.text}` : 'Image';
  case 'video': return 'Video';
  case 'audio': return 'Audio';
  case 'document': return 'Document';
  case 'sticker': return 'Sticker';
  case 'location': return 'Location';
  case 'reaction': return 'Reaction';
  case 'unsupported': return 'Unsupported message';
  default: return m.text || m.type || '';
  }
}

// Delivery ticks: a clock while queued, one tick when sent, two when
// delivered, two coloured when read; a failure is a warning sign with
// Meta's error as text beside it.
const TICK_WORDS = { queued: 'Queued', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Failed',
  received: 'Received' };
const failText = (m) => {
  const e = m.error || {};
  const head = [e.code, e.title].filter((x) => x !== undefined && x !== null && x !== '').join(' ');
  return head || e.detail ? `${head}${e.detail ? `: ${e.detail}` : ''}` : 'no reason given';
};
function ticks(m) {
  const word = TICK_WORDS[m.status] || m.status;
  if (m.direction === 'inbound') return null;
  const glyph = { queued: '◷', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠' }[m.status] || '';
  const t = h('span', { class: `ticks wa-${m.status}`, 'data-status': m.status, title: word },
    h('span', { 'aria-hidden': 'true' }, glyph), h('span', { class: 'sr-only' }, word));
  if (m.status !== 'failed') return t;
  return [t, h('span', { class: 'wa-error', 'data-testid': 'whatsapp-error' }, ` Not delivered: ${failText(m)}`)];
}

// What a message shows, by type.
function content(m) {
  const media = m.media;
  const caption = m.caption ? h('span', { class: 'body wa-caption' }, m.caption) : null;
  const link = (label) => (media?.url
    ? h('a', { href: media.url, target: '_blank', rel: 'noopener', download: media.filename || '' }, label)
    : h('span', { class: 'muted' }, `${label} (not available)`));
  const name = media?.filename ? `${media.filename}${media.size ? ` (${fmtBytes(media.size)})` : ''}` : null;
  switch (m.type) {
  case 'text':
    return h('span', { class: 'body' }, m.text ?? '');
  case 'template':
    return [h('span', { class: 'wa-label' }, `Template ${m.template?.name ?? ''}`),
      m.text ? h('span', { class: 'body' }, m.text) : null];
  case 'image':
  case 'sticker': {
    const alt = m.caption || media?.filename || (m.type === 'sticker' ? 'Sticker' : 'Image');
    return [media?.url
      ? h('a', { href: media.url, target: '_blank', rel: 'noopener', class: 'wa-image-link' },
        h('img', { src: media.thumbnail_url || media.url, alt, class: 'wa-image', loading: 'lazy' }))
      : h('span', { class: 'muted' }, `${m.type === 'sticker' ? 'Sticker' : 'Image'} (not available)`), caption];
  }
  case 'video': return [link(`Download video${name ? ` ${name}` : ''}`), caption];
  case 'audio': return [link(`Download audio${name ? ` ${name}` : ''}`), caption];
  case 'document': return [link(`Download ${name || 'document'}`), caption];
  case 'location': {
    const l = m.location || {};
    const lat = Number(l.latitude);
    const lon = Number(l.longitude);
    const where = [l.name, l.address].filter(Boolean).join(', ');
    const ok = Number.isFinite(lat) && Number.isFinite(lon);
    return h('span', { class: 'body' }, `Location: ${where ? `${where} ` : ''}${ok ? `(${lat}, ${lon})` : ''}`,
      ok ? [' ', h('a', { href: `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`,
        target: '_blank', rel: 'noopener' }, 'Open the map')] : null);
  }
  case 'interactive':
    return h('span', { class: 'body' }, `Chose: ${m.interactive?.title ?? m.text ?? ''}`);
  case 'reaction':
    return h('span', { class: 'body' }, m.reaction?.emoji ? `Reacted ${m.reaction.emoji}` : 'Removed a reaction');
  case 'unsupported':
    return h('span', { class: 'body muted' }, `Unsupported message (${m.raw_type || 'unknown'})`);
  default:
    return h('span', { class: 'body' }, m.text ?? `${m.type} message`);
  }
}

export function mount(root, ctx, params) {
  const { api } = ctx;
  const me = ctx.user?.id;
  const canSend = ctx.can('whatsapp.send');
  const canListUsers = ctx.can('users.manage');
  let alive = true;
  let view = VIEWS[0];
  let mine = false;
  let open = null;			// id of the open conversation
  let offRoom = null;			// its room's unsubscribe
  let listSeq = 0;
  let timer = null;
  let attachment = null;		// the uploaded media item to send
  let templates = null;		// the approved templates, once loaded
  let users = null;			// id -> user, when the caller may list them
  const convs = new Map();		// id -> conversation
  const msgs = new Map();		// id -> message of the open conversation
  let cursor = null;			// the list's next page

  /* ------------------------------------------------------------ layout */
  const mineBox = h('input', { type: 'checkbox', id: 'wa-mine', name: 'mine',
    on: { change: () => { mine = mineBox.checked; loadList(true); } } });
  const convList = h('ul', { class: 'conv-list', 'data-testid': 'whatsapp-conversations', 'aria-labelledby': 'wa-conv-title' });
  const convEmpty = h('p', { class: 'muted', hidden: true }, 'No conversations here.');
  const listErr = h('p', { class: 'error', role: 'alert' });
  const more = h('button', { type: 'button', hidden: true, on: { click: () => loadList(false) } }, 'Load older');
  const t = tabs('Conversations by status', VIEWS.map((v) => ({ key: v.key, label: v.label })), (key) => {
    view = VIEWS.find((v) => v.key === key);
    loadList(true);
  }, 'wa');
  t.panel.append(convList, convEmpty, more);

  const threadTitle = h('h2', { id: 'wa-thread-title', tabindex: '-1' }, 'Conversation');
  const threadInfo = h('div', { class: 'wa-info', hidden: true });
  const threadHint = h('p', { class: 'muted' }, 'Choose a conversation.');
  const threadErr = h('p', { class: 'error', role: 'alert' });
  const thread = h('div', { class: 'thread wa-thread', role: 'log', 'aria-live': 'polite', 'aria-labelledby': 'wa-thread-title',
    'data-testid': 'whatsapp-thread', hidden: true });
  const actions = h('div', { class: 'row wa-actions', hidden: true });
  const actionErr = h('p', { class: 'error', role: 'alert' });

  // The composer: free-form while the window is open, templates after.
  const textIn = h('textarea', { name: 'text', rows: '3', maxlength: '4096' });
  const attached = h('p', { class: 'wa-attached', hidden: true, 'data-testid': 'whatsapp-attachment' });
  const picker = mediaPicker({ label: 'Attach a file', token: () => ctx.session?.token,
    onResult: (item) => { attachment = item; drawAttachment(); } });
  const freeForm = h('div', { class: 'wa-freeform' },
    field('Message', textIn, 'With an attachment, this is its caption'), picker.el, attached);

  const tplSel = h('select', { name: 'template', on: { change: () => drawTemplate() } });
  const tplParams = h('div', { class: 'wa-params' });
  const tplPreview = h('p', { class: 'wa-preview', 'data-testid': 'whatsapp-template-preview', id: 'wa-tpl-preview' });
  const tplNote = h('p', { class: 'notice', role: 'status', 'data-testid': 'whatsapp-window-note' });
  const templatePicker = h('fieldset', { class: 'wa-templates', 'data-testid': 'whatsapp-template-picker', hidden: true },
    h('legend', null, 'Template'), tplNote, field('Template', tplSel), tplParams,
    h('h3', { class: 'wa-preview-title' }, 'Preview'), tplPreview);
  const sendErr = h('p', { class: 'error', role: 'alert', 'data-testid': 'whatsapp-send-error' });
  const sendBtn = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const composer = h('form', { class: 'card wa-composer', 'aria-labelledby': 'wa-compose-title', 'data-testid': 'whatsapp-composer',
    hidden: true, on: { submit: send } },
  h('h2', { id: 'wa-compose-title' }, 'Reply'), freeForm, templatePicker, sendErr, sendBtn);
  const closedNote = h('p', { class: 'muted', hidden: true }, 'This conversation is closed.');

  root.append(h('section', { class: 'wa-screen', 'aria-labelledby': 'wa-title' },
    h('h1', { id: 'wa-title' }, 'WhatsApp'),
    h('div', { class: 'sms-layout wa-layout' },
      h('section', { class: 'wa-conversations', 'aria-labelledby': 'wa-conv-title' },
        h('h2', { id: 'wa-conv-title' }, 'Conversations'),
        t.list,
        h('div', { class: 'check' }, mineBox, h('label', { for: mineBox.id }, 'Only mine')),
        listErr, t.panel),
      h('section', { class: 'wa-open', 'aria-labelledby': 'wa-thread-title' },
        threadTitle, threadInfo, actions, actionErr, threadHint, threadErr, thread, closedNote,
        canSend ? composer : null))));

  /* ------------------------------------------------------ the countdown */
  // Every window label on screen changes when a whole minute of some
  // window's time has gone: sleep until the soonest such moment.
  function tick() {
    clearTimeout(timer);
    timer = null;
    if (!alive) return;
    let next = Infinity;
    for (const el of root.querySelectorAll('[data-expires]')) {
      const c = convs.get(Number(el.dataset.conv));
      if (!c) continue;
      el.textContent = windowText(c);
      el.dataset.open = String(windowOpen(c));
      const left = windowLeft(c);
      if (left > 0) next = Math.min(next, left % MINUTE || MINUTE);
    }
    const c = open ? convs.get(open) : null;
    if (c && canSend) setMode();
    if (next !== Infinity) timer = setTimeout(tick, next + 20);
  }

  function windowLabel(c, attrs = {}) {
    return h('span', { class: 'wa-window', 'data-expires': c.window_expires_at || '', 'data-conv': String(c.id),
      'data-open': String(windowOpen(c)), ...attrs }, windowText(c));
  }

  /* ----------------------------------------------------------- the list */
  const visible = (c) => (view.statuses.length === 0 || view.statuses.includes(c.status)) && (!mine || c.assigned_to === me);

  function drawList() {
    // A keyboard user on a conversation keeps the focus through a redraw.
    const had = convList.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.conversationId : null;
    clear(convList);
    const list = [...convs.values()].filter(visible).sort(byActivity);
    for (const c of list) {
      const current = c.id === open;
      const last = c.last_message;
      const unread = Number(c.unread) || 0;
      convList.append(h('li', { 'data-testid': `whatsapp-conversation-${c.id}`, 'data-conversation-id': String(c.id),
        'data-status': c.status, 'data-unread': String(unread) },
      h('button', { type: 'button', class: `conv${current ? ' current' : ''}`, 'aria-current': current ? 'true' : null,
        on: { click: () => openConversation(c.id, true) } },
      h('span', { class: 'conv-number' }, customer(c),
        unread ? h('span', { class: 'badge', 'data-testid': 'whatsapp-unread' }, String(unread),
          h('span', { class: 'sr-only' }, ' unread')) : null),
      h('span', { class: 'conv-when' }, fmtTime(last?.created_at || c.last_message_at)),
      h('span', { class: 'conv-last' }, last?.direction === 'outbound' ? 'You: ' : '', preview(last)),
      h('span', { class: 'wa-conv-meta' }, h('span', { class: `pill ${STATUS_PILL[c.status] || ''}` }, STATUS_WORDS[c.status] || c.status),
        ' ', windowLabel(c)))));
    }
    convEmpty.hidden = list.length > 0;
    if (had) convList.querySelector(`li[data-conversation-id="${had}"] button`)?.focus();
    tick();
  }

  async function loadList(reset) {
    const my = ++listSeq;
    listErr.textContent = '';
    if (reset) cursor = null;
    try {
      const r = await api.get(`/api/v1/whatsapp/conversations${qs({
        status: view.statuses.join(','), assigned_to: mine ? me : null, limit: PAGE, cursor })}`);
      if (!alive || my !== listSeq) return;
      cursor = r.next_cursor ?? null;
      for (const c of r.data || []) convs.set(c.id, mergeConv(convs.get(c.id), c));
      more.hidden = !cursor;
      drawList();
    } catch (e) {
      if (alive && my === listSeq) listErr.textContent = `The conversations did not load: ${errorText(e)}`;
    }
  }

  // The room's events carry no number, name or message text: a
  // conversation not on screen yet, or with a new last message, is
  // fetched whole; otherwise the event is merged into what is known.
  async function onConvEvent(e) {
    const old = convs.get(e.id);
    const lastId = e.last_message?.id;
    if (old && (!e.last_message || (lastId !== undefined && lastId === old.last_message?.id))) {
      upsertConv({ ...e, last_message: e.last_message ? { ...old.last_message, ...e.last_message } : old.last_message });
      return;
    }
    try {
      const c = await api.get(`/api/v1/whatsapp/conversations/${e.id}`);
      if (alive) upsertConv(c);
    } catch { /* gone meanwhile, or not ours to see */ }
  }

  function upsertConv(c) {
    if (!c?.id) return;
    convs.set(c.id, mergeConv(convs.get(c.id), c));
    drawList();
    if (c.id === open) {
      drawHeader();
      if (Number(convs.get(c.id).unread) > 0) markRead();
    }
  }

  /* --------------------------------------------------------- the thread */
  const userName = (id) => {
    if (id === null || id === undefined) return null;
    if (id === me) return 'you';
    const u = users?.get(id);
    return u ? (u.name || u.username) : `user ${id}`;
  };

  function drawHeader() {
    const c = convs.get(open);
    clear(threadInfo);
    clear(actions);
    if (!c) return;
    threadTitle.textContent = `Conversation with ${customer(c)}`;
    const who = userName(c.assigned_to);
    threadInfo.append(...[
      c.customer_name && number(c) ? h('span', { class: 'wa-number' }, number(c)) : null,
      h('span', { class: `pill ${STATUS_PILL[c.status] || ''}`, 'data-testid': 'whatsapp-status' }, STATUS_WORDS[c.status] || c.status),
      windowLabel(c, { 'data-testid': 'whatsapp-window' }),
      h('span', { class: 'wa-assigned', 'data-testid': 'whatsapp-assigned' }, who ? `Assigned to ${who}` : 'Unassigned'),
    ].filter(Boolean));
    closedNote.hidden = c.status !== 'CLOSED';
    if (canSend) {
      composer.hidden = c.status === 'CLOSED';
      if (users) {
        const sel = h('select', { id: 'wa-assignee', name: 'assignee' }, h('option', { value: '' }, 'Nobody'),
          [...users.values()].map((u) => h('option', { value: String(u.id), selected: u.id === c.assigned_to },
            `${u.name || u.username}${u.id === me ? ' (you)' : ''}`)));
        if (c.assigned_to === null || c.assigned_to === undefined) sel.value = '';
        actions.append(h('div', { class: 'field' }, h('label', { for: sel.id }, 'Assigned to'), sel),
          h('button', { type: 'button', on: { click: () => assign(sel.value ? Number(sel.value) : null) } }, 'Assign'));
      }
      if (c.assigned_to !== me) actions.append(h('button', { type: 'button', on: { click: () => assign(me) } }, 'Assign to me'));
      if (!users && c.assigned_to !== null && c.assigned_to !== undefined) {
        actions.append(h('button', { type: 'button', on: { click: () => assign(null) } }, 'Unassign'));
      }
      if (c.status !== 'CLOSED') {
        actions.append(h('button', { type: 'button', class: 'danger', on: { click: closeConversation } }, 'Close conversation'));
      }
      actions.hidden = false;
      setMode();
    }
    tick();
  }

  function bubble(m, reactions) {
    const out = m.direction === 'outbound';
    const r = m.wa_message_id ? reactions.get(m.wa_message_id) : null;
    return h('div', { class: `msg wa ${out ? 'out' : 'in'}`, 'data-testid': `whatsapp-message-${m.id}`,
      'data-message-id': String(m.id), 'data-status': m.status, 'data-type': m.type },
    h('span', { class: 'sr-only' }, out ? 'You: ' : `${customer(convs.get(m.conversation_id) || {})}: `),
    content(m),
    r ? h('span', { class: 'wa-reaction', 'data-testid': 'whatsapp-reaction' },
      h('span', { class: 'sr-only' }, 'Reaction: '), r) : null,
    h('span', { class: 'meta' }, h('time', { datetime: m.created_at }, fmtTime(m.created_at)), ' ', ticks(m)));
  }

  const threadList = () => [...msgs.values()].filter((m) => m.conversation_id === open).sort((a, b) => a.id - b.id);
  const isTargeted = (m, targets) => m.type === 'reaction' && targets.has(m.reaction?.message_id);

  // A reaction shows on the message it reacts to when that is here (the
  // latest one wins; an empty emoji takes it back), else as a line.
  function reactionsOf(list) {
    const targets = new Set(list.map((m) => m.wa_message_id).filter(Boolean));
    const reactions = new Map();
    for (const m of list) if (isTargeted(m, targets)) reactions.set(m.reaction.message_id, m.reaction.emoji || '');
    return { targets, reactions };
  }

  function drawThread(toEnd) {
    const atEnd = toEnd || thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
    clear(thread);
    const list = threadList();
    const { targets, reactions } = reactionsOf(list);
    for (const m of list) if (!isTargeted(m, targets)) thread.append(bubble(m, reactions));
    if (!list.length) thread.append(h('p', { class: 'muted', 'data-empty': 'true' }, 'No messages yet.'));
    if (atEnd) thread.scrollTop = thread.scrollHeight;
  }

  // A message changed or arrived: only its bubble is drawn again (the
  // thread is a live region), or appended when it is the newest.
  function upsertMsg(m) {
    if (!m?.id || m.conversation_id !== open) return;
    msgs.set(m.id, mergeMsg(msgs.get(m.id), m));
    const cur = msgs.get(m.id);
    noteLast(cur);
    const el = thread.querySelector(`[data-message-id="${cur.id}"]`);
    if (cur.type === 'reaction') { drawThread(); return; }
    const { reactions } = reactionsOf(threadList());
    if (el) { el.replaceWith(bubble(cur, reactions)); return; }
    const ids = [...thread.querySelectorAll('[data-message-id]')].map((x) => Number(x.dataset.messageId));
    if (ids.some((x) => x > cur.id)) { drawThread(); return; }
    const atEnd = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
    thread.querySelector('[data-empty]')?.remove();
    thread.append(bubble(cur, reactions));
    if (atEnd) thread.scrollTop = thread.scrollHeight;
  }

  // The list's preview follows the open conversation's newest message
  // (a send changes no conversation, so the room says nothing of it).
  function noteLast(m) {
    const c = convs.get(m.conversation_id);
    if (!c || (c.last_message?.id && c.last_message.id > m.id)) return;
    const last = { id: m.id, type: m.type, direction: m.direction, text: m.text, status: m.status, created_at: m.created_at,
      template: m.template ?? undefined };
    if (c.last_message?.id === m.id && JSON.stringify(c.last_message) === JSON.stringify({ ...c.last_message, ...last })) return;
    convs.set(c.id, { ...c, last_message: { ...c.last_message, ...last },
      last_message_at: c.last_message_at && c.last_message_at > m.created_at ? c.last_message_at : m.created_at });
    drawList();
  }

  // Everything after the last message seen (all of it when after is null).
  async function loadMessages(id, after, toEnd) {
    let from = after;
    for (;;) {
      const r = await api.get(`/api/v1/whatsapp/conversations/${id}/messages${qs({ after_id: from, limit: MSG_PAGE })}`);
      if (!alive || open !== id) return;
      const page = r.data || [];
      for (const m of page) msgs.set(m.id, mergeMsg(msgs.get(m.id), m));
      if (page.length < MSG_PAGE) break;
      from = Math.max(...page.map((m) => m.id));
    }
    drawThread(toEnd);
  }

  let reading = null;
  let readAgain = false;
  function markRead() {
    if (reading) { readAgain = true; return; }
    const id = open;
    reading = api.patch(`/api/v1/whatsapp/conversations/${id}/read`)
      .then((c) => {
        const old = convs.get(id);
        if (!alive || !old) return;
        convs.set(id, { ...old, ...(c?.id === id ? c : {}), unread: 0 });
        drawList();
      })
      .catch(() => { /* the badge stays; the next open tries again */ })
      .finally(() => {
        reading = null;
        if (readAgain && alive && open === id) { readAgain = false; markRead(); }
      });
  }

  async function openConversation(id, focus) {
    if (open !== id) {
      offRoom?.();
      offRoom = null;
      msgs.clear();
      attachment = null;
      drawAttachment();
      textIn.value = '';
      sendErr.textContent = '';
      actionErr.textContent = '';
      tplNote.textContent = '';
      tplSel.value = '';
      drawTemplate();
    }
    open = id;
    threadHint.hidden = true;
    thread.hidden = false;
    threadInfo.hidden = false;
    threadErr.textContent = '';
    drawList();
    drawHeader();
    drawThread();
    if (focus) threadTitle.focus();
    if (!offRoom) offRoom = ctx.subscribe(`whatsapp:${id}`, onEvent);
    try {
      if (!convs.has(id)) {
        const c = await api.get(`/api/v1/whatsapp/conversations/${id}`);
        if (!alive || open !== id) return;
        convs.set(id, mergeConv(convs.get(id), c));
        drawList();
        drawHeader();
      }
      await loadMessages(id, null, true);
      if (alive && open === id) markRead();
    } catch (e) {
      if (alive && open === id) threadErr.textContent = `This conversation did not load: ${errorText(e)}`;
    }
  }

  /* ------------------------------------------------------------ actions */
  async function assign(userId) {
    actionErr.textContent = '';
    const id = open;
    try {
      const c = await api.patch(`/api/v1/whatsapp/conversations/${id}/assign`, { user_id: userId });
      if (!alive) return;
      if (c?.id) upsertConv(c);
      ctx.toast(userId === null ? 'Conversation unassigned' : `Conversation assigned to ${userName(userId)}`);
    } catch (e) {
      if (alive) actionErr.textContent = `Not assigned: ${errorText(e)}`;
    }
  }

  async function closeConversation() {
    actionErr.textContent = '';
    const id = open;
    try {
      const c = await api.patch(`/api/v1/whatsapp/conversations/${id}/close`);
      if (!alive) return;
      if (c?.id) upsertConv(c);
      else upsertConv({ ...convs.get(id), status: 'CLOSED' });
      ctx.toast('Conversation closed');
      threadTitle.focus();
    } catch (e) {
      if (alive) actionErr.textContent = `Not closed: ${errorText(e)}`;
    }
  }

  /* ----------------------------------------------------------- composer */
  let templateMode = null;
  // Free-form while the window is open, templates once it has closed.
  function setMode(note) {
    const closed = !windowOpen(convs.get(open));
    if (closed !== templateMode) {
      templateMode = closed;
      freeForm.hidden = closed;
      templatePicker.hidden = !closed;
      composer.dataset.mode = closed ? 'template' : 'text';
      if (closed) loadTemplates();
    }
    if (note !== undefined) tplNote.textContent = note;
    else if (closed && !tplNote.textContent) {
      tplNote.textContent = 'The 24-hour window is closed: only an approved template can be sent until the customer writes again.';
    }
    if (!closed) tplNote.textContent = '';
  }

  function drawAttachment() {
    clear(attached);
    attached.hidden = !attachment;
    if (!attachment) return;
    attached.append(`Attached: ${attachment.filename || `file ${attachment.id}`} (${attachment.mime_type}, sent as `
      + `${mediaType(attachment.mime_type)}) `,
    h('button', { type: 'button', on: { click: () => { attachment = null; drawAttachment(); } } }, 'Remove attachment'));
  }

  async function loadTemplates() {
    if (templates) return;
    try {
      const r = await api.get('/api/v1/whatsapp/templates');
      if (!alive) return;
      templates = (r.data || []).filter((x) => !x.status || x.status === 'APPROVED');
      clear(tplSel);
      tplSel.append(h('option', { value: '' }, templates.length ? 'Choose a template' : 'No approved templates'),
        ...templates.map((x, i) => h('option', { value: String(i) }, `${x.name} (${x.language})`)));
      drawTemplate();
    } catch (e) {
      templates = null;
      if (alive) sendErr.textContent = `The templates did not load: ${errorText(e)}`;
    }
  }

  const chosen = () => (templates && tplSel.value !== '' ? templates[Number(tplSel.value)] : null);
  const paramValues = () => [...tplParams.querySelectorAll('input')].map((i) => i.value);

  function drawTemplate() {
    const tpl = chosen();
    clear(tplParams);
    const n = bodyParams(tpl);
    for (let i = 1; i <= n; i++) {
      const input = h('input', { name: `parameter_${i}`, required: true, autocomplete: 'off', 'data-param': String(i),
        on: { input: () => drawPreview() } });
      const ex = (tpl.components || []).find((c) => String(c.type).toUpperCase() === 'BODY')?.example?.body_text?.[0]?.[i - 1];
      tplParams.append(field(`Body parameter {{${i}}}`, input, ex ? `For example: ${ex}` : undefined));
    }
    drawPreview();
  }

  function drawPreview() {
    const tpl = chosen();
    tplPreview.textContent = tpl ? fillTemplate(bodyOf(tpl), paramValues()) || '(This template has no body text.)'
      : 'Choose a template to see its text.';
  }

  function sendFailed(err) {
    if (err.status === 409 && err.errors?.[0]?.field === 'window') {
      // The window closed meanwhile: ask again and offer the templates.
      const c = convs.get(open);
      if (c) refused.set(c.id, c.window_expires_at ?? null);
      api.get(`/api/v1/whatsapp/conversations/${open}`).then((x) => { if (alive) upsertConv(x); }).catch(() => {});
      setMode('The 24-hour window has closed: the message was not sent. Only an approved template can be sent now.');
      tick();
      return;
    }
    if (err.status === 429) {
      sendErr.textContent = err.retryAfter ? `Not sent: too many messages just now. Try again in ${err.retryAfter} s.`
        : 'Not sent: too many messages just now. Try again in a moment.';
    } else if (err.status === 503) {
      sendErr.textContent = 'Not sent: WhatsApp is not available right now (not configured, or the provider is down). '
        + 'Try again later or ask an administrator.';
    } else if (err.status === 403) {
      sendErr.textContent = 'Not sent: your role does not allow sending WhatsApp messages.';
    } else {
      sendErr.textContent = `Not sent: ${errorText(err)}`;
    }
  }

  async function send(e) {
    e.preventDefault();
    sendErr.textContent = '';
    const id = open;
    if (!id) return;
    // The window is checked again now: it may have closed while typing.
    setMode();
    let path;
    let body;
    if (templateMode) {
      const tpl = chosen();
      if (!tpl) { sendErr.textContent = 'Choose a template.'; return; }
      const values = paramValues();
      if (values.some((v) => !v.trim())) { sendErr.textContent = 'Fill in every parameter of the template.'; return; }
      path = '/api/v1/whatsapp/messages/template';
      body = { conversation_id: id, name: tpl.name, language: tpl.language };
      if (values.length) body.components = [{ type: 'body', parameters: values.map((v) => ({ type: 'text', text: v })) }];
    } else if (attachment) {
      path = '/api/v1/whatsapp/messages';
      body = { conversation_id: id, type: mediaType(attachment.mime_type), media_id: attachment.id };
      if (textIn.value.trim()) body.caption = textIn.value;
    } else {
      if (!textIn.value.trim()) { sendErr.textContent = 'Write a message or attach a file.'; return; }
      path = '/api/v1/whatsapp/messages';
      body = { conversation_id: id, type: 'text', text: textIn.value };
    }
    sendBtn.disabled = true;
    try {
      const m = await api.post(path, body);
      if (!alive) return;
      if (templateMode) {
        tplSel.value = '';
        drawTemplate();
      } else {
        textIn.value = '';
        attachment = null;
        drawAttachment();
      }
      if (open === id) upsertMsg(m);
      ctx.toast('Message queued');
    } catch (err) {
      if (alive) sendFailed(err);
    } finally {
      if (alive) sendBtn.disabled = false;
    }
  }

  /* --------------------------------------------------------------- live */
  function onEvent(f) {
    if (!f.data) return;
    if (f.event === 'whatsapp.conversation.updated') onConvEvent(f.data);
    else if (f.event === 'whatsapp.message.created' || f.event === 'whatsapp.message.status') {
      if (f.data.conversation_id !== open) return;
      onMsgEvent(f.data);
      if (f.event === 'whatsapp.message.created' && f.data.direction === 'inbound') markRead();
    }
  }

  // Message events carry no text, caption or media: a message not on
  // screen yet, or whose media has arrived since, is fetched whole; a
  // status change of one on screen is merged into it.
  async function onMsgEvent(e) {
    const old = msgs.get(e.id);
    const mediaNew = e.media_id && !(old?.media?.url && old.media_id === e.media_id);
    if (old && !mediaNew) { upsertMsg(e); return; }
    try {
      const m = await api.get(`/api/v1/whatsapp/messages/${e.id}`);
      if (alive) upsertMsg(m);
    } catch { /* erased meanwhile, or not ours to see */ }
  }
  const offList = ctx.subscribe('whatsapp', onEvent);
  // A room subscribed (again, after a reconnect): what changed meanwhile
  // is fetched; the open conversation's from its first message, for the
  // statuses of the messages already on screen.
  let first = true;
  const onSubscribed = (e) => {
    if (e.detail === 'whatsapp') {
      if (first) { first = false; return; }
      loadList(true);
    } else if (open && e.detail === `whatsapp:${open}`) {
      loadMessages(open, null).catch(() => {});
    }
  };
  ctx.socket?.addEventListener('subscribed', onSubscribed);

  if (canSend && canListUsers) {
    api.get(`/api/v1/users${qs({ limit: 200 })}`).then((r) => {
      if (!alive) return;
      users = new Map((r.data || []).filter((u) => u.is_active !== false).map((u) => [u.id, u]));
      if (open) drawHeader();
    }).catch(() => { /* the plain buttons stay */ });
  }

  t.choose(0, false);
  const wanted = Number(params?.rest?.[0]);
  if (Number.isInteger(wanted) && wanted > 0) openConversation(wanted, false);
  return () => {
    alive = false;
    clearTimeout(timer);
    offList();
    offRoom?.();
    ctx.socket?.removeEventListener('subscribed', onSubscribed);
  };
}
