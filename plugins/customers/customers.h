/*
 * The customers plugin's internal declarations, shared by its files:
 * customers.c (descriptor, setup, the CRUD routes), directory.c (the
 * "customers.directory" service and the timeline) and privacy.c (the
 * privacy hooks and key rotation).
 */

#ifndef CUSTOMERS_H
#define CUSTOMERS_H

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>
#include <switchboard/services/customers.h>

/* The host API and this plugin's own handle, kept from setup(): service
 * functions run on behalf of other plugins but act as this one. */
extern const struct sb_host_api	*customers_api;
extern struct sb_plugin		*customers_self;

/* The columns every read selects; customers_row() turns a row of them
 * into the API's customer object. */
#define CUSTOMERS_COLS	"id, name, phone_sealed, email, wa_id_sealed, " \
			"to_json(tags) AS tags, notes, attributes, " \
			SB_SQL_TS("created_at") " AS created_at, " \
			SB_SQL_TS("updated_at") " AS updated_at"

/* Blind-index domains. */
#define CUSTOMERS_PHONE		"phone"
#define CUSTOMERS_WA_ID		"wa_id"

json_t	*customers_row(json_t *row);
json_t	*customers_fetch(int64_t id, int *dberr);
char	*customers_index(const char *domain, const char *value);
int	 customers_is_e164(const char *s);

/* directory.c */
extern const struct sb_customers_directory customers_directory;
void	 customers_timeline(struct sb_req *);

/* privacy.c */
json_t		*customers_privacy_export(struct sb_plugin *,
		    const struct sb_subject *);
long long	 customers_privacy_erase(struct sb_plugin *,
		    const struct sb_subject *);
int		 customers_rekey(struct sb_plugin *, json_t *, unsigned int,
		    unsigned int *);

#endif /* CUSTOMERS_H */
