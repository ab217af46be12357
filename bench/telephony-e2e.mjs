// Enqueues SMS for bench/telephony.sh's end-to-end figure: N messages
// through POST /api/v1/sms from CONC clients at once (node's fetch, kept-
// alive connections, loopback), to "+1415" DIGIT and a six-digit counter
// (every destination new), optionally all with the same schedule_at.
//
//   node bench/telephony-e2e.mjs PORT PASSWORD N CONC DIGIT [SCHEDULE_AT]
//
// Prints "<first id> <last id> <n> <seconds to enqueue> <answers already
// past queued>"; exits non-zero unless every answer was 202.
const [port, password, n, conc, digit, scheduleAt] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const N = Number(n);

const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST',
  headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`);
const { access_token: token } = await login.json();
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

const ids = [];
let next = 0, past = 0, bad = null;
async function client() {
  while (next < N && bad === null) {
    const i = next++;
    const json = { to: `+1415${digit}${String(i).padStart(6, '0')}`,
      body: 'Your appointment is confirmed for tomorrow at 10:00.' };
    if (scheduleAt) json.schedule_at = scheduleAt;
    const r = await fetch(`${base}/api/v1/sms`, { method: 'POST', headers, body: JSON.stringify(json) });
    const text = await r.text();
    if (r.status !== 202) { bad = `${r.status} ${text}`; return; }
    const m = JSON.parse(text);
    // The message is re-read after its commit, so another worker may have
    // sent it already: the answer can say "sending".
    if (m.status !== 'queued') past++;
    ids.push(Number(m.id));
  }
}
const t0 = performance.now();
await Promise.all(Array.from({ length: Number(conc) }, client));
const secs = (performance.now() - t0) / 1000;
if (bad !== null) {
  process.stderr.write(`telephony-e2e: an enqueue failed: ${bad}\n`);
  process.exit(1);
}
ids.sort((a, b) => a - b);
process.stdout.write(`${ids[0]} ${ids[ids.length - 1]} ${ids.length} ${secs.toFixed(3)} ${past}\n`);
