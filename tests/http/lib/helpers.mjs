// Helpers shared by the black-box tests on top of harness.mjs: raw HTTP
// (for what fetch hides: HEAD bodies, missing Content-Type, huge bodies,
// one connection per request), keep-alive connections pinned to workers,
// forged JWTs, users without permissions, and the test PostgreSQL
// cluster's start/stop.
//
// Timing rule (issue 13): tests wait for conditions, never for fixed
// times, and never depend on how fast the machine is.  Every wait here
// polls for a condition up to a generous deadline (WAIT_MS), which only
// matters when the condition never comes.
import { connect } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { ROOT, JWT_SECRET, ADMIN_PASSWORD, pgClient, withDb, databaseUrl, sleep } from './harness.mjs';

// The deadline of a wait for something that must happen: long enough for
// the sanitizer build on a loaded two-core machine.  Passing tests never
// wait this long.
export const WAIT_MS = 60000;

const execFileP = promisify(execFile);

// Parse one HTTP/1.1 response out of a buffer; null while incomplete.
// `head`: a response to HEAD (no body whatever Content-Length says).
function parseResponse(buf, { head = false, closed = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`not an HTTP response: ${lines[0]}`);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  const rest = buf.subarray(end + 4);
  const status = Number(m[1]);
  let body;
  if (head || status === 204 || status === 304) {
    body = rest;	// anything here is a protocol error the test sees
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (rest.length < n) return null;
    body = rest.subarray(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const out = [];
    let off = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', off);
      if (eol === -1) return null;
      const size = parseInt(rest.subarray(off, eol).toString(), 16);
      if (rest.length < eol + 2 + size + 2) return null;
      if (size === 0) break;
      out.push(rest.subarray(eol + 2, eol + 2 + size));
      off = eol + 2 + size + 2;
    }
    body = Buffer.concat(out);
  } else {
    if (!closed) return null;
    body = rest;
  }
  const text = body.toString('utf8');
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status, headers, raw: body, text, body: json };
}

