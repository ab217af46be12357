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

#endif /* SWITCHBOARD_HELPERS_H */
