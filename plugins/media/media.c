/*
 * The media plugin: validated uploads into a content-addressed store,
 * metadata, downloads with ranges and ETags, signed URLs, the
 * media.store service and the privacy hooks.  API.md "Media".
 *
 * An upload is judged on its bytes alone:
 *   empty                                   422 (file EMPTY)
 *   libmagic's type (first HEAD_MAX bytes)  not the declared one: 415
 *   the purpose (field, or from the type)   unknown: 422 (purpose)
 *   the purpose's types                     not among them: 415
 *   the purpose's size limit                over it: 413
 *   Office Open XML: the zip's directory    a bomb, malformed: 422
 *   images: libvips reads the header only   over max_pixels: 422
 *           animated WebP, not a sticker    422
 *           decoded and re-encoded          truncated/corrupt: 422
 * (image.c re-encodes: metadata stripped, upright, sRGB 8-bit; the new
 * bytes are what is stored; probe.c reads audio/video durations.)
 * Images get a thumbnail from the durable job media.thumbnail.
 * The bytes are copied into a temporary file of the store while they are
 * hashed (SHA-256), then published under their hash and the row inserted
 * in one transaction holding the hash's advisory lock; a delete takes the
 * same lock, so the bytes go exactly when the last row naming them goes.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <magic.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <vips/vips.h>
#include <vips/vector.h>

#include <switchboard/services/media.h>

#include "image.h"
#include "media.h"
#include "probe.h"
#include "store.h"

#define api			media_api

#define CHUNK			(64 * 1024)
#define HEAD_MAX		(256 * 1024)
#define IMAGE_READ_MAX		(64 * 1024 * 1024)
#define UPLOAD_BODY_MAX		(101 * 1024 * 1024)
#define BULK_BODY_MAX		(256 * 1024 * 1024)
#define LOCK_CLASS		"7346"

const struct sb_host_api	*media_api;

static struct sb_plugin		*plug;
static const struct media_store	*store = &media_store_dir;
static magic_t			 cookie;

struct purpose {
	const char	*name;
	const char	*types_key;
	const char	*max_key;
};

static const struct purpose purposes[] = {
	{ "image", "image_types", "image_max" },
	{ "audio", "audio_types", "audio_max" },
	{ "video", "video_types", "video_max" },
	{ "document", "document_types", "document_max" },
	{ "sticker", "sticker_types", "sticker_max" },
	{ "avatar", "avatar_types", "avatar_max" },
	{ NULL, NULL, NULL }
};

/* libmagic's names and clients' aliases -> the one name we store. */
static const char *const aliases[][2] = {
	{ "image/jpg", "image/jpeg" },
	{ "image/pjpeg", "image/jpeg" },
	{ "image/x-png", "image/png" },
	{ "audio/x-hx-aac-adts", "audio/aac" },
	{ "audio/x-aac", "audio/aac" },
	{ "audio/x-amr", "audio/amr" },
	{ "audio/mp3", "audio/mpeg" },
	{ "audio/x-m4a", "audio/mp4" },
	{ "audio/x-ogg", "audio/ogg" },
	{ "application/ogg", "audio/ogg" },
	{ "video/3gp", "video/3gpp" },
	{ "application/x-pdf", "application/pdf" },
	{ NULL, NULL }
};

#define OFFICE_TYPES							\
	"application/msword application/vnd.ms-excel "			\
	"application/vnd.ms-powerpoint "				\
	"application/vnd.openxmlformats-officedocument."		\
	"wordprocessingml.document "					\
	"application/vnd.openxmlformats-officedocument."		\
	"spreadsheetml.sheet "						\
	"application/vnd.openxmlformats-officedocument."		\
	"presentationml.presentation"

static const struct sb_config_key config[] = {
	{ "storage", "dir", 0, "storage backend: dir or s3" },
	{ "dir", "var/media", 0, "directory of the dir backend (the s3 "
	  "backend's spool and cache), relative to the server's working "
	  "directory; writable by the worker user" },
	{ "s3_endpoint", NULL, 0, "s3: the server's base URL, e.g. "
	  "https://s3.eu-west-1.amazonaws.com (path-style requests)" },
	{ "s3_bucket", NULL, 0, "s3: the bucket" },
	{ "s3_region", NULL, 0, "s3: the region signed into requests "
	  "(SigV4), e.g. us-east-1" },
	{ "s3_access_key", NULL, 0, "s3: the access key id" },
	{ "s3_secret_key", NULL, SB_CONF_SECRET, "s3: the secret access key" },
	{ "url_ttl", "3600", 0, "lifetime of a signed URL, seconds (1 s to "
	  "31 days; anything else is 3600)" },
	{ "sweep_interval", "86400", 0, "seconds between sweeps of objects "
	  "no row names any more (0: no sweep)" },
	{ "sweep_grace", "3600", 0, "seconds a file must be left untouched "
	  "before the sweep may remove it" },
	{ "max_pixels", "40000000", 0, "largest image accepted, in pixels "
	  "(width x height, read from the header)" },
	{ "image_types", "image/jpeg image/png image/webp", 0,
	  "types accepted for purpose image" },
	{ "image_max", "5242880", 0, "bytes, purpose image" },
	{ "audio_types", "audio/aac audio/amr audio/mpeg audio/mp4 audio/ogg",
	  0, "types accepted for purpose audio" },
	{ "audio_max", "16777216", 0, "bytes, purpose audio" },
	{ "video_types", "video/mp4 video/3gpp", 0,
	  "types accepted for purpose video" },
	{ "video_max", "16777216", 0, "bytes, purpose video" },
	{ "document_types", "application/pdf text/plain " OFFICE_TYPES, 0,
	  "types accepted for purpose document" },
	{ "document_max", "104857600", 0, "bytes, purpose document" },
	{ "sticker_types", "image/webp", 0, "types accepted for purpose "
	  "sticker" },
	{ "sticker_max", "512000", 0, "bytes, purpose sticker" },
	{ "avatar_types", "image/jpeg image/png image/webp image/gif", 0,
	  "types accepted for purpose avatar" },
	{ "avatar_max", "5242880", 0, "bytes, purpose avatar" },
	SB_CONFIG_END
};

#define MEDIA_COLS							\
	"id, filename, mime_type, size, sha256, width, height, "	\
	"duration_s, purpose, uploaded_by, "				\
	"to_char(created_at AT TIME ZONE 'UTC', "			\
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at"

#define MEDIA_SCHEMA							\
	"{\"type\":\"object\",\"properties\":{"				\
	"\"id\":{\"type\":\"integer\"},"				\
	"\"filename\":{\"type\":\"string\"},"				\
	"\"mime_type\":{\"type\":\"string\"},"				\
	"\"size\":{\"type\":\"integer\"},"				\
	"\"sha256\":{\"type\":\"string\"},"				\
	"\"width\":{\"type\":[\"integer\",\"null\"]},"			\
	"\"height\":{\"type\":[\"integer\",\"null\"]},"			\
	"\"duration_s\":{\"type\":[\"number\",\"null\"]},"		\
	"\"purpose\":{\"type\":\"string\"},"				\
	"\"uploaded_by\":{\"type\":[\"integer\",\"null\"]},"		\
	"\"created_at\":{\"type\":\"string\","			\
	"\"format\":\"date-time\"},"					\
	"\"url\":{\"type\":[\"string\",\"null\"]},"			\
	"\"thumbnail_url\":{\"type\":[\"string\",\"null\"]}}}"

struct ingest {
	const struct sb_media_input	*in;
	int				 status;
	const char			*code;	/* field error code or NULL */
	const char			*field;
	char				 err[200];
	int64_t				 id;
};

