// A local SMTP sink (an RFC 5321 subset with STARTTLS and AUTH) for
// black-box tests of outbound mail.
//
//   const tls = selfSignedCert();                       // {key, cert, certPath}
//   const smtp = await startSmtp({ auth: { username: 'mailer', password: 's3cret' },
//     starttls: tls, requireTls: true });
//   ... point the server at smtp.host / smtp.port (smtp.url = smtp://127.0.0.1:PORT) ...
//   smtp.messages            // [{from, to: [...], data, raw, tls, authUser, at, ...}]
//   parseMessage(smtp.messages[0].data).text / .html / .headers.subject
//   smtp.fail([{ at: 'RCPT', code: 550 }, { at: 'DATA', code: 451 }, { at: 'MAIL', hang: true }]);
//   await smtp.down();  ...  await smtp.up();         // refuse connects, then listen again
//   await smtp.waitForMessages(1);
//   await smtp.close();
//
// ---------------------------------------------------------------------------
// Protocol, and where each piece comes from
// ---------------------------------------------------------------------------
//   [5321] SMTP, https://www.rfc-editor.org/rfc/rfc5321 : greeting 220,
//          EHLO multi-line 250 ("250-" continuation, "250 " last), HELO, MAIL
//          FROM:<path> [params], RCPT TO:<path>, DATA -> 354, the data ends
//          with <CRLF>.<CRLF> whose first CRLF ends the last line of the
//          message; a line starting with "." is sent with an extra "."
//          (dot-stuffing, 4.5.2) and the receiver removes it; RSET, NOOP,
//          QUIT -> 221; 421 closes the channel; 503 bad sequence; 500/501
//          syntax; 552 size.
//   [3207] STARTTLS, https://www.rfc-editor.org/rfc/rfc3207 : 220 "Ready to
//          start TLS"; the server forgets everything learned before (EHLO,
//          AUTH) and must not advertise STARTTLS again; with a TLS policy a
//          server answers every command but NOOP, EHLO, STARTTLS, QUIT (HELO
//          and RSET are also allowed here) with "530 Must issue a STARTTLS
//          command first".
//   [4954] AUTH, https://datatracker.ietf.org/doc/rfc4954/ : "AUTH mech
//          [initial-response]", 334 challenges in base64, "*" cancels (501),
//          undecodable base64 -> 501, bad credentials -> 535 5.7.8, success
//          235 2.7.0, "530 5.7.0 Authentication required" for commands other
//          than AUTH/EHLO/HELO/NOOP/RSET/QUIT, a second AUTH -> 503,
//          unknown mechanism -> 504. Error-code list confirmed from a stored
//          copy of the RFC text (4954 section 6).
//   [4616] PLAIN: base64(authzid NUL authcid NUL passwd); "=" is an empty
//          initial response.
//   LOGIN: draft-murchison-sasl-login; challenges "334 VXNlcm5hbWU6"
//          ("Username:") and "334 UGFzc3dvcmQ6" ("Password:"), optional
//          initial response = the username (confirmed from Microsoft's
//          MS-XLOGIN grammar, https://msdn.microsoft.com/en-us/library/ee202408).
//   [3463] enhanced status codes (the x.y.z after the reply code).
//   [2045]/[2046]/[2047] MIME (for parseMessage): quoted-printable and
//          base64 transfer encodings, multipart boundaries, encoded-words.
//
// Choices of this fake (not dictated by the RFCs):
//   * The data mode only recognises the strict <CRLF>.<CRLF> terminator
//     (bare-LF terminators are not accepted), and in data mode the
//     message is stored exactly as received after dot-unstuffing,
//     including the CRLF that ends its last line.
//   * Plaintext pipelined after STARTTLS is discarded (RFC 3207 security
//     advice).
//   * AUTH is advertised only when opts.auth is set and, with requireTls,
//     only after STARTTLS. Without opts.auth, AUTH answers 502 and MAIL
//     needs no authentication.
//   * Reply texts are this fake's own; only the codes matter.
import { createServer } from 'node:net';
import { TLSSocket } from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

// A throwaway key+certificate for 127.0.0.1/localhost, made with openssl.
export function selfSignedCert() {
  const dir = mkdtempSync(join(tmpdir(), 'sb-smtp-cert-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath,
    '-out', certPath, '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-days', '1'], { stdio: 'pipe' });
  return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), certPath,
    keyPath, dir };
}

