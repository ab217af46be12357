// The media plugin (API.md "Media"), black box over HTTP against real
// PostgreSQL and a real directory store: every allowed type sniffed from
// its bytes (tiny images made with libvips, committed under
// tests/fixtures/media/; a PDF and text written here), refusals with
// their codes (a renamed ELF, HTML and SVG declared as PNG, a truncated
// PNG, a PNG whose header claims 50,000 x 50,000, zero bytes, over the
// purpose's limit), content-addressed storage (one file for two uploads,
// removed with the last row), ranges, ETags, signed URLs, bulk upload,
// permissions and the privacy hooks; a 100 MB download streamed with the
// worker's memory bounded and no descriptor left by a client that goes away.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startServer, TEST_PLUGINS, ROOT, assertEnvelope, testPlugin, freshDir } from './lib/harness.mjs';
import { pdf as pdfTitled, pngClaiming } from './lib/media.mjs';
import { createUnprivilegedUser, poll, waitWorkerPids } from './lib/helpers.mjs';
import { startS3, ACCESS_KEY, SECRET_KEY, REGION } from './lib/s3.mjs';

// The whole suite runs on each storage backend: dir here, s3 when
// media-s3.test.mjs imports this file with SB_MEDIA_STORAGE=s3 (then the
// store directory is the s3 backend's spool and cache, same layout).
const STORAGE = process.env.SB_MEDIA_STORAGE || 'dir';
let s3;
function mediaConf(dir, extra = {}) {
  const conf = { dir, ...extra };
  if (STORAGE === 's3')
    Object.assign(conf, { storage: 's3', s3_endpoint: s3.endpoint, s3_bucket: s3.bucket,
      s3_region: REGION, s3_access_key: ACCESS_KEY, s3_secret_key: SECRET_KEY });
  return conf;
}

const M = '/api/v1/media';
const FIX = join(ROOT, 'tests/fixtures/media');
let srv, admin, agentTok, adminTok, nopermTok, storeDir;

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const objPath = (sha) => join(storeDir, sha.slice(0, 2), sha);

const pdf = (text = 'hello') => pdfTitled(text);

// --- the corpus ---------------------------------------------------------
const png = readFileSync(join(FIX, 'tiny.png'));
const jpg = readFileSync(join(FIX, 'tiny.jpg'));
const webp = readFileSync(join(FIX, 'tiny.webp'));
const docx = readFileSync(join(FIX, 'tiny.docx'));
const bomb = readFileSync(join(FIX, 'bomb.docx'));

// Audio and video: the first bytes of each container, which is all
// libmagic reads (the plugin does not decode audio or video).
const box = (t, b) => { const l = Buffer.alloc(4); l.writeUInt32BE(8 + b.length); return Buffer.concat([l, Buffer.from(t), b]); };
const ftyp = (brand, compat) => Buffer.concat([box('ftyp', Buffer.concat([Buffer.from(brand), Buffer.from([0, 0, 2, 0]),
  Buffer.from(compat)])), box('free', Buffer.alloc(64))]);
const adts = Buffer.from([0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc]);
const av = {
  mp4: ftyp('isom', 'isomiso2avc1mp41'),
  gp3: ftyp('3gp4', 'isom3gp4'),
  m4a: ftyp('M4A ', 'M4A mp42isom'),
  amr: Buffer.concat([Buffer.from('#!AMR\n'), Buffer.alloc(64, 0x3c)]),
  aac: Buffer.concat([adts, Buffer.alloc(9), adts, Buffer.alloc(9), adts, Buffer.alloc(9)]),
  mp3: Buffer.concat([Buffer.from('ID3'), Buffer.from([3, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xfb, 0x90, 0x64]), Buffer.alloc(413)]),
  ogg: Buffer.concat([Buffer.from('OggS'), Buffer.from([0, 2]), Buffer.alloc(8), Buffer.from([1, 0, 0, 0]), Buffer.alloc(8), Buffer.from([1, 19]),
    Buffer.from('OpusHead'), Buffer.from([1, 1, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0])]),
};