static void	media_upload(struct sb_req *);
static void	media_bulk(struct sb_req *);
static void	media_get(struct sb_req *);
static void	media_delete(struct sb_req *);
static void	media_content(struct sb_req *);
static void	media_thumbnail(struct sb_req *);
static int	thumb_enqueue(int64_t);
static void	media_list(struct sb_req *);

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/media",
	  .permission = "media.manage", .handler = media_list,
	  .summary = "Media items, newest first: ?purpose=&customer_id= "
	  "filter, ?limit=&cursor= pages {data, next_cursor}",
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"data\":{\"type\":\"array\",\"items\":" MEDIA_SCHEMA "},"
	  "\"next_cursor\":{\"type\":[\"string\",\"null\"]}}}" },
	{ .method = "POST", .path = "/api/v1/media/upload",
	  .permission = "media.upload", .handler = media_upload,
	  .summary = "Upload one file: multipart/form-data with field `file` "
	  "(+ `purpose`, `customer_id`); 201 with the media item",
	  .response_schema = MEDIA_SCHEMA, .body_max = UPLOAD_BODY_MAX },
	{ .method = "POST", .path = "/api/v1/media/bulk-upload",
	  .permission = "media.upload", .handler = media_bulk,
	  .summary = "Upload several `file` fields; each is judged on its "
	  "own: {data: [{filename, status, media?, error?}]}",
	  .body_max = BULK_BODY_MAX },
	{ .method = "GET", .path = "/api/v1/media/{id}",
	  .permission = "media.read", .handler = media_get,
	  .summary = "A media item", .response_schema = MEDIA_SCHEMA },
	{ .method = "DELETE", .path = "/api/v1/media/{id}",
	  .permission = "media.manage", .handler = media_delete,
	  .summary = "Delete a media item (its bytes go with the last item "
	  "naming them); 204" },
	{ .method = "GET", .path = "/api/v1/media/{id}/content",
	  .permission = "media.read", .flags = SB_ROUTE_SIGNED,
	  .handler = media_content,
	  .summary = "The bytes (media.read, or a signed URL ?exp=&sig=); "
	  "Range, If-None-Match" },
	{ .method = "GET", .path = "/api/v1/media/{id}/thumbnail",
	  .permission = "media.read", .flags = SB_ROUTE_SIGNED,
	  .handler = media_thumbnail,
	  .summary = "The thumbnail of an image (media.read, or a signed "
	  "URL); 404 while it is not made yet and for other types" },
	SB_ROUTE_END
};

/* --- Types and purposes --------------------------------------------- */

/* type (up to ';', lower-cased, aliases resolved) into out. */
static void
type_canon(const char *type, char *out, size_t outlen)
{
	size_t	i;

	for (i = 0; type[i] != '\0' && type[i] != ';' &&
	    !isspace((unsigned char)type[i]) && i + 1 < outlen; i++)
		out[i] = (char)tolower((unsigned char)type[i]);
	out[i] = '\0';
	for (i = 0; aliases[i][0] != NULL; i++) {
		if (strcmp(out, aliases[i][0]) == 0) {
			(void)snprintf(out, outlen, "%s", aliases[i][1]);
			return;
		}
	}
}

static const struct purpose *
purpose_find(const char *name)
{
	int	i;

	for (i = 0; purposes[i].name != NULL; i++)
		if (strcmp(purposes[i].name, name) == 0)
			return (&purposes[i]);
	return (NULL);
}

/* The purpose a type goes to when the client names none. */
static const struct purpose *
purpose_for_type(const char *type)
{
	if (strncmp(type, "image/", 6) == 0)
		return (purpose_find("image"));
	if (strncmp(type, "audio/", 6) == 0)
		return (purpose_find("audio"));
	if (strncmp(type, "video/", 6) == 0)
		return (purpose_find("video"));
	return (purpose_find("document"));
}

/* Is type one of the purpose's (space- or comma-separated) types? */
static int
purpose_allows(const struct purpose *pu, const char *type)
{
	const char	*list, *s;
	size_t		 n;

	if ((list = api->config_get(plug, pu->types_key)) == NULL)
		return (0);
	n = strlen(type);
	for (s = list; *s != '\0';) {
		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
		if (strncmp(s, type, n) == 0 && (s[n] == '\0' ||
		    s[n] == ' ' || s[n] == ',' || s[n] == '\t'))
			return (1);
		while (*s != '\0' && *s != ' ' && *s != ',' && *s != '\t')
			s++;
	}
	return (0);
}

/* A filename safe to store and show: its last path element, printable
 * ASCII without quotes or backslashes, at most 200 bytes. */
