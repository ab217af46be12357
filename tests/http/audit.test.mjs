// The audit plugin: every event is recorded once (in the worker that
// published it), with its actor, request id and client address, secrets
// scrubbed; the log is append-only in the database, hash-chained, and
// GET /api/v1/audit/verify finds the first row that was changed or whose
// predecessor was removed; any number of concurrent appends keep the
// chain whole.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, TEST_PLUGINS, testPlugin, assertEnvelope, pgClient, withDb, databaseUrl,
  ADMIN_PASSWORD,
} from './lib/harness.mjs';
import { createUnprivilegedUser, burst, poll, waitWorkerPids, workerConnections } from './lib/helpers.mjs';

const PLUGINS = { ...TEST_PLUGINS, audit: {}, audit_probe: testPlugin('audit_probe') };
const NOTES = '/api/v1/example/notes';
const PUBLISH = '/api/v1/audit_probe/publish';
const RECORD_KEYS = ['action', 'actor_id', 'actor_name', 'actor_type', 'details', 'donor_id', 'hash',
  'id', 'ip', 'prev_hash', 'request_id', 'target', 'time'].sort();
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

let srv, token, adminId;

before(async () => {
  srv = await startServer({ workers: 2, plugins: PLUGINS });
  token = await srv.login();
  adminId = await sql(srv, "SELECT id FROM users WHERE username = 'admin'").then((r) => Number(r[0].id));
});
after(async () => { await srv?.stop(); });

const rid = (tag) => `${tag}-${randomBytes(6).toString('hex')}`;

async function sql(s, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), s.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

// GET /api/v1/audit with a query object.
function list(query = {}, { tok = token, s = srv } = {}) {
  const qs = new URLSearchParams(query).toString();
  return s.request('GET', `/api/v1/audit${qs ? `?${qs}` : ''}`, { token: tok });
}

// Every record matching the query, walking all pages.
async function listAll(query = {}, { s = srv, limit = 200 } = {}) {
  const out = [];
  let cursor = null;
  for (let pages = 0; pages < 1000; pages++) {
    const r = await list({ ...query, limit, ...(cursor ? { cursor } : {}) }, { s });
    assert.equal(r.status, 200, r.text);
    out.push(...r.body.data);
    cursor = r.body.next_cursor;
    if (cursor === null) return out;
  }
  throw new Error('too many pages');
}

function verify(s = srv) {
  return s.request('GET', '/api/v1/audit/verify', { token: s === srv ? token : s.token });
}

function publish(data, { name, tok, requestId, s = srv } = {}) {
  const headers = requestId ? { 'x-request-id': requestId } : {};
  return s.request('POST', PUBLISH, { token: tok, headers, json: { ...(name ? { name } : {}), data } });
}

// A user in the built-in ADMIN role (the migration grants it audit.read).
async function createAdminUser(s, username) {
  const rows = await sql(s, `INSERT INTO users (username, password_hash, name, role_id)
    SELECT $1, password_hash, 'An admin', (SELECT id FROM roles WHERE name = 'ADMIN')
    FROM users WHERE username = 'admin' RETURNING id`, [username]);
  return Number(rows[0].id);
}

function assertRecordShape(rec) {
  assert.deepEqual(Object.keys(rec).sort(), RECORD_KEYS);
  assert.equal(typeof rec.id, 'number');
  assert.match(rec.time, RFC3339_UTC);
  assert.match(rec.hash, /^[0-9a-f]{64}$/);
  assert.match(rec.prev_hash, /^[0-9a-f]{64}$/);
  assert.ok(['user', 'api_key', 'donor', 'system', 'anonymous'].includes(rec.actor_type), rec.actor_type);
  assert.equal(typeof rec.details, 'object');
}

