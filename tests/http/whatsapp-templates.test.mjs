// WhatsApp templates (API.md "WhatsApp"), black box against real PostgreSQL and
// the fake Graph API (tests/fakes/whatsapp.mjs): the sync walks every page of
// message_templates (250+ templates, 100 a page) and replaces the copy whole;
// GET lists the approved ones by default, ?status= and ?name= filter, keyset
// pages by cursor; a template removed at Graph goes with the next sync; a sync
// that fails (Graph unreachable, or refusing the token) keeps the previous copy;
// whatsapp.manage only on sync; 503 while unconfigured.  Then the check a
// template send passes (POST /api/v1/whatsapp/messages/template): unknown name,
// unknown language, not approved, wrong parameter counts -> 422 naming the
// field; the right parameters -> 202.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { startServer, TEST_PLUGINS, assertEnvelope, freshDir } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startGraph } from '../fakes/whatsapp.mjs';

const T = '/api/v1/whatsapp/templates';
const SYNC = `${T}/sync`;
const SEND = '/api/v1/whatsapp/messages/template';
const KIND = 'whatsapp.templates_sync';
let g, srv, admin, agent;

// 250 generated templates (every 10th PENDING, every 25th from the 7th
// REJECTED) and a few with every kind of placeholder.
function generated() {
  const out = [];
  for (let i = 0; i < 250; i++) {
    const status = i % 25 === 7 ? 'REJECTED' : i % 10 === 3 ? 'PENDING' : 'APPROVED';
    out.push({ name: `gen_${String(i).padStart(3, '0')}`, parameter_format: 'POSITIONAL', language: 'en_US',
      status, category: 'UTILITY', id: String(1e15 + i),
      components: [{ type: 'BODY', text: i % 2 ? `Hello {{1}}, number ${i}` : `Number ${i}` }] });
  }
  return out;
}

const SPECIAL = [
  { name: 'order_update', parameter_format: 'POSITIONAL', language: 'pt_BR', status: 'APPROVED',
    category: 'UTILITY', id: '771001', components: [{ type: 'BODY', text: 'Seu pedido {{1}} chega {{2}}.' }] },
  { name: 'shipping_rich', parameter_format: 'POSITIONAL', language: 'en_US', status: 'APPROVED',
    category: 'UTILITY', id: '771002', components: [
      { type: 'HEADER', format: 'TEXT', text: 'Order {{1}}' },
      { type: 'BODY', text: 'Hi {{1}}, order {{2}} ships {{3}}. Again: {{1}}.' },
      { type: 'FOOTER', text: 'Thanks' },
      { type: 'BUTTONS', buttons: [
        { type: 'QUICK_REPLY', text: 'Stop' },
        { type: 'URL', text: 'Track', url: 'https://track.example.org/{{1}}' },
        { type: 'URL', text: 'Help', url: 'https://help.example.org/' }] }] },
  { name: 'named_greeting', parameter_format: 'NAMED', language: 'en_US', status: 'APPROVED',
    category: 'MARKETING', id: '771003', components: [
      { type: 'BODY', text: 'Hello {{first_name}}, your code is {{code}} ({{first_name}}).' }] },
  { name: 'photo_offer', parameter_format: 'POSITIONAL', language: 'en_US', status: 'APPROVED',
    category: 'MARKETING', id: '771004', components: [
      { type: 'HEADER', format: 'IMAGE' }, { type: 'BODY', text: 'Look at this' }] },
  { name: 'paused_one', parameter_format: 'POSITIONAL', language: 'en_US', status: 'PAUSED',
    category: 'MARKETING', id: '771005', components: [{ type: 'BODY', text: 'Paused' }] },
];

let fullList;
const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;

function conf(fake, extra = {}) {
  return { access_token: fake.accessToken, phone_number_id: fake.phoneNumberId, waba_id: fake.wabaId,
    app_secret: fake.appSecret, verify_token: 'verify-token-for-tests', graph_api_url: fake.url,
    graph_api_version: 'v21.0', timeout_ms: '3000', template_sync_interval_s: '0', messages_per_minute: '0',
    spool_dir: freshDir('wa-spool'), ...extra };
}

