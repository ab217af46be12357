/*
 * Directories the workers write (parent only, before the chroot): the
 * host's http-bodies/ (parts.c) and a plugin's own store (api->dir_open,
 * e.g. the media plugin's var/media).  Created when missing, owned by the
 * worker user (kore.conf `runas`; the current user when Kore runs with
 * -r) and mode 0700, never through a symbolic link.  The descriptor is
 * what a plugin keeps: its workers reach the directory with openat() and
 * friends from inside the chroot.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <kore/kore.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "sb.h"

/* An O_DIRECTORY descriptor of path, prepared as above; -1 (logged). */
int
sb_workdir_open(const char *path)
{
	struct passwd	*pw;
	struct stat	 st;
	uid_t		 uid;
	gid_t		 gid;
	int		 fd;

	if (path == NULL || *path == '\0') {
		sb_log(SB_LOG_ERROR, "workdir", "no directory named");
		return (-1);
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		sb_log(SB_LOG_ERROR, "workdir", "mkdir %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		sb_log(SB_LOG_ERROR, "workdir", "%s: %s", path,
		    strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return (-1);
	}
	uid = getuid();
	gid = getgid();
	if (skip_runas == 0 && kore_runas_user != NULL) {
		if ((pw = getpwnam(kore_runas_user)) == NULL) {
			sb_log(SB_LOG_ERROR, "workdir", "no user %s",
			    kore_runas_user);
			(void)close(fd);
			return (-1);
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) == -1) {
		sb_log(SB_LOG_ERROR, "workdir", "chown %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		return (-1);
	}
	if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) == -1) {
		sb_log(SB_LOG_ERROR, "workdir", "chmod %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		return (-1);
	}
	return (fd);
}
