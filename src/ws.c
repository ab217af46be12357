/*
 * The WebSocket gateway: GET /ws (API.md "WebSocket /ws").
 *
 * A client authenticates with ?access_token= (or an Authorization /
 * X-API-Key header) or with a first frame {"type":"auth","token":...}
 * ({"api_key":...} for integrations) within 5 s, then subscribes to rooms.
 * The host owns "agents" (all staff) and "user:<id>" (that user); every
 * other prefix belongs to the plugin that declared it with room_add() in
 * setup(), whose authoriser decides.
 *
 * Fan-out: the bus hands every event to sb_ws_deliver() once in every
 * worker of every node (bus.c, cluster.c); an event published to a room
 * is sent to that room's subscribers in this worker.  So each subscriber
 * gets it exactly once, whichever worker or node it is connected to.
 * The frame is built once per worker and shared by all its subscribers
 * (a reference-counted buffer under Kore's send queues: no copy per
 * client).
 *
 * Bounds: a connection whose unsent backlog is over [host]
 * ws_send_buffer when the next frame is due is a slow consumer and is
 * disconnected (close 1008) instead of growing memory; a client frame
 * over WS_FRAME_MAX is refused, over Kore's websocket_maxframe it drops
 * the connection; a connection sends at most WS_FRAMES_PER_S frames a
 * second (burst WS_FRAMES_BURST); a user (staff user, donor, API key)
 * holds at most [host] ws_max_per_user connections per node.
 *
 * Credentials: checked in full at connect, again on every subscribe,
 * and again for the connections of a user or key when the bus says its
 * sessions or the key changed (logout, refresh-token reuse, password
 * change, deactivation, key revocation); a token's expiry closes the
 * connection unless the client sent a fresh token ({"type":"auth"}) in
 * time.  Idle connections are Kore's: websocket_timeout (clients ping).
 *
 * The per-user counts live in a table shared by the node's workers,
 * created by the parent before the fork: one counter per (user, worker),
 * each written only by its worker.  A worker that dies loses its clients
 * with it (their sockets close with the process), and its restarted
 * successor, which has the same worker id, zeroes that worker's column
 * first: no count outlives the connections it counted.
 */

#include <sys/mman.h>
#include <sys/queue.h>

#include <kore/kore.h>
#include <kore/http.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sb.h"
#include "text.h"
#include "conf.h"

#define WS_AUTH_DEADLINE_MS	5000	/* API.md */
#define WS_ROOMS_MAX		64	/* per connection */
#define WS_ROOM_MAX		192	/* bytes of a room name */
#define WS_PREFIX_MAX		32
#define WS_FRAME_MAX		8192	/* client frames we parse */
#define WS_FRAMES_PER_S		20	/* client frames a second ... */
#define WS_FRAMES_BURST		60	/* ... after a burst of this many */
#define WS_TICK_MS		100	/* deadlines, deferred closes */
#define WS_SWEEP_TICKS		20	/* token expiry, every 2 s */
#define WS_COUNT_SLOTS		8192	/* users with connections, per node */
#define WS_COUNT_PROBE		16

/* Close codes (RFC 6455 section 7.4). */
#define WS_CLOSE_POLICY		1008	/* auth, slow consumer */
#define WS_CLOSE_ERROR		1011
#define WS_CLOSE_TRY_LATER	1013	/* per-user cap, database down */

struct ws_frame {
	unsigned int		 refs;
	size_t			 len;
	u_int8_t		 data[];
};

struct ws_conn;
struct ws_room;

/* One connection in one room: on the room's list and the connection's. */
struct ws_sub {
	TAILQ_ENTRY(ws_sub)	 room_list;
	TAILQ_ENTRY(ws_sub)	 conn_list;
	struct ws_room		*room;
	struct ws_conn		*conn;
};
TAILQ_HEAD(ws_sub_list, ws_sub);

struct ws_room {
	struct ws_room		*next;		/* hash chain */
	uint64_t		 hash;
	struct ws_sub_list	 members;
	unsigned int		 nmembers;
	unsigned int		 busy;		/* fan-outs running over it */
	char			 name[];
};

enum ws_state {
	WS_PENDING = 0,		/* upgraded, not authenticated yet */
	WS_READY,		/* authenticated */
	WS_CLOSING,		/* error sent; closed on the next tick */
	WS_GONE			/* disconnected: Kore frees it */
};

/*
 * Per connection.  Ours (malloc), not Kore's: c->hdlr_extra holds only a
 * small Kore-allocated handle pointing here (Kore kore_free()s
 * hdlr_extra when it removes the connection).  sb_ws_ondisconnect()
 * releases what the connection holds, detaches it from the handle and
 * buries it; the next tick frees it.  So a caller still on the stack
 * when the connection closes can read it, and a reference kept past
 * that (a bug) is a use-after-free that ASan names instead of a read of
 * memory that Kore's pools handed to someone else.
 */
struct ws_conn {
	struct connection	*c;
	TAILQ_ENTRY(ws_conn)	 list;		/* pending, ready or closing */
	enum ws_state		 state;
	int			 connected;	/* onconnect ran */
	uint64_t		 since;		/* kore_time_ms() at upgrade */
	int64_t			 expires;	/* token exp, unix s; 0 never */
	struct sb_principal	 who;		/* strings point below */
	char			*who_name;
	char			*who_role;
	char			*who_donor;
	char			*credential;	/* token or API key */
	int			 is_key;
	int			 slot;		/* per-user count, -1 none */
	struct ws_sub_list	 subs;
	unsigned int		 nsubs;
	unsigned int		 tokens;	/* frame budget */
	uint64_t		 refilled;
	uint64_t		 limited;	/* last RATE_LIMITED sent */
	/* An error found before the upgrade, sent by onconnect. */
	const char		*fail_code;
	char			*fail_msg;
	int			 fail_close;
};
TAILQ_HEAD(ws_conn_list, ws_conn);

/* A room prefix owned by a plugin (declared in setup(), in the parent). */
struct ws_owner {
	TAILQ_ENTRY(ws_owner)	 list;
	char			*prefix;
	sb_room_auth_cb		 authorise;
	struct sb_plugin	*plugin;
	int			 committed;
};
TAILQ_HEAD(ws_owner_list, ws_owner);

void	sb_ws_onconnect(struct connection *);
void	sb_ws_onmessage(struct connection *, u_int8_t, const void *, size_t);
void	sb_ws_ondisconnect(struct connection *);

