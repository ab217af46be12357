/*
 * A zip's central directory against bomb limits, without decompressing
 * anything (APPNOTE.TXT 4.3.12-4.3.16, ZIP64 4.3.14-4.3.15, 4.5.3).
 *
 * The end-of-central-directory record is searched for in the last
 * 65,557 bytes (22 + the longest comment); a ZIP64 one is followed from
 * its locator.  Each central header's declared sizes (from its ZIP64
 * extra field when they are 0xffffffff) are summed: more than
 * ZIP_MAX_ENTRIES entries, more than ZIP_MAX_TOTAL bytes declared in
 * all, or an entry over ZIP_RATIO_FLOOR bytes declared that is more
 * than ZIP_MAX_RATIO times its compressed size is a bomb.  Overlapping
 * entries (many headers naming the same compressed data) are caught by
 * the total, since each declares its full size.  A zip that lies about
 * its sizes is not caught here, but nothing in the server ever inflates
 * an upload: the check protects whoever opens the file later.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

#define EOCD_SIG	0x06054b50
#define EOCD64_SIG	0x06064b50
#define LOC64_SIG	0x07064b50
#define CEN_SIG		0x02014b50
#define EOCD_LEN	22
#define EOCD_SCAN	(EOCD_LEN + 65535)
#define CEN_LEN		46

static uint32_t
le16(const unsigned char *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8);
}

static uint32_t
le32(const unsigned char *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24);
}

static uint64_t
le64(const unsigned char *p)
{
	return ((uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32);
}

static int
fail(const char **code, const char *c, char *err, size_t errlen,
    const char *msg)
{
	*code = c;
	(void)snprintf(err, errlen, "%s", msg);
	return (-1);
}

#define MALFORMED(m)	fail(code, "INVALID_FORMAT", err, errlen, (m))
#define BOMB(m)		fail(code, "ZIP_BOMB", err, errlen, (m))

/* The ZIP64 values of a central header's extra field, in APPNOTE order
 * (only those whose 32-bit field is 0xffffffff are present). */
static int
zip64_sizes(const unsigned char *ex, size_t exlen, uint64_t *usize,
    uint64_t *csize, int need_u, int need_c)
{
	size_t		off, n;
	uint32_t	id;

	for (off = 0; off + 4 <= exlen; off += 4 + n) {
		id = le16(ex + off);
		n = le16(ex + off + 2);
		if (off + 4 + n > exlen)
			return (-1);
		if (id != 0x0001)
			continue;
		if ((size_t)(need_u + need_c) * 8 > n)
			return (-1);
		if (need_u)
			*usize = le64(ex + off + 4);
		if (need_c)
			*csize = le64(ex + off + 4 + (need_u ? 8 : 0));
		return (0);
	}
	return (-1);
}

int
media_zip_check(const struct media_reader *rd, const char **code, char *err,
    size_t errlen)
{
	unsigned char	*tail, *cd, *p, loc[20], e64[56];
	uint64_t	 tlen, toff, eocd, entries, cdoff, cdsize, i, total;
	uint64_t	 usize, csize;
	size_t		 pos, n, nlen, exlen, cmlen;
	int		 rc;

	*code = NULL;
	if (rd->len < EOCD_LEN)
		return (MALFORMED("not a zip file"));
	tlen = rd->len < EOCD_SCAN ? rd->len : EOCD_SCAN;
	toff = rd->len - tlen;
	if ((tail = malloc((size_t)tlen)) == NULL)
		return (fail(code, NULL, err, errlen, "out of memory"));
	if (rd->read(rd->arg, toff, tail, (size_t)tlen) == -1) {
		free(tail);
		return (fail(code, NULL, err, errlen, "cannot read the file"));
	}
	/* The last signature whose comment length reaches the end exactly. */
	for (pos = (size_t)tlen - EOCD_LEN + 1; pos-- > 0;) {
		if (le32(tail + pos) == EOCD_SIG &&
		    pos + EOCD_LEN + le16(tail + pos + 20) == tlen)
			break;
	}
	if (pos == (size_t)-1) {
		free(tail);
		return (MALFORMED("the zip has no end of central directory"));
	}
	eocd = toff + pos;
	p = tail + pos;
	entries = le16(p + 10);
	cdsize = le32(p + 12);
	cdoff = le32(p + 16);
	free(tail);

	if (entries == 0xffff || cdsize == 0xffffffff ||
	    cdoff == 0xffffffff) {
		if (eocd < 20 || rd->read(rd->arg, eocd - 20, loc, 20) == -1 ||
		    le32(loc) != LOC64_SIG)
			return (MALFORMED("the zip's ZIP64 locator is missing"));
		toff = le64(loc + 8);
		if (toff > rd->len || rd->len - toff < sizeof(e64) ||
		    rd->read(rd->arg, toff, e64, sizeof(e64)) == -1 ||
		    le32(e64) != EOCD64_SIG)
			return (MALFORMED("the zip's ZIP64 end record is "
			    "missing"));
		entries = le64(e64 + 32);
		cdsize = le64(e64 + 40);
		cdoff = le64(e64 + 48);
		eocd = toff;
	}
	if (entries > ZIP_MAX_ENTRIES)
		return (BOMB("the zip has too many entries"));
	if (cdoff > eocd || cdsize > eocd - cdoff)
		return (MALFORMED("the zip's central directory is out of "
		    "bounds"));
	if (cdsize > ZIP_MAX_CDIR)
		return (BOMB("the zip's central directory is too large"));
	if ((cd = malloc((size_t)cdsize + 1)) == NULL)
		return (fail(code, NULL, err, errlen, "out of memory"));
	if (cdsize > 0 && rd->read(rd->arg, cdoff, cd, (size_t)cdsize) == -1) {
		free(cd);
		return (fail(code, NULL, err, errlen, "cannot read the file"));
	}
	rc = 0;
	total = 0;
	for (i = 0, pos = 0; i < entries; i++, pos += n) {
		if (cdsize - pos < CEN_LEN || le32(cd + pos) != CEN_SIG) {
			rc = MALFORMED("the zip's central directory is "
			    "corrupt");
			break;
		}
		p = cd + pos;
		csize = le32(p + 20);
		usize = le32(p + 24);
		nlen = le16(p + 28);
		exlen = le16(p + 30);
		cmlen = le16(p + 32);
		n = CEN_LEN + nlen + exlen + cmlen;
		if (n > cdsize - pos) {
			rc = MALFORMED("the zip's central directory is "
			    "corrupt");
			break;
		}
		if ((usize == 0xffffffff || csize == 0xffffffff) &&
		    zip64_sizes(p + CEN_LEN + nlen, exlen, &usize, &csize,
		    usize == 0xffffffff, csize == 0xffffffff) == -1) {
			rc = MALFORMED("the zip's ZIP64 sizes are missing");
			break;
		}
		if (usize > ZIP_MAX_TOTAL || (total += usize) > ZIP_MAX_TOTAL) {
			rc = BOMB("the zip declares too much uncompressed "
			    "data");
			break;
		}
		if (usize > ZIP_RATIO_FLOOR && (csize == 0 ||
		    usize / csize >= ZIP_MAX_RATIO)) {
			rc = BOMB("a zip entry is compressed too much");
			break;
		}
	}
	free(cd);
	return (rc);
}
