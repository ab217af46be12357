// Login throttling (per username, per client address, shared by the
// workers) and the general per-caller rate limit, both answering 429
// RATE_LIMITED with Retry-After and recovering afterwards; trusted
// proxies' X-Forwarded-For; a route's own limit.  The harness turns all
// of these off by default: every server here turns on what it tests.
// Recovery waits Retry-After for real (a few seconds); nothing asserts on
// elapsed time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, assertEnvelope, sleep, ADMIN_PASSWORD } from './lib/harness.mjs';
import { burst, poll, rawRequest } from './lib/helpers.mjs';

const PASSWORD = 'a-good-long-password-1';
const WRONG = 'certainly-not-the-password';
const LOGIN = '/api/v1/auth/login';

const uniq = (p) => `${p}_${randomBytes(4).toString('hex')}`;

async function withServer(opts, fn) {
  const srv = await startServer(opts);
  try { return await fn(srv); } finally { await srv.stop(); }
}

const login = (srv, username, password, headers = {}) =>
  srv.request('POST', LOGIN, { json: { username, password }, headers });

async function createUser(srv, token, prefix = 'user') {
  const username = uniq(prefix);
  const r = await srv.request('POST', '/api/v1/users', { token,
    json: { username, password: PASSWORD, name: prefix, role: 'AGENT' } });
  assert.equal(r.status, 201, r.text);
  return username;
}

// 429 RATE_LIMITED, the envelope, and a whole number of seconds >= 1.
function assert429(r, label = '') {
  assertEnvelope(assert, r, 429, 'RATE_LIMITED');
  const ra = r.headers.get('retry-after');
  assert.match(ra ?? '', /^\d+$/, `${label} Retry-After: ${ra}`);
  assert.ok(Number(ra) >= 1, `${label} Retry-After ${ra} >= 1`);
  return Number(ra);
}

// For raw responses (burst/rawRequest): the same checks.
function raw429(r, label = '') {
  return assert429({ ...r, headers: { get: (k) => r.headers[k.toLowerCase()] ?? null } }, label);
}

async function answeringPids(srv, ids) {
  const want = new Set(ids);
  let found = new Map();
  await poll(() => {
    found = new Map();
    for (const l of srv.logs) if (l.component === 'access' && want.has(l.request_id)) found.set(l.request_id, l.pid);
    return found.size === want.size;
  }, { timeout: 5000, interval: 50 });
  assert.equal(found.size, want.size, 'an access log line per request');
  return new Set(found.values());
}

const loginReq = (username, password, id) => ({ method: 'POST', path: LOGIN,
  headers: { 'content-type': 'application/json', 'x-request-id': id },
  body: JSON.stringify({ username, password }) });

// ------------------------------------------------------------ login: user

test('login throttling per username: 429 with Retry-After even for the right password; others unaffected', async () => {
  await withServer({ host: { login_user_failures: '3', login_ip_failures: '1000', login_window: '60' } }, async (srv) => {
    const admin = await srv.login();
    const victim = await createUser(srv, admin, 'victim');
    const bystander = await createUser(srv, admin, 'bystander');

    for (let i = 0; i < 3; i++) assertEnvelope(assert, await login(srv, victim, WRONG), 401, 'UNAUTHENTICATED');
    const ra = assert429(await login(srv, victim, PASSWORD), 'right password after 3 failures');
    assert.ok(ra <= 60, `Retry-After ${ra} within the window`);
    assert429(await login(srv, victim, WRONG), 'wrong password');
    // The username is one budget whatever its case.
    assert429(await login(srv, victim.toUpperCase(), PASSWORD), 'upper-case username');

    // Another username from the same address still logs in.
    const r = await login(srv, bystander, PASSWORD);
    assert.equal(r.status, 200, r.text);
    assert.equal((await login(srv, 'admin', ADMIN_PASSWORD)).status, 200);
    // And a good login does not count as a failure: the bystander can
    // still fail twice and log in.
    for (let i = 0; i < 2; i++) assertEnvelope(assert, await login(srv, bystander, WRONG), 401, 'UNAUTHENTICATED');
    assert.equal((await login(srv, bystander, PASSWORD)).status, 200);

    // Unknown usernames are throttled the same way (no tell).
    const ghost = uniq('ghost');
    for (let i = 0; i < 3; i++) assertEnvelope(assert, await login(srv, ghost, WRONG), 401, 'UNAUTHENTICATED');
    assert429(await login(srv, ghost, WRONG), 'unknown username');

    // The victim is still locked out.
    assert429(await login(srv, victim, PASSWORD), 'victim still locked');
  });
});

// --------------------------------------------------------- login: address

