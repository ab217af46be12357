// A local fake of Meta's WhatsApp Business Cloud API (the Graph API routes the
// `whatsapp` plugin uses) and of Meta's webhook sender, for black-box tests.
//
//   const g = await startGraph({ accessToken, appSecret, phoneNumberId, wabaId });
//                                             // g.url, g.accessToken, g.appSecret,
//                                             // g.phoneNumberId, g.wabaId, g.displayPhoneNumber
//   ... point the plugin at graph_api_url = g.url (any graph_api_version, e.g. v21.0) ...
//   g.fail([{ status: 400, code: 131047 }, { status: 400, code: 130429, title, details, subcode },
//           { status: 500, code: 2 }, { delayMs: 3000 }])
//                                             // the next message sends answer so, in order;
//                                             // code alone means HTTP 400
//   g.failUploads([{ status: 500, code: 1 }]) // the next media uploads answer so, in order
//   g.delayAll = 30                           // every send answers that many ms late
//   g.hold(); ... g.release()                 // sends wait unanswered (and uncounted)
//   g.sends('+15551234567')                   // messages accepted (200) to that number
//                                             // (compared by digits: "15551234567" is the same)
//   g.requests                                // every send request body seen (parsed JSON)
//   g.messages.get(wamid)                     // accepted messages {id, to, wa_id, type, body}
//   g.uploads                                 // every media upload seen {type, messaging_product,
//                                             // filename, mime, size}
//   g.media.get(id)                           // {id, bytes, mime, sha256, size}
//   g.addMedia(bytes, mime)                   // media as a customer sent it; returns its id
//   g.templates = [...]                       // what GET .../message_templates lists
//   await g.deliver(url, payload, { signature, appSecret })
//                                             // POSTs a webhook; signature: a header value to
//                                             // send as is, or false for none; otherwise signed
//                                             // with appSecret ?? g.appSecret. {status, text, raw}
//   g.inboundText({ from, text, id, timestamp, name })
//   g.inboundImage({ from, mediaId, mime, sha256, caption, id, timestamp, name })
//   g.status({ id, status, recipient_id, timestamp, errors, biz_opaque_callback_data })
//                                             // Meta's webhook envelopes, to pass to deliver();
//                                             // a status of a message the fake accepted echoes
//                                             // its biz_opaque_callback_data, as Meta does
//   g.autoStatus = { url, statuses: ['sent'] } // after each accepted send, deliver those status
//                                             // webhooks to url (signed; retried like Meta retries
//                                             // a failed delivery); await g.idle() waits for them
//   await g.verify(url, { mode: 'subscribe', token, challenge })
//                                             // Meta's verification GET; the server's {status, text}
//   await g.stop(); await g.start()           // connection refused while stopped
//
// Wire format, from Meta's documentation (checked in tests/http/whatsapp-fake.test.mjs
// with the whatsapp-api-js npm client; Meta's own Node.js SDK, npm "whatsapp", is archived
// and always calls https://graph.facebook.com over TLS, so it cannot reach a local fake):
//   * Every route is https://graph.facebook.com/<version>/..., authenticated with
//     "Authorization: Bearer <access token>" (developers.facebook.com/docs/whatsapp/
//     cloud-api/reference/media: "All API calls require authentication with access tokens").
//   * POST /<version>/<PHONE_NUMBER_ID>/messages, JSON {messaging_product: "whatsapp",
//     recipient_type: "individual", to, type, <type>: {...}} (text: {body, preview_url};
//     image/audio/video/document/sticker: {id | link, caption?, filename?}; template:
//     {name, language: {code}, components}). The answer, 200 (prismatic.io's recorded
//     example of the send call, matching the Graph reference):
//       {"messaging_product": "whatsapp", "contacts": [{"input": "16505555555",
//        "wa_id": "16505555555"}], "messages": [{"id": "wamid.HBgLMTY1MDUw..."}]}
//   * Errors, in Graph's envelope (Cloud API error codes page; the sample quoted by
//     developers.aivo.co/engage and the Scribd copy of Meta's page):
//       {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
//        "code": 130429, "error_data": {"messaging_product": "whatsapp", "details":
//        "Message failed to send because there were too many messages sent from this
//        phone number in a short period of time"}, "error_subcode": 2494055,
//        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}
//     message is "(#<code>) <title>". HTTP statuses per that table: 190 token expired 401,
//     10 and 200-299 permission 403, 4 / 80007 / 130429 / 131048 / 131056 400 or 429
//     (Meta lists 130429 as 400 for Cloud API), 131047 re-engagement (more than 24 hours
//     since the customer's last message) 400, 131026 message undeliverable 400,
//     100 invalid parameter 400, 1 / 2 / 131000 server errors 500/503.
//   * Media (developers.facebook.com/docs/whatsapp/cloud-api/reference/media):
//     POST /<version>/<PHONE_NUMBER_ID>/media, multipart fields file, type (the MIME type),
//     messaging_product=whatsapp (a form field, or a query parameter as whatsapp-api-js
//     sends it) -> {"id": "<MEDIA_ID>"}. GET /<version>/<MEDIA_ID> -> {"messaging_product":
//     "whatsapp", "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=
//     <MEDIA_ID>&ext=<EXPIRY>&hash=<HASH>", "mime_type", "sha256", "file_size", "id"}
//     (dualhook.com/docs/media-upload; docs.360dialog.com messaging-api media reference).
//     The fake serves that path on its own host; GET it with the Bearer token -> the bytes.
//     DELETE /<version>/<MEDIA_ID> -> {"success": true}.
//   * Templates (developers.facebook.com/documentation/business-messaging/whatsapp/
//     templates/template-management): GET /<version>/<WABA_ID>/message_templates
//     (?fields=, limit=, after=, before=, status=, name=) -> {"data": [{"name",
//     "parameter_format", "components": [{"type": "BODY", "text", ...}], "language",
//     "status", "category", "id"}], "paging": {"cursors": {"before", "after"}, "next"?}}.
//   * Webhooks (developers.facebook.com/documentation/business-messaging/whatsapp/
//     webhooks/reference/messages and .../messages/status): a POST of
//       {"object": "whatsapp_business_account", "entry": [{"id": "<WABA_ID>", "changes":
//        [{"value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number":
//        "15550783881", "phone_number_id": "106540352242922"}, "contacts": [{"profile":
//        {"name": "Sheena Nelson"}, "wa_id": "16505551234"}], "messages": [{"from":
//        "16505551234", "id": "wamid.HBgL...", "timestamp": "1749416383", "type": "text",
//        "text": {"body": "Does it come in another color?"}}]}, "field": "messages"}]}]}
//     or with "statuses": [{"id", "status" (sent|delivered|read|failed), "timestamp",
//     "recipient_id", "conversation"?, "pricing"?, "errors"?: [{"code", "title",
//     "message", "error_data": {"details"}, "href"}]}] instead of contacts/messages.
//     Image messages carry "image": {"caption"?, "mime_type", "sha256", "id"}.
//     Signed with "X-Hub-Signature-256: sha256=" + hex HMAC-SHA256(app secret, raw body)
//     (developers.facebook.com/docs/graph-api/webhooks/getting-started, "Event
//     Notifications"); Meta escapes non-ASCII characters as \uXXXX in the body it signs,
//     and so does this fake (whatsapp-api-js verifies over the escaped text for that).
//   * Verification: GET <callback>?hub.mode=subscribe&hub.challenge=1158201444&
//     hub.verify_token=meatyhamhock; the endpoint answers 200 with the challenge
//     (the same getting-started page).
import { createServer } from 'node:http';
import { createHash, createHmac, randomBytes, randomInt } from 'node:crypto';

