// Staff avatars: POST /api/v1/users/me/avatar (multipart, one file field
// `avatar`) and GET /api/v1/users/{id}/avatar, served by the media plugin
// (plugins/media/avatar.c): the server here loads it, and without it the
// routes are 404.  Every accepted upload comes back as a 256x256 JPEG the
// plugin encoded itself, with no metadata, stored as a media item; bad
// uploads are refused in the error envelope; decoding happens inside the
// worker sandbox, so the output must show no sandbox violation and the
// same workers keep serving.
//
// Images are made here (PNG with node:zlib) or read from tests/fixtures/:
// avatar-gps.jpg (320x240, EXIF with GPS position, camera make, artist, a
// JPEG comment and XMP: made with vips and exiftool), avatar.webp and
// avatar.gif (160x120, made with vips).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, assertEnvelope, ROOT, ADMIN_PASSWORD, TEST_PLUGINS, freshDir }
  from './lib/harness.mjs';
import { rawRequest, createUnprivilegedUser } from './lib/helpers.mjs';
import { pngChunk } from './lib/media.mjs';

const UPLOAD = '/api/v1/users/me/avatar';
const fixture = (name) => readFileSync(join(ROOT, 'tests/fixtures', name));
let srv, token;

before(async () => {
  srv = await startServer({ workers: 2,
    plugins: { ...TEST_PLUGINS, media: { dir: freshDir('media') } } });
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

// --- images ----------------------------------------------------------------

// colour: 0 grey, 2 RGB, 6 RGBA (8 bits).  idat: compressed scanlines.
function pngRaw(w, h, colour, idat) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = colour;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}
// A gradient (or noise) PNG: every scanline has filter byte 0.
function png(w, h, { alpha = false, noise = false } = {}) {
  const bpp = alpha ? 4 : 3;
  const raw = noise ? randomBytes((w * bpp + 1) * h) : Buffer.alloc((w * bpp + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * bpp + 1);
    raw[row] = 0;
    if (noise) continue;
    for (let x = 0; x < w; x++) {
      const p = row + 1 + x * bpp;
      raw[p] = (x * 255 / w) | 0; raw[p + 1] = (y * 255 / h) | 0; raw[p + 2] = 128;
      if (alpha) raw[p + 3] = x < w / 2 ? 255 : 64;
    }
  }
  return pngRaw(w, h, alpha ? 6 : 2, deflateSync(raw, { level: noise ? 0 : 6 }));
}

// JPEG segments up to the scan: [{marker, data}].
function jpegSegments(buf) {
  assert.equal(buf.readUInt16BE(0), 0xffd8, 'not a JPEG (no SOI)');
  const segs = [];
  let off = 2;
  while (off + 4 <= buf.length) {
    assert.equal(buf[off], 0xff, `bad JPEG marker at ${off}`);
    const marker = buf[off + 1];
    const len = buf.readUInt16BE(off + 2);
    segs.push({ marker, data: buf.subarray(off + 4, off + 2 + len) });
    if (marker === 0xda) break;	// start of scan: entropy-coded data follows
    off += 2 + len;
  }
  return segs;
}
function jpegSize(buf) {
  const sof = jpegSegments(buf).find((s) => s.marker >= 0xc0 && s.marker <= 0xcf &&
    ![0xc4, 0xc8, 0xcc].includes(s.marker));
  assert.ok(sof, 'no SOF marker');
  return { height: sof.data.readUInt16BE(1), width: sof.data.readUInt16BE(3) };
}
// No EXIF/XMP (APP1), no ICC (APP2), no other APPn but JFIF, no comment.
function assertNoMetadata(buf) {
  for (const s of jpegSegments(buf)) {
    const m = s.marker.toString(16);
    assert.ok(!(s.marker >= 0xe1 && s.marker <= 0xef), `APP segment 0x${m} kept`);
    assert.notEqual(s.marker, 0xfe, 'JPEG comment kept');
  }
  for (const needle of ['Exif', 'GPS', 'http://ns.adobe.com/xap', 'Secret Person',
    'secret comment', 'SwitchboardTestCam']) {
    assert.equal(buf.indexOf(needle), -1, `"${needle}" found in the stored image`);
  }
}

// --- requests --------------------------------------------------------------

// A multipart/form-data body from [{name, filename?, type?, data}].
function multipart(parts, boundary = `----sbtest${randomBytes(8).toString('hex')}`) {
  const chunks = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += '\r\n';
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(head + '\r\n'), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

function upload(data, { type = 'image/png', filename = 'a.png', name = 'avatar', as = token } = {}) {
  const m = multipart([{ name, filename, type, data }]);
  return srv.request('POST', UPLOAD, { token: as, body: m.body,
    headers: { 'content-type': m.type } });
}

async function getAvatar(id, { headers = {}, as = token } = {}) {
  const res = await fetch(`${srv.url}/api/v1/users/${id}/avatar`, {
    headers: { authorization: `Bearer ${as}`, ...headers } });
  return { status: res.status, headers: res.headers, raw: Buffer.from(await res.arrayBuffer()) };
}

async function uploadOk(data, opts) {
  const r = await upload(data, opts);
  assert.equal(r.status, 200, r.text);
  assert.match(r.body.avatar_url, /^\/api\/v1\/users\/\d+\/avatar$/);
  assert.equal(r.body.content_type, 'image/jpeg');
  assert.equal(r.body.width, 256);
  assert.equal(r.body.height, 256);
  assert.match(r.body.sha256, /^[0-9a-f]{64}$/);
  assert.ok(Number.isInteger(r.body.media_id) && r.body.media_id > 0);
  return r.body;
}

// The stored image, checked from its bytes, and its ETag.
async function fetchStored(body) {
  const id = body.avatar_url.split('/')[4];
  const g = await getAvatar(id);
  assert.equal(g.status, 200);
  assert.equal(g.headers.get('content-type'), 'image/jpeg');
  assert.equal(g.headers.get('etag'), `"${body.sha256}"`);
  assert.equal(g.headers.get('cache-control'), 'private, max-age=300');
  assert.equal(createHash('sha256').update(g.raw).digest('hex'), body.sha256);
  assert.deepEqual(jpegSize(g.raw), { width: 256, height: 256 });
  assertNoMetadata(g.raw);
  return g;
}

// --- tests -----------------------------------------------------------------

test('a PNG is stored as a 256x256 JPEG and served back', async () => {
  const body = await uploadOk(png(300, 200));
  assert.equal(body.avatar_url, '/api/v1/users/1/avatar');
  await fetchStored(body);
  // Alpha is flattened: an RGBA PNG works too (JPEG has no alpha).
  await fetchStored(await uploadOk(png(64, 64, { alpha: true })));
});

test('a JPEG with EXIF GPS data is stored without any metadata', async () => {
  const src = fixture('avatar-gps.jpg');
  // The fixture really carries what must go.
  assert.ok(jpegSegments(src).some((s) => s.marker === 0xe1 &&
    s.data.subarray(0, 4).toString('latin1') === 'Exif'));
  assert.ok(src.indexOf('GPS') !== -1 || src.indexOf('SwitchboardTestCam') !== -1);
  const body = await uploadOk(src, { type: 'image/jpeg', filename: 'photo.jpg' });
  await fetchStored(body);
});

test('WebP and GIF are accepted, and a client that only says octet-stream', async () => {
  await fetchStored(await uploadOk(fixture('avatar.webp'), { type: 'image/webp', filename: 'a.webp' }));
  await fetchStored(await uploadOk(fixture('avatar.gif'), { type: 'image/gif', filename: 'a.gif' }));
  await uploadOk(png(32, 32), { type: 'application/octet-stream' });
  await uploadOk(png(32, 32), { type: null });
});

test('an image over the host default body limit (1 MiB) but under 5 MiB is accepted', async () => {
  const big = png(1000, 700, { noise: true });
  assert.ok(big.length > 2 * 1024 * 1024, `only ${big.length} bytes`);
  await fetchStored(await uploadOk(big));
});

test('ETag: If-None-Match gives 304, a replaced avatar a new tag; HEAD has no body', async () => {
  const first = await uploadOk(png(50, 80));
  const etag = `"${first.sha256}"`;
  let g = await getAvatar(1, { headers: { 'if-none-match': etag } });
  assert.equal(g.status, 304);
  assert.equal(g.raw.length, 0);
  assert.equal(g.headers.get('etag'), etag);
  assert.equal(g.headers.get('cache-control'), 'private, max-age=300');
  g = await getAvatar(1, { headers: { 'if-none-match': `"nope", W/${etag}` } });
  assert.equal(g.status, 304, 'a list and a weak tag match too');
  g = await getAvatar(1, { headers: { 'if-none-match': '"0000"' } });
  assert.equal(g.status, 200);

  const h = await rawRequest(srv.port, { method: 'HEAD', path: '/api/v1/users/1/avatar',
    headers: { authorization: `Bearer ${token}` }, untilClose: true });
  assert.equal(h.status, 200);
  assert.equal(h.raw.length, 0);
  assert.equal(h.headers.etag, etag);

  const second = await uploadOk(png(80, 50));
  assert.notEqual(second.sha256, first.sha256);
  g = await getAvatar(1, { headers: { 'if-none-match': etag } });
  assert.equal(g.status, 200, 'the old tag no longer matches');
  assert.equal(g.headers.get('etag'), `"${second.sha256}"`);
});

test('a text file labelled image/png is 415; so is a PNG declared as JPEG', async () => {
  let r = await upload(Buffer.from('just some text, not a picture\n'), { type: 'image/png' });
  let e = assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  assert.equal(e.errors[0].field, 'avatar');
  r = await upload(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), { type: 'image/svg+xml' });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  r = await upload(png(20, 20), { type: 'image/jpeg', filename: 'a.jpg' });
  e = assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  assert.match(e.message, /does not match/);
});

test('a truncated PNG or JPEG is 422 INVALID_FORMAT', async () => {
  const full = png(400, 300, { noise: true });
  let r = await upload(full.subarray(0, Math.floor(full.length / 2)));
  let e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(e.errors.map((x) => [x.field, x.code]), [['avatar', 'INVALID_FORMAT']]);
  const jpg = fixture('avatar-gps.jpg');
  r = await upload(jpg.subarray(0, jpg.length - 4000), { type: 'image/jpeg' });
  e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(e.errors[0].code, 'INVALID_FORMAT');
  // Only a signature.
  r = await upload(full.subarray(0, 8));
  assert.ok([415, 422].includes(r.status), r.text);
});

test('decompression bombs are refused (422 TOO_LARGE) without harming the worker', async () => {
  // A header claiming 100000 x 100000 pixels with almost no data.
  const claim = pngRaw(100000, 100000, 0, deflateSync(Buffer.alloc(1000)));
  let r = await upload(claim);
  let e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(e.errors.map((x) => [x.field, x.code]), [['avatar', 'TOO_LARGE']]);
  // A real one: 8000 x 8000 grey (64 MB of pixels) in about 60 KB.
  const rows = Buffer.alloc(8001 * 8000);
  const bomb = pngRaw(8000, 8000, 0, deflateSync(rows, { level: 9 }));
  assert.ok(bomb.length < 200 * 1024);
  r = await upload(bomb);
  e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(e.errors[0].code, 'TOO_LARGE');
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
});

test('a missing or empty avatar field is 422 REQUIRED', async () => {
  let m = multipart([{ name: 'picture', filename: 'a.png', type: 'image/png', data: png(10, 10) }]);
  let r = await srv.request('POST', UPLOAD, { token, body: m.body, headers: { 'content-type': m.type } });
  let e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.deepEqual(e.errors.map((x) => [x.field, x.code]), [['avatar', 'REQUIRED']]);
  r = await upload(Buffer.alloc(0));
  e = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(e.errors[0].code, 'REQUIRED');
  // An empty form.
  m = multipart([]);
  r = await srv.request('POST', UPLOAD, { token, body: m.body, headers: { 'content-type': m.type } });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
});

test('a body that is not multipart/form-data is 415; a broken multipart body 400', async () => {
  let r = await srv.request('POST', UPLOAD, { token, json: { avatar: 'x' } });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  r = await srv.request('POST', UPLOAD, { token, body: png(10, 10), headers: { 'content-type': 'image/png' } });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  r = await rawRequest(srv.port, { method: 'POST', path: UPLOAD, body: png(10, 10),
    headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 415, r.text);
  r = await srv.request('POST', UPLOAD, { token, body: 'x',
    headers: { 'content-type': 'multipart/form-data' } });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  r = await srv.request('POST', UPLOAD, { token, body: 'no delimiter here',
    headers: { 'content-type': 'multipart/form-data; boundary=abc' } });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
});

test('anonymous callers get 401 on both routes', async () => {
  const m = multipart([{ name: 'avatar', filename: 'a.png', type: 'image/png', data: png(10, 10) }]);
  let r = await srv.request('POST', UPLOAD, { body: m.body, headers: { 'content-type': m.type } });
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
  r = await srv.request('GET', '/api/v1/users/1/avatar');
  assertEnvelope(assert, r, 401, 'UNAUTHENTICATED');
});

test('a body over 5 MiB is 413', async () => {
  const r = await rawRequest(srv.port, { method: 'POST', path: UPLOAD,
    headers: { authorization: `Bearer ${token}`,
      'content-type': 'multipart/form-data; boundary=abc' },
    bodyLength: 5 * 1024 * 1024 + 1 });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.body.code, 'PAYLOAD_TOO_LARGE');
});

test('staff read each other\'s avatars; each uploads only their own', async () => {
  const otherId = Number(await createUnprivilegedUser(srv, 'avatar_other'));
  const other = await srv.login('avatar_other', ADMIN_PASSWORD);
  const mine = await uploadOk(png(120, 90), { as: other });
  assert.equal(mine.avatar_url, `/api/v1/users/${otherId}/avatar`);
  // The admin reads it; the other user reads the admin's.
  const g = await getAvatar(otherId);
  assert.equal(g.status, 200);
  assert.equal(g.headers.get('etag'), `"${mine.sha256}"`);
  assert.equal((await getAvatar(1, { as: other })).status, 200);
});

test('no avatar, or an id that is not a positive integer, is 404', async () => {
  const noAvatar = Number(await createUnprivilegedUser(srv, 'avatar_none'));
  for (const id of [noAvatar, 999999, 0, -1, 'abc', '1.5', '1e3', '%201', '99999999999999999999']) {
    const r = await srv.request('GET', `/api/v1/users/${id}/avatar`, { token });
    assertEnvelope(assert, r, 404, 'NOT_FOUND');
  }
});

test('the avatar is a media item (purpose avatar); a new one deletes the old item', async () => {
  const first = await uploadOk(png(40, 40));
  let m = await srv.request('GET', `/api/v1/media/${first.media_id}`, { token });
  assert.equal(m.status, 200, m.text);
  assert.equal(m.body.purpose, 'avatar');
  assert.equal(m.body.uploaded_by, 1);
  assert.equal(m.body.mime_type, 'image/jpeg');
  assert.equal(m.body.sha256, first.sha256);
  assert.deepEqual([m.body.width, m.body.height], [256, 256]);
  const second = await uploadOk(png(41, 40));
  assert.notEqual(second.media_id, first.media_id);
  m = await srv.request('GET', `/api/v1/media/${first.media_id}`, { token });
  assertEnvelope(assert, m, 404, 'NOT_FOUND');
  // Deleting the item through the media API removes the avatar.
  const d = await srv.request('DELETE', `/api/v1/media/${second.media_id}`, { token });
  assert.equal(d.status, 204, d.text);
  assertEnvelope(assert, await srv.request('GET', '/api/v1/users/1/avatar', { token }), 404, 'NOT_FOUND');
});

test('without the media plugin the avatar routes do not exist', async () => {
  const bare = await startServer({ workers: 1 });
  try {
    const t = await bare.login();
    const m = multipart([{ name: 'avatar', filename: 'a.png', type: 'image/png', data: png(10, 10) }]);
    let r = await bare.request('POST', UPLOAD, { token: t, body: m.body, headers: { 'content-type': m.type } });
    assertEnvelope(assert, r, 404, 'NOT_FOUND');
    r = await bare.request('GET', '/api/v1/users/1/avatar', { token: t });
    assertEnvelope(assert, r, 404, 'NOT_FOUND');
  } finally {
    await bare.stop();
  }
});

test('the OpenAPI document lists both routes', async () => {
  const r = await srv.request('GET', '/api/v1/openapi.json');
  assert.ok(r.body.paths['/api/v1/users/me/avatar']?.post);
  assert.ok(r.body.paths['/api/v1/users/{id}/avatar']?.get);
});

test('the workers survived everything inside the sandbox', async () => {
  for (let i = 0; i < 4; i++) {
    const r = await srv.request('GET', '/healthz', { headers: { connection: 'close' } });
    assert.equal(r.status, 200);
  }
  await uploadOk(png(30, 30));
  assert.doesNotMatch(srv.output, /sandbox violation|seccomp violation/);
  assert.doesNotMatch(srv.output, /exited with status|\) gone|died from/);
  assert.equal(srv.exited, null);
});
