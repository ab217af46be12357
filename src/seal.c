/*
 * Secrets at rest: what plugins store that must not be readable from the
 * database alone (meeting tokens, provider credentials).
 *
 * The host holds one data key (SB_DATA_KEY, at least 32 characters).  Each
 * plugin gets its own AES-256 key from it by HKDF-SHA256 with the plugin's
 * id as info, so one plugin cannot open what another sealed, and a sealed
 * value moved between plugins fails to open.  A value is sealed with
 * AES-256-GCM under a fresh random 96-bit nonce and stored as
 *
 *	"v1." base64url(nonce[12] | ciphertext | tag[16])
 *
 * The "v1." prefix leaves room for a later key or algorithm.  Without a
 * data key nothing is sealed: seal() fails (and says so once), so a plugin
 * answers 503 rather than storing plaintext.
 */

#include <string.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>

#include "sb.h"

#define SEAL_PREFIX	"v1."
#define NONCE_LEN	12
#define TAG_LEN		16
#define KEY_LEN		32
#define SEAL_MAX	(1024 * 1024)	/* plaintext bytes */

/* HKDF-SHA256(ikm = data key, salt, info = plugin id) -> 32 bytes. */
static int
derive(const char *plugin_id, unsigned char key[KEY_LEN])
{
	/* OSSL_PARAM wants writable pointers; it does not write. */
	static char		 salt[] = "switchboard-seal-v1";
	static char		 digest[] = "SHA256";
	char			 info[256];
	EVP_KDF			*kdf;
	EVP_KDF_CTX		*kctx;
	OSSL_PARAM		 params[5], *p = params;
	int			 ok;

	if (strlen(plugin_id) >= sizeof(info))
		return (-1);
	memcpy(info, plugin_id, strlen(plugin_id) + 1);
	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		return (-1);
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (kctx == NULL)
		return (-1);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)sb_settings.data_key, strlen(sb_settings.data_key));
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    salt, sizeof(salt) - 1);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    info, strlen(info));
	*p = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kctx, key, KEY_LEN, params) == 1;
	EVP_KDF_CTX_free(kctx);
	return (ok ? 0 : -1);
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
	char		*out = NULL;
	size_t		 rawlen, outlen;

	if (!have_key() || plugin_id == NULL || (plain == NULL && len > 0) ||
	    len > SEAL_MAX)
		return (NULL);
	if (derive(plugin_id, key) == -1)
		goto out;
	rawlen = NONCE_LEN + len + TAG_LEN;
	if ((raw = malloc(rawlen)) == NULL)
		goto out;
	if (RAND_bytes(raw, NONCE_LEN) != 1 ||
	    gcm(1, key, raw, plain, len, raw + NONCE_LEN,
	    raw + NONCE_LEN + len) == -1)
		goto out;
	outlen = sizeof(SEAL_PREFIX) - 1 + (rawlen * 4 + 2) / 3 + 1;
	if ((out = malloc(outlen)) == NULL)
		goto out;
	memcpy(out, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1);
	sb_base64url(raw, rawlen, out + sizeof(SEAL_PREFIX) - 1,
	    outlen - (sizeof(SEAL_PREFIX) - 1));
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(raw);
	return (out);
}

char *
sb_unseal(const char *plugin_id, const char *sealed, size_t *lenp)
{
	unsigned char	 key[KEY_LEN], *raw = NULL;
	char		*plain = NULL;
	size_t		 enclen, len;
	ssize_t		 rawlen;

	if (lenp != NULL)
		*lenp = 0;
	if (!have_key() || plugin_id == NULL || sealed == NULL ||
	    strncmp(sealed, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1) != 0)
		return (NULL);
	sealed += sizeof(SEAL_PREFIX) - 1;
	enclen = strlen(sealed);
	if (enclen > (SEAL_MAX + NONCE_LEN + TAG_LEN) * 4 / 3 + 4)
		return (NULL);
	if ((raw = malloc(enclen * 3 / 4 + 1)) == NULL)
		return (NULL);
	rawlen = sb_unbase64url(sealed, raw, enclen * 3 / 4 + 1);
	if (rawlen < NONCE_LEN + TAG_LEN || derive(plugin_id, key) == -1)
		goto out;
	len = (size_t)rawlen - NONCE_LEN - TAG_LEN;
	if ((plain = malloc(len + 1)) == NULL)
		goto out;
	if (gcm(0, key, raw, raw + NONCE_LEN, len, (unsigned char *)plain,
	    raw + NONCE_LEN + len) == -1) {
		OPENSSL_cleanse(plain, len);
		free(plain);
		plain = NULL;
		goto out;
	}
	plain[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(raw);
	return (plain);
}
