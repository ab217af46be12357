/* Test plugin: half of a dependency cycle (cycle_a <-> cycle_b). */
#include <switchboard/plugin.h>

static const char *const deps[] = { "io.switchboard.test.cycle-b", NULL };

static int
cycle_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	(void)p;
	(void)api;
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.cycle-a",
	.name = "cycle_a",
	.version = "1.0.0",
	.depends = deps,
	.setup = cycle_setup,
)
