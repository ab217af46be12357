/*
 * Unit tests for the host route table (src/router.c): what sb_router_add
 * refuses, literal-over-parameter precedence with backtracking, 404 versus
 * 405 and the Allow list, HEAD, and percent-decoding of parameters.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

static int	tag[16];

struct seen {
	char	buf[1024];
	size_t	n;
};

static void	add_ok(struct sb_router *, const char *, const char *, void *);
static void	add_fail(struct sb_router *, const char *, const char *,
		    const char *);
static void	count_cb(const char *, const char *, void *, void *);
static void	list_cb(const char *, const char *, void *, void *);
static enum sb_match match(const struct sb_router *, const char *,
		    const char *, struct sb_router_match *);

static void
add_ok(struct sb_router *r, const char *method, const char *pattern,
    void *data)
{
	char	err[256];

	err[0] = '\0';
	if (sb_router_add(r, method, pattern, data, err, sizeof(err)) != 0)
		fail_msg("add %s %s failed: %s", method, pattern, err);
}

static void
add_fail(struct sb_router *r, const char *method, const char *pattern,
    const char *needle)
{
	char	err[256];

	err[0] = '\0';
	if (sb_router_add(r, method, pattern, &tag[15], err, sizeof(err)) != -1)
		fail_msg("add %s %s was accepted", method ? method : "(null)",
		    pattern ? pattern : "(null)");
	if (strstr(err, needle) == NULL)
		fail_msg("add %s %s: error \"%s\" lacks \"%s\"",
		    method ? method : "(null)", pattern ? pattern : "(null)",
		    err, needle);
}

static void
count_cb(const char *method, const char *pattern, void *data, void *arg)
{
	(void)method;
	(void)pattern;
	(void)data;
	(*(size_t *)arg)++;
}

static void
list_cb(const char *method, const char *pattern, void *data, void *arg)
{
	struct seen	*s = arg;
	int		 idx;

	idx = (int *)data - tag;
	s->n += snprintf(s->buf + s->n, sizeof(s->buf) - s->n, "%s %s %d;",
	    method, pattern, idx);
}

/* Matches and checks the invariants every result must hold. */
static enum sb_match
match(const struct sb_router *r, const char *method, const char *path,
    struct sb_router_match *m)
{
	enum sb_match	res;

	res = sb_router_match(r, method, path, m);
	switch (res) {
	case SB_MATCH_OK:
		assert_non_null(m->data);
		assert_non_null(m->pattern);
		assert_non_null(strstr(m->allow, "OPTIONS"));
		break;
	case SB_MATCH_METHOD:
		assert_null(m->data);
		assert_int_equal(m->nparams, 0);
		assert_non_null(strstr(m->allow, "OPTIONS"));
		break;
	case SB_MATCH_NOT_FOUND:
		assert_null(m->data);
		assert_int_equal(m->nparams, 0);
		assert_string_equal(m->allow, "");
		break;
	}
	return (res);
}

