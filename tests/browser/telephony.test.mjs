// The SMS and Calls screens end to end, against the telephony plugin
// pointed at the fake Twilio (tests/fakes/twilio.mjs): an SMS typed in the
// console (segment counter), queued, then sent and delivered through the
// fake's signed status callbacks, the ticks changing live without a
// reload; the SMS statistics charts; a call placed and hung up, and the
// call statistics.  The voice tests need the /api/v1/calls routes: they
// are skipped while the server answers POST /api/v1/calls/initiate with
// 404 NOT_FOUND (checked at run time), and run once the routes land.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { launch, open, shot, signIn, assertClean } from './lib/browser.mjs';
import { startStack } from './lib/stack.mjs';
import { poll } from '../http/lib/helpers.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const SMS_HOOK = '/api/v1/webhooks/twilio/sms';
const VOICE_HOOK = '/api/v1/webhooks/twilio/voice';
const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;

// The stack starts before the tests are declared: whether the server
// serves the voice routes decides which run.  Without them the POST is
// 404 NOT_FOUND; with them an empty body is a validation error.
const stack = await startStack({ twilio: true });
const probe = await stack.srv.request('POST', '/api/v1/calls/initiate', { token: stack.admin, json: {} });
const voiceAvailable = !(probe.status === 404 && probe.body?.code === 'NOT_FOUND');
let browser;

before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); await stack.stop(); });

// axe-core's serious and critical violations (as tests/browser/a11y.test.mjs).
async function audit(page, where) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${where}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  assert.deepEqual(bad, [], `accessibility violations on ${where}`);
}

let smsTo = null;	// the number test 1 wrote to, and its text
let smsText = null;
const sms = (id) => stack.srv.request('GET', `/api/v1/sms/${id}`, { token: stack.admin });

test('send an SMS from the console and watch it go to delivered, live', async () => {
  const w = await open(browser, stack.base, { name: 'sms', bypassCSP: true });
  const { page } = w;
  const to = uniqPhone();
  smsTo = to;
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'SMS' }).click();
  await page.getByRole('heading', { name: 'SMS', exact: true }).waitFor();

  // The counter follows the server's rule as one types.
  const counter = page.getByTestId('sms-counter');
  await page.getByLabel('To', { exact: true }).fill(`${to.slice(0, 5)} ${to.slice(5)}`);
  const body = page.getByLabel('Message', { exact: true });
  await body.fill('x'.repeat(161));
  await counter.filter({ hasText: '2/10 segments · GSM-7' }).waitFor();
  await body.fill('€'.repeat(80));	// the extension table: two septets each
  await counter.filter({ hasText: '1/10 segments · GSM-7' }).waitFor();
  await body.fill('€'.repeat(81));
  await counter.filter({ hasText: '2/10 segments · GSM-7' }).waitFor();
  await body.fill('Namaste 🙏'.repeat(8));	// UCS-2, the emoji counts two: 80 units
  await counter.filter({ hasText: '2/10 segments · UCS-2' }).waitFor();
  await body.fill('y'.repeat(1531));	// 11 segments of 153: refused before it leaves
  await counter.filter({ hasText: '11/10 segments · GSM-7' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send', exact: true }).isDisabled(), true);
  const text = `Your kit ships today {ref ${randomInt(1000, 9999)}}`;
  smsText = text;
  await body.fill(text);
  await counter.filter({ hasText: '1/10 segments · GSM-7' }).waitFor();
  await shot(page, 'sms-compose');

  // Twilio holds its answer: the message stays queued on screen until then.
  stack.twilio.hold();
  const mark = await page.evaluate(() => { window.__noReload = Math.random(); return window.__noReload; });
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const bubble = page.getByTestId('sms-thread').locator('.msg.out', { hasText: text });
  await bubble.waitFor();
  const id = Number(await bubble.getAttribute('data-sms-id'));
  assert.ok(id > 0);
  await bubble.locator('.ticks[data-status=queued][data-ticks="1"].pending').waitFor();
  assert.equal((await sms(id)).body.status, 'queued');
  // The conversation is listed under the number as the server wrote it.
  await page.getByTestId('sms-conversations').locator(`li[data-number="${to}"]`).waitFor();
  await shot(page, 'sms-queued');

  stack.twilio.release();
  await bubble.locator('.ticks[data-status=sending]').waitFor();
  const sid = (await sms(id)).body.provider_message_id;
  assert.match(sid, /^SM[0-9a-f]{32}$/);
  assert.equal(stack.twilio.sends(to, text), 1);

  let c = await stack.twilio.callback(sid, 'sent', { target: stack.srv.url + SMS_HOOK });
  assert.equal(c.status, 200, c.text);
  await bubble.locator('.ticks[data-status=sent][data-ticks="1"]:not(.pending)').waitFor();
  c = await stack.twilio.callback(sid, 'delivered', { target: stack.srv.url + SMS_HOOK });
  assert.equal(c.status, 200, c.text);
  await bubble.locator('.ticks[data-status=delivered][data-ticks="2"]').waitFor();
  assert.equal(await page.evaluate(() => window.__noReload), mark, 'the ticks changed without a reload');
  await shot(page, 'sms-delivered');

  // A failure shows its marker with the provider's error as the title.
  const to2 = uniqPhone();
  stack.twilio.fail([{ status: 400, code: 21211 }]);
  await page.getByLabel('To', { exact: true }).fill(to2);
  await body.fill('This one bounces');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const bad = page.getByTestId('sms-thread').locator('.msg.out', { hasText: 'This one bounces' });
  const marker = bad.locator('.ticks[data-status=failed][data-ticks=fail]');
  await marker.waitFor();
  assert.match(await marker.getAttribute('title'), /not a valid phone number/);
  await audit(page, 'SMS thread');

  // A number that is not one: the server's 422 beside the field.
  await page.getByLabel('To', { exact: true }).fill('12');
  await body.fill('Nobody');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.getByTestId('sms-send-error').filter({ hasText: /^Not sent: .*to:/ }).waitFor();
  assert.equal(await page.getByLabel('To', { exact: true }).getAttribute('aria-invalid'), 'true');

  // The outbox filter keeps the conversation; the inbox one has none of ours.
  await page.getByLabel('Show').selectOption('inbound');
  await page.getByTestId('sms-conversations').locator(`li[data-number="${to}"]`).waitFor({ state: 'detached' });
  await page.getByLabel('Show').selectOption('outbound');
  await page.getByTestId('sms-conversations').locator(`li[data-number="${to}"]`).waitFor();
  await w.context.close();
  assertClean(w, [/status of 422 .*\/api\/v1\/sms>$/]);
});

