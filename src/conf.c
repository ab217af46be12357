/*
 * The host configuration file parser and the in-memory configuration.
 *
 * Sections and keys are kept in file order in plain lists: a
 * configuration has a few dozen entries and is read at startup, so a
 * linear lookup costs nothing worth a hash table.  Every error names the
 * source and the line, and the parser refuses anything ambiguous
 * (duplicates, stray text) rather than guess what the operator meant.
 */

#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "text.h"

struct conf_key {
	TAILQ_ENTRY(conf_key)	 list;
	char			*key;
	char			*value;
	size_t			 line;		/* 0: set by sb_conf_set() */
};

struct conf_section {
	TAILQ_ENTRY(conf_section) list;
	char			*name;
	size_t			 line;
	TAILQ_HEAD(, conf_key)	 keys;
};

struct sb_conf {
	TAILQ_HEAD(, conf_section) sections;
};

/* Where the parser is, for error messages. */
struct pos {
	const char		*source;
	size_t			 line;
	char			*err;
	size_t			 errlen;
};

static void		 poserr(const struct pos *, const char *, ...)
			    __attribute__((format(printf, 2, 3)));
static int		 is_space(int);
static int		 is_keychar(int);
static char		*skip_space(char *);
static int		 section_name(const char *, size_t, char *, size_t);
static struct conf_section *section_find(const struct sb_conf *,
			    const char *);
static struct conf_section *section_add(struct sb_conf *, const char *,
			    size_t);
static struct conf_key	*key_find(const struct conf_section *, const char *);
static struct conf_key	*key_add(struct conf_section *, const char *,
			    const char *, size_t);
static int		 parse_line(struct sb_conf *, struct conf_section **,
			    char *, const struct pos *);
static int		 parse_section(struct sb_conf *, struct conf_section **,
			    char *, const struct pos *);
static int		 parse_quoted(char *, char **, const struct pos *);

struct sb_conf *
sb_conf_parse(const char *text, size_t len, const char *source_name,
    char *err, size_t errlen)
{
	struct sb_conf		*conf;
	struct conf_section	*sec;
	struct pos		 pos;
	const char		*p, *end, *nl;
	size_t			 llen;
	char			 line[SB_CONF_LINE_MAX + 1];

	pos.source = source_name != NULL ? source_name : "<config>";
	pos.line = 0;
	pos.err = err;
	pos.errlen = errlen;

	if (len > SB_CONF_FILE_MAX) {
		sb_seterr(err, errlen, "%s: file too large (%zu bytes, limit %d)",
		    pos.source, len, SB_CONF_FILE_MAX);
		return (NULL);
	}
	if (text == NULL && len > 0) {
		sb_seterr(err, errlen, "%s: no text", pos.source);
		return (NULL);
	}
	if ((conf = calloc(1, sizeof(*conf))) == NULL) {
		sb_seterr(err, errlen, "%s: out of memory", pos.source);
		return (NULL);
	}
	TAILQ_INIT(&conf->sections);

	sec = NULL;
	for (p = text, end = text + len; p < end; p = nl + 1) {
		pos.line++;
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		llen = nl - p;
		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		if (llen > SB_CONF_LINE_MAX) {
			poserr(&pos, "line too long (more than %d bytes)",
			    SB_CONF_LINE_MAX);
			goto fail;
		}
		memcpy(line, p, llen);
		line[llen] = '\0';
		/* Values are C strings: a NUL would silently cut one. */
		if (strlen(line) != llen) {
			poserr(&pos, "NUL byte in line");
			goto fail;
		}
		if (parse_line(conf, &sec, line, &pos) == -1)
			goto fail;
	}
	return (conf);

fail:
	sb_conf_free(conf);
	return (NULL);
}

