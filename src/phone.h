/*
 * Phone numbers to E.164 (phone.cc, a small C++ shim around Google's
 * libphonenumber).  C and C++ both include this file; sb.h includes it
 * for the rest of the host.
 */

#ifndef SB_PHONE_H
#define SB_PHONE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_PHONE_INPUT_MAX	64	/* bytes a person may type */
#define SB_PHONE_E164_MAX	17	/* "+", 15 digits, NUL */

/*
 * Parent, before the workers fork: builds libphonenumber's singleton (its
 * metadata and regular expressions) so that no worker loads anything
 * lazily inside the sandbox, and sets the host's default country
 * (ISO 3166-1 alpha-2, two upper-case letters libphonenumber knows; NULL
 * or "": none).  0, or -1 with a message in err.  Calling it again
 * replaces the default country.
 */
int	sb_phone_init(const char *default_country, char *err, size_t errlen);

/*
 * input as a person typed it into "+<8..15 digits>" in out (outlen of at
 * least SB_PHONE_E164_MAX).  country: the region of a number written
 * without its "+<country code>"; NULL or "" takes the default country,
 * and without one such a number is refused.  0, or -1 when input is not a
 * possible number (out is then "").  Any process, any thread after
 * sb_phone_init().
 */
int	sb_phone_e164(const char *input, const char *country, char *out,
	    size_t outlen);

/* 1 when country is two upper-case letters libphonenumber knows. */
int	sb_phone_country_known(const char *country);

#ifdef __cplusplus
}
#endif

#endif /* SB_PHONE_H */
