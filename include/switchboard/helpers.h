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

/* s cut to at most max bytes at a UTF-8 character boundary (a timeline's
 * summary, a preview), in place. */
static inline void
sb_utf8_cut(char *s, size_t max)
{
	size_t	n;

	if (s == NULL || strlen(s) <= max)
		return;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	s[n] = '\0';
}

/* n bytes at p set to zero in a way the compiler keeps (explicit_bzero
 * without needing _DEFAULT_SOURCE): for plaintext before it is freed. */
static inline void
sb_wipe(void *p, size_t n)
{
	volatile unsigned char	*v = (volatile unsigned char *)p;

	while (n-- > 0)
		*v++ = 0;
}

/*
 * row.col, a value the plugin sealed, replaced by row.key with its
 * plaintext (JSON null when absent or when it does not open); the
 * plaintext is wiped before it is freed.
 */
static inline void
sb_unseal_into(const struct sb_host_api *api, struct sb_plugin *p,
    json_t *row, const char *col, const char *key)
{
	const char	*v = sb_jstr(row, col);
	char		*plain = NULL;

	if (v != NULL)
		plain = api->unseal(p, v, NULL);
	json_object_set_new(row, key, plain != NULL ? json_string(plain) :
	    json_null());
	if (plain != NULL) {
		sb_wipe(plain, strlen(plain));
		free(plain);
	}
	json_object_del(row, col);
}

/*
 * Transaction-scoped advisory locks on every key of keys (an array of
 * strings; duplicates are fine), taken in the order of their hash, so
 * that two transactions locking overlapping sets never wait on each other
 * in a cycle.  0, or -1 on a database error.
 */
static inline int
sb_db_lock_keys(const struct sb_host_api *api, struct sb_plugin *p,
    json_t *keys)
{
	const char	*params[1];
	char		*ks;
	long long	 n;

	if (json_array_size(keys) == 0)
		return (0);
	if ((ks = json_dumps(keys, JSON_COMPACT)) == NULL)
		return (-1);
	params[0] = ks;
	n = sb_db_count(api, p, "SELECT pg_advisory_xact_lock(h) FROM (SELECT "
	    "DISTINCT hashtext(k) AS h FROM jsonb_array_elements_text("
	    "$1::jsonb) AS a (k) ORDER BY 1) x", 1, params);
	free(ks);
	return (n < 0 ? -1 : 0);
}

/*
 * Key rotation of one table (a plugin's rekey hook): re-seal the sealed
 * columns cols (NULL-terminated, at most 8) of up to batch rows of table,
 * whose key is a bigint `id`, after the id kept in state.<key>, and move
 * state.<key> on.  table and cols are the plugin's own constants, never
 * input.  Adds the values re-sealed to *resealed.  1 when a whole batch
 * was done (there may be more), 0 when the table is done, -1 on a
 * database error (state unchanged: the host rolls the batch back).
 */
static inline int
sb_rekey_table(const struct sb_host_api *api, struct sb_plugin *p,
    const char *table, const char *const *cols, json_t *state,
    const char *key, unsigned int batch, unsigned int *resealed)
{
	struct sb_db_res	*r;
	const char		*params[9];
	char			 sel[1024], upd[2048], after[24], lim[16];
	char			*out[8];
	json_int_t		 last = sb_jint(state, key);
	size_t			 nc, j, o, u;
	int			 i, n, rc, failed = 0;

	for (nc = 0; cols[nc] != NULL; nc++)
		;
	if (nc == 0 || nc > 8)
		return (-1);
	o = (size_t)snprintf(sel, sizeof(sel), "SELECT id");
	u = (size_t)snprintf(upd, sizeof(upd), "UPDATE %s SET ", table);
	for (j = 0; j < nc; j++) {
		o += (size_t)snprintf(sel + o, sizeof(sel) - o, ", %s", cols[j]);
		u += (size_t)snprintf(upd + u, sizeof(upd) - u, "%s%s = "
		    "coalesce($%zu, %s)", j > 0 ? ", " : "", cols[j], j + 2,
		    cols[j]);
		if (o >= sizeof(sel) || u >= sizeof(upd))
			return (-1);
	}
	o += (size_t)snprintf(sel + o, sizeof(sel) - o, " FROM %s WHERE id > "
	    "$1::bigint ORDER BY id LIMIT $2::int", table);
	u += (size_t)snprintf(upd + u, sizeof(upd) - u, " WHERE id = "
	    "$1::bigint RETURNING 1");
	if (o >= sizeof(sel) || u >= sizeof(upd))
		return (-1);
	(void)snprintf(after, sizeof(after), "%lld", (long long)last);
	(void)snprintf(lim, sizeof(lim), "%u", batch);
	params[0] = after;
	params[1] = lim;
	r = api->db_query(p, sel, 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	n = api->db_rows(r);
	for (i = 0; i < n && !failed; i++) {
		int	changed = 0;

		for (j = 0; j < nc; j++) {
			out[j] = NULL;
			if (api->db_isnull(r, i, (int)j + 1))
				continue;
			rc = api->reseal(p, api->db_value(r, i, (int)j + 1),
			    &out[j]);
			if (rc == 1) {
				changed = 1;
				(*resealed)++;
			}
		}
		if (changed) {
			params[0] = api->db_value(r, i, 0);
			for (j = 0; j < nc; j++)
				params[j + 1] = out[j];
			if (sb_db_count(api, p, upd, (int)nc + 1, params) == -1)
				failed = 1;
		}
		for (j = 0; j < nc; j++)
			free(out[j]);
		if (!failed)
			last = strtoll(api->db_value(r, i, 0), NULL, 10);
	}
	api->db_free(r);
	if (failed)
		return (-1);
	json_object_set_new(state, key, json_integer(last));
	return ((unsigned int)n == batch ? 1 : 0);
}

#endif /* SWITCHBOARD_HELPERS_H */
