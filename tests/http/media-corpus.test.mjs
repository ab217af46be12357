// The media plugin against a corpus of real files (issue 15, acceptance):
// every allowed type accepted with the type sniffed from its bytes;
// renamed executables, HTML/SVG with script, polyglots, truncated images,
// a 50,000 x 50,000 PNG, zip bombs named .docx, zero-byte and over-limit
// files refused with their codes; images stored re-encoded (EXIF/GPS/XMP
// and comments gone, autorotated, CMYK and 16-bit made sRGB 8-bit,
// trailers gone, the same upload giving the same bytes); thumbnails made
// by the job and served like the content; durations read from headers;
// and no libvips/GLib/libmagic warning on the server's output.
//
// Images are made here with the `vips` command (Debian libvips-tools);
// EXIF, XMP and animated WebP are assembled byte by byte around them;
// zips with node's zlib; audio and video containers from their specs
// (tests/fixtures/media/README says how each was made).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { startServer, TEST_PLUGINS, ROOT, assertEnvelope, freshDir } from './lib/harness.mjs';
import { crc32, pdf, pngClaiming } from './lib/media.mjs';
import { poll } from './lib/helpers.mjs';

const M = '/api/v1/media';
const FIX = join(ROOT, 'tests/fixtures/media');
let srv, admin, storeDir, work;

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const objPath = (sha) => join(storeDir, sha.slice(0, 2), sha);

// --- images made with the vips command ----------------------------------
function vips(...args) { execFileSync('vips', args, { stdio: ['ignore', 'ignore', 'pipe'] }); }
function made(name, ...args) { vips(...args); return readFileSync(join(work, name)); }
const W = (n) => join(work, n);

// --- JPEG and PNG structure ---------------------------------------------
// The segments of a JPEG up to its scan: [{marker, data}].
function jpegSegments(b) {
  assert.equal(b.readUInt16BE(0), 0xffd8, 'JPEG SOI');
  const out = [];
  let o = 2;
  while (o + 4 <= b.length) {
    assert.equal(b[o], 0xff, `JPEG marker at ${o}`);
    const m = b[o + 1];
    const len = b.readUInt16BE(o + 2);
    out.push({ marker: m, data: b.subarray(o + 4, o + 2 + len) });
    if (m === 0xda) break;
    o += 2 + len;
  }
  return out;
}
function jpegInfo(b) {
  const segs = jpegSegments(b);
  const sof = segs.find((s) => s.marker >= 0xc0 && s.marker <= 0xc2);
  return { segs, height: sof.data.readUInt16BE(1), width: sof.data.readUInt16BE(3), components: sof.data[5] };
}
// No EXIF (hence no GPS IFD), no XMP, no IPTC (APP13), no ICC (APP2), no comment.
function assertJpegClean(b, what) {
  const { segs } = jpegInfo(b);
  for (const s of segs) {
    assert.ok(s.marker !== 0xe1, `${what}: an APP1 (Exif/XMP) segment is left`);
    assert.ok(s.marker !== 0xe2 && s.marker !== 0xed, `${what}: APP2/APP13 left`);
    assert.ok(s.marker !== 0xfe, `${what}: a comment is left`);
  }
  for (const needle of ['Exif', 'GPS', 'http://ns.adobe.com/xap', 'secret-place'])
    assert.equal(b.indexOf(needle), -1, `${what}: "${needle}" in the bytes`);
}
function pngChunks(b) {
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const out = [];
  for (let o = 8; o + 8 <= b.length;) {
    const n = b.readUInt32BE(o);
    out.push({ type: b.toString('latin1', o + 4, o + 8), data: b.subarray(o + 8, o + 8 + n) });
    o += 12 + n;
  }
  return out;
}
function pngInfo(b) {
  const c = pngChunks(b);
  const ihdr = c[0].data;
  return { chunks: c.map((x) => x.type), width: ihdr.readUInt32BE(0), height: ihdr.readUInt32BE(4),
    depth: ihdr[8], colour: ihdr[9] };
}

