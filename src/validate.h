/*
 * Declarative request-body validation against a plugin's struct sb_field
 * table (include/switchboard/plugin.h), and the matching JSON Schema for
 * the OpenAPI document.  Pure C and jansson, no Kore.
 */

#ifndef SB_VALIDATE_H
#define SB_VALIDATE_H

#include <jansson.h>

#include <switchboard/plugin.h>

/*
 * An array whose items are all wrong would otherwise produce one error
 * per item; past this many item errors in one array the rest are dropped.
 */
#define SB_VALIDATE_MAX_ITEM_ERRORS	16

/*
 * Validates body (must be a JSON object) against the NULL-name-terminated
 * fields table.  Appends one {"field", "code", "message"} object per
 * problem to errors (a JSON array; NULL only counts) and returns how many
 * problems were found.  A body that is not an object gives one
 * INVALID_TYPE error with "field": null.  Each value (a field, or one
 * item of an array field, named "tags[3]") reports at most one problem,
 * the first found.
 */
int	 sb_validate(const struct sb_field *fields, const json_t *body,
	    json_t *errors);

/*
 * JSON Schema (draft 2020-12, as OpenAPI 3.1 uses it) of an object
 * described by fields.  Caller owns the result; NULL on allocation failure.
 */
json_t	*sb_validate_schema(const struct sb_field *fields);

/* Format checks; 1 when s is valid, else 0. */
int	 sb_validate_email(const char *s);
int	 sb_validate_datetime(const char *s);
int	 sb_validate_uri(const char *s);

#endif /* SB_VALIDATE_H */
