// Key rotation of the telephony plugin (desc.rekey): numbers and bodies
// sealed under data key A are re-sealed under B by POST /api/v1/privacy/rekey
// (B current, A retired) and then open under B alone; the blind indexes
// (SB_INDEX_KEY) keep finding the numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TEST_PLUGINS, createDatabase, dropDatabase, DATA_KEY } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startTwilio } from '../fakes/twilio.mjs';

const KEY_B = 'rotated-data-key-fedcba9876543210fedcba9876543210';
const HOOK = '/api/v1/webhooks/twilio/sms';

test('rotate A -> B: every SMS opens under B alone and is found by number', async () => {
  const tw = await startTwilio();
  const plugins = { ...TEST_PLUGINS, customers: {}, telephony: { twilio_account_sid: tw.accountSid,
    twilio_auth_token: tw.authToken, twilio_from: '+15005550001', twilio_api_url: tw.url, sms_per_minute: '0' } };
  const database = await createDatabase();
  let srv;
  try {
    srv = await startServer({ plugins, database });
    let token = await srv.login();
    const out = await srv.request('POST', '/api/v1/sms', { token, json: { to: '+14155550123', body: 'rotate me' } });
    assert.equal(out.status, 202, out.text);
    await poll(async () => (await srv.request('GET', `/api/v1/sms/${out.body.id}`, { token })).body.status === 'sending');
    const inb = await tw.inbound(srv.url + HOOK, { from: '+14155550124', to: '+15005550001', body: 'me too' });
    assert.equal(inb.status, 200, inb.text);
    const before = await srv.request('GET', '/api/v1/sms/outbox', { token });
    await srv.stop({ keepDatabase: true });

    srv = await startServer({ plugins, database, env: { SB_DATA_KEY: KEY_B, SB_DATA_KEYS_RETIRED: DATA_KEY } });
    token = await srv.login();
    const started = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assert.equal(started.status, 202, started.text);
    let run;
    await poll(async () => {
      const r = await srv.request('GET', '/api/v1/privacy/rekey', { token });
      run = r.body;
      return r.status === 200 && run.status !== 'running';
    });
    assert.equal(run.status, 'done', JSON.stringify(run));
    const tel = run.plugins.find((x) => x.plugin === 'telephony');
    // outbound: to, from, body; inbound: to, from, body.
    assert.equal(tel.resealed, 6, JSON.stringify(run));
    await srv.stop({ keepDatabase: true });

    srv = await startServer({ plugins, database, env: { SB_DATA_KEY: KEY_B } });
    token = await srv.login();
    const after = await srv.request('GET', '/api/v1/sms/outbox', { token });
    assert.deepEqual(after.body.data.map((m) => [m.to, m.from, m.body]),
      before.body.data.map((m) => [m.to, m.from, m.body]));
    assert.deepEqual(after.body.data.map((m) => [m.to, m.body]), [['+14155550123', 'rotate me']]);
    const inbox = await srv.request('GET', `/api/v1/sms/inbox?from=${encodeURIComponent('+14155550124')}`, { token });
    assert.deepEqual(inbox.body.data.map((m) => m.body), ['me too']);
  } finally {
    await srv?.stop({ keepDatabase: true });
    await dropDatabase(database);
    await tw.stop();
  }
});
