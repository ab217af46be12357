// The telephony plugin's Exotel provider for SMS (API.md "Telephony"),
// black box against real PostgreSQL, the fake Exotel (tests/fakes/exotel.mjs)
// and the fake Twilio: send -> sending -> sent -> delivered through status
// callbacks on the path-token webhook; a wrong token 404 changing nothing;
// replayed and late callbacks changing nothing; inbound SMS creating a
// customer; 5xx retried; a 4xx failed with Exotel's RestException shown;
// routing +91 through Exotel and the rest through Twilio; failover to Twilio
// when Exotel refuses connections; a timeout after the request left ->
// unknown and sent once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { startServer, TEST_PLUGINS, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startTwilio } from '../fakes/twilio.mjs';
import { startExotel, postForm } from '../fakes/exotel.mjs';

const PUBLIC = 'https://switchboard.example.org';
const EXO_FROM = '+918047112233';
const TW_FROM = '+15005550001';
const DLT = '1101234567890123456';
let srv, tw, ex, admin, hookPath;

// +9190...: Exotel only; other +91: Exotel then Twilio; the rest: Twilio.
const exoOnly = () => `+9190${String(randomInt(10000000, 99999999))}`;
const indian = () => `+9198${String(randomInt(10000000, 99999999))}`;
const us = () => `+1415${String(randomInt(1000000, 9999999))}`;

async function sql(server, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), server.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

before(async () => {
  tw = await startTwilio();
  ex = await startExotel();
  srv = await startServer({ host: { breaker_failures: '1000', public_url: PUBLIC }, plugins: { ...TEST_PLUGINS,
    customers: {}, telephony: {
      twilio_account_sid: tw.accountSid, twilio_auth_token: tw.authToken, twilio_from: TW_FROM,
      twilio_api_url: tw.url, twilio_timeout_ms: '1500',
      exotel_sid: ex.sid, exotel_api_key: ex.apiKey, exotel_api_token: ex.apiToken, exotel_from: EXO_FROM,
      exotel_api_url: ex.url, exotel_timeout_ms: '1500', exotel_dlt_entity_id: DLT,
      sms_per_minute: '0', routing: 'sms:+9190=exotel;sms:+91=exotel,twilio;sms:*=twilio' } } });
  admin = await srv.login();
});

after(async () => {
  await srv?.stop();
  await tw?.stop();
  await ex?.stop();
});

const send = (json) => srv.request('POST', '/api/v1/sms', { token: admin, json });
const get = (id) => srv.request('GET', `/api/v1/sms/${id}`, { token: admin });
async function until(id, pred) {
  return poll(async () => {
    const r = await get(id);
    return pred(r.body) ? r.body : null;
  });
}
// Webhooks are answered from the durable inbox and applied by the drain job
// just after: wait until the inbox is empty before asserting that something
// changed nothing.
async function drained() {
  assert.ok(await poll(async () => (await sql(srv, 'SELECT count(*)::int AS n FROM telephony_inbox'))[0].n === 0),
    'the webhook inbox was not drained');
}
// A status callback to this server, at the path of the StatusCallback Exotel was given.
const callback = (sid, status, opts = {}) => ex.callback(sid, status, { target: srv.url, ...opts });

async function sentMessage(body, to = exoOnly()) {
  const r = await send({ to, body });
  assert.equal(r.status, 202, r.text);
  const m = await until(r.body.id, (b) => b.provider_message_id);
  return { ...m, to };
}

