// Users, roles and permissions (API.md "Identity and access"): user
// management and its guard rails (the last super-admin, nobody grants
// what they do not hold), the caller's own profile, roles and the
// permission registry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { rawRequest } from './lib/helpers.mjs';

const PASSWORD = 'a-good-long-password-1';
const USER_KEYS = ['id', 'username', 'name', 'email', 'role', 'is_active', 'created_at',
  'updated_at', 'last_login_at'].sort();
const HOST_PERMISSIONS = ['system.read', 'metrics.read', 'jobs.read', 'jobs.manage', 'users.manage',
  'roles.manage', 'api_keys.manage', 'donors.impersonate'];
const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$/;
let srv, admin;

before(async () => {
  srv = await startServer();
  admin = await srv.login();
});
after(async () => { await srv?.stop(); });

const hex = () => randomBytes(4).toString('hex');
const uniq = (p) => `${p}_${hex()}`;

async function db(fn) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return await fn(c); } finally { await c.end(); }
}

const api = (method, path, token, json) => srv.request(method, `/api/v1${path}`, { token, json });

async function createUser(prefix, { role = 'AGENT', password = PASSWORD, token = admin, ...rest } = {}) {
  const username = uniq(prefix);
  const r = await api('POST', '/users', token, { username, password, name: `Test ${prefix}`, role, ...rest });
  assert.equal(r.status, 201, r.text);
  return { ...r.body, password };
}

async function loginAs(user) {
  return srv.login(user.username, user.password ?? PASSWORD);
}

async function createRole(permissions, prefix = 'ROLE') {
  const r = await api('POST', '/roles', admin, { name: uniq(prefix), permissions });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function roleByName(name) {
  const r = await api('GET', '/roles', admin);
  assert.equal(r.status, 200, r.text);
  return r.body.data.find((x) => x.name === name);
}

function fieldsOf(body) { return body.errors.map((e) => e.field); }

async function userCount(username) {
  return db(async (c) => Number((await c.query(
    'SELECT count(*) FROM users WHERE lower(username) = lower($1)', [username])).rows[0].count));
}

// ------------------------------------------------------------------ users

test('POST /users creates a user (201) with the public fields only', async () => {
  const username = uniq('Create');
  const r = await api('POST', '/users', admin, { username, password: PASSWORD, name: 'Ada Lovelace',
    email: 'ada@example.com', role: 'AGENT' });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), USER_KEYS);
  assert.equal(typeof r.body.id, 'number');
  assert.ok(Number.isInteger(r.body.id) && r.body.id > 0);
  assert.equal(r.body.username, username);
  assert.equal(r.body.name, 'Ada Lovelace');
  assert.equal(r.body.email, 'ada@example.com');
  assert.equal(r.body.role, 'AGENT');
  assert.equal(r.body.is_active, true);
  assert.match(r.body.created_at, RFC3339_UTC);
  assert.match(r.body.updated_at, RFC3339_UTC);
  assert.equal(r.body.last_login_at, null);
  assert.ok(!/password/i.test(r.text), r.text);

  // The stored password is a hash, never the password.
  await db(async (c) => {
    const row = (await c.query('SELECT password_hash FROM users WHERE id = $1', [r.body.id])).rows[0];
    assert.notEqual(row.password_hash, PASSWORD);
    assert.ok(!row.password_hash.includes(PASSWORD));
  });

  // The new user logs in; last_login_at is set afterwards.
  const t = await srv.login(username, PASSWORD);
  assert.ok(t);
  const g = await api('GET', `/users/${r.body.id}`, admin);
  assert.equal(g.status, 200, g.text);
  assert.match(g.body.last_login_at, RFC3339_UTC);

  // Optional fields: no name, no email.
  const m = await api('POST', '/users', admin, { username: uniq('minimal'), password: PASSWORD, role: 'AGENT' });
  assert.equal(m.status, 201, m.text);
  assert.equal(m.body.email, null);
});

