// The plugin loader: misbehaving plugins are refused one by one with a
// clear log line and a state in /api/v1/plugins, the rest keeps serving;
// /readyz tells which plugins failed; a required plugin that fails stops
// the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertEnvelope, TEST_PLUGINS, testPlugin, ADMIN_PASSWORD } from './lib/harness.mjs';
import { createUnprivilegedUser, poll } from './lib/helpers.mjs';

// Each bad plugin, the reason its refusal must give, and its ABI as the
// descriptor states it.
const BAD = {
  bad_major: { reason: /ABI major/, abi: '2.0' },
  newer_minor: { reason: /upgrade the host/, abi: '1.4' },
  no_setup: { reason: /missing mandatory slot setup/, abi: '1.3' },
  fail_init: { reason: /init\(\) failed/, abi: '1.3' },
  dup_id: { reason: /duplicate plugin id/, abi: '1.3' },
  clash: { reason: /route clash/, abi: '1.3' },
};

let srv, token;
before(async () => {
  const plugins = { ...TEST_PLUGINS };
  // dup_id and clash come after example: they collide with it.
  for (const name of Object.keys(BAD)) plugins[name] = testPlugin(name);
  srv = await startServer({ plugins });
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

async function pluginList(t = token) {
  const r = await srv.request('GET', '/api/v1/plugins', { token: t });
  assert.equal(r.status, 200, r.text);
  return r;
}

test('the server starts and keeps serving next to refused plugins', async () => {
  assert.equal(srv.exited, null);
  let r = await srv.request('GET', '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok' });
  r = await srv.request('GET', '/api/v1/example/hello');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { message: 'Hello' });
  r = await srv.request('GET', '/api/v1/probe/hello/still-here');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.param, 'still-here');
});

test('each refused plugin has one structured error log line naming it and the reason', async () => {
  // init() runs in each worker: wait until both have logged.
  assert.ok(await poll(() => srv.logs.filter((l) => l.component === 'plugin' && /plugin fail_init\b/.test(l.msg)).length >= 2,
    { interval: 50 }), 'both workers logged fail_init');
  const errors = srv.logs.filter((l) => l.component === 'plugin' && l.level === 'error');
  for (const [name, { reason }] of Object.entries(BAD)) {
    const lines = errors.filter((l) => new RegExp(`\\bplugin ${name}\\b`).test(l.msg));
    assert.ok(lines.length > 0, `no error line for ${name} in:\n${errors.map((l) => l.msg).join('\n')}`);
    assert.ok(lines.every((l) => reason.test(l.msg)), `${name}: ${lines.map((l) => l.msg).join(' | ')}`);
    assert.equal(typeof lines[0].ts, 'string');
    assert.equal(typeof lines[0].pid, 'number');
  }
  // The clash names both routes.
  const clash = errors.find((l) => /plugin clash\b/.test(l.msg));
  assert.match(clash.msg, /\/api\/v1\/example\/notes\/\{note\}/);
  assert.match(clash.msg, /\/api\/v1\/example\/notes\/\{id\}/);
  // A refused plugin is refused in the parent, once; init() fails per worker.
  for (const name of ['bad_major', 'newer_minor', 'no_setup', 'dup_id', 'clash']) {
    const lines = errors.filter((l) => new RegExp(`\\bplugin ${name}\\b`).test(l.msg));
    assert.equal(lines.length, 1, `${name}: ${lines.map((l) => l.msg).join(' | ')}`);
    assert.equal(lines[0].worker, undefined, 'refused in the parent');
  }
  const init = errors.filter((l) => /plugin fail_init\b/.test(l.msg));
  assert.equal(init.length, 2, 'one init() failure per worker');
  assert.ok(init.every((l) => typeof l.worker === 'number'));
  // Good plugins are not reported as failing.
  assert.ok(!errors.some((l) => /plugin (example|probe)\b/.test(l.msg)));
});

