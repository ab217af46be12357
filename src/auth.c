/*
 * Authentication: who is calling.
 *
 * Credentials, in the order a request is checked:
 *   X-API-Key: sbk_<prefix>_<secret>   integrations; scopes are permissions
 *   Authorization: Bearer <JWT>        staff (typ "access") or donors
 *                                      (typ "donor")
 *
 * Staff access tokens are HS256 JWTs carrying the session id (`sid`).  A
 * session is one login; its refresh tokens are one rotation family.  The
 * user, the role and the session are read on every staff request (one
 * indexed query), so deactivation, logout, a password change and a reused
 * refresh token cut access off at once in every worker and node.
 *
 * libjwt 1.10 checks no claim and will accept alg=none or another
 * algorithm in some cases (KORE-NOTES.md): the verifier pins HS256 and
 * checks typ, exp, nbf, iat, iss, aud and sub itself.
 *
 * Passwords are Argon2id (libargon2); refresh tokens and API keys are
 * 256-bit random secrets stored as SHA-256 (they are not guessable, so a
 * slow hash would buy nothing), compared in constant time.
 */

#include <kore/kore.h>

#include <argon2.h>
#include <jwt.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sb.h"
#include "ratelimit.h"

/* Argon2id, OWASP's recommended minimum (m=19 MiB, t=2, p=1). */
#define ARGON_T		2
#define ARGON_M		19456
#define ARGON_P		1
#define ARGON_SALT	16
#define ARGON_HASHLEN	32

#define CLOCK_SKEW	30	/* seconds tolerated on nbf / iat */
#define TOKEN_MAX	4096
#define KEY_PREFIX_LEN	12	/* hex characters shown for an API key */

static void	auth_login(struct sb_req *);
static void	auth_refresh(struct sb_req *);
static void	auth_logout(struct sb_req *);

static const struct sb_field login_body[] = {
	{ .name = "username", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 150 },
	{ .name = "password", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 1024 },
	SB_FIELD_END
};

static const struct sb_field refresh_body[] = {
	{ .name = "refresh_token", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED, .min_len = 1, .max_len = 256 },
	SB_FIELD_END
};

#define TOKEN_PAIR_SCHEMA						\
	"{\"type\":\"object\",\"properties\":{"				\
	"\"access_token\":{\"type\":\"string\"},"			\
	"\"refresh_token\":{\"type\":\"string\"},"			\
	"\"token_type\":{\"const\":\"Bearer\"},"			\
	"\"expires_in\":{\"type\":\"integer\"},"			\
	"\"user\":{\"type\":\"object\"}}}"

const struct sb_route sb_auth_routes[] = {
	{ .method = "POST", .path = "/api/v1/auth/login",
	  .flags = SB_ROUTE_PUBLIC, .handler = auth_login,
	  .summary = "Log in: an access token and a refresh token",
	  .body = login_body, .body_max = 4096,
	  .response_schema = TOKEN_PAIR_SCHEMA },
	{ .method = "POST", .path = "/api/v1/auth/refresh",
	  .flags = SB_ROUTE_PUBLIC, .handler = auth_refresh,
	  .summary = "Trade a refresh token for a new pair (the old one "
	  "dies; reusing a dead one revokes its whole family)",
	  .body = refresh_body, .body_max = 4096,
	  .response_schema = TOKEN_PAIR_SCHEMA },
	{ .method = "POST", .path = "/api/v1/auth/logout",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = auth_logout,
	  .summary = "Revoke this session: its access and refresh tokens" },
	SB_ROUTE_END
};

/* ------------------------------------------------------------------------
 * Secrets and hashes
 */

int
sb_auth_hash_password(const char *pw, char *out, size_t outlen)
{
	unsigned char	salt[ARGON_SALT];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return (-1);
	if (argon2id_hash_encoded(ARGON_T, ARGON_M, ARGON_P, pw, strlen(pw),
	    salt, sizeof(salt), ARGON_HASHLEN, out, outlen) != ARGON2_OK)
		return (-1);
	return (0);
}

int
sb_auth_verify_password(const char *hash, const char *pw)
{
	return (argon2id_verify(hash, pw, strlen(pw)) == ARGON2_OK);
}

/*
 * A hash of a random password nobody knows: an unknown username is
 * verified against it, so it costs the same as a wrong password.
 */
