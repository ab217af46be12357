/*
 * Email for the notifications plugin: the templates (read in setup(), in
 * the parent, before the chroot), {{variable}} rendering with HTML
 * escaping, the RFC 5322 multipart/alternative message, and the
 * notifications.email job, which sends through api->mail_send and
 * finishes in the mail callback: done when the server took the message,
 * retried otherwise (dead after email_max_attempts).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include <switchboard/plugin.h>

#include "notifications.h"

#define TEMPLATE_MAX	(64 * 1024)	/* bytes of one template file */
#define SUBJECT_MAX	200	/* characters of a rendered subject */
#define VAR_MAX		64	/* characters of a variable name */

static const struct sb_host_api	*api;

/* One event type's mail: "Subject: ..." from the first line of
 * <event>.txt, the rest of it, and <event>.html. */
struct template {
	char	*event;
	char	*subject;
	char	*text;
	char	*html;
};

static struct template	*templates;
static size_t		 ntemplates;

/* Set in setup(), in the parent; the workers inherit them. */
static char		*smtp_url;
static char		*smtp_user;
static char		*smtp_pass;
static char		*mail_from;
static char		*mail_domain;	/* for Message-ID */
static char		*console_url;
static int		 starttls;
static unsigned int	 timeout_ms;
static int		 enabled;

static void	email_run(struct sb_job *);

/* Not const: setup() sets max_attempts from email_max_attempts. */
static struct sb_job_kind email_kind = {
	.name = "notifications.email", .run = email_run,
	.max_attempts = 8, .timeout_s = 60, .backoff_s = 2
};

/* ---- a growing string ---- */

struct buf {
	char	*d;
	size_t	 len;
	size_t	 cap;
	int	 oom;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	char	*d;
	size_t	 cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((d = realloc(b->d, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->d = d;
		b->cap = cap;
	}
	memcpy(b->d + b->len, s, n);
	b->len += n;
	b->d[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* The string, owned by the caller (free()); NULL when out of memory. */
static char *
buf_take(struct buf *b)
{
	if (b->oom) {
		free(b->d);
		return (NULL);
	}
	if (b->d == NULL)
		return (strdup(""));
	return (b->d);
}

/* ---- rendering ---- */

static void
add_escaped(struct buf *b, const char *s, int html)
{
	for (; *s != '\0'; s++) {
		if (!html) {
			buf_add(b, s, 1);
			continue;
		}
		switch (*s) {
		case '&':
			buf_str(b, "&amp;");
			break;
		case '<':
			buf_str(b, "&lt;");
			break;
		case '>':
			buf_str(b, "&gt;");
			break;
		case '"':
			buf_str(b, "&quot;");
			break;
		case '\'':
			buf_str(b, "&#39;");
			break;
		default:
			buf_add(b, s, 1);
		}
	}
}

char *
notifications_render(const char *tpl, json_t *vars, int html)
{
	struct buf	 b;
	const char	*p, *open, *close, *n0, *n1;
	char		 name[VAR_MAX + 1], num[32];
	json_t		*v;

	memset(&b, 0, sizeof(b));
	for (p = tpl; (open = strstr(p, "{{")) != NULL; ) {
		buf_add(&b, p, (size_t)(open - p));
		if ((close = strstr(open + 2, "}}")) == NULL) {
			p = open;
			break;
		}
		for (n0 = open + 2; n0 < close && *n0 == ' '; n0++)
			;
		for (n1 = close; n1 > n0 && n1[-1] == ' '; n1--)
			;
		if (n1 == n0 || (size_t)(n1 - n0) > VAR_MAX ||
		    strspn(n0, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") <
		    (size_t)(n1 - n0)) {
			/* Not a variable: the text as it is. */
			buf_add(&b, open, 2);
			p = open + 2;
			continue;
		}
		memcpy(name, n0, (size_t)(n1 - n0));
		name[n1 - n0] = '\0';
		v = json_object_get(vars, name);
		if (json_is_string(v))
			add_escaped(&b, json_string_value(v), html);
		else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld",
			    (long long)json_integer_value(v));
			buf_str(&b, num);
		} else if (json_is_boolean(v))
			buf_str(&b, json_is_true(v) ? "true" : "false");
		p = close + 2;
	}
	buf_str(&b, p);
	return (buf_take(&b));
}

char *
notifications_snippet(const char *s, size_t max)
{
	size_t	 i, chars = 0;
	char	*out;

	for (i = 0; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80 && chars++ == max)
			break;
	}
	if (s[i] == '\0')
		return (strdup(s));
	if ((out = malloc(i + 4)) == NULL)
		return (NULL);
	memcpy(out, s, i);
	memcpy(out + i, "...", 4);
	return (out);
}

/* ---- the message ---- */

/* Base64 of in[0..n) (n <= 57), without line breaks. */
static void
add_base64(struct buf *b, const unsigned char *in, size_t n)
{
	unsigned char	out[80];
	int		len;

	len = EVP_EncodeBlock(out, in, (int)n);
	buf_add(b, (const char *)out, (size_t)len);
}

/* A text body in canonical form (CRLF line ends), base64 in lines of 76
 * characters (RFC 2045 6.8). */
static void
add_body(struct buf *b, const char *text)
{
	struct buf	 crlf;
	size_t		 i, n;

	memset(&crlf, 0, sizeof(crlf));
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] == '\r')
			continue;
		if (text[i] == '\n')
			buf_add(&crlf, "\r\n", 2);
		else
			buf_add(&crlf, text + i, 1);
	}
	if (crlf.oom) {
		b->oom = 1;
		free(crlf.d);
		return;
	}
	/* 57 bytes in, 76 characters out. */
	for (i = 0; i < crlf.len; i += n) {
		n = crlf.len - i < 57 ? crlf.len - i : 57;
		add_base64(b, (const unsigned char *)crlf.d + i, n);
		buf_add(b, "\r\n", 2);
	}
	free(crlf.d);
}

