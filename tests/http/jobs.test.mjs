// Durable jobs: retries with growing backoff against a scripted upstream,
// dead-letter and retry by the API, a worker killed mid-job (exactly one
// upstream success, counted by the fake's idempotency keys), the outbox,
// idempotency keys, priority, leases, the /api/v1/jobs routes, and two
// nodes on one database (every job once, every periodic slot once).
// The jobber test plugin (tests/plugins/jobber.c) provides the kinds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, testPlugin, pgClient, withDb, databaseUrl,
  assertEnvelope, ADMIN_PASSWORD } from './lib/harness.mjs';
import { poll, createUnprivilegedUser, WAIT_MS } from './lib/helpers.mjs';
import { startUpstream } from '../fakes/upstream.mjs';

const PLUGINS = { jobber: testPlugin('jobber') };
// The breaker would open on the upstream's scripted 500s and turn later
// calls into "circuit open": not what these tests are about.
const HOST = { breaker_failures: '10000' };

let srv, up, token, db;
before(async () => {
  up = await startUpstream();
  srv = await startServer({ plugins: PLUGINS, host: HOST, workers: 2 });
  token = await srv.login();
  db = await pgClient(withDb(databaseUrl(), srv.database));
});
after(async () => {
  await db?.end();
  await srv?.stop();
  await up?.close();
});

const uid = () => randomBytes(6).toString('hex');

