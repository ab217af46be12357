// Outbound HTTP (src/httpc.c) and deferred responses, seen from outside
// through the outbound test plugin: POST /api/v1/outbound/fetch defers,
// calls api->http_send() and answers 200 {status, body, error,
// retry_after, elapsed_ms, content_type, x_upstream} from the callback.
// The far side is the scriptable fake upstream (tests/fakes/upstream.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, testPlugin } from './lib/harness.mjs';
import { rawRequest, poll, waitWorkerPids, workerConnections, accessPids, sleepUntil } from './lib/helpers.mjs';
import { startUpstream } from '../fakes/upstream.mjs';

const PLUGINS = { example: {}, outbound: testPlugin('outbound') };
const FETCH = '/api/v1/outbound/fetch';
const IS_ROOT = process.getuid() === 0;

// breaker_failures 3, breaker_cooldown_ms COOLDOWN.  The tests that see
// a breaker open look within a request or two of its opening, so the
// cool-down must outlast those on a loaded machine; they wait it out by
// the clock (sleepUntil), from the opened_at /readyz reports.
const COOLDOWN = 5000;
let srv;
let up;
const cleanup = [];

before(async () => {
  up = await startUpstream();
  srv = await startServer({ workers: 2, plugins: PLUGINS,
    host: { breaker_failures: '3', breaker_cooldown_ms: String(COOLDOWN) } });
});

// Until the breaker's cool-down has surely run out (opened_at is the
// wall clock of the server's host, which is this one).
async function afterCooldown(name) {
  const b = (await readyz(srv)).breakers[name];
  assert.equal(b.state, 'open', JSON.stringify(b));
  await sleepUntil(Date.parse(b.opened_at) + COOLDOWN + 100);
}

after(async () => {
  for (const f of cleanup.reverse()) await f();
  await up?.close();
  await srv?.stop();
});

// One fetch through the plugin on its own connection.
function fetchVia(server, args, { timeout = 30000 } = {}) {
  return rawRequest(server.port, { method: 'POST', path: FETCH, timeout,
    headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) });
}

async function fetchOk(server, args) {
  const r = await fetchVia(server, args);
  assert.equal(r.status, 200, r.text);
  return r.body;
}

async function readyz(server) {
  const r = await server.request('GET', '/readyz');
  assert.equal(r.status, 200, r.text);
  return r.body.checks.upstreams;
}

