// A local fake of the Daily.co REST API (https://api.daily.co/v1) and of
// Daily's webhook sender, for black-box tests of the `calls` plugin.
//
//   const daily = await startDaily();            // daily.url = http://127.0.0.1:PORT/v1
//   ... point the plugin at daily.url with daily.apiKey ...
//   daily.fail('/rooms', [{ status: 500 }, { hang: true }, { delayMs: 300 }]);
//   daily.rooms.get('standup')                    // live room objects, by name
//   daily.tokens                                  // every issued token, decoded
//   daily.tokenValidFor(token, 'standup')         // signature + time + room check
//   daily.advanceTime(120)                        // move the fake's clock (seconds)
//   POST {daily.url}/webhooks {url}               // registers a webhook the way Daily
//                                                 // does: only after url answers 200 to
//                                                 // the verification POST {"test":"test"}
//   daily.webhooks, daily.webhookChecks           // registered hooks, verification results
//   await daily.deliver(ev)                       // ev to every registered hook, signed
//   const ev = webhookEvent('meeting.ended', 'standup');
//   await sendWebhook('http://127.0.0.1:8888/api/v1/calls/webhook', secret, ev);
//   await daily.close();
//
// ---------------------------------------------------------------------------
// Wire format, and where each piece was confirmed
// ---------------------------------------------------------------------------
// Sources (stored copies of Daily's published reference):
//   [E]  https://docs.daily.co/docs/rest-api/errors(.md)
//   [R]  https://docs.daily.co/reference/rest-api/rooms(.md)
//   [RC] https://docs.daily.co/reference/rest-api/rooms/config
//        https://docs.daily.co/reference/rest-api/rooms/create-room.md (OpenAPI)
//        https://docs.daily.co/reference/rest-api/rooms/get-room.md (OpenAPI)
//   [RD] https://docs.daily.co/reference/rest-api/rooms/delete-room
//   [T]  https://docs.daily.co/reference/rest-api/meeting-tokens
//        https://docs.daily.co/reference/rest-api/meeting-tokens/config
//        https://docs.daily.co/reference/rest-api/meeting-tokens/create-meeting-token(.md)
//   [TV] https://docs.daily.co/reference/rest-api/meeting-tokens/validate-meeting-token
//   [TS] https://docs.daily.co/reference/rest-api/meeting-tokens/self-signing-tokens
//        https://docs.daily.co/docs/guides/privacy-and-security/self-signing-tokens
//        https://docs.daily.co/docs/guides/privacy-and-security/meeting-tokens
//   [W]  https://docs.daily.co/reference/rest-api/webhooks(.md)
//        https://docs.daily.co/reference/rest-api/webhooks/create-webhook
//   [WS] https://docs.daily.co/reference/rest-api/webhooks/events/meeting-started(.md)
//   [WE] https://docs.daily.co/reference/rest-api/webhooks/events/meeting-ended(.md)
//   [G]  Daily's own OpenAPI-generated client, github.com/daily-co/daily-ruby:
//        daily.yaml, docs/RoomProperties.md, docs/MeetingTokenRequestProperties.md,
//        docs/ListRooms200Response.md, docs/MeetingStarted(Payload).md,
//        docs/MeetingEnded(Payload).md, docs/RoomsApi.md
//
// CONFIRMED
//   * Base https://api.daily.co/v1; auth "Authorization: Bearer <API key>" [G][T].
//   * Error body {"error": <stable string>, "info": <human text>} [E]. Error
//     strings: authentication-error (API key not valid), authorization-header-
//     error (header missing or malformed), forbidden-error, json-parsing-error
//     (body not JSON), invalid-request-error (bad/missing parameters),
//     rate-limit-error, server-error [E]. Statuses 400/401/403/404/429/5xx [E].
//   * POST /rooms body {name?, privacy?, properties?}; the OpenAPI body schema
//     says additionalProperties: false [RC]. privacy "public"|"private",
//     default "public" [RC]. name: only [A-Za-z0-9_-], at most 128 chars, a
//     random name like "w2pp2cf4kltgFACPKXmX" when absent [RC].
//   * Room object {id (uuid), name, api_created, privacy, url
//     ("https://<domain>.daily.co/<name>"), created_at (ISO 8601 with ms),
//     config {...properties that were set}} [R][RC][G].
//   * Room property names and JSON types: see ROOM_PROPS below [G]
//     (RoomProperties.md, generated from Daily's OpenAPI). nbf/exp are unix
//     seconds (integer) [RC]; max_participants integer, default 200, "contact
//     us if you need to set the limit above 200" [RC][G].
//   * GET /rooms -> {total_count, data: [room...]} [G]; GET /rooms/:name -> room
//     [RC]; DELETE /rooms/:name -> {deleted: true, name} [RD][G]; a missing
//     room is a 404 whose body is {error, info} [RD][G]. An expired room (exp
//     passed) is treated as implicitly deleted; DELETE on it answers the 404
//     with an extra "deleted": true [RD].
//   * POST /meeting-tokens body {properties: {...}} -> {token} [T]; property
//     names and types: TOKEN_PROPS below [G][T]. A token without room_name is
//     valid for every room of the domain [T].
//   * Tokens are JWTs (HS256 header in Daily's example) whose payload uses
//     abbreviated claims: r room_name, o is_owner, u user_name, ud user_id,
//     d domain_id, ss enable_screenshare, vo start_video_off, ao
//     start_audio_off, er enable_recording, ejt eject_at_token_exp, eje
//     eject_after_elapsed, uil lang, p permissions, ... (TOKEN_CLAIMS) plus iat
//     [TS]. Daily's REST-created example token decodes to {"r":"room-0253",
//     "d":"25df...","iat":1548722207} [T], i.e. the REST endpoint issues the
//     same abbreviated form.
//   * GET /meeting-tokens/:token validates; errors when the token is not the
//     domain's or its exp is past; ?ignoreNbf=true skips the nbf check; on
//     success "an object that lists the token's properties" [TV].
//   * Webhook events: {version: "1.0.0", type, id, payload, event_ts};
//     meeting.started payload {start_ts, meeting_id, room}; meeting.ended
//     payload {start_ts, end_ts, meeting_id, room}; timestamps are unix
//     seconds (number); meeting.started ids look like "met-sta-<uuid>"
//     [WS][WE][G].
//   * The webhook "hmac" secret is BASE-64 encoded and is what a receiver uses
//     to verify a webhook's signature [W].
//   * Meeting-token user_id: "max length is 36 characters" [T] (the config
//     page; also quoted by third-party Daily clients). A longer one is a 400.
//   * Registering a webhook (POST /webhooks {url, eventTypes?, hmac?,
//     basicAuth?, retryType?}) first POSTs a verification body to url; unless
//     url answers 200 "relatively quickly" (within "a few seconds"), Daily
//     answers 400 and creates nothing [W]. The body is {"test":"test"}.
//     The hmac is returned with the webhook; if none is given one is
//     provisioned [W].
//
// NOT CONFIRMED (the stored docs stop short, or say nothing); chosen here:
//   ? Webhook signing construction. The stored copy of [W] is cut right after
//     "This secret must be BASE-64 enc..." and never shows the algorithm.
//     Implemented as the brief describes: headers X-Webhook-Signature and
//     X-Webhook-Timestamp, signature = base64(HMAC-SHA256(key =
//     base64decode(secret), "<timestamp>.<raw body>")). One independent public
//     receiver of Daily webhooks computes exactly this; another public one
//     does something else. The timestamp unit (seconds vs ms) is unknown:
//     seconds are used; pass a timestamp (e.g. Date.now(), milliseconds) to
//     override, and receivers should accept both.
//   ? Whether the verification POST of a new webhook carries signature
//     headers: it is sent before the hmac is handed out, so it is sent
//     unsigned here (opts.signVerification: sign it with the hook's hmac).
//   ? user_name length: the stored docs give no limit. The fake refuses more
//     than opts.maxUserName (default 100) characters so an unbounded name is
//     caught; a client should stay well below it.
//   ? exp and nbf: documented as unix seconds [RC][T], with no upper bound.
//     The fake refuses values from 1e11 on (year 5138 in seconds, or any
//     millisecond timestamp since 1973): such an exp is a unit mistake, and
//     a room or token that never expires.
//   ? Counting "characters": the fake counts Unicode code points.
//   ? The webhook object's fields (uuid, url, hmac, basicAuth, retryType,
//     eventTypes, state, failedCount, lastMomentPushed, domainId, createdAt,
//     updatedAt) follow [W]'s response list; GET /webhooks answers an array.
//   ? meeting.ended id prefix ("met-end-<uuid>" by analogy with "met-sta-").
//     meeting.ended has no documented "duration" field, so none is added
//     (pass it in `extra` if a test wants one).
//   ? The 404 error string: the stored [E] table is cut after server-error;
//     "not-found" is used.
//   ? Missing vs wrong Authorization: [E] lists authorization-header-error for
//     a missing/malformed header but its own example body for a bad header
//     format is invalid-request-error. Used: 401 authorization-header-error
//     for missing/malformed, 401 authentication-error for a wrong key.
//   ? The exact "info" texts (Daily says treat them as debug only [E]).
//   ? Duplicate room name: 400 invalid-request-error "a room named X already
//     exists" (Daily's exact answer is not in the stored docs).
//   ? Rejecting unknown *properties* (inside `properties`) and wrong types with
//     400 invalid-request-error: only the top-level additionalProperties:false
//     is documented; Daily's per-property behaviour is assumed.
//   ? Rejecting a room exp in the past (opts.rejectPastExp, default true) and
//     max_participants < 1: not documented. The upper bound 200
//     (opts.maxParticipants) is the documented default/limit.
//   ? enable_recording values: local, cloud, raw-tracks are in [G]; rtp-tracks
//     and output-byte-stream only in third-party pages; all five accepted.
//   ? Claims for token properties missing from the [TS] table
//     (enable_prejoin_ui, enable_live_captions_ui, enable_terse_logging) keep
//     their full names; the inner abbreviations of `permissions` are not
//     applied (the object is stored under "p" as given).
//   ? GET /meeting-tokens/:token answers the properties with their full names
//     (plus domain_id); the key form of Daily's answer and its error body for
//     an invalid/expired token (used: 400 invalid-request-error) are assumed.
//   ? Signing key: Daily's REST tokens are presumably signed with the
//     domain's API key (self-signed ones are); this fake signs with a random
//     key private to it, so only the fake can verify them.
//   ? GET /rooms ordering (newest first here) and pagination beyond ?limit.
import { createServer } from 'node:http';
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

