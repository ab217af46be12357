/*
 * Unit tests for the configuration parser (src/conf.c): the accepted
 * syntax, every error with its line number, booleans, sizes with
 * suffixes and overflow, overrides and iteration order, and loading from
 * a file.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

struct seen {
	char	buf[1024];
	size_t	n;
};

static struct sb_conf	*parse(const char *);
static void		 parse_err(const char *, const char *);
static void		 section_cb(const char *, void *);
static void		 key_cb(const char *, const char *, void *);
static char		*tmpfile_with(const char *, size_t);

static struct sb_conf *
parse(const char *text)
{
	struct sb_conf	*conf;
	char		 err[512];

	err[0] = '\0';
	if ((conf = sb_conf_parse(text, strlen(text), "t.conf", err,
	    sizeof(err))) == NULL)
		fail_msg("parse failed: %s", err);
	return (conf);
}

static void
parse_err(const char *text, const char *want)
{
	struct sb_conf	*conf;
	char		 err[512];

	err[0] = '\0';
	conf = sb_conf_parse(text, strlen(text), "t.conf", err, sizeof(err));
	if (conf != NULL) {
		sb_conf_free(conf);
		fail_msg("accepted: %s", text);
	}
	assert_string_equal(err, want);
}

static void
section_cb(const char *section, void *arg)
{
	struct seen	*s = arg;

	s->n += snprintf(s->buf + s->n, sizeof(s->buf) - s->n, "[%s]",
	    section);
}

static void
key_cb(const char *key, const char *value, void *arg)
{
	struct seen	*s = arg;

	s->n += snprintf(s->buf + s->n, sizeof(s->buf) - s->n, "%s=%s;",
	    key, value);
}

/* Caller unlinks and frees the returned path. */
static char *
tmpfile_with(const char *data, size_t len)
{
	char	*path;
	int	 fd;

	assert_non_null(path = strdup("/tmp/test_conf.XXXXXX"));
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return (path);
}

static void
test_sample(void **state)
{
	struct sb_conf	*conf;

	(void)state;
	conf = parse(
	    "# comment\n"
	    "; comment\n"
	    "   # indented comment\n"
	    "\n"
	    "[host]\n"
	    "cors_origins = http://localhost:3000, https://console.example.org\n"
	    "body_max = 1048576\n"
	    "\n"
	    "[plugin example]\n"
	    "enabled = yes\n"
	    "greeting = \"hello, world\"     # quoted values keep inner spaces\n");

	assert_string_equal(sb_conf_get(conf, "host", "cors_origins"),
	    "http://localhost:3000, https://console.example.org");
	assert_string_equal(sb_conf_get(conf, "host", "body_max"), "1048576");
	assert_string_equal(sb_conf_get(conf, "plugin example", "enabled"),
	    "yes");
	assert_string_equal(sb_conf_get(conf, "plugin example", "greeting"),
	    "hello, world");
	assert_null(sb_conf_get(conf, "host", "enabled"));
	assert_null(sb_conf_get(conf, "plugin", "enabled"));
	assert_null(sb_conf_get(conf, "nope", "x"));
	assert_null(sb_conf_get(NULL, "host", "body_max"));
	assert_null(sb_conf_get(conf, NULL, "body_max"));
	assert_null(sb_conf_get(conf, "host", NULL));
	sb_conf_free(conf);
	sb_conf_free(NULL);
}

