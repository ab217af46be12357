/*
 * One PostgreSQL connection per process (the parent while migrating, then
 * one per worker).  Queries are short and indexed, so they run
 * synchronously on the worker (DESIGN.md "Request path"); a server-side
 * statement_timeout bounds the worst case.
 *
 * Every distinct SQL text is prepared once per connection and executed by
 * name afterwards.  A query that fails because the connection broke (the
 * server restarted) reconnects, forgets the prepared names and runs once
 * more, unless a transaction was open: then the caller sees the error, as
 * half a transaction must never be replayed.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"
#include "text.h"
#include "conf.h"

#define STMT_SLOTS	2048	/* power of two */

struct stmt {
	char		*sql;
	uint64_t	hash;
	unsigned int	id;
};

static PGconn		*conn = NULL;
static struct stmt	stmts[STMT_SLOTS];
static unsigned int	stmt_count = 0;
static int		in_tx = 0;
static int64_t		last_connect_attempt = 0;
static int		last_connect_failed = 0;

static void		stmts_clear(void);
static struct stmt	*stmt_lookup(const char *, int *);
static struct sb_db_res	*run(const char *, int, const char *const *);
static int		broken(void);

PGconn *
sb_db_conn(void)
{
	return (conn);
}

int
sb_db_connect(void)
{
	const char	*keys[5], *vals[5];
	char		timeout[32], opts[96];
	long long	stmt_ms;

	if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
		return (0);
	sb_db_disconnect();
	/* While the server is down, fail fast instead of paying a connect
	 * attempt on every request. */
	if (last_connect_failed &&
	    sb_now_ms() - last_connect_attempt < 1000)
		return (-1);
	last_connect_attempt = sb_now_ms();
	last_connect_failed = 1;

	stmt_ms = sb_conf_int(sb_config, "host", "db_statement_timeout_ms",
	    5000, NULL);
	snprintf(timeout, sizeof(timeout), "%lld",
	    sb_conf_int(sb_config, "host", "db_connect_timeout", 3, NULL));
	snprintf(opts, sizeof(opts), "-c statement_timeout=%lld "
	    "-c TimeZone=UTC -c DateStyle=ISO", stmt_ms);

	/* Later keywords override what the URL says. */
	keys[0] = "dbname";		vals[0] = sb_settings.database_url;
	keys[1] = "connect_timeout";	vals[1] = timeout;
	keys[2] = "options";		vals[2] = opts;
	keys[3] = "fallback_application_name"; vals[3] = "switchboard";
	keys[4] = NULL;			vals[4] = NULL;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		sb_log(SB_LOG_WARN, "db", "cannot connect: %s", conn != NULL ?
		    PQerrorMessage(conn) : "out of memory");
		sb_db_disconnect();
		return (-1);
	}
	stmts_clear();
	in_tx = 0;
	last_connect_failed = 0;
	return (0);
}

void
sb_db_disconnect(void)
{
	if (conn != NULL)
		PQfinish(conn);
	conn = NULL;
	stmts_clear();
	in_tx = 0;
}

static int
broken(void)
{
	return (conn == NULL || PQstatus(conn) != CONNECTION_OK);
}

int
sb_db_ping(char *err, size_t errlen)
{
	struct sb_db_res	*r;

	r = sb_db_query("SELECT 1", 0, NULL);
	if (r->ok) {
		sb_db_free(r);
		return (0);
	}
	snprintf(err, errlen, "%s", conn != NULL ? PQerrorMessage(conn) :
	    "not connected");
	sb_db_free(r);
	return (-1);
}

static void
stmts_clear(void)
{
	unsigned int	i;

	for (i = 0; i < STMT_SLOTS; i++) {
		free(stmts[i].sql);
		stmts[i].sql = NULL;
	}
	stmt_count = 0;
}

/* Find the slot of sql; *found says whether it is already prepared. */
static struct stmt *
stmt_lookup(const char *sql, int *found)
{
	uint64_t	h;
	unsigned int	i, n;

	h = sb_fnv1a64(sql);
	for (n = 0, i = h & (STMT_SLOTS - 1); n < STMT_SLOTS;
	    n++, i = (i + 1) & (STMT_SLOTS - 1)) {
		if (stmts[i].sql == NULL) {
			*found = 0;
			stmts[i].hash = h;
			return (&stmts[i]);
		}
		if (stmts[i].hash == h && strcmp(stmts[i].sql, sql) == 0) {
			*found = 1;
			return (&stmts[i]);
		}
	}
	*found = 0;
	return (NULL);
}

