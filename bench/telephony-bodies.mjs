// Signed Twilio webhook requests for bench/telephony.sh, one per line as
// "<X-Twilio-Signature>\t<form body>", read by bench/post-wrk.lua.
//
//   node bench/telephony-bodies.mjs inbound OUT SIGN_URL AUTH_TOKEN ACCOUNT_SID TO N FROMS
//       N inbound SMS, each with its own MessageSid, from FROMS distinct
//       numbers in turn (customers found after the first FROMS), to TO.
//   node bench/telephony-bodies.mjs status OUT SIGN_URL AUTH_TOKEN ACCOUNT_SID CONTROL
//       a "sent" then a "delivered" status callback for every message the
//       fake accepted (its control server's GET /messages): all the "sent"
//       first, then all the "delivered".
//
// The parameters are the fake's own (tests/fakes/twilio.mjs inbound() and
// callback(), Twilio's documented fields); each signature is the fake's
// signTwilio over SIGN_URL, the URL the server checks ([plugin telephony]
// public_url + the webhook path), and the body is the same parameters
// form-encoded, as Twilio and the fake's postSigned send them.
import { createWriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { signTwilio } from '../tests/fakes/twilio.mjs';

const [kind, out, signUrl, authToken, accountSid, ...rest] = process.argv.slice(2);
const file = createWriteStream(out);
let n = 0;

async function put(params) {
  const line = `${signTwilio(authToken, signUrl, params)}\t${new URLSearchParams(params).toString()}\n`;
  n++;
  if (!file.write(line)) await new Promise((r) => file.once('drain', r));
}

if (kind === 'inbound') {
  const [to, count, froms] = [rest[0], Number(rest[1]), Number(rest[2])];
  if (!to || !(count > 0) || !(froms > 0)) throw new Error('inbound: TO N FROMS');
  for (let i = 0; i < count; i++) {
    const sid = `SM${randomBytes(16).toString('hex')}`;
    await put({ AccountSid: accountSid, ApiVersion: '2010-04-01', Body: `Inbound bench message ${i}`,
      From: `+14158${String(i % froms).padStart(6, '0')}`, MessageSid: sid, NumMedia: '0',
      NumSegments: '1', SmsMessageSid: sid, SmsSid: sid, SmsStatus: 'received', To: to });
  }
} else if (kind === 'status') {
  const res = await fetch(`${rest[0]}/messages`);
  const msgs = await res.json();
  if (!msgs.length) throw new Error('status: the fake accepted no messages');
  for (const status of ['sent', 'delivered']) {
    for (const m of msgs)
      await put({ AccountSid: accountSid, ApiVersion: '2010-04-01', From: m.from ?? '', MessageSid: m.sid,
        MessageStatus: status, SmsSid: m.sid, SmsStatus: status, To: m.to });
  }
} else {
  throw new Error('usage: telephony-bodies.mjs inbound|status ...');
}
await new Promise((r) => file.end(r));
process.stdout.write(`${n}\n`);
