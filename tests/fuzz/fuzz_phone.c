/*
 * libFuzzer harness for the phone-number helper (src/phone.cc): any bytes
 * a client sends as a phone number, under no country, the input's own
 * pick of a country, and a default country.  Beyond not crashing: an
 * accepted number is "+" and 8..15 digits, a refused one leaves "", and
 * normalising an answer again gives the same answer.
 *
 *   scripts/fuzz.sh phone   (src/phone.cc is C++: built with clang++)
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *countries[] = { NULL, "US", "GB", "IN", "DE", "BR", "AU",
    "NG", "ZZ", "gb" };

static void
check(const char *in, const char *country)
{
	char	out[SB_PHONE_E164_MAX], again[SB_PHONE_E164_MAX];
	size_t	i, len;

	if (sb_phone_e164(in, country, out, sizeof(out)) != 0) {
		if (out[0] != '\0')
			abort();
		return;
	}
	len = strlen(out);
	if (len < 9 || len > 16 || out[0] != '+')
		abort();
	for (i = 1; i < len; i++)
		if (out[i] < '0' || out[i] > '9')
			abort();
	if (sb_phone_e164(out, NULL, again, sizeof(again)) != 0 ||
	    strcmp(out, again) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 ready;
	char		*in, err[256];

	if (!ready) {
		if (sb_phone_init("GB", err, sizeof(err)) != 0)
			abort();
		ready = 1;
	}
	/* An exact-size NUL-terminated copy: ASan sees reads past it. */
	if ((in = malloc(size + 1)) == NULL)
		return (0);
	memcpy(in, data, size);
	in[size] = '\0';
	check(in, size > 0 ? countries[data[0] % 10] : NULL);
	check(in, "");
	free(in);
	return (0);
}
