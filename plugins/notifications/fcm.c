/*
 * FCM HTTP v1 for the notifications plugin.
 *
 * The service account is read in setup(), in the parent, before the
 * chroot: its RSA key stays parsed in memory, the workers inherit it.
 *
 * Access tokens come from Google's OAuth2 JWT-bearer grant (a JWT signed
 * RS256 with the account's key, POSTed to its token_uri) and are shared
 * by every worker and node through the one row of notifications_fcm_auth:
 * sealed (api->seal), with expires_at (Google's expiry minus 60 s) and a
 * refresh lease, refreshing_until.  A push that finds no valid token
 * takes the lease with a conditional UPDATE (free or expired, and the
 * token still not valid: row locks make exactly one taker) and asks
 * Google; one that finds the lease taken retries in a second.  So a
 * token is fetched once per expiry, not once per send.  A 401 from FCM
 * invalidates the token it was answered for (by generation), not a newer
 * one another worker has just stored.
 *
 * The notifications.push job sends one message to one device token and
 * finishes from the HTTP callback: 2xx done (written at once, in a
 * transaction: FCM has no idempotency key, so the window for a repeat is
 * kept as small as it can be); an unregistered or invalid token is
 * removed from wherever it is stored and the job is done; 401 retries
 * with a fresh token; 429 and 5xx retry honouring Retry-After; a
 * transport error retries; any other refusal is dead at once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <switchboard/plugin.h>

#include "notifications.h"

#define FCM_SCOPE	"https://www.googleapis.com/auth/firebase.messaging"
#define GRANT_PREFIX	"grant_type=urn%3Aietf%3Aparams%3Aoauth%3A" \
			"grant-type%3Ajwt-bearer&assertion="
#define SA_MAX		(64 * 1024)	/* bytes of the key file */
#define ACCESS_MAX	4096		/* bytes of an access token */

static const struct sb_host_api	*api;

/* Set in setup(), in the parent; the workers inherit them. */
static EVP_PKEY		*sa_key;
static char		 sa_email[256];
static char		 sa_kid[128];
static char		 sa_token_uri[512];
static char		 send_url[1024];
static unsigned int	 timeout_ms;
static int		 enabled;

/* One push in flight: owned by the callbacks, push_free() on every path. */
struct push {
	struct sb_plugin	*p;
	struct sb_job		*job;
	char			*device;	/* the registration token */
	char			*body;		/* the request body */
	char			*bearer;	/* "Bearer <token>" */
	char			 generation[32];	/* of that token */
};

static void	push_run(struct sb_job *);
static void	token_invalidate(struct sb_plugin *, const char *);
static void	grant_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	send_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);

/* Not const: setup() sets max_attempts from push_max_attempts. */
static struct sb_job_kind push_kind = {
	.name = "notifications.push", .run = push_run,
	.max_attempts = 10, .timeout_s = 30, .backoff_s = 2
};

static void
push_free(struct push *ps)
{
	if (ps == NULL)
		return;
	if (ps->bearer != NULL) {
		OPENSSL_cleanse(ps->bearer, strlen(ps->bearer));
		free(ps->bearer);
	}
	free(ps->device);
	free(ps->body);
	free(ps);
}

/* ---- JWT ---- */

/* base64url without padding (RFC 7515's JWS encoding) of in[0..n) into
 * out, which holds b64url_len(n) bytes; NUL-terminated. */
