// tests/fakes/exotel.mjs's voice calls checked against Exotel's documented
// examples (there is no official npm client to check it with): the connect
// request as developer.exotel.com/api/make-a-call-api lists it answers the
// documented {"Call": {...}} (or its XML), errors come in the RestException
// envelope, failures are injected in order, and the StatusCallback carries
// the documented fields (developer.exotel.com/api/statuscallback) as JSON or
// as multipart/form-data.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startExotel } from '../fakes/exotel.mjs';

let ex;
let sink;
const seen = [];
before(async () => {
  ex = await startExotel();
  sink = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, path: req.url, type: req.headers['content-type'], body: Buffer.concat(chunks) });
      res.end('ok');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
});
after(async () => {
  await ex.stop();
  await new Promise((r) => sink.close(r));
});

const sinkUrl = (path) => `http://127.0.0.1:${sink.address().port}${path}`;
const auth = () => `Basic ${Buffer.from(`${ex.apiKey}:${ex.apiToken}`).toString('base64')}`;

async function connect(fields, { json = true, authorization = auth() } = {}) {
  const body = new URLSearchParams(fields).toString();
  const res = await fetch(`${ex.url}/v1/Accounts/${ex.sid}/Calls/connect${json ? '.json' : ''}`, {
    method: 'POST', body, headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' } });
  const text = await res.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch { parsed = null; }
  return { status: res.status, text, body: parsed, type: res.headers.get('content-type') };
}

// A received callback's fields, whichever content type it came in.
async function fields(s) {
  if (s.type === 'application/json') return JSON.parse(s.body.toString('utf8'));
  return Object.fromEntries(await new Response(s.body, { headers: { 'content-type': s.type } }).formData());
}

const CALL_KEYS = ['AccountSid', 'AnsweredBy', 'CallerName', 'DateCreated', 'DateUpdated', 'Direction', 'Duration',
  'EndTime', 'ForwardedFrom', 'From', 'ParentCallSid', 'PhoneNumberSid', 'Price', 'RecordingUrl', 'Sid',
  'StartTime', 'Status', 'To', 'Uri'];
const STAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

test('connect.json with the documented fields answers the documented Call', async () => {
  const before = ex.callsTo('+919876500001');
  const r = await connect([['From', '+919876500000'], ['To', '+919876500001'], ['CallerId', '08047112233'],
    ['CallType', 'trans'], ['TimeLimit', '600'], ['TimeOut', '30'], ['Record', 'true'],
    ['StatusCallback', sinkUrl('/cb/json')], ['StatusCallbackEvents[0]', 'terminal'],
    ['StatusCallbackEvents[1]', 'answered'], ['StatusCallbackContentType', 'application/json'],
    ['CustomField', 'order-42']]);
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.body), ['Call']);
  const c = r.body.Call;
  assert.deepEqual(Object.keys(c).sort(), CALL_KEYS);
  assert.match(c.Sid, /^[0-9a-f]{32}$/);
  assert.equal(c.AccountSid, ex.sid);
  assert.equal(c.From, '+919876500000');
  assert.equal(c.To, '+919876500001');
  assert.equal(c.PhoneNumberSid, '08047112233');
  assert.equal(c.Status, 'in-progress');
  assert.equal(c.Direction, 'outbound-api');
  assert.equal(c.Uri, `/v1/Accounts/${ex.sid}/Calls/${c.Sid}.json`);
  assert.match(c.DateCreated, STAMP);
  for (const k of ['ParentCallSid', 'EndTime', 'Duration', 'Price', 'RecordingUrl']) assert.equal(c[k], null, k);
  assert.equal(ex.callsTo('+919876500001'), before + 1);
  const call = ex.calls.get(c.Sid);
  assert.deepEqual(call.events, ['terminal', 'answered']);
  assert.equal(call.contentType, 'application/json');
  assert.equal(call.customField, 'order-42');
  assert.equal(call.record, true);
  assert.equal(ex.callRequests.at(-1)['StatusCallbackEvents[1]'], 'answered');
});

