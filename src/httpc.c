/*
 * Outbound HTTP: asynchronous calls on Kore's curl integration, with a
 * circuit breaker per upstream shared by every worker of the node.
 *
 * sb_http_send() copies the request into a struct call, checks the
 * upstream's breaker and hands the transfer to Kore's curl multi handle
 * (KORE_CURL_ASYNC).  Kore drives it from the worker's event loop and
 * calls call_done() when it ends; the plugin's callback runs from there,
 * exactly once.  A call that fails before it starts (circuit open, no
 * curl handle) is finished by a zero-delay Kore timer instead, so the
 * callback never runs inside sb_http_send(): a caller can rely on its own
 * state being set up after the send returns.
 *
 * The breakers live in an anonymous shared mapping the parent creates
 * before the fork (like the rate limits in ratelimit.c): one 64-bit word
 * per upstream holds state, consecutive failures and a time, and every
 * transition is a compare-and-swap on it, so no lock exists that a
 * killed worker could leave held.  See "Breaker" below.
 *
 * Inside the sandbox the workers are chrooted: sb_httpc_parent_init()
 * copies the CA bundle and the resolver's files (hosts, resolv.conf,
 * nsswitch.conf) into the root before the fork, and TLS peers are always
 * verified against that bundle.
 *
 * A request's io (struct sb_http_io, ABI 1.3) adds AWS SigV4 signing
 * (libcurl's CURLOPT_AWS_SIGV4), a body read from a descriptor with pread
 * as curl asks for it, and a response body written to a descriptor: the
 * call keeps its own dups of both, closed in call_finish().
 */

#include <sys/mman.h>
#include <sys/stat.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/curl.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sb.h"
#include "conf.h"

#define CALL_MAGIC		0x53424843u	/* "SBHC" */

#define DEFAULT_TIMEOUT_MS	10000
#define DEFAULT_CONNECT_MS	3000
#define DEFAULT_MAX_RESPONSE	(4 * 1024 * 1024)
#define URL_MAX			8192
#define METHOD_MAX		16
#define HEADERS_MAX		64		/* request and response */
#define HEADER_BYTES_MAX	(64 * 1024)	/* response head */
#define RETRY_AFTER_MAX		(30 * 86400)
/* A half-open trial that has not reported this long after its own
 * timeout belonged to a worker that died: another trial may go. */
#define TRIAL_GRACE_MS		1000

#define IO_READ			1
#define IO_WRITE		2

#define CA_BUNDLE_DEFAULT	"/etc/ssl/certs/ca-certificates.crt"
/* Where the bundle is inside the chroot, whatever its source path. */
#define CA_BUNDLE_CHROOT	"/etc/ssl/certs/ca-certificates.crt"

/* ------------------------------------------------------------------------
 * Breaker
 *
 * closed --N consecutive failures--> open --cool-down--> half-open
 * half-open --trial succeeds--> closed;  --trial fails--> open again.
 *
 * The word: bits 0-1 state, bits 2-21 consecutive failures (saturating),
 * bits 22-63 a CLOCK_MONOTONIC time in ms (the same clock in every
 * process): when it opened (open) or the trial's deadline (half-open).
 * Only the trial's own result moves a half-open breaker; results of calls
 * admitted before it opened are ignored while it is open.  A trial whose
 * worker died is replaced once its deadline passes.
 */
#define BR_CLOSED		0
#define BR_OPEN			1
#define BR_HALF_OPEN		2

#define BR_FAIL_MAX		0xfffffULL
#define BR_STATE(w)		((int)((w) & 3))
#define BR_FAILS(w)		(((w) >> 2) & BR_FAIL_MAX)
#define BR_TIME(w)		((w) >> 22)
#define BR_WORD(s, f, t)	((uint64_t)(s) | \
				    ((uint64_t)((f) > BR_FAIL_MAX ? \
				    BR_FAIL_MAX : (f)) << 2) | \
				    ((uint64_t)(t) << 22))

#define BR_SLOTS		512
#define BR_PROBE		32
/* "https://" + a 253-byte host + ":" + port, and then some. */
#define BR_NAME_MAX		288

_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
    "64-bit atomics must be lock-free to be shared across processes");

struct breaker {
	uint64_t		 fp;		/* name hash; 0: free slot */
	uint64_t		 word;
	uint64_t		 opened_wall;	/* unix ms, for /readyz only */
	uint32_t		 named;		/* name[] is written */
	char			 name[BR_NAME_MAX];
};

enum outcome {
	OUTCOME_OK = 0,
	OUTCOME_FAIL
};

enum admit {
	ADMIT_CLOSED = 0,
	ADMIT_TRIAL,
	ADMIT_REFUSED
};