test('GET /api/v1/plugins lists every plugin with its state and declarations', async () => {
  const r = await pluginList();
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.body).sort(), ['data', 'next_cursor']);
  assert.equal(r.body.next_cursor, null);
  assert.ok(Array.isArray(r.body.data));
  const byName = Object.fromEntries(r.body.data.map((p) => [p.name, p]));
  for (const name of ['example', 'probe', ...Object.keys(BAD)])
    assert.ok(byName[name], `${name} is listed`);

  for (const p of r.body.data) {
    for (const k of ['id', 'version', 'abi', 'state', 'error', 'routes', 'permissions', 'events', 'console_panels'])
      assert.ok(k in p, `${p.name} has ${k}`);
    assert.ok(['ready', 'failed', 'disabled'].includes(p.state), `${p.name}: ${p.state}`);
    assert.ok(Array.isArray(p.routes) && Array.isArray(p.permissions) && Array.isArray(p.events) &&
      Array.isArray(p.console_panels));
    // An id is either known (non-empty) or null, never a placeholder.
    assert.ok(p.id === null || (typeof p.id === 'string' && p.id.length > 0), `${p.name} id ${JSON.stringify(p.id)}`);
    assert.ok(p.version === null || (typeof p.version === 'string' && p.version.length > 0),
      `${p.name} version ${JSON.stringify(p.version)}`);
    if (p.state === 'ready') assert.equal(p.error, null, p.name);
  }

  const ex = byName.example;
  assert.equal(ex.state, 'ready');
  assert.equal(ex.id, 'io.switchboard.example');
  assert.equal(ex.version, '1.0.0');
  assert.equal(ex.abi, '1.3');
  assert.deepEqual(ex.routes.map((x) => `${x.method} ${x.path}`).sort(), [
    'GET /api/v1/example/hello', 'GET /api/v1/example/notes/{id}', 'POST /api/v1/example/notes']);
  assert.deepEqual([...ex.permissions].sort(), ['example.read', 'example.write']);
  assert.deepEqual(ex.events.map((e) => e.name), ['example.note.created']);
  const notes = ex.routes.find((x) => x.path === '/api/v1/example/notes/{id}');
  assert.equal(notes.permission, 'example.read');

  const probe = byName.probe;
  assert.equal(probe.state, 'ready');
  assert.equal(probe.id, 'io.switchboard.test.probe');
  assert.deepEqual(probe.permissions, ['probe.manage']);
  assert.deepEqual(probe.events.map((e) => e.name), ['probe.ping']);
  assert.equal(probe.routes.length, 7);

  for (const [name, { reason, abi }] of Object.entries(BAD)) {
    const p = byName[name];
    assert.equal(p.state, 'failed', name);
    assert.equal(typeof p.error, 'string', `${name} error`);
    assert.match(p.error, reason, name);
    assert.equal(p.abi, abi, `${name} abi`);
  }
  // A plugin refused as a whole keeps no declaration; one whose init()
  // failed keeps its routes (they answer 503).
  for (const name of ['bad_major', 'newer_minor', 'no_setup', 'dup_id', 'clash']) {
    assert.deepEqual(byName[name].routes, [], name);
    assert.deepEqual(byName[name].permissions, [], name);
  }
  assert.deepEqual(byName.fail_init.routes.map((x) => `${x.method} ${x.path}`), ['GET /api/v1/fail-init/hello']);
  assert.equal(byName.clash.id, 'io.switchboard.test.clash');
  assert.equal(byName.dup_id.id, 'io.switchboard.example');
});

test("a plugin whose init() failed answers 503 on its routes", async () => {
  for (let i = 0; i < 4; i++) {
    const r = await srv.request('GET', '/api/v1/fail-init/hello', { headers: { connection: 'close' } });
    const e = assertEnvelope(assert, r, 503, 'UNAVAILABLE');
    assert.ok(!('reached' in e));
  }
});

