/*
 * Retention (ABI 1.3): what plugins keep for a limited time, and the
 * periodic host job that purges what is older.
 *
 * A plugin declares a retention in setup() (api->retention_add); the
 * declaration is staged and committed with the plugin, like its routes
 * and job kinds.  Its number of days is the key "<name>_retention_days"
 * of the plugin's section (environment SB_<PLUGIN>_<NAME>_RETENTION_DAYS),
 * read and checked right there, so a bad value fails that plugin's setup
 * with a message and never the host.  After every plugin is set up, the
 * parent registers the host job kind "host.retention" (every [host]
 * retention_interval seconds, once per cluster) when at least one
 * declaration keeps a limited number of days.  The job calls each
 * purge(p, cutoff) in a transaction of its own, logs the counts and
 * publishes "host.retention.purged" (plugin, retention, count, days:
 * never the data) for what it deleted.
 *
 * The host declares one of its own, "jobs" ([host] jobs_retention_days,
 * 14 by default): done jobs, whose payloads carry what their events did
 * (a donor's name, a message), are not kept for ever.
 */

#include <sys/queue.h>

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb.h"
#include "conf.h"

#define RETENTION_DAYS_MAX	36500		/* a hundred years */
#define RETENTION_KEY_SUFFIX	"_retention_days"
#define JOBS_RETENTION_DAYS	14		/* [host] jobs_retention_days */

struct retention {
	TAILQ_ENTRY(retention)	 list;
	struct sb_plugin	*owner;
	char			*name;
	char			*key;		/* "<name>_retention_days" */
	long long		 days;		/* 0: keep everything */
	long long		(*purge)(struct sb_plugin *, const char *);
};
TAILQ_HEAD(retention_list, retention);

static struct retention_list	staged = TAILQ_HEAD_INITIALIZER(staged);
static struct retention_list	committed = TAILQ_HEAD_INITIALIZER(committed);

static int	name_ok(const char *);
static int	days_parse(const char *, long long *);
static struct retention *find(struct retention_list *,
		    const struct sb_plugin *, const char *name,
		    const char *key);
static void	retention_free(struct retention *);
static void	retention_run(struct sb_job *);

static const struct sb_job_kind	retention_kind = {
	.name = "host.retention",
	.run = retention_run,
	.max_attempts = 3,
	.timeout_s = 600,
	.backoff_s = 60,
	/* interval_s: [host] retention_interval, set before registering */
};

/* [a-z][a-z0-9_]{0,31} */
static int
name_ok(const char *s)
{
	size_t	i;

	if (s == NULL || *s < 'a' || *s > 'z')
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= 32 || !((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return (0);
	}
	return (1);
}

/* A whole number of days, decimal digits only: "30", not "-1", "1k". */
static int
days_parse(const char *s, long long *out)
{
	long long	n;
	size_t		i;

	if (s == NULL || *s == '\0' || strlen(s) > 6)
		return (-1);
	n = 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		n = n * 10 + (s[i] - '0');
	}
	if (n > RETENTION_DAYS_MAX)
		return (-1);
	*out = n;
	return (0);
}

static struct retention *
find(struct retention_list *l, const struct sb_plugin *p, const char *name,
    const char *key)
{
	struct retention	*r;

	TAILQ_FOREACH(r, l, list) {
		if (r->owner != p)
			continue;
		if ((name != NULL && strcmp(r->name, name) == 0) ||
		    (key != NULL && strcmp(r->key, key) == 0))
			return (r);
	}
	return (NULL);
}

static void
retention_free(struct retention *r)
{
	free(r->name);
	free(r->key);
	free(r);
}

int
sb_retention_stage(struct sb_plugin *p, const struct sb_retention *decl,
    char *err, size_t errlen)
{
	struct retention	*r;
	const char		*v;
	char			 key[64];
	long long		 days;

	if (decl == NULL || decl->size < offsetof(struct sb_retention, spare) ||
	    decl->purge == NULL) {
		snprintf(err, errlen, "retention_add: a struct sb_retention "
		    "with its size and a purge()");
		return (-1);
	}
	if (!name_ok(decl->name)) {
		snprintf(err, errlen, "retention \"%s\" must be named "
		    "[a-z][a-z0-9_]{0,31}", decl->name != NULL ? decl->name :
		    "(null)");
		return (-1);
	}
	if (find(&staged, p, decl->name, NULL) != NULL ||
	    find(&committed, p, decl->name, NULL) != NULL) {
		snprintf(err, errlen, "retention %s is declared twice",
		    decl->name);
		return (-1);
	}
	if (decl->default_days > RETENTION_DAYS_MAX) {
		snprintf(err, errlen, "retention %s: default_days is more "
		    "than %d", decl->name, RETENTION_DAYS_MAX);
		return (-1);
	}
	snprintf(key, sizeof(key), "%s%s", decl->name, RETENTION_KEY_SUFFIX);
	days = decl->default_days;
	if ((v = sb_plugin_conf_value(p, key)) != NULL &&
	    days_parse(v, &days) == -1) {
		snprintf(err, errlen, "[plugin %s] %s must be a whole number "
		    "of days from 0 (keep everything) to %d, not \"%.32s\"",
		    p->name, key, RETENTION_DAYS_MAX, v);
		return (-1);
	}

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatalx("calloc");
	r->owner = p;
	r->name = sb_strdup(decl->name);
	r->key = sb_strdup(key);
	r->days = days;
	r->purge = decl->purge;
	TAILQ_INSERT_TAIL(&staged, r, list);
	return (0);
}

