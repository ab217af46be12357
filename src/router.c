/*
 * The host route table.
 *
 * Patterns are stored in a trie of path segments: each node has its
 * literal children (sorted, found by binary search) and at most one
 * parameter child, plus the route registered there for each method.
 * Routes whose patterns differ only in parameter names share a node, which
 * is what makes "/a/{id}" and "/a/{x}" with the same method a clash.
 *
 * Matching walks the trie depth first, literal child before parameter
 * child, so a literal segment wins over a parameter at the same position
 * but a dead end below the literal falls back to the parameter.  The walk
 * visits every node that fits the path (each at most once: the trie is a
 * tree) to collect the Allow list, and it allocates nothing; only the
 * decoded parameter values of a successful match are allocated.
 */

#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "text.h"

enum method {
	M_GET = 0,
	M_POST,
	M_PUT,
	M_PATCH,
	M_DELETE,
	M_COUNT
};

struct route {
	TAILQ_ENTRY(route)	 list;
	enum method		 method;
	char			*pattern;
	void			*data;
	size_t			 nparams;
	char			*names[SB_ROUTER_MAX_PARAMS];
};

struct node;

struct edge {
	char			*seg;
	size_t			 len;
	struct node		*child;
};

struct node {
	struct edge		*lit;		/* sorted by seg_cmp() */
	size_t			 nlit;
	size_t			 litcap;
	struct node		*param;
	struct route		*routes[M_COUNT];
};

struct sb_router {
	struct node		 root;
	TAILQ_HEAD(, route)	 routes;
};

/* One segment of a pattern being added. */
struct pseg {
	const char		*s;
	size_t			 len;
	int			 param;
};

/* State of one sb_router_match() walk. */
struct walk {
	int			 method;	/* enum method or -1 */
	unsigned int		 allow;		/* bit per enum method */
	const struct route	*found;
	const char		*val[SB_ROUTER_MAX_PARAMS];
	size_t			 vlen[SB_ROUTER_MAX_PARAMS];
	const char		*fval[SB_ROUTER_MAX_PARAMS];
	size_t			 fvlen[SB_ROUTER_MAX_PARAMS];
};

static const char *const method_names[M_COUNT] = {
	"GET", "POST", "PUT", "PATCH", "DELETE"
};

static int		 method_index(const char *);
static int		 seg_cmp(const char *, size_t, const char *, size_t);
static struct edge	*edge_find(const struct node *, const char *, size_t);
static struct node	*edge_add(struct node *, const char *, size_t);
static void		 node_free(struct node *);
static int		 literal_char(int);
static int		 param_name_ok(const char *, size_t);
static int		 pattern_parse(const char *, struct pseg **, size_t *,
			    size_t *, char *, size_t);
static void		 route_free(struct route *);
static int		 value_ok(const char *, size_t);
static char		*value_decode(const char *, size_t);
static void		 walk(const struct node *, const char *, size_t,
			    struct walk *);
static void		 allow_format(unsigned int, char *, size_t);

struct sb_router *
sb_router_new(void)
{
	struct sb_router	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	TAILQ_INIT(&r->routes);
	return (r);
}

void
sb_router_free(struct sb_router *r)
{
	struct route	*rt;

	if (r == NULL)
		return;
	while ((rt = TAILQ_FIRST(&r->routes)) != NULL) {
		TAILQ_REMOVE(&r->routes, rt, list);
		route_free(rt);
	}
	node_free(&r->root);
	free(r);
}

