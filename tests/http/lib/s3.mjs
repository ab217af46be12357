// A local S3-compatible server for the media plugin's S3 tests: s3rver
// (npm, a real S3 implementation storing objects in a directory) on a
// loopback port, behind a small front that checks every request's AWS
// Signature Version 4 before passing it on.  s3rver 3.7.1 parses SigV4
// Authorization headers and checks the access key, but does not compute
// the signature ("V4 signatures have incomplete support" in its source):
// the front does, after the AWS documentation ("Signature Version 4
// signing process", S3's "Authenticating requests: Using the
// Authorization header"), so a request signed with the wrong secret, the
// wrong region, a body that does not match its x-amz-content-sha256, or
// a header changed after signing is 403 SignatureDoesNotMatch as S3
// answers it.
import { createServer, request } from 'node:http';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

export const ACCESS_KEY = 'S3RVER';
export const SECRET_KEY = 'S3RVER';
export const REGION = 'us-east-1';

const hmac = (k, s) => createHmac('sha256', k).update(s).digest();
const sha = (b) => createHash('sha256').update(b).digest('hex');

function fail(res, status, code, message) {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${message}</Message></Error>`);
}

// null when the request is correctly signed, else why not.
export function sigv4Problem(req, body, { secret = SECRET_KEY, region = REGION } = {}) {
  const auth = req.headers.authorization || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return `not a SigV4 Authorization header: ${auth}`;
  const [, , date, reg, signed, signature] = m;
  if (reg !== region) return `region ${reg}`;
  const amzDate = req.headers['x-amz-date'];
  if (!amzDate || amzDate.slice(0, 8) !== date) return 'x-amz-date';
  const payload = req.headers['x-amz-content-sha256'];
  if (!payload) return 'no x-amz-content-sha256';
  if (payload !== 'UNSIGNED-PAYLOAD' && payload !== sha(body)) return 'the body does not match x-amz-content-sha256';
  const names = signed.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date') || !names.includes('x-amz-content-sha256'))
    return `signed headers ${signed}`;
  // Signed means sent; and every x-amz-* header sent is signed.
  for (const n of names) if (!(n in req.headers)) return `signed header ${n} was not sent`;
  for (const n of Object.keys(req.headers))
    if (n.startsWith('x-amz-') && !names.includes(n)) return `header ${n} is not signed`;
  const url = new URL(req.url, 'http://x');
  const query = [...url.searchParams].map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const headers = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, url.pathname, query, headers, signed, payload].join('\n');
  const scope = `${date}/${reg}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha(canonical)].join('\n');
  let k = hmac(`AWS4${secret}`, date);
  k = hmac(k, reg); k = hmac(k, 's3'); k = hmac(k, 'aws4_request');
  return createHmac('sha256', k).update(toSign).digest('hex') === signature ? null : 'signature mismatch';
}

// Starts s3rver with `bucket` and the checking front; { endpoint, port,
// bucket, dir, requests, rejected, stop() }.  requests: every request the
// front saw ({method, path, status}); rejected: those refused, with why.
export async function startS3({ bucket = 'media-test' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 's3rver-'));
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir,
    configureBuckets: [{ name: bucket }] });
  const { port: inner } = await s3.run();
  const requests = [], rejected = [];
  const inflight = new Set();	// passed on, s3rver not finished yet
  const failing = { count: 0, status: 503, method: 'PUT' };
  const chains = new Map();	// key -> the last request on it, settled when done
  const front = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const why = sigv4Problem(req, body);
      const seen = { method: req.method, path: req.url, status: 0 };
      requests.push(seen);
      if (why) {
        seen.status = 403;
        rejected.push({ ...seen, why });
        fail(res, 403, 'SignatureDoesNotMatch', why);
        return;
      }
      if (failing.count > 0 && req.method === failing.method) {
        failing.count--;
        seen.status = failing.status;
        fail(res, failing.status, 'ServiceUnavailable', 'try again');
        return;
      }
      // One request per key prefix ("directory") at a time, and a PUT
      // finished only when its file is whole: S3 makes each operation
      // atomic, s3rver's directory store does not (it answers a PUT
      // before its file is written, and a DELETE removes a directory it
      // leaves empty, so a racing PUT in that directory throws ENOENT).
      const path = new URL(req.url, 'http://x').pathname;
      const key = path.slice(0, path.lastIndexOf('/'));
      let done;
      const mine = new Promise((r) => { done = r; });
      const prev = chains.get(key) ?? Promise.resolve();
      chains.set(key, mine);
      inflight.add(mine);
      mine.then(() => { inflight.delete(mine); if (chains.get(key) === mine) chains.delete(key); });
      prev.then(() => {
        const up = request({ host: '127.0.0.1', port: inner, method: req.method, path: req.url,
          headers: { ...req.headers, 'content-length': String(body.length) } }, (ur) => {
          seen.status = ur.statusCode;
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
          ur.on('close', () => {
            if (req.method !== 'PUT' || ur.statusCode !== 200) { done(); return; }
            const file = join(dir, `${decodeURIComponent(path.slice(1))}._S3rver_object`);
            const until = Date.now() + 5000;
            const whole = () => {
              let size = -1;
              try { size = statSync(file).size; } catch { size = -1; }
              if (size === body.length || Date.now() > until) done();
              else setTimeout(whole, 5);
            };
            whole();
          });
        });
        up.on('error', () => { done(); fail(res, 502, 'InternalError', 'the store is gone'); });
        up.end(body);
      });
    });
  });
  await new Promise((r) => front.listen(0, '127.0.0.1', r));
  const port = front.address().port;
  return {
    endpoint: `http://127.0.0.1:${port}`, port, bucket, dir, requests, rejected,
    // The next n correctly signed requests of method are answered status.
    failNext(n, { status = 503, method = 'PUT' } = {}) { Object.assign(failing, { count: n, status, method }); },
    // s3rver keeps an object's bytes at <dir>/<bucket>/<key>._S3rver_object.
    objectFile: (key) => join(dir, bucket, `${key}._S3rver_object`),
    async stop() {
      const closed = new Promise((r) => front.close(r));
      front.closeAllConnections();
      await closed;
      // s3rver may still be writing what it was given: let it finish.
      await Promise.all([...inflight]);
      await s3.close();
      // s3rver finishes some file work after it answers (a late open of
      // an object's file): the directory goes when the process does.
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    },
  };
}
