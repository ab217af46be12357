/*
 * The plugin loader and registry, and the host-API table plugins call.
 *
 * Parent: every enabled [plugin <name>] section of the configuration is
 * dlopen'd (RTLD_NOW | RTLD_LOCAL), its descriptor checked (abi.c),
 * duplicate ids refused, plugins ordered by their dependencies and set up.
 * What a plugin declares in setup() is staged on the plugin and committed
 * to the global registries only when setup succeeds as a whole, so a plugin
 * that fails half-way leaves nothing behind.  A failing plugin is logged,
 * unloaded and reported by /api/v1/plugins; only a plugin configured
 * `required = yes` stops the host.
 *
 * Worker: init() per worker; a failure disables the plugin in that worker
 * (its routes answer 503) and never takes the worker down.
 */

#include <sys/mman.h>
#include <sys/stat.h>

#include <kore/kore.h>
#include <kore/http.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"
#include "conf.h"
#include "router.h"
#include "ratelimit.h"

struct sb_plugin_list	sb_plugins = TAILQ_HEAD_INITIALIZER(sb_plugins);
struct sb_perm_list	sb_permissions =
			    TAILQ_HEAD_INITIALIZER(sb_permissions);
struct sb_sub_list	sb_subscriptions =
			    TAILQ_HEAD_INITIALIZER(sb_subscriptions);
struct sb_plugin	*sb_host_plugin = NULL;

static struct sb_sub_list	staged_subs =
				    TAILQ_HEAD_INITIALIZER(staged_subs);

/* Shared by the workers: set once the load failures were published. */
static int			*failures_reported = NULL;

static struct sb_plugin	*plugin_new(const char *name);
static void		 plugin_fail(struct sb_plugin *, const char *, ...)
			    SB_PRINTF(2, 3);
static void		 plugin_unload(struct sb_plugin *);
static int		 plugin_setup(struct sb_plugin *);
static void		 plugin_load_section(const char *, void *);
static int		 routes_check(struct sb_plugin *, char *, size_t);
static int		 routes_clash(struct sb_plugin *, char *, size_t);
static int		 permission_known(struct sb_plugin *, const char *,
			    char *, size_t);
static int		 panels_commit(struct sb_plugin *, char *, size_t);
static void		 panel_free(struct sb_panel *);
static int		 in_setup(struct sb_plugin *, const char *);

/* Keys of a [plugin x] section that belong to the loader, not the plugin. */
static const char *loader_keys[] = {
	"enabled", "path", "required", "source_dir", NULL
};

/* Built-in host permissions; plugins add theirs in setup(). */
static const struct {
	const char	*name;
	const char	*description;
} host_perms[] = {
	{ "system.read", "See system state: plugins, stats, health detail" },
	{ "metrics.read", "Read Prometheus metrics from outside loopback" },
	{ "jobs.read", "List durable jobs" },
	{ "jobs.manage", "Retry dead jobs" },
	{ "users.manage", "Create, edit and deactivate staff users" },
	{ "roles.manage", "Create and edit roles and their permissions" },
	{ "api_keys.manage", "Create and revoke API keys" },
	{ "donors.impersonate", "Mint donor tokens for an external system" },
	{ "privacy.manage", "Export and erase a person's data; rotate the "
	    "data key" },
	{ NULL, NULL }
};

static struct sb_plugin *
plugin_new(const char *name)
{
	struct sb_plugin	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatalx("calloc");
	p->name = sb_strdup(name);
	p->events = json_array();
	p->migrations = json_array();
	TAILQ_INIT(&p->routes);
	TAILQ_INIT(&p->perms);
	TAILQ_INIT(&p->panels);
	TAILQ_INSERT_TAIL(&sb_plugins, p, list);
	return (p);
}

static void
plugin_fail(struct sb_plugin *p, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	(void)vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	p->state = SB_PLUGIN_FAILED;
	sb_log(SB_LOG_ERROR, "plugin", "plugin %s refused: %s", p->name,
	    p->error);
}

/* Drop everything the plugin staged and close its library. */
static void
plugin_unload(struct sb_plugin *p)
{
	struct sb_route_entry	*r;
	struct sb_perm		*perm;
	struct sb_panel		*c;
	struct sb_sub		*s, *next;

	while ((r = TAILQ_FIRST(&p->routes)) != NULL) {
		TAILQ_REMOVE(&p->routes, r, list);
		free(r);
	}
	while ((perm = TAILQ_FIRST(&p->perms)) != NULL) {
		TAILQ_REMOVE(&p->perms, perm, list);
		free(perm->name);
		free(perm->description);
		free(perm);
	}
	while ((c = TAILQ_FIRST(&p->panels)) != NULL) {
		TAILQ_REMOVE(&p->panels, c, list);
		panel_free(c);
	}
	for (s = TAILQ_FIRST(&staged_subs); s != NULL; s = next) {
		next = TAILQ_NEXT(s, list);
		if (s->owner != p)
			continue;
		TAILQ_REMOVE(&staged_subs, s, list);
		free(s->pattern);
		free(s);
	}
	sb_jobs_unstage(p);
	sb_retention_unstage(p);
	sb_ws_rooms_drop(p);
	sb_services_unstage(p);
	json_array_clear(p->events);
	json_array_clear(p->migrations);
	free(p->seccomp);
	p->seccomp = NULL;
	p->seccomp_len = 0;
	p->config_keys = NULL;
	if (p->handle != NULL) {
		/* The descriptor's strings live in the library: keep copies. */
		/* NULL when the descriptor was refused before it was read. */
		p->d.id = p->d.id != NULL ? sb_strdup(p->d.id) : NULL;
		p->d.version = p->d.version != NULL ?
		    sb_strdup(p->d.version) : NULL;
		p->d.name = p->name;
		p->d.summary = NULL;
		p->d.depends = NULL;
		p->d.setup = NULL;
		p->d.init = NULL;
		p->d.fini = NULL;
		p->d.health = NULL;
		p->d.stats = NULL;
		p->d.privacy_export = NULL;
		p->d.privacy_erase = NULL;
		p->d.rekey = NULL;
		dlclose(p->handle);
		p->handle = NULL;
	}
}