int
sb_router_add(struct sb_router *r, const char *method, const char *pattern,
    void *data, char *err, size_t errlen)
{
	struct pseg	*segs;
	struct route	*rt;
	struct node	*n;
	struct edge	*e;
	size_t		 nsegs, nparams, i, p;
	int		 m, ret;

	ret = -1;
	segs = NULL;
	rt = NULL;

	if (r == NULL || method == NULL || pattern == NULL) {
		sb_seterr(err, errlen, "route without method or pattern");
		goto out;
	}
	if ((m = method_index(method)) == -1) {
		sb_seterr(err, errlen, "route %s %s: unknown method \"%s\" "
		    "(allowed: GET, POST, PUT, PATCH, DELETE)",
		    method, pattern, method);
		goto out;
	}
	if (pattern_parse(pattern, &segs, &nsegs, &nparams, err, errlen) == -1)
		goto out;

	/* Find a clash before touching the trie. */
	n = &r->root;
	for (i = 0; i < nsegs && n != NULL; i++) {
		if (segs[i].param)
			n = n->param;
		else if ((e = edge_find(n, segs[i].s, segs[i].len)) != NULL)
			n = e->child;
		else
			n = NULL;
	}
	if (n != NULL && n->routes[m] != NULL) {
		sb_seterr(err, errlen, "route %s %s clashes with %s %s",
		    method_names[m], pattern, method_names[m],
		    n->routes[m]->pattern);
		goto out;
	}

	if ((rt = calloc(1, sizeof(*rt))) == NULL ||
	    (rt->pattern = strdup(pattern)) == NULL)
		goto nomem;
	rt->method = m;
	rt->data = data;
	for (i = 0, p = 0; i < nsegs; i++) {
		if (!segs[i].param)
			continue;
		/* The segment is "{name}": skip the braces. */
		if ((rt->names[p] = strndup(segs[i].s + 1,
		    segs[i].len - 2)) == NULL)
			goto nomem;
		rt->nparams = ++p;
	}

	/* Nodes created before a failed allocation stay, empty and harmless,
	 * until the router is freed. */
	n = &r->root;
	for (i = 0; i < nsegs; i++) {
		if (segs[i].param) {
			if (n->param == NULL &&
			    (n->param = calloc(1, sizeof(*n->param))) == NULL)
				goto nomem;
			n = n->param;
		} else if ((e = edge_find(n, segs[i].s, segs[i].len)) != NULL) {
			n = e->child;
		} else if ((n = edge_add(n, segs[i].s, segs[i].len)) == NULL) {
			goto nomem;
		}
	}
	n->routes[m] = rt;
	TAILQ_INSERT_TAIL(&r->routes, rt, list);
	rt = NULL;
	ret = 0;
	goto out;

nomem:
	sb_seterr(err, errlen, "route %s %s: out of memory", method, pattern);
out:
	if (rt != NULL)
		route_free(rt);
	free(segs);
	return (ret);
}

enum sb_match
sb_router_match(const struct sb_router *r, const char *method,
    const char *path, struct sb_router_match *m)
{
	struct walk	w;
	size_t		i;

	memset(m, 0, sizeof(*m));
	if (r == NULL || method == NULL || path == NULL || path[0] != '/')
		return (SB_MATCH_NOT_FOUND);

	memset(&w, 0, sizeof(w));
	/* HEAD is answered by the GET handler; the host drops the body. */
	if (strcmp(method, "HEAD") == 0)
		w.method = M_GET;
	else
		w.method = method_index(method);

	/* "/" is the only path with no segments; everywhere else a
	 * trailing '/' is an empty last segment, which never matches. */
	walk(&r->root, path[1] == '\0' ? path + 1 : path, 0, &w);

	if (w.allow == 0)
		return (SB_MATCH_NOT_FOUND);
	allow_format(w.allow, m->allow, sizeof(m->allow));
	if (w.found == NULL)
		return (SB_MATCH_METHOD);

	for (i = 0; i < w.found->nparams; i++) {
		m->params[i].name = w.found->names[i];
		if ((m->params[i].value = value_decode(w.fval[i],
		    w.fvlen[i])) == NULL) {
			sb_router_match_clear(m);
			memset(m, 0, sizeof(*m));
			return (SB_MATCH_NOT_FOUND);
		}
		m->nparams = i + 1;
	}
	m->data = w.found->data;
	m->pattern = w.found->pattern;
	return (SB_MATCH_OK);
}

const char *
sb_router_param(const struct sb_router_match *m, const char *name)
{
	size_t	i;

	for (i = 0; i < m->nparams; i++) {
		if (strcmp(m->params[i].name, name) == 0)
			return (m->params[i].value);
	}
	return (NULL);
}

void
sb_router_match_clear(struct sb_router_match *m)
{
	size_t	i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nparams; i++) {
		free(m->params[i].value);
		m->params[i].value = NULL;
		m->params[i].name = NULL;
	}
	m->nparams = 0;
}

void
sb_router_foreach(const struct sb_router *r,
    void (*cb)(const char *, const char *, void *, void *), void *arg)
{
	const struct route	*rt;

	if (r == NULL)
		return;
	TAILQ_FOREACH(rt, &r->routes, list)
		cb(method_names[rt->method], rt->pattern, rt->data, arg);
}

static int
method_index(const char *method)
{
	int	i;

	for (i = 0; i < M_COUNT; i++) {
		if (strcmp(method, method_names[i]) == 0)
			return (i);
	}
	return (-1);
}

/* Any total order works for the binary search; this one is cheap. */
static int
seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int	c;

	if ((c = memcmp(a, b, alen < blen ? alen : blen)) != 0)
		return (c);
	if (alen == blen)
		return (0);
	return (alen < blen ? -1 : 1);
}

