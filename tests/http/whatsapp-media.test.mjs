// WhatsApp media (API.md "WhatsApp", "Media"), black box against real
// PostgreSQL and the fake Graph API (tests/fakes/whatsapp.mjs): an agent's
// PDF uploaded to Graph once and sent by its Graph id, again without a new
// upload; a PNG sent as a document; types and sizes WhatsApp refuses (422
// on media_id); an upload Graph answers 500 retried and the message sent
// once; an inbound image and an inbound PDF downloaded into the media
// plugin; an inbound media Graph no longer has noted on the message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomFillSync, createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { join } from 'node:path';
import { startServer, TEST_PLUGINS, freshDir, ROOT, readFileSync } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { pdf, pngChunk } from './lib/media.mjs';
import { startGraph } from '../fakes/whatsapp.mjs';

const FIX = join(ROOT, 'tests/fixtures/media');
const W = '/api/v1/whatsapp';
let srv, g, admin;

const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;
const digits = (s) => String(s).replace(/\D/g, '');
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// An RGB PNG of noise: it stays about w * h * 3 bytes when re-encoded.
function noisePng(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2;
  const row = 1 + w * 3;
  const raw = Buffer.alloc(row * h);
  for (let y = 0; y < h; y++) randomFillSync(raw, y * row + 1, w * 3);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw, { level: 1 })), pngChunk('IEND', Buffer.alloc(0))]);
}

before(async () => {
  g = await startGraph();
  srv = await startServer({ host: { breaker_failures: '1000' }, plugins: { ...TEST_PLUGINS, customers: {},
    // image_max above WhatsApp's 5 MB: the media plugin keeps an image
    // WhatsApp refuses to send.
    media: { dir: freshDir('media'), image_max: '20000000' },
    whatsapp: { access_token: g.accessToken, phone_number_id: g.phoneNumberId, waba_id: g.wabaId,
      app_secret: g.appSecret, verify_token: 'verify-token-for-tests', graph_api_url: g.url,
      messages_per_minute: '0', spool_dir: freshDir('wa-spool') } } });
  admin = await srv.login();
});

after(async () => {
  await srv?.stop();
  await g?.stop();
});

async function upload(data, name, fields = {}) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, String(v));
  fd.append('file', new Blob([data]), name);
  const res = await fetch(`${srv.url}/api/v1/media/upload`, { method: 'POST', body: fd,
    headers: { authorization: `Bearer ${admin}` } });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

