/*
 * Unit tests for the media plugin's readers of what is cheap to read:
 * a zip's central directory against bomb limits (zipcheck.c) and the
 * duration of audio and video from their headers (probe.c).  The files
 * are assembled here from the format specifications.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/media/probe.h"

struct buf {
	unsigned char	*p;
	size_t		 len, cap;
};

static void
put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void
put_le(struct buf *b, uint64_t v, int n)
{
	unsigned char	x[8];
	int		i;

	for (i = 0; i < n; i++)
		x[i] = (v >> (8 * i)) & 0xff;
	put(b, x, (size_t)n);
}

static void
put_be(struct buf *b, uint64_t v, int n)
{
	unsigned char	x[8];
	int		i;

	for (i = 0; i < n; i++)
		x[i] = (v >> (8 * (n - 1 - i))) & 0xff;
	put(b, x, (size_t)n);
}

static void
put_fill(struct buf *b, int c, size_t n)
{
	unsigned char	*z;

	z = malloc(n + 1);
	assert_non_null(z);
	memset(z, c, n);
	put(b, z, n);
	free(z);
}

static int
buf_read(void *arg, uint64_t off, void *out, size_t len)
{
	struct buf	*b = arg;

	if (off > b->len || b->len - off < len)
		return (-1);
	memcpy(out, b->p + off, len);
	return (0);
}

static struct media_reader
reader(struct buf *b)
{
	struct media_reader	rd;

	rd.read = buf_read;
	rd.arg = b;
	rd.len = b->len;
	return (rd);
}

/* --- zips --------------------------------------------------------------- */

struct entry {
	const char	*name;
	uint32_t	 csize, usize;
	int		 zip64;		/* sizes in a ZIP64 extra field */
	uint64_t	 usize64;
};

/* Local headers with csize bytes of filler, then the central directory
 * and its end record. */
static void
zip(struct buf *b, const struct entry *e, size_t n, int cut)
{
	struct buf	cd;
	uint32_t	*off;
	size_t		i, nl;

	memset(&cd, 0, sizeof(cd));
	off = calloc(n, sizeof(*off));
	assert_non_null(off);
	for (i = 0; i < n; i++) {
		off[i] = (uint32_t)b->len;
		nl = strlen(e[i].name);
		put_le(b, 0x04034b50, 4);
		put_fill(b, 0, 14);
		put_le(b, e[i].csize, 4);
		put_le(b, e[i].zip64 ? 0xffffffff : e[i].usize, 4);
		put_le(b, nl, 2);
		put_le(b, 0, 2);
		put(b, e[i].name, nl);
		put_fill(b, 0x55, e[i].csize);
	}
	for (i = 0; i < n; i++) {
		nl = strlen(e[i].name);
		put_le(&cd, 0x02014b50, 4);
		put_le(&cd, 20, 2);
		put_le(&cd, 20, 2);
		put_le(&cd, 0, 2);
		put_le(&cd, 8, 2);
		put_le(&cd, 0, 8);	/* time, date, crc */
		put_le(&cd, e[i].csize, 4);
		put_le(&cd, e[i].zip64 ? 0xffffffff : e[i].usize, 4);
		put_le(&cd, nl, 2);
		put_le(&cd, e[i].zip64 ? 12 : 0, 2);
		put_le(&cd, 0, 2);
		put_fill(&cd, 0, 8);	/* disk, attributes */
		put_le(&cd, off[i], 4);
		put(&cd, e[i].name, nl);
		if (e[i].zip64) {
			put_le(&cd, 0x0001, 2);
			put_le(&cd, 8, 2);
			put_le(&cd, e[i].usize64, 8);
		}
	}
	i = b->len;
	put(b, cd.p, cd.len);
	put_le(b, 0x06054b50, 4);
	put_le(b, 0, 4);
	put_le(b, n, 2);
	put_le(b, n, 2);
	put_le(b, cd.len, 4);
	put_le(b, i, 4);
	put_le(b, 0, 2);
	free(cd.p);
	free(off);
	if (cut > 0)
		b->len -= (size_t)cut;
}

static int
zcheck(struct buf *b, const char **code)
{
	struct media_reader	rd = reader(b);
	char			err[128];

	return (media_zip_check(&rd, code, err, sizeof(err)));
}

