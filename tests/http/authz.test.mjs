// The authorisation matrix, generated from the route registry: every
// route the server serves (GET /api/v1/plugins, every ready plugin
// including the host) × every kind of caller gives the status its access
// rule says.  Callers: anonymous, a donor, an AGENT, an ADMIN, the
// super-admin, an API key with no scope, an API key holding exactly the
// route's permission (a key holding every permission on routes without
// one), and an API key holding every permission but the route's.
//
// Expected, per access rule:
//   public          nobody gets 401/403
//   staff           users allowed; donors and API keys 403; anonymous 401
//   authenticated   everyone but anonymous (401)
//   donor           donor tokens; anonymous 401; everyone else 403
//   permission P    super-admin allowed; a role iff it holds P; a key iff
//                   its scopes hold P; donors 403; anonymous 401.  P may
//                   be alternatives "a.b|c.d": holding any one is enough
//                   (the exact key holds the first; "all but" lacks all)
// "Allowed" is any status but 401 and 403: path parameters are filled with
// ids that do not exist and bodies are `{}`, so handlers answer 4xx of
// their own (which also keeps the destructive routes from changing
// anything).  A route whose access is not one of the five, or is
// "permission" without one, fails the suite.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, allPlugins } from './lib/harness.mjs';

// Every product plugin that is built joins the matrix.
const PLUGINS = allPlugins();
const ACCESS = ['public', 'staff', 'authenticated', 'donor', 'permission'];
const MISSING_ID = '999999';
const USER_PASSWORD = 'matrix-password-0123';
// Routes that end the caller's credentials when they succeed: asked last,
// with credentials minted for that one request.
const CONSUMING = new Set(['POST /api/v1/auth/logout', 'PUT /api/v1/users/me/password']);

let srv, superToken;
let routes = [];		// every ready plugin's routes, with `plugin`
let rolePerms = {};		// role name -> Set of permissions
let allPerms = [];		// every registered permission
const principals = [];

before(async () => {
  srv = await startServer({ plugins: PLUGINS, workers: 2 });
  superToken = await srv.login();

  const plugins = await srv.request('GET', '/api/v1/plugins', { token: superToken });
  assert.equal(plugins.status, 200, plugins.text);
  for (const p of plugins.body.data) {
    if (p.state !== 'ready') continue;
    for (const r of p.routes) routes.push({ ...r, plugin: p.name });
  }
  const roles = await srv.request('GET', '/api/v1/roles', { token: superToken });
  assert.equal(roles.status, 200, roles.text);
  rolePerms = Object.fromEntries(roles.body.data.map((r) => [r.name, new Set(r.permissions)]));
  const perms = await srv.request('GET', '/api/v1/permissions', { token: superToken });
  assert.equal(perms.status, 200, perms.text);
  allPerms = perms.body.data.map((p) => p.name);
  await buildPrincipals();
});
after(async () => { await srv?.stop(); });

async function createKey(name, scopes) {
  const r = await srv.request('POST', '/api/v1/api-keys', { token: superToken, json: { name, scopes } });
  assert.equal(r.status, 201, `key ${name}: ${r.text}`);
  return r.body.key;
}

async function createUser(username, role) {
  const r = await srv.request('POST', '/api/v1/users', { token: superToken,
    json: { username, password: USER_PASSWORD, name: username, role } });
  assert.equal(r.status, 201, `user ${username}: ${r.text}`);
}

const bearer = (t) => ({ authorization: `Bearer ${t}` });
const apiKey = (k) => ({ 'x-api-key': k });

