// A local fake of Twilio's REST API (Messages and Calls, 2010-04-01) and of
// Twilio's webhook sender, for black-box tests of the `telephony` plugin.
//
//   const tw = await startTwilio();             // tw.url, tw.accountSid, tw.authToken
//   ... point the plugin at twilio_api_url = tw.url ...
//   tw.fail([{ status: 429, retryAfter: 1 }, { status: 500 }, { status: 400, code: 21211 },
//            { delayMs: 3000 }, { callbackFirst: 'sent' }])  // the next sends answer so, in
//                                           // order (callbackFirst: the status callback is
//                                           // delivered, to tw.callbackTarget when set,
//                                           // before the 201)
//   tw.delayAll = 30                            // every create answers that many ms late
//   tw.hold(); ... tw.release()                 // creates (messages and calls) wait unanswered
//   tw.sends('+15005550006', 'hello')          // how many messages Twilio accepted (201)
//   tw.requests                                 // every message create request seen (form fields)
//   tw.messages.get(sid)                        // accepted messages {sid, to, from, body, callback,
//                                               // status, created}
//   await tw.callback(sid, 'delivered', { errorCode, target })   // signed status callback
//   await tw.inbound(url, { from, to, body })   // signed inbound SMS webhook
//   await tw.stop(); await tw.start()           // connection refused while stopped
//   tw.callbackTarget = url                     // where the callbacks the fake sends on its own
//                                               // go (callbackFirst, a call's end after an update)
//
// Voice calls:
//   tw.failCalls([{ status: 429, retryAfter: 1 }, { status: 500 }, { status: 400, code },
//                 { delayMs }])                 // the next call creates answer so, in order
//   tw.callsTo('+15005550006')                  // how many calls Twilio created (201) to a number
//   tw.callRequests                             // every call create request's form (repeated
//                                               // StatusCallbackEvent as an array)
//   tw.calls.get(sid)                           // {sid, to, from, twiml, url, statusCallback,
//                                               // statusCallbackMethod, events, record, timeout,
//                                               // status, duration, form, ...}
//   tw.callUpdates                              // every POST .../Calls/{sid}.json: {sid, form, status}
//   tw.callCallbacks                            // every call status callback sent: {sid, status,
//                                               // url, params, result}
//   await tw.callProgress(sid, 'ringing', { duration, recordingUrl, answeredBy, sipResponseCode,
//                                           target, signUrl })
//                                               // moves the call on and sends its signed status
//                                               // callback if it subscribed; the server's
//                                               // {status, text}, or null when nothing was sent
//   await tw.callRun(sid, ['initiated', 'ringing', 'in-progress', 'completed'], opts)
//
// Wire format, from Twilio's documentation:
//   * POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded To, From or
//     MessagingServiceSid, Body, StatusCallback; HTTP Basic AccountSid:AuthToken.
//     201 with the Message resource (sid "SM" + 32 hex, status "queued" or
//     "accepted" with a messaging service, num_segments, error_code null, ...).
//     (https://www.twilio.com/docs/messaging/api/message-resource)
//   * GET .../Messages.json lists messages newest first, filtered by To, From,
//     DateSent, DateSent< (on or before), DateSent> (on or after), paged by
//     PageSize (default 50, at most 1000), Page and PageToken, in the list
//     envelope {messages, page, page_size, uri, first_page_uri, next_page_uri,
//     previous_page_uri, start, end} (same page; the npm client builds the query
//     and reads the envelope: node_modules/twilio/lib/rest/api/v2010/account/
//     message.js, lib/base/Page.js).  The fake hands an accepted message to the
//     carrier at once: its date_sent is its date_created.
//   * POST .../Calls.json: To, From and one of Url, Twiml, ApplicationSid; optional
//     Method, FallbackUrl, FallbackMethod, StatusCallback, StatusCallbackEvent
//     (repeated: initiated, ringing, answered, completed; completed only when
//     absent), StatusCallbackMethod, SendDigits, Timeout, Record, RecordingChannels,
//     RecordingStatusCallback(Method, Event), MachineDetection(...), Trim, CallerId,
//     AsyncAmd(...), Byoc, CallReason, CallToken, RecordingTrack, TimeLimit, ...
//     (https://www.twilio.com/docs/voice/api/call-resource; the field list as the
//     npm client sends it, node_modules/twilio/lib/rest/api/v2010/account/call.js).
//     201 with the Call resource: sid "CA" + 32 hex, status "queued", direction
//     "outbound-api", start_time/end_time/duration null until the call runs.
//     Errors: 21201 no To, 21213 no From (https://www.twilio.com/docs/errors/21201,
//     /21213), 21211 To not E.164 (https://www.twilio.com/docs/api/errors/21211,
//     "MESSAGING, VOICE"), 21205 no or bad Url (https://www.twilio.com/docs/errors/21205;
//     Twilio's 21200 page names a missing url/twiml/applicationSid a Calls error).
//     An invalid StatusCallbackEvent is not refused at create: Twilio answers 201
//     and logs 21626 (https://twilio.com/docs/api/errors/21626; as observed in
//     github.com/qisoft/i-hate-making-calls issue #31); those events never fire.
//   * POST .../Calls/{CallSid}.json with Status=canceled ends a queued or ringing
//     call and does nothing to an in-progress one; Status=completed ends it in
//     any state (https://jp.twilio.com/docs/api/voice/modify-live-calls).  200
//     with the Call resource.  A call that has already ended: 400, 21220 "Call is
//     not in-progress. Cannot redirect." (https://twilio.com/docs/api/errors/21220;
//     the message as Twilio answered it in github.com/bmlt-enabled/yap issue #570).
//     Unknown sid: 404, 20404.  The fake ends a not yet answered call hung up with
//     Status=completed as canceled too (a choice: no conversation took place).
//   * Call status callbacks (https://www.twilio.com/docs/voice/api/call-resource
//     "StatusCallback"; https://support.twilio.com/hc/en-us/articles/223132267):
//     the voice request fields AccountSid, ApiVersion, CallSid, CallStatus
//     (initiated, ringing, in-progress, completed, busy, no-answer, failed,
//     canceled), Called, Caller, Direction, From, To, plus CallbackSource
//     "call-progress-events", Timestamp (RFC 2822) and SequenceNumber (0, 1, ...
//     per call); on the end (the "completed" event, which every terminal status
//     sends) CallDuration (seconds), Duration (billed minutes, rounded up: seen in
//     real callbacks, not in the table; use CallDuration) and SipResponseCode;
//     RecordingUrl, RecordingSid, RecordingDuration only on the completed event of
//     a call created with Record=true.  AnsweredBy when the test gives one (answering
//     machine detection).  Sent only for subscribed events: initiated, ringing,
//     answered (CallStatus in-progress), completed; POST form, or GET with the
//     fields in the query when StatusCallbackMethod=GET.
//   * Errors: {"code": 21211, "message": "...", "more_info":
//     "https://www.twilio.com/docs/errors/21211", "status": 400}; 401 code 20003;
//     429 code 20429 with Retry-After. (https://www.twilio.com/docs/api/errors)
//   * Status callbacks POST form fields AccountSid, ApiVersion, From, MessageSid,
//     MessageStatus, SmsSid, SmsStatus, To and ErrorCode on failures
//     (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status).
//   * Inbound SMS: AccountSid, ApiVersion, Body, From, MessageSid, NumMedia,
//     NumSegments, SmsMessageSid, SmsSid, SmsStatus=received, To
//     (https://www.twilio.com/docs/messaging/guides/webhook-request).
//   * X-Twilio-Signature: base64(HMAC-SHA1(AuthToken, URL + every POST parameter
//     sorted by name, name + value)) (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
// The npm `twilio` package checks this fake in tests/http/telephony-fake.test.mjs.
import { createServer } from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';

