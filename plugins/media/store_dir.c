/*
 * The directory backend of the media store (store.h).
 *
 * Layout under the configured directory (key `dir`):
 *   tmp/<32 hex>            uploads being written
 *   <aa>/<sha256>           the objects, aa = the hash's first two digits
 *
 * The directory is opened in setup(), in the parent, before the workers
 * are chrooted: a relative `dir` is relative to the parent's working
 * directory, and every later access is relative to that descriptor
 * (openat, renameat, unlinkat), so it works inside the chroot.  The
 * workers run as the runas user: the host's dir_open() creates the
 * directory when missing and gives it to that user, mode 0700.
 * Objects are written to tmp/, fsync'd, renamed into place (atomic) and
 * the fan-out directory fsync'd.
 */

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "media.h"
#include "store.h"

static int	dir_fd = -1;
static const struct sb_host_api	*dapi;
static struct sb_plugin		*dplug;

static int
dir_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	static const long	nrs[] = { SYS_openat, SYS_mkdirat,
	    SYS_renameat, SYS_renameat2, SYS_unlinkat, SYS_fsync,
	    SYS_fdatasync, SYS_fstat, SYS_newfstatat, SYS_lseek,
	    SYS_pwrite64, SYS_pread64, SYS_write, SYS_read, SYS_faccessat,
	    SYS_faccessat2, SYS_getdents64, SYS_fcntl };
	struct stat		 st;
	const char		*path;

	dapi = a;
	dplug = p;
	path = a->config_get(p, "dir");
	if (path == NULL || *path == '\0') {
		a->log(p, SB_LOG_ERROR, "dir: no directory configured");
		return (SB_ERROR);
	}
	/* Created when missing, owned by the worker user (the host's). */
	if ((dir_fd = a->dir_open(p, path)) == -1) {
		a->log(p, SB_LOG_ERROR, "dir %s: cannot prepare it (see the "
		    "host's log line)", path);
		return (SB_ERROR);
	}
	/* tmp/ belongs to whoever owns the directory: the worker user. */
	if ((mkdirat(dir_fd, "tmp", 0700) == -1 && errno != EEXIST) ||
	    fstat(dir_fd, &st) == -1 ||
	    fchownat(dir_fd, "tmp", st.st_uid, st.st_gid,
	    AT_SYMLINK_NOFOLLOW) == -1) {
		a->log(p, SB_LOG_ERROR, "%s/tmp: %s", path, strerror(errno));
		return (SB_ERROR);
	}
	return (a->seccomp_allow(p, nrs, sizeof(nrs) / sizeof(nrs[0])));
}

/* The worker can write where it must: the runas user owns the directory. */
static int
dir_check(void)
{
	if (dir_fd == -1)
		return (SB_ERROR);
	if (faccessat(dir_fd, "tmp", W_OK | X_OK, AT_EACCESS) == -1 &&
	    errno != ENOSYS) {
		dapi->log(dplug, SB_LOG_ERROR, "the media directory is not "
		    "writable by the worker user: %s", strerror(errno));
		return (SB_ERROR);
	}
	return (SB_OK);
}

