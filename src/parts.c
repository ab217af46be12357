/*
 * Multipart request bodies (api->req_parts, ABI 1.3) and the directory
 * large bodies are streamed to.
 *
 * Kore writes a body larger than [host] body_memory_max to a mkstemp
 * file in http_body_disk_path as it arrives (http_body_disk_offload), and
 * unlinks it when the request is freed.  The parent points that path at
 * BODY_DIR inside the workers' root and creates it there, owned by the
 * worker user, mode 0700.  sb_req_parts() walks a body with the parser of
 * multipart.c: in place for a body in memory, through a 64 KiB window of
 * pread()s for a body in the file, so no part of a large upload is ever
 * copied into the worker's memory.  Parts of a file body carry a
 * duplicate of Kore's descriptor that this file owns and closes when the
 * request is finished (the contract of struct sb_part: valid until the
 * request is answered, even when a deferred request's client has gone
 * and Kore has freed its http_request).
 */

#include <sys/stat.h>
#include <sys/types.h>

#include <kore/kore.h>
#include <kore/http.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb.h"
#include "multipart.h"

/* Relative: the workers' working directory is their root, chrooted or
 * not (kore_worker_privdrop). */
#define BODY_DIR	"http-bodies"
#define BODY_PREFIX	"http_body."	/* Kore's mkstemp template */
#define PARTS_MAX	256
#define WINDOW		(64 * 1024)

struct sb_parts {
	struct sb_part	*v;
	size_t		 n;
	int		 fd;		/* ours, or -1 */
	int		 rc;		/* the first call's answer */
};

static ssize_t	body_pread(void *, uint64_t, void *, size_t);
static int	parts_walk(struct sb_req *, struct sb_parts *,
		    struct sb_multipart *);
static int	dir_prepare(const char *);

static char	body_dir[] = BODY_DIR;

static ssize_t
body_pread(void *arg, uint64_t off, void *buf, size_t len)
{
	int	fd = *(int *)arg;
	size_t	done;
	ssize_t	r;

	for (done = 0; done < len; done += (size_t)r) {
		r = pread(fd, (char *)buf + done, len - done,
		    (off_t)(off + done));
		if (r == -1 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0)
			return (-1);
	}
	return ((ssize_t)len);
}

int
sb_req_parts(struct sb_req *req, const struct sb_part **parts, size_t *n)
{
	struct sb_multipart	 m;
	struct sb_parts		*ps;
	struct stat		 st;
	unsigned char		*win;
	const char		*ctype;
	int			 rc;

	*parts = NULL;
	*n = 0;
	if (req->parts != NULL) {
		/* Asked before: the same answer (an error was answered). */
		*parts = req->parts->v;
		*n = req->parts->n;
		return (req->parts->rc);
	}
	if (req->http == NULL)
		return (SB_ERROR);	/* the client has gone */

	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		sb_respond_error(req, 503, "UNAVAILABLE", "out of memory", NULL);
		return (SB_ERROR);
	}
	ps->fd = -1;
	ps->rc = SB_ERROR;
	req->parts = ps;

	ctype = sb_req_header(req, "content-type");
	if (sb_multipart_check(ctype) == -1) {
		sb_respond_error(req, 415, "UNSUPPORTED_MEDIA_TYPE", "the body "
		    "must be multipart/form-data with a boundary", NULL);
		return (SB_ERROR);
	}

	win = NULL;
	if (req->http->http_body_fd != -1 && !req->raw_read) {
		/* In Kore's file: walked there, through a window. */
		if ((ps->fd = fcntl(req->http->http_body_fd, F_DUPFD_CLOEXEC,
		    0)) == -1 || fstat(ps->fd, &st) == -1) {
			sb_log(SB_LOG_ERROR, "parts", "body file: %s",
			    strerror(errno));
			sb_respond_error(req, 500, "INTERNAL", "internal error",
			    NULL);
			return (SB_ERROR);
		}
		if ((win = malloc(WINDOW)) == NULL) {
			sb_respond_error(req, 503, "UNAVAILABLE", "out of "
			    "memory", NULL);
			return (SB_ERROR);
		}
		(void)sb_multipart_init_read(&m, ctype, (uint64_t)st.st_size,
		    body_pread, &ps->fd, win, WINDOW, 0);
	} else {
		if (sb_req_raw(req) == -1)
			return (SB_ERROR);	/* answered */
		(void)sb_multipart_init(&m, ctype, req->raw != NULL ?
		    req->raw : "", req->raw_len);
	}

	rc = parts_walk(req, ps, &m);
	free(win);
	if (rc == -1)
		return (SB_ERROR);
	ps->rc = SB_OK;
	*parts = ps->v;
	*n = ps->n;
	return (SB_OK);
}