static void
test_syntax(void **state)
{
	struct sb_conf	*conf;

	(void)state;
	conf = parse(
	    "[  plugin \t  example  ]   # header comment\r\n"
	    "  spaced   =    value with  inner   spaces   \r\n"
	    "tab\t=\tv\t\r\n"
	    "empty =\r\n"
	    "empty2 =    \r\n"
	    "empty3 = # only a comment\r\n"
	    "hash = http://x/#frag\r\n"
	    "semi = a;b\r\n"
	    "comment = v ; trailing\r\n"
	    "comment2 = v\t# trailing\r\n"
	    "quoted = \"  keep  \"  ; trailing\r\n"
	    "escaped = \"say \\\"hi\\\" \\\\o/\"\r\n"
	    "hashq = \"a # b ; c\"\r\n"
	    "emptyq = \"\"\r\n"
	    "inner = say \"hi\"\r\n"
	    "eq = a=b=c\r\n"
	    "Key.with-chars_9 = 1\r\n"
	    "nospace=x\r\n"
	    "[other]\n"
	    "spaced = other\n"
	    "last = no newline");

	assert_string_equal(sb_conf_get(conf, "plugin example", "spaced"),
	    "value with  inner   spaces");
	assert_string_equal(sb_conf_get(conf, "plugin example", "tab"), "v");
	assert_string_equal(sb_conf_get(conf, "plugin example", "empty"), "");
	assert_string_equal(sb_conf_get(conf, "plugin example", "empty2"), "");
	assert_string_equal(sb_conf_get(conf, "plugin example", "empty3"), "");
	assert_string_equal(sb_conf_get(conf, "plugin example", "hash"),
	    "http://x/#frag");
	assert_string_equal(sb_conf_get(conf, "plugin example", "semi"), "a;b");
	assert_string_equal(sb_conf_get(conf, "plugin example", "comment"),
	    "v");
	assert_string_equal(sb_conf_get(conf, "plugin example", "comment2"),
	    "v");
	assert_string_equal(sb_conf_get(conf, "plugin example", "quoted"),
	    "  keep  ");
	assert_string_equal(sb_conf_get(conf, "plugin example", "escaped"),
	    "say \"hi\" \\o/");
	assert_string_equal(sb_conf_get(conf, "plugin example", "hashq"),
	    "a # b ; c");
	assert_string_equal(sb_conf_get(conf, "plugin example", "emptyq"), "");
	assert_string_equal(sb_conf_get(conf, "plugin example", "inner"),
	    "say \"hi\"");
	assert_string_equal(sb_conf_get(conf, "plugin example", "eq"), "a=b=c");
	assert_string_equal(sb_conf_get(conf, "plugin example",
	    "Key.with-chars_9"), "1");
	assert_string_equal(sb_conf_get(conf, "plugin example", "nospace"),
	    "x");
	assert_null(sb_conf_get(conf, "plugin example", "key.with-chars_9"));
	assert_string_equal(sb_conf_get(conf, "other", "spaced"), "other");
	assert_string_equal(sb_conf_get(conf, "other", "last"), "no newline");
	sb_conf_free(conf);

	/* Empty input is an empty configuration. */
	assert_non_null(conf = sb_conf_parse("", 0, NULL, NULL, 0));
	sb_conf_free(conf);
	assert_non_null(conf = sb_conf_parse(NULL, 0, NULL, NULL, 0));
	sb_conf_free(conf);
	conf = parse("\n\n# only comments\r\n\n");
	sb_conf_free(conf);
}

static void
test_errors(void **state)
{
	(void)state;
	parse_err("[host]\nfoo bar\n", "t.conf:2: expected 'key = value'");
	parse_err("[host]\n\n= value\n", "t.conf:3: expected 'key = value'");
	parse_err("[host]\nkey: value\n", "t.conf:2: expected 'key = value'");
	parse_err("[host]\na$b = 1\n", "t.conf:2: expected 'key = value'");
	parse_err("[host]\nk\xc3\xa9y = 1\n",
	    "t.conf:2: expected 'key = value'");
	parse_err("# c\nkey = 1\n[host]\n",
	    "t.conf:2: key 'key' outside of any section");
	parse_err("[host]\na = 1\nb = 2\n\na = 3\n",
	    "t.conf:5: duplicate key 'a' in [host] (first set on line 2)");
	parse_err("[host]\na = 1\n[plugin x]\nb = 1\n[host]\n",
	    "t.conf:5: duplicate section [host] (first on line 1)");
	parse_err("[plugin x]\n[plugin    x]\n",
	    "t.conf:2: duplicate section [plugin x] (first on line 1)");
	parse_err("[host]\na = \"unterminated\n",
	    "t.conf:2: unterminated quote");
	parse_err("[host]\na = \"ends in backslash\\\n",
	    "t.conf:2: unterminated quote");
	parse_err("[host]\na = \"x\\n\"\n",
	    "t.conf:2: invalid escape '\\n' in quoted value "
	    "(only \\\" and \\\\)");
	parse_err("[host]\na = \"x\" y\n",
	    "t.conf:2: unexpected text after quoted value");
	parse_err("[host\n",
	    "t.conf:1: expected ']' to close the section header");
	parse_err("[host] x\n", "t.conf:1: unexpected text after section header");
	parse_err("[]\n", "t.conf:1: invalid section name '' (expected [word] "
	    "or [word word] of A-Z a-z 0-9 _ . -)");
	parse_err("[ ]\n", "t.conf:1: invalid section name ' ' (expected "
	    "[word] or [word word] of A-Z a-z 0-9 _ . -)");
	parse_err("[a b c]\n", "t.conf:1: invalid section name 'a b c' "
	    "(expected [word] or [word word] of A-Z a-z 0-9 _ . -)");
	parse_err("\n\n[a$b]\n", "t.conf:3: invalid section name 'a$b' "
	    "(expected [word] or [word word] of A-Z a-z 0-9 _ . -)");
	parse_err("[[a]]\n", "t.conf:1: unexpected text after section header");
	parse_err("[a[b]\n", "t.conf:1: invalid section name 'a[b' (expected "
	    "[word] or [word word] of A-Z a-z 0-9 _ . -)");
}

