/*
 * What the whatsapp plugin's files share.  whatsapp.c: the plugin
 * (setup, configuration, rooms, health, privacy, timeline); conv.c:
 * conversations and the 24-hour window; send.c: the send routes and the
 * durable send job; hook.c: the signed webhook, its inbox and the drain
 * that applies it; payload.c: the webhook payload's parser (pure, fuzzed);
 * templates.c: the template sync and checks; media.c: media to and from
 * Graph.  Everything here is for this plugin's own files.
 */

#ifndef WHATSAPP_WA_H
#define WHATSAPP_WA_H

#include <stddef.h>
#include <stdint.h>

#include <switchboard/plugin.h>
#include <switchboard/services/customers.h>
#include <switchboard/services/media.h>

#define WA_ROOM			"whatsapp"
#define WA_WINDOW_S		(24 * 3600)
#define WA_TEXT_MAX		4096	/* Graph's limit on text.body */
#define WA_CAPTION_MAX		1024
#define WA_WAMID_MAX		128

/* Set once in setup; read-only afterwards. */
extern const struct sb_host_api			*wa_api;
extern struct sb_plugin				*wa_self;
extern const struct sb_customers_directory	*wa_dir;
extern const struct sb_media_store		*wa_media;

/* The configuration (whatsapp.c).  A NULL string is unset. */
struct wa_conf {
	const char	*access_token;
	const char	*phone_number_id;
	const char	*waba_id;
	const char	*app_secret;
	const char	*verify_token;
	const char	*graph_api_url;		/* no trailing slash */
	const char	*graph_api_version;
	const char	*spool_dir;		/* media on their way */
	unsigned int	 timeout_ms;		/* one Graph request */
	unsigned int	 inflight_grace_s;	/* see send.c */
	unsigned int	 template_sync_s;	/* periodic sync; 0: off */
	unsigned int	 messages_per_minute;	/* per user and customer */
};
extern struct wa_conf	wa_conf;

/* Sending is configured: token and phone number id. */
int	wa_send_ready(void);
/* "<graph_api_url>/<version>/<path>" into out; -1 when it does not fit. */
int	wa_graph_url(char *out, size_t len, const char *path);
/* "Bearer <token>" into out. */
int	wa_auth_header(char *out, size_t len);

/* Answers. */
void	wa_err_field(struct sb_req *, int status, const char *field,
	    const char *code, const char *msg);
void	wa_err_db(struct sb_req *);

/* Phone numbers: "+<digits>" from a wa_id / E.164 and back; the blind
 * index of the E.164 number (caller frees). */
int	wa_e164_from_waid(const char *wa_id, char *out, size_t len);
char	*wa_phone_index(const char *e164);

/*
 * Publishing after a commit.  pubs is an array of {"r": room, "n": event
 * name, "d": data}; wa_pub_add appends, wa_publish_all publishes each.
 */
void	wa_pub_add(json_t *pubs, const char *room, const char *name,
	    json_t *data /* stolen */);
void	wa_publish_all(json_t *pubs);

/* ---- conversations (conv.c) ---- */
int	wa_conv_setup(struct sb_plugin *);
/* The conversation row as the API shows it (a new reference) or NULL. */
json_t	*wa_conv_load(int64_t id, int *dberr);
/*
 * The open conversation of the customer with WhatsApp number e164 (its
 * blind index `index`), created when there is none; inside the caller's
 * transaction, under the number's advisory lock.  inbound_unix: the time
 * of the latest of inbound_n customer messages being applied (unix
 * seconds as text; NULL for a send): it moves last_inbound_at forward,
 * reopens EXPIRED and adds inbound_n to unread; a send makes NEW ACTIVE
 * and clears unread.  name (or NULL) is the customer's WhatsApp profile
 * name.  The conversation id, or -1 on a database error; *created set
 * when this call made it.  The caller publishes the change with
 * wa_conv_pub once its messages are written (the event names the latest
 * message).
 */
int64_t	wa_conv_touch(int64_t customer_id, const char *e164,
	    const char *index, const char *inbound_unix,
	    unsigned int inbound_n, const char *name, int *created);
/* whatsapp.conversation.updated of conversation id, as it is now, appended
 * to pubs.  0, or -1 on a database error. */
int	wa_conv_pub(int64_t id, json_t *pubs);
/* Schedules the expiry of conversation id at its window's end. */
void	wa_conv_expire_at(int64_t id, const char *expires_unix);
/* Room of a conversation: "whatsapp:<id>". */
void	wa_conv_room(char *out, size_t len, int64_t id);

/* ---- messages (send.c) ---- */
int	wa_send_setup(struct sb_plugin *);
#define WA_MSG_COLS "m.id, m.conversation_id, m.customer_id, m.direction, " \
	"m.type, m.text_sealed, m.caption_sealed, m.template, m.media_id, " \
	"m.payload, m.wa_message_id, m.status, m.error_code, m.error_title, " \
	"m.error_detail, m.sent_by, (SELECT c.assigned_to FROM " \
	"whatsapp_conversations c WHERE c.id = m.conversation_id) AS " \
	"assigned_to, " \
	SB_SQL_TS("m.created_at") " AS created_at, " \
	SB_SQL_TS("m.updated_at") " AS updated_at"
