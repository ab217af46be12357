/*
 * SMS segments and encoding (3GPP TS 23.038, GSM 03.38): the GSM 7-bit
 * default alphabet and its extension table, else UCS-2.
 */

#include <stddef.h>
#include <stdint.h>

#include "sms.h"

/* The basic table, as Unicode code points (the escape at 0x1B excluded). */
static const uint16_t gsm_basic[] = {
	'@', 0x00A3, '$', 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2,
	0x00C7, '\n', 0x00D8, 0x00F8, '\r', 0x00C5, 0x00E5, 0x0394, '_',
	0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, 0x03A3, 0x0398,
	0x039E, 0x00C6, 0x00E6, 0x00DF, 0x00C9, ' ', '!', '"', '#', 0x00A4,
	'%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', ':', ';',
	'<', '=', '>', '?', 0x00A1, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
	0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0
};

/* The extension table: two septets each (escape + character). */
static const uint16_t gsm_ext[] = {
	'\f', '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC
};

static int
in_table(const uint16_t *t, size_t n, uint32_t c)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (t[i] == c)
			return (1);
	return (0);
}

/* Septets of c in GSM-7, or 0 when it has none. */
static int
gsm_septets(uint32_t c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'))
		return (1);
	if (in_table(gsm_basic, sizeof(gsm_basic) / sizeof(gsm_basic[0]), c))
		return (1);
	if (in_table(gsm_ext, sizeof(gsm_ext) / sizeof(gsm_ext[0]), c))
		return (2);
	return (0);
}

/* One code point from s (at most n bytes): its length, or -1. */
static int
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t	c;
	int		len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return (1);
	}
	if ((s[0] & 0xE0) == 0xC0) {
		len = 2;
		c = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		len = 3;
		c = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		len = 4;
		c = s[0] & 0x07;
	} else
		return (-1);
	if ((size_t)len > n)
		return (-1);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return (-1);
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
	    (len == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
	    (c >= 0xD800 && c <= 0xDFFF))
		return (-1);
	*cp = c;
	return (len);
}

int
tel_segments(const char *text, size_t len, int *encoding, size_t *units)
{
	const unsigned char	*s = (const unsigned char *)text;
	size_t			 i, septets = 0, ucs2 = 0;
	uint32_t		 c;
	int			 n, gsm = 1, k;

	for (i = 0; i < len; i += (size_t)n) {
		if ((n = utf8_next(s + i, len - i, &c)) == -1)
			return (-1);
		ucs2 += c > 0xFFFF ? 2 : 1;
		if (gsm) {
			if ((k = gsm_septets(c)) == 0)
				gsm = 0;
			else
				septets += (size_t)k;
		}
	}
	*encoding = gsm ? TEL_ENC_GSM7 : TEL_ENC_UCS2;
	*units = gsm ? septets : ucs2;
	if (*units == 0)
		return (0);
	if (gsm)
		return (septets <= 160 ? 1 : (int)((septets + 152) / 153));
	return (ucs2 <= 70 ? 1 : (int)((ucs2 + 66) / 67));
}