void
sb_plugin_parent_init(void)
{
	struct sb_perm	*perm;
	int		i;
	char		err[256];

	if ((sb_routes = sb_router_new()) == NULL)
		fatalx("router");
	failures_reported = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (failures_reported == MAP_FAILED)
		fatalx("mmap: %s", errno_s);
	*failures_reported = 0;

	sb_host_plugin = plugin_new("host");
	sb_host_plugin->d.id = SB_HOST_ID;
	sb_host_plugin->d.name = "host";
	sb_host_plugin->d.version = SB_VERSION;
	sb_host_plugin->d.summary = "Switchboard host";
	sb_host_plugin->d.abi_major = SB_ABI_MAJOR;
	sb_host_plugin->d.abi_minor = SB_ABI_MINOR;
	sb_host_plugin->state = SB_PLUGIN_READY;

	for (i = 0; host_perms[i].name != NULL; i++) {
		if ((perm = calloc(1, sizeof(*perm))) == NULL)
			fatalx("calloc");
		perm->name = sb_strdup(host_perms[i].name);
		perm->description = sb_strdup(host_perms[i].description);
		perm->owner = sb_host_plugin;
		TAILQ_INSERT_TAIL(&sb_permissions, perm, list);
	}

	sb_host_plugin->in_setup = 1;
	if (sb_api.routes_add(sb_host_plugin, sb_system_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_auth_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_user_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_role_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_apikey_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_job_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_ws_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_metrics_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_rekey_routes) != SB_OK ||
	    sb_api.routes_add(sb_host_plugin, sb_privacy_routes) != SB_OK ||
	    routes_check(sb_host_plugin, err, sizeof(err)) == -1)
		fatalx("host routes: %s", sb_host_plugin->error);
	sb_host_plugin->in_setup = 0;
	if (plugin_setup(sb_host_plugin) == -1)
		fatalx("host routes could not be committed");
}

static int
is_loader_key(const char *key)
{
	int	i;

	for (i = 0; loader_keys[i] != NULL; i++) {
		if (strcmp(loader_keys[i], key) == 0)
			return (1);
	}
	return (0);
}

static void
plugin_load_section(const char *section, void *arg)
{
	struct sb_plugin	*p, *other;
	const char		*name, *path, *src;
	char			buf[PATH_MAX], err[256];
	sb_plugin_entry_fn	entry;
	const struct sb_plugin_desc *d;
	int			ok;

	(void)arg;
	if (strncmp(section, "plugin ", 7) != 0)
		return;
	name = section + 7;

	p = plugin_new(name);
	p->required = sb_conf_bool(sb_config, section, "required", 0, &ok);
	if (!sb_conf_bool(sb_config, section, "enabled", 1, &ok)) {
		p->state = SB_PLUGIN_DISABLED;
		sb_log(SB_LOG_INFO, "plugin", "plugin %s is disabled", name);
		return;
	}

	if ((path = sb_conf_get(sb_config, section, "path")) == NULL) {
		snprintf(buf, sizeof(buf), "%s/%s.so",
		    sb_settings.plugin_dir, name);
		path = buf;
	}
	p->path = sb_strdup(path);
	if ((src = sb_conf_get(sb_config, section, "source_dir")) == NULL) {
		snprintf(buf, sizeof(buf), "plugins/%s", name);
		src = buf;
	}
	p->dir = sb_strdup(src);

	/* RTLD_LOCAL: a plugin's symbols never satisfy another's. */
	if ((p->handle = dlopen(p->path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		plugin_fail(p, "cannot load %s: %s", p->path, dlerror());
		return;
	}
	*(void **)&entry = dlsym(p->handle, SB_PLUGIN_ENTRY_SYMBOL);
	if (entry == NULL) {
		plugin_fail(p, "%s exports no %s()", p->path,
		    SB_PLUGIN_ENTRY_SYMBOL);
		plugin_unload(p);
		return;
	}
	d = entry();
	if (sb_abi_check(d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)) == -1) {
		if (d != NULL) {
			p->d.abi_major = d->abi_major;
			p->d.abi_minor = d->abi_minor;
		}
		plugin_fail(p, "%s", err);
		plugin_unload(p);
		return;
	}

	/* Copy what this host knows of the descriptor; an older plugin's
	 * missing tail stays zero (NULL slots). */
	memset(&p->d, 0, sizeof(p->d));
	memcpy(&p->d, d, d->size < sizeof(p->d) ? d->size : sizeof(p->d));
	if (p->d.abi_minor < 2)
		p->d.stats = NULL;	/* a 1.0/1.1 spare slot, not a hook */
	if (p->d.abi_minor < 3) {	/* 1.0-1.2 spare slots, not hooks */
		p->d.privacy_export = NULL;
		p->d.privacy_erase = NULL;
		p->d.rekey = NULL;
	}

	if (strcmp(p->d.name, name) != 0) {
		plugin_fail(p, "descriptor name \"%s\" does not match its "
		    "configuration section [plugin %s]", p->d.name, name);
		plugin_unload(p);
		return;
	}
	TAILQ_FOREACH(other, &sb_plugins, list) {
		if (other == p || other->state == SB_PLUGIN_FAILED ||
		    other->state == SB_PLUGIN_DISABLED || other->d.id == NULL)
			continue;
		if (strcmp(other->d.id, p->d.id) == 0) {
			plugin_fail(p, "duplicate plugin id %s (already "
			    "provided by %s)", p->d.id, other->name);
			plugin_unload(p);
			return;
		}
	}

	p->state = SB_PLUGIN_LOADED;
	sb_log(SB_LOG_INFO, "plugin", "loaded %s %s (%s) ABI %u.%u from %s",
	    p->name, p->d.version, p->d.id, p->d.abi_major, p->d.abi_minor,
	    p->path);
}

static struct sb_plugin *
plugin_by_id(const char *id)
{
	struct sb_plugin	*p;

	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->d.id != NULL && strcmp(p->d.id, id) == 0)
			return (p);
	}
	return (NULL);
}

static void
warn_unknown_key(const char *key, const char *value, void *arg)
{
	struct sb_plugin		*p = arg;
	const struct sb_config_key	*k;

	(void)value;
	if (is_loader_key(key) || sb_retention_is_key(p, key))
		return;
	for (k = p->config_keys; k != NULL && k->key != NULL; k++) {
		if (strcmp(k->key, key) == 0)
			return;
	}
	sb_log(SB_LOG_WARN, "plugin", "[plugin %s] %s is not a key the "
	    "plugin declares: ignored", p->name, key);
}

