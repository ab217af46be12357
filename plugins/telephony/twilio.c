/*
 * Twilio (REST API 2010-04-01): SMS through the Messages resource,
 * webhooks signed with X-Twilio-Signature.
 *
 * Send: POST {twilio_api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json
 * with HTTP Basic AccountSid:AuthToken and the form fields To, From or
 * MessagingServiceSid, Body and StatusCallback.  201 is the Message
 * resource ({sid, status, ...}); errors are {code, message, more_info,
 * status}.
 *
 * Signature: base64(HMAC-SHA1(AuthToken, URL + each POST parameter,
 * sorted by name, as name + value)).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "provider.h"
#include "sms.h"

#define TWILIO_TIMEOUT_MS	10000
#define WEBHOOK_PATH		"/api/v1/webhooks/twilio/sms"

static const struct sb_host_api	*api;
static const char	*sid, *token, *from, *mss, *api_url;
static char		 auth[TEL_AUTH_MAX];
static char		 callback_url[512];
static unsigned int	 timeout_ms = TWILIO_TIMEOUT_MS;

struct send {
	tel_send_cb	 cb;
	void		*arg;
};

static int
set(const char *s)
{
	return (s != NULL && *s != '\0');
}

static int
twilio_configure(struct sb_plugin *p, const struct sb_host_api *host)
{
	const char	*pub;
	size_t		 n;

	api = host;
	sid = api->config_get(p, "twilio_account_sid");
	token = api->config_get(p, "twilio_auth_token");
	from = api->config_get(p, "twilio_from");
	mss = api->config_get(p, "twilio_messaging_service_sid");
	api_url = api->config_get(p, "twilio_api_url");
	if (!set(api_url))
		api_url = "https://api.twilio.com";
	if (tel_timeout_ms(p, api, "twilio_timeout_ms", TWILIO_TIMEOUT_MS,
	    &timeout_ms) != SB_OK)
		return (SB_ERROR);
	auth[0] = '\0';
	if (set(sid) && set(token) &&
	    tel_basic_auth(auth, sid, token) == -1) {
		api->log(p, SB_LOG_ERROR, "twilio credentials too long");
		return (SB_ERROR);
	}
	callback_url[0] = '\0';
	if ((pub = tel_public_base(p, api)) != NULL) {
		/* "https://x/" + path: one slash. */
		n = strlen(pub);
		if (pub[n - 1] == '/')
			n--;
		(void)snprintf(callback_url, sizeof(callback_url), "%.*s%s",
		    (int)n, pub, WEBHOOK_PATH);
	}
	return (SB_OK);
}

const char *
tel_public_url(void)
{
	return (callback_url[0] != '\0' ? callback_url : NULL);
}

static int
twilio_configured(const char **missing)
{
	if (!set(sid) || !set(token)) {
		*missing = "twilio_account_sid and twilio_auth_token are not set";
		return (0);
	}
	if (!set(from) && !set(mss)) {
		*missing = "neither twilio_from nor "
		    "twilio_messaging_service_sid is set";
		return (0);
	}
	*missing = NULL;
	return (1);
}

