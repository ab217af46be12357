/*
 * Durable jobs in PostgreSQL: the kinds plugins register, enqueueing in
 * the caller's transaction (outbox), the claim loop every worker runs,
 * periodic kinds, node-wide metrics and the /api/v1/jobs routes.
 *
 * Claim.  Every worker runs a Kore timer ([host] jobs_poll_ms) that, while
 * it has fewer than [host] jobs_concurrency jobs in flight, claims a batch
 * with one statement: the due queued jobs of the kinds ready in this
 * worker, highest priority first, are locked FOR UPDATE SKIP LOCKED and
 * updated to running with a lease (now + the kind's timeout_s) in the
 * same statement.  Two claimers never lock the same row and a row that
 * another claimer updated first no longer matches, so any number of
 * workers and nodes share one queue without double runs.  An enqueue
 * wakes the claimer of its own worker at once (a 1 ms timer, i.e. after
 * the enqueuing handler has committed); other workers and nodes see the
 * job at their next poll.  A full batch claims again at once.
 *
 * Lease.  A job whose lease ran out (its worker was killed, or run() did
 * not finish in time) is put back in the queue by whichever worker looks
 * next (about once a second), or dead-lettered when that was its last
 * attempt.  Every finish names its claim (id, runs, locked_by, running):
 * the handle of a claim that expired and was claimed again elsewhere
 * cannot finish the job a second time.  Idempotency keys make the re-run
 * harmless upstream.
 *
 * Finishing.  job_done() of several jobs is written with one UPDATE per
 * batch (at the end of the claim pass, or 1 ms later from a callback);
 * inside an open transaction it is written at once, so it commits or
 * rolls back with the plugin's work.  job_retry() and job_fail() are
 * written at once.  Retries wait backoff_s * 2^(attempt-1), +-25 % jitter,
 * at most an hour, or the Retry-After the plugin passes.
 *
 * Periodic kinds (interval_s > 0) have a row in job_schedules.  Slots are
 * multiples of the interval since the epoch (UTC), so 3600 runs on the
 * hour and 86400 at midnight.  Each pass, one statement moves next_run_at
 * of every due schedule to the next slot and enqueues the slot's job with
 * the key '<kind>@<slot>': row locks make exactly one worker of the
 * cluster win a slot, and the key would refuse a second job anyway.
 * Slots missed while no node ran are not caught up: one run follows.
 *
 * Everything here runs on the worker's event loop; the database is the
 * worker's synchronous connection (short indexed statements).  run() must
 * not block either: it finishes the job later, from a callback.
 */

#include <sys/mman.h>

#include <kore/kore.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "sb.h"
#include "conf.h"

#define DEFAULT_MAX_ATTEMPTS	8
#define DEFAULT_TIMEOUT_S	60
#define DEFAULT_BACKOFF_S	2
#define BACKOFF_CAP_S		3600
#define RECLAIM_EVERY_MS	1000
#define DB_BACKOFF_MS		1000
#define FLUSH_AT		256	/* pending finishes written at once */
#define JOB_MAGIC		0x6a6f6273U

static const char *const statuses[] = {
	"queued", "running", "done", "dead", NULL
};

/* A registered kind: a copy of the plugin's table (name owned). */
struct kind {
	TAILQ_ENTRY(kind)	list;
	struct sb_job_kind	k;
	char			*name;		/* k.name points here */
	struct sb_plugin	*owner;
};
TAILQ_HEAD(kind_list, kind);

/* A claimed job, handed to run() and valid until it is finished. */
struct sb_job {
	TAILQ_ENTRY(sb_job)	list;
	uint32_t		magic;
	int64_t			id;
	int			attempt;
	int			runs;
	struct kind		*kind;
	json_t			*payload;
	char			*key;
	int64_t			claimed_ms;
	int64_t			lease_ms;	/* local end of the lease */
};
TAILQ_HEAD(job_list, sb_job);

/* Node-wide counters in a shared mapping (created before the fork). */
static const uint64_t	lat_le[] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
	300000
};
#define LAT_BUCKETS	(sizeof(lat_le) / sizeof(lat_le[0]))

struct jobs_shm {
	uint64_t	enqueued;
	uint64_t	claimed;
	uint64_t	done;
	uint64_t	retried;
	uint64_t	dead;
	uint64_t	failures;
	uint64_t	reclaimed;
	uint64_t	lost;
	uint64_t	lat_count;
	uint64_t	lat_sum;
	uint64_t	lat_max;
	uint64_t	lat_bucket[LAT_BUCKETS + 1];
	uint64_t	run_count;
	uint64_t	run_sum;
	uint64_t	run_max;
};

static struct kind_list	kinds = TAILQ_HEAD_INITIALIZER(kinds);
static struct kind_list	staged = TAILQ_HEAD_INITIALIZER(staged);
static struct jobs_shm	local_shm;
static struct jobs_shm	*shm = &local_shm;

/* Settings, read in the parent. */
static struct {
	long long	poll_ms;
	long long	concurrency;
	long long	batch;
	char		host[256];
} cfg = { 100, 64, 64, "" };

/* This worker's state. */
static struct {
	int		active;		/* some kind can run here */
	int		in_tick;
	int		rewake;		/* an enqueue during the pass */
	int		wake_pending;
	int		seeded;
	char		me[300];	/* locked_by: "<host>:<pid>" */
	char		*kinds_lit;	/* text[] of runnable kinds */
	char		*timeouts_lit;	/* int[], same order */
	char		*periodic_lit;	/* text[] of periodic kinds */
	char		*periodic_max_lit; /* int[] of their max_attempts */
	struct job_list	inflight;
	json_t		*pending;	/* [{id, runs, result, run_ms}] */
	int64_t		last_reclaim;
	int64_t		db_backoff_until;
} w = { .inflight = TAILQ_HEAD_INITIALIZER(w.inflight) };