/*
 * Call setup() and, when it succeeds as a whole, commit what it staged.
 * For the host pseudo-plugin only the commit runs.
 */
static int
plugin_setup(struct sb_plugin *p)
{
	struct sb_route_entry		*r;
	struct sb_perm			*perm;
	struct sb_sub			*s, *next;
	const struct sb_config_key	*k;
	char				err[256], section[128];
	int				rc;

	if (p != sb_host_plugin) {
		p->in_setup = 1;
		rc = p->d.setup(p, &sb_api);
		p->in_setup = 0;
		if (rc != SB_OK || p->setup_failed) {
			if (p->error[0] == '\0')
				plugin_fail(p, "setup() failed");
			else {
				/* plugin_fail() writes p->error: copy it. */
				snprintf(err, sizeof(err), "%s", p->error);
				plugin_fail(p, "%s", err);
			}
			return (-1);
		}
		for (k = p->config_keys; k != NULL && k->key != NULL; k++) {
			if ((k->flags & SB_CONF_REQUIRED) &&
			    sb_api.config_get(p, k->key) == NULL) {
				plugin_fail(p, "[plugin %s] %s is required",
				    p->name, k->key);
				return (-1);
			}
		}
		snprintf(section, sizeof(section), "plugin %s", p->name);
		sb_conf_foreach_key(sb_config, section, warn_unknown_key, p);
		if (routes_check(p, err, sizeof(err)) == -1) {
			plugin_fail(p, "%s", err);
			return (-1);
		}
		/* Against committed exports only: what p depends on. */
		if (sb_services_resolve(p, err, sizeof(err)) == -1) {
			plugin_fail(p, "%s", err);
			return (-1);
		}
		/* Last, because it is the one step that loads something. */
		if (panels_commit(p, err, sizeof(err)) == -1) {
			plugin_fail(p, "%s", err);
			return (-1);
		}
	}

	TAILQ_FOREACH(r, &p->routes, list) {
		if (sb_router_add(sb_routes, r->route->method, r->route->path,
		    r, err, sizeof(err)) == -1)
			fatalx("router refused a checked route: %s", err);
	}
	while ((perm = TAILQ_FIRST(&p->perms)) != NULL) {
		TAILQ_REMOVE(&p->perms, perm, list);
		TAILQ_INSERT_TAIL(&sb_permissions, perm, list);
	}
	for (s = TAILQ_FIRST(&staged_subs); s != NULL; s = next) {
		next = TAILQ_NEXT(s, list);
		if (s->owner != p)
			continue;
		TAILQ_REMOVE(&staged_subs, s, list);
		TAILQ_INSERT_TAIL(&sb_subscriptions, s, list);
	}
	sb_jobs_commit(p);
	sb_retention_commit(p);
	sb_ws_rooms_commit(p);
	sb_services_commit(p);
	p->state = SB_PLUGIN_READY;
	return (0);
}

int
sb_plugin_load_all(void)
{
	struct sb_plugin	*p, *dep;
	const char *const	*d;
	int			progress, waiting, rc;

	sb_conf_foreach_section(sb_config, plugin_load_section, NULL);

	/* Set up in dependency order: a pass sets up every plugin whose
	 * dependencies are ready, until a pass makes no progress. */
	do {
		progress = 0;
		TAILQ_FOREACH(p, &sb_plugins, list) {
			if (p->state != SB_PLUGIN_LOADED)
				continue;
			waiting = 0;
			for (d = p->d.depends; d != NULL && *d != NULL; d++) {
				dep = plugin_by_id(*d);
				if (dep == NULL || dep->state == SB_PLUGIN_FAILED ||
				    dep->state == SB_PLUGIN_DISABLED) {
					plugin_fail(p, "dependency %s is not "
					    "available", *d);
					plugin_unload(p);
					progress = 1;
					waiting = -1;
					break;
				}
				if (dep->state != SB_PLUGIN_READY)
					waiting = 1;
			}
			if (waiting != 0)
				continue;
			progress = 1;
			if (plugin_setup(p) == -1)
				plugin_unload(p);
			else
				sb_log(SB_LOG_INFO, "plugin", "set up %s",
				    p->name);
		}
	} while (progress);

	rc = 0;
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->state == SB_PLUGIN_LOADED) {
			plugin_fail(p, "circular dependency");
			plugin_unload(p);
		}
		if (p->state == SB_PLUGIN_FAILED && p->required)
			rc = -1;
	}
	return (rc);
}

/*
 * Plugins refused in the parent are host events too (the audit log keeps
 * them), but events exist only in workers: the first worker to get here
 * publishes them, once per start of the host, not again when a worker
 * is restarted.
 */
void
sb_plugin_report_failures(void)
{
	struct sb_plugin	*p;

	if (failures_reported == NULL ||
	    __atomic_exchange_n(failures_reported, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->state != SB_PLUGIN_FAILED)
			continue;
		sb_host_event("host.plugin.failed", json_pack("{s:s, s:s, s:s?, "
		    "s:s}", "target", "plugin", "plugin", p->name, "id",
		    p->d.id, "error", p->error));
	}
}

void
sb_plugin_worker_init(void)
{
	struct sb_plugin	*p;

	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->state != SB_PLUGIN_READY || p->d.init == NULL)
			continue;
		if (p->d.init(p) != SB_OK) {
			snprintf(p->error, sizeof(p->error), "init() failed "
			    "in worker %u", worker->id);
			p->state = SB_PLUGIN_FAILED;
			sb_log(SB_LOG_ERROR, "plugin", "plugin %s disabled: %s",
			    p->name, p->error);
		}
	}
}

void
sb_plugin_worker_fini(void)
{
	struct sb_plugin	*p;

	TAILQ_FOREACH_REVERSE(p, &sb_plugins, sb_plugin_list, list) {
		if (p->state == SB_PLUGIN_READY && p->d.fini != NULL)
			p->d.fini(p);
	}
}

/* Who may call a route: "public", "staff", "authenticated", "donor",
 * "permission". */
const char *
sb_route_access(const struct sb_route *r)
{
	switch (r->flags & SB_ROUTE_ACCESS_MASK) {
	case SB_ROUTE_PUBLIC:
		return ("public");
	case SB_ROUTE_STAFF:
		return ("staff");
	case SB_ROUTE_AUTHENTICATED:
		return ("authenticated");
	case SB_ROUTE_DONOR:
		return ("donor");
	}
	return ("permission");
}

