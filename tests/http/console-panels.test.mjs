// Console panels (ABI 1.2): what a plugin declares in setup() is listed by
// GET /api/v1/console/panels for callers who may see it and by
// /api/v1/plugins, and its files are served from memory under
// /plugins/<name>/ like the console's assets.  A bad declaration fails the
// plugin as a whole (nothing of it is listed or served) and the host keeps
// serving.  The test plugin is tests/plugins/panelist.c.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, assertEnvelope, TEST_PLUGINS, testPlugin, ROOT, ADMIN_PASSWORD } from './lib/harness.mjs';
import { createUnprivilegedUser, rawRequest } from './lib/helpers.mjs';

const PANELS = '/api/v1/console/panels';
const NOTES = { id: 'notes', label: 'Example notes', script: '/plugins/example/panel.js', permission: 'example.read' };
const FIRST = { id: 'first', label: 'first', script: '/plugins/panelist/first.js', permission: null };
const SECOND = { id: 'second', label: 'Second panel é', script: '/plugins/panelist/first.js',
  permission: 'panelist.see|system.read' };
const THIRD = { id: 'third', label: 'third', script: '/plugins/panelist/sub/third.mjs', permission: 'panelist.see' };
const USER_PASSWORD = 'panels-password-0123';

let srv, admin;
before(async () => {
  // Configuration order is load order: example, probe, panelist.
  srv = await startServer({ plugins: { ...TEST_PLUGINS, panelist: testPlugin('panelist') } });
  admin = await srv.login();
});
after(async () => { await srv?.stop(); });

const withPlugin = (plugin, panels) => panels.map((p) => ({ plugin, ...p }));

async function userWith(username, permissions) {
  const role = await srv.request('POST', '/api/v1/roles', { token: admin,
    json: { name: username.toUpperCase(), permissions } });
  assert.equal(role.status, 201, role.text);
  const u = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password: USER_PASSWORD, name: username, role: role.body.name } });
  assert.equal(u.status, 201, u.text);
  return srv.login(username, USER_PASSWORD);
}

test('a super-admin sees every panel, in plugin load order then declaration order', async () => {
  const r = await srv.request('GET', PANELS, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { data: [...withPlugin('example', [NOTES]), ...withPlugin('panelist', [FIRST, SECOND, THIRD])],
    next_cursor: null });
});

test('a panel behind a permission is listed only for callers holding it', async () => {
  const reader = await userWith('panel_reader', ['example.read']);
  let r = await srv.request('GET', PANELS, { token: reader });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data, [...withPlugin('example', [NOTES]), ...withPlugin('panelist', [FIRST])]);

  // One alternative of "panelist.see|system.read" is enough.
  const sys = await userWith('panel_system', ['system.read']);
  r = await srv.request('GET', PANELS, { token: sys });
  assert.deepEqual(r.body.data, withPlugin('panelist', [FIRST, SECOND]));

  await createUnprivilegedUser(srv, 'panel_nobody');
  const nobody = await srv.login('panel_nobody', ADMIN_PASSWORD);
  r = await srv.request('GET', PANELS, { token: nobody });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { data: withPlugin('panelist', [FIRST]), next_cursor: null });
});

test('the discovery route is for signed-in staff only', async () => {
  let r = await srv.request('GET', PANELS);
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  const key = await srv.request('POST', '/api/v1/api-keys', { token: admin,
    json: { name: 'panels key', scopes: ['example.read'] } });
  assert.equal(key.status, 201, key.text);
  r = await srv.request('GET', PANELS, { headers: { 'x-api-key': key.body.key } });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
});

test('/api/v1/plugins lists each plugin\'s panels', async () => {
  const r = await srv.request('GET', '/api/v1/plugins', { token: admin });
  assert.equal(r.status, 200, r.text);
  const byName = Object.fromEntries(r.body.data.map((p) => [p.name, p]));
  assert.deepEqual(byName.example.console_panels, [NOTES]);
  assert.equal(byName.example.abi, '1.3');
  assert.deepEqual(byName.panelist.console_panels, [FIRST, SECOND, THIRD]);
  assert.deepEqual(byName.probe.console_panels, []);
  assert.deepEqual(byName.host.console_panels, []);
});

