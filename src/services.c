/*
 * Services between plugins (ABI 1.3): the registry of exported function
 * tables and the imports waiting for them.  Parent only, during setup.
 *
 * An export is staged on its plugin in setup() and committed with the
 * plugin's other declarations when its setup succeeds as a whole, so a
 * plugin that fails half-way exports nothing.  An import is staged too,
 * and resolved at the end of the importer's successful setup(), against
 * committed exports only: the importer's slot is written once, before the
 * workers fork, and every worker inherits it.  The table itself lives in
 * the exporter's library, which stays loaded for the life of the process.
 *
 * Names are checked by abi.c (pure, unit-tested); this file knows which
 * names are taken and by whom.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"

struct service {
	TAILQ_ENTRY(service)	list;
	char			*name;
	const struct sb_service	*table;		/* borrowed from the exporter */
	struct sb_plugin	*owner;
	int			committed;
};
TAILQ_HEAD(service_list, service);

struct import {
	TAILQ_ENTRY(import)	list;
	char			*name;
	uint32_t		min_version;
	const struct sb_service	**slot;		/* in the importer's library */
	struct sb_plugin	*owner;
	const struct service	*found;		/* once resolved */
};
TAILQ_HEAD(import_list, import);

static struct service_list	services = TAILQ_HEAD_INITIALIZER(services);
static struct import_list	imports = TAILQ_HEAD_INITIALIZER(imports);

static struct service	*service_find(const char *name, int committed_only);
static int		 depends_on(const struct sb_plugin *,
			    const struct sb_plugin *);

static struct service *
service_find(const char *name, int committed_only)
{
	struct service	*s;

	TAILQ_FOREACH(s, &services, list) {
		if (committed_only && !s->committed)
			continue;
		if (strcmp(s->name, name) == 0)
			return (s);
	}
	return (NULL);
}

/* Does p list dep's id in its descriptor's depends? */
static int
depends_on(const struct sb_plugin *p, const struct sb_plugin *dep)
{
	const char *const	*d;

	if (dep->d.id == NULL)
		return (0);
	for (d = p->d.depends; d != NULL && *d != NULL; d++) {
		if (strcmp(*d, dep->d.id) == 0)
			return (1);
	}
	return (0);
}

int
sb_services_export(struct sb_plugin *p, const char *name,
    const struct sb_service *table, char *err, size_t errlen)
{
	struct service	*s;

	if (sb_abi_service_check(p->name, name, table, err, errlen) == -1)
		return (-1);
	if ((s = service_find(name, 0)) != NULL) {
		snprintf(err, errlen, "service %s is already exported%s", name,
		    s->owner == p ? " by this plugin" : "");
		return (-1);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->name = strdup(name)) == NULL) {
		free(s);
		snprintf(err, errlen, "service %s: out of memory", name);
		return (-1);
	}
	s->table = table;
	s->owner = p;
	TAILQ_INSERT_TAIL(&services, s, list);
	return (0);
}

int
sb_services_import(struct sb_plugin *p, const char *name,
    uint32_t min_version, const struct sb_service **slot, char *err,
    size_t errlen)
{
	struct import	*im;

	if (sb_abi_service_name(name, err, errlen) == -1)
		return (-1);
	if (slot == NULL) {
		snprintf(err, errlen, "service %s: import without a slot",
		    name);
		return (-1);
	}
	*slot = NULL;
	if ((im = calloc(1, sizeof(*im))) == NULL ||
	    (im->name = strdup(name)) == NULL) {
		free(im);
		snprintf(err, errlen, "service %s: out of memory", name);
		return (-1);
	}
	im->min_version = min_version;
	im->slot = slot;
	im->owner = p;
	TAILQ_INSERT_TAIL(&imports, im, list);
	return (0);
}

/*
 * At the end of p's successful setup(): every import of p must name a
 * committed export at min_version or later, from a plugin p depends on
 * (so that it was set up first whatever the configuration order).  The
 * slots are written only when all of them resolve.
 */
int
sb_services_resolve(struct sb_plugin *p, char *err, size_t errlen)
{
	struct import	*im;
	struct service	*s;

	TAILQ_FOREACH(im, &imports, list) {
		if (im->owner != p)
			continue;
		if ((s = service_find(im->name, 1)) == NULL ||
		    s->owner->state != SB_PLUGIN_READY) {
			snprintf(err, errlen, "service %s is not exported by "
			    "any plugin that is set up; %s needs it (version "
			    "%u or later)", im->name, p->name,
			    im->min_version > 0 ? im->min_version : 1);
			return (-1);
		}
		if (s->table->version < im->min_version) {
			snprintf(err, errlen, "service %s is version %u; %s "
			    "needs at least %u", im->name, s->table->version,
			    p->name, im->min_version);
			return (-1);
		}
		if (!depends_on(p, s->owner)) {
			snprintf(err, errlen, "service %s is exported by %s "
			    "(%s), which %s must list in its depends", im->name,
			    s->owner->name, s->owner->d.id, p->name);
			return (-1);
		}
		im->found = s;
	}
	TAILQ_FOREACH(im, &imports, list) {
		if (im->owner == p)
			*im->slot = im->found->table;
	}
	return (0);
}

void
sb_services_commit(struct sb_plugin *p)
{
	struct service	*s;

	TAILQ_FOREACH(s, &services, list) {
		if (s->owner == p)
			s->committed = 1;
	}
}

/* p failed: whatever it staged goes.  Its slots (in its library, about
 * to be closed) are not touched. */
void
sb_services_unstage(struct sb_plugin *p)
{
	struct service	*s, *snext;
	struct import	*im, *inext;

	for (s = TAILQ_FIRST(&services); s != NULL; s = snext) {
		snext = TAILQ_NEXT(s, list);
		if (s->owner != p || s->committed)
			continue;
		TAILQ_REMOVE(&services, s, list);
		free(s->name);
		free(s);
	}
	for (im = TAILQ_FIRST(&imports); im != NULL; im = inext) {
		inext = TAILQ_NEXT(im, list);
		if (im->owner != p)
			continue;
		TAILQ_REMOVE(&imports, im, list);
		free(im->name);
		free(im);
	}
}

/* {"exports": [{name, version}], "imports": [{name, min_version}]}. */
json_t *
sb_services_json(const struct sb_plugin *p)
{
	struct service	*s;
	struct import	*im;
	json_t		*ex, *in;

	ex = json_array();
	TAILQ_FOREACH(s, &services, list) {
		if (s->owner == p)
			json_array_append_new(ex, json_pack("{s:s, s:I}",
			    "name", s->name, "version",
			    (json_int_t)s->table->version));
	}
	in = json_array();
	TAILQ_FOREACH(im, &imports, list) {
		if (im->owner == p)
			json_array_append_new(in, json_pack("{s:s, s:I}",
			    "name", im->name, "min_version",
			    (json_int_t)im->min_version));
	}
	return (json_pack("{s:o, s:o}", "exports", ex, "imports", in));
}
