/*
 * Pure parts of the telephony plugin, without the host: SMS segment
 * counting (segments.c), the routing table (routing.c) and the
 * application/x-www-form-urlencoded parser (form.c).  Unit-tested in
 * tests/unit/test_telephony.c.
 */

#ifndef TELEPHONY_SMS_H
#define TELEPHONY_SMS_H

#include <stddef.h>

#define TEL_ENC_GSM7		0
#define TEL_ENC_UCS2		1
#define TEL_MAX_SEGMENTS	10

/*
 * Segments of an SMS body (UTF-8): GSM-7 (basic table, extension table
 * characters counting two septets; 160 septets in one segment, 153 in
 * each of several) when every character is in the GSM 03.38 tables, else
 * UCS-2 (70 units alone, 67 each of several; a character outside the BMP
 * counts two units).  Returns the number of segments (0 for an empty
 * body), -1 when text is not valid UTF-8.  *encoding: TEL_ENC_*;
 * *units: septets or UCS-2 units.
 */
int	tel_segments(const char *text, size_t len, int *encoding,
	    size_t *units);

/*
 * Routing: "sms:+91=exotel,twilio;sms:*=twilio;voice:*=freeswitch".
 * tel_route_parse checks the text (names [a-z0-9_]+, prefixes "*" or
 * "+" and digits, channels sms|voice); 0 or -1 with a reason in err.
 * tel_route_lookup writes the providers of the longest prefix matching
 * number on channel into out (comma-separated, NUL-terminated): 0, or
 * -1 when no rule matches.
 */
int	tel_route_parse(const char *rules, char *err, size_t errlen);
int	tel_route_lookup(const char *rules, const char *channel,
	    const char *number, char *out, size_t outlen);

/*
 * A form body: calls cb for each name=value pair, both percent-decoded
 * ('+' as space) and NUL-terminated.  Returns the number of pairs, -1
 * on a malformed body (bad escape, NUL byte, empty name, over maxpairs
 * pairs or a field longer than 4096 bytes) or when cb returns -1.
 */
typedef int (*tel_form_cb)(const char *name, const char *value, void *arg);
int	tel_form_parse(const char *body, size_t len, size_t maxpairs,
	    tel_form_cb cb, void *arg);

/*
 * A provider's error text without the phone numbers it may quote
 * (Twilio's 21211 names the number): every run of 6 or more digits with
 * its +, spaces, dashes, dots and brackets becomes "[number]".  Written
 * into buf (len > 0); returns buf, or NULL when in is NULL.
 */
const char *tel_scrub(const char *in, char *buf, size_t len);

/* XML text (TwiML): & < > " ' as entities; the caller frees; NULL when
 * out of memory. */
char	*tel_xml_escape(const char *);

#endif /* TELEPHONY_SMS_H */
