/*
 * Images of the media plugin: the stored form of an upload and its
 * thumbnail.
 *
 * Stored form: the bytes are decoded and re-encoded in their own format,
 * so what is stored (and what sha256, size, width and height describe)
 * is a clean image:
 *   libvips' own sniffing must agree with libmagic (no polyglot reaching
 *   another decoder); the header alone is checked against max_pixels
 *   before anything is decoded; the decode fails on truncation;
 *   EXIF orientation applied (then dropped); CMYK converted to sRGB with
 *   the embedded profile or a built-in CMYK one; another embedded
 *   profile applied to sRGB; 16-bit reduced to 8; alpha kept (PNG,
 *   WebP); saved with strip (EXIF, GPS, XMP, IPTC, ICC, comments gone)
 *   and fixed options, so the same upload gives the same bytes.
 *   Anything after the image's end (an appended zip or HTML) is gone.
 * An animated WebP is re-encoded with every frame for a sticker and
 * refused (422 ANIMATED) for the other purposes.
 *
 * Thumbnails: vips_thumbnail_buffer (shrink-on-load), never enlarged,
 * into MEDIA_THUMB_BOX; JPEG quality 80, or PNG when there is alpha (a
 * JPEG would need a background colour the console does not know).
 *
 * Only buffer loaders and savers are used: the workers are chrooted and
 * media.c (media_vips_init) blocks every other libvips loader.
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vips/vips.h>

#include "image.h"

#define STORE_JPEG_Q	85
#define STORE_WEBP_Q	85
#define THUMB_JPEG_Q	80
#define PNG_LEVEL	6

static const struct {
	const char	*mime;
	const char	*loader;
} loaders[] = {
	{ "image/jpeg", "VipsForeignLoadJpegBuffer" },
	{ "image/png", "VipsForeignLoadPngBuffer" },
	{ "image/webp", "VipsForeignLoadWebpBuffer" },
	{ NULL, NULL }
};

/* Replace *img by next (which may be NULL on error); -1 when NULL. */
static int
step(VipsImage **img, VipsImage *next)
{
	g_object_unref(*img);
	*img = next;
	return (next == NULL ? -1 : 0);
}

static uint32_t
le32(const unsigned char *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24);
}