void
sb_retention_commit(struct sb_plugin *p)
{
	struct retention	*r, *next;

	for (r = TAILQ_FIRST(&staged); r != NULL; r = next) {
		next = TAILQ_NEXT(r, list);
		if (r->owner != p)
			continue;
		TAILQ_REMOVE(&staged, r, list);
		TAILQ_INSERT_TAIL(&committed, r, list);
	}
}

void
sb_retention_unstage(struct sb_plugin *p)
{
	struct retention	*r, *next;

	for (r = TAILQ_FIRST(&staged); r != NULL; r = next) {
		next = TAILQ_NEXT(r, list);
		if (r->owner != p)
			continue;
		TAILQ_REMOVE(&staged, r, list);
		retention_free(r);
	}
}

/* The plugin's section accepts "<name>_retention_days" it declared. */
int
sb_retention_is_key(const struct sb_plugin *p, const char *key)
{
	return (find(&staged, p, NULL, key) != NULL ||
	    find(&committed, p, NULL, key) != NULL);
}

/*
 * Parent, after every plugin's setup(): the host job, when there is
 * something to purge.
 */
void
sb_retention_parent_init(void)
{
	struct sb_job_kind	 kind;
	struct retention	*r;
	long long		 interval, days;
	char			 err[256];
	int			 ok, n;

	interval = sb_conf_int(sb_config, "host", "retention_interval", 3600,
	    &ok);
	if (!ok || interval < 1 || interval > 31 * 86400)
		fatalx("%s: [host] retention_interval must be a number of "
		    "seconds between 1 and %d", sb_settings.config_path,
		    31 * 86400);

	/* The host's own: finished jobs keep what their payloads carried. */
	days = sb_conf_int(sb_config, "host", "jobs_retention_days",
	    JOBS_RETENTION_DAYS, &ok);
	if (!ok || days < 0 || days > RETENTION_DAYS_MAX)
		fatalx("%s: [host] jobs_retention_days must be a whole number "
		    "of days from 0 (keep every finished job) to %d",
		    sb_settings.config_path, RETENTION_DAYS_MAX);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatalx("calloc");
	r->owner = sb_host_plugin;
	r->name = sb_strdup("jobs");
	r->key = sb_strdup("jobs_retention_days");
	r->days = days;
	r->purge = sb_jobs_purge;
	TAILQ_INSERT_TAIL(&committed, r, list);

	n = 0;
	TAILQ_FOREACH(r, &committed, list) {
		if (r->owner->state != SB_PLUGIN_READY)
			continue;
		if (r->days == 0) {
			sb_log(SB_LOG_INFO, "retention", "%s %s: kept (%s = "
			    "0)", r->owner->name, r->name, r->key);
			continue;
		}
		sb_log(SB_LOG_INFO, "retention", "%s %s: kept %lld day(s), "
		    "purged every %llds", r->owner->name, r->name, r->days,
		    interval);
		n++;
	}
	if (n == 0)
		return;

	kind = retention_kind;
	kind.interval_s = (unsigned int)interval;
	if (sb_jobs_kind_add(sb_host_plugin, &kind, err, sizeof(err)) == -1)
		fatalx("retention: %s", err);
	sb_jobs_commit(sb_host_plugin);
}

/* Worker: one transaction per declaration; a failure rolls back that
 * purge alone, and the job is retried. */
static void
retention_run(struct sb_job *job)
{
	struct retention	*r;
	struct tm		 tm;
	time_t			 t;
	long long		 count;
	json_t			*result;
	char			 cutoff[32];
	int			 failed;

	result = json_array();
	failed = 0;
	TAILQ_FOREACH(r, &committed, list) {
		if (r->days == 0 || r->owner->state != SB_PLUGIN_READY)
			continue;
		t = time(NULL) - (time_t)(r->days * 86400);
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(cutoff, sizeof(cutoff), "%Y-%m-%dT%H:%M:%SZ",
		    &tm) == 0) {
			failed++;
			continue;
		}
		if (sb_db_begin() == -1) {
			failed++;
			continue;
		}
		if ((count = r->purge(r->owner, cutoff)) < 0) {
			sb_db_rollback();
			sb_log(SB_LOG_ERROR, "retention", "%s %s: purge failed: "
			    "rolled back", r->owner->name, r->name);
			failed++;
			continue;
		}
		if (sb_db_commit() == -1) {
			sb_log(SB_LOG_ERROR, "retention", "%s %s: commit "
			    "failed", r->owner->name, r->name);
			failed++;
			continue;
		}
		if (count > 0) {
			sb_log(SB_LOG_INFO, "retention", "%s %s: purged %lld "
			    "row(s) older than %s", r->owner->name, r->name,
			    count, cutoff);
			sb_host_event("host.retention.purged", json_pack(
			    "{s:s, s:s, s:s, s:I, s:I}", "target", "plugin",
			    "plugin", r->owner->name, "retention", r->name,
			    "count", (json_int_t)count, "days",
			    (json_int_t)r->days));
		}
		json_array_append_new(result, json_pack("{s:s, s:s, s:I}",
		    "plugin", r->owner->name, "retention", r->name, "count",
		    (json_int_t)count));
	}
	if (failed > 0) {
		json_decref(result);
		sb_job_retry(job, "a purge failed (see the log)", 0);
		return;
	}
	sb_job_done(job, json_pack("{s:o}", "purged", result));
}
