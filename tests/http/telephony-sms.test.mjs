// The telephony plugin's SMS (API.md "Telephony"), black box against real
// PostgreSQL and the fake Twilio (tests/fakes/twilio.mjs): send -> queued ->
// sending -> sent -> delivered through signed status callbacks; bad, missing,
// replayed and late callbacks changing nothing; inbound SMS creating a
// customer; 429 and 5xx retried; 21211 failed with its code; a timeout after
// the request left -> unknown and sent once; routing over an unconfigured
// provider; validation; statistics over a seeded set; signatures over the
// request's own URL when public_url is unset.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { startServer, TEST_PLUGINS, assertEnvelope, pgClient, withDb, databaseUrl, ADMIN_PASSWORD } from './lib/harness.mjs';
import { poll, createUnprivilegedUser } from './lib/helpers.mjs';
import { ready } from './lib/wsclient.mjs';
import { startTwilio, postSigned, signTwilio } from '../fakes/twilio.mjs';

const PUBLIC = 'https://switchboard.example.org';
const HOOK = '/api/v1/webhooks/twilio/sms';
const FROM = '+15005550001';
let srv, tw, admin;

const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;

async function sql(server, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), server.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

function telephonyConf(fake, extra = {}) {
  return { twilio_account_sid: fake.accountSid, twilio_auth_token: fake.authToken,
    twilio_from: FROM, twilio_api_url: fake.url, twilio_timeout_ms: '1500', sms_per_minute: '0',
    routing: 'sms:+44=exotel,twilio;sms:*=twilio', ...extra };
}

before(async () => {
  tw = await startTwilio();
  // [host] public_url (API.md): the address Twilio reaches us at behind a proxy.
  srv = await startServer({ host: { breaker_failures: '1000', public_url: `${PUBLIC}/` }, plugins: { ...TEST_PLUGINS,
    customers: {}, telephony: telephonyConf(tw) } });
  admin = await srv.login();
});

after(async () => {
  await srv?.stop();
  await tw?.stop();
});

const send = (json, token = admin) => srv.request('POST', '/api/v1/sms', { token, json });
const get = (id, server = srv, token = admin) => server.request('GET', `/api/v1/sms/${id}`, { token });
async function until(id, pred, server = srv, token = admin) {
  return poll(async () => {
    const r = await get(id, server, token);
    return pred(r.body) ? r.body : null;
  });
}
// Webhooks are answered from the durable inbox and applied by the drain job
// just after: wait until the inbox is empty (a drain's uncommitted delete
// still shows its rows here) before asserting that something changed nothing.
async function drained(server = srv) {
  assert.ok(await poll(async () => (await sql(server, 'SELECT count(*)::int AS n FROM telephony_inbox'))[0].n === 0),
    'the webhook inbox was not drained');
}
// The signed callback for a message, delivered to this server behind the "proxy".
const callback = (sid, status, opts = {}) => tw.callback(sid, status, { target: srv.url + HOOK, ...opts });

async function sentMessage(body) {
  const to = uniqPhone();
  const r = await send({ to, body });
  assert.equal(r.status, 202, r.text);
  const m = await until(r.body.id, (b) => b.provider_message_id);
  return { ...m, to };
}

