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

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "provider.h"
#include "sms.h"

#define TWILIO_TIMEOUT_MS	10000
#define WEBHOOK_PATH		"/api/v1/webhooks/twilio/sms"
#define VOICE_PATH		"/api/v1/webhooks/twilio/voice"

static const struct sb_host_api	*api;
static const char	*sid, *token, *from, *mss, *api_url;
static char		 auth[TEL_AUTH_MAX];
static char		 callback_url[512];
static char		 voice_url[512];
static unsigned int	 timeout_ms = TWILIO_TIMEOUT_MS;

struct send {
	tel_send_cb	 cb;
	void		*arg;
	int		 voice;		/* a Calls.json answer */
	int64_t		 since;		/* find: the attempt began (epoch) */
	char		*body;		/* find: the message's text */
};

static int
set(const char *s)
{
	return (s != NULL && *s != '\0');
}

static int
twilio_configure(struct sb_plugin *p, const struct sb_host_api *host)
{
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
	(void)tel_public_url_for(p, api, WEBHOOK_PATH, callback_url,
	    sizeof(callback_url));
	(void)tel_public_url_for(p, api, VOICE_PATH, voice_url,
	    sizeof(voice_url));
	return (SB_OK);
}

const char *
tel_public_url(void)
{
	return (callback_url[0] != '\0' ? callback_url : NULL);
}

const char *
tel_twilio_voice_url(void)
{
	return (voice_url[0] != '\0' ? voice_url : NULL);
}

static const char *
twilio_from_number(void)
{
	return (set(from) ? from : NULL);
}

static const char *
twilio_sms_sender(void)
{
	return (set(mss) ? mss : set(from) ? from : NULL);
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

/*
 * An error answer, {code, message, more_info, status}: the provider's code
 * and text, and what the HTTP status means (tel_outcome_http).  detail
 * (96) and codebuf (32) hold what r points at.
 */
static void
refused(const struct sb_http_response *res, json_t *j,
    struct tel_send_result *r, char *detail, char *codebuf)
{
	json_t	*code;

	(void)snprintf(detail, 96, "Twilio answered %d", res->status);
	r->detail = detail;
	code = json_object_get(j, "code");
	if (json_is_integer(code)) {
		(void)snprintf(codebuf, 32, "%lld",
		    (long long)json_integer_value(code));
		r->error_code = codebuf;
	}
	r->error_message = sb_jstr(j, "message");
	tel_outcome_http(res, r);
}

static void
twilio_sent(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct send		*s = arg;
	struct tel_send_result	 r;
	json_t			*j = NULL;
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
			if (s->voice)
				r.status = "initiated";
			else if (st != NULL && strcmp(st, "sent") == 0)
				r.status = "sent";
			else if (st != NULL && strcmp(st, "failed") == 0)
				r.status = "failed";
			else
				r.status = "sending";
		}
	} else {
		refused(res, j, &r, detail, codebuf);
	}
	s->cb(p, &r, s->arg);
	json_decref(j);
	free(s);
}

/* POST url with a form body; the answer goes to done(s). */
static int
post(struct sb_plugin *p, const char *url, const char *body, size_t len,
    void (*done)(struct sb_plugin *, const struct sb_http_response *,
    void *), struct send *s)
{
	return (tel_post_form(p, api, url, auth, body, len, timeout_ms,
	    "twilio", done, s));
}

