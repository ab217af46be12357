// tests/fakes/twilio.mjs checked against Twilio's own Node library (npm
// `twilio`): its client creates a message on the fake, and its
// validateRequest accepts the fake's callback signatures and rejects
// altered ones; its client places, ends and fetches calls on the fake and
// lists the fake's messages, and validateRequest accepts the call status
// callbacks the fake sends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import twilio from 'twilio';
import { startTwilio, signTwilio } from '../fakes/twilio.mjs';
import { poll } from './lib/helpers.mjs';

let tw;
before(async () => { tw = await startTwilio(); });
after(async () => { await tw.stop(); });

function clientFor(fake, token = fake.authToken) {
  const c = twilio(fake.accountSid, token);
  c.api.baseUrl = fake.url;
  return c;
}

test('the twilio client creates a message on the fake', async () => {
  const m = await clientFor(tw).messages.create({ to: '+15005550006', from: '+15005550001',
    body: 'fake check', statusCallback: 'https://example.org/cb' });
  assert.match(m.sid, /^SM[0-9a-f]{32}$/);
  assert.equal(m.status, 'queued');
  assert.equal(m.to, '+15005550006');
  assert.equal(tw.sends('+15005550006', 'fake check'), 1);
  assert.equal(tw.messages.get(m.sid).callback, 'https://example.org/cb');
});

test('the fake answers errors in the shape the twilio client reads', async () => {
  tw.fail([{ status: 400, code: 21211 }]);
  await assert.rejects(clientFor(tw).messages.create({ to: '+1500555', from: '+15005550001', body: 'x' }),
    (e) => e.status === 400 && e.code === 21211 && /21211/.test(e.moreInfo));
  await assert.rejects(clientFor(tw, 'wrong-token').messages.create({ to: '+15005550006',
    from: '+15005550001', body: 'x' }), (e) => e.status === 401 && e.code === 20003);
});

