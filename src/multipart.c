/*
 * multipart/form-data (RFC 7578, RFC 2046 section 5.1) over a body in
 * memory.  See multipart.h.  Everything is bounded by the body's length;
 * content may hold any byte, NUL included.
 */

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define HEADERS_MAX	8192	/* one part's header block */

static int	delim_follows(const struct sb_multipart *, size_t);
static const unsigned char *find_delim(const struct sb_multipart *, size_t);
static int	param_next(const char **, const char *, char *, size_t,
		    char *, size_t);
static int	copy_range(char *, size_t, const char *, const char *);
static int	parse_headers(const char *, const char *,
		    struct sb_multipart_part *);
static int	bchar(int);

/* RFC 2046 bcharsnospace, plus space (never last). */
static int
bchar(int c)
{
	return (isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL);
}

int
sb_multipart_init(struct sb_multipart *m, const char *ctype,
    const void *body, size_t len)
{
	static const char	 mf[] = "multipart/form-data";
	const char		*p, *end;
	char			 name[32], value[SB_MULTIPART_BOUNDARY_MAX + 1];
	size_t			 blen, i;
	int			 rc;

	memset(m, 0, sizeof(*m));
	if (ctype == NULL || body == NULL)
		return (-1);
	p = ctype;
	end = ctype + strlen(ctype);
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, mf, sizeof(mf) - 1) != 0)
		return (-1);
	p += sizeof(mf) - 1;
	if (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t')
		return (-1);

	blen = 0;
	while ((rc = param_next(&p, end, name, sizeof(name), value,
	    sizeof(value))) == 1) {
		if (strcasecmp(name, "boundary") != 0)
			continue;
		if (blen != 0)
			return (-1);	/* two boundaries: ambiguous */
		if ((blen = strlen(value)) == 0 || value[blen - 1] == ' ')
			return (-1);
		for (i = 0; i < blen; i++) {
			if (!bchar((unsigned char)value[i]))
				return (-1);
		}
		memcpy(m->delim, "\r\n--", 4);
		memcpy(m->delim + 4, value, blen);
		m->dlen = blen + 4;
	}
	if (rc == -1 || blen == 0)
		return (-1);
	m->buf = body;
	m->len = len;
	return (0);
}

/*
 * Whether the boundary ending at `at` is a delimiter line: followed by
 * "--" (the close delimiter) or by optional spaces and CRLF.  Anything
 * else means the text merely starts like a delimiter.
 */
static int
delim_follows(const struct sb_multipart *m, size_t at)
{
	if (m->len - at >= 2 && m->buf[at] == '-' && m->buf[at + 1] == '-')
		return (1);
	while (at < m->len && (m->buf[at] == ' ' || m->buf[at] == '\t'))
		at++;
	return (m->len - at >= 2 && m->buf[at] == '\r' &&
	    m->buf[at + 1] == '\n');
}

/* The next delimiter ("\r\n--boundary" + a proper ending) from `from`. */
static const unsigned char *
find_delim(const struct sb_multipart *m, size_t from)
{
	const unsigned char	*p;

	while (from < m->len) {
		p = memmem(m->buf + from, m->len - from, m->delim, m->dlen);
		if (p == NULL)
			return (NULL);
		if (delim_follows(m, (size_t)(p - m->buf) + m->dlen))
			return (p);
		from = (size_t)(p - m->buf) + 1;
	}
	return (NULL);
}