const char *
sb_plugin_state_name(enum sb_plugin_state s)
{
	switch (s) {
	case SB_PLUGIN_LOADED:
		return ("loaded");
	case SB_PLUGIN_READY:
		return ("ready");
	case SB_PLUGIN_FAILED:
		return ("failed");
	case SB_PLUGIN_DISABLED:
		return ("disabled");
	}
	return ("unknown");
}

int
sb_permission_exists(const char *name)
{
	struct sb_perm	*perm;

	TAILQ_FOREACH(perm, &sb_permissions, list) {
		if (strcmp(perm->name, name) == 0)
			return (1);
	}
	return (0);
}

/* "SB_" plugin "_" key, upper-cased, anything else as '_'. */
static const char *
env_name(const char *plugin, const char *key, char *buf, size_t len)
{
	size_t	i;
	char	c;

	snprintf(buf, len, "SB_%s_%s", plugin, key);
	for (i = 0; buf[i] != '\0'; i++) {
		c = buf[i];
		if (c >= 'a' && c <= 'z')
			buf[i] = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			buf[i] = '_';
	}
	return (buf);
}

/* A key's effective value: SB_<PLUGIN>_<KEY> from the environment (so that
 * secrets need not be written into the file), the [plugin <name>] section,
 * or the declared default. */
static const char *
config_value(const struct sb_plugin *p, const struct sb_config_key *k)
{
	const char	*v;

	if ((v = sb_plugin_conf_value(p, k->key)) != NULL)
		return (v);
	return (k->default_value);
}

/* The same without a default, for keys the host declares for a plugin
 * (retention.c). */
const char *
sb_plugin_conf_value(const struct sb_plugin *p, const char *key)
{
	const char	*v;
	char		 buf[256];

	if ((v = getenv(env_name(p->name, key, buf, sizeof(buf)))) != NULL)
		return (v);
	snprintf(buf, sizeof(buf), "plugin %s", p->name);
	return (sb_conf_get(sb_config, buf, key));
}

/* Declared keys with their effective values; secrets are never shown. */
static json_t *
describe_config(const struct sb_plugin *p)
{
	const struct sb_config_key	*k;
	const char			*v;
	json_t				*o;

	o = json_object();
	for (k = p->config_keys; k != NULL && k->key != NULL; k++) {
		v = config_value(p, k);
		if ((k->flags & SB_CONF_SECRET) && v != NULL)
			v = "********";
		json_object_set_new(o, k->key, v != NULL ? json_string(v) :
		    json_null());
	}
	return (o);
}

json_t *
sb_plugin_describe(const struct sb_plugin *p)
{
	struct sb_route_entry	*r;
	struct sb_perm		*perm;
	struct sb_panel		*c;
	json_t			*o, *routes, *perms, *deps, *panels;
	const char *const	*d;

	routes = json_array();
	TAILQ_FOREACH(r, &p->routes, list) {
		json_array_append_new(routes, json_pack("{s:s, s:s, s:s?, "
		    "s:s, s:b, s:b, s:s?}", "method", r->route->method, "path",
		    r->route->path, "permission", r->route->permission,
		    "access", sb_route_access(r->route),
		    "public", (r->route->flags & SB_ROUTE_PUBLIC) != 0,
		    "signed", (r->route->flags & SB_ROUTE_SIGNED) != 0,
		    "summary", r->route->summary));
	}
	perms = json_array();
	TAILQ_FOREACH(perm, &sb_permissions, list) {
		if (perm->owner == p)
			json_array_append_new(perms, json_string(perm->name));
	}
	deps = json_array();
	for (d = p->d.depends; d != NULL && *d != NULL; d++)
		json_array_append_new(deps, json_string(*d));
	panels = json_array();
	TAILQ_FOREACH(c, &p->panels, list)
		json_array_append_new(panels, sb_panel_json(p, c, 0));

	o = json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:o, s:o, s:O, s:o, s:o}",
	    "name", p->name,
	    "id", p->d.id,
	    "version", p->d.version,
	    "summary", p->d.summary,
	    "state", sb_plugin_state_name(p->state),
	    "routes", routes,
	    "permissions", perms,
	    "events", p->events,
	    "depends", deps,
	    "console_panels", panels);
	if (o == NULL)
		return (json_object());
	if (p->d.abi_major != 0) {
		char	abi[16];

		snprintf(abi, sizeof(abi), "%u.%u", p->d.abi_major,
		    p->d.abi_minor);
		json_object_set_new(o, "abi", json_string(abi));
	} else {
		json_object_set_new(o, "abi", json_null());
	}
	json_object_set_new(o, "error", p->error[0] != '\0' ?
	    json_string(p->error) : json_null());
	json_object_set_new(o, "required", json_boolean(p->required));
	json_object_set_new(o, "config", describe_config(p));
	json_object_set_new(o, "requests", json_integer((json_int_t)
	    p->requests));
	json_object_set_new(o, "services", sb_services_json(p));
	return (o);
}

/* A console panel as /api/v1/plugins (without "plugin") and
 * /api/v1/console/panels (with it) show it. */
json_t *
sb_panel_json(const struct sb_plugin *p, const struct sb_panel *c,
    int with_plugin)
{
	json_t	*o;

	o = with_plugin ? json_pack("{s:s}", "plugin", p->name) : json_object();
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "label", json_string(c->label));
	json_object_set_new(o, "script", json_string(c->url));
	json_object_set_new(o, "permission", c->permission != NULL ?
	    json_string(c->permission) : json_null());
	return (o);
}

/* ------------------------------------------------------------------------
 * The host-API table.
 */

static int
in_setup(struct sb_plugin *p, const char *what)
{
	if (p == NULL)
		return (0);
	if (!p->in_setup) {
		sb_log(SB_LOG_ERROR, "plugin", "plugin %s called %s outside "
		    "setup(): ignored", p->name, what);
		return (0);
	}
	return (1);
}

static void
api_log(struct sb_plugin *p, enum sb_log_level level, const char *fmt, ...)
{
	va_list		ap;
	char		component[64];

	snprintf(component, sizeof(component), "plugin:%s",
	    p != NULL ? p->name : "?");
	va_start(ap, fmt);
	sb_logv(level, component, fmt, ap);
	va_end(ap);
}

static void
setup_error(struct sb_plugin *p, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	(void)vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	p->setup_failed = 1;
}