static const char *
dummy_hash(void)
{
	static char	hash[128];
	char		pw[33];

	if (hash[0] == '\0') {
		sb_random_hex(pw, 16);
		if (sb_auth_hash_password(pw, hash, sizeof(hash)) == -1)
			hash[0] = '\0';
	}
	return (hash);
}

/* Password policy: length, and not the username. NULL when acceptable. */
const char *
sb_auth_password_problem(const char *pw, const char *username)
{
	if (strlen(pw) < SB_PASSWORD_MIN)
		return ("must be at least 10 characters");
	if (strlen(pw) > 1024)
		return ("must be at most 1024 characters");
	if (username != NULL && strcasecmp(pw, username) == 0)
		return ("must not be the username");
	return (NULL);
}

/* 32 random bytes as base64url without padding (43 characters). */
static void
random_token(char *out, size_t outlen)
{
	unsigned char	raw[32];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		fatalx("RAND_bytes failed");
	sb_base64url(raw, sizeof(raw), out, outlen);
	OPENSSL_cleanse(raw, sizeof(raw));
}

/* ------------------------------------------------------------------------
 * JWTs
 */

static char *
jwt_sign(jwt_t *jwt, long long ttl)
{
	char	*tok, *out, jti[33];
	time_t	 now;

	now = time(NULL);
	sb_random_hex(jti, 16);
	if (jwt_add_grant(jwt, "jti", jti) != 0 ||
	    jwt_add_grant(jwt, "iss", sb_settings.jwt_issuer) != 0 ||
	    jwt_add_grant(jwt, "aud", sb_settings.jwt_audience) != 0 ||
	    jwt_add_grant_int(jwt, "iat", now) != 0 ||
	    jwt_add_grant_int(jwt, "nbf", now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", now + ttl) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_HS256,
	    (const unsigned char *)sb_settings.jwt_secret,
	    (int)strlen(sb_settings.jwt_secret)) != 0)
		return (NULL);
	if ((tok = jwt_encode_str(jwt)) == NULL)
		return (NULL);
	out = sb_strdup(tok);
	free(tok);
	return (out);
}

static char *
access_token(int64_t user_id, const char *role, int64_t session_id)
{
	jwt_t	*jwt;
	char	*out, sub[32];

	if (jwt_new(&jwt) != 0)
		return (NULL);
	snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
	out = NULL;
	if (jwt_add_grant(jwt, "typ", "access") == 0 &&
	    jwt_add_grant(jwt, "sub", sub) == 0 &&
	    jwt_add_grant(jwt, "role", role) == 0 &&
	    jwt_add_grant_int(jwt, "sid", (long)session_id) == 0)
		out = jwt_sign(jwt, sb_settings.access_ttl);
	jwt_free(jwt);
	return (out);
}

char *
sb_auth_donor_token(const char *donor_id, const char *name)
{
	jwt_t	*jwt;
	char	*out, sub[160];

	if (donor_id == NULL || *donor_id == '\0' || strlen(donor_id) > 128)
		return (NULL);
	if (jwt_new(&jwt) != 0)
		return (NULL);
	snprintf(sub, sizeof(sub), "donor:%s", donor_id);
	out = NULL;
	if (jwt_add_grant(jwt, "typ", "donor") == 0 &&
	    jwt_add_grant(jwt, "sub", sub) == 0 &&
	    jwt_add_grant(jwt, "role", "donor") == 0 &&
	    jwt_add_grant(jwt, "donor_id", donor_id) == 0 &&
	    (name == NULL || jwt_add_grant(jwt, "name", name) == 0))
		out = jwt_sign(jwt, sb_settings.donor_ttl);
	jwt_free(jwt);
	return (out);
}

struct claims {
	int		 donor;
	int64_t		 user_id;
	int64_t		 session_id;
	int64_t		 exp;		/* unix seconds */
	char		*donor_id;
	char		*name;
};

