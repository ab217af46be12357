/*
 * The event bus.  publish() hands the event to the parent, which relays
 * it to every worker over Kore's msg channel, then delivers it to the
 * subscribers in this worker before returning.  Kore relays a KORE_MSG_WORKER_ALL
 * message to the sender as well, so a worker drops its own events on
 * receipt: each subscriber sees each event exactly once per worker.
 * (kore_websocket_broadcast(..., GLOBAL) would duplicate: KORE-NOTES.md.)
 * Other nodes get the event through PostgreSQL (cluster.c), and every
 * delivery, here or there, also goes to the WebSocket gateway (ws.c),
 * which fans an event published to a room out to that room's clients in
 * this worker: the bus and the gateway are one path.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <string.h>

#include "sb.h"

#define SB_MSG_EVENT	(KORE_MSG_APP_BASE + 1)

static void	bus_recv(struct kore_msg *, const void *);
static void	deliver(const struct sb_event *);
static json_t	*actor_json(const struct sb_principal *);
static void	set_str(json_t *, const char *, const char *);

/* The actor of events published outside any request. */
static const struct sb_principal system_actor = {
	.kind = SB_ACTOR_SYSTEM, .id = 0, .name = "system"
};

/* Absent strings are left out, not null: the receiver's "s?s" skips a
 * missing key but refuses a null. */
static void
set_str(json_t *o, const char *key, const char *value)
{
	if (value != NULL)
		json_object_set_new(o, key, json_string(value));
}

static json_t *
actor_json(const struct sb_principal *a)
{
	json_t	*o;

	o = json_pack("{s:i, s:I}", "kind", a->kind, "id", (json_int_t)a->id);
	set_str(o, "name", a->name);
	set_str(o, "role", a->role);
	set_str(o, "donor_id", a->donor_id);
	return (o);
}

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
	sb_ws_deliver(ev);
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
	return (sb_bus_publish_room(p, NULL, name, version, data));
}

/* An event for the WebSocket clients of room (NULL: no room) as well. */
int
sb_bus_publish_room(struct sb_plugin *p, const char *room, const char *name,
    int version, json_t *data)
{
	struct sb_event	 ev;
	json_t		*wire;
	char		 id[33], *out;
	size_t		 len;
	int		 sent;

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
	if (room != NULL && !sb_ws_room_valid(room)) {
		sb_log(SB_LOG_ERROR, "bus", "plugin %s published to an invalid "
		    "room", p != NULL ? p->name : "?");
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
	if (sb_current_req != NULL) {
		ev.actor = &sb_current_req->principal;
		ev.request_id = sb_current_req->id;
		ev.ip = sb_current_req->ip[0] != '\0' ? sb_current_req->ip :
		    NULL;
	} else {
		ev.actor = &system_actor;
	}
	ev.local = 1;
	ev.room = room;

	/* Other workers and nodes first: they fan out to their WebSocket
	 * clients while this worker does, and an event a subscriber here
	 * publishes in turn reaches them after this one. */
	wire = json_pack("{s:s, s:s, s:i, s:s, s:I, s:O, s:o}",
	    "name", ev.name, "id", ev.id, "version", ev.version,
	    "source", ev.source, "published_at", (json_int_t)ev.published_at,
	    "data", ev.data, "actor", actor_json(ev.actor));
	out = NULL;
	if (wire != NULL) {
		set_str(wire, "request_id", ev.request_id);
		set_str(wire, "ip", ev.ip);
		set_str(wire, "room", ev.room);
		out = json_dumps(wire, JSON_COMPACT);
		json_decref(wire);
	}
	sent = out != NULL;
	if (sent) {
		len = strlen(out);
		kore_msg_send(KORE_MSG_WORKER_ALL, SB_MSG_EVENT, out, len);
		sb_cluster_publish(out, len);
		free(out);
	}

	deliver(&ev);
	json_decref(ev.data);
	return (sent ? 0 : -1);
}

static void
bus_recv(struct kore_msg *msg, const void *data)
{
	if (msg->src == worker->id || data == NULL)
		return;		/* our own: delivered when published */
	sb_bus_deliver_wire(data, msg->length);
}

/* Deliver an event another worker (Kore msg) or node (cluster.c) sent. */
void
sb_bus_deliver_wire(const void *data, size_t len)
{
	struct sb_event		 ev;
	struct sb_principal	 actor;
	json_t			*wire, *a;
	json_int_t		 at, aid;
	int			 kind;

	wire = json_loadb(data, len, 0, NULL);
	if (wire == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	memset(&actor, 0, sizeof(actor));
	at = aid = 0;
	kind = SB_ACTOR_SYSTEM;
	a = NULL;
	if (json_unpack(wire, "{s:s, s:s, s:i, s:s, s:I, s:o, s:o, s?s, "
	    "s?s, s?s}", "name", &ev.name, "id", &ev.id, "version",
	    &ev.version, "source", &ev.source, "published_at", &at, "data",
	    &ev.data, "actor", &a, "request_id", &ev.request_id, "ip", &ev.ip,
	    "room", &ev.room) == 0 &&
	    json_unpack(a, "{s:i, s:I, s?s, s?s, s?s}", "kind", &kind, "id",
	    &aid, "name", &actor.name, "role", &actor.role, "donor_id",
	    &actor.donor_id) == 0) {
		actor.kind = (enum sb_actor)kind;
		actor.id = aid;
		ev.actor = &actor;
		ev.published_at = at;
		deliver(&ev);
	}
	json_decref(wire);
}

/* A host event (auth.*, users.*, ...): data is stolen. */
void
sb_host_event(const char *name, json_t *data)
{
	if (data == NULL)
		data = json_object();
	(void)sb_bus_publish(NULL, name, 1, data);
	json_decref(data);
}

/*
 * A change to a host entity: {"target": "<kind>:<id>", "<kind>_id": id,
 * "changes": changes}.  changes is stolen and may be NULL.
 */
void
sb_host_change_event(const char *name, const char *kind, int64_t id,
    json_t *changes)
{
	char	target[64], idkey[40];

	snprintf(target, sizeof(target), "%s:%lld", kind, (long long)id);
	snprintf(idkey, sizeof(idkey), "%s_id", kind);
	sb_host_event(name, json_pack("{s:s, s:I, s:o}", "target", target,
	    idkey, (json_int_t)id, "changes", changes != NULL ? changes :
	    json_object()));
}
