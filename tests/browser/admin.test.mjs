// The super-admin screens end to end, in a real browser against the whole
// stack: roles and users (a custom role's user sees only what it allows),
// API keys (shown once, used, revoked), a dead-letter job retried from
// the console, the audit log (filter, verify), user edits (name, password
// reset, deactivation, the last super-admin), the dashboard's charts and
// the plugin registry.  Every test waits on DOM states, never on time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { launch, open, assertClean, shot } from './lib/browser.mjs';
import { startStack, uniq } from './lib/stack.mjs';
import { testPlugin } from '../http/lib/harness.mjs';
import { poll } from '../http/lib/helpers.mjs';
import { startUpstream } from '../fakes/upstream.mjs';

let stack, browser, up;
const hex = () => randomBytes(3).toString('hex');

before(async () => {
  up = await startUpstream();
  stack = await startStack({
    // The scripted upstream's 503s must not open the circuit breaker.
    host: { breaker_failures: '10000' },
    plugins: { jobber: testPlugin('jobber') },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
  await up?.close();
});

// Sign in through the console's form, landing on a given screen (the
// same steps as browser.mjs signIn(), which always starts at '/').
async function signInAt(page, username, password, path) {
  await page.goto(`/#/${path}`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
  await page.locator('[data-testid=ws-status][data-state=live]').waitFor();
}

async function asAdmin(name, path) {
  const who = await open(browser, stack.base, { name });
  await signInAt(who.page, 'admin', stack.adminPassword, path);
  return who;
}

const nav = (page) => page.getByRole('navigation', { name: 'Main' });
const heading = (page, name) => page.getByRole('heading', { level: 1, name, exact: true });

async function goTo(page, label, title = label) {
  await nav(page).getByRole('link', { name: label, exact: true }).click();
  await heading(page, title).waitFor();
}

const api = (method, path, { token = stack.admin, json, headers } = {}) =>
  stack.srv.request(method, path, { token, json, headers });

// A full-page screenshot from the top (the sticky top bar otherwise
// lands wherever the page was scrolled to).
async function snap(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, name);
}

// Console errors the browser logs for answers a test provoked on purpose.
const failed = (code) => new RegExp(`status of ${code}`);

test('a super-admin creates a custom role and a user with it; that user sees only what the role allows', async () => {
  const admin = await asAdmin('admin', 'roles');
  const { page } = admin;
  await heading(page, 'Roles').waitFor();
  // Built-ins cannot be deleted; SUPER_ADMIN cannot be edited either.
  for (const r of ['SUPER_ADMIN', 'ADMIN', 'AGENT']) {
    assert.equal(await page.getByRole('button', { name: `Delete ${r}`, exact: true }).isDisabled(), true, r);
  }
  assert.equal(await page.getByRole('button', { name: 'Edit SUPER_ADMIN', exact: true }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: 'Edit ADMIN', exact: true }).isDisabled(), false);

  // The role: audit.read only (any user is staff; nothing else is needed).
  const roleName = `Auditor_${hex()}`;
  await page.getByRole('button', { name: 'New role' }).click();
  await page.getByRole('heading', { name: 'New role' }).waitFor();
  // An invalid name: the server's field error appears next to the form.
  await page.getByLabel('Name', { exact: true }).fill('1bad name');
  await page.getByLabel('audit.read', { exact: true }).check();
  await page.getByRole('button', { name: 'Create role' }).click();
  await page.locator('.role-editor [role=alert]').filter({ hasText: 'letters, digits and _' }).waitFor();
  await page.locator('.role-editor .field-error').filter({ hasText: 'starting with a letter' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill(roleName);
  await snap(page, 'admin-roles-editor');
  await page.getByRole('button', { name: 'Create role' }).click();
  const roleRow = page.locator(`tr[data-role="${roleName}"]`);
  await roleRow.waitFor();
  assert.deepEqual(await roleRow.locator('code').allTextContents(), ['audit.read']);
  await snap(page, 'admin-roles');

  // The user, through the form, with that role.
  await goTo(page, 'Users');
  await page.locator('tr[data-username=admin]').waitFor();
  const username = uniq('auditor');
  const password = 'auditor-password-0123';
  await page.getByRole('button', { name: 'New user' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Name', { exact: true }).fill('Audrey Auditor');
  await page.getByLabel('Email').fill(`${username}@example.org`);
  await page.locator('#new-user-form').getByLabel('Role').selectOption(roleName);
  await page.getByRole('button', { name: 'Create user' }).click();
  const userRow = page.locator(`tr[data-username="${username}"]`);
  await userRow.waitFor();
  assert.match(await userRow.textContent(), new RegExp(`Audrey Auditor.*${roleName}.*Active`));
  // The same username again: 409, shown with the form.
  await page.getByRole('button', { name: 'New user' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.locator('#new-user-form [role=alert]').filter({ hasText: 'taken' }).waitFor();
  await page.locator('#new-user-form .field-error').filter({ hasText: 'already taken' }).waitFor();
  await snap(page, 'admin-users-form-error');
  await page.locator('#new-user-form').getByRole('button', { name: 'Cancel' }).click();
  await snap(page, 'admin-users');

  // The auditor, in a browser of their own.
  const auditor = await open(browser, stack.base, { name: 'auditor' });
  const ap = auditor.page;
  await signInAt(ap, username, password, 'audit');
  await heading(ap, 'Audit log').waitFor();
  const links = await nav(ap).getByRole('link').allTextContents();
  assert.ok(links.includes('Audit log'), links.join(', '));
  for (const hidden of ['Users', 'Roles', 'API keys', 'Jobs', 'Plugins', 'Dashboard', 'Queues', 'Search']) {
    assert.ok(!links.includes(hidden), `${hidden} in ${links.join(', ')}`);
  }
  // By URL: the screen is not there for this role.
  await ap.evaluate(() => { location.hash = '#/users'; });
  await heading(ap, 'Not here').waitFor();
  assert.equal(await ap.locator('tr[data-username]').count(), 0);
  await ap.evaluate(() => { location.hash = '#/api-keys'; });
  await heading(ap, 'Not here').waitFor();
  // And the audit screen works: records (the user's own creation among them).
  await goTo(ap, 'Audit log');
  await ap.locator('tr[data-audit-id]').first().waitFor();
  await ap.getByRole('button', { name: 'Verify chain' }).click();
  await ap.getByTestId('audit-verify').filter({ hasText: /Chain intact: \d+ records checked/ }).waitFor();
  await snap(ap, 'admin-audit-as-auditor');
  // The server agrees with the navigation.
  const token = await stack.srv.login(username, password);
  assert.equal((await api('GET', '/api/v1/users', { token })).status, 403);
  assert.equal((await api('GET', '/api/v1/audit?limit=1', { token })).status, 200);

  assertClean([admin, auditor], [failed(409), failed(422)]);
  await auditor.context.close();
  await admin.context.close();
});

test('API key created, shown once, used, revoked', async () => {
  const admin = await asAdmin('admin-keys', 'api-keys');
  const { page } = admin;
  await heading(page, 'API keys').waitFor();
  const name = uniq('crm-sync');
  await page.getByRole('button', { name: 'New API key' }).click();
  await page.getByRole('heading', { name: 'New API key' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('audit.read', { exact: true }).check();
  // A week ahead, in the browser's local time.
  const exp = await page.evaluate(() => {
    const d = new Date(Date.now() + 7 * 86400e3);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  });
  await page.getByLabel('Expires at').fill(exp);
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = page.getByTestId('new-api-key');
  await secret.waitFor();
  const key = (await secret.textContent()).trim();
  assert.match(key, /^sbk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}$/);
  assert.equal(await page.locator('.secret[data-testid=new-api-key]').count(), 1);
  await page.getByText('This key is shown only once').first().waitFor();
  await page.getByRole('button', { name: 'Copy' }).click();	// clipboard or not: no error
  await page.locator('.key-once [role=status]').filter({ hasText: /Copied|selected/ }).waitFor();
  const row = page.locator(`tr[data-key-name="${name}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /audit\.read/);
  await snap(page, 'admin-api-keys');

  // The key works on a route its scope allows, and only there.
  const withKey = (path) => fetch(stack.srv.url + path, { headers: { 'x-api-key': key } });
  assert.equal((await withKey('/api/v1/audit?limit=1')).status, 200);
  assert.equal((await withKey('/api/v1/users')).status, 403);

  // Never stored in the page.
  const stored = await page.evaluate(() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)]));
  assert.ok(!stored.includes(key), 'the key is not in web storage');
  // Away and back: gone.
  await goTo(page, 'Users');
  await goTo(page, 'API keys');
  await row.waitFor();
  assert.equal(await page.getByTestId('new-api-key').count(), 0);
  assert.ok(!(await page.content()).includes(key), 'the key is not in the page any more');
  assert.equal(await page.getByText('This key is shown only once').count(), 0);

  // Revoke, confirmed in a dialog.
  await page.getByRole('button', { name: `Revoke ${name}`, exact: true }).click();
  const dlg = page.getByRole('dialog');
  await dlg.waitFor();
  await dlg.getByRole('button', { name: 'Revoke', exact: true }).click();
  await row.getByTestId('key-state').filter({ hasText: 'Revoked' }).waitFor();
  assert.equal(await row.getByRole('button', { name: /Revoke/ }).count(), 0);
  assert.equal((await withKey('/api/v1/audit?limit=1')).status, 401);
  await snap(page, 'admin-api-keys-revoked');

  assertClean(admin);
  await admin.context.close();
});

test('a dead-letter job is retried from the console and runs to done', async () => {
  const path = `/dead-${hex()}`;
  up.script(path, [{ status: 503 }]);
  const enq = await stack.srv.request('POST', '/api/v1/jobber/enqueue', { json: {
    kind: 'jobber.call', max_attempts: 2, payload: { url: up.url + path } } });
  assert.equal(enq.status, 201, enq.text);
  const id = enq.body.id;
  let job;
  assert.ok(await poll(async () => {
    job = (await api('GET', `/api/v1/jobs/${id}`)).body;
    return job?.status === 'dead';
  }, { interval: 100 }), `job ${id} died: ${JSON.stringify(job)}`);
  // The upstream recovers.
  up.script(path, [{ status: 200, json: { ok: 1 } }]);

  const admin = await asAdmin('admin-jobs', 'jobs');
  const { page } = admin;
  await heading(page, 'Jobs').waitFor();
  await page.getByTestId('job-stats').getByText('Dead').waitFor();
  await page.getByLabel('Status', { exact: true }).selectOption('dead');
  // The dead job is in the unfiltered list too (with the host's periodic
  // jobs done beside it): wait for the filtered list, in which every
  // listed row is dead, rather than for the row alone.
  let statuses = [];
  assert.ok(await poll(async () => {
    statuses = await page.locator('tr[data-job-id]').evaluateAll((rs) => rs.map((r) => r.dataset.status));
    return statuses.length > 0 && statuses.every((s) => s === 'dead');
  }, { interval: 100 }), `the list shows only dead jobs: ${statuses.join(',')}`);
  const row = page.locator(`tr[data-job-id="${id}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-status'), 'dead');
  assert.match(await row.textContent(), /upstream answered 503/);
  assert.match(await row.textContent(), /2 \/ 2/);
  await snap(page, 'admin-jobs');

  await page.getByRole('button', { name: `Retry job ${id}`, exact: true }).click();
  await page.locator(`tr[data-job-id="${id}"][data-status=done]`).waitFor();
  const done = (await api('GET', `/api/v1/jobs/${id}`)).body;
  assert.equal(done.status, 'done');
  assert.equal(done.attempts, 1);
  assert.equal(up.count(path), 3);
  assert.equal(await page.getByRole('button', { name: `Retry job ${id}`, exact: true }).count(), 0);
  await snap(page, 'admin-jobs-retried');

  // Details of the job in a dialog.
  await page.getByRole('button', { name: `Details of job ${id}`, exact: true }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByText(up.url + path).waitFor();
  await dlg.getByRole('button', { name: 'Close' }).click();

  assertClean(admin);
  await admin.context.close();
});

test('audit log: verify the chain, filter by action', async () => {
  const admin = await asAdmin('admin-audit', 'audit');
  const { page } = admin;
  await heading(page, 'Audit log').waitFor();
  await page.locator('tr[data-audit-id]').first().waitFor();
  await page.getByRole('button', { name: 'Verify chain' }).click();
  const line = page.getByTestId('audit-verify').filter({ hasText: /Chain intact: \d+ records checked/ });
  await line.waitFor();
  const checked = Number((await line.textContent()).match(/(\d+) records/)[1]);
  assert.ok(checked > 0, `checked ${checked}`);

  // Filter: exactly one action.
  await page.getByLabel('Action').fill('auth.login.succeeded');
  await page.getByRole('button', { name: 'Apply' }).click();
  const onlyLogins = async () => {
    const acts = await page.locator('tr[data-audit-id]').evaluateAll((rs) => rs.map((r) => r.dataset.action));
    return acts.length > 0 && acts.every((a) => a === 'auth.login.succeeded') ? acts : null;
  };
  assert.ok(await poll(onlyLogins, { interval: 100 }), 'only auth.login.succeeded rows');
  await snap(page, 'admin-audit');
  // A prefix.
  await page.getByLabel('Action').fill('users.*');
  await page.getByRole('button', { name: 'Apply' }).click();
  assert.ok(await poll(async () => {
    const acts = await page.locator('tr[data-audit-id]').evaluateAll((rs) => rs.map((r) => r.dataset.action));
    return acts.length > 0 && acts.every((a) => a.startsWith('users.'));
  }, { interval: 100 }), 'only users.* rows');
  // A bad value: the server's 400, next to the form.
  await page.getByLabel('Actor ID').fill('abc');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('.audit .field-error').filter({ hasText: 'positive integer' }).waitFor();
  await page.getByLabel('Actor ID').fill('');
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.locator('tr[data-action="auth.login.succeeded"]').first().waitFor();

  assertClean(admin, [failed(400)]);
  await admin.context.close();
});

test('users: edit a name, reset a password, deactivate; the last super-admin stays', async () => {
  const u = await stack.user('AGENT', 'edited');
  const admin = await asAdmin('admin-users', 'users');
  const { page } = admin;
  const row = page.locator(`tr[data-username="${u.username}"]`);
  await row.waitFor();

  // Edit the name.
  await page.getByRole('button', { name: `Edit ${u.username}`, exact: true }).click();
  let dlg = page.getByRole('dialog');
  await dlg.getByLabel('Name').fill('Renamed Person');
  await dlg.getByRole('button', { name: 'Save' }).click();
  await dlg.waitFor({ state: 'detached' });
  await page.locator(`tr[data-username="${u.username}"]`).filter({ hasText: 'Renamed Person' }).waitFor();
  assert.equal((await api('GET', `/api/v1/users/${u.id}`)).body.name, 'Renamed Person');

  // Reset the password: the new one signs in, the old one no longer does.
  const fresh = 'brand-new-password-42';
  await page.getByRole('button', { name: `Reset password of ${u.username}`, exact: true }).click();
  dlg = page.getByRole('dialog');
  await dlg.getByLabel('New password').fill(fresh);
  await dlg.getByRole('button', { name: 'Set password' }).click();
  await dlg.waitFor({ state: 'detached' });
  assert.ok(await poll(async () => (await api('POST', '/api/v1/auth/login', { token: null,
    json: { username: u.username, password: fresh } })).status === 200, { interval: 100 }));
  assert.equal((await api('POST', '/api/v1/auth/login', { token: null,
    json: { username: u.username, password: u.password } })).status, 401);

  // Deactivate, confirmed.
  await page.getByRole('button', { name: `Deactivate ${u.username}`, exact: true }).click();
  dlg = page.getByRole('dialog');
  await dlg.getByRole('button', { name: 'Deactivate', exact: true }).click();
  await dlg.waitFor({ state: 'detached' });
  await page.locator(`tr[data-username="${u.username}"]`).getByTestId('user-active').filter({ hasText: 'Inactive' }).waitFor();
  assert.equal((await api('GET', `/api/v1/users/${u.id}`)).body.is_active, false);
  assert.equal((await api('POST', '/api/v1/auth/login', { token: null,
    json: { username: u.username, password: fresh } })).status, 401);
  await page.getByRole('button', { name: `Reactivate ${u.username}`, exact: true }).waitFor();

  // The last active super-admin: the server's 409 is shown, nothing changes.
  await page.getByRole('button', { name: 'Deactivate admin', exact: true }).click();
  dlg = page.getByRole('dialog');
  await dlg.getByRole('button', { name: 'Deactivate', exact: true }).click();
  await dlg.getByTestId('deactivate-error').filter({ hasText: 'last active super-admin' }).waitFor();
  await snap(page, 'admin-users-last-super-admin');
  await dlg.getByRole('button', { name: 'Close' }).click();
  await dlg.waitFor({ state: 'detached' });
  assert.equal(await page.locator('tr[data-username=admin]').getByTestId('user-active').textContent(), 'Active');

  assertClean(admin, [failed(409)]);
  await admin.context.close();
});

test('dashboard: charts with data; plugins: the registry', async () => {
  // A few queries today: one answered and resolved.
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const r = await stack.srv.request('POST', '/api/v1/donor-queries', { json: {
      donor: `Donor ${i}`, donor_id: uniq('d'), content: `Question ${i}` } });
    assert.equal(r.status, 201, r.text);
    ids.push(r.body.query.id);
  }
  const q = `/api/v1/donor-queries/${ids[0]}`;
  assert.equal((await api('PATCH', `${q}/accept`)).status, 200);
  assert.equal((await api('POST', `${q}/messages`, { json: { content: 'Here to help' } })).status, 201);
  assert.equal((await api('PATCH', `${q}/resolve`)).status, 200);

  const admin = await asAdmin('admin-dash', 'dashboard');
  const { page } = admin;
  await heading(page, 'Dashboard').waitFor();
  const charts = page.getByTestId('dash-charts');
  for (const title of ['Queries per day', 'Response and resolution time', 'Jobs by status']) {
    await charts.locator(`figure[data-chart="${title}"] svg`).waitFor();
  }
  // Today's messages: at least the three questions and the one answer.
  const msgRow = charts.locator('figure[data-chart="Messages per day"] table tr')
    .filter({ hasText: new Date().toISOString().slice(5, 10) });
  await msgRow.waitFor();
  const msgCells = (await msgRow.locator('td').allTextContents()).map(Number);
  assert.ok(msgCells[0] >= 3 && msgCells[1] >= 1, `messages today: ${msgCells}`);
  assert.ok(await charts.locator('figure svg').count() >= 3);
  // Each chart names itself for assistive technology.
  const svgTitle = await charts.locator('figure[data-chart="Queries per day"] svg > title').textContent();
  assert.equal(svgTitle, 'Queries per day');
  // Today's bar: at least the three queries created above (and drawn).
  const today = new Date().toISOString().slice(5, 10);
  const todayRow = charts.locator('figure[data-chart="Queries per day"] table tr').filter({ hasText: today });
  const cells = await todayRow.locator('td').allTextContents();
  assert.ok(Number(cells[0]) >= 3 && Number(cells[1]) >= 1, `today: ${cells}`);
  assert.ok(await charts.locator('figure[data-chart="Queries per day"] rect.bar').count() >= 2);
  assert.ok(await charts.locator('figure[data-chart="Response and resolution time"] circle.dot').count() >= 1);
  const cards = await page.getByTestId('dash-cards').textContent();
  assert.match(cards, /Queries\s*\d+/);
  assert.match(cards, /Database/);
  await page.getByRole('heading', { name: 'Per agent' }).waitFor();
  await snap(page, 'admin-dashboard');

  // A narrower window (From = To = today) still draws.
  const day = new Date().toISOString().slice(0, 10);
  await page.getByLabel('From', { exact: true }).fill(day);
  await page.getByRole('button', { name: 'Apply' }).click();
  await charts.locator('figure[data-chart="Queries per day"] table tbody tr').first().waitFor();
  assert.ok(await poll(async () => await charts.locator('figure[data-chart="Queries per day"] table tbody tr').count() === 1,
    { interval: 100 }));

  // Plugins.
  await goTo(page, 'Plugins');
  for (const p of ['audit', 'concierge', 'jobber']) {
    await page.locator(`tr[data-plugin="${p}"]`).getByTestId('plugin-state').filter({ hasText: 'ready' }).waitFor();
  }
  const details = page.locator('details.plugin[data-plugin="concierge"]');
  await details.locator('summary').click();
  await details.getByRole('table', { name: 'Routes of concierge' }).getByText('/api/v1/concierge/stats').waitFor();
  await details.getByRole('table', { name: 'Configuration of concierge' }).waitFor();
  await snap(page, 'admin-plugins');

  // Small screens: the same screens fold to one column.
  await page.setViewportSize({ width: 420, height: 860 });
  await page.getByRole('button', { name: 'Menu' }).click();
  await goTo(page, 'Dashboard');
  await charts.locator('figure[data-chart="Queries per day"] svg').waitFor();
  await snap(page, 'admin-dashboard-narrow');

  assertClean(admin);
  await admin.context.close();
});
