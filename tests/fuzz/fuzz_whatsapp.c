/*
 * libFuzzer harness for the whatsapp plugin's webhook body
 * (plugins/whatsapp/payload.c): any bytes parse into items that keep
 * wa.h's shape and bounds, or are refused with a reason, never a crash
 * or a leak; and the signature check takes exactly the signature
 * computed here over the same bytes, and nothing the input makes up.
 */
/* fuzz-sources: plugins/whatsapp/payload.c */
/* fuzz-libs: -lcrypto */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../plugins/whatsapp/wa.h"

#define SECRET	"fuzz-app-secret"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static size_t
cps(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return (n);
}

/* The string at key of o, at most max code points; required or not. */
static void
check_str(json_t *o, const char *key, size_t max, int required)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL) {
		if (required)
			abort();
		return;
	}
	if (!json_is_string(v) || cps(json_string_value(v)) > max)
		abort();
}

static void
check_ts(json_t *it)
{
	json_t		*v = json_object_get(it, "timestamp");
	json_int_t	 t;

	if (!json_is_integer(v))
		abort();
	t = json_integer_value(v);
	if (t <= 0 || t >= ((json_int_t)1 << 40))
		abort();
}

static void
check_item(json_t *it)
{
	const char	*kind, *type;

	if (!json_is_object(it))
		abort();
	kind = json_string_value(json_object_get(it, "kind"));
	if (kind == NULL)
		abort();
	check_str(it, "id", WA_WAMID_MAX, 1);
	check_str(it, "phone_number_id", 64, 1);
	check_ts(it);
	if (strcmp(kind, "status") == 0) {
		check_str(it, "status", 9, 1);
		check_str(it, "recipient_id", 15, 1);
		check_str(it, "biz_opaque_callback_data", 512, 0);
		return;
	}
	if (strcmp(kind, "message") != 0)
		abort();
	check_str(it, "from", 15, 1);
	check_str(it, "name", 256, 1);
	check_str(it, "text", WA_TEXT_MAX, 0);
	check_str(it, "caption", WA_CAPTION_MAX, 0);
	check_str(it, "raw_type", 32, 0);
	if ((type = json_string_value(json_object_get(it, "type"))) == NULL)
		abort();
	if (strcmp(type, "text") == 0 && json_object_get(it, "text") == NULL)
		abort();
	if (strcmp(type, "unsupported") == 0 &&
	    json_object_get(it, "raw_type") == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	json_t		*items, *it;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		 err[64], hdr[7 + 64 + 1], *s;
	size_t		 skipped, i;

	items = wa_payload_parse((const char *)data, len, &skipped, err,
	    sizeof(err));
	if (items == NULL) {
		if (err[0] == '\0')
			abort();
	} else {
		if (!json_is_array(items) || json_array_size(items) > 1000)
			abort();
		json_array_foreach(items, i, it)
			check_item(it);
		if ((s = json_dumps(items, 0)) == NULL)
			abort();
		free(s);
		json_decref(items);
	}

	/* The signature computed here matches; the input's own does not. */
	if (HMAC(EVP_sha256(), SECRET, sizeof(SECRET) - 1, data, len, md,
	    &mdlen) == NULL || mdlen != 32)
		abort();
	memcpy(hdr, "sha256=", 7);
	for (i = 0; i < 32; i++)
		snprintf(hdr + 7 + 2 * i, 3, "%02x", md[i]);
	if (wa_signature_ok(SECRET, data, len, hdr) != 1)
		abort();
	hdr[7 + (md[0] & 63)] ^= 0x01;
	if (wa_signature_ok(SECRET, data, len, hdr) != 0)
		abort();
	if (len >= sizeof(hdr) - 1) {
		memcpy(hdr, data, sizeof(hdr) - 1);
		hdr[sizeof(hdr) - 1] = '\0';
		(void)wa_signature_ok(SECRET, data + sizeof(hdr) - 1,
		    len - (sizeof(hdr) - 1), hdr);
	}
	return (0);
}
