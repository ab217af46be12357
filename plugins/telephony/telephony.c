/*
 * The telephony plugin (API.md "Telephony"): the SMS core.  Routes,
 * the durable send job with routing and failover over the providers of
 * provider.h, provider webhooks, statistics, privacy hooks and the
 * customers timeline.  Providers live one per file (twilio.c, exotel.c).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>
#include <switchboard/services/customers.h>

#include "provider.h"
#include "sms.h"
#include "tel.h"

#define ROOM		TEL_ROOM
#define SEND_KIND	"telephony.sms_send"
#define SEND_ATTEMPTS	8

static const struct sb_host_api			*api;
static struct sb_plugin				*self;
static unsigned int	 sms_per_minute;
static unsigned int	 sms_daily_cap;


static void	sms_send(struct sb_req *);
static void	sms_inbox(struct sb_req *);
static void	sms_outbox(struct sb_req *);
static void	sms_get(struct sb_req *);
static void	sms_statistics(struct sb_req *);
static void	webhook_twilio(struct sb_req *);
static void	webhook_exotel(struct sb_req *);
static void	send_run(struct sb_job *);

static const char *const sms_providers[] = { "twilio", "exotel", "device",
	NULL };

static const struct sb_field send_body[] = {
	{ .name = "to", .type = SB_T_STRING, .flags = SB_F_REQUIRED |
	  SB_F_NONEMPTY, .max_len = 64, .description = "The recipient; "
	  "normalised to E.164" },
	{ .name = "body", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 1600, .description = "1..1600 characters, "
	  "at most 10 segments" },
	{ .name = "provider", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .choices = sms_providers, .description = "Overrides routing" },
	{ .name = "sim_card_id", .type = SB_T_INT, .flags = SB_F_NULLABLE |
	  SB_F_RANGE, .min = 1, .max = INT64_MAX },
	{ .name = "device_id", .type = SB_T_INT, .flags = SB_F_NULLABLE |
	  SB_F_RANGE, .min = 1, .max = INT64_MAX },
	{ .name = "customer_id", .type = SB_T_INT, .flags = SB_F_NULLABLE |
	  SB_F_RANGE, .min = 1, .max = INT64_MAX },
	{ .name = "schedule_at", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .format = "date-time", .description = "Send no earlier than this" },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/sms", .permission = "sms.send",
	  .handler = sms_send, .body = send_body,
	  .summary = "Send an SMS (202: queued; the send is a durable job)" },
	{ .method = "GET", .path = "/api/v1/sms/inbox",
	  .permission = "sms.read", .handler = sms_inbox,
	  .summary = "Inbound SMS, newest first" },
	{ .method = "GET", .path = "/api/v1/sms/outbox",
	  .permission = "sms.read", .handler = sms_outbox,
	  .summary = "Outbound SMS, newest first" },
	{ .method = "GET", .path = "/api/v1/sms/statistics",
	  .permission = "sms.read", .handler = sms_statistics,
	  .summary = "SMS totals by day, provider and SIM card" },
	{ .method = "GET", .path = "/api/v1/sms/{id}",
	  .permission = "sms.read", .handler = sms_get,
	  .summary = "One SMS with its status events" },
	{ .method = "POST", .path = "/api/v1/webhooks/twilio/sms",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_WEBHOOK,
	  .handler = webhook_twilio,
	  .body_max = 65536,
	  .summary = "Twilio inbound SMS and status callbacks "
	  "(X-Twilio-Signature)" },
	{ .method = "POST", .path = "/api/v1/webhooks/exotel/{token}/sms",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_SECRET_PATH | SB_ROUTE_WEBHOOK,
	  .handler = webhook_exotel,
	  .body_max = 65536,
	  .summary = "Exotel status callbacks and inbound SMS (the path "
	  "token is the check)" },
	SB_ROUTE_END
};

static const struct sb_config_key config_keys[] = {
	{ "routing", "sms:*=twilio;voice:*=twilio", 0, "Per channel, number "
	  "prefix to ordered providers: sms:+91=exotel,twilio;sms:*=twilio" },
	{ "default_country", NULL, 0, "ISO 3166-1 alpha-2 for numbers "
	  "written without their country code ([host] default_country when "
	  "unset)" },
	{ "sms_per_minute", "30", 0, "SMS a user may send, and a number may "
	  "be sent, per minute (0: no limit)" },
	{ "public_url", NULL, 0, "The externally visible base URL: Twilio's "
	  "StatusCallback and the URL its signatures cover" },
	{ "inbound_connect_to", NULL, 0, "A call to the Twilio number is "
	  "bridged to this number or sip: URI (unset: logged, then ended)" },
	{ "calls_per_minute", "10", 0, "Calls a user may place, and a number "
	  "may be called, per minute (0: no limit)" },
	{ "sms_daily_cap", "0", 0, "SMS one sender number may send per UTC "
	  "day (0: no cap); over it, sends wait for the next day" },
	{ "twilio_account_sid", NULL, 0, "Twilio AccountSid" },
	{ "twilio_auth_token", NULL, SB_CONF_SECRET, "Twilio AuthToken" },
	{ "twilio_from", NULL, 0, "The sender number (E.164)" },
	{ "twilio_messaging_service_sid", NULL, 0, "Used for SMS instead of "
	  "twilio_from when set" },
	{ "twilio_api_url", "https://api.twilio.com", 0, "Twilio's REST base "
	  "URL" },
	{ "twilio_timeout_ms", "10000", 0, "A send taking longer is "
	  "`unknown` (never resent)" },
	{ "twilio_calls_per_second", "1", 0, "Calls the Twilio account "
	  "starts per second (Twilio's default CPS is 1; 0: no pace)" },
	{ "exotel_sid", NULL, 0, "Exotel account sid" },
	{ "exotel_api_key", NULL, 0, "Exotel API key" },
	{ "exotel_api_token", NULL, SB_CONF_SECRET, "Exotel API token" },
	{ "exotel_from", NULL, 0, "The ExoPhone or sender id" },
	{ "exotel_api_url", "https://api.exotel.com", 0, "Exotel's REST base "
	  "URL (api.in.exotel.com for the Mumbai cluster)" },
	{ "exotel_webhook_token", NULL, SB_CONF_SECRET, "The path token of "
	  "/api/v1/webhooks/exotel/{token}/sms; derived from the index key "
	  "and exotel_sid when unset" },
	{ "exotel_dlt_entity_id", NULL, 0, "India's DLT entity id, sent as "
	  "DltEntityId when set" },
	{ "exotel_timeout_ms", "10000", 0, "A send taking longer is "
	  "`unknown` (never resent)" },
	{ "exotel_app_id", NULL, 0, "The Exotel call flow (app id) a call "
	  "without connect_to is connected to (Exotel has no inline "
	  "speech)" },
	{ "exotel_calls_per_second", "1", 0, "Calls the Exotel account starts "
	  "per second (0: no pace)" },
	SB_CONFIG_END
};

static const struct sb_job_kind send_kind = {
	.name = SEND_KIND, .run = send_run, .max_attempts = SEND_ATTEMPTS,
	.timeout_s = 180, .backoff_s = 1
};

/* ---- messages as the API shows them ---- */

#define SMS_COLS "id, direction, to_sealed, from_sealed, body_sealed, " \
	"provider, provider_message_id, sim_card_id, device_id, customer_id, " \
	"segments, encoding, status, error_code, error_message, sent_by, " \
	SB_SQL_TS("created_at") " AS created_at, " \
	SB_SQL_TS("updated_at") " AS updated_at"

/* A row of SMS_COLS (stolen) as the API's message. */
static json_t *
sms_json(json_t *row)
{
	if (row == NULL)
		return (NULL);
	tel_unseal_into(row, "to_sealed", "to");
	tel_unseal_into(row, "from_sealed", "from");
	tel_unseal_into(row, "body_sealed", "body");
	return (row);
}

/* The message id (with events when asked), or NULL (*dberr says why). */
static json_t *
sms_load(const char *id, int events, int *dberr)
{
	return (tel_item_load("sms", "SELECT " SMS_COLS " FROM telephony_sms "
	    "WHERE id = $1::bigint", id, events, sms_json, dberr));
}

static int
event_add(int64_t id, const char *status, const char *detail,
    const char *callback, int *added)
{
	char	ids[24];

	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	return (tel_event_add("sms", ids, status, detail, callback, added));
}

/* ---- POST /api/v1/sms ---- */