test('POST /users: duplicates (case-insensitive) 409, invalid email, unknown role, weak password 422', async () => {
  const username = uniq('Dup');
  let r = await api('POST', '/users', admin, { username, password: PASSWORD, role: 'AGENT' });
  assert.equal(r.status, 201, r.text);
  for (const again of [username, username.toLowerCase(), username.toUpperCase()]) {
    r = await api('POST', '/users', admin, { username: again, password: PASSWORD, role: 'AGENT' });
    assertEnvelope(assert, r, 409, 'CONFLICT');
  }
  assert.equal(await userCount(username), 1);

  const fresh = uniq('invalid');
  r = await api('POST', '/users', admin, { username: fresh, password: PASSWORD, role: 'AGENT', email: 'not-an-email' });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('email'), r.text);

  r = await api('POST', '/users', admin, { username: fresh, password: PASSWORD, role: 'NO_SUCH_ROLE' });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('role'), r.text);

  r = await api('POST', '/users', admin, { username: fresh, password: 'short-pw', role: 'AGENT' });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('password'), r.text);
  r = await api('POST', '/users', admin, { username: fresh, password: fresh, role: 'AGENT' });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('password'), r.text);

  // Missing and mistyped fields.
  r = await api('POST', '/users', admin, { username: fresh, password: PASSWORD });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('role'), r.text);
  r = await api('POST', '/users', admin, { password: PASSWORD, role: 'AGENT' });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('username'), r.text);
  r = await api('POST', '/users', admin, { username: 42, password: PASSWORD, role: 'AGENT' });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');

  // None of the refused requests wrote anything.
  assert.equal(await userCount(fresh), 0);
});

test('GET /users: ?q=, ?role=, ?is_active= and limit/cursor paging', async () => {
  const tag = `pager${hex()}`;
  const made = [];
  for (let i = 0; i < 7; i++) {
    made.push(await createUser(`${tag}_${i}`, { role: i % 2 ? 'ADMIN' : 'AGENT', email: `${tag}${i}@example.com` }));
  }
  // Deactivate one.
  const d = await api('DELETE', `/users/${made[3].id}`, admin);
  assert.equal(d.status, 200, d.text);

  // ?q= finds them all (username, case-insensitively), newest first.
  let r = await api('GET', `/users?q=${tag.toUpperCase()}`, admin);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), ['data', 'next_cursor']);
  assert.deepEqual(r.body.data.map((u) => u.id), made.map((u) => u.id).reverse());
  assert.equal(r.body.next_cursor, null);
  for (const u of r.body.data) assert.deepEqual(Object.keys(u).sort(), USER_KEYS);
  // ?q= also searches e-mail and name.
  r = await api('GET', `/users?q=${encodeURIComponent(`${tag}5@example`)}`, admin);
  assert.deepEqual(r.body.data.map((u) => u.id), [made[5].id]);
  r = await api('GET', `/users?q=${encodeURIComponent('no-such-user-anywhere-' + hex())}`, admin);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.data, []);

  r = await api('GET', `/users?q=${tag}&role=ADMIN`, admin);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((u) => u.id), [made[5].id, made[3].id, made[1].id]);
  r = await api('GET', '/users?role=SUPER_ADMIN', admin);
  assert.ok(r.body.data.length >= 1 && r.body.data.every((u) => u.role === 'SUPER_ADMIN'), r.text);
  r = await api('GET', `/users?q=${tag}&is_active=false`, admin);
  assert.deepEqual(r.body.data.map((u) => u.id), [made[3].id]);
  assert.equal(r.body.data[0].is_active, false);
  r = await api('GET', `/users?q=${tag}&is_active=true`, admin);
  assert.deepEqual(r.body.data.map((u) => u.id), made.filter((_, i) => i !== 3).map((u) => u.id).reverse());
  r = await api('GET', `/users?q=${tag}&role=AGENT&is_active=true`, admin);
  assert.deepEqual(r.body.data.map((u) => u.id), [made[6].id, made[4].id, made[2].id, made[0].id]);
  assertEnvelope(assert, await api('GET', '/users?is_active=maybe', admin), 400, 'VALIDATION_ERROR');

  // Walk the pages: newest first, no duplicates, everything once.
  for (const limit of [1, 3, 7]) {
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      r = await api('GET', `/users?q=${tag}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, admin);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.data.length <= limit);
      seen.push(...r.body.data.map((u) => u.id));
      cursor = r.body.next_cursor;
      if (cursor !== null) assert.equal(typeof cursor, 'string');
      assert.ok(++pages <= 10, 'paging terminates');
    } while (cursor);
    assert.deepEqual(seen, made.map((u) => u.id).reverse(), `limit ${limit}`);
    assert.equal(new Set(seen).size, seen.length);
    assert.equal(pages, Math.ceil(7 / limit));
  }
  // The whole list pages the same way (no duplicates, newest first).
  {
    const seen = [];
    let cursor = null;
    do {
      r = await api('GET', `/users?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, admin);
      assert.equal(r.status, 200, r.text);
      seen.push(...r.body.data.map((u) => u.id));
      cursor = r.body.next_cursor;
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length);
    assert.deepEqual(seen, [...seen].sort((a, b) => b - a));
    const total = await db(async (c) => Number((await c.query('SELECT count(*) FROM users')).rows[0].count));
    assert.equal(seen.length, total);
  }

  // Bad limits and cursors: 400 with the envelope.
  for (const q of ['limit=0', 'limit=201', 'limit=-1', 'limit=abc', 'limit=', 'limit=1.5',
    'cursor=!!!', `cursor=${Buffer.from('abc').toString('base64url')}`,
    `cursor=${Buffer.from('-5').toString('base64url')}`, `cursor=${Buffer.from('12x').toString('base64url')}`,
    `cursor=${'A'.repeat(100)}`]) {
    assertEnvelope(assert, await api('GET', `/users?${q}`, admin), 400, 'VALIDATION_ERROR');
  }
  r = await api('GET', '/users?limit=200', admin);
  assert.equal(r.status, 200, r.text);
});

