// tests/fakes/whatsapp.mjs checked against Meta's documented examples (quoted in
// the fake's header) and with the whatsapp-api-js npm client: sends answer
// {messaging_product, contacts:[{input, wa_id}], messages:[{id}]}, errors come in
// Graph's {error:{message, type, code, error_data, fbtrace_id}} envelope, media
// upload/retrieve/download round-trips, templates page with cursors, and the
// webhooks the fake sends carry a valid X-Hub-Signature-256 over the raw bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac, createHash, timingSafeEqual } from 'node:crypto';
import { WhatsAppAPI } from 'whatsapp-api-js';
import { Text, Image } from 'whatsapp-api-js/messages';
import { startGraph } from '../fakes/whatsapp.mjs';

const V = 'v21.0';
let g;
let hook;
const seen = [];
const VERIFY_TOKEN = 'meatyhamhock';

before(async () => {
  g = await startGraph();
  // A webhook endpoint that checks the signature with node crypto over the raw bytes.
  hook = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      if (req.method === 'GET') {
        const ok = u.searchParams.get('hub.mode') === 'subscribe' && u.searchParams.get('hub.verify_token') === VERIFY_TOKEN;
        res.writeHead(ok ? 200 : 403);
        return res.end(ok ? u.searchParams.get('hub.challenge') : 'forbidden');
      }
      const raw = Buffer.concat(chunks);
      const want = Buffer.from(`sha256=${createHmac('sha256', g.appSecret).update(raw).digest('hex')}`);
      const got = Buffer.from(req.headers['x-hub-signature-256'] ?? '');
      const valid = got.length === want.length && timingSafeEqual(got, want);
      seen.push({ raw, valid, header: req.headers['x-hub-signature-256'] });
      res.writeHead(valid ? 200 : 401);
      return res.end(valid ? 'EVENT_RECEIVED' : 'bad signature');
    });
  });
  await new Promise((r) => hook.listen(0, '127.0.0.1', r));
});
after(async () => {
  await g.stop();
  await new Promise((r) => hook.close(r));
});

const hookUrl = () => `http://127.0.0.1:${hook.address().port}/webhook`;

async function graph(path, { method = 'GET', body, token = g.accessToken, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof FormData)) {
    h['content-type'] = 'application/json';
    body = JSON.stringify(body);
  }
  const res = await fetch(`${g.url}/${V}/${path}`, { method, headers: h, body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: res.status, json, text, type: res.headers.get('content-type') };
}

function assertGraphError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(Object.keys(r.json), ['error']);
  const e = r.json.error;
  assert.equal(e.code, code);
  assert.equal(e.type, 'OAuthException');
  assert.equal(typeof e.message, 'string');
  assert.match(e.fbtrace_id, /^[A-Za-z0-9_-]{10,}$/);
  return e;
}

test('a text send answers the documented shape and is counted', async () => {
  const before = g.sends('+16505555555');
  const r = await graph(`${g.phoneNumberId}/messages`, { method: 'POST', body: {
    messaging_product: 'whatsapp', recipient_type: 'individual', to: '+16505555555', type: 'text',
    text: { preview_url: false, body: 'hello' } } });
  assert.equal(r.status, 200, r.text);
  assert.match(r.type, /^application\/json/);
  assert.deepEqual(Object.keys(r.json).sort(), ['contacts', 'messages', 'messaging_product']);
  assert.equal(r.json.messaging_product, 'whatsapp');
  // {"contacts": [{"input": "16505555555", "wa_id": "16505555555"}], ...}: input echoes `to`.
  assert.deepEqual(r.json.contacts, [{ input: '+16505555555', wa_id: '16505555555' }]);
  assert.equal(r.json.messages.length, 1);
  assert.match(r.json.messages[0].id, /^wamid\.[A-Za-z0-9+/_-]+$/);
  assert.equal(g.sends('+16505555555'), before + 1);
  assert.equal(g.sends('16505555555'), before + 1);
  const m = g.messages.get(r.json.messages[0].id);
  assert.equal(m.type, 'text');
  assert.equal(m.body.text.body, 'hello');
  assert.deepEqual(g.requests.at(-1).text, { preview_url: false, body: 'hello' });
});

test('template and media sends are accepted; an unknown template is 404 code 132001', async () => {
  const t = await graph(`${g.phoneNumberId}/messages`, { method: 'POST', body: {
    messaging_product: 'whatsapp', to: '16505550001', type: 'template',
    template: { name: 'order_update', language: { code: 'en_US' }, components: [
      { type: 'body', parameters: [{ type: 'text', text: '#1234' }, { type: 'text', text: 'Friday' }] }] } } });
  assert.equal(t.status, 200, t.text);
  const img = await graph(`${g.phoneNumberId}/messages`, { method: 'POST', body: {
    messaging_product: 'whatsapp', to: '16505550001', type: 'image', image: { id: '1234567', caption: 'c' } } });
  assert.equal(img.status, 200, img.text);
  assert.equal(g.sends('16505550001'), 2);
  const u = await graph(`${g.phoneNumberId}/messages`, { method: 'POST', body: {
    messaging_product: 'whatsapp', to: '16505550001', type: 'template',
    template: { name: 'spring_sale', language: { code: 'en_US' } } } });
  assertGraphError(u, 404, 132001);
  assert.equal(g.sends('16505550001'), 2);
});