/* A row of WA_MSG_COLS (stolen) as the API's message. */
json_t	*wa_msg_json(json_t *row);
/* The message with its events, or NULL (*dberr 1 on a database error). */
json_t	*wa_msg_load(int64_t id, int *dberr);
/* The message as rooms see it: the API's, without events. */
void	wa_msg_publish(json_t *pubs, const char *name, json_t *m);

/* ---- the webhook (hook.c) ---- */
int	wa_hook_setup(struct sb_plugin *);
/*
 * A status of a message, inside the caller's transaction, under the
 * wamid's lock (hook.c takes them): an event once per status, the status
 * moved only forward (queued < sent < failed < delivered < read), error
 * {code, title, detail} kept with a failure.  The message is msg_id when
 * > 0, else the one holding wamid, else the outbound message that
 * biz_opaque ("sb:<id>", echoed by Meta) names, which then takes wamid
 * (adopted: its send's answer was lost); a wamid nobody holds waits in
 * whatsapp_status_pending.  at_unix: Meta's time (NULL: now).  Pubs as
 * above.  0, or -1 on a database error.
 */
int	wa_status_apply(int64_t msg_id, const char *wamid, const char *st,
	    const char *at_unix, json_t *error, const char *biz_opaque,
	    json_t *pubs);
/* The statuses that waited for wamid (see above), applied now that
 * message msg_id holds it.  0 or -1. */
int	wa_status_pending_apply(int64_t msg_id, const char *wamid,
	    json_t *pubs);

/* ---- templates (templates.c) ---- */
int	wa_templates_setup(struct sb_plugin *);
/*
 * A template send's name, language and components against the synced
 * copy: 0 when it may go out; -1 after answering 422 (the field named)
 * or 500.
 */
int	wa_template_check(struct sb_req *, const char *name,
	    const char *language, json_t *components);

/* ---- media (media.c) ---- */
int	wa_media_setup(struct sb_plugin *);
/*
 * The Graph media id of the media plugin's item media_id for our phone
 * number id.  1: it is in whatsapp_media_uploads and fresh, copied into
 * out (cb is not called).  0: it is being uploaded now (POST
 * /<phone_number_id>/media, multipart) and will be remembered; cb runs
 * exactly once, later, on the worker's loop: graph_id on success; else
 * NULL with err (for a person) and retryable (1: try again later, e.g.
 * 429/5xx/transport; 0: never, e.g. the item is gone or Graph refused
 * the file).  -1 (cb never runs) on a local or database error; -2 (cb
 * never runs) when the media plugin has no such item (erased).
 */
typedef void	(*wa_media_cb)(const char *graph_id, int retryable,
		    const char *err, void *arg);
int	wa_media_graph_id(int64_t media_id, char *out, size_t outlen,
	    wa_media_cb cb, void *arg);
/*
 * Inside the caller's transaction: a durable job that downloads the
 * Graph media of inbound message message_id (whatsapp_messages
 * .graph_media_id) into the media plugin and sets the message's
 * media_id; it then publishes whatsapp.message.status with the message
 * (its status unchanged, its media now there) to the conversation's
 * room.  0 or -1.
 */
int	wa_media_fetch_enqueue(int64_t message_id);
/*
 * A media item the agent attaches: 0 when the item exists and WhatsApp
 * takes its type and size as `type` (image, video, audio, document,
 * sticker), with *meta the item's metadata (a new reference: mime_type,
 * filename, size); -1 after answering 422 (field media_id) or 500.
 */
int	wa_media_check(struct sb_req *, int64_t media_id, const char *type,
	    json_t **meta);

/* ---- the payload (payload.c; pure: no host, fuzzed) ---- */
/*
 * Meta's webhook body (raw JSON) into a new array of items, each
 *
 *   {"kind": "message", "id": wamid, "from": wa_id digits, "name":
 *    profile name or "", "timestamp": unix seconds (integer),
 *    "phone_number_id": "...", "type": API type, "text"?, "caption"?,
 *    "media"?: {"id", "mime_type", "sha256", "filename"?},
 *    "location"?: {latitude, longitude, name?, address?, url?},
 *    "reaction"?: {"message_id", "emoji"},
 *    "interactive"?: {"type", "id", "title", "description"?},
 *    "raw_type"?: the type as Meta named it when type is unsupported,
 *    "context"?: {"id": wamid replied to}}
 *   {"kind": "status", "id": wamid, "status": sent|delivered|read|failed,
 *    "timestamp": unix seconds, "recipient_id": digits,
 *    "phone_number_id": "...", "biz_opaque_callback_data"?,
 *    "error"?: {"code", "title", "detail"}}
 *
 * NULL when the body is not JSON or not a whatsapp_business_account
 * payload (err says why).  Items that are malformed are left out and
 * counted in *skipped; strings are bounded (texts to WA_TEXT_MAX).
 */
json_t	*wa_payload_parse(const char *raw, size_t len, size_t *skipped,
	    char *err, size_t errlen);
/* Hex HMAC-SHA256 "sha256=<hex>" of body under secret against header,
 * in constant time: 1 when it matches. */
int	wa_signature_ok(const char *secret, const void *body, size_t len,
	    const char *header);

#endif /* WHATSAPP_WA_H */
