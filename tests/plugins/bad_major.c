/* Test plugin: built for an ABI major the host does not speak. */
#include <switchboard/plugin.h>

static int
bad_setup(struct sb_plugin *p, const struct sb_host_api *api)
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
		.abi_major = SB_ABI_MAJOR + 1,
		.abi_minor = 0,
		.size = sizeof(struct sb_plugin_desc),
		.id = "io.switchboard.test.bad-major",
		.name = "bad_major",
		.version = "1.0.0",
		.setup = bad_setup,
	};
	return (&desc);
}
