// The telephony plugin's voice calls (API.md "Telephony"), black box against
// real PostgreSQL and the fake Twilio and Exotel (tests/fakes/): a call
// bridged to the agent through every status to completed with its duration
// and recording; a spoken message; busy and no-answer; hangup mid-ring, before
// the provider has the call and before it is placed; replayed, late and
// badly signed callbacks changing nothing; 429 and 5xx retried, 21211 failed
// with its code and the caller told; Twilio down -> Exotel once; a timeout
// after the request left -> failed `unknown`, placed once; Exotel through its
// callbacks and path token; the calls-per-second pace; statistics over a
// seeded set; per-customer history and the timeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomBytes } from 'node:crypto';
import { startServer, TEST_PLUGINS, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startTwilio, postSigned } from '../fakes/twilio.mjs';
import { startExotel, postForm } from '../fakes/exotel.mjs';

const PUBLIC = 'https://switchboard.example.org';
const VHOOK = '/api/v1/webhooks/twilio/voice';
const FROM = '+15005550001';
const EXOPHONE = '+918047112233';
const APP_ID = '224466';
let srv, tw, ex, admin;

const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;
const indiaPhone = () => `+9198${String(randomInt(10000000, 99999999))}`;
const ukPhone = () => `+447700${String(randomInt(100000, 999999))}`;

async function sql(server, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), server.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

function conf(extra = {}) {
  return {
    twilio_account_sid: tw.accountSid, twilio_auth_token: tw.authToken, twilio_from: FROM,
    twilio_api_url: tw.url, twilio_timeout_ms: '1500', twilio_calls_per_second: '0',
    exotel_sid: ex.sid, exotel_api_key: ex.apiKey, exotel_api_token: ex.apiToken, exotel_from: EXOPHONE,
    exotel_api_url: ex.url, exotel_app_id: APP_ID, exotel_calls_per_second: '0',
    calls_per_minute: '0', sms_per_minute: '0',
    routing: 'sms:*=twilio;voice:+91=exotel,twilio;voice:+44=twilio,exotel;voice:*=twilio', ...extra,
  };
}

before(async () => {
  tw = await startTwilio();
  ex = await startExotel();
  srv = await startServer({ host: { breaker_failures: '1000', public_url: PUBLIC }, plugins: { ...TEST_PLUGINS,
    concierge: {}, customers: {}, notifications: {}, telephony: conf() } });
  admin = await srv.login();
  // The callbacks Twilio sends on its own (a call's end after a hangup).
  tw.callbackTarget = srv.url + VHOOK;
});

after(async () => {
  await srv?.stop();
  await tw?.stop();
  await ex?.stop();
});

const initiate = (json, server = srv, token = admin) =>
  server.request('POST', '/api/v1/calls/initiate', { token, json });
const getCall = (id, server = srv) => server.request('GET', `/api/v1/calls/${id}`, { token: admin });
async function until(id, pred, server = srv) {
  const c = await poll(async () => {
    const r = await getCall(id, server);
    return pred(r.body) ? r.body : null;
  });
  assert.ok(c, `call ${id} never got there`);
  return c;
}
// The call's status callback, signed over the URL Twilio was given (behind the
// "proxy") and delivered to this server.
const progress = (sid, status, opts = {}) => tw.callProgress(sid, status, { target: srv.url + VHOOK, ...opts });

async function placed(json) {
  const r = await initiate(json);
  assert.equal(r.status, 202, r.text);
  return until(r.body.id, (b) => b.provider_call_id);
}

