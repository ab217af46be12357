// Signed WhatsApp webhook deliveries for bench/whatsapp.sh, one per line as
// "<X-Hub-Signature-256>\t<JSON body>", read by bench/post-wrk.lua.
//
//   node bench/whatsapp-bodies.mjs inbound OUT APP_SECRET PHONE_NUMBER_ID N FROMS TAG
//       N deliveries of 5 text messages each (5 N messages), from FROMS
//       numbers in turn (+14158000000 ...), each message with its own wamid
//       (TAG in it keeps the files of one bench apart) and timestamp (in the
//       last hour, rising through the file).
//   node bench/whatsapp-bodies.mjs status OUT APP_SECRET PHONE_NUMBER_ID MESSAGES
//       deliveries of 5 statuses each for the outbound messages listed in
//       MESSAGES (lines "<message id>\t<wamid>"): per group of 500 messages
//       their "sent", then their "delivered", then their "read" (so that
//       64 connections rarely deliver a message's later status before its
//       earlier one), each with biz_opaque_callback_data "sb:<id>" as the
//       plugin's sends carry it.
//   node bench/whatsapp-bodies.mjs count BODIES WRK_OUT PATTERN CONNECTIONS
//       "<low> <high>": the matches of PATTERN (a regular expression) in the
//       bodies of BODIES wrk answered.  WRK_OUT is bench/post-wrk.lua's
//       output ("thread T requests C": thread T of n sent lines T, T + n,
//       ... up to C of them); each thread has CONNECTIONS / n connections,
//       so all but at most that many of its last requests were answered:
//       low counts those, high every line sent.
//
// The payloads are the fake's own (tests/fakes/whatsapp.mjs inboundText and
// status, Meta's documented fields) with the messages (and contacts) or the
// statuses of 5 items in one change's value, as Meta batches them; the body
// is the fake's metaJson and the signature its signature() over those exact
// bytes.  The fake's Graph server is started only for its builders and
// stopped at once: nothing in the bench sends.
import { createWriteStream, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { startGraph, metaJson, signature } from '../tests/fakes/whatsapp.mjs';

const PER = 5;
const GROUP = 500;
const [kind, out, appSecret, phoneNumberId, ...rest] = process.argv.slice(2);
if (kind === 'count') {
  const [bodies, wrkOut, pattern, conns] = [out, appSecret, new RegExp(phoneNumberId, 'g'), Number(rest[0])];
  const sent = [...readFileSync(wrkOut, 'utf8').matchAll(/^post-wrk: thread (\d+) requests (\d+) /gm)]
    .map((m) => Number(m[2]));
  if (!sent.length || !(conns > 0)) throw new Error('count: no thread lines in WRK_OUT, or no CONNECTIONS');
  const per = Math.ceil(conns / sent.length);
  let low = 0, high = 0;
  readFileSync(bodies, 'utf8').split('\n').forEach((line, i) => {
    const t = i % sent.length, k = Math.floor(i / sent.length);
    if (k >= sent[t]) return;
    const c = (line.match(pattern) ?? []).length;
    high += c;
    if (k < sent[t] - per) low += c;
  });
  process.stdout.write(`${low} ${high}\n`);
  process.exit(0);
}
const g = await startGraph({ appSecret, phoneNumberId });
await g.stop();
const file = createWriteStream(out);
const from = (i, froms) => `+14158${String(i % froms).padStart(6, '0')}`;
let n = 0;

async function put(payload) {
  const raw = metaJson(payload);
  n++;
  if (!file.write(`${signature(appSecret, raw)}\t${raw}\n`)) await new Promise((r) => file.once('drain', r));
}

// A Meta-style wamid: base64 of the number and a unique tail, as Meta's are.
const wamid = (tag, i) => `wamid.HBgL${Buffer.from(`${tag}:${i}:${createHash('sha256').update(`${tag}:${i}`)
  .digest('hex').slice(0, 24)}`).toString('base64').replace(/=+$/, '')}`;

if (kind === 'inbound') {
  const [count, froms, tag] = [Number(rest[0]), Number(rest[1]), rest[2]];
  if (!(count > 0) || !(froms > 0) || !tag) throw new Error('inbound: N FROMS TAG');
  const total = count * PER;
  const now = Math.floor(Date.now() / 1000);
  for (let d = 0; d < count; d++) {
    let payload = null;
    for (let k = 0; k < PER; k++) {
      const i = d * PER + k;
      const one = g.inboundText({ from: from(i, froms), name: `Customer ${i % froms}`, id: wamid(tag, i),
        timestamp: now - 3600 + Math.floor((3600 * i) / total),
        text: `Hi, this is about my order #${100000 + i}: has it shipped yet? Thanks!` });
      if (payload === null) payload = one;
      else {
        const v = payload.entry[0].changes[0].value, w = one.entry[0].changes[0].value;
        v.contacts.push(...w.contacts);
        v.messages.push(...w.messages);
      }
    }
    await put(payload);
  }
} else if (kind === 'status') {
  const msgs = readFileSync(rest[0], 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t'));
  if (!msgs.length) throw new Error('status: no messages');
  const now = Math.floor(Date.now() / 1000);
  for (let s = 0; s < msgs.length; s += GROUP) {
    const group = msgs.slice(s, s + GROUP);
    for (const status of ['sent', 'delivered', 'read']) {
      for (let b = 0; b < group.length; b += PER) {
        let payload = null;
        for (const [id, wa] of group.slice(b, b + PER)) {
          // The recipient is not kept by the plugin (inbox_row drops it).
          const one = g.status({ id: wa, status, recipient_id: from(Number(id), 1000), timestamp: now,
            biz_opaque_callback_data: `sb:${id}` });
          if (payload === null) payload = one;
          else payload.entry[0].changes[0].value.statuses.push(...one.entry[0].changes[0].value.statuses);
        }
        await put(payload);
      }
    }
  }
} else {
  throw new Error('usage: whatsapp-bodies.mjs inbound|status ...');
}
await new Promise((r) => file.end(r));
process.stdout.write(`${n}\n`);