static void
sms_send(struct sb_req *req)
{
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_job_opts		 opts;
	struct sb_db_res		*r;
	json_t				*b = api->req_json(req), *m, *payload;
	const char			*to, *body, *explicit, *sched, *params[12];
	char				 e164[32], list[256], whos[32], cids[24];
	char				 sims[24], devs[24], sentby[24], ids[24];
	char				 segs[8], key[64];
	char				*index = NULL, *to_s = NULL, *body_s = NULL;
	size_t				 units;
	int64_t				 cid = 0, id;
	int				 enc, nseg, dberr;
	double				 delay = 0;

	to = sb_jstr(b, "to");
	body = sb_jstr(b, "body");
	explicit = sb_jstr(b, "provider");
	sched = sb_jstr(b, "schedule_at");
	if (tel_normalise(to, e164, sizeof(e164)) != SB_OK) {
		tel_err_field(req, 422, "to", "INVALID_FORMAT", "not a valid phone "
		    "number");
		return;
	}
	nseg = tel_segments(body, strlen(body), &enc, &units);
	if (nseg > TEL_MAX_SEGMENTS || nseg < 0) {
		tel_err_field(req, 422, "body", "TOO_LONG", "at most 10 SMS "
		    "segments");
		return;
	}
	if (tel_candidates("sms", explicit, e164, list, sizeof(list)) == -1 ||
	    !tel_any_ready(list, TEL_CHAN_SMS)) {
		api->respond_error(req, 503, "UNAVAILABLE", "no SMS provider "
		    "for this number is configured and available", NULL);
		return;
	}
	if ((index = tel_phone_index(e164)) == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		return;
	}
	(void)snprintf(whos, sizeof(whos), "%d:%lld", (int)who->kind,
	    (long long)who->id);
	if (!tel_rate_ok(req, "sms", sms_per_minute, whos, index, "too many "
	    "SMS; try again later"))
		goto done;
	if (sched != NULL) {
		params[0] = sched;
		r = api->db_query(self, "SELECT greatest(0, extract(epoch FROM "
		    "($1::timestamptz - now())) * 1000)::bigint", 1, params);
		if (!api->db_ok(r) || api->db_rows(r) != 1) {
			api->db_free(r);
			tel_err_field(req, 422, "schedule_at", "INVALID_FORMAT",
			    "not a time");
			goto done;
		}
		delay = strtod(api->db_value(r, 0, 0), NULL);
		api->db_free(r);
	}
	to_s = api->seal(self, e164, strlen(e164));
	body_s = api->seal(self, body, strlen(body));
	if (to_s == NULL || body_s == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		goto done;
	}
	if (api->db_begin(self) != SB_OK) {
		tel_err_db(req);
		goto done;
	}
	if (json_is_integer(json_object_get(b, "customer_id"))) {
		cid = json_integer_value(json_object_get(b, "customer_id"));
		if ((m = tel_dir->get(self, cid, &dberr)) == NULL) {
			api->db_rollback(self);
			if (dberr)
				tel_err_db(req);
			else
				tel_err_field(req, 422, "customer_id", "NOT_FOUND",
				    "no such customer");
			goto done;
		}
		json_decref(m);
	} else if ((cid = tel_dir->find_or_create(self, e164, NULL)) == -1) {
		api->db_rollback(self);
		tel_err_db(req);
		goto done;
	}
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)cid);
	(void)snprintf(segs, sizeof(segs), "%d", nseg);
	(void)snprintf(sims, sizeof(sims), "%lld",
	    (long long)sb_jint(b, "sim_card_id"));
	(void)snprintf(devs, sizeof(devs), "%lld",
	    (long long)sb_jint(b, "device_id"));
	(void)snprintf(sentby, sizeof(sentby), "%lld", (long long)who->id);
	params[0] = to_s;
	params[1] = index;
	params[2] = body_s;
	params[3] = explicit;
	params[4] = sb_jint(b, "sim_card_id") > 0 ? sims : NULL;
	params[5] = sb_jint(b, "device_id") > 0 ? devs : NULL;
	params[6] = cids;
	params[7] = segs;
	params[8] = enc == TEL_ENC_GSM7 ? "GSM-7" : "UCS-2";
	params[9] = who->kind == SB_ACTOR_USER ? sentby : NULL;
	params[10] = sched;
	r = api->db_query(self, "INSERT INTO telephony_sms (direction, "
	    "to_sealed, to_index, body_sealed, provider, sim_card_id, "
	    "device_id, customer_id, segments, encoding, status, sent_by, "
	    "schedule_at) VALUES ('outbound', $1, $2, $3, $4, $5::bigint, "
	    "$6::bigint, $7::bigint, $8::int, $9, 'queued', $10::bigint, "
	    "$11::timestamptz) RETURNING id", 11, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		api->db_rollback(self);
		tel_err_db(req);
		goto done;
	}
	id = strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);
	memset(&opts, 0, sizeof(opts));
	opts.delay_ms = (int64_t)delay;
	(void)snprintf(key, sizeof(key), "telephony.sms:%lld", (long long)id);
	opts.idempotency_key = key;
	payload = json_pack("{s:I, s:s?}", "id", (json_int_t)id, "provider",
	    explicit);
	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	/* The answer is the message as committed (queued), read before the
	 * send job can move it. */
	m = NULL;
	if (event_add(id, "queued", NULL, NULL, NULL) == -1 ||
	    payload == NULL ||
	    api->job_enqueue(self, SEND_KIND, payload, &opts) == -1 ||
	    (m = sms_load(ids, 1, &dberr)) == NULL ||
	    api->db_commit(self) != SB_OK) {
		json_decref(payload);
		json_decref(m);
		api->db_rollback(self);
		tel_err_db(req);
		goto done;
	}
	json_decref(payload);
	tel_publish("telephony.sms.created", m);
	api->respond_json(req, 202, m);
done:
	explicit_bzero(e164, sizeof(e164));
	free(index);
	free(to_s);
	free(body_s);
}

/* ---- lists ---- */

static json_t *
list_map(struct sb_req *req, json_t *row, void *arg)
{
	(void)req;
	(void)arg;
	return (sms_json(row));
}

static const char *const sms_statuses[] = { "queued", "sending", "sent",
	"delivered", "undelivered", "failed", "unknown", "received", NULL };

static void
sms_list(struct sb_req *req, const char *direction)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	const char		*status, *provider, *sim, *cust, *tfrom, *tto;
	const char		*params[11];
	char			*ifrom = NULL, *ito = NULL;

	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	if (tel_filter_enums(req, sms_statuses, sms_providers, &status, &provider) == -1)
		return;
	if (tel_filter_id(req, "sim_card_id", &sim) == -1 ||
	    tel_filter_id(req, "customer_id", &cust) == -1 ||
	    tel_filter_fromto(req, "from", &tfrom, &ifrom) == -1)
		return;
	if (tel_filter_fromto(req, "to", &tto, &ito) == -1) {
		free(ifrom);
		return;
	}
	params[0] = direction;
	params[1] = status;
	params[2] = provider;
	params[3] = sim;
	params[4] = cust;
	params[5] = tfrom;
	params[6] = tto;
	params[7] = ifrom;
	params[8] = ito;
	params[9] = list.cursor;
	params[10] = list.limit_plus_one;
	r = api->db_query(self, "SELECT " SMS_COLS " FROM telephony_sms "
	    "WHERE direction = $1 AND ($2::text IS NULL OR status = $2) AND "
	    "($3::text IS NULL OR provider = $3) AND "
	    "($4::bigint IS NULL OR sim_card_id = $4::bigint) AND "
	    "($5::bigint IS NULL OR customer_id = $5::bigint) AND "
	    "($6::timestamptz IS NULL OR created_at >= $6::timestamptz) AND "
	    "($7::timestamptz IS NULL OR created_at < $7::timestamptz) AND "
	    "($8::text IS NULL OR from_index = $8) AND "
	    "($9::text IS NULL OR to_index = $9) AND "
	    "($10::bigint IS NULL OR id < $10::bigint) "
	    "ORDER BY id DESC LIMIT $11::bigint", 11, params);
	free(ifrom);
	free(ito);
	if (!api->db_ok(r) && api->db_sqlstate(r) != NULL &&
	    strncmp(api->db_sqlstate(r), "22", 2) == 0) {
		api->db_free(r);
		tel_err_field(req, 400, tfrom != NULL ? "from" : "to",
		    "INVALID_FORMAT", "not a time");
		return;
	}
	api->list_respond(req, r, &list, "id", list_map, NULL);
}

static void
sms_inbox(struct sb_req *req)
{
	sms_list(req, "inbound");
}

static void
sms_outbox(struct sb_req *req)
{
	sms_list(req, "outbound");
}

static void
sms_get(struct sb_req *req)
{
	const char	*id = sb_positive_id(api->req_param(req, "id"));
	json_t		*m;
	int		 dberr;

	if (id == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such SMS", NULL);
		return;
	}
	if ((m = sms_load(id, 1, &dberr)) == NULL) {
		if (dberr)
			tel_err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND", "no such SMS",
			    NULL);
		return;
	}
	api->respond_json(req, 200, m);
}

/* ---- statistics ---- */

/*
 * sent: outbound messages a provider accepted (sending, sent, delivered,
 * undelivered); delivered; failed (failed and undelivered); unknown;
 * received (inbound); delivery_rate = delivered / sent (0 without sent).
 */
#define STAT_COLS \
	"'sent', count(*) FILTER (WHERE status IN ('sending', 'sent', " \
	"'delivered', 'undelivered')), " \
	"'delivered', count(*) FILTER (WHERE status = 'delivered'), " \
	"'failed', count(*) FILTER (WHERE status IN ('failed', " \
	"'undelivered')), " \
	"'unknown', count(*) FILTER (WHERE status = 'unknown'), " \
	"'queued', count(*) FILTER (WHERE status = 'queued'), " \
	"'received', count(*) FILTER (WHERE direction = 'inbound'), " \
	"'delivery_rate', coalesce(round(count(*) FILTER (WHERE status = " \
	"'delivered')::numeric / nullif(count(*) FILTER (WHERE status IN " \
	"('sending', 'sent', 'delivered', 'undelivered')), 0), 4), 0)"