static void
b64url(const unsigned char *in, size_t n, char *out)
{
	int	len, i;

	len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

static size_t
b64url_len(size_t n)
{
	return ((n + 2) / 3 * 4 + 1);
}

/*
 * The grant's assertion: header {"alg":"RS256","typ":"JWT","kid"}, claims
 * iss, scope, aud (the token endpoint), iat, exp (an hour on), signed
 * RS256.  Caller frees; NULL on failure.
 */
static char *
jwt_make(void)
{
	EVP_MD_CTX	*ctx = NULL;
	json_t		*hdr, *claims;
	char		*h = NULL, *c = NULL, *input = NULL, *jwt = NULL;
	unsigned char	*sig = NULL;
	size_t		 hl, cl, il, siglen = 0;
	json_int_t	 now = (json_int_t)time(NULL);

	hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT",
	    "kid", sa_kid);
	claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", sa_email,
	    "scope", FCM_SCOPE, "aud", sa_token_uri, "iat", now, "exp",
	    now + 3600);
	if (hdr != NULL)
		h = json_dumps(hdr, JSON_COMPACT);
	if (claims != NULL)
		c = json_dumps(claims, JSON_COMPACT);
	json_decref(hdr);
	json_decref(claims);
	if (h == NULL || c == NULL)
		goto out;
	hl = strlen(h);
	cl = strlen(c);
	il = b64url_len(hl) + b64url_len(cl);
	if ((input = malloc(il)) == NULL)
		goto out;
	b64url((unsigned char *)h, hl, input);
	strcat(input, ".");
	b64url((unsigned char *)c, cl, input + strlen(input));
	il = strlen(input);

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, sa_key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, (unsigned char *)input,
	    il) != 1 || (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input,
	    il) != 1)
		goto out;
	if ((jwt = malloc(il + 1 + b64url_len(siglen))) == NULL)
		goto out;
	memcpy(jwt, input, il);
	jwt[il] = '.';
	b64url(sig, siglen, jwt + il + 1);
out:
	EVP_MD_CTX_free(ctx);
	free(sig);
	free(input);
	free(h);
	free(c);
	return (jwt);
}

/* ---- the shared access token ---- */

/* The valid token into ps->bearer and ps->generation: 1, 0 when there
 * is none, -1 on a database error. */
static int
token_read(struct push *ps)
{
	struct sb_db_res	*r;
	const char		*params[1] = { sa_email };
	char			*plain;
	size_t			 len;
	int			 rc = 0;

	r = api->db_query(ps->p, "SELECT access_token, generation FROM "
	    "notifications_fcm_auth WHERE id = 1 AND access_token IS NOT NULL "
	    "AND account = $1 AND expires_at > now()", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		return (0);
	}
	if ((plain = api->unseal(ps->p, api->db_value(r, 0, 0), &len)) ==
	    NULL) {
		/* Sealed under another data key, or altered: drop it, so
		 * that the lease can be taken and a new one fetched. */
		token_invalidate(ps->p, api->db_value(r, 0, 1));
		api->db_free(r);
		return (0);
	}
	if (len > 0 && len <= ACCESS_MAX &&
	    (ps->bearer = malloc(len + 8)) != NULL) {
		snprintf(ps->bearer, len + 8, "Bearer %s", plain);
		snprintf(ps->generation, sizeof(ps->generation), "%s",
		    api->db_value(r, 0, 1));
		rc = 1;
	}
	OPENSSL_cleanse(plain, len);
	free(plain);
	api->db_free(r);
	return (rc);
}

/* Take the refresh lease: 1 won, 0 someone holds it (or the token just
 * became valid), -1 database error. */
static int
token_lease(struct push *ps)
{
	struct sb_db_res	*r;
	const char		*params[1] = { sa_email };
	int			 rc;

	r = api->db_query(ps->p, "UPDATE notifications_fcm_auth SET "
	    "refreshing_until = now() + interval '15 seconds' WHERE id = 1 "
	    "AND (refreshing_until IS NULL OR refreshing_until < now()) AND "
	    "NOT coalesce(access_token IS NOT NULL AND account = $1 AND "
	    "expires_at > now(), false) RETURNING generation", 1, params);
	rc = api->db_ok(r) ? api->db_rows(r) == 1 : -1;
	api->db_free(r);
	return (rc);
}

static void
token_release(struct sb_plugin *p)
{
	api->db_free(api->db_query(p, "UPDATE notifications_fcm_auth SET "
	    "refreshing_until = NULL WHERE id = 1", 0, NULL));
}