static void	ws_route(struct sb_req *);
static int	ws_authenticate(struct ws_conn *, const char *, const char *);
static void	ws_fail(struct ws_conn *, const char *, const char *, int);
static void	ws_close(struct ws_conn *, int, const char *);
static void	close_frame(struct connection *, int, const char *);
static void	ws_error(struct ws_conn *, const char *, const char *,
		    const char *);
static void	ws_send_json(struct ws_conn *, json_t *);
static void	ws_send_frame(struct ws_conn *, struct ws_frame *);
static void	ws_ready(struct ws_conn *);
static void	ws_frame(struct ws_conn *, json_t *);
static void	ws_subscribe(struct ws_conn *, const char *);
static void	ws_unsubscribe(struct ws_conn *, const char *);
static int	ws_recheck(struct ws_conn *);
static int	ws_allowed(struct ws_conn *, const char *, const char **);
static void	ws_revocation(const struct sb_event *);
static void	ws_tick(void *, u_int64_t);
static void	ws_forget(struct ws_conn *);
static struct ws_conn *ws_of(struct connection *);
static int	who_is(const struct ws_conn *, const struct sb_principal *);
static struct ws_frame *frame_new(u_int8_t, const void *, size_t);
static void	frame_put(struct ws_frame *);
static int	frame_release(struct netbuf *);
static struct ws_room *room_get(const char *, int);
static void	room_leave(struct ws_sub *);
static int	count_acquire(const char *);
static void	count_release(int);

static struct ws_owner_list	owners = TAILQ_HEAD_INITIALIZER(owners);

/* Settings, read by the parent and inherited by the workers. */
static size_t		send_max = 262144;	/* [host] ws_send_buffer */
static unsigned int	per_user_max = 16;	/* [host] ws_max_per_user */

/* Per worker. */
static struct ws_conn_list	pending = TAILQ_HEAD_INITIALIZER(pending);
static struct ws_conn_list	ready = TAILQ_HEAD_INITIALIZER(ready);
static struct ws_conn_list	closing = TAILQ_HEAD_INITIALIZER(closing);
static struct ws_conn_list	buried = TAILQ_HEAD_INITIALIZER(buried);
static struct ws_room		**buckets = NULL;
static size_t			 nbuckets = 0;
static size_t			 nrooms = 0;
static unsigned int		 ticks = 0;

/* The node's per-user connection counts (shared mapping). */
static unsigned char	*counts = NULL;
static size_t		 count_stride = 0;	/* bytes per slot */
static unsigned int	 count_workers = 0;
static unsigned char	 count_salt[16];

const struct sb_route sb_ws_routes[] = {
	{ .method = "GET", .path = "/ws", .flags = SB_ROUTE_PUBLIC,
	  .handler = ws_route,
	  .summary = "WebSocket upgrade: real-time events of subscribed rooms "
	  "(authenticate with ?access_token= or a first frame "
	  "{\"type\":\"auth\",\"token\":...} within 5 s)" },
	SB_ROUTE_END
};

/* ------------------------------------------------------------------------
 * Setup (parent): settings, the shared count table, room owners.
 */

void
sb_ws_parent_init(void)
{
	long long	v;
	size_t		len;
	int		ok;

	v = sb_conf_int(sb_config, "host", "ws_send_buffer", 262144, &ok);
	if (!ok || v < 4096 || v > 67108864)
		fatalx("[host] ws_send_buffer must be a number of bytes from "
		    "4096 to 67108864");
	send_max = (size_t)v;
	v = sb_conf_int(sb_config, "host", "ws_max_per_user", 16, &ok);
	if (!ok || v < 1 || v > 100000)
		fatalx("[host] ws_max_per_user must be a number from 1 to "
		    "100000");
	per_user_max = (unsigned int)v;

	/* Kore numbers workers 1..N and a restarted worker keeps its id. */
	count_workers = worker_count != 0 ? worker_count : cpu_count;
	count_stride = sizeof(uint64_t) + count_workers * sizeof(uint32_t);
	count_stride = (count_stride + 7) & ~(size_t)7;
	len = count_stride * WS_COUNT_SLOTS;
	counts = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		fatalx("ws: cannot map the connection counts: %s", errno_s);
	if (RAND_bytes(count_salt, sizeof(count_salt)) != 1)
		fatalx("RAND_bytes failed");
}

static int
valid_prefix(const char *p)
{
	size_t	i;

	if (p == NULL || *p < 'a' || *p > 'z')
		return (0);
	for (i = 0; p[i] != '\0'; i++) {
		if (i >= WS_PREFIX_MAX)
			return (0);
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= '0' && p[i] <= '9') || p[i] == '_' ||
		    p[i] == '-'))
			return (0);
	}
	return (1);
}

static struct ws_owner *
owner_of(const char *prefix, size_t len)
{
	struct ws_owner	*o;

	TAILQ_FOREACH(o, &owners, list) {
		if (strlen(o->prefix) == len &&
		    strncmp(o->prefix, prefix, len) == 0)
			return (o);
	}
	return (NULL);
}

int
sb_ws_room_stage(struct sb_plugin *p, const char *prefix,
    sb_room_auth_cb authorise, char *err, size_t errlen)
{
	struct ws_owner	*o;

	if (!valid_prefix(prefix) || authorise == NULL) {
		snprintf(err, errlen, "room prefix \"%s\" must be [a-z0-9_-] "
		    "(at most %d, starting with a letter) with an authoriser",
		    prefix != NULL ? prefix : "(null)", WS_PREFIX_MAX);
		return (-1);
	}
	if (strcmp(prefix, "agents") == 0 || strcmp(prefix, "user") == 0) {
		snprintf(err, errlen, "room prefix \"%s\" belongs to the host",
		    prefix);
		return (-1);
	}
	if ((o = owner_of(prefix, strlen(prefix))) != NULL) {
		snprintf(err, errlen, "room prefix \"%s\" is already owned by "
		    "%s", prefix, o->plugin->name);
		return (-1);
	}
	if ((o = calloc(1, sizeof(*o))) == NULL)
		fatalx("calloc");
	o->prefix = sb_strdup(prefix);
	o->authorise = authorise;
	o->plugin = p;
	TAILQ_INSERT_TAIL(&owners, o, list);
	return (0);
}

