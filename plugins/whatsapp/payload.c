/*
 * Meta's webhook body, without the host: the parser that turns a
 * whatsapp_business_account payload into flat items (the customer's
 * messages and the statuses of ours, each checked and bounded on its
 * own; the shape is in wa.h) and the check of the X-Hub-Signature-256
 * header.  jansson and OpenSSL only, so that the unit test and the fuzz
 * harness run it alone.
 *
 * A malformed item is left out and counted, never the whole payload:
 * Meta batches messages of several customers in one body, and one bad
 * one must not cost the others.
 */

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "wa.h"

#define ITEMS_MAX	1000
#define PROFILE_MAX	256
#define TITLE_MAX	256
#define DESC_MAX	1024
#define FNAME_MAX	240
#define MIME_MAX	128
#define SHA_MAX		128
#define MEDIA_ID_MAX	128
#define REPLY_ID_MAX	1024	/* a reply's id, a template button's payload */
#define EMOJI_MAX	64	/* code points: ZWJ sequences are long */
#define PLACE_MAX	256	/* a location's name */
#define ADDRESS_MAX	1024
#define URL_MAX		2048
#define OPAQUE_MAX	512
#define DETAIL_MAX	1024
#define RAW_TYPE_MAX	32
#define PNID_MAX	64
#define TS_LIMIT	((json_int_t)1 << 40)

/* The parse under way. */
struct pctx {
	json_t	*items;
	size_t	 skipped;
	int	 oom;
};

struct kind {
	const char	*type;
	int		(*fn)(struct pctx *, json_t *, const char *, json_t *);
};

static int	bounded(const char *, size_t);
static const char *opt_str(json_t *, const char *, size_t, int *);
static const char *req_str(json_t *, const char *, size_t, int *);
static int	wamid_ok(const char *);
static int	digits_ok(const char *, size_t, size_t);
static int	ts_get(json_t *, json_int_t *);
static const char *raw_type(const char *);
static void	put(struct pctx *, json_t *, const char *, json_t *);
static void	put_str(struct pctx *, json_t *, const char *, const char *);
static int	m_text(struct pctx *, json_t *, const char *, json_t *);
static int	m_media(struct pctx *, json_t *, const char *, json_t *);
static int	m_location(struct pctx *, json_t *, const char *, json_t *);
static int	m_reaction(struct pctx *, json_t *, const char *, json_t *);
static int	m_interactive(struct pctx *, json_t *, const char *, json_t *);
static int	m_button(struct pctx *, json_t *, const char *, json_t *);
static const char *profile_name(json_t *, const char *, int *);
static json_t	*message(struct pctx *, json_t *, const char *, json_t *);
static json_t	*error_of(struct pctx *, json_t *, int *);
static json_t	*status(struct pctx *, json_t *, const char *);
static void	change(struct pctx *, json_t *);
static void	set_err(char *, size_t, const char *);
static int	hexval(int);

static const struct kind kinds[] = {
	{ "text",	 m_text },
	{ "image",	 m_media },
	{ "audio",	 m_media },
	{ "video",	 m_media },
	{ "document",	 m_media },
	{ "sticker",	 m_media },
	{ "location",	 m_location },
	{ "reaction",	 m_reaction },
	{ "interactive", m_interactive },
	{ "button",	 m_button },
};

/* s has at most max code points (jansson's strings are valid UTF-8). */
static int
bounded(const char *s, size_t max)
{
	size_t	n = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80 && ++n > max)
			return (0);
	}
	return (1);
}

/*
 * The string at key of o, or NULL when absent (or null); NULL with *bad
 * set when it is there but not a string of at most max code points.
 */
static const char *
opt_str(json_t *o, const char *key, size_t max, int *bad)
{
	json_t	*v;

	if ((v = json_object_get(o, key)) == NULL || json_is_null(v))
		return (NULL);
	if (!json_is_string(v) || !bounded(json_string_value(v), max)) {
		*bad = 1;
		return (NULL);
	}
	return (json_string_value(v));
}

/* As opt_str, and absent is bad too. */
static const char *
req_str(json_t *o, const char *key, size_t max, int *bad)
{
	const char	*s;

	if ((s = opt_str(o, key, max, bad)) == NULL)
		*bad = 1;
	return (s);
}

/* A message id: 1 to WA_WAMID_MAX printable ASCII characters, no space. */
static int
wamid_ok(const char *s)
{
	size_t	n;

	if (s == NULL)
		return (0);
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= WA_WAMID_MAX || s[n] < 0x21 || s[n] > 0x7e)
			return (0);
	}
	return (n > 0);
}