/* FCM refused the token of `generation`: nobody uses it again. */
static void
token_invalidate(struct sb_plugin *p, const char *generation)
{
	const char	*params[1] = { generation };

	api->db_free(api->db_query(p, "UPDATE notifications_fcm_auth SET "
	    "expires_at = NULL, updated_at = now() WHERE id = 1 AND "
	    "generation = $1::bigint", 1, params));
}

/* ---- the job ---- */

/* Finished: done, and written now. */
static void
push_done(struct push *ps, json_t *result)
{
	if (api->db_begin(ps->p) == SB_OK) {
		api->job_done(ps->job, result);
		if (api->db_commit(ps->p) != SB_OK)
			api->db_rollback(ps->p);
	} else
		api->job_done(ps->job, result);
	push_free(ps);
}

static void
push_retry(struct push *ps, const char *error, unsigned int after)
{
	api->job_retry(ps->job, error, after);
	push_free(ps);
}

static void
send_start(struct push *ps)
{
	const struct sb_http_header	 h[] = {
		{ "Content-Type", "application/json; charset=UTF-8" },
		{ "Authorization", ps->bearer },
	};
	struct sb_http_request		 r;

	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = send_url;
	r.headers = h;
	r.nheaders = 2;
	r.body = ps->body;
	r.body_len = strlen(ps->body);
	r.timeout_ms = timeout_ms;
	r.upstream = "fcm";
	r.max_response = 65536;
	if (api->http_send(ps->p, &r, send_done, ps) != SB_OK) {
		api->job_fail(ps->job, "the FCM request was refused as "
		    "malformed");
		push_free(ps);
	}
}

static void
grant_start(struct push *ps)
{
	const struct sb_http_header	 h[] = {
		{ "Content-Type", "application/x-www-form-urlencoded" },
		{ "Accept", "application/json" },
	};
	struct sb_http_request		 r;
	char				*jwt, *form;
	size_t				 len;

	if ((jwt = jwt_make()) == NULL) {
		token_release(ps->p);
		push_retry(ps, "cannot sign the token request", 0);
		return;
	}
	len = sizeof(GRANT_PREFIX) + strlen(jwt);
	if ((form = malloc(len)) == NULL) {
		free(jwt);
		token_release(ps->p);
		push_retry(ps, "out of memory", 0);
		return;
	}
	snprintf(form, len, "%s%s", GRANT_PREFIX, jwt);
	free(jwt);
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = sa_token_uri;
	r.headers = h;
	r.nheaders = 2;
	r.body = form;
	r.body_len = strlen(form);
	r.timeout_ms = timeout_ms;
	r.upstream = "google-oauth";
	r.max_response = 65536;
	if (api->http_send(ps->p, &r, grant_done, ps) != SB_OK) {
		token_release(ps->p);
		api->job_fail(ps->job, "the token request was refused as "
		    "malformed");
		push_free(ps);
	}
	free(form);
}

