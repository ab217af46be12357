// A local fake of Exotel's SMS API (v1) and of Exotel's callbacks, for
// black-box tests of the `telephony` plugin.
//
//   const ex = await startExotel();           // ex.url, ex.sid, ex.apiKey, ex.apiToken
//   ... point the plugin at exotel_api_url = ex.url ...
//   ex.fail([{ status: 429 }, { status: 500 }, { status: 400, message }, { delayMs: 3000 }])
//                                             // the next sends answer so, in order
//   ex.sends('+919876543210', 'hello')        // how many SMS Exotel accepted (200)
//   ex.requests                               // every send request seen (form fields)
//   ex.messages.get(sid)                      // accepted SMS {sid, to, from, body, callback}
//   await ex.callback(sid, 'sent', { detailedStatus, detailedStatusCode, target })
//                                             // a status callback to its StatusCallback
//   await ex.inbound(url, { from, to, body }) // an inbound SMS to url
//   await ex.stop(); await ex.start()         // connection refused while stopped
//
// Voice calls (Voice v1, "connect"):
//   ex.failCalls([{ status: 429 }, { status: 500 }, { status: 400, message }, { delayMs }])
//                                             // the next call requests answer so, in order
//   ex.callsTo('+919876543210')               // how many calls Exotel accepted (200) to To
//                                             // (or to From for a call flow call)
//   ex.callRequests                           // every connect request's form (fields as sent)
//   ex.calls.get(sid)                         // {sid, from, to, url, callerId, callType, timeLimit,
//                                             // timeOut, record, callback, events, contentType,
//                                             // customField, status, duration, form, ...}
//   ex.callCallbacks                          // every call StatusCallback sent: {sid, status,
//                                             // eventType, url, contentType, body, result}
//   await ex.callStatus(sid, 'completed', { duration, recordingUrl, eventType, answeredBy,
//                                           legs, target, url })
//                                             // the call's StatusCallback; the server's
//                                             // {status, text}, or null when none is due
//
// Wire format, from Exotel's documentation (there is no official npm client
// to check this fake against; the `exotel` npm package is a third-party one
// and old, and speaks the XML form):
//   * POST /v1/Accounts/<sid>/Sms/send (".json" appended for a JSON answer),
//     HTTP Basic <api_key>:<api_token>, form fields From, To, Body,
//     EncodingType, StatusCallback, DltEntityId, DltTemplateId, SmsType,
//     CustomField, Priority (developer.exotel.com/api/sms and
//     /docs/sms-api/api-reference/send-sms).
//   * The answer: {"SMSMessage": {"Sid", "AccountSid", "From", "To",
//     "DateCreated", "DateUpdated", "DateSent", "Body", "Direction",
//     "Uri", "ApiVersion", "Price", "Status", "DetailedStatusCode",
//     "DetailedStatus", "SmsUnits"}} as on developer.exotel.com/api/sms-details
//     ({"SMSMessage": {"Sid": "0f477d60517e6e6a0f6d9a7e9af8630e", "AccountSid":
//     "Exotel", "From": "0XXXXXX4890/WEBDEV", "To": "0XXXXX30240", ...}}).
//   * Errors: the HTTP code and a RestException with Status (the HTTP code
//     again) and Message ("400 Invalid Parameters", "400 Invalid Recipient",
//     "403 Account is not active", "403 Insufficient balance", "429 Too Many
//     Requests", "500 Internal Server Error"; support.exotel.com article
//     48282 "Sending an SMS", shown there in XML; the JSON form here is
//     {"RestException": {"Status": 400, "Message": "..."}}).
//   * StatusCallback: a POST, application/x-www-form-urlencoded, with SmsSid,
//     To, Status (queued, sending, submitted, sent, failed_dnd, failed),
//     SmsUnits, DetailedStatus, DetailedStatusCode, DateSent and CustomField
//     when set (developer.exotel.com/api-console/send-sms-api-console;
//     support.exotel.com article 3000007217).  DetailedStatus for a
//     delivered SMS: DELIVERED_TO_HANDSET (code 20005).
//   * Inbound SMS: SmsSid, From, To, Date, Body (support.exotel.com article
//     45270; Exotel documents it as a GET with query parameters from its
//     "Send a Reply" applet; the plugin's route takes the same fields as a
//     POST form, as API.md names it).
//   * Calls: POST /v1/Accounts/<sid>/Calls/connect (".json" appended for a
//     JSON answer, XML otherwise), HTTP Basic <api_key>:<api_token>, form
//     fields From (called first), To (connected once From answers) or Url
//     (a call flow, http://my.exotel.com/<sid>/exoml/start_voice/<app_id>),
//     CallerId (the ExoPhone; required), CallType (trans), TimeLimit (at most
//     14400), TimeOut, WaitUrl, Record, RecordingChannels, RecordingFormat,
//     StartPlaybackToNew, StartPlaybackValueNew, StreamUrl, StreamBegin,
//     CustomField, StatusCallback, StatusCallbackEvents (terminal, answered;
//     accepted as StatusCallbackEvents[0].., StatusCallbackEvents[] or a comma
//     list), StatusCallbackContentType (multipart/form-data, the default, or
//     application/json)
//     (https://developer.exotel.com/api/make-a-call-api,
//     https://developer.exotel.com/docs/voice-v1/api-reference/connect-two-numbers,
//     https://developer.exotel.com/api/outgoing-call-to-connect-number-to-a-call-flow,
//     https://developer.exotel.com/docs/voice-v1/api-reference/outgoing-call-to-flow).
//     The answer: 200 {"Call": {Sid, ParentCallSid, DateCreated, DateUpdated,
//     AccountSid, To, From, PhoneNumberSid, Status ("in-progress"), StartTime,
//     EndTime, Duration, Price, Direction ("outbound-api"), AnsweredBy,
//     ForwardedFrom, CallerName, Uri, RecordingUrl}} (the same pages; the shape
//     as github.com/juspay's Exotel client reads it, Lib/Exotel/Types.hs).
//     Exotel writes Indian numbers back as 0XXXXXXXXXX; the fake echoes what
//     it was sent.  Errors in the RestException envelope as for SMS; 429 past
//     200 calls a minute (https://developer.exotel.com/api-console/voice).
//     GET /v1/Accounts/<sid>/Calls/<CallSid>(.json): the same {"Call": ...}
//     (Call Details, the fallback Exotel advises when a callback is lost).
//   * Ending a call: the Voice v1 API has none (its API list: connect, call
//     details, number metadata, callbacks; https://developer.exotel.com/
//     api-console/voice).  TimeLimit caps a call.  The hangup Exotel documents
//     is the CPaaS Legs API (POST cpaas-api.in.exotel.com/v2/accounts/<sid>/
//     legs/<leg_sid>/actions/hangup, https://developer.exotel.com/docs/exoml/
//     verbs/hangup), on legs of ExoML/Hermix flows, not on v1 CallSids; so
//     this fake has no end-call route.
//   * Call StatusCallback (https://developer.exotel.com/api/statuscallback,
//     https://developer.exotel.com/docs/voice-v1/api-reference/status-callback,
//     https://developer.exotel.com/docs/references/webhooks): a POST when the
//     call ends with CallSid, Status (completed, failed, busy, no-answer),
//     RecordingUrl (null/empty without a recording), DateUpdated
//     ("YYYY-MM-DD HH:mm:ss"); with StatusCallbackEvents also EventType
//     (terminal, or answered when the call is answered, subscribed
//     separately), DateCreated, To, From, PhoneNumberSid, StartTime, EndTime,
//     ConversationDuration (seconds From and To talked), Direction, CustomField
//     and Legs [{OnCallDuration, Status, AnsweredBy}].  Body: multipart/form-data
//     ("passed in the Message body and as multipart/form-data", support.exotel.com
//     article 48278) unless StatusCallbackContentType=application/json.  In
//     multipart the fake writes Legs as Legs[0][OnCallDuration] (Exotel shows
//     Legs only in JSON).  The Status of an answered event ("in-progress") is
//     the fake's choice: the pages list terminal values only.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';

