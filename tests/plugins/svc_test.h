/*
 * The service the svcx test plugin exports and svcy (and the refused
 * svcz, svcm) import: "svcx.rows", version 2.
 */
#ifndef SVC_TEST_H
#define SVC_TEST_H

#include <switchboard/plugin.h>

#define SVCX_ROWS		"svcx.rows"
#define SVCX_ROWS_VERSION	2

struct svcx_rows {
	struct sb_service	hdr;
	/* Insert a row labelled label into svcx_rows, on the caller's
	 * connection and in its transaction.  Returns {id, txid, backend}
	 * (caller owns) or NULL on a database error. */
	json_t		*(*add)(struct sb_plugin *caller, const char *label);
	void		*spare[4];
};

#endif
