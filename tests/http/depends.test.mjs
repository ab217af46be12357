// Plugin dependencies: set up after what they depend on whatever the
// configuration order, refused when a dependency is missing, and a cycle
// refuses every plugin in it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, testPlugin } from './lib/harness.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

async function pluginsOf(srv) {
  const r = await srv.request('GET', '/api/v1/plugins', { token: await srv.login() });
  assert.equal(r.status, 200, r.text);
  return Object.fromEntries(r.body.data.map((p) => [p.name, p]));
}

test('a plugin configured before its dependency is set up after it', async () => {
  // Object key order is the configuration order: dependent comes first.
  const srv = await startServer({ plugins: { dependent: testPlugin('dependent'), example: {} } });
  servers.push(srv);
  const setups = srv.logs.filter((l) => l.component === 'plugin' && /^set up /.test(l.msg))
    .map((l) => l.msg);
  assert.deepEqual(setups, ['set up example', 'set up dependent']);
  assert.equal((await srv.request('GET', '/api/v1/dependent/hello')).status, 200);
  const byName = await pluginsOf(srv);
  assert.equal(byName.dependent.state, 'ready');
  assert.deepEqual(byName.dependent.depends, ['io.switchboard.example']);
});

test('a missing or disabled dependency refuses the dependent plugin', async () => {
  const srv = await startServer({ plugins: { dependent: testPlugin('dependent'),
    example: { enabled: 'no' } } });
  servers.push(srv);
  const byName = await pluginsOf(srv);
  assert.equal(byName.example.state, 'disabled');
  assert.equal(byName.dependent.state, 'failed');
  assert.match(byName.dependent.error, /dependency io\.switchboard\.example is not available/);
  assert.ok(srv.logs.some((l) => l.level === 'error' && l.component === 'plugin' &&
    /plugin dependent refused: dependency io\.switchboard\.example/.test(l.msg)));
  const r = await srv.request('GET', '/api/v1/dependent/hello');
  assert.equal(r.status, 404, 'a refused plugin serves nothing');
});

test('a dependency cycle refuses every plugin in it', async () => {
  const srv = await startServer({ plugins: { example: {}, cycle_a: testPlugin('cycle_a'),
    cycle_b: testPlugin('cycle_b') } });
  servers.push(srv);
  const byName = await pluginsOf(srv);
  assert.equal(byName.example.state, 'ready');
  for (const name of ['cycle_a', 'cycle_b']) {
    assert.equal(byName[name].state, 'failed', name);
    assert.match(byName[name].error, /circular dependency/, name);
  }
});
