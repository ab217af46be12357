// The host's phone-number helper (api->phone_e164, src/phone.cc) answers
// inside every sandboxed worker (chroot + seccomp when run as root), with
// the [host] default_country; a default_country libphonenumber does not
// know stops the host at start with a clear message.  The table of
// numbers itself is the unit test (tests/unit/test_phone.c).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, testPlugin, assertEnvelope } from './lib/harness.mjs';
import { workerConnections } from './lib/helpers.mjs';

const PLUGINS = { phoner: testPlugin('phoner') };
const E164 = '/api/v1/phoner/e164';
let srv;
before(async () => {
  srv = await startServer({ plugins: PLUGINS, host: { default_country: 'GB' } });
});
after(async () => { await srv?.stop(); });

const q = (number, country) => `${E164}?number=${encodeURIComponent(number)}` +
  (country ? `&country=${country}` : '');

test('every worker normalises numbers, with the default country and without', async () => {
  const conns = await workerConnections(srv, 2);
  try {
    for (const pid of conns.pids) {
      const cases = [
        ['020 7946 0958', undefined, '+442079460958'],
        ['+1 (415) 555-0100', undefined, '+14155550100'],
        ['(415) 555-0100', 'US', '+14155550100'],
        ['0151 2345 6789', 'DE', '+4915123456789'],
        ['+91 98765 43210', undefined, '+919876543210'],
      ];
      for (const [number, country, e164] of cases) {
        const r = await conns.request(pid, { path: q(number, country) });
        assert.equal(r.status, 200, `worker ${pid}, ${number}: ${r.text}`);
        assert.deepEqual(r.body, { e164 });
      }
      const r = await conns.request(pid, { path: q('1-800-FLOWERS', 'US') });
      assert.equal(r.status, 422, r.text);
      assert.equal(r.body.errors[0].field, 'number');
    }
  } finally { conns.close(); }
});

test('what is not a possible number is 422 in the error envelope', async () => {
  for (const [number, country] of [['12345', 'US'], ['+999 1234 5678'], ['++44 20 7946 0958'],
    ['+44 20 7946 0958', 'XX'], ['+44 20 7946 0958'.padEnd(65)], ['+44\t20 7946 0958']]) {
    const r = await srv.request('GET', q(number, country));
    const body = assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
    assert.equal(body.errors[0].field, 'number');
  }
});

test('an unknown [host] default_country refuses to start, saying why', async () => {
  for (const bad of ['XX', 'gb', 'GBR']) {
    const s = await startServer({ plugins: PLUGINS, host: { default_country: bad }, expectFailure: true });
    await s.stop();
    assert.notEqual(s.exited.code, 0);
    assert.match(s.output, /default_country .* is not an ISO 3166-1 alpha-2 code/);
  }
});

test('SB_DEFAULT_COUNTRY overrides the file', async () => {
  const s = await startServer({ plugins: PLUGINS, host: { default_country: 'GB' },
    env: { SB_DEFAULT_COUNTRY: 'US' } });
  try {
    const r = await s.request('GET', q('(415) 555-0100'));
    assert.deepEqual(r.body, { e164: '+14155550100' });
    const gb = await s.request('GET', q('020 7946 0958'));
    assert.equal(gb.status, 422, 'a British national number is not possible in the US');
  } finally { await s.stop(); }
  const bad = await startServer({ plugins: PLUGINS, env: { SB_DEFAULT_COUNTRY: 'QQ' }, expectFailure: true });
  await bad.stop();
  assert.match(bad.output, /SB_DEFAULT_COUNTRY/);
});

test('without a default country a number written without + is refused', async () => {
  const s = await startServer({ plugins: PLUGINS });
  try {
    assert.equal((await s.request('GET', q('020 7946 0958'))).status, 422);
    assert.deepEqual((await s.request('GET', q('020 7946 0958', 'GB'))).body, { e164: '+442079460958' });
  } finally { await s.stop(); }
});