async function enqueue(body, s = srv) {
  const r = await s.request('POST', '/api/v1/jobber/enqueue', { json: body });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

async function getJob(id, s = srv) {
  const r = await s.request('GET', `/api/v1/jobs/${id}`, { token });
  assert.equal(r.status, 200, r.text);
  return r.body;
}

// Poll a job until pred(job) holds; fail with the last state otherwise.
// A request that fails (its keep-alive connection belonged to a worker
// that was killed) is tried again at the next poll.
async function waitJob(id, pred, timeout = WAIT_MS) {
  let last;
  const ok = await poll(async () => {
    try { last = await getJob(id); } catch (e) { if (e.name === 'AssertionError') throw e; return false; }
    return pred(last);
  }, { timeout, interval: 100 });
  assert.ok(ok, `job ${id} did not reach the state in ${timeout} ms: ${JSON.stringify(last)}`);
  return last;
}

const requestsFor = (path) => up.requests.filter((r) => r.path === path);

// The delay each retry of a job was given, exactly: when a retry puts a
// running job back in the queue, run_at - updated_at of that row (both
// now() of one UPDATE), caught by a trigger of the test's own.  Measured
// gaps between upstream requests also hold the time it took to claim and
// run the job, which depends on the machine.
async function traceRetries() {
  await db.query(`CREATE TABLE IF NOT EXISTS test_retries (job_id bigint, attempts int, delay_ms float8)`);
  await db.query(`CREATE OR REPLACE FUNCTION test_retry() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF OLD.status = 'running' AND NEW.status = 'queued' THEN
        INSERT INTO test_retries VALUES (NEW.id, NEW.attempts,
          extract(epoch FROM NEW.run_at - NEW.updated_at) * 1000);
      END IF;
      RETURN NEW;
    END $$`);
  await db.query('DROP TRIGGER IF EXISTS test_retry ON jobs');
  await db.query('CREATE TRIGGER test_retry AFTER UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION test_retry()');
}
const retryDelays = async (id) => (await db.query(
  'SELECT attempts, delay_ms FROM test_retries WHERE job_id = $1 ORDER BY attempts', [id])).rows;

// "Nothing more happens on its own" is asserted after a later event that
// must come after anything that could: a job enqueued now has run to the
// end (claims take due jobs oldest first, so a job wrongly due again
// would have been claimed before it or with it), and two periodic ticks
// of slots that began after now have run (the machinery kept going for a
// while: the lease sweep runs about once a second).
async function settleJobs() {
  const from = Math.floor(Date.now() / 1000) + 1;
  const id = await enqueue({ kind: 'jobber.sink' });
  await waitJob(id, (j) => j.status === 'done');
  assert.ok(await poll(async () => (await db.query('SELECT count(DISTINCT slot)::int AS n FROM jobber_ticks '
    + 'WHERE slot >= $1', [from])).rows[0].n >= 2, { interval: 100 }), 'two more periodic ticks ran');
}

test('500, 500, 200: done on the third attempt, with growing delays', async () => {
  await traceRetries();
  const path = `/grow-${uid()}`;
  const key = `grow-${uid()}`;
  up.script(path, [{ status: 500 }, { status: 500 }, { status: 200, json: { sent: true } }]);
  const id = await enqueue({ kind: 'jobber.call', idempotency_key: key,
    payload: { url: up.url + path, body: { hello: 'world' } } });
  const job = await waitJob(id, (j) => j.status === 'done');
  assert.equal(job.attempts, 3);
  assert.deepEqual(job.result, { status: 200, body: { sent: true } });
  assert.match(job.last_error, /upstream answered 500/);
  assert.ok(job.finished_at);

  const reqs = requestsFor(path);
  assert.equal(reqs.length, 3);
  for (const r of reqs) {
    assert.equal(r.headers['idempotency-key'], key);
    assert.deepEqual(JSON.parse(r.body), { hello: 'world' });
  }
  // backoff_s 1: 1 s then 2 s, each +-25 %: they grow.
  const delays = await retryDelays(id);
  assert.deepEqual(delays.map((d) => d.attempts), [1, 2], JSON.stringify(delays));
  const [d1, d2] = delays.map((d) => d.delay_ms);
  assert.ok(d1 >= 750 && d1 <= 1250, `first delay ${d1} ms`);
  assert.ok(d2 >= 1500 && d2 <= 2500, `second delay ${d2} ms`);
  assert.ok(d2 > d1, `delays grow: ${d1} ms then ${d2} ms`);
  // And the upstream waited at least that long between the calls.
  const gap1 = reqs[1].at - reqs[0].at;
  const gap2 = reqs[2].at - reqs[1].at;
  assert.ok(gap1 >= d1 - 5, `first gap ${gap1} ms, delay ${d1} ms`);
  assert.ok(gap2 >= d2 - 5, `second gap ${gap2} ms, delay ${d2} ms`);
  assert.equal(up.succeededKeys.get(key), 1);
});

test('Retry-After is honoured instead of the backoff', async () => {
  await traceRetries();
  const path = `/later-${uid()}`;
  up.script(path, [{ status: 429, headers: { 'retry-after': '2' } }, { status: 200, json: {} }]);
  const id = await enqueue({ kind: 'jobber.call', payload: { url: up.url + path } });
  const job = await waitJob(id, (j) => j.status === 'done');
  assert.equal(job.attempts, 2);
  const reqs = requestsFor(path);
  assert.equal(reqs.length, 2);
  // The backoff alone would be 0.75-1.25 s.
  assert.deepEqual((await retryDelays(id)).map((d) => d.delay_ms), [2000], 'the retry waits Retry-After: 2');
  const gap = reqs[1].at - reqs[0].at;
  assert.ok(gap >= 1995, `waited ${gap} ms after Retry-After: 2`);
  // No key given: the job's own ('job-<id>') goes upstream.
  assert.equal(reqs[0].headers['idempotency-key'], `job-${id}`);
  assert.equal(job.idempotency_key, null);
});

test('a job that always fails is dead after max_attempts, then retried by the API', async () => {
  const path = `/fail-${uid()}`;
  up.script(path, [{ status: 503 }]);
  const id = await enqueue({ kind: 'jobber.call', max_attempts: 3,
    payload: { url: up.url + path } });
  const dead = await waitJob(id, (j) => j.status === 'dead');
  assert.equal(dead.attempts, 3);
  assert.equal(dead.max_attempts, 3);
  assert.match(dead.last_error, /upstream answered 503/);
  assert.ok(dead.finished_at);
  assert.equal(requestsFor(path).length, 3);

  // Listed as dead.
  const list = await srv.request('GET', '/api/v1/jobs?status=dead&kind=jobber.call', { token });
  assert.equal(list.status, 200, list.text);
  assert.ok(list.body.data.some((j) => j.id === id));
  assert.ok(list.body.data.every((j) => j.status === 'dead' && j.kind === 'jobber.call'));

  // Nothing more happens on its own.
  await settleJobs();
  assert.equal(requestsFor(path).length, 3);
  assert.equal((await getJob(id)).status, 'dead');

  // The upstream recovers; an operator retries the job.
  up.script(path, [{ status: 200, json: { ok: 1 } }]);
  const r = await srv.request('POST', `/api/v1/jobs/${id}/retry`, { token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.id, id);
  assert.equal(r.body.status, 'queued');
  assert.equal(r.body.attempts, 0);
  const done = await waitJob(id, (j) => j.status === 'done');
  assert.equal(done.attempts, 1);
  assert.equal(requestsFor(path).length, 4);

  // Only a dead job can be retried.
  const again = await srv.request('POST', `/api/v1/jobs/${id}/retry`, { token });
  assertEnvelope(assert, again, 409, 'CONFLICT');
});

test('a 4xx answer is dead at once (no retry)', async () => {
  const path = `/bad-${uid()}`;
  up.script(path, [{ status: 422 }]);
  const id = await enqueue({ kind: 'jobber.call', payload: { url: up.url + path } });
  const job = await waitJob(id, (j) => j.status === 'dead');
  assert.equal(job.attempts, 1);
  assert.match(job.last_error, /422/);
  await settleJobs();
  assert.equal(requestsFor(path).length, 1);
});

test('a worker killed mid-job: the job runs again after its lease, one upstream success', async () => {
  const path = `/kill-${uid()}`;
  const key = `kill-${uid()}`;
  // The upstream does the work (a success, from the moment the call
  // arrives) but its answer never comes back, so the job stays running
  // until its worker dies; the re-run after the lease is then a replay.
  up.script(path, [{ status: 200, json: { charged: true }, answerLost: true }]);
  const id = await enqueue({ kind: 'jobber.call', idempotency_key: key,
    payload: { url: up.url + path } });
  assert.ok(await poll(() => requestsFor(path).length >= 1, { interval: 20 }),
    'the first call reached the upstream');
  const running = await getJob(id);
  assert.equal(running.status, 'running');
  const pid = Number(running.locked_by.split(':').pop());
  assert.ok(pid > 0, `locked_by ${running.locked_by}`);
  process.kill(pid, 'SIGKILL');

  const job = await waitJob(id, (j) => j.status === 'done');
  assert.equal(job.attempts, 2, JSON.stringify(job));
  assert.match(job.last_error, /lease expired on attempt 1/);
  assert.notEqual(job.locked_by, running.locked_by);
  // Exactly one success upstream; the re-run was answered as a replay.
  assert.equal(up.succeededKeys.get(key), 1);
  assert.ok((up.replayedKeys.get(key) ?? 0) >= 1, 'the second call was a replay');
  assert.ok(requestsFor(path).every((r) => r.headers['idempotency-key'] === key));
  assert.deepEqual(job.result, { status: 200, body: { charged: true } });
  // Kore restarted the worker; the server still serves.
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
});

test('a run() that never finishes loses its lease and is dead after its last attempt', async () => {
  const id = await enqueue({ kind: 'jobber.hang' });
  const job = await waitJob(id, (j) => j.status === 'dead');
  assert.equal(job.attempts, 2);
  assert.match(job.last_error, /lease expired on attempt 2/);
});

test('outbox: the job exists if and only if the change committed', async () => {
  const rolled = await srv.request('POST', '/api/v1/jobber/outbox', { json: { fail: true } });
  assert.equal(rolled.status, 200, rolled.text);
  assert.equal(rolled.body.committed, false);
  assert.ok(rolled.body.job_id > 0, 'the enqueue itself worked inside the transaction');
  const committed = await srv.request('POST', '/api/v1/jobber/outbox',
    { json: { fail: false, payload: { tag: `outbox-${uid()}` } } });
  assert.equal(committed.status, 200, committed.text);
  assert.equal(committed.body.committed, true);

  const job = await waitJob(committed.body.job_id, (j) => j.status === 'done');
  assert.equal(job.payload.outbox_id, committed.body.outbox_id);
  const runs = await db.query('SELECT count(*)::int AS n FROM jobber_runs WHERE job_id = $1',
    [committed.body.job_id]);
  assert.equal(runs.rows[0].n, 1);

  // The rolled-back one: neither the row nor the job, and it never runs.
  await settleJobs();
  const missing = await srv.request('GET', `/api/v1/jobs/${rolled.body.job_id}`, { token });
  assertEnvelope(assert, missing, 404, 'NOT_FOUND');
  const rows = await db.query('SELECT count(*)::int AS n FROM jobber_outbox WHERE id = $1',
    [rolled.body.outbox_id]);
  assert.equal(rows.rows[0].n, 0);
  const ran = await db.query('SELECT count(*)::int AS n FROM jobber_runs WHERE job_id = $1',
    [rolled.body.job_id]);
  assert.equal(ran.rows[0].n, 0);
});

test('the same idempotency key is the same job, and it runs once', async () => {
  const key = `idem-${uid()}`;
  const tag = `idem-${uid()}`;
  const body = { kind: 'jobber.sink', idempotency_key: key, payload: { record: true, tag } };
  const a = await enqueue(body);
  const b = await enqueue(body);
  assert.equal(a, b);
  const job = await waitJob(a, (j) => j.status === 'done');
  assert.equal(job.idempotency_key, key);
  // After it is done, the key still names it: nothing runs again.
  assert.equal(await enqueue(body), a);
  await settleJobs();
  const runs = await srv.request('GET', `/api/v1/jobber/runs?tag=${tag}`);
  assert.equal(runs.body.data.length, 1);
  assert.equal(runs.body.data[0].job_id, a);
  // The key is per kind: another kind may use it.
  const other = await enqueue({ kind: 'jobber.hang', idempotency_key: key, max_attempts: 1 });
  assert.notEqual(other, a);
});

test('higher priority runs first; job_done inside the plugin\'s transaction', async () => {
  const tag = `prio-${uid()}`;
  const prios = [0, 5, -3, 10, 1, 7, 2, -1];
  const r = await srv.request('POST', '/api/v1/jobber/enqueue-many', { json: { jobs:
    prios.map((p) => ({ kind: 'jobber.sink', priority: p, payload: { record: true, tag, priority: p } })) } });
  assert.equal(r.status, 201, r.text);
  assert.ok(await poll(async () => (await srv.request('GET', `/api/v1/jobber/runs?tag=${tag}`))
    .body.data.length === prios.length, { interval: 100 }));
  const runs = (await srv.request('GET', `/api/v1/jobber/runs?tag=${tag}`)).body.data;
  // Committed together, so claimed together: in each worker (a second
  // worker can only take what the first left), by priority.
  const byPid = {};
  for (const x of runs) (byPid[x.pid] ??= []).push(x.priority);
  for (const [pid, seq] of Object.entries(byPid))
    assert.deepEqual(seq, [...seq].sort((x, y) => y - x), `worker ${pid} ran ${seq}`);

  const txTag = `tx-${uid()}`;
  const id = await enqueue({ kind: 'jobber.sink', payload: { tx: true, tag: txTag } });
  const job = await waitJob(id, (j) => j.status === 'done');
  assert.equal(typeof job.result.pid, 'number');
  const txRuns = (await srv.request('GET', `/api/v1/jobber/runs?tag=${txTag}`)).body.data;
  assert.equal(txRuns.length, 1);
});

test('delay_ms: not run before its time', async () => {
  // Seen before its time, it is still queued: a look is "before its
  // time" by the database's clock (now() < run_at, in the same
  // statement), and a round a loaded machine made slower than the delay
  // is done again with a longer one.
  for (let delay = 1500; ; delay *= 2) {
    assert.ok(delay <= 48000, 'no job could be looked at before its time');
    const t0 = Date.now();
    const id = await enqueue({ kind: 'jobber.sink', delay_ms: delay });
    const { rows: [seen] } = await db.query(`SELECT status, now() < run_at AS early,
      extract(epoch FROM run_at - created_at) * 1000 AS scheduled FROM jobs WHERE id = $1`, [id]);
    assert.ok(seen.scheduled >= delay - 1, `run_at ${seen.scheduled} ms after creation`);
    const job = await waitJob(id, (j) => j.status === 'done');
    assert.ok(Date.parse(job.started_at) - Date.parse(job.created_at) >= delay - 100, JSON.stringify(job));
    assert.ok(Date.now() - t0 >= delay - 100);
    if (!seen.early) continue;
    assert.equal(seen.status, 'queued');
    break;
  }
});

test('GET /api/v1/jobs: filters, paging, errors and access', async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await enqueue({ kind: 'jobber.sink', payload: { n: i } }));
  for (const id of ids) await waitJob(id, (j) => j.status === 'done');

  const first = await srv.request('GET', '/api/v1/jobs?status=done&kind=jobber.sink&limit=2', { token });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.body.data.length, 2);
  assert.equal(typeof first.body.next_cursor, 'string');
  const j = first.body.data[0];
  for (const f of ['id', 'kind', 'status', 'priority', 'attempts', 'max_attempts', 'run_at',
    'idempotency_key', 'last_error', 'created_at', 'started_at', 'finished_at', 'payload', 'result'])
    assert.ok(f in j, `field ${f}`);
  assert.equal(j.id, ids[2], 'newest first');
  assert.equal(first.body.data[1].id, ids[1]);
  assert.match(j.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const second = await srv.request('GET',
    `/api/v1/jobs?status=done&kind=jobber.sink&limit=2&cursor=${first.body.next_cursor}`, { token });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.body.data[0].id, ids[0]);

  const all = await srv.request('GET', '/api/v1/jobs', { token });
  assert.equal(all.status, 200);
  assert.ok(all.body.data.length > 0 && all.body.data.length <= 50);

  const bad = await srv.request('GET', '/api/v1/jobs?status=finished', { token });
  const env = assertEnvelope(assert, bad, 400, 'VALIDATION_ERROR');
  assert.equal(env.errors[0].field, 'status');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/jobs?limit=0', { token }), 400, 'VALIDATION_ERROR');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/jobs/999999999', { token }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/jobs/abc', { token }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('POST', '/api/v1/jobs/999999999/retry', { token }), 404, 'NOT_FOUND');
  assertEnvelope(assert, await srv.request('POST', `/api/v1/jobs/${ids[0]}/retry`, { token }), 409, 'CONFLICT');

  assertEnvelope(assert, await srv.request('GET', '/api/v1/jobs'), 401, 'UNAUTHENTICATED');
  assertEnvelope(assert, await srv.request('POST', `/api/v1/jobs/${ids[0]}/retry`), 401, 'UNAUTHENTICATED');
  await createUnprivilegedUser(srv, 'nojobs');
  const weak = await srv.login('nojobs', ADMIN_PASSWORD);
  assertEnvelope(assert, await srv.request('GET', '/api/v1/jobs', { token: weak }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('GET', '/api/v1/jobs/stats', { token: weak }), 403, 'FORBIDDEN');
  assertEnvelope(assert, await srv.request('POST', `/api/v1/jobs/${ids[0]}/retry`, { token: weak }),
    403, 'FORBIDDEN');
});

