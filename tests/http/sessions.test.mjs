// Sessions: login, refresh rotation and family revocation, logout,
// deactivation, password change and admin password reset, on a 3-worker
// server.  Every revocation must hold at once in every worker: after each
// revoking action ~20 requests with the old credential go out on
// connections spread over the workers (burst()) and on a connection
// pinned to each worker, every one must be 401, and the access log must
// show that every worker answered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startServer, assertEnvelope, pgClient, withDb, databaseUrl, ADMIN_PASSWORD } from './lib/harness.mjs';
import { burst, waitWorkerPids, workerConnections, accessPids } from './lib/helpers.mjs';

const WORKERS = 3;
const PASSWORD = 'a-good-long-password-1';
const USER_KEYS = ['id', 'username', 'name', 'email', 'role', 'is_active', 'created_at',
  'updated_at', 'last_login_at'].sort();
let srv, admin, pinned;

before(async () => {
  srv = await startServer({ workers: WORKERS });
  admin = await srv.login();
  const pids = await waitWorkerPids(srv, WORKERS);
  assert.equal(pids.length, WORKERS, `worker pids from the log: ${pids}`);
  pinned = await workerConnections(srv, WORKERS);
  assert.deepEqual(pinned.pids, pids);
});
after(async () => { pinned?.close(); await srv?.stop(); });

const uniq = (p) => `${p}_${randomBytes(4).toString('hex')}`;

async function db(fn) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return await fn(c); } finally { await c.end(); }
}

async function createUser(prefix, { role = 'AGENT', password = PASSWORD } = {}) {
  const username = uniq(prefix);
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name: `Test ${prefix}`, role } });
  assert.equal(r.status, 201, r.text);
  return { ...r.body, password };
}

function login(username, password = PASSWORD) {
  return srv.request('POST', '/api/v1/auth/login', { json: { username, password } });
}

async function session(username, password = PASSWORD) {
  const r = await login(username, password);
  assert.equal(r.status, 200, `login ${username}: ${r.text}`);
  return { access: r.body.access_token, refresh: r.body.refresh_token };
}

const me = (token) => srv.request('GET', '/api/v1/users/me', { token });
const refresh = (rt) => srv.request('POST', '/api/v1/auth/refresh', { json: { refresh_token: rt } });

// A raw request for burst(): an access token on GET /users/me, or a
// refresh token on POST /auth/refresh.
function accessReq(token, id) {
  return { path: '/api/v1/users/me', headers: { authorization: `Bearer ${token}`, 'x-request-id': id } };
}
function refreshReq(rt, id) {
  return { method: 'POST', path: '/api/v1/auth/refresh', body: JSON.stringify({ refresh_token: rt }),
    headers: { 'content-type': 'application/json', 'x-request-id': id } };
}

// Fire `n` requests per credential over connections spread across the
// workers (a burst at once), then each credential on the connection
// pinned to each worker; every answer must have `status`, and every
// worker must have answered.  creds: [{access}|{refresh}].
async function expectEverywhere(creds, status, { n = 20, label = '' } = {}) {
  const req = (c, id) => (c.access !== undefined ? accessReq(c.access, id) : refreshReq(c.refresh, id));
  const check = (a, r, what) => {
    assert.equal(a.status, status, `${label} ${what} (${r.method ?? 'GET'} ${r.path}) answered ${a.status}: ${a.text}`);
    if (status === 401) {
      assert.equal(a.body?.code, 'UNAUTHENTICATED', a.text);
      assert.equal(a.body?.status, 'error', a.text);
    }
  };
  const reqs = [];
  for (const c of creds) {
    for (let i = 0; i < Math.ceil(n / creds.length); i++) reqs.push(req(c, `sess-${randomBytes(8).toString('hex')}`));
  }
  const answers = await burst(srv.port, reqs, { password: ADMIN_PASSWORD });
  answers.forEach((a, i) => check(a, reqs[i], `request ${i}`));

  const sent = new Map();
  for (const pid of pinned.pids) {
    for (const c of creds) {
      const id = `sess-${randomBytes(8).toString('hex')}`;
      sent.set(id, pid);
      const r = req(c, id);
      check(await pinned.request(pid, r), r, `on worker ${pid}`);
    }
  }
  const pids = new Set();
  for (const [id, pid] of await accessPids(srv, [...sent.keys()])) {
    assert.equal(pid, sent.get(id), `${label}: ${id} answered by the worker it was sent to`);
    pids.add(pid);
  }
  assert.equal(pids.size, WORKERS, `${label}: answers came from every worker (${[...pids]})`);
}

