/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: it starts a worker for each database that has
 *	  pg_shorturl, as autovacuum's launcher does for its workers.
 *
 * The launcher is registered at server start (when the library is
 * preloaded, and not in binary-upgrade mode) and connects to no database.
 * Once a second, or when a backend wakes it, it
 *	1. reads pg_database, gives each database that allows connections (and
 *	   is no template, and passes shorturl.database) a slot in shared
 *	   memory (dbstate.c), and frees the slots of databases that are gone,
 *	   dropping their unflushed clicks;
 *	2. checks its workers through their BackgroundWorkerHandles;
 *	3. stops the worker of a database that DROP DATABASE is removing;
 *	4. starts workers, at most shorturl.max_workers at a time, for the
 *	   databases that need one: not looked at yet, or with the extension
 *	   and work due (a flush, a purge, or a backend asking).  A database
 *	   without the extension is not looked at again until CREATE EXTENSION
 *	   runs there (an object access hook tells the launcher).  When more
 *	   databases need a worker than there are slots, workers leave after a
 *	   round and the databases take turns, longest-waiting first.
 * Workers are dynamic and never restarted by the postmaster: the launcher
 * decides.  Templates are skipped, since a connection to a template blocks
 * CREATE DATABASE from it.
 *
 * Exits.  At shutdown the postmaster sends SIGTERM and the launcher exits
 * with code 0.  A SIGTERM from anyone else (pg_terminate_backend) makes it
 * exit with code 1, so the postmaster starts it again after
 * LAUNCHER_RESTART_S: the signal's sender tells the two apart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "counters.h"
#include "dbstate.h"
#include "pg_shorturl.h"
#include "urlcache.h"
#include "worker.h"

/* How often the launcher looks at the databases when nothing wakes it */
#define LAUNCHER_NAP_MS		1000

/*
 * After DROP DATABASE began for a database, how long the launcher keeps
 * its worker away, in case the drop fails and the database stays.
 */
#define DROP_GRACE_MS		10000

/* A database as pg_database lists it */
typedef struct listed_db
{
	Oid			oid;
	bool		eligible;		/* allows connections, no template, allowed */
} listed_db;

/* The launcher's workers: handles are process-local */
typedef struct running_worker
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
} running_worker;

static object_access_hook_type prev_object_access_hook = NULL;
static bool extension_created = false;
static bool xact_callback_registered = false;
static volatile sig_atomic_t stop_requested = false;
static volatile sig_atomic_t stop_by_postmaster = false;

/*
 * extension_created_callback tells the launcher, once a transaction that
 * created an extension commits, to look at this database again.
 */
static void
extension_created_callback(XactEvent event, void *arg pg_attribute_unused())
{
	db_state   *db;

	if (!extension_created)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		extension_created = false;
	if (event != XACT_EVENT_COMMIT)
		return;
	extension_created = false;
	db = dbstate_mine();
	if (db == NULL)
		return;
	dbstate_lock(true);
	if (db->ext == DBEXT_ABSENT)
		db->ext = DBEXT_UNKNOWN;
	dbstate_unlock();
	dbstate_wake_launcher();
}

/*
 * object_access tells the launcher what backends see first: DROP DATABASE
 * is about to remove a database (dropdb() calls the hook before it waits
 * for the database's other sessions), and CREATE EXTENSION pg_shorturl ran
 * in a database the launcher thought had none.
 */
static void
object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId,
			  void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (!dbstate_available())
		return;
	if (access == OAT_DROP && classId == DatabaseRelationId)
		dbstate_note_drop(objectId);
	else if (access == OAT_POST_CREATE && classId == ExtensionRelationId &&
			 OidIsValid(MyDatabaseId))
	{
		/*
		 * Any extension (the new one's name is not visible yet within the
		 * creating command, and a needless look costs one short worker),
		 * and only once it commits: a worker looking earlier would not see
		 * it.
		 */
		if (!xact_callback_registered)
		{
			RegisterXactCallback(extension_created_callback, NULL);
			xact_callback_registered = true;
		}
		extension_created = true;
	}
}

/*
 * launcher_init registers the launcher and the hooks; called from
 * _PG_init while shared_preload_libraries is processed.
 */