/*
 * Rebuild a scratch router from every committed route plus the plugin's
 * staged ones: a clash with anything, including itself, is found here.
 */
static int
routes_clash(struct sb_plugin *p, char *err, size_t errlen)
{
	struct sb_router	*r;
	struct sb_plugin	*q;
	struct sb_route_entry	*e;
	int			rc;

	if ((r = sb_router_new()) == NULL)
		fatalx("router");
	rc = 0;
	TAILQ_FOREACH(q, &sb_plugins, list) {
		if (q != p && q->state != SB_PLUGIN_READY)
			continue;
		TAILQ_FOREACH(e, &q->routes, list) {
			if (sb_router_add(r, e->route->method, e->route->path,
			    e, err, errlen) == -1) {
				rc = -1;
				goto out;
			}
		}
	}
out:
	sb_router_free(r);
	return (rc);
}

/*
 * Is every alternative of "a.b|c.d" registered, or staged by p?  If not,
 * the first unknown one is copied into bad.
 */
static int
permission_known(struct sb_plugin *p, const char *permission, char *bad,
    size_t badlen)
{
	struct sb_perm	*perm;
	const char	*alt, *bar;
	char		 name[65];	/* valid_permission: <= 64 */
	size_t		 len;
	int		 found;

	for (alt = permission; ; alt = bar + 1) {
		if ((bar = strchr(alt, '|')) == NULL)
			bar = alt + strlen(alt);
		len = (size_t)(bar - alt);
		found = 0;
		if (len > 0 && len < sizeof(name)) {
			memcpy(name, alt, len);
			name[len] = '\0';
			found = sb_permission_exists(name);
			TAILQ_FOREACH(perm, &p->perms, list) {
				if (strcmp(perm->name, name) == 0)
					found = 1;
			}
		}
		if (!found) {
			snprintf(bad, badlen, "%.*s", (int)len, alt);
			return (0);
		}
		if (*bar == '\0')
			return (1);
	}
}

static int
routes_check(struct sb_plugin *p, char *err, size_t errlen)
{
	struct sb_route_entry	*e;
	char			 bad[128];

	if (routes_clash(p, err, errlen) == -1)
		return (-1);
	TAILQ_FOREACH(e, &p->routes, list) {
		if (e->route->permission == NULL ||
		    permission_known(p, e->route->permission, bad, sizeof(bad)))
			continue;
		snprintf(err, errlen, "route %s %s requires undeclared "
		    "permission %s", e->route->method, e->route->path, bad);
		return (-1);
	}
	return (0);
}

static int
api_routes_add(struct sb_plugin *p, const struct sb_route *routes)
{
	const struct sb_route	*rt;
	struct sb_route_entry	*e;
	char			err[256];
	unsigned int		access;

	if (!in_setup(p, "routes_add") || routes == NULL)
		return (SB_ERROR);
	for (rt = routes; rt->method != NULL; rt++) {
		if (rt->handler == NULL || rt->path == NULL) {
			setup_error(p, "route %s %s has no handler or path",
			    rt->method, rt->path ? rt->path : "(null)");
			return (SB_ERROR);
		}
		if ((rt->flags & SB_ROUTE_PROBE) && p != sb_host_plugin) {
			setup_error(p, "route %s %s: only the host's probes "
			    "are outside the request budget", rt->method,
			    rt->path);
			return (SB_ERROR);
		}
		access = rt->flags & SB_ROUTE_ACCESS_MASK;
		if ((rt->permission != NULL) + (access == SB_ROUTE_PUBLIC) +
		    (access == SB_ROUTE_STAFF) +
		    (access == SB_ROUTE_AUTHENTICATED) +
		    (access == SB_ROUTE_DONOR) != 1 ||
		    (access != 0 && access != SB_ROUTE_PUBLIC &&
		    access != SB_ROUTE_STAFF &&
		    access != SB_ROUTE_AUTHENTICATED &&
		    access != SB_ROUTE_DONOR)) {
			setup_error(p, "route %s %s must declare exactly one "
			    "of: a permission, SB_ROUTE_PUBLIC, SB_ROUTE_STAFF, "
			    "SB_ROUTE_AUTHENTICATED, SB_ROUTE_DONOR", rt->method,
			    rt->path);
			return (SB_ERROR);
		}
		if ((rt->flags & SB_ROUTE_SIGNED) && (rt->permission == NULL ||
		    strcmp(rt->method, "GET") != 0)) {
			setup_error(p, "route %s %s: SB_ROUTE_SIGNED goes with "
			    "a permission on a GET route", rt->method,
			    rt->path);
			return (SB_ERROR);
		}
		if ((e = calloc(1, sizeof(*e))) == NULL)
			fatalx("calloc");
		e->route = rt;
		e->owner = p;
		TAILQ_INSERT_TAIL(&p->routes, e, list);
	}
	/* Clashes (with others or within the table) are found now, so the
	 * plugin learns at the call that caused them.  Permissions are
	 * checked after setup(): they may be declared after the routes. */
	if (routes_clash(p, err, sizeof(err)) == -1) {
		setup_error(p, "route clash: %s", err);
		return (SB_ERROR);
	}
	return (SB_OK);
}