const expect401 = (creds, label) => expectEverywhere(creds, 401, { label });

test('login answers {access_token, refresh_token, token_type, expires_in, user}', async () => {
  const u = await createUser('shape');
  const r = await login(u.username);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.body).sort(),
    ['access_token', 'expires_in', 'refresh_token', 'token_type', 'user']);
  assert.equal(r.body.token_type, 'Bearer');
  assert.equal(r.body.expires_in, 900);
  assert.equal(typeof r.body.access_token, 'string');
  assert.equal(r.body.access_token.split('.').length, 3, 'the access token is a JWT');
  assert.equal(typeof r.body.refresh_token, 'string');
  // 256 random bits need at least 43 base64 characters.
  assert.ok(r.body.refresh_token.length >= 43, r.body.refresh_token);
  assert.deepEqual(Object.keys(r.body.user).sort(), USER_KEYS);
  assert.equal(r.body.user.password_hash, undefined);
  assert.ok(!/password/i.test(JSON.stringify(r.body)), 'nothing about the password in the answer');
  assert.equal(r.body.user.id, u.id);
  assert.equal(r.body.user.username, u.username);
  assert.equal(r.body.user.role, 'AGENT');
  assert.equal(r.body.user.is_active, true);
  // The username matches case-insensitively.
  const r2 = await login(u.username.toUpperCase());
  assert.equal(r2.status, 200, r2.text);
  assert.notEqual(r2.body.refresh_token, r.body.refresh_token);
  assert.notEqual(r2.body.access_token, r.body.access_token);
  // The access token works.
  const m = await me(r.body.access_token);
  assert.equal(m.status, 200, m.text);
  assert.equal(m.body.id, u.id);
});

test('unknown user, wrong password and inactive user get the same answer', async () => {
  const u = await createUser('same');
  const off = await createUser('same_off');
  const d = await srv.request('DELETE', `/api/v1/users/${off.id}`, { token: admin });
  assert.equal(d.status, 200, d.text);
  const answers = [
    await login(u.username, 'not-the-password-at-all'),
    await login(uniq('nobody'), 'not-the-password-at-all'),
    await login(off.username, PASSWORD),
  ];
  const shapes = answers.map((r) => {
    assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
    const { request_id, ...rest } = r.body;
    return { status: r.status, body: rest, auth: r.headers.get('www-authenticate'),
      type: r.headers.get('content-type') };
  });
  assert.deepEqual(shapes[1], shapes[0], 'unknown user vs wrong password');
  assert.deepEqual(shapes[2], shapes[0], 'inactive user vs wrong password');
});

test('refresh rotates; reusing a spent refresh token revokes the whole family in every worker', async () => {
  const u = await createUser('rot');
  const a = await session(u.username);
  const other = await session(u.username);	// another session, untouched

  // Refresh: a new pair, of the same shape as login's.
  const r1 = await refresh(a.refresh);
  assert.equal(r1.status, 200, r1.text);
  assert.deepEqual(Object.keys(r1.body).sort(),
    ['access_token', 'expires_in', 'refresh_token', 'token_type', 'user']);
  assert.equal(r1.body.token_type, 'Bearer');
  assert.equal(r1.body.expires_in, 900);
  assert.equal(r1.body.user.id, u.id);
  assert.equal(r1.body.user.password_hash, undefined);
  assert.notEqual(r1.body.refresh_token, a.refresh);
  const b = { access: r1.body.access_token, refresh: r1.body.refresh_token };
  assert.equal((await me(b.access)).status, 200);

  // A second rotation, so the family has a history.
  const r2 = await refresh(b.refresh);
  assert.equal(r2.status, 200, r2.text);
  const c = { access: r2.body.access_token, refresh: r2.body.refresh_token };
  // Before the reuse, the newest pair works in every worker.
  await expectEverywhere([{ access: c.access }], 200, { label: 'newest access token before reuse' });

  // The spent token is refused, and that reuse revokes the family...
  const reuse = await refresh(b.refresh);
  assertEnvelope(assert, reuse, 401, 'UNAUTHENTICATED');
  // ...so the newest refresh token and the current access token (and the
  // older ones) are dead everywhere.
  await expect401([{ access: c.access }, { access: b.access }, { access: a.access }],
    'access tokens of the revoked family');
  await expect401([{ refresh: c.refresh }], 'newest refresh token of the revoked family');
  assertEnvelope(assert, await refresh(c.refresh), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await refresh(a.refresh), 401, 'UNAUTHENTICATED');

  // The user's other session is unaffected.
  await expectEverywhere([{ access: other.access }], 200, { label: 'the other session' });
  const o = await refresh(other.refresh);
  assert.equal(o.status, 200, o.text);
  assert.equal((await me(o.body.access_token)).status, 200);
});

