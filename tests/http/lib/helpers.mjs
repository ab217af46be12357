// Helpers shared by the black-box tests on top of harness.mjs: raw HTTP
// (for what fetch hides: HEAD bodies, missing Content-Type, huge bodies,
// one connection per request), forged JWTs, users without permissions,
// and the test PostgreSQL cluster's start/stop.
import { connect } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { ROOT, JWT_SECRET, pgClient, withDb, databaseUrl, sleep } from './harness.mjs';

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
// (a server may answer before reading an oversized body).  `waitAfter`
// keeps reading that many ms after a complete response, to catch bytes a
// server should not have sent (e.g. a body after a HEAD response).
export function rawRequest(port, { method = 'GET', path = '/', headers = {}, body,
  bodyLength, fill = 'a', timeout = 20000, waitAfter = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    let parsed = null;
    let afterTimer = null;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(afterTimer);
      sock.destroy();
      if (err) reject(err); else resolve(parsed);
    };
    const timer = setTimeout(() => finish(new Error(`raw ${method} ${path}: timeout`)), timeout);
    const tryParse = (closed) => {
      try {
        parsed = parseResponse(Buffer.concat(chunks), { head: method === 'HEAD', closed });
      } catch (e) { finish(e); return; }
      if (parsed && !closed) {
        if (waitAfter > 0) {
          if (!afterTimer) afterTimer = setTimeout(() => finish(), waitAfter);
        } else {
          finish();
        }
      }
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
      // already closed loses the answer to EPIPE/ECONNRESET).
      for (let i = 0; i < 10 && !parsed && !done; i++) await new Promise((r) => setTimeout(r, 50));
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
// last value.
export async function poll(fn, { timeout = 15000, interval = 200 } = {}) {
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
export async function waitWorkerPids(srv, n, timeout = 10000) {
  await poll(() => workerPids(srv).length >= n, { timeout, interval: 50 });
  return workerPids(srv);
}

// Kore hands new connections to whichever worker holds its accept lock,
// and a worker keeps the lock until it is busy (16 connections accepted in
// one go).  To spread requests over the workers: keep the lock holder busy
// with a few logins (Argon2id: tens of milliseconds each) while `requests`
// all connect at once, then send them.  Each request is an object for
// rawRequest() (method, path, headers, body); answers come back in order.
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