const hex = (n) => randomBytes(n).toString('hex');

function restException(res, status, message, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ RestException: { Status: status, Message: message } }));
}

export async function postForm(url, params) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  return { status: res.status, text, body, headers: res.headers };
}

const stamp = () => new Date().toISOString().replace('T', ' ').slice(0, 19);

// A call StatusCallback in the content type the call asked for.
async function postCallback(url, body, contentType) {
  let payload;
  const headers = {};
  if (contentType === 'application/json') {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  } else {
    payload = new FormData();
    for (const [k, v] of Object.entries(body)) {
      if (k !== 'Legs') { payload.append(k, v === null ? '' : String(v)); continue; }
      v.forEach((leg, i) => { for (const [lk, lv] of Object.entries(leg)) payload.append(`Legs[${i}][${lk}]`, String(lv)); });
    }
  }
  const res = await fetch(url, { method: 'POST', headers, body: payload });
  return { status: res.status, text: await res.text() };
}

const TERMINAL = ['completed', 'failed', 'busy', 'no-answer'];

export async function startExotel({ sid = `acme${hex(4)}`, apiKey = hex(12), apiToken = hex(16) } = {}) {
  const ex = {
    sid, apiKey, apiToken, messages: new Map(), requests: [], failures: [], counts: new Map(),
    calls: new Map(), callRequests: [], callFailures: [], callCounts: new Map(), callCallbacks: [],
    server: null, port: 0, url: '',
    fail(list) { this.failures.push(...list); },
    failCalls(list) { this.callFailures.push(...list); },
    sends(to, body) { return this.counts.get(`${to}\n${body}`) ?? 0; },
    callsTo(to) { return this.callCounts.get(to) ?? 0; },
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
    // A status callback for SMS sid, posted to its StatusCallback, or to target
    // (the same path on another host, e.g. the server behind the "proxy").
    async callback(sid, status, { detailedStatus, detailedStatusCode, target, url } = {}) {
      const m = this.messages.get(sid);
      if (!m) throw new Error(`no SMS ${sid}`);
      let dest = url ?? m.callback;
      if (!dest) throw new Error(`SMS ${sid} has no StatusCallback`);
      if (target) dest = target + new URL(dest).pathname;
      const ds = detailedStatus ?? ({ sent: 'DELIVERED_TO_OPERATOR', delivered: 'DELIVERED_TO_HANDSET',
        failed: 'FAILED', failed_dnd: 'FAILED_DND' }[status] ?? '');
      const dsc = detailedStatusCode ?? ({ sent: '20006', delivered: '20005', failed: '23010',
        failed_dnd: '23005' }[status] ?? '');
      return postForm(dest, { SmsSid: sid, To: m.to, Status: status, SmsUnits: '1',
        DetailedStatus: ds, DetailedStatusCode: dsc, DateSent: stamp() });
    },
    async inbound(url, { from, to, body, sid = hex(16) }) {
      return { sid, ...(await postForm(url, { SmsSid: sid, From: from, To: to, Date: stamp(), Body: body })) };
    },
    // The StatusCallback of call sid for status: terminal statuses end the
    // call (always called back), 'in-progress' answers it (called back when
    // 'answered' is subscribed).  Posted to url ?? its StatusCallback, or to
    // target + that URL's path (the server behind the "proxy").
    async callStatus(sid, status, { duration, recordingUrl, eventType, answeredBy = 'NA', legs, target,
      url } = {}) {
      const c = this.calls.get(sid);
      if (!c) throw new Error(`no call ${sid}`);
      if (!TERMINAL.includes(status) && status !== 'in-progress') throw new Error(`no call status ${status}`);
      const now = stamp();
      c.status = status;
      c.updated = now;
      const event = eventType ?? (status === 'in-progress' ? 'answered' : 'terminal');
      if (status === 'in-progress') c.answered = now;
      if (TERMINAL.includes(status)) {
        c.ended = now;
        c.duration = duration ?? 0;
        if (recordingUrl ?? (c.record && status === 'completed'))
          c.recordingUrl = recordingUrl ?? `https://recordings.exotel.com/exotelrecordings/${this.sid}/${sid}.mp3`;
      }
      let dest = url ?? c.callback;
      if (!dest) return null;
      if (event === 'answered' && !c.events.includes('answered')) return null;
      if (target) dest = target + new URL(dest).pathname;
      const body = { CallSid: sid, Status: status, RecordingUrl: c.recordingUrl ?? null, DateUpdated: now };
      if (c.events.length) {
        const talked = status === 'completed' ? c.duration : 0;
        Object.assign(body, { EventType: event, DateCreated: c.created, To: c.to ?? '', From: c.from,
          PhoneNumberSid: c.callerId, StartTime: c.created, EndTime: c.ended ?? null,
          ConversationDuration: talked, Direction: 'outbound-api', CustomField: c.customField ?? '',
          Legs: legs ?? [{ OnCallDuration: talked, Status: status, AnsweredBy: answeredBy },
            ...(c.to && (status === 'completed' || status === 'in-progress')
              ? [{ OnCallDuration: talked, Status: status, AnsweredBy: answeredBy }] : [])] });
      }
      const result = await postCallback(dest, body, c.contentType);
      this.callCallbacks.push({ sid, status, eventType: body.EventType ?? null, url: dest,
        contentType: c.contentType, body, result });
      return result;
    },
  };
  await ex.start();
  return ex;
}