test('GET and PATCH /users/{id}; 404 for unknown and non-numeric ids', async () => {
  const u = await createUser('edit', { email: 'edit@example.com' });
  let r = await api('GET', `/users/${u.id}`, admin);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), USER_KEYS);
  assert.equal(r.body.username, u.username);

  r = await api('PATCH', `/users/${u.id}`, admin, { name: 'Renamed Person' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.name, 'Renamed Person');
  assert.equal(r.body.email, 'edit@example.com', 'untouched fields stay');
  r = await api('PATCH', `/users/${u.id}`, admin, { email: 'other@example.com' });
  assert.equal(r.body.email, 'other@example.com');
  assert.equal(r.body.name, 'Renamed Person');
  r = await api('PATCH', `/users/${u.id}`, admin, { email: null });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.email, null);
  assert.equal((await api('GET', `/users/${u.id}`, admin)).body.email, null);
  r = await api('PATCH', `/users/${u.id}`, admin, { role: 'ADMIN' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.role, 'ADMIN');
  r = await api('PATCH', `/users/${u.id}`, admin, { is_active: false });
  assert.equal(r.body.is_active, false);
  r = await api('PATCH', `/users/${u.id}`, admin, { is_active: true, role: 'AGENT' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.is_active, true);
  assert.equal(r.body.role, 'AGENT');

  // Invalid changes: 422, nothing written.
  for (const body of [{ email: 'nope' }, { role: 'NO_SUCH_ROLE' }, { is_active: 'yes' }, { name: 42 }, { password: 'short' }]) {
    r = await api('PATCH', `/users/${u.id}`, admin, body);
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  }
  r = await api('GET', `/users/${u.id}`, admin);
  assert.equal(r.body.name, 'Renamed Person');
  assert.equal(r.body.email, null);
  assert.equal(r.body.role, 'AGENT');
  assert.equal(r.body.is_active, true);

  // DELETE deactivates, it does not destroy.
  r = await api('DELETE', `/users/${u.id}`, admin);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.is_active, false);
  r = await api('GET', `/users/${u.id}`, admin);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.is_active, false);

  for (const id of ['999999999', 'abc', '0', '-1', '1.5', '1e3', '99999999999999999999999']) {
    assertEnvelope(assert, await api('GET', `/users/${id}`, admin), 404, 'NOT_FOUND');
    assertEnvelope(assert, await api('PATCH', `/users/${id}`, admin, { name: 'x' }), 404, 'NOT_FOUND');
    assertEnvelope(assert, await api('DELETE', `/users/${id}`, admin), 404, 'NOT_FOUND');
  }

  // users.manage is required.
  const agent = await createUser('plain');
  const at = await loginAs(agent);
  assertEnvelope(assert, await api('GET', '/users', at), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('GET', `/users/${u.id}`, at), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('PATCH', `/users/${u.id}`, at, { name: 'x' }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('POST', '/users', at, { username: uniq('x'), password: PASSWORD, role: 'AGENT' }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('GET', '/users'), 401, 'UNAUTHENTICATED');
});

