// Multipart uploads through api->req_parts (ABI 1.3) and request bodies
// the host streams to a file ([host] body_memory_max): the test plugin
// tests/plugins/uploader.c answers, per part, its name, filename, type,
// length, where the host kept it (memory or file) and the SHA-256 of its
// bytes as read (pread() in 64 KiB chunks for a part in the file).
//
// Large bodies are generated here while they are sent (random bytes with
// text that starts like the boundary sprinkled in, so the parser's window
// has to slide over near-delimiters), hashed on the way out and compared
// with what the plugin read.  The worker's peak RSS is read from /proc
// before and after a 100 MB upload: a memory bound, not a timing assertion.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, assertEnvelope, testPlugin, TEST_PLUGINS, ROOT, freshDir } from './lib/harness.mjs';
import { rawRequest, poll, waitWorkerPids } from './lib/helpers.mjs';

const PARTS = '/api/v1/uploader/parts';
const MB = 1024 * 1024;
const IS_ROOT = process.getuid() === 0;
let srv, small;

before(async () => {
  // One worker: the RSS test must read the worker that took the upload.
  srv = await startServer({ workers: 1,
    plugins: { ...TEST_PLUGINS, uploader: testPlugin('uploader') } });
  // Everything over 4 KiB goes to a file: JSON, raw and multipart bodies
  // must read the same from there.
  // The avatar is the media plugin's: it reads the image from the body file.
  small = await startServer({ workers: 1, host: { body_memory_max: '4096' },
    plugins: { ...TEST_PLUGINS, uploader: testPlugin('uploader'), media: { dir: freshDir('media') } } });
});
after(async () => {
  await srv?.stop();
  await small?.stop();
});

// The body directory: in the workers' root (the chroot a root-run
// harness makes per server).
const bodyDir = (s) => join(s.dir, 'chroot', 'http-bodies');

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// A part: { name, value } (a text field) or { name, filename, type, size }
// (a file of `size` random bytes, made while sending).
function multipart(parts, boundary = `----sb${randomBytes(12).toString('hex')}`) {
  const heads = parts.map((p) => {
    let h = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) h += `; filename="${p.filename}"`;
    h += '\r\n';
    if (p.type) h += `Content-Type: ${p.type}\r\n`;
    return Buffer.from(h + '\r\n');
  });
  const tail = Buffer.from(`--${boundary}--\r\n`);
  let length = tail.length;
  parts.forEach((p, i) => {
    length += heads[i].length + 2 + (p.value !== undefined ? Buffer.byteLength(p.value) : p.size);
  });
  const hashes = parts.map(() => createHash('sha256'));
  // Text that looks like a delimiter but is not one (no CRLF after).
  const near = Buffer.from(`\r\n--${boundary}x`);
  async function* body() {
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      yield heads[i];
      if (p.value !== undefined) {
        const v = Buffer.from(p.value);
        hashes[i].update(v);
        yield v;
      } else {
        for (let sent = 0; sent < p.size;) {
          const n = Math.min(MB, p.size - sent);
          const b = randomBytes(n);
          // At the start and straddling 64 KiB marks, where windows end.
          if (n > near.length * 2) near.copy(b, 0);
          if (n > 65536 + near.length) near.copy(b, 65536 - 5);
          hashes[i].update(b);
          sent += n;
          yield b;
        }
      }
      yield Buffer.from('\r\n');
    }
    yield tail;
  }
  return { boundary, length, body, digests: () => hashes.map((h) => h.digest('hex')),
    contentType: `multipart/form-data; boundary=${boundary}` };
}

// Streams a generated multipart body; resolves to { status, body }.
function upload(s, parts, { path = PARTS } = {}) {
  const mp = multipart(parts);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: s.port, method: 'POST', path,
      headers: { 'content-type': mp.contentType, 'content-length': String(mp.length) } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body = null;
        try { body = JSON.parse(text); } catch { body = null; }
        resolve({ status: res.statusCode, text, body, digests: mp.digests() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    pipeline(Readable.from(mp.body()), req).catch(reject);
  });
}

function checkParts(r, parts, where) {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.parts.length, parts.length);
  r.body.parts.forEach((got, i) => {
    const p = parts[i];
    assert.equal(got.name, p.name);
    assert.equal(got.filename, p.filename ?? null);
    assert.equal(got.content_type, p.type ?? null);
    assert.equal(got.len, p.value !== undefined ? Buffer.byteLength(p.value) : p.size);
    assert.equal(got.where, where, `part ${p.name}`);
    assert.equal(got.sha256, r.digests[i], `part ${p.name} read back differently`);
  });
}

// The worker's peak resident memory (VmHWM): memory held during a request
// and freed after it counts too.
const peakRssKb = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

test('a small body is parsed in memory: a text field and two files', async () => {
  const parts = [
    { name: 'caption', value: 'holiday photos, día 1' },
    { name: 'a', filename: 'a.bin', type: 'application/octet-stream', size: 70000 },
    { name: 'b', filename: 'b.txt', type: 'text/plain', size: 1000 },
  ];
  checkParts(await upload(srv, parts), parts, 'memory');
});

test('a 40 MB body is streamed to a file and read there, part by part', async () => {
  const parts = [
    { name: 'caption', value: 'a large one' },
    { name: 'video', filename: 'clip.mp4', type: 'video/mp4', size: 25 * MB + 12345 },
    { name: 'doc', filename: 'report.pdf', type: 'application/pdf', size: 15 * MB - 777 },
  ];
  checkParts(await upload(srv, parts), parts, 'file');
});