/* Every check libjwt leaves to us.  0 and *c filled, or -1. */
static int
token_verify(const char *token, struct claims *c)
{
	jwt_t		*jwt;
	const char	*typ, *iss, *aud, *sub, *v;
	char		*end;
	long		 exp, nbf, iat;
	time_t		 now;
	int		 rc;

	memset(c, 0, sizeof(*c));
	jwt = NULL;
	rc = -1;
	if (strlen(token) > TOKEN_MAX)
		return (-1);
	if (jwt_decode(&jwt, token,
	    (const unsigned char *)sb_settings.jwt_secret,
	    (int)strlen(sb_settings.jwt_secret)) != 0 || jwt == NULL)
		return (-1);
	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;

	/* jwt_get_grant_int() gives -1 for a missing claim and no positive
	 * time for one that is not an integer: both are refused. */
	now = time(NULL);
	exp = jwt_get_grant_int(jwt, "exp");
	nbf = jwt_get_grant_int(jwt, "nbf");
	iat = jwt_get_grant_int(jwt, "iat");
	if (exp <= 0 || exp <= now || nbf <= 0 || nbf > now + CLOCK_SKEW ||
	    iat <= 0 || iat > now + CLOCK_SKEW)
		goto out;
	iss = jwt_get_grant(jwt, "iss");
	aud = jwt_get_grant(jwt, "aud");
	if (iss == NULL || strcmp(iss, sb_settings.jwt_issuer) != 0 ||
	    aud == NULL || strcmp(aud, sb_settings.jwt_audience) != 0)
		goto out;
	c->exp = exp;
	if ((sub = jwt_get_grant(jwt, "sub")) == NULL || *sub == '\0' ||
	    (typ = jwt_get_grant(jwt, "typ")) == NULL)
		goto out;

	if (strcmp(typ, "donor") == 0) {
		if ((v = jwt_get_grant(jwt, "donor_id")) == NULL || *v == '\0')
			goto out;
		c->donor = 1;
		c->donor_id = sb_strdup(v);
		if ((v = jwt_get_grant(jwt, "name")) != NULL)
			c->name = sb_strdup(v);
		rc = 0;
	} else if (strcmp(typ, "access") == 0) {
		c->user_id = strtoll(sub, &end, 10);
		c->session_id = jwt_get_grant_int(jwt, "sid");
		if (*end == '\0' && c->user_id > 0 && c->session_id > 0)
			rc = 0;
	}
out:
	jwt_free(jwt);
	if (rc == -1) {
		free(c->donor_id);
		free(c->name);
		memset(c, 0, sizeof(*c));
	}
	return (rc);
}

/* ------------------------------------------------------------------------
 * Resolving a request's principal
 */

static void
unauthenticated(struct sb_req *req, const char *msg)
{
	sb_resp_header(req, "www-authenticate", "Bearer");
	sb_respond_error(req, 401, "UNAUTHENTICATED", msg, NULL);
}

static int
db_unavailable(struct sb_req *req, struct sb_db_res *r)
{
	sb_db_free(r);
	sb_respond_db_down(req);
	return (-1);
}

/* A database failure while resolving credentials: nothing answered. */
static int
auth_down(struct sb_db_res *r)
{
	sb_db_free(r);
	return (SB_AUTH_DOWN);
}

static json_t *
permissions_of(const char *json)
{
	json_t	*perms;

	perms = json != NULL ? json_loads(json, 0, NULL) : NULL;
	if (!json_is_array(perms)) {
		json_decref(perms);
		perms = json_array();
	}
	return (perms);
}

static int
authenticate_user(struct sb_req *req, const struct claims *c,
    const char **why)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 uid[32], sid[32];

	snprintf(uid, sizeof(uid), "%lld", (long long)c->user_id);
	snprintf(sid, sizeof(sid), "%lld", (long long)c->session_id);
	params[0] = uid;
	params[1] = sid;
	/* The profile comes along: GET /users/me then needs no query. */
	r = sb_db_query("SELECT array_to_json(r.permissions), " USER_COLUMNS
	    " FROM users u JOIN roles r ON r.id = u.role_id "
	    "JOIN auth_sessions s ON s.user_id = u.id "
	    "WHERE u.id = $1::bigint AND u.is_active "
	    "AND s.id = $2::bigint AND s.revoked_at IS NULL "
	    "AND s.expires_at > now()", 2, params);
	if (!r->ok)
		return (auth_down(r));
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		*why = "invalid or expired token";
		return (SB_AUTH_INVALID);
	}
	req->perms = permissions_of(sb_db_value(r, 0, 0));
	req->user = sb_db_row_json(r, 0);
	json_object_del(req->user, "array_to_json");
	sb_db_free(r);
	req->principal_name = sb_strdup(json_string_value(
	    json_object_get(req->user, "username")));
	req->principal_role = sb_strdup(json_string_value(
	    json_object_get(req->user, "role")));

	req->superuser = strcmp(req->principal_role, "SUPER_ADMIN") == 0;
	req->session_id = c->session_id;
	req->principal.kind = SB_ACTOR_USER;
	req->principal.id = c->user_id;
	req->principal.name = req->principal_name;
	req->principal.role = req->principal_role;
	return (SB_AUTH_OK);
}