/* A header value on one line: CR, LF and other controls become spaces. */
static char *
header_clean(const char *s)
{
	char	*out, *p;

	if ((out = strdup(s)) == NULL)
		return (NULL);
	for (p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return (out);
}

/*
 * Subject: as it is when it is printable ASCII, else RFC 2047 encoded
 * words ("=?UTF-8?B?...?="), each at most 75 characters and never
 * splitting a UTF-8 sequence, folded onto continuation lines.
 */
static void
add_subject(struct buf *b, const char *s)
{
	size_t	i, n, len = strlen(s);
	int	ascii = 1;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			ascii = 0;
	/* "=?" would read as the start of an encoded word. */
	if (ascii && strstr(s, "=?") == NULL) {
		buf_str(b, s);
		return;
	}
	for (i = 0; i < len; i += n) {
		n = len - i < 45 ? len - i : 45;
		while (i + n < len && ((unsigned char)s[i + n] & 0xc0) == 0x80)
			n--;
		if (i > 0)
			buf_str(b, "\r\n ");
		buf_str(b, "=?UTF-8?B?");
		add_base64(b, (const unsigned char *)s + i, n);
		buf_str(b, "?=");
	}
}

/* RFC 5322 date-time in UTC, without the locale's help. */
static void
add_date(struct buf *b)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
	    "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm	tm;
	time_t		now = time(NULL);
	char		date[64];

	gmtime_r(&now, &tm);
	snprintf(date, sizeof(date), "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	buf_str(b, date);
}

/*
 * The whole message.  The boundary starts with "=_", which base64 never
 * produces, so it cannot occur in a part.  The Message-ID is the same on
 * every attempt: a receiver that got a retry can tell.
 */
static char *
message_build(const char *to, const char *subject, const char *text,
    const char *html, const char *event_id, const char *uid, size_t *len)
{
	struct buf	 b;
	char		*clean, boundary[128];

	memset(&b, 0, sizeof(b));
	snprintf(boundary, sizeof(boundary), "=_sb_%.64s_%.20s", event_id,
	    uid);
	buf_str(&b, "Date: ");
	add_date(&b);
	buf_str(&b, "\r\nFrom: ");
	buf_str(&b, mail_from);
	buf_str(&b, "\r\nTo: ");
	if ((clean = header_clean(to)) != NULL) {
		buf_str(&b, clean);
		free(clean);
	} else
		b.oom = 1;
	buf_str(&b, "\r\nSubject: ");
	if ((clean = header_clean(subject)) != NULL) {
		add_subject(&b, clean);
		free(clean);
	} else
		b.oom = 1;
	buf_str(&b, "\r\nMessage-ID: <sb.");
	buf_str(&b, event_id);
	buf_str(&b, ".");
	buf_str(&b, uid);
	buf_str(&b, "@");
	buf_str(&b, mail_domain);
	buf_str(&b, ">\r\nMIME-Version: 1.0\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "Content-Type: multipart/alternative; boundary=\"");
	buf_str(&b, boundary);
	buf_str(&b, "\"\r\n\r\nThis is a multi-part message in MIME format."
	    "\r\n\r\n--");
	buf_str(&b, boundary);
	buf_str(&b, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	add_body(&b, text);
	buf_str(&b, "--");
	buf_str(&b, boundary);
	buf_str(&b, "\r\nContent-Type: text/html; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	add_body(&b, html);
	buf_str(&b, "--");
	buf_str(&b, boundary);
	buf_str(&b, "--\r\n");
	*len = b.len;
	return (buf_take(&b));
}

/* ---- the job ---- */

static const struct template *
template_find(const char *event)
{
	size_t	i;

	for (i = 0; i < ntemplates; i++)
		if (strcmp(templates[i].event, event) == 0)
			return (&templates[i]);
	return (NULL);
}

static void
email_sent(struct sb_plugin *p, const struct sb_mail_result *res, void *arg)
{
	struct sb_job	*job = arg;
	char		 err[256];

	if (res->ok) {
		/* Recorded at once, inside a transaction, rather than with
		 * the next batch: the smaller the window, the fewer mails a
		 * dying worker can make us send twice. */
		if (api->db_begin(p) == SB_OK) {
			api->job_done(job, json_pack("{s:I}", "smtp_code",
			    (json_int_t)res->smtp_code));
			if (api->db_commit(p) != SB_OK)
				api->db_rollback(p);
		} else
			api->job_done(job, json_pack("{s:I}", "smtp_code",
			    (json_int_t)res->smtp_code));
		return;
	}
	snprintf(err, sizeof(err), "SMTP: %s (code %ld)", res->error != NULL ?
	    res->error : "failed", res->smtp_code);
	api->job_retry(job, err, 0);
}

static void
email_run(struct sb_job *job)
{
	struct sb_plugin	*p = api->job_plugin(job);
	json_t			*payload = api->job_payload(job), *vars;
	struct sb_db_res	*r;
	const struct template	*t;
	struct sb_mail		 m;
	const char		*event, *event_id, *params[1], *to[1], *qid;
	char			 uid[32], url[1024];
	char			*subject, *text, *html, *msg, *s;
	size_t			 len;
	int			 rc;

	if (!enabled) {
		api->job_done(job, json_pack("{s:s}", "skipped",
		    "email is not configured"));
		return;
	}
	event = json_string_value(json_object_get(payload, "event"));
	event_id = json_string_value(json_object_get(payload, "event_id"));
	if (event == NULL || event_id == NULL ||
	    !json_is_integer(json_object_get(payload, "user_id")) ||
	    (t = template_find(event)) == NULL) {
		api->job_fail(job, "malformed payload or no template");
		return;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)json_integer_value(
	    json_object_get(payload, "user_id")));
	params[0] = uid;
	r = api->db_query(p, "SELECT email, name, username FROM users WHERE "
	    "id = $1::bigint AND is_active AND email IS NOT NULL", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database unavailable", 0);
		return;
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		api->job_done(job, json_pack("{s:s}", "skipped",
		    "no active recipient with an email address"));
		return;
	}
	vars = json_object_get(payload, "vars");
	vars = json_is_object(vars) ? json_deep_copy(vars) : json_object();
	json_object_set_new(vars, "recipient_name", json_string(
	    *api->db_value(r, 0, 1) != '\0' ? api->db_value(r, 0, 1) :
	    api->db_value(r, 0, 2)));
	json_object_set_new(vars, "console_url", json_string(console_url));
	if ((qid = json_string_value(json_object_get(vars, "query_id"))) !=
	    NULL) {
		snprintf(url, sizeof(url), "%s/queries/%s", console_url, qid);
		json_object_set_new(vars, "query_url", json_string(url));
	}
	to[0] = api->db_value(r, 0, 0);

	subject = notifications_render(t->subject, vars, 0);
	text = notifications_render(t->text, vars, 0);
	html = notifications_render(t->html, vars, 1);
	msg = NULL;
	if (subject != NULL && (s = notifications_snippet(subject,
	    SUBJECT_MAX)) != NULL) {
		free(subject);
		subject = s;
	}
	if (subject != NULL && text != NULL && html != NULL)
		msg = message_build(to[0], subject, text, html, event_id, uid,
		    &len);
	free(subject);
	free(text);
	free(html);
	json_decref(vars);
	if (msg == NULL) {
		api->db_free(r);
		api->job_retry(job, "out of memory", 0);
		return;
	}

	memset(&m, 0, sizeof(m));
	m.url = smtp_url;
	m.starttls = starttls;
	m.username = smtp_user;
	m.password = smtp_user != NULL ? smtp_pass : NULL;
	m.from = mail_from;
	m.to = to;
	m.nto = 1;
	m.message = msg;
	m.message_len = len;
	m.timeout_ms = timeout_ms;
	/* mail_send copies everything: r and msg may go right after. */
	rc = api->mail_send(p, &m, email_sent, job);
	api->db_free(r);
	free(msg);
	if (rc != SB_OK)
		api->job_fail(job, "the mail was refused as malformed "
		    "(recipient or sender address)");
}

/* ---- setup ---- */

/* A whole file, NUL-terminated; NULL when unreadable or too large. */
static char *
file_read(const char *path)
{
	FILE	*f;
	char	*d;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL)
		return (NULL);
	if ((d = malloc(TEMPLATE_MAX + 1)) == NULL) {
		fclose(f);
		return (NULL);
	}
	n = fread(d, 1, TEMPLATE_MAX + 1, f);
	if (ferror(f) || n > TEMPLATE_MAX || memchr(d, '\0', n) != NULL) {
		fclose(f);
		free(d);
		return (NULL);
	}
	fclose(f);
	d[n] = '\0';
	return (d);
}

/* <dir>/<event>.txt ("Subject: ..." then a blank line then the text)
 * and <dir>/<event>.html. */
static int
template_load(struct sb_plugin *p, const char *dir, const char *event,
    struct template *t)
{
	char	 path[1024], *txt, *nl, *s;

	memset(t, 0, sizeof(*t));
	snprintf(path, sizeof(path), "%s/%s.txt", dir, event);
	if ((txt = file_read(path)) == NULL) {
		api->log(p, SB_LOG_ERROR, "cannot read the template %s", path);
		return (-1);
	}
	if (strncmp(txt, "Subject:", 8) != 0 ||
	    (nl = strchr(txt, '\n')) == NULL) {
		api->log(p, SB_LOG_ERROR, "%s must start with a \"Subject:\" "
		    "line", path);
		free(txt);
		return (-1);
	}
	*nl = '\0';
	if (nl > txt && nl[-1] == '\r')
		nl[-1] = '\0';
	for (s = txt + 8; *s == ' ' || *s == '\t'; s++)
		;
	t->subject = strdup(s);
	for (s = nl + 1; *s == '\r' || *s == '\n'; s++)
		;
	t->text = strdup(s);
	free(txt);
	snprintf(path, sizeof(path), "%s/%s.html", dir, event);
	t->html = file_read(path);
	t->event = strdup(event);
	if (t->subject == NULL || t->text == NULL || t->html == NULL ||
	    t->event == NULL) {
		api->log(p, SB_LOG_ERROR, "cannot read the template %s", path);
		return (-1);
	}
	return (0);
}

static char *
conf_dup(struct sb_plugin *p, const char *key)
{
	const char	*v = api->config_get(p, key);

	return (v != NULL && *v != '\0' ? strdup(v) : NULL);
}

/* An address mail_send takes: local@domain, printable, no spaces. */
static int
address_ok(const char *s)
{
	const char	*at;
	size_t		 i;

	if (s == NULL || strlen(s) > 254 || (at = strchr(s, '@')) == NULL ||
	    at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return (0);
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= 0x20 ||
		    (unsigned char)s[i] >= 0x7f ||
		    strchr("<>()[],;:\\\"", s[i]) != NULL)
			return (0);
	return (1);
}

int
notifications_mail_setup(struct sb_plugin *p, const struct sb_host_api *host,
    const char *const *events)
{
	const char	*dir;
	long long	 v;
	size_t		 n;
	int		 all = 1;

	api = host;
	v = api->config_int(p, "email_max_attempts", 8);
	if (v < 1 || v > 100) {
		api->log(p, SB_LOG_ERROR, "email_max_attempts must be 1..100");
		return (SB_ERROR);
	}
	email_kind.max_attempts = (unsigned int)v;
	v = api->config_int(p, "smtp_timeout_ms", 20000);
	if (v < 100 || v > 50000) {
		/* Below the job's 60 s lease, with room for the queue. */
		api->log(p, SB_LOG_ERROR, "smtp_timeout_ms must be "
		    "100..50000");
		return (SB_ERROR);
	}
	timeout_ms = (unsigned int)v;
	starttls = api->config_bool(p, "smtp_starttls", 1);
	smtp_url = conf_dup(p, "smtp_url");
	smtp_user = conf_dup(p, "smtp_username");
	smtp_pass = conf_dup(p, "smtp_password");
	mail_from = conf_dup(p, "mail_from");
	console_url = conf_dup(p, "console_url");
	if (console_url == NULL)
		console_url = strdup("");
	for (n = console_url != NULL ? strlen(console_url) : 0;
	    n > 0 && console_url[n - 1] == '/'; n--)
		console_url[n - 1] = '\0';
	if (!address_ok(mail_from)) {
		api->log(p, SB_LOG_ERROR, "mail_from must be a plain address "
		    "(local@domain)");
		return (SB_ERROR);
	}
	mail_domain = strchr(mail_from, '@') + 1;
	if (smtp_url != NULL && strncmp(smtp_url, "smtp://", 7) != 0 &&
	    strncmp(smtp_url, "smtps://", 8) != 0) {
		api->log(p, SB_LOG_ERROR, "smtp_url must be smtp:// or "
		    "smtps://");
		return (SB_ERROR);
	}
	if (smtp_pass != NULL && smtp_user == NULL) {
		api->log(p, SB_LOG_ERROR, "smtp_password without "
		    "smtp_username");
		return (SB_ERROR);
	}

	dir = api->config_get(p, "templates_dir");
	for (n = 0; events[n] != NULL; n++)
		;
	if ((templates = calloc(n, sizeof(*templates))) == NULL)
		return (SB_ERROR);
	/* Templates are read even with email off, so a broken one shows at
	 * once; only with email on is it fatal. */
	for (ntemplates = 0; ntemplates < n; ntemplates++) {
		if (template_load(p, dir != NULL ? dir : ".",
		    events[ntemplates], &templates[ntemplates]) == -1) {
			ntemplates++;
			if (smtp_url != NULL)
				return (SB_ERROR);
			all = 0;
			break;
		}
	}
	enabled = smtp_url != NULL && all;
	if (smtp_url == NULL)
		api->log(p, SB_LOG_WARN, "smtp_url is not set: email "
		    "notifications are off (those jobs finish as skipped)");
	if (api->job_kind_add(p, &email_kind) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

void
notifications_mail_health(json_t *detail)
{
	json_object_set_new(detail, "email", json_string(enabled ?
	    "configured" : "not configured"));
}

void
notifications_mail_fini(void)
{
	size_t	i;

	for (i = 0; i < ntemplates; i++) {
		free(templates[i].event);
		free(templates[i].subject);
		free(templates[i].text);
		free(templates[i].html);
	}
	free(templates);
	templates = NULL;
	ntemplates = 0;
}
