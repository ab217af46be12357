/*
 * Exotel (API v1): SMS through Sms/send, status callbacks and inbound
 * SMS on a webhook whose path carries an unguessable token (Exotel signs
 * nothing).
 *
 * Send: POST {exotel_api_url}/v1/Accounts/{sid}/Sms/send.json with HTTP
 * Basic api_key:api_token and the form fields From, To, Body,
 * StatusCallback and DltEntityId (when set).  200 is
 * {"SMSMessage": {"Sid", "Status", ...}}; errors are
 * {"RestException": {"Status", "Message"}} with the HTTP code.
 *
 * Webhook token: exotel_webhook_token, or when unset
 * blind_index("exotel-webhook", exotel_sid): the same on every worker and
 * node and across restarts, for as long as SB_INDEX_KEY (or the data key)
 * and the sid stay.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "provider.h"

#define EXOTEL_TIMEOUT_MS	10000

static const struct sb_host_api	*api;
static const char	*sid, *key, *token, *from, *api_url, *dlt;
static char		 auth[TEL_AUTH_MAX];
static char		 hook_token[128];
static char		 callback_url[768];
static unsigned int	 timeout_ms = EXOTEL_TIMEOUT_MS;

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
exotel_configure(struct sb_plugin *p, const struct sb_host_api *host)
{
	const char	*pub, *wt;
	char		*bi;
	size_t		 n;

	api = host;
	sid = api->config_get(p, "exotel_sid");
	key = api->config_get(p, "exotel_api_key");
	token = api->config_get(p, "exotel_api_token");
	from = api->config_get(p, "exotel_from");
	dlt = api->config_get(p, "exotel_dlt_entity_id");
	api_url = api->config_get(p, "exotel_api_url");
	if (!set(api_url))
		api_url = "https://api.exotel.com";
	if (tel_timeout_ms(p, api, "exotel_timeout_ms", EXOTEL_TIMEOUT_MS,
	    &timeout_ms) != SB_OK)
		return (SB_ERROR);
	auth[0] = '\0';
	if (set(key) && set(token) &&
	    tel_basic_auth(auth, key, token) == -1) {
		api->log(p, SB_LOG_ERROR, "exotel credentials too long");
		return (SB_ERROR);
	}
	hook_token[0] = '\0';
	wt = api->config_get(p, "exotel_webhook_token");
	if (set(wt)) {
		if (strlen(wt) < 16 || strlen(wt) >= sizeof(hook_token) ||
		    strspn(wt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
		    "vwxyz0123456789-_") != strlen(wt)) {
			api->log(p, SB_LOG_ERROR, "exotel_webhook_token must be "
			    "16..127 characters of A-Z a-z 0-9 - _");
			return (SB_ERROR);
		}
		(void)snprintf(hook_token, sizeof(hook_token), "%s", wt);
	} else if (set(sid) && (bi = api->blind_index(p, "exotel-webhook",
	    sid, strlen(sid))) != NULL) {
		(void)snprintf(hook_token, sizeof(hook_token), "%s", bi);
		free(bi);
	}
	callback_url[0] = '\0';
	pub = tel_public_base(p, api);
	if (pub != NULL && hook_token[0] != '\0') {
		n = strlen(pub);
		if (pub[n - 1] == '/')
			n--;
		(void)snprintf(callback_url, sizeof(callback_url),
		    "%.*s/api/v1/webhooks/exotel/%s/sms", (int)n, pub,
		    hook_token);
	}
	return (SB_OK);
}

static int
exotel_configured(const char **missing)
{
	if (!set(sid) || !set(key) || !set(token)) {
		*missing = "exotel_sid, exotel_api_key and exotel_api_token "
		    "are not set";
		return (0);
	}
	if (!set(from)) {
		*missing = "exotel_from is not set";
		return (0);
	}
	*missing = NULL;
	return (1);
}

int
tel_exotel_token_ok(const char *t)
{
	size_t	n = strlen(hook_token);

	return (n > 0 && t != NULL && strlen(t) == n &&
	    CRYPTO_memcmp(t, hook_token, n) == 0);
}

const char *
tel_exotel_callback_url(void)
{
	return (callback_url[0] != '\0' ? callback_url : NULL);
}

static void
exotel_sent(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct send		*s = arg;
	struct tel_send_result	 r;
	json_t			*j = NULL, *m, *ex, *code;
	const char		*st;
	char			 codebuf[32], detail[96];

	memset(&r, 0, sizeof(r));
	if (res->status != 0 && res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	if (res->status == 0) {
		tel_outcome_transport(res, &r);
	} else if (res->status == 200 || res->status == 201 ||
	    res->status == 202) {
		m = json_object_get(j, "SMSMessage");
		st = sb_jstr(m, "Status");
		r.provider_message_id = sb_jstr(m, "Sid");
		if (r.provider_message_id == NULL ||
		    strlen(r.provider_message_id) > 64) {
			/* Accepted, but by what?  Never resend. */
			r.outcome = TEL_AMBIGUOUS;
			r.provider_message_id = NULL;
			r.detail = "Exotel answered without a Sid";
		} else if (st != NULL && (strcmp(st, "failed") == 0 ||
		    strncmp(st, "failed", 6) == 0)) {
			r.outcome = TEL_ACCEPTED;
			r.status = "failed";
		} else {
			r.outcome = TEL_ACCEPTED;
			r.status = st != NULL && strcmp(st, "sent") == 0 ?
			    "sent" : "sending";
		}
	} else {
		(void)snprintf(detail, sizeof(detail), "Exotel answered %d",
		    res->status);
		r.detail = detail;
		ex = json_object_get(j, "RestException");
		/* Exotel's error has only Status (the HTTP code) and
		 * Message; a Code, where present, is preferred. */
		code = json_object_get(ex, "Code");
		if (!json_is_integer(code) && !json_is_string(code))
			code = json_object_get(ex, "Status");
		if (json_is_integer(code)) {
			(void)snprintf(codebuf, sizeof(codebuf), "%lld",
			    (long long)json_integer_value(code));
			r.error_code = codebuf;
		} else if (json_is_string(code) &&
		    strlen(json_string_value(code)) < 16)
			r.error_code = json_string_value(code);
		r.error_message = sb_jstr(ex, "Message");
		tel_outcome_http(res, &r);
	}
	s->cb(p, &r, s->arg);
	json_decref(j);
	free(s);
}

