// The database: a PostgreSQL restart is survived without restarting
// Switchboard (503 while it is down, /readyz says why, every worker
// reconnects by itself), and migrations are applied once, recorded with
// their SHA-256 and refused when an applied file changed.
//
// This file stops and starts the suite's shared PostgreSQL cluster
// (scripts/pg.sh with the caller's SB_VAR); it always starts it again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startServer, dropDatabase, assertEnvelope, testPlugin, pgClient, withDb, databaseUrl, ROOT, BUILD,
} from './lib/harness.mjs';
import { pgCtl, poll, workerConnections } from './lib/helpers.mjs';

const WORKERS = 2;
let tmp, plugins, database, srv;
const live = new Set();	// servers to stop in after()

async function start(opts) {
  const s = await startServer({ plugins, workers: WORKERS, ...opts });
  live.add(s);
  return s;
}

async function stop(s, opts) {
  live.delete(s);
  await s.stop(opts);
}

async function query(sql, params = []) {
  const c = await pgClient(withDb(databaseUrl(), database));
  try { return (await c.query(sql, params)).rows; } finally { await c.end(); }
}

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

before(async () => {
  mkdirSync(join(BUILD, 'test-run'), { recursive: true });
  tmp = mkdtempSync(join(BUILD, 'test-run', 'migrations-'));
  // probe resolves "probe_migrations" against its source_dir: a copy we
  // may edit.
  cpSync(join(ROOT, 'tests/plugins/probe_migrations'), join(tmp, 'probe_migrations'), { recursive: true });
  cpSync(join(ROOT, 'migrations'), join(tmp, 'host_migrations'), { recursive: true });
  plugins = { example: {}, probe: testPlugin('probe', { source_dir: tmp }) };
  srv = await start();
  database = srv.database;
});

