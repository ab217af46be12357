// Login throttling (per username, per client address, shared by the
// workers) and the general per-caller rate limit, both answering 429
// RATE_LIMITED with Retry-After and recovering afterwards; trusted
// proxies' X-Forwarded-For; a route's own limit.  The harness turns all
// of these off by default: every server here turns on what it tests.
//
// Nothing here depends on the machine's speed.  A budget that must stay
// spent for a whole test has a window of a day (the longest the host
// takes), so it earns nothing back while the test runs, however slow.
// Only the recovery tests use a short window, and they wait for the
// recovery by polling; whether they saw the lock-out at all depends on
// doing the spending and the check within one refill interval, so a
// round that a loaded machine made longer than that proves nothing and is
// started again on a fresh budget (another username, another address).
// Anonymous budgets are per client address: tests of anonymous budgets
// send from an address of their own (any 127.x.y.z is loopback).  The
// probes (/healthz, /readyz, /metrics) are outside every budget, so the
// budgets are spent on the example plugin's public greeting, HELLO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { startServer, assertEnvelope, ADMIN_PASSWORD } from './lib/harness.mjs';
import { poll, rawRequest, workerConnections, accessPids, createUnprivilegedUser, WAIT_MS } from './lib/helpers.mjs';

const PASSWORD = 'a-good-long-password-1';
const WRONG = 'certainly-not-the-password';
const LOGIN = '/api/v1/auth/login';
const HELLO = '/api/v1/example/hello';
// The longest window the host takes, in seconds: refill is a day away.
const DAY = 86400;

const uniq = (p) => `${p}_${randomBytes(4).toString('hex')}`;
// A loopback client address of its own, never 127.0.0.1.
const freshAddress = () => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

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

// A raw response (rawRequest, Connection) as assertEnvelope() takes it.
const fetchLike = (r) => ({ ...r, headers: { get: (k) => r.headers[k.toLowerCase()] ?? null } });

// For raw responses: the same checks as assert429().
function raw429(r, label = '') {
  return assert429(fetchLike(r), label);
}

const loginReq = (username, password, id) => ({ method: 'POST', path: LOGIN,
  headers: { 'content-type': 'application/json', 'x-request-id': id },
  body: JSON.stringify({ username, password }) });

// A request from a client address of our choosing, on its own connection.
function from(srv, address, method, path, { json, headers = {} } = {}) {
  return rawRequest(srv.port, { method, path, localAddress: address,
    headers: json === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: json === undefined ? undefined : JSON.stringify(json) });
}

// Repeat a round until it was conclusive (it returns true); a round
// returns false only when it could not tell because it ran longer than
// the budget's refill interval.
async function untilConclusive(round) {
  const deadline = Date.now() + 4 * WAIT_MS;
  for (let n = 1; ; n++) {
    if (await round(n)) return;
    assert.ok(Date.now() < deadline, `no conclusive round in ${n} tries`);
  }
}

// ------------------------------------------------------------ login: user