static int
exotel_send_sms(struct sb_plugin *p, const struct tel_sms *m, tel_send_cb cb,
    void *arg)
{
	struct sb_http_header	 h[2];
	struct sb_http_request	 r;
	struct send		*s;
	char			 url[640], *body = NULL;
	size_t			 len = 0, cap = 0;
	int			 rc;

	if (tel_form_add(&body, &len, &cap, "From", from) == -1 ||
	    tel_form_add(&body, &len, &cap, "To", m->to) == -1 ||
	    tel_form_add(&body, &len, &cap, "Body", m->body) == -1 ||
	    (callback_url[0] != '\0' && tel_form_add(&body, &len, &cap,
	    "StatusCallback", callback_url) == -1) ||
	    (set(dlt) && tel_form_add(&body, &len, &cap, "DltEntityId",
	    dlt) == -1)) {
		free(body);
		return (SB_ERROR);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(body);
		return (SB_ERROR);
	}
	s->cb = cb;
	s->arg = arg;
	(void)snprintf(url, sizeof(url), "%s/v1/Accounts/%s/Sms/send.json",
	    api_url, sid);
	h[0].name = "Authorization";
	h[0].value = auth;
	h[1].name = "Content-Type";
	h[1].value = "application/x-www-form-urlencoded";
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = url;
	r.headers = h;
	r.nheaders = 2;	/* Sms/send takes no idempotency key */
	r.body = body;
	r.body_len = len;
	r.timeout_ms = timeout_ms;
	r.max_response = 65536;
	r.upstream = "exotel";
	rc = api->http_send(p, &r, exotel_sent, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

const struct tel_provider tel_exotel = {
	.name = "exotel",
	.channels = TEL_CHAN_SMS,	/* voice: a later slice */
	.configure = exotel_configure,
	.configured = exotel_configured,
	.send_sms = exotel_send_sms,
};
