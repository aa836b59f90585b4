/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The worker of one database: it flushes the database's click counters
 *	  and purges its expired and exhausted links.
 *
 * The launcher (launcher.c) starts a worker for each database that needs
 * one.  The worker connects to its database for its whole life and reads,
 * like worker_spi, as a recipe:
 *	1. publish itself in the database's slot (dbstate.c), so backends can
 *	   wake it;
 *	2. look whether the extension is installed; if not, say so in the slot
 *	   and leave (the launcher looks again when CREATE EXTENSION runs);
 *	3. sleep on its latch until a flush or purge falls due, a backend asks
 *	   for a flush (the counter table is full), or a signal comes;
 *	4. flush every shorturl.flush_interval, counted from the start of the
 *	   previous flush, and purge every shorturl.purge_interval in batches of
 *	   a transaction each, flushing in between when a flush falls due;
 *	5. leave after a round when other databases wait for a worker slot
 *	   (shorturl.max_workers), when the extension is dropped, or, after one
 *	   last flush, when the database is no longer served (it became a
 *	   template or stopped allowing connections).
 * An error in a flush or purge is logged, kept in shorturl.stats, and the
 * worker carries on; a flush that fails loses nothing.
 *
 * On a hot standby the worker ships its database's clicks to the primary
 * every shorturl.ship_interval instead (ship.c), and purges nothing; when
 * the standby is promoted it settles the batch it had in flight and
 * leaves, for a worker of a primary.
 *
 * Signals.  SIGTERM (shutdown, pg_terminate_backend, DROP DATABASE) uses
 * die(), as the anchors' workers do: a worker waiting on a lock or running
 * SQL ends at the next interrupt check, its transaction aborted (and its
 * flush with it, losing nothing).  A worker idle on its latch leaves
 * quietly with exit code 0.  At a clean shutdown the postmaster saves what
 * is still pending (counters.c), so the worker need not flush on its way
 * out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "dbstate.h"
#include "flush.h"
#include "pg_shorturl.h"
#include "purge.h"
#include "ship.h"
#include "worker.h"

/* Pause between two purge batches, so others get the table in between */
#define PURGE_PAUSE_MS		20

/* How often orphaned counts are looked for and the analytics job runs */
#define ORPHAN_SWEEP_MS		(60 * 60 * 1000)

static db_state *my_db = NULL;

/* When a flush last wrote the dimensions and visitors (0: never) */
static TimestampTz analytics_flushed = 0;

/*
 * worker_describe fills in what the launcher and the workers share: they
 * connect (the launcher to no database) and start once the server is
 * consistent (a standby has a launcher too, idle until promoted).
 */
void
worker_describe(BackgroundWorker *worker, const char *function, const char *name)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_ConsistentState;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "pg_shorturl");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", name);
}

/*
 * extension_ready tells whether this database has the store to work on:
 * pg_shorturl installed, at a version with the tables the worker writes.
 */
static bool
extension_ready(void)
{
	Oid			nsp;

	if (!OidIsValid(get_extension_oid("pg_shorturl", true)))
		return false;
	nsp = get_namespace_oid(SHORTURL_SCHEMA, true);
	return OidIsValid(nsp) &&
		get_rel_relkind(get_relname_relid("links", nsp)) == RELKIND_RELATION &&
		OidIsValid(get_relname_relid("visit_counts", nsp));
}

/*
 * extension_ready_locked is extension_ready() for a transaction that is
 * about to work on the tables.  It first takes a share lock on the
 * extension, the lock DROP EXTENSION takes exclusively before any other:
 * a drop then waits for the work, or the work for the drop (and sees the
 * extension gone), instead of the two locking the tables in different
 * orders and deadlocking.
 */
static bool
extension_ready_locked(void)
{
	Oid			ext = get_extension_oid("pg_shorturl", true);

	if (!OidIsValid(ext))
		return false;
	/* the lock's acquisition also reads the catalog changes it waited for */
	LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
	return extension_ready();
}

/*
 * log_error writes an error caught earlier to the server log, as the
 * server would for a failed statement, and carries on.
 */
static void
log_error(ErrorData *edata)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		ThrowErrorData(edata);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
}

/*
 * in_transaction runs one unit of work in a transaction of its own.  An
 * error is logged and kept in the statistics, the transaction is rolled
 * back, and the worker carries on.  Returns the work's result, or -1;
 * *ready says whether the extension was there.
 */
static int64
in_transaction(int64 (*work) (void *), void *arg, const char *activity, bool *ready)
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

		*ready = extension_ready_locked();
		result = *ready ? work(arg) : 0;

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
		FlushErrorState();
		/* roll back: the flush settles nothing, so nothing is lost */
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);

		/*
		 * DROP EXTENSION may have committed while the work waited for a
		 * lock: then the error is no failure, and the worker leaves.
		 */
		StartTransactionCommand();
		*ready = extension_ready();
		CommitTransactionCommand();
		if (*ready)
		{
			log_error(edata);
			dbstate_note_error(my_db, edata->message);
		}
		FreeErrorData(edata);
		result = -1;
	}
	PG_END_TRY();
	return result;
}