// An APP1 Exif segment: IFD0 with Orientation and a GPS IFD (latitude).
function exifSegment(orientation) {
  const t = Buffer.alloc(128);
  t.write('MM', 0, 'latin1'); t.writeUInt16BE(42, 2); t.writeUInt32BE(8, 4);
  let o = 8;
  t.writeUInt16BE(2, o); o += 2;
  t.writeUInt16BE(0x0112, o); t.writeUInt16BE(3, o + 2); t.writeUInt32BE(1, o + 4); t.writeUInt16BE(orientation, o + 8); o += 12;
  t.writeUInt16BE(0x8825, o); t.writeUInt16BE(4, o + 2); t.writeUInt32BE(1, o + 4); t.writeUInt32BE(38, o + 8); o += 12;
  t.writeUInt32BE(0, o); o += 4; // next IFD: none
  assert.equal(o, 38);
  t.writeUInt16BE(2, o); o += 2;
  t.writeUInt16BE(0x0001, o); t.writeUInt16BE(2, o + 2); t.writeUInt32BE(2, o + 4); t.write('N\0', o + 8, 'latin1'); o += 12;
  t.writeUInt16BE(0x0002, o); t.writeUInt16BE(5, o + 2); t.writeUInt32BE(3, o + 4); t.writeUInt32BE(68, o + 8); o += 12;
  t.writeUInt32BE(0, o); o += 4;
  assert.equal(o, 68);
  for (const [num, den] of [[48, 1], [51, 1], [2954, 100]]) { t.writeUInt32BE(num, o); t.writeUInt32BE(den, o + 4); o += 8; }
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), t.subarray(0, o)]);
  const h = Buffer.from([0xff, 0xe1, 0, 0]); h.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([h, body]);
}
function segment(marker, body) {
  const h = Buffer.from([0xff, marker, 0, 0]); h.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([h, body]);
}
// A JPEG with EXIF (orientation, GPS), XMP with a location and a comment.
function withMetadata(jpeg, orientation) {
  const xmp = Buffer.from('http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    + 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    + 'exif:GPSLatitude="48,51.2954N"/></rdf:RDF></x:xmpmeta>', 'latin1');
  return Buffer.concat([jpeg.subarray(0, 2), exifSegment(orientation), segment(0xe1, xmp),
    segment(0xfe, Buffer.from('secret-place comment')), jpeg.subarray(2)]);
}

// A PNG header claiming w x h, with a little real data.

// An animated WebP (VP8X + ANIM + ANMF) from the image chunks of static ones.
function animatedWebp(frames, w, h) {
  const chunk = (t, d) => {
    const hd = Buffer.alloc(8); hd.write(t, 0, 'latin1'); hd.writeUInt32LE(d.length, 4);
    return Buffer.concat([hd, d, Buffer.alloc(d.length & 1)]);
  };
  const u24 = (v) => { const b = Buffer.alloc(3); b.writeUIntLE(v, 0, 3); return b; };
  const imageChunks = (webp) => {
    const out = [];
    for (let o = 12; o + 8 <= webp.length;) {
      const t = webp.toString('latin1', o, o + 4), n = webp.readUInt32LE(o + 4);
      if (t === 'VP8 ' || t === 'VP8L' || t === 'ALPH') out.push(webp.subarray(o, o + 8 + n + (n & 1)));
      o += 8 + n + (n & 1);
    }
    return Buffer.concat(out);
  };
  const body = [chunk('VP8X', Buffer.concat([Buffer.from([0x02, 0, 0, 0]), u24(w - 1), u24(h - 1)])),
    chunk('ANIM', Buffer.from([255, 255, 255, 255, 0, 0]))];
  for (const f of frames)
    body.push(chunk('ANMF', Buffer.concat([u24(0), u24(0), u24(w - 1), u24(h - 1), u24(100), Buffer.from([0]), imageChunks(f)])));
  const payload = Buffer.concat([Buffer.from('WEBP'), ...body]);
  const riff = Buffer.alloc(8); riff.write('RIFF', 0); riff.writeUInt32LE(payload.length, 4);
  return Buffer.concat([riff, payload]);
}

// --- zips ------------------------------------------------------------------
// entries: {name, data, usize?: the size the central directory declares}
function zip(entries) {
  const locals = [], cds = [];
  let off = 0;
  for (const e of entries) {
    const raw = Buffer.from(e.data), comp = deflateRawSync(raw, { level: 9 }), name = Buffer.from(e.name), crc = crc32(raw);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt16LE(8, 8); lh.writeUInt16LE(0x21, 12);
    lh.writeUInt32LE(crc, 14); lh.writeUInt32LE(comp.length, 18); lh.writeUInt32LE(raw.length, 22); lh.writeUInt16LE(name.length, 26);
    locals.push(lh, name, comp);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt16LE(8, 10); ch.writeUInt16LE(0x21, 14);
    ch.writeUInt32LE(crc, 16); ch.writeUInt32LE(comp.length, 20); ch.writeUInt32LE(e.usize ?? raw.length, 24);
    ch.writeUInt16LE(name.length, 28); ch.writeUInt32LE(off, 42);
    cds.push(ch, name);
    off += 30 + name.length + comp.length;
  }
  const cd = Buffer.concat(cds);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0); eocd.writeUInt16LE(entries.length, 8); eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12); eocd.writeUInt32LE(off, 16);
  return Buffer.concat([...locals, cd, eocd]);
}
function ooxml(dir, main, extra = []) {
  const types = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/'
    + 'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
    + `<Override PartName="/${dir}/${main}"/></Types>`;
  return zip([{ name: '[Content_Types].xml', data: types }, { name: '_rels/.rels', data: '<Relationships/>' },
    { name: `${dir}/${main}`, data: '<doc>hello</doc>' }, ...extra]);
}
const OOXML = 'application/vnd.openxmlformats-officedocument.';