test('send -> queued -> sending -> sent -> delivered through signed status callbacks', async () => {
  const to = uniqPhone();
  const r = await send({ to: `${to.slice(0, 5)} ${to.slice(5)}`, body: 'Hello from Switchboard' });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.status, 'queued');
  assert.equal(r.body.direction, 'outbound');
  assert.equal(r.body.to, to);
  assert.equal(r.body.segments, 1);
  assert.equal(r.body.encoding, 'GSM-7');
  assert.deepEqual(r.body.events.map((e) => e.status), ['queued']);
  const m = await until(r.body.id, (b) => b.status === 'sending');
  assert.equal(m.provider, 'twilio');
  assert.match(m.provider_message_id, /^SM/);
  assert.equal(m.from, FROM);
  assert.equal(tw.sends(to, 'Hello from Switchboard'), 1);
  const sent = tw.messages.get(m.provider_message_id);
  assert.equal(sent.callback, PUBLIC + HOOK, 'the StatusCallback is built from public_url');

  let c = await callback(m.provider_message_id, 'sent');
  assert.equal(c.status, 200);
  assert.match(c.headers.get('content-type'), /text\/xml/);
  assert.match(c.text, /<Response\/>/);
  await until(m.id, (b) => b.status === 'sent');
  c = await callback(m.provider_message_id, 'delivered');
  assert.equal(c.status, 200);
  const done = await until(m.id, (b) => b.status === 'delivered');
  assert.deepEqual(done.events.map((e) => e.status), ['queued', 'sending', 'sent', 'delivered']);
  for (const e of done.events) assert.match(e.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

  // The same callback again changes nothing.
  c = await callback(m.provider_message_id, 'delivered');
  assert.equal(c.status, 200);
  await drained();
  assert.deepEqual((await get(m.id)).body, done);

  // Nothing in the database holds the number or the body in clear.
  const rows = await sql(srv, 'SELECT * FROM telephony_sms WHERE id = $1', [m.id]);
  const dump = JSON.stringify(rows);
  assert.ok(!dump.includes(to.slice(1)), 'no phone number in clear');
  assert.ok(!dump.includes('Hello from'), 'no body in clear');
  assert.ok(!JSON.stringify(await sql(srv, 'SELECT * FROM customers')).includes(to.slice(1)));
  assert.ok(!JSON.stringify(await sql(srv, 'SELECT * FROM jobs')).includes(to.slice(1)), 'nor in a job');
  assert.ok(!srv.output.includes(to.slice(2)), 'nor in the logs');

  // The outbox lists it, newest first, filtered by status.
  const ob = await srv.request('GET', '/api/v1/sms/outbox?status=delivered&limit=200', { token: admin });
  assert.equal(ob.status, 200);
  assert.ok(ob.body.data.some((x) => x.id === m.id && x.to === to));
  const byTo = await srv.request('GET', `/api/v1/sms/outbox?to=${encodeURIComponent(to)}`, { token: admin });
  assert.deepEqual(byTo.body.data.map((x) => x.id), [m.id]);
  // and by the number it went out from.
  const byFrom = await srv.request('GET', `/api/v1/sms/outbox?from=${encodeURIComponent(FROM)}&limit=200`,
    { token: admin });
  assert.equal(byFrom.status, 200, byFrom.text);
  assert.ok(byFrom.body.data.some((x) => x.id === m.id && x.from === FROM), byFrom.text);
});

test('a late sent after delivered is recorded but the status stays', async () => {
  const m = await sentMessage('late sent');
  assert.equal((await callback(m.provider_message_id, 'delivered')).status, 200);
  await until(m.id, (x) => x.status === 'delivered');
  assert.equal((await callback(m.provider_message_id, 'sent')).status, 200);
  const b = await until(m.id, (x) => x.events.length === 4);
  assert.equal(b.status, 'delivered');
  assert.deepEqual(b.events.map((e) => e.status), ['queued', 'sending', 'delivered', 'sent']);
});

test('a status callback that comes before the answer to the send is applied when the sid is recorded', async () => {
  const to = uniqPhone();
  tw.callbackTarget = srv.url + HOOK;
  tw.fail([{ callbackFirst: 'sent' }]);
  const r = await send({ to, body: 'early callback' });
  assert.equal(r.status, 202);
  const m = await until(r.body.id, (b) => b.status === 'sent');
  assert.deepEqual(m.events.map((e) => e.status), ['queued', 'sending', 'sent']);
  assert.equal((await sql(srv, 'SELECT count(*)::int AS n FROM telephony_sms_pending'))[0].n, 0);
  assert.equal((await callback(m.provider_message_id, 'sent')).status, 200);
  await drained();
  assert.deepEqual((await get(m.id)).body.events.map((e) => e.status), ['queued', 'sending', 'sent']);
});