const DEFAULT_TEXT = {
  421: '4.3.2 Service not available, closing transmission channel',
  450: '4.2.1 Mailbox unavailable, try again later',
  451: '4.3.0 Requested action aborted: local error in processing',
  452: '4.3.1 Insufficient system storage',
  454: '4.7.0 Temporary authentication failure',
  530: '5.7.0 Authentication required',
  535: '5.7.8 Authentication credentials invalid',
  550: '5.1.1 Mailbox unavailable',
  551: '5.1.6 User not local',
  552: '5.3.4 Message size exceeds fixed maximum message size',
  553: '5.1.3 Mailbox name not allowed',
  554: '5.0.0 Transaction failed',
};
const STAGES = new Set(['CONNECT', 'EHLO', 'HELO', 'STARTTLS', 'AUTH', 'MAIL', 'RCPT', 'DATA',
  'DOT', 'RSET', 'NOOP', 'QUIT']);
const STAGE_ALIASES = { EOM: 'DOT', DATA_END: 'DOT', BODY: 'DOT', MESSAGE: 'DOT', 'MAIL FROM': 'MAIL',
  'RCPT TO': 'RCPT', GREETING: 'CONNECT', CONNECTION: 'CONNECT' };
const LOGIN_USER = 'VXNlcm5hbWU6';	// base64("Username:")
const LOGIN_PASS = 'UGFzc3dvcmQ6';	// base64("Password:")
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

const decodeB64 = (s) => {
  const t = s.trim();
  if (t === '=') return Buffer.alloc(0);
  if (!B64_RE.test(t) || t.length % 4 === 1) return null;
  return Buffer.from(t, 'base64');
};

