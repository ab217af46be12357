// JWT interop and attacks.  The server's access and donor tokens verify
// with a standard JWT library (jose) given the secret, and carry the
// claims the rest of the system relies on; tokens jose signs with the same
// claims are accepted, and every forgery, stale token and algorithm trick
// is a 401 with the error envelope and `WWW-Authenticate: Bearer`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import * as jose from 'jose';
import { startServer, assertEnvelope, JWT_SECRET, ADMIN_PASSWORD, TEST_PLUGINS } from './lib/harness.mjs';

const SECRET = new TextEncoder().encode(JWT_SECRET);
const VERIFY = { algorithms: ['HS256'], issuer: 'switchboard', audience: 'switchboard' };
const ACCESS_TTL = 900;
const DONOR_TTL = 86400;
const AGENT_PASSWORD = 'agent-password-0123';

let srv, superToken, agentId, keyImpersonate;

before(async () => {
  srv = await startServer({ plugins: TEST_PLUGINS });
  superToken = await srv.login();
  const u = await srv.request('POST', '/api/v1/users', { token: superToken,
    json: { username: 'jwt_agent', password: AGENT_PASSWORD, name: 'JWT Agent', role: 'AGENT' } });
  assert.equal(u.status, 201, u.text);
  agentId = u.body.id;
  const k = await srv.request('POST', '/api/v1/api-keys', { token: superToken,
    json: { name: 'jwt impersonator', scopes: ['donors.impersonate'] } });
  assert.equal(k.status, 201, k.text);
  keyImpersonate = k.body.key;
});
after(async () => { await srv?.stop(); });

const now = () => Math.floor(Date.now() / 1000);
const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

async function login(username = 'admin') {
  const password = username === 'admin' ? ADMIN_PASSWORD : AGENT_PASSWORD;
  const r = await srv.request('POST', '/api/v1/auth/login', { json: { username, password } });
  assert.equal(r.status, 200, r.text);
  return { body: r.body, claims: jose.decodeJwt(r.body.access_token) };
}

// Claims of a valid access token for a real session, minus the times.
function accessClaims(claims, over = {}) {
  const t = now();
  return { typ: 'access', sub: claims.sub, role: claims.role, sid: claims.sid,
    jti: `jose-${Math.random().toString(16).slice(2)}`, iss: 'switchboard', aud: 'switchboard',
    iat: t, nbf: t, exp: t + 600, ...over };
}

async function sign(payload, { alg = 'HS256', key = SECRET, header = {} } = {}) {
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  return new jose.SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(key);
}

async function me(token) {
  return srv.request('GET', '/api/v1/users/me', { token });
}

function assert401(r, what) {
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  assert.equal(r.headers.get('www-authenticate'), 'Bearer', `${what}: WWW-Authenticate`);
}

test('a login access token verifies with jose and carries the documented claims', async () => {
  const t0 = now();
  const r = await srv.request('POST', '/api/v1/auth/login', { json: { username: 'jwt_agent', password: AGENT_PASSWORD } });
  const t1 = now();
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.token_type, 'Bearer');
  assert.equal(r.body.expires_in, ACCESS_TTL);
  const { payload, protectedHeader } = await jose.jwtVerify(r.body.access_token, SECRET, VERIFY);
  assert.equal(protectedHeader.alg, 'HS256');
  assert.equal(payload.typ, 'access');
  assert.equal(payload.sub, String(agentId));
  assert.equal(payload.sub, String(r.body.user.id));
  assert.equal(payload.role, 'AGENT');
  assert.equal(payload.iss, 'switchboard');
  assert.equal(payload.aud, 'switchboard');
  assert.equal(typeof payload.jti, 'string');
  assert.ok(payload.jti.length >= 16, `jti ${payload.jti}`);
  for (const k of ['iat', 'nbf', 'exp']) assert.ok(Number.isInteger(payload[k]), `${k}: ${payload[k]}`);
  // Issued while the login was answered (whole seconds, one clock).
  assert.ok(payload.iat >= t0 && payload.iat <= t1, `iat ${payload.iat} not in [${t0}, ${t1}]`);
  assert.ok(payload.nbf <= payload.iat, 'nbf is not after iat');
  assert.equal(payload.exp - payload.iat, ACCESS_TTL);
  assert.ok(Number.isInteger(payload.sid) && payload.sid > 0, `sid ${payload.sid}`);

  // The super-admin's too; a second login is another session and jti.
  const a1 = await srv.login();
  const a2 = await srv.login();
  const p1 = (await jose.jwtVerify(a1, SECRET, VERIFY)).payload;
  const p2 = (await jose.jwtVerify(a2, SECRET, VERIFY)).payload;
  assert.equal(p1.role, 'SUPER_ADMIN');
  assert.equal(p1.sub, String((await me(a1)).body.id));
  assert.notEqual(p1.jti, p2.jti);
  assert.notEqual(p1.sid, p2.sid);
  assert.notEqual(p1.sid, payload.sid);
});