export function signTwilio(authToken, url, params) {
  const data = Object.keys(params).sort().reduce((acc, k) => acc + k + params[k], url);
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
}

export async function postSigned(url, authToken, params, { signUrl = url, signature } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': signature ?? signTwilio(authToken, signUrl, params) },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  return { status: res.status, text, body, headers: res.headers };
}

// A GET webhook carries its fields in the query; Twilio signs the whole URL.
async function getSigned(url, authToken, params, { signUrl = url } = {}) {
  const q = (u) => `${u}${u.includes('?') ? '&' : '?'}${new URLSearchParams(params)}`;
  const res = await fetch(q(url), { headers: { 'x-twilio-signature': signTwilio(authToken, q(signUrl), {}) } });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  return { status: res.status, text, body, headers: res.headers };
}

const hex = (n) => randomBytes(n).toString('hex');

// RFC 2822 as Twilio writes it: "Tue, 31 Aug 2010 20:36:28 +0000".
const rfc2822 = (d) => (d ? d.toUTCString().replace('GMT', '+0000') : null);

const TERMINAL = ['completed', 'busy', 'no-answer', 'failed', 'canceled'];
const EVENT_OF = { initiated: 'initiated', ringing: 'ringing', 'in-progress': 'answered' };
const SIP_CODE = { completed: '200', busy: '486', 'no-answer': '487', canceled: '487', failed: '500' };