test("validateRequest accepts the fake's callback signatures and rejects altered ones", async () => {
  const seen = [];
  const sink = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => { seen.push({ sig: req.headers['x-twilio-signature'], params: Object.fromEntries(new URLSearchParams(b)) }); res.end('<Response/>'); });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${sink.address().port}/api/v1/webhooks/twilio/sms`;
  try {
    const m = await clientFor(tw).messages.create({ to: '+15005550006', from: '+15005550001',
      body: 'signed', statusCallback: url });
    await tw.callback(m.sid, 'delivered');
    await tw.inbound(url, { from: '+15005550006', to: '+15005550001', body: 'hi there' });
    assert.equal(seen.length, 2);
    for (const { sig, params } of seen) {
      assert.equal(twilio.validateRequest(tw.authToken, sig, url, params), true);
      assert.equal(twilio.validateRequest(tw.authToken, sig, `${url}x`, params), false);
      assert.equal(twilio.validateRequest(tw.authToken, sig, url, { ...params, To: '+15005550007' }), false);
      assert.equal(twilio.validateRequest('other-token', sig, url, params), false);
      assert.equal(signTwilio(tw.authToken, url, params), sig);
    }
    assert.equal(seen[0].params.MessageStatus, 'delivered');
    assert.equal(seen[1].params.SmsStatus, 'received');
  } finally {
    await new Promise((r) => sink.close(r));
  }
});

// A local webhook receiver: every request's method, URL, signature and fields.
async function startSink() {
  const seen = [];
  const server = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => {
      const [path, query = ''] = req.url.split('?');
      seen.push({ method: req.method, path, query, sig: req.headers['x-twilio-signature'],
        params: Object.fromEntries(new URLSearchParams(req.method === 'GET' ? query : b)) });
      res.end('<Response/>');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { seen, base, close: () => new Promise((r) => server.close(r)) };
}

const TWIML = '<Response><Say>Hello from the fake</Say></Response>';

test('the twilio client places a call on the fake with the status callback events it asks for', async () => {
  const before = tw.callsTo('+15005550010');
  const c = await clientFor(tw).calls.create({ to: '+15005550010', from: '+15005550001', twiml: TWIML,
    statusCallback: 'https://example.org/cb', statusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
    statusCallbackMethod: 'POST', record: true, timeout: 20 });
  assert.match(c.sid, /^CA[0-9a-f]{32}$/);
  assert.equal(c.status, 'queued');
  assert.equal(c.direction, 'outbound-api');
  assert.equal(c.to, '+15005550010');
  assert.equal(c.from, '+15005550001');
  assert.equal(c.accountSid, tw.accountSid);
  assert.equal(c.uri, `/2010-04-01/Accounts/${tw.accountSid}/Calls/${c.sid}.json`);
  assert.ok(c.dateCreated instanceof Date && !Number.isNaN(c.dateCreated.getTime()));
  assert.equal(c.duration, null);
  assert.equal(tw.callsTo('+15005550010'), before + 1);
  const call = tw.calls.get(c.sid);
  assert.deepEqual(call.events, ['initiated', 'ringing', 'answered', 'completed']);
  assert.equal(call.twiml, TWIML);
  assert.equal(call.statusCallback, 'https://example.org/cb');
  assert.equal(call.record, true);
  const form = tw.callRequests.at(-1);
  assert.deepEqual(form.StatusCallbackEvent, ['initiated', 'ringing', 'answered', 'completed']);
  assert.equal(form.Timeout, '20');
  const again = await clientFor(tw).calls(c.sid).fetch();
  assert.equal(again.sid, c.sid);
  assert.equal(again.status, 'queued');
});

test('call creates fail as Twilio fails them, on the twilio client', async () => {
  const client = clientFor(tw);
  await assert.rejects(client.calls.create({ to: '5005550010', from: '+15005550001', twiml: TWIML }),
    (e) => e.status === 400 && e.code === 21211 && /21211/.test(e.moreInfo));
  await assert.rejects(client.calls.create({ to: '+15005550010', from: '+15005550001' }),
    (e) => e.status === 400 && e.code === 21205);
  await assert.rejects(client.calls.create({ to: '+15005550010', from: '+15005550001', url: 'not a url' }),
    (e) => e.status === 400 && e.code === 21205);
  await assert.rejects(client.calls.create({ to: '', from: '+15005550001', twiml: TWIML }),
    (e) => e.status === 400 && e.code === 21201);
  const before = tw.callsTo('+15005550011');
  tw.failCalls([{ status: 429, retryAfter: 1 }, { status: 503 }, { status: 400, code: 21215, message: 'Geo' }]);
  await assert.rejects(client.calls.create({ to: '+15005550011', from: '+15005550001', twiml: TWIML }),
    (e) => e.status === 429 && e.code === 20429);
  await assert.rejects(client.calls.create({ to: '+15005550011', from: '+15005550001', twiml: TWIML }),
    (e) => e.status === 503);
  // Call failures are the calls' own: a message goes out in between.
  const m = await client.messages.create({ to: '+15005550011', from: '+15005550001', body: 'between' });
  assert.equal(m.status, 'queued');
  await assert.rejects(client.calls.create({ to: '+15005550011', from: '+15005550001', twiml: TWIML }),
    (e) => e.status === 400 && e.code === 21215 && e.message === 'Geo');
  assert.equal(tw.callsTo('+15005550011'), before, 'no call was created by a failed request');
  const ok = await client.calls.create({ to: '+15005550011', from: '+15005550001', twiml: TWIML });
  assert.equal(ok.status, 'queued');
  assert.equal(tw.callsTo('+15005550011'), before + 1);
});

test("validateRequest accepts the fake's call status callbacks, in order, only for subscribed events", async () => {
  const sink = await startSink();
  const url = `${sink.base}/api/v1/webhooks/twilio/voice/status`;
  try {
    const client = clientFor(tw);
    const c = await client.calls.create({ to: '+15005550012', from: '+15005550001', url: 'https://example.org/twiml',
      statusCallback: url, statusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'], record: true });
    const answers = await tw.callRun(c.sid, ['initiated', 'ringing', 'in-progress', 'completed'], { duration: 42 });
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200]);
    assert.deepEqual(sink.seen.map((s) => s.params.CallStatus), ['initiated', 'ringing', 'in-progress', 'completed']);
    assert.deepEqual(sink.seen.map((s) => s.params.SequenceNumber), ['0', '1', '2', '3']);
    for (const { sig, params, method } of sink.seen) {
      assert.equal(method, 'POST');
      assert.equal(params.CallSid, c.sid);
      assert.equal(params.AccountSid, tw.accountSid);
      assert.equal(params.CallbackSource, 'call-progress-events');
      assert.equal(params.Direction, 'outbound-api');
      assert.equal(params.To, '+15005550012');
      assert.equal(params.From, '+15005550001');
      assert.ok(!Number.isNaN(Date.parse(params.Timestamp)));
      assert.equal(twilio.validateRequest(tw.authToken, sig, url, params), true);
      assert.equal(twilio.validateRequest(tw.authToken, sig, url, { ...params, CallStatus: 'busy' }), false);
      assert.equal(twilio.validateRequest(tw.authToken, sig, `${url}x`, params), false);
      assert.equal(twilio.validateRequest('other-token', sig, url, params), false);
    }
    const end = sink.seen[3].params;
    assert.equal(end.CallDuration, '42');
    assert.match(end.RecordingSid, /^RE[0-9a-f]{32}$/);
    assert.equal(end.RecordingDuration, '42');
    assert.ok(end.RecordingUrl.endsWith(`/Recordings/${end.RecordingSid}`));
    for (const s of sink.seen.slice(0, 3)) {
      assert.equal(s.params.CallDuration, undefined, 'CallDuration is on the end only');
      assert.equal(s.params.RecordingUrl, undefined, 'the recording is on the completed event only');
    }
    const f = await client.calls(c.sid).fetch();
    assert.equal(f.status, 'completed');
    assert.equal(f.duration, '42');

    // Subscribed to the end only (the default): no ringing callback; busy is sent as an end.
    const d = await client.calls.create({ to: '+15005550013', from: '+15005550001', twiml: TWIML, statusCallback: url });
    assert.equal(await tw.callProgress(d.sid, 'ringing'), null);
    const r = await tw.callProgress(d.sid, 'busy');
    assert.equal(r.status, 200);
    const busy = sink.seen.at(-1).params;
    assert.equal(sink.seen.length, 5);
    assert.equal(busy.CallStatus, 'busy');
    assert.equal(busy.CallDuration, '0');
    assert.equal(busy.SequenceNumber, '0');
    assert.equal(busy.RecordingUrl, undefined, 'not recorded');
  } finally {
    await sink.close();
  }
});

test('a GET status callback carries its fields in the query and is signed over the whole URL', async () => {
  const sink = await startSink();
  const url = `${sink.base}/status?call=1`;
  try {
    const c = await clientFor(tw).calls.create({ to: '+15005550014', from: '+15005550001', twiml: TWIML,
      statusCallback: url, statusCallbackMethod: 'GET' });
    await tw.callRun(c.sid, ['in-progress', 'no-answer']);
    assert.equal(sink.seen.length, 1);
    const { method, path, query, sig, params } = sink.seen[0];
    assert.equal(method, 'GET');
    assert.equal(params.CallStatus, 'no-answer');
    assert.equal(twilio.validateRequest(tw.authToken, sig, `${sink.base}${path}?${query}`, {}), true);
    assert.equal(twilio.validateRequest(tw.authToken, sig, `${sink.base}${path}?${query}x`, {}), false);
  } finally {
    await sink.close();
  }
});

test('the twilio client ends calls on the fake; the end callback follows; an ended call cannot be ended', async () => {
  const sink = await startSink();
  const url = `${sink.base}/status`;
  try {
    const client = clientFor(tw);
    const c = await client.calls.create({ to: '+15005550015', from: '+15005550001', twiml: TWIML, statusCallback: url });
    await tw.callRun(c.sid, ['initiated', 'ringing', 'in-progress']);
    assert.equal(sink.seen.length, 0, 'subscribed to the end only');
    const done = await client.calls(c.sid).update({ status: 'completed' });
    assert.equal(done.sid, c.sid);
    assert.equal(done.status, 'completed');
    assert.match(done.duration, /^\d+$/);
    await poll(() => sink.seen.length === 1);
    assert.equal(sink.seen[0].params.CallStatus, 'completed');
    assert.equal(sink.seen[0].params.CallDuration, done.duration);
    assert.equal(twilio.validateRequest(tw.authToken, sink.seen[0].sig, url, sink.seen[0].params), true);
    assert.deepEqual(tw.callUpdates.at(-1), { sid: c.sid, form: { Status: 'completed' }, status: 'in-progress' });
    await assert.rejects(client.calls(c.sid).update({ status: 'completed' }),
      (e) => e.status === 400 && e.code === 21220);
    await assert.rejects(client.calls(`CA${'0'.repeat(32)}`).update({ status: 'completed' }),
      (e) => e.status === 404 && e.code === 20404);

    // Canceled while ringing: ends it, and the end callback says canceled.
    const d = await client.calls.create({ to: '+15005550016', from: '+15005550001', twiml: TWIML, statusCallback: url });
    await tw.callProgress(d.sid, 'ringing');
    const gone = await client.calls(d.sid).update({ status: 'canceled' });
    assert.equal(gone.status, 'canceled');
    await poll(() => sink.seen.length === 2);
    assert.equal(sink.seen[1].params.CallStatus, 'canceled');
    assert.equal(sink.seen[1].params.CallSid, d.sid);

    // Canceled while in progress: no effect, as Twilio documents.
    const e = await client.calls.create({ to: '+15005550017', from: '+15005550001', twiml: TWIML });
    await tw.callProgress(e.sid, 'in-progress');
    assert.equal((await client.calls(e.sid).update({ status: 'canceled' })).status, 'in-progress');
  } finally {
    await sink.close();
  }
});

test('the twilio client lists the messages the fake accepted, newest first, by To and date sent', async () => {
  const client = clientFor(tw);
  const to = '+15005550020';
  const before = new Date(Date.now() - 60000);
  const sent = [];
  for (const body of ['one', 'two', 'three']) sent.push(await client.messages.create({ to, from: '+15005550001', body }));
  await client.messages.create({ to: '+15005550021', from: '+15005550001', body: 'other' });
  const list = await client.messages.list({ to, dateSentAfter: before });
  assert.equal(list.length, 3);
  assert.deepEqual(list.map((m) => m.sid), sent.map((m) => m.sid).reverse());
  for (const m of list) {
    assert.equal(m.to, to);
    assert.ok(m.dateSent instanceof Date && m.dateSent >= new Date(Math.floor(before / 1000) * 1000));
  }
  // One at a time, the client follows next_page_uri to the end.
  const paged = await client.messages.list({ to, pageSize: 1 });
  assert.deepEqual(paged.map((m) => m.sid), list.map((m) => m.sid));
  assert.equal((await client.messages.list({ to, dateSentBefore: before })).length, 0);
  assert.equal((await client.messages.list({ to: '+15005550029' })).length, 0);
  // The raw envelope.
  const auth = `Basic ${Buffer.from(`${tw.accountSid}:${tw.authToken}`).toString('base64')}`;
  const r = await fetch(`${tw.url}/2010-04-01/Accounts/${tw.accountSid}/Messages.json?To=${encodeURIComponent(to)}&PageSize=2`,
    { headers: { authorization: auth } });
  const page = await r.json();
  assert.equal(r.status, 200);
  for (const k of ['messages', 'page', 'page_size', 'uri', 'first_page_uri', 'next_page_uri', 'previous_page_uri',
    'start', 'end']) assert.ok(k in page, k);
  assert.equal(page.messages.length, 2);
  assert.equal(page.page_size, 2);
  assert.equal(page.start, 0);
  assert.equal(page.end, 1);
  assert.match(page.next_page_uri, /PageToken=PASM[0-9a-f]{32}/);
  assert.equal(page.previous_page_uri, null);
});
