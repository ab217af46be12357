/*
 * The host route table: (method, path pattern) -> opaque data.
 *
 * Pure C, no Kore: the request path calls sb_router_match() for every
 * request, the OpenAPI generator and /api/v1/plugins walk the table with
 * sb_router_foreach().  Routes are added in the parent during plugin
 * setup and only read afterwards, so the table needs no locking.
 */

#ifndef SB_ROUTER_H
#define SB_ROUTER_H

#include <stddef.h>

#define SB_ROUTER_MAX_PARAMS	8

enum sb_match {
	SB_MATCH_OK = 0,
	SB_MATCH_NOT_FOUND,	/* no pattern fits the path: 404 */
	SB_MATCH_METHOD		/* a pattern fits, not the method: 405 + allow */
};

struct sb_router_param {
	const char		*name;	/* borrowed from the router */
	char			*value;	/* percent-decoded, owned by the match */
};

struct sb_router_match {
	void			*data;		/* what sb_router_add stored */
	const char		*pattern;	/* borrowed from the router */
	size_t			 nparams;
	struct sb_router_param	 params[SB_ROUTER_MAX_PARAMS];
	/* On SB_MATCH_OK and SB_MATCH_METHOD: the methods this path
	 * answers, "GET, HEAD, POST, OPTIONS" style; empty otherwise. */
	char			 allow[128];
};

struct sb_router;

struct sb_router	*sb_router_new(void);
void			 sb_router_free(struct sb_router *);

/*
 * method: GET, POST, PUT, PATCH or DELETE (HEAD follows GET, OPTIONS is
 * the host's).  pattern is copied.  Returns 0, or -1 with a message in
 * err (err may be NULL).
 */
int			 sb_router_add(struct sb_router *, const char *method,
			    const char *pattern, void *data, char *err,
			    size_t errlen);

/*
 * path is the raw (still percent-encoded) request path without the
 * query string.  m is always initialised; on SB_MATCH_OK the caller
 * releases it with sb_router_match_clear().  A failed allocation of the
 * decoded parameters is reported as SB_MATCH_NOT_FOUND.
 */
enum sb_match		 sb_router_match(const struct sb_router *,
			    const char *method, const char *path,
			    struct sb_router_match *m);
/* Decoded value of parameter `name`, or NULL.  Borrowed from m. */
const char		*sb_router_param(const struct sb_router_match *,
			    const char *name);
void			 sb_router_match_clear(struct sb_router_match *);

/* Every route in registration order. */
void			 sb_router_foreach(const struct sb_router *,
			    void (*)(const char *method, const char *pattern,
			    void *data, void *arg), void *arg);

#endif /* SB_ROUTER_H */
