// The customers plugin (API.md "Customers"), black box over HTTP against
// real PostgreSQL: every route, validation, the 409 for a phone number on
// file, ?phone= in any spelling, q/tag filters, paging, permissions, the
// timeline merged from a test channel plugin's sources
// (tests/plugins/timeline_probe.c, which imports customers.directory and
// is unknown to the customers plugin), 50 concurrent find-or-create calls
// for one new number, the privacy hooks, and no phone number in clear in
// a pg_dump of the database or in the server's log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { startServer, TEST_PLUGINS, ADMIN_PASSWORD, DATA_KEY, assertEnvelope, testPlugin, pgClient, withDb,
  databaseUrl, pgConfig, createDatabase, dropDatabase } from './lib/harness.mjs';
import { burst, createUnprivilegedUser, poll, WAIT_MS } from './lib/helpers.mjs';

const C = '/api/v1/customers';
let srv, admin, agentTok, adminTok, noneTok;
const uniq = (p) => `${p}-${randomBytes(4).toString('hex')}`;

// Every number the file uses, to look for afterwards.  Indian mobiles
// (10 digits from 6-9) with the plugin's default_country IN, so the
// national spelling works; one British and one US number besides.
const used = [];
function mobile() {
  const national = `9${String(randomInt(0, 1e9)).padStart(9, '0')}`;
  const n = { e164: `+91${national}`, national, spaced: `+91 ${national.slice(0, 5)} ${national.slice(5)}` };
  used.push(n);
  return n;
}

