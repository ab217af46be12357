// The donor page (/donor): a donor opens a conversation with support,
// follows it live, chats, asks for a call and closes it.  Everything the
// donor and the agents type is set as text (h() never parses HTML).
//
// The donor token from POST /api/v1/donor-queries lives in sessionStorage
// (DonorSession): a reload returns to the same conversation, a new tab
// starts afresh.  Besides {donor_token, query_id, donor, donor_id} the
// session keeps the donor's pending call request ({id, mode}), because
// the API offers donors no way to list their requests.
import { DonorSession, ApiError, qs } from '/js/api.js';
import { Socket } from '/js/ws.js';
import { h, clear, field, fmtTime, errorText } from '/js/dom.js';

const DQ = '/api/v1/donor-queries';
const CALL = '/api/v1/communication/call';
const CALLS = '/api/v1/communication/calls';
const OPEN = new Set(['IN_PROGRESS', 'TRANSFERRED']);
const MODES = [['VIDEO', 'Video call'], ['AUDIO', 'Voice call (audio only)'], ['SCREEN', 'Share my screen']];
const modeLabel = (m) => (MODES.find(([v]) => v === m) || [m, m])[1];
const TITLE = 'Contact support';

const session = new DonorSession();
const socket = new Socket({ token: () => session.token });
const app = document.getElementById('app');
let conv = null;		// the conversation on screen: see openConversation()

// A token the server no longer accepts (DonorSession clears itself and
// says so): back to the start form, with a word of explanation.
session.addEventListener('expired', () => {
  const prev = conv?.who;
  endConversation();
  renderStart({ prefill: prev, notice: 'Your conversation could not be reopened: its access has expired. '
    + 'Please start a new conversation; our team can still see your earlier messages.' });
});

// Once the server has taken query:{id} (again, after a reconnect), events
// flow: catching up from that moment on misses nothing said meanwhile.
socket.addEventListener('subscribed', (e) => { if (conv && e.detail === `query:${conv.id}`) conv.onReady(); });
socket.addEventListener('status', () => conv?.onSocketStatus());
// The gateway refused the token (it expired while the page was open): an
// HTTP request settles it, and a 401 there ends the session properly.
socket.addEventListener('error', (e) => { if (e.detail?.code === 'UNAUTHENTICATED') conv?.onAuthError(); });

function show(...nodes) {
  clear(app);
  app.removeAttribute('aria-busy');
  app.append(...nodes);
}

// A labelled control with an error line beside it (role=alert, so a
// screen reader hears it when it appears).
function fieldWithError(label, control, name, hint) {
  const wrap = field(label, control, hint);
  const err = h('p', { id: `${control.id}-err`, class: 'error field-error', role: 'alert', dataset: { field: name } });
  wrap.append(err);
  control.setAttribute('aria-describedby',
    [control.getAttribute('aria-describedby'), err.id].filter(Boolean).join(' '));
  return { wrap, err };
}

// A field error from the envelope, in plain words.
function friendly(e) {
  switch (e.code) {
    case 'REQUIRED': case 'EMPTY': case 'NULL_NOT_ALLOWED': case 'TOO_SHORT':
      return 'Please fill this in.';
    case 'TOO_LONG':
      return `This ${e.message}.`;
    default: {
      const m = String(e.message || 'is not valid');
      return `${m.charAt(0).toUpperCase()}${m.slice(1)}.`;
    }
  }
}

