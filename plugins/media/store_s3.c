/*
 * The S3-compatible backend of the media store (store.h).
 *
 * The local directory of the dir backend (key `dir`, same layout) is the
 * spool and the read cache: uploads never wait on the network.
 * put_commit publishes the object locally exactly like the dir backend
 * and, in the caller's transaction (the hash's advisory lock held),
 * records it in media_objects and enqueues a durable job that PUTs the
 * file to the bucket from its descriptor, signed with AWS SigV4 by the
 * host's http_send, then marks the row remote.  remove() drops the local
 * file and the row, and enqueues a job that DELETEs the remote key.
 *
 * Remote keys are <sha[0:2]>/<sha>.<gen>: gen (16 random hex digits) is
 * made when an object is first stored after no row named its hash, so a
 * delayed DELETE of an earlier generation can never remove a later
 * upload of the same bytes.  A PUT that lands after its row was deleted
 * (the delete ran first) sees no row to mark and enqueues the DELETE
 * itself.
 *
 * Reads: open() is the local cache only (-1 for an object not cached
 * here); fetch() GETs a remote object into a temporary file of the
 * spool, checks its SHA-256 and renames it into the cache.
 *
 * Not configured (storage = s3 with a key missing): setup succeeds, the
 * plugin's health says "s3: not configured" and the routes that need the
 * store answer 503 UNAVAILABLE (API.md "Common rules").
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "media.h"
#include "store.h"

#define api			media_api

#define PUT_KIND		"media.s3_put"
#define DELETE_KIND		"media.s3_delete"
#define EMPTY_SHA256							\
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define URL_MAX			2048
#define HASH_CHUNK		(64 * 1024)
#define RETRY_CAP_S		300

static struct sb_plugin		*splug;
static int			 configured;
static char			 s3_base[URL_MAX];	/* endpoint/bucket */
static char			 s3_sigv4[128];
static char			 s3_access[256];
static char			 s3_secret[256];

static void	put_run(struct sb_job *);
static void	delete_run(struct sb_job *);

/* Many attempts: an outage of hours is survived (retries every 5 minutes
 * at most, retry_delay()), and an attempt claimed by a node without the
 * spooled file counts too. */
static const struct sb_job_kind put_kind = {
	.name = PUT_KIND, .run = put_run,
	.max_attempts = 100, .timeout_s = 900, .backoff_s = 2
};

static const struct sb_job_kind delete_kind = {
	.name = DELETE_KIND, .run = delete_run,
	.max_attempts = 20, .timeout_s = 60, .backoff_s = 2
};

/* A request on the way: the job or the fetch it finishes. */
struct s3_call {
	struct sb_job	*job;
	char		 sha[65];
	char		 gen[17];
	struct media_put put;		/* fetch: the temporary file */
	void		(*done)(void *, int);
	void		*arg;
};

static const char *
key_get(struct sb_plugin *p, const struct sb_host_api *a, const char *k)
{
	const char	*v;

	v = a->config_get(p, k);
	return (v != NULL && *v != '\0' ? v : NULL);
}

