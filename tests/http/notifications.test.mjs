// The notifications plugin (API.md "Notifications"), black box over HTTP
// and WebSocket against real PostgreSQL, the fake Google (OAuth token
// endpoint + FCM HTTP v1, tests/fakes/google.mjs), the SMTP sink
// (tests/fakes/smtp.mjs) and the fake Daily (for the call rules): every
// rule reaches exactly the right people on exactly the right channels
// once; preferences; the inbox and its live events; FCM token caching
// (one grant per expiry), unregistered tokens, 429; the donor's device;
// SMTP outages; the dead letter mailed to admins, never about itself.
// Nothing here waits on the clock: every wait polls observable state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, TEST_PLUGINS, testPlugin, assertEnvelope, pgClient, withDb,
  databaseUrl } from './lib/harness.mjs';
import { poll, WAIT_MS } from './lib/helpers.mjs';
import { ready } from './lib/wsclient.mjs';
import { startGoogle, createServiceAccount, fakeDeviceToken, FCM_SCOPE } from '../fakes/google.mjs';
import { startSmtp, parseMessage } from '../fakes/smtp.mjs';
import { startDaily } from '../fakes/daily.mjs';

const NB = '/api/v1/notifications';
const DQ = '/api/v1/donor-queries';
const CALL = '/api/v1/communication/call';
const PASSWORD = 'staff-password-0123456789';
const EVENT_TYPES = ['concierge.query.created', 'concierge.query.transferred', 'concierge.reminder',
  'concierge.message.created', 'calls.request.created', 'telephony.sms.failed', 'telephony.call.failed',
  'telephony.sms.received', 'whatsapp.message.received', 'whatsapp.message.failed', 'jobs.dead'];
const uniq = (p) => `${p}-${randomBytes(4).toString('hex')}`;
const isEvent = (name, pred = () => true) => (f) => f.type === 'event' && f.event === name && pred(f);

let srv, google, smtp, daily, sa, saDir;
const U = {};	// name -> {id, token, username, email, device}

async function sql(server, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), server.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

// A staff user in `role` with an email address and an FCM device token.
async function makeUser(server, adminToken, name, role, { email = true, device = true } = {}) {
  const username = uniq(name);
  const r = await server.request('POST', '/api/v1/users', { token: adminToken,
    json: { username, password: PASSWORD, name, email: email ? `${username}@example.org` : null, role } });
  assert.equal(r.status, 201, r.text);
  const u = { id: r.body.id, name, username, email: email ? `${username}@example.org` : null,
    token: await server.login(username, PASSWORD) };
  if (device) await setDevice(server, u, fakeDeviceToken());
  return u;
}

async function setDevice(server, u, device) {
  const r = await server.request('PUT', '/api/v1/users/me/fcm-token', { token: u.token,
    json: { fcm_token: device } });
  assert.ok(r.status === 200 || r.status === 204, r.text);
  u.device = device;
}

async function setPrefs(u, preferences, server = srv) {
  const r = await server.request('PUT', `${NB}/preferences`, { token: u.token, json: { preferences } });
  assert.equal(r.status, 200, r.text);
  return r.body.preferences;
}

async function openQuery({ donor, fcmToken, server = srv } = {}) {
  const donorId = uniq('donor');
  const json = { donor: donor ?? `Donor ${donorId}`, donor_id: donorId, test: 'blood', content: 'How do I book?' };
  if (fcmToken) json.fcm_token = fcmToken;
  const r = await server.request('POST', DQ, { json });
  assert.equal(r.status, 201, r.text);
  return { q: r.body.query, token: r.body.donor_token, donorId };
}

async function accept(query, u) {
  const r = await srv.request('PATCH', `${DQ}/${query.q.id}/accept`, { token: u.token });
  assert.equal(r.status, 200, r.text);
}

// Every notifications job finished (done or dead): the fan-out of what
// happened so far, and every push and mail it enqueued, ran to the end.
async function settle(server = srv, timeout = WAIT_MS) {
  let rows;
  const ok = await poll(async () => {
    rows = await sql(server, "SELECT kind, status, attempts, last_error FROM jobs WHERE kind LIKE "
      + "'notifications.%' AND status IN ('queued', 'running')");
    return rows.length === 0;
  }, { timeout, interval: 50 });
  assert.ok(ok, `notification jobs still pending: ${JSON.stringify(rows)}`);
}

async function inbox(u, query = '', server = srv) {
  const r = await server.request('GET', `${NB}${query}`, { token: u.token });
  assert.equal(r.status, 200, r.text);
  return r.body;
}

// What each user got for one event about one query: inbox entries,
// pushes delivered to their device, mails to their address.
async function received(u, event, queryId) {
  const items = (await inbox(u, '?limit=200')).data
    .filter((n) => n.event === event && n.data.query_id === queryId);
  const pushes = u.device ? google.delivered(u.device)
    .filter((m) => m.data?.event === event && m.data?.query_id === String(queryId)) : [];
  const mails = u.email ? smtp.messages.filter((m) => m.to.includes(u.email)
    && parseMessage(m.data).header('message-id').length > 0
    && mailAbout(m, event, queryId)) : [];
  return { inbox: items.length, push: pushes.length, email: mails.length, items, pushes, mails };
}

// Our mails say the query in the subject ("... #<id> ...").
function mailAbout(m, event, queryId) {
  const msg = parseMessage(m.data);
  return new RegExp(`#${queryId}\\b`).test(msg.text) && (event !== 'concierge.query.created'
    || msg.subject.startsWith('New donor query'))
    && (event !== 'concierge.query.transferred' || msg.subject.includes('transferred'))
    && (event !== 'concierge.reminder' || msg.subject.includes('is waiting'))
    && (event !== 'concierge.message.created' || msg.subject.startsWith('New message'))
    && (event !== 'calls.request.created' || msg.subject.includes('asks for a call'));
}

async function expectCounts(event, queryId, expected) {
  for (const [name, want] of Object.entries(expected)) {
    const got = await received(U[name], event, queryId);
    assert.deepEqual({ inbox: got.inbox, push: got.push, email: got.email }, want,
      `${name} for ${event} on query ${queryId}`);
  }
}