function handle(ex, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const path = req.url.split('?')[0];
    const m = /^\/v1\/Accounts\/([^/]+)\/(Sms\/send|Calls\/connect|Calls\/([^/.]+))(\.json)?$/.exec(path);
    if (!m) return restException(res, 404, 'Not Found');
    const auth = req.headers.authorization ?? '';
    const want = `Basic ${Buffer.from(`${ex.apiKey}:${ex.apiToken}`).toString('base64')}`;
    if (auth !== want || m[1] !== ex.sid) return restException(res, 401, 'Authentication is required to view this page.');
    const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    if (m[2] === 'Sms/send' && req.method === 'POST') return sendSms(ex, res, Object.fromEntries(params));
    if (m[2] === 'Calls/connect' && req.method === 'POST') return connectCall(ex, res, params, Boolean(m[4]));
    if (m[3] && m[3] !== 'connect' && req.method === 'GET') {
      const c = ex.calls.get(m[3]);
      if (!c) return restException(res, 404, 'Not Found');
      return callAnswer(res, callJson(ex, c), Boolean(m[4]));
    }
    return restException(res, 404, 'Not Found');
  });
}

// A failure queued with fail()/failCalls(), after the delays; true once answered.
async function injected(ex, res, queue, to) {
  const f = queue.shift() ?? {};
  const delay = f.delayMs ?? ex.delayAll ?? 0;
  if (delay) await new Promise((r) => setTimeout(r, delay));
  if (!(f.status >= 400)) return false;
  if (f.status === 429) restException(res, 429, 'Too Many Requests');
  else if (f.status >= 500) restException(res, f.status, 'Internal Server Error');
  else restException(res, f.status, f.message ?? `Invalid Recipient [${to}]`);
  return true;
}

