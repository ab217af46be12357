/*
 * The privacy surface (API.md "Privacy"): export everything the plugins
 * hold on one person, and erase it.
 *
 * A person is a subject (include/switchboard/plugin.h, struct
 * sb_subject): a customer id, a donor id or an E.164 phone number, given
 * as exactly one of customer_id, donor_id and phone.  Export asks every
 * ready plugin's privacy_export hook and answers one document keyed by
 * plugin name.  Erase calls every privacy_erase hook inside one
 * transaction, dependents before what they depend on (so rows that would
 * go by ON DELETE CASCADE are counted by the plugin that owns them), and
 * commits only when every plugin succeeded.
 *
 * Both publish a host event (privacy.exported, privacy.erased) that the
 * audit plugin records: who asked (the event's actor and request id), the
 * subject's kind and, for an erase, the count per plugin.  Never the
 * subject's value, neither there nor in a log line.
 */

#include <kore/kore.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb.h"

#define PRIVACY_DONOR_MAX	200	/* bytes of a donor id */
#define PRIVACY_PHONE_MAX	64	/* bytes of a phone number as typed */
#define PRIVACY_ID_MAX		9007199254740991LL	/* 2^53 - 1 */

/* A parsed subject with the storage its value points into (a customer
 * id or a normalised phone number; a donor id is the request's own). */
struct privacy_subject {
	struct sb_subject	s;
	char			buf[32];
};
_Static_assert(sizeof(((struct privacy_subject *)0)->buf) >=
    SB_PHONE_E164_MAX, "a normalised phone number fits the subject");

static void	privacy_export(struct sb_req *);
static void	privacy_delete(struct sb_req *);
static int	subject_parse(struct sb_req *, const char *, const char *,
		    const char *, int, struct privacy_subject *);
static const char *subject_kind_name(enum sb_subject_kind);
static size_t	utf8_chars(const char *);
static size_t	plugins_ordered(struct sb_plugin ***, int erase);
static int	plugin_depth(const struct sb_plugin *, int);
static int	plugins_unavailable(struct sb_req *);
static int	privacy_erase(const struct sb_subject *, json_t **, int *,
		    char *, size_t);

static const struct sb_field delete_body[] = {
	{ .name = "customer_id", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 1, .max = PRIVACY_ID_MAX,
	  .description = "A customer's id (plugin customers)" },
	{ .name = "donor_id", .type = SB_T_STRING, .flags = SB_F_NONEMPTY,
	  .min_len = 1, .max_len = PRIVACY_DONOR_MAX,
	  .description = "A donor's id in the donor system" },
	{ .name = "phone", .type = SB_T_STRING, .flags = SB_F_NONEMPTY,
	  .min_len = 1, .max_len = PRIVACY_PHONE_MAX,
	  .description = "A phone number, normalised to E.164 with [host] "
	  "default_country" },
	SB_FIELD_END
};

const struct sb_route sb_privacy_routes[] = {
	{ .method = "GET", .path = "/api/v1/privacy/export",
	  .permission = "privacy.manage", .handler = privacy_export,
	  .summary = "Everything every plugin holds on one person "
	  "(?customer_id=, ?donor_id= or ?phone=, exactly one), keyed by "
	  "plugin name",
	  .response_schema = "{\"type\":\"object\",\"description\":"
	  "\"plugin name -> what that plugin's privacy_export hook returned "
	  "(every plugin with the hook; {} when it holds nothing)\","
	  "\"additionalProperties\":{\"type\":\"object\"}}" },
	{ .method = "POST", .path = "/api/v1/privacy/delete",
	  .permission = "privacy.manage", .handler = privacy_delete,
	  .summary = "Erase one person in every plugin, in one transaction "
	  "(exactly one of customer_id, donor_id, phone)",
	  .body = delete_body, .body_max = 4096,
	  .response_schema = "{\"type\":\"object\",\"required\":[\"deleted\"],"
	  "\"properties\":{\"deleted\":{\"type\":\"object\",\"description\":"
	  "\"plugin name -> rows erased (0 included)\","
	  "\"additionalProperties\":{\"type\":\"integer\",\"minimum\":0}}}}" },
	SB_ROUTE_END
};