const ONE = { inbox: 1, push: 1, email: 0 };
const NONE = { inbox: 0, push: 0, email: 0 };
const staffNames = () => ['admin', 'a', 'b', 'c', 'd', 'viewer'];
const agentNames = ['admin', 'a', 'b', 'c', 'd'];

before(async () => {
  sa = createServiceAccount({ projectId: 'sb-notify-test' });
  google = await startGoogle({ serviceAccount: sa });
  saDir = mkdtempSync(join(tmpdir(), 'sb-notify-'));
  const saPath = sa.writeTo(saDir);
  smtp = await startSmtp();
  daily = await startDaily();
  srv = await startServer({
    host: { breaker_failures: '10000', jobs_poll_ms: '50' },
    plugins: { ...TEST_PLUGINS,
      concierge: { create_rate_ip: '0', create_rate_donor: '0' },
      calls: { daily_api_url: daily.url, daily_api_key: daily.apiKey,
        webhook_secret: randomBytes(32).toString('base64') },
      notifications: { fcm_service_account: saPath, fcm_url: google.fcmUrl, smtp_url: smtp.url,
        smtp_starttls: 'no', mail_from: 'switchboard@example.org' } },
  });
  const adminToken = await srv.login();
  const me = await srv.request('GET', '/api/v1/users/me', { token: adminToken });
  U.admin = { id: me.body.id, token: adminToken, email: null };
  await setDevice(srv, U.admin, fakeDeviceToken());
  for (const n of ['a', 'b', 'c', 'd']) U[n] = await makeUser(srv, adminToken, `agent-${n}`, 'AGENT');
  // Staff who do not handle queries: never an agent recipient.
  const role = await srv.request('POST', '/api/v1/roles', { token: adminToken,
    json: { name: 'VIEWER', permissions: ['system.read'] } });
  assert.equal(role.status, 201, role.text);
  U.viewer = await makeUser(srv, adminToken, 'viewer', 'VIEWER');
});

after(async () => {
  await srv?.stop();
  await google?.close();
  await smtp?.close();
  await daily?.close();
  if (saDir) rmSync(saDir, { recursive: true, force: true });
});

test('FCM: many pushes, one token grant with the right assertion; past expiry exactly one more', async () => {
  assert.equal(google.tokenRequests.length, 0);
  const queries = [await openQuery(), await openQuery(), await openQuery()];
  await settle();
  // Five agents with devices x three queries: fifteen messages, one grant.
  for (const query of queries) {
    for (const n of agentNames) {
      assert.equal((await received(U[n], 'concierge.query.created', query.q.id)).push, 1, n);
    }
  }
  assert.equal(google.tokenRequests.length, 1, 'one grant for all sends');
  const grant = google.tokenRequests[0];
  assert.equal(grant.status, 200, JSON.stringify(grant.response));
  assert.match(grant.contentType, /^application\/x-www-form-urlencoded/);
  assert.equal(grant.form.grant_type, 'urn:ietf:params:oauth:grant-type:jwt-bearer');
  assert.deepEqual(grant.header, { alg: 'RS256', typ: 'JWT', kid: sa.json.private_key_id });
  assert.equal(grant.claims.iss, sa.json.client_email);
  assert.equal(grant.claims.scope, FCM_SCOPE);
  assert.equal(grant.claims.aud, google.tokenUri);
  assert.equal(grant.claims.exp - grant.claims.iat, 3600);
  const sends = google.sends.filter((s) => s.status === 200);
  assert.ok(sends.length >= 15);
  assert.ok(sends.every((s) => s.accessToken === grant.accessToken), 'every send used the one token');
  // v1 messages only: token, notification, string data.
  for (const s of sends) {
    assert.deepEqual(Object.keys(s.body), ['message']);
    assert.deepEqual(Object.keys(s.body.message).sort(), ['data', 'notification', 'token']);
    assert.ok(Object.values(s.body.message.data).every((v) => typeof v === 'string'));
  }
  // The stored token is sealed, never plaintext.
  const [row] = await sql(srv, 'SELECT access_token, account FROM notifications_fcm_auth');
  assert.match(row.access_token, /^v2\.[A-Za-z0-9_-]{8}\./);
  assert.ok(!row.access_token.includes(grant.accessToken));
  assert.equal(row.account, sa.json.client_email);

  // Google's clock passes the hour: FCM answers 401 to the cached token;
  // the pushes get exactly one new grant between them and go out once.
  google.advanceTime(3600);
  const query = await openQuery();
  await settle();
  assert.equal(google.tokenRequests.length, 2, 'one more grant after expiry');
  assert.equal(google.tokenRequests[1].status, 200);
  for (const n of agentNames) {
    assert.equal((await received(U[n], 'concierge.query.created', query.q.id)).push, 1, n);
  }
  const jobs = await sql(srv, "SELECT status, attempts FROM jobs WHERE kind = 'notifications.push' "
    + 'AND idempotency_key LIKE $1', ['push:%']);
  assert.ok(jobs.every((j) => j.status === 'done'), JSON.stringify(jobs));
  assert.ok(google.sends.some((s) => s.status === 401), 'the expired token was refused');
});

