/*
 * Schema migrations, applied by the parent before the workers fork: the
 * host's (migrations/) first, then each ready plugin's folders in load
 * order.  A migration is a file NNN_name.sql; it runs in its own
 * transaction and is recorded in schema_migrations with its SHA-256.  A
 * session-level advisory lock serialises several nodes starting at once.
 * An applied migration whose file changed is refused: history is fixed,
 * changes go into a new file.
 */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kore/kore.h>

#include "sb.h"

/* Arbitrary, fixed: "switchboard migrations" for pg_advisory_lock. */
#define MIGRATION_LOCK	"7301949281727301"

static int	name_cmp(const void *, const void *);
static int	is_migration(const char *);
static char	*read_file(const char *, size_t *);

static int
name_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* NNN_name.sql: at least one digit, an underscore, ".sql". */
static int
is_migration(const char *name)
{
	size_t	len;
	const char *p;

	len = strlen(name);
	if (len < 6 || strcmp(name + len - 4, ".sql") != 0)
		return (0);
	for (p = name; *p >= '0' && *p <= '9'; p++)
		;
	return (p != name && *p == '_');
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	*fp;
	char	*buf;
	long	 size;

	if ((fp = fopen(path, "r")) == NULL)
		return (NULL);
	if (fseek(fp, 0, SEEK_END) == -1 || (size = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) == -1 || size > 16 * 1024 * 1024) {
		fclose(fp);
		return (NULL);
	}
	if ((buf = malloc((size_t)size + 1)) == NULL)
		fatalx("malloc");
	if (fread(buf, 1, (size_t)size, fp) != (size_t)size) {
		free(buf);
		fclose(fp);
		return (NULL);
	}
	fclose(fp);
	buf[size] = '\0';
	*len = (size_t)size;
	return (buf);
}

static int
apply_one(const char *scope, const char *dir, const char *file, char *err,
    size_t errlen)
{
	struct sb_db_res	*r;
	PGresult		*res;
	char			 path[PATH_MAX], sum[65], version[64];
	const char		*params[4], *have;
	char			*sql;
	size_t			 len, vlen;
	int			 rc;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((sql = read_file(path, &len)) == NULL) {
		snprintf(err, errlen, "cannot read %s", path);
		return (-1);
	}
	sb_sha256_hex(sql, len, sum);
	vlen = strcspn(file, "_");
	snprintf(version, sizeof(version), "%.*s", (int)vlen, file);

	params[0] = scope;
	params[1] = version;
	r = sb_db_query("SELECT checksum, name FROM schema_migrations "
	    "WHERE scope = $1 AND version = $2", 2, params);
	if (!r->ok) {
		snprintf(err, errlen, "cannot read schema_migrations");
		sb_db_free(r);
		free(sql);
		return (-1);
	}
	if (sb_db_rows(r) == 1) {
		have = sb_db_value(r, 0, 0);
		rc = 0;
		if (strcmp(have, sum) != 0) {
			snprintf(err, errlen, "migration %s was changed after "
			    "it was applied (recorded sha256 %.12s, file "
			    "%.12s): put changes in a new migration", path,
			    have, sum);
			rc = -1;
		}
		sb_db_free(r);
		free(sql);
		return (rc);
	}
	sb_db_free(r);

	rc = -1;
	if (sb_db_begin() == -1) {
		snprintf(err, errlen, "cannot begin a transaction");
		goto out;
	}
	/* A file holds several statements: the simple-query protocol. */
	res = PQexec(sb_db_conn(), sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s failed: %s", path,
		    PQresultErrorMessage(res));
		PQclear(res);
		sb_db_rollback();
		goto out;
	}
	PQclear(res);
	params[2] = file;
	params[3] = sum;
	if (sb_db_exec("INSERT INTO schema_migrations (scope, version, name, "
	    "checksum) VALUES ($1, $2, $3, $4)", 4, params) == -1) {
		snprintf(err, errlen, "cannot record %s", path);
		sb_db_rollback();
		goto out;
	}
	if (sb_db_commit() == -1) {
		snprintf(err, errlen, "cannot commit %s", path);
		goto out;
	}
	sb_log(SB_LOG_INFO, "migrate", "applied %s/%s", scope, file);
	rc = 0;
out:
	free(sql);
	return (rc);
}

int
sb_migrate_dir(const char *scope, const char *dir, char *err, size_t errlen)
{
	DIR		*d;
	struct dirent	*de;
	char		**names;
	size_t		 n, cap, i;
	int		 rc;

	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "cannot open migrations folder %s", dir);
		return (-1);
	}
	names = NULL;
	n = cap = 0;
	while ((de = readdir(d)) != NULL) {
		if (!is_migration(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((names = realloc(names, cap * sizeof(*names))) ==
			    NULL)
				fatalx("realloc");
		}
		names[n++] = sb_strdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);

	rc = 0;
	for (i = 0; i < n; i++) {
		if (i > 0 && strcspn(names[i], "_") == strcspn(names[i - 1],
		    "_") && strncmp(names[i], names[i - 1],
		    strcspn(names[i], "_")) == 0) {
			snprintf(err, errlen, "%s: two migrations share the "
			    "number of %s", dir, names[i]);
			rc = -1;
			break;
		}
		if (apply_one(scope, dir, names[i], err, errlen) == -1) {
			rc = -1;
			break;
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return (rc);
}

int
sb_migrate_all(void)
{
	struct sb_plugin	*p;
	const char		*lock[1] = { MIGRATION_LOCK };
	char			 err[1024];
	size_t			 i;
	json_t			*dir;
	int			 rc;

	/* The lock first: on a fresh database, nodes starting together
	 * would race on CREATE TABLE IF NOT EXISTS (it is not atomic). */
	if (sb_db_exec("SELECT pg_advisory_lock($1::bigint)", 1, lock) == -1)
		return (-1);
	if (sb_db_exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "scope text NOT NULL, version text NOT NULL, name text NOT NULL, "
	    "checksum text NOT NULL, applied_at timestamptz NOT NULL "
	    "DEFAULT now(), PRIMARY KEY (scope, version))", 0, NULL) == -1) {
		rc = -1;
		goto out;
	}

	rc = 0;
	if (sb_migrate_dir("host", sb_settings.migrations_dir, err,
	    sizeof(err)) == -1) {
		sb_log(SB_LOG_ERROR, "migrate", "%s", err);
		rc = -1;
		goto out;
	}
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->state != SB_PLUGIN_READY || p == sb_host_plugin)
			continue;
		json_array_foreach(p->migrations, i, dir) {
			if (sb_migrate_dir(p->name, json_string_value(dir),
			    err, sizeof(err)) == 0)
				continue;
			/* Its routes stay registered but answer 503. */
			snprintf(p->error, sizeof(p->error), "migration "
			    "failed: %s", err);
			p->state = SB_PLUGIN_FAILED;
			sb_log(SB_LOG_ERROR, "migrate", "plugin %s disabled: "
			    "%s", p->name, err);
			if (p->required)
				rc = -1;
			break;
		}
	}
out:
	(void)sb_db_exec("SELECT pg_advisory_unlock($1::bigint)", 1, lock);
	return (rc);
}
