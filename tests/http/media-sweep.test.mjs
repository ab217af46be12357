// The media sweep (job media.sweep): objects no row names any more (a
// worker that died between publishing a file and committing its row)
// and temporary files of uploads that died are removed once older than
// sweep_grace; objects that items or thumbnails name stay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, TEST_PLUGINS, ROOT, pgClient, freshDir } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { pdf } from './lib/media.mjs';

const M = '/api/v1/media';
let srv, tok, dir;
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const obj = (sha) => join(dir, sha.slice(0, 2), sha);
const age = (path) => { const t = new Date(Date.now() - 2 * 86400 * 1000); utimesSync(path, t, t); };

before(async () => {
  dir = freshDir('media-sweep');
  srv = await startServer({ workers: 1, plugins: { ...TEST_PLUGINS,
    media: { dir, sweep_interval: '1', sweep_grace: '3600' } } });
  tok = await srv.login();
});
after(async () => { await srv?.stop(); });

async function upload(data, name) {
  const fd = new FormData();
  fd.append('file', new Blob([data]), name);
  const res = await fetch(`${srv.url}${M}/upload`, { method: 'POST', body: fd,
    headers: { authorization: `Bearer ${tok}` } });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

async function sweepsDone() {
  const db = await pgClient(srv.dbUrl);
  try {
    const r = await db.query("SELECT count(*)::int AS n FROM jobs WHERE kind = 'media.sweep' AND status = 'done'");
    return r.rows[0].n;
  } finally { await db.end(); }
}

test('an orphaned object and a dead upload\'s temporary file go; named objects and young files stay', async () => {
  const kept = await upload(pdf('kept'), 'kept.pdf');
  const png = readFileSync(join(ROOT, 'tests/fixtures/media/tiny.png'));
  const image = await upload(png, 'tiny.png');
  const t = await poll(async () => {
    const r = await srv.request('GET', `${M}/${image.id}`, { token: tok });
    return r.body.thumbnail_url ? r.body : null;
  });
  assert.ok(t.thumbnail_url);
  const db = await pgClient(srv.dbUrl);
  let thumbSha;
  try {
    thumbSha = (await db.query('SELECT thumb_sha256 FROM media WHERE id = $1', [image.id])).rows[0].thumb_sha256;
  } finally { await db.end(); }

  // An upload whose row never committed: its file is in the store, no row names it.
  const orphan = await upload(pdf('orphan'), 'orphan.pdf');
  const db2 = await pgClient(srv.dbUrl);
  try { await db2.query('DELETE FROM media WHERE id = $1', [orphan.id]); } finally { await db2.end(); }
  // A young orphan (inside the grace) and an old and a young temporary file.
  const young = await upload(pdf('young'), 'young.pdf');
  const db3 = await pgClient(srv.dbUrl);
  try { await db3.query('DELETE FROM media WHERE id = $1', [young.id]); } finally { await db3.end(); }
  writeFileSync(join(dir, 'tmp', 'deadbeefdeadbeefdeadbeefdeadbeef'), 'half an upload');
  writeFileSync(join(dir, 'tmp', 'cafebabecafebabecafebabecafebabe'), 'an upload under way');
  for (const p of [obj(kept.sha256), obj(image.sha256), obj(thumbSha), obj(orphan.sha256),
    join(dir, 'tmp', 'deadbeefdeadbeefdeadbeefdeadbeef')]) age(p);

  const done0 = await sweepsDone();
  await poll(async () => !existsSync(obj(orphan.sha256)) || null);
  assert.ok(!existsSync(join(dir, 'tmp', 'deadbeefdeadbeefdeadbeefdeadbeef')), 'the old temporary file is gone');
  // Another whole sweep after that one, to be sure what stays stays.
  await poll(async () => (await sweepsDone()) >= done0 + 2 || null);
  for (const s of [kept.sha256, image.sha256, thumbSha, young.sha256])
    assert.ok(existsSync(obj(s)), `${s} stays`);
  assert.ok(existsSync(join(dir, 'tmp', 'cafebabecafebabecafebabecafebabe')), 'a young temporary file stays');
  const r = await fetch(srv.url + kept.url);
  assert.equal(r.status, 200);
  assert.deepEqual(Buffer.from(await r.arrayBuffer()), pdf('kept'));
  assert.equal(sha256(pdf('kept')), kept.sha256);
});
