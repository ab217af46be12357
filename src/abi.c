/*
 * The checks a plugin descriptor must pass before the host calls anything
 * in it.  Pure code, unit-tested in tests/unit/test_abi.c.
 *
 * Rules: the major version must match exactly; a plugin built against a
 * newer minor than the host is refused (it may rely on slots this host
 * lacks); the descriptor must be at least as large as the first ABI 1.0
 * descriptor and, at the host's own minor, exactly the host's size; the
 * identity fields and the setup slot are mandatory.
 *
 * Also the shape of a console panel (ABI 1.2): what can be told from its
 * strings alone.  Whether its files exist is the loader's (plugin.c).
 *
 * And the name and header of a service (ABI 1.3): whether a name is
 * already taken is the registry's (services.c).
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sb.h"

/* Size of the descriptor as ABI 1.0 defined it: it may only grow. */
#define SB_DESC_SIZE_1_0	sizeof(struct sb_plugin_desc)
/* Size of a console panel as ABI 1.2 defined it. */
#define SB_PANEL_SIZE_1_2	sizeof(struct sb_console_panel)

static int	valid_id(const char *);
static int	valid_name(const char *);
static int	valid_panel_id(const char *);
static int	valid_label(const char *);
static int	valid_script(const char *);
static int	valid_word(const char *, size_t);

int
sb_abi_check(const struct sb_plugin_desc *d, uint16_t host_major,
    uint16_t host_minor, char *err, size_t errlen)
{
	if (d == NULL) {
		snprintf(err, errlen, "entry point returned no descriptor");
		return (-1);
	}
	if (d->abi_major != host_major) {
		snprintf(err, errlen, "ABI major %u is not the host's %u: "
		    "rebuild the plugin against this host's plugin.h",
		    d->abi_major, host_major);
		return (-1);
	}
	if (d->abi_minor > host_minor) {
		snprintf(err, errlen, "built for ABI %u.%u but the host "
		    "provides %u.%u: upgrade the host or rebuild the plugin",
		    d->abi_major, d->abi_minor, host_major, host_minor);
		return (-1);
	}
	if (d->size < SB_DESC_SIZE_1_0) {
		snprintf(err, errlen, "descriptor size %u is smaller than "
		    "ABI %u.0's %zu", d->size, host_major, SB_DESC_SIZE_1_0);
		return (-1);
	}
	if (d->abi_minor == host_minor &&
	    d->size != sizeof(struct sb_plugin_desc)) {
		snprintf(err, errlen, "descriptor size %u does not match "
		    "ABI %u.%u's %zu", d->size, d->abi_major, d->abi_minor,
		    sizeof(struct sb_plugin_desc));
		return (-1);
	}
	if (!valid_id(d->id)) {
		snprintf(err, errlen, "missing or invalid id (want a "
		    "reverse-DNS name such as \"org.example.plugin\")");
		return (-1);
	}
	if (!valid_name(d->name)) {
		snprintf(err, errlen, "missing or invalid name (want "
		    "[a-z][a-z0-9_]*, at most 32 characters)");
		return (-1);
	}
	if (d->version == NULL || *d->version == '\0') {
		snprintf(err, errlen, "missing mandatory field version");
		return (-1);
	}
	if (d->setup == NULL) {
		snprintf(err, errlen, "missing mandatory slot setup");
		return (-1);
	}
	return (0);
}

static int
valid_id(const char *id)
{
	const char	*p;
	int		dots, prev_dot;

	if (id == NULL || *id == '\0' || strlen(id) > 128)
		return (0);
	dots = 0;
	prev_dot = 1;
	for (p = id; *p != '\0'; p++) {
		if (*p == '.') {
			if (prev_dot)
				return (0);
			dots++;
			prev_dot = 1;
			continue;
		}
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-' && *p != '_')
			return (0);
		prev_dot = 0;
	}
	return (dots >= 1 && !prev_dot);
}

static int
valid_name(const char *name)
{
	const char	*p;

	if (name == NULL || !islower((unsigned char)*name) ||
	    strlen(name) > 32)
		return (0);
	for (p = name; *p != '\0'; p++) {
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '_')
			return (0);
	}
	return (1);
}

/*
 * A panel's strings.  The script becomes part of a URL the console imports
 * and a path under the panel's dir, so it is held to a plain relative path:
 * segments of [A-Za-z0-9_.-] not starting with a dot (no "..", and no
 * dotfile, which the asset loader would not serve), ending in .js or .mjs.
 */