/* "sbk_<12 hex>_<43 base64url>" */
static int
api_key_prefix(const char *key, char prefix[KEY_PREFIX_LEN + 1])
{
	size_t	i;

	if (strncmp(key, "sbk_", 4) != 0 || strlen(key) > 128)
		return (-1);
	for (i = 0; i < KEY_PREFIX_LEN; i++) {
		if (!((key[4 + i] >= '0' && key[4 + i] <= '9') ||
		    (key[4 + i] >= 'a' && key[4 + i] <= 'f')))
			return (-1);
		prefix[i] = key[4 + i];
	}
	prefix[i] = '\0';
	return (key[4 + KEY_PREFIX_LEN] == '_' ? 0 : -1);
}

static int
authenticate_api_key(struct sb_req *req, const char *key, const char **why)
{
	struct sb_db_res	*r;
	const char		*params[1], *stored;
	char			 prefix[KEY_PREFIX_LEN + 1], sum[65];
	int			 ok;

	if (api_key_prefix(key, prefix) == -1) {
		*why = "invalid API key";
		return (SB_AUTH_INVALID);
	}
	sb_sha256_hex(key, strlen(key), sum);
	params[0] = prefix;
	r = sb_db_query("SELECT id, name, key_hash, array_to_json(scopes), "
	    "last_used_at IS NULL OR last_used_at < now() - interval "
	    "'1 minute' FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL "
	    "AND (expires_at IS NULL OR expires_at > now())", 1, params);
	if (!r->ok)
		return (auth_down(r));
	/* Compare even when there is no row: no timing tells them apart. */
	stored = sb_db_rows(r) == 1 ? sb_db_value(r, 0, 2) : sum;
	ok = CRYPTO_memcmp(stored, sum, 64) == 0 && sb_db_rows(r) == 1;
	if (!ok) {
		sb_db_free(r);
		*why = "invalid API key";
		return (SB_AUTH_INVALID);
	}
	req->principal.kind = SB_ACTOR_API_KEY;
	req->principal.id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	req->principal_name = sb_strdup(sb_db_value(r, 0, 1));
	req->principal.name = req->principal_name;
	req->perms = permissions_of(sb_db_value(r, 0, 3));
	/* last_used_at, at most once a minute per key. */
	if (strcmp(sb_db_value(r, 0, 4), "t") == 0) {
		params[0] = sb_db_value(r, 0, 0);
		(void)sb_db_exec("UPDATE api_keys SET last_used_at = now() "
		    "WHERE id = $1::bigint", 1, params);
	}
	sb_db_free(r);
	return (SB_AUTH_OK);
}

/*
 * Resolve credentials given as strings, a bearer token or an API key
 * (exactly one), into req's principal with the same checks as request
 * headers; nothing is answered.  The WebSocket gateway authenticates its
 * ?access_token= and first frame with it.  SB_AUTH_OK, SB_AUTH_INVALID
 * (*why says why) or SB_AUTH_DOWN (no database).  *expires, when not
 * NULL, gets the token's exp (unix seconds; 0 for an API key).  What it
 * fills is freed with sb_auth_clear().
 */
int
sb_auth_credentials(struct sb_req *req, const char *token,
    const char *api_key, int64_t *expires, const char **why)
{
	struct claims	 c;

	*why = "invalid or expired token";
	if (expires != NULL)
		*expires = 0;
	if (api_key != NULL)
		return (authenticate_api_key(req, api_key, why));
	if (token == NULL || token_verify(token, &c) == -1)
		return (SB_AUTH_INVALID);
	if (expires != NULL)
		*expires = c.exp;
	if (!c.donor)
		return (authenticate_user(req, &c, why));

	req->principal.kind = SB_ACTOR_DONOR;
	req->principal_donor = c.donor_id;
	req->principal_name = c.name;
	req->principal_role = sb_strdup("donor");
	req->principal.donor_id = req->principal_donor;
	req->principal.name = req->principal_name;
	req->principal.role = req->principal_role;
	req->perms = json_array();
	return (SB_AUTH_OK);
}

