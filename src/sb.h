/*
 * Internal declarations shared by the host subsystems in src/.  Nothing here
 * is visible to plugins: their whole world is include/switchboard/plugin.h.
 * Each subsystem lives in the file its prefix names (sb_db_* in db.c, ...).
 */

#ifndef SB_H
#define SB_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "switchboard/plugin.h"
#include "phone.h"
#include "text.h"

struct http_request;
struct sb_router;
struct sb_conf;

#ifndef SB_VERSION
#define SB_VERSION		"0.0.0-dev"	/* the Makefile passes VERSION */
#endif
#define SB_HOST_ID		"io.switchboard.host"

/* --- host.c: process-wide settings, filled in the parent before fork. --- */
struct sb_settings {
	char		*config_path;
	char		*database_url;
	char		*jwt_secret;
	char		*data_key;	/* SB_DATA_KEY or NULL (seal.c) */
	char		*default_country;	/* phone.cc; NULL: none */
	char		*public_url;	/* [host] public_url, no trailing /; NULL */
	int		 encrypt_bodies;	/* [host] encrypt_bodies */
	char		**data_keys_retired;	/* SB_DATA_KEYS_RETIRED, NULL-terminated */
	char		*index_key;	/* SB_INDEX_KEY or NULL (seal.c) */
	char		*jwt_issuer;
	char		*jwt_audience;
	char		*admin_password;	/* from SB_ADMIN_PASSWORD */
	char		*assets_dir;
	char		*plugin_dir;
	char		*migrations_dir;
	char		**cors_origins;		/* NULL-terminated */
	char		**trusted_proxies;	/* NULL-terminated */
	size_t		body_max;		/* default per-route limit */
	size_t		body_memory_max;	/* larger bodies go to a file */
	long long	access_ttl;		/* seconds */
	long long	refresh_ttl;		/* seconds */
	long long	donor_ttl;		/* seconds */
	unsigned int	login_ip_failures;	/* per login_window */
	unsigned int	login_user_failures;	/* per login_window */
	unsigned int	login_window;		/* seconds */
	unsigned int	rate_requests;		/* per caller per rate_window */
	unsigned int	rate_window;		/* seconds */
	int		access_log;
	int		dev_mode;		/* sandbox relaxed (said loudly) */
	int		workers;
};

extern struct sb_settings	sb_settings;
extern struct sb_conf		*sb_config;
extern struct sb_router		*sb_routes;
extern int			sb_is_worker;

/* --- log.c: one JSON object per line on stdout. --- */
void	sb_log(enum sb_log_level, const char *component, const char *fmt, ...)
	    SB_PRINTF(3, 4);
void	sb_logv(enum sb_log_level, const char *component, const char *fmt,
	    va_list);
void	sb_log_json(json_t *line);	/* stolen; adds time */
void	sb_log_set_worker(int id);

/* --- plugin.c: loader, registry and the host-API table. --- */
enum sb_plugin_state {
	SB_PLUGIN_LOADED = 0,	/* dlopen'd, checks passed, not set up */
	SB_PLUGIN_READY,	/* set up (parent) / initialised (worker) */
	SB_PLUGIN_FAILED,	/* refused or failed: see error */
	SB_PLUGIN_DISABLED	/* configured off */
};

struct sb_perm {
	TAILQ_ENTRY(sb_perm)	list;
	char			*name;
	char			*description;
	struct sb_plugin	*owner;
};
TAILQ_HEAD(sb_perm_list, sb_perm);

struct sb_route_entry {
	TAILQ_ENTRY(sb_route_entry)	list;
	const struct sb_route		*route;
	struct sb_plugin		*owner;
};
TAILQ_HEAD(sb_route_list, sb_route_entry);

struct sb_sub {
	TAILQ_ENTRY(sb_sub)	list;
	char			*pattern;
	sb_event_cb		cb;
	void			*arg;
	struct sb_plugin	*owner;
};
TAILQ_HEAD(sb_sub_list, sb_sub);

/* A console panel (ABI 1.2), copied from the plugin's declaration. */
struct sb_panel {
	TAILQ_ENTRY(sb_panel)	list;
	char			*id;
	char			*label;
	char			*dir;		/* resolved: absolute or cwd-relative */
	char			*script;	/* relative to dir */
	char			*url;		/* "/plugins/<name>/<script>" */
	char			*permission;	/* or NULL: every staff user */
};
TAILQ_HEAD(sb_panel_list, sb_panel);