test('routes: staff only, as API.md says; /readyz shows both channels configured', async () => {
  const r = await srv.request('GET', '/api/v1/plugins', { token: U.admin.token });
  const p = r.body.data.find((x) => x.name === 'notifications');
  assert.equal(p?.state, 'ready', JSON.stringify(p));
  assert.equal(p.id, 'io.switchboard.notifications');
  const got = Object.fromEntries(p.routes.map((x) => [`${x.method} ${x.path}`,
    x.access === 'permission' ? x.permission : x.access]));
  assert.deepEqual(got, {
    [`GET ${NB}`]: 'staff',
    [`POST ${NB}/{id}/read`]: 'staff',
    [`POST ${NB}/read-all`]: 'staff',
    [`GET ${NB}/preferences`]: 'staff',
    [`PUT ${NB}/preferences`]: 'staff',
  });
  const events = (p.events ?? []).map((e) => e.name ?? e);
  for (const e of ['notifications.created', 'notifications.read']) assert.ok(events.includes(e), e);
  const doc = (await srv.request('GET', '/api/v1/openapi.json')).body;
  assert.ok(doc.paths[NB].get && doc.paths[`${NB}/{id}/read`].post && doc.paths[`${NB}/read-all`].post);
  assert.ok(doc.paths[`${NB}/preferences`].get && doc.paths[`${NB}/preferences`].put.requestBody);

  const ready_ = await srv.request('GET', '/readyz');
  assert.equal(ready_.status, 200, ready_.text);
  const detail = ready_.body.checks['plugin:notifications'];
  assert.equal(detail.push, 'configured');
  assert.equal(detail.email, 'configured');

  // Anonymous 401; donors and API keys 403, on every route.
  const query = await openQuery();
  const key = await srv.request('POST', '/api/v1/api-keys', { token: U.admin.token,
    json: { name: uniq('k'), scopes: ['system.read'] } });
  assert.equal(key.status, 201, key.text);
  for (const [method, path, json] of [['GET', NB], ['POST', `${NB}/1/read`], ['POST', `${NB}/read-all`],
    ['GET', `${NB}/preferences`], ['PUT', `${NB}/preferences`, { preferences: {} }]]) {
    assertEnvelope(assert, await srv.request(method, path, { json }), 401, 'UNAUTHENTICATED');
    assertEnvelope(assert, await srv.request(method, path, { json, token: query.token }), 403, 'FORBIDDEN');
    assertEnvelope(assert, await srv.request(method, path, { json,
      headers: { 'x-api-key': key.body.key } }), 403, 'FORBIDDEN');
  }
  await settle();
});

test('preferences: defaults, partial PUT, validation 422s that change nothing', async () => {
  const u = U.viewer;
  let r = await srv.request('GET', `${NB}/preferences`, { token: u.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body.preferences).sort(), [...EVENT_TYPES].sort());
  for (const e of EVENT_TYPES.filter((x) => x !== 'jobs.dead')) {
    assert.deepEqual(r.body.preferences[e], { inbox: true, push: true, email: false }, e);
  }
  assert.deepEqual(r.body.preferences['jobs.dead'], { inbox: false, push: false, email: true });
  const defaults = r.body.preferences;

  // Partial: one channel of one event; the rest stays as it was.
  const after = await setPrefs(u, { 'concierge.reminder': { push: false, email: true } });
  assert.deepEqual(after, { ...defaults, 'concierge.reminder': { inbox: true, push: false, email: true } });
  r = await srv.request('GET', `${NB}/preferences`, { token: u.token });
  assert.deepEqual(r.body.preferences, after);
  // Per user: another user still has the defaults.
  r = await srv.request('GET', `${NB}/preferences`, { token: U.d.token });
  assert.deepEqual(r.body.preferences, defaults);

  const bad = async (preferences, fields) => {
    const res = await srv.request('PUT', `${NB}/preferences`, { token: u.token, json: { preferences } });
    const env = assertEnvelope(assert, res, 422, 'VALIDATION_ERROR');
    assert.deepEqual(env.errors.map((e) => e.field).sort(), fields.sort(), JSON.stringify(env.errors));
  };
  await bad({ 'no.such.event': { push: true } }, ['preferences.no.such.event']);
  await bad({ 'concierge.reminder': { sms: true } }, ['preferences.concierge.reminder.sms']);
  await bad({ 'concierge.reminder': { push: 'yes' } }, ['preferences.concierge.reminder.push']);
  await bad({ 'concierge.reminder': { push: 1, inbox: null } },
    ['preferences.concierge.reminder.push', 'preferences.concierge.reminder.inbox']);
  await bad({ 'concierge.reminder': true }, ['preferences.concierge.reminder']);
  await bad({ 'jobs.dead': { push: true } }, ['preferences.jobs.dead.push']);
  // Everything or nothing: the valid part of a refused body is not kept.
  await bad({ 'concierge.reminder': { push: true }, bogus: {} }, ['preferences.bogus']);
  // The body itself: the host's validation and parser.
  let res = await srv.request('PUT', `${NB}/preferences`, { token: u.token, json: {} });
  assertEnvelope(assert, res, 422, 'VALIDATION_ERROR');
  res = await srv.request('PUT', `${NB}/preferences`, { token: u.token, json: { preferences: [] } });
  assertEnvelope(assert, res, 422, 'VALIDATION_ERROR');
  res = await srv.request('PUT', `${NB}/preferences`, { token: u.token, body: '{"preferences":',
    headers: { 'content-type': 'application/json' } });
  assertEnvelope(assert, res, 400, 'VALIDATION_ERROR');
  r = await srv.request('GET', `${NB}/preferences`, { token: u.token });
  assert.deepEqual(r.body.preferences, after, 'refused PUTs changed nothing');

  // Turning off what is off, and jobs.dead's email, are fine.
  const off = await setPrefs(u, { 'jobs.dead': { push: false, email: false }, 'concierge.reminder': {} });
  assert.deepEqual(off['jobs.dead'], { inbox: false, push: false, email: false });
  await setPrefs(u, { 'jobs.dead': { email: true }, 'concierge.reminder': { push: true, email: false } });
  r = await srv.request('GET', `${NB}/preferences`, { token: u.token });
  assert.deepEqual(r.body.preferences, defaults);
});