after(async () => {
  await pgCtl('start');	// whatever happened above
  for (const s of [...live]) await stop(s, { keepDatabase: true }).catch(() => {});
  // Every server of this file shares one database.
  if (database) await dropDatabase(database).catch(() => {});
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('a database-touching request works', async () => {
  const r = await srv.request('GET', '/api/v1/probe/db');
  assert.equal(r.status, 200, r.text);
  assert.ok(Number.isInteger(r.body.backend), r.text);
  assert.match(r.body.now, /Z$/);
  assert.equal((await srv.request('GET', '/readyz')).status, 200);
});

test('PostgreSQL going away: 503s and /readyz says why; back without a restart, on every worker', async () => {
  const token = await srv.login();
  const pidsBefore = srv.logs.filter((l) => l.worker !== undefined).map((l) => l.pid);
  // A connection to each worker, so every worker is seen to go through
  // the outage and to come back.
  const w = await workerConnections(srv, WORKERS);
  const on = (pid, method, path, { headers = {}, json } = {}) => w.request(pid, { method, path,
    headers: json === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: json === undefined ? undefined : JSON.stringify(json) }).then((r) =>
    ({ ...r, headers: { get: (k) => r.headers[k.toLowerCase()] ?? null } }));
  let stopped = false;
  try {
    try {
      await pgCtl('stop');
      stopped = true;

      for (const pid of w.pids) {
        const ready = await on(pid, 'GET', '/readyz');
        const e = assertEnvelope(assert, ready, 503, 'UNAVAILABLE');
        const db = e.errors.find((x) => x.field === 'database');
        assert.ok(db, JSON.stringify(e.errors));
        assert.equal(db.code, 'UNAVAILABLE');
        assert.equal(typeof db.message, 'string');

        assertEnvelope(assert, await on(pid, 'GET', '/api/v1/probe/db'), 503, 'UNAVAILABLE');
        // Authentication reads the user: unavailable, not "unauthenticated".
        assertEnvelope(assert, await on(pid, 'POST', '/api/v1/example/notes',
          { headers: { authorization: `Bearer ${token}` }, json: { text: 'while down' } }), 503, 'UNAVAILABLE');
        // Liveness does not depend on the database.
        assert.equal((await on(pid, 'GET', '/healthz')).status, 200);
      }
      assert.equal(srv.exited, null, 'the server is still running');
    } finally {
      await pgCtl('start');
    }
    assert.ok(stopped);

    // Back without restarting Switchboard, on every worker: each has its
    // own connection, so the distinct backend pids count the workers.
    // Waited for (the reconnect is the server's business), not timed.
    const backends = new Set();
    for (const pid of w.pids) {
      let db;
      const back = await poll(async () => {
        db = await on(pid, 'GET', '/api/v1/probe/db');
        return db.status === 200 && (await on(pid, 'GET', '/readyz')).status === 200;
      }, { interval: 250 });
      assert.ok(back, `worker ${pid} not back:\n${srv.output.split('\n').slice(-20).join('\n')}`);
      backends.add(db.body.backend);
    }
    assert.equal(backends.size, WORKERS, `backends ${[...backends]}`);
  } finally { w.close(); }

  // Writes work again too, and nothing was restarted.
  const note = await srv.request('POST', '/api/v1/example/notes', { token, json: { text: 'after' } });
  assert.equal(note.status, 201, note.text);
  assert.equal(srv.exited, null);
  const pidsAfter = srv.logs.filter((l) => l.worker !== undefined).map((l) => l.pid);
  assert.deepEqual([...new Set(pidsAfter)].sort(), [...new Set(pidsBefore)].sort(), 'same worker processes');
});

test('applied migrations are recorded with their SHA-256', async () => {
  const rows = await query('SELECT scope, version, name, checksum FROM schema_migrations ORDER BY scope, version');
  const by = Object.fromEntries(rows.map((r) => [`${r.scope}/${r.name}`, r]));
  assert.ok(by['host/001_identity.sql'], JSON.stringify(rows));
  assert.ok(by['probe/001_probe.sql'], JSON.stringify(rows));
  assert.ok(rows.some((r) => r.scope === 'example'), JSON.stringify(rows));
  for (const r of rows) assert.match(r.checksum, /^[0-9a-f]{64}$/, `${r.scope}/${r.name}`);
  assert.equal(by['host/001_identity.sql'].version, '001');
  assert.equal(by['host/001_identity.sql'].checksum, sha256(join(ROOT, 'migrations/001_identity.sql')));
  assert.equal(by['probe/001_probe.sql'].checksum, sha256(join(tmp, 'probe_migrations/001_probe.sql')));
  assert.ok(srv.logs.some((l) => l.component === 'migrate' && /applied probe\/001_probe\.sql/.test(l.msg)));
});

test('a second server on the same database applies nothing new and starts', async () => {
  const before = await query('SELECT scope, version, checksum, applied_at FROM schema_migrations ORDER BY 1, 2');
  await stop(srv, { keepDatabase: true });
  const s = await start({ database });
  try {
    assert.deepEqual(s.logs.filter((l) => l.component === 'migrate').map((l) => l.msg), [],
      'no migration applied or refused');
    assert.ok(!s.logs.some((l) => l.component === 'auth' && /created the first super-admin/.test(l.msg)));
    assert.deepEqual(await query('SELECT scope, version, checksum, applied_at FROM schema_migrations ORDER BY 1, 2'), before);
    assert.equal((await s.request('GET', '/api/v1/probe/db')).status, 200);
    assert.equal((await s.request('GET', '/readyz')).status, 200);
    await s.login();
  } finally { await stop(s, { keepDatabase: true }); }
});

test('a plugin migration changed after it was applied fails that plugin, not the host', async () => {
  const file = join(tmp, 'probe_migrations/001_probe.sql');
  const recorded = (await query("SELECT checksum FROM schema_migrations WHERE scope = 'probe'"))[0].checksum;
  appendFileSync(file, '\n-- an edit after the fact\n');
  assert.notEqual(sha256(file), recorded);

  const s = await start({ database });
  try {
    const line = s.logs.find((l) => l.component === 'migrate' && l.level === 'error');
    assert.ok(line, s.output);
    assert.match(line.msg, /probe/);
    assert.match(line.msg, /001_probe\.sql was changed after it was applied/);

    const token = await s.login();
    const list = await s.request('GET', '/api/v1/plugins', { token });
    const probe = list.body.data.find((p) => p.name === 'probe');
    assert.equal(probe.state, 'failed');
    assert.match(probe.error, /was changed after it was applied/);
    assert.equal(list.body.data.find((p) => p.name === 'example').state, 'ready');

    assertEnvelope(assert, await s.request('GET', '/api/v1/probe/db'), 503, 'UNAVAILABLE');
    const ready = assertEnvelope(assert, await s.request('GET', '/readyz'), 503, 'UNAVAILABLE');
    assert.deepEqual(ready.errors.map((x) => x.field), ['plugin:probe']);
    assert.equal((await s.request('GET', '/api/v1/example/hello')).status, 200);
    // History is not rewritten.
    assert.equal((await query("SELECT checksum FROM schema_migrations WHERE scope = 'probe'"))[0].checksum, recorded);
  } finally { await stop(s, { keepDatabase: true }); }

  // The same plugin marked required stops the host instead.
  const r = await start({ database, expectFailure: true,
    plugins: { ...plugins, probe: { ...plugins.probe, required: 'yes' } } });
  try {
    assert.notEqual(r.exited?.code ?? 0, 0, JSON.stringify(r.exited));
    assert.ok(r.logs.some((l) => l.component === 'migrate' && l.level === 'error' &&
      /was changed after it was applied/.test(l.msg)), r.output);
  } finally { await stop(r, { keepDatabase: true }); }
});

test('a host migration changed after it was applied is fatal', async () => {
  const dir = join(tmp, 'host_migrations');
  appendFileSync(join(dir, '001_identity.sql'), '\n-- an edit after the fact\n');
  const s = await start({ database, expectFailure: true, host: { migrations_dir: dir } });
  try {
    assert.ok(s.exited, 'the server did not start');
    assert.notEqual(s.exited.code, 0);
    const line = s.logs.find((l) => l.component === 'migrate' && l.level === 'error');
    assert.ok(line, s.output);
    assert.match(line.msg, /001_identity\.sql was changed after it was applied/);
    assert.ok(!s.logs.some((l) => l.worker !== undefined), 'no worker was started');
  } finally { await stop(s, { keepDatabase: true }); }
});
