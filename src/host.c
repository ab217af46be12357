/*
 * The Kore hooks: where the host starts in the parent and in each worker.
 *
 * Parent (kore_parent_configure, after kore.conf is parsed, before fork):
 * settings from the environment and conf/switchboard.conf, assets into
 * memory, plugins loaded and set up, migrations applied, the first
 * super-admin created.  Workers (kore_worker_configure, already chrooted,
 * unprivileged and sandboxed): database connection, event bus, plugin init.
 */

#include <sys/prctl.h>
#include <sys/syscall.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/seccomp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "sb.h"
#include "conf.h"
#include "router.h"
#include "ratelimit.h"
#include "edge.h"

_Static_assert(SB_EDGE_CHUNKED == HTTP_HEAD_CHUNKED &&
    SB_EDGE_EXPECT_CONTINUE == HTTP_HEAD_EXPECT_CONTINUE,
    "the edge's flags are Kore's head hook flags");

void	kore_parent_configure(int, char **);
void	kore_parent_teardown(void);
void	kore_worker_configure(void);
void	kore_worker_teardown(void);
void	kore_seccomp_hook(void);

static char	*env_or(const char *, const char *);
static const char *host_conf(const char *, const char *);
static long long host_conf_int(const char *, long long, long long, long long);
static void	 settings_load(void);
static char	**split_list(const char *);
static int	 db_wait_and_migrate(void);

struct sb_settings	sb_settings;
struct sb_conf		*sb_config = NULL;
struct sb_router	*sb_routes = NULL;
int			sb_is_worker = 0;

void
kore_parent_configure(int argc, char **argv)
{
	char	err[256];

	(void)argc;
	(void)argv;

	settings_load();

	/* The HTTP edge (patches/kore/0006): head rules, route body limits. */
	http_head_hook = sb_edge_head;
	http_body_max_hook = sb_http_body_max;

	if (sb_assets_load(sb_settings.assets_dir) == -1)
		fatalx("cannot load assets from %s", sb_settings.assets_dir);

	/* libphonenumber's metadata and caches, built before the fork. */
	if (sb_phone_init(sb_settings.default_country, err,
	    sizeof(err)) == -1)
		fatalx("[host] %s (SB_DEFAULT_COUNTRY or %s)", err,
		    sb_settings.config_path);

	/* Shared by every worker of this node: created before the fork. */
	if (sb_rate_init((size_t)host_conf_int("rate_limit_slots", 65536,
	    1024, 16777216)) == -1)
		fatalx("cannot create the rate-limit table");

	/* WebSocket settings and the node's per-user connection counts
	 * (shared mapping); the node id its events carry to other nodes. */
	sb_ws_parent_init();
	sb_cluster_parent_init();

	/* Breakers shared by the workers; CA bundle and resolver files
	 * copied into the chroot. */
	if (sb_metrics_parent_init() == -1)
		fatalx("cannot create the metrics table");
	if (sb_httpc_parent_init() == -1)
		fatalx("cannot set up outbound HTTP (see the log above)");
	sb_mail_parent_init();

	/* Job settings and the node's job counters (shared mapping). */
	if (sb_jobs_parent_init() == -1)
		fatalx("cannot set up durable jobs");

	sb_plugin_parent_init();
	if (sb_rekey_parent_init() == -1)
		fatalx("cannot set up key rotation (see the log above)");
	if (sb_plugin_load_all() == -1)
		fatalx("a required plugin failed to load (see the log above)");
	/* Kore's own body cap must not be below any route's limit, and
	 * bodies over [host] body_memory_max go to the workers' body
	 * directory. */
	if (http_body_max < sb_http_routes_body_max())
		http_body_max = sb_http_routes_body_max();
	if (sb_parts_parent_init() == -1)
		fatalx("cannot set up the request body directory (see the "
		    "log above)");
	/* The periodic purge of what plugins keep for a limited time. */
	sb_retention_parent_init();

	if (db_wait_and_migrate() == -1)
		fatalx("database not ready: cannot start (see the log above)");

	sb_log(SB_LOG_INFO, "host", "switchboard %s ready to fork %d "
	    "worker(s)%s", SB_VERSION, worker_count,
	    sb_settings.dev_mode ? " (development mode: no chroot/runas)" :
	    "");
}