// --- audio and video containers ---------------------------------------------
const box = (t, ...b) => { const d = Buffer.concat(b); const l = Buffer.alloc(4); l.writeUInt32BE(8 + d.length); return Buffer.concat([l, Buffer.from(t), d]); };
function mp4(brand, compat, timescale, duration) {
  const mvhd = Buffer.alloc(100);
  mvhd.writeUInt32BE(timescale, 12); mvhd.writeUInt32BE(duration, 16); mvhd.writeUInt32BE(0x00010000, 20);
  return Buffer.concat([box('ftyp', Buffer.from(brand), Buffer.from([0, 0, 2, 0]), Buffer.from(compat)),
    box('moov', box('mvhd', mvhd)), box('mdat', Buffer.alloc(256))]);
}
function amr(frames) { // AMR-NB 12.2 kbit/s: one header byte + 31 bytes, 20 ms each
  const f = Buffer.alloc(32); f[0] = 0x3c;
  return Buffer.concat([Buffer.from('#!AMR\n'), ...Array(frames).fill(f)]);
}
function adts(frames) { // AAC LC, 48 kHz, stereo: 7-byte header + 9 bytes, 1024 samples each
  const len = 16;
  const h = Buffer.from([0xff, 0xf1, (1 << 6) | (3 << 2), 0x80 | (len >> 11), (len >> 3) & 0xff, ((len & 7) << 5) | 0x1f, 0xfc]);
  return Buffer.concat(Array(frames).fill(Buffer.concat([h, Buffer.alloc(9)])));
}
function mp3Xing(frames) { // MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417-byte frames
  const first = Buffer.alloc(417);
  Buffer.from([0xff, 0xfb, 0x90, 0x64]).copy(first, 0);
  first.write('Xing', 4 + 32, 'latin1'); first.writeUInt32BE(1, 40); first.writeUInt32BE(frames, 44);
  const f = Buffer.alloc(417); Buffer.from([0xff, 0xfb, 0x90, 0x64]).copy(f, 0);
  return Buffer.concat([first, ...Array(frames).fill(f)]);
}
function oggPage(flags, granule, seq, packet) {
  const h = Buffer.alloc(27);
  h.write('OggS', 0, 'latin1'); h[5] = flags; h.writeBigUInt64LE(granule, 6); h.writeUInt32LE(0x5b0a, 14);
  h.writeUInt32LE(seq, 18); h[26] = 1;
  const p = Buffer.concat([h, Buffer.from([packet.length]), packet]);
  p.writeUInt32LE(0, 22);
  return p;
}
function opus(seconds) { // pre-skip 312; the last page's granule = 48 kHz samples + pre-skip
  const head = Buffer.concat([Buffer.from('OpusHead'), Buffer.from([1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0])]);
  const tags = Buffer.concat([Buffer.from('OpusTags'), Buffer.from([4, 0, 0, 0]), Buffer.from('test'), Buffer.alloc(4)]);
  return Buffer.concat([oggPage(2, 0n, 0, head), oggPage(0, 0n, 1, tags), oggPage(0, 24312n, 2, Buffer.alloc(100, 0xfc)),
    oggPage(4, BigInt(seconds * 48000 + 312), 3, Buffer.alloc(100, 0xfc))]);
}