static int
s3_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	const char	*ep, *bucket, *region, *ak, *sk;
	size_t		 n;

	splug = p;
	if (media_store_dir.setup(p, a) != SB_OK)
		return (SB_ERROR);
	if (a->job_kind_add(p, &put_kind) != SB_OK ||
	    a->job_kind_add(p, &delete_kind) != SB_OK)
		return (SB_ERROR);
	ep = key_get(p, a, "s3_endpoint");
	bucket = key_get(p, a, "s3_bucket");
	region = key_get(p, a, "s3_region");
	ak = key_get(p, a, "s3_access_key");
	sk = key_get(p, a, "s3_secret_key");
	if (ep == NULL || bucket == NULL || region == NULL || ak == NULL ||
	    sk == NULL) {
		a->log(p, SB_LOG_WARN, "storage s3 is not configured (set "
		    "s3_endpoint, s3_bucket, s3_region, s3_access_key and "
		    "s3_secret_key): media routes answer 503");
		return (SB_OK);
	}
	if ((strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) !=
	    0) || strpbrk(bucket, "/?#% ") != NULL ||
	    strpbrk(region, ":/ ") != NULL) {
		a->log(p, SB_LOG_ERROR, "s3_endpoint must be an http:// or "
		    "https:// URL, s3_bucket and s3_region plain names");
		return (SB_ERROR);
	}
	n = strlen(ep);
	while (n > 0 && ep[n - 1] == '/')
		n--;
	/* Path-style addressing: every S3-compatible server takes it. */
	if ((size_t)snprintf(s3_base, sizeof(s3_base), "%.*s/%s", (int)n, ep,
	    bucket) >= sizeof(s3_base) ||
	    (size_t)snprintf(s3_sigv4, sizeof(s3_sigv4), "aws:amz:%s:s3",
	    region) >= sizeof(s3_sigv4) ||
	    (size_t)snprintf(s3_access, sizeof(s3_access), "%s", ak) >=
	    sizeof(s3_access) ||
	    (size_t)snprintf(s3_secret, sizeof(s3_secret), "%s", sk) >=
	    sizeof(s3_secret)) {
		a->log(p, SB_LOG_ERROR, "an s3_ key is too long");
		return (SB_ERROR);
	}
	configured = 1;
	return (SB_OK);
}

static int
s3_check(void)
{
	return (media_store_dir.check());
}

static int
s3_ready(json_t *detail)
{
	json_object_set_new(detail, "s3", json_string(configured ?
	    "configured" : "not configured"));
	return (configured ? SB_OK : SB_ERROR);
}

static int
gen_make(char gen[17])
{
	unsigned char	r[8];
	int		i;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return (-1);
	for (i = 0; i < 8; i++) {
		gen[i * 2] = "0123456789abcdef"[r[i] >> 4];
		gen[i * 2 + 1] = "0123456789abcdef"[r[i] & 0x0f];
	}
	gen[16] = '\0';
	return (0);
}

static int
job_add(const char *kind, const char *sha, const char *gen,
    const char *why)
{
	struct sb_job_opts	 opts;
	char			 key[128];
	json_t			*payload;
	int64_t			 id;

	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "%s:%s.%s%s", kind, sha, gen, why);
	opts.idempotency_key = key;
	payload = json_pack("{s:s, s:s}", "sha256", sha, "gen", gen);
	id = api->job_enqueue(splug, kind, payload, &opts);
	json_decref(payload);
	return (id == -1 ? SB_ERROR : SB_OK);
}

/*
 * Published locally; its row and, while it is not remote yet, the job
 * that pushes it (the same job again for a known generation).
 */
static int
s3_put_commit(struct media_put *put, const char *sha)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 gen[17];
	int			 remote;

	if (!configured) {
		media_store_dir.put_abort(put);
		return (SB_ERROR);
	}
	if (media_store_dir.put_commit(put, sha) != SB_OK)
		return (SB_ERROR);
	if (gen_make(gen) == -1)
		return (SB_ERROR);
	params[0] = sha;
	params[1] = gen;
	r = api->db_query(splug, "INSERT INTO media_objects (sha256, gen) "
	    "VALUES ($1, $2) ON CONFLICT (sha256) DO UPDATE SET sha256 = "
	    "EXCLUDED.sha256 RETURNING gen, remote", 2, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (SB_ERROR);
	}
	(void)snprintf(gen, sizeof(gen), "%s", api->db_value(r, 0, 0));
	remote = strcmp(api->db_value(r, 0, 1), "t") == 0;
	api->db_free(r);
	return (remote ? SB_OK : job_add(PUT_KIND, sha, gen, ""));
}

/*
 * The last row naming sha went (lock held, in its transaction): the
 * local copy, the object's row, and a job for the remote key.
 */
static int
s3_remove(const char *sha)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 gen[17];
	int			 rows;

	if (media_store_dir.remove(sha) != SB_OK)
		return (SB_ERROR);
	params[0] = sha;
	r = api->db_query(splug, "DELETE FROM media_objects WHERE sha256 = "
	    "$1 RETURNING gen", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (SB_ERROR);
	}
	rows = api->db_rows(r);
	if (rows == 1)
		(void)snprintf(gen, sizeof(gen), "%s", api->db_value(r, 0, 0));
	api->db_free(r);
	/* No row: stored before this backend was chosen; nothing remote. */
	return (rows == 1 ? job_add(DELETE_KIND, sha, gen, "") : SB_OK);
}

