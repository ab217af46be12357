/*
 * Declarative body validation: the checks a route's struct sb_field table
 * asks for, the field-level error objects of the error envelope
 * (shared/API.md), and the JSON Schema the OpenAPI document shows for the
 * same table, so the documentation and the checks cannot drift apart.
 *
 * jansson has already guaranteed that every string is valid UTF-8, which
 * the character counting below relies on.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"
#include "validate.h"

static int		 add_error(json_t *, const char *, const char *,
			    const char *, ...)
			    __attribute__((format(printf, 4, 5)));
static const char	*type_name(enum sb_type);
static const char	*type_message(enum sb_type);
static int		 check_type(enum sb_type, const json_t *, const char *,
			    json_t *);
static int		 check_field(const struct sb_field *, const json_t *,
			    json_t *);
static int		 check_string(const struct sb_field *, const json_t *,
			    json_t *);
static int		 check_range(const struct sb_field *, const json_t *,
			    json_t *);
static int		 check_array(const struct sb_field *, const json_t *,
			    json_t *);
static int		 choices_error(const struct sb_field *, json_t *);
static size_t		 utf8_chars(const char *, size_t);
static int		 utf8_next(const char *, size_t, size_t *);
static int		 is_blank(const char *, size_t);
static json_t		*field_schema(const struct sb_field *);
static int		 days_in_month(int, int);
static int		 digits(const char *, int, int *);

int
sb_validate(const struct sb_field *fields, const json_t *body, json_t *errors)
{
	const struct sb_field	*f;
	const json_t		*v;
	int			 n;

	if (!json_is_object(body))
		return (add_error(errors, NULL, "INVALID_TYPE",
		    "request body must be a JSON object"));

	n = 0;
	for (f = fields; f != NULL && f->name != NULL; f++) {
		v = json_object_get(body, f->name);
		if (v == NULL) {
			if (f->flags & SB_F_REQUIRED)
				n += add_error(errors, f->name, "REQUIRED",
				    "is required");
			continue;
		}
		if (json_is_null(v)) {
			if (!(f->flags & SB_F_NULLABLE))
				n += add_error(errors, f->name,
				    "NULL_NOT_ALLOWED", "must not be null");
			continue;
		}
		n += check_field(f, v, errors);
	}
	return (n);
}

json_t *
sb_validate_schema(const struct sb_field *fields)
{
	const struct sb_field	*f;
	json_t			*schema, *props, *req;
	int			 bad;

	schema = json_object();
	props = json_object();
	req = json_array();
	if (schema == NULL || props == NULL || req == NULL)
		goto fail;

	bad = 0;
	for (f = fields; f != NULL && f->name != NULL; f++) {
		bad |= json_object_set_new(props, f->name, field_schema(f));
		if (f->flags & SB_F_REQUIRED)
			bad |= json_array_append_new(req, json_string(f->name));
	}
	bad |= json_object_set_new(schema, "type", json_string("object"));
	bad |= json_object_set(schema, "properties", props);
	if (json_array_size(req) > 0)
		bad |= json_object_set(schema, "required", req);
	if (bad)
		goto fail;

	json_decref(props);
	json_decref(req);
	return (schema);

fail:
	json_decref(schema);
	json_decref(props);
	json_decref(req);
	return (NULL);
}

/*
 * Pragmatic, not RFC 5322: what a person types as an address.  One '@',
 * a dot-atom local part (UTF-8 allowed, RFC 6531), a domain of at least
 * two LDH labels whose last is alphabetic or an IDN "xn--" label.
 */