test('send -> sending -> sent -> delivered through status callbacks with the path token', async () => {
  const to = exoOnly();
  const r = await send({ to, body: 'Hello from Switchboard' });
  assert.equal(r.status, 202, r.text);
  const m = await until(r.body.id, (b) => b.status === 'sending');
  assert.equal(m.provider, 'exotel');
  assert.match(m.provider_message_id, /^[0-9a-f]{32}$/);
  assert.equal(m.from, EXO_FROM);
  assert.equal(ex.sends(to, 'Hello from Switchboard'), 1);
  const req = ex.requests.find((x) => x.To === to);
  assert.equal(req.From, EXO_FROM);
  assert.equal(req.DltEntityId, DLT, 'exotel_dlt_entity_id is sent as DltEntityId');
  const cb = new URL(ex.messages.get(m.provider_message_id).callback);
  assert.equal(cb.origin, PUBLIC, 'the StatusCallback is built from public_url');
  const match = /^\/api\/v1\/webhooks\/exotel\/([A-Za-z0-9_-]{43})\/sms$/.exec(cb.pathname);
  assert.ok(match, `StatusCallback path ${cb.pathname}`);
  hookPath = cb.pathname;

  let c = await callback(m.provider_message_id, 'sent');
  assert.equal(c.status, 200, c.text);
  await until(m.id, (b) => b.status === 'sent');
  c = await callback(m.provider_message_id, 'sent', { detailedStatus: 'DELIVERED_TO_HANDSET',
    detailedStatusCode: '20005' });
  assert.equal(c.status, 200);
  const done = await until(m.id, (b) => b.status === 'delivered');
  assert.equal(done.status, 'delivered', "Exotel's sent + DELIVERED_TO_HANDSET is delivered");
  assert.deepEqual(done.events.map((e) => e.status), ['queued', 'sending', 'sent', 'delivered']);

  // The same callbacks again change nothing.
  c = await callback(m.provider_message_id, 'delivered');
  assert.equal(c.status, 200);
  c = await callback(m.provider_message_id, 'sent', { detailedStatus: 'DELIVERED_TO_HANDSET' });
  assert.equal(c.status, 200);
  await drained();
  assert.deepEqual((await get(m.id)).body, done);

  const rows = await sql(srv, 'SELECT * FROM telephony_sms WHERE id = $1', [m.id]);
  assert.ok(!JSON.stringify(rows).includes(to.slice(1)), 'no phone number in clear');
  // Neither the plugin nor the host's access log (SB_ROUTE_SECRET_PATH:
  // the route's pattern instead of the path) writes the token.
  const token = hookPath.split('/')[5];
  await poll(async () => srv.output.includes('"route":"/api/v1/webhooks/exotel/{token}/sms"') || null);
  assert.ok(!srv.output.includes(token), 'the webhook token is not in the server output');
});

