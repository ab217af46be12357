// Plugin configuration: declared keys with defaults, secrets never shown,
// undeclared keys in a plugin's section warned about.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TEST_PLUGINS } from './lib/harness.mjs';

const SECRET = 'probe-secret-value-4242';
let srv;
before(async () => {
  srv = await startServer({ plugins: {
    example: {},
    probe: { ...TEST_PLUGINS.probe, label: 'custom label', token: SECRET, tokne: 'typo' },
  } });
});
after(async () => { await srv?.stop(); });

test('/api/v1/plugins shows effective config values, secrets redacted', async () => {
  const r = await srv.request('GET', '/api/v1/plugins', { token: await srv.login() });
  assert.equal(r.status, 200, r.text);
  const byName = Object.fromEntries(r.body.data.map((p) => [p.name, p]));
  assert.deepEqual(byName.probe.config, { label: 'custom label', token: '********' });
  assert.deepEqual(byName.example.config, { greeting: 'Hello' }, 'the declared default');
  assert.ok(!r.text.includes(SECRET));
});

test('a configured value reaches the plugin', async () => {
  const r = await srv.request('GET', '/api/v1/example/hello');
  assert.deepEqual(r.body, { message: 'Hello' });
});

test('an undeclared key is warned about, and no secret is ever logged', async () => {
  assert.ok(srv.logs.some((l) => l.level === 'warn' &&
    /\[plugin probe\] tokne is not a key the plugin declares/.test(l.msg)));
  assert.ok(!srv.output.includes(SECRET));
});

test('SB_<PLUGIN>_<KEY> in the environment overrides the file, and stays secret', async () => {
  const ENV_SECRET = 'probe-secret-from-env-777';
  const s = await startServer({
    plugins: { example: { greeting: 'from the file' }, probe: { ...TEST_PLUGINS.probe, token: 'file-secret' } },
    env: { SB_EXAMPLE_GREETING: 'from the environment', SB_PROBE_TOKEN: ENV_SECRET } });
  try {
    assert.deepEqual((await s.request('GET', '/api/v1/example/hello')).body, { message: 'from the environment' });
    const r = await s.request('GET', '/api/v1/plugins', { token: await s.login() });
    const byName = Object.fromEntries(r.body.data.map((p) => [p.name, p]));
    assert.equal(byName.example.config.greeting, 'from the environment');
    assert.equal(byName.probe.config.token, '********');
    assert.ok(!r.text.includes(ENV_SECRET) && !s.output.includes(ENV_SECRET));
  } finally { await s.stop(); }
});
