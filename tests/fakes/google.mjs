// A local fake of Google's OAuth 2.0 token endpoint (service-account JWT
// bearer grant) and of the Firebase Cloud Messaging HTTP v1 send API, for
// black-box tests of a push plugin.
//
//   const sa = createServiceAccount({ projectId: 'acme-push' });
//   const google = await startGoogle({ serviceAccount: sa });
//   const file = sa.writeTo(tmpDir);          // after startGoogle: token_uri -> fake
//   ... point the plugin at `file` and at google.fcmUrl ...
//   google.fail([{ status: 503 }, { status: 429, headers: { 'retry-after': '2' } }]);
//   google.markUnregistered('stale-device-token');
//   google.failToken([{ status: 500 }]);
//   google.delivered('device-token')           // messages delivered to a token
//   google.sends / google.tokenRequests / google.tokens
//   google.advanceTime(3600)                   // expire issued access tokens
//   await google.close();
//
// Endpoints:  POST ${url}/token                                (google.tokenUri)
//             POST ${url}/v1/projects/{project}/messages:send  (google.fcmUrl = ${url}/v1)
//
// ---------------------------------------------------------------------------
// Wire format, and where each piece was confirmed
// ---------------------------------------------------------------------------
// Sources (stored copies):
//   [SA]  Google, "Using OAuth 2.0 for Server to Server Applications"
//         https://developers.google.com/identity/protocols/oauth2/service-account
//         (stored at developers.google.cn/identity/protocols/oauth2/service-account
//         and developers-dot-devsite-v2-prod.appspot.com/identity/protocols/OAuth2ServiceAccount;
//         claim table also quoted verbatim by
//         https://developers.qodex.ai/postman-team-collections/google-service-account-access/google-get-token)
//   [AIP] https://google.aip.dev/auth/4112  (service-account key file layout)
//   [GAL] https://cloud.google.com/nodejs/docs/reference/google-auth-library/latest/google-auth-library/credentialrequest
//   [IG]  invalid_grant bodies seen from Google's token endpoint:
//         https://github.com/googleapis/google-cloud-python/issues/10004
//         https://github.com/googleapis/google-api-nodejs-client/issues/2808
//         https://github.com/erebusnz/gapi-google-analytics-php-interface/issues/147
//         https://github.com/requests/requests-oauthlib/issues/247
//   [SEND] https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send
//   [MSG]  https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages
//          (field lists also from Google's generated clients:
//          https://docs.rs/google-fcm1/latest/google_fcm1/api/struct.Message.html,
//          .../struct.AndroidConfig.html, docs.rs google-fcm1 AndroidNotification,
//          https://googleapis.dev/dotnet/Google.Apis.FirebaseCloudMessaging.v1/latest/api/Google.Apis.FirebaseCloudMessaging.v1.Data.Message.html,
//          https://pub.dev/documentation/googleapis/latest/fcm_v1/Message-class.html)
//   [ERR]  https://firebase.google.com/docs/cloud-messaging/error-codes
//   [EC]   https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
//   [OBS]  FCM v1 answers quoted in public threads:
//          404 UNREGISTERED: https://dev.to/suzulabo/fcmno404metusezi-fil
//          400 invalid token (FcmError + BadRequest message.token):
//            https://github.com/firebase/firebase-admin-dotnet/issues/45
//            https://github.com/firebase/firebase-admin-python/issues/187
//          401 missing credential: https://github.com/beste/laravel-firebase/issues/254,
//            https://github.com/firebase/firebase-admin-dotnet/issues/503
//          401 WWW-Authenticate header: https://github.com/googleapis/google-api-ruby-client/issues/815
//          unknown field: https://github.com/laravel-notification-channels/fcm/issues/95
//   [PJ]   proto3 JSON mapping (field names, null, Duration "…s"):
//          https://protobuf.dev/programming-guides/proto3/#json (quoted in
//          https://github.com/awakesecurity/proto3-suite/issues/206)
//
// CONFIRMED
//   * Key file: {type: "service_account", project_id, private_key_id,
//     private_key (PKCS#8 PEM), client_email, client_id, auth_uri, token_uri,
//     auth_provider_x509_cert_url, client_x509_cert_url} [AIP].
//   * Token request: POST token_uri, application/x-www-form-urlencoded,
//     grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT> [SA].
//     JWT header {"alg":"RS256","typ":"JWT"}; claims iss (service account
//     email), scope (space-delimited), aud (= the token endpoint), exp
//     ("maximum of 1 hour after the issued time"), iat; optional sub [SA].
//   * Success body {access_token, expires_in, token_type: "Bearer"} [SA][GAL];
//     access tokens look like "ya29.…".
//   * Failure body {"error": "invalid_grant", "error_description": …} with
//     texts "Invalid JWT Signature.", "Invalid JWT: Token must be a
//     short-lived token and in a reasonable timeframe", "Invalid JWT: Failed
//     audience check. The right audience is <uri>" [IG].
//   * Send: POST https://fcm.googleapis.com/v1/{parent=projects/*}/messages:send,
//     body {"validate_only"?: bool, "message": Message}; success answers the
//     Message resource whose name is "projects/*/messages/{message_id}";
//     scopes firebase.messaging or cloud-platform [SEND][MSG].
//   * Message fields: name, data (map<string,string>), notification {title,
//     body, image}, android, webpush, apns, fcm_options, and the target union
//     token | topic | condition (newest reference adds fid) [MSG].
//     data keys must not be "from", "message_type", "google.*",
//     "gcm.notification.*" [MSG]. Payload limit 4096 bytes (2048 for topics)
//     [EC]. android.ttl max 4 weeks (2,419,200 s) [EC].
//   * Errors are {"error": {code, message, status, details?}} [ERR]. A bad
//     JSON value: 400 INVALID_ARGUMENT, message "Invalid value at
//     'message.data[0].value' (TYPE_STRING), 12", details
//     [{"@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations:
//     [{field, description}]}] [ERR]. A bad registration token: 400
//     INVALID_ARGUMENT "The registration token is not a valid FCM registration
//     token", details [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
//     "errorCode": "INVALID_ARGUMENT"}] (+ BadRequest field "message.token",
//     "Invalid registration token") [ERR][OBS]. An unknown field: "Invalid JSON
//     payload received. Unknown name \"data\" at 'message.notification':
//     Cannot find field." with BadRequest details only [OBS].
//   * Stale token: 404 NOT_FOUND "Requested entity was not found." details
//     [FcmError errorCode UNREGISTERED] [OBS][EC].
//   * FcmError codes and HTTP statuses: INVALID_ARGUMENT 400, UNREGISTERED 404,
//     SENDER_ID_MISMATCH 403, QUOTA_EXCEEDED 429, UNAVAILABLE 503, INTERNAL
//     500, THIRD_PARTY_AUTH_ERROR 401 [EC]. 429/5xx: retry with backoff,
//     honouring Retry-After [EC].
//   * 401 bodies: status UNAUTHENTICATED, "Request is missing required
//     authentication credential. Expected OAuth 2 access token, login cookie
//     or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
//     [OBS]; header WWW-Authenticate: Bearer realm="https://accounts.google.com/",
//     error="invalid_token" [OBS].
//   * proto3 JSON: parsers accept both the lowerCamelCase and the original
//     field name; null means "not set"; Duration is a string ending in "s" [PJ].
//
// NOT CONFIRMED (chosen here; see the report):
//   ? "kid" in the grant's JWT header: [SA] documents only {"alg","typ"} for
//     the OAuth grant (kid is documented for self-signed JWT access tokens).
//     Here kid is optional, but when present it must equal private_key_id.
//   ? Texts/codes for: missing grant_type/assertion (invalid_request),
//     other grant types (unsupported_grant_type), unknown iss ("Invalid
//     grant: account not found"), a malformed JWT, missing/insufficient
//     scope (invalid_scope "Invalid OAuth scope or ID token audience
//     provided."). Google itself would mint a token for any valid scope and
//     FCM would then answer 403; opts.scopeCheck = 'send' reproduces that,
//     the default 'grant' rejects the grant as the brief asks.
//   ? Clock skew allowed on iat/exp (opts.skewSeconds, default 60).
//   ? The 401 text for an invalid/expired token ("Request had invalid
//     authentication credentials. …").
//   ? Messages for: both/no target set, reserved data keys, oversized
//     payload, bad topic names, bad enum/duration/struct values, project
//     mismatch (403 PERMISSION_DENIED). These use FcmError INVALID_ARGUMENT +
//     BadRequest for FCM-level checks and BadRequest only for JSON-level ones.
//   ? The exact malformed-token rule (here: empty, whitespace, characters
//     outside [A-Za-z0-9_:.-], or markInvalid()).
//   ? Message id format ("0:<digits>%<hex>", by analogy with Google's docs
//     example) and the validate_only answer "projects/*/messages/fake_message_id".
//   ? Messages of scripted 429/5xx/403 answers.
import { createServer } from 'node:http';
import {
  createPublicKey, createSign, generateKeyPairSync, randomBytes, randomInt, verify,
} from 'node:crypto';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const SEND_SCOPES = [FCM_SCOPE, CLOUD_PLATFORM_SCOPE];
const DEVCONSOLE = 'See https://developers.google.com/identity/sign-in/web/devconsole-project.';
const MISSING_CREDENTIAL = 'Request is missing required authentication credential. Expected OAuth 2 '
  + `access token, login cookie or other valid authentication credential. ${DEVCONSOLE}`;