int
sb_validate_email(const char *s)
{
	const char	*at, *p, *label;
	size_t		 len, llen, lablen;
	unsigned char	 c;

	if (s == NULL || (len = strlen(s)) == 0 || len > 254)
		return (0);
	if ((at = strchr(s, '@')) == NULL || strchr(at + 1, '@') != NULL)
		return (0);

	llen = at - s;
	if (llen == 0 || llen > 64 || s[0] == '.' || at[-1] == '.')
		return (0);
	for (p = s; p < at; p++) {
		c = (unsigned char)*p;
		if (c == '.' && p[1] == '.')
			return (0);
		if (c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (strchr("!#$%&'*+/=?^_`{|}~.-", c) == NULL)
			return (0);
	}

	label = at + 1;
	if (*label == '\0' || strchr(label, '.') == NULL)
		return (0);
	for (;;) {
		for (p = label; *p != '\0' && *p != '.'; p++) {
			c = (unsigned char)*p;
			if (!(c >= 0x80 || c == '-' || (c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
				return (0);
		}
		lablen = p - label;
		if (lablen == 0 || lablen > 63 || label[0] == '-' ||
		    p[-1] == '-')
			return (0);
		if (*p == '\0')
			break;
		label = p + 1;
	}

	/* label is now the top-level domain. */
	if (lablen >= 4 && strncasecmp(label, "xn--", 4) == 0)
		return (1);
	if (lablen < 2)
		return (0);
	for (p = label; *p != '\0'; p++) {
		c = (unsigned char)*p;
		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z')))
			return (0);
	}
	return (1);
}

/*
 * RFC 3339 section 5.6 date-time: full-date "T" full-time, where a
 * second of 60 is only accepted for a leap second, i.e. at 23:59:60 UTC.
 */
int
sb_validate_datetime(const char *s)
{
	const char	*p;
	int		 y, mo, d, h, mi, sec, oh, om, sign, utc;

	if (s == NULL)
		return (0);
	p = s;
	if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) ||
	    p[7] != '-' || !digits(p + 8, 2, &d))
		return (0);
	p += 10;
	if (*p != 'T' && *p != 't')
		return (0);
	p++;
	if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi) ||
	    p[5] != ':' || !digits(p + 6, 2, &sec))
		return (0);
	p += 8;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return (0);
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		sign = 0;
		oh = om = 0;
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' ||
		    !digits(p + 4, 2, &om))
			return (0);
		p += 6;
	} else {
		return (0);
	}
	if (*p != '\0')
		return (0);

	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return (0);
	if (h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
		return (0);
	if (sec == 60) {
		utc = h * 60 + mi - sign * (oh * 60 + om);
		utc = ((utc % 1440) + 1440) % 1440;
		if (utc != 23 * 60 + 59)
			return (0);
	}
	return (1);
}

/*
 * An absolute http or https URL with a host, printable ASCII only and
 * none of the characters RFC 3986 never allows unescaped.
 */
int
sb_validate_uri(const char *s)
{
	const char	*p, *auth, *end, *host, *hend, *port;
	size_t		 i;
	long		 pn;

	if (s == NULL)
		return (0);
	if (strncasecmp(s, "http://", 7) == 0)
		auth = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		auth = s + 8;
	else
		return (0);

	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("<>\"{}|\\^`", *p) != NULL)
			return (0);
		if (*p == '%' && (sb_hexval(p[1]) == -1 || sb_hexval(p[2]) == -1))
			return (0);
	}

	end = auth + strcspn(auth, "/?#");
	host = auth;
	for (p = auth; p < end; p++) {
		if (*p == '@')
			host = p + 1;
	}
	if (host < end && *host == '[') {
		if ((hend = memchr(host, ']', end - host)) == NULL ||
		    hend == host + 1)
			return (0);
		port = hend + 1;
		if (port < end && *port != ':')
			return (0);
	} else {
		hend = memchr(host, ':', end - host);
		if (hend == NULL)
			hend = end;
		if (hend == host)
			return (0);
		for (p = host; p < hend; p++) {
			if (*p == '[' || *p == ']')
				return (0);
		}
		port = hend;
	}
	if (port < end) {
		/* *port == ':' */
		pn = 0;
		for (i = 1; port + i < end; i++) {
			if (port[i] < '0' || port[i] > '9' || i > 5)
				return (0);
			pn = pn * 10 + (port[i] - '0');
		}
		if (i == 1 || pn > 65535)
			return (0);
	}
	return (1);
}