int
sb_abi_panel_check(const struct sb_console_panel *c, char *err, size_t errlen)
{
	if (c == NULL) {
		snprintf(err, errlen, "console panel is NULL");
		return (-1);
	}
	if (c->size < SB_PANEL_SIZE_1_2) {
		snprintf(err, errlen, "console panel size %zu is smaller than "
		    "ABI 1.2's %zu", c->size, SB_PANEL_SIZE_1_2);
		return (-1);
	}
	if (!valid_panel_id(c->id)) {
		snprintf(err, errlen, "console panel id \"%s\" is not "
		    "[a-z][a-z0-9-]{0,31}", c->id != NULL ? c->id : "(null)");
		return (-1);
	}
	if (!valid_label(c->label)) {
		snprintf(err, errlen, "console panel %s: label must be 1 to 40 "
		    "bytes of UTF-8 without control characters", c->id);
		return (-1);
	}
	if (c->dir == NULL || *c->dir == '\0') {
		snprintf(err, errlen, "console panel %s: no dir", c->id);
		return (-1);
	}
	if (!valid_script(c->script)) {
		snprintf(err, errlen, "console panel %s: script \"%s\" must be "
		    "a relative path inside dir ([A-Za-z0-9_.-] segments, no "
		    "\"..\", no leading \"/\" or \".\") ending in .js or .mjs",
		    c->id, c->script != NULL ? c->script : "(null)");
		return (-1);
	}
	if (c->permission != NULL && *c->permission == '\0') {
		snprintf(err, errlen, "console panel %s: permission is empty "
		    "(NULL means every staff user)", c->id);
		return (-1);
	}
	return (0);
}

static int
valid_panel_id(const char *id)
{
	const char	*p;

	if (id == NULL || !islower((unsigned char)*id) || strlen(id) > 32)
		return (0);
	for (p = id; *p != '\0'; p++) {
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-')
			return (0);
	}
	return (1);
}

/* The label is shown as text and sent as JSON: jansson refuses invalid
 * UTF-8, which is the check wanted here. */
static int
valid_label(const char *label)
{
	const unsigned char	*p;
	json_t			*s;
	size_t			 len;

	if (label == NULL || (len = strlen(label)) == 0 || len > 40)
		return (0);
	for (p = (const unsigned char *)label; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return (0);
	}
	if ((s = json_string(label)) == NULL)
		return (0);
	json_decref(s);
	return (1);
}

static int
valid_script(const char *script)
{
	const char	*p, *seg;
	size_t		 len;

	if (script == NULL || (len = strlen(script)) == 0 || len > 200 ||
	    strstr(script, "..") != NULL)
		return (0);
	for (seg = p = script; ; p++) {
		if (*p == '/' || *p == '\0') {
			/* Empty, ".", ".." and dotfiles are all refused. */
			if (p == seg || *seg == '.')
				return (0);
			if (*p == '\0')
				break;
			seg = p + 1;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' &&
		    *p != '-')
			return (0);
	}
	return ((len > 3 && strcmp(script + len - 3, ".js") == 0) ||
	    (len > 4 && strcmp(script + len - 4, ".mjs") == 0));
}

/* [a-z][a-z0-9_]* of exactly len bytes (len > 0). */
static int
valid_word(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || !islower((unsigned char)s[0]))
		return (0);
	for (i = 0; i < len; i++) {
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '_')
			return (0);
	}
	return (1);
}

/*
 * A service name: "<plugin>.<what>", [a-z][a-z0-9_]* on both sides, one
 * dot, at most SB_SERVICE_NAME_MAX bytes.  Importers' names are held to
 * the same shape, so a typo is refused as such rather than as missing.
 */
int
sb_abi_service_name(const char *name, char *err, size_t errlen)
{
	const char	*dot;
	size_t		 len;

	if (name == NULL) {
		snprintf(err, errlen, "service name is NULL");
		return (-1);
	}
	len = strlen(name);
	dot = strchr(name, '.');
	if (len > SB_SERVICE_NAME_MAX || dot == NULL ||
	    !valid_word(name, (size_t)(dot - name)) ||
	    !valid_word(dot + 1, len - (size_t)(dot - name) - 1)) {
		snprintf(err, errlen, "service name \"%.80s\" is not "
		    "\"<plugin>.<what>\" ([a-z][a-z0-9_]* on both sides, at "
		    "most %d bytes)", name, SB_SERVICE_NAME_MAX);
		return (-1);
	}
	return (0);
}

/*
 * What plugin `plugin` may export under `name`: a well-formed name whose
 * prefix is its own name, and a table that says its size and version.
 */
int
sb_abi_service_check(const char *plugin, const char *name,
    const struct sb_service *table, char *err, size_t errlen)
{
	size_t	plen;

	if (sb_abi_service_name(name, err, errlen) == -1)
		return (-1);
	plen = plugin != NULL ? strlen(plugin) : 0;
	if (plen == 0 || strncmp(name, plugin, plen) != 0 ||
	    name[plen] != '.') {
		snprintf(err, errlen, "service %s must be named after its "
		    "exporter: \"%s.<what>\"", name,
		    plugin != NULL ? plugin : "?");
		return (-1);
	}
	if (table == NULL) {
		snprintf(err, errlen, "service %s has no table", name);
		return (-1);
	}
	if (table->size < sizeof(struct sb_service)) {
		snprintf(err, errlen, "service %s: table size %u is smaller "
		    "than its header's %zu", name, table->size,
		    sizeof(struct sb_service));
		return (-1);
	}
	if (table->version == 0) {
		snprintf(err, errlen, "service %s: version 0 (versions start "
		    "at 1)", name);
		return (-1);
	}
	return (0);
}
