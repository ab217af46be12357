/*
 * What the providers' send calls share (provider.h): the form body they
 * post, and what an HTTP answer means for the message — the core's
 * failover and never-twice rules in one place.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>

#include "provider.h"

/* Append name=urlencoded(value) to a growing buffer; -1: out of memory. */
int
tel_form_add(char **buf, size_t *len, size_t *cap, const char *name,
    const char *value)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 need;
	const unsigned char	*v;
	char			*n;

	need = *len + strlen(name) + 2 + strlen(value) * 3 + 1;
	if (need > *cap) {
		if ((n = realloc(*buf, need * 2)) == NULL)
			return (-1);
		*buf = n;
		*cap = need * 2;
	}
	if (*len > 0)
		(*buf)[(*len)++] = '&';
	*len += (size_t)sprintf(*buf + *len, "%s=", name);
	for (v = (const unsigned char *)value; *v != '\0'; v++) {
		if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') ||
		    (*v >= '0' && *v <= '9') || *v == '-' || *v == '_' ||
		    *v == '.' || *v == '~')
			(*buf)[(*len)++] = (char)*v;
		else {
			(*buf)[(*len)++] = '%';
			(*buf)[(*len)++] = hex[*v >> 4];
			(*buf)[(*len)++] = hex[*v & 15];
		}
	}
	(*buf)[*len] = '\0';
	return (0);
}

/*
 * No HTTP answer (res->status 0): refused for certain when nothing
 * reached the provider (the breaker was open, the connection or the name
 * failed), else ambiguous: the request may have been taken, so the
 * message is never sent again.
 */
void
tel_outcome_transport(const struct sb_http_response *res,
    struct tel_send_result *r)
{
	const char	*e = res->error != NULL ? res->error : "no response";

	if (strcmp(e, "circuit open") == 0 || strstr(e, "connect") != NULL ||
	    strstr(e, "resolve") != NULL)
		r->outcome = TEL_REFUSED;
	else
		r->outcome = TEL_AMBIGUOUS;
	r->detail = e;
}

/* An error answer: 401/403 the next provider may try, 429 and 5xx
 * later, anything else refused for good. */
void
tel_outcome_http(const struct sb_http_response *res,
    struct tel_send_result *r)
{
	r->retry_after = res->retry_after;
	if (res->status == 401 || res->status == 403)
		r->outcome = TEL_REFUSED;
	else if (res->status == 429 || res->status >= 500)
		r->outcome = TEL_RETRY;
	else
		r->outcome = TEL_REJECTED;
}