static struct kind	*kind_find(struct kind_list *, const char *);
static int		 kind_name_ok(const struct sb_plugin *, const char *);
static long long	 conf_int(const char *, long long, long long,
			    long long);
static void		 counter_add(uint64_t *, uint64_t);
static void		 counter_max(uint64_t *, uint64_t);
static void		 observe_latency(uint64_t);
static void		 observe_run(uint64_t);
static int		 in_transaction(void);
static void		 wake(void);
static void		 wake_cb(void *, uint64_t);
static void		 poll_cb(void *, uint64_t);
static void		 tick(void);
static int		 db_failed(struct sb_db_res *, const char *);
static void		 seed_schedules(void);
static void		 reclaim(void);
static void		 schedules(void);
static int		 claim(int, struct sb_job **);
static int		 capacity(void);
static void		 flush(void);
static void		 mark_done(json_t *);
static void		 job_free(struct sb_job *);
static int		 job_live(struct sb_job *, const char *);
static double		 backoff(const struct sb_job *, unsigned int);
static char		*int_array(const int *, size_t);

static void		 jobs_list(struct sb_req *);
static void		 jobs_get(struct sb_req *);
static void		 jobs_retry(struct sb_req *);
static void		 jobs_stats(struct sb_req *);

const struct sb_route sb_job_routes[] = {
	{ .method = "GET", .path = "/api/v1/jobs",
	  .permission = "jobs.read", .handler = jobs_list,
	  .summary = "Durable jobs, newest first; ?status=queued|running|"
	  "done|dead, ?kind=" },
	{ .method = "GET", .path = "/api/v1/jobs/stats",
	  .permission = "jobs.read", .handler = jobs_stats,
	  .summary = "Jobs per status, and this node's counters and "
	  "latencies" },
	{ .method = "GET", .path = "/api/v1/jobs/{id}",
	  .permission = "jobs.read", .handler = jobs_get,
	  .summary = "One job" },
	{ .method = "POST", .path = "/api/v1/jobs/{id}/retry",
	  .permission = "jobs.manage", .handler = jobs_retry,
	  .summary = "Queue a dead job again (a fresh round of attempts)" },
	SB_ROUTE_END
};

#define JOB_COLUMNS							\
	"id, kind, status, priority, attempts, max_attempts, run_at, "	\
	"idempotency_key, last_error, created_at, started_at, finished_at, "\
	"updated_at, lease_until, locked_by, payload, result"

/* ------------------------------------------------------------------------
 * Kinds: declared in setup(), staged per plugin, committed with it.
 */

static struct kind *
kind_find(struct kind_list *list, const char *name)
{
	struct kind	*k;

	TAILQ_FOREACH(k, list, list) {
		if (strcmp(k->k.name, name) == 0)
			return (k);
	}
	return (NULL);
}

/* "<plugin>.<what>": the plugin's name, a dot, then [a-z0-9_.-]. */
static int
kind_name_ok(const struct sb_plugin *p, const char *name)
{
	size_t		 len;
	const char	*c;

	len = strlen(p->name);
	if (strlen(name) > 128 || strncmp(name, p->name, len) != 0 ||
	    name[len] != '.' || name[len + 1] == '\0')
		return (0);
	for (c = name + len + 1; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		    *c == '_' || *c == '.' || *c == '-'))
			return (0);
	}
	return (1);
}

int
sb_jobs_kind_add(struct sb_plugin *p, const struct sb_job_kind *jk,
    char *err, size_t errlen)
{
	struct kind	*k;

	if (jk == NULL || jk->name == NULL || jk->run == NULL) {
		snprintf(err, errlen, "job kind without a name or run()");
		return (-1);
	}
	if (!kind_name_ok(p, jk->name)) {
		snprintf(err, errlen, "job kind \"%s\" must be named "
		    "\"%s.<what>\" ([a-z0-9_.-], at most 128 characters)",
		    jk->name, p->name);
		return (-1);
	}
	if (kind_find(&kinds, jk->name) != NULL ||
	    kind_find(&staged, jk->name) != NULL) {
		snprintf(err, errlen, "job kind %s is already registered",
		    jk->name);
		return (-1);
	}
	if (jk->max_attempts > 1000 || jk->timeout_s > 86400 ||
	    jk->backoff_s > BACKOFF_CAP_S || jk->interval_s > 31 * 86400) {
		snprintf(err, errlen, "job kind %s: max_attempts <= 1000, "
		    "timeout_s <= 86400, backoff_s <= 3600, interval_s <= "
		    "31 days", jk->name);
		return (-1);
	}
	if ((k = calloc(1, sizeof(*k))) == NULL)
		fatalx("calloc");
	k->k = *jk;
	k->name = sb_strdup(jk->name);
	k->k.name = k->name;
	if (k->k.max_attempts == 0)
		k->k.max_attempts = DEFAULT_MAX_ATTEMPTS;
	if (k->k.timeout_s == 0)
		k->k.timeout_s = DEFAULT_TIMEOUT_S;
	if (k->k.backoff_s == 0)
		k->k.backoff_s = DEFAULT_BACKOFF_S;
	k->owner = p;
	TAILQ_INSERT_TAIL(&staged, k, list);
	return (0);
}

/* setup() succeeded: the plugin's kinds become real. */
void
sb_jobs_commit(struct sb_plugin *p)
{
	struct kind	*k, *next;

	for (k = TAILQ_FIRST(&staged); k != NULL; k = next) {
		next = TAILQ_NEXT(k, list);
		if (k->owner != p)
			continue;
		TAILQ_REMOVE(&staged, k, list);
		TAILQ_INSERT_TAIL(&kinds, k, list);
	}
}

/* setup() failed or the plugin is unloaded: forget what it staged. */
void
sb_jobs_unstage(struct sb_plugin *p)
{
	struct kind	*k, *next;

	for (k = TAILQ_FIRST(&staged); k != NULL; k = next) {
		next = TAILQ_NEXT(k, list);
		if (k->owner != p)
			continue;
		TAILQ_REMOVE(&staged, k, list);
		free(k->name);
		free(k);
	}
}