/* "area.verb": lower-case words of [a-z0-9_] joined by dots. */
static int
valid_permission(const char *name)
{
	const char	*p;
	int		 dots, prev_dot;

	if (name == NULL || strlen(name) > 64)
		return (0);
	dots = 0;
	prev_dot = 1;
	for (p = name; *p != '\0'; p++) {
		if (*p == '.') {
			if (prev_dot)
				return (0);
			dots++;
			prev_dot = 1;
		} else if ((*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_') {
			prev_dot = 0;
		} else {
			return (0);
		}
	}
	return (dots >= 1 && !prev_dot);
}

static int
api_permission_add(struct sb_plugin *p, const char *name,
    const char *description)
{
	struct sb_perm	*perm;

	if (!in_setup(p, "permission_add"))
		return (SB_ERROR);
	if (!valid_permission(name)) {
		setup_error(p, "permission \"%s\" is not a name like "
		    "\"plugin.verb\" ([a-z0-9_], dot-separated)",
		    name != NULL ? name : "(null)");
		return (SB_ERROR);
	}
	if (sb_permission_exists(name)) {
		setup_error(p, "permission %s is already registered", name);
		return (SB_ERROR);
	}
	if ((perm = calloc(1, sizeof(*perm))) == NULL)
		fatalx("calloc");
	perm->name = sb_strdup(name);
	perm->description = sb_strdup(description);
	perm->owner = p;
	TAILQ_INSERT_TAIL(&p->perms, perm, list);
	return (SB_OK);
}

static int
api_subscribe(struct sb_plugin *p, const char *pattern, sb_event_cb cb,
    void *arg)
{
	struct sb_sub	*s;

	if (!in_setup(p, "subscribe") || pattern == NULL || cb == NULL)
		return (SB_ERROR);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatalx("calloc");
	s->pattern = sb_strdup(pattern);
	s->cb = cb;
	s->arg = arg;
	s->owner = p;
	TAILQ_INSERT_TAIL(&staged_subs, s, list);
	return (SB_OK);
}

static int
api_event_declare(struct sb_plugin *p, const char *name,
    const char *description)
{
	if (!in_setup(p, "event_declare") || name == NULL)
		return (SB_ERROR);
	json_array_append_new(p->events, json_pack("{s:s, s:s?}", "name",
	    name, "description", description));
	return (SB_OK);
}

static int
api_config_declare(struct sb_plugin *p, const struct sb_config_key *keys)
{
	if (!in_setup(p, "config_declare"))
		return (SB_ERROR);
	p->config_keys = keys;
	return (SB_OK);
}

static int
api_migrations_add(struct sb_plugin *p, const char *dir)
{
	char	path[PATH_MAX];

	if (!in_setup(p, "migrations_add") || dir == NULL)
		return (SB_ERROR);
	if (*dir == '/')
		snprintf(path, sizeof(path), "%s", dir);
	else
		snprintf(path, sizeof(path), "%s/%s", p->dir, dir);
	json_array_append_new(p->migrations, json_string(path));
	return (SB_OK);
}

static void
panel_free(struct sb_panel *c)
{
	free(c->id);
	free(c->label);
	free(c->dir);
	free(c->script);
	free(c->url);
	free(c->permission);
	free(c);
}

/*
 * Console panels (ABI 1.2).  The strings are checked by abi.c; here, that
 * the files are there and that the panel does not collide with one the
 * plugin declared before.  Everything is copied: the plugin's struct may
 * live on its stack.
 */
static int
api_console_panel_add(struct sb_plugin *p, const struct sb_console_panel *in)
{
	struct sb_console_panel	 decl;
	struct sb_panel		*c, *other;
	struct stat		 st;
	char			 err[256], dir[PATH_MAX], path[PATH_MAX];
	char			 url[PATH_MAX];
	size_t			 len;

	if (!in_setup(p, "console_panel_add"))
		return (SB_ERROR);
	if (sb_abi_panel_check(in, err, sizeof(err)) == -1) {
		setup_error(p, "%s", err);
		return (SB_ERROR);
	}
	/* Only the fields this host knows (a later minor may grow it). */
	memcpy(&decl, in, sizeof(decl));

	if (*decl.dir == '/')
		len = (size_t)snprintf(dir, sizeof(dir), "%s", decl.dir);
	else
		len = (size_t)snprintf(dir, sizeof(dir), "%s/%s", p->dir,
		    decl.dir);
	if (len >= sizeof(dir)) {
		setup_error(p, "console panel %s: dir is too long", decl.id);
		return (SB_ERROR);
	}
	/* "console" and "console/" are one dir (loaded once). */
	while (len > 1 && dir[len - 1] == '/')
		dir[--len] = '\0';
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		setup_error(p, "console panel %s: dir %s is not a directory",
		    decl.id, dir);
		return (SB_ERROR);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, decl.script);
	if (stat(path, &st) == -1 || !S_ISREG(st.st_mode)) {
		setup_error(p, "console panel %s: script %s is not a file",
		    decl.id, path);
		return (SB_ERROR);
	}
	snprintf(url, sizeof(url), "/plugins/%s/%s", p->name, decl.script);

	TAILQ_FOREACH(other, &p->panels, list) {
		if (strcmp(other->id, decl.id) == 0) {
			setup_error(p, "console panel %s is declared twice",
			    decl.id);
			return (SB_ERROR);
		}
		/* Every dir is served under the same prefix. */
		if (strcmp(other->url, url) == 0 &&
		    strcmp(other->dir, dir) != 0) {
			setup_error(p, "console panels %s and %s would both be "
			    "served at %s", other->id, decl.id, url);
			return (SB_ERROR);
		}
	}

	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatalx("calloc");
	c->id = sb_strdup(decl.id);
	c->label = sb_strdup(decl.label);
	c->dir = sb_strdup(dir);
	c->script = sb_strdup(decl.script);
	c->url = sb_strdup(url);
	c->permission = decl.permission != NULL ?
	    sb_strdup(decl.permission) : NULL;
	TAILQ_INSERT_TAIL(&p->panels, c, list);
	return (SB_OK);
}

/*
 * After setup(): a panel's permission may be declared after the panel,
 * so it is checked here, like a route's.  Then each distinct dir is read
 * into memory (the workers cannot read the file system); a failure here
 * fails the plugin, and every file it loaded is dropped with it.
 */
static int
panels_commit(struct sb_plugin *p, char *err, size_t errlen)
{
	struct sb_panel	*c, *seen;
	char		 bad[128], prefix[128];
	size_t		 mark;

	TAILQ_FOREACH(c, &p->panels, list) {
		if (c->permission == NULL ||
		    permission_known(p, c->permission, bad, sizeof(bad)))
			continue;
		snprintf(err, errlen, "console panel %s requires undeclared "
		    "permission %s", c->id, bad);
		return (-1);
	}
	snprintf(prefix, sizeof(prefix), "/plugins/%s", p->name);
	mark = sb_assets_mark();
	TAILQ_FOREACH(c, &p->panels, list) {
		TAILQ_FOREACH(seen, &p->panels, list) {
			if (seen == c || strcmp(seen->dir, c->dir) == 0)
				break;
		}
		if (seen != c)
			continue;	/* that dir is loaded already */
		if (sb_assets_load_prefix(c->dir, prefix) == -1) {
			sb_assets_release(mark);
			snprintf(err, errlen, "console panel %s: cannot read "
			    "%s", c->id, c->dir);
			return (-1);
		}
	}
	return (0);
}

