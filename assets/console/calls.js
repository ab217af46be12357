// The Calls screen (#/calls, voice.read): the call log with live status
// (room `telephony`, whose events carry no numbers: a call not on screen
// yet is fetched by id), a dialer (voice.place) that either bridges the
// callee to "my phone" (connect_to, remembered in this browser) or speaks
// a message, a hangup button on calls not yet ended (409: it already
// had), and the call and SMS statistics.
import { h, clear, field, fmtTime, fmtDuration, errorText, showErrors } from '/js/dom.js';
import { qs } from '/js/api.js';
import { CALL_ENDED, callPill, voiceAvailable, tabs, mountStats } from './telephony.js';

const PAGE = 50;
const CONNECT_KEY = 'switchboard.voice.connect_to';
const number = (c) => (c.direction === 'inbound' ? c.from : c.to);

function remembered() {
  try { return localStorage.getItem(CONNECT_KEY) || ''; } catch { return ''; }
}
function remember(v) {
  try { if (v) localStorage.setItem(CONNECT_KEY, v); else localStorage.removeItem(CONNECT_KEY); } catch { /* private mode */ }
}

export function mount(root, ctx) {
  const { api } = ctx;
  const canPlace = ctx.can('voice.place');
  let alive = true;
  let cursor = null;
  let stats = null;
  const calls = new Map();		// id -> call
  const rows = new Map();		// id -> tr

  /* ------------------------------------------------------------ dialer */
  const toIn = h('input', { name: 'to', type: 'tel', autocomplete: 'off', maxlength: '64', required: true });
  const modeConnect = h('input', { type: 'radio', name: 'mode', value: 'connect', id: 'call-mode-connect', on: { change: () => modeChanged() } });
  const modeSpeak = h('input', { type: 'radio', name: 'mode', value: 'speak', id: 'call-mode-speak', on: { change: () => modeChanged() } });
  const connectIn = h('input', { name: 'connect_to', type: 'tel', autocomplete: 'tel', maxlength: '64', value: remembered() });
  const messageIn = h('textarea', { name: 'message', rows: '2', maxlength: '1000' });
  const recordIn = h('input', { type: 'checkbox', name: 'record', id: 'call-record' });
  const connectField = field('My phone', connectIn, 'Your phone or SIP user; this browser remembers it');
  const messageField = field('Message to speak', messageIn);
  const dialErr = h('p', { class: 'error', role: 'alert', 'data-testid': 'call-error' });
  const dialBtn = h('button', { type: 'submit', class: 'primary' }, 'Place call');
  const dialer = h('form', { class: 'card call-dialer', 'aria-labelledby': 'call-dial-title', on: { submit: place } },
    h('h2', { id: 'call-dial-title' }, 'Place a call'),
    field('Number to call', toIn, 'A phone number; spaces and dashes are fine'),
    h('fieldset', { class: 'call-mode' }, h('legend', null, 'When they answer'),
      h('div', { class: 'check' }, modeConnect, h('label', { for: modeConnect.id }, 'Connect to my phone')),
      h('div', { class: 'check' }, modeSpeak, h('label', { for: modeSpeak.id }, 'Speak a message and hang up'))),
    connectField, messageField,
    h('div', { class: 'check' }, recordIn, h('label', { for: recordIn.id }, 'Record the call')),
    dialErr, dialBtn);
  (connectIn.value ? modeConnect : modeSpeak).checked = true;

  function modeChanged() {
    connectField.hidden = !modeConnect.checked;
    messageField.hidden = !modeSpeak.checked;
  }
  modeChanged();

  /* --------------------------------------------------------------- log */
  const tbody = h('tbody');
  const logErr = h('p', { class: 'error', role: 'alert' });
  const empty = h('p', { class: 'muted', hidden: true }, 'No calls yet.');
  const more = h('button', { type: 'button', hidden: true, on: { click: () => load(false) } }, 'Load more');
  const announce = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite', 'data-testid': 'call-announce' });
  const logTitle = h('h2', { id: 'call-log-title', tabindex: '-1' }, 'Call log');
  const log = h('section', { 'aria-labelledby': 'call-log-title' }, logTitle, logErr,
    h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'call-log' },
      h('caption', { class: 'sr-only' }, 'Calls, newest first'),
      h('thead', null, h('tr', null, ['Started', 'Direction', 'Number', 'Status', 'Duration', 'Provider', 'Actions']
        .map((t) => h('th', { scope: 'col' }, t)))),
      tbody)), empty, more);
  const unavailable = h('p', { class: 'notice', hidden: true, 'data-testid': 'voice-unavailable' },
    'Voice calls are not available on this server yet (the telephony plugin serves no call routes).');

  const logView = h('div', { class: 'calls-layout' }, canPlace ? dialer : null, log);
  const statsView = h('div', { class: 'calls-stats' });
  const t = tabs('Call views', [{ key: 'log', label: 'Call log' }, { key: 'stats', label: 'Statistics' }], (key) => {
    clear(t.panel);
    if (key === 'log') { t.panel.append(logView); return; }
    t.panel.append(statsView);
    if (stats) { stats.reload(); return; }
    stats = { reload: () => {}, stop: () => {} };
    // Without the voice routes only the SMS figures can be drawn.
    voiceAvailable(api).then((ok) => {
      if (alive) stats = mountStats(statsView, ctx, { calls: ok, sms: ctx.can('sms.read') }, 'call-stats');
    });
  }, 'calls');
  root.append(h('section', { class: 'calls-screen', 'aria-labelledby': 'calls-title' },
    h('h1', { id: 'calls-title' }, 'Calls'), unavailable, t.list, t.panel));

  function row(c) {
    const ended = CALL_ENDED.has(c.status);
    const hang = canPlace && !ended ? h('button', { type: 'button', class: 'danger',
      'aria-label': `Hang up the call with ${number(c) || `#${c.id}`}`, on: { click: () => hangup(c.id) } }, 'Hang up') : null;
    return h('tr', { 'data-call-id': String(c.id), 'data-status': c.status },
      h('td', null, h('time', { datetime: c.started_at || c.created_at }, fmtTime(c.started_at || c.created_at))),
      h('td', null, c.direction === 'inbound' ? 'In' : 'Out'),
      h('td', null, number(c) ?? ''),
      h('td', null, callPill(c.status), c.hangup_cause ? h('small', { class: 'hint' }, c.hangup_cause) : null),
      h('td', { class: 'num' }, c.duration_s != null ? fmtDuration(c.duration_s) : '—'),
      h('td', null, c.provider ?? '—'),
      h('td', null, hang));
  }

  function draw() {
    const sorted = [...calls.values()].sort((a, b) => b.id - a.id);
    clear(tbody);
    rows.clear();
    for (const c of sorted) {
      const tr = row(c);
      rows.set(c.id, tr);
      tbody.append(tr);
    }
    empty.hidden = sorted.length > 0;
  }

  // A call's status only moves forward: an answer that left the server
  // before a live event (the hangup's 202, say) must not undo it.
  const RANK = { queued: 0, initiated: 1, ringing: 2, 'in-progress': 3 };
  const rank = (st) => (CALL_ENDED.has(st) ? 4 : RANK[st] ?? -1);

  function upsert(c) {
    const old = calls.get(c.id);
    if (old && rank(c.status) < rank(old.status)) return;
    const cur = { ...old, ...c };
    calls.set(c.id, cur);
    const tr = rows.get(c.id);
    if (tr) {
      const focused = tr.contains(document.activeElement);
      const fresh = row(cur);
      tr.replaceWith(fresh);
      rows.set(c.id, fresh);
      if (focused) logTitle.focus();
    } else draw();
    if (old && old.status !== cur.status) announce.textContent = `Call with ${number(cur) || `#${cur.id}`}: ${cur.status}`;
  }

  async function load(reset) {
    logErr.textContent = '';
    if (reset) cursor = null;
    try {
      const r = await api.get(`/api/v1/calls${qs({ limit: PAGE, cursor })}`);
      if (!alive) return;
      if (reset) calls.clear();
      for (const c of r.data || []) calls.set(c.id, { ...calls.get(c.id), ...c });
      cursor = r.next_cursor ?? null;
      more.hidden = !cursor;
      draw();
    } catch (e) {
      if (alive) logErr.textContent = `The calls did not load: ${errorText(e)}`;
    }
  }

  async function place(e) {
    e.preventDefault();
    showErrors(dialer, dialErr, null);
    const body = { to: toIn.value.trim() };
    if (modeConnect.checked) {
      body.connect_to = connectIn.value.trim();
      if (!body.connect_to) { dialErr.textContent = 'Type the number of your phone, or choose to speak a message.'; return; }
      remember(body.connect_to);
    } else {
      body.message = messageIn.value.trim();
      if (!body.message) { dialErr.textContent = 'Type the message to speak, or choose to connect to your phone.'; return; }
    }
    if (recordIn.checked) body.record = true;
    if (!body.to) { dialErr.textContent = 'Type the number to call.'; return; }
    dialBtn.disabled = true;
    try {
      const c = await api.post('/api/v1/calls/initiate', body);
      if (!alive) return;
      upsert(c);
      ctx.toast(`Calling ${c.to}`);
    } catch (err) {
      if (!alive) return;
      if (err.status === 422 || err.status === 400) {
        showErrors(dialer, dialErr, err);
        dialErr.textContent = `Not placed: ${errorText(err)}`;
      } else if (err.status === 429) {
        dialErr.textContent = err.retryAfter
          ? `Not placed: too many calls just now. Try again in ${err.retryAfter} second${err.retryAfter === 1 ? '' : 's'}.`
          : 'Not placed: too many calls just now. Try again in a moment.';
      } else if (err.status === 503) {
        dialErr.textContent = 'Not placed: no voice provider is available for this number right now (none is configured, '
          + 'or it is down). Try again later or ask an administrator.';
      } else {
        dialErr.textContent = `Not placed: ${errorText(err)}`;
      }
    } finally {
      if (alive) dialBtn.disabled = false;
    }
  }

  async function hangup(id) {
    try {
      const c = await api.post(`/api/v1/calls/${id}/hangup`);
      if (!alive) return;
      if (c && c.id) upsert(c);
      ctx.toast('Hanging up');
    } catch (err) {
      if (!alive) return;
      if (err.status === 409) ctx.toast('That call had already ended');
      else ctx.toast(`Could not hang up: ${errorText(err)}`, 'error');
    }
    // Whatever happened, show the call as the server has it now.
    try {
      const c = await api.get(`/api/v1/calls/${id}`);
      if (alive) upsert(c);
    } catch { /* gone */ }
  }

  /* -------------------------------------------------------------- live */
  const onEvent = async (f) => {
    if (!f.event?.startsWith('telephony.call.') || !f.data?.id) return;
    if (calls.has(f.data.id)) { upsert(f.data); return; }
    try {
      const c = await api.get(`/api/v1/calls/${f.data.id}`);
      if (alive) upsert(c);
    } catch { /* erased meanwhile */ }
  };
  let off = () => {};
  let first = true;
  const onSubscribed = (e) => {
    if (e.detail !== 'telephony') return;
    if (first) { first = false; return; }
    load(true);
  };

  t.choose(0, false);
  voiceAvailable(api).then((ok) => {
    if (!alive) return;
    if (!ok) {
      unavailable.hidden = false;
      dialBtn.disabled = true;
      empty.hidden = false;
      return;
    }
    off = ctx.subscribe('telephony', onEvent);
    ctx.socket?.addEventListener('subscribed', onSubscribed);
    load(true);
  });
  return () => {
    alive = false;
    off();
    ctx.socket?.removeEventListener('subscribed', onSubscribed);
    stats?.stop();
  };
}