const hex = (n) => randomBytes(n).toString('hex');
const digits = (s) => String(s ?? '').replace(/\D/g, '');
const now = () => String(Math.floor(Date.now() / 1000));
const wamid = () => `wamid.${randomBytes(30).toString('base64').replace(/=+$/, '')}`;
const numericId = () => `${randomInt(1e8, 1e9)}${randomInt(1e6, 1e7)}`;

// Known codes: title, details and HTTP status as Meta's error codes page gives them.
const CODES = {
  0: ['AuthException', 'We were unable to authenticate the app user.', 401],
  1: ['API Unknown', 'Invalid request or possible server error.', 500],
  2: ['API Service', 'Temporary due to downtime or due to being overloaded.', 503],
  4: ['API Too Many Calls', 'The app has reached its API call rate limit.', 400],
  10: ['Permission Denied', 'Permission is either not granted or has been removed.', 403],
  100: ['Invalid parameter', 'The request included one or more unsupported or misspelled parameters.', 400],
  131000: ['Something went wrong', 'Message failed to send due to an unknown error.', 500],
  130429: ['Rate limit hit', 'Message failed to send because there were too many messages sent from this '
    + 'phone number in a short period of time', 400],
  131026: ['Message Undeliverable', 'Message Undeliverable.', 400],
  131047: ['Re-engagement message', 'Message failed to send because more than 24 hours have passed since '
    + 'the customer last replied to this number.', 400],
  131048: ['Spam rate limit hit', 'Message failed to send because there are restrictions on how many '
    + 'messages can be sent from this phone number.', 400],
  131051: ['Unsupported message type', 'Message type is not currently supported.', 400],
  132001: ['Template does not exist', 'The template does not exist in the specified language or the '
    + 'template has not been approved.', 404],
};