static void
grant_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct push		*ps = arg;
	struct sb_db_res	*r;
	json_t			*body = NULL, *tok, *exp;
	const char		*params[3];
	char			 err[128], ttl[32], *sealed = NULL;
	json_int_t		 secs;
	size_t			 len;

	if (res->status == 200)
		body = json_loads(res->body, 0, NULL);
	tok = json_object_get(body, "access_token");
	exp = json_object_get(body, "expires_in");
	if (!json_is_string(tok) || (len = json_string_length(tok)) == 0 ||
	    len > ACCESS_MAX || strpbrk(json_string_value(tok), "\r\n") !=
	    NULL || !json_is_integer(exp) || json_integer_value(exp) < 2) {
		json_decref(body);
		token_release(p);
		if (res->status == 0)
			snprintf(err, sizeof(err), "token endpoint: %s",
			    res->error != NULL ? res->error : "no answer");
		else
			snprintf(err, sizeof(err), "token endpoint answered "
			    "%d", res->status);
		push_retry(ps, err, res->retry_after);
		return;
	}
	/* Stop using it a minute early (half its life when that is short). */
	secs = json_integer_value(exp);
	secs = secs > 120 ? secs - 60 : secs / 2;
	snprintf(ttl, sizeof(ttl), "%lld", (long long)secs);
	sealed = api->seal(p, json_string_value(tok), len);
	if (sealed == NULL || (ps->bearer = malloc(len + 8)) == NULL) {
		json_decref(body);
		free(sealed);
		token_release(p);
		push_retry(ps, "cannot seal the access token", 0);
		return;
	}
	snprintf(ps->bearer, len + 8, "Bearer %s", json_string_value(tok));
	json_decref(body);
	params[0] = sealed;
	params[1] = sa_email;
	params[2] = ttl;
	r = api->db_query(p, "UPDATE notifications_fcm_auth SET access_token "
	    "= $1, account = $2, expires_at = now() + make_interval(secs => "
	    "$3::float8), refreshing_until = NULL, generation = generation + "
	    "1, updated_at = now() WHERE id = 1 RETURNING generation", 3,
	    params);
	free(sealed);
	if (api->db_ok(r) && api->db_rows(r) == 1)
		snprintf(ps->generation, sizeof(ps->generation), "%s",
		    api->db_value(r, 0, 0));
	else
		/* Not stored: use it for this send; the next refreshes. */
		snprintf(ps->generation, sizeof(ps->generation), "-1");
	api->db_free(r);
	send_start(ps);
}

/* FCM's FcmError errorCode in an error body, or NULL; *field_token set
 * when a BadRequest violation names message.token. */
static const char *
fcm_error(json_t *body, int *field_token)
{
	json_t		*details, *d, *v, *fv;
	const char	*code = NULL, *type, *field;
	size_t		 i, j;

	*field_token = 0;
	details = json_object_get(json_object_get(body, "error"), "details");
	json_array_foreach(details, i, d) {
		type = json_string_value(json_object_get(d, "@type"));
		if (type == NULL)
			continue;
		if (strstr(type, "google.firebase.fcm.v1.FcmError") != NULL)
			code = json_string_value(json_object_get(d,
			    "errorCode"));
		fv = json_object_get(d, "fieldViolations");
		json_array_foreach(fv, j, v) {
			field = json_string_value(json_object_get(v, "field"));
			if (field != NULL &&
			    strcmp(field, "message.token") == 0)
				*field_token = 1;
		}
	}
	return (code);
}

/* The device token is gone for good: clear it wherever it is stored,
 * a staff user's (the host's users table) and a donor's (concierge's,
 * through its service).  Both are idempotent: a retry loses nothing. */
static int
device_forget(struct sb_plugin *p, const char *device)
{
	struct sb_db_res	*r;
	const char		*params[1] = { device };
	int			 ok;

	r = api->db_query(p, "UPDATE users SET fcm_token = NULL WHERE "
	    "fcm_token = $1", 1, params);
	ok = api->db_ok(r);
	api->db_free(r);
	if (NOTIFICATIONS_THREAD->donor_device_forget(p, device) == -1)
		ok = 0;
	return (ok ? 0 : -1);
}