static void
filename_clean(const char *in, char *out, size_t outlen)
{
	const char	*s;
	size_t		 i;

	if (in == NULL)
		in = "";
	if ((s = strrchr(in, '/')) != NULL)
		in = s + 1;
	if ((s = strrchr(in, '\\')) != NULL)
		in = s + 1;
	for (i = 0; in[i] != '\0' && i + 1 < outlen && i < 200; i++) {
		out[i] = (in[i] < 0x20 || in[i] > 0x7e || in[i] == '"' ||
		    in[i] == '\\' || in[i] == ';') ? '_' : in[i];
	}
	out[i] = '\0';
	if (out[0] == '\0' || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		(void)snprintf(out, outlen, "file");
}

/* --- Ingest ------------------------------------------------------------ */

static int
refuse(struct ingest *ig, int status, const char *code, const char *msg)
{
	ig->status = status;
	ig->code = code;
	ig->field = code != NULL ? "file" : NULL;
	(void)snprintf(ig->err, sizeof(ig->err), "%s", msg);
	return (-1);
}

/* len bytes of the input at off into buf; -1 on a read error. */
static int
input_read(const struct sb_media_input *in, uint64_t off, void *buf,
    size_t len)
{
	size_t	done;
	ssize_t	r;

	if (in->data != NULL) {
		memcpy(buf, (const unsigned char *)in->data + off, len);
		return (0);
	}
	for (done = 0; done < len; done += (size_t)r) {
		r = pread(in->fd, (unsigned char *)buf + done, len - done,
		    (off_t)(in->offset + off + done));
		if (r == -1 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0)
			return (-1);
	}
	return (0);
}

static int
write_all(int fd, const void *buf, size_t len)
{
	size_t	done;
	ssize_t	r;

	for (done = 0; done < len; done += (size_t)r) {
		r = write(fd, (const unsigned char *)buf + done, len - done);
		if (r == -1 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0)
			return (-1);
	}
	return (0);
}

/* Copy the input into the temporary file while hashing it. */
static int
copy_hash(const struct sb_media_input *in, int fd, char sha[65])
{
	EVP_MD_CTX	*ctx;
	unsigned char	 md[EVP_MAX_MD_SIZE], *buf;
	unsigned int	 mdlen, i;
	uint64_t	 done;
	size_t		 want;
	int		 rc = -1;

	buf = NULL;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    (buf = malloc(CHUNK)) == NULL)
		goto out;
	for (done = 0; done < in->len; done += want) {
		want = in->len - done < CHUNK ? (size_t)(in->len - done) :
		    CHUNK;
		if (input_read(in, done, buf, want) == -1 ||
		    EVP_DigestUpdate(ctx, buf, want) != 1 ||
		    write_all(fd, buf, want) == -1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		goto out;
	for (i = 0; i < mdlen; i++) {
		sha[i * 2] = "0123456789abcdef"[md[i] >> 4];
		sha[i * 2 + 1] = "0123456789abcdef"[md[i] & 0x0f];
	}
	sha[mdlen * 2] = '\0';
	rc = 0;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return (rc);
}

/* The reader probe.c and zipcheck.c use, over an input. */
static int
reader_read(void *arg, uint64_t off, void *buf, size_t len)
{
	const struct sb_media_input	*in = arg;

	if (off > in->len || in->len - off < len)
		return (-1);
	return (input_read(in, off, buf, len));
}

/* Zip containers: Office Open XML (and a plain zip, when allowed). */
static int
zip_based(const char *type)
{
	return (strcmp(type, "application/zip") == 0 || strncmp(type,
	    "application/vnd.openxmlformats-officedocument.", 46) == 0);
}

/*
 * An image's stored form (image.c): read into memory (at most its
 * purpose's limit, 5 MB by default; the host lets libvips use its
 * buffer loaders only), checked and re-encoded with metadata stripped.
 */
static int
image_prepare(struct ingest *ig, const struct purpose *pu,
    const char *mime, struct media_image *im)
{
	const struct sb_media_input	*in = ig->in;
	unsigned char			*buf;
	const char			*code;
	long long			 max;
	int				 rc;

	/* Another image type an operator allowed cannot be re-encoded. */
	if (strcmp(mime, "image/jpeg") != 0 && strcmp(mime, "image/png") !=
	    0 && strcmp(mime, "image/webp") != 0) {
		(void)snprintf(ig->err, sizeof(ig->err), "%s cannot be stored: "
		    "images are re-encoded, JPEG, PNG and WebP only", mime);
		ig->status = 415;
		return (-1);
	}
	if (in->len > IMAGE_READ_MAX)
		return (refuse(ig, 413, NULL, "the image is too large"));
	if ((buf = malloc((size_t)in->len)) == NULL)
		return (refuse(ig, 500, NULL, "out of memory"));
	if (input_read(in, 0, buf, (size_t)in->len) == -1) {
		free(buf);
		return (refuse(ig, 500, NULL, "cannot read the upload"));
	}
	max = api->config_int(plug, "max_pixels", 40000000);
	rc = media_image_store(buf, (size_t)in->len, mime,
	    strcmp(pu->name, "sticker") == 0, max > 0 ? (uint64_t)max : 0,
	    im, &code, ig->err, sizeof(ig->err));
	free(buf);
	if (rc == -1) {
		ig->status = code != NULL ? 422 : 500;
		ig->code = code;
		ig->field = code != NULL ? "file" : NULL;
	}
	return (rc);
}

/*
 * The checks on the bytes before anything is stored, in the README's
 * order: empty, libmagic's type against a declared one, the purpose and
 * its types, its size limit.  0 with the sniffed type and the purpose,
 * or -1 with ig's refusal.
 */
static int
judge(struct ingest *ig, char *sniffed, size_t slen,
    const struct purpose **pup)
{
	const struct sb_media_input	*in = ig->in;
	const struct purpose		*pu;
	unsigned char			*head;
	const char			*sniffed_raw;
	char				 declared[128];
	size_t				 hlen;
	long long			 max;

	if (in->len == 0)
		return (refuse(ig, 422, "EMPTY", "the file is empty"));
	hlen = in->len < HEAD_MAX ? (size_t)in->len : HEAD_MAX;
	if ((head = malloc(hlen)) == NULL)
		return (refuse(ig, 500, NULL, "out of memory"));
	if (input_read(in, 0, head, hlen) == -1) {
		free(head);
		return (refuse(ig, 500, NULL, "cannot read the upload"));
	}
	sniffed_raw = magic_buffer(cookie, head, hlen);
	type_canon(sniffed_raw != NULL ? sniffed_raw :
	    "application/octet-stream", sniffed, slen);
	free(head);

	if (in->declared_type != NULL) {
		type_canon(in->declared_type, declared, sizeof(declared));
		if (declared[0] != '\0' &&
		    strcmp(declared, "application/octet-stream") != 0 &&
		    strcmp(declared, sniffed) != 0) {
			ig->status = 415;
			(void)snprintf(ig->err, sizeof(ig->err), "the declared "
			    "type does not match the file (%s)", sniffed);
			return (-1);
		}
	}
	if (in->purpose != NULL) {
		if ((pu = purpose_find(in->purpose)) == NULL) {
			ig->status = 422;
			ig->code = "INVALID_CHOICE";
			ig->field = "purpose";
			(void)snprintf(ig->err, sizeof(ig->err), "purpose is "
			    "one of image, audio, video, document, sticker, "
			    "avatar");
			return (-1);
		}
	} else
		pu = purpose_for_type(sniffed);
	*pup = pu;
	if (!purpose_allows(pu, sniffed)) {
		ig->status = 415;
		(void)snprintf(ig->err, sizeof(ig->err), "%s is not accepted "
		    "for purpose %s", sniffed, pu->name);
		return (-1);
	}
	max = api->config_int(plug, pu->max_key, 0);
	if (max > 0 && in->len > (uint64_t)max) {
		ig->status = 413;
		(void)snprintf(ig->err, sizeof(ig->err), "at most %lld bytes "
		    "for purpose %s", max, pu->name);
		return (-1);
	}

	return (0);
}

/*
 * Judge and store one input.  own_tx: begin and commit here (a route);
 * otherwise the caller's transaction holds the lock (the service).
 * The new id in ig->id and 0, or -1 with ig->status/err.
 */
static int
ingest(struct ingest *ig, int own_tx)
{
	const struct sb_media_input	*in = ig->in;
	const struct purpose		*pu;
	struct media_put		 put;
	struct media_image		 im;
	struct sb_media_input		 enc;
	struct media_reader		 rd;
	const struct sb_media_input	*src = in;
	struct sb_db_res		*r;
	const char			*params[10], *zcode;
	char				 sniffed[128];
	char				 sha[65], size_s[24], name[208];
	char				 by[24], cust[24], w_s[16], h_s[16];
	char				 dur_s[32];
	double				 dur = -1;
	int				 w = -1, h = -1, ok, rc;

	ig->status = 0;
	ig->code = ig->field = NULL;
	ig->err[0] = '\0';
	ig->id = -1;
	put.fd = -1;
	memset(&im, 0, sizeof(im));

	if (judge(ig, sniffed, sizeof(sniffed), &pu) == -1)
		return (-1);

	/* Zips: the central directory against bomb limits (zipcheck.c);
	 * audio and video: the duration where it is cheap (probe.c). */
	rd.read = reader_read;
	rd.arg = (void *)(uintptr_t)in;
	rd.len = in->len;
	if (zip_based(sniffed) && media_zip_check(&rd, &zcode, ig->err,
	    sizeof(ig->err)) == -1) {
		ig->status = zcode != NULL ? 422 : 500;
		ig->code = zcode;
		ig->field = zcode != NULL ? "file" : NULL;
		return (-1);
	}
	if (strncmp(sniffed, "audio/", 6) == 0 ||
	    strncmp(sniffed, "video/", 6) == 0)
		dur = media_duration(&rd, sniffed);

	/* An image is stored re-encoded: its new bytes are what is kept. */
	if (strncmp(sniffed, "image/", 6) == 0) {
		if (image_prepare(ig, pu, sniffed, &im) == -1)
			return (-1);
		memset(&enc, 0, sizeof(enc));
		enc.size = sizeof(enc);
		enc.data = im.data;
		enc.fd = -1;
		enc.len = im.len;
		src = &enc;
		w = im.width;
		h = im.height;
	}
	if (store->put_begin(&put) != SB_OK) {
		media_image_free(&im);
		return (refuse(ig, 500, NULL, "cannot store the file"));
	}
	rc = copy_hash(src, put.fd, sha);
	media_image_free(&im);
	if (rc == -1) {
		store->put_abort(&put);
		return (refuse(ig, 500, NULL, "cannot store the file"));
	}

	filename_clean(in->filename, name, sizeof(name));
	(void)snprintf(size_s, sizeof(size_s), "%" PRIu64, src->len);
	(void)snprintf(by, sizeof(by), "%" PRId64, in->uploaded_by);
	(void)snprintf(cust, sizeof(cust), "%" PRId64, in->customer_id);
	(void)snprintf(w_s, sizeof(w_s), "%d", w);
	(void)snprintf(h_s, sizeof(h_s), "%d", h);
	(void)snprintf(dur_s, sizeof(dur_s), "%.3f", dur);

	if (own_tx && api->db_begin(plug) != SB_OK) {
		store->put_abort(&put);
		return (refuse(ig, 503, NULL, "the database is unavailable"));
	}
	params[0] = sha;
	r = api->db_query(plug, "SELECT pg_advisory_xact_lock(" LOCK_CLASS
	    ", hashtext($1))", 1, params);
	ok = api->db_ok(r);
	api->db_free(r);
	if (!ok || store->put_commit(&put, sha) != SB_OK)
		goto fail;
	params[1] = size_s;
	params[2] = sniffed;
	params[3] = name;
	params[4] = pu->name;
	params[5] = in->uploaded_by > 0 ? by : NULL;
	params[6] = in->customer_id > 0 ? cust : NULL;
	params[7] = w >= 0 ? w_s : NULL;
	params[8] = h >= 0 ? h_s : NULL;
	params[9] = dur >= 0 ? dur_s : NULL;
	r = api->db_query(plug, "INSERT INTO media (sha256, size, mime_type, "
	    "filename, purpose, uploaded_by, customer_id, width, height, "
	    "duration_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
	    "RETURNING id", 10, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		goto fail;
	}
	ig->id = strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);
	if (w >= 0 && thumb_enqueue(ig->id) == -1) {
		ig->id = -1;
		goto fail;
	}
	if (own_tx && api->db_commit(plug) != SB_OK) {
		ig->id = -1;
		return (refuse(ig, 500, NULL, "cannot record the file"));
	}
	return (0);
fail:
	store->put_abort(&put);
	if (own_tx)
		api->db_rollback(plug);
	return (refuse(ig, 500, NULL, "cannot record the file"));
}

/* --- Signed URLs ------------------------------------------------------ */

/*
 * The host signs and checks (SB_ROUTE_SIGNED): a URL opens exactly the
 * path it was made for, so the content's URL is not the thumbnail's.
 */
static char *
url_signed_path(const char *path, unsigned int ttl)
{
	long long	ttl_c;

	if (ttl == 0) {
		ttl_c = api->config_int(plug, "url_ttl", 3600);
		ttl = ttl_c < 1 || ttl_c > 31 * 86400 ? 3600 :
		    (unsigned int)ttl_c;
	}
	return (api->signed_url(plug, path, ttl));
}

/* what: "content" or "thumbnail". */
static char *
url_signed_for(int64_t id, unsigned int ttl, const char *what)
{
	char	path[80];

	snprintf(path, sizeof(path), "/api/v1/media/%" PRId64 "/%s", id, what);
	return (url_signed_path(path, ttl));
}

static char *
url_signed(int64_t id, unsigned int ttl)
{
	return (url_signed_for(id, ttl, "content"));
}

/* --- Rows ------------------------------------------------------------- */

/* The item as the API shows it, or NULL (none, or a database error). */
static json_t *
media_json(int64_t id)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id_s[24], *url;
	json_t			*o;
	int			 thumb;

	(void)snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	params[0] = id_s;
	r = api->db_query(plug, "SELECT " MEDIA_COLS ", thumb_sha256 IS "
	    "NOT NULL AS has_thumb FROM media WHERE id = $1", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (NULL);
	}
	o = api->db_row_json(r, 0);
	api->db_free(r);
	thumb = json_is_true(json_object_get(o, "has_thumb"));
	json_object_del(o, "has_thumb");
	url = url_signed(id, 0);
	json_object_set_new(o, "url", url != NULL ? json_string(url) :
	    json_null());
	free(url);
	url = thumb ? url_signed_for(id, 0, "thumbnail") : NULL;
	json_object_set_new(o, "thumbnail_url", url != NULL ?
	    json_string(url) : json_null());
	free(url);
	return (o);
}