// --------------------------------------------------------------- schemas

// Room properties and their JSON types, from Daily's RoomProperties model [G].
const LANGS = ['de', 'en', 'es', 'fi', 'fr', 'it', 'jp', 'ka', 'nl', 'no', 'pt', 'pt-BR', 'pl',
  'ru', 'sv', 'tr', 'user'];
const RECORDING = ['local', 'cloud', 'raw-tracks', 'rtp-tracks', 'output-byte-stream'];
const GEOS = ['af-south-1', 'ap-northeast-2', 'ap-southeast-1', 'ap-southeast-2', 'ap-south-1',
  'eu-central-1', 'eu-west-2', 'sa-east-1', 'us-east-1', 'us-west-2'];
const RTMP_GEOS = ['us-west-2', 'eu-central-1', 'ap-south-1'];

const ROOM_PROPS = {
  nbf: 'integer', exp: 'integer', max_participants: 'integer', eject_after_elapsed: 'integer',
  enable_people_ui: 'boolean', enable_pip_ui: 'boolean', enable_emoji_reactions: 'boolean',
  enable_hand_raising: 'boolean', enable_prejoin_ui: 'boolean', enable_live_captions_ui: 'boolean',
  enable_network_ui: 'boolean', enable_noise_cancellation_ui: 'boolean',
  enable_breakout_rooms: 'boolean', enable_knocking: 'boolean', enable_screenshare: 'boolean',
  enable_video_processing_ui: 'boolean', enable_chat: 'boolean',
  enable_shared_chat_history: 'boolean', start_video_off: 'boolean', start_audio_off: 'boolean',
  owner_only_broadcast: 'boolean', eject_at_room_exp: 'boolean', enable_advanced_chat: 'boolean',
  enable_hidden_participants: 'boolean', enable_mesh_sfu: 'boolean',
  enable_adaptive_simulcast: 'boolean', enable_multiparty_adaptive_simulcast: 'boolean',
  enforce_unique_user_ids: 'boolean', experimental_optimize_large_calls: 'boolean',
  disable_rtmp_geo_fallback: 'boolean', enable_terse_logging: 'boolean',
  enable_transcription_storage: 'boolean',
  sfu_switchover: 'number',
  enable_recording: RECORDING, lang: LANGS, geo: GEOS, rtmp_geo: RTMP_GEOS,
  meeting_join_hook: 'string', recordings_template: 'string',
  recordings_bucket: 'object', auto_transcription_settings: 'object',
  transcription_bucket: 'object', permissions: 'object',
  streaming_endpoints: 'array?',
};