static int
api_seccomp_allow(struct sb_plugin *p, const long *nrs, size_t n)
{
	long	*grown;

	if (!in_setup(p, "seccomp_allow") || nrs == NULL || n == 0 ||
	    n > 256)
		return (SB_ERROR);
	grown = realloc(p->seccomp, (p->seccomp_len + n) * sizeof(long));
	if (grown == NULL)
		fatalx("realloc");
	memcpy(grown + p->seccomp_len, nrs, n * sizeof(long));
	p->seccomp = grown;
	p->seccomp_len += n;
	return (SB_OK);
}

static const struct sb_config_key *
config_key(struct sb_plugin *p, const char *key)
{
	const struct sb_config_key	*k;

	for (k = p->config_keys; k != NULL && k->key != NULL; k++) {
		if (strcmp(k->key, key) == 0)
			return (k);
	}
	return (NULL);
}

static const char *
api_config_get(struct sb_plugin *p, const char *key)
{
	const struct sb_config_key	*k;

	if (p == NULL || key == NULL)
		return (NULL);
	if ((k = config_key(p, key)) == NULL) {
		sb_log(SB_LOG_WARN, "plugin", "plugin %s read undeclared "
		    "config key %s", p->name, key);
		return (NULL);
	}
	return (config_value(p, k));
}

static long long
api_config_int(struct sb_plugin *p, const char *key, long long fallback)
{
	const char	*v;
	long long	 n;

	if ((v = api_config_get(p, key)) == NULL)
		return (fallback);
	if (sb_conf_parse_int(v, &n) == 0)
		return (n);
	sb_log(SB_LOG_WARN, "plugin", "[plugin %s] %s=\"%s\" is not a number: "
	    "using %lld", p->name, key, v, fallback);
	return (fallback);
}

static int
api_config_bool(struct sb_plugin *p, const char *key, int fallback)
{
	const char	*v;
	int		 b;

	if ((v = api_config_get(p, key)) == NULL)
		return (fallback);
	if (sb_conf_parse_bool(v, &b) == 0)
		return (b);
	sb_log(SB_LOG_WARN, "plugin", "[plugin %s] %s=\"%s\" is not yes/no: "
	    "using %s", p->name, key, v, fallback ? "yes" : "no");
	return (fallback);
}

static struct sb_db_res *
api_db_query(struct sb_plugin *p, const char *sql, int n,
    const char *const *params)
{
	(void)p;
	return (sb_db_query(sql, n, params));
}

static int
api_db_ok(const struct sb_db_res *r)
{
	return (r != NULL && r->ok);
}

static const char *
api_db_sqlstate(const struct sb_db_res *r)
{
	return (r != NULL && r->sqlstate[0] != '\0' ? r->sqlstate : NULL);
}

static int
api_db_isnull(const struct sb_db_res *r, int row, int col)
{
	if (r == NULL || r->res == NULL || row < 0 || col < 0 ||
	    row >= PQntuples(r->res) || col >= PQnfields(r->res))
		return (1);
	return (PQgetisnull(r->res, row, col));
}

static int
api_db_begin(struct sb_plugin *p)
{
	(void)p;
	return (sb_db_begin() == 0 ? SB_OK : SB_ERROR);
}

static int
api_db_commit(struct sb_plugin *p)
{
	(void)p;
	return (sb_db_commit() == 0 ? SB_OK : SB_ERROR);
}

static void
api_db_rollback(struct sb_plugin *p)
{
	(void)p;
	sb_db_rollback();
}

static struct sb_plugin *
api_req_plugin(struct sb_req *r)
{
	return (r->plugin);
}

static const char *
api_req_method(struct sb_req *r)
{
	return (r->route != NULL ? r->route->method : NULL);
}

static const char *
api_req_path(struct sb_req *r)
{
	return (sb_req_path(r));	/* also after the client has gone */
}

static const char *
api_req_id(struct sb_req *r)
{
	return (r->id);
}

static char *
api_signed_url(struct sb_plugin *p, const char *path, unsigned int ttl_s)
{
	return (p == NULL ? NULL : sb_signed_url(p->d.id, path, ttl_s));
}

static int
api_req_signed(struct sb_req *r)
{
	return (r != NULL && r->signed_url);
}

static const char *
api_host_setting(const char *name)
{
	if (name == NULL)
		return (NULL);
	if (strcmp(name, "public_url") == 0)
		return (sb_settings.public_url);
	if (strcmp(name, "encrypt_bodies") == 0)
		return (sb_settings.encrypt_bodies ? "yes" : "no");
	if (strcmp(name, "default_country") == 0)
		return (sb_settings.default_country);
	return (NULL);
}

static int
api_dir_open(struct sb_plugin *p, const char *path)
{
	if (!in_setup(p, "dir_open"))
		return (-1);
	return (sb_workdir_open(path));
}

static json_t *
api_req_json(struct sb_req *r)
{
	return (r->body);
}

static const struct sb_principal *
api_req_principal(struct sb_req *r)
{
	return (&r->principal);
}

static int
api_rate_hit(struct sb_plugin *p, const char *key, unsigned int requests,
    unsigned int seconds, unsigned int *retry_after)
{
	char	full[512];

	if (key == NULL || retry_after == NULL)
		return (0);
	/* Namespaced by plugin: one plugin cannot drain another's budget. */
	snprintf(full, sizeof(full), "p:%s:%s", p != NULL ? p->name : "?",
	    key);
	return (sb_rate_hit(full, requests, seconds, (uint64_t)sb_now_ms(),
	    retry_after));
}

static char *
api_donor_token(struct sb_plugin *p, const char *donor_id, const char *name)
{
	(void)p;
	return (sb_auth_donor_token(donor_id, name));
}

/* Sealing is keyed by the plugin's id, never by its (configurable) name. */
static char *
api_seal(struct sb_plugin *p, const void *plain, size_t len)
{
	return (p == NULL ? NULL : sb_seal(p->d.id, plain, len));
}

static char *
api_unseal(struct sb_plugin *p, const char *sealed, size_t *len)
{
	if (p == NULL) {
		if (len != NULL)
			*len = 0;
		return (NULL);
	}
	return (sb_unseal(p->d.id, sealed, len));
}

static int
api_reseal(struct sb_plugin *p, const char *sealed, char **out)
{
	if (out != NULL)
		*out = NULL;
	return (p == NULL ? -1 : sb_reseal(p->d.id, sealed, out));
}