int
sb_multipart_next(struct sb_multipart *m, struct sb_multipart_part *part)
{
	const unsigned char	*p, *hend;
	size_t			 at, start;

	memset(part, 0, sizeof(*part));
	if (m->done)
		return (m->done == 1 ? 0 : -1);
	m->done = -1;		/* until this call proves otherwise */
	if (m->buf == NULL)
		return (-1);

	if (m->off == 0) {
		/* The first delimiter may open the body without its CRLF;
		 * anything before it is a preamble to ignore. */
		if (m->len >= m->dlen - 2 &&
		    memcmp(m->buf, m->delim + 2, m->dlen - 2) == 0 &&
		    delim_follows(m, m->dlen - 2)) {
			m->off = m->dlen - 2;
		} else {
			if ((p = find_delim(m, 0)) == NULL)
				return (-1);
			m->off = (size_t)(p - m->buf) + m->dlen;
		}
	}

	at = m->off;
	if (m->len - at >= 2 && m->buf[at] == '-' && m->buf[at + 1] == '-') {
		m->done = 1;	/* the close delimiter; an epilogue is ignored */
		return (0);
	}
	while (m->buf[at] == ' ' || m->buf[at] == '\t')
		at++;
	at += 2;		/* CRLF, checked by delim_follows() */

	/* Headers up to an empty line; a part may have none at all. */
	if (m->len - at >= 2 && m->buf[at] == '\r' && m->buf[at + 1] == '\n') {
		start = at + 2;
	} else {
		hend = memmem(m->buf + at, m->len - at < HEADERS_MAX ?
		    m->len - at : HEADERS_MAX, "\r\n\r\n", 4);
		if (hend == NULL)
			return (-1);
		if (parse_headers((const char *)m->buf + at,
		    (const char *)hend, part) == -1)
			return (-1);
		start = (size_t)(hend - m->buf) + 4;
	}

	/* The content ends where the next delimiter's CRLF begins. */
	if ((p = find_delim(m, start)) == NULL)
		return (-1);
	part->data = m->buf + start;
	part->len = (size_t)(p - m->buf) - start;
	m->off = (size_t)(p - m->buf) + m->dlen;
	m->done = 0;
	return (1);
}

/* Header lines "Name: value" between p and end (CRLF-separated). */
static int
parse_headers(const char *p, const char *end, struct sb_multipart_part *part)
{
	const char	*eol, *colon, *v;
	char		 name[32], value[256];
	int		 rc, seen;

	seen = 0;
	while (p < end) {
		if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
			eol = end;
		if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL)
			return (-1);
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;

		if ((size_t)(colon - p) == strlen("content-disposition") &&
		    strncasecmp(p, "content-disposition", colon - p) == 0) {
			if (seen++)
				return (-1);
			if ((size_t)(eol - v) < strlen("form-data") ||
			    strncasecmp(v, "form-data", strlen("form-data")) != 0)
				return (-1);
			v += strlen("form-data");
			while ((rc = param_next(&v, eol, name, sizeof(name),
			    value, sizeof(value))) == 1) {
				if (strcasecmp(name, "name") == 0) {
					if (copy_range(part->name,
					    sizeof(part->name), value,
					    value + strlen(value)) == -1)
						return (-1);
				} else if (strcasecmp(name, "filename") == 0) {
					if (copy_range(part->filename,
					    sizeof(part->filename), value,
					    value + strlen(value)) == -1)
						return (-1);
					part->has_filename = 1;
				}
			}
			if (rc == -1)
				return (-1);
		} else if ((size_t)(colon - p) == strlen("content-type") &&
		    strncasecmp(p, "content-type", colon - p) == 0) {
			if (copy_range(part->content_type,
			    sizeof(part->content_type), v, eol) == -1)
				return (-1);
		}
		p = eol + 2;
	}
	return (seen ? 0 : -1);
}

/*
 * The next `; name=value` of a header value ([*pp, end)); value is a token
 * or a quoted-string (backslash escapes).  1 with both copied, 0 at the
 * end, -1 when malformed or too long for the buffers.
 */
static int
param_next(const char **pp, const char *end, char *name, size_t nlen,
    char *value, size_t vlen)
{
	const char	*p = *pp, *s;
	size_t		 n;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end)
		return (0);
	if (*p++ != ';')
		return (-1);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	s = p;
	while (p < end && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
		p++;
	if (p == s || p == end || *p != '=' ||
	    copy_range(name, nlen, s, p) == -1)
		return (-1);
	p++;

	n = 0;
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (n + 1 >= vlen || *p == '\0')
				return (-1);
			value[n++] = *p;
		}
		if (p == end)
			return (-1);	/* unterminated */
		p++;
	} else {
		for (; p < end && *p != ';' && *p != ' ' && *p != '\t'; p++) {
			if (n + 1 >= vlen || *p == '\0' || *p == '"')
				return (-1);
			value[n++] = *p;
		}
	}
	value[n] = '\0';
	*pp = p;
	return (1);
}

/* [s, e) into out as a string, trailing blanks dropped; -1 if too long
 * or holding a NUL or control character. */
static int
copy_range(char *out, size_t outlen, const char *s, const char *e)
{
	size_t	n, i;

	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - s);
	if (n >= outlen)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return (-1);
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return (0);
}
