/*
 * Cross-node events: several Switchboard nodes sharing one PostgreSQL
 * behave as one system.  Within a node the bus relays events between
 * workers over Kore's msg channel (bus.c); between nodes they travel as
 * PostgreSQL notifications on the channel "sb_events".
 *
 * Each worker keeps one extra connection of its own, non-blocking, in
 * Kore's event loop (its socket is watched by epoll like a client's):
 *   - it LISTENs on sb_events and hands every notification from another
 *     node to the bus (bus subscribers with local = 0, WebSocket rooms);
 *   - it carries this worker's outgoing events, batched, to
 *     sb_events_notify() (migrations/005_events.sql), which notifies each
 *     one, or stores one too large for a notification (PostgreSQL's limit
 *     is 8000 bytes) in event_spool and notifies its id.
 * A notification is "<node id>\t<event>" or "<node id>\t@<spool id>";
 * a node skips its own, which its workers already had over Kore's msg
 * channel.  So every subscriber sees every event once.
 *
 * Why a connection per worker and not one per node: a per-node listener
 * would have to relay to its siblings over Kore's msg channel, adding a
 * hop and a single point whose death silences the node; per worker, a
 * notification lands where it is delivered.  The cost is one more
 * PostgreSQL connection per worker (size max_connections for it).  Why
 * not the worker's main connection: sending asynchronously here never
 * makes the request path wait for PostgreSQL, and an event is never tied
 * to (or lost with) a transaction the publisher happens to have open;
 * local delivery does not wait for a commit either.
 *
 * Delivery between nodes is at most once: events published while the
 * connection is down are queued (bounded) and sent when it is back, but
 * notifications sent to a node while its listener reconnects are lost,
 * as is a batch in flight when the connection breaks (re-sending it
 * could deliver twice).  Anything that must happen is a durable job, not
 * an event.  The connection is re-established with a back-off (0.25 s
 * up to 5 s) after PostgreSQL restarts; TCP keepalives notice a peer
 * that vanished without a word.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"
#include "conf.h"

#define CL_CHANNEL		"sb_events"
#define CL_TICK_MS		250
#define CL_CONNECT_TIMEOUT_MS	10000
#define CL_BACKOFF_MIN_MS	250
#define CL_BACKOFF_MAX_MS	5000
#define CL_BATCH_MAX		128	/* events per statement */
#define CL_BATCH_BYTES		(4 * 1024 * 1024)
#define CL_QUEUE_MAX		10000	/* events waiting for the connection */
#define CL_QUEUE_BYTES		(64 * 1024 * 1024)
#define CL_EVT_TYPE		0x5342	/* our kore_event type ("SB") */

struct cl_msg {
	TAILQ_ENTRY(cl_msg)	 list;
	size_t			 len;
	char			 data[];	/* NUL-terminated */
};
TAILQ_HEAD(cl_msg_list, cl_msg);

enum cl_state {
	CL_DOWN = 0,		/* waiting to reconnect */
	CL_CONNECTING,		/* PQconnectPoll() in progress */
	CL_LISTENING,		/* LISTEN sent, not yet confirmed */
	CL_READY
};

/*
 * The worker's cluster connection.  evt must come first: Kore's event
 * loop hands us the pointer it was given, as a struct kore_event.
 */
static struct {
	struct kore_event	 evt;
	PGconn			*conn;
	int			 fd;		/* what epoll watches, or -1 */
	int			 want_write;
	enum cl_state		 state;
	int			 busy;		/* a statement is in flight */
	uint64_t		 started;	/* connect began (ms) */
	uint64_t		 retry_at;	/* next connect attempt (ms) */
	unsigned int		 backoff;
	int			 warned;	/* this outage was logged */
	struct cl_msg_list	 out;
	size_t			 out_n;
	size_t			 out_bytes;
	uint64_t		 dropped;
} cl;

/* This node's id: [host] node_name or random per start (parent). */
static char	node_id[65];

static void	cl_event(void *, int);
static void	cl_tick(void *, u_int64_t);
static void	cl_connect(void);
static void	cl_connect_poll(void);
static void	cl_fail(const char *);
static void	cl_watch(int);
static void	cl_io(void);
static void	cl_results(void);
static void	cl_notifies(void);
static void	cl_flush(void);
static void	cl_send(void);
static void	cl_receive(const char *);

