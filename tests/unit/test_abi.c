/*
 * Unit tests for the plugin descriptor checks and the console panel
 * checks (src/abi.c).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sb.h"

static int
ok_setup(struct sb_plugin *p, const struct sb_host_api *api)
{
	(void)p;
	(void)api;
	return (SB_OK);
}

static struct sb_plugin_desc
good(void)
{
	struct sb_plugin_desc	d;

	memset(&d, 0, sizeof(d));
	d.abi_major = SB_ABI_MAJOR;
	d.abi_minor = SB_ABI_MINOR;
	d.size = sizeof(d);
	d.id = "org.example.good";
	d.name = "good";
	d.version = "1.0.0";
	d.setup = ok_setup;
	return (d);
}

static int
check(const struct sb_plugin_desc *d, uint16_t major, uint16_t minor,
    char *err, size_t len)
{
	err[0] = '\0';
	return (sb_abi_check(d, major, minor, err, len));
}

static void
test_good(void **state)
{
	struct sb_plugin_desc	d = good();
	char			err[256];

	(void)state;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void
test_null(void **state)
{
	char	err[256];

	(void)state;
	assert_int_equal(check(NULL, 1, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no descriptor"));
}

static void
test_major(void **state)
{
	struct sb_plugin_desc	d = good();
	char			err[256];

	(void)state;
	d.abi_major = SB_ABI_MAJOR + 1;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "ABI major"));
	d.abi_major = 0;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
}

static void
test_minor(void **state)
{
	struct sb_plugin_desc	d = good();
	char			err[256];

	(void)state;
	/* A newer plugin minor on this host: refused. */
	d.abi_minor = SB_ABI_MINOR + 1;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "upgrade the host"));
	/* An older plugin minor on a newer host: accepted, and its
	 * descriptor may be the size its own minor defined. */
	d = good();
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR + 3, err,
	    sizeof(err)), 0);
	d.size = sizeof(d) + 64;	/* a newer host's bigger struct */
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR + 3, err,
	    sizeof(err)), 0);
}

static void
test_size(void **state)
{
	struct sb_plugin_desc	d = good();
	char			err[256];

	(void)state;
	d.size = sizeof(d) - 8;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "smaller"));
	/* Same minor, but a size this host does not know. */
	d.size = sizeof(d) + 8;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match"));
}

static void
test_identity(void **state)
{
	struct sb_plugin_desc	d;
	char			err[256];
	const char		*bad_ids[] = { NULL, "", "nodots", ".lead",
				    "trail.", "a..b", "Upper.case", "sp ace.x" };
	const char		*bad_names[] = { NULL, "", "Upper", "9lead",
				    "has-dash", "waytoolongnamewaytoolongname"
				    "waytoolong" };
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		d = good();
		d.id = bad_ids[i];
		assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "id"));
	}
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		d = good();
		d.name = bad_names[i];
		assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "name"));
	}
	d = good();
	d.id = "io.switchboard.a-b_c.9";
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), 0);
	d.version = "";
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "version"));
}

static void
test_mandatory_setup(void **state)
{
	struct sb_plugin_desc	d = good();
	char			err[256];

	(void)state;
	d.setup = NULL;
	assert_int_equal(check(&d, SB_ABI_MAJOR, SB_ABI_MINOR, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "missing mandatory slot setup");
}

static void
test_api_has(void **state)
{
	struct sb_host_api	api;

	(void)state;
	memset(&api, 0, sizeof(api));
	api.size = offsetof(struct sb_host_api, publish);
	api.log = (void (*)(struct sb_plugin *, enum sb_log_level,
	    const char *, ...))1;
	assert_true(SB_API_HAS(&api, log));
	/* Beyond the size the host says it has: absent, even if set. */
	api.db_query = (struct sb_db_res *(*)(struct sb_plugin *,
	    const char *, int, const char *const *))1;
	assert_false(SB_API_HAS(&api, db_query));
	api.size = sizeof(api);
	assert_true(SB_API_HAS(&api, db_query));
	assert_false(SB_API_HAS(&api, publish));	/* NULL slot */
}

static struct sb_console_panel
good_panel(void)
{
	struct sb_console_panel	c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.id = "notes";
	c.label = "Example notes";
	c.dir = "console";
	c.script = "panel.js";
	return (c);
}

static void
test_panel(void **state)
{
	struct sb_console_panel	c;
	char			err[256];
	size_t			i;
	const char		*good_ids[] = { "a", "notes-2", "x0123456789"
				    "012345678901234567890" };	/* 32 */
	const char		*bad_ids[] = { NULL, "", "Notes", "2notes",
				    "-x", "a_b", "a.b", "x0123456789"
				    "0123456789012345678901" };
	const char		*good_scripts[] = { "panel.js", "panel.mjs",
				    "js/panel.js", "a-b_c.1.js" };
	const char		*bad_scripts[] = { NULL, "", "../x.js",
				    "a/../x.js", "x..js", "/abs.js", "./x.js",
				    ".hidden.js", "a//b.js", "a/.b/c.js", "panel",
				    "panel.css", "panel.js/", ".js", "p anel.js",
				    "p%2e.js", "p?.js" };
	const char		*bad_labels[] = { NULL, "",
				    "01234567890123456789012345678901234567890",
				    "tab\there", "bad \xff utf8", "cut \xc3" };

	(void)state;
	c = good_panel();
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), 0);
	c.permission = "example.read|system.read";
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), 0);
	c.permission = "";
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "permission"));

	assert_int_equal(sb_abi_panel_check(NULL, err, sizeof(err)), -1);
	c = good_panel();
	c.size = offsetof(struct sb_console_panel, spare);
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "smaller"));

	for (i = 0; i < sizeof(good_ids) / sizeof(good_ids[0]); i++) {
		c = good_panel();
		c.id = good_ids[i];
		assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), 0);
	}
	for (i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		c = good_panel();
		c.id = bad_ids[i];
		assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "id"));
	}
	for (i = 0; i < sizeof(good_scripts) / sizeof(good_scripts[0]); i++) {
		c = good_panel();
		c.script = good_scripts[i];
		assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), 0);
	}
	for (i = 0; i < sizeof(bad_scripts) / sizeof(bad_scripts[0]); i++) {
		c = good_panel();
		c.script = bad_scripts[i];
		assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "script"));
	}
	for (i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
		c = good_panel();
		c.label = bad_labels[i];
		assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "label"));
	}
	/* 40 bytes, not characters: "é" is two. */
	c = good_panel();
	c.label = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), 0);
	c.dir = NULL;
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "dir"));
	c.dir = "";
	assert_int_equal(sb_abi_panel_check(&c, err, sizeof(err)), -1);
}

