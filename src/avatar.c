/*
 * Staff avatars: upload (multipart/form-data, one file field `avatar`) and
 * serving.  Every upload is validated and re-encoded by image.c into a
 * 256x256 JPEG without metadata, so only bytes the host produced itself
 * are ever stored or served back; the table is user_avatars
 * (migrations/003_avatars.sql).
 *
 * Answers to a bad upload, all in the error envelope:
 *   415 UNSUPPORTED_MEDIA_TYPE  the request is not multipart/form-data, or
 *                               the file is not JPEG/PNG/WebP/GIF, or its
 *                               declared type disagrees with its bytes;
 *   422 VALIDATION_ERROR        field `avatar` REQUIRED (missing or empty),
 *                               INVALID_FORMAT (does not decode) or
 *                               TOO_LARGE (more than AVATAR_MAX_PIXELS: the
 *                               bytes fit the body limit but the image is a
 *                               decompression bomb, so it is a field error,
 *                               not a 413);
 *   413 PAYLOAD_TOO_LARGE       a body over AVATAR_BODY_MAX;
 *   400 VALIDATION_ERROR        a multipart body that does not parse.
 */

#include <kore/kore.h>
#include <kore/http.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb.h"
#include "image.h"
#include "text.h"

#define AVATAR_FIELD		"avatar"
#define AVATAR_SIZE		256
#define AVATAR_BODY_MAX		(5 * 1024 * 1024)
/* 40 megapixels: any camera's photo, refused beyond (a PNG of one colour
 * can claim gigapixels in a few kilobytes). */
#define AVATAR_MAX_PIXELS	(40 * 1000 * 1000)
#define AVATAR_CACHE		"private, max-age=300"

static void	avatar_upload(struct sb_req *);
static void	avatar_get(struct sb_req *);
static unsigned char *part_load(struct sb_req *, const struct sb_part *);
static void	field_error(struct sb_req *, int, const char *, const char *,
		    const char *);
static int	etag_matches(const char *, const char *);

const struct sb_route sb_avatar_routes[] = {
	{ .method = "POST", .path = "/api/v1/users/me/avatar",
	  .flags = SB_ROUTE_STAFF, .handler = avatar_upload,
	  .summary = "Upload the caller's avatar: multipart/form-data with "
	  "one file field `avatar` (JPEG, PNG, WebP or GIF, at most 40 "
	  "megapixels), stored as a 256x256 JPEG without metadata",
	  .body_max = AVATAR_BODY_MAX,
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"avatar_url\":{\"type\":\"string\"},"
	  "\"content_type\":{\"type\":\"string\"},"
	  "\"width\":{\"type\":\"integer\"},"
	  "\"height\":{\"type\":\"integer\"},"
	  "\"sha256\":{\"type\":\"string\"}}}" },
	{ .method = "GET", .path = "/api/v1/users/{id}/avatar",
	  .flags = SB_ROUTE_STAFF, .handler = avatar_get,
	  .summary = "A user's avatar (image/jpeg) with a strong ETag; "
	  "If-None-Match gives 304" },
	SB_ROUTE_END
};

static void
avatar_upload(struct sb_req *req)
{
	const struct sb_part	*parts, *file;
	struct sb_image		 img;
	struct sb_db_res	*r;
	const char		*code, *params[4];
	unsigned char		*copy;
	const unsigned char	*bytes;
	char			*hex, sha[65], idbuf[32], url[96];
	char			 err[160];
	size_t			 n, i;

	copy = NULL;
	hex = NULL;
	memset(&img, 0, sizeof(img));

	/* 415, 400 and the route's 413 are the host's (parts.c, http.c). */
	if (sb_req_parts(req, &parts, &n) != SB_OK)
		return;
	file = NULL;
	for (i = 0; i < n && file == NULL; i++) {
		if (strcmp(parts[i].name, AVATAR_FIELD) == 0)
			file = &parts[i];
	}
	if (file == NULL || file->len == 0) {
		field_error(req, 422, "REQUIRED", "an image file is required",
		    "the form field `avatar` is required");
		goto out;
	}
	/* A body over [host] body_memory_max is in a file; the image
	 * (at most AVATAR_BODY_MAX) is decoded from memory. */
	if ((bytes = file->data) == NULL) {
		if ((copy = part_load(req, file)) == NULL)
			goto out;	/* answered */
		bytes = copy;
	}

	if (sb_image_normalize(bytes, (size_t)file->len, file->content_type,
	    AVATAR_MAX_PIXELS, AVATAR_SIZE, &img,
	    err, sizeof(err), &code) == -1) {
		if (strcmp(code, "UNSUPPORTED_MEDIA_TYPE") == 0)
			field_error(req, 415, code, err, err);
		else if (strcmp(code, "INTERNAL") == 0)
			sb_respond_error(req, 500, "INTERNAL",
			    "internal error", NULL);
		else
			field_error(req, 422, code, err, "invalid image");
		goto out;
	}

	sb_sha256_hex(img.data, img.len, sha);
	/* bytea as a text parameter: "\x" and two hex digits a byte. */
	if ((hex = malloc(img.len * 2 + 3)) == NULL) {
		sb_respond_error(req, 503, "UNAVAILABLE", "out of memory", NULL);
		goto out;
	}
	hex[0] = '\\';
	hex[1] = 'x';
	for (i = 0; i < img.len; i++) {
		hex[2 + i * 2] = "0123456789abcdef"[img.data[i] >> 4];
		hex[3 + i * 2] = "0123456789abcdef"[img.data[i] & 0x0f];
	}
	hex[2 + img.len * 2] = '\0';

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)req->principal.id);
	params[0] = idbuf;
	params[1] = img.mime;
	params[2] = hex;
	params[3] = sha;
	r = sb_db_query("INSERT INTO user_avatars (user_id, content_type, "
	    "data, sha256, updated_at) VALUES ($1::bigint, $2, $3::bytea, $4, "
	    "now()) ON CONFLICT (user_id) DO UPDATE SET content_type = "
	    "EXCLUDED.content_type, data = EXCLUDED.data, sha256 = "
	    "EXCLUDED.sha256, updated_at = now()", 4, params);
	if (!r->ok) {
		/* 23503: the user was deleted under us. */
		if (strcmp(r->sqlstate, "23503") == 0) {
			sb_respond_error(req, 404, "NOT_FOUND", "no such user",
			    NULL);
		} else {
			sb_log(SB_LOG_ERROR, "avatar", "store failed (%s)",
			    r->sqlstate);
			sb_respond_db_down(req);
		}
		sb_db_free(r);
		goto out;
	}
	sb_db_free(r);

	snprintf(url, sizeof(url), "/api/v1/users/%s/avatar", idbuf);
	sb_respond_json(req, 200, json_pack("{s:s, s:s, s:i, s:i, s:s}",
	    "avatar_url", url, "content_type", img.mime, "width", img.width,
	    "height", img.height, "sha256", sha));
