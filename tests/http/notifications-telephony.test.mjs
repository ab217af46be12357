// The notifications plugin's telephony rules (plugins/notifications/README.md
// "Rules"), black box against real PostgreSQL and the fake Twilio
// (tests/fakes/twilio.mjs, whose wire facts and sources are in its header):
// an SMS Twilio refuses for good reaches the agent who sent it and nobody
// else; an SMS that ends delivered reaches nobody; an inbound SMS reaches
// every active holder of sms.read once (and no one without it), and a
// replayed inbound webhook adds nothing; no notification holds a phone
// number or a message text; the preferences list the new types once.
// The failed-call rule (telephony.call.status) is not exercised here: the
// telephony plugin publishes no call events yet.
// Nothing here waits on the clock: every wait polls observable state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomBytes } from 'node:crypto';
import { startServer, TEST_PLUGINS } from './lib/harness.mjs';
import { poll, serverSql, makeStaff } from './lib/helpers.mjs';
import { startTwilio } from '../fakes/twilio.mjs';

const NB = '/api/v1/notifications';
// [host] public_url: the address Twilio reaches us at behind a proxy, so
// sends carry a StatusCallback and webhooks are signed over it.
const PUBLIC = 'https://switchboard.example.org';
const HOOK = '/api/v1/webhooks/twilio/sms';
const FROM = '+15005550001';
const PASSWORD = 'staff-password-0123456789';
const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;

let srv, tw;
const U = {};	// name -> {id, token}

const sql = (text, params) => serverSql(srv, text, params);

const makeUser = (adminToken, name, role) => makeStaff(srv, adminToken, name, role, PASSWORD);

before(async () => {
  tw = await startTwilio();
  srv = await startServer({
    host: { breaker_failures: '10000', jobs_poll_ms: '50', public_url: `${PUBLIC}/` },
    plugins: { ...TEST_PLUGINS, concierge: {}, customers: {}, notifications: {},
      telephony: { twilio_account_sid: tw.accountSid, twilio_auth_token: tw.authToken,
        twilio_from: FROM, twilio_api_url: tw.url, twilio_timeout_ms: '5000',
        sms_per_minute: '0', routing: 'sms:*=twilio' } },
  });
  const adminToken = await srv.login();
  const me = await srv.request('GET', '/api/v1/users/me', { token: adminToken });
  U.admin = { id: me.body.id, token: adminToken };	// SUPER_ADMIN: holds sms.read
  for (const n of ['a', 'b', 'gone']) U[n] = await makeUser(adminToken, `agent-${n}`, 'AGENT');
  // sms.read without queries.handle: a reader of SMS, not an agent.
  let role = await srv.request('POST', '/api/v1/roles', { token: adminToken,
    json: { name: 'SMS_READER', permissions: ['sms.read'] } });
  assert.equal(role.status, 201, role.text);
  U.reader = await makeUser(adminToken, 'reader', 'SMS_READER');
  // Staff who may not read SMS.
  role = await srv.request('POST', '/api/v1/roles', { token: adminToken,
    json: { name: 'VIEWER', permissions: ['system.read'] } });
  assert.equal(role.status, 201, role.text);
  U.viewer = await makeUser(adminToken, 'viewer', 'VIEWER');
  // An agent who left: deactivated, never notified.
  const del = await srv.request('DELETE', `/api/v1/users/${U.gone.id}`, { token: adminToken });
  assert.ok(del.status === 200 || del.status === 204, del.text);
});

after(async () => {
  await srv?.stop();
  await tw?.stop();
});

// Every inbox entry about SMS `id`, per user, read from the database (a
// deactivated user cannot sign in to look).
async function entriesAbout(smsId) {
  const rows = await sql("SELECT user_id, event, title, body, data FROM notifications_inbox "
    + "WHERE event LIKE 'telephony.sms.%' AND (data->>'id')::bigint = $1 ORDER BY id", [smsId]);
  const by = {};
  for (const r of rows) (by[r.user_id] ??= []).push(r);
  return by;
}

// The caller's own inbox through the API, the entries about SMS `id`.
async function inboxAbout(u, smsId) {
  const r = await srv.request('GET', `${NB}?limit=200`, { token: u.token });
  assert.equal(r.status, 200, r.text);
  return r.body.data.filter((n) => n.event.startsWith('telephony.sms.') && n.data.id === smsId);
}