static void
le32_put(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

/*
 * libvips 8.14 writes an EXIF chunk into an animated WebP even with
 * strip: drop the EXIF, XMP and ICCP chunks of a WebP in place and clear
 * their VP8X flags.  -1 when the container is not what libwebp writes.
 */
static int
webp_strip(unsigned char *b, size_t *len)
{
	size_t		o, w, n, x;
	uint32_t	sz;

	if (*len < 12 || memcmp(b, "RIFF", 4) != 0 ||
	    memcmp(b + 8, "WEBP", 4) != 0)
		return (-1);
	x = 0;
	for (o = w = 12; o + 8 <= *len; o += n) {
		sz = le32(b + o + 4);
		n = 8 + (size_t)sz + (sz & 1);
		if (n > *len - o)
			return (-1);
		if (memcmp(b + o, "EXIF", 4) == 0 ||
		    memcmp(b + o, "XMP ", 4) == 0 ||
		    memcmp(b + o, "ICCP", 4) == 0)
			continue;
		if (memcmp(b + o, "VP8X", 4) == 0)
			x = w;
		memmove(b + w, b + o, n);
		w += n;
	}
	if (o != *len)
		return (-1);
	if (x != 0 && w - x > 8)
		b[x + 8] &= (unsigned char)~(0x20 | 0x08 | 0x04);
	le32_put(b + 4, (uint32_t)(w - 8));
	*len = w;
	return (0);
}

/* *img in sRGB (or 8-bit grey), 8 bits per band, alpha untouched. */
static int
to_srgb8(VipsImage **img)
{
	VipsInterpretation	 in;
	VipsImage		*t;

	in = vips_image_get_interpretation(*img);
	if (in == VIPS_INTERPRETATION_CMYK) {
		t = NULL;
		if (vips_icc_transform(*img, &t, "srgb", "input_profile",
		    "cmyk", "embedded", TRUE, "depth", 8, NULL) != 0)
			return (step(img, NULL));
		if (step(img, t) == -1)
			return (-1);
	} else if (vips_image_get_typeof(*img, VIPS_META_ICC_NAME) != 0 &&
	    (in == VIPS_INTERPRETATION_sRGB || in == VIPS_INTERPRETATION_RGB16)) {
		/* A wide-gamut or odd profile: to sRGB.  A profile lcms
		 * cannot use is ignored (the pixels are taken as sRGB). */
		t = NULL;
		if (vips_icc_transform(*img, &t, "srgb", "embedded", TRUE,
		    "depth", 8, NULL) == 0) {
			if (step(img, t) == -1)
				return (-1);
		} else
			vips_error_clear();
	}
	in = vips_image_get_interpretation(*img);
	t = NULL;
	if (vips_colourspace(*img, &t, in == VIPS_INTERPRETATION_B_W ||
	    in == VIPS_INTERPRETATION_GREY16 ? VIPS_INTERPRETATION_B_W :
	    VIPS_INTERPRETATION_sRGB, NULL) != 0 || step(img, t) == -1)
		return (-1);
	if (vips_image_get_format(*img) != VIPS_FORMAT_UCHAR) {
		t = NULL;
		if (vips_cast_uchar(*img, &t, NULL) != 0 ||
		    step(img, t) == -1)
			return (-1);
	}
	return (0);
}

int
media_image_store(const void *buf, size_t len, const char *mime,
    int animated_ok, uint64_t max_pixels, struct media_image *out,
    const char **code, char *err, size_t errlen)
{
	VipsImage	*hdr, *img, *t;
	const char	*loader, *want;
	uint64_t	 pixels;
	int		 i, pages, orient, rc;
	void		*data;
	size_t		 dlen;

	memset(out, 0, sizeof(*out));
	*code = "INVALID_FORMAT";
	want = NULL;
	for (i = 0; loaders[i].mime != NULL; i++)
		if (strcmp(loaders[i].mime, mime) == 0)
			want = loaders[i].loader;
	if (want == NULL) {
		*code = NULL;
		(void)snprintf(err, errlen, "%s cannot be re-encoded", mime);
		return (-1);
	}
	loader = vips_foreign_find_load_buffer(buf, len);
	if (loader == NULL || strcmp(loader, want) != 0) {
		vips_error_clear();
		(void)snprintf(err, errlen, "the image cannot be read");
		return (-1);
	}

	/* The header only: nothing is decoded here. */
	if ((hdr = vips_image_new_from_buffer(buf, len, "", "access",
	    VIPS_ACCESS_SEQUENTIAL, NULL)) == NULL) {
		vips_error_clear();
		(void)snprintf(err, errlen, "the image cannot be read");
		return (-1);
	}
	pages = vips_image_get_n_pages(hdr);
	orient = vips_image_get_orientation(hdr);
	pixels = (uint64_t)vips_image_get_width(hdr) *
	    (uint64_t)vips_image_get_height(hdr);
	g_object_unref(hdr);
	if (pages > 1 && strcmp(mime, "image/webp") != 0)
		pages = 1;	/* other formats: the first image only */
	if (pages > 1 && !animated_ok) {
		*code = "ANIMATED";
		(void)snprintf(err, errlen, "animated images are accepted "
		    "as stickers only");
		return (-1);
	}
	if (max_pixels > 0 && (pixels > max_pixels ||
	    pixels * (uint64_t)pages > max_pixels)) {
		*code = "TOO_LARGE";
		(void)snprintf(err, errlen, "the image has too many pixels");
		return (-1);
	}

	/* Rotation needs the whole image; otherwise decode as it streams. */
	if (pages > 1)
		img = vips_image_new_from_buffer(buf, len, "", "access",
		    VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_TRUNCATED,
		    "n", -1, NULL);
	else
		img = vips_image_new_from_buffer(buf, len, "", "access",
		    orient > 1 ? VIPS_ACCESS_RANDOM : VIPS_ACCESS_SEQUENTIAL,
		    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
	if (img == NULL) {
		vips_error_clear();
		(void)snprintf(err, errlen, "the image cannot be read");
		return (-1);
	}
	rc = -1;
	data = NULL;
	/* (an animation is a strip of frames: not rotated as a whole) */
	if (orient > 1 && pages == 1) {
		t = NULL;
		if (vips_autorot(img, &t, NULL) != 0 || step(&img, t) == -1)
			goto bad;
	}
	if (to_srgb8(&img) == -1)
		goto bad;
	if (strcmp(mime, "image/jpeg") == 0)
		i = vips_jpegsave_buffer(img, &data, &dlen, "Q", STORE_JPEG_Q,
		    "strip", TRUE, "optimize_coding", TRUE, NULL);
	else if (strcmp(mime, "image/png") == 0)
		i = vips_pngsave_buffer(img, &data, &dlen, "strip", TRUE,
		    "compression", PNG_LEVEL, NULL);
	else
		i = vips_webpsave_buffer(img, &data, &dlen, "Q", STORE_WEBP_Q,
		    "strip", TRUE, NULL);
	if (i != 0)
		goto bad;
	if (strcmp(mime, "image/webp") == 0 && webp_strip(data, &dlen) == -1) {
		*code = NULL;
		(void)snprintf(err, errlen, "libwebp wrote an unexpected file");
		g_free(data);
		g_object_unref(img);
		return (-1);
	}
	out->data = data;
	out->len = dlen;
	out->width = vips_image_get_width(img);
	out->height = vips_image_get_page_height(img);
	(void)snprintf(out->mime, sizeof(out->mime), "%s", mime);
	*code = NULL;
	rc = 0;
	goto done;
bad:
	/* Decoding is lazy: a truncated or corrupt body fails here. */
	vips_error_clear();
	*code = "INVALID_FORMAT";
	(void)snprintf(err, errlen, "the image is truncated or corrupt");
done:
	if (img != NULL)
		g_object_unref(img);
	return (rc);
}

int
media_image_thumb(const void *buf, size_t len, int box,
    struct media_image *out, char *err, size_t errlen)
{
	VipsImage	*img;
	void		*data;
	size_t		 dlen;
	int		 alpha, rc;

	memset(out, 0, sizeof(*out));
	img = NULL;
	if (vips_thumbnail_buffer((void *)(uintptr_t)buf, len, &img, box,
	    "height", box, "size", VIPS_SIZE_DOWN, NULL) != 0)
		goto bad;
	if (to_srgb8(&img) == -1)
		goto bad;
	alpha = vips_image_hasalpha(img);
	if (alpha)
		rc = vips_pngsave_buffer(img, &data, &dlen, "strip", TRUE,
		    "compression", PNG_LEVEL, NULL);
	else	/* a grey image's thumbnail is a grey JPEG */
		rc = vips_jpegsave_buffer(img, &data, &dlen, "Q", THUMB_JPEG_Q,
		    "strip", TRUE, "optimize_coding", TRUE, NULL);
	if (rc != 0)
		goto bad;
	out->data = data;
	out->len = dlen;
	out->width = vips_image_get_width(img);
	out->height = vips_image_get_height(img);
	(void)snprintf(out->mime, sizeof(out->mime), "%s", alpha ?
	    "image/png" : "image/jpeg");
	g_object_unref(img);
	return (0);
bad:
	(void)snprintf(err, errlen, "thumbnail: %s", vips_error_buffer());
	vips_error_clear();
	if (img != NULL)
		g_object_unref(img);
	return (-1);
}

void
media_image_free(struct media_image *im)
{
	g_free(im->data);
	im->data = NULL;
	im->len = 0;
}