static void
test_limits(void **state)
{
	struct sb_conf	*conf;
	char		*text, err[256];
	size_t		 len;

	(void)state;
	/* A line of exactly 4096 bytes (plus \r\n) is fine, 4097 is not. */
	len = 7 + SB_CONF_LINE_MAX + 2;
	assert_non_null(text = malloc(len + 2));
	memcpy(text, "[host]\n", 7);
	memcpy(text + 7, "k = ", 4);
	memset(text + 11, 'v', SB_CONF_LINE_MAX - 4);
	memcpy(text + 7 + SB_CONF_LINE_MAX, "\r\n", 2);
	assert_non_null(conf = sb_conf_parse(text, len, "t.conf", err,
	    sizeof(err)));
	assert_int_equal(strlen(sb_conf_get(conf, "host", "k")),
	    SB_CONF_LINE_MAX - 4);
	sb_conf_free(conf);

	memcpy(text + 7 + SB_CONF_LINE_MAX, "v\n", 2);
	assert_null(sb_conf_parse(text, len, "t.conf", err, sizeof(err)));
	assert_string_equal(err, "t.conf:2: line too long (more than 4096 "
	    "bytes)");
	free(text);

	/* 1 MiB exactly parses; one byte more is refused outright. */
	assert_non_null(text = malloc(SB_CONF_FILE_MAX + 1));
	memset(text, '\n', SB_CONF_FILE_MAX + 1);
	memcpy(text, "[host]\na = 1\n", 13);
	assert_non_null(conf = sb_conf_parse(text, SB_CONF_FILE_MAX, "t.conf",
	    err, sizeof(err)));
	assert_string_equal(sb_conf_get(conf, "host", "a"), "1");
	sb_conf_free(conf);
	assert_null(sb_conf_parse(text, SB_CONF_FILE_MAX + 1, "t.conf", err,
	    sizeof(err)));
	assert_string_equal(err, "t.conf: file too large (1048577 bytes, "
	    "limit 1048576)");
	free(text);

	/* A NUL would cut a value short silently. */
	assert_null(sb_conf_parse("[host]\na = 1\0x\n", 15, "t.conf", err,
	    sizeof(err)));
	assert_string_equal(err, "t.conf:2: NUL byte in line");

	/* Without a source name, and without an error buffer. */
	assert_null(sb_conf_parse("x", 1, NULL, err, sizeof(err)));
	assert_string_equal(err, "<config>:1: expected 'key = value'");
	assert_null(sb_conf_parse("x", 1, NULL, NULL, 0));
	assert_null(sb_conf_parse(NULL, 3, NULL, err, sizeof(err)));
}