static void
test_add_rejects(void **state)
{
	struct sb_router	*r;
	size_t			 n;

	(void)state;
	assert_non_null(r = sb_router_new());

	add_fail(r, "GET", "api/v1/x", "must start with '/'");
	add_fail(r, "GET", "", "must start with '/'");
	add_fail(r, "GET", "/a//b", "empty segment");
	add_fail(r, "GET", "//", "empty segment");
	add_fail(r, "GET", "/a/", "trailing slash");
	add_fail(r, "GET", "/a/{id", "malformed parameter segment \"{id\"");
	add_fail(r, "GET", "/a/id}", "malformed parameter segment");
	add_fail(r, "GET", "/a/x{id}", "malformed parameter segment");
	add_fail(r, "GET", "/a/{id}x", "malformed parameter segment");
	add_fail(r, "GET", "/a/{a{b}}", "malformed parameter segment");
	add_fail(r, "GET", "/a/{{id}}", "malformed parameter segment");
	add_fail(r, "GET", "/a/{}", "parameter name \"\"");
	add_fail(r, "GET", "/a/{Id}", "must match [a-z_][a-z0-9_]*");
	add_fail(r, "GET", "/a/{1d}", "parameter name \"1d\"");
	add_fail(r, "GET", "/a/{i-d}", "parameter name");
	add_fail(r, "GET", "/a/{id}/b/{id}", "duplicate parameter {id}");
	add_fail(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
	    "more than 8 parameters");
	add_fail(r, "FOO", "/a", "unknown method \"FOO\"");
	add_fail(r, "get", "/a", "unknown method");
	add_fail(r, "HEAD", "/a", "unknown method");
	add_fail(r, "OPTIONS", "/a", "unknown method");
	add_fail(r, "", "/a", "unknown method");
	add_fail(r, "GET", "/a b", "invalid character 0x20");
	add_fail(r, "GET", "/a%20b", "invalid character 0x25");
	add_fail(r, "GET", "/a?x=1", "invalid character 0x3f");
	add_fail(r, "GET", "/a/./b", "dot segment");
	add_fail(r, "GET", "/a/..", "dot segment");
	add_fail(r, NULL, "/a", "without method or pattern");
	add_fail(r, "GET", NULL, "without method or pattern");

	/* Nothing above may have left a route behind. */
	n = 0;
	sb_router_foreach(r, count_cb, &n);
	assert_int_equal(n, 0);

	/* err may be NULL, and a short buffer is still terminated. */
	assert_int_equal(sb_router_add(r, "FOO", "/a", NULL, NULL, 0), -1);
	{
		char	small[8];

		memset(small, 'x', sizeof(small));
		assert_int_equal(sb_router_add(r, "FOO", "/a", NULL, small,
		    sizeof(small)), -1);
		assert_int_equal(strlen(small), sizeof(small) - 1);
	}
	sb_router_free(r);
}