static void
sms_statistics(struct sb_req *req)
{
	const char	*params[2];
	json_t		*out;

	if (tel_stats_bounds(req, &params[0], &params[1]) == -1)
		return;
	/* `to` is exclusive when a time, inclusive (the whole day) when a
	 * date. */
	out = sb_db_json(api, self, "WITH m AS (SELECT * FROM telephony_sms "
	    "WHERE " TEL_STATS_WHERE ") "
	    "SELECT json_build_object("
	    "'totals', (SELECT json_build_object(" STAT_COLS ") FROM m), "
	    "'by_day', (SELECT coalesce(json_agg(x ORDER BY x->>'day'), '[]') "
	    "FROM (SELECT jsonb_build_object('day', to_char(created_at AT TIME "
	    "ZONE 'UTC', 'YYYY-MM-DD')) || json_build_object(" STAT_COLS
	    ")::jsonb AS x FROM m GROUP BY to_char(created_at AT TIME ZONE "
	    "'UTC', 'YYYY-MM-DD')) d), "
	    "'by_provider', (SELECT coalesce(json_agg(x ORDER BY x->>'provider')"
	    ", '[]') FROM (SELECT jsonb_build_object('provider', provider) || "
	    "json_build_object(" STAT_COLS ")::jsonb AS x FROM m WHERE "
	    "provider IS NOT NULL GROUP BY provider) p), "
	    "'by_sim_card', (SELECT coalesce(json_agg(x ORDER BY "
	    "(x->>'sim_card_id')::bigint), '[]') FROM (SELECT jsonb_build_object("
	    "'sim_card_id', sim_card_id) || json_build_object(" STAT_COLS
	    ")::jsonb AS x FROM m WHERE sim_card_id IS NOT NULL GROUP BY "
	    "sim_card_id) s))::text", 2, params);
	if (out == NULL) {
		tel_err_db(req);
		return;
	}
	api->respond_json(req, 200, out);
}

/* ---- the send job ---- */

/*
 * A status's rank as SQL (status only moves forward): queued 0; sending
 * and unknown 1; sent 2; delivered, undelivered, failed and received 3.
 */
#define RANK_SQL(x) "(CASE " x " WHEN 'queued' THEN 0 WHEN 'sending' " \
	"THEN 1 WHEN 'unknown' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' " \
	"THEN 3 WHEN 'undelivered' THEN 3 WHEN 'failed' THEN 3 WHEN " \
	"'received' THEN 3 ELSE -1 END)"

/*
 * The message as the room sees it (SMS_COLS without the sealed ones):
 * RETURNING these publishes a change from the values at hand instead of
 * reading the row again.
 */
#define SMS_PUB_COLS "id, direction, provider, provider_message_id, " \
	"sim_card_id, device_id, customer_id, segments, encoding, status, " \
	"error_code, error_message, sent_by, " \
	SB_SQL_TS("created_at") " AS created_at, " \
	SB_SQL_TS("updated_at") " AS updated_at"

struct sendctx {
	struct sb_job	*job;
	int64_t		 id;
	char		 ids[24];
	char		 list[256];
	const char	*next;		/* in list: the next candidate */
	const char	*provider;	/* being tried */
	char		*to;
	char		*body;
	char		*sender;	/* the daily cap's sender index, taken */
	int		 retry;		/* some provider asked to retry */
	unsigned int	 retry_after;
	int		 capped;	/* a provider's sender was at its cap */
};

static void	send_next(struct sendctx *);
static void	ctx_free(struct sendctx *);
static int	status_apply(const char *, const char *, const char *,
		    const char *, const char *, json_t *);

/*
 * The senders are at their daily cap: the message's send starts again
 * in a new job a minute into the next UTC day (clocks differ), keyed by
 * that day so the same wait is never queued twice.
 */
static void
cap_defer(struct sendctx *c)
{
	struct sb_job_opts	 opts;
	json_t			*payload;
	const char		*explicit;
	char			 key[96];
	time_t			 now = time(NULL);
	int64_t			 day = (int64_t)(now / 86400) + 1;

	memset(&opts, 0, sizeof(opts));
	opts.delay_ms = ((int64_t)(86400 - now % 86400) + 60) * 1000;
	(void)snprintf(key, sizeof(key), "telephony.sms:%s:day:%lld", c->ids,
	    (long long)day);
	opts.idempotency_key = key;
	explicit = sb_jstr(api->job_payload(c->job), "provider");
	payload = json_pack("{s:I, s:s?}", "id", (json_int_t)c->id,
	    "provider", explicit);
	if (payload == NULL || api->job_enqueue(self, SEND_KIND, payload,
	    &opts) == -1)
		api->job_retry(c->job, "database error", 0);
	else {
		api->log(self, SB_LOG_INFO, "sms %s: its senders are at their "
		    "daily cap; it waits for the next day", c->ids);
		api->job_done(c->job, json_pack("{s:s, s:s}", "waiting",
		    "daily cap", "continued_in", key));
	}
	json_decref(payload);
	ctx_free(c);
}

static void
ctx_free(struct sendctx *c)
{
	if (c->to != NULL) {
		explicit_bzero(c->to, strlen(c->to));
		free(c->to);
	}
	if (c->body != NULL) {
		explicit_bzero(c->body, strlen(c->body));
		free(c->body);
	}
	free(c->sender);
	free(c);
}

/* Row `row` of r (SMS_PUB_COLS first) to the room as event name. */
static void
publish_row(const char *name, struct sb_db_res *r, int row)
{
	json_t	*m;

	if ((m = api->db_row_json(r, row)) == NULL)
		return;
	json_object_del(m, "pending");
	(void)api->publish_room(self, ROOM, name, 1, m);
	json_decref(m);
}

/* Publish what status_apply() collected: [{n: name, d: message}]. */
static void
publish_all(json_t *pubs)
{
	json_t	*e;
	size_t	 i;

	json_array_foreach(pubs, i, e)
		(void)api->publish_room(self, ROOM, sb_jstr(e, "n"), 1,
		    json_object_get(e, "d"));
}

/*
 * The daily cap per sender (sms_daily_cap): takes one of today's SMS of
 * tp's sender for c.  1 taken (or no cap), 0 the sender is at its cap,
 * -1 on a database error.
 */
static int
cap_take(struct sendctx *c, const struct tel_provider *tp)
{
	const char	*sender, *params[2];
	char		 cap[16];
	long long	 n;

	free(c->sender);
	c->sender = NULL;
	if (sms_daily_cap == 0 || tp->sms_sender == NULL ||
	    (sender = tp->sms_sender()) == NULL)
		return (1);
	if ((c->sender = tel_phone_index(sender)) == NULL)
		return (-1);
	(void)snprintf(cap, sizeof(cap), "%u", sms_daily_cap);
	params[0] = c->sender;
	params[1] = cap;
	n = sb_db_count(api, self, "INSERT INTO telephony_sender_day AS d "
	    "(sender_index, day, sent) VALUES ($1, (now() AT TIME ZONE 'UTC')"
	    "::date, 1) ON CONFLICT (sender_index, day) DO UPDATE SET sent = "
	    "d.sent + 1 WHERE d.sent < $2::int RETURNING 1", 2, params);
	if (n != 1) {
		free(c->sender);
		c->sender = NULL;
	}
	return (n == 1 ? 1 : n == 0 ? 0 : -1);
}

/* The provider did not take it: the sender's SMS is given back. */
static void
cap_give_back(struct sendctx *c)
{
	const char	*params[1];

	if (c->sender == NULL)
		return;
	params[0] = c->sender;
	(void)sb_db_count(api, self, "UPDATE telephony_sender_day SET sent = "
	    "sent - 1 WHERE sender_index = $1 AND day = (now() AT TIME ZONE "
	    "'UTC')::date AND sent > 0 RETURNING 1", 1, params);
	free(c->sender);
	c->sender = NULL;
}

/* Set the message's status with an event, in one statement, and publish
 * it. */
static int
status_set(int64_t id, const char *ids, const char *status,
    const char *detail, const char *error_code, const char *error_message)
{
	struct sb_db_res	*r;
	const char		*params[5];
	char			 em[600];

	(void)id;
	params[0] = ids;
	params[1] = status;
	params[2] = error_code;
	params[3] = tel_scrub(error_message, em, sizeof(em));
	params[4] = detail;
	r = api->db_query(self, "WITH u AS (UPDATE telephony_sms SET status = "
	    "$2::text, error_code = coalesce($3::text, error_code), "
	    "error_message = coalesce($4::text, error_message), inflight = "
	    "false, updated_at = now() WHERE id = $1::bigint RETURNING "
	    SMS_PUB_COLS "), e AS (INSERT INTO telephony_sms_events (sms_id, "
	    "status, detail) SELECT id, status, $5::text FROM u) SELECT * "
	    "FROM u", 5, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 1)
		publish_row("telephony.sms.status", r, 0);
	api->db_free(r);
	return (0);
}

static void
inflight_clear(const char *ids)
{
	const char	*params[1] = { ids };

	(void)sb_db_count(api, self, "UPDATE telephony_sms SET inflight = "
	    "false WHERE id = $1::bigint RETURNING 1", 1, params);
}

/*
 * The provider took it: record its id, status and sender with the event,
 * and apply the callbacks that came before (telephony_sms_pending), under
 * the sid's lock (the drain takes it too): BEGIN, the lock, one statement,
 * COMMIT.  Then publish the message from the values returned.
 */
