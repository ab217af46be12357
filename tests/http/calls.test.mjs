// The calls plugin (API.md "Calls"), black box over HTTP and WebSocket
// against real PostgreSQL and the fake Daily API (tests/fakes/daily.mjs):
// request -> accept -> tokens for that room only -> status -> end (room
// deleted); reject; cancel; agent-initiated calls; webhook-driven
// STARTED/ENDED; the accept race; duplicate requests; donor isolation;
// tokens never leaked; Daily failures leaving nothing behind; signatures;
// donor ids of any allowed length (Daily's 36-character user_id); Daily's
// webhook verification request; second and millisecond webhook timestamps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { startServer, TEST_PLUGINS, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { poll, WAIT_MS } from './lib/helpers.mjs';
import { ready } from './lib/wsclient.mjs';
import { startDaily, sendWebhook, webhookEvent, signWebhook, USER_ID_MAX } from '../fakes/daily.mjs';

const C = '/api/v1/communication';
const WEBHOOK_SECRET = randomBytes(32).toString('base64');
let srv, daily, admin;
const agents = {};
const uniq = (p) => `${p}-${randomBytes(4).toString('hex')}`;
const isEvent = (name, pred = () => true) => (f) => f.type === 'event' && f.event === name && pred(f);

async function sql(text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

async function makeAgent(name) {
  const username = uniq(name);
  const password = 'agent-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name, email: `${username}@example.org`, role: 'AGENT' } });
  assert.equal(r.status, 201, r.text);
  return { id: r.body.id, name, token: await srv.login(username, password) };
}

async function openQuery(server = srv, { donorId = uniq('donor'), donor = `Donor ${donorId}` } = {}) {
  const r = await server.request('POST', '/api/v1/donor-queries', {
    json: { donor, donor_id: donorId, content: 'Can we talk?' } });
  assert.equal(r.status, 201, r.text);
  return { q: r.body.query, token: r.body.donor_token, donorId };
}

async function requestCall(query, mode = 'VIDEO', message) {
  const r = await srv.request('POST', `${C}/call/${query.q.id}/request`, { token: query.token,
    json: message === undefined ? { mode } : { mode, message } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.status, 'PENDING');
  return r.body;
}

async function accept(query, agent, requestId) {
  return srv.request('POST', `${C}/call/${query.q.id}/accept-request${requestId ? `/${requestId}` : ''}`,
    { token: agent.token });
}

const sessions = (queryId) => sql('SELECT * FROM calls_sessions WHERE query_id = $1 ORDER BY id', [queryId]);
const webhookUrl = () => `${srv.url}/api/v1/webhooks/daily`;
// The meeting-token properties the fake Daily was sent for a room: {staff, donor}.
function tokensFor(room) {
  const all = daily.tokens.filter((t) => t.properties.room_name === room);
  assert.equal(all.length, 2, `two tokens for ${room}`);
  return { staff: all.find((t) => t.properties.is_owner).properties,
    donor: all.find((t) => !t.properties.is_owner).properties };
}
// Everything a webhook could have changed, to compare before and after.
const webhookFootprint = async (queryId) => ({
  events: (await sql('SELECT count(*)::int AS n FROM calls_webhook_events'))[0].n,
  sessions: await sessions(queryId),
  messages: (await sql('SELECT count(*)::int AS n FROM concierge_messages WHERE query_id = $1',
    [queryId]))[0].n,
});

before(async () => {
  daily = await startDaily();
  srv = await startServer({ host: { breaker_failures: '1000' }, plugins: { ...TEST_PLUGINS,
    concierge: { create_rate_ip: '0', create_rate_donor: '0' },
    calls: { daily_api_url: daily.url, daily_api_key: daily.apiKey, webhook_secret: WEBHOOK_SECRET,
      // Long enough for a loaded machine to get the fake's answers in
      // time; the one test of a Daily that never answers waits it out.
      daily_timeout_ms: '5000', room_ttl: '1800' } } });
  admin = await srv.login();
  agents.a = await makeAgent('agent-a');
  agents.b = await makeAgent('agent-b');
});
after(async () => { await srv?.stop(); await daily?.close(); });

test('every calls route carries the access API.md gives it', async () => {
  const r = await srv.request('GET', '/api/v1/plugins', { token: admin });
  const c = r.body.data.find((p) => p.name === 'calls');
  assert.equal(c?.state, 'ready', JSON.stringify(c));
  const got = Object.fromEntries(c.routes.map((x) => [`${x.method} ${x.path}`,
    x.access === 'permission' ? x.permission : x.access]));
  assert.deepEqual(got, {
    [`POST ${C}/call/{query_id}/request`]: 'donor',
    [`GET ${C}/call/{query_id}/requests`]: 'staff',
    [`POST ${C}/call/{query_id}/accept-request`]: 'calls.handle',
    [`POST ${C}/call/{query_id}/accept-request/{request_id}`]: 'calls.handle',
    [`POST ${C}/call/{query_id}/reject-request/{request_id}`]: 'calls.handle',
    [`POST ${C}/call/{query_id}/cancel-request/{request_id}`]: 'donor',
    [`POST ${C}/call/{query_id}`]: 'calls.handle',
    [`GET ${C}/calls/{query_id}`]: 'authenticated',
    [`PUT ${C}/call/{room_name}/status`]: 'authenticated',
    [`POST ${C}/call/{room_name}/end`]: 'authenticated',
    'POST /api/v1/webhooks/daily': 'public',
  });
});

test('request, accept, tokens for that room only, status, end with the room deleted', async () => {
  const query = await openQuery();
  assert.equal((await srv.request('PATCH', `/api/v1/donor-queries/${query.q.id}/accept`,
    { token: agents.a.token })).status, 200);
  const wsA = await ready(srv, agents.a.token);
  const wsD = await ready(srv, query.token);
  try {
    assert.equal((await wsA.subscribe('agents')).type, 'subscribed');
    assert.equal((await wsA.subscribe(`user:${agents.a.id}`)).type, 'subscribed');
    assert.equal((await wsD.subscribe(`query:${query.q.id}`)).type, 'subscribed');

    const req = await requestCall(query, 'VIDEO', 'Could you show me the form?');
    assert.equal(req.query_id, query.q.id);
    assert.equal(req.mode, 'VIDEO');
    assert.equal(req.message, 'Could you show me the form?');
    await wsA.next(isEvent('calls.request.created', (f) => f.room === 'agents' && f.data.id === req.id),
      WAIT_MS, 'request.created on agents');
    await wsA.next(isEvent('calls.request.created', (f) => f.room === `user:${agents.a.id}`), 10000,
      'request.created to the assignee');

    let r = await srv.request('GET', `${C}/call/${query.q.id}/requests`, { token: agents.b.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data.map((x) => [x.id, x.status]), [[req.id, 'PENDING']]);

    r = await accept(query, agents.a, req.id);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.request.status, 'ACCEPTED');
    assert.equal(r.body.request.handled_by, agents.a.id);
    const s = r.body.session;
    assert.equal(s.status, 'CREATED');
    assert.equal(s.mode, 'VIDEO');
    assert.equal(s.admin_id, agents.a.id);
    assert.equal(s.request_id, req.id);
    const adminToken = s.token;

    // the room: private, expiring, for two, as the mode wants
    const room = daily.rooms.get(s.room_name);
    assert.ok(room, `room ${s.room_name} exists at Daily`);
    assert.equal(room.privacy, 'private');
    assert.equal(s.room_url, room.url);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(room.config.exp > now + 1700 && room.config.exp <= now + 1810, `exp ${room.config.exp}`);
    assert.equal(room.config.max_participants, 2);
    assert.equal(room.config.enable_screenshare, true);
    assert.equal(room.config.start_video_off, false);

    // the agent's token: owner, this room only
    assert.ok(daily.tokenValidFor(adminToken, s.room_name));
    assert.ok(!daily.tokenValidFor(adminToken, `${s.room_name}x`));
    assert.equal(daily.decodeToken(adminToken).claims.o, true);
    assert.ok(Number.isInteger(daily.decodeToken(adminToken).claims.exp));

    // the donor sees its own token only; other staff see none
    r = await srv.request('GET', `${C}/calls/${query.q.id}`, { token: query.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.data.length, 1);
    const donorToken = r.body.data[0].token;
    assert.ok(daily.tokenValidFor(donorToken, s.room_name));
    assert.notEqual(donorToken, adminToken);
    assert.notEqual(daily.decodeToken(donorToken).claims.o, true);
    assert.ok(!r.text.includes(adminToken));
    for (const who of [agents.b.token, admin]) {
      r = await srv.request('GET', `${C}/calls/${query.q.id}`, { token: who });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.data[0].token, null);
      assert.ok(!r.text.includes(adminToken) && !r.text.includes(donorToken));
    }
    r = await srv.request('GET', `${C}/calls/${query.q.id}`, { token: agents.a.token });
    assert.equal(r.body.data[0].token, adminToken);
    assert.ok(!r.text.includes(donorToken));

    // events carry no token; the database holds them sealed
    const accepted = await wsD.next(isEvent('calls.request.accepted'), WAIT_MS, 'request.accepted');
    assert.equal(accepted.room, `query:${query.q.id}`);
    for (const f of [...wsA.frames, ...wsD.frames]) {
      const t = JSON.stringify(f);
      assert.ok(!t.includes(adminToken) && !t.includes(donorToken), `token in a frame: ${t.slice(0, 200)}`);
    }
    const [row] = await sessions(query.q.id);
    for (const col of ['admin_token', 'donor_token']) {
      assert.match(row[col], /^v2\.[A-Za-z0-9_-]{8}\./, col);
      assert.ok(!row[col].includes(adminToken) && !row[col].includes(donorToken));
    }

    // status: the donor starts it; illegal moves are 409; unknown values 422
    r = await srv.request('PUT', `${C}/call/${s.room_name}/status`, { token: query.token,
      json: { status: 'STARTED' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'STARTED');
    assert.ok(r.body.started_at);
    await wsD.next(isEvent('calls.session.started'), WAIT_MS, 'session.started');
    assertEnvelope(assert, await srv.request('PUT', `${C}/call/${s.room_name}/status`, { token: query.token,
      json: { status: 'CREATED' } }), 409, 'CONFLICT');
    assertEnvelope(assert, await srv.request('PUT', `${C}/call/${s.room_name}/status`, { token: query.token,
      json: { status: 'STARTED' } }), 409, 'CONFLICT');
    const bogus = await srv.request('PUT', `${C}/call/${s.room_name}/status`, { token: query.token,
      json: { status: 'BOGUS' } });
    assertEnvelope(assert, bogus, 422, 'VALIDATION_ERROR');

    // end: the agent ends it; the room is deleted at Daily
    r = await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: agents.a.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'ENDED');
    assert.ok(r.body.ended_at);
    const ended = await wsD.next(isEvent('calls.session.ended'), WAIT_MS, 'session.ended');
    assert.equal(ended.data.message.message_type, 'CALL_ENDED');
    assert.ok(await poll(() => !daily.rooms.has(s.room_name)), 'the room is deleted at Daily');
    assert.ok(daily.count('DELETE', `/rooms/${s.room_name}`) >= 1);
    assertEnvelope(assert, await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: agents.a.token }),
      409, 'CONFLICT');

    // the thread records the call
    r = await srv.request('GET', `/api/v1/donor-queries/${query.q.id}/messages`, { token: query.token });
    const types = r.body.data.map((m) => m.message_type);
    assert.ok(types.includes('CALL_STARTED') && types.includes('CALL_ENDED'), types.join());
  } finally { wsA.close(); wsD.close(); }
});

test('reject, donor cancel, and one PENDING request per query', async () => {
  const query = await openQuery();
  const base = `${C}/call/${query.q.id}`;
  const first = await requestCall(query, 'AUDIO');
  assertEnvelope(assert, await srv.request('POST', `${base}/request`, { token: query.token,
    json: { mode: 'VIDEO' } }), 409, 'CONFLICT');
  let r = await srv.request('POST', `${base}/reject-request/${first.id}`, { token: agents.b.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'REJECTED');
  assert.equal(r.body.handled_by, agents.b.id);
  assertEnvelope(assert, await srv.request('POST', `${base}/reject-request/${first.id}`, { token: agents.b.token }),
    409, 'CONFLICT');
  assertEnvelope(assert, await accept(query, agents.a, first.id), 409, 'CONFLICT');

  const second = await requestCall(query, 'SCREEN');
  assertEnvelope(assert, await srv.request('POST', `${base}/cancel-request/${second.id}`, { token: agents.a.token }),
    403, 'FORBIDDEN');
  r = await srv.request('POST', `${base}/cancel-request/${second.id}`, { token: query.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'CANCELLED');
  assertEnvelope(assert, await srv.request('POST', `${base}/cancel-request/${second.id}`, { token: query.token }),
    409, 'CONFLICT');
  assertEnvelope(assert, await accept(query, agents.a), 404, 'NOT_FOUND');

  // two at once: one PENDING
  const rs = await Promise.all([1, 2].map(() => srv.request('POST', `${base}/request`, { token: query.token,
    json: { mode: 'VIDEO' } })));
  assert.deepEqual(rs.map((x) => x.status).sort(), [201, 409], rs.map((x) => x.text).join('\n'));
  r = await srv.request('GET', `${base}/requests`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.status).sort(), ['CANCELLED', 'PENDING', 'REJECTED']);
  assert.equal((await sessions(query.q.id)).length, 0);
});

test('an agent starts a call directly; AUDIO and SCREEN rooms; one live session per query', async () => {
  const query = await openQuery();
  let r = await srv.request('POST', `${C}/call/${query.q.id}`, { token: agents.b.token, json: { mode: 'AUDIO' } });
  assert.equal(r.status, 201, r.text);
  const s = r.body.session ?? r.body;
  assert.equal(s.mode, 'AUDIO');
  assert.equal(s.admin_id, agents.b.id);
  assert.equal(s.request_id, null);
  assert.ok(daily.tokenValidFor(s.token, s.room_name));
  const room = daily.rooms.get(s.room_name);
  assert.equal(room.config.start_video_off, true);
  assert.equal(room.config.enable_screenshare, false);
  assertEnvelope(assert, await srv.request('POST', `${C}/call/${query.q.id}`, { token: agents.a.token,
    json: { mode: 'VIDEO' } }), 409, 'CONFLICT');
  // a staff user who is not in the call may not end it
  assertEnvelope(assert, await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: agents.a.token }),
    403, 'FORBIDDEN');
  r = await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: query.token });
  assert.equal(r.status, 200, r.text);
  r = await srv.request('POST', `${C}/call/${query.q.id}`, { token: agents.a.token, json: { mode: 'SCREEN' } });
  assert.equal(r.status, 201, r.text);
  const screen = r.body.session ?? r.body;
  assert.equal(daily.rooms.get(screen.room_name).config.enable_screenshare, true);
  r = await srv.request('GET', `${C}/calls/${query.q.id}`, { token: query.token });
  assert.deepEqual(r.body.data.map((x) => x.status), ['CREATED', 'ENDED']);
});