void
kore_parent_teardown(void)
{
	sb_log(SB_LOG_INFO, "host", "parent stopped");
}

void
kore_worker_configure(void)
{
	sb_is_worker = 1;
	sb_log_set_worker(worker != NULL ? worker->id : 0);

	/* A failed first connect is fine: queries reconnect on demand. */
	(void)sb_db_connect();
	sb_http_worker_init();
	sb_bus_worker_init();
	sb_cluster_worker_init();
	sb_ws_worker_init();
	sb_plugin_worker_init();
	sb_jobs_worker_init();
	sb_plugin_report_failures();
}

void
kore_worker_teardown(void)
{
	sb_jobs_worker_fini();
	sb_plugin_worker_fini();
	sb_db_disconnect();
}

/*
 * Plugins declared their extra syscalls in setup() (in the parent), so the
 * whole list is known here, in the worker, before the filter is locked.
 */
void
kore_seccomp_hook(void)
{
	struct sb_plugin	*p;
	struct sock_filter	*f;
	size_t			i, n;
	char			name[64];

	/* The host's own needs beyond Kore's worker, pgsql and curl lists. */
	static struct sock_filter host_filter[] = {
		KORE_SYSCALL_ALLOW(newfstatat),
		KORE_SYSCALL_ALLOW(getsockopt),
		KORE_SYSCALL_ALLOW(getsockname),
		KORE_SYSCALL_ALLOW(getpeername),
		KORE_SYSCALL_ALLOW(uname),
		KORE_SYSCALL_ALLOW(sysinfo),
		KORE_SYSCALL_ALLOW(getrusage),
		/* Parts of a body Kore streamed to a file (parts.c, and
		 * plugins reading struct sb_part's fd). */
		KORE_SYSCALL_ALLOW(pread64),
		/* libvips' threads (the media plugin): glibc tries
		 * clone3 first and falls back to clone (Kore's curl
		 * filter allows it) on ENOSYS; a new thread registers
		 * rseq, glib names it, and pthread_getattr_np (glib,
		 * ASan) reads the CPU mask.  ASan also asks each thread
		 * its id. */
		KORE_SYSCALL_DENY(clone3, ENOSYS),
		KORE_SYSCALL_ALLOW(rseq),
		KORE_SYSCALL_ALLOW_ARG(prctl, 0, PR_SET_NAME),
		KORE_SYSCALL_ALLOW(sched_getaffinity),
		KORE_SYSCALL_ALLOW(gettid),
	};

	if (!kore_seccomp_filter("switchboard", host_filter,
	    KORE_FILTER_LEN(host_filter)))
		fatalx("seccomp filter switchboard refused");

	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->state != SB_PLUGIN_READY || p->seccomp_len == 0)
			continue;
		n = p->seccomp_len * 2;
		if ((f = calloc(n, sizeof(*f))) == NULL)
			fatalx("calloc");
		for (i = 0; i < p->seccomp_len; i++) {
			struct sock_filter	cmp[] = {
				KORE_BPF_CMP(p->seccomp[i], 0, 1),
				KORE_BPF_RET(SECCOMP_RET_ALLOW)
			};
			f[i * 2] = cmp[0];
			f[i * 2 + 1] = cmp[1];
		}
		/* Kore keeps the pointer (it does not copy the program): the
		 * allocation lives as long as the worker.  Prefixed names
		 * cannot collide with Kore's own ("worker", "pgsql", ...). */
		snprintf(name, sizeof(name), "plugin:%s", p->name);
		if (!kore_seccomp_filter(name, f, n))
			fatalx("seccomp filter %s refused", name);
	}
}

static char *
env_or(const char *name, const char *fallback)
{
	const char	*v;

	if ((v = getenv(name)) != NULL && *v != '\0')
		return (sb_strdup(v));
	return (fallback != NULL ? sb_strdup(fallback) : NULL);
}

/*
 * [host] public_url (SB_PUBLIC_URL): the base URL clients and providers
 * reach this server at, behind any proxy, for webhook URLs and their
 * signatures.  http(s)://host[:port][/path], no query or fragment; a
 * trailing slash is dropped.  v is taken (NULL: none).
 */