test('a bad or missing signature is refused and changes nothing', async () => {
  const m = await sentMessage('bad signatures');
  const before = (await get(m.id)).body;
  const params = { AccountSid: tw.accountSid, MessageSid: m.provider_message_id, MessageStatus: 'delivered' };
  let r = await postSigned(srv.url + HOOK, tw.authToken, params, { signature: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
  // Signed over the server's own URL, not the public one it is configured with.
  r = await postSigned(srv.url + HOOK, tw.authToken, params);
  assert.equal(r.status, 403);
  // Signed with another token.
  r = await postSigned(srv.url + HOOK, 'not-the-token', params, { signUrl: PUBLIC + HOOK });
  assert.equal(r.status, 403);
  const res = await fetch(srv.url + HOOK, { method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params).toString() });
  assert.equal(res.status, 401);
  assert.deepEqual((await get(m.id)).body, before);
});

test('an inbound SMS creates the customer and is listed in the inbox once', async () => {
  const from = uniqPhone();
  const r = await tw.inbound(srv.url + HOOK, { from, to: FROM, body: 'Hi, call me back 😀', signUrl: PUBLIC + HOOK });
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /<Response\/>/);
  const again = await tw.inbound(srv.url + HOOK, { from, to: FROM, body: 'Hi, call me back 😀', sid: r.sid,
    signUrl: PUBLIC + HOOK });
  assert.equal(again.status, 200);
  await drained();
  const inbox = await srv.request('GET', `/api/v1/sms/inbox?from=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(inbox.status, 200);
  assert.equal(inbox.body.data.length, 1);
  const m = inbox.body.data[0];
  assert.equal(m.direction, 'inbound');
  assert.equal(m.status, 'received');
  assert.equal(m.from, from);
  assert.equal(m.body, 'Hi, call me back 😀');
  assert.equal(m.encoding, 'UCS-2');
  const cust = await srv.request('GET', `/api/v1/customers?phone=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(cust.body.data.length, 1);
  assert.equal(cust.body.data[0].id, m.customer_id);
  const tl = await srv.request('GET', `/api/v1/customers/${m.customer_id}/timeline`, { token: admin });
  assert.equal(tl.status, 200, tl.text);
  assert.deepEqual(tl.body.data.map((x) => [x.channel, x.id, x.direction]), [['sms', m.id, 'inbound']]);
  assert.equal(tl.body.data[0].summary, 'Hi, call me back 😀');
  assert.ok(!srv.output.includes(from.slice(2)), 'no number in the logs');
  assert.ok(!JSON.stringify(await sql(srv, 'SELECT * FROM telephony_sms')).includes(from.slice(2)));
});

test('429 with Retry-After and 5xx are retried; the message goes out once', async () => {
  for (const fail of [{ status: 429, retryAfter: 1 }, { status: 503 }]) {
    const to = uniqPhone();
    const body = `retry after ${fail.status}`;
    tw.fail([fail]);
    const r = await send({ to, body });
    assert.equal(r.status, 202);
    const m = await until(r.body.id, (b) => b.status === 'sending');
    assert.equal(tw.requests.filter((x) => x.To === to).length, 2, 'one refused request, one accepted');
    assert.equal(tw.sends(to, body), 1);
    assert.equal(m.provider, 'twilio');
  }
});

test('21211 invalid number: failed with the provider code shown, not retried', async () => {
  const to = uniqPhone();
  tw.fail([{ status: 400, code: 21211 }]);
  const r = await send({ to, body: 'to a bad number' });
  const m = await until(r.body.id, (b) => b.status === 'failed');
  assert.equal(m.error_code, '21211');
  assert.match(m.error_message, /not a valid phone number/);
  assert.deepEqual(m.events.map((e) => e.status), ['queued', 'failed']);
  assert.equal(tw.requests.filter((x) => x.To === to).length, 1);
});

test('a timeout after the request left: unknown, and never sent twice', async () => {
  const to = uniqPhone();
  tw.fail([{ delayMs: 4000 }]);
  const r = await send({ to, body: 'slow provider' });
  const m = await until(r.body.id, (b) => b.status === 'unknown');
  assert.equal(m.provider_message_id, null);
  // The fake accepted it in the end: exactly once.
  await poll(() => tw.sends(to, 'slow provider') === 1);
  assert.equal(tw.requests.filter((x) => x.To === to).length, 1);
  const jobs = await sql(srv, "SELECT status FROM jobs WHERE kind = 'telephony.sms_send' AND payload->>'id' = $1",
    [String(m.id)]);
  assert.equal(jobs.length, 1);
  assert.ok(jobs.every((j) => j.status !== 'queued'), 'no send job left to run');
  assert.equal((await get(m.id)).body.status, 'unknown');
});

test('routing: a prefix routed to an unconfigured provider fails over to twilio', async () => {
  const to = `+447700${String(randomInt(100000, 999999))}`;
  const r = await send({ to, body: 'routed' });
  assert.equal(r.status, 202, r.text);
  const m = await until(r.body.id, (b) => b.status === 'sending');
  assert.equal(m.provider, 'twilio');
  assert.equal(tw.sends(to, 'routed'), 1);
  // Asked for explicitly, a provider that is not configured is 503.
  assertEnvelope(assert, await send({ to, body: 'x', provider: 'exotel' }), 503, 'UNAVAILABLE');
});

test('validation: numbers, bodies, segments', async () => {
  let r = await send({ to: 'not a number', body: 'x' });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.errors[0].field, 'to');
  r = await send({ to: uniqPhone(), body: '' });
  assert.ok(r.status === 400 || r.status === 422);
  assert.equal(r.body.errors[0].field, 'body');
  r = await send({ to: uniqPhone(), body: 'a'.repeat(1601) });
  assert.ok(r.status === 400 || r.status === 422);
  r = await send({ to: uniqPhone(), body: 'a'.repeat(1531) }); // 11 GSM-7 segments
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.errors[0].field, 'body');
  r = await send({ to: uniqPhone(), body: 'é'.repeat(1530) }); // GSM-7 é: 10 segments
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.segments, 10);
  r = await send({ to: uniqPhone(), body: 'ж'.repeat(671) }); // UCS-2: 11 segments
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  r = await send({ to: uniqPhone(), body: '{'.repeat(80) }); // 160 septets
  assert.equal(r.body.segments, 1);
  r = await send({ to: uniqPhone(), body: 'x', provider: 'carrier-pigeon' });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.errors[0].field, 'provider');
  r = await send({ to: uniqPhone(), body: 'x', customer_id: 999999999 });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.errors[0].field, 'customer_id');
  assertEnvelope(assert, await get('abc'), 404, 'NOT_FOUND');
  assertEnvelope(assert, await get(999999999), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/sms/outbox?status=nope', { token: admin }),
    400, 'VALIDATION_ERROR');
  assertEnvelope(assert, await srv.request('POST', '/api/v1/sms', { json: { to: uniqPhone(), body: 'x' } }),
    401, 'UNAUTHENTICATED');
});