test('login throttling per address: failures over several usernames lock the address', async () => {
  await withServer({ host: { login_ip_failures: '5', login_user_failures: '1000', login_window: '60' } }, async (srv) => {
    const admin = await srv.login();
    const alice = await createUser(srv, admin, 'alice');
    const names = [alice, uniq('nobody1'), uniq('nobody2'), 'admin', uniq('nobody3')];
    for (const n of names) assertEnvelope(assert, await login(srv, n, WRONG), 401, 'UNAUTHENTICATED');
    // Every username from this address is now refused, right password or not.
    assert429(await login(srv, 'admin', ADMIN_PASSWORD), 'admin, right password');
    assert429(await login(srv, alice, PASSWORD), 'alice, right password');
    assert429(await login(srv, uniq('fresh'), WRONG), 'a fresh username');
    // Authenticated traffic is not affected by the login budget.
    assert.equal((await srv.request('GET', '/api/v1/users/me', { token: admin })).status, 200);
  });
});

// -------------------------------------------------------- login: recovery

test('login throttling recovers after Retry-After', async () => {
  await withServer({ host: { login_user_failures: '2', login_window: '2', login_ip_failures: '1000' } }, async (srv) => {
    for (let i = 0; i < 2; i++) assertEnvelope(assert, await login(srv, 'admin', WRONG), 401, 'UNAUTHENTICATED');
    const ra = assert429(await login(srv, 'admin', ADMIN_PASSWORD), 'locked');
    assert.ok(ra <= 2, `Retry-After ${ra} within the 2 s window`);
    await sleep(ra * 1000 + 250);
    const r = await login(srv, 'admin', ADMIN_PASSWORD);
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.access_token);
  });
});

// --------------------------------------------------------- login: workers

test('the login budget is shared by all workers', async () => {
  // Enough connections at once that Kore hands them to several workers.
  const N = 30;
  await withServer({ workers: 3, host: { login_user_failures: String(N), login_ip_failures: '1000', login_window: '60' } }, async (srv) => {
    const admin = await srv.login();
    const victim = await createUser(srv, admin, 'shared');

    // Exactly N failures, on connections spread over the workers: none is
    // throttled (the budget is N)...
    let ids = Array.from({ length: N }, () => `thr-${randomBytes(8).toString('hex')}`);
    let answers = await burst(srv.port, ids.map((id) => loginReq(victim, WRONG, id)), { password: ADMIN_PASSWORD });
    answers.forEach((a, i) => assert.equal(a.status, 401, `failure ${i}: ${a.status} ${a.text}`));
    const failPids = await answeringPids(srv, ids);
    assert.ok(failPids.size >= 2, `the failures reached more than one worker (${[...failPids]})`);
    // So no single worker saw N of them.
    const perWorker = {};
    for (const l of srv.logs) if (l.component === 'access' && ids.includes(l.request_id)) perWorker[l.pid] = (perWorker[l.pid] ?? 0) + 1;
    assert.ok(Object.values(perWorker).every((n) => n < N), JSON.stringify(perWorker));

    // ...but together they lock the username out in every worker.
    const pids = new Set();
    for (let round = 0; round < 5 && (round < 1 || pids.size < 2); round++) {
      ids = Array.from({ length: 30 }, () => `thr-${randomBytes(8).toString('hex')}`);
      answers = await burst(srv.port, ids.map((id) => loginReq(victim, PASSWORD, id)), { password: ADMIN_PASSWORD });
      answers.forEach((a, i) => raw429(a, `right password ${i}`));
      for (const p of await answeringPids(srv, ids)) pids.add(p);
    }
    assert.ok(pids.size >= 2, `the lockout answered from more than one worker (${[...pids]})`);
  });
});

// ----------------------------------------------------- general rate limit

const RL = { rate_limit: '5', rate_limit_window: '2' };
// The budget refills completely within the window (startup polls /healthz
// from this address).
const refill = () => sleep(2300);

// Five requests at once (all inside one refill interval), then the 6th.
async function exhaust(srv, headers = {}, label = '') {
  const rs = await Promise.all(Array.from({ length: 5 }, () => srv.request('GET', '/healthz', { headers })));
  rs.forEach((r, i) => assert.equal(r.status, 200, `${label} request ${i + 1}: ${r.text}`));
  return assert429(await srv.request('GET', '/healthz', { headers }), `${label} 6th request`);
}