static void
send_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct push	*ps = arg;
	json_t		*body, *name;
	const char	*code, *status;
	char		 err[160];
	int		 field_token;

	if (res->status >= 200 && res->status < 300) {
		body = json_loads(res->body, 0, NULL);
		name = json_object_get(body, "name");
		push_done(ps, json_pack("{s:O?}", "name", json_is_string(name) ?
		    name : NULL));
		json_decref(body);
		return;
	}
	if (res->status == 0) {
		snprintf(err, sizeof(err), "FCM: %s", res->error != NULL ?
		    res->error : "no answer");
		push_retry(ps, err, 0);
		return;
	}
	if (res->status == 401) {
		token_invalidate(p, ps->generation);
		push_retry(ps, "FCM refused the access token (401)", 1);
		return;
	}
	if (res->status == 429 || res->status >= 500) {
		snprintf(err, sizeof(err), "FCM answered %d", res->status);
		push_retry(ps, err, res->retry_after);
		return;
	}
	body = json_loads(res->body, 0, NULL);
	code = fcm_error(body, &field_token);
	status = json_string_value(json_object_get(json_object_get(body,
	    "error"), "status"));
	if ((res->status == 404 && code != NULL &&
	    strcmp(code, "UNREGISTERED") == 0) ||
	    (res->status == 400 && code != NULL &&
	    strcmp(code, "INVALID_ARGUMENT") == 0 && field_token)) {
		snprintf(err, sizeof(err), "%s", code);
		json_decref(body);
		if (device_forget(p, ps->device) == -1) {
			push_retry(ps, "database unavailable", 0);
			return;
		}
		push_done(ps, json_pack("{s:b, s:s}", "token_removed", 1,
		    "reason", err));
		return;
	}
	snprintf(err, sizeof(err), "FCM refused the message: %d %s%s%s",
	    res->status, status != NULL ? status : "", code != NULL ? " " : "",
	    code != NULL ? code : "");
	json_decref(body);
	api->job_fail(ps->job, err);
	push_free(ps);
}

/* The device token of the payload's recipient into ps->device (freed by
 * push_free() with free()): 1, 0 when there is none, -1 on a database
 * error.  A donor's comes from concierge, through its service. */
static int
device_read(struct push *ps, json_t *payload)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id[32];
	int			 rc;

	if (!json_is_integer(json_object_get(payload, "user_id"))) {
		if (!json_is_integer(json_object_get(payload, "query_id")))
			return (0);
		return (NOTIFICATIONS_THREAD->donor_device(ps->p,
		    json_integer_value(json_object_get(payload, "query_id")),
		    &ps->device));
	}
	params[0] = id;
	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(
	    json_object_get(payload, "user_id")));
	r = api->db_query(ps->p, "SELECT fcm_token FROM users WHERE id = "
	    "$1::bigint AND is_active AND fcm_token IS NOT NULL", 1, params);
	if (!api->db_ok(r))
		rc = -1;
	else if (api->db_rows(r) != 1)
		rc = 0;
	else
		rc = (ps->device = strdup(api->db_value(r, 0, 0))) != NULL ?
		    1 : -1;
	api->db_free(r);
	return (rc);
}

/* {"message": {"token", "notification": {title, body}, "data"}}: v1
 * fields only. */
static char *
message_json(struct push *ps, json_t *payload)
{
	json_t		*m, *data, *v;
	const char	*k, *title, *body;
	char		*out;

	data = json_object();
	json_object_foreach(json_object_get(payload, "data"), k, v) {
		if (json_is_string(v))
			json_object_set(data, k, v);
	}
	title = json_string_value(json_object_get(payload, "title"));
	body = json_string_value(json_object_get(payload, "body"));
	m = json_pack("{s:{s:s, s:{s:s, s:s}, s:o}}", "message", "token",
	    ps->device, "notification", "title", title != NULL ? title : "",
	    "body", body != NULL ? body : "", "data", data);
	if (m == NULL)
		return (NULL);
	out = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	return (out);
}

static void
push_run(struct sb_job *job)
{
	struct push	*ps;
	json_t		*payload = api->job_payload(job);
	int		 rc;

	if (!enabled) {
		api->job_done(job, json_pack("{s:s}", "skipped",
		    "push is not configured"));
		return;
	}
	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		api->job_retry(job, "out of memory", 0);
		return;
	}
	ps->p = api->job_plugin(job);
	ps->job = job;
	if ((rc = device_read(ps, payload)) != 1) {
		if (rc == 0)
			push_done(ps, json_pack("{s:s}", "skipped",
			    "no device token"));
		else
			push_retry(ps, "database unavailable", 0);
		return;
	}
	if ((ps->body = message_json(ps, payload)) == NULL) {
		push_retry(ps, "out of memory", 0);
		return;
	}
	if ((rc = token_read(ps)) == 1) {
		send_start(ps);
		return;
	}
	if (rc == 0 && (rc = token_lease(ps)) == 1) {
		grant_start(ps);
		return;
	}
	/* Someone else refreshes: the token may be there already. */
	if (rc == 0 && (rc = token_read(ps)) == 1) {
		send_start(ps);
		return;
	}
	if (rc == -1)
		push_retry(ps, "database unavailable", 0);
	else
		push_retry(ps, "waiting for the access token refresh", 1);
}