static void
object_url(char *out, size_t len, const char *sha, const char *gen)
{
	(void)snprintf(out, len, "%s/%.2s/%s.%s", s3_base, sha, sha, gen);
}

/* Send one signed request; body_fd/response_fd -1 when unused. */
static int
s3_send(const char *method, const char *sha, const char *gen,
    const char *payload_sha, int body_fd, uint64_t body_len,
    int response_fd, uint64_t response_max, unsigned int timeout_ms,
    sb_http_cb cb, struct s3_call *call)
{
	struct sb_http_request	 req;
	struct sb_http_io	 io;
	struct sb_http_header	 hdrs[2];
	char			 url[URL_MAX + 128];
	size_t			 nh;

	object_url(url, sizeof(url), sha, gen);
	nh = 0;
	hdrs[nh].name = "x-amz-content-sha256";
	hdrs[nh++].value = payload_sha;
	if (body_fd != -1) {
		hdrs[nh].name = "Content-Type";
		hdrs[nh++].value = "application/octet-stream";
	}
	memset(&io, 0, sizeof(io));
	io.size = sizeof(io);
	io.aws_sigv4 = s3_sigv4;
	io.username = s3_access;
	io.password = s3_secret;
	io.body_fd = body_fd;
	io.body_len = body_len;
	io.response_fd = response_fd;
	io.response_max = response_max;
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.headers = hdrs;
	req.nheaders = nh;
	req.timeout_ms = timeout_ms;
	req.io = &io;
	return (api->http_send(splug, &req, cb, call));
}

/*
 * When to try again: S3's Retry-After, else 2, 4, 8 ... seconds capped at
 * RETRY_CAP_S.  Our own schedule, not the host's uncapped doubling per
 * attempt: attempts that another node's worker spent without the spooled
 * file (put_run) would otherwise push a push back by hours.
 */
static unsigned int
retry_delay(struct sb_job *job, const struct sb_http_response *resp)
{
	int	a;

	if (resp->retry_after > 0)
		return (resp->retry_after);
	a = api->job_attempt(job);
	if (a < 1)
		a = 1;
	return (a > 8 ? RETRY_CAP_S : (2U << (a - 1)) > RETRY_CAP_S ?
	    RETRY_CAP_S : 2U << (a - 1));
}

/* Upstream trouble worth another try, or a refusal that will last. */
static void
job_finish_error(struct sb_job *job, const struct sb_http_response *resp,
    const char *what)
{
	char	err[300];

	if (resp->status == 0) {
		(void)snprintf(err, sizeof(err), "%s: %s", what, resp->error);
		api->job_retry(job, err, retry_delay(job, resp));
		return;
	}
	(void)snprintf(err, sizeof(err), "%s: HTTP %d: %.200s", what,
	    resp->status, (const char *)resp->body);
	/* 5xx, throttling, and a bucket that is not there yet: again. */
	if (resp->status >= 500 || resp->status == 429 ||
	    resp->status == 404)
		api->job_retry(job, err, retry_delay(job, resp));
	else
		api->job_fail(job, err);
}

static void
put_done(struct sb_plugin *p, const struct sb_http_response *resp,
    void *arg)
{
	struct s3_call		*call = arg;
	struct sb_db_res	*r;
	const char		*params[2];
	int			 rows;

	(void)p;
	if (resp->status != 200) {
		job_finish_error(call->job, resp, "PUT");
		free(call);
		return;
	}
	params[0] = call->sha;
	params[1] = call->gen;
	r = api->db_query(splug, "UPDATE media_objects SET remote = true "
	    "WHERE sha256 = $1 AND gen = $2 RETURNING 1", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(call->job, "cannot mark the object remote", 0);
		free(call);
		return;
	}
	rows = api->db_rows(r);
	api->db_free(r);
	/* Deleted while we were sending: its DELETE may have run first. */
	if (rows == 0 && job_add(DELETE_KIND, call->sha, call->gen,
	    ":after-put") != SB_OK) {
		api->job_retry(call->job, "cannot enqueue the delete", 0);
		free(call);
		return;
	}
	api->job_done(call->job, NULL);
	free(call);
}

