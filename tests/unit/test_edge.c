/*
 * Unit tests for the request-head rules (src/edge.c): what passes, and the
 * status each malformed or oversized head is refused with.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"

static long long	clen;
static int		flags;

static int
check(const char *head)
{
	return (sb_edge_head(head, strlen(head), &clen, &flags));
}

static void
test_good(void **state)
{
	(void)state;
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x"), 0);
	assert_int_equal(clen, -1);
	assert_int_equal(flags, 0);
	/* Bare LF line ends, and empty lines before the request line. */
	assert_int_equal(check("\r\n\nGET /a?b=c HTTP/1.0\nHost: x\nX-Y:z"), 0);
	assert_int_equal(check("POST /p HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 42\r\nExpect: 100-Continue"), 0);
	assert_int_equal(clen, 42);
	assert_int_equal(flags, SB_EDGE_EXPECT_CONTINUE);
	/* The same length twice, and as a list, is one length. */
	assert_int_equal(check("POST /p HTTP/1.1\r\nHost: x\r\n"
	    "content-length: 7\r\nContent-Length:7 , 7 "), 0);
	assert_int_equal(clen, 7);
	assert_int_equal(check("POST /p HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding:  Chunked "), 0);
	assert_int_equal(flags, SB_EDGE_CHUNKED);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\nX-Tab: a\tb"), 0);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\nX-Empty:"), 0);
}

static void
test_request_line(void **state)
{
	const char	*bad[] = {
		"", "\r\n", "GET", "GET /", "GET / HTTP/1.1 x", "GET  / HTTP/1.1",
		"GET / HTTP/11", "GET / HTTP/1.1x", "GET / http/1.1",
		"G(T / HTTP/1.1", "GET /\x01 HTTP/1.1", "GET /\x7f HTTP/1.1",
		"GET /\xc3\xa9 HTTP/1.1", " GET / HTTP/1.1", "GET\t/ HTTP/1.1",
	};
	char		 buf[4096];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%s\r\nHost: x", bad[i]);
		assert_int_equal(check(buf), 400);
	}
	/* A NUL in the line. */
	assert_int_equal(sb_edge_head("GET /\0 HTTP/1.1\r\nHost: x", 25,
	    &clen, &flags), 400);

	/* The target limit, exactly. */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', SB_EDGE_TARGET_MAX - 1);
	snprintf(buf + 4 + SB_EDGE_TARGET_MAX, 64, " HTTP/1.1\r\nHost: x");
	assert_int_equal(check(buf), 0);
	memset(buf + 5, 'a', SB_EDGE_TARGET_MAX);
	snprintf(buf + 5 + SB_EDGE_TARGET_MAX, 64, " HTTP/1.1\r\nHost: x");
	assert_int_equal(check(buf), 414);
	/* Too long and unfinished is still too long. */
	buf[5 + SB_EDGE_TARGET_MAX] = '\0';
	assert_int_equal(check(buf), 414);
}

static void
test_headers(void **state)
{
	char	buf[8192];
	size_t	off;
	int	i;

	(void)state;
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\n folded"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\n\tfolded"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost : x"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\n: x"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nNo colon"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\rY: z"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\n\r\nY: z"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\nY: a\x01"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\nY: \x7f"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\nHOST: y"), 400);
	assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\nX\x80: y"), 400);

	/* SB_EDGE_HEADERS_MAX lines pass, one more is 431. */
	off = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: x");
	for (i = 1; i < SB_EDGE_HEADERS_MAX; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off,
		    "\r\nX-%d: y", i);
	assert_int_equal(check(buf), 0);
	snprintf(buf + off, sizeof(buf) - off, "\r\nX-last: y");
	assert_int_equal(check(buf), 431);
}

static void
test_framing(void **state)
{
	const char	*bad[] = {
		"Content-Length: 1\r\nContent-Length: 2",
		"Content-Length: 1, 2", "Content-Length: ", "Content-Length: -1",
		"Content-Length: +1", "Content-Length: 0x1", "Content-Length: 1 1",
		"Content-Length: 1,", "Content-Length: ,1", "Content-Length: 1e3",
		"Content-Length: 1\r\nTransfer-Encoding: chunked",
		"Transfer-Encoding: chunked\r\nContent-Length: 1",
		"Transfer-Encoding: gzip", "Transfer-Encoding: gzip, chunked",
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
		"Transfer-Encoding: chunked, chunked",
	};
	char		 buf[512];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: x\r\n%s",
		    bad[i]);
		assert_int_equal(check(buf), 400);
	}
	assert_int_equal(check("POST / HTTP/1.0\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked"), 400);
	assert_int_equal(check("POST / HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 1234567890123456789"), 413);
	assert_int_equal(check("POST / HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 999999999999999999"), 0);
	assert_int_equal(clen, 999999999999999999LL);
	assert_int_equal(check("POST / HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 0"), 0);
	assert_int_equal(clen, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_framing),
	};

	return (cmocka_run_group_tests_name("edge", tests, NULL, NULL));
}