/* Returns 1: the number of problems it records, even if appending fails. */
static int
add_error(json_t *errors, const char *field, const char *code,
    const char *fmt, ...)
{
	json_t	*e;
	va_list	 ap;
	char	 msg[512];

	if (!json_is_array(errors))
		return (1);
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if ((e = json_object()) == NULL)
		return (1);
	if (json_object_set_new(e, "field",
	    field != NULL ? json_string(field) : json_null()) == -1 ||
	    json_object_set_new(e, "code", json_string(code)) == -1 ||
	    json_object_set_new(e, "message", json_string(msg)) == -1) {
		json_decref(e);
		return (1);
	}
	(void)json_array_append_new(errors, e);
	return (1);
}

static const char *
type_name(enum sb_type t)
{
	switch (t) {
	case SB_T_STRING:
		return ("string");
	case SB_T_INT:
		return ("integer");
	case SB_T_NUMBER:
		return ("number");
	case SB_T_BOOL:
		return ("boolean");
	case SB_T_OBJECT:
		return ("object");
	case SB_T_ARRAY:
		return ("array");
	case SB_T_ANY:
	default:
		return (NULL);
	}
}

static const char *
type_message(enum sb_type t)
{
	switch (t) {
	case SB_T_STRING:
		return ("must be a string");
	case SB_T_INT:
		return ("must be an integer");
	case SB_T_NUMBER:
		return ("must be a number");
	case SB_T_BOOL:
		return ("must be a boolean");
	case SB_T_OBJECT:
		return ("must be an object");
	case SB_T_ARRAY:
		return ("must be an array");
	case SB_T_ANY:
	default:
		return (NULL);
	}
}

/*
 * The type check shared by fields and array items.  A string with an
 * embedded NUL (jansson accepts "\u0000") is refused here because every
 * handler reads strings as C strings and would silently see a prefix.
 */
static int
check_type(enum sb_type t, const json_t *v, const char *field, json_t *errors)
{
	const char	*s;
	int		 ok;

	switch (t) {
	case SB_T_STRING:
		ok = json_is_string(v);
		break;
	case SB_T_INT:
		ok = json_is_integer(v);
		break;
	case SB_T_NUMBER:
		ok = json_is_number(v);
		break;
	case SB_T_BOOL:
		ok = json_is_boolean(v);
		break;
	case SB_T_OBJECT:
		ok = json_is_object(v);
		break;
	case SB_T_ARRAY:
		ok = json_is_array(v);
		break;
	case SB_T_ANY:
	default:
		return (0);
	}
	if (!ok)
		return (add_error(errors, field, "INVALID_TYPE", "%s",
		    type_message(t)));
	if (t == SB_T_STRING) {
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v))
			return (add_error(errors, field, "INVALID_FORMAT",
			    "must not contain NUL characters"));
	}
	return (0);
}

static int
check_field(const struct sb_field *f, const json_t *v, json_t *errors)
{
	if (check_type(f->type, v, f->name, errors))
		return (1);
	switch (f->type) {
	case SB_T_STRING:
		return (check_string(f, v, errors));
	case SB_T_INT:
	case SB_T_NUMBER:
		return (check_range(f, v, errors));
	case SB_T_ARRAY:
		return (check_array(f, v, errors));
	default:
		return (0);
	}
}

static int
check_string(const struct sb_field *f, const json_t *v, json_t *errors)
{
	const char	*s;
	size_t		 len, n, i;

	s = json_string_value(v);
	len = json_string_length(v);

	if ((f->flags & SB_F_NONEMPTY) && is_blank(s, len))
		return (add_error(errors, f->name, "EMPTY",
		    "must not be empty"));
	n = utf8_chars(s, len);
	if (f->min_len > 0 && n < f->min_len)
		return (add_error(errors, f->name, "TOO_SHORT",
		    "must be at least %zu character%s", f->min_len,
		    f->min_len == 1 ? "" : "s"));
	if (f->max_len > 0 && n > f->max_len)
		return (add_error(errors, f->name, "TOO_LONG",
		    "must be at most %zu character%s", f->max_len,
		    f->max_len == 1 ? "" : "s"));
	if (f->choices != NULL) {
		for (i = 0; f->choices[i] != NULL; i++) {
			if (strcmp(s, f->choices[i]) == 0)
				break;
		}
		if (f->choices[i] == NULL)
			return (choices_error(f, errors));
	}
	if (f->format == NULL)
		return (0);
	if (strcmp(f->format, "email") == 0 && !sb_validate_email(s))
		return (add_error(errors, f->name, "INVALID_FORMAT",
		    "must be a valid email address"));
	if (strcmp(f->format, "date-time") == 0 && !sb_validate_datetime(s))
		return (add_error(errors, f->name, "INVALID_FORMAT",
		    "must be an RFC 3339 date-time, e.g. "
		    "2026-01-02T03:04:05Z"));
	if (strcmp(f->format, "uri") == 0 && !sb_validate_uri(s))
		return (add_error(errors, f->name, "INVALID_FORMAT",
		    "must be an absolute http or https URL"));
	return (0);
}

