/*
 * Test plugin: http_send's sb_http_io (ABI 1.3) seen from outside.
 * POST /api/v1/filer/transfer {url, method?, headers?, sigv4?,
 * access_key?, secret_key?, body?, pad?, claim?, to_file?,
 * response_max?} writes `pad` bytes of 'x' then `body` into a new file
 * of the configured `dir`, sends the request with that file as body_fd
 * (body_offset = pad, body_len = the body's length + claim) and, with
 * to_file, response_fd another new file, closes its own descriptors at
 * once (http_send has dups), and answers from the callback with {status,
 * error, body (in memory), file (the response file read back by name)}.
 * A request http_send refuses is 400.
 */
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>

#define MAX_HEADERS	8
#define FILE_MAX	(1024 * 1024)

static const struct sb_host_api	*api;
static int			 dir_fd = -1;
static unsigned int		 seq;

static const struct sb_config_key config[] = {
	{ "dir", NULL, 0, "a directory the worker user can write" },
	SB_CONFIG_END
};

static const struct sb_field transfer_body[] = {
	{ .name = "url", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 4096 },
	{ .name = "method", .type = SB_T_STRING, .max_len = 16 },
	{ .name = "headers", .type = SB_T_OBJECT },
	{ .name = "sigv4", .type = SB_T_STRING, .max_len = 128 },
	{ .name = "access_key", .type = SB_T_STRING, .max_len = 128 },
	{ .name = "secret_key", .type = SB_T_STRING, .max_len = 128 },
	{ .name = "body", .type = SB_T_STRING, .max_len = 65536 },
	{ .name = "pad", .type = SB_T_INT, .flags = SB_F_RANGE, .min = 0,
	  .max = 65536 },
	{ .name = "claim", .type = SB_T_INT, .flags = SB_F_RANGE, .min = 0,
	  .max = 65536 },
	{ .name = "to_file", .type = SB_T_BOOL },
	{ .name = "response_max", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 0, .max = 16777216 },
	SB_FIELD_END
};

struct transfer {
	struct sb_req	*req;
	char		 out[32];	/* the response file, or "" */
	char		 in[32];	/* the body file, or "" */
};

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t	w;

	while (len > 0) {
		if ((w = write(fd, buf, len)) == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return (-1);
		buf += w;
		len -= (size_t)w;
	}
	return (0);
}

static void
transfer_done(struct sb_plugin *p, const struct sb_http_response *resp,
    void *arg)
{
	struct transfer	*t = arg;
	json_t		*out;
	char		*buf;
	ssize_t		 n;
	int		 fd;

	(void)p;
	out = json_pack("{s:i, s:s?, s:s%}", "status", resp->status,
	    "error", resp->error, "body", (const char *)resp->body,
	    resp->body_len);
	if (t->out[0] != '\0') {
		buf = malloc(FILE_MAX);
		fd = openat(dir_fd, t->out, O_RDONLY | O_CLOEXEC);
		if (buf != NULL && fd != -1 &&
		    (n = pread(fd, buf, FILE_MAX, 0)) >= 0)
			json_object_set_new(out, "file",
			    json_stringn(buf, (size_t)n));
		if (fd != -1)
			(void)close(fd);
		free(buf);
		(void)unlinkat(dir_fd, t->out, 0);
	}
	if (t->in[0] != '\0')
		(void)unlinkat(dir_fd, t->in, 0);
	api->respond_json(t->req, 200, out);
	free(t);
}

static int
file_new(char *name, size_t len, const char *what)
{
	(void)snprintf(name, len, "%s-%d-%u", what, (int)getpid(), ++seq);
	return (openat(dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600));
}