// One request on its own connection (Connection: close).  `body` is a
// string/Buffer sent as is; `bodyLength` with no `body` streams that many
// bytes of `fill` and stops streaming as soon as a response has arrived
// (a server may answer before reading an oversized body).  `untilClose`
// keeps reading after a complete response until the server closes the
// connection (it does right after the response: Connection: close), to
// catch bytes a server should not have sent (e.g. a body after a HEAD
// response) whatever the machine's speed.  `localAddress`: the source
// address (any 127.x.y.z is loopback on Linux): a client address of its
// own for tests of per-address budgets.
export function rawRequest(port, { method = 'GET', path = '/', headers = {}, body,
  bodyLength, fill = 'a', timeout = WAIT_MS, untilClose = false, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1', localAddress });
    const chunks = [];
    let done = false;
    let parsed = null;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(parsed);
    };
    const timer = setTimeout(() => finish(new Error(`raw ${method} ${path}: timeout`)), timeout);
    const tryParse = (closed) => {
      try {
        parsed = parseResponse(Buffer.concat(chunks), { head: method === 'HEAD', closed });
      } catch (e) { finish(e); return; }
      if (parsed && !closed && !untilClose) finish();
    };
    sock.on('data', (d) => { chunks.push(d); if (!done) tryParse(false); });
    sock.on('end', () => {
      tryParse(true);
      if (parsed) finish(); else finish(new Error(`raw ${method} ${path}: connection closed ` +
        `without a complete response: ${Buffer.concat(chunks).toString('latin1').slice(0, 300)}`));
    });
    sock.on('error', (e) => {
      // A reset after the response arrived (server closed while we were
      // still sending) is fine: the response is what is under test.
      tryParse(true);
      if (parsed) finish(); else finish(e);
    });
    sock.on('connect', async () => {
      const h = { host: `127.0.0.1:${port}`, connection: 'close', ...headers };
      const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
      const len = payload ? payload.length : bodyLength;
      if (len !== undefined && h['content-length'] === undefined) h['content-length'] = String(len);
      let head = `${method} ${path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
      sock.write(head + '\r\n');
      if (payload) { sock.write(payload); return; }
      if (!bodyLength) return;
      // A server may refuse the body on its headers alone: give it the
      // chance to answer before streaming (writing into a connection it
      // already closed loses the answer to EPIPE/ECONNRESET).  Waited for
      // as a condition (an answer) with a deadline, not a fixed time: a
      // loaded machine may take a while to answer the headers.
      const answerBy = Date.now() + Math.min(15000, timeout / 2);
      while (!parsed && !done && Date.now() < answerBy) await new Promise((r) => setTimeout(r, 20));
      const chunk = Buffer.alloc(64 * 1024, fill);
      let sent = 0;
      while (sent < bodyLength && !done && !parsed && !sock.destroyed) {
        const n = Math.min(chunk.length, bodyLength - sent);
        const ok = sock.write(n === chunk.length ? chunk : chunk.subarray(0, n));
        sent += n;
        if (!ok) {
          await new Promise((r) => {
            const t = setTimeout(r, 100);
            sock.once('drain', () => { clearTimeout(t); r(); });
          });
        }
      }
    });
  });
}

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

// A JWT signed like the host signs them (HS256 over the harness secret)
// unless told otherwise.  claims override the defaults of a valid token.
export function forgeJwt(claims = {}, { secret = JWT_SECRET, alg = 'HS256', header, signature } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { typ: 'access', sub: '1', role: 'SUPER_ADMIN', jti: randomBytes(16).toString('hex'),
    iat: now, nbf: now, exp: now + 600, iss: 'switchboard', aud: 'switchboard', ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  const h = header ?? { alg, typ: 'JWT' };
  const input = `${b64url(h)}.${b64url(payload)}`;
  let sig = signature;
  if (sig === undefined) {
    const algo = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
    sig = algo ? createHmac(algo, secret).update(input).digest('base64url') : '';
  }
  return `${input}.${sig}`;
}

// A role with no permission at all and a user in it whose password is the
// admin's (its hash is copied), straight into the server's database.
export async function createUnprivilegedUser(srv, username = 'noperm') {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try {
    await c.query(`INSERT INTO roles (name, description, permissions)
      VALUES ('NO_PERMS', 'Holds nothing', '{}') ON CONFLICT (name) DO NOTHING`);
    const r = await c.query(`INSERT INTO users (username, password_hash, name, role_id)
      SELECT $1, password_hash, 'No permissions', (SELECT id FROM roles WHERE name = 'NO_PERMS')
      FROM users WHERE username = 'admin' RETURNING id`, [username]);
    return r.rows[0].id;
  } finally { await c.end(); }
}

// The shared test cluster (scripts/pg.sh with the caller's SB_VAR).
export async function pgCtl(cmd) {
  const { stdout } = await execFileP(join(ROOT, 'scripts/pg.sh'), [cmd], { env: process.env });
  return stdout;
}

// Poll fn until it returns a truthy value or the time is up; returns the
// last value.  The deadline only matters when the condition never comes.
export async function poll(fn, { timeout = WAIT_MS, interval = 200 } = {}) {
  const deadline = Date.now() + timeout;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() >= deadline) return v;
    await sleep(interval);
  }
}

// Worker pids as the structured log shows them (lines with "worker").
export function workerPids(srv) {
  return [...new Set(srv.logs.filter((l) => l.worker !== undefined && typeof l.pid === 'number')
    .map((l) => l.pid))].sort((a, b) => a - b);
}

// Wait until the log shows `n` worker pids (every worker logs at init when
// the example plugin is enabled).
export async function waitWorkerPids(srv, n, timeout = WAIT_MS) {
  await poll(() => workerPids(srv).length >= n, { timeout, interval: 50 });
  return workerPids(srv);
}

// Kore hands new connections to whichever worker holds its accept lock,
// and a worker keeps the lock until it is busy (16 connections accepted in
// one go).  To spread requests over the workers: keep the lock holder busy
// with a few logins (Argon2id: tens of milliseconds each) while `requests`
// all connect at once, then send them.  Each request is an object for
// rawRequest() (method, path, headers, body); answers come back in order.
// Where they land depends on timing: good for load at once, never proof
// that every worker was reached (workerConnections() is).
export async function burst(port, requests, { password } = {}) {
  const blockers = password === undefined ? [] : Array.from({ length: 3 }, () => rawRequest(port, {
    method: 'POST', path: '/api/v1/auth/login', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }) }));
  await sleep(5);
  const socks = await Promise.all(requests.map(() => new Promise((res, rej) => {
    const s = connect(port, '127.0.0.1', () => res(s));
    s.once('error', rej);
  })));
  const answers = await Promise.all(socks.map((s, i) => new Promise((res, rej) => {
    const { method = 'GET', path, headers = {}, body } = requests[i];
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('error', rej);
    s.on('end', () => {
      try {
        const r = parseResponse(Buffer.concat(chunks), { head: method === 'HEAD', closed: true });
        if (r) res(r); else rej(new Error(`no response to ${method} ${path}`));
      } catch (e) { rej(e); }
    });
    const payload = body === undefined ? null : Buffer.from(body);
    const h = { host: `127.0.0.1:${port}`, connection: 'close', ...headers };
    if (payload) h['content-length'] = String(payload.length);
    let head = `${method} ${path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
    s.write(head + '\r\n');
    if (payload) s.write(payload);
  })));
  await Promise.all(blockers);
  return answers;
}

