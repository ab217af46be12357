/*
 * multipart/form-data (RFC 7578) over a body held in memory: a pure
 * parser (no Kore, no allocation), fuzzed by tests/fuzz/fuzz_multipart.c.
 *
 * Kore's own parser drops each part's Content-Type and needs the form
 * declared in kore.conf; uploads need the declared type (it is checked
 * against the bytes) and the host routes everything through one handler.
 */

#ifndef SB_MULTIPART_H
#define SB_MULTIPART_H

#include <stddef.h>

#define SB_MULTIPART_BOUNDARY_MAX	70	/* RFC 2046 */

struct sb_multipart {
	const unsigned char	*buf;		/* borrowed: the whole body */
	size_t			 len;
	size_t			 off;		/* after the last delimiter */
	char			 delim[SB_MULTIPART_BOUNDARY_MAX + 5];
	size_t			 dlen;		/* "\r\n--" boundary */
	int			 done;
};

/* One part.  data points into the body (borrowed); the strings are
 * copies, truncated parts refused rather than cut. */
struct sb_multipart_part {
	char			 name[128];
	char			 filename[256];	/* "" when absent */
	char			 content_type[128]; /* "" when absent */
	int			 has_filename;
	const unsigned char	*data;
	size_t			 len;
};

/*
 * Prepares to walk `body` (borrowed for the walk) given the request's
 * Content-Type.  Returns 0, or -1 when the type is not
 * multipart/form-data with a usable boundary.
 */
int	sb_multipart_init(struct sb_multipart *, const char *content_type,
	    const void *body, size_t len);

/* 1 with the next part in *part, 0 at the closing delimiter, -1 when the
 * body is malformed (no delimiter, unterminated headers or part). */
int	sb_multipart_next(struct sb_multipart *, struct sb_multipart_part *);

#endif /* SB_MULTIPART_H */