async function sql(text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

async function makeUser(role) {
  const username = uniq(role.toLowerCase());
  const password = 'user-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name: role, email: `${username}@example.org`, role } });
  assert.equal(r.status, 201, r.text);
  return srv.login(username, password);
}

async function create(json, token = adminTok) {
  const r = await srv.request('POST', C, { token, json });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

const list = (query, token = agentTok) => srv.request('GET', `${C}?${new URLSearchParams(query)}`, { token });

before(async () => {
  srv = await startServer({ workers: 3, plugins: { ...TEST_PLUGINS, audit: {},
    customers: { default_country: 'IN' }, timeline_probe: testPlugin('timeline_probe') } });
  admin = await srv.login();
  agentTok = await makeUser('AGENT');
  adminTok = await makeUser('ADMIN');
  await createUnprivilegedUser(srv, 'cust-noperm');
  noneTok = await srv.login('cust-noperm', ADMIN_PASSWORD);
});

after(async () => { await srv?.stop(); });

test('create, read back, unknown fields ignored, phone normalised to E.164', async () => {
  const n = mobile();
  const c = await create({ name: 'Asha Rao', phone: n.spaced, email: 'asha@example.org', wa_id: '15551230001',
    tags: ['vip', 'donor'], notes: 'Prefers mornings', attributes: { city: 'Pune', visits: 3 }, shoe_size: 42 });
  assert.equal(typeof c.id, 'number');
  assert.equal(c.name, 'Asha Rao');
  assert.equal(c.phone, n.e164);
  assert.equal(c.email, 'asha@example.org');
  assert.equal(c.wa_id, '15551230001');
  assert.deepEqual(c.tags, ['vip', 'donor']);
  assert.equal(c.notes, 'Prefers mornings');
  assert.deepEqual(c.attributes, { city: 'Pune', visits: 3 });
  assert.match(c.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.equal(c.shoe_size, undefined);
  assert.deepEqual(Object.keys(c).sort(), ['attributes', 'created_at', 'email', 'id', 'name', 'notes', 'phone',
    'tags', 'updated_at', 'wa_id']);
  const g = await srv.request('GET', `${C}/${c.id}`, { token: agentTok });
  assert.equal(g.status, 200, g.text);
  assert.deepEqual(g.body, c);

  // A customer with nothing but a name, and one with nothing at all.
  const bare = await create({ name: 'Walk-in' });
  assert.equal(bare.phone, null);
  assert.equal(bare.wa_id, null);
  assert.deepEqual(bare.tags, []);
  assert.deepEqual(bare.attributes, {});
  assert.equal((await create({})).name, '');
});

test('validation: bad phone, attributes, tags, e-mail, malformed JSON; unknown ids', async () => {
  for (const phone of ['abc', '123', '+999 1234 5678', '+91 12', '']) {
    const r = await srv.request('POST', C, { token: adminTok, json: { name: 'X', phone } });
    const e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    assert.equal(e.errors[0].field, 'phone', `${phone}: ${r.text}`);
    assert.ok(!r.text.includes(phone) || phone === '', 'the input is not echoed');
  }
  for (const attributes of [[1, 2], 'text', 7, true]) {
    const r = await srv.request('POST', C, { token: adminTok, json: { attributes } });
    assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'attributes');
  }
  const big = { blob: 'x'.repeat(17000) };
  let r = await srv.request('POST', C, { token: adminTok, json: { attributes: big } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'attributes');
  r = await srv.request('POST', C, { token: adminTok, json: { tags: ['ok', 5] } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'tags[1]');
  r = await srv.request('POST', C, { token: adminTok, json: { tags: ['ok', ''] } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'tags[1]');
  r = await srv.request('POST', C, { token: adminTok, json: { tags: 'vip' } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'tags');
  r = await srv.request('POST', C, { token: adminTok, json: { email: 'not an address' } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'email');
  r = await srv.request('POST', C, { token: adminTok, json: { wa_id: '+91 98' } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'wa_id');
  r = await srv.request('POST', C, { token: adminTok, json: { name: 5 } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'name');
  r = await srv.request('POST', C, { token: adminTok, body: '{"name": "x",', headers: { 'content-type': 'application/json' } });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  r = await srv.request('POST', C, { token: adminTok, body: '[1]', headers: { 'content-type': 'application/json' } });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  for (const id of ['999999999', 'abc', '0', '-1', '1e3', '99999999999999999999']) {
    assertEnvelope(assert, await srv.request('GET', `${C}/${id}`, { token: agentTok }), 404, 'NOT_FOUND');
    assertEnvelope(assert, await srv.request('PUT', `${C}/${id}`, { token: adminTok, json: { name: 'n' } }), 404,
      'NOT_FOUND');
    assertEnvelope(assert, await srv.request('DELETE', `${C}/${id}`, { token: adminTok }), 404, 'NOT_FOUND');
    assertEnvelope(assert, await srv.request('GET', `${C}/${id}/timeline`, { token: agentTok }), 404, 'NOT_FOUND');
  }
  // Nothing half-written by any of it.
  assert.equal((await sql("SELECT count(*)::int AS n FROM customers WHERE name = 'X'"))[0].n, 0);
});

test('a phone number already on file is 409 with the existing id, in any spelling, on POST and PUT', async () => {
  const n = mobile();
  const first = await create({ name: 'First', phone: n.e164 });
  for (const phone of [n.e164, n.spaced, n.national, `0${n.national.slice(0, 5)}-${n.national.slice(5)}`]) {
    const r = await srv.request('POST', C, { token: adminTok, json: { name: 'Second', phone } });
    const e = assertEnvelope(assert, r, 409, 'CONFLICT');
    assert.equal(e.errors[0].message, String(first.id));
    assert.equal(e.errors[0].field, 'phone');
    assert.ok(!r.text.includes(n.national), 'the number is not in the answer');
  }
  const other = await create({ name: 'Other', phone: mobile().e164 });
  const r = await srv.request('PUT', `${C}/${other.id}`, { token: adminTok, json: { phone: n.spaced } });
  assert.equal(assertEnvelope(assert, r, 409, 'CONFLICT').errors[0].message, String(first.id));
  assert.equal((await srv.request('GET', `${C}/${other.id}`, { token: agentTok })).body.name, 'Other');
  assert.equal((await sql("SELECT count(*)::int AS n FROM customers WHERE name = 'Second'"))[0].n, 0);
});

test('?phone= finds the customer by blind index in every spelling; a bad one is 422', async () => {
  const n = mobile();
  const c = await create({ name: 'Findable', phone: n.national });
  for (const phone of [n.e164, n.spaced, n.national, `0${n.national}`, `(+91) ${n.national.slice(0, 5)}-${n.national.slice(5)}`]) {
    const r = await list({ phone });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data.map((x) => x.id), [c.id], phone);
    assert.equal(r.body.next_cursor, null);
  }
  assert.deepEqual((await list({ phone: mobile().e164 })).body.data, []);
  const r = await list({ phone: 'not-a-number' });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'phone');
  // The table holds the index and the sealed value, never the number.
  const rows = await sql('SELECT phone_sealed, phone_index FROM customers WHERE id = $1', [c.id]);
  assert.match(rows[0].phone_sealed, /^v\d\./);
  assert.match(rows[0].phone_index, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(!JSON.stringify(rows).includes(n.national));
});

test('q searches name and e-mail with % and _ taken literally; tag is array containment', async () => {
  const t = uniq('t').replace('-', '');
  const a = await create({ name: `50% off_${t}`, tags: [t, 'x'] });
  const b = await create({ name: `500 offX${t}`, tags: [t] });
  const c = await create({ name: 'Mail only', email: `${t}@example.org` });
  let r = await list({ q: `50% off_${t}` });
  assert.deepEqual(r.body.data.map((x) => x.id), [a.id]);
  r = await list({ q: t.toUpperCase() });
  assert.deepEqual(r.body.data.map((x) => x.id), [c.id, b.id, a.id]);
  r = await list({ q: `${t}@EXAMPLE` });
  assert.deepEqual(r.body.data.map((x) => x.id), [c.id]);
  r = await list({ tag: t });
  assert.deepEqual(r.body.data.map((x) => x.id), [b.id, a.id]);
  r = await list({ tag: t, q: '50%' });
  assert.deepEqual(r.body.data.map((x) => x.id), [a.id]);
  assert.deepEqual((await list({ tag: `${t}-none` })).body.data, []);
});

test('lists page newest first with limit and cursor; bad limit and cursor are 400', async () => {
  const t = uniq('page');
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await create({ name: `P${i}`, tags: [t] })).id);
  const seen = [];
  let cursor = null;
  let pages = 0;
  do {
    const r = await list(cursor ? { tag: t, limit: 2, cursor } : { tag: t, limit: 2 });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.data.length <= 2);
    seen.push(...r.body.data.map((x) => x.id));
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(seen, ids.reverse());
  for (const q of [{ limit: 0 }, { limit: 201 }, { limit: 'x' }, { cursor: 'abc' }, { cursor: '-5' }]) {
    const r = await list(q);
    const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.equal(e.errors[0].field, Object.keys(q)[0]);
  }
});

test('PUT changes only the fields given; null clears', async () => {
  const n = mobile();
  const c = await create({ name: 'Before', phone: n.e164, email: 'b@example.org', tags: ['a'], notes: 'n',
    attributes: { k: 1 } });
  let r = await srv.request('PUT', `${C}/${c.id}`, { token: adminTok, json: { name: 'After', unknown: 1 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.name, 'After');
  assert.equal(r.body.phone, n.e164);
  assert.equal(r.body.email, 'b@example.org');
  assert.deepEqual(r.body.tags, ['a']);
  assert.deepEqual(r.body.attributes, { k: 1 });
  assert.ok(r.body.updated_at >= c.updated_at);
  const m = mobile();
  r = await srv.request('PUT', `${C}/${c.id}`, { token: adminTok,
    json: { phone: m.spaced, tags: ['b', 'c'], attributes: { z: [1] }, email: null, notes: null } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.phone, m.e164);
  assert.deepEqual(r.body.tags, ['b', 'c']);
  assert.deepEqual(r.body.attributes, { z: [1] });
  assert.equal(r.body.email, null);
  assert.equal(r.body.notes, '');
  // The old number is free again, the new one finds the customer.
  assert.deepEqual((await list({ phone: n.e164 })).body.data, []);
  assert.deepEqual((await list({ phone: m.national })).body.data.map((x) => x.id), [c.id]);
  r = await srv.request('PUT', `${C}/${c.id}`, { token: adminTok, json: { phone: null, attributes: null } });
  assert.equal(r.body.phone, null);
  assert.deepEqual(r.body.attributes, {});
  r = await srv.request('PUT', `${C}/${c.id}`, { token: adminTok, json: { phone: '12' } });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'phone');
});

test('DELETE erases the customer and says what went; a second DELETE is 404', async () => {
  const n = mobile();
  const c = await create({ name: 'Leaving', phone: n.e164 });
  const r = await srv.request('DELETE', `${C}/${c.id}`, { token: adminTok });
  assert.equal(r.status, 200, r.text);
  // Every plugin with a privacy hook answered, as POST /api/v1/privacy/delete.
  assert.deepEqual(Object.keys(r.body), ['deleted']);
  assert.equal(r.body.deleted.customers, 1);
  for (const [plugin, n] of Object.entries(r.body.deleted)) assert.ok(Number.isInteger(n), plugin);
  assertEnvelope(assert, await srv.request('GET', `${C}/${c.id}`, { token: agentTok }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('DELETE', `${C}/${c.id}`, { token: adminTok }), 404, 'NOT_FOUND');
  assert.deepEqual((await list({ phone: n.e164 })).body.data, []);
  assert.equal((await sql('SELECT count(*)::int AS n FROM customers WHERE id = $1', [c.id]))[0].n, 0);
});

test('permissions: 401 without credentials, 403 without customers.read/manage', async () => {
  const c = await create({ name: 'Guarded' });
  const routes = [['GET', C], ['POST', C, {}], ['GET', `${C}/${c.id}`], ['PUT', `${C}/${c.id}`, {}],
    ['DELETE', `${C}/${c.id}`], ['GET', `${C}/${c.id}/timeline`]];
  for (const [method, path, json] of routes) {
    assertEnvelope(assert, await srv.request(method, path, { json }), 401, 'UNAUTHENTICATED');
    assertEnvelope(assert, await srv.request(method, path, { json, token: noneTok }), 403, 'FORBIDDEN');
  }
  // AGENT reads, ADMIN also manages (the plugin's migration granted them).
  for (const [method, path] of routes.filter(([m]) => m === 'GET'))
    assert.equal((await srv.request(method, path, { token: agentTok })).status, 200);
  for (const [method, path, json] of routes.filter(([m]) => m !== 'GET'))
    assertEnvelope(assert, await srv.request(method, path, { json, token: agentTok }), 403, 'FORBIDDEN');
  assert.equal((await srv.request('PUT', `${C}/${c.id}`, { token: adminTok, json: { notes: 'ok' } })).status, 200);
  const roles = await sql("SELECT name, permissions FROM roles WHERE name IN ('ADMIN', 'AGENT') ORDER BY name");
  assert.ok(roles[0].permissions.includes('customers.read') && roles[0].permissions.includes('customers.manage'));
  assert.ok(roles[1].permissions.includes('customers.read') && !roles[1].permissions.includes('customers.manage'));
});

test('timeline: every source merged newest first, paged by an opaque validated cursor', async () => {
  const c = await create({ name: 'Chatty' });
  const add = async (channel, at, summary) => {
    const r = await srv.request('POST', '/api/v1/timeline-probe/items', { token: admin,
      json: { customer_id: c.id, channel, at, summary } });
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  };
  // Ties on `at` across and within channels: order is at desc, channel, id desc.
  const T = (s) => `2026-01-0${s}T10:00:00.000000Z`;
  const want = [];
  const a1 = await add('alpha', T(1), 'a1');
  const b1 = await add('beta', T(2), 'b1');
  const a2 = await add('alpha', T(3), 'a2');
  const a3 = await add('alpha', T(3), 'a3');
  const b2 = await add('beta', T(3), 'b2');
  const b3 = await add('beta', '2026-01-04T10:00:00.5Z', 'b3');
  want.push(['beta', b3], ['alpha', a3], ['alpha', a2], ['beta', b2], ['beta', b1], ['alpha', a1]);
  // Someone else's items never show.
  const other = await create({ name: 'Quiet' });
  await srv.request('POST', '/api/v1/timeline-probe/items', { token: admin,
    json: { customer_id: other.id, channel: 'alpha', at: T(5), summary: 'not yours' } });

  const full = await srv.request('GET', `${C}/${c.id}/timeline`, { token: agentTok });
  assert.equal(full.status, 200, full.text);
  assert.deepEqual(full.body.data.map((i) => [i.channel, i.id]), want);
  assert.equal(full.body.next_cursor, null);
  const first = full.body.data[0];
  assert.deepEqual(Object.keys(first).sort(), ['at', 'channel', 'direction', 'id', 'kind', 'status', 'summary']);
  assert.equal(first.kind, 'call');
  assert.equal(first.summary, 'b3');
  assert.equal(full.body.data[1].kind, 'message');

  for (const limit of [1, 2, 4]) {
    const seen = [];
    let cursor = null;
    do {
      const q = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
      const r = await srv.request('GET', `${C}/${c.id}/timeline?${q}`, { token: agentTok });
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.data.length <= limit);
      seen.push(...r.body.data.map((i) => [i.channel, i.id]));
      cursor = r.body.next_cursor;
      if (cursor) assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    } while (cursor);
    assert.deepEqual(seen, want, `limit ${limit}`);
  }

  const page = await srv.request('GET', `${C}/${c.id}/timeline?limit=2`, { token: agentTok });
  const good = page.body.next_cursor;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  for (const cursor of ['x', '!!!', `${good}A`, b64({ at: 'yesterday', channel: 'alpha', id: 1 }),
    b64({ at: T(1), channel: 'Alpha!', id: 1 }), b64({ at: T(1), channel: 'alpha', id: '1' }),
    b64({ at: T(1), channel: 'alpha', id: 1, extra: 1 }), b64([1]), 'A'.repeat(600)]) {
    const r = await srv.request('GET', `${C}/${c.id}/timeline?cursor=${encodeURIComponent(cursor)}`, { token: agentTok });
    assert.equal(assertEnvelope(assert, r, 400, 'VALIDATION_ERROR').errors[0].field, 'cursor', cursor);
  }
  // A cursor we did not make but that is well formed is simply a position.
  const r = await srv.request('GET', `${C}/${c.id}/timeline?cursor=${b64({ at: T(3), channel: 'alpha', id: a2 })}`,
    { token: agentTok });
  assert.deepEqual(r.body.data.map((i) => [i.channel, i.id]), want.slice(3));
  const e = await srv.request('GET', `${C}/${c.id}/timeline?limit=500`, { token: agentTok });
  assert.equal(assertEnvelope(assert, e, 400, 'VALIDATION_ERROR').errors[0].field, 'limit');
});

test('customers.directory: find_or_create inside the caller\'s transaction, get, source validation', async () => {
  const n = mobile();
  let r = await srv.request('POST', '/api/v1/timeline-probe/inbound', { token: admin, json: { phone: n.spaced } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.created, true);
  const id = r.body.customer_id;
  r = await srv.request('POST', '/api/v1/timeline-probe/inbound', { token: admin, json: { phone: n.e164 } });
  assert.equal(r.body.created, false);
  assert.equal(r.body.customer_id, id);
  const c = (await srv.request('GET', `${C}/${id}`, { token: agentTok })).body;
  assert.equal(c.name, '');
  assert.equal(c.phone, n.e164);
  // The probe's inbound messages are on the new customer's timeline.
  const t = await srv.request('GET', `${C}/${id}/timeline`, { token: agentTok });
  assert.deepEqual(t.body.data.map((i) => [i.channel, i.direction]), [['alpha', 'inbound'], ['alpha', 'inbound']]);
  // get() through the service; init() saw a bad channel and a duplicate refused.
  r = await srv.request('GET', `/api/v1/timeline-probe/customers/${id}`, { token: admin });
  assert.deepEqual(r.body.customer, c);
  assert.equal(r.body.bad_refused, true);
  assert.equal(r.body.dup_refused, true);
  r = await srv.request('GET', '/api/v1/timeline-probe/customers/99999999', { token: admin });
  assert.equal(r.body.customer, null);
  assert.equal(r.body.dberr, false);
});

test('50 concurrent find-or-create calls for one new number give one customer', async () => {
  // Repeated with a fresh number until a round was answered by at least
  // two workers; every round must give exactly one customer.
  let pids = new Set();
  let rounds = 0;
  await poll(async () => {
    const n = mobile();
    const before = (await sql('SELECT count(*)::int AS n FROM customers'))[0].n;
    const body = JSON.stringify({ phone: rounds % 2 ? n.national : n.e164 });
    const answers = await burst(srv.port, Array.from({ length: 50 }, () => ({ method: 'POST',
      path: '/api/v1/timeline-probe/inbound', body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` } })),
    { password: ADMIN_PASSWORD });
    rounds++;
    const bodies = answers.map((a) => { assert.equal(a.status, 200, a.text); return a.body; });
    const ids = new Set(bodies.map((b) => b.customer_id));
    assert.equal(ids.size, 1, `one customer id, got ${[...ids]}`);
    assert.equal(bodies.filter((b) => b.created).length, 1);
    const found = await list({ phone: n.e164 });
    assert.deepEqual(found.body.data.map((x) => x.id), [...ids]);
    assert.equal((await sql('SELECT count(*)::int AS n FROM customers'))[0].n, before + 1);
    pids = new Set(bodies.map((b) => b.pid));
    return pids.size >= 2;
  }, { timeout: WAIT_MS, interval: 0 });
  assert.ok(pids.size >= 2, `${rounds} rounds, all answered by one worker`);
});

test('privacy hooks: export and erase by customer id and by phone number', async () => {
  const n = mobile();
  const c = await create({ name: 'Subject', phone: n.e164, tags: ['p'] });
  let r = await srv.request('GET', `/api/v1/privacy/export?customer_id=${c.id}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.customers, { customers: [c] });
  r = await srv.request('GET', `/api/v1/privacy/export?phone=${encodeURIComponent(n.spaced)}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.customers, { customers: [c] });
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { phone: n.spaced } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.deleted.customers, 1);
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { phone: n.e164 } });
  assert.equal(r.body.deleted.customers, 0);
  r = await srv.request('GET', `/api/v1/privacy/export?customer_id=${c.id}`, { token: admin });
  assert.deepEqual(r.body.customers, {});
  const d = await create({ name: 'Subject 2' });
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { customer_id: d.id } });
  assert.equal(r.body.deleted.customers, 1);
  assertEnvelope(assert, await srv.request('GET', `${C}/${d.id}`, { token: agentTok }), 404, 'NOT_FOUND');
});

test('key rotation re-seals phone numbers and WhatsApp ids; they open under the new key alone', async () => {
  const KEY_B = 'customers-rotated-key-0123456789abcdef0123456789ab';
  const database = await createDatabase();
  const plugins = { customers: { default_country: 'IN' } };
  let s2;
  try {
    s2 = await startServer({ plugins, database });
    let tok = await s2.login();
    const made = [];
    for (let i = 0; i < 7; i++) {
      const n = mobile();
      const r = await s2.request('POST', C, { token: tok,
        json: { name: `R${i}`, phone: n.e164, wa_id: i % 2 ? `4477009${String(i).padStart(5, '0')}` : null } });
      assert.equal(r.status, 201, r.text);
      made.push(r.body);
    }
    await s2.request('POST', C, { token: tok, json: { name: 'No phone' } });
    const q = async (text) => {
      const c = await pgClient(withDb(databaseUrl(), database));
      try { return (await c.query(text)).rows; } finally { await c.end(); }
    };
    const underA = await q('SELECT id, phone_sealed, phone_index, wa_id_sealed, wa_id_index FROM customers ORDER BY id');
    await s2.stop({ keepDatabase: true });

    s2 = await startServer({ plugins, database, host: { rekey_batch: '3' },
      env: { SB_DATA_KEY: KEY_B, SB_DATA_KEYS_RETIRED: DATA_KEY } });
    tok = await s2.login();
    const started = await s2.request('POST', '/api/v1/privacy/rekey', { token: tok });
    assert.equal(started.status, 202, started.text);
    let run;
    await poll(async () => {
      const r = await s2.request('GET', '/api/v1/privacy/rekey', { token: tok });
      run = r.body;
      return r.status === 200 && run.status !== 'running';
    }, { interval: 100 });
    assert.equal(run.status, 'done', JSON.stringify(run));
    const mine = run.plugins.find((x) => x.plugin === 'customers');
    assert.equal(mine.resealed, 7 + 3, JSON.stringify(run));
    assert.equal(mine.done, true);
    await s2.stop({ keepDatabase: true });

    // Every sealed value changed, every index stayed; B alone opens them.
    const underB = await q('SELECT id, phone_sealed, phone_index, wa_id_sealed, wa_id_index FROM customers ORDER BY id');
    for (let i = 0; i < underA.length; i++) {
      assert.equal(underB[i].phone_index, underA[i].phone_index);
      assert.equal(underB[i].wa_id_index, underA[i].wa_id_index);
      if (underA[i].phone_sealed) assert.notEqual(underB[i].phone_sealed, underA[i].phone_sealed);
      if (underA[i].wa_id_sealed) assert.notEqual(underB[i].wa_id_sealed, underA[i].wa_id_sealed);
    }
    s2 = await startServer({ plugins, database, env: { SB_DATA_KEY: KEY_B } });
    tok = await s2.login();
    for (const c of made) {
      const g = await s2.request('GET', `${C}/${c.id}`, { token: tok });
      assert.deepEqual(g.body, c);
      const f = await s2.request('GET', `${C}?phone=${encodeURIComponent(c.phone)}`, { token: tok });
      assert.deepEqual(f.body.data.map((x) => x.id), [c.id]);
    }
  } finally {
    await s2?.stop({ keepDatabase: true });
    await dropDatabase(database);
  }
});

// Last: everything above created customers and erased some.
test('no phone number in clear in a pg_dump of the database or in the server log', async () => {
  assert.ok(used.length >= 10, `${used.length} numbers used`);
  const cfg = pgConfig(withDb(databaseUrl(), srv.database));
  const dump = execFileSync('pg_dump', ['-h', cfg.host, '-p', String(cfg.port), '-U', cfg.user, '-d', cfg.database,
    '--no-owner'], { env: { ...process.env, PGPASSWORD: cfg.password ?? '' }, maxBuffer: 256 << 20 }).toString();
  assert.match(dump, /CREATE TABLE public\.customers/);
  const sealed = (await sql('SELECT count(*)::int AS n FROM customers WHERE phone_sealed IS NOT NULL'))[0].n;
  assert.ok(sealed >= 5, `${sealed} customers with a phone number`);
  const log = srv.output;
  assert.ok(log.includes('"component":"access"'), 'the server log has request lines');
  for (const n of used) {
    for (const spelling of [n.e164, n.e164.slice(1), n.national]) {
      assert.ok(!dump.includes(spelling), `pg_dump holds ${spelling}`);
      assert.ok(!log.includes(spelling), `the server log holds ${spelling}`);
    }
  }
});