test('a user action is recorded once, not once per worker, with actor, request id and address', async () => {
  const pids = await waitWorkerPids(srv, 2);
  assert.equal(pids.length, 2);
  const ids = [];
  const publishers = new Set();
  // Each request publishes exactly one event: a note, or an audit_probe
  // event that tells its pid.
  const pair = (tag, i) => {
    const a = rid(`note-${tag}-${i}`);
    const b = rid(`probe-${tag}-${i}`);
    ids.push({ id: a, kind: 'note' }, { id: b, kind: 'probe' });
    return [{ method: 'POST', path: NOTES, headers: { 'content-type': 'application/json',
      authorization: `Bearer ${token}`, 'x-request-id': a }, body: JSON.stringify({ text: `note ${a}` }) },
    { method: 'POST', path: PUBLISH, headers: { 'content-type': 'application/json',
      authorization: `Bearer ${token}`, 'x-request-id': b }, body: JSON.stringify({ data: { n: i } }) }];
  };
  const check = (req, r) => {
    assert.equal(r.headers['x-request-id'], req.headers['x-request-id']);
    if (req.path === PUBLISH) {
      assert.equal(r.status, 202, r.text);
      publishers.add(r.body.pid);
    } else {
      assert.equal(r.status, 201, r.text);
    }
  };
  // A burst of them at once (see burst()), then more on a connection to
  // each worker: whichever worker the burst reached, both publish.
  const reqs = Array.from({ length: 10 }, (_, i) => pair('burst', i)).flat();
  const answers = await burst(srv.port, reqs, { password: ADMIN_PASSWORD });
  answers.forEach((r, i) => check(reqs[i], r));
  const w = await workerConnections(srv, 2);
  try {
    for (const pid of w.pids) {
      for (let i = 0; i < 5; i++) {
        for (const req of pair(`w${pid}`, i)) check(req, await w.request(pid, req));
      }
    }
    assert.deepEqual([...publishers].sort((x, y) => x - y), pids, 'events published by both workers');

    // Late duplicates from the other worker would be written when it
    // handles the event from the bus.  Each worker now publishes a marker
    // after all of the above; the bus keeps each publisher's order and a
    // worker hands an event to its subscribers (audit, probe) in turn, so
    // once every worker's probe has recorded every marker, every worker
    // has handled every event above.
    const markers = [];
    for (const pid of w.pids) {
      const token = rid(`marker-${pid}`);
      markers.push(token);
      const r = await w.request(pid, { method: 'POST', path: '/api/v1/probe/publish',
        headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
      assert.equal(r.status, 202, r.text);
      assert.equal(r.body.pid, pid);
    }
    assert.ok(await poll(async () => {
      for (const m of markers) {
        const r = await srv.request('GET', `/api/v1/probe/received?token=${m}`);
        if (r.body.data.map((x) => x.pid).join() !== pids.join()) return false;
      }
      return true;
    }, { interval: 100 }), 'every worker handled every marker');
  } finally { w.close(); }

  const byRid = new Map();
  for (const rec of await listAll({ action: 'example.note.created' })) {
    byRid.set(rec.request_id, [...(byRid.get(rec.request_id) ?? []), rec]);
  }
  for (const rec of await listAll({ action: 'audit_probe.event' })) {
    byRid.set(rec.request_id, [...(byRid.get(rec.request_id) ?? []), rec]);
  }
  for (const { id, kind } of ids) {
    const recs = byRid.get(id) ?? [];
    assert.equal(recs.length, 1, `${id}: ${recs.length} records`);
    const rec = recs[0];
    assertRecordShape(rec);
    assert.equal(rec.actor_type, 'user');
    assert.equal(rec.actor_id, adminId);
    assert.equal(rec.actor_name, 'admin');
    assert.equal(rec.donor_id, null);
    assert.equal(rec.ip, '127.0.0.1');
    assert.ok(Math.abs(Date.parse(rec.time) - Date.now()) < 120000, rec.time);
    if (kind === 'note') {
      assert.equal(rec.action, 'example.note.created');
      assert.equal(rec.details.text, `note ${id}`);
      assert.equal(rec.target, null);
    } else {
      assert.equal(rec.action, 'audit_probe.event');
    }
  }
  // The database agrees: one row per request.
  const dup = await sql(srv, `SELECT request_id, count(*) FROM audit_log WHERE request_id = ANY($1)
    GROUP BY request_id HAVING count(*) <> 1`, [ids.map((x) => x.id)]);
  assert.deepEqual(dup, []);
  // Only the publishing worker writes: another worker's attempt would be
  // stopped by the unique event id, but would still draw an id.
  const [{ count, max }] = await sql(srv, 'SELECT count(*)::int, max(id)::int FROM audit_log');
  assert.equal(count, max, 'ids are gap-free: no worker but the publisher tried to insert');
});

test('a denied permission is recorded: auth.permission.denied with the caller', async () => {
  const uid = await createUnprivilegedUser(srv, 'audit_noperm');
  const weak = await srv.login('audit_noperm', ADMIN_PASSWORD);
  const requestId = rid('denied');
  const r = await srv.request('POST', NOTES, { token: weak, headers: { 'x-request-id': requestId },
    json: { text: 'not allowed' } });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');

  const recs = (await listAll({ action: 'auth.permission.denied' })).filter((x) => x.request_id === requestId);
  assert.equal(recs.length, 1, JSON.stringify(recs));
  const [rec] = recs;
  assertRecordShape(rec);
  assert.equal(rec.actor_type, 'user');
  assert.equal(rec.actor_id, Number(uid));
  assert.equal(rec.actor_name, 'audit_noperm');
  assert.equal(rec.ip, '127.0.0.1');
  assert.equal(rec.details.permission, 'example.write');
  assert.equal(rec.details.method, 'POST');
  assert.equal(rec.details.path, NOTES);
  assert.ok(!JSON.stringify(rec).includes(weak), 'the caller\'s token is not stored');
});

// These two wait on the host publishing auth.login.succeeded and
// auth.login.failed from its login route.
test('a successful login is recorded once (host event auth.login.succeeded)', async () => {
  const requestId = rid('login-ok');
  const r = await srv.request('POST', '/api/v1/auth/login', { headers: { 'x-request-id': requestId },
    json: { username: 'admin', password: ADMIN_PASSWORD } });
  assert.equal(r.status, 200, r.text);
  const recs = await poll(async () => {
    const all = (await listAll({ action: 'auth.login.succeeded' })).filter((x) => x.request_id === requestId);
    return all.length ? all : null;
  }, { interval: 100 });
  assert.ok(recs, 'no auth.login.succeeded record for the login');
  assert.equal(recs.length, 1);
  const [rec] = recs;
  assertRecordShape(rec);
  assert.equal(rec.ip, '127.0.0.1');
  // The host makes the user who just logged in the event's actor.
  assert.equal(rec.actor_type, 'user');
  assert.equal(rec.actor_id, adminId);
  assert.equal(rec.actor_name, 'admin');
  assert.equal(rec.target, `user:${adminId}`);
  const text = JSON.stringify(rec);
  for (const secret of [ADMIN_PASSWORD, r.body.access_token, r.body.refresh_token].filter(Boolean)) {
    assert.ok(!text.includes(secret), 'no password or token in the record');
  }
});

test('a failed login is recorded once (host event auth.login.failed), without the password tried', async () => {
  const requestId = rid('login-bad');
  const tried = `wrong-${randomBytes(8).toString('hex')}`;
  const r = await srv.request('POST', '/api/v1/auth/login', { headers: { 'x-request-id': requestId },
    json: { username: 'admin', password: tried } });
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  const recs = await poll(async () => {
    const all = (await listAll({ action: 'auth.login.failed' })).filter((x) => x.request_id === requestId);
    return all.length ? all : null;
  }, { interval: 100 });
  assert.ok(recs, 'no auth.login.failed record for the attempt');
  assert.equal(recs.length, 1);
  assertRecordShape(recs[0]);
  assert.equal(recs[0].ip, '127.0.0.1');
  assert.equal(recs[0].actor_type, 'anonymous');
  assert.equal(recs[0].actor_id, null);
  assert.equal(recs[0].details.username, 'admin');
  const rows = await sql(srv, 'SELECT details::text AS d FROM audit_log WHERE request_id = $1', [requestId]);
  assert.ok(!rows[0].d.includes(tried), 'the password tried is not stored');
});

test('secrets are scrubbed from details at any depth; ids, prefixes and targets stay', async () => {
  const jwt = token;	// a real access token: eyJ...
  const secrets = ['pw-SECRET-1', 'ak-SECRET-2', 'rt-SECRET-3', 'ns-SECRET-4', 'at-SECRET-5',
    'xyz-SECRET-6', 'ck-SECRET-7', 'ph-SECRET-8', 'cs-SECRET-9', 'hd-SECRET-10'];
  const target = `thing:${randomBytes(4).toString('hex')}`;
  const requestId = rid('scrub');
  const r = await publish({
    target,
    password: secrets[0],
    api_key: secrets[1],
    refresh_token: secrets[2],
    nested: { auth: { secret: secrets[3], kind: 'basic' }, list: [{ accessToken: secrets[4], n: 1 }, jwt] },
    Authorization: `Bearer ${secrets[5]}`,
    session_cookie: secrets[6],
    password_hash: secrets[7],
    CLIENT_SECRET: secrets[8],
    headers: { 'X-Api-Key': secrets[9], 'user-agent': 'test' },
    bearer_value: `Bearer ${jwt}`,
    basic_value: 'Basic dXNlcjpwYXNzd29yZA==',
    plan: 'Basic plan',
    note: `here is a token: ${jwt} (do not keep)`,
    keep: { key_id: 7, prefix: 'sbk_abc', token_type: 'Bearer', username: 'someone', count: 3, ok: true },
  }, { tok: token, requestId });
  assert.equal(r.status, 202, r.text);

  const res = await list({ target });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.data.length, 1);
  const [rec] = res.body.data;
  assert.equal(rec.request_id, requestId);
  assert.equal(rec.target, target);
  for (const s of [...secrets, jwt]) assert.ok(!res.text.includes(s), `${s} leaked: ${res.text}`);
  assert.ok(!res.text.includes('eyJ'), 'nothing JWT-shaped');
  const d = rec.details;
  for (const k of ['password', 'api_key', 'refresh_token', 'Authorization', 'session_cookie',
    'password_hash', 'CLIENT_SECRET']) assert.ok(!(k in d), `${k} dropped`);
  assert.deepEqual(d.nested.auth, { kind: 'basic' });
  assert.deepEqual(d.nested.list, [{ n: 1 }, '[REDACTED]']);
  assert.deepEqual(d.headers, { 'user-agent': 'test' });
  assert.equal(d.bearer_value, '[REDACTED]');
  assert.equal(d.basic_value, '[REDACTED]');
  assert.equal(d.plan, 'Basic plan', 'words are not credentials');
  assert.equal(d.note, '[REDACTED]');
  assert.deepEqual(d.keep, { key_id: 7, prefix: 'sbk_abc', token_type: 'Bearer', username: 'someone',
    count: 3, ok: true });
  assert.equal(d.target, target);

  // Nor in the database itself.
  const rows = await sql(srv, 'SELECT details::text AS d, target FROM audit_log WHERE request_id = $1', [requestId]);
  assert.equal(rows.length, 1);
  for (const s of [...secrets, jwt]) assert.ok(!rows[0].d.includes(s), `${s} stored`);
});

test('targets: a string or an integer from data.target, cut to 512 bytes; huge details are cut', async () => {
  const name = `tgt${randomBytes(3).toString('hex')}`;
  const long = `${'é'.repeat(300)}tail`;	// 604 bytes of UTF-8
  assert.equal((await publish({ target: 4242 }, { name, tok: token })).status, 202);
  assert.equal((await publish({ target: long }, { name, tok: token })).status, 202);
  assert.equal((await publish({ target: { nested: true } }, { name, tok: token })).status, 202);
  assert.equal((await publish({ target: 'big', blob: 'x'.repeat(70000) }, { name, tok: token })).status, 202);
  const requestId = 'eyJhbGciOiJIUzI1.eyJzdWIiOiIxIn0.sig';
  assert.equal((await publish({ target: 'rid' }, { name, tok: token, requestId })).status, 202);
  const recs = (await listAll({ action: `audit_probe.${name}` })).reverse();
  assert.equal(recs.length, 5);
  assert.equal(recs[0].target, '4242');
  assert.equal(recs[0].details.target, 4242);
  assert.equal(recs[1].target, 'é'.repeat(256), 'cut on a character boundary');
  assert.equal(recs[1].details.target, long, 'details keep the whole value');
  assert.equal(recs[2].target, null);
  assert.deepEqual(recs[2].details.target, { nested: true });
  assert.equal(recs[3].target, 'big');
  assert.equal(recs[3].details.truncated, true);
  assert.ok(recs[3].details.bytes > 70000);
  assert.ok(!('blob' in recs[3].details));
  assert.equal(recs[4].request_id, '[REDACTED]', 'a JWT-shaped request id is not kept');
  assert.equal((await verify()).body.ok, true);
});

test('filters: actor_id, action (exact and prefix*), target, from and to', async () => {
  const tag = randomBytes(3).toString('hex');
  const uid = Number(await createUnprivilegedUser(srv, `audit_filter_${tag}`));
  const weak = await srv.login(`audit_filter_${tag}`, ADMIN_PASSWORD);
  const name = (x) => `f${tag}.${x}`;
  const sent = [];
  const steps = [['alpha', token, 't1'], ['alpha', weak, 't2'], ['beta', token, 't1'], ['beta', weak, null],
    ['gamma', token, 't3']];
  for (const [x, tok, t] of steps) {
    const requestId = rid(x);
    const r = await publish(t ? { target: `${tag}:${t}` } : {}, { name: name(x), tok, requestId });
    assert.equal(r.status, 202, r.text);
    sent.push({ action: `audit_probe.${name(x)}`, tok, target: t ? `${tag}:${t}` : null, requestId });
    await new Promise((res) => setTimeout(res, 15));	// distinct times
  }
  const all = await listAll({ action: `audit_probe.f${tag}.*` });
  assert.deepEqual(all.map((x) => x.request_id), sent.map((x) => x.requestId).reverse(), 'newest first');
  const rec = Object.fromEntries(all.map((x) => [x.request_id, x]));

  const ridsOf = async (q) => (await listAll(q)).map((x) => x.request_id);
  const expect = (pred) => sent.filter(pred).map((x) => x.requestId).reverse();

  assert.deepEqual(await ridsOf({ action: `audit_probe.${name('alpha')}` }),
    expect((x) => x.action.endsWith('.alpha')));
  assert.deepEqual(await ridsOf({ action: `audit_probe.f${tag}.b*` }), expect((x) => x.action.endsWith('.beta')));
  assert.deepEqual(await ridsOf({ action: `audit_probe.f${tag}.alp` }), [], 'exact means exact');
  assert.deepEqual(await ridsOf({ target: `${tag}:t1` }), expect((x) => x.target === `${tag}:t1`));
  assert.deepEqual(await ridsOf({ actor_id: String(uid) }).then((l) => l.filter((r) => r.startsWith('alpha') ||
    r.startsWith('beta') || r.startsWith('gamma'))), expect((x) => x.tok === weak));
  assert.deepEqual(await ridsOf({ actor_id: String(uid), action: `audit_probe.f${tag}.*`, target: `${tag}:t2` }),
    [sent[1].requestId]);
  for (const x of await listAll({ actor_id: String(uid) })) assert.equal(x.actor_id, uid);

  // from is inclusive, to exclusive.
  const t2 = rec[sent[2].requestId].time;
  const q = { action: `audit_probe.f${tag}.*` };
  assert.deepEqual(await ridsOf({ ...q, from: t2 }), expect((_, i) => i >= 2));
  assert.deepEqual(await ridsOf({ ...q, to: t2 }), expect((_, i) => i < 2));
  assert.deepEqual(await ridsOf({ ...q, from: rec[sent[1].requestId].time, to: rec[sent[3].requestId].time }),
    expect((_, i) => i === 1 || i === 2));
  // The same instant with an offset, with a '+' sent as %2B or unescaped.
  const shifted = new Date(Date.parse(t2) + 2 * 3600 * 1000).toISOString().replace('Z', '+02:00');
  assert.deepEqual(await ridsOf({ ...q, from: shifted }), expect((_, i) => i >= 2));
  const raw = await srv.request('GET', `/api/v1/audit?action=audit_probe.f${tag}.*&from=${shifted}`, { token });
  assert.equal(raw.status, 200, raw.text);
  assert.deepEqual(raw.body.data.map((x) => x.request_id), expect((_, i) => i >= 2));
  assert.deepEqual(await ridsOf({ ...q, from: '2999-01-01T00:00:00Z' }), []);
  assert.deepEqual(await ridsOf({ ...q, to: '2000-01-01T00:00:00.5-05:30' }), []);
});

test('bad filter values are 400 VALIDATION_ERROR with a field error', async () => {
  const bad = [
    ['actor_id', 'abc'], ['actor_id', '0'], ['actor_id', '-1'], ['actor_id', '1.5'], ['actor_id', ''],
    ['actor_id', '99999999999999999999'],
    ['action', ''], ['action', 'Bad!'], ['action', 'a*b'], ['action', 'a b'], ['action', 'x'.repeat(129)],
    ['target', ''], ['target', 'x'.repeat(513)],
    ['from', 'yesterday'], ['from', '2025-01-01'], ['from', '2025-13-01T00:00:00Z'],
    ['from', '2025-02-29T00:00:00Z'], ['from', '2025-01-01T24:00:00Z'], ['from', '2025-01-01T00:00:00'],
    ['from', '2025-01-01T00:00:00+2:00'], ['from', '2025-01-01T00:00:00.Z'], ['from', 'now'],
    ['to', '2025-01-01 00:00:00Z'], ['to', '2025-01-01T00:60:00Z'], ['to', ''], ['to', 'epoch'],
    ['limit', '0'], ['limit', '201'], ['limit', 'abc'], ['limit', '1.5'], ['limit', '-3'], ['limit', ''],
    ['cursor', 'garbage!'], ['cursor', 'AAAA'], ['cursor', Buffer.from('5.00000000').toString('base64url')],
    ['cursor', Buffer.from('abc').toString('base64url')],
  ];
  for (const [field, value] of bad) {
    const r = await list({ [field]: value });
    const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.ok(e.errors.some((x) => x.field === field && typeof x.code === 'string' && x.message),
      `${field}=${value}: ${r.text}`);
  }
  // Every bad field is reported at once.
  const r = await list({ actor_id: 'x', limit: '999', from: 'nope' });
  const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.deepEqual(e.errors.map((x) => x.field).sort(), ['actor_id', 'from', 'limit']);
  // A leap day that exists is fine.
  assert.equal((await list({ from: '2024-02-29T12:00:00.123456Z' })).status, 200);
});

test('limit and cursor: pages newest first, no duplicates, all rows, tampered cursors refused', async () => {
  const name = `page${randomBytes(3).toString('hex')}`;
  for (let i = 0; i < 23; i++) assert.equal((await publish({ i }, { name, tok: token })).status, 202);

  const seen = [];
  let cursor = null;
  let pages = 0;
  let firstCursor = null;
  do {
    const r = await list({ action: `audit_probe.${name}`, limit: '5', ...(cursor ? { cursor } : {}) });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['data', 'next_cursor']);
    assert.ok(r.body.data.length <= 5);
    seen.push(...r.body.data);
    cursor = r.body.next_cursor;
    firstCursor ??= cursor;
    pages++;
  } while (cursor !== null);
  assert.equal(pages, 5);
  assert.equal(seen.length, 23);
  assert.equal(new Set(seen.map((x) => x.id)).size, 23, 'no duplicates');
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1].id > seen[i].id, 'newest first');
  assert.deepEqual(seen.map((x) => x.details.i), [...Array(23).keys()].reverse());

  // An exact multiple of the limit ends with next_cursor null, not an empty page.
  const r23 = await list({ action: `audit_probe.${name}`, limit: '23' });
  assert.equal(r23.body.data.length, 23);
  assert.equal(r23.body.next_cursor, null);

  // The default limit is 50, the maximum 200; walking everything matches the table.
  const def = await list();
  assert.equal(def.status, 200);
  const total = Number((await sql(srv, 'SELECT count(*) FROM audit_log'))[0].count);
  assert.ok(total > 50, `${total} rows`);
  assert.equal(def.body.data.length, 50);
  assert.equal(typeof def.body.next_cursor, 'string');
  assert.equal((await list({ limit: '200' })).body.data.length, Math.min(200, total));
  const everything = await listAll({}, { limit: 200 });
  assert.ok(everything.length >= total);
  assert.equal(new Set(everything.map((x) => x.id)).size, everything.length);

  // Tampered cursors: edited, truncated, extended.
  const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  for (const c of [flip(firstCursor, 0), flip(firstCursor, Math.floor(firstCursor.length / 2)),
    flip(firstCursor, firstCursor.length - 1), firstCursor.slice(0, -1), `${firstCursor}A`,
    `${firstCursor}AAAA`, `${firstCursor}=`, firstCursor.replace(/./, '+')]) {
    const r = await list({ action: `audit_probe.${name}`, limit: '5', cursor: c });
    const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.equal(e.errors[0].field, 'cursor', c);
  }
  // An empty cursor is the first page.
  const empty = await list({ action: `audit_probe.${name}`, limit: '5', cursor: '' });
  assert.deepEqual(empty.body.data.map((x) => x.id), seen.slice(0, 5).map((x) => x.id));
});