before(async () => {
  g = await startGraph();
  fullList = [...g.templates, ...SPECIAL, ...generated()];
  g.templates = fullList.map((t) => ({ ...t }));
  // breaker_failures: the tests stop the fake on purpose.
  srv = await startServer({ host: { breaker_failures: '1000' }, plugins: { ...TEST_PLUGINS, customers: {},
    media: { dir: freshDir('media') }, whatsapp: conf(g) } });
  admin = await srv.login();
  const username = `agent-${Math.random().toString(16).slice(2, 10)}`;
  const password = 'user-password-0123456789';
  const r = await srv.request('POST', '/api/v1/users', { token: admin,
    json: { username, password, name: 'Agent', email: `${username}@example.org`, role: 'AGENT' } });
  assert.equal(r.status, 201, r.text);
  agent = await srv.login(username, password);
});

after(async () => {
  await srv?.stop();
  await g?.stop();
});

// Every page of a list query, following next_cursor.
async function all(query = '', token = admin) {
  const out = [];
  let cursor = null;
  let pages = 0;
  do {
    const sep = query ? '&' : '';
    const r = await srv.request('GET', `${T}?${query}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      { token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['data', 'next_cursor']);
    out.push(...r.body.data);
    cursor = r.body.next_cursor;
    assert.ok(++pages < 100, 'the cursor moves forward');
  } while (cursor);
  return out;
}

// A sync until pred() holds: a sync asked for while one is queued or
// running is that one, so this asks again until a sync that started after
// the change has run.
async function syncUntil(pred, what) {
  const ok = await poll(async () => {
    const r = await srv.request('POST', SYNC, { token: admin });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.body, { status: 'queued' });
    return pred();
  });
  assert.ok(ok, `no sync brought ${what}`);
}

const key = (t) => `${t.name}/${t.language}`;
const sorted = (list) => list.map(key).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const expectedKeys = (pred = () => true) => sorted(fullList.filter(pred));

async function lastJob() {
  const r = await srv.request('GET', `/api/v1/jobs?kind=${KIND}&limit=1`, { token: admin });
  assert.equal(r.status, 200, r.text);
  return r.body.data[0];
}

test('a sync walks every page (100 a page) and GET lists the approved templates by default', async () => {
  assert.ok(fullList.length > 250);
  await syncUntil(async () => (await all('status=all')).length === fullList.length, 'every template');
  const every = await all('status=all');
  assert.deepEqual(every.map(key), expectedKeys(), 'by name, then language, each once');

  // The job's own account of the walk: 3 pages of at most 100.
  const job = await poll(async () => { const j = await lastJob(); return j.status === 'done' ? j : null; });
  assert.equal(job.result.pages, Math.ceil(fullList.length / 100));
  assert.equal(job.result.templates, fullList.length);

  const approved = await all();
  assert.deepEqual(approved.map(key), expectedKeys((t) => t.status === 'APPROVED'));
  assert.ok(approved.every((t) => t.status === 'APPROVED'));

  const byKey = new Map(every.map((t) => [key(t), t]));
  const rich = byKey.get('shipping_rich/en_US');
  assert.deepEqual(Object.keys(rich).sort(),
    ['category', 'components', 'language', 'name', 'parameters', 'status', 'synced_at']);
  assert.deepEqual(rich.components, SPECIAL[1].components, 'components as Graph gave them');
  assert.deepEqual(rich.parameters, { body: 3, header: 1, buttons: 1 });
  assert.equal(rich.category, 'UTILITY');
  assert.match(rich.synced_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.deepEqual(byKey.get('order_update/en_US').parameters, { body: 2, header: 0, buttons: 0 });
  assert.deepEqual(byKey.get('order_update/pt_BR').parameters, { body: 2, header: 0, buttons: 0 });
  assert.deepEqual(byKey.get('named_greeting/en_US').parameters, { body: 2, header: 0, buttons: 0 });
  assert.deepEqual(byKey.get('photo_offer/en_US').parameters, { body: 0, header: 1, buttons: 0 });
  assert.deepEqual(byKey.get('hello_world/en_US').parameters, { body: 0, header: 0, buttons: 0 });
  assert.deepEqual(byKey.get('gen_001/en_US').parameters, { body: 1, header: 0, buttons: 0 });
  assert.equal(byKey.get('spring_sale/en_US').status, 'PENDING');
  assert.ok(!srv.output.includes(g.accessToken), 'the token is never logged');
});

test('?status=, ?name=, ?limit= and ?cursor= filter and page; bad values are 400', async () => {
  for (const st of ['PENDING', 'REJECTED', 'PAUSED']) {
    const list = await all(`status=${st}`);
    assert.deepEqual(list.map(key), expectedKeys((t) => t.status === st), st);
    assert.ok(list.length > 0, st);
  }
  assert.deepEqual((await all('status=DISABLED')), []);
  assert.deepEqual((await all('status=pending')).map(key), expectedKeys((t) => t.status === 'PENDING'),
    'the status is matched whatever its case');
  assert.deepEqual((await all('name=order_up')).map(key), ['order_update/en_US', 'order_update/pt_BR']);
  assert.deepEqual((await all('name=spring&status=all')).map(key), ['spring_sale/en_US']);
  assert.deepEqual((await all('name=spring')), [], 'PENDING is not listed by default');
  assert.deepEqual((await all('name=%25')), [], '% is a character, not a wildcard');

  // Small pages: complete, in order, no repeats.
  const seen = [];
  let cursor = null;
  do {
    const r = await srv.request('GET', `${T}?status=all&limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      { token: admin });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.data.length <= 7);
    seen.push(...r.body.data.map(key));
    cursor = r.body.next_cursor;
    if (cursor !== null) assert.equal(typeof cursor, 'string');
  } while (cursor);
  assert.deepEqual(seen, expectedKeys());

  let e = assertEnvelope(assert, await srv.request('GET', `${T}?status=BOGUS`, { token: admin }), 400,
    'VALIDATION_ERROR');
  assert.equal(e.errors[0].field, 'status');
  for (const q of ['limit=0', 'limit=201', 'limit=abc']) {
    e = assertEnvelope(assert, await srv.request('GET', `${T}?${q}`, { token: admin }), 400, 'VALIDATION_ERROR');
    assert.equal(e.errors[0].field, 'limit', q);
  }
  for (const c of ['!!!', 'gA', 'YWJjZ', 'x'.repeat(300)]) {
    e = assertEnvelope(assert, await srv.request('GET', `${T}?cursor=${encodeURIComponent(c)}`, { token: admin }),
      400, 'VALIDATION_ERROR');
    assert.equal(e.errors[0].field, 'cursor', c);
  }
  e = assertEnvelope(assert, await srv.request('GET', `${T}?name=${'n'.repeat(600)}`, { token: admin }), 400,
    'VALIDATION_ERROR');
  assert.equal(e.errors[0].field, 'name');
});