// Meeting-token properties [G][T][TS].
const TOKEN_PROPS = {
  room_name: 'string', user_name: 'string', user_id: 'string',
  redirect_on_meeting_exit: 'string', meeting_join_hook: 'string',
  nbf: 'integer', exp: 'integer', eject_after_elapsed: 'integer',
  is_owner: 'boolean', eject_at_token_exp: 'boolean', enable_screenshare: 'boolean',
  start_video_off: 'boolean', start_audio_off: 'boolean', enable_prejoin_ui: 'boolean',
  enable_live_captions_ui: 'boolean', enable_recording_ui: 'boolean',
  enable_terse_logging: 'boolean', auto_start_transcription: 'boolean',
  close_tab_on_exit: 'boolean', knocking: 'boolean', start_cloud_recording: 'boolean',
  intercom_join_alert: 'boolean',
  enable_recording: RECORDING, lang: LANGS,
  permissions: 'object', start_cloud_recording_opts: 'object',
};

// Property -> JWT claim, Daily's abbreviation table [TS]. Anything absent
// here keeps its full name in the JWT (not confirmed, see above).
export const TOKEN_CLAIMS = {
  nbf: 'nbf', exp: 'exp', domain_id: 'd', room_name: 'r', user_id: 'ud', user_name: 'u',
  is_owner: 'o', knocking: 'k', close_tab_on_exit: 'ctoe', redirect_on_meeting_exit: 'rome',
  intercom_join_alert: 'ij', start_cloud_recording: 'sr', start_cloud_recording_opts: 'sro',
  auto_start_transcription: 'ast', enable_recording: 'er', enable_screenshare: 'ss',
  start_video_off: 'vo', start_audio_off: 'ao', meeting_join_hook: 'mjh',
  eject_at_token_exp: 'ejt', eject_after_elapsed: 'eje', lang: 'uil', enable_recording_ui: 'erui',
  permissions: 'p',
};
const CLAIM_TO_PROP = Object.fromEntries(Object.entries(TOKEN_CLAIMS).map(([p, c]) => [c, p]));

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// One property against its type; returns an error text or null.
function checkType(key, value, type) {
  if (Array.isArray(type)) {
    return typeof value === 'string' && type.includes(value)
      ? null : `${key} must be one of ${type.map((t) => JSON.stringify(t)).join(', ')}`;
  }
  switch (type) {
    case 'integer': return Number.isInteger(value) ? null : `${key} must be an integer`;
    case 'number': return typeof value === 'number' && Number.isFinite(value) ? null
      : `${key} must be a number`;
    case 'boolean': return typeof value === 'boolean' ? null : `${key} must be a boolean`;
    case 'string': return typeof value === 'string' ? null : `${key} must be a string`;
    case 'object': return isObject(value) ? null : `${key} must be an object`;
    case 'array?': return value === null || Array.isArray(value) ? null
      : `${key} must be an array or null`;
    default: return `${key} has an unknown type`;
  }
}

