/*
 * The request head, checked before Kore parses it (RFC 9112).  Kore is
 * lenient where leniency is dangerous: it splits lines at a bare CR,
 * silently drops header lines past its table, believes the first of two
 * different Content-Length headers and never looks at Transfer-Encoding,
 * which is what request smuggling through a proxy is made of.  Here every
 * such head is refused outright, and Kore's connection then closes:
 *
 *   400  a malformed request line or header line, a bare CR or other
 *        control character, an obsolete line folding, a second Host,
 *        conflicting or malformed Content-Length, Transfer-Encoding
 *        together with Content-Length, on HTTP/1.0, or not "chunked"
 *   413  a Content-Length of more digits than any body limit
 *   414  a request target over SB_EDGE_TARGET_MAX
 *   431  more than SB_EDGE_HEADERS_MAX header lines
 *
 * Heads too large for the buffer never get here: Kore answers 414 or 431
 * itself (patches/kore/0006).
 */

#include <string.h>
#include <strings.h>

#include "edge.h"

struct line {
	const char	*p;
	size_t		 len;
};

static int	next_line(const char **, const char *, struct line *);
static int	request_line(const struct line *, int *http10);
static int	is_tchar(unsigned char);
static int	content_length(const char *, size_t, long long *);
static int	value_is(const char *, size_t, const char *);

/*
 * The next line of the head into *l, without its CR LF (or bare LF).
 * 0 at the end, -1 for a CR anywhere but before the LF, else 1.
 */
static int
next_line(const char **pos, const char *end, struct line *l)
{
	const char	*p = *pos, *nl;

	if (p >= end)
		return (0);
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
		nl = end;
	l->p = p;
	l->len = (size_t)(nl - p);
	if (l->len > 0 && p[l->len - 1] == '\r')
		l->len--;
	if (memchr(l->p, '\r', l->len) != NULL)
		return (-1);
	*pos = nl < end ? nl + 1 : end;
	return (1);
}

/* tchar of RFC 9110, 5.6.2: what a method or a field name is made of. */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return (1);
	return (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* method SP request-target SP HTTP-version; 0, or the status. */
static int
request_line(const struct line *l, int *http10)
{
	const char	*p = l->p, *end = l->p + l->len, *t;
	size_t		 n;

	for (n = 0; p < end && is_tchar((unsigned char)*p); p++)
		n++;
	if (n == 0 || p == end || *p != ' ')
		return (400);
	t = ++p;
	while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
		p++;
	if ((size_t)(p - t) > SB_EDGE_TARGET_MAX)
		return (414);
	if (p == t || p == end || *p != ' ')
		return (400);
	p++;
	if (end - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' ||
	    p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9')
		return (400);
	*http10 = p[5] == '1' && p[7] == '0';
	return (0);
}

/*
 * A Content-Length value: 1*DIGIT, or a list of identical ones (RFC 9110,
 * 8.6, "Content-Length: 42, 42").  *v is -1 when nothing came before; a
 * value differing from it is a conflict.  0, or the status.
 */
static int
content_length(const char *p, size_t len, long long *v)
{
	const char	*end = p + len;
	long long	 n;
	size_t		 digits;

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		n = 0;
		for (digits = 0; p < end && *p >= '0' && *p <= '9'; p++) {
			if (++digits > 18)
				return (413);
			n = n * 10 + (*p - '0');
		}
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (digits == 0 || (p < end && *p != ','))
			return (400);
		if (*v != -1 && *v != n)
			return (400);
		*v = n;
		if (p == end)
			return (0);
		p++;
	}
}

/* A field value equal to a token, ignoring case. */
static int
value_is(const char *p, size_t len, const char *token)
{
	return (len == strlen(token) && strncasecmp(p, token, len) == 0);
}

int
sb_edge_head(const char *head, size_t len, long long *clen, int *flags)
{
	const char	*pos = head, *end = head + len, *v;
	struct line	 l;
	size_t		 name, vlen, i, headers;
	int		 r, http10, hosts, te, status;

	*clen = -1;
	*flags = 0;
	http10 = hosts = te = 0;
	headers = 0;

	/* Empty lines before the request line are allowed (RFC 9112, 2.2). */
	while ((r = next_line(&pos, end, &l)) == 1 && l.len == 0)
		;
	if (r != 1)
		return (400);
	if ((status = request_line(&l, &http10)) != 0)
		return (status);

	while ((r = next_line(&pos, end, &l)) == 1) {
		if (l.len == 0)
			return (400);	/* the head ended before its end */
		if (++headers > SB_EDGE_HEADERS_MAX)
			return (431);
		if (l.p[0] == ' ' || l.p[0] == '\t')
			return (400);	/* obsolete line folding */
		for (name = 0; name < l.len &&
		    is_tchar((unsigned char)l.p[name]); name++)
			;
		if (name == 0 || name == l.len || l.p[name] != ':')
			return (400);
		for (i = name + 1; i < l.len; i++) {
			if (((unsigned char)l.p[i] < 0x20 && l.p[i] != '\t') ||
			    (unsigned char)l.p[i] == 0x7f)
				return (400);
		}
		v = l.p + name + 1;
		vlen = l.len - name - 1;
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;

		if (name == 4 && strncasecmp(l.p, "host", 4) == 0) {
			if (++hosts > 1)
				return (400);
		} else if (name == 14 &&
		    strncasecmp(l.p, "content-length", 14) == 0) {
			if ((status = content_length(v, vlen, clen)) != 0)
				return (status);
		} else if (name == 17 &&
		    strncasecmp(l.p, "transfer-encoding", 17) == 0) {
			if (te++ > 0 || !value_is(v, vlen, "chunked"))
				return (400);
			*flags |= SB_EDGE_CHUNKED;
		} else if (name == 6 && strncasecmp(l.p, "expect", 6) == 0) {
			if (value_is(v, vlen, "100-continue"))
				*flags |= SB_EDGE_EXPECT_CONTINUE;
		}
	}
	if (r == -1)
		return (400);
	if (te && (*clen != -1 || http10))
		return (400);
	return (0);
}
