/*
 * Reading what is cheap to read from a file without decoding or
 * executing it: the central directory of a zip (zipcheck.c) and the
 * duration of audio and video (probe.c).  Pure code over a reader, so
 * the unit tests (tests/unit/test_mediaprobe.c) run it on buffers.
 */

#ifndef MEDIA_PROBE_H
#define MEDIA_PROBE_H

#include <stddef.h>
#include <stdint.h>

struct media_reader {
	/* len bytes at off into buf; 0, or -1 on error or past the end */
	int		(*read)(void *arg, uint64_t off, void *buf, size_t len);
	void		*arg;
	uint64_t	 len;		/* the file's size */
};

/* Limits of a zip's central directory (zipcheck.c). */
#define ZIP_MAX_ENTRIES		10000
#define ZIP_MAX_TOTAL		(1024ULL * 1024 * 1024)	/* declared, bytes */
#define ZIP_MAX_RATIO		100	/* uncompressed / compressed */
#define ZIP_RATIO_FLOOR		(1024 * 1024)	/* smaller entries: any ratio */
#define ZIP_MAX_CDIR		(8 * 1024 * 1024)

/*
 * The zip's central directory, read without decompressing anything:
 * 0 when it is within the limits; -1 with *code "ZIP_BOMB" (too many
 * entries, too much declared uncompressed data, an entry compressed
 * more than ZIP_MAX_RATIO times) or "INVALID_FORMAT" (not a readable
 * zip), and err.
 */
int	media_zip_check(const struct media_reader *, const char **code,
	    char *err, size_t errlen);

/*
 * Duration in seconds of audio or video of type mime, read from
 * headers (MP4/3GPP/M4A mvhd, Ogg Opus/Vorbis last granule position,
 * MP3 Xing/Info/VBRI or a CBR estimate) or by walking frame headers
 * (AMR, AAC ADTS); -1 when it is not known cheaply.
 */
double	media_duration(const struct media_reader *, const char *mime);

#endif /* MEDIA_PROBE_H */
