// Self-test of the Google OAuth/FCM fake (tests/fakes/google.mjs) and of the
// SMTP sink (tests/fakes/smtp.mjs). Needs no Switchboard server: it talks to
// the fakes directly, with fetch, curl and a minimal SMTP client.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, importPKCS8, SignJWT } from 'jose';
import {
  startGoogle, createServiceAccount, decodeAssertion, signAssertion, fakeDeviceToken,
  fcmErrorCode, FCM_SCOPE, CLOUD_PLATFORM_SCOPE, JWT_BEARER,
} from '../fakes/google.mjs';
import { startSmtp, selfSignedCert, parseMessage } from '../fakes/smtp.mjs';
import { WAIT_MS } from './lib/helpers.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'sb-fake-google-smtp-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function jsonFetch(url, { method = 'POST', headers = {}, body, timeoutMs = WAIT_MS } = {}) {
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, headers: res.headers, body: json, text };
}

// ====================================================================== Google

describe('Google OAuth + FCM v1 fake', () => {
  let sa;
  let google;
  const project = 'acme-push';

  before(async () => {
    sa = createServiceAccount({ projectId: project });
    google = await startGoogle({ serviceAccount: sa });
  });
  after(async () => { await google?.close(); });
  beforeEach(() => google.reset());

  const grant = (assertion, extra = {}) => jsonFetch(google.tokenUri, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: JWT_BEARER, assertion, ...extra }).toString(),
  });
  const accessToken = async () => {
    const r = await grant(signAssertion(sa));
    assert.equal(r.status, 200, r.text);
    return r.body.access_token;
  };
  const send = (token, body, { proj = project, timeoutMs } = {}) => jsonFetch(
    `${google.fcmUrl}/projects/${proj}/messages:send`, {
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body), timeoutMs });

  test('service account JSON looks like a Google download and points at the fake', () => {
    const j = sa.json;
    assert.deepEqual(Object.keys(j).slice(0, 10), ['type', 'project_id', 'private_key_id',
      'private_key', 'client_email', 'client_id', 'auth_uri', 'token_uri',
      'auth_provider_x509_cert_url', 'client_x509_cert_url']);
    assert.equal(j.type, 'service_account');
    assert.equal(j.project_id, project);
    assert.match(j.private_key_id, /^[0-9a-f]{40}$/);
    assert.match(j.private_key, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    assert.match(j.client_email, new RegExp(`^[a-z0-9-]+@${project}\\.iam\\.gserviceaccount\\.com$`));
    assert.match(j.client_id, /^\d{21}$/);
    assert.equal(j.token_uri, google.tokenUri);
    assert.equal(google.tokenUri, `${google.url}/token`);
    assert.equal(google.fcmUrl, `${google.url}/v1`);
    assert.match(sa.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    const path = sa.writeTo(tmp);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), j);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  test('a correctly signed grant gets a Bearer token; the grant is recorded', async () => {
    // Signed by jose rather than by the fake's own helper.
    const now = Math.floor(Date.now() / 1000);
    const key = await importPKCS8(sa.json.private_key, 'RS256');
    const jwt = await new SignJWT({ scope: `${FCM_SCOPE} ${CLOUD_PLATFORM_SCOPE}` })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: sa.json.private_key_id })
      .setIssuer(sa.json.client_email).setAudience(sa.json.token_uri)
      .setIssuedAt(now).setExpirationTime(now + 3600).sign(key);
    const r = await grant(jwt);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(r.body.token_type, 'Bearer');
    assert.equal(r.body.expires_in, 3600);
    assert.match(r.body.access_token, /^ya29\./);
    assert.match(r.headers.get('content-type'), /^application\/json/);

    assert.equal(google.tokenRequests.length, 1);
    const rec = google.tokenRequests[0];
    assert.equal(rec.form.grant_type, JWT_BEARER);
    assert.equal(rec.claims.iss, sa.json.client_email);
    assert.equal(rec.header.kid, sa.json.private_key_id);
    assert.equal(rec.status, 200);
    assert.equal(google.tokens.length, 1);
    const t = google.tokens[0];
    assert.equal(t.accessToken, r.body.access_token);
    assert.ok(t.expiresAt - t.issuedAt === 3600 * 1000);
    assert.deepEqual(t.scopes, [FCM_SCOPE, CLOUD_PLATFORM_SCOPE]);

    // kid is optional; decodeAssertion splits without verifying.
    const noKid = signAssertion(sa, {}, { kid: false });
    assert.equal(decodeProtectedHeader(noKid).kid, undefined);
    assert.deepEqual(decodeAssertion(noKid).header, { alg: 'RS256', typ: 'JWT' });
    assert.equal((await grant(noKid)).status, 200);
  });

  test('bad grants fail with Google-shaped error bodies', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      ['wrong key', signAssertion(sa, {}, { privateKey: other }), 'invalid_grant',
        /^Invalid JWT Signature\.$/],
      ['wrong kid', signAssertion(sa, {}, { kid: 'deadbeef' }), 'invalid_grant', /Signature/],
      ['wrong aud', signAssertion(sa, { aud: 'https://oauth2.googleapis.com/token' }),
        'invalid_grant', new RegExp(`Failed audience check. The right audience is ${google.tokenUri}$`)],
      ['wrong scope', signAssertion(sa, { scope: 'https://www.googleapis.com/auth/drive' }),
        'invalid_scope', /scope/],
      ['no scope', signAssertion(sa, { scope: undefined }), 'invalid_scope', /scope/],
      ['expired', signAssertion(sa, { iat: now - 7200, exp: now - 3600 }), 'invalid_grant',
        /short-lived token/],
      ['too long', signAssertion(sa, { exp: now + 7200 }), 'invalid_grant', /short-lived/],
      ['future iat', signAssertion(sa, { iat: now + 600, exp: now + 1200 }), 'invalid_grant',
        /short-lived/],
      ['unknown iss', signAssertion(sa, { iss: 'nobody@elsewhere.iam.gserviceaccount.com' }),
        'invalid_grant', /account not found/],
      ['HS256', (() => { const [, p, s] = signAssertion(sa).split('.');
        return `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${p}.${s}`; })(),
      'invalid_grant', /Signature/],
      ['garbage', 'not-a-jwt', 'invalid_grant', /Invalid JWT/],
    ];
    for (const [name, assertion, error, description] of cases) {
      const r = await grant(assertion);
      assert.equal(r.status, 400, name);
      assert.deepEqual(Object.keys(r.body).sort(), ['error', 'error_description'], name);
      assert.equal(r.body.error, error, name);
      assert.match(r.body.error_description, description, name);
    }
    const wrongGrant = await jsonFetch(google.tokenUri, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials' });
    assert.equal(wrongGrant.body.error, 'unsupported_grant_type');
    assert.equal(google.tokens.length, 0);
    assert.equal(google.tokenRequests.length, cases.length + 1);
    assert.ok(google.tokenRequests.every((t) => t.status === 400));
  });

  test('failToken scripts the token endpoint', async () => {
    google.failToken([{ status: 503 }, { status: 400, json: { error: 'invalid_grant',
      error_description: 'Invalid grant: account not found' } }]);
    assert.equal((await grant(signAssertion(sa))).status, 503);
    const second = await grant(signAssertion(sa));
    assert.equal(second.status, 400);
    assert.equal(second.body.error_description, 'Invalid grant: account not found');
    assert.equal((await grant(signAssertion(sa))).status, 200);
  });

  test('a valid send is delivered and answered with the message name', async () => {
    const token = await accessToken();
    const device = fakeDeviceToken();
    const message = { token: device, notification: { title: 'Hi', body: 'there' },
      data: { room: 'standup', n: '1' },
      android: { priority: 'HIGH', ttl: '3600s', notification: { channelId: 'calls' } },
      apns: { headers: { 'apns-priority': '10' }, payload: { aps: { sound: 'default' } } },
      fcmOptions: { analyticsLabel: 'x' } };
    const r = await send(token, { message });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body), ['name']);
    assert.match(r.body.name, new RegExp(`^projects/${project}/messages/.+`));
    assert.deepEqual(google.delivered(device), [message]);
    const s = google.sends[0];
    assert.equal(s.accessToken, token);
    assert.equal(s.clientEmail, sa.json.client_email);
    assert.equal(s.normalized.android.notification.channel_id, 'calls');
    assert.equal(s.normalized.fcm_options.analytics_label, 'x');
    assert.equal(typeof s.at, 'number');

    const dry = await send(token, { validate_only: true, message: { token: device, data: { a: 'b' } } });
    assert.equal(dry.status, 200);
    assert.equal(google.delivered(device).length, 1, 'validate_only is not delivered');
    const topic = await send(token, { message: { topic: 'news', notification: { title: 't' } } });
    assert.equal(topic.status, 200);
  });

  test('legacy and malformed bodies are rejected with INVALID_ARGUMENT', async () => {
    const token = await accessToken();
    const device = fakeDeviceToken();
    const expectBad = async (body, pattern, fcm = null) => {
      const r = await send(token, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 400);
      assert.equal(r.body.error.status, 'INVALID_ARGUMENT');
      assert.match(r.body.error.message, pattern);
      assert.ok(r.body.error.details.some((d) => d['@type']
        === 'type.googleapis.com/google.rpc.BadRequest'), JSON.stringify(r.body));
      assert.equal(fcmErrorCode(r.body), fcm);
      return r;
    };
    // Legacy HTTP API shapes.
    await expectBad({ to: device, notification: { title: 'x' } },
      /^Invalid JSON payload received\. Unknown name "to": Cannot find field\./);
    await expectBad({ registration_ids: [device], data: { a: 'b' } }, /Unknown name "registration_ids"/);
    await expectBad({ message: { token: device, priority: 'high' } },
      /Unknown name "priority" at 'message': Cannot find field\./);
    await expectBad({ message: { token: device, content_available: true } },
      /Unknown name "content_available" at 'message'/);
    await expectBad({ message: { token: device, notification: { title: 'x', sound: 'default' } } },
      /Unknown name "sound" at 'message\.notification': Cannot find field\./);
    await expectBad({ message: { token: device, data: { n: 12 } } },
      /^Invalid value at 'message\.data\[0\]\.value' \(TYPE_STRING\), 12$/);
    await expectBad({ message: { token: device, android: { priority: 'urgent' } } },
      /Invalid value at 'message\.android\.priority'/);
    await expectBad({ message: { token: device, android: { ttl: 3600 } } },
      /Invalid value at 'message\.android\.ttl'/);
    await expectBad({ notification: { title: 'x' } }, /Unknown name "notification"/);
    await expectBad({}, /message/);
    // FCM-level checks carry FcmError INVALID_ARGUMENT too.
    await expectBad({ message: { token: device, topic: 'news' } }, /Only one of/, 'INVALID_ARGUMENT');
    await expectBad({ message: { notification: { title: 'x' } } }, /not set/, 'INVALID_ARGUMENT');
    await expectBad({ message: { token: device, data: { from: 'me' } } }, /from/, 'INVALID_ARGUMENT');
    await expectBad({ message: { topic: '/topics/news' } }, /topic/, 'INVALID_ARGUMENT');
    await expectBad({ message: { token: device, data: { big: 'x'.repeat(5000) } } }, /too big/,
      'INVALID_ARGUMENT');
    await expectBad({ message: { token: 'has spaces in it' } },
      /^The registration token is not a valid FCM registration token$/, 'INVALID_ARGUMENT');
    const notJson = await send(token, '{"message":');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error.status, 'INVALID_ARGUMENT');
    assert.equal(google.delivered().length, 0);
  });

  test('missing, unknown, expired and revoked access tokens get 401 UNAUTHENTICATED', async () => {
    const msg = { message: { token: fakeDeviceToken(), data: { a: 'b' } } };
    const none = await send(null, msg);
    assert.equal(none.status, 401);
    assert.deepEqual(none.body.error.status, 'UNAUTHENTICATED');
    assert.equal(none.body.error.code, 401);
    assert.match(none.body.error.message, /^Request is missing required authentication credential/);
    assert.match(none.headers.get('www-authenticate'), /^Bearer realm="https:\/\/accounts\.google\.com\/"/);

    const unknown = await send('ya29.made-up', msg);
    assert.equal(unknown.status, 401);
    assert.match(unknown.body.error.message, /^Request had invalid authentication credentials/);

    const token = await accessToken();
    assert.equal((await send(token, msg)).status, 200);
    google.advanceTime(3601);
    assert.equal((await send(token, msg)).status, 401, 'expired');
    google.reset();
    const fresh = await accessToken();
    google.revoke(fresh);
    assert.equal((await send(fresh, msg)).status, 401, 'revoked');
    assert.equal(google.delivered().length, 0);
  });

  test('unregistered and invalid device tokens', async () => {
    const token = await accessToken();
    const stale = fakeDeviceToken();
    google.markUnregistered(stale);
    const r = await send(token, { message: { token: stale, notification: { title: 'x' } } });
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: { code: 404, message: 'Requested entity was not found.',
      status: 'NOT_FOUND', details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError',
        errorCode: 'UNREGISTERED' }] } });

    const fresh = fakeDeviceToken();
    google.fail([{ unregistered: true }, { invalidToken: true }]);
    const scripted = await send(token, { message: { token: fresh, data: { a: 'b' } } });
    assert.equal(scripted.status, 404);
    assert.equal(fcmErrorCode(scripted.body), 'UNREGISTERED');
    const invalid = await send(token, { message: { token: fresh, data: { a: 'b' } } });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error.message, 'The registration token is not a valid FCM registration token');
    assert.equal(fcmErrorCode(invalid.body), 'INVALID_ARGUMENT');
    google.markInvalid(fresh);
    assert.equal((await send(token, { message: { token: fresh, data: { a: 'b' } } })).status, 400);
    assert.equal(google.delivered().length, 0);
  });

  test('scripted 429 carries Retry-After; 503, hang and project mismatch', async () => {
    const token = await accessToken();
    const device = fakeDeviceToken();
    const msg = { message: { token: device, data: { a: 'b' } } };
    google.fail([{ status: 429, headers: { 'retry-after': '2' } }, { status: 503 }, { hang: true }]);
    const limited = await send(token, msg);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '2');
    assert.equal(limited.body.error.status, 'RESOURCE_EXHAUSTED');
    assert.equal(fcmErrorCode(limited.body), 'QUOTA_EXCEEDED');
    const down = await send(token, msg);
    assert.equal(down.status, 503);
    assert.equal(down.body.error.status, 'UNAVAILABLE');
    assert.equal(fcmErrorCode(down.body), 'UNAVAILABLE');
    await assert.rejects(send(token, msg, { timeoutMs: 300 }), /abort|timeout/i);
    assert.equal((await send(token, msg)).status, 200, 'script used up');
    assert.equal(google.delivered(device).length, 1);
    assert.equal(google.sends.length, 4);

    const elsewhere = await send(token, msg, { proj: 'someone-else' });
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.body.error.status, 'PERMISSION_DENIED');
  });

  test('scopeCheck "send" mints any scope and answers 403 at send time', async () => {
    const sa2 = createServiceAccount({ projectId: 'scoped' });
    const g2 = await startGoogle({ serviceAccount: sa2, scopeCheck: 'send', tokenTtl: 60 });
    try {
      const r = await jsonFetch(g2.tokenUri, {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: JWT_BEARER,
          assertion: signAssertion(sa2, { scope: 'https://www.googleapis.com/auth/drive' }) }).toString() });
      assert.equal(r.status, 200);
      assert.equal(r.body.expires_in, 60);
      const s = await jsonFetch(g2.sendUrl(), { headers: { authorization: `Bearer ${r.body.access_token}`,
        'content-type': 'application/json' }, body: JSON.stringify({ message: { topic: 'a' } }) });
      assert.equal(s.status, 403);
      assert.equal(s.body.error.status, 'PERMISSION_DENIED');
    } finally {
      await g2.close();
    }
  });
});