static int
accepted_record(struct sendctx *c, const struct tel_send_result *res)
{
	struct sb_db_res	*r;
	const char		*params[6], *from;
	char			*from_s = NULL, *from_i = NULL;
	json_t			*pend = NULL, *pubs = NULL, *e;
	size_t			 i;
	int			 rc = -1;

	if ((from = tel_from_number(c->provider)) != NULL) {
		from_s = api->seal(self, from, strlen(from));
		from_i = tel_phone_index(from);
	}
	params[0] = c->ids;
	params[1] = res->status;
	params[2] = res->provider_message_id;
	params[3] = from_s;
	params[4] = c->provider;
	params[5] = from_i;
	if (api->db_begin(self) != SB_OK) {
		free(from_s);
		free(from_i);
		return (-1);
	}
	if (tel_sid_lock("sms", c->provider, res->provider_message_id) == -1) {
		api->db_rollback(self);
		free(from_s);
		free(from_i);
		return (-1);
	}
	r = api->db_query(self, "WITH u AS (UPDATE telephony_sms SET status = "
	    "$2::text, provider_message_id = $3::text, from_sealed = $4::text, "
	    "from_index = $6::text, "
	    "inflight = false, updated_at = now() WHERE id = $1::bigint "
	    "RETURNING " SMS_PUB_COLS "), e AS (INSERT INTO "
	    "telephony_sms_events (sms_id, status) SELECT id, status FROM u), "
	    "p AS (DELETE FROM telephony_sms_pending WHERE provider = $5::text "
	    "AND provider_message_id = $3::text RETURNING id, status, "
	    "error_code, error_message) SELECT u.*, (SELECT coalesce(json_agg("
	    "p ORDER BY p.id), '[]') FROM p)::text AS pending FROM u", 6,
	    params);
	free(from_s);
	free(from_i);
	if (!api->db_ok(r))
		goto out;
	if (api->db_rows(r) == 1) {
		/* "pending" follows the SMS_PUB_COLS. */
		pend = json_loads(api->db_value(r, 0, 15), 0, NULL);
		pubs = json_array();
		json_array_foreach(pend, i, e) {
			if (status_apply(c->provider, res->provider_message_id,
			    sb_jstr(e, "status"), sb_jstr(e, "error_code"),
			    sb_jstr(e, "error_message"), pubs) == -1)
				goto out;
		}
	}
	if (api->db_commit(self) != SB_OK)
		goto out;
	rc = 0;
	/* One event with where it ended, as before the pending ones. */
	if (json_array_size(pubs) > 0)
		(void)api->publish_room(self, ROOM, "telephony.sms.status", 1,
		    json_object_get(json_array_get(pubs,
		    json_array_size(pubs) - 1), "d"));
	else if (api->db_rows(r) == 1)
		publish_row("telephony.sms.status", r, 0);
out:
	if (rc == -1)
		api->db_rollback(self);
	api->db_free(r);
	json_decref(pend);
	json_decref(pubs);
	return (rc);
}

static void
send_done(struct sb_plugin *p, const struct tel_send_result *res, void *arg)
{
	struct sendctx		*c = arg;

	(void)p;
	switch (res->outcome) {
	case TEL_ACCEPTED:
		if (accepted_record(c, res) == -1)
			goto dberr;
		api->job_done(c->job, json_pack("{s:s}", "provider",
		    c->provider));
		break;
	case TEL_REFUSED:
	case TEL_RETRY:
		api->log(self, SB_LOG_INFO, "sms %s: %s did not take it (%s)",
		    c->ids, c->provider, res->detail != NULL ? res->detail :
		    "refused");
		cap_give_back(c);
		inflight_clear(c->ids);
		if (res->outcome == TEL_RETRY) {
			c->retry = 1;
			if (res->retry_after > c->retry_after)
				c->retry_after = res->retry_after;
		}
		send_next(c);
		return;
	case TEL_REJECTED:
		cap_give_back(c);
		if (status_set(c->id, c->ids, "failed", res->detail,
		    res->error_code, res->error_message) == -1)
			goto dberr;
		api->job_done(c->job, json_pack("{s:s}", "status", "failed"));
		break;
	case TEL_AMBIGUOUS:
		if (status_set(c->id, c->ids, "unknown", res->detail, NULL,
		    NULL) == -1)
			goto dberr;
		api->job_done(c->job, json_pack("{s:s}", "status", "unknown"));
		break;
	}
	ctx_free(c);
	return;
dberr:
	/* The outcome is lost with the database: the message is left
	 * inflight, and the job's next run marks it unknown. */
	api->job_retry(c->job, "database error", 0);
	ctx_free(c);
}

/* The request leaves for tp (the message is inflight for it). */
static void
send_via(struct sendctx *c, const struct tel_provider *tp)
{
	struct tel_sms	m;

	c->provider = tp->name;
	memset(&m, 0, sizeof(m));
	m.id = c->id;
	m.to = c->to;
	m.body = c->body;
	m.idempotency_key = api->job_key(c->job);
	if (tp->send_sms(self, &m, send_done, c) != SB_OK) {
		cap_give_back(c);
		inflight_clear(c->ids);
		send_next(c);
	}
}

/* Try the next ready candidate; none left: retry later or fail. */
static void
send_next(struct sendctx *c)
{
	const struct tel_provider	*tp = NULL;
	const char			*s, *e, *params[2];
	char				 name[32];

	for (s = c->next; s != NULL && *s != '\0'; s = *e == ',' ? e + 1 : e) {
		e = s + strcspn(s, ",");
		if (tel_provider_ready(tp = tel_provider_find(s, (size_t)(e - s)),
		    TEL_CHAN_SMS)) {
			switch (cap_take(c, tp)) {
			case 1:
				break;
			case 0:
				c->capped = 1;
				tp = NULL;
				continue;
			default:
				api->job_retry(c->job, "database error", 0);
				ctx_free(c);
				return;
			}
			c->next = *e == ',' ? e + 1 : e;
			break;
		}
		tp = NULL;
	}
	if (tp == NULL && c->capped && !c->retry) {
		/* Every sender able to take it is at its daily cap: the send
		 * waits for the next UTC day in a job of its own (not an
		 * attempt of this one, whose retries stop at an hour). */
		c->next = NULL;
		cap_defer(c);
		return;
	}
	if (tp == NULL) {
		c->next = NULL;
		if (api->job_attempt(c->job) >= SEND_ATTEMPTS) {
			if (status_set(c->id, c->ids, "failed", "no provider "
			    "took the message", NULL, NULL) == -1)
				api->job_retry(c->job, "database error", 0);
			else
				api->job_done(c->job, NULL);
		} else
			api->job_retry(c->job, c->retry ? "provider asked to "
			    "retry" : "no provider took the message",
			    c->retry_after);
		ctx_free(c);
		return;
	}
	(void)snprintf(name, sizeof(name), "%s", tp->name);
	params[0] = c->ids;
	params[1] = name;
	/* From here the request may leave: a lost worker means unknown. */
	switch (sb_db_count(api, self, "UPDATE telephony_sms SET inflight = "
	    "true, inflight_at = now(), provider = $2, updated_at = now() WHERE "
	    "id = $1::bigint AND status = 'queued' AND NOT inflight RETURNING 1",
	    2, params)) {
	case 1:
		break;
	case 0:
		/* Erased meanwhile. */
		cap_give_back(c);
		api->job_done(c->job, NULL);
		ctx_free(c);
		return;
	default:
		cap_give_back(c);
		api->job_retry(c->job, "database error", 0);
		ctx_free(c);
		return;
	}
	send_via(c, tp);
}

/* The first ready provider of list, or NULL; *rest: the ones after it. */
static const struct tel_provider *
first_ready(const char *list, const char **rest)
{
	const struct tel_provider	*tp;
	const char			*s, *e;

	for (s = list; *s != '\0'; s = *e == ',' ? e + 1 : e) {
		e = s + strcspn(s, ",");
		tp = tel_provider_find(s, (size_t)(e - s));
		if (tel_provider_ready(tp, TEL_CHAN_SMS)) {
			if (rest != NULL)
				*rest = *e == ',' ? e + 1 : e;
			return (tp);
		}
	}
	return (NULL);
}

/*
 * The provider could not say whether an interrupted send reached it: ask
 * again later; after the last attempt the message is `unknown`.
 */
static void
unsettled(struct sendctx *c, const char *why, unsigned int retry_after)
{
	if (api->job_attempt(c->job) < SEND_ATTEMPTS)
		api->job_retry(c->job, why, retry_after);
	else if (status_set(c->id, c->ids, "unknown", why, NULL, NULL) == -1)
		api->job_retry(c->job, "database error", 0);
	else
		api->job_done(c->job, json_pack("{s:s}", "status", "unknown"));
	ctx_free(c);
}

/*
 * The request of an earlier run may have reached the provider (its worker
 * died with it out).  A provider that can be asked (find_sms) is asked,
 * once that request can no longer be on its way: the message it has is
 * adopted, or the message is sent as if for the first time.  Others: the
 * message is `unknown`, never sent again.
 */
