// The whatsapp plugin (API.md "WhatsApp"), black box against real
// PostgreSQL and the fake Graph API (tests/fakes/whatsapp.mjs): the signed
// webhook (verification, bad and re-serialised signatures, replays),
// conversations through NEW -> ACTIVE -> EXPIRED -> CLOSED with the
// 24-hour window taken from Meta's timestamps, sends refused outside the
// window, statuses live on the WebSocket and only forward, Graph's errors
// kept with their code and title, a lost answer adopted from Meta's status
// webhook (never sent twice), assignment, lists, the customers timeline
// and privacy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { startServer, TEST_PLUGINS, assertEnvelope, pgClient, withDb, databaseUrl, freshDir } from './lib/harness.mjs';
import { poll, createUnprivilegedUser } from './lib/helpers.mjs';
import { ready } from './lib/wsclient.mjs';
import { startGraph, signature } from '../fakes/whatsapp.mjs';

const HOOK = '/api/v1/whatsapp/webhook';
const VERIFY = 'meatyhamhock-verify-token';
const DAY = 86400;
let srv, g, admin;

const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;
const nowS = () => Math.floor(Date.now() / 1000);

async function sql(text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

export function whatsappConf(fake, extra = {}) {
  return { access_token: fake.accessToken, phone_number_id: fake.phoneNumberId, waba_id: fake.wabaId,
    app_secret: fake.appSecret, verify_token: VERIFY, graph_api_url: fake.url, timeout_ms: '1000',
    inflight_grace_s: '20', messages_per_minute: '0', spool_dir: freshDir('wa-spool'), ...extra };
}

before(async () => {
  g = await startGraph();
  srv = await startServer({ host: { breaker_failures: '1000' }, plugins: { ...TEST_PLUGINS, customers: {},
    media: { dir: freshDir('media') }, whatsapp: whatsappConf(g) } });
  admin = await srv.login();
  g.autoStatus = { url: srv.url + HOOK, statuses: ['sent'] };
});

after(async () => {
  await srv?.stop();
  await g?.stop();
});

const deliver = (payload, opts) => g.deliver(srv.url + HOOK, payload, opts);
const send = (json, token = admin) => srv.request('POST', '/api/v1/whatsapp/messages', { token, json });
const getMsg = (id) => srv.request('GET', `/api/v1/whatsapp/messages/${id}`, { token: admin });
const getConv = (id) => srv.request('GET', `/api/v1/whatsapp/conversations/${id}`, { token: admin });

async function drained() {
  assert.ok(await poll(async () => (await sql('SELECT count(*)::int AS n FROM whatsapp_inbox'))[0].n === 0),
    'the webhook inbox was not drained');
}

// A customer message through the signed webhook; resolves to the stored
// message (and its conversation) once the drain applied it.
async function inbound({ from = uniqPhone(), text = 'Hello there', timestamp = nowS(), name = 'Sheena Nelson' } = {}) {
  const payload = g.inboundText({ from, text, timestamp, name });
  const wamid = payload.entry[0].changes[0].value.messages[0].id;
  const r = await deliver(payload);
  assert.equal(r.status, 200, r.text);
  const rows = await poll(async () => {
    const x = await sql('SELECT id, conversation_id FROM whatsapp_messages WHERE wa_message_id = $1', [wamid]);
    return x.length ? x : null;
  });
  const m = (await getMsg(rows[0].id)).body;
  const conv = (await getConv(m.conversation_id)).body;
  return { from, wamid, m, conv, payload };
}

async function until(id, pred) {
  return poll(async () => {
    const r = await getMsg(id);
    return pred(r.body) ? r.body : null;
  });
}

test('verification GET: the verify token echoes the challenge; anything else is refused', async () => {
  const ok = await g.verify(srv.url + HOOK, { token: VERIFY, challenge: '1158201444' });
  assert.equal(ok.status, 200);
  assert.equal(ok.text, '1158201444');
  const bad = await g.verify(srv.url + HOOK, { token: 'wrong', challenge: '1' });
  assert.equal(bad.status, 403);
  const noMode = await g.verify(srv.url + HOOK, { mode: null, token: VERIFY });
  assert.equal(noMode.status, 400);
  const r = await srv.request('GET', `${HOOK}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1`);
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
});

test('webhook: a bad or missing signature is 401 and nothing is stored', async () => {
  const from = uniqPhone();
  const payload = g.inboundText({ from, text: 'not signed by Meta' });
  const wamid = payload.entry[0].changes[0].value.messages[0].id;
  const wrong = await deliver(payload, { appSecret: 'not-the-app-secret' });
  assert.equal(wrong.status, 401);
  assert.equal(JSON.parse(wrong.text).code, 'UNAUTHENTICATED');
  const none = await deliver(payload, { signature: false });
  assert.equal(none.status, 401);
  const garbage = await deliver(payload, { signature: 'sha256=zz' });
  assert.equal(garbage.status, 401);
  await drained();
  assert.equal((await sql('SELECT count(*)::int AS n FROM whatsapp_messages WHERE wa_message_id = $1', [wamid]))[0].n, 0);
  assert.equal((await sql('SELECT count(*)::int AS n FROM whatsapp_inbox'))[0].n, 0);
});

test('webhook: a signature over re-serialised JSON instead of the raw bytes is refused', async () => {
  // Meta signs the bytes it sends, with non-ASCII escaped (\u00e9); a
  // receiver that parses and re-serialises gets other bytes.
  const payload = g.inboundText({ from: uniqPhone(), text: 'Café ✓ — ça marche' });
  const wamid = payload.entry[0].changes[0].value.messages[0].id;
  const raw = Buffer.from(JSON.stringify(payload).replace(/[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  const reserialised = Buffer.from(JSON.stringify(JSON.parse(raw.toString())));
  assert.notDeepEqual(raw, reserialised);
  const r = await deliver(raw, { signature: signature(g.appSecret, reserialised) });
  assert.equal(r.status, 401);
  // The same bytes with their own signature are taken, and the text is
  // the customer's.
  const ok = await deliver(raw, { signature: signature(g.appSecret, raw) });
  assert.equal(ok.status, 200, ok.text);
  const rows = await poll(async () => {
    const x = await sql('SELECT id FROM whatsapp_messages WHERE wa_message_id = $1', [wamid]);
    return x.length ? x : null;
  });
  assert.equal((await getMsg(rows[0].id)).body.text, 'Café ✓ — ça marche');
  // Not JSON at all, correctly signed: 400.
  const junk = Buffer.from('{"object": "whatsapp_business_account", ');
  const bad = await deliver(junk, { signature: signature(g.appSecret, junk) });
  assert.equal(bad.status, 400);
});

test('webhook: the same payload twice stores once; a new customer becomes a customer and a NEW conversation', async () => {
  const from = uniqPhone();
  const t = nowS() - 60;
  const { m, conv, payload, wamid } = await inbound({ from, text: 'Does it come in another color?', timestamp: t });
  assert.equal(m.direction, 'inbound');
  assert.equal(m.type, 'text');
  assert.equal(m.status, 'received');
  assert.equal(m.text, 'Does it come in another color?');
  assert.equal(m.wa_message_id, wamid);
  assert.deepEqual(m.events.map((e) => e.status), ['received']);
  assert.equal(conv.status, 'NEW');
  assert.equal(conv.unread, 1);
  assert.equal(conv.wa_id, from.slice(1));
  assert.equal(conv.customer_name, 'Sheena Nelson');
  assert.equal(Date.parse(conv.last_inbound_at), t * 1000);
  assert.equal(Date.parse(conv.window_expires_at), (t + DAY) * 1000);
  const again = await deliver(payload);
  assert.equal(again.status, 200);
  await drained();
  assert.equal((await sql('SELECT count(*)::int AS n FROM whatsapp_messages WHERE wa_message_id = $1', [wamid]))[0].n, 1);
  assert.equal((await getConv(conv.id)).body.unread, 1);
  // The customer: found by the number, one of them.
  const c = await srv.request('GET', `/api/v1/customers?phone=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.data.length, 1);
  assert.equal(c.body.data[0].id, conv.customer_id);
  assert.equal(c.body.data[0].wa_id, from.slice(1), 'the customer learnt their WhatsApp id');
  // Nothing in clear in the database.
  const [row] = await sql('SELECT wa_sealed, wa_index FROM whatsapp_conversations WHERE id = $1', [conv.id]);
  assert.ok(!row.wa_sealed.includes(from.slice(1)) && !row.wa_index.includes(from.slice(1)));
  const [mr] = await sql('SELECT text_sealed FROM whatsapp_messages WHERE id = $1', [m.id]);
  assert.ok(!mr.text_sealed.includes('color'));
});

test('window: 23 h 59 m after the customer\'s last message a text goes out; at 24 h 00 m 01 s it is 409 and a template goes out', async () => {
  const open = await inbound({ timestamp: nowS() - (DAY - 60) });
  const r = await send({ conversation_id: open.conv.id, type: 'text', text: 'Yes, in blue.' });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.status, 'queued');
  assert.equal(r.body.direction, 'outbound');
  const sent = await until(r.body.id, (b) => b.status === 'sent');
  assert.ok(sent.wa_message_id.startsWith('wamid.'));
  assert.equal(g.messages.get(sent.wa_message_id).body.text.body, 'Yes, in blue.');
  assert.equal(g.messages.get(sent.wa_message_id).body.biz_opaque_callback_data, `sb:${r.body.id}`);
  // The agent answered: ACTIVE, read.
  const c = (await getConv(open.conv.id)).body;
  assert.equal(c.status, 'ACTIVE');
  assert.equal(c.unread, 0);

  const closed = await inbound({ timestamp: nowS() - (DAY + 1) });
  const before = g.requests.length;
  for (const json of [{ conversation_id: closed.conv.id, type: 'text', text: 'Too late?' },
    { to: closed.from, type: 'text', text: 'Too late?' },
    { customer_id: closed.conv.customer_id, type: 'text', text: 'Too late?' }]) {
    const late = await send(json);
    assertEnvelope(assert, late, 409, 'CONFLICT');
    assert.equal(late.body.errors[0].field, 'window');
  }
  assert.equal(g.requests.length, before, 'nothing reached Graph');
  assert.equal((await sql('SELECT count(*)::int AS n FROM whatsapp_messages WHERE conversation_id = $1',
    [closed.conv.id]))[0].n, 1, 'nothing was written');
  // A template is allowed at any time.
  const sync = await srv.request('POST', '/api/v1/whatsapp/templates/sync', { token: admin });
  assert.equal(sync.status, 202, sync.text);
  const tpl = g.templates.find((t) => t.status === 'APPROVED');
  await poll(async () => {
    const l = await srv.request('GET', '/api/v1/whatsapp/templates?limit=200', { token: admin });
    return l.status === 200 && l.body.data.some((t) => t.name === tpl.name);
  });
  const body = tpl.components.find((x) => x.type === 'BODY');
  const n = new Set(body.text.match(/\{\{[^}]+\}\}/g) ?? []).size;
  const components = n ? [{ type: 'body', parameters: Array.from({ length: n }, (_, i) => ({ type: 'text', text: `p${i}` })) }] : [];
  const t = await srv.request('POST', '/api/v1/whatsapp/messages/template', { token: admin,
    json: { conversation_id: closed.conv.id, name: tpl.name, language: tpl.language, components } });
  assert.equal(t.status, 202, t.text);
  assert.equal(t.body.type, 'template');
  assert.equal(t.body.template.name, tpl.name);
  const ts = await until(t.body.id, (b) => b.status === 'sent');
  assert.equal(g.messages.get(ts.wa_message_id).body.template.name, tpl.name);
});

test('expiry: the job moves NEW to EXPIRED when the window ends, not before; a new message reopens it; CLOSED starts anew', async () => {
  const from = uniqPhone();
  const t = nowS() - DAY + 3;
  const { conv } = await inbound({ from, timestamp: t });
  assert.equal(conv.status, 'NEW');
  const ws = await ready(srv, admin);
  assert.equal((await ws.subscribe('whatsapp')).type, 'subscribed');
  const expired = await poll(async () => {
    const c = (await getConv(conv.id)).body;
    return c.status === 'EXPIRED' ? c : null;
  });
  assert.equal(expired.window_expires_at, conv.window_expires_at);
  const [row] = await sql('SELECT updated_at >= window_expires_at AS on_time FROM whatsapp_conversations WHERE id = $1',
    [conv.id]);
  assert.equal(row.on_time, true, 'expired before its window ended');
  const ev = await ws.next((f) => f.type === 'event' && f.event === 'whatsapp.conversation.updated'
    && f.data.id === conv.id && f.data.status === 'EXPIRED');
  assert.equal(ev.room, 'whatsapp');
  // Free text is refused now.
  const late = await send({ conversation_id: conv.id, type: 'text', text: 'hello?' });
  assert.equal(late.status, 409);
  // The customer writes again: the same conversation, ACTIVE, window open.
  const again = await inbound({ from });
  assert.equal(again.conv.id, conv.id);
  assert.equal(again.conv.status, 'ACTIVE');
  assert.equal(again.conv.unread, 2);
  assert.ok(Date.parse(again.conv.window_expires_at) > Date.now());
  // Closed by an agent; closing twice is a conflict.
  const cl = await srv.request('PATCH', `/api/v1/whatsapp/conversations/${conv.id}/close`, { token: admin });
  assert.equal(cl.status, 200, cl.text);
  assert.equal(cl.body.status, 'CLOSED');
  assertEnvelope(assert, await srv.request('PATCH', `/api/v1/whatsapp/conversations/${conv.id}/close`, { token: admin }),
    409, 'CONFLICT');
  // The customer writes to a closed conversation: a new one, NEW.
  const fresh = await inbound({ from });
  assert.notEqual(fresh.conv.id, conv.id);
  assert.equal(fresh.conv.status, 'NEW');
  assert.equal(fresh.conv.customer_id, conv.customer_id);
  // The closed one kept its messages and stays closed.
  assert.equal((await getConv(conv.id)).body.status, 'CLOSED');
  ws.close();
});

test('statuses: sent -> delivered -> read live on the WebSocket; delivered before sent ends at delivered', async () => {
  const { conv, from } = await inbound();
  const ws = await ready(srv, admin);
  const room = `whatsapp:${conv.id}`;
  assert.equal((await ws.subscribe(room)).type, 'subscribed');
  const r = await send({ conversation_id: conv.id, type: 'text', text: 'Your order shipped' });
  assert.equal(r.status, 202, r.text);
  const created = await ws.next((f) => f.event === 'whatsapp.message.created' && f.data.id === r.body.id);
  assert.equal(created.room, room);
  assert.equal(created.data.status, 'queued');
  const sent = await until(r.body.id, (b) => b.status === 'sent');
  await ws.next((f) => f.event === 'whatsapp.message.status' && f.data.id === r.body.id && f.data.status === 'sent');
  for (const status of ['delivered', 'read']) {
    const d = await deliver(g.status({ id: sent.wa_message_id, status, recipient_id: from }));
    assert.equal(d.status, 200);
    const f = await ws.next((x) => x.event === 'whatsapp.message.status' && x.data.id === r.body.id
      && x.data.status === status);
    assert.equal(f.room, room);
  }
  const done = (await getMsg(r.body.id)).body;
  assert.equal(done.status, 'read');
  assert.deepEqual(done.events.map((e) => e.status), ['queued', 'sent', 'delivered', 'read']);
  // A late delivered after read: recorded once, status unchanged.
  await deliver(g.status({ id: sent.wa_message_id, status: 'delivered', recipient_id: from }));
  await drained();
  assert.equal((await getMsg(r.body.id)).body.status, 'read');

  // Out of order: delivered arrives before sent.
  g.autoStatus = null;
  try {
    const r2 = await send({ conversation_id: conv.id, type: 'text', text: 'Second' });
    const m2 = await until(r2.body.id, (b) => b.wa_message_id);
    await deliver(g.status({ id: m2.wa_message_id, status: 'delivered', recipient_id: from }));
    await deliver(g.status({ id: m2.wa_message_id, status: 'sent', recipient_id: from }));
    await drained();
    const end = (await getMsg(r2.body.id)).body;
    assert.equal(end.status, 'delivered');
    const late = end.events.filter((e) => e.status === 'sent');
    assert.equal(late.length, 1);
  } finally {
    g.autoStatus = { url: srv.url + HOOK, statuses: ['sent'] };
  }
  ws.close();
});

test('a failed status with 131047 shows its code and title, live and in the API', async () => {
  const { conv, from } = await inbound();
  const ws = await ready(srv, admin);
  await ws.subscribe(`whatsapp:${conv.id}`);
  const r = await send({ conversation_id: conv.id, type: 'text', text: 'Are you there?' });
  const m = await until(r.body.id, (b) => b.status === 'sent');
  await deliver(g.status({ id: m.wa_message_id, status: 'failed', recipient_id: from, errors: [{ code: 131047 }] }));
  const f = await ws.next((x) => x.event === 'whatsapp.message.status' && x.data.id === r.body.id
    && x.data.status === 'failed');
  assert.equal(f.data.error.code, 131047);
  assert.equal(f.data.error.title, 'Re-engagement message');
  const got = (await getMsg(r.body.id)).body;
  assert.equal(got.status, 'failed');
  assert.deepEqual(got.error, { code: 131047, title: 'Re-engagement message',
    detail: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.' });
  assert.match(got.events.at(-1).detail, /131047/);
  ws.close();
});

test('Graph errors: 131026 ends the message failed with its code; 5xx and 130429 are retried and sent once', async () => {
  const { conv, from } = await inbound();
  g.fail([{ code: 131026 }]);
  const r = await send({ conversation_id: conv.id, type: 'text', text: 'undeliverable' });
  const m = await until(r.body.id, (b) => b.status === 'failed');
  assert.equal(m.error.code, 131026);
  assert.equal(m.error.title, 'Message Undeliverable');
  assert.equal(m.wa_message_id, null);

  const before = g.sends(from);
  g.fail([{ status: 500, code: 2 }, { code: 130429 }]);
  const r2 = await send({ conversation_id: conv.id, type: 'text', text: 'retried' });
  const m2 = await until(r2.body.id, (b) => b.status === 'sent');
  assert.ok(m2.wa_message_id);
  assert.equal(g.sends(from), before + 1);
});

test('a lost answer (timeout) is adopted from Meta\'s status webhook and never sent again', async () => {
  const { conv, from } = await inbound();
  const before = g.sends(from);
  // Graph takes the message but answers after our 1 s timeout.
  g.fail([{ delayMs: 2500 }]);
  const r = await send({ conversation_id: conv.id, type: 'text', text: 'slow Graph' });
  const m = await until(r.body.id, (b) => b.status === 'sent' && b.wa_message_id);
  assert.equal(g.messages.get(m.wa_message_id).body.biz_opaque_callback_data, `sb:${r.body.id}`);
  // The job, back after the grace, finds it adopted and sends nothing.
  const job = await poll(async () => {
    const j = await sql("SELECT status FROM jobs WHERE kind = 'whatsapp.send' AND payload->>'id' = $1", [String(r.body.id)]);
    return j[0]?.status === 'done' ? j[0] : null;
  });
  assert.equal(job.status, 'done');
  assert.equal(g.sends(from), before + 1);
});

test('validation: one target, the text of a text message, numbers, unknown ids, permissions', async () => {
  const { conv } = await inbound();
  const cases = [
    [{ type: 'text', text: 'x' }, 422, 'to'],
    [{ to: '+14155550100', conversation_id: conv.id, type: 'text', text: 'x' }, 422, 'to'],
    [{ conversation_id: conv.id, type: 'text' }, 422, 'text'],
    [{ conversation_id: conv.id, type: 'image' }, 422, 'media_id'],
    [{ to: 'not a number', type: 'text', text: 'x' }, 422, 'to'],
    [{ conversation_id: 999999999, type: 'text', text: 'x' }, 422, 'conversation_id'],
    [{ customer_id: 999999999, type: 'text', text: 'x' }, 422, 'customer_id'],
    [{ conversation_id: conv.id, type: 'fax', text: 'x' }, 422, 'type'],
    [{ conversation_id: conv.id, type: 'text', text: 'x'.repeat(4097) }, 422, 'text'],
  ];
  for (const [json, status, field] of cases) {
    const r = await send(json);
    assertEnvelope(assert, r, status, 'VALIDATION_ERROR');
    assert.equal(r.body.errors[0].field, field, JSON.stringify(json));
  }
  const notJson = await srv.request('POST', '/api/v1/whatsapp/messages', { token: admin, body: '{"to":',
    headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.status, 400);
  assertEnvelope(assert, await srv.request('GET', '/api/v1/whatsapp/messages/0', { token: admin }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/whatsapp/conversations/abc', { token: admin }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/whatsapp/conversations?status=OPEN', { token: admin }), 400,
    'VALIDATION_ERROR');
  await createUnprivilegedUser(srv, 'wa-noperm');
  const nobody = await srv.login('wa-noperm');
  assertEnvelope(assert, await send({ conversation_id: conv.id, type: 'text', text: 'x' }, nobody), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/whatsapp/conversations', { token: nobody }), 403, 'FORBIDDEN');
  const ws = await ready(srv, nobody);
  assert.equal((await ws.subscribe('whatsapp')).type, 'error');
  ws.close();
  assertEnvelope(assert, await srv.request('GET', '/api/v1/whatsapp/conversations'), 401, 'UNAUTHENTICATED');
});

test('assign, unassign and read; lists filter by status and assignee, newest activity first; messages oldest first', async () => {
  const a = await inbound();
  const b = await inbound();
  const me = (await srv.request('GET', '/api/v1/users/me', { token: admin })).body;
  const asg = await srv.request('PATCH', `/api/v1/whatsapp/conversations/${a.conv.id}/assign`, { token: admin,
    json: { user_id: me.id } });
  assert.equal(asg.status, 200, asg.text);
  assert.equal(asg.body.assigned_to, me.id);
  assertEnvelope(assert, await srv.request('PATCH', `/api/v1/whatsapp/conversations/${a.conv.id}/assign`,
    { token: admin, json: { user_id: 987654321 } }), 422, 'VALIDATION_ERROR');
  assertEnvelope(assert, await srv.request('PATCH', `/api/v1/whatsapp/conversations/${a.conv.id}/assign`,
    { token: admin, json: {} }), 422, 'VALIDATION_ERROR');
  const mine = await srv.request('GET', '/api/v1/whatsapp/conversations?assigned_to=me', { token: admin });
  assert.ok(mine.body.data.some((c) => c.id === a.conv.id));
  assert.ok(!mine.body.data.some((c) => c.id === b.conv.id));
  const byId = await srv.request('GET', `/api/v1/whatsapp/conversations?assigned_to=${me.id}&status=NEW,ACTIVE`,
    { token: admin });
  assert.ok(byId.body.data.every((c) => c.assigned_to === me.id));
  const un = await srv.request('PATCH', `/api/v1/whatsapp/conversations/${a.conv.id}/assign`, { token: admin,
    json: { user_id: null } });
  assert.equal(un.body.assigned_to, null);
  const rd = await srv.request('PATCH', `/api/v1/whatsapp/conversations/${b.conv.id}/read`, { token: admin });
  assert.equal(rd.body.unread, 0);
  // Newest activity first: b wrote after a; then a writes again.
  await inbound({ from: a.from, text: 'me again' });
  const list = await srv.request('GET', '/api/v1/whatsapp/conversations?status=NEW&limit=2', { token: admin });
  assert.equal(list.status, 200, list.text);
  assert.equal(list.body.data[0].id, a.conv.id);
  assert.equal(list.body.data[0].last_message.text, 'me again');
  assert.ok(list.body.next_cursor);
  const page2 = await srv.request('GET', `/api/v1/whatsapp/conversations?status=NEW&limit=2&cursor=${list.body.next_cursor}`,
    { token: admin });
  assert.equal(page2.status, 200, page2.text);
  assert.ok(!page2.body.data.some((c) => list.body.data.some((d) => d.id === c.id)));
  const msgs = await srv.request('GET', `/api/v1/whatsapp/conversations/${a.conv.id}/messages`, { token: admin });
  assert.deepEqual(msgs.body.data.map((m) => m.text), ['Hello there', 'me again']);
  const after = await srv.request('GET', `/api/v1/whatsapp/conversations/${a.conv.id}/messages?after_id=${msgs.body.data[0].id}`,
    { token: admin });
  assert.deepEqual(after.body.data.map((m) => m.text), ['me again']);
});

test('other message types: location, reaction, interactive reply and unsupported are kept', async () => {
  const from = uniqPhone();
  const wa = from.slice(1);
  const base = g.inboundText({ from, text: 'x' });
  const v = base.entry[0].changes[0].value;
  const id = () => `wamid.T${randomInt(1e9, 2e9)}${randomInt(1e9, 2e9)}`;
  const t = String(nowS());
  v.messages = [
    { from: wa, id: id(), timestamp: t, type: 'location', location: { latitude: 37.483307, longitude: 122.148981,
      name: 'Pablo Morales', address: '1 Hacker Way, Menlo Park, CA 94025' } },
    { from: wa, id: id(), timestamp: t, type: 'reaction', reaction: { message_id: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgA', emoji: '👍' } },
    { from: wa, id: id(), timestamp: t, type: 'interactive', interactive: { type: 'button_reply',
      button_reply: { id: 'yes-1', title: 'Yes' } } },
    { from: wa, id: id(), timestamp: t, type: 'unsupported', errors: [{ code: 131051, title: 'Message type unknown' }] },
  ];
  const r = await deliver(base);
  assert.equal(r.status, 200, r.text);
  const rows = await poll(async () => {
    const x = await sql('SELECT id FROM whatsapp_messages WHERE wa_message_id = ANY($1) ORDER BY id',
      [v.messages.map((m) => m.id)]);
    return x.length === 4 ? x : null;
  });
  const got = [];
  for (const row of rows) got.push((await getMsg(row.id)).body);
  const byType = Object.fromEntries(got.map((m) => [m.type === 'text' ? 'interactive' : m.type, m]));
  assert.equal(byType.location.location.latitude, 37.483307);
  assert.equal(byType.reaction.reaction.emoji, '👍');
  assert.equal(byType.interactive.text, 'Yes');
  assert.equal(byType.interactive.interactive.id, 'yes-1');
  assert.equal(byType.unsupported.raw_type, 'unsupported');
});

test('timeline and privacy: the customer\'s WhatsApp messages are on the timeline; erasing by phone removes them', async () => {
  const { conv, from } = await inbound({ text: 'keep me private' });
  const tl = await srv.request('GET', `/api/v1/customers/${conv.customer_id}/timeline`, { token: admin });
  assert.equal(tl.status, 200, tl.text);
  const item = tl.body.data.find((i) => i.channel === 'whatsapp');
  assert.ok(item, JSON.stringify(tl.body));
  assert.equal(item.summary, 'keep me private');
  assert.equal(item.direction, 'inbound');
  const ex = await srv.request('GET', `/api/v1/privacy/export?phone=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(ex.status, 200, ex.text);
  assert.equal(ex.body.whatsapp.messages[0].text, 'keep me private');
  const del = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { phone: from } });
  assert.equal(del.status, 200, del.text);
  assert.ok(del.body.deleted.whatsapp >= 2);
  assertEnvelope(assert, await getConv(conv.id), 404, 'NOT_FOUND');
});

test('readyz names WhatsApp as configured; stats count messages', async () => {
  const r = await srv.request('GET', '/readyz');
  assert.equal(r.status, 200);
  assert.match(JSON.stringify(r.body.checks['plugin:whatsapp']), /"whatsapp":"configured"/);
  const s = await srv.request('GET', '/api/v1/stats', { token: admin });
  assert.equal(s.status, 200, s.text);
});

test('the webhook is outside the general per-address budget that limits other anonymous calls', async () => {
  const s2 = await startServer({ host: { rate_limit: '5', rate_limit_window: '60' }, plugins: { ...TEST_PLUGINS,
    customers: {}, media: { dir: freshDir('media') }, whatsapp: whatsappConf(g) } });
  try {
    for (let i = 0; i < 12; i++) {
      const r = await g.deliver(s2.url + HOOK, g.inboundText({ from: uniqPhone(), text: `burst ${i}` }));
      assert.equal(r.status, 200, `delivery ${i}: ${r.text}`);
    }
    // Another anonymous route from the same address is limited.
    let limited = false;
    for (let i = 0; i < 12 && !limited; i++)
      limited = (await s2.request('GET', '/api/v1/openapi.json')).status === 429;
    assert.ok(limited, 'the general budget did not apply to other routes');
  } finally {
    await s2.stop();
  }
});