test('a call bridged to the agent: queued -> initiated -> ringing -> in-progress -> completed, with duration and recording', async () => {
  const to = uniqPhone();
  const agent = uniqPhone();
  const r = await initiate({ to: `${to.slice(0, 5)} ${to.slice(5)}`, connect_to: agent, record: true });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.status, 'queued');
  assert.equal(r.body.direction, 'outbound');
  assert.equal(r.body.to, to);
  assert.ok(r.body.customer_id > 0, 'the callee is a customer');
  assert.deepEqual(r.body.events.map((e) => e.status), ['queued']);
  for (const k of ['id', 'from', 'provider', 'provider_call_id', 'started_at', 'answered_at', 'ended_at',
    'duration_s', 'hangup_cause', 'recording_url', 'initiated_by', 'created_at', 'updated_at']) {
    assert.ok(k in r.body, `field ${k}`);
  }
  const c = await until(r.body.id, (b) => b.status === 'initiated');
  assert.equal(c.provider, 'twilio');
  assert.match(c.provider_call_id, /^CA[0-9a-f]{32}$/);
  assert.equal(c.from, FROM);
  assert.ok(c.started_at);
  const call = tw.calls.get(c.provider_call_id);
  assert.equal(call.to, to);
  assert.equal(call.from, FROM);
  assert.equal(call.twiml, `<Response><Dial><Number>${agent}</Number></Dial></Response>`);
  assert.equal(call.statusCallback, PUBLIC + VHOOK);
  assert.deepEqual([...call.events].sort(), ['answered', 'completed', 'initiated', 'ringing']);
  assert.equal(String(call.record), 'true');
  for (const [st, opts] of [['initiated'], ['ringing'], ['in-progress'], ['completed', { duration: 42 }]]) {
    const a = await progress(c.provider_call_id, st, opts);
    assert.equal(a.status, 200, a.text);
    assert.match(a.text, /<Response\/>/);
  }
  const done = await until(c.id, (b) => b.status === 'completed');
  assert.equal(done.duration_s, 42);
  assert.ok(done.answered_at && done.ended_at);
  assert.equal(done.hangup_cause, 'normal_clearing');
  assert.match(done.recording_url, /\/Recordings\/RE/);
  assert.deepEqual(done.events.map((e) => e.status), ['queued', 'initiated', 'ringing', 'in-progress', 'completed']);
  // The customer's history and timeline hold it.
  const h = await srv.request('GET', `/api/v1/calls/customer/${done.customer_id}`, { token: admin });
  assert.equal(h.status, 200, h.text);
  assert.deepEqual(h.body.data.map((x) => x.id), [done.id]);
  const tl = await srv.request('GET', `/api/v1/customers/${done.customer_id}/timeline`, { token: admin });
  assert.equal(tl.status, 200, tl.text);
  const item = tl.body.data.find((x) => x.channel === 'call' && x.id === done.id);
  assert.ok(item, tl.text);
  assert.equal(item.status, 'completed');
  assert.doesNotMatch(JSON.stringify(tl.body), new RegExp(to.slice(1)));
  // Nothing stored holds the numbers in clear.
  const rows = await sql(srv, 'SELECT row_to_json(c)::text AS j FROM telephony_calls c WHERE id = $1', [done.id]);
  assert.doesNotMatch(rows[0].j, new RegExp(to.slice(1)));
  assert.doesNotMatch(rows[0].j, new RegExp(agent.slice(1)));
});

test('a spoken message: <Say> with the text escaped; a SIP user: <Sip>', async () => {
  const c = await placed({ to: uniqPhone(), message: 'Your code is <1234> & "more"' });
  assert.equal(tw.calls.get(c.provider_call_id).twiml,
    '<Response><Say>Your code is &lt;1234&gt; &amp; &quot;more&quot;</Say></Response>');
  const s = await placed({ to: uniqPhone(), connect_to: 'sip:agent7@pbx.example.org' });
  assert.equal(tw.calls.get(s.provider_call_id).twiml,
    '<Response><Dial><Sip>sip:agent7@pbx.example.org</Sip></Dial></Response>');
});

test('busy and no-answer end the call with that status', async () => {
  for (const st of ['busy', 'no-answer']) {
    const c = await placed({ to: uniqPhone(), connect_to: uniqPhone() });
    await progress(c.provider_call_id, 'ringing');
    const a = await progress(c.provider_call_id, st);
    assert.equal(a.status, 200, a.text);
    const done = await until(c.id, (b) => b.status === st);
    assert.ok(done.ended_at);
    assert.equal(done.answered_at, null);
    assert.ok(done.hangup_cause);
  }
});

