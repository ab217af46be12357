// The donor page (/donor) end to end in Chromium: the start form and its
// errors, a conversation followed live while an agent works through the
// HTTP API, reloads, reconnects, calls through the fake Daily, closing,
// starting over, rejected tokens, rate limiting, and donor/agent text
// that must stay text.  The staff side is driven only through the API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, open, assertClean, shot, routeDaily } from './lib/browser.mjs';
import { startStack, uniq } from './lib/stack.mjs';
import { poll } from '../http/lib/helpers.mjs';

const DQ = '/api/v1/donor-queries';
const C = '/api/v1/communication';
const XSS = '<img src=x onerror=alert(1)>';
// Chromium logs every 4xx a page's fetch gets; tests that provoke one on
// purpose accept exactly that status.
const loadFailed = (status) => new RegExp(`Failed to load resource: the server responded with a status of ${status}`);

let stack, browser;

before(async () => {
  // Two queries per donor_id a day (nothing is earned back while the
  // suite runs, however slowly): room for every test here (each uses its
  // own donor ids) and a limit one test can reach.
  stack = await startStack({ plugins: {
    concierge: { create_rate_ip: '0', create_rate_donor: '2', create_rate_window: '86400' },
  } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

async function agent() {
  const u = await stack.user('AGENT');
  return { ...u, token: await stack.srv.login(u.username, u.password) };
}

const api = (method, path, token, json) => stack.srv.request(method, path, { token, json });

async function queriesOf(donorId) {
  const r = await api('GET', `${DQ}?q=${encodeURIComponent(donorId)}&limit=200`, stack.admin);
  assert.equal(r.status, 200, r.text);
  return r.body.data.filter((q) => q.donor_id === donorId);
}

// A donor page with the fake Daily answering its call frames.
async function donorPage(opts = {}) {
  const who = await open(browser, stack.base, { name: 'donor', ...opts });
  await routeDaily(who.context, stack.daily);
  who.dialogs = [];
  who.page.on('dialog', (d) => { who.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await who.page.goto('/donor');
  return who;
}

// Fill and send the start form; resolves once the conversation shows,
// with the query as the API has it.
async function startConversation(page, { donor = 'Ada Donor', donorId = uniq('donor'), content = 'Hello, I need help with my results.', details } = {}) {
  await page.getByLabel('Your name').fill(donor);
  await page.getByLabel('Donor ID').fill(donorId);
  if (details) {
    await page.getByText('More details').click();
    await page.getByLabel('Test', { exact: true }).fill(details.test);
    await page.getByLabel('Stage', { exact: true }).fill(details.stage);
    await page.getByLabel('Device', { exact: true }).fill(details.device);
  }
  await page.getByLabel('Your message').fill(content);
  await page.getByRole('button', { name: 'Start conversation' }).click();
  await page.getByTestId('thread').locator('.msg', { hasText: content }).waitFor();
  const id = await page.evaluate(() => JSON.parse(sessionStorage.getItem('switchboard.donor')).query_id);
  const r = await api('GET', `${DQ}/${id}`, stack.admin);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.donor_id, donorId);
  return { q: r.body, donorId };
}

const thread = (page) => page.getByTestId('thread');
const status = (page, s) => page.locator(`[data-testid=query-status][data-status=${s}]`);
const live = (page) => page.locator('[data-testid=ws-status][data-state=live]');

test('an empty start form shows errors beside the fields and creates nothing', async () => {
  const donor = await donorPage();
  const { page } = donor;
  await page.getByRole('heading', { name: 'How can we help?' }).waitFor();
  await shot(page, 'donor-start');

  await page.getByRole('button', { name: 'Start conversation' }).click();
  for (const f of ['donor', 'donor_id', 'content']) {
    const err = page.locator(`[role=alert][data-field=${f}]`);
    await err.filter({ hasText: /fill this in/ }).waitFor();
  }
  assert.equal(await page.getByLabel('Your name').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByTestId('conversation').count(), 0);

  // Name and id, no message: only the message is wrong, and the server
  // has nothing for this donor.
  const donorId = uniq('empty');
  await page.getByLabel('Your name').fill('Nobody Yet');
  await page.getByLabel('Donor ID').fill(donorId);
  await page.getByRole('button', { name: 'Start conversation' }).click();
  await page.locator('[role=alert][data-field=content]', { hasText: /fill this in/ }).waitFor();
  await page.locator('[role=alert][data-field=donor]:empty').waitFor({ state: 'attached' });
  assert.deepEqual(await queriesOf(donorId), []);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.donor')), null);
  await shot(page, 'donor-start-errors');
  assertClean(donor, [loadFailed(422)]);
  await donor.context.close();
});

test('a conversation: opened from the page, agent replies live, donor messages reach the server, a reload keeps it, text stays text', async () => {
  const donor = await donorPage();
  const { page } = donor;
  const { q, donorId } = await startConversation(page, { donor: 'Grace Donor',
    details: { test: 'Blood panel', stage: 'Results', device: 'Pixel 8' } });
  assert.equal(q.donor, 'Grace Donor');
  assert.equal(q.test, 'Blood panel');
  assert.equal(q.stage, 'Results');
  assert.equal(q.device, 'Pixel 8');
  assert.equal(q.status, 'IN_PROGRESS');
  await status(page, 'IN_PROGRESS').filter({ hasText: 'Waiting for an agent' }).waitFor();
  await page.getByText(`Query #${q.id}`).waitFor();
  await live(page).waitFor();

  // The session is what the page keeps for a reload.
  const kept = await page.evaluate(() => JSON.parse(sessionStorage.getItem('switchboard.donor')));
  assert.equal(kept.query_id, q.id);
  assert.equal(kept.donor_id, donorId);
  assert.equal(typeof kept.donor_token, 'string');

  // The agent takes it and answers through the API: both show up live.
  const a = await agent();
  let r = await api('PATCH', `${DQ}/${q.id}/accept`, a.token);
  assert.equal(r.status, 200, r.text);
  await status(page, 'IN_PROGRESS').filter({ hasText: 'An agent is with you' }).waitFor();
  r = await api('POST', `${DQ}/${q.id}/messages`, a.token, { content: 'Hi Grace, I am looking at your results now.' });
  assert.equal(r.status, 201, r.text);
  const reply = thread(page).locator('.msg.theirs', { hasText: 'I am looking at your results now.' });
  await reply.waitFor();

  // The donor answers with Enter; Shift+Enter is a new line.
  const box = page.getByLabel('Message', { exact: true });
  await box.fill('Thank you!');
  await box.press('Shift+Enter');
  await box.pressSequentially('Second line.');
  await box.press('Enter');
  await thread(page).locator('.msg.mine', { hasText: 'Second line.' }).waitFor();
  assert.ok(await poll(async () => (await box.inputValue()) === ''), 'the composer is emptied once sent');
  const fromDonor = await poll(async () => {
    const m = await api('GET', `${DQ}/${q.id}/messages`, a.token);
    return m.body.data.find((x) => x.sender_type === 'DONOR' && x.message_type === 'CHAT');
  });
  assert.ok(fromDonor, 'the donor message is on the server');
  assert.equal(fromDonor.content, 'Thank you!\nSecond line.');

  // Markup from either side is shown as typed and never runs.
  r = await api('POST', `${DQ}/${q.id}/messages`, a.token, { content: `agent says ${XSS}` });
  assert.equal(r.status, 201, r.text);
  await box.fill(`donor says ${XSS}`);
  await page.getByRole('button', { name: 'Send' }).click();
  await thread(page).locator('.msg.mine', { hasText: `donor says ${XSS}` }).waitFor();
  await thread(page).locator('.msg.theirs', { hasText: `agent says ${XSS}` }).waitFor();
  assert.equal(await thread(page).locator('img').count(), 0);
  await shot(page, 'donor-conversation');

  // A reload comes back to the same query with its whole thread.
  const before = await thread(page).locator('.msg').allTextContents();
  await page.reload();
  await status(page, 'IN_PROGRESS').filter({ hasText: 'An agent is with you' }).waitFor();
  await reply.waitFor();
  await page.getByText(`Query #${q.id}`).waitFor();
  const afterReload = await thread(page).locator('.msg').allTextContents();
  assert.deepEqual(afterReload, before);
  const ids = await thread(page).locator('.msg').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'oldest first');
  assert.equal(await thread(page).getAttribute('role'), 'log');
  assert.equal(await thread(page).getAttribute('aria-live'), 'polite');

  // And still live after the reload.
  await live(page).waitFor();
  r = await api('POST', `${DQ}/${q.id}/messages`, a.token, { content: 'Still here after your reload.' });
  assert.equal(r.status, 201, r.text);
  await thread(page).locator('.msg', { hasText: 'Still here after your reload.' }).waitFor();
  assert.deepEqual(donor.dialogs, []);
  assertClean(donor);
  await donor.context.close();
});

test('a message posted while the connection is down arrives once it is back', async () => {
  const donor = await donorPage();
  const { page } = donor;
  const { q } = await startConversation(page);
  const a = await agent();
  await live(page).waitFor();
  stack.relay.drop();
  const r = await api('POST', `${DQ}/${q.id}/messages`, a.token, { content: 'Sent while you were offline.' });
  assert.equal(r.status, 201, r.text);
  await thread(page).locator('.msg', { hasText: 'Sent while you were offline.' }).waitFor();
  await live(page).waitFor();
  // Once a message sent after it has come in live, a second copy of the
  // first (from the catch-up or the socket) would have too.
  const r2 = await api('POST', `${DQ}/${q.id}/messages`, a.token, { content: 'Sent once you were back.' });
  assert.equal(r2.status, 201, r2.text);
  await thread(page).locator('.msg', { hasText: 'Sent once you were back.' }).waitFor();
  assert.equal(await thread(page).locator('.msg', { hasText: 'Sent while you were offline.' }).count(), 1);
  assert.equal(await thread(page).locator('.msg', { hasText: 'Sent once you were back.' }).count(), 1);
  assertClean(donor, [/WebSocket/]);
  await donor.context.close();
});

test('calls: cancel a request, a rejected request, then an accepted call joins Daily with the donor token', async () => {
  const donor = await donorPage();
  const { page } = donor;
  const { q } = await startConversation(page, { content: 'Can we do a video call?' });
  await live(page).waitFor();
  const a = await agent();
  assert.equal((await api('PATCH', `${DQ}/${q.id}/accept`, a.token)).status, 200);
  const pending = page.getByTestId('call-pending');
  const requests = async () => (await api('GET', `${C}/call/${q.id}/requests`, a.token)).body.data;

  // Cancelled by the donor.
  await page.getByLabel('Call type').selectOption('SCREEN');
  await page.getByRole('button', { name: 'Request a call' }).click();
  await pending.filter({ hasText: 'Call requested — waiting for an agent' }).waitFor();
  let [req] = await requests();
  assert.equal(req.status, 'PENDING');
  assert.equal(req.mode, 'SCREEN');
  await page.getByRole('button', { name: 'Cancel request' }).click();
  await page.getByRole('button', { name: 'Request a call' }).waitFor();
  await pending.waitFor({ state: 'hidden' });
  [req] = await requests();
  assert.equal(req.status, 'CANCELLED');

  // Turned down by the agent.
  await page.getByLabel('Call type').selectOption('AUDIO');
  await page.getByRole('button', { name: 'Request a call' }).click();
  await pending.waitFor();
  [req] = await requests();
  assert.equal(req.mode, 'AUDIO');
  let r = await api('POST', `${C}/call/${q.id}/reject-request/${req.id}`, a.token);
  assert.equal(r.status, 200, r.text);
  await page.getByTestId('call-note').filter({ hasText: 'The agent could not take the call now' }).waitFor();
  await pending.waitFor({ state: 'hidden' });

  // Accepted: the frame opens the session's room with the donor's token.
  await page.getByLabel('Call type').selectOption('VIDEO');
  await page.getByRole('button', { name: 'Request a call' }).click();
  await pending.waitFor();
  await shot(page, 'donor-call-requested');
  [req] = await requests();
  assert.equal(req.mode, 'VIDEO');
  r = await api('POST', `${C}/call/${q.id}/accept-request/${req.id}`, a.token);
  assert.equal(r.status, 201, r.text);
  const room = r.body.session.room_name;
  const frame = page.getByTestId('call-frame');
  await frame.waitFor();
  const src = await frame.getAttribute('src');
  assert.ok(src.startsWith(`${r.body.session.room_url}?t=`), src);
  assert.notEqual(new URL(src).searchParams.get('t'), r.body.session.token, 'not the agent token');
  assert.equal(await frame.getAttribute('title'), 'Video call with support');
  assert.match(await frame.getAttribute('allow'), /camera; microphone/);
  await page.frameLocator('[data-testid=call-frame]')
    .locator(`main[data-room="${room}"][data-token=valid][data-owner=false]`).waitFor();
  await pending.waitFor({ state: 'hidden' });
  await shot(page, 'donor-call');

  // Leaving only removes the frame; rejoining brings it back.
  await page.getByRole('button', { name: 'Leave call' }).click();
  await frame.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Rejoin call' }).click();
  await page.frameLocator('[data-testid=call-frame]').locator(`main[data-room="${room}"][data-token=valid]`).waitFor();

  // The agent ends it: the frame goes.
  r = await api('POST', `${C}/call/${room}/end`, a.token);
  assert.equal(r.status, 200, r.text);
  await frame.waitFor({ state: 'detached' });
  await page.getByTestId('call-note').filter({ hasText: 'The call has ended' }).waitFor();
  assertClean(donor);
  await donor.context.close();
});

test('closing: confirmed, the thread turns read-only, and a new conversation starts afresh', async () => {
  const donor = await donorPage();
  const { page } = donor;
  const { q, donorId } = await startConversation(page, { donor: 'Alan Donor' });
  await live(page).waitFor();

  await page.getByRole('button', { name: 'Close query' }).click();
  await page.getByRole('button', { name: 'Keep it open' }).click();
  await status(page, 'IN_PROGRESS').waitFor();
  await page.getByRole('button', { name: 'Close query' }).click();
  await page.getByRole('button', { name: 'Yes, close it' }).click();
  await status(page, 'CLOSED').waitFor();
  assert.match(await page.getByTestId('query-status').textContent(), /CLOSED/);
  assert.ok(await page.getByLabel('Message', { exact: true }).isDisabled());
  assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled());
  assert.ok(await page.getByRole('button', { name: 'Request a call' }).isDisabled());
  await page.getByRole('button', { name: 'Close query' }).waitFor({ state: 'hidden' });
  await thread(page).locator('.msg.system', { hasText: 'closed by the donor' }).waitFor();
  const r = await api('GET', `${DQ}/${q.id}`, stack.admin);
  assert.equal(r.body.status, 'CLOSED');
  await shot(page, 'donor-closed');

  // A reload keeps the closed conversation, still read-only.
  await page.reload();
  await status(page, 'CLOSED').waitFor();
  assert.ok(await page.getByLabel('Message', { exact: true }).isDisabled());

  await page.getByRole('button', { name: 'Start a new conversation' }).click();
  await page.getByRole('button', { name: 'Start conversation' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.donor')), null);
  assert.equal(await page.getByLabel('Donor ID').inputValue(), donorId, 'the donor id is offered again');
  await page.reload();
  await page.getByRole('button', { name: 'Start conversation' }).waitFor();
  assert.equal(await page.getByTestId('conversation').count(), 0);

  // A second conversation for the same donor lists the first (GET /mine)
  // and can switch back to it.
  const second = await startConversation(page, { donor: 'Alan Donor', donorId, content: 'Another question' });
  assert.notEqual(second.q.id, q.id);
  await status(page, 'IN_PROGRESS').waitFor();
  await page.getByText('Your other conversations (1)').click();
  await page.getByRole('button', { name: `#${q.id}` }).click();
  await status(page, 'CLOSED').waitFor();
  await page.getByText(`Query #${q.id}`).waitFor();
  await thread(page).locator('.msg', { hasText: 'Hello, I need help with my results.' }).waitFor();
  assertClean(donor);
  await donor.context.close();
});

test('a donor token the server rejects brings back the start form with a notice', async () => {
  const donor = await donorPage();
  const { page } = donor;
  await page.getByRole('button', { name: 'Start conversation' }).waitFor();
  await page.evaluate(() => sessionStorage.setItem('switchboard.donor',
    JSON.stringify({ donor_token: 'not-a-token', query_id: 1, donor: 'Old Donor', donor_id: 'old-1' })));
  await page.reload();
  await page.getByTestId('notice').filter({ hasText: 'start a new conversation' }).waitFor();
  await page.getByRole('button', { name: 'Start conversation' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.donor')), null);
  assertClean(donor, [loadFailed(401)]);
  await donor.context.close();
});

test('too many queries for one donor: the page says when to try again', async () => {
  const donorId = uniq('busy');
  for (let i = 0; i < 2; i++) {
    const r = await api('POST', DQ, null, { donor: 'Busy Donor', donor_id: donorId, content: `question ${i}` });
    assert.equal(r.status, 201, r.text);
  }
  const donor = await donorPage();
  const { page } = donor;
  await page.getByLabel('Your name').fill('Busy Donor');
  await page.getByLabel('Donor ID').fill(donorId);
  await page.getByLabel('Your message').fill('One more question');
  await page.getByRole('button', { name: 'Start conversation' }).click();
  const err = page.getByTestId('form-error').filter({ hasText: /Too many requests: please try again in \d+ s/ });
  await err.waitFor();
  const n = Number(/in (\d+) s/.exec(await err.textContent())[1]);
  assert.ok(n >= 1, `Retry-After ${n}`);
  assert.equal((await queriesOf(donorId)).length, 2);
  assert.equal(await page.getByTestId('conversation').count(), 0);
  assertClean(donor, [loadFailed(429)]);
  await donor.context.close();
});

test('on a phone-sized screen nothing scrolls sideways', async () => {
  const donor = await donorPage({ viewport: { width: 375, height: 740 } });
  const { page } = donor;
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.getByRole('button', { name: 'Start conversation' }).waitFor();
  assert.equal(await overflow(), 0);
  await shot(page, 'donor-start-mobile');
  await startConversation(page, { content: 'A long word: Pneumonoultramicroscopicsilicovolcanoconiosis-and-then-some-more-text-without-spaces' });
  await live(page).waitFor();
  assert.equal(await overflow(), 0);
  await shot(page, 'donor-conversation-mobile');
  assertClean(donor);
  await donor.context.close();
});
