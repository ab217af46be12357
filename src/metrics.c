/*
 * Node-wide counters and the two routes that show them: /metrics
 * (Prometheus text) and /api/v1/stats (JSON).
 *
 * The counters live in an anonymous shared mapping created by the parent
 * before the fork, so every worker adds to the same numbers and any
 * worker can answer for the node; updates are relaxed atomic adds (a
 * scrape may see one request counted and its duration not yet: harmless).
 * Each node reports its own counters; Prometheus sums nodes.
 */

#include <sys/mman.h>
#include <sys/resource.h>

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"

#define MAX_PLUGINS	64

/* Upper bounds of the request-duration histogram, milliseconds. */
static const unsigned int buckets_ms[] = {
	1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};
#define NBUCKETS	(sizeof(buckets_ms) / sizeof(buckets_ms[0]))

struct shared_metrics {
	uint64_t	status[6];		/* 1xx..5xx, other */
	uint64_t	duration_ms_sum;
	uint64_t	duration_le[NBUCKETS + 1];	/* last: +Inf */
	uint64_t	plugin_requests[MAX_PLUGINS];
	uint64_t	started_at_ms;
};

static struct shared_metrics	*m = NULL;

static void	metrics_prometheus(struct sb_req *);
static void	metrics_stats(struct sb_req *);

const struct sb_route sb_metrics_routes[] = {
	{ .method = "GET", .path = "/metrics",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_PROBE,
	  .handler = metrics_prometheus,
	  .summary = "Prometheus metrics: open from loopback, otherwise "
	  "metrics.read" },
	{ .method = "GET", .path = "/api/v1/stats",
	  .permission = "system.read", .handler = metrics_stats,
	  .summary = "Memory, database size, per-plugin and HTTP counters" },
	SB_ROUTE_END
};

int
sb_metrics_parent_init(void)
{
	m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		m = NULL;
		return (-1);
	}
	memset(m, 0, sizeof(*m));
	m->started_at_ms = (uint64_t)sb_now_ms();
	return (0);
}

/* Index of a plugin in load order, or -1. */
static int
plugin_index(const struct sb_plugin *p)
{
	struct sb_plugin	*q;
	int			 i;

	i = 0;
	TAILQ_FOREACH(q, &sb_plugins, list) {
		if (q == p)
			return (i < MAX_PLUGINS ? i : -1);
		i++;
	}
	return (-1);
}

void
sb_metrics_request(const struct sb_plugin *p, int status, uint64_t ms)
{
	size_t	b;
	int	i;

	if (m == NULL)
		return;
	i = status >= 100 && status < 600 ? status / 100 - 1 : 5;
	__atomic_add_fetch(&m->status[i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->duration_ms_sum, ms, __ATOMIC_RELAXED);
	for (b = 0; b < NBUCKETS && ms > buckets_ms[b]; b++)
		;
	__atomic_add_fetch(&m->duration_le[b], 1, __ATOMIC_RELAXED);
	if (p != NULL && (i = plugin_index(p)) >= 0)
		__atomic_add_fetch(&m->plugin_requests[i], 1, __ATOMIC_RELAXED);
}

static uint64_t
load(const uint64_t *v)
{
	return (__atomic_load_n(v, __ATOMIC_RELAXED));
}

static int
loopback(const char *ip)
{
	return (strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
	    strncmp(ip, "::ffff:127.", 11) == 0);
}

/* Resident memory of this process, bytes (Linux getrusage: kilobytes). */
static long long
rss_bytes(void)
{
	struct rusage	ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return (-1);
	return ((long long)ru.ru_maxrss * 1024);
}

/* Flatten {"a": 1, "b": {"c": 2}} into name_a 1, name_b_c 2 gauges. */
static void
append_json(struct kore_buf *b, const char *prefix, json_t *o)
{
	const char	*k;
	json_t		*v;
	char		 name[160];

	json_object_foreach(o, k, v) {
		snprintf(name, sizeof(name), "%s_%s", prefix, k);
		if (json_is_object(v))
			append_json(b, name, v);
		else if (json_is_number(v))
			kore_buf_appendf(b, "%s %g\n", name,
			    json_number_value(v));
	}
}

static int
metric_name_ok(const char *s)
{
	size_t	n;

	if (s == NULL || (n = strlen(s)) == 0 || n > 64 || s[0] < 'a' ||
	    s[0] > 'z')
		return (0);
	return (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n);
}

/* A label value as Prometheus quotes it: \\, \" and \n escaped. */
static void
append_label_value(struct kore_buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			kore_buf_appendf(b, "\\%c", *v);
		else if (*v == '\n')
			kore_buf_appendf(b, "\\n");
		else
			kore_buf_append(b, v, 1);
	}
}

/*
 * A plugin's "metrics" (its stats hook, include/switchboard/plugin.h) as
 * gauges switchboard_<plugin>_<name>{labels} value.  Entries are grouped
 * by name so each has one HELP/TYPE; malformed ones are left out.
 */