test('GET and POST reach the upstream exactly: method, path, query, headers, body', async () => {
  up.script('/things', [{ status: 201, json: { id: 7 }, headers: { 'x-upstream': 'fake' } }]);
  const before_ = up.requests.length;

  const got = await fetchOk(srv, { url: `${up.url}/things?q=a%20b&n=1`,
    headers: { 'X-Test': 'one', Authorization: 'Bearer abc', 'X-Empty': '' } });
  assert.equal(got.status, 201);
  assert.equal(got.error, null);
  assert.deepEqual(JSON.parse(got.body), { id: 7 });
  assert.equal(got.content_type, 'application/json');
  assert.equal(got.x_upstream, 'fake', 'api->http_header() reads response headers');
  let seen = up.requests[before_];
  assert.equal(seen.method, 'GET');
  assert.equal(seen.url, '/things?q=a%20b&n=1');
  assert.equal(seen.headers['x-test'], 'one');
  assert.equal(seen.headers.authorization, 'Bearer abc');
  assert.equal(seen.headers['x-empty'], '');
  assert.match(seen.headers['user-agent'], /^switchboard\//);
  assert.equal(seen.body, '');
  assert.equal(seen.headers['content-length'], undefined);

  const payload = JSON.stringify({ amount: 12.5, note: 'héllo "world"\n' });
  const posted = await fetchOk(srv, { url: `${up.url}/things`, method: 'POST', body: payload,
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k-1', 'User-Agent': 'mine/1' } });
  assert.equal(posted.status, 201);
  seen = up.requests[before_ + 1];
  assert.equal(seen.method, 'POST');
  assert.equal(seen.path, '/things');
  assert.equal(seen.body, payload);
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.headers['content-length'], String(Buffer.byteLength(payload)));
  assert.equal(seen.headers['idempotency-key'], 'k-1');
  assert.equal(seen.headers['user-agent'], 'mine/1');
  assert.equal(seen.headers.expect, undefined, 'no 100-continue round trip');

  // No Content-Type given: curl's form default is not invented.
  await fetchOk(srv, { url: `${up.url}/plain`, method: 'POST', body: 'raw' });
  seen = up.requests[before_ + 2];
  assert.equal(seen.body, 'raw');
  assert.equal(seen.headers['content-type'], undefined);

  for (const method of ['PUT', 'PATCH', 'DELETE']) {
    const body = method === 'DELETE' ? undefined : `{"m":"${method}"}`;
    const r = await fetchOk(srv, { url: `${up.url}/m`, method, body });
    assert.equal(r.status, 200);
    const s = up.requests.at(-1);
    assert.equal(s.method, method);
    assert.equal(s.body, body ?? '');
  }
  const head = await fetchOk(srv, { url: `${up.url}/m`, method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(up.requests.at(-1).method, 'HEAD');
});

test('an error status is a response, not an error', async () => {
  up.script('/missing', [{ status: 404, body: 'nope' }]);
  const r = await fetchOk(srv, { url: `${up.url}/missing` });
  assert.equal(r.status, 404);
  assert.equal(r.body, 'nope');
  assert.equal(r.error, null);
});

test('the deferred answer is logged when it is sent', async () => {
  const n = srv.logs.length;
  await fetchOk(srv, { url: `${up.url}/logged` });
  const line = await poll(() => srv.logs.slice(n).find((l) => l.component === 'access' &&
    l.path === FETCH));
  assert.ok(line, 'an access line for the deferred request');
  assert.equal(line.status, 200);
  assert.equal(line.deferred, true);
  assert.equal(line.plugin, 'outbound');
});

test('a deferred POST with an empty body may take longer than the header timeout', async () => {
  // Kore left its 10 s header timer running for a request with
  // Content-Length: 0, so such a request still waiting on an upstream
  // after 10 s was answered 408 (patches/kore/0004).
  up.script('/late', [{ status: 200, json: { late: true }, delay_ms: 10500 }]);
  const r = await rawRequest(srv.port, { method: 'POST',
    path: `/api/v1/outbound/fetch-query?url=${encodeURIComponent(`${up.url}/late`)}&timeout_ms=40000`,
    headers: { 'content-length': '0' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 200);
  assert.deepEqual(JSON.parse(r.body.body), { late: true });
});

test('a timeout is an error, not a hang; an unreachable upstream is an error', async () => {
  // An upstream that never answers: whatever answer comes is the timeout's.
  up.script('/slow', [{ hang: true }]);
  const r = await fetchOk(srv, { url: `${up.url}/slow`, timeout_ms: 300, upstream: 'slow-1' });
  assert.equal(r.status, 0);
  assert.equal(r.error, 'timed out');
  assert.equal(r.body, '');
  assert.ok(r.elapsed_ms >= 290, `not before the timeout (${r.elapsed_ms} ms)`);

  // A port nobody listens on.
  const closed = await startUpstream();
  const port = closed.port;
  await closed.close();
  const c = await fetchOk(srv, { url: `http://127.0.0.1:${port}/`, upstream: 'closed-1' });
  assert.equal(c.status, 0);
  assert.match(c.error, /connect/i);
});

test('Retry-After is parsed: seconds or an HTTP date', async () => {
  up.script('/ra-seconds', [{ status: 429, headers: { 'retry-after': '120' } }]);
  let r = await fetchOk(srv, { url: `${up.url}/ra-seconds` });
  assert.equal(r.status, 429);
  assert.equal(r.retry_after, 120);

  const date = new Date(Date.now() + 90000).toUTCString();
  const at = Date.parse(date) / 1000;	// whole seconds
  up.script('/ra-date', [{ status: 503, headers: { 'retry-after': date } }]);
  const t0 = Date.now() / 1000;
  r = await fetchOk(srv, { url: `${up.url}/ra-date`, upstream: 'ra-date' });
  const t1 = Date.now() / 1000;
  assert.equal(r.status, 503);
  // The seconds from when the answer came (between t0 and t1) to the date.
  assert.ok(r.retry_after >= Math.floor(at - t1) - 1 && r.retry_after <= Math.ceil(at - t0) + 1,
    `retry_after ${r.retry_after}, date ${at - t1}..${at - t0} s ahead`);

  up.script('/ra-junk', [{ status: 503, headers: { 'retry-after': 'soon' } }]);
  r = await fetchOk(srv, { url: `${up.url}/ra-junk`, upstream: 'ra-junk' });
  assert.equal(r.retry_after, 0);
  up.script('/ra-none', [{ status: 200 }]);
  r = await fetchOk(srv, { url: `${up.url}/ra-none` });
  assert.equal(r.retry_after, 0);
});

test('a response bigger than max_response is an error', async () => {
  up.script('/big', [{ status: 200, body: 'x'.repeat(5000) }]);
  let r = await fetchOk(srv, { url: `${up.url}/big`, max_response: 1000 });
  assert.equal(r.status, 0);
  assert.equal(r.error, 'response too large');
  // Without a Content-Length: stopped while streaming.
  up.script('/big-chunked', [{ status: 200, body: 'y'.repeat(5000),
    headers: { 'transfer-encoding': 'chunked' } }]);
  r = await fetchOk(srv, { url: `${up.url}/big-chunked`, max_response: 1000 });
  assert.equal(r.error, 'response too large');
  // At the limit is fine.
  r = await fetchOk(srv, { url: `${up.url}/big`, max_response: 5000 });
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 5000);
});

test('only absolute http and https URLs, sane methods and headers are sent', async () => {
  const n = up.requests.length;
  for (const args of [
    { url: 'ftp://127.0.0.1/file' },
    { url: 'file:///etc/passwd' },
    { url: 'gopher://127.0.0.1:70/' },
    { url: 'not a url' },
    { url: '/relative/path' },
    { url: `${up.url}/x`, method: 'GE T' },
    { url: `${up.url}/x`, headers: { 'X-Evil': 'a\r\nInjected: yes' } },
    { url: `${up.url}/x`, headers: { 'Bad Name': 'v' } },
    { url: `${up.url}/x`, method: 'HEAD', body: 'no' },
  ]) {
    const r = await fetchVia(srv, args);
    assert.equal(r.status, 400, `${JSON.stringify(args)}: ${r.text}`);
    assert.equal(r.body.code, 'VALIDATION_ERROR');
  }
  assert.equal(up.requests.length, n, 'nothing refused reached the upstream');
});

test('a hanging upstream does not move /healthz on any worker', async (t) => {
  const pids = await waitWorkerPids(srv, 2);
  assert.equal(pids.length, 2);
  up.script('/hang', [{ hang: true }]);
  // The calls' own timeout is far beyond the test: they end only when the
  // upstream lets go.
  let settled = 0;
  const fetches = Array.from({ length: 50 }, () =>
    fetchVia(srv, { url: `${up.url}/hang`, timeout_ms: 120000, upstream: 'hang' }, { timeout: 180000 })
      .finally(() => { settled++; }));
  assert.ok(await poll(() => up.count('/hang') === 50, { interval: 20 }),
    `all 50 calls reach the upstream (${up.count('/hang')})`);

  // Every worker answers /healthz while all 50 calls still hang: a worker
  // held by them could not answer at all.  A connection to each worker
  // makes "every worker" certain.  (How fast they answer is the
  // machine's business: timed for information only.)
  const w = await workerConnections(srv, 2);
  let slowest = 0;
  try {
    const ids = new Map();
    for (const pid of w.pids) {
      for (let i = 0; i < 5; i++) {
        const id = `hz-${pid}-${i}-${Date.now()}`;
        ids.set(id, pid);
        const t0 = Date.now();
        const a = await w.request(pid, { path: '/healthz', headers: { 'x-request-id': id } });
        slowest = Math.max(slowest, Date.now() - t0);
        assert.equal(a.status, 200);
      }
    }
    for (const [id, pid] of await accessPids(srv, [...ids.keys()])) assert.equal(pid, ids.get(id));
    assert.deepEqual(w.pids, pids, 'every worker answered /healthz');
  } finally { w.close(); }
  assert.equal(settled, 0, 'the calls to the hanging upstream are still pending');
  t.diagnostic(`slowest /healthz while 50 calls hung: ${slowest} ms`);

  // The upstream drops them: every deferred request gets its answer.  (On
  // a reused keep-alive connection libcurl retries once on a fresh one:
  // those retries get a 503.)
  up.script('/hang', [{ status: 503, body: 'gone' }]);
  for (const res of up.hanging) res.destroy();
  const answers = await Promise.all(fetches);
  for (const a of answers) {
    assert.equal(a.status, 200, a.text);
    assert.ok((a.body.status === 0 && a.body.error) || a.body.status === 503, a.text);
  }
});

test('a client that leaves before the deferred answer: nothing breaks', async () => {
  up.script('/gone', [{ hang: true }]);
  const w = await workerConnections(srv, 2);
  const mark = srv.logs.length;
  const socks = [];
  for (let i = 0; i < 5; i++) {
    const s = connect(srv.port, '127.0.0.1');
    s.on('error', () => {});
    const body = JSON.stringify({ url: `${up.url}/gone`, upstream: 'gone' });
    s.write(`POST ${FETCH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socks.push(s);
  }
  assert.ok(await poll(() => up.count('/gone') === 5, { interval: 20 }));
  for (const s of socks) s.destroy();
  // The workers notice and free the requests: each has answered a request
  // sent after the clients left, so its event loop has been through the
  // closes (the kernel reported them first) before the upstream answers.
  try {
    for (const pid of w.pids) assert.equal((await w.request(pid, { path: '/healthz' })).status, 200);
  } finally { w.close(); }
  // Now the upstream answers: the late responses have nobody to go to.
  for (const res of up.hanging) { res.writeHead(200); res.end('late'); }
  const lines = await poll(() => {
    const l = srv.logs.slice(mark).filter((x) => x.component === 'access' && x.path === FETCH);
    return l.length === 5 ? l : null;
  });
  assert.ok(lines, 'each abandoned request is logged once, when its answer came');
  for (const l of lines) {
    assert.equal(l.client_gone, true);
    assert.equal(l.deferred, true);
  }
  const r = await srv.request('GET', '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(srv.sanitizerReports(), []);
  assert.equal(srv.exited, null);
  assert.doesNotMatch(srv.output, /died|signal/);
});

test('circuit breaker: opens after 3 failures, fails fast, half-opens, closes, re-opens', async () => {
  const b = await startUpstream();	// its own origin: its own breaker
  cleanup.push(() => b.close());
  const name = b.url;	// http://127.0.0.1:port

  b.script('/pay', [{ status: 500 }]);
  for (let i = 0; i < 3; i++) {
    const r = await fetchOk(srv, { url: `${b.url}/pay` });
    assert.equal(r.status, 500);
  }
  assert.equal(b.count('/pay'), 3);

  // Open: fails fast without reaching the upstream.
  let r = await fetchOk(srv, { url: `${b.url}/pay` });
  assert.equal(r.status, 0);
  assert.equal(r.error, 'circuit open');
  assert.equal(b.count('/pay'), 3);

  // /readyz: the upstream is degraded, the host is still ready (200).
  let u = await readyz(srv);
  assert.equal(u.status, 'degraded');
  assert.equal(u.breakers[name].state, 'open');
  assert.equal(u.breakers[name].status, 'degraded');
  assert.equal(u.breakers[name].failures, 3);
  assert.match(u.breakers[name].opened_at, /^\d{4}-\d\d-\d\dT.*Z$/);

  // After the cool-down one trial goes through; the others still fail
  // fast: the trial's answer is held until the other two have been
  // answered, so they certainly came while it was in flight.
  await afterCooldown(name);
  b.script('/pay', [{ hang: true }]);
  let done = 0;
  const trio = [0, 1, 2].map(() => fetchOk(srv, { url: `${b.url}/pay` }).finally(() => { done++; }));
  assert.ok(await poll(() => done === 2 && b.count('/pay') === 4, { interval: 20 }),
    `two answered (${done}) while the trial hangs at the upstream (${b.count('/pay') - 3} calls)`);
  b.script('/pay', [{ status: 200, json: { paid: true } }]);
  for (const res of b.hanging) { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"paid":true}'); }
  const answers = await Promise.all(trio);
  assert.equal(b.count('/pay'), 4, 'exactly one trial call reached the upstream');
  assert.equal(answers.filter((x) => x.status === 200).length, 1);
  assert.equal(answers.filter((x) => x.error === 'circuit open').length, 2);

  // The trial succeeded: closed.
  u = await readyz(srv);
  assert.equal(u.breakers[name].state, 'closed');
  assert.equal(u.breakers[name].status, 'ok');
  assert.equal(u.breakers[name].failures, 0);
  r = await fetchOk(srv, { url: `${b.url}/pay` });
  assert.equal(r.status, 200);
  assert.equal(b.count('/pay'), 5);

  // Open it again; a failing trial re-opens it at once.
  b.script('/pay', [{ status: 503 }]);
  for (let i = 0; i < 3; i++) await fetchOk(srv, { url: `${b.url}/pay` });
  assert.equal((await fetchOk(srv, { url: `${b.url}/pay` })).error, 'circuit open');
  assert.equal(b.count('/pay'), 8);
  await afterCooldown(name);
  r = await fetchOk(srv, { url: `${b.url}/pay` });
  assert.equal(r.status, 503, 'the trial reached the upstream');
  assert.equal(b.count('/pay'), 9);
  r = await fetchOk(srv, { url: `${b.url}/pay` });
  assert.equal(r.error, 'circuit open', 'the failed trial re-opened the breaker');
  assert.equal(b.count('/pay'), 9);
  assert.equal((await readyz(srv)).breakers[name].state, 'open');
});

test('timeouts and transport errors count as failures; a named upstream has its own breaker', async () => {
  // Never answers: each call ends by its own timeout.
  up.script('/sluggish', [{ hang: true }]);
  for (let i = 0; i < 3; i++) {
    const r = await fetchOk(srv, { url: `${up.url}/sluggish`, timeout_ms: 100, upstream: 'sluggish' });
    assert.equal(r.error, 'timed out');
  }
  const n = up.count('/sluggish');
  const r = await fetchOk(srv, { url: `${up.url}/sluggish`, timeout_ms: 100, upstream: 'sluggish' });
  assert.equal(r.error, 'circuit open');
  assert.equal(up.count('/sluggish'), n);
  // The same origin under its default name is unaffected.
  const ok = await fetchOk(srv, { url: `${up.url}/fine` });
  assert.equal(ok.status, 200);
  const u = await readyz(srv);
  assert.equal(u.breakers.sluggish.state, 'open');
  assert.equal(u.breakers[up.url].state, 'closed');
});

// ---------------------------------------------------------------------------
// A second server: a CA bundle that trusts a test certificate, and a long
// cool-down so the open state can be observed through every worker.

test('TLS is verified: a self-signed upstream fails, the same one in ca_bundle works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  const tls = await startUpstream({ tls: { key: readFileSync(key), cert: readFileSync(cert) } });
  cleanup.push(() => tls.close());
  assert.match(tls.url, /^https:/);

  // The default bundle does not trust it.
  const r = await fetchOk(srv, { url: `${tls.url}/secure`, upstream: 'tls-default' });
  assert.equal(r.status, 0);
  assert.match(r.error, /certificate/i);
  assert.equal(tls.count('/secure'), 0);

  const srv2 = await startServer({ workers: 2, plugins: PLUGINS,
    host: { ca_bundle: cert, breaker_failures: '3', breaker_cooldown_ms: '60000' } });
  cleanup.push(() => srv2.stop());
  if (IS_ROOT) {
    // The bundle is inside the chroot, readable by the workers.
    const inside = join(srv2.dir, 'chroot/etc/ssl/certs/ca-certificates.crt');
    assert.equal(readFileSync(inside, 'utf8'), readFileSync(cert, 'utf8'));
    for (const f of ['hosts', 'resolv.conf', 'nsswitch.conf']) {
      if (existsSync(`/etc/${f}`)) assert.ok(existsSync(join(srv2.dir, 'chroot/etc', f)), f);
    }
  }
  tls.script('/secure', [{ status: 200, json: { secure: true } }]);
  const ok = await fetchOk(srv2, { url: `${tls.url}/secure` });
  assert.equal(ok.error, null, ok.error);
  assert.equal(ok.status, 200);
  assert.deepEqual(JSON.parse(ok.body), { secure: true });
  const byName = await fetchOk(srv2, { url: `https://localhost:${tls.port}/secure` });
  assert.equal(byName.status, 200, byName.error);

  // The breaker is node-wide: opened by failures, seen open by every worker.
  const b = await startUpstream();
  cleanup.push(() => b.close());
  b.script('/down', [{ status: 502 }]);
  for (let i = 0; i < 3; i++) await fetchOk(srv2, { url: `${b.url}/down` });
  const pids = await waitWorkerPids(srv2, 2);
  const call = { method: 'POST', path: FETCH, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: `${b.url}/down` }) };
  // A connection to each worker: every worker sees it open.
  const w = await workerConnections(srv2, 2);
  try {
    for (const pid of w.pids) {
      for (let i = 0; i < 5; i++) {
        const a = await w.request(pid, call);
        assert.equal(a.status, 200, a.text);
        assert.equal(a.body.error, 'circuit open', `worker ${pid}: ${a.text}`);
      }
    }
    assert.deepEqual(w.pids, pids, 'calls went through every worker');
  } finally { w.close(); }
  assert.equal(b.count('/down'), 3, 'no worker let a call through');
});

test('hostnames resolve inside the sandbox (etc/hosts in the chroot)', async (t) => {
  const name = hostname();
  let addr;
  try { addr = (await lookup(name, { family: 4 })).address; } catch { addr = null; }
  const hosts = existsSync('/etc/hosts') ? readFileSync('/etc/hosts', 'utf8') : '';
  if (addr !== '127.0.0.1' || !new RegExp(`^127\\.0\\.0\\.1\\s.*\\b${name}\\b`, 'm').test(hosts)) {
    t.skip(`${name} is not a loopback name in /etc/hosts`);
    return;
  }
  const r = await fetchOk(srv, { url: `http://${name}:${up.port}/named` });
  assert.equal(r.error, null, r.error);
  assert.equal(r.status, 200);
  assert.equal(up.requests.at(-1).path, '/named');
});