static void
test_zip_ok(void **state)
{
	struct entry	e[] = {
		{ "[Content_Types].xml", 300, 1200, 0, 0 },
		{ "word/document.xml", 2000, 9000, 0, 0 },
		/* a highly compressible but small entry is fine */
		{ "word/styles.xml", 100, 900000, 0, 0 },
	};
	struct buf	b;
	const char	*code;

	(void)state;
	memset(&b, 0, sizeof(b));
	zip(&b, e, 3, 0);
	assert_int_equal(zcheck(&b, &code), 0);
	assert_null(code);
	/* a comment after the end record */
	b.p[b.len - 2] = 5;
	put(&b, "hello", 5);
	assert_int_equal(zcheck(&b, &code), 0);
	free(b.p);
}

static void
test_zip_bombs(void **state)
{
	struct entry	ratio[] = { { "a", 1000, 200000000, 0, 0 } };
	struct entry	big64[] = { { "a", 100, 0, 1, 5ULL << 32 } };
	struct entry	many[1100];
	struct buf	b;
	const char	*code;
	size_t		i;

	(void)state;
	memset(&b, 0, sizeof(b));
	zip(&b, ratio, 1, 0);
	assert_int_equal(zcheck(&b, &code), -1);
	assert_string_equal(code, "ZIP_BOMB");
	free(b.p);

	memset(&b, 0, sizeof(b));
	zip(&b, big64, 1, 0);
	assert_int_equal(zcheck(&b, &code), -1);
	assert_string_equal(code, "ZIP_BOMB");
	free(b.p);

	/* each entry under the ratio floor, 1.1 GiB declared in all */
	for (i = 0; i < 1100; i++) {
		many[i].name = "x";
		many[i].csize = 1;
		many[i].usize = 1024 * 1024;
		many[i].zip64 = 0;
	}
	memset(&b, 0, sizeof(b));
	zip(&b, many, 1100, 0);
	assert_int_equal(zcheck(&b, &code), -1);
	assert_string_equal(code, "ZIP_BOMB");
	free(b.p);
}

static void
test_zip_malformed(void **state)
{
	struct entry	e[] = { { "a", 10, 10, 0, 0 } };
	struct buf	b;
	const char	*code;

	(void)state;
	memset(&b, 0, sizeof(b));
	zip(&b, e, 1, 5);
	assert_int_equal(zcheck(&b, &code), -1);
	assert_string_equal(code, "INVALID_FORMAT");
	free(b.p);

	/* the directory's offset points past it */
	memset(&b, 0, sizeof(b));
	zip(&b, e, 1, 0);
	b.p[b.len - 6] = 0xff;
	assert_int_equal(zcheck(&b, &code), -1);
	assert_string_equal(code, "INVALID_FORMAT");
	free(b.p);

	memset(&b, 0, sizeof(b));
	put(&b, "PK\003\004 not really", sizeof("PK\003\004 not really") - 1);
	assert_int_equal(zcheck(&b, &code), -1);
	assert_string_equal(code, "INVALID_FORMAT");
	free(b.p);
}

/* --- durations ------------------------------------------------------------ */

static double
duration(struct buf *b, const char *mime)
{
	struct media_reader	rd = reader(b);

	return (media_duration(&rd, mime));
}

static void
box_begin(struct buf *b, const char *type, size_t *at)
{
	*at = b->len;
	put_be(b, 0, 4);
	put(b, type, 4);
}

static void
box_end(struct buf *b, size_t at)
{
	size_t	n = b->len - at;

	b->p[at] = (n >> 24) & 0xff;
	b->p[at + 1] = (n >> 16) & 0xff;
	b->p[at + 2] = (n >> 8) & 0xff;
	b->p[at + 3] = n & 0xff;
}

static void
test_mp4(void **state)
{
	struct buf	b;
	size_t		a, m;

	(void)state;
	memset(&b, 0, sizeof(b));
	box_begin(&b, "ftyp", &a);
	put(&b, "isom\0\0\2\0isomavc1", 16);
	box_end(&b, a);
	box_begin(&b, "free", &a);
	put_fill(&b, 0, 20);
	box_end(&b, a);
	box_begin(&b, "moov", &m);
	box_begin(&b, "mvhd", &a);
	put_fill(&b, 0, 12);
	put_be(&b, 600, 4);
	put_be(&b, 4500, 4);
	put_fill(&b, 0, 80);
	box_end(&b, a);
	box_end(&b, m);
	assert_true(fabs(duration(&b, "video/mp4") - 7.5) < 1e-9);
	assert_true(fabs(duration(&b, "audio/mp4") - 7.5) < 1e-9);
	/* version 1: 64-bit times */
	b.len = m;
	box_begin(&b, "moov", &m);
	box_begin(&b, "mvhd", &a);
	put_be(&b, 0x01000000, 4);
	put_fill(&b, 0, 16);
	put_be(&b, 1000, 4);
	put_be(&b, 90000000000ULL, 8);
	put_fill(&b, 0, 80);
	box_end(&b, a);
	box_end(&b, m);
	assert_true(fabs(duration(&b, "video/3gpp") - 90000000) < 1e-3);
	/* a box running past the end: unknown */
	b.p[m + 3] += 10;
	assert_true(duration(&b, "video/mp4") < 0);
	free(b.p);
}