static int
digits_ok(const char *s, size_t min, size_t max)
{
	size_t	n;

	if (s == NULL)
		return (0);
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= max || s[n] < '0' || s[n] > '9')
			return (0);
	}
	return (n >= min);
}

/* A unix time, as Meta's string of digits or as an integer. */
static int
ts_get(json_t *v, json_int_t *out)
{
	const char	*s;
	json_int_t	 t = 0;

	if (json_is_integer(v))
		t = json_integer_value(v);
	else if (json_is_string(v)) {
		s = json_string_value(v);
		/* 13 digits hold 2^40; more would overflow below. */
		if (!digits_ok(s, 1, 13))
			return (0);
		for (; *s != '\0'; s++)
			t = t * 10 + (*s - '0');
	} else
		return (0);
	if (t <= 0 || t >= TS_LIMIT)
		return (0);
	*out = t;
	return (1);
}

/* Meta's name of a type we do not show, when it is a clean one. */
static const char *
raw_type(const char *s)
{
	size_t	n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= RAW_TYPE_MAX || !((s[n] >= 'a' && s[n] <= 'z') ||
		    s[n] == '_'))
			return ("unknown");
	}
	return (n > 0 ? s : "unknown");
}

/* Sets key of o to v (stolen); a failed allocation marks the parse. */
static void
put(struct pctx *c, json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v) == -1)
		c->oom = 1;
}

static void
put_str(struct pctx *c, json_t *o, const char *key, const char *s)
{
	put(c, o, key, json_string(s));
}

static int
m_text(struct pctx *c, json_t *it, const char *type, json_t *b)
{
	const char	*body;
	int		 bad = 0;

	if ((body = req_str(b, "body", WA_TEXT_MAX, &bad)) == NULL)
		return (-1);
	put_str(c, it, "type", "text");
	put_str(c, it, "text", body);
	return (0);
}

static int
m_media(struct pctx *c, json_t *it, const char *type, json_t *b)
{
	json_t		*media;
	const char	*id, *mime, *sha, *caption, *fname = NULL;
	int		 bad = 0;

	id = req_str(b, "id", MEDIA_ID_MAX, &bad);
	mime = opt_str(b, "mime_type", MIME_MAX, &bad);
	sha = opt_str(b, "sha256", SHA_MAX, &bad);
	caption = opt_str(b, "caption", WA_CAPTION_MAX, &bad);
	if (strcmp(type, "document") == 0)
		fname = opt_str(b, "filename", FNAME_MAX, &bad);
	if (bad || *id == '\0')
		return (-1);
	if ((media = json_object()) == NULL) {
		c->oom = 1;
		return (-1);
	}
	put_str(c, media, "id", id);
	put_str(c, media, "mime_type", mime != NULL ? mime : "");
	put_str(c, media, "sha256", sha != NULL ? sha : "");
	if (fname != NULL)
		put_str(c, media, "filename", fname);
	put_str(c, it, "type", type);
	put(c, it, "media", media);
	if (caption != NULL)
		put_str(c, it, "caption", caption);
	return (0);
}

static int
m_location(struct pctx *c, json_t *it, const char *type, json_t *b)
{
	json_t		*loc, *lat, *lng;
	const char	*name, *addr, *url;
	double		 la, lo;
	int		 bad = 0;

	lat = json_object_get(b, "latitude");
	lng = json_object_get(b, "longitude");
	if (!json_is_number(lat) || !json_is_number(lng))
		return (-1);
	la = json_number_value(lat);
	lo = json_number_value(lng);
	if (!(la >= -90.0 && la <= 90.0) || !(lo >= -180.0 && lo <= 180.0))
		return (-1);
	name = opt_str(b, "name", PLACE_MAX, &bad);
	addr = opt_str(b, "address", ADDRESS_MAX, &bad);
	url = opt_str(b, "url", URL_MAX, &bad);
	if (bad)
		return (-1);
	if ((loc = json_object()) == NULL) {
		c->oom = 1;
		return (-1);
	}
	put(c, loc, "latitude", json_copy(lat));
	put(c, loc, "longitude", json_copy(lng));
	if (name != NULL)
		put_str(c, loc, "name", name);
	if (addr != NULL)
		put_str(c, loc, "address", addr);
	if (url != NULL)
		put_str(c, loc, "url", url);
	put_str(c, it, "type", "location");
	put(c, it, "location", loc);
	return (0);
}