function twilioError(res, status, code, message, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }));
}

export async function startTwilio({ accountSid = `AC${hex(16)}`, authToken = hex(16) } = {}) {
  const tw = {
    accountSid, authToken, messages: new Map(), requests: [], failures: [], counts: new Map(),
    calls: new Map(), callRequests: [], callFailures: [], callCounts: new Map(), callUpdates: [],
    callCallbacks: [],
    server: null, port: 0, url: '',
    fail(list) { this.failures.push(...list); },
    failCalls(list) { this.callFailures.push(...list); },
    sends(to, body) { return this.counts.get(`${to}\n${body}`) ?? 0; },
    callsTo(to) { return this.callCounts.get(to) ?? 0; },
    // Requests wait (unanswered, uncounted) until release(): sends in flight for as long as a test needs.
    gate: null, open: null,
    hold() { if (!this.gate) this.gate = new Promise((r) => { this.open = r; }); },
    release() { if (this.open) this.open(); this.gate = null; this.open = null; },
    async start() {
      this.server = createServer((req, res) => handle(this, req, res));
      await new Promise((r) => this.server.listen(this.port, '127.0.0.1', r));
      this.port = this.server.address().port;
      this.url = `http://127.0.0.1:${this.port}`;
    },
    async stop() {
      this.server.closeAllConnections?.();
      await new Promise((r) => this.server.close(r));
    },
    // A status callback for message sid, signed over its StatusCallback URL (or
    // over signUrl) and delivered to target (default: that URL).
    async callback(sid, status, { errorCode, target, signUrl } = {}) {
      const m = this.messages.get(sid);
      if (!m) throw new Error(`no message ${sid}`);
      const url = signUrl ?? m.callback;
      if (!url) throw new Error(`message ${sid} has no StatusCallback`);
      m.status = status;
      const params = { AccountSid: this.accountSid, ApiVersion: '2010-04-01', From: m.from ?? '',
        MessageSid: sid, MessageStatus: status, SmsSid: sid, SmsStatus: status, To: m.to };
      if (errorCode) params.ErrorCode = String(errorCode);
      return postSigned(target ?? url, this.authToken, params, { signUrl: url });
    },
    async inbound(url, { from, to, body, sid = `SM${hex(16)}`, signUrl = url, signature }) {
      const params = { AccountSid: this.accountSid, ApiVersion: '2010-04-01', Body: body, From: from,
        MessageSid: sid, NumMedia: '0', NumSegments: '1', SmsMessageSid: sid, SmsSid: sid,
        SmsStatus: 'received', To: to };
      return { sid, ...(await postSigned(url, this.authToken, params, { signUrl, signature })) };
    },
    // Moves call sid to status and sends the status callback for it when the
    // call subscribed to that event: signed over signUrl ?? its StatusCallback
    // (the URL Twilio was given), delivered to target ?? that URL.
    async callProgress(sid, status, opts = {}) {
      const c = this.calls.get(sid);
      if (!c) throw new Error(`no call ${sid}`);
      if (!TERMINAL.includes(status) && !EVENT_OF[status]) throw new Error(`no call status ${status}`);
      const now = new Date();
      c.status = status;
      c.updated = now;
      if (status === 'in-progress') c.started = now;
      if (TERMINAL.includes(status)) {
        c.ended = now;
        c.duration = opts.duration ?? (c.started ? Math.round((now - c.started) / 1000) : 0);
      }
      const event = TERMINAL.includes(status) ? 'completed' : EVENT_OF[status];
      const url = c.statusCallback ?? opts.target;
      if (!url || !c.events.includes(event)) return null;
      const params = { AccountSid: this.accountSid, ApiVersion: '2010-04-01', CallSid: sid, CallStatus: status,
        Called: c.to, Caller: c.from, Direction: 'outbound-api', From: c.from, To: c.to,
        CallbackSource: 'call-progress-events', Timestamp: rfc2822(now), SequenceNumber: String(c.seq++) };
      if (opts.answeredBy) params.AnsweredBy = opts.answeredBy;
      if (event === 'completed') {
        params.CallDuration = String(c.duration);
        params.Duration = String(Math.ceil(c.duration / 60));
        params.SipResponseCode = String(opts.sipResponseCode ?? SIP_CODE[status]);
        if (c.record && status === 'completed') {
          c.recordingSid ??= `RE${hex(16)}`;
          params.RecordingSid = c.recordingSid;
          params.RecordingUrl = opts.recordingUrl ??
            `${this.url}/2010-04-01/Accounts/${this.accountSid}/Recordings/${c.recordingSid}`;
          params.RecordingDuration = String(c.duration);
        }
      }
      const send = c.statusCallbackMethod === 'GET' ? getSigned : postSigned;
      const result = await send(opts.target ?? url, this.authToken, params, { signUrl: opts.signUrl ?? url });
      this.callCallbacks.push({ sid, status, url: opts.target ?? url, params, result });
      return { status: result.status, text: result.text };
    },
    async callRun(sid, statuses, opts = {}) {
      const out = [];
      for (const s of statuses) out.push(await this.callProgress(sid, s, opts));
      return out;
    },
  };
  await tw.start();
  return tw;
}