static int64
flush_work(void *arg)
{
	return flush_clicks(0, flush_partitions(), *(bool *) arg);
}

static int64
purge_work(void *arg)
{
	return purge_batch(*(purge_kind *) arg, shorturl_purge_batch_size);
}

/*
 * quit_if_asked leaves quietly when a SIGTERM arrived while the worker was
 * idle, and otherwise processes interrupts (config reload included).
 */
static void
quit_if_asked(void)
{
	if (ProcDiePending)
		proc_exit(0);
	/* process interrupts, including ProcSignalBarriers of DROP DATABASE */
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * nap sleeps on the latch for at most ms milliseconds.  Not at all when a
 * reload or a stop is waiting: a wait inside the round (the primary's
 * answer, upstream.c; a lock) may have reset the latch the signal set, and
 * the worker would then sleep out the whole interval (up to
 * shorturl.ship_interval on a standby) before it looked at the signal.
 */
static void
nap(long ms)
{
	if (ConfigReloadPending || ProcDiePending)
		ms = 0;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Max(ms, 0), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	quit_if_asked();
}

/*
 * flush_now runs one flush and returns when the next one is due.  It
 * writes the dimensions and visitors too when all is set, when
 * shorturl.analytics_flush_interval has passed since it last did, or when
 * either of their tables is half full.
 */
static TimestampTz
flush_now(bool *ready, bool all)
{
	TimestampTz started = GetCurrentTimestamp();
	bool		analytics = all || analytics_filling() ||
		started >= TimestampTzPlusMilliseconds(analytics_flushed, shorturl_analytics_flush_interval);

	pg_atomic_write_u32(&my_db->flush_requested, 0);
	/* a flush that failed wrote nothing: the next one tries again */
	if (in_transaction(flush_work, &analytics, "flushing click counters", ready) >= 0 && analytics)
		analytics_flushed = started;
	return TimestampTzPlusMilliseconds(started, shorturl_flush_interval);
}

/*
 * purge_all deletes expired, then exhausted links (and, when due, hourly:
 * orphaned counts, then runs the analytics job), a batch per transaction, pausing between batches.  Settings
 * changed by a reload apply from the next batch; a flush falling due is
 * run in between; a SIGTERM stops it.
 */
static void
purge_all(TimestampTz *next_flush, bool orphans, bool *ready)
{
	purge_kind	kinds[4] = {PURGE_EXPIRED, PURGE_EXHAUSTED, PURGE_ORPHANS, PURGE_ANALYTICS};
	const char *what[4] = {"purging expired links", "purging exhausted links",
	"deleting orphaned counts", "merging and expiring analytics"};

	for (int pass = 0; pass < (orphans ? 4 : 2); pass++)
	{
		for (;;)
		{
			int64		n = in_transaction(purge_work, &kinds[pass], what[pass], ready);

			if (!*ready || n < shorturl_purge_batch_size)
				break;
			/* a short nap, so a backlog never hogs the table */
			nap(PURGE_PAUSE_MS);
			if (GetCurrentTimestamp() >= *next_flush ||
				pg_atomic_read_u32(&my_db->flush_requested))
				*next_flush = flush_now(ready, false);
		}
	}
}

/* leave clears the worker's entry in its database's slot */
static void
leave(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	dbstate_lock(true);
	if (my_db->worker_pid == MyProcPid)
	{
		my_db->worker_pid = 0;
		my_db->worker_latch = NULL;
	}
	dbstate_unlock();
}

/*
 * ship_round runs one round of shipping (ship_now()); an error (an altered
 * table, the extension going) is logged and kept in the statistics, as
 * in_transaction() does for a flush, and the worker carries on.  Returns
 * whether the primary could be reached.
 */
static bool
ship_round(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool reached = false;

	pgstat_report_activity(STATE_RUNNING, "shipping clicks to the primary");
	PG_TRY();
	{
		reached = ship_now(my_db);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		log_error(edata);
		dbstate_note_error(my_db, edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return reached;
}

/*
 * ship_loop is the worker's life on a standby (see ship.c): a round every
 * shorturl.ship_interval, or sooner when a backend finds the counter table
 * full, until the standby is promoted, the extension goes, the database is
 * no longer served, other databases wait for a worker, or shipping is
 * turned off (shorturl.ship_interval = 0: one last round first).
 */
static void
ship_loop(void)
{
	TimestampTz next_ship = GetCurrentTimestamp();
	bool		ready = true;
	bool		reached = true;

	while (RecoveryInProgress())
	{
		TimestampTz now;
		bool		leaving;
		bool		asked;

		/* the extension may come and go with replay */
		StartTransactionCommand();
		ready = extension_ready();
		CommitTransactionCommand();
		if (!ready)
			break;

		/*
		 * A backend's request comes when the table is full; after a failure
		 * it waits for the interval, so a primary that is down is not
		 * hammered.
		 */
		now = GetCurrentTimestamp();
		asked = pg_atomic_read_u32(&my_db->flush_requested) != 0;
		if ((asked && reached) || now >= next_ship)
		{
			pg_atomic_write_u32(&my_db->flush_requested, 0);
			reached = ship_round();
			next_ship = TimestampTzPlusMilliseconds(now, Max(shorturl_ship_interval, 1));
		}

		dbstate_lock(true);
		my_db->ext = DBEXT_PRESENT;
		my_db->due_at = next_ship;
		leaving = my_db->leaving;
		dbstate_unlock();
		/* no longer served, or shipping turned off: one last round, then go */
		if (leaving || shorturl_ship_interval == 0)
		{
			(void) ship_round();
			break;
		}
		/* make way for databases waiting for a worker */
		if (dbstate_waiting() > 0)
			break;

		/* sleep until the next round, a backend needing room, or a signal */
		now = GetCurrentTimestamp();
		nap(next_ship > now ? (long) ((next_ship - now + 999) / 1000) : 0);
		/* a shorter interval from a reload applies now */
		next_ship = Min(next_ship, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  Max(shorturl_ship_interval, 1)));
	}
	/* promoted: what only this worker holds of its batch stays here */
	if (ready && !RecoveryInProgress())
		ship_hand_over(my_db);
	ship_disconnect();
	dbstate_lock(true);
	my_db->ext = ready ? DBEXT_PRESENT : DBEXT_ABSENT;
	/* promoted: a worker of the primary is due at once */
	my_db->due_at = GetCurrentTimestamp();
	dbstate_unlock();
	proc_exit(0);
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
	TimestampTz next_orphans;
	bool		ready = true;
	bool		leaving = false;

	/* reload settings on SIGHUP; die() on SIGTERM, as a backend does */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* 1. publish ourselves: one worker per database */
	dbstate_lock(true);
	my_db = dbstate_find(dboid);
	if (my_db == NULL || my_db->worker_pid != 0 || my_db->dropping)
	{
		dbstate_unlock();
		proc_exit(0);
	}
	my_db->worker_pid = MyProcPid;
	my_db->worker_latch = MyLatch;
	my_db->served_at = GetCurrentTimestamp();
	/* due until a round ends, so a worker killed mid-round is replaced */
	my_db->due_at = my_db->served_at;
	dbstate_unlock();
	before_shmem_exit(leave, (Datum) 0);

	/* fails (and the launcher tries later) if the database went away */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_shorturl worker");

	/* the worker's SQL names everything, but pin the path all the same */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/* a standby ships; once promoted, the first flush settles its batch */
	if (RecoveryInProgress())
		ship_loop();

	next_flush = GetCurrentTimestamp();
	next_purge = TimestampTzPlusMilliseconds(next_flush, (int64) shorturl_purge_interval * 1000);
	next_orphans = TimestampTzPlusMilliseconds(next_flush, ORPHAN_SWEEP_MS);

	for (;;)
	{
		TimestampTz now;

		/* 2. the extension may come and go */
		if (!ready)
			break;

		/* 4. whatever is due */
		now = GetCurrentTimestamp();
		if (pg_atomic_read_u32(&my_db->flush_requested) || now >= next_flush)
			next_flush = flush_now(&ready, false);
		if (ready && GetCurrentTimestamp() >= next_purge)
		{
			bool		orphans = GetCurrentTimestamp() >= next_orphans;

			purge_all(&next_flush, orphans, &ready);
			next_purge = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 (int64) shorturl_purge_interval * 1000);
			if (orphans)
				next_orphans = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ORPHAN_SWEEP_MS);
		}

		/* when the launcher needs this worker's slot, or for its next turn */
		dbstate_lock(true);
		my_db->ext = ready ? DBEXT_PRESENT : DBEXT_ABSENT;
		my_db->due_at = Min(next_flush, next_purge);
		leaving = my_db->leaving;
		dbstate_unlock();

		/* 5. no longer served: write what is pending, then go */
		if (leaving)
		{
			if (ready)
				(void) flush_now(&ready, true);
			break;
		}
		/* make way for databases waiting for a worker */
		if (!ready || dbstate_waiting() > 0)
			break;

		/* 3. sleep until something is due, a backend needs room, or a signal */
		now = GetCurrentTimestamp();
		{
			TimestampTz wake = Min(next_flush, next_purge);

			nap(wake > now ? (long) ((wake - now + 999) / 1000) : 0);
		}
		/* a shorter interval from a reload applies now */
		now = GetCurrentTimestamp();
		next_flush = Min(next_flush, TimestampTzPlusMilliseconds(now, shorturl_flush_interval));
		next_purge = Min(next_purge, TimestampTzPlusMilliseconds(now, (int64) shorturl_purge_interval * 1000));
	}

	dbstate_lock(true);
	my_db->ext = ready ? DBEXT_PRESENT : DBEXT_ABSENT;
	dbstate_unlock();
	/* the extension is gone: no flush will take its dimensions and visitors */
	if (!ready)
		(void) analytics_discard_database(MyDatabaseId);
	proc_exit(0);
}
