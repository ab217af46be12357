/*
 * The "customers.directory" service (include/switchboard/services/
 * customers.h) and the timeline it feeds: channel plugins find or create
 * customers by phone number and register timeline sources; GET
 * /api/v1/customers/{id}/timeline merges what every source returns.
 * A new channel adds a source from its own init() and needs no change
 * here.
 *
 * Service functions run on the calling plugin's request or job, on the
 * worker's one connection and so inside the caller's transaction: they
 * never begin, commit or roll back.
 */

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "customers.h"

#define api		customers_api

#define SOURCES_MAX	16
#define CURSOR_MAX	512

/* Per worker: filled by the channel plugins' init(). */
static struct {
	struct sb_plugin			*owner;
	const struct sb_timeline_source		*source;
} sources[SOURCES_MAX];
static size_t	nsources;

/* A timeline item with its sort key. */
struct item {
	int64_t		 at_us;
	const char	*channel;	/* borrowed from obj */
	int64_t		 id;
	json_t		*obj;
};

static int64_t	dir_find_or_create(struct sb_plugin *, const char *, int *);
static json_t	*dir_get(struct sb_plugin *, int64_t, int *);
static int	dir_timeline_source_add(struct sb_plugin *,
		    const struct sb_timeline_source *);
static int	dir_wa_id_set(struct sb_plugin *, int64_t, const char *);

const struct sb_customers_directory customers_directory = {
	.hdr = { .size = sizeof(struct sb_customers_directory),
	    .version = SB_CUSTOMERS_DIRECTORY_VERSION },
	.find_or_create = dir_find_or_create,
	.get = dir_get,
	.timeline_source_add = dir_timeline_source_add,
	.wa_id_set = dir_wa_id_set,
};

/*
 * Race-free find or create: the INSERT either creates the row or, when
 * another transaction holds or committed the same blind index, waits for
 * it and does nothing; the SELECT then sees the committed row (READ
 * COMMITTED takes a new snapshot per statement).  A conflicting
 * transaction that rolled back leaves nothing to find: try again.
 */
static int64_t
dir_find_or_create(struct sb_plugin *caller, const char *e164, int *created)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			*index = NULL, *sealed = NULL;
	int64_t			 id = -1;
	int			 attempt, made = 0;
	json_t			*data;

	(void)caller;
	if (created != NULL)
		*created = 0;
	if (!customers_is_e164(e164))
		return (-1);
	index = customers_index(CUSTOMERS_PHONE, e164);
	sealed = api->seal(customers_self, e164, strlen(e164));
	if (index == NULL || sealed == NULL) {
		api->log(customers_self, SB_LOG_ERROR, "find_or_create: "
		    "cannot seal or index (no data key?)");
		goto out;
	}
	params[0] = sealed;
	params[1] = index;
	/* The number is usually known: one SELECT.  A new one is inserted,
	 * and a concurrent insert of the same number (the unique index)
	 * leaves this call to find the other's row. */
	for (attempt = 0; attempt < 3 && id == -1; attempt++) {
		r = api->db_query(customers_self, "SELECT id FROM customers "
		    "WHERE phone_index = $1", 1, params + 1);
		if (!api->db_ok(r)) {
			api->db_free(r);
			goto out;
		}
		if (api->db_rows(r) == 1) {
			id = strtoll(api->db_value(r, 0, 0), NULL, 10);
			api->db_free(r);
			break;
		}
		api->db_free(r);
		r = api->db_query(customers_self, "INSERT INTO customers "
		    "(phone_sealed, phone_index) VALUES ($1, $2) ON CONFLICT "
		    "(phone_index) DO NOTHING RETURNING id", 2, params);
		if (!api->db_ok(r)) {
			api->db_free(r);
			goto out;
		}
		if (api->db_rows(r) == 1) {
			id = strtoll(api->db_value(r, 0, 0), NULL, 10);
			made = 1;
		}
		api->db_free(r);
	}
	if (made) {
		data = json_pack("{s:I}", "id", (json_int_t)id);
		api->publish(customers_self, "customers.customer.created", 1,
		    data);
		json_decref(data);
	}
	if (created != NULL)
		*created = made;