export function graphError(code, { title, details, subcode, message } = {}) {
  const known = CODES[code] ?? [];
  const error = { message: message ?? `(#${code}) ${title ?? known[0] ?? 'Error'}`, type: 'OAuthException', code };
  if (details ?? known[1]) error.error_data = { messaging_product: 'whatsapp', details: details ?? known[1] };
  if (subcode !== undefined) error.error_subcode = subcode;
  error.fbtrace_id = randomBytes(16).toString('base64url').slice(0, 23);
  return { error };
}

function answer(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
  res.end(JSON.stringify(body));
}

function fail(res, status, code, opts) {
  answer(res, status ?? CODES[code]?.[2] ?? 400, graphError(code, opts));
}

// JSON as Meta writes the bodies it signs: non-ASCII escaped as \uXXXX.
export function metaJson(value) {
  return JSON.stringify(value).replace(/[^\0-~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function signature(secret, raw) {
  return `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
}

const DEFAULT_TEMPLATES = [
  { name: 'hello_world', parameter_format: 'POSITIONAL', language: 'en_US', status: 'APPROVED',
    category: 'UTILITY', components: [
      { type: 'HEADER', format: 'TEXT', text: 'Hello World' },
      { type: 'BODY', text: 'Welcome and congratulations!! This message demonstrates your ability to send a '
        + 'WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to '
        + 'test with us.' },
      { type: 'FOOTER', text: 'WhatsApp Business Platform sample message' }] },
  { name: 'order_update', parameter_format: 'POSITIONAL', language: 'en_US', status: 'APPROVED',
    category: 'UTILITY', components: [
      { type: 'BODY', text: 'Your order {{1}} is on its way and should arrive by {{2}}.',
        example: { body_text: [['#1234', 'Friday']] } }] },
  { name: 'spring_sale', parameter_format: 'POSITIONAL', language: 'en_US', status: 'PENDING',
    category: 'MARKETING', components: [{ type: 'BODY', text: 'Our spring sale starts tomorrow!' }] },
];

export async function startGraph({ accessToken = `EAAJB${hex(24)}`, appSecret = hex(16),
  phoneNumberId = numericId(), wabaId = numericId(), displayPhoneNumber = '15550783881' } = {}) {
  const g = {
    accessToken, appSecret, phoneNumberId, wabaId, displayPhoneNumber,
    messages: new Map(), requests: [], failures: [], counts: new Map(), media: new Map(), uploads: [],
    templates: DEFAULT_TEMPLATES.map((t) => ({ ...t, id: numericId() })),
    delayAll: 0, gate: null, open: null, server: null, port: 0, url: '',
    autoStatus: null, inflight: new Set(), deliveries: 0,
    async idle() { while (this.inflight.size) await Promise.allSettled([...this.inflight]); },
    fail(list) { this.failures.push(...list); },
    sends(to) { return this.counts.get(digits(to)) ?? 0; },
    hold() { if (!this.gate) this.gate = new Promise((r) => { this.open = r; }); },
    release() { if (this.open) this.open(); this.gate = null; this.open = null; },
    addMedia(bytes, mime) {
      const buf = Buffer.from(bytes);
      const id = numericId();
      this.media.set(id, { id, bytes: buf, mime, size: buf.length,
        sha256: createHash('sha256').update(buf).digest('hex') });
      return id;
    },
    async start() {
      this.server = createServer((req, res) => handle(this, req, res));
      await new Promise((r) => this.server.listen(this.port, '127.0.0.1', r));
      this.port = this.server.address().port;
      this.url = `http://127.0.0.1:${this.port}`;
    },
    failUploads(list) { (this.uploadFailures ??= []).push(...list); },
    async stop() {
      this.release();
      this.server.closeAllConnections?.();
      await new Promise((r) => this.server.close(r));
    },
    envelope(value) {
      return { object: 'whatsapp_business_account', entry: [{ id: this.wabaId, changes: [{ value: {
        messaging_product: 'whatsapp',
        metadata: { display_phone_number: this.displayPhoneNumber, phone_number_id: this.phoneNumberId },
        ...value }, field: 'messages' }] }] };
    },
    inboundText({ from, text, id = wamid(), timestamp = now(), name = '' }) {
      const wa = digits(from);
      return this.envelope({ contacts: [{ profile: { name }, wa_id: wa }],
        messages: [{ from: wa, id, timestamp: String(timestamp), type: 'text', text: { body: text } }] });
    },
    inboundImage({ from, mediaId, mime = 'image/jpeg', sha256, caption, id = wamid(), timestamp = now(),
      name = '' }) {
      const wa = digits(from);
      const m = this.media.get(mediaId);
      const image = { mime_type: m?.mime ?? mime, sha256: sha256 ?? m?.sha256 ?? hex(32), id: mediaId };
      if (caption !== undefined) image.caption = caption;
      return this.envelope({ contacts: [{ profile: { name }, wa_id: wa }],
        messages: [{ from: wa, id, timestamp: String(timestamp), type: 'image', image }] });
    },
    status({ id, status, recipient_id, timestamp = now(), errors, biz_opaque_callback_data }) {
      const s = { id, status, timestamp: String(timestamp), recipient_id: digits(recipient_id) };
      const opaque = biz_opaque_callback_data ?? this.messages.get(id)?.biz_opaque_callback_data;
      if (opaque !== undefined) s.biz_opaque_callback_data = opaque;
      if (status === 'sent' || status === 'delivered') {
        s.conversation = { id: hex(16), origin: { type: 'service' } };
        if (status === 'sent') s.conversation.expiration_timestamp = String(Number(timestamp) + 86400);
        s.pricing = { billable: true, pricing_model: 'CBP', category: 'service' };
      }
      if (errors || status === 'failed') {
        s.errors = (errors ?? [{ code: 131026 }]).map((e) => {
          const known = CODES[e.code] ?? [];
          const title = e.title ?? known[0] ?? 'Error';
          return { code: e.code, title, message: e.message ?? title,
            error_data: { details: e.details ?? known[1] ?? title },
            href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/' };
        });
      }
      return this.envelope({ statuses: [s] });
    },
    async deliver(url, payload, { signature: sig, appSecret: secret } = {}) {
      const raw = typeof payload === 'string' || Buffer.isBuffer(payload) ? Buffer.from(payload)
        : Buffer.from(metaJson(payload), 'utf8');
      const headers = { 'content-type': 'application/json', 'user-agent': 'facebookexternalua' };
      if (sig !== false) headers['x-hub-signature-256'] = sig ?? signature(secret ?? this.appSecret, raw);
      const res = await fetch(url, { method: 'POST', headers, body: raw });
      return { status: res.status, text: await res.text(), raw };
    },
    async verify(url, { mode = 'subscribe', token, challenge = String(randomInt(1e9, 2e9)) } = {}) {
      const u = new URL(url);
      if (mode !== undefined && mode !== null) u.searchParams.set('hub.mode', mode);
      if (challenge !== undefined && challenge !== null) u.searchParams.set('hub.challenge', challenge);
      if (token !== undefined && token !== null) u.searchParams.set('hub.verify_token', token);
      const res = await fetch(u, { headers: { 'user-agent': 'facebookplatform/1.0' } });
      return { status: res.status, text: await res.text(), challenge };
    },
  };
  await g.start();
  return g;
}

function authorised(g, req, query) {
  const auth = req.headers.authorization ?? '';
  return auth === `Bearer ${g.accessToken}` || query.get('access_token') === g.accessToken;
}

function handle(g, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks);
    const u = new URL(req.url, g.url);
    const query = u.searchParams;
    if (!authorised(g, req, query)) {
      if (!req.headers.authorization && !query.get('access_token'))
        return fail(res, 400, 2500, { message: 'An active access token must be used to query information about '
          + 'the current user.', details: undefined });
      return fail(res, 401, 190, { message: 'Invalid OAuth access token - Cannot parse access token' });
    }
    if (u.pathname === '/whatsapp_business/attachments/' && req.method === 'GET')
      return download(g, res, query);
    const m = /^\/(v\d+\.\d+)\/([^/]+)(?:\/([a-z_]+))?\/?$/.exec(u.pathname);
    if (!m) return fail(res, 400, 2500, { message: 'Unknown path components: ' + u.pathname, details: undefined });
    const [, version, node, edge] = m;
    if (edge === 'messages' && req.method === 'POST' && node === g.phoneNumberId) return send(g, res, req, raw);
    if (edge === 'media' && req.method === 'POST' && node === g.phoneNumberId) return upload(g, res, req, raw, query);
    if (edge === 'message_templates' && req.method === 'GET' && node === g.wabaId) return templates(g, res, query, version);
    if (!edge && g.media.has(node)) {
      const md = g.media.get(node);
      if (req.method === 'GET') {
        return answer(res, 200, { messaging_product: 'whatsapp', url: `${g.url}/whatsapp_business/attachments/?mid=`
          + `${md.id}&ext=${Math.floor(Date.now() / 1000) + 300}&hash=${hex(12)}`, mime_type: md.mime,
        sha256: md.sha256, file_size: md.size, id: md.id });
      }
      if (req.method === 'DELETE') { g.media.delete(node); return answer(res, 200, { success: true }); }
    }
    const verb = req.method === 'GET' ? 'get' : req.method === 'DELETE' ? 'delete' : 'post';
    return fail(res, 400, 100, { subcode: 33, details: undefined, message: `Unsupported ${verb} request. Object `
      + `with ID '${node}' does not exist, cannot be loaded due to missing permissions, or does not support `
      + 'this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api' });
  });
}

