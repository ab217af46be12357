/*
 * Switchboard plugin ABI.
 *
 * This header is the whole contract between the Switchboard host and a
 * plugin.  A plugin includes it (and jansson), builds with
 * `pkg-config --cflags switchboard`, and never links against host or Kore
 * symbols: everything it may call reaches it through the host-API table
 * handed to setup().
 *
 * Lifecycle, by process:
 *   parent  dlopen(RTLD_NOW|RTLD_LOCAL) -> sb_plugin_entry() -> ABI checks
 *           -> setup(p, api): declare routes, permissions, events, config
 *              keys, migrations, seccomp allowances, console panels.
 *              No I/O but reading configuration.  Runs before the
 *              workers fork, so every declaration is inherited by every
 *              worker.
 *   parent  host applies the plugin's migrations (advisory lock, checksums).
 *   worker  init(p): per-worker runtime state.  The worker is already
 *           chrooted, unprivileged and inside the seccomp sandbox.
 *   worker  route handlers, event callbacks, health().
 *   worker  fini(p) on orderly shutdown.
 *
 * Threads: every slot is called on the worker's (or parent's) single event
 * loop thread unless its comment says otherwise.
 *
 * Ownership: everything passed to a plugin is borrowed for the duration of
 * the call unless the slot says "stolen" (the callee takes the reference) or
 * "caller frees with X".
 *
 * Versioning: SB_ABI_MAJOR must match exactly.  A plugin built against a
 * newer minor than the host is refused.  Structs only grow at the end (into
 * their spare slots or past them), and every struct carries its size so the
 * other side can tell which fields exist.  Use SB_API_HAS() before calling a
 * host-API slot added after the minor you require.
 */

#ifndef SWITCHBOARD_PLUGIN_H
#define SWITCHBOARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#include <jansson.h>

