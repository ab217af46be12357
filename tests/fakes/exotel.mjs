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

export async function startExotel({ sid = `acme${hex(4)}`, apiKey = hex(12), apiToken = hex(16) } = {}) {
  const ex = {
    sid, apiKey, apiToken, messages: new Map(), requests: [], failures: [], counts: new Map(),
    server: null, port: 0, url: '',
    fail(list) { this.failures.push(...list); },
    sends(to, body) { return this.counts.get(`${to}\n${body}`) ?? 0; },
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
  };
  await ex.start();
  return ex;
}

function handle(ex, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const path = req.url.split('?')[0];
    const m = /^\/v1\/Accounts\/([^/]+)\/Sms\/send(\.json)?$/.exec(path);
    if (!m || req.method !== 'POST') return restException(res, 404, 'Not Found');
    const auth = req.headers.authorization ?? '';
    const want = `Basic ${Buffer.from(`${ex.apiKey}:${ex.apiToken}`).toString('base64')}`;
    if (auth !== want || m[1] !== ex.sid) return restException(res, 401, 'Authentication is required to view this page.');
    const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    ex.requests.push(form);
    if (!form.From || !form.To || !form.Body) return restException(res, 400, 'Invalid Parameters');
    const f = ex.failures.shift() ?? {};
    const delay = f.delayMs ?? ex.delayAll ?? 0;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (f.status === 429) return restException(res, 429, 'Too Many Requests');
    if (f.status >= 500) return restException(res, f.status, 'Internal Server Error');
    if (f.status >= 400) return restException(res, f.status, f.message ?? `Invalid Recipient [${form.To}]`);
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
  });
}
