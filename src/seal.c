/*
 * Secrets and personal data at rest: what plugins store that must not be
 * readable from the database alone (meeting tokens, provider credentials,
 * phone numbers), and blind indexes for equality lookups on such values.
 *
 * Keys.  The host holds a current data key (SB_DATA_KEY) and any number of
 * retired ones (SB_DATA_KEYS_RETIRED), each at least 32 characters.  Each
 * plugin gets its own AES-256 key from a data key by HKDF-SHA256 with the
 * plugin's id as info, so one plugin cannot open what another sealed, and
 * a sealed value moved between plugins fails to open.  A value is sealed
 * with AES-256-GCM under a fresh random 96-bit nonce and the current key,
 * and stored as
 *
 *	"v2." kid "." base64url(nonce[12] | ciphertext | tag[16])
 *
 * kid names the data key: 8 base64url characters of HMAC-SHA256(data key,
 * KID_LABEL), stable for a key, revealing nothing of it.  unseal() opens v2
 * under whichever known key has that kid, and the older "v1." form (no
 * kid) by trying the current key and then each retired one.  reseal()
 * turns anything that opens into v2 under the current key: the key
 * rotation job (rekey.c) drives it through each plugin's rekey hook.
 *
 * Blind indexes.  HMAC-SHA256 of the value under a key derived by HKDF
 * from SB_INDEX_KEY (or, when unset, from the current data key with
 * another salt, so it is never a sealing key), with info = plugin id,
 * NUL, domain: equal values of one plugin and domain give equal indexes,
 * and nothing else matches.  The index key is separate so that rotating
 * the data key leaves every index as it is (docs/ARCHITECTURE.md).
 *
 * Without a data key nothing is sealed: seal() fails (and says so once),
 * so a plugin answers 503 rather than storing plaintext.
 */

#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>

#include "sb.h"

#define V1_PREFIX	"v1."
#define V2_PREFIX	"v2."
#define KID_LEN		8	/* base64url characters: 6 bytes of HMAC */
#define KID_LABEL	"switchboard-data-key-id-v1"
#define NONCE_LEN	12
#define TAG_LEN		16
#define KEY_LEN		32
#define SEAL_MAX	(1024 * 1024)	/* plaintext bytes */
#define DOMAIN_MAX	64
#define INDEX_LEN	43	/* base64url of 32 bytes */
#define DATA_KEY_MIN	32

static int	derive(const char *, const char *, const char *, size_t,
		    unsigned char[KEY_LEN]);
static int	have_key(void);
static void	key_id(const char *, char[KID_LEN + 1]);
static int	gcm(int, const unsigned char[KEY_LEN], const unsigned char *,
		    const unsigned char *, size_t, unsigned char *,
		    unsigned char[TAG_LEN]);
static char	*open_with(const char *, const char *, const unsigned char *,
		    size_t, size_t *);
static char	*unseal_kid(const char *, const char *, size_t *, int *);

/* HKDF-SHA256(ikm, salt, info[infolen]) -> 32 bytes. */
static int
derive(const char *ikm, const char *salt, const char *info, size_t infolen,
    unsigned char key[KEY_LEN])
{
	/* OSSL_PARAM wants writable pointers; it does not write. */
	static char		 digest[] = "SHA256";
	EVP_KDF			*kdf;
	EVP_KDF_CTX		*kctx;
	OSSL_PARAM		 params[5], *p = params;
	int			 ok;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		return (-1);
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (kctx == NULL)
		return (-1);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)(uintptr_t)ikm, strlen(ikm));
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)(uintptr_t)salt, strlen(salt));
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)(uintptr_t)info, infolen);
	*p = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kctx, key, KEY_LEN, params) == 1;
	EVP_KDF_CTX_free(kctx);
	return (ok ? 0 : -1);
}

/* The sealing key of plugin_id under data key dk. */
static int
seal_key(const char *dk, const char *plugin_id, unsigned char key[KEY_LEN])
{
	if (strlen(plugin_id) >= 256)
		return (-1);
	return (derive(dk, "switchboard-seal-v1", plugin_id,
	    strlen(plugin_id), key));
}

static int
have_key(void)
{
	static int	warned;

	if (sb_settings.data_key != NULL)
		return (1);
	if (!warned) {
		sb_log(SB_LOG_ERROR, "seal", "SB_DATA_KEY is not set: plugins "
		    "cannot store secrets (`make run` generates one into "
		    "var/secrets)");
		warned = 1;
	}
	return (0);
}

/* The key id of data key dk: a label MAC'd under it, never the key. */
static void
key_id(const char *dk, char kid[KID_LEN + 1])
{
	unsigned char	mac[EVP_MAX_MD_SIZE];
	unsigned int	maclen = 0;

	if (HMAC(EVP_sha256(), dk, (int)strlen(dk),
	    (const unsigned char *)KID_LABEL, sizeof(KID_LABEL) - 1, mac,
	    &maclen) == NULL || maclen < 6) {
		memset(kid, 'A', KID_LEN);
		kid[KID_LEN] = '\0';
		return;
	}
	sb_base64url(mac, 6, kid, KID_LEN + 1);
}