/* The {id} path parameter, or -1 when it is not a positive integer. */
static int64_t
path_id(struct sb_req *req)
{
	const char	*s;
	char		*end;
	long long	 v;

	s = api->req_param(req, "id");
	if (s == NULL || *s < '1' || *s > '9' || strlen(s) > 18)
		return (-1);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return (-1);
	return (v);
}

/* Remove the bytes when no row names sha any more, as an item or as a
 * thumbnail (lock held). */
static int
bytes_release_n(const char *sha, unsigned int *removed)
{
	struct sb_db_res	*r;
	const char		*params[1];
	int			 left;

	params[0] = sha;
	r = api->db_query(plug, "SELECT count(*) FROM media WHERE sha256 = $1 "
	    "OR thumb_sha256 = $1", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (SB_ERROR);
	}
	left = atoi(api->db_value(r, 0, 0));
	api->db_free(r);
	if (left > 0)
		return (SB_OK);
	if (removed != NULL)
		(*removed)++;
	return (store->remove(sha));
}

static int
bytes_release(const char *sha)
{
	return (bytes_release_n(sha, NULL));
}

static int
sha_lock(const char *sha)
{
	struct sb_db_res	*r;
	const char		*params[1];
	int			 ok;

	params[0] = sha;
	r = api->db_query(plug, "SELECT pg_advisory_xact_lock(" LOCK_CLASS
	    ", hashtext($1))", 1, params);
	ok = api->db_ok(r);
	api->db_free(r);
	return (ok ? SB_OK : SB_ERROR);
}

/* --- Thumbnails -------------------------------------------------------- */

/* In the upload's transaction: the job exists iff the item does. */
static int
thumb_enqueue(int64_t id)
{
	struct sb_job_opts	opts;
	char			key[48];

	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "media.thumbnail:%" PRId64, id);
	opts.idempotency_key = key;
	return (api->job_enqueue(plug, "media.thumbnail", json_pack("{s:I}",
	    "id", (json_int_t)id), &opts) > 0 ? 0 : -1);
}

/*
 * Make and record one item's thumbnail.  The item's row is locked first
 * (FOR UPDATE, as DELETE does), then the thumbnail's hash: an item
 * deleted meanwhile gets no thumbnail and leaves no object behind.
 */
static void
thumb_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	struct media_put	 put;
	struct media_image	 im;
	struct sb_media_input	 in;
	const char		*params[5];
	char			 id_s[24], sha[65], tsha[65], w_s[16], h_s[16];
	char			 err[256];
	unsigned char		*buf;
	uint64_t		 size;
	json_int_t		 id;
	ssize_t			 n;
	size_t			 done;
	int			 fd, ok;

	if (json_unpack(api->job_payload(job), "{s:I}", "id", &id) != 0 ||
	    id <= 0) {
		api->job_fail(job, "payload.id is not an item id");
		return;
	}
	(void)snprintf(id_s, sizeof(id_s), "%" JSON_INTEGER_FORMAT, id);
	params[0] = id_s;
	r = api->db_query(plug, "SELECT sha256, thumb_sha256 IS NOT NULL "
	    "FROM media WHERE id = $1", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database error", 0);
		return;
	}
	if (api->db_rows(r) != 1 || strcmp(api->db_value(r, 0, 1), "t") ==
	    0) {
		api->db_free(r);
		api->job_done(job, json_pack("{s:s}", "skipped", "deleted or "
		    "already made"));
		return;
	}
	(void)snprintf(sha, sizeof(sha), "%s", api->db_value(r, 0, 0));
	api->db_free(r);

	if ((fd = store->open(sha, &size)) == -1) {
		api->job_retry(job, "the item's bytes cannot be opened", 0);
		return;
	}
	if (size == 0 || size > IMAGE_READ_MAX ||
	    (buf = malloc((size_t)size)) == NULL) {
		(void)close(fd);
		api->job_fail(job, "the stored image is too large");
		return;
	}
	for (done = 0; done < size; done += (size_t)n) {
		n = pread(fd, buf + done, (size_t)size - done, (off_t)done);
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0)
			break;
	}
	(void)close(fd);
	if (done < size) {
		free(buf);
		api->job_retry(job, "cannot read the item's bytes", 0);
		return;
	}
	ok = media_image_thumb(buf, (size_t)size, MEDIA_THUMB_BOX, &im, err,
	    sizeof(err));
	free(buf);
	if (ok == -1) {
		api->job_fail(job, err);
		return;
	}
	memset(&in, 0, sizeof(in));
	in.size = sizeof(in);
	in.data = im.data;
	in.fd = -1;
	in.len = im.len;
	if (store->put_begin(&put) != SB_OK) {
		media_image_free(&im);
		api->job_retry(job, "cannot store the thumbnail", 0);
		return;
	}
	ok = copy_hash(&in, put.fd, tsha);
	media_image_free(&im);
	if (ok == -1) {
		store->put_abort(&put);
		api->job_retry(job, "cannot store the thumbnail", 0);
		return;
	}
	if (api->db_begin(plug) != SB_OK) {
		store->put_abort(&put);
		api->job_retry(job, "database unavailable", 0);
		return;
	}
	r = api->db_query(plug, "SELECT 1 FROM media WHERE id = $1 AND "
	    "thumb_sha256 IS NULL FOR UPDATE", 1, params);
	ok = api->db_ok(r);
	if (ok && api->db_rows(r) != 1) {
		/* Deleted, or made by another run, meanwhile. */
		api->db_free(r);
		store->put_abort(&put);
		api->db_rollback(plug);
		api->job_done(job, json_pack("{s:s}", "skipped", "deleted or "
		    "already made"));
		return;
	}
	api->db_free(r);
	if (!ok || sha_lock(tsha) != SB_OK ||
	    store->put_commit(&put, tsha) != SB_OK)
		goto fail;
	(void)snprintf(w_s, sizeof(w_s), "%d", im.width);
	(void)snprintf(h_s, sizeof(h_s), "%d", im.height);
	params[1] = tsha;
	params[2] = im.mime;
	params[3] = w_s;
	params[4] = h_s;
	r = api->db_query(plug, "UPDATE media SET thumb_sha256 = $2, "
	    "thumb_mime = $3, thumb_width = $4, thumb_height = $5 "
	    "WHERE id = $1", 5, params);
	ok = api->db_ok(r);
	api->db_free(r);
	if (!ok || api->db_commit(plug) != SB_OK) {
		api->db_rollback(plug);
		api->job_retry(job, "cannot record the thumbnail", 0);
		return;
	}
	api->job_done(job, json_pack("{s:s, s:i, s:i}", "thumbnail", tsha,
	    "width", im.width, "height", im.height));
	return;
fail:
	store->put_abort(&put);
	api->db_rollback(plug);
	api->job_retry(job, "cannot record the thumbnail", 0);
}

static const struct sb_job_kind thumb_kind = {
	.name = "media.thumbnail",
	.run = thumb_run,
	.max_attempts = 5,
	.timeout_s = 120,
};

/* --- The sweep ---------------------------------------------------------- */

/*
 * Objects no row names any more, left by a worker that died between
 * publishing a file and committing its row (or a commit that failed),
 * and temporary files of uploads that died: the periodic job
 * media.sweep (every sweep_interval seconds, once per cluster) removes
 * what is older than sweep_grace seconds, each object under its hash's
 * lock, so an upload of the same bytes meanwhile keeps it.
 */
