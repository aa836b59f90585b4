/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The background workers: the launcher (launcher.c) and the worker of
 *	  one database (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_WORKER_H
#define SHORTURL_WORKER_H

#include "postmaster/bgworker.h"

/* Seconds before the postmaster restarts a launcher that failed */
#define LAUNCHER_RESTART_S	1

extern void launcher_init(void);
extern void worker_describe(BackgroundWorker *worker, const char *function,
							const char *name);

PGDLLEXPORT void shorturl_launcher_main(Datum main_arg);
PGDLLEXPORT void shorturl_worker_main(Datum main_arg);

#endif							/* SHORTURL_WORKER_H */