test('401 without a token, 403 without audit.read, 200 for the built-in ADMIN role', async () => {
  for (const path of ['/api/v1/audit', '/api/v1/audit/verify']) {
    assertEnvelope(assert, await srv.request('GET', path), 401, 'UNAUTHENTICATED');
  }
  await createUnprivilegedUser(srv, 'audit_reader_no');
  const weak = await srv.login('audit_reader_no', ADMIN_PASSWORD);
  for (const path of ['/api/v1/audit', '/api/v1/audit/verify']) {
    const r = await srv.request('GET', path, { token: weak });
    assertEnvelope(assert, r, 403, 'FORBIDDEN');
    assert.ok(!r.text.includes('hash'), 'nothing of the log leaks');
  }
  await createAdminUser(srv, 'audit_admin');
  const admin = await srv.login('audit_admin', ADMIN_PASSWORD);
  assert.equal((await srv.request('GET', '/api/v1/audit', { token: admin })).status, 200);
  assert.equal((await srv.request('GET', '/api/v1/audit/verify', { token: admin })).status, 200);

  const perms = await srv.request('GET', '/api/v1/permissions', { token });
  if (perms.status === 200) {
    const p = perms.body.data.find((x) => x.name === 'audit.read');
    assert.ok(p, 'audit.read is listed');
    assert.equal(p.description, 'Read and verify the audit log');
  }
});

