/*
 * libFuzzer harness for the route table (src/router.c).  The input is
 * "METHOD\nPATH[\nPATTERN]": PATH is matched against a fixed table, and
 * PATTERN, when present, is offered to sb_router_add() on a scratch table
 * and then matched itself.  Every result must hold the router's promises.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Iinclude -Isrc -o build/fuzz/fuzz_router tests/fuzz/fuzz_router.c src/router.c
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

static const struct {
	const char	*method;
	const char	*pattern;
} table[] = {
	{ "GET",	"/" },
	{ "GET",	"/healthz" },
	{ "GET",	"/api/v1/plugins" },
	{ "GET",	"/api/v1/jobs" },
	{ "POST",	"/api/v1/jobs/{id}/retry" },
	{ "GET",	"/api/v1/q/mine" },
	{ "GET",	"/api/v1/q/{id}" },
	{ "PATCH",	"/api/v1/q/{id}" },
	{ "DELETE",	"/api/v1/q/{id}" },
	{ "GET",	"/api/v1/q/{id}/messages" },
	{ "POST",	"/api/v1/q/{id}/messages" },
	{ "GET",	"/api/v1/q/mine/{x}/z" },
	{ "PUT",	"/api/v1/{a}/{b}/{c}/{d}/{e}/{f}" },
	{ "GET",	"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}" },
	{ "GET",	"/.well-known/x" },
};

#define NROUTES	(sizeof(table) / sizeof(table[0]))

static struct sb_router	*router;
static int		 tags[NROUTES];

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	check(const struct sb_router *, const char *, const char *);

static void
check(const struct sb_router *r, const char *method, const char *path)
{
	struct sb_router_match	m;
	enum sb_match		res;
	size_t			i;

	res = sb_router_match(r, method, path, &m);
	switch (res) {
	case SB_MATCH_OK:
		if (m.data == NULL || m.pattern == NULL ||
		    strstr(m.allow, "OPTIONS") == NULL)
			abort();
		for (i = 0; i < m.nparams; i++) {
			if (m.params[i].name == NULL ||
			    m.params[i].value == NULL ||
			    m.params[i].value[0] == '\0' ||
			    strchr(m.params[i].value, '/') != NULL ||
			    sb_router_param(&m, m.params[i].name) == NULL)
				abort();
		}
		sb_router_match_clear(&m);
		break;
	case SB_MATCH_METHOD:
		if (m.data != NULL || m.nparams != 0 ||
		    strstr(m.allow, "OPTIONS") == NULL)
			abort();
		break;
	case SB_MATCH_NOT_FOUND:
		if (m.data != NULL || m.nparams != 0 || m.allow[0] != '\0')
			abort();
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_router	*scratch;
	char			*buf, *method, *path, *pattern, *nl;
	char			 err[256];
	size_t			 i;

	if (router == NULL) {
		if ((router = sb_router_new()) == NULL)
			abort();
		for (i = 0; i < NROUTES; i++) {
			if (sb_router_add(router, table[i].method,
			    table[i].pattern, &tags[i], err, sizeof(err)) != 0)
				abort();
		}
	}

	if ((buf = malloc(size + 1)) == NULL)
		return (0);
	memcpy(buf, data, size);
	buf[size] = '\0';

	method = buf;
	path = buf + size;	/* "" unless a newline follows */
	pattern = NULL;
	if ((nl = strchr(method, '\n')) != NULL) {
		*nl = '\0';
		path = nl + 1;
		if ((nl = strchr(path, '\n')) != NULL) {
			*nl = '\0';
			pattern = nl + 1;
		}
	}
	check(router, method, path);

	if (pattern != NULL) {
		if ((scratch = sb_router_new()) == NULL)
			abort();
		(void)sb_router_add(scratch, "GET", "/api/v1/q/{id}", &tags[0],
		    err, sizeof(err));
		err[0] = '\0';
		if (sb_router_add(scratch, method, pattern, &tags[1], err,
		    sizeof(err)) == -1) {
			if (err[0] == '\0')
				abort();
		} else {
			/* An accepted pattern with no parameters matches
			 * itself as a path. */
			check(scratch, method, pattern);
			if (strchr(pattern, '{') == NULL) {
				struct sb_router_match	m;

				if (sb_router_match(scratch, method, pattern,
				    &m) != SB_MATCH_OK || m.data != &tags[1])
					abort();
				sb_router_match_clear(&m);
			}
		}
		check(scratch, method, path);
		sb_router_free(scratch);
	}
	free(buf);
	return (0);
}
