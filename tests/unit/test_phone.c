/*
 * Unit tests for the phone-number helper (src/phone.cc): what a person
 * types in several countries, with and without a default country, into
 * E.164, and the inputs it must refuse.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"

struct good {
	const char	*input;
	const char	*country;	/* NULL: the default country */
	const char	*e164;
};

struct bad {
	const char	*input;
	const char	*country;
};

static void
init(const char *country)
{
	char	err[256];

	assert_int_equal(sb_phone_init(country, err, sizeof(err)), 0);
}

static void
expect_good(const struct good *g, size_t n)
{
	char	out[SB_PHONE_E164_MAX];
	size_t	i;

	for (i = 0; i < n; i++) {
		memset(out, 'x', sizeof(out));
		if (sb_phone_e164(g[i].input, g[i].country, out,
		    sizeof(out)) != 0)
			fail_msg("refused \"%s\" (%s)", g[i].input,
			    g[i].country ? g[i].country : "default");
		assert_string_equal(out, g[i].e164);
	}
}

static void
expect_bad(const struct bad *b, size_t n)
{
	char	out[SB_PHONE_E164_MAX];
	size_t	i;

	for (i = 0; i < n; i++) {
		memset(out, 'x', sizeof(out));
		if (sb_phone_e164(b[i].input, b[i].country, out,
		    sizeof(out)) != -1)
			fail_msg("accepted \"%s\" (%s) as %s", b[i].input,
			    b[i].country ? b[i].country : "default", out);
		assert_string_equal(out, "");
	}
}

/* Written with "+<country code>": the region does not matter. */
static void
test_international(void **state)
{
	static const struct good	g[] = {
		{ "+1 415 555 0100", NULL, "+14155550100" },
		{ "+1 (202) 555-0143", "GB", "+12025550143" },
		/* The fictional 555-01xx range is possible, not "valid". */
		{ "+1 555 010 0199", NULL, "+15550100199" },
		{ "+1 604 555 0199", NULL, "+16045550199" },		/* CA */
		{ "+44 20 7946 0958", NULL, "+442079460958" },
		{ "+44 (0)20 7946 0958", NULL, "+442079460958" },
		{ "0044 20 7946 0958", NULL, "+442079460958" },
		{ "+44 7700 900123", "US", "+447700900123" },
		{ "+91 98765 43210", NULL, "+919876543210" },
		{ "+91-80-2222-3333", NULL, "+918022223333" },
		{ "+49 30 901820", NULL, "+4930901820" },
		{ "+49 (0)151 2345 6789", NULL, "+4915123456789" },
		{ "+55 11 91234-5678", NULL, "+5511912345678" },
		{ "+55 (21) 2345-6789", NULL, "+552123456789" },
		{ "+61 2 9876 5432", NULL, "+61298765432" },
		{ "+61 412 345 678", NULL, "+61412345678" },
		{ "+234 803 123 4567", NULL, "+2348031234567" },
		{ "+234 (0)1 234 5678", NULL, "+23412345678" },
		{ "  +44.20.7946.0958  ", NULL, "+442079460958" },
	};

	(void)state;
	init(NULL);
	expect_good(g, sizeof(g) / sizeof(g[0]));
}

/* Written nationally, with the country given by the caller. */
static void
test_national_country(void **state)
{
	static const struct good	g[] = {
		{ "(415) 555-0100", "US", "+14155550100" },
		{ "1 415 555 0100", "US", "+14155550100" },
		{ "011 44 20 7946 0958", "US", "+442079460958" },
		{ "604-555-0199", "CA", "+16045550199" },
		{ "020 7946 0958", "GB", "+442079460958" },
		{ "07700 900123", "GB", "+447700900123" },
		{ "098765 43210", "IN", "+919876543210" },
		{ "9876543210", "IN", "+919876543210" },
		{ "030 901820", "DE", "+4930901820" },
		{ "0151/23456789", "DE", "+4915123456789" },
		{ "(11) 91234-5678", "BR", "+5511912345678" },
		{ "(02) 9876 5432", "AU", "+61298765432" },
		{ "0412 345 678", "AU", "+61412345678" },
		{ "0803 123 4567", "NG", "+2348031234567" },
	};

	(void)state;
	init(NULL);
	expect_good(g, sizeof(g) / sizeof(g[0]));
}

/* Written nationally, under the host's default country. */
static void
test_default_country(void **state)
{
	static const struct good	us[] = {
		{ "(415) 555-0100", NULL, "+14155550100" },
		{ "415.555.0100", "", "+14155550100" },
		{ "+44 20 7946 0958", NULL, "+442079460958" },
		{ "020 7946 0958", "GB", "+442079460958" },
	};
	static const struct good	gb[] = {
		{ "020 7946 0958", NULL, "+442079460958" },
		{ "07700 900123", NULL, "+447700900123" },
	};
	static const struct good	in[] = {
		{ "98765 43210", NULL, "+919876543210" },
		{ "080 2222 3333", NULL, "+918022223333" },
	};
	static const struct good	de[] = {
		{ "030 901820", NULL, "+4930901820" },
		{ "0151 2345 6789", NULL, "+4915123456789" },
		{ "00 44 20 7946 0958", NULL, "+442079460958" },
	};

	(void)state;
	init("US");
	expect_good(us, sizeof(us) / sizeof(us[0]));
	init("GB");
	expect_good(gb, sizeof(gb) / sizeof(gb[0]));
	init("IN");
	expect_good(in, sizeof(in) / sizeof(in[0]));
	init("DE");
	expect_good(de, sizeof(de) / sizeof(de[0]));
	init(NULL);
}