/* ------------------------------------------------------------------------
 * Settings and metrics (parent, before the fork).
 */

static long long
conf_int(const char *key, long long fallback, long long min, long long max)
{
	long long	v;
	int		ok;

	v = sb_conf_int(sb_config, "host", key, fallback, &ok);
	if (!ok || v < min || v > max)
		fatalx("[host] %s must be a number between %lld and %lld",
		    key, min, max);
	return (v);
}

int
sb_jobs_parent_init(void)
{
	struct jobs_shm	*map;

	cfg.poll_ms = conf_int("jobs_poll_ms", 100, 10, 60000);
	cfg.concurrency = conf_int("jobs_concurrency", 64, 0, 100000);
	cfg.batch = conf_int("jobs_batch", 64, 1, 1000);
	if (gethostname(cfg.host, sizeof(cfg.host)) == -1 ||
	    cfg.host[0] == '\0')
		snprintf(cfg.host, sizeof(cfg.host), "node");
	cfg.host[sizeof(cfg.host) - 1] = '\0';

	map = mmap(NULL, sizeof(*map), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		sb_log(SB_LOG_ERROR, "jobs", "mmap: %s", strerror(errno));
		return (-1);
	}
	memset(map, 0, sizeof(*map));
	shm = map;
	return (0);
}