static char *
public_url(char *v)
{
	size_t	n, i;

	if (v == NULL || *v == '\0') {
		free(v);
		return (NULL);
	}
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		v[--n] = '\0';
	for (i = 0; i < n; i++) {
		if (v[i] <= ' ' || v[i] == 0x7f || v[i] == '?' || v[i] == '#')
			break;
	}
	if (i != n || n > 512 || (strncmp(v, "https://", 8) != 0 &&
	    strncmp(v, "http://", 7) != 0) || strlen(strchr(v, ':') + 3) == 0)
		fatalx("[host] public_url (or SB_PUBLIC_URL) must be an "
		    "http:// or https:// base URL without query or fragment, "
		    "e.g. https://switchboard.example.org");
	return (v);
}

static const char *
host_conf(const char *key, const char *fallback)
{
	const char	*v;

	if (sb_config != NULL &&
	    (v = sb_conf_get(sb_config, "host", key)) != NULL)
		return (v);
	return (fallback);
}

static long long
host_conf_int(const char *key, long long fallback, long long min,
    long long max)
{
	long long	v;
	int		ok;

	v = sb_conf_int(sb_config, "host", key, fallback, &ok);
	if (!ok || v < min || v > max)
		fatalx("%s: [host] %s must be a number between %lld and %lld",
		    sb_settings.config_path, key, min, max);
	return (v);
}

static void
settings_load(void)
{
	char		err[512];

	memset(&sb_settings, 0, sizeof(sb_settings));
	sb_settings.config_path = env_or("SB_CONFIG", "conf/switchboard.conf");

	if ((sb_config = sb_conf_load(sb_settings.config_path, err,
	    sizeof(err))) == NULL)
		fatalx("configuration: %s", err);

	sb_settings.database_url = env_or("DATABASE_URL",
	    host_conf("database_url", NULL));
	if (sb_settings.database_url == NULL)
		fatalx("DATABASE_URL is not set (a libpq connection string); "
		    "`make run` provisions a private PostgreSQL and sets it");

	sb_settings.jwt_secret = env_or("SB_JWT_SECRET", NULL);
	if (sb_settings.jwt_secret == NULL ||
	    strlen(sb_settings.jwt_secret) < 32)
		fatalx("SB_JWT_SECRET must be set to at least 32 characters "
		    "(`make run` generates one into var/secrets)");

	/* Optional: without it plugins cannot seal secrets (seal.c). */
	sb_settings.data_key = env_or("SB_DATA_KEY", NULL);
	if (sb_settings.data_key != NULL && strlen(sb_settings.data_key) < 32)
		fatalx("SB_DATA_KEY must be at least 32 characters (`make "
		    "run` generates one into var/secrets)");
	/* Keys values sealed before a rotation may still be under. */
	if (sb_seal_keys_parse(getenv("SB_DATA_KEYS_RETIRED"),
	    &sb_settings.data_keys_retired, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (sb_settings.data_keys_retired[0] != NULL &&
	    sb_settings.data_key == NULL)
		fatalx("SB_DATA_KEYS_RETIRED is set but SB_DATA_KEY is not: "
		    "values are sealed under the current key");
	/* Optional: blind indexes fall back to the data key (seal.c). */
	sb_settings.index_key = env_or("SB_INDEX_KEY", NULL);
	if (sb_settings.index_key != NULL &&
	    strlen(sb_settings.index_key) < 32)
		fatalx("SB_INDEX_KEY must be at least 32 characters (`make "
		    "run` generates one into var/secrets)");

	sb_settings.admin_password = env_or("SB_ADMIN_PASSWORD", NULL);
	/* Checked against libphonenumber's regions by sb_phone_init(). */
	sb_settings.default_country = env_or("SB_DEFAULT_COUNTRY",
	    host_conf("default_country", NULL));
	sb_settings.public_url = public_url(env_or("SB_PUBLIC_URL",
	    host_conf("public_url", NULL)));
	sb_settings.encrypt_bodies = sb_conf_bool(sb_config, "host",
	    "encrypt_bodies", 0, NULL);
	sb_settings.assets_dir = sb_strdup(host_conf("assets_dir", "assets"));
	sb_settings.plugin_dir = sb_strdup(host_conf("plugin_dir",
	    "build/plugins"));
	sb_settings.migrations_dir = sb_strdup(host_conf("migrations_dir",
	    "migrations"));
	sb_settings.jwt_issuer = sb_strdup(host_conf("jwt_issuer",
	    "switchboard"));
	sb_settings.jwt_audience = sb_strdup(host_conf("jwt_audience",
	    "switchboard"));
	sb_settings.cors_origins = split_list(host_conf("cors_origins", ""));
	sb_settings.trusted_proxies = split_list(host_conf("trusted_proxies",
	    ""));
	sb_settings.body_max = (size_t)host_conf_int("body_max", 1048576,
	    1024, (long long)http_body_max);
	/* Larger bodies are streamed to a file as they arrive (parts.c). */
	sb_settings.body_memory_max = (size_t)host_conf_int(
	    "body_memory_max", 1048576, 1024, 1073741824);
	sb_settings.access_ttl = host_conf_int("access_token_ttl", 900, 60,
	    86400);
	sb_settings.refresh_ttl = host_conf_int("refresh_token_ttl", 2592000,
	    300, 31536000);
	sb_settings.donor_ttl = host_conf_int("donor_token_ttl", 86400, 60,
	    2592000);
	sb_settings.login_ip_failures = (unsigned int)host_conf_int(
	    "login_ip_failures", 20, 1, 100000);
	sb_settings.login_user_failures = (unsigned int)host_conf_int(
	    "login_user_failures", 5, 1, 100000);
	sb_settings.login_window = (unsigned int)host_conf_int("login_window",
	    900, 1, 86400);
	sb_settings.rate_requests = (unsigned int)host_conf_int("rate_limit",
	    1200, 0, 10000000);
	sb_settings.rate_window = (unsigned int)host_conf_int(
	    "rate_limit_window", 60, 1, 86400);
	sb_settings.access_log = sb_conf_bool(sb_config, "host", "access_log",
	    1, NULL);
	sb_settings.dev_mode = (getuid() != 0);
	sb_settings.workers = worker_count;

	/* Kore's own body cap must not be below any route's limit. */
	if (http_body_max < sb_settings.body_max)
		http_body_max = sb_settings.body_max;
}

/* "a, b,c" -> NULL-terminated array of trimmed strings. */
static char **
split_list(const char *s)
{
	char		**out, *copy, *tok, *save, *end;
	size_t		n;

	copy = sb_strdup(s);
	out = calloc(strlen(s) / 2 + 2, sizeof(char *));
	if (out == NULL)
		fatalx("calloc");
	n = 0;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*tok != '\0')
			out[n++] = sb_strdup(tok);
	}
	free(copy);
	return (out);
}

