// Retention (ABI 1.3, retention_add): the notifications plugin declares
// "inbox"; with inbox_retention_days = 1 and [host] retention_interval = 1
// the periodic host job "host.retention" deletes read inbox entries older
// than a day, keeps unread and young ones, and the audit log records the
// purge with its count and no data.  A retention value that is not a
// whole number of days fails that plugin's setup, not the host.
// Entries are aged with SQL; every wait polls observable state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TEST_PLUGINS, pgClient, withDb, databaseUrl } from './lib/harness.mjs';
import { poll } from './lib/helpers.mjs';

const PLUGINS = { ...TEST_PLUGINS, audit: {}, concierge: {} };
let srv, token;

async function sql(server, text, params = []) {
  const c = await pgClient(withDb(databaseUrl(), server.database));
  try { return (await c.query(text, params)).rows; } finally { await c.end(); }
}

// An inbox entry for the admin, created `age` ago, read `read` ago (or unread).
async function entry(server, title, age, read) {
  const rows = await sql(server, `INSERT INTO notifications_inbox
      (user_id, event, event_id, title, body, created_at, read_at)
    SELECT id, 'concierge.query.created', $1, $1, 'body', now() - $2::interval,
      CASE WHEN $3::interval IS NULL THEN NULL ELSE now() - $3::interval END
    FROM users WHERE username = 'admin' RETURNING id`, [title, age, read]);
  return String(rows[0].id);
}

before(async () => {
  srv = await startServer({ plugins: { ...PLUGINS, notifications: { inbox_retention_days: '1' } },
    host: { retention_interval: '1', jobs_retention_days: '2' } });
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

test('read entries older than the retention go; unread and young ones stay', async () => {
  const oldRead = await entry(srv, 'old-read', '3 days', '2 days');
  const oldRead2 = await entry(srv, 'old-read-2', '25 hours', '1 hour');
  const oldUnread = await entry(srv, 'old-unread', '30 days', null);
  const youngRead = await entry(srv, 'young-read', '23 hours', '1 hour');
  const youngUnread = await entry(srv, 'young-unread', '1 minute', null);

  const left = async () => (await sql(srv, 'SELECT id::text FROM notifications_inbox ORDER BY id'))
    .map((r) => r.id);
  const gone = await poll(async () => {
    const ids = await left();
    return !ids.includes(oldRead) && !ids.includes(oldRead2) ? ids : null;
  });
  assert.ok(gone, `old read entries still there: ${JSON.stringify(await left())}`);
  assert.deepEqual(gone, [oldUnread, youngRead, youngUnread]);

  // The API agrees: the admin's inbox shows what stayed.
  const r = await srv.request('GET', '/api/v1/notifications?limit=50', { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data.map((x) => String(x.id)).sort(), [oldUnread, youngRead, youngUnread].sort());
});

test('the purge is logged and audited with plugin, name and count, never the data', async () => {
  let recs = [];
  await poll(async () => {
    const r = await srv.request('GET', '/api/v1/audit?action=host.retention.purged&limit=50', { token });
    assert.equal(r.status, 200, r.text);
    recs = r.body.data;
    return recs.length > 0;
  });
  assert.ok(recs.length > 0, 'no audit record of the purge');
  const total = recs.reduce((n, x) => n + x.details.count, 0);
  assert.equal(total, 2);
  for (const x of recs) {
    assert.equal(x.actor_type, 'system');
    assert.equal(x.details.plugin, 'notifications');
    assert.equal(x.details.retention, 'inbox');
    assert.equal(x.details.days, 1);
    assert.ok(!JSON.stringify(x).includes('old-read'), 'no inbox data in the record');
  }
  assert.ok(srv.logs.some((l) => l.component === 'retention' && /notifications inbox: purged \d+ row/.test(l.msg)));
  // Declared by the host: no "not a key the plugin declares" warning.
  assert.ok(!srv.logs.some((l) => /inbox_retention_days is not a key/.test(l.msg ?? '')));
  const v = await srv.request('GET', '/api/v1/audit/verify', { token });
  assert.equal(v.body.ok, true, v.text);
});

test('the periodic job is host.retention and reports each purge in its result', async () => {
  const rows = await sql(srv, `SELECT result FROM jobs WHERE kind = 'host.retention' AND status = 'done'
    ORDER BY id`);
  assert.ok(rows.length >= 1, 'no host.retention job finished');
  for (const { result } of rows)
    assert.deepEqual(result.purged.map((x) => `${x.plugin}.${x.retention}`),
      ['notifications.inbox', 'host.jobs']);
  assert.equal(rows.reduce((n, { result }) => n + result.purged[0].count, 0), 2);
  const dead = await sql(srv, `SELECT count(*)::int AS n FROM jobs WHERE kind = 'host.retention' AND status = 'dead'`);
  assert.equal(dead[0].n, 0);
});

// The host's own retention: done jobs carry their events' data in their
// payloads (a donor's name, a message), so they are not kept for ever.
// Dead jobs wait for an operator and stay.
test('[host] jobs_retention_days: old done jobs go; young ones and dead ones stay', async () => {
  const job = async (status, finishedAgo) => String((await sql(srv, `INSERT INTO jobs
      (kind, payload, status, finished_at, attempts)
    VALUES ('retention.probe', '{"name": "someone"}', $1, now() - $2::interval, 1)
    RETURNING id`, [status, finishedAgo]))[0].id);
  const oldDone = await job('done', '3 days');
  const youngDone = await job('done', '1 day');
  const oldDead = await job('dead', '30 days');
  const left = async () => (await sql(srv,
    "SELECT id::text FROM jobs WHERE kind = 'retention.probe' ORDER BY id")).map((r) => r.id);
  const ids = await poll(async () => {
    const v = await left();
    return v.includes(oldDone) ? null : v;
  });
  assert.ok(ids, `the old done job is still there: ${JSON.stringify(await left())}`);
  assert.deepEqual(ids, [youngDone, oldDead]);
});

test('[host] jobs_retention_days must be a whole number of days', async () => {
  const s = await startServer({ plugins: PLUGINS, host: { jobs_retention_days: '-1' }, expectFailure: true });
  await s.stop();
  assert.match(s.output, /jobs_retention_days must be a whole number of days/);
});

test('a retention value that is not a whole number of days fails the plugin, not the host', async () => {
  for (const [conf, env, shown] of [
    [{ inbox_retention_days: 'abc' }, {}, '"abc"'],
    [{ inbox_retention_days: '-1' }, {}, '"-1"'],
    [{ inbox_retention_days: '1.5' }, {}, '"1.5"'],
    [{ inbox_retention_days: '7' }, { SB_NOTIFICATIONS_INBOX_RETENTION_DAYS: '-3' }, '"-3"'],
  ]) {
    const s = await startServer({ plugins: { ...PLUGINS, notifications: conf }, env });
    try {
      const r = await s.request('GET', '/api/v1/plugins', { token: await s.login() });
      assert.equal(r.status, 200, r.text);
      const n = r.body.data.find((p) => p.name === 'notifications');
      assert.equal(n.state, 'failed', JSON.stringify(n));
      assert.match(n.error, /\[plugin notifications\] inbox_retention_days must be a whole number of days/);
      assert.ok(n.error.includes(shown), n.error);
      assert.equal(r.body.data.find((p) => p.name === 'concierge').state, 'ready');
    } finally { await s.stop(); }
  }
});

test('[host] retention_interval must be a number of seconds', async () => {
  const s = await startServer({ plugins: PLUGINS, host: { retention_interval: '0' }, expectFailure: true });
  await s.stop();
  assert.match(s.output, /retention_interval must be a number of seconds/);
});