static void
counter_add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void
counter_max(uint64_t *c, uint64_t v)
{
	uint64_t	cur;

	cur = __atomic_load_n(c, __ATOMIC_RELAXED);
	while (v > cur && !__atomic_compare_exchange_n(c, &cur, v, 1,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void
observe_latency(uint64_t ms)
{
	size_t	i;

	for (i = 0; i < LAT_BUCKETS && ms > lat_le[i]; i++)
		;
	counter_add(&shm->lat_bucket[i], 1);
	counter_add(&shm->lat_count, 1);
	counter_add(&shm->lat_sum, ms);
	counter_max(&shm->lat_max, ms);
}

static void
observe_run(uint64_t ms)
{
	counter_add(&shm->run_count, 1);
	counter_add(&shm->run_sum, ms);
	counter_max(&shm->run_max, ms);
}

#define LOAD(f)	((json_int_t)__atomic_load_n(&shm->f, __ATOMIC_RELAXED))

/*
 * This node's counters since it started (every worker's), for the stats
 * route and /metrics.  latency_ms is enqueue -> done; its buckets are
 * cumulative (Prometheus' le).  run_ms is claim -> finish.  Caller owns.
 */
json_t *
sb_jobs_metrics(void)
{
	json_t		*buckets, *o;
	json_int_t	 n, cum;
	size_t		 i;

	buckets = json_array();
	cum = 0;
	for (i = 0; i <= LAT_BUCKETS; i++) {
		cum += LOAD(lat_bucket[i]);
		if (i < LAT_BUCKETS)
			json_array_append_new(buckets, json_pack("{s:I, s:I}",
			    "le", (json_int_t)lat_le[i], "count", cum));
		else
			json_array_append_new(buckets, json_pack("{s:s, s:I}",
			    "le", "+Inf", "count", cum));
	}
	n = LOAD(lat_count);
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "enqueued", LOAD(enqueued), "claimed", LOAD(claimed),
	    "done", LOAD(done), "retried", LOAD(retried), "dead", LOAD(dead),
	    "failures", LOAD(failures), "reclaimed", LOAD(reclaimed),
	    "lost", LOAD(lost));
	json_object_set_new(o, "latency_ms", json_pack("{s:I, s:I, s:f, s:I, "
	    "s:o}", "count", n, "sum", LOAD(lat_sum), "avg", n > 0 ?
	    (double)LOAD(lat_sum) / (double)n : 0.0, "max", LOAD(lat_max),
	    "buckets", buckets));
	n = LOAD(run_count);
	json_object_set_new(o, "run_ms", json_pack("{s:I, s:I, s:f, s:I}",
	    "count", n, "sum", LOAD(run_sum), "avg", n > 0 ?
	    (double)LOAD(run_sum) / (double)n : 0.0, "max", LOAD(run_max)));
	return (o);
}

/* ------------------------------------------------------------------------
 * The worker: claim loop, schedules, finishing.
 */

static char *
int_array(const int *v, size_t n)
{
	char	*out;
	size_t	 i, len, off;

	len = 2 + n * 12;
	if ((out = malloc(len + 1)) == NULL)
		fatalx("malloc");
	off = 0;
	out[off++] = '{';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(out + off, len + 1 - off, "%s%d",
		    i > 0 ? "," : "", v[i]);
	out[off++] = '}';
	out[off] = '\0';
	return (out);
}

void
sb_jobs_worker_init(void)
{
	struct kind	*k;
	json_t		*names, *pnames;
	int		*timeouts, *pmax;
	size_t		 n, np, total;

	snprintf(w.me, sizeof(w.me), "%s:%d", cfg.host, (int)getpid());
	w.pending = json_array();

	total = 0;
	TAILQ_FOREACH(k, &kinds, list)
		total++;
	if (total == 0 || cfg.concurrency == 0)
		return;
	if ((timeouts = calloc(total, sizeof(int))) == NULL ||
	    (pmax = calloc(total, sizeof(int))) == NULL)
		fatalx("calloc");
	names = json_array();
	pnames = json_array();
	n = np = 0;
	/* A kind whose plugin is not ready in this worker is left to the
	 * workers where it is. */
	TAILQ_FOREACH(k, &kinds, list) {
		if (k->owner->state != SB_PLUGIN_READY)
			continue;
		json_array_append_new(names, json_string(k->k.name));
		timeouts[n++] = (int)k->k.timeout_s;
		if (k->k.interval_s > 0) {
			json_array_append_new(pnames, json_string(k->k.name));
			pmax[np++] = (int)k->k.max_attempts;
		}
	}
	if (n > 0) {
		w.kinds_lit = sb_db_text_array(names);
		w.timeouts_lit = int_array(timeouts, n);
		if (np > 0) {
			w.periodic_lit = sb_db_text_array(pnames);
			w.periodic_max_lit = int_array(pmax, np);
		}
		w.active = 1;
		(void)kore_timer_add(poll_cb, (uint64_t)cfg.poll_ms, NULL, 0);
		wake();
	}
	json_decref(names);
	json_decref(pnames);
	free(timeouts);
	free(pmax);
}

/*
 * Orderly stop: write what finished, and hand back the leases of jobs
 * still running here so that another worker takes them at once rather
 * than after their lease (their attempt counts).
 */
void
sb_jobs_worker_fini(void)
{
	const char	*params[1];

	if (!w.active || in_transaction())
		return;
	flush();
	if (TAILQ_EMPTY(&w.inflight))
		return;
	params[0] = w.me;
	(void)sb_db_exec("UPDATE jobs SET lease_until = now(), updated_at = "
	    "now() WHERE status = 'running' AND locked_by = $1", 1, params);
}

/* A transaction is open on the worker's connection (a plugin's). */
static int
in_transaction(void)
{
	PGconn			*c;
	PGTransactionStatusType	 st;

	if ((c = sb_db_conn()) == NULL)
		return (0);
	st = PQtransactionStatus(c);
	return (st == PQTRANS_INTRANS || st == PQTRANS_INERROR);
}

/* Run a pass soon: after the current handler or callback returns. */
static void
wake(void)
{
	if (!w.active || w.wake_pending || w.in_tick)
		return;
	w.rewake = 0;
	w.wake_pending = 1;
	/* 1 ms, not 0: Kore would run a 0 ms timer in the same pass. */
	(void)kore_timer_add(wake_cb, 1, NULL, KORE_TIMER_ONESHOT);
}

static void
wake_cb(void *arg, uint64_t now)
{
	(void)arg;
	(void)now;
	w.wake_pending = 0;
	tick();
}

static void
poll_cb(void *arg, uint64_t now)
{
	(void)arg;
	(void)now;
	tick();
}

static int
db_failed(struct sb_db_res *r, const char *what)
{
	if (r->ok)
		return (0);
	if (w.db_backoff_until == 0)
		sb_log(SB_LOG_WARN, "jobs", "%s failed (%s): %s", what,
		    r->sqlstate, r->res != NULL ?
		    PQresultErrorMessage(r->res) : "no connection");
	w.db_backoff_until = sb_now_ms() + DB_BACKOFF_MS;
	return (1);
}

static void
tick(void)
{
	struct sb_job	**fresh;
	int64_t		 now;
	int		 n, got, i;

	if (!w.active || w.in_tick)
		return;
	now = sb_now_ms();
	/* A plugin left a transaction open: never claim inside it. */
	if (in_transaction() || now < w.db_backoff_until)
		return;
	w.db_backoff_until = 0;
	w.in_tick = 1;

	flush();
	if (!w.seeded)
		seed_schedules();
	if (now - w.last_reclaim >= RECLAIM_EVERY_MS) {
		w.last_reclaim = now;
		reclaim();
	}
	if (w.periodic_lit != NULL)
		schedules();

	got = 0;
	n = capacity();
	if (n > 0 && w.db_backoff_until == 0) {
		if ((fresh = calloc((size_t)n, sizeof(*fresh))) == NULL)
			fatalx("calloc");
		got = claim(n, fresh);
		/* In claim order (priority, then age).  run() may finish
		 * its job before it returns: the handle is gone then. */
		for (i = 0; i < got; i++) {
			fresh[i]->claimed_ms = sb_now_ms();
			fresh[i]->lease_ms = fresh[i]->claimed_ms +
			    (int64_t)fresh[i]->kind->k.timeout_s * 1000;
			TAILQ_INSERT_TAIL(&w.inflight, fresh[i], list);
			fresh[i]->kind->k.run(fresh[i]);
		}
		free(fresh);
	}
	flush();
	w.in_tick = 0;
	/* A full batch: more may be waiting; or run() enqueued a job. */
	if ((got > 0 && got == n) || w.rewake)
		wake();
}

/* Free places for new claims: live handles count, expired ones not. */
static int
capacity(void)
{
	struct sb_job	*job;
	int64_t		 now;
	long long	 live;

	now = sb_now_ms();
	live = 0;
	TAILQ_FOREACH(job, &w.inflight, list) {
		if (job->lease_ms > now)
			live++;
	}
	if (live >= cfg.concurrency)
		return (0);
	return ((int)(cfg.concurrency - live < cfg.batch ?
	    cfg.concurrency - live : cfg.batch));
}

static void
seed_schedules(void)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			*intervals;
	struct kind		*k;
	int			*iv;
	size_t			 n;

	if (w.periodic_lit == NULL) {
		w.seeded = 1;
		return;
	}
	n = 0;
	TAILQ_FOREACH(k, &kinds, list)
		n++;
	if ((iv = calloc(n, sizeof(int))) == NULL)
		fatalx("calloc");
	n = 0;
	/* Same order as periodic_lit. */
	TAILQ_FOREACH(k, &kinds, list) {
		if (k->owner->state == SB_PLUGIN_READY && k->k.interval_s > 0)
			iv[n++] = (int)k->k.interval_s;
	}
	intervals = int_array(iv, n);
	free(iv);
	params[0] = w.periodic_lit;
	params[1] = intervals;
	r = sb_db_query("INSERT INTO job_schedules (name, interval_s) "
	    "SELECT * FROM unnest($1::text[], $2::int[]) "
	    "ON CONFLICT (name) DO UPDATE SET interval_s = "
	    "EXCLUDED.interval_s WHERE job_schedules.interval_s <> "
	    "EXCLUDED.interval_s", 2, params);
	free(intervals);
	if (!db_failed(r, "seeding job schedules"))
		w.seeded = 1;
	sb_db_free(r);
}

/*
 * A job went to the dead letter: the host event jobs.dead {id, kind,
 * attempts, last_error}, for whoever must hear of it (the notifications
 * plugin mails the admins).  Columns of row `row` of r.
 */
static void
dead_event(struct sb_db_res *r, int row, int c_id, int c_kind, int c_att,
    int c_err)
{
	sb_host_event("jobs.dead", json_pack("{s:I, s:s, s:i, s:s?}",
	    "id", (json_int_t)strtoll(sb_db_value(r, row, c_id), NULL, 10),
	    "kind", sb_db_value(r, row, c_kind),
	    "attempts", atoi(sb_db_value(r, row, c_att)),
	    "last_error", PQgetisnull(r->res, row, c_err) ? NULL :
	    sb_db_value(r, row, c_err)));
}

static void
reclaim(void)
{
	struct sb_db_res	*r;
	const char		*v;
	int			 i, n;

	r = sb_db_query("WITH x AS MATERIALIZED (SELECT id FROM jobs "
	    "WHERE status = 'running' AND lease_until < now() "
	    "ORDER BY lease_until LIMIT 100 FOR UPDATE SKIP LOCKED) "
	    "UPDATE jobs j SET status = CASE WHEN j.attempts >= "
	    "j.max_attempts THEN 'dead' ELSE 'queued' END, run_at = now(), "
	    "lease_until = NULL, last_error = 'lease expired on attempt ' || "
	    "j.attempts || ': ' || coalesce(j.locked_by, '?') || ' died or "
	    "run() did not finish in time', finished_at = CASE WHEN "
	    "j.attempts >= j.max_attempts THEN now() END, updated_at = now() "
	    "FROM x WHERE j.id = x.id RETURNING j.id, j.status, j.kind, "
	    "j.attempts, j.last_error", 0, NULL);
	if (db_failed(r, "reclaiming expired leases")) {
		sb_db_free(r);
		return;
	}
	n = sb_db_rows(r);
	for (i = 0; i < n; i++) {
		v = sb_db_value(r, i, 1);
		counter_add(&shm->reclaimed, 1);
		if (v != NULL && strcmp(v, "dead") == 0) {
			counter_add(&shm->dead, 1);
			dead_event(r, i, 0, 2, 3, 4);
		}
		sb_log(SB_LOG_WARN, "jobs", "job %s: lease expired, %s",
		    sb_db_value(r, i, 0), v != NULL && strcmp(v, "dead") == 0 ?
		    "dead (no attempts left)" : "queued again");
	}
	sb_db_free(r);
}

static void
schedules(void)
{
	struct sb_db_res	*r;
	const char		*params[2];
	int			 n;

	params[0] = w.periodic_lit;
	params[1] = w.periodic_max_lit;
	r = sb_db_query("WITH s AS (UPDATE job_schedules SET next_run_at = "
	    "to_timestamp((floor(extract(epoch FROM now()) / interval_s) + 1) "
	    "* interval_s), last_run_at = now() WHERE name = ANY($1::text[]) "
	    "AND next_run_at <= now() RETURNING name, (floor(extract(epoch "
	    "FROM now()) / interval_s) * interval_s)::bigint AS slot) "
	    "INSERT INTO jobs (kind, payload, max_attempts, idempotency_key) "
	    "SELECT s.name, jsonb_build_object('slot', s.slot, "
	    "'scheduled_at', to_timestamp(s.slot)), k.max_attempts, "
	    "s.name || '@' || s.slot FROM s JOIN unnest($1::text[], "
	    "$2::int[]) AS k(name, max_attempts) ON k.name = s.name "
	    "ON CONFLICT (kind, idempotency_key) DO NOTHING RETURNING id",
	    2, params);
	if (!db_failed(r, "periodic jobs") && (n = sb_db_rows(r)) > 0)
		counter_add(&shm->enqueued, (uint64_t)n);
	sb_db_free(r);
}

/* Claim up to n jobs into out[], in the order to run them; how many. */
static int
claim(int n, struct sb_job **out)
{
	struct sb_db_res	*r;
	struct sb_job		*job;
	struct kind		*k;
	const char		*params[4];
	char			 lim[16];
	int			 i, rows, got;

	snprintf(lim, sizeof(lim), "%d", n);
	params[0] = w.kinds_lit;
	params[1] = w.timeouts_lit;
	params[2] = lim;
	params[3] = w.me;
	r = sb_db_query("WITH c AS MATERIALIZED (SELECT id FROM jobs "
	    "WHERE status = 'queued' AND run_at <= now() AND "
	    "kind = ANY($1::text[]) ORDER BY priority DESC, run_at "
	    "LIMIT $3::int FOR UPDATE SKIP LOCKED), "
	    "u AS (UPDATE jobs j SET status = 'running', attempts = "
	    "j.attempts + 1, runs = j.runs + 1, lease_until = now() + "
	    "make_interval(secs => k.timeout_s), locked_by = $4, started_at = "
	    "now(), updated_at = now() FROM c, unnest($1::text[], $2::int[]) "
	    "AS k(kind, timeout_s) WHERE j.id = c.id AND k.kind = j.kind "
	    "RETURNING j.id, j.kind, j.payload, j.attempts, j.runs, "
	    "coalesce(j.idempotency_key, 'job-' || j.id) AS key, j.priority, "
	    "j.run_at) SELECT id, kind, payload, attempts, runs, key FROM u "
	    "ORDER BY priority DESC, run_at", 4, params);
	if (db_failed(r, "claiming jobs")) {
		sb_db_free(r);
		return (0);
	}
	rows = sb_db_rows(r);
	got = 0;
	for (i = 0; i < rows && i < n; i++) {
		if ((k = kind_find(&kinds, sb_db_value(r, i, 1))) == NULL)
			continue;	/* cannot happen: claimed by kind */
		if ((job = calloc(1, sizeof(*job))) == NULL)
			fatalx("calloc");
		job->magic = JOB_MAGIC;
		job->kind = k;
		job->id = strtoll(sb_db_value(r, i, 0), NULL, 10);
		job->payload = json_loads(sb_db_value(r, i, 2),
		    JSON_DECODE_ANY, NULL);
		if (job->payload == NULL)
			job->payload = json_object();
		job->attempt = atoi(sb_db_value(r, i, 3));
		job->runs = atoi(sb_db_value(r, i, 4));
		job->key = sb_strdup(sb_db_value(r, i, 5));
		out[got++] = job;
	}
	sb_db_free(r);
	counter_add(&shm->claimed, (uint64_t)got);
	return (got);
}

/* Write the pending job_done()s. */
static void
flush(void)
{
	json_t	*pending;

	if (w.pending == NULL || json_array_size(w.pending) == 0)
		return;
	pending = w.pending;
	w.pending = json_array();
	mark_done(pending);
	json_decref(pending);
}

/* Mark a batch [{id, runs, result}] done with one statement. */
static void
mark_done(json_t *pending)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			*batch;
	size_t			 n;
	int			 i, rows;

	if ((n = json_array_size(pending)) == 0)
		return;
	if ((batch = json_dumps(pending, JSON_COMPACT)) == NULL)
		fatalx("json_dumps");
	params[0] = batch;
	params[1] = w.me;
	r = sb_db_query("UPDATE jobs j SET status = 'done', result = "
	    "nullif(u.result, 'null'::jsonb), finished_at = now(), "
	    "lease_until = NULL, updated_at = now() FROM "
	    "jsonb_to_recordset($1::jsonb) AS u(id bigint, runs integer, "
	    "result jsonb) WHERE j.id = u.id AND j.runs = u.runs AND "
	    "j.status = 'running' AND j.locked_by = $2 RETURNING "
	    "(extract(epoch FROM now() - j.created_at) * 1000)::bigint", 2,
	    params);
	free(batch);
	if (!r->ok) {
		/* Their leases run out and they run again: idempotent. */
		sb_log(SB_LOG_ERROR, "jobs", "cannot mark %zu job(s) done "
		    "(%s): they will run again", n, r->sqlstate);
		counter_add(&shm->lost, n);
		sb_db_free(r);
		return;
	}
	rows = sb_db_rows(r);
	for (i = 0; i < rows; i++)
		observe_latency((uint64_t)strtoll(sb_db_value(r, i, 0), NULL,
		    10));
	sb_db_free(r);
	counter_add(&shm->done, (uint64_t)rows);
	if ((size_t)rows < n) {
		/* Those leases had expired and the jobs were taken again. */
		counter_add(&shm->lost, n - (size_t)rows);
		sb_log(SB_LOG_WARN, "jobs", "%zu finished job(s) had lost "
		    "their lease: not marked done here", n - (size_t)rows);
	}
}