// --- HTTP -----------------------------------------------------------------------
async function upload(data, name, { type, purpose, customer } = {}) {
  const fd = new FormData();
  if (purpose) fd.append('purpose', purpose);
  if (customer) fd.append('customer_id', String(customer));
  fd.append('file', new Blob([data], type ? { type } : {}), name);
  const res = await fetch(`${srv.url}${M}/upload`, { method: 'POST', body: fd, headers: { authorization: `Bearer ${admin}` } });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  return { status: res.status, headers: res.headers, text, body };
}
async function get(path, headers = {}) {
  const res = await fetch(srv.url + path, { headers });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}
const content = async (m) => (await get(m.url)).bytes;
async function thumbnailOf(m) {
  const item = await poll(async () => {
    const r = await srv.request('GET', `${M}/${m.id}`, { token: admin });
    return r.body?.thumbnail_url ? r.body : null;
  });
  assert.ok(item, `a thumbnail for ${m.filename} appears`);
  return item;
}

let img;
before(async () => {
  work = freshDir('corpus');
  storeDir = freshDir('media');
  // A 600 x 450 photo-like base (the tiny fixture enlarged), then variants.
  vips('resize', join(FIX, 'tiny.png'), W('base.png'), '37.5');
  img = {
    jpg: made('base.jpg', 'copy', W('base.png'), `${W('base.jpg')}[strip,Q=90]`),
    png: readFileSync(W('base.png')),
    webp: made('base.webp', 'copy', W('base.png'), `${W('base.webp')}[strip]`),
    // bytes no other test uploads (its store objects are checked)
    webpOwn: made('flip.webp', 'flip', W('base.png'), `${W('flip.webp')}[strip]`, 'vertical'),
    pngOwn: made('rot.png', 'rot', W('base.png'), W('rot.png'), 'd90'),
    gif: made('base.gif', 'copy', W('base.png'), W('base.gif')),
    cmyk: made('cmyk.jpg', 'colourspace', W('base.png'), `${W('cmyk.jpg')}[strip]`, 'cmyk'),
    cmykIcc: made('cmyk-icc.jpg', 'icc_transform', W('base.png'), W('cmyk-icc.jpg'), 'cmyk'),
    png16: made('rgb16.png', 'colourspace', W('base.png'), W('rgb16.png'), 'rgb16'),
    alpha: made('alpha.png', 'bandjoin_const', W('base.png'), W('alpha.png'), '128'),
    small1: made('f1.webp', 'resize', join(FIX, 'tiny.png'), `${W('f1.webp')}[strip]`, '4'),
  };
  vips('invert', W('f1.webp'), W('f2.png'));
  img.small2 = made('f2.webp', 'copy', W('f2.png'), `${W('f2.webp')}[strip]`);
  img.anim = animatedWebp([img.small1, img.small2], 64, 48);
  img.exif = withMetadata(img.jpg, 6);
  // GIF allowed by configuration: still refused, it cannot be re-encoded
  srv = await startServer({ workers: 1, plugins: { ...TEST_PLUGINS,
    media: { dir: storeDir, image_types: 'image/jpeg image/png image/webp image/gif' } } });
  admin = await srv.login();
});