void
sb_ws_rooms_commit(struct sb_plugin *p)
{
	struct ws_owner	*o;

	TAILQ_FOREACH(o, &owners, list) {
		if (o->plugin == p)
			o->committed = 1;
	}
}

void
sb_ws_rooms_drop(struct sb_plugin *p)
{
	struct ws_owner	*o, *next;

	for (o = TAILQ_FIRST(&owners); o != NULL; o = next) {
		next = TAILQ_NEXT(o, list);
		if (o->plugin != p)
			continue;
		TAILQ_REMOVE(&owners, o, list);
		free(o->prefix);
		free(o);
	}
}

/*
 * "<prefix>" or "<prefix>:<rest>": a prefix like a plugin's, the rest of
 * letters, digits and -_.:@+ (a donor id, a query id, ...).
 */
int
sb_ws_room_valid(const char *room)
{
	const char	*p;
	size_t		 n;
	char		 prefix[WS_PREFIX_MAX + 1];

	if (room == NULL || (n = strlen(room)) == 0 || n > WS_ROOM_MAX)
		return (0);
	n = strcspn(room, ":");
	if (n == 0 || n > WS_PREFIX_MAX)
		return (0);
	memcpy(prefix, room, n);
	prefix[n] = '\0';
	if (!valid_prefix(prefix))
		return (0);
	if (room[n] == '\0')
		return (1);
	if (room[n + 1] == '\0')
		return (0);
	for (p = room + n + 1; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-_.:@+", *p) != NULL))
			return (0);
	}
	return (1);
}

/* ------------------------------------------------------------------------
 * Worker
 */

void
sb_ws_worker_init(void)
{
	unsigned int	i, me;
	uint32_t	*n;

	/* The column of a predecessor with this id counted connections that
	 * died with it. */
	if (counts != NULL && worker != NULL && worker->id >= 1 &&
	    worker->id <= count_workers) {
		me = worker->id - 1;
		for (i = 0; i < WS_COUNT_SLOTS; i++) {
			n = (uint32_t *)(counts + i * count_stride +
			    sizeof(uint64_t)) + me;
			__atomic_store_n(n, 0, __ATOMIC_RELEASE);
		}
	}
	nbuckets = 1024;
	if ((buckets = calloc(nbuckets, sizeof(*buckets))) == NULL)
		fatalx("calloc");
	(void)kore_timer_add(ws_tick, WS_TICK_MS, NULL, 0);
}

static int
header_has(struct http_request *http, const char *name, const char *token)
{
	const char	*v, *p;
	size_t		 len;

	if (!http_request_header(http, name, &v))
		return (0);
	len = strlen(token);
	for (p = v; *p != '\0'; p++) {
		if (strncasecmp(p, token, len) == 0 &&
		    (p == v || p[-1] == ' ' || p[-1] == ',') &&
		    (p[len] == '\0' || p[len] == ' ' || p[len] == ','))
			return (1);
	}
	return (0);
}

/*
 * GET /ws.  Public at the HTTP layer: the gateway authenticates itself,
 * and refuses bad credentials with an error frame after the upgrade
 * (a browser never sees the status of a refused handshake).
 */
static void
ws_route(struct sb_req *req)
{
	struct http_request	*http = req->http;
	struct ws_conn		*wc;
	const char		*v, *token, *key;

	if (!header_has(http, "upgrade", "websocket") ||
	    !header_has(http, "connection", "upgrade") ||
	    !http_request_header(http, "sec-websocket-key", &v)) {
		sb_respond_error(req, 400, "VALIDATION_ERROR", "this is a "
		    "WebSocket endpoint: send an upgrade request", NULL);
		return;
	}
	if (!http_request_header(http, "sec-websocket-version", &v) ||
	    strcmp(v, "13") != 0) {
		sb_resp_header(req, "sec-websocket-version", "13");
		sb_respond_error(req, 400, "VALIDATION_ERROR", "unsupported "
		    "WebSocket version", NULL);
		return;
	}

	if ((wc = calloc(1, sizeof(*wc))) == NULL) {
		sb_respond_error(req, 503, "UNAVAILABLE", "out of memory",
		    NULL);
		return;
	}
	wc->c = http->owner;
	wc->slot = -1;
	wc->since = kore_time_ms();
	wc->tokens = WS_FRAMES_BURST;
	wc->refilled = wc->since;
	TAILQ_INIT(&wc->subs);
	wc->state = WS_PENDING;

	/* Headers (already checked by the request path) beat the query. */
	token = key = NULL;
	if ((key = sb_req_header(req, "x-api-key")) == NULL &&
	    (token = sb_req_header(req, "authorization")) != NULL) {
		token += strncasecmp(token, "Bearer ", 7) == 0 ? 7 : 0;
		while (*token == ' ')
			token++;
	}
	if (key == NULL && token == NULL)
		token = sb_req_query(req, "access_token");
	if (key != NULL || token != NULL)
		(void)ws_authenticate(wc, token, key);

	/* The handle: Kore's to free, ours to empty (sb_ws_ondisconnect). */
	http->owner->hdlr_extra = kore_calloc(1, sizeof(struct ws_conn *));
	*(struct ws_conn **)http->owner->hdlr_extra = wc;
	sb_resp_header(req, "x-request-id", req->id);
	kore_websocket_handshake(http, "sb_ws_onconnect", "sb_ws_onmessage",
	    "sb_ws_ondisconnect");
	/* Kore answered 101 itself. */
	req->responded = 1;
	req->status = 101;
}

/* The connection's ws_conn, NULL once it is disconnected. */
static struct ws_conn *
ws_of(struct connection *c)
{
	if (c->hdlr_extra == NULL)
		return (NULL);
	return (*(struct ws_conn **)c->hdlr_extra);
}

void
sb_ws_onconnect(struct connection *c)
{
	struct ws_conn	*wc = ws_of(c);

	if (wc == NULL) {
		c->flags |= CONN_WS_CLOSE_SENT;
		kore_connection_disconnect(c);
		return;
	}
	wc->connected = 1;
	if (wc->fail_code != NULL) {
		/* Still inside the upgrade request: Kore finishes it with
		 * the connection alive, the tick closes it. */
		ws_error(wc, wc->fail_code, wc->fail_msg, NULL);
		close_frame(c, wc->fail_close, wc->fail_msg);
		wc->state = WS_CLOSING;
		TAILQ_INSERT_TAIL(&closing, wc, list);
		return;
	}
	if (wc->state == WS_READY) {
		TAILQ_INSERT_TAIL(&ready, wc, list);
		ws_ready(wc);
	} else {
		TAILQ_INSERT_TAIL(&pending, wc, list);
	}
}