/* Characters of UTF-8 text (the query string holds valid UTF-8 only). */
static size_t
utf8_chars(const char *s)
{
	size_t	n;

	for (n = 0; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return (n);
}

static const char *
subject_kind_name(enum sb_subject_kind kind)
{
	switch (kind) {
	case SB_SUBJECT_CUSTOMER:
		return ("customer");
	case SB_SUBJECT_DONOR:
		return ("donor");
	case SB_SUBJECT_PHONE:
		return ("phone");
	}
	return ("unknown");
}

static json_t *
field_err(const char *field, const char *code, const char *message)
{
	return (json_pack("{s:s, s:s, s:s}", "field", field, "code", code,
	    "message", message));
}

/*
 * Exactly one of customer_id, donor_id and phone (as text; NULL when
 * absent) into *out.  from_query: the values came from the query string
 * and are checked here (a body was checked by its field table).  Answers
 * and returns -1 on anything else.
 */
static int
subject_parse(struct sb_req *req, const char *cid, const char *did,
    const char *phone, int from_query, struct privacy_subject *out)
{
	static const char	*names[] = { "customer_id", "donor_id", "phone" };
	const char		*given[3];
	json_t			*errors;
	long long		 id;
	char			*end;
	int			 i, n;

	given[0] = cid;
	given[1] = did;
	given[2] = phone;
	for (i = n = 0; i < 3; i++)
		n += given[i] != NULL;
	if (n != 1) {
		errors = json_array();
		for (i = 0; i < 3; i++) {
			if (n == 0)
				json_array_append_new(errors, field_err(
				    names[i], "REQUIRED", "give exactly one of "
				    "customer_id, donor_id and phone"));
			else if (given[i] != NULL)
				json_array_append_new(errors, field_err(
				    names[i], "CONFLICT", "only one of "
				    "customer_id, donor_id and phone may be "
				    "given"));
		}
		sb_respond_error(req, 400, "VALIDATION_ERROR", n == 0 ?
		    "a subject is required: customer_id, donor_id or phone" :
		    "give exactly one subject", errors);
		return (-1);
	}

	memset(out, 0, sizeof(*out));
	out->s.size = sizeof(out->s);
	out->s.value = out->buf;
	if (cid != NULL) {
		id = strtoll(cid, &end, 10);
		if (*cid < '1' || *cid > '9' || *end != '\0' || strlen(cid) > 16 ||
		    id < 1 || id > PRIVACY_ID_MAX) {
			sb_respond_error(req, 400, "VALIDATION_ERROR", "invalid "
			    "customer_id", json_pack("[o]", field_err(
			    "customer_id", "INVALID_TYPE", "a positive "
			    "integer")));
			return (-1);
		}
		out->s.kind = SB_SUBJECT_CUSTOMER;
		snprintf(out->buf, sizeof(out->buf), "%lld", id);
	} else if (did != NULL) {
		if (from_query && (utf8_chars(did) < 1 ||
		    utf8_chars(did) > PRIVACY_DONOR_MAX ||
		    strspn(did, " \t\r\n") == strlen(did))) {
			sb_respond_error(req, 400, "VALIDATION_ERROR", "invalid "
			    "donor_id", json_pack("[o]", field_err("donor_id",
			    "INVALID_LENGTH", "1 to 200 characters, not only "
			    "whitespace")));
			return (-1);
		}
		out->s.kind = SB_SUBJECT_DONOR;
		out->s.value = did;	/* borrowed from the request */
	} else {
		out->s.kind = SB_SUBJECT_PHONE;
		if (strlen(phone) > PRIVACY_PHONE_MAX ||
		    sb_phone_e164(phone, NULL, out->buf, sizeof(out->buf)) != 0) {
			sb_respond_error(req, 422, "VALIDATION_ERROR", "invalid "
			    "phone number", json_pack("[o]", field_err("phone",
			    "INVALID_PHONE", "not a valid phone number (E.164, "
			    "or national for the default country)")));
			return (-1);
		}
	}
	return (0);
}

/*
 * How deep p sits in the dependency graph: 0 without dependencies, else
 * one more than its deepest dependency.  Setup ran in an order where a
 * plugin's dependencies come first, so sorting by depth reproduces it
 * (and its reverse puts dependents first).  The loader refused cycles;
 * `guard` only bounds the walk.
 */
static int
plugin_depth(const struct sb_plugin *p, int guard)
{
	const struct sb_plugin	*q;
	const char *const	*d;
	int			 depth, dd;

	depth = 0;
	if (guard > 64)
		return (depth);
	for (d = p->d.depends; d != NULL && *d != NULL; d++) {
		TAILQ_FOREACH(q, &sb_plugins, list) {
			if (q == p || q->d.id == NULL || strcmp(q->d.id, *d))
				continue;
			if ((dd = plugin_depth(q, guard + 1) + 1) > depth)
				depth = dd;
			break;
		}
	}
	return (depth);
}

/*
 * The ready plugins with the hook (privacy_erase when erase, else
 * privacy_export) into a new array (caller frees with free()), in setup
 * order for an export and in reverse setup order for an erase.
 */
static size_t
plugins_ordered(struct sb_plugin ***out, int erase)
{
	struct sb_plugin	*p, **v, *t;
	int			*depth, td;
	size_t			 n, i, j;

	n = 0;
	TAILQ_FOREACH(p, &sb_plugins, list)
		n++;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL ||
	    (depth = calloc(n + 1, sizeof(*depth))) == NULL)
		fatalx("calloc");
	n = 0;
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p == sb_host_plugin || p->state != SB_PLUGIN_READY ||
		    (erase ? p->d.privacy_erase == NULL :
		    p->d.privacy_export == NULL))
			continue;
		v[n] = p;
		depth[n] = plugin_depth(p, 0);
		n++;
	}
	/* Insertion sort (a handful of plugins), stable by list order. */
	for (i = 1; i < n; i++) {
		t = v[i];
		td = depth[i];
		for (j = i; j > 0 && (erase ? depth[j - 1] < td :
		    depth[j - 1] > td); j--) {
			v[j] = v[j - 1];
			depth[j] = depth[j - 1];
		}
		v[j] = t;
		depth[j] = td;
	}
	free(depth);
	*out = v;
	return (n);
}

