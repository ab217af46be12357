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
static const char	*sid, *key, *token, *from, *api_url, *dlt, *app_id;
static char		 auth[TEL_AUTH_MAX];
static char		 hook_token[128];
static char		 callback_url[768];
static char		 voice_url[768];
static unsigned int	 timeout_ms = EXOTEL_TIMEOUT_MS;

struct send {
	tel_send_cb	 cb;
	void		*arg;
	int		 voice;		/* a Calls/connect answer */
};

static int
set(const char *s)
{
	return (s != NULL && *s != '\0');
}

static int
exotel_configure(struct sb_plugin *p, const struct sb_host_api *host)
{
	const char	*wt;
	char		*bi, path[200];

	api = host;
	sid = api->config_get(p, "exotel_sid");
	key = api->config_get(p, "exotel_api_key");
	token = api->config_get(p, "exotel_api_token");
	from = api->config_get(p, "exotel_from");
	dlt = api->config_get(p, "exotel_dlt_entity_id");
	app_id = api->config_get(p, "exotel_app_id");
	if (set(app_id) && strspn(app_id, "0123456789") != strlen(app_id)) {
		api->log(p, SB_LOG_ERROR, "exotel_app_id must be digits");
		return (SB_ERROR);
	}
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
	voice_url[0] = '\0';
	if (hook_token[0] != '\0') {
		(void)snprintf(path, sizeof(path), "/api/v1/webhooks/exotel/%s/sms",
		    hook_token);
		(void)tel_public_url_for(p, api, path, callback_url,
		    sizeof(callback_url));
		(void)snprintf(path, sizeof(path),
		    "/api/v1/webhooks/exotel/%s/voice", hook_token);
		(void)tel_public_url_for(p, api, path, voice_url,
		    sizeof(voice_url));
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

static const char *
exotel_sms_sender(void)
{
	return (set(from) ? from : NULL);
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

const char *
tel_exotel_voice_url(void)
{
	return (voice_url[0] != '\0' ? voice_url : NULL);
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
		m = json_object_get(j, s->voice ? "Call" : "SMSMessage");
		st = sb_jstr(m, "Status");
		r.provider_message_id = sb_jstr(m, "Sid");
		if (r.provider_message_id == NULL ||
		    strlen(r.provider_message_id) > 64) {
			/* Accepted, but by what?  Never resend. */
			r.outcome = TEL_AMBIGUOUS;
			r.provider_message_id = NULL;
			r.detail = "Exotel answered without a Sid";
		} else if (s->voice) {
			r.outcome = TEL_ACCEPTED;
			r.status = "initiated";
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

/* POST a form to path under the account; the answer to exotel_sent. */
static int
post(struct sb_plugin *p, const char *path, const char *body, size_t len,
    struct send *s)
{
	char	url[640];

	(void)snprintf(url, sizeof(url), "%s/v1/Accounts/%s/%s", api_url, sid,
	    path);
	return (tel_post_form(p, api, url, auth, body, len, timeout_ms,
	    "exotel", exotel_sent, s));
}

static int
exotel_send_sms(struct sb_plugin *p, const struct tel_sms *m, tel_send_cb cb,
    void *arg)
{
	struct send	*s;
	char		*body = NULL;
	size_t		 len = 0, cap = 0;
	int		 rc;

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
	rc = post(p, "Sms/send.json", body, len, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

/* ---- voice ---- */

/*
 * Calls/connect dials From first and, once it answers, connects To: the
 * agent's number (connect_to) first, then the customer.  Without
 * connect_to the customer is connected to the call flow exotel_app_id
 * (Exotel has no inline speech: the flow says what it says).  Exotel
 * cannot dial a SIP user.
 */
static int
exotel_call_ok(const struct tel_call *c, const char **why)
{
	*why = NULL;
	if (c->connect_to != NULL && strncmp(c->connect_to, "sip:", 4) == 0) {
		*why = "Exotel cannot connect a SIP user";
		return (0);
	}
	if (c->connect_to == NULL && !set(app_id)) {
		*why = "exotel_app_id is not set: Exotel speaks a message only "
		    "through a call flow";
		return (0);
	}
	return (1);
}

static int
exotel_place_call(struct sb_plugin *p, const struct tel_call *c,
    tel_send_cb cb, void *arg)
{
	struct send	*s;
	char		*body = NULL, flow[256], ids[24];
	size_t		 len = 0, cap = 0;
	int		 rc = 0;

	(void)snprintf(ids, sizeof(ids), "%lld", (long long)c->id);
	if (c->connect_to != NULL) {
		if (tel_form_add(&body, &len, &cap, "From", c->connect_to) ==
		    -1 || tel_form_add(&body, &len, &cap, "To", c->to) == -1)
			rc = -1;
	} else {
		(void)snprintf(flow, sizeof(flow), "http://my.exotel.com/%s/"
		    "exoml/start_voice/%s", sid, app_id);
		if (tel_form_add(&body, &len, &cap, "From", c->to) == -1 ||
		    tel_form_add(&body, &len, &cap, "Url", flow) == -1)
			rc = -1;
	}
	if (rc == -1 ||
	    tel_form_add(&body, &len, &cap, "CallerId", from) == -1 ||
	    tel_form_add(&body, &len, &cap, "CallType", "trans") == -1 ||
	    tel_form_add(&body, &len, &cap, "CustomField", ids) == -1 ||
	    (c->record && tel_form_add(&body, &len, &cap, "Record",
	    "true") == -1) ||
	    (voice_url[0] != '\0' && (tel_form_add(&body, &len, &cap,
	    "StatusCallback", voice_url) == -1 ||
	    tel_form_add(&body, &len, &cap, "StatusCallbackEvents[0]",
	    "terminal") == -1 ||
	    tel_form_add(&body, &len, &cap, "StatusCallbackEvents[1]",
	    "answered") == -1 ||
	    tel_form_add(&body, &len, &cap, "StatusCallbackContentType",
	    "application/json") == -1))) {
		free(body);
		return (SB_ERROR);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(body);
		return (SB_ERROR);
	}
	s->cb = cb;
	s->arg = arg;
	s->voice = 1;
	rc = post(p, "Calls/connect.json", body, len, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

const struct tel_provider tel_exotel = {
	.name = "exotel",
	.channels = TEL_CHAN_SMS | TEL_CHAN_VOICE,
	.configure = exotel_configure,
	.configured = exotel_configured,
	.send_sms = exotel_send_sms,
	.call_ok = exotel_call_ok,
	.place_call = exotel_place_call,
	.sms_sender = exotel_sms_sender,
	.from_number = exotel_sms_sender,
	/* hangup: Exotel's v1 API has no way to end a call. */
};
