// The OpenAPI document (generated from the route registry), the /docs
// viewer and the static assets it is served with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertEnvelope, allPlugins } from './lib/harness.mjs';
import { rawRequest } from './lib/helpers.mjs';

let srv, doc, plugins;
before(async () => {
  srv = await startServer({ plugins: allPlugins() });
  const token = await srv.login();
  const r = await srv.request('GET', '/api/v1/plugins', { token });
  assert.equal(r.status, 200, r.text);
  plugins = r.body.data;
  doc = (await srv.request('GET', '/api/v1/openapi.json')).body;
});
after(async () => { await srv?.stop(); });

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

test('GET /api/v1/openapi.json is OpenAPI 3.1.0, public', async () => {
  const r = await srv.request('GET', '/api/v1/openapi.json');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.ok(r.body, 'valid JSON');
  assert.deepEqual(r.body, doc);
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(r.headers.get('www-authenticate'), null);
  assert.equal(typeof doc.info.title, 'string');
  assert.equal(typeof doc.info.version, 'string');
  assert.equal(typeof doc.paths, 'object');
  // Stable: the same document on every call (and every worker).
  for (let i = 0; i < 3; i++) {
    const again = await srv.request('GET', '/api/v1/openapi.json', { headers: { connection: 'close' } });
    assert.equal(again.text, r.text);
  }
});

test('every route of every ready plugin is in paths, and nothing else', async () => {
  const listed = new Set();
  for (const p of plugins.filter((x) => x.state === 'ready'))
    for (const rt of p.routes) listed.add(`${rt.method.toLowerCase()} ${rt.path}`);
  assert.ok(listed.has('post /api/v1/example/notes') && listed.has('get /healthz'));

  const documented = new Set();
  for (const [path, item] of Object.entries(doc.paths))
    for (const m of Object.keys(item)) if (METHODS.includes(m)) documented.add(`${m} ${path}`);
  assert.deepEqual([...documented].sort(), [...listed].sort());

  const ids = new Set();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      assert.equal(typeof op.operationId, 'string', `${m} ${path}`);
      assert.ok(!ids.has(op.operationId), `operationId ${op.operationId} is unique`);
      ids.add(op.operationId);
      assert.ok(op.responses && Object.keys(op.responses).length > 0, `${m} ${path} responses`);
    }
  }
});

test('path parameters are declared', async () => {
  for (const [path, item] of Object.entries(doc.paths)) {
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [m, op] of Object.entries(item)) {
      const declared = (op.parameters ?? []).filter((p) => p.in === 'path');
      assert.deepEqual(declared.map((p) => p.name).sort(), [...names].sort(), `${m} ${path}`);
      for (const p of declared) assert.equal(p.required, true, `${m} ${path} ${p.name}`);
    }
  }
  const get = doc.paths['/api/v1/example/notes/{id}'].get;
  assert.deepEqual(get.parameters.map((p) => [p.name, p.in]), [['id', 'path']]);
  assert.ok(doc.paths['/api/v1/probe/hello/{name}'].delete.parameters.some((p) => p.name === 'name'));
});

test('POST /api/v1/example/notes documents its request body schema', async () => {
  const op = doc.paths['/api/v1/example/notes'].post;
  assert.ok(op.requestBody, 'requestBody');
  const schema = op.requestBody.content['application/json'].schema;
  assert.equal(schema.type, 'object');
  assert.deepEqual(schema.required, ['text']);
  assert.equal(schema.properties.text.type, 'string');
  assert.equal(schema.properties.text.maxLength, 2000);
  assert.deepEqual(schema.properties.priority.enum, ['low', 'normal', 'high']);
  assert.equal(schema.properties.priority.type, 'string');
  // Routes without a body schema have no requestBody.
  assert.equal(doc.paths['/api/v1/example/notes/{id}'].get.requestBody, undefined);
  assert.ok(doc.paths['/api/v1/probe/publish'].post.requestBody);
});

test('public routes need no security; the others do and name their access rule', async () => {
  for (const p of plugins.filter((x) => x.state === 'ready')) {
    for (const rt of p.routes) {
      const op = doc.paths[rt.path][rt.method.toLowerCase()];
      if (rt.public) {
        assert.deepEqual(op.security, [], `${rt.method} ${rt.path} is public`);
      } else {
        assert.ok(op.security === undefined || op.security.length > 0, `${rt.method} ${rt.path}`);
        // Who may call it: a permission, or staff / any authenticated caller.
        assert.equal(op['x-access'], rt.access, `${rt.method} ${rt.path}`);
        assert.equal(op['x-permission'], rt.permission ?? undefined, `${rt.method} ${rt.path}`);
        if (rt.access === 'permission') assert.ok(rt.permission, `${rt.method} ${rt.path}`);
        assert.ok(op.responses['401'] && op.responses['403'], `${rt.method} ${rt.path} 401/403`);
      }
    }
  }
  assert.deepEqual(doc.paths['/healthz'].get.security, []);
  assert.deepEqual(doc.paths['/api/v1/auth/login'].post.security, []);
  assert.equal(doc.paths['/api/v1/plugins'].get['x-permission'], 'system.read');
  // The document-wide default: a bearer token or an API key.
  assert.ok(Array.isArray(doc.security) && doc.security.length > 0);
  for (const req of doc.security)
    for (const name of Object.keys(req)) assert.ok(doc.components.securitySchemes[name], name);
  assert.equal(doc.components.securitySchemes.bearerAuth?.scheme, 'bearer');
});

