/*
 * The customers plugin's privacy hooks (ABI 1.3, desc.privacy_export and
 * desc.privacy_erase) and its key-rotation hook (desc.rekey).  A subject
 * is a customer id or an E.164 phone number, matched by its blind index;
 * donors are not customers and have nothing here.  None of this logs the
 * subject.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "customers.h"

#define api		customers_api

enum match { M_NONE, M_ID, M_PHONE };

/* How the subject is matched, and *param (caller frees) to bind. */
static enum match
subject_match(const struct sb_subject *s, char **param)
{
	*param = NULL;
	if (s == NULL || s->value == NULL)
		return (M_NONE);
	switch (s->kind) {
	case SB_SUBJECT_CUSTOMER:
		if (sb_positive_id(s->value) == NULL)
			return (M_NONE);
		*param = strdup(s->value);
		return (*param == NULL ? M_NONE : M_ID);
	case SB_SUBJECT_PHONE:
		if (!customers_is_e164(s->value))
			return (M_NONE);
		*param = customers_index(CUSTOMERS_PHONE, s->value);
		return (*param == NULL ? M_NONE : M_PHONE);
	default:
		return (M_NONE);
	}
}

json_t *
customers_privacy_export(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	enum match		 m;
	char			*param;
	json_t			*out, *list;
	int			 i;

	(void)p;
	if ((m = subject_match(s, &param)) == M_NONE)
		return (json_object());
	r = api->db_query(customers_self, m == M_ID ?
	    "SELECT " CUSTOMERS_COLS " FROM customers WHERE id = $1::bigint" :
	    "SELECT " CUSTOMERS_COLS " FROM customers WHERE phone_index = $1",
	    1, (const char *const *)&param);
	free(param);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	out = json_object();
	if (api->db_rows(r) > 0) {
		list = json_array();
		for (i = 0; i < api->db_rows(r); i++)
			json_array_append_new(list,
			    customers_row(api->db_row_json(r, i)));
		json_object_set_new(out, "customers", list);
	}
	api->db_free(r);
	return (out);
}

/* Inside the host's transaction (POST /api/v1/privacy/delete, or DELETE
 * /api/v1/customers/{id} through api->privacy_erase_all): never begins
 * or commits. */
long long
customers_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	enum match		 m;
	char			*param;
	long long		 n;

	(void)p;
	if ((m = subject_match(s, &param)) == M_NONE)
		return (0);
	r = api->db_query(customers_self, m == M_ID ?
	    "DELETE FROM customers WHERE id = $1::bigint RETURNING id" :
	    "DELETE FROM customers WHERE phone_index = $1 RETURNING id",
	    1, (const char *const *)&param);
	free(param);
	n = api->db_ok(r) ? api->db_rows(r) : -1;
	api->db_free(r);
	return (n);
}

/*
 * One sealed column of a row under the current key: *sealed_out the new
 * sealed text (NULL: unchanged), *index_out its blind index computed
 * again from the plaintext.  -1 when the value does not open.
 */
static int
reseal_one(const char *sealed, const char *domain, char **sealed_out,
    char **index_out)
{
	char	*plain;
	int	 rc;

	*sealed_out = *index_out = NULL;
	if (sealed == NULL)
		return (0);
	if ((rc = api->reseal(customers_self, sealed, sealed_out)) == -1)
		return (-1);
	if ((plain = api->unseal(customers_self, *sealed_out != NULL ?
	    *sealed_out : sealed, NULL)) == NULL) {
		free(*sealed_out);
		*sealed_out = NULL;
		return (-1);
	}
	*index_out = customers_index(domain, plain);
	explicit_bzero(plain, strlen(plain));
	free(plain);
	if (*index_out == NULL) {
		free(*sealed_out);
		*sealed_out = NULL;
		return (-1);
	}
	return (rc);
}

/*
 * Key rotation: state {"after": <last customer id done>}.  Each batch
 * re-seals phone_sealed and wa_id_sealed of up to `batch` customers and
 * rewrites their blind indexes from the plaintext, inside the host's
 * transaction.
 */
int
customers_rekey(struct sb_plugin *p, json_t *state, unsigned int batch,
    unsigned int *resealed)
{
	struct sb_db_res	*r, *u;
	const char		*params[5], *id;
	char			 after[32], lim[32];
	char			*ps, *pi, *ws, *wi;
	int			 i, rows, rc_p, rc_w, ret = 0;
	long long		 last;

	(void)p;
	last = sb_jint(state, "after");
	snprintf(after, sizeof(after), "%lld", last);
	snprintf(lim, sizeof(lim), "%u", batch == 0 ? 100 : batch);
	params[0] = after;
	params[1] = lim;
	r = api->db_query(customers_self, "SELECT id, phone_sealed, "
	    "wa_id_sealed FROM customers WHERE id > $1::bigint AND "
	    "(phone_sealed IS NOT NULL OR wa_id_sealed IS NOT NULL) "
	    "ORDER BY id LIMIT $2::bigint", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	rows = api->db_rows(r);
	for (i = 0; i < rows; i++) {
		id = api->db_value(r, i, 0);
		rc_p = reseal_one(api->db_isnull(r, i, 1) ? NULL :
		    api->db_value(r, i, 1), CUSTOMERS_PHONE, &ps, &pi);
		rc_w = reseal_one(api->db_isnull(r, i, 2) ? NULL :
		    api->db_value(r, i, 2), CUSTOMERS_WA_ID, &ws, &wi);
		if (rc_p == -1 || rc_w == -1) {
			api->log(customers_self, SB_LOG_ERROR, "rekey: "
			    "customer %s has a sealed value that does not "
			    "open under any key", id);
			ret = -1;
		} else {
			/* NULL keeps the column as it is. */
			params[0] = id;
			params[1] = ps;
			params[2] = pi;
			params[3] = ws;
			params[4] = wi;
			u = api->db_query(customers_self, "UPDATE customers "
			    "SET phone_sealed = coalesce($2, phone_sealed), "
			    "phone_index = CASE WHEN phone_sealed IS NULL "
			    "THEN NULL ELSE coalesce($3, phone_index) END, "
			    "wa_id_sealed = coalesce($4, wa_id_sealed), "
			    "wa_id_index = CASE WHEN wa_id_sealed IS NULL "
			    "THEN NULL ELSE coalesce($5, wa_id_index) END "
			    "WHERE id = $1::bigint", 5, params);
			if (!api->db_ok(u))
				ret = -1;
			api->db_free(u);
			*resealed += (unsigned int)(rc_p == 1) +
			    (unsigned int)(rc_w == 1);
		}
		free(ps);
		free(pi);
		free(ws);
		free(wi);
		if (ret == -1)
			break;
		last = strtoll(id, NULL, 10);
	}
	api->db_free(r);
	if (ret == -1)
		return (-1);
	json_object_set_new(state, "after", json_integer(last));
	return (rows == (int)(batch == 0 ? 100 : batch) ? 1 : 0);
}