static void
plugin_metrics(struct kore_buf *b, struct sb_plugin *p, json_t *list)
{
	json_t		*e, *f, *labels, *lv, *done;
	const char	*name, *k, *help;
	size_t		 i, j, nl;

	if (!json_is_array(list) || !metric_name_ok(p->name))
		return;
	done = json_object();
	json_array_foreach(list, i, e) {
		name = json_string_value(json_object_get(e, "name"));
		if (!metric_name_ok(name) || json_object_get(done, name) != NULL)
			continue;
		json_object_set_new(done, name, json_true());
		help = json_string_value(json_object_get(e, "help"));
		kore_buf_appendf(b, "# HELP switchboard_%s_%s ", p->name, name);
		append_label_value(b, help != NULL ? help : name);
		kore_buf_appendf(b, "\n# TYPE switchboard_%s_%s gauge\n",
		    p->name, name);
		for (j = i; j < json_array_size(list); j++) {
			f = json_array_get(list, j);
			if (!json_is_string(json_object_get(f, "name")) ||
			    strcmp(json_string_value(json_object_get(f,
			    "name")), name) != 0 ||
			    !json_is_number(json_object_get(f, "value")))
				continue;
			labels = json_object_get(f, "labels");
			nl = 0;
			json_object_foreach(labels, k, lv)
				if (!metric_name_ok(k) || !json_is_string(lv))
					nl = SIZE_MAX;
			if (nl == SIZE_MAX)
				continue;
			kore_buf_appendf(b, "switchboard_%s_%s", p->name, name);
			json_object_foreach(labels, k, lv) {
				kore_buf_appendf(b, "%s%s=\"", nl++ == 0 ?
				    "{" : ",", k);
				append_label_value(b, json_string_value(lv));
				kore_buf_appendf(b, "\"");
			}
			kore_buf_appendf(b, "%s %.17g\n", nl > 0 ? "}" : "",
			    json_number_value(json_object_get(f, "value")));
		}
	}
	json_decref(done);
}

static void
metrics_prometheus(struct sb_req *req)
{
	struct kore_buf		 b;
	struct sb_plugin	*p;
	static const char	*cls[] = { "1xx", "2xx", "3xx", "4xx", "5xx",
				    "other" };
	uint64_t		 cum;
	size_t			 i;
	int			 idx;
	json_t			*jobs;

	/* Loopback scrapers need no token; anyone else needs metrics.read. */
	if (!loopback(req->ip) && !sb_req_allowed(req, "metrics.read")) {
		if (req->principal.kind == SB_ACTOR_ANONYMOUS) {
			sb_resp_header(req, "www-authenticate", "Bearer");
			sb_respond_error(req, 401, "UNAUTHENTICATED",
			    "authentication required", NULL);
		} else {
			sb_respond_error(req, 403, "FORBIDDEN", "missing "
			    "permission", NULL);
		}
		return;
	}
	if (m == NULL) {
		sb_respond_error(req, 503, "UNAVAILABLE", "metrics are not "
		    "initialised", NULL);
		return;
	}

	kore_buf_init(&b, 4096);
	kore_buf_appendf(&b, "# HELP switchboard_http_requests_total HTTP "
	    "responses by status class.\n# TYPE switchboard_http_requests_total "
	    "counter\n");
	for (i = 0; i < 6; i++)
		kore_buf_appendf(&b, "switchboard_http_requests_total{code=\"%s\"} "
		    "%llu\n", cls[i], (unsigned long long)load(&m->status[i]));

	kore_buf_appendf(&b, "# HELP switchboard_http_request_duration_seconds "
	    "Time from dispatch to response.\n# TYPE "
	    "switchboard_http_request_duration_seconds histogram\n");
	cum = 0;
	for (i = 0; i <= NBUCKETS; i++) {
		cum += load(&m->duration_le[i]);
		if (i < NBUCKETS)
			kore_buf_appendf(&b, "switchboard_http_request_duration_"
			    "seconds_bucket{le=\"%g\"} %llu\n",
			    buckets_ms[i] / 1000.0, (unsigned long long)cum);
		else
			kore_buf_appendf(&b, "switchboard_http_request_duration_"
			    "seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	kore_buf_appendf(&b, "switchboard_http_request_duration_seconds_sum "
	    "%g\nswitchboard_http_request_duration_seconds_count %llu\n",
	    load(&m->duration_ms_sum) / 1000.0, (unsigned long long)cum);

	kore_buf_appendf(&b, "# HELP switchboard_plugin_requests_total "
	    "Requests routed to each plugin.\n# TYPE "
	    "switchboard_plugin_requests_total counter\n# HELP "
	    "switchboard_plugin_up 1 when the plugin is ready.\n# TYPE "
	    "switchboard_plugin_up gauge\n");
	TAILQ_FOREACH(p, &sb_plugins, list) {
		idx = plugin_index(p);
		kore_buf_appendf(&b, "switchboard_plugin_requests_total{plugin="
		    "\"%s\"} %llu\n", p->name, idx >= 0 ? (unsigned long long)
		    load(&m->plugin_requests[idx]) : 0ULL);
		kore_buf_appendf(&b, "switchboard_plugin_up{plugin=\"%s\"} %d\n",
		    p->name, p->state == SB_PLUGIN_READY);
	}

	kore_buf_appendf(&b, "# TYPE switchboard_uptime_seconds gauge\n"
	    "switchboard_uptime_seconds %llu\n", (unsigned long long)
	    (((uint64_t)sb_now_ms() - m->started_at_ms) / 1000));
	if ((jobs = sb_jobs_metrics()) != NULL) {
		kore_buf_appendf(&b, "# Jobs (durable queue), this node\n");
		append_json(&b, "switchboard_jobs", jobs);
		json_decref(jobs);
	}
	TAILQ_FOREACH(p, &sb_plugins, list) {
		json_t	*out;

		if (p->state != SB_PLUGIN_READY || p->d.stats == NULL)
			continue;
		out = json_object();
		if (p->d.stats(p, out) == SB_OK)
			plugin_metrics(&b, p, json_object_get(out, "metrics"));
		json_decref(out);
	}

	sb_respond_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8",
	    b.data, b.offset);
	kore_buf_cleanup(&b);
}