// opts: auth {username, password} | null; starttls {key, cert} | null;
// requireTls (STARTTLS before anything else); hostname (greeting name);
// maxSize (bytes, advertised as SIZE; default 10 MiB); port (default 0 =
// any free one).
export async function startSmtp(opts = {}) {
  const auth = opts.auth ?? null;
  const starttls = opts.starttls ?? null;
  const requireTls = !!opts.requireTls;
  if (requireTls && !starttls) throw new Error('requireTls needs starttls {key, cert}');
  const hostname = opts.hostname ?? 'fake-smtp.test';
  const maxSize = opts.maxSize ?? 10 * 1024 * 1024;
  const script = [];
  const sockets = new Set();
  let sessionSeq = 0;
  let isUp = false;

  const smtp = {
    host: '127.0.0.1',
    messages: [],	// accepted: {id, from, to, data, raw, size, tls, authUser, helo,
    // mailParams, at, session}
    rejected: [],	// bodies refused by a scripted DOT step
    sessions: [],	// {id, tls, helo, authUser, transcript: [{dir: 'C'|'S', line}], closed}
    authAttempts: [],	// {mechanism, username, ok, tls, at}

    // Script replies. Each step is consumed by the next occurrence of its
    // stage: at = CONNECT (greeting), EHLO, HELO, STARTTLS, AUTH, MAIL, RCPT,
    // DATA (the reply to the DATA command, instead of 354) or DOT (the reply
    // after the message body; the message is not stored). A step without
    // `at` applies to the next connection. Forms: {at, code, message?}
    // (reply `${code} ${message}`; 421 also closes the connection),
    // {at, hang: true} (never reply; the client must time out),
    // {at, close: true} (drop the connection without a reply).
    fail(steps) {
      for (const s of steps) {
        const at = String(s.at ?? 'CONNECT').toUpperCase();
        const stage = STAGE_ALIASES[at] ?? at;
        if (!STAGES.has(stage)) throw new Error(`unknown SMTP stage ${s.at}`);
        script.push({ ...s, at: stage });
      }
    },
    pending() { return script.map((s) => ({ ...s })); },

    async waitForMessages(n, timeoutMs = 60000) {
      const t0 = Date.now();
      while (smtp.messages.length < n) {
        if (Date.now() - t0 > timeoutMs) {
          throw new Error(`timed out waiting for ${n} SMTP messages (have ${smtp.messages.length})`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return smtp.messages;
    },

    reset() {
      script.length = 0;
      smtp.messages.length = 0;
      smtp.rejected.length = 0;
      smtp.sessions.length = 0;
      smtp.authAttempts.length = 0;
    },
  };

  const takeStep = (stage) => {
    const i = script.findIndex((s) => s.at === stage);
    return i < 0 ? null : script.splice(i, 1)[0];
  };

  function handleConnection(rawSocket) {
    sockets.add(rawSocket);
    rawSocket.on('close', () => sockets.delete(rawSocket));
    const session = { id: ++sessionSeq, remotePort: rawSocket.remotePort, tls: false, helo: null,
      esmtp: false, authUser: null, transcript: [], closed: false };
    smtp.sessions.push(session);
    let sock = rawSocket;
    let buf = Buffer.alloc(0);
    let mode = 'command';	// command | data | auth-plain | auth-login-user | auth-login-pass | hung | closed
    let tx = null;	// {from, to: [], mailParams}
    let loginUser = null;
    let dataSearchFrom = 0;

    const write = (line) => {
      if (mode === 'closed' || sock.destroyed) return;
      session.transcript.push({ dir: 'S', line });
      sock.write(`${line}\r\n`);
    };
    const reply = (code, text) => {
      const lines = Array.isArray(text) ? text : [text];
      lines.forEach((l, i) => write(`${code}${i < lines.length - 1 ? '-' : ' '}${l}`));
    };
    const close = () => {
      mode = 'closed';
      session.closed = true;
      sock.end();
    };
    // Applies a scripted step for stage; returns true when it took over.
    const scripted = (stage) => {
      const step = takeStep(stage);
      if (!step) return false;
      session.transcript.push({ dir: 'S', line: `(scripted ${stage}: ${JSON.stringify(step)})` });
      if (step.hang) { mode = 'hung'; return true; }
      if (step.close) { mode = 'closed'; session.closed = true; sock.destroy(); return true; }
      const code = step.code ?? 451;
      reply(code, step.message ?? DEFAULT_TEXT[code] ?? 'Scripted failure');
      if (code === 421) close();
      return true;
    };

    const resetSession = () => {
      session.helo = null;
      session.esmtp = false;
      session.authUser = null;
      tx = null;
    };

    function ehloLines() {
      const lines = [`${hostname} greets ${session.helo}`, `SIZE ${maxSize}`, '8BITMIME',
        'PIPELINING', 'ENHANCEDSTATUSCODES'];
      if (starttls && !session.tls) lines.push('STARTTLS');
      if (auth && (session.tls || !requireTls)) lines.push('AUTH PLAIN LOGIN');
      return lines;
    }

    function checkCredentials(mechanism, username, password) {
      const ok = !!auth && username === auth.username && password === auth.password;
      smtp.authAttempts.push({ mechanism, username, ok, tls: session.tls, at: Date.now() });
      mode = 'command';
      if (ok) {
        session.authUser = username;
        reply(235, '2.7.0 Authentication successful');
      } else {
        reply(535, DEFAULT_TEXT[535]);
      }
    }

    function authPlain(payload) {
      const dec = decodeB64(payload);
      if (!dec) { mode = 'command'; return reply(501, '5.5.2 Cannot decode response'); }
      const parts = dec.toString('utf8').split('\0');
      if (parts.length !== 3) {
        smtp.authAttempts.push({ mechanism: 'PLAIN', username: null, ok: false, tls: session.tls,
          at: Date.now() });
        mode = 'command';
        return reply(535, DEFAULT_TEXT[535]);
      }
      return checkCredentials('PLAIN', parts[1], parts[2]);
    }

    function onAuthLine(line) {
      if (line.trim() === '*') { mode = 'command'; return reply(501, '5.0.0 Authentication cancelled'); }
      if (mode === 'auth-plain') return authPlain(line);
      const dec = decodeB64(line);
      if (!dec) { mode = 'command'; return reply(501, '5.5.2 Cannot decode response'); }
      if (mode === 'auth-login-user') {
        loginUser = dec.toString('utf8');
        mode = 'auth-login-pass';
        return reply(334, LOGIN_PASS);
      }
      return checkCredentials('LOGIN', loginUser, dec.toString('utf8'));
    }

    function cmdAuth(arg) {
      if (!auth) return reply(502, '5.5.1 AUTH not available');
      if (!session.helo || !session.esmtp) return reply(503, '5.5.1 Send EHLO first');
      if (session.authUser) return reply(503, '5.5.1 Already authenticated');
      if (tx) return reply(503, '5.5.1 AUTH not permitted during a mail transaction');
      if (scripted('AUTH')) return undefined;
      const [mech, initial] = arg.trim().split(/\s+/);
      switch ((mech ?? '').toUpperCase()) {
        case 'PLAIN':
          if (initial !== undefined) return authPlain(initial);
          mode = 'auth-plain';
          return reply(334, '');
        case 'LOGIN':
          if (initial !== undefined) {
            const dec = decodeB64(initial);
            if (!dec) return reply(501, '5.5.2 Cannot decode response');
            loginUser = dec.toString('utf8');
            mode = 'auth-login-pass';
            return reply(334, LOGIN_PASS);
          }
          mode = 'auth-login-user';
          return reply(334, LOGIN_USER);
        case '':
          return reply(501, '5.5.4 Syntax: AUTH mechanism');
        default:
          return reply(504, '5.5.4 Unrecognized authentication type');
      }
    }

    function parseParams(s) {
      const out = {};
      for (const p of s.trim().split(/\s+/).filter(Boolean)) {
        const eq = p.indexOf('=');
        if (eq < 0) out[p.toUpperCase()] = true; else out[p.slice(0, eq).toUpperCase()] = p.slice(eq + 1);
      }
      return out;
    }

    function startTls() {
      if (!starttls) return reply(502, '5.5.1 STARTTLS not available');
      if (session.tls) return reply(503, '5.5.1 TLS already active');
      if (scripted('STARTTLS')) return undefined;
      reply(220, '2.0.0 Ready to start TLS');
      buf = Buffer.alloc(0);	// discard anything pipelined in plaintext
      mode = 'upgrading';
      const plain = sock;
      plain.removeListener('data', onData);
      const secure = new TLSSocket(plain, { isServer: true, key: starttls.key, cert: starttls.cert });
      secure.on('secure', () => {
        resetSession();
        session.tls = true;
        mode = 'command';
      });
      secure.on('data', onData);
      secure.on('error', () => secure.destroy());
      sock = secure;
      return undefined;
    }

    function onCommand(line) {
      session.transcript.push({ dir: 'C', line });
      const m = /^\s*([A-Za-z]+)(?:\s+(.*))?$/.exec(line);
      if (!m) return reply(500, '5.5.2 Syntax error, command unrecognized');
      const verb = m[1].toUpperCase();
      const arg = m[2] ?? '';
      const tlsExempt = ['EHLO', 'HELO', 'STARTTLS', 'NOOP', 'RSET', 'QUIT'];
      if (requireTls && !session.tls && !tlsExempt.includes(verb)) {
        return reply(530, '5.7.0 Must issue a STARTTLS command first');
      }
      switch (verb) {
        case 'EHLO':
        case 'HELO': {
          if (!arg.trim()) return reply(501, `5.5.4 Syntax: ${verb} hostname`);
          if (scripted(verb)) return undefined;
          tx = null;
          session.helo = arg.trim();
          session.esmtp = verb === 'EHLO';
          return verb === 'EHLO' ? reply(250, ehloLines()) : reply(250, `${hostname}`);
        }
        case 'STARTTLS':
          return startTls();
        case 'AUTH':
          return cmdAuth(arg);
        case 'MAIL': {
          const mm = /^FROM:\s*<([^>]*)>(.*)$/i.exec(arg);
          if (!mm) return reply(501, '5.5.4 Syntax: MAIL FROM:<address>');
          if (!session.helo) return reply(503, '5.5.1 Error: send HELO/EHLO first');
          if (auth && !session.authUser) return reply(530, DEFAULT_TEXT[530]);
          if (tx) return reply(503, '5.5.1 Error: nested MAIL command');
          const mailParams = parseParams(mm[2]);
          if (mailParams.SIZE !== undefined && Number(mailParams.SIZE) > maxSize) {
            return reply(552, DEFAULT_TEXT[552]);
          }
          if (scripted('MAIL')) return undefined;
          tx = { from: mm[1], to: [], mailParams };
          return reply(250, '2.1.0 Sender OK');
        }
        case 'RCPT': {
          const mm = /^TO:\s*<([^>]+)>(.*)$/i.exec(arg);
          if (!mm) return reply(501, '5.5.4 Syntax: RCPT TO:<address>');
          if (!tx) return reply(503, '5.5.1 Error: need MAIL command');
          if (scripted('RCPT')) return undefined;
          tx.to.push(mm[1]);
          return reply(250, '2.1.5 Recipient OK');
        }
        case 'DATA': {
          if (arg.trim()) return reply(501, '5.5.4 Syntax: DATA');
          if (!tx) return reply(503, '5.5.1 Error: need MAIL command');
          if (!tx.to.length) return reply(503, '5.5.1 Error: need RCPT command');
          if (scripted('DATA')) return undefined;
          mode = 'data';
          dataSearchFrom = 0;
          return reply(354, 'End data with <CR><LF>.<CR><LF>');
        }
        case 'RSET':
          if (scripted('RSET')) return undefined;
          tx = null;
          return reply(250, '2.0.0 OK');
        case 'NOOP':
          if (scripted('NOOP')) return undefined;
          return reply(250, '2.0.0 OK');
        case 'VRFY':
          return reply(252, '2.0.0 Cannot VRFY user');
        case 'QUIT':
          if (scripted('QUIT')) return undefined;
          reply(221, '2.0.0 Bye');
          return close();
        default:
          return reply(500, '5.5.2 Syntax error, command unrecognized');
      }
    }

    function endOfData(content) {
      // Dot-unstuffing (RFC 5321 4.5.2), byte-exact via latin1.
      const raw = Buffer.from(content.toString('latin1').replace(/(^|\r\n)\./g, '$1'), 'latin1');
      session.transcript.push({ dir: 'C', line: `(${raw.length} bytes of data)` });
      mode = 'command';
      const t = tx;
      tx = null;
      const record = { id: randomBytes(6).toString('hex'), from: t.from, to: [...t.to],
        data: raw.toString('utf8'), raw, size: raw.length, tls: session.tls,
        authUser: session.authUser, helo: session.helo, mailParams: t.mailParams,
        at: Date.now(), session: session.id };
      if (scripted('DOT')) {
        smtp.rejected.push(record);
        return;
      }
      if (raw.length > maxSize) {
        smtp.rejected.push(record);
        reply(552, DEFAULT_TEXT[552]);
        return;
      }
      smtp.messages.push(record);
      reply(250, `2.0.0 OK: queued as ${record.id}`);
    }

    function process() {
      for (;;) {
        if (mode === 'hung' || mode === 'closed' || mode === 'upgrading') {
          if (mode !== 'upgrading') buf = Buffer.alloc(0);
          return;
        }
        if (mode === 'data') {
          let end = -1;
          let restAt = -1;
          if (buf.length >= 3 && buf[0] === 0x2e && buf[1] === 0x0d && buf[2] === 0x0a) {
            end = 0;
            restAt = 3;
          } else {
            const i = buf.indexOf('\r\n.\r\n', Math.max(0, dataSearchFrom - 4));
            if (i >= 0) { end = i + 2; restAt = i + 5; }
          }
          if (end < 0) { dataSearchFrom = buf.length; return; }
          const content = buf.subarray(0, end);
          buf = buf.subarray(restAt);
          endOfData(Buffer.from(content));
          continue;
        }
        const nl = buf.indexOf(0x0a);
        if (nl < 0) return;
        let line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (mode === 'command') onCommand(line);
        else {
          session.transcript.push({ dir: 'C', line: '(auth data)' });
          onAuthLine(line);
        }
      }
    }

    function onData(chunk) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      process();
    }

    rawSocket.on('data', onData);
    rawSocket.on('error', () => rawSocket.destroy());
    if (!scripted('CONNECT')) reply(220, `${hostname} ESMTP Switchboard fake SMTP ready`);
  }

  let server = createServer(handleConnection);
  const listen = (port) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.removeListener('error', reject);
      isUp = true;
      resolve();
    });
  });
  await listen(opts.port ?? 0);
  smtp.port = server.address().port;
  smtp.url = `smtp://127.0.0.1:${smtp.port}`;

  const stop = async () => {
    if (!isUp) return;
    isUp = false;
    const closed = new Promise((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };

  // Stops listening (connects are refused) and drops open connections.
  smtp.down = stop;
  // Listens again on the same port.
  smtp.up = async () => {
    if (isUp) return;
    server = createServer(handleConnection);
    await listen(smtp.port);
  };
  smtp.isUp = () => isUp;
  smtp.close = stop;
  return smtp;
}

// ------------------------------------------------------------- parsing

const decodeCharset = (buf, charset = 'utf-8') => {
  const cs = charset.toLowerCase();
  if (cs === 'utf-8' || cs === 'utf8' || cs === 'us-ascii' || cs === 'ascii') return buf.toString('utf8');
  if (cs === 'iso-8859-1' || cs === 'latin1' || cs === 'latin-1') return buf.toString('latin1');
  try { return new TextDecoder(cs).decode(buf); } catch { return buf.toString('utf8'); }
};

// Quoted-printable (RFC 2045 6.7) to bytes.
export function decodeQuotedPrintable(s) {
  const t = s.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < t.length; i++) {
    const c = t[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(t.slice(i + 1, i + 3))) {
      bytes.push(parseInt(t.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const b of Buffer.from(c, 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes);
}

// RFC 2047 encoded-words in a header value.
export function decodeWords(value) {
  const word = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g;
  const joined = value.replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?[^?]+\?[BbQq]\?[^?]*\?=)/g, '$1');
  return joined.replace(word, (_, charset, enc, text) => {
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64')
      : decodeQuotedPrintable(text.replace(/_/g, ' '));
    return decodeCharset(bytes, charset.split('*')[0]);
  });
}

function parseParams(value) {
  const [type, ...rest] = value.split(';');
  const params = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    params[p.slice(0, eq).trim().toLowerCase()] = v;
  }
  return { value: type.trim().toLowerCase(), params };
}

function parseEntity(raw) {
  const sep = /\r?\n\r?\n/.exec(raw);
  const headText = sep ? raw.slice(0, sep.index) : raw;
  const body = sep ? raw.slice(sep.index + sep[0].length) : '';
  const headerList = [];
  for (const l of headText.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const c = l.indexOf(':');
    if (c <= 0) continue;
    headerList.push({ name: l.slice(0, c).trim(), value: l.slice(c + 1).trim() });
  }
  const headers = {};
  for (const h of headerList) {
    const k = h.name.toLowerCase();
    if (!(k in headers)) headers[k] = h.value;
  }
  const ct = parseParams(headers['content-type'] ?? 'text/plain; charset=us-ascii');
  const cte = (headers['content-transfer-encoding'] ?? '7bit').trim().toLowerCase();
  const disposition = headers['content-disposition']
    ? parseParams(headers['content-disposition']) : null;
  const entity = { headers, headerList, contentType: ct.value, params: ct.params,
    transferEncoding: cte, disposition: disposition?.value ?? null,
    filename: disposition?.params.filename ?? ct.params.name ?? null, body, parts: [] };
  if (ct.value.startsWith('multipart/') && ct.params.boundary) {
    const delim = `--${ct.params.boundary}`;
    let cur = null;
    for (const line of body.split(/\r?\n/)) {
      const t = line.replace(/[ \t]+$/, '');
      if (t === delim) {
        if (cur) entity.parts.push(parseEntity(cur.join('\r\n')));
        cur = [];
      } else if (t === `${delim}--`) {
        if (cur) entity.parts.push(parseEntity(cur.join('\r\n')));
        cur = null;
        break;
      } else if (cur) {
        cur.push(line);
      }
    }
    return entity;
  }
  let bytes;
  if (cte === 'base64') bytes = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  else if (cte === 'quoted-printable') bytes = decodeQuotedPrintable(body);
  else bytes = null;
  entity.bytes = bytes ?? Buffer.from(body, 'utf8');
  entity.content = ct.value.startsWith('text/')
    ? (bytes ? decodeCharset(bytes, ct.params.charset) : body)
    : entity.bytes;
  return entity;
}

function walk(entity, fn) {
  fn(entity);
  for (const p of entity.parts) walk(p, fn);
}

// Splits a raw message (string or Buffer) into unfolded headers
// (headers: lower-case name -> first value; headerList: all, in order) and
// body, and decodes MIME: parts (tree), text / html (the first
// non-attachment text/plain and text/html, transfer- and charset-decoded),
// attachments, and subject/from/to with RFC 2047 words decoded.
export function parseMessage(raw) {
  const s = Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw);
  const root = parseEntity(s);
  let text = null;
  let html = null;
  const attachments = [];
  walk(root, (e) => {
    if (e.parts.length || e.contentType.startsWith('multipart/')) return;
    const isAttachment = e.disposition === 'attachment'
      || (e.filename && e.disposition !== 'inline');
    if (isAttachment) { attachments.push(e); return; }
    if (e.contentType === 'text/plain' && text === null) text = e.content;
    else if (e.contentType === 'text/html' && html === null) html = e.content;
    else if (!e.contentType.startsWith('text/')) attachments.push(e);
  });
  const h = root.headers;
  return {
    ...root,
    header(name) {
      return root.headerList.filter((x) => x.name.toLowerCase() === name.toLowerCase())
        .map((x) => x.value);
    },
    subject: h.subject !== undefined ? decodeWords(h.subject) : undefined,
    from: h.from !== undefined ? decodeWords(h.from) : undefined,
    to: h.to !== undefined ? decodeWords(h.to) : undefined,
    text,
    html,
    attachments,
  };
}
