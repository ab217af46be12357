// Key rotation (src/rekey.c, src/seal.c): values sealed under data key A
// by the sealer test plugin (tests/plugins/sealer.c) are re-sealed under
// key B by the host.rekey job started through POST /api/v1/privacy/rekey
// (B current, A retired), and then open under B alone; blind indexes
// (SB_INDEX_KEY) keep finding them throughout.  A worker killed with
// SIGKILL in the middle of a batch loses that batch only: the step runs
// again after its lease and the rotation completes with every value
// re-sealed exactly once.  One running rotation at a time (409), start
// and end in the audit log, permission privacy.manage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, testPlugin, createDatabase, dropDatabase, pgClient,
  withDb, databaseUrl, assertEnvelope, DATA_KEY, ADMIN_PASSWORD } from './lib/harness.mjs';
import { poll, createUnprivilegedUser } from './lib/helpers.mjs';
import { execFile } from 'node:child_process';
import { hkdfSync, createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { ROOT } from './lib/harness.mjs';

const execFileP = promisify(execFile);

const KEY_B = 'rotated-data-key-fedcba9876543210fedcba9876543210';

function plugins(sealer = {}) {
  return { sealer: testPlugin('sealer', sealer), audit: {} };
}

async function check(srv) {
  const r = await srv.request('GET', '/api/v1/sealer/check');
  assert.equal(r.status, 200, r.text);
  return r.body;
}

// The latest run; a request that fails (its keep-alive connection
// belonged to a worker that was killed) is tried again at the next poll.
async function latest(srv, token) {
  try {
    const r = await srv.request('GET', '/api/v1/privacy/rekey', { token });
    return r.status === 200 ? r.body : null;
  } catch { return null; }
}

async function waitRun(srv, token, pred, what) {
  let last;
  const ok = await poll(async () => { last = await latest(srv, token); return last && pred(last); },
    { interval: 100 });
  assert.ok(ok, `${what}: ${JSON.stringify(last)}`);
  return last;
}

async function sealUnderA(n, host = {}) {
  const database = await createDatabase();
  const srv = await startServer({ plugins: plugins(), database, host });
  const r = await srv.request('POST', '/api/v1/sealer/fill', { json: { n, prefix: 'person' } });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(await check(srv), { total: n, opened: n, current: n, indexed: n });
  await srv.stop({ keepDatabase: true });
  return database;
}

test('rotate A -> B through the route: every value opens under B alone, indexes unchanged', async () => {
  const N = 1500;
  const database = await sealUnderA(N);
  let srv;
  try {
    // B current, A retired: everything opens, nothing is under B yet.
    srv = await startServer({ plugins: plugins(), database, host: { rekey_batch: '200' },
      env: { SB_DATA_KEY: KEY_B, SB_DATA_KEYS_RETIRED: ` ${DATA_KEY} ,` } });
    const token = await srv.login();
    assert.deepEqual(await check(srv), { total: N, opened: N, current: 0, indexed: N });
    assertEnvelope(assert, await srv.request('GET', '/api/v1/privacy/rekey', { token }), 404, 'NOT_FOUND');

    // Not without privacy.manage.
    await createUnprivilegedUser(srv);
    const nobody = await srv.login('noperm', ADMIN_PASSWORD);
    assertEnvelope(assert, await srv.request('POST', '/api/v1/privacy/rekey', { token: nobody }),
      403, 'FORBIDDEN');
    assertEnvelope(assert, await srv.request('POST', '/api/v1/privacy/rekey'), 401, 'UNAUTHENTICATED');

    const started = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assert.equal(started.status, 202, started.text);
    assert.equal(started.body.status, 'running');
    assert.equal(started.body.requested_by, 'admin');
    assert.ok(Number.isInteger(started.body.id));

    const run = await waitRun(srv, token, (x) => x.status !== 'running', 'the rotation finished');
    assert.equal(run.status, 'done', JSON.stringify(run));
    assert.equal(run.id, started.body.id);
    assert.equal(run.resealed, N);
    assert.ok(run.finished_at);
    const sealer = run.plugins.find((x) => x.plugin === 'sealer');
    assert.deepEqual(sealer, { plugin: 'sealer', id: 'io.switchboard.test.sealer', resealed: N, done: true });
    // 200 a batch: at least N / 200 batches, one plugin.
    assert.ok(run.batches >= Math.ceil(N / 200), JSON.stringify(run));
    assert.deepEqual(await check(srv), { total: N, opened: N, current: N, indexed: N });

    // A second rotation finds nothing left to re-seal.
    const again = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assert.equal(again.status, 202, again.text);
    const run2 = await waitRun(srv, token, (x) => x.id === again.body.id && x.status !== 'running',
      'the second rotation finished');
    assert.equal(run2.status, 'done');
    assert.equal(run2.resealed, 0);

    // The audit log has both ends of the first run, by run id.
    for (const action of ['privacy.rekey.started', 'privacy.rekey.finished']) {
      const a = await srv.request('GET', `/api/v1/audit?action=${action}&limit=50`, { token });
      assert.equal(a.status, 200, a.text);
      const rows = a.body.data.filter((x) => x.details?.run_id === run.id);
      assert.equal(rows.length, 1, `${action}: ${a.text}`);
    }
    const v = await srv.request('GET', '/api/v1/audit/verify', { token });
    assert.equal(v.body.ok, true, v.text);
    await srv.stop({ keepDatabase: true });
    srv = null;

    // B alone: every value opens, and the blind index still finds it.
    srv = await startServer({ plugins: plugins(), database, env: { SB_DATA_KEY: KEY_B } });
    assert.deepEqual(await check(srv), { total: N, opened: N, current: N, indexed: N });
    const found = await srv.request('GET', '/api/v1/sealer/find?label=person-777');
    assert.deepEqual(found.body.data.map((x) => x.label), ['person-777']);
  } finally {
    await srv?.stop({ keepDatabase: true });
    await dropDatabase(database);
  }
});

test('one rotation at a time (409); a run whose job is dead no longer blocks', async () => {
  const srv = await startServer({ plugins: plugins() });
  const db = await pgClient(withDb(databaseUrl(), srv.database));
  try {
    const token = await srv.login();
    // A running run whose next step is queued far in the future.
    const { rows: [run] } = await db.query(`INSERT INTO rekey_runs (requested_by) VALUES ('test') RETURNING id`);
    const { rows: [job] } = await db.query(`INSERT INTO jobs (kind, payload, run_at, idempotency_key)
      VALUES ('host.rekey', jsonb_build_object('run', $1::bigint, 'step', 0), now() + interval '1 hour',
      'rekey:' || $1 || ':0') RETURNING id`, [run.id]);
    await db.query('UPDATE rekey_runs SET job_id = $2 WHERE id = $1', [run.id, job.id]);
    const r = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assertEnvelope(assert, r, 409, 'CONFLICT');
    const cur = await latest(srv, token);
    assert.equal(cur.id, Number(run.id));
    assert.equal(cur.status, 'running');

    // Its job dead-lettered: the run has failed, a new one starts.
    await db.query(`UPDATE jobs SET status = 'dead' WHERE id = $1`, [job.id]);
    const ok = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assert.equal(ok.status, 202, ok.text);
    const old = await db.query('SELECT status, error FROM rekey_runs WHERE id = $1', [run.id]);
    assert.equal(old.rows[0].status, 'failed');
    assert.match(old.rows[0].error, /no longer queued or running/);
    const done = await waitRun(srv, token, (x) => x.id === ok.body.id && x.status === 'done', 'the new run finished');
    assert.equal(done.resealed, 0);
  } finally {
    await db.end();
    await srv.stop();
  }
});

test('a worker killed mid-batch: the rotation completes after the lease, each value re-sealed once', async () => {
  const N = 3000;
  const BATCH = 100;
  const database = await sealUnderA(N);
  let srv, db;
  try {
    // Each batch takes at least 200 ms inside its transaction, so a step
    // is running most of the time; a 2 s lease brings a killed step back.
    srv = await startServer({ plugins: plugins({ rekey_delay_ms: '200' }), database, workers: 2,
      host: { rekey_batch: String(BATCH), rekey_lease_s: '2' },
      env: { SB_DATA_KEY: KEY_B, SB_DATA_KEYS_RETIRED: DATA_KEY } });
    db = await pgClient(withDb(databaseUrl(), database));
    const token = await srv.login();
    const started = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assert.equal(started.status, 202, started.text);
    await waitRun(srv, token, (x) => x.resealed > 0, 'some values were re-sealed');

    // Kill the worker running a step.  A step that finished between the
    // look and the kill is not a kill mid-batch: look again (the dead
    // worker cannot finish the step it holds, so a row still running
    // under its pid after the kill proves one).
    let killed = null;
    const got = await poll(async () => {
      const { rows } = await db.query(`SELECT id, runs, locked_by FROM jobs
        WHERE kind = 'host.rekey' AND status = 'running'`);
      if (rows.length !== 1) return false;
      const pid = Number(rows[0].locked_by.split(':').pop());
      process.kill(pid, 'SIGKILL');
      const after = await db.query('SELECT status, runs, locked_by FROM jobs WHERE id = $1', [rows[0].id]);
      const a = after.rows[0];
      if (a.runs === rows[0].runs && a.locked_by === rows[0].locked_by &&
          (a.status === 'running' || a.status === 'queued')) {
        killed = { id: rows[0].id, pid };
        return true;
      }
      return false;
    }, { interval: 20 });
    assert.ok(got && killed, 'killed a worker in the middle of a step');
    const mid = await db.query('SELECT resealed, status FROM rekey_runs WHERE id = $1', [started.body.id]);
    assert.equal(mid.rows[0].status, 'running');
    assert.ok(Number(mid.rows[0].resealed) < N, `killed before the end: ${mid.rows[0].resealed}`);

    const run = await waitRun(srv, token, (x) => x.status !== 'running', 'the rotation finished');
    assert.equal(run.status, 'done', JSON.stringify(run));
    // Every value once: the killed batch was not counted, then redone.
    assert.equal(run.resealed, N);
    assert.deepEqual(run.plugins.find((x) => x.plugin === 'sealer').resealed, N);
    const j = await db.query('SELECT status, attempts, last_error FROM jobs WHERE id = $1', [killed.id]);
    assert.equal(j.rows[0].status, 'done');
    assert.equal(j.rows[0].attempts, 2, JSON.stringify(j.rows[0]));
    assert.match(j.rows[0].last_error, /lease expired/);
    assert.deepEqual(await check(srv), { total: N, opened: N, current: N, indexed: N });
    await db.end();
    db = null;
    await srv.stop({ keepDatabase: true });
    srv = null;

    srv = await startServer({ plugins: plugins(), database, env: { SB_DATA_KEY: KEY_B } });
    assert.deepEqual(await check(srv), { total: N, opened: N, current: N, indexed: N });
  } finally {
    await db?.end();
    await srv?.stop({ keepDatabase: true });
    await dropDatabase(database);
  }
});

test('make rotate-keys starts a rotation through the database and prints progress until done', async () => {
  const N = 400;
  const database = await sealUnderA(N);
  let srv;
  try {
    srv = await startServer({ plugins: plugins(), database, host: { rekey_batch: '100' },
      env: { SB_DATA_KEY: KEY_B, SB_DATA_KEYS_RETIRED: DATA_KEY } });
    const { stdout } = await execFileP('make', ['-s', 'rotate-keys'],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: srv.dbUrl } }).catch((e) => {
      throw new Error(`make rotate-keys failed: ${e.stdout}${e.stderr}`);
    });
    assert.match(stdout, /run \d+ started/);
    assert.match(stdout, new RegExp(`done: ${N} re-sealed in \\d+ batches; sealer=${N} done`));
    assert.deepEqual(await check(srv), { total: N, opened: N, current: N, indexed: N });
    const token = await srv.login();
    const run = await latest(srv, token);
    assert.equal(run.status, 'done');
    assert.match(run.requested_by, /^make rotate-keys/);
    // While one runs, a second is refused (a run held by a far-future job).
    const db = await pgClient(srv.dbUrl);
    try {
      const { rows: [r] } = await db.query(`INSERT INTO rekey_runs (requested_by) VALUES ('t') RETURNING id`);
      const { rows: [j] } = await db.query(`INSERT INTO jobs (kind, run_at) VALUES ('host.rekey',
        now() + interval '1 hour') RETURNING id`);
      await db.query('UPDATE rekey_runs SET job_id = $2 WHERE id = $1', [r.id, j.id]);
    } finally { await db.end(); }
    await assert.rejects(execFileP('make', ['-s', 'rotate-keys'],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: srv.dbUrl } }),
    (e) => /a key rotation is already running/.test(e.stderr));
  } finally {
    await srv?.stop({ keepDatabase: true });
    await dropDatabase(database);
  }
});