function checkProps(props, schema, what) {
  for (const [key, value] of Object.entries(props)) {
    if (!Object.hasOwn(schema, key)) return `unknown ${what} property: ${key}`;
    const err = checkType(key, value, schema[key]);
    if (err) return err;
  }
  return null;
}

// Limits beyond the JSON types (see the header for which are documented).
export const ROOM_NAME_MAX = 128;
export const USER_ID_MAX = 36;
export const USER_NAME_MAX = 100;
// From here a "unix seconds" value is a millisecond timestamp by mistake.
export const SECONDS_LIMIT = 1e11;
const ROOM_NAME_RE = /^[A-Za-z0-9_-]+$/;
const chars = (s) => [...s].length;

function checkRoomName(key, name) {
  if (typeof name !== 'string' || !name.length) return `${key} must be a non-empty string`;
  if (!ROOM_NAME_RE.test(name)) return `${key} may contain only A-Z, a-z, 0-9, "-" and "_"`;
  if (name.length > ROOM_NAME_MAX) return `${key} must be at most ${ROOM_NAME_MAX} characters`;
  return null;
}

// nbf/exp: whole unix seconds; a millisecond value is refused.
function checkTimes(props) {
  for (const key of ['nbf', 'exp']) {
    if (props[key] !== undefined && (props[key] < 0 || props[key] >= SECONDS_LIMIT)) {
      return `${key} must be a unix timestamp in seconds`;
    }
  }
  if (props.nbf !== undefined && props.exp !== undefined && props.nbf >= props.exp) {
    return 'nbf must be before exp';
  }
  return null;
}

function checkTokenLimits(props, maxUserName) {
  if (props.room_name !== undefined) {
    const err = checkRoomName('room_name', props.room_name);
    if (err) return err;
  }
  if (props.user_id !== undefined && chars(props.user_id) > USER_ID_MAX) {
    return `user_id must be at most ${USER_ID_MAX} characters`;
  }
  if (props.user_name !== undefined && chars(props.user_name) > maxUserName) {
    return `user_name must be at most ${maxUserName} characters`;
  }
  return checkTimes(props);
}

// ------------------------------------------------------------------ JWT

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function signJwt(payload, key) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// Verifies an HS256 JWT signed with key; returns the payload or null.
function verifyJwt(token, key) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') return null;
    const want = createHmac('sha256', key).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    return isObject(payload) ? payload : null;
  } catch {
    return null;
  }
}

export function claimsToProperties(claims) {
  const props = {};
  for (const [k, v] of Object.entries(claims)) {
    if (k === 'iat') continue;
    props[CLAIM_TO_PROP[k] ?? k] = v;
  }
  return props;
}

// -------------------------------------------------------------- webhooks

