/*
 * Phone numbers to E.164: the host's one answer to "is this a phone
 * number, and which?", shared by every plugin through api->phone_e164.
 *
 * A small C++ shim around Google's libphonenumber (Debian's
 * libphonenumber-dev) rather than a hand-kept table of country codes and
 * lengths.  The shim first reads the input the way a person types it
 * (digits, spaces, dashes, dots, slashes, brackets, one leading "+" or
 * "00") and refuses anything else outright: letters (vanity numbers and
 * extensions), control characters, non-ASCII, more than 64 bytes.  Then
 * libphonenumber parses it for the given region and the number is kept
 * when it is POSSIBLE there (the length fits the region's numbers) with
 * 8 to 15 digits.  IsValidNumber() is deliberately not asked: its
 * per-range metadata lags the operators and refuses numbers in use
 * (docs/ARCHITECTURE.md, "Phone numbers").
 *
 * Nothing here throws into C: every libphonenumber call sits in a try.
 */

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "phone.h"

using i18n::phonenumbers::NullLogger;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

/* Set once in the parent; "" when there is none. */
static char	default_country[3];

static PhoneNumberUtil	*phone_util(void);
static int		 region_known(PhoneNumberUtil *, const char *);
static int		 input_clean(const char *, std::string *);
static int		 to_e164(PhoneNumberUtil *, const std::string &,
			    const char *, std::string *);

static PhoneNumberUtil *
phone_util(void)
{
	static PhoneNumberUtil	*util = NULL;

	if (util == NULL) {
		util = PhoneNumberUtil::GetInstance();
		/* Its default logger writes to stdout, which is our JSON
		 * log: a refused number is our answer, not its message. */
		util->SetLogger(new NullLogger());
	}
	return (util);
}

static int
region_known(PhoneNumberUtil *util, const char *c)
{
	if (c == NULL || strlen(c) != 2 || c[0] < 'A' || c[0] > 'Z' ||
	    c[1] < 'A' || c[1] > 'Z')
		return (0);
	return (util->GetCountryCodeForRegion(std::string(c)) != 0);
}

/*
 * The digits of what a person typed, with a leading "+" when it had one
 * or began with the international prefix "00".  -1 for anything that is
 * not separators and digits.
 */
static int
input_clean(const char *in, std::string *out)
{
	const char	*s;
	size_t		 len;
	int		 plus;

	len = strnlen(in, SB_PHONE_INPUT_MAX + 1);
	if (len == 0 || len > SB_PHONE_INPUT_MAX)
		return (-1);
	plus = 0;
	out->clear();
	for (s = in; *s != '\0'; s++) {
		switch (*s) {
		case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
			out->push_back(*s);
			break;
		case ' ': case '-': case '.': case '/': case '(': case ')':
			break;
		case '+':
			/* Once, before any digit: "++44" and "44+1" are not
			 * numbers. */
			if (plus || !out->empty())
				return (-1);
			plus = 1;
			break;
		default:
			return (-1);
		}
	}
	if (out->empty())
		return (-1);
	if (!plus && out->compare(0, 2, "00") == 0) {
		out->erase(0, 2);
		plus = 1;
	}
	if (plus)
		out->insert(0, "+");
	return (0);
}

/* Parse for region, keep a POSSIBLE number, format it as E.164. */
static int
to_e164(PhoneNumberUtil *util, const std::string &in, const char *region,
    std::string *out)
{
	PhoneNumber	number;

	if (util->Parse(in, region, &number) !=
	    PhoneNumberUtil::NO_PARSING_ERROR)
		return (-1);
	if (util->IsPossibleNumberWithReason(number) !=
	    PhoneNumberUtil::IS_POSSIBLE)
		return (-1);
	util->Format(number, PhoneNumberUtil::E164, out);
	return (0);
}

extern "C" int
sb_phone_init(const char *country, char *err, size_t errlen)
{
	char	out[SB_PHONE_E164_MAX];

	try {
		PhoneNumberUtil	*util = phone_util();

		if (country == NULL || *country == '\0') {
			default_country[0] = '\0';
		} else if (!region_known(util, country)) {
			snprintf(err, errlen, "default_country \"%.8s\" is not "
			    "an ISO 3166-1 alpha-2 code (two upper-case "
			    "letters, e.g. US, GB, IN) of a country with "
			    "phone numbers", country);
			return (-1);
		} else {
			memcpy(default_country, country, 3);
		}
		/* Exercise the parser once so its caches are built before
		 * the fork, not inside a sandboxed worker. */
		(void)sb_phone_e164("+44 20 7946 0958", NULL, out, sizeof(out));
		(void)sb_phone_e164("(415) 555-0100", "US", out, sizeof(out));
	} catch (...) {
		snprintf(err, errlen, "libphonenumber failed to initialise");
		return (-1);
	}
	return (0);
}

extern "C" int
sb_phone_country_known(const char *country)
{
	try {
		return (region_known(phone_util(), country));
	} catch (...) {
		return (0);
	}
}

extern "C" int
sb_phone_e164(const char *input, const char *country, char *out,
    size_t outlen)
{
	std::string	 clean, e164, again;
	const char	*region;

	if (out == NULL || outlen == 0)
		return (-1);
	*out = '\0';
	if (input == NULL)
		return (-1);
	try {
		PhoneNumberUtil	*util = phone_util();

		if (country != NULL && *country != '\0') {
			if (!region_known(util, country))
				return (-1);
			region = country;
		} else {
			/* "ZZ": no region, so only "+..." parses. */
			region = default_country[0] != '\0' ?
			    default_country : "ZZ";
		}
		if (input_clean(input, &clean) == -1 ||
		    to_e164(util, clean, region, &e164) == -1)
			return (-1);
		/* The answer must read back as itself, or a number stored
		 * and looked up again would not be found: libphonenumber
		 * keeps a national "0" after some country codes ("+44 0044
		 * ...") that a second reading strips. */
		if (to_e164(util, e164, "ZZ", &again) == -1 || again != e164)
			return (-1);
	} catch (...) {
		return (-1);
	}
	/* "+" and 8..15 digits (API.md). */
	if (e164.size() < 9 || e164.size() > 16 || e164[0] != '+' ||
	    e164.find_first_not_of("0123456789", 1) != std::string::npos ||
	    e164.size() >= outlen)
		return (-1);
	memcpy(out, e164.c_str(), e164.size() + 1);
	return (0);
}