static void
job_free(struct sb_job *job)
{
	job->magic = 0;
	json_decref(job->payload);
	free(job->key);
	free(job);
}

/* Take a finished job off the in-flight list; 0 for a bad handle. */
static int
job_live(struct sb_job *job, const char *what)
{
	int64_t		now;

	if (job == NULL || job->magic != JOB_MAGIC) {
		sb_log(SB_LOG_ERROR, "jobs", "%s() on an invalid or finished "
		    "job handle: ignored", what);
		return (0);
	}
	TAILQ_REMOVE(&w.inflight, job, list);
	now = sb_now_ms();
	if (job->claimed_ms > 0 && now >= job->claimed_ms)
		observe_run((uint64_t)(now - job->claimed_ms));
	return (1);
}

/* Seconds before the next attempt of job. */
static double
backoff(const struct sb_job *job, unsigned int retry_after)
{
	double		 d;
	uint32_t	 rnd;
	int		 i;

	if (retry_after > 0)
		return (retry_after > BACKOFF_CAP_S ? BACKOFF_CAP_S :
		    (double)retry_after);
	d = job->kind->k.backoff_s;
	for (i = 1; i < job->attempt && d < BACKOFF_CAP_S; i++)
		d *= 2;
	if (d > BACKOFF_CAP_S)
		d = BACKOFF_CAP_S;
	/* +-25 %: workers that failed together do not retry together. */
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)getpid() ^ (uint32_t)sb_now_ms();
	return (d * (0.75 + 0.5 * ((double)rnd / 4294967296.0)));
}