test('schedule_at delays the send', async () => {
  const to = uniqPhone();
  const at = new Date(Date.now() + 3600e3).toISOString();
  const r = await send({ to, body: 'later', schedule_at: at });
  assert.equal(r.status, 202);
  const jobs = await sql(srv, "SELECT run_at > now() + interval '50 minutes' AS later FROM jobs " +
    "WHERE kind = 'telephony.sms_send' AND payload->>'id' = $1", [String(r.body.id)]);
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0].later, true);
  assert.equal((await get(r.body.id)).body.status, 'queued');
});

test('statistics over a seeded set match a hand-computed table', async () => {
  // 2020-03-01: twilio 4 outbound (2 delivered, 1 sent, 1 failed), sim 7: 1 inbound
  // 2020-03-02: exotel 3 outbound (1 delivered, 1 undelivered, 1 unknown), twilio 1 inbound
  const seed = [
    ['2020-03-01T10:00:00Z', 'outbound', 'twilio', 'delivered', null],
    ['2020-03-01T11:00:00Z', 'outbound', 'twilio', 'delivered', null],
    ['2020-03-01T12:00:00Z', 'outbound', 'twilio', 'sent', null],
    ['2020-03-01T13:00:00Z', 'outbound', 'twilio', 'failed', null],
    ['2020-03-01T14:00:00Z', 'inbound', 'device', 'received', 7],
    ['2020-03-02T09:00:00Z', 'outbound', 'exotel', 'delivered', null],
    ['2020-03-02T09:30:00Z', 'outbound', 'exotel', 'undelivered', null],
    ['2020-03-02T10:00:00Z', 'outbound', 'exotel', 'unknown', null],
    ['2020-03-02T23:59:00Z', 'inbound', 'twilio', 'received', null],
    ['2020-03-03T00:00:00Z', 'outbound', 'twilio', 'delivered', null], // outside the range
  ];
  for (const [at, dir, prov, st, sim] of seed)
    await sql(srv, "INSERT INTO telephony_sms (direction, to_sealed, to_index, body_sealed, provider, " +
      "segments, encoding, status, sim_card_id, created_at) VALUES ($1, 'x', 'x', 'x', $2, 1, 'GSM-7', $3, $4, $5)",
      [dir, prov, st, sim, at]);
  const r = await srv.request('GET', '/api/v1/sms/statistics?from=2020-03-01&to=2020-03-02', { token: admin });
  assert.equal(r.status, 200, r.text);
  const pick = (o) => ({ sent: o.sent, delivered: o.delivered, failed: o.failed, received: o.received,
    delivery_rate: o.delivery_rate });
  // sent = accepted by a provider (sending, sent, delivered, undelivered);
  // failed = failed or undelivered; delivery_rate = delivered / sent
  assert.deepEqual(pick(r.body.totals), { sent: 5, delivered: 3, failed: 2, received: 2, delivery_rate: 0.6 });
  assert.equal(r.body.totals.unknown, 1);
  assert.deepEqual(r.body.by_day.map((d) => [d.day, pick(d)]), [
    ['2020-03-01', { sent: 3, delivered: 2, failed: 1, received: 1, delivery_rate: 0.6667 }],
    ['2020-03-02', { sent: 2, delivered: 1, failed: 1, received: 1, delivery_rate: 0.5 }],
  ]);
  assert.deepEqual(r.body.by_provider.map((p) => [p.provider, pick(p)]), [
    ['device', { sent: 0, delivered: 0, failed: 0, received: 1, delivery_rate: 0 }],
    ['exotel', { sent: 2, delivered: 1, failed: 1, received: 0, delivery_rate: 0.5 }],
    ['twilio', { sent: 3, delivered: 2, failed: 1, received: 1, delivery_rate: 0.6667 }],
  ]);
  assert.deepEqual(r.body.by_sim_card.map((s) => [s.sim_card_id, pick(s)]), [
    [7, { sent: 0, delivered: 0, failed: 0, received: 1, delivery_rate: 0 }],
  ]);
  assertEnvelope(assert, await srv.request('GET', '/api/v1/sms/statistics?from=yesterday', { token: admin }),
    400, 'VALIDATION_ERROR');
});