/* Set in the parent before the fork; the workers inherit them. */
static struct {
	struct breaker		*slots;
	unsigned int		 failures;	/* to open */
	uint64_t		 cooldown_ms;
	char			 cainfo[PATH_MAX];
} hc;

struct call {
	struct sb_http_response	 resp;		/* what the callback sees */
	uint32_t		 magic;
	struct kore_curl	 curl;
	int			 curl_ready;	/* kore_curl_init succeeded */
	struct sb_plugin	*plugin;
	sb_http_cb		 cb;
	void			*arg;
	struct breaker		*br;
	int			 trial;
	int			 too_large;
	size_t			 max;
	int			 body_fd;	/* io: our dup, or -1 */
	uint64_t		 body_off;
	uint64_t		 body_left;
	int			 resp_fd;	/* io: our dup, or -1 */
	uint64_t		 resp_max;	/* 0: no limit */
	uint64_t		 resp_done;
	int			 io_error;	/* IO_READ, IO_WRITE: they failed */
	uint64_t		 started;	/* kore_time_ms() */
	size_t			 nhdrs;
	const char		*hname[HEADERS_MAX];
	const char		*hvalue[HEADERS_MAX];
	char			 error[CURL_ERROR_SIZE + 32];
};

static int	 breakers_create(void);
static uint64_t	 mono_ms(void);
static uint64_t	 name_hash(const char *);
static struct breaker *breaker_get(const char *);
static enum admit breaker_admit(struct breaker *, unsigned int);
static void	 breaker_record(struct breaker *, int, enum outcome);
static const char *state_name(int);
static int	 upstream_name(const char *, const char *, char *, size_t);
static int	 token(const char *, size_t);
static int	 request_valid(const struct sb_http_request *);
static int	 call_setup(struct call *, const struct sb_http_request *);
static size_t	 body_write(char *, size_t, size_t, void *);
static size_t	 body_read(char *, size_t, size_t, void *);
static int	 io_setup(struct call *, const struct sb_http_io *);
static size_t	 header_write(char *, size_t, size_t, void *);
static void	 headers_parse(struct call *);
static unsigned int retry_after_parse(const char *);
static void	 call_done(struct kore_curl *, void *);
static void	 call_fail_later(struct call *, const char *);
static void	 call_timer(void *, u_int64_t);
static void	 call_finish(struct call *);
static void	 curl_nudge(void *, u_int64_t);
static int	 sandbox_files(void);
static int	 copy_into_root(const char *, const char *, const char *,
		    int);
static int	 mkdir_p(char *);

/* ------------------------------------------------------------------------
 * Parent
 */

int
sb_httpc_parent_init(void)
{
	const char	*bundle;
	long long	 v;
	int		 ok;

	v = sb_conf_int(sb_config, "host", "breaker_failures", 5, &ok);
	if (!ok || v < 1 || v > 10000) {
		sb_log(SB_LOG_ERROR, "httpc", "[host] breaker_failures must be "
		    "a number between 1 and 10000");
		return (-1);
	}
	hc.failures = (unsigned int)v;
	v = sb_conf_int(sb_config, "host", "breaker_cooldown_ms", 30000, &ok);
	if (!ok || v < 100 || v > 86400000) {
		sb_log(SB_LOG_ERROR, "httpc", "[host] breaker_cooldown_ms must "
		    "be a number between 100 and 86400000");
		return (-1);
	}
	hc.cooldown_ms = (uint64_t)v;

	if (breakers_create() == -1) {
		sb_log(SB_LOG_ERROR, "httpc", "cannot map the breaker table: "
		    "%s", strerror(errno));
		return (-1);
	}

	bundle = sb_conf_get(sb_config, "host", "ca_bundle");
	if (bundle == NULL || *bundle == '\0')
		bundle = CA_BUNDLE_DEFAULT;
	if (skip_chroot == 0 && kore_root_path != NULL) {
		/* The workers see the root as "/". */
		if (copy_into_root(bundle, kore_root_path, CA_BUNDLE_CHROOT,
		    1) == -1)
			return (-1);
		(void)snprintf(hc.cainfo, sizeof(hc.cainfo), "%s",
		    CA_BUNDLE_CHROOT);
		if (sandbox_files() == -1)
			return (-1);
	} else if (realpath(bundle, hc.cainfo) == NULL) {
		/* Not fatal: HTTPS calls will fail verification, loudly. */
		sb_log(SB_LOG_WARN, "httpc", "CA bundle %s: %s: HTTPS calls "
		    "will fail", bundle, strerror(errno));
		(void)snprintf(hc.cainfo, sizeof(hc.cainfo), "%s", bundle);
	}
	return (0);
}