/*
 * A plugin with privacy hooks that is not ready in this worker (its
 * init() failed) would leave the person's data out of an export (or in
 * place after an erase, see privacy_erase()): answer 503 rather than a
 * partial result.
 */
static int
plugins_unavailable(struct sb_req *req)
{
	struct sb_plugin	*p;
	char			 msg[160];

	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p == sb_host_plugin || p->state == SB_PLUGIN_READY ||
		    p->d.privacy_export == NULL)
			continue;
		snprintf(msg, sizeof(msg), "plugin %s is not available: "
		    "nothing was exported", p->name);
		sb_respond_error(req, 503, "UNAVAILABLE", msg, NULL);
		return (1);
	}
	return (0);
}

static void
privacy_export(struct sb_req *req)
{
	struct privacy_subject	 subj;
	struct sb_plugin	**v;
	json_t			*plugins, *got, *names;
	const char		*name;
	size_t			 n, i;

	if (subject_parse(req, sb_req_query(req, "customer_id"),
	    sb_req_query(req, "donor_id"), sb_req_query(req, "phone"), 1,
	    &subj) == -1)
		return;
	if (plugins_unavailable(req))
		return;

	plugins = json_object();
	n = plugins_ordered(&v, 0);
	for (i = 0; i < n; i++) {
		got = v[i]->d.privacy_export(v[i], &subj.s);
		if (!json_is_object(got)) {
			sb_log(SB_LOG_ERROR, "privacy", "plugin %s could not "
			    "export a %s subject", v[i]->name,
			    subject_kind_name(subj.s.kind));
			json_decref(got);
			json_decref(plugins);
			free(v);
			sb_respond_error(req, 500, "INTERNAL", "the export "
			    "failed", NULL);
			return;
		}
		json_object_set_new(plugins, v[i]->name, got);
	}
	free(v);

	names = json_array();
	json_object_foreach(plugins, name, got)
		json_array_append_new(names, json_string(name));
	sb_host_event("privacy.exported", json_pack("{s:s, s:s, s:o}",
	    "target", "privacy", "subject_kind",
	    subject_kind_name(subj.s.kind), "plugins", names));
	/* API.md: "one JSON document keyed by plugin". */
	sb_respond_json(req, 200, plugins);
}

