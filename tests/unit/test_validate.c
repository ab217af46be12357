/*
 * Unit tests for declarative body validation (src/validate.c): every
 * error code, the field names and messages of the error objects, the
 * format checks on their own, and the JSON Schema generated for a table.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

static const char *const status_choices[] = { "open", "closed", NULL };

static const struct sb_field table[] = {
	{ .name = "name", .type = SB_T_STRING,
	    .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 2,
	    .max_len = 5, .description = "Display name" },
	{ .name = "age", .type = SB_T_INT, .flags = SB_F_RANGE,
	    .min = 0, .max = 150 },
	{ .name = "score", .type = SB_T_NUMBER, .flags = SB_F_RANGE,
	    .min = -1, .max = 1 },
	{ .name = "count", .type = SB_T_INT },
	{ .name = "ratio", .type = SB_T_NUMBER },
	{ .name = "active", .type = SB_T_BOOL },
	{ .name = "meta", .type = SB_T_OBJECT },
	{ .name = "tags", .type = SB_T_ARRAY, .flags = SB_F_NONEMPTY,
	    .max_len = 3, .item_type = SB_T_STRING },
	{ .name = "ids", .type = SB_T_ARRAY, .min_len = 2,
	    .item_type = SB_T_INT },
	{ .name = "extra", .type = SB_T_ANY },
	{ .name = "status", .type = SB_T_STRING, .choices = status_choices },
	{ .name = "email", .type = SB_T_STRING, .format = "email" },
	{ .name = "when", .type = SB_T_STRING, .format = "date-time" },
	{ .name = "link", .type = SB_T_STRING, .format = "uri" },
	{ .name = "note", .type = SB_T_STRING,
	    .flags = SB_F_NULLABLE | SB_F_NONEMPTY, .min_len = 10 },
	SB_FIELD_END
};

static json_t	*run(const struct sb_field *, const char *, int);
static void	 expect(const json_t *, size_t, const char *, const char *,
		    const char *);
static void	 one(const char *, const char *, const char *, const char *);
static void	 none(const char *);

/* Validates the JSON text body and checks the count against the array. */
static json_t *
run(const struct sb_field *fields, const char *text, int want)
{
	json_error_t	 jerr;
	json_t		*body, *errors;
	int		 n;

	body = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (body == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	assert_non_null(errors = json_array());
	n = sb_validate(fields, body, errors);
	if (n != want) {
		char	*dump = json_dumps(errors, 0);

		fail_msg("%s: %d errors, want %d: %s", text, n, want, dump);
	}
	assert_int_equal((size_t)n, json_array_size(errors));
	/* Counting without an array gives the same number. */
	assert_int_equal(sb_validate(fields, body, NULL), n);
	json_decref(body);
	return (errors);
}

static void
expect(const json_t *errors, size_t i, const char *field, const char *code,
    const char *message)
{
	const json_t	*e;

	assert_non_null(e = json_array_get(errors, i));
	assert_int_equal(json_object_size(e), 3);
	if (field == NULL)
		assert_true(json_is_null(json_object_get(e, "field")));
	else
		assert_string_equal(json_string_value(json_object_get(e,
		    "field")), field);
	assert_string_equal(json_string_value(json_object_get(e, "code")),
	    code);
	if (message != NULL)
		assert_string_equal(json_string_value(json_object_get(e,
		    "message")), message);
}

/* The body (a valid "name" is added) has exactly one problem. */
static void
one(const char *fragment, const char *field, const char *code,
    const char *message)
{
	json_t	*errors;
	char	 text[1024];

	snprintf(text, sizeof(text), "{\"name\": \"abc\", %s}", fragment);
	errors = run(table, text, 1);
	expect(errors, 0, field, code, message);
	json_decref(errors);
}

static void
none(const char *fragment)
{
	char	 text[1024];

	snprintf(text, sizeof(text), "{\"name\": \"abc\", %s}", fragment);
	json_decref(run(table, text, 0));
}

static void
test_body_not_object(void **state)
{
	json_t	*errors;

	(void)state;
	errors = run(table, "[1, 2]", 1);
	expect(errors, 0, NULL, "INVALID_TYPE",
	    "request body must be a JSON object");
	json_decref(errors);
	json_decref(run(table, "\"x\"", 1));
	json_decref(run(table, "null", 1));
	json_decref(run(table, "42", 1));
	assert_int_equal(sb_validate(table, NULL, NULL), 1);
}

static void
test_required_and_missing(void **state)
{
	json_t	*errors;

	(void)state;
	errors = run(table, "{}", 1);
	expect(errors, 0, "name", "REQUIRED", "is required");
	json_decref(errors);

	/* Optional fields may be absent; unknown fields are ignored. */
	json_decref(run(table, "{\"name\": \"ab\", \"unknown\": [1, {}],"
	    " \"NAME\": 5}", 0));
	/* No table: any object passes. */
	json_decref(run(NULL, "{\"a\": 1}", 0));
}

static void
test_null(void **state)
{
	json_t	*errors;

	(void)state;
	errors = run(table, "{\"name\": null}", 1);
	expect(errors, 0, "name", "NULL_NOT_ALLOWED", "must not be null");
	json_decref(errors);
	one("\"age\": null", "age", "NULL_NOT_ALLOWED", "must not be null");
	one("\"extra\": null", "extra", "NULL_NOT_ALLOWED", NULL);
	one("\"meta\": null", "meta", "NULL_NOT_ALLOWED", NULL);
	/* Nullable: null skips every other check (min_len 10 here). */
	none("\"note\": null");
	one("\"note\": \"short\"", "note", "TOO_SHORT",
	    "must be at least 10 characters");
	none("\"note\": \"long enough\"");
}

static void
test_types(void **state)
{
	(void)state;
	one("\"status\": 1", "status", "INVALID_TYPE", "must be a string");
	one("\"status\": true", "status", "INVALID_TYPE", "must be a string");
	one("\"count\": 1.0", "count", "INVALID_TYPE", "must be an integer");
	one("\"count\": \"1\"", "count", "INVALID_TYPE", "must be an integer");
	one("\"count\": true", "count", "INVALID_TYPE", "must be an integer");
	one("\"count\": false", "count", "INVALID_TYPE", NULL);
	one("\"count\": 1e2", "count", "INVALID_TYPE", NULL);
	one("\"ratio\": \"1.5\"", "ratio", "INVALID_TYPE", "must be a number");
	one("\"ratio\": true", "ratio", "INVALID_TYPE", "must be a number");
	one("\"active\": 1", "active", "INVALID_TYPE", "must be a boolean");
	one("\"active\": \"true\"", "active", "INVALID_TYPE", NULL);
	one("\"meta\": []", "meta", "INVALID_TYPE", "must be an object");
	one("\"tags\": {}", "tags", "INVALID_TYPE", "must be an array");
	one("\"tags\": \"a\"", "tags", "INVALID_TYPE", "must be an array");

	none("\"count\": -5, \"ratio\": 1, \"active\": false, \"meta\": {}");
	none("\"ratio\": 1.5, \"active\": true, \"meta\": {\"a\": [1]}");
	none("\"count\": 9223372036854775807");
	none("\"extra\": 1");
	none("\"extra\": \"x\"");
	none("\"extra\": [null]");
	none("\"extra\": {}");
	none("\"extra\": false");
}

static void
test_range(void **state)
{
	(void)state;
	none("\"age\": 0");
	none("\"age\": 150");
	one("\"age\": -1", "age", "OUT_OF_RANGE", "must be between 0 and 150");
	one("\"age\": 151", "age", "OUT_OF_RANGE", NULL);
	one("\"age\": 9223372036854775807", "age", "OUT_OF_RANGE", NULL);
	one("\"age\": 20.5", "age", "INVALID_TYPE", NULL);

	none("\"score\": -1");
	none("\"score\": 1");
	none("\"score\": 0.999");
	none("\"score\": -1.0");
	one("\"score\": 1.0001", "score", "OUT_OF_RANGE",
	    "must be between -1 and 1");
	one("\"score\": -2", "score", "OUT_OF_RANGE", NULL);
	one("\"score\": -1e300", "score", "OUT_OF_RANGE", NULL);
	/* Without SB_F_RANGE the limits are not looked at. */
	none("\"count\": -99999, \"ratio\": 1e300");
}

static void
test_string_length(void **state)
{
	json_t	*errors;

	(void)state;
	/* name: 2..5 characters, counted in code points. */
	json_decref(run(table, "{\"name\": \"ab\"}", 0));
	json_decref(run(table, "{\"name\": \"abcde\"}", 0));
	json_decref(run(table, "{\"name\": \"\\u00e4\\u00f6\\u00fc\\u00df"
	    "\\u00e9\"}", 0));
	json_decref(run(table, "{\"name\": \"\xf0\x9f\x98\x80\xf0\x9f\x98"
	    "\x80\"}", 0));
	json_decref(run(table, "{\"name\": \"\xe6\x97\xa5\xe6\x9c\xac\"}", 0));

	errors = run(table, "{\"name\": \"a\"}", 1);
	expect(errors, 0, "name", "TOO_SHORT", "must be at least 2 characters");
	json_decref(errors);
	errors = run(table, "{\"name\": \"\xf0\x9f\x98\x80\"}", 1);
	expect(errors, 0, "name", "TOO_SHORT", NULL);
	json_decref(errors);
	errors = run(table, "{\"name\": \"abcdef\"}", 1);
	expect(errors, 0, "name", "TOO_LONG", "must be at most 5 characters");
	json_decref(errors);
	errors = run(table, "{\"name\": \"\\u00e4\\u00f6\\u00fc\\u00df"
	    "\\u00e9\\u00e9\"}", 1);
	expect(errors, 0, "name", "TOO_LONG", NULL);
	json_decref(errors);
}

static void
test_nul_and_empty(void **state)
{
	json_t	*errors;

	(void)state;
	errors = run(table, "{\"name\": \"ab\\u0000cd\"}", 1);
	expect(errors, 0, "name", "INVALID_FORMAT",
	    "must not contain NUL characters");
	json_decref(errors);
	one("\"status\": \"open\\u0000\"", "status", "INVALID_FORMAT", NULL);

	errors = run(table, "{\"name\": \"\"}", 1);
	expect(errors, 0, "name", "EMPTY", "must not be empty");
	json_decref(errors);
	errors = run(table, "{\"name\": \" \\t\\n\\r \"}", 1);
	expect(errors, 0, "name", "EMPTY", NULL);
	json_decref(errors);
	/* NBSP, ideographic space, BOM: just as empty to a person. */
	errors = run(table, "{\"name\": \"\\u00a0\\u3000\\ufeff\"}", 1);
	expect(errors, 0, "name", "EMPTY", NULL);
	json_decref(errors);
	json_decref(run(table, "{\"name\": \" a \"}", 0));

	one("\"tags\": []", "tags", "EMPTY", "must not be empty");
	none("\"tags\": [\"x\"]");
}

static void
test_array(void **state)
{
	json_t	*errors;
	char	 text[4096];
	size_t	 off, i;

	(void)state;
	one("\"tags\": [\"a\", \"b\", \"c\", \"d\"]", "tags", "TOO_LONG",
	    "must have at most 3 items");
	one("\"ids\": [1]", "ids", "TOO_SHORT", "must have at least 2 items");
	none("\"ids\": [1, 2, 3, 4, 5, 6, 7]");
	one("\"ids\": [1, true]", "ids[1]", "INVALID_TYPE",
	    "must be an integer");
	one("\"tags\": [\"a\", \"b\\u0000\"]", "tags[1]", "INVALID_FORMAT",
	    "must not contain NUL characters");

	errors = run(table, "{\"name\": \"abc\", \"ids\": [1, \"2\", 3.0, "
	    "null, 5]}", 3);
	expect(errors, 0, "ids[1]", "INVALID_TYPE", "must be an integer");
	expect(errors, 1, "ids[2]", "INVALID_TYPE", NULL);
	expect(errors, 2, "ids[3]", "INVALID_TYPE", NULL);
	json_decref(errors);

	/* The array's own problem and its items' are both reported. */
	errors = run(table, "{\"name\": \"abc\", \"ids\": [\"x\"]}", 2);
	expect(errors, 0, "ids", "TOO_SHORT", NULL);
	expect(errors, 1, "ids[0]", "INVALID_TYPE", NULL);
	json_decref(errors);

	/* A flood of bad items is capped. */
	off = snprintf(text, sizeof(text), "{\"name\": \"abc\", \"ids\": [");
	for (i = 0; i < 200; i++)
		off += snprintf(text + off, sizeof(text) - off, "%s\"x\"",
		    i ? "," : "");
	snprintf(text + off, sizeof(text) - off, "]}");
	errors = run(table, text, SB_VALIDATE_MAX_ITEM_ERRORS);
	expect(errors, SB_VALIDATE_MAX_ITEM_ERRORS - 1, "ids[15]",
	    "INVALID_TYPE", NULL);
	json_decref(errors);
}

static void
test_choices(void **state)
{
	static const char *const many[] = {
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
		"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
		NULL
	};
	const struct sb_field	 big[] = {
		{ .name = "c", .type = SB_T_STRING, .choices = many },
		SB_FIELD_END
	};
	json_t			*errors;
	const char		*msg;

	(void)state;
	none("\"status\": \"open\"");
	none("\"status\": \"closed\"");
	one("\"status\": \"Open\"", "status", "INVALID_CHOICE",
	    "must be one of: open, closed");
	one("\"status\": \"\"", "status", "INVALID_CHOICE", NULL);

	errors = run(big, "{\"c\": \"x\"}", 1);
	expect(errors, 0, "c", "INVALID_CHOICE", NULL);
	msg = json_string_value(json_object_get(json_array_get(errors, 0),
	    "message"));
	assert_true(strncmp(msg, "must be one of: aaaa", 20) == 0);
	assert_string_equal(msg + strlen(msg) - 4, " ...");
	json_decref(errors);
}

static void
test_formats_in_body(void **state)
{
	(void)state;
	none("\"email\": \"a.b+c@example.org\"");
	one("\"email\": \"a@b\"", "email", "INVALID_FORMAT",
	    "must be a valid email address");
	none("\"when\": \"2026-01-02T03:04:05Z\"");
	one("\"when\": \"2026-02-30T03:04:05Z\"", "when", "INVALID_FORMAT",
	    "must be an RFC 3339 date-time, e.g. 2026-01-02T03:04:05Z");
	none("\"link\": \"https://example.org/x?y=1#z\"");
	one("\"link\": \"ftp://example.org/\"", "link", "INVALID_FORMAT",
	    "must be an absolute http or https URL");
	one("\"email\": 5", "email", "INVALID_TYPE", NULL);
}

static void
test_several(void **state)
{
	json_t	*errors;

	(void)state;
	errors = run(table, "{\"age\": \"x\", \"tags\": [], \"status\": \"no\","
	    " \"active\": null, \"when\": \"yesterday\"}", 6);
	/* In table order. */
	expect(errors, 0, "name", "REQUIRED", NULL);
	expect(errors, 1, "age", "INVALID_TYPE", NULL);
	expect(errors, 2, "active", "NULL_NOT_ALLOWED", NULL);
	expect(errors, 3, "tags", "EMPTY", NULL);
	expect(errors, 4, "status", "INVALID_CHOICE", NULL);
	expect(errors, 5, "when", "INVALID_FORMAT", NULL);
	json_decref(errors);
}

static void
test_email(void **state)
{
	static const char *const good[] = {
		"a@example.org", "first.last@sub.example.co.uk",
		"x+tag@example.com", "o'brien@example.ie",
		"user_name-1@ex-ample.io", "\xc3\xa9l\xc3\xa8ve@example.fr",
		"a@xn--bcher-kva.xn--p1ai", "A@EXAMPLE.ORG", NULL
	};
	static const char *const bad[] = {
		"", "a", "@example.org", "a@", "a@example", "a@@example.org",
		"a@b@example.org", "a b@example.org", "a@exa mple.org",
		".a@example.org", "a.@example.org", "a..b@example.org",
		"a@.example.org", "a@example..org", "a@example.org.",
		"a@-example.org", "a@example-.org", "a@example.c",
		"a@example.c0m", "a@ex_ample.org", "a(b)@example.org",
		"a@example.org\n", "\"a\"@example.org", "a@[127.0.0.1]", NULL
	};
	char	 buf[400], local[65], label[61];
	size_t	 i;

	(void)state;
	for (i = 0; good[i] != NULL; i++) {
		if (!sb_validate_email(good[i]))
			fail_msg("refused %s", good[i]);
	}
	for (i = 0; bad[i] != NULL; i++) {
		if (sb_validate_email(bad[i]))
			fail_msg("accepted %s", bad[i]);
	}
	assert_false(sb_validate_email(NULL));

	/* 254 characters is the limit; a local part at most 64. */
	memset(local, 'a', 64);
	local[64] = '\0';
	memset(label, 'b', 60);
	label[60] = '\0';
	snprintf(buf, sizeof(buf), "%s@%s.%s.%s.abcdef", local, label, label,
	    label);
	assert_int_equal(strlen(buf), 254);
	assert_true(sb_validate_email(buf));
	snprintf(buf, sizeof(buf), "%s@%s.%s.%s.abcdefg", local, label, label,
	    label);
	assert_false(sb_validate_email(buf));
	memset(buf, 'a', 65);
	strcpy(buf + 65, "@example.org");
	assert_false(sb_validate_email(buf));
	memset(buf, 'a', 64);
	strcpy(buf + 64, "@example.org");
	assert_true(sb_validate_email(buf));
	/* A label is at most 63 characters. */
	strcpy(buf, "a@");
	memset(buf + 2, 'b', 64);
	strcpy(buf + 66, ".org");
	assert_false(sb_validate_email(buf));
}

static void
test_datetime(void **state)
{
	static const char *const good[] = {
		"2026-01-02T03:04:05Z", "2026-01-02t03:04:05z",
		"2026-01-02T03:04:05.123Z", "2026-01-02T03:04:05.1+01:00",
		"2026-01-02T03:04:05-05:30", "2024-02-29T00:00:00Z",
		"2000-02-29T23:59:59+00:00", "0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z", "2016-12-31T23:59:60Z",
		"2016-12-31T15:59:60-08:00", "2017-01-01T00:59:60+01:00", NULL
	};
	static const char *const bad[] = {
		"", "2026-01-02", "2026-01-02T03:04Z", "2026-01-02 03:04:05Z",
		"2026-01-02T03:04:05", "2026-1-02T03:04:05Z",
		"2026-00-02T03:04:05Z", "2026-13-02T03:04:05Z",
		"2026-01-00T03:04:05Z", "2026-01-32T03:04:05Z",
		"2026-04-31T03:04:05Z", "2023-02-29T03:04:05Z",
		"1900-02-29T03:04:05Z", "2026-01-02T24:00:00Z",
		"2026-01-02T23:60:00Z", "2026-01-02T23:59:61Z",
		"2026-01-02T12:00:60Z", "2016-12-31T23:59:60+01:00",
		"2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+0100",
		"2026-01-02T03:04:05+24:00", "2026-01-02T03:04:05+01:60",
		"2026-01-02T03:04:05Zx", "2026-01-02T03:04:05Z ",
		" 2026-01-02T03:04:05Z", "2026-01-02T03:04:05+01",
		"20260102T030405Z", "2026-01-02T03:04:05UTC", "\xef\xbc\x92"
		"026-01-02T03:04:05Z", NULL
	};
	size_t	i;

	(void)state;
	for (i = 0; good[i] != NULL; i++) {
		if (!sb_validate_datetime(good[i]))
			fail_msg("refused %s", good[i]);
	}
	for (i = 0; bad[i] != NULL; i++) {
		if (sb_validate_datetime(bad[i]))
			fail_msg("accepted %s", bad[i]);
	}
	assert_false(sb_validate_datetime(NULL));
}

static void
test_uri(void **state)
{
	static const char *const good[] = {
		"http://example.org", "https://example.org/",
		"HTTPS://Example.ORG/a/b?c=d&e=f#g", "http://localhost:3000",
		"https://user:pw@example.org:8443/x", "http://[::1]:8080/",
		"http://127.0.0.1/a%20b", "https://example.org/~x/(y)", NULL
	};
	static const char *const bad[] = {
		"", "example.org", "//example.org", "ftp://example.org",
		"mailto:a@example.org", "http:/example.org", "http://",
		"http:///x", "http://:80/", "http://example.org:/",
		"http://example.org:99999/", "http://example.org:8o/",
		"http://example.org:123456/", "http://exa mple.org",
		"http://example.org/a b", "http://example.org/\t",
		"http://example.org/<x>", "http://example.org/%zz",
		"http://example.org/%2", "http://\xc3\xa9.org/",
		"http://[::1/", "http://[]/", "http://[::1]x/",
		"http://a]b/", "javascript:alert(1)", NULL
	};
	size_t	i;

	(void)state;
	for (i = 0; good[i] != NULL; i++) {
		if (!sb_validate_uri(good[i]))
			fail_msg("refused %s", good[i]);
	}
	for (i = 0; bad[i] != NULL; i++) {
		if (sb_validate_uri(bad[i]))
			fail_msg("accepted %s", bad[i]);
	}
	assert_false(sb_validate_uri(NULL));
}

static void
test_schema(void **state)
{
	static const char *const expected =
	    "{\"type\": \"object\","
	    " \"required\": [\"name\"],"
	    " \"properties\": {"
	    "  \"name\": {\"type\": \"string\", \"description\": \"Display name\","
	    "   \"minLength\": 2, \"maxLength\": 5, \"pattern\": \"\\\\S\"},"
	    "  \"age\": {\"type\": \"integer\", \"minimum\": 0,"
	    "   \"maximum\": 150},"
	    "  \"score\": {\"type\": \"number\", \"minimum\": -1,"
	    "   \"maximum\": 1},"
	    "  \"count\": {\"type\": \"integer\"},"
	    "  \"ratio\": {\"type\": \"number\"},"
	    "  \"active\": {\"type\": \"boolean\"},"
	    "  \"meta\": {\"type\": \"object\"},"
	    "  \"tags\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3,"
	    "   \"items\": {\"type\": \"string\"}},"
	    "  \"ids\": {\"type\": \"array\", \"minItems\": 2,"
	    "   \"items\": {\"type\": \"integer\"}},"
	    "  \"extra\": {},"
	    "  \"status\": {\"type\": \"string\", \"enum\": [\"open\","
	    "   \"closed\"]},"
	    "  \"email\": {\"type\": \"string\", \"format\": \"email\"},"
	    "  \"when\": {\"type\": \"string\", \"format\": \"date-time\"},"
	    "  \"link\": {\"type\": \"string\", \"format\": \"uri\"},"
	    "  \"note\": {\"type\": [\"string\", \"null\"], \"minLength\": 10,"
	    "   \"pattern\": \"\\\\S\"}"
	    " }}";
	static const struct sb_field nullable_enum[] = {
		{ .name = "s", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
		    .choices = status_choices },
		{ .name = "a", .type = SB_T_ANY, .flags = SB_F_NULLABLE },
		{ .name = "l", .type = SB_T_ARRAY, .item_type = SB_T_ANY },
		SB_FIELD_END
	};
	json_error_t	 jerr;
	json_t		*schema, *want;
	char		*got;

	(void)state;
	assert_non_null(want = json_loads(expected, 0, &jerr));
	assert_non_null(schema = sb_validate_schema(table));
	if (!json_equal(schema, want)) {
		got = json_dumps(schema, JSON_SORT_KEYS);
		fail_msg("schema differs: %s", got);
	}
	json_decref(schema);
	json_decref(want);

	assert_non_null(want = json_loads("{\"type\": \"object\","
	    " \"properties\": {\"s\": {\"type\": [\"string\", \"null\"],"
	    " \"enum\": [\"open\", \"closed\", null]}, \"a\": {},"
	    " \"l\": {\"type\": \"array\"}}}", 0, &jerr));
	assert_non_null(schema = sb_validate_schema(nullable_enum));
	if (!json_equal(schema, want)) {
		got = json_dumps(schema, JSON_SORT_KEYS);
		fail_msg("schema differs: %s", got);
	}
	json_decref(schema);
	json_decref(want);

	/* An empty table: an object with no properties, no "required". */
	assert_non_null(schema = sb_validate_schema(NULL));
	assert_non_null(want = json_loads("{\"type\": \"object\","
	    " \"properties\": {}}", 0, &jerr));
	assert_true(json_equal(schema, want));
	json_decref(schema);
	json_decref(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_not_object),
		cmocka_unit_test(test_required_and_missing),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_string_length),
		cmocka_unit_test(test_nul_and_empty),
		cmocka_unit_test(test_array),
		cmocka_unit_test(test_choices),
		cmocka_unit_test(test_formats_in_body),
		cmocka_unit_test(test_several),
		cmocka_unit_test(test_email),
		cmocka_unit_test(test_datetime),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_schema),
	};

	return (cmocka_run_group_tests_name("validate", tests, NULL, NULL));
}