static int
dir_put_begin(struct media_put *put)
{
	unsigned char	r[16];
	int		i;

	put->fd = -1;
	if (RAND_bytes(r, sizeof(r)) != 1)
		return (SB_ERROR);
	memcpy(put->tmp, "tmp/", 4);
	for (i = 0; i < 16; i++) {
		put->tmp[4 + i * 2] = "0123456789abcdef"[r[i] >> 4];
		put->tmp[5 + i * 2] = "0123456789abcdef"[r[i] & 0x0f];
	}
	put->tmp[36] = '\0';
	put->fd = openat(dir_fd, put->tmp, O_RDWR | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	return (put->fd == -1 ? SB_ERROR : SB_OK);
}

static void
dir_put_abort(struct media_put *put)
{
	if (put->fd != -1) {
		(void)close(put->fd);
		(void)unlinkat(dir_fd, put->tmp, 0);
	}
	put->fd = -1;
}

static void
obj_path(const char *sha, char *sub, char *path)
{
	memcpy(sub, sha, 2);
	sub[2] = '\0';
	(void)snprintf(path, 80, "%s/%s", sub, sha);
}

static int
dir_put_commit(struct media_put *put, const char *sha)
{
	struct stat	st;
	char		sub[3], path[80];
	int		fd;

	obj_path(sha, sub, path);
	if (fstatat(dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		/* Stored already: the same bytes. */
		dir_put_abort(put);
		return (SB_OK);
	}
	if (fsync(put->fd) == -1)
		goto fail;
	if (mkdirat(dir_fd, sub, 0700) == -1 && errno != EEXIST)
		goto fail;
	if (renameat(dir_fd, put->tmp, dir_fd, path) == -1)
		goto fail;
	(void)close(put->fd);
	put->fd = -1;
	if ((fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) != -1) {
		(void)fsync(fd);
		(void)close(fd);
	}
	return (SB_OK);
fail:
	dapi->log(dplug, SB_LOG_ERROR, "storing an object: %s",
	    strerror(errno));
	dir_put_abort(put);
	return (SB_ERROR);
}

static int
dir_open(const char *sha, uint64_t *size)
{
	struct stat	st;
	char		sub[3], path[80];
	int		fd;

	obj_path(sha, sub, path);
	if ((fd = openat(dir_fd, path, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1) {
		(void)close(fd);
		return (-1);
	}
	*size = (uint64_t)st.st_size;
	return (fd);
}

static int
dir_remove(const char *sha)
{
	char	sub[3], path[80];

	obj_path(sha, sub, path);
	if (unlinkat(dir_fd, path, 0) == -1 && errno != ENOENT) {
		dapi->log(dplug, SB_LOG_ERROR, "removing an object: %s",
		    strerror(errno));
		return (SB_ERROR);
	}
	return (SB_OK);
}

/* A 64-digit lower-case hex name. */
static int
sha_name(const char *n)
{
	int	i;

	for (i = 0; i < 64; i++) {
		if (!isdigit((unsigned char)n[i]) && (n[i] < 'a' || n[i] > 'f'))
			return (0);
	}
	return (n[64] == '\0');
}

/* Regular files of sub older than before: remove them (tmp/) or pass
 * their names to cb.  -1 when cb asked to stop. */
static int
dir_walk(const char *sub, time_t before, int (*cb)(const char *, void *),
    void *arg, unsigned int *count)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	int		 fd, rc;

	if ((fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return (0);		/* no such fan-out directory */
	if ((d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return (0);
	}
	rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode) ||
		    st.st_mtime >= before)
			continue;
		if (cb == NULL) {
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				(*count)++;
			continue;
		}
		if (!sha_name(de->d_name) || strncmp(de->d_name, sub, 2) != 0)
			continue;
		(*count)++;
		rc = cb(de->d_name, arg);
	}
	closedir(d);
	return (rc);
}

static int
dir_sweep(time_t before, int (*cb)(const char *, void *), void *arg,
    unsigned int *tmp_removed)
{
	unsigned int	n;
	char		sub[3];
	int		i;

	(void)dir_walk("tmp", before, NULL, NULL, tmp_removed);
	n = 0;
	for (i = 0; i < 256; i++) {
		(void)snprintf(sub, sizeof(sub), "%02x", i);
		if (dir_walk(sub, before, cb, arg, &n) == -1)
			break;
	}
	return ((int)n);
}

const struct media_store media_store_dir = {
	.name = "dir",
	.setup = dir_setup,
	.check = dir_check,
	.put_begin = dir_put_begin,
	.put_commit = dir_put_commit,
	.put_abort = dir_put_abort,
	.open = dir_open,
	.remove = dir_remove,
	.sweep = dir_sweep,
};