static void
found_done(struct sb_plugin *p, const struct tel_send_result *res, void *arg)
{
	struct sendctx		*c = arg;
	struct tel_send_result	 acc;
	struct sb_db_res	*r;
	const char		*params[2];
	char			*arr = NULL, *o;
	size_t			 i, len = 3;

	if (res->outcome == TEL_ACCEPTED) {
		/* The first candidate no other message holds. */
		for (i = 0; i < res->nfound; i++)
			len += strlen(res->found[i]) + 3;
		if ((arr = malloc(len)) == NULL)
			goto retry;
		o = arr;
		*o++ = '{';
		for (i = 0; i < res->nfound; i++) {
			if (strspn(res->found[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"
			    "efghijklmnopqrstuvwxyz0123456789") !=
			    strlen(res->found[i]))
				continue;
			if (o > arr + 1)
				*o++ = ',';
			o = stpcpy(o, res->found[i]);
		}
		*o++ = '}';
		*o = '\0';
		params[0] = c->provider;
		params[1] = arr;
		r = api->db_query(self, "SELECT s FROM unnest($2::text[]) WITH "
		    "ORDINALITY AS u (s, n) WHERE NOT EXISTS (SELECT 1 FROM "
		    "telephony_sms WHERE provider = $1 AND provider_message_id = "
		    "u.s) ORDER BY n LIMIT 1", 2, params);
		free(arr);
		if (!api->db_ok(r)) {
			api->db_free(r);
			goto retry;
		}
		if (api->db_rows(r) == 1) {
			memset(&acc, 0, sizeof(acc));
			acc.outcome = TEL_ACCEPTED;
			acc.status = res->status != NULL ? res->status : "sending";
			acc.provider_message_id = api->db_value(r, 0, 0);
			api->log(self, SB_LOG_INFO, "sms %s: its interrupted "
			    "send reached %s (%s)", c->ids, c->provider,
			    acc.provider_message_id);
			send_done(p, &acc, c);
			api->db_free(r);
			return;
		}
		api->db_free(r);
	} else if (res->outcome != TEL_REFUSED)
		goto retry;
	/* The provider never had it: send it now, from the start. */
	api->log(self, SB_LOG_INFO, "sms %s: its interrupted send never "
	    "reached %s; sending", c->ids, c->provider);
	inflight_clear(c->ids);
	c->next = c->list;
	send_next(c);
	return;
retry:
	unsettled(c, res->detail != NULL ? res->detail : "cannot ask the "
	    "provider", res->retry_after);
}

static void
send_run(struct sb_job *job)
{
	const struct tel_provider	*tp, *guess = NULL;
	struct sb_db_res		*r;
	struct sendctx			*c;
	struct tel_sms			 m;
	json_t				*pl = api->job_payload(job);
	json_int_t			 id = sb_jint(pl, "id");
	const char			*params[2], *explicit, *rest;
	char				 key[64], since[40], prov[32];
	char				 glist[256];
	long long			 age, wait;
	int				 taken;

	if (id <= 0) {
		api->job_fail(job, "payload.id is not an id");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		api->job_retry(job, "out of memory", 0);
		return;
	}
	c->job = job;
	c->id = id;
	(void)snprintf(c->ids, sizeof(c->ids), "%lld", (long long)id);
	/* The providers asked for when it was sent (the payload), else the
	 * routing's. */
	explicit = sb_jstr(pl, "provider");
	/*
	 * The read and the inflight mark in one statement: the first ready
	 * provider of the explicit list, or of the route every number has
	 * ("*"), is taken for the message while it is read (not under a
	 * daily cap, which takes its SMS first).  Checked against the
	 * message's own route once the number is unsealed below.
	 */
	if (sms_daily_cap == 0 && tel_candidates("sms", explicit, "", glist,
	    sizeof(glist)) == 0)
		guess = first_ready(glist, NULL);
	params[0] = c->ids;
	params[1] = guess != NULL ? guess->name : NULL;
	r = api->db_query(self, "WITH o AS (SELECT id AS sms_id, status AS "
	    "was, inflight AS was_inflight, provider AS was_provider, "
	    "to_sealed, body_sealed, inflight_at AS was_at FROM telephony_sms "
	    "WHERE id = $1::bigint FOR UPDATE), u AS (UPDATE telephony_sms SET "
	    "inflight = true, inflight_at = now(), provider = $2::text, "
	    "updated_at = now() FROM o WHERE id = o.sms_id AND $2::text IS NOT "
	    "NULL AND o.was = 'queued' AND NOT o.was_inflight RETURNING id) "
	    "SELECT was, was_inflight, was_provider, to_sealed, body_sealed, "
	    "to_char(was_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	    "coalesce(extract(epoch FROM (now() - was_at)) * 1000, 0)::bigint, "
	    "EXISTS (SELECT 1 FROM u) FROM o", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database error", 0);
		ctx_free(c);
		return;
	}
	if (api->db_rows(r) != 1 ||
	    strcmp(api->db_value(r, 0, 0), "queued") != 0) {
		/* Erased, or already past sending. */
		api->db_free(r);
		api->job_done(job, NULL);
		ctx_free(c);
		return;
	}
	taken = strcmp(api->db_value(r, 0, 7), "t") == 0;
	c->to = api->unseal(self, api->db_value(r, 0, 3), NULL);
	c->body = api->unseal(self, api->db_value(r, 0, 4), NULL);
	if (c->to == NULL || c->body == NULL || tel_candidates("sms", explicit,
	    c->to, c->list, sizeof(c->list)) == -1) {
		api->db_free(r);
		if (status_set(c->id, c->ids, "failed", c->to == NULL ||
		    c->body == NULL ? "cannot unseal the message" :
		    "no route for this number", NULL, NULL) == -1)
			api->job_retry(job, "database error", 0);
		else
			api->job_done(job, NULL);
		ctx_free(c);
		return;
	}
	c->next = c->list;
	if (taken) {
		api->db_free(r);
		if ((tp = first_ready(c->list, &rest)) == guess) {
			c->next = rest;
			send_via(c, tp);
			return;
		}
		/* Its own route names another provider first. */
		inflight_clear(c->ids);
		send_next(c);
		return;
	}
	if (strcmp(api->db_value(r, 0, 1), "t") != 0) {
		api->db_free(r);
		send_next(c);
		return;
	}
	/* An earlier run's request may have reached the provider. */
	(void)snprintf(prov, sizeof(prov), "%s", api->db_isnull(r, 0, 2) ? "" :
	    api->db_value(r, 0, 2));
	(void)snprintf(since, sizeof(since), "%s", api->db_isnull(r, 0, 5) ?
	    "" : api->db_value(r, 0, 5));
	age = strtoll(api->db_value(r, 0, 6), NULL, 10);
	api->db_free(r);
	tp = tel_provider_find(prov, strlen(prov));
	if (tp == NULL || tp->find_sms == NULL || since[0] == '\0') {
		if (status_set(c->id, c->ids, "unknown", "the send was "
		    "interrupted after its request may have left", NULL,
		    NULL) == -1)
			api->job_retry(job, "database error", 0);
		else
			api->job_done(job, json_pack("{s:s}", "status",
			    "unknown"));
		ctx_free(c);
		return;
	}
	/* Ask once that request has surely arrived or died: its timeout
	 * and a margin. */
	(void)snprintf(key, sizeof(key), "%s_timeout_ms", tp->name);
	wait = api->config_int(self, key, 10000) + 2000 - age;
	if (wait > 0 && api->job_attempt(job) < SEND_ATTEMPTS) {
		api->job_retry(job, "waiting for an interrupted send to settle",
		    (unsigned int)((wait + 999) / 1000));
		ctx_free(c);
		return;
	}
	c->provider = tp->name;
	memset(&m, 0, sizeof(m));
	m.id = c->id;
	m.to = c->to;
	m.body = c->body;
	if (tp->find_sms(self, &m, since, found_done, c) != SB_OK)
		unsettled(c, "cannot ask the provider", 0);
}

/* ---- webhooks ---- */

/*
 * A verified callback is written to telephony_inbox in one statement
 * (autocommit) and answered; the drain job applies the inbox in batches,
 * each in one transaction that also deletes the rows it applied (a worker
 * killed mid-drain loses nothing: its rows come back).  A new row wakes
 * the drain through one job per DRAIN_BUCKET_MS bucket (the idempotency
 * key names the bucket), due just after the bucket ends: thousands of
 * webhooks make one job.  The periodic sweep (SWEEP_KIND) drains whatever
 * a lost wake-up left.
 */
#define DRAIN_KIND	"telephony.inbox_drain"
#define SWEEP_KIND	"telephony.inbox_sweep"
#define DRAIN_BATCH	500
#define DRAIN_BUCKET_MS	50
#define DRAIN_MARGIN_MS	5
#define SWEEP_EVERY_S	10

static void	drain_run(struct sb_job *);

static const struct sb_job_kind drain_kind = {
	.name = DRAIN_KIND, .run = drain_run, .max_attempts = 8,
	.timeout_s = 30, .backoff_s = 1
};

static const struct sb_job_kind sweep_kind = {
	.name = SWEEP_KIND, .run = drain_run, .max_attempts = 1,
	.timeout_s = 30, .interval_s = SWEEP_EVERY_S
};

/* Twilio's MessageStatus as an API status, or NULL to ignore. */
static const char *
twilio_status(const char *s)
{
	static const char *const map[][2] = {
		{ "sending", "sending" }, { "sent", "sent" },
		{ "delivered", "delivered" }, { "read", "delivered" },
		{ "undelivered", "undelivered" }, { "failed", "failed" },
		{ "canceled", "failed" }
	};
	size_t	i;

	for (i = 0; s != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i][0]) == 0)
			return (map[i][1]);
	return (NULL);
}

/*
 * A provider's status report for (provider, sid), in one statement inside
 * the caller's transaction and under the sid's lock: recorded as an event
 * once per message and status (a replay adds nothing), the status moved
 * only forward; a sid no message holds yet (before the send job recorded
 * it) is kept in telephony_sms_pending for the job.  When the status
 * moved, {n, d} with the message as the room sees it is appended to pubs
 * (published after the commit).  0, or -1 on a database error.
 */