test('the database refuses UPDATE, DELETE and TRUNCATE; an INSERT cannot choose its place in the chain', async () => {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try {
    const { rows: [last] } = await c.query('SELECT id FROM audit_log ORDER BY id DESC LIMIT 1');
    for (const stmt of [`UPDATE audit_log SET action = 'x.y' WHERE id = ${last.id}`,
      `DELETE FROM audit_log WHERE id = ${last.id}`, 'DELETE FROM audit_log WHERE false',
      "UPDATE audit_log SET details = '{}'", 'TRUNCATE audit_log']) {
      await assert.rejects(c.query(stmt), /audit_log is append-only/, stmt);
    }
    assert.equal(Number((await c.query('SELECT count(*) FROM audit_log WHERE id = $1', [last.id])).rows[0].count), 1);

    // A forged id and hashes are overwritten by the trigger.
    const forged = 'f'.repeat(64);
    const { rows: [ins] } = await c.query(`INSERT INTO audit_log (id, event_id, source, time, actor_type,
      action, details, prev_hash, hash) VALUES (1, $1, 'test', now(), 'system', 'test.forged', '{}', $2, $2)
      RETURNING id, prev_hash, hash`, [rid('forged'), forged]);
    assert.ok(Number(ins.id) > Number(last.id));
    assert.notEqual(ins.hash, forged);
    assert.notEqual(ins.prev_hash, forged);
  } finally { await c.end(); }
  const v = await verify();
  assert.equal(v.status, 200, v.text);
  assert.equal(v.body.ok, true, v.text);
});