// Each principal: kind ('anonymous' | 'donor' | 'user' | 'key'), role
// (users), scopesFor(route) (keys: the scopes of the key used on that
// route, or null when the principal has no row for it), and
// headersFor(route, fresh) giving the request headers.
async function buildPrincipals() {
  const impersonator = await createKey('matrix impersonator', ['donors.impersonate']);
  const mintDonor = async () => {
    const r = await srv.request('POST', '/api/v1/donor-sessions', { headers: apiKey(impersonator),
      json: { donor_id: `matrix-donor-${Math.random().toString(36).slice(2)}`, donor: 'Matrix Donor' } });
    assert.equal(r.status, 201, `donor session: ${r.text}`);
    return r.body.donor_token;
  };

  await createUser('matrix_agent', 'AGENT');
  await createUser('matrix_admin', 'ADMIN');

  const noScope = await createKey('matrix no scope', []);
  const allScopes = await createKey('matrix every scope', allPerms);
  const routePerms = [...new Set(routes.map((r) => r.permission).filter(Boolean))];
  const exactKey = {};
  const allButKey = {};
  for (const p of routePerms) {
    exactKey[p] = await createKey(`matrix ${p}`, [alternatives(p)[0]]);
    allButKey[p] = await createKey(`matrix all but ${p}`,
      allPerms.filter((q) => !alternatives(p).includes(q)));
  }

  principals.push({ name: 'anonymous', kind: 'anonymous', headersFor: () => ({}) });

  const donorToken = await mintDonor();
  principals.push({ name: 'donor', kind: 'donor',
    headersFor: async (_r, fresh) => bearer(fresh ? await mintDonor() : donorToken) });

  for (const [name, username, role] of [['agent', 'matrix_agent', 'AGENT'],
    ['admin', 'matrix_admin', 'ADMIN'], ['super-admin', 'admin', 'SUPER_ADMIN']]) {
    const password = username === 'admin' ? undefined : USER_PASSWORD;
    const token = await srv.login(username, password);
    principals.push({ name, kind: 'user', role,
      headersFor: async (_r, fresh) => bearer(fresh ? await srv.login(username, password) : token) });
  }

  principals.push({ name: 'key-no-scope', kind: 'key', scopesFor: () => [],
    headersFor: () => apiKey(noScope) });
  principals.push({ name: 'key-with-scope', kind: 'key',
    scopesFor: (r) => (r.permission ? [alternatives(r.permission)[0]] : allPerms),
    headersFor: (r) => apiKey(r.permission ? exactKey[r.permission] : allScopes) });
  principals.push({ name: 'key-all-but-scope', kind: 'key',
    scopesFor: (r) => (r.permission
      ? allPerms.filter((q) => !alternatives(r.permission).includes(q)) : null),
    headersFor: (r) => apiKey(allButKey[r.permission]) });
}

const alternatives = (perm) => perm.split('|');

// 'allowed', 401 or 403.
function expected(route, p) {
  if (route.access === 'public') return 'allowed';
  if (p.kind === 'anonymous') return 401;
  switch (route.access) {
    case 'authenticated':
      return 'allowed';
    case 'staff':
      return p.kind === 'user' ? 'allowed' : 403;
    case 'donor':
      return p.kind === 'donor' ? 'allowed' : 403;
    case 'permission':
      if (p.kind === 'donor') return 403;
      if (p.kind === 'key') {
        const scopes = p.scopesFor(route);
        return alternatives(route.permission).some((a) => scopes.includes(a)) ? 'allowed' : 403;
      }
      if (p.role === 'SUPER_ADMIN') return 'allowed';
      return alternatives(route.permission).some((a) => rolePerms[p.role]?.has(a)) ? 'allowed' : 403;
    default:
      throw new Error(`no rule for access ${route.access}`);
  }
}

const fillPath = (path) => path.replace(/\{[^}]+\}/g, MISSING_ID);

async function ask(route, headers) {
  const h = { ...headers };
  let json;
  if (['POST', 'PUT', 'PATCH'].includes(route.method)) json = {};
  return srv.request(route.method, fillPath(route.path), { headers: h, json });
}

function check(route, p, r) {
  const want = expected(route, p);
  const got = r.status;
  let ok;
  if (want === 'allowed') {
    ok = got !== 401 && got !== 403;
  } else {
    const code = want === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN';
    ok = got === want && r.body?.code === code && r.body?.status === 'error';
    if (ok && want === 401) ok = r.headers.get('www-authenticate') === 'Bearer';
  }
  if (ok) return null;
  const detail = r.body?.code ? `${r.body.code}: ${r.body.message}` : r.text.slice(0, 80);
  return `${route.method} ${route.path} ${p.name} expected ${want} got ${got} (${detail})`;
}

test('every route in the registry declares exactly one known access rule', () => {
  assert.ok(routes.length > 0, 'the registry lists no route');
  const bad = [];
  const seen = new Set();
  for (const r of routes) {
    const id = `${r.method} ${r.path} (${r.plugin})`;
    if (!ACCESS.includes(r.access)) bad.push(`${id}: access ${JSON.stringify(r.access)}`);
    if (r.access === 'permission' && (typeof r.permission !== 'string' || r.permission === ''))
      bad.push(`${id}: access "permission" without a permission`);
    if (r.access !== 'permission' && r.permission != null)
      bad.push(`${id}: access "${r.access}" and also permission ${r.permission}`);
    for (const a of r.permission ? alternatives(r.permission) : [])
      if (!allPerms.includes(a)) bad.push(`${id}: permission ${a} is not registered`);
    if ((r.public === true) !== (r.access === 'public'))
      bad.push(`${id}: public ${r.public} but access ${r.access}`);
    if (seen.has(`${r.method} ${r.path}`)) bad.push(`${id}: registered twice`);
    seen.add(`${r.method} ${r.path}`);
  }
  assert.deepEqual(bad, [], `routes with a bad access rule:\n${bad.join('\n')}`);
});