/* ---- setup ---- */

static int
copy_field(struct sb_plugin *p, json_t *sa, const char *key, char *dst,
    size_t len)
{
	const char	*v = json_string_value(json_object_get(sa, key));

	if (v == NULL || *v == '\0' || strlen(v) >= len ||
	    strpbrk(v, "\r\n") != NULL) {
		api->log(p, SB_LOG_ERROR, "fcm_service_account: %s is missing "
		    "or invalid", key);
		return (-1);
	}
	snprintf(dst, len, "%s", v);
	return (0);
}

/* The key file: project_id, client_email, private_key (PEM, RSA),
 * private_key_id, token_uri. */
static int
service_account_load(struct sb_plugin *p, const char *path)
{
	FILE		*f;
	json_t		*sa;
	json_error_t	 jerr;
	BIO		*bio;
	const char	*pem;
	char		*text, project[128];
	size_t		 n, i;
	int		 rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		api->log(p, SB_LOG_ERROR, "cannot open fcm_service_account "
		    "%s", path);
		return (-1);
	}
	if ((text = malloc(SA_MAX + 1)) == NULL) {
		fclose(f);
		return (-1);
	}
	n = fread(text, 1, SA_MAX + 1, f);
	fclose(f);
	if (n > SA_MAX) {
		api->log(p, SB_LOG_ERROR, "fcm_service_account is too large");
		goto out;
	}
	text[n] = '\0';
	if ((sa = json_loads(text, 0, &jerr)) == NULL) {
		/* jerr.text would quote the file: only the position. */
		api->log(p, SB_LOG_ERROR, "fcm_service_account is not JSON "
		    "(line %d)", jerr.line);
		goto out;
	}
	if (copy_field(p, sa, "client_email", sa_email, sizeof(sa_email)) ||
	    copy_field(p, sa, "private_key_id", sa_kid, sizeof(sa_kid)) ||
	    copy_field(p, sa, "token_uri", sa_token_uri,
	    sizeof(sa_token_uri)) ||
	    copy_field(p, sa, "project_id", project, sizeof(project)))
		goto done;
	if (strncmp(sa_token_uri, "https://", 8) != 0 &&
	    strncmp(sa_token_uri, "http://", 7) != 0) {
		api->log(p, SB_LOG_ERROR, "fcm_service_account: token_uri "
		    "must be an http(s) URL");
		goto done;
	}
	for (i = 0; project[i] != '\0'; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-:.",
		    project[i]) == NULL) {
			api->log(p, SB_LOG_ERROR, "fcm_service_account: "
			    "project_id is invalid");
			goto done;
		}
	if ((pem = json_string_value(json_object_get(sa, "private_key"))) ==
	    NULL || (bio = BIO_new_mem_buf(pem, -1)) == NULL) {
		api->log(p, SB_LOG_ERROR, "fcm_service_account: private_key "
		    "is missing");
		goto done;
	}
	sa_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (sa_key == NULL || EVP_PKEY_get_base_id(sa_key) != EVP_PKEY_RSA) {
		api->log(p, SB_LOG_ERROR, "fcm_service_account: private_key "
		    "is not an RSA private key in PEM");
		EVP_PKEY_free(sa_key);
		sa_key = NULL;
		goto done;
	}
	snprintf(send_url, sizeof(send_url), "%s/projects/%s/messages:send",
	    api->config_get(p, "fcm_url"), project);
	rc = 0;
done:
	json_decref(sa);
out:
	OPENSSL_cleanse(text, n < SA_MAX ? n : SA_MAX);
	free(text);
	return (rc);
}

