/*
 * Outbound mail: one message over SMTP (api->mail_send), asynchronous
 * like outbound HTTP: the caller's mail is copied, the plugin's callback
 * runs exactly once, later, from the worker's event loop and never inside
 * sb_mail_send().
 *
 * Why a thread and not Kore's curl multi handle (as httpc.c uses):
 * libcurl's SMTP code waits for two replies with a blocking poll inside
 * the multi interface, the one to the end of the message (smtp_done) and
 * the one to QUIT (smtp_disconnect); a known libcurl limitation (curl
 * issue 8555, still among its planned non-blocking work).  On Kore's
 * multi handle that wait would stop the whole worker: measured here
 * with libcurl 7.88, one curl_multi_perform() call lasted 3.5 s against
 * a server that took 2 s to accept the message and 1.5 s to answer
 * QUIT.  So each mail is one curl_easy_perform() on a thread of its own
 * (at most
 * THREADS_MAX per worker, the rest wait in a queue), and the thread
 * hands the finished mail back to the event loop through a datagram
 * socket pair Kore polls.  The thread touches nothing of Kore's: only
 * libcurl, malloc'd memory and the socket.
 *
 * A mail's ownership: the event loop's until its thread starts; the
 * thread's (together with the curl handle and the recipient list) while
 * curl runs; the event loop's again from the moment the thread sends its
 * pointer.  The thread then closes the connection (QUIT, bounded by the
 * response timeout) with only the handle and the list, which it frees.
 * A thread that never reports (killed by the sandbox, say) is covered by
 * a watchdog: the caller is answered "lost" and the mail is forgotten
 * (freed if the thread ever reports after all).
 *
 * Every connection is the mail's own (a fresh handle has a private
 * connection cache): no connection, TLS state or login is shared between
 * mails or plugins.  TLS peers are verified against the host's CA
 * bundle, the copy httpc.c places inside the chroot.
 */

#include <sys/socket.h>
#include <sys/types.h>

#include <kore/kore.h>

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb.h"
#include "conf.h"

#define DEFAULT_TIMEOUT_MS	30000
#define CONNECT_TIMEOUT_MS	10000
#define URL_MAX			2048
#define TARGET_MAX		300		/* "host:port" for the log */
#define ADDRESS_MAX		256		/* RFC 5321 4.5.3.1.3 */
#define CREDENTIAL_MAX		1024
#define RCPT_MAX		100
#define MESSAGE_MAX		(10 * 1024 * 1024)
#define THREADS_MAX		16		/* transfers at once, per worker */
#define QUEUE_MAX		256		/* mails waiting for a thread */
#define QUEUE_BYTES_MAX		(64 * 1024 * 1024)
/* Past its own timeout, how long a thread may stay silent before its
 * mail is answered as lost. */
#define WATCHDOG_GRACE_MS	15000

/* httpc.c copies [host] ca_bundle here inside the chroot. */
#define CA_BUNDLE_DEFAULT	"/etc/ssl/certs/ca-certificates.crt"
#define CA_BUNDLE_CHROOT	"/etc/ssl/certs/ca-certificates.crt"

struct mail {
	TAILQ_ENTRY(mail)	 list;		/* waiting for a thread */
	struct sb_mail_result	 res;		/* what the callback sees */
	struct sb_plugin	*plugin;
	sb_mail_cb		 cb;
	void			*arg;
	CURL			*handle;
	struct curl_slist	*rcpt;
	char			*msg;		/* the message, copied */
	size_t			 len;
	size_t			 off;		/* read cursor (the thread's) */
	unsigned int		 timeout_ms;
	uint64_t		 started;	/* kore_time_ms() at send */
	struct kore_timer	*watchdog;
	int			 running;	/* holds a thread slot */
	int			 abandoned;	/* answered by the watchdog */
	/* Written by the thread before it reports. */
	CURLcode		 result;
	long			 code;
	char			 errbuf[CURL_ERROR_SIZE];
	char			 error[CURL_ERROR_SIZE + 32];
	char			 target[TARGET_MAX];
};

TAILQ_HEAD(mail_queue, mail);

/* The parent resolves the bundle's path before the fork. */
static char		 cainfo[PATH_MAX];