void
sb_seal_kid(const char *data_key, char kid[9])
{
	key_id(data_key, kid);
}

/*
 * "a, b c\n d" -> NULL-terminated array of keys (caller frees each and
 * the array with free()), each at least 32 characters; -1 with err set
 * otherwise.  NULL or empty text: an empty array.
 */
int
sb_seal_keys_parse(const char *text, char ***out, char *err, size_t errlen)
{
	char		**keys;
	const char	 *s, *e;
	size_t		  n, i;

	*out = NULL;
	if (text == NULL)
		text = "";
	if ((keys = calloc(strlen(text) / 2 + 2, sizeof(*keys))) == NULL) {
		sb_seterr(err, errlen, "out of memory");
		return (-1);
	}
	n = 0;
	for (s = text; *s != '\0'; s = e) {
		while (*s == ',' || isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		for (e = s; *e != '\0' && *e != ',' &&
		    !isspace((unsigned char)*e); e++)
			;
		if ((size_t)(e - s) < DATA_KEY_MIN) {
			sb_seterr(err, errlen, "SB_DATA_KEYS_RETIRED: key %zu "
			    "has %zu characters; every key has at least %d",
			    n + 1, (size_t)(e - s), DATA_KEY_MIN);
			goto fail;
		}
		if ((keys[n] = strndup(s, (size_t)(e - s))) == NULL) {
			sb_seterr(err, errlen, "out of memory");
			goto fail;
		}
		n++;
	}
	*out = keys;
	return (0);
fail:
	for (i = 0; i < n; i++) {
		OPENSSL_cleanse(keys[i], strlen(keys[i]));
		free(keys[i]);
	}
	free(keys);
	return (-1);
}

/* AES-256-GCM: dir 1 encrypts, 0 decrypts (and checks the tag). */
static int
gcm(int dir, const unsigned char key[KEY_LEN], const unsigned char *nonce,
    const unsigned char *in, size_t len, unsigned char *out,
    unsigned char tag[TAG_LEN])
{
	EVP_CIPHER_CTX	*ctx;
	int		 n, fin, ok = 0;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return (-1);
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    dir) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, dir) != 1)
		goto out;
	if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!dir && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	    tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + (len > 0 ? n : 0), &fin) != 1)
		goto out;
	if (dir && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
	    tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	return (ok ? 0 : -1);
}

char *
sb_seal(const char *plugin_id, const void *plain, size_t len)
{
	unsigned char	 key[KEY_LEN], *raw = NULL;
	char		*out = NULL, kid[KID_LEN + 1];
	size_t		 rawlen, outlen, head;

	if (!have_key() || plugin_id == NULL || (plain == NULL && len > 0) ||
	    len > SEAL_MAX)
		return (NULL);
	if (seal_key(sb_settings.data_key, plugin_id, key) == -1)
		goto out;
	key_id(sb_settings.data_key, kid);
	rawlen = NONCE_LEN + len + TAG_LEN;
	if ((raw = malloc(rawlen)) == NULL)
		goto out;
	if (RAND_bytes(raw, NONCE_LEN) != 1 ||
	    gcm(1, key, raw, plain, len, raw + NONCE_LEN,
	    raw + NONCE_LEN + len) == -1)
		goto out;
	head = sizeof(V2_PREFIX) - 1 + KID_LEN + 1;
	outlen = head + (rawlen * 4 + 2) / 3 + 1;
	if ((out = malloc(outlen)) == NULL)
		goto out;
	snprintf(out, head + 1, "%s%s.", V2_PREFIX, kid);
	sb_base64url(raw, rawlen, out + head, outlen - head);
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(raw);
	return (out);
}