static int
breakers_create(void)
{
	void	*map;

	map = mmap(NULL, BR_SLOTS * sizeof(struct breaker),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return (-1);
	if (hc.slots != NULL)
		(void)munmap(hc.slots, BR_SLOTS * sizeof(struct breaker));
	hc.slots = map;
	return (0);
}

/*
 * What the resolver reads, so hostnames resolve inside the chroot.  A
 * missing source is only a warning: not every system has every file.
 */
static int
sandbox_files(void)
{
	static const char	*files[] = {
		"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", NULL
	};
	int			 i;

	for (i = 0; files[i] != NULL; i++) {
		if (copy_into_root(files[i], kore_root_path, files[i], 0) ==
		    -1)
			return (-1);
	}
	return (0);
}

/*
 * Copies src to root/dst (dst absolute), creating directories, as a
 * root-owned 0644 file the unprivileged workers can read and not change.
 * A missing src fails only when required.
 */
static int
copy_into_root(const char *src, const char *root, const char *dst,
    int required)
{
	char		 path[PATH_MAX], dir[PATH_MAX], buf[65536], *slash;
	ssize_t		 n, w, off;
	int		 in, out, rc;

	rc = -1;
	in = out = -1;
	if ((size_t)snprintf(path, sizeof(path), "%s%s", root, dst) >=
	    sizeof(path)) {
		sb_log(SB_LOG_ERROR, "httpc", "path too long: %s%s", root, dst);
		return (-1);
	}
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		if (!required) {
			sb_log(SB_LOG_WARN, "httpc", "%s: %s: not copied into "
			    "the sandbox", src, strerror(errno));
			return (0);
		}
		sb_log(SB_LOG_ERROR, "httpc", "CA bundle %s: %s (set [host] "
		    "ca_bundle)", src, strerror(errno));
		return (-1);
	}

	(void)snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (mkdir_p(dir) == -1) {
		sb_log(SB_LOG_ERROR, "httpc", "mkdir %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	/* A link planted in the root must not redirect the write. */
	(void)unlink(path);
	if ((out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644)) == -1) {
		sb_log(SB_LOG_ERROR, "httpc", "%s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		if ((n = read(in, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			sb_log(SB_LOG_ERROR, "httpc", "read %s: %s", src,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (off = 0; off < n; off += w) {
			if ((w = write(out, buf + off, (size_t)(n - off))) ==
			    -1) {
				if (errno == EINTR) {
					w = 0;
					continue;
				}
				sb_log(SB_LOG_ERROR, "httpc", "write %s: %s",
				    path, strerror(errno));
				goto out;
			}
		}
	}
	if (fchown(out, 0, 0) == -1 || fchmod(out, 0644) == -1) {
		sb_log(SB_LOG_ERROR, "httpc", "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (in != -1)
		(void)close(in);
	if (out != -1 && close(out) == -1)
		rc = -1;
	return (rc);
}

static int
mkdir_p(char *dir)
{
	char	*p;

	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			*p = '/';
			return (-1);
		}
		*p = '/';
	}
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return (-1);
	return (0);
}

/* ------------------------------------------------------------------------
 * Sending
 */

int
sb_http_send(struct sb_plugin *p, const struct sb_http_request *r,
    sb_http_cb cb, void *arg)
{
	struct call	*c;
	char		 name[BR_NAME_MAX];
	unsigned int	 timeout;

	/* Only a worker's event loop runs curl and the callbacks. */
	if (!sb_is_worker || r == NULL || cb == NULL || !request_valid(r) ||
	    upstream_name(r->url, r->upstream, name, sizeof(name)) == -1)
		return (SB_ERROR);

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (SB_ERROR);
	c->magic = CALL_MAGIC;
	c->body_fd = c->resp_fd = -1;
	c->plugin = p;
	c->cb = cb;
	c->arg = arg;
	c->started = kore_time_ms();
	c->max = r->max_response ? r->max_response : DEFAULT_MAX_RESPONSE;
	timeout = r->timeout_ms ? r->timeout_ms : DEFAULT_TIMEOUT_MS;

	if ((c->br = breaker_get(name)) != NULL) {
		switch (breaker_admit(c->br, timeout)) {
		case ADMIT_REFUSED:
			call_fail_later(c, "circuit open");
			return (SB_OK);
		case ADMIT_TRIAL:
			c->trial = 1;
			sb_log(SB_LOG_INFO, "httpc", "breaker %s half-open: "
			    "one trial call", name);
			break;
		case ADMIT_CLOSED:
			break;
		}
	}

	if (r->io != NULL && io_setup(c, r->io) == -1) {
		if (c->trial)
			breaker_record(c->br, 1, OUTCOME_FAIL);
		call_fail_later(c, "cannot use the descriptors");
		return (SB_OK);
	}

	if (!kore_curl_init(&c->curl, r->url, KORE_CURL_ASYNC)) {
		/* The trial cannot run: it counts as failed. */
		if (c->trial)
			breaker_record(c->br, 1, OUTCOME_FAIL);
		call_fail_later(c, "cannot start the transfer");
		return (SB_OK);
	}
	c->curl_ready = 1;
	if (call_setup(c, r) == -1) {
		if (c->trial)
			breaker_record(c->br, 1, OUTCOME_FAIL);
		call_fail_later(c, "cannot set up the transfer");
		return (SB_OK);
	}
	kore_curl_bind_callback(&c->curl, call_done, c);
	kore_curl_run(&c->curl);
	/*
	 * curl asks to be run "now" through a flag Kore checks only after
	 * its next event wait, which lasts 100 ms while HTTP requests are
	 * pending and forever when none are (a job's call): a zero-delay
	 * timer makes that wait return at once.
	 */
	(void)kore_timer_add(curl_nudge, 0, NULL, KORE_TIMER_ONESHOT);
	return (SB_OK);
}

/* Our own copies of the caller's descriptors. */
static int
io_setup(struct call *c, const struct sb_http_io *io)
{
	if (io->body_fd >= 0) {
		if ((c->body_fd = fcntl(io->body_fd, F_DUPFD_CLOEXEC, 0)) ==
		    -1)
			return (-1);
		c->body_off = io->body_offset;
		c->body_left = io->body_len;
	}
	if (io->response_fd >= 0) {
		if ((c->resp_fd = fcntl(io->response_fd, F_DUPFD_CLOEXEC,
		    0)) == -1)
			return (-1);
		c->resp_max = io->response_max;
	}
	return (0);
}

static void
curl_nudge(void *arg, u_int64_t now)
{
	(void)arg;
	(void)now;
}

/* Everything the request says, copied into the curl handle. */
static int
call_setup(struct call *c, const struct sb_http_request *r)
{
	CURL		*h = c->curl.handle;
	char		 line[8192];
	size_t		 i;
	int		 has_ctype, has_ua;
	unsigned int	 total_ms, conn_ms;
	struct curl_slist *l;

	total_ms = r->timeout_ms ? r->timeout_ms : DEFAULT_TIMEOUT_MS;
	conn_ms = r->connect_timeout_ms ? r->connect_timeout_ms :
	    DEFAULT_CONNECT_MS;
	if (conn_ms > total_ms)
		conn_ms = total_ms;

	/* call_done() reads the status only for this type. */
	c->curl.type = KORE_CURL_TYPE_HTTP_CLIENT;

	if (curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK)
		return (-1);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)total_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)conn_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (hc.cainfo[0] != '\0') {
		if (curl_easy_setopt(h, CURLOPT_CAINFO, hc.cainfo) !=
		    CURLE_OK)
			return (-1);
		/* Only the bundle: no directory outside it is trusted. */
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}

	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_write);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	if (c->resp_fd == -1)
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)c->max);
	else if (c->resp_max > 0)
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)c->resp_max);

	if (r->io != NULL && r->io->aws_sigv4 != NULL) {
		/* curl copies the strings. */
		if (curl_easy_setopt(h, CURLOPT_AWS_SIGV4, r->io->aws_sigv4) !=
		    CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_USERNAME, r->io->username) !=
		    CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_PASSWORD, r->io->password) !=
		    CURLE_OK)
			return (-1);
	}

	if (c->body_fd != -1) {
		/* PUT by default; another method keeps the uploaded body. */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, body_read);
		curl_easy_setopt(h, CURLOPT_READDATA, c);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)c->body_left);
		if (strcmp(r->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	} else if (strcmp(r->method, "GET") == 0 && r->body_len == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (r->body_len > 0 || strcmp(r->method, "POST") == 0 ||
	    strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0) {
		/* Copied: the caller's buffer is borrowed for the call only. */
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->body_len);
		if (curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS,
		    r->body_len > 0 ? r->body : "") != CURLE_OK)
			return (-1);
		if (strcmp(r->method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}

	has_ctype = has_ua = 0;
	for (i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, "content-type") == 0)
			has_ctype = 1;
		if (strcasecmp(r->headers[i].name, "user-agent") == 0)
			has_ua = 1;
		/* "Name;" is curl's way of sending an empty header. */
		if (r->headers[i].value[0] == '\0')
			(void)snprintf(line, sizeof(line), "%s;",
			    r->headers[i].name);
		else
			(void)snprintf(line, sizeof(line), "%s: %s",
			    r->headers[i].name, r->headers[i].value);
		if ((l = curl_slist_append(c->curl.http.hdrlist, line)) ==
		    NULL)
			return (-1);
		c->curl.http.hdrlist = l;
	}
	/* No 100-continue round trip, and no form type curl would invent
	 * for a body whose type the caller did not state.  Not when signing:
	 * libcurl 7.88 would list these empty "remove" headers among the
	 * signed ones without sending them (S3 cannot verify that), and the
	 * headers curl adds itself are not signed, which S3 accepts. */
	if (r->io == NULL || r->io->aws_sigv4 == NULL) {
		if ((l = curl_slist_append(c->curl.http.hdrlist, "Expect:")) ==
		    NULL)
			return (-1);
		c->curl.http.hdrlist = l;
		if (!has_ctype) {
			if ((l = curl_slist_append(l, "Content-Type:")) ==
			    NULL)
				return (-1);
			c->curl.http.hdrlist = l;
		}
	}
	if (!has_ua)
		curl_easy_setopt(h, CURLOPT_USERAGENT, "switchboard/"
		    SB_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->curl.http.hdrlist);
	return (0);
}

