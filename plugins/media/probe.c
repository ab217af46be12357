/*
 * Durations of audio and video, read from headers or frame headers only:
 * nothing is decoded, nothing executed, every read bounded.
 *
 *   video/mp4, video/3gpp, audio/mp4   the movie header (moov/mvhd):
 *                                      duration / timescale
 *   audio/ogg (Opus, Vorbis)           the last page's granule position
 *                                      (Opus: 48 kHz minus pre-skip;
 *                                      Vorbis: the header's rate)
 *   audio/mpeg                         Xing/Info or VBRI frame count,
 *                                      else a CBR estimate from the first
 *                                      frame's bit rate
 *   audio/amr (NB, WB)                 frames counted (20 ms each)
 *   audio/aac (ADTS)                   frames counted (1024 samples each)
 * Anything else, or a file these do not understand: unknown (-1).
 */

#include <stdlib.h>
#include <string.h>

#include "probe.h"

#define MAX_BOXES	4096
#define OGG_TAIL	(64 * 1024)
#define WALK_CHUNK	(64 * 1024)

static uint32_t
be32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3]);
}

static uint64_t
be64(const unsigned char *p)
{
	return ((uint64_t)be32(p) << 32 | be32(p + 4));
}

static uint64_t
le64(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return (v);
}

static int
rd_at(const struct media_reader *rd, uint64_t off, void *buf, size_t len)
{
	if (off > rd->len || rd->len - off < len)
		return (-1);
	return (rd->read(rd->arg, off, buf, len));
}

/* The box named type among [off, end): its payload's range. */
static int
box_find(const struct media_reader *rd, uint64_t off, uint64_t end,
    const char *type, uint64_t *poff, uint64_t *pend)
{
	unsigned char	h[16];
	uint64_t	size, hl;
	int		n;

	for (n = 0; off + 8 <= end && n < MAX_BOXES; n++) {
		if (rd_at(rd, off, h, 8) == -1)
			return (-1);
		size = be32(h);
		hl = 8;
		if (size == 1) {
			if (rd_at(rd, off + 8, h + 8, 8) == -1)
				return (-1);
			size = be64(h + 8);
			hl = 16;
		} else if (size == 0)
			size = end - off;
		if (size < hl || size > end - off)
			return (-1);
		if (memcmp(h + 4, type, 4) == 0) {
			*poff = off + hl;
			*pend = off + size;
			return (0);
		}
		off += size;
	}
	return (-1);
}

static double
mp4_duration(const struct media_reader *rd)
{
	unsigned char	m[32];
	uint64_t	moov, moov_end, mvhd, mvhd_end, dur;
	uint32_t	scale;

	if (box_find(rd, 0, rd->len, "moov", &moov, &moov_end) == -1 ||
	    box_find(rd, moov, moov_end, "mvhd", &mvhd, &mvhd_end) == -1 ||
	    mvhd_end - mvhd < 20 || rd_at(rd, mvhd, m, 1) == -1)
		return (-1);
	if (m[0] == 1) {
		if (mvhd_end - mvhd < 32 || rd_at(rd, mvhd, m, 32) == -1)
			return (-1);
		scale = be32(m + 20);
		dur = be64(m + 24);
	} else {
		if (rd_at(rd, mvhd, m, 20) == -1)
			return (-1);
		scale = be32(m + 12);
		dur = be32(m + 16);
	}
	if (scale == 0 || dur == UINT64_MAX || (m[0] != 1 &&
	    dur == 0xffffffff))
		return (-1);
	return ((double)dur / scale);
}