const elf = readFileSync('/bin/true');
const html = Buffer.from('<!DOCTYPE html>\n<html><head><title>x</title></head><body><script>alert(1)</script></body></html>\n');
const svg = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>\n');
const text = Buffer.from('Plain text notes.\nSecond line of the notes.\n');

// --- helpers --------------------------------------------------------------
function form(files, fields = {}) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, String(v));
  for (const f of files) fd.append(f.field ?? 'file', new Blob([f.data], f.type ? { type: f.type } : {}), f.name);
  return fd;
}

async function upload(file, { token = adminTok, fields = {}, path = `${M}/upload` } = {}) {
  const res = await fetch(srv.url + path, { method: 'POST', body: form(Array.isArray(file) ? file : [file], fields),
    headers: token ? { authorization: `Bearer ${token}` } : {} });
  const t = await res.text();
  let body = null;
  try { body = JSON.parse(t); } catch { body = null; }
  return { status: res.status, headers: res.headers, text: t, body };
}

async function get(path, { token, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(srv.url + path, { headers: h });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function makeUser(role) {
  const username = `${role.toLowerCase()}-${Math.random().toString(16).slice(2, 10)}`;
  const password = 'user-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name: role, email: `${username}@example.org`, role } });
  assert.equal(r.status, 201, r.text);
  return srv.login(username, password);
}

before(async () => {
  storeDir = freshDir('media');
  if (STORAGE === 's3') s3 = await startS3();
  // One worker: the memory and descriptor checks read its /proc entry.
  srv = await startServer({ workers: 1, plugins: { ...TEST_PLUGINS, media: mediaConf(storeDir),
    media_client: testPlugin('media_client') } });
  admin = await srv.login();
  agentTok = await makeUser('AGENT');
  adminTok = await makeUser('ADMIN');
  await createUnprivilegedUser(srv, 'media-noperm');
  nopermTok = await srv.login('media-noperm');
});

after(async () => {
  await srv?.stop();
  if (s3) {
    assert.deepEqual(s3.rejected, [], 'every request to S3 was correctly signed');
    await s3.stop();
  }
});

test('every allowed type is accepted with the type sniffed from its bytes', async () => {
  const cases = [
    { data: png, name: 'a.png', type: 'image/png', mime: 'image/png', w: 16, h: 12, purpose: 'image' },
    { data: jpg, name: 'b.jpeg', type: 'application/octet-stream', mime: 'image/jpeg', w: 16, h: 12, purpose: 'image' },
    { data: webp, name: 'c.webp', mime: 'image/webp', w: 16, h: 12, purpose: 'image' },
    { data: webp, name: 's.webp', mime: 'image/webp', w: 16, h: 12, fields: { purpose: 'sticker' }, purpose: 'sticker' },
    { data: png, name: 'me.png', mime: 'image/png', w: 16, h: 12, fields: { purpose: 'avatar' }, purpose: 'avatar' },
    { data: pdf(), name: 'doc.pdf', type: 'application/pdf', mime: 'application/pdf', purpose: 'document' },
    { data: text, name: 'notes.txt', type: 'text/plain', mime: 'text/plain', purpose: 'document',
      fields: { purpose: 'document' } },
    { data: docx, name: 'letter.docx', mime: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
      purpose: 'document', fields: { purpose: 'document' } },
    { data: av.mp4, name: 'v.mp4', type: 'video/mp4', mime: 'video/mp4', purpose: 'video' },
    { data: av.gp3, name: 'v.3gp', mime: 'video/3gpp', purpose: 'video' },
    { data: av.m4a, name: 'a.m4a', type: 'audio/mp4', mime: 'audio/mp4', purpose: 'audio' },
    { data: av.amr, name: 'a.amr', mime: 'audio/amr', purpose: 'audio', dur: 0.04 },
    { data: av.aac, name: 'a.aac', type: 'audio/aac', mime: 'audio/aac', purpose: 'audio', dur: 0.07 },
    { data: av.mp3, name: 'a.mp3', type: 'audio/mpeg', mime: 'audio/mpeg', purpose: 'audio', dur: 0.026 },
    { data: av.ogg, name: 'a.ogg', mime: 'audio/ogg', purpose: 'audio', fields: { purpose: 'audio' } },
  ];
  for (const c of cases) {
    const r = await upload({ data: c.data, name: c.name, type: c.type }, { fields: c.fields });
    assert.equal(r.status, 201, `${c.name}: ${r.text}`);
    const m = r.body;
    assert.equal(m.mime_type, c.mime, c.name);
    // images are stored re-encoded (media-corpus.test.mjs checks how);
    // sha256 and size describe the stored copy
    const stored = c.w ? readFileSync(objPath(m.sha256)) : c.data;
    assert.equal(m.size, stored.length);
    assert.equal(m.sha256, sha256(stored));
    assert.equal(m.filename, c.name);
    assert.equal(m.purpose, c.purpose);
    assert.equal(m.width, c.w ?? null);
    assert.equal(m.height, c.h ?? null);
    // durations from frame headers (AMR, ADTS frames, MP3 CBR); these
    // MP4s have no moov and the Ogg page no granule: unknown
    assert.equal(m.duration_s, c.dur ?? null, c.name);
    if (!c.w) assert.equal(m.thumbnail_url, null);
    assert.equal(typeof m.uploaded_by, 'number');
    assert.match(m.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(m.url, new RegExp(`^/api/v1/media/${m.id}/content\\?exp=\\d+&sig=[A-Za-z0-9_-]{43}$`));
    assert.ok(existsSync(objPath(m.sha256)), `${c.name} stored`);
    assert.deepEqual(readFileSync(objPath(m.sha256)), stored);
    const g = await srv.request('GET', `${M}/${m.id}`, { token: agentTok });
    assert.equal(g.status, 200);
    assert.equal(g.body.sha256, m.sha256);
  }
});

test('bad files are refused with the right code and nothing is stored', async () => {
  const huge = Buffer.concat([png, Buffer.alloc(5 * 1024 * 1024 + 1 - png.length)]);
  const bigSticker = Buffer.concat([webp, Buffer.alloc(512001 - webp.length)]);
  const cases = [
    [{ data: elf, name: 'cat.png', type: 'image/png' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: elf, name: 'cat.png' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: html, name: 'x.png', type: 'image/png' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: html, name: 'x.html' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: svg, name: 'x.png', type: 'image/png' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: svg, name: 'x.svg' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: png, name: 'x.jpg', type: 'image/jpeg' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: pdf(), name: 'x.pdf' }, { purpose: 'image' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: av.mp4, name: 'x.mp3', type: 'audio/mpeg' }, {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    // a zip bomb named .docx is a zip, not a Word document (never unpacked)
    [{ data: bomb, name: 'report.docx', type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document' },
      { purpose: 'document' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: bomb, name: 'report.docx' }, { purpose: 'document' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [{ data: png.subarray(0, 200), name: 'cut.png', type: 'image/png' }, {}, 422, 'VALIDATION_ERROR', 'INVALID_FORMAT'],
    [{ data: pngClaiming(50000, 50000), name: 'bomb.png', type: 'image/png' }, {}, 422, 'VALIDATION_ERROR', 'TOO_LARGE'],
    [{ data: Buffer.alloc(0), name: 'empty.png' }, {}, 422, 'VALIDATION_ERROR', 'EMPTY'],
    [{ data: huge, name: 'huge.png', type: 'image/png' }, {}, 413, 'PAYLOAD_TOO_LARGE'],
    [{ data: bigSticker, name: 'big.webp' }, { purpose: 'sticker' }, 413, 'PAYLOAD_TOO_LARGE'],
    [{ data: png, name: 'a.png' }, { purpose: 'nonsense' }, 422, 'VALIDATION_ERROR', 'INVALID_CHOICE'],
  ];
  for (const [file, fields, status, code, fieldCode] of cases) {
    const r = await upload(file, { fields });
    const e = assertEnvelope(assert, r, status, code);
    if (fieldCode) assert.equal(e.errors[0].code, fieldCode, `${file.name}: ${r.text}`);
    // Bytes no earlier test stored are nowhere in the store, and no
    // temporary file is left behind.
    if (file.data !== png && file.data !== av.mp4 && file.name !== 'x.pdf')
      assert.ok(!existsSync(objPath(sha256(file.data))), `${file.name} not stored`);
    assert.deepEqual(readdirSync(join(storeDir, 'tmp')), []);
  }
  const r = await upload({ data: png, name: 'a.png', field: 'other' });
  assert.equal(assertEnvelope(assert, r, 422, 'VALIDATION_ERROR').errors[0].field, 'file');
  const nm = await srv.request('POST', `${M}/upload`, { token: adminTok, json: { file: 'x' } });
  assertEnvelope(assert, nm, 415, 'UNSUPPORTED_MEDIA_TYPE');
  // libvips' complaints about the broken files reach the structured log
  // only, never raw stderr/stdout.
  assert.doesNotMatch(srv.output, /VIPS-WARNING|VIPS-CRITICAL|libmagic/);
});

test('the same bytes are stored once; the last delete removes them', async () => {
  const doc = pdf('dedupe');
  const a = await upload({ data: doc, name: 'one.pdf' });
  const b = await upload({ data: doc, name: 'two.pdf' }, { token: agentTok });
  assert.equal(a.status, 201); assert.equal(b.status, 201);
  assert.notEqual(a.body.id, b.body.id);
  assert.equal(a.body.sha256, b.body.sha256);
  assert.ok(existsSync(objPath(a.body.sha256)));

  assertEnvelope(assert, await srv.request('DELETE', `${M}/${a.body.id}`, { token: agentTok }), 403, 'FORBIDDEN');
  let d = await srv.request('DELETE', `${M}/${a.body.id}`, { token: adminTok });
  assert.equal(d.status, 204, d.text);
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.body.id}`, { token: adminTok }), 404, 'NOT_FOUND');
  assert.ok(existsSync(objPath(a.body.sha256)), 'still referenced by the second row');
  const c = await get(`${M}/${b.body.id}/content`, { token: agentTok });
  assert.equal(c.status, 200);
  assert.deepEqual(c.bytes, doc);

  d = await srv.request('DELETE', `${M}/${b.body.id}`, { token: adminTok });
  assert.equal(d.status, 204);
  assert.ok(!existsSync(objPath(a.body.sha256)), 'removed with the last row');
  assertEnvelope(assert, await srv.request('DELETE', `${M}/${b.body.id}`, { token: adminTok }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', `${M}/abc`, { token: adminTok }), 404, 'NOT_FOUND');
});

test('concurrent uploads of the same bytes and deletes never lose the file', async () => {
  for (let round = 0; round < 5; round++) {
    const doc = pdf(`race-${round}`);
    const first = await upload({ data: doc, name: 'first.pdf' });
    assert.equal(first.status, 201);
    const [del, ...ups] = await Promise.all([
      srv.request('DELETE', `${M}/${first.body.id}`, { token: adminTok }),
      ...Array.from({ length: 4 }, (_, i) => upload({ data: doc, name: `r${i}.pdf` }))]);
    assert.equal(del.status, 204);
    for (const u of ups) {
      assert.equal(u.status, 201, u.text);
      const c = await get(`${M}/${u.body.id}/content`, { token: agentTok });
      assert.equal(c.status, 200);
      assert.deepEqual(c.bytes, doc);
    }
    for (const u of ups) assert.equal((await srv.request('DELETE', `${M}/${u.body.id}`, { token: adminTok })).status, 204);
    assert.ok(!existsSync(objPath(sha256(doc))));
  }
});

test('a body over body_memory_max (1 MiB) is read from the host\'s file', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 7);
  for (let i = 0; i < big.length; i++) big[i] = 0x61 + ((i * 7) % 26);
  for (let i = 80; i < big.length; i += 81) big[i] = 0x0a;
  const r = await upload([{ data: big, name: 'big.txt', type: 'text/plain' }, { data: png, name: 'after.png' }],
    { path: `${M}/bulk-upload`, fields: { purpose: 'document' } });
  assert.equal(r.status, 200, r.text);
  const [t, i] = r.body.data;
  assert.equal(t.status, 201, JSON.stringify(t));
  assert.equal(t.media.size, big.length);
  assert.equal(t.media.sha256, sha256(big));
  assert.deepEqual(readFileSync(objPath(t.media.sha256)), big);
  // purpose document does not take images
  assert.equal(i.status, 415);
  const c = await get(`${M}/${t.media.id}/content`, { token: agentTok, headers: { range: 'bytes=1048576-2097151' } });
  assert.equal(c.status, 206);
  assert.equal(c.headers.get('content-range'), `bytes 1048576-2097151/${big.length}`);
  assert.deepEqual(c.bytes, big.subarray(1048576, 2097152));
  const whole = await get(`${M}/${t.media.id}/content`, { token: agentTok });
  assert.equal(whole.status, 200);
  assert.equal(sha256(whole.bytes), sha256(big));
});

// The worker's peak resident memory (VmHWM) and its open descriptors.
const peakRssKb = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

// 100 MB of text (purpose document's limit is 104,857,600 bytes), random
// letters so that a range in the wrong place cannot match.
let hundred;
async function uploadHundred() {
  if (hundred) return hundred;
  const data = randomBytes(100 * 1000 * 1000);
  for (let i = 0; i < data.length; i++) data[i] = (i % 81) === 80 ? 0x0a : 0x61 + (data[i] % 26);
  const r = await upload({ data, name: 'hundred.txt', type: 'text/plain' }, { fields: { purpose: 'document' } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.size, data.length);
  hundred = { data, id: r.body.id, sha: sha256(data) };
  return hundred;
}

test('a 100 MB file is streamed whole and as a middle range, the worker\'s memory bounded', async () => {
  const [pid] = await waitWorkerPids(srv, 1);
  const h = await uploadHundred();
  const p = `${M}/${h.id}/content`;
  // Once small first, so that what a first download allocates is counted before.
  let r = await get(p, { token: agentTok, headers: { range: 'bytes=0-99999' } });
  assert.equal(r.status, 206);
  const before = peakRssKb(pid);
  r = await get(p, { token: agentTok });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-length'), String(h.data.length));
  assert.equal(r.bytes.length, h.data.length);
  assert.equal(sha256(r.bytes), h.sha);
  const growth = peakRssKb(pid) - before;
  assert.ok(growth < 16 * 1024, `the worker's peak RSS grew by ${growth} kB`);
  const a = 33 * 1000 * 1000 + 17, b = 63 * 1000 * 1000 + 4;
  r = await get(p, { token: agentTok, headers: { range: `bytes=${a}-${b}` } });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get('content-range'), `bytes ${a}-${b}/${h.data.length}`);
  assert.equal(r.headers.get('content-length'), String(b - a + 1));
  assert.equal(sha256(r.bytes), sha256(h.data.subarray(a, b + 1)));
  // HEAD: the headers, no body, and the descriptor is not kept.
  const res = await fetch(srv.url + p, { method: 'HEAD', headers: { authorization: `Bearer ${agentTok}` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), String(h.data.length));
});

test('a client that goes away mid-download leaves no descriptor open', async () => {
  const [pid] = await waitWorkerPids(srv, 1);
  const h = await uploadHundred();
  const before = fdCount(pid);
  const sock = connect(srv.port ?? new URL(srv.url).port, '127.0.0.1');
  await new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  let got = 0;
  const some = new Promise((res) => sock.on('data', (d) => { got += d.length; if (got > 1024 * 1024) res(); }));
  sock.write(`GET ${M}/${h.id}/content HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${agentTok}\r\n\r\n`);
  await some;
  sock.pause();
  // The connection and the file are open while the body is on its way.
  assert.ok(fdCount(pid) >= before + 2, `${fdCount(pid)} descriptors, ${before} before`);
  sock.destroy();
  // Idle keep-alive connections of earlier requests may close meanwhile.
  assert.ok(await poll(() => fdCount(pid) <= before, { timeout: 10000, interval: 50 }),
    `${fdCount(pid)} descriptors, ${before} before`);
  // And the worker still answers.
  const r = await get(`${M}/${h.id}/content`, { token: agentTok, headers: { range: 'bytes=5-9' } });
  assert.deepEqual(r.bytes, h.data.subarray(5, 10));
});

test('downloads: headers, ranges, If-None-Match', async () => {
  const data = Buffer.alloc(1000);
  for (let i = 0; i < data.length; i++) data[i] = 0x41 + (i % 26);
  const up = await upload({ data, name: 'evil"; name=.txt', type: 'text/plain' }, { fields: { purpose: 'document' } });
  assert.equal(up.status, 201, up.text);
  // (the client sends the quote as %22; the semicolon is replaced)
  assert.equal(up.body.filename, 'evil%22_ name=.txt');
  const p = `${M}/${up.body.id}/content`;

  let r = await get(p, { token: agentTok });
  assert.equal(r.status, 200);
  assert.deepEqual(r.bytes, data);
  assert.equal(r.headers.get('content-type'), 'text/plain');
  assert.equal(r.headers.get('content-disposition'), 'attachment; filename="evil%22_ name=.txt"');
  assert.equal(r.headers.get('etag'), `"${sha256(data)}"`);
  assert.match(r.headers.get('cache-control'), /private/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('accept-ranges'), 'bytes');

  r = await get(p, { token: agentTok, headers: { range: 'bytes=0-0' } });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get('content-range'), 'bytes 0-0/1000');
  assert.deepEqual(r.bytes, data.subarray(0, 1));

  r = await get(p, { token: agentTok, headers: { range: 'bytes=-100' } });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get('content-range'), 'bytes 900-999/1000');
  assert.deepEqual(r.bytes, data.subarray(900));

  r = await get(p, { token: agentTok, headers: { range: 'bytes=990-' } });
  assert.equal(r.status, 206);
  assert.deepEqual(r.bytes, data.subarray(990));

  r = await get(p, { token: agentTok, headers: { range: 'bytes=1000-' } });
  assert.equal(r.status, 416);
  assert.equal(r.headers.get('content-range'), 'bytes */1000');

  r = await get(p, { token: agentTok, headers: { 'if-none-match': `"${sha256(data)}"` } });
  assert.equal(r.status, 304);
  assert.equal(r.bytes.length, 0);
  r = await get(p, { token: agentTok, headers: { 'if-none-match': '"other"' } });
  assert.equal(r.status, 200);

  const img = await upload({ data: png, name: 'pic.png' });
  r = await get(`${M}/${img.body.id}/content`, { token: agentTok });
  assert.equal(r.headers.get('content-type'), 'image/png');
  assert.equal(r.headers.get('content-disposition'), 'inline; filename="pic.png"');
  // a document has no thumbnail
  assertEnvelope(assert, await srv.request('GET', `${M}/${up.body.id}/thumbnail`, { token: agentTok }), 404, 'NOT_FOUND');
});

test('signed URLs: valid without a token; tampered, for another id or expired are 403', async () => {
  const a = (await upload({ data: pdf('signed-a'), name: 'a.pdf' })).body;
  const b = (await upload({ data: pdf('signed-b'), name: 'b.pdf' })).body;
  let r = await get(a.url);
  assert.equal(r.status, 200);
  assert.deepEqual(r.bytes, pdf('signed-a'));
  assert.equal(r.headers.get('content-disposition'), 'inline; filename="a.pdf"');

  const u = new URL(a.url, srv.url);
  const sig = u.searchParams.get('sig');
  const exp = u.searchParams.get('exp');
  const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
  for (const q of [`exp=${exp}&sig=${flipped}`, `exp=${Number(exp) + 1}&sig=${sig}`,
    `exp=${exp}`, `sig=${sig}`, `exp=1&sig=${sig}`, `exp=x&sig=${sig}`]) {
    assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/content?${q}`), 403, 'FORBIDDEN');
  }
  // another item's signature
  assertEnvelope(assert, await srv.request('GET', `${M}/${b.id}/content?exp=${exp}&sig=${sig}`), 403, 'FORBIDDEN');
  // a signature opens exactly the path it was made for: not the same
  // item's thumbnail, and a signature is never a fall-back to a bearer
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/thumbnail?exp=${exp}&sig=${sig}`), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', `${M}/${b.id}/thumbnail?exp=${exp}&sig=${sig}`), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/content?exp=${exp}&sig=${flipped}`, { token: agentTok }), 403, 'FORBIDDEN');
  // the same URL with other characters for the same path is another path
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/content/?exp=${exp}&sig=${sig}`), 404, 'NOT_FOUND');

  // no signature: the bearer's media.read decides
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/content`), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/content`, { token: nopermTok }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', `${M}/${a.id}/thumbnail`), 401, 'UNAUTHENTICATED');
});

test('a signed URL stops working when it expires', async () => {
  const dir = freshDir('media');
  const s2 = await startServer({ workers: 1, plugins: { ...TEST_PLUGINS, media: mediaConf(dir, { url_ttl: '2' }) } });
  try {
    const tok = await s2.login();
    const fd = form([{ data: pdf('expiring'), name: 'e.pdf' }]);
    const res = await fetch(`${s2.url}${M}/upload`, { method: 'POST', body: fd, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(res.status, 201);
    const m = await res.json();
    const first = await fetch(s2.url + m.url);
    assert.equal(first.status, 200);
    // the same URL, unchanged, until its time has passed
    const r = await poll(async () => {
      const x = await s2.request('GET', m.url);
      return x.status === 403 ? x : null;
    });
    assertEnvelope(assert, r, 403, 'FORBIDDEN');
  } finally { await s2.stop(); }
});

test('bulk upload judges each file on its own', async () => {
  const r = await upload([{ data: png, name: 'ok.png' }, { data: elf, name: 'tool.png', type: 'image/png' },
    { data: Buffer.alloc(0), name: 'empty.txt' }, { data: pdf('bulk'), name: 'ok.pdf' }], { path: `${M}/bulk-upload` });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => [x.filename, x.status]),
    [['ok.png', 201], ['tool.png', 415], ['empty.txt', 422], ['ok.pdf', 201]]);
  assert.equal(r.body.data[0].media.mime_type, 'image/png');
  assert.equal(r.body.data[1].error.code, 'UNSUPPORTED_MEDIA_TYPE');
  assert.equal(r.body.data[1].media, undefined);
  assert.equal(r.body.data[2].error.code, 'VALIDATION_ERROR');
  assert.equal(r.body.data[3].media.sha256, sha256(pdf('bulk')));
  const none = await upload({ data: png, name: 'x.png', field: 'other' }, { path: `${M}/bulk-upload` });
  assertEnvelope(assert, none, 422, 'VALIDATION_ERROR');
});

test('permissions: upload needs media.upload, reads media.read, delete media.manage', async () => {
  assertEnvelope(assert, await upload({ data: png, name: 'a.png' }, { token: null }), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await upload({ data: png, name: 'a.png' }, { token: nopermTok }), 403, 'FORBIDDEN');
  const m = await upload({ data: png, name: 'a.png' }, { token: agentTok });
  assert.equal(m.status, 201);
  assertEnvelope(assert, await srv.request('GET', `${M}/${m.body.id}`), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await srv.request('GET', `${M}/${m.body.id}`, { token: nopermTok }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('DELETE', `${M}/${m.body.id}`, { token: nopermTok }), 403, 'FORBIDDEN');
  const api = await srv.request('GET', '/api/v1/openapi.json');
  for (const [path, methods] of [['/api/v1/media/upload', ['post']], ['/api/v1/media/bulk-upload', ['post']],
    ['/api/v1/media/{id}', ['get', 'delete']], ['/api/v1/media/{id}/content', ['get']], ['/api/v1/media/{id}/thumbnail', ['get']]])
    for (const m of methods) assert.ok(api.body.paths[path]?.[m], `${m} ${path} in openapi.json`);
  const perms = await srv.request('GET', '/api/v1/permissions', { token: agentTok });
  const names = perms.body.data.filter((p) => p.plugin === 'media').map((p) => p.name).sort();
  assert.deepEqual(names, ['media.manage', 'media.read', 'media.upload']);
});

test('privacy: a customer\'s uploads are exported and erased, shared bytes kept', async () => {
  const customer = 424242;
  const shared = pdf('privacy-shared');
  const own = pdf('privacy-own');
  const bad = await upload({ data: own, name: 'x.pdf' }, { fields: { customer_id: 'abc' } });
  assert.equal(assertEnvelope(assert, bad, 422, 'VALIDATION_ERROR').errors[0].field, 'customer_id');
  const s1 = await upload({ data: shared, name: 'shared.pdf' }, { fields: { customer_id: customer } });
  const o1 = await upload({ data: own, name: 'own.pdf' }, { fields: { customer_id: customer } });
  const other = await upload({ data: shared, name: 'shared-too.pdf' });
  assert.equal(s1.status, 201); assert.equal(o1.status, 201); assert.equal(other.status, 201);

  const ex = await srv.request('GET', `/api/v1/privacy/export?customer_id=${customer}`, { token: admin });
  assert.equal(ex.status, 200, ex.text);
  assert.deepEqual(ex.body.media.media.map((x) => x.filename), ['shared.pdf', 'own.pdf']);
  assert.ok(!JSON.stringify(ex.body.media).includes('%PDF'), 'metadata only');

  const del = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { customer_id: customer } });
  assert.equal(del.status, 200, del.text);
  assert.equal(del.body.deleted.media, 2);
  assertEnvelope(assert, await srv.request('GET', `${M}/${o1.body.id}`, { token: admin }), 404, 'NOT_FOUND');
  assert.ok(!existsSync(objPath(sha256(own))), 'own bytes gone');
  assert.ok(existsSync(objPath(sha256(shared))), 'bytes another row names are kept');
  assert.equal((await srv.request('GET', `${M}/${other.body.id}`, { token: admin })).status, 200);
  const again = await srv.request('GET', `/api/v1/privacy/export?customer_id=${customer}`, { token: admin });
  assert.deepEqual(again.body.media, { media: [] });
});

test('the media.store service: put inside the caller\'s transaction, signed URL, metadata, open', async () => {
  const put = (json) => srv.request('POST', '/api/v1/media-client/put', { json });
  let r = await put({ text: 'stored through the service\n', purpose: 'document', filename: 'dir/svc.txt', customer_id: 5150 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 201, r.text);
  assert.ok(r.body.id > 0);
  assert.equal(r.body.media.id, r.body.id);
  assert.equal(r.body.media.mime_type, 'text/plain');
  assert.equal(r.body.media.filename, 'svc.txt');
  assert.equal(r.body.media.uploaded_by, null);
  assert.equal(r.body.bytes, 'stored through the service\n');
  assert.equal(r.body.size, 27);
  const g = await get(r.body.url);
  assert.equal(g.status, 200);
  assert.equal(g.bytes.toString(), 'stored through the service\n');
  const ex = await srv.request('GET', '/api/v1/privacy/export?customer_id=5150', { token: admin });
  assert.deepEqual(ex.body.media.media.map((x) => x.id), [r.body.id]);

  r = await put({ text: 'not a picture', declared_type: 'image/png' });
  assert.deepEqual([r.body.id, r.body.status], [-1, 415]);
  r = await put({ text: '' });
  assert.deepEqual([r.body.id, r.body.status], [-1, 422]);
  r = await put({ text: 'plain words', purpose: 'image' });
  assert.deepEqual([r.body.id, r.body.status], [-1, 415]);

  // the caller rolls back: no row
  r = await put({ text: 'rolled back\n', purpose: 'document', rollback: true });
  assert.equal(r.body.status, 201);
  assertEnvelope(assert, await srv.request('GET', `${M}/${r.body.id}`, { token: admin }), 404, 'NOT_FOUND');
});
