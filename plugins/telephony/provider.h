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
	/* find_sms: the provider's ids of every message that may be this
	 * one, oldest first (the job takes the first no other row holds). */
	const char *const	*found;
	size_t			 nfound;
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

/* An outbound call as a provider places it (borrowed for the call). */
struct tel_call {
	int64_t			 id;
	const char		*to;		/* E.164: the callee */
	const char		*connect_to;	/* E.164 or "sip:...": bridged
						 * to the callee; NULL: speak */
	const char		*message;	/* spoken when no connect_to */
	int			 record;
	const char		*status;	/* API.md call status now (hangup) */
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
	/*
	 * Voice (TEL_CHAN_VOICE).  call_ok: 1 when this provider can place
	 * this call as asked (Exotel cannot dial a SIP user, and speaks a
	 * message only through a configured call flow), else 0 and *why.
	 * place_call: as send_sms; an accepted result's
	 * provider_message_id is the provider's call id.  hangup: ends the
	 * call sid (c->status says how far it got); TEL_ACCEPTED when the
	 * provider took the request, TEL_REJECTED when it says the call has
	 * already ended.  NULL when the provider offers no way to end a call.
	 */
	int			(*call_ok)(const struct tel_call *,
				    const char **why);
	int			(*place_call)(struct sb_plugin *,
				    const struct tel_call *, tel_send_cb,
				    void *arg);
	int			(*hangup)(struct sb_plugin *, const char *sid,
				    const struct tel_call *, tel_send_cb,
				    void *arg);
	/*
	 * Asks the provider whether an SMS whose send was interrupted (the
	 * worker died with the request out) reached it: cb gets
	 * TEL_ACCEPTED with the provider's id when it did, TEL_REFUSED when
	 * it certainly did not, TEL_RETRY when the provider cannot say now.
	 * since: when the attempt began (RFC 3339).  NULL: cannot ask.
	 */
	int			(*find_sms)(struct sb_plugin *,
				    const struct tel_sms *, const char *since,
				    tel_send_cb, void *arg);
	/* The sender an SMS goes out from (its number, or Twilio's
	 * messaging service): the daily cap counts per sender.  NULL: none
	 * known. */
	const char		*(*sms_sender)(void);
	/* The number its SMS and calls show as `from` (E.164), or NULL. */
	const char		*(*from_number)(void);
};

extern const struct tel_provider tel_twilio;

/* outcome.c: what the providers share. */
#define TEL_AUTH_MAX	512
int	tel_timeout_ms(struct sb_plugin *, const struct sb_host_api *,
	    const char *key, unsigned int def, unsigned int *out);
int	tel_basic_auth(char out[TEL_AUTH_MAX], const char *user,
	    const char *pass);
const char *tel_public_base(struct sb_plugin *, const struct sb_host_api *);
int	tel_public_url_for(struct sb_plugin *, const struct sb_host_api *,
	    const char *path, char *out, size_t len);
int	tel_form_add(char **buf, size_t *len, size_t *cap, const char *name,
	    const char *value);
int	tel_post_form(struct sb_plugin *, const struct sb_host_api *,
	    const char *url, const char *auth, const char *body, size_t len,
	    unsigned int timeout_ms, const char *upstream,
	    void (*)(struct sb_plugin *, const struct sb_http_response *,
	    void *), void *arg);
void	tel_outcome_transport(const struct sb_http_response *,
	    struct tel_send_result *);
void	tel_outcome_http(const struct sb_http_response *,
	    struct tel_send_result *);
extern const struct tel_provider tel_exotel;

/* Twilio's webhook signature check (twilio.c), for the webhook route:
 * 1 when sig is X-Twilio-Signature of url + the sorted form body. */
int	tel_twilio_verify(const char *url, const void *body, size_t len,
	    const char *sig);
/* The webhook URLs Twilio is told (StatusCallback), or NULL without
 * public_url. */
const char *tel_public_url(void);
const char *tel_twilio_voice_url(void);

/* Exotel's webhook path token (exotel.c): 1 when t is this
 * installation's (exotel_webhook_token, or derived from the index key and
 * exotel_sid); 0 when it is not or none can be had. */
int	tel_exotel_token_ok(const char *t);
/* Exotel's StatusCallback (with the token), or NULL without public_url. */
const char *tel_exotel_callback_url(void);
const char *tel_exotel_voice_url(void);


#endif /* TELEPHONY_PROVIDER_H */
