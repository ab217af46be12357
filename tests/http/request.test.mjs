// The request path: routing (404/405/HEAD/OPTIONS), CORS, path
// parameters, handlers that misbehave, authentication and permissions,
// and body handling (limits, media type, strict JSON, declarative
// validation) with no partial write on any rejected body.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertEnvelope, pgClient, withDb, databaseUrl, ADMIN_PASSWORD } from './lib/harness.mjs';
import { rawRequest, forgeJwt, createUnprivilegedUser, poll } from './lib/helpers.mjs';

const NOTES = '/api/v1/example/notes';
let srv, token;

before(async () => {
  srv = await startServer({ host: { cors_origins: 'http://allowed.test' } });
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

// A raw response in the shape assertEnvelope() expects.
function asFetchLike(r) {
  return { ...r, headers: { get: (k) => r.headers[k.toLowerCase()] ?? null } };
}

function allowList(h) {
  return (h ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

async function noteCount() {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return Number((await c.query('SELECT count(*) FROM example_notes')).rows[0].count); } finally { await c.end(); }
}

function postNotes(body, headers = { 'content-type': 'application/json' }) {
  return srv.request('POST', NOTES, { token, body, headers });
}

test('an unknown path is 404, a known path with another method 405 with Allow', async () => {
  assertEnvelope(assert, await srv.request('GET', '/api/v1/nothing-here'), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('POST', '/api/v1/nothing-here', { json: {} }), 404, 'NOT_FOUND');
  // A trailing slash is another path.
  assertEnvelope(assert, await srv.request('GET', '/api/v1/example/hello/'), 404, 'NOT_FOUND');

  let r = await srv.request('PUT', '/api/v1/example/hello', { json: {} });
  assertEnvelope(assert, r, 405, 'METHOD_NOT_ALLOWED');
  assert.deepEqual(allowList(r.headers.get('allow')).sort(), ['GET', 'HEAD', 'OPTIONS']);

  r = await srv.request('POST', '/api/v1/probe/hello/x', { json: {} });
  assertEnvelope(assert, r, 405, 'METHOD_NOT_ALLOWED');
  assert.deepEqual(allowList(r.headers.get('allow')).sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS']);

  r = await srv.request('DELETE', NOTES);
  assertEnvelope(assert, r, 405, 'METHOD_NOT_ALLOWED');
  assert.deepEqual(allowList(r.headers.get('allow')).sort(), ['OPTIONS', 'POST']);

  // 405 comes before authentication: no token needed to learn the methods.
  r = await srv.request('PATCH', '/api/v1/plugins', { json: {} });
  assertEnvelope(assert, r, 405, 'METHOD_NOT_ALLOWED');
  assert.deepEqual(allowList(r.headers.get('allow')).sort(), ['GET', 'HEAD', 'OPTIONS']);
});

test('HEAD on a GET route is 200 with the headers and no body', async () => {
  const get = await rawRequest(srv.port, { method: 'GET', path: '/api/v1/example/hello' });
  assert.equal(get.status, 200);
  assert.ok(get.raw.length > 0);
  const r = await rawRequest(srv.port, { method: 'HEAD', path: '/api/v1/example/hello', untilClose: true });
  assert.equal(r.status, 200);
  assert.equal(r.raw.length, 0, `HEAD sent a body: ${r.text}`);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.match(r.headers['x-request-id'], /^[0-9a-f]{32}$/);
  // HEAD follows GET, so a POST-only route refuses it.
  const h = await rawRequest(srv.port, { method: 'HEAD', path: NOTES, untilClose: true });
  assert.equal(h.status, 405);
  assert.equal(h.raw.length, 0);
  assert.deepEqual(allowList(h.headers.allow).sort(), ['OPTIONS', 'POST']);
});

test('OPTIONS is 204 with Allow; on an unknown path 404', async () => {
  let r = await srv.request('OPTIONS', '/api/v1/probe/hello/x');
  assert.equal(r.status, 204);
  assert.equal(r.text, '');
  assert.deepEqual(allowList(r.headers.get('allow')).sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS']);
  r = await srv.request('OPTIONS', NOTES);
  assert.equal(r.status, 204);
  assert.deepEqual(allowList(r.headers.get('allow')).sort(), ['OPTIONS', 'POST']);
  // OPTIONS needs no token even where the methods do.
  r = await srv.request('OPTIONS', '/api/v1/plugins');
  assert.equal(r.status, 204);
  assertEnvelope(assert, await srv.request('OPTIONS', '/api/v1/nothing-here'), 404, 'NOT_FOUND');
});

test('CORS: a preflight from an allowed origin is answered, others get no CORS headers', async () => {
  const pre = (origin) => srv.request('OPTIONS', NOTES, { headers: {
    origin, 'access-control-request-method': 'POST',
    'access-control-request-headers': 'authorization, content-type' } });
  let r = await pre('http://allowed.test');
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://allowed.test');
  assert.ok(allowList(r.headers.get('access-control-allow-methods')).includes('POST'),
    r.headers.get('access-control-allow-methods'));
  const allowedHeaders = allowList(r.headers.get('access-control-allow-headers')).map((h) => h.toLowerCase());
  assert.ok(allowedHeaders.includes('authorization') && allowedHeaders.includes('content-type'),
    r.headers.get('access-control-allow-headers'));
  assert.match(r.headers.get('vary') ?? '', /origin/i);

  for (const origin of ['http://evil.test', 'http://allowed.test.evil.test', 'https://allowed.test', 'null']) {
    r = await pre(origin);
    assert.equal(r.headers.get('access-control-allow-origin'), null, origin);
    assert.equal(r.headers.get('access-control-allow-methods'), null, origin);
    assert.equal(r.headers.get('access-control-allow-headers'), null, origin);
  }

  // Actual requests: the allowed origin is echoed, also on errors (so the
  // browser app can read the envelope); others get nothing.
  r = await srv.request('GET', '/api/v1/example/hello', { headers: { origin: 'http://allowed.test' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://allowed.test');
  assert.equal(r.headers.get('access-control-allow-credentials'), null);
  r = await srv.request('GET', `${NOTES}/1`, { headers: { origin: 'http://allowed.test' } });
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://allowed.test');
  r = await srv.request('GET', '/api/v1/example/hello', { headers: { origin: 'http://evil.test' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), null);
  // No Origin, no CORS headers.
  r = await srv.request('GET', '/api/v1/example/hello');
  assert.equal(r.headers.get('access-control-allow-origin'), null);
});

test('path parameters are matched and percent-decoded', async () => {
  const cases = {
    world: 'world',
    'a%20b': 'a b',
    '%C3%A9t%C3%A9': 'été',
    'a+b': 'a+b',
    '%7Bx%7D': '{x}',
    '42': '42',
  };
  for (const [raw, want] of Object.entries(cases)) {
    const r = await srv.request('GET', `/api/v1/probe/hello/${raw}`);
    assert.equal(r.status, 200, `${raw}: ${r.text}`);
    assert.equal(r.body.param, want, raw);
    assert.equal(typeof r.body.pid, 'number');
  }
  // An encoded slash or NUL, or a broken escape, never reaches a handler.
  for (const raw of ['a%2Fb', 'a%00b', '%zz', '%4']) {
    const r = await rawRequest(srv.port, { path: `/api/v1/probe/hello/${raw}` });
    assertEnvelope(assert, asFetchLike(r), 404, 'NOT_FOUND');
  }
  // A missing segment or an extra one is another path.
  assertEnvelope(assert, await srv.request('GET', '/api/v1/probe/hello/'), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/probe/hello/a/b'), 404, 'NOT_FOUND');
});

test('a handler that never answers is a 500 INTERNAL envelope without internals, and is logged', async () => {
  const r = await srv.request('GET', '/api/v1/probe/noresponse', { headers: { 'x-request-id': 'noresp-1' } });
  const e = assertEnvelope(assert, r, 500, 'INTERNAL');
  assert.deepEqual(e.errors, []);
  assert.equal(e.request_id, 'noresp-1');
  assert.doesNotMatch(r.text, /probe|noresponse|handler|plugin|\.c\b|\.so\b|\/work\//i);
  const line = await poll(() => srv.logs.find((l) => l.component === 'http' && l.level === 'error' &&
    /noresponse/.test(l.msg)), { interval: 50 });
  assert.ok(line, 'the host logs which handler did not answer');
  assert.match(line.msg, /probe/);
  // The worker survived.
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
});

test('a route with a permission: anonymous 401, without the permission 403, super-admin 200', async () => {
  let r = await srv.request('DELETE', '/api/v1/probe/hello/x');
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  assert.equal(r.headers.get('www-authenticate'), 'Bearer');

  await createUnprivilegedUser(srv, 'request_noperm');
  const weak = await srv.login('request_noperm', ADMIN_PASSWORD);
  r = await srv.request('DELETE', '/api/v1/probe/hello/x', { token: weak });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');
  r = await srv.request('POST', NOTES, { token: weak, json: { text: 'nope' } });
  assertEnvelope(assert, r, 403, 'FORBIDDEN');

  r = await srv.request('DELETE', '/api/v1/probe/hello/x', { token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.param, 'x');
});

test('malformed and non-object JSON bodies are 400, with no write', async () => {
  const before = await noteCount();
  const bad = ['{"text":', '{text: "x"}', "{'text':'x'}", '{"text":"x"} trailing', '{"text":"x",}',
    '[1,2]', '[{"text":"x"}]', '"a string"', '42', 'null', 'true',
    '{"text":"a","text":"b"}', '{"text":"ok","priority":"low","priority":"high"}',
    '{"text":"\\udc00"}', '{"text":"a\u0000b"}'];
  for (const body of bad) {
    const r = await postNotes(body);
    const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.ok(e.message.length > 0, body);
  }
  // Invalid UTF-8 bytes.
  const r = await postNotes(Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  // An empty body.
  assertEnvelope(assert, await postNotes(''), 400, 'VALIDATION_ERROR');
  assert.equal(await noteCount(), before);
});

test('invalid fields are 422 with field-level errors, with no write', async () => {
  const before = await noteCount();
  const cases = [
    [{}, [['text', 'REQUIRED']]],
    [{ priority: 'high' }, [['text', 'REQUIRED']]],
    [{ text: 5 }, [['text', 'INVALID_TYPE']]],
    [{ text: ['x'] }, [['text', 'INVALID_TYPE']]],
    [{ text: { a: 1 } }, [['text', 'INVALID_TYPE']]],
    [{ text: true }, [['text', 'INVALID_TYPE']]],
    [{ text: 'ok', priority: 'urgent' }, [['priority', 'INVALID_CHOICE']]],
    [{ text: 'ok', priority: 'HIGH' }, [['priority', 'INVALID_CHOICE']]],
    [{ text: 'ok', priority: 3 }, [['priority', 'INVALID_TYPE']]],
    [{ text: 'a'.repeat(2001) }, [['text', 'TOO_LONG']]],
    [{ text: '   ' }, [['text', 'EMPTY']]],
    [{ text: '\t\n' }, [['text', 'EMPTY']]],
    [{ text: 7, priority: 'urgent' }, [['priority', 'INVALID_CHOICE'], ['text', 'INVALID_TYPE']]],
  ];
  for (const [body, want] of cases) {
    const r = await srv.request('POST', NOTES, { token, json: body });
    const e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    for (const x of e.errors) {
      assert.deepEqual(Object.keys(x).sort(), ['code', 'field', 'message'], JSON.stringify(x));
      assert.equal(typeof x.message, 'string');
      assert.ok(x.message.length > 0);
    }
    const got = e.errors.map((x) => [x.field, x.code]).sort((a, b) => a[0].localeCompare(b[0]));
    assert.deepEqual(got, want, `${JSON.stringify(body).slice(0, 80)} -> ${JSON.stringify(e.errors)}`);
  }
  // 2000 characters (not bytes) is the limit: multi-byte text at the limit passes.
  const r = await srv.request('POST', NOTES, { token, json: { text: 'é'.repeat(2000) } });
  assert.equal(r.status, 201, r.text);
  assert.equal(await noteCount(), before + 1);
  // Unknown fields are ignored, not an error.
  const u = await srv.request('POST', NOTES, { token, json: { text: 'with extra', extra: 1 } });
  assert.equal(u.status, 201, u.text);
  assert.equal(await noteCount(), before + 2);
});

test('a body that is not application/json is 415, with no write', async () => {
  const before = await noteCount();
  const body = JSON.stringify({ text: 'hello' });
  // A Buffer body: fetch sends no Content-Type at all.
  let r = await srv.request('POST', NOTES, { token, body: Buffer.from(body) });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx',
    'multipart/form-data; boundary=x', 'application/json-seq']) {
    r = await postNotes(body, { 'content-type': ct });
    assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  }
  assert.equal(await noteCount(), before);
  // The JSON media type with parameters, in any case, is fine.
  r = await postNotes(body, { 'content-type': 'Application/JSON; charset=utf-8' });
  assert.equal(r.status, 201, r.text);
  assert.equal(await noteCount(), before + 1);
});

test("a body above the route's body_max (8192) is 413; at the limit it is accepted", async () => {
  const before = await noteCount();
  const at = (n) => { const s = '{"text":"limit"'; return s + ' '.repeat(n - s.length - 1) + '}'; };
  let r = await postNotes(at(8193));
  assertEnvelope(assert, r, 413, 'PAYLOAD_TOO_LARGE');
  r = await postNotes(JSON.stringify({ text: 'x'.repeat(100000) }));
  assertEnvelope(assert, r, 413, 'PAYLOAD_TOO_LARGE');
  assert.equal(await noteCount(), before);
  r = await postNotes(at(8192));
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.text, 'limit');
  assert.equal(await noteCount(), before + 1);
});

test("a body above Kore's global http_body_max (17 MiB) is the 413 JSON envelope", async () => {
  const before = await noteCount();
  const r = await rawRequest(srv.port, { method: 'POST', path: NOTES,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    bodyLength: 17 * 1024 * 1024, fill: ' ' });
  assertEnvelope(assert, asFetchLike(r), 413, 'PAYLOAD_TOO_LARGE');
  // Also on a route without a body schema and without credentials.
  const r2 = await rawRequest(srv.port, { method: 'POST', path: '/api/v1/nothing-here',
    headers: { 'content-type': 'application/json' }, bodyLength: 17 * 1024 * 1024 });
  assertEnvelope(assert, asFetchLike(r2), 413, 'PAYLOAD_TOO_LARGE');
  assert.equal(await noteCount(), before);
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
});

test('a valid note is created (201) and read back; bad or unknown ids are 404', async () => {
  const before = await noteCount();
  const r = await srv.request('POST', NOTES, { token, json: { text: 'remember the milk', priority: 'high' } });
  assert.equal(r.status, 201, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json; charset=utf-8$/);
  const note = r.body;
  assert.ok(Number.isInteger(note.id) && note.id > 0, JSON.stringify(note));
  assert.equal(note.text, 'remember the milk');
  assert.equal(note.priority, 1);
  assert.equal(note.author_id, 1);
  assert.match(note.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.equal(await noteCount(), before + 1);

  const g = await srv.request('GET', `${NOTES}/${note.id}`, { token });
  assert.equal(g.status, 200, g.text);
  assert.deepEqual(g.body, note);

  const low = await srv.request('POST', NOTES, { token, json: { text: 'later', priority: 'low' } });
  assert.equal(low.body.priority, -1);
  const normal = await srv.request('POST', NOTES, { token, json: { text: 'now' } });
  assert.equal(normal.body.priority, 0);
  assert.ok(normal.body.id > low.body.id && low.body.id > note.id);

  for (const id of ['abc', '0', '-1', '1e3', '1.5', '99999999', '9'.repeat(30), `${note.id}x`, '%20']) {
    const n = await srv.request('GET', `${NOTES}/${id}`, { token });
    assertEnvelope(assert, n, 404, 'NOT_FOUND');
  }
});

test('invalid tokens are 401 with WWW-Authenticate: Bearer', async () => {
  // Staff tokens name a live session: forge with the sid of a real login.
  const sid = JSON.parse(Buffer.from((await srv.login()).split('.')[1], 'base64url')).sid;
  const forge = (claims = {}, opts) => forgeJwt({ sid, ...claims }, opts);
  const url = `${NOTES}/1`;
  const now = Math.floor(Date.now() / 1000);
  // The control: a token forged exactly like the host's passes.
  const ok = await srv.request('GET', url, { token: forge() });
  assert.notEqual(ok.status, 401, ok.text);
  assert.ok([200, 404].includes(ok.status), ok.text);

  const valid = forge();
  const [h, p] = valid.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url')), sub: '2' })).toString('base64url')}.${valid.split('.')[2]}`;
  const bad = {
    garbage: 'garbage',
    'three dots': 'a.b.c',
    empty: '',
    'wrong signature': forge({}, { secret: 'another-secret-0123456789abcdef0123456789' }),
    'alg none': forge({}, { alg: 'none', signature: '' }),
    'alg none with a signature': forge({}, { header: { alg: 'none', typ: 'JWT' } }),
    'HS512 with the right key': forge({}, { alg: 'HS512' }),
    expired: forge({ iat: now - 3600, nbf: now - 3600, exp: now - 60 }),
    'not yet valid': forge({ nbf: now + 3600 }),
    'issued in the future': forge({ iat: now + 3600 }),
    'no exp': forge({ exp: undefined }),
    'wrong issuer': forge({ iss: 'someone-else' }),
    'wrong audience': forge({ aud: 'someone-else' }),
    'no sub': forge({ sub: undefined }),
    'sub not a number': forge({ sub: 'admin' }),
    'unknown user': forge({ sub: '424242' }),
    'no typ': forge({ typ: undefined }),
    'another typ': forge({ typ: 'refresh' }),
    'no session': forge({ sid: undefined }),
    'unknown session': forge({ sid: 987654 }),
    tampered,
  };
  for (const [name, t] of Object.entries(bad)) {
    const r = await srv.request('GET', url, { headers: { authorization: `Bearer ${t}` } });
    assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer', name);
  }
  // Other schemes and a stray API key are refused the same way.
  for (const headers of [{ authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` },
    { authorization: `Token ${valid}` }, { 'x-api-key': 'sk_not_a_key' }]) {
    const r = await srv.request('GET', url, { headers });
    assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer', JSON.stringify(headers));
  }
  // A bad token on a public route is still refused, not ignored.
  const r = await srv.request('GET', '/api/v1/example/hello', { headers: { authorization: 'Bearer garbage' } });
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
});

test('login: a wrong password and an unknown user get identical 401 answers', async () => {
  const wrong = await srv.request('POST', '/api/v1/auth/login', { json: { username: 'admin', password: 'not-the-password' } });
  const unknown = await srv.request('POST', '/api/v1/auth/login', { json: { username: 'nobody-here', password: 'not-the-password' } });
  const a = assertEnvelope(assert, wrong, 401, 'UNAUTHENTICATED');
  const b = assertEnvelope(assert, unknown, 401, 'UNAUTHENTICATED');
  assert.notEqual(a.request_id, b.request_id);
  assert.deepEqual({ ...a, request_id: null }, { ...b, request_id: null });
  assert.equal(wrong.headers.get('www-authenticate'), unknown.headers.get('www-authenticate'));
  assert.doesNotMatch(wrong.text + unknown.text, /nobody-here|admin|not-the-password/);
  // And the right password still works.
  const ok = await srv.request('POST', '/api/v1/auth/login', { json: { username: 'ADMIN', password: ADMIN_PASSWORD } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.token_type, 'Bearer');
  assert.equal(ok.body.user.username, 'admin');
  assert.equal(ok.body.user.password_hash, undefined);
});
