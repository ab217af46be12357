/*
 * Unit tests for the telephony plugin's pure parts: SMS segments and
 * encoding (GSM-7 with its extension table, UCS-2, characters outside
 * the BMP), the routing table (longest prefix, failover order, bad
 * rules) and the form-body parser of Twilio's webhooks.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/telephony/sms.h"

static int
segs(const char *s, int *enc, size_t *units)
{
	return (tel_segments(s, strlen(s), enc, units));
}

/* n copies of the UTF-8 character c. */
static char *
rep(const char *c, size_t n)
{
	size_t	 l = strlen(c), i;
	char	*s = malloc(l * n + 1);

	assert_non_null(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * l, c, l);
	s[l * n] = '\0';
	return (s);
}

static void
check(const char *c, size_t n, int want_segs, int want_enc, size_t want_units)
{
	char	*s = rep(c, n);
	size_t	 units;
	int	 enc;

	assert_int_equal(segs(s, &enc, &units), want_segs);
	assert_int_equal(enc, want_enc);
	assert_int_equal(units, want_units);
	free(s);
}

static void
test_gsm7(void **state)
{
	size_t	units;
	int	enc;

	(void)state;
	assert_int_equal(segs("", &enc, &units), 0);
	check("a", 160, 1, TEL_ENC_GSM7, 160);
	check("a", 161, 2, TEL_ENC_GSM7, 161);
	check("a", 306, 2, TEL_ENC_GSM7, 306);
	check("a", 307, 3, TEL_ENC_GSM7, 307);
	check("a", 1530, 10, TEL_ENC_GSM7, 1530);
	check("a", 1531, 11, TEL_ENC_GSM7, 1531);
	/* Basic-table characters outside ASCII: one septet each. */
	check("\xc3\xa9", 160, 1, TEL_ENC_GSM7, 160);		/* é */
	check("\xce\x94", 161, 2, TEL_ENC_GSM7, 161);		/* Δ */
	check("@", 160, 1, TEL_ENC_GSM7, 160);
	assert_int_equal(segs("Hello, world! \xc2\xa3" "5 \xc2\xa7 "
	    "\xc3\x9c\xc3\xb1", &enc, &units), 1);
	assert_int_equal(enc, TEL_ENC_GSM7);
}

static void
test_gsm7_extension(void **state)
{
	static const char *const ext[] = { "^", "{", "}", "\\", "[", "~", "]",
	    "|", "\xe2\x82\xac" /* € */, "\f" };
	size_t	i, units;
	int	enc;

	(void)state;
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		check(ext[i], 80, 1, TEL_ENC_GSM7, 160);
		check(ext[i], 81, 2, TEL_ENC_GSM7, 162);
	}
	/* 159 septets + one extension character: 161, two segments. */
	{
		char *s = rep("a", 159), *t = malloc(200);

		assert_non_null(t);
		snprintf(t, 200, "%s\xe2\x82\xac", s);
		assert_int_equal(segs(t, &enc, &units), 2);
		assert_int_equal(units, 161);
		free(s);
		free(t);
	}
}

static void
test_ucs2(void **state)
{
	size_t	units;
	int	enc;

	(void)state;
	check("\xd0\xb6", 70, 1, TEL_ENC_UCS2, 70);		/* ж */
	check("\xd0\xb6", 71, 2, TEL_ENC_UCS2, 71);
	check("\xd0\xb6", 134, 2, TEL_ENC_UCS2, 134);
	check("\xd0\xb6", 135, 3, TEL_ENC_UCS2, 135);
	check("\xd0\xb6", 670, 10, TEL_ENC_UCS2, 670);
	check("\xd0\xb6", 671, 11, TEL_ENC_UCS2, 671);
	/* One character outside GSM-7 turns the whole message UCS-2. */
	{
		char *s = rep("a", 100), *t = malloc(200);

		assert_non_null(t);
		snprintf(t, 200, "%s\xc3\xa7", s);	/* ç: not GSM-7 (Ç is) */
		assert_int_equal(segs(t, &enc, &units), 2);
		assert_int_equal(enc, TEL_ENC_UCS2);
		assert_int_equal(units, 101);
		free(s);
		free(t);
	}
	/* Emoji outside the BMP: two UCS-2 units each. */
	check("\xf0\x9f\x98\x80", 35, 1, TEL_ENC_UCS2, 70);	/* 😀 */
	check("\xf0\x9f\x98\x80", 36, 2, TEL_ENC_UCS2, 72);
	/* Not UTF-8. */
	assert_int_equal(segs("\xff", &enc, &units), -1);
	assert_int_equal(segs("\xc3", &enc, &units), -1);
	assert_int_equal(segs("\xed\xa0\x80", &enc, &units), -1); /* surrogate */
	assert_int_equal(segs("\xc0\x80", &enc, &units), -1);	/* overlong */
}