after(async () => {
  await srv?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('every allowed type is accepted with the type sniffed from its bytes', async () => {
  const docx = ooxml('word', 'document.xml');
  const cases = [
    { data: img.jpg, name: 'photo.jpg', mime: 'image/jpeg', w: 600, h: 450 },
    { data: img.png, name: 'shot.png', mime: 'image/png', w: 600, h: 450 },
    { data: img.webp, name: 'pic.webp', mime: 'image/webp', w: 600, h: 450 },
    { data: img.webp, name: 'sticker.webp', mime: 'image/webp', w: 600, h: 450, purpose: 'sticker' },
    { data: img.jpg, name: 'me.jpg', mime: 'image/jpeg', w: 600, h: 450, purpose: 'avatar' },
    { data: adts(47), name: 'voice.aac', mime: 'audio/aac', dur: 1.003 },
    { data: amr(50), name: 'voice.amr', mime: 'audio/amr', dur: 1 },
    { data: mp3Xing(38), name: 'song.mp3', mime: 'audio/mpeg', dur: 0.993 },
    { data: mp4('M4A ', 'M4A mp42isom', 44100, 132300), name: 'note.m4a', mime: 'audio/mp4', dur: 3 },
    { data: opus(2), name: 'voice.ogg', mime: 'audio/ogg', dur: 2, purpose: 'audio' },
    { data: mp4('isom', 'isomiso2avc1mp41', 1000, 2500), name: 'clip.mp4', mime: 'video/mp4', dur: 2.5 },
    { data: mp4('3gp4', 'isom3gp4', 600, 900), name: 'clip.3gp', mime: 'video/3gpp', dur: 1.5 },
    { data: pdf(), name: 'doc.pdf', mime: 'application/pdf' },
    { data: docx, name: 'letter.docx', mime: `${OOXML}wordprocessingml.document` },
    { data: ooxml('xl', 'workbook.xml'), name: 'sheet.xlsx', mime: `${OOXML}spreadsheetml.sheet` },
    { data: ooxml('ppt', 'presentation.xml'), name: 'deck.pptx', mime: `${OOXML}presentationml.presentation` },
    { data: Buffer.from('Meeting notes.\nSecond line.\n'), name: 'notes.txt', mime: 'text/plain', purpose: 'document' },
  ];
  for (const c of cases) {
    const r = await upload(c.data, c.name, { purpose: c.purpose });
    assert.equal(r.status, 201, `${c.name}: ${r.text}`);
    assert.equal(r.body.mime_type, c.mime, c.name);
    assert.equal(r.body.width, c.w ?? null, c.name);
    assert.equal(r.body.height, c.h ?? null, c.name);
    assert.equal(r.body.duration_s, c.dur ?? null, c.name);
    const stored = readFileSync(objPath(r.body.sha256));
    assert.equal(sha256(stored), r.body.sha256);
    assert.equal(stored.length, r.body.size);
    if (!c.w) assert.deepEqual(stored, c.data, `${c.name} stored as sent`);
    else assert.deepEqual(await content(r.body), stored);
  }
});

test('bad files are refused with the right status and code', async () => {
  const docx = ooxml('word', 'document.xml');
  const cases = [
    [readFileSync('/bin/true'), 'cat.jpg', {}, 415],
    [readFileSync('/bin/true'), 'cat.jpg', { type: 'image/jpeg' }, 415],
    [Buffer.from('<!DOCTYPE html><html><body><script>alert(1)</script></body></html>\n'), 'x.jpg', { type: 'image/jpeg' }, 415],
    [Buffer.from('<html><body><script>alert(1)</script></body></html>\n'), 'x.txt', { purpose: 'document' }, 415],
    [Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><script>alert(1)</script></svg>\n'),
      'x.svg', {}, 415],
    [Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>\n'), 'x.png', { type: 'image/png' }, 415],
    [img.jpg.subarray(0, Math.floor(img.jpg.length * 0.6)), 'cut.jpg', {}, 422, 'INVALID_FORMAT'],
    [img.png.subarray(0, Math.floor(img.png.length * 0.6)), 'cut.png', {}, 422, 'INVALID_FORMAT'],
    [pngClaiming(50000, 50000, 50001 * 4), 'huge.png', {}, 422, 'TOO_LARGE'],
    // a zip bomb that libmagic calls a Word document: 20 MiB of zeros in 20 KB
    [ooxml('word', 'document.xml', [{ name: 'word/media/zeros.bin', data: Buffer.alloc(20 * 1024 * 1024) }]), 'report.docx', {},
      422, 'ZIP_BOMB'],
    // entries each under the ratio floor, declaring 1.1 GiB in all
    [ooxml('word', 'document.xml', Array.from({ length: 1100 }, (_, i) => ({ name: `word/p${i}.xml`, data: 'x', usize: 1048576 }))),
      'many.docx', {}, 422, 'ZIP_BOMB'],
    [ooxml('word', 'document.xml', Array.from({ length: 10001 }, (_, i) => ({ name: `word/e${i}`, data: '' }))), 'entries.docx', {},
      422, 'ZIP_BOMB'],
    // libmagic reads the start and calls it Word; the end is cut off
    [docx.subarray(0, docx.length - 30), 'cut.docx', {}, 422, 'INVALID_FORMAT'],
    [img.anim, 'moving.webp', {}, 422, 'ANIMATED'],
    [img.gif, 'old.gif', {}, 415],
    [Buffer.alloc(0), 'empty.jpg', {}, 422, 'EMPTY'],
    [Buffer.concat([img.png, Buffer.alloc(5 * 1024 * 1024)]), 'big.png', {}, 413],
    [amr(16 * 1024 * 1024 / 32), 'long.amr', {}, 413],
  ];
  for (const [data, name, opts, status, fieldCode] of cases) {
    const r = await upload(data, name, opts);
    const code = { 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 422: 'VALIDATION_ERROR' }[status];
    const e = assertEnvelope(assert, r, status, code);
    if (fieldCode) {
      assert.equal(e.errors?.[0]?.field, 'file', `${name}: ${r.text}`);
      assert.equal(e.errors[0].code, fieldCode, `${name}: ${r.text}`);
    }
    assert.ok(!existsSync(objPath(sha256(data))), `${name} not stored`);
  }
});

test('polyglots are stored re-encoded: what followed the image is gone', async () => {
  const html = Buffer.from('<html><body><script>alert("polyglot")</script></body></html>');
  const docx = ooxml('word', 'document.xml');
  for (const [data, name, mime] of [[Buffer.concat([img.png, html]), 'p1.png', 'image/png'],
    [Buffer.concat([img.png, docx]), 'p2.png', 'image/png'], [Buffer.concat([img.jpg, docx]), 'p3.jpg', 'image/jpeg']]) {
    const r = await upload(data, name);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.mime_type, mime);
    const stored = await content(r.body);
    assert.equal(stored.indexOf('<script'), -1, name);
    assert.equal(stored.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04])), -1, `${name}: no zip inside`);
    assert.equal(stored.indexOf('[Content_Types]'), -1, name);
  }
});