test('the SMS statistics view renders its charts from the messages sent', async () => {
  const w = await open(browser, stack.base, { name: 'sms-stats', bypassCSP: true });
  const { page } = w;
  const want = (await stack.srv.request('GET', '/api/v1/sms/statistics', { token: stack.admin })).body;
  assert.ok(want.totals.sent >= 1 && want.totals.delivered >= 1, JSON.stringify(want.totals));
  await signIn(page, 'admin', stack.adminPassword);
  await page.goto('/#/sms');
  await page.getByRole('tab', { name: 'Statistics' }).click();
  const charts = page.getByTestId('sms-stats-charts');
  await charts.locator('figure[data-chart="SMS per day"] svg[role=img]').waitFor();
  await charts.locator('figure[data-chart="SMS by provider"] svg[role=img]').waitFor();
  // The provider chart's hidden table holds the server's figures.
  const twilioRow = charts.locator('figure[data-chart="SMS by provider"] table tr', { hasText: 'twilio' });
  const cells = await twilioRow.locator('td').allTextContents();
  const prov = want.by_provider.find((p) => p.provider === 'twilio');
  assert.deepEqual(cells, [String(prov.sent), String(prov.delivered), String(prov.failed)]);
  // Today's bar in the per-day chart counts the delivered message.
  const today = new Date().toISOString().slice(5, 10);
  const dayRow = charts.locator('figure[data-chart="SMS per day"] table tr', { hasText: today });
  const day = want.by_day.find((d) => d.day.slice(5) === today);
  assert.deepEqual((await dayRow.locator('td').allTextContents()).slice(0, 2), [String(day.sent), String(day.delivered)]);
  await page.getByTestId('sms-stats-cards').filter({ hasText: 'SMS delivered' }).waitFor();
  await shot(page, 'sms-statistics');
  await audit(page, 'SMS statistics');
  await w.context.close();
  assertClean(w);
});