test('the last active super-admin can be neither deactivated nor demoted', async () => {
  const me = (await api('GET', '/users/me', admin)).body;
  assert.equal(me.role, 'SUPER_ADMIN');
  const supers = (await api('GET', '/users?role=SUPER_ADMIN&is_active=true', admin)).body.data;
  assert.deepEqual(supers.map((u) => u.id), [me.id], 'the bootstrap admin is the only super-admin');

  assertEnvelope(assert, await api('DELETE', `/users/${me.id}`, admin), 409, 'CONFLICT');
  assertEnvelope(assert, await api('PATCH', `/users/${me.id}`, admin, { is_active: false }), 409, 'CONFLICT');
  for (const role of ['ADMIN', 'AGENT']) {
    assertEnvelope(assert, await api('PATCH', `/users/${me.id}`, admin, { role }), 409, 'CONFLICT');
  }
  let r = await api('GET', '/users/me', admin);
  assert.equal(r.status, 200);
  assert.equal(r.body.role, 'SUPER_ADMIN');
  assert.equal(r.body.is_active, true);

  // A second super-admin, but inactive, does not count.
  const second = await createUser('super2', { role: 'SUPER_ADMIN' });
  assert.equal(second.role, 'SUPER_ADMIN');
  r = await api('DELETE', `/users/${second.id}`, admin);
  assert.equal(r.status, 200, r.text);
  assertEnvelope(assert, await api('PATCH', `/users/${me.id}`, admin, { role: 'ADMIN' }), 409, 'CONFLICT');
  r = await api('PATCH', `/users/${second.id}`, admin, { is_active: true });
  assert.equal(r.status, 200, r.text);

  // With a second active super-admin, the first can be demoted...
  const st = await loginAs(second);
  try {
    r = await api('PATCH', `/users/${me.id}`, st, { role: 'ADMIN' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.role, 'ADMIN');
    // ...at once: the demoted admin's token no longer manages roles.
    assertEnvelope(assert, await api('GET', '/roles', admin), 403, 'FORBIDDEN');
    // Now the second one is the last: it cannot remove or demote itself.
    assertEnvelope(assert, await api('DELETE', `/users/${second.id}`, st), 409, 'CONFLICT');
    assertEnvelope(assert, await api('PATCH', `/users/${second.id}`, st, { role: 'AGENT' }), 409, 'CONFLICT');
  } finally {
    r = await api('PATCH', `/users/${me.id}`, st, { role: 'SUPER_ADMIN' });
    assert.equal(r.status, 200, r.text);
  }
  assert.equal((await api('GET', '/roles', admin)).status, 200);
  // And with two, either may be deactivated: the second goes.
  r = await api('DELETE', `/users/${second.id}`, admin);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.is_active, false);
  assertEnvelope(assert, await api('DELETE', `/users/${me.id}`, admin), 409, 'CONFLICT');
});

