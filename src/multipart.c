/*
 * multipart/form-data (RFC 7578, RFC 2046 section 5.1) over a body in
 * memory or read through a window.  See multipart.h.  Everything is
 * bounded by the body's length; content may hold any byte, NUL included.
 *
 * Both sources go through peek(): a memory body shows all of itself, a
 * read source what its window holds (refilled from the wanted offset
 * when too little of it is there).  Every step asks for no more than it
 * needs and looks at no more than it asked for, so both sources give
 * the same parts (the fuzz harness checks that with a tiny window).
 */

#include <string.h>
#include <strings.h>

#include "multipart.h"

static int	boundary_parse(const char *, char *, size_t *);
static const unsigned char *peek(struct sb_multipart *, uint64_t, size_t,
		    size_t *);
static int	delim_follows(struct sb_multipart *, uint64_t);
static int	find_delim(struct sb_multipart *, uint64_t, uint64_t *);
static int	param_next(const char **, const char *, char *, size_t,
		    char *, size_t);
static int	copy_range(char *, size_t, const char *, const char *);
static int	parse_headers(const char *, const char *,
		    struct sb_multipart_part *);
static int	bchar(int);

/* RFC 2046 bcharsnospace, plus space (never last).  Not isalnum(): the
 * locale must not widen the set. */
static int
bchar(int c)
{
	return ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') ||
	    (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL));
}

/*
 * The boundary of a multipart/form-data Content-Type as a delimiter,
 * "\r\n--" boundary, into delim (SB_MULTIPART_BOUNDARY_MAX + 5 bytes).
 */
static int
boundary_parse(const char *ctype, char *delim, size_t *dlen)
{
	static const char	 mf[] = "multipart/form-data";
	const char		*p, *end;
	char			 name[32], value[SB_MULTIPART_BOUNDARY_MAX + 1];
	size_t			 blen, i;
	int			 rc;

	if (ctype == NULL)
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
		memcpy(delim, "\r\n--", 4);
		memcpy(delim + 4, value, blen);
		*dlen = blen + 4;
	}
	if (rc == -1 || blen == 0)
		return (-1);
	return (0);
}

int
sb_multipart_check(const char *ctype)
{
	char	delim[SB_MULTIPART_BOUNDARY_MAX + 5];
	size_t	dlen;

	return (boundary_parse(ctype, delim, &dlen));
}

int
sb_multipart_init(struct sb_multipart *m, const char *ctype,
    const void *body, size_t len)
{
	memset(m, 0, sizeof(*m));
	if (body == NULL || boundary_parse(ctype, m->delim, &m->dlen) == -1)
		return (-1);
	m->buf = body;
	m->len = len;
	m->hmax = SB_MULTIPART_HEADERS_MAX;
	return (0);
}

int
sb_multipart_init_read(struct sb_multipart *m, const char *ctype,
    uint64_t len, sb_multipart_read_cb cb, void *arg, unsigned char *win,
    size_t wcap, size_t hmax)
{
	memset(m, 0, sizeof(*m));
	if (hmax == 0)
		hmax = SB_MULTIPART_HEADERS_MAX;
	if (cb == NULL || win == NULL || hmax < 4 ||
	    wcap < SB_MULTIPART_WINDOW_MIN(hmax) ||
	    boundary_parse(ctype, m->delim, &m->dlen) == -1)
		return (-1);
	m->read = cb;
	m->arg = arg;
	m->win = win;
	m->wcap = wcap;
	m->len = len;
	m->hmax = hmax;
	return (0);
}

/*
 * The body from off: a pointer to what the source shows there, with
 * *avail of it readable.  At least min(want, bytes left) are shown (want
 * is never more than the window).  NULL when a read failed.
 */
static const unsigned char *
peek(struct sb_multipart *m, uint64_t off, size_t want, size_t *avail)
{
	uint64_t	rest;
	size_t		n;

	rest = off < m->len ? m->len - off : 0;
	if (m->buf != NULL) {
		*avail = (size_t)rest;
		return (m->buf + (off < m->len ? off : m->len));
	}
	if (want > rest)
		want = (size_t)rest;
	if (off >= m->woff && off - m->woff <= m->wlen &&
	    m->wlen - (size_t)(off - m->woff) >= want) {
		*avail = m->wlen - (size_t)(off - m->woff);
		return (m->win + (off - m->woff));
	}
	n = rest < m->wcap ? (size_t)rest : m->wcap;
	if (n > 0 && m->read(m->arg, off, m->win, n) != (ssize_t)n) {
		m->io_error = 1;
		m->wlen = 0;
		return (NULL);
	}
	m->woff = off;
	m->wlen = n;
	*avail = n;
	return (m->win);
}

