// /metrics (Prometheus text, open on loopback, metrics.read otherwise) and
// /api/v1/stats (system.read): node-wide counters shared by the workers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TEST_PLUGINS, assertEnvelope } from './lib/harness.mjs';

let srv, token;
before(async () => {
  // trusted_proxies lets a test pose as a remote client via X-Forwarded-For.
  srv = await startServer({ workers: 2, plugins: TEST_PLUGINS, host: { trusted_proxies: '127.0.0.1' } });
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

function counter(text, name, labels) {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

test('/metrics from loopback is Prometheus text with node-wide counters', async () => {
  const first = await srv.request('GET', '/metrics');
  assert.equal(first.status, 200, first.text);
  assert.match(first.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  assert.match(first.text, /# TYPE switchboard_http_requests_total counter/);
  assert.match(first.text, /switchboard_http_request_duration_seconds_bucket\{le="\+Inf"\} \d+/);
  assert.match(first.text, /switchboard_plugin_up\{plugin="example"\} 1/);
  assert.match(first.text, /switchboard_jobs_/);
  const before2xx = counter(first.text, 'switchboard_http_requests_total', 'code="2xx"');
  const before4xx = counter(first.text, 'switchboard_http_requests_total', 'code="4xx"');
  // Spread over connections (and so, likely, workers): the counts are shared.
  for (let i = 0; i < 10; i++) await srv.request('GET', '/healthz', { headers: { connection: 'close' } });
  for (let i = 0; i < 3; i++) await srv.request('GET', '/nope', { headers: { connection: 'close' } });
  const second = await srv.request('GET', '/metrics');
  // The previous /metrics scrape itself is a 2xx too.
  assert.equal(counter(second.text, 'switchboard_http_requests_total', 'code="2xx"'), before2xx + 11);
  assert.equal(counter(second.text, 'switchboard_http_requests_total', 'code="4xx"'), before4xx + 3);
  assert.ok(counter(second.text, 'switchboard_plugin_requests_total', 'plugin="host"') >= 11);
});

test('/metrics from a remote client needs metrics.read', async () => {
  const remote = { 'x-forwarded-for': '203.0.113.9' };
  assertEnvelope(assert, await srv.request('GET', '/metrics', { headers: remote }), 401, 'UNAUTHENTICATED');
  const ok = await srv.request('GET', '/metrics', { headers: remote, token });
  assert.equal(ok.status, 200, ok.text);
});

test('/api/v1/stats needs system.read and reports the node', async () => {
  assertEnvelope(assert, await srv.request('GET', '/api/v1/stats'), 401, 'UNAUTHENTICATED');
  const r = await srv.request('GET', '/api/v1/stats', { token });
  assert.equal(r.status, 200, r.text);
  assert.equal(typeof r.body.version, 'string');
  assert.equal(r.body.memory.workers, 2);
  assert.ok(r.body.memory.worker_max_rss_bytes > 0);
  assert.ok(r.body.db_size_bytes > 0);
  assert.ok(r.body.plugins.some((p) => p.name === 'example' && p.state === 'ready'));
  assert.ok(r.body.http['2xx'] > 0);
  assert.equal(typeof r.body.jobs, 'object');
});
