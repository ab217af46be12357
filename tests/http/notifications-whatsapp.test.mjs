// The notifications plugin's WhatsApp rules (plugins/notifications/README.md
// "Rules"), black box against real PostgreSQL and the fake Graph API
// (tests/fakes/whatsapp.mjs): a customer's message in a conversation
// nobody has reaches every agent once (a replayed webhook adds nothing),
// one in an assigned conversation only its assignee; a send Graph refuses
// for good reaches its sender and nobody else; no notification holds the
// customer's number or the message's text; the preferences list the new
// types.  Nothing here waits on the clock: every wait polls observable
// state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomBytes } from 'node:crypto';
import { startServer, TEST_PLUGINS, freshDir } from './lib/harness.mjs';
import { poll, serverSql, makeStaff } from './lib/helpers.mjs';
import { startGraph } from '../fakes/whatsapp.mjs';

const NB = '/api/v1/notifications';
const HOOK = '/api/v1/whatsapp/webhook';
const PASSWORD = 'staff-password-0123456789';
const uniqPhone = () => `+1415${String(randomInt(1000000, 9999999))}`;

let srv, g;
const U = {};

const sql = (text, params) => serverSql(srv, text, params);

const makeUser = (adminToken, name, role) => makeStaff(srv, adminToken, name, role, PASSWORD);

before(async () => {
  g = await startGraph();
  srv = await startServer({
    host: { breaker_failures: '10000', jobs_poll_ms: '50' },
    plugins: { ...TEST_PLUGINS, concierge: {}, customers: {}, notifications: {}, media: { dir: freshDir('media') },
      whatsapp: { access_token: g.accessToken, phone_number_id: g.phoneNumberId, waba_id: g.wabaId,
        app_secret: g.appSecret, verify_token: 'v', graph_api_url: g.url, timeout_ms: '5000',
        messages_per_minute: '0', spool_dir: freshDir('wa-spool') } },
  });
  const adminToken = await srv.login();
  const me = await srv.request('GET', '/api/v1/users/me', { token: adminToken });
  U.admin = { id: me.body.id, token: adminToken };
  for (const n of ['a', 'b']) U[n] = await makeUser(adminToken, `agent-${n}`, 'AGENT');
  const role = await srv.request('POST', '/api/v1/roles', { token: adminToken,
    json: { name: 'VIEWER', permissions: ['system.read'] } });
  assert.equal(role.status, 201, role.text);
  U.viewer = await makeUser(adminToken, 'viewer', 'VIEWER');
});

after(async () => {
  await srv?.stop();
  await g?.stop();
});

// Every job due now has finished (a conversation's expiry, due in a day,
// does not count) and the webhook inbox is empty.
async function settle() {
  let rows;
  const ok = await poll(async () => {
    rows = await sql("SELECT kind, status FROM jobs WHERE (kind LIKE 'notifications.%' OR kind LIKE 'whatsapp.%') "
      + "AND status IN ('queued', 'running') AND run_at <= now() + interval '1 minute'");
    const [inbox] = await sql('SELECT count(*)::int AS n FROM whatsapp_inbox');
    return rows.length === 0 && inbox.n === 0;
  }, { interval: 50 });
  assert.ok(ok, `jobs still pending: ${JSON.stringify(rows)}`);
}

// Every inbox entry about WhatsApp message `id`, per user.
async function entriesAbout(id) {
  const rows = await sql("SELECT user_id, event, title, body, data FROM notifications_inbox "
    + "WHERE event LIKE 'whatsapp.message.%' AND (data->>'id')::bigint = $1 ORDER BY id", [id]);
  const by = {};
  for (const r of rows) (by[r.user_id] ??= []).push(r);
  return by;
}

async function inbound(from, text) {
  const payload = g.inboundText({ from, text, name: 'Private Person' });
  const wamid = payload.entry[0].changes[0].value.messages[0].id;
  const r = await g.deliver(srv.url + HOOK, payload);
  assert.equal(r.status, 200, r.text);
  const row = await poll(async () => (await sql('SELECT id, conversation_id FROM whatsapp_messages '
    + 'WHERE wa_message_id = $1', [wamid]))[0]);
  return { ...row, payload };
}

