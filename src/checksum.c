/*
 * SHA-256 as lowercase hex: migration checksums and asset ETags.
 */

#include <openssl/evp.h>

#include <stdio.h>

#include "sb.h"

void
sb_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen, i;

	mdlen = 0;
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		mdlen = 0;
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + i * 2, 3, "%02x", md[i]);
	out[i * 2] = '\0';
}