/* An empty or absent emoji is a reaction taken back: kept as "". */
static int
m_reaction(struct pctx *c, json_t *it, const char *type, json_t *b)
{
	json_t		*r;
	const char	*mid, *emoji;
	int		 bad = 0;

	mid = json_string_value(json_object_get(b, "message_id"));
	emoji = opt_str(b, "emoji", EMOJI_MAX, &bad);
	if (bad || !wamid_ok(mid))
		return (-1);
	if ((r = json_object()) == NULL) {
		c->oom = 1;
		return (-1);
	}
	put_str(c, r, "message_id", mid);
	put_str(c, r, "emoji", emoji != NULL ? emoji : "");
	put_str(c, it, "type", "reaction");
	put(c, it, "reaction", r);
	return (0);
}

/* A reply button or a list row the customer picked: its title as text. */
static int
m_interactive(struct pctx *c, json_t *it, const char *type, json_t *b)
{
	json_t		*r, *ia;
	const char	*itype, *id, *title, *desc = NULL;
	int		 bad = 0;

	itype = json_string_value(json_object_get(b, "type"));
	if (itype == NULL || (strcmp(itype, "button_reply") != 0 &&
	    strcmp(itype, "list_reply") != 0)) {
		/* Flows (nfm_reply) and whatever comes next. */
		put_str(c, it, "type", "unsupported");
		put_str(c, it, "raw_type", "interactive");
		return (0);
	}
	if (!json_is_object(r = json_object_get(b, itype)))
		return (-1);
	id = req_str(r, "id", REPLY_ID_MAX, &bad);
	title = req_str(r, "title", TITLE_MAX, &bad);
	if (strcmp(itype, "list_reply") == 0)
		desc = opt_str(r, "description", DESC_MAX, &bad);
	if (bad)
		return (-1);
	if ((ia = json_object()) == NULL) {
		c->oom = 1;
		return (-1);
	}
	put_str(c, ia, "type", itype);
	put_str(c, ia, "id", id);
	put_str(c, ia, "title", title);
	if (desc != NULL)
		put_str(c, ia, "description", desc);
	put_str(c, it, "type", "text");
	put_str(c, it, "text", title);
	put(c, it, "interactive", ia);
	return (0);
}

/* A template's quick-reply button: {text, payload}. */
static int
m_button(struct pctx *c, json_t *it, const char *type, json_t *b)
{
	json_t		*ia;
	const char	*text, *payload;
	int		 bad = 0;

	text = req_str(b, "text", TITLE_MAX, &bad);
	payload = opt_str(b, "payload", REPLY_ID_MAX, &bad);
	if (bad)
		return (-1);
	if ((ia = json_object()) == NULL) {
		c->oom = 1;
		return (-1);
	}
	put_str(c, ia, "type", "button");
	put_str(c, ia, "id", payload != NULL ? payload : "");
	put_str(c, ia, "title", text);
	put_str(c, it, "type", "text");
	put_str(c, it, "text", text);
	put(c, it, "interactive", ia);
	return (0);
}

/* The profile name of wa_id among the change's contacts, "" if none or
 * not a bounded string: a customer's odd name never costs the message. */
static const char *
profile_name(json_t *contacts, const char *wa_id, int *bad)
{
	json_t		*ct;
	const char	*id, *name;
	size_t		 i;
	int		 odd = 0;

	(void)bad;
	json_array_foreach(contacts, i, ct) {
		id = json_string_value(json_object_get(ct, "wa_id"));
		if (id == NULL || strcmp(id, wa_id) != 0)
			continue;
		name = opt_str(json_object_get(ct, "profile"), "name",
		    PROFILE_MAX, &odd);
		return (name != NULL && !odd ? name : "");
	}
	return ("");
}