const INVALID_CREDENTIAL = 'Request had invalid authentication credentials. Expected OAuth 2 access '
  + `token, login cookie or other valid authentication credential. ${DEVCONSOLE}`;
const SHORT_LIVED = 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe';
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';
const BAD_REQUEST_TYPE = 'type.googleapis.com/google.rpc.BadRequest';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ------------------------------------------------------- service accounts

// A service account as Google's console downloads it [AIP], with a fresh
// RSA-2048 key. opts: projectId, name (account id), clientEmail,
// privateKeyId, clientId, tokenUri (startGoogle sets it to the fake's).
export function createServiceAccount(opts = {}) {
  const projectId = opts.projectId ?? 'switchboard-test';
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const clientEmail = opts.clientEmail
    ?? `${opts.name ?? 'switchboard-push'}@${projectId}.iam.gserviceaccount.com`;
  const json = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: opts.privateKeyId ?? randomBytes(20).toString('hex'),
    private_key: privateKey,
    client_email: clientEmail,
    client_id: opts.clientId ?? String(randomInt(1, 9)) + Array.from({ length: 20 },
      () => randomInt(0, 10)).join(''),
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: opts.tokenUri ?? 'https://oauth2.googleapis.com/token',
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    client_x509_cert_url:
      `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(clientEmail)}`,
    universe_domain: 'googleapis.com',
  };
  return {
    json,
    publicKeyPem: publicKey,
    privateKeyPem: privateKey,
    // Writes the key file (mode 0600) and returns its path. Call it after
    // startGoogle() so token_uri already points at the fake.
    writeTo(dir, fileName) {
      mkdirSync(dir, { recursive: true });
      const path = join(dir, fileName ?? `${projectId}-${json.private_key_id.slice(0, 12)}.json`);
      writeFileSync(path, `${JSON.stringify(json, null, 2)}\n`, { mode: 0o600 });
      return path;
    },
  };
}