// POST /api/v1/donor-queries with fetch itself: a 429's Retry-After is
// needed, and call() keeps only the body.
async function createQuery(body) {
  let res;
  try {
    res = await fetch(DQ, { method: 'POST', credentials: 'omit',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { message: 'The server cannot be reached' });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const e = new ApiError(res.status, data);
    const ra = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    e.retryAfter = Number.isFinite(ra) && ra >= 0 ? ra : null;
    throw e;
  }
  return data;
}

/* ------------------------------------------------------------ start form */

function renderStart({ notice, prefill } = {}) {
  document.title = TITLE;
  const c = {
    donor: h('input', { name: 'donor', autocomplete: 'name', required: true, maxlength: 200,
      value: prefill?.donor || '' }),
    donor_id: h('input', { name: 'donor_id', autocomplete: 'off', spellcheck: 'false', required: true,
      maxlength: 100, value: prefill?.donor_id || '' }),
    test: h('input', { name: 'test', maxlength: 200 }),
    stage: h('input', { name: 'stage', maxlength: 200 }),
    device: h('input', { name: 'device', maxlength: 200 }),
    content: h('textarea', { name: 'content', rows: 5, required: true, maxlength: 4000 }),
  };
  const f = {
    donor: fieldWithError('Your name', c.donor, 'donor'),
    donor_id: fieldWithError('Donor ID', c.donor_id, 'donor_id', 'The ID on your donor card or in your donor account.'),
    test: fieldWithError('Test', c.test, 'test', 'Which test this is about, if any.'),
    stage: fieldWithError('Stage', c.stage, 'stage', 'For example: booked, sample taken, waiting for results.'),
    device: fieldWithError('Device', c.device, 'device', 'For example: Android phone, Chrome on Windows.'),
    content: fieldWithError('Your message', c.content, 'content', 'Tell us what you need help with.'),
  };
  const formError = h('p', { class: 'error form-error', role: 'alert', 'data-testid': 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Start conversation');
  const more = h('details', { class: 'more' }, h('summary', null, 'More details'),
    h('p', { class: 'hint' }, 'Optional, but it helps us answer faster.'),
    h('div', { class: 'row' }, f.test.wrap, f.stage.wrap), f.device.wrap);
  const heading = h('h1', { tabindex: '-1' }, 'How can we help?');

  const clearErrors = () => {
    formError.textContent = '';
    for (const [k, x] of Object.entries(f)) {
      x.err.textContent = '';
      c[k].removeAttribute('aria-invalid');
    }
  };

  const showErrors = (err) => {
    const loose = [];
    let first = null;
    for (const e of err.errors || []) {
      if (e.field && f[e.field]) {
        f[e.field].err.textContent = friendly(e);
        c[e.field].setAttribute('aria-invalid', 'true');
        if (['test', 'stage', 'device'].includes(e.field)) more.open = true;
        first ??= c[e.field];
      } else {
        loose.push(e.field ? `${e.field}: ${e.message}` : e.message);
      }
    }
    formError.textContent = loose.length || !first
      ? `Please check the form: ${loose.join('; ') || err.message}.` : 'Please check the highlighted fields.';
    first?.focus();
  };

  let busy = false;
  const form = h('form', { class: 'start-form', novalidate: true, 'aria-labelledby': 'start-title', on: {
    submit: async (ev) => {
      ev.preventDefault();
      if (busy) return;
      clearErrors();
      const body = { donor: c.donor.value.trim(), donor_id: c.donor_id.value.trim(), content: c.content.value.trim() };
      for (const k of ['test', 'stage', 'device']) {
        const v = c[k].value.trim();
        if (v) body[k] = v;
      }
      busy = true;
      submit.disabled = true;
      form.setAttribute('aria-busy', 'true');
      try {
        const r = await createQuery(body);
        session.clear();
        session.set({ donor_token: r.donor_token, query_id: r.query.id, donor: r.query.donor,
          donor_id: r.query.donor_id, call_request: null });
        openConversation(r.query);
        return;
      } catch (e) {
        if (e.status === 429) {
          formError.textContent = e.retryAfter !== null
            ? `Too many requests: please try again in ${e.retryAfter} s.`
            : 'Too many requests: please try again in a little while.';
        } else if (e.status === 400 || e.status === 422) {
          showErrors(e);
        } else {
          formError.textContent = `We could not start the conversation: ${errorText(e)}. Please try again.`;
        }
      } finally {
        busy = false;
        submit.disabled = false;
        form.removeAttribute('aria-busy');
      }
    },
  } },
  h('div', { class: 'row' }, f.donor.wrap, f.donor_id.wrap),
  f.content.wrap, more, formError, h('div', { class: 'actions' }, submit));
  heading.id = 'start-title';

  show(h('section', { class: 'donor-card start', 'data-testid': 'start' },
    heading,
    h('p', { class: 'intro' }, 'Send us a message and a member of our support team will reply here. '
      + 'You can also ask for a video or voice call once the conversation has started.'),
    notice ? h('p', { class: 'notice', role: 'status', 'data-testid': 'notice' }, notice) : null,
    form));
  if (notice) heading.focus();
  else (prefill?.donor ? c.content : c.donor).focus();
}

/* ---------------------------------------------------------- conversation */

function endConversation() {
  if (!conv) return;
  conv.stop();
  conv = null;
}

const STATUS_PHRASE = {
  IN_PROGRESS: (q) => (q.assigned_to ? 'An agent is with you' : 'Waiting for an agent'),
  TRANSFERRED: () => 'Passed to another agent, who will be with you shortly',
  RESOLVED: () => 'Resolved by our team',
  CLOSED: () => 'You closed this conversation',
};
const STATUS_PILL = { IN_PROGRESS: 'warn', TRANSFERRED: 'warn', RESOLVED: 'ok', CLOSED: '' };

function messageEl(m) {
  const system = m.sender_type === 'SYSTEM' || !['QUERY', 'CHAT'].includes(m.message_type);
  const kind = system ? 'system' : (m.sender_type === 'DONOR' ? 'mine' : 'theirs');
  const who = kind === 'mine' ? 'You' : 'Support';
  const data = { id: String(m.id), sender: m.sender_type || '', type: m.message_type || '' };
  if (system) {
    return h('div', { class: 'msg system', dataset: data },
      h('span', { class: 'body' }, m.content ?? ''), ' ', h('span', { class: 'time' }, `· ${fmtTime(m.created_at)}`));
  }
  return h('div', { class: `msg ${kind}`, dataset: data },
    h('span', { class: 'meta' }, `${who} · ${fmtTime(m.created_at)}`),
    h('span', { class: 'body' }, m.content ?? ''));
}

// The conversation for session.state.query_id; initial: the query when
// it is already known (just created).
function openConversation(initial) {
  endConversation();
  const id = session.state.query_id;
  const who = { donor: session.state.donor, donor_id: session.state.donor_id };
  const c = { id, who, alive: true, query: null, lastId: 0, msgs: new Map(), live: null, left: false,
    syncing: null, again: false, callSeq: 0, unsub: null };
  conv = c;
  document.title = `Conversation #${id} · ${TITLE}`;
  show(h('p', { class: 'loading' }, 'Opening your conversation…'));

  /* ---- the page ---- */
  const heading = h('h1', { id: 'conv-title', tabindex: '-1' }, 'Your conversation');
  const meta = h('p', { class: 'muted conv-meta' });
  const statusCode = h('span', { class: 'pill status-code' });
  const statusPhrase = h('span', { class: 'status-phrase' });
  const status = h('div', { class: 'query-status', 'data-testid': 'query-status', role: 'status' },
    statusCode, ' ', statusPhrase);
  const conn = h('span', { class: 'conn', 'data-testid': 'ws-status' });
  const notice = h('p', { class: 'notice', role: 'status', 'data-testid': 'conv-notice' });
  const thread = h('div', { class: 'thread', 'data-testid': 'thread', role: 'log', 'aria-live': 'polite',
    'aria-label': 'Messages', tabindex: '0' });

  const text = h('textarea', { name: 'message', rows: 2, maxlength: 4000 });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const sendError = h('p', { class: 'error', role: 'alert', 'data-testid': 'send-error' });
  const composer = h('form', { class: 'composer', 'aria-label': 'Send a message', on: { submit: (e) => { e.preventDefault(); sendMessage(); } } },
    h('div', { class: 'composer-row' },
      field('Message', text, 'Enter sends; Shift+Enter starts a new line.'), send),
    sendError);
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });

  // Calls.
  const mode = h('select', { name: 'mode' }, MODES.map(([v, l]) => h('option', { value: v }, l)));
  const requestBtn = h('button', { type: 'button', class: 'primary', on: { click: requestCall } }, 'Request a call');
  const requestRow = h('div', { class: 'call-request row' }, field('Call type', mode), requestBtn);
  const pendingText = h('p', { class: 'pending-text' });
  const cancelBtn = h('button', { type: 'button', on: { click: cancelCall } }, 'Cancel request');
  const pending = h('div', { class: 'call-pending', 'data-testid': 'call-pending', hidden: true },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), pendingText, cancelBtn);
  const callHint = h('p', { class: 'hint' });
  const callNote = h('p', { class: 'call-note', role: 'status', 'data-testid': 'call-note' });
  const frameBox = h('div', { class: 'call-frame-box' });
  const leaveBtn = h('button', { type: 'button', class: 'danger', on: { click: leaveCall } }, 'Leave call');
  const rejoinBtn = h('button', { type: 'button', class: 'primary', on: { click: rejoinCall } }, 'Rejoin call');
  const liveBox = h('div', { class: 'call-live', hidden: true }, frameBox, h('div', { class: 'actions' }, leaveBtn, rejoinBtn));
  const callPanel = h('section', { class: 'call-panel', 'aria-labelledby': 'call-title' },
    h('h2', { id: 'call-title' }, 'Talk to an agent'),
    callHint, requestRow, pending, callNote, liveBox);

  // Closing, and starting over.
  const closeBtn = h('button', { type: 'button', class: 'danger', on: { click: () => confirmClose() } }, 'Close query');
  const confirmBox = h('div', { class: 'confirm', role: 'group', 'aria-labelledby': 'confirm-text', hidden: true });
  const endError = h('p', { class: 'error', role: 'alert' });
  const restartBtn = h('button', { type: 'button', class: 'primary', hidden: true, on: { click: startOver } }, 'Start a new conversation');
  const endBox = h('section', { class: 'conv-end', 'aria-label': 'Finish' },
    h('div', { class: 'actions' }, closeBtn, restartBtn), confirmBox, endError);
  const others = h('div', { class: 'others' });

  const page = h('section', { class: 'donor-card conversation', 'data-testid': 'conversation', 'aria-labelledby': 'conv-title' },
    h('div', { class: 'conv-head' }, heading, meta),
    h('div', { class: 'conv-state' }, status, conn),
    notice, thread, composer, callPanel, endBox, others);

  /* ---- state ---- */
  // Requests for this conversation only: once it is left (a new one, the
  // start form), late continuations send nothing with whatever token the
  // session holds by then.
  const request = (method, path, body) => (c.alive ? session.request(method, path, body)
    : Promise.reject(Object.assign(new Error('conversation left'), { status: -1 })));
  const api = { get: (path) => request('GET', path), post: (path, body = {}) => request('POST', path, body) };
  const isOpen = () => OPEN.has(c.query?.status);

  function setQuery(q) {
    if (!c.alive || !q) return;
    c.query = q;
    statusCode.textContent = q.status;
    statusCode.className = `pill status-code ${STATUS_PILL[q.status] ?? ''}`;
    statusPhrase.textContent = (STATUS_PHRASE[q.status] || (() => ''))(q);
    status.dataset.status = q.status;
    const bits = [`Query #${q.id}`, q.created_at ? `started ${fmtTime(q.created_at)}` : null,
      q.test ? `Test: ${q.test}` : null, q.stage ? `Stage: ${q.stage}` : null, q.device ? `Device: ${q.device}` : null];
    meta.textContent = bits.filter(Boolean).join(' · ');
    const open = isOpen();
    if (q.status === 'CLOSED') notice.textContent = 'This conversation is closed. Thank you for getting in touch.';
    else if (q.status === 'RESOLVED') notice.textContent = 'Our team marked this conversation as resolved. If you still need help, start a new conversation.';
    else notice.textContent = '';
    text.disabled = !open;
    text.placeholder = open ? 'Type your message' : 'This conversation is read-only';
    closeBtn.hidden = !open;
    if (!open) confirmBox.hidden = true;
    restartBtn.hidden = open;
    renderCall();
    updateSend();
  }

  function updateSend() { send.disabled = !isOpen() || c.sending; }

  function addMessage(m) {
    if (!c.alive || !m || m.id === undefined || m.id === null) return;
    if (m.query_id !== undefined && m.query_id !== c.id) return;
    if (c.msgs.has(m.id)) return;
    const el = messageEl(m);
    const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 60;
    let ref = null;
    for (let n = thread.lastElementChild; n && Number(n.dataset.id) > m.id; n = n.previousElementSibling) ref = n;
    thread.insertBefore(el, ref);
    c.msgs.set(m.id, el);
    if (m.id > c.lastId) c.lastId = m.id;
    if (atBottom || m.sender_type === 'DONOR') thread.scrollTop = thread.scrollHeight;
  }

  // Messages after the last one seen, one fetch at a time (a reconnect
  // during a fetch asks for one more round).
  function catchUp() {
    if (c.syncing) { c.again = true; return c.syncing; }
    c.syncing = (async () => {
      do {
        c.again = false;
        for (;;) {
          const r = await api.get(`${DQ}/${id}/messages${qs({ after_id: c.lastId, limit: 200 })}`);
          if (!c.alive) return;
          for (const m of r.data || []) addMessage(m);
          if (!r.next_cursor || !(r.data || []).length) break;
        }
      } while (c.again && c.alive);
    })().catch((e) => { if (c.alive && e.status !== 401) showTransient(`Some messages could not be loaded: ${errorText(e)}`); })
      .finally(() => { c.syncing = null; });
    return c.syncing;
  }

  async function refreshQuery() {
    try { setQuery(await api.get(`${DQ}/${id}`)); } catch (e) { if (e.status === 404) gone(); }
  }

  function showTransient(msg) { sendError.textContent = msg; }

  /* ---- sending ---- */
  async function sendMessage() {
    if (c.sending || !isOpen()) return;
    const content = text.value.trim();
    if (!content) { sendError.textContent = 'Type a message first.'; text.focus(); return; }
    c.sending = true;
    updateSend();
    sendError.textContent = '';
    try {
      const m = await api.post(`${DQ}/${id}/messages`, { content });
      addMessage(m);
      if (text.value.trim() === content) text.value = '';
    } catch (e) {
      if (e.status === 401 || !c.alive) return;
      if (e.status === 409) {
        sendError.textContent = 'This conversation is no longer open, so new messages cannot be sent.';
        refreshQuery();
      } else {
        sendError.textContent = `Your message was not sent: ${errorText(e)}`;
      }
    } finally {
      c.sending = false;
      if (c.alive) { updateSend(); if (isOpen()) text.focus(); }
    }
  }

  /* ---- calls ---- */
  function pendingReq() { return session.state?.call_request || null; }
  function setPending(r) {
    if (!c.alive) return;
    session.set({ call_request: r ? { id: r.id, mode: r.mode } : null });
    renderCall();
  }

  function renderCall() {
    const open = isOpen();
    const p = pendingReq();
    const live = c.live;
    requestRow.hidden = !!p || !!live;
    requestBtn.disabled = !open;
    mode.disabled = !open;
    callHint.textContent = open
      ? 'Ask for a video or voice call, or share your screen so an agent can see what you see.'
      : 'Calls are available while the conversation is open.';
    pending.hidden = !p || !!live;
    if (p) pendingText.textContent = `Call requested — waiting for an agent (${modeLabel(p.mode)}).`;
    liveBox.hidden = !live;
    rejoinBtn.hidden = !live || !c.left;
    leaveBtn.hidden = !live || c.left;
    const frame = frameBox.querySelector('iframe');
    if (!live || c.left) {
      frame?.remove();
    } else if (!frame || frame.dataset.room !== live.room_name) {
      frame?.remove();
      const src = frameSrc(live);
      if (src) {
        frameBox.append(h('iframe', { 'data-testid': 'call-frame', class: 'call-frame', title: 'Video call with support',
          allow: 'camera; microphone; fullscreen; display-capture; autoplay', src, dataset: { room: live.room_name } }));
      } else {
        callNote.textContent = 'The call could not be opened here.';
      }
    }
  }

  function frameSrc(s) {
    try {
      const u = new URL(s.room_url);
      if (u.protocol !== 'https:') return null;
      u.searchParams.set('t', s.token);
      return u.href;
    } catch { return null; }
  }

  // The query's sessions: the donor's own live one (with its token), if any.
  async function loadCalls() {
    const seq = ++c.callSeq;
    let r;
    try {
      r = await api.get(`${CALLS}/${id}`);
    } catch (e) {
      // 404 here: no calls plugin on this server (the query itself loaded).
      if (c.alive && e.status === 404) callPanel.hidden = true;
      return;
    }
    if (!c.alive || seq !== c.callSeq) return;
    const sessions = r.data || [];
    const p = pendingReq();
    if (p && sessions.some((s) => s.request_id === p.id)) session.set({ call_request: null });
    const live = sessions.find((s) => s.status !== 'ENDED' && s.token) || null;
    if (live && c.live?.room_name !== live.room_name) {
      c.left = false;
      callNote.textContent = `${modeLabel(live.mode)} with support: you are connected below.`;
    }
    if (!live && c.live) callNote.textContent = 'The call has ended.';
    c.live = live;
    renderCall();
  }

  async function requestCall() {
    if (!isOpen()) return;
    callNote.textContent = '';
    requestBtn.disabled = true;
    try {
      const r = await api.post(`${CALL}/${id}/request`, { mode: mode.value });
      setPending(r);
      cancelBtn.focus();
    } catch (e) {
      if (e.status === 401 || !c.alive) return;
      if (e.status === 409) {
        callNote.textContent = /pending/i.test(e.message)
          ? 'You already have a call request waiting for an agent.'
          : `A call cannot be requested right now (${e.message}).`;
      } else if (e.status === 503) {
        callNote.textContent = 'Calls are not available right now. Please keep chatting here.';
      } else {
        callNote.textContent = `The call could not be requested: ${errorText(e)}`;
      }
    } finally {
      if (c.alive) renderCall();
    }
  }

  async function cancelCall() {
    const p = pendingReq();
    if (!p) return;
    cancelBtn.disabled = true;
    try {
      await api.post(`${CALL}/${id}/cancel-request/${p.id}`);
      setPending(null);
      callNote.textContent = 'Your call request was cancelled.';
      requestBtn.focus();
    } catch (e) {
      if (e.status === 401 || !c.alive) return;
      if (e.status === 409 || e.status === 404) {
        // No longer pending: taken or turned down meanwhile.
        setPending(null);
        callNote.textContent = `The request could not be cancelled (${e.message}).`;
        loadCalls();
      } else {
        callNote.textContent = `The request could not be cancelled: ${errorText(e)}`;
      }
    } finally {
      cancelBtn.disabled = false;
    }
  }

  function leaveCall() {
    c.left = true;
    callNote.textContent = 'You left the call. You can rejoin while the agent keeps it open.';
    renderCall();
    rejoinBtn.focus();
  }

  function rejoinCall() {
    c.left = false;
    callNote.textContent = '';
    renderCall();
    leaveBtn.focus();
  }

  /* ---- closing ---- */
  function confirmClose() {
    clear(confirmBox);
    const yes = h('button', { type: 'button', class: 'danger', on: { click: doClose } }, 'Yes, close it');
    const no = h('button', { type: 'button', on: { click: () => { confirmBox.hidden = true; closeBtn.focus(); } } }, 'Keep it open');
    confirmBox.append(h('p', { id: 'confirm-text' }, 'Close this conversation? You will not be able to send more messages in it.'),
      h('div', { class: 'actions' }, yes, no));
    confirmBox.hidden = false;
    no.focus();
  }

  async function doClose() {
    endError.textContent = '';
    try {
      const q = await api.post(`${DQ}/${id}/donor-close`);
      confirmBox.hidden = true;
      c.live = null;
      setPending(null);
      setQuery(q);
      restartBtn.focus();
    } catch (e) {
      if (e.status === 401 || !c.alive) return;
      confirmBox.hidden = true;
      endError.textContent = e.status === 409
        ? 'This conversation is already finished.' : `The conversation could not be closed: ${errorText(e)}`;
      refreshQuery();
    }
  }

  function startOver() {
    endConversation();
    session.clear();
    renderStart({ prefill: who });
  }

  function gone() {
    if (!c.alive) return;
    endConversation();
    session.clear();
    renderStart({ prefill: who, notice: 'That conversation is no longer available. Please start a new one.' });
  }

  /* ---- other conversations of this donor ---- */
  async function loadMine() {
    let r;
    try { r = await api.get(`${DQ}/mine${qs({ limit: 20 })}`); } catch { return; }
    if (!c.alive) return;
    const list = (r.data || []).filter((q) => q.id !== id);
    clear(others);
    if (!list.length) return;
    others.append(h('details', null, h('summary', null, `Your other conversations (${list.length})`),
      h('ul', { class: 'other-list' }, list.map((q) => h('li', null,
        h('button', { type: 'button', class: 'linkish', on: { click: () => {
          session.set({ query_id: q.id, call_request: null });
          openConversation();
        } } }, `#${q.id}`),
        ' ', h('span', { class: 'pill' }, q.status), ' ', h('span', { class: 'muted' }, fmtTime(q.created_at)))))));
  }

  /* ---- live ---- */
  function onEvent(f) {
    const d = f.data || {};
    switch (f.event) {
      case 'concierge.message.created':
        addMessage(d);
        break;
      case 'concierge.query.accepted': case 'concierge.query.resolved':
      case 'concierge.query.transferred': case 'concierge.query.closed':
        if (d.id === id) setQuery(d);
        break;
      case 'concierge.query.deleted':
        gone();
        break;
      case 'calls.request.created':
        if (d.status === 'PENDING') setPending(d);
        break;
      case 'calls.request.accepted':
        if (pendingReq()?.id === d.id) setPending(null);
        loadCalls();
        break;
      case 'calls.request.rejected':
        if (pendingReq()?.id === d.id || !pendingReq()) {
          setPending(null);
          callNote.textContent = 'The agent could not take the call now. You can try again later, or keep chatting here.';
        }
        break;
      case 'calls.request.cancelled':
        if (pendingReq()?.id === d.id) setPending(null);
        break;
      case 'calls.session.created':
        loadCalls();
        break;
      case 'calls.session.started':
      case 'calls.session.ended':
        if (d.message) addMessage(d.message);
        loadCalls();
        break;
      default:
        break;
    }
  }

  c.onReady = () => {
    // After a (re)subscription: whatever happened while the line was down.
    catchUp();
    refreshQuery();
    loadCalls();
  };
  c.onAuthError = () => { refreshQuery(); };
  c.onSocketStatus = () => {
    const s = socket.status;
    conn.dataset.state = s;
    conn.textContent = s === 'live' ? 'Live' : s === 'connecting' ? 'Reconnecting…' : 'Offline';
  };
  c.stop = () => {
    c.alive = false;
    c.unsub?.();
    socket.stop();
  };

  (async () => {
    let q = initial;
    if (!q) {
      try {
        q = await api.get(`${DQ}/${id}`);
      } catch (e) {
        if (!c.alive || e.status === 401) return;	// 'expired' has drawn the form
        if (e.status === 404) { gone(); return; }
        show(h('section', { class: 'donor-card' }, h('h1', null, 'Your conversation'),
          h('p', { class: 'error', role: 'alert' }, `Your conversation could not be loaded: ${errorText(e)}`),
          h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'primary', on: { click: () => openConversation() } }, 'Try again'),
            h('button', { type: 'button', on: { click: startOver } }, 'Start a new conversation'))));
        return;
      }
      if (!c.alive) return;
    }
    show(page);
    setQuery(q);
    c.onSocketStatus();
    heading.focus();
    c.unsub = socket.subscribe(`query:${id}`, onEvent);
    socket.start();
    await catchUp();
    thread.scrollTop = thread.scrollHeight;
    loadCalls();
    loadMine();
  })();
}

/* ------------------------------------------------------------------ boot */

if (session.state?.donor_token && session.state?.query_id) openConversation();
else renderStart();