test('Daily webhooks move sessions to STARTED and ENDED; unsigned, forged, stale and replayed calls are refused', async () => {
  const query = await openQuery();
  const r0 = await accept(query, agents.a, (await requestCall(query)).id);
  assert.equal(r0.status, 201, r0.text);
  const room = r0.body.session.room_name;

  const started = webhookEvent('meeting.started', room);
  let r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, started);
  assert.equal(r.status, 200, r.text);
  let [row] = await sessions(query.q.id);
  assert.equal(row.status, 'STARTED');
  assert.equal(Math.floor(row.started_at.getTime() / 1000), started.payload.start_ts);

  // the same event again, freshly signed: a replay
  r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, started);
  assert.equal(r.status, 409, r.text);

  // unsigned, wrong secret, altered body, stale timestamp
  const ended = webhookEvent('meeting.ended', room);
  const body = JSON.stringify(ended);
  r = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(r.status, 401);
  r = await sendWebhook(webhookUrl(), randomBytes(32).toString('base64'), ended);
  assert.equal(r.status, 401, r.text);
  const headers = signWebhook(WEBHOOK_SECRET, body);
  r = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: body.replace('meeting.ended', 'meeting.ENDED') });
  assert.equal(r.status, 401);
  r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, ended, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
  assert.equal(r.status, 401, r.text);
  assert.equal((await sessions(query.q.id))[0].status, 'STARTED', 'nothing refused changed anything');

  // malformed JSON, signed: 400; an unknown room: acknowledged, ignored
  r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, '{"type":');
  assert.equal(r.status, 400, r.text);
  r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, webhookEvent('meeting.ended', 'no-such-room'));
  assert.equal(r.status, 200, r.text);

  r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, ended);
  assert.equal(r.status, 200, r.text);
  [row] = await sessions(query.q.id);
  assert.equal(row.status, 'ENDED');
  assert.ok(await poll(() => !daily.rooms.has(room)), 'the room is deleted at Daily');
  const m = await srv.request('GET', `/api/v1/donor-queries/${query.q.id}/messages`, { token: admin });
  assert.deepEqual(m.body.data.filter((x) => x.message_type.startsWith('CALL_')).map((x) => x.message_type),
    ['CALL_STARTED', 'CALL_ENDED']);
});

