/*
 * Authentication: password hashing (Argon2id), access tokens (JWT HS256),
 * the login route, resolving a request's principal and the first
 * super-admin.
 *
 * libjwt 1.10 checks no claim and will accept alg=none or a different
 * algorithm in some cases (KORE-NOTES.md), so verification pins HS256
 * itself and checks exp, nbf, iat, iss, aud and sub on every token.  The
 * user row is read on every authenticated request, so a deactivated user
 * or a changed role takes effect at once in every worker.
 */

#include <kore/kore.h>

#include <argon2.h>
#include <jwt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sb.h"

/* Argon2id, OWASP's recommended minimum (m=19 MiB, t=2, p=1). */
#define ARGON_T		2
#define ARGON_M		19456
#define ARGON_P		1
#define ARGON_SALT	16
#define ARGON_HASHLEN	32

#define CLOCK_SKEW	30	/* seconds tolerated on nbf / iat */
#define MIN_PASSWORD	10

static void	auth_login(struct sb_req *);

static const struct sb_field login_body[] = {
	{ .name = "username", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 150 },
	{ .name = "password", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 1024 },
	SB_FIELD_END
};

const struct sb_route sb_auth_routes[] = {
	{ .method = "POST", .path = "/api/v1/auth/login",
	  .flags = SB_ROUTE_PUBLIC, .handler = auth_login,
	  .summary = "Log in with a username and password",
	  .body = login_body,
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"access_token\":{\"type\":\"string\"},"
	  "\"token_type\":{\"type\":\"string\"},"
	  "\"expires_in\":{\"type\":\"integer\"},"
	  "\"user\":{\"type\":\"object\"}}}" },
	SB_ROUTE_END
};

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
 * A hash of a random password that nobody knows: an unknown username is
 * verified against it so it costs the same as a wrong password.
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

static char *
token_issue(int64_t user_id, const char *role, long long *expires_in)
{
	jwt_t		*jwt;
	char		*tok, *out, sub[32], jti[33];
	time_t		 now;

	now = time(NULL);
	snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
	sb_random_hex(jti, 16);
	out = NULL;
	if (jwt_new(&jwt) != 0)
		return (NULL);
	if (jwt_add_grant(jwt, "sub", sub) != 0 ||
	    jwt_add_grant(jwt, "role", role) != 0 ||
	    jwt_add_grant(jwt, "jti", jti) != 0 ||
	    jwt_add_grant(jwt, "iss", sb_settings.jwt_issuer) != 0 ||
	    jwt_add_grant(jwt, "aud", sb_settings.jwt_audience) != 0 ||
	    jwt_add_grant_int(jwt, "iat", now) != 0 ||
	    jwt_add_grant_int(jwt, "nbf", now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", now + sb_settings.access_ttl) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_HS256,
	    (const unsigned char *)sb_settings.jwt_secret,
	    (int)strlen(sb_settings.jwt_secret)) != 0)
		goto out;
	if ((tok = jwt_encode_str(jwt)) == NULL)
		goto out;
	out = sb_strdup(tok);
	free(tok);
	*expires_in = sb_settings.access_ttl;
out:
	jwt_free(jwt);
	return (out);
}

/* The claims checks libjwt does not do.  Returns the user id or -1. */
static int64_t
token_verify(const char *token)
{
	jwt_t		*jwt;
	const char	*iss, *aud, *sub;
	char		*end;
	long		 exp, nbf, iat;
	long long	 id;
	time_t		 now;

	jwt = NULL;
	id = -1;
	if (strlen(token) > 4096)
		return (-1);
	if (jwt_decode(&jwt, token,
	    (const unsigned char *)sb_settings.jwt_secret,
	    (int)strlen(sb_settings.jwt_secret)) != 0 || jwt == NULL)
		return (-1);
	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;

	now = time(NULL);
	exp = jwt_get_grant_int(jwt, "exp");
	if (exp == 0 || exp <= now)
		goto out;
	nbf = jwt_get_grant_int(jwt, "nbf");
	if (nbf == 0 || nbf > now + CLOCK_SKEW)
		goto out;
	iat = jwt_get_grant_int(jwt, "iat");
	if (iat == 0 || iat > now + CLOCK_SKEW)
		goto out;
	iss = jwt_get_grant(jwt, "iss");
	aud = jwt_get_grant(jwt, "aud");
	if (iss == NULL || strcmp(iss, sb_settings.jwt_issuer) != 0 ||
	    aud == NULL || strcmp(aud, sb_settings.jwt_audience) != 0)
		goto out;
	if ((sub = jwt_get_grant(jwt, "sub")) == NULL || *sub == '\0')
		goto out;
	id = strtoll(sub, &end, 10);
	if (*end != '\0' || id <= 0)
		id = -1;
out:
	jwt_free(jwt);
	return (id);
}

