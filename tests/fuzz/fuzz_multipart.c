/*
 * libFuzzer harness for the multipart/form-data parser (src/multipart.c).
 * The input is "CONTENT-TYPE\nBODY".  The body is walked twice: in memory
 * and through a read callback with the smallest window the parser takes
 * (header blocks limited to 64 bytes in both walks, so the window slides
 * many times even over the fuzzer's short inputs).  Every part returned
 * must lie inside the body, its strings must be terminated within their
 * buffers, both walks must give the same parts and the same ending, and
 * finished walks must stay finished.  A third walk whose reads fail
 * part-way must fail, not loop or read out of bounds.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Iinclude -Isrc -o build/fuzz/fuzz_multipart tests/fuzz/fuzz_multipart.c src/multipart.c
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "multipart.h"

#define HMAX	64
#define WIN	SB_MULTIPART_WINDOW_MIN(HMAX)

struct src {
	const uint8_t	*body;
	size_t		 len;
	uint64_t	 fail_at;	/* reads reaching past this fail */
};

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static ssize_t
src_read(void *arg, uint64_t off, void *buf, size_t len)
{
	struct src	*s = arg;

	/* The parser never asks past the end, nor more than its window. */
	if (off > s->len || len > s->len - off || len > WIN)
		abort();
	if (off + len > s->fail_at)
		return (-1);
	memcpy(buf, s->body + off, len);
	return ((ssize_t)len);
}

static void
check_part(const struct sb_multipart_part *part, size_t blen)
{
	if (part->off > blen || part->len > blen - part->off)
		abort();
	if (strlen(part->name) >= sizeof(part->name) ||
	    strlen(part->filename) >= sizeof(part->filename) ||
	    strlen(part->content_type) >= sizeof(part->content_type))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_multipart		 m, r;
	struct sb_multipart_part	 part, rpart;
	struct src			 s;
	unsigned char			 win[WIN];
	const uint8_t			*nl, *body;
	char				 ctype[256];
	size_t				 clen, blen, n;
	int				 rc, rrc;

	if ((nl = memchr(data, '\n', size)) == NULL)
		return (0);
	clen = (size_t)(nl - data);
	if (clen >= sizeof(ctype) || memchr(data, '\0', clen) != NULL)
		return (0);
	memcpy(ctype, data, clen);
	ctype[clen] = '\0';
	body = nl + 1;
	blen = size - clen - 1;

	if (sb_multipart_init(&m, ctype, body, blen) == -1) {
		if (sb_multipart_check(ctype) != -1)
			abort();
		return (0);
	}
	if (sb_multipart_check(ctype) != 0)
		abort();
	m.hmax = HMAX;
	s.body = body;
	s.len = blen;
	s.fail_at = UINT64_MAX;
	if (sb_multipart_init_read(&r, ctype, blen, src_read, &s, win,
	    sizeof(win) - 1, HMAX) != -1)
		abort();	/* a window below the minimum is refused */
	if (sb_multipart_init_read(&r, ctype, blen, src_read, &s, win,
	    sizeof(win), HMAX) != 0)
		abort();

	for (n = 0;; n++) {
		rc = sb_multipart_next(&m, &part);
		rrc = sb_multipart_next(&r, &rpart);
		if (rc != rrc)
			abort();
		if (rc != 1)
			break;
		check_part(&part, blen);
		if (part.data != body + part.off || rpart.data != NULL)
			abort();
		if (part.off != rpart.off || part.len != rpart.len ||
		    part.has_filename != rpart.has_filename ||
		    strcmp(part.name, rpart.name) != 0 ||
		    strcmp(part.filename, rpart.filename) != 0 ||
		    strcmp(part.content_type, rpart.content_type) != 0)
			abort();
		if (n > size)
			abort();	/* more parts than bytes: no progress */
	}
	if (r.io_error)
		abort();
	/* Finished walks stay finished. */
	if (sb_multipart_next(&m, &part) != rc ||
	    sb_multipart_next(&r, &rpart) != rc)
		abort();

	/* Reads failing part-way: the walk ends in an error or, when the
	 * failure lies past what it needed, as before. */
	if (blen > 0) {
		s.fail_at = (uint64_t)(data[0] % blen);
		(void)sb_multipart_init_read(&r, ctype, blen, src_read, &s,
		    win, sizeof(win), HMAX);
		for (n = 0; (rrc = sb_multipart_next(&r, &rpart)) == 1; n++) {
			check_part(&rpart, blen);
			if (n > size)
				abort();
		}
		if (rrc == -1 && !r.io_error && rc != -1)
			abort();	/* only a read error may change the end */
		if (r.io_error && rrc != -1)
			abort();
	}
	return (0);
}
