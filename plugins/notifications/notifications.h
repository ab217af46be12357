/*
 * The notifications plugin, shared between its three files:
 *   notifications.c  the rules table, the event subscriber, the fan-out
 *                    job, the inbox and preference routes, the descriptor
 *   fcm.c            FCM HTTP v1: the service account, the OAuth2 grant,
 *                    the shared access token, the push job
 *   mail.c           templates, the MIME message, the email job
 * Each file keeps its own pointer to the host API, set by its setup.
 * Concierge's queries are read and their donor tokens cleared only
 * through its concierge.thread service (notifications_thread below).
 */

#ifndef NOTIFICATIONS_H
#define NOTIFICATIONS_H

#include <switchboard/plugin.h>
#include <switchboard/services/concierge.h>

/*
 * concierge.thread, version 2 at least: the query a rule is about and
 * the donor's push token, never concierge's tables.  Imported in
 * notifications.c's setup(); the host sets it once that setup() has
 * succeeded, so it is valid in every worker.  Borrowed forever.
 */
extern const struct sb_service	*notifications_thread;
#define NOTIFICATIONS_THREAD	\
	((const struct sb_concierge_thread *)notifications_thread)

/* Channels, as bits and by name ("push", "email", "inbox"). */
#define NOTIFICATIONS_INBOX	0x1
#define NOTIFICATIONS_PUSH	0x2
#define NOTIFICATIONS_EMAIL	0x4

/* fcm.c */
int	notifications_fcm_setup(struct sb_plugin *,
	    const struct sb_host_api *);
void	notifications_fcm_health(json_t *);
void	notifications_fcm_fini(void);
int	notifications_fcm_rekey(struct sb_plugin *, json_t *, unsigned int,
	    unsigned int *);

/* mail.c: events is the list of event types that may be mailed (one
 * template pair each), NULL-terminated. */
int	notifications_mail_setup(struct sb_plugin *,
	    const struct sb_host_api *, const char *const *);
void	notifications_mail_health(json_t *);
void	notifications_mail_fini(void);

/*
 * {{name}} in tpl replaced by the string value of vars.name (numbers in
 * decimal, true/false, anything else or a missing name: nothing); with
 * html set the values are HTML-escaped.  Caller frees with free(); NULL
 * only when out of memory.
 */
char	*notifications_render(const char *tpl, json_t *vars, int html);

/* The first `max` characters of s (UTF-8), with "..." when cut.  Caller
 * frees with free(). */
char	*notifications_snippet(const char *s, size_t max);

#endif /* NOTIFICATIONS_H */
