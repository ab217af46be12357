/*
 * The host configuration file: INI-style sections ([host], [plugin
 * example]) of key = value lines.  Pure C, no Kore; parsed once in the
 * parent before the workers fork, read-only afterwards.
 */

#ifndef SB_CONF_H
#define SB_CONF_H

#include <stddef.h>

#define SB_CONF_LINE_MAX	4096		/* bytes, without the newline */
#define SB_CONF_FILE_MAX	(1024 * 1024)	/* bytes */

struct sb_conf;

/*
 * Parses len bytes of text.  source_name is used in error messages
 * ("conf/switchboard.conf:12: expected 'key = value'").  NULL on error,
 * with the message in err (err may be NULL).  Caller frees with
 * sb_conf_free().
 */
struct sb_conf	*sb_conf_parse(const char *text, size_t len,
		    const char *source_name, char *err, size_t errlen);
/* Reads and parses the file at path; errors name the path. */
struct sb_conf	*sb_conf_load(const char *path, char *err, size_t errlen);
void		 sb_conf_free(struct sb_conf *);

/* Value of key in section, or NULL.  Borrowed from the conf. */
const char	*sb_conf_get(const struct sb_conf *, const char *section,
		    const char *key);
/*
 * yes/no/true/false/on/off/1/0, case-insensitive.  Absent: fallback and
 * *ok = 1.  Unparsable: fallback and *ok = 0.  ok may be NULL.
 */
int		 sb_conf_bool(const struct sb_conf *, const char *section,
		    const char *key, int fallback, int *ok);
/*
 * Decimal integer with an optional sign and k/K, m/M or g/G suffix
 * (powers of 1024).  Absent: fallback and *ok = 1.  Garbage or overflow:
 * fallback and *ok = 0.  ok may be NULL.
 */
long long	 sb_conf_int(const struct sb_conf *, const char *section,
		    const char *key, long long fallback, int *ok);
/*
 * Sets (adding the section and key if needed) a value, e.g. from an
 * environment override.  value is copied.  -1 on an invalid section or
 * key name or on allocation failure.
 */
int		 sb_conf_set(struct sb_conf *, const char *section,
		    const char *key, const char *value);

/* Every section in file order (then those added by sb_conf_set()). */
void		 sb_conf_foreach_section(const struct sb_conf *,
		    void (*)(const char *section, void *arg), void *arg);
/* Every key of section in file order; nothing if there is no section. */
void		 sb_conf_foreach_key(const struct sb_conf *,
		    const char *section,
		    void (*)(const char *key, const char *value, void *arg),
		    void *arg);

/* The value syntax of sb_conf_bool / sb_conf_int, for values read
 * elsewhere (plugin configuration): 0, or -1 when v is not valid. */
int	sb_conf_parse_bool(const char *v, int *out);
int	sb_conf_parse_int(const char *v, long long *out);

#endif /* SB_CONF_H */
