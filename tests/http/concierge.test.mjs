// The concierge plugin (API.md "Concierge"), black box over HTTP and
// WebSocket against real PostgreSQL: the lifecycle with its events, donor
// isolation on every donor-reachable route, permissions, the accept race,
// illegal transitions, validation, search, reminders (on demand and the
// periodic sweep, with time moved by shifting a query's timestamps into
// the past rather than by sleeping) and statistics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, TEST_PLUGINS, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { createUnprivilegedUser, poll, WAIT_MS } from './lib/helpers.mjs';
import { ready } from './lib/wsclient.mjs';

const DQ = '/api/v1/donor-queries';
let srv, admin;
const agents = {};
const uniq = (p) => `${p}-${randomBytes(4).toString('hex')}`;

async function sql(server, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), server.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

async function makeAgent(server, token, name, role = 'AGENT') {
  const username = uniq(name);
  const password = 'agent-password-0123456789';
  const r = await server.request('POST', '/api/v1/users', { token,
    json: { username, password, name, email: `${username}@example.org`, role } });
  assert.equal(r.status, 201, r.text);
  return { id: r.body.id, token: await server.login(username, password) };
}

async function openQuery(donorId, content = 'How do I book?', server = srv) {
  const r = await server.request('POST', DQ, {
    json: { donor: `Donor ${donorId}`, donor_id: donorId, test: 'blood', content } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.query.status, 'IN_PROGRESS');
  assert.equal(r.body.query.assigned_to, null);
  assert.equal(typeof r.body.donor_token, 'string');
  return { q: r.body.query, token: r.body.donor_token };
}

const isEvent = (name, pred = () => true) => (f) => f.type === 'event' && f.event === name && pred(f);

before(async () => {
  // Creation budgets off here; the rate-limit test has its own server.
  srv = await startServer({ plugins: { ...TEST_PLUGINS,
    concierge: { create_rate_ip: '0', create_rate_donor: '0' } } });
  admin = await srv.login();
  agents.a = await makeAgent(srv, admin, 'agent-a');
  agents.b = await makeAgent(srv, admin, 'agent-b');
});
after(async () => { await srv?.stop(); });

test('every concierge route carries the access API.md gives it', async () => {
  const r = await srv.request('GET', '/api/v1/plugins', { token: admin });
  assert.equal(r.status, 200, r.text);
  const c = r.body.data.find((p) => p.name === 'concierge');
  assert.equal(c.state, 'ready', JSON.stringify(c));
  const got = Object.fromEntries(c.routes.map((x) => [`${x.method} ${x.path}`,
    x.access === 'permission' ? x.permission : x.access]));
  assert.deepEqual(got, {
    [`POST ${DQ}`]: 'public',
    [`GET ${DQ}`]: 'staff',
    [`GET ${DQ}/in-progress`]: 'staff',
    [`GET ${DQ}/resolved`]: 'staff',
    [`GET ${DQ}/transferred`]: 'staff',
    [`GET ${DQ}/mine`]: 'donor',
    [`GET ${DQ}/{id}`]: 'authenticated',
    [`PATCH ${DQ}/{id}/accept`]: 'queries.handle',
    [`PATCH ${DQ}/{id}/resolve`]: 'queries.handle',
    [`PATCH ${DQ}/{id}/transfer`]: 'queries.handle',
    [`POST ${DQ}/{id}/send-reminder`]: 'queries.handle',
    [`POST ${DQ}/{id}/donor-close`]: 'donor',
    [`DELETE ${DQ}/{id}`]: 'queries.manage',
    [`GET ${DQ}/{id}/messages`]: 'authenticated',
    [`POST ${DQ}/{id}/messages`]: 'authenticated',
    'GET /api/v1/concierge/stats': 'queries.manage|system.read',
    'GET /api/v1/concierge/agents': 'queries.handle|queries.manage',
  });
  for (const e of ['concierge.query.created', 'concierge.query.accepted', 'concierge.query.transferred',
    'concierge.query.resolved', 'concierge.query.closed', 'concierge.query.deleted',
    'concierge.message.created', 'concierge.reminder'])
    assert.ok(c.events.some((x) => (x.name ?? x) === e), `event ${e} declared`);
});

test('lifecycle over HTTP and WebSocket: create, accept, chat, transfer, resolve', async () => {
  const wsA = await ready(srv, agents.a.token);
  const wsB = await ready(srv, agents.b.token);
  let wsD;
  try {
    assert.equal((await wsA.subscribe('agents')).type, 'subscribed');
    assert.equal((await wsB.subscribe(`user:${agents.b.id}`)).type, 'subscribed');

    const donorId = uniq('d');
    const { q, token } = await openQuery(donorId);
    const base = `${DQ}/${q.id}`;
    const room = `query:${q.id}`;
    const created = await wsA.next(isEvent('concierge.query.created', (f) => f.data.id === q.id), WAIT_MS, 'created');
    assert.equal(created.room, 'agents');
    assert.equal(created.data.donor_id, donorId);

    wsD = await ready(srv, token);
    assert.equal((await wsD.subscribe(room)).type, 'subscribed');
    assert.equal((await wsA.subscribe(room)).type, 'subscribed');

    let r = await srv.request('GET', base, { token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.donor_id, donorId);
    r = await srv.request('GET', `${DQ}/mine`, { token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data.map((x) => x.id), [q.id]);

    r = await srv.request('PATCH', `${base}/accept`, { token: agents.a.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.assigned_to, agents.a.id);
    const acc = await wsD.next(isEvent('concierge.query.accepted'), WAIT_MS, 'accepted (donor)');
    assert.equal(acc.room, room);
    assert.equal(acc.data.assigned_to, agents.a.id);
    // ... and on agents, where every console's queues listen.
    const accAgents = await wsA.next(isEvent('concierge.query.accepted', (f) => f.room === 'agents'),
      WAIT_MS, 'accepted (agents)');
    assert.equal(accAgents.data.id, q.id);
    const sys = await wsD.next(isEvent('concierge.message.created', (f) => f.data.message_type === 'SYSTEM'),
      WAIT_MS, 'SYSTEM message');
    assert.match(sys.data.content, /accepted/);

    // chat both ways, each side hearing the other on query:{id}
    r = await srv.request('POST', `${base}/messages`, { token: agents.a.token, json: { content: 'Hello donor' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.sender_type, 'STAFF');
    assert.equal(r.body.sender_id, String(agents.a.id));
    let ev = await wsD.next(isEvent('concierge.message.created', (f) => f.data.content === 'Hello donor'),
      WAIT_MS, 'staff message at the donor');
    assert.equal(ev.data.query_id, q.id);
    r = await srv.request('POST', `${base}/messages`, { token, json: { content: 'Hi agent' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.sender_type, 'DONOR');
    assert.equal(r.body.message_type, 'CHAT');
    ev = await wsA.next(isEvent('concierge.message.created', (f) => f.data.content === 'Hi agent'),
      WAIT_MS, 'donor message at the agent');
    assert.equal(ev.room, room);

    r = await srv.request('GET', `${base}/messages`, { token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data.map((m) => m.message_type), ['QUERY', 'SYSTEM', 'CHAT', 'CHAT']);
    const ids = r.body.data.map((m) => m.id);
    assert.deepEqual([...ids].sort((x, y) => x - y), ids);
    r = await srv.request('GET', `${base}/messages?after_id=${ids[1]}`, { token: agents.a.token });
    assert.deepEqual(r.body.data.map((m) => m.id), ids.slice(2));
    r = await srv.request('GET', `${base}/messages?limit=1`, { token: agents.a.token });
    assert.deepEqual(r.body.data.map((m) => m.id), [ids[0]]);
    r = await srv.request('GET', `${base}/messages?limit=2&cursor=${r.body.next_cursor}`, { token: agents.a.token });
    assert.deepEqual(r.body.data.map((m) => m.id), ids.slice(1, 3));

    // transfer: not to someone who cannot handle queries; the target hears it on user:{id}
    r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token, json: { to_user_id: 999999 } });
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    const nobodyId = await createUnprivilegedUser(srv, uniq('noperm'));
    r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token, json: { to_user_id: nobodyId } });
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
      json: { to_user_id: agents.b.id, note: 'over to you' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'TRANSFERRED');
    assert.equal(r.body.assigned_to, agents.b.id);
    assert.equal(r.body.transferred_to_user_id, agents.b.id);
    assert.equal(r.body.transfer_note, 'over to you');
    ev = await wsB.next(isEvent('concierge.query.transferred'), WAIT_MS, 'transferred at the target');
    assert.equal(ev.room, `user:${agents.b.id}`);
    assert.equal(ev.data.id, q.id);
    assert.equal(ev.data.transfer_note, 'over to you');
    await wsD.next(isEvent('concierge.query.transferred'), WAIT_MS, 'transferred in the query room');

    // the previous assignee may no longer resolve; the new one may
    assertEnvelope(assert, await srv.request('PATCH', `${base}/resolve`, { token: agents.a.token }), 403, 'FORBIDDEN');
    r = await srv.request('PATCH', `${base}/resolve`, { token: agents.b.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'RESOLVED');
    assert.equal(r.body.resolved_by, agents.b.id);
    ev = await wsD.next(isEvent('concierge.query.resolved'), WAIT_MS, 'resolved');
    assert.equal(ev.data.resolved_by, agents.b.id);

    r = await srv.request('GET', `${DQ}?status=RESOLVED`, { token: agents.b.token });
    assert.ok(r.body.data.some((x) => x.id === q.id));
    r = await srv.request('GET', `${DQ}/resolved`, { token: agents.b.token });
    assert.ok(r.body.data.some((x) => x.id === q.id));
    assert.ok(r.body.data.every((x) => x.status === 'RESOLVED'));

    // no messages on a resolved query, from either side
    assertEnvelope(assert, await srv.request('POST', `${base}/messages`, { token, json: { content: 'one more' } }),
      409, 'CONFLICT');
    assertEnvelope(assert, await srv.request('POST', `${base}/messages`, { token: agents.b.token,
      json: { content: 'x' } }), 409, 'CONFLICT');
    r = await srv.request('GET', `${base}/messages`, { token });
    assert.equal(r.body.data.filter((m) => m.message_type === 'SYSTEM').length, 3);
    assert.equal(r.body.data.length, 6);

    // delete: the query room hears it, and the query is gone for everyone
    r = await srv.request('DELETE', base, { token: admin });
    assert.equal(r.status, 204, r.text);
    ev = await wsD.next(isEvent('concierge.query.deleted'), WAIT_MS, 'deleted');
    assert.equal(ev.data.id, q.id);
    assertEnvelope(assert, await srv.request('GET', base, { token }), 404, 'NOT_FOUND');
    assertEnvelope(assert, await srv.request('GET', base, { token: admin }), 404, 'NOT_FOUND');
  } finally { wsA.close(); wsB.close(); wsD?.close(); }
});

test('donor-close: the owning donor closes, the room hears it, the thread records it', async () => {
  const { q, token } = await openQuery(uniq('d'));
  const ws = await ready(srv, agents.a.token);
  try {
    assert.equal((await ws.subscribe(`query:${q.id}`)).type, 'subscribed');
    let r = await srv.request('POST', `${DQ}/${q.id}/donor-close`, { token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'CLOSED');
    await ws.next(isEvent('concierge.query.closed', (f) => f.data.id === q.id), WAIT_MS, 'closed');
    assertEnvelope(assert, await srv.request('POST', `${DQ}/${q.id}/donor-close`, { token }), 409, 'CONFLICT');
    assertEnvelope(assert, await srv.request('PATCH', `${DQ}/${q.id}/accept`, { token: agents.a.token }),
      409, 'CONFLICT');
    r = await srv.request('GET', `${DQ}/${q.id}/messages`, { token });
    assert.equal(r.body.data.at(-1).message_type, 'SYSTEM');
    assert.match(r.body.data.at(-1).content, /closed by the donor/);
  } finally { ws.close(); }
});

test('donor isolation on every donor-reachable route', async () => {
  const mine = await openQuery(uniq('d'));
  const other = await openQuery(uniq('d'));
  const base = `${DQ}/${mine.q.id}`;
  const t = other.token;
  // another donor's query does not exist for this donor
  for (const [m, p, json] of [['GET', base], ['GET', `${base}/messages`], ['GET', `${base}/messages?after_id=1`],
    ['POST', `${base}/messages`, { content: 'hi' }], ['POST', `${base}/donor-close`]])
    assertEnvelope(assert, await srv.request(m, p, { token: t, json }), 404, 'NOT_FOUND');
  // staff routes are closed to donors whatever the id
  for (const [m, p, json] of [['GET', DQ], ['GET', `${DQ}/in-progress`], ['GET', `${DQ}/resolved`],
    ['GET', `${DQ}/transferred`], ['PATCH', `${base}/accept`], ['PATCH', `${base}/resolve`],
    ['PATCH', `${base}/transfer`, { to_user_id: agents.a.id }], ['POST', `${base}/send-reminder`],
    ['DELETE', base], ['GET', '/api/v1/concierge/stats']])
    assertEnvelope(assert, await srv.request(m, p, { token: t, json }), 403, 'FORBIDDEN');
  // /mine lists only the caller's own
  let r = await srv.request('GET', `${DQ}/mine`, { token: t });
  assert.deepEqual(r.body.data.map((x) => x.id), [other.q.id]);
  // a donor token cannot open a query for someone else, but may for itself
  r = await srv.request('POST', DQ, { token: t, json: { donor: 'x', donor_id: mine.q.donor_id, content: 'hi' } });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
  r = await srv.request('POST', DQ, { token: t, json: { donor: 'x', donor_id: other.q.donor_id, content: 'again' } });
  assert.equal(r.status, 201, r.text);
  // the query room is refused to another donor, allowed to the owner
  const wsO = await ready(srv, t);
  const wsM = await ready(srv, mine.token);
  try {
    const refused = await wsO.subscribe(`query:${mine.q.id}`);
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'FORBIDDEN');
    assert.equal((await wsM.subscribe(`query:${mine.q.id}`)).type, 'subscribed');
    assert.equal((await wsM.subscribe('agents')).type, 'error');
  } finally { wsO.close(); wsM.close(); }
  // nothing of the other donor's changed the owner's query
  r = await srv.request('GET', `${base}/messages`, { token: mine.token });
  assert.equal(r.body.data.length, 1);
  r = await srv.request('GET', base, { token: mine.token });
  assert.equal(r.body.status, 'IN_PROGRESS');
  // staff routes that only donors may use
  assertEnvelope(assert, await srv.request('GET', `${DQ}/mine`, { token: agents.a.token }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('POST', `${base}/donor-close`, { token: admin }), 403, 'FORBIDDEN');
});

test('the transfer directory: active staff who can take a query, to agents only', async () => {
  const name = uniq('noperm');
  const nobodyId = await createUnprivilegedUser(srv, name);
  const gone = await makeAgent(srv, admin, 'agent-gone');
  const me = await srv.request('GET', '/api/v1/users/me', { token: gone.token });
  assert.equal((await srv.request('DELETE', `/api/v1/users/${me.body.id}`, { token: admin })).status, 200);

  const r = await srv.request('GET', '/api/v1/concierge/agents', { token: agents.a.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.next_cursor, null);
  const ids = r.body.data.map((u) => u.id);
  assert.ok(ids.includes(agents.a.id) && ids.includes(agents.b.id), JSON.stringify(r.body));
  assert.ok(!ids.includes(nobodyId), 'a user whose role cannot handle queries is not listed');
  assert.ok(!ids.includes(me.body.id), 'a deactivated agent is not listed');
  const a = r.body.data.find((u) => u.id === agents.a.id);
  assert.deepEqual(Object.keys(a).sort(), ['id', 'name', 'username'], 'a name and no more');
  assert.equal(a.name, 'agent-a');

  assertEnvelope(assert, await srv.request('GET', '/api/v1/concierge/agents',
    { token: await srv.login(name) }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/concierge/agents'), 401, 'UNAUTHENTICATED');
});

test('GET /api/v1/stats adds up the daily message counts (API.md) from the plugin', async () => {
  const today = new Date().toISOString().slice(0, 10);
  const count = async () => {
    const r = await srv.request('GET', '/api/v1/stats', { token: admin });
    assert.equal(r.status, 200, r.text);
    const c = r.body.plugins.find((x) => x.name === 'concierge');
    assert.ok(Array.isArray(c.stats.messages_per_day), JSON.stringify(c));
    assert.deepEqual(r.body.messages_per_day, c.stats.messages_per_day, 'the only plugin with messages');
    assert.ok(r.body.messages_per_day.every((d, i, a) => i === 0 || a[i - 1].day < d.day), 'oldest first');
    assert.ok(r.body.messages_per_day.length <= 14);
    return { n: r.body.messages_per_day.find((d) => d.day === today)?.count ?? 0, open: c.stats.open_queries };
  };
  const before = await count();
  const { q, token } = await openQuery(uniq('stats'));	// the question: one message
  assert.equal((await srv.request('POST', `${DQ}/${q.id}/messages`, { token, json: { content: 'and more' } })).status, 201);
  const after = await count();
  assert.equal(after.n, before.n + 2);
  assert.equal(after.open, before.open + 1);
});

test('staff without queries.handle may read but not act', async () => {
  const { q } = await openQuery(uniq('d'));
  const base = `${DQ}/${q.id}`;
  const name = uniq('noperm');
  await createUnprivilegedUser(srv, name);
  const nobody = { token: await srv.login(name) };
  assert.equal((await srv.request('GET', base, { token: nobody.token })).status, 200);
  for (const [m, p, json] of [['PATCH', `${base}/accept`], ['PATCH', `${base}/resolve`],
    ['PATCH', `${base}/transfer`, { to_user_id: agents.a.id }], ['POST', `${base}/send-reminder`],
    ['DELETE', base], ['GET', '/api/v1/concierge/stats']])
    assertEnvelope(assert, await srv.request(m, p, { token: nobody.token, json }), 403, 'FORBIDDEN');
  // an agent may not delete or read stats (queries.manage)
  assertEnvelope(assert, await srv.request('DELETE', base, { token: agents.a.token }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/concierge/stats', { token: agents.a.token }),
    403, 'FORBIDDEN');
  // anonymous callers are asked to authenticate
  for (const [m, p] of [['GET', DQ], ['GET', base], ['GET', `${base}/messages`], ['PATCH', `${base}/accept`],
    ['GET', `${DQ}/mine`], ['GET', '/api/v1/concierge/stats']])
    assertEnvelope(assert, await srv.request(m, p), 401, 'UNAUTHENTICATED');
});

test('concurrent accept: exactly one wins', async () => {
  for (let round = 0; round < 5; round++) {
    const { q } = await openQuery(uniq('d'));
    const rs = await Promise.all([agents.a, agents.b].map((a) =>
      srv.request('PATCH', `${DQ}/${q.id}/accept`, { token: a.token })));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 409], rs.map((r) => r.text).join('\n'));
    assertEnvelope(assert, rs.find((r) => r.status === 409), 409, 'CONFLICT');
    const r = await srv.request('GET', `${DQ}/${q.id}`, { token: admin });
    assert.equal(r.body.assigned_to, rs[0].status === 200 ? agents.a.id : agents.b.id);
    const m = await srv.request('GET', `${DQ}/${q.id}/messages`, { token: admin });
    assert.equal(m.body.data.filter((x) => x.message_type === 'SYSTEM').length, 1, 'one accept recorded');
  }
});

test('illegal transitions are 409 with the current state', async () => {
  const { q } = await openQuery(uniq('d'));
  const base = `${DQ}/${q.id}`;
  // resolve or transfer before anyone accepted
  let e = assertEnvelope(assert, await srv.request('PATCH', `${base}/resolve`, { token: agents.a.token }),
    409, 'CONFLICT');
  assert.match(e.message, /IN_PROGRESS/);
  assertEnvelope(assert, await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
    json: { to_user_id: agents.b.id } }), 409, 'CONFLICT');
  assert.equal((await srv.request('PATCH', `${base}/accept`, { token: agents.a.token })).status, 200);
  // accepting one's own query again changes nothing (API.md: 409 only when
  // someone else holds it); another agent is refused
  let r = await srv.request('PATCH', `${base}/accept`, { token: agents.a.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.assigned_to, agents.a.id);
  r = await srv.request('GET', `${base}/messages`, { token: admin });
  assert.equal(r.body.data.filter((m) => m.message_type === 'SYSTEM').length, 1, 'one accept recorded');
  e = assertEnvelope(assert, await srv.request('PATCH', `${base}/accept`, { token: agents.b.token }), 409,
    'CONFLICT');
  assert.match(e.message, /IN_PROGRESS/);
  // a manager may resolve what another agent holds
  assert.equal((await srv.request('PATCH', `${base}/resolve`, { token: admin })).status, 200);
  e = assertEnvelope(assert, await srv.request('PATCH', `${base}/resolve`, { token: admin }), 409, 'CONFLICT');
  assert.match(e.message, /RESOLVED/);
  assertEnvelope(assert, await srv.request('PATCH', `${base}/accept`, { token: agents.b.token }), 409, 'CONFLICT');
  assertEnvelope(assert, await srv.request('PATCH', `${base}/transfer`, { token: admin,
    json: { to_user_id: agents.b.id } }), 409, 'CONFLICT');
  assertEnvelope(assert, await srv.request('POST', `${base}/send-reminder`, { token: admin }), 409, 'CONFLICT');
  // unknown and malformed ids
  for (const id of ['999999999', '0', '-1', 'abc', '1e3', '99999999999999999999'])
    assertEnvelope(assert, await srv.request('PATCH', `${DQ}/${id}/accept`, { token: admin }), 404, 'NOT_FOUND');
  assert.equal((await srv.request('DELETE', base, { token: admin })).status, 204);
  assertEnvelope(assert, await srv.request('DELETE', base, { token: admin }), 404, 'NOT_FOUND');
});

// Issue 13: a transfer makes the target the assignee with status
// TRANSFERRED; the target accepting takes it (IN_PROGRESS, still theirs),
// and only an agent other than the assignee is refused.
test('transfer then accept: the target accepts, answers and resolves', async () => {
  const { q, token } = await openQuery(uniq('d'));
  const base = `${DQ}/${q.id}`;
  const ws = await ready(srv, token);
  try {
    assert.equal((await ws.subscribe(`query:${q.id}`)).type, 'subscribed');
    let r = await srv.request('PATCH', `${base}/accept`, { token: agents.a.token });
    assert.equal(r.status, 200, r.text);
    r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
      json: { to_user_id: agents.b.id, note: 'yours now' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'TRANSFERRED');
    const assignedAt = async () => (await sql(srv, 'SELECT assigned_at FROM concierge_queries WHERE id = $1',
      [q.id]))[0].assigned_at.getTime();
    const handedOver = await assignedAt();

    r = await srv.request('PATCH', `${base}/accept`, { token: agents.b.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'IN_PROGRESS');
    assert.equal(r.body.assigned_to, agents.b.id);
    // the last transfer stays on record; the note is for the new assignee
    assert.equal(r.body.transferred_to_user_id, agents.b.id);
    assert.equal(r.body.transfer_note, 'yours now');
    const ev = await ws.next(isEvent('concierge.query.accepted', (f) => f.data.assigned_to === agents.b.id),
      10000, 'accepted by the target');
    assert.equal(ev.data.status, 'IN_PROGRESS');
    const sys = await ws.next(isEvent('concierge.message.created', (f) => f.data.message_type === 'SYSTEM' &&
      /accepted by agent-b/.test(f.data.content)), 10000, 'the accept in the thread');
    assert.equal(sys.data.query_id, q.id);
    // B has held it since the transfer: the reminder wait does not restart
    assert.equal(await assignedAt(), handedOver);

    // it left B's "transferred" queue and is among B's queries in progress
    r = await srv.request('GET', `${DQ}/transferred?assigned_to=${agents.b.id}`, { token: agents.b.token });
    assert.ok(!r.body.data.some((x) => x.id === q.id), 'no longer waiting as a transfer');
    r = await srv.request('GET', `${DQ}?status=IN_PROGRESS&assigned_to=${agents.b.id}`, { token: agents.b.token });
    assert.ok(r.body.data.some((x) => x.id === q.id), 'in progress with B');

    r = await srv.request('POST', `${base}/messages`, { token: agents.b.token, json: { content: 'B here' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.sender_id, String(agents.b.id));
    await ws.next(isEvent('concierge.message.created', (f) => f.data.content === 'B here'), 10000, 'B\'s answer');

    r = await srv.request('PATCH', `${base}/resolve`, { token: agents.b.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'RESOLVED');
    assert.equal(r.body.resolved_by, agents.b.id);
    r = await srv.request('GET', `${base}/messages`, { token });
    assert.deepEqual(r.body.data.map((m) => m.message_type),
      ['QUERY', 'SYSTEM', 'SYSTEM', 'SYSTEM', 'CHAT', 'SYSTEM']);
  } finally { ws.close(); }
});

test('transfer then accept: anyone but the target is 409, and the previous assignee loses the query', async () => {
  const c = await makeAgent(srv, admin, 'agent-c');
  const transferred = async () => {
    const { q } = await openQuery(uniq('d'));
    const base = `${DQ}/${q.id}`;
    assert.equal((await srv.request('PATCH', `${base}/accept`, { token: agents.a.token })).status, 200);
    const r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
      json: { to_user_id: agents.b.id } });
    assert.equal(r.status, 200, r.text);
    return base;
  };
  const systemCount = async (base) => (await srv.request('GET', `${base}/messages`, { token: admin }))
    .body.data.filter((m) => m.message_type === 'SYSTEM').length;

  // a third agent, the previous assignee and a manager may not take it
  let base = await transferred();
  for (const t of [c.token, agents.a.token, admin]) {
    const e = assertEnvelope(assert, await srv.request('PATCH', `${base}/accept`, { token: t }), 409, 'CONFLICT');
    assert.match(e.message, /TRANSFERRED/);
  }
  let r = await srv.request('GET', base, { token: admin });
  assert.equal(r.body.status, 'TRANSFERRED');
  assert.equal(r.body.assigned_to, agents.b.id);
  assert.equal(await systemCount(base), 2, 'refused accepts leave no trace');

  // once B accepted: C still 409; A may neither resolve nor transfer
  assert.equal((await srv.request('PATCH', `${base}/accept`, { token: agents.b.token })).status, 200);
  assertEnvelope(assert, await srv.request('PATCH', `${base}/accept`, { token: c.token }), 409, 'CONFLICT');
  assertEnvelope(assert, await srv.request('PATCH', `${base}/resolve`, { token: agents.a.token }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
    json: { to_user_id: c.id } }), 403, 'FORBIDDEN');
  // accepting again is a no-op for the assignee: 200, nothing recorded
  r = await srv.request('PATCH', `${base}/accept`, { token: agents.b.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.assigned_to, agents.b.id);
  assert.equal(await systemCount(base), 3, 'one accept recorded');
  // queries.manage may resolve what B holds
  r = await srv.request('PATCH', `${base}/resolve`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'RESOLVED');

  // the target and a third agent at once: the target wins every time
  for (let round = 0; round < 3; round++) {
    base = await transferred();
    const [rb, rc] = await Promise.all([agents.b, c].map((a) =>
      srv.request('PATCH', `${base}/accept`, { token: a.token })));
    assert.equal(rb.status, 200, rb.text);
    assert.equal(rb.body.assigned_to, agents.b.id);
    assertEnvelope(assert, rc, 409, 'CONFLICT');
    assert.equal(await systemCount(base), 3, 'one accept recorded');
  }
  // the target twice at once (a double click): both 200, one accept recorded
  base = await transferred();
  const rs = await Promise.all([1, 2].map(() => srv.request('PATCH', `${base}/accept`, { token: agents.b.token })));
  assert.deepEqual(rs.map((x) => [x.status, x.body.status, x.body.assigned_to]),
    [[200, 'IN_PROGRESS', agents.b.id], [200, 'IN_PROGRESS', agents.b.id]], rs.map((x) => x.text).join('\n'));
  assert.equal(await systemCount(base), 3, 'one accept recorded');
});

test('validation errors use the envelope', async () => {
  const fieldErr = (r, field) => {
    const e = assertEnvelope(assert, r, r.status === 422 ? 422 : 400, 'VALIDATION_ERROR');
    assert.ok(e.errors.some((x) => x.field === field), r.text);
  };
  fieldErr(await srv.request('POST', DQ, { json: { donor: 'x', content: 'hi' } }), 'donor_id');
  fieldErr(await srv.request('POST', DQ, { json: { donor: 'x', donor_id: '  ', content: 'hi' } }), 'donor_id');
  fieldErr(await srv.request('POST', DQ, { json: { donor: 'x', donor_id: 'y', content: 'a'.repeat(5000) } }),
    'content');
  fieldErr(await srv.request('POST', DQ, { json: { donor: 'x', donor_id: 7, content: 'hi' } }), 'donor_id');
  const { q, token } = await openQuery(uniq('d'));
  const base = `${DQ}/${q.id}`;
  fieldErr(await srv.request('POST', `${base}/messages`, { token, json: { content: 'a'.repeat(4001) } }), 'content');
  fieldErr(await srv.request('POST', `${base}/messages`, { token, json: {} }), 'content');
  fieldErr(await srv.request('PATCH', `${base}/transfer`, { token: admin, json: { to_user_id: 'two' } }),
    'to_user_id');
  for (const [qs, field] of [['status=OPEN', 'status'], ['assigned_to=abc', 'assigned_to'], ['limit=0', 'limit'],
    ['limit=201', 'limit'], ['cursor=x', 'cursor'], [`q=${'x'.repeat(201)}`, 'q']]) {
    const r = await srv.request('GET', `${DQ}?${qs}`, { token: admin });
    const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.equal(e.errors[0].field, field, qs);
  }
  const r = await srv.request('GET', `${base}/messages?after_id=x`, { token });
  assert.equal(assertEnvelope(assert, r, 400, 'VALIDATION_ERROR').errors[0].field, 'after_id');
  // malformed JSON and the wrong media type
  let raw = await srv.request('POST', DQ, { body: '{"donor":', headers: { 'content-type': 'application/json' } });
  assertEnvelope(assert, raw, 400, 'VALIDATION_ERROR');
  raw = await srv.request('POST', DQ, { body: 'donor=x', headers: { 'content-type': 'text/plain' } });
  assertEnvelope(assert, raw, 415, 'UNSUPPORTED_MEDIA_TYPE');
  // nothing half-written by any of the refused requests
  const rows = await sql(srv, 'SELECT count(*)::int AS n FROM concierge_messages WHERE query_id = $1', [q.id]);
  assert.equal(rows[0].n, 1);
});

test('filters and search: status, assigned_to, q over donor, donor_id, test and message content', async () => {
  const word = uniq('unicorn');
  const a = await openQuery(uniq('d'));
  const b = await openQuery(uniq('d'));
  await srv.request('POST', `${DQ}/${b.q.id}/messages`, { token: b.token, json: { content: `It is about ${word}` } });
  let r = await srv.request('GET', `${DQ}?q=${encodeURIComponent(word)}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => x.id), [b.q.id]);
  // A list item previews the question (not the later message), cut at 140.
  assert.equal(r.body.data[0].preview, 'How do I book?');
  const long = await srv.request('POST', DQ, { json: { donor: 'Long', donor_id: uniq('d'), content: `${'x'.repeat(150)} ${word}` } });
  assert.equal(long.status, 201, long.text);
  r = await srv.request('GET', `${DQ}?q=${encodeURIComponent(word)}`, { token: admin });
  assert.equal(r.body.data.find((x) => x.id === long.body.query.id).preview, 'x'.repeat(140));
  assert.deepEqual(r.body.data.map((x) => x.id).sort(), [b.q.id, long.body.query.id].sort());
  r = await srv.request('GET', `${DQ}?q=${encodeURIComponent(a.q.donor_id.toUpperCase())}`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [a.q.id]);
  // LIKE wildcards are literal
  for (const s of ['%', '_', '%%', '\\'])
    assert.ok(!(await srv.request('GET', `${DQ}?q=${encodeURIComponent(s)}`, { token: admin })).body.data
      .some((x) => x.id === a.q.id), `q=${s} matched everything`);
  assert.equal((await srv.request('PATCH', `${DQ}/${a.q.id}/accept`, { token: agents.b.token })).status, 200);
  r = await srv.request('GET', `${DQ}?assigned_to=${agents.b.id}&status=IN_PROGRESS`, { token: admin });
  assert.ok(r.body.data.some((x) => x.id === a.q.id));
  assert.ok(r.body.data.every((x) => x.assigned_to === agents.b.id && x.status === 'IN_PROGRESS'));
  r = await srv.request('GET', `${DQ}/in-progress`, { token: admin });
  assert.ok(r.body.data.every((x) => x.status === 'IN_PROGRESS'));
  // cursor paging walks the list newest first without repeats
  const seen = [];
  let cursor = null;
  do {
    r = await srv.request('GET', `${DQ}?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(r.status, 200, r.text);
    seen.push(...r.body.data.map((x) => x.id));
    cursor = r.body.next_cursor;
  } while (cursor);
  assert.deepEqual(seen, [...seen].sort((x, y) => y - x));
  assert.equal(new Set(seen).size, seen.length);
  assert.ok(seen.includes(a.q.id) && seen.includes(b.q.id));
});

test('send-reminder: the assignee, or all agents while unassigned', async () => {
  const { q, token } = await openQuery(uniq('d'));
  const base = `${DQ}/${q.id}`;
  const wsA = await ready(srv, agents.a.token);
  try {
    assert.equal((await wsA.subscribe('agents')).type, 'subscribed');
    assert.equal((await wsA.subscribe(`user:${agents.a.id}`)).type, 'subscribed');
    let r = await srv.request('POST', `${base}/send-reminder`, { token: agents.b.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.query_id, q.id);
    assert.equal(r.body.reason, 'MANUAL');
    assert.equal(r.body.room, 'agents');
    let ev = await wsA.next(isEvent('concierge.reminder', (f) => f.data.query_id === q.id), WAIT_MS, 'reminder');
    assert.equal(ev.room, 'agents');
    assert.equal(ev.data.sent_by, agents.b.id);

    assert.equal((await srv.request('PATCH', `${base}/accept`, { token: agents.a.token })).status, 200);
    r = await srv.request('POST', `${base}/send-reminder`, { token: agents.b.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.room, `user:${agents.a.id}`);
    ev = await wsA.next(isEvent('concierge.reminder', (f) => f.data.query_id === q.id), WAIT_MS, 'reminder 2');
    assert.equal(ev.room, `user:${agents.a.id}`);
    assert.equal(ev.data.reminder_count, 2);

    assertEnvelope(assert, await srv.request('POST', `${base}/send-reminder`, { token }), 403, 'FORBIDDEN');
    assertEnvelope(assert, await srv.request('POST', `${DQ}/999999999/send-reminder`, { token: admin }),
      404, 'NOT_FOUND');
  } finally { wsA.close(); }
});

test('statistics: counts, first-response and resolution times per agent and per day', async () => {
  // Real flows set who responded and resolved; the timestamps are then
  // moved into a window of their own so the figures are exact.
  const flow = async (steps) => {
    const { q, token } = await openQuery(uniq('st'));
    const base = `${DQ}/${q.id}`;
    for (const [who, act, extra] of steps) {
      const t = who === 'donor' ? token : agents[who].token;
      let r;
      if (act === 'accept') r = await srv.request('PATCH', `${base}/accept`, { token: t });
      if (act === 'say') r = await srv.request('POST', `${base}/messages`, { token: t, json: { content: 'answer' } });
      if (act === 'transfer') r = await srv.request('PATCH', `${base}/transfer`, { token: t,
        json: { to_user_id: agents[extra].id } });
      if (act === 'resolve') r = await srv.request('PATCH', `${base}/resolve`, { token: t });
      if (act === 'close') r = await srv.request('POST', `${base}/donor-close`, { token: t });
      assert.ok(r.status < 300, `${act}: ${r.text}`);
    }
    return q.id;
  };
  const q1 = await flow([['a', 'accept'], ['a', 'say'], ['a', 'say'], ['a', 'resolve']]);
  const q2 = await flow([['a', 'accept'], ['donor', 'say'], ['a', 'say'], ['a', 'transfer', 'b'], ['b', 'say'],
    ['b', 'resolve']]);
  const q3 = await flow([['b', 'accept'], ['b', 'say']]);
  const q4 = await flow([]);
  const q5 = await flow([['donor', 'close']]);
  const rows = await sql(srv, `SELECT id, first_response_by, resolved_by FROM concierge_queries
    WHERE id = ANY($1::bigint[]) ORDER BY id`, [[q1, q2, q3, q4, q5]]);
  assert.deepEqual(rows.map((x) => [Number(x.first_response_by), Number(x.resolved_by)]),
    [[agents.a.id, agents.a.id], [agents.a.id, agents.b.id], [agents.b.id, 0], [0, 0], [0, 0]]);
  const place = async (id, created, fr, rs) => sql(srv, `UPDATE concierge_queries SET created_at = $2::timestamptz,
    first_response_at = $2::timestamptz + make_interval(secs => $3), resolved_at = $2::timestamptz +
    make_interval(secs => $4) WHERE id = $1`, [id, created, fr, rs]);
  await place(q1, '2020-03-01T10:00:00Z', 60, 600);
  await place(q2, '2020-03-01T11:00:00Z', 120, 1200);
  await place(q3, '2020-03-02T09:00:00Z', 300, null);
  await place(q4, '2020-03-02T10:00:00Z', null, null);
  await place(q5, '2020-03-02T23:59:59Z', null, null);
  // Each thread is written on its query's day.
  await sql(srv, `UPDATE concierge_messages m SET created_at = q.created_at FROM concierge_queries q
    WHERE q.id = m.query_id AND q.id = ANY($1::bigint[])`, [[q1, q2, q3, q4, q5]]);

  const r = await srv.request('GET', '/api/v1/concierge/stats?from=2020-03-01&to=2020-03-03T00:00:00Z',
    { token: admin });
  assert.equal(r.status, 200, r.text);
  const s = r.body;
  assert.equal(s.from, '2020-03-01T00:00:00.000000Z');
  assert.equal(s.to, '2020-03-03T00:00:00.000000Z');
  assert.deepEqual(s.counts, { total: 5, open: 2, unassigned: 1, in_progress: 2, transferred: 0, resolved: 2,
    closed: 1 });
  assert.deepEqual(s.first_response, { count: 3, median_s: 120, p90_s: 264 });
  assert.deepEqual(s.resolution, { count: 2, median_s: 900, p90_s: 1140 });
  const byAgent = Object.fromEntries(s.per_agent.map((x) => [x.user_id, x]));
  assert.deepEqual(Object.keys(byAgent).map(Number).sort(), [agents.a.id, agents.b.id].sort());
  assert.deepEqual({ ...byAgent[agents.a.id], username: undefined, name: undefined }, {
    user_id: agents.a.id, username: undefined, name: undefined, open_assigned: 0, resolved: 1,
    first_response: { count: 2, median_s: 90, p90_s: 114 }, resolution: { count: 1, median_s: 600, p90_s: 600 } });
  assert.equal(byAgent[agents.a.id].name, 'agent-a');
  assert.deepEqual(byAgent[agents.b.id].first_response, { count: 1, median_s: 300, p90_s: 300 });
  assert.deepEqual(byAgent[agents.b.id].resolution, { count: 1, median_s: 1200, p90_s: 1200 });
  assert.equal(byAgent[agents.b.id].open_assigned, 1);
  assert.deepEqual(s.per_day, [
    { day: '2020-03-01', created: 2, open: 0, resolved: 2, closed: 0,
      first_response: { count: 2, median_s: 90, p90_s: 114 },
      resolution: { count: 2, median_s: 900, p90_s: 1140 } },
    { day: '2020-03-02', created: 3, open: 2, resolved: 0, closed: 1,
      first_response: { count: 1, median_s: 300, p90_s: 300 },
      resolution: { count: 0, median_s: null, p90_s: null } },
  ]);
  // q1: the question, accepted, two answers, resolved; q2: the question,
  // accepted, the donor, an answer, transferred, an answer, resolved.
  // q3: question, accepted, answer; q4: question; q5: question, closed.
  assert.deepEqual(s.messages_per_day, [
    { day: '2020-03-01', total: 12, donor: 3, staff: 4, system: 5 },
    { day: '2020-03-02', total: 6, donor: 3, staff: 1, system: 2 },
  ]);
  // an empty window, the default window, and a reader with system.read only
  const empty = await srv.request('GET', '/api/v1/concierge/stats?from=2019-01-01&to=2019-01-02', { token: admin });
  assert.equal(empty.status, 200, empty.text);
  assert.equal(empty.body.counts.total, 0);
  assert.deepEqual(empty.body.per_agent, []);
  assert.deepEqual(empty.body.first_response, { count: 0, median_s: null, p90_s: null });
  const role = await srv.request('POST', '/api/v1/roles', { token: admin,
    json: { name: uniq('READERS').toUpperCase().replace(/-/g, '_'), permissions: ['system.read'] } });
  assert.equal(role.status, 201, role.text);
  const reader = await makeAgent(srv, admin, 'reader', role.body.name);
  const d = await srv.request('GET', '/api/v1/concierge/stats', { token: reader.token });
  assert.equal(d.status, 200, d.text);
  assert.ok(d.body.counts.total >= 1);
  assert.ok(Date.parse(d.body.to) - Date.parse(d.body.from) === 30 * 86400e3);
  // malformed windows
  for (const qs of ['from=yesterday', 'from=2020-02-31', 'to=2020-13-01', 'from=2020-03-02&to=2020-03-01',
    'from=2020-03-01T25:00:00Z', `from=${'1'.repeat(50)}`]) {
    const e = assertEnvelope(assert, await srv.request('GET', `/api/v1/concierge/stats?${qs}`, { token: admin }),
      400, 'VALIDATION_ERROR');
    assert.ok(['from', 'to'].includes(e.errors[0].field), qs);
  }
});

test('reminders: the periodic sweep reminds once per waiting period', async () => {
  // reminder_after 600 s, a sweep every second.  Time passes for one
  // query by moving all its timestamps 11 minutes into the past.
  const R = await startServer({ plugins: { ...TEST_PLUGINS,
    concierge: { reminder_after: '600', reminder_interval: '1', create_rate_ip: '0' } } });
  let ws;
  try {
    const token = await R.login();
    const agent = await makeAgent(R, token, 'reminded');
    const passTime = (id) => Promise.all([
      sql(R, `UPDATE concierge_queries SET created_at = created_at - interval '11 minutes',
        assigned_at = assigned_at - interval '11 minutes' WHERE id = $1`, [id]),
      sql(R, `UPDATE concierge_messages SET created_at = created_at - interval '11 minutes'
        WHERE query_id = $1`, [id])]);
    const sweeps = async () => (await sql(R, `SELECT count(*)::int AS n FROM jobs
      WHERE kind = 'concierge.reminders' AND status = 'done'`))[0].n;
    // Waited for, not slept: n more sweeps have run to the end.
    const moreSweeps = async (n) => {
      const start = await sweeps();
      assert.ok(await poll(async () => (await sweeps()) >= start + n), `${n} more sweeps`);
    };
    const reminders = (id) => ws.events().filter((f) => f.event === 'concierge.reminder' && f.data.query_id === id);
    // What the sweeps recorded, in the same transaction as their reminders:
    // once a sweep is done, exact whatever the machine's speed.
    const recorded = async (id) => (await sql(R, 'SELECT reminder_count FROM concierge_queries WHERE id = $1',
      [id]))[0].reminder_count;

    ws = await ready(R, agent.token);
    assert.equal((await ws.subscribe('agents')).type, 'subscribed');
    assert.equal((await ws.subscribe(`user:${agent.id}`)).type, 'subscribed');
    const q1 = await openQuery(uniq('rem'), 'anyone there?', R);
    const young = await openQuery(uniq('rem'), 'just asked', R);
    const id = q1.q.id;

    // unaccepted for 11 minutes: one reminder to all agents, then no more
    await passTime(id);
    let ev = await ws.next(isEvent('concierge.reminder', (f) => f.data.query_id === id), WAIT_MS, 'unaccepted');
    assert.equal(ev.room, 'agents');
    assert.equal(ev.data.reason, 'UNACCEPTED');
    assert.equal(ev.data.assigned_to, null);
    await moreSweeps(3);
    assert.equal(await recorded(id), 1);
    assert.equal(await recorded(young.q.id), 0, 'a young query is not reminded');
    assert.equal(reminders(id).length, 1);
    assert.equal(reminders(young.q.id).length, 0, 'a young query is not reminded');

    // accepted; the donor writes and waits 11 minutes: the assignee is reminded once
    let r = await R.request('PATCH', `${DQ}/${id}/accept`, { token: agent.token });
    assert.equal(r.status, 200, r.text);
    await moreSweeps(2);
    assert.equal(await recorded(id), 1, 'accepting starts a new wait');
    assert.equal(reminders(id).length, 1, 'accepting starts a new wait');
    r = await R.request('POST', `${DQ}/${id}/messages`, { token: q1.token, json: { content: 'hello?' } });
    assert.equal(r.status, 201, r.text);
    await passTime(id);
    ev = await ws.next(isEvent('concierge.reminder', (f) => f.data.query_id === id), WAIT_MS, 'unanswered');
    assert.equal(ev.room, `user:${agent.id}`);
    assert.equal(ev.data.reason, 'UNANSWERED');
    assert.equal(ev.data.assigned_to, agent.id);
    await moreSweeps(3);
    assert.equal(await recorded(id), 2);
    assert.equal(reminders(id).length, 2);

    // answered: however long it then waits, nobody is reminded
    r = await R.request('POST', `${DQ}/${id}/messages`, { token: agent.token, json: { content: 'here' } });
    assert.equal(r.status, 201, r.text);
    await passTime(id);
    await moreSweeps(3);
    assert.equal(await recorded(id), 2);
    assert.equal(reminders(id).length, 2);

    // the donor writes again: a new wait, a new reminder
    r = await R.request('POST', `${DQ}/${id}/messages`, { token: q1.token, json: { content: 'and now?' } });
    await passTime(id);
    ev = await ws.next(isEvent('concierge.reminder', (f) => f.data.query_id === id && f.data.reason === 'UNANSWERED'),
      WAIT_MS, 'second unanswered');
    await moreSweeps(3);
    assert.equal(await recorded(id), 3);
    assert.equal(reminders(id).length, 3);

    // resolved queries are never reminded
    assert.equal((await R.request('PATCH', `${DQ}/${id}/resolve`, { token: agent.token })).status, 200);
    await passTime(id);
    await moreSweeps(3);
    assert.equal(await recorded(id), 3);
    assert.equal(reminders(id).length, 3);
    const [row] = await sql(R, 'SELECT reminder_count FROM concierge_queries WHERE id = $1', [id]);
    assert.equal(row.reminder_count, 3);
  } finally { ws?.close(); await R.stop(); }
});

test('opening queries is rate limited per client address and per donor', async () => {
  const L = await startServer({ host: { trusted_proxies: '127.0.0.1' },
    plugins: { ...TEST_PLUGINS, concierge: { create_rate_ip: '3', create_rate_donor: '2', create_rate_window: '86400' } } });
  try {
    const open = (donorId, ip) => L.request('POST', DQ, { headers: { 'x-forwarded-for': ip },
      json: { donor: 'Rate', donor_id: donorId, content: 'hi' } });
    const x = uniq('x');
    assert.equal((await open(x, '10.0.0.1')).status, 201);
    assert.equal((await open(x, '10.0.0.2')).status, 201);
    let r = await open(x, '10.0.0.3');
    assertEnvelope(assert, r, 429, 'RATE_LIMITED');
    assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After');
    for (const d of ['a', 'b', 'c']) assert.equal((await open(uniq(d), '10.0.0.4')).status, 201);
    r = await open(uniq('d'), '10.0.0.4');
    assertEnvelope(assert, r, 429, 'RATE_LIMITED');
    assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After');
    assert.equal((await open(uniq('d'), '10.0.0.5')).status, 201);
    const [row] = await sql(L, 'SELECT count(*)::int AS n FROM concierge_queries');
    assert.equal(row.n, 6, 'refused requests wrote nothing');
  } finally { await L.stop(); }
});

test('a donor app\'s FCM token is stored with the query and never returned', async () => {
  const fcm = `fcm-${randomBytes(24).toString('hex')}`;
  const donorId = uniq('dev');
  const r = await srv.request('POST', DQ, { json: { donor: 'App', donor_id: donorId, content: 'hi', fcm_token: fcm } });
  assert.equal(r.status, 201, r.text);
  assert.ok(!r.text.includes(fcm));
  for (const [path, token] of [[`${DQ}/${r.body.query.id}`, admin], [`${DQ}/mine`, r.body.donor_token],
    [`${DQ}?q=${donorId}`, admin]]) {
    const g = await srv.request('GET', path, { token });
    assert.equal(g.status, 200, g.text);
    assert.ok(!g.text.includes(fcm), path);
  }
  const [row] = await sql(srv, 'SELECT donor_fcm_token FROM concierge_queries WHERE id = $1', [r.body.query.id]);
  assert.equal(row.donor_fcm_token, fcm);
  const bad = await srv.request('POST', DQ, { json: { donor: 'App', donor_id: donorId, content: 'hi', fcm_token: 42 } });
  assertEnvelope(assert, bad, 422, 'VALIDATION_ERROR');
});