const MEDIA_TYPES = ['image', 'audio', 'video', 'document', 'sticker'];

async function send(g, res, req, raw) {
  let body;
  try { body = JSON.parse(raw.toString('utf8')); } catch { body = null; }
  g.requests.push(body);
  const bad = (details) => fail(res, 400, 100, { details });
  if (!body || typeof body !== 'object') return bad('Request body must be JSON');
  if (body.messaging_product !== 'whatsapp')
    return bad('The parameter messaging_product is required.');
  if (body.recipient_type !== undefined && body.recipient_type !== 'individual')
    return bad('Param recipient_type must be one of {INDIVIDUAL, GROUP} - got "' + body.recipient_type + '".');
  if (typeof body.to !== 'string' || digits(body.to).length < 7) return bad('The parameter to is required.');
  const type = body.type ?? 'text';
  const obj = body[type];
  if (!obj || typeof obj !== 'object') return bad(`Param ${type} is required.`);
  if (type === 'text' && (typeof obj.body !== 'string' || obj.body.length === 0))
    return bad('The parameter text[\'body\'] is required.');
  if (type === 'text' && obj.body.length > 4096) return bad('Param text[\'body\'] must be at most 4096 characters long.');
  if (MEDIA_TYPES.includes(type) && !obj.id && !obj.link) return bad(`Param ${type} must contain id or link.`);
  if (type === 'template') {
    if (!obj.name || !obj.language?.code) return bad('Param template[\'name\'] and template[\'language\'][\'code\'] are required.');
    const t = g.templates.find((x) => x.name === obj.name && x.language === obj.language.code);
    if (!t || t.status !== 'APPROVED')
      return fail(res, 404, 132001, { details: `template name (${obj.name}) does not exist in ${obj.language.code}` });
  }
  if (g.gate) await g.gate;
  const f = g.failures.shift() ?? {};
  const delay = f.delayMs ?? g.delayAll ?? 0;
  if (delay) await new Promise((r) => setTimeout(r, delay));
  if (f.status >= 400 || f.code !== undefined) {
    return fail(res, f.status ?? CODES[f.code]?.[2] ?? 400, f.code ?? (f.status >= 500 ? 1 : 100),
      { title: f.title, details: f.details, subcode: f.subcode });
  }
  const id = wamid();
  const waId = digits(body.to);
  g.messages.set(id, { id, to: body.to, wa_id: waId, type, body,
    biz_opaque_callback_data: body.biz_opaque_callback_data });
  g.counts.set(waId, g.sends(waId) + 1);
  if (g.autoStatus) autoDeliver(g, id, waId);
  return answer(res, 200, { messaging_product: 'whatsapp', contacts: [{ input: body.to, wa_id: waId }],
    messages: [{ id }] });
}