/* ------------------------------------------------------------------------
 * The host-API slots.
 */

int64_t
sb_jobs_enqueue(struct sb_plugin *p, const char *kind, json_t *payload,
    const struct sb_job_opts *opts)
{
	struct sb_db_res	*r;
	struct kind		*k;
	const char		*params[6];
	char			*body, prio[16], delay[32], maxa[16];
	int64_t			 id;

	if (!sb_is_worker || kind == NULL ||
	    (k = kind_find(&kinds, kind)) == NULL) {
		sb_log(SB_LOG_ERROR, "jobs", "%s: cannot enqueue unknown job "
		    "kind %s", p != NULL ? p->name : "?",
		    kind != NULL ? kind : "(null)");
		return (-1);
	}
	if (opts != NULL && opts->idempotency_key != NULL &&
	    (opts->idempotency_key[0] == '\0' ||
	    strlen(opts->idempotency_key) > 255)) {
		sb_log(SB_LOG_ERROR, "jobs", "%s: idempotency key of a %s job "
		    "must be 1 to 255 characters", p != NULL ? p->name : "?",
		    kind);
		return (-1);
	}
	body = payload != NULL ? json_dumps(payload, JSON_COMPACT |
	    JSON_ENCODE_ANY) : sb_strdup("{}");
	if (body == NULL)
		return (-1);
	snprintf(prio, sizeof(prio), "%d", opts != NULL ? opts->priority : 0);
	snprintf(delay, sizeof(delay), "%.3f", opts != NULL &&
	    opts->delay_ms > 0 ? (double)opts->delay_ms / 1000.0 : 0.0);
	snprintf(maxa, sizeof(maxa), "%u", opts != NULL &&
	    opts->max_attempts > 0 ? opts->max_attempts : k->k.max_attempts);
	params[0] = kind;
	params[1] = body;
	params[2] = prio;
	params[3] = delay;
	params[4] = maxa;
	params[5] = opts != NULL ? opts->idempotency_key : NULL;
	/* On the worker's connection: inside the caller's transaction when
	 * one is open, so the job commits or rolls back with it. */
	r = sb_db_query("INSERT INTO jobs (kind, payload, priority, run_at, "
	    "max_attempts, idempotency_key) VALUES ($1, $2::jsonb, $3::int, "
	    "now() + make_interval(secs => $4::double precision), $5::int, $6) "
	    "ON CONFLICT (kind, idempotency_key) DO NOTHING RETURNING id", 6,
	    params);
	free(body);
	id = -1;
	if (!r->ok) {
		sb_log(SB_LOG_ERROR, "jobs", "%s: enqueue %s failed (%s): %s",
		    p != NULL ? p->name : "?", kind, r->sqlstate,
		    r->res != NULL ? PQresultErrorMessage(r->res) :
		    "no connection");
	} else if (sb_db_rows(r) == 1) {
		id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
		counter_add(&shm->enqueued, 1);
	} else {
		/* The key is known: that job is the answer. */
		sb_db_free(r);
		params[1] = params[5];
		r = sb_db_query("SELECT id FROM jobs WHERE kind = $1 AND "
		    "idempotency_key = $2", 2, params);
		if (sb_db_rows(r) == 1)
			id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	}
	sb_db_free(r);
	if (id > 0) {
		if (w.in_tick)
			w.rewake = 1;
		wake();
	}
	return (id);
}

