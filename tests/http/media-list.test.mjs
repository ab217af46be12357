// GET /api/v1/media (plugins/media): the Media library's list.
// media.manage only; ?purpose= and ?customer_id= filter; newest first;
// ?limit=&cursor= pages {data, next_cursor} as every list of the API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, TEST_PLUGINS, ROOT, assertEnvelope, freshDir } from './lib/harness.mjs';

const M = '/api/v1/media';
const FIX = join(ROOT, 'tests/fixtures/media');
const png = readFileSync(join(FIX, 'tiny.png'));
let srv, admin, agent;

function pdf(text) {
  // Enough of a PDF for libmagic (%PDF- and a body); the bytes differ per text.
  return Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${text}\ntrailer << /Root 1 0 R >>\n%%EOF\n`);
}

async function upload(data, name, type, fields = {}) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  fd.append('file', new Blob([data], { type }), name);
  const res = await fetch(`${srv.url}${M}/upload`, { method: 'POST', body: fd,
    headers: { authorization: `Bearer ${admin}` } });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

before(async () => {
  srv = await startServer({ workers: 1,
    plugins: { ...TEST_PLUGINS, customers: {}, media: { dir: freshDir('media') } } });
  admin = await srv.login();
  const username = `agent-${Math.random().toString(16).slice(2, 10)}`;
  const password = 'user-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name: 'Agent', email: `${username}@example.org`, role: 'AGENT' } });
  assert.equal(r.status, 201, r.text);
  agent = await srv.login(username, password);
});
after(async () => { await srv?.stop(); });

test('newest first, filtered by purpose and customer_id, paged by cursor', async () => {
  const cust = await srv.request('POST', '/api/v1/customers', { token: admin,
    json: { name: 'Media Person', phone: '+14155550123' } });
  assert.equal(cust.status, 201, cust.text);
  const a = await upload(png, 'a.png', 'image/png');
  const b = await upload(pdf('one'), 'b.pdf', 'application/pdf', { customer_id: String(cust.body.id) });
  const c = await upload(pdf('two'), 'c.pdf', 'application/pdf');

  let r = await srv.request('GET', M, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => x.id), [c.id, b.id, a.id]);
  assert.equal(r.body.next_cursor, null);
  const first = r.body.data[2];
  assert.equal(first.filename, 'a.png');
  assert.equal(first.mime_type, 'image/png');
  assert.match(first.url, new RegExp(`^/api/v1/media/${a.id}/content\\?exp=\\d+&sig=`));
  assert.ok('thumbnail_url' in first);
  // The signed URL opens the bytes without a bearer token.
  const bytes = await fetch(srv.url + first.url);
  assert.equal(bytes.status, 200);
  assert.deepEqual(Buffer.from(await bytes.arrayBuffer()), png);

  r = await srv.request('GET', `${M}?purpose=document`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [c.id, b.id]);
  r = await srv.request('GET', `${M}?customer_id=${cust.body.id}`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [b.id]);
  r = await srv.request('GET', `${M}?purpose=image&customer_id=${cust.body.id}`, { token: admin });
  assert.deepEqual(r.body.data, []);

  r = await srv.request('GET', `${M}?limit=2`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [c.id, b.id]);
  assert.equal(r.body.next_cursor, String(b.id));
  r = await srv.request('GET', `${M}?limit=2&cursor=${r.body.next_cursor}`, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [a.id]);
  assert.equal(r.body.next_cursor, null);

  // A deleted item leaves the list.
  assert.equal((await srv.request('DELETE', `${M}/${c.id}`, { token: admin })).status, 204);
  r = await srv.request('GET', M, { token: admin });
  assert.deepEqual(r.body.data.map((x) => x.id), [b.id, a.id]);
});

test('bad filters and cursors are 400 in the envelope', async () => {
  for (const q of ['purpose=nope', 'customer_id=abc', 'customer_id=0', 'customer_id=-1',
    'customer_id=1.5', 'cursor=abc', 'limit=0', 'limit=201']) {
    const r = await srv.request('GET', `${M}?${q}`, { token: admin });
    const e = assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
    assert.ok(e.errors.length >= 1, q);
  }
});

test('media.manage only: an AGENT (media.read, media.upload) gets 403, nobody 401', async () => {
  assertEnvelope(assert, await srv.request('GET', M, { token: agent }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', M), 401, 'UNAUTHENTICATED');
});
