/*
 * Media to and from Graph.  Out: an item of the media plugin an agent
 * attaches is checked against WhatsApp's types and limits, uploaded once
 * per phone number id (POST /<phone_number_id>/media, multipart) and
 * remembered in whatsapp_media_uploads until Graph forgets it (30 days).
 * In: the durable job "whatsapp.media_fetch" asks Graph for an inbound
 * message's media URL, downloads it with the Bearer token into a file of
 * our spool directory, checks Meta's SHA-256 and stores it through the
 * media plugin (media.store), then names the item on the message.
 *
 * Files in the spool directory are unlinked as soon as they are opened:
 * the descriptor carries them, so a worker that dies leaves nothing.
 */

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "wa.h"

#include <switchboard/helpers.h>

#define api	wa_api
#define self	wa_self

#define FETCH_KIND		"whatsapp.media_fetch"
#define MB			(1024ULL * 1024)
#define MEDIA_MAX		(100 * MB)	/* WhatsApp's largest: documents */
#define TRANSFER_MS		240000		/* one upload or download */
#define GRAPH_ID_MAX		128
#define COPY_CHUNK		(256 * 1024)

/* What WhatsApp sends as each type (Meta's "Supported media types"). */
struct wa_kind {
	const char		*type;
	const char *const	*mimes;
	uint64_t		 max;
	const char		*limit;		/* max for a person */
	const char		*names;		/* mimes for a person */
};

static const char *const image_mimes[] = { "image/jpeg", "image/png",
	NULL };
static const char *const video_mimes[] = { "video/mp4", "video/3gpp",
	NULL };
static const char *const audio_mimes[] = { "audio/aac", "audio/amr",
	"audio/mpeg", "audio/mp4", "audio/ogg", NULL };
static const char *const document_mimes[] = { "text/plain",
	"application/pdf", "application/msword", "application/vnd.ms-excel",
	"application/vnd.ms-powerpoint",
	"application/vnd.openxmlformats-officedocument.wordprocessingml."
	"document",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"application/vnd.openxmlformats-officedocument.presentationml."
	"presentation", NULL };
static const char *const sticker_mimes[] = { "image/webp", NULL };

static const struct wa_kind kinds[] = {
	{ "image", image_mimes, 5 * MB, "5 MB", "JPEG or PNG" },
	{ "video", video_mimes, 16 * MB, "16 MB", "MP4 or 3GPP" },
	{ "audio", audio_mimes, 16 * MB, "16 MB", "AAC, AMR, MP3, MP4 or "
	  "OGG (Opus)" },
	{ "document", document_mimes, MEDIA_MAX, "100 MB", "PDF, plain "
	  "text, Microsoft Office or any image, audio or video WhatsApp "
	  "takes" },
	{ "sticker", sticker_mimes, 500 * 1024, "500 KB", "WebP" },
	{ NULL, NULL, 0, NULL, NULL }
};

/* File name extensions of the types, for a download that has no name. */
static const char *const exts[][2] = {
	{ "image/jpeg", "jpg" }, { "image/png", "png" },
	{ "image/webp", "webp" }, { "video/mp4", "mp4" },
	{ "video/3gpp", "3gp" }, { "audio/aac", "aac" },
	{ "audio/amr", "amr" }, { "audio/mpeg", "mp3" },
	{ "audio/mp4", "m4a" }, { "audio/ogg", "ogg" },
	{ "text/plain", "txt" }, { "application/pdf", "pdf" },
	{ "application/msword", "doc" }, { "application/vnd.ms-excel", "xls" },
	{ "application/vnd.ms-powerpoint", "ppt" },
	{ "application/vnd.openxmlformats-officedocument.wordprocessingml."
	  "document", "docx" },
	{ "application/vnd.openxmlformats-officedocument.spreadsheetml."
	  "sheet", "xlsx" },
	{ "application/vnd.openxmlformats-officedocument.presentationml."
	  "presentation", "pptx" },
	{ NULL, NULL }
};

/* An upload to Graph for wa_media_graph_id(). */
struct upload {
	int64_t		 media_id;
	char		 phone[64];	/* the phone number id it went to */
	wa_media_cb	 cb;
	void		*arg;
};