test('an empty file part and a part without headers keep their place', async () => {
  const b = 'xyz';
  const body = `--${b}\r\nContent-Disposition: form-data; name="empty"; filename=""\r\n\r\n\r\n` +
    `--${b}\r\nContent-Disposition: form-data; name="t"\r\n\r\nv\r\n--${b}--\r\n`;
  const r = await srv.request('POST', PARTS, { body, headers: { 'content-type': `multipart/form-data; boundary=${b}` } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.parts.map((p) => [p.name, p.filename, p.len]), [['empty', '', 0], ['t', null, 1]]);
  assert.equal(r.body.parts[1].sha256, sha256('v'));
});

test('a malformed multipart body is 400, in memory and in a file', async () => {
  const b = 'bnd';
  const ct = { 'content-type': `multipart/form-data; boundary=${b}` };
  // No closing delimiter.
  let r = await srv.request('POST', PARTS, { body: `--${b}\r\nContent-Disposition: form-data; name="a"\r\n\r\nx`, headers: ct });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  // No Content-Disposition.
  r = await srv.request('POST', PARTS, { body: `--${b}\r\nContent-Type: text/plain\r\n\r\nx\r\n--${b}--\r\n`, headers: ct });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  // Over the small server's 4 KiB: on disk, unterminated header block.
  r = await small.request('POST', PARTS, { body: `--${b}\r\nContent-Disposition: form-data; name="a"\r\n` + 'X-Pad: y\r\n'.repeat(1000), headers: ct });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  // More than 256 parts.
  const many = Array.from({ length: 257 }, (_, i) => `--${b}\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\n${i}\r\n`).join('') + `--${b}--\r\n`;
  r = await srv.request('POST', PARTS, { body: many, headers: ct });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');
  assert.match(r.body.message, /256 parts/);
});

test('a body that is not multipart/form-data is 415', async () => {
  let r = await srv.request('POST', PARTS, { json: { a: 1 } });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  r = await srv.request('POST', PARTS, { body: 'x', headers: { 'content-type': 'multipart/form-data' } });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
  r = await small.request('POST', PARTS, { body: 'x'.repeat(10000), headers: { 'content-type': 'text/plain' } });
  assertEnvelope(assert, r, 415, 'UNSUPPORTED_MEDIA_TYPE');
});

test('a body over the route limit (128 MiB) is 413 before it is read', async () => {
  const r = await rawRequest(srv.port, { method: 'POST', path: PARTS,
    headers: { 'content-type': 'multipart/form-data; boundary=x' }, bodyLength: 128 * MB + 1 });
  assert.equal(r.status, 413);
  assert.equal(r.body.code, 'PAYLOAD_TOO_LARGE');
});

test('JSON, raw and multipart bodies over body_memory_max read the same from the file', async () => {
  const text = 'é'.repeat(50000);
  let r = await small.request('POST', '/api/v1/uploader/json', { json: { text } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.len, Buffer.byteLength(text));
  // Field validation still runs on a body read back from the file.
  r = await small.request('POST', '/api/v1/uploader/json', { json: { text: 5, pad: 'x'.repeat(9000) } });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  r = await small.request('POST', '/api/v1/uploader/json', { body: `{"text": "${'x'.repeat(9000)}"`,
    headers: { 'content-type': 'application/json' } });
  assertEnvelope(assert, r, 400, 'VALIDATION_ERROR');

  const raw = randomBytes(200000);
  r = await small.request('POST', '/api/v1/uploader/raw', { body: raw, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { len: raw.length, sha256: sha256(raw) });

  const parts = [
    { name: 'caption', value: 'on disk' },
    { name: 'a', filename: 'a.bin', type: 'application/octet-stream', size: 9000 },
    { name: 'b', filename: 'b.bin', size: 300 },
  ];
  checkParts(await upload(small, parts), parts, 'file');
});

test('the avatar reads its image from the body file', async () => {
  const token = await small.login();
  const jpg = readFileSync(join(ROOT, 'tests/fixtures/avatar-gps.jpg'));
  const fd = new FormData();
  fd.append('avatar', new Blob([jpg], { type: 'image/jpeg' }), 'me.jpg');
  const r = await small.request('POST', '/api/v1/users/me/avatar', { body: fd, token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.content_type, 'image/jpeg');
  assert.equal(r.body.width, 256);
});

test('the body directory is private to the workers and empty once requests end', { skip: !IS_ROOT && 'the harness makes a chroot per server only when run as root' }, async () => {
  for (const s of [srv, small]) {
    const st = statSync(bodyDir(s));
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o777, 0o700);
    assert.ok(await poll(() => readdirSync(bodyDir(s)).length === 0),
      `left in ${bodyDir(s)}: ${readdirSync(bodyDir(s)).join(', ')}`);
  }
});

test('a 100 MB upload does not grow the worker\'s memory', async () => {
  const [pid] = await waitWorkerPids(srv, 1);
  const parts = [{ name: 'f', filename: 'big.bin', type: 'application/octet-stream', size: 100 * MB }];
  // Once first, so that what a first request allocates is counted before.
  const warm = [{ name: 'f', filename: 'w.bin', size: 5 * MB }];
  checkParts(await upload(srv, warm), warm, 'file');
  const before = peakRssKb(pid);
  checkParts(await upload(srv, parts), parts, 'file');
  const growth = peakRssKb(pid) - before;
  assert.ok(growth < 16 * 1024, `the worker's peak RSS grew by ${growth} kB`);
  assert.ok(await poll(() => !IS_ROOT || readdirSync(bodyDir(srv)).length === 0));
});

test('no sanitizer report and the workers survived', async () => {
  for (const s of [srv, small]) {
    assert.deepEqual(s.sanitizerReports(), []);
    assert.doesNotMatch(s.output, /exited with status|\) gone|died from/);
  }
});
