/*
 * API.md's list convention for plugins (ABI 1.3 list_parse and
 * list_respond): `?limit=` (default 50, 1..200) and `?cursor=` in, keyset
 * pages and `{"data": [...], "next_cursor": "..." | null}` out.  The
 * plugin writes the query (limit + 1 rows after the cursor); the host
 * owns the parsing, the errors and the answer, so every list reads and
 * fails the same way.
 *
 * The cursor is the text of one column of the last row shown, opaque to
 * the client.  With SB_LIST_ID_CURSOR it is an id, checked here as a
 * positive decimal of at most 18 digits so that binding it as a bigint
 * cannot fail in the database.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"

#define LIST_DEFAULT	50
#define LIST_MAX	200
#define CURSOR_MAX	256	/* bytes of an opaque (non-id) cursor */

static int	positive_id(const char *);
static void	bad_param(struct sb_req *, const char *field,
		    const char *code, const char *message);

/* [0-9]{1,18}, not zero. */
static int
positive_id(const char *s)
{
	size_t	i, len = strlen(s);
	int	nonzero = 0;

	if (len == 0 || len > 18)
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (0);
		if (s[i] != '0')
			nonzero = 1;
	}
	return (nonzero);
}

static void
bad_param(struct sb_req *req, const char *field, const char *code,
    const char *message)
{
	char	msg[64];

	snprintf(msg, sizeof(msg), "invalid %s", field);
	sb_respond_error(req, 400, "VALIDATION_ERROR", msg,
	    json_pack("[{s:s, s:s, s:s}]", "field", field, "code", code,
	    "message", message));
}

int
sb_list_parse(struct sb_req *req, struct sb_list *l, unsigned int flags)
{
	const char	*v;
	char		*end;
	long long	 n;

	if (req == NULL || l == NULL)
		return (SB_ERROR);
	memset(l, 0, sizeof(*l));
	l->size = sizeof(*l);
	l->limit = LIST_DEFAULT;
	if ((v = sb_req_query(req, "limit")) != NULL) {
		n = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < 1 || n > LIST_MAX) {
			bad_param(req, "limit", "OUT_OF_RANGE",
			    "limit must be 1..200");
			return (SB_ERROR);
		}
		l->limit = n;
	}
	/* An empty cursor= is the first page, as if absent. */
	if ((v = sb_req_query(req, "cursor")) != NULL && *v != '\0') {
		if ((flags & SB_LIST_ID_CURSOR) ? !positive_id(v) :
		    strlen(v) > CURSOR_MAX) {
			bad_param(req, "cursor", "INVALID_FORMAT",
			    "not a cursor this list gave");
			return (SB_ERROR);
		}
		l->cursor = v;
	}
	snprintf(l->limit_plus_one, sizeof(l->limit_plus_one), "%lld",
	    l->limit + 1);
	return (SB_OK);
}

void
sb_list_respond(struct sb_req *req, struct sb_db_res *r,
    const struct sb_list *l, const char *cursor_column, sb_list_map_cb map,
    void *arg)
{
	json_t		*data, *row, *next;
	const char	*cur;
	int		 i, n, col;

	if (req == NULL) {
		sb_db_free(r);
		return;
	}
	if (r == NULL || !r->ok || r->res == NULL) {
		sb_log(SB_LOG_ERROR, "lists", "%s: list query failed (%s)",
		    req->plugin != NULL ? req->plugin->name : "?",
		    r != NULL && r->sqlstate[0] != '\0' ? r->sqlstate : "-");
		sb_db_free(r);
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	if (cursor_column == NULL)
		cursor_column = "id";
	col = PQfnumber(r->res, cursor_column);
	if (l == NULL || l->limit < 1 || l->limit > LIST_MAX || col < 0) {
		/* The plugin's mistake, not the client's. */
		sb_log(SB_LOG_ERROR, "lists", "%s: list_respond without a "
		    "parsed list or cursor column %s",
		    req->plugin != NULL ? req->plugin->name : "?",
		    cursor_column);
		sb_db_free(r);
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}

	data = json_array();
	n = PQntuples(r->res);
	for (i = 0; i < n && i < l->limit; i++) {
		row = sb_db_row_json(r, i);
		if (cursor_column[0] == '_')
			json_object_del(row, cursor_column);
		if (map != NULL)
			row = map(req, row, arg);
		if (row != NULL)
			json_array_append_new(data, row);
	}
	next = json_null();
	if (n > l->limit && !PQgetisnull(r->res, (int)l->limit - 1, col)) {
		cur = PQgetvalue(r->res, (int)l->limit - 1, col);
		json_decref(next);
		next = json_string(cur);
	}
	sb_db_free(r);
	sb_respond_json(req, 200, json_pack("{s:o, s:o}", "data", data,
	    "next_cursor", next != NULL ? next : json_null()));
}
