// The concierge plugin: donor queries, their lifecycle, isolation between
// donors, the accept race, illegal transitions, validation, and the
// concierge.query.created event on the `agents` room.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startServer, TEST_PLUGINS, assertEnvelope } from './lib/harness.mjs';

let srv, admin;
const agents = {};
const uniq = (p) => `${p}-${randomBytes(4).toString('hex')}`;

async function makeAgent(name) {
  const username = uniq(name);
  const password = 'agent-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name, email: `${username}@example.org`, role: 'AGENT' } });
  assert.equal(r.status, 201, r.text);
  return { id: r.body.id, token: await srv.login(username, password) };
}

async function openQuery(donorId, content = 'How do I book?') {
  const r = await srv.request('POST', '/api/v1/donor-queries', {
    json: { donor: `Donor ${donorId}`, donor_id: donorId, test: 'blood', content } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.query.status, 'IN_PROGRESS');
  assert.equal(r.body.query.assigned_to, null);
  assert.equal(typeof r.body.donor_token, 'string');
  return { q: r.body.query, token: r.body.donor_token };
}

before(async () => {
  srv = await startServer({ plugins: { ...TEST_PLUGINS, concierge: {} } });
  admin = await srv.login();
  agents.a = await makeAgent('agent-a');
  agents.b = await makeAgent('agent-b');
});
after(async () => { await srv?.stop(); });

test('lifecycle: create, accept, chat, transfer, resolve', async () => {
  const { q, token } = await openQuery(uniq('d'));
  const base = `/api/v1/donor-queries/${q.id}`;
  let r = await srv.request('GET', base, { token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.donor_id, q.donor_id);
  r = await srv.request('GET', '/api/v1/donor-queries/mine', { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => x.id), [q.id]);

  r = await srv.request('PATCH', `${base}/accept`, { token: agents.a.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.assigned_to, agents.a.id);

  r = await srv.request('POST', `${base}/messages`, { token: agents.a.token, json: { content: 'Hello donor' } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.sender_type, 'STAFF');
  r = await srv.request('POST', `${base}/messages`, { token, json: { content: 'Hi agent' } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.sender_type, 'DONOR');
  assert.equal(r.body.message_type, 'CHAT');

  r = await srv.request('GET', `${base}/messages`, { token });
  assert.equal(r.status, 200, r.text);
  const types = r.body.data.map((m) => m.message_type);
  assert.deepEqual(types, ['QUERY', 'SYSTEM', 'CHAT', 'CHAT']);
  const ids = r.body.data.map((m) => m.id);
  assert.deepEqual([...ids].sort((x, y) => x - y), ids);
  r = await srv.request('GET', `${base}/messages?after_id=${ids[1]}`, { token: agents.a.token });
  assert.deepEqual(r.body.data.map((m) => m.id), ids.slice(2));

  // transfer to a non-agent (unknown user) is 422
  r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token, json: { to_user_id: 999999 } });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  r = await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
    json: { to_user_id: agents.b.id, note: 'over to you' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'TRANSFERRED');
  assert.equal(r.body.transferred_to_user_id, agents.b.id);
  assert.equal(r.body.transfer_note, 'over to you');

  // the previous assignee may no longer resolve
  r = await srv.request('PATCH', `${base}/resolve`, { token: agents.a.token });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
  r = await srv.request('PATCH', `${base}/resolve`, { token: agents.b.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'RESOLVED');
  assert.equal(r.body.resolved_by, agents.b.id);

  r = await srv.request('GET', `/api/v1/donor-queries?status=RESOLVED`, { token: agents.b.token });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.data.some((x) => x.id === q.id));

  // messages on a resolved query
  r = await srv.request('POST', `${base}/messages`, { token, json: { content: 'one more' } });
  assertEnvelope(assert, r, 409, 'CONFLICT');
  r = await srv.request('POST', `${base}/messages`, { token: agents.b.token, json: { content: 'x' } });
  assertEnvelope(assert, r, 409, 'CONFLICT');
  r = await srv.request('GET', `${base}/messages`, { token });
  assert.equal(r.body.data.filter((m) => m.message_type === 'SYSTEM').length, 3);
});

test('a donor cannot see another donor\'s query', async () => {
  const mine = await openQuery(uniq('d'));
  const other = await openQuery(uniq('d'));
  const base = `/api/v1/donor-queries/${mine.q.id}`;
  assertEnvelope(assert, await srv.request('GET', base, { token: other.token }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', `${base}/messages`, { token: other.token }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('POST', `${base}/messages`, { token: other.token,
    json: { content: 'hi' } }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('POST', `${base}/donor-close`, { token: other.token }), 404, 'NOT_FOUND');
  // a donor token cannot open a query for someone else
  const r = await srv.request('POST', '/api/v1/donor-queries', { token: other.token,
    json: { donor: 'x', donor_id: mine.q.donor_id, content: 'hi' } });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
  // the owner closes; then it is CLOSED and closing again is 409
  let c = await srv.request('POST', `${base}/donor-close`, { token: mine.token });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.status, 'CLOSED');
  c = await srv.request('POST', `${base}/donor-close`, { token: mine.token });
  assertEnvelope(assert, c, 409, 'CONFLICT');
  // donors are not staff
  assertEnvelope(assert, await srv.request('GET', '/api/v1/donor-queries', { token: mine.token }), 403, 'FORBIDDEN');
});

test('concurrent accept: exactly one wins', async () => {
  const { q } = await openQuery(uniq('d'));
  const rs = await Promise.all([agents.a, agents.b].map((a) =>
    srv.request('PATCH', `/api/v1/donor-queries/${q.id}/accept`, { token: a.token })));
  assert.deepEqual(rs.map((r) => r.status).sort(), [200, 409], rs.map((r) => r.text).join('\n'));
  assertEnvelope(assert, rs.find((r) => r.status === 409), 409, 'CONFLICT');
  const r = await srv.request('GET', `/api/v1/donor-queries/${q.id}`, { token: admin });
  assert.equal(r.body.assigned_to, rs[0].status === 200 ? agents.a.id : agents.b.id);
});

test('illegal transitions are 409', async () => {
  const { q } = await openQuery(uniq('d'));
  const base = `/api/v1/donor-queries/${q.id}`;
  // resolve or transfer before anyone accepted
  assertEnvelope(assert, await srv.request('PATCH', `${base}/resolve`, { token: agents.a.token }), 409, 'CONFLICT');
  assertEnvelope(assert, await srv.request('PATCH', `${base}/transfer`, { token: agents.a.token,
    json: { to_user_id: agents.b.id } }), 409, 'CONFLICT');
  assert.equal((await srv.request('PATCH', `${base}/accept`, { token: agents.a.token })).status, 200);
  assertEnvelope(assert, await srv.request('PATCH', `${base}/accept`, { token: agents.a.token }), 409, 'CONFLICT');
  assert.equal((await srv.request('PATCH', `${base}/resolve`, { token: admin })).status, 200);
  assertEnvelope(assert, await srv.request('PATCH', `${base}/resolve`, { token: admin }), 409, 'CONFLICT');
  assertEnvelope(assert, await srv.request('PATCH', `${base}/accept`, { token: agents.b.token }), 409, 'CONFLICT');
  // delete (queries.manage): agents may not, admins may
  assertEnvelope(assert, await srv.request('DELETE', base, { token: agents.a.token }), 403, 'FORBIDDEN');
  assert.equal((await srv.request('DELETE', base, { token: admin })).status, 204);
  assertEnvelope(assert, await srv.request('GET', base, { token: admin }), 404, 'NOT_FOUND');
});

test('validation errors use the envelope', async () => {
  let r = await srv.request('POST', '/api/v1/donor-queries', { json: { donor: 'x', content: 'hi' } });
  let e = assertEnvelope(assert, r, r.status === 422 ? 422 : 400, 'VALIDATION_ERROR');
  assert.ok(e.errors.some((x) => x.field === 'donor_id'), r.text);
  r = await srv.request('POST', '/api/v1/donor-queries', { json: { donor: 'x', donor_id: 'y', content: 'a'.repeat(5000) } });
  e = assertEnvelope(assert, r, r.status === 422 ? 422 : 400, 'VALIDATION_ERROR');
  assert.ok(e.errors.some((x) => x.field === 'content'), r.text);
  r = await srv.request('GET', '/api/v1/donor-queries?status=OPEN', { token: admin });
  e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.equal(e.errors[0].field, 'status');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/donor-queries'), 401, 'UNAUTHENTICATED');
});

test('an agent subscribed to agents gets concierge.query.created', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?access_token=${encodeURIComponent(agents.a.token)}`);
  const frames = [];
  let wake = () => {};
  ws.on('message', (d) => { frames.push(JSON.parse(d.toString())); wake(); });
  ws.on('error', () => {});
  const waitFor = (pred, what) => new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`timeout: ${what}: ${JSON.stringify(frames)}`)), 10000);
    const check = () => { const f = frames.find(pred); if (f) { clearTimeout(t); res(f); } };
    wake = check; check();
  });
  try {
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    await waitFor((f) => f.type === 'ready', 'ready');
    ws.send(JSON.stringify({ type: 'subscribe', room: 'agents' }));
    const s = await waitFor((f) => f.room === 'agents' && (f.type === 'subscribed' || f.type === 'error'), 'subscribed');
    assert.equal(s.type, 'subscribed', JSON.stringify(s));
    const donorId = uniq('ws');
    const { q } = await openQuery(donorId);
    const ev = await waitFor((f) => f.type === 'event' && f.event === 'concierge.query.created'
      && f.data?.id === q.id, 'query.created');
    assert.equal(ev.room, 'agents');
    assert.equal(ev.data.donor_id, donorId);
  } finally { ws.terminate(); }
});

test('query room: the owning donor may join and gets messages; another donor is refused', async () => {
  const mine = await openQuery(uniq('d'));
  const other = await openQuery(uniq('d'));
  const open = async (token) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?access_token=${encodeURIComponent(token)}`);
    const frames = [];
    let wake = () => {};
    ws.on('message', (d) => { frames.push(JSON.parse(d.toString())); wake(); });
    ws.on('error', () => {});
    ws.waitFor = (pred, what) => new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timeout: ${what}: ${JSON.stringify(frames)}`)), 10000);
      const check = () => { const f = frames.find(pred); if (f) { clearTimeout(t); res(f); } };
      wake = check; check();
    });
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    await ws.waitFor((f) => f.type === 'ready', 'ready');
    return ws;
  };
  const room = `query:${mine.q.id}`;
  const a = await open(mine.token);
  const b = await open(other.token);
  try {
    a.send(JSON.stringify({ type: 'subscribe', room }));
    b.send(JSON.stringify({ type: 'subscribe', room }));
    assert.equal((await a.waitFor((f) => f.type === 'subscribed' || f.type === 'error', 'a')).type, 'subscribed');
    assert.equal((await b.waitFor((f) => f.type === 'subscribed' || f.type === 'error', 'b')).type, 'error');
    const r = await srv.request('POST', `/api/v1/donor-queries/${mine.q.id}/messages`, { token: agents.a.token,
      json: { content: 'ping from staff' } });
    assert.equal(r.status, 201, r.text);
    const ev = await a.waitFor((f) => f.type === 'event' && f.event === 'concierge.message.created', 'message');
    assert.equal(ev.room, room);
    assert.equal(ev.data.content, 'ping from staff');
  } finally { a.terminate(); b.terminate(); }
});
