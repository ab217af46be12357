/*
 * The concierge plugin's service, "concierge.thread" (ABI 1.3 services;
 * see struct sb_service in <switchboard/plugin.h>): what another plugin
 * may read of a donor query and write into its thread, and what it may
 * know of and do with the donor's push token, without touching
 * concierge's tables.
 *
 * A plugin that works on queries imports it in setup(), asking for the
 * lowest version whose slots it uses (calls: 1; notifications: 2):
 *
 *	static const struct sb_service *thread;
 *	api->service_import(p, SB_CONCIERGE_THREAD, 1, &thread);
 *	...
 *	((const struct sb_concierge_thread *)thread)->query_get(...)
 *
 * and lists "io.switchboard.concierge" in its descriptor's depends.
 * Every function runs on the caller's worker and database connection,
 * inside the caller's transaction when one is open, and never begins or
 * ends one: a message appended in the caller's transaction commits or
 * rolls back with the caller's own writes.  Nothing here publishes an
 * event (an event about an uncommitted row could announce something that
 * never happens): the caller publishes after its commit.
 */

#ifndef SWITCHBOARD_SERVICES_CONCIERGE_H
#define SWITCHBOARD_SERVICES_CONCIERGE_H

#include <switchboard/plugin.h>

#define SB_CONCIERGE_THREAD		"concierge.thread"
/*
 * 1: query_get, system_message.
 * 2: query_get's answer adds test, stage and device; donor_device,
 *    donor_device_forget (taken from spare[], so the size is unchanged).
 */
#define SB_CONCIERGE_THREAD_VERSION	2

/* query_get flags */
#define SB_CONCIERGE_LOCK	0x0001	/* SELECT ... FOR UPDATE: only inside
					 * the caller's open transaction */

struct sb_concierge_thread {
	struct sb_service	hdr;

	/*
	 * The query with this id as {"id", "donor", "donor_id", "status",
	 * "assigned_to" (an integer, null when unassigned)}, and from
	 * version 2 on also "test", "stage" and "device" (strings the
	 * donor's app gave, null when it gave none): a new reference the
	 * caller owns, or NULL: not found (*dberr 0) or a database error
	 * (*dberr 1; then the caller's transaction is aborted and must be
	 * rolled back).  A caller that reads the version 2 keys imports
	 * version 2: they are not a slot SB_SERVICE_HAS() can test.  Who
	 * may see the query is the caller's to decide (a donor only its
	 * own: compare donor_id).  Never the donor's push token (see
	 * donor_device).  flags: SB_CONCIERGE_LOCK.
	 */
	json_t		*(*query_get)(struct sb_plugin *caller,
			    int64_t query_id, unsigned int flags, int *dberr);

	/*
	 * Append a message sent by the system (sender_type SYSTEM, no
	 * sender_id) to the query's thread.  type: "CALL_STARTED",
	 * "CALL_ENDED" or "SYSTEM"; content: 1..4000 bytes of text,
	 * borrowed.  Returns the message as GET
	 * /api/v1/donor-queries/{id}/messages shows it ({id, query_id,
	 * content, message_type, sender_type, sender_id, created_at}), a new
	 * reference the caller owns; NULL for a bad type or content, a
	 * query that does not exist, or a database error (then the caller's
	 * transaction is aborted and must be rolled back).
	 */
	json_t		*(*system_message)(struct sb_plugin *caller,
			    int64_t query_id, const char *type,
			    const char *content);

	/* --- Version 2 --- */

	/*
	 * The push token (an FCM registration token) the donor's app gave
	 * when it opened the query (POST /api/v1/donor-queries, fcm_token),
	 * for a push to the donor about this query.  Returns 1 with, when
	 * token is not NULL, a copy in *token that the caller frees with
	 * free() (never kore_free); 0 when the query does not exist or holds
	 * no token; -1 on a database error or when out of memory.  *token
	 * is NULL unless 1 is returned.  token may be NULL to ask only
	 * whether there is one.  Reads; inside the caller's transaction
	 * when one is open (a database error then aborts it).
	 */
	int		(*donor_device)(struct sb_plugin *caller,
			    int64_t query_id, char **token);

	/*
	 * The push service said this token is gone for good (FCM:
	 * UNREGISTERED, or INVALID_ARGUMENT on message.token): clear it
	 * wherever concierge keeps it (every query that holds it), so that
	 * no push is tried on it again.  token: borrowed; NULL or "" clears
	 * nothing.  Returns how many queries held it (0: none), or -1 on a
	 * database error (then the caller's transaction, when one is open,
	 * is aborted and must be rolled back).  Outside a transaction the
	 * UPDATE commits by itself; it is idempotent, so a caller that
	 * retries after a failure loses nothing.
	 */
	long long	(*donor_device_forget)(struct sb_plugin *caller,
			    const char *token);

	void		*spare[6];
};

#endif /* SWITCHBOARD_SERVICES_CONCIERGE_H */