#define SWEEP_MAX	100000		/* objects looked at per run */

struct sweep {
	unsigned int	 removed;
	unsigned int	 failed;
	unsigned int	 seen;
};

static int
sweep_one(const char *sha, void *arg)
{
	struct sweep	*sw = arg;

	if (++sw->seen > SWEEP_MAX)
		return (-1);
	if (api->db_begin(plug) != SB_OK) {
		sw->failed++;
		return (-1);
	}
	if (sha_lock(sha) != SB_OK ||
	    bytes_release_n(sha, &sw->removed) != SB_OK ||
	    api->db_commit(plug) != SB_OK) {
		api->db_rollback(plug);
		sw->failed++;
	}
	return (0);
}

static void
sweep_run(struct sb_job *job)
{
	struct sweep	 sw;
	unsigned int	 tmp;
	long long	 grace;
	int		 n;

	memset(&sw, 0, sizeof(sw));
	tmp = 0;
	grace = api->config_int(plug, "sweep_grace", 3600);
	if (grace < 0)
		grace = 3600;
	n = store->sweep(time(NULL) - (time_t)grace, sweep_one, &sw, &tmp);
	api->log(plug, SB_LOG_INFO, "sweep: %d object(s) older than %llds "
	    "looked at, %u no longer named and removed, %u temporary "
	    "file(s) removed, %u failure(s)", n, grace, sw.removed, tmp,
	    sw.failed);
	if (n == -1 || sw.failed > 0) {
		api->job_retry(job, "some objects could not be checked", 0);
		return;
	}
	api->job_done(job, json_pack("{s:i, s:i, s:i}", "looked_at", n,
	    "removed", (int)sw.removed, "temporary_removed", (int)tmp));
}

static struct sb_job_kind sweep_kind = {
	.name = "media.sweep",
	.run = sweep_run,
	.max_attempts = 3,
	.timeout_s = 3600,
};

/* --- Routes ------------------------------------------------------------ */

/* A small text field's value into out; -1 when it is too long. */
static int
part_text(const struct sb_part *pt, char *out, size_t outlen)
{
	struct sb_media_input	in;

	if (pt->len >= outlen)
		return (-1);
	memset(&in, 0, sizeof(in));
	in.data = pt->data;
	in.fd = pt->fd;
	in.offset = pt->offset;
	in.len = pt->len;
	if (input_read(&in, 0, out, (size_t)pt->len) == -1)
		return (-1);
	out[pt->len] = '\0';
	return (0);
}

static void
field_error(struct sb_req *req, int status, const char *field,
    const char *code, const char *msg)
{
	api->respond_error(req, status, "VALIDATION_ERROR", msg,
	    json_pack("[{s:s, s:s, s:s}]", "field", field, "code", code,
	    "message", msg));
}

/* The form's purpose and customer_id; -1 when answered (422). */
static int
form_fields(struct sb_req *req, const struct sb_part *parts, size_t n,
    char *purpose, size_t plen, int64_t *customer)
{
	char	buf[32], *end;
	size_t	i;

	purpose[0] = '\0';
	*customer = 0;
	for (i = 0; i < n; i++) {
		if (parts[i].name == NULL || parts[i].filename != NULL)
			continue;
		if (strcmp(parts[i].name, "purpose") == 0) {
			if (part_text(&parts[i], purpose, plen) == -1 ||
			    purpose_find(purpose) == NULL) {
				field_error(req, 422, "purpose",
				    "INVALID_CHOICE", "purpose is one of "
				    "image, audio, video, document, sticker, "
				    "avatar");
				return (-1);
			}
		} else if (strcmp(parts[i].name, "customer_id") == 0) {
			errno = 0;
			if (part_text(&parts[i], buf, sizeof(buf)) == -1 ||
			    buf[0] < '1' || buf[0] > '9' ||
			    (*customer = strtoll(buf, &end, 10)) <= 0 ||
			    errno != 0 || *end != '\0') {
				field_error(req, 422, "customer_id",
				    "INVALID_FORMAT", "customer_id is a "
				    "positive integer");
				return (-1);
			}
		}
	}
	return (0);
}

static void
input_from_part(struct sb_req *req, const struct sb_part *pt,
    const char *purpose, int64_t customer, struct sb_media_input *in)
{
	const struct sb_principal	*who;

	memset(in, 0, sizeof(*in));
	in->size = sizeof(*in);
	in->data = pt->data;
	in->fd = pt->fd;
	in->offset = pt->offset;
	in->len = pt->len;
	in->filename = pt->filename;
	in->declared_type = pt->content_type;
	in->purpose = purpose[0] != '\0' ? purpose : NULL;
	in->customer_id = customer;
	who = api->req_principal(req);
	in->uploaded_by = who != NULL && who->kind == SB_ACTOR_USER ?
	    who->id : 0;
}

static const char *
status_code(int status)
{
	switch (status) {
	case 413:
		return ("PAYLOAD_TOO_LARGE");
	case 415:
		return ("UNSUPPORTED_MEDIA_TYPE");
	case 422:
		return ("VALIDATION_ERROR");
	case 503:
		return ("UNAVAILABLE");
	default:
		return ("INTERNAL");
	}
}

/* 1 when the storage backend can take objects (configured). */
static int
store_ok(void)
{
	json_t	*detail;
	int	 rc;

	if (store->ready == NULL)
		return (1);
	detail = json_object();
	rc = store->ready(detail);
	json_decref(detail);
	return (rc == SB_OK);
}

/* 503 while the storage backend is not configured; -1 when answered. */
static int
store_unavailable(struct sb_req *req)
{
	if (store_ok())
		return (0);
	api->resp_header(req, "Retry-After", "60");
	api->respond_error(req, 503, "UNAVAILABLE", "the media storage is "
	    "not configured", NULL);
	return (-1);
}

static void
media_upload(struct sb_req *req)
{
	const struct sb_part	*parts, *file;
	struct sb_media_input	 in;
	struct ingest		 ig;
	char			 purpose[32];
	int64_t			 customer;
	size_t			 n, i;
	json_t			*o;

	if (store_unavailable(req) == -1)
		return;
	if (api->req_parts(req, &parts, &n) != SB_OK)
		return;
	if (form_fields(req, parts, n, purpose, sizeof(purpose),
	    &customer) == -1)
		return;
	file = NULL;
	for (i = 0; i < n; i++) {
		if (parts[i].name != NULL && strcmp(parts[i].name, "file") ==
		    0) {
			if (file != NULL) {
				field_error(req, 422, "file", "INVALID_FORMAT",
				    "one file per upload (use bulk-upload)");
				return;
			}
			file = &parts[i];
		}
	}
	if (file == NULL) {
		field_error(req, 422, "file", "REQUIRED", "field file is "
		    "required");
		return;
	}
	input_from_part(req, file, purpose, customer, &in);
	memset(&ig, 0, sizeof(ig));
	ig.in = &in;
	if (ingest(&ig, 1) == -1) {
		if (ig.code != NULL)
			field_error(req, ig.status, ig.field, ig.code, ig.err);
		else
			api->respond_error(req, ig.status,
			    status_code(ig.status), ig.err, NULL);
		return;
	}
	if ((o = media_json(ig.id)) == NULL) {
		api->respond_error(req, 500, "INTERNAL", "cannot read the "
		    "item back", NULL);
		return;
	}
	api->respond_json(req, 201, o);
}

static void
media_bulk(struct sb_req *req)
{
	const struct sb_part	*parts;
	struct sb_media_input	 in;
	struct ingest		 ig;
	char			 purpose[32], name[208];
	int64_t			 customer;
	size_t			 n, i, files;
	json_t			*out, *item, *o;

	if (store_unavailable(req) == -1)
		return;
	if (api->req_parts(req, &parts, &n) != SB_OK)
		return;
	if (form_fields(req, parts, n, purpose, sizeof(purpose),
	    &customer) == -1)
		return;
	out = json_array();
	for (i = files = 0; i < n; i++) {
		if (parts[i].name == NULL || strcmp(parts[i].name, "file") != 0)
			continue;
		files++;
		filename_clean(parts[i].filename, name, sizeof(name));
		input_from_part(req, &parts[i], purpose, customer, &in);
		memset(&ig, 0, sizeof(ig));
		ig.in = &in;
		if (ingest(&ig, 1) == 0 && (o = media_json(ig.id)) != NULL) {
			item = json_pack("{s:s, s:i, s:o}", "filename", name,
			    "status", 201, "media", o);
		} else {
			if (ig.status == 0) {
				ig.status = 500;
				(void)snprintf(ig.err, sizeof(ig.err), "cannot "
				    "read the item back");
			}
			item = json_pack("{s:s, s:i, s:{s:s, s:s}}",
			    "filename", name, "status", ig.status, "error",
			    "code", status_code(ig.status), "message", ig.err);
			if (ig.code != NULL)
				json_object_set_new(json_object_get(item,
				    "error"), "errors", json_pack("[{s:s, s:s, "
				    "s:s}]", "field", ig.field, "code",
				    ig.code, "message", ig.err));
		}
		json_array_append_new(out, item);
	}
	if (files == 0) {
		json_decref(out);
		field_error(req, 422, "file", "REQUIRED", "at least one field "
		    "file is required");
		return;
	}
	api->respond_json(req, 200, json_pack("{s:o}", "data", out));
}