void
launcher_init(void)
{
	BackgroundWorker worker;

	prev_object_access_hook = object_access_hook;
	object_access_hook = object_access;

	/* pg_upgrade's server must not run our transactions */
	if (IsBinaryUpgrade)
		return;

	worker_describe(&worker, "shorturl_launcher_main", "pg_shorturl launcher");
	worker.bgw_restart_time = LAUNCHER_RESTART_S;
	RegisterBackgroundWorker(&worker);
}

/*
 * launcher_sigterm records who asked the launcher to stop: the postmaster
 * (a shutdown) or a backend (pg_terminate_backend).
 */
static void
launcher_sigterm(int signo pg_attribute_unused(), siginfo_t *info,
				 void *context pg_attribute_unused())
{
	int			save_errno = errno;

	if (info != NULL && info->si_pid == PostmasterPid)
		stop_by_postmaster = true;
	stop_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* database_allowed tells whether shorturl.database lets a name in */
static bool
database_allowed(const char *name)
{
	char	   *list;
	char	   *item;
	char	   *save;
	bool		allowed = false;

	if (shorturl_database == NULL || shorturl_database[0] == '\0')
		return true;
	list = pstrdup(shorturl_database);
	for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
	{
		while (*item == ' ')
			item++;
		for (char *end = item + strlen(item); end > item && end[-1] == ' ';)
			*--end = '\0';
		if (strcmp(item, name) == 0)
			allowed = true;
	}
	pfree(list);
	return allowed;
}

/*
 * list_databases reads pg_database with a plain heap scan (the launcher is
 * connected to no database, so it has no catalog caches for it).
 */
static List *
list_databases(MemoryContext cxt)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		listed_db  *l = palloc(sizeof(listed_db));

		l->oid = db->oid;
		l->eligible = db->datallowconn && !db->datistemplate &&
			database_allowed(NameStr(db->datname));
		dbs = lappend(dbs, l);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/* listed returns a database of the list, or NULL */
static listed_db *
listed(List *dbs, Oid oid)
{
	ListCell   *lc;

	foreach(lc, dbs)
	{
		listed_db  *l = lfirst(lc);

		if (l->oid == oid)
			return l;
	}
	return NULL;
}

/*
 * report_unserved tells the log about the clicks a database that is not
 * served has left in shared memory: it stopped being served, or they were
 * restored at a start with a shorturl.database that leaves it out.
 */
static void
report_unserved(Oid dboid)
{
	int64		left = counters_database_pending(dboid);

	if (left > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: database %u is no longer served, with " INT64_FORMAT " unflushed visits in shared memory",
						dboid, left),
				 errdetail("Its clicks are now counted in its tables; visits() includes the ones left in shared memory."),
				 errhint("Run SELECT shorturl.flush() in that database to write them.")));
}

/*
 * sync_slots gives every eligible database a slot and frees the others.
 * A database that stopped being eligible (IS_TEMPLATE, ALLOW_CONNECTIONS)
 * has its worker flush once and leave; its slot goes when the worker has
 * gone.  The unflushed clicks of a database that is gone are dropped; those
 * of one that stays but is no longer served stay in shared memory, where
 * its visits() sees them and its shorturl.flush() writes them.
 */