test('malformed sends are 400 code 100 and not counted', async () => {
  const path = `${g.phoneNumberId}/messages`;
  for (const body of ['{not json', { to: '16505550002', type: 'text', text: { body: 'x' } },
    { messaging_product: 'whatsapp', type: 'text', text: { body: 'x' } },
    { messaging_product: 'whatsapp', to: '16505550002', type: 'text', text: {} },
    { messaging_product: 'whatsapp', to: '16505550002', type: 'image', image: {} }]) {
    const r = await graph(path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const e = assertGraphError(r, 400, 100);
    assert.match(e.message, /^\(#100\) /);
  }
  assert.equal(g.sends('16505550002'), 0);
});

test('a bad or missing token and an unknown object answer Graph errors', async () => {
  const body = { messaging_product: 'whatsapp', to: '16505550003', type: 'text', text: { body: 'x' } };
  const bad = await graph(`${g.phoneNumberId}/messages`, { method: 'POST', body, token: 'EAAnope' });
  assertGraphError(bad, 401, 190);
  const none = await graph(`${g.phoneNumberId}/messages`, { method: 'POST', body, token: null });
  assertGraphError(none, 400, 2500);
  const other = await graph('999999/messages', { method: 'POST', body });
  const e = assertGraphError(other, 400, 100);
  assert.equal(e.error_subcode, 33);
  assert.equal(g.sends('16505550003'), 0);
});

test('injected failures answer in order with the documented envelope, then sends succeed', async () => {
  g.fail([{ code: 131047 }, { status: 400, code: 130429, subcode: 2494055 }, { code: 131026 },
    { status: 500, code: 131000 }]);
  const send = () => graph(`${g.phoneNumberId}/messages`, { method: 'POST', body: {
    messaging_product: 'whatsapp', to: '16505550004', type: 'text', text: { body: 'x' } } });
  let e = assertGraphError(await send(), 400, 131047);
  assert.equal(e.message, '(#131047) Re-engagement message');
  assert.equal(e.error_data.messaging_product, 'whatsapp');
  assert.match(e.error_data.details, /24 hours/);
  e = assertGraphError(await send(), 400, 130429);
  // The documented sample: "(#130429) Rate limit hit", error_subcode 2494055.
  assert.equal(e.message, '(#130429) Rate limit hit');
  assert.equal(e.error_subcode, 2494055);
  assert.equal(e.error_data.details, 'Message failed to send because there were too many messages sent from '
    + 'this phone number in a short period of time');
  e = assertGraphError(await send(), 400, 131026);
  assert.equal(e.message, '(#131026) Message Undeliverable');
  assertGraphError(await send(), 500, 131000);
  assert.equal(g.sends('16505550004'), 0);
  assert.equal((await send()).status, 200);
  assert.equal(g.sends('16505550004'), 1);
});

test('hold() keeps sends unanswered and uncounted until release()', async () => {
  g.hold();
  let done = false;
  const p = graph(`${g.phoneNumberId}/messages`, { method: 'POST', body: {
    messaging_product: 'whatsapp', to: '16505550005', type: 'text', text: { body: 'held' } } })
    .then((r) => { done = true; return r; });
  // Wait until the fake has seen the request, then check it is still unanswered.
  while (!g.requests.some((b) => b?.text?.body === 'held')) await new Promise((r) => setImmediate(r));
  assert.equal(done, false);
  assert.equal(g.sends('16505550005'), 0);
  g.release();
  assert.equal((await p).status, 200);
  assert.equal(g.sends('16505550005'), 1);
});

test('media: multipart upload -> {id}; GET id -> documented fields; GET url with the token -> the bytes', async () => {
  const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]);
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: 'image/png' }), 'a.png');
  form.append('type', 'image/png');
  form.append('messaging_product', 'whatsapp');
  const up = await graph(`${g.phoneNumberId}/media`, { method: 'POST', body: form });
  assert.equal(up.status, 200, up.text);
  assert.deepEqual(Object.keys(up.json), ['id']);
  assert.match(up.json.id, /^\d+$/);
  const info = await graph(up.json.id);
  assert.equal(info.status, 200);
  assert.deepEqual(Object.keys(info.json).sort(), ['file_size', 'id', 'messaging_product', 'mime_type', 'sha256', 'url']);
  assert.equal(info.json.messaging_product, 'whatsapp');
  assert.equal(info.json.mime_type, 'image/png');
  assert.equal(info.json.file_size, bytes.length);
  assert.equal(info.json.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.equal(info.json.id, up.json.id);
  const u = new URL(info.json.url);
  assert.equal(u.pathname, '/whatsapp_business/attachments/');
  assert.equal(u.searchParams.get('mid'), up.json.id);
  const noauth = await fetch(info.json.url);
  assert.equal(noauth.status, 400);
  await noauth.arrayBuffer();
  const dl = await fetch(info.json.url, { headers: { authorization: `Bearer ${g.accessToken}` } });
  assert.equal(dl.status, 200);
  assert.equal(dl.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await dl.arrayBuffer()), bytes);
  const noFile = new FormData();
  noFile.append('type', 'image/png');
  noFile.append('messaging_product', 'whatsapp');
  assertGraphError(await graph(`${g.phoneNumberId}/media`, { method: 'POST', body: noFile }), 400, 100);
  const del = await graph(up.json.id, { method: 'DELETE' });
  assert.deepEqual(del.json, { success: true });
  assertGraphError(await graph(up.json.id), 400, 100);
});