test('the general rate limit: the 6th request in the window is 429, then requests pass again', async () => {
  await withServer({ host: RL }, async (srv) => {
    await refill();
    const ra = await exhaust(srv, {}, 'anonymous');
    assert.ok(ra <= 2, `Retry-After ${ra} within the 2 s window`);
    // Another route: the same caller, the same budget.
    assert429(await srv.request('GET', '/api/v1/openapi.json'), 'another route');
    assert429(await srv.request('POST', LOGIN, { json: { username: 'admin', password: ADMIN_PASSWORD } }), 'login');
    await sleep(ra * 1000 + 250);
    const r = await srv.request('GET', '/healthz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { status: 'ok' });
  });
});

test('rate limits are per caller: users have their own budgets, apart from anonymous traffic', async () => {
  await withServer({ host: RL }, async (srv) => {
    await refill();
    const admin = await srv.login();
    const name = await createUser(srv, admin, 'budget');
    const user = await srv.login(name, PASSWORD);
    await refill();

    // Anonymous traffic from this address runs out...
    await exhaust(srv, {}, 'anonymous');
    // ...the admin still has a whole budget of its own...
    for (let i = 0; i < 5; i++) {
      const r = await srv.request('GET', '/api/v1/users/me', { token: admin });
      assert.equal(r.status, 200, `admin request ${i + 1}: ${r.text}`);
    }
    assert429(await srv.request('GET', '/api/v1/users/me', { token: admin }), 'admin 6th');
    // ...and so has the other user, from the same address.
    for (let i = 0; i < 5; i++) {
      const r = await srv.request('GET', '/healthz', { token: user });
      assert.equal(r.status, 200, `user request ${i + 1}: ${r.text}`);
    }
    assert429(await srv.request('GET', '/healthz', { token: user }), 'user 6th');
    assert429(await srv.request('GET', '/healthz'), 'anonymous, still');
    // A bad token is answered 401 (authentication comes first).
    assertEnvelope(assert, await srv.request('GET', '/api/v1/users/me', { token: 'x.y.z' }), 401, 'UNAUTHENTICATED');
  });
});

test('without trusted_proxies X-Forwarded-For is ignored: one shared budget', async () => {
  await withServer({ host: RL }, async (srv) => {
    await refill();
    for (let i = 0; i < 5; i++) {
      const r = await srv.request('GET', '/healthz', { headers: { 'x-forwarded-for': `198.51.100.${i + 1}` } });
      assert.equal(r.status, 200, r.text);
    }
    assert429(await srv.request('GET', '/healthz', { headers: { 'x-forwarded-for': '198.51.100.99' } }), 'forged address');
    assert429(await srv.request('GET', '/healthz'), 'no header');
  });
});

test('behind a trusted proxy each X-Forwarded-For address has its own budget', async () => {
  await withServer({ host: { ...RL, trusted_proxies: '127.0.0.1' } }, async (srv) => {
    await refill();
    const xff = (a) => ({ 'x-forwarded-for': a });
    await exhaust(srv, xff('198.51.100.1'), '198.51.100.1');
    // The right-most entry is the address the proxy saw: a client cannot
    // escape its budget by prepending another.
    assert429(await srv.request('GET', '/healthz', { headers: xff('203.0.113.7, 198.51.100.1') }), 'prepended');
    // Other clients of the proxy are unaffected.
    await exhaust(srv, xff('198.51.100.2'), '198.51.100.2');
    await exhaust(srv, xff('203.0.113.7, 198.51.100.3'), '198.51.100.3');
    const r = await srv.request('GET', '/healthz');
    assert.equal(r.status, 200, `the proxy's own requests: ${r.text}`);
    // The access log shows the client address.
    const id = `xff-${randomBytes(6).toString('hex')}`;
    const a = await rawRequest(srv.port, { path: '/healthz', headers: { 'x-forwarded-for': '192.0.2.44', 'x-request-id': id } });
    assert.equal(a.status, 200, a.text);
    const line = await poll(() => srv.logs.find((l) => l.component === 'access' && l.request_id === id), { timeout: 5000, interval: 50 });
    assert.equal(line?.ip, '192.0.2.44');
  });
});

// ------------------------------------------------------- a route's limit

test('PUT /users/me/password has its own limit: the 11th attempt is 429', async () => {
  await withServer({}, async (srv) => {
    const admin = await srv.login();
    const name = await createUser(srv, admin, 'pwlimit');
    const user = await srv.login(name, PASSWORD);
    const put = (token, current) => srv.request('PUT', '/api/v1/users/me/password', { token,
      json: { current_password: current, new_password: 'another-good-password-9' } });
    for (let i = 0; i < 10; i++) {
      const r = await put(user, WRONG);
      assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    }
    const ra = assert429(await put(user, WRONG), '11th');
    assert.ok(ra <= 900, `Retry-After ${ra}`);
    // Even the right password waits now; nothing changed.
    assert429(await put(user, PASSWORD), 'right password');
    assert.equal((await srv.request('POST', LOGIN, { json: { username: name, password: PASSWORD } })).status, 200);
    // Other routes and other callers are not affected.
    assert.equal((await srv.request('GET', '/api/v1/users/me', { token: user })).status, 200);
    assertEnvelope(assert, await put(admin, WRONG), 422, 'VALIDATION_ERROR');
  });
});