static void
unauthenticated(struct sb_req *req, const char *msg)
{
	sb_resp_header(req, "www-authenticate", "Bearer");
	sb_respond_error(req, 401, "UNAUTHENTICATED", msg, NULL);
}

/*
 * Fill req->principal from the Authorization header.  No credentials is
 * fine (anonymous); bad credentials answer 401 and return -1.
 */
int
sb_auth_authenticate(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*hdr, *params[1];
	char			 idbuf[32];
	int64_t			 id;
	json_t			*perms;

	if (sb_req_header(req, "x-api-key") != NULL &&
	    sb_req_header(req, "authorization") == NULL) {
		unauthenticated(req, "invalid API key");
		return (-1);
	}
	if ((hdr = sb_req_header(req, "authorization")) == NULL)
		return (0);
	if (strncasecmp(hdr, "Bearer ", 7) != 0) {
		unauthenticated(req, "unsupported authorization scheme");
		return (-1);
	}
	hdr += 7;
	while (*hdr == ' ')
		hdr++;
	if ((id = token_verify(hdr)) == -1) {
		unauthenticated(req, "invalid or expired token");
		return (-1);
	}

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	params[0] = idbuf;
	r = sb_db_query("SELECT u.username, r.name, "
	    "array_to_json(r.permissions) "
	    "FROM users u JOIN roles r ON r.id = u.role_id "
	    "WHERE u.id = $1::bigint AND u.is_active", 1, params);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_error(req, 503, "UNAVAILABLE", "database "
		    "unavailable", NULL);
		return (-1);
	}
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		unauthenticated(req, "invalid or expired token");
		return (-1);
	}
	req->principal_name = sb_strdup(sb_db_value(r, 0, 0));
	req->principal_role = sb_strdup(sb_db_value(r, 0, 1));
	perms = json_loads(sb_db_value(r, 0, 2), 0, NULL);
	req->perms = json_is_array(perms) ? perms : json_array();
	if (!json_is_array(perms))
		json_decref(perms);
	sb_db_free(r);

	req->superuser = strcmp(req->principal_role, "SUPER_ADMIN") == 0;
	req->principal.kind = SB_ACTOR_USER;
	req->principal.id = id;
	req->principal.name = req->principal_name;
	req->principal.role = req->principal_role;
	return (0);
}

static void
auth_login(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*username, *password, *hash, *params[1];
	json_t			*body, *user;
	char			*token;
	long long		 expires_in;
	int			 ok, active;

	username = json_string_value(json_object_get(req->body, "username"));
	password = json_string_value(json_object_get(req->body, "password"));

	params[0] = username;
	r = sb_db_query("SELECT u.id, u.username, u.name, u.email, r.name AS "
	    "role, u.is_active, u.created_at, u.password_hash "
	    "FROM users u JOIN roles r ON r.id = u.role_id "
	    "WHERE lower(u.username) = lower($1)", 1, params);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_error(req, 503, "UNAVAILABLE", "database "
		    "unavailable", NULL);
		return;
	}

	/* The same work and the same answer for every failure. */
	hash = sb_db_rows(r) == 1 ? sb_db_value(r, 0, 7) : dummy_hash();
	ok = sb_auth_verify_password(hash, password);
	active = sb_db_rows(r) == 1 &&
	    strcmp(sb_db_value(r, 0, 5), "t") == 0;
	if (!ok || !active || sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_respond_error(req, 401, "UNAUTHENTICATED", "invalid "
		    "username or password", NULL);
		return;
	}

	user = sb_db_row_json(r, 0);
	json_object_del(user, "password_hash");
	token = token_issue(json_integer_value(json_object_get(user, "id")),
	    json_string_value(json_object_get(user, "role")), &expires_in);
	sb_db_free(r);
	if (token == NULL) {
		json_decref(user);
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	body = json_pack("{s:s, s:s, s:I, s:o}", "access_token", token,
	    "token_type", "Bearer", "expires_in", (json_int_t)expires_in,
	    "user", user);
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	sb_respond_json(req, 200, body);
}

/*
 * The first super-admin: created once, when no user exists.  The password
 * comes from SB_ADMIN_PASSWORD or is generated and printed this one time.
 */
int
sb_auth_bootstrap_admin(void)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 generated[25], hash[256];
	const char		*pw;
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
		if (strlen(pw) < MIN_PASSWORD ||
		    strcasecmp(pw, "admin") == 0) {
			sb_log(SB_LOG_ERROR, "auth", "SB_ADMIN_PASSWORD must be "
			    "at least %d characters", MIN_PASSWORD);
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
	if (sb_db_exec("INSERT INTO users (username, password_hash, name, "
	    "role_id) SELECT 'admin', $1, 'Administrator', id FROM roles "
	    "WHERE name = 'SUPER_ADMIN'", 1, params) == -1)
		return (-1);

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
