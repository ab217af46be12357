/*
 * Unit tests for secrets at rest (src/seal.c) and the base64url codec it
 * stores with (src/text.c): round trips, per-plugin keys, tampering,
 * wrong data keys, malformed input, and no data key at all; the v2 format
 * with key ids, v1 values, retired keys, reseal, the retired-key list,
 * and blind indexes.
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
static char	key_c[] = "data-key-cccccccccccccccccccccccccccccccc";
static char	idx_key[] = "index-key-0123456789abcdef0123456789abcdef";
static char	*retired_a[] = { key_a, NULL };
static char	*retired_ca[] = { key_c, key_a, NULL };

/*
 * A v1 value as the ABI 1.1 host wrote it: "v1." base64url(nonce | ct |
 * tag) under HKDF(key, "switchboard-seal-v1", plugin id).  Made here by
 * re-encoding a v2 value's body, which is the same construction.
 */
static char *
as_v1(const char *v2)
{
	const char	*body;
	char		*out;

	body = strchr(v2 + 3, '.') + 1;
	if ((out = malloc(strlen(body) + 4)) == NULL)
		return (NULL);
	snprintf(out, strlen(body) + 4, "v1.%s", body);
	return (out);
}

static int
setup(void **state)
{
	(void)state;
	sb_settings.data_key = key_a;
	sb_settings.data_keys_retired = NULL;
	sb_settings.index_key = NULL;
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
	assert_memory_equal(s1, "v2.", 3);
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
	assert_null(sb_unseal("io.switchboard.calls", "v2.", NULL));
	assert_null(sb_unseal("io.switchboard.calls", "v2.abcdefgh", NULL));
	assert_null(sb_unseal("io.switchboard.calls", "v2.abcdefgh.", NULL));
	assert_null(sb_unseal("io.switchboard.calls", "v2.abc.AAAA", NULL));
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

static void
test_v2_kid(void **state)
{
	char	*s, *t, *p, kid_a[9], kid_b[9], *bad;
	size_t	 len;

	(void)state;
	sb_seal_kid(key_a, kid_a);
	sb_seal_kid(key_b, kid_b);
	assert_int_equal(strlen(kid_a), 8);
	assert_string_not_equal(kid_a, kid_b);
	/* Stable for a key, and not the key. */
	sb_seal_kid(key_a, kid_b);
	assert_string_equal(kid_a, kid_b);
	assert_null(strstr(key_a, kid_a));

	s = sb_seal("io.switchboard.calls", "secret", 6);
	t = sb_seal("x.y", "other", 5);
	assert_non_null(s);
	/* "v2.<kid>.<body>": the same kid for every plugin under a key. */
	assert_memory_equal(s, "v2.", 3);
	assert_memory_equal(s + 3, kid_a, 8);
	assert_int_equal(s[11], '.');
	assert_memory_equal(t, s, 12);
	p = sb_unseal("io.switchboard.calls", s, &len);
	assert_string_equal(p, "secret");
	free(p);

	/* An unknown kid does not open, even with the right body. */
	bad = strdup(s);
	bad[3] = bad[3] == 'A' ? 'B' : 'A';
	assert_null(sb_unseal("io.switchboard.calls", bad, NULL));
	free(bad);
	free(s);
	free(t);
}

static void
test_v1_and_retired(void **state)
{
	char	*s, *v1, *p;
	size_t	 len;

	(void)state;
	/* A v1 value (no kid) still opens under the key it was made with. */
	s = sb_seal("io.switchboard.calls", "legacy", 6);
	v1 = as_v1(s);
	p = sb_unseal("io.switchboard.calls", v1, &len);
	assert_non_null(p);
	assert_string_equal(p, "legacy");
	free(p);

	/* Rotated: B current, A retired: both v2 (by kid) and v1 (by
	 * trying each key) open; a value sealed now is under B. */
	sb_settings.data_key = key_b;
	sb_settings.data_keys_retired = retired_ca;
	p = sb_unseal("io.switchboard.calls", s, &len);
	assert_string_equal(p, "legacy");
	free(p);
	p = sb_unseal("io.switchboard.calls", v1, &len);
	assert_string_equal(p, "legacy");
	free(p);
	/* Still not across plugins. */
	assert_null(sb_unseal("x.y", s, NULL));
	assert_null(sb_unseal("x.y", v1, NULL));

	/* B alone: A's values no longer open. */
	sb_settings.data_keys_retired = NULL;
	assert_null(sb_unseal("io.switchboard.calls", s, NULL));
	assert_null(sb_unseal("io.switchboard.calls", v1, NULL));
	free(s);
	free(v1);
}

static void
test_reseal(void **state)
{
	char	*a, *v1, *b, *again, *p, kid_b[9];
	size_t	 len;

	(void)state;
	a = sb_seal("io.switchboard.calls", "token", 5);
	v1 = as_v1(a);
	/* Already under the current key: 0, nothing to write. */
	again = (char *)1;
	assert_int_equal(sb_reseal("io.switchboard.calls", a, &again), 0);
	assert_null(again);
	/* v1 under the current key: re-sealed into v2. */
	assert_int_equal(sb_reseal("io.switchboard.calls", v1, &b), 1);
	assert_memory_equal(b, "v2.", 3);
	free(b);

	sb_settings.data_key = key_b;
	sb_settings.data_keys_retired = retired_a;
	sb_seal_kid(key_b, kid_b);
	assert_int_equal(sb_reseal("io.switchboard.calls", a, &b), 1);
	assert_non_null(b);
	assert_memory_equal(b + 3, kid_b, 8);
	assert_int_equal(sb_reseal("io.switchboard.calls", b, &again), 0);
	assert_null(again);
	/* B alone opens the re-sealed value. */
	sb_settings.data_keys_retired = NULL;
	p = sb_unseal("io.switchboard.calls", b, &len);
	assert_non_null(p);
	assert_int_equal(len, 5);
	assert_string_equal(p, "token");
	free(p);
	/* Does not open: -1 and nothing out. */
	again = (char *)1;
	assert_int_equal(sb_reseal("io.switchboard.calls", a, &again), -1);
	assert_null(again);
	assert_int_equal(sb_reseal("io.switchboard.calls", "garbage", &again),
	    -1);
	assert_int_equal(sb_reseal("x.y", b, &again), -1);
	assert_int_equal(sb_reseal("io.switchboard.calls", b, NULL), -1);
	free(a);
	free(v1);
	free(b);
}

static void
test_keys_parse(void **state)
{
	char	**keys, err[256];

	(void)state;
	assert_int_equal(sb_seal_keys_parse(NULL, &keys, err, sizeof(err)), 0);
	assert_null(keys[0]);
	free(keys);
	assert_int_equal(sb_seal_keys_parse(" , \n", &keys, err,
	    sizeof(err)), 0);
	assert_null(keys[0]);
	free(keys);
	assert_int_equal(sb_seal_keys_parse(
	    "data-key-0123456789abcdef0123456789abcdef,"
	    "data-key-fedcba9876543210fedcba9876543210\n "
	    "data-key-cccccccccccccccccccccccccccccccc", &keys, err,
	    sizeof(err)), 0);
	assert_string_equal(keys[0], key_a);
	assert_string_equal(keys[1], key_b);
	assert_string_equal(keys[2], key_c);
	assert_null(keys[3]);
	free(keys[0]);
	free(keys[1]);
	free(keys[2]);
	free(keys);
	/* A short key refuses the whole list, and says which. */
	assert_int_equal(sb_seal_keys_parse(
	    "data-key-0123456789abcdef0123456789abcdef short", &keys, err,
	    sizeof(err)), -1);
	assert_null(keys);
	assert_non_null(strstr(err, "key 2"));
	assert_non_null(strstr(err, "at least 32"));
}

static void
test_blind_index(void **state)
{
	char	*a, *a2, *b, *other_plugin, *other_domain, *under_b, *s;
	size_t	 i;

	(void)state;
	a = sb_blind_index("io.switchboard.customers", "phone",
	    "+442079460958", 13);
	a2 = sb_blind_index("io.switchboard.customers", "phone",
	    "+442079460958", 13);
	b = sb_blind_index("io.switchboard.customers", "phone",
	    "+442079460959", 13);
	other_plugin = sb_blind_index("io.switchboard.whatsapp", "phone",
	    "+442079460958", 13);
	other_domain = sb_blind_index("io.switchboard.customers", "email",
	    "+442079460958", 13);
	assert_non_null(a);
	assert_int_equal(strlen(a), 43);
	for (i = 0; i < 43; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl"
		    "mnopqrstuvwxyz0123456789-_", a[i]));
	assert_string_equal(a, a2);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, other_plugin);
	assert_string_not_equal(a, other_domain);
	/* Never the sealed form, never the value. */
	assert_null(strstr(a, "442079460958"));

	/* Without SB_INDEX_KEY the key comes from the data key, so
	 * rotating the data key changes it; with SB_INDEX_KEY it does not. */
	sb_settings.data_key = key_b;
	under_b = sb_blind_index("io.switchboard.customers", "phone",
	    "+442079460958", 13);
	assert_string_not_equal(a, under_b);
	free(under_b);
	sb_settings.index_key = idx_key;
	under_b = sb_blind_index("io.switchboard.customers", "phone",
	    "+442079460958", 13);
	sb_settings.data_key = key_a;
	s = sb_blind_index("io.switchboard.customers", "phone",
	    "+442079460958", 13);
	assert_string_equal(under_b, s);
	assert_string_not_equal(a, s);
	free(s);
	free(under_b);

	/* Refusals: no domain, empty domain, no key at all. */
	assert_null(sb_blind_index("io.switchboard.customers", NULL, "x", 1));
	assert_null(sb_blind_index("io.switchboard.customers", "", "x", 1));
	assert_null(sb_blind_index(NULL, "phone", "x", 1));
	sb_settings.index_key = NULL;
	sb_settings.data_key = NULL;
	assert_null(sb_blind_index("io.switchboard.customers", "phone", "x",
	    1));
	free(a);
	free(a2);
	free(b);
	free(other_plugin);
	free(other_domain);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_base64url, setup),
		cmocka_unit_test_setup(test_round_trip, setup),
		cmocka_unit_test_setup(test_refusals, setup),
		cmocka_unit_test_setup(test_v2_kid, setup),
		cmocka_unit_test_setup(test_v1_and_retired, setup),
		cmocka_unit_test_setup(test_reseal, setup),
		cmocka_unit_test_setup(test_keys_parse, setup),
		cmocka_unit_test_setup(test_blind_index, setup),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