static void
sync_slots(List *dbs)
{
	ListCell   *lc;
	Oid		   *gone = palloc(sizeof(Oid) * Max(1, dbstate_count()));
	bool	   *exists = palloc(sizeof(bool) * Max(1, dbstate_count()));
	int			ngone = 0;
	static bool warned = false;

	dbstate_lock(true);
	for (int i = 0; i < dbstate_count(); i++)
	{
		db_state   *db = dbstate_at(i);
		listed_db  *l;

		if (db->dboid == InvalidOid)
			continue;
		l = listed(dbs, db->dboid);
		if (l != NULL && l->eligible)
		{
			/* eligible again once the leaving worker has gone */
			if (db->worker_pid == 0)
				db->leaving = false;
			continue;
		}
		if (db->worker_pid != 0)
		{
			/* a template must not keep a connection: it blocks CREATE DATABASE */
			if (!db->leaving && db->worker_latch != NULL)
				SetLatch(db->worker_latch);
			db->leaving = true;
			continue;
		}
		exists[ngone] = (l != NULL);
		gone[ngone++] = db->dboid;
		dbstate_remove(db);
	}
	foreach(lc, dbs)
	{
		listed_db  *l = lfirst(lc);

		if (l->eligible && dbstate_add(l->oid) == NULL && !warned)
		{
			warned = true;
			ereport(LOG,
					(errmsg("pg_shorturl: more databases than shorturl.max_databases (%d); the others count clicks synchronously",
							shorturl_max_databases)));
		}
	}
	dbstate_unlock();

	for (int i = 0; i < ngone; i++)
	{
		if (!exists[i])
		{
			int64		dropped = counters_discard_database(gone[i], false);

			(void) analytics_discard_database(gone[i]);

			if (dropped > 0)
				ereport(LOG,
						(errmsg("pg_shorturl: dropped " INT64_FORMAT " unflushed visits of database %u, which no longer exists",
								dropped, gone[i])));
		}
		else
			report_unserved(gone[i]);
	}
	pfree(gone);
	pfree(exists);
}

/* start_worker starts the worker of a database; NULL if it cannot */
static BackgroundWorkerHandle *
start_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	worker_describe(&worker, "shorturl_worker_main", "pg_shorturl worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	/* so the postmaster tells us when it starts or stops */
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		static TimestampTz warned_at = 0;

		if (TimestampDifferenceExceeds(warned_at, GetCurrentTimestamp(), 60000))
		{
			warned_at = GetCurrentTimestamp();
			ereport(LOG,
					(errmsg("pg_shorturl: could not start a worker: no background worker slot free"),
					 errhint("Raise max_worker_processes.")));
		}
		return NULL;
	}
	return handle;
}

/* wants_worker tells whether a database needs a worker now; lock held */
static bool
wants_worker(db_state *db, TimestampTz now)
{
	if (db->dboid == InvalidOid || db->dropping || db->leaving || db->worker_pid != 0)
		return false;
	if (db->ext == DBEXT_UNKNOWN)
		return true;
	/* clicks counted in shared memory prove the extension is there */
	if (db->ext == DBEXT_ABSENT)
		return pg_atomic_read_u32(&db->worker_wanted) != 0;
	return pg_atomic_read_u32(&db->worker_wanted) != 0 ||
		pg_atomic_read_u32(&db->flush_requested) != 0 || now >= db->due_at;
}

/*
 * schedule checks the running workers, stops those of databases being
 * dropped, and starts workers for the databases that need one.
 */
static void
schedule(running_worker *running, int *nrunning)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid		   *candidates;
	int			ncandidates = 0;
	int			free_slots;
	int			waiting;

	/* 2. forget workers that have exited */
	for (int i = 0; i < *nrunning;)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(running[i].handle, &pid) == BGWH_STOPPED)
		{
			pfree(running[i].handle);
			running[i] = running[--*nrunning];
			continue;
		}
		i++;
	}

	/* 3. leave databases that are being dropped; forget failed drops */
	dbstate_lock(true);
	for (int i = 0; i < dbstate_count(); i++)
	{
		db_state   *db = dbstate_at(i);

		if (!db->dropping)
			continue;
		if (TimestampDifferenceExceeds(db->drop_at, now, DROP_GRACE_MS))
			db->dropping = false;
		else
		{
			for (int j = 0; j < *nrunning; j++)
				if (running[j].dboid == db->dboid)
					TerminateBackgroundWorker(running[j].handle);
		}
	}

	/* 4. who needs a worker, longest-waiting first */
	candidates = palloc(sizeof(Oid) * Max(1, dbstate_count()));
	for (;;)
	{
		db_state   *best = NULL;

		for (int i = 0; i < dbstate_count(); i++)
		{
			db_state   *db = dbstate_at(i);
			bool		taken = false;

			if (!wants_worker(db, now))
				continue;
			for (int j = 0; j < ncandidates; j++)
				taken |= (candidates[j] == db->dboid);
			for (int j = 0; j < *nrunning; j++)
				taken |= (running[j].dboid == db->dboid);
			if (!taken && (best == NULL || db->served_at < best->served_at))
				best = db;
		}
		if (best == NULL)
			break;
		candidates[ncandidates++] = best->dboid;
	}
	dbstate_unlock();

	free_slots = shorturl_max_workers - *nrunning;
	for (int i = 0; i < ncandidates && i < free_slots; i++)
	{
		BackgroundWorkerHandle *handle = start_worker(candidates[i]);
		db_state   *db;

		if (handle == NULL)
			break;
		running[*nrunning].dboid = candidates[i];
		running[*nrunning].handle = handle;
		(*nrunning)++;
		dbstate_lock(true);
		db = dbstate_find(candidates[i]);
		if (db != NULL)
		{
			pg_atomic_write_u32(&db->worker_wanted, 0);
			db->served_at = now;
		}
		dbstate_unlock();
	}
	/* more workers than shorturl.max_workers after a reload: some must go */
	waiting = Max(0, ncandidates - Max(0, free_slots)) +
		Max(0, *nrunning - shorturl_max_workers);
	dbstate_set_waiting((uint32) waiting);
	if (waiting > 0)
	{
		/* busy workers finish their round and make way */
		dbstate_lock(false);
		for (int i = 0; i < dbstate_count(); i++)
		{
			db_state   *db = dbstate_at(i);

			if (db->worker_latch != NULL)
				SetLatch(db->worker_latch);
		}
		dbstate_unlock();
	}
	pfree(candidates);
}