test('a refreshed access token verifies too: same session, new jti', async () => {
  const r = await srv.request('POST', '/api/v1/auth/login', { json: { username: 'jwt_agent', password: AGENT_PASSWORD } });
  assert.equal(r.status, 200, r.text);
  const first = (await jose.jwtVerify(r.body.access_token, SECRET, VERIFY)).payload;
  const f = await srv.request('POST', '/api/v1/auth/refresh', { json: { refresh_token: r.body.refresh_token } });
  assert.equal(f.status, 200, f.text);
  const next = (await jose.jwtVerify(f.body.access_token, SECRET, VERIFY)).payload;
  assert.equal(next.typ, 'access');
  assert.equal(next.sub, first.sub);
  assert.equal(next.sid, first.sid);
  assert.notEqual(next.jti, first.jti);
  assert.equal(next.exp - next.iat, ACCESS_TTL);
});

test('tokens jose signs with the right claims and key are accepted', async () => {
  const agent = await login('jwt_agent');
  let r = await me(await sign(accessClaims(agent.claims)));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.id, agentId);
  assert.equal(r.body.role, 'AGENT');

  const admin = await login('admin');
  r = await me(await sign(accessClaims(admin.claims)));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.username, 'admin');
  // Within the tolerated clock skew an nbf a few seconds ahead is fine.
  r = await me(await sign(accessClaims(admin.claims, { nbf: now() + 5, iat: now() + 5 })));
  assert.equal(r.status, 200, r.text);
});

