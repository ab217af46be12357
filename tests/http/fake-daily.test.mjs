// Self-test of the Daily.co fake (tests/fakes/daily.mjs). Needs no
// Switchboard server: it talks to the fake directly, and sends webhooks to
// a throwaway local receiver.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { startDaily, signWebhook, webhookEvent, sendWebhook, USER_ID_MAX, USER_NAME_MAX }
  from '../fakes/daily.mjs';
import { sleepUntil, WAIT_MS } from './lib/helpers.mjs';

let daily;

before(async () => { daily = await startDaily({ domain: 'acme' }); });
after(async () => { await daily?.close(); });
beforeEach(() => daily.reset());

async function api(method, path, { body, key = daily.apiKey, raw, headers = {},
  timeoutMs = WAIT_MS } = {}) {
  const h = { ...headers };
  if (key !== null) h.authorization = `Bearer ${key}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) { payload = JSON.stringify(body); h['content-type'] = 'application/json'; }
  const t0 = Date.now();
  const res = await fetch(`${daily.url}${path}`, { method, headers: h, body: payload,
    signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, body: json, text, ms: Date.now() - t0 };
}

const future = (s = 3600) => daily.now() + s;

test('url, apiKey and the error body shape on authentication failures', async () => {
  assert.match(daily.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  assert.equal(typeof daily.apiKey, 'string');

  const none = await api('GET', '/rooms', { key: null });
  assert.equal(none.status, 401);
  assert.equal(none.body.error, 'authorization-header-error');
  assert.equal(typeof none.body.info, 'string');

  const wrong = await api('GET', '/rooms', { key: 'not-the-key' });
  assert.equal(wrong.status, 401);
  assert.deepEqual(Object.keys(wrong.body).sort(), ['error', 'info']);
  assert.equal(wrong.body.error, 'authentication-error');

  const basic = await api('GET', '/rooms', { key: null, headers: { authorization: `Basic ${daily.apiKey}` } });
  assert.equal(basic.status, 401);
  assert.equal(basic.body.error, 'authorization-header-error');

  assert.equal(daily.rooms.size, 0);
  assert.equal(daily.requests.length, 3);
  assert.equal(daily.requests[1].headers.authorization, 'Bearer not-the-key');
});

test('a room with valid properties is created, listed, fetched and deleted', async () => {
  const exp = future();
  const properties = { exp, nbf: daily.now() - 10, max_participants: 2, enable_screenshare: false,
    start_video_off: true, start_audio_off: false, enable_chat: true, enable_knocking: true,
    eject_at_room_exp: true, enable_prejoin_ui: false, enable_recording: 'cloud', lang: 'en' };
  const made = await api('POST', '/rooms', { body: { name: 'standup-1', privacy: 'private', properties } });
  assert.equal(made.status, 200, made.text);
  const room = made.body;
  assert.match(room.id, /^[0-9a-f-]{36}$/);
  assert.equal(room.name, 'standup-1');
  assert.equal(room.api_created, true);
  assert.equal(room.privacy, 'private');
  assert.equal(room.url, 'https://acme.daily.co/standup-1');
  assert.ok(!Number.isNaN(Date.parse(room.created_at)));
  assert.match(room.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(room.config, properties);
  assert.deepEqual(daily.rooms.get('standup-1'), room);
  assert.deepEqual(daily.requests.at(-1).body, { name: 'standup-1', privacy: 'private', properties });

  const generated = await api('POST', '/rooms', { body: {} });
  assert.equal(generated.status, 200);
  assert.match(generated.body.name, /^[A-Za-z0-9]{20}$/);
  assert.equal(generated.body.privacy, 'public');
  assert.deepEqual(generated.body.config, {});

  const got = await api('GET', '/rooms/standup-1');
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, room);

  const list = await api('GET', '/rooms');
  assert.equal(list.status, 200);
  assert.equal(list.body.total_count, 2);
  assert.deepEqual(list.body.data.map((r) => r.name).sort(), ['standup-1', generated.body.name].sort());

  const dup = await api('POST', '/rooms', { body: { name: 'standup-1' } });
  assert.equal(dup.status, 400);
  assert.equal(dup.body.error, 'invalid-request-error');
  assert.match(dup.body.info, /already exists/);

  const del = await api('DELETE', '/rooms/standup-1');
  assert.equal(del.status, 200);
  assert.deepEqual(del.body, { deleted: true, name: 'standup-1' });
  assert.equal(daily.rooms.has('standup-1'), false);

  const gone = await api('GET', '/rooms/standup-1');
  assert.equal(gone.status, 404);
  assert.equal(gone.body.error, 'not-found');
  const gone2 = await api('DELETE', '/rooms/standup-1');
  assert.equal(gone2.status, 404);
  assert.equal(gone2.body.error, 'not-found');
});

test('invalid room requests are refused with 400 invalid-request-error', async () => {
  const cases = [
    ['unknown property', { properties: { enable_teleport: true } }],
    ['past exp', { properties: { exp: daily.now() - 1 } }],
    ['exp as a string', { properties: { exp: String(future()) } }],
    ['fractional exp', { properties: { exp: future() + 0.5 } }],
    ['boolean as a string', { properties: { enable_chat: 'true' } }],
    ['max_participants 0', { properties: { max_participants: 0 } }],
    ['max_participants above 200', { properties: { max_participants: 201 } }],
    ['bad privacy', { privacy: 'secret' }],
    ['bad name', { name: 'has space' }],
    ['name too long', { name: 'a'.repeat(129) }],
    ['unknown top-level parameter', { name: 'x', colour: 'red' }],
    ['bad enum', { properties: { enable_recording: 'tape' } }],
    ['properties not an object', { properties: [] }],
    ['exp in milliseconds', { properties: { exp: Date.now() + 3600 * 1000 } }],
    ['nbf in milliseconds', { properties: { nbf: Date.now(), exp: future() } }],
    ['name with a dot', { name: 'sb.q1' }],
    ['empty name', { name: '' }],
  ];
  for (const [what, body] of cases) {
    const r = await api('POST', '/rooms', { body });
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.deepEqual(Object.keys(r.body).sort(), ['error', 'info'], what);
    assert.equal(r.body.error, 'invalid-request-error', what);
    assert.equal(typeof r.body.info, 'string', what);
  }
  assert.equal((await api('POST', '/rooms', { body: { name: 'a'.repeat(128) } })).status, 200);
  daily.rooms.clear();
  assert.equal(daily.rooms.size, 0);

  const notJson = await api('POST', '/rooms', { raw: '{"name":', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.error, 'json-parsing-error');
});

test('an expired room reads as deleted', async () => {
  await api('POST', '/rooms', { body: { name: 'short', properties: { exp: future(60) } } });
  assert.equal((await api('GET', '/rooms/short')).status, 200);
  daily.advanceTime(61);
  const got = await api('GET', '/rooms/short');
  assert.equal(got.status, 404);
  assert.equal((await api('GET', '/rooms')).body.total_count, 0);
  const del = await api('DELETE', '/rooms/short');
  assert.equal(del.status, 404);
  assert.equal(del.body.deleted, true);
});

test('meeting tokens are JWTs bound to a room, with Daily\'s abbreviated claims', async () => {
  await api('POST', '/rooms', { body: { name: 'room-a', privacy: 'private' } });
  const exp = future(120);
  const properties = { room_name: 'room-a', is_owner: true, exp, user_name: 'Ada', user_id: 'u-1',
    start_video_off: true, enable_screenshare: false, eject_at_token_exp: true };
  const made = await api('POST', '/meeting-tokens', { body: { properties } });
  assert.equal(made.status, 200, made.text);
  assert.deepEqual(Object.keys(made.body), ['token']);
  const { token } = made.body;

  assert.deepEqual(decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' });
  const claims = decodeJwt(token);
  assert.equal(claims.r, 'room-a');
  assert.equal(claims.o, true);
  assert.equal(claims.exp, exp);
  assert.equal(claims.u, 'Ada');
  assert.equal(claims.ud, 'u-1');
  assert.equal(claims.vo, true);
  assert.equal(claims.ss, false);
  assert.equal(claims.ejt, true);
  assert.equal(claims.d, daily.domainId);
  assert.equal(typeof claims.iat, 'number');
  assert.equal(claims.room_name, undefined);

  assert.equal(daily.tokens.length, 1);
  assert.equal(daily.tokens[0].token, token);
  assert.deepEqual(daily.tokens[0].properties, properties);

  assert.equal(daily.tokenValidFor(token, 'room-a'), true);
  assert.equal(daily.tokenValidFor(token, 'room-b'), false);
  assert.equal(daily.tokenValidFor(`${token.slice(0, -2)}xx`, 'room-a'), false);
  // Same claims, another key: jose-signed forgery is refused.
  const { SignJWT } = await import('jose');
  const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode('some-other-key-some-other-key-32'));
  assert.equal(daily.tokenValidFor(forged, 'room-a'), false);

  const valid = await api('GET', `/meeting-tokens/${token}`);
  assert.equal(valid.status, 200);
  assert.equal(valid.body.room_name, 'room-a');
  assert.equal(valid.body.is_owner, true);
  assert.equal(valid.body.exp, exp);
  assert.equal(valid.body.user_name, 'Ada');

  const bad = await api('GET', `/meeting-tokens/${forged}`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error, 'invalid-request-error');

  daily.advanceTime(121);
  assert.equal(daily.tokenValidFor(token, 'room-a'), false);
  const expired = await api('GET', `/meeting-tokens/${token}`);
  assert.equal(expired.status, 400);
  assert.match(expired.body.info, /expired/);
});

test('a short real-time exp runs out', async () => {
  // Valid while the clock is before exp (whole seconds), invalid after.
  // "Valid" is only shown if it was checked before exp: a round a loaded
  // machine made slower than that is done again with a later exp.
  let exp, token;
  for (let life = 2; ; life *= 2) {
    assert.ok(life <= 64, 'no token could be made and checked before its exp');
    exp = daily.now() + life;
    token = (await api('POST', '/meeting-tokens', { body: { properties: { room_name: 'r', exp } } })).body.token;
    const valid = daily.tokenValidFor(token, 'r');
    if (Date.now() / 1000 >= exp) continue;
    assert.equal(valid, true);
    break;
  }
  await sleepUntil(exp * 1000 + 50);
  assert.equal(daily.tokenValidFor(token, 'r'), false);
});

test('nbf and ignoreNbf on token validation', async () => {
  const nbf = future(60);
  const { body } = await api('POST', '/meeting-tokens',
    { body: { properties: { room_name: 'later', nbf, exp: nbf + 60 } } });
  assert.equal(daily.tokenValidFor(body.token, 'later'), false);
  assert.equal((await api('GET', `/meeting-tokens/${body.token}`)).status, 400);
  const ok = await api('GET', `/meeting-tokens/${body.token}?ignoreNbf=true`);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.nbf, nbf);
  daily.advanceTime(61);
  assert.equal(daily.tokenValidFor(body.token, 'later'), true);
});

test('invalid token requests are refused', async () => {
  const cases = [
    ['unknown property', { properties: { room_name: 'a', superpowers: true } }],
    ['is_owner as a string', { properties: { room_name: 'a', is_owner: 'yes' } }],
    ['exp as a float', { properties: { room_name: 'a', exp: future() + 0.25 } }],
    ['room_name as a number', { properties: { room_name: 7 } }],
    ['unknown top-level parameter', { room_name: 'a' }],
    ['user_id of 37 characters', { properties: { room_name: 'a', user_id: 'u'.repeat(37) } }],
    ['user_id "donor:" + a uuid', { properties: { room_name: 'a',
      user_id: 'donor:3b241101-e2bb-4255-8caf-4136c566a962' } }],
    ['user_id as a number', { properties: { room_name: 'a', user_id: 42 } }],
    ['user_name too long', { properties: { room_name: 'a', user_name: 'n'.repeat(USER_NAME_MAX + 1) } }],
    ['exp in milliseconds', { properties: { room_name: 'a', exp: Date.now() + 60000 } }],
    ['room_name with a space', { properties: { room_name: 'a b' } }],
    ['room_name too long', { properties: { room_name: 'r'.repeat(129) } }],
  ];
  for (const [what, body] of cases) {
    const r = await api('POST', '/meeting-tokens', { body });
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.deepEqual(Object.keys(r.body).sort(), ['error', 'info'], what);
    assert.equal(r.body.error, 'invalid-request-error', what);
  }
  assert.equal(daily.tokens.length, 0);
});

test('the limits themselves are allowed: a 36-character user_id, a long name counted in characters', async () => {
  assert.equal(USER_ID_MAX, 36);
  // Characters, not bytes or UTF-16 units: each of these is one code point.
  const name = '\u{1F600}'.repeat(USER_NAME_MAX);
  const properties = { room_name: 'r'.repeat(128), user_id: 'u'.repeat(36), user_name: name,
    exp: future() };
  const r = await api('POST', '/meeting-tokens', { body: { properties } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(daily.tokens[0].properties, properties);
});

test('scripted failures: a 500, a delay, a hang, then back to normal', async () => {
  daily.fail('/rooms', [{ status: 500 }, { delayMs: 300 }]);
  const first = await api('POST', '/rooms', { body: { name: 'flaky' } });
  assert.equal(first.status, 500);
  assert.deepEqual(first.body, { error: 'server-error', info: 'scripted 500' });
  assert.equal(daily.rooms.has('flaky'), false);

  const slow = await api('POST', '/rooms', { body: { name: 'flaky' } });
  assert.equal(slow.status, 200);
  assert.ok(slow.ms >= 280, `answered after ${slow.ms} ms`);

  assert.equal(daily.requests.at(-1).step?.delayMs, 300);
  // The script is used up: the next request gets no step (no delay).
  const normal = await api('GET', '/rooms/flaky');
  assert.equal(normal.status, 200);
  assert.equal(daily.requests.at(-1).step, null);

  daily.fail('/v1/meeting-tokens', [{ status: 429, headers: { 'retry-after': '1' },
    json: { error: 'rate-limit-error', info: 'slow down' } }], { method: 'POST' });
  const limited = await api('POST', '/meeting-tokens', { body: { properties: { room_name: 'flaky' } } });
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error, 'rate-limit-error');

  daily.fail('/rooms/flaky', [{ hang: true }]);
  await assert.rejects(api('GET', '/rooms/flaky', { timeoutMs: 300 }), /abort|timeout/i);
  assert.equal((await api('GET', '/rooms/flaky')).status, 200);
  assert.equal(daily.count('GET', '/rooms/flaky'), 3);
});

test('webhook signature: HMAC-SHA256 over "<ts>.<body>" with the base64-decoded secret', () => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
  const body = '{"version":"1.0.0","type":"meeting.started"}';
  const h = signWebhook(secret, body, 1700000000);
  const expected = createHmac('sha256', Buffer.from('0123456789abcdef0123456789abcdef'))
    .update(`1700000000.${body}`).digest('base64');
  assert.deepEqual(h, { 'X-Webhook-Signature': expected, 'X-Webhook-Timestamp': '1700000000' });
  // A fixed vector computed outside node, with openssl:
  //   printf '%s' '1700000000.{"type":"meeting.started"}' |
  //     openssl dgst -sha256 -mac HMAC -macopt key:0123456789abcdef0123456789abcdef -binary | base64
  assert.equal(secret, 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=');
  assert.equal(signWebhook(secret, '{"type":"meeting.started"}', 1700000000)['X-Webhook-Signature'],
    'nz94NFqWz3Gt/Me7MPAr73pwx89W6Y/emJnAktepGaE=');
  // Keyed with the decoded secret, not the base64 text.
  assert.notEqual(h['X-Webhook-Signature'],
    createHmac('sha256', secret).update(`1700000000.${body}`).digest('base64'));
  assert.notEqual(signWebhook(secret, `${body} `, 1700000000)['X-Webhook-Signature'], expected);
});

test('webhook events have Daily\'s shape and arrive signed', async () => {
  const started = webhookEvent('meeting.started', 'room-a');
  assert.equal(started.version, '1.0.0');
  assert.equal(started.type, 'meeting.started');
  assert.match(started.id, /^met-sta-[0-9a-f-]{36}$/);
  assert.equal(started.payload.room, 'room-a');
  assert.equal(typeof started.payload.start_ts, 'number');
  assert.equal(typeof started.payload.meeting_id, 'string');
  assert.equal(typeof started.event_ts, 'number');

  const ended = webhookEvent('meeting.ended', 'room-a',
    { meeting_id: started.payload.meeting_id, start_ts: 100, end_ts: 160, id: 'met-end-x' });
  assert.deepEqual(ended.payload, { meeting_id: started.payload.meeting_id, room: 'room-a',
    start_ts: 100, end_ts: 160 });
  assert.equal(ended.id, 'met-end-x');

  const got = [];
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, raw: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  try {
    const secret = Buffer.from('webhook-secret-bytes').toString('base64');
    const sentFrom = Math.floor(Date.now() / 1000);
    const r = await sendWebhook(`http://127.0.0.1:${receiver.address().port}/hook`, secret, ended);
    const sentBy = Math.floor(Date.now() / 1000);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ok: true });
    assert.equal(got.length, 1);
    const { headers, raw } = got[0];
    assert.deepEqual(JSON.parse(raw), ended);
    assert.equal(headers['content-type'], 'application/json');
    const want = createHmac('sha256', Buffer.from('webhook-secret-bytes'))
      .update(`${headers['x-webhook-timestamp']}.${raw}`).digest('base64');
    assert.equal(headers['x-webhook-signature'], want);
    // The time of sending, in whole seconds.
    const ts = Number(headers['x-webhook-timestamp']);
    assert.ok(ts >= sentFrom && ts <= sentBy, `timestamp ${ts} not in [${sentFrom}, ${sentBy}]`);
  } finally {
    receiver.closeAllConnections?.();
    await new Promise((r) => receiver.close(r));
  }
});

