// The whole product for a browser test: the fake Daily, a server with
// every product plugin and the example plugin, and a TCP relay in front of
// it (the browser talks to the relay, so a test can drop the network).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, allPlugins, ADMIN_PASSWORD } from '../../http/lib/harness.mjs';
import { startDaily } from '../../fakes/daily.mjs';
import { startTwilio } from '../../fakes/twilio.mjs';
import { relay } from './browser.mjs';

export const PASSWORD = 'console-password-0123456789';
export const uniq = (p) => `${p}-${randomBytes(3).toString('hex')}`;

// The address the fake Twilio signs its callbacks for ([host] public_url,
// as behind a proxy); the test delivers them to the server itself.
export const TWILIO_PUBLIC_URL = 'https://switchboard.example.org';

// twilio: true points the telephony plugin at a fake Twilio (stack.twilio;
// its number is stack.twilioFrom); without it telephony stays unconfigured.
export async function startStack({ host = {}, plugins = {}, twilio = false } = {}) {
  const daily = await startDaily();
  const tw = twilio ? await startTwilio() : null;
  const all = allPlugins();
  delete all.probe;	// a test plugin; the console has nothing to show of it
  const twilioFrom = '+15005550001';
  const srv = await startServer({
    host: tw ? { public_url: `${TWILIO_PUBLIC_URL}/`, ...host } : host,
    plugins: {
      ...all,
      concierge: { create_rate_ip: '0', create_rate_donor: '0' },
      calls: { daily_api_url: daily.url, daily_api_key: daily.apiKey,
        webhook_secret: randomBytes(32).toString('base64') },
      ...(tw ? { telephony: { twilio_account_sid: tw.accountSid, twilio_auth_token: tw.authToken,
        twilio_from: twilioFrom, twilio_api_url: tw.url, sms_per_minute: '0', routing: 'sms:*=twilio;voice:*=twilio' } } : {}),
      ...plugins,
    },
  });
  const front = await relay(srv.port);
  const admin = await srv.login();
  const stack = {
    srv, daily, twilio: tw, twilioFrom: tw ? twilioFrom : null, relay: front, base: front.url, admin, adminPassword: ADMIN_PASSWORD,
    // A staff user made through the API: {id, username, password, name}.
    async user(role = 'AGENT', name = role.toLowerCase()) {
      const username = uniq(name);
      // A fresh token: a suite may shorten the access lifetime.
      const r = await srv.request('POST', '/api/v1/users', { token: await srv.login(),
        json: { username, password: PASSWORD, name: `${name} ${username.slice(-6)}`, email: `${username}@example.org`, role } });
      assert.equal(r.status, 201, r.text);
      return { id: r.body.id, username, password: PASSWORD, name: r.body.name };
    },
    async stop() {
      await front.close();
      await srv.stop();
      await daily.close();
      await tw?.stop();
    },
  };
  return stack;
}
