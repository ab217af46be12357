// The media picker and the Media library end to end: the admin uploads an
// avatar through the profile (the progress bar seen while the upload is
// slowed down, the stored picture shown), sees the server's error for a
// file that is not what it claims, uploads, previews and deletes a file in
// the Media library; an AGENT has no Media entry and is told plainly that
// the screen is not for them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { ROOT } from '../http/lib/harness.mjs';
import { launch, open, shot, signIn, assertClean, AVATAR_404 } from './lib/browser.mjs';
import { startStack } from './lib/stack.mjs';
import { pngChunk } from '../http/lib/media.mjs';

let stack, browser;
before(async () => { stack = await startStack(); browser = await launch(); });
after(async () => { await browser?.close(); await stack?.stop(); });

const navLinks = (page) => page.locator('nav#sidenav a').allInnerTexts();

// A PNG of random RGB noise (stored, not compressed): big enough for an
// upload to take a while on a slowed-down link, under the 5 MB limit.
function noisePng(w, hgt) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(hgt, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = randomBytes((w * 3 + 1) * hgt);
  for (let y = 0; y < hgt; y++) raw[y * (w * 3 + 1)] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw, { level: 0 })), pngChunk('IEND', Buffer.alloc(0))]);
}

test('the profile avatar: upload with progress, the picture shown, the server\'s error shown', async () => {
  const w = await open(browser, stack.base, { name: 'avatar' });
  const { page } = w;
  await signIn(page, 'admin', stack.adminPassword);
  await page.evaluate(() => { location.hash = '#/profile'; });
  const card = page.getByTestId('avatar-card');
  await card.getByTestId('avatar-none').waitFor();
  await shot(page, 'media-profile-no-avatar');

  // Slow the upload down (about 1 MB/s) so the progress bar can be seen.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20,
    downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
  const big = noisePng(1100, 1000);
  assert.ok(big.length > 3 * 1024 * 1024 && big.length < 5 * 1024 * 1024, `${big.length} bytes`);
  await card.getByLabel('Upload a new avatar').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: big });
  const progress = card.getByTestId('upload-progress');
  await progress.waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const p = document.querySelector('[data-testid=avatar-card] progress');
    return p && !p.hidden && p.value > 0 && p.value < 100;
  });
  await card.getByTestId('upload-status').filter({ hasText: /Uploading me\.png: \d+%/ }).waitFor();
  await shot(page, 'media-profile-uploading');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0,
    downloadThroughput: -1, uploadThroughput: -1 });

  const img = card.getByTestId('avatar-image');
  await img.waitFor({ state: 'visible' });
  await progress.waitFor({ state: 'hidden' });
  const sha = await img.getAttribute('data-sha256');
  assert.match(sha, /^[0-9a-f]{64}$/);
  // What the page shows is what the server stored: a 256x256 picture.
  const size = await img.evaluate(async (el) => {
    await el.decode();
    return [el.naturalWidth, el.naturalHeight];
  });
  assert.deepEqual(size, [256, 256]);
  const stored = await stack.srv.request('GET', '/api/v1/users/1/avatar', { token: stack.admin });
  assert.equal(stored.status, 200);
  assert.equal(stored.headers.get('etag'), `"${sha}"`);
  await page.getByText('Your avatar is saved').first().waitFor();
  await shot(page, 'media-profile-avatar');

  // Text dressed as a PNG: the server says no, and the person reads why.
  await card.getByLabel('Upload a new avatar').setInputFiles({ name: 'fake.png', mimeType: 'image/png',
    buffer: Buffer.from('not a picture at all\n') });
  await card.getByTestId('upload-error').filter({ hasText: /fake\.png: .*does not match/ }).waitFor();
  await shot(page, 'media-profile-error');
  // The picture did not change.
  assert.equal(await img.getAttribute('data-sha256'), sha);
  await w.context.close();
  assertClean(w, [/status of 415 .*\/api\/v1\/users\/me\/avatar>$/, ...AVATAR_404]);
});

test('the Media library: upload, preview, delete with confirmation', async () => {
  const w = await open(browser, stack.base, { name: 'library' });
  const { page } = w;
  await signIn(page, 'admin', stack.adminPassword);
  assert.ok((await navLinks(page)).includes('Media'));
  await page.locator('nav#sidenav a', { hasText: 'Media' }).click();
  await page.getByRole('heading', { name: 'Media', exact: true }).waitFor();
  await page.getByTestId('media-list').waitFor();

  await page.getByLabel('Purpose').selectOption('image');
  const png = readFileSync(join(ROOT, 'tests/fixtures/media/tiny.png'));
  const name = `library-${randomBytes(3).toString('hex')}.png`;
  await page.getByLabel('Upload a file').setInputFiles({ name, mimeType: 'image/png', buffer: png });
  const row = page.getByTestId('media-list').locator('tbody tr', { hasText: name });
  await row.waitFor();
  await page.getByText(`${name} uploaded`).first().waitFor();
  const id = await row.getAttribute('data-media-id');
  assert.match(id, /^\d+$/);
  await shot(page, 'media-library');

  // Preview through the signed URL.
  await row.getByRole('button', { name: `Preview ${name}` }).click();
  const dlg = page.getByRole('dialog', { name });
  const pic = dlg.locator('img');
  await pic.waitFor();
  assert.equal(await pic.evaluate(async (el) => { await el.decode(); return el.naturalWidth > 0; }), true);
  assert.match(await pic.getAttribute('src'), new RegExp(`^/api/v1/media/${id}/content\\?exp=\\d+&sig=`));
  await shot(page, 'media-library-preview');
  await dlg.getByRole('button', { name: 'Close' }).click();

  // Dropped on the picker's zone: uploaded the same way.
  const dropped = `dropped-${randomBytes(3).toString('hex')}.png`;
  const dt = await page.evaluateHandle(({ bytes, fname }) => {
    const d = new DataTransfer();
    d.items.add(new File([new Uint8Array(bytes)], fname, { type: 'image/png' }));
    return d;
  }, { bytes: [...png], fname: dropped });
  await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer: dt });
  await page.getByTestId('media-list').locator('tbody tr', { hasText: dropped }).waitFor();

  // Delete, confirmed in a dialog.
  await row.getByRole('button', { name: `Delete ${name}` }).click();
  await page.getByRole('dialog', { name: 'Delete this file?' }).waitFor();
  await shot(page, 'media-library-delete');
  await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByText(`${name} deleted`).first().waitFor();
  await row.waitFor({ state: 'detached' });
  // The keyboard stays in the list.
  await page.waitForFunction(() => document.activeElement?.id === 'media-list-title');
  const gone = await stack.srv.request('GET', `/api/v1/media/${id}`, { token: stack.admin });
  assert.equal(gone.status, 404);
  await w.context.close();
  assertClean(w);
});

test('an AGENT has no Media entry, and the URL says plainly it is not allowed', async () => {
  const agent = await stack.user('AGENT', 'mediaagent');
  const w = await open(browser, stack.base, { name: 'agent' });
  const { page } = w;
  await signIn(page, agent.username, agent.password);
  await page.locator('nav#sidenav a', { hasText: 'Queues' }).waitFor();
  assert.ok(!(await navLinks(page)).includes('Media'));
  await page.evaluate(() => { location.hash = '#/media'; });
  await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
  await page.getByTestId('not-allowed').filter({ hasText: 'media.manage' }).waitFor();
  await shot(page, 'media-agent-not-allowed');
  await w.context.close();
  assertClean(w);
});
