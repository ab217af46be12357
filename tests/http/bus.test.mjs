// The event bus: an event published in one worker reaches the
// subscribers of every worker exactly once (the probe plugin records, per
// worker pid, what its subscription received).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, sleep, ADMIN_PASSWORD } from './lib/harness.mjs';
import { waitWorkerPids, workerPids, burst } from './lib/helpers.mjs';

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

// Poll until every token has a row per worker and nothing changed for a
// while (late duplicates would show up as a count of 2).
async function settle(srv, tokens, workers) {
  const deadline = Date.now() + 15000;
  let last = null;
  let stableSince = 0;
  for (;;) {
    const snap = {};
    for (const t of tokens) snap[t] = await received(srv, t);
    const key = JSON.stringify(snap);
    const complete = tokens.every((t) => snap[t].length >= workers);
    if (key === last) {
      if (complete && Date.now() - stableSince >= 500) return snap;
    } else {
      last = key;
      stableSince = Date.now();
    }
    if (Date.now() > deadline) return snap;
    await sleep(100);
  }
}

for (const workers of [2, 3]) {
  test(`${workers} workers: every event reaches every worker exactly once`, async (t) => {
    const srv = servers[workers];
    const pids = await waitWorkerPids(srv, workers);
    assert.equal(pids.length, workers, `worker pids from the log: ${pids}`);

    // Bursts of publishes, spread over the workers (see burst()), until
    // every worker has published (or enough tries).
    const tokens = [];
    const publishers = new Set();
    for (let round = 0; round < 6 && (round < 1 || publishers.size < workers); round++) {
      const batch = Array.from({ length: 20 }, (_, i) => `w${workers}-${round}-${i}-${randomBytes(6).toString('hex')}`);
      const answers = await burst(srv.port, batch.map((token) => ({ method: 'POST', path: '/api/v1/probe/publish',
        headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) })),
      { password: ADMIN_PASSWORD });
      for (const r of answers) {
        assert.equal(r.status, 202, r.text);
        assert.ok(pids.includes(r.body.pid), `publisher ${r.body.pid} is one of the workers ${pids}`);
        publishers.add(r.body.pid);
      }
      tokens.push(...batch);
    }
    // Kore's accept lock decides who publishes; at least two must have,
    // or the test would not show delivery from a worker to the others.
    assert.ok(publishers.size >= 2, `publishes spread over ${[...publishers]}`);

    const snap = await settle(srv, tokens, workers);
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
