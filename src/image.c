/*
 * Image validation and normalisation: what an uploaded picture must pass
 * before the host stores it, and the one form it is stored in.
 *
 *   bytes -> libmagic: JPEG, PNG, WebP or GIF, and what the client said
 *         -> the libvips loader for that type must be the one libvips
 *            itself would pick (no polyglot reaching another decoder)
 *         -> header only: width x height within max_pixels, so a small
 *            file claiming a huge canvas is refused before it is decoded
 *         -> thumbnail (shrink-on-load where the format allows), centre
 *            crop, sRGB, alpha over white, 8 bits
 *         -> JPEG quality 85 with all metadata stripped (EXIF, GPS, XMP,
 *            ICC, comments)
 *
 * libmagic and libvips are initialised in the parent: the magic database
 * is outside the workers' chroot, and libvips' setup is cheaper once than
 * per worker.  Decoding happens in the worker, inside the sandbox, with
 * every loader but the four accepted ones blocked.
 */

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <magic.h>
#include <vips/vips.h>
#include <vips/vector.h>

#include "sb.h"
#include "image.h"
#include "text.h"

#define JPEG_QUALITY	85

/* Refuse with a client-facing code and reason; evaluates to -1. */
#define FAIL(c, ...)							\
	(*code = (c), sb_seterr(err, errlen, __VA_ARGS__), -1)

/* The accepted types: libmagic's name, a label for messages, the libvips
 * loader that must read it, and the aliases a client may declare. */
static const struct image_format {
	const char	*mime;
	const char	*label;
	const char	*loader;
	const char	*alias[3];
} formats[] = {
	{ "image/jpeg", "JPEG", "VipsForeignLoadJpegBuffer",
	  { "image/jpg", "image/pjpeg", NULL } },
	{ "image/png", "PNG", "VipsForeignLoadPngBuffer",
	  { "image/x-png", NULL } },
	{ "image/webp", "WebP", "VipsForeignLoadWebpBuffer", { NULL } },
	{ "image/gif", "GIF", "VipsForeignLoadNsgifBuffer", { NULL } },
	{ NULL, NULL, NULL, { NULL } }
};

static magic_t	image_magic = NULL;

static const struct image_format *format_for(const char *);
static int	declared_matches(const char *, const struct image_format *);
static void	log_vips(const char *what);

int
sb_image_init(void)
{
	int	i;

	if (image_magic != NULL)
		return (0);

	/* MIME type only; none of the checks that can spawn or decompress. */
	image_magic = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS |
	    MAGIC_NO_CHECK_TAR | MAGIC_NO_CHECK_ELF | MAGIC_NO_CHECK_CDF |
	    MAGIC_NO_CHECK_ENCODING);
	if (image_magic == NULL) {
		sb_log(SB_LOG_ERROR, "image", "magic_open failed");
		return (-1);
	}
	if (magic_load(image_magic, NULL) == -1) {
		sb_log(SB_LOG_ERROR, "image", "magic_load: %s",
		    magic_error(image_magic));
		magic_close(image_magic);
		image_magic = NULL;
		return (-1);
	}

	if (VIPS_INIT("switchboard") != 0) {
		log_vips("VIPS_INIT");
		magic_close(image_magic);
		image_magic = NULL;
		return (-1);
	}
	/* ORC compiles code into W+X pages, which the sandbox refuses. */
	vips_vector_set_enabled(FALSE);
	/* One thread per pipeline: a worker is one event loop, and
	 * requests in other workers run in parallel anyway. */
	vips_concurrency_set(1);
	/* Every upload is a new image: caching only holds memory. */
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	/* Only the four accepted decoders may run at all. */
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (i = 0; formats[i].mime != NULL; i++)
		vips_operation_block_set(formats[i].loader, FALSE);
	return (0);
}