static struct edge *
edge_find(const struct node *n, const char *s, size_t len)
{
	size_t	lo, hi, mid;
	int	c;

	lo = 0;
	hi = n->nlit;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = seg_cmp(s, len, n->lit[mid].seg, n->lit[mid].len);
		if (c == 0)
			return (&n->lit[mid]);
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return (NULL);
}

/* Adds a literal child (known to be absent) and returns it. */
static struct node *
edge_add(struct node *n, const char *s, size_t len)
{
	struct edge	*lit;
	struct node	*child;
	char		*seg;
	size_t		 i, cap;

	if (n->nlit == n->litcap) {
		cap = n->litcap == 0 ? 4 : n->litcap * 2;
		if ((lit = reallocarray(n->lit, cap, sizeof(*lit))) == NULL)
			return (NULL);
		n->lit = lit;
		n->litcap = cap;
	}
	if ((seg = strndup(s, len)) == NULL)
		return (NULL);
	if ((child = calloc(1, sizeof(*child))) == NULL) {
		free(seg);
		return (NULL);
	}
	for (i = 0; i < n->nlit; i++) {
		if (seg_cmp(s, len, n->lit[i].seg, n->lit[i].len) < 0)
			break;
	}
	memmove(&n->lit[i + 1], &n->lit[i], (n->nlit - i) * sizeof(*n->lit));
	n->lit[i].seg = seg;
	n->lit[i].len = len;
	n->lit[i].child = child;
	n->nlit++;
	return (child);
}

/* Frees what n owns; n itself belongs to its parent (or the router). */
static void
node_free(struct node *n)
{
	size_t	i;

	for (i = 0; i < n->nlit; i++) {
		node_free(n->lit[i].child);
		free(n->lit[i].child);
		free(n->lit[i].seg);
	}
	free(n->lit);
	if (n->param != NULL) {
		node_free(n->param);
		free(n->param);
	}
}

/*
 * RFC 3986 pchar without percent-encoding: literals are compared with the
 * raw request path, so a '%' in a pattern could never match reliably.
 */
static int
literal_char(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return (1);
	return (c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL);
}

static int
param_name_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return (0);
	for (i = 1; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return (0);
	}
	return (1);
}

/*
 * Splits and checks a pattern.  On success *segsp (caller frees) holds
 * the segments; param segments keep their braces.
 */
static int
pattern_parse(const char *pattern, struct pseg **segsp, size_t *nsegsp,
    size_t *nparamsp, char *err, size_t errlen)
{
	struct pseg	*segs;
	const char	*p, *s, *end;
	size_t		 n, nsegs, nparams, len, i, j;

	*segsp = NULL;
	*nsegsp = 0;
	*nparamsp = 0;

	if (pattern[0] != '/') {
		sb_seterr(err, errlen, "route pattern \"%s\": must start with '/'",
		    pattern);
		return (-1);
	}
	if (strcmp(pattern, "/") == 0)
		return (0);

	for (n = 0, p = pattern; *p != '\0'; p++) {
		if (*p == '/')
			n++;
	}
	if ((segs = calloc(n, sizeof(*segs))) == NULL) {
		sb_seterr(err, errlen, "route pattern \"%s\": out of memory",
		    pattern);
		return (-1);
	}

	nsegs = 0;
	nparams = 0;
	for (p = pattern; *p == '/'; p = end) {
		s = p + 1;
		end = strchrnul(s, '/');
		len = end - s;
		if (len == 0) {
			sb_seterr(err, errlen, "route pattern \"%s\": %s", pattern,
			    *end == '\0' ? "trailing slash" : "empty segment");
			goto fail;
		}
		segs[nsegs].s = s;
		segs[nsegs].len = len;
		if (memchr(s, '{', len) != NULL ||
		    memchr(s, '}', len) != NULL) {
			if (s[0] != '{' || s[len - 1] != '}' ||
			    memchr(s + 1, '{', len - 1) != NULL ||
			    memchr(s, '}', len - 1) != NULL) {
				sb_seterr(err, errlen, "route pattern \"%s\": "
				    "malformed parameter segment \"%.*s\"",
				    pattern, (int)len, s);
				goto fail;
			}
			if (!param_name_ok(s + 1, len - 2)) {
				sb_seterr(err, errlen, "route pattern \"%s\": "
				    "parameter name \"%.*s\" must match "
				    "[a-z_][a-z0-9_]*", pattern,
				    (int)(len - 2), s + 1);
				goto fail;
			}
			for (i = 0; i < nsegs; i++) {
				if (segs[i].param && segs[i].len == len &&
				    memcmp(segs[i].s, s, len) == 0) {
					sb_seterr(err, errlen, "route pattern "
					    "\"%s\": duplicate parameter %.*s",
					    pattern, (int)len, s);
					goto fail;
				}
			}
			if (++nparams > SB_ROUTER_MAX_PARAMS) {
				sb_seterr(err, errlen, "route pattern \"%s\": more "
				    "than %d parameters", pattern,
				    SB_ROUTER_MAX_PARAMS);
				goto fail;
			}
			segs[nsegs].param = 1;
		} else {
			if ((len == 1 && s[0] == '.') ||
			    (len == 2 && s[0] == '.' && s[1] == '.')) {
				sb_seterr(err, errlen, "route pattern \"%s\": "
				    "dot segment", pattern);
				goto fail;
			}
			for (j = 0; j < len; j++) {
				if (!literal_char((unsigned char)s[j])) {
					sb_seterr(err, errlen, "route pattern "
					    "\"%s\": invalid character 0x%02x "
					    "in segment \"%.*s\"", pattern,
					    (unsigned char)s[j], (int)len, s);
					goto fail;
				}
			}
		}
		nsegs++;
	}

	*segsp = segs;
	*nsegsp = nsegs;
	*nparamsp = nparams;
	return (0);

fail:
	free(segs);
	return (-1);
}

