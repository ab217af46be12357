// The privacy surface (API.md "Privacy"), black box with every product
// plugin and the fake Daily: a donor with queries, messages, a live call
// session and staff inbox entries about them is exported (contents, no
// token or secret) and erased (counts per plugin, rows gone, a second
// erase finds nothing, another donor untouched, a live call's room
// deleted at Daily); an erase that fails in one plugin erases nothing;
// the audit records say who asked, the subject's kind and the counts but
// never the person, and the chain still verifies; bad input is 400/422,
// no credentials 401, AGENT and ADMIN 403.  A plugin route erasing a
// person through api->privacy_erase_all (test plugin eraser) does the
// same erase, refused inside a transaction of the caller's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, TEST_PLUGINS, testPlugin, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startDaily } from '../fakes/daily.mjs';

const C = '/api/v1/communication';
const P = '/api/v1/privacy';
const uniq = (p) => `${p}-${randomBytes(4).toString('hex')}`;
let srv, daily, admin;
const staff = {};

async function sql(text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

async function makeUser(role) {
  const username = uniq(role.toLowerCase());
  const password = 'privacy-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name: username, email: `${username}@example.org`, role } });
  assert.equal(r.status, 201, r.text);
  return { id: r.body.id, token: await srv.login(username, password) };
}

const exportOf = (query) => srv.request('GET', `${P}/export?${query}`, { token: admin });
const erase = (json, token = admin) => srv.request('POST', `${P}/delete`, { token, json });

// A donor with two queries: one accepted, with a message each way, a
// call requested, accepted (a session at the fake Daily) and started;
// one left open.  Returns what the test checks against.
async function donorWithHistory(donorId = uniq('donor')) {
  const open = async (content) => {
    const r = await srv.request('POST', '/api/v1/donor-queries', {
      json: { donor: `Donor ${donorId}`, donor_id: donorId, content } });
    assert.equal(r.status, 201, r.text);
    return { id: r.body.query.id, token: r.body.donor_token };
  };
  const q1 = await open(`first question of ${donorId}`);
  const q2 = await open(`second question of ${donorId}`);
  let r = await srv.request('PATCH', `/api/v1/donor-queries/${q1.id}/accept`, { token: staff.agent.token });
  assert.equal(r.status, 200, r.text);
  r = await srv.request('POST', `/api/v1/donor-queries/${q1.id}/messages`, { token: q1.token,
    json: { content: `donor says hello (${donorId})` } });
  assert.equal(r.status, 201, r.text);
  r = await srv.request('POST', `/api/v1/donor-queries/${q1.id}/messages`, { token: staff.agent.token,
    json: { content: 'agent answers' } });
  assert.equal(r.status, 201, r.text);
  r = await srv.request('POST', `${C}/call/${q1.id}/request`, { token: q1.token, json: { mode: 'AUDIO' } });
  assert.equal(r.status, 201, r.text);
  const request = r.body;
  r = await srv.request('POST', `${C}/call/${q1.id}/accept-request/${request.id}`, { token: staff.agent.token });
  assert.equal(r.status, 201, r.text);
  const session = r.body.session;
  const tokens = [session.token];
  r = await srv.request('GET', `${C}/calls/${q1.id}`, { token: q1.token });
  assert.equal(r.status, 200, r.text);
  tokens.push(r.body.data[0].token);
  r = await srv.request('PUT', `${C}/call/${session.room_name}/status`, { token: q1.token,
    json: { status: 'STARTED' } });
  assert.equal(r.status, 200, r.text);
  return { donorId, queries: [q1.id, q2.id], request, session, tokens };
}

// Every fan-out settled: the inbox holds all it is going to.
async function fanoutsSettled() {
  await poll(async () => (await sql("SELECT count(*)::int AS n FROM jobs WHERE kind = "
    + "'notifications.fanout' AND status IN ('queued', 'running')"))[0].n === 0);
}

// What the database holds on a donor, per plugin, counted directly.
async function held(donorId) {
  const [row] = await sql(`SELECT
    (SELECT count(*) FROM concierge_queries WHERE donor_id = $1)::int AS queries,
    (SELECT count(*) FROM concierge_messages m JOIN concierge_queries q ON q.id = m.query_id
       WHERE q.donor_id = $1)::int AS messages,
    (SELECT count(*) FROM calls_requests WHERE donor_id = $1)::int AS requests,
    (SELECT count(*) FROM calls_sessions WHERE donor_id = $1)::int AS sessions,
    (SELECT count(*) FROM notifications_inbox WHERE data->>'donor_id' = $1)::int AS inbox`, [donorId]);
  return row;
}

async function auditRows(action) {
  const r = await srv.request('GET', `/api/v1/audit?action=${action}&limit=200`, { token: admin });
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

before(async () => {
  daily = await startDaily();
  srv = await startServer({ host: { breaker_failures: '1000' }, plugins: { ...TEST_PLUGINS,
    audit: {},
    concierge: { create_rate_ip: '0', create_rate_donor: '0' },
    calls: { daily_api_url: daily.url, daily_api_key: daily.apiKey,
      webhook_secret: randomBytes(32).toString('base64'), daily_timeout_ms: '5000' },
    notifications: {}, eraser: testPlugin('eraser') } });
  admin = await srv.login();
  staff.agent = await makeUser('AGENT');
  staff.admin = await makeUser('ADMIN');
});
after(async () => { await srv?.stop(); await daily?.close(); });

test('the privacy routes need privacy.manage: 401 without credentials, 403 for AGENT and ADMIN', async () => {
  const plugins = await srv.request('GET', '/api/v1/plugins', { token: admin });
  const host = plugins.body.data.find((p) => p.name === 'host');
  const got = Object.fromEntries(host.routes.filter((x) => [`${P}/export`, `${P}/delete`].includes(x.path))
    .map((x) => [`${x.method} ${x.path}`, x.permission]));
  assert.deepEqual(got, { [`GET ${P}/export`]: 'privacy.manage', [`POST ${P}/delete`]: 'privacy.manage' });

  assertEnvelope(assert, await srv.request('GET', `${P}/export?donor_id=x`), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await srv.request('POST', `${P}/delete`, { json: { donor_id: 'x' } }),
    401, 'UNAUTHENTICATED');
  for (const who of [staff.agent, staff.admin]) {
    assertEnvelope(assert, await srv.request('GET', `${P}/export?donor_id=x`, { token: who.token }),
      403, 'FORBIDDEN');
    assertEnvelope(assert, await erase({ donor_id: 'x' }, who.token), 403, 'FORBIDDEN');
  }
});

test('a subject is exactly one of customer_id, donor_id and phone, each well formed', async () => {
  const fields = (r) => r.body.errors.map((e) => e.field).sort();
  let r = await srv.request('GET', `${P}/export`, { token: admin });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.deepEqual(fields(r), ['customer_id', 'donor_id', 'phone']);
  r = await exportOf('donor_id=a&phone=%2B442079460958');
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.deepEqual(fields(r), ['donor_id', 'phone']);
  r = await exportOf('customer_id=1&donor_id=a&phone=1');
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.deepEqual(fields(r), ['customer_id', 'donor_id', 'phone']);
  for (const bad of ['abc', '0', '-1', '1.5', '01', '', '99999999999999999999']) {
    r = await exportOf(`customer_id=${encodeURIComponent(bad)}`);
    assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.deepEqual(fields(r), ['customer_id'], bad);
  }
  for (const bad of ['', '%20%20', 'x'.repeat(201), encodeURIComponent('é'.repeat(201))]) {
    r = await exportOf(`donor_id=${bad}`);
    assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.deepEqual(fields(r), ['donor_id']);
  }
  // (no [host] default_country here: a national number has no country)
  for (const bad of ['not-a-phone', '12', `+${'9'.repeat(70)}`, '020 7946 0958']) {
    r = await exportOf(`phone=${encodeURIComponent(bad)}`);
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    assert.deepEqual(fields(r), ['phone'], bad);
  }

  r = await erase({});
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.deepEqual(fields(r), ['customer_id', 'donor_id', 'phone']);
  r = await erase({ customer_id: 3, donor_id: 'a' });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.deepEqual(fields(r), ['customer_id', 'donor_id']);
  for (const [body, field] of [[{ customer_id: 'x' }, 'customer_id'], [{ customer_id: 0 }, 'customer_id'],
    [{ donor_id: '' }, 'donor_id'], [{ donor_id: 7 }, 'donor_id'], [{ donor_id: 'y'.repeat(201) }, 'donor_id'],
    [{ phone: 'call me' }, 'phone'], [{ phone: 5 }, 'phone']]) {
    r = await erase(body);
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    assert.deepEqual(fields(r), [field], JSON.stringify(body));
  }
  assertEnvelope(assert, await srv.request('POST', `${P}/delete`, { token: admin, body: '{"donor_id":',
    headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR');
});

test('customers and phone numbers: every plugin with the hooks answers, holding nothing yet', async () => {
  let r = await exportOf('customer_id=42');
  assert.equal(r.status, 200, r.text);
  // One document keyed by plugin (API.md), nothing else at the top.
  assert.deepEqual(r.body, { concierge: {}, calls: {}, notifications: {} });
  r = await exportOf(`phone=${encodeURIComponent('+44 20 7946 0958')}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { concierge: {}, calls: {}, notifications: {} });
  r = await erase({ phone: '+44 (20) 7946-0958' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { deleted: { concierge: 0, calls: 0, notifications: 0 } });
  r = await erase({ customer_id: 42 });
  assert.deepEqual(r.body, { deleted: { concierge: 0, calls: 0, notifications: 0 } });
  // A donor id of 200 characters (400 bytes) is taken whole.
  const long = 'é'.repeat(200);
  r = await exportOf(`donor_id=${encodeURIComponent(long)}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { concierge: { queries: [], messages: [] },
    calls: { requests: [], sessions: [] }, notifications: { inbox: [] } });
  r = await erase({ donor_id: long });
  assert.equal(r.status, 200, r.text);
  // The audit log has the requests, never the number.
  const rows = [...await auditRows('privacy.exported'), ...await auditRows('privacy.erased')];
  assert.ok(rows.some((x) => x.details.subject_kind === 'phone'));
  assert.ok(!JSON.stringify(rows).includes('7946'), 'no phone number in the audit log');
});

test('export, then erase: per-plugin contents and counts, other donors untouched, audited without the person', async () => {
  const d = await donorWithHistory();
  const other = await donorWithHistory();
  await poll(async () => (await held(d.donorId)).inbox > 0 && (await held(other.donorId)).inbox > 0);
  await fanoutsSettled();
  const before = await held(d.donorId);
  const otherBefore = await held(other.donorId);
  assert.deepEqual([before.queries, before.requests, before.sessions], [2, 1, 1], JSON.stringify(before));
  assert.ok(before.messages >= 5, JSON.stringify(before));

  // --- export
  let r = await exportOf(`donor_id=${encodeURIComponent(d.donorId)}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), ['calls', 'concierge', 'notifications']);
  const { concierge, calls, notifications } = r.body;
  assert.deepEqual(concierge.queries.map((q) => q.id), d.queries);
  for (const q of concierge.queries) {
    assert.equal(q.donor_id, d.donorId);
    assert.equal(q.push_token_on_file, false);
  }
  assert.equal(concierge.messages.length, before.messages);
  const contents = concierge.messages.map((m) => m.content);
  for (const want of [`first question of ${d.donorId}`, `second question of ${d.donorId}`,
    `donor says hello (${d.donorId})`, 'agent answers'])
    assert.ok(contents.includes(want), want);
  assert.ok(concierge.messages.some((m) => m.message_type === 'CALL_STARTED'));
  assert.deepEqual(calls.requests.map((x) => [x.id, x.status, x.donor_id]),
    [[d.request.id, 'ACCEPTED', d.donorId]]);
  assert.deepEqual(calls.sessions.map((x) => [x.id, x.room_name, x.status, x.donor_id]),
    [[d.session.id, d.session.room_name, 'STARTED', d.donorId]]);
  assert.equal(notifications.inbox.length, before.inbox);
  assert.ok(notifications.inbox.some((n) => n.event === 'concierge.query.created'));
  for (const n of notifications.inbox) {
    assert.equal(n.data.donor_id, d.donorId);
    assert.ok(d.queries.includes(n.data.query_id), JSON.stringify(n));
  }
  // nothing secret, nothing of the other donor
  for (const t of [...d.tokens, ...other.tokens]) assert.ok(!r.text.includes(t), 'a meeting token was exported');
  assert.doesNotMatch(r.text, /"(admin_token|donor_token|token|donor_fcm_token)"/);
  assert.doesNotMatch(r.text, /"v[12]\./, 'a sealed value was exported');
  assert.ok(!r.text.includes(other.donorId));

  // --- erase
  const roomLive = daily.rooms.has(d.session.room_name);
  assert.ok(roomLive, 'the live session has its room at Daily');
  r = await erase({ donor_id: d.donorId });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { deleted: {
    calls: before.requests + before.sessions,
    notifications: before.inbox,
    concierge: before.queries + before.messages } });
  assert.ok(r.body.deleted.notifications > 0);
  const eraseRid = r.headers.get('x-request-id');
  assert.deepEqual(await held(d.donorId), { queries: 0, messages: 0, requests: 0, sessions: 0, inbox: 0 });
  for (const id of d.queries) {
    assertEnvelope(assert, await srv.request('GET', `/api/v1/donor-queries/${id}`, { token: admin }),
      404, 'NOT_FOUND');
    assert.equal((await sql('SELECT count(*)::int AS n FROM concierge_messages WHERE query_id = $1',
      [id]))[0].n, 0);
  }
  // the live call's room goes at Daily (a durable job, committed with the erase)
  await poll(async () => !daily.rooms.has(d.session.room_name));

  // the other donor keeps everything
  assert.deepEqual(await held(other.donorId), otherBefore);
  r = await exportOf(`donor_id=${encodeURIComponent(other.donorId)}`);
  assert.equal(r.body.concierge.queries.length, 2);
  assert.equal(r.body.calls.sessions.length, 1);

  // a second erase finds nothing; an export is empty
  r = await erase({ donor_id: d.donorId });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { deleted: { calls: 0, notifications: 0, concierge: 0 } });
  r = await exportOf(`donor_id=${encodeURIComponent(d.donorId)}`);
  assert.deepEqual(r.body, { concierge: { queries: [], messages: [] },
    calls: { requests: [], sessions: [] }, notifications: { inbox: [] } });

  // --- the audit records: who and how many, never whom
  const erased = await auditRows('privacy.erased');
  const mine = erased.find((x) => x.request_id === eraseRid);
  assert.ok(mine, 'the erase is audited');
  assert.equal(mine.actor_type, 'user');
  assert.equal(mine.actor_name, 'admin');
  assert.equal(mine.target, 'privacy');
  assert.equal(mine.details.subject_kind, 'donor');
  assert.deepEqual(mine.details.deleted, { calls: before.requests + before.sessions,
    notifications: before.inbox, concierge: before.queries + before.messages });
  const exported = await auditRows('privacy.exported');
  assert.ok(exported.some((x) => x.details.subject_kind === 'donor'
    && x.details.plugins.includes('concierge')));
  const audit = JSON.stringify([...erased, ...exported]);
  assert.ok(!audit.includes(d.donorId) && !audit.includes(other.donorId), 'a donor id in the audit log');
  assert.ok(!srv.output.includes(d.donorId), 'a donor id in the server log');
  r = await srv.request('GET', '/api/v1/audit/verify', { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.ok, true, r.text);
});

test('an erase that fails in one plugin erases nothing, in any plugin, and is not recorded', async () => {
  const d = await donorWithHistory();
  await poll(async () => (await held(d.donorId)).inbox > 0);
  await fanoutsSettled();
  const before = await held(d.donorId);
  // notifications erases after calls and before concierge: the failure
  // comes after a plugin has deleted rows in the transaction.
  await sql(`CREATE FUNCTION privacy_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
  await sql(`CREATE TRIGGER privacy_test_refuse BEFORE DELETE ON notifications_inbox
    FOR EACH ROW EXECUTE FUNCTION privacy_test_refuse()`);
  let r;
  try {
    r = await erase({ donor_id: d.donorId });
  } finally {
    await sql('DROP TRIGGER privacy_test_refuse ON notifications_inbox');
    await sql('DROP FUNCTION privacy_test_refuse()');
  }
  assertEnvelope(assert, r, 500, 'INTERNAL');
  assert.deepEqual(await held(d.donorId), before);
  assert.ok(!(await auditRows('privacy.erased')).some((x) => x.request_id === r.headers.get('x-request-id')));
  assert.ok(srv.logs.some((l) => /plugin notifications could not erase a donor subject/.test(JSON.stringify(l))));

  r = await erase({ donor_id: d.donorId });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.deleted.concierge, before.queries + before.messages);
  assert.deepEqual(await held(d.donorId), { queries: 0, messages: 0, requests: 0, sessions: 0, inbox: 0 });
  r = await srv.request('GET', '/api/v1/audit/verify', { token: admin });
  assert.equal(r.body.ok, true, r.text);
});

test('api->privacy_erase_all: a plugin route erases a person exactly as POST /privacy/delete does', async () => {
  const viaPlugin = (json) => srv.request('POST', '/api/v1/eraser/erase', { token: admin, json });
  const d = await donorWithHistory();
  await poll(async () => (await held(d.donorId)).inbox > 0);
  await fanoutsSettled();
  const before = await held(d.donorId);

  // refused with a transaction of the caller's open, or a bad subject: nothing erased
  assertEnvelope(assert, await viaPlugin({ kind: 'donor', value: d.donorId, in_transaction: true }),
    500, 'INTERNAL');
  assertEnvelope(assert, await viaPlugin({ kind: 'phone', value: 'not a number' }), 500, 'INTERNAL');
  assertEnvelope(assert, await viaPlugin({ kind: 'customer', value: '0' }), 500, 'INTERNAL');
  assert.deepEqual(await held(d.donorId), before);
  assert.ok(srv.logs.some((l) => /privacy_erase_all inside a transaction of its own refused/
    .test(JSON.stringify(l))));

  let r = await viaPlugin({ kind: 'donor', value: d.donorId });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { deleted: { calls: before.requests + before.sessions,
    notifications: before.inbox, concierge: before.queries + before.messages } });
  assert.deepEqual(await held(d.donorId), { queries: 0, messages: 0, requests: 0, sessions: 0, inbox: 0 });
  const rid = r.headers.get('x-request-id');
  const row = (await auditRows('privacy.erased')).find((x) => x.request_id === rid);
  assert.ok(row, 'audited as the request');
  assert.equal(row.actor_name, 'admin');
  assert.deepEqual(row.details.deleted, r.body.deleted);
  assert.ok(!JSON.stringify(row).includes(d.donorId));
  r = await viaPlugin({ kind: 'phone', value: '+44 20 7946 0958' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { deleted: { calls: 0, notifications: 0, concierge: 0 } });
  r = await srv.request('GET', '/api/v1/audit/verify', { token: admin });
  assert.equal(r.body.ok, true, r.text);
});