/* Free what sb_auth_credentials() filled in and forget the principal. */
void
sb_auth_clear(struct sb_req *req)
{
	json_decref(req->perms);
	json_decref(req->user);
	free(req->principal_name);
	free(req->principal_role);
	free(req->principal_donor);
	req->perms = req->user = NULL;
	req->principal_name = req->principal_role = NULL;
	req->principal_donor = NULL;
	req->superuser = 0;
	req->session_id = 0;
	memset(&req->principal, 0, sizeof(req->principal));
}

/*
 * Fill req->principal.  No credentials: anonymous (0).  Bad credentials:
 * answered 401 (or 503 without a database) and -1.
 */
int
sb_auth_authenticate(struct sb_req *req)
{
	const char	*hdr, *key, *why;
	int		 rc;

	key = sb_req_header(req, "x-api-key");
	hdr = sb_req_header(req, "authorization");
	if (key != NULL && hdr != NULL) {
		unauthenticated(req, "send either Authorization or X-API-Key, "
		    "not both");
		return (-1);
	}
	if (key == NULL && hdr == NULL)
		return (0);
	if (hdr != NULL) {
		if (strncasecmp(hdr, "Bearer ", 7) != 0) {
			unauthenticated(req, "unsupported authorization "
			    "scheme");
			return (-1);
		}
		hdr += 7;
		while (*hdr == ' ')
			hdr++;
	}
	rc = sb_auth_credentials(req, hdr, key, NULL, &why);
	if (rc == SB_AUTH_INVALID)
		unauthenticated(req, why);
	else if (rc == SB_AUTH_DOWN)
		sb_respond_db_down(req);
	return (rc == SB_AUTH_OK ? 0 : -1);
}

/* ------------------------------------------------------------------------
 * Login, refresh, logout
 */

static json_t *
token_pair(struct sb_req *req, int64_t user_id, const char *role,
    int64_t session_id, const char *refresh, json_t *user)
{
	char	*access;
	json_t	*body;

	if ((access = access_token(user_id, role, session_id)) == NULL) {
		json_decref(user);
		return (NULL);
	}
	body = json_pack("{s:s, s:s, s:s, s:I, s:o}", "access_token", access,
	    "refresh_token", refresh, "token_type", "Bearer", "expires_in",
	    (json_int_t)sb_settings.access_ttl, "user", user);
	OPENSSL_cleanse(access, strlen(access));
	free(access);
	(void)req;
	return (body);
}

/* A new session and its first refresh token, in one transaction. */
static int64_t
session_create(struct sb_req *req, int64_t user_id, char *refresh,
    size_t refreshlen)
{
	struct sb_db_res	*r;
	const char		*params[4];
	char			 uid[32], ttl[32], sum[65], tok[64];
	int64_t			 sid;

	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	snprintf(ttl, sizeof(ttl), "%lld", sb_settings.refresh_ttl);
	if (sb_db_begin() == -1)
		return (-1);
	params[0] = uid;
	params[1] = ttl;
	params[2] = req->ip;
	params[3] = sb_req_header(req, "user-agent");
	r = sb_db_query("INSERT INTO auth_sessions (user_id, expires_at, ip, "
	    "user_agent) VALUES ($1::bigint, now() + make_interval(secs => "
	    "$2::bigint), $3, left($4, 256)) RETURNING id", 4, params);
	if (!r->ok || sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_db_rollback();
		return (-1);
	}
	sid = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	params[0] = sb_db_value(r, 0, 0);
	random_token(tok, sizeof(tok));
	snprintf(refresh, refreshlen, "sbr_%s", tok);
	sb_sha256_hex(refresh, strlen(refresh), sum);
	params[1] = sum;
	params[2] = uid;
	if (sb_db_exec("INSERT INTO auth_refresh_tokens (session_id, "
	    "token_hash) VALUES ($1::bigint, $2)", 2, params) == -1 ||
	    sb_db_exec("UPDATE users SET last_login_at = now() WHERE id = "
	    "$1::bigint", 1, params + 2) == -1) {
		sb_db_free(r);
		sb_db_rollback();
		return (-1);
	}
	sb_db_free(r);
	if (sb_db_commit() == -1)
		return (-1);
	return (sid);
}