static void
test_add_accepts(void **state)
{
	struct sb_router	*r;
	size_t			 n;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/", &tag[0]);
	add_ok(r, "GET", "/a", &tag[1]);
	add_ok(r, "GET", "/a/{id}", &tag[2]);
	add_ok(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", &tag[3]);
	add_ok(r, "GET", "/.well-known/x_y~z:1@2", &tag[4]);
	add_ok(r, "PUT", "/a/{_x9}", &tag[5]);
	add_ok(r, "PATCH", "/a/{id}", &tag[6]);
	add_ok(r, "DELETE", "/a/{id}", &tag[7]);
	add_ok(r, "POST", "/a", &tag[8]);
	n = 0;
	sb_router_foreach(r, count_cb, &n);
	assert_int_equal(n, 9);
	sb_router_free(r);
}

static void
test_clash(void **state)
{
	struct sb_router	*r;
	char			 err[256];

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/a/{id}", &tag[0]);

	assert_int_equal(sb_router_add(r, "GET", "/a/{x}", &tag[1], err,
	    sizeof(err)), -1);
	assert_string_equal(err,
	    "route GET /a/{x} clashes with GET /a/{id}");
	add_fail(r, "GET", "/a/{id}", "clashes with GET /a/{id}");

	/* Another method, a literal, a longer shape: no clash. */
	add_ok(r, "POST", "/a/{x}", &tag[2]);
	add_ok(r, "GET", "/a/mine", &tag[3]);
	add_ok(r, "GET", "/a/{id}/b", &tag[4]);
	add_ok(r, "GET", "/a", &tag[5]);
	add_fail(r, "GET", "/a/mine", "clashes with GET /a/mine");
	add_fail(r, "POST", "/a/{y}", "clashes with POST /a/{x}");

	add_ok(r, "GET", "/", &tag[6]);
	add_fail(r, "GET", "/", "route GET / clashes with GET /");
	sb_router_free(r);
}

static void
test_precedence(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;

	(void)state;
	assert_non_null(r = sb_router_new());
	/* The parameter route first: order of registration must not
	 * matter for precedence. */
	add_ok(r, "GET", "/q/{id}", &tag[1]);
	add_ok(r, "GET", "/q/mine", &tag[0]);
	add_ok(r, "GET", "/q/{id}/messages", &tag[2]);
	add_ok(r, "GET", "/q/mine/{x}/z", &tag[3]);
	add_ok(r, "GET", "/q/{id}/y/w", &tag[4]);

	assert_int_equal(match(r, "GET", "/q/mine", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[0]);
	assert_string_equal(m.pattern, "/q/mine");
	assert_int_equal(m.nparams, 0);
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "GET", "/q/42", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[1]);
	assert_string_equal(m.pattern, "/q/{id}");
	assert_string_equal(sb_router_param(&m, "id"), "42");
	sb_router_match_clear(&m);

	/* /q/mine has no "messages" child: back up and take {id}. */
	assert_int_equal(match(r, "GET", "/q/mine/messages", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[2]);
	assert_string_equal(m.pattern, "/q/{id}/messages");
	assert_int_equal(m.nparams, 1);
	assert_string_equal(m.params[0].name, "id");
	assert_string_equal(sb_router_param(&m, "id"), "mine");
	sb_router_match_clear(&m);

	/* The literal branch fits as far as it goes. */
	assert_int_equal(match(r, "GET", "/q/mine/y/z", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[3]);
	assert_string_equal(sb_router_param(&m, "x"), "y");
	assert_null(sb_router_param(&m, "id"));
	sb_router_match_clear(&m);

	/* Two levels down the literal branch dies; the parameter one fits. */
	assert_int_equal(match(r, "GET", "/q/mine/y/w", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[4]);
	assert_string_equal(sb_router_param(&m, "id"), "mine");
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "GET", "/q/mine/y/v", &m),
	    SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "/q", &m), SB_MATCH_NOT_FOUND);
	sb_router_free(r);
}

static void
test_not_found_vs_method(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/items", &tag[0]);
	add_ok(r, "POST", "/items", &tag[1]);
	add_ok(r, "DELETE", "/items/{id}", &tag[2]);
	add_ok(r, "GET", "/all", &tag[3]);
	add_ok(r, "POST", "/all", &tag[4]);
	add_ok(r, "PUT", "/all", &tag[5]);
	add_ok(r, "PATCH", "/all", &tag[6]);
	add_ok(r, "DELETE", "/all", &tag[7]);

	assert_int_equal(match(r, "GET", "/items", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[0]);
	assert_string_equal(m.allow, "GET, HEAD, POST, OPTIONS");
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "POST", "/items", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[1]);
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "PUT", "/items", &m), SB_MATCH_METHOD);
	assert_string_equal(m.allow, "GET, HEAD, POST, OPTIONS");
	assert_int_equal(match(r, "OPTIONS", "/items", &m), SB_MATCH_METHOD);
	assert_string_equal(m.allow, "GET, HEAD, POST, OPTIONS");
	/* Methods are case-sensitive (RFC 9110). */
	assert_int_equal(match(r, "get", "/items", &m), SB_MATCH_METHOD);
	assert_int_equal(match(r, "BREW", "/items", &m), SB_MATCH_METHOD);

	assert_int_equal(match(r, "GET", "/items/5", &m), SB_MATCH_METHOD);
	assert_string_equal(m.allow, "DELETE, OPTIONS");
	assert_int_equal(match(r, "HEAD", "/items/5", &m), SB_MATCH_METHOD);
	assert_string_equal(m.allow, "DELETE, OPTIONS");

	assert_int_equal(match(r, "PUT", "/all", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[5]);
	assert_string_equal(m.allow,
	    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "GET", "/nothing", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "POST", "/items/5/x", &m),
	    SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "/", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "/items/", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "DELETE", "/items//", &m),
	    SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "//items", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "items", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(sb_router_match(r, NULL, "/items", &m),
	    SB_MATCH_NOT_FOUND);
	assert_int_equal(sb_router_match(r, "GET", NULL, &m),
	    SB_MATCH_NOT_FOUND);
	assert_int_equal(sb_router_match(NULL, "GET", "/items", &m),
	    SB_MATCH_NOT_FOUND);
	sb_router_free(r);
}

/* Allow lists every method that would succeed, whichever node has it. */
static void
test_allow_union(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/q/mine/messages", &tag[0]);
	add_ok(r, "POST", "/q/{id}/messages", &tag[1]);

	assert_int_equal(match(r, "POST", "/q/mine/messages", &m),
	    SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[1]);
	assert_string_equal(sb_router_param(&m, "id"), "mine");
	assert_string_equal(m.allow, "GET, HEAD, POST, OPTIONS");
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "GET", "/q/mine/messages", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[0]);
	assert_int_equal(m.nparams, 0);
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "PUT", "/q/mine/messages", &m),
	    SB_MATCH_METHOD);
	assert_string_equal(m.allow, "GET, HEAD, POST, OPTIONS");
	assert_int_equal(match(r, "GET", "/q/7/messages", &m),
	    SB_MATCH_METHOD);
	assert_string_equal(m.allow, "POST, OPTIONS");
	sb_router_free(r);
}