// Splits a JWT without verifying it: {header, claims, signature (Buffer),
// signingInput}. Throws on a malformed token.
export function decodeAssertion(jwt) {
  if (typeof jwt !== 'string') throw new TypeError('JWT must be a string');
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error('JWT must have three dot-separated parts');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (!isObject(header) || !isObject(claims)) throw new Error('JWT header/claims must be objects');
  return { header, claims, signature: Buffer.from(parts[2], 'base64url'),
    signingInput: `${parts[0]}.${parts[1]}` };
}

// Builds a grant assertion the way Google's client libraries do [SA].
// sa: a createServiceAccount() result (or its json). overrides: claims to
// add/replace (undefined removes one). options: {privateKey (PEM; default
// the account's), header (merged into the JWT header), kid (true = the
// account's private_key_id, the default; false = none; string = that),
// now (unix seconds), ttl (seconds, default 3600)}.
export function signAssertion(sa, overrides = {}, options = {}) {
  const json = sa.json ?? sa;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const claims = {
    iss: json.client_email,
    scope: FCM_SCOPE,
    aud: json.token_uri,
    iat: now,
    exp: now + (options.ttl ?? 3600),
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete claims[k]; else claims[k] = v;
  }
  const header = { alg: 'RS256', typ: 'JWT' };
  const kid = options.kid ?? true;
  if (kid === true) header.kid = json.private_key_id;
  else if (typeof kid === 'string') header.kid = kid;
  Object.assign(header, options.header ?? {});
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createSign('RSA-SHA256').update(input).sign(options.privateKey ?? json.private_key);
  return `${input}.${b64url(sig)}`;
}

// A realistic-looking FCM registration token ("<22 chars>:APA91b<…>").
export function fakeDeviceToken() {
  return `${randomBytes(16).toString('base64url').slice(0, 22)}:APA91b${
    randomBytes(105).toString('base64url')}`;
}

// The FcmError errorCode inside a Google error body, or null.
export function fcmErrorCode(body) {
  const details = body?.error?.details;
  if (!Array.isArray(details)) return null;
  return details.find((d) => d?.['@type'] === FCM_ERROR_TYPE)?.errorCode ?? null;
}

// ------------------------------------------------------------ FCM schema
//
// Field name (proto, snake_case) -> type. Types: 'string', 'bool', 'int32',
// 'number', 'duration', 'timestamp', 'map' (map<string,string>), 'struct'
// (google.protobuf.Struct: any JSON object), 'strings' (repeated string),
// 'durations' (repeated Duration), {enum: [...], name}, {msg: SCHEMA, name}.

const msg = (name, fields) => ({ msg: fields, name });
const en = (name, values) => ({ enum: values, name });

const NOTIFICATION = msg('Notification', { title: 'string', body: 'string', image: 'string' });
const COLOR = msg('google.type.Color', { red: 'number', green: 'number', blue: 'number',
  alpha: 'number' });
const LIGHT_SETTINGS = msg('LightSettings', { color: COLOR, light_on_duration: 'duration',
  light_off_duration: 'duration' });