test('a refresh token works once: the old one fails after rotation', async () => {
  const u = await createUser('once');
  const a = await session(u.username);
  const r = await refresh(a.refresh);
  assert.equal(r.status, 200, r.text);
  // Many concurrent reuses of the spent token, spread over the workers:
  // none gets a new pair.
  await expect401([{ refresh: a.refresh }], 'spent refresh token');
  // Garbage and empty tokens.
  assertEnvelope(assert, await refresh('sbr_' + 'A'.repeat(43)), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await refresh(randomBytes(32).toString('base64url')), 401, 'UNAUTHENTICATED');
  const empty = await srv.request('POST', '/api/v1/auth/refresh', { json: { refresh_token: '' } });
  assert.ok([400, 401, 422].includes(empty.status), `${empty.status}: ${empty.text}`);
  assertEnvelope(assert, empty, empty.status);
  assertEnvelope(assert, await srv.request('POST', '/api/v1/auth/refresh', { json: {} }), 422, 'VALIDATION_ERROR');
});

test('logout (204) ends this session only, in every worker', async () => {
  const u = await createUser('logout');
  const a = await session(u.username);
  const other = await session(u.username);
  await expectEverywhere([{ access: a.access }], 200, { label: 'before logout' });

  const r = await srv.request('POST', '/api/v1/auth/logout', { token: a.access });
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');
  await expect401([{ access: a.access }], 'access token after logout');
  await expect401([{ refresh: a.refresh }], 'refresh token after logout');
  // Logging out twice: the token is already dead.
  assertEnvelope(assert, await srv.request('POST', '/api/v1/auth/logout', { token: a.access }), 401, 'UNAUTHENTICATED');
  // Without a token: 401.
  assertEnvelope(assert, await srv.request('POST', '/api/v1/auth/logout'), 401, 'UNAUTHENTICATED');

  // The other session of the same user lives on.
  await expectEverywhere([{ access: other.access }], 200, { label: 'the other session after logout' });
  const o = await refresh(other.refresh);
  assert.equal(o.status, 200, o.text);
});

test('deactivating a user ends all their sessions at once and login answers 401', async () => {
  const u = await createUser('deact');
  const s1 = await session(u.username);
  const s2 = await session(u.username);
  await expectEverywhere([{ access: s1.access }, { access: s2.access }], 200, { label: 'before deactivation' });

  const d = await srv.request('DELETE', `/api/v1/users/${u.id}`, { token: admin });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.body.id, u.id);
  assert.equal(d.body.is_active, false);

  await expect401([{ access: s1.access }, { access: s2.access }], 'access tokens of a deactivated user');
  await expect401([{ refresh: s1.refresh }, { refresh: s2.refresh }], 'refresh tokens of a deactivated user');
  assertEnvelope(assert, await login(u.username), 401, 'UNAUTHENTICATED');

  // Reactivated, the old sessions stay dead; a new login works.
  const re = await srv.request('PATCH', `/api/v1/users/${u.id}`, { token: admin, json: { is_active: true } });
  assert.equal(re.status, 200, re.text);
  assert.equal(re.body.is_active, true);
  assertEnvelope(assert, await me(s1.access), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await refresh(s2.refresh), 401, 'UNAUTHENTICATED');
  const s3 = await session(u.username);
  assert.equal((await me(s3.access)).status, 200);
});

