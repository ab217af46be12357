/*
 * The event bus.  publish() delivers to the subscribers in this worker
 * at once, then hands the event to the parent, which relays it to every
 * worker over Kore's msg channel.  Kore relays a KORE_MSG_WORKER_ALL
 * message to the sender as well, so a worker drops its own events on
 * receipt: each subscriber sees each event exactly once per worker.
 * (kore_websocket_broadcast(..., GLOBAL) would duplicate: KORE-NOTES.md.)
 */

#include <kore/kore.h>

#include <stdio.h>
#include <string.h>

#include "sb.h"

#define SB_MSG_EVENT	(KORE_MSG_APP_BASE + 1)

static void	bus_recv(struct kore_msg *, const void *);
static void	deliver(const struct sb_event *);

void
sb_bus_worker_init(void)
{
	if (!kore_msg_register(SB_MSG_EVENT, bus_recv))
		sb_log(SB_LOG_ERROR, "bus", "cannot register the bus channel");
}

static int
pattern_match(const char *pattern, const char *name)
{
	size_t	len;

	if (strcmp(pattern, "*") == 0 || strcmp(pattern, name) == 0)
		return (1);
	len = strlen(pattern);
	if (len >= 2 && pattern[len - 1] == '*' && pattern[len - 2] == '.')
		return (strncmp(pattern, name, len - 1) == 0);
	return (0);
}

static void
deliver(const struct sb_event *ev)
{
	struct sb_sub	*s;

	TAILQ_FOREACH(s, &sb_subscriptions, list) {
		if (s->owner->state != SB_PLUGIN_READY ||
		    !pattern_match(s->pattern, ev->name))
			continue;
		s->cb(s->owner, ev, s->arg);
	}
}

static int
valid_name(const char *name)
{
	const char	*p;

	if (name == NULL || *name == '\0' || strlen(name) > 128)
		return (0);
	for (p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '.' || *p == '_' || *p == '-'))
			return (0);
	}
	return (strchr(name, '.') != NULL);
}

int
sb_bus_publish(struct sb_plugin *p, const char *name, int version,
    json_t *data)
{
	struct sb_event	 ev;
	json_t		*wire;
	char		 id[33], *out;

	if (!sb_is_worker) {
		sb_log(SB_LOG_ERROR, "bus", "publish outside a worker refused");
		return (-1);
	}
	if (!valid_name(name) || (data != NULL && !json_is_object(data))) {
		sb_log(SB_LOG_ERROR, "bus", "plugin %s published an invalid "
		    "event (name \"%s\")", p != NULL ? p->name : "?",
		    name != NULL ? name : "(null)");
		return (-1);
	}
	sb_random_hex(id, 16);
	memset(&ev, 0, sizeof(ev));
	ev.name = name;
	ev.id = id;
	ev.version = version;
	ev.source = p != NULL && p->d.id != NULL ? p->d.id : SB_HOST_ID;
	ev.published_at = sb_now_ms();
	ev.data = data != NULL ? json_incref(data) : json_object();

	deliver(&ev);

	wire = json_pack("{s:s, s:s, s:i, s:s, s:I, s:O}", "name", ev.name,
	    "id", ev.id, "version", ev.version, "source", ev.source,
	    "published_at", (json_int_t)ev.published_at, "data", ev.data);
	json_decref(ev.data);
	if (wire == NULL)
		return (-1);
	out = json_dumps(wire, JSON_COMPACT);
	json_decref(wire);
	if (out == NULL)
		return (-1);
	kore_msg_send(KORE_MSG_WORKER_ALL, SB_MSG_EVENT, out, strlen(out));
	free(out);
	return (0);
}

static void
bus_recv(struct kore_msg *msg, const void *data)
{
	struct sb_event	 ev;
	json_t		*wire;
	json_int_t	 at;

	if (msg->src == worker->id || data == NULL)
		return;		/* our own: delivered when published */
	wire = json_loadb(data, msg->length, 0, NULL);
	if (wire == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	at = 0;
	if (json_unpack(wire, "{s:s, s:s, s:i, s:s, s:I, s:o}", "name",
	    &ev.name, "id", &ev.id, "version", &ev.version, "source",
	    &ev.source, "published_at", &at, "data", &ev.data) == 0) {
		ev.published_at = at;
		deliver(&ev);
	}
	json_decref(wire);
}
