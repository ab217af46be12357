/*
 * Test plugin: registers a good job kind, then one named outside its own
 * namespace.  The loader must refuse the plugin, and the good kind it
 * staged must not survive it.
 */
#include <switchboard/plugin.h>

static void
badkind_run(struct sb_job *job)
{
	(void)job;
}

static const struct sb_job_kind good = {
	.name = "badkind.fine", .run = badkind_run
};
static const struct sb_job_kind bad = {
	.name = "jobber.stolen", .run = badkind_run
};

static int
badkind_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	if (api->job_kind_add(p, &good) != SB_OK)
		return (SB_ERROR);
	/* Ignores the refusal: the loader fails the plugin anyway. */
	(void)api->job_kind_add(p, &bad);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.badkind",
	.name = "badkind",
	.version = "1.0.0",
	.summary = "Test: a job kind outside the plugin's namespace",
	.setup = badkind_setup,
)