// The format, written independently of src/seal.c: the key of a plugin is
// HKDF-SHA256(data key, "switchboard-seal-v1", plugin id); a value is
// AES-256-GCM, stored as v1.<b64url(nonce|ct|tag)> (ABI 1.1) or
// v2.<kid>.<same> with kid = b64url(HMAC-SHA256(data key, label)[0..6]).
const pluginKey = (key, id) => Buffer.from(hkdfSync('sha256', key, 'switchboard-seal-v1', id, 32));
const kid = (key) => createHmac('sha256', key).update('switchboard-data-key-id-v1').digest()
  .subarray(0, 6).toString('base64url');
function sealV1(key, id, plain) {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', pluginKey(key, id), nonce);
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return 'v1.' + Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64url');
}
function openV2(key, id, sealed) {
  const m = /^v2\.([A-Za-z0-9_-]{8})\.([A-Za-z0-9_-]+)$/.exec(sealed);
  assert.ok(m, sealed);
  assert.equal(m[1], kid(key));
  const raw = Buffer.from(m[2], 'base64url');
  const d = createDecipheriv('aes-256-gcm', pluginKey(key, id), raw.subarray(0, 12));
  d.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString();
}

test('calls and notifications re-seal their v1 values (meeting tokens, FCM token) under B', async () => {
  const srv = await startServer({ plugins: { concierge: {}, calls: {}, notifications: {} },
    env: { SB_DATA_KEY: KEY_B, SB_DATA_KEYS_RETIRED: DATA_KEY } });
  const db = await pgClient(srv.dbUrl);
  try {
    const token = await srv.login();
    const { rows: [q] } = await db.query(`INSERT INTO concierge_queries (donor, donor_id)
      VALUES ('D', 'donor-1') RETURNING id`);
    const CALLS = 'io.switchboard.calls';
    const NOTIF = 'io.switchboard.notifications';
    const { rows: [s] } = await db.query(`INSERT INTO calls_sessions (query_id, admin_id, donor_id,
      room_name, room_url, mode, expires_at, admin_token, donor_token)
      VALUES ($1, 1, 'donor-1', 'room-1', 'https://x.daily.co/room-1', 'VIDEO', now() + interval '1 hour',
      $2, $3) RETURNING id`, [q.id, sealV1(DATA_KEY, CALLS, 'admin-meeting-token'),
      sealV1(DATA_KEY, CALLS, 'donor-meeting-token')]);
    await db.query(`UPDATE notifications_fcm_auth SET access_token = $1, account = 'sa@x',
      expires_at = now() + interval '1 hour' WHERE id = 1`, [sealV1(DATA_KEY, NOTIF, 'ya29.access')]);

    const started = await srv.request('POST', '/api/v1/privacy/rekey', { token });
    assert.equal(started.status, 202, started.text);
    const run = await waitRun(srv, token, (x) => x.status !== 'running', 'the rotation finished');
    assert.equal(run.status, 'done', JSON.stringify(run));
    const by = Object.fromEntries(run.plugins.map((x) => [x.plugin, x]));
    assert.deepEqual(by.calls, { plugin: 'calls', id: CALLS, resealed: 2, done: true });
    assert.deepEqual(by.notifications, { plugin: 'notifications', id: NOTIF, resealed: 1, done: true });
    assert.equal(run.resealed, 3);

    const { rows: [cs] } = await db.query('SELECT admin_token, donor_token FROM calls_sessions WHERE id = $1', [s.id]);
    assert.equal(openV2(KEY_B, CALLS, cs.admin_token), 'admin-meeting-token');
    assert.equal(openV2(KEY_B, CALLS, cs.donor_token), 'donor-meeting-token');
    const { rows: [fa] } = await db.query('SELECT access_token FROM notifications_fcm_auth WHERE id = 1');
    assert.equal(openV2(KEY_B, NOTIF, fa.access_token), 'ya29.access');
  } finally {
    await db.end();
    await srv.stop();
  }
});

test('a retired key shorter than 32 characters refuses to start, saying which', async () => {
  const srv = await startServer({ plugins: plugins(), expectFailure: true,
    env: { SB_DATA_KEYS_RETIRED: `${KEY_B},short` } });
  assert.match(srv.output, /SB_DATA_KEYS_RETIRED: key 2 has 5 characters/);
  await srv.stop();
});
