// tests/fakes/twilio.mjs checked against Twilio's own Node library (npm
// `twilio`): its client creates a message on the fake, and its
// validateRequest accepts the fake's callback signatures and rejects
// altered ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import twilio from 'twilio';
import { startTwilio, signTwilio } from '../fakes/twilio.mjs';

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