const ANDROID_NOTIFICATION = msg('AndroidNotification', {
  title: 'string', body: 'string', icon: 'string', color: 'string', sound: 'string',
  tag: 'string', click_action: 'string', body_loc_key: 'string', body_loc_args: 'strings',
  title_loc_key: 'string', title_loc_args: 'strings', channel_id: 'string', ticker: 'string',
  sticky: 'bool', event_time: 'timestamp', local_only: 'bool',
  notification_priority: en('AndroidNotification.NotificationPriority', ['PRIORITY_UNSPECIFIED',
    'PRIORITY_MIN', 'PRIORITY_LOW', 'PRIORITY_DEFAULT', 'PRIORITY_HIGH', 'PRIORITY_MAX']),
  default_sound: 'bool', default_vibrate_timings: 'bool', default_light_settings: 'bool',
  vibrate_timings: 'durations',
  visibility: en('AndroidNotification.Visibility', ['VISIBILITY_UNSPECIFIED', 'PRIVATE',
    'PUBLIC', 'SECRET']),
  notification_count: 'int32', light_settings: LIGHT_SETTINGS, image: 'string',
  bypass_proxy_notification: 'bool',
  proxy: en('AndroidNotification.Proxy', ['PROXY_UNSPECIFIED', 'ALLOW', 'DENY',
    'IF_PRIORITY_LOWERED']),
});
const ANDROID_CONFIG = msg('AndroidConfig', {
  collapse_key: 'string',
  priority: en('AndroidMessagePriority', ['NORMAL', 'HIGH']),
  ttl: 'duration', restricted_package_name: 'string', data: 'map',
  notification: ANDROID_NOTIFICATION,
  fcm_options: msg('AndroidFcmOptions', { analytics_label: 'string' }),
  direct_boot_ok: 'bool', bandwidth_constrained_ok: 'bool', restricted_satellite_ok: 'bool',
});
const WEBPUSH_CONFIG = msg('WebpushConfig', {
  headers: 'map', data: 'map', notification: 'struct',
  fcm_options: msg('WebpushFcmOptions', { link: 'string', analytics_label: 'string' }),
});
const APNS_CONFIG = msg('ApnsConfig', {
  headers: 'map', payload: 'struct',
  fcm_options: msg('ApnsFcmOptions', { analytics_label: 'string', image: 'string' }),
  live_activity_token: 'string',
});
const MESSAGE = msg('Message', {
  name: 'string', data: 'map', notification: NOTIFICATION, android: ANDROID_CONFIG,
  webpush: WEBPUSH_CONFIG, apns: APNS_CONFIG,
  fcm_options: msg('FcmOptions', { analytics_label: 'string' }),
  token: 'string', topic: 'string', condition: 'string', fid: 'string',
});
const TARGETS = ['token', 'topic', 'condition', 'fid'];
const SEND_REQUEST = msg('SendMessageRequest', { validate_only: 'bool', message: MESSAGE });

const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const TYPE_NAMES = { string: 'TYPE_STRING', bool: 'TYPE_BOOL', int32: 'TYPE_INT32',
  number: 'TYPE_FLOAT' };
const DURATION_RE = /^-?\d+(\.\d{1,9})?s$/;
const TIMESTAMP_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

// Parses `value` against a {msg} type the way proto3 JSON does: returns
// {value (snake_case keys, nulls dropped), violations: [{field, description}]}.
function parseProto(value, type, path, violations) {
  const fields = type.msg;
  const byJsonName = new Map();
  for (const name of Object.keys(fields)) {
    byJsonName.set(name, name);
    byJsonName.set(camel(name), name);
  }
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    const name = byJsonName.get(key);
    if (!name) {
      const description = path
        ? `Invalid JSON payload received. Unknown name "${key}" at '${path}': Cannot find field.`
        : `Invalid JSON payload received. Unknown name "${key}": Cannot find field.`;
      violations.push({ field: path, description });
      continue;
    }
    if (v === null) continue;
    const fpath = path ? `${path}.${name}` : name;
    const parsed = parseField(v, fields[name], fpath, violations);
    if (parsed !== undefined) out[name] = parsed;
  }
  return out;
}

function invalid(violations, path, typeName, v) {
  const description = `Invalid value at '${path}' (${typeName}), ${JSON.stringify(v)}`;
  violations.push({ field: path, description });
}

function parseField(v, type, path, violations) {
  if (typeof type === 'object' && type.msg) {
    if (!isObject(v)) return invalid(violations, path,
      `type.googleapis.com/google.firebase.fcm.v1.${type.name}`, v);
    return parseProto(v, type, path, violations);
  }
  if (typeof type === 'object' && type.enum) {
    if (typeof v === 'string' && type.enum.includes(v)) return v;
    if (Number.isInteger(v) && v >= 0 && v < type.enum.length) return type.enum[v];
    return invalid(violations, path, `type.googleapis.com/google.firebase.fcm.v1.${type.name}`, v);
  }
  switch (type) {
    case 'string':
      return typeof v === 'string' ? v : invalid(violations, path, 'TYPE_STRING', v);
    case 'bool':
      return typeof v === 'boolean' ? v : invalid(violations, path, 'TYPE_BOOL', v);
    case 'int32': {
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      return Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 ? n
        : invalid(violations, path, TYPE_NAMES.int32, v);
    }
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? v
        : invalid(violations, path, TYPE_NAMES.number, v);
    case 'duration':
      return typeof v === 'string' && DURATION_RE.test(v) ? v
        : invalid(violations, path, 'type.googleapis.com/google.protobuf.Duration', v);
    case 'durations':
      if (!Array.isArray(v)) return invalid(violations, path, 'TYPE_MESSAGE', v);
      return v.map((d, i) => parseField(d, 'duration', `${path}[${i}]`, violations));
    case 'timestamp':
      return typeof v === 'string' && TIMESTAMP_RE.test(v) ? v
        : invalid(violations, path, 'type.googleapis.com/google.protobuf.Timestamp', v);
    case 'strings':
      if (!Array.isArray(v)) return invalid(violations, path, 'TYPE_STRING', v);
      return v.map((s, i) => parseField(s, 'string', `${path}[${i}]`, violations));
    case 'struct':
      return isObject(v) ? v
        : invalid(violations, path, 'type.googleapis.com/google.protobuf.Struct', v);
    case 'map': {
      if (!isObject(v)) return invalid(violations, path, 'TYPE_MESSAGE', v);
      const out = {};
      Object.entries(v).forEach(([k, val], i) => {
        if (typeof val !== 'string') invalid(violations, `${path}[${i}].value`, 'TYPE_STRING', val);
        else out[k] = val;
      });
      return out;
    }
    default:
      throw new Error(`unknown schema type ${type}`);
  }
}