int
sb_image_normalize(const void *in, size_t len, const char *declared_type,
    size_t max_pixels, int size, struct sb_image *out, char *err,
    size_t errlen, const char **code)
{
	const struct image_format	*fmt;
	const char			*sniffed, *loader, *unused;
	VipsImage			*hdr, *thumb, *t1, *t2, *t3;
	VipsArrayDouble			*white;
	void				*buf;
	size_t				 buflen;
	uint64_t			 pixels;
	int				 rc;

	if (code == NULL)
		code = &unused;
	memset(out, 0, sizeof(*out));
	hdr = thumb = t1 = t2 = t3 = NULL;
	buf = NULL;
	rc = -1;

	if (image_magic == NULL || size <= 0 || size > 4096)
		return (FAIL("INTERNAL", "image processing is not available"));
	if (in == NULL || len == 0)
		return (FAIL("INVALID_FORMAT", "the file is empty"));

	if ((sniffed = magic_buffer(image_magic, in, len)) == NULL ||
	    (fmt = format_for(sniffed)) == NULL)
		return (FAIL("UNSUPPORTED_MEDIA_TYPE", "not a supported "
		    "image: send " SB_IMAGE_TYPES));
	if (!declared_matches(declared_type, fmt))
		return (FAIL("UNSUPPORTED_MEDIA_TYPE", "the declared content "
		    "type does not match the file (%s)", fmt->mime));

	/* libvips sniffs on its own: it must agree with libmagic. */
	loader = vips_foreign_find_load_buffer(in, len);
	if (loader == NULL || strcmp(loader, fmt->loader) != 0) {
		vips_error_clear();
		return (FAIL("INVALID_FORMAT", "the file is not a valid %s "
		    "image", fmt->label));
	}

	/* The header alone: nothing is decoded yet. */
	hdr = vips_image_new_from_buffer(in, len, "", "access",
	    VIPS_ACCESS_SEQUENTIAL, NULL);
	if (hdr == NULL) {
		log_vips("header");
		(void)FAIL("INVALID_FORMAT", "the file is not a valid %s "
		    "image", fmt->label);
		goto out;
	}
	pixels = (uint64_t)vips_image_get_width(hdr) *
	    (uint64_t)vips_image_get_height(hdr);
	if (pixels > max_pixels) {
		(void)FAIL("TOO_LARGE", "the image is %dx%d pixels; at most "
		    "%zu megapixels are accepted",
		    vips_image_get_width(hdr), vips_image_get_height(hdr),
		    max_pixels / 1000000);
		goto out;
	}

	/*
	 * Decoding happens lazily, inside jpegsave below, so a truncated or
	 * corrupt body fails there.  fail_on=truncated turns libvips'
	 * default (grey fill and a warning) into an error.
	 */
	if (vips_thumbnail_buffer((void *)(uintptr_t)in, len, &thumb, size,
	    "height", size, "crop", VIPS_INTERESTING_CENTRE,
	    "size", VIPS_SIZE_BOTH, "option_string", "fail_on=truncated",
	    NULL) != 0) {
		log_vips("thumbnail");
		(void)FAIL("INVALID_FORMAT", "the image could not be "
		    "decoded");
		goto out;
	}
	if (vips_colourspace(thumb, &t1, VIPS_INTERPRETATION_sRGB, NULL) != 0)
		goto decode;
	if (vips_image_hasalpha(t1)) {
		white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
		if (vips_flatten(t1, &t2, "background", white, NULL) != 0) {
			vips_area_unref(VIPS_AREA(white));
			goto decode;
		}
		vips_area_unref(VIPS_AREA(white));
	} else {
		t2 = t1;
		g_object_ref(t2);
	}
	if (vips_cast_uchar(t2, &t3, NULL) != 0)
		goto decode;
	if (vips_jpegsave_buffer(t3, &buf, &buflen, "Q", JPEG_QUALITY,
	    "strip", TRUE, "optimize_coding", TRUE, "interlace", FALSE,
	    NULL) != 0)
		goto decode;

	snprintf(out->mime, sizeof(out->mime), "image/jpeg");
	out->width = vips_image_get_width(t3);
	out->height = vips_image_get_height(t3);
	out->data = buf;
	out->len = buflen;
	buf = NULL;
	rc = 0;
	goto out;

decode:
	log_vips("decode");
	(void)FAIL("INVALID_FORMAT", "the image could not be "
	    "decoded");
out:
	g_free(buf);
	if (t3 != NULL)
		g_object_unref(t3);
	if (t2 != NULL)
		g_object_unref(t2);
	if (t1 != NULL)
		g_object_unref(t1);
	if (thumb != NULL)
		g_object_unref(thumb);
	if (hdr != NULL)
		g_object_unref(hdr);
	return (rc);
}

void
sb_image_free(struct sb_image *img)
{
	if (img == NULL)
		return;
	g_free(img->data);	/* vips_jpegsave_buffer's g_malloc */
	img->data = NULL;
	img->len = 0;
}

static const struct image_format *
format_for(const char *mime)
{
	int	i;

	for (i = 0; formats[i].mime != NULL; i++) {
		if (strcmp(formats[i].mime, mime) == 0)
			return (&formats[i]);
	}
	return (NULL);
}

/*
 * The client's claim, "type/subtype; params", against the sniffed format.
 * No claim, or the generic application/octet-stream a client sends when it
 * does not know, defers to the bytes.
 */
static int
declared_matches(const char *declared, const struct image_format *fmt)
{
	char	type[64];
	size_t	n;
	int	i;

	if (declared == NULL)
		return (1);
	while (*declared == ' ' || *declared == '\t')
		declared++;
	n = strcspn(declared, "; \t");
	if (n == 0)
		return (1);
	if (n >= sizeof(type))
		return (0);
	for (i = 0; (size_t)i < n; i++)
		type[i] = (char)tolower((unsigned char)declared[i]);
	type[n] = '\0';

	if (strcmp(type, "application/octet-stream") == 0 ||
	    strcmp(type, fmt->mime) == 0)
		return (1);
	for (i = 0; fmt->alias[i] != NULL; i++) {
		if (strcmp(type, fmt->alias[i]) == 0)
			return (1);
	}
	return (0);
}

/* libvips' own words stay in the log: they name internals. */
static void
log_vips(const char *what)
{
	char	msg[256];
	size_t	n;

	snprintf(msg, sizeof(msg), "%s", vips_error_buffer());
	vips_error_clear();
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	sb_log(SB_LOG_INFO, "image", "%s refused: %s", what, msg);
}
