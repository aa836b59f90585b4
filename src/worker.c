/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers: a launcher, and the worker that flushes click
 *	  counters and purges expired links in shorturl.database.
 *
 * The launcher is registered at server start (when the library is
 * preloaded, and not in binary-upgrade mode).  It connects to no database;
 * once a second it looks shorturl.database up in pg_database and, when the
 * database exists and no worker serves it, starts the worker for it.  A
 * worker connects to one database for its whole life, so this split lets
 * the database be created after the server starts, dropped, and created
 * again, without the worker failing in a loop or blocking the drop.
 *
 * The worker, once connected, sleeps on its latch and wakes
 *	- every shorturl.flush_interval to flush the counters (counters.c),
 *	- every shorturl.purge_interval to purge expired and exhausted links in
 *	  batches, one transaction each, with a pause between batches
 *	  (purge.c),
 *	- when a backend finds the counter table full (it raises a flag and
 *	  sets the latch),
 *	- on SIGHUP to reload its settings, and on SIGTERM to flush one last
 *	  time and exit.
 * It does nothing while the extension is not installed in its database
 * (or not yet at a version with links) and while the server is a standby.
 * An error in a flush or purge is logged, kept in shorturl.stats, and the
 * worker carries on; a flush that fails loses nothing.
 *
 * Exits: on SIGTERM (pg_terminate_backend, shutdown, DROP DATABASE) the
 * worker exits with code 0 and the launcher starts a new one when there is
 * a database to serve; on an unexpected error it exits with code 1 and the
 * postmaster restarts it after WORKER_RESTART_S.  The launcher always exits
 * with code 1, so it too comes back after pg_terminate_backend().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "counters.h"
#include "pg_shorturl.h"

/* How often the launcher looks for the database */
#define LAUNCHER_NAP_MS		1000

/* Seconds before the postmaster restarts a worker that failed */
#define WORKER_RESTART_S	5

/* Pause between two purge batches, so others get the table in between */
#define PURGE_PAUSE_MS		20

/* How long the worker naps on a standby before looking again */
#define STANDBY_NAP_MS		5000

PGDLLEXPORT void shorturl_launcher_main(Datum main_arg);
PGDLLEXPORT void shorturl_worker_main(Datum main_arg);

static object_access_hook_type prev_object_access_hook = NULL;

/*
 * drop_database_hook tells the worker to leave a database DROP DATABASE is
 * about to remove: dropdb() calls the hook before it waits for the other
 * sessions of the database to go.
 */
static void
drop_database_hook(ObjectAccessType access, Oid classId, Oid objectId,
				   int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == DatabaseRelationId)
		counters_note_database_drop(objectId);
}

/*
 * describe_worker fills in what the launcher and the worker share: both
 * connect (the launcher to no database), start once the server is
 * consistent (a standby has them too, idle until promoted), and are
 * restarted after a failure.
 */
static void
describe_worker(BackgroundWorker *worker, const char *function, const char *name)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_ConsistentState;
	worker->bgw_restart_time = WORKER_RESTART_S;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "pg_shorturl");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", name);
}

/*
 * worker_init registers the launcher and the DROP DATABASE hook; called
 * from _PG_init while shared_preload_libraries is processed.
 */
