// The media plugin on the s3 storage backend (plugins/media/store_s3.c)
// against a real S3-compatible server run here (s3rver from npm, behind
// tests/http/lib/s3.mjs's SigV4 check): the whole of media.test.mjs
// again with storage = s3, then what only S3 has.
process.env.SB_MEDIA_STORAGE = 's3';
await import('./media.test.mjs');

// --- what only the s3 backend has ----------------------------------------
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, dropDatabase, TEST_PLUGINS, ROOT, assertEnvelope, freshDir } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startS3, ACCESS_KEY, SECRET_KEY, REGION } from './lib/s3.mjs';

const M = '/api/v1/media';
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
let s3, nodeA, tokA;
const servers = [];

const storeDir = () => freshDir('media-s3');

function s3Conf(dir, extra = {}) {
  return { dir, storage: 's3', s3_endpoint: s3.endpoint, s3_bucket: s3.bucket, s3_region: REGION,
    s3_access_key: ACCESS_KEY, s3_secret_key: SECRET_KEY, ...extra };
}

async function node(media, database) {
  const srv = await startServer({ workers: 1, database, plugins: { ...TEST_PLUGINS, media } });
  servers.push(srv);
  return srv;
}

// A text document of its own bytes (text/plain, purpose document).
const doc = (n = 2000) => Buffer.from(`notes ${randomBytes(n).toString('hex')}\n`);