/* Payload {sha256, gen}; gen names the generation to push. */
static int
payload_get(struct sb_job *job, struct s3_call *call)
{
	json_t		*pl;
	const char	*sha, *gen;

	pl = api->job_payload(job);
	sha = json_string_value(json_object_get(pl, "sha256"));
	gen = json_string_value(json_object_get(pl, "gen"));
	if (sha == NULL || gen == NULL || strlen(sha) != 64 ||
	    strlen(gen) != 16)
		return (-1);
	(void)snprintf(call->sha, sizeof(call->sha), "%s", sha);
	(void)snprintf(call->gen, sizeof(call->gen), "%s", gen);
	call->job = job;
	return (0);
}

/* A push or delete job's call; NULL when the job was answered here. */
static struct s3_call *
call_start(struct sb_job *job)
{
	struct s3_call	*call;

	if (!configured) {
		api->job_retry(job, "storage s3 is not configured", 60);
		return (NULL);
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		api->job_retry(job, "out of memory", 0);
		return (NULL);
	}
	if (payload_get(job, call) == -1) {
		free(call);
		api->job_fail(job, "bad payload");
		return (NULL);
	}
	return (call);
}

static void
put_run(struct sb_job *job)
{
	struct s3_call		*call;
	struct sb_db_res	*r;
	const char		*params[2];
	uint64_t		 size;
	int			 fd, rows;

	if ((call = call_start(job)) == NULL)
		return;
	params[0] = call->sha;
	params[1] = call->gen;
	r = api->db_query(splug, "SELECT remote FROM media_objects WHERE "
	    "sha256 = $1 AND gen = $2", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		free(call);
		api->job_retry(job, "database", 0);
		return;
	}
	rows = api->db_rows(r);
	if (rows == 0 || strcmp(api->db_value(r, 0, 0), "t") == 0) {
		/* Deleted since, or pushed already. */
		api->db_free(r);
		free(call);
		api->job_done(job, NULL);
		return;
	}
	api->db_free(r);
	if ((fd = media_store_dir.open(call->sha, &size)) == -1) {
		free(call);
		/* Spooled on another node: soon again, so that node's
		 * worker takes it (see the README, "S3"). */
		api->job_retry(job, "the object is not in this node's spool",
		    1);
		return;
	}
	/* A generous budget: 1 MB/s and a minute more. */
	if (s3_send("PUT", call->sha, call->gen, call->sha, fd, size, -1, 0,
	    (unsigned int)(60000 + size / 1000), put_done, call) != SB_OK) {
		(void)close(fd);
		free(call);
		api->job_fail(job, "cannot build the PUT request");
		return;
	}
	/* http_send has its own copy of the descriptor. */
	(void)close(fd);
}

static void
delete_done(struct sb_plugin *p, const struct sb_http_response *resp,
    void *arg)
{
	struct s3_call	*call = arg;

	(void)p;
	/* 404: gone already, which is what we wanted. */
	if (resp->status == 200 || resp->status == 204 || resp->status == 404)
		api->job_done(call->job, NULL);
	else
		job_finish_error(call->job, resp, "DELETE");
	free(call);
}

static void
delete_run(struct sb_job *job)
{
	struct s3_call	*call;

	if ((call = call_start(job)) == NULL)
		return;
	if (s3_send("DELETE", call->sha, call->gen, EMPTY_SHA256, -1, 0, -1,
	    0, 30000, delete_done, call) != SB_OK) {
		free(call);
		api->job_fail(job, "cannot build the DELETE request");
	}
}

