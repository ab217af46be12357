/*
 * The routing table of [plugin telephony] routing: per channel, a
 * number prefix to an ordered list of providers; the longest matching
 * prefix wins, "*" matching every number.
 */

#include <stdio.h>
#include <string.h>

#include "sms.h"

/* One rule "chan:prefix=a,b" in [s, e): 0 and its parts, or -1. */
static int
rule_split(const char *s, const char *e, const char **chan, size_t *chanlen,
    const char **pfx, size_t *pfxlen, const char **list, size_t *listlen)
{
	const char	*colon, *eq, *p;

	for (colon = s; colon < e && *colon != ':'; colon++)
		;
	for (eq = colon; eq < e && *eq != '='; eq++)
		;
	if (colon >= e || eq >= e)
		return (-1);
	*chan = s;
	*chanlen = (size_t)(colon - s);
	*pfx = colon + 1;
	*pfxlen = (size_t)(eq - colon - 1);
	*list = eq + 1;
	*listlen = (size_t)(e - eq - 1);
	if (!((*chanlen == 3 && strncmp(s, "sms", 3) == 0) ||
	    (*chanlen == 5 && strncmp(s, "voice", 5) == 0)))
		return (-1);
	if (*pfxlen == 1 && **pfx == '*')
		;
	else {
		if (*pfxlen < 2 || *pfxlen > 16 || **pfx != '+')
			return (-1);
		for (p = *pfx + 1; p < eq; p++)
			if (*p < '0' || *p > '9')
				return (-1);
	}
	if (*listlen == 0)
		return (-1);
	for (p = *list; p < e; p++) {
		if (*p == ',') {
			if (p == *list || p + 1 == e || p[1] == ',')
				return (-1);
		} else if (!((*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_'))
			return (-1);
	}
	return (0);
}

int
tel_route_parse(const char *rules, char *err, size_t errlen)
{
	const char	*s, *e, *c, *x, *l;
	size_t		 cl, xl, ll;

	for (s = rules; *s != '\0'; s = *e == ';' ? e + 1 : e) {
		for (e = s; *e != '\0' && *e != ';'; e++)
			;
		if (e == s)
			continue;
		if (rule_split(s, e, &c, &cl, &x, &xl, &l, &ll) == -1) {
			(void)snprintf(err, errlen, "routing: bad rule \"%.*s\""
			    " (want sms|voice:+prefix|*=provider,...)",
			    (int)(e - s > 64 ? 64 : e - s), s);
			return (-1);
		}
	}
	return (0);
}

int
tel_route_lookup(const char *rules, const char *channel, const char *number,
    char *out, size_t outlen)
{
	const char	*s, *e, *c, *x, *l, *best = NULL;
	size_t		 cl, xl, ll, bestpfx = 0, bestlen = 0;
	int		 found = 0;

	for (s = rules; *s != '\0'; s = *e == ';' ? e + 1 : e) {
		for (e = s; *e != '\0' && *e != ';'; e++)
			;
		if (e == s || rule_split(s, e, &c, &cl, &x, &xl, &l, &ll) == -1)
			continue;
		if (cl != strlen(channel) || strncmp(c, channel, cl) != 0)
			continue;
		if (xl == 1 && *x == '*') {
			/* Matches everything, as the shortest prefix (0). */
			if (!found) {
				found = 1;
				best = l;
				bestlen = ll;
				bestpfx = 0;
			}
			continue;
		}
		if (strncmp(number, x, xl) != 0)
			continue;
		if (!found || xl > bestpfx) {
			found = 1;
			best = l;
			bestlen = ll;
			bestpfx = xl;
		}
	}
	if (!found || bestlen + 1 > outlen)
		return (-1);
	memcpy(out, best, bestlen);
	out[bestlen] = '\0';
	return (0);
}