static json_t *
message(struct pctx *c, json_t *m, const char *pnid, json_t *contacts)
{
	json_t		*it, *ctx, *cid, *body;
	const char	*id, *from, *type, *name;
	json_int_t	 ts;
	size_t		 i;
	int		 bad = 0, rc;

	if (!json_is_object(m))
		return (NULL);
	id = json_string_value(json_object_get(m, "id"));
	from = json_string_value(json_object_get(m, "from"));
	type = json_string_value(json_object_get(m, "type"));
	if (!wamid_ok(id) || !digits_ok(from, 6, 15) || type == NULL ||
	    !ts_get(json_object_get(m, "timestamp"), &ts))
		return (NULL);
	name = profile_name(contacts, from, &bad);
	if (bad)
		return (NULL);

	/* A forwarded message has a context without an id. */
	cid = NULL;
	if ((ctx = json_object_get(m, "context")) != NULL) {
		if (!json_is_object(ctx))
			return (NULL);
		if ((cid = json_object_get(ctx, "id")) != NULL &&
		    !wamid_ok(json_string_value(cid)))
			return (NULL);
	}

	if ((it = json_object()) == NULL) {
		c->oom = 1;
		return (NULL);
	}
	put_str(c, it, "kind", "message");
	put_str(c, it, "id", id);
	put_str(c, it, "from", from);
	put_str(c, it, "name", name);
	put(c, it, "timestamp", json_integer(ts));
	put_str(c, it, "phone_number_id", pnid);
	if (cid != NULL)
		put(c, it, "context", json_pack("{s:s}", "id",
		    json_string_value(cid)));

	rc = 1;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(type, kinds[i].type) != 0)
			continue;
		body = json_object_get(m, type);
		rc = json_is_object(body) ?
		    kinds[i].fn(c, it, kinds[i].type, body) : -1;
		break;
	}
	if (rc == 1) {
		/* contacts, order, system, unsupported, unknown, ... */
		put_str(c, it, "type", "unsupported");
		put_str(c, it, "raw_type", raw_type(type));
		rc = 0;
	}
	if (rc != 0 || c->oom) {
		json_decref(it);
		return (NULL);
	}
	return (it);
}

/* The first of a status's errors: {code, title, detail?}. */
static json_t *
error_of(struct pctx *c, json_t *e, int *bad)
{
	json_t		*err, *code;
	const char	*title, *detail;
	json_int_t	 n;

	code = json_object_get(e, "code");
	if (!json_is_integer(code) || (n = json_integer_value(code)) < 0 ||
	    n > INT32_MAX) {
		*bad = 1;
		return (NULL);
	}
	if ((title = opt_str(e, "title", TITLE_MAX, bad)) == NULL)
		title = opt_str(e, "message", TITLE_MAX, bad);
	detail = opt_str(json_object_get(e, "error_data"), "details",
	    DETAIL_MAX, bad);
	if (*bad)
		return (NULL);
	if ((err = json_object()) == NULL) {
		c->oom = 1;
		return (NULL);
	}
	put(c, err, "code", json_integer(n));
	put_str(c, err, "title", title != NULL ? title : "");
	if (detail != NULL)
		put_str(c, err, "detail", detail);
	return (err);
}

static json_t *
status(struct pctx *c, json_t *s, const char *pnid)
{
	json_t		*it, *errs, *err = NULL;
	const char	*id, *st, *rcpt, *opaque;
	json_int_t	 ts;
	int		 bad = 0;

	if (!json_is_object(s))
		return (NULL);
	id = json_string_value(json_object_get(s, "id"));
	st = json_string_value(json_object_get(s, "status"));
	rcpt = json_string_value(json_object_get(s, "recipient_id"));
	/* Others (deleted, warning) are not ours to apply. */
	if (st == NULL || (strcmp(st, "sent") != 0 &&
	    strcmp(st, "delivered") != 0 && strcmp(st, "read") != 0 &&
	    strcmp(st, "failed") != 0))
		return (NULL);
	if (!wamid_ok(id) || !digits_ok(rcpt, 6, 15) ||
	    !ts_get(json_object_get(s, "timestamp"), &ts))
		return (NULL);
	opaque = opt_str(s, "biz_opaque_callback_data", OPAQUE_MAX, &bad);
	if ((errs = json_object_get(s, "errors")) != NULL) {
		if (!json_is_array(errs))
			return (NULL);
		if (json_array_size(errs) > 0 &&
		    (err = error_of(c, json_array_get(errs, 0), &bad)) == NULL)
			return (NULL);
	}
	if (bad || (it = json_object()) == NULL) {
		c->oom |= !bad;
		json_decref(err);
		return (NULL);
	}
	put_str(c, it, "kind", "status");
	put_str(c, it, "id", id);
	put_str(c, it, "status", st);
	put(c, it, "timestamp", json_integer(ts));
	put_str(c, it, "recipient_id", rcpt);
	put_str(c, it, "phone_number_id", pnid);
	if (opaque != NULL)
		put_str(c, it, "biz_opaque_callback_data", opaque);
	if (err != NULL)
		put(c, it, "error", err);
	if (c->oom) {
		json_decref(it);
		return (NULL);
	}
	return (it);
}

