/*
 * libFuzzer harness for what the media plugin reads from an upload
 * without decoding it (plugins/media/probe.h): the zip central directory
 * check that stops zip bombs renamed .docx, and the duration readers of
 * every audio/video container it knows.  Any input must give an answer
 * (0/-1, a duration or -1), never a crash, a read out of bounds or a
 * hang.  The first byte picks what the rest is read as.
 */
/* fuzz-sources: plugins/media/probe.c plugins/media/zipcheck.c */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/media/probe.h"

struct buf {
	const uint8_t	*p;
	size_t		 len;
};

static int
buf_read(void *arg, uint64_t off, void *out, size_t len)
{
	const struct buf	*b = arg;

	if (off > b->len || len > b->len - off)
		return (-1);
	memcpy(out, b->p + off, len);
	return (0);
}

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {
		"audio/mp4", "video/mp4", "video/3gpp", "audio/ogg",
		"audio/mpeg", "audio/amr", "audio/aac"
	};
	struct media_reader	 rd;
	struct buf		 b;
	const char		*code;
	char			 err[200];
	double			 d;

	if (size < 1)
		return (0);
	b.p = data + 1;
	b.len = size - 1;
	rd.read = buf_read;
	rd.arg = &b;
	rd.len = b.len;
	if (data[0] % 8 == 7) {
		code = NULL;
		if (media_zip_check(&rd, &code, err, sizeof(err)) == -1 &&
		    code == NULL)
			__builtin_trap();	/* a refusal always says why */
		return (0);
	}
	d = media_duration(&rd, types[data[0] % 8]);
	if (d != -1 && !(d >= 0))
		__builtin_trap();		/* NaN or negative */
	return (0);
}
