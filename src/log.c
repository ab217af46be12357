/*
 * Structured logging: one JSON object per line on standard output, written
 * with a single write(2) so lines from the parent and the workers never
 * interleave (Kore's own printf logging is block-buffered when redirected).
 */

#include <sys/time.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sb.h"

static const char	*level_names[] = { "debug", "info", "warn", "error" };
static int		 log_worker = -1;

void
sb_log_set_worker(int id)
{
	log_worker = id;
}

static void
timestamp(char *buf, size_t len)
{
	struct timeval	tv;
	struct tm	tm;
	size_t		n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

void
sb_log_json(json_t *line)
{
	char		ts[40], *out;
	size_t		len;
	ssize_t		w;

	timestamp(ts, sizeof(ts));
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "pid", json_integer(getpid()));
	if (log_worker >= 0)
		json_object_set_new(line, "worker", json_integer(log_worker));

	out = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (out == NULL)
		return;

	len = strlen(out);
	out[len] = '\n';	/* json_dumps leaves room for the NUL */
	w = write(STDOUT_FILENO, out, len + 1);
	(void)w;
	free(out);
}

void
sb_logv(enum sb_log_level level, const char *component, const char *fmt,
    va_list ap)
{
	char		msg[2048], *p;
	json_t		*line;

	if ((unsigned)level > SB_LOG_ERROR)
		level = SB_LOG_ERROR;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);

	line = json_object();
	json_object_set_new(line, "level", json_string(level_names[level]));
	json_object_set_new(line, "component", json_string(component));
	/* json_string refuses invalid UTF-8: never lose a line over it. */
	if (json_object_set_new(line, "msg", json_string(msg)) == -1) {
		for (p = msg; *p != '\0'; p++) {
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		}
		json_object_set_new(line, "msg", json_string(msg));
	}
	sb_log_json(line);
}

void
sb_log(enum sb_log_level level, const char *component, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	sb_logv(level, component, fmt, ap);
	va_end(ap);
}