// The headers Daily sends with a webhook POST. secret is the webhook's
// base64 "hmac" secret [W]; body the exact raw body (string or Buffer).
// Construction NOT confirmed from Daily's docs: see the header comment.
export function signWebhook(secret, body, timestamp = Math.floor(Date.now() / 1000)) {
  const ts = String(timestamp);
  const key = Buffer.from(String(secret), 'base64');
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(String(body));
  const signature = createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${ts}.`), raw])).digest('base64');
  return { 'X-Webhook-Signature': signature, 'X-Webhook-Timestamp': ts };
}

// A webhook event as Daily documents it [WS][WE]. extra: top-level keys id,
// version, type and event_ts override those fields; every other key is
// merged into payload (e.g. {start_ts, end_ts, meeting_id}).
export function webhookEvent(type, roomName, extra = {}) {
  const now = Date.now() / 1000;
  const { id, version, event_ts: eventTs, type: typeOverride, ...rest } = extra;
  // "met-sta-<uuid>" is Daily's documented id for meeting.started [WS];
  // "met-end-" and the prefixes of other types are assumed.
  const prefix = { 'meeting.started': 'met-sta', 'meeting.ended': 'met-end' }[type]
    ?? type.split('.').map((p) => p.slice(0, 3)).join('-');
  const payload = { meeting_id: randomUUID(), room: roomName };
  if (type === 'meeting.started') {
    payload.start_ts = Math.floor(now);
  } else if (type === 'meeting.ended') {
    payload.start_ts = Math.floor(now) - 60;
    payload.end_ts = Math.floor(now);
  }
  Object.assign(payload, rest);
  return {
    version: version ?? '1.0.0',
    type: typeOverride ?? type,
    id: id ?? `${prefix}-${randomUUID()}`,
    payload,
    event_ts: eventTs ?? now,
  };
}

// POSTs event (object, or an exact raw string) to targetUrl signed with
// secret, like Daily's sender. Returns {status, headers, body, text,
// sent: {rawBody, headers}}. options: {timestamp, headers, timeoutMs}.
export async function sendWebhook(targetUrl, secret, event, options = {}) {
  const rawBody = typeof event === 'string' ? event : JSON.stringify(event);
  const headers = {
    'Content-Type': 'application/json',
    ...signWebhook(secret, rawBody, options.timestamp),
    ...(options.headers ?? {}),
  };
  const res = await fetch(targetUrl, { method: 'POST', headers, body: rawBody,
    signal: AbortSignal.timeout(options.timeoutMs ?? 10000) });
  const text = await res.text();
  let body;
  try { body = text ? JSON.parse(text) : undefined; } catch { body = undefined; }
  return { status: res.status, headers: Object.fromEntries(res.headers), body, text,
    sent: { rawBody, headers } };
}

// ------------------------------------------------------------ the server

const DEFAULT_ERROR = {
  400: 'invalid-request-error', 401: 'authentication-error', 403: 'forbidden-error',
  404: 'not-found', 429: 'rate-limit-error',
};

function randomRoomName() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(20), (b) => alphabet[b % alphabet.length]).join('');
}

// opts: apiKey, domain (subdomain used in room urls), domainId,
// maxParticipants (upper bound, default 200), rejectPastExp (default true),
// maxUserName (default USER_NAME_MAX), webhookVerifyTimeoutMs (how long a
// new webhook's url may take to answer its verification, default 3000),
// signVerification (sign that POST with the hook's hmac, default false).
export async function startDaily(opts = {}) {
  const apiKey = opts.apiKey ?? randomBytes(32).toString('hex');
  const domain = opts.domain ?? 'switchboard-test';
  const domainId = opts.domainId ?? randomUUID();
  const maxParticipants = opts.maxParticipants ?? 200;
  const rejectPastExp = opts.rejectPastExp ?? true;
  const maxUserName = opts.maxUserName ?? USER_NAME_MAX;
  const verifyTimeoutMs = opts.webhookVerifyTimeoutMs ?? 3000;
  const signVerification = opts.signVerification ?? false;
  const signingKey = randomBytes(32);	// private to this fake
  let clockOffsetMs = 0;
  const scripts = [];	// {prefix, method, steps}
  const hanging = new Set();

  const nowMs = () => Date.now() + clockOffsetMs;
  const nowSec = () => Math.floor(nowMs() / 1000);
  const expired = (room) => Number.isInteger(room.config.exp) && room.config.exp <= nowSec();

  const daily = {
    apiKey, domain, domainId,
    requests: [],
    rooms: new Map(),
    tokens: [],	// {token, properties, claims, at}
    webhooks: new Map(),	// uuid -> webhook object (with its hmac)
    webhookChecks: [],	// {url, status, ms, error?}: each verification POST
    hanging,

    // Script the next responses for requests whose path starts with
    // pathPrefix ("/rooms" and "/v1/rooms" are the same). Each step is
    // {status, json?, body?, headers?} (a Daily-shaped error body by
    // default), {hang: true} (never answered), or {delayMs} (answered
    // normally, or with status/json if given, after the delay). Steps are
    // consumed in order; afterwards the route behaves normally again.
    // options.method limits the script to one HTTP method.
    fail(pathPrefix, steps, options = {}) {
      const prefix = pathPrefix.startsWith('/v1') ? pathPrefix : `/v1${pathPrefix}`;
      scripts.push({ prefix, method: options.method?.toUpperCase(), steps: [...steps] });
    },

    reset() {
      scripts.length = 0;
      daily.requests.length = 0;
      daily.rooms.clear();
      daily.tokens.length = 0;
      daily.webhooks.clear();
      daily.webhookChecks.length = 0;
      clockOffsetMs = 0;
    },

    // Moves the fake's clock (room/token exp and nbf checks) by seconds.
    advanceTime(seconds) { clockOffsetMs += seconds * 1000; },
    now: nowSec,

    count(method, path) {
      const p = path.startsWith('/v1') ? path : `/v1${path}`;
      return daily.requests.filter((r) => r.method === method && r.path === p).length;
    },

    // {ok, reason?, claims?, properties?} for a token issued by this fake.
    decodeToken(token, { ignoreNbf = false } = {}) {
      const claims = verifyJwt(token, signingKey);
      if (!claims) return { ok: false, reason: 'invalid token' };
      if (claims.d !== domainId) return { ok: false, reason: 'token is not for this domain' };
      const now = nowSec();
      if (Number.isInteger(claims.exp) && claims.exp <= now) {
        return { ok: false, reason: 'token is expired', claims };
      }
      if (!ignoreNbf && Number.isInteger(claims.nbf) && claims.nbf > now) {
        return { ok: false, reason: 'token is not yet valid (nbf)', claims };
      }
      return { ok: true, claims, properties: claimsToProperties(claims) };
    },

    // Sends event to every registered webhook, signed with its hmac, as
    // Daily does when something happens; resolves to sendWebhook() results.
    deliver(event, options = {}) {
      return Promise.all([...daily.webhooks.values()].map((h) => sendWebhook(h.url, h.hmac,
        event, options)));
    },

    // True only when token verifies, is inside its nbf/exp window and is
    // bound to roomName (a token without room_name is *not* accepted here,
    // although Daily would let it into any room [T]).
    tokenValidFor(token, roomName) {
      const d = daily.decodeToken(token);
      return d.ok && d.claims.r === roomName;
    },
  };

  // -------------------------------------------------------------- helpers

  const send = (res, status, json, headers = {}) => {
    const out = JSON.stringify(json);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(out), ...headers });
    res.end(out);
  };
  const error = (res, status, code, info, extra = {}) =>
    send(res, status, { error: code, info, ...extra });

  function takeStep(method, path) {
    let best = null;
    for (const s of scripts) {
      if (!s.steps.length || !path.startsWith(s.prefix)) continue;
      if (s.method && s.method !== method) continue;
      if (!best || s.prefix.length > best.prefix.length) best = s;
    }
    return best ? best.steps.shift() : null;
  }

  function authorize(req, res) {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    if (!m) {
      error(res, 401, 'authorization-header-error',
        h === undefined ? 'missing Authorization header' : 'bad Authorization header format');
      return false;
    }
    const got = Buffer.from(m[1]);
    const want = Buffer.from(apiKey);
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      error(res, 401, 'authentication-error', 'the API key is not valid');
      return false;
    }
    return true;
  }

  function roomObject(room) {
    return structuredClone(room);
  }

  // ----------------------------------------------------------- handlers

  function createRoom(res, body) {
    if (!isObject(body)) return error(res, 400, 'invalid-request-error', 'body must be an object');
    for (const k of Object.keys(body)) {
      if (!['name', 'privacy', 'properties'].includes(k)) {
        return error(res, 400, 'invalid-request-error', `unknown parameter: ${k}`);
      }
    }
    let { name, privacy = 'public', properties = {} } = body;
    if (name !== undefined) {
      const err = checkRoomName('name', name);
      if (err) return error(res, 400, 'invalid-request-error', err);
    } else {
      do name = randomRoomName(); while (daily.rooms.has(name));
    }
    if (privacy !== 'public' && privacy !== 'private') {
      return error(res, 400, 'invalid-request-error', 'privacy must be "public" or "private"');
    }
    if (!isObject(properties)) {
      return error(res, 400, 'invalid-request-error', 'properties must be an object');
    }
    const bad = checkProps(properties, ROOM_PROPS, 'room') ?? checkTimes(properties);
    if (bad) return error(res, 400, 'invalid-request-error', bad);
    const now = nowSec();
    if (properties.exp !== undefined && rejectPastExp && properties.exp <= now) {
      return error(res, 400, 'invalid-request-error', 'exp must be in the future');
    }
    if (properties.max_participants !== undefined
        && (properties.max_participants < 1 || properties.max_participants > maxParticipants)) {
      return error(res, 400, 'invalid-request-error',
        `max_participants must be between 1 and ${maxParticipants}`);
    }
    if (properties.meeting_join_hook !== undefined && properties.meeting_join_hook.length > 255) {
      return error(res, 400, 'invalid-request-error', 'meeting_join_hook is limited to 255 characters');
    }
    const existing = daily.rooms.get(name);
    if (existing && !expired(existing)) {
      return error(res, 400, 'invalid-request-error', `a room named ${name} already exists`);
    }
    const room = {
      id: randomUUID(),
      name,
      api_created: true,
      privacy,
      url: `https://${domain}.daily.co/${name}`,
      created_at: new Date(nowMs()).toISOString(),
      config: structuredClone(properties),
    };
    daily.rooms.set(name, room);
    return send(res, 200, roomObject(room));
  }

  function listRooms(res, query) {
    const live = [...daily.rooms.values()].filter((r) => !expired(r))
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    const limit = Math.max(1, Math.min(100, Number.parseInt(query.get('limit') ?? '100', 10) || 100));
    return send(res, 200, { total_count: live.length, data: live.slice(0, limit).map(roomObject) });
  }

  function getRoom(res, name) {
    const room = daily.rooms.get(name);
    if (!room || expired(room)) return error(res, 404, 'not-found', `room ${name} not found`);
    return send(res, 200, roomObject(room));
  }

  function deleteRoom(res, name) {
    const room = daily.rooms.get(name);
    if (!room) return error(res, 404, 'not-found', `room ${name} not found`);
    daily.rooms.delete(name);
    if (expired(room)) {
      return error(res, 404, 'not-found', `room ${name} not found`, { deleted: true });
    }
    return send(res, 200, { deleted: true, name });
  }

  function createToken(res, body) {
    if (!isObject(body)) return error(res, 400, 'invalid-request-error', 'body must be an object');
    for (const k of Object.keys(body)) {
      if (k !== 'properties') return error(res, 400, 'invalid-request-error', `unknown parameter: ${k}`);
    }
    const properties = body.properties ?? {};
    if (!isObject(properties)) {
      return error(res, 400, 'invalid-request-error', 'properties must be an object');
    }
    const bad = checkProps(properties, TOKEN_PROPS, 'meeting token')
      ?? checkTokenLimits(properties, maxUserName);
    if (bad) return error(res, 400, 'invalid-request-error', bad);
    const claims = {};
    for (const [k, v] of Object.entries(properties)) claims[TOKEN_CLAIMS[k] ?? k] = v;
    claims.d = domainId;
    claims.iat = nowSec();
    const token = signJwt(claims, signingKey);
    daily.tokens.push({ token, properties: structuredClone(properties), claims, at: nowMs() });
    return send(res, 200, { token });
  }

  function validateToken(res, token, query) {
    const d = daily.decodeToken(token, { ignoreNbf: query.get('ignoreNbf') === 'true' });
    if (!d.ok) return error(res, 400, 'invalid-request-error', d.reason);
    return send(res, 200, d.properties);
  }

  // Daily's check before it creates a webhook: POST {"test":"test"} to
  // url, and only a 200 in time will do [W].
  async function verifyWebhookUrl(url, hmac) {
    const raw = '{"test":"test"}';
    const headers = { 'Content-Type': 'application/json',
      ...(signVerification ? signWebhook(hmac, raw) : {}) };
    const t0 = Date.now();
    const check = { url, status: 0, ms: 0 };
    try {
      const r = await fetch(url, { method: 'POST', headers, body: raw,
        signal: AbortSignal.timeout(verifyTimeoutMs) });
      await r.arrayBuffer();
      check.status = r.status;
    } catch (e) {
      check.error = e.name === 'TimeoutError' ? 'timeout' : String(e.message ?? e);
    }
    check.ms = Date.now() - t0;
    daily.webhookChecks.push(check);
    return check;
  }

  async function createWebhook(res, body) {
    if (!isObject(body)) return error(res, 400, 'invalid-request-error', 'body must be an object');
    const allowed = ['url', 'eventTypes', 'hmac', 'basicAuth', 'retryType'];
    for (const k of Object.keys(body)) {
      if (!allowed.includes(k)) return error(res, 400, 'invalid-request-error', `unknown parameter: ${k}`);
    }
    const { url, eventTypes = [], basicAuth = null, retryType = 'circuit-breaker' } = body;
    let parsed;
    try { parsed = new URL(url); } catch { parsed = null; }
    if (typeof url !== 'string' || !parsed || !/^https?:$/.test(parsed.protocol)) {
      return error(res, 400, 'invalid-request-error', 'url must be an http(s) URL');
    }
    if (!Array.isArray(eventTypes) || eventTypes.some((t) => typeof t !== 'string')) {
      return error(res, 400, 'invalid-request-error', 'eventTypes must be an array of strings');
    }
    if (!['circuit-breaker', 'exponential'].includes(retryType)) {
      return error(res, 400, 'invalid-request-error', 'retryType must be "circuit-breaker" or "exponential"');
    }
    if (basicAuth !== null && typeof basicAuth !== 'string') {
      return error(res, 400, 'invalid-request-error', 'basicAuth must be a string');
    }
    let hmac = body.hmac;
    if (hmac === undefined) hmac = randomBytes(32).toString('base64');
    else if (typeof hmac !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(hmac)
        || Buffer.from(hmac, 'base64').length === 0) {
      return error(res, 400, 'invalid-request-error', 'hmac must be BASE-64 encoded');
    }
    const check = await verifyWebhookUrl(url, hmac);
    if (check.status !== 200) {
      return error(res, 400, 'invalid-request-error', `the webhook url did not answer 200 to the `
        + `verification request (${check.error ?? `HTTP ${check.status}`})`);
    }
    const at = new Date(nowMs()).toISOString();
    const hook = { uuid: randomUUID(), url, hmac, basicAuth, retryType, eventTypes, state: 'ACTIVE',
      failedCount: 0, lastMomentPushed: null, domainId, createdAt: at, updatedAt: at };
    daily.webhooks.set(hook.uuid, hook);
    return send(res, 200, structuredClone(hook));
  }

  function route(req, res, path, query, body) {
    const m = req.method;
    let match;
    if (path === '/v1/rooms' || path === '/v1/rooms/') {
      if (m === 'POST') return createRoom(res, body);
      if (m === 'GET') return listRooms(res, query);
    } else if ((match = /^\/v1\/rooms\/([^/]+)\/?$/.exec(path))) {
      const name = decodeURIComponent(match[1]);
      if (m === 'GET') return getRoom(res, name);
      if (m === 'DELETE') return deleteRoom(res, name);
    } else if (path === '/v1/meeting-tokens' || path === '/v1/meeting-tokens/') {
      if (m === 'POST') return createToken(res, body);
    } else if ((match = /^\/v1\/meeting-tokens\/([^/]+)\/?$/.exec(path))) {
      if (m === 'GET') return validateToken(res, decodeURIComponent(match[1]), query);
    } else if (path === '/v1/webhooks' || path === '/v1/webhooks/') {
      if (m === 'POST') {
        return createWebhook(res, body).catch((e) => error(res, 500, 'server-error', String(e)));
      }
      if (m === 'GET') return send(res, 200, [...daily.webhooks.values()]);
    } else if ((match = /^\/v1\/webhooks\/([^/]+)\/?$/.exec(path))) {
      const hook = daily.webhooks.get(decodeURIComponent(match[1]));
      if (!hook) return error(res, 404, 'not-found', 'no such webhook');
      if (m === 'GET') return send(res, 200, hook);
      if (m === 'DELETE') {
        daily.webhooks.delete(hook.uuid);
        return send(res, 200, hook);
      }
    } else {
      return error(res, 404, 'not-found', `no such endpoint: ${m} ${path}`);
    }
    return error(res, 405, 'invalid-request-error', `method ${m} not allowed on ${path}`);
  }

  const handler = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString();
      const u = new URL(req.url, 'http://fake.daily');
      const path = u.pathname;
      let body;
      let parseError = false;
      if (rawBody.length) {
        try { body = JSON.parse(rawBody); } catch { parseError = true; }
      }
      const rec = { method: req.method, path, url: req.url,
        query: Object.fromEntries(u.searchParams), headers: req.headers, body, rawBody,
        at: Date.now(), step: null };
      daily.requests.push(rec);

      const handle = (step) => {
        if (step && step.status !== undefined) {
          if (step.json !== undefined || step.body !== undefined) {
            const out = step.json !== undefined ? JSON.stringify(step.json) : String(step.body);
            res.writeHead(step.status, { 'content-type': step.json !== undefined
              ? 'application/json; charset=utf-8' : 'text/plain', ...(step.headers ?? {}) });
            return res.end(out);
          }
          const code = DEFAULT_ERROR[step.status] ?? (step.status >= 500 ? 'server-error'
            : 'invalid-request-error');
          return error(res, step.status, code, `scripted ${step.status}`);
        }
        if (!authorize(req, res)) return undefined;
        if (parseError) return error(res, 400, 'json-parsing-error', 'request body is not valid JSON');
        return route(req, res, path, u.searchParams, body);
      };

      const step = takeStep(req.method, path);
      rec.step = step ?? null;	// the scripted step it got, if any
      if (step?.hang) {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (step?.delayMs) {
        hanging.add(res);
        setTimeout(() => {
          hanging.delete(res);
          if (!res.destroyed) handle(step);
        }, step.delayMs);
        return;
      }
      handle(step);
    });
  };

  const server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  daily.port = server.address().port;
  daily.origin = `http://127.0.0.1:${daily.port}`;
  daily.url = `${daily.origin}/v1`;
  daily.signWebhook = signWebhook;
  daily.webhookEvent = webhookEvent;
  daily.sendWebhook = sendWebhook;
  daily.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  };
  return daily;
}