/* The login-failure budget keys: per client address, per username. */
static void
ip_key(struct sb_req *req, char *key, size_t len)
{
	snprintf(key, len, "login:ip:%s", req->ip);
}

static void
user_key(const char *username, char *key, size_t len)
{
	char	*p;

	snprintf(key, len, "login:user:%s", username);
	for (p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
}

static int
throttled(struct sb_req *req, const char *username)
{
	char		 key[256];
	unsigned int	 retry, r2;
	int		 over;
	char		 buf[16];

	retry = r2 = 0;
	ip_key(req, key, sizeof(key));
	over = sb_rate_check(key, sb_settings.login_ip_failures,
	    sb_settings.login_window, (uint64_t)sb_now_ms(), &retry) == -1;
	user_key(username, key, sizeof(key));
	if (sb_rate_check(key, sb_settings.login_user_failures,
	    sb_settings.login_window, (uint64_t)sb_now_ms(), &r2) == -1) {
		over = 1;
		if (r2 > retry)
			retry = r2;
	}
	if (!over)
		return (0);
	sb_host_event("auth.login.failed", json_pack("{s:s, s:s, s:s}",
	    "target", "user", "username", username, "reason", "throttled"));
	snprintf(buf, sizeof(buf), "%u", retry);
	sb_resp_header(req, "retry-after", buf);
	sb_respond_error(req, 429, "RATE_LIMITED", "too many failed logins: "
	    "try again later", NULL);
	return (1);
}

static void
count_failure(struct sb_req *req, const char *username)
{
	char		 key[256];
	unsigned int	 retry;

	ip_key(req, key, sizeof(key));
	(void)sb_rate_hit(key, sb_settings.login_ip_failures,
	    sb_settings.login_window, (uint64_t)sb_now_ms(), &retry);
	user_key(username, key, sizeof(key));
	(void)sb_rate_hit(key, sb_settings.login_user_failures,
	    sb_settings.login_window, (uint64_t)sb_now_ms(), &retry);
}

static void
auth_login(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*username, *password, *hash, *params[1];
	json_t			*body, *user;
	char			 refresh[80], key[256], target[48];
	int64_t			 uid, sid;
	int			 ok, found;

	username = json_string_value(json_object_get(req->body, "username"));
	password = json_string_value(json_object_get(req->body, "password"));
	if (throttled(req, username))
		return;

	params[0] = username;
	r = sb_db_query("SELECT u.id, u.username, u.name, u.email, r.name AS "
	    "role, u.is_active, u.created_at, u.updated_at, u.last_login_at, "
	    "u.password_hash FROM users u JOIN roles r ON r.id = u.role_id "
	    "WHERE lower(u.username) = lower($1)", 1, params);
	if (!r->ok) {
		(void)db_unavailable(req, r);
		return;
	}

	/* The same work and the same answer for every failure. */
	found = sb_db_rows(r) == 1;
	hash = found ? sb_db_value(r, 0, 9) : dummy_hash();
	ok = sb_auth_verify_password(hash, password) && found &&
	    strcmp(sb_db_value(r, 0, 5), "t") == 0;
	if (!ok) {
		sb_db_free(r);
		count_failure(req, username);
		sb_host_event("auth.login.failed", json_pack("{s:s, s:s, s:s}",
		    "target", "user", "username", username, "reason",
		    "invalid credentials"));
		sb_respond_error(req, 401, "UNAUTHENTICATED", "invalid "
		    "username or password", NULL);
		return;
	}

	user = sb_db_row_json(r, 0);
	json_object_del(user, "password_hash");
	uid = json_integer_value(json_object_get(user, "id"));
	sb_db_free(r);

	if ((sid = session_create(req, uid, refresh, sizeof(refresh))) == -1) {
		json_decref(user);
		sb_respond_error(req, 503, "UNAVAILABLE", "cannot create a "
		    "session", NULL);
		return;
	}
	user_key(username, key, sizeof(key));
	sb_rate_reset(key);

	/* The event's actor is the user who just logged in. */
	req->principal.kind = SB_ACTOR_USER;
	req->principal.id = uid;
	req->principal_name = sb_strdup(json_string_value(
	    json_object_get(user, "username")));
	req->principal.name = req->principal_name;
	snprintf(target, sizeof(target), "user:%lld", (long long)uid);
	sb_host_event("auth.login.succeeded", json_pack("{s:s, s:I, s:I}",
	    "target", target, "user_id", (json_int_t)uid, "session_id",
	    (json_int_t)sid));

	body = token_pair(req, uid, json_string_value(json_object_get(user,
	    "role")), sid, refresh, user);
	OPENSSL_cleanse(refresh, sizeof(refresh));
	sb_respond_json(req, body != NULL ? 200 : 500, body);
}

static void
auth_refresh(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*token, *params[2];
	char			 sum[65], refresh[80], tok[64], target[48];
	json_t			*user, *body;
	int64_t			 uid, sid;

	token = json_string_value(json_object_get(req->body, "refresh_token"));
	sb_sha256_hex(token, strlen(token), sum);
	params[0] = sum;

	if (sb_db_begin() == -1) {
		sb_respond_db_down(req);
		return;
	}
	r = sb_db_query("SELECT rt.id, rt.used_at IS NOT NULL, s.id, "
	    "s.revoked_at IS NULL AND s.expires_at > now(), u.is_active, "
	    "u.id FROM auth_refresh_tokens rt "
	    "JOIN auth_sessions s ON s.id = rt.session_id "
	    "JOIN users u ON u.id = s.user_id "
	    "WHERE rt.token_hash = $1 FOR UPDATE OF rt, s", 1, params);
	if (!r->ok) {
		sb_db_rollback();
		(void)db_unavailable(req, r);
		return;
	}
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_db_rollback();
		unauthenticated(req, "invalid refresh token");
		return;
	}
	sid = strtoll(sb_db_value(r, 0, 2), NULL, 10);
	uid = strtoll(sb_db_value(r, 0, 5), NULL, 10);
	snprintf(target, sizeof(target), "user:%lld", (long long)uid);

	if (strcmp(sb_db_value(r, 0, 1), "t") == 0) {
		/* A spent token again: someone holds a copy.  The whole
		 * family goes, the thief's and the owner's alike. */
		params[0] = sb_db_value(r, 0, 2);
		(void)sb_db_exec("UPDATE auth_sessions SET revoked_at = now(), "
		    "revoked_reason = 'refresh_reuse' WHERE id = $1::bigint "
		    "AND revoked_at IS NULL", 1, params);
		sb_db_free(r);
		(void)sb_db_commit();
		sb_host_event("auth.refresh.reused", json_pack("{s:s, s:I, "
		    "s:I}", "target", target, "user_id", (json_int_t)uid,
		    "session_id", (json_int_t)sid));
		unauthenticated(req, "refresh token already used: the session "
		    "is revoked");
		return;
	}
	if (strcmp(sb_db_value(r, 0, 3), "t") != 0 ||
	    strcmp(sb_db_value(r, 0, 4), "t") != 0) {
		sb_db_free(r);
		sb_db_rollback();
		unauthenticated(req, "session expired or revoked");
		return;
	}

	params[0] = sb_db_value(r, 0, 0);
	random_token(tok, sizeof(tok));
	snprintf(refresh, sizeof(refresh), "sbr_%s", tok);
	sb_sha256_hex(refresh, strlen(refresh), sum);
	if (sb_db_exec("UPDATE auth_refresh_tokens SET used_at = now() "
	    "WHERE id = $1::bigint", 1, params) == -1) {
		sb_db_free(r);
		sb_db_rollback();
		sb_respond_db_down(req);
		return;
	}
	params[0] = sb_db_value(r, 0, 2);
	params[1] = sum;
	if (sb_db_exec("INSERT INTO auth_refresh_tokens (session_id, "
	    "token_hash) VALUES ($1::bigint, $2)", 2, params) == -1 ||
	    sb_db_exec("UPDATE auth_sessions SET last_used_at = now() WHERE "
	    "id = $1::bigint", 1, params) == -1) {
		sb_db_free(r);
		sb_db_rollback();
		sb_respond_db_down(req);
		return;
	}
	sb_db_free(r);

	user = sb_user_json(uid);
	if (user == NULL || sb_db_commit() == -1) {
		json_decref(user);
		sb_db_rollback();
		sb_respond_db_down(req);
		return;
	}
	body = token_pair(req, uid, json_string_value(json_object_get(user,
	    "role")), sid, refresh, user);
	OPENSSL_cleanse(refresh, sizeof(refresh));
	sb_respond_json(req, body != NULL ? 200 : 500, body);
}