/* One change of field "messages": its value's messages and statuses. */
static void
change(struct pctx *c, json_t *value)
{
	json_t		*msgs, *sts, *contacts, *m, *it;
	const char	*pnid;
	size_t		 i;
	int		 bad = 0;

	msgs = json_object_get(value, "messages");
	sts = json_object_get(value, "statuses");
	contacts = json_object_get(value, "contacts");
	pnid = req_str(json_object_get(value, "metadata"), "phone_number_id",
	    PNID_MAX, &bad);
	if (bad || *pnid == '\0') {
		c->skipped += json_array_size(msgs) + json_array_size(sts);
		return;
	}
	json_array_foreach(msgs, i, m) {
		if (json_array_size(c->items) >= ITEMS_MAX ||
		    (it = message(c, m, pnid, contacts)) == NULL) {
			c->skipped++;
			continue;
		}
		if (json_array_append_new(c->items, it) == -1)
			c->oom = 1;
	}
	json_array_foreach(sts, i, m) {
		if (json_array_size(c->items) >= ITEMS_MAX ||
		    (it = status(c, m, pnid)) == NULL) {
			c->skipped++;
			continue;
		}
		if (json_array_append_new(c->items, it) == -1)
			c->oom = 1;
	}
}

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

json_t *
wa_payload_parse(const char *raw, size_t len, size_t *skipped, char *err,
    size_t errlen)
{
	struct pctx	 c;
	json_t		*root = NULL, *entries, *entry, *changes, *ch, *value;
	const char	*object, *field;
	size_t		 i, j;

	memset(&c, 0, sizeof(c));
	set_err(err, errlen, "");
	if (raw == NULL || (root = json_loadb(raw, len, 0, NULL)) == NULL) {
		set_err(err, errlen, "not JSON");
		goto out;
	}
	object = json_string_value(json_object_get(root, "object"));
	entries = json_object_get(root, "entry");
	if (object == NULL ||
	    strcmp(object, "whatsapp_business_account") != 0 ||
	    !json_is_array(entries)) {
		set_err(err, errlen, "not a whatsapp_business_account payload");
		goto out;
	}
	if ((c.items = json_array()) == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	json_array_foreach(entries, i, entry) {
		changes = json_object_get(entry, "changes");
		json_array_foreach(changes, j, ch) {
			field = json_string_value(json_object_get(ch, "field"));
			value = json_object_get(ch, "value");
			if (field == NULL || strcmp(field, "messages") != 0 ||
			    !json_is_object(value))
				continue;
			change(&c, value);
			if (c.oom)
				break;
		}
		if (c.oom)
			break;
	}
	if (c.oom) {
		set_err(err, errlen, "out of memory");
		json_decref(c.items);
		c.items = NULL;
	}

out:
	json_decref(root);
	if (skipped != NULL)
		*skipped = c.skipped;
	return (c.items);
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return (ch - '0');
	if (ch >= 'a' && ch <= 'f')
		return (ch - 'a' + 10);
	if (ch >= 'A' && ch <= 'F')
		return (ch - 'A' + 10);
	return (-1);
}

int
wa_signature_ok(const char *secret, const void *body, size_t len,
    const char *header)
{
	unsigned char	 want[32], got[EVP_MAX_MD_SIZE];
	unsigned int	 glen = 0;
	size_t		 slen, i;
	int		 hi, lo;

	if (secret == NULL || header == NULL || (body == NULL && len > 0))
		return (0);
	/* An empty secret is an unset one: nothing matches it. */
	if ((slen = strlen(secret)) == 0 || slen > INT_MAX)
		return (0);
	if (strncmp(header, "sha256=", 7) != 0 || strlen(header) != 7 + 64)
		return (0);
	for (i = 0; i < sizeof(want); i++) {
		hi = hexval((unsigned char)header[7 + 2 * i]);
		lo = hexval((unsigned char)header[8 + 2 * i]);
		if (hi == -1 || lo == -1)
			return (0);
		want[i] = (unsigned char)(hi << 4 | lo);
	}
	if (body == NULL)
		body = "";
	if (HMAC(EVP_sha256(), secret, (int)slen, body, len, got,
	    &glen) == NULL || glen != sizeof(want))
		return (0);
	return (CRYPTO_memcmp(want, got, sizeof(want)) == 0);
}