test('a [host] public_url that is not an http(s) base URL refuses to start, saying why', async () => {
  for (const bad of ['ftp://example.org', 'https://', 'https://example.org/?x=1', 'example.org']) {
    const s = await startServer({ host: { public_url: bad }, expectFailure: true });
    await s.stop();
    assert.match(s.output, /public_url \(or SB_PUBLIC_URL\) must be an http:\/\/ or https:\/\/ base URL/, bad);
  }
});

test('the plugin\'s own public_url overrides the host\'s', async () => {
  const tw3 = await startTwilio();
  const other = 'https://sms.example.net/base';
  const s3 = await startServer({ host: { public_url: PUBLIC }, plugins: { ...TEST_PLUGINS, customers: {},
    telephony: telephonyConf(tw3, { public_url: other }) } });
  try {
    const token = await s3.login();
    const r = await s3.request('POST', '/api/v1/sms', { token, json: { to: uniqPhone(), body: 'override' } });
    assert.equal(r.status, 202, r.text);
    const m = await until(r.body.id, (b) => b.status === 'sending', s3, token);
    assert.equal(tw3.messages.get(m.provider_message_id).callback, other + HOOK);
  } finally { await s3.stop(); await tw3.stop(); }
});

test('without public_url the signature covers the request URL the server saw', async () => {
  const tw2 = await startTwilio();
  const s2 = await startServer({ plugins: { ...TEST_PLUGINS, customers: {},
    telephony: telephonyConf(tw2, { sms_per_minute: '2' }) } });
  try {
    const token = await s2.login();
    const r = await s2.request('POST', '/api/v1/sms', { token, json: { to: uniqPhone(), body: 'no proxy' } });
    assert.equal(r.status, 202, r.text);
    const m = await until(r.body.id, (b) => b.status === 'sending', s2, token);
    assert.equal(tw2.messages.get(m.provider_message_id).callback, null, 'no StatusCallback without public_url');
    const own = s2.url + HOOK;
    // Signed over the public URL: refused here.
    let c = await tw2.callback(m.provider_message_id, 'delivered', { signUrl: PUBLIC + HOOK, target: own });
    assert.equal(c.status, 403);
    c = await tw2.callback(m.provider_message_id, 'delivered', { signUrl: own, target: own });
    assert.equal(c.status, 200);
    assert.ok(await until(m.id, (b) => b.status === 'delivered', s2, token));

    // sms_per_minute = 2: per user, and per destination.
    const to = uniqPhone();
    const sendAs = (tok, json) => s2.request('POST', '/api/v1/sms', { token: tok, json });
    assert.equal((await sendAs(token, { to, body: 'budget 1' })).status, 202);
    const over = await sendAs(token, { to: uniqPhone(), body: 'budget 2' });
    assertEnvelope(assert, over, 429, 'RATE_LIMITED');
    assert.ok(Number(over.headers.get('retry-after')) >= 1);
    const agent = await s2.request('POST', '/api/v1/users', { token, json: { username: 'smsagent',
      password: 'agent-password-0123456789', name: 'SMS Agent', email: 'smsagent@example.org', role: 'AGENT' } });
    assert.equal(agent.status, 201, agent.text);
    const at = await s2.login('smsagent', 'agent-password-0123456789');
    assert.equal((await sendAs(at, { to: uniqPhone(), body: 'agent 1' })).status, 202, 'AGENT holds sms.send');
    assert.equal((await sendAs(at, { to, body: 'agent 2' })).status, 202);
    assertEnvelope(assert, await sendAs(at, { to, body: 'agent 3' }), 429, 'RATE_LIMITED');
  } finally {
    await s2.stop();
    await tw2.stop();
  }
});

test('the telephony room: holders of sms.read see created and status events, others are refused', async () => {
  const ws = await ready(srv, admin);
  try {
    assert.equal((await ws.subscribe('telephony')).type, 'subscribed');
    const to = uniqPhone();
    const r = await send({ to, body: 'watched' });
    const created = await ws.next((f) => f.type === 'event' && f.event === 'telephony.sms.created' &&
      JSON.stringify(f).includes(`"id":${r.body.id}`));
    assert.ok(!JSON.stringify(created).includes(to.slice(2)), 'no number in the event');
    await ws.next((f) => f.type === 'event' && f.event === 'telephony.sms.status' &&
      JSON.stringify(f).includes(`"id":${r.body.id}`) && JSON.stringify(f).includes('"sending"'));
  } finally { ws.close(); }
  await createUnprivilegedUser(srv, 'nosms');
  const other = await ready(srv, await srv.login('nosms', ADMIN_PASSWORD));
  try {
    assert.equal((await other.subscribe('telephony')).type, 'error');
    assertEnvelope(assert, await srv.request('GET', '/api/v1/sms/outbox', { token: await srv.login('nosms', ADMIN_PASSWORD) }),
      403, 'FORBIDDEN');
  } finally { other.close(); }
});