/*
 * Whether the boundary ending at `at` is a delimiter line: followed by
 * "--" (the close delimiter) or by at most SB_MULTIPART_PAD_MAX spaces
 * and CRLF.  Anything else means the text merely starts like a
 * delimiter.  1, 0, or -1 when the body could not be read.
 */
static int
delim_follows(struct sb_multipart *m, uint64_t at)
{
	const unsigned char	*p;
	size_t			 avail, i;

	if ((p = peek(m, at, SB_MULTIPART_PAD_MAX + 2, &avail)) == NULL)
		return (-1);
	if (avail > SB_MULTIPART_PAD_MAX + 2)
		avail = SB_MULTIPART_PAD_MAX + 2;
	if (avail >= 2 && p[0] == '-' && p[1] == '-')
		return (1);
	for (i = 0; i < avail && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	return (avail - i >= 2 && p[i] == '\r' && p[i + 1] == '\n');
}

/*
 * The next delimiter ("\r\n--boundary" + a proper ending) from `from`:
 * 1 with its offset in *pos, 0 when there is none, -1 on a read error.
 * A window that shows no delimiter slides on, keeping its last dlen - 1
 * bytes, so a delimiter across two windows is found.
 */
static int
find_delim(struct sb_multipart *m, uint64_t from, uint64_t *pos)
{
	const unsigned char	*p, *q;
	size_t			 avail;
	int			 rc;

	while (from < m->len) {
		if ((p = peek(m, from, m->wcap, &avail)) == NULL)
			return (-1);
		if ((q = memmem(p, avail, m->delim, m->dlen)) == NULL) {
			if (avail >= m->len - from)
				return (0);
			from += avail - (m->dlen - 1);
			continue;
		}
		from += (uint64_t)(q - p);
		if ((rc = delim_follows(m, from + m->dlen)) != 0) {
			if (rc == 1)
				*pos = from;
			return (rc);
		}
		from++;
	}
	return (0);
}

int
sb_multipart_next(struct sb_multipart *m, struct sb_multipart_part *part)
{
	const unsigned char	*p, *hend;
	uint64_t		 at, start, pos;
	size_t			 avail, i, n;
	int			 rc;

	memset(part, 0, sizeof(*part));
	if (m->done)
		return (m->done == 1 ? 0 : -1);
	m->done = -1;		/* until this call proves otherwise */
	if (m->buf == NULL && m->read == NULL)
		return (-1);

	if (m->off == 0) {
		/* The first delimiter may open the body without its CRLF;
		 * anything before it is a preamble to ignore. */
		if ((p = peek(m, 0, m->dlen - 2, &avail)) == NULL)
			return (-1);
		if (avail >= m->dlen - 2 &&
		    memcmp(p, m->delim + 2, m->dlen - 2) == 0 &&
		    (rc = delim_follows(m, m->dlen - 2)) != 0) {
			if (rc == -1)
				return (-1);
			m->off = m->dlen - 2;
		} else {
			if (find_delim(m, 0, &pos) != 1)
				return (-1);
			m->off = pos + m->dlen;
		}
	}

	at = m->off;
	if ((p = peek(m, at, SB_MULTIPART_PAD_MAX + 2, &avail)) == NULL)
		return (-1);
	if (avail >= 2 && p[0] == '-' && p[1] == '-') {
		m->done = 1;	/* the close delimiter; an epilogue is ignored */
		return (0);
	}
	/* Padding and CRLF, checked by delim_follows(). */
	for (i = 0; i < avail && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	at += i + 2;

	/* Headers up to an empty line; a part may have none at all. */
	if ((p = peek(m, at, m->hmax, &avail)) == NULL)
		return (-1);
	if (avail >= 2 && p[0] == '\r' && p[1] == '\n') {
		start = at + 2;
	} else {
		n = avail < m->hmax ? avail : m->hmax;
		if ((hend = memmem(p, n, "\r\n\r\n", 4)) == NULL)
			return (-1);
		if (parse_headers((const char *)p, (const char *)hend,
		    part) == -1)
			return (-1);
		start = at + (uint64_t)(hend - p) + 4;
	}

	/* The content ends where the next delimiter's CRLF begins. */
	if (find_delim(m, start, &pos) != 1)
		return (-1);
	part->data = m->buf != NULL ? m->buf + start : NULL;
	part->off = start;
	part->len = pos - start;
	m->off = pos + m->dlen;
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