test('tampering is detected: a changed row, a re-hashed row, a removed row', async () => {
  const s = await startServer({ workers: 1, plugins: PLUGINS });
  try {
    s.token = await s.login();
    for (let i = 0; i < 8; i++) assert.equal((await publish({ i, target: `t${i}` }, { s, tok: s.token })).status, 202);
    const c = await pgClient(withDb(databaseUrl(), s.database));
    const tamper = async (stmt, params = []) => {
      await c.query('BEGIN');
      await c.query('ALTER TABLE audit_log DISABLE TRIGGER ALL');
      await c.query(stmt, params);
      await c.query('ALTER TABLE audit_log ENABLE TRIGGER ALL');
      await c.query('COMMIT');
    };
    try {
      const ids = async () => (await c.query('SELECT id FROM audit_log ORDER BY id')).rows.map((r) => Number(r.id));
      let all = await ids();
      assert.ok(all.length >= 8);

      let v = await verify(s);
      assert.equal(v.status, 200, v.text);
      assert.deepEqual(v.body, { ok: true, checked: all.length, first_bad_id: null });

      // Changed details.
      const victim = all[4];
      const { rows: [orig] } = await c.query('SELECT details, action FROM audit_log WHERE id = $1', [victim]);
      await tamper(`UPDATE audit_log SET details = details || '{"i": 999}' WHERE id = $1`, [victim]);
      v = await verify(s);
      assert.deepEqual(v.body, { ok: false, checked: 5, first_bad_id: victim });
      await tamper('UPDATE audit_log SET details = $2 WHERE id = $1', [victim, orig.details]);
      assert.equal((await verify(s)).body.ok, true, 'restored');

      // Changed action.
      await tamper("UPDATE audit_log SET action = 'audit_probe.innocent' WHERE id = $1", [all[2]]);
      v = await verify(s);
      assert.deepEqual(v.body, { ok: false, checked: 3, first_bad_id: all[2] });
      await tamper('UPDATE audit_log SET action = $2 WHERE id = $1', [all[2], orig.action]);
      assert.equal((await verify(s)).body.ok, true, 'restored');

      // A row changed and re-hashed to match: the next row's link breaks.
      const { rows: [three] } = await c.query('SELECT target, hash FROM audit_log WHERE id = $1', [all[3]]);
      await tamper(`UPDATE audit_log a SET target = 'forged' WHERE id = $1`, [all[3]]);
      await tamper('UPDATE audit_log a SET hash = audit_log_hash(a.prev_hash, a) WHERE id = $1', [all[3]]);
      v = await verify(s);
      assert.deepEqual(v.body, { ok: false, checked: 5, first_bad_id: all[4] });
      await tamper('UPDATE audit_log SET target = $2, hash = $3 WHERE id = $1', [all[3], three.target, three.hash]);
      assert.equal((await verify(s)).body.ok, true, 'restored');

      // A removed middle row: found at the row after it.
      await tamper('DELETE FROM audit_log WHERE id = $1', [all[5]]);
      v = await verify(s);
      assert.deepEqual(v.body, { ok: false, checked: 6, first_bad_id: all[6] });

      // The triggers are back on.
      await assert.rejects(c.query('DELETE FROM audit_log'), /append-only/);
      all = await ids();
      assert.equal(all.includes(victim), true);
    } finally { await c.end(); }
  } finally { await s.stop(); }
});