out:
	free(index);
	free(sealed);
	return (id);
}

/* Version 2: the customer's WhatsApp id, recorded when it differs. */
static int
dir_wa_id_set(struct sb_plugin *caller, int64_t id, const char *wa_id)
{
	const char	*params[3];
	char		 ids[24], *index = NULL, *sealed = NULL;
	size_t		 n;
	int		 rc = -1;

	(void)caller;
	if (id <= 0 || wa_id == NULL || (n = strlen(wa_id)) < 5 || n > 20 ||
	    strspn(wa_id, "0123456789") != n)
		return (-1);
	index = customers_index(CUSTOMERS_WA_ID, wa_id);
	sealed = api->seal(customers_self, wa_id, n);
	if (index == NULL || sealed == NULL)
		goto out;
	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	params[0] = ids;
	params[1] = sealed;
	params[2] = index;
	if (sb_db_count(api, customers_self, "UPDATE customers SET "
	    "wa_id_sealed = $2, wa_id_index = $3, updated_at = now() WHERE id "
	    "= $1::bigint AND wa_id_index IS DISTINCT FROM $3 RETURNING 1", 3,
	    params) >= 0)
		rc = 0;
out:
	free(index);
	free(sealed);
	return (rc);
}

static json_t *
dir_get(struct sb_plugin *caller, int64_t id, int *dberr)
{
	json_t	*c = NULL;
	int	 err = 0;

	(void)caller;
	if (id > 0)
		c = customers_fetch(id, &err);
	if (dberr != NULL)
		*dberr = err;
	return (c);
}

static int
valid_channel(const char *c)
{
	size_t	i;

	if (c == NULL)
		return (0);
	for (i = 0; c[i] != '\0'; i++)
		if (c[i] < 'a' || c[i] > 'z')
			return (0);
	return (i >= 1 && i <= 16);
}

static int
dir_timeline_source_add(struct sb_plugin *caller,
    const struct sb_timeline_source *src)
{
	size_t	i;

	if (src == NULL || src->size < offsetof(struct sb_timeline_source,
	    items) + sizeof(src->items) || src->items == NULL ||
	    !valid_channel(src->channel)) {
		api->log(customers_self, SB_LOG_ERROR, "timeline_source_add: "
		    "refused a malformed source");
		return (SB_ERROR);
	}
	for (i = 0; i < nsources; i++) {
		if (strcmp(sources[i].source->channel, src->channel) == 0) {
			api->log(customers_self, SB_LOG_ERROR,
			    "timeline_source_add: channel %s is already "
			    "added", src->channel);
			return (SB_ERROR);
		}
	}
	if (nsources == SOURCES_MAX) {
		api->log(customers_self, SB_LOG_ERROR, "timeline_source_add: "
		    "more than %d sources", SOURCES_MAX);
		return (SB_ERROR);
	}
	sources[nsources].owner = caller;
	sources[nsources].source = src;
	nsources++;
	return (SB_OK);
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)" as microseconds since the
 * epoch, -1 when it is not one. */
static int64_t
parse_time(const char *s)
{
	struct tm	tm;
	int		v[6], i, digits, sign, oh, om;
	int64_t		frac = 0, t;
	const char	*p = s;
	static const char seps[] = "--T::";
	static const int widths[] = { 4, 2, 2, 2, 2, 2 };

	if (s == NULL)
		return (-1);
	for (i = 0; i < 6; i++) {
		v[i] = 0;
		for (digits = 0; digits < widths[i]; digits++, p++) {
			if (!isdigit((unsigned char)*p))
				return (-1);
			v[i] = v[i] * 10 + (*p - '0');
		}
		if (i < 5 && *p++ != seps[i] && !(i == 2 && p[-1] == 't'))
			return (-1);
	}
	if (*p == '.') {
		p++;
		for (digits = 0; isdigit((unsigned char)*p); digits++, p++)
			if (digits < 6)
				frac = frac * 10 + (*p - '0');
		if (digits == 0 || digits > 9)
			return (-1);
		for (; digits < 6; digits++)
			frac *= 10;
	}
	oh = om = 0;
	sign = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]) || p[3] != ':' ||
		    !isdigit((unsigned char)p[4]) ||
		    !isdigit((unsigned char)p[5]))
			return (-1);
		oh = (p[1] - '0') * 10 + (p[2] - '0');
		om = (p[4] - '0') * 10 + (p[5] - '0');
		p += 6;
	} else
		return (-1);
	if (*p != '\0' || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 ||
	    v[3] > 23 || v[4] > 59 || v[5] > 60 || oh > 23 || om > 59)
		return (-1);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	t = (int64_t)timegm(&tm);
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	return (t * 1000000 + frac);
}

