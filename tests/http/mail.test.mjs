// Outbound mail (src/mail.c), seen from outside through the mailer test
// plugin: POST /api/v1/mailer/send defers, calls api->mail_send() and
// answers 200 {ok, smtp_code, error, elapsed_ms} from the callback; a mail
// mail_send() refuses is a 400 at once.  The far side is a small SMTP sink
// written here (plain, STARTTLS with a certificate made at test time,
// implicit TLS; AUTH PLAIN and LOGIN; scripted refusals and stalls).
//
// The server runs ONE worker, so "/healthz keeps answering" while a mail
// is pending means the mail does not hold the event loop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { TLSSocket, createSecureContext, createServer as createTlsServer } from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, testPlugin, freePort } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';

const PLUGINS = { example: {}, mailer: testPlugin('mailer') };
const SEND = '/api/v1/mailer/send';
const REFUSED = 'the mail was refused by mail_send';

let srv;
let certDir;
let trusted;	// { key, cert } the server's ca_bundle trusts
let untrusted;	// another self-signed pair it does not
const sinks = [];

function selfSigned(dir, name) {
  const key = join(dir, `${name}-key.pem`);
  const cert = join(dir, `${name}-cert.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert), certPath: cert };
}

// ---------------------------------------------------------------------------
// The SMTP sink.  Options: starttls ({key, cert}: offer STARTTLS),
// implicitTls ({key, cert}: smtps), auth ({username, password, mechs}),
// silent (accept and never say a word), rejectRcpt ({address: code}),
// dataDelayMs (before the reply to the end of the message), quitDelayMs,
// holdData / holdQuit (that reply waits until the test calls
// sink.release('data') / sink.release('quit'): a stall that lasts exactly
// as long as the test needs, whatever the machine's speed).
// `mails`: what was delivered ({from, to, data, tls, user}); `sessions`:
// every connection's transcript.
async function startSink(opts = {}) {
  const sink = { opts, mails: [], sessions: [], sockets: new Set() };
  const gate = () => { let open; const p = new Promise((r) => { open = r; }); return { p, open }; };
  const gates = { data: gate(), quit: gate() };
  sink.release = (what) => gates[what].open();
  const later = (held, ms, fn) => { if (held) gates[held].p.then(fn); else setTimeout(fn, ms ?? 0); };
  const onConnection = (sock, tlsFromStart) => {
    sink.sockets.add(sock);
    sock.on('close', () => sink.sockets.delete(sock));
    sock.on('error', () => {});
    const s = { commands: [], tls: tlsFromStart, user: null, from: null, to: [],
      dataEnded: false, quitReceived: false, quitAnswered: false };
    sink.sessions.push(s);
    if (opts.silent) return;
    let out = sock;
    let buf = Buffer.alloc(0);
    let mode = 'command';	// 'data', 'auth-plain', 'auth-login-user', 'auth-login-pass'
    let loginUser = null;
    const reply = (text) => out.write(text + '\r\n');
    const checkAuth = (user, pass) => {
      if (user === opts.auth.username && pass === opts.auth.password) {
        s.user = user;
        reply('235 2.7.0 Authentication successful');
      } else {
        reply('535 5.7.8 Authentication credentials invalid');
      }
    };
    const plain = (b64) => {
      const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
      checkAuth(parts[1], parts[2]);
    };
    const command = (line) => {
      s.commands.push(line);
      const verb = line.split(' ')[0].toUpperCase();
      const arg = line.slice(verb.length + 1);
      if (mode === 'auth-plain') { mode = 'command'; plain(line); return; }
      if (mode === 'auth-login-user') {
        loginUser = Buffer.from(line, 'base64').toString('utf8');
        mode = 'auth-login-pass';
        reply('334 UGFzc3dvcmQ6');
        return;
      }
      if (mode === 'auth-login-pass') {
        mode = 'command';
        checkAuth(loginUser, Buffer.from(line, 'base64').toString('utf8'));
        return;
      }
      switch (verb) {
        case 'EHLO': {
          const lines = ['sink.test', '8BITMIME', 'SIZE 20000000'];
          if (opts.starttls && !s.tls) lines.push('STARTTLS');
          if (opts.auth) lines.push(`AUTH ${(opts.auth.mechs ?? ['PLAIN', 'LOGIN']).join(' ')}`);
          reply(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`).join('\r\n'));
          break;
        }
        case 'HELO': reply('250 sink.test'); break;
        case 'STARTTLS': {
          if (!opts.starttls || s.tls) { reply('502 5.5.1 not here'); break; }
          reply('220 2.0.0 Ready to start TLS');
          sock.removeListener('data', onData);
          const t = new TLSSocket(sock, { isServer: true,
            secureContext: createSecureContext({ key: opts.starttls.key, cert: opts.starttls.cert }) });
          t.on('error', () => {});
          t.on('data', onData);
          out = t;
          s.tls = true;
          buf = Buffer.alloc(0);
          break;
        }
        case 'AUTH': {
          const [mech, initial] = arg.split(' ');
          if (!opts.auth) { reply('502 5.5.1 no AUTH'); break; }
          if (mech.toUpperCase() === 'PLAIN') {
            if (initial) plain(initial); else { mode = 'auth-plain'; reply('334 '); }
          } else if (mech.toUpperCase() === 'LOGIN') {
            if (initial) {
              loginUser = Buffer.from(initial, 'base64').toString('utf8');
              mode = 'auth-login-pass';
              reply('334 UGFzc3dvcmQ6');
            } else {
              mode = 'auth-login-user';
              reply('334 VXNlcm5hbWU6');
            }
          } else {
            reply('504 5.5.4 mechanism not supported');
          }
          break;
        }
        case 'MAIL':
          if (opts.auth && !s.user) { reply('530 5.7.0 Authentication required'); break; }
          s.from = /^FROM:<([^>]*)>/i.exec(arg)?.[1] ?? null;
          s.to = [];
          reply('250 2.1.0 Ok');
          break;
        case 'RCPT': {
          const to = /^TO:<([^>]*)>/i.exec(arg)?.[1] ?? null;
          const code = opts.rejectRcpt?.[to];
          if (code) { reply(`${code} 5.1.1 <${to}>: Recipient address rejected`); break; }
          s.to.push(to);
          reply('250 2.1.5 Ok');
          break;
        }
        case 'DATA':
          if (s.from === null || s.to.length === 0) { reply('503 5.5.1 bad sequence'); break; }
          mode = 'data';
          reply('354 End data with <CR><LF>.<CR><LF>');
          break;
        case 'RSET': s.from = null; s.to = []; reply('250 2.0.0 Ok'); break;
        case 'NOOP': reply('250 2.0.0 Ok'); break;
        case 'QUIT':
          s.quitReceived = true;
          later(opts.holdQuit && 'quit', opts.quitDelayMs,
            () => { s.quitAnswered = true; reply('221 2.0.0 Bye'); out.end(); });
          break;
        default: reply('502 5.5.2 Error: command not recognized');
      }
    };
    // The message ends at CRLF.CRLF; the CRLF before the dot is the
    // message's own.  Lines the client dot-stuffed lose their first dot.
    const endOfData = () => {
      const all = Buffer.concat([Buffer.from('\r\n'), buf]);
      const i = all.indexOf('\r\n.\r\n');
      if (i === -1) return false;
      const raw = all.subarray(2, i + 2).toString('latin1').replace(/(^|\r\n)\./g, '$1');
      buf = all.subarray(i + 5);
      mode = 'command';
      s.dataEnded = true;
      sink.mails.push({ from: s.from, to: s.to, data: Buffer.from(raw, 'latin1'), tls: s.tls,
        user: s.user });
      later(opts.holdData && 'data', opts.dataDelayMs, () => reply('250 2.0.0 Ok: queued as SINK1'));
      return true;
    };
    function onData(d) {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (mode === 'data') { if (!endOfData()) return; continue; }
        const i = buf.indexOf('\r\n');
        if (i === -1) return;
        const line = buf.subarray(0, i).toString('utf8');
        buf = buf.subarray(i + 2);
        command(line);
      }
    }
    sock.on('data', onData);
    reply('220 sink.test ESMTP ready');
  };
  const server = opts.implicitTls
    ? createTlsServer({ key: opts.implicitTls.key, cert: opts.implicitTls.cert }, (s) => onConnection(s, true))
    : createServer((s) => onConnection(s, false));
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  sink.port = server.address().port;
  sink.url = `${opts.implicitTls ? 'smtps' : 'smtp'}://127.0.0.1:${sink.port}`;
  sink.close = () => {
    for (const s of sink.sockets) s.destroy();
    return new Promise((res) => server.close(() => res()));
  };
  sinks.push(sink);
  return sink;
}