#if defined(__cplusplus)
extern "C" {
#endif

#define SB_ABI_MAJOR		1
#define SB_ABI_MINOR		3	/* 1.1: SB_ROUTE_DONOR, "a.b|c.d", seal, req_body, mail_send
					 * 1.2: console_panel_add, desc.stats
					 * 1.3: services, privacy hooks, sealed v2 with
					 *      key ids, blind_index, reseal, phone_e164,
					 *      list_parse/list_respond, retention_add,
					 *      privacy_erase_all, req_parts, respond_file,
					 *      SB_ROUTE_SIGNED, signed_url, req_signed, dir_open,
					 *      SB_ROUTE_WEBHOOK,
					 *      host_setting,
					 *      desc.privacy_export/erase, desc.rekey */

/* The one symbol a plugin exports. */
#define SB_PLUGIN_ENTRY_SYMBOL	"sb_plugin_entry"

#if defined(__GNUC__)
#define SB_EXPORT		__attribute__((visibility("default")))
#define SB_PRINTF(a, b)		__attribute__((format(printf, a, b)))
#else
#define SB_EXPORT
#define SB_PRINTF(a, b)
#endif

/* Opaque handles: owned by the host, never freed by a plugin. */
struct sb_plugin;	/* one per loaded plugin: the plugin's context */
struct sb_req;		/* one HTTP request being handled */
struct sb_db_res;	/* a database result: free with api->db_free() */

/* Return values of setup(), init(), health() and the declaration slots. */
#define SB_OK			0
#define SB_ERROR		-1

/* Log levels for api->log(). */
enum sb_log_level {
	SB_LOG_DEBUG = 0,
	SB_LOG_INFO,
	SB_LOG_WARN,
	SB_LOG_ERROR
};

/*
 * Declarative request-body validation.  A route's `body` points at an
 * array of fields terminated by an entry whose name is NULL.  The host
 * parses the body, checks it against the table and answers 400/422 with
 * field-level errors in the error envelope before the handler runs; a
 * handler only ever sees a body that passed.  Unknown fields are ignored.
 */
enum sb_type {
	SB_T_STRING = 1,
	SB_T_INT,		/* JSON integer within [min, max] when SB_F_RANGE */
	SB_T_NUMBER,		/* integer or real */
	SB_T_BOOL,
	SB_T_OBJECT,
	SB_T_ARRAY,		/* items of item_type when item_type != 0 */
	SB_T_ANY
};

#define SB_F_REQUIRED		0x0001	/* must be present */
#define SB_F_NULLABLE		0x0002	/* JSON null is accepted */
#define SB_F_RANGE		0x0004	/* apply min/max to an SB_T_INT/NUMBER */
#define SB_F_NONEMPTY		0x0008	/* string not only whitespace / array not empty */

struct sb_field {
	const char		*name;
	enum sb_type		type;
	unsigned int		flags;
	size_t			min_len;	/* strings: characters (UTF-8) */
	size_t			max_len;	/* strings, arrays; 0 = no limit */
	long long		min;		/* with SB_F_RANGE */
	long long		max;		/* with SB_F_RANGE */
	const char *const	*choices;	/* enum: NULL-terminated strings */
	const char		*format;	/* "email", "date-time", "uri" or NULL */
	enum sb_type		item_type;	/* SB_T_ARRAY items; 0 = any */
	const char		*description;	/* OpenAPI */
};

#define SB_FIELD_END		{ .name = NULL }

/*
 * Routes.  `path` is an absolute path with `{name}` segments, e.g.
 * "/api/v1/example/{id}".  Every route states who may call it: a
 * permission name, or exactly one of SB_ROUTE_PUBLIC, SB_ROUTE_STAFF,
 * SB_ROUTE_AUTHENTICATED, SB_ROUTE_DONOR in flags.  A route with none (or more than one)
 * is refused at registration.  A permission may name alternatives,
 * "queries.manage|system.read": holding any one of them is enough.  Finer
 * rules (a donor may read only its own query) are the handler's, using
 * req_principal().
 *
 * handler: called in a worker for a matching, authorised and validated
 * request.  It must answer through api->respond_json/respond_error/
 * respond_raw exactly once before returning; a handler that returns
 * without answering gets a 500 INTERNAL and a log line naming it.
 */
#define SB_ROUTE_PUBLIC		0x0001	/* anyone, no credentials needed */
#define SB_ROUTE_STAFF		0x0002	/* any signed-in staff user */
#define SB_ROUTE_AUTHENTICATED	0x0004	/* any valid credentials: staff,
					 * donor or API key */
#define SB_ROUTE_DONOR		0x0008	/* a donor token only (ABI 1.1) */
/*
 * With a permission, on a GET route (ABI 1.3): a URL made by this
 * plugin's api->signed_url() for exactly the request's path also admits
 * the caller, credentials or not (a browser's <img>/<audio>, a provider
 * fetching a file).  An expired or altered signature is 403.  The
 * handler sees an anonymous principal and req_signed() true.
 */
#define SB_ROUTE_SIGNED		0x0010
/*
 * The path carries a secret (ABI 1.3), e.g. a webhook's unguessable
 * token ("/api/v1/webhooks/exotel/{token}/sms"): the access log writes
 * the route's pattern instead of the request's path.
 */
#define SB_ROUTE_SECRET_PATH	0x0020
/*
 * A provider's webhook (ABI 1.3), with SB_ROUTE_PUBLIC: the handler
 * verifies its caller (a signature over the body, a path token) before
 * it reads anything.  The host's general per-caller budget, which counts
 * an anonymous caller by its address, does not apply: a provider sends
 * from a few addresses, and its retries after a 429 only delay its
 * news.  The route's own `rate`, when it has one, still does.
 */
#define SB_ROUTE_WEBHOOK	0x0040

/*
 * A request budget: at most `requests` in any `seconds`-long window.  A
 * route's rate applies per caller (user, API key, donor; the client
 * address when anonymous), on top of the host's general per-caller limit,
 * shared by all workers of the node.  Over budget: 429 RATE_LIMITED with
 * Retry-After, before the handler runs.
 */
struct sb_rate {
	unsigned int		requests;	/* 0: no route-specific limit */
	unsigned int		seconds;
};

struct sb_route {
	const char		*method;	/* "GET", "POST", ... */
	const char		*path;
	const char		*permission;	/* or NULL with an access flag */
	unsigned int		flags;
	void			(*handler)(struct sb_req *);
	const char		*summary;	/* OpenAPI */
	const struct sb_field	*body;		/* NULL: no JSON body expected */
	const char		*response_schema; /* JSON Schema text or NULL */
	size_t			body_max;	/* bytes; 0 = host default */
	struct sb_rate		rate;		/* per-caller budget; {0} = none */
	void			*spare[4];
};

#define SB_ROUTE_END		{ .method = NULL }

/* Configuration keys a plugin reads from its [plugin <name>] section. */
#define SB_CONF_SECRET		0x0001	/* never logged or shown by the API */
#define SB_CONF_REQUIRED	0x0002	/* setup fails if it has no value */

struct sb_config_key {
	const char		*key;
	const char		*default_value;	/* NULL: no default */
	unsigned int		flags;
	const char		*description;
};

#define SB_CONFIG_END		{ .key = NULL }

/*
 * An event on the bus.  Borrowed by subscribers for the callback only.
 * When an event is published while a request is handled, the host fills
 * in who caused it (actor, request_id, ip); otherwise actor is the system
 * and request_id / ip are NULL.
 */
struct sb_principal;

struct sb_event {
	const char		*name;		/* "concierge.message.created" */
	const char		*id;		/* unique event id */
	int			version;	/* payload schema version */
	const char		*source;	/* id of the publishing plugin or "host" */
	json_t			*data;		/* payload object */
	int64_t			published_at;	/* unix ms */
	const struct sb_principal *actor;	/* never NULL */
	const char		*request_id;	/* or NULL */
	const char		*ip;		/* client address or NULL */
	/* 1 only in the worker that published the event, across every node:
	 * a subscriber that must act once per event (audit, outbox) acts
	 * when local is set. */
	int			local;
	/* The WebSocket room the event was published to ("query:42"), or
	 * NULL for events that no client sees. */
	const char		*room;
	void			*spare[3];
};

/*
 * Event subscriber: called in every worker once per matching event.
 * Must not block (no network, no long queries).
 */
typedef void (*sb_event_cb)(struct sb_plugin *, const struct sb_event *,
    void *arg);

/*
 * Outbound HTTP (asynchronous, on Kore's curl integration).  Everything in
 * the request is copied by http_send(); the callback runs exactly once,
 * later, on the worker's event loop (never inside http_send()), with a
 * response that is borrowed for the callback only.  TLS peers are
 * verified.  Each upstream (by default the URL's scheme://host:port) has
 * a circuit breaker: after repeated failures calls fail fast with
 * error "circuit open" until a cool-down passes and a trial call
 * succeeds.
 */
struct sb_http_header {
	const char		*name;
	const char		*value;
};

struct sb_http_request {
	const char		*method;	/* "GET", "POST", ... */
	const char		*url;		/* http:// or https:// */
	const struct sb_http_header *headers;
	size_t			nheaders;
	const void		*body;
	size_t			body_len;
	unsigned int		timeout_ms;	/* whole exchange; 0: 10 s */
	unsigned int		connect_timeout_ms; /* 0: 3 s */
	const char		*upstream;	/* breaker name; NULL: the URL's origin */
	size_t			max_response;	/* bytes; 0: 4 MiB */
	const struct sb_http_io	*io;		/* ABI 1.3; NULL: none */
	void			*spare[3];
};

/*
 * More of a request (ABI 1.3), through sb_http_request.io; copied by
 * http_send() like the rest.  aws_sigv4: libcurl signs the request with
 * AWS Signature Version 4 ("aws:amz:<region>:<service>", e.g.
 * "aws:amz:us-east-1:s3") using username (access key) and password
 * (secret key); S3 wants an x-amz-content-sha256 header, which the
 * caller sends (the body's SHA-256, or UNSIGNED-PAYLOAD) and which is
 * signed with the rest.  body_fd >= 0: the body is body_len bytes of
 * that file from body_offset, read with pread as the transfer takes them
 * (request.body must be NULL).  response_fd >= 0: the response body is
 * written there (at the descriptor's file position) instead of memory,
 * at most response_max bytes (0: no limit), and the response's body is
 * empty.  http_send dups the descriptors (the caller may close its own
 * at once) and closes its copies when the call ends.  A sized struct:
 * set size to sizeof(struct sb_http_io) and unused descriptors to -1.
 */
struct sb_http_io {
	size_t			size;		/* sizeof(struct sb_http_io) */
	const char		*aws_sigv4;	/* NULL: not signed */
	const char		*username;	/* with aws_sigv4: the access key */
	const char		*password;	/* with aws_sigv4: the secret key */
	int			body_fd;	/* -1: request.body/body_len */
	uint64_t		body_offset;
	uint64_t		body_len;
	int			response_fd;	/* -1: the body in memory */
	uint64_t		response_max;	/* into response_fd; 0: no limit */
	void			*spare[6];
};

struct sb_http_response {
	int			status;		/* 0: no HTTP response (see error) */
	const char		*error;		/* transport error or "circuit open"; NULL with a response */
	const void		*body;		/* NUL-terminated for convenience */
	size_t			body_len;
	unsigned int		retry_after;	/* parsed Retry-After seconds, or 0 */
	unsigned int		elapsed_ms;
	void			*spare[4];
};

typedef void (*sb_http_cb)(struct sb_plugin *, const struct sb_http_response *,
    void *arg);

/*
 * Outbound mail (ABI 1.1): one message over SMTP, asynchronous like
 * http_send: the transfer runs on a host thread (libcurl's SMTP blocks
 * where its HTTP does not) and the callback runs exactly once, later, on
 * the worker's event loop, never inside mail_send.  Everything is copied.  `message`
 * is the complete RFC 5322 message (headers, blank line, body) with CRLF
 * line ends; the host does not rewrite it.  smtp:// with `starttls` set
 * requires STARTTLS (the transfer fails if the server does not offer
 * it); smtps:// is TLS from the start.  TLS peers are verified against
 * the host's CA bundle.
 */
struct sb_mail {
	const char		*url;		/* smtp://host:port or smtps://host:port */
	int			starttls;	/* 1: require STARTTLS on smtp:// */
	const char		*username;	/* NULL: no AUTH */
	const char		*password;
	const char		*from;		/* envelope sender (MAIL FROM) */
	const char *const	*to;		/* envelope recipients (RCPT TO) */
	size_t			nto;		/* 1..100 */
	const char		*message;	/* RFC 5322, CRLF */
	size_t			message_len;
	unsigned int		timeout_ms;	/* whole exchange; 0: 30 s */
	void			*spare[4];
};

struct sb_mail_result {
	int			ok;		/* 1: the server accepted the message */
	long			smtp_code;	/* last SMTP reply code, 0 if none */
	const char		*error;		/* NULL when ok */
	unsigned int		elapsed_ms;
	void			*spare[4];
};

typedef void (*sb_mail_cb)(struct sb_plugin *, const struct sb_mail_result *,
    void *arg);

/*
 * Durable jobs, in PostgreSQL.  A job kind is registered in setup(); a
 * job is enqueued in the caller's transaction when one is open (so it
 * exists if and only if the change that caused it committed), claimed by
 * exactly one worker of one node, run by the kind's run(), and finished
 * with job_done, job_retry or job_fail.  A worker that dies mid-job loses
 * its lease and the job runs again: make the work idempotent with
 * job_key() (send it upstream as an Idempotency-Key).
 */
struct sb_job;		/* a claimed job: valid until it is finished */

struct sb_job_kind {
	const char		*name;		/* "<plugin>.<what>", unique */
	void			(*run)(struct sb_job *);	/* worker */
	unsigned int		max_attempts;	/* 0: 8; then dead-letter */
	unsigned int		timeout_s;	/* lease; 0: 60 */
	unsigned int		backoff_s;	/* first retry delay; 0: 2 */
	unsigned int		interval_s;	/* >0: periodic, once per cluster per interval */
	void			*spare[4];
};

struct sb_job_opts {
	int			priority;	/* higher first; default 0 */
	int64_t			delay_ms;	/* run no earlier than now + delay */
	const char		*idempotency_key; /* same key, same job: never runs twice */
	unsigned int		max_attempts;	/* 0: the kind's */
	void			*spare[4];
};

/*
 * Web-console panels (ABI 1.2).  A panel is a navigation entry in the
 * console plus an ES module the console imports when the entry is chosen
 * (docs/PLUGINS.md, "Console panels", has the module's contract).  The
 * host reads every file of `dir` into memory before the workers fork and
 * serves it at /plugins/<plugin name>/<path inside dir>, like the
 * console's own assets; GET /api/v1/console/panels lists the panels the
 * caller may see.  Everything is copied: the struct may live on the stack.
 */
struct sb_console_panel {
	size_t			size;		/* sizeof(struct sb_console_panel) */
	const char		*id;		/* [a-z][a-z0-9-]{0,31}, unique in the plugin */
	const char		*label;		/* navigation text, 1..40 bytes of UTF-8 */
	const char		*dir;		/* static files: relative to the plugin's
						 * source dir (like migrations_add) or absolute */
	const char		*script;	/* the module, a file inside dir: "panel.js",
						 * "js/panel.mjs"; no "..", no leading "/" */
	const char		*permission;	/* NULL: every staff user; else only holders
						 * see the entry (registered by the end of
						 * setup(); "a.b|c.d" allowed) */
	void			*spare[4];
};

/*
 * WebSocket rooms.  A plugin owns a room prefix ("query" owns "query:42")
 * and decides who may subscribe: the authoriser returns 1 to allow.  The
 * host owns "agents" (all staff) and "user" ("user:7": that user).
 * Called in the worker holding the connection, once per subscribe (not
 * per event); the principal and room are borrowed for the call.  It may
 * run a short indexed query and must not block otherwise.
 */
typedef int (*sb_room_auth_cb)(struct sb_plugin *, const struct sb_principal *,
    const char *room);

/*
 * Services between plugins (ABI 1.3).  A plugin exports a table of
 * functions under a name in setup(); another plugin imports it by name
 * and minimum version in its own setup() and gets the pointer once that
 * setup() has returned successfully (never during it).  Model: Redis
 * modules' ExportSharedAPI/GetSharedAPI, with this ABI's size field.
 *
 * Every service table starts with struct sb_service.  A table only grows
 * at its end; a change that cannot be made by growing is a new name.  An
 * exporter bumps `version` when it adds slots, and an importer that
 * needs a slot added later checks SB_SERVICE_HAS().
 *
 * The name is "<exporting plugin's name>.<what>" ([a-z][a-z0-9_]* on
 * both sides, at most 64 bytes): "concierge.thread",
 * "customers.directory".  The table is borrowed for the life of the
 * process (a static const), as are its functions.
 *
 * The importer must list the exporter's id in its descriptor's `depends`,
 * so the exporter is set up first.  A service that is not exported, or
 * older than min_version, fails the importer's setup with a message that
 * says which; the host and every other plugin keep serving.
 *
 * Calls: on the caller's worker, on the worker's one database connection,
 * so inside the caller's transaction when one is open.  A service
 * function must therefore never begin, commit or roll back a transaction
 * itself, and never block.  Its first argument is the calling plugin
 * (for logging); the exporter uses its own handle, kept from setup(),
 * for everything it asks of the host.  Ownership is stated per slot in
 * the service's header (include/switchboard/services/).
 */
struct sb_service {
	uint32_t		size;		/* sizeof the exporter's table */
	uint32_t		version;	/* >= 1 */
};

#define SB_SERVICE_HAS(svc, type, f)					\
	(offsetof(type, f) < (svc)->hdr.size && (svc)->f != NULL)

/*
 * The person a privacy request is about (ABI 1.3).  Exactly one kind;
 * value is the customer id as decimal text, the donor id, or the phone
 * number in E.164 (already normalised by the host).
 */
enum sb_subject_kind {
	SB_SUBJECT_CUSTOMER = 1,
	SB_SUBJECT_DONOR,
	SB_SUBJECT_PHONE
};

struct sb_subject {
	size_t			size;		/* sizeof(struct sb_subject) */
	enum sb_subject_kind	kind;
	const char		*value;
	void			*spare[4];
};

/*
 * A list request (ABI 1.3): API.md's `?limit=&cursor=` convention.
 * list_parse() fills it from the query string; the plugin selects
 * limit + 1 rows after the cursor, newest first, and hands the result to
 * list_respond(), which answers {data, next_cursor}.
 */
#define SB_LIST_ID_CURSOR	0x0001	/* the cursor is a positive bigint
					 * (keyset on id): anything else is
					 * 400 before the plugin binds it */

struct sb_list {
	size_t			size;		/* sizeof(struct sb_list) */
	long long		limit;		/* 1..200; 50 when absent */
	const char		*cursor;	/* NULL: the first page.  Borrowed
						 * from the request */
	char			limit_plus_one[24]; /* limit + 1 as text, to bind */
	void			*spare[4];
};

/*
 * Turns one row of a list into its JSON (list_respond).  row is the
 * db_row_json() object, stolen; return the object to show (stolen), or
 * NULL to leave the row out.
 */
typedef json_t *(*sb_list_map_cb)(struct sb_req *, json_t *row, void *arg);

/*
 * Retention (ABI 1.3).  A plugin declares what it keeps for a limited
 * time; the operator sets the number of days with the key
 * "<name>_retention_days" in the plugin's section (declared by the host:
 * the plugin does not declare it again), 0 keeping everything.  A
 * periodic host job (once per cluster per [host] retention_interval
 * seconds) calls purge() with the cutoff, inside a transaction of its
 * own; purge deletes what is older and returns how many rows it deleted
 * (-1 on error, which rolls back that purge alone).
 */
struct sb_retention {
	size_t			size;		/* sizeof(struct sb_retention) */
	const char		*name;		/* [a-z][a-z0-9_]{0,31}, unique in the plugin */
	unsigned int		default_days;	/* 0: keep until the operator says */
	const char		*description;
	/* worker; cutoff: an RFC 3339 UTC time to bind as timestamptz */
	long long		(*purge)(struct sb_plugin *, const char *cutoff);
	void			*spare[4];
};

/*
 * One part of a multipart/form-data request body (ABI 1.3; req_parts).
 * A part's bytes are a range of the request body as received: in memory
 * (data != NULL) when the host kept the body in memory, otherwise in the
 * file the host streamed the body to as it arrived (fd >= 0: read it with
 * pread() from offset; the descriptor is the host's, valid until the
 * request is answered, never closed by the plugin).  So a 100 MB upload
 * never sits in a worker's memory.  Everything is borrowed for the
 * request.
 */
struct sb_part {
	size_t			size;		/* sizeof(struct sb_part) */
	const char		*name;		/* the form field */
	const char		*filename;	/* NULL when the part has none */
	const char		*content_type;	/* as declared; NULL when absent */
	const unsigned char	*data;		/* the bytes in memory, or NULL */
	int			fd;		/* -1, or the body's file */
	uint64_t		offset;		/* of the bytes in fd */
	uint64_t		len;
	void			*spare[4];
};

/* Who is calling. Borrowed from the request. */
enum sb_actor {
	SB_ACTOR_ANONYMOUS = 0,
	SB_ACTOR_USER,
	SB_ACTOR_API_KEY,
	SB_ACTOR_DONOR,
	SB_ACTOR_SYSTEM
};

struct sb_principal {
	enum sb_actor		kind;
	int64_t			id;		/* user id, API key id; 0 if none */
	const char		*name;		/* username, key name, donor name */
	const char		*role;		/* role name ("donor" for donors) */
	const char		*donor_id;	/* SB_ACTOR_DONOR: the donor's id */
	void			*spare[2];
};

/*
 * The host-API table.  Passed to setup(); the pointer stays valid for the
 * life of the process (parent and workers).  `size` is the host's
 * sizeof(struct sb_host_api): slots at or beyond it do not exist.
 */
struct sb_host_api {
	uint32_t		size;
	uint16_t		abi_major;
	uint16_t		abi_minor;

	/* --- Logging (any process). Attributed to the plugin. --- */
	void	(*log)(struct sb_plugin *, enum sb_log_level,
		    const char *fmt, ...) SB_PRINTF(3, 4);

	/* --- Declarations: setup() only, in the parent. --- */

	/* routes: array terminated by SB_ROUTE_END; borrowed for the life
	 * of the plugin (use static tables).  Fails on a clash with any
	 * registered route or a route without permission/public. */
	int	(*routes_add)(struct sb_plugin *, const struct sb_route *);
	/* name "plugin.verb", description shown by /api/v1/permissions. */
	int	(*permission_add)(struct sb_plugin *, const char *name,
		    const char *description);
	/* pattern: an exact event name, "prefix.*" or "*". */
	int	(*subscribe)(struct sb_plugin *, const char *pattern,
		    sb_event_cb cb, void *arg);
	/* Names of events this plugin publishes (for /api/v1/plugins). */
	int	(*event_declare)(struct sb_plugin *, const char *name,
		    const char *description);
	/* keys: array terminated by SB_CONFIG_END, borrowed (static). */
	int	(*config_declare)(struct sb_plugin *,
		    const struct sb_config_key *);
	/* Directory of NNN_name.sql files, relative to the plugin's own
	 * source directory as configured, or absolute. */
	int	(*migrations_add)(struct sb_plugin *, const char *dir);
	/* Extra syscall numbers (SYS_* from <sys/syscall.h>) this plugin
	 * needs inside the worker sandbox. */
	int	(*seccomp_allow)(struct sb_plugin *, const long *nrs, size_t n);

	/* --- Configuration (any process). Borrowed strings. --- */
	const char *(*config_get)(struct sb_plugin *, const char *key);
	long long (*config_int)(struct sb_plugin *, const char *key,
		    long long fallback);
	int	(*config_bool)(struct sb_plugin *, const char *key,
		    int fallback);

	/* --- Events (worker). --- */
	/* data is borrowed (the host copies it).  Delivered to subscribers
	 * in this worker before returning, and once in every other worker. */
	int	(*publish)(struct sb_plugin *, const char *name, int version,
		    json_t *data);

	/* --- Database (worker). One connection per worker; statements are
	 * prepared once per connection and re-prepared after a reconnect.
	 * params are text, NULL for SQL NULL.  The result is never NULL;
	 * check it with db_ok(). Caller frees it with db_free(). --- */
	struct sb_db_res *(*db_query)(struct sb_plugin *, const char *sql,
		    int nparams, const char *const *params);
	int	(*db_ok)(const struct sb_db_res *);
	/* SQLSTATE of a failed query ("23505"), or NULL. */
	const char *(*db_sqlstate)(const struct sb_db_res *);
	int	(*db_rows)(const struct sb_db_res *);
	const char *(*db_value)(const struct sb_db_res *, int row, int col);
	int	(*db_isnull)(const struct sb_db_res *, int row, int col);
	/* Row as a JSON object keyed by column name, typed from the column
	 * types (int, bool, numeric, json/jsonb, text).  Caller owns it. */
	json_t	*(*db_row_json)(const struct sb_db_res *, int row);
	void	(*db_free)(struct sb_db_res *);
	/* Transactions on the worker's connection. */
	int	(*db_begin)(struct sb_plugin *);
	int	(*db_commit)(struct sb_plugin *);
	void	(*db_rollback)(struct sb_plugin *);

	/* --- The request (worker, inside a handler). Borrowed. --- */
	struct sb_plugin *(*req_plugin)(struct sb_req *);
	const char *(*req_method)(struct sb_req *);
	const char *(*req_path)(struct sb_req *);
	const char *(*req_id)(struct sb_req *);
	const char *(*req_param)(struct sb_req *, const char *name);
	/* Query-string value, percent-decoded; NULL when absent. */
	const char *(*req_query)(struct sb_req *, const char *name);
	const char *(*req_header)(struct sb_req *, const char *name);
	/* The validated JSON body, or NULL when the route has none. */
	json_t	*(*req_json)(struct sb_req *);
	const struct sb_principal *(*req_principal)(struct sb_req *);
	/* Does the caller hold the permission (or one of "a.b|c.d")? */
	int	(*req_allowed)(struct sb_req *, const char *permission);
	/* The client's address as text. */
	const char *(*req_ip)(struct sb_req *);

	/* --- Rate limits (worker).  Counts one hit on the node-wide budget
	 * named key ("<plugin>:<what>:<who>") and returns 0 while within
	 * `requests` per `seconds`; otherwise -1 with *retry_after set to the
	 * seconds until the budget allows the next hit. --- */
	int	(*rate_hit)(struct sb_plugin *, const char *key,
		    unsigned int requests, unsigned int seconds,
		    unsigned int *retry_after);

	/* --- Deferred responses (worker, inside a handler).  The handler
	 * returns without answering and answers later, from a callback, with
	 * one respond_* call.  If the client goes away first, the host drops
	 * the request and a later respond_* is a harmless no-op. --- */
	void	(*req_defer)(struct sb_req *);

	/* --- Outbound HTTP (worker).  SB_OK, or SB_ERROR when the request
	 * is malformed (then cb is never called). --- */
	int	(*http_send)(struct sb_plugin *, const struct sb_http_request *,
		    sb_http_cb cb, void *arg);
	/* A response header (case-insensitive), borrowed, or NULL. */
	const char *(*http_header)(const struct sb_http_response *,
		    const char *name);

	/* --- Durable jobs. --- */
	/* setup(): register a kind; the table is borrowed (static). */
	int	(*job_kind_add)(struct sb_plugin *, const struct sb_job_kind *);
	/* worker: enqueue; payload borrowed (copied), opts may be NULL.
	 * Returns the job id (an existing job's for a known idempotency
	 * key), or -1. */
	int64_t	(*job_enqueue)(struct sb_plugin *, const char *kind,
		    json_t *payload, const struct sb_job_opts *opts);
	/* inside run(): what the job is.  Borrowed until it is finished. */
	int64_t	(*job_id)(struct sb_job *);
	json_t	*(*job_payload)(struct sb_job *);
	int	(*job_attempt)(struct sb_job *);	/* 1 on the first run */
	const char *(*job_key)(struct sb_job *);	/* idempotency key */
	struct sb_plugin *(*job_plugin)(struct sb_job *);
	/* finish (exactly one, possibly later from a callback): */
	void	(*job_done)(struct sb_job *, json_t *result /* stolen, NULL ok */);
	void	(*job_retry)(struct sb_job *, const char *error,
		    unsigned int retry_after_s /* 0: backoff with jitter */);
	void	(*job_fail)(struct sb_job *, const char *error); /* dead now */

	/* --- Real time. --- */
	/* setup(): own a room prefix ([a-z0-9_-], at most 32, starting
	 * with a letter).  Fails on a prefix already owned (by the host:
	 * "agents", "user"; or by another plugin). */
	int	(*room_add)(struct sb_plugin *, const char *prefix,
		    sb_room_auth_cb authorise);
	/* worker: publish an event to the bus AND to the room's WebSocket
	 * subscribers on every worker of every node.  data borrowed. */
	int	(*publish_room)(struct sb_plugin *, const char *room,
		    const char *name, int version, json_t *data);

	/* --- Donor tokens (worker).  A signed access token for the donor
	 * donor_id (display name `name`), valid for the host's donor-token
	 * lifetime.  Caller frees it with free(). --- */
	char	*(*donor_token)(struct sb_plugin *, const char *donor_id,
		    const char *name);

	/* --- The response (worker). Exactly one respond_* per request. --- */
	void	(*resp_header)(struct sb_req *, const char *name,
		    const char *value);
	/* body is stolen. */
	void	(*respond_json)(struct sb_req *, int status, json_t *body);
	/* The error envelope. errors (array of {field,code,message}) is
	 * stolen and may be NULL. */
	void	(*respond_error)(struct sb_req *, int status, const char *code,
		    const char *message, json_t *errors);
	void	(*respond_raw)(struct sb_req *, int status,
		    const char *content_type, const void *data, size_t len);

	/* --- Secrets at rest (ABI 1.1; any process).  AES-256-GCM under a
	 * key derived for this plugin (HKDF-SHA256, info = the plugin id)
	 * from the host's data key (SB_DATA_KEY).  seal() returns text
	 * "v2.<kid>.<base64url(nonce | ciphertext | tag)>" to store (1.1
	 * and 1.2 hosts wrote "v1.<...>", without the key id; see reseal
	 * below), unseal() the
	 * plaintext (NUL-terminated; length in *len when len is not NULL).
	 * Both return NULL on failure: unseal() when the text was not sealed
	 * by this plugin with this key, or was altered.  Caller frees the
	 * result with free().  Never log either side. --- */
	char	*(*seal)(struct sb_plugin *, const void *plain, size_t len);
	char	*(*unseal)(struct sb_plugin *, const char *sealed, size_t *len);

	/* --- The raw request body (ABI 1.1; worker, inside a handler), as
	 * received, for signature checks over exact bytes (webhooks).
	 * Borrowed; *len set; NULL with *len 0 when there is none.  Routes
	 * with a field table get the same bytes their JSON came from.  A
	 * body the host streamed to a file (over [host] body_memory_max) is
	 * read back into memory: the route's body_max bounds it, so a route
	 * taking large uploads uses req_parts instead. --- */
	const void *(*req_body)(struct sb_req *, size_t *len);

	/* --- Outbound mail (ABI 1.1; worker).  SB_OK, or SB_ERROR when the
	 * mail is malformed (then cb is never called).  See struct sb_mail. */
	int	(*mail_send)(struct sb_plugin *, const struct sb_mail *,
		    sb_mail_cb cb, void *arg);

	/* --- Console panels (ABI 1.2; setup).  Declares a web-console
	 * panel; see struct sb_console_panel.  SB_ERROR (and setup fails)
	 * for a bad id, label or script, a duplicate id, a dir that is not
	 * a directory or a script that is not a file in it.  The panel and
	 * its files are staged and committed with the plugin. --- */
	int	(*console_panel_add)(struct sb_plugin *,
		    const struct sb_console_panel *);

	/* --- Services (ABI 1.3; setup).  See struct sb_service.  export:
	 * the table is borrowed forever; SB_ERROR (and setup fails) for a
	 * bad or foreign name, a duplicate, or a table whose size or
	 * version is 0.  import: *slot is set when this plugin's setup()
	 * succeeds; until then it is NULL. --- */
	int	(*service_export)(struct sb_plugin *, const char *name,
		    const struct sb_service *table);
	int	(*service_import)(struct sb_plugin *, const char *name,
		    uint32_t min_version, const struct sb_service **slot);

	/* --- Sealed personal data (ABI 1.3; any process).  seal() now
	 * writes "v2.<kid>.<base64url(nonce | ciphertext | tag)>", kid
	 * naming the data key; unseal() opens v2 under the current or any
	 * retired key (SB_DATA_KEYS_RETIRED in the environment) and v1
	 * under any of them.  reseal(): *out = the value sealed again under the current
	 * key and 1; 0 (and *out NULL) when it already is; -1 when it does
	 * not open.  Caller frees *out with free(). --- */
	int	(*reseal)(struct sb_plugin *, const char *sealed, char **out);
	/* A keyed HMAC-SHA256 of value for equality lookups, as 43
	 * characters of base64url; caller frees with free().  The key is
	 * derived per plugin and domain ("phone") from SB_INDEX_KEY, or from
	 * the data key when that is unset, never the sealing key itself.
	 * Equal values give equal indexes; nothing else can be learnt
	 * without the key.  NULL without a key. --- */
	char	*(*blind_index)(struct sb_plugin *, const char *domain,
		    const void *value, size_t len);

	/* --- Phone numbers (ABI 1.3; any process).  input as a person
	 * typed it ("+44 20 7946 0958", "(415) 555-0100") into E.164
	 * ("+442079460958") in out (at least 17 bytes).  country: ISO
	 * 3166-1 alpha-2 for numbers written without their country code;
	 * NULL takes [host] default_country.  SB_OK, or SB_ERROR when it is
	 * not a possible phone number (then out is ""). --- */
	int	(*phone_e164)(struct sb_plugin *, const char *input,
		    const char *country, char *out, size_t outlen);

	/* --- Lists (ABI 1.3; worker, inside a handler).  See struct
	 * sb_list.  list_parse answers 400 VALIDATION_ERROR (field limit or
	 * cursor) and returns SB_ERROR for a bad one.  list_respond takes r
	 * (answers 500 when the query failed), shows at most list->limit
	 * rows through map (NULL: the row as it is) and sets next_cursor to
	 * the text of column cursor_column of the last row shown when r has
	 * more rows than the limit.  A cursor column whose name starts with
	 * "_" is removed from each row. --- */
	int	(*list_parse)(struct sb_req *, struct sb_list *,
		    unsigned int flags);
	void	(*list_respond)(struct sb_req *, struct sb_db_res *r,
		    const struct sb_list *, const char *cursor_column,
		    sb_list_map_cb map, void *arg);

	/* --- Retention (ABI 1.3; setup).  See struct sb_retention; the
	 * struct is copied, purge borrowed forever. --- */
	int	(*retention_add)(struct sb_plugin *,
		    const struct sb_retention *);

	/* --- Privacy (ABI 1.3; worker, inside a handler, outside any
	 * transaction).  Erase the subject in every plugin that has the
	 * privacy_erase hook, in one transaction, exactly as POST
	 * /api/v1/privacy/delete does (and audited the same way, as the
	 * request's caller): for a plugin route that deletes a person (DELETE
	 * /api/v1/customers/{id}).  SB_OK with *deleted = {"<plugin>": count,
	 * ...} (caller owns it); SB_ERROR when a plugin failed, and then
	 * nothing was erased. --- */
	int	(*privacy_erase_all)(struct sb_req *,
		    const struct sb_subject *, json_t **deleted);

	/* --- Multipart bodies (ABI 1.3; worker, inside a handler).  The
	 * parts of a multipart/form-data body, in order: SB_OK with *parts
	 * (an array of *n, borrowed for the request).  SB_ERROR when the
	 * body is not multipart/form-data (answered 415
	 * UNSUPPORTED_MEDIA_TYPE) or is malformed (answered 400
	 * VALIDATION_ERROR): the handler just returns.  A route taking large
	 * uploads sets its body_max; bodies over [host] body_memory_max are
	 * streamed to a file as they arrive, never held in memory.  At most
	 * 256 parts, header blocks of 8 KiB (more is 400).  A second call
	 * gives the same answer without answering again. --- */
	int	(*req_parts)(struct sb_req *, const struct sb_part **parts,
		    size_t *n);

	/* --- Sending a file (ABI 1.3; worker, inside a handler or a
	 * deferred request's callback).  Answers with exactly len bytes of
	 * fd from offset, read in 64 KiB chunks with pread as the client
	 * takes them (never the whole file in memory), with Content-Length
	 * len and the headers set with resp_header.  A respond_* like the
	 * others: exactly one per request.  fd is stolen, whatever happens:
	 * the host closes it when the body is sent, when the client goes
	 * away, on any error, and at once for HEAD or a client already
	 * gone.  Open or dup() a descriptor of your own for it; nothing else
	 * may use its file position (pread does not move it).  A file that
	 * turns out shorter than len ends the connection after what could be
	 * read. --- */
	void	(*respond_file)(struct sb_req *, int status,
		    const char *content_type, int fd, uint64_t offset,
		    uint64_t len);

	/* --- Signed URLs (ABI 1.3; see SB_ROUTE_SIGNED).  "path?exp=&sig="
	 * for one of this plugin's SB_ROUTE_SIGNED paths (no query), valid
	 * for ttl_s seconds; caller frees.  NULL without a key (the host
	 * has neither SB_INDEX_KEY nor SB_DATA_KEY) or a bad path.
	 * req_signed: 1 when the request was admitted by such a URL. --- */
	char	*(*signed_url)(struct sb_plugin *, const char *path,
		    unsigned int ttl_s);
	int	(*req_signed)(struct sb_req *);

	/* --- A directory of the plugin's own (ABI 1.3; parent, in setup()).
	 * path (relative to the server's working directory) is created when
	 * missing, owned by the worker user, mode 0700, never through a
	 * symbolic link; returns an O_DIRECTORY descriptor to keep, which
	 * the workers use with openat() and friends inside their chroot
	 * (allow those syscalls with syscalls_allow), or -1 (logged). --- */
	int	(*dir_open)(struct sb_plugin *, const char *path);

	/* --- The host's settings a plugin may read (ABI 1.3; any time).
	 * "public_url": [host] public_url (SB_PUBLIC_URL) without a
	 * trailing slash, the base URL providers reach this server at
	 * behind a proxy, or NULL when unset; "encrypt_bodies": "yes" or
	 * "no" ([host] encrypt_bodies: seal message bodies);
	 * "default_country": SB_DEFAULT_COUNTRY or NULL.  Any other name:
	 * NULL.  Borrowed for the life of the process. --- */
	const char *(*host_setting)(const char *name);

	/* Room for minor versions to grow without moving anything. */
	void	*spare[12];
};

/* True when the host provides slot `f` (a later-minor slot may be absent). */
#define SB_API_HAS(api, f)						\
	(offsetof(struct sb_host_api, f) < (api)->size && (api)->f != NULL)

/*
 * The plugin descriptor.  Returned by sb_plugin_entry(); must be const and
 * static (the host keeps the pointer).  Fill it with SB_PLUGIN().
 *
 * Mandatory: abi_major, abi_minor, size, id, name, version, setup.
 * Optional (NULL): depends, init, fini, health, stats, privacy_export,
 * privacy_erase, rekey.
 */
struct sb_plugin_desc {
	uint16_t		abi_major;
	uint16_t		abi_minor;
	uint32_t		size;		/* sizeof(struct sb_plugin_desc) */

	const char		*id;		/* reverse-DNS: "io.switchboard.audit" */
	const char		*name;		/* short name: config section, logs */
	const char		*version;	/* semantic version of the plugin */
	const char		*summary;
	const char *const	*depends;	/* NULL-terminated plugin ids */

	/* Parent, once, after the ABI checks.  api stays valid forever. */
	int			(*setup)(struct sb_plugin *,
				    const struct sb_host_api *api);
	/* Worker, once, inside the sandbox.  SB_ERROR disables the plugin
	 * in this worker: its routes answer 503. */
	int			(*init)(struct sb_plugin *);
	/* Worker, on orderly shutdown. */
	void			(*fini)(struct sb_plugin *);
	/* Worker, for /readyz: SB_OK when ready; may add keys to detail. */
	int			(*health)(struct sb_plugin *, json_t *detail);
	/* Worker, for GET /api/v1/stats (ABI 1.2; optional): add the
	 * plugin's figures to out, shown as its "stats".  A plugin that
	 * carries messages reports "messages_per_day": [{"day":
	 * "YYYY-MM-DD", "count": n}] over the last 14 UTC days; the host
	 * adds those up across plugins.  SB_ERROR: nothing is shown.
	 * Figures for Prometheus go in "metrics": [{"name": "[a-z][a-z0-9_]*",
	 * "help": "...", "labels": {"k": "v", ...}, "value": n}], shown on
	 * /metrics as gauges switchboard_<plugin>_<name>{k="v"} n (a name's
	 * help from its first entry; entries that do not fit are left out)
	 * and not in /api/v1/stats.  Counted from the database, they are the
	 * cluster's, the same on every node: aggregate nodes with max(). */
	int			(*stats)(struct sb_plugin *, json_t *out);

	/*
	 * Privacy (ABI 1.3; worker; optional).  Every plugin that keeps
	 * anything about a person answers both; the host's
	 * /api/v1/privacy routes call each plugin that has them.
	 * privacy_export: a new JSON object of what the plugin holds on the
	 * subject (arrays by kind: {"queries": [...], ...}; {} when
	 * nothing), NULL on error.  privacy_erase: delete (or irreversibly
	 * scrub) all of it, return how many rows went, -1 on error.  Erase
	 * runs inside the host's transaction, with every other plugin's:
	 * it must not begin or commit one.  Neither logs the subject.
	 */
	json_t			*(*privacy_export)(struct sb_plugin *,
				    const struct sb_subject *);
	long long		(*privacy_erase)(struct sb_plugin *,
				    const struct sb_subject *);

	/*
	 * Key rotation (ABI 1.3; worker; optional, required of a plugin
	 * that seals anything).  Re-seal (api->reseal) at most `batch`
	 * stored values, continuing from state: a JSON object the plugin
	 * alone reads and writes ({} at the start; e.g. {"table": "t",
	 * "after": 812}), which the host stores with the plugin's changes
	 * in one transaction, so a rotation killed half-way resumes where
	 * it stopped.  Add the number of values re-sealed to *resealed.
	 * Return 1 while there is more, 0 when done, -1 on error.  Also
	 * rewrites blind indexes computed from values it re-seals.
	 */
	int			(*rekey)(struct sb_plugin *, json_t *state,
				    unsigned int batch, unsigned int *resealed);

	void			*spare[4];
};

typedef const struct sb_plugin_desc *(*sb_plugin_entry_fn)(void);

/*
 * SB_PLUGIN(.id = "...", .name = "...", .version = "...", .setup = ...)
 * defines the exported entry symbol with the ABI fields filled in.
 */
#define SB_PLUGIN(...)							\
	SB_EXPORT const struct sb_plugin_desc *sb_plugin_entry(void);	\
	SB_EXPORT const struct sb_plugin_desc *				\
	sb_plugin_entry(void)						\
	{								\
		static const struct sb_plugin_desc desc = {		\
			.abi_major = SB_ABI_MAJOR,			\
			.abi_minor = SB_ABI_MINOR,			\
			.size = sizeof(struct sb_plugin_desc),		\
			__VA_ARGS__					\
		};							\
		return (&desc);						\
	}

#if defined(__cplusplus)
}
#endif

#endif /* SWITCHBOARD_PLUGIN_H */