test('concierge.query.created: every agent once on inbox and push, email by preference; no one else', async () => {
  await setPrefs(U.c, { 'concierge.query.created': { push: false } });
  await setPrefs(U.b, { 'concierge.query.created': { email: true } });
  await setPrefs(U.viewer, { 'concierge.query.created': { email: true } });	// not an agent
  const query = await openQuery();
  await settle();
  await expectCounts('concierge.query.created', query.q.id, {
    admin: ONE, a: ONE, b: { inbox: 1, push: 1, email: 1 }, c: { inbox: 1, push: 0, email: 0 },
    d: ONE, viewer: NONE });
  const item = (await received(U.a, 'concierge.query.created', query.q.id)).items[0];
  assert.deepEqual(Object.keys(item).sort(), ['body', 'created_at', 'data', 'event', 'id', 'read',
    'read_at', 'title']);
  assert.equal(item.read, false);
  assert.equal(item.read_at, null);
  assert.equal(item.title, 'New donor query');
  assert.ok(item.body.includes(query.q.donor));
  assert.equal(item.data.query_id, query.q.id);
  const push = (await received(U.a, 'concierge.query.created', query.q.id)).pushes[0];
  assert.equal(push.notification.title, 'New donor query');
  assert.equal(push.data.notification_id, String(item.id));
  // The fan-out ran once, and one job per (recipient, channel).
  const [{ event_id: eventId }] = await sql(srv, 'SELECT event_id FROM notifications_inbox WHERE id = $1',
    [item.id]);
  const jobs = await sql(srv, "SELECT kind, idempotency_key FROM jobs WHERE kind LIKE 'notifications.%' "
    + "AND idempotency_key LIKE '%' || $1 || '%'", [eventId]);
  assert.equal(jobs.filter((j) => j.kind === 'notifications.fanout').length, 1);
  assert.equal(jobs.filter((j) => j.kind === 'notifications.push').length, 4);
  assert.equal(jobs.filter((j) => j.kind === 'notifications.email').length, 1);
  await setPrefs(U.c, { 'concierge.query.created': { push: true } });
  await setPrefs(U.b, { 'concierge.query.created': { email: false } });
});

test('a fan-out that runs again adds nothing and sends nothing twice', async () => {
  await setPrefs(U.b, { 'concierge.query.created': { email: true } });
  const query = await openQuery();
  await settle();
  const before = { sends: google.sends.length, mails: smtp.messages.length };
  const want = { admin: ONE, a: ONE, b: { inbox: 1, push: 1, email: 1 }, c: ONE, d: ONE, viewer: NONE };
  await expectCounts('concierge.query.created', query.q.id, want);
  // As if its worker had died after the work but before "done" was
  // recorded: the same job runs a second time.
  const [{ event_id: eventId }] = await sql(srv, "SELECT event_id FROM notifications_inbox WHERE "
    + "event = 'concierge.query.created' AND (data->>'query_id')::bigint = $1 LIMIT 1", [query.q.id]);
  const [job] = await sql(srv, "UPDATE jobs SET status = 'queued', run_at = now(), finished_at = NULL "
    + "WHERE kind = 'notifications.fanout' AND idempotency_key = $1 RETURNING id, runs",
  ['fanout:' + eventId]);
  assert.ok(job, 'the fan-out job');
  assert.ok(await poll(async () => {
    const [j] = await sql(srv, 'SELECT status, runs FROM jobs WHERE id = $1', [job.id]);
    return j.status === 'done' && j.runs === job.runs + 1;
  }, { interval: 50 }), 'the fan-out ran again');
  await settle();
  assert.deepEqual((await sql(srv, 'SELECT result FROM jobs WHERE id = $1', [job.id]))[0].result,
    { rules: 1, inbox: 0, push: 5, email: 1 }, 'the same jobs, by their keys');
  await expectCounts('concierge.query.created', query.q.id, want);
  assert.equal(google.sends.length, before.sends);
  assert.equal(smtp.messages.length, before.mails);
  await setPrefs(U.b, { 'concierge.query.created': { email: false } });
});

test('concierge.query.transferred: only the target', async () => {
  const query = await openQuery();
  await accept(query, U.a);
  await setPrefs(U.b, { 'concierge.query.transferred': { email: true } });
  const r = await srv.request('PATCH', `${DQ}/${query.q.id}/transfer`, { token: U.a.token,
    json: { to_user_id: U.b.id, note: 'yours now' } });
  assert.equal(r.status, 200, r.text);
  await settle();
  await expectCounts('concierge.query.transferred', query.q.id, {
    admin: NONE, a: NONE, b: { inbox: 1, push: 1, email: 1 }, c: NONE, d: NONE, viewer: NONE });
  const mail = parseMessage((await received(U.b, 'concierge.query.transferred', query.q.id)).mails[0].data);
  assert.ok(mail.text.includes('yours now'));
  // The SYSTEM messages of accept and transfer notify nobody.
  for (const n of staffNames()) {
    assert.equal((await received(U[n], 'concierge.message.created', query.q.id)).inbox, 0, n);
  }
  await setPrefs(U.b, { 'concierge.query.transferred': { email: false } });
});

test('concierge.reminder: the assignee, or every agent while unassigned', async () => {
  const open = await openQuery();
  let r = await srv.request('POST', `${DQ}/${open.q.id}/send-reminder`, { token: U.c.token });
  assert.equal(r.status, 200, r.text);
  const mine = await openQuery();
  await accept(mine, U.a);
  r = await srv.request('POST', `${DQ}/${mine.q.id}/send-reminder`, { token: U.c.token });
  assert.equal(r.status, 200, r.text);
  await settle();
  await expectCounts('concierge.reminder', open.q.id, {
    admin: ONE, a: ONE, b: ONE, c: ONE, d: ONE, viewer: NONE });
  await expectCounts('concierge.reminder', mine.q.id, {
    admin: NONE, a: ONE, b: NONE, c: NONE, d: NONE, viewer: NONE });
  const item = (await received(U.a, 'concierge.reminder', mine.q.id)).items[0];
  assert.match(item.body, /MANUAL/);
});

