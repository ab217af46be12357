/* Test plugin: built against a newer minor than the host provides. */
#include <switchboard/plugin.h>

static int
newer_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	(void)p;
	(void)api;
	return (SB_OK);
}

SB_EXPORT const struct sb_plugin_desc *sb_plugin_entry(void);

SB_EXPORT const struct sb_plugin_desc *
sb_plugin_entry(void)
{
	static const struct sb_plugin_desc desc = {
		.abi_major = SB_ABI_MAJOR,
		.abi_minor = SB_ABI_MINOR + 1,
		.size = sizeof(struct sb_plugin_desc),
		.id = "io.switchboard.test.newer-minor",
		.name = "newer_minor",
		.version = "1.0.0",
		.setup = newer_setup,
	};
	return (&desc);
}
