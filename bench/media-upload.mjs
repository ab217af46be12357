// Uploads per second of small JPEGs to the media plugin (bench/media.sh):
// CONC clients each upload the files of DIR in turn for SECONDS seconds
// (loopback only), then the script waits until every upload has its
// thumbnail (the job media.thumbnail), polling the items it made.
//
//   node bench/media-upload.mjs PORT PASSWORD DIR SECONDS CONC
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [port, password, dir, secs, conc] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const files = readdirSync(dir).filter((f) => f.endsWith('.jpg')).sort().map((f) => readFileSync(join(dir, f)));
if (!files.length) throw new Error(`no .jpg in ${dir}`);

const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username: 'admin', password }) });
const { access_token: token } = await login.json();
const auth = { authorization: `Bearer ${token}` };

const ids = [];
let failed = 0, bytes = 0, next = 0;
const t0 = performance.now();
const until = t0 + Number(secs) * 1000;
async function client() {
  while (performance.now() < until) {
    const data = files[next++ % files.length];
    const fd = new FormData();
    fd.append('file', new Blob([data], { type: 'image/jpeg' }), 'photo.jpg');
    const r = await fetch(`${base}/api/v1/media/upload`, { method: 'POST', body: fd, headers: auth });
    const body = await r.json();
    if (r.status === 201) { ids.push(body.id); bytes += data.length; } else failed++;
  }
}
await Promise.all(Array.from({ length: Number(conc) }, client));
const tUp = (performance.now() - t0) / 1000;

// Every item's thumbnail: the last ids are made last, but check them all.
let pending = [...ids];
while (pending.length) {
  const still = [];
  for (const id of pending) {
    const r = await fetch(`${base}/api/v1/media/${id}`, { headers: auth });
    if (!(await r.json()).thumbnail_url) still.push(id);
  }
  pending = still;
  if (pending.length) await new Promise((res) => setTimeout(res, 100));
  if ((performance.now() - t0) / 1000 > Number(secs) + 600) throw new Error(`${pending.length} thumbnails not made`);
}
const tAll = (performance.now() - t0) / 1000;
const kb = bytes / ids.length / 1024;
console.log(`uploads: ${ids.length} (${kb.toFixed(0)} KB each on average) in ${tUp.toFixed(1)} s = ${(ids.length / tUp).toFixed(1)}/s, `
  + `${conc} clients, ${failed} refused`);
console.log(`with thumbnails: all ${ids.length} made ${(tAll - tUp).toFixed(1)} s after the last upload = `
  + `${(ids.length / tAll).toFixed(1)} uploads+thumbnails/s`);