static int
status_apply(const char *provider, const char *sid, const char *st,
    const char *ec, const char *em, json_t *pubs)
{
	struct sb_db_res	*r;
	const char		*params[7];
	char			 cb[64], detail[64];

	(void)snprintf(cb, sizeof(cb), "%s:%s", provider, st);
	detail[0] = '\0';
	if (ec != NULL && *ec != '\0')
		(void)snprintf(detail, sizeof(detail), "%s error %.16s",
		    provider, ec);
	params[0] = provider;
	params[1] = sid;
	params[2] = st;
	params[3] = ec != NULL && *ec != '\0' ? ec : NULL;
	params[4] = em != NULL && *em != '\0' ? em : NULL;
	params[5] = cb;
	params[6] = detail[0] != '\0' ? detail : NULL;
	r = api->db_query(self, "WITH s AS (SELECT id AS sms_id, "
	    RANK_SQL("status") " AS was FROM telephony_sms WHERE provider = "
	    "$1::text AND provider_message_id = $2::text FOR UPDATE), "
	    "e AS (INSERT INTO telephony_sms_events (sms_id, status, detail, "
	    "callback) SELECT sms_id, $3::text, coalesce($7::text, CASE WHEN "
	    RANK_SQL("$3::text") " > was THEN NULL ELSE 'late: status "
	    "unchanged' END), $6::text FROM s ON CONFLICT DO NOTHING RETURNING "
	    "sms_id), u AS (UPDATE telephony_sms SET status = $3::text, "
	    "error_code = coalesce($4::text, error_code), error_message = "
	    "coalesce($5::text, error_message), updated_at = now() FROM s JOIN "
	    "e USING (sms_id) WHERE id = s.sms_id AND " RANK_SQL("$3::text")
	    " > s.was RETURNING " SMS_PUB_COLS "), p AS (INSERT INTO "
	    "telephony_sms_pending (provider, provider_message_id, status, "
	    "error_code, error_message) SELECT $1::text, $2::text, $3::text, "
	    "$4::text, $5::text WHERE NOT EXISTS (SELECT 1 FROM s) ON CONFLICT "
	    "DO NOTHING) SELECT * FROM u", 7, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 1)
		json_array_append_new(pubs, json_pack("{s:s, s:o}", "n",
		    "telephony.sms.status", "d", api->db_row_json(r, 0)));
	api->db_free(r);
	return (0);
}

/* An inbox row just written: the drain of this bucket is due at its end. */
static void
drain_wake(void)
{
	static long long	 last = -1;
	struct sb_job_opts	 opts;
	struct timespec		 ts;
	long long		 now, bucket;
	char			 key[64];

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	bucket = now / DRAIN_BUCKET_MS;
	if (bucket == last)
		return;
	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "telephony.inbox@%lld", bucket);
	opts.idempotency_key = key;
	opts.delay_ms = (bucket + 1) * DRAIN_BUCKET_MS - now + DRAIN_MARGIN_MS;
	if (api->job_enqueue(self, DRAIN_KIND, NULL, &opts) != -1)
		last = bucket;
}

/* One statement: the callback into the inbox (a replay adds nothing). */
static int
inbox_put(const char *prov, const char *kind, const char *dedupe,
    json_t *fields)
{
	const char	*params[4];
	char		*f;
	long long	 n;

	if (fields == NULL || (f = json_dumps(fields, JSON_COMPACT)) == NULL)
		return (-1);
	params[0] = prov;
	params[1] = kind;
	params[2] = dedupe;
	params[3] = f;
	n = sb_db_count(api, self, "INSERT INTO telephony_inbox (provider, "
	    "kind, dedupe, fields) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT "
	    "DO NOTHING RETURNING 1", 4, params);
	free(f);
	if (n == 1)
		drain_wake();
	return (n < 0 ? -1 : 0);
}

static void
webhook_status(struct sb_req *req, const char *prov, const char *sid,
    const char *st, const char *ec, const char *em)
{
	json_t	*f;
	char	 emb[600], dedupe[128];
	int	 rc;

	if (sid == NULL || st == NULL || strlen(sid) > 64) {
		tel_hook_ok(req, prov);
		return;
	}
	if (ec != NULL && (strlen(ec) > 16 || *ec == '\0'))
		ec = NULL;
	if (em != NULL && (strlen(em) > 512 || *em == '\0'))
		em = NULL;
	(void)snprintf(dedupe, sizeof(dedupe), "%s:%s", sid, st);
	f = json_pack("{s:s, s:s, s:s?, s:s?}", "sid", sid, "status", st,
	    "error_code", ec, "error_message", tel_scrub(em, emb, sizeof(emb)));
	rc = inbox_put(prov, "status", dedupe, f);
	json_decref(f);
	if (rc == -1)
		tel_err_db(req);
	else
		tel_hook_ok(req, prov);
}

/* Retention: callbacks for messages never recorded (not ours). */
static long long
pending_purge(struct sb_plugin *p, const char *cutoff)
{
	const char	*params[1] = { cutoff };

	return (sb_db_count(api, p, "DELETE FROM telephony_sms_pending WHERE "
	    "received_at < $1::timestamptz RETURNING 1", 1, params));
}

static const struct sb_retention pending_retention = {
	.size = sizeof(struct sb_retention),
	.name = "pending_callbacks",
	.default_days = 2,
	.description = "Provider status callbacks for message ids the plugin "
	    "never recorded",
	.purge = pending_purge,
};

/* Numbers and body sealed (with the numbers' blind index) before the row
 * is written, as telephony_sms holds them. */
static void
webhook_inbound(struct sb_req *req, const char *prov, const char *sid,
    const char *rfrom, const char *rto, const char *body)
{
	json_t	*f;
	char	 from[32], to[32];
	char	*fs = NULL, *fi = NULL, *ts = NULL, *ti = NULL, *bs = NULL;
	size_t	 units;
	int	 enc, nseg, rc;

	if (sid == NULL || strlen(sid) > 64 || body == NULL ||
	    rfrom == NULL || rto == NULL ||
	    tel_normalise(rfrom, from, sizeof(from)) != SB_OK ||
	    tel_normalise(rto, to, sizeof(to)) != SB_OK) {
		tel_err_field(req, 422, "From", "INVALID_FORMAT", "an inbound SMS "
		    "needs its sid, From, To and Body");
		return;
	}
	if ((nseg = tel_segments(body, strlen(body), &enc, &units)) < 0)
		nseg = 0;
	if (nseg > TEL_MAX_SEGMENTS)
		nseg = TEL_MAX_SEGMENTS;
	fs = api->seal(self, from, strlen(from));
	ts = api->seal(self, to, strlen(to));
	bs = api->seal(self, body, strlen(body));
	fi = tel_phone_index(from);
	ti = tel_phone_index(to);
	if (fs == NULL || ts == NULL || bs == NULL || fi == NULL ||
	    ti == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		goto done;
	}
	f = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "sid", sid,
	    "to_sealed", ts, "to_index", ti, "from_sealed", fs, "from_index",
	    fi, "body_sealed", bs, "segments", nseg, "encoding",
	    enc == TEL_ENC_GSM7 ? "GSM-7" : "UCS-2");
	rc = inbox_put(prov, "inbound", sid, f);
	json_decref(f);
	if (rc == -1)
		tel_err_db(req);
	else
		tel_hook_ok(req, prov);
done:
	explicit_bzero(from, sizeof(from));
	explicit_bzero(to, sizeof(to));
	free(fs);
	free(fi);
	free(ts);
	free(ti);
	free(bs);
}

/*
 * An inbound SMS of the inbox (fields f), inside the drain's transaction:
 * stored once (a replay adds nothing) with the customer found or created
 * through customers.directory; {n, d} appended to pubs when it is new.
 */
static int
inbound_apply(const char *prov, json_t *f, json_t *pubs)
{
	struct sb_db_res	*r;
	const char		*params[11];
	char			 cbname[32], cids[24], segs[8];
	char			*from;
	int64_t			 cid;

	if ((from = api->unseal(self, sb_jstr(f, "from_sealed"), NULL)) ==
	    NULL) {
		api->log(self, SB_LOG_WARN, "inbox: an inbound SMS that cannot "
		    "be unsealed is dropped");
		return (0);
	}
	cid = tel_dir->find_or_create(self, from, NULL);
	explicit_bzero(from, strlen(from));
	free(from);
	if (cid == -1)
		return (-1);
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)cid);
	(void)snprintf(segs, sizeof(segs), "%lld",
	    (long long)sb_jint(f, "segments"));
	(void)snprintf(cbname, sizeof(cbname), "%s:received", prov);
	params[0] = sb_jstr(f, "to_sealed");
	params[1] = sb_jstr(f, "to_index");
	params[2] = sb_jstr(f, "from_sealed");
	params[3] = sb_jstr(f, "from_index");
	params[4] = sb_jstr(f, "body_sealed");
	params[5] = sb_jstr(f, "sid");
	params[6] = cids;
	params[7] = segs;
	params[8] = sb_jstr(f, "encoding");
	params[9] = prov;
	params[10] = cbname;
	r = api->db_query(self, "WITH m AS (INSERT INTO telephony_sms ("
	    "direction, to_sealed, to_index, from_sealed, from_index, "
	    "body_sealed, provider, provider_message_id, customer_id, segments, "
	    "encoding, status) VALUES ('inbound', $1, $2, $3, $4, $5, $10, $6, "
	    "$7::bigint, $8::int, $9, 'received') ON CONFLICT DO NOTHING "
	    "RETURNING " SMS_PUB_COLS "), e AS (INSERT INTO "
	    "telephony_sms_events (sms_id, status, callback) SELECT id, "
	    "'received', $11 FROM m) SELECT * FROM m", 11, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 1)
		json_array_append_new(pubs, json_pack("{s:s, s:o}", "n",
		    "telephony.sms.created", "d", api->db_row_json(r, 0)));
	api->db_free(r);
	return (0);
}

