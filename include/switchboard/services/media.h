/*
 * The media plugin's service, "media.store" (ABI 1.3 services; see
 * struct sb_service in <switchboard/plugin.h>).
 *
 * A plugin that stores or sends files (whatsapp, the avatar) imports it
 * in setup():
 *
 *	static const struct sb_media_store *media;
 *	api->service_import(p, SB_MEDIA_STORE, 1,
 *	    (const struct sb_service **)&media);
 *
 * and lists "io.switchboard.media" in its descriptor's depends.  Every
 * function runs on the caller's worker and database connection and
 * never begins or ends a transaction: put() must be called inside one
 * the caller opened (it takes the content's advisory lock, held until
 * the caller commits), so the row and the bytes appear together.
 */

#ifndef SWITCHBOARD_SERVICES_MEDIA_H
#define SWITCHBOARD_SERVICES_MEDIA_H

#include <switchboard/plugin.h>

#define SB_MEDIA_STORE		"media.store"
#define SB_MEDIA_STORE_VERSION	1

/* What to store: bytes in memory (data != NULL) or a range of a file. */
struct sb_media_input {
	size_t			size;		/* sizeof(this struct) */
	const void		*data;		/* or NULL: read fd */
	int			fd;
	uint64_t		offset;
	uint64_t		len;
	const char		*filename;	/* shown; sanitised */
	const char		*declared_type;	/* NULL: not declared */
	/* image, audio, video, document, sticker, avatar; NULL: from the
	 * sniffed type */
	const char		*purpose;
	int64_t			uploaded_by;	/* user id, 0: none */
	int64_t			customer_id;	/* 0: none */
	void			*spare[4];
};

struct sb_media_store {
	struct sb_service	hdr;
	/*
	 * Sniff, check against the purpose's types and limits and store.
	 * The new media id (> 0), or -1 with *status the HTTP status the
	 * refusal maps to (413, 415, 422; 503 while the storage is not
	 * configured; 500 for a failure) and err a message for a person.
	 */
	int64_t	(*put)(struct sb_plugin *caller,
		    const struct sb_media_input *in, int *status,
		    char *err, size_t errlen);
	/* A signed URL of the item's content (path and query, no origin),
	 * valid for ttl_s seconds (0: the plugin's url_ttl).  Caller frees
	 * with free(); NULL when the host has no key. */
	char	*(*signed_url)(struct sb_plugin *caller, int64_t id,
		    unsigned int ttl_s);
	/* The item as GET /api/v1/media/{id} shows it (caller owns it), or
	 * NULL when there is none. */
	json_t	*(*metadata)(struct sb_plugin *caller, int64_t id);
	/* A descriptor to read the bytes (caller closes) and their size in
	 * *size; -1 when there is no such item. */
	int	(*open)(struct sb_plugin *caller, int64_t id, uint64_t *size);
};

#endif /* SWITCHBOARD_SERVICES_MEDIA_H */