struct sb_plugin {
	TAILQ_ENTRY(sb_plugin)	list;
	struct sb_plugin_desc	d;		/* normalised copy */
	void			*handle;	/* dlopen, NULL for the host */
	char			*path;
	char			*name;		/* config section name */
	char			*dir;		/* plugin source dir (migrations, panels) */
	enum sb_plugin_state	state;
	char			error[256];
	int			required;
	int			in_setup;
	int			setup_failed;
	const struct sb_config_key *config_keys;
	struct sb_route_list	routes;
	struct sb_perm_list	perms;		/* staged until setup succeeds */
	struct sb_panel_list	panels;		/* console panels, in order */
	json_t			*events;	/* declared: [{name,description}] */
	json_t			*migrations;	/* [dir, ...] */
	long			*seccomp;
	size_t			seccomp_len;
	uint64_t		requests;	/* per-worker counter */
};
TAILQ_HEAD(sb_plugin_list, sb_plugin);

extern struct sb_plugin_list	sb_plugins;
extern struct sb_perm_list	sb_permissions;
extern struct sb_sub_list	sb_subscriptions;
extern const struct sb_host_api	sb_api;
extern struct sb_plugin		*sb_host_plugin;

void	sb_plugin_parent_init(void);
int	sb_plugin_load_all(void);
void	sb_plugin_worker_init(void);
void	sb_plugin_worker_fini(void);
void	sb_plugin_report_failures(void);
struct sb_plugin *sb_plugin_host(const struct sb_route *routes);
json_t	*sb_plugin_describe(const struct sb_plugin *);
json_t	*sb_panel_json(const struct sb_plugin *, const struct sb_panel *,
	    int with_plugin);
const char *sb_plugin_state_name(enum sb_plugin_state);
const char *sb_route_access(const struct sb_route *);

#define SB_ROUTE_ACCESS_MASK	(SB_ROUTE_PUBLIC | SB_ROUTE_STAFF | \
				    SB_ROUTE_AUTHENTICATED | SB_ROUTE_DONOR)
/* Host routes only: a probe (/healthz, /readyz, /metrics) outside the
 * per-caller request budget, so a balancer polling from one address
 * never sees a healthy node as dead.  Plugins may not set it. */
#define SB_ROUTE_PROBE		0x80000000u
int	sb_permission_exists(const char *name);

/* workdir.c: a directory the workers write, opened before the chroot. */
int	 sb_workdir_open(const char *path);

/* signurl.c: signed URLs of SB_ROUTE_SIGNED routes. */
char	*sb_signed_url(const char *plugin_id, const char *path,
	    unsigned int ttl_s);
int	 sb_signed_verify(const char *plugin_id, const char *path,
	    const char *exp, const char *sig);

/* abi.c: the pure ABI checks of a descriptor and of a console panel's
 * strings (unit-tested). */
int	sb_abi_check(const struct sb_plugin_desc *, uint16_t host_major,
	    uint16_t host_minor, char *err, size_t errlen);
int	sb_abi_panel_check(const struct sb_console_panel *, char *err,
	    size_t errlen);
#define SB_SERVICE_NAME_MAX	64
int	sb_abi_service_name(const char *name, char *err, size_t errlen);
int	sb_abi_service_check(const char *plugin, const char *name,
	    const struct sb_service *table, char *err, size_t errlen);

/* --- services.c: services between plugins (ABI 1.3), parent only.
 * Staged in setup(), resolved and committed with the plugin. --- */
int	sb_services_export(struct sb_plugin *, const char *name,
	    const struct sb_service *, char *err, size_t errlen);
int	sb_services_import(struct sb_plugin *, const char *name,
	    uint32_t min_version, const struct sb_service **slot, char *err,
	    size_t errlen);
int	sb_services_resolve(struct sb_plugin *, char *err, size_t errlen);
void	sb_services_commit(struct sb_plugin *);
void	sb_services_unstage(struct sb_plugin *);
json_t	*sb_services_json(const struct sb_plugin *);

/* --- lists.c: API.md's list convention for plugins (ABI 1.3). --- */
int	sb_list_parse(struct sb_req *, struct sb_list *, unsigned int flags);
void	sb_list_respond(struct sb_req *, struct sb_db_res *,
	    const struct sb_list *, const char *cursor_column,
	    sb_list_map_cb map, void *arg);

