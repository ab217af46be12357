/*
 * The HTTP edge: the rules a request head must meet before anything
 * reads it.  Pure code (no Kore, no allocation), so it is unit-tested and
 * fuzzed on its own; Kore calls it through the head hook that
 * patches/kore/0006 adds (host.c installs it).  docs/ARCHITECTURE.md,
 * "The HTTP edge", lists every limit and where it is enforced.
 */

#ifndef SB_EDGE_H
#define SB_EDGE_H

#include <stddef.h>

/* The longest request target (path and query) taken: Kore's own
 * HTTP_URI_LEN less its terminator and margin. */
#define SB_EDGE_TARGET_MAX	1998

/* Header lines per request: Kore keeps 64 lines, the request line one. */
#define SB_EDGE_HEADERS_MAX	63

/* What sb_edge_head() reports of the declared body (flags). */
#define SB_EDGE_CHUNKED		0x01
#define SB_EDGE_EXPECT_CONTINUE	0x02

/*
 * Check the head of a request: the request line and header lines, as
 * received, without the blank line that ends them.  Returns 0 when Kore
 * may go on, or the HTTP status to refuse it with (400 malformed, 413 a
 * Content-Length no body could fit, 414 target too long, 431 too many
 * header lines).  *clen gets the declared Content-Length (-1: none);
 * *flags the SB_EDGE_* flags.
 */
int	sb_edge_head(const char *head, size_t len, long long *clen,
	    int *flags);

#endif /* SB_EDGE_H */
