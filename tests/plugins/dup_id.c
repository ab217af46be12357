/* Test plugin: claims the example plugin's id. */
#include <switchboard/plugin.h>

static int
dup_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	(void)p;
	(void)api;
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.example",
	.name = "dup_id",
	.version = "1.0.0",
	.setup = dup_setup,
)