/*
 * The drain (and the sweep): up to DRAIN_BATCH rows of the inbox, oldest
 * first, taken (FOR UPDATE SKIP LOCKED: drains on other workers take
 * others), applied and deleted in one transaction, then published.  The
 * status callbacks' sid locks are taken first, in one order, so that two
 * drains and the send job never wait on each other in a cycle.  A full
 * batch enqueues the next drain at once.
 */
static void
drain_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	struct sb_job_opts	 opts;
	const char		*params[1], *prov, *kind;
	char			 lim[16], key[64], lk[160];
	json_t			*rows = NULL, *locks = NULL, *pubs = NULL;
	json_t			*f;
	size_t			 i;
	int			 n;

	(void)snprintf(lim, sizeof(lim), "%d", DRAIN_BATCH);
	params[0] = lim;
	if (api->db_begin(self) != SB_OK) {
		api->job_retry(job, "database error", 0);
		return;
	}
	r = api->db_query(self, "WITH d AS (DELETE FROM telephony_inbox WHERE "
	    "id IN (SELECT id FROM telephony_inbox ORDER BY id LIMIT $1::int "
	    "FOR UPDATE SKIP LOCKED) RETURNING id, provider, kind, fields) "
	    "SELECT coalesce(json_agg(json_build_object('p', provider, 'k', "
	    "kind, 'f', fields) ORDER BY id), '[]')::text FROM d", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		goto dberr;
	}
	rows = json_loads(api->db_value(r, 0, 0), 0, NULL);
	api->db_free(r);
	if ((n = (int)json_array_size(rows)) == 0) {
		api->db_rollback(self);
		json_decref(rows);
		api->job_done(job, NULL);
		return;
	}
	locks = json_array();
	pubs = json_array();
	json_array_foreach(rows, i, f) {
		if (strcmp(sb_jstr(f, "k"), "status") != 0)
			continue;
		(void)snprintf(lk, sizeof(lk), "sms:%s:%s", sb_jstr(f, "p"),
		    sb_jstr(json_object_get(f, "f"), "sid"));
		json_array_append_new(locks, json_string(lk));
	}
	/* tel_sid_lock()'s keys, in the order of their hash. */
	if (sb_db_lock_keys(api, self, locks) == -1)
		goto dberr;
	json_array_foreach(rows, i, f) {
		prov = sb_jstr(f, "p");
		kind = sb_jstr(f, "k");
		if (strcmp(kind, "status") == 0) {
			if (status_apply(prov, sb_jstr(json_object_get(f, "f"),
			    "sid"), sb_jstr(json_object_get(f, "f"), "status"),
			    sb_jstr(json_object_get(f, "f"), "error_code"),
			    sb_jstr(json_object_get(f, "f"), "error_message"),
			    pubs) == -1)
				goto dberr;
		} else if (inbound_apply(prov, json_object_get(f, "f"),
		    pubs) == -1)
			goto dberr;
	}
	if (api->db_commit(self) != SB_OK)
		goto dberr;
	publish_all(pubs);
	if (json_array_size(rows) == DRAIN_BATCH) {
		/* More may wait: the next batch at once, after this one has
		 * let the worker's other work in. */
		memset(&opts, 0, sizeof(opts));
		(void)snprintf(key, sizeof(key), "telephony.inbox+%lld",
		    (long long)api->job_id(job));
		opts.idempotency_key = key;
		(void)api->job_enqueue(self, DRAIN_KIND, NULL, &opts);
	}
	json_decref(rows);
	json_decref(locks);
	json_decref(pubs);
	api->job_done(job, json_pack("{s:i}", "applied", n));
	return;
dberr:
	/* The rows come back with the rollback; applied again later. */
	api->db_rollback(self);
	json_decref(rows);
	json_decref(locks);
	json_decref(pubs);
	api->job_retry(job, "database error", 0);
}

static void
webhook_twilio(struct sb_req *req)
{
	const char	*ms;
	json_t		*f;

	if ((f = tel_twilio_hook(req)) == NULL)
		return;
	ms = sb_jstr(f, "MessageStatus");
	if (ms == NULL)
		ms = sb_jstr(f, "SmsStatus");
	if (ms != NULL && strcmp(ms, "received") != 0)
		webhook_status(req, "twilio", sb_jstr(f, "MessageSid"),
		    twilio_status(ms), sb_jstr(f, "ErrorCode"),
		    sb_jstr(f, "ErrorMessage"));
	else
		webhook_inbound(req, "twilio", sb_jstr(f, "MessageSid"),
		    sb_jstr(f, "From"), sb_jstr(f, "To"), sb_jstr(f, "Body"));
	json_decref(f);
}

/*
 * Exotel's Status as an API status, or NULL to ignore.  Its older
 * callbacks report a delivered message as Status "sent" with
 * DetailedStatus DELIVERED_TO_HANDSET; that is read as delivered.
 */
static const char *
exotel_status(const char *s, const char *detailed)
{
	static const char *const map[][2] = {
		{ "sending", "sending" }, { "submitted", "sending" },
		{ "sent", "sent" }, { "delivered", "delivered" },
		{ "failed", "failed" }, { "failed_dnd", "failed" },
		{ "failed-dnd", "failed" }, { "expired", "undelivered" },
		{ "undelivered", "undelivered" }
	};
	size_t	i;

	if (s != NULL && strcmp(s, "sent") == 0 && detailed != NULL &&
	    strcmp(detailed, "DELIVERED_TO_HANDSET") == 0)
		return ("delivered");
	for (i = 0; s != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i][0]) == 0)
			return (map[i][1]);
	return (NULL);
}

static void
webhook_exotel(struct sb_req *req)
{
	const char	*st, *ds, *ec, *em;
	json_t		*f;

	if ((f = tel_exotel_hook(req)) == NULL)
		return;
	st = sb_jstr(f, "Status");
	ds = sb_jstr(f, "DetailedStatus");
	if (st != NULL) {
		/* A failure's DetailedStatusCode and DetailedStatus. */
		ec = em = NULL;
		if (exotel_status(st, ds) != NULL &&
		    (strcmp(exotel_status(st, ds), "failed") == 0 ||
		    strcmp(exotel_status(st, ds), "undelivered") == 0)) {
			ec = sb_jstr(f, "DetailedStatusCode");
			em = ds;
		}
		webhook_status(req, "exotel", sb_jstr(f, "SmsSid"),
		    exotel_status(st, ds), ec, em);
	} else
		webhook_inbound(req, "exotel", sb_jstr(f, "SmsSid"),
		    sb_jstr(f, "From"), sb_jstr(f, "To"), sb_jstr(f, "Body"));
	json_decref(f);
}

/* ---- WebSocket room, timeline, health, stats ---- */

static int
room_auth(struct sb_plugin *p, const struct sb_principal *who,
    const char *room)
{
	struct sb_db_res	*r;
	const char		*params[1];
	int			 ok;

	if (strcmp(room, ROOM) != 0 || who->kind != SB_ACTOR_USER ||
	    who->role == NULL)
		return (0);
	if (strcmp(who->role, "SUPER_ADMIN") == 0)
		return (1);
	params[0] = who->role;
	r = api->db_query(p, "SELECT 1 FROM roles WHERE name = $1 AND "
	    "('sms.read' = ANY (permissions) OR 'voice.read' = ANY "
	    "(permissions))", 1, params);
	ok = api->db_ok(r) && api->db_rows(r) == 1;
	api->db_free(r);
	return (ok);
}

static json_t *
timeline_items(struct sb_plugin *p, int64_t customer_id, const json_t *before,
    unsigned int limit)
{
	struct sb_timeline_args	 a;
	struct sb_db_res	*r;
	json_t			*out, *row;
	char			*body;
	int			 i;

	sb_timeline_args(&a, customer_id, before, limit);
	r = api->db_query(p, "SELECT id, direction, status, body_sealed, "
	    SB_SQL_TS("created_at") " AS at FROM telephony_sms WHERE "
	    SB_TIMELINE_WHERE("sms") " ORDER BY created_at DESC, id DESC "
	    "LIMIT $5::int", 5, a.params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	out = json_array();
	for (i = 0; i < api->db_rows(r); i++) {
		body = api->unseal(p, api->db_value(r, i, 3), NULL);
		sb_utf8_cut(body, 140);
		row = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s}",
		    "channel", "sms", "kind", "message", "id",
		    (json_int_t)strtoll(api->db_value(r, i, 0), NULL, 10),
		    "direction", api->db_value(r, i, 1),
		    "status", api->db_value(r, i, 2),
		    "summary", body != NULL ? body : "",
		    "at", api->db_value(r, i, 4));
		free(body);
		if (row != NULL)
			json_array_append_new(out, row);
	}
	api->db_free(r);
	return (out);
}

