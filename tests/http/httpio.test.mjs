// http_send's sb_http_io (ABI 1.3) through the filer test plugin
// (tests/plugins/filer.c) against a local upstream: a body read from a
// descriptor at an offset (PUT and POST), a response written to a
// descriptor and its response_max, a file shorter than promised, AWS
// SigV4 signing (checked by tests/http/lib/s3.mjs's verifier: right and
// wrong secret, a signed body hash), and the requests http_send refuses.
// The plugin closes its own descriptors as soon as http_send returns.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, BUILD, testPlugin, assertEnvelope } from './lib/harness.mjs';
import { sigv4Problem } from './lib/s3.mjs';

const SECRET = 'upstream-secret-key';
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
let srv, up, upUrl, dir;
const seen = [];

before(async () => {
  up = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url === '/big') { res.end('y'.repeat(10000)); return; }
      if (req.url === '/signed') {
        const why = sigv4Problem(req, body, { secret: SECRET });
        res.writeHead(why ? 403 : 200);
        res.end(why ?? 'signed ok');
        return;
      }
      res.end(body);
    });
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  upUrl = `http://127.0.0.1:${up.address().port}`;
  mkdirSync(join(BUILD, 'test-run'), { recursive: true });
  dir = mkdtempSync(join(BUILD, 'test-run', 'filer-'));
  if (process.getuid() === 0) {
    chownSync(dir, Number(execFileSync('id', ['-u', 'switchboard']).toString()),
      Number(execFileSync('id', ['-g', 'switchboard']).toString()));
  }
  srv = await startServer({ workers: 1, plugins: { example: {}, filer: testPlugin('filer', { dir }) } });
});

after(async () => {
  await srv?.stop();
  up?.closeAllConnections();
  await new Promise((r) => up?.close(r));
});

async function transfer(json) {
  const r = await srv.request('POST', '/api/v1/filer/transfer', { json });
  return r;
}

test('a body read from a descriptor at an offset: PUT and POST', async () => {
  let r = await transfer({ url: `${upUrl}/echo`, method: 'PUT', body: 'hello file', pad: 5000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 200);
  assert.equal(r.body.body, 'hello file');
  let last = seen.at(-1);
  assert.equal(last.method, 'PUT');
  assert.equal(last.body.toString(), 'hello file');
  assert.equal(last.headers['content-length'], '10');

  r = await transfer({ url: `${upUrl}/echo`, method: 'POST', body: 'posted from a file', pad: 3 });
  assert.equal(r.body.status, 200, r.text);
  last = seen.at(-1);
  assert.equal(last.method, 'POST');
  assert.equal(last.body.toString(), 'posted from a file');
  // The plugin's files are gone, and so are http_send's copies (the
  // worker's descriptors are checked by media.test.mjs).
  assert.deepEqual(readdirSync(dir), []);
});

test('a file shorter than promised ends the call with an error', async () => {
  const r = await transfer({ url: `${upUrl}/echo`, method: 'PUT', body: 'abc', claim: 10 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 0);
  assert.equal(r.body.error, 'cannot read the request body');
});

test('a response written to a descriptor, within response_max or refused past it', async () => {
  let r = await transfer({ url: `${upUrl}/big`, to_file: true });
  assert.equal(r.body.status, 200, r.text);
  assert.equal(r.body.body, '', 'nothing in memory');
  assert.equal(r.body.file, 'y'.repeat(10000));
  // Not capped by max_response's default: a limit of its own.
  r = await transfer({ url: `${upUrl}/big`, to_file: true, response_max: 10000 });
  assert.equal(r.body.status, 200, r.text);
  r = await transfer({ url: `${upUrl}/big`, to_file: true, response_max: 100 });
  assert.equal(r.body.status, 0, r.text);
  assert.equal(r.body.error, 'response too large');
});

test('AWS SigV4: signed with the right secret passes the check, the wrong one does not', async () => {
  const empty = sha256('');
  const base = { url: `${upUrl}/signed`, sigv4: 'aws:amz:us-east-1:s3', access_key: 'AKIDTEST',
    headers: { 'x-amz-content-sha256': empty } };
  let r = await transfer({ ...base, secret_key: SECRET });
  assert.equal(r.body.status, 200, r.text);
  assert.equal(r.body.body, 'signed ok');
  assert.match(seen.at(-1).headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/);
  r = await transfer({ ...base, secret_key: 'wrong' });
  assert.equal(r.body.status, 403, r.text);
  assert.equal(r.body.body, 'signature mismatch');
  // A signed PUT of a file: the body's hash is part of the signature.
  const body = 'object bytes';
  r = await transfer({ ...base, secret_key: SECRET, method: 'PUT', body, pad: 7,
    headers: { 'x-amz-content-sha256': sha256(body) } });
  assert.equal(r.body.status, 200, r.text);
  r = await transfer({ ...base, secret_key: SECRET, method: 'PUT', body,
    headers: { 'x-amz-content-sha256': sha256('other bytes') } });
  assert.equal(r.body.status, 403, r.text);
});

test('requests http_send refuses: SigV4 without a secret, a body on GET', async () => {
  assertEnvelope(assert, await transfer({ url: `${upUrl}/signed`, sigv4: 'aws:amz:us-east-1:s3',
    access_key: 'AKIDTEST' }), 400, 'VALIDATION_ERROR');
  assertEnvelope(assert, await transfer({ url: `${upUrl}/echo`, method: 'GET', body: 'x' }),
    400, 'VALIDATION_ERROR');
  assert.deepEqual(readdirSync(dir), []);
});