/* 0 when the file at fd hashes to sha. */
static int
hash_check(int fd, const char *sha)
{
	EVP_MD_CTX	*ctx;
	unsigned char	 md[EVP_MAX_MD_SIZE], *buf;
	unsigned int	 mdlen, i;
	char		 hex[65];
	off_t		 off;
	ssize_t		 n;
	int		 rc = -1;

	buf = NULL;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    (buf = malloc(HASH_CHUNK)) == NULL)
		goto out;
	for (off = 0;; off += n) {
		if ((n = pread(fd, buf, HASH_CHUNK, off)) == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	for (i = 0; i < mdlen; i++) {
		hex[i * 2] = "0123456789abcdef"[md[i] >> 4];
		hex[i * 2 + 1] = "0123456789abcdef"[md[i] & 0x0f];
	}
	hex[64] = '\0';
	rc = strcmp(hex, sha) == 0 ? 0 : -1;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return (rc);
}

static void
fetch_done(struct sb_plugin *p, const struct sb_http_response *resp,
    void *arg)
{
	struct s3_call	*call = arg;
	int		 status;

	(void)p;
	status = 0;
	if (resp->status != 200) {
		api->log(splug, SB_LOG_WARN, "GET %.2s/%s.%s: %s %d", call->sha,
		    call->sha, call->gen, resp->error != NULL ? resp->error :
		    "HTTP", resp->status);
		status = 502;
	} else if (hash_check(call->put.fd, call->sha) == -1) {
		api->log(splug, SB_LOG_ERROR, "GET %.2s/%s.%s: the bytes do "
		    "not match their hash", call->sha, call->sha, call->gen);
		status = 502;
	} else if (media_store_dir.put_commit(&call->put, call->sha) !=
	    SB_OK)
		status = 500;
	if (status != 0)
		media_store_dir.put_abort(&call->put);
	call->done(call->arg, status);
	free(call);
}

/*
 * The object is not cached here: fetch it when it is remote.  0 when
 * the GET is on its way (done runs later), else the status to answer.
 */
static int
s3_fetch(const char *sha, void (*done)(void *, int), void *arg)
{
	struct s3_call		*call;
	struct sb_db_res	*r;
	const char		*params[1];
	int			 remote;

	if (!configured)
		return (503);
	params[0] = sha;
	r = api->db_query(splug, "SELECT gen, remote FROM media_objects "
	    "WHERE sha256 = $1", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (503);
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		return (500);
	}
	remote = strcmp(api->db_value(r, 0, 1), "t") == 0;
	if (!remote || (call = calloc(1, sizeof(*call))) == NULL) {
		api->db_free(r);
		/* Not pushed yet from the node that has it. */
		return (503);
	}
	(void)snprintf(call->sha, sizeof(call->sha), "%s", sha);
	(void)snprintf(call->gen, sizeof(call->gen), "%s",
	    api->db_value(r, 0, 0));
	api->db_free(r);
	call->done = done;
	call->arg = arg;
	if (media_store_dir.put_begin(&call->put) != SB_OK) {
		free(call);
		return (500);
	}
	if (s3_send("GET", sha, call->gen, EMPTY_SHA256, -1, 0, call->put.fd,
	    0, 600000, fetch_done, call) != SB_OK) {
		media_store_dir.put_abort(&call->put);
		free(call);
		return (500);
	}
	return (0);
}

/* The spool is the dir backend's temporary files. */
static int
s3_put_begin(struct media_put *put)
{
	return (media_store_dir.put_begin(put));
}

static void
s3_put_abort(struct media_put *put)
{
	media_store_dir.put_abort(put);
}

/* The local cache only: -1 for an object not cached here (fetch it). */
static int
s3_open(const char *sha, uint64_t *size)
{
	return (media_store_dir.open(sha, size));
}

/* The local spool and cache are the directory backend's. */
static int
s3_sweep(time_t before, int (*cb)(const char *, void *), void *arg,
    unsigned int *tmp_removed)
{
	return (media_store_dir.sweep(before, cb, arg, tmp_removed));
}

const struct media_store media_store_s3 = {
	.name = "s3",
	.setup = s3_setup,
	.check = s3_check,
	.put_begin = s3_put_begin,
	.put_commit = s3_put_commit,
	.put_abort = s3_put_abort,
	.open = s3_open,
	.remove = s3_remove,
	.fetch = s3_fetch,
	.ready = s3_ready,
	.sweep = s3_sweep,
};
