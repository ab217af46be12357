/*
 * The checks a plugin descriptor must pass before the host calls anything
 * in it.  Pure code, unit-tested in tests/unit/test_abi.c.
 *
 * Rules: the major version must match exactly; a plugin built against a
 * newer minor than the host is refused (it may rely on slots this host
 * lacks); the descriptor must be at least as large as the first ABI 1.0
 * descriptor and, at the host's own minor, exactly the host's size; the
 * identity fields and the setup slot are mandatory.
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sb.h"

/* Size of the descriptor as ABI 1.0 defined it: it may only grow. */
#define SB_DESC_SIZE_1_0	sizeof(struct sb_plugin_desc)

static int	valid_id(const char *);
static int	valid_name(const char *);

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
