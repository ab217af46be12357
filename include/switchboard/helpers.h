/*
 * Small helpers every plugin ends up writing, as static inline functions
 * over jansson and the host API: nothing here is part of the ABI (a plugin
 * that does not include this file loses nothing), and nothing here keeps
 * state.  Include after <switchboard/plugin.h>.
 */

#ifndef SWITCHBOARD_HELPERS_H
#define SWITCHBOARD_HELPERS_H

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* A timestamptz column as API.md writes times: UTC, microseconds, "Z". */
#define SB_SQL_TS(c)	"to_char(" c " AT TIME ZONE 'UTC', " \
			"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* o.k as a string, or NULL. */
static inline const char *
sb_jstr(json_t *o, const char *k)
{
	return (json_string_value(json_object_get(o, k)));
}

/* o.k as an integer, or 0. */
static inline json_int_t
sb_jint(json_t *o, const char *k)
{
	json_t	*v = json_object_get(o, k);

	return (json_is_integer(v) ? json_integer_value(v) : 0);
}

/* The errors array of the error envelope with one entry (for
 * respond_error, which steals it). */
static inline json_t *
sb_field_error(const char *field, const char *code, const char *message)
{
	return (json_pack("[{s:s, s:s, s:s}]", "field", field, "code", code,
	    "message", message));
}

/* s when it is a positive decimal id of at most 18 digits, else NULL: a
 * path parameter safe to bind as bigint. */
static inline const char *
sb_positive_id(const char *s)
{
	char	*end;

	if (s == NULL || *s == '\0' || strlen(s) > 18 ||
	    strtoll(s, &end, 10) <= 0 || *end != '\0')
		return (NULL);
	return (s);
}

/* "%text%" for ILIKE, with text's own %, _ and backslash taken
 * literally.  Caller frees with free(); NULL when out of memory. */
static inline char *
sb_like_pattern(const char *text)
{
	size_t	 n = strlen(text), i, o = 0;
	char	*out;

	if ((out = malloc(2 * n + 3)) == NULL)
		return (NULL);
	out[o++] = '%';
	for (i = 0; i < n; i++) {
		if (text[i] == '%' || text[i] == '_' || text[i] == '\\')
			out[o++] = '\\';
		out[o++] = text[i];
	}
	out[o++] = '%';
	out[o] = '\0';
	return (out);
}

/*
 * A query whose one row and column is JSON text (json_build_object(...)
 * ::text), parsed: a new reference the caller owns, or NULL on a
 * database error or no row.  For exports that SQL assembles whole.
 */
static inline json_t *
sb_db_json(const struct sb_host_api *api, struct sb_plugin *p,
    const char *sql, int nparams, const char *const *params)
{
	struct sb_db_res	*r;
	json_t			*out = NULL;

	r = api->db_query(p, sql, nparams, params);
	if (api->db_ok(r) && api->db_rows(r) == 1 && !api->db_isnull(r, 0, 0))
		out = json_loads(api->db_value(r, 0, 0), 0, NULL);
	api->db_free(r);
	return (out);
}

/* How many rows a statement returned ("DELETE ... RETURNING 1"), or -1
 * on a database error. */
static inline long long
sb_db_count(const struct sb_host_api *api, struct sb_plugin *p,
    const char *sql, int nparams, const char *const *params)
{
	struct sb_db_res	*r;
	long long		 n;

	r = api->db_query(p, sql, nparams, params);
	n = api->db_ok(r) ? api->db_rows(r) : -1;
	api->db_free(r);
	return (n);
}

#endif /* SWITCHBOARD_HELPERS_H */