out:
	sb_image_free(&img);
	free(hex);
	free(copy);
}

static void
avatar_get(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[1], *hex, *inm;
	unsigned char		*data;
	char			 idbuf[32], etag[80];
	size_t			 hlen, len, i;
	int64_t			 id;

	if (sb_req_id(req, "id", "avatar", &id) == -1)
		return;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	params[0] = idbuf;
	r = sb_db_query("SELECT content_type, sha256, encode(data, 'hex') "
	    "FROM user_avatars WHERE user_id = $1::bigint", 1, params);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_respond_error(req, 404, "NOT_FOUND", "no such avatar", NULL);
		return;
	}

	snprintf(etag, sizeof(etag), "\"%s\"", sb_db_value(r, 0, 1));
	sb_resp_header(req, "etag", etag);
	sb_resp_header(req, "cache-control", AVATAR_CACHE);
	if ((inm = sb_req_header(req, "if-none-match")) != NULL &&
	    etag_matches(inm, etag)) {
		sb_db_free(r);
		sb_respond_raw(req, 304, NULL, NULL, 0);
		return;
	}

	hex = sb_db_value(r, 0, 2);
	hlen = strlen(hex);
	len = hlen / 2;
	if (hlen % 2 != 0 || (data = malloc(len + 1)) == NULL) {
		sb_db_free(r);
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	for (i = 0; i < len; i++) {
		data[i] = (unsigned char)(sb_hexval(hex[i * 2]) << 4 |
		    sb_hexval(hex[i * 2 + 1]));
	}
	sb_respond_raw(req, 200, sb_db_value(r, 0, 0), data, len);
	free(data);
	sb_db_free(r);
}

/* A part in the body file, into memory (the caller frees it), or NULL
 * answered. */
static unsigned char *
part_load(struct sb_req *req, const struct sb_part *part)
{
	unsigned char	*buf;
	size_t		 done;
	ssize_t		 r;

	if ((buf = malloc((size_t)part->len)) == NULL) {
		sb_respond_error(req, 503, "UNAVAILABLE", "out of memory", NULL);
		return (NULL);
	}
	for (done = 0; done < part->len; done += (size_t)r) {
		r = pread(part->fd, buf + done, (size_t)part->len - done,
		    (off_t)(part->offset + done));
		if (r == -1 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0) {
			sb_log(SB_LOG_ERROR, "avatar", "reading the body "
			    "file: %s", r == 0 ? "short" : strerror(errno));
			free(buf);
			sb_respond_error(req, 500, "INTERNAL", "internal "
			    "error", NULL);
			return (NULL);
		}
	}
	return (buf);
}

/* An error about the `avatar` field: code names the field problem too. */
static void
field_error(struct sb_req *req, int status, const char *code,
    const char *field_msg, const char *msg)
{
	sb_respond_error(req, status, NULL, msg, json_pack("[{s:s, s:s, s:s}]",
	    "field", AVATAR_FIELD, "code", code, "message", field_msg));
}

/*
 * If-None-Match: "*" or a list of entity tags, compared weakly (RFC 9110
 * 13.1.2), so W/"x" matches "x".
 */
static int
etag_matches(const char *list, const char *etag)
{
	const char	*p, *q;
	size_t		 elen;

	elen = strlen(etag);
	for (p = list;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return (0);
		if (*p == '*')
			return (1);
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
			return (0);
		if ((size_t)(q - p + 1) == elen && memcmp(p, etag, elen) == 0)
			return (1);
		p = q + 1;
	}
}

