// Accessibility, checked by a machine and by a keyboard: axe-core (the
// rules engine browsers' own audits use) over every main screen, failing
// on any serious or critical violation, and the sign-in, navigation and
// composer used with the keyboard alone.  axe is injected by the test, so
// these contexts bypass the CSP; the product pages are unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { launch, open, signIn, assertClean, AVATAR_404 } from './lib/browser.mjs';
import { startStack, uniq } from './lib/stack.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
let stack, browser;
before(async () => { stack = await startStack(); browser = await launch(); });
after(async () => { await browser?.close(); await stack?.stop(); });

// The serious and critical violations on the page as it is now.
async function audit(page, where) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${where}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  assert.deepEqual(bad, [], `accessibility violations on ${where}`);
}

test('every console screen passes axe (no serious or critical violations)', async () => {
  // Something on each screen: a query with a thread, a note in the inbox.
  const q = await stack.srv.request('POST', '/api/v1/donor-queries', {
    json: { donor: 'Ada Donor', donor_id: uniq('a11y'), content: 'Is my kit on its way?' } });
  assert.equal(q.status, 201, q.text);
  const w = await open(browser, stack.base, { name: 'a11y-admin', bypassCSP: true });
  const { page } = w;
  await page.goto('/');
  await page.getByLabel('Username').waitFor();
  await audit(page, 'sign-in');
  await signIn(page, 'admin', stack.adminPassword);
  const screens = [
    ['queues', 'Queues'], [`query/${q.body.query.id}`, 'Ada Donor'], ['search', 'Search'],
    ['inbox', 'Notifications'], ['profile', null], ['dashboard', 'Dashboard'], ['users', 'Users'],
    ['roles', 'Roles'], ['api-keys', 'API keys'], ['plugins', 'Plugins'], ['jobs', 'Jobs'],
    ['audit', 'Audit log'], ['media', 'Media'], ['sms', 'SMS'], ['whatsapp', 'WhatsApp'], ['calls', null],
    ['plugin/example/notes', null],
  ];
  for (const [path, heading] of screens) {
    await page.goto(`/#/${path}`);
    if (heading) await page.getByRole('heading', { name: heading }).first().waitFor();
    await page.waitForLoadState('networkidle');
    await audit(page, `#/${path}`);
  }
  await w.context.close();
  assertClean(w, AVATAR_404);
});

test('the donor page passes axe, before and during a conversation', async () => {
  const w = await open(browser, stack.base, { name: 'a11y-donor', bypassCSP: true });
  const { page } = w;
  await page.goto('/donor');
  await page.getByLabel('Your name').waitFor();
  await audit(page, '/donor start');
  await page.getByLabel('Your name').fill('Grace Donor');
  await page.getByLabel('Donor ID').fill(uniq('a11y'));
  await page.getByLabel('Your message').fill('Can someone call me?');
  await page.getByRole('button', { name: 'Start conversation' }).click();
  await page.getByTestId('thread').locator('.msg', { hasText: 'Can someone call me?' }).waitFor();
  await audit(page, '/donor conversation');
  await w.context.close();
  assertClean(w);
});

test('keyboard only: skip link, sign-in, navigation and the composer', async () => {
  const agent = await stack.user('AGENT');
  const q = await stack.srv.request('POST', '/api/v1/donor-queries', {
    json: { donor: 'Kim Keys', donor_id: uniq('kbd'), content: 'Typed without a mouse' } });
  assert.equal(q.status, 201, q.text);
  const w = await open(browser, stack.base, { name: 'keyboard' });
  const { page, context } = w;
  await page.goto('/');
  // The username field has the focus; the password follows; Enter submits.
  await page.getByLabel('Username').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.name), 'username');
  await page.keyboard.type(agent.username);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.name), 'password');
  await page.keyboard.type(agent.password);
  await page.keyboard.press('Enter');
  await page.getByTestId('whoami').waitFor();

  // The first stop in tab order is a "Skip to content" link, visible when
  // focused, that takes the focus to the main region.
  const first = await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea, [tabindex]')?.textContent);
  assert.equal(first, 'Skip to content');
  const skip = page.getByRole('link', { name: 'Skip to content' });
  await skip.focus();
  const box = await skip.boundingBox();
  assert.ok(box && box.x >= 0 && box.width > 0, `the focused skip link is on screen: ${JSON.stringify(box)}`);
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');

  // Focus is visible (an outline) on a focused navigation link.
  const link = page.locator('nav#sidenav a', { hasText: 'Queues' });
  await link.focus();
  const outline = await link.evaluate((a) => getComputedStyle(a).outlineStyle);
  assert.notEqual(outline, 'none', 'focus is visible');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Queues' }).waitFor();

  // Open the query with the keyboard, accept it, answer with Enter.
  const item = page.locator(`[data-testid=queue-item][data-query-id="${q.body.query.id}"] a`);
  await item.focus();
  await page.keyboard.press('Enter');
  const accept = page.getByRole('button', { name: 'Accept', exact: true });
  await accept.focus();
  await page.keyboard.press('Enter');
  const reply = page.getByRole('textbox', { name: 'Reply', exact: true });
  await page.locator('textarea[name=reply]:not([disabled])').waitFor();
  await reply.focus();
  await page.keyboard.type('Answered from the keyboard');
  await page.keyboard.press('Enter');
  await page.getByTestId('thread').locator('.msg', { hasText: 'Answered from the keyboard' }).waitFor();
  await context.close();
  assertClean(w);
});