// No notifications job is queued or running: every fan-out enqueued so far
// (and what it enqueued) has finished.
async function settle() {
  let rows;
  const ok = await poll(async () => {
    rows = await sql("SELECT kind, status FROM jobs WHERE kind LIKE 'notifications.%' "
      + "AND status IN ('queued', 'running')");
    return rows.length === 0;
  }, { interval: 50 });
  assert.ok(ok, `notification jobs still pending: ${JSON.stringify(rows)}`);
}

// The send job of SMS `id` has finished: every event it published has been
// through the notifications subscriber (publish, then done).
async function sendJobDone(id) {
  const ok = await poll(async () => (await sql("SELECT 1 FROM jobs WHERE kind = 'telephony.sms_send' "
    + "AND idempotency_key = $1 AND status = 'done'", [`telephony.sms:${id}`])).length === 1,
  { interval: 50 });
  assert.ok(ok, `the send job of SMS ${id} did not finish`);
}

// The fan-out jobs enqueued for events about SMS `id`.
const fanoutsAbout = (id) => sql("SELECT payload FROM jobs WHERE kind = 'notifications.fanout' "
  + "AND payload->>'name' LIKE 'telephony.sms.%' AND (payload->'data'->>'id')::bigint = $1", [id]);

function assertNoSecrets(entry, ...secrets) {
  const text = JSON.stringify(entry);
  for (const s of secrets) assert.ok(!text.includes(s), `${s} in ${text}`);
  assert.equal(entry.data.error_message, undefined);
  assert.equal(entry.data.body, undefined);
}

test('preferences list the telephony types once, inbox and push on, email off', async () => {
  const r = await srv.request('GET', `${NB}/preferences`, { token: U.a.token });
  assert.equal(r.status, 200, r.text);
  for (const t of ['telephony.sms.failed', 'telephony.call.failed', 'telephony.sms.received'])
    assert.deepEqual(r.body.preferences[t], { inbox: true, push: true, email: false }, t);
  // Types, not the event names several kinds share.
  for (const e of ['telephony.sms.status', 'telephony.sms.created', 'telephony.call.status'])
    assert.equal(r.body.preferences[e], undefined, e);
  // A type can be changed like any other.
  const put = await srv.request('PUT', `${NB}/preferences`, { token: U.b.token,
    json: { preferences: { 'telephony.sms.received': { push: false } } } });
  assert.equal(put.status, 200, put.text);
  assert.deepEqual(put.body.preferences['telephony.sms.received'], { inbox: true, push: false, email: false });
});