// ======================================================================== SMTP

function curl(args, { timeoutMs = WAIT_MS } = {}) {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--max-time', String(timeoutMs / 1000), ...args],
      { timeout: timeoutMs + 2000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
      });
  });
}

// A minimal SMTP client: cmd(line) resolves with the full (multi-line) reply.
function smtpClient(port, { ca } = {}) {
  return new Promise((resolve, reject) => {
    let sock = netConnect(port, '127.0.0.1');
    let buf = '';
    let lines = [];
    const waiters = [];
    const replies = [];
    let closed = false;
    const onData = (d) => {
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const r = { code: Number(line.slice(0, 3)), lines, text: lines.join('\n') };
          lines = [];
          if (waiters.length) waiters.shift()(r); else replies.push(r);
        }
      }
    };
    const next = (timeoutMs = WAIT_MS) => new Promise((res, rej) => {
      if (replies.length) { res(replies.shift()); return; }
      if (closed) { rej(new Error('SMTP connection closed')); return; }
      const t = setTimeout(() => rej(new Error('SMTP reply timeout')), timeoutMs);
      waiters.push((r) => { clearTimeout(t); if (r instanceof Error) rej(r); else res(r); });
    });
    const onClose = () => {
      closed = true;
      for (const w of waiters.splice(0)) w(new Error('SMTP connection closed'));
    };
    const client = {
      next,
      write: (s) => sock.write(s),
      async cmd(line, timeoutMs) { sock.write(`${line}\r\n`); return next(timeoutMs); },
      async starttls() {
        const r = await client.cmd('STARTTLS');
        if (r.code !== 220) return r;
        sock.removeListener('data', onData);
        sock = await new Promise((res, rej) => {
          const s = tlsConnect({ socket: sock, ca, servername: 'localhost' }, () => res(s));
          s.once('error', rej);
        });
        sock.on('data', onData);
        sock.on('close', onClose);
        return r;
      },
      get closed() { return sock.destroyed; },
      close() { sock.destroy(); },
    };
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.once('error', reject);
    sock.once('connect', () => next().then((greeting) => { client.greeting = greeting; resolve(client); },
      reject));
  });
}