/* Every part into ps; -1 after answering. */
static int
parts_walk(struct sb_req *req, struct sb_parts *ps, struct sb_multipart *m)
{
	struct sb_multipart_part	 mp;
	struct sb_part			*p, *v;
	char				 msg[64];
	int				 rc;

	while ((rc = sb_multipart_next(m, &mp)) == 1) {
		if (ps->n == PARTS_MAX) {
			snprintf(msg, sizeof(msg), "more than %d parts in the "
			    "multipart/form-data body", PARTS_MAX);
			sb_respond_error(req, 400, "VALIDATION_ERROR", msg,
			    NULL);
			return (-1);
		}
		if ((ps->n & (ps->n - 1)) == 0) {
			/* 0, 1, 2, 4, ...: room for twice as many. */
			v = reallocarray(ps->v, ps->n ? ps->n * 2 : 1,
			    sizeof(*v));
			if (v == NULL)
				goto oom;
			ps->v = v;
		}
		p = &ps->v[ps->n];
		memset(p, 0, sizeof(*p));
		p->size = sizeof(*p);
		p->fd = -1;
		ps->n++;
		if ((p->name = strdup(mp.name)) == NULL ||
		    (mp.has_filename &&
		    (p->filename = strdup(mp.filename)) == NULL) ||
		    (mp.content_type[0] != '\0' &&
		    (p->content_type = strdup(mp.content_type)) == NULL))
			goto oom;
		p->data = mp.data;
		p->fd = mp.data == NULL ? ps->fd : -1;
		p->offset = mp.off;
		p->len = mp.len;
	}
	if (rc == 0)
		return (0);
	if (m->io_error) {
		sb_log(SB_LOG_ERROR, "parts", "cannot read the body file: %s",
		    strerror(errno));
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
	} else {
		sb_respond_error(req, 400, "VALIDATION_ERROR", "malformed "
		    "multipart/form-data body", NULL);
	}
	return (-1);
oom:
	sb_respond_error(req, 503, "UNAVAILABLE", "out of memory", NULL);
	return (-1);
}

void
sb_parts_free(struct sb_parts *ps)
{
	size_t	i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++) {
		free((char *)(uintptr_t)ps->v[i].name);
		free((char *)(uintptr_t)ps->v[i].filename);
		free((char *)(uintptr_t)ps->v[i].content_type);
	}
	free(ps->v);
	if (ps->fd != -1)
		(void)close(ps->fd);
	free(ps);
}

/*
 * The parent, before the fork: bodies over [host] body_memory_max go to
 * BODY_DIR in the workers' root, created here (Kore's own mkdir happens
 * before the configuration is ours, relative to the parent's directory).
 */
int
sb_parts_parent_init(void)
{
	char	path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", kore_root_path !=
	    NULL ? kore_root_path : ".", BODY_DIR) >= sizeof(path)) {
		sb_log(SB_LOG_ERROR, "parts", "body directory path too long");
		return (-1);
	}
	if (dir_prepare(path) == -1)
		return (-1);
	http_body_disk_path = body_dir;
	http_body_disk_offload = sb_settings.body_memory_max;
	return (0);
}

/*
 * path as a directory only the worker user can enter, 0700, not a link.
 * In a chroot (one server's own) files a killed worker left behind are
 * removed; a development run's directory may be another server's too.
 */
static int
dir_prepare(const char *path)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd;

	if ((fd = sb_workdir_open(path)) == -1)
		return (-1);
	if (skip_chroot || (d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return (0);
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, BODY_PREFIX,
		    sizeof(BODY_PREFIX) - 1) == 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return (0);
}