test('an SMS Twilio refuses for good reaches the agent who sent it, and nobody else', async () => {
  const to = uniqPhone();
  const body = `to a bad number ${randomBytes(4).toString('hex')}`;
  tw.fail([{ status: 400, code: 21211 }]);
  const r = await srv.request('POST', '/api/v1/sms', { token: U.a.token, json: { to, body } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.id;
  const mine = await poll(async () => {
    const items = await inboxAbout(U.a, id);
    return items.length > 0 ? items : null;
  });
  assert.ok(mine, 'the sender got no notification');
  await sendJobDone(id);
  await settle();
  const got = await inboxAbout(U.a, id);
  assert.equal(got.length, 1, JSON.stringify(got));
  const n = got[0];
  assert.equal(n.event, 'telephony.sms.status');
  assert.equal(n.title, `SMS #${id} failed`);
  assert.match(n.body, new RegExp(`^Your SMS #${id} to customer #${r.body.customer_id} was not sent$`));
  assert.equal(n.read, false);
  assert.equal(n.data.status, 'failed');
  assert.equal(n.data.error_code, '21211');
  assert.equal(n.data.sent_by, U.a.id);
  assert.equal(n.data.customer_id, r.body.customer_id);
  // Twilio's error text quotes the number: the plugin keeps it without
  // (API.md: no number in clear anywhere), and the notification has neither.
  const m = await srv.request('GET', `/api/v1/sms/${id}`, { token: U.a.token });
  assert.ok(!m.body.error_message.includes(to.slice(2)), m.text);
  assert.match(m.body.error_message, /\[number\]/);
  assertNoSecrets(n, to, to.slice(2), body);
  const by = await entriesAbout(id);
  assert.deepEqual(Object.keys(by).map(Number), [U.a.id], JSON.stringify(by));
  const fanouts = await fanoutsAbout(id);
  assert.equal(fanouts.length, 1, JSON.stringify(fanouts));
  assert.equal(fanouts[0].payload.data.status, 'failed');
  assert.equal(fanouts[0].payload.data.error_message, undefined, 'the fan-out job keeps no error text');
});

test('an SMS that ends delivered notifies nobody', async () => {
  const to = uniqPhone();
  const r = await srv.request('POST', '/api/v1/sms', { token: U.a.token, json: { to, body: 'all good' } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.id;
  const sent = await poll(async () => {
    const g = await srv.request('GET', `/api/v1/sms/${id}`, { token: U.a.token });
    return g.body.provider_message_id ? g.body : null;
  });
  assert.ok(sent, 'the SMS never reached Twilio');
  const cb = await tw.callback(sent.provider_message_id, 'delivered', { target: srv.url + HOOK });
  assert.equal(cb.status, 200, cb.text);
  // The webhook answers from the inbox; the drain applies and publishes it.
  const m = await poll(async () => {
    const g = await srv.request('GET', `/api/v1/sms/${id}`, { token: U.a.token });
    return g.body.status === 'delivered' ? g : null;
  });
  assert.equal(m?.body.status, 'delivered');
  // Every event about it has been published (the drain publishes once it
  // applied the callback; the send job before it is done), so any fan-out
  // would be enqueued by now.
  await sendJobDone(id);
  await settle();
  assert.deepEqual(await fanoutsAbout(id), []);
  assert.deepEqual(await entriesAbout(id), {});
});

test('an inbound SMS reaches each active holder of sms.read once; a replay adds nothing', async () => {
  const from = uniqPhone();
  const body = `please call me ${randomBytes(4).toString('hex')}`;
  const r = await tw.inbound(srv.url + HOOK, { from, to: FROM, body, signUrl: PUBLIC + HOOK });
  assert.equal(r.status, 200, r.text);
  // Answered from the inbox: stored (and published) by the drain just after.
  const row = await poll(async () => (await sql("SELECT id, customer_id FROM telephony_sms WHERE "
    + "provider = 'twilio' AND provider_message_id = $1", [r.sid]))[0] ?? null);
  assert.ok(row, 'the inbound SMS was not stored');
  const id = Number(row.id);
  // Holders of sms.read: the super-admin, the agents, the SMS reader; not
  // the viewer, nor the deactivated agent.
  const readers = [U.admin, U.a, U.b, U.reader];
  const all = await poll(async () => {
    const by = await entriesAbout(id);
    return readers.every((u) => by[u.id]) ? by : null;
  });
  assert.ok(all, 'not every holder of sms.read was notified');
  for (const u of readers) {
    const got = await inboxAbout(u, id);
    assert.equal(got.length, 1, `${u.name ?? 'admin'}: ${JSON.stringify(got)}`);
    assert.equal(got[0].event, 'telephony.sms.created');
    assert.equal(got[0].title, 'New SMS');
    assert.equal(got[0].body, `SMS #${id} from customer #${row.customer_id}`);
    assert.equal(got[0].data.direction, 'inbound');
    assertNoSecrets(got[0], from, from.slice(2), body);
  }
  // The replay: same MessageSid.  Once the inbox is drained (the drain
  // publishes, or not, as it commits its delete) and the jobs are idle
  // nothing can come.
  const again = await tw.inbound(srv.url + HOOK, { from, to: FROM, body, sid: r.sid,
    signUrl: PUBLIC + HOOK });
  assert.equal(again.status, 200, again.text);
  assert.ok(await poll(async () => (await sql('SELECT count(*)::int AS n FROM telephony_inbox'))[0].n === 0),
    'the webhook inbox was not drained');
  await settle();
  const by = await entriesAbout(id);
  assert.deepEqual(Object.keys(by).map(Number).sort((x, y) => x - y),
    readers.map((u) => Number(u.id)).sort((x, y) => x - y), JSON.stringify(by));
  for (const u of readers) assert.equal(by[u.id].length, 1);
  assert.equal(by[U.gone.id], undefined);
  assert.equal(by[U.viewer.id], undefined);
  assert.equal((await inboxAbout(U.viewer, id)).length, 0);
  assert.equal((await fanoutsAbout(id)).length, 1);
});