static void
test_invalid(void **state)
{
	static const struct bad		b[] = {
		{ "", "US" },
		{ "+", "US" },
		{ "   ", "US" },
		{ "()-. /", "US" },
		{ "++44 20 7946 0958", NULL },
		{ "+44 20 +7946 0958", NULL },
		{ "44+20 7946 0958", "GB" },
		{ "+44 20 7946 0958+", NULL },
		/* Too short: local-only or no number at all. */
		{ "+1 555 0100", NULL },
		{ "555-0100", "US" },
		{ "12345", "US" },
		{ "+44 20", NULL },
		{ "+49 123", NULL },
		/* Too long for E.164 or for the region. */
		{ "+44 20 7946 0958 1234 5678", NULL },
		{ "+1 415 555 0100 99", NULL },
		{ "+44 7700 900123 4", NULL },
		{ "+55 11 91234 56789", NULL },
		/* Letters: vanity numbers, extensions, words. */
		{ "1-800-FLOWERS", "US" },
		{ "+1 800 356 9377 ext 12", NULL },
		{ "+44 20 7946 0958x1", NULL },
		{ "phone", "US" },
		{ "+1 4I5 555 0100", NULL },
		/* Not a fixed point: libphonenumber keeps a national "0"
		 * here that reading its answer again strips (fuzz_phone). */
		{ "+44 0044 206 0008", NULL },
		{ "00440044.206.0008", "GB" },
		/* Country codes that do not exist. */
		{ "+999 1234 5678", NULL },
		{ "+0 415 555 0100", NULL },
		{ "+800", NULL },
		/* Control characters and non-ASCII. */
		{ "+44\t20 7946 0958", NULL },
		{ "+44 20 7946\n0958", NULL },
		{ "+44 20 7946 0958\r", NULL },
		{ "+44\x7f" "20 7946 0958", NULL },
		{ "+44\xc2\xa0" "20 7946 0958", NULL },
		{ "\xef\xbc\x8b" "44 20 7946 0958", NULL },
		/* Other punctuation. */
		{ "+44 20 7946 0958;", NULL },
		{ "*67 415 555 0100", "US" },
		{ "#44 20 7946 0958", NULL },
		/* Regions that are not two known upper-case letters. */
		{ "020 7946 0958", "gb" },
		{ "020 7946 0958", "GBR" },
		{ "020 7946 0958", "XX" },
		{ "020 7946 0958", "ZZ" },
		{ "020 7946 0958", "G" },
		{ "+44 20 7946 0958", "U1" },
		/* Without "+" and with no default country. */
		{ "020 7946 0958", NULL },
		{ "(415) 555-0100", "" },
	};

	(void)state;
	init(NULL);
	expect_bad(b, sizeof(b) / sizeof(b[0]));
}

/* 64 bytes are read; 65 are refused before any parsing. */
static void
test_length_limit(void **state)
{
	char	in[128], out[SB_PHONE_E164_MAX];

	(void)state;
	init(NULL);
	memset(in, ' ', sizeof(in));
	memcpy(in, "+44 20 7946 0958", 16);
	in[SB_PHONE_INPUT_MAX] = '\0';
	assert_int_equal(sb_phone_e164(in, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "+442079460958");
	in[SB_PHONE_INPUT_MAX] = ' ';
	in[SB_PHONE_INPUT_MAX + 1] = '\0';
	assert_int_equal(sb_phone_e164(in, NULL, out, sizeof(out)), -1);
	assert_string_equal(out, "");
	in[sizeof(in) - 1] = '\0';
	assert_int_equal(sb_phone_e164(in, NULL, out, sizeof(out)), -1);
}

/* The answer must fit: a short buffer is an error, never a truncation. */
static void
test_output_buffer(void **state)
{
	char	out[SB_PHONE_E164_MAX];

	(void)state;
	init(NULL);
	assert_int_equal(sb_phone_e164("+44 20 7946 0958", NULL, out, 13), -1);
	assert_string_equal(out, "");
	assert_int_equal(sb_phone_e164("+44 20 7946 0958", NULL, out, 14), 0);
	assert_string_equal(out, "+442079460958");
	assert_int_equal(sb_phone_e164("+44 20 7946 0958", NULL, NULL, 14),
	    -1);
	assert_int_equal(sb_phone_e164("+44 20 7946 0958", NULL, out, 0), -1);
	assert_int_equal(sb_phone_e164(NULL, "US", out, sizeof(out)), -1);
	assert_string_equal(out, "");
}

static void
test_init(void **state)
{
	const char	*bad[] = { "XX", "gb", "Gb", "GBR", "G", "1A", "ZZ",
	    "001", "G\n" };
	char		 err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (sb_phone_init(bad[i], err, sizeof(err)) != -1)
			fail_msg("default_country \"%s\" accepted", bad[i]);
		assert_non_null(strstr(err, "ISO 3166-1"));
	}
	assert_int_equal(sb_phone_init("", err, sizeof(err)), 0);
	assert_int_equal(sb_phone_init("NG", err, sizeof(err)), 0);
	assert_int_equal(sb_phone_country_known("NG"), 1);
	assert_int_equal(sb_phone_country_known("BR"), 1);
	assert_int_equal(sb_phone_country_known("XX"), 0);
	assert_int_equal(sb_phone_country_known("br"), 0);
	assert_int_equal(sb_phone_country_known(NULL), 0);
	init(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_international),
		cmocka_unit_test(test_national_country),
		cmocka_unit_test(test_default_country),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_output_buffer),
		cmocka_unit_test(test_init),
	};

	return (cmocka_run_group_tests_name("phone", tests, NULL, NULL));
}