// Meta delivers a message's statuses after it took the message, and retries a
// delivery that failed (a connection reset by a dying worker, a 5xx).
function autoDeliver(g, id, waId) {
  const { url, statuses = ['sent'] } = g.autoStatus;
  const p = (async () => {
    for (const status of statuses) {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          const r = await g.deliver(url, g.status({ id, status, recipient_id: waId }));
          if (r.status === 200) { g.deliveries++; break; }
        } catch { /* connection refused or reset: retried */ }
        await new Promise((r) => setTimeout(r, 100 * Math.min(attempt + 1, 10)));
      }
    }
  })();
  g.inflight.add(p);
  p.finally(() => g.inflight.delete(p));
}

async function upload(g, res, req, raw, query) {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('multipart/form-data'))
    return fail(res, 400, 100, { details: 'Request must be multipart/form-data with a file' });
  let form;
  try { form = await new Response(raw, { headers: { 'content-type': type } }).formData(); } catch { form = null; }
  const file = form?.get('file');
  const product = form?.get('messaging_product') ?? query.get('messaging_product');
  const mime = form?.get('type') ?? (typeof file === 'object' ? file?.type : null) ?? '';
  g.uploads.push({ type: form?.get('type') ?? null, messaging_product: product, filename: file?.name ?? null,
    mime, size: file?.size ?? null });
  if (product !== 'whatsapp') return fail(res, 400, 100, { details: 'The parameter messaging_product is required.' });
  if (!file || typeof file === 'string') return fail(res, 400, 100, { details: 'The parameter file is required.' });
  if (!mime) return fail(res, 400, 100, { details: 'The parameter type is required.' });
  const f = g.uploadFailures?.shift();
  if (f) return fail(res, f.status ?? CODES[f.code]?.[2] ?? 400, f.code ?? (f.status >= 500 ? 1 : 100), f);
  const id = g.addMedia(Buffer.from(await file.arrayBuffer()), mime.split(';')[0].trim());
  return answer(res, 200, { id });
}