void
worker_init(void)
{
	BackgroundWorker worker;

	prev_object_access_hook = object_access_hook;
	object_access_hook = drop_database_hook;

	/* pg_upgrade's server must not run our transactions */
	if (IsBinaryUpgrade)
		return;

	describe_worker(&worker, "shorturl_launcher_main", "pg_shorturl launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------------
 * Launcher
 * ---------------------------------------------------------------------
 */

/* start_worker registers the worker of a database; NULL if it cannot */
static BackgroundWorkerHandle *
start_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	describe_worker(&worker, "shorturl_worker_main", "pg_shorturl worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	/* so the postmaster tells us when it starts or stops */
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("pg_shorturl: could not start the worker: no background worker slot free"),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

/*
 * find_database returns the OID of the database named name, or InvalidOid.
 * The launcher is connected to no database, so it reads the shared catalog
 * pg_database with a plain heap scan, without the catalog caches.
 */
static Oid
find_database(const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Oid			dboid = InvalidOid;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0 && db->datallowconn)
		{
			dboid = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboid;
}

/* worker_running tells whether a worker holds the worker slot */
static bool
worker_running(void)
{
	return counters_worker_pid() != 0;
}

/*
 * shorturl_launcher_main is the launcher's entry point.
 */
void
shorturl_launcher_main(Datum main_arg pg_attribute_unused())
{
	BackgroundWorkerHandle *handle = NULL;

	/* reload settings on SIGHUP; leave the loop on SIGTERM */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* no database: the launcher reads only the shared catalog pg_database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_shorturl launcher");

	/*
	 * Clicks saved at the last shutdown for a database that is not served
	 * now (dropped, renamed, or shorturl.database changed) would never be
	 * flushed: drop them.
	 */
	counters_discard_except(find_database(shorturl_database));

	while (!ShutdownRequestPending)
	{
		Oid			dboid;
		pid_t		pid;

		/* sleep a second, or until signalled; exit if the postmaster dies */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAP_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* process interrupts, including ProcSignalBarriers of DROP DATABASE */
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (ShutdownRequestPending)
			break;

		dboid = find_database(shorturl_database);

		/* forget a worker that has exited for good */
		if (handle != NULL &&
			GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			pfree(handle);
			handle = NULL;
		}

		/* the database was dropped or renamed: stop serving it */
		if (dboid != counters_served_database())
		{
			if (handle != NULL)
				TerminateBackgroundWorker(handle);
			if (!worker_running())
			{
				counters_set_served_database(InvalidOid);
				/* its pending clicks have no table left to go to */
				counters_discard_except(dboid);
			}
		}

		if (OidIsValid(dboid) && handle == NULL && !worker_running() &&
			!counters_database_drop_pending(dboid))
		{
			counters_set_served_database(dboid);
			handle = start_worker(dboid);
		}
	}

	/*
	 * Exit code 1, so the postmaster starts the launcher again after
	 * pg_terminate_backend() (at shutdown it starts nothing anyway).
	 */
	proc_exit(1);
}

/* ---------------------------------------------------------------------
 * Worker
 * ---------------------------------------------------------------------
 */

/* extension_ready tells whether this database has the store to work on */
static bool
extension_ready(void)
{
	Oid			nsp;
	Oid			relid;

	if (!OidIsValid(get_extension_oid("pg_shorturl", true)))
		return false;
	nsp = get_namespace_oid(SHORTURL_SCHEMA, true);
	if (!OidIsValid(nsp))
		return false;
	relid = get_relname_relid("links", nsp);
	/* a coordinator's links are on its shards, whose workers look after them */
	return OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_RELATION;
}

/*
 * in_transaction runs one unit of work in a transaction of its own.  An
 * error is logged and kept in the statistics, the transaction is rolled
 * back, and the worker carries on.  Returns the work's result, or -1.
 */
static int64
in_transaction(int64 (*work) (void *), void *arg, const char *activity)
{
	MemoryContext cxt = CurrentMemoryContext;
	int64		result = -1;

	PG_TRY();
	{
		/* a statement start time, so now() moves on between transactions */
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* SPI inside the work needs a snapshot */
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);

		result = extension_ready() ? work(arg) : 0;

		PopActiveSnapshot();
		CommitTransactionCommand();
		/* report the transaction's table statistics, idle again */
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* log it, as the server would for a failed statement */
		EmitErrorReport();
		FlushErrorState();
		/* roll back: the flush subtracts nothing, so nothing is lost */
		AbortCurrentTransaction();
		counters_note_error(edata->message);
		FreeErrorData(edata);
		pgstat_report_activity(STATE_IDLE, NULL);
		result = -1;
	}
	PG_END_TRY();
	return result;
}

static int64
flush_work(void *arg pg_attribute_unused())
{
	return counters_flush();
}

static int64
purge_work(void *arg)
{
	return purge_batch(*(bool *) arg, shorturl_purge_batch_size);
}

/*
 * purge_all deletes expired, then exhausted links, a batch per
 * transaction, pausing between batches; it flushes in between when a flush
 * falls due, and stops early when asked to exit.
 */
static void
purge_all(TimestampTz *next_flush)
{
	for (int pass = 0; pass < 2; pass++)
	{
		bool		exhausted = (pass == 1);

		for (;;)
		{
			int64		n = in_transaction(purge_work, &exhausted,
										   exhausted ? "purging exhausted links" : "purging expired links");

			if (n < shorturl_purge_batch_size)
				break;

			/* a short nap on the latch, so a backlog never hogs the table */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 PURGE_PAUSE_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ShutdownRequestPending)
				return;
			if (GetCurrentTimestamp() >= *next_flush)
			{
				(void) in_transaction(flush_work, NULL, "flushing click counters");
				*next_flush = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  shorturl_flush_interval);
			}
		}
	}
}

