// Liveness, readiness and the request basics every response shares.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertEnvelope } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

test('GET /healthz is {"status":"ok"} with the standard headers', async () => {
  const r = await srv.request('GET', '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok' });
  assert.match(r.headers.get('content-type'), /^application\/json; charset=utf-8$/);
  assert.match(r.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('strict-transport-security'), null, 'no HSTS over plain HTTP');
});

test('a sane client X-Request-Id is echoed, an insane one replaced', async () => {
  let r = await srv.request('GET', '/healthz', { headers: { 'x-request-id': 'abc-123.X_y' } });
  assert.equal(r.headers.get('x-request-id'), 'abc-123.X_y');
  r = await srv.request('GET', '/nope', { headers: { 'x-request-id': 'bad id with spaces' } });
  assert.match(r.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  assert.equal(r.body.request_id, r.headers.get('x-request-id'));
});

test('GET /readyz is 200 with per-check detail when all is well', async () => {
  const r = await srv.request('GET', '/readyz');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'ok');
  assert.equal(r.body.checks.database.status, 'ok');
  assert.equal(r.body.checks['plugin:example'].status, 'ok');
  assert.equal(r.body.checks['plugin:probe'].status, 'ok');
});

test('an unknown route is a 404 envelope', async () => {
  assertEnvelope(assert, await srv.request('GET', '/api/v1/does-not-exist'), 404, 'NOT_FOUND');
});

test('one JSON access-log line per request', async () => {
  const r = await srv.request('GET', '/healthz', { headers: { 'x-request-id': 'log-line-check-1' } });
  assert.equal(r.status, 200);
  const line = await poll(() => srv.logs.find((l) => l.component === 'access' && l.request_id === 'log-line-check-1'),
    { interval: 50 });
  assert.ok(line, 'access log line present');
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/healthz');
  assert.equal(line.status, 200);
  assert.equal(typeof line.duration_ms, 'number');
  assert.equal(srv.logs.filter((l) => l.request_id === 'log-line-check-1').length, 1);
});