async function content(id) {
  const res = await fetch(`${srv.url}/api/v1/media/${id}/content`, { headers: { authorization: `Bearer ${admin}` } });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

const hook = (payload) => g.deliver(`${srv.url}${W}/webhook`, payload);
const getMsg = (id) => srv.request('GET', `${W}/messages/${id}`, { token: admin });
const send = (json) => srv.request('POST', `${W}/messages`, { token: admin, json });

// A customer who wrote (the 24-hour window open) and their conversation.
async function conversation() {
  const from = uniqPhone();
  const r = await hook(g.inboundText({ from, text: 'Hello, can you send the receipt?' }));
  assert.equal(r.status, 200, r.text);
  const conv = await poll(async () => {
    const l = await srv.request('GET', `${W}/conversations?limit=200`, { token: admin });
    return l.body?.data?.find((c) => digits(c.wa_id) === digits(from)) ?? null;
  });
  assert.ok(conv, 'the inbound message made no conversation');
  return { from, conv };
}

async function untilMsg(id, pred) {
  const m = await poll(async () => {
    const r = await getMsg(id);
    return r.status === 200 && pred(r.body) ? r.body : null;
  });
  assert.ok(m, `message ${id} did not get there`);
  return m;
}

// The one message of a type in a conversation (inbound ones have no id in
// an answer to the webhook).
async function inboundOf(convId, type, pred = () => true) {
  const m = await poll(async () => {
    const r = await srv.request('GET', `${W}/conversations/${convId}/messages`, { token: admin });
    return r.body?.data?.find((x) => x.type === type && x.direction === 'inbound' && pred(x)) ?? null;
  });
  assert.ok(m, `no inbound ${type}`);
  return m;
}

const graphIdOf = (bytes) => [...g.media.values()].find((m) => m.bytes.equals(bytes))?.id;
const lastOfType = (type) => g.requests.filter((b) => b?.type === type).at(-1);

test('an agent\'s PDF is uploaded to Graph once and sent by its id, the second time without an upload', async () => {
  const { from, conv } = await conversation();
  const doc = pdf(`receipt ${randomInt(1e9)}`);
  const item = await upload(doc, 'receipt.pdf');
  assert.equal(item.mime_type, 'application/pdf');
  const uploads = g.uploads.length;

  const r = await send({ conversation_id: conv.id, type: 'document', media_id: item.id, caption: 'Your receipt' });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.status, 'queued');
  assert.equal(r.body.media_id, item.id);
  await untilMsg(r.body.id, (m) => m.status === 'sent');
  assert.equal(g.uploads.length, uploads + 1);
  const up = g.uploads.at(-1);
  assert.equal(up.messaging_product, 'whatsapp');
  assert.equal(up.type, 'application/pdf');
  assert.equal(up.filename, 'receipt.pdf');
  assert.equal(up.size, doc.length);
  const gid = graphIdOf(doc);
  assert.ok(gid, 'Graph did not get the bytes of the PDF');
  const sent = lastOfType('document');
  assert.equal(sent.document.id, gid);
  assert.equal(sent.document.caption, 'Your receipt');
  assert.equal(digits(sent.to), digits(from));

  const again = await send({ to: from, type: 'document', media_id: item.id });
  assert.equal(again.status, 202, again.text);
  await untilMsg(again.body.id, (m) => m.status === 'sent');
  assert.equal(g.uploads.length, uploads + 1, 'the same PDF was uploaded again');
  assert.equal(lastOfType('document').document.id, gid);
});

test('a PNG may go as a document; WhatsApp\'s types and sizes are checked before anything is queued', async () => {
  const { conv } = await conversation();
  const png = await upload(readFileSync(join(FIX, 'tiny.png')), 'tiny.png');
  assert.equal(png.mime_type, 'image/png');
  const r = await send({ conversation_id: conv.id, type: 'document', media_id: png.id });
  assert.equal(r.status, 202, r.text);
  await untilMsg(r.body.id, (m) => m.status === 'sent');
  assert.equal(g.uploads.at(-1).type, 'image/png');
  assert.equal(lastOfType('document').document.id, graphIdOf(await content(png.id)));

  const refused = async (json, code, pattern) => {
    const before = g.uploads.length;
    const x = await send({ conversation_id: conv.id, ...json });
    assert.equal(x.status, 422, x.text);
    assert.equal(x.body.status, 'error');
    assert.equal(x.body.code, 'VALIDATION_ERROR');
    assert.equal(x.body.errors[0].field, 'media_id');
    assert.equal(x.body.errors[0].code, code);
    if (pattern) assert.match(x.body.errors[0].message, pattern);
    assert.equal(g.uploads.length, before);
  };
  // WebP is a sticker on WhatsApp, never an image; a PDF is no image.
  const webp = await upload(readFileSync(join(FIX, 'tiny.webp')), 'tiny.webp');
  await refused({ type: 'image', media_id: webp.id }, 'UNSUPPORTED_TYPE', /image\/webp/);
  const doc = await upload(pdf('not an image'), 'x.pdf');
  await refused({ type: 'image', media_id: doc.id }, 'UNSUPPORTED_TYPE', /JPEG or PNG/);
  await refused({ type: 'video', media_id: doc.id }, 'UNSUPPORTED_TYPE');
  // An image over WhatsApp's 5 MB (the media plugin here keeps up to 20 MB).
  const big = await upload(noisePng(1400, 1400), 'big.png');
  assert.ok(big.size > 5 * 1024 * 1024, `the test image has only ${big.size} bytes`);
  await refused({ type: 'image', media_id: big.id }, 'TOO_LARGE', /5 MB/);
  await refused({ type: 'document', media_id: 987654321 }, 'NOT_FOUND');
  // An executable never becomes a media item to attach.
  const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(120)]);
  const fd = new FormData();
  fd.append('file', new Blob([elf]), 'setup.exe');
  const res = await fetch(`${srv.url}/api/v1/media/upload`, { method: 'POST', body: fd,
    headers: { authorization: `Bearer ${admin}` } });
  assert.equal(res.status, 415);
});