test('connect without .json answers XML; StatusCallbackEvents also as [] or a comma list', async () => {
  const r = await connect([['From', '+919876500000'], ['To', '+919876500002'], ['CallerId', '08047112233']],
    { json: false });
  assert.equal(r.status, 200);
  assert.match(r.type, /xml/);
  assert.match(r.text, /^<\?xml[^>]*>\s*<TwilioResponse><Call><Sid>[0-9a-f]{32}<\/Sid>.*<Status>in-progress<\/Status>/s);
  const a = await connect([['From', '+919876500000'], ['To', '+919876500002'], ['CallerId', '08047112233'],
    ['StatusCallback', sinkUrl('/x')], ['StatusCallbackEvents[]', 'terminal'], ['StatusCallbackEvents[]', 'answered']]);
  assert.deepEqual(ex.calls.get(a.body.Call.Sid).events, ['terminal', 'answered']);
  const b = await connect([['From', '+919876500000'], ['To', '+919876500002'], ['CallerId', '08047112233'],
    ['StatusCallback', sinkUrl('/x')], ['StatusCallbackEvents', 'terminal,answered']]);
  assert.deepEqual(ex.calls.get(b.body.Call.Sid).events, ['terminal', 'answered']);
  assert.equal(ex.calls.get(b.body.Call.Sid).contentType, 'multipart/form-data', 'the documented default');
});

test('bad connect requests get the RestException envelope; injected failures come in order, calls only', async () => {
  let r = await connect([['From', '+919876500000'], ['To', '+919876500003']]);
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, { RestException: { Status: 400, Message: 'Invalid Parameters' } });
  r = await connect([['From', '+919876500000'], ['CallerId', '08047112233']]);
  assert.equal(r.status, 400, 'To or Url is needed');
  r = await connect([['From', '+919876500000'], ['To', '+919876500003'], ['CallerId', '08047112233'],
    ['StatusCallbackEvents[0]', 'ringing']]);
  assert.equal(r.status, 400);
  r = await connect([['From', '+919876500000'], ['To', '+919876500003'], ['CallerId', '08047112233']],
    { authorization: 'Basic eDp5' });
  assert.equal(r.status, 401);
  assert.ok(r.body.RestException.Message);
  const before = ex.callsTo('+919876500003');
  const ok = [['From', '+919876500000'], ['To', '+919876500003'], ['CallerId', '08047112233']];
  ex.failCalls([{ status: 429 }, { status: 500 }, { status: 403, message: 'Insufficient balance' }]);
  assert.deepEqual((await connect(ok)).body, { RestException: { Status: 429, Message: 'Too Many Requests' } });
  assert.equal((await connect(ok)).status, 500);
  // An SMS in between takes none of the call failures.
  const sms = await fetch(`${ex.url}/v1/Accounts/${ex.sid}/Sms/send.json`, { method: 'POST',
    headers: { authorization: auth(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ From: 'ACME', To: '+919876500003', Body: 'between' }).toString() });
  assert.equal(sms.status, 200);
  assert.deepEqual((await connect(ok)).body, { RestException: { Status: 403, Message: 'Insufficient balance' } });
  assert.equal(ex.callsTo('+919876500003'), before);
  assert.equal((await connect(ok)).status, 200);
  assert.equal(ex.callsTo('+919876500003'), before + 1);
});

