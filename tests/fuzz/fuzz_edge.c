/*
 * libFuzzer harness for the request-head rules (src/edge.c), which see
 * every byte a client sends before Kore parses it.  Beyond not crashing:
 * the status is one of the documented ones, and a head that passes has
 * a sane Content-Length and never both a length and chunked framing.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Iinclude -Isrc -o build/fuzz/fuzz_edge tests/fuzz/fuzz_edge.c src/edge.c
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*head;
	long long	 clen;
	int		 flags, status;

	/* An exact-size copy, so ASan sees any read past the end. */
	if ((head = malloc(size > 0 ? size : 1)) == NULL)
		return (0);
	memcpy(head, data, size);
	status = sb_edge_head(head, size, &clen, &flags);
	switch (status) {
	case 0:
		if (clen < -1 || ((flags & SB_EDGE_CHUNKED) && clen != -1))
			abort();
		if (flags & ~(SB_EDGE_CHUNKED | SB_EDGE_EXPECT_CONTINUE))
			abort();
		break;
	case 400:
	case 413:
	case 414:
	case 431:
		break;
	default:
		abort();
	}
	free(head);
	return (0);
}
