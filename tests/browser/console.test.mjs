// The console shell end to end: sign-in and its errors, navigation by
// permission, sign-out, the access token refreshed before it expires
// with the socket carrying on, a session the server ended (password
// reset) turning into the sign-in page with a notice, the responsive
// menu, the OpenAPI viewer, and a plugin's console panel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, open, shot, signIn, assertClean } from './lib/browser.mjs';
import { startStack } from './lib/stack.mjs';
import { WAIT_MS } from '../http/lib/helpers.mjs';

let stack, browser;
// The shortest lifetime the host takes: the console must refresh on its
// own well before the minute is up.
before(async () => {
  stack = await startStack({ host: { access_token_ttl: '60' } });
  browser = await launch();
});
after(async () => { await browser?.close(); await stack?.stop(); });

const navLinks = (page) => page.locator('nav#sidenav a').allInnerTexts();

test('sign in (wrong password first), navigation for a super-admin, sign out', async () => {
  const w = await open(browser, stack.base, { name: 'admin' });
  const { page } = w;
  await page.goto('/');
  await shot(page, 'console-sign-in');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('login-error').filter({ hasText: 'Wrong username or password' }).waitFor();

  await page.getByLabel('Password').fill(stack.adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-testid=ws-status][data-state=live]').waitFor();
  const links = await navLinks(page);
  for (const l of ['Queues', 'Search', 'Notifications', 'Dashboard', 'Users', 'Roles', 'API keys', 'Plugins', 'Jobs', 'Audit log'])
    assert.ok(links.includes(l), `${l} in ${links}`);
  assert.match(await page.getByTestId('whoami').innerText(), /SUPER_ADMIN/);

  // A reload keeps the session (sessionStorage) ...
  await page.reload();
  await page.getByTestId('whoami').waitFor();
  // ... and signing out ends it here and at the server.
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('switchboard.session')));
  await page.getByTestId('sign-out').click();
  await page.getByTestId('login-notice').filter({ hasText: 'signed out' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.session')), null);
  const r = await stack.srv.request('GET', '/api/v1/users/me', { token: stored.access_token });
  assert.equal(r.status, 401, 'the access token is revoked');
  const rr = await stack.srv.request('POST', '/api/v1/auth/refresh', { json: { refresh_token: stored.refresh_token } });
  assert.equal(rr.status, 401, 'and so is its refresh family');
  await w.context.close();
  // Chromium logs the 401 of the wrong password as a failed resource.
  assertClean(w, [/status of 401/]);
});

test('the access token is refreshed before expiry and the live socket carries on', async () => {
  const agent = await stack.user('AGENT');
  const w = await open(browser, stack.base, { name: 'agent' });
  const { page } = w;
  const refreshes = [];
  page.on('response', (res) => { if (res.url().endsWith('/api/v1/auth/refresh')) refreshes.push(res.status()); });
  let sockets = 0;
  page.on('websocket', () => { sockets++; });
  await signIn(page, agent.username, agent.password);
  const before1 = await page.evaluate(() => JSON.parse(sessionStorage.getItem('switchboard.session')).access_token);

  // expires_in is 60 s: the refresh comes before the token dies (at 48 s;
  // waited for up to the token's life and the common deadline).
  await page.waitForResponse((res) => res.url().endsWith('/api/v1/auth/refresh'), { timeout: 60000 + WAIT_MS });
  assert.deepEqual(refreshes, [200]);
  const after1 = await page.evaluate(() => JSON.parse(sessionStorage.getItem('switchboard.session')).access_token);
  assert.notEqual(after1, before1);

  // The same socket hears live events after the refresh (no reconnect).
  await page.locator('[data-testid=ws-status][data-state=live]').waitFor();
  const q = await stack.srv.request('POST', '/api/v1/donor-queries', {
    json: { donor: 'Refresh Donor', donor_id: 'refresh-donor', content: 'After the refresh' } });
  assert.equal(q.status, 201, q.text);
  await page.locator(`[data-testid=queue-item][data-query-id="${q.body.query.id}"]`).waitFor();
  assert.equal(sockets, 1, 'one WebSocket for the whole session');
  await w.context.close();
  assertClean(w);
});

