// A scriptable local HTTP upstream for tests of outbound HTTP and jobs.
//
//   const up = await startUpstream();
//   up.script('/send', [{ status: 500 }, { status: 500 }, { status: 200, json: { id: 1 } }]);
//   up.script('/slow', [{ hang: true }]);           // never answers
//   up.script('/pay', [{ status: 200, answerLost: true }])  // does the work, the answer never leaves
//   up.script('/later', [{ status: 429, headers: { 'retry-after': '1' } }]);
//   ... up.requests (every request: method, path, headers, body, at)
//   ... up.succeededKeys (Idempotency-Key -> number of 2xx answers given)
//   await up.close();
//
// HTTPS: startUpstream({ tls: { key, cert } }) serves the same over TLS
// (node:https options; up.url starts with https://).
//
// Scripts are consumed in order; when a path's script runs out, its last
// step repeats; unscripted paths answer 200 {"ok":true}.  Idempotency
// works like payment providers': a key that already got a 2xx answer is
// answered with the same response again and counted as a replay, never as
// a second success.
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';

export async function startUpstream(opts = {}) {
  const scripts = new Map();
  const replays = new Map();
  const up = {
    requests: [],
    succeededKeys: new Map(),
    replayedKeys: new Map(),
    hanging: new Set(),
    script(path, steps) { scripts.set(path, [...steps]); },
    reset() { scripts.clear(); replays.clear(); up.requests.length = 0;
      up.succeededKeys.clear(); up.replayedKeys.clear(); },
    count(path) { return up.requests.filter((r) => r.path === path).length; },
  };

  const handler = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const path = req.url.split('?')[0];
      up.requests.push({ method: req.method, path, url: req.url, headers: req.headers, body,
        at: Date.now() });
      const key = req.headers['idempotency-key'];
      if (key && replays.has(key)) {
        up.replayedKeys.set(key, (up.replayedKeys.get(key) ?? 0) + 1);
        const r = replays.get(key);
        res.writeHead(r.status, r.headers);
        res.end(r.body);
        return;
      }
      const steps = scripts.get(path);
      const step = steps ? (steps.length > 1 ? steps.shift() : steps[0]) : { status: 200, json: { ok: true } };
      if (step.hang) {
        up.hanging.add(res);
        res.on('close', () => up.hanging.delete(res));
        return;
      }
      const status = step.status ?? 200;
      const out = step.json !== undefined ? JSON.stringify(step.json) : (step.body ?? '');
      const headers = { 'content-type': step.json !== undefined ? 'application/json' : 'text/plain',
        ...(step.headers ?? {}) };
      const done = () => {
        if (key && status >= 200 && status < 300) {
          up.succeededKeys.set(key, (up.succeededKeys.get(key) ?? 0) + 1);
          replays.set(key, { status, headers, body: out });
        }
      };
      // The work is done (a success counts, a replay will repeat it) but
      // the answer never leaves: held like a hang.
      if (step.answerLost) {
        done();
        up.hanging.add(res);
        res.on('close', () => up.hanging.delete(res));
        return;
      }
      const send = () => {
        done();
        res.writeHead(status, headers);
        res.end(out);
      };
      if (step.delay_ms) setTimeout(send, step.delay_ms); else send();
    });
  };
  const server = opts.tls ? createTlsServer(opts.tls, handler) : createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  up.port = server.address().port;
  up.url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${up.port}`;
  up.close = async () => {
    for (const res of up.hanging) res.destroy();
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  };
  return up;
}