test('concurrent appends from both workers keep the chain whole and the ids gap-free', async () => {
  const name = `conc${randomBytes(3).toString('hex')}`;
  const publishers = new Set();
  const sent = [];
  const req = (tag, i) => {
    const requestId = rid(`${name}-${tag}-${i}`);
    sent.push(requestId);
    return { method: 'POST', path: PUBLISH, headers: { 'content-type': 'application/json',
      'x-request-id': requestId }, body: JSON.stringify({ name, data: { i, target: requestId } }) };
  };
  // A burst on fresh connections (see burst()), then both workers at once
  // on a connection each: appends from both workers, concurrently.
  const answers = await burst(srv.port, Array.from({ length: 50 }, (_, i) => req('burst', i)),
    { password: ADMIN_PASSWORD });
  for (const r of answers) {
    assert.equal(r.status, 202, r.text);
    publishers.add(r.body.pid);
  }
  const w = await workerConnections(srv, 2);
  try {
    await Promise.all(w.pids.map(async (pid) => {
      for (let i = 0; i < 25; i++) {
        const r = await w.request(pid, req(`w${pid}`, i));
        assert.equal(r.status, 202, r.text);
        assert.equal(r.body.pid, pid);
        publishers.add(r.body.pid);
      }
    }));
  } finally { w.close(); }
  assert.equal(publishers.size, 2, `appends from both workers: ${[...publishers]}`);

  const recs = await listAll({ action: `audit_probe.${name}` });
  assert.equal(recs.length, sent.length);
  assert.deepEqual(new Set(recs.map((x) => x.request_id)), new Set(sent));
  for (const rec of recs) {
    assert.equal(rec.actor_type, 'anonymous');
    assert.equal(rec.actor_id, null);
    assert.equal(rec.target, rec.request_id);
  }

  const v = await verify();
  assert.equal(v.status, 200, v.text);
  const rows = await sql(srv, 'SELECT id, prev_hash, hash FROM audit_log ORDER BY id');
  assert.deepEqual(v.body, { ok: true, checked: rows.length, first_bad_id: null });
  for (let i = 0; i < rows.length; i++) {
    assert.equal(Number(rows[i].id), i + 1, 'ids are gap-free from 1');
    assert.equal(rows[i].prev_hash, i === 0 ? '0'.repeat(64) : rows[i - 1].hash);
  }
});

test('/readyz reports the audit plugin', async () => {
  const r = await srv.request('GET', '/readyz');
  assert.equal(r.status, 200, r.text);
  const a = r.body.checks['plugin:audit'];
  assert.equal(a.status, 'ok');
  assert.equal(typeof a.last_id, 'number');
});
