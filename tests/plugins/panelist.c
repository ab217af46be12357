/*
 * Test plugin: console panels (ABI 1.2).  Declared well, it has three
 * panels sharing one dir: one every staff user sees, one behind a
 * permission with an alternative, one whose module is in a subdirectory.
 * Its `bad` setting adds one bad declaration after them, which the loader
 * must refuse as a whole (none of the good panels or files survive):
 *   traversal   script "../panelist.c"
 *   missing     a script that is not in dir
 *   nodir       a dir that does not exist
 *   duplicate   the id of an earlier panel
 *   permission  a permission nobody registered
 * The refusal is ignored, as a careless plugin would.
 */
#include <string.h>

#include <switchboard/plugin.h>

static const struct sb_config_key config[] = {
	{ .key = "bad", .description = "Which bad panel to declare" },
	SB_CONFIG_END
};

static struct sb_console_panel
panel(const char *id, const char *script, const char *permission)
{
	struct sb_console_panel	c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.id = id;
	c.label = id;
	c.dir = "panelist_console/";	/* relative to source_dir */
	c.script = script;
	c.permission = permission;
	return (c);
}

static int
panelist_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	struct sb_console_panel	 c;
	const char		*bad;

	if (api->config_declare(p, config) != SB_OK ||
	    api->permission_add(p, "panelist.see", "See the second panel") !=
	    SB_OK)
		return (SB_ERROR);
	c = panel("first", "first.js", NULL);
	if (api->console_panel_add(p, &c) != SB_OK)
		return (SB_ERROR);
	c = panel("second", "first.js", "panelist.see|system.read");
	c.label = "Second panel \xc3\xa9";
	if (api->console_panel_add(p, &c) != SB_OK)
		return (SB_ERROR);
	c = panel("third", "sub/third.mjs", "panelist.see");
	if (api->console_panel_add(p, &c) != SB_OK)
		return (SB_ERROR);

	if ((bad = api->config_get(p, "bad")) == NULL)
		return (SB_OK);
	if (strcmp(bad, "traversal") == 0)
		c = panel("bad", "../panelist.c", NULL);
	else if (strcmp(bad, "missing") == 0)
		c = panel("bad", "absent.js", NULL);
	else if (strcmp(bad, "nodir") == 0) {
		c = panel("bad", "first.js", NULL);
		c.dir = "panelist_nowhere";
	} else if (strcmp(bad, "duplicate") == 0)
		c = panel("first", "first.js", NULL);
	else
		c = panel("bad", "first.js", "panelist.nobody");
	(void)api->console_panel_add(p, &c);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.panelist",
	.name = "panelist",
	.version = "1.0.0",
	.summary = "Test: console panels, good and bad",
	.setup = panelist_setup,
)