test('a template removed at Graph is gone after the next sync; a changed one is updated', async () => {
  g.templates = g.templates.filter((t) => t.name !== 'gen_001');
  g.templates.find((t) => t.name === 'gen_002').status = 'PAUSED';
  await syncUntil(async () => (await all('name=gen_001&status=all')).length === 0, 'the removal');
  assert.deepEqual((await all('name=gen_002&status=all')).map((t) => t.status), ['PAUSED']);
  assert.equal((await all('status=all')).length, fullList.length - 1);
  // Put them back for the tests that follow.
  g.templates = fullList.map((t) => ({ ...t }));
  await syncUntil(async () => (await all('status=all')).length === fullList.length, 'the templates back');
  assert.deepEqual((await all('name=gen_002&status=all')).map((t) => t.status), ['APPROVED']);
});

test('a sync that fails keeps the previous copy: Graph unreachable (retried), Graph refusing the token (failed)', async () => {
  const before = await all('status=all');
  assert.equal(before.length, fullList.length);
  // Graph refuses the token: the job fails with Graph's message, nothing changes.
  const token = g.accessToken;
  g.accessToken = 'EAAJBsomebodyelse';
  g.templates = [];
  await poll(async () => {
    const r = await srv.request('POST', SYNC, { token: admin });
    assert.equal(r.status, 202, r.text);
    const j = await lastJob();
    return j.status === 'dead' && /401/.test(j.last_error ?? '') ? j : null;
  });
  const dead = await lastJob();
  assert.match(dead.last_error, /Invalid OAuth access token/);
  assert.deepEqual(await all('status=all'), before, 'the copy is as it was');

  // Graph unreachable: retried later, nothing changes meanwhile.
  g.accessToken = token;
  await g.stop();
  try {
    await poll(async () => {
      const r = await srv.request('POST', SYNC, { token: admin });
      assert.equal(r.status, 202, r.text);
      const j = await lastJob();
      return j.status === 'queued' && /unreachable/.test(j.last_error ?? '') ? j : null;
    });
    assert.deepEqual(await all('status=all'), before, 'the copy is as it was');
  } finally {
    g.templates = fullList.map((t) => ({ ...t }));
    await g.start();
  }
  assert.ok(!srv.output.includes(token), 'the token is never logged');
});