void
sb_cluster_parent_init(void)
{
	const char	*name;
	size_t		 i;

	name = sb_conf_get(sb_config, "host", "node_name");
	if (name != NULL && *name != '\0') {
		if (strlen(name) >= sizeof(node_id))
			fatalx("[host] node_name is longer than 64 characters");
		for (i = 0; name[i] != '\0'; i++) {
			if (!((name[i] >= 'a' && name[i] <= 'z') ||
			    (name[i] >= 'A' && name[i] <= 'Z') ||
			    (name[i] >= '0' && name[i] <= '9') ||
			    strchr("-_.", name[i]) != NULL))
				fatalx("[host] node_name may hold letters, "
				    "digits and -_. only");
		}
		snprintf(node_id, sizeof(node_id), "%s", name);
	} else {
		sb_random_hex(node_id, 8);
	}
	sb_log(SB_LOG_INFO, "cluster", "node id %s", node_id);
}

const char *
sb_cluster_node(void)
{
	return (node_id);
}

void
sb_cluster_worker_init(void)
{
	memset(&cl, 0, sizeof(cl));
	cl.fd = -1;
	cl.evt.type = CL_EVT_TYPE;
	cl.evt.handle = cl_event;
	cl.backoff = CL_BACKOFF_MIN_MS;
	TAILQ_INIT(&cl.out);
	cl_connect();
	(void)kore_timer_add(cl_tick, CL_TICK_MS, NULL, 0);
}

/*
 * Queue an event (the bus's wire JSON) for the other nodes.  Sent at
 * once when the connection is idle, else with the next batch.
 */
void
sb_cluster_publish(const char *wire, size_t len)
{
	struct cl_msg	*m;

	if (node_id[0] == '\0' || cl.out.tqh_last == NULL)
		return;		/* not a worker, or before its init */
	while (cl.out_n >= CL_QUEUE_MAX ||
	    (cl.out_n > 0 && cl.out_bytes + len > CL_QUEUE_BYTES)) {
		m = TAILQ_FIRST(&cl.out);
		TAILQ_REMOVE(&cl.out, m, list);
		cl.out_n--;
		cl.out_bytes -= m->len;
		free(m);
		if (cl.dropped++ % 1000 == 0)
			sb_log(SB_LOG_WARN, "cluster", "PostgreSQL unreachable: "
			    "dropped %llu event(s) meant for other nodes",
			    (unsigned long long)cl.dropped);
	}
	if ((m = malloc(sizeof(*m) + len + 1)) == NULL)
		return;
	m->len = len;
	memcpy(m->data, wire, len);
	m->data[len] = '\0';
	TAILQ_INSERT_TAIL(&cl.out, m, list);
	cl.out_n++;
	cl.out_bytes += len;
	if (cl.state == CL_READY && !cl.busy)
		cl_send();
}

/* ------------------------------------------------------------------------
 * The connection
 */

static void
cl_connect(void)
{
	const char	*keys[10], *vals[10];

	keys[0] = "dbname";		vals[0] = sb_settings.database_url;
	keys[1] = "application_name";	vals[1] = "switchboard-events";
	keys[2] = "options";		vals[2] = "-c statement_timeout=10000";
	keys[3] = "keepalives";		vals[3] = "1";
	keys[4] = "keepalives_idle";	vals[4] = "30";
	keys[5] = "keepalives_interval"; vals[5] = "10";
	keys[6] = "keepalives_count";	vals[6] = "3";
	keys[7] = NULL;			vals[7] = NULL;

	cl.started = kore_time_ms();
	cl.busy = 0;
	cl.want_write = 1;
	cl.conn = PQconnectStartParams(keys, vals, 1);
	if (cl.conn == NULL || PQstatus(cl.conn) == CONNECTION_BAD) {
		cl_fail(cl.conn != NULL ? PQerrorMessage(cl.conn) :
		    "out of memory");
		return;
	}
	cl.state = CL_CONNECTING;
	cl_connect_poll();
}

/* Advance a non-blocking connect; on success, LISTEN. */
static void
cl_connect_poll(void)
{
	switch (PQconnectPoll(cl.conn)) {
	case PGRES_POLLING_OK:
		break;
	case PGRES_POLLING_FAILED:
		cl_fail(PQerrorMessage(cl.conn));
		return;
	case PGRES_POLLING_WRITING:
		cl_watch(1);
		return;
	default:
		cl_watch(0);
		return;
	}
	if (PQsetnonblocking(cl.conn, 1) == -1 ||
	    !PQsendQuery(cl.conn, "LISTEN " CL_CHANNEL)) {
		cl_fail(PQerrorMessage(cl.conn));
		return;
	}
	cl.state = CL_LISTENING;
	cl.busy = 1;
	cl_watch(0);
	cl_flush();
}