static void
media_get(struct sb_req *req)
{
	int64_t	 id;
	json_t	*o;

	if ((id = path_id(req)) == -1 || (o = media_json(id)) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such media item",
		    NULL);
		return;
	}
	api->respond_json(req, 200, o);
}

static void
media_delete(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id_s[24], sha[65], thumb[65];
	int64_t			 id;

	if ((id = path_id(req)) == -1) {
		api->respond_error(req, 404, "NOT_FOUND", "no such media item",
		    NULL);
		return;
	}
	(void)snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	params[0] = id_s;
	if (api->db_begin(plug) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "the database is "
		    "unavailable", NULL);
		return;
	}
	r = api->db_query(plug, "SELECT sha256, coalesce(thumb_sha256, '') "
	    "FROM media WHERE id = $1 FOR UPDATE", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		api->db_rollback(plug);
		api->respond_error(req, 404, "NOT_FOUND", "no such media item",
		    NULL);
		return;
	}
	(void)snprintf(sha, sizeof(sha), "%s", api->db_value(r, 0, 0));
	(void)snprintf(thumb, sizeof(thumb), "%s", api->db_value(r, 0, 1));
	api->db_free(r);
	/* Both locks in hash order, as privacy erase takes them. */
	if (thumb[0] != '\0' && strcmp(thumb, sha) < 0 &&
	    sha_lock(thumb) != SB_OK)
		goto fail;
	if (sha_lock(sha) != SB_OK)
		goto fail;
	if (thumb[0] != '\0' && strcmp(thumb, sha) > 0 &&
	    sha_lock(thumb) != SB_OK)
		goto fail;
	r = api->db_query(plug, "DELETE FROM media WHERE id = $1", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		goto fail;
	}
	api->db_free(r);
	if (bytes_release(sha) != SB_OK || (thumb[0] != '\0' &&
	    strcmp(thumb, sha) != 0 && bytes_release(thumb) != SB_OK) ||
	    api->db_commit(plug) != SB_OK)
		goto fail;
	api->respond_raw(req, 204, NULL, NULL, 0);
	return;
fail:
	api->db_rollback(plug);
	api->respond_error(req, 500, "INTERNAL", "cannot delete the item",
	    NULL);
}

/*
 * Who may read an item's bytes: the host already admitted the caller
 * (media.read, or a signed URL for this very path: SB_ROUTE_SIGNED).
 * What is left is the id itself.
 */
static int
content_allowed(struct sb_req *req, int64_t id)
{
	if (id <= 0) {
		api->respond_error(req, 404, "NOT_FOUND", "no such media "
		    "item", NULL);
		return (-1);
	}
	return (0);
}

/* Shown inline only when a browser cannot run it. */
static int
inline_safe(const char *type)
{
	if (strcmp(type, "image/svg+xml") == 0)
		return (0);
	return (strncmp(type, "image/", 6) == 0 ||
	    strncmp(type, "audio/", 6) == 0 ||
	    strncmp(type, "video/", 6) == 0 ||
	    strcmp(type, "application/pdf") == 0);
}

/* Does If-None-Match name the entity tag (or "*")? */
static int
etag_matches(const char *inm, const char *sha)
{
	const char	*s;

	if (inm == NULL)
		return (0);
	if (strchr(inm, '*') != NULL)
		return (1);
	for (s = inm; (s = strstr(s, sha)) != NULL; s += 64) {
		if ((s == inm || s[-1] == '"' || s[-1] == ' ' ||
		    s[-1] == ',') && (s[64] == '\0' || s[64] == '"' ||
		    s[64] == ',' || s[64] == ' '))
			return (1);
	}
	return (0);
}

/*
 * A single "bytes=" range of size: 1 with [*first, *last], 0 when there
 * is no usable Range header (absent, several ranges, or not a bytes
 * range: served whole), -1 when it cannot be satisfied (416).
 */
static int
range_parse(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
	unsigned long long	 a, b;
	const char		*s;
	char			*end;

	if (h == NULL || strncmp(h, "bytes=", 6) != 0 ||
	    strchr(h, ',') != NULL)
		return (0);
	s = h + 6;
	if (*s == '-') {
		if (!isdigit((unsigned char)s[1]))
			return (0);
		errno = 0;
		b = strtoull(s + 1, &end, 10);
		if (errno != 0 || *end != '\0')
			return (0);
		if (b == 0 || size == 0)
			return (-1);
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return (1);
	}
	if (!isdigit((unsigned char)*s))
		return (0);
	errno = 0;
	a = strtoull(s, &end, 10);
	if (errno != 0 || *end != '-')
		return (0);
	s = end + 1;
	if (*s == '\0')
		b = size == 0 ? 0 : size - 1;
	else {
		if (!isdigit((unsigned char)*s))
			return (0);
		b = strtoull(s, &end, 10);
		if (errno != 0 || *end != '\0' || b < a)
			return (0);
	}
	if (a >= size)
		return (-1);
	*first = a;
	*last = b >= size ? size - 1 : b;
	return (1);
}

/* A download waiting for the store to fetch its object. */
struct content_wait {
	struct sb_req	*req;
	char		 sha[65];
	char		 mime[128];
	char		*range;		/* the Range header, or NULL */
};

/* Answer with the object at fd (stolen): whole, a range, or 416. */
static void
content_send(struct sb_req *req, int fd, uint64_t size, const char *mime,
    const char *range)
{
	char		 hdr[100];
	uint64_t	 first, last, len;
	int		 rc;

	rc = range_parse(range, size, &first, &last);
	if (rc == -1) {
		(void)close(fd);
		(void)snprintf(hdr, sizeof(hdr), "bytes */%" PRIu64, size);
		api->resp_header(req, "Content-Range", hdr);
		api->respond_error(req, 416, "VALIDATION_ERROR", "the range "
		    "cannot be satisfied", NULL);
		return;
	}
	if (rc == 0) {
		first = 0;
		last = size - 1;
	}
	len = size == 0 ? 0 : last - first + 1;
	if (rc == 1) {
		(void)snprintf(hdr, sizeof(hdr), "bytes %" PRIu64 "-%" PRIu64
		    "/%" PRIu64, first, last, size);
		api->resp_header(req, "Content-Range", hdr);
	}
	/* The host owns fd from here and streams it. */
	api->respond_file(req, rc == 1 ? 206 : 200, mime, fd, first, len);
}

static void
content_fetched(void *arg, int status)
{
	struct content_wait	*w = arg;
	uint64_t		 size;
	int			 fd;

	fd = status == 0 ? store->open(w->sha, &size) : -1;
	if (fd != -1)
		content_send(w->req, fd, size, w->mime, w->range);
	else if (status == 502)
		api->respond_error(w->req, 502, "UPSTREAM_ERROR", "the media "
		    "storage did not give the file", NULL);
	else
		api->respond_error(w->req, 500, "INTERNAL", "the file is "
		    "missing", NULL);
	free(w->range);
	free(w);
}

/* Not in the local store: fetched (deferred), 503 or 500. */
static void
content_remote(struct sb_req *req, const char *id_s, const char *sha,
    const char *mime)
{
	struct content_wait	*w;
	const char		*range;
	int			 rc;

	if (store->fetch == NULL || (w = calloc(1, sizeof(*w))) == NULL) {
		api->log(plug, SB_LOG_ERROR, "media %s: the bytes are missing",
		    id_s);
		api->respond_error(req, 500, "INTERNAL", "the file is missing",
		    NULL);
		return;
	}
	w->req = req;
	(void)snprintf(w->sha, sizeof(w->sha), "%s", sha);
	(void)snprintf(w->mime, sizeof(w->mime), "%s", mime);
	range = api->req_header(req, "Range");
	if (range != NULL && (w->range = strdup(range)) == NULL) {
		free(w);
		api->respond_error(req, 500, "INTERNAL", "out of memory", NULL);
		return;
	}
	if ((rc = store->fetch(sha, content_fetched, w)) == 0) {
		api->req_defer(req);
		return;
	}
	free(w->range);
	free(w);
	if (rc == 503) {
		api->resp_header(req, "Retry-After", "5");
		api->respond_error(req, 503, "UNAVAILABLE", "the file is not "
		    "in the media storage yet", NULL);
	} else {
		api->log(plug, SB_LOG_ERROR, "media %s: the bytes are missing",
		    id_s);
		api->respond_error(req, 500, "INTERNAL", "the file is missing",
		    NULL);
	}
}