test('an ADMIN cannot make super-admins, grant what it lacks or touch super-admins', async () => {
  const adm = await createUser('adm', { role: 'ADMIN' });
  const at = await loginAs(adm);
  const superId = (await api('GET', '/users/me', admin)).body.id;
  const rolemgr = await createRole(['roles.manage', 'users.manage'], 'ROLEMGR');

  // Allowed: an AGENT, and a role whose permissions it holds.
  const agent = await createUser('byadmin', { token: at });
  assert.equal(agent.role, 'AGENT');
  let r = await api('PATCH', `/users/${agent.id}`, at, { name: 'Changed by ADMIN' });
  assert.equal(r.status, 200, r.text);

  // Not allowed: SUPER_ADMIN, a role holding roles.manage.
  let name = uniq('wannabe');
  assertEnvelope(assert, await api('POST', '/users', at, { username: name, password: PASSWORD, role: 'SUPER_ADMIN' }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('POST', '/users', at, { username: name, password: PASSWORD, role: rolemgr.name }), 403, 'FORBIDDEN');
  assert.equal(await userCount(name), 0);
  assertEnvelope(assert, await api('PATCH', `/users/${agent.id}`, at, { role: rolemgr.name }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('PATCH', `/users/${agent.id}`, at, { role: 'SUPER_ADMIN' }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('PATCH', `/users/${adm.id}`, at, { role: 'SUPER_ADMIN' }), 403, 'FORBIDDEN');
  r = await api('GET', `/users/${agent.id}`, admin);
  assert.equal(r.body.role, 'AGENT');

  // Not allowed: editing, deactivating or resetting a super-admin.
  assertEnvelope(assert, await api('PATCH', `/users/${superId}`, at, { name: 'Hijacked' }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('PATCH', `/users/${superId}`, at, { password: 'hijacked-password-1' }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('PATCH', `/users/${superId}`, at, { is_active: false }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('DELETE', `/users/${superId}`, at), 403, 'FORBIDDEN');
  r = await api('GET', '/users/me', admin);
  assert.equal(r.status, 200, 'the super-admin still works');
  assert.notEqual(r.body.name, 'Hijacked');
  assert.equal(r.body.is_active, true);

  // ADMIN holds no roles.manage.
  assertEnvelope(assert, await api('GET', '/roles', at), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('POST', '/roles', at, { name: uniq('R'), permissions: [] }), 403, 'FORBIDDEN');

  // A roles.manage holder cannot put into a role what it lacks.
  const rm = await createUser('rolemgr', { role: rolemgr.name });
  const rt = await loginAs(rm);
  assertEnvelope(assert, await api('POST', '/roles', rt, { name: uniq('R'), permissions: ['system.read'] }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await api('PATCH', `/roles/${rolemgr.id}`, rt, { permissions: ['roles.manage', 'users.manage', 'jobs.manage'] }), 403, 'FORBIDDEN');
  r = await api('POST', '/roles', rt, { name: uniq('R'), permissions: ['roles.manage'] });
  assert.equal(r.status, 201, r.text);
});

// ---------------------------------------------------------------- profile

test('GET /users/me: profile and effective permissions', async () => {
  const perms = await api('GET', '/permissions', admin);
  assert.equal(perms.status, 200, perms.text);
  const all = perms.body.data.map((p) => p.name).sort();

  let r = await api('GET', '/users/me', admin);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), [...USER_KEYS, 'permissions'].sort());
  assert.equal(r.body.username, 'admin');
  assert.equal(r.body.role, 'SUPER_ADMIN');
  assert.deepEqual([...r.body.permissions].sort(), all, 'a super-admin holds every registered permission');

  const agent = await createUser('meagent');
  r = await api('GET', '/users/me', await loginAs(agent));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.id, agent.id);
  assert.equal(r.body.role, 'AGENT');
  const agentRole = await roleByName('AGENT');
  assert.deepEqual([...r.body.permissions].sort(), [...agentRole.permissions].sort());

  const adm = await createUser('meadmin', { role: 'ADMIN' });
  r = await api('GET', '/users/me', await loginAs(adm));
  const adminRole = await roleByName('ADMIN');
  assert.deepEqual([...r.body.permissions].sort(), [...adminRole.permissions].sort());
  assert.ok(r.body.permissions.includes('users.manage'));
  assert.ok(!r.body.permissions.includes('roles.manage'));

  assertEnvelope(assert, await api('GET', '/users/me'), 401, 'UNAUTHENTICATED');
});

test('PATCH /users/me changes name and e-mail only', async () => {
  const u = await createUser('profile', { email: 'before@example.com' });
  const t = await loginAs(u);
  let r = await api('PATCH', '/users/me', t, { name: 'New Name', email: 'after@example.com' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.id, u.id);
  assert.equal(r.body.name, 'New Name');
  assert.equal(r.body.email, 'after@example.com');
  r = await api('PATCH', '/users/me', t, { email: null });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.email, null);
  assert.equal(r.body.name, 'New Name');
  r = await api('GET', '/users/me', t);
  assert.equal(r.body.email, null);
  assert.equal(r.body.name, 'New Name');

  r = await api('PATCH', '/users/me', t, { email: 'not an email' });
  assert.ok(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')).includes('email'), r.text);
  r = await api('PATCH', '/users/me', t, { name: 7 });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');

  // No promoting or reactivating oneself through the profile.
  r = await api('PATCH', '/users/me', t, { role: 'SUPER_ADMIN', is_active: true, username: 'admin' });
  assert.ok(r.status < 500, r.text);
  r = await api('GET', `/users/${u.id}`, admin);
  assert.equal(r.body.role, 'AGENT');
  assert.equal(r.body.username, u.username);
  assert.equal(r.body.name, 'New Name');
});

test('PUT /users/me/fcm-token sets and clears the push token', async () => {
  const u = await createUser('fcm');
  const t = await loginAs(u);
  const column = () => db(async (c) => (await c.query('SELECT fcm_token FROM users WHERE id = $1', [u.id])).rows[0].fcm_token);
  assert.equal(await column(), null);
  const token = `fcm:${randomBytes(40).toString('base64url')}`;
  let r = await api('PUT', '/users/me/fcm-token', t, { fcm_token: token });
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');
  assert.equal(await column(), token);
  r = await api('PUT', '/users/me/fcm-token', t, { fcm_token: null });
  assert.equal(r.status, 204, r.text);
  assert.equal(await column(), null);

  assertEnvelope(assert, await api('PUT', '/users/me/fcm-token', t, {}), 422, 'VALIDATION_ERROR');
  assertEnvelope(assert, await api('PUT', '/users/me/fcm-token', t, { fcm_token: 5 }), 422, 'VALIDATION_ERROR');
  assertEnvelope(assert, await api('PUT', '/users/me/fcm-token', undefined, { fcm_token: 'x' }), 401, 'UNAUTHENTICATED');
  assert.equal(await column(), null);
  // Only the caller's own row.
  r = await api('PUT', '/users/me/fcm-token', t, { fcm_token: 'mine' });
  assert.equal(r.status, 204);
  const others = await db(async (c) => Number((await c.query(
    "SELECT count(*) FROM users WHERE fcm_token = 'mine' AND id <> $1", [u.id])).rows[0].count));
  assert.equal(others, 0);
});

// ------------------------------------------------------------------ roles

test('GET /roles lists the built-in roles with user counts', async () => {
  const r = await api('GET', '/roles', admin);
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.body.data));
  for (const name of ['SUPER_ADMIN', 'ADMIN', 'AGENT']) {
    const role = r.body.data.find((x) => x.name === name);
    assert.ok(role, `${name} listed`);
    assert.equal(role.builtin, true, name);
    assert.ok(Number.isInteger(role.id), name);
    assert.ok(Array.isArray(role.permissions), name);
    assert.ok(Number.isInteger(role.users), `${name} has a users count`);
    const n = await db(async (c) => Number((await c.query(
      'SELECT count(*) FROM users u JOIN roles r ON r.id = u.role_id WHERE r.name = $1', [name])).rows[0].count));
    assert.equal(role.users, n, `${name} users count`);
  }
  assert.ok(r.body.data.find((x) => x.name === 'SUPER_ADMIN').users >= 1);
  const adminRole = r.body.data.find((x) => x.name === 'ADMIN');
  assert.ok(adminRole.permissions.includes('users.manage'));
  assert.ok(!adminRole.permissions.includes('roles.manage'));
  // A new user moves the count.
  const before = r.body.data.find((x) => x.name === 'AGENT').users;
  await createUser('counted');
  assert.equal((await roleByName('AGENT')).users, before + 1);
});

test('POST /roles: registered permissions 201, unregistered 422, duplicate 409, bad name 422', async () => {
  const name = uniq('SUPPORT');
  let r = await api('POST', '/roles', admin, { name, permissions: ['users.manage', 'example.read'] });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.name, name);
  assert.deepEqual([...r.body.permissions].sort(), ['example.read', 'users.manage']);
  assert.equal(r.body.builtin, false);
  assert.equal(r.body.users, 0);
  assert.ok(Number.isInteger(r.body.id));
  assert.ok((await roleByName(name)), 'listed');

  r = await api('POST', '/roles', admin, { name: uniq('R'), permissions: ['nope.never'] });
  let e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(fieldsOf(e), ['permissions[0]'], r.text);
  const bad = uniq('R');
  r = await api('POST', '/roles', admin, { name: bad, permissions: ['users.manage', 'example.readx', 'example.read'] });
  e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(fieldsOf(e), ['permissions[1]'], r.text);
  assert.equal(await roleByName(bad), undefined, 'nothing written');
  r = await api('POST', '/roles', admin, { name: bad, permissions: 'users.manage' });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  r = await api('POST', '/roles', admin, { name: bad, permissions: [1] });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  r = await api('POST', '/roles', admin, { name: bad });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');

  r = await api('POST', '/roles', admin, { name, permissions: [] });
  assertEnvelope(assert, r, 409, 'CONFLICT');
  r = await api('POST', '/roles', admin, { name: 'ADMIN', permissions: [] });
  assertEnvelope(assert, r, 409, 'CONFLICT');

  for (const n of ['9lives', 'has space', 'dash-name', '_under', '', 'é_accent', `A${'b'.repeat(64)}`]) {
    r = await api('POST', '/roles', admin, { name: n, permissions: [] });
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  }
  assertEnvelope(assert, await api('POST', '/roles', undefined, { name: uniq('R'), permissions: [] }), 401, 'UNAUTHENTICATED');
});

test('PATCH /roles/{id}: rename and permissions; SUPER_ADMIN frozen, built-ins keep their names', async () => {
  const role = await createRole(['example.read'], 'PATCHME');
  const renamed = uniq('RENAMED');
  let r = await api('PATCH', `/roles/${role.id}`, admin, { name: renamed });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.name, renamed);
  assert.deepEqual(r.body.permissions, ['example.read']);
  r = await api('PATCH', `/roles/${role.id}`, admin, { permissions: ['example.write', 'jobs.read'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.name, renamed);
  assert.deepEqual([...r.body.permissions].sort(), ['example.write', 'jobs.read']);
  r = await api('PATCH', `/roles/${role.id}`, admin, { permissions: ['no.such'] });
  assert.deepEqual(fieldsOf(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR')), ['permissions[0]']);
  assertEnvelope(assert, await api('PATCH', `/roles/${role.id}`, admin, { name: 'bad name' }), 422, 'VALIDATION_ERROR');
  assertEnvelope(assert, await api('PATCH', `/roles/${role.id}`, admin, { name: 'AGENT' }), 409, 'CONFLICT');
  r = await api('GET', '/roles', admin);
  const now = r.body.data.find((x) => x.id === role.id);
  assert.equal(now.name, renamed);
  assert.deepEqual([...now.permissions].sort(), ['example.write', 'jobs.read']);

  const sa = await roleByName('SUPER_ADMIN');
  for (const body of [{ permissions: [] }, { permissions: ['users.manage'] }, { name: 'OVERLORD' }, { description: 'x' }]) {
    assertEnvelope(assert, await api('PATCH', `/roles/${sa.id}`, admin, body), 409, 'CONFLICT');
  }
  for (const name of ['ADMIN', 'AGENT']) {
    const b = await roleByName(name);
    assertEnvelope(assert, await api('PATCH', `/roles/${b.id}`, admin, { name: `${name}_X` }), 409, 'CONFLICT');
    assert.ok(await roleByName(name), `${name} keeps its name`);
  }
  assert.deepEqual((await roleByName('SUPER_ADMIN')).permissions, sa.permissions);

  for (const id of ['999999999', 'abc', '0']) {
    assertEnvelope(assert, await api('PATCH', `/roles/${id}`, admin, { name: 'Whatever' }), 404, 'NOT_FOUND');
    assertEnvelope(assert, await api('DELETE', `/roles/${id}`, admin), 404, 'NOT_FOUND');
  }
});

test('DELETE /roles/{id}: built-ins and assigned roles 409, an unused custom role 204', async () => {
  for (const name of ['SUPER_ADMIN', 'ADMIN', 'AGENT']) {
    const b = await roleByName(name);
    assertEnvelope(assert, await api('DELETE', `/roles/${b.id}`, admin), 409, 'CONFLICT');
    assert.ok(await roleByName(name), `${name} survives`);
  }
  const used = await createRole(['example.read'], 'USED');
  const u = await createUser('holder', { role: used.name });
  assertEnvelope(assert, await api('DELETE', `/roles/${used.id}`, admin), 409, 'CONFLICT');
  assert.equal((await roleByName(used.name)).users, 1);
  // An inactive holder still holds it.
  assert.equal((await api('DELETE', `/users/${u.id}`, admin)).status, 200);
  assertEnvelope(assert, await api('DELETE', `/roles/${used.id}`, admin), 409, 'CONFLICT');
  // Moved away, the role can go.
  assert.equal((await api('PATCH', `/users/${u.id}`, admin, { role: 'AGENT' })).status, 200);
  let r = await api('DELETE', `/roles/${used.id}`, admin);
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');

  const unused = await createRole([], 'UNUSED');
  r = await api('DELETE', `/roles/${unused.id}`, admin);
  assert.equal(r.status, 204, r.text);
  assert.equal(await roleByName(unused.name), undefined);
  assertEnvelope(assert, await api('DELETE', `/roles/${unused.id}`, admin), 404, 'NOT_FOUND');
  // Its name is free again.
  r = await api('POST', '/roles', admin, { name: unused.name, permissions: [] });
  assert.equal(r.status, 201, r.text);
});

test('GET /permissions lists host and plugin permissions', async () => {
  const r = await api('GET', '/permissions', admin);
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.body.data));
  const byName = new Map();
  for (const p of r.body.data) {
    assert.deepEqual(Object.keys(p).sort(), ['description', 'name', 'plugin'], JSON.stringify(p));
    assert.equal(typeof p.name, 'string');
    assert.equal(typeof p.description, 'string');
    assert.equal(typeof p.plugin, 'string');
    assert.ok(!byName.has(p.name), `${p.name} listed once`);
    byName.set(p.name, p);
  }
  for (const name of HOST_PERMISSIONS) {
    assert.ok(byName.has(name), `${name} listed`);
    assert.equal(byName.get(name).plugin, 'host', name);
    assert.ok(byName.get(name).description.length > 0, name);
  }
  assert.equal(byName.get('example.read')?.plugin, 'example');
  assert.equal(byName.get('example.write')?.plugin, 'example');

  // Any staff member may read it; nobody anonymous.
  const agent = await createUser('permreader');
  const a = await api('GET', '/permissions', await loginAs(agent));
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.body.data, r.body.data);
  assertEnvelope(assert, await api('GET', '/permissions'), 401, 'UNAUTHENTICATED');
});

test('permission changes to a role apply to the next request of its holders', async () => {
  const role = await createRole([], 'LIVE');
  const u = await createUser('live', { role: role.name });
  const t = await loginAs(u);
  const check = async (want) => {
    // Several requests on fresh connections, so more than one worker sees it.
    const rs = await Promise.all(Array.from({ length: 6 }, () => rawRequest(srv.port,
      { path: '/api/v1/users?limit=1', headers: { authorization: `Bearer ${t}` } })));
    for (const x of rs) assert.equal(x.status, want, x.text);
  };
  await check(403);
  assert.deepEqual((await api('GET', '/users/me', t)).body.permissions, []);

  let r = await api('PATCH', `/roles/${role.id}`, admin, { permissions: ['users.manage'] });
  assert.equal(r.status, 200, r.text);
  await check(200);
  assert.deepEqual((await api('GET', '/users/me', t)).body.permissions, ['users.manage']);

  r = await api('PATCH', `/roles/${role.id}`, admin, { permissions: [] });
  assert.equal(r.status, 200, r.text);
  await check(403);

  // Moving the user to another role applies at once too.
  r = await api('PATCH', `/users/${u.id}`, admin, { role: 'ADMIN' });
  assert.equal(r.status, 200, r.text);
  await check(200);
  assert.equal((await api('GET', '/users/me', t)).body.role, 'ADMIN');
});