/*
 * Erase s in every plugin with the hook, in one transaction, audited as
 * the current request's caller.  0 with *deleted set (caller owns it);
 * -1 when nothing was erased, with the status to answer (503 or 500) and
 * a message that names no person.
 */
static int
privacy_erase(const struct sb_subject *s, json_t **deleted, int *status,
    char *msg, size_t msglen)
{
	struct sb_plugin	**v, *p;
	json_t			*counts;
	long long		 count;
	size_t			 n, i;

	*deleted = NULL;
	*status = 500;
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p == sb_host_plugin || p->state == SB_PLUGIN_READY ||
		    p->d.privacy_erase == NULL)
			continue;
		*status = 503;
		snprintf(msg, msglen, "plugin %s is not available: nothing "
		    "was erased", p->name);
		return (-1);
	}
	if (sb_db_begin() == -1) {
		*status = 503;
		snprintf(msg, msglen, "the database is unavailable: nothing "
		    "was erased");
		return (-1);
	}
	snprintf(msg, msglen, "the erase failed: nothing was erased");
	counts = json_object();
	n = plugins_ordered(&v, 1);
	for (i = 0; i < n; i++) {
		count = v[i]->d.privacy_erase(v[i], s);
		if (count < 0) {
			sb_log(SB_LOG_ERROR, "privacy", "plugin %s could not "
			    "erase a %s subject: nothing was erased",
			    v[i]->name, subject_kind_name(s->kind));
			goto fail;
		}
		json_object_set_new(counts, v[i]->name, json_integer(count));
	}

	/*
	 * The audit record goes in before the commit: the audit plugin
	 * writes it on this connection, so the erase and its record commit
	 * together.  A statement that failed inside the transaction (a hook
	 * that ignored an error, or the audit insert) leaves it aborted,
	 * and COMMIT would then roll back while reporting success: checked
	 * before the event (no record of an erase that cannot commit) and
	 * after it (no erase without its record).
	 */
	if (PQtransactionStatus(sb_db_conn()) != PQTRANS_INTRANS) {
		sb_log(SB_LOG_ERROR, "privacy", "a statement of the erase "
		    "failed: nothing was erased");
		goto fail;
	}
	sb_host_event("privacy.erased", json_pack("{s:s, s:s, s:O}",
	    "target", "privacy", "subject_kind", subject_kind_name(s->kind),
	    "deleted", counts));
	if (PQtransactionStatus(sb_db_conn()) != PQTRANS_INTRANS) {
		sb_log(SB_LOG_ERROR, "privacy", "a statement of the erase "
		    "failed: nothing was erased");
		goto fail;
	}
	if (sb_db_commit() == -1) {
		snprintf(msg, msglen, "the erase could not be committed: "
		    "nothing was erased");
		free(v);
		json_decref(counts);
		return (-1);
	}
	free(v);
	*deleted = counts;
	return (0);

fail:
	sb_db_rollback();
	free(v);
	json_decref(counts);
	return (-1);
}

