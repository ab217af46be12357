// The WhatsApp inbox end to end, against the whatsapp plugin pointed at the
// fake Graph API (tests/fakes/whatsapp.mjs): a customer's message arrives
// through the signed webhook and shows in the inbox live (unread badge,
// window counting down), the agent opens it (read), replies from the
// composer, and the fake's delivered and read reports move the ticks
// without a reload (a late `sent` does not move them back); a picture the
// customer sends shows inline; an agent assigns the conversation to
// themself and back, and sends an attachment by its media id;
// a conversation whose customer last wrote more than 24 hours ago offers
// templates only, with the parameters filled into the preview; and a
// browser whose clock is behind, which still thinks the window open, is
// turned to the templates by the server's 409.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, freshDir } from '../http/lib/harness.mjs';
import { launch, open, shot, signIn, assertClean } from './lib/browser.mjs';
import { startStack } from './lib/stack.mjs';
import { startGraph } from '../fakes/whatsapp.mjs';
import { poll } from '../http/lib/helpers.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const HOOK = '/api/v1/whatsapp/webhook';
const PNG = readFileSync(join(ROOT, 'tests/fixtures/media/tiny.png'));
// A customer's WhatsApp number as Meta sends it: digits only.
const uniqWa = () => `1415${randomInt(1000000, 9999999)}`;
const digits = (s) => String(s ?? '').replace(/\D/g, '');

let stack, graph, browser;
before(async () => {
  graph = await startGraph();
  stack = await startStack({ plugins: { whatsapp: {
    access_token: graph.accessToken, phone_number_id: graph.phoneNumberId, waba_id: graph.wabaId,
    app_secret: graph.appSecret, verify_token: 'browser-verify-token', graph_api_url: graph.url,
    messages_per_minute: '0', spool_dir: freshDir('wa-spool') } } });
  browser = await launch();
});
after(async () => { await browser?.close(); await stack?.stop(); await graph?.stop(); });

const api = (method, path, json) => stack.srv.request(method, path, { token: stack.admin, json });
const deliver = async (payload) => {
  const r = await graph.deliver(stack.srv.url + HOOK, payload);
  assert.equal(r.status, 200, r.text);
};
// The conversation of a customer's number, once the webhook has been applied.
const conversationOf = (wa) => poll(async () => {
  const r = await api('GET', '/api/v1/whatsapp/conversations?limit=200');
  assert.equal(r.status, 200, r.text);
  return r.body.data.find((c) => digits(c.wa_id) === wa);
});

// axe-core's serious and critical violations (as tests/browser/a11y.test.mjs).
async function audit(page, where) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${where}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  assert.deepEqual(bad, [], `accessibility violations on ${where}`);
}