void
sb_ws_ondisconnect(struct connection *c)
{
	struct ws_conn	*wc = ws_of(c);

	if (wc == NULL)
		return;
	/* WS_GONE: the tick's deferred close already took it off closing
	 * and released what it held. */
	if (wc->state != WS_GONE) {
		if (wc->connected) {
			switch (wc->state) {
			case WS_PENDING:
				TAILQ_REMOVE(&pending, wc, list);
				break;
			case WS_READY:
				TAILQ_REMOVE(&ready, wc, list);
				break;
			case WS_CLOSING:
				TAILQ_REMOVE(&closing, wc, list);
				break;
			case WS_GONE:
				break;
			}
		}
		ws_forget(wc);
		wc->state = WS_GONE;
	}
	*(struct ws_conn **)c->hdlr_extra = NULL;
	TAILQ_INSERT_TAIL(&buried, wc, list);
}

/* Everything a connection holds except its own memory (see ws_tick). */
static void
ws_forget(struct ws_conn *wc)
{
	struct ws_sub	*s;

	while ((s = TAILQ_FIRST(&wc->subs)) != NULL)
		room_leave(s);
	count_release(wc->slot);
	wc->slot = -1;
	free(wc->who_name);
	free(wc->who_role);
	free(wc->who_donor);
	wc->who_name = wc->who_role = wc->who_donor = NULL;
	memset(&wc->who, 0, sizeof(wc->who));
	if (wc->credential != NULL) {
		OPENSSL_cleanse(wc->credential, strlen(wc->credential));
		free(wc->credential);
		wc->credential = NULL;
	}
	free(wc->fail_msg);
	wc->fail_msg = NULL;
}

/* The frame budget: 1 when this frame may be handled. */
static int
frame_allowed(struct ws_conn *wc)
{
	uint64_t	now, earned;

	now = kore_time_ms();
	earned = (now - wc->refilled) * WS_FRAMES_PER_S / 1000;
	if (earned > 0) {
		wc->tokens = wc->tokens + earned > WS_FRAMES_BURST ?
		    WS_FRAMES_BURST : wc->tokens + (unsigned int)earned;
		wc->refilled = now;
	}
	if (wc->tokens > 0) {
		wc->tokens--;
		return (1);
	}
	if (now - wc->limited >= 1000) {
		wc->limited = now;
		ws_error(wc, "RATE_LIMITED", "too many frames: slow down",
		    NULL);
	}
	return (0);
}

void
sb_ws_onmessage(struct connection *c, u_int8_t op, const void *data,
    size_t len)
{
	struct ws_conn	*wc = ws_of(c);
	json_t		*msg;
	json_error_t	 jerr;

	if (wc == NULL || (wc->state != WS_PENDING && wc->state != WS_READY))
		return;
	if (!frame_allowed(wc))
		return;
	if (op != WEBSOCKET_OP_TEXT) {
		if (wc->state == WS_PENDING)
			ws_fail(wc, "UNAUTHENTICATED", "authenticate first",
			    WS_CLOSE_POLICY);
		else
			ws_error(wc, "VALIDATION_ERROR", "frames are JSON "
			    "text", NULL);
		return;
	}
	if (len > WS_FRAME_MAX) {
		if (wc->state == WS_PENDING)
			ws_fail(wc, "UNAUTHENTICATED", "authenticate first",
			    WS_CLOSE_POLICY);
		else
			ws_error(wc, "VALIDATION_ERROR", "frame too large",
			    NULL);
		return;
	}
	msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(msg) ||
	    !json_is_string(json_object_get(msg, "type"))) {
		json_decref(msg);
		if (wc->state == WS_PENDING)
			ws_fail(wc, "UNAUTHENTICATED", "authenticate first: "
			    "{\"type\":\"auth\",\"token\":\"...\"}",
			    WS_CLOSE_POLICY);
		else
			ws_error(wc, "VALIDATION_ERROR", "a frame is a JSON "
			    "object with a string \"type\"", NULL);
		return;
	}
	ws_frame(wc, msg);
	json_decref(msg);
}

/* One well-formed client frame.  wc may be gone when this returns. */
static void
ws_frame(struct ws_conn *wc, json_t *msg)
{
	const char	*type, *room, *token, *key;
	json_t		*t, *k;

	type = json_string_value(json_object_get(msg, "type"));
	if (strcmp(type, "auth") == 0) {
		t = json_object_get(msg, "token");
		k = json_object_get(msg, "api_key");
		token = json_string_value(t);
		key = json_string_value(k);
		if ((token == NULL) == (key == NULL) || (t != NULL &&
		    token == NULL) || (k != NULL && key == NULL)) {
			if (wc->state == WS_PENDING)
				ws_fail(wc, "UNAUTHENTICATED", "an auth frame "
				    "carries a string \"token\" (or "
				    "\"api_key\")", WS_CLOSE_POLICY);
			else
				ws_error(wc, "VALIDATION_ERROR", "an auth "
				    "frame carries a string \"token\" (or "
				    "\"api_key\")", NULL);
			return;
		}
		if (wc->state == WS_PENDING) {
			if (ws_authenticate(wc, token, key) == -1)
				return;
			TAILQ_REMOVE(&pending, wc, list);
			TAILQ_INSERT_TAIL(&ready, wc, list);
		} else if (ws_authenticate(wc, token, key) == -1) {
			return;
		}
		ws_ready(wc);
		return;
	}
	if (wc->state == WS_PENDING) {
		ws_fail(wc, "UNAUTHENTICATED", "authenticate first: "
		    "{\"type\":\"auth\",\"token\":\"...\"}", WS_CLOSE_POLICY);
		return;
	}
	if (strcmp(type, "ping") == 0) {
		ws_send_json(wc, json_pack("{s:s}", "type", "pong"));
		return;
	}
	if (strcmp(type, "subscribe") == 0 ||
	    strcmp(type, "unsubscribe") == 0) {
		room = json_string_value(json_object_get(msg, "room"));
		if (room == NULL) {
			ws_error(wc, "VALIDATION_ERROR", "\"room\" must be a "
			    "string", NULL);
			return;
		}
		if (!sb_ws_room_valid(room)) {
			ws_error(wc, "VALIDATION_ERROR", "invalid room name",
			    room);
			return;
		}
		if (type[0] == 's')
			ws_subscribe(wc, room);
		else
			ws_unsubscribe(wc, room);
		return;
	}
	ws_error(wc, "VALIDATION_ERROR", "unknown frame type: expected auth, "
	    "subscribe, unsubscribe or ping", NULL);
}

