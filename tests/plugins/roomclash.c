/*
 * Test plugin: claims the room prefix "roomy", which the roomy plugin
 * already owns.  The loader must refuse it (a prefix has one owner).
 */
#include <switchboard/plugin.h>

static int
roomclash_authorise(struct sb_plugin *p, const struct sb_principal *who,
    const char *room)
{
	(void)p;
	(void)who;
	(void)room;
	return (1);
}

static int
roomclash_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	return (api->room_add(p, "roomy", roomclash_authorise));
}

static const char *const deps[] = { "io.switchboard.test.roomy", NULL };

SB_PLUGIN(
	.id = "io.switchboard.test.roomclash",
	.name = "roomclash",
	.version = "1.0.0",
	.summary = "Claims a room prefix another plugin owns",
	.setup = roomclash_setup,
	.depends = deps,
)