test('a customer writes, the agent replies from the inbox, and the ticks follow delivered and read live', async () => {
  const w = await open(browser, stack.base, { name: 'whatsapp', bypassCSP: true });
  const { page } = w;
  const wa = uniqWa();
  const name = `Asha ${wa.slice(-4)}`;
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'WhatsApp' }).click();
  await page.getByRole('heading', { name: 'WhatsApp', exact: true }).waitFor();
  await page.getByTestId('whatsapp-conversations').waitFor({ state: 'attached' });
  const mark = await page.evaluate(() => { window.__noReload = Math.random(); return window.__noReload; });

  // The customer's message arrives while the inbox is open.
  await deliver(graph.inboundText({ from: wa, name, text: 'Hello, is my order on its way?' }));
  const conv = await conversationOf(wa);
  assert.ok(conv, 'the webhook made a conversation');
  const item = page.getByTestId(`whatsapp-conversation-${conv.id}`);
  await item.filter({ hasText: name }).waitFor();
  await item.filter({ hasText: 'Hello, is my order on its way?' }).waitFor();
  await item.getByTestId('whatsapp-unread').filter({ hasText: /^1/ }).waitFor();
  assert.match(await item.locator('.wa-window').innerText(), /^Window closes in 2[34] h \d+ m$/);
  await shot(page, 'whatsapp-inbox');

  // Opened: the thread, and the conversation read.
  await item.getByRole('button').click();
  const thread = page.getByTestId('whatsapp-thread');
  await thread.locator('.msg.in', { hasText: 'Hello, is my order on its way?' }).waitFor();
  await page.getByTestId('whatsapp-window').filter({ hasText: /^Window closes in/ }).waitFor();
  assert.equal(await page.getByTestId('whatsapp-template-picker').isHidden(), true);
  await poll(async () => (await api('GET', `/api/v1/whatsapp/conversations/${conv.id}`)).body.unread === 0);
  await item.getByTestId('whatsapp-unread').waitFor({ state: 'detached' });

  // The reply.
  const text = `It ships today, ref ${randomInt(1000, 9999)}`;
  const composer = page.getByTestId('whatsapp-composer');
  await composer.getByLabel('Message', { exact: true }).fill(text);
  await composer.getByRole('button', { name: 'Send', exact: true }).click();
  const bubble = thread.locator('.msg.out', { hasText: text });
  await bubble.waitFor();
  const id = Number((await bubble.getAttribute('data-testid')).replace('whatsapp-message-', ''));
  assert.ok(id > 0);
  await item.locator('.conv-last', { hasText: `You: ${text}` }).waitFor();
  const wamid = await poll(async () => (await api('GET', `/api/v1/whatsapp/messages/${id}`)).body.wa_message_id);
  assert.ok(wamid, 'the job handed the message to Graph');
  assert.equal(graph.messages.get(wamid)?.type, 'text');
  await bubble.locator('.ticks[data-status=sent], .ticks[data-status=queued]').first().waitFor();

  // Every status the bubble shows from now on, in order.
  await page.evaluate((mid) => {
    window.__statuses = [];
    const t = document.querySelector('[data-testid=whatsapp-thread]');
    const note = () => {
      const el = t.querySelector(`[data-testid=whatsapp-message-${mid}]`);
      if (el && window.__statuses.at(-1) !== el.dataset.status) window.__statuses.push(el.dataset.status);
    };
    note();
    new MutationObserver(note).observe(t, { childList: true, subtree: true, attributes: true });
  }, id);
  await deliver(graph.status({ id: wamid, status: 'delivered', recipient_id: wa }));
  const msg = page.getByTestId(`whatsapp-message-${id}`);
  await page.locator(`[data-testid=whatsapp-message-${id}][data-status=delivered] .ticks.wa-delivered`).waitFor();
  assert.equal(await msg.locator('.ticks [aria-hidden=true]').innerText(), '✓✓');
  // A late `sent`, then `read`: the ticks never go back.
  await deliver(graph.status({ id: wamid, status: 'sent', recipient_id: wa }));
  await deliver(graph.status({ id: wamid, status: 'read', recipient_id: wa }));
  await page.locator(`[data-testid=whatsapp-message-${id}][data-status=read] .ticks.wa-read`).waitFor();
  const RANK = { queued: 0, sent: 1, failed: 2, delivered: 3, read: 4 };
  const seen = await page.evaluate(() => window.__statuses);
  assert.deepEqual(seen, [...seen].sort((a, b) => RANK[a] - RANK[b]), `statuses shown in order: ${seen.join(' ')}`);
  assert.equal(seen.at(-1), 'read');
  assert.equal((await api('GET', `/api/v1/whatsapp/messages/${id}`)).body.status, 'read');
  assert.equal(await page.evaluate(() => window.__noReload), mark, 'the ticks changed without a reload');
  await shot(page, 'whatsapp-read');

  // A picture from the customer shows inline, through its signed URL.
  const mediaId = graph.addMedia(PNG, 'image/png');
  await deliver(graph.inboundImage({ from: wa, name, mediaId, caption: 'The box arrived dented' }));
  const pic = thread.locator('.msg.in', { hasText: 'The box arrived dented' }).locator('img.wa-image');
  await pic.waitFor();
  assert.equal(await pic.evaluate(async (el) => { await el.decode(); return el.naturalWidth > 0; }), true);
  await audit(page, 'WhatsApp conversation');
  await w.context.close();
  assertClean(w);
});

