// The event bus: an event published in one worker reaches the
// subscribers of every worker exactly once (the probe plugin records, per
// worker pid, what its subscription received).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, ADMIN_PASSWORD } from './lib/harness.mjs';
import { waitWorkerPids, workerPids, burst, poll, workerConnections } from './lib/helpers.mjs';

const servers = {};
before(async () => {
  servers[2] = await startServer({ workers: 2 });
  servers[3] = await startServer({ workers: 3 });
});
after(async () => {
  for (const s of Object.values(servers)) await s.stop();
});

// What the probe recorded for a token: [{pid, count}] sorted by pid.
async function received(srv, token) {
  const r = await srv.request('GET', `/api/v1/probe/received?token=${token}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.next_cursor, null);
  return r.body.data;
}

// Publish one probe event with this token on a connection pinned to a
// worker; the answer names the publishing worker.
async function publishOn(w, pid, token) {
  const r = await w.request(pid, { method: 'POST', path: '/api/v1/probe/publish',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.pid, pid, 'published by the worker the connection belongs to');
  return r.body;
}

for (const workers of [2, 3]) {
  test(`${workers} workers: every event reaches every worker exactly once`, async (t) => {
    const srv = servers[workers];
    const pids = await waitWorkerPids(srv, workers);
    assert.equal(pids.length, workers, `worker pids from the log: ${pids}`);

    const tokens = [];
    const publishers = new Set();
    const tok = (tag, i) => `w${workers}-${tag}-${i}-${randomBytes(6).toString('hex')}`;
    // A burst of publishes at once (see burst()), wherever Kore's accept
    // lock sends them...
    const batch = Array.from({ length: 20 }, (_, i) => tok('burst', i));
    const answers = await burst(srv.port, batch.map((token) => ({ method: 'POST', path: '/api/v1/probe/publish',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) })),
    { password: ADMIN_PASSWORD });
    for (const r of answers) {
      assert.equal(r.status, 202, r.text);
      assert.ok(pids.includes(r.body.pid), `publisher ${r.body.pid} is one of the workers ${pids}`);
      publishers.add(r.body.pid);
    }
    tokens.push(...batch);

    const w = await workerConnections(srv, workers);
    try {
      // ...and some from every worker, on a connection pinned to each.
      for (const pid of w.pids) {
        for (let i = 0; i < 5; i++) {
          const token = tok(`w${pid}`, i);
          publishers.add((await publishOn(w, pid, token)).pid);
          tokens.push(token);
        }
      }
      assert.deepEqual([...publishers].sort((x, y) => x - y), pids, 'every worker published');

      // Late duplicates would come from a worker handling an event from
      // the bus again.  Every worker publishes a marker after all of the
      // above: the bus keeps each publisher's order, so once every worker
      // has received every marker, it has received every event above as
      // often as it ever will.
      const markers = [];
      for (const pid of w.pids) {
        const token = tok('marker', pid);
        await publishOn(w, pid, token);
        markers.push(token);
      }
      assert.ok(await poll(async () => {
        for (const m of markers) if ((await received(srv, m)).map((x) => x.pid).join() !== pids.join()) return false;
        return true;
      }, { interval: 100 }), 'every worker received every marker');
    } finally { w.close(); }

    const snap = {};
    for (const token of tokens) snap[token] = await received(srv, token);
    for (const token of tokens) {
      const rows = snap[token];
      assert.deepEqual(rows.map((x) => x.pid), pids, `${token}: received by ${JSON.stringify(rows)}, workers ${pids}`);
      for (const row of rows) assert.equal(row.count, 1, `${token}: ${JSON.stringify(rows)}`);
    }
    // Events are not delivered to a token nobody published.
    assert.deepEqual(await received(srv, `never-${randomBytes(4).toString('hex')}`), []);
    // No worker died or was replaced meanwhile.
    assert.deepEqual(workerPids(srv), pids);
    assert.equal(srv.exited, null);
    assert.ok(!srv.logs.some((l) => l.component === 'plugin:probe' && l.level === 'error'),
      'the probe recorded every delivery');
    // Informative: which workers published.
    t.diagnostic(`publishers: ${[...publishers].join(', ')} of ${pids.join(', ')}`);
  });
}
