// The HTTP edge, byte by byte (issue 13).  Every request here is written
// to a raw socket exactly as shown, all at once, the way a careless client
// or an attacker sends it (Node's fetch would normalise most of these away).
// The rule under test: every request gets an HTTP response in the one
// error envelope, never a dropped connection; where the connection cannot
// go on, the response says `connection: close` and the server ends the
// stream only after the response, however much unread input is left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startServer, allPlugins } from './lib/harness.mjs';

let srv, token, limited;

before(async () => {
  srv = await startServer({ plugins: allPlugins() });
  token = await srv.login();
  // A general budget of 3 requests a day per caller: it cannot refill while
  // the test runs, however slow the machine.
  limited = await startServer({ host: { rate_limit: '3', rate_limit_window: '86400' } });
});
after(async () => { await srv?.stop(); await limited?.stop(); });

// Parse every response in `buf` (interim 1xx responses included).
function parseAll(buf) {
  const out = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end === -1) break;
    const lines = buf.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`not a status line: ${lines[0].slice(0, 100)}`);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    const len = status < 200 || status === 204 ? 0 : Number(headers['content-length'] ?? 0);
    if (buf.length < end + 4 + len) break;
    const text = buf.subarray(end + 4, end + 4 + len).toString('utf8');
    let body = null;
    try { body = JSON.parse(text); } catch { /* not JSON */ }
    out.push({ status, headers, text, body });
    off = end + 4 + len;
  }
  return out;
}

// Write `chunks` (strings/Buffers) to a fresh connection as fast as the
// socket takes them, then collect everything until the server ends the
// stream.  `error` is a socket error seen *before* the server's end.
function exchange(chunks, { port = srv.port, timeout = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const data = [];
    let error = null;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no end of stream within ' + timeout + ' ms: ' +
      Buffer.concat(data).toString('latin1').slice(0, 200))); }, timeout);
    sock.on('data', (d) => data.push(d));
    sock.on('error', (e) => { error = error ?? e; });
    sock.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(data);
      resolve({ raw, responses: parseAll(raw), error });
    });
    sock.on('connect', () => {
      for (const c of chunks) if (!sock.destroyed) sock.write(c);
    });
  });
}

function head(method, path, headers = []) {
  return `${method} ${path} HTTP/1.1\r\n` + headers.map((h) => h + '\r\n').join('') + '\r\n';
}
const HOST = 'Host: 127.0.0.1';

// Exactly one response, in the envelope, with that status and code, and
// the connection closed after it.
function assertRefused(r, status, code) {
  assert.equal(r.error, null, `socket error before the response ended: ${r.error}`);
  assert.equal(r.responses.length, 1, `responses: ${r.raw.toString('latin1').slice(0, 300)}`);
  const [res] = r.responses;
  assert.equal(res.status, status, res.text);
  assert.deepEqual(Object.keys(res.body).sort(), ['code', 'errors', 'message', 'request_id', 'status']);
  assert.equal(res.body.status, 'error');
  assert.equal(res.body.code, code);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.match(res.headers['x-request-id'] ?? '', /^[0-9a-f]{32}$/);
  assert.equal(res.body.request_id, res.headers['x-request-id']);
  assert.equal(res.headers.connection, 'close');
  return res;
}

test('a query string of 1,000 parameters or one 8,000-character value is 414 URI_TOO_LONG', async () => {
  const many = Array.from({ length: 1000 }, (_, i) => `p${i}=v`).join('&');
  assertRefused(await exchange([head('GET', `/api/v1/openapi.json?${many}`, [HOST])]), 414, 'URI_TOO_LONG');
  const long = `/api/v1/openapi.json?q=${'x'.repeat(8000)}`;
  assertRefused(await exchange([head('GET', long, [HOST])]), 414, 'URI_TOO_LONG');
  // A request line longer than the whole head buffer (8 KiB) as well.
  assertRefused(await exchange([head('GET', `/?q=${'y'.repeat(20000)}`, [HOST])]), 414, 'URI_TOO_LONG');
  // Just inside the limit (1,998 characters of target) is served.
  const edge = '/healthz?' + 'z'.repeat(1998 - '/healthz?'.length);
  const ok = await exchange([head('GET', edge, [HOST, 'Connection: close'])]);
  assert.equal(ok.responses[0].status, 200);
});

