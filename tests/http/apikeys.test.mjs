// API keys and donor sessions.  A key is shown once, at creation
// (`sbk_<12 hex prefix>_<43 base64url>`); the server keeps only its
// SHA-256 and the prefix, which identifies it in lists.  Scopes are
// registered permissions the creator holds; a key may expire, records
// when it was last used, and a revoked or expired key stops working at
// once in every worker.  Donor tokens are minted only by API keys holding
// donors.impersonate and are good for "authenticated" routes, not for
// staff or permission routes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  startServer, assertEnvelope, pgClient, withDb, databaseUrl, TEST_PLUGINS,
} from './lib/harness.mjs';
import { accessPids, sleepUntil, workerConnections } from './lib/helpers.mjs';

const KEY_RE = /^sbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const KEYS = '/api/v1/api-keys';
const DONORS = '/api/v1/donor-sessions';
const WHOAMI = '/api/v1/probe/hello/x';	// DELETE: probe.manage, answers the worker's pid
const ADMIN_USER_PASSWORD = 'admin-user-password-0123';

let srv, superToken;

before(async () => {
  srv = await startServer({ plugins: TEST_PLUGINS, workers: 2 });
  superToken = await srv.login();
});
after(async () => { await srv?.stop(); });

async function sql(text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

function createKey(json, token = superToken, headers = {}) {
  return srv.request('POST', KEYS, { token, json, headers });
}

async function newKey(scopes, extra = {}) {
  const r = await createKey({ name: `key ${randomBytes(4).toString('hex')}`, scopes, ...extra });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

const withKey = (key, method, path, json) => srv.request(method, path, { headers: { 'x-api-key': key }, json });

async function listKeys() {
  const r = await srv.request('GET', `${KEYS}?limit=200`, { token: superToken });
  assert.equal(r.status, 200, r.text);
  return r;
}

function assert401(r, what) {
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  assert.equal(r.headers.get('www-authenticate'), 'Bearer', what);
}

test('creating a key answers 201 with the key (once), its prefix, scopes and expiry', async () => {
  const r = await createKey({ name: 'CRM sync', scopes: ['users.manage', 'example.read'] });
  assert.equal(r.status, 201, r.text);
  for (const f of ['id', 'name', 'prefix', 'scopes', 'expires_at', 'key']) assert.ok(f in r.body, `field ${f}`);
  assert.ok(Number.isInteger(r.body.id));
  assert.equal(r.body.name, 'CRM sync');
  assert.deepEqual(r.body.scopes, ['users.manage', 'example.read']);
  assert.equal(r.body.expires_at, null);
  const m = KEY_RE.exec(r.body.key);
  assert.ok(m, `key format: ${r.body.key}`);
  assert.equal(m[1], r.body.prefix, 'the prefix in the key is the prefix shown');
  assert.match(r.body.prefix, /^[0-9a-f]{12}$/);
  assert.equal(r.headers.get('cache-control'), 'no-store');

  // Every key is its own: another prefix, another secret.
  const other = await newKey(['users.manage']);
  assert.notEqual(other.prefix, r.body.prefix);
  assert.notEqual(KEY_RE.exec(other.key)[2], m[2]);

  // With an expiry: the same instant comes back.
  const when = new Date(Date.now() + 86400_000);
  when.setMilliseconds(0);
  const e = await newKey([], { expires_at: when.toISOString() });
  assert.equal(Date.parse(e.expires_at), when.getTime(), e.expires_at);
  assert.match(e.expires_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  assert.deepEqual(e.scopes, []);
});

test('the secret is never shown again, and only its SHA-256 is stored', async () => {
  const k = await newKey(['users.manage']);
  const secret = KEY_RE.exec(k.key)[2];

  const list = await listKeys();
  for (const item of list.body.data) assert.equal('key' in item, false, `key field in ${JSON.stringify(item)}`);
  assert.ok(!list.text.includes(secret), 'the list shows the secret');
  const item = list.body.data.find((x) => x.id === k.id);
  assert.ok(item, 'the new key is listed');
  assert.equal(item.prefix, k.prefix);
  assert.equal(item.name, k.name);
  assert.deepEqual(item.scopes, ['users.manage']);
  assert.equal(item.revoked_at, null);

  const [row] = await sql('SELECT prefix, key_hash FROM api_keys WHERE id = $1', [k.id]);
  assert.equal(row.prefix, k.prefix);
  assert.match(row.key_hash, /^[0-9a-f]{64}$/);
  assert.equal(row.key_hash, createHash('sha256').update(k.key).digest('hex'));

  // Nowhere in the database, nowhere in the server's output.
  const tables = await sql(`SELECT table_schema, table_name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`);
  assert.ok(tables.length > 0);
  for (const t of tables) {
    const [hit] = await sql(`SELECT count(*)::int AS n FROM "${t.table_schema}"."${t.table_name}" x
      WHERE x::text LIKE '%' || $1 || '%'`, [secret]);
    assert.equal(hit.n, 0, `the secret is stored in ${t.table_schema}.${t.table_name}`);
  }
  // The scan does find what is there: the hash, in api_keys.
  const holding = [];
  for (const t of tables) {
    const [hit] = await sql(`SELECT count(*)::int AS n FROM "${t.table_schema}"."${t.table_name}" x
      WHERE x::text LIKE '%' || $1 || '%'`, [row.key_hash]);
    if (hit.n > 0) holding.push(t.table_name);
  }
  assert.ok(holding.includes('api_keys'), `hash found in ${holding}`);
  assert.ok(!srv.output.includes(secret), 'the server logged the secret');
});

test('a key works within its scopes, is 403 outside them, and records its last use', async () => {
  const k = await newKey(['users.manage']);
  let item = (await listKeys()).body.data.find((x) => x.id === k.id);
  assert.equal(item.last_used_at, null, 'not used yet');

  const t0 = Date.now();
  let r = await withKey(k.key, 'GET', '/api/v1/users');
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.body.data));
  assertEnvelope(assert, await withKey(k.key, 'GET', '/api/v1/roles'), 403, 'FORBIDDEN');
  assertEnvelope(assert, await withKey(k.key, 'GET', KEYS), 403, 'FORBIDDEN');
  assertEnvelope(assert, await withKey(k.key, 'POST', DONORS, { donor_id: 'd', donor: 'D' }), 403, 'FORBIDDEN');
  // Staff routes are for signed-in people, whatever the key holds.
  assertEnvelope(assert, await withKey(k.key, 'GET', '/api/v1/users/me'), 403, 'FORBIDDEN');
  assertEnvelope(assert, await withKey(k.key, 'GET', '/api/v1/permissions'), 403, 'FORBIDDEN');
  // "Authenticated" routes take a key (logout revokes nothing of it).
  r = await withKey(k.key, 'POST', '/api/v1/auth/logout');
  assert.equal(r.status, 204, r.text);
  assert.equal((await withKey(k.key, 'GET', '/api/v1/users')).status, 200);

  item = (await listKeys()).body.data.find((x) => x.id === k.id);
  assert.notEqual(item.last_used_at, null, 'last_used_at is set after use');
  const used = Date.parse(item.last_used_at);
  assert.ok(Number.isFinite(used), item.last_used_at);
  assert.ok(used >= t0 - 5000 && used <= Date.now() + 5000, `last_used_at ${item.last_used_at}`);
  assert.ok(used >= Date.parse(item.created_at), 'used after it was created');
});

test('expiry: a past expires_at is refused (422); a key past its expiry is 401', async () => {
  let r = await createKey({ name: 'stale', scopes: [], expires_at: new Date(Date.now() - 60_000).toISOString() });
  const body = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(body.errors.map((e) => e.field), ['expires_at']);
  r = await createKey({ name: 'stale', scopes: [], expires_at: 'tomorrow' });
  assert.ok([400, 422].includes(r.status), r.text);
  assertEnvelope(assert, r, r.status, 'VALIDATION_ERROR');

  // A key a few seconds from its expiry works; once the clock is past
  // it, it is refused.  "Works before" is only shown by an answer that
  // came back before the expiry: a round a loaded machine made slower
  // than the lifetime is done again with a longer one.
  let k, expiresAt;
  for (let life = 3000; ; life *= 2) {
    assert.ok(life <= 96000, 'no key could be created and used within its lifetime');
    expiresAt = Date.now() + life;
    r = await createKey({ name: `key ${randomBytes(4).toString('hex')}`, scopes: ['users.manage'],
      expires_at: new Date(expiresAt).toISOString() });
    if (r.status !== 201 && Date.now() >= expiresAt) continue;	// already past it when it arrived
    assert.equal(r.status, 201, r.text);
    k = r.body;
    r = await withKey(k.key, 'GET', '/api/v1/users');
    if (Date.now() >= expiresAt) continue;
    assert.equal(r.status, 200, `before its expiry: ${r.text}`);
    break;
  }
  // After it: a wait for the clock, not for the server.
  await sleepUntil(expiresAt + 1000);
  assert401(await withKey(k.key, 'GET', '/api/v1/users'), 'expired key');
  assert401(await withKey(k.key, 'POST', '/api/v1/auth/logout'), 'expired key on an authenticated route');
});

test('revocation takes effect at once, in every worker', async () => {
  const k = await newKey(['probe.manage']);
  const req = (id) => ({ method: 'DELETE', path: WHOAMI,
    headers: { 'x-api-key': k.key, ...(id ? { 'x-request-id': id } : {}) } });

  // A connection to each worker (whichever worker a new connection lands
  // on is Kore's choice: they are opened until both have one).
  const w = await workerConnections(srv, 2);
  try {
    // The key works in both workers first.
    for (const pid of w.pids) {
      const a = await w.request(pid, req());
      assert.equal(a.status, 200, a.text);
      assert.equal(a.body.pid, pid);
    }

    const del = await srv.request('DELETE', `${KEYS}/${k.id}`, { token: superToken });
    assert.equal(del.status, 204, del.text);
    assert.equal(del.text, '');

    // Right after: refused in every worker.  Which worker answered a 401
    // is read from the access log, by request id.
    const sent = new Map();
    for (const pid of w.pids) {
      const id = `revoked-${randomBytes(8).toString('hex')}`;
      sent.set(id, pid);
      const a = await w.request(pid, req(id));
      assert.equal(a.status, 401, `a revoked key was let in by worker ${pid}: ${a.status} ${a.text}`);
      assert.equal(a.body.code, 'UNAUTHENTICATED');
    }
    const seen = new Set();
    for (const [id, pid] of await accessPids(srv, [...sent.keys()])) {
      assert.equal(pid, sent.get(id), `${id} answered by the worker it was sent to`);
      seen.add(pid);
    }
    assert.equal(seen.size, 2, `401s came from ${seen.size} worker(s)`);
  } finally { w.close(); }

  const item = (await listKeys()).body.data.find((x) => x.id === k.id);
  assert.ok(item, 'a revoked key stays listed');
  assert.notEqual(item.revoked_at, null);
  assertEnvelope(assert, await srv.request('DELETE', `${KEYS}/999999`, { token: superToken }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('DELETE', `${KEYS}/abc`, { token: superToken }), 404, 'NOT_FOUND');
});

test('malformed keys, unknown prefixes and wrong secrets are 401; so are two credentials at once', async () => {
  const k = await newKey(['users.manage']);
  const [, prefix, secret] = KEY_RE.exec(k.key);
  let otherPrefix;
  do otherPrefix = randomBytes(6).toString('hex'); while (otherPrefix === prefix);
  const flip = (s) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
  const bad = {
    garbage: 'garbage',
    'bare sbk_': 'sbk_',
    'no secret': `sbk_${prefix}_`,
    'no separator': `sbk_${prefix}${secret}`,
    'prefix not hex': `sbk_zzzzzzzzzzzz_${secret}`,
    'prefix in upper case': `sbk_${prefix.toUpperCase()}_${secret}`,
    'short prefix': `sbk_${prefix.slice(0, 11)}_${secret}`,
    'another scheme': `sk_${prefix}_${secret}`,
    'unknown prefix, real secret': `sbk_${otherPrefix}_${secret}`,
    'right prefix, wrong secret': `sbk_${prefix}_${flip(secret)}`,
    'right prefix, truncated secret': `sbk_${prefix}_${secret.slice(0, 42)}`,
    'right prefix, longer secret': `${k.key}A`,
    'very long': `sbk_${prefix}_${'A'.repeat(5000)}`,
  };
  for (const [name, key] of Object.entries(bad)) {
    assert401(await withKey(key, 'GET', '/api/v1/users'), name);
  }
  // The key itself still works (nothing above locked it).
  assert.equal((await withKey(k.key, 'GET', '/api/v1/users')).status, 200);

  // Both a bearer token and a key: refused, even when each is valid.
  let r = await srv.request('GET', '/api/v1/users', { token: superToken, headers: { 'x-api-key': k.key } });
  assert401(r, 'both credentials');
  r = await srv.request('GET', '/api/v1/example/hello', { token: superToken, headers: { 'x-api-key': k.key } });
  assert401(r, 'both credentials on a public route');
  // A bad key is refused on a public route too, not ignored.
  assert401(await withKey('garbage', 'GET', '/api/v1/example/hello'), 'bad key on a public route');
});

test('scopes must be registered (422 at scopes[i]) and held by the creator (403)', async () => {
  let r = await createKey({ name: 'bad scope', scopes: ['nope.nothing'] });
  let body = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(body.errors.map((e) => e.field), ['scopes[0]']);
  r = await createKey({ name: 'bad scope', scopes: ['users.manage', 'nope.nothing'] });
  body = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(body.errors.map((e) => e.field), ['scopes[1]']);
  for (const json of [{ name: 'x' }, { scopes: [] }, { name: '', scopes: [] }, { name: 'x', scopes: 'users.manage' },
    { name: 'x', scopes: [1] }]) {
    r = await createKey(json);
    assert.ok([400, 422].includes(r.status), `${JSON.stringify(json)}: ${r.status} ${r.text}`);
    assertEnvelope(assert, r, r.status, 'VALIDATION_ERROR');
  }

  // An ADMIN does not hold roles.manage, so cannot hand it to a key.
  const roles = await srv.request('GET', '/api/v1/roles', { token: superToken });
  const admin = roles.body.data.find((x) => x.name === 'ADMIN');
  assert.ok(admin.permissions.includes('api_keys.manage') && !admin.permissions.includes('roles.manage'),
    `ADMIN holds ${admin.permissions}`);
  const u = await srv.request('POST', '/api/v1/users', { token: superToken,
    json: { username: 'keys_admin', password: ADMIN_USER_PASSWORD, name: 'Keys Admin', role: 'ADMIN' } });
  assert.equal(u.status, 201, u.text);
  const adminToken = await srv.login('keys_admin', ADMIN_USER_PASSWORD);
  assertEnvelope(assert, await createKey({ name: 'too much', scopes: ['roles.manage'] }, adminToken), 403, 'FORBIDDEN');
  assertEnvelope(assert, await createKey({ name: 'too much', scopes: ['users.manage', 'roles.manage'] }, adminToken),
    403, 'FORBIDDEN');
  r = await createKey({ name: 'enough', scopes: ['users.manage'] }, adminToken);
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.body.scopes, ['users.manage']);

  // A key that manages keys passes on no more than it holds.
  const manager = await newKey(['api_keys.manage', 'users.manage']);
  r = await srv.request('POST', KEYS, { headers: { 'x-api-key': manager.key }, json: { name: 'child', scopes: ['users.manage'] } });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.key, KEY_RE);
  r = await srv.request('POST', KEYS, { headers: { 'x-api-key': manager.key }, json: { name: 'child', scopes: ['roles.manage'] } });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
});

