// The fake Twilio (tests/fakes/twilio.mjs) as a standalone process for
// bench/telephony.sh, with a small control server beside it.
//
//   node bench/telephony-fake.mjs
//
// Prints one JSON line once both listen:
//   {"url", "accountSid", "authToken", "control"}
// and serves on "control" (127.0.0.1 only):
//   GET /stats      {"requests": creates seen, "accepted": messages answered 201}
//   GET /messages   [{"sid", "to", "from"}] of the accepted messages
// Stops on SIGTERM or SIGINT.  The fake answers every create at once with
// 201; its wire format and sources are in tests/fakes/twilio.mjs.
import { createServer } from 'node:http';
import { startTwilio } from '../tests/fakes/twilio.mjs';

const tw = await startTwilio();

function reply(res, status, obj) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(obj));
}

const control = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats')
    return reply(res, 200, { requests: tw.requests.length, accepted: tw.messages.size });
  if (req.method === 'GET' && req.url === '/messages')
    return reply(res, 200, [...tw.messages.values()].map((m) => ({ sid: m.sid, to: m.to, from: m.from })));
  return reply(res, 404, { error: 'not found' });
});
await new Promise((r) => control.listen(0, '127.0.0.1', r));

const stop = async () => {
  control.close();
  await tw.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

process.stdout.write(JSON.stringify({ url: tw.url, accountSid: tw.accountSid, authToken: tw.authToken,
  control: `http://127.0.0.1:${control.address().port}` }) + '\n');