/* ------------------------------------------------------------------------
 * Credentials
 */

static void
count_key(const struct sb_principal *p, char *out, size_t len)
{
	switch (p->kind) {
	case SB_ACTOR_USER:
		snprintf(out, len, "u:%lld", (long long)p->id);
		break;
	case SB_ACTOR_API_KEY:
		snprintf(out, len, "k:%lld", (long long)p->id);
		break;
	default:
		snprintf(out, len, "d:%s", p->donor_id != NULL ?
		    p->donor_id : "");
		break;
	}
}

static int
who_is(const struct ws_conn *wc, const struct sb_principal *p)
{
	if (wc->who.kind != p->kind || wc->who.id != p->id)
		return (0);
	if (p->kind != SB_ACTOR_DONOR)
		return (1);
	return (wc->who.donor_id != NULL && p->donor_id != NULL &&
	    strcmp(wc->who.donor_id, p->donor_id) == 0);
}

static char *
dup_or_null(const char *s)
{
	return (s != NULL ? sb_strdup(s) : NULL);
}

/*
 * Authenticate (or, on a ready connection, re-authenticate: the same
 * principal with a fresh token) and count the connection against its
 * user's cap.  -1 after failing the connection.
 */
static int
ws_authenticate(struct ws_conn *wc, const char *token, const char *key)
{
	struct sb_req	 r;
	const char	*why;
	char		 ckey[200];
	int64_t		 exp;
	int		 rc, slot;

	memset(&r, 0, sizeof(r));
	rc = sb_auth_credentials(&r, key != NULL ? NULL : token, key, &exp,
	    &why);
	if (rc == SB_AUTH_DOWN) {
		sb_auth_clear(&r);
		ws_fail(wc, "UNAVAILABLE", "database unavailable",
		    WS_CLOSE_TRY_LATER);
		return (-1);
	}
	if (rc != SB_AUTH_OK) {
		sb_auth_clear(&r);
		ws_fail(wc, "UNAUTHENTICATED", why, WS_CLOSE_POLICY);
		return (-1);
	}
	if (wc->state == WS_READY) {
		if (!who_is(wc, &r.principal)) {
			sb_auth_clear(&r);
			ws_fail(wc, "FORBIDDEN", "a connection cannot change "
			    "who it belongs to", WS_CLOSE_POLICY);
			return (-1);
		}
	} else {
		count_key(&r.principal, ckey, sizeof(ckey));
		if ((slot = count_acquire(ckey)) == -2) {
			sb_auth_clear(&r);
			ws_fail(wc, "RATE_LIMITED", "too many connections for "
			    "this user", WS_CLOSE_TRY_LATER);
			return (-1);
		}
		wc->slot = slot;
		wc->who.kind = r.principal.kind;
		wc->who.id = r.principal.id;
		wc->who.name = wc->who_name = dup_or_null(r.principal.name);
		wc->who.role = wc->who_role = dup_or_null(r.principal.role);
		wc->who.donor_id = wc->who_donor =
		    dup_or_null(r.principal.donor_id);
		wc->state = WS_READY;
	}
	if (wc->credential != NULL) {
		OPENSSL_cleanse(wc->credential, strlen(wc->credential));
		free(wc->credential);
	}
	wc->credential = sb_strdup(key != NULL ? key : token);
	wc->is_key = key != NULL;
	wc->expires = exp;
	sb_auth_clear(&r);
	return (0);
}

/*
 * The connection's credentials again, as the request path would check
 * them now: 0 still good, -1 no longer (revoked, expired, deactivated),
 * -2 the database cannot tell.
 */
static int
ws_recheck(struct ws_conn *wc)
{
	struct sb_req	 r;
	const char	*why;
	int64_t		 exp;
	int		 rc;

	memset(&r, 0, sizeof(r));
	rc = sb_auth_credentials(&r, wc->is_key ? NULL : wc->credential,
	    wc->is_key ? wc->credential : NULL, &exp, &why);
	if (rc == SB_AUTH_OK && !who_is(wc, &r.principal))
		rc = SB_AUTH_INVALID;
	sb_auth_clear(&r);
	if (rc == SB_AUTH_OK) {
		wc->expires = exp;
		return (0);
	}
	return (rc == SB_AUTH_DOWN ? -2 : -1);
}

static const char *
kind_name(enum sb_actor k)
{
	switch (k) {
	case SB_ACTOR_USER:
		return ("user");
	case SB_ACTOR_API_KEY:
		return ("api_key");
	case SB_ACTOR_DONOR:
		return ("donor");
	default:
		return ("anonymous");
	}
}

/* {"type":"ready","user":{...},"worker":N,"node":"..."} */
static void
ws_ready(struct ws_conn *wc)
{
	json_t	*user;

	user = json_pack("{s:s, s:I}", "kind", kind_name(wc->who.kind), "id",
	    (json_int_t)wc->who.id);
	if (wc->who.name != NULL)
		json_object_set_new(user, "name", json_string(wc->who.name));
	if (wc->who.role != NULL)
		json_object_set_new(user, "role", json_string(wc->who.role));
	if (wc->who.donor_id != NULL)
		json_object_set_new(user, "donor_id",
		    json_string(wc->who.donor_id));
	ws_send_json(wc, json_pack("{s:s, s:o, s:i, s:s, s:o}", "type",
	    "ready", "user", user, "worker", worker != NULL ? worker->id : 0,
	    "node", sb_cluster_node(), "expires_at", wc->expires > 0 ?
	    json_integer(wc->expires) : json_null()));
}

/* ------------------------------------------------------------------------
 * Rooms
 */

static void
rooms_grow(void)
{
	struct ws_room	**nb, *r, *next;
	size_t		  i, n, b;

	n = nbuckets * 2;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* longer chains, still correct */
	for (i = 0; i < nbuckets; i++) {
		for (r = buckets[i]; r != NULL; r = next) {
			next = r->next;
			b = r->hash & (n - 1);
			r->next = nb[b];
			nb[b] = r;
		}
	}
	free(buckets);
	buckets = nb;
	nbuckets = n;
}