static void
test_head(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/doc/{id}", &tag[0]);
	add_ok(r, "POST", "/only-post", &tag[1]);

	assert_int_equal(match(r, "HEAD", "/doc/9", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[0]);
	assert_string_equal(m.pattern, "/doc/{id}");
	assert_string_equal(sb_router_param(&m, "id"), "9");
	assert_string_equal(m.allow, "GET, HEAD, OPTIONS");
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "HEAD", "/only-post", &m), SB_MATCH_METHOD);
	assert_string_equal(m.allow, "POST, OPTIONS");
	sb_router_free(r);
}

static void
test_root(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/", &tag[0]);
	add_ok(r, "GET", "/{page}", &tag[1]);

	assert_int_equal(match(r, "GET", "/", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[0]);
	assert_int_equal(m.nparams, 0);
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "GET", "/x", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[1]);
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "GET", "//", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "GET", "/x/", &m), SB_MATCH_NOT_FOUND);
	assert_int_equal(match(r, "POST", "/", &m), SB_MATCH_METHOD);
	assert_string_equal(m.allow, "GET, HEAD, OPTIONS");
	sb_router_free(r);
}

static void
test_percent(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;
	static const char *const bad[] = {
		"/users/%2F", "/users/%2f", "/users/a%2Fb", "/users/%00",
		"/users/a%00b", "/users/%zz", "/users/%4", "/users/%",
		"/users/a%", "/users/%g0", "/users/%0g", "/users/", "/users//x",
		NULL
	};
	size_t			 i;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "POST", "/users/{name}", &tag[0]);
	add_ok(r, "POST", "/users/me", &tag[1]);
	add_ok(r, "POST", "/users/{name}/x", &tag[2]);

	assert_int_equal(match(r, "POST", "/users/j%C3%B6rg", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "name"), "j\xc3\xb6rg");
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "POST", "/users/j%c3%b6rg", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "name"), "j\xc3\xb6rg");
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "POST", "/users/a%20b", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "name"), "a b");
	sb_router_match_clear(&m);
	/* '+' is a space only in query strings. */
	assert_int_equal(match(r, "POST", "/users/a+b", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "name"), "a+b");
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "POST", "/users/%25", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "name"), "%");
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "POST", "/users/%2e%2E", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "name"), "..");
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "POST", "/users/a%2Fb/x", &m),
	    SB_MATCH_NOT_FOUND);

	/* Literals compare with the raw path: an encoded "me" is a value. */
	assert_int_equal(match(r, "POST", "/users/m%65", &m), SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[0]);
	assert_string_equal(sb_router_param(&m, "name"), "me");
	sb_router_match_clear(&m);

	/* An unusable value is a 404 even though the method would fit
	 * another value: the path itself names nothing. */
	for (i = 0; bad[i] != NULL; i++) {
		if (match(r, "POST", bad[i], &m) != SB_MATCH_NOT_FOUND)
			fail_msg("%s matched", bad[i]);
		if (match(r, "GET", bad[i], &m) != SB_MATCH_NOT_FOUND)
			fail_msg("GET %s is not a 404", bad[i]);
	}
	sb_router_free(r);
}

static void
test_params(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;
	char			 name[2];
	size_t			 i;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", &tag[0]);
	add_ok(r, "GET", "/org/{org}/team/{team}", &tag[1]);

	assert_int_equal(match(r, "GET", "/1/2/3/4/5/6/7/%38", &m),
	    SB_MATCH_OK);
	assert_int_equal(m.nparams, SB_ROUTER_MAX_PARAMS);
	for (i = 0; i < SB_ROUTER_MAX_PARAMS; i++) {
		name[0] = 'a' + i;
		name[1] = '\0';
		assert_string_equal(m.params[i].name, name);
		assert_int_equal(m.params[i].value[0], '1' + (int)i);
		assert_int_equal(m.params[i].value[1], '\0');
	}
	sb_router_match_clear(&m);
	assert_int_equal(m.nparams, 0);
	/* Clearing twice, or a non-OK result, is harmless. */
	sb_router_match_clear(&m);
	sb_router_match_clear(NULL);

	assert_int_equal(match(r, "GET", "/org/acme/team/red", &m),
	    SB_MATCH_OK);
	assert_ptr_equal(m.data, &tag[1]);
	assert_string_equal(m.pattern, "/org/{org}/team/{team}");
	assert_int_equal(m.nparams, 2);
	assert_string_equal(m.params[0].name, "org");
	assert_string_equal(m.params[0].value, "acme");
	assert_string_equal(m.params[1].name, "team");
	assert_string_equal(sb_router_param(&m, "team"), "red");
	assert_null(sb_router_param(&m, "nope"));
	sb_router_match_clear(&m);

	assert_int_equal(match(r, "GET", "/1/2/3/4/5/6/7/8/9", &m),
	    SB_MATCH_NOT_FOUND);
	sb_router_match_clear(&m);
	sb_router_free(r);
}