test('EXIF, GPS, XMP and comments are stripped; the orientation is applied; the same upload is the same bytes', async () => {
  // the upload carries them all
  assert.ok(jpegSegments(img.exif).some((s) => s.marker === 0xe1 && s.data.toString('latin1', 0, 4) === 'Exif'));
  const a = await upload(img.exif, 'gps.jpg');
  assert.equal(a.status, 201, a.text);
  // orientation 6 (rotate 90 degrees): the stored copy is upright
  assert.equal(a.body.width, 450);
  assert.equal(a.body.height, 600);
  const stored = await content(a.body);
  assertJpegClean(stored, 'stored copy');
  const info = jpegInfo(stored);
  assert.equal(info.width, 450);
  assert.equal(info.height, 600);
  assert.equal(info.components, 3);
  const b = await upload(img.exif, 'again.jpg');
  assert.equal(b.body.sha256, a.body.sha256, 're-encoding is deterministic');
  assert.notEqual(b.body.id, a.body.id);

  const t = await thumbnailOf(a.body);
  assert.match(t.thumbnail_url, new RegExp(`^/api/v1/media/${a.body.id}/thumbnail\\?exp=\\d+&sig=[A-Za-z0-9_-]{43}$`));
  const th = await get(t.thumbnail_url);
  assert.equal(th.status, 200);
  assert.equal(th.headers.get('content-type'), 'image/jpeg');
  assertJpegClean(th.bytes, 'thumbnail');
  const ti = jpegInfo(th.bytes);
  assert.deepEqual([ti.width, ti.height], [240, 320]);
});

