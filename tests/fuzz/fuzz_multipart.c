/*
 * libFuzzer harness for the multipart/form-data parser (src/multipart.c).
 * The input is "CONTENT-TYPE\nBODY": every part returned must lie inside
 * the body, its strings must be terminated within their buffers, and the
 * walk must end.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Iinclude -Isrc -o build/fuzz/fuzz_multipart tests/fuzz/fuzz_multipart.c src/multipart.c
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_multipart		 m;
	struct sb_multipart_part	 part;
	const uint8_t			*nl;
	char				 ctype[256];
	size_t				 clen, n;
	int				 rc;

	if ((nl = memchr(data, '\n', size)) == NULL)
		return (0);
	clen = (size_t)(nl - data);
	if (clen >= sizeof(ctype) || memchr(data, '\0', clen) != NULL)
		return (0);
	memcpy(ctype, data, clen);
	ctype[clen] = '\0';

	if (sb_multipart_init(&m, ctype, nl + 1, size - clen - 1) == -1)
		return (0);
	for (n = 0; (rc = sb_multipart_next(&m, &part)) == 1; n++) {
		if (part.data < nl + 1 || part.data + part.len > data + size)
			abort();
		if (strlen(part.name) >= sizeof(part.name) ||
		    strlen(part.filename) >= sizeof(part.filename) ||
		    strlen(part.content_type) >= sizeof(part.content_type))
			abort();
		if (n > size)
			abort();	/* more parts than bytes: no progress */
	}
	/* Finished walks stay finished. */
	if (sb_multipart_next(&m, &part) != rc)
		abort();
	return (0);
}
