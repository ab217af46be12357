/*
 * libFuzzer harness for the telephony plugin's parsers of untrusted
 * input: the form bodies of Twilio's webhooks (form.c), segment counting
 * of message bodies (segments.c), the routing rules (routing.c), the
 * TwiML text escape and the scrubbing of provider error texts (form.c).  Any
 * bytes must parse or be refused, never crash or leak.
 */
/* fuzz-sources: plugins/telephony/form.c plugins/telephony/segments.c plugins/telephony/routing.c */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/telephony/sms.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
pair(const char *name, const char *value, void *arg)
{
	size_t	*n = arg;

	*n += strlen(name) + strlen(value);
	return (0);
}

/*
 * Provider text: the TwiML escape leaves no markup character bare, and
 * the scrubbed error text no run of six digits.
 */
static void
check_text(const char *s)
{
	char		*x, buf[256];
	const char	*p;
	size_t		 d;

	if ((x = tel_xml_escape(s)) != NULL) {
		if (strpbrk(x, "<>\"'") != NULL)
			abort();
		free(x);
	}
	if (tel_scrub(s, buf, sizeof(buf)) != buf || strlen(buf) >= sizeof(buf))
		abort();
	for (p = buf, d = 0; *p != '\0'; p++) {
		d = *p >= '0' && *p <= '9' ? d + 1 : strchr(" -().+", *p) !=
		    NULL && d > 0 ? d : 0;
		if (d >= 6)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char	*s, out[64], err[160];
	size_t	 n = 0, units;
	int	 enc, segs;

	(void)tel_form_parse((const char *)data, len, 256, pair, &n);
	segs = tel_segments((const char *)data, len, &enc, &units);
	if (segs > 0 && units == 0)
		abort();
	if ((s = malloc(len + 1)) == NULL)
		return (0);
	memcpy(s, data, len);
	s[len] = '\0';
	check_text(s);
	if (tel_route_parse(s, err, sizeof(err)) == 0) {
		(void)tel_route_lookup(s, "sms", "+919812345678", out,
		    sizeof(out));
		(void)tel_route_lookup(s, "voice", "+14155550100", out,
		    sizeof(out));
	}
	free(s);
	return (0);
}