/* Per worker, on its event loop only. */
static struct {
	struct kore_event	 evt;		/* first: Kore hands us &evt */
	int			 fd[2];		/* [0] loop reads, [1] threads write */
	int			 ready;
	unsigned int		 running;
	size_t			 queued;
	size_t			 queued_bytes;
	struct mail_queue	 queue;
} mc = { .fd = { -1, -1 } };

static int	 channel_open(void);
static void	 channel_read(void *, int);
static int	 text_valid(const char *, size_t, size_t);
static int	 address_valid(const char *, int);
static int	 url_check(const char *, int *, char *, size_t);
static int	 mail_valid(const struct sb_mail *, int *, char *, size_t);
static int	 mail_setup(struct mail *, const struct sb_mail *, int);
static size_t	 message_read(char *, size_t, size_t, void *);
static void	 mail_start(struct mail *);
static void	 queue_run(void);
static void	*mail_thread(void *);
static void	 mail_reported(struct mail *);
static void	 mail_watchdog(void *, u_int64_t);
static void	 mail_fail_later(struct mail *, const char *);
static void	 mail_timer(void *, u_int64_t);
static void	 mail_finish(struct mail *);
static void	 mail_answer(struct mail *);
static void	 mail_free(struct mail *);

/* ------------------------------------------------------------------------
 * Parent
 */

/* After sb_httpc_parent_init(), which put the bundle into the chroot. */
void
sb_mail_parent_init(void)
{
	const char	*bundle;

	bundle = sb_conf_get(sb_config, "host", "ca_bundle");
	if (bundle == NULL || *bundle == '\0')
		bundle = CA_BUNDLE_DEFAULT;
	if (skip_chroot == 0 && kore_root_path != NULL)
		(void)snprintf(cainfo, sizeof(cainfo), "%s", CA_BUNDLE_CHROOT);
	else if (realpath(bundle, cainfo) == NULL)
		/* httpc.c has warned already: TLS will fail, loudly. */
		(void)snprintf(cainfo, sizeof(cainfo), "%s", bundle);
}

/* ------------------------------------------------------------------------
 * Sending (worker, event loop)
 */

int
sb_mail_send(struct sb_plugin *p, const struct sb_mail *in, sb_mail_cb cb,
    void *arg)
{
	struct mail	*m;
	char		 target[TARGET_MAX];
	int		 tls;

	if (!sb_is_worker || in == NULL || cb == NULL ||
	    !mail_valid(in, &tls, target, sizeof(target)))
		return (SB_ERROR);

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return (SB_ERROR);
	m->plugin = p;
	m->cb = cb;
	m->arg = arg;
	m->started = kore_time_ms();
	m->timeout_ms = in->timeout_ms ? in->timeout_ms : DEFAULT_TIMEOUT_MS;
	(void)snprintf(m->target, sizeof(m->target), "%s", target);

	if (!mc.ready && channel_open() == -1) {
		mail_fail_later(m, "cannot start the transfer");
		return (SB_OK);
	}
	if (mail_setup(m, in, tls) == -1) {
		mail_fail_later(m, "cannot set up the transfer");
		return (SB_OK);
	}
	if (mc.running < THREADS_MAX && TAILQ_EMPTY(&mc.queue)) {
		mail_start(m);
		return (SB_OK);
	}
	if (mc.queued >= QUEUE_MAX ||
	    m->len > QUEUE_BYTES_MAX - mc.queued_bytes) {
		mail_fail_later(m, "too many mails in flight");
		return (SB_OK);
	}
	TAILQ_INSERT_TAIL(&mc.queue, m, list);
	mc.queued++;
	mc.queued_bytes += m->len;
	return (SB_OK);
}

/*
 * The worker's completion channel: datagrams of one struct mail pointer
 * each, so a report is never split or merged.  The threads' end blocks
 * (a full queue waits for the loop); the loop's end does not.
 */
static int
channel_open(void)
{
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, mc.fd) == -1) {
		sb_log(SB_LOG_ERROR, "mail", "socketpair: %s", strerror(errno));
		return (-1);
	}
	if (fcntl(mc.fd[0], F_SETFL, O_NONBLOCK) == -1) {
		sb_log(SB_LOG_ERROR, "mail", "fcntl: %s", strerror(errno));
		(void)close(mc.fd[0]);
		(void)close(mc.fd[1]);
		mc.fd[0] = mc.fd[1] = -1;
		return (-1);
	}
	TAILQ_INIT(&mc.queue);
	/* Kore dispatches on handle alone; the type only says "not a
	 * connection". */
	mc.evt.type = KORE_TYPE_TASK;
	mc.evt.flags = 0;
	mc.evt.handle = channel_read;
	kore_platform_event_level_read(mc.fd[0], &mc.evt);
	mc.ready = 1;
	return (0);
}