function messageJson(tw, m, { listed = false } = {}) {
  return {
    account_sid: tw.accountSid, api_version: '2010-04-01', body: m.body, date_created: rfc2822(m.created),
    date_sent: listed ? rfc2822(m.created) : null, date_updated: rfc2822(m.created), direction: 'outbound-api',
    error_code: null, error_message: null, from: m.from, messaging_service_sid: m.messagingServiceSid,
    num_media: '0', num_segments: '1', price: null, price_unit: 'USD', sid: m.sid, status: m.status,
    subresource_uris: { media: `/2010-04-01/Accounts/${tw.accountSid}/Messages/${m.sid}/Media.json` },
    to: m.to, uri: `/2010-04-01/Accounts/${tw.accountSid}/Messages/${m.sid}.json`,
  };
}

function callJson(tw, c) {
  const base = `/2010-04-01/Accounts/${tw.accountSid}/Calls/${c.sid}`;
  return {
    account_sid: tw.accountSid, annotation: null, answered_by: null, api_version: '2010-04-01',
    caller_name: null, date_created: rfc2822(c.created), date_updated: rfc2822(c.updated),
    direction: 'outbound-api', duration: c.ended ? String(c.duration) : null, end_time: rfc2822(c.ended),
    forwarded_from: null, from: c.from, from_formatted: c.from, group_sid: null, parent_call_sid: null,
    phone_number_sid: c.phoneNumberSid, price: null, price_unit: 'USD', queue_time: '0', sid: c.sid,
    start_time: rfc2822(c.started), status: c.status === 'initiated' ? 'queued' : c.status,
    subresource_uris: { notifications: `${base}/Notifications.json`, recordings: `${base}/Recordings.json`,
      events: `${base}/Events.json`, streams: `${base}/Streams.json`, siprec: `${base}/Siprec.json`,
      payments: `${base}/Payments.json`, transcriptions: `${base}/Transcriptions.json`,
      user_defined_messages: `${base}/UserDefinedMessages.json`,
      user_defined_message_subscriptions: `${base}/UserDefinedMessageSubscriptions.json` },
    to: c.to, to_formatted: c.to, trunk_sid: null, uri: `${base}.json`,
  };
}

// A failure queued with fail()/failCalls(), after the hold and the delays.
async function injected(tw, res, queue, to) {
  if (tw.gate) await tw.gate;
  const f = queue.shift() ?? {};
  const delay = f.delayMs ?? tw.delayAll ?? 0;
  if (delay) await new Promise((r) => setTimeout(r, delay));
  if (f.status === 429) {
    twilioError(res, 429, 20429, 'Too Many Requests', f.retryAfter ? { 'retry-after': String(f.retryAfter) } : {});
    return null;
  }
  if (f.status >= 500) { twilioError(res, f.status, 20500, 'Internal Server Error'); return null; }
  if (f.status === 400) {
    twilioError(res, 400, f.code ?? 21211, f.message ?? `The 'To' number ${to} is not a valid phone number.`);
    return null;
  }
  return f;
}