/* The room named name, created when create is set (else NULL). */
static struct ws_room *
room_get(const char *name, int create)
{
	struct ws_room	*r;
	uint64_t	 h;
	size_t		 len, b;

	if (buckets == NULL)
		return (NULL);
	h = sb_fnv1a64(name);
	for (r = buckets[h & (nbuckets - 1)]; r != NULL; r = r->next) {
		if (r->hash == h && strcmp(r->name, name) == 0)
			return (r);
	}
	if (!create)
		return (NULL);
	if (nrooms >= nbuckets)
		rooms_grow();
	len = strlen(name);
	if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
		fatalx("calloc");
	memcpy(r->name, name, len + 1);
	r->hash = h;
	TAILQ_INIT(&r->members);
	b = h & (nbuckets - 1);
	r->next = buckets[b];
	buckets[b] = r;
	nrooms++;
	return (r);
}

static void
room_free(struct ws_room *r)
{
	struct ws_room	**pp;

	for (pp = &buckets[r->hash & (nbuckets - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	nrooms--;
	free(r);
}

static void
room_leave(struct ws_sub *s)
{
	struct ws_room	*r = s->room;

	TAILQ_REMOVE(&r->members, s, room_list);
	r->nmembers--;
	TAILQ_REMOVE(&s->conn->subs, s, conn_list);
	s->conn->nsubs--;
	free(s);
	if (r->nmembers == 0 && r->busy == 0)
		room_free(r);
}

static struct ws_sub *
sub_find(struct ws_conn *wc, const char *room)
{
	struct ws_sub	*s;

	TAILQ_FOREACH(s, &wc->subs, conn_list) {
		if (strcmp(s->room->name, room) == 0)
			return (s);
	}
	return (NULL);
}

/*
 * May the connection's principal see room?  The host decides "agents"
 * and "user:<id>", the owner of the prefix everything else; a prefix
 * nobody owns is refused.  *why explains a refusal.
 */
static int
ws_allowed(struct ws_conn *wc, const char *room, const char **why)
{
	struct ws_owner	*o;
	size_t		 n;
	char		 id[32];

	*why = "you may not join this room";
	if (strcmp(room, "agents") == 0)
		return (wc->who.kind == SB_ACTOR_USER);
	n = strcspn(room, ":");
	if (n == 4 && strncmp(room, "user", 4) == 0) {
		snprintf(id, sizeof(id), "%lld", (long long)wc->who.id);
		return (wc->who.kind == SB_ACTOR_USER && room[4] == ':' &&
		    strcmp(room + 5, id) == 0);
	}
	if ((o = owner_of(room, n)) == NULL || !o->committed) {
		*why = "no such room";
		return (0);
	}
	if (o->plugin->state != SB_PLUGIN_READY) {
		*why = "the plugin owning this room is not available";
		return (0);
	}
	return (o->authorise(o->plugin, &wc->who, room) == 1);
}

static void
ws_subscribe(struct ws_conn *wc, const char *room)
{
	struct ws_room	*r;
	struct ws_sub	*s;
	const char	*why;
	int		 rc;

	if (sub_find(wc, room) != NULL)
		goto ack;
	if (wc->nsubs >= WS_ROOMS_MAX) {
		ws_error(wc, "VALIDATION_ERROR", "too many rooms on one "
		    "connection (at most 64)", room);
		return;
	}
	/* Credentials revoked or expired since the connection opened stop
	 * here at the latest (see the top of the file). */
	if ((rc = ws_recheck(wc)) == -2) {
		ws_error(wc, "UNAVAILABLE", "database unavailable", room);
		return;
	}
	if (rc == -1) {
		ws_fail(wc, "UNAUTHENTICATED", "credentials revoked or "
		    "expired", WS_CLOSE_POLICY);
		return;
	}
	if (!ws_allowed(wc, room, &why)) {
		ws_error(wc, "FORBIDDEN", why, room);
		return;
	}
	/* The checks ran the database and a plugin's authoriser: a
	 * connection closed meanwhile joins nothing. */
	if (wc->state != WS_READY)
		return;
	r = room_get(room, 1);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatalx("calloc");
	s->room = r;
	s->conn = wc;
	TAILQ_INSERT_TAIL(&r->members, s, room_list);
	r->nmembers++;
	TAILQ_INSERT_TAIL(&wc->subs, s, conn_list);
	wc->nsubs++;
ack:
	ws_send_json(wc, json_pack("{s:s, s:s}", "type", "subscribed", "room",
	    room));
}

static void
ws_unsubscribe(struct ws_conn *wc, const char *room)
{
	struct ws_sub	*s;

	if ((s = sub_find(wc, room)) != NULL)
		room_leave(s);
	ws_send_json(wc, json_pack("{s:s, s:s}", "type", "unsubscribed",
	    "room", room));
}

/*
 * Every event, in every worker (bus.c).  Events of a room go to the
 * room's subscribers here; session and key changes re-check the
 * credentials of the connections they concern.
 */
void
sb_ws_deliver(const struct sb_event *ev)
{
	struct ws_room	*r;
	struct ws_sub	*s, *next;
	struct ws_frame	*f;
	json_t		*o;
	char		*text;

	if (!sb_is_worker || buckets == NULL)
		return;
	ws_revocation(ev);
	if (ev->room == NULL || (r = room_get(ev->room, 0)) == NULL)
		return;

	o = json_pack("{s:s, s:s, s:s, s:O, s:s, s:i, s:I}", "type", "event",
	    "room", ev->room, "event", ev->name, "data", ev->data, "id",
	    ev->id, "version", ev->version, "published_at",
	    (json_int_t)ev->published_at);
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text == NULL)
		return;
	f = frame_new(WEBSOCKET_OP_TEXT, text, strlen(text));
	free(text);

	/* A slow consumer disconnected on the way leaves the room under
	 * our feet: keep the room, step with a saved next. */
	r->busy++;
	for (s = TAILQ_FIRST(&r->members); s != NULL; s = next) {
		next = TAILQ_NEXT(s, room_list);
		if (s->conn->state == WS_READY)
			ws_send_frame(s->conn, f);
	}
	r->busy--;
	if (r->nmembers == 0 && r->busy == 0)
		room_free(r);
	frame_put(f);
}

/* "user:<id>" / "api_key:<id>" of the events that revoke credentials. */
static void
ws_revocation(const struct sb_event *ev)
{
	static const char *const names[] = {
		"auth.logout", "auth.refresh.reused", "auth.password.changed",
		"users.deactivated", "users.updated", "api_keys.revoked", NULL
	};
	struct ws_conn	*wc, *next;
	const char	*target;
	enum sb_actor	 kind;
	char		*end;
	long long	 id;
	int		 i, rc;

	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(ev->name, names[i]) == 0)
			break;
	}
	if (names[i] == NULL || (target = json_string_value(
	    json_object_get(ev->data, "target"))) == NULL)
		return;
	if (strncmp(target, "user:", 5) == 0) {
		kind = SB_ACTOR_USER;
		target += 5;
	} else if (strncmp(target, "api_key:", 8) == 0) {
		kind = SB_ACTOR_API_KEY;
		target += 8;
	} else {
		return;
	}
	id = strtoll(target, &end, 10);
	if (*end != '\0' || id <= 0)
		return;
	for (wc = TAILQ_FIRST(&ready); wc != NULL; wc = next) {
		next = TAILQ_NEXT(wc, list);
		if (wc->who.kind != kind || wc->who.id != id)
			continue;
		if ((rc = ws_recheck(wc)) == -1)
			ws_fail(wc, "UNAUTHENTICATED", "credentials revoked",
			    WS_CLOSE_POLICY);
	}
}