// A throwaway webhook receiver: answer(raw) gives the status, or null to
// never answer. Records every request.
async function receiver(answer) {
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString();
      got.push({ headers: req.headers, raw });
      const status = answer(raw);
      if (status === null) return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    got,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

test('registering a webhook: Daily first POSTs {"test":"test"} and wants a 200', async () => {
  const rx = await receiver(() => 200);
  try {
    const made = await api('POST', '/webhooks', { body: { url: rx.url, eventTypes: ['meeting.started'] } });
    assert.equal(made.status, 200, made.text);
    const hook = made.body;
    assert.match(hook.uuid, /^[0-9a-f-]{36}$/);
    assert.equal(hook.url, rx.url);
    assert.equal(hook.state, 'ACTIVE');
    assert.deepEqual(hook.eventTypes, ['meeting.started']);
    assert.equal(Buffer.from(hook.hmac, 'base64').length, 32);
    // the verification: exactly this body, unsigned, before the hook exists
    assert.equal(rx.got.length, 1);
    assert.equal(rx.got[0].raw, '{"test":"test"}');
    assert.equal(rx.got[0].headers['content-type'], 'application/json');
    assert.equal(rx.got[0].headers['x-webhook-signature'], undefined);
    assert.equal(daily.webhookChecks.length, 1);
    assert.equal(daily.webhookChecks[0].status, 200);

    const list = await api('GET', '/webhooks');
    assert.deepEqual(list.body.map((h) => h.uuid), [hook.uuid]);
    assert.equal((await api('GET', `/webhooks/${hook.uuid}`)).body.url, rx.url);

    // events reach it signed with the hook's hmac
    const ev = webhookEvent('meeting.started', 'room-a');
    const [sent] = await daily.deliver(ev);
    assert.equal(sent.status, 200);
    const { headers, raw } = rx.got[1];
    assert.deepEqual(JSON.parse(raw), ev);
    assert.equal(headers['x-webhook-signature'], createHmac('sha256', Buffer.from(hook.hmac, 'base64'))
      .update(`${headers['x-webhook-timestamp']}.${raw}`).digest('base64'));

    // an hmac of one's own is kept
    const mine = Buffer.from('my own webhook secret').toString('base64');
    const own = await api('POST', '/webhooks', { body: { url: rx.url, hmac: mine } });
    assert.equal(own.status, 200, own.text);
    assert.equal(own.body.hmac, mine);

    assert.equal((await api('DELETE', `/webhooks/${hook.uuid}`)).status, 200);
    assert.equal((await api('GET', `/webhooks/${hook.uuid}`)).status, 404);
  } finally { await rx.close(); }
});

test('a webhook url that refuses the verification, or answers too slowly, is not registered', async () => {
  for (const status of [401, 422, 204]) {
    const rx = await receiver(() => status);
    try {
      const r = await api('POST', '/webhooks', { body: { url: rx.url } });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(Object.keys(r.body).sort(), ['error', 'info']);
      assert.equal(r.body.error, 'invalid-request-error');
      assert.match(r.body.info, new RegExp(`HTTP ${status}`));
      assert.equal(rx.got.length, 1);
    } finally { await rx.close(); }
  }
  for (const body of [{}, { url: 'not a url' }, { url: 'ftp://example.org/' },
    { url: 'http://127.0.0.1:1/', hmac: 'not base64!' }, { url: 'http://127.0.0.1:1/', colour: 'red' }]) {
    const r = await api('POST', '/webhooks', { body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error, 'invalid-request-error');
  }
  assert.equal(daily.webhooks.size, 0);

  const impatient = await startDaily({ webhookVerifyTimeoutMs: 200 });
  const rx = await receiver(() => null);
  try {
    const r = await fetch(`${impatient.url}/webhooks`, { method: 'POST',
      headers: { authorization: `Bearer ${impatient.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: rx.url }) });
    assert.equal(r.status, 400);
    assert.match((await r.json()).info, /timeout/);
    assert.equal(impatient.webhookChecks[0].error, 'timeout');
    assert.equal(impatient.webhooks.size, 0);
  } finally { await rx.close(); await impatient.close(); }
});