static int
check_range(const struct sb_field *f, const json_t *v, json_t *errors)
{
	long long	i;
	double		d;

	if (!(f->flags & SB_F_RANGE))
		return (0);
	if (json_is_integer(v)) {
		i = json_integer_value(v);
		if (i >= f->min && i <= f->max)
			return (0);
	} else {
		d = json_real_value(v);
		if (d >= (double)f->min && d <= (double)f->max)
			return (0);
	}
	return (add_error(errors, f->name, "OUT_OF_RANGE",
	    "must be between %lld and %lld", f->min, f->max));
}

static int
check_array(const struct sb_field *f, const json_t *v, json_t *errors)
{
	const json_t	*item;
	char		*name;
	size_t		 n, i;
	int		 errs, ierrs;

	errs = 0;
	n = json_array_size(v);
	if ((f->flags & SB_F_NONEMPTY) && n == 0)
		errs += add_error(errors, f->name, "EMPTY",
		    "must not be empty");
	else if (f->min_len > 0 && n < f->min_len)
		errs += add_error(errors, f->name, "TOO_SHORT",
		    "must have at least %zu item%s", f->min_len,
		    f->min_len == 1 ? "" : "s");
	else if (f->max_len > 0 && n > f->max_len)
		errs += add_error(errors, f->name, "TOO_LONG",
		    "must have at most %zu item%s", f->max_len,
		    f->max_len == 1 ? "" : "s");

	if (f->item_type == 0 || f->item_type == SB_T_ANY)
		return (errs);
	ierrs = 0;
	for (i = 0; i < n && ierrs < SB_VALIDATE_MAX_ITEM_ERRORS; i++) {
		item = json_array_get(v, i);
		if (check_type(f->item_type, item, NULL, NULL) == 0)
			continue;
		/* Named only on failure: valid items allocate nothing. */
		if (asprintf(&name, "%s[%zu]", f->name, i) == -1)
			name = NULL;
		ierrs += check_type(f->item_type, item,
		    name != NULL ? name : f->name, errors);
		free(name);
	}
	return (errs + ierrs);
}

static int
choices_error(const struct sb_field *f, json_t *errors)
{
	char	msg[400];
	size_t	off, i;
	int	w;

	off = 0;
	msg[0] = '\0';
	for (i = 0; f->choices[i] != NULL; i++) {
		w = snprintf(msg + off, sizeof(msg) - off, "%s%s",
		    i > 0 ? ", " : "", f->choices[i]);
		if (w < 0 || (size_t)w >= sizeof(msg) - off) {
			/* A long list is cut; the schema has all of it. */
			memcpy(msg + sizeof(msg) - 5, " ...", 5);
			break;
		}
		off += w;
	}
	return (add_error(errors, f->name, "INVALID_CHOICE",
	    "must be one of: %s", msg));
}

static size_t
utf8_chars(const char *s, size_t len)
{
	size_t	i, n;

	for (i = 0, n = 0; i < len; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	}
	return (n);
}