test('a header or the header set over the limit is 431 HEADERS_TOO_LARGE', async () => {
  assertRefused(await exchange([head('GET', '/healthz', [HOST, `X-Big: ${'b'.repeat(16 * 1024)}`])]),
    431, 'HEADERS_TOO_LARGE');
  // Many headers that add up past 8 KiB.
  const many = Array.from({ length: 60 }, (_, i) => `X-H${i}: ${'h'.repeat(200)}`);
  assertRefused(await exchange([head('GET', '/healthz', [HOST, ...many])]), 431, 'HEADERS_TOO_LARGE');
  // More header lines than the server keeps (63), however short.
  const lines = Array.from({ length: 70 }, (_, i) => `X-L${i}: 1`);
  assertRefused(await exchange([head('GET', '/healthz', [HOST, ...lines])]), 431, 'HEADERS_TOO_LARGE');
  // Over 8 KiB: an X-Request-Id, a Content-Type, a bearer token.
  for (const h of [`X-Request-Id: ${'r'.repeat(9000)}`, `Content-Type: application/json; x=${'c'.repeat(9000)}`,
    `Authorization: Bearer ${'t'.repeat(9000)}`]) {
    assertRefused(await exchange([head('POST', '/api/v1/auth/login', [HOST, h, 'Content-Length: 2']), '{}']),
      431, 'HEADERS_TOO_LARGE');
  }
});

test('8,000-character X-Request-Id, Content-Type and bearer token that fit are answered by the API', async () => {
  // An X-Request-Id that long is not echoed: a fresh one is made.
  let r = await exchange([head('GET', '/healthz', [HOST, `X-Request-Id: ${'r'.repeat(8000)}`, 'Connection: close'])]);
  assert.equal(r.responses.length, 1);
  assert.equal(r.responses[0].status, 200);
  assert.match(r.responses[0].headers['x-request-id'], /^[0-9a-f]{32}$/);

  r = await exchange([head('POST', '/api/v1/auth/login', [HOST, `Content-Type: application/${'c'.repeat(8000)}`,
    'Content-Length: 2', 'Connection: close']), '{}']);
  assert.equal(r.responses[0].status, 415);
  assert.equal(r.responses[0].body.code, 'UNSUPPORTED_MEDIA_TYPE');

  r = await exchange([head('GET', '/api/v1/users/me', [HOST, `Authorization: Bearer ${'t'.repeat(8000)}`,
    'Connection: close'])]);
  assert.equal(r.responses[0].status, 401);
  assert.equal(r.responses[0].body.code, 'UNAUTHENTICATED');
});

test('a 10 MiB JSON body is 413 PAYLOAD_TOO_LARGE as soon as it is declared, sent whole or not at all', async () => {
  const big = Buffer.alloc(10 * 1024 * 1024, ' ');
  big[0] = 0x7b; big[big.length - 1] = 0x7d; // "{ ... }"
  const h = head('POST', '/api/v1/auth/login', [HOST, 'Content-Type: application/json',
    `Content-Length: ${big.length}`]);
  // All of it written at once: the answer survives the unread megabytes.
  assertRefused(await exchange([h, big]), 413, 'PAYLOAD_TOO_LARGE');
  // Only the head: the answer comes without waiting for any of the body.
  assertRefused(await exchange([h]), 413, 'PAYLOAD_TOO_LARGE');
  // Over a route's own limit (the avatar upload takes more than the
  // default 1 MiB; the JSON login does not).
  const over = head('POST', '/api/v1/auth/login', [HOST, 'Content-Type: application/json',
    `Content-Length: ${1024 * 1024 + 1}`]);
  assertRefused(await exchange([over]), 413, 'PAYLOAD_TOO_LARGE');
});