/* One run of the fetch job. */
struct fetch {
	struct sb_job	*job;
	int64_t		 id;
	char		 ids[24];
	char		 type[16];
	char		 customer[24];
	char		 graph_id[GRAPH_ID_MAX + 1];
	char		*filename;	/* the payload's, or NULL */
	char		 mime[128];	/* Graph's, else the payload's */
	char		 sha[65];	/* Meta's, lower-case hex, or "" */
	uint64_t	 size;		/* Graph's file_size, 0: not said */
	int		 fd;		/* the download, or -1 */
};

static const struct wa_kind	*kind_find(const char *);
static int	 kind_allows(const struct wa_kind *, const char *);
static void	 mime_base(const char *, char *, size_t);
static const char *ext_of(const char *);
static int	 graph_id_ok(const char *);
static int	 spool_open(void);
static int	 write_all(int, const void *, size_t);
static int	 copy_range(int, int, uint64_t);
static int	 sha256_fd(int, uint64_t *, char *);
static void	 filename_clean(const char *, char *, size_t);
static void	 graph_error(const struct sb_http_response *, char *, size_t);
static int	 transient(int);
static int	 upload_start(int64_t, wa_media_cb, void *);
static void	 upload_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	 upload_remember(const struct upload *, const char *);
static void	 fetch_run(struct sb_job *);
static void	 fetch_meta_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	 fetch_body_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	 fetch_store(struct fetch *);
static void	 fetch_note(struct fetch *, const char *);
static void	 fetch_retry(struct fetch *, const char *, unsigned int);
static void	 fetch_publish(struct fetch *);
static void	 fetch_free(struct fetch *);

static int	spool_fd = -1;

static const struct sb_job_kind fetch_kind = {
	.name = FETCH_KIND, .run = fetch_run, .max_attempts = 10,
	/* Graph's answer, then the download, then the store. */
	.timeout_s = 360, .backoff_s = 5
};

/* ---- types ---- */

static const struct wa_kind *
kind_find(const char *type)
{
	size_t	i;

	for (i = 0; type != NULL && kinds[i].type != NULL; i++)
		if (strcmp(kinds[i].type, type) == 0)
			return (&kinds[i]);
	return (NULL);
}

/* A document may be any file WhatsApp takes: a photo sent as a file. */
static int
kind_allows(const struct wa_kind *k, const char *mime)
{
	size_t	i, j;

	for (i = 0; k->mimes[i] != NULL; i++)
		if (strcmp(k->mimes[i], mime) == 0)
			return (1);
	if (strcmp(k->type, "document") != 0)
		return (0);
	for (i = 0; kinds[i].type != NULL; i++)
		for (j = 0; kinds[i].mimes[j] != NULL; j++)
			if (strcmp(kinds[i].mimes[j], mime) == 0)
				return (1);
	return (0);
}