test('changing my password: checks, then every other session ends at once', async () => {
  const u = await createUser('pwchange');
  const s1 = await session(u.username);
  const s2 = await session(u.username);
  const s3 = await session(u.username);
  const put = (token, json) => srv.request('PUT', '/api/v1/users/me/password', { token, json });
  const NEW = 'a-brand-new-password-2';

  // Wrong current password.
  let r = await put(s1.access, { current_password: 'not-my-password', new_password: NEW });
  let e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.ok(e.errors.some((x) => x.field === 'current_password'), r.text);
  // Weak new passwords: too short, the username.
  r = await put(s1.access, { current_password: PASSWORD, new_password: 'short1' });
  e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.ok(e.errors.some((x) => x.field === 'new_password'), r.text);
  r = await put(s1.access, { current_password: PASSWORD, new_password: u.username });
  e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.ok(e.errors.some((x) => x.field === 'new_password'), r.text);
  // Missing fields.
  assertEnvelope(assert, await put(s1.access, { current_password: PASSWORD }), 422, 'VALIDATION_ERROR');
  // Nothing changed so far: every session works, the old password logs in.
  await expectEverywhere([{ access: s1.access }, { access: s2.access }, { access: s3.access }], 200,
    { label: 'before the change' });
  const s4 = await session(u.username);

  r = await put(s1.access, { current_password: PASSWORD, new_password: NEW });
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');

  await expect401([{ access: s2.access }, { access: s3.access }, { access: s4.access }],
    'other sessions after a password change');
  await expect401([{ refresh: s2.refresh }, { refresh: s3.refresh }], 'other refresh tokens after a password change');
  // The current session keeps working, in every worker, and can refresh.
  await expectEverywhere([{ access: s1.access }], 200, { label: 'the session that changed the password' });
  const rr = await refresh(s1.refresh);
  assert.equal(rr.status, 200, rr.text);
  assert.equal((await me(rr.body.access_token)).status, 200);

  assertEnvelope(assert, await login(u.username, PASSWORD), 401, 'UNAUTHENTICATED');
  const s5 = await session(u.username, NEW);
  assert.equal((await me(s5.access)).status, 200);
});

test('refresh tokens are stored only as hex SHA-256', async () => {
  const u = await createUser('hash');
  const a = await session(u.username);
  const r = await refresh(a.refresh);
  assert.equal(r.status, 200, r.text);
  const tokens = [a.refresh, r.body.refresh_token];
  await db(async (c) => {
    const rows = (await c.query(`SELECT rt.* FROM auth_refresh_tokens rt
      JOIN auth_sessions s ON s.id = rt.session_id WHERE s.user_id = $1`, [u.id])).rows;
    assert.equal(rows.length, 2, JSON.stringify(rows));
    for (const row of rows) assert.match(row.token_hash, /^[0-9a-f]{64}$/);
    const hashes = rows.map((row) => row.token_hash).sort();
    assert.deepEqual(hashes, tokens.map((t) => createHash('sha256').update(t).digest('hex')).sort());
    // No table of the identity layer holds a token in clear.
    for (const table of ['auth_refresh_tokens', 'auth_sessions', 'users']) {
      const all = (await c.query(`SELECT row_to_json(t)::text AS j FROM ${table} t`)).rows.map((x) => x.j).join('\n');
      for (const t of tokens) assert.ok(!all.includes(t), `${table} holds a refresh token in clear`);
      assert.ok(!all.includes(a.access), `${table} holds an access token`);
    }
  });
});

test('an admin password reset ends all of that user\'s sessions', async () => {
  const u = await createUser('reset');
  const s1 = await session(u.username);
  const s2 = await session(u.username);
  const NEW = 'reset-by-the-admin-3';

  // A weak reset is refused and changes nothing.
  let r = await srv.request('PATCH', `/api/v1/users/${u.id}`, { token: admin, json: { password: 'short' } });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  r = await srv.request('PATCH', `/api/v1/users/${u.id}`, { token: admin, json: { password: u.username } });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  await expectEverywhere([{ access: s1.access }, { access: s2.access }], 200, { label: 'before the reset' });

  r = await srv.request('PATCH', `/api/v1/users/${u.id}`, { token: admin, json: { password: NEW } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.id, u.id);
  assert.equal(r.body.password_hash, undefined);
  assert.equal(r.body.password, undefined);

  await expect401([{ access: s1.access }, { access: s2.access }], 'sessions after an admin reset');
  await expect401([{ refresh: s1.refresh }, { refresh: s2.refresh }], 'refresh tokens after an admin reset');
  assertEnvelope(assert, await login(u.username, PASSWORD), 401, 'UNAUTHENTICATED');
  const s3 = await session(u.username, NEW);
  assert.equal((await me(s3.access)).status, 200);
  // The admin's own session is untouched.
  assert.equal((await me(admin)).status, 200);
});