/*
 * The parent waits a bounded time for the database (a container start
 * order race is normal), applies every migration and creates the first
 * super-admin, then closes its connection: workers open their own.
 */
static int
db_wait_and_migrate(void)
{
	char		err[512];
	long long	wait_s;
	int		i, rc;

	wait_s = host_conf_int("database_wait", 30, 0, 3600);
	for (i = 0; ; i++) {
		if (sb_db_connect() == 0 && sb_db_ping(err, sizeof(err)) == 0)
			break;
		if (i >= wait_s) {
			sb_log(SB_LOG_ERROR, "db", "no database after %llds",
			    wait_s);
			return (-1);
		}
		if (i == 0)
			sb_log(SB_LOG_WARN, "db", "waiting for the database");
		sleep(1);
	}

	rc = -1;
	if (sb_migrate_all() == -1)
		goto out;
	if (sb_auth_bootstrap_admin() == -1)
		goto out;
	rc = 0;
out:
	sb_db_disconnect();
	return (rc);
}

char *
sb_strdup(const char *s)
{
	char	*p;

	if ((p = strdup(s != NULL ? s : "")) == NULL)
		fatalx("strdup");
	return (p);
}

int64_t
sb_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void
sb_random_hex(char *out, size_t bytes)
{
	unsigned char	buf[64];
	size_t		i;

	if (bytes > sizeof(buf))
		bytes = sizeof(buf);
	if (RAND_bytes(buf, (int)bytes) != 1)
		fatalx("RAND_bytes failed");
	for (i = 0; i < bytes; i++)
		snprintf(out + i * 2, 3, "%02x", buf[i]);
	out[bytes * 2] = '\0';
}