/* ------------------------------------------------------------------------
 * Frames out
 */

static struct ws_frame *
frame_new(u_int8_t op, const void *payload, size_t len)
{
	struct ws_frame	*f;
	size_t		 hdr, i;

	hdr = len <= 125 ? 2 : len <= 65535 ? 4 : 10;
	if ((f = malloc(sizeof(*f) + hdr + len)) == NULL)
		fatalx("malloc");
	f->refs = 1;
	f->len = hdr + len;
	f->data[0] = 0x80 | op;		/* FIN, unmasked from a server */
	if (hdr == 2) {
		f->data[1] = (u_int8_t)len;
	} else if (hdr == 4) {
		f->data[1] = 126;
		f->data[2] = (u_int8_t)(len >> 8);
		f->data[3] = (u_int8_t)len;
	} else {
		f->data[1] = 127;
		for (i = 0; i < 8; i++)
			f->data[2 + i] = (u_int8_t)((uint64_t)len >>
			    (56 - 8 * i));
	}
	if (len > 0)
		memcpy(f->data + hdr, payload, len);
	return (f);
}

static void
frame_put(struct ws_frame *f)
{
	if (--f->refs == 0)
		free(f);
}

/* Kore is done with a netbuf holding a shared frame. */
static int
frame_release(struct netbuf *nb)
{
	frame_put(nb->extra);
	return (0);
}

/* Bytes queued for c that the kernel has not taken yet, up to limit+1. */
static size_t
backlog(struct connection *c, size_t limit)
{
	struct netbuf	*nb;
	size_t		 n;

	n = 0;
	TAILQ_FOREACH(nb, &c->send_queue, list) {
		n += nb->b_len - nb->s_off;
		if (n > limit)
			break;
	}
	return (n);
}

/*
 * A client that does not read: drop what it has not started to receive,
 * say why if the socket still takes it, and close.
 */
static void
slow_consumer(struct ws_conn *wc, size_t queued)
{
	struct connection	*c = wc->c;
	struct netbuf		*nb, *next;
	char			 ckey[200];

	count_key(&wc->who, ckey, sizeof(ckey));
	sb_log(SB_LOG_WARN, "ws", "slow consumer disconnected: %s, %zu bytes "
	    "unsent (ws_send_buffer %zu)", ckey, queued, send_max);
	for (nb = TAILQ_FIRST(&c->send_queue); nb != NULL; nb = next) {
		next = TAILQ_NEXT(nb, list);
		if (nb->s_off == 0 && nb != TAILQ_FIRST(&c->send_queue))
			net_remove_netbuf(c, nb);
	}
	ws_close(wc, WS_CLOSE_POLICY, "slow consumer");
}

static void
ws_send_frame(struct ws_conn *wc, struct ws_frame *f)
{
	struct connection	*c = wc->c;
	struct netbuf		*nb;
	size_t			 queued;

	if (c->state != CONN_STATE_ESTABLISHED ||
	    (c->flags & CONN_WS_CLOSE_SENT))
		return;
	if (!TAILQ_EMPTY(&c->send_queue) &&
	    (queued = backlog(c, send_max)) > send_max) {
		slow_consumer(wc, queued);
		return;
	}
	f->refs++;
	net_send_stream(c, f->data, f->len, frame_release, &nb);
	nb->extra = f;
	(void)net_send_flush(c);
}

/* o is stolen. */
static void
ws_send_json(struct ws_conn *wc, json_t *o)
{
	struct ws_frame	*f;
	char		*text;

	if (o == NULL)
		return;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		return;
	f = frame_new(WEBSOCKET_OP_TEXT, text, strlen(text));
	free(text);
	ws_send_frame(wc, f);
	frame_put(f);
}

/* {"type":"error","code":...,"message":...[,"room":...]} */
static void
ws_error(struct ws_conn *wc, const char *code, const char *message,
    const char *room)
{
	json_t	*o;

	o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code,
	    "message", message);
	if (o != NULL && room != NULL)
		json_object_set_new(o, "room", json_string(room));
	ws_send_json(wc, o);
}

/* A close frame with a status code and a reason (at most 123 bytes). */
static void
close_frame(struct connection *c, int code, const char *reason)
{
	u_int8_t	payload[125];
	size_t		len;

	if ((c->flags & CONN_WS_CLOSE_SENT) ||
	    c->state != CONN_STATE_ESTABLISHED)
		return;
	payload[0] = (u_int8_t)(code >> 8);
	payload[1] = (u_int8_t)code;
	len = strlen(reason);
	if (len > sizeof(payload) - 2)
		len = sizeof(payload) - 2;
	memcpy(payload + 2, reason, len);
	c->flags |= CONN_WS_CLOSE_SENT;
	kore_websocket_send(c, WEBSOCKET_OP_CLOSE, payload, len + 2);
}

/*
 * Close a connected client now: a close frame, then Kore's disconnect,
 * which calls sb_ws_ondisconnect(): everything wc held is released when
 * this returns (its memory stays until Kore prunes the connection).
 */