static void
filer_transfer(struct sb_req *req)
{
	struct sb_http_request	 r;
	struct sb_http_io	 io;
	struct sb_http_header	 hdrs[MAX_HEADERS];
	struct transfer		*t;
	json_t			*b, *h, *v;
	const char		*name, *body;
	char			*pad;
	size_t			 blen, npad;
	int			 in_fd = -1, out_fd = -1, rc;

	b = api->req_json(req);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		api->respond_error(req, 500, "INTERNAL", "oom", NULL);
		return;
	}
	t->req = req;
	memset(&r, 0, sizeof(r));
	memset(&io, 0, sizeof(io));
	io.size = sizeof(io);
	io.body_fd = io.response_fd = -1;
	r.io = &io;
	r.url = json_string_value(json_object_get(b, "url"));
	r.method = json_string_value(json_object_get(b, "method"));
	if (r.method == NULL)
		r.method = "GET";
	io.aws_sigv4 = json_string_value(json_object_get(b, "sigv4"));
	io.username = json_string_value(json_object_get(b, "access_key"));
	io.password = json_string_value(json_object_get(b, "secret_key"));
	h = json_object_get(b, "headers");
	json_object_foreach(h, name, v) {
		if (r.nheaders == MAX_HEADERS || !json_is_string(v))
			break;
		hdrs[r.nheaders].name = name;
		hdrs[r.nheaders].value = json_string_value(v);
		r.nheaders++;
	}
	r.headers = hdrs;
	if ((v = json_object_get(b, "body")) != NULL) {
		body = json_string_value(v);
		blen = json_string_length(v);
		npad = (size_t)json_integer_value(json_object_get(b, "pad"));
		if ((in_fd = file_new(t->in, sizeof(t->in), "in")) == -1 ||
		    (pad = malloc(npad + 1)) == NULL) {
			api->respond_error(req, 500, "INTERNAL", "body file",
			    NULL);
			goto out;
		}
		memset(pad, 'x', npad);
		rc = write_all(in_fd, pad, npad);
		free(pad);
		if (rc == -1 || write_all(in_fd, body, blen) == -1) {
			api->respond_error(req, 500, "INTERNAL", "body file",
			    NULL);
			goto out;
		}
		io.body_fd = in_fd;
		io.body_offset = npad;
		io.body_len = blen + (size_t)json_integer_value(
		    json_object_get(b, "claim"));
	}
	if (json_is_true(json_object_get(b, "to_file"))) {
		if ((out_fd = file_new(t->out, sizeof(t->out), "out")) ==
		    -1) {
			api->respond_error(req, 500, "INTERNAL", "response "
			    "file", NULL);
			goto out;
		}
		io.response_fd = out_fd;
		io.response_max = (uint64_t)json_integer_value(
		    json_object_get(b, "response_max"));
	}
	api->req_defer(req);
	if (api->http_send(api->req_plugin(req), &r, transfer_done, t) !=
	    SB_OK) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "the request "
		    "was refused by http_send", NULL);
		goto out;
	}
	/* http_send has its own copies. */
	if (in_fd != -1)
		(void)close(in_fd);
	if (out_fd != -1)
		(void)close(out_fd);
	return;
out:
	if (in_fd != -1) {
		(void)close(in_fd);
		(void)unlinkat(dir_fd, t->in, 0);
	}
	if (out_fd != -1) {
		(void)close(out_fd);
		(void)unlinkat(dir_fd, t->out, 0);
	}
	free(t);
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/filer/transfer",
	  .flags = SB_ROUTE_PUBLIC, .handler = filer_transfer,
	  .summary = "An outbound call with sb_http_io; its result",
	  .body = transfer_body },
	SB_ROUTE_END
};

static int
filer_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	static const long	nrs[] = { SYS_unlinkat, SYS_pread64,
	    SYS_pwrite64 };
	const char		*dir;

	api = a;
	if (!SB_API_HAS(a, http_send) || !SB_API_HAS(a, req_defer) ||
	    a->config_declare(p, config) != SB_OK)
		return (SB_ERROR);
	if ((dir = a->config_get(p, "dir")) == NULL ||
	    (dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		a->log(p, SB_LOG_ERROR, "filer: no usable dir");
		return (SB_ERROR);
	}
	if (a->seccomp_allow(p, nrs, sizeof(nrs) / sizeof(nrs[0])) != SB_OK)
		return (SB_ERROR);
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.filer",
	.name = "filer",
	.version = "1.0.0",
	.summary = "Test plugin: http_send with a body and a response in "
	    "files, AWS SigV4",
	.setup = filer_setup,
)