test('an upload Graph answers 500 is tried again and the message sent once', async () => {
  const { from, conv } = await conversation();
  const doc = pdf(`retry ${randomInt(1e9)}`);
  const item = await upload(doc, 'statement.pdf');
  const uploads = g.uploads.length;
  const sends = g.sends(from);
  g.failUploads([{ status: 500, code: 1 }]);
  const r = await send({ conversation_id: conv.id, type: 'document', media_id: item.id });
  assert.equal(r.status, 202, r.text);
  const m = await untilMsg(r.body.id, (x) => x.status === 'sent' || x.status === 'failed');
  assert.equal(m.status, 'sent', JSON.stringify(m));
  assert.equal(g.uploads.length, uploads + 2);
  assert.equal(g.sends(from), sends + 1);
  assert.equal(lastOfType('document').document.id, graphIdOf(doc));
});

test('an inbound image is downloaded into the media plugin and named on the message', async () => {
  const { from, conv } = await conversation();
  const jpeg = readFileSync(join(FIX, 'tiny.jpg'));
  const mediaId = g.addMedia(jpeg, 'image/jpeg');
  const r = await hook(g.inboundImage({ from, mediaId, caption: 'the parcel' }));
  assert.equal(r.status, 200, r.text);
  const first = await inboundOf(conv.id, 'image');
  const m = await untilMsg(first.id, (x) => x.media_id);
  assert.equal(m.status, 'received');
  const item = await srv.request('GET', `/api/v1/media/${m.media_id}`, { token: admin });
  assert.equal(item.status, 200, item.text);
  assert.equal(item.body.mime_type, 'image/jpeg');
  assert.equal(item.body.purpose, 'image');
  assert.equal(item.body.filename, `whatsapp-${m.id}.jpg`);
  // Images are stored re-encoded (media-corpus.test.mjs): a JPEG still.
  const got = await content(m.media_id);
  assert.equal(got.subarray(0, 3).toString('hex'), 'ffd8ff');
  assert.equal(item.body.sha256, sha256(got));
});

test('an inbound PDF comes through byte for byte with its file name', async () => {
  const { from, conv } = await conversation();
  const doc = pdf(`inbound ${randomInt(1e9)}`);
  const mediaId = g.addMedia(doc, 'application/pdf');
  const md = g.media.get(mediaId);
  const wa = digits(from);
  const payload = g.envelope({ contacts: [{ profile: { name: 'Ada' }, wa_id: wa }], messages: [{ from: wa,
    id: `wamid.doc${randomInt(1e9)}`, timestamp: String(Math.floor(Date.now() / 1000)), type: 'document',
    document: { filename: 'bank-statement.pdf', mime_type: 'application/pdf', sha256: md.sha256, id: mediaId } }] });
  const r = await hook(payload);
  assert.equal(r.status, 200, r.text);
  const first = await inboundOf(conv.id, 'document');
  const m = await untilMsg(first.id, (x) => x.media_id);
  assert.deepEqual(await content(m.media_id), doc);
  const item = await srv.request('GET', `/api/v1/media/${m.media_id}`, { token: admin });
  assert.equal(item.body.filename, 'bank-statement.pdf');
  assert.equal(item.body.sha256, md.sha256);
});

test('an inbound image Graph no longer has leaves the message without media, saying why', async () => {
  const { from, conv } = await conversation();
  const mediaId = g.addMedia(readFileSync(join(FIX, 'tiny.jpg')), 'image/jpeg');
  const payload = g.inboundImage({ from, mediaId });
  g.media.delete(mediaId);
  const r = await hook(payload);
  assert.equal(r.status, 200, r.text);
  const first = await inboundOf(conv.id, 'image');
  const m = await untilMsg(first.id, (x) => x.media_error);
  assert.equal(m.media_id ?? null, null);
  assert.match(m.media_error, /no longer on WhatsApp/);
});