/* The item's bytes, or its thumbnail's. */
/* "photo.webp" -> "photo-thumbnail.jpg": the thumbnail's own type. */
static void
thumb_name(char *name, size_t len, const char *mime)
{
	char	*dot;
	size_t	 n;

	if ((dot = strrchr(name, '.')) != NULL && dot != name)
		*dot = '\0';
	n = strlen(name);
	if (n > len - 32)
		name[len - 32] = '\0';
	n = strlen(name);
	(void)snprintf(name + n, len - n, "-thumbnail.%s",
	    strcmp(mime, "image/png") == 0 ? "png" : "jpg");
}

static void
media_serve(struct sb_req *req, int thumbnail)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id_s[24], sha[65], mime[128], name[208];
	char			 hdr[300];
	uint64_t		 size;
	int64_t			 id;
	int			 fd;

	id = path_id(req);
	if (content_allowed(req, id) == -1)
		return;
	(void)snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	params[0] = id_s;
	r = api->db_query(plug, thumbnail ? "SELECT thumb_sha256, thumb_mime, "
	    "filename FROM media WHERE id = $1" : "SELECT sha256, mime_type, "
	    "filename FROM media WHERE id = $1", 1, params);
	if (id == -1 || !api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		api->respond_error(req, 404, "NOT_FOUND", "no such media item",
		    NULL);
		return;
	}
	if (api->db_isnull(r, 0, 0)) {
		api->db_free(r);
		api->respond_error(req, 404, "NOT_FOUND", "the item has no "
		    "thumbnail (not made yet, or not an image)", NULL);
		return;
	}
	(void)snprintf(sha, sizeof(sha), "%s", api->db_value(r, 0, 0));
	(void)snprintf(mime, sizeof(mime), "%s", api->db_value(r, 0, 1));
	filename_clean(api->db_value(r, 0, 2), name, sizeof(name));
	api->db_free(r);
	if (thumbnail)
		thumb_name(name, sizeof(name), mime);

	(void)snprintf(hdr, sizeof(hdr), "\"%s\"", sha);
	api->resp_header(req, "ETag", hdr);
	api->resp_header(req, "Cache-Control", "private, max-age=300");
	api->resp_header(req, "Accept-Ranges", "bytes");
	(void)snprintf(hdr, sizeof(hdr), "%s; filename=\"%s\"",
	    inline_safe(mime) ? "inline" : "attachment", name);
	api->resp_header(req, "Content-Disposition", hdr);
	if (etag_matches(api->req_header(req, "If-None-Match"), sha)) {
		api->respond_raw(req, 304, mime, NULL, 0);
		return;
	}

	if ((fd = store->open(sha, &size)) == -1) {
		content_remote(req, id_s, sha, mime);
		return;
	}
	content_send(req, fd, size, mime, api->req_header(req, "Range"));
}

static void
media_content(struct sb_req *req)
{
	media_serve(req, 0);
}

static void
media_thumbnail(struct sb_req *req)
{
	media_serve(req, 1);
}

/* list_respond's map: the row as GET /api/v1/media/{id} shows it. */
static json_t *
list_map(struct sb_req *req, json_t *row, void *arg)
{
	json_t	*id;
	char	*url;

	(void)req;
	(void)arg;
	id = json_object_get(row, "id");
	url = json_is_integer(id) ? url_signed(json_integer_value(id), 0) :
	    NULL;
	json_object_set_new(row, "url", url != NULL ? json_string(url) :
	    json_null());
	free(url);
	url = json_is_integer(id) && json_is_true(json_object_get(row,
	    "has_thumb")) ? url_signed_for(json_integer_value(id), 0,
	    "thumbnail") : NULL;
	json_object_del(row, "has_thumb");
	json_object_set_new(row, "thumbnail_url", url != NULL ?
	    json_string(url) : json_null());
	free(url);
	return (row);
}

static void
media_list(struct sb_req *req)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	const char		*purpose, *cust, *params[4];
	char			*end;

	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	purpose = api->req_query(req, "purpose");
	if (purpose != NULL && *purpose == '\0')
		purpose = NULL;
	if (purpose != NULL && purpose_find(purpose) == NULL) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "purpose is "
		    "one of image, audio, video, document, sticker, avatar",
		    json_pack("[{s:s, s:s, s:s}]", "field", "purpose", "code",
		    "INVALID_CHOICE", "message", "not a purpose"));
		return;
	}
	cust = api->req_query(req, "customer_id");
	if (cust != NULL && *cust == '\0')
		cust = NULL;
	if (cust != NULL) {
		errno = 0;
		if (*cust < '1' || *cust > '9' || strlen(cust) > 18 ||
		    strtoll(cust, &end, 10) <= 0 || errno != 0 ||
		    *end != '\0') {
			api->respond_error(req, 400, "VALIDATION_ERROR",
			    "customer_id is a positive integer",
			    json_pack("[{s:s, s:s, s:s}]", "field",
			    "customer_id", "code", "INVALID_FORMAT", "message",
			    "a positive integer"));
			return;
		}
	}
	params[0] = purpose;
	params[1] = cust;
	params[2] = list.cursor;
	params[3] = list.limit_plus_one;
	r = api->db_query(plug, "SELECT " MEDIA_COLS ", thumb_sha256 IS NOT "
	    "NULL AS has_thumb FROM media WHERE "
	    "($1::text IS NULL OR purpose = $1) AND "
	    "($2::bigint IS NULL OR customer_id = $2::bigint) AND "
	    "($3::bigint IS NULL OR id < $3::bigint) "
	    "ORDER BY id DESC LIMIT $4::bigint", 4, params);
	api->list_respond(req, r, &list, "id", list_map, NULL);
}

/* --- Privacy ----------------------------------------------------------- */

static json_t *
media_privacy_export(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	const char		*params[1];
	json_t			*out, *list;
	int			 i;

	(void)p;
	out = json_object();
	if (s->kind != SB_SUBJECT_CUSTOMER)
		return (out);
	params[0] = s->value;
	r = api->db_query(plug, "SELECT " MEDIA_COLS " FROM media WHERE "
	    "customer_id = $1::bigint ORDER BY id", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		json_decref(out);
		return (NULL);
	}
	list = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(list, api->db_row_json(r, i));
	api->db_free(r);
	json_object_set_new(out, "media", list);
	return (out);
}

static long long
media_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r, *d;
	const char		*params[1];
	long long		 n;
	int			 i;

	(void)p;
	if (s->kind != SB_SUBJECT_CUSTOMER)
		return (0);
	params[0] = s->value;
	/* The rows first, then their hashes, as DELETE and the thumbnail
	 * job take them: one order, no deadlock. */
	r = api->db_query(plug, "SELECT id FROM media WHERE customer_id = "
	    "$1::bigint ORDER BY id FOR UPDATE", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	api->db_free(r);
	r = api->db_query(plug, "SELECT sha256 FROM media WHERE customer_id = "
	    "$1::bigint UNION SELECT thumb_sha256 FROM media WHERE "
	    "customer_id = $1::bigint AND thumb_sha256 IS NOT NULL "
	    "ORDER BY 1", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	for (i = 0; i < api->db_rows(r); i++) {
		if (sha_lock(api->db_value(r, i, 0)) != SB_OK) {
			api->db_free(r);
			return (-1);
		}
	}
	d = api->db_query(plug, "WITH d AS (DELETE FROM media WHERE "
	    "customer_id = $1::bigint RETURNING 1) SELECT count(*) FROM d",
	    1, params);
	if (!api->db_ok(d) || api->db_rows(d) != 1) {
		api->db_free(d);
		api->db_free(r);
		return (-1);
	}
	n = strtoll(api->db_value(d, 0, 0), NULL, 10);
	api->db_free(d);
	for (i = 0; i < api->db_rows(r); i++) {
		if (bytes_release(api->db_value(r, i, 0)) != SB_OK) {
			api->db_free(r);
			return (-1);
		}
	}
	api->db_free(r);
	return (n);
}

/* --- The media.store service ------------------------------------------ */

static int64_t
svc_put(struct sb_plugin *caller, const struct sb_media_input *in,
    int *status, char *err, size_t errlen)
{
	struct ingest	ig;

	(void)caller;
	memset(&ig, 0, sizeof(ig));
	ig.in = in;
	if (in == NULL || in->size < sizeof(*in)) {
		*status = 500;
		(void)snprintf(err, errlen, "bad input");
		return (-1);
	}
	if (!store_ok()) {
		*status = 503;
		(void)snprintf(err, errlen, "the media storage is not "
		    "configured");
		return (-1);
	}
	if (ingest(&ig, 0) == -1) {
		*status = ig.status;
		(void)snprintf(err, errlen, "%s", ig.err);
		return (-1);
	}
	*status = 201;
	return (ig.id);
}

static char *
svc_signed_url(struct sb_plugin *caller, int64_t id, unsigned int ttl)
{
	(void)caller;
	return (url_signed(id, ttl));
}

static json_t *
svc_metadata(struct sb_plugin *caller, int64_t id)
{
	(void)caller;
	return (media_json(id));
}

static int
svc_open(struct sb_plugin *caller, int64_t id, uint64_t *size)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id_s[24], sha[65];

	(void)caller;
	(void)snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	params[0] = id_s;
	r = api->db_query(plug, "SELECT sha256 FROM media WHERE id = $1",
	    1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (-1);
	}
	(void)snprintf(sha, sizeof(sha), "%s", api->db_value(r, 0, 0));
	api->db_free(r);
	return (store->open(sha, size));
}

