/*
 * The console's static files.  assets/ is read once in the parent, before
 * the sandbox, and held in memory with a strong ETag per file: serving
 * needs no file system inside the chroot and no syscall beyond the send.
 * A change to assets/ therefore needs a restart (as does any change to
 * the host; Kore 4.1's SIGHUP reload is destructive).  Plugins' console
 * panels (ABI 1.2) are loaded the same way under /plugins/<name>, so this
 * file stays the one place that serves static files.
 */

#include <sys/stat.h>

#include <kore/kore.h>
#include <kore/http.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"

#define ASSET_MAX	(32 * 1024 * 1024)
#define ASSETS_MAX	(512 * 1024 * 1024)

struct asset {
	char		*path;		/* "/index.html" */
	unsigned char	*data;
	size_t		 len;
	char		 etag[24];
	const char	*ctype;
};

static struct asset	*assets = NULL;
static size_t		 nassets = 0, total = 0;
static int		 prefixed = 0;	/* loading a panel: skip URLs taken */

static struct asset	*lookup(const char *);

static const struct {
	const char	*ext;
	const char	*type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json; charset=utf-8" },
	{ ".map", "application/json; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".jpg", "image/jpeg" },
	{ ".ico", "image/x-icon" },
	{ ".webp", "image/webp" },
	{ ".woff2", "font/woff2" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ NULL, NULL }
};

static const char *
content_type(const char *path)
{
	const char	*dot;
	int		 i;

	if ((dot = strrchr(path, '.')) == NULL)
		return ("application/octet-stream");
	for (i = 0; types[i].ext != NULL; i++) {
		if (strcasecmp(dot, types[i].ext) == 0)
			return (types[i].type);
	}
	return ("application/octet-stream");
}

static int
add_file(const char *fs, const char *url, size_t size)
{
	FILE		*fp;
	struct asset	*a;
	char		 sum[65];

	if (size > ASSET_MAX || total + size > ASSETS_MAX) {
		sb_log(SB_LOG_WARN, "assets", "%s skipped: too large", fs);
		return (0);
	}
	if ((fp = fopen(fs, "r")) == NULL)
		return (-1);
	if ((assets = realloc(assets, (nassets + 1) * sizeof(*assets))) == NULL)
		fatalx("realloc");
	a = &assets[nassets];
	memset(a, 0, sizeof(*a));
	if ((a->data = malloc(size ? size : 1)) == NULL)
		fatalx("malloc");
	if (fread(a->data, 1, size, fp) != size) {
		fclose(fp);
		free(a->data);
		return (-1);
	}
	fclose(fp);
	a->len = size;
	a->path = sb_strdup(url);
	a->ctype = content_type(url);
	sb_sha256_hex(a->data, size, sum);
	snprintf(a->etag, sizeof(a->etag), "\"%.20s\"", sum);
	nassets++;
	total += size;
	return (0);
}

static int
walk(const char *fs, const char *url, int depth)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 fpath[PATH_MAX], upath[PATH_MAX];
	int		 rc;

	if (depth > 16 || (d = opendir(fs)) == NULL)
		return (depth == 0 ? -1 : 0);
	rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;	/* also hides dotfiles */
		snprintf(fpath, sizeof(fpath), "%s/%s", fs, de->d_name);
		snprintf(upath, sizeof(upath), "%s/%s", url, de->d_name);
		if (stat(fpath, &st) == -1)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = walk(fpath, upath, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			/* First come, first served: a panel never shadows
			 * the console or an earlier panel. */
			if (prefixed && lookup(upath) != NULL) {
				sb_log(SB_LOG_WARN, "assets", "%s skipped: %s "
				    "is already served", fpath, upath);
				continue;
			}
			rc = add_file(fpath, upath, (size_t)st.st_size);
		}
		if (rc == -1)
			break;
	}
	closedir(d);
	return (rc);
}

int
sb_assets_load(const char *dir)
{
	if (walk(dir, "", 0) == -1)
		return (-1);
	sb_log(SB_LOG_INFO, "assets", "%zu files (%zu bytes) from %s",
	    nassets, total, dir);
	return (0);
}

int
sb_assets_load_prefix(const char *dir, const char *url_prefix)
{
	size_t	mark, bytes;
	int	rc;

	mark = sb_assets_mark();
	bytes = total;
	prefixed = 1;
	rc = walk(dir, url_prefix, 0);
	prefixed = 0;
	if (rc == -1) {
		sb_assets_release(mark);
		return (-1);
	}
	sb_log(SB_LOG_INFO, "assets", "%zu files (%zu bytes) from %s at %s/",
	    nassets - mark, total - bytes, dir, url_prefix);
	return (0);
}

/* A plugin whose panels fail to load leaves none of its files behind:
 * what was loaded since the mark is dropped. */
size_t
sb_assets_mark(void)
{
	return (nassets);
}

void
sb_assets_release(size_t mark)
{
	while (nassets > mark) {
		nassets--;
		total -= assets[nassets].len;
		free(assets[nassets].path);
		free(assets[nassets].data);
	}
}

static struct asset *
lookup(const char *path)
{
	size_t	i;

	for (i = 0; i < nassets; i++) {
		if (strcmp(assets[i].path, path) == 0)
			return (&assets[i]);
	}
	return (NULL);
}

/* 0 when answered, -1 when there is no such asset. */
int
sb_assets_serve(struct sb_req *req, const char *path)
{
	struct asset	*a;
	const char	*inm;
	char		 buf[PATH_MAX];

	if (strcmp(path, "/") == 0)
		path = "/index.html";
	if ((a = lookup(path)) == NULL) {
		/* A folder's index: /docs -> /docs/index.html */
		snprintf(buf, sizeof(buf), "%s%sindex.html", path,
		    path[strlen(path) - 1] == '/' ? "" : "/");
		if ((a = lookup(buf)) == NULL)
			return (-1);
	}

	sb_resp_header(req, "etag", a->etag);
	if (strncmp(a->ctype, "text/html", 9) == 0) {
		sb_resp_header(req, "cache-control", "no-cache");
		sb_resp_header(req, "content-security-policy",
		    "default-src 'self'; img-src 'self' data: blob:; "
		    "style-src 'self' 'unsafe-inline'; connect-src 'self' "
		    "ws: wss:; frame-src 'self' https:; frame-ancestors 'none'; "
		    "base-uri 'none'; form-action 'self'");
	} else {
		sb_resp_header(req, "cache-control", "public, max-age=3600");
	}

	inm = sb_req_header(req, "if-none-match");
	if (inm != NULL && (strstr(inm, a->etag) != NULL ||
	    strcmp(inm, "*") == 0)) {
		sb_respond_raw(req, 304, NULL, NULL, 0);
		return (0);
	}
	sb_respond_raw(req, 200, a->ctype, a->data, a->len);
	return (0);
}