test('alg none, wrong keys, stale and foreign tokens are 401 with the envelope', async () => {
  const { claims } = await login('admin');
  const rsa = await jose.generateKeyPair('RS256');
  const ec = await jose.generateKeyPair('ES256');
  const t = now();
  const good = () => accessClaims(claims);
  // Sanity: the claims every case starts from are accepted as they are.
  assert.equal((await me(await sign(good()))).status, 200);

  const unsecured = new jose.UnsecuredJWT(good()).encode();	// header {"alg":"none"}, empty signature
  const noneInput = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(good())}`;
  const hs256Over = (input) => createHmac('sha256', JWT_SECRET).update(input).digest('base64url');
  const hs512Over = (input) => createHmac('sha512', JWT_SECRET).update(input).digest('base64url');
  const hs256Input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(good())}`;

  const cases = {
    'alg none (unsecured JWT)': unsecured,
    'alg none without the trailing dot': unsecured.replace(/\.$/, ''),
    'alg none with an HS256 signature': `${noneInput}.${hs256Over(noneInput)}`,
    'alg None': (() => { const i = `${b64url({ alg: 'None', typ: 'JWT' })}.${b64url(good())}`; return `${i}.`; })(),
    'alg NONE with an HS256 signature': (() => {
      const i = `${b64url({ alg: 'NONE', typ: 'JWT' })}.${b64url(good())}`; return `${i}.${hs256Over(i)}`;
    })(),
    'no alg at all': (() => { const i = `${b64url({ typ: 'JWT' })}.${b64url(good())}`; return `${i}.${hs256Over(i)}`; })(),
    'wrong key': await sign(good(), { key: new TextEncoder().encode('another-secret-0123456789abcdef0123456789') }),
    'key that is a prefix of the secret': await sign(good(), { key: SECRET.slice(0, 32) }),
    'HS384 with the right key': await sign(good(), { alg: 'HS384' }),
    'HS512 with the right key': await sign(good(), { alg: 'HS512' }),
    'header HS256 but an HS512 MAC': `${hs256Input}.${hs512Over(hs256Input)}`,
    'RS256 (own key pair)': await sign(good(), { alg: 'RS256', key: rsa.privateKey }),
    'ES256 (own key pair)': await sign(good(), { alg: 'ES256', key: ec.privateKey }),
    // A valid signature over the admin's claims, on the agent's claims.
    'tampered payload': `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ ...good(), sub: String(agentId) })}` +
      `.${hs256Over(hs256Input)}`,
    'expired': await sign({ ...good(), iat: t - ACCESS_TTL - 60, nbf: t - ACCESS_TTL - 60, exp: t - 60 }),
    'expired a second ago': await sign({ ...good(), iat: t - ACCESS_TTL, nbf: t - ACCESS_TTL, exp: t - 1 }),
    'nbf in the future': await sign({ ...good(), nbf: t + 3600 }),
    'iat in the future': await sign({ ...good(), iat: t + 3600, nbf: t + 3600 }),
    'no exp': await sign({ ...good(), exp: undefined }),
    'no nbf': await sign({ ...good(), nbf: undefined }),
    'no iat': await sign({ ...good(), iat: undefined }),
    'nbf in the future as a string': await sign({ ...good(), nbf: String(t + 3600) }),
    'nbf in the future as a fraction': await sign({ ...good(), nbf: t + 3600.5 }),
    'exp as a string': await sign({ ...good(), exp: String(t + 600) }),
    'wrong audience': await sign({ ...good(), aud: 'someone-else' }),
    'audience list without switchboard': await sign({ ...good(), aud: ['someone-else'] }),
    'no audience': await sign({ ...good(), aud: undefined }),
    'wrong issuer': await sign({ ...good(), iss: 'someone-else' }),
    'no issuer': await sign({ ...good(), iss: undefined }),
    'typ refresh': await sign({ ...good(), typ: 'refresh' }),
    'no typ': await sign({ ...good(), typ: undefined }),
    'no sub': await sign({ ...good(), sub: undefined }),
    'non-numeric sub': await sign({ ...good(), sub: 'admin' }),
    'no sid': await sign({ ...good(), sid: undefined }),
    'sid of no session': await sign({ ...good(), sid: 999999 }),
    'sub of no user': await sign({ ...good(), sub: '999999' }),
    'garbage': 'not.a.jwt',
    'two segments': hs256Input,
    'empty': '',
  };
  const failures = [];
  for (const [name, tok] of Object.entries(cases)) {
    const r = await srv.request('GET', '/api/v1/users/me', { headers: { authorization: `Bearer ${tok}` } });
    if (r.status !== 401 || r.body?.code !== 'UNAUTHENTICATED' || r.headers.get('www-authenticate') !== 'Bearer') {
      failures.push(`${name}: ${r.status} www-authenticate=${r.headers.get('www-authenticate')} ${r.text.slice(0, 120)}`);
      continue;
    }
    assert401(r, name);
  }
  assert.deepEqual(failures, [], failures.join('\n'));
  // An authenticated route (any credentials) refuses them the same way.
  assert401(await srv.request('POST', '/api/v1/auth/logout', { token: unsecured }), 'logout alg none');
  assert401(await srv.request('POST', '/api/v1/auth/logout', { token: await sign(good(), { alg: 'HS512' }) }), 'logout HS512');
});