test('donor sessions are minted only by an API key holding donors.impersonate', async () => {
  const body = { donor_id: 'ext-42', donor: 'Grace Donor' };
  // A person, even the super-admin, does not mint donor tokens.
  assertEnvelope(assert, await srv.request('POST', DONORS, { token: superToken, json: body }), 403, 'FORBIDDEN');
  const everyOther = (await srv.request('GET', '/api/v1/permissions', { token: superToken })).body.data
    .map((p) => p.name).filter((p) => p !== 'donors.impersonate');
  for (const scopes of [[], ['users.manage'], everyOther]) {
    const k = await newKey(scopes);
    assertEnvelope(assert, await withKey(k.key, 'POST', DONORS, body), 403, 'FORBIDDEN');
  }
  assert401(await srv.request('POST', DONORS, { json: body }), 'anonymous');

  const k = await newKey(['donors.impersonate']);
  const r = await withKey(k.key, 'POST', DONORS, body);
  assert.equal(r.status, 201, r.text);
  assert.equal(typeof r.body.donor_token, 'string');
  assert.equal(r.body.token_type, 'Bearer');
  assert.equal(r.body.expires_in, 86400);
  assert.equal(r.headers.get('cache-control'), 'no-store');
});

test('donor-session bodies are validated (422)', async () => {
  const k = await newKey(['donors.impersonate']);
  let r = await withKey(k.key, 'POST', DONORS, {});
  let body = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(body.errors.map((e) => e.field).sort(), ['donor', 'donor_id']);
  const cases = [
    [{ donor: 'No Id' }, 'donor_id'],
    [{ donor_id: 'ext-1' }, 'donor'],
    [{ donor_id: '', donor: 'Empty Id' }, 'donor_id'],
    [{ donor_id: 'ext-1', donor: '' }, 'donor'],
    [{ donor_id: 42, donor: 'Number Id' }, 'donor_id'],
    [{ donor_id: 'ext-1', donor: ['x'] }, 'donor'],
    [{ donor_id: 'x'.repeat(129), donor: 'Long Id' }, 'donor_id'],
    [{ donor_id: null, donor: 'Null Id' }, 'donor_id'],
  ];
  for (const [json, field] of cases) {
    r = await withKey(k.key, 'POST', DONORS, json);
    body = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    assert.ok(body.errors.some((e) => e.field === field), `${JSON.stringify(json)}: ${r.text}`);
  }
  // Not JSON at all.
  r = await srv.request('POST', DONORS, { headers: { 'x-api-key': k.key, 'content-type': 'application/json' }, body: '{' });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  // At the length limit it is fine.
  r = await withKey(k.key, 'POST', DONORS, { donor_id: 'x'.repeat(128), donor: 'Long But Fine' });
  assert.equal(r.status, 201, r.text);
});

test('a donor token is good on authenticated routes, 403 on staff and permission routes', async () => {
  const k = await newKey(['donors.impersonate']);
  const minted = await withKey(k.key, 'POST', DONORS, { donor_id: 'ext-7', donor: 'Donor Seven' });
  assert.equal(minted.status, 201, minted.text);
  const token = minted.body.donor_token;

  for (const [method, path, json] of [
    ['GET', '/api/v1/users/me'],
    ['PATCH', '/api/v1/users/me', {}],
    ['GET', '/api/v1/permissions'],
    ['GET', '/api/v1/users'],
    ['GET', '/api/v1/roles'],
    ['GET', KEYS],
    ['POST', KEYS, { name: 'donor key', scopes: [] }],
    ['POST', DONORS, { donor_id: 'ext-8', donor: 'Donor Eight' }],
    ['GET', '/api/v1/example/notes/1'],
  ]) {
    const r = await srv.request(method, path, { token, json });
    assertEnvelope(assert, r, 403, 'FORBIDDEN');
  }
  const out = await srv.request('POST', '/api/v1/auth/logout', { token });
  assert.equal(out.status, 204, out.text);
  assert.equal(out.text, '');
});