async function upload(srv, token, data, name = 'notes.txt') {
  const fd = new FormData();
  fd.append('file', new Blob([data]), name);
  const res = await fetch(`${srv.url}${M}/upload`, { method: 'POST', body: fd,
    headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return JSON.parse(text);
}

async function content(srv, token, id, headers = {}) {
  const res = await fetch(`${srv.url}${M}/${id}/content`, { headers: { authorization: `Bearer ${token}`, ...headers } });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

// The bucket's keys for a hash: <sha[0:2]>/<sha>.<gen> (s3rver keeps each
// object as a file named after its key in its directory).
function remoteKeys(sha) {
  const d = join(s3.dir, s3.bucket, sha.slice(0, 2));
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => f.startsWith(`${sha}.`) && f.endsWith('._S3rver_object'))
    .map((f) => `${sha.slice(0, 2)}/${f.replace(/\._S3rver_object$/, '')}`);
}

async function jobs(srv, token, status) {
  const r = await srv.request('GET', `/api/v1/jobs?status=${status}&kind=media.s3_put`, { token });
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

before(async () => {
  s3 = await startS3({ bucket: 'media-nodes' });
  nodeA = await node(s3Conf(storeDir()));
  tokA = await nodeA.login();
});

after(async () => {
  for (const srv of servers) await srv.stop({ keepDatabase: true });
  for (const db of new Set(servers.map((srv) => srv.database))) await dropDatabase(db);
  assert.deepEqual(s3.rejected, [], 'every request to S3 was correctly signed');
  await s3.stop();
});

test('s3: an upload is pushed to the bucket under <aa>/<sha>.<gen> by a job', async () => {
  const data = doc();
  const m = await upload(nodeA, tokA, data);
  const keys = await poll(() => { const k = remoteKeys(m.sha256); return k.length === 1 ? k : null; });
  assert.match(keys[0], new RegExp(`^${m.sha256.slice(0, 2)}/${m.sha256}\\.[0-9a-f]{16}$`));
  assert.deepEqual(readFileSync(s3.objectFile(keys[0])), data);
  const puts = s3.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(keys[0]));
  assert.ok(puts.length >= 1 && puts.every((r) => r.status === 200), JSON.stringify(puts));
  await poll(async () => (await jobs(nodeA, tokA, 'done')).length >= 1);
});

test('s3: another node with an empty directory serves the object, whole and by range', async () => {
  const data = doc(40000);
  const m = await upload(nodeA, tokA, data);
  await poll(() => remoteKeys(m.sha256).length === 1);
  // The job marks the object remote after S3's answer: B needs that.
  await poll(async () => (await jobs(nodeA, tokA, 'queued')).length === 0 &&
    (await jobs(nodeA, tokA, 'running')).length === 0);
  const dirB = storeDir();
  const nodeB = await node(s3Conf(dirB), nodeA.database);
  const tokB = await nodeB.login();
  const part = await content(nodeB, tokB, m.id, { range: 'bytes=100-199' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 100-199/${data.length}`);
  assert.deepEqual(part.bytes, data.subarray(100, 200));
  assert.equal(part.headers.get('etag'), `"${m.sha256}"`);
  assert.ok(existsSync(join(dirB, m.sha256.slice(0, 2), m.sha256)), 'cached on B');
  const whole = await content(nodeB, tokB, m.id);
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.bytes, data);
  const last = await content(nodeB, tokB, m.id, { range: 'bytes=-100' });
  assert.equal(last.status, 206);
  assert.deepEqual(last.bytes, data.subarray(data.length - 100));
  const gets = s3.requests.filter((r) => r.method === 'GET' && r.path.includes(m.sha256));
  assert.equal(gets.length, 1, 'fetched once, then served from B\'s cache');
  const past = await content(nodeB, tokB, m.id, { range: `bytes=${data.length}-` });
  assertEnvelope(assert, { status: past.status, headers: past.headers, text: past.bytes.toString(),
    body: JSON.parse(past.bytes.toString()) }, 416, 'VALIDATION_ERROR');
  // B has no spool of A's uploads: the later tests' pushes are A's alone.
  await nodeB.stop({ keepDatabase: true });
  servers.splice(servers.indexOf(nodeB), 1);
});

test('s3: deleting the last item removes the remote object; the same bytes again get a new generation', async () => {
  const data = doc();
  const a = await upload(nodeA, tokA, data);
  const b = await upload(nodeA, tokA, data, 'again.txt');
  const [first] = await poll(() => { const k = remoteKeys(a.sha256); return k.length === 1 ? k : null; });
  let d = await nodeA.request('DELETE', `${M}/${a.id}`, { token: tokA });
  assert.equal(d.status, 204);
  d = await nodeA.request('DELETE', `${M}/${b.id}`, { token: tokA });
  assert.equal(d.status, 204);
  await poll(() => remoteKeys(a.sha256).length === 0);
  assert.ok(s3.requests.some((r) => r.method === 'DELETE' && r.path.endsWith(first) && r.status === 204));

  const c = await upload(nodeA, tokA, data, 'third.txt');
  const [second] = await poll(() => { const k = remoteKeys(c.sha256); return k.length === 1 ? k : null; });
  assert.notEqual(second, first, 'a new generation, a new key');
  const got = await content(nodeA, tokA, c.id);
  assert.deepEqual(got.bytes, data);
});

test('s3: a push that meets 503s is retried until it lands', async () => {
  s3.failNext(2, { status: 503, method: 'PUT' });
  const data = doc();
  const m = await upload(nodeA, tokA, data);
  const [key] = await poll(() => { const k = remoteKeys(m.sha256); return k.length === 1 ? k : null; });
  // The bucket may hold the object a moment before the front has seen
  // the store's answer to its PUT: wait for that answer too.
  const statuses = () => s3.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(key)).map((r) => r.status);
  await poll(() => statuses().every((st) => st !== 0));
  assert.deepEqual(statuses(), [503, 503, 200]);
  assert.deepEqual(readFileSync(s3.objectFile(key)), data);
});

test('s3: a bad secret makes the put job dead without losing the local copy; other nodes answer 503', async () => {
  const dir = storeDir();
  const bad = await node(s3Conf(dir, { s3_secret_key: 'not-the-secret' }));
  const tok = await bad.login();
  const data = doc();
  const m = await upload(bad, tok, data);
  const dead = await poll(async () => {
    const l = await jobs(bad, tok, 'dead');
    return l.length === 1 ? l[0] : null;
  });
  assert.match(dead.last_error, /PUT: HTTP 403/);
  assert.equal(remoteKeys(m.sha256).length, 0);
  // The front refused it for its signature; forget that for the after hook.
  const refused = s3.rejected.splice(0);
  assert.ok(refused.length >= 1 && refused.every((r) => r.method === 'PUT' && r.why === 'signature mismatch'),
    JSON.stringify(refused));
  // The item and its bytes are intact on the node that has them.
  assert.ok(existsSync(join(dir, m.sha256.slice(0, 2), m.sha256)));
  const got = await content(bad, tok, m.id);
  assert.equal(got.status, 200);
  assert.deepEqual(got.bytes, data);
  // A node without the bytes cannot fetch what was never pushed.
  const other = await node(s3Conf(storeDir()), bad.database);
  const r = await content(other, await other.login(), m.id);
  assert.equal(r.status, 503);
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  assertEnvelope(assert, { status: r.status, headers: r.headers, text: r.bytes.toString(),
    body: JSON.parse(r.bytes.toString()) }, 503, 'UNAVAILABLE');
});

test('s3: without its keys the plugin is "not configured": uploads 503, /readyz names it, still ready', async () => {
  const srv = await node({ dir: storeDir(), storage: 's3', s3_endpoint: s3.endpoint });
  const tok = await srv.login();
  const fd = new FormData();
  fd.append('file', new Blob([doc()]), 'x.txt');
  const res = await fetch(`${srv.url}${M}/upload`, { method: 'POST', body: fd, headers: { authorization: `Bearer ${tok}` } });
  const text = await res.text();
  assertEnvelope(assert, { status: res.status, headers: res.headers, text, body: JSON.parse(text) }, 503, 'UNAVAILABLE');
  const ready = await srv.request('GET', '/readyz');
  assert.equal(ready.status, 200, ready.text);
  assert.equal(ready.body.checks['plugin:media'].s3, 'not configured');
  // the avatar (the media.store service's put underneath) says the same
  const png = readFileSync(join(ROOT, 'tests/fixtures/media/tiny.png'));
  const af = new FormData();
  af.append('avatar', new Blob([png], { type: 'image/png' }), 'me.png');
  const ar = await fetch(`${srv.url}/api/v1/users/me/avatar`, { method: 'POST', body: af, headers: { authorization: `Bearer ${tok}` } });
  const at = await ar.text();
  assertEnvelope(assert, { status: ar.status, headers: ar.headers, text: at, body: JSON.parse(at) }, 503, 'UNAVAILABLE');
});

test('s3: the secret key is never shown', async () => {
  const r = await nodeA.request('GET', '/api/v1/plugins', { token: tokA });
  assert.equal(r.status, 200, r.text);
  const media = r.body.data.find((p) => p.name === 'media');
  assert.equal(media.config.s3_secret_key, '********');
  assert.equal(media.config.s3_access_key, ACCESS_KEY);
  assert.doesNotMatch(nodeA.output, new RegExp(`s3_secret_key[^\n]*${SECRET_KEY}`));
});