test("a clashing plugin is refused as a whole; the clashed route stays the first owner's", async () => {
  // The clash plugin's own, non-clashing route is not served.
  assertEnvelope(assert, await srv.request('GET', '/api/v1/clash/own'), 404, 'NOT_FOUND');
  // example's route needs example.read: anonymous is 401 (clash's was public).
  let r = await srv.request('GET', '/api/v1/example/notes/1');
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  r = await srv.request('GET', '/api/v1/example/notes/999999', { token });
  const e = assertEnvelope(assert, r, 404, 'NOT_FOUND');
  assert.ok(!/clash/.test(r.text), e.message);
  const created = await srv.request('POST', '/api/v1/example/notes', { token, json: { text: 'mine' } });
  assert.equal(created.status, 201, created.text);
  r = await srv.request('GET', `/api/v1/example/notes/${created.body.id}`, { token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.text, 'mine');
  assert.equal(r.body.from, undefined);
});

test('/readyz is 503 and names every failed plugin', async () => {
  const r = await srv.request('GET', '/readyz');
  const e = assertEnvelope(assert, r, 503, 'UNAVAILABLE');
  const fields = e.errors.map((x) => x.field).sort();
  assert.deepEqual(fields, Object.keys(BAD).map((n) => `plugin:${n}`).sort());
  for (const x of e.errors) {
    assert.equal(x.code, 'UNAVAILABLE');
    assert.match(x.message, BAD[x.field.slice('plugin:'.length)].reason, x.field);
  }
});

test('/api/v1/plugins needs a token, and system.read', async () => {
  let r = await srv.request('GET', '/api/v1/plugins');
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  assert.equal(r.headers.get('www-authenticate'), 'Bearer');

  await createUnprivilegedUser(srv, 'plugins_noperm');
  const weak = await srv.login('plugins_noperm', ADMIN_PASSWORD);
  r = await srv.request('GET', '/api/v1/plugins', { token: weak });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
  assert.ok(!r.text.includes('io.switchboard'), 'nothing of the registry leaks');
});

test('a disabled plugin is listed as disabled and does not affect /readyz', async () => {
  // fail_init would make /readyz 503 if it were loaded.  example is
  // required and loads fine: that does not stop anything.
  const s = await startServer({ plugins: { example: { required: 'yes' }, probe: TEST_PLUGINS.probe,
    fail_init: testPlugin('fail_init', { enabled: 'no' }) } });
  try {
    const r = await s.request('GET', '/readyz');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.checks['plugin:fail_init'], undefined);
    const t = await s.login();
    const list = await s.request('GET', '/api/v1/plugins', { token: t });
    assert.equal(list.status, 200, list.text);
    const p = list.body.data.find((x) => x.name === 'fail_init');
    assert.ok(p, 'disabled plugin listed');
    assert.equal(p.state, 'disabled');
    assert.equal(p.error, null);
    assert.deepEqual(p.routes, []);
    assertEnvelope(assert, await s.request('GET', '/api/v1/fail-init/hello'), 404, 'NOT_FOUND');
    const ex = list.body.data.find((x) => x.name === 'example');
    assert.equal(ex.required, true);
    assert.equal(ex.state, 'ready');
    assert.ok(!s.logs.some((l) => l.component === 'plugin:fail_init'), 'never loaded, never initialised');
    assert.ok(s.logs.some((l) => l.component === 'plugin' && /fail_init is disabled/.test(l.msg)));
  } finally { await s.stop(); }
});

test('a required plugin that fails stops the host from starting', async () => {
  const s = await startServer({
    plugins: { example: {}, no_setup: testPlugin('no_setup', { required: 'yes' }) },
    expectFailure: true,
  });
  try {
    assert.ok(s.exited, 'the server exited');
    assert.notEqual(s.exited.code, 0, `exit ${JSON.stringify(s.exited)}`);
    const line = s.logs.find((l) => l.component === 'plugin' && l.level === 'error' &&
      /plugin no_setup\b/.test(l.msg));
    assert.ok(line, s.output);
    assert.match(line.msg, /missing mandatory slot setup/);
    assert.match(s.output, /required plugin/);
    assert.ok(!s.logs.some((l) => l.worker !== undefined), 'no worker was started');
  } finally { await s.stop(); }
});