test('templates: the documented fields, limit and cursor paging, fields=', async () => {
  g.templates = Array.from({ length: 5 }, (_, i) => ({ id: String(1000 + i), name: `t${i}`, parameter_format: 'POSITIONAL',
    language: 'en_US', status: i === 4 ? 'REJECTED' : 'APPROVED', category: 'UTILITY',
    components: [{ type: 'BODY', text: `body ${i} {{1}}` }] }));
  const p1 = await graph(`${g.wabaId}/message_templates?limit=2`);
  assert.equal(p1.status, 200);
  assert.deepEqual(p1.json.data.map((t) => t.name), ['t0', 't1']);
  assert.deepEqual(Object.keys(p1.json.data[0]).sort(),
    ['category', 'components', 'id', 'language', 'name', 'parameter_format', 'status']);
  assert.ok(p1.json.paging.cursors.before && p1.json.paging.cursors.after);
  assert.match(p1.json.paging.next, new RegExp(`/${V.replace('.', '\\.')}/${g.wabaId}/message_templates\\?`));
  const p2 = await graph(`${g.wabaId}/message_templates?limit=2&after=${p1.json.paging.cursors.after}`);
  assert.deepEqual(p2.json.data.map((t) => t.name), ['t2', 't3']);
  const p3 = await fetch(p2.json.paging.next, { headers: { authorization: `Bearer ${g.accessToken}` } }).then((r) => r.json());
  assert.deepEqual(p3.data.map((t) => t.name), ['t4']);
  assert.equal(p3.paging.next, undefined);
  const back = await graph(`${g.wabaId}/message_templates?limit=2&before=${p2.json.paging.cursors.before}`);
  assert.deepEqual(back.json.data.map((t) => t.name), ['t0', 't1']);
  const f = await graph(`${g.wabaId}/message_templates?fields=name,status&status=APPROVED`);
  assert.deepEqual(f.json.data.map((t) => Object.keys(t).sort()), Array(4).fill(['id', 'name', 'status']));
  assertGraphError(await graph('42/message_templates'), 400, 100);
});

