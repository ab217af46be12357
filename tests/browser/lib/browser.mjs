// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core,
// for the end-to-end console tests.  Every page opened through open()
// records uncaught page errors and console errors; assertClean() fails
// the test on any.  shot() writes a screenshot artifact under
// build/test-results/screenshots/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { ROOT } from '../../http/lib/harness.mjs';
import { WAIT_MS } from '../../http/lib/helpers.mjs';

export const SHOTS = join(ROOT, 'build', 'test-results', 'screenshots');
const EXECUTABLE = process.env.SB_CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  return chromium.launch({
    executablePath: EXECUTABLE,
    // Root in a container: Chromium's own sandbox needs user namespaces.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
}

// A browser context (its own storage: one person) with one page on base.
// bypassCSP: only for injecting a test tool (axe-core) into the page.
export async function open(browser, base, { name = 'page', viewport, bypassCSP = false } = {}) {
  const context = await browser.newContext({ baseURL: base, viewport: viewport ?? { width: 1280, height: 860 },
    bypassCSP });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`[${name}] uncaught: ${e.stack || e.message}`));
  page.on('console', (m) => {
    // A failed load names its URL, so a test can expect one exactly.
    const url = /^Failed to load resource/.test(m.text()) ? ` <${m.location()?.url}>` : '';
    if (m.type() === 'error') problems.push(`[${name}] console.error: ${m.text()}${url}`);
  });
  // Every waitFor/click waits for its condition up to the common
  // deadline: the sanitizer build on a loaded machine is slow.
  page.setDefaultTimeout(WAIT_MS);
  return { context, page, problems, name };
}

// The profile asks for the user's avatar, and a user without one is a
// 404 the browser reports in its console: expected wherever a test opens
// the profile of such a user.
export const AVATAR_404 = [/status of 404 \(Not Found\) <[^>]*\/api\/v1\/users\/\d+\/avatar>$/];

// Fails on any uncaught error or console error seen so far.  expected:
// regexes for console errors a test provoked on purpose (e.g. a 401 the
// browser logs when a session has been revoked).
export function assertClean(who, expected = []) {
  for (const w of [who].flat()) {
    const left = w.problems.filter((p) => !expected.some((re) => re.test(p)));
    assert.deepEqual(left, [], `page errors in ${w.name}`);
  }
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

// Sign in through the console's form.
export async function signIn(page, username, password) {
  await page.goto('/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // attached, not visible: a narrow screen hides the name.
  await page.getByTestId('whoami').waitFor({ state: 'attached' });
  await page.locator('[data-testid=ws-status][data-state=live]').waitFor();
}

// Daily's prebuilt call page, as the test sees it: every request for
// https://<domain>.daily.co/<room>?t=<token> from this context is
// answered with a small page that names the room and what the fake says
// of the token (valid for that room or not, owner or not).  The URL the
// console puts in its frame is left exactly as the product built it.
export async function routeDaily(context, daily) {
  await context.route(/^https:\/\/[^/]+\.daily\.co\//, async (route) => {
    const u = new URL(route.request().url());
    const room = u.pathname.replace(/^\//, '');
    const token = u.searchParams.get('t') || '';
    const check = daily.decodeToken(token);
    const valid = check.ok && check.claims?.r === room;
    const owner = valid && check.claims.o === true;
    const body = `<!doctype html><title>Daily room ${room}</title>
<main data-room="${room}" data-token="${valid ? 'valid' : 'invalid'}" data-owner="${owner}">
<h1>Room ${room}</h1><p>${valid ? (owner ? 'joined as owner' : 'joined as participant') : `refused: ${check.reason || 'token for another room'}`}</p></main>`;
    await route.fulfill({ status: 200, contentType: 'text/html', body });
  });
}

// A TCP relay in front of the server, so a test can cut every connection
// (a network drop) while the server itself stays up.
export async function relay(port) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client); sockets.add(upstream);
    client.pipe(upstream); upstream.pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', end); upstream.on('error', end);
    client.on('close', end); upstream.on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    url: `http://127.0.0.1:${server.address().port}`,
    drop() { for (const s of sockets) s.destroy(); sockets.clear(); },
    close() { this.drop(); return new Promise((r) => server.close(r)); },
  };
}