test('a wrong path token is 404 and changes nothing', async () => {
  const m = await sentMessage('wrong token');
  const before = (await get(m.id)).body;
  const params = { SmsSid: m.provider_message_id, To: m.to, Status: 'delivered',
    DetailedStatus: 'DELIVERED_TO_HANDSET', DetailedStatusCode: '20005' };
  const real = hookPath.split('/')[5];
  const wrong = real.slice(0, -1) + (real.endsWith('A') ? 'B' : 'A');
  for (const t of [wrong, 'x', real + 'x', real.toLowerCase() === real ? real.toUpperCase() : real.toLowerCase()]) {
    const r = await postForm(`${srv.url}/api/v1/webhooks/exotel/${t}/sms`, params);
    assertEnvelope(assert, r, 404, 'NOT_FOUND');
  }
  // An inbound SMS on a wrong token creates nothing either.
  const from = indian();
  const r = await ex.inbound(`${srv.url}/api/v1/webhooks/exotel/${wrong}/sms`, { from, to: EXO_FROM, body: 'no' });
  assert.equal(r.status, 404);
  assert.deepEqual((await get(m.id)).body, before);
  const inbox = await srv.request('GET', `/api/v1/sms/inbox?from=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(inbox.body.data.length, 0);
});

test('a late sent after delivered is an event only', async () => {
  const m = await sentMessage('late sent');
  assert.equal((await callback(m.provider_message_id, 'delivered')).status, 200);
  await until(m.id, (x) => x.status === 'delivered');
  assert.equal((await callback(m.provider_message_id, 'sent')).status, 200);
  const b = await until(m.id, (x) => x.events.length === 4);
  assert.equal(b.status, 'delivered');
  assert.deepEqual(b.events.map((e) => e.status), ['queued', 'sending', 'delivered', 'sent']);
  assert.equal(b.events[3].detail, 'late: status unchanged');
});

test('a failed callback shows DetailedStatusCode and DetailedStatus', async () => {
  const m = await sentMessage('to a DND number');
  assert.equal((await callback(m.provider_message_id, 'failed_dnd')).status, 200);
  const b = await until(m.id, (x) => x.status === 'failed');
  assert.equal(b.status, 'failed');
  assert.equal(b.error_code, '23005');
  assert.equal(b.error_message, 'FAILED_DND');
});

test('an inbound SMS creates the customer, once', async () => {
  const from = indian();
  const url = srv.url + hookPath;
  const r = await ex.inbound(url, { from, to: EXO_FROM, body: 'Namaste, please call me' });
  assert.equal(r.status, 200, r.text);
  const again = await ex.inbound(url, { from, to: EXO_FROM, body: 'Namaste, please call me', sid: r.sid });
  assert.equal(again.status, 200);
  await drained();
  const inbox = await srv.request('GET', `/api/v1/sms/inbox?from=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(inbox.status, 200);
  assert.equal(inbox.body.data.length, 1);
  const m = inbox.body.data[0];
  assert.equal(m.direction, 'inbound');
  assert.equal(m.status, 'received');
  assert.equal(m.provider, 'exotel');
  assert.equal(m.from, from);
  assert.equal(m.body, 'Namaste, please call me');
  const cust = await srv.request('GET', `/api/v1/customers?phone=${encodeURIComponent(from)}`, { token: admin });
  assert.equal(cust.body.data.length, 1);
  assert.equal(cust.body.data[0].id, m.customer_id);
});

test('5xx and 429 from Exotel are retried; the SMS goes out once', async () => {
  for (const fail of [{ status: 503 }, { status: 429 }]) {
    const to = exoOnly();
    const body = `retry after ${fail.status}`;
    ex.fail([fail]);
    const r = await send({ to, body });
    assert.equal(r.status, 202);
    const m = await until(r.body.id, (b) => b.status === 'sending');
    assert.equal(ex.requests.filter((x) => x.To === to).length, 2, 'one refused request, one accepted');
    assert.equal(ex.sends(to, body), 1);
    assert.equal(m.provider, 'exotel');
  }
});

test("a 400 from Exotel fails the SMS with its RestException shown, not retried", async () => {
  const to = exoOnly();
  ex.fail([{ status: 400, message: 'Invalid Recipient' }]);
  const r = await send({ to, body: 'to a bad number' });
  const m = await until(r.body.id, (b) => b.status === 'failed');
  assert.equal(m.error_code, '400');
  assert.equal(m.error_message, 'Invalid Recipient');
  assert.deepEqual(m.events.map((e) => e.status), ['queued', 'failed']);
  assert.equal(ex.requests.filter((x) => x.To === to).length, 1);
});

test('routing sms:+91=exotel,twilio: +91 through Exotel, others through Twilio', async () => {
  const a = indian();
  const b = us();
  const ra = await send({ to: a, body: 'routed in' });
  const rb = await send({ to: b, body: 'routed us' });
  const ma = await until(ra.body.id, (x) => x.status === 'sending');
  const mb = await until(rb.body.id, (x) => x.status === 'sending');
  assert.equal(ma.provider, 'exotel');
  assert.equal(mb.provider, 'twilio');
  assert.equal(ex.sends(a, 'routed in'), 1);
  assert.equal(tw.sends(a, 'routed in'), 0);
  assert.equal(tw.sends(b, 'routed us'), 1);
  assert.equal(ex.sends(b, 'routed us'), 0);
});

test('failover: Exotel refusing connections -> the SMS goes out through Twilio once', async () => {
  const to = indian();
  await ex.stop();
  try {
    const r = await send({ to, body: 'exotel is down' });
    assert.equal(r.status, 202);
    const m = await until(r.body.id, (b) => b.status === 'sending');
    assert.equal(m.provider, 'twilio');
    assert.equal(tw.sends(to, 'exotel is down'), 1);
  } finally { await ex.start(); }
  assert.equal(ex.sends(to, 'exotel is down'), 0);
});

test('Exotel slow past the timeout: unknown, sent once, not failed over', async () => {
  const to = indian();
  ex.fail([{ delayMs: 4000 }]);
  const r = await send({ to, body: 'slow exotel' });
  const m = await until(r.body.id, (b) => b.status === 'unknown');
  assert.equal(m.provider_message_id, null);
  await poll(() => ex.sends(to, 'slow exotel') === 1);
  assert.equal(ex.requests.filter((x) => x.To === to).length, 1);
  assert.equal(tw.sends(to, 'slow exotel'), 0, 'never failed over after the request left');
  const jobs = await sql(srv, "SELECT status FROM jobs WHERE kind = 'telephony.sms_send' AND payload->>'id' = $1",
    [String(m.id)]);
  assert.ok(jobs.every((j) => j.status !== 'queued'), 'no send job left to run');
  assert.equal((await get(m.id)).body.status, 'unknown');
});

test('/readyz names Exotel as configured and shows no token', async () => {
  const r = await srv.request('GET', '/readyz');
  assert.equal(r.status, 200, r.text);
  const c = JSON.stringify(r.body.checks['plugin:telephony']);
  assert.match(c, /"telephony.exotel":"configured"/);
  assert.ok(!r.text.includes(hookPath.split('/')[5]), 'the webhook token is not shown');
});

test('the generated token is the same on another node; an explicit one replaces it; a bad one refuses to start', async () => {
  const conf = (extra = {}) => ({ host: { breaker_failures: '1000', public_url: PUBLIC }, database: srv.database,
    plugins: { ...TEST_PLUGINS, customers: {}, telephony: {
      exotel_sid: ex.sid, exotel_api_key: ex.apiKey, exotel_api_token: ex.apiToken, exotel_from: EXO_FROM,
      exotel_api_url: ex.url, sms_per_minute: '0', routing: 'sms:*=exotel', ...extra } } });
  // A second node on the same database derives the same token.
  let other = await startServer(conf());
  try {
    const token = await other.login();
    const to = exoOnly();
    const r = await other.request('POST', '/api/v1/sms', { token, json: { to, body: 'from node two' } });
    assert.equal(r.status, 202, r.text);
    const m = await poll(async () => {
      const g = await other.request('GET', `/api/v1/sms/${r.body.id}`, { token });
      return g.body.provider_message_id ? g.body : null;
    });
    assert.equal(new URL(ex.messages.get(m.provider_message_id).callback).pathname, hookPath);
    // Its callback may land on either node.
    assert.equal((await callback(m.provider_message_id, 'delivered')).status, 200);
    assert.ok(await until(m.id, (b) => b.status === 'delivered'));
  } finally { await other.stop({ keepDatabase: true }); }

  const mine = 'operator-chosen_token-0123456789';
  other = await startServer(conf({ exotel_webhook_token: mine }));
  try {
    const params = { SmsSid: 'nosuchsid', To: EXO_FROM, Status: 'sent' };
    assert.equal((await postForm(`${other.url}/api/v1/webhooks/exotel/${mine}/sms`, params)).status, 200);
    assertEnvelope(assert, await postForm(other.url + hookPath, params), 404, 'NOT_FOUND');
  } finally { await other.stop({ keepDatabase: true }); }

  for (const bad of ['short', 'has a space in it, which is bad']) {
    const s = await startServer({ ...conf({ exotel_webhook_token: bad, required: 'yes' }), database: undefined,
      expectFailure: true });
    await s.stop();
    assert.match(s.output, /exotel_webhook_token must be 16\.\.127 characters/, bad);
  }
});

test('the daily cap per sender: a capped sender is skipped for the next provider, or the send waits for the next day', async () => {
  const s = await startServer({ host: { public_url: PUBLIC }, plugins: { ...TEST_PLUGINS, customers: {},
    telephony: {
      twilio_account_sid: tw.accountSid, twilio_auth_token: tw.authToken, twilio_from: TW_FROM,
      twilio_api_url: tw.url, exotel_sid: ex.sid, exotel_api_key: ex.apiKey, exotel_api_token: ex.apiToken,
      exotel_from: EXO_FROM, exotel_api_url: ex.url, sms_per_minute: '0', sms_daily_cap: '2',
      routing: 'sms:+9190=exotel;sms:+91=exotel,twilio;sms:*=twilio' } } });
  try {
    const token = await s.login();
    const sendAs = (json) => s.request('POST', '/api/v1/sms', { token, json });
    const wait = async (id, pred) => poll(async () => {
      const r = await s.request('GET', `/api/v1/sms/${id}`, { token });
      return pred(r.body) ? r.body : null;
    });
    // Exotel's sender takes two today; the third +91 message goes through Twilio.
    const got = [];
    for (let i = 0; i < 3; i++) {
      const r = await sendAs({ to: indian(), body: `cap ${i}` });
      assert.equal(r.status, 202, r.text);
      got.push(await wait(r.body.id, (b) => b.provider_message_id));
    }
    assert.deepEqual(got.map((m) => m.provider), ['exotel', 'exotel', 'twilio']);
    // A number only Exotel may serve waits for the next UTC day, still queued.
    const r = await sendAs({ to: exoOnly(), body: 'cap waits' });
    assert.equal(r.status, 202, r.text);
    // Its job ends and a new one waits for the next UTC day.
    const job = await poll(async () => (await sql(s, "SELECT status, run_at > now() + interval '1 minute' AS later, " +
      "run_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' AS tomorrow " +
      'FROM jobs WHERE idempotency_key LIKE $1', [`telephony.sms:${r.body.id}:day:%`]))[0]);
    assert.ok(job, 'the send did not wait for the cap');
    assert.equal(job.status, 'queued');
    assert.equal(job.later, true);
    assert.equal(job.tomorrow, true);
    assert.equal((await s.request('GET', `/api/v1/sms/${r.body.id}`, { token })).body.status, 'queued');
    const day = await sql(s, 'SELECT sum(sent)::int AS n FROM telephony_sender_day');
    assert.equal(day[0].n, 3, 'two for Exotel\'s sender, one for Twilio\'s');
  } finally {
    await s.stop();
  }
});
