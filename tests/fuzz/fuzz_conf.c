/*
 * libFuzzer harness for the configuration parser (src/conf.c): any bytes
 * must parse or fail with a message, never crash or leak, and whatever
 * parses must be readable through every accessor.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Iinclude -Isrc -o build/fuzz/fuzz_conf tests/fuzz/fuzz_conf.c src/conf.c
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

struct walk {
	const struct sb_conf	*conf;
	const char		*section;
};

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	key_cb(const char *, const char *, void *);
static void	section_cb(const char *, void *);

static void
key_cb(const char *key, const char *value, void *arg)
{
	struct walk	*w = arg;
	const char	*v;
	int		 ok;

	/* What foreach shows, get must find, and nothing else. */
	if ((v = sb_conf_get(w->conf, w->section, key)) == NULL ||
	    strcmp(v, value) != 0)
		abort();
	(void)sb_conf_bool(w->conf, w->section, key, 0, &ok);
	(void)sb_conf_int(w->conf, w->section, key, 0, &ok);
	if (strlen(value) > SB_CONF_LINE_MAX)
		abort();
}

static void
section_cb(const char *section, void *arg)
{
	struct walk	*w = arg;

	w->section = section;
	sb_conf_foreach_key(w->conf, section, key_cb, w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_conf	*conf;
	struct walk	 w;
	char		 err[256];

	err[0] = '\0';
	conf = sb_conf_parse((const char *)data, size, "fuzz.conf", err,
	    sizeof(err));
	if (conf == NULL) {
		/* Every refusal says why. */
		if (err[0] == '\0')
			abort();
		return (0);
	}
	w.conf = conf;
	w.section = NULL;
	sb_conf_foreach_section(conf, section_cb, &w);
	if (sb_conf_set(conf, "host", "fuzz", "1") != 0 ||
	    sb_conf_int(conf, "host", "fuzz", 0, NULL) != 1)
		abort();
	sb_conf_free(conf);
	return (0);
}