test('CMYK and 16-bit images are stored as 8-bit sRGB; alpha is kept', async () => {
  for (const [data, name] of [[img.cmyk, 'cmyk.jpg'], [img.cmykIcc, 'cmyk-icc.jpg']]) {
    const r = await upload(data, name);
    assert.equal(r.status, 201, r.text);
    const s = await content(r.body);
    const i = jpegInfo(s);
    assert.equal(i.components, 3, `${name}: RGB`);
    assertJpegClean(s, name);
    assert.deepEqual([r.body.width, r.body.height], [600, 450]);
  }
  let r = await upload(img.png16, 'deep.png');
  assert.equal(r.status, 201, r.text);
  let p = pngInfo(await content(r.body));
  assert.equal(p.depth, 8);
  assert.equal(p.colour, 2, 'RGB');
  assert.deepEqual([p.width, p.height], [600, 450]);

  r = await upload(img.alpha, 'alpha.png');
  assert.equal(r.status, 201, r.text);
  p = pngInfo(await content(r.body));
  assert.equal(p.colour, 6, 'RGBA');
  assert.equal(p.depth, 8);
  for (const c of ['eXIf', 'tEXt', 'iTXt', 'zTXt', 'iCCP']) assert.ok(!p.chunks.includes(c), c);
  // a thumbnail with alpha is a PNG
  const t = await thumbnailOf(r.body);
  const th = await get(t.thumbnail_url);
  assert.equal(th.headers.get('content-type'), 'image/png');
  const tp = pngInfo(th.bytes);
  assert.deepEqual([tp.width, tp.height, tp.colour], [320, 240, 6]);
});

test('an animated WebP is kept animated as a sticker', async () => {
  const r = await upload(img.anim, 'wave.webp', { purpose: 'sticker' });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual([r.body.width, r.body.height], [64, 48]);
  const s = await content(r.body);
  assert.equal(s.toString('latin1', 8, 12), 'WEBP');
  assert.ok(s.indexOf('ANMF') > 0, 'frames kept');
  assert.ok(s.indexOf('ANIM') > 0);
  assert.equal(s.indexOf('EXIF'), -1);
  const t = await thumbnailOf(r.body);
  assert.equal((await get(t.thumbnail_url)).status, 200);
});