/* --- http.c: the request path. --- */
struct sb_req {
	struct http_request	*http;
	struct sb_plugin	*plugin;
	const struct sb_route	*route;
	char			id[64];
	char			ip[64];
	json_t			*body;
	char			*raw;		/* the body as received, or NULL */
	size_t			raw_len;
	int			raw_read;	/* the body was read (raw set) */
	int			signed_url;	/* admitted by a signed URL */
	struct sb_parts		*parts;		/* parts.c: req_parts' answer */
	json_t			*query;		/* object of decoded strings */
	struct sb_principal	principal;
	char			*principal_name;
	char			*principal_role;
	char			*principal_donor;
	json_t			*perms;		/* array of granted names */
	json_t			*user;		/* staff: the user's profile */
	int			superuser;
	int64_t			session_id;	/* staff: the login session */
	int			responded;
	int			status;
	const char		*error_code;
	void			*match;		/* struct sb_router_match * */
	/* Deferred answers (sb_req_defer): 1 asked, 2 parked with Kore,
	 * 3 answered and woken.
	 * http is NULL once the client has gone; these keep the log line. */
	int			deferred;
	uint64_t		started;	/* kore_time_ms() at dispatch */
	const char		*gone_method;
	char			*gone_path;
};

/* The request being handled in this worker, or NULL (events published
 * while it is set carry its actor, request id and client address). */
extern struct sb_req	*sb_current_req;

int	sb_http_dispatch(struct http_request *);
const char *sb_req_ip(struct sb_req *);
const char *sb_req_path(struct sb_req *);
void	sb_http_worker_init(void);
/* The body limit of the route a request goes to (Kore's body hook). */
size_t	sb_http_body_max(struct http_request *);
size_t	sb_http_routes_body_max(void);
/* The whole body into req->raw (read back from Kore's file when it was
 * streamed to one); -1 after answering 503 or 400. */
int	sb_req_raw(struct sb_req *);
void	sb_respond_error(struct sb_req *, int status, const char *code,
	    const char *message, json_t *errors);
void	sb_respond_json(struct sb_req *, int status, json_t *body);
void	sb_respond_raw(struct sb_req *, int status, const char *ctype,
	    const void *data, size_t len);
void	sb_respond_file(struct sb_req *, int status, const char *ctype,
	    int fd, uint64_t offset, uint64_t len);
void	sb_resp_header(struct sb_req *, const char *, const char *);
const char *sb_req_header(struct sb_req *, const char *);
const char *sb_req_query(struct sb_req *, const char *);
const char *sb_req_param(struct sb_req *, const char *);
int	sb_req_allowed(struct sb_req *, const char *permission);
const char *sb_error_code_for(int status);
json_t	*sb_error_codes_json(void);
int	sb_page_params(struct sb_req *, long long *limit, long long *before);
void	sb_respond_db_down(struct sb_req *);
int	sb_req_id(struct sb_req *, const char *param, const char *what,
	    int64_t *out);
void	sb_respond_page(struct sb_req *, json_t *data, int more);
void	sb_respond_rows(struct sb_req *, struct sb_db_res *, long long limit);

/* --- db.c: one PostgreSQL connection per process. --- */
struct sb_db_res {
	PGresult		*res;
	int			ok;
	char			sqlstate[6];
};

int	sb_db_connect(void);
void	sb_db_disconnect(void);
int	sb_db_ping(char *err, size_t errlen);
struct sb_db_res *sb_db_query(const char *sql, int n, const char *const *p);
int	sb_db_exec(const char *sql, int n, const char *const *p);
int	sb_db_begin(void);
int	sb_db_commit(void);
void	sb_db_rollback(void);
void	sb_db_free(struct sb_db_res *);
json_t	*sb_db_row_json(const struct sb_db_res *, int row);
const char *sb_db_value(const struct sb_db_res *, int row, int col);
int	sb_db_rows(const struct sb_db_res *);
PGconn	*sb_db_conn(void);
int64_t	sb_db_size(void);
char	*sb_db_text_array(const json_t *strings);
json_t	*sb_db_row_by_id(const char *sql, int64_t id);

/* --- migrate.c: parent only, before fork. --- */
int	sb_migrate_all(void);
int	sb_migrate_dir(const char *scope, const char *dir, char *err,
	    size_t errlen);

