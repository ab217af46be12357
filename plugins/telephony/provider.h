/*
 * The provider interface of the telephony plugin.  One table per
 * provider (twilio.c and exotel.c now; freeswitch.c and device.c later),
 * listed in telephony.c's providers[].  The SMS and call cores never
 * name a provider: they pick tables by [plugin telephony] routing and
 * talk to them through these slots only.
 */

#ifndef TELEPHONY_PROVIDER_H
#define TELEPHONY_PROVIDER_H

#include <stdint.h>

#include <switchboard/plugin.h>

#define TEL_CHAN_SMS		0x01
#define TEL_CHAN_VOICE		0x02

/* What became of one send attempt at one provider. */
enum tel_outcome {
	TEL_ACCEPTED = 1,	/* the provider took it: provider_message_id */
	TEL_REFUSED,		/* it certainly did not (connect failure,
				 * circuit open, 401/403, unconfigured):
				 * the next provider may be tried */
	TEL_RETRY,		/* not accepted, try again later (429, 5xx):
				 * retry_after when the provider said */
	TEL_REJECTED,		/* refused for good (invalid number...):
				 * failed, with error_code/error_message */
	TEL_AMBIGUOUS		/* may have been accepted (a timeout after
				 * the request left): never resent */
};

struct tel_send_result {
	enum tel_outcome	 outcome;
	const char		*status;	/* API.md SMS status when accepted */
	const char		*provider_message_id;
	const char		*error_code;
	const char		*error_message;
	unsigned int		 retry_after;
	const char		*detail;	/* for the log and the job */
};

typedef void (*tel_send_cb)(struct sb_plugin *,
    const struct tel_send_result *, void *arg);

/* An outbound SMS as a provider sends it (borrowed for the call). */
struct tel_sms {
	int64_t			 id;
	const char		*to;		/* E.164 */
	const char		*body;
	const char		*idempotency_key;	/* for providers that take one */
};

struct tel_provider {
	const char		*name;		/* routing and the API's `provider` */
	unsigned int		 channels;	/* TEL_CHAN_* */
	/* setup(): read the provider's keys (api->config_get). */
	int			(*configure)(struct sb_plugin *,
				    const struct sb_host_api *);
	/* 1 when its required keys are set; else 0 and *missing names them. */
	int			(*configured)(const char **missing);
	/* SB_OK and cb exactly once later; SB_ERROR: cb never called. */
	int			(*send_sms)(struct sb_plugin *,
				    const struct tel_sms *, tel_send_cb,
				    void *arg);
	/* Later slices: place_call, hangup. */
	void			*spare[4];
};

extern const struct tel_provider tel_twilio;

/* outcome.c: what the providers share. */
#define TEL_AUTH_MAX	512
int	tel_timeout_ms(struct sb_plugin *, const struct sb_host_api *,
	    const char *key, unsigned int def, unsigned int *out);
int	tel_basic_auth(char out[TEL_AUTH_MAX], const char *user,
	    const char *pass);
const char *tel_public_base(struct sb_plugin *, const struct sb_host_api *);
int	tel_form_add(char **buf, size_t *len, size_t *cap, const char *name,
	    const char *value);
void	tel_outcome_transport(const struct sb_http_response *,
	    struct tel_send_result *);
void	tel_outcome_http(const struct sb_http_response *,
	    struct tel_send_result *);
extern const struct tel_provider tel_exotel;

/* Twilio's webhook signature check (twilio.c), for the webhook route:
 * 1 when sig is X-Twilio-Signature of url + the sorted form body. */
int	tel_twilio_verify(const char *url, const void *body, size_t len,
	    const char *sig);
/* The webhook URL Twilio is told (StatusCallback), or NULL without
 * public_url. */
const char *tel_public_url(void);

/* Exotel's webhook path token (exotel.c): 1 when t is this
 * installation's (exotel_webhook_token, or derived from the index key and
 * exotel_sid); 0 when it is not or none can be had. */
int	tel_exotel_token_ok(const char *t);
/* Exotel's StatusCallback (with the token), or NULL without public_url. */
const char *tel_exotel_callback_url(void);

#endif /* TELEPHONY_PROVIDER_H */