async function sendSms(ex, res, form) {
  ex.requests.push(form);
  if (!form.From || !form.To || !form.Body) return restException(res, 400, 'Invalid Parameters');
  if (await injected(ex, res, ex.failures, form.To)) return undefined;
  const sid = hex(16);
  const now = stamp();
  ex.messages.set(sid, { sid, to: form.To, from: form.From, body: form.Body, callback: form.StatusCallback ?? null,
    dlt: form.DltEntityId ?? null });
  ex.counts.set(`${form.To}\n${form.Body}`, ex.sends(form.To, form.Body) + 1);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ SMSMessage: {
    Sid: sid, AccountSid: ex.sid, From: `${form.From}/${ex.sid}`, To: form.To, DateCreated: now,
    DateUpdated: now, DateSent: null, Body: form.Body, Direction: 'outbound-api',
    Uri: `/v1/Accounts/${ex.sid}/SMS/Messages/${sid}.json`, ApiVersion: null, Price: null,
    Status: 'queued', DetailedStatusCode: 21010, DetailedStatus: 'PENDING_TO_OPERATOR', SmsUnits: null,
  } }));
  return undefined;
}

// StatusCallbackEvents as clients send it: [0], [1], ...; []; or one comma list.
function callbackEvents(params) {
  const out = [];
  for (const [k, v] of params)
    if (/^StatusCallbackEvents(\[\d*\])?$/.test(k)) out.push(...v.split(',').map((e) => e.trim()).filter(Boolean));
  return out;
}

