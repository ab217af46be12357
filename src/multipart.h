/*
 * multipart/form-data (RFC 7578) over a request body held in memory or
 * read through a callback (the file Kore streamed a large body to): a
 * pure parser (no Kore, no allocation), fuzzed by
 * tests/fuzz/fuzz_multipart.c.  A read source is scanned through a
 * window the caller provides, so a body of any size is walked in bounded
 * memory: each part is reported as its header fields and the
 * [off, off + len) range of its content in the body.
 *
 * Kore's own parser drops each part's Content-Type, needs the form
 * declared in kore.conf and reads the whole body into memory; uploads
 * need the declared type (it is checked against the bytes), the host
 * routes everything through one handler, and large bodies stay on disk.
 */

#ifndef SB_MULTIPART_H
#define SB_MULTIPART_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SB_MULTIPART_BOUNDARY_MAX	70	/* RFC 2046 */
#define SB_MULTIPART_HEADERS_MAX	8192	/* one part's header block */
/* Spaces and tabs allowed after a boundary before its CRLF (RFC 2046
 * "transport padding"); a longer run makes the line content. */
#define SB_MULTIPART_PAD_MAX		64
/* The least window a read source needs for a given header limit. */
#define SB_MULTIPART_WINDOW_MIN(hmax)					\
	((hmax) + 4 > SB_MULTIPART_BOUNDARY_MAX + SB_MULTIPART_PAD_MAX + 8 ? \
	(hmax) + 4 : SB_MULTIPART_BOUNDARY_MAX + SB_MULTIPART_PAD_MAX + 8)

/*
 * Reads exactly len bytes of the body at off into buf (the parser never
 * asks past the end).  Returns len, or -1 on an error (the walk then
 * fails with io_error set).
 */
typedef ssize_t	(*sb_multipart_read_cb)(void *arg, uint64_t off, void *buf,
		    size_t len);

struct sb_multipart {
	/* The source: buf (memory), or read + arg through win. */
	const unsigned char	*buf;		/* borrowed: the whole body */
	sb_multipart_read_cb	 read;
	void			*arg;
	unsigned char		*win;		/* borrowed, wcap bytes */
	size_t			 wcap;
	uint64_t		 woff;		/* the window holds */
	size_t			 wlen;		/* [woff, woff + wlen) */
	uint64_t		 len;

	size_t			 hmax;		/* header block limit */
	uint64_t		 off;		/* after the last delimiter */
	char			 delim[SB_MULTIPART_BOUNDARY_MAX + 5];
	size_t			 dlen;		/* "\r\n--" boundary */
	int			 done;
	int			 io_error;	/* a read failed */
};

/* One part.  The strings are copies, over-long ones refused rather than
 * cut.  data points into a memory body (borrowed), NULL for a read
 * source; off is always the content's offset in the body. */
struct sb_multipart_part {
	char			 name[128];
	char			 filename[256];	/* "" when absent */
	char			 content_type[128]; /* "" when absent */
	int			 has_filename;
	const unsigned char	*data;
	uint64_t		 off;
	uint64_t		 len;
};

/*
 * Whether content_type is multipart/form-data with a usable boundary:
 * 0, or -1.  Needs no body: a handler can answer 415 before reading.
 */
int	sb_multipart_check(const char *content_type);

/*
 * Prepares to walk `body` (borrowed for the walk) given the request's
 * Content-Type.  Returns 0, or -1 when the type is not
 * multipart/form-data with a usable boundary.
 */
int	sb_multipart_init(struct sb_multipart *, const char *content_type,
	    const void *body, size_t len);

/*
 * The same over a body of len bytes read through cb, scanned through
 * win (wcap bytes, at least SB_MULTIPART_WINDOW_MIN(hmax), borrowed for
 * the walk).  hmax: the largest header block of a part (0: the default,
 * SB_MULTIPART_HEADERS_MAX).  -1 also for a window that is too small.
 */
int	sb_multipart_init_read(struct sb_multipart *,
	    const char *content_type, uint64_t len, sb_multipart_read_cb cb,
	    void *arg, unsigned char *win, size_t wcap, size_t hmax);

/* 1 with the next part in *part, 0 at the closing delimiter, -1 when the
 * body is malformed (no delimiter, unterminated headers or part) or,
 * with io_error set, could not be read. */
int	sb_multipart_next(struct sb_multipart *, struct sb_multipart_part *);

#endif /* SB_MULTIPART_H */