/* List order: at descending, then channel, then id descending.  < 0
 * when a comes first. */
static int
item_cmp(const struct item *a, const struct item *b)
{
	int	c;

	if (a->at_us != b->at_us)
		return (a->at_us > b->at_us ? -1 : 1);
	if ((c = strcmp(a->channel, b->channel)) != 0)
		return (c);
	if (a->id != b->id)
		return (a->id > b->id ? -1 : 1);
	return (0);
}

static int
item_qsort(const void *a, const void *b)
{
	return (item_cmp(a, b));
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding; caller frees. */
static char *
b64url_encode(const unsigned char *in, size_t len)
{
	char	*out, *o;
	size_t	 i;
	uint32_t v;

	if ((out = malloc(len / 3 * 4 + 5)) == NULL)
		return (NULL);
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = b64[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
	}
	*o = '\0';
	return (out);
}

/* NUL-terminated decoding into out (at least strlen(in) bytes); -1 for
 * anything but canonical unpadded base64url. */
static int
b64url_decode(const char *in, char *out)
{
	size_t		 i, n = strlen(in), o = 0;
	uint32_t	 v = 0;
	int		 bits = 0;
	const char	*c;

	if (n % 4 == 1)
		return (-1);
	for (i = 0; i < n; i++) {
		if (in[i] == '\0' || (c = strchr(b64, in[i])) == NULL)
			return (-1);
		v = v << 6 | (uint32_t)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(v >> bits & 0xff);
		}
	}
	if ((v & ((1u << bits) - 1)) != 0)
		return (-1);
	out[o] = '\0';
	return (strlen(out) == o ? 0 : -1);
}