int64_t
sb_job_id(struct sb_job *job)
{
	return (job != NULL ? job->id : -1);
}

json_t *
sb_job_payload(struct sb_job *job)
{
	return (job != NULL ? job->payload : NULL);
}

int
sb_job_attempt(struct sb_job *job)
{
	return (job != NULL ? job->attempt : 0);
}

const char *
sb_job_key(struct sb_job *job)
{
	return (job != NULL ? job->key : NULL);
}

struct sb_plugin *
sb_job_plugin(struct sb_job *job)
{
	return (job != NULL ? job->kind->owner : NULL);
}

void
sb_job_done(struct sb_job *job, json_t *result)
{
	json_t	*entry, *single;

	if (!job_live(job, "job_done")) {
		json_decref(result);
		return;
	}
	entry = json_pack("{s:I, s:i, s:o}", "id", (json_int_t)job->id,
	    "runs", job->runs, "result", result != NULL ? result :
	    json_null());
	job_free(job);
	if (in_transaction()) {
		/* Inside the plugin's transaction: this job alone, so that
		 * it commits or rolls back with the plugin's work. */
		single = json_array();
		json_array_append_new(single, entry);
		mark_done(single);
		json_decref(single);
		return;
	}
	json_array_append_new(w.pending, entry);
	if (json_array_size(w.pending) >= FLUSH_AT && !w.in_tick)
		flush();
	else
		wake();
}

void
sb_job_retry(struct sb_job *job, const char *error, unsigned int retry_after)
{
	struct sb_db_res	*r;
	const char		*params[5], *st;
	char			 id[32], runs[16], delay[32];

	if (!job_live(job, "job_retry"))
		return;
	counter_add(&shm->failures, 1);
	snprintf(id, sizeof(id), "%lld", (long long)job->id);
	snprintf(runs, sizeof(runs), "%d", job->runs);
	snprintf(delay, sizeof(delay), "%.3f", backoff(job, retry_after));
	params[0] = id;
	params[1] = runs;
	params[2] = delay;
	params[3] = error != NULL ? error : "failed";
	params[4] = w.me;
	r = sb_db_query("UPDATE jobs SET status = CASE WHEN attempts >= "
	    "max_attempts THEN 'dead' ELSE 'queued' END, run_at = now() + "
	    "make_interval(secs => $3::double precision), last_error = "
	    "left($4, 2000), lease_until = NULL, finished_at = CASE WHEN "
	    "attempts >= max_attempts THEN now() END, updated_at = now() "
	    "WHERE id = $1::bigint AND runs = $2::int AND status = 'running' "
	    "AND locked_by = $5 RETURNING status, id, kind, attempts, "
	    "last_error", 5, params);
	if (!db_failed(r, "retrying a job") && sb_db_rows(r) == 1) {
		st = sb_db_value(r, 0, 0);
		counter_add(strcmp(st, "dead") == 0 ? &shm->dead :
		    &shm->retried, 1);
		if (strcmp(st, "dead") == 0)
			dead_event(r, 0, 1, 2, 3, 4);
	} else if (r->ok) {
		counter_add(&shm->lost, 1);
	}
	sb_db_free(r);
	job_free(job);
	wake();
}

void
sb_job_fail(struct sb_job *job, const char *error)
{
	struct sb_db_res	*r;
	const char		*params[4];
	char			 id[32], runs[16];

	if (!job_live(job, "job_fail"))
		return;
	counter_add(&shm->failures, 1);
	snprintf(id, sizeof(id), "%lld", (long long)job->id);
	snprintf(runs, sizeof(runs), "%d", job->runs);
	params[0] = id;
	params[1] = runs;
	params[2] = error != NULL ? error : "failed";
	params[3] = w.me;
	r = sb_db_query("UPDATE jobs SET status = 'dead', last_error = "
	    "left($3, 2000), lease_until = NULL, finished_at = now(), "
	    "updated_at = now() WHERE id = $1::bigint AND runs = $2::int AND "
	    "status = 'running' AND locked_by = $4 RETURNING id, kind, "
	    "attempts, last_error", 4, params);
	if (!db_failed(r, "failing a job") && sb_db_rows(r) == 1) {
		counter_add(&shm->dead, 1);
		dead_event(r, 0, 0, 1, 2, 3);
	} else if (r->ok)
		counter_add(&shm->lost, 1);
	sb_db_free(r);
	job_free(job);
	wake();
}

