// WebSocket fan-out benchmark (run through bench/ws.sh, which starts the
// server).  WS_CONNECTIONS connections (default 5,000), authenticated and
// subscribed to one room, spread over WS_CLIENTS client processes so the
// load generator is not one event loop; then WS_EVENTS events (200) at
// WS_RATE per second (10) through POST /api/v1/roomy/publish, each
// carrying the time it was sent.  Latency per delivery = receive time -
// publish time, both wall-clock milliseconds of this machine
// (performance.timeOrigin + performance.now()).  Every event must reach
// every connection exactly once.  Memory per idle connection = (sum of
// the workers' VmRSS with every connection authenticated, subscribed and
// idle - the same before any connection) / connections.
//
// The clients share the machine (and its cores) with the server; with
// WS_LEAN=1 they read event frames off the socket themselves after the
// handshake, authentication and subscription went through `ws`, which
// leaves more of the CPU to the server.
import { fork, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const env = (k, d) => Number(process.env[k] ?? d);

// --- client process: holds a share of the connections ---------------------
if (process.argv[2] === 'client') {
  const port = env('WS_PORT');
  const count = env('WS_COUNT');
  const token = process.env.WS_TOKEN;
  const room = process.env.WS_ROOM;
  const events = env('WS_EVENTS', 200);
  const lean = process.env.WS_LEAN === '1';
  const conns = [];
  // Kept cheap: the client shares the machine with the server.
  const latencies = new Float64Array(count * events);
  let nlat = 0;
  const seen = new Uint32Array(events);	// event seq -> deliveries
  const workers = {};
  let errors = 0;

  // Event frames carry ..."data":{"seq":S,"t":T,...}: seq and t are read
  // without parsing the rest.
  function onEvent(s) {
    const at = s.indexOf('"seq":');
    const ti = s.indexOf('"t":', at);
    if (nlat < latencies.length) latencies[nlat++] = now() - Number(s.slice(ti + 4, s.indexOf(',', ti)));
    seen[Number(s.slice(at + 6, s.indexOf(',', at)))]++;
  }

  // WS_LEAN=1: once subscribed, frames are read straight off the socket
  // (server frames are unmasked, unfragmented text) instead of through
  // ws's receiver, so the load generator costs the shared CPU less.
  function leanReader(ws) {
    const sock = ws._socket;
    sock.removeAllListeners('data');
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (buf.length < 2) break;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) break;
        if ((buf[0] & 0x0f) === 1 && buf[off + 9] === 0x65)	// {"type":"e...
          onEvent(buf.toString('latin1', off, off + len));
        buf = buf.subarray(off + len);
      }
    });
  }

  function open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?access_token=${token}`,
        { perMessageDeflate: false, skipUTF8Validation: true });
      ws.on('error', reject);
      ws.on('close', () => { errors++; });
      ws.on('message', (data) => {
        const f = JSON.parse(data);
        if (f.type === 'event') {
          onEvent(data.toString('latin1'));
        } else if (f.type === 'ready') {
          workers[f.worker] = (workers[f.worker] ?? 0) + 1;
          ws.send(JSON.stringify({ type: 'subscribe', room }));
        } else if (f.type === 'subscribed') {
          if (lean) leanReader(ws);
          resolve(ws);
        } else if (f.type === 'error') {
          reject(new Error(JSON.stringify(f)));
        }
      });
    });
  }

  process.on('message', async (msg) => {
    if (msg.cmd === 'open') {
      for (let i = 0; i < count; i += 100) {
        const batch = await Promise.all(Array.from({ length: Math.min(100, count - i) }, open));
        conns.push(...batch);
      }
      process.send({ cmd: 'opened', n: conns.length, workers });
    } else if (msg.cmd === 'ping') {
      // Keep-alive inside websocket_timeout while idle.
      for (const ws of conns) ws.send('{"type":"ping"}');
      process.send({ cmd: 'pinged' });
    } else if (msg.cmd === 'report') {
      let uneven = 0;
      for (const v of seen) if (v !== conns.length) uneven++;
      process.send({ cmd: 'report', latencies: Array.from(latencies.subarray(0, nlat)), uneven, errors });
    } else if (msg.cmd === 'exit') {
      for (const ws of conns) ws.terminate();
      process.exit(0);
    }
  });
  process.send({ cmd: 'up' });
} else {
  await main();
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function workerPids(parent) {
  return execFileSync('pgrep', ['-P', String(parent)]).toString().trim().split('\n').map(Number);
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main() {
  const port = env('WS_PORT');
  const N = env('WS_CONNECTIONS', 5000);
  const EVENTS = env('WS_EVENTS', 200);
  const RATE = env('WS_RATE', 10);
  const P = env('WS_CLIENTS', 2);
  const room = `roomy:bench-${process.pid}`;
  const base = `http://127.0.0.1:${port}`;

  const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: process.env.SB_ADMIN_PASSWORD }) });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`);
  const token = (await login.json()).access_token;

  const workers = workerPids(env('WS_KORE_PID'));
  // One publish first, so lazily allocated paths do not count per connection.
  await publish(base, room, -1);
  await sleep(500);
  const before = workers.map(rssKb);

  const kids = [];
  for (let i = 0; i < P; i++) {
    const count = Math.floor(N / P) + (i < N % P ? 1 : 0);
    const k = fork(fileURLToPath(import.meta.url), ['client'], {
      env: { ...process.env, WS_COUNT: String(count), WS_TOKEN: token, WS_ROOM: room } });
    await once(k, 'up');
    kids.push(k);
  }
  const t0 = Date.now();
  const opened = await Promise.all(kids.map((k) => ask(k, { cmd: 'open' }, 'opened')));
  const perWorker = {};
  for (const o of opened) for (const [w, n] of Object.entries(o.workers)) perWorker[w] = (perWorker[w] ?? 0) + n;
  const total = opened.reduce((s, o) => s + o.n, 0);
  console.log(`connections: ${total} open, authenticated and subscribed in ${Date.now() - t0} ms; per worker ${JSON.stringify(perWorker)}`);

  await sleep(3000);	// idle
  const after = workers.map(rssKb);
  const grown = after.reduce((s, v, i) => s + v - before[i], 0);
  console.log(`worker VmRSS: before ${before.join(' + ')} kB, after ${after.join(' + ')} kB`);
  console.log(`memory per idle connection: ${(grown * 1024 / total).toFixed(0)} bytes (${(grown / total).toFixed(2)} KB)`);

  // utime + stime of a process, ms (clock ticks of 10 ms).
  const cpu = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  };
  const procs = [...workers, ...kids.map((k) => k.pid), process.pid];
  const cpu0 = procs.map(cpu);
  // Publish at a steady rate; the publisher is this process, not a client.
  const interval = 1000 / RATE;
  const start = now();
  const inflight = [];
  for (let seq = 0; seq < EVENTS; seq++) {
    const due = start + seq * interval;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    inflight.push(publish(base, room, seq));
    if (seq % (RATE * 30) === 0 && seq > 0) await Promise.all(kids.map((k) => ask(k, { cmd: 'ping' }, 'pinged')));
  }
  await Promise.all(inflight);
  const used = procs.map((p, i) => cpu(p) - cpu0[i]);
  console.log(`CPU while publishing (${((now() - start) / 1000).toFixed(1)} s): server workers ` +
    `${used.slice(0, workers.length).join(' + ')} ms, client processes ${used.slice(workers.length, -1).join(' + ')} ms, ` +
    `publisher ${used[used.length - 1]} ms`);
  await sleep(3000);

  const reports = await Promise.all(kids.map((k) => ask(k, { cmd: 'report' }, 'report')));
  const lat = Float64Array.from(reports.flatMap((r) => r.latencies)).sort();
  const deliveries = lat.length;
  const expected = total * EVENTS;
  console.log(`events: ${EVENTS} at ${RATE}/s to ${total} connections: ${deliveries} deliveries of ${expected} expected` +
    `${reports.some((r) => r.uneven) ? ' (some events not delivered exactly once per connection)' : ''}` +
    `${reports.some((r) => r.errors) ? `, ${reports.reduce((s, r) => s + r.errors, 0)} connections closed` : ''}`);
  console.log(`delivery latency: p50 ${pct(lat, 0.5).toFixed(1)} ms, p90 ${pct(lat, 0.9).toFixed(1)} ms, ` +
    `p99 ${pct(lat, 0.99).toFixed(1)} ms, max ${lat[lat.length - 1].toFixed(1)} ms`);
  for (const k of kids) k.send({ cmd: 'exit' });
  if (deliveries !== expected || reports.some((r) => r.uneven)) {
    console.error('bench: not every event reached every connection exactly once');
    process.exit(1);
  }
}

async function publish(base, room, seq) {
  const r = await fetch(`${base}/api/v1/roomy/publish`, { method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, name: 'bench.tick', data: { seq, t: now() } }) });
  if (r.status !== 202) throw new Error(`publish: ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
}

function once(k, cmd) {
  return new Promise((resolve) => {
    const f = (m) => { if (m.cmd === cmd) { k.off('message', f); resolve(m); } };
    k.on('message', f);
  });
}

function ask(k, msg, reply) {
  const p = once(k, reply);
  k.send(msg);
  return p;
}