test('Expect: 100-continue: 413 before the body, or 100 Continue and then the answer', async () => {
  const refused = await exchange([head('POST', '/api/v1/auth/login', [HOST, 'Content-Type: application/json',
    `Content-Length: ${20 * 1024 * 1024}`, 'Expect: 100-continue'])]);
  assertRefused(refused, 413, 'PAYLOAD_TOO_LARGE');

  // Within the limit: the server says 100 Continue, then the client sends.
  const body = JSON.stringify({ username: 'admin', password: 'wrong-password' });
  const r = await new Promise((resolve, reject) => {
    const sock = connect(srv.port, '127.0.0.1');
    const data = [];
    let sent = false;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('timeout')); }, 60000);
    sock.on('data', (d) => {
      data.push(d);
      const all = Buffer.concat(data);
      if (!sent && all.toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = true;
        sock.write(body);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => { clearTimeout(timer); resolve(parseAll(Buffer.concat(data))); });
    sock.on('connect', () => sock.write(head('POST', '/api/v1/auth/login', [HOST, 'Content-Type: application/json',
      `Content-Length: ${body.length}`, 'Expect: 100-continue', 'Connection: close'])));
  });
  assert.deepEqual(r.map((x) => x.status), [100, 401]);
  assert.equal(r[1].body.code, 'UNAUTHENTICATED');
});

test('conflicting or malformed Content-Length, Transfer-Encoding with it, and line folding are 400 and close at once', async () => {
  const post = (hs, body = '') => exchange([head('POST', '/api/v1/auth/login',
    [HOST, 'Content-Type: application/json', ...hs]) + body]);
  assertRefused(await post(['Content-Length: 2', 'Content-Length: 10'], '{}'), 400, 'VALIDATION_ERROR');
  assertRefused(await post(['Content-Length: 2, 3'], '{}'), 400, 'VALIDATION_ERROR');
  for (const v of ['abc', '-1', '+2', '0x2', '2 2', '', '1e3'])
    assertRefused(await post([`Content-Length: ${v}`], '{}'), 400, 'VALIDATION_ERROR');
  assertRefused(await post(['Content-Length: 99999999999999999999999'], '{}'), 413, 'PAYLOAD_TOO_LARGE');
  assertRefused(await post(['Content-Length: 2', 'Transfer-Encoding: chunked'], '{}'), 400, 'VALIDATION_ERROR');
  assertRefused(await post(['Transfer-Encoding: chunked', 'Content-Length: 2'], '{}'), 400, 'VALIDATION_ERROR');
  assertRefused(await post(['Transfer-Encoding: gzip, chunked'], '2\r\n{}\r\n0\r\n\r\n'), 400, 'VALIDATION_ERROR');
  // Chunked request bodies are not taken: 411, send a Content-Length.
  assertRefused(await post(['Transfer-Encoding: chunked'], '2\r\n{}\r\n0\r\n\r\n'), 411, 'VALIDATION_ERROR');
  // Obsolete line folding, a bare CR, whitespace before the colon, two Hosts.
  assertRefused(await post(['Content-Length: 2', 'X-Folded: a', ' b'], '{}'), 400, 'VALIDATION_ERROR');
  assertRefused(await exchange([`GET /healthz HTTP/1.1\r\n${HOST}\r\nX-A: 1\rContent-Length: 5\r\n\r\n`]),
    400, 'VALIDATION_ERROR');
  assertRefused(await post(['Content-Length : 2'], '{}'), 400, 'VALIDATION_ERROR');
  assertRefused(await exchange([head('GET', '/healthz', [HOST, 'Host: other.example'])]), 400, 'VALIDATION_ERROR');
  // A malformed request line.
  assertRefused(await exchange(['GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n']), 400, 'VALIDATION_ERROR');
  assertRefused(await exchange(['GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n']), 400, 'VALIDATION_ERROR');
  assertRefused(await exchange(['G\u00c9T /healthz HTTP/1.1\r\nHost: x\r\n\r\n']), 400, 'VALIDATION_ERROR');
  // The same Content-Length twice is one Content-Length.
  const same = await post(['Content-Length: 2', 'Content-Length: 2', 'Connection: close'], '{}');
  assert.equal(same.responses[0].status, 422);
});