static void
test_service_names(void **state)
{
	struct sb_service	t = { .size = sizeof(struct sb_service),
				    .version = 1 };
	char			err[256];
	size_t			i;
	const char		*good_names[] = { "concierge.thread",
				    "customers.directory", "a.b", "x_1.y_2",
				    /* 64 bytes */
				    "concierge.x12345678901234567890123456789"
				    "012345678901234567890123" };
	const char		*bad_names[] = { NULL, "", "concierge",
				    "concierge.", ".thread", "Concierge.thread",
				    "concierge.Thread", "concierge.thread.v2",
				    "concierge-x.thread", "1concierge.thread",
				    "concierge._thread", "concierge.thr ead",
				    /* 65 bytes */
				    "concierge.x12345678901234567890123456789"
				    "0123456789012345678901234" };

	(void)state;
	for (i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++) {
		assert_int_equal(strlen(good_names[i]) <= 64, 1);
		assert_int_equal(sb_abi_service_name(good_names[i], err,
		    sizeof(err)), 0);
	}
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		assert_int_equal(sb_abi_service_name(bad_names[i], err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "service name"));
	}

	/* The prefix is the exporter's own name, whole. */
	assert_int_equal(sb_abi_service_check("concierge", "concierge.thread",
	    &t, err, sizeof(err)), 0);
	assert_int_equal(sb_abi_service_check("calls", "concierge.thread",
	    &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "named after its exporter"));
	assert_int_equal(sb_abi_service_check("concierge", "concierges.thread",
	    &t, err, sizeof(err)), -1);
	assert_int_equal(sb_abi_service_check("concierge_x",
	    "concierge.thread", &t, err, sizeof(err)), -1);
	assert_int_equal(sb_abi_service_check("concierge", "concierge.Thread",
	    &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "service name"));

	/* The table. */
	assert_int_equal(sb_abi_service_check("concierge", "concierge.thread",
	    NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no table"));
	t.size = 0;
	assert_int_equal(sb_abi_service_check("concierge", "concierge.thread",
	    &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "size"));
	t.size = sizeof(t);
	t.version = 0;
	assert_int_equal(sb_abi_service_check("concierge", "concierge.thread",
	    &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "version 0"));
}

/* A service table as an exporter of version 2 declares it. */
struct svc_v2 {
	struct sb_service	hdr;
	int			(*one)(void);
	int			(*two)(void);
	void			*spare[2];
};

static int
svc_fn(void)
{
	return (1);
}

static void
test_service_has(void **state)
{
	struct svc_v2	t;

	(void)state;
	memset(&t, 0, sizeof(t));
	t.hdr.version = 1;
	/* An older exporter's table ends before `two`. */
	t.hdr.size = offsetof(struct svc_v2, two);
	t.one = svc_fn;
	t.two = svc_fn;
	assert_true(SB_SERVICE_HAS(&t, struct svc_v2, one));
	assert_false(SB_SERVICE_HAS(&t, struct svc_v2, two));
	t.hdr.size = sizeof(t);
	assert_true(SB_SERVICE_HAS(&t, struct svc_v2, two));
	t.one = NULL;
	assert_false(SB_SERVICE_HAS(&t, struct svc_v2, one));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_major),
		cmocka_unit_test(test_minor),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_mandatory_setup),
		cmocka_unit_test(test_api_has),
		cmocka_unit_test(test_panel),
		cmocka_unit_test(test_service_names),
		cmocka_unit_test(test_service_has),
	};

	return (cmocka_run_group_tests_name("abi", tests, NULL, NULL));
}