/* Decodes the code point at s[*i] (valid UTF-8) and advances *i. */
static int
utf8_next(const char *s, size_t len, size_t *i)
{
	const unsigned char	*u;
	int			 cp, more;

	u = (const unsigned char *)s;
	cp = u[*i];
	if (cp < 0x80)
		more = 0;
	else if (cp < 0xe0) {
		cp &= 0x1f;
		more = 1;
	} else if (cp < 0xf0) {
		cp &= 0x0f;
		more = 2;
	} else {
		cp &= 0x07;
		more = 3;
	}
	for ((*i)++; more > 0 && *i < len; more--, (*i)++)
		cp = cp << 6 | (u[*i] & 0x3f);
	return (cp);
}

/*
 * Whitespace per Unicode's White_Space property, plus the zero-width
 * space and BOM, which look just as empty in a form.
 */
static int
is_blank(const char *s, size_t len)
{
	size_t	i;
	int	cp;

	for (i = 0; i < len;) {
		cp = utf8_next(s, len, &i);
		if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0x85 ||
		    cp == 0xa0 || cp == 0x1680 ||
		    (cp >= 0x2000 && cp <= 0x200b) || cp == 0x2028 ||
		    cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
		    cp == 0x3000 || cp == 0xfeff)
			continue;
		return (0);
	}
	return (1);
}

static json_t *
field_schema(const struct sb_field *f)
{
	json_t		*o, *t, *en, *items;
	const char	*tn;
	size_t		 i, minl;
	int		 bad;

	if ((o = json_object()) == NULL)
		return (NULL);
	bad = 0;

	if ((tn = type_name(f->type)) != NULL) {
		if (f->flags & SB_F_NULLABLE)
			t = json_pack("[ss]", tn, "null");
		else
			t = json_string(tn);
		bad |= json_object_set_new(o, "type", t);
	}
	if (f->description != NULL)
		bad |= json_object_set_new(o, "description",
		    json_string(f->description));

	minl = f->min_len;
	if ((f->flags & SB_F_NONEMPTY) && minl == 0)
		minl = 1;

	switch (f->type) {
	case SB_T_STRING:
		if (minl > 0)
			bad |= json_object_set_new(o, "minLength",
			    json_integer((json_int_t)minl));
		if (f->max_len > 0)
			bad |= json_object_set_new(o, "maxLength",
			    json_integer((json_int_t)f->max_len));
		if (f->flags & SB_F_NONEMPTY)
			bad |= json_object_set_new(o, "pattern",
			    json_string("\\S"));
		if (f->choices != NULL) {
			if ((en = json_array()) == NULL) {
				bad = 1;
				break;
			}
			for (i = 0; f->choices[i] != NULL; i++)
				bad |= json_array_append_new(en,
				    json_string(f->choices[i]));
			if (f->flags & SB_F_NULLABLE)
				bad |= json_array_append_new(en, json_null());
			bad |= json_object_set_new(o, "enum", en);
		}
		if (f->format != NULL)
			bad |= json_object_set_new(o, "format",
			    json_string(f->format));
		break;
	case SB_T_INT:
	case SB_T_NUMBER:
		if (f->flags & SB_F_RANGE) {
			bad |= json_object_set_new(o, "minimum",
			    json_integer(f->min));
			bad |= json_object_set_new(o, "maximum",
			    json_integer(f->max));
		}
		break;
	case SB_T_ARRAY:
		if (minl > 0)
			bad |= json_object_set_new(o, "minItems",
			    json_integer((json_int_t)minl));
		if (f->max_len > 0)
			bad |= json_object_set_new(o, "maxItems",
			    json_integer((json_int_t)f->max_len));
		if ((tn = type_name(f->item_type)) != NULL) {
			items = json_pack("{ss}", "type", tn);
			bad |= json_object_set_new(o, "items", items);
		}
		break;
	default:
		break;
	}

	if (bad) {
		json_decref(o);
		return (NULL);
	}
	return (o);
}

static int
days_in_month(int y, int m)
{
	static const int	days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return (29);
	return (days[m - 1]);
}

/* Exactly n ASCII digits at s; stops at a NUL, so never reads past it. */
static int
digits(const char *s, int n, int *out)
{
	int	i;

	*out = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (0);
		*out = *out * 10 + (s[i] - '0');
	}
	return (1);
}