test('a donor_id that is a UUID, or 100 characters long, still gets a call: Daily sees a short, stable user_id', async () => {
  const uuid = randomUUID();
  const long = `${uniq('d')}-${'x'.repeat(100)}`.slice(0, 100);
  assert.equal(long.length, 100);
  const seen = new Map();	// donor_id -> the user_id Daily was given
  for (const donorId of [uuid, long]) {
    // the donor's first call: asked for and accepted
    const first = await openQuery(srv, { donorId });
    const req = await requestCall(first);
    let r = await accept(first, agents.a, req.id);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.request.status, 'ACCEPTED');
    assert.equal(r.body.session.status, 'CREATED');
    assert.equal((await sessions(first.q.id)).length, 1);
    const one = tokensFor(r.body.session.room_name);
    for (const side of [one.staff, one.donor]) {
      assert.ok([...side.user_id].length <= USER_ID_MAX, `user_id ${side.user_id}`);
    }
    assert.ok(!one.donor.user_id.includes(donorId), 'the donor id itself does not go to Daily');
    // the derivation the README documents, so it stays stable across versions
    assert.equal(one.donor.user_id,
      `donor:${createHash('sha256').update(donorId).digest('base64url').slice(0, 22)}`);
    assert.equal(one.staff.user_id, `staff:${agents.a.id}`);
    // the donor's token works for that room
    r = await srv.request('GET', `${C}/calls/${first.q.id}`, { token: first.token });
    assert.ok(daily.tokenValidFor(r.body.data[0].token, r.body.data[0].room_name));

    // the same donor on another query, called by another agent: the same user_id
    const second = await openQuery(srv, { donorId });
    r = await srv.request('POST', `${C}/call/${second.q.id}`, { token: agents.b.token,
      json: { mode: 'AUDIO' } });
    assert.equal(r.status, 201, r.text);
    const two = tokensFor(r.body.session.room_name);
    assert.equal(two.donor.user_id, one.donor.user_id);
    assert.equal(two.staff.user_id, `staff:${agents.b.id}`);
    seen.set(donorId, one.donor.user_id);
  }
  assert.notEqual(seen.get(uuid), seen.get(long), 'different donors, different user_ids');
});