test('an agent takes the conversation and sends an attachment by its media id, typed from its MIME type', async () => {
  const w = await open(browser, stack.base, { name: 'whatsapp-attach' });
  const { page } = w;
  const wa = uniqWa();
  const agent = await stack.user('AGENT');
  await deliver(graph.inboundText({ from: wa, name: `Ravi ${wa.slice(-4)}`, text: 'Can you send the receipt?' }));
  const conv = await conversationOf(wa);
  await signIn(page, agent.username, agent.password);
  await page.locator('nav#sidenav a', { hasText: 'WhatsApp' }).click();
  await page.getByTestId(`whatsapp-conversation-${conv.id}`).getByRole('button').click();
  const thread = page.getByTestId('whatsapp-thread');
  await thread.locator('.msg.in', { hasText: 'Can you send the receipt?' }).waitFor();
  // An agent may not list the users: assign to oneself, or unassign.
  assert.equal(await page.locator('#wa-assignee').count(), 0);
  await page.getByRole('button', { name: 'Assign to me' }).click();
  await page.getByTestId('whatsapp-assigned').filter({ hasText: 'Assigned to you' }).waitFor();
  assert.equal((await api('GET', `/api/v1/whatsapp/conversations/${conv.id}`)).body.assigned_to, agent.id);
  await page.getByLabel('Only mine').check();
  await page.getByTestId(`whatsapp-conversation-${conv.id}`).waitFor();
  await page.getByRole('button', { name: 'Unassign' }).click();
  await page.getByTestId('whatsapp-assigned').filter({ hasText: 'Unassigned' }).waitFor();
  await page.getByTestId(`whatsapp-conversation-${conv.id}`).waitFor({ state: 'detached' });
  await page.getByLabel('Only mine').uncheck();
  await page.getByTestId(`whatsapp-conversation-${conv.id}`).waitFor();
  const composer = page.getByTestId('whatsapp-composer');
  await composer.getByLabel('Attach a file').setInputFiles({ name: 'receipt.png', mimeType: 'image/png', buffer: PNG });
  await composer.getByTestId('whatsapp-attachment').filter({ hasText: 'sent as image' }).waitFor();
  await composer.getByLabel('Message', { exact: true }).fill('Your receipt');
  await composer.getByRole('button', { name: 'Send', exact: true }).click();
  const bubble = thread.locator('.msg.out[data-type=image]', { hasText: 'Your receipt' });
  await bubble.waitFor();
  await bubble.locator('img.wa-image').waitFor();
  const id = Number((await bubble.getAttribute('data-testid')).replace('whatsapp-message-', ''));
  const wamid = await poll(async () => (await api('GET', `/api/v1/whatsapp/messages/${id}`)).body.wa_message_id);
  assert.ok(wamid, 'the job handed the picture to Graph');
  const sent = graph.requests.find((r) => r.type === 'image' && digits(r.to) === wa);
  assert.ok(sent, 'Graph was asked to send an image');
  assert.equal(sent.image.caption, 'Your receipt');
  await w.context.close();
  assertClean(w);
});