static void
channel_read(void *arg, int eof)
{
	struct mail	*m;
	ssize_t		 n;

	(void)arg;
	(void)eof;
	for (;;) {
		n = recv(mc.fd[0], &m, sizeof(m), 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				sb_log(SB_LOG_ERROR, "mail", "recv: %s",
				    strerror(errno));
			break;
		}
		if (n == (ssize_t)sizeof(m) && m != NULL)
			mail_reported(m);
	}
	queue_run();
}

/* ------------------------------------------------------------------------
 * Validation
 */

/* 1..max bytes, no ASCII control characters. */
static int
text_valid(const char *s, size_t min, size_t max)
{
	size_t	n;

	if (s == NULL)
		return (0);
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= max || (unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return (0);
	}
	return (n >= min);
}

/*
 * An envelope address, "a@b" or "<a@b>": no controls, spaces or angle
 * brackets inside, which would let a caller add ESMTP parameters or
 * commands to MAIL FROM / RCPT TO.  "<>" (the null sender) where null_ok.
 */
static int
address_valid(const char *s, int null_ok)
{
	const char	*p, *end;
	size_t		 len;

	if (s == NULL || !text_valid(s, 1, ADDRESS_MAX))
		return (0);
	len = strlen(s);
	p = s;
	end = s + len;
	if (*p == '<') {
		if (len < 2 || end[-1] != '>')
			return (0);
		p++;
		end--;
		if (p == end)
			return (null_ok);
	}
	for (; p < end; p++) {
		if (*p == ' ' || *p == '<' || *p == '>')
			return (0);
	}
	return (1);
}

/*
 * smtp:// or smtps:// with a host; no credentials, options, query or
 * fragment in the URL (credentials go in username/password, which are
 * never logged).  *tls: TLS from the start.  target: host:port.
 */
static int
url_check(const char *url, int *tls, char *target, size_t len)
{
	CURLU		*u;
	char		*scheme, *host, *port, *extra;
	int		 rc, i;
	static const CURLUPart	no[] = {
		CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS,
		CURLUPART_QUERY, CURLUPART_FRAGMENT
	};

	if (!text_valid(url, 1, URL_MAX) || strchr(url, ' ') != NULL)
		return (0);
	rc = 0;
	scheme = host = port = NULL;
	if ((u = curl_url()) == NULL)
		return (0);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "smtps") == 0)
		*tls = 1;
	else if (strcasecmp(scheme, "smtp") == 0)
		*tls = 0;
	else
		goto out;
	if (*host == '\0')
		goto out;
	for (i = 0; i < (int)(sizeof(no) / sizeof(no[0])); i++) {
		extra = NULL;
		if (curl_url_get(u, no[i], &extra, 0) == CURLUE_OK) {
			curl_free(extra);
			goto out;
		}
	}
	if ((size_t)snprintf(target, len, "%s:%s", host, port) >= len)
		goto out;
	rc = 1;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return (rc);
}

static int
mail_valid(const struct sb_mail *m, int *tls, char *target, size_t len)
{
	size_t	i;

	if (!url_check(m->url, tls, target, len))
		return (0);
	if (m->username != NULL) {
		if (!text_valid(m->username, 1, CREDENTIAL_MAX))
			return (0);
		/* SASL sends it encoded: any byte but NUL goes. */
		if (m->password != NULL &&
		    strnlen(m->password, CREDENTIAL_MAX + 1) > CREDENTIAL_MAX)
			return (0);
	} else if (m->password != NULL) {
		return (0);	/* a password without a user: a mistake */
	}
	if (!address_valid(m->from, 1))
		return (0);
	if (m->to == NULL || m->nto < 1 || m->nto > RCPT_MAX)
		return (0);
	for (i = 0; i < m->nto; i++) {
		if (!address_valid(m->to[i], 0))
			return (0);
	}
	if (m->message == NULL || m->message_len < 1 ||
	    m->message_len > MESSAGE_MAX)
		return (0);
	return (1);
}