static void
test_routing(void **state)
{
	const char	*rules = "sms:+91=exotel,twilio;sms:*=twilio;"
	    "sms:+9198=device,exotel;voice:*=freeswitch,twilio";
	char		 out[64], err[160];

	(void)state;
	assert_int_equal(tel_route_parse(rules, err, sizeof(err)), 0);
	assert_int_equal(tel_route_lookup(rules, "sms", "+14155550100", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "twilio");
	assert_int_equal(tel_route_lookup(rules, "sms", "+919000000000", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "exotel,twilio");
	/* The longest prefix wins, whatever the order of the rules. */
	assert_int_equal(tel_route_lookup(rules, "sms", "+919812345678", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "device,exotel");
	assert_int_equal(tel_route_lookup(rules, "voice", "+919812345678", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "freeswitch,twilio");
	/* No rule for the channel. */
	assert_int_equal(tel_route_lookup("sms:*=twilio", "voice", "+1415",
	    out, sizeof(out)), -1);
	assert_int_equal(tel_route_lookup("sms:+44=twilio", "sms", "+1415",
	    out, sizeof(out)), -1);
	/* Too small a buffer. */
	assert_int_equal(tel_route_lookup(rules, "sms", "+919000000000", out,
	    5), -1);
	/* Bad rules. */
	assert_int_equal(tel_route_parse("", err, sizeof(err)), 0);
	assert_int_equal(tel_route_parse("sms:+91=", err, sizeof(err)), -1);
	assert_int_equal(tel_route_parse("fax:*=twilio", err, sizeof(err)), -1);
	assert_int_equal(tel_route_parse("sms:91=twilio", err, sizeof(err)),
	    -1);
	assert_int_equal(tel_route_parse("sms:+9a=twilio", err, sizeof(err)),
	    -1);
	assert_int_equal(tel_route_parse("sms:*=twilio,,exotel", err,
	    sizeof(err)), -1);
	assert_int_equal(tel_route_parse("sms:*=Twilio", err, sizeof(err)), -1);
	assert_int_equal(tel_route_parse("sms*twilio", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "sms*twilio"));
}

struct seen {
	char	buf[512];
	int	n;
};

static int
collect(const char *name, const char *value, void *arg)
{
	struct seen	*s = arg;
	size_t		 l = strlen(s->buf);

	snprintf(s->buf + l, sizeof(s->buf) - l, "[%s=%s]", name, value);
	s->n++;
	return (strcmp(name, "stop") == 0 ? -1 : 0);
}

static int
form(const char *body, size_t max, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	return (tel_form_parse(body, strlen(body), max, collect, s));
}

static void
test_form(void **state)
{
	struct seen	s;

	(void)state;
	assert_int_equal(form("To=%2B15005550006&Body=Hello+world%21&"
	    "Empty=&NoEq", 10, &s), 4);
	assert_string_equal(s.buf, "[To=+15005550006][Body=Hello world!]"
	    "[Empty=][NoEq=]");
	assert_int_equal(form("", 10, &s), 0);
	assert_int_equal(form("&&a=1&&", 10, &s), 1);
	assert_int_equal(form("a=%e2%82%ac", 10, &s), 1);
	assert_string_equal(s.buf, "[a=\xe2\x82\xac]");
	/* Malformed. */
	assert_int_equal(form("a=%", 10, &s), -1);
	assert_int_equal(form("a=%2", 10, &s), -1);
	assert_int_equal(form("a=%zz", 10, &s), -1);
	assert_int_equal(form("a=%00", 10, &s), -1);
	assert_int_equal(form("=v", 10, &s), -1);
	assert_int_equal(form("a=1&b=2&c=3", 2, &s), -1);
	assert_int_equal(form("a=1&stop=1&c=3", 10, &s), -1);
	{
		char	*big = rep("x", 5000);

		big[0] = 'a';
		big[1] = '=';
		assert_int_equal(form(big, 10, &s), -1);
		free(big);
	}
}

static void
test_scrub(void **state)
{
	char	b[128];

	(void)state;
	assert_null(tel_scrub(NULL, b, sizeof(b)));
	assert_string_equal(tel_scrub("The 'To' number +14155550123 is not a "
	    "valid phone number.", b, sizeof(b)), "The 'To' number [number] "
	    "is not a valid phone number.");
	assert_string_equal(tel_scrub("call (415) 555-0123 or +91 98765 43210.",
	    b, sizeof(b)), "call ([number] or [number].");
	/* Short numbers stay: error codes, counts, years. */
	assert_string_equal(tel_scrub("error 21211 in 2026, 3 tries", b,
	    sizeof(b)), "error 21211 in 2026, 3 tries");
	/* A small buffer cuts the text, never a number in half. */
	assert_string_equal(tel_scrub("ab +14155550123", b, 8), "ab ");
}

static void
test_xml_escape(void **state)
{
	char	*x;

	(void)state;
	x = tel_xml_escape("<Say a=\"1\">Tom & Jerry's</Say>");
	assert_non_null(x);
	assert_string_equal(x, "&lt;Say a=&quot;1&quot;&gt;Tom &amp; "
	    "Jerry&apos;s&lt;/Say&gt;");
	free(x);
	x = tel_xml_escape("");
	assert_string_equal(x, "");
	free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gsm7),
		cmocka_unit_test(test_gsm7_extension),
		cmocka_unit_test(test_ucs2),
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_form),
		cmocka_unit_test(test_scrub),
		cmocka_unit_test(test_xml_escape),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
