/*
 * Image validation and normalisation (image.c): libmagic sniffs the bytes,
 * libvips checks the header and makes a square JPEG thumbnail with every
 * piece of metadata stripped.  Used by the avatar routes (avatar.c); the
 * media plugin reaches it later through the host API.
 */

#ifndef SB_IMAGE_H
#define SB_IMAGE_H

#include <stddef.h>

/* The only content types accepted, whatever the client claims. */
#define SB_IMAGE_TYPES		"JPEG, PNG, WebP or GIF"

/* A normalised image.  data is owned by the struct: sb_image_free(). */
struct sb_image {
	char		 mime[32];	/* always "image/jpeg" */
	int		 width;
	int		 height;
	unsigned char	*data;
	size_t		 len;
};

/*
 * Parent, once, before fork: the magic database (unreadable from inside
 * the chroot), libvips with vectorisation off (its JIT needs W+X memory,
 * which the sandbox denies), one thread per pipeline, no operation cache
 * (every image is new), and every loader but JPEG, PNG, WebP and GIF
 * blocked.  0, or -1 with the reason logged.
 */
int	sb_image_init(void);

/*
 * Worker.  Validates `in` (borrowed) and renders it as a size x size JPEG
 * (centre crop, quality 85, no EXIF/XMP/ICC).  declared_type is the
 * client's Content-Type for the bytes, or NULL; "application/octet-stream"
 * counts as no claim.  On success returns 0 and fills *out (free with
 * sb_image_free()).  On failure returns -1 with a client-safe reason in err
 * and *code set to:
 *   "UNSUPPORTED_MEDIA_TYPE"  not one of the accepted types, or the
 *                             declared type disagrees with the bytes;
 *   "INVALID_FORMAT"          the image does not decode (truncated, corrupt);
 *   "TOO_LARGE"               more than max_pixels (a decompression bomb);
 *   "INTERNAL"                the server's fault (not initialised, memory):
 *                             answer 500, the client did nothing wrong.
 */
int	sb_image_normalize(const void *in, size_t len, const char *declared_type,
	    size_t max_pixels, int size, struct sb_image *out, char *err,
	    size_t errlen, const char **code);

/* Frees what sb_image_normalize() put in the struct; NULL and repeat safe. */
void	sb_image_free(struct sb_image *);

#endif /* SB_IMAGE_H */
