// The customers panel end to end: the super-admin creates a customer,
// finds them again by phone number typed another way, exports their data
// and erases them through the typed confirmation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { launch, open, shot, signIn, assertClean } from './lib/browser.mjs';
import { startStack, uniq } from './lib/stack.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
let stack, browser;
before(async () => {
  stack = await startStack({ plugins: { customers: { default_country: 'IN' } } });
  browser = await launch();
});
after(async () => { await browser?.close(); await stack?.stop(); });

test('create a customer, find them by phone, export, erase with the typed confirmation', async () => {
  const w = await open(browser, stack.base, { name: 'admin' });
  const { page } = w;
  const national = `9${String(randomInt(0, 1e9)).padStart(9, '0')}`;
  const e164 = `+91${national}`;
  const name = uniq('Meera');
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'Customers' }).click();
  await page.getByTestId('customers-list').waitFor();
  await shot(page, 'customers-list');

  await page.getByRole('button', { name: 'New customer' }).click();
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Phone', { exact: true }).fill(`+91 ${national.slice(0, 5)} ${national.slice(5)}`);
  await page.getByLabel('Tags (comma-separated)').fill('vip, browser');
  await page.getByLabel('Attributes (a JSON object)').fill('{"city": "<b>Pune</b>"}');
  await shot(page, 'customers-new');
  await page.getByRole('button', { name: 'Save customer' }).click();
  const detail = page.getByTestId('customer-detail');
  await detail.filter({ hasText: e164 }).waitFor();
  // User data is text: the markup in the attributes is shown, not parsed.
  await detail.filter({ hasText: '<b>Pune</b>' }).waitFor();
  assert.equal(await detail.locator('b').count(), 0);
  await shot(page, 'customers-detail');

  await page.getByRole('button', { name: 'Back to the list' }).click();
  await page.getByLabel('Search by phone').fill(`0${national.slice(0, 5)}-${national.slice(5)}`);
  await page.getByRole('button', { name: 'Search' }).click();
  const row = page.getByTestId('customers-list').locator('tbody tr');
  await row.filter({ hasText: name }).waitFor();
  assert.equal(await row.count(), 1);
  await shot(page, 'customers-search-phone');

  await row.getByRole('button', { name: `Open ${name}` }).click();
  await page.getByRole('button', { name: 'Export data' }).click();
  const exported = page.getByTestId('customer-export');
  await exported.filter({ hasText: e164 }).waitFor();
  assert.equal(JSON.parse(await exported.textContent()).customers.customers[0].name, name);
  await page.getByRole('link', { name: 'Download the export (JSON)' }).waitFor();
  await shot(page, 'customers-export');

  await page.getByRole('button', { name: 'Erase', exact: true }).click();
  const confirm = page.getByRole('button', { name: 'Erase permanently' });
  assert.equal(await confirm.isDisabled(), true);
  await page.getByLabel('Confirmation').fill('someone else');
  assert.equal(await confirm.isDisabled(), true);
  await page.getByLabel('Confirmation').fill(name);
  await shot(page, 'customers-erase-confirm');
  await confirm.click();
  await page.getByText('Customer erased').first().waitFor();
  await page.getByTestId('customers-list').waitFor();
  await shot(page, 'customers-erased');

  const gone = await stack.srv.request('GET', `/api/v1/customers?phone=${encodeURIComponent(e164)}`,
    { token: stack.admin });
  assert.equal(gone.status, 200, gone.text);
  assert.deepEqual(gone.body.data, []);
  await w.context.close();
  assertClean(w);
});

// axe-core over the panel's states (as tests/browser/a11y.test.mjs does
// for the console's own screens); the context bypasses the CSP only to
// inject axe.
test('the customers panel passes axe: list, form, detail, erase dialog', async () => {
  const made = await stack.srv.request('POST', '/api/v1/customers', { token: stack.admin,
    json: { name: uniq('Axe'), phone: `+91 9${String(randomInt(0, 1e9)).padStart(9, '0')}`, tags: ['a11y'] } });
  assert.equal(made.status, 201, made.text);
  const w = await open(browser, stack.base, { name: 'a11y-customers', bypassCSP: true });
  const { page } = w;
  const audit = async (where) => {
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE });
    const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${where}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
    assert.deepEqual(bad, [], `accessibility violations on ${where}`);
  };
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'Customers' }).click();
  await page.getByTestId('customers-list').locator('tbody tr').filter({ hasText: made.body.name }).waitFor();
  await audit('customers list');
  await page.getByRole('button', { name: 'New customer' }).click();
  await page.getByLabel('Name', { exact: true }).waitFor();
  await audit('customers form');
  await page.getByRole('button', { name: 'Cancel' }).click();
  // Keyboard only: the row's Open button, then the detail.
  await page.getByRole('button', { name: `Open ${made.body.name}` }).focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('customer-detail').filter({ hasText: made.body.phone }).waitFor();
  await audit('customer detail');
  await page.getByRole('button', { name: 'Erase', exact: true }).click();
  await page.getByLabel('Confirmation').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('id')),
    await page.getByLabel('Confirmation').getAttribute('id'));
  await audit('erase dialog');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
  await w.context.close();
  assertClean(w);
});