test('login throttling per username: 429 with Retry-After even for the right password; others unaffected', async () => {
  await withServer({ host: { login_user_failures: '3', login_ip_failures: '1000', login_window: String(DAY) } }, async (srv) => {
    const admin = await srv.login();
    const victim = await createUser(srv, admin, 'victim');
    const bystander = await createUser(srv, admin, 'bystander');

    for (let i = 0; i < 3; i++) assertEnvelope(assert, await login(srv, victim, WRONG), 401, 'UNAUTHENTICATED');
    const ra = assert429(await login(srv, victim, PASSWORD), 'right password after 3 failures');
    assert.ok(ra <= DAY, `Retry-After ${ra} within the window`);
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
  await withServer({ host: { login_ip_failures: '5', login_user_failures: '1000', login_window: String(DAY) } }, async (srv) => {
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
  // Two failures per 20 s: each is earned back after T = 10 s.
  const T = 10;
  await withServer({ host: { login_user_failures: '2', login_window: String(2 * T), login_ip_failures: '1000' } }, async (srv) => {
    const admin = await srv.login();
    await untilConclusive(async () => {
      const name = await createUser(srv, admin, 'recover');
      const t0 = Date.now();
      for (let i = 0; i < 2; i++) assertEnvelope(assert, await login(srv, name, WRONG), 401, 'UNAUTHENTICATED');
      const locked = await login(srv, name, PASSWORD);
      // Both failures and the check inside T of the first failure: the
      // username must be locked.  Later than that it may not be.
      if (locked.status !== 429 && Date.now() - t0 >= T * 1000) return false;
      const ra = assert429(locked, 'locked');
      assert.ok(ra <= T, `Retry-After ${ra} within the ${T} s refill interval`);
      // Recovery, waited for: the right password works again (a refused
      // attempt is not a failure, so polling costs nothing).
      let r;
      assert.ok(await poll(async () => (r = await login(srv, name, PASSWORD)).status !== 429,
        { timeout: ra * 1000 + WAIT_MS, interval: 250 }), `still locked ${ra} s later`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.access_token);
      return true;
    });
  });
});

// --------------------------------------------------------- login: workers

test('the login budget is shared by all workers', async () => {
  const N = 30;
  await withServer({ workers: 3, host: { login_user_failures: String(N), login_ip_failures: '1000', login_window: String(DAY) } }, async (srv) => {
    const admin = await srv.login();
    const victim = await createUser(srv, admin, 'shared');
    // A connection to each worker: every worker gets a share of the
    // failures, and no worker sees all N of them.
    const w = await workerConnections(srv, 3);
    try {
      const pids = w.pids.slice(0, 3);
      const share = (k) => Math.floor(N / pids.length) + (k < N % pids.length ? 1 : 0);
      const sentTo = new Map();	// request id -> pid

      // Exactly N failures, all workers at once: none is throttled (the
      // budget is N)...
      await Promise.all(pids.map(async (pid, k) => {
        for (let i = 0; i < share(k); i++) {
          const id = `thr-${randomBytes(8).toString('hex')}`;
          sentTo.set(id, pid);
          const a = await w.request(pid, loginReq(victim, WRONG, id));
          assert.equal(a.status, 401, `failure ${i} on worker ${pid}: ${a.status} ${a.text}`);
        }
      }));
      assert.equal(sentTo.size, N);
      const perWorker = {};
      for (const [id, pid] of await accessPids(srv, [...sentTo.keys()])) {
        assert.equal(pid, sentTo.get(id), `failure ${id} answered by the worker it was sent to`);
        perWorker[pid] = (perWorker[pid] ?? 0) + 1;
      }
      assert.equal(Object.keys(perWorker).length, 3, JSON.stringify(perWorker));
      assert.ok(Object.values(perWorker).every((n) => n < N), JSON.stringify(perWorker));

      // ...but together they lock the username out in every worker, for
      // the right password too.
      const ids = new Map();
      for (const pid of pids) {
        const id = `thr-${randomBytes(8).toString('hex')}`;
        ids.set(id, pid);
        raw429(await w.request(pid, loginReq(victim, PASSWORD, id)), `right password on worker ${pid}`);
      }
      for (const [id, pid] of await accessPids(srv, [...ids.keys()])) assert.equal(pid, ids.get(id));
    } finally { w.close(); }
  });
});

// ----------------------------------------------------- general rate limit

// Five requests at once, then the 6th, from one client address.
async function exhaust(srv, address, headers = {}, label = '') {
  const rs = await Promise.all(Array.from({ length: 5 }, () => from(srv, address, 'GET', HELLO, { headers })));
  rs.forEach((r, i) => assert.equal(r.status, 200, `${label} request ${i + 1}: ${r.text}`));
  return raw429(await from(srv, address, 'GET', HELLO, { headers }), `${label} 6th request`);
}

test('the general rate limit: the 6th request in the window is 429, then requests pass again', async () => {
  // Five per 25 s: one earned back every T = 5 s.
  const T = 5;
  await withServer({ host: { rate_limit: '5', rate_limit_window: String(5 * T) } }, async (srv) => {
    await untilConclusive(async () => {
      const address = freshAddress();
      const t0 = Date.now();
      // The first five are a fresh budget's burst: allowed at any speed.
      const rs = await Promise.all(Array.from({ length: 5 }, () => from(srv, address, 'GET', HELLO)));
      rs.forEach((r, i) => assert.equal(r.status, 200, `request ${i + 1}: ${r.text}`));
      const later = [await from(srv, address, 'GET', HELLO),
        // Another route: the same caller, the same budget.
        await from(srv, address, 'GET', '/api/v1/openapi.json'),
        await from(srv, address, 'POST', LOGIN, { json: { username: 'admin', password: ADMIN_PASSWORD } })];
      // All inside T of the first request: each must be refused.
      if (later.some((r) => r.status !== 429) && Date.now() - t0 >= T * 1000) return false;
      const ra = raw429(later[0], '6th request');
      assert.ok(ra <= T, `Retry-After ${ra} within the ${T} s refill interval`);
      raw429(later[1], 'another route');
      raw429(later[2], 'login');
      // Recovery, waited for (a refused request costs nothing).
      let r;
      assert.ok(await poll(async () => (r = await from(srv, address, 'GET', HELLO)).status !== 429,
        { timeout: ra * 1000 + WAIT_MS, interval: 250 }), `still limited ${ra} s later`);
      assert.equal(r.status, 200, r.text);
      return true;
    });
  });
});

test('rate limits are per caller: users have their own budgets, apart from anonymous traffic', async () => {
  await withServer({ host: { rate_limit: '5', rate_limit_window: String(DAY) } }, async (srv) => {
    // Set up from an address of its own and without spending the admin's
    // budget: the second user goes straight into the database.
    const setup = freshAddress();
    const signIn = async (username, password) => {
      const r = await from(srv, setup, 'POST', LOGIN, { json: { username, password } });
      assert.equal(r.status, 200, r.text);
      return r.body.access_token;
    };
    const admin = await signIn('admin', ADMIN_PASSWORD);
    const name = uniq('budget');
    await createUnprivilegedUser(srv, name);
    const user = await signIn(name, ADMIN_PASSWORD);

    // Anonymous traffic from one address runs out...
    const anon = freshAddress();
    await exhaust(srv, anon, {}, 'anonymous');
    // ...the admin still has a whole budget of its own...
    const bearer = (token) => ({ authorization: `Bearer ${token}` });
    for (let i = 0; i < 5; i++) {
      const r = await from(srv, anon, 'GET', '/api/v1/users/me', { headers: bearer(admin) });
      assert.equal(r.status, 200, `admin request ${i + 1}: ${r.text}`);
    }
    raw429(await from(srv, anon, 'GET', '/api/v1/users/me', { headers: bearer(admin) }), 'admin 6th');
    // ...and so has the other user, from the same address.
    for (let i = 0; i < 5; i++) {
      const r = await from(srv, anon, 'GET', HELLO, { headers: bearer(user) });
      assert.equal(r.status, 200, `user request ${i + 1}: ${r.text}`);
    }
    raw429(await from(srv, anon, 'GET', HELLO, { headers: bearer(user) }), 'user 6th');
    raw429(await from(srv, anon, 'GET', HELLO), 'anonymous, still');
    // A bad token is answered 401 (authentication comes first).
    const bad = await from(srv, anon, 'GET', '/api/v1/users/me', { headers: bearer('x.y.z') });
    assertEnvelope(assert, fetchLike(bad), 401, 'UNAUTHENTICATED');
  });
});

test('without trusted_proxies X-Forwarded-For is ignored: one shared budget', async () => {
  await withServer({ host: { rate_limit: '5', rate_limit_window: String(DAY) } }, async (srv) => {
    const address = freshAddress();
    for (let i = 0; i < 5; i++) {
      const r = await from(srv, address, 'GET', HELLO, { headers: { 'x-forwarded-for': `198.51.100.${i + 1}` } });
      assert.equal(r.status, 200, r.text);
    }
    raw429(await from(srv, address, 'GET', HELLO, { headers: { 'x-forwarded-for': '198.51.100.99' } }), 'forged address');
    raw429(await from(srv, address, 'GET', HELLO), 'no header');
  });
});

test('behind a trusted proxy each X-Forwarded-For address has its own budget', async () => {
  // The proxy is an address of its own, so its budget is untouched too.
  const proxy = freshAddress();
  await withServer({ host: { rate_limit: '5', rate_limit_window: String(DAY), trusted_proxies: proxy } }, async (srv) => {
    const xff = (a) => ({ 'x-forwarded-for': a });
    await exhaust(srv, proxy, xff('198.51.100.1'), '198.51.100.1');
    // The right-most entry is the address the proxy saw: a client cannot
    // escape its budget by prepending another.
    raw429(await from(srv, proxy, 'GET', HELLO, { headers: xff('203.0.113.7, 198.51.100.1') }), 'prepended');
    // Other clients of the proxy are unaffected.
    await exhaust(srv, proxy, xff('198.51.100.2'), '198.51.100.2');
    await exhaust(srv, proxy, xff('203.0.113.7, 198.51.100.3'), '198.51.100.3');
    const r = await from(srv, proxy, 'GET', HELLO);
    assert.equal(r.status, 200, `the proxy's own requests: ${r.text}`);
    // The access log shows the client address.
    const id = `xff-${randomBytes(6).toString('hex')}`;
    const a = await from(srv, proxy, 'GET', HELLO, { headers: { 'x-forwarded-for': '192.0.2.44', 'x-request-id': id } });
    assert.equal(a.status, 200, a.text);
    const line = await poll(() => srv.logs.find((l) => l.component === 'access' && l.request_id === id), { interval: 50 });
    assert.equal(line?.ip, '192.0.2.44');
  });
});

// ------------------------------------------------------- a route's limit

test('PUT /users/me/password has its own limit: the 11th attempt is 429', async () => {
  // The route declares 10 per 900 s (src/users.c): one earned back every
  // T = 90 s, not configurable.  A round slower than that proves nothing
  // and is done again by a fresh user (a fresh budget).
  const T = 90;
  await withServer({}, async (srv) => {
    const admin = await srv.login();
    const put = (token, current) => srv.request('PUT', '/api/v1/users/me/password', { token,
      json: { current_password: current, new_password: 'another-good-password-9' } });
    await untilConclusive(async () => {
      const name = await createUser(srv, admin, 'pwlimit');
      const user = await srv.login(name, PASSWORD);
      const t0 = Date.now();
      for (let i = 0; i < 10; i++) {
        const r = await put(user, WRONG);
        assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
      }
      const eleventh = await put(user, WRONG);
      // Even the right password waits now; nothing changed.
      const right = await put(user, PASSWORD);
      if ((eleventh.status !== 429 || right.status !== 429) && Date.now() - t0 >= T * 1000) return false;
      const ra = assert429(eleventh, '11th');
      assert.ok(ra <= 900, `Retry-After ${ra}`);
      assert429(right, 'right password');
      assert.equal((await srv.request('POST', LOGIN, { json: { username: name, password: PASSWORD } })).status, 200);
      // Other routes and other callers are not affected.
      assert.equal((await srv.request('GET', '/api/v1/users/me', { token: user })).status, 200);
      assertEnvelope(assert, await put(admin, WRONG), 422, 'VALIDATION_ERROR');
      return true;
    });
  });
});