/* Open raw (nonce | ciphertext | tag) under data key dk, or NULL. */
static char *
open_with(const char *dk, const char *plugin_id, const unsigned char *raw,
    size_t rawlen, size_t *lenp)
{
	unsigned char	 key[KEY_LEN];
	char		*plain;
	size_t		 len;

	if (rawlen < NONCE_LEN + TAG_LEN ||
	    seal_key(dk, plugin_id, key) == -1)
		return (NULL);
	len = rawlen - NONCE_LEN - TAG_LEN;
	if ((plain = malloc(len + 1)) != NULL &&
	    gcm(0, key, raw, raw + NONCE_LEN, len, (unsigned char *)plain,
	    (unsigned char *)(uintptr_t)(raw + NONCE_LEN + len)) == -1) {
		OPENSSL_cleanse(plain, len);
		free(plain);
		plain = NULL;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (plain == NULL)
		return (NULL);
	plain[len] = '\0';
	*lenp = len;
	return (plain);
}

/*
 * Open a v1 or v2 value; *current is set to 1 when it is v2 under the
 * current key (nothing to re-seal).
 */
static char *
unseal_kid(const char *plugin_id, const char *sealed, size_t *lenp,
    int *current)
{
	unsigned char	 *raw = NULL;
	char		 *plain = NULL, kid[KID_LEN + 1], want[KID_LEN + 1];
	const char	 *body;
	size_t		  enclen, len = 0, i;
	ssize_t		  rawlen;
	int		  v2;

	*lenp = 0;
	*current = 0;
	if (!have_key() || plugin_id == NULL || sealed == NULL)
		return (NULL);
	if (strncmp(sealed, V2_PREFIX, sizeof(V2_PREFIX) - 1) == 0) {
		v2 = 1;
		body = sealed + sizeof(V2_PREFIX) - 1;
		if (strlen(body) < KID_LEN + 1 || body[KID_LEN] != '.')
			return (NULL);
		memcpy(want, body, KID_LEN);
		want[KID_LEN] = '\0';
		body += KID_LEN + 1;
	} else if (strncmp(sealed, V1_PREFIX, sizeof(V1_PREFIX) - 1) == 0) {
		v2 = 0;
		body = sealed + sizeof(V1_PREFIX) - 1;
	} else
		return (NULL);

	enclen = strlen(body);
	if (enclen > (SEAL_MAX + NONCE_LEN + TAG_LEN) * 4 / 3 + 4)
		return (NULL);
	if ((raw = malloc(enclen * 3 / 4 + 1)) == NULL)
		return (NULL);
	if ((rawlen = sb_unbase64url(body, raw, enclen * 3 / 4 + 1)) < 0)
		goto out;

	/* The current key, then each retired one; v2 only the named one. */
	key_id(sb_settings.data_key, kid);
	if (!v2 || strcmp(kid, want) == 0) {
		plain = open_with(sb_settings.data_key, plugin_id, raw,
		    (size_t)rawlen, &len);
		if (plain != NULL && v2)
			*current = 1;
	}
	for (i = 0; plain == NULL && sb_settings.data_keys_retired != NULL &&
	    sb_settings.data_keys_retired[i] != NULL; i++) {
		if (v2) {
			key_id(sb_settings.data_keys_retired[i], kid);
			if (strcmp(kid, want) != 0)
				continue;
		}
		plain = open_with(sb_settings.data_keys_retired[i], plugin_id,
		    raw, (size_t)rawlen, &len);
	}
	if (plain != NULL)
		*lenp = len;
out:
	free(raw);
	return (plain);
}

char *
sb_unseal(const char *plugin_id, const char *sealed, size_t *lenp)
{
	char	*plain;
	size_t	 len;
	int	 current;

	plain = unseal_kid(plugin_id, sealed, &len, &current);
	if (lenp != NULL)
		*lenp = len;
	return (plain);
}

int
sb_reseal(const char *plugin_id, const char *sealed, char **out)
{
	char	*plain;
	size_t	 len;
	int	 current;

	if (out == NULL)
		return (-1);
	*out = NULL;
	if ((plain = unseal_kid(plugin_id, sealed, &len, &current)) == NULL)
		return (-1);
	if (!current)
		*out = sb_seal(plugin_id, plain, len);
	OPENSSL_cleanse(plain, len);
	free(plain);
	if (current)
		return (0);
	return (*out != NULL ? 1 : -1);
}

char *
sb_blind_index(const char *plugin_id, const char *domain, const void *value,
    size_t len)
{
	unsigned char	 key[KEY_LEN], mac[EVP_MAX_MD_SIZE];
	char		 info[256 + 1 + DOMAIN_MAX + 1], *out = NULL;
	const char	*ikm, *salt;
	unsigned int	 maclen = 0;
	size_t		 ilen, dlen;

	if (plugin_id == NULL || domain == NULL ||
	    (value == NULL && len > 0) || len > SEAL_MAX)
		return (NULL);
	ilen = strlen(plugin_id);
	dlen = strlen(domain);
	if (ilen == 0 || ilen > 256 || dlen == 0 || dlen > DOMAIN_MAX)
		return (NULL);
	if (sb_settings.index_key != NULL) {
		ikm = sb_settings.index_key;
		salt = "switchboard-blind-index-v1";
	} else {
		if (!have_key())
			return (NULL);
		/* Another salt than seal_key's: never a sealing key. */
		ikm = sb_settings.data_key;
		salt = "switchboard-blind-index-from-data-key-v1";
	}
	/* plugin id, NUL, domain: ids hold no NUL, so no two pairs meet. */
	memcpy(info, plugin_id, ilen);
	info[ilen] = '\0';
	memcpy(info + ilen + 1, domain, dlen);
	if (derive(ikm, salt, info, ilen + 1 + dlen, key) == -1)
		goto out;
	if (HMAC(EVP_sha256(), key, KEY_LEN, value != NULL ? value : "",
	    len, mac, &maclen) == NULL || maclen != 32)
		goto out;
	if ((out = malloc(INDEX_LEN + 1)) == NULL)
		goto out;
	sb_base64url(mac, 32, out, INDEX_LEN + 1);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(mac, sizeof(mac));
	return (out);
}