/* Ogg: the first page's codec header, then the last page of that stream. */
static double
ogg_duration(const struct media_reader *rd)
{
	unsigned char	 h[27 + 255 + 30], *tail;
	uint64_t	 toff, tlen, granule;
	uint32_t	 serial, rate;
	size_t		 i, start;
	unsigned int	 preskip;
	double		 d = -1;

	if (rd_at(rd, 0, h, 27) == -1 || memcmp(h, "OggS", 4) != 0 ||
	    rd_at(rd, 27, h + 27, h[26]) == -1)
		return (-1);
	serial = be32(h + 14);	/* compared as bytes: order is moot */
	start = 27 + h[26];
	if (rd_at(rd, start, h, 30) == -1)
		return (-1);
	if (memcmp(h, "OpusHead", 8) == 0) {
		rate = 48000;
		preskip = (unsigned int)h[10] | (unsigned int)h[11] << 8;
	} else if (memcmp(h, "\001vorbis", 7) == 0) {
		rate = (uint32_t)h[12] | (uint32_t)h[13] << 8 |
		    (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
		preskip = 0;
	} else
		return (-1);
	if (rate == 0)
		return (-1);
	tlen = rd->len < OGG_TAIL ? rd->len : OGG_TAIL;
	toff = rd->len - tlen;
	if ((tail = malloc((size_t)tlen)) == NULL)
		return (-1);
	if (rd_at(rd, toff, tail, (size_t)tlen) == -1) {
		free(tail);
		return (-1);
	}
	for (i = (size_t)tlen >= 27 ? (size_t)tlen - 27 + 1 : 0; i-- > 0;) {
		if (memcmp(tail + i, "OggS", 4) != 0 || tail[i + 4] != 0 ||
		    be32(tail + i + 14) != serial)
			continue;
		granule = le64(tail + i + 6);
		if (granule == UINT64_MAX)
			continue;	/* no packet ends on this page */
		if (granule >= preskip)
			d = (double)(granule - preskip) / rate;
		break;
	}
	free(tail);
	return (d);
}

static const unsigned int mp3_rates[4][3] = {
	{ 11025, 12000, 8000 },		/* MPEG 2.5 */
	{ 0, 0, 0 },
	{ 22050, 24000, 16000 },	/* MPEG 2 */
	{ 44100, 48000, 32000 },	/* MPEG 1 */
};

/* kbit/s by [MPEG-1?][layer 1..3][index] */
static const unsigned short mp3_kbps[2][3][16] = {
	{ { 0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224,
	    256, 0 },
	  { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0 },
	  { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0 } },
	{ { 0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416,
	    448, 0 },
	  { 0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
	    384, 0 },
	  { 0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
	    320, 0 } },
};

static double
mp3_duration(const struct media_reader *rd)
{
	unsigned char	h[10], f[4 + 32 + 18];
	uint64_t	off, end, frames;
	unsigned int	ver, layer, rate, kbps, spf, side, mono;

	off = 0;
	if (rd_at(rd, 0, h, 10) == 0 && memcmp(h, "ID3", 3) == 0) {
		off = 10 + ((uint64_t)(h[6] & 0x7f) << 21 |
		    (uint64_t)(h[7] & 0x7f) << 14 |
		    (uint64_t)(h[8] & 0x7f) << 7 | (h[9] & 0x7f));
		if (h[5] & 0x10)
			off += 10;
	}
	end = rd->len;
	if (end >= 128 && rd_at(rd, end - 128, h, 3) == 0 &&
	    memcmp(h, "TAG", 3) == 0)
		end -= 128;
	if (off >= end || rd_at(rd, off, f, 4) == -1 || f[0] != 0xff ||
	    (f[1] & 0xe0) != 0xe0)
		return (-1);
	ver = (f[1] >> 3) & 3;
	layer = 4 - ((f[1] >> 1) & 3);
	if (ver == 1 || layer == 4 || ((f[2] >> 2) & 3) == 3)
		return (-1);
	rate = mp3_rates[ver][(f[2] >> 2) & 3];
	kbps = mp3_kbps[ver == 3][layer - 1][f[2] >> 4];
	mono = (f[3] >> 6) == 3;
	if (layer == 1)
		spf = 384;
	else if (layer == 2 || ver == 3)
		spf = 1152;
	else
		spf = 576;
	side = ver == 3 ? (mono ? 17 : 32) : (mono ? 9 : 17);
	if (rd_at(rd, off, f, sizeof(f)) == 0) {
		if (layer == 3 && (memcmp(f + 4 + side, "Xing", 4) == 0 ||
		    memcmp(f + 4 + side, "Info", 4) == 0)) {
			if (be32(f + 8 + side) & 1) {
				frames = be32(f + 12 + side);
				return ((double)frames * spf / rate);
			}
		} else if (memcmp(f + 36, "VBRI", 4) == 0) {
			frames = be32(f + 36 + 14);
			return ((double)frames * spf / rate);
		}
	}
	if (kbps == 0)
		return (-1);
	return ((double)(end - off) * 8 / (kbps * 1000.0));
}

/* Walk frames whose size the header gives: AMR and ADTS.  AMR frame
 * sizes after the one-byte header, by frame type (RFC 4867 5.3; SID and
 * NO_DATA frames included, reserved types taken as empty). */
static const unsigned char amr_nb[16] = { 12, 13, 15, 17, 19, 20, 26, 31,
	5, 0, 0, 0, 0, 0, 0, 0 };
static const unsigned char amr_wb[16] = { 17, 23, 32, 36, 40, 46, 50, 58,
	60, 5, 0, 0, 0, 0, 0, 0 };
static const unsigned int aac_rates[16] = { 96000, 88200, 64000, 48000,
	44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350, 0, 0, 0 };

static double
frames_walk(const struct media_reader *rd, int aac)
{
	unsigned char	*buf, hdr[9];
	const unsigned char *sizes;
	uint64_t	 off, boff, blen, samples, len;
	unsigned int	 rate;

	off = 0;
	sizes = NULL;
	rate = 0;
	if (!aac) {
		if (rd_at(rd, 0, hdr, 9) == -1)
			return (-1);
		if (memcmp(hdr, "#!AMR\n", 6) == 0) {
			sizes = amr_nb;
			off = 6;
		} else if (memcmp(hdr, "#!AMR-WB\n", 9) == 0) {
			sizes = amr_wb;
			off = 9;
		} else
			return (-1);
	}
	if ((buf = malloc(WALK_CHUNK)) == NULL)
		return (-1);
	boff = blen = 0;
	samples = 0;
	while (off < rd->len) {
		/* A window holding at least this frame's header. */
		if (off < boff || off + 9 > boff + blen) {
			boff = off;
			blen = rd->len - off < WALK_CHUNK ? rd->len - off :
			    WALK_CHUNK;
			if (rd_at(rd, boff, buf, (size_t)blen) == -1)
				break;
		}
		if (!aac) {
			len = sizes[(buf[off - boff] >> 3) & 0x0f];
			off += 1 + len;
			samples++;
			continue;
		}
		if (off + 7 > boff + blen)
			break;
		memcpy(hdr, buf + (off - boff), 7);
		if (hdr[0] != 0xff || (hdr[1] & 0xf6) != 0xf0)
			break;
		if (rate == 0 && (rate = aac_rates[(hdr[2] >> 2) & 0x0f]) == 0)
			break;
		len = ((uint64_t)(hdr[3] & 3) << 11) | (uint64_t)hdr[4] << 3 |
		    hdr[5] >> 5;
		if (len < 7)
			break;
		off += len;
		samples += 1024 * ((hdr[6] & 3) + 1);
	}
	free(buf);
	if (off != rd->len || samples == 0)
		return (-1);	/* not all frames: not trusted */
	return (aac ? (double)samples / rate : samples * 0.02);
}

double
media_duration(const struct media_reader *rd, const char *mime)
{
	if (strcmp(mime, "video/mp4") == 0 || strcmp(mime, "video/3gpp") == 0 ||
	    strcmp(mime, "audio/mp4") == 0)
		return (mp4_duration(rd));
	if (strcmp(mime, "audio/ogg") == 0)
		return (ogg_duration(rd));
	if (strcmp(mime, "audio/mpeg") == 0)
		return (mp3_duration(rd));
	if (strcmp(mime, "audio/amr") == 0)
		return (frames_walk(rd, 0));
	if (strcmp(mime, "audio/aac") == 0)
		return (frames_walk(rd, 1));
	return (-1);
}
