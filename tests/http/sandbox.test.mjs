// The worker sandbox: plugins' declared syscall allowances reach the
// seccomp filter, and an undeclared syscall kills the worker, not the host.
// A filter is per process, so the two cases need two servers: with the
// probe plugin loaded, its getppid(2) allowance covers every plugin.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, testPlugin, TEST_PLUGINS } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

test('a syscall the plugin declared with seccomp_allow() works in the worker', async () => {
  const srv = await startServer({ workers: 1, plugins: TEST_PLUGINS });
  servers.push(srv);
  const r = await srv.request('GET', '/api/v1/probe/ppid');
  assert.equal(r.status, 200, r.text);
  // The worker's parent is the Kore parent this harness started.
  assert.equal(r.body.ppid, srv.child.pid);
  assert.notEqual(r.body.pid, srv.child.pid);
});

test('an undeclared syscall kills the worker, and a new worker serves', async () => {
  const srv = await startServer({ workers: 1,
    plugins: { example: {}, no_allow: testPlugin('no_allow') } });
  servers.push(srv);
  assert.equal((await srv.request('GET', '/api/v1/example/hello')).status, 200);
  await assert.rejects(srv.request('GET', '/api/v1/no-allow/ppid',
    { headers: { connection: 'close' } }));
  // Waited for (a sanitizer build restarts a worker slowly), not counted.
  let r;
  await poll(async () => {
    try {
      r = await srv.request('GET', '/api/v1/example/hello', { headers: { connection: 'close' } });
    } catch { r = null; /* the worker is restarting */ }
    return r?.status === 200;
  }, { interval: 100 });
  assert.equal(r?.status, 200, 'a fresh worker serves');
  assert.match(srv.output, /died from sandbox violation/);
  assert.equal(srv.exited, null, 'the host is still running');
});