function assertNoSecrets(entries, ...secrets) {
  const text = JSON.stringify(entries);
  for (const s of secrets) assert.ok(!text.includes(s), `${s} in ${text}`);
}

test('preferences list the WhatsApp types, inbox and push on, email off', async () => {
  const r = await srv.request('GET', `${NB}/preferences`, { token: U.a.token });
  assert.equal(r.status, 200, r.text);
  for (const t of ['whatsapp.message.received', 'whatsapp.message.failed'])
    assert.deepEqual(r.body.preferences[t], { inbox: true, push: true, email: false }, t);
  for (const e of ['whatsapp.message.created', 'whatsapp.message.status'])
    assert.equal(r.body.preferences[e], undefined, e);
});

test('a customer message nobody has reaches every agent once; a replay adds nothing; no number or text', async () => {
  const from = uniqPhone();
  const text = `secret words ${randomBytes(4).toString('hex')}`;
  const m = await inbound(from, text);
  await poll(async () => Object.keys(await entriesAbout(Number(m.id))).length >= 3);
  await g.deliver(srv.url + HOOK, m.payload);
  await settle();
  const by = await entriesAbout(Number(m.id));
  assert.deepEqual(Object.keys(by).map(Number).sort((x, y) => x - y),
    [U.admin.id, U.a.id, U.b.id].sort((x, y) => x - y), JSON.stringify(by));
  for (const list of Object.values(by)) {
    assert.equal(list.length, 1);
    assert.equal(list[0].title, 'New WhatsApp message');
    assert.match(list[0].body, new RegExp(`^WhatsApp message #${m.id} from customer #\\d+ in conversation #${m.conversation_id}$`));
  }
  assertNoSecrets(by, from, from.slice(1), text, 'Private Person');
  // The agent sees it in the API too.
  const mine = await srv.request('GET', `${NB}?limit=200`, { token: U.a.token });
  assert.ok(mine.body.data.some((n) => n.event === 'whatsapp.message.created' && n.data.id === Number(m.id)));
});

test('a customer message in an assigned conversation reaches only the assignee', async () => {
  const from = uniqPhone();
  const first = await inbound(from, 'first');
  const asg = await srv.request('PATCH', `/api/v1/whatsapp/conversations/${first.conversation_id}/assign`,
    { token: U.admin.token, json: { user_id: U.b.id } });
  assert.equal(asg.status, 200, asg.text);
  const second = await inbound(from, 'second');
  assert.equal(second.conversation_id, first.conversation_id);
  await poll(async () => Object.keys(await entriesAbout(Number(second.id))).length >= 1);
  await settle();
  const by = await entriesAbout(Number(second.id));
  assert.deepEqual(Object.keys(by).map(Number), [U.b.id], JSON.stringify(by));
});

test('a send Graph refuses for good reaches its sender and nobody else', async () => {
  const from = uniqPhone();
  const conv = (await inbound(from, 'hi')).conversation_id;
  await settle();
  g.fail([{ code: 131026 }]);
  const r = await srv.request('POST', '/api/v1/whatsapp/messages', { token: U.a.token,
    json: { conversation_id: Number(conv), type: 'text', text: 'this will not arrive' } });
  assert.equal(r.status, 202, r.text);
  await poll(async () => Object.keys(await entriesAbout(r.body.id)).length >= 1);
  await settle();
  const by = await entriesAbout(r.body.id);
  assert.deepEqual(Object.keys(by).map(Number), [U.a.id], JSON.stringify(by));
  const [n] = by[U.a.id];
  assert.equal(n.title, `WhatsApp message #${r.body.id} failed`);
  assert.equal(n.data.status, 'failed');
  assert.equal(n.data.sent_by, U.a.id);
  assertNoSecrets(by, from, from.slice(1), 'this will not arrive');
});
