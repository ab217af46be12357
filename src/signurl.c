/*
 * Signed URLs (ABI 1.3, api->signed_url): a GET route declared with a
 * permission and SB_ROUTE_SIGNED also admits a caller without
 * credentials whose query carries `exp` (unix seconds) and `sig`, made
 * by the route's own plugin for exactly that path.  So a browser's <img>
 * or <audio>, or a provider fetching a file, needs no bearer header,
 * and the registry, the OpenAPI document and the authorisation matrix
 * still see an ordinary permission route.
 *
 *	sig = base64url(HMAC-SHA256(K, path "\n" exp)), 43 characters
 *
 * K is the blind-index key of the owning plugin for the domain
 * "signed-url" (seal.c: derived from SB_INDEX_KEY, or the data key), so
 * one plugin's signatures never open another's routes.  The path is the
 * request path as sent (no query), so a signature for one item's
 * content opens neither its thumbnail nor another item.  Verification is
 * in constant time; an expired, altered or foreign signature is 403,
 * never a fall-back to the caller's credentials.
 */

#include <sys/types.h>

#include <openssl/crypto.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb.h"

#define SIGN_DOMAIN	"signed-url"
#define SIG_LEN		43		/* base64url of 32 bytes */
#define PATH_MAX_SIGN	2048

static char	*sign(const char *, const char *, long long);

static char *
sign(const char *plugin_id, const char *path, long long exp)
{
	char	value[PATH_MAX_SIGN + 32];
	int	n;

	n = snprintf(value, sizeof(value), "%s\n%lld", path, exp);
	if (n < 0 || (size_t)n >= sizeof(value))
		return (NULL);
	return (sb_blind_index(plugin_id, SIGN_DOMAIN, value, (size_t)n));
}

/* "path?exp=...&sig=..." valid for ttl_s seconds; NULL without a key. */
char *
sb_signed_url(const char *plugin_id, const char *path, unsigned int ttl_s)
{
	char		*sig, *url;
	long long	 exp;

	if (plugin_id == NULL || path == NULL || path[0] != '/' ||
	    strchr(path, '?') != NULL || strlen(path) > PATH_MAX_SIGN ||
	    ttl_s == 0)
		return (NULL);
	exp = (long long)time(NULL) + ttl_s;
	if ((sig = sign(plugin_id, path, exp)) == NULL)
		return (NULL);
	if (asprintf(&url, "%s?exp=%lld&sig=%s", path, exp, sig) == -1)
		url = NULL;
	free(sig);
	return (url);
}

/* 1: sig is the plugin's unexpired signature of path at exp_s. */
int
sb_signed_verify(const char *plugin_id, const char *path, const char *exp_s,
    const char *sig)
{
	char		*want, *end;
	long long	 exp;
	int		 ok;

	if (plugin_id == NULL || path == NULL || exp_s == NULL ||
	    sig == NULL || strlen(sig) != SIG_LEN)
		return (0);
	errno = 0;
	exp = strtoll(exp_s, &end, 10);
	if (errno != 0 || end == exp_s || *end != '\0' ||
	    exp < (long long)time(NULL))
		return (0);
	if ((want = sign(plugin_id, path, exp)) == NULL)
		return (0);
	ok = strlen(want) == SIG_LEN && CRYPTO_memcmp(want, sig, SIG_LEN) == 0;
	free(want);
	return (ok);
}
