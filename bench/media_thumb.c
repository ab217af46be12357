/*
 * The media plugin's image code (plugins/media/image.c) timed on files:
 * for each file, read it into memory and make its thumbnail exactly as
 * the job media.thumbnail does (media_image_thumb, MEDIA_THUMB_BOX), or
 * with -s its stored form as an upload does (media_image_store).  libvips
 * is set up as the host sets it up for the workers (src/image.c): no ORC
 * vector code (the sandbox refuses W+X pages), one thread per pipeline,
 * no operation cache.  Prints one line per file (milliseconds) and the
 * mean; the time covers reading the file, decoding, shrinking and
 * encoding, not writing the result.
 *
 *   media_thumb [-s] file.jpg ...
 */

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>
#include <vips/vector.h>

#include "../plugins/media/image.h"

static double
now_ms(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
}

static void *
slurp(const char *path, size_t *len)
{
	FILE	*f;
	void	*buf;
	long	 n;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0)
		err(1, "%s", path);
	if ((buf = malloc((size_t)n)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		err(1, "%s", path);
	(void)fclose(f);
	*len = (size_t)n;
	return (buf);
}

int
main(int argc, char **argv)
{
	struct media_image	 im;
	const char		*code;
	char			 e[256];
	void			*buf;
	size_t			 len;
	double			 t0, t, sum;
	int			 i, first, store, rc;

	store = argc > 1 && strcmp(argv[1], "-s") == 0;
	first = store ? 2 : 1;
	if (argc <= first) {
		fprintf(stderr, "usage: media_thumb [-s] file ...\n");
		return (2);
	}
	if (VIPS_INIT(argv[0]) != 0)
		errx(1, "VIPS_INIT");
	vips_vector_set_enabled(FALSE);
	vips_concurrency_set(1);
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	sum = 0;
	for (i = first; i < argc; i++) {
		t0 = now_ms();
		buf = slurp(argv[i], &len);
		if (store)
			rc = media_image_store(buf, len, "image/jpeg", 0,
			    40000000, &im, &code, e, sizeof(e));
		else
			rc = media_image_thumb(buf, len, MEDIA_THUMB_BOX, &im,
			    e, sizeof(e));
		t = now_ms() - t0;
		if (rc != 0)
			errx(1, "%s: %s", argv[i], e);
		printf("%s %dx%d %zu bytes %.1f ms\n", argv[i], im.width,
		    im.height, im.len, t);
		sum += t;
		media_image_free(&im);
		free(buf);
	}
	printf("mean %.1f ms over %d files\n", sum / (argc - first),
	    argc - first);
	return (0);
}