/*
 * One ready plugin's own figures (its descriptor's stats hook) into
 * entry.stats; its messages_per_day added into days (day -> count).
 */
static void
plugin_stats(struct sb_plugin *p, json_t *entry, json_t *days)
{
	json_t		*out, *list, *d, *have;
	const char	*day;
	size_t		 i;

	if (p->state != SB_PLUGIN_READY || p->d.stats == NULL)
		return;
	out = json_object();
	if (p->d.stats(p, out) != SB_OK) {
		json_decref(out);
		return;
	}
	/* Prometheus figures are for /metrics only. */
	json_object_del(out, "metrics");
	list = json_object_get(out, "messages_per_day");
	json_array_foreach(list, i, d) {
		day = json_string_value(json_object_get(d, "day"));
		if (day == NULL || strlen(day) != 10 ||
		    !json_is_integer(json_object_get(d, "count")))
			continue;
		have = json_object_get(days, day);
		json_object_set_new(days, day, json_integer(
		    json_integer_value(have) + json_integer_value(
		    json_object_get(d, "count"))));
	}
	json_object_set_new(entry, "stats", out);
}

static int
day_cmp(const void *a, const void *b)
{
	return (strcmp(*(const char *const *)a, *(const char *const *)b));
}

/* {"2026-11-20": 3, ...} as [{"day","count"}], oldest first. */
static json_t *
days_list(json_t *days)
{
	json_t		*out, *v;
	const char	*day, **keys;
	size_t		 n, i;

	out = json_array();
	if ((n = json_object_size(days)) == 0 ||
	    (keys = calloc(n, sizeof(*keys))) == NULL)
		return (out);
	i = 0;
	json_object_foreach(days, day, v)
		keys[i++] = day;
	qsort(keys, n, sizeof(*keys), day_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(out, json_pack("{s:s, s:O}", "day",
		    keys[i], "count", json_object_get(days, keys[i])));
	free(keys);
	return (out);
}

static void
metrics_stats(struct sb_req *req)
{
	struct sb_plugin	*p;
	json_t			*plugins, *http, *body, *jobs, *entry, *days;
	int			 idx;

	plugins = json_array();
	days = json_object();
	TAILQ_FOREACH(p, &sb_plugins, list) {
		idx = plugin_index(p);
		entry = json_pack("{s:s, s:s, s:I}",
		    "name", p->name, "state", sb_plugin_state_name(p->state),
		    "requests", (json_int_t)(idx >= 0 && m != NULL ?
		    load(&m->plugin_requests[idx]) : 0));
		plugin_stats(p, entry, days);
		json_array_append_new(plugins, entry);
	}
	http = json_object();
	if (m != NULL) {
		json_object_set_new(http, "2xx", json_integer((json_int_t)
		    load(&m->status[1])));
		json_object_set_new(http, "4xx", json_integer((json_int_t)
		    load(&m->status[3])));
		json_object_set_new(http, "5xx", json_integer((json_int_t)
		    load(&m->status[4])));
	}
	body = json_pack("{s:s, s:I, s:{s:I, s:i}, s:I, s:o, s:o}",
	    "version", SB_VERSION,
	    "uptime_seconds", (json_int_t)(m != NULL ?
	    ((uint64_t)sb_now_ms() - m->started_at_ms) / 1000 : 0),
	    "memory", "worker_max_rss_bytes", (json_int_t)rss_bytes(),
	    "workers", sb_settings.workers,
	    "db_size_bytes", (json_int_t)sb_db_size(),
	    "plugins", plugins, "http", http);
	if ((jobs = sb_jobs_metrics()) != NULL)
		json_object_set_new(body, "jobs", jobs);
	/* API.md: daily message counts, every plugin's added up. */
	json_object_set_new(body, "messages_per_day", days_list(days));
	json_decref(days);
	sb_respond_json(req, 200, body);
}