static void
route_free(struct route *rt)
{
	size_t	i;

	for (i = 0; i < rt->nparams; i++)
		free(rt->names[i]);
	free(rt->pattern);
	free(rt);
}

/*
 * A parameter value must decode cleanly and must not smuggle a NUL (it
 * would truncate the C string handlers see) or a '/' (it would make one
 * segment look like two to anything that rebuilds a path from it).
 */
static int
value_ok(const char *s, size_t len)
{
	size_t	i;
	int	hi, lo, c;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (len - i < 3 || (hi = sb_hexval((unsigned char)s[i + 1])) == -1 ||
		    (lo = sb_hexval((unsigned char)s[i + 2])) == -1)
			return (0);
		c = hi << 4 | lo;
		if (c == '\0' || c == '/')
			return (0);
		i += 2;
	}
	return (1);
}

/* Only called on values value_ok() accepted. */
static char *
value_decode(const char *s, size_t len)
{
	char	*v;
	size_t	 i, o;

	if ((v = malloc(len + 1)) == NULL)
		return (NULL);
	for (i = 0, o = 0; i < len; i++) {
		if (s[i] == '%') {
			v[o++] = (char)(sb_hexval((unsigned char)s[i + 1]) << 4 |
			    sb_hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			v[o++] = s[i];
		}
	}
	v[o] = '\0';
	return (v);
}

/*
 * p is either the end of the path or the '/' before the next segment;
 * np parameter values have been pushed on w->val so far.
 */
static void
walk(const struct node *n, const char *p, size_t np, struct walk *w)
{
	const struct edge	*e;
	const char		*seg, *end;
	size_t			 len;
	int			 i;

	if (*p == '\0') {
		for (i = 0; i < M_COUNT; i++) {
			if (n->routes[i] != NULL)
				w->allow |= 1U << i;
		}
		if (w->found == NULL && w->method != -1 &&
		    n->routes[w->method] != NULL) {
			w->found = n->routes[w->method];
			memcpy(w->fval, w->val, sizeof(w->fval));
			memcpy(w->fvlen, w->vlen, sizeof(w->fvlen));
		}
		return;
	}

	seg = p + 1;
	end = strchrnul(seg, '/');
	len = end - seg;
	if (len == 0)
		return;

	if (n->nlit > 0 && (e = edge_find(n, seg, len)) != NULL)
		walk(e->child, end, np, w);
	if (n->param != NULL && np < SB_ROUTER_MAX_PARAMS &&
	    value_ok(seg, len)) {
		w->val[np] = seg;
		w->vlen[np] = len;
		walk(n->param, end, np + 1, w);
	}
}

static void
allow_format(unsigned int allow, char *buf, size_t len)
{
	static const struct {
		unsigned int	 bit;
		const char	*name;
	} order[] = {
		{ 1U << M_GET,		"GET" },
		{ 1U << M_GET,		"HEAD" },
		{ 1U << M_POST,		"POST" },
		{ 1U << M_PUT,		"PUT" },
		{ 1U << M_PATCH,	"PATCH" },
		{ 1U << M_DELETE,	"DELETE" },
	};
	size_t	i, off;

	/* The longest list is 44 bytes, well inside allow[128]. */
	buf[0] = '\0';
	off = 0;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if ((allow & order[i].bit) == 0)
			continue;
		off += snprintf(buf + off, len - off, "%s, ", order[i].name);
	}
	(void)snprintf(buf + off, len - off, "OPTIONS");
}