test('hangup mid-ring ends the call at Twilio; a second hangup is 409', async () => {
  const c = await placed({ to: uniqPhone(), connect_to: uniqPhone() });
  await progress(c.provider_call_id, 'ringing');
  await until(c.id, (b) => b.status === 'ringing');
  const h = await srv.request('POST', `/api/v1/calls/${c.id}/hangup`, { token: admin });
  assert.equal(h.status, 202, h.text);
  assert.equal(h.body.id, c.id);
  // Twilio is asked to end it, and its callback brings the end.
  const up = await poll(() => tw.callUpdates.find((u) => u.sid === c.provider_call_id));
  assert.ok(up, 'Twilio was never asked to end the call');
  assert.equal(up.form.Status, 'completed');
  const done = await until(c.id, (b) => b.status === 'canceled');
  assert.ok(done.ended_at);
  const again = await srv.request('POST', `/api/v1/calls/${c.id}/hangup`, { token: admin });
  assert.equal(again.status, 409, again.text);
  assertEnvelope(assert, again, 409, 'CONFLICT');
  const none = await srv.request('POST', '/api/v1/calls/99999999/hangup', { token: admin });
  assert.equal(none.status, 404, none.text);
});

test('hangup while the provider is being asked: ended as soon as Twilio has the call', async () => {
  tw.hold();
  let id;
  try {
    const r = await initiate({ to: uniqPhone(), connect_to: uniqPhone() });
    assert.equal(r.status, 202, r.text);
    id = r.body.id;
    assert.ok(await poll(async () => (await sql(srv, 'SELECT inflight FROM telephony_calls WHERE id = $1',
      [id]))[0].inflight, { interval: 20 }), 'the call was never in flight');
    const h = await srv.request('POST', `/api/v1/calls/${id}/hangup`, { token: admin });
    assert.equal(h.status, 202, h.text);
  } finally {
    tw.release();
  }
  const c = await until(id, (b) => b.status === 'canceled');
  assert.ok(tw.callUpdates.some((u) => u.sid === c.provider_call_id), 'Twilio was never asked to end it');
});