/*
 * shorturl_launcher_main is the launcher's entry point.
 */
void
shorturl_launcher_main(Datum main_arg pg_attribute_unused())
{
	struct sigaction sa;
	MemoryContext cxt;
	running_worker *running;
	int			nrunning = 0;
	bool		looked = false;

	/* reload settings on SIGHUP; on SIGTERM, note who sent it */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = launcher_sigterm;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	BackgroundWorkerUnblockSignals();

	/* no database: the launcher reads only the shared catalog pg_database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_shorturl launcher");
	dbstate_set_launcher(MyLatch, MyProcPid);

	cxt = AllocSetContextCreate(TopMemoryContext, "pg_shorturl launcher",
								ALLOCSET_DEFAULT_SIZES);
	running = MemoryContextAlloc(TopMemoryContext,
								 sizeof(running_worker) * Max(1, shorturl_max_workers));

	while (!stop_requested)
	{
		/* a standby that ships no clicks needs no worker: wait for promotion */
		if (!RecoveryInProgress() || shorturl_ship_interval > 0)
		{
			List	   *dbs;

			MemoryContextReset(cxt);
			dbs = list_databases(cxt);
			if (!looked)
			{
				/* clicks restored at the start for a database not served */
				ListCell   *lc;

				foreach(lc, dbs)
				{
					listed_db  *l = lfirst(lc);

					if (!l->eligible)
						report_unserved(l->oid);
				}
				looked = true;
			}
			sync_slots(dbs);
			schedule(running, &nrunning);
		}
		/* standbys' URL caches wait for word that this primary logs for them */
		urlcache_announce();

		/* sleep a second, or until woken; exit if the postmaster dies */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAP_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* process interrupts, including ProcSignalBarriers of DROP DATABASE */
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a shorter interval applies to databases waiting their turn too */
			dbstate_lock(true);
			for (int i = 0; i < dbstate_count(); i++)
			{
				db_state   *db = dbstate_at(i);
				TimestampTz now = GetCurrentTimestamp();

				db->due_at = Min(db->due_at,
								 TimestampTzPlusMilliseconds(now, shorturl_flush_interval));
				db->due_at = Min(db->due_at,
								 TimestampTzPlusMilliseconds(now, (int64) shorturl_purge_interval * 1000));
			}
			dbstate_unlock();
			/* the array of workers was sized for the old maximum */
			running = repalloc(running, sizeof(running_worker) *
							   Max(Max(1, shorturl_max_workers), nrunning));
		}
	}

	dbstate_set_launcher(NULL, 0);
	/* 0 at shutdown; 1 after pg_terminate_backend, so it comes back */
	proc_exit(stop_by_postmaster ? 0 : 1);
}