int
notifications_fcm_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	const char	*path, *url;
	char		*probe;
	long long	 v;

	api = host;
	v = api->config_int(p, "push_max_attempts", 10);
	if (v < 1 || v > 100) {
		api->log(p, SB_LOG_ERROR, "push_max_attempts must be 1..100");
		return (SB_ERROR);
	}
	push_kind.max_attempts = (unsigned int)v;
	v = api->config_int(p, "fcm_timeout_ms", 10000);
	if (v < 100 || v > 14000) {
		/* A grant then a send, both inside the job's 30 s lease. */
		api->log(p, SB_LOG_ERROR, "fcm_timeout_ms must be 100..14000");
		return (SB_ERROR);
	}
	timeout_ms = (unsigned int)v;
	url = api->config_get(p, "fcm_url");
	if (url == NULL || (strncmp(url, "https://", 8) != 0 &&
	    strncmp(url, "http://", 7) != 0) || strlen(url) > 512 ||
	    url[strlen(url) - 1] == '/') {
		api->log(p, SB_LOG_ERROR, "fcm_url must be an http(s) URL "
		    "without a trailing /");
		return (SB_ERROR);
	}
	if (api->job_kind_add(p, &push_kind) != SB_OK)
		return (SB_ERROR);

	path = api->config_get(p, "fcm_service_account");
	if (path == NULL || *path == '\0') {
		api->log(p, SB_LOG_WARN, "fcm_service_account is not set: push "
		    "notifications are off (those jobs finish as skipped)");
		return (SB_OK);
	}
	if (service_account_load(p, path) == -1)
		return (SB_ERROR);
	/* The token is stored sealed or not at all. */
	if ((probe = api->seal(p, "probe", 5)) == NULL) {
		api->log(p, SB_LOG_ERROR, "SB_DATA_KEY is not set: push "
		    "notifications are off (the access token is stored "
		    "sealed)");
		return (SB_OK);
	}
	free(probe);
	enabled = 1;
	return (SB_OK);
}

void
notifications_fcm_health(json_t *detail)
{
	json_object_set_new(detail, "push", json_string(enabled ?
	    "configured" : "not configured"));
}

void
notifications_fcm_fini(void)
{
	EVP_PKEY_free(sa_key);
	sa_key = NULL;
}

/*
 * Key rotation (desc.rekey, through notifications.c's descriptor): the
 * one cached access token, re-sealed under the current data key.  One that
 * opens under no key is dropped (a cache: the next push fetches another).
 * The host commits the UPDATE with the rotation's state; nothing to page.
 */
int
notifications_fcm_rekey(struct sb_plugin *p, json_t *state,
    unsigned int batch, unsigned int *resealed)
{
	struct sb_db_res	*r, *u = NULL;
	const char		*params[1];
	char			*sealed = NULL;
	int			 rc;

	(void)state;
	(void)batch;
	if (api == NULL || !SB_API_HAS(api, reseal))
		return (-1);
	r = api->db_query(p, "SELECT access_token FROM notifications_fcm_auth "
	    "WHERE id = 1 AND access_token IS NOT NULL FOR UPDATE", 0, NULL);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 0) {
		api->db_free(r);
		return (0);
	}
	rc = api->reseal(p, api->db_value(r, 0, 0), &sealed);
	api->db_free(r);
	if (rc == 1) {
		params[0] = sealed;
		u = api->db_query(p, "UPDATE notifications_fcm_auth SET "
		    "access_token = $1, updated_at = now() WHERE id = 1", 1,
		    params);
		*resealed += 1;
	} else if (rc == -1)
		u = api->db_query(p, "UPDATE notifications_fcm_auth SET "
		    "access_token = NULL, expires_at = NULL, updated_at = now() "
		    "WHERE id = 1", 0, NULL);
	free(sealed);
	if (u != NULL && !api->db_ok(u)) {
		api->db_free(u);
		return (-1);
	}
	api->db_free(u);
	return (0);
}
