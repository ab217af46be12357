// The host's security events reach the audit log: user, role and API-key
// changes, logout, refresh-token reuse and plugins refused at start, each
// once, with its actor and target, and never with a secret in it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TEST_PLUGINS, testPlugin, ADMIN_PASSWORD } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';

let srv, token;
before(async () => {
  srv = await startServer({ workers: 2,
    plugins: { ...TEST_PLUGINS, audit: {}, bad_major: testPlugin('bad_major') } });
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

async function records(action) {
  const r = await srv.request('GET', `/api/v1/audit?action=${encodeURIComponent(action)}&limit=200`,
    { token });
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

async function one(action, pred = () => true) {
  let rows = [];
  await poll(async () => { rows = (await records(action)).filter(pred); return rows.length > 0; });
  assert.equal(rows.length, 1, `${action}: ${JSON.stringify(rows)}`);
  return rows[0];
}

test('a plugin refused at start is recorded once, by the system', async () => {
  const rec = await one('host.plugin.failed', (x) => x.details.plugin === 'bad_major');
  assert.equal(rec.actor_type, 'system');
  assert.match(rec.details.error, /ABI major/);
});

test('user, role and API-key changes are recorded with the acting user and the target', async () => {
  const u = await srv.request('POST', '/api/v1/users', { token,
    json: { username: 'audited', password: 'a-long-password-1', role: 'AGENT', name: 'A' } });
  assert.equal(u.status, 201, u.text);
  const created = await one('users.created', (x) => x.target === `user:${u.body.id}`);
  assert.equal(created.actor_type, 'user');
  assert.equal(created.actor_name, 'admin');
  assert.ok(!JSON.stringify(created).includes('a-long-password-1'));

  await srv.request('PATCH', `/api/v1/users/${u.body.id}`, { token,
    json: { name: 'B', password: 'another-password-2' } });
  const updated = await one('users.updated', (x) => x.target === `user:${u.body.id}`);
  assert.equal(updated.details.changes.password_reset, true);
  assert.ok(!JSON.stringify(updated).includes('another-password-2'));
  await srv.request('DELETE', `/api/v1/users/${u.body.id}`, { token });
  await one('users.deactivated', (x) => x.target === `user:${u.body.id}`);

  const role = await srv.request('POST', '/api/v1/roles', { token,
    json: { name: 'AUDITORS', permissions: ['system.read'] } });
  assert.equal(role.status, 201, role.text);
  await one('roles.created', (x) => x.target === `role:${role.body.id}`);
  await srv.request('DELETE', `/api/v1/roles/${role.body.id}`, { token });
  await one('roles.deleted', (x) => x.target === `role:${role.body.id}`);

  const key = await srv.request('POST', '/api/v1/api-keys', { token,
    json: { name: 'audited key', scopes: ['system.read'] } });
  assert.equal(key.status, 201, key.text);
  const kc = await one('api_keys.created', (x) => x.target === `api_key:${key.body.id}`);
  assert.equal(kc.details.prefix, key.body.prefix);
  assert.ok(!JSON.stringify(kc).includes(key.body.key), 'the key itself is never recorded');
  await srv.request('DELETE', `/api/v1/api-keys/${key.body.id}`, { token });
  await one('api_keys.revoked', (x) => x.target === `api_key:${key.body.id}`);
});

test('logout and refresh-token reuse are recorded', async () => {
  const login = await srv.request('POST', '/api/v1/auth/login',
    { json: { username: 'admin', password: ADMIN_PASSWORD } });
  const { refresh_token: first } = login.body;
  const sid = JSON.parse(Buffer.from(login.body.access_token.split('.')[1], 'base64url')).sid;
  const next = await srv.request('POST', '/api/v1/auth/refresh', { json: { refresh_token: first } });
  assert.equal(next.status, 200, next.text);
  const reuse = await srv.request('POST', '/api/v1/auth/refresh', { json: { refresh_token: first } });
  assert.equal(reuse.status, 401);
  const rec = await one('auth.refresh.reused', (x) => x.details.session_id === sid);
  assert.ok(!JSON.stringify(rec).includes(first.slice(4)), 'the token is not recorded');

  const other = await srv.request('POST', '/api/v1/auth/login',
    { json: { username: 'admin', password: ADMIN_PASSWORD } });
  const osid = JSON.parse(Buffer.from(other.body.access_token.split('.')[1], 'base64url')).sid;
  const out = await srv.request('POST', '/api/v1/auth/logout', { token: other.body.access_token });
  assert.equal(out.status, 204);
  const lo = await one('auth.logout', (x) => x.details.session_id === osid);
  assert.equal(lo.actor_type, 'user');
  assert.equal(lo.actor_name, 'admin');
});

test('the chain still verifies after all of it', async () => {
  const r = await srv.request('GET', '/api/v1/audit/verify', { token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.ok, true);
  assert.ok(r.body.checked > 10);
});
