/*
 * What the SMS core (telephony.c) and the call core (calls.c) share
 * (core.c): the host, the routing over the providers of provider.h,
 * phone numbers, the error answers, the list filters and the provider
 * webhooks' verification.  Everything here is for this plugin's own
 * files; the host sees none of it.
 */

#ifndef TELEPHONY_TEL_H
#define TELEPHONY_TEL_H

#include <stddef.h>

#include <switchboard/plugin.h>
#include <switchboard/services/customers.h>

#include "provider.h"
#include "sms.h"

#define TEL_ROOM	"telephony"
#define TEL_TWIML_EMPTY	"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"

/* Set once in setup (tel_core_init(); tel_dir by service_import, which
 * fills it in once the customers plugin is set up); read-only afterwards. */
extern const struct sb_host_api			*tel_api;
extern struct sb_plugin				*tel_self;
extern const struct sb_customers_directory	*tel_dir;

int	tel_core_init(struct sb_plugin *, const struct sb_host_api *);

/* Providers and routing. */
const struct tel_provider *tel_provider_find(const char *name, size_t len);
int	tel_provider_ready(const struct tel_provider *, unsigned int chan);
/* The providers to try on channel ("sms", "voice") for e164, as a comma
 * list: explicit when given, else the routing's; -1 without a route. */
int	tel_candidates(const char *channel, const char *explicit,
	    const char *e164, char *out, size_t len);
int	tel_any_ready(const char *list, unsigned int chan);
/* The number provider's SMS and calls go out from, or NULL. */
const char *tel_from_number(const char *provider);
/* Each provider in turn (NULL-terminated). */
extern const struct tel_provider *const tel_providers[];

/* Phone numbers. */
int	tel_normalise(const char *in, char *out, size_t len);
char	*tel_phone_index(const char *e164);	/* caller frees */

/* Answers. */
void	tel_err_field(struct sb_req *, int status, const char *field,
	    const char *code, const char *msg);
void	tel_err_db(struct sb_req *);
void	tel_twiml(struct sb_req *, const char *xml);
void	tel_hook_ok(struct sb_req *, const char *provider);

/* Rows and filters. */
void	tel_unseal_into(json_t *row, const char *col, const char *key);
int	tel_looks_like_time(const char *);
int	tel_enum_ok(const char *, const char *const *choices);
int	tel_filter_fromto(struct sb_req *, const char *name,
	    const char **time, char **index);
int	tel_filter_id(struct sb_req *, const char *name, const char **out);
int	tel_filter_enums(struct sb_req *, const char *const *statuses,
	    const char *const *providers, const char **status,
	    const char **provider);
/* ?from=&to= of a statistics route (a date or an RFC 3339 time): 0, or
 * -1 after answering 400. */
int	tel_stats_bounds(struct sb_req *, const char **from, const char **to);
/* The SQL bounds of statistics over created_at with $1 and $2. */
#define TEL_STATS_WHERE \
	"($1::text IS NULL OR created_at >= $1::text::timestamptz) " \
	"AND ($2::text IS NULL OR created_at < CASE WHEN length($2::text) " \
	"= 10 THEN ($2::text::date + 1)::timestamptz ELSE " \
	"$2::text::timestamptz END)"

/*
 * Messages ("sms") and calls ("call").  tel_item_load: the row select_sql
 * ($1 the id) finds, through to_json (which takes the row), with its
 * events when asked; NULL when none or on error (*dberr).
 * tel_event_add: one status event (callback: the provider callback's name,
 * unique per item; NULL for the plugin's own); *added: it was new.
 * tel_publish: the item to the room without numbers, body or events.
 * tel_rate_ok: the per-user and per-number budget of what ("sms",
 * "call"); 0 after answering 429 with Retry-After.
 */
json_t	*tel_item_load(const char *kind, const char *select_sql,
	    const char *id, int events, json_t *(*to_json)(json_t *),
	    int *dberr);
int	tel_event_add(const char *kind, const char *id, const char *status,
	    const char *detail, const char *callback, int *added);
void	tel_publish(const char *name, json_t *m);
int	tel_rate_ok(struct sb_req *, const char *what, unsigned int per_minute,
	    const char *who, const char *index, const char *message);

/* An advisory lock on (what, provider, id) inside a transaction. */
int	tel_sid_lock(const char *what, const char *provider, const char *id);

/*
 * Provider webhooks: verified before anything is read.  Each returns the
 * form (or JSON) body as an object, or NULL after answering (missing or
 * bad signature or token, not a form, another account's callback).
 */
json_t	*tel_twilio_hook(struct sb_req *);
json_t	*tel_exotel_hook(struct sb_req *);

/* The call core (calls.c). */
int	tel_calls_setup(struct sb_plugin *);
json_t	*tel_calls_timeline(struct sb_plugin *, int64_t customer_id,
	    const json_t *before, unsigned int limit);
json_t	*tel_calls_export(struct sb_plugin *, int kind, const char *param);
long long tel_calls_erase(struct sb_plugin *, int kind, const char *param);
int	tel_calls_rekey(struct sb_plugin *, json_t *state, unsigned int batch,
	    unsigned int *resealed);
int	tel_calls_stats(struct sb_plugin *, json_t *out);

#endif /* TELEPHONY_TEL_H */