/* ------------------------------------------------------------------------
 * The transfer
 */

/* Everything the mail says, into a fresh curl handle (which copies the
 * strings it is given; the recipient list and the message are ours). */
static int
mail_setup(struct mail *m, const struct sb_mail *in, int tls)
{
	CURL			*h;
	struct curl_slist	*l;
	size_t			 i;
	long			 conn_ms, resp_s;

	if ((m->msg = malloc(in->message_len)) == NULL)
		return (-1);
	memcpy(m->msg, in->message, in->message_len);
	m->len = in->message_len;
	for (i = 0; i < in->nto; i++) {
		if ((l = curl_slist_append(m->rcpt, in->to[i])) == NULL)
			return (-1);
		m->rcpt = l;
	}
	if ((h = m->handle = curl_easy_init()) == NULL)
		return (-1);

	conn_ms = m->timeout_ms < CONNECT_TIMEOUT_MS ? (long)m->timeout_ms :
	    CONNECT_TIMEOUT_MS;
	/* The whole-exchange timeout does not cover the QUIT at the close;
	 * this does (and is no shorter than the exchange for any reply). */
	resp_s = (long)((m->timeout_ms + 999) / 1000);

	if (curl_easy_setopt(h, CURLOPT_URL, in->url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps") !=
	    CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "smtp,smtps") !=
	    CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_MAIL_FROM, in->from) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, m->rcpt) != CURLE_OK)
		return (-1);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, m->errbuf);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, message_read);
	curl_easy_setopt(h, CURLOPT_READDATA, m);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)m->len);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, conn_ms);
	curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, resp_s);

	/* smtp:// + starttls: STARTTLS or fail; smtps://: TLS throughout. */
	curl_easy_setopt(h, CURLOPT_USE_SSL, (long)(tls || in->starttls ?
	    CURLUSESSL_ALL : CURLUSESSL_NONE));
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cainfo[0] != '\0') {
		if (curl_easy_setopt(h, CURLOPT_CAINFO, cainfo) != CURLE_OK)
			return (-1);
		/* Only the bundle: no directory outside it is trusted. */
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}

	if (in->username != NULL) {
		if (curl_easy_setopt(h, CURLOPT_USERNAME, in->username) !=
		    CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_PASSWORD, in->password != NULL ?
		    in->password : "") != CURLE_OK)
			return (-1);
	}
	return (0);
}

/* curl's read callback, on the mail's thread. */
static size_t
message_read(char *buf, size_t size, size_t nmemb, void *udata)
{
	struct mail	*m = udata;
	size_t		 n;

	if (size == 0 || nmemb > SIZE_MAX / size)
		return (0);
	n = size * nmemb;
	if (n > m->len - m->off)
		n = m->len - m->off;
	memcpy(buf, m->msg + m->off, n);
	m->off += n;
	return (n);
}

static void
mail_start(struct mail *m)
{
	pthread_attr_t	 attr;
	pthread_t	 tid;
	sigset_t	 all, old;
	int		 rc;

	if (pthread_attr_init(&attr) != 0) {
		mail_fail_later(m, "cannot start the transfer");
		return;
	}
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	m->running = 1;
	mc.running++;
	/* Signals are the event loop's: the thread inherits a full mask. */
	(void)sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&tid, &attr, mail_thread, m);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	(void)pthread_attr_destroy(&attr);
	if (rc != 0) {
		sb_log(SB_LOG_ERROR, "mail", "pthread_create: %s",
		    strerror(rc));
		m->running = 0;
		mc.running--;
		mail_fail_later(m, "cannot start the transfer");
		return;
	}
	m->watchdog = kore_timer_add(mail_watchdog,
	    (u_int64_t)m->timeout_ms + WATCHDOG_GRACE_MS, m,
	    KORE_TIMER_ONESHOT);
}

/* Start waiting mails while threads are free. */
static void
queue_run(void)
{
	struct mail	*m;

	while (mc.running < THREADS_MAX &&
	    (m = TAILQ_FIRST(&mc.queue)) != NULL) {
		TAILQ_REMOVE(&mc.queue, m, list);
		mc.queued--;
		mc.queued_bytes -= m->len;
		mail_start(m);
	}
}