/* checksum.c */
void	sb_sha256_hex(const void *data, size_t len, char out[65]);

/* --- bus.c: the event bus. --- */
void	sb_bus_worker_init(void);
int	sb_bus_publish(struct sb_plugin *, const char *name, int version,
	    json_t *data);
int	sb_bus_publish_room(struct sb_plugin *, const char *room,
	    const char *name, int version, json_t *data);
/* An event in the bus's wire format from another worker or node. */
void	sb_bus_deliver_wire(const void *data, size_t len);
void	sb_host_event(const char *name, json_t *data);
void	sb_host_change_event(const char *name, const char *kind, int64_t id,
	    json_t *changes);

/* --- auth.c: authentication and the first super-admin. --- */
#define SB_PASSWORD_MIN		10

int	sb_auth_bootstrap_admin(void);
int	sb_auth_authenticate(struct sb_req *);
/* Credentials as strings (WebSocket): SB_AUTH_* and no answer sent. */
#define SB_AUTH_OK		0
#define SB_AUTH_INVALID		-1	/* *why says why */
#define SB_AUTH_DOWN		-2	/* no database */
int	sb_auth_credentials(struct sb_req *, const char *token,
	    const char *api_key, int64_t *expires, const char **why);
void	sb_auth_clear(struct sb_req *);
int	sb_auth_hash_password(const char *pw, char *out, size_t outlen);
int	sb_auth_verify_password(const char *hash, const char *pw);
const char *sb_auth_password_problem(const char *pw, const char *username);
char	*sb_auth_donor_token(const char *donor_id, const char *name);
int	sb_auth_revoke_sessions(int64_t user_id, int64_t keep,
	    const char *reason);
extern const struct sb_route	sb_auth_routes[];

/* --- users.c, roles.c, apikeys.c: identity management. --- */
#define USER_COLUMNS							\
	"u.id, u.username, u.name, u.email, r.name AS role, u.is_active, "\
	"u.created_at, u.updated_at, u.last_login_at"

json_t	*sb_user_json(int64_t id);
extern const struct sb_route	sb_user_routes[];
extern const struct sb_route	sb_role_routes[];
extern const struct sb_route	sb_apikey_routes[];

/* --- privacy.c: a person's data, exported and erased through every
 * plugin's privacy hooks. --- */
extern const struct sb_route	sb_privacy_routes[];
int	sb_privacy_erase_all(struct sb_req *, const struct sb_subject *,
	    json_t **deleted);

/* --- system.c: health, readiness, plugins, OpenAPI, docs. --- */
extern const struct sb_route	sb_system_routes[];
json_t	*sb_openapi_build(void);

/* --- httpc.c: outbound HTTP on Kore's curl, circuit breakers, and
 * deferred responses. --- */
int	sb_httpc_parent_init(void);
int	sb_http_send(struct sb_plugin *, const struct sb_http_request *,
	    sb_http_cb, void *);
const char *sb_http_header(const struct sb_http_response *, const char *);
json_t	*sb_httpc_breakers(void);	/* for /readyz: {upstream: state} */
void	sb_req_defer(struct sb_req *);

/* --- mail.c: outbound mail over SMTP, one thread per transfer. --- */
void	sb_mail_parent_init(void);	/* after sb_httpc_parent_init() */
int	sb_mail_send(struct sb_plugin *, const struct sb_mail *, sb_mail_cb,
	    void *);

/* --- jobs.c: durable jobs in PostgreSQL. --- */
int	sb_jobs_parent_init(void);	/* settings, shared counters */
void	sb_jobs_worker_init(void);	/* after sb_plugin_worker_init() */
void	sb_jobs_worker_fini(void);
/* setup(): stage a kind; committed or dropped with the plugin. */
int	sb_jobs_kind_add(struct sb_plugin *, const struct sb_job_kind *,
	    char *err, size_t errlen);
void	sb_jobs_commit(struct sb_plugin *);
void	sb_jobs_unstage(struct sb_plugin *);
int64_t	sb_jobs_enqueue(struct sb_plugin *, const char *kind,
	    json_t *payload, const struct sb_job_opts *);
int64_t	sb_job_id(struct sb_job *);
json_t	*sb_job_payload(struct sb_job *);
int	sb_job_attempt(struct sb_job *);
const char *sb_job_key(struct sb_job *);
struct sb_plugin *sb_job_plugin(struct sb_job *);
void	sb_job_done(struct sb_job *, json_t *result);
void	sb_job_retry(struct sb_job *, const char *error,
	    unsigned int retry_after_s);