const RESERVED_DATA_KEY = (k) => k === 'from' || k === 'message_type'
  || k.startsWith('google.') || k.startsWith('gcm.notification.');
const TOPIC_RE = /^[a-zA-Z0-9\-_.~%]{1,900}$/;
const TOKEN_RE = /^[A-Za-z0-9_:.\-]+$/;

// FCM-level checks on a parsed message; returns {message, field} or null.
function checkMessage(m, { invalidTokens, maxPayloadBytes }) {
  const targets = TARGETS.filter((t) => m[t] !== undefined);
  if (targets.length === 0) {
    return { message: 'Recipient of the message is not set.', field: 'message' };
  }
  if (targets.length > 1) {
    return { message: `Only one of ${TARGETS.join(', ')} may be set; got ${targets.join(', ')}.`,
      field: 'message' };
  }
  if (m.token !== undefined && (!TOKEN_RE.test(m.token) || invalidTokens.has(m.token))) {
    return { token: true };
  }
  if (m.topic !== undefined && (m.topic.startsWith('/topics/') || !TOPIC_RE.test(m.topic))) {
    return { message: `Invalid topic name: ${m.topic}`, field: 'message.topic' };
  }
  if (m.condition !== undefined && !m.condition.trim()) {
    return { message: 'Invalid condition expression.', field: 'message.condition' };
  }
  for (const [where, data] of [['message.data', m.data], ['message.android.data', m.android?.data],
    ['message.webpush.data', m.webpush?.data]]) {
    for (const k of Object.keys(data ?? {})) {
      if (RESERVED_DATA_KEY(k)) return { message: `Invalid data payload key: ${k}`, field: where };
    }
  }
  const limit = m.topic !== undefined || m.condition !== undefined
    ? Math.floor(maxPayloadBytes / 2) : maxPayloadBytes;
  let size = 0;
  for (const [k, v] of Object.entries(m.data ?? {})) size += Buffer.byteLength(k) + Buffer.byteLength(v);
  if (size > limit) {
    return { message: `Message is too big: data payload is ${size} bytes, the limit is ${limit}.`,
      field: 'message.data' };
  }
  if (m.android?.ttl !== undefined) {
    const secs = Number(m.android.ttl.slice(0, -1));
    if (secs < 0 || secs > 2419200) {
      return { message: 'The ttl must be between 0 and 2419200 seconds (4 weeks).',
        field: 'message.android.ttl' };
    }
  }
  return null;
}

// ---------------------------------------------------------------- server

const STATUS_NAMES = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND', 409: 'ABORTED', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL',
  501: 'NOT_IMPLEMENTED', 502: 'UNAVAILABLE', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };
const FCM_CODES = { 400: 'INVALID_ARGUMENT', 401: 'THIRD_PARTY_AUTH_ERROR',
  403: 'SENDER_ID_MISMATCH', 404: 'UNREGISTERED', 429: 'QUOTA_EXCEEDED', 500: 'INTERNAL',
  503: 'UNAVAILABLE' };
const DEFAULT_MESSAGES = {
  400: 'Request contains an invalid argument.',
  401: 'Auth error from APNS or Web Push Service',
  403: 'SenderId mismatch',
  404: 'Requested entity was not found.',
  429: 'Quota exceeded for the message target.',
  500: 'Internal error encountered.',
  502: 'The service is currently unavailable.',
  503: 'The service is currently unavailable.',
  504: 'The request deadline was exceeded.',
};

export function googleError(code, message, details) {
  const error = { code, message: message ?? DEFAULT_MESSAGES[code] ?? 'Error',
    status: STATUS_NAMES[code] ?? 'UNKNOWN' };
  if (details?.length) error.details = details;
  return { error };
}

const fcmDetail = (errorCode) => ({ '@type': FCM_ERROR_TYPE, errorCode });
const badRequest = (violations) => ({ '@type': BAD_REQUEST_TYPE, fieldViolations: violations });