/* Parameter names come from the route that matched, not the node. */
static void
test_names_per_route(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "GET", "/a/{id}", &tag[0]);
	add_ok(r, "POST", "/a/{key}", &tag[1]);

	assert_int_equal(match(r, "POST", "/a/z", &m), SB_MATCH_OK);
	assert_string_equal(m.pattern, "/a/{key}");
	assert_string_equal(sb_router_param(&m, "key"), "z");
	assert_null(sb_router_param(&m, "id"));
	sb_router_match_clear(&m);
	assert_int_equal(match(r, "GET", "/a/z", &m), SB_MATCH_OK);
	assert_string_equal(sb_router_param(&m, "id"), "z");
	sb_router_match_clear(&m);
	sb_router_free(r);
}

static void
test_foreach_order(void **state)
{
	struct sb_router	*r;
	struct seen		 s;

	(void)state;
	assert_non_null(r = sb_router_new());
	add_ok(r, "POST", "/z", &tag[0]);
	add_ok(r, "GET", "/a/{id}", &tag[1]);
	add_ok(r, "GET", "/a/mine", &tag[2]);
	add_ok(r, "DELETE", "/", &tag[3]);
	add_fail(r, "GET", "/a/{x}", "clashes");
	add_ok(r, "PATCH", "/a/{x}", &tag[4]);

	memset(&s, 0, sizeof(s));
	sb_router_foreach(r, list_cb, &s);
	assert_string_equal(s.buf, "POST /z 0;GET /a/{id} 1;GET /a/mine 2;"
	    "DELETE / 3;PATCH /a/{x} 4;");
	sb_router_foreach(NULL, list_cb, &s);
	sb_router_free(r);
	sb_router_free(NULL);
}

static void
test_many(void **state)
{
	struct sb_router	*r;
	struct sb_router_match	 m;
	char			 pat[64], path[64];
	int			 i;

	(void)state;
	assert_non_null(r = sb_router_new());
	for (i = 0; i < 500; i++) {
		snprintf(pat, sizeof(pat), "/api/v1/p%d/{id}/x%d", i % 50, i);
		add_ok(r, i % 2 ? "GET" : "POST", pat, &tag[i % 16]);
	}
	for (i = 0; i < 500; i++) {
		snprintf(path, sizeof(path), "/api/v1/p%d/%d/x%d", i % 50,
		    i * 7, i);
		assert_int_equal(match(r, i % 2 ? "GET" : "POST", path, &m),
		    SB_MATCH_OK);
		assert_ptr_equal(m.data, &tag[i % 16]);
		snprintf(pat, sizeof(pat), "%d", i * 7);
		assert_string_equal(sb_router_param(&m, "id"), pat);
		sb_router_match_clear(&m);
		assert_int_equal(match(r, i % 2 ? "POST" : "GET", path, &m),
		    SB_MATCH_METHOD);
	}
	assert_int_equal(match(r, "GET", "/api/v1/p1/1/x2", &m),
	    SB_MATCH_NOT_FOUND);
	sb_router_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_rejects),
		cmocka_unit_test(test_add_accepts),
		cmocka_unit_test(test_clash),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_not_found_vs_method),
		cmocka_unit_test(test_allow_union),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_root),
		cmocka_unit_test(test_percent),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_names_per_route),
		cmocka_unit_test(test_foreach_order),
		cmocka_unit_test(test_many),
	};

	return (cmocka_run_group_tests_name("router", tests, NULL, NULL));
}