test('GET /api/v1/jobs/stats: counts per status and the node\'s counters', async () => {
  const r = await srv.request('GET', '/api/v1/jobs/stats', { token });
  assert.equal(r.status, 200, r.text);
  const { counts, node, kinds } = r.body;
  for (const s of ['queued', 'running', 'done', 'dead']) assert.equal(typeof counts[s], 'number');
  assert.ok(counts.done >= 5 && counts.dead >= 2, JSON.stringify(counts));
  for (const c of ['enqueued', 'claimed', 'done', 'retried', 'dead', 'failures', 'reclaimed', 'lost'])
    assert.equal(typeof node[c], 'number', c);
  assert.ok(node.enqueued >= 10 && node.done >= 5 && node.retried >= 2 && node.reclaimed >= 1,
    JSON.stringify(node));
  assert.ok(node.latency_ms.count >= node.done - 1 && node.latency_ms.max >= node.latency_ms.avg);
  const inf = node.latency_ms.buckets.at(-1);
  assert.equal(inf.le, '+Inf');
  assert.equal(inf.count, node.latency_ms.count);
  // The host's own kinds (key rotation, src/rekey.c; retention of
  // finished jobs, src/retention.c) and the plugin's.
  assert.deepEqual(kinds.map((k) => k.name).sort(),
    ['host.rekey', 'host.retention', 'jobber.call', 'jobber.hang', 'jobber.sink', 'jobber.tick']);
  assert.equal(kinds.find((k) => k.name === 'jobber.tick').interval_s, 1);
});