function callJson(ex, c) {
  return {
    Sid: c.sid, ParentCallSid: null, DateCreated: c.created, DateUpdated: c.updated, AccountSid: ex.sid,
    To: c.to, From: c.from, PhoneNumberSid: c.callerId, Status: c.status, StartTime: c.created,
    EndTime: c.ended ?? null, Duration: c.ended ? c.duration : null, Price: null, Direction: 'outbound-api',
    AnsweredBy: null, ForwardedFrom: null, CallerName: null, Uri: `/v1/Accounts/${ex.sid}/Calls/${c.sid}.json`,
    RecordingUrl: c.recordingUrl ?? null,
  };
}

const xmlEscape = (v) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function callAnswer(res, call, asJson) {
  if (asJson) {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ Call: call }));
  }
  res.writeHead(200, { 'content-type': 'application/xml' });
  const fields = Object.entries(call).map(([k, v]) => (v === null ? `<${k}/>` : `<${k}>${xmlEscape(v)}</${k}>`));
  return res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<TwilioResponse><Call>${fields.join('')}</Call></TwilioResponse>`);
}

async function connectCall(ex, res, params, asJson) {
  const form = Object.fromEntries(params);
  ex.callRequests.push(form);
  if (!form.From || !form.CallerId || (!form.To && !form.Url)) return restException(res, 400, 'Invalid Parameters');
  const events = callbackEvents(params);
  if (events.some((e) => !['terminal', 'answered'].includes(e)))
    return restException(res, 400, `Invalid StatusCallbackEvents [${events.join(',')}]`);
  if (form.TimeLimit && !(Number(form.TimeLimit) > 0 && Number(form.TimeLimit) <= 14400))
    return restException(res, 400, `Invalid TimeLimit [${form.TimeLimit}]`);
  if (await injected(ex, res, ex.callFailures, form.To ?? form.From)) return undefined;
  const sid = hex(16);
  const now = stamp();
  const call = { sid, from: form.From, to: form.To ?? null, url: form.Url ?? null, callerId: form.CallerId,
    callType: form.CallType ?? null, timeLimit: form.TimeLimit ?? null, timeOut: form.TimeOut ?? null,
    record: form.Record === 'true', callback: form.StatusCallback ?? null, events,
    contentType: form.StatusCallbackContentType === 'application/json' ? 'application/json' : 'multipart/form-data',
    customField: form.CustomField ?? null, status: 'in-progress', duration: null, created: now, updated: now,
    ended: null, form };
  ex.calls.set(sid, call);
  const who = form.To ?? form.From;
  ex.callCounts.set(who, ex.callsTo(who) + 1);
  return callAnswer(res, callJson(ex, call), asJson);
}