static struct sb_db_res *
result(PGresult *res)
{
	struct sb_db_res	*r;
	const char		*state;
	ExecStatusType		 st;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatalx("calloc");
	r->res = res;
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	r->ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
	if (!r->ok) {
		state = res != NULL ? PQresultErrorField(res,
		    PG_DIAG_SQLSTATE) : NULL;
		snprintf(r->sqlstate, sizeof(r->sqlstate), "%s",
		    state != NULL ? state : (broken() ? "08006" : "XX000"));
	}
	return (r);
}

static struct sb_db_res *
run(const char *sql, int n, const char *const *params)
{
	struct stmt	*s;
	PGresult	*res;
	char		 name[32];
	int		 found;

	if (broken() && sb_db_connect() == -1)
		return (result(NULL));

	s = stmt_lookup(sql, &found);
	if (s == NULL || stmt_count >= STMT_SLOTS / 2) {
		/* Table full: run unprepared rather than fail. */
		res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
		return (result(res));
	}
	if (!found) {
		snprintf(name, sizeof(name), "sb%u", stmt_count);
		res = PQprepare(conn, name, sql, n, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return (result(res));
		PQclear(res);
		s->sql = sb_strdup(sql);
		s->id = stmt_count++;
	}
	snprintf(name, sizeof(name), "sb%u", s->id);
	res = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
	return (result(res));
}

struct sb_db_res *
sb_db_query(const char *sql, int n, const char *const *params)
{
	struct sb_db_res	*r;

	r = run(sql, n, params);
	if (r->ok || in_tx || !broken())
		return (r);

	/* The server went away: one reconnect, one retry. */
	sb_log(SB_LOG_WARN, "db", "connection lost: reconnecting");
	sb_db_free(r);
	sb_db_disconnect();
	if (sb_db_connect() == -1)
		return (result(NULL));
	return (run(sql, n, params));
}

int
sb_db_exec(const char *sql, int n, const char *const *params)
{
	struct sb_db_res	*r;
	int			 ok;

	r = sb_db_query(sql, n, params);
	ok = r->ok;
	if (!ok)
		sb_log(SB_LOG_ERROR, "db", "query failed (%s): %s", r->sqlstate,
		    r->res != NULL ? PQresultErrorMessage(r->res) : "no result");
	sb_db_free(r);
	return (ok ? 0 : -1);
}

int
sb_db_begin(void)
{
	if (in_tx) {
		sb_log(SB_LOG_ERROR, "db", "nested transaction refused");
		return (-1);
	}
	if (sb_db_exec("BEGIN", 0, NULL) == -1)
		return (-1);
	in_tx = 1;
	return (0);
}

int
sb_db_commit(void)
{
	struct sb_db_res	*r;
	int			 rc;

	if (!in_tx)
		return (-1);
	/* COMMIT of a transaction a statement already failed in succeeds
	 * as a command and answers "ROLLBACK": nothing was committed, and
	 * the caller must hear it. */
	r = sb_db_query("COMMIT", 0, NULL);
	in_tx = 0;
	rc = r->ok && r->res != NULL &&
	    strcmp(PQcmdStatus(r->res), "COMMIT") == 0 ? 0 : -1;
	if (rc == -1)
		sb_log(SB_LOG_ERROR, "db", "commit failed: %s", !r->ok ?
		    (r->res != NULL ? PQresultErrorMessage(r->res) :
		    "no result") : "the transaction had failed and was rolled "
		    "back");
	sb_db_free(r);
	return (rc);
}

void
sb_db_rollback(void)
{
	if (!in_tx)
		return;
	in_tx = 0;
	if (!broken())
		(void)sb_db_exec("ROLLBACK", 0, NULL);
}

void
sb_db_free(struct sb_db_res *r)
{
	if (r == NULL)
		return;
	PQclear(r->res);
	free(r);
}

int
sb_db_rows(const struct sb_db_res *r)
{
	return (r != NULL && r->res != NULL && r->ok ? PQntuples(r->res) : 0);
}

const char *
sb_db_value(const struct sb_db_res *r, int row, int col)
{
	if (r == NULL || r->res == NULL || row < 0 || col < 0 ||
	    row >= PQntuples(r->res) || col >= PQnfields(r->res) ||
	    PQgetisnull(r->res, row, col))
		return (NULL);
	return (PQgetvalue(r->res, row, col));
}

/* "2026-11-20 23:04:45.123+00" -> "2026-11-20T23:04:45.123Z" */
static json_t *
timestamp_json(const char *v)
{
	char	buf[64];
	size_t	len;

	len = strlen(v);
	if (len < 19 || len >= sizeof(buf) - 2)
		return (json_string(v));
	memcpy(buf, v, len + 1);
	buf[10] = 'T';
	if (len > 3 && strcmp(buf + len - 3, "+00") == 0)
		strcpy(buf + len - 3, "Z");
	return (json_string(buf));
}

json_t *
sb_db_row_json(const struct sb_db_res *r, int row)
{
	json_t		*o, *v;
	const char	*val;
	int		 col, ncol;
	Oid		 type;

	if (r == NULL || r->res == NULL || row < 0 || row >= PQntuples(r->res))
		return (NULL);
	o = json_object();
	ncol = PQnfields(r->res);
	for (col = 0; col < ncol; col++) {
		if (PQgetisnull(r->res, row, col)) {
			json_object_set_new(o, PQfname(r->res, col), json_null());
			continue;
		}
		val = PQgetvalue(r->res, row, col);
		type = PQftype(r->res, col);
		switch (type) {
		case 16:		/* bool */
			v = json_boolean(val[0] == 't');
			break;
		case 20: case 21: case 23:	/* int8, int2, int4 */
			v = json_integer(strtoll(val, NULL, 10));
			break;
		case 700: case 701: case 1700:	/* float4, float8, numeric */
			v = json_real(strtod(val, NULL));
			break;
		case 114: case 3802:	/* json, jsonb */
			v = json_loads(val, JSON_DECODE_ANY, NULL);
			break;
		case 1184:		/* timestamptz */
			v = timestamp_json(val);
			break;
		default:
			v = json_string(val);
			break;
		}
		json_object_set_new(o, PQfname(r->res, col),
		    v != NULL ? v : json_null());
	}
	return (o);
}

int64_t
sb_db_size(void)
{
	struct sb_db_res	*r;
	const char		*v;
	int64_t			 size;

	r = sb_db_query("SELECT pg_database_size(current_database())", 0,
	    NULL);
	v = sb_db_value(r, 0, 0);
	size = v != NULL ? strtoll(v, NULL, 10) : -1;
	sb_db_free(r);
	return (size);
}

/*
 * A PostgreSQL text[] literal for a JSON array of strings, to bind as one
 * parameter ($1::text[]).  Every element is quoted, so any text is safe.
 * Caller frees with free().
 */
char *
sb_db_text_array(const json_t *strings)
{
	const json_t	*v;
	const char	*p;
	char		*out, *o;
	size_t		 i, len;

	len = 3;
	json_array_foreach(strings, i, v) {
		p = json_string_value(v);
		len += 3 + (p != NULL ? 2 * strlen(p) : 0);
	}
	if ((out = malloc(len)) == NULL)
		fatalx("malloc");
	o = out;
	*o++ = '{';
	json_array_foreach(strings, i, v) {
		if (i > 0)
			*o++ = ',';
		*o++ = '"';
		for (p = json_string_value(v); p != NULL && *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				*o++ = '\\';
			*o++ = *p;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return (out);
}

/* The first row of a query taking one bigint ($1) as JSON, or NULL. */
json_t *
sb_db_row_by_id(const char *sql, int64_t id)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 buf[32];
	json_t			*o;

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	params[0] = buf;
	r = sb_db_query(sql, 1, params);
	o = sb_db_rows(r) >= 1 ? sb_db_row_json(r, 0) : NULL;
	sb_db_free(r);
	return (o);
}