static const struct sb_media_store service = {
	.hdr = { .size = sizeof(struct sb_media_store),
	    .version = SB_MEDIA_STORE_VERSION },
	.put = svc_put,
	.signed_url = svc_signed_url,
	.metadata = svc_metadata,
	.open = svc_open,
};

/* --- For avatar.c ------------------------------------------------------ */

/*
 * ingest()'s checks before the bytes are stored, for an upload the
 * plugin stores a copy of rather than itself (the avatar's re-encoded
 * JPEG): libmagic's type, the declared type, the purpose's types and
 * size limit.
 */
int
media_judge(const struct sb_media_input *in, char *sniffed, size_t slen,
    int *status, const char **code, char *err, size_t errlen)
{
	struct ingest		 ig;
	const struct purpose	*pu;

	memset(&ig, 0, sizeof(ig));
	ig.in = in;
	ig.id = -1;
	if (judge(&ig, sniffed, slen, &pu) == -1) {
		*status = ig.status;
		*code = ig.code;
		(void)snprintf(err, errlen, "%s", ig.err);
		return (-1);
	}
	*status = 0;
	*code = NULL;
	return (0);
}

int64_t
media_put(const struct sb_media_input *in, int *status, char *err,
    size_t errlen)
{
	return (svc_put(plug, in, status, err, errlen));
}

/* Delete an item; its bytes go when no row names them any more. */
int
media_drop(int64_t id)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id_s[24], sha[65];

	(void)snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	params[0] = id_s;
	r = api->db_query(plug, "SELECT sha256 FROM media WHERE id = $1 "
	    "FOR UPDATE", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (SB_ERROR);
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		return (SB_OK);
	}
	(void)snprintf(sha, sizeof(sha), "%s", api->db_value(r, 0, 0));
	api->db_free(r);
	if (sha_lock(sha) != SB_OK)
		return (SB_ERROR);
	r = api->db_query(plug, "DELETE FROM media WHERE id = $1", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (SB_ERROR);
	}
	api->db_free(r);
	return (bytes_release(sha));
}

int
media_open(const char *sha, uint64_t *size)
{
	return (store->open(sha, size));
}

/* --- Lifecycle --------------------------------------------------------- */

/*
 * libvips' warnings about a client's broken file ("not enough data",
 * "error in tile") go to the structured log instead of raw stderr.  The
 * handler is process-wide (the "VIPS" GLib domain), so it also catches the
 * host's own image.c; the host is where it belongs in the end.
 */
static void
media_vips_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
    gpointer arg)
{
	(void)domain;
	(void)arg;
	api->log(plug, (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) ?
	    SB_LOG_WARN : SB_LOG_DEBUG, "libvips: %s", msg);
}

/*
 * libvips, once in the parent (the host did this in src/image.c until
 * the avatar moved here): vectorisation off (ORC's JIT needs W+X memory,
 * which the sandbox denies), one thread per pipeline, no operation
 * cache (every image is new), and no loader but JPEG, PNG, WebP and GIF.
 */
static int
media_vips_init(void)
{
	static const char *const loaders[] = { "VipsForeignLoadJpegBuffer",
	    "VipsForeignLoadPngBuffer", "VipsForeignLoadWebpBuffer",
	    "VipsForeignLoadNsgifBuffer", NULL };
	int	i;

	if (VIPS_INIT("switchboard") != 0)
		return (SB_ERROR);
	vips_vector_set_enabled(FALSE);
	vips_concurrency_set(1);
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (i = 0; loaders[i] != NULL; i++)
		vips_operation_block_set(loaders[i], FALSE);
	return (SB_OK);
}

/* The sweep's kind, every sweep_interval seconds (0: no sweep). */
static int
sweep_add(struct sb_plugin *p, const struct sb_host_api *a)
{
	long long	iv;

	iv = a->config_int(p, "sweep_interval", 86400);
	if (iv == 0)
		return (SB_OK);
	if (iv < 1 || iv > 31 * 86400) {
		a->log(p, SB_LOG_ERROR, "sweep_interval: 0 (off) or 1 s to "
		    "31 days");
		return (SB_ERROR);
	}
	sweep_kind.interval_s = (unsigned int)iv;
	return (a->job_kind_add(p, &sweep_kind));
}

static int
media_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	const char	*backend;

	api = a;
	plug = p;
	if (!SB_API_HAS(a, req_parts) || !SB_API_HAS(a, blind_index) ||
	    !SB_API_HAS(a, service_export) || !SB_API_HAS(a, respond_file)) {
		a->log(p, SB_LOG_ERROR, "the host lacks ABI 1.3");
		return (SB_ERROR);
	}
	if (a->config_declare(p, config) != SB_OK ||
	    a->routes_add(p, routes) != SB_OK ||
	    a->permission_add(p, "media.read", "Read media items and their "
	    "bytes") != SB_OK ||
	    a->permission_add(p, "media.upload", "Upload media") != SB_OK ||
	    a->permission_add(p, "media.manage", "Delete media items") !=
	    SB_OK ||
	    a->migrations_add(p, "migrations") != SB_OK ||
	    a->job_kind_add(p, &thumb_kind) != SB_OK ||
	    sweep_add(p, a) != SB_OK ||
	    avatar_setup(p) != SB_OK)
		return (SB_ERROR);
	if (media_vips_init() != SB_OK) {
		a->log(p, SB_LOG_ERROR, "libvips: %s", vips_error_buffer());
		return (SB_ERROR);
	}
	backend = a->config_get(p, "storage");
	if (backend != NULL && strcmp(backend, "s3") == 0)
		store = &media_store_s3;
	else if (backend != NULL && strcmp(backend, "dir") != 0) {
		a->log(p, SB_LOG_ERROR, "storage %s is not available (dir or "
		    "s3)", backend);
		return (SB_ERROR);
	}
	if (store->setup(p, a) != SB_OK)
		return (SB_ERROR);
	(void)g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, media_vips_log, NULL);
	/* Loaded here, in the parent: the database is outside the chroot. */
	cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS |
	    MAGIC_NO_CHECK_TAR);
	if (cookie == NULL || magic_load(cookie, NULL) == -1) {
		a->log(p, SB_LOG_ERROR, "libmagic: %s", cookie != NULL ?
		    magic_error(cookie) : "magic_open failed");
		return (SB_ERROR);
	}
	return (a->service_export(p, SB_MEDIA_STORE,
	    (const struct sb_service *)&service));
}

static int
media_init(struct sb_plugin *p)
{
	(void)p;
	return (store->check());
}

/* /readyz: the backend's state; "not configured" leaves the node ready. */
static int
media_health(struct sb_plugin *p, json_t *detail)
{
	(void)p;
	json_object_set_new(detail, "storage", json_string(store->name));
	if (store->ready != NULL)
		(void)store->ready(detail);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.media",
	.name = "media",
	.version = "0.1.0",
	.summary = "Media: validated uploads, a content-addressed store, "
	    "signed downloads with ranges; the media.store service",
	.setup = media_setup,
	.init = media_init,
	.health = media_health,
	.privacy_export = media_privacy_export,
	.privacy_erase = media_privacy_erase,
)