static const struct sb_timeline_source timeline = {
	.size = sizeof(struct sb_timeline_source),
	.channel = "sms",
	.items = timeline_items,
};

static int
telephony_health(struct sb_plugin *p, json_t *detail)
{
	const char	*missing;
	size_t		 i;

	(void)p;
	for (i = 0; tel_providers[i] != NULL; i++) {
		char	key[64];

		(void)snprintf(key, sizeof(key), "telephony.%s",
		    tel_providers[i]->name);
		json_object_set_new(detail, key, json_string(
		    tel_providers[i]->configured(&missing) ? "configured" :
		    missing));
	}
	json_object_set_new(detail, "telephony.webhooks", json_string(
	    tel_public_url() != NULL ? "configured" : "public_url is not "
	    "set: no status callbacks"));
	return (SB_OK);
}

/* Each {provider, status, direction, count} of out[key] as a "metrics"
 * entry named name (include/switchboard/plugin.h, the stats hook). */
static int
metrics_add(json_t *out, const char *key, const char *name, const char *help)
{
	json_t	*list = json_object_get(out, "metrics"), *row, *e;
	size_t	 i;

	if (list == NULL) {
		list = json_array();
		if (list == NULL || json_object_set_new(out, "metrics",
		    list) == -1)
			return (-1);
	}
	json_array_foreach(json_object_get(out, key), i, row) {
		e = json_pack("{s:s, s:s, s:{s:O, s:O, s:O}, s:O}", "name", name,
		    "help", help, "labels", "provider", json_object_get(row,
		    "provider"), "status", json_object_get(row, "status"),
		    "direction", json_object_get(row, "direction"), "value",
		    json_object_get(row, "count"));
		if (e == NULL || json_array_append_new(list, e) == -1)
			return (-1);
	}
	return (0);
}

/* GET /api/v1/stats: counts by provider, status and direction, and the
 * messages of the last 14 days. */
static int
telephony_stats(struct sb_plugin *p, json_t *out)
{
	json_t	*j;

	j = sb_db_json(api, p, "SELECT json_build_object("
	    "'sms', (SELECT coalesce(json_agg(x), '[]') FROM (SELECT "
	    "coalesce(provider, 'none') AS provider, status, direction, "
	    "count(*) AS count FROM telephony_sms GROUP BY 1, 2, 3 "
	    "ORDER BY 1, 2, 3) x), "
	    "'messages_per_day', (SELECT coalesce(json_agg(json_build_object("
	    "'day', d, 'count', n) ORDER BY d), '[]') FROM (SELECT "
	    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS d, "
	    "count(*) AS n FROM telephony_sms WHERE created_at > now() - "
	    "interval '14 days' GROUP BY 1) y))::text", 0, NULL);
	if (j == NULL)
		return (SB_ERROR);
	json_object_update(out, j);
	json_decref(j);
	if (tel_calls_stats(p, out) != SB_OK)
		return (SB_ERROR);
	/* The same counts for /metrics: the success rates by provider. */
	return (metrics_add(out, "sms", "sms_messages", "SMS by provider, "
	    "status and direction (the cluster's)") == 0 &&
	    metrics_add(out, "calls", "calls", "Calls by provider, status and "
	    "direction (the cluster's)") == 0 ? SB_OK : SB_ERROR);
}

/* ---- privacy ---- */

/* The WHERE clause of a subject's messages, with $1. */
static int
subject_param(const struct sb_subject *s, char **index, const char **param)
{
	*index = NULL;
	if (s->kind == SB_SUBJECT_CUSTOMER) {
		*param = s->value;
		return (0);
	}
	if (s->kind == SB_SUBJECT_PHONE) {
		if ((*index = tel_phone_index(s->value)) == NULL)
			return (-1);
		*param = *index;
		return (1);
	}
	return (2);
}

static json_t *
telephony_privacy_export(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	const char		*param;
	char			*index;
	json_t			*out, *arr, *calls;
	int			 k, i;

	if ((k = subject_param(s, &index, &param)) == -1)
		return (NULL);
	if (k == 2)
		return (json_object());
	r = api->db_query(p, k == 0 ? "SELECT " SMS_COLS " FROM telephony_sms "
	    "WHERE customer_id = $1::bigint ORDER BY id" :
	    "SELECT " SMS_COLS " FROM telephony_sms WHERE to_index = $1 OR "
	    "from_index = $1 ORDER BY id", 1, &param);
	if (!api->db_ok(r)) {
		api->db_free(r);
		free(index);
		return (NULL);
	}
	arr = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(arr, sms_json(api->db_row_json(r, i)));
	api->db_free(r);
	out = json_object();
	json_object_set_new(out, "sms", arr);
	if ((calls = tel_calls_export(p, k, param)) == NULL) {
		free(index);
		json_decref(out);
		return (NULL);
	}
	json_object_set_new(out, "calls", calls);
	free(index);
	return (out);
}

static long long
telephony_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	const char	*param;
	char		*index;
	long long	 n, m;
	int		 k;

	if ((k = subject_param(s, &index, &param)) == -1)
		return (-1);
	if (k == 2)
		return (0);
	n = sb_db_count(api, p, k == 0 ? "DELETE FROM telephony_sms WHERE "
	    "customer_id = $1::bigint RETURNING 1" : "DELETE FROM telephony_sms "
	    "WHERE to_index = $1 OR from_index = $1 RETURNING 1", 1, &param);
	if (n >= 0) {
		m = tel_calls_erase(p, k, param);
		n = m < 0 ? -1 : n + m;
	}
	free(index);
	return (n);
}

/* Key rotation: re-seal the numbers and bodies of up to batch messages. */
static int
telephony_rekey(struct sb_plugin *p, json_t *state, unsigned int batch,
    unsigned int *resealed)
{
	static const char *const cols[] = { "to_sealed", "from_sealed",
		"body_sealed", NULL };
	int	rc;

	rc = sb_rekey_table(api, p, "telephony_sms", cols, state, "after",
	    batch, resealed);
	if (rc != 0)
		return (rc);
	/* The messages are done: the calls. */
	return (tel_calls_rekey(p, state, batch, resealed));
}

/* ---- lifecycle ---- */

static int
telephony_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	long long	 n;
	size_t		 i;

	api = host;
	self = p;
	if (!SB_API_HAS(api, service_import) || !SB_API_HAS(api, blind_index) ||
	    !SB_API_HAS(api, phone_e164) || !SB_API_HAS(api, list_respond) ||
	    !SB_API_HAS(api, req_body) || !SB_API_HAS(api, reseal)) {
		api->log(p, SB_LOG_ERROR, "this host lacks ABI 1.3");
		return (SB_ERROR);
	}
	if (api->config_declare(p, config_keys) != SB_OK)
		return (SB_ERROR);
	if (tel_core_init(p, api) != SB_OK)
		return (SB_ERROR);
	n = api->config_int(p, "sms_per_minute", 30);
	if (n < 0 || n > 100000) {
		api->log(p, SB_LOG_ERROR, "sms_per_minute must be 0..100000");
		return (SB_ERROR);
	}
	sms_per_minute = (unsigned int)n;
	n = api->config_int(p, "sms_daily_cap", 0);
	if (n < 0 || n > 10000000) {
		api->log(p, SB_LOG_ERROR, "sms_daily_cap must be 0..10000000");
		return (SB_ERROR);
	}
	sms_daily_cap = (unsigned int)n;
	for (i = 0; tel_providers[i] != NULL; i++)
		if (tel_providers[i]->configure(p, api) != SB_OK)
			return (SB_ERROR);
	if (api->service_import(p, SB_CUSTOMERS_DIRECTORY, 1,
	    (const struct sb_service **)&tel_dir) != SB_OK)
		return (SB_ERROR);
	if (tel_calls_setup(p) != SB_OK ||
	    api->permission_add(p, "sms.read", "Read SMS, their events and "
	    "statistics") != SB_OK ||
	    api->permission_add(p, "sms.send", "Send SMS") != SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->job_kind_add(p, &send_kind) != SB_OK ||
	    api->job_kind_add(p, &drain_kind) != SB_OK ||
	    api->job_kind_add(p, &sweep_kind) != SB_OK ||
	    api->room_add(p, ROOM, room_auth) != SB_OK ||
	    api->retention_add(p, &pending_retention) != SB_OK ||
	    api->event_declare(p, "telephony.sms.created", "An SMS was "
	    "queued or received (room telephony; no numbers or body)") !=
	    SB_OK ||
	    api->event_declare(p, "telephony.sms.status", "An SMS changed "
	    "status (room telephony)") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

static const struct sb_timeline_source call_timeline = {
	.size = sizeof(struct sb_timeline_source),
	.channel = "call",
	.items = tel_calls_timeline,
};

static int
telephony_init(struct sb_plugin *p)
{
	if (tel_dir->timeline_source_add(p, &timeline) != SB_OK ||
	    tel_dir->timeline_source_add(p, &call_timeline) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

static const char *const depends[] = { "io.switchboard.customers", NULL };

SB_PLUGIN(
	.id = "io.switchboard.telephony",
	.name = "telephony",
	.version = "0.1.0",
	.summary = "SMS and voice calls through Twilio and Exotel, with "
	    "routing and failover over providers",
	.depends = depends,
	.setup = telephony_setup,
	.init = telephony_init,
	.health = telephony_health,
	.stats = telephony_stats,
	.rekey = telephony_rekey,
	.privacy_export = telephony_privacy_export,
	.privacy_erase = telephony_privacy_erase,
)
