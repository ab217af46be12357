/*
 * Small text helpers shared by the pure parsers (see text.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

int
sb_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

void
sb_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t
sb_fnv1a64(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (h);
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding, NUL-terminated, truncated to fit outlen. */
void
sb_base64url(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	unsigned int	acc = 0;
	size_t		i, o = 0;
	int		bits = 0;

	if (outlen == 0)
		return;
	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		for (bits += 8; bits >= 6 && o + 1 < outlen; bits -= 6)
			out[o++] = b64url[(acc >> (bits - 6)) & 63];
	}
	if (bits > 0 && o + 1 < outlen)
		out[o++] = b64url[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

/* base64url without padding -> bytes; -1 on a bad character, a length no
 * encoder produces, or more than outlen bytes. */
ssize_t
sb_unbase64url(const char *in, unsigned char *out, size_t outlen)
{
	const char	*hit;
	unsigned int	 acc = 0;
	size_t		 o = 0;
	int		 bits = 0;

	for (; *in != '\0'; in++) {
		if ((hit = strchr(b64url, *in)) == NULL)
			return (-1);
		acc = (acc << 6) | (unsigned int)(hit - b64url);
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (o == outlen)
				return (-1);
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
		return (-1);
	return ((ssize_t)o);
}