function handle(tw, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const [path, query = ''] = req.url.split('?');
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/(Messages|Calls)(?:\/([^/]+))?\.json$/.exec(path);
    if (!m) return twilioError(res, 404, 20404, `The requested resource ${path} was not found`);
    const auth = req.headers.authorization ?? '';
    const want = `Basic ${Buffer.from(`${tw.accountSid}:${tw.authToken}`).toString('base64')}`;
    if (auth !== want || m[1] !== tw.accountSid) return twilioError(res, 401, 20003, 'Authenticate');
    const params = new URLSearchParams(req.method === 'GET' ? query : Buffer.concat(chunks).toString('utf8'));
    if (m[2] === 'Messages' && !m[3] && req.method === 'POST') return createMessage(tw, res, params);
    if (m[2] === 'Messages' && !m[3] && req.method === 'GET') return listMessages(tw, res, path, params);
    if (m[2] === 'Calls' && !m[3] && req.method === 'POST') return createCall(tw, res, params);
    if (m[2] === 'Calls' && m[3]) {
      const c = tw.calls.get(m[3]);
      if (!c) return twilioError(res, 404, 20404, `The requested resource ${path} was not found`);
      if (req.method === 'GET') return json(res, 200, callJson(tw, c));
      if (req.method === 'POST') return updateCall(tw, res, c, params);
    }
    return twilioError(res, 404, 20404, `The requested resource ${path} was not found`);
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function createMessage(tw, res, params) {
  const form = Object.fromEntries(params);
  tw.requests.push(form);
  if (!form.To) return twilioError(res, 400, 21604, "A 'To' phone number is required.");
  if (!form.From && !form.MessagingServiceSid)
    return twilioError(res, 400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.");
  if (!form.Body) return twilioError(res, 400, 21602, 'Message body is required.');
  const f = await injected(tw, res, tw.failures, form.To);
  if (!f) return undefined;
  const sid = `SM${hex(16)}`;
  const msg = { sid, to: form.To, from: form.From ?? null, body: form.Body, callback: form.StatusCallback ?? null,
    messagingServiceSid: form.MessagingServiceSid ?? null, created: new Date(),
    status: form.MessagingServiceSid ? 'accepted' : 'queued' };
  tw.messages.set(sid, msg);
  tw.counts.set(`${form.To}\n${form.Body}`, tw.sends(form.To, form.Body) + 1);
  // Twilio may call back before its answer to the create (made when it accepted the message) is handled.
  const answer = messageJson(tw, msg);
  if (f.callbackFirst) await tw.callback(sid, f.callbackFirst, { target: tw.callbackTarget });
  return json(res, 201, answer);
}

// DateSent filters: a date (YYYY-MM-DD) means that whole UTC day, a date-time
// that second; DateSent< and DateSent> include their bound.
function sentFilter(params) {
  const day = (v) => /^\d{4}-\d{2}-\d{2}$/.test(v);
  const sec = (d) => Math.floor(d.getTime() / 1000);
  const tests = [];
  const eq = params.get('DateSent');
  const lt = params.get('DateSent<');
  const gt = params.get('DateSent>');
  if (eq) tests.push((d) => d.toISOString().slice(0, 10) === eq.slice(0, 10));
  if (lt) tests.push(day(lt) ? (d) => d.toISOString().slice(0, 10) <= lt : (d) => sec(d) <= sec(new Date(lt)));
  if (gt) tests.push(day(gt) ? (d) => d.toISOString().slice(0, 10) >= gt : (d) => sec(d) >= sec(new Date(gt)));
  for (const v of [eq, lt, gt]) if (v && Number.isNaN(new Date(v).getTime())) return null;
  return (d) => tests.every((t) => t(d));
}

function listMessages(tw, res, path, params) {
  const size = Math.min(Number(params.get('PageSize') ?? 50) || 50, 1000);
  const page = Number(params.get('Page') ?? 0) || 0;
  const ok = sentFilter(params);
  if (!ok) return twilioError(res, 400, 20001, 'Invalid DateSent');
  // Newest first; among messages of the same instant, the later accepted first.
  const all = [...tw.messages.values()].reverse()
    .filter((x) => (!params.get('To') || x.to === params.get('To')) &&
      (!params.get('From') || x.from === params.get('From')) && ok(x.created))
    .sort((a, b) => b.created - a.created);
  // PageToken "PA" + the sid of the previous page's last message: a cursor, as Twilio's are.
  const token = params.get('PageToken');
  const from = token ? all.findIndex((x) => `PA${x.sid}` === token) + 1 : page * size;
  const rows = all.slice(from, from + size);
  const filters = new URLSearchParams([...params].filter(([k]) => !['Page', 'PageSize', 'PageToken'].includes(k)));
  const uri = (p, extra = {}) => `${path}?${new URLSearchParams([...filters, ['PageSize', String(size)],
    ['Page', String(p)], ...Object.entries(extra)])}`;
  const more = from + size < all.length;
  return json(res, 200, {
    messages: rows.map((x) => messageJson(tw, x, { listed: true })), page, page_size: size,
    uri: uri(page, token ? { PageToken: token } : {}), first_page_uri: uri(0),
    next_page_uri: more ? uri(page + 1, { PageToken: `PA${rows[rows.length - 1].sid}` }) : null,
    previous_page_uri: page > 0 ? uri(page - 1) : null, start: from, end: from + Math.max(rows.length - 1, 0),
  });
}

const E164 = /^\+[1-9]\d{1,14}$/;

async function createCall(tw, res, params) {
  const form = Object.fromEntries(params);
  for (const k of ['StatusCallbackEvent', 'RecordingStatusCallbackEvent'])
    if (params.has(k)) form[k] = params.getAll(k).flatMap((v) => v.split(' ')).filter(Boolean);
  tw.callRequests.push(form);
  if (!form.To) return twilioError(res, 400, 21201, "No 'To' number is specified");
  if (!form.From) return twilioError(res, 400, 21213, "No 'From' number is specified");
  if (!E164.test(form.To) && !/^(client|sip):/.test(form.To))
    return twilioError(res, 400, 21211, `The 'To' number ${form.To} is not a valid phone number.`);
  if (!form.Url && !form.Twiml && !form.ApplicationSid)
    return twilioError(res, 400, 21205, 'Url parameter is required.');
  if (form.Url && !/^https?:\/\/[^/]+/.test(form.Url))
    return twilioError(res, 400, 21205, `Url is not a valid URL: ${form.Url}`);
  const f = await injected(tw, res, tw.callFailures, form.To);
  if (!f) return undefined;
  const now = new Date();
  const sid = `CA${hex(16)}`;
  const call = { sid, to: form.To, from: form.From, twiml: form.Twiml ?? null, url: form.Url ?? null,
    applicationSid: form.ApplicationSid ?? null, statusCallback: form.StatusCallback ?? null,
    statusCallbackMethod: (form.StatusCallbackMethod ?? 'POST').toUpperCase(),
    events: form.StatusCallback ? (form.StatusCallbackEvent ?? ['completed']) : [],
    record: form.Record === 'true', timeout: form.Timeout ?? null, timeLimit: form.TimeLimit ?? null,
    machineDetection: form.MachineDetection ?? null, phoneNumberSid: `PN${hex(16)}`, form,
    status: 'queued', duration: null, created: now, updated: now, started: null, ended: null, seq: 0 };
  tw.calls.set(sid, call);
  tw.callCounts.set(form.To, tw.callsTo(form.To) + 1);
  return json(res, 201, callJson(tw, call));
}

async function updateCall(tw, res, c, params) {
  const form = Object.fromEntries(params);
  tw.callUpdates.push({ sid: c.sid, form, status: c.status });
  if (TERMINAL.includes(c.status))
    return twilioError(res, 400, 21220, 'Call is not in-progress. Cannot redirect.');
  if (form.Status && !['canceled', 'completed'].includes(form.Status))
    return twilioError(res, 400, 20001, `Status must be one of canceled, completed: ${form.Status}`);
  let end = null;
  if (form.Status === 'completed') end = c.status === 'in-progress' ? 'completed' : 'canceled';
  if (form.Status === 'canceled' && c.status !== 'in-progress') end = 'canceled';
  if (end) {
    c.status = end;
    c.ended = new Date();
    c.duration = c.started ? Math.round((c.ended - c.started) / 1000) : 0;
  }
  if (form.Url) c.url = form.Url;
  if (form.Twiml) c.twiml = form.Twiml;
  json(res, 200, callJson(tw, c));
  // The end's status callback follows the answer, as Twilio's does.
  if (end) {
    await tw.callProgress(c.sid, end, { duration: c.duration, target: tw.callbackTarget })
      .catch((e) => tw.callCallbacks.push({ sid: c.sid, status: end, error: String(e) }));
  }
  return undefined;
}