/* RFC 9110 token characters. */
static int
token(const char *s, size_t max)
{
	size_t	n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= max)
			return (0);
		if (!isalnum((unsigned char)s[n]) &&
		    strchr("!#$%&'*+-.^_`|~", s[n]) == NULL)
			return (0);
	}
	return (n > 0);
}

static int
request_valid(const struct sb_http_request *r)
{
	size_t	i;

	if (r->method == NULL || !token(r->method, METHOD_MAX))
		return (0);
	if (r->url == NULL || strlen(r->url) > URL_MAX)
		return (0);
	if (r->body_len > 0 && r->body == NULL)
		return (0);
	if (r->io != NULL) {
		if (r->io->size < offsetof(struct sb_http_io, spare))
			return (0);
		if (r->io->aws_sigv4 != NULL && (r->io->username == NULL ||
		    r->io->password == NULL || strlen(r->io->aws_sigv4) > 256))
			return (0);
		if (r->io->body_fd >= 0 && (r->body != NULL ||
		    r->body_len > 0 || strcmp(r->method, "GET") == 0 ||
		    strcmp(r->method, "HEAD") == 0 ||
		    r->io->body_len > (uint64_t)INT64_MAX ||
		    r->io->body_offset > (uint64_t)INT64_MAX))
			return (0);
	}
	if (strcmp(r->method, "HEAD") == 0 && r->body_len > 0)
		return (0);
	if (r->nheaders > HEADERS_MAX || (r->nheaders > 0 &&
	    r->headers == NULL))
		return (0);
	for (i = 0; i < r->nheaders; i++) {
		if (r->headers[i].name == NULL || r->headers[i].value == NULL ||
		    !token(r->headers[i].name, 256) ||
		    strpbrk(r->headers[i].value, "\r\n") != NULL ||
		    strlen(r->headers[i].value) > 4096)
			return (0);
	}
	return (1);
}