test('a long donor name reaches Daily cut on a character boundary', async () => {
  // 200 characters (the most concierge takes) of 1, 2 and 4 bytes in UTF-8
  const name = [...`A${'\u00e9\u{1F30D}'.repeat(100)}`].slice(0, 200).join('');
  const query = await openQuery(srv, { donor: name });
  const r = await accept(query, agents.a, (await requestCall(query)).id);
  assert.equal(r.status, 201, r.text);
  const { donor } = tokensFor(r.body.session.room_name);
  const got = donor.user_name;
  assert.equal([...got].length, 64);
  assert.ok(name.startsWith(got), 'a prefix of the name');
  assert.equal(Buffer.from(got, 'utf8').toString('utf8'), got, 'no half of a character');
  // a short name goes as it is
  const short = await openQuery(srv, { donor: 'Zo\u00eb \u{1F30D}' });
  const r2 = await accept(short, agents.a, (await requestCall(short)).id);
  assert.equal(r2.status, 201, r2.text);
  assert.equal(tokensFor(r2.body.session.room_name).donor.user_name, 'Zo\u00eb \u{1F30D}');
});

test('Daily\'s webhook verification request gets a quick 200 and changes nothing', async () => {
  const query = await openQuery();
  const r0 = await accept(query, agents.a, (await requestCall(query)).id);
  assert.equal(r0.status, 201, r0.text);
  const room = r0.body.session.room_name;
  const ws = await ready(srv, agents.a.token);
  try {
    assert.equal((await ws.subscribe(`query:${query.q.id}`)).type, 'subscribed');
    const before = await webhookFootprint(query.q.id);

    // registering the webhook at (the fake) Daily: it POSTs {"test":"test"}
    // unsigned and creates the webhook only on a quick 200
    const reg = await fetch(`${daily.url}/webhooks`, { method: 'POST',
      headers: { authorization: `Bearer ${daily.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: webhookUrl(), hmac: WEBHOOK_SECRET, eventTypes: ['meeting.started'] }) });
    const hook = await reg.json();
    assert.equal(reg.status, 200, JSON.stringify(hook));
    const check = daily.webhookChecks.at(-1);
    assert.equal(check.status, 200);
    assert.ok(check.ms < 2000, `answered in ${check.ms} ms`);

    // the same body sent directly: unsigned, with a made-up signature, with
    // a valid one, and with other spacing
    const raw = '{"test":"test"}';
    for (const [headers, body] of [
      [{}, raw],
      [{ 'X-Webhook-Signature': 'bm90IGEgc2lnbmF0dXJl', 'X-Webhook-Timestamp': '1' }, raw],
      [signWebhook(WEBHOOK_SECRET, raw), raw],
      [{}, '{ "test" : "test" }\n']]) {
      const t0 = Date.now();
      const r = await fetch(webhookUrl(), { method: 'POST',
        headers: { 'content-type': 'application/json', ...headers }, body });
      assert.equal(r.status, 200, await r.text());
      assert.ok(Date.now() - t0 < 2000);
    }
    assert.deepEqual(await webhookFootprint(query.q.id), before, 'no event id, session or message written');

    // anything else unsigned is still refused
    for (const body of ['{"test":"test","type":"meeting.started"}', '{"test":"other"}', '{"test":1}',
      JSON.stringify(webhookEvent('meeting.started', room))]) {
      const r = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json' },
        body });
      assert.equal(r.status, 401, body);
    }
    assert.deepEqual(await webhookFootprint(query.q.id), before);

    // the registered webhook then works: Daily delivers, signed with the hmac
    const [sent] = await daily.deliver(webhookEvent('meeting.started', room));
    assert.equal(sent.status, 200, sent.text);
    await ws.next(isEvent('calls.session.started', (f) => f.data.room_name === room), 10000, 'session.started');
    // nothing before it moved the session: the started event is the only one
    assert.equal(ws.frames.filter(isEvent('calls.session.started')).length, 1);
    assert.equal((await sessions(query.q.id))[0].status, 'STARTED');
    assert.equal((await fetch(`${daily.url}/webhooks/${hook.uuid}`, { method: 'DELETE',
      headers: { authorization: `Bearer ${daily.apiKey}` } })).status, 200);
  } finally { ws.close(); }
});

test('webhook timestamps in seconds and in milliseconds are both accepted when signed; bad ones still refused', async () => {
  const query = await openQuery();
  const r0 = await accept(query, agents.a, (await requestCall(query)).id);
  assert.equal(r0.status, 201, r0.text);
  const room = r0.body.session.room_name;

  // milliseconds: refused when stale, forged or altered, and nothing changes
  const started = webhookEvent('meeting.started', room);
  const before = await webhookFootprint(query.q.id);
  let r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, started, { timestamp: Date.now() - 3600 * 1000 });
  assert.equal(r.status, 401, r.text);
  r = await sendWebhook(webhookUrl(), randomBytes(32).toString('base64'), started, { timestamp: Date.now() });
  assert.equal(r.status, 401, r.text);
  const body = JSON.stringify(started);
  const ms = String(Date.now());
  const signed = signWebhook(WEBHOOK_SECRET, body, ms);
  // the signature covers the header as sent: the same instant in seconds does not verify
  r = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...signed,
    'X-Webhook-Timestamp': ms.slice(0, -3) }, body });
  assert.equal(r.status, 401);
  assert.deepEqual(await webhookFootprint(query.q.id), before);

  // milliseconds, valid
  r = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...signed },
    body });
  assert.equal(r.status, 200, await r.text());
  assert.equal((await sessions(query.q.id))[0].status, 'STARTED');

  // seconds, valid
  r = await sendWebhook(webhookUrl(), WEBHOOK_SECRET, webhookEvent('meeting.ended', room),
    { timestamp: Math.floor(Date.now() / 1000) });
  assert.equal(r.status, 200, r.text);
  assert.equal((await sessions(query.q.id))[0].status, 'ENDED');
  await poll(() => !daily.rooms.has(room), { timeout: 15000 });
});

test('concurrent accept: one session, one 409', async () => {
  const query = await openQuery();
  const req = await requestCall(query);
  const before = new Set(daily.rooms.keys());
  daily.fail('/rooms', [{ delayMs: 400 }], { method: 'POST' });
  const rs = await Promise.all([agents.a, agents.b].map((a) => accept(query, a, req.id)));
  assert.deepEqual(rs.map((r) => r.status).sort(), [201, 409], rs.map((r) => r.text).join('\n'));
  assertEnvelope(assert, rs.find((r) => r.status === 409), 409, 'CONFLICT');
  assert.equal((await sessions(query.q.id)).length, 1);
  const name = rs.find((r) => r.status === 201).body.session.room_name;
  assert.deepEqual([...daily.rooms.keys()].filter((n) => !before.has(n)), [name]);
});

test('Daily failures answer 502, keep the request PENDING and leave no session or room behind', async () => {
  const query = await openQuery();
  const req = await requestCall(query);
  const before = new Set(daily.rooms.keys());
  const newRooms = () => [...daily.rooms.keys()].filter((n) => !before.has(n));

  // room creation fails
  daily.fail('/rooms', [{ status: 500 }], { method: 'POST' });
  let r = await accept(query, agents.a, req.id);
  assertEnvelope(assert, r, 502, 'UPSTREAM_ERROR');
  // the room is made, the agent's token fails: the room is deleted again
  daily.fail('/meeting-tokens', [{ status: 500 }]);
  r = await accept(query, agents.a, req.id);
  assertEnvelope(assert, r, 502, 'UPSTREAM_ERROR');
  // the donor's token fails
  daily.fail('/meeting-tokens', [{ status: 200, json: { token: 'x' } }, { status: 503 }]);
  r = await accept(query, agents.a, req.id);
  assertEnvelope(assert, r, 502, 'UPSTREAM_ERROR');
  // Daily answers nonsense
  daily.fail('/rooms', [{ status: 200, json: { hello: 'world' } }], { method: 'POST' });
  r = await accept(query, agents.a, req.id);
  assertEnvelope(assert, r, 502, 'UPSTREAM_ERROR');
  // Daily does not answer at all (daily_timeout_ms 5000)
  const deletesBefore = daily.requests.filter((x) => x.method === 'DELETE').length;
  daily.fail('/rooms', [{ hang: true }], { method: 'POST' });
  r = await accept(query, agents.a, req.id);
  assertEnvelope(assert, r, 502, 'UPSTREAM_ERROR');

  // nothing half-made: no session, the request still PENDING, every room
  // made on the way deleted, and the timed-out name deleted to be sure
  assert.equal((await sessions(query.q.id)).length, 0);
  const [reqRow] = await sql('SELECT status FROM calls_requests WHERE id = $1', [req.id]);
  assert.equal(reqRow.status, 'PENDING');
  assert.ok(await poll(() => newRooms().length === 0), `rooms left at Daily: ${newRooms()}`);
  assert.ok(await poll(() => daily.requests.filter((x) => x.method === 'DELETE').length > deletesBefore),
    'the timed-out name is deleted');

  // and it can still be accepted
  r = await accept(query, agents.a, req.id);
  assert.equal(r.status, 201, r.text);
  assert.equal(newRooms().length, 1);
});

test('donor isolation and staff permissions on every calls route', async () => {
  const mine = await openQuery();
  const other = await openQuery();
  const req = await requestCall(mine);
  const r0 = await accept(mine, agents.a, req.id);
  assert.equal(r0.status, 201, r0.text);
  const room = r0.body.session.room_name;
  const t = other.token;
  for (const [m, p, json] of [
    ['POST', `${C}/call/${mine.q.id}/request`, { mode: 'VIDEO' }],
    ['POST', `${C}/call/${mine.q.id}/cancel-request/${req.id}`],
    ['GET', `${C}/calls/${mine.q.id}`],
    ['PUT', `${C}/call/${room}/status`, { status: 'ENDED' }],
    ['POST', `${C}/call/${room}/end`]])
    assertEnvelope(assert, await srv.request(m, p, { token: t, json }), 404, 'NOT_FOUND');
  for (const [m, p, json] of [
    ['GET', `${C}/call/${mine.q.id}/requests`],
    ['POST', `${C}/call/${mine.q.id}/accept-request`],
    ['POST', `${C}/call/${mine.q.id}/reject-request/${req.id}`],
    ['POST', `${C}/call/${mine.q.id}`, { mode: 'VIDEO' }]])
    assertEnvelope(assert, await srv.request(m, p, { token: t, json }), 403, 'FORBIDDEN');
  // a staff user outside the call may not move it
  assertEnvelope(assert, await srv.request('PUT', `${C}/call/${room}/status`, { token: agents.b.token,
    json: { status: 'STARTED' } }), 403, 'FORBIDDEN');
  // unknown ids and rooms
  assertEnvelope(assert, await srv.request('POST', `${C}/call/999999999/request`, { token: t,
    json: { mode: 'VIDEO' } }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', `${C}/calls/abc`, { token: admin }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('POST', `${C}/call/no-such-room/end`, { token: admin }),
    404, 'NOT_FOUND');
  // nothing changed
  const [row] = await sessions(mine.q.id);
  assert.equal(row.status, 'CREATED');
  // anonymous callers
  for (const [m, p] of [['POST', `${C}/call/${mine.q.id}/request`], ['GET', `${C}/calls/${mine.q.id}`],
    ['POST', `${C}/call/${mine.q.id}/accept-request`]])
    assertEnvelope(assert, await srv.request(m, p, { json: m === 'GET' ? undefined : {} }), 401, 'UNAUTHENTICATED');
});

test('validation: modes, message length, closed queries', async () => {
  const query = await openQuery();
  const base = `${C}/call/${query.q.id}`;
  for (const json of [{}, { mode: 'FAX' }, { mode: 7 }, { mode: 'VIDEO', message: 'x'.repeat(1001) }]) {
    const r = await srv.request('POST', `${base}/request`, { token: query.token, json });
    assertEnvelope(assert, r, r.status === 400 ? 400 : 422, 'VALIDATION_ERROR');
  }
  assertEnvelope(assert, await srv.request('POST', base, { token: admin, json: { mode: 'HOLOGRAM' } }),
    422, 'VALIDATION_ERROR');
  assert.equal((await srv.request('POST', `/api/v1/donor-queries/${query.q.id}/donor-close`,
    { token: query.token })).status, 200);
  assertEnvelope(assert, await srv.request('POST', `${base}/request`, { token: query.token,
    json: { mode: 'VIDEO' } }), 409, 'CONFLICT');
  assertEnvelope(assert, await srv.request('POST', base, { token: admin, json: { mode: 'VIDEO' } }),
    409, 'CONFLICT');
  const [n] = await sql('SELECT count(*)::int AS n FROM calls_requests WHERE query_id = $1', [query.q.id]);
  assert.equal(n.n, 0);
});

test('without a Daily API key the plugin answers 503 and says why', async () => {
  const s = await startServer({ plugins: { ...TEST_PLUGINS, concierge: { create_rate_ip: '0' }, calls: {} } });
  try {
    const query = await openQuery(s);
    const r = await s.request('POST', `${C}/call/${query.q.id}`, { token: await s.login(), json: { mode: 'VIDEO' } });
    const e = assertEnvelope(assert, r, 503, 'UNAVAILABLE');
    assert.match(e.message, /daily_api_key/);
    // Daily verifies a webhook before it hands out its secret: the check
    // passes without webhook_secret; a real event does not
    const hook = `${s.url}/api/v1/webhooks/daily`;
    let h = await fetch(hook, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: '{"test":"test"}' });
    assert.equal(h.status, 200);
    h = await sendWebhook(hook, WEBHOOK_SECRET, webhookEvent('meeting.started', 'sb-q1-00'));
    assert.equal(h.status, 503, h.text);
    assert.equal(h.body.code, 'UNAVAILABLE');
  } finally { await s.stop(); }
});

test('sessions and requests are lists: limit, cursor walk newest first, bad limit or cursor 400', async () => {
  const query = await openQuery();
  const made = [];
  for (const mode of ['VIDEO', 'AUDIO', 'SCREEN']) {
    const r = await srv.request('POST', `${C}/call/${query.q.id}`, { token: agents.a.token, json: { mode } });
    assert.equal(r.status, 201, r.text);
    const s = r.body.session ?? r.body;
    made.push(s.id);
    assert.equal((await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: agents.a.token })).status, 200);
  }
  // A walk of pages of two: every session once, newest first, then null.
  const seen = [];
  let cursor = '';		// an empty cursor is the first page
  let pages = 0;
  do {
    const r = await srv.request('GET', `${C}/calls/${query.q.id}?limit=2&cursor=${cursor}`, { token: query.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['data', 'next_cursor']);
    assert.ok(r.body.data.length <= 2);
    for (const s of r.body.data) {
      assert.ok(!('admin_token' in s) && !('donor_token' in s) && !('donor_id' in s), 'the row is mapped');
      seen.push(s.id);
    }
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor !== null);
  assert.deepEqual(seen, [...made].reverse());
  assert.equal(pages, 2);
  let r = await srv.request('GET', `${C}/calls/${query.q.id}`, { token: query.token });
  assert.equal(r.body.data.length, 3);
  assert.equal(r.body.next_cursor, null);

  // Requests: one rejected and one pending make two.
  const first = await requestCall(query);
  assert.equal((await srv.request('POST', `${C}/call/${query.q.id}/reject-request/${first.id}`,
    { token: agents.a.token })).status, 200);
  const second = await requestCall(query, 'AUDIO');
  r = await srv.request('GET', `${C}/call/${query.q.id}/requests?limit=1`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => x.id), [second.id]);
  assert.equal(r.body.next_cursor, String(second.id));
  r = await srv.request('GET', `${C}/call/${query.q.id}/requests?limit=1&cursor=${r.body.next_cursor}`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [first.id]);
  assert.equal(r.body.next_cursor, null);

  for (const path of [`${C}/calls/${query.q.id}`, `${C}/call/${query.q.id}/requests`]) {
    for (const [qs, field] of [['limit=0', 'limit'], ['limit=201', 'limit'], ['limit=x', 'limit'],
      ['limit=', 'limit'], ['cursor=abc', 'cursor'], ['cursor=0', 'cursor'], ['cursor=-3', 'cursor'],
      ['cursor=1234567890123456789', 'cursor']]) {
      const bad = await srv.request('GET', `${path}?${qs}`, { token: admin });
      const env = assertEnvelope(assert, bad, 400, 'VALIDATION_ERROR');
      assert.equal(env.errors[0].field, field, `${path}?${qs}`);
    }
  }
});

// The CALL_STARTED / CALL_ENDED message goes through concierge.thread on
// calls' own connection: a failure injected after the thread write (at
// COMMIT by a deferred trigger on the message; on the room-deletion job
// that follows the message) takes the session change and the message back
// together.
test('a failure after the thread write rolls back the session change and its CALL_* message together', async () => {
  const query = await openQuery();
  let r = await srv.request('POST', `${C}/call/${query.q.id}`, { token: agents.a.token, json: { mode: 'VIDEO' } });
  assert.equal(r.status, 201, r.text);
  const s = r.body.session ?? r.body;
  const qid = Number(query.q.id);
  assert.ok(Number.isSafeInteger(qid) && qid > 0);
  assert.match(s.room_name, /^[a-z0-9-]+$/);
  const callMessages = async () => (await sql("SELECT message_type FROM concierge_messages WHERE query_id = $1 " +
    "AND message_type LIKE 'CALL_%' ORDER BY id", [qid])).map((m) => m.message_type);
  const status = async () => (await sessions(qid))[0].status;
  const fn = `sb_test_fail_${randomBytes(4).toString('hex')}`;
  await sql(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`);
  try {
    // start: COMMIT fails after the session UPDATE and the message INSERT
    await sql(`CREATE CONSTRAINT TRIGGER ${fn}_msg AFTER INSERT ON concierge_messages DEFERRABLE INITIALLY ` +
      `DEFERRED FOR EACH ROW WHEN (NEW.query_id = ${qid}) EXECUTE FUNCTION ${fn}()`);
    r = await srv.request('PUT', `${C}/call/${s.room_name}/status`, { token: query.token, json: { status: 'STARTED' } });
    assert.ok(r.status >= 500, `the failed commit is an error: ${r.status} ${r.text}`);
    assertEnvelope(assert, r, r.status);
    assert.equal(await status(), 'CREATED', 'the session change was rolled back');
    assert.deepEqual(await callMessages(), [], 'the CALL_STARTED message was rolled back');
    await sql(`DROP TRIGGER ${fn}_msg ON concierge_messages`);
    r = await srv.request('PUT', `${C}/call/${s.room_name}/status`, { token: query.token, json: { status: 'STARTED' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(await status(), 'STARTED');
    assert.deepEqual(await callMessages(), ['CALL_STARTED']);

    // end: the room-deletion job insert, after the message, fails
    await sql(`CREATE TRIGGER ${fn}_job BEFORE INSERT ON jobs FOR EACH ROW WHEN (NEW.kind = 'calls.delete_room' ` +
      `AND NEW.payload->>'room_name' = '${s.room_name}') EXECUTE FUNCTION ${fn}()`);
    r = await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: agents.a.token });
    assert.ok(r.status >= 500, `the failed job insert is an error: ${r.status} ${r.text}`);
    assertEnvelope(assert, r, r.status);
    assert.equal(await status(), 'STARTED', 'the session change was rolled back');
    assert.deepEqual(await callMessages(), ['CALL_STARTED'], 'the CALL_ENDED message was rolled back');
    await sql(`DROP TRIGGER ${fn}_job ON jobs`);
    r = await srv.request('POST', `${C}/call/${s.room_name}/end`, { token: agents.a.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(await status(), 'ENDED');
    assert.deepEqual(await callMessages(), ['CALL_STARTED', 'CALL_ENDED']);
    assert.equal(r.body.message.message_type, 'CALL_ENDED', 'the answer carries the message concierge.thread returned');
    assert.equal(r.body.message.sender_type, 'SYSTEM');
  } finally {
    await sql(`DROP TRIGGER IF EXISTS ${fn}_msg ON concierge_messages`);
    await sql(`DROP TRIGGER IF EXISTS ${fn}_job ON jobs`);
    await sql(`DROP FUNCTION IF EXISTS ${fn}()`);
  }
});
