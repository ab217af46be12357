/*
 * The customers plugin's service, "customers.directory" (ABI 1.3
 * services; see struct sb_service in <switchboard/plugin.h>).
 *
 * A channel plugin (telephony, whatsapp, devices) imports it in setup():
 *
 *	static const struct sb_customers_directory *dir;
 *	api->service_import(p, SB_CUSTOMERS_DIRECTORY, 1,
 *	    (const struct sb_service **)&dir);
 *
 * and lists "io.switchboard.customers" in its descriptor's depends.
 * Every function runs on the caller's worker and database connection,
 * inside the caller's transaction when one is open, and never begins or
 * ends one.
 */

#ifndef SWITCHBOARD_SERVICES_CUSTOMERS_H
#define SWITCHBOARD_SERVICES_CUSTOMERS_H

#include <stdio.h>

#include <switchboard/plugin.h>

#define SB_CUSTOMERS_DIRECTORY		"customers.directory"
#define SB_CUSTOMERS_DIRECTORY_VERSION	2	/* 2: wa_id_set */

/*
 * One channel's part of a customer's timeline.  items() returns a new
 * JSON array of at most `limit` items for the customer, newest first,
 * strictly older than `before` when it is not NULL.  Each item is
 *
 *	{"channel": "sms", "kind": "message", "id": 42,
 *	 "direction": "inbound"|"outbound", "status": "delivered",
 *	 "summary": "first 140 characters", "at": "RFC 3339 UTC"}
 *
 * `before` is {"at": ..., "channel": ..., "id": ...} of the last item the
 * previous page showed: an item is older when (at, channel, id) sorts
 * before it (at descending, then channel, then id descending).  NULL on
 * a database error.
 */
struct sb_timeline_source {
	size_t			size;		/* sizeof(struct sb_timeline_source) */
	const char		*channel;	/* "sms", "voice", "whatsapp": [a-z]{1,16} */
	json_t			*(*items)(struct sb_plugin *self,
				    int64_t customer_id, const json_t *before,
				    unsigned int limit);
	void			*spare[4];
};

/*
 * The query of a timeline source, over a table with `id`, `customer_id`
 * and `created_at`: sb_timeline_args() fills the five bind parameters
 * ($1 the customer, $2..$4 the previous page's last item, $5 the limit)
 * and SB_TIMELINE_WHERE(channel) is the matching condition (the items
 * strictly older than `before` in the order items() documents):
 *
 *	struct sb_timeline_args	a;
 *
 *	sb_timeline_args(&a, customer_id, before, limit);
 *	r = api->db_query(p, "SELECT ... FROM my_messages WHERE "
 *	    SB_TIMELINE_WHERE("sms") " ORDER BY created_at DESC, id DESC "
 *	    "LIMIT $5::int", 5, a.params);
 */
struct sb_timeline_args {
	const char	*params[5];
	char		 customer[24];
	char		 before_id[24];
	char		 limit[16];
};

static inline void
sb_timeline_args(struct sb_timeline_args *a, int64_t customer_id,
    const json_t *before, unsigned int limit)
{
	(void)snprintf(a->customer, sizeof(a->customer), "%lld",
	    (long long)customer_id);
	(void)snprintf(a->limit, sizeof(a->limit), "%u", limit);
	a->params[0] = a->customer;
	a->params[1] = json_string_value(json_object_get(before, "at"));
	a->params[2] = json_string_value(json_object_get(before, "channel"));
	a->params[3] = NULL;
	if (before != NULL) {
		(void)snprintf(a->before_id, sizeof(a->before_id), "%lld",
		    (long long)json_integer_value(json_object_get(before,
		    "id")));
		a->params[3] = a->before_id;
	}
	a->params[4] = a->limit;
}

#define SB_TIMELINE_WHERE(channel) \
	"customer_id = $1::bigint AND ($2::timestamptz IS NULL OR " \
	"created_at < $2::timestamptz OR (created_at = $2::timestamptz AND " \
	"('" channel "' > $3 OR ('" channel "' = $3 AND id < $4::bigint))))"

struct sb_customers_directory {
	struct sb_service	hdr;

	/*
	 * The customer with this E.164 phone number, created (name empty)
	 * when there is none.  Race-free: concurrent calls for one new
	 * number, on any worker or node, give one customer.  Returns the
	 * customer id, or -1 (database error, or e164 not E.164).  *created
	 * (when not NULL) says whether this call created it.
	 */
	int64_t		(*find_or_create)(struct sb_plugin *caller,
			    const char *e164, int *created);

	/*
	 * The customer as GET /api/v1/customers/{id} shows it (a new
	 * reference), or NULL: not found (*dberr 0) or a database error
	 * (*dberr 1).
	 */
	json_t		*(*get)(struct sb_plugin *caller, int64_t id,
			    int *dberr);

	/*
	 * Add a timeline source.  Called from the channel plugin's init(),
	 * in every worker; the struct and its function are borrowed
	 * forever.  The caller passes itself: items() is called with it.
	 * SB_ERROR for a bad channel or one already added.
	 */
	int		(*timeline_source_add)(struct sb_plugin *caller,
			    const struct sb_timeline_source *);

	/*
	 * Version 2 (check with SB_SERVICE_HAS): record wa_id, Meta's
	 * WhatsApp id (the number's digits, 5 to 20), as the customer's
	 * when it holds another or none.  0, or -1 on a bad wa_id or a
	 * database error.
	 */
	int		(*wa_id_set)(struct sb_plugin *caller, int64_t id,
			    const char *wa_id);

	void		*spare[7];
};

#endif /* SWITCHBOARD_SERVICES_CUSTOMERS_H */