test('webhooks: the documented envelopes, signed over the raw bytes', async () => {
  const text = g.inboundText({ from: '+16505551234', text: 'Does it come in another color? é', name: 'Sheena Nelson',
    timestamp: 1749416383 });
  assert.deepEqual(text, { object: 'whatsapp_business_account', entry: [{ id: g.wabaId, changes: [{ value: {
    messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: g.phoneNumberId },
    contacts: [{ profile: { name: 'Sheena Nelson' }, wa_id: '16505551234' }],
    messages: [{ from: '16505551234', id: text.entry[0].changes[0].value.messages[0].id, timestamp: '1749416383',
      type: 'text', text: { body: 'Does it come in another color? é' } }] }, field: 'messages' }] }] });
  let r = await g.deliver(hookUrl(), text);
  assert.equal(r.status, 200, r.text);
  assert.equal(seen.at(-1).valid, true);
  assert.match(seen.at(-1).header, /^sha256=[0-9a-f]{64}$/);
  assert.ok(seen.at(-1).raw.toString('latin1').includes('\\u00e9'), 'non-ASCII escaped as Meta does');
  assert.deepEqual(JSON.parse(seen.at(-1).raw.toString('utf8')), text);

  const mediaId = g.addMedia(Buffer.from('jpegbytes'), 'image/jpeg');
  const img = g.inboundImage({ from: '16505551234', mediaId, caption: 'look' });
  const im = img.entry[0].changes[0].value.messages[0];
  assert.equal(im.type, 'image');
  assert.deepEqual(im.image, { mime_type: 'image/jpeg', sha256: g.media.get(mediaId).sha256, id: mediaId, caption: 'look' });
  assert.equal((await g.deliver(hookUrl(), img)).status, 200);

  const st = g.status({ id: 'wamid.X', status: 'failed', recipient_id: '+16505551234', timestamp: 1750857384,
    errors: [{ code: 131047 }] });
  const s = st.entry[0].changes[0].value.statuses[0];
  assert.equal(st.entry[0].changes[0].field, 'messages');
  assert.deepEqual(Object.keys(s).sort(), ['errors', 'id', 'recipient_id', 'status', 'timestamp']);
  assert.equal(s.recipient_id, '16505551234');
  assert.deepEqual(Object.keys(s.errors[0]).sort(), ['code', 'error_data', 'href', 'message', 'title']);
  assert.equal(s.errors[0].code, 131047);
  const d = g.status({ id: 'wamid.X', status: 'delivered', recipient_id: '16505551234' }).entry[0].changes[0].value.statuses[0];
  assert.deepEqual(d.pricing, { billable: true, pricing_model: 'CBP', category: 'service' });
  assert.equal((await g.deliver(hookUrl(), st)).status, 200);

  // The same body re-serialised with other spacing no longer matches its signature.
  const header = seen.at(-1).header;
  r = await g.deliver(hookUrl(), JSON.stringify(st, null, 2), { signature: header });
  assert.equal(r.status, 401);
  assert.equal(seen.at(-1).valid, false);
  r = await g.deliver(hookUrl(), st, { appSecret: 'not-the-secret' });
  assert.equal(r.status, 401);
  r = await g.deliver(hookUrl(), st, { signature: false });
  assert.equal(r.status, 401);
  assert.equal(seen.at(-1).header, undefined);
});

test('verification GET: the server echoes the challenge for the right token only', async () => {
  const ok = await g.verify(hookUrl(), { mode: 'subscribe', token: VERIFY_TOKEN, challenge: '1158201444' });
  assert.deepEqual([ok.status, ok.text], [200, '1158201444']);
  const bad = await g.verify(hookUrl(), { mode: 'subscribe', token: 'wrong', challenge: '1158201444' });
  assert.equal(bad.status, 403);
});

test('whatsapp-api-js sends, uploads, retrieves, downloads and verifies webhooks through the fake', async () => {
  const rewrite = (url, init) => fetch(String(url).replace('https://graph.facebook.com', g.url), init);
  const api = new WhatsAppAPI({ token: g.accessToken, appSecret: g.appSecret, webhookVerifyToken: VERIFY_TOKEN,
    v: V, ponyfill: { fetch: rewrite } });
  const sent = await api.sendMessage(g.phoneNumberId, '16505550010', new Text('from the client'));
  assert.equal(sent.messaging_product, 'whatsapp');
  assert.deepEqual(sent.contacts, [{ input: '16505550010', wa_id: '16505550010' }]);
  assert.ok(g.messages.has(sent.messages[0].id));
  assert.equal(g.requests.at(-1).recipient_type, 'individual');
  assert.equal(g.sends('16505550010'), 1);

  const bytes = Buffer.from('%PDF-1.4 fake');
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: 'application/pdf' }), 'a.pdf');
  const up = await api.uploadMedia(g.phoneNumberId, form);
  assert.match(up.id, /^\d+$/);
  assert.equal(g.uploads.at(-1).messaging_product, 'whatsapp');
  const info = await api.retrieveMedia(up.id);
  assert.equal(info.mime_type, 'application/pdf');
  assert.equal(info.file_size, bytes.length);
  const dl = await api.fetchMedia(info.url);
  assert.deepEqual(Buffer.from(await dl.arrayBuffer()), bytes);
  const img = await api.sendMessage(g.phoneNumberId, '16505550010', new Image(up.id, true, 'doc'));
  assert.ok(g.messages.has(img.messages[0].id));
  assert.deepEqual(g.requests.at(-1).image, { id: up.id, caption: 'doc' });

  g.fail([{ code: 131047 }]);
  const err = await api.sendMessage(g.phoneNumberId, '16505550010', new Text('late'));
  assert.equal(err.error.code, 131047);

  // The client's webhook verification accepts what the fake signs.
  const payload = g.inboundText({ from: '16505551234', text: 'héllo' });
  const raw = (await g.deliver(hookUrl(), payload)).raw.toString('utf8');
  const got = [];
  api.on.message = ({ from, message }) => { got.push([from, message.text.body]); };
  await api.post(JSON.parse(raw), raw, seen.at(-1).header);
  assert.deepEqual(got, [['16505551234', 'héllo']]);
  assert.equal(api.get({ 'hub.mode': 'subscribe', 'hub.verify_token': VERIFY_TOKEN, 'hub.challenge': '7' }), '7');
});