// ---------------------------------------------------------------------------

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'sb-mail-'));
  trusted = selfSigned(certDir, 'trusted');
  untrusted = selfSigned(certDir, 'untrusted');
  srv = await startServer({ workers: 1, plugins: PLUGINS, host: { ca_bundle: trusted.certPath } });
});

after(async () => {
  for (const s of sinks) await s.close();
  await srv?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

function send(args) {
  return srv.request('POST', SEND, { json: args });
}

async function sendOk(args) {
  const r = await send(args);
  assert.equal(r.status, 200, r.text);
  return r.body;
}

const MESSAGE = [
  'From: Sender <sender@example.org>',
  'To: a@example.org, b@example.org',
  'Subject: =?UTF-8?Q?h=C3=A9llo?=',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Line one, héllo.',
  '.a line starting with a dot',
  '.',
  '..two dots',
  'last line',
  '',
].join('\r\n');

function base(sink, extra = {}) {
  return { url: sink.url, from: 'sender@example.org', to: ['rcpt@example.org'],
    message: MESSAGE, timeout_ms: 60000, ...extra };
}

test('plain SMTP: the sink receives exactly the envelope and the message bytes', async () => {
  const sink = await startSink();
  const r = await sendOk(base(sink, { from: '<sender@example.org>',
    to: ['a@example.org', '<b@example.org>'] }));
  assert.equal(r.error, null, r.error);
  assert.equal(r.ok, true);
  assert.equal(r.smtp_code, 250);
  assert.equal(typeof r.elapsed_ms, 'number');
  assert.equal(sink.mails.length, 1);
  const m = sink.mails[0];
  assert.equal(m.from, 'sender@example.org');
  assert.deepEqual(m.to, ['a@example.org', 'b@example.org']);
  assert.ok(m.data.equals(Buffer.from(MESSAGE, 'utf8')),
    `message bytes differ:\n${JSON.stringify(m.data.toString('utf8'))}`);
  assert.equal(m.tls, false);
  assert.equal(m.user, null);
  // The connection is the mail's own and is closed politely.
  assert.ok(await poll(() => sink.sessions[0].quitAnswered, { interval: 20 }), 'QUIT was sent');
  assert.equal(sink.sessions.length, 1);

  // A message without a final CRLF gets one (the end marker needs it).
  const r2 = await sendOk(base(sink, { message: 'Subject: x\r\n\r\nno newline' }));
  assert.equal(r2.ok, true);
  assert.equal(sink.mails[1].data.toString(), 'Subject: x\r\n\r\nno newline\r\n');

  // The null sender (bounces) is allowed.
  const r3 = await sendOk(base(sink, { from: '<>' }));
  assert.equal(r3.ok, true, r3.error);
  assert.equal(sink.mails[2].from, '');
});

test('the access line and the mail line carry no secrets and no content', async () => {
  const sink = await startSink({ auth: { username: 'mailuser', password: 'S3cret-pass-XYZ' } });
  const n = srv.logs.length;
  const r = await sendOk(base(sink, { username: 'mailuser', password: 'S3cret-pass-XYZ',
    message: 'Subject: private\r\n\r\nTOP-SECRET-BODY-42\r\n' }));
  assert.equal(r.ok, true, r.error);
  const line = await poll(() => srv.logs.slice(n).find((l) => l.component === 'mail'));
  assert.ok(line, 'a mail log line');
  assert.match(line.msg, new RegExp(`127\\.0\\.0\\.1:${sink.port}`));
  assert.doesNotMatch(srv.output, /S3cret-pass-XYZ/);
  assert.doesNotMatch(srv.output, /TOP-SECRET-BODY-42/);
  assert.doesNotMatch(srv.output, /rcpt@example\.org/);
});

for (const mechs of [['PLAIN'], ['LOGIN'], ['PLAIN', 'LOGIN']]) {
  test(`AUTH ${mechs.join(' ')}: the configured credentials; a wrong password is 535`, async () => {
    const sink = await startSink({ auth: { username: 'mailuser', password: 'pä55 word', mechs } });
    const ok = await sendOk(base(sink, { username: 'mailuser', password: 'pä55 word' }));
    assert.equal(ok.ok, true, ok.error);
    assert.equal(ok.smtp_code, 250);
    assert.equal(sink.mails.length, 1);
    assert.equal(sink.mails[0].user, 'mailuser');

    const bad = await sendOk(base(sink, { username: 'mailuser', password: 'wrong' }));
    assert.equal(bad.ok, false);
    assert.equal(bad.smtp_code, 535);
    assert.equal(typeof bad.error, 'string');
    assert.equal(sink.mails.length, 1, 'nothing delivered without a login');

    // No credentials: the server's 530 comes back.
    const none = await sendOk(base(sink));
    assert.equal(none.ok, false);
    assert.equal(none.smtp_code, 530);
    assert.equal(sink.mails.length, 1);
  });
}

test('STARTTLS required and offered: delivered over verified TLS, with AUTH', async () => {
  const sink = await startSink({ starttls: trusted,
    auth: { username: 'tlsuser', password: 'tls-pass' } });
  const r = await sendOk(base(sink, { starttls: true, username: 'tlsuser', password: 'tls-pass' }));
  assert.equal(r.error, null, r.error);
  assert.equal(r.ok, true);
  assert.equal(sink.mails.length, 1);
  assert.equal(sink.mails[0].tls, true, 'the message went over TLS');
  assert.equal(sink.mails[0].user, 'tlsuser');
  assert.ok(sink.mails[0].data.equals(Buffer.from(MESSAGE)));
  const cmds = sink.sessions[0].commands.map((c) => c.split(' ')[0].toUpperCase());
  assert.ok(cmds.indexOf('STARTTLS') !== -1 && cmds.indexOf('STARTTLS') < cmds.indexOf('AUTH'),
    `STARTTLS before AUTH: ${cmds.join(',')}`);
  // by name too (the certificate names localhost)
  const byName = await sendOk(base(sink, { url: `smtp://localhost:${sink.port}`, starttls: true,
    username: 'tlsuser', password: 'tls-pass' }));
  assert.equal(byName.ok, true, byName.error);
});

test('STARTTLS with a certificate outside the CA bundle: refused, nothing delivered', async () => {
  const sink = await startSink({ starttls: untrusted });
  const r = await sendOk(base(sink, { starttls: true }));
  assert.equal(r.ok, false);
  assert.match(r.error, /certificate|SSL/i);
  assert.equal(sink.mails.length, 0);
  assert.ok(!sink.sessions.some((s) => s.from !== null), 'no MAIL FROM was sent');
});

test('STARTTLS required but not offered: fails, nothing sent; not required: plain', async () => {
  const sink = await startSink({ auth: { username: 'u', password: 'never-in-clear' } });
  const r = await sendOk(base(sink, { starttls: true, username: 'u', password: 'never-in-clear' }));
  assert.equal(r.ok, false);
  assert.match(r.error, /STARTTLS/i);
  assert.equal(sink.mails.length, 0);
  const cmds = sink.sessions[0].commands.map((c) => c.split(' ')[0].toUpperCase());
  assert.ok(!cmds.includes('AUTH') && !cmds.includes('MAIL'), `no AUTH, no MAIL: ${cmds}`);

  const plain = await sendOk(base(sink, { username: 'u', password: 'never-in-clear' }));
  assert.equal(plain.ok, true, plain.error);
  assert.equal(sink.mails[0].tls, false);
});

test('smtps:// is TLS from the first byte', async () => {
  const sink = await startSink({ implicitTls: trusted });
  assert.match(sink.url, /^smtps:/);
  const r = await sendOk(base(sink));
  assert.equal(r.ok, true, r.error);
  assert.equal(sink.mails[0].tls, true);

  const other = await startSink({ implicitTls: untrusted });
  const bad = await sendOk(base(other));
  assert.equal(bad.ok, false);
  assert.equal(other.mails.length, 0);
});

test('a 5xx on RCPT: not sent, with that code', async () => {
  const sink = await startSink({ rejectRcpt: { 'nobody@example.org': 550 } });
  const r = await sendOk(base(sink, { to: ['ok@example.org', 'nobody@example.org'] }));
  assert.equal(r.ok, false);
  assert.equal(r.smtp_code, 550);
  assert.match(r.error, /RCPT/);
  assert.equal(sink.mails.length, 0);
  assert.ok(!sink.sessions[0].commands.some((c) => /^DATA/i.test(c)), 'no DATA');
});

test('a server that is down: an error at once, not at the timeout', async () => {
  const port = await freePort();
  const r = await sendOk({ url: `smtp://127.0.0.1:${port}`, from: 'a@example.org',
    to: ['b@example.org'], message: MESSAGE, timeout_ms: 60000 });
  assert.equal(r.ok, false);
  assert.equal(r.smtp_code, 0);
  assert.match(r.error, /connect/i);
  assert.ok(r.elapsed_ms < 30000, `failed before the timeout (${r.elapsed_ms} ms)`);
});

// Each /healthz in turn, while `pending` has not settled: all answered.
async function healthzWhile(pendingState, n = 5) {
  for (let i = 0; i < n; i++) {
    const h = await srv.request('GET', '/healthz');
    assert.equal(h.status, 200);
  }
  assert.equal(pendingState.settled, false, 'the mail was still pending while /healthz answered');
}

function track(promise) {
  const state = { settled: false };
  state.promise = promise.finally(() => { state.settled = true; });
  return state;
}

test('a server that never answers: timed out after timeout_ms; the worker keeps serving', async () => {
  // /healthz must be answered while the mail is pending, which is only
  // shown if the checks end before the timeout does: a round a loaded
  // machine made slower than that is done again with a longer timeout.
  for (let timeout = 2000; ; timeout *= 2) {
    assert.ok(timeout <= 32000, 'no round finished its /healthz checks within the mail timeout');
    const sink = await startSink({ silent: true });
    const pending = track(sendOk(base(sink, { timeout_ms: timeout })));
    assert.ok(await poll(() => sink.sessions.length === 1, { interval: 20 }), 'connected');
    for (let i = 0; i < 5; i++) assert.equal((await srv.request('GET', '/healthz')).status, 200);
    const conclusive = !pending.settled;
    const r = await pending.promise;
    assert.equal(r.ok, false);
    assert.equal(r.error, 'timed out');
    assert.equal(r.smtp_code, 0);
    assert.ok(r.elapsed_ms >= timeout - 100, `not before the timeout (${r.elapsed_ms} ms)`);
    if (conclusive) break;
  }
});

test('a server slow to accept the message and to say goodbye does not hold the worker', async () => {
  // libcurl waits for these two replies with a blocking poll: on the
  // event loop they would stop every request of the worker.
  // Both replies are held until the test lets them go.
  const sink = await startSink({ holdData: true, holdQuit: true });
  const pending = track(sendOk(base(sink)));
  assert.ok(await poll(() => sink.sessions[0]?.dataEnded, { interval: 10 }), 'message sent');
  await healthzWhile(pending);
  sink.release('data');
  const r = await pending.promise;
  assert.equal(r.ok, true, r.error);
  assert.equal(r.smtp_code, 250);
  // The answer came when the message was accepted, not after QUIT.
  assert.ok(sink.sessions[0].quitReceived || await poll(() => sink.sessions[0].quitReceived, { interval: 10 }),
    'QUIT was sent');
  assert.equal(sink.sessions[0].quitAnswered, false, 'answered before the QUIT reply');
  const h = await srv.request('GET', '/healthz');
  assert.equal(h.status, 200);
  sink.release('quit');
  assert.ok(await poll(() => sink.sessions[0].quitAnswered, { interval: 50 }), 'QUIT went out');
});

test('many mails at once: each answered once, all delivered', async () => {
  const sink = await startSink({ dataDelayMs: 200 });
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) =>
    sendOk(base(sink, { to: [`r${i}@example.org`] }))));
  for (const a of answers) assert.equal(a.ok, true, a.error);
  assert.equal(sink.mails.length, 40);
  assert.deepEqual(sink.mails.map((m) => m.to[0]).sort(),
    Array.from({ length: 40 }, (_, i) => `r${i}@example.org`).sort());
});

