/* Test plugin: the mandatory setup slot is missing. */
#include <switchboard/plugin.h>

SB_PLUGIN(
	.id = "io.switchboard.test.no-setup",
	.name = "no_setup",
	.version = "1.0.0",
)
