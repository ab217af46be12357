/*
 * What the providers share (provider.h): their configuration's common
 * keys, the form body they post, and what an HTTP answer means for the
 * message — the core's failover and never-twice rules in one place.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <switchboard/plugin.h>

#include "provider.h"

/*
 * "<prefix>_timeout_ms" (100..120000, default def) into *out; SB_ERROR
 * with a log line when it is out of range.
 */
int
tel_timeout_ms(struct sb_plugin *p, const struct sb_host_api *api,
    const char *key, unsigned int def, unsigned int *out)
{
	long long	t;

	t = api->config_int(p, key, def);
	if (t < 100 || t > 120000) {
		api->log(p, SB_LOG_ERROR, "%s must be 100..120000", key);
		return (SB_ERROR);
	}
	*out = (unsigned int)t;
	return (SB_OK);
}

/* "Basic base64(user:pass)" into out (512 bytes); -1 when too long. */
int
tel_basic_auth(char out[TEL_AUTH_MAX], const char *user, const char *pass)
{
	char	plain[384];

	if ((size_t)snprintf(plain, sizeof(plain), "%s:%s", user, pass) >=
	    sizeof(plain))
		return (-1);
	memcpy(out, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain,
	    (int)strlen(plain));
	OPENSSL_cleanse(plain, sizeof(plain));
	return (0);
}

/*
 * The public base URL webhooks are given: the plugin's own public_url
 * (an override), else the host's [host] public_url; NULL when neither.
 */
const char *
tel_public_base(struct sb_plugin *p, const struct sb_host_api *api)
{
	const char	*pub;

	if (((pub = api->config_get(p, "public_url")) == NULL ||
	    *pub == '\0') && SB_API_HAS(api, host_setting))
		pub = api->host_setting("public_url");
	return (pub != NULL && *pub != '\0' ? pub : NULL);
}

/*
 * The public base URL + path (path starts with "/"; one slash between)
 * into out: 0, or -1 without a public base URL (out is then "").
 */
int
tel_public_url_for(struct sb_plugin *p, const struct sb_host_api *api,
    const char *path, char *out, size_t len)
{
	const char	*pub = tel_public_base(p, api);
	size_t		 n;

	out[0] = '\0';
	if (pub == NULL)
		return (-1);
	n = strlen(pub);
	if (n > 0 && pub[n - 1] == '/')
		n--;
	(void)snprintf(out, len, "%.*s%s", (int)n, pub, path);
	return (0);
}

/* Append name=urlencoded(value) to a growing buffer; -1: out of memory. */
int
tel_form_add(char **buf, size_t *len, size_t *cap, const char *name,
    const char *value)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 need;
	const unsigned char	*v;
	char			*n;

	need = *len + strlen(name) + 2 + strlen(value) * 3 + 1;
	if (need > *cap) {
		if ((n = realloc(*buf, need * 2)) == NULL)
			return (-1);
		*buf = n;
		*cap = need * 2;
	}
	if (*len > 0)
		(*buf)[(*len)++] = '&';
	*len += (size_t)sprintf(*buf + *len, "%s=", name);
	for (v = (const unsigned char *)value; *v != '\0'; v++) {
		if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') ||
		    (*v >= '0' && *v <= '9') || *v == '-' || *v == '_' ||
		    *v == '.' || *v == '~')
			(*buf)[(*len)++] = (char)*v;
		else {
			(*buf)[(*len)++] = '%';
			(*buf)[(*len)++] = hex[*v >> 4];
			(*buf)[(*len)++] = hex[*v & 15];
		}
	}
	(*buf)[*len] = '\0';
	return (0);
}

/*
 * No HTTP answer (res->status 0): refused for certain when nothing
 * reached the provider (the breaker was open, the connection or the name
 * failed), else ambiguous: the request may have been taken, so the
 * message is never sent again.
 */
void
tel_outcome_transport(const struct sb_http_response *res,
    struct tel_send_result *r)
{
	const char	*e = res->error != NULL ? res->error : "no response";

	if (strcmp(e, "circuit open") == 0 || strstr(e, "connect") != NULL ||
	    strstr(e, "resolve") != NULL)
		r->outcome = TEL_REFUSED;
	else
		r->outcome = TEL_AMBIGUOUS;
	r->detail = e;
}

/* An error answer: 401/403 the next provider may try, 429 and 5xx
 * later, anything else refused for good. */
void
tel_outcome_http(const struct sb_http_response *res,
    struct tel_send_result *r)
{
	r->retry_after = res->retry_after;
	if (res->status == 401 || res->status == 403)
		r->outcome = TEL_REFUSED;
	else if (res->status == 429 || res->status >= 500)
		r->outcome = TEL_RETRY;
	else
		r->outcome = TEL_REJECTED;
}

/*
 * POST a form body to url with HTTP Basic auth (no idempotency key: the
 * providers' REST APIs take none); the answer to done(arg).  SB_OK or
 * SB_ERROR (done never called).
 */
int
tel_post_form(struct sb_plugin *p, const struct sb_host_api *api,
    const char *url, const char *auth, const char *body, size_t len,
    unsigned int timeout_ms, const char *upstream,
    void (*done)(struct sb_plugin *, const struct sb_http_response *, void *),
    void *arg)
{
	struct sb_http_header	 h[2];
	struct sb_http_request	 r;

	h[0].name = "Authorization";
	h[0].value = auth;
	h[1].name = "Content-Type";
	h[1].value = "application/x-www-form-urlencoded";
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = url;
	r.headers = h;
	r.nheaders = 2;
	r.body = body;
	r.body_len = len;
	r.timeout_ms = timeout_ms;
	r.max_response = 65536;
	r.upstream = upstream;
	return (api->http_send(p, &r, done, arg));
}