test('whatsapp.read lists, whatsapp.manage syncs: an AGENT gets 403 on sync, nobody 401', async () => {
  const r = await srv.request('GET', T, { token: agent });
  assert.equal(r.status, 200, r.text);
  assertEnvelope(assert, await srv.request('POST', SYNC, { token: agent }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('POST', SYNC), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await srv.request('GET', T), 401, 'UNAUTHENTICATED');
});

async function kinds(server, token) {
  const r = await server.request('GET', '/api/v1/jobs/stats', { token });
  assert.equal(r.status, 200, r.text);
  return new Map(r.body.kinds.filter((k) => k.plugin === 'whatsapp').map((k) => [k.name, k]));
}

test('sync is 503 UNAVAILABLE while access_token or waba_id is unset; the periodic sync is there when asked for', async () => {
  const mine = await kinds(srv, admin);
  assert.ok(mine.has(KIND));
  assert.ok(!mine.has(`${KIND}_periodic`), 'template_sync_interval_s = 0: on demand only');
  const unconfigured = conf(g, { template_sync_interval_s: '900' });
  delete unconfigured.waba_id;
  const other = await startServer({ workers: 1, plugins: { ...TEST_PLUGINS, customers: {},
    media: { dir: freshDir('media') }, whatsapp: unconfigured } });
  try {
    const token = await other.login();
    assertEnvelope(assert, await other.request('POST', SYNC, { token }), 503, 'UNAVAILABLE');
    const r = await other.request('GET', T, { token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { data: [], next_cursor: null });
    assert.equal((await kinds(other, token)).get(`${KIND}_periodic`)?.interval_s, 900);
  } finally {
    await other.stop();
  }
});

// ---- the check of a template send ----

const send = (json) => srv.request('POST', SEND, { token: admin, json: { to: uniqPhone(), ...json } });
async function refused(json, field, code, message) {
  const e = assertEnvelope(assert, await send(json), 422, 'VALIDATION_ERROR');
  assert.equal(e.errors[0].field, field, JSON.stringify(e));
  assert.equal(e.errors[0].code, code, JSON.stringify(e));
  if (message) assert.match(e.errors[0].message, message);
  return e;
}

test('a template send: unknown name, unknown language, not approved -> 422 naming the field', async () => {
  await syncUntil(async () => (await all('status=all')).length === fullList.length, 'every template');
  await refused({ name: 'no_such_template', language: 'en_US' }, 'name', 'NOT_FOUND');
  await refused({ name: 'order_update', language: 'de_DE', components: [] }, 'language', 'NOT_FOUND',
    /en_US.*pt_BR/);
  await refused({ name: 'spring_sale', language: 'en_US' }, 'name', 'NOT_APPROVED', /PENDING/);
  await refused({ name: 'paused_one', language: 'en_US' }, 'name', 'NOT_APPROVED', /PAUSED/);
});

const text = (t) => ({ type: 'text', text: t });

test('a template send: the parameters must match the template, per component', async () => {
  await refused({ name: 'order_update', language: 'en_US', components: [{ type: 'body', parameters: [text('#1')] }] },
    'components', 'INVALID', /the body takes 2 parameters, got 1/);
  await refused({ name: 'order_update', language: 'en_US' }, 'components', 'INVALID', /the body takes 2 parameters, got 0/);
  await refused({ name: 'order_update', language: 'en_US', components: [{ type: 'body',
    parameters: [text('#1'), text('Friday'), text('extra')] }] }, 'components', 'INVALID', /got 3/);
  await refused({ name: 'order_update', language: 'en_US', components: [{ type: 'footer', parameters: [] }] },
    'components', 'INVALID', /header, body or button/);
  await refused({ name: 'order_update', language: 'en_US', components: [{ type: 'body',
    parameters: [text('#1'), { type: 'text', text: '' }] }] }, 'components', 'INVALID', /text/);
  await refused({ name: 'order_update', language: 'en_US', components: [{ type: 'body',
    parameters: [text('#1'), { type: 'sticker' }] }] }, 'components', 'INVALID', /type/);
  await refused({ name: 'order_update', language: 'en_US', components: [{ type: 'body', parameters: 'x' }] },
    'components', 'INVALID', /array/);
  await refused({ name: 'hello_world', language: 'en_US', components: [{ type: 'header', parameters: [text('x')] }] },
    'components', 'INVALID', /the header takes 0 parameters, got 1/);
  // The rich one: header 1, body 3 (one repeated), URL button 1 at index 1.
  const richBody = { type: 'body', parameters: [text('Ann'), text('#7'), text('today')] };
  const header = { type: 'HEADER', parameters: [text('#7')] };
  const urlButton = { type: 'button', sub_type: 'url', index: '1', parameters: [text('abc')] };
  await refused({ name: 'shipping_rich', language: 'en_US', components: [richBody, urlButton] },
    'components', 'INVALID', /the header takes 1 parameter, got 0/);
  await refused({ name: 'shipping_rich', language: 'en_US', components: [header, richBody] },
    'components', 'INVALID', /button 1 takes 1 parameter, got 0/);
  await refused({ name: 'shipping_rich', language: 'en_US', components: [header, richBody,
    { ...urlButton, index: 5 }] }, 'components', 'INVALID', /index/);
  await refused({ name: 'shipping_rich', language: 'en_US', components: [header, richBody, urlButton,
    { ...urlButton }] }, 'components', 'INVALID', /twice/);
  await refused({ name: 'photo_offer', language: 'en_US', components: [{ type: 'header',
    parameters: [text('not an image')] }] }, 'components', 'INVALID', /image/);

  // The right parameters go out: 202 queued.
  const ok = async (json) => {
    const r = await send(json);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.status, 'queued');
    assert.equal(r.body.type, 'template');
  };
  await ok({ name: 'order_update', language: 'en_US', components: [{ type: 'body',
    parameters: [text('#1234'), text('Friday')] }] });
  await ok({ name: 'order_update', language: 'pt_BR', components: [{ type: 'BODY',
    parameters: [text('#1234'), { type: 'date_time', date_time: { fallback_value: 'sexta' } }] }] });
  await ok({ name: 'hello_world', language: 'en_US' });
  await ok({ name: 'hello_world', language: 'en_US', components: [] });
  await ok({ name: 'shipping_rich', language: 'en_US', components: [header, richBody, urlButton,
    { type: 'button', sub_type: 'quick_reply', index: 0, parameters: [{ type: 'payload', payload: 'STOP' }] }] });
  await ok({ name: 'named_greeting', language: 'en_US', components: [{ type: 'body',
    parameters: [{ type: 'text', parameter_name: 'first_name', text: 'Ann' },
      { type: 'text', parameter_name: 'code', text: '42' }] }] });
  await ok({ name: 'photo_offer', language: 'en_US', components: [{ type: 'header',
    parameters: [{ type: 'image', image: { link: 'https://example.org/a.jpg' } }] }] });
});