/* "audio/ogg; codecs=opus" -> "audio/ogg", lower case. */
static void
mime_base(const char *in, char *out, size_t len)
{
	size_t	i;

	for (i = 0; in != NULL && in[i] != '\0' && in[i] != ';' &&
	    in[i] != ' ' && i + 1 < len; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? in[i] + 32 : in[i];
	out[i] = '\0';
}

static const char *
ext_of(const char *mime)
{
	size_t	i;

	for (i = 0; exts[i][0] != NULL; i++)
		if (strcmp(exts[i][0], mime) == 0)
			return (exts[i][1]);
	return ("bin");
}

/* Graph's media ids are digits; anything that is not a path segment
 * is refused before it reaches a URL. */
static int
graph_id_ok(const char *id)
{
	size_t	n;

	if (id == NULL || (n = strlen(id)) == 0 || n > GRAPH_ID_MAX)
		return (0);
	return (strspn(id, "0123456789abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-.") == n && strcmp(id, ".") != 0 &&
	    strcmp(id, "..") != 0);
}

int
wa_media_check(struct sb_req *req, int64_t media_id, const char *type,
    json_t **meta)
{
	const struct wa_kind	*k;
	json_t			*m;
	json_int_t		 size;
	char			 mime[128], msg[256];

	*meta = NULL;
	if ((k = kind_find(type)) == NULL) {
		wa_err_field(req, 422, "type", "INVALID_CHOICE", "media go as "
		    "image, video, audio, document or sticker");
		return (-1);
	}
	if ((m = wa_media->metadata(self, media_id)) == NULL) {
		wa_err_field(req, 422, "media_id", "NOT_FOUND", "there is no "
		    "media item with this id");
		return (-1);
	}
	mime_base(sb_jstr(m, "mime_type"), mime, sizeof(mime));
	size = sb_jint(m, "size");
	if (!kind_allows(k, mime)) {
		(void)snprintf(msg, sizeof(msg), "WhatsApp does not send %s "
		    "as %s: it takes %s", mime[0] != '\0' ? mime : "this file",
		    k->type, k->names);
		wa_err_field(req, 422, "media_id", "UNSUPPORTED_TYPE", msg);
		json_decref(m);
		return (-1);
	}
	if (size < 0 || (uint64_t)size > k->max) {
		(void)snprintf(msg, sizeof(msg), "WhatsApp sends %s of at most "
		    "%s; this file has %lld bytes", k->type, k->limit,
		    (long long)size);
		wa_err_field(req, 422, "media_id", "TOO_LARGE", msg);
		json_decref(m);
		return (-1);
	}
	*meta = m;
	return (0);
}

/* ---- the spool directory ---- */

/* A new file in the spool directory, already unlinked; -1 on error. */
static int
spool_open(void)
{
	unsigned char	rnd[12];
	char		name[48];
	size_t		i;
	int		fd;

	if (spool_fd == -1) {
		errno = EBADF;
		return (-1);
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		errno = EIO;
		return (-1);
	}
	(void)snprintf(name, sizeof(name), "wa-");
	for (i = 0; i < sizeof(rnd); i++)
		(void)snprintf(name + 3 + 2 * i, 3, "%02x", rnd[i]);
	if ((fd = openat(spool_fd, name, O_RDWR | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		return (-1);
	if (unlinkat(spool_fd, name, 0) == -1)
		api->log(self, SB_LOG_WARN, "%s/%s: %s", wa_conf.spool_dir, name,
		    strerror(errno));
	return (fd);
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	ssize_t			 w;

	while (len > 0) {
		if ((w = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		p += w;
		len -= (size_t)w;
	}
	return (0);
}

/* len bytes of src from its start to dst's position. */
static int
copy_range(int src, int dst, uint64_t len)
{
	unsigned char	*buf;
	uint64_t	 off = 0;
	ssize_t		 r;
	int		 rc = -1;

	if ((buf = malloc(COPY_CHUNK)) == NULL)
		return (-1);
	while (off < len) {
		r = pread(src, buf, len - off < COPY_CHUNK ?
		    (size_t)(len - off) : COPY_CHUNK, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0 || write_all(dst, buf, (size_t)r) == -1)
			goto out;
		off += (uint64_t)r;
	}
	rc = 0;
out:
	free(buf);
	return (rc);
}

/* The SHA-256 (lower-case hex into hex[65]) and size of fd's file. */
static int
sha256_fd(int fd, uint64_t *size, char *hex)
{
	EVP_MD_CTX	*ctx;
	unsigned char	*buf, md[32];
	unsigned int	 mdlen;
	uint64_t	 off = 0;
	ssize_t		 r;
	size_t		 i;
	int		 rc = -1;

	buf = malloc(COPY_CHUNK);
	ctx = EVP_MD_CTX_new();
	if (buf == NULL || ctx == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (;;) {
		r = pread(fd, buf, COPY_CHUNK, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto out;
		if (r == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1)
			goto out;
		off += (uint64_t)r;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md))
		goto out;
	for (i = 0; i < sizeof(md); i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
	*size = off;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return (rc);
}

/* A file name for a multipart header: no quotes, backslashes or
 * control characters; "file" when nothing is left. */
static void
filename_clean(const char *in, char *out, size_t len)
{
	size_t	i, o = 0;

	for (i = 0; in != NULL && in[i] != '\0' && o + 1 < len; i++) {
		if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f ||
		    in[i] == '"' || in[i] == '\\')
			out[o++] = '_';
		else
			out[o++] = in[i];
	}
	out[o] = '\0';
	if (o == 0)
		(void)snprintf(out, len, "file");
}

/* ---- Graph's answers ---- */

/* 429, 5xx and no answer at all pass; anything else is an answer. */
static int
transient(int status)
{
	return (status == 0 || status == 408 || status == 429 ||
	    status >= 500);
}

/* "Graph 400: (#100) Invalid parameter: details" or the transport's. */
static void
graph_error(const struct sb_http_response *res, char *out, size_t len)
{
	json_t		*j = NULL, *e;
	const char	*msg = NULL, *details = NULL;

	if (res->status == 0) {
		(void)snprintf(out, len, "Graph: %s", res->error != NULL ?
		    res->error : "no answer");
		return;
	}
	if (res->body != NULL && res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	e = json_object_get(j, "error");
	msg = sb_jstr(e, "message");
	details = sb_jstr(json_object_get(e, "error_data"), "details");
	(void)snprintf(out, len, "Graph %d%s%s%s%s", res->status,
	    msg != NULL ? ": " : "", msg != NULL ? msg : "",
	    details != NULL ? ": " : "", details != NULL ? details : "");
	json_decref(j);
}

/* ---- out: uploads ---- */

int
wa_media_graph_id(int64_t media_id, char *out, size_t outlen,
    wa_media_cb cb, void *arg)
{
	struct sb_db_res	*r;
	const char		*params[2], *v;
	char			 ids[24];

	if (wa_conf.phone_number_id == NULL || cb == NULL)
		return (-1);
	(void)snprintf(ids, sizeof(ids), "%" PRId64, media_id);
	params[0] = ids;
	params[1] = wa_conf.phone_number_id;
	r = api->db_query(self, "SELECT graph_media_id FROM "
	    "whatsapp_media_uploads WHERE media_id = $1::bigint AND "
	    "phone_number_id = $2 AND expires_at > now() + interval '1 hour'",
	    2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 1) {
		v = api->db_value(r, 0, 0);
		if (strlen(v) < outlen) {
			(void)snprintf(out, outlen, "%s", v);
			api->db_free(r);
			return (1);
		}
		api->log(self, SB_LOG_ERROR, "media %s: the Graph id does not "
		    "fit (%zu bytes)", ids, outlen);
		api->db_free(r);
		return (-1);
	}
	api->db_free(r);
	return (upload_start(media_id, cb, arg));
}

/*
 * Graph takes the file as multipart/form-data; http_send reads a body
 * from one range of one file, so the form is written around a copy of
 * the item in the spool directory.
 */
static int
upload_start(int64_t media_id, wa_media_cb cb, void *arg)
{
	struct sb_http_request	 rq;
	struct sb_http_io	 io;
	struct sb_http_header	 hdr[2];
	struct upload		*u = NULL;
	json_t			*m = NULL;
	unsigned char		 rnd[16];
	char			 url[512], auth[1024], ctype[96], bnd[48];
	char			 mime[128], name[256], path[96];
	char			 head[1024], tail[64];
	uint64_t		 size = 0;
	size_t			 i;
	int			 src = -1, tmp = -1, rc = -1, hl, tl;

	if ((m = wa_media->metadata(self, media_id)) == NULL) {
		api->log(self, SB_LOG_WARN, "media %" PRId64 ": no such item",
		    media_id);
		rc = -2;
		goto out;
	}
	if ((src = wa_media->open(self, media_id, &size)) == -1) {
		api->log(self, SB_LOG_ERROR, "media %" PRId64 ": cannot open "
		    "its content", media_id);
		goto out;
	}
	mime_base(sb_jstr(m, "mime_type"), mime, sizeof(mime));
	filename_clean(sb_jstr(m, "filename"), name, sizeof(name));
	if (mime[0] == '\0' || RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	(void)snprintf(bnd, sizeof(bnd), "sbwa");
	for (i = 0; i < sizeof(rnd); i++)
		(void)snprintf(bnd + 4 + 2 * i, 3, "%02x", rnd[i]);
	hl = snprintf(head, sizeof(head), "--%s\r\nContent-Disposition: "
	    "form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
	    "--%s\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n"
	    "%s\r\n--%s\r\nContent-Disposition: form-data; name=\"file\"; "
	    "filename=\"%s\"\r\nContent-Type: %s\r\n\r\n", bnd, bnd, mime,
	    bnd, name, mime);
	tl = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", bnd);
	if (hl < 0 || (size_t)hl >= sizeof(head) || tl < 0 ||
	    (size_t)tl >= sizeof(tail))
		goto out;
	if ((tmp = spool_open()) == -1) {
		api->log(self, SB_LOG_ERROR, "%s: %s", wa_conf.spool_dir,
		    strerror(errno));
		goto out;
	}
	if (write_all(tmp, head, (size_t)hl) == -1 ||
	    copy_range(src, tmp, size) == -1 ||
	    write_all(tmp, tail, (size_t)tl) == -1) {
		api->log(self, SB_LOG_ERROR, "media %" PRId64 ": cannot "
		    "prepare the upload: %s", media_id, strerror(errno));
		goto out;
	}
	(void)snprintf(ctype, sizeof(ctype), "multipart/form-data; "
	    "boundary=%s", bnd);
	(void)snprintf(path, sizeof(path), "%s/media",
	    wa_conf.phone_number_id);
	if (wa_graph_url(url, sizeof(url), path) == -1 ||
	    wa_auth_header(auth, sizeof(auth)) == -1)
		goto out;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		goto out;
	u->media_id = media_id;
	(void)snprintf(u->phone, sizeof(u->phone), "%s",
	    wa_conf.phone_number_id);
	u->cb = cb;
	u->arg = arg;

	hdr[0].name = "Authorization";
	hdr[0].value = auth;
	hdr[1].name = "Content-Type";
	hdr[1].value = ctype;
	memset(&io, 0, sizeof(io));
	io.size = sizeof(io);
	io.body_fd = tmp;
	io.body_offset = 0;
	io.body_len = (uint64_t)hl + size + (uint64_t)tl;
	io.response_fd = -1;
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url;
	rq.headers = hdr;
	rq.nheaders = 2;
	rq.timeout_ms = TRANSFER_MS;
	rq.io = &io;
	if (api->http_send(self, &rq, upload_done, u) != SB_OK) {
		free(u);
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(auth, sizeof(auth));
	if (src != -1)
		(void)close(src);
	if (tmp != -1)
		(void)close(tmp);	/* http_send has its own copy */
	json_decref(m);
	return (rc);
}

static void
upload_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct upload	*u = arg;
	json_t		*j = NULL;
	const char	*gid;
	char		 err[512];

	if (res->status < 200 || res->status > 299) {
		graph_error(res, err, sizeof(err));
		api->log(self, SB_LOG_WARN, "media %" PRId64 ": upload: %s",
		    u->media_id, err);
		/* A refused token is the operator's to fix: try later. */
		u->cb(NULL, transient(res->status) || res->status == 401 ||
		    res->status == 403, err, u->arg);
		goto out;
	}
	j = json_loadb(res->body, res->body_len, 0, NULL);
	gid = sb_jstr(j, "id");
	if (!graph_id_ok(gid)) {
		u->cb(NULL, 1, "Graph's answer to the upload has no media id",
		    u->arg);
		goto out;
	}
	upload_remember(u, gid);
	u->cb(gid, 0, NULL, u->arg);
out:
	json_decref(j);
	free(u);
}

/* Graph keeps an upload for 30 days; a failure here costs one upload. */
static void
upload_remember(const struct upload *u, const char *gid)
{
	struct sb_db_res	*r;
	const char		*params[3];
	char			 ids[24];

	(void)snprintf(ids, sizeof(ids), "%" PRId64, u->media_id);
	params[0] = ids;
	params[1] = u->phone;
	params[2] = gid;
	r = api->db_query(self, "INSERT INTO whatsapp_media_uploads "
	    "(media_id, phone_number_id, graph_media_id, expires_at) VALUES "
	    "($1::bigint, $2, $3, now() + interval '30 days') ON CONFLICT "
	    "(media_id, phone_number_id) DO UPDATE SET graph_media_id = "
	    "excluded.graph_media_id, uploaded_at = now(), expires_at = "
	    "excluded.expires_at", 3, params);
	if (!api->db_ok(r))
		api->log(self, SB_LOG_ERROR, "media %s: cannot remember its "
		    "Graph id", ids);
	api->db_free(r);
}

/* ---- in: the fetch job ---- */

int
wa_media_fetch_enqueue(int64_t message_id)
{
	struct sb_job_opts	 opts;
	json_t			*pl;
	char			 key[64];
	int64_t			 id;

	(void)snprintf(key, sizeof(key), "whatsapp.media:%" PRId64,
	    message_id);
	memset(&opts, 0, sizeof(opts));
	opts.idempotency_key = key;
	if ((pl = json_pack("{s:I}", "message_id", (json_int_t)message_id)) ==
	    NULL)
		return (-1);
	id = api->job_enqueue(self, FETCH_KIND, pl, &opts);
	json_decref(pl);
	return (id == -1 ? -1 : 0);
}

static void
fetch_free(struct fetch *f)
{
	if (f->fd != -1)
		(void)close(f->fd);
	free(f->filename);
	free(f);
}

static void
fetch_retry(struct fetch *f, const char *err, unsigned int after)
{
	api->log(self, SB_LOG_WARN, "message %s: media: %s", f->ids, err);
	api->job_retry(f->job, err, after);
	fetch_free(f);
}

/* The message as it is now, to its conversation's room. */
static void
fetch_publish(struct fetch *f)
{
	json_t	*m, *pubs;
	int	 dberr = 0;

	if ((m = wa_msg_load(f->id, &dberr)) == NULL)
		return;
	if ((pubs = json_array()) != NULL) {
		wa_msg_publish(pubs, "whatsapp.message.status", m);
		wa_publish_all(pubs);
		json_decref(pubs);
	}
	json_decref(m);
}

/* For good: the message stays without media and says why. */
static void
fetch_note(struct fetch *f, const char *why)
{
	struct sb_db_res	*r;
	const char		*params[2];

	api->log(self, SB_LOG_WARN, "message %s: media not stored: %s",
	    f->ids, why);
	params[0] = f->ids;
	params[1] = why;
	r = api->db_query(self, "UPDATE whatsapp_messages SET payload = "
	    "coalesce(payload, '{}'::jsonb) || jsonb_build_object("
	    "'media_error', $2::text), updated_at = now() WHERE id = "
	    "$1::bigint", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(f->job, "database error", 0);
		fetch_free(f);
		return;
	}
	api->db_free(r);
	fetch_publish(f);
	api->job_done(f->job, json_pack("{s:s}", "media_error", why));
	fetch_free(f);
}

static void
fetch_run(struct sb_job *job)
{
	struct sb_http_request	 rq;
	struct sb_http_header	 hdr[1];
	struct sb_db_res	*r;
	struct fetch		*f;
	const char		*params[1], *v;
	json_int_t		 id = sb_jint(api->job_payload(job),
				    "message_id");
	char			 url[512], auth[1024];

	if (id <= 0) {
		api->job_fail(job, "no message_id");
		return;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		api->job_retry(job, "out of memory", 0);
		return;
	}
	f->job = job;
	f->id = id;
	f->fd = -1;
	(void)snprintf(f->ids, sizeof(f->ids), "%lld", (long long)id);
	params[0] = f->ids;
	r = api->db_query(self, "SELECT type, customer_id, graph_media_id, "
	    "media_id IS NOT NULL, payload->'media'->>'filename', "
	    "payload->'media'->>'mime_type' FROM whatsapp_messages WHERE "
	    "id = $1::bigint", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		fetch_retry(f, "database error", 0);
		return;
	}
	if (api->db_rows(r) != 1 || api->db_isnull(r, 0, 2) ||
	    strcmp(api->db_value(r, 0, 3), "t") == 0) {
		/* Erased, or the media is already there. */
		api->db_free(r);
		api->job_done(job, json_pack("{s:s}", "result", "nothing to "
		    "do"));
		fetch_free(f);
		return;
	}
	(void)snprintf(f->type, sizeof(f->type), "%s", api->db_value(r, 0, 0));
	(void)snprintf(f->customer, sizeof(f->customer), "%s",
	    api->db_value(r, 0, 1));
	v = api->db_value(r, 0, 2);
	if (graph_id_ok(v))
		(void)snprintf(f->graph_id, sizeof(f->graph_id), "%s", v);
	if (!api->db_isnull(r, 0, 4) && *api->db_value(r, 0, 4) != '\0')
		f->filename = strdup(api->db_value(r, 0, 4));
	mime_base(api->db_value(r, 0, 5), f->mime, sizeof(f->mime));
	api->db_free(r);

	if (f->graph_id[0] == '\0') {
		fetch_note(f, "WhatsApp's media id is malformed");
		return;
	}
	if (kind_find(f->type) == NULL) {
		fetch_note(f, "this message type carries no media");
		return;
	}
	if (!wa_send_ready()) {
		fetch_retry(f, "WhatsApp is not configured", 60);
		return;
	}
	if (wa_graph_url(url, sizeof(url), f->graph_id) == -1 ||
	    wa_auth_header(auth, sizeof(auth)) == -1) {
		explicit_bzero(auth, sizeof(auth));
		fetch_note(f, "Graph's URL of the media does not fit");
		return;
	}
	hdr[0].name = "Authorization";
	hdr[0].value = auth;
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	rq.headers = hdr;
	rq.nheaders = 1;
	rq.timeout_ms = wa_conf.timeout_ms;
	if (api->http_send(self, &rq, fetch_meta_done, f) != SB_OK)
		fetch_retry(f, "cannot ask Graph for the media", 0);
	explicit_bzero(auth, sizeof(auth));
}

/* Graph's {url, mime_type, sha256, file_size}: download the url. */
static void
fetch_meta_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct fetch		*f = arg;
	struct sb_http_request	 rq;
	struct sb_http_io	 io;
	struct sb_http_header	 hdr[1];
	json_t			*j = NULL, *fs;
	const char		*url, *sha;
	char			 err[512], auth[1024], mime[128];
	size_t			 i;

	auth[0] = '\0';
	if (transient(res->status) || res->status == 401 ||
	    res->status == 403) {
		graph_error(res, err, sizeof(err));
		fetch_retry(f, err, res->retry_after);
		goto out;
	}
	if (res->status < 200 || res->status > 299) {
		/* 404, or Graph's 400 for an id it no longer has. */
		graph_error(res, err, sizeof(err));
		api->log(self, SB_LOG_INFO, "message %s: media: %s", f->ids,
		    err);
		fetch_note(f, "the media is no longer on WhatsApp");
		goto out;
	}
	j = json_loadb(res->body, res->body_len, 0, NULL);
	url = sb_jstr(j, "url");
	if (url == NULL || (strncmp(url, "https://", 8) != 0 &&
	    strncmp(url, "http://", 7) != 0)) {
		fetch_retry(f, "Graph's answer has no http(s) url", 0);
		goto out;
	}
	fs = json_object_get(j, "file_size");
	if (json_is_integer(fs) && json_integer_value(fs) > 0)
		f->size = (uint64_t)json_integer_value(fs);
	else if (json_is_string(fs))
		f->size = strtoull(json_string_value(fs), NULL, 10);
	if (f->size > MEDIA_MAX) {
		fetch_note(f, "the file is larger than WhatsApp's 100 MB");
		goto out;
	}
	sha = sb_jstr(j, "sha256");
	if (sha != NULL && strlen(sha) == 64 &&
	    strspn(sha, "0123456789abcdefABCDEF") == 64) {
		for (i = 0; i < 64; i++)
			f->sha[i] = (sha[i] >= 'A' && sha[i] <= 'F') ?
			    sha[i] + 32 : sha[i];
		f->sha[64] = '\0';
	}
	mime_base(sb_jstr(j, "mime_type"), mime, sizeof(mime));
	if (mime[0] != '\0')
		(void)snprintf(f->mime, sizeof(f->mime), "%s", mime);
	if ((f->fd = spool_open()) == -1) {
		(void)snprintf(err, sizeof(err), "%s: %s", wa_conf.spool_dir,
		    strerror(errno));
		fetch_retry(f, err, 0);
		goto out;
	}
	/* Meta's media URL wants the same Bearer token as Graph. */
	if (wa_auth_header(auth, sizeof(auth)) == -1) {
		fetch_retry(f, "no access token", 60);
		goto out;
	}
	hdr[0].name = "Authorization";
	hdr[0].value = auth;
	memset(&io, 0, sizeof(io));
	io.size = sizeof(io);
	io.body_fd = -1;
	io.response_fd = f->fd;
	io.response_max = MEDIA_MAX;
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	rq.headers = hdr;
	rq.nheaders = 1;
	rq.timeout_ms = TRANSFER_MS;
	rq.io = &io;
	if (api->http_send(self, &rq, fetch_body_done, f) != SB_OK)
		fetch_retry(f, "cannot download the media", 0);
out:
	explicit_bzero(auth, sizeof(auth));
	json_decref(j);
}

static void
fetch_body_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct fetch	*f = arg;
	uint64_t	 size;
	char		 err[512], sha[65];

	if (res->status == 0 && res->error != NULL &&
	    strcmp(res->error, "response too large") == 0) {
		fetch_note(f, "the file is larger than WhatsApp's 100 MB");
		return;
	}
	if (res->status == 404 || res->status == 410) {
		fetch_note(f, "the media is no longer on WhatsApp");
		return;
	}
	if (res->status < 200 || res->status > 299) {
		/* The URL may have expired: the next run asks for a new one. */
		graph_error(res, err, sizeof(err));
		fetch_retry(f, err, res->retry_after);
		return;
	}
	if (sha256_fd(f->fd, &size, sha) == -1) {
		fetch_retry(f, "cannot read the download", 0);
		return;
	}
	if ((f->size > 0 && size != f->size) ||
	    (f->sha[0] != '\0' && strcmp(sha, f->sha) != 0)) {
		if (api->job_attempt(f->job) < 3)
			fetch_retry(f, "the download does not match WhatsApp's "
			    "size or SHA-256", 0);
		else
			fetch_note(f, "the download did not match WhatsApp's "
			    "checksum");
		return;
	}
	f->size = size;
	fetch_store(f);
}

/* Into the media plugin and onto the message, in one transaction. */
static void
fetch_store(struct fetch *f)
{
	struct sb_media_input	 in;
	struct sb_db_res	*r;
	const char		*params[2];
	char			 name[96], err[256], mids[24];
	int64_t			 mid;
	int			 status = 0;

	if (f->filename == NULL) {
		(void)snprintf(name, sizeof(name), "whatsapp-%s.%s", f->ids,
		    ext_of(f->mime));
	}
	memset(&in, 0, sizeof(in));
	in.size = sizeof(in);
	in.data = NULL;
	in.fd = f->fd;
	in.offset = 0;
	in.len = f->size;
	in.filename = f->filename != NULL ? f->filename : name;
	in.declared_type = f->mime[0] != '\0' ? f->mime : NULL;
	in.purpose = f->type;
	in.uploaded_by = 0;
	in.customer_id = strtoll(f->customer, NULL, 10);
	err[0] = '\0';

	if (api->db_begin(self) != SB_OK) {
		fetch_retry(f, "database error", 0);
		return;
	}
	mid = wa_media->put(self, &in, &status, err, sizeof(err));
	if (mid == -1 && status == 415 && strcmp(f->type, "document") == 0) {
		/* A customer's document may be any file: kept by its own
		 * type when the media plugin takes that. */
		api->db_rollback(self);
		if (api->db_begin(self) != SB_OK) {
			fetch_retry(f, "database error", 0);
			return;
		}
		in.purpose = NULL;
		in.declared_type = NULL;
		mid = wa_media->put(self, &in, &status, err, sizeof(err));
	}
	if (mid == -1) {
		api->db_rollback(self);
		if (status == 413 || status == 415 || status == 422)
			fetch_note(f, err[0] != '\0' ? err : "the media store "
			    "refused the file");
		else
			fetch_retry(f, err[0] != '\0' ? err : "the media store "
			    "failed", status == 503 ? 60 : 0);
		return;
	}
	(void)snprintf(mids, sizeof(mids), "%" PRId64, mid);
	params[0] = f->ids;
	params[1] = mids;
	r = api->db_query(self, "UPDATE whatsapp_messages SET media_id = "
	    "$2::bigint, graph_media_id = NULL, updated_at = now() WHERE "
	    "id = $1::bigint AND media_id IS NULL", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->db_rollback(self);
		fetch_retry(f, "database error", 0);
		return;
	}
	api->db_free(r);
	if (api->db_commit(self) != SB_OK) {
		fetch_retry(f, "database error", 0);
		return;
	}
	fetch_publish(f);
	api->job_done(f->job, json_pack("{s:I}", "media_id", (json_int_t)mid));
	fetch_free(f);
}

/* ---- setup ---- */

int
wa_media_setup(struct sb_plugin *p)
{
	static const long	nrs[] = { SYS_openat, SYS_unlinkat,
	    SYS_fstat, SYS_newfstatat, SYS_lseek, SYS_read, SYS_write,
	    SYS_pread64, SYS_pwrite64, SYS_fcntl, SYS_getrandom };

	if (api->job_kind_add(p, &fetch_kind) != SB_OK)
		return (SB_ERROR);
	/* Created when missing, owned by the worker user (the host's). */
	if ((spool_fd = api->dir_open(p, wa_conf.spool_dir)) == -1) {
		api->log(p, SB_LOG_ERROR, "%s: cannot prepare it (see the "
		    "host's log line)", wa_conf.spool_dir);
		return (SB_ERROR);
	}
	return (api->seccomp_allow(p, nrs, sizeof(nrs) / sizeof(nrs[0])));
}