static void
auth_logout(struct sb_req *req)
{
	const char	*params[1];
	char		 sid[32], target[48];

	/* Donor tokens and API keys carry no session: nothing to revoke
	 * here (API keys are revoked by DELETE /api/v1/api-keys/{id}). */
	if (req->principal.kind == SB_ACTOR_USER && req->session_id > 0) {
		snprintf(sid, sizeof(sid), "%lld", (long long)req->session_id);
		params[0] = sid;
		if (sb_db_exec("UPDATE auth_sessions SET revoked_at = now(), "
		    "revoked_reason = 'logout' WHERE id = $1::bigint AND "
		    "revoked_at IS NULL", 1, params) == -1) {
			sb_respond_db_down(req);
			return;
		}
		snprintf(target, sizeof(target), "user:%lld",
		    (long long)req->principal.id);
		sb_host_event("auth.logout", json_pack("{s:s, s:I}", "target",
		    target, "session_id", (json_int_t)req->session_id));
	}
	sb_respond_raw(req, 204, NULL, NULL, 0);
}

/* Revoke every live session of a user except `keep` (0: all). */
int
sb_auth_revoke_sessions(int64_t user_id, int64_t keep, const char *reason)
{
	const char	*params[3];
	char		 uid[32], kid[32];

	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	snprintf(kid, sizeof(kid), "%lld", (long long)keep);
	params[0] = uid;
	params[1] = kid;
	params[2] = reason;
	return (sb_db_exec("UPDATE auth_sessions SET revoked_at = now(), "
	    "revoked_reason = $3 WHERE user_id = $1::bigint AND id <> "
	    "$2::bigint AND revoked_at IS NULL", 3, params));
}