test('components.schemas.Error is the error envelope, and errors refer to it', async () => {
  const e = doc.components.schemas.Error;
  assert.ok(e, 'Error schema');
  assert.equal(e.type, 'object');
  assert.deepEqual([...e.required].sort(), ['code', 'errors', 'message', 'request_id', 'status']);
  for (const k of ['status', 'code', 'message', 'errors', 'request_id']) assert.ok(e.properties[k], k);
  assert.equal(e.properties.errors.type, 'array');
  const item = e.properties.errors.items;
  for (const k of ['field', 'code', 'message']) assert.ok(item.properties[k], `errors[].${k}`);
  const op = doc.paths['/api/v1/example/notes'].post;
  assert.equal(op.responses['422'].content['application/json'].schema.$ref, '#/components/schemas/Error');
});

test('/docs serves the viewer and its vendored script', async () => {
  for (const path of ['/docs', '/docs/']) {
    const r = await srv.request('GET', path);
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    assert.match(r.text, /<script[^>]+src="\/vendor\/swagger-ui\/swagger-ui-bundle\.js"/);
    assert.ok(r.headers.get('content-security-policy'), 'CSP on HTML');
  }
  const js = await srv.request('GET', '/vendor/swagger-ui/swagger-ui-bundle.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.ok(js.text.length > 100000, 'the real bundle');
  assert.ok(js.headers.get('etag'));
  // The viewer's other resources referenced by the page are there too.
  const page = (await srv.request('GET', '/docs')).text;
  for (const m of page.matchAll(/(?:src|href)="(\/[^"]+)"/g)) {
    if (m[1].startsWith('/api/')) continue;
    const r = await srv.request('GET', m[1]);
    assert.equal(r.status, 200, m[1]);
  }
});

test('GET / is HTML with an ETag and a CSP; If-None-Match gives 304; HEAD works', async () => {
  const r = await srv.request('GET', '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.text, /<html/i);
  const etag = r.headers.get('etag');
  assert.match(etag ?? '', /^(W\/)?"[^"]+"$/);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp ?? '', /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');

  const same = await srv.request('GET', '/index.html');
  assert.equal(same.status, 200);
  assert.equal(same.headers.get('etag'), etag);

  const cached = await rawRequest(srv.port, { path: '/', headers: { 'if-none-match': etag }, untilClose: true });
  assert.equal(cached.status, 304);
  assert.equal(cached.raw.length, 0);
  assert.equal(cached.headers.etag, etag);
  const list = await rawRequest(srv.port, { path: '/', headers: { 'if-none-match': `"nope", ${etag}` }, untilClose: true });
  assert.equal(list.status, 304);
  const stale = await srv.request('GET', '/', { headers: { 'if-none-match': '"not-the-etag"' } });
  assert.equal(stale.status, 200);
  assert.equal(stale.text, r.text);

  const head = await rawRequest(srv.port, { method: 'HEAD', path: '/', untilClose: true });
  assert.equal(head.status, 200);
  assert.equal(head.raw.length, 0);
  assert.equal(head.headers.etag, etag);
  assert.match(head.headers['content-type'], /^text\/html/);
});

test('a missing asset is a 404 envelope; assets are read-only', async () => {
  for (const path of ['/missing-asset.js', '/vendor/swagger-ui/nope.js', '/docs/nope', '/.hidden',
    '/vendor/../index.html', '/%2e%2e/etc/passwd']) {
    const r = await rawRequest(srv.port, { path });
    assert.equal(r.status, 404, `${path}: ${r.status}`);
    assert.equal(r.body?.code, 'NOT_FOUND', path);
    assert.equal(r.body?.request_id, r.headers['x-request-id'], path);
  }
  assertEnvelope(assert, await srv.request('GET', '/missing-asset.js'), 404, 'NOT_FOUND');
  const r = await srv.request('POST', '/index.html', { json: {} });
  assert.ok([404, 405].includes(r.status), `POST on an asset: ${r.status}`);
  assert.equal(r.body?.status, 'error');
});
