/*
 * Provider text in and out, without the host: application/x-www-form-
 * urlencoded bodies (the providers' webhooks), XML text for TwiML, and
 * error texts scrubbed of phone numbers.
 */

#include <stdlib.h>
#include <string.h>

#include "sms.h"

#define FIELD_MAX	4096

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* Decode [s, e) into out (FIELD_MAX + 1): length, or -1. */
static int
decode(const char *s, const char *e, char *out)
{
	size_t	n = 0;
	int	h, l;

	while (s < e) {
		if (n >= FIELD_MAX)
			return (-1);
		if (*s == '%') {
			if (e - s < 3 || (h = hexval(s[1])) == -1 ||
			    (l = hexval(s[2])) == -1 || (h == 0 && l == 0))
				return (-1);
			out[n++] = (char)(h << 4 | l);
			s += 3;
		} else if (*s == '\0')
			return (-1);
		else {
			out[n++] = *s == '+' ? ' ' : *s;
			s++;
		}
	}
	out[n] = '\0';
	return ((int)n);
}

int
tel_form_parse(const char *body, size_t len, size_t maxpairs, tel_form_cb cb,
    void *arg)
{
	const char	*s, *e, *eq, *end = body + len;
	char		*name, *value;
	int		 pairs = 0, rc = 0;

	if ((name = malloc(FIELD_MAX + 1)) == NULL)
		return (-1);
	if ((value = malloc(FIELD_MAX + 1)) == NULL) {
		free(name);
		return (-1);
	}
	for (s = body; s < end && rc == 0; s = e < end ? e + 1 : end) {
		for (e = s; e < end && *e != '&'; e++)
			;
		if (e == s)
			continue;
		for (eq = s; eq < e && *eq != '='; eq++)
			;
		if ((size_t)pairs >= maxpairs ||
		    decode(s, eq, name) <= 0 ||
		    decode(eq < e ? eq + 1 : e, e, value) < 0 ||
		    cb(name, value, arg) == -1)
			rc = -1;
		else
			pairs++;
	}
	free(name);
	free(value);
	return (rc == -1 ? -1 : pairs);
}

/*
 * A provider's error text without the phone numbers it may quote
 * (Twilio's 21211 names the number): every run of 6 or more digits, with
 * its +, spaces, dashes and brackets, becomes "[number]".  Into buf;
 * NULL for NULL.
 */
const char *
tel_scrub(const char *in, char *buf, size_t len)
{
	const char	*p, *q;
	size_t		 o = 0, digits;

	if (in == NULL || len == 0)
		return (NULL);
	for (p = in; *p != '\0' && o + 1 < len;) {
		digits = 0;
		for (q = p; *q != '\0' && (strchr("+0123456789", *q) != NULL ||
		    (q > p && strchr(" -().", *q) != NULL)); q++)
			if (*q >= '0' && *q <= '9')
				digits++;
		if (digits >= 6) {
			/* Give back the trailing separators. */
			while (q > p && strchr(" -(.", q[-1]) != NULL)
				q--;
			if (o + 9 >= len)
				break;
			memcpy(buf + o, "[number]", 8);
			o += 8;
			p = q;
		} else
			buf[o++] = *p++;
	}
	buf[o] = '\0';
	return (buf);
}

/* XML text (TwiML): & < > " ' as entities; NULL when out of memory. */
char *
tel_xml_escape(const char *in)
{
	const char	*c;
	char		*out, *o;

	if ((out = malloc(strlen(in) * 6 + 1)) == NULL)
		return (NULL);
	for (c = in, o = out; *c != '\0'; c++) {
		switch (*c) {
		case '&': o = stpcpy(o, "&amp;"); break;
		case '<': o = stpcpy(o, "&lt;"); break;
		case '>': o = stpcpy(o, "&gt;"); break;
		case '"': o = stpcpy(o, "&quot;"); break;
		case '\'': o = stpcpy(o, "&apos;"); break;
		default: *o++ = *c; break;
		}
	}
	*o = '\0';
	return (out);
}
