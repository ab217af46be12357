/*
 * The concierge plugin's service, "concierge.thread" (ABI 1.3 services;
 * see struct sb_service in <switchboard/plugin.h>): what another plugin
 * may read of a donor query and write into its thread, without touching
 * concierge's tables.
 *
 * A plugin that works on queries (calls) imports it in setup():
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
#define SB_CONCIERGE_THREAD_VERSION	1

/* query_get flags */
#define SB_CONCIERGE_LOCK	0x0001	/* SELECT ... FOR UPDATE: only inside
					 * the caller's open transaction */

struct sb_concierge_thread {
	struct sb_service	hdr;

	/*
	 * The query with this id as {"id", "donor", "donor_id", "status",
	 * "assigned_to" (null when unassigned)}: a new reference the caller
	 * owns, or NULL: not found (*dberr 0) or a database error (*dberr
	 * 1).  Who may see the query is the caller's to decide (a donor
	 * only its own: compare donor_id).  flags: SB_CONCIERGE_LOCK.
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

	void		*spare[8];
};

#endif /* SWITCHBOARD_SERVICES_CONCIERGE_H */