static void
privacy_delete(struct sb_req *req)
{
	struct privacy_subject	 subj;
	json_t			*body, *deleted;
	const char		*cid;
	char			 num[32], msg[160];
	int			 status;

	body = req->body;
	cid = NULL;
	if (json_is_integer(json_object_get(body, "customer_id"))) {
		snprintf(num, sizeof(num), "%lld", (long long)
		    json_integer_value(json_object_get(body, "customer_id")));
		cid = num;
	}
	if (subject_parse(req, cid, json_string_value(json_object_get(body,
	    "donor_id")), json_string_value(json_object_get(body, "phone")),
	    0, &subj) == -1)
		return;
	if (privacy_erase(&subj.s, &deleted, &status, msg, sizeof(msg)) == -1) {
		sb_respond_error(req, status, status == 503 ? "UNAVAILABLE" :
		    "INTERNAL", msg, NULL);
		return;
	}
	sb_respond_json(req, 200, json_pack("{s:o}", "deleted", deleted));
}

/*
 * api->privacy_erase_all (plugin.h): the erase of POST
 * /api/v1/privacy/delete for a plugin route that deletes a person
 * (DELETE /api/v1/customers/{id}).  The subject is checked and a phone
 * number normalised like the route's; the caller answers its request.
 */
int
sb_privacy_erase_all(struct sb_req *req, const struct sb_subject *s,
    json_t **deleted)
{
	struct privacy_subject	 subj;
	const char		*plugin;
	char			*end, msg[160];
	long long		 id;
	int			 status;

	if (deleted != NULL)
		*deleted = NULL;
	plugin = req != NULL && req->plugin != NULL ? req->plugin->name : "?";
	if (req == NULL || req != sb_current_req || s == NULL ||
	    deleted == NULL || s->size < offsetof(struct sb_subject, value) +
	    sizeof(s->value) || s->value == NULL || *s->value == '\0') {
		sb_log(SB_LOG_ERROR, "privacy", "plugin %s: privacy_erase_all "
		    "outside its handler, or without a subject", plugin);
		return (SB_ERROR);
	}
	if (PQtransactionStatus(sb_db_conn()) == PQTRANS_INTRANS ||
	    PQtransactionStatus(sb_db_conn()) == PQTRANS_INERROR) {
		sb_log(SB_LOG_ERROR, "privacy", "plugin %s: privacy_erase_all "
		    "inside a transaction of its own refused (the erase "
		    "commits by itself)", plugin);
		return (SB_ERROR);
	}
	memset(&subj, 0, sizeof(subj));
	subj.s.size = sizeof(subj.s);
	subj.s.kind = s->kind;
	subj.s.value = subj.buf;
	switch (s->kind) {
	case SB_SUBJECT_CUSTOMER:
		id = strtoll(s->value, &end, 10);
		if (*s->value < '1' || *s->value > '9' || *end != '\0' ||
		    strlen(s->value) > 16 || id > PRIVACY_ID_MAX)
			goto bad;
		snprintf(subj.buf, sizeof(subj.buf), "%lld", id);
		break;
	case SB_SUBJECT_DONOR:
		if (utf8_chars(s->value) > PRIVACY_DONOR_MAX)
			goto bad;
		subj.s.value = s->value;
		break;
	case SB_SUBJECT_PHONE:
		if (strlen(s->value) > PRIVACY_PHONE_MAX ||
		    sb_phone_e164(s->value, NULL, subj.buf,
		    sizeof(subj.buf)) != 0)
			goto bad;
		break;
	default:
		goto bad;
	}
	if (privacy_erase(&subj.s, deleted, &status, msg, sizeof(msg)) == -1) {
		sb_log(SB_LOG_ERROR, "privacy", "plugin %s: %s", plugin, msg);
		return (SB_ERROR);
	}
	return (SB_OK);

bad:
	sb_log(SB_LOG_ERROR, "privacy", "plugin %s: privacy_erase_all with an "
	    "invalid subject", plugin);
	return (SB_ERROR);
}