function download(g, res, query) {
  const md = g.media.get(query.get('mid') ?? '');
  if (!md) return fail(res, 404, 100, { details: 'Media not found' });
  res.writeHead(200, { 'content-type': md.mime, 'content-length': md.size });
  return res.end(md.bytes);
}

const cursor = (i) => Buffer.from(String(i)).toString('base64url');
const uncursor = (c) => Number(Buffer.from(c, 'base64url').toString('utf8'));

function templates(g, res, query, version) {
  let list = g.templates;
  if (query.get('status')) list = list.filter((t) => t.status === query.get('status').toUpperCase());
  if (query.get('name')) list = list.filter((t) => t.name.includes(query.get('name')));
  const limit = Math.max(1, Math.min(Number(query.get('limit') ?? 25) || 25, 1000));
  let start = 0;
  if (query.get('after')) start = uncursor(query.get('after')) + 1;
  else if (query.get('before')) start = Math.max(0, uncursor(query.get('before')) - limit);
  if (!Number.isInteger(start) || start < 0) return fail(res, 400, 100, { details: 'Invalid cursor' });
  const page = list.slice(start, start + limit);
  const fields = query.get('fields') ? query.get('fields').split(',').map((s) => s.trim()).filter(Boolean) : null;
  const data = page.map((t) => {
    if (!fields) return { ...t };
    const o = {};
    for (const k of fields) if (k in t) o[k] = t[k];
    o.id = t.id;
    return o;
  });
  const out = { data, paging: { cursors: { before: cursor(start), after: cursor(start + Math.max(page.length, 1) - 1) } } };
  if (start + limit < list.length) {
    const next = new URL(`${g.url}/${version}/${g.wabaId}/message_templates`);
    for (const [k, v] of query) if (k !== 'before' && k !== 'after') next.searchParams.set(k, v);
    next.searchParams.set('limit', String(limit));
    next.searchParams.set('after', out.paging.cursors.after);
    out.paging.next = next.toString();
  }
  if (start > 0) {
    const prev = new URL(`${g.url}/${version}/${g.wabaId}/message_templates`);
    prev.searchParams.set('limit', String(limit));
    prev.searchParams.set('before', out.paging.cursors.before);
    out.paging.previous = prev.toString();
  }
  return answer(res, 200, out);
}