/*
 * Watch the connection's socket: reads always (level-triggered: we read
 * what libpq takes, the rest wakes us again), writes while libpq has
 * output it could not send.  libpq may open a new socket while it
 * connects; registering again is harmless (epoll MOD).
 */
static void
cl_watch(int want_write)
{
	int	fd;

	if (cl.conn == NULL || (fd = PQsocket(cl.conn)) < 0)
		return;
	cl.fd = fd;
	cl.want_write = want_write;
	if (want_write)
		kore_platform_event_level_all(fd, &cl);
	else
		kore_platform_event_level_read(fd, &cl);
}

/*
 * Drop the connection and try again later.  PQfinish() closes the
 * socket, which also takes it out of epoll (nothing else holds it).
 */
static void
cl_fail(const char *why)
{
	char	msg[256];
	size_t	n;

	if (!cl.warned) {
		snprintf(msg, sizeof(msg), "%s", why != NULL ? why : "");
		n = strlen(msg);
		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		sb_log(SB_LOG_WARN, "cluster", "events connection lost (%s): "
		    "events from other nodes stop until it is back", msg);
		cl.warned = 1;
	}
	if (cl.conn != NULL)
		PQfinish(cl.conn);
	cl.conn = NULL;
	cl.fd = -1;
	cl.busy = 0;
	cl.state = CL_DOWN;
	cl.retry_at = kore_time_ms() + cl.backoff;
	cl.backoff = cl.backoff * 2 > CL_BACKOFF_MAX_MS ? CL_BACKOFF_MAX_MS :
	    cl.backoff * 2;
}

/* Kore's event loop: the socket is readable, writable or broken. */
static void
cl_event(void *arg, int error)
{
	(void)arg;
	cl.evt.flags &= ~(KORE_EVENT_READ | KORE_EVENT_WRITE);
	if (cl.conn == NULL)
		return;
	if (cl.state == CL_CONNECTING) {
		cl_connect_poll();
		return;
	}
	if (error) {
		/* Read what is there (a FATAL message says why). */
		(void)PQconsumeInput(cl.conn);
		cl_fail(PQerrorMessage(cl.conn));
		return;
	}
	cl_io();
}

static void
cl_io(void)
{
	if (!PQconsumeInput(cl.conn)) {
		cl_fail(PQerrorMessage(cl.conn));
		return;
	}
	cl_results();
	if (cl.conn == NULL)
		return;
	cl_notifies();
	if (cl.conn == NULL)
		return;
	cl_flush();
	if (cl.conn != NULL && cl.state == CL_READY && !cl.busy &&
	    !TAILQ_EMPTY(&cl.out))
		cl_send();
}

/* Results of the statement in flight (LISTEN or a batch). */
static void
cl_results(void)
{
	PGresult	*res;
	ExecStatusType	 st;

	while (cl.busy && !PQisBusy(cl.conn)) {
		if ((res = PQgetResult(cl.conn)) == NULL) {
			cl.busy = 0;
			if (cl.state == CL_LISTENING) {
				cl.state = CL_READY;
				cl.backoff = CL_BACKOFF_MIN_MS;
				if (cl.warned)
					sb_log(SB_LOG_INFO, "cluster",
					    "events connection is back");
				cl.warned = 0;
			}
			break;
		}
		st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			sb_log(SB_LOG_WARN, "cluster", "%s failed: %s",
			    cl.state == CL_LISTENING ? "LISTEN" :
			    "sending events", PQresultErrorMessage(res));
			if (cl.state == CL_LISTENING) {
				PQclear(res);
				cl_fail("LISTEN failed");
				return;
			}
		}
		PQclear(res);
	}
	if (PQstatus(cl.conn) == CONNECTION_BAD)
		cl_fail(PQerrorMessage(cl.conn));
}

static void
cl_notifies(void)
{
	PGnotify	*n;

	while (cl.conn != NULL && (n = PQnotifies(cl.conn)) != NULL) {
		if (strcmp(n->relname, CL_CHANNEL) == 0 &&
		    n->be_pid != PQbackendPID(cl.conn))
			cl_receive(n->extra);
		PQfreemem(n);
	}
}

