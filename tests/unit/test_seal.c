/*
 * Unit tests for secrets at rest (src/seal.c) and the base64url codec it
 * stores with (src/text.c): round trips, per-plugin keys, tampering,
 * wrong data keys, malformed input, and no data key at all.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sb.h"

/* What seal.c takes from the host. */
struct sb_settings	sb_settings;
static int		logged;

void
sb_log(enum sb_log_level level, const char *component, const char *fmt, ...)
{
	(void)level;
	(void)component;
	(void)fmt;
	logged++;
}

static char	key_a[] = "data-key-0123456789abcdef0123456789abcdef";
static char	key_b[] = "data-key-fedcba9876543210fedcba9876543210";

static int
setup(void **state)
{
	(void)state;
	sb_settings.data_key = key_a;
	logged = 0;
	return (0);
}

static void
test_base64url(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" },
	};
	unsigned char	raw[16];
	char		enc[32];
	size_t		i;
	ssize_t		n;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sb_base64url((const unsigned char *)v[i].in, strlen(v[i].in),
		    enc, sizeof(enc));
		assert_string_equal(enc, v[i].out);
		n = sb_unbase64url(v[i].out, raw, sizeof(raw));
		assert_int_equal(n, (ssize_t)strlen(v[i].in));
		assert_memory_equal(raw, v[i].in, (size_t)n);
	}
	/* Not base64url: padding, the standard alphabet, a lone char,
	 * non-zero trailing bits, too long for the buffer. */
	assert_int_equal(sb_unbase64url("Zg==", raw, sizeof(raw)), -1);
	assert_int_equal(sb_unbase64url("+/8", raw, sizeof(raw)), -1);
	assert_int_equal(sb_unbase64url("Z", raw, sizeof(raw)), -1);
	assert_int_equal(sb_unbase64url("Zh", raw, sizeof(raw)), -1);
	assert_int_equal(sb_unbase64url("Zm9vYmFy", raw, 5), -1);
	/* Truncated to the output buffer, always terminated. */
	sb_base64url((const unsigned char *)"foobar", 6, enc, 4);
	assert_string_equal(enc, "Zm9");
}

static void
test_round_trip(void **state)
{
	const char	*msg = "eyJhbGciOiJIUzI1NiJ9.meeting-token.sig";
	char		*s1, *s2, *p;
	size_t		 len;

	(void)state;
	s1 = sb_seal("io.switchboard.calls", msg, strlen(msg));
	s2 = sb_seal("io.switchboard.calls", msg, strlen(msg));
	assert_non_null(s1);
	assert_non_null(s2);
	assert_memory_equal(s1, "v1.", 3);
	/* A fresh nonce each time, and no plaintext in the output. */
	assert_string_not_equal(s1, s2);
	assert_null(strstr(s1, "meeting"));
	p = sb_unseal("io.switchboard.calls", s1, &len);
	assert_non_null(p);
	assert_int_equal(len, strlen(msg));
	assert_string_equal(p, msg);
	free(p);
	free(s1);
	free(s2);

	/* Empty and binary plaintexts. */
	s1 = sb_seal("x.y", "", 0);
	assert_non_null(s1);
	p = sb_unseal("x.y", s1, &len);
	assert_non_null(p);
	assert_int_equal(len, 0);
	free(p);
	free(s1);
	s1 = sb_seal("x.y", "\0\1\2\0", 4);
	p = sb_unseal("x.y", s1, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(p, "\0\1\2\0", 4);
	free(p);
	free(s1);
}

static void
test_refusals(void **state)
{
	char	*s, *bad, *p;
	size_t	 len, n, i;

	(void)state;
	s = sb_seal("io.switchboard.calls", "secret", 6);
	assert_non_null(s);
	/* Another plugin cannot open it. */
	assert_null(sb_unseal("io.switchboard.whatsapp", s, &len));
	assert_int_equal(len, 0);
	/* Any altered character is refused (tag or nonce or ciphertext). */
	n = strlen(s);
	for (i = 3; i < n; i++) {
		bad = strdup(s);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		p = sb_unseal("io.switchboard.calls", bad, &len);
		assert_null(p);
		free(bad);
	}
	/* Truncated, wrong prefix, garbage. */
	bad = strndup(s, n - 2);
	assert_null(sb_unseal("io.switchboard.calls", bad, NULL));
	free(bad);
	assert_null(sb_unseal("io.switchboard.calls", s + 1, NULL));
	assert_null(sb_unseal("io.switchboard.calls", "v1.", NULL));
	assert_null(sb_unseal("io.switchboard.calls", "v1.!!!!", NULL));
	assert_null(sb_unseal("io.switchboard.calls", "secret", NULL));
	/* Another data key cannot open it. */
	sb_settings.data_key = key_b;
	assert_null(sb_unseal("io.switchboard.calls", s, NULL));
	/* No data key: nothing is sealed or opened, and it is said once. */
	sb_settings.data_key = NULL;
	assert_null(sb_seal("io.switchboard.calls", "x", 1));
	assert_null(sb_unseal("io.switchboard.calls", s, NULL));
	assert_int_equal(logged, 1);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_base64url, setup),
		cmocka_unit_test_setup(test_round_trip, setup),
		cmocka_unit_test_setup(test_refusals, setup),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