test('two nodes on one database: every job runs once; periodic slots run once', async () => {
  const a = await startServer({ plugins: PLUGINS, host: HOST, workers: 2 });
  let b;
  try {
    b = await startServer({ plugins: PLUGINS, host: HOST, workers: 2, database: a.database });
    const c = await pgClient(withDb(databaseUrl(), a.database));
    try {
      const tag = `nodes-${uid()}`;
      const t0 = Math.ceil(Date.now() / 1000) + 1;
      // 200 jobs, enqueued through both nodes at once.
      const bulk = (s) => s.request('POST', '/api/v1/jobber/enqueue-bulk', { json: { n: 50, record: true, tag } });
      const answers = await Promise.all([bulk(a), bulk(b), bulk(a), bulk(b)]);
      for (const r of answers) assert.equal(r.status, 201, r.text);
      const done = await poll(async () => (await c.query(`SELECT count(*)::int AS n FROM jobs
        WHERE kind = 'jobber.sink' AND status = 'done' AND payload->>'tag' = $1`, [tag])).rows[0].n === 200,
      { interval: 200 });
      assert.ok(done, 'all 200 jobs done');
      const runs = await c.query(`SELECT job_id, count(*)::int AS n, min(pid) AS pid FROM jobber_runs
        WHERE tag = $1 GROUP BY job_id`, [tag]);
      assert.equal(runs.rows.length, 200);
      assert.ok(runs.rows.every((x) => x.n === 1), 'no job ran twice');
      const once = await c.query(`SELECT count(*)::int AS n FROM jobs WHERE payload->>'tag' = $1
        AND (attempts <> 1 OR runs <> 1)`, [tag]);
      assert.equal(once.rows[0].n, 0, 'every job claimed exactly once');

      // Periodic: one-second slots, four workers on two nodes.  Waited
      // for: four slots from t0 on have run (a loaded machine may skip a
      // slot: missed slots are not caught up), then two slots after those
      // (a later event: every job of an earlier slot was due, claimed and
      // run before theirs), and each of the four ran once.
      const slots = async () => (await c.query(`SELECT slot::float8 AS slot, count(*)::int AS n,
        count(DISTINCT job_id)::int AS jobs FROM jobber_ticks WHERE slot >= $1 GROUP BY slot ORDER BY slot`,
      [t0])).rows;
      let ticks;
      assert.ok(await poll(async () => (ticks = await slots()).length >= 4, { interval: 200 }),
        `four periodic slots ran: ${JSON.stringify(ticks)}`);
      const fourth = ticks[3].slot;
      assert.ok(await poll(async () => (await slots()).some((t) => t.slot >= fourth + 2), { interval: 200 }),
        'two later slots ran');
      ticks = (await slots()).filter((t) => t.slot <= fourth);
      assert.equal(ticks.length, 4, JSON.stringify(ticks));
      for (const t of ticks) {
        assert.equal(t.n, 1, `slot ${t.slot} ran ${t.n} times`);
        assert.equal(t.jobs, 1, `slot ${t.slot} had ${t.jobs} jobs`);
      }
      const keys = await c.query(`SELECT count(*)::int AS n FROM jobs WHERE kind = 'jobber.tick'
        AND idempotency_key NOT LIKE 'jobber.tick@%'`);
      assert.equal(keys.rows[0].n, 0);
    } finally { await c.end(); }
  } finally {
    await b?.stop({ keepDatabase: true });
    await a.stop();
  }
});

test('a job kind outside the plugin\'s namespace refuses the plugin, and nothing it staged stays', async () => {
  const s = await startServer({ plugins: { jobber: testPlugin('jobber'), badkind: testPlugin('badkind') },
    host: HOST, workers: 1 });
  try {
    const t = await s.login();
    const plugins = (await s.request('GET', '/api/v1/plugins', { token: t })).body.data;
    const bad = plugins.find((p) => p.name === 'badkind');
    assert.equal(bad.state, 'failed');
    assert.match(bad.error, /job kind "jobber\.stolen" must be named "badkind\.<what>"/);
    const stats = await s.request('GET', '/api/v1/jobs/stats', { token: t });
    assert.equal(stats.status, 200, stats.text);
    assert.ok(!stats.body.kinds.some((k) => k.name.startsWith('badkind.')));
    assert.ok(stats.body.kinds.some((k) => k.name === 'jobber.sink'));
    // Nobody can enqueue a kind that is not registered.
    const r = await s.request('POST', '/api/v1/jobber/enqueue', { json: { kind: 'badkind.fine' } });
    assertEnvelope(assert, r, 422, 'VALIDATION_ERROR');
  } finally { await s.stop(); }
});