/* Push what libpq holds; watch for writability while some is left. */
static void
cl_flush(void)
{
	int	rc;

	if ((rc = PQflush(cl.conn)) == -1) {
		cl_fail(PQerrorMessage(cl.conn));
		return;
	}
	if ((rc == 1) != cl.want_write)
		cl_watch(rc == 1);
}

/*
 * One statement for up to CL_BATCH_MAX queued events:
 * SELECT sb_events_notify($1, $2, ..., $n+1), every event a parameter
 * (no quoting, no size in the SQL).  The function notifies in order.
 */
static void
cl_send(void)
{
	struct cl_msg	*m, *next;
	const char	**params;
	char		*sql, *p;
	size_t		 n, bytes, i, cap;
	int		 ok;

	n = bytes = 0;
	TAILQ_FOREACH(m, &cl.out, list) {
		if (n == CL_BATCH_MAX || (n > 0 && bytes + m->len >
		    CL_BATCH_BYTES))
			break;
		n++;
		bytes += m->len;
	}
	if (n == 0)
		return;
	params = calloc(n + 1, sizeof(*params));
	cap = 48 + n * 8;
	sql = malloc(cap);
	if (params == NULL || sql == NULL) {
		free(params);
		free(sql);
		return;
	}
	p = sql + snprintf(sql, cap, "SELECT sb_events_notify($1");
	params[0] = node_id;
	i = 0;
	TAILQ_FOREACH(m, &cl.out, list) {
		if (i == n)
			break;
		params[i + 1] = m->data;
		p += snprintf(p, cap - (size_t)(p - sql), ", $%zu", i + 2);
		i++;
	}
	snprintf(p, cap - (size_t)(p - sql), ")");

	ok = PQsendQueryParams(cl.conn, sql, (int)n + 1, NULL, params, NULL,
	    NULL, 0);
	free(sql);
	free(params);
	/* Sent or not, these events are done with: never twice. */
	for (m = TAILQ_FIRST(&cl.out), i = 0; m != NULL && i < n; m = next,
	    i++) {
		next = TAILQ_NEXT(m, list);
		TAILQ_REMOVE(&cl.out, m, list);
		cl.out_n--;
		cl.out_bytes -= m->len;
		free(m);
	}
	if (!ok) {
		cl_fail(PQerrorMessage(cl.conn));
		return;
	}
	cl.busy = 1;
	cl_flush();
}

/* A notification: another node's event, inline or by reference. */
static void
cl_receive(const char *payload)
{
	struct sb_db_res	*r;
	const char		*tab, *params[1];
	size_t			 n;

	if ((tab = strchr(payload, '\t')) == NULL)
		return;
	n = (size_t)(tab - payload);
	if (n == strlen(node_id) && strncmp(payload, node_id, n) == 0)
		return;		/* ours: the msg channel delivered it */
	tab++;
	if (*tab != '@') {
		sb_bus_deliver_wire(tab, strlen(tab));
		return;
	}
	/* Too large to notify: spooled by sb_events_notify().  A primary
	 * key lookup on the worker's own connection. */
	params[0] = tab + 1;
	r = sb_db_query("SELECT payload FROM event_spool WHERE id = "
	    "$1::bigint", 1, params);
	if (r->ok && sb_db_rows(r) == 1)
		sb_bus_deliver_wire(sb_db_value(r, 0, 0),
		    strlen(sb_db_value(r, 0, 0)));
	else
		sb_log(SB_LOG_WARN, "cluster", "spooled event %s: %s", tab + 1,
		    r->ok ? "gone (older than the spool keeps)" :
		    "database unavailable");
	sb_db_free(r);
}

/*
 * Every CL_TICK_MS: reconnect when it is time, give up a connect that
 * hangs, and read the socket once more (cheap, and a safety net).
 */
static void
cl_tick(void *arg, u_int64_t now)
{
	(void)arg;
	switch (cl.state) {
	case CL_DOWN:
		if (now >= cl.retry_at)
			cl_connect();
		break;
	case CL_CONNECTING:
		/* Its socket events drive the connect; only time out. */
		if (now - cl.started > CL_CONNECT_TIMEOUT_MS)
			cl_fail("connect timeout");
		break;
	default:
		cl_io();
		break;
	}
}
