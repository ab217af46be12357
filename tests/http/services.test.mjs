// Services between plugins (ABI 1.3): svcx exports "svcx.rows" version 2;
// svcy imports it and calls it inside its own transaction; svcz wants
// version 3, svcm a name nobody exports and svcf exports under another
// plugin's name: each of those fails its own setup only, with a message
// that says why, while the host and the other plugins serve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, testPlugin, assertEnvelope, pgClient, withDb, databaseUrl } from './lib/harness.mjs';

let srv, admin, db;

before(async () => {
  // svcy is configured before svcx: the dependency orders their setup.
  srv = await startServer({ plugins: { example: {}, svcy: testPlugin('svcy'),
    svcx: testPlugin('svcx'), svcz: testPlugin('svcz'), svcm: testPlugin('svcm'),
    svcf: testPlugin('svcf') } });
  admin = await srv.login();
  db = await pgClient(withDb(databaseUrl(), srv.database));
});

after(async () => {
  await db?.end();
  await srv?.stop();
});

async function plugins() {
  const r = await srv.request('GET', '/api/v1/plugins', { token: admin });
  assert.equal(r.status, 200, r.text);
  return Object.fromEntries(r.body.data.map((p) => [p.name, p]));
}

async function labelsIn(table, label) {
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE label = $1`, [label]);
  return rows[0].n;
}

test('GET /api/v1/plugins shows exports and imports', async () => {
  const by = await plugins();
  assert.equal(by.svcx.state, 'ready');
  assert.deepEqual(by.svcx.services, { exports: [{ name: 'svcx.rows', version: 2 }], imports: [] });
  assert.equal(by.svcy.state, 'ready');
  assert.deepEqual(by.svcy.services, { exports: [], imports: [{ name: 'svcx.rows', min_version: 1 }] });
  // Every plugin has the key; the existing fields are still there.
  assert.deepEqual(by.example.services, { exports: [], imports: [] });
  for (const k of ['id', 'version', 'abi', 'state', 'routes', 'events', 'permissions', 'depends'])
    assert.ok(k in by.svcy, k);
});

test('a service too old for the importer fails the importer only, naming both versions', async () => {
  const by = await plugins();
  assert.equal(by.svcz.state, 'failed');
  assert.equal(by.svcz.error, 'service svcx.rows is version 2; svcz needs at least 3');
  assert.ok(srv.logs.some((l) => l.level === 'error' && l.component === 'plugin' &&
    /plugin svcz refused: service svcx\.rows is version 2; svcz needs at least 3/.test(l.msg)));
  const r = await srv.request('GET', '/api/v1/svcz/hello');
  assertEnvelope(assert, r, 404, 'NOT_FOUND');
});

test('a service nobody exports fails the importer only', async () => {
  const by = await plugins();
  assert.equal(by.svcm.state, 'failed');
  assert.match(by.svcm.error, /^service svcx\.missing is not exported by any plugin that is set up; svcm needs it/);
  const r = await srv.request('GET', '/api/v1/svcm/hello');
  assertEnvelope(assert, r, 404, 'NOT_FOUND');
});

test('exporting under another plugin\'s name is refused', async () => {
  const by = await plugins();
  assert.equal(by.svcf.state, 'failed');
  assert.match(by.svcf.error, /service svcx\.rows must be named after its exporter: "svcf\.<what>"/);
  // The real exporter keeps its service.
  assert.equal(by.svcx.services.exports.length, 1);
});

test('the host and the other plugins keep serving', async () => {
  assert.equal((await srv.request('GET', '/api/v1/example/hello')).status, 200);
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
  const by = await plugins();
  assert.equal(by.example.state, 'ready');
});

test('a service call runs on the caller\'s connection, inside its transaction: commit', async () => {
  const label = `commit-${Date.now()}`;
  const r = await srv.request('POST', '/api/v1/svcy/write', { json: { label } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.committed, true);
  assert.equal(r.body.service_version, 2);
  assert.equal(r.body.exporter.backend, r.body.own.backend, 'one database connection');
  assert.equal(r.body.exporter.txid, r.body.own.txid, 'one transaction');
  assert.equal(await labelsIn('svcx_rows', label), 1);
  assert.equal(await labelsIn('svcy_rows', label), 1);
});

test('a service call runs inside the caller\'s transaction: rollback takes both writes', async () => {
  const label = `rollback-${Date.now()}`;
  const r = await srv.request('POST', '/api/v1/svcy/write', { json: { label, rollback: true } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.committed, false);
  assert.equal(r.body.exporter.txid, r.body.own.txid);
  assert.ok(r.body.exporter.id > 0, 'the exporter did write');
  assert.equal(await labelsIn('svcx_rows', label), 0, 'the exporter\'s row went with the rollback');
  assert.equal(await labelsIn('svcy_rows', label), 0);
});

test('the consumer\'s body is validated like any route', async () => {
  const r = await srv.request('POST', '/api/v1/svcy/write', { json: { label: 7 } });
  assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
});
