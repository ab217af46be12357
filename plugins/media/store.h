/*
 * The media plugin's storage backends: where the bytes of a media item
 * live, by their SHA-256 (lower-case hex): the directory backend
 * (store_dir.c) and the S3-compatible one (store_s3.c, which keeps the
 * directory backend's layout as its spool and cache).
 *
 * A new object is written to a local temporary file first (put_begin
 * gives its descriptor, readable and writable, so the caller can hash,
 * sniff and check it), then published under its hash by put_commit or
 * dropped by put_abort.  The caller holds the hash's advisory lock
 * around put_commit and remove, in the transaction that inserts or
 * deletes the rows naming the hash, so a concurrent upload of the same
 * bytes never loses its file to a delete.
 */

#ifndef MEDIA_STORE_H
#define MEDIA_STORE_H

#include <stdint.h>
#include <time.h>

#include <switchboard/plugin.h>

struct media_put {
	int		 fd;		/* the temporary file, or -1 */
	char		 tmp[64];	/* backend's name for it */
};

struct media_store {
	const char	*name;
	/* parent (setup): prepare the backend; SB_OK or SB_ERROR. */
	int		(*setup)(struct sb_plugin *,
			    const struct sb_host_api *);
	/* worker: check the backend is usable; SB_OK or SB_ERROR. */
	int		(*check)(void);
	int		(*put_begin)(struct media_put *);
	/* fsync and publish under sha; an existing object with that hash
	 * is kept (the bytes are the same). */
	int		(*put_commit)(struct media_put *, const char *sha);
	void		(*put_abort)(struct media_put *);
	/* a descriptor to read the object from (caller closes) and its
	 * size; -1 when it does not exist. */
	int		(*open)(const char *sha, uint64_t *size);
	/* remove the object; SB_OK also when it was already gone. */
	int		(*remove)(const char *sha);
	/* Optional (NULL: open() is all there is).  An object open() does
	 * not find locally: fetch it into the local cache, then call
	 * done(arg, 0) (open() finds it now) or done(arg, status) with the
	 * HTTP status to answer.  Returns 0 when the fetch is on its way
	 * (done runs later, never inside fetch), else that status at once
	 * (503: not in the remote store yet). */
	int		(*fetch)(const char *sha, void (*done)(void *, int),
			    void *arg);
	/* Optional, worker: SB_OK when usable; names the backend's state
	 * in detail (/readyz).  SB_ERROR: "not configured", routes 503. */
	int		(*ready)(json_t *detail);
	/* Optional, worker: the sweep (media.c, job media.sweep).  Removes
	 * the temporary files last changed before `before` (uploads that
	 * died), adding their number to *tmp_removed, and calls cb(sha,
	 * arg) for every local object last changed before it; cb returns
	 * -1 to stop.  The number of objects passed to cb, or -1. */
	int		(*sweep)(time_t before, int (*cb)(const char *, void *),
			    void *arg, unsigned int *tmp_removed);
};

extern const struct media_store	media_store_dir;
extern const struct media_store	media_store_s3;

#endif /* MEDIA_STORE_H */