/* Per plugin id and domain: one plugin's indexes never match another's. */
static char *
api_blind_index(struct sb_plugin *p, const char *domain, const void *value,
    size_t len)
{
	return (p == NULL ? NULL : sb_blind_index(p->d.id, domain, value,
	    len));
}

static int
api_publish(struct sb_plugin *p, const char *name, int version, json_t *data)
{
	return (sb_bus_publish(p, name, version, data) == 0 ? SB_OK :
	    SB_ERROR);
}

/* A room prefix and its authoriser (ws.c keeps the registry). */
static int
api_room_add(struct sb_plugin *p, const char *prefix, sb_room_auth_cb cb)
{
	char	err[256];

	if (!in_setup(p, "room_add"))
		return (SB_ERROR);
	if (sb_ws_room_stage(p, prefix, cb, err, sizeof(err)) == -1) {
		setup_error(p, "%s", err);
		return (SB_ERROR);
	}
	return (SB_OK);
}

static int
api_publish_room(struct sb_plugin *p, const char *room, const char *name,
    int version, json_t *data)
{
	return (sb_bus_publish_room(p, room, name, version, data) == 0 ?
	    SB_OK : SB_ERROR);
}

static int
api_job_kind_add(struct sb_plugin *p, const struct sb_job_kind *k)
{
	char	err[256];

	if (!in_setup(p, "job_kind_add"))
		return (SB_ERROR);
	if (sb_jobs_kind_add(p, k, err, sizeof(err)) == -1) {
		setup_error(p, "%s", err);
		return (SB_ERROR);
	}
	return (SB_OK);
}

/* Services (ABI 1.3): services.c keeps the registry. */
static int
api_service_export(struct sb_plugin *p, const char *name,
    const struct sb_service *table)
{
	char	err[256];

	if (!in_setup(p, "service_export"))
		return (SB_ERROR);
	if (sb_services_export(p, name, table, err, sizeof(err)) == -1) {
		setup_error(p, "%s", err);
		return (SB_ERROR);
	}
	return (SB_OK);
}

static int
api_service_import(struct sb_plugin *p, const char *name,
    uint32_t min_version, const struct sb_service **slot)
{
	char	err[256];

	if (!in_setup(p, "service_import"))
		return (SB_ERROR);
	if (sb_services_import(p, name, min_version, slot, err,
	    sizeof(err)) == -1) {
		setup_error(p, "%s", err);
		return (SB_ERROR);
	}
	return (SB_OK);
}

/* Phone numbers (ABI 1.3): one answer for every plugin (phone.cc). */
static int
api_phone_e164(struct sb_plugin *p, const char *input, const char *country,
    char *out, size_t outlen)
{
	(void)p;
	return (sb_phone_e164(input, country, out, outlen) == 0 ? SB_OK :
	    SB_ERROR);
}

/* Retention (ABI 1.3): staged like a job kind (retention.c). */
static int
api_retention_add(struct sb_plugin *p, const struct sb_retention *decl)
{
	char	err[256];

	if (!in_setup(p, "retention_add"))
		return (SB_ERROR);
	if (sb_retention_stage(p, decl, err, sizeof(err)) == -1) {
		setup_error(p, "%s", err);
		return (SB_ERROR);
	}
	return (SB_OK);
}

const struct sb_host_api sb_api = {
	.size = sizeof(struct sb_host_api),
	.abi_major = SB_ABI_MAJOR,
	.abi_minor = SB_ABI_MINOR,
	.log = api_log,
	.routes_add = api_routes_add,
	.permission_add = api_permission_add,
	.subscribe = api_subscribe,
	.event_declare = api_event_declare,
	.config_declare = api_config_declare,
	.migrations_add = api_migrations_add,
	.seccomp_allow = api_seccomp_allow,
	.config_get = api_config_get,
	.config_int = api_config_int,
	.config_bool = api_config_bool,
	.publish = api_publish,
	.db_query = api_db_query,
	.db_ok = api_db_ok,
	.db_sqlstate = api_db_sqlstate,
	.db_rows = sb_db_rows,
	.db_value = sb_db_value,
	.db_isnull = api_db_isnull,
	.db_row_json = sb_db_row_json,
	.db_free = sb_db_free,
	.db_begin = api_db_begin,
	.db_commit = api_db_commit,
	.db_rollback = api_db_rollback,
	.req_plugin = api_req_plugin,
	.req_method = api_req_method,
	.req_path = api_req_path,
	.req_id = api_req_id,
	.req_param = sb_req_param,
	.req_query = sb_req_query,
	.req_header = sb_req_header,
	.req_json = api_req_json,
	.req_principal = api_req_principal,
	.req_allowed = sb_req_allowed,
	.req_ip = sb_req_ip,
	.rate_hit = api_rate_hit,
	.donor_token = api_donor_token,
	.room_add = api_room_add,
	.publish_room = api_publish_room,
	.resp_header = sb_resp_header,
	.respond_json = sb_respond_json,
	.respond_error = sb_respond_error,
	.respond_raw = sb_respond_raw,
	.req_defer = sb_req_defer,
	.http_send = sb_http_send,
	.http_header = sb_http_header,
	.job_kind_add = api_job_kind_add,
	.job_enqueue = sb_jobs_enqueue,
	.job_id = sb_job_id,
	.job_payload = sb_job_payload,
	.job_attempt = sb_job_attempt,
	.job_key = sb_job_key,
	.job_plugin = sb_job_plugin,
	.job_done = sb_job_done,
	.job_retry = sb_job_retry,
	.job_fail = sb_job_fail,
	.seal = api_seal,
	.unseal = api_unseal,
	.req_body = sb_req_body,
	.mail_send = sb_mail_send,
	.console_panel_add = api_console_panel_add,
	.service_export = api_service_export,
	.service_import = api_service_import,
	.list_parse = sb_list_parse,
	.list_respond = sb_list_respond,
	.phone_e164 = api_phone_e164,
	.retention_add = api_retention_add,
	.reseal = api_reseal,
	.blind_index = api_blind_index,
	.privacy_erase_all = sb_privacy_erase_all,
	.req_parts = sb_req_parts,
	.respond_file = sb_respond_file,
	.signed_url = api_signed_url,
	.req_signed = api_req_signed,
	.dir_open = api_dir_open,
	.host_setting = api_host_setting,
};