test('place a call from the console and hang it up', { skip: !voiceAvailable }, async () => {
  const w = await open(browser, stack.base, { name: 'calls', bypassCSP: true });
  const { page } = w;
  const to = uniqPhone();
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'Calls' }).click();
  await page.getByRole('heading', { name: 'Calls', exact: true }).waitFor();
  await page.getByLabel('Number to call').fill(to);
  await page.getByLabel('Speak a message and hang up').check();
  await page.getByLabel('Message to speak').fill('Your kit has shipped.');
  await page.getByRole('button', { name: 'Place call' }).click();
  const row = page.getByTestId('call-log').locator('tbody tr', { hasText: to });
  await row.waitFor();
  const id = Number(await row.getAttribute('data-call-id'));
  const call = async () => (await stack.srv.request('GET', `/api/v1/calls/${id}`, { token: stack.admin })).body;
  // The job hands the call to Twilio, whose callbacks move it on, live.
  await row.locator('[data-status=initiated], [data-status=ringing], [data-status=queued]').first().waitFor();
  const sid = await poll(async () => (await call()).provider_call_id);
  assert.match(sid ?? '', /^CA[0-9a-f]{32}$/);
  await stack.twilio.callProgress(sid, 'ringing', { target: stack.srv.url + VOICE_HOOK });
  await row.locator('.pill[data-status=ringing]').waitFor();
  await stack.twilio.callProgress(sid, 'in-progress', { target: stack.srv.url + VOICE_HOOK });
  await row.locator('.pill[data-status="in-progress"]').waitFor();
  await shot(page, 'calls-in-progress');
  await audit(page, 'Calls');

  await row.getByRole('button', { name: /^Hang up/ }).click();
  await stack.twilio.callProgress(sid, 'completed', { target: stack.srv.url + VOICE_HOOK, CallDuration: '7' });
  await row.locator('.pill[data-status=completed]').waitFor();
  assert.equal(await row.getByRole('button', { name: /^Hang up/ }).count(), 0, 'no hangup on an ended call');
  assert.equal((await call()).status, 'completed');
  // Hanging up an ended call is a 409.
  const again = await stack.srv.request('POST', `/api/v1/calls/${id}/hangup`, { token: stack.admin });
  assert.equal(again.status, 409, again.text);
  await shot(page, 'calls-ended');
  await w.context.close();
  assertClean(w);
});

test('the call statistics view renders its charts', { skip: !voiceAvailable }, async () => {
  const w = await open(browser, stack.base, { name: 'call-stats' });
  const { page } = w;
  const want = (await stack.srv.request('GET', '/api/v1/calls/statistics?group_by=provider', { token: stack.admin })).body;
  assert.ok(want.totals.total >= 1, JSON.stringify(want.totals));
  await signIn(page, 'admin', stack.adminPassword);
  await page.goto('/#/calls');
  await page.getByRole('tab', { name: 'Statistics' }).click();
  const charts = page.getByTestId('call-stats-charts');
  await charts.locator('figure[data-chart="Calls per day"] svg[role=img]').waitFor();
  const prov = charts.locator('figure[data-chart="Calls by provider"] table tr', { hasText: 'twilio' });
  const g = want.groups.find((x) => x.key === 'twilio');
  assert.deepEqual(await prov.locator('td').allTextContents(), [String(g.total), String(g.completed), String(g.failed)]);
  await charts.locator('figure[data-chart="SMS per day"]').waitFor();
  await shot(page, 'calls-statistics');
  await w.context.close();
  assertClean(w);
});

test("the customer's page lists the customer's SMS (and calls where served)", async () => {
  assert.ok(smsTo, 'the SMS test ran first');
  const w = await open(browser, stack.base, { name: 'customer' });
  const { page } = w;
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'Customers' }).click();
  // Sending to a new number created the customer (name empty).
  await page.getByLabel('Search by phone').fill(smsTo);
  await page.getByRole('button', { name: 'Search' }).click();
  const row = page.getByTestId('customers-list').locator('tbody tr', { hasText: smsTo });
  await row.waitFor();
  await row.getByRole('button', { name: /^Open/ }).click();
  const item = page.getByTestId('customer-sms').locator('li', { hasText: smsText });
  await item.waitFor();
  assert.equal(await item.getAttribute('data-status'), 'delivered');
  assert.match(await item.textContent(), new RegExp(`to \\${smsTo} \\(delivered\\)`));
  // Calls: none with this customer; without the voice routes (and so
  // without voice.read registered) the list stays empty.
  if (voiceAvailable) await page.getByText('No calls with this customer.').waitFor();
  else assert.equal(await page.getByTestId('customer-calls').locator('li').count(), 0);
  await shot(page, 'customer-telephony');
  await w.context.close();
  assertClean(w);
});