const b64 = (s) => Buffer.from(s).toString('base64');

describe('SMTP sink', () => {
  let cert;
  let plain;	// no TLS, no auth
  let secure;	// STARTTLS required + AUTH

  before(async () => {
    cert = selfSignedCert();
    plain = await startSmtp();
    secure = await startSmtp({ auth: { username: 'mailer', password: 's3cret' }, starttls: cert,
      requireTls: true });
  });
  after(async () => {
    await plain?.close();
    await secure?.close();
    rmSync(cert.dir, { recursive: true, force: true });
  });
  beforeEach(() => { plain.reset(); secure.reset(); });

  test('a message sent with curl arrives with the exact envelope and bytes', async () => {
    const body = 'From: Switchboard <noreply@example.test>\r\nTo: a@example.test\r\n'
      + 'Subject: dots\r\n\r\nfirst line\r\n.hidden line starts with a dot\r\n.\r\n..two\r\nlast\r\n';
    const file = join(tmp, 'plain.eml');
    writeFileSync(file, body);
    const r = await curl(['--url', `${plain.url}/client.test`, '--mail-from', 'noreply@example.test',
      '--mail-rcpt', 'a@example.test', '--mail-rcpt', 'b@example.test', '--upload-file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(plain.messages.length, 1);
    const m = plain.messages[0];
    assert.equal(m.from, 'noreply@example.test');
    assert.deepEqual(m.to, ['a@example.test', 'b@example.test']);
    assert.equal(m.data, body);
    assert.deepEqual(m.raw, Buffer.from(body));
    assert.equal(m.tls, false);
    assert.equal(m.authUser, null);
    assert.equal(m.helo, 'client.test');
    assert.equal(typeof m.at, 'number');
  });

  test('STARTTLS + AUTH PLAIN and LOGIN with curl; AUTH is only offered after TLS', async () => {
    const c = await smtpClient(secure.port, { ca: cert.cert });
    const ehlo = await c.cmd('EHLO probe.test');
    assert.equal(ehlo.code, 250);
    assert.ok(ehlo.lines.some((l) => /^250[- ]STARTTLS$/.test(l)), ehlo.text);
    assert.ok(!ehlo.lines.some((l) => /AUTH/.test(l)), 'no AUTH before TLS');
    assert.equal((await c.cmd('MAIL FROM:<x@example.test>')).code, 530);
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0mailer\0s3cret'))).code, 530);
    assert.equal((await c.starttls()).code, 220);
    const ehlo2 = await c.cmd('EHLO probe.test');
    assert.ok(ehlo2.lines.some((l) => /^250[- ]AUTH PLAIN LOGIN$/.test(l)), ehlo2.text);
    assert.ok(!ehlo2.lines.some((l) => /STARTTLS/.test(l)), 'no STARTTLS once in TLS');
    assert.equal((await c.cmd('MAIL FROM:<x@example.test>')).code, 530, 'MAIL before AUTH');
    c.close();

    const file = join(tmp, 'secure.eml');
    const body = 'Subject: secret\r\n\r\nhello over TLS\r\n';
    writeFileSync(file, body);
    for (const mech of ['PLAIN', 'LOGIN']) {
      const r = await curl(['--url', `${secure.url}/client.test`, '--ssl-reqd', '--cacert', cert.certPath,
        '--user', 'mailer:s3cret', '--login-options', `AUTH=${mech}`,
        '--mail-from', 'noreply@example.test', '--mail-rcpt', 'dest@example.test', '--upload-file', file]);
      assert.equal(r.code, 0, `${mech}: ${r.stderr}`);
    }
    assert.equal(secure.messages.length, 2);
    for (const m of secure.messages) {
      assert.equal(m.tls, true);
      assert.equal(m.authUser, 'mailer');
      assert.equal(m.data, body);
      assert.deepEqual(m.to, ['dest@example.test']);
    }
    assert.deepEqual(secure.authAttempts.map((a) => [a.mechanism, a.ok, a.tls]),
      [['PLAIN', true, true], ['LOGIN', true, true]]);
  });

  test('bad credentials get 535 (PLAIN, LOGIN, and curl)', async () => {
    const c = await smtpClient(secure.port, { ca: cert.cert });
    await c.cmd('EHLO probe.test');
    await c.starttls();
    await c.cmd('EHLO probe.test');
    const plainBad = await c.cmd('AUTH PLAIN ' + b64('\0mailer\0wrong'));
    assert.equal(plainBad.code, 535);
    assert.match(plainBad.text, /^535 5\.7\.8 /);
    assert.equal((await c.cmd('AUTH LOGIN')).text, '334 VXNlcm5hbWU6');
    assert.equal((await c.cmd(b64('mailer'))).text, '334 UGFzc3dvcmQ6');
    assert.equal((await c.cmd(b64('nope'))).code, 535);
    assert.equal((await c.cmd('AUTH PLAIN')).code, 334);
    assert.equal((await c.cmd('*')).code, 501, 'cancelled');
    assert.equal((await c.cmd('AUTH CRAM-MD5')).code, 504);
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0mailer\0s3cret'))).code, 235);
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0mailer\0s3cret'))).code, 503, 'already authed');
    assert.equal((await c.cmd('QUIT')).code, 221);
    c.close();

    const file = join(tmp, 'bad.eml');
    writeFileSync(file, 'Subject: x\r\n\r\nx\r\n');
    const r = await curl(['--url', secure.url, '--ssl-reqd', '--cacert', cert.certPath,
      '--user', 'mailer:wrong', '--mail-from', 'a@example.test', '--mail-rcpt', 'b@example.test',
      '--upload-file', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Login denied|535/i);
    assert.equal(secure.messages.length, 0);
    assert.deepEqual(secure.authAttempts.map((a) => a.ok), [false, false, true, false]);
  });

  test('down() refuses connections, up() listens again on the same port', async () => {
    const port = plain.port;
    await plain.down();
    assert.equal(plain.isUp(), false);
    await assert.rejects(smtpClient(port), (e) => e.code === 'ECONNREFUSED');
    const file = join(tmp, 'down.eml');
    writeFileSync(file, 'Subject: x\r\n\r\nx\r\n');
    const refused = await curl(['--url', plain.url, '--mail-from', 'a@example.test',
      '--mail-rcpt', 'b@example.test', '--upload-file', file]);
    assert.equal(refused.code, 7, refused.stderr);	// CURLE_COULDNT_CONNECT
    await plain.up();
    assert.equal(plain.port, port);
    const ok = await curl(['--url', plain.url, '--mail-from', 'a@example.test',
      '--mail-rcpt', 'b@example.test', '--upload-file', file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(plain.messages.length, 1);
  });

  test('down() drops an open session', async () => {
    const c = await smtpClient(plain.port);
    await c.cmd('EHLO probe.test');
    await plain.down();
    await assert.rejects(c.cmd('NOOP', 1000), /closed/);
    await plain.up();
  });

  test('scripted replies: 451 at DATA, 550 at RCPT, 451 after the body, hang', async () => {
    const file = join(tmp, 'scripted.eml');
    writeFileSync(file, 'Subject: x\r\n\r\nx\r\n');
    plain.fail([{ at: 'DATA', code: 451 }]);
    const r = await curl(['--url', plain.url, '--mail-from', 'a@example.test',
      '--mail-rcpt', 'b@example.test', '--upload-file', file, '--verbose']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /< 451 /);
    assert.equal(plain.messages.length, 0);

    plain.fail([{ at: 'RCPT', code: 550 }, { at: 'DOT', code: 451, message: '4.3.0 try later' }]);
    const c = await smtpClient(plain.port);
    await c.cmd('EHLO probe.test');
    assert.equal((await c.cmd('MAIL FROM:<a@example.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<gone@example.test>')).code, 550);
    assert.equal((await c.cmd('RCPT TO:<b@example.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const after = await c.cmd('Subject: y\r\n\r\nbody\r\n.');
    assert.equal(after.text, '451 4.3.0 try later');
    assert.equal(plain.messages.length, 0);
    assert.equal(plain.rejected.length, 1);
    assert.deepEqual(plain.rejected[0].to, ['b@example.test']);
    // The session is still usable after a rejected transaction.
    assert.equal((await c.cmd('MAIL FROM:<a@example.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<b@example.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    // Dot-stuffed on the wire ("..", "..."), unstuffed in the store.
    assert.equal((await c.cmd('Subject: z\r\n\r\n..\r\n...\r\nend\r\n.')).code, 250);
    assert.equal(plain.messages[0].data, 'Subject: z\r\n\r\n.\r\n..\r\nend\r\n');
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('NOOP')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<b@example.test>')).code, 503, 'RCPT without MAIL');
    c.close();

    plain.fail([{ at: 'MAIL', hang: true }]);
    const h = await smtpClient(plain.port);
    await h.cmd('EHLO probe.test');
    await assert.rejects(h.cmd('MAIL FROM:<a@example.test>', 500), /timeout/);
    h.close();

    plain.fail([{ at: 'CONNECT', code: 421 }]);
    const busy = await smtpClient(plain.port);
    assert.match(busy.greeting.text, /^421 4\.3\.2 /);
    busy.close();
    const again = await smtpClient(plain.port);
    assert.equal(again.greeting.code, 220, 'script used up');
    again.close();
  });

  test('parseMessage decodes a multipart/alternative message', () => {
    const raw = [
      'From: =?UTF-8?B?U3dpdGNoYm9hcmQg4pyT?= <noreply@example.test>',
      'To: user@example.test',
      'Subject: =?UTF-8?Q?R=C3=A9union_demain?=',
      'X-Folded: first part',
      '\tsecond part',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b1=_x"',
      '',
      'preamble',
      '--b1=_x',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Caf=C3=A9 at 10:00 =E2=80=94 a long line that is soft =',
      'broken.',
      '--b1=_x',
      'Content-Type: text/html; charset="utf-8"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('<p>Café at <b>10:00</b></p>').toString('base64'),
      '--b1=_x--',
      '',
    ].join('\r\n');
    const p = parseMessage(raw);
    assert.equal(p.headers['x-folded'], 'first part\tsecond part');
    assert.equal(p.headers['content-type'], 'multipart/alternative; boundary="b1=_x"');
    assert.equal(p.subject, 'Réunion demain');
    assert.equal(p.from, 'Switchboard ✓ <noreply@example.test>');
    assert.equal(p.contentType, 'multipart/alternative');
    assert.equal(p.parts.length, 2);
    assert.equal(p.text, 'Café at 10:00 — a long line that is soft broken.');
    assert.equal(p.html, '<p>Café at <b>10:00</b></p>');
    assert.deepEqual(p.header('TO'), ['user@example.test']);

    const single = parseMessage('Subject: plain\r\n\r\njust text\r\n');
    assert.equal(single.text, 'just text\r\n');
    assert.equal(single.html, null);
    assert.equal(single.body, 'just text\r\n');
  });
});