test('after 24 hours without the customer the composer offers templates only', async () => {
  const w = await open(browser, stack.base, { name: 'whatsapp-template', bypassCSP: true });
  const { page } = w;
  const wa = uniqWa();
  const name = `Lena ${wa.slice(-4)}`;
  const sync = await api('POST', '/api/v1/whatsapp/templates/sync');
  assert.equal(sync.status, 202, sync.text);
  await poll(async () => (await api('GET', '/api/v1/whatsapp/templates')).body.data?.some((t) => t.name === 'order_update'));
  await deliver(graph.inboundText({ from: wa, name, text: 'Are you still there?',
    timestamp: Math.floor(Date.now() / 1000) - 86401 }));
  const conv = await conversationOf(wa);
  await signIn(page, 'admin', stack.adminPassword);
  await page.goto('/#/whatsapp');
  await page.getByRole('tab', { name: 'All' }).click();
  const item = page.getByTestId(`whatsapp-conversation-${conv.id}`);
  await item.locator('.wa-window', { hasText: 'Window closed' }).waitFor();
  await item.getByRole('button').click();
  await page.getByTestId('whatsapp-thread').locator('.msg.in', { hasText: 'Are you still there?' }).waitFor();
  await page.getByTestId('whatsapp-window').filter({ hasText: 'Window closed' }).waitFor();

  // Templates only: the free-form message is gone.
  const composer = page.getByTestId('whatsapp-composer');
  const picker = page.getByTestId('whatsapp-template-picker');
  await picker.waitFor();
  assert.equal(await composer.getByLabel('Message', { exact: true }).isHidden(), true);
  assert.equal(await composer.getAttribute('data-mode'), 'template');
  // Only approved templates are offered.
  await picker.getByLabel('Template', { exact: true }).locator('option', { hasText: 'order_update' }).waitFor({ state: 'attached' });
  assert.equal(await picker.locator('option', { hasText: 'spring_sale' }).count(), 0);
  await picker.getByLabel('Template', { exact: true }).selectOption({ label: 'order_update (en_US)' });
  await picker.getByLabel('Body parameter {{1}}').fill('#4711');
  await picker.getByLabel('Body parameter {{2}}').fill('Friday');
  await page.getByTestId('whatsapp-template-preview')
    .filter({ hasText: 'Your order #4711 is on its way and should arrive by Friday.' }).waitFor();
  await shot(page, 'whatsapp-template');
  await audit(page, 'WhatsApp template picker');
  await composer.getByRole('button', { name: 'Send', exact: true }).click();
  const bubble = page.getByTestId('whatsapp-thread').locator('.msg.out[data-type=template]');
  await bubble.waitFor();
  const id = Number((await bubble.getAttribute('data-testid')).replace('whatsapp-message-', ''));
  const wamid = await poll(async () => (await api('GET', `/api/v1/whatsapp/messages/${id}`)).body.wa_message_id);
  assert.ok(wamid, 'the job handed the template to Graph');
  const sent = graph.requests.find((r) => r.type === 'template' && digits(r.to) === wa);
  assert.equal(sent?.template?.name, 'order_update');
  assert.deepEqual(sent.template.components?.[0]?.parameters?.map((p) => p.text), ['#4711', 'Friday']);
  await w.context.close();
  assertClean(w);
});

test('a send the server refuses for the closed window turns the composer to templates', async () => {
  const w = await open(browser, stack.base, { name: 'whatsapp-409' });
  const { page } = w;
  const wa = uniqWa();
  await deliver(graph.inboundText({ from: wa, name: `Omar ${wa.slice(-4)}`, text: 'Hello from yesterday',
    timestamp: Math.floor(Date.now() / 1000) - 86401 }));
  const conv = await conversationOf(wa);
  // This computer's clock is three hours behind: to it the window is open.
  await page.clock.install({ time: Date.now() - 3 * 3600 * 1000 });
  await signIn(page, 'admin', stack.adminPassword);
  await page.goto('/#/whatsapp');
  await page.getByRole('tab', { name: 'All' }).click();
  await page.getByTestId(`whatsapp-conversation-${conv.id}`).getByRole('button').click();
  await page.getByTestId('whatsapp-thread').locator('.msg.in', { hasText: 'Hello from yesterday' }).waitFor();
  await page.getByTestId('whatsapp-window').filter({ hasText: /^Window closes in [23] h \d+ m$/ }).waitFor();
  const composer = page.getByTestId('whatsapp-composer');
  assert.equal(await composer.getAttribute('data-mode'), 'text');
  await composer.getByLabel('Message', { exact: true }).fill('Are you still there?');
  await composer.getByRole('button', { name: 'Send', exact: true }).click();
  await page.getByTestId('whatsapp-template-picker').waitFor();
  await page.getByTestId('whatsapp-window-note').filter({ hasText: 'the message was not sent' }).waitFor();
  await page.getByTestId('whatsapp-window').filter({ hasText: 'Window closed' }).waitFor();
  assert.equal(await composer.getAttribute('data-mode'), 'template');
  assert.equal(graph.sends(wa), 0, 'nothing went to Graph');
  await w.context.close();
  assertClean(w, [/status of 409 .*\/api\/v1\/whatsapp\/messages>$/]);
});