/* ------------------------------------------------------------------------
 * Routes.
 */

static void
jobs_list(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[4], *status;
	char			 lim[16], before[32];
	long long		 limit, cursor;
	int			 i;

	if (sb_page_params(req, &limit, &cursor) == -1)
		return;
	if ((status = sb_req_query(req, "status")) != NULL) {
		for (i = 0; statuses[i] != NULL; i++) {
			if (strcmp(statuses[i], status) == 0)
				break;
		}
		if (statuses[i] == NULL) {
			sb_respond_error(req, 400, "VALIDATION_ERROR", "status "
			    "must be queued, running, done or dead",
			    json_pack("[{s:s, s:s, s:s}]", "field", "status",
			    "code", "INVALID_CHOICE", "message",
			    "queued, running, done or dead"));
			return;
		}
	}
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	snprintf(before, sizeof(before), "%lld", cursor);
	params[0] = lim;
	params[1] = before;
	params[2] = status;
	params[3] = sb_req_query(req, "kind");
	r = sb_db_query("SELECT " JOB_COLUMNS " FROM jobs WHERE "
	    "($2::bigint = 0 OR id < $2::bigint) AND "
	    "($3::text IS NULL OR status = $3) AND "
	    "($4::text IS NULL OR kind = $4) "
	    "ORDER BY id DESC LIMIT $1::int", 4, params);
	sb_respond_rows(req, r, limit);
}

static void
jobs_get(struct sb_req *req)
{
	json_t	*job;
	int64_t	 id;

	if (sb_req_id(req, "id", "job", &id) == -1)
		return;
	job = sb_db_row_by_id("SELECT " JOB_COLUMNS " FROM jobs WHERE "
	    "id = $1::bigint", id);
	if (job == NULL) {
		sb_respond_error(req, 404, "NOT_FOUND", "no such job", NULL);
		return;
	}
	sb_respond_json(req, 200, job);
}

/*
 * dead -> queued, due now, with a fresh round of attempts (attempts back
 * to 0, max_attempts unchanged); last_error stays until the job runs.
 */
static void
jobs_retry(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 idbuf[32];
	json_t			*job;
	int64_t			 id;

	if (sb_req_id(req, "id", "job", &id) == -1)
		return;
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	params[0] = idbuf;
	r = sb_db_query("UPDATE jobs SET status = 'queued', attempts = 0, "
	    "run_at = now(), lease_until = NULL, finished_at = NULL, "
	    "updated_at = now() WHERE id = $1::bigint AND status = 'dead' "
	    "RETURNING " JOB_COLUMNS, 1, params);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	if (sb_db_rows(r) == 1) {
		job = sb_db_row_json(r, 0);
		sb_db_free(r);
		sb_host_change_event("jobs.retried", "job", id,
		    json_pack("{s:O}", "kind", json_object_get(job, "kind")));
		wake();
		sb_respond_json(req, 200, job);
		return;
	}
	sb_db_free(r);
	job = sb_db_row_by_id("SELECT status FROM jobs WHERE id = $1::bigint",
	    id);
	if (job == NULL) {
		sb_respond_error(req, 404, "NOT_FOUND", "no such job", NULL);
		return;
	}
	sb_respond_error(req, 409, "CONFLICT", "only a dead job can be "
	    "retried", json_pack("[{s:s, s:s, s:s}]", "field", "status", "code",
	    "INVALID_STATE", "message", json_string_value(json_object_get(job,
	    "status"))));
	json_decref(job);
}

static void
jobs_stats(struct sb_req *req)
{
	struct sb_db_res	*r;
	struct kind		*k;
	json_t			*counts, *list;

	/* Each count but done's walks its partial index. */
	r = sb_db_query("SELECT (SELECT count(*) FROM jobs WHERE status = "
	    "'queued') AS queued, (SELECT count(*) FROM jobs WHERE status = "
	    "'running') AS running, (SELECT count(*) FROM jobs WHERE status = "
	    "'done') AS done, (SELECT count(*) FROM jobs WHERE status = "
	    "'dead') AS dead", 0, NULL);
	if (!r->ok || sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	counts = sb_db_row_json(r, 0);
	sb_db_free(r);
	list = json_array();
	TAILQ_FOREACH(k, &kinds, list) {
		json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:i, "
		    "s:i, s:i, s:b}", "name", k->k.name, "plugin",
		    k->owner->name, "max_attempts", (int)k->k.max_attempts,
		    "timeout_s", (int)k->k.timeout_s, "backoff_s",
		    (int)k->k.backoff_s, "interval_s", (int)k->k.interval_s,
		    "runs_here", k->owner->state == SB_PLUGIN_READY));
	}
	sb_respond_json(req, 200, json_pack("{s:o, s:o, s:o}", "counts",
	    counts, "node", sb_jobs_metrics(), "kinds", list));
}

/*
 * The host's retention of finished jobs (retention.c, [host]
 * jobs_retention_days): done jobs finished before cutoff go, with their
 * payloads (an event's data, a person's name or message) and results.
 * Dead jobs stay until an operator retries them: they are the work that
 * did not happen.  An idempotency key is remembered as long as its job
 * is kept.
 */
long long
sb_jobs_purge(struct sb_plugin *p, const char *cutoff)
{
	struct sb_db_res	*r;
	const char		*params[1] = { cutoff };
	long long		 n;

	(void)p;
	r = sb_db_query("DELETE FROM jobs WHERE status = 'done' AND "
	    "finished_at < $1::timestamptz RETURNING 1", 1, params);
	n = r->ok ? PQntuples(r->res) : -1;
	sb_db_free(r);
	return (n);
}