/*
 * The breaker's name: the caller's, or the URL's origin
 * (scheme://host:port, lower case).  -1 unless the URL is absolute http
 * or https with a host, or when the caller's name is unusable.
 */
static int
upstream_name(const char *url, const char *given, char *out, size_t len)
{
	CURLU		*u;
	char		*scheme, *host, *port, *p;
	const char	*q;
	int		 rc;

	rc = -1;
	scheme = host = port = NULL;
	if ((u = curl_url()) == NULL)
		return (-1);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") !=
	    0)
		goto out;
	if (*host == '\0')
		goto out;

	if (given != NULL) {
		if (*given == '\0' || strlen(given) >= len)
			goto out;
		for (q = given; *q != '\0'; q++) {
			if (!isprint((unsigned char)*q))
				goto out;
		}
		(void)snprintf(out, len, "%s", given);
	} else {
		if ((size_t)snprintf(out, len, "%s://%s:%s", scheme, host,
		    port) >= len)
			goto out;
		for (p = out; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return (rc);
}

/* The request body from the caller's descriptor, as curl asks for it. */
static size_t
body_read(char *ptr, size_t size, size_t nmemb, void *udata)
{
	struct call	*c = udata;
	size_t		 want;
	ssize_t		 r;

	if (nmemb != 0 && size > SIZE_MAX / nmemb)
		return (CURL_READFUNC_ABORT);
	want = size * nmemb;
	if ((uint64_t)want > c->body_left)
		want = (size_t)c->body_left;
	if (want == 0)
		return (0);
	while ((r = pread(c->body_fd, ptr, want, (off_t)c->body_off)) ==
	    -1 && errno == EINTR)
		;
	if (r <= 0) {
		/* A file shorter than promised, or unreadable. */
		c->io_error = IO_READ;
		return (CURL_READFUNC_ABORT);
	}
	c->body_off += (uint64_t)r;
	c->body_left -= (uint64_t)r;
	return ((size_t)r);
}

/* The body, up to the call's limit: past it the transfer is aborted. */
static size_t
body_write(char *ptr, size_t size, size_t nmemb, void *udata)
{
	struct call	*c = udata;
	struct kore_buf	*b;
	size_t		 len, have, done;
	ssize_t		 w;

	if (nmemb != 0 && size > SIZE_MAX / nmemb)
		return (0);
	len = size * nmemb;
	if (c->resp_fd != -1) {
		if (c->resp_max > 0 && len > c->resp_max - c->resp_done) {
			c->too_large = 1;
			return (0);
		}
		for (done = 0; done < len; done += (size_t)w) {
			w = write(c->resp_fd, ptr + done, len - done);
			if (w == -1 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				c->io_error = IO_WRITE;
				return (0);
			}
		}
		c->resp_done += len;
		return (len);
	}
	b = c->curl.response;
	have = b != NULL ? b->offset : 0;
	if (len > c->max - have) {
		c->too_large = 1;
		return (0);
	}
	if (b == NULL)
		b = c->curl.response = kore_buf_alloc(len > 4096 ? len : 4096);
	kore_buf_append(b, ptr, len);
	return (len);
}

/* Header lines of the final response (a 1xx response's are dropped). */
static size_t
header_write(char *ptr, size_t size, size_t nmemb, void *udata)
{
	struct call	*c = udata;
	struct kore_buf	*b;
	size_t		 len;

	if (nmemb != 0 && size > SIZE_MAX / nmemb)
		return (0);
	len = size * nmemb;
	if ((b = c->curl.http.headers) == NULL)
		b = c->curl.http.headers = kore_buf_alloc(1024);
	if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
		kore_buf_reset(b);
	if (len > HEADER_BYTES_MAX - b->offset) {
		c->too_large = 1;
		return (0);
	}
	kore_buf_append(b, ptr, len);
	return (len);
}

/* Splits the head into name/value pairs, in place. */
static void
headers_parse(struct call *c)
{
	char	*s, *line, *next, *colon, *v, *end;

	if (c->curl.http.headers == NULL)
		return;
	s = kore_buf_stringify(c->curl.http.headers, NULL);
	for (line = s; line != NULL && *line != '\0'; line = next) {
		if ((next = strstr(line, "\r\n")) != NULL) {
			*next = '\0';
			next += 2;
		} else if ((next = strchr(line, '\n')) != NULL) {
			*next++ = '\0';
		}
		if ((colon = strchr(line, ':')) == NULL || colon == line)
			continue;	/* the status line, the blank line */
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		end = v + strlen(v);
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (c->nhdrs < HEADERS_MAX) {
			c->hname[c->nhdrs] = line;
			c->hvalue[c->nhdrs] = v;
			c->nhdrs++;
		}
	}
}

const char *
sb_http_header(const struct sb_http_response *resp, const char *name)
{
	const struct call	*c;
	size_t			 i;

	if (resp == NULL || name == NULL)
		return (NULL);
	c = (const struct call *)(const void *)((const char *)resp -
	    offsetof(struct call, resp));
	if (c->magic != CALL_MAGIC)
		return (NULL);
	for (i = 0; i < c->nhdrs; i++) {
		if (strcasecmp(c->hname[i], name) == 0)
			return (c->hvalue[i]);
	}
	return (NULL);
}

/* Retry-After: delay-seconds or an HTTP date; 0 when absent or past. */
static unsigned int
retry_after_parse(const char *v)
{
	unsigned long long	 n;
	time_t			 t, now;
	const char		*p;

	if (v == NULL)
		return (0);
	for (p = v; isdigit((unsigned char)*p); p++)
		;
	if (p != v && *p == '\0') {
		n = 0;
		for (p = v; *p != '\0' && n <= RETRY_AFTER_MAX; p++)
			n = n * 10 + (unsigned long long)(*p - '0');
		return (n > RETRY_AFTER_MAX ? RETRY_AFTER_MAX :
		    (unsigned int)n);
	}
	if ((t = curl_getdate(v, NULL)) == -1)
		return (0);
	now = time(NULL);
	if (t <= now)
		return (0);
	return (t - now > RETRY_AFTER_MAX ? RETRY_AFTER_MAX :
	    (unsigned int)(t - now));
}

/* Kore's curl callback: the transfer ended, one way or another. */
static void
call_done(struct kore_curl *client, void *arg)
{
	struct call	*c = arg;
	const char	*detail;
	enum outcome	 o;

	c->resp.elapsed_ms = (unsigned int)(kore_time_ms() - c->started);
	if (c->io_error) {
		/* Our descriptor failed, not the upstream. */
		(void)snprintf(c->error, sizeof(c->error), "%s",
		    c->io_error == IO_READ ? "cannot read the request body" :
		    "cannot write the response body");
		o = OUTCOME_OK;
	} else if (client->result == CURLE_OK && !c->too_large) {
		c->resp.status = (int)client->http.status;
		headers_parse(c);
		if (client->response != NULL) {
			c->resp.body_len = client->response->offset;
			c->resp.body = kore_buf_stringify(client->response,
			    NULL);
		}
		c->resp.retry_after = retry_after_parse(
		    sb_http_header(&c->resp, "retry-after"));
		o = c->resp.status >= 500 ? OUTCOME_FAIL : OUTCOME_OK;
	} else if (c->too_large || client->result == CURLE_FILESIZE_EXCEEDED) {
		/* The upstream answered; the answer is what we refuse. */
		(void)snprintf(c->error, sizeof(c->error),
		    "response too large");
		o = OUTCOME_OK;
	} else {
		if (client->result == CURLE_OPERATION_TIMEDOUT)
			detail = "timed out";
		else
			detail = kore_curl_strerror(client);
		(void)snprintf(c->error, sizeof(c->error), "%s", detail);
		o = OUTCOME_FAIL;
	}
	if (c->error[0] != '\0') {
		c->resp.error = c->error;
		c->resp.status = 0;
	}
	if (c->br != NULL)
		breaker_record(c->br, c->trial, o);
	call_finish(c);
}

/* A call that never started: finished from the event loop, not here. */
static void
call_fail_later(struct call *c, const char *error)
{
	(void)snprintf(c->error, sizeof(c->error), "%s", error);
	c->resp.error = c->error;
	(void)kore_timer_add(call_timer, 0, c, KORE_TIMER_ONESHOT);
}

static void
call_timer(void *arg, u_int64_t now)
{
	struct call	*c = arg;

	(void)now;
	c->resp.elapsed_ms = (unsigned int)(kore_time_ms() - c->started);
	call_finish(c);
}

static void
call_finish(struct call *c)
{
	if (c->resp.body == NULL)
		c->resp.body = "";
	c->cb(c->plugin, &c->resp, c->arg);
	if (c->curl_ready)
		kore_curl_cleanup(&c->curl);
	if (c->body_fd != -1)
		(void)close(c->body_fd);
	if (c->resp_fd != -1)
		(void)close(c->resp_fd);
	c->magic = 0;
	free(c);
}

/* ------------------------------------------------------------------------
 * Breaker table
 */

static uint64_t
mono_ms(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* FNV-1a; names are also compared in full, so this only spreads them. */
static uint64_t
name_hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return (h != 0 ? h : 1);
}

/*
 * The upstream's slot, claimed on first use.  A claimer writes the name
 * after winning the slot and publishes it with `named`; a reader that
 * finds a matching hash whose name is not published yet (or never will
 * be: the claimer died) takes the hash as the answer.  A full probe
 * window means no breaker for this upstream (calls are let through).
 */
static struct breaker *
breaker_get(const char *name)
{
	struct breaker	*b;
	uint64_t	 fp, cur;
	size_t		 i;
	static int	 warned;

	if (hc.slots == NULL)
		return (NULL);
	fp = name_hash(name);
	for (i = 0; i < BR_PROBE; i++) {
		b = &hc.slots[(fp + i) % BR_SLOTS];
		cur = __atomic_load_n(&b->fp, __ATOMIC_ACQUIRE);
		if (cur == 0) {
			if (__atomic_compare_exchange_n(&b->fp, &cur, fp, 0,
			    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				(void)snprintf(b->name, sizeof(b->name), "%s",
				    name);
				__atomic_store_n(&b->named, 1,
				    __ATOMIC_RELEASE);
				return (b);
			}
			/* cur now holds the winner's hash. */
		}
		if (cur != fp)
			continue;
		if (!__atomic_load_n(&b->named, __ATOMIC_ACQUIRE) ||
		    strncmp(b->name, name, sizeof(b->name) - 1) == 0)
			return (b);
	}
	if (!warned) {
		warned = 1;
		sb_log(SB_LOG_WARN, "httpc", "breaker table full: %s has no "
		    "circuit breaker", name);
	}
	return (NULL);
}

static enum admit
breaker_admit(struct breaker *b, unsigned int timeout_ms)
{
	uint64_t	 w, next, now;

	now = mono_ms();
	w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);
	for (;;) {
		switch (BR_STATE(w)) {
		case BR_OPEN:
			if (now < BR_TIME(w) + hc.cooldown_ms)
				return (ADMIT_REFUSED);
			break;
		case BR_HALF_OPEN:
			if (now < BR_TIME(w))
				return (ADMIT_REFUSED);	/* a trial is out */
			break;
		default:
			return (ADMIT_CLOSED);
		}
		/* The cool-down is over (or the last trial was lost):
		 * whoever swaps first carries the one trial. */
		next = BR_WORD(BR_HALF_OPEN, BR_FAILS(w),
		    now + timeout_ms + TRIAL_GRACE_MS);
		if (__atomic_compare_exchange_n(&b->word, &w, next, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return (ADMIT_TRIAL);
	}
}

static void
breaker_record(struct breaker *b, int trial, enum outcome o)
{
	uint64_t	 w, next, now, fails;
	int		 opened;

	now = mono_ms();
	w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);
	for (;;) {
		opened = 0;
		fails = BR_FAILS(w);
		switch (BR_STATE(w)) {
		case BR_CLOSED:
			if (o == OUTCOME_OK) {
				if (fails == 0)
					return;
				next = BR_WORD(BR_CLOSED, 0, 0);
			} else if (fails + 1 >= hc.failures) {
				next = BR_WORD(BR_OPEN, fails + 1, now);
				opened = 1;
			} else {
				next = BR_WORD(BR_CLOSED, fails + 1, 0);
			}
			break;
		case BR_HALF_OPEN:
			if (!trial)
				return;
			if (o == OUTCOME_OK) {
				next = BR_WORD(BR_CLOSED, 0, 0);
			} else {
				next = BR_WORD(BR_OPEN, fails + 1, now);
				opened = 1;
			}
			break;
		default:
			/* Open: late answers to calls let through before it
			 * opened change nothing. */
			return;
		}
		if (__atomic_compare_exchange_n(&b->word, &w, next, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	}
	if (opened) {
		__atomic_store_n(&b->opened_wall, (uint64_t)sb_now_ms(),
		    __ATOMIC_RELEASE);
		sb_log(SB_LOG_WARN, "httpc", "breaker %s open after %llu "
		    "consecutive failure(s): failing fast for %llu ms",
		    b->name, (unsigned long long)(fails + 1),
		    (unsigned long long)hc.cooldown_ms);
	} else if (BR_STATE(w) == BR_HALF_OPEN) {
		sb_log(SB_LOG_INFO, "httpc", "breaker %s closed: the trial "
		    "call succeeded", b->name);
	}
}

static const char *
state_name(int state)
{
	switch (state) {
	case BR_OPEN:
		return ("open");
	case BR_HALF_OPEN:
		return ("half_open");
	default:
		return ("closed");
	}
}

json_t *
sb_httpc_breakers(void)
{
	struct breaker	*b;
	json_t		*out, *one;
	uint64_t	 w, wall;
	struct tm	 tm;
	time_t		 secs;
	char		 ts[64];
	size_t		 i, n;

	out = json_object();
	if (hc.slots == NULL)
		return (out);
	for (i = 0; i < BR_SLOTS; i++) {
		b = &hc.slots[i];
		if (!__atomic_load_n(&b->named, __ATOMIC_ACQUIRE))
			continue;
		w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);
		one = json_pack("{s:s, s:I}", "state",
		    state_name(BR_STATE(w)), "failures",
		    (json_int_t)BR_FAILS(w));
		if (one == NULL)
			continue;
		wall = __atomic_load_n(&b->opened_wall, __ATOMIC_ACQUIRE);
		if (BR_STATE(w) != BR_CLOSED && wall != 0) {
			secs = (time_t)(wall / 1000);
			gmtime_r(&secs, &tm);
			n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
			(void)snprintf(ts + n, sizeof(ts) - n, ".%03uZ",
			    (unsigned int)(wall % 1000));
			json_object_set_new(one, "opened_at", json_string(ts));
		} else {
			json_object_set_new(one, "opened_at", json_null());
		}
		/* Names are printable ASCII or a URL origin: valid UTF-8
		 * unless a plugin chose otherwise; skip those. */
		if (json_object_set_new(out, b->name, one) == -1)
			continue;
	}
	return (out);
}