static void
twilio_sent(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct send		*s = arg;
	struct tel_send_result	 r;
	json_t			*j = NULL, *code;
	const char		*st;
	char			 codebuf[32], detail[96];

	memset(&r, 0, sizeof(r));
	if (res->status != 0 && res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	if (res->status == 0) {
		tel_outcome_transport(res, &r);
	} else if (res->status == 200 || res->status == 201) {
		st = sb_jstr(j, "status");
		r.provider_message_id = sb_jstr(j, "sid");
		if (r.provider_message_id == NULL) {
			/* Accepted, but by what?  Never resend. */
			r.outcome = TEL_AMBIGUOUS;
			r.detail = "Twilio answered without a sid";
		} else {
			r.outcome = TEL_ACCEPTED;
			r.status = st != NULL && strcmp(st, "sent") == 0 ?
			    "sent" : "sending";
			if (st != NULL && strcmp(st, "failed") == 0)
				r.status = "failed";
		}
	} else {
		(void)snprintf(detail, sizeof(detail), "Twilio answered %d",
		    res->status);
		r.detail = detail;
		code = json_object_get(j, "code");
		if (json_is_integer(code)) {
			(void)snprintf(codebuf, sizeof(codebuf), "%lld",
			    (long long)json_integer_value(code));
			r.error_code = codebuf;
		}
		r.error_message = sb_jstr(j, "message");
		tel_outcome_http(res, &r);
	}
	s->cb(p, &r, s->arg);
	json_decref(j);
	free(s);
}

static int
twilio_send_sms(struct sb_plugin *p, const struct tel_sms *m, tel_send_cb cb,
    void *arg)
{
	struct sb_http_header	 h[2];
	struct sb_http_request	 r;
	struct send		*s;
	char			 url[640], *body = NULL;
	size_t			 len = 0, cap = 0;
	int			 rc;

	if (tel_form_add(&body, &len, &cap, "To", m->to) == -1 ||
	    (set(mss) ? tel_form_add(&body, &len, &cap, "MessagingServiceSid",
	    mss) : tel_form_add(&body, &len, &cap, "From", from)) == -1 ||
	    tel_form_add(&body, &len, &cap, "Body", m->body) == -1 ||
	    (callback_url[0] != '\0' && tel_form_add(&body, &len, &cap,
	    "StatusCallback", callback_url) == -1)) {
		free(body);
		return (SB_ERROR);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(body);
		return (SB_ERROR);
	}
	s->cb = cb;
	s->arg = arg;
	(void)snprintf(url, sizeof(url),
	    "%s/2010-04-01/Accounts/%s/Messages.json", api_url, sid);
	h[0].name = "Authorization";
	h[0].value = auth;
	h[1].name = "Content-Type";
	h[1].value = "application/x-www-form-urlencoded";
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = url;
	r.headers = h;
	r.nheaders = 2;	/* Messages.json has no idempotency key */
	r.body = body;
	r.body_len = len;
	r.timeout_ms = timeout_ms;
	r.max_response = 65536;
	r.upstream = "twilio";
	rc = api->http_send(p, &r, twilio_sent, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

/* ---- webhook signatures ---- */

struct pair {
	char	*name, *value;
};

struct pairs {
	struct pair	*v;
	size_t		 n, cap;
};

static int
pair_add(const char *name, const char *value, void *arg)
{
	struct pairs	*ps = arg;
	struct pair	*n;

	if (ps->n == ps->cap) {
		if ((n = reallocarray(ps->v, ps->cap * 2 + 8,
		    sizeof(*n))) == NULL)
			return (-1);
		ps->v = n;
		ps->cap = ps->cap * 2 + 8;
	}
	if ((ps->v[ps->n].name = strdup(name)) == NULL)
		return (-1);
	if ((ps->v[ps->n].value = strdup(value)) == NULL) {
		free(ps->v[ps->n].name);
		return (-1);
	}
	ps->n++;
	return (0);
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct pair	*x = a, *y = b;
	int			 c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return (c);
	return (strcmp(x->value, y->value));
}

int
tel_twilio_verify(const char *url, const void *body, size_t len,
    const char *sig)
{
	struct pairs	 ps = { NULL, 0, 0 };
	unsigned char	 mac[EVP_MAX_MD_SIZE];
	char		 b64[64], *buf = NULL;
	unsigned int	 maclen = 0;
	size_t		 i, n, off;
	int		 ok = 0;

	if (!set(token) || sig == NULL || url == NULL)
		return (0);
	if (tel_form_parse(body, len, 256, pair_add, &ps) == -1)
		goto done;
	qsort(ps.v, ps.n, sizeof(*ps.v), pair_cmp);
	n = strlen(url);
	for (i = 0; i < ps.n; i++)
		n += strlen(ps.v[i].name) + strlen(ps.v[i].value);
	if ((buf = malloc(n + 1)) == NULL)
		goto done;
	off = (size_t)sprintf(buf, "%s", url);
	for (i = 0; i < ps.n; i++)
		off += (size_t)sprintf(buf + off, "%s%s", ps.v[i].name,
		    ps.v[i].value);
	if (HMAC(EVP_sha1(), token, (int)strlen(token),
	    (const unsigned char *)buf, off, mac, &maclen) == NULL)
		goto done;
	EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
	ok = strlen(sig) == strlen(b64) &&
	    CRYPTO_memcmp(sig, b64, strlen(b64)) == 0;
done:
	free(buf);
	for (i = 0; i < ps.n; i++) {
		free(ps.v[i].name);
		free(ps.v[i].value);
	}
	free(ps.v);
	return (ok);
}

const struct tel_provider tel_twilio = {
	.name = "twilio",
	.channels = TEL_CHAN_SMS | TEL_CHAN_VOICE,
	.configure = twilio_configure,
	.configured = twilio_configured,
	.send_sms = twilio_send_sms,
};