/* release_worker_slot frees the worker slot when the worker exits */
static void
release_worker_slot(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	counters_release_worker(MyProcPid);
}

/*
 * shorturl_worker_main is the worker's entry point; main_arg is the OID of
 * the database to serve.
 */
void
shorturl_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	TimestampTz next_flush;
	TimestampTz next_purge;

	/* reload settings on SIGHUP; flush and exit on SIGTERM */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* one worker at a time: leave quietly if another holds the slot */
	if (!counters_claim_worker(MyProcPid, MyLatch))
		proc_exit(0);
	before_shmem_exit(release_worker_slot, (Datum) 0);

	/*
	 * Serve the database.  The launcher said so before starting us, but
	 * after a crash the postmaster restarts us by itself, with shared
	 * memory (and the launcher's word) reset.
	 */
	counters_set_served_database(dboid);

	/* fails (and the postmaster retries) if the database went away */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_shorturl worker");

	/* the worker's SQL names everything, but pin the path all the same */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	next_flush = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), shorturl_flush_interval);
	next_purge = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 (int64) shorturl_purge_interval * 1000);

	while (!ShutdownRequestPending)
	{
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz wake = Min(next_flush, next_purge);
		long		timeout = 0;
		if (wake > now)
			timeout = (long) ((wake - now + 999) / 1000);
		if (RecoveryInProgress())
			timeout = STANDBY_NAP_MS;

		/* sleep until something is due, a backend needs room, or a signal */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* process interrupts, including ProcSignalBarriers of DROP DATABASE */
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* new intervals apply from now */
			now = GetCurrentTimestamp();
			next_flush = Min(next_flush, TimestampTzPlusMilliseconds(now, shorturl_flush_interval));
			next_purge = Min(next_purge, TimestampTzPlusMilliseconds(now, (int64) shorturl_purge_interval * 1000));
		}
		if (ShutdownRequestPending)
			break;

		/* a standby can neither flush nor purge: wait for promotion */
		if (RecoveryInProgress())
			continue;

		now = GetCurrentTimestamp();
		if (counters_take_flush_request() || now >= next_flush)
		{
			(void) in_transaction(flush_work, NULL, "flushing click counters");
			next_flush = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), shorturl_flush_interval);
		}
		if (now >= next_purge)
		{
			purge_all(&next_flush);
			next_purge = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 (int64) shorturl_purge_interval * 1000);
		}
	}

	/* last flush, unless the database is being dropped or read-only */
	if (!RecoveryInProgress() && !counters_database_drop_pending(MyDatabaseId))
		(void) in_transaction(flush_work, NULL, "flushing click counters at exit");

	proc_exit(0);
}
