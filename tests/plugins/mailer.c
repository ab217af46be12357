/*
 * Test plugin: outbound mail from a request handler.  POST
 * /api/v1/mailer/send defers its answer, sends the mail it is told to
 * send with api->mail_send() and answers from the callback with what
 * came back, so a black-box test sees the host's SMTP client from
 * outside: {ok, smtp_code, error, elapsed_ms}.  A mail mail_send()
 * refuses is answered 400 at once.
 *
 * The field table is loose on purpose (empty strings, up to 200
 * recipients, a 16 MiB body): the host's own checks are under test.
 */
#include <string.h>

#include <switchboard/plugin.h>

#define MAX_TO		200

static const struct sb_host_api	*api;

static const struct sb_field send_body[] = {
	{ .name = "url", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 4096 },
	{ .name = "starttls", .type = SB_T_BOOL },
	{ .name = "username", .type = SB_T_STRING, .max_len = 4096 },
	{ .name = "password", .type = SB_T_STRING, .max_len = 4096 },
	{ .name = "from", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 4096 },
	{ .name = "to", .type = SB_T_ARRAY, .flags = SB_F_REQUIRED,
	  .item_type = SB_T_STRING, .max_len = MAX_TO },
	{ .name = "message", .type = SB_T_STRING, .flags = SB_F_REQUIRED },
	{ .name = "timeout_ms", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 1, .max = 600000 },
	SB_FIELD_END
};

static void
mailer_sent(struct sb_plugin *p, const struct sb_mail_result *res,
    void *arg)
{
	struct sb_req	*req = arg;

	(void)p;
	api->respond_json(req, 200, json_pack("{s:b, s:I, s:s?, s:i}",
	    "ok", res->ok,
	    "smtp_code", (json_int_t)res->smtp_code,
	    "error", res->error,
	    "elapsed_ms", (int)res->elapsed_ms));
}

static void
mailer_send(struct sb_req *req)
{
	struct sb_mail	 m;
	const char	*to[MAX_TO];
	json_t		*b, *v, *list;
	size_t		 i;

	b = api->req_json(req);
	memset(&m, 0, sizeof(m));
	m.url = json_string_value(json_object_get(b, "url"));
	m.starttls = json_is_true(json_object_get(b, "starttls"));
	m.username = json_string_value(json_object_get(b, "username"));
	m.password = json_string_value(json_object_get(b, "password"));
	m.from = json_string_value(json_object_get(b, "from"));
	list = json_object_get(b, "to");
	json_array_foreach(list, i, v) {
		if (i < MAX_TO)
			to[m.nto++] = json_string_value(v);
	}
	m.to = to;
	v = json_object_get(b, "message");
	m.message = json_string_value(v);
	m.message_len = json_string_length(v);
	m.timeout_ms = (unsigned int)json_integer_value(json_object_get(b,
	    "timeout_ms"));

	api->req_defer(req);
	if (api->mail_send(api->req_plugin(req), &m, mailer_sent, req) !=
	    SB_OK) {
		/* Deferred, but answering now is allowed. */
		api->respond_error(req, 400, "VALIDATION_ERROR", "the mail was "
		    "refused by mail_send", NULL);
	}
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/mailer/send",
	  .flags = SB_ROUTE_PUBLIC, .handler = mailer_send,
	  .summary = "Send a mail; answer with its result",
	  .body = send_body, .body_max = 16 * 1024 * 1024 },
	SB_ROUTE_END
};

static int
mailer_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	api = a;
	if (!SB_API_HAS(a, mail_send) || !SB_API_HAS(a, req_defer))
		return (SB_ERROR);
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.mailer",
	.name = "mailer",
	.version = "1.0.0",
	.summary = "Test plugin: outbound mail from a deferred handler",
	.setup = mailer_setup,
);