/*
 * The mail's thread: libcurl and the socket only.  Nothing of Kore's
 * (its allocator and logs are not thread-safe) and nothing of the mail
 * once its pointer is sent.
 */
static void *
mail_thread(void *arg)
{
	struct mail		*m = arg;
	CURL			*h = m->handle;
	struct curl_slist	*rcpt = m->rcpt;
	CURLcode		 rc;
	long			 code;
	ssize_t			 n;

	rc = curl_easy_perform(h);
	code = 0;
	(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	m->result = rc;
	m->code = code;
	m->handle = NULL;
	m->rcpt = NULL;
	/* curl may still write an error at the close: not into the mail. */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_READDATA, NULL);

	do {
		n = send(mc.fd[1], &m, sizeof(m), MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	/* If that failed the watchdog answers the caller; the mail leaks. */

	/* QUIT and close: the caller has its answer already. */
	curl_easy_cleanup(h);
	curl_slist_free_all(rcpt);
	return (NULL);
}

/* A thread has finished its transfer (event loop). */
static void
mail_reported(struct mail *m)
{
	const char	*detail;

	if (m->running) {
		m->running = 0;
		mc.running--;
	}
	if (m->watchdog != NULL) {
		kore_timer_remove(m->watchdog);
		m->watchdog = NULL;
	}
	if (m->abandoned) {
		mail_free(m);
		return;
	}
	m->res.smtp_code = m->code;
	if (m->result != CURLE_OK) {
		if (m->result == CURLE_OPERATION_TIMEDOUT)
			detail = "timed out";
		else if (m->errbuf[0] != '\0')
			detail = m->errbuf;
		else
			detail = curl_easy_strerror(m->result);
		(void)snprintf(m->error, sizeof(m->error), "%s", detail);
	}
	mail_finish(m);
}

static void
mail_watchdog(void *arg, u_int64_t now)
{
	struct mail	*m = arg;

	(void)now;
	m->watchdog = NULL;	/* Kore frees a one-shot timer */
	m->abandoned = 1;
	if (m->running) {
		m->running = 0;
		mc.running--;
	}
	sb_log(SB_LOG_ERROR, "mail", "mail via %s: the transfer's thread did "
	    "not report within %u ms", m->target,
	    m->timeout_ms + WATCHDOG_GRACE_MS);
	(void)snprintf(m->error, sizeof(m->error), "transfer lost");
	/* The mail stays allocated: the thread may still be using it. */
	mail_answer(m);
	queue_run();
}

/* A mail that never started: finished from the event loop, not here. */
static void
mail_fail_later(struct mail *m, const char *error)
{
	(void)snprintf(m->error, sizeof(m->error), "%s", error);
	(void)kore_timer_add(mail_timer, 0, m, KORE_TIMER_ONESHOT);
}

static void
mail_timer(void *arg, u_int64_t now)
{
	(void)now;
	mail_finish(arg);
}

static void
mail_finish(struct mail *m)
{
	mail_answer(m);
	mail_free(m);
}

/* The one call of the plugin's callback. */
static void
mail_answer(struct mail *m)
{
	m->res.elapsed_ms = (unsigned int)(kore_time_ms() - m->started);
	m->res.ok = m->error[0] == '\0';
	m->res.error = m->res.ok ? NULL : m->error;
	/* Where and how it went; never the credentials, the addresses or
	 * the message. */
	if (m->res.ok)
		sb_log(SB_LOG_INFO, "mail", "%s: mail via %s accepted (%ld) "
		    "in %u ms", m->plugin != NULL ? m->plugin->name : "host",
		    m->target, m->res.smtp_code, m->res.elapsed_ms);
	else
		sb_log(SB_LOG_WARN, "mail", "%s: mail via %s failed (%ld): %s "
		    "in %u ms", m->plugin != NULL ? m->plugin->name : "host",
		    m->target, m->res.smtp_code, m->error, m->res.elapsed_ms);
	m->cb(m->plugin, &m->res, m->arg);
}

static void
mail_free(struct mail *m)
{
	if (m->handle != NULL)
		curl_easy_cleanup(m->handle);
	curl_slist_free_all(m->rcpt);
	free(m->msg);
	free(m);
}