/* ------------------------------------------------------------------------
 * The first super-admin
 */

/*
 * Created once, when no user exists.  The password comes from
 * SB_ADMIN_PASSWORD or is generated and printed this one time.
 */
int
sb_auth_bootstrap_admin(void)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 generated[25], hash[256];
	const char		*pw, *problem;
	int			 existing;

	r = sb_db_query("SELECT count(*) FROM users", 0, NULL);
	if (!r->ok) {
		sb_db_free(r);
		sb_log(SB_LOG_ERROR, "auth", "cannot count users");
		return (-1);
	}
	existing = atoi(sb_db_value(r, 0, 0));
	sb_db_free(r);
	if (existing > 0)
		return (0);

	if ((pw = sb_settings.admin_password) != NULL) {
		if ((problem = sb_auth_password_problem(pw, "admin")) != NULL) {
			sb_log(SB_LOG_ERROR, "auth", "SB_ADMIN_PASSWORD %s",
			    problem);
			return (-1);
		}
	} else {
		sb_random_hex(generated, 12);
		pw = generated;
	}
	if (sb_auth_hash_password(pw, hash, sizeof(hash)) == -1) {
		sb_log(SB_LOG_ERROR, "auth", "cannot hash the admin password");
		return (-1);
	}
	params[0] = hash;
	/* Nodes starting together on a fresh database race here: the one
	 * whose row goes in wins, the others find it there. */
	r = sb_db_query("INSERT INTO users (username, password_hash, name, "
	    "role_id) SELECT 'admin', $1, 'Administrator', id FROM roles "
	    "WHERE name = 'SUPER_ADMIN' ON CONFLICT DO NOTHING RETURNING id",
	    1, params);
	if (!r->ok) {
		sb_db_free(r);
		return (-1);
	}
	existing = sb_db_rows(r) == 0;
	sb_db_free(r);
	if (existing) {
		OPENSSL_cleanse(generated, sizeof(generated));
		return (0);
	}

	sb_log(SB_LOG_INFO, "auth", "created the first super-admin \"admin\"");
	if (sb_settings.admin_password == NULL) {
		/* Shown once, on the terminal, never stored in clear. */
		printf("\n  First super-admin created.\n"
		    "    username: admin\n    password: %s\n"
		    "  Change it after logging in; it is not shown again.\n\n",
		    generated);
		fflush(stdout);
		OPENSSL_cleanse(generated, sizeof(generated));
	}
	return (0);
}