// opts: serviceAccount (createServiceAccount() result or its json; one is
// made when absent) or serviceAccounts: [...]; tokenTtl (seconds, 3600);
// skewSeconds (60); audiences (extra accepted aud values); scopeCheck
// ('grant' | 'send'); maxPayloadBytes (4096); keepTokenUri (don't point
// the accounts' token_uri at the fake).
export async function startGoogle(opts = {}) {
  const tokenTtl = opts.tokenTtl ?? 3600;
  const skew = opts.skewSeconds ?? 60;
  const scopeCheck = opts.scopeCheck ?? 'grant';
  const maxPayloadBytes = opts.maxPayloadBytes ?? 4096;
  const given = opts.serviceAccounts ?? [opts.serviceAccount ?? createServiceAccount()];
  const accounts = new Map();	// client_email -> {json, publicKey}
  let clockOffsetMs = 0;
  const sendScript = [];
  const tokenScript = [];
  const hanging = new Set();
  const issued = new Map();	// access token -> record
  const unregistered = new Set();
  const invalidTokens = new Set();

  const nowMs = () => Date.now() + clockOffsetMs;
  const nowSec = () => Math.floor(nowMs() / 1000);

  const google = {
    serviceAccounts: given,
    serviceAccount: given[0],
    requests: [],	// every HTTP request: {method, path, headers, body, at}
    tokenRequests: [],	// {at, form, assertion, header, claims, status, response, error?}
    tokens: [],	// {accessToken, clientEmail, scopes, sub, issuedAt, expiresAt, revoked}
    sends: [],	// {at, project, accessToken, clientEmail, body, message, normalized,
    // validateOnly, status, response, scripted?}
    hanging,

    // Script the next answers of the send endpoint, one step per request
    // that passed authentication: {status, headers?, json?, message?,
    // errorCode?} (a Google error body built from status by default),
    // {unregistered: true} (404 UNREGISTERED), {invalidToken: true} (400
    // INVALID_ARGUMENT, bad registration token), {senderIdMismatch: true},
    // {quotaExceeded: true, retryAfter?}, {hang: true} (never answered),
    // {reset: true} (connection destroyed), {delayMs} (answered normally, or
    // as the step says, after the delay).
    fail(steps) { sendScript.push(...steps); },
    // Same for POST /token: {status, json?, headers?}, {hang}, {reset}, {delayMs}.
    failToken(steps) { tokenScript.push(...steps); },
    markUnregistered(token) { unregistered.add(token); },
    markRegistered(token) { unregistered.delete(token); },
    markInvalid(token) { invalidTokens.add(token); },
    // Revokes one access token, or every issued one.
    revoke(accessToken) {
      for (const t of google.tokens) if (!accessToken || t.accessToken === accessToken) t.revoked = true;
    },
    advanceTime(seconds) { clockOffsetMs += seconds * 1000; },
    now: nowSec,

    // Messages (as sent) delivered to a registration token; without an
    // argument, every delivered message.
    delivered(token) {
      return google.sends.filter((s) => s.status === 200 && !s.validateOnly
        && (token === undefined || s.normalized?.token === token)).map((s) => s.message);
    },
    // The issued-token record for an access token, or undefined.
    tokenInfo(accessToken) { return issued.get(accessToken); },
    // Resolves when at least n sends (any outcome) were recorded.
    async waitForSends(n, timeoutMs = 60000) {
      const t0 = Date.now();
      while (google.sends.length < n) {
        if (Date.now() - t0 > timeoutMs) {
          throw new Error(`timed out waiting for ${n} FCM sends (have ${google.sends.length})`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return google.sends;
    },

    reset() {
      sendScript.length = 0;
      tokenScript.length = 0;
      google.requests.length = 0;
      google.tokenRequests.length = 0;
      google.tokens.length = 0;
      google.sends.length = 0;
      issued.clear();
      unregistered.clear();
      invalidTokens.clear();
      clockOffsetMs = 0;
    },
  };

  // ----------------------------------------------------------- helpers

  const sendJson = (res, status, json, headers = {}) => {
    const out = JSON.stringify(json, null, 2);
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8',
      'content-length': Buffer.byteLength(out), 'cache-control': 'private',
      ...headers });
    res.end(out);
  };

  // Runs a scripted step: returns true when it answered (or hung).
  const runStep = (res, step) => {
    if (step.hang) {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return true;
    }
    if (step.reset) {
      res.socket?.destroy();
      return true;
    }
    return false;
  };

  // ------------------------------------------------------ token endpoint

  function tokenError(res, rec, status, error, description) {
    const body = { error, error_description: description };
    rec.status = status;
    rec.response = body;
    rec.error = `${error}: ${description}`;
    sendJson(res, status, body);
  }

  function verifyGrant(res, rec) {
    const form = rec.form;
    if (!form.grant_type) {
      return tokenError(res, rec, 400, 'invalid_request', 'Missing required parameter: grant_type');
    }
    if (form.grant_type !== JWT_BEARER) {
      return tokenError(res, rec, 400, 'unsupported_grant_type',
        `Invalid grant_type: ${form.grant_type}`);
    }
    if (!form.assertion) {
      return tokenError(res, rec, 400, 'invalid_request', 'Missing required parameter: assertion');
    }
    let decoded;
    try {
      decoded = decodeAssertion(form.assertion);
    } catch (e) {
      return tokenError(res, rec, 400, 'invalid_grant', `Invalid JWT: ${e.message}`);
    }
    rec.header = decoded.header;
    rec.claims = decoded.claims;
    const { header, claims } = decoded;
    if (header.alg !== 'RS256') {
      return tokenError(res, rec, 400, 'invalid_grant', 'Invalid JWT Signature.');
    }
    const account = accounts.get(claims.iss);
    if (!account) {
      return tokenError(res, rec, 400, 'invalid_grant', 'Invalid grant: account not found');
    }
    if (header.kid !== undefined && header.kid !== account.json.private_key_id) {
      return tokenError(res, rec, 400, 'invalid_grant', 'Invalid JWT Signature.');
    }
    const ok = verify('sha256', Buffer.from(decoded.signingInput), account.publicKey,
      decoded.signature);
    if (!ok) return tokenError(res, rec, 400, 'invalid_grant', 'Invalid JWT Signature.');
    const audiences = [google.tokenUri, ...(opts.audiences ?? [])];
    if (!audiences.includes(claims.aud)) {
      return tokenError(res, rec, 400, 'invalid_grant',
        `Invalid JWT: Failed audience check. The right audience is ${google.tokenUri}`);
    }
    const now = nowSec();
    const { iat, exp } = claims;
    if (!Number.isInteger(iat) || !Number.isInteger(exp) || exp <= iat || exp - iat > 3600
        || iat > now + skew || exp < now - skew) {
      return tokenError(res, rec, 400, 'invalid_grant', SHORT_LIVED);
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [];
    if (!scopes.length || (scopeCheck === 'grant' && !scopes.some((s) => SEND_SCOPES.includes(s)))) {
      return tokenError(res, rec, 400, 'invalid_scope',
        'Invalid OAuth scope or ID token audience provided.');
    }
    const accessToken = `ya29.fake-${randomBytes(48).toString('base64url')}`;
    const token = { accessToken, clientEmail: claims.iss, projectId: account.json.project_id,
      scopes, sub: claims.sub, issuedAt: nowMs(), expiresAt: nowMs() + tokenTtl * 1000,
      revoked: false };
    google.tokens.push(token);
    issued.set(accessToken, token);
    const body = { access_token: accessToken, expires_in: tokenTtl, token_type: 'Bearer' };
    rec.status = 200;
    rec.response = body;
    rec.accessToken = accessToken;
    return sendJson(res, 200, body, { 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate',
      pragma: 'no-cache' });
  }

  function handleToken(req, res, raw) {
    const form = Object.fromEntries(new URLSearchParams(raw));
    const rec = { at: nowMs(), contentType: req.headers['content-type'], rawBody: raw, form,
      assertion: form.assertion, status: null };
    google.tokenRequests.push(rec);
    const step = tokenScript.shift();
    const go = () => {
      if (step && (step.status || step.json)) {
        const status = step.status ?? 400;
        const json = step.json ?? (status >= 500
          ? { error: 'internal_failure', error_description: 'Backend Error' }
          : { error: 'invalid_grant', error_description: 'scripted failure' });
        rec.status = status;
        rec.response = json;
        rec.scripted = true;
        return sendJson(res, status, json, step.headers);
      }
      if (!/^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) {
        return tokenError(res, rec, 400, 'invalid_request',
          'Content-Type must be application/x-www-form-urlencoded');
      }
      return verifyGrant(res, rec);
    };
    if (step && runStep(res, step)) { rec.scripted = true; return; }
    if (step?.delayMs) setTimeout(go, step.delayMs); else go();
  }

  // --------------------------------------------------------- FCM send

  function authenticate(req) {
    const h = req.headers.authorization;
    if (h === undefined) return { error: MISSING_CREDENTIAL };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m) return { error: INVALID_CREDENTIAL };
    const t = issued.get(m[1]);
    if (!t || t.revoked || t.expiresAt <= nowMs()) return { error: INVALID_CREDENTIAL, accessToken: m[1] };
    return { token: t, accessToken: m[1] };
  }

  function handleSend(req, res, raw, project) {
    const rec = { at: nowMs(), project, rawBody: raw, status: null };
    google.sends.push(rec);
    const answer = (status, json, headers) => {
      rec.status = status;
      rec.response = json;
      sendJson(res, status, json, headers);
    };
    const auth = authenticate(req);
    rec.accessToken = auth.accessToken;
    if (auth.error) {
      rec.error = 'unauthenticated';
      return answer(401, googleError(401, auth.error), {
        'www-authenticate': 'Bearer realm="https://accounts.google.com/", error="invalid_token"' });
    }
    rec.clientEmail = auth.token.clientEmail;
    try { rec.body = JSON.parse(raw); } catch { /* handled below */ }
    if (isObject(rec.body) && isObject(rec.body.message)) rec.message = rec.body.message;

    const step = sendScript.shift();
    const go = () => {
      if (step && (step.status || step.json || step.unregistered || step.invalidToken
          || step.senderIdMismatch || step.quotaExceeded)) {
        rec.scripted = true;
        if (step.unregistered) return answer(404, googleError(404, undefined, [fcmDetail('UNREGISTERED')]));
        if (step.invalidToken) return answer(400, invalidTokenBody());
        if (step.senderIdMismatch) {
          return answer(403, googleError(403, undefined, [fcmDetail('SENDER_ID_MISMATCH')]));
        }
        if (step.quotaExceeded) {
          return answer(429, googleError(429, undefined, [fcmDetail('QUOTA_EXCEEDED')]),
            step.retryAfter !== undefined ? { 'retry-after': String(step.retryAfter) } : {});
        }
        const status = step.status ?? 500;
        const code = step.errorCode ?? FCM_CODES[status];
        const json = step.json ?? googleError(status, step.message, code ? [fcmDetail(code)] : []);
        return answer(status, json, step.headers);
      }
      return deliver(rec, auth, answer);
    };
    if (step && runStep(res, step)) { rec.scripted = true; return; }
    if (step?.delayMs) setTimeout(go, step.delayMs); else go();
  }

  const invalidTokenBody = () => googleError(400,
    'The registration token is not a valid FCM registration token',
    [fcmDetail('INVALID_ARGUMENT'),
      badRequest([{ field: 'message.token', description: 'Invalid registration token' }])]);

  function deliver(rec, auth, answer) {
    if (rec.body === undefined) {
      const description = 'Invalid JSON payload received. Unexpected token.';
      return answer(400, googleError(400, description, [badRequest([{ description }])]));
    }
    if (!isObject(rec.body)) {
      const description = `Invalid JSON payload received. Expected an object, got ${
        JSON.stringify(rec.body)}.`;
      return answer(400, googleError(400, description, [badRequest([{ description }])]));
    }
    if (scopeCheck === 'send' && !auth.token.scopes.some((s) => SEND_SCOPES.includes(s))) {
      return answer(403, googleError(403, 'Request had insufficient authentication scopes.', [{
        '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT',
        domain: 'googleapis.com', metadata: { service: 'fcm.googleapis.com',
          method: 'google.firebase.fcm.v1.FcmService.SendMessage' } }]));
    }
    if (rec.project !== auth.token.projectId) {
      return answer(403, googleError(403, `Permission 'cloudmessaging.messages.create' denied on `
        + `resource '//cloudresourcemanager.googleapis.com/projects/${rec.project}' (or it may not exist).`));
    }
    const violations = [];
    const parsed = parseProto(rec.body, SEND_REQUEST, '', violations);
    if (!violations.length && parsed.message === undefined) {
      violations.push({ field: 'message', description: 'Required field "message" is missing.' });
    }
    if (violations.length) {
      rec.violations = violations;
      return answer(400, googleError(400, violations.map((v) => v.description).join('\n'),
        [badRequest(violations)]));
    }
    rec.normalized = parsed.message;
    rec.validateOnly = parsed.validate_only === true;
    const bad = checkMessage(parsed.message, { invalidTokens, maxPayloadBytes });
    if (bad?.token) return answer(400, invalidTokenBody());
    if (bad) {
      rec.violations = [{ field: bad.field, description: bad.message }];
      return answer(400, googleError(400, bad.message,
        [fcmDetail('INVALID_ARGUMENT'), badRequest(rec.violations)]));
    }
    if (parsed.message.token !== undefined && unregistered.has(parsed.message.token)) {
      return answer(404, googleError(404, undefined, [fcmDetail('UNREGISTERED')]));
    }
    const id = rec.validateOnly ? 'fake_message_id'
      : `0:${nowMs()}${String(randomInt(0, 1000)).padStart(3, '0')}%${randomBytes(8).toString('hex')}`;
    rec.name = `projects/${rec.project}/messages/${id}`;
    return answer(200, { name: rec.name });
  }

  // --------------------------------------------------------------- route

  const handler = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const u = new URL(req.url, 'http://fake.google');
      const path = decodeURIComponent(u.pathname);
      google.requests.push({ method: req.method, path, url: req.url, headers: req.headers,
        body: raw, at: nowMs() });
      let m;
      if (path === '/token') {
        if (req.method !== 'POST') return sendJson(res, 405, { error: 'invalid_request',
          error_description: `method ${req.method} not allowed` });
        return handleToken(req, res, raw);
      }
      if ((m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path))) {
        if (req.method !== 'POST') return sendJson(res, 404, googleError(404, 'Not found.'));
        return handleSend(req, res, raw, m[1]);
      }
      return sendJson(res, 404, googleError(404, `The requested URL ${path} was not found.`));
    });
  };

  const server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  google.port = server.address().port;
  google.url = `http://127.0.0.1:${google.port}`;
  google.tokenUri = `${google.url}/token`;
  google.fcmUrl = `${google.url}/v1`;
  google.sendUrl = (project = google.serviceAccount.json?.project_id
    ?? google.serviceAccount.project_id) => `${google.fcmUrl}/projects/${project}/messages:send`;

  for (const sa of given) {
    const json = sa.json ?? sa;
    if (!opts.keepTokenUri) json.token_uri = google.tokenUri;
    accounts.set(json.client_email, { json, publicKey: createPublicKey(json.private_key) });
  }

  google.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  };
  return google;
}