test('POST, PUT, PATCH and DELETE without a body need no Content-Length', async () => {
  const q = await srv.request('POST', '/api/v1/donor-queries', {
    json: { donor: 'Edge Donor', donor_id: 'edge-1', content: 'bodyless actions' } });
  assert.equal(q.status, 201, q.text);
  const id = q.body.query.id;
  const auth = `Authorization: Bearer ${token}`;
  // accept: PATCH with neither a body nor a Content-Length.
  let r = await exchange([head('PATCH', `/api/v1/donor-queries/${id}/accept`, [HOST, auth, 'Connection: close'])]);
  assert.equal(r.error, null);
  assert.equal(r.responses[0].status, 200, r.responses[0].text);
  assert.equal(r.responses[0].body.assigned_to, (await srv.request('GET', '/api/v1/users/me', { token })).body.id);
  r = await exchange([head('PATCH', `/api/v1/donor-queries/${id}/resolve`, [HOST, auth, 'Connection: close'])]);
  assert.equal(r.responses[0].status, 200, r.responses[0].text);
  assert.equal(r.responses[0].body.status, 'RESOLVED');
  // read-all and a job retry (404: no such job, not 411).
  r = await exchange([head('POST', '/api/v1/notifications/read-all', [HOST, auth, 'Connection: close'])]);
  assert.ok(r.responses[0].status < 300, r.responses[0].text);
  r = await exchange([head('POST', '/api/v1/jobs/999999/retry', [HOST, auth, 'Connection: close'])]);
  assert.equal(r.responses[0].status, 404);
  // DELETE without a Content-Length, then logout, the way curl -X sends them.
  r = await exchange([head('DELETE', '/api/v1/api-keys/999999', [HOST, auth, 'Connection: close'])]);
  assert.equal(r.responses[0].status, 404);
  r = await exchange([head('POST', '/api/v1/auth/logout', [HOST, auth, 'Connection: close'])]);
  assert.equal(r.responses[0].status, 204, r.responses[0].text);
  token = await srv.login();
});

test('a body on any method is read as a body, never as the next request', async () => {
  // A DELETE carrying a request in its body: one response, nothing smuggled.
  const inner = head('GET', '/healthz', [HOST]);
  let r = await exchange([head('DELETE', '/api/v1/api-keys/999999', [HOST, `Authorization: Bearer ${token}`,
    `Content-Length: ${inner.length}`, 'Connection: close']) + inner]);
  assert.equal(r.error, null);
  assert.equal(r.responses.length, 1, r.raw.toString('latin1'));
  assert.equal(r.responses[0].status, 404);
  r = await exchange([head('GET', '/healthz', [HOST, `Content-Length: ${inner.length}`, 'Connection: close']) + inner]);
  assert.equal(r.responses.length, 1, r.raw.toString('latin1'));
  assert.equal(r.responses[0].status, 200);
});

test('pipelined requests: the first is answered and the connection closes, nothing is left hanging', async () => {
  const two = head('GET', '/healthz', [HOST]) + head('GET', '/readyz', [HOST]);
  const r = await exchange([two]);
  assert.equal(r.error, null);
  assert.equal(r.responses.length, 1);
  assert.equal(r.responses[0].status, 200);
  assert.equal(r.responses[0].headers.connection, 'close');
  // A POST whose body is followed by another request: the same.
  const body = '{"username":"admin","password":"x"}';
  const p = await exchange([head('POST', '/api/v1/auth/login', [HOST, 'Content-Type: application/json',
    `Content-Length: ${body.length}`]) + body + head('GET', '/healthz', [HOST])]);
  assert.equal(p.error, null);
  assert.equal(p.responses.length, 1);
  assert.equal(p.responses[0].status, 401);
  assert.equal(p.responses[0].headers.connection, 'close');
});

test('a client that stops sending mid-request gets 408 REQUEST_TIMEOUT', async () => {
  // The header timeout is Kore's (10 s): the test waits for the answer.
  assertRefused(await exchange(['GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n']), 408, 'REQUEST_TIMEOUT');
  assertRefused(await exchange(['GET /heal']), 408, 'REQUEST_TIMEOUT');
});

test('/healthz, /readyz and /metrics are outside the per-caller budget', async () => {
  const codes = [];
  for (let i = 0; i < 5; i++) codes.push((await limited.request('GET', '/api/v1/openapi.json')).status);
  assert.deepEqual(codes, [200, 200, 200, 429, 429]);
  for (let i = 0; i < 20; i++) {
    for (const p of ['/healthz', '/readyz', '/metrics']) {
      const r = await limited.request('GET', p);
      assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
    }
  }
  // The budget is still spent for everything else.
  assert.equal((await limited.request('GET', '/api/v1/openapi.json')).status, 429);
});