test('the thumbnail is served like the content: ETag, Range, 304; deleting releases it', async () => {
  const r = await upload(img.webpOwn, 'served.webp');
  assert.equal(r.status, 201, r.text);
  const before = await srv.request('GET', `${M}/${r.body.id}/thumbnail`, { token: admin });
  // made by the job: 404 until then, 200 after
  assert.ok(before.status === 404 || before.status === 200, before.text);
  const t = await thumbnailOf(r.body);
  const whole = await get(`${M}/${r.body.id}/thumbnail`, { authorization: `Bearer ${admin}` });
  assert.equal(whole.status, 200);
  assert.equal(whole.headers.get('content-type'), 'image/jpeg');
  assert.equal(whole.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(whole.headers.get('content-disposition'), 'inline; filename="served-thumbnail.jpg"');
  assert.match(whole.headers.get('cache-control'), /private/);
  const tsha = sha256(whole.bytes);
  assert.equal(whole.headers.get('etag'), `"${tsha}"`);
  assert.ok(existsSync(objPath(tsha)), 'stored content-addressed');
  let g = await get(t.thumbnail_url, { range: 'bytes=0-0' });
  assert.equal(g.status, 206);
  assert.equal(g.headers.get('content-range'), `bytes 0-0/${whole.bytes.length}`);
  assert.deepEqual(g.bytes, whole.bytes.subarray(0, 1));
  g = await get(t.thumbnail_url, { range: 'bytes=-100' });
  assert.equal(g.status, 206);
  assert.deepEqual(g.bytes, whole.bytes.subarray(whole.bytes.length - 100));
  g = await get(t.thumbnail_url, { range: `bytes=${whole.bytes.length}-` });
  assert.equal(g.status, 416);
  g = await get(t.thumbnail_url, { 'if-none-match': `"${tsha}"` });
  assert.equal(g.status, 304);
  // a signature for the thumbnail of another item is refused
  const other = await upload(pdf(), 'o.pdf');
  const q = new URL(t.thumbnail_url, srv.url).search;
  assertEnvelope(assert, await srv.request('GET', `${M}/${other.body.id}/thumbnail${q}`), 403, 'FORBIDDEN');
  // a document has no thumbnail, ever
  assert.equal(other.body.thumbnail_url, null);
  assertEnvelope(assert, await srv.request('GET', `${M}/${other.body.id}/thumbnail`, { token: admin }), 404, 'NOT_FOUND');

  // two items, one image: the thumbnail goes with the last of them
  const r2 = await upload(img.webpOwn, 'served-again.webp');
  assert.equal(r2.body.sha256, r.body.sha256);
  await thumbnailOf(r2.body);
  assert.equal((await srv.request('DELETE', `${M}/${r.body.id}`, { token: admin })).status, 204);
  assert.ok(existsSync(objPath(tsha)), 'still named by the other item');
  assert.equal((await get(`${M}/${r2.body.id}/thumbnail`, { authorization: `Bearer ${admin}` })).status, 200);
  assert.equal((await srv.request('DELETE', `${M}/${r2.body.id}`, { token: admin })).status, 204);
  assert.ok(!existsSync(objPath(tsha)), 'thumbnail removed');
  assert.ok(!existsSync(objPath(r.body.sha256)), 'image removed');
});

test('privacy erase removes a customer\'s image and its thumbnail', async () => {
  const r = await upload(img.pngOwn, 'mine.png', { customer: 777001 });
  assert.equal(r.status, 201, r.text);
  const t = await thumbnailOf(r.body);
  const tsha = sha256((await get(t.thumbnail_url)).bytes);
  assert.ok(existsSync(objPath(tsha)));
  const del = await srv.request('POST', '/api/v1/privacy/delete', { token: admin, json: { customer_id: 777001 } });
  assert.equal(del.status, 200, del.text);
  assert.equal(del.body.deleted.media, 1);
  assert.ok(!existsSync(objPath(r.body.sha256)), 'image removed');
  assert.ok(!existsSync(objPath(tsha)), 'thumbnail removed');
});

test('no libvips, GLib or libmagic warning reached the server output', () => {
  const bad = srv.output.split('\n').filter((l) => /VIPS-WARNING|VIPS-CRITICAL|\(process:\d+\)|GLib|libmagic|magic_/.test(l));
  assert.deepEqual(bad, []);
});