test('Twilio refusing connections: the send is retried and goes out once when it is back', async () => {
  const to = uniqPhone();
  await tw.stop();
  let id;
  try {
    const r = await send({ to, body: 'while down' });
    assert.equal(r.status, 202);
    id = r.body.id;
    await poll(async () => (await sql(srv, "SELECT attempts FROM jobs WHERE kind = 'telephony.sms_send' " +
      "AND payload->>'id' = $1 AND attempts >= 2", [String(id)])).length === 1);
    assert.equal((await get(id)).body.status, 'queued');
  } finally { await tw.start(); }
  const m = await until(id, (b) => b.status === 'sending');
  assert.equal(m.provider, 'twilio');
  assert.equal(tw.sends(to, 'while down'), 1);
});

test('privacy: export and erase by phone number and by customer', async () => {
  const m = await sentMessage('private');
  let r = await srv.request('GET', `/api/v1/privacy/export?phone=${encodeURIComponent(m.to)}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.telephony.sms.map((x) => [x.id, x.to, x.body]), [[m.id, m.to, 'private']]);
  r = await srv.request('GET', `/api/v1/privacy/export?customer_id=${m.customer_id}`, { token: admin });
  assert.deepEqual(r.body.telephony.sms.map((x) => x.id), [m.id]);
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { phone: m.to } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.deleted.telephony, 1);
  assertEnvelope(assert, await get(m.id), 404, 'NOT_FOUND');
  const m2 = await sentMessage('by customer');
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { customer_id: m2.customer_id } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.deleted.telephony, 1);
  assertEnvelope(assert, await get(m2.id), 404, 'NOT_FOUND');
});

test('/readyz names what is configured and what is not', async () => {
  const r = await srv.request('GET', '/readyz');
  assert.equal(r.status, 200, r.text);
  const c = JSON.stringify(r.body.checks['plugin:telephony']);
  assert.match(c, /"telephony.twilio":"configured"/);
  assert.match(c, /"telephony.webhooks":"configured"/);
});

test('GET /api/v1/stats has the counts by provider, status and direction', async () => {
  const r = await srv.request('GET', '/api/v1/stats', { token: admin });
  assert.equal(r.status, 200, r.text);
  const tel = r.body.plugins.find((x) => x.stats && Array.isArray(x.stats.sms));
  assert.ok(tel, JSON.stringify(r.body.plugins));
  const rows = await sql(srv, "SELECT coalesce(provider, 'none') AS provider, status, direction, " +
    'count(*)::int AS count FROM telephony_sms GROUP BY 1, 2, 3 ORDER BY 1, 2, 3');
  assert.deepEqual(tel.stats.sms, rows);
  assert.ok(rows.some((x) => x.provider === 'twilio' && x.status === 'delivered' && x.direction === 'outbound'));
  assert.ok(tel.stats.messages_per_day.length >= 1);
});

// A signed webhook on a connection of its own (a kept-alive one may have
// been a killed worker's): its HTTP status.
function hookFresh(params) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(new URLSearchParams(params).toString());
    const req = httpRequest(`${srv.url}${HOOK}`, { method: 'POST', agent: false, headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': signTwilio(tw.authToken, PUBLIC + HOOK, params) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(data);
  });
}
// Twilio's fields of an inbound SMS (as the fake's inbound() sends them).
const inboundParams = (sid, from, body) => ({ AccountSid: tw.accountSid, ApiVersion: '2010-04-01', Body: body,
  From: from, MessageSid: sid, NumMedia: '0', NumSegments: '1', SmsMessageSid: sid, SmsSid: sid,
  SmsStatus: 'received', To: FROM });
// All of them, `concurrency` at a time: their statuses.
async function postAll(list, concurrency = 64) {
  const statuses = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < list.length) statuses.push(await hookFresh(list[next++]));
  }));
  return statuses;
}
// A burst of n inbound SMS from 50 numbers, each its own MessageSid.
function inboundBurst(n) {
  const tag = randomBytes(4).toString('hex');
  const froms = Array.from({ length: 50 }, () => uniqPhone());
  const list = Array.from({ length: n }, (_, i) => inboundParams(`SM${tag}${String(i).padStart(24, '0')}`,
    froms[i % froms.length], `burst ${tag} ${i}`));
  const sids = list.map((x) => x.MessageSid);
  // Stored messages and their events for these sids.
  const count = async () => (await sql(srv, 'SELECT count(*)::int AS n, count(DISTINCT s.provider_message_id)::int ' +
    'AS d, (SELECT count(*)::int FROM telephony_sms_events e JOIN telephony_sms x ON x.id = e.sms_id WHERE ' +
    "x.provider = 'twilio' AND x.provider_message_id = ANY($1::text[])) AS events FROM telephony_sms s " +
    "WHERE s.provider = 'twilio' AND s.provider_message_id = ANY($1::text[])", [sids]))[0];
  return { tag, froms, list, count };
}

test('a burst of 2,000 inbound webhooks: each applied exactly once; replaying all of them adds nothing', async () => {
  const N = 2000;
  const { list, count, froms } = inboundBurst(N);
  const statuses = await postAll(list);
  assert.equal(statuses.length, N);
  assert.deepEqual([...new Set(statuses)], [200]);
  assert.ok(await poll(async () => (await count()).n === N), `applied: ${JSON.stringify(await count())}`);
  await drained();
  assert.deepEqual(await count(), { n: N, d: N, events: N });
  const again = await postAll(list);
  assert.deepEqual([...new Set(again)], [200]);
  await drained();
  assert.deepEqual(await count(), { n: N, d: N, events: N });
  // One customer per number, found or created by the drain.
  const cust = await srv.request('GET', `/api/v1/customers?phone=${encodeURIComponent(froms[7])}`, { token: admin });
  assert.equal(cust.body.data.length, 1);
  const inbox = await srv.request('GET', `/api/v1/sms/inbox?from=${encodeURIComponent(froms[7])}&limit=100`,
    { token: admin });
  assert.equal(inbox.body.data.length, N / 50);
  assert.ok(inbox.body.data.every((m) => m.customer_id === cust.body.data[0].id && m.status === 'received'));
});

// Last: it kills a worker of the shared server.
// One request on a connection of its own: after a worker is killed, a
// kept-alive connection of the shared client may have been that worker's.
function fresh(method, path, json) {
  return new Promise((resolve, reject) => {
    const data = json === undefined ? null : Buffer.from(JSON.stringify(json));
    const req = httpRequest(`${srv.url}${path}`, { method, agent: false, headers: {
      authorization: `Bearer ${admin}`, ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body = null;
        try { body = JSON.parse(text); } catch { body = null; }
        resolve({ status: res.statusCode, text, body });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('kill -9 a worker during a burst of 500 sends: each sent exactly once, all reach a final status', async (t) => {
  const N = 500;
  const tag = randomBytes(3).toString('hex');
  const msgs = [];
  const burst = async (from, to, post) => {
    for (let i = from; i < to; i++) {
      const phone = uniqPhone();
      const body = `burst ${tag} ${i}`;
      const r = await post({ to: phone, body });
      assert.equal(r.status, 202, r.text);
      msgs.push({ id: r.body.id, to: phone, body });
    }
  };
  // Twilio holds its answers: the first sends are certainly in flight
  // when a worker is killed, however fast or slow this machine is.
  tw.hold();
  try {
    await burst(0, 20, send);
    // A worker with a send in flight.
    let locked;
    await poll(async () => {
      const rows = await sql(srv, "SELECT locked_by FROM jobs WHERE kind = 'telephony.sms_send' " +
        "AND status = 'running' AND locked_by IS NOT NULL LIMIT 1");
      locked = rows[0]?.locked_by;
      return locked !== undefined;
    }, { interval: 5 });
    process.kill(Number(locked.split(':').pop()), 'SIGKILL');
    // Its leases run out now rather than after timeout_s.
    await sql(srv, "UPDATE jobs SET lease_until = now() WHERE status = 'running' AND locked_by = $1", [locked]);
    // Twilio answers what it held (to a dead worker, for some): the
    // messages exist at Twilio whether or not their worker heard so.
    tw.release();
    // The rest of the burst while the worker comes back (new connections:
    // never one the dead worker held).
    await burst(20, N, (json) => fresh('POST', '/api/v1/sms', json));
    const ids = msgs.map((m) => String(m.id));
    // The interrupted sends are settled once their request can no longer
    // be on its way (twilio_timeout_ms and a margin): Twilio is asked.
    const left = await poll(async () => (await sql(srv, "SELECT count(*)::int AS n FROM telephony_sms " +
      "WHERE id = ANY($1::bigint[]) AND status = 'queued'", [ids]))[0].n === 0, { timeout: 120000 });
    if (!left) {
      const stuck = await sql(srv, "SELECT s.id, s.inflight, s.provider, j.status, j.attempts, j.last_error, " +
        "j.run_at FROM telephony_sms s LEFT JOIN jobs j ON j.idempotency_key = 'telephony.sms:' || s.id " +
        "WHERE s.id = ANY($1::bigint[]) AND s.status = 'queued' LIMIT 5", [ids]);
      assert.fail(`messages left queued: ${JSON.stringify(stuck)}`);
    }
    const rows = await sql(srv, 'SELECT id::text, status, provider_message_id AS sid FROM telephony_sms ' +
      'WHERE id = ANY($1::bigint[])', [ids]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const sids = new Set();
    for (const m of msgs) {
      const row = byId.get(String(m.id));
      assert.equal(tw.sends(m.to, m.body), 1, `message ${m.id} sent ${tw.sends(m.to, m.body)} times`);
      assert.equal(row.status, 'sending', `message ${m.id}: ${row.status}`);
      assert.equal(tw.messages.get(row.sid)?.to, m.to, `message ${m.id} holds another message's sid`);
      sids.add(row.sid);
    }
    assert.equal(sids.size, N);
    const adopted = srv.logs.filter((l) => /interrupted send reached twilio/.test(l.msg ?? '')).length;
    t.diagnostic(`${adopted} interrupted sends found at Twilio and adopted`);
    // Twilio delivers them all: every message reaches its final status.
    for (const m of msgs) {
      const r = await callback(byId.get(String(m.id)).sid, 'delivered');
      assert.equal(r.status, 200, r.text);
    }
    const delivered = async () => (await sql(srv, "SELECT count(*)::int AS n FROM telephony_sms " +
      "WHERE id = ANY($1::bigint[]) AND status = 'delivered'", [ids]))[0].n;
    await poll(async () => await delivered() === N);
    assert.equal(await delivered(), N);
    assert.equal((await fresh('GET', '/healthz')).status, 200);
  } finally {
    tw.release();
  }
});

