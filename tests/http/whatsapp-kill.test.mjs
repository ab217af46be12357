// The whatsapp plugin's never-twice rule under kill -9 (the issue's
// acceptance): a worker is killed in the middle of a burst of 300 sends;
// every message still goes out exactly once, as the fake Graph API counts
// by the biz_opaque_callback_data each send carries.  A send whose answer
// died with its worker is adopted from Meta's status webhook; one whose
// request never left is sent by the job's next run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { startServer, TEST_PLUGINS, pgClient, withDb, databaseUrl, freshDir } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';
import { startGraph } from '../fakes/whatsapp.mjs';

const HOOK = '/api/v1/whatsapp/webhook';
const N = 300;
let srv, g, admin;

async function sql(text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), srv.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

before(async () => {
  g = await startGraph();
  // The job lease is 2 x timeout_ms + 10 s: the killed worker's jobs run
  // again 20 s later; a held send is released well within its timeout.
  srv = await startServer({ workers: 2, plugins: { ...TEST_PLUGINS, customers: {}, media: { dir: freshDir('media') },
    whatsapp: { access_token: g.accessToken, phone_number_id: g.phoneNumberId, waba_id: g.wabaId,
      app_secret: g.appSecret, verify_token: 'v', graph_api_url: g.url, timeout_ms: '5000',
      inflight_grace_s: '5', messages_per_minute: '0', spool_dir: freshDir('wa-spool') } } });
  admin = await srv.login();
  g.autoStatus = { url: srv.url + HOOK, statuses: ['sent'] };
});

after(async () => {
  await srv?.stop();
  await g?.stop();
});

test(`kill -9 a worker mid-burst of ${N} sends: each message is sent exactly once`, async () => {
  const from = `+1415${randomInt(1000000, 9999999)}`;
  const r = await g.deliver(srv.url + HOOK, g.inboundText({ from, text: 'send me everything' }));
  assert.equal(r.status, 200, r.text);
  const conv = await poll(async () => {
    const x = await sql('SELECT conversation_id FROM whatsapp_messages WHERE direction = $1', ['inbound']);
    return x[0]?.conversation_id;
  });
  // Graph answers a little late, so that sends are in flight when the
  // worker dies.
  g.delayAll = 15;
  // The burst: 8 clients at once.  A request whose connection the kill
  // cuts is sent again, as a client would (a second message, also sent
  // once): the database, not this list, says what was queued.
  let posted = 0;
  const queue = Array.from({ length: N }, (_, i) => i);
  const burst = Promise.all(Array.from({ length: 8 }, async () => {
    while (queue.length) {
      const i = queue.shift();
      for (;;) {
        let s;
        try {
          s = await srv.request('POST', '/api/v1/whatsapp/messages', { token: admin,
            json: { conversation_id: Number(conv), type: 'text', text: `message ${i}` } });
        } catch { continue; }
        assert.equal(s.status, 202, s.text);
        posted++;
        break;
      }
    }
  }));
  // Mid-burst, Graph stops answering: the sends in flight wait, their
  // jobs running.  A worker holding one dies; then Graph takes them all
  // (their answers go to a dead socket) and reports them by webhook.
  await poll(() => g.requests.length >= 30, { interval: 5 });
  g.hold();
  const running = await poll(async () => {
    const x = await sql("SELECT locked_by FROM jobs WHERE kind = 'whatsapp.send' AND status = 'running' "
      + 'ORDER BY id LIMIT 1');
    return x[0];
  }, { interval: 5 });
  const pid = Number(running.locked_by.split(':').pop());
  assert.ok(pid > 0, running.locked_by);
  process.kill(pid, 'SIGKILL');
  g.release();
  await burst;
  g.delayAll = 0;
  assert.equal(posted, N);
  const total = (await sql("SELECT count(*)::int AS n FROM whatsapp_messages WHERE direction = 'outbound'"))[0].n;
  assert.ok(total >= N, `${total} messages queued`);

  // Every message ends with Graph's id: sent once, or adopted.
  await poll(async () => {
    const [x] = await sql("SELECT count(*)::int AS n FROM whatsapp_messages WHERE direction = 'outbound' "
      + 'AND wa_message_id IS NOT NULL');
    return x.n === total;
  }, { timeout: 180000, interval: 500 });
  await g.idle();
  const perMessage = new Map();
  for (const m of g.messages.values()) {
    const k = m.biz_opaque_callback_data;
    perMessage.set(k, (perMessage.get(k) ?? 0) + 1);
  }
  const rows = await sql("SELECT id, wa_message_id FROM whatsapp_messages WHERE direction = 'outbound'");
  for (const row of rows) {
    assert.equal(perMessage.get(`sb:${row.id}`), 1,
      `message ${row.id} reached Graph ${perMessage.get(`sb:${row.id}`) ?? 0} times`);
    // The id Graph gave is the one kept.
    assert.equal(g.messages.get(row.wa_message_id)?.biz_opaque_callback_data, `sb:${row.id}`);
  }
  assert.equal(g.sends(from), total);
  // The kill hit sends in flight: their jobs lost the lease and ran
  // again (finding the message adopted, or sending it), and every send
  // job is finished now.
  await poll(async () => {
    const [x] = await sql("SELECT count(*)::int AS n FROM jobs WHERE kind = 'whatsapp.send' AND status <> 'done'");
    return x.n === 0;
  }, { timeout: 180000, interval: 500 });
  const [lost] = await sql("SELECT count(*)::int AS n FROM jobs WHERE kind = 'whatsapp.send' "
    + "AND last_error LIKE 'lease expired%'");
  assert.ok(lost.n >= 1, 'no send job was running on the killed worker');
  assert.equal(g.sends(from), total, 'a re-run sent something twice');
  // Kore restarted the worker; the server still serves.
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
});