test("a donor's message: its query's assignee only; nobody while unassigned", async () => {
  const mine = await openQuery();
  await accept(mine, U.a);
  const lone = await openQuery();
  for (const query of [mine, lone]) {
    const r = await srv.request('POST', `${DQ}/${query.q.id}/messages`, { token: query.token,
      json: { content: 'Is anyone there? <b>hello</b>' } });
    assert.equal(r.status, 201, r.text);
  }
  await settle();
  await expectCounts('concierge.message.created', mine.q.id, {
    admin: NONE, a: ONE, b: NONE, c: NONE, d: NONE, viewer: NONE });
  await expectCounts('concierge.message.created', lone.q.id, {
    admin: NONE, a: NONE, b: NONE, c: NONE, d: NONE, viewer: NONE });
  // Who had the query when the message was written decides, not who has
  // it when the fan-out runs: the opening message of `mine` (sent while
  // unassigned) fanned out again now that a holds it still reaches nobody.
  // (A fan-out that a busy machine ran after the accept told a.)
  const [job] = await sql(srv, "UPDATE jobs SET status = 'queued', run_at = now(), finished_at = NULL "
    + "WHERE kind = 'notifications.fanout' AND payload->>'name' = 'concierge.message.created' "
    + "AND payload->'data'->>'message_type' = 'QUERY' AND (payload->'data'->>'query_id')::bigint = $1 "
    + 'RETURNING id, runs', [mine.q.id]);
  assert.ok(job, 'the fan-out of the opening message');
  assert.ok(await poll(async () => {
    const [j] = await sql(srv, 'SELECT status, runs FROM jobs WHERE id = $1', [job.id]);
    return j.status === 'done' && j.runs === job.runs + 1;
  }, { interval: 50 }), 'the fan-out ran again');
  await settle();
  await expectCounts('concierge.message.created', mine.q.id, {
    admin: NONE, a: ONE, b: NONE, c: NONE, d: NONE, viewer: NONE });
  const got = await received(U.a, 'concierge.message.created', mine.q.id);
  assert.equal(got.items[0].body, 'Is anyone there? <b>hello</b>');
  assert.equal(got.items[0].data.content, undefined, 'no message text in data');
  assert.equal(got.pushes[0].notification.body, 'Is anyone there? <b>hello</b>');
});

test("agent replies reach the donor's device once; the donor's own messages do not", async () => {
  const device = fakeDeviceToken();
  const query = await openQuery({ fcmToken: device });
  const silent = await openQuery();	// no device given
  await accept(query, U.a);
  await accept(silent, U.a);
  for (const q of [query, silent]) {
    const r = await srv.request('POST', `${DQ}/${q.q.id}/messages`, { token: U.a.token,
      json: { content: 'Hello, how can I help?' } });
    assert.equal(r.status, 201, r.text);
  }
  const r = await srv.request('POST', `${DQ}/${query.q.id}/messages`, { token: query.token,
    json: { content: 'I have a question' } });
  assert.equal(r.status, 201, r.text);
  await settle();
  const pushes = google.delivered(device);
  assert.equal(pushes.length, 1, JSON.stringify(pushes));
  assert.equal(pushes[0].data.event, 'concierge.message.created');
  assert.equal(pushes[0].data.query_id, String(query.q.id));
  assert.equal(pushes[0].notification.body, 'Hello, how can I help?');
  // An agent reply is no staff notification; the donor's message is the assignee's.
  await expectCounts('concierge.message.created', query.q.id, {
    admin: NONE, b: NONE, c: NONE, d: NONE, viewer: NONE });
  assert.equal((await received(U.a, 'concierge.message.created', query.q.id)).inbox, 1);
  // No device, no push job at all.
  const jobs = await sql(srv, "SELECT count(*)::int AS n FROM jobs WHERE kind = 'notifications.push' "
    + "AND idempotency_key LIKE '%:query-' || $1", [String(silent.q.id)]);
  assert.equal(jobs[0].n, 0);
  // Never returned by the API.
  const q = await srv.request('GET', `${DQ}/${query.q.id}`, { token: U.a.token });
  assert.ok(!q.text.includes(device));
});

test("calls: a request reaches the assignee (or every agent); an accepted one the donor's device", async () => {
  const device = fakeDeviceToken();
  const lone = await openQuery({ fcmToken: device });
  const mine = await openQuery();
  await accept(mine, U.b);
  const requests = {};
  for (const query of [lone, mine]) {
    const r = await srv.request('POST', `${CALL}/${query.q.id}/request`, { token: query.token,
      json: { mode: 'AUDIO' } });
    assert.equal(r.status, 201, r.text);
    requests[query.q.id] = r.body;
  }
  await settle();
  await expectCounts('calls.request.created', lone.q.id, {
    admin: ONE, a: ONE, b: ONE, c: ONE, d: ONE, viewer: NONE });
  await expectCounts('calls.request.created', mine.q.id, {
    admin: NONE, a: NONE, b: ONE, c: NONE, d: NONE, viewer: NONE });
  assert.match((await received(U.b, 'calls.request.created', mine.q.id)).items[0].body, /AUDIO call/);

  await accept(lone, U.a);
  const r = await srv.request('POST', `${CALL}/${lone.q.id}/accept-request/${requests[lone.q.id].id}`,
    { token: U.a.token });
  assert.equal(r.status, 201, r.text);
  await settle();
  const pushes = google.delivered(device).filter((m) => m.data.event === 'calls.request.accepted');
  assert.equal(pushes.length, 1);
  assert.equal(pushes[0].data.query_id, String(lone.q.id));
  assert.equal(google.delivered(device).length, 1, 'nothing else to the donor');
});