test('kill -9 a worker in the middle of a drain: no webhook is lost, each applied once', async () => {
  const N = 300;
  const { tag, list, count, froms } = inboundBurst(N);
  // A status callback for a sid no message holds (kept pending) comes
  // first; the drain that takes it waits for its sid's lock, held here, with
  // the burst behind it taken in the same transaction.
  const sid = `SM${tag}${'f'.repeat(24)}`;
  const holder = await pgClient(withDb(databaseUrl(), srv.database));
  let held = true;
  try {
    await holder.query("SELECT pg_advisory_lock(hashtext('sms:twilio:' || $1))", [sid]);
    assert.equal(await hookFresh({ AccountSid: tw.accountSid, ApiVersion: '2010-04-01', From: FROM, MessageSid: sid,
      MessageStatus: 'sent', SmsSid: sid, SmsStatus: 'sent', To: uniqPhone() }), 200);
    assert.deepEqual([...new Set(await postAll(list))], [200]);
    let locked;
    assert.ok(await poll(async () => {
      const waiting = await sql(srv, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' " +
        "AND wait_event = 'advisory' AND datname = current_database()");
      const running = await sql(srv, "SELECT locked_by FROM jobs WHERE kind IN ('telephony.inbox_drain', " +
        "'telephony.inbox_sweep') AND status = 'running'");
      locked = running[0]?.locked_by;
      return waiting[0].n === 1 && running.length === 1;
    }, { interval: 20 }), 'no drain waiting on the lock');
    // The rows it holds are still in the inbox, sealed.
    const dump = JSON.stringify(await sql(srv, 'SELECT * FROM telephony_inbox'));
    assert.ok(dump.includes(sid), 'the status callback is in the inbox');
    assert.ok(!dump.includes(froms[0].slice(2)) && !dump.includes(`burst ${tag}`), 'no number or body in clear');
    process.kill(Number(locked.split(':').pop()), 'SIGKILL');
    await sql(srv, "UPDATE jobs SET lease_until = now() WHERE status = 'running' AND locked_by = $1", [locked]);
    await holder.query('SELECT pg_advisory_unlock_all()');
    held = false;
  } finally {
    if (held) await holder.query('SELECT pg_advisory_unlock_all()').catch(() => {});
    await holder.end();
  }
  assert.ok(await poll(async () => (await count()).n === N, { timeout: 120000 }),
    `applied after the kill: ${JSON.stringify(await count())}`);
  await drained();
  assert.deepEqual(await count(), { n: N, d: N, events: N });
  const pending = await sql(srv, "SELECT status FROM telephony_sms_pending WHERE provider = 'twilio' " +
    'AND provider_message_id = $1', [sid]);
  assert.deepEqual(pending.map((x) => x.status), ['sent']);
});