test('a session the server ends becomes the sign-in page with a notice', async () => {
  const agent = await stack.user('AGENT');
  const w = await open(browser, stack.base, { name: 'agent-reset' });
  const { page } = w;
  await signIn(page, agent.username, agent.password);
  // An admin resets the password: every session of the agent ends.  A
  // fresh admin token: the one from the start has a 60 s life here, and
  // the test before this one alone waits most of a minute.
  const r = await stack.srv.request('PATCH', `/api/v1/users/${agent.id}`, { token: await stack.srv.login(),
    json: { password: 'a-brand-new-password-42' } });
  assert.equal(r.status, 200, r.text);
  await page.getByTestId('login-notice').filter({ hasText: 'session has expired' }).waitFor();
  await shot(page, 'console-session-expired');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.session')), null);
  // And the new password works from the same page.
  await page.getByLabel('Username').fill(agent.username);
  await page.getByLabel('Password').fill('a-brand-new-password-42');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
  await w.context.close();
  assertClean(w, [/status of 401/]);
});

test('an agent sees the workspace only; a narrow screen gets a menu button', async () => {
  const agent = await stack.user('AGENT');
  const w = await open(browser, stack.base, { name: 'agent-mobile', viewport: { width: 390, height: 800 } });
  const { page } = w;
  await signIn(page, agent.username, agent.password);
  const nav = page.locator('nav#sidenav');
  assert.equal(await nav.isVisible(), false, 'the navigation folds away');
  const menu = page.getByRole('button', { name: 'Menu' });
  await menu.click();
  assert.equal(await menu.getAttribute('aria-expanded'), 'true');
  await nav.waitFor({ state: 'visible' });
  const links = await navLinks(page);
  assert.ok(links.includes('Queues'));
  for (const l of ['Users', 'Roles', 'API keys', 'Jobs', 'Audit log', 'Plugins', 'Dashboard'])
    assert.ok(!links.includes(l), `${l} hidden from an agent`);
  await shot(page, 'console-mobile-menu');
  // A screen outside the role, asked for by URL, is refused politely.
  await page.goto('/#/users');
  await page.getByRole('heading', { name: 'Not here' }).waitFor();
  await w.context.close();
  assertClean(w);
});

test('the OpenAPI viewer at /docs renders offline', async () => {
  const w = await open(browser, stack.base, { name: 'docs' });
  const { page } = w;
  const outside = [];
  page.on('request', (req) => { if (!req.url().startsWith(stack.base)) outside.push(req.url()); });
  await page.goto('/docs');
  await page.locator('.swagger-ui .info .title').waitFor();
  await page.locator('.opblock-summary-path', { hasText: '/api/v1/donor-queries' }).first().waitFor();
  assert.deepEqual(outside, [], 'nothing is fetched from another origin');
  await shot(page, 'docs');
  await w.context.close();
  assertClean(w);
});

test('a plugin panel: the example plugin adds a navigation entry and its script runs', async () => {
  const w = await open(browser, stack.base, { name: 'panel' });
  const { page } = w;
  await signIn(page, 'admin', stack.adminPassword);
  await page.locator('nav#sidenav a', { hasText: 'Example notes' }).click();
  await page.getByLabel('Note text').fill('Written from the example panel');
  await page.getByRole('button', { name: 'Save note' }).click();
  await page.getByTestId('example-note').filter({ hasText: 'Written from the example panel' }).waitFor();
  await shot(page, 'plugin-panel-example');
  await w.context.close();
  assertClean(w);

  // Someone without the panel's permission gets no entry for it.
  const agent = await stack.user('AGENT');
  const w2 = await open(browser, stack.base, { name: 'panel-agent' });
  await signIn(w2.page, agent.username, agent.password);
  assert.ok(!(await navLinks(w2.page)).includes('Example notes'));
  await w2.context.close();
  assertClean(w2);
});