test('inbox: newest first, unread filter, cursor paging, read, read-all, 404s, live events', async () => {
  const u = U.d;
  await srv.request('POST', `${NB}/read-all`, { token: u.token });
  const ws = await ready(srv, u.token);
  try {
    assert.equal((await ws.subscribe(`user:${u.id}`)).type, 'subscribed');
    // One at a time, so that the entries' order is the queries' order.
    const queries = [];
    for (let i = 0; i < 3; i++) {
      queries.push(await openQuery());
      await settle();
    }
    const live = [];
    for (const q of queries) {
      live.push(await ws.next(isEvent('notifications.created', (f) => f.room === `user:${u.id}`
        && f.data.data.query_id === q.q.id), 10000, `live entry for query ${q.q.id}`));
    }
    assert.equal(ws.events(`user:${u.id}`).filter((f) => f.event === 'notifications.created').length, 3);

    let body = await inbox(u, '?unread=true');
    assert.deepEqual(body.data.map((n) => n.data.query_id), queries.map((q) => q.q.id).reverse());
    assert.deepEqual(live.map((f) => f.data.id), body.data.map((n) => n.id).reverse());
    assert.deepEqual(live[0].data, body.data[2], 'the live entry is the listed one');
    assert.equal(body.next_cursor, null);

    // Pages of two, newest first.
    const page1 = await inbox(u, '?unread=true&limit=2');
    assert.equal(page1.data.length, 2);
    assert.equal(typeof page1.next_cursor, 'string');
    const page2 = await inbox(u, `?unread=true&limit=2&cursor=${encodeURIComponent(page1.next_cursor)}`);
    assert.deepEqual([...page1.data, ...page2.data].map((n) => n.id), body.data.map((n) => n.id));
    assert.equal(page2.next_cursor, null);
    const all = (await inbox(u)).data.map((n) => n.id);
    assert.deepEqual(all, [...all].sort((x, y) => y - x), 'newest first');

    // Read one.
    const target = body.data[1];
    let r = await srv.request('POST', `${NB}/${target.id}/read`, { token: u.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.id, target.id);
    assert.equal(r.body.read, true);
    assert.equal(typeof r.body.read_at, 'string');
    const readAt = r.body.read_at;
    const ev = await ws.next(isEvent('notifications.read'), 10000, 'notifications.read');
    assert.deepEqual(ev.data.ids, [target.id]);
    r = await srv.request('POST', `${NB}/${target.id}/read`, { token: u.token });
    assert.equal(r.status, 200);
    assert.equal(r.body.read_at, readAt, 'reading again keeps the first time');
    body = await inbox(u, '?unread=true');
    assert.equal(body.data.length, 2);
    assert.ok(!body.data.some((n) => n.id === target.id));
    const read = await inbox(u, '?unread=false');
    assert.ok(read.data.some((n) => n.id === target.id));
    assert.ok(read.data.every((n) => n.read === true));

    // Someone else's, unknown, malformed: 404.
    assertEnvelope(assert, await srv.request('POST', `${NB}/${target.id}/read`, { token: U.a.token }),
      404, 'NOT_FOUND');
    assertEnvelope(assert, await srv.request('POST', `${NB}/999999999/read`, { token: u.token }),
      404, 'NOT_FOUND');
    assertEnvelope(assert, await srv.request('POST', `${NB}/abc/read`, { token: u.token }), 404, 'NOT_FOUND');
    assert.ok(!(await inbox(U.a)).data.some((n) => n.id === target.id), "not in another user's inbox");

    // Read all.
    r = await srv.request('POST', `${NB}/read-all`, { token: u.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { updated: 2 });
    const evAll = await ws.next(isEvent('notifications.read', (f) => f.data.all === true), 10000, 'read all');
    assert.equal(evAll.data.updated, 2);
    assert.deepEqual((await inbox(u, '?unread=true')).data, []);
    r = await srv.request('POST', `${NB}/read-all`, { token: u.token });
    assert.deepEqual(r.body, { updated: 0 });

    // Query validation.
    for (const [q, field] of [['?unread=yes', 'unread'], ['?limit=0', 'limit'], ['?limit=201', 'limit'],
      ['?limit=x', 'limit'], ['?cursor=abc', 'cursor'], ['?cursor=-1', 'cursor']]) {
      const res = await srv.request('GET', `${NB}${q}`, { token: u.token });
      const env = assertEnvelope(assert, res, 400, 'VALIDATION_ERROR');
      assert.equal(env.errors[0].field, field, q);
    }
  } finally { ws.close(); }
  // Nobody else hears of user:{d}.
  const other = await ready(srv, U.a.token);
  try {
    const s = await other.subscribe(`user:${U.d.id}`);
    assert.equal(s.type, 'error');
  } finally { other.close(); }
});

test('FCM: an unregistered or invalid device token is removed and the push is done, not retried', async () => {
  // A staff device, unregistered.
  const query = await openQuery();
  await accept(query, U.c);
  await settle();
  google.markUnregistered(U.c.device);
  const r = await srv.request('POST', `${DQ}/${query.q.id}/send-reminder`, { token: U.a.token });
  assert.equal(r.status, 200, r.text);
  await settle();
  const [job] = await sql(srv, "SELECT j.status, j.attempts, j.result FROM jobs j JOIN notifications_inbox n "
    + "ON j.idempotency_key = 'push:' || n.event_id || ':' || n.user_id WHERE n.user_id = $1 "
    + "AND n.event = 'concierge.reminder' AND (n.data->>'query_id')::bigint = $2", [U.c.id, query.q.id]);
  assert.equal(job.status, 'done');
  assert.equal(job.attempts, 1);
  assert.deepEqual(job.result, { token_removed: true, reason: 'UNREGISTERED' });
  const [user] = await sql(srv, 'SELECT fcm_token FROM users WHERE id = $1', [U.c.id]);
  assert.equal(user.fcm_token, null);

  // A donor device FCM calls invalid (400 INVALID_ARGUMENT on message.token).
  const device = fakeDeviceToken();
  google.markInvalid(device);
  const dq = await openQuery({ fcmToken: device });
  await accept(dq, U.a);
  const m = await srv.request('POST', `${DQ}/${dq.q.id}/messages`, { token: U.a.token,
    json: { content: 'Your appointment is confirmed' } });
  assert.equal(m.status, 201, m.text);
  await settle();
  const [djob] = await sql(srv, "SELECT status, attempts, result FROM jobs WHERE kind = 'notifications.push' "
    + "AND idempotency_key LIKE '%:query-' || $1", [String(dq.q.id)]);
  assert.equal(djob.status, 'done');
  assert.equal(djob.attempts, 1);
  assert.equal(djob.result.token_removed, true);
  const [row] = await sql(srv, 'SELECT donor_fcm_token FROM concierge_queries WHERE id = $1', [dq.q.id]);
  assert.equal(row.donor_fcm_token, null);
  // And no further push is even tried for either.
  const sendsBefore = google.sends.length;
  await srv.request('POST', `${DQ}/${dq.q.id}/messages`, { token: U.a.token, json: { content: 'Still there?' } });
  await srv.request('POST', `${DQ}/${query.q.id}/send-reminder`, { token: U.a.token });
  await settle();
  assert.equal(google.sends.length, sendsBefore);
  await setDevice(srv, U.c, fakeDeviceToken());
});

// The donor's token lives with concierge's queries; notifications reads
// and clears it only through concierge.thread (version 2: donor_device,
// donor_device_forget), which clears it on every query that holds it.
test("FCM: a donor's unregistered token is cleared on every query holding it, through concierge.thread", async () => {
  const r = await srv.request('GET', '/api/v1/plugins', { token: U.admin.token });
  assert.equal(r.status, 200, r.text);
  const by = Object.fromEntries(r.body.data.map((p) => [p.name, p]));
  assert.equal(by.notifications?.state, 'ready', JSON.stringify(by.notifications));
  assert.deepEqual(by.notifications.services.imports, [{ name: 'concierge.thread', min_version: 2 }]);
  assert.deepEqual(by.concierge.services.exports, [{ name: 'concierge.thread', version: 2 }]);

  const device = fakeDeviceToken();
  const first = await openQuery({ fcmToken: device });
  const second = await openQuery({ fcmToken: device });	// the same app, a second query
  await accept(first, U.a);
  await accept(second, U.a);
  await settle();
  google.markUnregistered(device);
  const m = await srv.request('POST', `${DQ}/${first.q.id}/messages`, { token: U.a.token,
    json: { content: 'We have your results' } });
  assert.equal(m.status, 201, m.text);
  await settle();
  const [job] = await sql(srv, "SELECT status, attempts, result FROM jobs WHERE kind = 'notifications.push' "
    + "AND idempotency_key LIKE '%:query-' || $1", [String(first.q.id)]);
  assert.equal(job.status, 'done');
  assert.equal(job.attempts, 1);
  assert.deepEqual(job.result, { token_removed: true, reason: 'UNREGISTERED' });
  const rows = await sql(srv, 'SELECT id, donor_fcm_token FROM concierge_queries WHERE id = ANY($1::bigint[]) '
    + 'ORDER BY id', [[first.q.id, second.q.id]]);
  assert.deepEqual(rows.map((x) => x.donor_fcm_token), [null, null]);
  // A reply on the other query: no device on file, so no push job at all.
  const tried = google.sends.filter((s) => s.message?.token === device).length;
  assert.equal(tried, 1, 'one send, answered UNREGISTERED');
  const m2 = await srv.request('POST', `${DQ}/${second.q.id}/messages`, { token: U.a.token,
    json: { content: 'And on this one too' } });
  assert.equal(m2.status, 201, m2.text);
  await settle();
  const jobs = await sql(srv, "SELECT count(*)::int AS n FROM jobs WHERE kind = 'notifications.push' "
    + "AND idempotency_key LIKE '%:query-' || $1", [String(second.q.id)]);
  assert.equal(jobs[0].n, 0);
  assert.equal(google.sends.filter((s) => s.message?.token === device).length, tried);
});

test('FCM: 429 with Retry-After, then success: delivered once, on the second attempt', async () => {
  const query = await openQuery();
  await accept(query, U.d);
  await settle();
  google.fail([{ quotaExceeded: true, retryAfter: 1 }]);
  const r = await srv.request('POST', `${DQ}/${query.q.id}/send-reminder`, { token: U.a.token });
  assert.equal(r.status, 200, r.text);
  await settle();
  assert.equal((await received(U.d, 'concierge.reminder', query.q.id)).push, 1);
  const [job] = await sql(srv, "SELECT status, attempts, last_error FROM jobs WHERE kind = "
    + "'notifications.push' AND idempotency_key = (SELECT 'push:' || event_id || ':' || user_id FROM "
    + "notifications_inbox WHERE user_id = $1 AND event = 'concierge.reminder' AND "
    + "(data->>'query_id')::bigint = $2)", [U.d.id, query.q.id]);
  assert.equal(job.status, 'done');
  assert.equal(job.attempts, 2);
  assert.match(job.last_error, /429/);
  const tries = google.sends.filter((s) => s.message?.token === U.d.device
    && s.message?.data?.event === 'concierge.reminder' && s.message.data.query_id === String(query.q.id));
  assert.deepEqual(tries.map((s) => s.status), [429, 200]);
});

test('email: SMTP down, retried, delivered exactly once when it is back; multipart with escaped HTML', async () => {
  const u = U.b;
  await setPrefs(u, { 'concierge.query.transferred': { email: true } });
  const donor = '<script>alert("x")</script> & O\'Brien, Zoë';
  const query = await openQuery({ donor });
  await accept(query, U.a);
  await smtp.down();
  let r;
  try {
    r = await srv.request('PATCH', `${DQ}/${query.q.id}/transfer`, { token: U.a.token,
      json: { to_user_id: u.id } });
    assert.equal(r.status, 200, r.text);
    const job = async () => (await sql(srv, "SELECT status, attempts, last_error FROM jobs WHERE kind = "
      + "'notifications.email' AND idempotency_key LIKE 'email:%:' || $1 ORDER BY id DESC LIMIT 1",
    [String(u.id)]))[0];
    const failing = await poll(async () => { const j = await job(); return j?.attempts >= 2 && j; },
      { interval: 100 });
    assert.ok(failing, 'the mail was retried');
    assert.ok(['queued', 'running'].includes(failing.status), failing.status);
    assert.match(failing.last_error, /SMTP/);
    assert.equal((await received(u, 'concierge.query.transferred', query.q.id)).email, 0);
  } finally { await smtp.up(); }
  await settle(srv);
  const got = await received(u, 'concierge.query.transferred', query.q.id);
  assert.equal(got.email, 1, 'delivered exactly once');
  const [job] = await sql(srv, "SELECT status, attempts FROM jobs WHERE kind = 'notifications.email' "
    + "AND idempotency_key LIKE 'email:%:' || $1 ORDER BY id DESC LIMIT 1", [String(u.id)]);
  assert.equal(job.status, 'done');
  assert.ok(job.attempts >= 3);

  const raw = got.mails[0].data.toString();
  assert.ok(!/[^\r]\n/.test(raw), 'CRLF line ends only');
  const m = parseMessage(raw);
  assert.equal(m.contentType, 'multipart/alternative');
  assert.equal(m.parts.length, 2);
  assert.deepEqual(m.parts.map((p) => p.contentType), ['text/plain', 'text/html']);
  for (const p of m.parts) assert.equal(p.params.charset.toLowerCase(), 'utf-8');
  for (const h of ['date', 'from', 'to', 'subject', 'message-id', 'mime-version']) {
    assert.equal(m.header(h).length, 1, h);
  }
  assert.equal(m.from, 'switchboard@example.org');
  assert.equal(m.to, u.email);
  assert.equal(got.mails[0].from, 'switchboard@example.org');
  assert.deepEqual(got.mails[0].to, [u.email]);
  assert.match(m.header('message-id')[0], /^<[^<>@\s]+@example\.org>$/);
  assert.ok(m.subject.includes(donor), m.subject);
  assert.ok(m.text.includes(donor));
  assert.ok(m.html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; O&#39;Brien, Zoë'), m.html);
  assert.match(m.header('subject')[0], /^=\?UTF-8\?B\?/, 'a non-ASCII subject is encoded');
  assert.ok(!m.html.includes('<script>'));
  assert.ok(m.html.includes(`/queries/${query.q.id}`));
  await setPrefs(u, { 'concierge.query.transferred': { email: false } });
});

test('email: a donor name with CR/LF cannot add a header', async () => {
  const u = U.a;
  await setPrefs(u, { 'concierge.query.created': { email: true } });
  const donor = 'Eve\r\nBcc: thief@example.org\r\nX-Evil: 1';
  const r = await srv.request('POST', DQ, { json: { donor, donor_id: uniq('eve'), content: 'hi' } });
  assert.equal(r.status, 201, r.text);
  await settle();
  const got = await received(u, 'concierge.query.created', r.body.query.id);
  assert.equal(got.email, 1);
  assert.deepEqual(got.mails[0].to, [u.email], 'the envelope has the one recipient');
  const m = parseMessage(got.mails[0].data);
  assert.equal(m.header('bcc').length, 0);
  assert.equal(m.header('x-evil').length, 0);
  assert.equal(m.header('subject').length, 1);
  assert.ok(m.subject.includes('Eve  Bcc: thief@example.org  X-Evil: 1'), m.subject);
  await setPrefs(u, { 'concierge.query.created': { email: false } });
});

// The dead letter, on a server of its own: mail jobs die at their first
// failure there, and there is no service account (push is off).
test('dead letter: one mail to each admin with an address, none to agents; a dead mail job mails nobody', async () => {
  const smtp2 = await startSmtp();
  const s2 = await startServer({
    host: { jobs_poll_ms: '50' },
    plugins: { ...TEST_PLUGINS, concierge: { create_rate_ip: '0', create_rate_donor: '0' },
      jobber: testPlugin('jobber'),
      notifications: { smtp_url: smtp2.url, smtp_starttls: 'no', mail_from: 'ops@example.org',
        email_max_attempts: '1' } },
  });
  try {
    const rootToken = await s2.login();
    let r = await s2.request('PATCH', '/api/v1/users/me', { token: rootToken,
      json: { email: 'root@example.org' } });
    assert.equal(r.status, 200, r.text);
    const admin2 = await makeUser(s2, rootToken, 'admin2', 'ADMIN', { device: false });
    const admin3 = await makeUser(s2, rootToken, 'admin3', 'ADMIN', { email: false, device: false });
    const agent = await makeUser(s2, rootToken, 'agent', 'AGENT');
    const ready2 = await s2.request('GET', '/readyz');
    assert.equal(ready2.body.checks['plugin:notifications'].push, 'not configured');
    assert.equal(ready2.body.checks['plugin:notifications'].email, 'configured');

    // A jobber.call without a url is dead at its first run (job_fail).
    const kill = async () => {
      const res = await s2.request('POST', '/api/v1/jobber/enqueue', { json: { kind: 'jobber.call', payload: {} } });
      assert.equal(res.status, 201, res.text);
      assert.ok(await poll(async () => (await sql(s2, 'SELECT status FROM jobs WHERE id = $1',
        [res.body.id]))[0].status === 'dead', { interval: 50 }), 'the jobber job died');
      return res.body.id;
    };
    const deadJob = await kill();
    await settle(s2);
    const to = (addr) => smtp2.messages.filter((m) => m.to.includes(addr));
    assert.equal(to('root@example.org').length, 1);
    assert.equal(to(admin2.email).length, 1);
    assert.equal(to(agent.email).length, 0);
    assert.equal(smtp2.messages.length, 2);
    assert.equal(admin3.email, null);
    const mail = parseMessage(to(admin2.email)[0].data);
    assert.ok(mail.subject.includes('jobber.call'), mail.subject);
    assert.ok(mail.subject.includes(`#${deadJob}`));
    assert.ok(mail.text.includes('payload.url is missing'));
    // No inbox, no push: email only.
    const ib = await s2.request('GET', NB, { token: rootToken });
    assert.deepEqual(ib.body.data, []);

    // An agent who wants mail for new queries, with SMTP down: the mail job
    // dies (one attempt here) and jobs.dead about it reaches nobody.
    await setPrefs(agent, { 'concierge.query.created': { email: true } }, s2);
    await smtp2.down();
    try {
      await openQuery({ server: s2 });
      await settle(s2);
      const mails = await sql(s2, "SELECT status, attempts FROM jobs WHERE kind = 'notifications.email'");
      assert.deepEqual(mails.map((j) => j.status).sort(), ['dead', 'done', 'done'].sort(),
        JSON.stringify(mails));
      // Its push: no service account, so finished as skipped.
      const [push] = await sql(s2, "SELECT status, result FROM jobs WHERE kind = 'notifications.push'");
      assert.equal(push.status, 'done');
      assert.equal(push.result.skipped, 'push is not configured');
    } finally { await smtp2.up(); }
    // A second dead job as the control: by the time its mails are out, a
    // fan-out about the dead mail job would long have been enqueued.
    await kill();
    await settle(s2);
    assert.equal(smtp2.messages.length, 4);
    assert.equal(to(agent.email).length, 0);
    const fanouts = await sql(s2, "SELECT payload->'data'->>'kind' AS kind FROM jobs WHERE kind = "
      + "'notifications.fanout' AND payload->>'name' = 'jobs.dead'");
    assert.deepEqual(fanouts.map((f) => f.kind), ['jobber.call', 'jobber.call']);
  } finally {
    await s2.stop();
    await smtp2.close();
  }
});