static void
test_bool(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "True",
	    "on", "ON", "1", NULL };
	static const char *const no[] = { "no", "No", "false", "FALSE",
	    "off", "Off", "0", NULL };
	static const char *const bad[] = { "", "y", "n", "2", "yess", "on ",
	    "enabled", "-1", NULL };
	struct sb_conf	*conf;
	size_t		 i;
	int		 ok;

	(void)state;
	conf = parse("[s]\n");
	for (i = 0; yes[i] != NULL; i++) {
		assert_int_equal(sb_conf_set(conf, "s", "k", yes[i]), 0);
		ok = -1;
		assert_int_equal(sb_conf_bool(conf, "s", "k", 0, &ok), 1);
		assert_int_equal(ok, 1);
	}
	for (i = 0; no[i] != NULL; i++) {
		assert_int_equal(sb_conf_set(conf, "s", "k", no[i]), 0);
		ok = -1;
		assert_int_equal(sb_conf_bool(conf, "s", "k", 1, &ok), 0);
		assert_int_equal(ok, 1);
	}
	for (i = 0; bad[i] != NULL; i++) {
		assert_int_equal(sb_conf_set(conf, "s", "k", bad[i]), 0);
		ok = -1;
		assert_int_equal(sb_conf_bool(conf, "s", "k", 1, &ok), 1);
		assert_int_equal(ok, 0);
		assert_int_equal(sb_conf_bool(conf, "s", "k", 0, NULL), 0);
	}
	ok = -1;
	assert_int_equal(sb_conf_bool(conf, "s", "absent", 1, &ok), 1);
	assert_int_equal(ok, 1);
	assert_int_equal(sb_conf_bool(conf, "none", "absent", 0, &ok), 0);
	assert_int_equal(ok, 1);
	sb_conf_free(conf);
}

static void
test_int(void **state)
{
	static const struct {
		const char	*text;
		long long	 want;
	} good[] = {
		{ "0", 0 },
		{ "1048576", 1048576 },
		{ "007", 7 },
		{ "+7", 7 },
		{ "-5", -5 },
		{ "-0", 0 },
		{ "1k", 1024 },
		{ "1K", 1024 },
		{ "2m", 2 * 1024 * 1024 },
		{ "2M", 2 * 1024 * 1024 },
		{ "1g", 1024LL * 1024 * 1024 },
		{ "3G", 3LL * 1024 * 1024 * 1024 },
		{ "-1k", -1024 },
		{ "9223372036854775807", LLONG_MAX },
		{ "-9223372036854775808", LLONG_MIN },
		{ "8589934591G", 8589934591LL * 1024 * 1024 * 1024 },
		{ "-8589934592G", LLONG_MIN },
	};
	static const char *const bad[] = {
		"", "k", "-", "+", "1 k", " 1", "1 ", "0x10", "1.5", "1e3",
		"12x", "1kk", "1kb", "1T", "--1", "+-1",
		"9223372036854775808", "-9223372036854775809",
		"99999999999999999999", "18446744073709551616",
		"184467440737095516160", "8589934592G", "-8589934593G",
		"9007199254740992k", NULL
	};
	struct sb_conf	*conf;
	size_t		 i;
	int		 ok;

	(void)state;
	conf = parse("[s]\nsize = 16M\n");
	ok = -1;
	assert_int_equal(sb_conf_int(conf, "s", "size", 0, &ok),
	    16 * 1024 * 1024);
	assert_int_equal(ok, 1);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(sb_conf_set(conf, "s", "k", good[i].text), 0);
		ok = -1;
		if (sb_conf_int(conf, "s", "k", 42, &ok) != good[i].want ||
		    ok != 1)
			fail_msg("%s: got %lld ok %d", good[i].text,
			    sb_conf_int(conf, "s", "k", 42, NULL), ok);
	}
	for (i = 0; bad[i] != NULL; i++) {
		assert_int_equal(sb_conf_set(conf, "s", "k", bad[i]), 0);
		ok = -1;
		if (sb_conf_int(conf, "s", "k", 42, &ok) != 42 || ok != 0)
			fail_msg("%s: accepted", bad[i]);
		assert_int_equal(sb_conf_int(conf, "s", "k", -3, NULL), -3);
	}
	ok = -1;
	assert_int_equal(sb_conf_int(conf, "s", "absent", 99, &ok), 99);
	assert_int_equal(ok, 1);
	sb_conf_free(conf);
}

