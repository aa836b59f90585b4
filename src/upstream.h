/*-------------------------------------------------------------------------
 *
 * upstream.h
 *	  A hot standby's libpq connection to its primary (upstream.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_UPSTREAM_H
#define SHORTURL_UPSTREAM_H

#include "libpq-fe.h"
#include "datatype/timestamp.h"

/* Room for a failure's message (libpq's reason is cut to fit) */
#define UPSTREAM_WHY_SIZE	512

typedef struct upstream
{
	PGconn	   *conn;			/* NULL: not connected */
	bool		busy;			/* an exchange was cut short: drop, then retry */
	bool		interruptible;	/* a backend: query cancel ends a wait */
	const char *application_name;
	const char *timeout_name;	/* the setting, for a message */
	char		why[UPSTREAM_WHY_SIZE]; /* the last failure's message */
} upstream;

extern const char *upstream_conninfo(void);
extern TimestampTz upstream_deadline(int timeout_ms);
extern bool upstream_connect(upstream *u, const char *dbname, TimestampTz deadline);
extern char *upstream_call(upstream *u, const char *sql, int nparams,
						   const char *const *params, TimestampTz deadline);
extern char *upstream_call_typed(upstream *u, const char *sql, int nparams,
								 const Oid *types, const char *const *params,
								 const int *lengths, const int *formats,
								 TimestampTz deadline);
extern bool upstream_prepare(upstream *u, const char *name, const char *sql, int nparams,
							 TimestampTz deadline);
extern char *upstream_call_prepared(upstream *u, const char *name, int nparams,
									const char *const *params, TimestampTz deadline);
extern bool upstream_finish(upstream *u, TimestampTz deadline);
extern void upstream_close(upstream *u);

#endif							/* SHORTURL_UPSTREAM_H */