static void
ws_close(struct ws_conn *wc, int code, const char *reason)
{
	struct connection	*c = wc->c;

	if (wc->state != WS_PENDING && wc->state != WS_READY)
		return;
	close_frame(c, code, reason);
	c->evt.flags &= ~KORE_EVENT_READ;
	kore_connection_disconnect(c);
}

/*
 * Refuse the connection: an error frame and a close.  Before the upgrade
 * (onconnect not run yet) it is remembered and sent by onconnect.
 */
static void
ws_fail(struct ws_conn *wc, const char *code, const char *message,
    int close_code)
{
	if (!wc->connected) {
		wc->fail_code = code;
		free(wc->fail_msg);
		wc->fail_msg = sb_strdup(message);
		wc->fail_close = close_code;
		return;
	}
	ws_error(wc, code, message, NULL);
	ws_close(wc, close_code, message);
}

/* ------------------------------------------------------------------------
 * Housekeeping: the 5 s authentication deadline, deferred closes, token
 * expiry.
 */

static void
ws_tick(void *arg, u_int64_t now)
{
	struct ws_conn	*wc, *next;
	time_t		 t;

	(void)arg;
	/* Nobody up the stack holds these any more. */
	while ((wc = TAILQ_FIRST(&buried)) != NULL) {
		TAILQ_REMOVE(&buried, wc, list);
		free(wc);
	}
	while ((wc = TAILQ_FIRST(&closing)) != NULL) {
		TAILQ_REMOVE(&closing, wc, list);
		wc->state = WS_GONE;
		ws_forget(wc);
		kore_connection_disconnect(wc->c);
	}
	while ((wc = TAILQ_FIRST(&pending)) != NULL &&
	    now - wc->since >= WS_AUTH_DEADLINE_MS)
		ws_fail(wc, "UNAUTHENTICATED", "authentication timeout",
		    WS_CLOSE_POLICY);

	if (++ticks % WS_SWEEP_TICKS != 0)
		return;
	t = time(NULL);
	for (wc = TAILQ_FIRST(&ready); wc != NULL; wc = next) {
		next = TAILQ_NEXT(wc, list);
		if (wc->expires > 0 && wc->expires <= t)
			ws_fail(wc, "UNAUTHENTICATED", "token expired: send a "
			    "fresh one ({\"type\":\"auth\"}) before it "
			    "expires", WS_CLOSE_POLICY);
	}
}

/* ------------------------------------------------------------------------
 * Per-user connection counts, node-wide (see the top of the file).
 */

static uint64_t *
slot_fp(size_t i)
{
	return ((uint64_t *)(counts + i * count_stride));
}

static uint32_t *
slot_count(size_t i, unsigned int w)
{
	return ((uint32_t *)(counts + i * count_stride + sizeof(uint64_t)) +
	    w);
}

static uint64_t
slot_total(size_t i)
{
	uint64_t	total;
	unsigned int	w;

	total = 0;
	for (w = 0; w < count_workers; w++)
		total += __atomic_load_n(slot_count(i, w), __ATOMIC_ACQUIRE);
	return (total);
}

/* Keyed with a per-start salt: nobody aims a key at another's slot. */
static uint64_t
fingerprint(const char *key)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen;
	EVP_MD_CTX	*ctx;
	uint64_t	 fp;

	fp = 0;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, count_salt, sizeof(count_salt)) == 1 &&
	    EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1)
		memcpy(&fp, md, sizeof(fp));
	EVP_MD_CTX_free(ctx);
	return (fp | 1);	/* 0 marks a never used slot */
}

/* The slot of fp, claiming a free one (unused, or all counts 0). */
static long
slot_for(uint64_t fp)
{
	uint64_t	cur;
	size_t		i, k, start;
	long		candidate;

	start = (size_t)(fp >> 17) % WS_COUNT_SLOTS;
	candidate = -1;
	cur = 0;
	for (k = 0; k < WS_COUNT_PROBE; k++) {
		i = (start + k) % WS_COUNT_SLOTS;
		if (__atomic_load_n(slot_fp(i), __ATOMIC_ACQUIRE) == fp)
			return ((long)i);
	}
	for (k = 0; k < WS_COUNT_PROBE && candidate == -1; k++) {
		i = (start + k) % WS_COUNT_SLOTS;
		cur = __atomic_load_n(slot_fp(i), __ATOMIC_ACQUIRE);
		if (cur == 0 || slot_total(i) == 0)
			candidate = (long)i;
	}
	if (candidate == -1)
		return (-1);
	if (__atomic_compare_exchange_n(slot_fp((size_t)candidate), &cur, fp,
	    0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) || cur == fp)
		return (candidate);
	return (-1);
}

/*
 * Count one connection of key: its slot, -1 when the table has no room
 * (counted nowhere: the cap fails open, like the rate limits), -2 over
 * the cap (nothing counted).  Counting first and checking after means
 * racing workers may both refuse at the cap, never both admit past it.
 */
static int
count_acquire(const char *key)
{
	uint64_t	 fp;
	uint32_t	*n;
	long		 i;
	int		 tries;

	if (counts == NULL || worker == NULL || worker->id < 1 ||
	    worker->id > count_workers)
		return (-1);
	fp = fingerprint(key);
	for (tries = 0; tries < 4; tries++) {
		if ((i = slot_for(fp)) == -1)
			continue;
		n = slot_count((size_t)i, worker->id - 1);
		__atomic_add_fetch(n, 1, __ATOMIC_ACQ_REL);
		/* Reclaimed for another key in between: undo, look again. */
		if (__atomic_load_n(slot_fp((size_t)i), __ATOMIC_ACQUIRE) !=
		    fp) {
			__atomic_sub_fetch(n, 1, __ATOMIC_ACQ_REL);
			continue;
		}
		if (slot_total((size_t)i) > per_user_max) {
			__atomic_sub_fetch(n, 1, __ATOMIC_ACQ_REL);
			return (-2);
		}
		return ((int)i);
	}
	sb_log(SB_LOG_WARN, "ws", "connection count table full: the "
	    "per-user cap is not enforced for this connection");
	return (-1);
}

static void
count_release(int slot)
{
	uint32_t	*n;

	if (slot < 0 || counts == NULL || worker == NULL)
		return;
	n = slot_count((size_t)slot, worker->id - 1);
	if (__atomic_load_n(n, __ATOMIC_ACQUIRE) > 0)
		__atomic_sub_fetch(n, 1, __ATOMIC_ACQ_REL);
}
