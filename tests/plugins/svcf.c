/*
 * Test plugin: tries to export a service under another plugin's name
 * ("svcx.rows"), which the host refuses in setup().
 */
#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static const struct sb_service	foreign = { .size = sizeof(foreign),
				    .version = 1 };

static int
svcf_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	return (api->service_export(p, "svcx.rows", &foreign));
}

SB_PLUGIN(
	.id = "io.switchboard.test.svcf",
	.name = "svcf",
	.version = "1.0.0",
	.summary = "Test plugin exporting a foreign service name",
	.setup = svcf_setup,
)