test('the StatusCallback as JSON: answered, then terminal, with the documented fields and Legs', async () => {
  const r = await connect([['From', '+919876500000'], ['To', '+919876500004'], ['CallerId', '08047112233'],
    ['Record', 'true'], ['StatusCallback', 'https://crm.example.org/exotel/status'],
    ['StatusCallbackEvents[0]', 'terminal'], ['StatusCallbackEvents[1]', 'answered'],
    ['StatusCallbackContentType', 'application/json'], ['CustomField', 'order-43']]);
  const sid = r.body.Call.Sid;
  const from = seen.length;
  const target = `http://127.0.0.1:${sink.address().port}`;
  assert.deepEqual(await ex.callStatus(sid, 'in-progress', { target }), { status: 200, text: 'ok' });
  assert.equal((await ex.callStatus(sid, 'completed', { duration: 41, target })).status, 200);
  const [answered, terminal] = seen.slice(from);
  assert.equal(answered.path, '/exotel/status', 'the StatusCallback path, on the target host');
  assert.equal(answered.type, 'application/json');
  const a = await fields(answered);
  assert.equal(a.EventType, 'answered');
  assert.equal(a.Status, 'in-progress');
  assert.equal(a.ConversationDuration, 0);
  const t = await fields(terminal);
  assert.deepEqual(Object.keys(t).sort(), ['CallSid', 'ConversationDuration', 'CustomField', 'DateCreated',
    'DateUpdated', 'Direction', 'EndTime', 'EventType', 'From', 'Legs', 'PhoneNumberSid', 'RecordingUrl',
    'StartTime', 'Status', 'To']);
  assert.equal(t.CallSid, sid);
  assert.equal(t.EventType, 'terminal');
  assert.equal(t.Status, 'completed');
  assert.equal(t.ConversationDuration, 41);
  assert.equal(t.CustomField, 'order-43');
  assert.equal(t.From, '+919876500000');
  assert.equal(t.To, '+919876500004');
  assert.equal(t.PhoneNumberSid, '08047112233');
  assert.equal(t.Direction, 'outbound-api');
  for (const k of ['DateUpdated', 'DateCreated', 'StartTime', 'EndTime']) assert.match(t[k], STAMP, k);
  assert.match(t.RecordingUrl, /^https:\/\/.+\.mp3$/);
  assert.deepEqual(t.Legs, [{ OnCallDuration: 41, Status: 'completed', AnsweredBy: 'NA' },
    { OnCallDuration: 41, Status: 'completed', AnsweredBy: 'NA' }]);
  assert.equal(ex.callCallbacks.at(-1).eventType, 'terminal');
  // Call Details shows the end.
  const d = await fetch(`${ex.url}/v1/Accounts/${ex.sid}/Calls/${sid}.json`, { headers: { authorization: auth() } });
  const { Call } = await d.json();
  assert.equal(Call.Status, 'completed');
  assert.equal(Call.Duration, 41);
  assert.equal(Call.RecordingUrl, t.RecordingUrl);
});

test('the StatusCallback by default: multipart/form-data, the four default fields, no answered event', async () => {
  const r = await connect([['From', '+919876500000'], ['To', '+919876500005'], ['CallerId', '08047112233'],
    ['StatusCallback', sinkUrl('/cb/form')]]);
  const sid = r.body.Call.Sid;
  const from = seen.length;
  assert.equal(await ex.callStatus(sid, 'in-progress'), null, 'answered is not subscribed');
  assert.equal((await ex.callStatus(sid, 'busy')).status, 200);
  assert.equal(seen.length, from + 1);
  const s = seen[from];
  assert.equal(s.path, '/cb/form');
  assert.match(s.type, /^multipart\/form-data; boundary=/);
  const f = await fields(s);
  assert.deepEqual(Object.keys(f).sort(), ['CallSid', 'DateUpdated', 'RecordingUrl', 'Status']);
  assert.equal(f.CallSid, sid);
  assert.equal(f.Status, 'busy');
  assert.equal(f.RecordingUrl, '');
  assert.match(f.DateUpdated, STAMP);
});

test('a call flow call (Url, no To): one leg; Legs flattened in multipart; no end-call route', async () => {
  const before = ex.callsTo('+919876500006');
  const r = await connect([['From', '+919876500006'], ['CallerId', '08047112233'],
    ['Url', `http://my.exotel.com/${ex.sid}/exoml/start_voice/1234`], ['StatusCallback', sinkUrl('/cb/flow')],
    ['StatusCallbackEvents[0]', 'terminal']]);
  assert.equal(r.status, 200);
  const sid = r.body.Call.Sid;
  assert.equal(ex.callsTo('+919876500006'), before + 1);
  assert.equal(ex.calls.get(sid).url, `http://my.exotel.com/${ex.sid}/exoml/start_voice/1234`);
  const from = seen.length;
  await ex.callStatus(sid, 'no-answer');
  const f = await fields(seen[from]);
  assert.equal(f.EventType, 'terminal');
  assert.equal(f.Status, 'no-answer');
  assert.equal(f.ConversationDuration, '0');
  assert.equal(f.To, '');
  assert.equal(f['Legs[0][Status]'], 'no-answer');
  assert.equal(f['Legs[0][OnCallDuration]'], '0');
  assert.equal(f['Legs[1][Status]'], undefined);
  // Exotel's Voice v1 API has no call hangup; neither has the fake.
  const end = await fetch(`${ex.url}/v1/Accounts/${ex.sid}/Calls/${sid}.json`, { method: 'POST',
    headers: { authorization: auth() }, body: new URLSearchParams({ Status: 'completed' }) });
  assert.equal(end.status, 404);
});