test('the identity routes carry the access API.md gives them', () => {
  const want = {
    'GET /healthz': 'public',
    'GET /readyz': 'public',
    'GET /api/v1/openapi.json': 'public',
    'GET /api/v1/plugins': 'system.read',
    'POST /api/v1/auth/login': 'public',
    'POST /api/v1/auth/refresh': 'public',
    'POST /api/v1/auth/logout': 'authenticated',
    'GET /api/v1/users/me': 'staff',
    'PATCH /api/v1/users/me': 'staff',
    'PUT /api/v1/users/me/password': 'staff',
    'PUT /api/v1/users/me/fcm-token': 'staff',
    'GET /api/v1/users': 'users.manage',
    'POST /api/v1/users': 'users.manage',
    'GET /api/v1/users/{id}': 'users.manage',
    'PATCH /api/v1/users/{id}': 'users.manage',
    'DELETE /api/v1/users/{id}': 'users.manage',
    'GET /api/v1/roles': 'roles.manage',
    'POST /api/v1/roles': 'roles.manage',
    'PATCH /api/v1/roles/{id}': 'roles.manage',
    'DELETE /api/v1/roles/{id}': 'roles.manage',
    'GET /api/v1/permissions': 'staff',
    'GET /api/v1/api-keys': 'api_keys.manage',
    'POST /api/v1/api-keys': 'api_keys.manage',
    'DELETE /api/v1/api-keys/{id}': 'api_keys.manage',
    'POST /api/v1/donor-sessions': 'donors.impersonate',
    ...(PLUGINS.audit ? { 'GET /api/v1/audit': 'audit.read', 'GET /api/v1/audit/verify': 'audit.read' } : {}),
    // The avatar is the media plugin's (plugins/media/avatar.c).
    ...(PLUGINS.media ? { 'POST /api/v1/users/me/avatar': 'staff', 'GET /api/v1/users/{id}/avatar': 'staff',
      'GET /api/v1/media': 'media.manage' } : {}),
  };
  const got = Object.fromEntries(routes.map((r) => [`${r.method} ${r.path}`,
    r.access === 'permission' ? r.permission : r.access]));
  const wrong = Object.entries(want).filter(([k, v]) => got[k] !== v)
    .map(([k, v]) => `${k}: want ${v}, registry says ${got[k] ?? '(not registered)'}`);
  assert.deepEqual(wrong, [], wrong.join('\n'));
});

test('the roles the matrix relies on exist', () => {
  for (const role of ['SUPER_ADMIN', 'ADMIN', 'AGENT']) assert.ok(rolePerms[role], `role ${role}`);
});

test('every route × every principal gets the status its access rule gives', async () => {
  const failures = [];
  let asked = 0;
  const plain = routes.filter((r) => !CONSUMING.has(`${r.method} ${r.path}`));
  const consuming = routes.filter((r) => CONSUMING.has(`${r.method} ${r.path}`));
  for (const [list, fresh] of [[plain, false], [consuming, true]]) {
    for (const route of list) {
      for (const p of principals) {
        if (p.scopesFor && p.scopesFor(route) === null) continue;
        const r = await ask(route, await p.headersFor(route, fresh));
        asked++;
        const f = check(route, p, r);
        if (f) failures.push(f);
      }
    }
  }
  assert.ok(asked >= routes.length * 7, `asked ${asked}`);
  if (failures.length) assert.fail(`${failures.length} of ${asked} cells differ:\n${failures.join('\n')}`);
});

test('after the matrix every principal still holds working credentials', async () => {
  // Nothing the matrix sent changed a user, a role or a key.
  for (const p of principals) {
    if (p.kind !== 'user') continue;
    const r = await srv.request('GET', '/api/v1/users/me', { headers: await p.headersFor(null, false) });
    assert.equal(r.status, 200, `${p.name}: ${r.text}`);
    assert.equal(r.body.role, p.role);
    assert.equal(r.body.is_active, true);
  }
  const keys = await srv.request('GET', '/api/v1/api-keys?limit=200', { token: superToken });
  assert.equal(keys.status, 200, keys.text);
  assert.deepEqual(keys.body.data.filter((k) => k.revoked_at !== null).map((k) => k.name), []);
  const roles = await srv.request('GET', '/api/v1/roles', { token: superToken });
  assert.deepEqual(Object.fromEntries(roles.body.data.map((r) => [r.name, new Set(r.permissions)])), rolePerms);
});