test('malformed mails are refused with 400 and reach no server', async () => {
  const sink = await startSink();
  const ok = base(sink);
  const big = 'x'.repeat(10 * 1024 * 1024 + 1);
  for (const [what, args] of [
    ['ftp URL', { ...ok, url: `ftp://127.0.0.1:${sink.port}` }],
    ['http URL', { ...ok, url: `http://127.0.0.1:${sink.port}` }],
    ['not a URL', { ...ok, url: 'not a url' }],
    ['no host', { ...ok, url: 'smtp://' }],
    ['credentials in the URL', { ...ok, url: `smtp://u:p@127.0.0.1:${sink.port}` }],
    ['query in the URL', { ...ok, url: `smtp://127.0.0.1:${sink.port}/?x=1` }],
    ['CRLF in the URL', { ...ok, url: `smtp://127.0.0.1:${sink.port}/\r\nQUIT` }],
    ['empty from', { ...ok, from: '' }],
    ['CRLF in from', { ...ok, from: 'a@example.org\r\nRCPT TO:<x@evil.org>' }],
    ['LF in from', { ...ok, from: 'a@example.org\nx' }],
    ['parameters in from', { ...ok, from: 'a@example.org> SIZE=1' }],
    ['no recipients', { ...ok, to: [] }],
    ['empty recipient', { ...ok, to: [''] }],
    ['null sender as a recipient', { ...ok, to: ['<>'] }],
    ['CRLF in a recipient', { ...ok, to: ['b@example.org\r\nDATA'] }],
    ['space in a recipient', { ...ok, to: ['b@example.org NOTIFY=NEVER'] }],
    ['101 recipients', { ...ok, to: Array.from({ length: 101 }, (_, i) => `r${i}@example.org`) }],
    ['empty message', { ...ok, message: '' }],
    ['message over 10 MiB', { ...ok, message: big }],
    ['password without username', { ...ok, password: 'p' }],
    ['empty username', { ...ok, username: '', password: 'p' }],
    ['CRLF in username', { ...ok, username: 'u\r\nx', password: 'p' }],
  ]) {
    const r = await send(args);
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(r.body.code, 'VALIDATION_ERROR', what);
    assert.equal(r.body.message, REFUSED, what);
  }
  assert.equal(sink.sessions.length, 0, 'nothing refused reached the server');

  // At the limits is fine.
  const limits = await sendOk({ ...ok, to: Array.from({ length: 100 }, (_, i) => `r${i}@example.org`) });
  assert.equal(limits.ok, true, limits.error);
  // A later mail that did arrive: anything refused before it would have
  // connected by now, and nothing did.
  assert.equal(sink.sessions.length, 1, 'only the mail at the limits reached the server');
  assert.equal(sink.mails[0].to.length, 100);
  const biggest = `Subject: big\r\n\r\n${'y'.repeat(10 * 1024 * 1024 - 18)}\r\n`;
  assert.equal(Buffer.byteLength(biggest), 10 * 1024 * 1024);
  const r = await sendOk({ ...ok, message: biggest });
  assert.equal(r.ok, true, r.error);
  assert.ok(sink.mails[1].data.equals(Buffer.from(biggest)), 'the 10 MiB message arrived whole');
});

test('the server is still healthy, without sanitizer reports', async () => {
  const h = await srv.request('GET', '/healthz');
  assert.equal(h.status, 200);
  assert.equal(srv.exited, null);
  assert.deepEqual(srv.sanitizerReports(), []);
  assert.doesNotMatch(srv.output, /SIGSYS|died|killed|violation/i);
});