static void
ogg_page(struct buf *b, uint64_t granule, const void *pkt, size_t n)
{
	put(b, "OggS\0\0", 6);
	put_le(b, granule, 8);
	put_le(b, 0x1234, 4);
	put_le(b, 0, 8);
	put_le(b, 1, 1);
	put_le(b, n, 1);
	put(b, pkt, n);
}

static void
test_ogg(void **state)
{
	unsigned char	head[19] = "OpusHead\1\2\0\0\x80\xbb\0\0\0\0";
	unsigned char	vorb[30] = "\001vorbis\0\0\0\0\2\x44\xac\0\0";
	struct buf	b;

	(void)state;
	head[10] = 0x38;	/* pre-skip 312 */
	head[11] = 0x01;
	memset(&b, 0, sizeof(b));
	ogg_page(&b, 0, head, sizeof(head));
	ogg_page(&b, 0, "OpusTags", 8);
	ogg_page(&b, 96312, "xxxx", 4);
	ogg_page(&b, UINT64_MAX, "yyyy", 4);	/* no packet ends here */
	assert_true(fabs(duration(&b, "audio/ogg") - 2.0) < 1e-9);
	free(b.p);

	memset(&b, 0, sizeof(b));
	ogg_page(&b, 0, vorb, sizeof(vorb));
	ogg_page(&b, 44100 * 3, "zz", 2);
	assert_true(fabs(duration(&b, "audio/ogg") - 3.0) < 1e-9);
	free(b.p);
}

static void
test_mp3(void **state)
{
	unsigned char	frame[417];
	struct buf	b;
	int		i;

	(void)state;
	memset(frame, 0, sizeof(frame));
	memcpy(frame, "\xff\xfb\x90\x64", 4);
	memset(&b, 0, sizeof(b));
	put(&b, "ID3\3\0\0\0\0\0\x0a", 10);
	put_fill(&b, 0, 10);
	for (i = 0; i < 100; i++)
		put(&b, frame, sizeof(frame));
	/* CBR, 128 kbit/s: bytes * 8 / 128000 */
	assert_true(fabs(duration(&b, "audio/mpeg") - 41700 * 8 / 128000.0) <
	    1e-9);
	/* Xing: the frame count, 1152 samples each at 44.1 kHz */
	memcpy(b.p + 20 + 36, "Xing\0\0\0\1\0\0\1\0", 12);
	assert_true(fabs(duration(&b, "audio/mpeg") - 256 * 1152 / 44100.0) <
	    1e-9);
	/* not a frame at all */
	b.p[20] = 0;
	assert_true(duration(&b, "audio/mpeg") < 0);
	free(b.p);
}

static void
test_frames(void **state)
{
	unsigned char	amr[32], adts[16];
	struct buf	b;
	int		i;

	(void)state;
	memset(amr, 0, sizeof(amr));
	amr[0] = 0x3c;
	memset(&b, 0, sizeof(b));
	put(&b, "#!AMR\n", 6);
	for (i = 0; i < 250; i++)
		put(&b, amr, sizeof(amr));
	put_le(&b, 0x7c, 1);	/* NO_DATA: a header only */
	assert_true(fabs(duration(&b, "audio/amr") - 5.02) < 1e-9);
	free(b.p);

	memset(adts, 0, sizeof(adts));
	memcpy(adts, "\xff\xf1\x4c\x80\x02\x1f\xfc", 7);	/* 48 kHz, 16 bytes */
	memset(&b, 0, sizeof(b));
	for (i = 0; i < 375; i++)
		put(&b, adts, sizeof(adts));
	assert_true(fabs(duration(&b, "audio/aac") - 8.0) < 1e-9);
	/* a broken frame: unknown rather than wrong */
	b.p[16 * 200] = 0;
	assert_true(duration(&b, "audio/aac") < 0);
	free(b.p);
	/* nothing for types it does not read */
	memset(&b, 0, sizeof(b));
	put(&b, "abc", 3);
	assert_true(duration(&b, "video/webm") < 0);
	free(b.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zip_ok),
		cmocka_unit_test(test_zip_bombs),
		cmocka_unit_test(test_zip_malformed),
		cmocka_unit_test(test_mp4),
		cmocka_unit_test(test_ogg),
		cmocka_unit_test(test_mp3),
		cmocka_unit_test(test_frames),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
