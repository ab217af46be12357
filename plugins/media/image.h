/*
 * The media plugin's image work (image.c): the one form an uploaded
 * picture is stored in (re-encoded, metadata stripped), and its
 * thumbnail.  Buffers only: the workers are chrooted and the host lets
 * libvips use its buffer loaders alone.
 */

#ifndef MEDIA_IMAGE_H
#define MEDIA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define MEDIA_THUMB_BOX		320	/* a thumbnail fits in 320 x 320 */

struct media_image {
	void		*data;		/* the encoded bytes (media_image_free) */
	size_t		 len;
	int		 width;
	int		 height;	/* of one frame, for an animation */
	char		 mime[16];
};

/*
 * Decode buf (of type mime: image/jpeg, image/png or image/webp) and
 * re-encode it in the same format: autorotated by its EXIF orientation,
 * sRGB (CMYK converted, an embedded profile applied), 8 bits, alpha kept
 * (PNG, WebP), every metadata block stripped.  An animated WebP is kept
 * animated when animated_ok, else refused.  0, or -1 with *code (a field
 * error code: INVALID_FORMAT, TOO_LARGE, ANIMATED; NULL for a server
 * fault) and err.
 */
int	media_image_store(const void *buf, size_t len, const char *mime,
	    int animated_ok, uint64_t max_pixels, struct media_image *out,
	    const char **code, char *err, size_t errlen);

/*
 * A thumbnail of a stored image (shrink-on-load, never enlarged) fitting
 * in box x box: JPEG, or PNG when the image has alpha.  0 or -1 with err.
 */
int	media_image_thumb(const void *buf, size_t len, int box,
	    struct media_image *out, char *err, size_t errlen);

void	media_image_free(struct media_image *);

#endif /* MEDIA_IMAGE_H */