void	sb_job_fail(struct sb_job *, const char *error);
/* This node's job counters and latencies (all workers). Caller owns. */
json_t	*sb_jobs_metrics(void);
long long sb_jobs_purge(struct sb_plugin *, const char *cutoff);

/* --- metrics.c: node-wide counters, /metrics and /api/v1/stats. --- */
int	sb_metrics_parent_init(void);
void	sb_metrics_request(const struct sb_plugin *, int status, uint64_t ms);
extern const struct sb_route	sb_metrics_routes[];
extern const struct sb_route	sb_job_routes[];

/* --- ws.c / cluster.c: the WebSocket gateway and cross-node events. --- */
void	sb_ws_parent_init(void);
void	sb_ws_worker_init(void);
/* Every event of the bus, in every worker: room fan-out, revocations. */
void	sb_ws_deliver(const struct sb_event *);
int	sb_ws_room_valid(const char *room);
/* room_add (plugin.c): staged in setup, committed or dropped with it. */
int	sb_ws_room_stage(struct sb_plugin *, const char *prefix,
	    sb_room_auth_cb, char *err, size_t errlen);
void	sb_ws_rooms_commit(struct sb_plugin *);
void	sb_ws_rooms_drop(struct sb_plugin *);
extern const struct sb_route	sb_ws_routes[];
void	sb_cluster_parent_init(void);
void	sb_cluster_worker_init(void);
void	sb_cluster_publish(const char *wire, size_t len);
const char *sb_cluster_node(void);

/* --- assets.c: the console's static files, held in memory. --- */
int	sb_assets_load(const char *dir);
/* dir's files served under url_prefix ("/plugins/example"), all or
 * none; a URL already served is kept and the file skipped.  mark/release
 * drop everything loaded since the mark. */
int	sb_assets_load_prefix(const char *dir, const char *url_prefix);
size_t	sb_assets_mark(void);
void	sb_assets_release(size_t mark);
int	sb_assets_serve(struct sb_req *, const char *path);

/* --- seccomp.c --- */
void	sb_seccomp_collect(void);

/* util */
char	*sb_strdup(const char *);
int64_t	sb_now_ms(void);
void	sb_random_hex(char *out, size_t bytes);

const void *sb_req_body(struct sb_req *, size_t *);

/* --- parts.c: multipart bodies in memory or in Kore's body file. --- */
struct sb_parts;
int	sb_req_parts(struct sb_req *, const struct sb_part **, size_t *);
void	sb_parts_free(struct sb_parts *);
/* The parent: the body directory inside the workers' root, emptied. */
int	sb_parts_parent_init(void);

/* --- retention.c: plugins' retention declarations and the periodic
 * host job "host.retention" (ABI 1.3, retention_add). --- */
int	sb_retention_stage(struct sb_plugin *, const struct sb_retention *,
	    char *err, size_t errlen);
void	sb_retention_commit(struct sb_plugin *);
void	sb_retention_unstage(struct sb_plugin *);
int	sb_retention_is_key(const struct sb_plugin *, const char *key);
void	sb_retention_parent_init(void);	/* after sb_plugin_load_all() */
/* A plugin key's value from SB_<PLUGIN>_<KEY> or its section, or NULL. */
const char *sb_plugin_conf_value(const struct sb_plugin *, const char *key);

/* phone.cc (phone.h): sb_phone_init, sb_phone_e164 (api->phone_e164). */

/* seal.c: secrets at rest, per plugin id (see plugin.h "seal"). */
char	*sb_seal(const char *plugin_id, const void *, size_t);
char	*sb_unseal(const char *plugin_id, const char *sealed, size_t *len);
int	sb_reseal(const char *plugin_id, const char *sealed, char **out);
char	*sb_blind_index(const char *plugin_id, const char *domain,
	    const void *value, size_t len);
void	sb_seal_kid(const char *data_key, char kid[9]);
int	sb_seal_keys_parse(const char *text, char ***out, char *err,
	    size_t errlen);

/* rekey.c: the key rotation job and its routes (privacy.manage). */
int	sb_rekey_parent_init(void);	/* after sb_plugin_parent_init() */
extern const struct sb_route	sb_rekey_routes[];

#endif
