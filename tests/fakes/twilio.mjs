// A local fake of Twilio's REST API (Messages, 2010-04-01) and of Twilio's
// webhook sender, for black-box tests of the `telephony` plugin.
//
//   const tw = await startTwilio();             // tw.url, tw.accountSid, tw.authToken
//   ... point the plugin at twilio_api_url = tw.url ...
//   tw.fail([{ status: 429, retryAfter: 1 }, { status: 500 }, { status: 400, code: 21211 },
//            { delayMs: 3000 }, { callbackFirst: 'sent' }])  // the next sends answer so, in
//                                           // order (callbackFirst: the status callback is
//                                           // delivered, to tw.callbackTarget when set,
//                                           // before the 201)
//   tw.delayAll = 30                            // every send answers that many ms late
//   tw.hold(); ... tw.release()                 // sends wait unanswered in between
//   tw.sends('+15005550006', 'hello')          // how many messages Twilio accepted (201)
//   tw.requests                                 // every create request seen (form fields)
//   tw.messages.get(sid)                        // accepted messages {sid, to, body, callback}
//   await tw.callback(sid, 'delivered', { errorCode, target })   // signed status callback
//   await tw.inbound(url, { from, to, body })   // signed inbound SMS webhook
//   await tw.stop(); await tw.start()           // connection refused while stopped
//
// Wire format, from Twilio's documentation:
//   * POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded To, From or
//     MessagingServiceSid, Body, StatusCallback; HTTP Basic AccountSid:AuthToken.
//     201 with the Message resource (sid "SM" + 32 hex, status "queued" or
//     "accepted" with a messaging service, num_segments, error_code null, ...).
//     (https://www.twilio.com/docs/messaging/api/message-resource)
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

const hex = (n) => randomBytes(n).toString('hex');

function twilioError(res, status, code, message, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }));
}

export async function startTwilio({ accountSid = `AC${hex(16)}`, authToken = hex(16) } = {}) {
  const tw = {
    accountSid, authToken, messages: new Map(), requests: [], failures: [], counts: new Map(),
    server: null, port: 0, url: '',
    fail(list) { this.failures.push(...list); },
    sends(to, body) { return this.counts.get(`${to}\n${body}`) ?? 0; },
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
  };
  await tw.start();
  return tw;
}

function handle(tw, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const path = req.url.split('?')[0];
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(path);
    if (!m || req.method !== 'POST') return twilioError(res, 404, 20404, 'The requested resource was not found');
    const auth = req.headers.authorization ?? '';
    const want = `Basic ${Buffer.from(`${tw.accountSid}:${tw.authToken}`).toString('base64')}`;
    if (auth !== want || m[1] !== tw.accountSid) return twilioError(res, 401, 20003, 'Authenticate');
    const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    tw.requests.push(form);
    if (!form.To) return twilioError(res, 400, 21604, "A 'To' phone number is required.");
    if (!form.From && !form.MessagingServiceSid)
      return twilioError(res, 400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.");
    if (!form.Body) return twilioError(res, 400, 21602, 'Message body is required.');
    if (tw.gate) await tw.gate;
    const f = tw.failures.shift() ?? {};
    const delay = f.delayMs ?? tw.delayAll ?? 0;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (f.status === 429)
      return twilioError(res, 429, 20429, 'Too Many Requests', f.retryAfter ? { 'retry-after': String(f.retryAfter) } : {});
    if (f.status >= 500) return twilioError(res, f.status, 20500, 'Internal Server Error');
    if (f.status === 400)
      return twilioError(res, 400, f.code ?? 21211, f.message ?? `The 'To' number ${form.To} is not a valid phone number.`);
    const sid = `SM${hex(16)}`;
    const now = new Date().toUTCString();
    const msg = { sid, to: form.To, from: form.From ?? null, body: form.Body, callback: form.StatusCallback ?? null };
    tw.messages.set(sid, msg);
    tw.counts.set(`${form.To}\n${form.Body}`, tw.sends(form.To, form.Body) + 1);
    // Twilio may call back before its answer to the create is handled.
    if (f.callbackFirst) await tw.callback(sid, f.callbackFirst, { target: tw.callbackTarget });
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      account_sid: tw.accountSid, api_version: '2010-04-01', body: form.Body, date_created: now,
      date_sent: null, date_updated: now, direction: 'outbound-api', error_code: null, error_message: null,
      from: form.From ?? null, messaging_service_sid: form.MessagingServiceSid ?? null,
      num_media: '0', num_segments: '1', price: null, price_unit: 'USD', sid,
      status: form.MessagingServiceSid ? 'accepted' : 'queued', subresource_uris: {
        media: `/2010-04-01/Accounts/${tw.accountSid}/Messages/${sid}/Media.json` },
      to: form.To, uri: `/2010-04-01/Accounts/${tw.accountSid}/Messages/${sid}.json`,
    }));
  });
}