test('callbacks: replayed and late ones change nothing; missing or bad signatures are 401/403', async () => {
  const c = await placed({ to: uniqPhone(), connect_to: uniqPhone() });
  await progress(c.provider_call_id, 'completed', { duration: 7 });
  const done = await until(c.id, (b) => b.status === 'completed');
  const n = done.events.length;
  // The same callback again.
  const call = tw.calls.get(c.provider_call_id);
  const params = tw.callCallbacks.filter((x) => x.sid === c.provider_call_id).at(-1).params;
  const replay = await postSigned(srv.url + VHOOK, tw.authToken, params, { signUrl: call.statusCallback });
  assert.equal(replay.status, 200, replay.text);
  // A late ringing after the end.
  await progress(c.provider_call_id, 'ringing');
  const after = (await getCall(c.id)).body;
  assert.equal(after.status, 'completed');
  assert.equal(after.duration_s, 7);
  assert.equal(after.events.length, n + 1);
  assert.equal(after.events.at(-1).status, 'ringing');
  assert.match(after.events.at(-1).detail, /late/);
  // Unsigned, and signed with another token.
  const forged = { ...params, CallStatus: 'failed' };
  const bad = await postSigned(srv.url + VHOOK, 'not-the-token', forged, { signUrl: call.statusCallback });
  assert.equal(bad.status, 403, bad.text);
  const res = await fetch(srv.url + VHOOK, { method: 'POST', body: new URLSearchParams(forged),
    headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 401);
  assert.equal((await getCall(c.id)).body.events.length, n + 1);
});

test('429 and 5xx are retried and the call placed once; 21211 fails it with the code, and the caller is told', async () => {
  const to = uniqPhone();
  tw.failCalls([{ status: 429, retryAfter: 1 }, { status: 500 }]);
  const c = await placed({ to, connect_to: uniqPhone() });
  assert.equal(c.status, 'initiated');
  assert.equal(tw.callsTo(to), 1);

  tw.failCalls([{ status: 400, code: 21211 }]);
  const r = await initiate({ to: uniqPhone(), connect_to: uniqPhone() });
  assert.equal(r.status, 202, r.text);
  const f = await until(r.body.id, (b) => b.status === 'failed');
  assert.equal(f.error_code, '21211');
  assert.ok(f.error_message);
  assert.doesNotMatch(f.error_message, /\+?1415\d{7}/, 'the provider\'s text keeps no number');
  // The notifications plugin's rule: the user who placed it hears of it.
  const note = await poll(async () => {
    const x = await srv.request('GET', '/api/v1/notifications', { token: admin });
    return x.body.data?.find((e) => e.data?.id === f.id && e.event === 'telephony.call.status');
  });
  assert.ok(note, 'no notification for the failed call');
});

test('failover: Twilio down -> the call goes through Exotel once; a timeout after the request left -> failed unknown, placed once', async () => {
  const to = ukPhone();
  const agent = ukPhone();
  await tw.stop();
  let c;
  try {
    c = await placed({ to, connect_to: agent });
  } finally {
    await tw.start();
  }
  assert.equal(c.provider, 'exotel');
  assert.equal(ex.callsTo(to), 1);
  assert.equal(tw.callsTo(to), 0);

  const slow = uniqPhone();
  tw.failCalls([{ delayMs: 3000 }]);
  const r = await initiate({ to: slow, connect_to: uniqPhone() });
  const f = await until(r.body.id, (b) => b.status === 'failed');
  assert.equal(f.hangup_cause, 'unknown');
  assert.equal(f.provider_call_id, null);
  // The slow answer came (Twilio created it); nobody asked again.
  assert.ok(await poll(() => tw.callsTo(slow) === 1));
  const jobs = await sql(srv, "SELECT status FROM jobs WHERE idempotency_key = $1", [`telephony.call:${f.id}`]);
  assert.equal(jobs[0].status, 'done');
  assert.equal(tw.callsTo(slow), 1);
  const st = await srv.request('GET', '/api/v1/calls/statistics?group_by=provider', { token: admin });
  assert.ok(st.body.totals.unknown >= 1, st.text);
  // Prometheus: the calls and SMS by provider, status and direction.
  const prom = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(prom, /^# TYPE switchboard_telephony_calls gauge$/m);
  assert.match(prom, /^switchboard_telephony_calls\{provider="exotel",status="initiated",direction="outbound"\} [1-9]/m);
  assert.match(prom, /^switchboard_telephony_calls\{provider="twilio",status="failed",direction="outbound"\} [1-9]/m);
  const stats = await srv.request('GET', '/api/v1/stats', { token: admin });
  assert.equal(stats.status, 200, stats.text);
  assert.ok(!stats.text.includes('"metrics"'), 'the Prometheus figures stay out of /api/v1/stats');
});

test('Exotel: the agent leg first, callbacks through the path token, a call flow for a message, no hangup, a wrong token 404', async () => {
  const to = indiaPhone();
  const agent = indiaPhone();
  const c = await placed({ to, connect_to: agent, record: true });
  assert.equal(c.provider, 'exotel');
  assert.equal(c.status, 'initiated');
  assert.equal(c.from, EXOPHONE);
  const call = ex.calls.get(c.provider_call_id);
  assert.equal(call.from, agent, 'the agent is called first');
  assert.equal(call.to, to);
  assert.equal(call.callerId, EXOPHONE);
  assert.match(call.callback, new RegExp(`^${PUBLIC}/api/v1/webhooks/exotel/[A-Za-z0-9_-]{16,}/voice$`));
  const target = srv.url;
  let a = await ex.callStatus(c.provider_call_id, 'in-progress', { eventType: 'answered', target });
  assert.equal(a.status, 200, a.text);
  await until(c.id, (b) => b.status === 'in-progress');
  a = await ex.callStatus(c.provider_call_id, 'completed', { duration: 30, eventType: 'terminal', target,
    recordingUrl: 'https://recordings.exotel.com/exotelrecordings/acme/abc.mp3' });
  assert.equal(a.status, 200, a.text);
  const done = await until(c.id, (b) => b.status === 'completed');
  assert.equal(done.duration_s, 30);
  assert.equal(done.recording_url, 'https://recordings.exotel.com/exotelrecordings/acme/abc.mp3');
  // Replayed: nothing new.
  a = await ex.callStatus(c.provider_call_id, 'completed', { duration: 30, eventType: 'terminal', target });
  assert.equal((await getCall(c.id)).body.events.length, done.events.length);
  // A wrong token is 404 and changes nothing.
  const wrong = await postForm(`${srv.url}/api/v1/webhooks/exotel/${'x'.repeat(43)}/voice`,
    { CallSid: c.provider_call_id, Status: 'failed' });
  assert.equal(wrong.status, 404);
  assert.equal((await getCall(c.id)).body.status, 'completed');

  // No connect_to: the callee is connected to the call flow.
  const m = await placed({ to: indiaPhone(), message: 'Your order has shipped' });
  const flow = ex.calls.get(m.provider_call_id);
  assert.match(flow.url, new RegExp(`/exoml/start_voice/${APP_ID}$`));
  // Exotel offers no way to end a call.
  const h = await srv.request('POST', `/api/v1/calls/${m.id}/hangup`, { token: admin });
  assert.equal(h.status, 409, h.text);
  // A SIP user cannot be dialled through Exotel: Twilio (next in the route) is.
  const s = await placed({ to: indiaPhone(), connect_to: 'sip:desk@pbx.example.org' });
  assert.equal(s.provider, 'twilio');
});

test('validation, the 503 without a provider, lists and filters', async () => {
  let r = await initiate({ to: 'nope', connect_to: uniqPhone() });
  assert.equal(r.status, 422, r.text);
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.errors[0].field, 'to');
  r = await initiate({ to: uniqPhone() });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.errors[0].field, 'message');
  r = await initiate({ to: uniqPhone(), connect_to: 'sip:' });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.errors[0].field, 'connect_to');
  r = await initiate({ to: uniqPhone(), message: 'x', provider: 'freeswitch' });
  assert.equal(r.status, 503, r.text);
  assertEnvelope(assert, r, 503, 'UNAVAILABLE');
  r = await initiate({ to: uniqPhone(), message: 'x', customer_id: 99999999 });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.errors[0].field, 'customer_id');
  r = await srv.request('GET', '/api/v1/calls?status=bogus', { token: admin });
  assert.equal(r.status, 400, r.text);
  r = await srv.request('GET', '/api/v1/calls/statistics?group_by=week', { token: admin });
  assert.equal(r.status, 400, r.text);
  r = await srv.request('GET', '/api/v1/calls/statistics?from=yesterday', { token: admin });
  assert.equal(r.status, 400, r.text);
  r = await srv.request('GET', '/api/v1/calls/customer/99999999', { token: admin });
  assert.equal(r.status, 404, r.text);
  const to = uniqPhone();
  const c = await placed({ to, message: 'hello' });
  r = await srv.request('GET', `/api/v1/calls?to=${encodeURIComponent(to)}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => x.id), [c.id]);
  r = await srv.request('GET', '/api/v1/calls?status=initiated&provider=twilio&limit=2', { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.data.every((x) => x.status === 'initiated' && x.provider === 'twilio'));
  assert.ok(r.body.data.length <= 2);
});

test('the pace: a provider account starts at most calls_per_second calls a second; a call not placed yet hangs up at once', async () => {
  const s = await startServer({ host: { public_url: PUBLIC }, plugins: { ...TEST_PLUGINS, customers: {},
    telephony: conf({ twilio_calls_per_second: '0.5' }) } });
  try {
    const token = await s.login();
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await initiate({ to: uniqPhone(), message: `pace ${i}` }, s, token);
      assert.equal(r.status, 202, r.text);
      ids.push(r.body.id);
    }
    // Their place jobs start two seconds apart (a slot each).
    const runs = await sql(s, "SELECT extract(epoch FROM run_at)::float8 AS t FROM jobs WHERE idempotency_key = " +
      "ANY($1::text[]) ORDER BY run_at", [ids.map((i) => `telephony.call:${i}`)]);
    assert.equal(runs.length, 3);
    for (let i = 1; i < 3; i++) assert.ok(runs[i].t - runs[i - 1].t >= 1.9, JSON.stringify(runs));
    // The last waits for its slot: hung up now, it is never placed.
    const h = await s.request('POST', `/api/v1/calls/${ids[2]}/hangup`, { token });
    assert.equal(h.status, 200, h.text);
    assert.equal(h.body.status, 'canceled');
    await until(ids[1], (b) => b.provider_call_id, s);
    const job = await poll(async () => (await sql(s, "SELECT status FROM jobs WHERE idempotency_key = $1",
      [`telephony.call:${ids[2]}`]))[0]?.status === 'done');
    assert.ok(job);
    const last = (await getCall(ids[2], s)).body;
    assert.equal(last.status, 'canceled');
    assert.equal(last.provider_call_id, null);
  } finally {
    await s.stop();
  }
});

test('statistics match a hand-computed table over a seeded set of calls', async () => {
  // Seeded on days no other test uses: 2021-03-01 and 2021-03-02.
  const seed = [
    // [day, provider, status, duration, initiated_by, hangup_cause]
    ['2021-03-01', 'twilio', 'completed', 10, 1, 'normal_clearing'],
    ['2021-03-01', 'twilio', 'completed', 20, 1, 'normal_clearing'],
    ['2021-03-01', 'twilio', 'busy', null, 1, 'busy'],
    ['2021-03-01', 'exotel', 'completed', 30, 2, 'normal_clearing'],
    ['2021-03-02', 'exotel', 'no-answer', null, 2, 'no-answer'],
    ['2021-03-02', 'exotel', 'failed', null, 2, 'unknown'],
    ['2021-03-02', 'twilio', 'completed', 100, 1, 'normal_clearing'],
    ['2021-03-02', 'twilio', 'canceled', null, 1, 'canceled'],
  ];
  for (const [day, provider, status, dur, by, cause] of seed) {
    await sql(srv, "INSERT INTO telephony_calls (direction, to_sealed, to_index, provider, status, duration_s, " +
      "initiated_by, hangup_cause, created_at) VALUES ('outbound', 'x', 'x', $1, $2, $3, $4, $5, " +
      "($6::date + time '12:00') AT TIME ZONE 'UTC')", [provider, status, dur, by, cause, day]);
  }
  const stats = async (q) => {
    const r = await srv.request('GET', `/api/v1/calls/statistics?from=2021-03-01&to=2021-03-02&${q}`, { token: admin });
    assert.equal(r.status, 200, r.text);
    return r.body;
  };
  // By hand: 8 calls, 4 completed (10, 20, 30, 100 s): avg 40, p90 (linear) 79.
  const totals = { total: 8, completed: 4, failed: 1, busy: 1, no_answer: 1, canceled: 1, unknown: 1,
    success_rate: 0.5, avg_duration_s: 40, p90_duration_s: 79 };
  const byProvider = await stats('group_by=provider');
  assert.deepEqual(byProvider.totals, totals);
  assert.deepEqual(byProvider.groups, [
    { key: 'exotel', total: 3, completed: 1, failed: 1, busy: 0, no_answer: 1, canceled: 0, unknown: 1,
      success_rate: 0.3333, avg_duration_s: 30, p90_duration_s: 30 },
    { key: 'twilio', total: 5, completed: 3, failed: 0, busy: 1, no_answer: 0, canceled: 1, unknown: 0,
      success_rate: 0.6, avg_duration_s: 43.33, p90_duration_s: 84 },
  ]);
  const byDay = await stats('group_by=day');
  assert.deepEqual(byDay.groups.map((g) => [g.key, g.total, g.completed, g.success_rate, g.avg_duration_s]), [
    ['2021-03-01', 4, 3, 0.75, 20], ['2021-03-02', 4, 1, 0.25, 100]]);
  const byUser = await stats('group_by=user');
  assert.deepEqual(byUser.groups.map((g) => [g.key, g.total, g.completed]), [[1, 5, 3], [2, 3, 1]]);
  // A bound as a time is exclusive: the 2nd at noon is left out.
  const r = await srv.request('GET', '/api/v1/calls/statistics?from=2021-03-01&to=2021-03-02T12:00:00Z',
    { token: admin });
  assert.equal(r.body.totals.total, 4);
});

test('privacy: a number\'s or a customer\'s calls are exported and erased with their SMS', async () => {
  const to = uniqPhone();
  const c = await placed({ to, message: 'private call' });
  let r = await srv.request('GET', `/api/v1/privacy/export?phone=${encodeURIComponent(to)}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.telephony.calls.map((x) => [x.id, x.to]), [[c.id, to]]);
  r = await srv.request('GET', `/api/v1/privacy/export?customer_id=${c.customer_id}`, { token: admin });
  assert.deepEqual(r.body.telephony.calls.map((x) => x.id), [c.id]);
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { phone: to } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.deleted.telephony, 1);
  assertEnvelope(assert, await getCall(c.id), 404, 'NOT_FOUND');
  const c2 = await placed({ to: uniqPhone(), message: 'by customer' });
  r = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { customer_id: c2.customer_id } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.deleted.telephony, 1);
  assertEnvelope(assert, await getCall(c2.id), 404, 'NOT_FOUND');
});