/* The cursor's {at, channel, id}, or NULL when it is not one we made. */
static json_t *
cursor_decode(const char *cursor, struct item *key)
{
	char	 buf[CURSOR_MAX];
	json_t	*o;

	if (strlen(cursor) >= sizeof(buf) || b64url_decode(cursor, buf) == -1)
		return (NULL);
	if ((o = json_loads(buf, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return (NULL);
	if (!json_is_object(o) || json_object_size(o) != 3 ||
	    !json_is_integer(json_object_get(o, "id")) ||
	    !valid_channel(sb_jstr(o, "channel")) ||
	    (key->at_us = parse_time(sb_jstr(o, "at"))) == -1) {
		json_decref(o);
		return (NULL);
	}
	key->channel = sb_jstr(o, "channel");
	key->id = sb_jint(o, "id");
	key->obj = NULL;
	return (o);
}

static char *
cursor_encode(const struct item *last)
{
	json_t	*o;
	char	*text, *out;

	o = json_pack("{s:O, s:s, s:I}", "at", json_object_get(last->obj,
	    "at"), "channel", last->channel, "id", (json_int_t)last->id);
	if (o == NULL)
		return (NULL);
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		return (NULL);
	out = b64url_encode((const unsigned char *)text, strlen(text));
	free(text);
	return (out);
}

/* A source's item as the API shows it, with its sort key; NULL (and the
 * item left out) when the source broke the contract. */
static json_t *
item_take(json_t *in, const char *channel, struct item *it)
{
	static const char *const texts[] = { "kind", "direction", "status",
	    "summary" };
	json_t		*out;
	size_t		 i;

	if (!json_is_object(in) || !json_is_integer(json_object_get(in, "id")) ||
	    (it->at_us = parse_time(sb_jstr(in, "at"))) == -1)
		return (NULL);
	out = json_pack("{s:s, s:O, s:O}", "channel", channel, "id",
	    json_object_get(in, "id"), "at", json_object_get(in, "at"));
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_object_set_new(out, texts[i], json_string(
		    sb_jstr(in, texts[i]) != NULL ? sb_jstr(in, texts[i]) :
		    ""));
	}
	it->channel = sb_jstr(out, "channel");
	it->id = sb_jint(out, "id");
	it->obj = out;
	return (out);
}

void
customers_timeline(struct sb_req *req)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	struct item		*items = NULL, before, *grown;
	json_t			*cur = NULL, *arr, *v, *data;
	const char		*id, *params[1];
	char			*next = NULL;
	size_t			 n = 0, cap = 0, i, j;
	int64_t			 cid;

	if ((id = sb_positive_id(api->req_param(req, "id"))) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such customer",
		    NULL);
		return;
	}
	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, 0) != SB_OK)
		return;
	memset(&before, 0, sizeof(before));
	if (list.cursor != NULL &&
	    (cur = cursor_decode(list.cursor, &before)) == NULL) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "invalid "
		    "cursor", sb_field_error("cursor", "INVALID_FORMAT",
		    "not a cursor this API returned"));
		return;
	}
	params[0] = id;
	r = api->db_query(customers_self, "SELECT 1 FROM customers WHERE "
	    "id = $1::bigint", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) == 0) {
		if (api->db_ok(r))
			api->respond_error(req, 404, "NOT_FOUND",
			    "no such customer", NULL);
		else
			api->respond_error(req, 503, "UNAVAILABLE",
			    "database unavailable", NULL);
		api->db_free(r);
		json_decref(cur);
		return;
	}
	api->db_free(r);
	cid = strtoll(id, NULL, 10);

	/* Each source gives at most limit + 1 items after the cursor: the
	 * first `limit` of the merge are the page, one more means more. */
	for (i = 0; i < nsources; i++) {
		arr = sources[i].source->items(sources[i].owner, cid, cur,
		    (unsigned int)list.limit + 1);
		if (arr == NULL) {
			api->log(customers_self, SB_LOG_ERROR, "timeline "
			    "source %s failed", sources[i].source->channel);
			api->respond_error(req, 503, "UNAVAILABLE", "a timeline "
			    "source is unavailable", NULL);
			goto out;
		}
		json_array_foreach(arr, j, v) {
			if (n == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				grown = reallocarray(items, cap, sizeof(*items));
				if (grown == NULL) {
					json_decref(arr);
					api->respond_error(req, 503,
					    "UNAVAILABLE", "out of memory",
					    NULL);
					goto out;
				}
				items = grown;
			}
			if (item_take(v, sources[i].source->channel,
			    &items[n]) == NULL) {
				api->log(customers_self, SB_LOG_WARN, "timeline "
				    "source %s: a malformed item left out",
				    sources[i].source->channel);
				continue;
			}
			/* Not after the cursor: the source's filter is wrong. */
			if (cur != NULL && item_cmp(&items[n], &before) <= 0) {
				json_decref(items[n].obj);
				continue;
			}
			n++;
		}
		json_decref(arr);
	}
	if (n > 1)
		qsort(items, n, sizeof(*items), item_qsort);
	data = json_array();
	for (i = 0; i < n && i < (size_t)list.limit; i++)
		json_array_append(data, items[i].obj);
	if (n > (size_t)list.limit &&
	    (next = cursor_encode(&items[list.limit - 1])) == NULL) {
		json_decref(data);
		api->respond_error(req, 503, "UNAVAILABLE", "out of memory",
		    NULL);
		goto out;
	}
	api->respond_json(req, 200, json_pack("{s:o, s:s?}", "data", data,
	    "next_cursor", next));
out:
	for (i = 0; i < n; i++)
		json_decref(items[i].obj);
	free(items);
	free(next);
	json_decref(cur);
}
