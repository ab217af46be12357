/* The media plugin's shared declarations. */

#ifndef MEDIA_H
#define MEDIA_H

#include <switchboard/plugin.h>

extern const struct sb_host_api	*media_api;

struct sb_media_input;

/* media.c, for avatar.c: the checks of an upload before its bytes are
 * stored (sniffed type into sniffed; -1 with the status, the field
 * error code or NULL, and a message), a store inside the caller's
 * transaction (the new id, or -1), dropping an item inside the caller's
 * transaction (its bytes with the last row naming them), and the bytes
 * of a hash to read (a descriptor, or -1). */
int	media_judge(const struct sb_media_input *, char *sniffed, size_t,
	    int *status, const char **code, char *err, size_t errlen);
int64_t	media_put(const struct sb_media_input *, int *status, char *err,
	    size_t errlen);
int	media_drop(int64_t id);
int	media_open(const char *sha, uint64_t *size);

/* avatar.c: the avatar routes (setup). */
int	avatar_setup(struct sb_plugin *);

#endif /* MEDIA_H */