test('the call budget: calls_per_minute per user and per number, 429 with Retry-After', async () => {
  const s = await startServer({ host: { public_url: PUBLIC }, plugins: { ...TEST_PLUGINS, customers: {},
    telephony: conf({ calls_per_minute: '2' }) } });
  try {
    const token = await s.login();
    const to = uniqPhone();
    for (let i = 0; i < 2; i++) assert.equal((await initiate({ to, message: `${i}` }, s, token)).status, 202);
    const over = await initiate({ to, message: 'third' }, s, token);
    assertEnvelope(assert, over, 429, 'RATE_LIMITED');
    assert.ok(Number(over.headers.get('retry-after')) >= 1);
    // Nothing was written for it.
    const n = await sql(s, 'SELECT count(*)::int AS n FROM telephony_calls');
    assert.equal(n[0].n, 2);
  } finally {
    await s.stop();
  }
});

test('a call to our Twilio number is logged as inbound with its caller as a customer, and bridged when configured', async () => {
  const caller = uniqPhone();
  const sid = `CA${randomBytes(16).toString('hex')}`;
  const params = { AccountSid: tw.accountSid, ApiVersion: '2010-04-01', CallSid: sid, CallStatus: 'ringing',
    Direction: 'inbound', From: caller, To: FROM, Called: FROM, Caller: caller };
  let r = await postSigned(srv.url + VHOOK, tw.authToken, params, { signUrl: PUBLIC + VHOOK });
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /<Response\/>/);
  // Twilio asks again (a retry): one call still.
  r = await postSigned(srv.url + VHOOK, tw.authToken, params, { signUrl: PUBLIC + VHOOK });
  assert.equal(r.status, 200, r.text);
  const list = await srv.request('GET', `/api/v1/calls?from=${encodeURIComponent(caller)}`, { token: admin });
  assert.equal(list.status, 200, list.text);
  assert.equal(list.body.data.length, 1, list.text);
  const c = list.body.data[0];
  assert.equal(c.direction, 'inbound');
  assert.equal(c.status, 'ringing');
  assert.equal(c.from, caller);
  assert.equal(c.to, FROM);
  assert.equal(c.provider_call_id, sid);
  const cust = await srv.request('GET', `/api/v1/customers/${c.customer_id}`, { token: admin });
  assert.equal(cust.body.phone, caller);
  // Its status callbacks move it on.
  const end = { ...params, CallStatus: 'completed', CallDuration: '12', CallbackSource: 'call-progress-events' };
  r = await postSigned(srv.url + VHOOK, tw.authToken, end, { signUrl: PUBLIC + VHOOK });
  assert.equal(r.status, 200, r.text);
  const done = await until(c.id, (b) => b.status === 'completed');
  assert.equal(done.duration_s, 12);

  const s = await startServer({ host: { public_url: PUBLIC }, plugins: { ...TEST_PLUGINS, customers: {},
    telephony: conf({ inbound_connect_to: 'sip:frontdesk@pbx.example.org' }) } });
  try {
    r = await postSigned(s.url + VHOOK, tw.authToken, { ...params, CallSid: `CA${randomBytes(16).toString('hex')}` },
      { signUrl: PUBLIC + VHOOK });
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /<Response><Dial><Sip>sip:frontdesk@pbx\.example\.org<\/Sip><\/Dial><\/Response>/);
  } finally {
    await s.stop();
  }
});