test('the route is in the OpenAPI document', async () => {
  const r = await srv.request('GET', '/api/v1/openapi.json');
  assert.equal(r.status, 200, r.text);
  const op = r.body.paths[PANELS]?.get;
  assert.ok(op, 'GET /api/v1/console/panels is documented');
  assert.equal(op['x-access'], 'staff');
  assert.ok(op.responses['401'] && op.responses['200'].content['application/json'].schema);
});

test('a panel\'s script is served from memory with an ETag and 304 on If-None-Match', async () => {
  let r = await srv.request('GET', '/plugins/example/panel.js');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/javascript/);
  assert.equal(r.text, readFileSync(`${ROOT}/plugins/example/console/panel.js`, 'utf8'));
  const etag = r.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{20}"$/);
  assert.equal(r.headers.get('cache-control'), 'public, max-age=3600');
  r = await srv.request('GET', '/plugins/example/panel.js', { headers: { 'if-none-match': etag } });
  assert.equal(r.status, 304);
  assert.equal(r.text, '');
  assert.equal(r.headers.get('etag'), etag);

  // A module in a subdirectory, .mjs, served as JavaScript too.
  r = await srv.request('GET', '/plugins/panelist/sub/third.mjs');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/javascript/);
  r = await srv.request('HEAD', '/plugins/panelist/first.js');
  assert.equal(r.status, 200);
});

test('nothing outside a panel\'s dir is served', async () => {
  for (const path of ['/plugins/example/nope.js', '/plugins/example/console/panel.js',
    '/plugins/example/example.c', '/plugins/panelist/panelist.c', '/plugins/nobody/panel.js'])
    assertEnvelope(assert, await srv.request('GET', path), 404, 'NOT_FOUND');
  // fetch() would normalise the dots away: send them as they are.
  for (const path of ['/plugins/example/../../etc/passwd', '/plugins/example/../example.c',
    '/plugins/example/%2e%2e/example.c']) {
    const r = await rawRequest(srv.port, { path });
    assert.equal(r.status, 404, `${path}: ${r.text}`);
    assert.equal(r.body.code, 'NOT_FOUND');
  }
});

test('a bad panel fails its plugin as a whole; the host keeps serving', async () => {
  const CASES = {
    traversal: /console panel bad: script "\.\.\/panelist\.c" must be a relative path/,
    missing: /console panel bad: script .*absent\.js is not a file/,
    nodir: /console panel bad: dir .*panelist_nowhere is not a directory/,
    duplicate: /console panel first is declared twice/,
    permission: /console panel bad requires undeclared permission panelist\.nobody/,
  };
  await Promise.all(Object.entries(CASES).map(async ([bad, reason]) => {
    const s = await startServer({ plugins: { example: {}, panelist: testPlugin('panelist', { bad }) } });
    try {
      assert.equal(s.exited, null, bad);
      const t = await s.login();
      const list = await s.request('GET', '/api/v1/plugins', { token: t });
      assert.equal(list.status, 200, list.text);
      const p = list.body.data.find((x) => x.name === 'panelist');
      assert.equal(p.state, 'failed', bad);
      assert.match(p.error, reason, bad);
      assert.deepEqual(p.console_panels, [], bad);
      assert.deepEqual(p.permissions, [], bad);
      const line = s.logs.find((l) => l.component === 'plugin' && l.level === 'error' &&
        /plugin panelist refused/.test(l.msg));
      assert.ok(line, `${bad}: no error line in\n${s.output}`);
      assert.match(line.msg, reason, bad);

      const panels = await s.request('GET', PANELS, { token: t });
      assert.equal(panels.status, 200, panels.text);
      assert.deepEqual(panels.body.data, withPlugin('example', [NOTES]), bad);
      // None of its files is served, the good panels' included.
      assertEnvelope(assert, await s.request('GET', '/plugins/panelist/first.js'), 404, 'NOT_FOUND');
      assert.equal((await s.request('GET', '/plugins/example/panel.js')).status, 200, bad);
      assert.equal((await s.request('GET', '/api/v1/example/hello')).status, 200, bad);
    } finally { await s.stop(); }
  }));
});