static int
twilio_send_sms(struct sb_plugin *p, const struct tel_sms *m, tel_send_cb cb,
    void *arg)
{
	struct send	*s;
	char		 url[640], *body = NULL;
	size_t		 len = 0, cap = 0;
	int		 rc;

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
	rc = post(p, url, body, len, twilio_sent, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

/* ---- voice ---- */

/*
 * The call's TwiML: <Dial> the number (or <Sip> the SIP user) the callee
 * is bridged to, else <Say> the message.  NULL when out of memory.
 */
static char *
twiml_for(const struct tel_call *c)
{
	char	*esc, *out = NULL;

	esc = tel_xml_escape(c->connect_to != NULL ? c->connect_to :
	    c->message != NULL ? c->message : "");
	if (esc == NULL)
		return (NULL);
	if (c->connect_to != NULL && strncmp(c->connect_to, "sip:", 4) == 0) {
		if (asprintf(&out, "<Response><Dial><Sip>%s</Sip></Dial>"
		    "</Response>", esc) == -1)
			out = NULL;
	} else if (c->connect_to != NULL) {
		if (asprintf(&out, "<Response><Dial><Number>%s</Number>"
		    "</Dial></Response>", esc) == -1)
			out = NULL;
	} else if (asprintf(&out, "<Response><Say>%s</Say></Response>",
	    esc) == -1)
		out = NULL;
	free(esc);
	return (out);
}

static int
twilio_call_ok(const struct tel_call *c, const char **why)
{
	*why = NULL;
	if (!set(from)) {
		*why = "twilio_from is not set (calls need a caller id)";
		return (0);
	}
	(void)c;
	return (1);
}

static int
twilio_place_call(struct sb_plugin *p, const struct tel_call *c,
    tel_send_cb cb, void *arg)
{
	static const char *const events[] = { "initiated", "ringing",
		"answered", "completed" };
	struct send	*s;
	char		 url[640], *body = NULL, *twiml;
	size_t		 len = 0, cap = 0, i;
	int		 rc = 0;

	if ((twiml = twiml_for(c)) == NULL)
		return (SB_ERROR);
	if (tel_form_add(&body, &len, &cap, "To", c->to) == -1 ||
	    tel_form_add(&body, &len, &cap, "From", from) == -1 ||
	    tel_form_add(&body, &len, &cap, "Twiml", twiml) == -1)
		rc = -1;
	free(twiml);
	if (rc == 0 && voice_url[0] != '\0') {
		if (tel_form_add(&body, &len, &cap, "StatusCallback",
		    voice_url) == -1 || tel_form_add(&body, &len, &cap,
		    "StatusCallbackMethod", "POST") == -1)
			rc = -1;
		for (i = 0; rc == 0 && i < sizeof(events) / sizeof(events[0]);
		    i++)
			if (tel_form_add(&body, &len, &cap,
			    "StatusCallbackEvent", events[i]) == -1)
				rc = -1;
	}
	if (rc == 0 && c->record && (tel_form_add(&body, &len, &cap,
	    "Record", "true") == -1 || (voice_url[0] != '\0' &&
	    tel_form_add(&body, &len, &cap, "RecordingStatusCallback",
	    voice_url) == -1)))
		rc = -1;
	if (rc == -1 || (s = calloc(1, sizeof(*s))) == NULL) {
		free(body);
		return (SB_ERROR);
	}
	s->cb = cb;
	s->arg = arg;
	s->voice = 1;
	(void)snprintf(url, sizeof(url), "%s/2010-04-01/Accounts/%s/Calls.json",
	    api_url, sid);
	rc = post(p, url, body, len, twilio_sent, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

static void
twilio_hung(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct send		*s = arg;
	struct tel_send_result	 r;
	json_t			*j = NULL;
	char			 codebuf[32], detail[96];

	memset(&r, 0, sizeof(r));
	if (res->status != 0 && res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	if (res->status == 0)
		tel_outcome_transport(res, &r);
	else if (res->status == 200 || res->status == 201) {
		r.outcome = TEL_ACCEPTED;
		r.status = sb_jstr(j, "status");
	} else {
		refused(res, j, &r, detail, codebuf);
		/* An ambiguous hangup is harmless to repeat. */
		if (res->status == 404)
			r.outcome = TEL_REJECTED;
	}
	if (r.outcome == TEL_AMBIGUOUS)
		r.outcome = TEL_RETRY;
	s->cb(p, &r, s->arg);
	json_decref(j);
	free(s);
}

/* Status=completed ends a call in any state (canceled would leave one
 * in progress alone, and our status may lag Twilio's). */
static int
twilio_hangup(struct sb_plugin *p, const char *csid, const struct tel_call *c,
    tel_send_cb cb, void *arg)
{
	struct send	*s;
	char		 url[640], *body = NULL;
	size_t		 len = 0, cap = 0;
	int		 rc;

	if (strspn(csid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789") != strlen(csid) || strlen(csid) > 64)
		return (SB_ERROR);
	(void)c;
	if (tel_form_add(&body, &len, &cap, "Status", "completed") == -1)
		return (SB_ERROR);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(body);
		return (SB_ERROR);
	}
	s->cb = cb;
	s->arg = arg;
	(void)snprintf(url, sizeof(url),
	    "%s/2010-04-01/Accounts/%s/Calls/%s.json", api_url, sid, csid);
	rc = post(p, url, body, len, twilio_hung, s);
	free(body);
	if (rc != SB_OK)
		free(s);
	return (rc);
}

/* ---- finding a message whose send was interrupted ---- */

/* Twilio's dates are RFC 2822: "Mon, 07 Dec 2026 19:40:00 +0000". */
static int64_t
rfc2822(const char *d)
{
	struct tm	 tm;
	const char	*end;

	memset(&tm, 0, sizeof(tm));
	if (d == NULL || (end = strptime(d, "%a, %d %b %Y %H:%M:%S", &tm)) ==
	    NULL)
		return (-1);
	return ((int64_t)timegm(&tm));
}

static void
twilio_found(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct send		*s = arg;
	struct tel_send_result	 r;
	json_t			*j = NULL, *list, *m;
	const char		**found = NULL;
	size_t			 i, n = 0;

	memset(&r, 0, sizeof(r));
	if (res->status == 200 && res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	list = json_object_get(j, "messages");
	if (res->status != 200 || !json_is_array(list)) {
		r.outcome = TEL_RETRY;
		r.retry_after = res->retry_after;
		r.detail = "Twilio's message list is not available";
		goto done;
	}
	if ((found = calloc(json_array_size(list) + 1,
	    sizeof(*found))) == NULL) {
		r.outcome = TEL_RETRY;
		r.detail = "out of memory";
		goto done;
	}
	/* Newest first: walk back so the oldest candidate comes first.  A
	 * candidate has this text and was created once the attempt began
	 * (a minute's slack for clocks). */
	for (i = json_array_size(list); i-- > 0;) {
		m = json_array_get(list, i);
		if (sb_jstr(m, "sid") == NULL || sb_jstr(m, "body") == NULL ||
		    strcmp(sb_jstr(m, "body"), s->body) != 0 ||
		    rfc2822(sb_jstr(m, "date_created")) < s->since - 60)
			continue;
		found[n++] = sb_jstr(m, "sid");
	}
	r.outcome = n > 0 ? TEL_ACCEPTED : TEL_REFUSED;
	r.found = found;
	r.nfound = n;
	r.status = "sending";
	r.detail = n > 0 ? "Twilio has it" : "Twilio never had it";
done:
	s->cb(p, &r, s->arg);
	free(found);
	json_decref(j);
	if (s->body != NULL) {
		explicit_bzero(s->body, strlen(s->body));
		free(s->body);
	}
	free(s);
}

/*
 * The messages to m->to, newest first (one page of 1,000: the one asked
 * for was created a little while ago).  Twilio lists accepted messages
 * whatever their status.
 */
static int
twilio_find_sms(struct sb_plugin *p, const struct tel_sms *m,
    const char *since, tel_send_cb cb, void *arg)
{
	struct sb_http_header	 h[1];
	struct sb_http_request	 r;
	struct send		*s;
	struct tm		 tm;
	char			 url[768], *q = NULL;
	size_t			 len = 0, cap = 0;
	int			 rc;

	memset(&tm, 0, sizeof(tm));
	if (since == NULL || strptime(since, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
		return (SB_ERROR);
	if (tel_form_add(&q, &len, &cap, "To", m->to) == -1 ||
	    (!set(mss) && tel_form_add(&q, &len, &cap, "From", from) == -1) ||
	    tel_form_add(&q, &len, &cap, "PageSize", "1000") == -1) {
		free(q);
		return (SB_ERROR);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->body = strdup(m->body)) == NULL) {
		free(s);
		free(q);
		return (SB_ERROR);
	}
	s->cb = cb;
	s->arg = arg;
	s->since = (int64_t)timegm(&tm);
	(void)snprintf(url, sizeof(url),
	    "%s/2010-04-01/Accounts/%s/Messages.json?%s", api_url, sid, q);
	free(q);
	h[0].name = "Authorization";
	h[0].value = auth;
	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.url = url;
	r.headers = h;
	r.nheaders = 1;
	r.timeout_ms = timeout_ms;
	r.max_response = 4 * 1024 * 1024;
	r.upstream = "twilio";
	rc = api->http_send(p, &r, twilio_found, s);
	if (rc != SB_OK) {
		free(s->body);
		free(s);
	}
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
	.call_ok = twilio_call_ok,
	.place_call = twilio_place_call,
	.hangup = twilio_hangup,
	.find_sms = twilio_find_sms,
	.sms_sender = twilio_sms_sender,
	.from_number = twilio_from_number,
};