// Wait until the wall clock has passed `t` (ms since the epoch): for
// lifetimes and cool-downs, which end at a moment, not after some work.
export async function sleepUntil(t) {
  for (let left = t - Date.now(); left > 0; left = t - Date.now()) await sleep(Math.min(left, 1000));
}

// One keep-alive HTTP/1.1 connection, one request at a time: whichever
// worker accepted it answers everything sent on it.  request() takes what
// rawRequest() takes (method, path, headers, body) and answers the same
// shape; it rejects when the connection closes before the answer.
export class Connection {
  static open(port, { localAddress } = {}) {
    return new Promise((resolve, reject) => {
      const sock = connect({ port, host: '127.0.0.1', localAddress }, () => {
        sock.off('error', reject);
        resolve(new Connection(sock, port));
      });
      sock.once('error', reject);
    });
  }

  constructor(sock, port) {
    this.sock = sock;
    this.port = port;
    this.closed = false;
    this.used = Date.now();
    this.buf = Buffer.alloc(0);
    this.pending = null;
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.check(false); });
    const gone = () => { this.closed = true; this.check(true); };
    sock.on('end', gone);
    sock.on('close', gone);
    sock.on('error', gone);
  }

  check(closed) {
    const p = this.pending;
    if (!p) return;
    let r;
    try { r = parseResponse(this.buf, { head: p.method === 'HEAD', closed }); } catch (e) {
      this.pending = null; p.reject(e); return;
    }
    if (r) {
      this.pending = null;
      this.buf = Buffer.alloc(0);
      this.used = Date.now();
      p.resolve(r);
    } else if (closed) {
      this.pending = null;
      p.reject(new Error(`${p.method} ${p.path}: connection closed before the answer`));
    }
  }

  // How long the connection has been idle (the server closes idle ones).
  idleMs() { return Date.now() - this.used; }

  request({ method = 'GET', path, headers = {}, body } = {}) {
    if (this.pending) throw new Error('one request at a time');
    if (this.closed) return Promise.reject(new Error(`${method} ${path}: connection closed`));
    return new Promise((resolve, reject) => {
      this.pending = { method, path, resolve, reject };
      const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
      const h = { host: `127.0.0.1:${this.port}`, ...headers };
      if (payload) h['content-length'] = String(payload.length);
      else if (['POST', 'PUT', 'PATCH'].includes(method)) h['content-length'] ??= '0';	// as fetch does
      let head = `${method} ${path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
      this.sock.write(head + '\r\n');
      if (payload) this.sock.write(payload);
    });
  }

  close() { this.closed = true; this.sock.destroy(); }
}

// The pid of the worker that answered each request id, from the access log
// (a line per request, written when it is answered).
export async function accessPids(srv, ids, { timeout = WAIT_MS } = {}) {
  const want = new Set(ids);
  let found = new Map();
  await poll(() => {
    found = new Map();
    for (const l of srv.logs) if (l.component === 'access' && want.has(l.request_id)) found.set(l.request_id, l.pid);
    return found.size === want.size;
  }, { timeout, interval: 50 });
  if (found.size !== want.size) throw new Error(`access log lines for ${found.size} of ${want.size} request ids`);
  return found;
}

// Keep-alive connections to at least `n` different workers of srv, so a
// test can send something to a worker of its choice: which worker a new
// connection lands on is up to Kore's accept lock, so connections are
// opened in bursts (see burst()) until the access log shows that n
// workers answered them; the wait is for that condition, with a deadline.
// request(pid, req) sends on that worker's connection; one that sat idle
// long enough for the server to close it (http_keepalive_time) is
// replaced first by a fresh one to the same worker.
export async function workerConnections(srv, n, { password = ADMIN_PASSWORD, timeout = WAIT_MS } = {}) {
  const conns = new Map();	// pid -> Connection
  // Open connections until each wanted pid (or n pids) has one.
  const find = async (done, deadline) => {
    while (!done() && Date.now() < deadline) {
      const blockers = Array.from({ length: 3 }, () => rawRequest(srv.port, {
        method: 'POST', path: '/api/v1/auth/login', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password }) }).catch(() => null));
      await sleep(5);
      const batch = await Promise.all(Array.from({ length: 24 }, () => Connection.open(srv.port)));
      const ids = batch.map(() => `pin-${randomBytes(8).toString('hex')}`);
      const answers = await Promise.all(batch.map((c, i) => c.request({ path: '/healthz',
        headers: { 'x-request-id': ids[i] } }).catch(() => null)));
      await Promise.all(blockers);
      const live = batch.filter((c, i) => answers[i]?.status === 200);
      const pids = await accessPids(srv, ids.filter((_, i) => answers[i]?.status === 200));
      for (const c of batch) {
        const i = batch.indexOf(c);
        const pid = pids.get(ids[i]);
        const have = conns.get(pid);
        if (live.includes(c) && pid !== undefined && (!have || have.closed)) conns.set(pid, c);
        else c.close();
      }
    }
  };
  await find(() => [...conns.values()].filter((c) => !c.closed).length >= n, Date.now() + timeout);
  if (conns.size < n) throw new Error(`connections reached ${conns.size} of ${n} workers`);
  return {
    pids: [...conns.keys()].sort((a, b) => a - b),
    async request(pid, req) {
      let c = conns.get(pid);
      if (!c || c.closed || c.idleMs() > 2000) {
        c?.close();
        conns.delete(pid);
        await find(() => conns.get(pid) && !conns.get(pid).closed, Date.now() + timeout);
        c = conns.get(pid);
        if (!c) throw new Error(`no connection to worker ${pid} any more`);
      }
      return c.request(req);
    },
    close() { for (const c of conns.values()) c.close(); },
  };
}

// Rows of one query against a test server's own database.
export async function serverSql(srv, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

// A staff user made through the API (POST /api/v1/users) with a unique
// username from `name`, signed in: {id, name, token}.
export async function makeStaff(srv, adminToken, name, role, password = 'staff-password-0123456789') {
  const username = `${name}-${randomBytes(4).toString('hex')}`;
  const r = await srv.request('POST', '/api/v1/users', { token: adminToken,
    json: { username, password, name, email: `${username}@example.org`, role } });
  if (r.status !== 201) throw new Error(`creating ${username}: ${r.status} ${r.text}`);
  return { id: r.body.id, name, token: await srv.login(username, password) };
}
