/*
 * libFuzzer harness for body validation (src/validate.c): the input is
 * parsed as JSON (NULs in strings allowed, any top-level value) and
 * checked against a table that uses every type, flag and format.  The
 * count returned must match the errors appended, and every error must
 * have the envelope's shape.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Iinclude -Isrc $(pkg-config --cflags jansson) -o build/fuzz/fuzz_validate \
 *       tests/fuzz/fuzz_validate.c src/validate.c $(pkg-config --libs jansson)
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

static const char *const choices[] = { "open", "closed", "\xc3\xa9t\xc3\xa9",
    NULL };

static const struct sb_field table[] = {
	{ .name = "s", .type = SB_T_STRING, .flags = SB_F_REQUIRED |
	    SB_F_NONEMPTY, .min_len = 1, .max_len = 8 },
	{ .name = "i", .type = SB_T_INT, .flags = SB_F_RANGE | SB_F_NULLABLE,
	    .min = -10, .max = 10 },
	{ .name = "n", .type = SB_T_NUMBER, .flags = SB_F_RANGE,
	    .min = 0, .max = 1 },
	{ .name = "ii", .type = SB_T_INT },
	{ .name = "nn", .type = SB_T_NUMBER },
	{ .name = "b", .type = SB_T_BOOL },
	{ .name = "o", .type = SB_T_OBJECT, .flags = SB_F_NULLABLE },
	{ .name = "a", .type = SB_T_ARRAY, .flags = SB_F_NONEMPTY,
	    .min_len = 1, .max_len = 4, .item_type = SB_T_STRING },
	{ .name = "ai", .type = SB_T_ARRAY, .item_type = SB_T_INT },
	{ .name = "an", .type = SB_T_ARRAY, .item_type = SB_T_NUMBER },
	{ .name = "ab", .type = SB_T_ARRAY, .item_type = SB_T_BOOL },
	{ .name = "ao", .type = SB_T_ARRAY, .item_type = SB_T_OBJECT },
	{ .name = "aa", .type = SB_T_ARRAY, .item_type = SB_T_ARRAY },
	{ .name = "any", .type = SB_T_ANY },
	{ .name = "c", .type = SB_T_STRING, .choices = choices },
	{ .name = "e", .type = SB_T_STRING, .format = "email" },
	{ .name = "d", .type = SB_T_STRING, .format = "date-time" },
	{ .name = "u", .type = SB_T_STRING, .format = "uri" },
	{ .name = "x", .type = SB_T_STRING, .format = "unknown-format" },
	{ .name = "", .type = SB_T_STRING },
	SB_FIELD_END
};

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t	*schema;
	json_error_t	 jerr;
	json_t		*body, *errors, *e;
	const char	*s;
	size_t		 i;
	int		 n;

	if (schema == NULL && (schema = sb_validate_schema(table)) == NULL)
		abort();

	body = json_loadb((const char *)data, size,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (body == NULL)
		return (0);
	if ((errors = json_array()) == NULL)
		abort();
	n = sb_validate(table, body, errors);
	if (n < 0 || (size_t)n != json_array_size(errors) ||
	    sb_validate(table, body, NULL) != n)
		abort();
	json_array_foreach(errors, i, e) {
		if (json_object_size(e) != 3 ||
		    !json_is_string(json_object_get(e, "code")) ||
		    !json_is_string(json_object_get(e, "message")) ||
		    !(json_is_string(json_object_get(e, "field")) ||
		    json_is_null(json_object_get(e, "field"))))
			abort();
	}
	/* The format checks on their own, on whatever string came in. */
	if ((s = json_string_value(body)) != NULL) {
		(void)sb_validate_email(s);
		(void)sb_validate_datetime(s);
		(void)sb_validate_uri(s);
	}
	json_decref(errors);
	json_decref(body);
	return (0);
}