test("a session is bound to its user: another user's sid, a revoked session and the role claim count for nothing", async () => {
  const admin = await login('admin');
  const agent = await login('jwt_agent');
  // The agent's sub with the admin's session.
  assert401(await me(await sign(accessClaims(agent.claims, { sid: admin.claims.sid }))), 'foreign sid');
  // The admin's sub with the agent's session.
  assert401(await me(await sign(accessClaims(admin.claims, { sid: agent.claims.sid }))), 'foreign sid');

  // The role comes from the database, not from the token.
  const elevated = await sign(accessClaims(agent.claims, { role: 'SUPER_ADMIN' }));
  let r = await me(elevated);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.role, 'AGENT');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/users', { token: elevated }), 403, 'FORBIDDEN');

  // After logout the session is gone: the real token and any token jose
  // signs for that session are refused.
  const mine = await sign(accessClaims(agent.claims));
  r = await srv.request('POST', '/api/v1/auth/logout', { token: agent.body.access_token });
  assert.equal(r.status, 204, r.text);
  assert401(await me(agent.body.access_token), 'after logout');
  assert401(await me(mine), 'jose token for a logged-out session');
  assert401(await me(await sign(accessClaims(agent.claims))), 'fresh jose token for a logged-out session');
});

test('donor tokens verify with jose: typ donor, role donor, donor_id, 24 h', async () => {
  const t0 = now();
  const r = await srv.request('POST', '/api/v1/donor-sessions', { headers: { 'x-api-key': keyImpersonate },
    json: { donor_id: 'ext-4711', donor: 'Ada Donor' } });
  const t1 = now();
  assert.equal(r.status, 201, r.text);
  assert.equal(typeof r.body.donor_token, 'string');
  assert.equal(r.body.expires_in, DONOR_TTL);
  const { payload, protectedHeader } = await jose.jwtVerify(r.body.donor_token, SECRET, VERIFY);
  assert.equal(protectedHeader.alg, 'HS256');
  assert.equal(payload.typ, 'donor');
  assert.equal(payload.role, 'donor');
  assert.equal(payload.donor_id, 'ext-4711');
  assert.equal(payload.name, 'Ada Donor');
  assert.equal(typeof payload.sub, 'string');
  assert.ok(payload.sub.length > 0);
  assert.equal(typeof payload.jti, 'string');
  assert.ok(payload.iat >= t0 && payload.iat <= t1, `iat ${payload.iat} not in [${t0}, ${t1}]`);
  assert.ok(payload.nbf <= payload.iat);
  assert.equal(payload.exp - payload.iat, DONOR_TTL);
  assert.equal(payload.sid, undefined, 'donor tokens carry no staff session');

  // The token works where donors may go.
  const out = await srv.request('POST', '/api/v1/auth/logout', { token: r.body.donor_token });
  assert.equal(out.status, 204, out.text);
});

test('donor tokens jose signs are accepted; forged privileges and bad donor tokens are not', async () => {
  const t = now();
  const donor = (over = {}) => ({ typ: 'donor', sub: 'donor:ext-1', role: 'donor', donor_id: 'ext-1',
    name: 'Forged Name', jti: `j${Math.random()}`, iss: 'switchboard', aud: 'switchboard',
    iat: t, nbf: t, exp: t + 600, ...over });
  let r = await srv.request('POST', '/api/v1/auth/logout', { token: await sign(donor()) });
  assert.equal(r.status, 204, r.text);

  // A donor token claiming a staff role is still a donor.
  const claimsAdmin = await sign(donor({ role: 'SUPER_ADMIN' }));
  assertEnvelope(assert, await srv.request('GET', '/api/v1/users', { token: claimsAdmin }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/users/me', { token: claimsAdmin }), 403, 'FORBIDDEN');

  const rsa = await jose.generateKeyPair('RS256');
  const bad = {
    'no donor_id': await sign(donor({ donor_id: undefined })),
    'empty donor_id': await sign(donor({ donor_id: '' })),
    'HS512': await sign(donor(), { alg: 'HS512' }),
    'RS256': await sign(donor(), { alg: 'RS256', key: rsa.privateKey }),
    'alg none': new jose.UnsecuredJWT(donor()).encode(),
    'expired': await sign(donor({ iat: t - 100, nbf: t - 100, exp: t - 10 })),
    'wrong audience': await sign(donor({ aud: 'else' })),
    'wrong issuer': await sign(donor({ iss: 'else' })),
    'wrong key': await sign(donor(), { key: new TextEncoder().encode('x'.repeat(48)) }),
  };
  for (const [name, tok] of Object.entries(bad)) {
    assert401(await srv.request('POST', '/api/v1/auth/logout', { token: tok }), `donor ${name}`);
  }
});