struct sb_conf *
sb_conf_load(const char *path, char *err, size_t errlen)
{
	struct sb_conf	*conf;
	struct stat	 st;
	char		*buf;
	size_t		 len;
	ssize_t		 n;
	int		 fd;

	conf = NULL;
	buf = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		sb_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		sb_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		sb_seterr(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	/* One byte more than the limit tells "too large" from "at it",
	 * even if the file grows between fstat() and read(). */
	if ((buf = malloc(SB_CONF_FILE_MAX + 1)) == NULL) {
		sb_seterr(err, errlen, "%s: out of memory", path);
		goto out;
	}
	len = 0;
	while (len < SB_CONF_FILE_MAX + 1) {
		n = read(fd, buf + len, SB_CONF_FILE_MAX + 1 - len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			sb_seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += n;
	}
	conf = sb_conf_parse(buf, len, path, err, errlen);

out:
	if (fd != -1)
		(void)close(fd);
	free(buf);
	return (conf);
}

void
sb_conf_free(struct sb_conf *conf)
{
	struct conf_section	*sec;
	struct conf_key		*k;

	if (conf == NULL)
		return;
	while ((sec = TAILQ_FIRST(&conf->sections)) != NULL) {
		TAILQ_REMOVE(&conf->sections, sec, list);
		while ((k = TAILQ_FIRST(&sec->keys)) != NULL) {
			TAILQ_REMOVE(&sec->keys, k, list);
			free(k->key);
			free(k->value);
			free(k);
		}
		free(sec->name);
		free(sec);
	}
	free(conf);
}

const char *
sb_conf_get(const struct sb_conf *conf, const char *section, const char *key)
{
	const struct conf_section	*sec;
	const struct conf_key		*k;

	if (conf == NULL || section == NULL || key == NULL)
		return (NULL);
	if ((sec = section_find(conf, section)) == NULL ||
	    (k = key_find(sec, key)) == NULL)
		return (NULL);
	return (k->value);
}

int
sb_conf_parse_bool(const char *v, int *out)
{
	static const char *const	 yes[] = { "yes", "true", "on", "1" };
	static const char *const	 no[] = { "no", "false", "off", "0" };
	size_t				 i;

	for (i = 0; v != NULL && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return (0);
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return (0);
		}
	}
	return (-1);
}

int
sb_conf_bool(const struct sb_conf *conf, const char *section, const char *key,
    int fallback, int *ok)
{
	const char	*v;
	int		 b;

	if (ok != NULL)
		*ok = 1;
	if ((v = sb_conf_get(conf, section, key)) == NULL)
		return (fallback);
	if (sb_conf_parse_bool(v, &b) == 0)
		return (b);
	if (ok != NULL)
		*ok = 0;
	return (fallback);
}

int
sb_conf_parse_int(const char *v, long long *out)
{
	const char		*p;
	unsigned long long	 n, mult;
	int			 neg;

	if ((p = v) == NULL)
		return (-1);
	neg = 0;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (*p < '0' || *p > '9')
		return (-1);
	for (n = 0; *p >= '0' && *p <= '9'; p++) {
		if (n > (ULLONG_MAX - (unsigned)(*p - '0')) / 10)
			return (-1);
		n = n * 10 + (unsigned)(*p - '0');
	}
	switch (*p) {
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		p++;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		p++;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		p++;
		break;
	default:
		mult = 1;
		break;
	}
	if (*p != '\0' || __builtin_mul_overflow(n, mult, &n))
		return (-1);
	if (neg) {
		if (n > (unsigned long long)LLONG_MAX + 1)
			return (-1);
		/* -(LLONG_MAX + 1) without overflowing on the way. */
		*out = n == 0 ? 0 : -(long long)(n - 1) - 1;
		return (0);
	}
	if (n > (unsigned long long)LLONG_MAX)
		return (-1);
	*out = (long long)n;
	return (0);
}

long long
sb_conf_int(const struct sb_conf *conf, const char *section, const char *key,
    long long fallback, int *ok)
{
	const char	*v;
	long long	 n;

	if (ok != NULL)
		*ok = 1;
	if ((v = sb_conf_get(conf, section, key)) == NULL)
		return (fallback);
	if (sb_conf_parse_int(v, &n) == 0)
		return (n);
	if (ok != NULL)
		*ok = 0;
	return (fallback);
}

int
sb_conf_set(struct sb_conf *conf, const char *section, const char *key,
    const char *value)
{
	struct conf_section	*sec;
	struct conf_key		*k;
	const char		*p;
	char			*v;
	char			 name[SB_CONF_LINE_MAX + 1];

	if (conf == NULL || section == NULL || key == NULL || value == NULL)
		return (-1);
	if (section_name(section, strlen(section), name, sizeof(name)) == -1)
		return (-1);
	if (*key == '\0')
		return (-1);
	for (p = key; *p != '\0'; p++) {
		if (!is_keychar((unsigned char)*p))
			return (-1);
	}

	if ((sec = section_find(conf, name)) == NULL &&
	    (sec = section_add(conf, name, 0)) == NULL)
		return (-1);
	if ((k = key_find(sec, key)) != NULL) {
		if ((v = strdup(value)) == NULL)
			return (-1);
		free(k->value);
		k->value = v;
		return (0);
	}
	return (key_add(sec, key, value, 0) == NULL ? -1 : 0);
}

void
sb_conf_foreach_section(const struct sb_conf *conf,
    void (*cb)(const char *, void *), void *arg)
{
	const struct conf_section	*sec;

	if (conf == NULL)
		return;
	TAILQ_FOREACH(sec, &conf->sections, list)
		cb(sec->name, arg);
}

void
sb_conf_foreach_key(const struct sb_conf *conf, const char *section,
    void (*cb)(const char *, const char *, void *), void *arg)
{
	const struct conf_section	*sec;
	const struct conf_key		*k;

	if (conf == NULL || section == NULL ||
	    (sec = section_find(conf, section)) == NULL)
		return;
	TAILQ_FOREACH(k, &sec->keys, list)
		cb(k->key, k->value, arg);
}

static void
poserr(const struct pos *pos, const char *fmt, ...)
{
	va_list	ap;
	char	msg[256];

	if (pos->err == NULL || pos->errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_seterr(pos->err, pos->errlen, "%s:%zu: %s", pos->source, pos->line,
	    msg);
}

static int
is_space(int c)
{
	return (c == ' ' || c == '\t');
}

static int
is_keychar(int c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-');
}

static char *
skip_space(char *s)
{
	while (is_space((unsigned char)*s))
		s++;
	return (s);
}

/*
 * Normalises "  plugin   example " to "plugin example": one or two words
 * of key characters.  out must hold len + 1 bytes.
 */
static int
section_name(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	i, o;
	int	words, inword;

	if (outlen < len + 1)
		return (-1);
	words = 0;
	inword = 0;
	for (i = 0, o = 0; i < len; i++) {
		if (is_space((unsigned char)s[i])) {
			inword = 0;
			continue;
		}
		if (!is_keychar((unsigned char)s[i]))
			return (-1);
		if (!inword) {
			if (++words > 2)
				return (-1);
			if (o > 0)
				out[o++] = ' ';
			inword = 1;
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	return (words == 0 ? -1 : 0);
}

static struct conf_section *
section_find(const struct sb_conf *conf, const char *name)
{
	struct conf_section	*sec;

	TAILQ_FOREACH(sec, &conf->sections, list) {
		if (strcmp(sec->name, name) == 0)
			return (sec);
	}
	return (NULL);
}

static struct conf_section *
section_add(struct sb_conf *conf, const char *name, size_t line)
{
	struct conf_section	*sec;

	if ((sec = calloc(1, sizeof(*sec))) == NULL)
		return (NULL);
	if ((sec->name = strdup(name)) == NULL) {
		free(sec);
		return (NULL);
	}
	sec->line = line;
	TAILQ_INIT(&sec->keys);
	TAILQ_INSERT_TAIL(&conf->sections, sec, list);
	return (sec);
}

static struct conf_key *
key_find(const struct conf_section *sec, const char *key)
{
	struct conf_key	*k;

	TAILQ_FOREACH(k, &sec->keys, list) {
		if (strcmp(k->key, key) == 0)
			return (k);
	}
	return (NULL);
}

static struct conf_key *
key_add(struct conf_section *sec, const char *key, const char *value,
    size_t line)
{
	struct conf_key	*k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return (NULL);
	if ((k->key = strdup(key)) == NULL ||
	    (k->value = strdup(value)) == NULL) {
		free(k->key);
		free(k);
		return (NULL);
	}
	k->line = line;
	TAILQ_INSERT_TAIL(&sec->keys, k, list);
	return (k);
}

/* line is one NUL-terminated line without its line ending; modified. */
static int
parse_line(struct sb_conf *conf, struct conf_section **secp, char *line,
    const struct pos *pos)
{
	struct conf_section	*sec;
	struct conf_key		*k;
	char			*s, *key, *eq, *val, *end;
	size_t			 klen;

	s = skip_space(line);
	if (*s == '\0' || *s == '#' || *s == ';')
		return (0);
	if (*s == '[')
		return (parse_section(conf, secp, s, pos));

	key = s;
	while (is_keychar((unsigned char)*s))
		s++;
	klen = s - key;
	eq = skip_space(s);
	if (klen == 0 || *eq != '=') {
		poserr(pos, "expected 'key = value'");
		return (-1);
	}
	key[klen] = '\0';
	if ((sec = *secp) == NULL) {
		poserr(pos, "key '%s' outside of any section", key);
		return (-1);
	}

	val = skip_space(eq + 1);
	if (*val == '"') {
		if (parse_quoted(val, &val, pos) == -1)
			return (-1);
	} else {
		/* A comment starts at whitespace followed by '#' or ';', so
		 * "http://host/#frag" and "a;b" survive; the whitespace may
		 * be the one after '='. */
		for (end = eq + 1; *end != '\0'; end++) {
			if (is_space((unsigned char)end[0]) &&
			    (end[1] == '#' || end[1] == ';'))
				break;
		}
		if (end < val)
			end = val;
		while (end > val && is_space((unsigned char)end[-1]))
			end--;
		*end = '\0';
	}

	if ((k = key_find(sec, key)) != NULL) {
		poserr(pos, "duplicate key '%s' in [%s] (first set on line %zu)",
		    key, sec->name, k->line);
		return (-1);
	}
	if (key_add(sec, key, val, pos->line) == NULL) {
		poserr(pos, "out of memory");
		return (-1);
	}
	return (0);
}

static int
parse_section(struct sb_conf *conf, struct conf_section **secp, char *s,
    const struct pos *pos)
{
	struct conf_section	*sec;
	char			*close, *after;
	char			 name[SB_CONF_LINE_MAX + 1];

	if ((close = strchr(s, ']')) == NULL) {
		poserr(pos, "expected ']' to close the section header");
		return (-1);
	}
	after = skip_space(close + 1);
	if (*after != '\0' && *after != '#' && *after != ';') {
		poserr(pos, "unexpected text after section header");
		return (-1);
	}
	if (section_name(s + 1, close - s - 1, name, sizeof(name)) == -1) {
		poserr(pos, "invalid section name '%.*s' (expected [word] or "
		    "[word word] of A-Z a-z 0-9 _ . -)", (int)(close - s - 1),
		    s + 1);
		return (-1);
	}
	if ((sec = section_find(conf, name)) != NULL) {
		poserr(pos, "duplicate section [%s] (first on line %zu)",
		    name, sec->line);
		return (-1);
	}
	if ((sec = section_add(conf, name, pos->line)) == NULL) {
		poserr(pos, "out of memory");
		return (-1);
	}
	*secp = sec;
	return (0);
}

/*
 * s points at the opening quote.  Decodes \" and \\ in place (the result
 * is never longer) and sets *valp to the unquoted value.
 */
static int
parse_quoted(char *s, char **valp, const struct pos *pos)
{
	char	*in, *out, *after;

	out = s;
	for (in = s + 1; *in != '"'; in++) {
		if (*in == '\0') {
			poserr(pos, "unterminated quote");
			return (-1);
		}
		if (*in == '\\') {
			in++;
			if (*in == '\0') {
				poserr(pos, "unterminated quote");
				return (-1);
			}
			if (*in != '"' && *in != '\\') {
				poserr(pos, "invalid escape '\\%c' in quoted "
				    "value (only \\\" and \\\\)", *in);
				return (-1);
			}
		}
		*out++ = *in;
	}
	after = skip_space(in + 1);
	if (*after != '\0' && *after != '#' && *after != ';') {
		poserr(pos, "unexpected text after quoted value");
		return (-1);
	}
	*out = '\0';
	*valp = s;
	return (0);
}