static void
test_set_and_foreach(void **state)
{
	struct sb_conf	*conf;
	struct seen	 s;

	(void)state;
	conf = parse("[host]\nb = 2\na = 1\n[plugin example]\nx = 1\n"
	    "[plugin other]\n");

	memset(&s, 0, sizeof(s));
	sb_conf_foreach_section(conf, section_cb, &s);
	assert_string_equal(s.buf,
	    "[host][plugin example][plugin other]");
	memset(&s, 0, sizeof(s));
	sb_conf_foreach_key(conf, "host", key_cb, &s);
	assert_string_equal(s.buf, "b=2;a=1;");
	memset(&s, 0, sizeof(s));
	sb_conf_foreach_key(conf, "plugin other", key_cb, &s);
	sb_conf_foreach_key(conf, "missing", key_cb, &s);
	assert_string_equal(s.buf, "");

	/* Override in place, add a key, add a section. */
	assert_int_equal(sb_conf_set(conf, "host", "b", "20"), 0);
	assert_int_equal(sb_conf_set(conf, "host", "c", "3"), 0);
	assert_int_equal(sb_conf_set(conf, "plugin  new", "k", "v v"), 0);
	assert_int_equal(sb_conf_set(conf, "host", "empty", ""), 0);
	assert_string_equal(sb_conf_get(conf, "host", "b"), "20");
	assert_string_equal(sb_conf_get(conf, "plugin new", "k"), "v v");
	assert_string_equal(sb_conf_get(conf, "host", "empty"), "");

	memset(&s, 0, sizeof(s));
	sb_conf_foreach_key(conf, "host", key_cb, &s);
	assert_string_equal(s.buf, "b=20;a=1;c=3;empty=;");
	memset(&s, 0, sizeof(s));
	sb_conf_foreach_section(conf, section_cb, &s);
	assert_string_equal(s.buf,
	    "[host][plugin example][plugin other][plugin new]");

	/* Names the parser would refuse are refused here too. */
	assert_int_equal(sb_conf_set(conf, "a b c", "k", "v"), -1);
	assert_int_equal(sb_conf_set(conf, "", "k", "v"), -1);
	assert_int_equal(sb_conf_set(conf, "host", "", "v"), -1);
	assert_int_equal(sb_conf_set(conf, "host", "a b", "v"), -1);
	assert_int_equal(sb_conf_set(conf, "host", "a=b", "v"), -1);
	assert_int_equal(sb_conf_set(conf, "ho$t", "k", "v"), -1);
	assert_int_equal(sb_conf_set(conf, "host", "k", NULL), -1);
	assert_int_equal(sb_conf_set(NULL, "host", "k", "v"), -1);

	sb_conf_foreach_section(NULL, section_cb, &s);
	sb_conf_foreach_key(NULL, "host", key_cb, &s);
	sb_conf_free(conf);

	/* A set on an empty configuration creates everything. */
	assert_non_null(conf = sb_conf_parse("", 0, "env", NULL, 0));
	assert_int_equal(sb_conf_set(conf, "host", "listen", "1.2.3.4"), 0);
	assert_string_equal(sb_conf_get(conf, "host", "listen"), "1.2.3.4");
	sb_conf_free(conf);
}

static void
test_load(void **state)
{
	struct sb_conf	*conf;
	char		*path, *big, err[512], want[600];

	(void)state;
	path = tmpfile_with("[host]\r\nbody_max = 1M\r\n", 23);
	assert_non_null(conf = sb_conf_load(path, err, sizeof(err)));
	assert_int_equal(sb_conf_int(conf, "host", "body_max", 0, NULL),
	    1024 * 1024);
	sb_conf_free(conf);
	unlink(path);
	free(path);

	/* Errors name the file. */
	path = tmpfile_with("[host]\nbody_max\n", 16);
	assert_null(sb_conf_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: expected 'key = value'", path);
	assert_string_equal(err, want);
	unlink(path);

	assert_null(sb_conf_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	free(path);

	assert_null(sb_conf_load("/tmp", err, sizeof(err)));
	assert_string_equal(err, "/tmp: not a regular file");

	assert_non_null(big = malloc(SB_CONF_FILE_MAX + 1));
	memset(big, '#', SB_CONF_FILE_MAX + 1);
	path = tmpfile_with(big, SB_CONF_FILE_MAX + 1);
	assert_null(sb_conf_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: file too large (1048577 bytes, "
	    "limit 1048576)", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_set_and_foreach),
		cmocka_unit_test(test_load),
	};

	return (cmocka_run_group_tests_name("conf", tests, NULL, NULL));
}
