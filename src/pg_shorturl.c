/*-------------------------------------------------------------------------
 *
 * pg_shorturl.c
 *	  Module entry point of pg_shorturl: the magic block, _PG_init and the
 *	  settings (GUCs).
 *
 * Everything that must happen once per process when the library is loaded
 * (defining settings, registering cache callbacks and, when preloaded, the
 * shared memory and the background worker) starts here and is delegated to
 * the file that owns it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "counters.h"
#include "permute.h"
#include "pg_shorturl.h"

PG_MODULE_MAGIC;

/* Longest URL shorten() accepts, in bytes */
#define DEFAULT_MAX_URL_LENGTH	2048
#define MAX_MAX_URL_LENGTH		(1024 * 1024)

/*
 * Width of generated codes.  Seven characters give 62^7 = 3.5 trillion codes:
 * for a store of 1.8 billion links, a guess hits a link about once in 2,000
 * tries; shorturl.estimate() computes the width for a target guess rate.
 */
#define DEFAULT_CODE_LENGTH		7
#define MIN_CODE_LENGTH			4

/*
 * Links whose counters shared memory holds, about 150 bytes each: 15 MB
 * by default.  A link keeps its counter until the table is full and a new
 * link needs the room, so this should cover the links clicked often (the
 * working set); a click of a link without a counter costs an extra index
 * lookup and lock.  Only when every counter holds unflushed clicks is a
 * click counted synchronously (the sync_fallbacks statistic).
 */
#define DEFAULT_MAX_PENDING_LINKS	100000
#define MIN_MAX_PENDING_LINKS		100

#define DEFAULT_FLUSH_INTERVAL_MS	1000
#define DEFAULT_PURGE_INTERVAL_S	60
#define DEFAULT_PURGE_GRACE_S		(24 * 60 * 60)
#define DEFAULT_PURGE_BATCH_SIZE	1000
#define DEFAULT_ALIAS_QUARANTINE_S	(30 * 24 * 60 * 60)

int			shorturl_max_url_length = DEFAULT_MAX_URL_LENGTH;
int			shorturl_code_length = DEFAULT_CODE_LENGTH;
int			shorturl_max_pending_links = DEFAULT_MAX_PENDING_LINKS;
char	   *shorturl_database = NULL;
int			shorturl_flush_interval = DEFAULT_FLUSH_INTERVAL_MS;
int			shorturl_purge_interval = DEFAULT_PURGE_INTERVAL_S;
int			shorturl_purge_grace = DEFAULT_PURGE_GRACE_S;
int			shorturl_purge_batch_size = DEFAULT_PURGE_BATCH_SIZE;
int			shorturl_alias_quarantine = DEFAULT_ALIAS_QUARANTINE_S;

void		_PG_init(void);

/* define_settings defines every shorturl.* setting */
static void
define_settings(void)
{
	DefineCustomIntVariable("shorturl.max_url_length",
							"Longest URL, in bytes, that shorturl.shorten() accepts.",
							NULL,
							&shorturl_max_url_length,
							DEFAULT_MAX_URL_LENGTH,
							1, MAX_MAX_URL_LENGTH,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.code_length",
							"Width of generated codes, in characters; wider codes are used once this width is used up.",
							"Changing it affects new codes only; existing codes stay valid.",
							&shorturl_code_length,
							DEFAULT_CODE_LENGTH,
							MIN_CODE_LENGTH, PERMUTE_MAX_WIDTH,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.flush_interval",
							"Time between two flushes of the click counters to shorturl.links.",
							NULL,
							&shorturl_flush_interval,
							DEFAULT_FLUSH_INTERVAL_MS,
							10, 24 * 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.purge_interval",
							"Time between two purges of expired and exhausted links.",
							NULL,
							&shorturl_purge_interval,
							DEFAULT_PURGE_INTERVAL_S,
							1, 7 * 24 * 60 * 60,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.purge_grace",
							"How long an exhausted link (no visits left) is kept before it is purged.",
							"During that time it answers link_status() with exhausted rather than unknown.",
							&shorturl_purge_grace,
							DEFAULT_PURGE_GRACE_S,
							0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.purge_batch_size",
							"Links deleted per transaction by the purge.",
							NULL,
							&shorturl_purge_batch_size,
							DEFAULT_PURGE_BATCH_SIZE,
							1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.alias_quarantine",
							"How long the alias of a deleted link stays unavailable to shorten().",
							"A printed old link must not land on a new owner's target.",
							&shorturl_alias_quarantine,
							DEFAULT_ALIAS_QUARANTINE_S,
							0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/*
	 * Settings read at server start exist only when the library is
	 * preloaded: PostgreSQL refuses to define them later, and without
	 * preloading there is no shared memory or worker for them to shape.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("shorturl.max_pending_links",
								"Links whose unflushed clicks shared memory can hold.",
								"When it is full, further clicks of other links are counted synchronously.",
								&shorturl_max_pending_links,
								DEFAULT_MAX_PENDING_LINKS,
								MIN_MAX_PENDING_LINKS, INT_MAX / 2,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomStringVariable("shorturl.database",
								   "Database whose clicks the background worker counts in shared memory, flushes and purges.",
								   "Clicks in other databases are counted synchronously.",
								   &shorturl_database,
								   "postgres",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);
	}

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("shorturl");
#else
	EmitWarningsOnPlaceholders("shorturl");
#endif
}

/*
 * _PG_init runs when a backend (or, with shared_preload_libraries, the
 * postmaster) loads the library.
 */
void
_PG_init(void)
{
	define_settings();
	routing_init();
	links_init();

	/* shared memory, the worker and hooks exist only when preloaded */
	if (!process_shared_preload_libraries_in_progress)
		return;
	counters_init();
	worker_init();
}

/*
 * shorturl_relid returns the OID of a table of the extension's schema, or
 * reports that the extension is not installed in this database.
 */
Oid
shorturl_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid(SHORTURL_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", SHORTURL_SCHEMA, relname),
				 errhint("Is the extension pg_shorturl installed (and up to date) in this database?")));
	return relid;
}

/* ---------------------------------------------------------------------
 * Configuration caches
 *
 * route(key) and the code generator read small tables (shorturl.shards,
 * shorturl.code_key) on nearly every call, so each backend caches them.
 * The rules:
 *	- A statement trigger on the table queues a relcache invalidation on
 *	  every change; PostgreSQL delivers it to every backend at commit (and
 *	  to the changing backend at once), and the cache's relcache callback
 *	  marks it stale.
 *	- A stale cache is reloaded only when the active snapshot is a new one:
 *	  the next statement under READ COMMITTED, the next transaction under
 *	  REPEATABLE READ, or after the transaction's own change.  So one
 *	  statement never sees two versions of a table, and a committed change
 *	  is seen by the next statement of any session.  Pending invalidations
 *	  are read once per new snapshot, since a statement that takes no new
 *	  lock would not read them.
 *	- Under READ COMMITTED a load reads the table with a fresh snapshot: an
 *	  invalidation read at the start of a statement may come from a commit
 *	  later than the statement's snapshot, and a load with that snapshot
 *	  would cache the old contents with nothing left to mark them stale.
 *	- Under REPEATABLE READ (and in parallel workers, which may not take
 *	  fresh snapshots) a load reads the table with the transaction's
 *	  snapshot, so the transaction sees the contents as of its snapshot plus
 *	  its own changes, and counts as transient: the next transaction loads
 *	  again.
 * ---------------------------------------------------------------------
 */

/* current_snapshot_id identifies the active snapshot */
static config_snapshot_id
current_snapshot_id(void)
{
	Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	config_snapshot_id id;

	memset(&id, 0, sizeof(id));
	id.xmin = snap->xmin;
	id.xmax = snap->xmax;
	id.xcnt = snap->xcnt;
	/* on a hot standby running transactions are listed here, xcnt is 0 */
	id.subxcnt = snap->subxcnt;
#if PG_VERSION_NUM >= 140000
	/* the surest sign of a new commit: it counts every transaction's end */
	id.completions = snap->snapXactCompletionCount;
#endif
	id.curcid = snap->curcid;
	return id;
}

static bool
same_snapshot(const config_snapshot_id *a, const config_snapshot_id *b)
{
	return a->xmin == b->xmin && a->xmax == b->xmax &&
		a->xcnt == b->xcnt && a->subxcnt == b->subxcnt &&
		a->completions == b->completions && a->curcid == b->curcid;
}

/*
 * config_cache_needs_load reads pending invalidations if the snapshot is
 * new, and tells whether the cache must be (re)loaded now.
 */
bool
config_cache_needs_load(config_cache *cache)
{
	config_snapshot_id now = current_snapshot_id();

	if (!same_snapshot(&now, &cache->checked_at))
	{
		AcceptInvalidationMessages();
		cache->checked_at = now;
	}
	if (!cache->loaded)
		return true;
	/* a load for an earlier transaction's snapshot is not for this one */
	if (cache->transient && cache->loaded_in != MyProc->lxid)
		return true;
	return (cache->stale || cache->transient) && !same_snapshot(&now, &cache->loaded_at);
}

/*
 * config_cache_snapshot returns the registered snapshot to load with: a
 * fresh one under READ COMMITTED, the transaction's under REPEATABLE READ
 * or in a parallel query (see the rules above).  Call it after opening the
 * table, so the snapshot also covers every invalidation the lock
 * acquisition delivered.
 */
Snapshot
config_cache_snapshot(config_cache *cache)
{
	cache->transient = IsInParallelMode() || IsolationUsesXactSnapshot();
	if (cache->transient)
		return RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	return RegisterSnapshot(GetLatestSnapshot());
}

/* config_cache_loaded records a successful load */
void
config_cache_loaded(config_cache *cache, Oid relid)
{
	cache->loaded = true;
	cache->stale = false;
	cache->relid = relid;
	cache->loaded_at = current_snapshot_id();
	cache->loaded_in = MyProc->lxid;
}

/*
 * shorturl_invalidate_trigger is the body of the statement triggers on the
 * cached tables: it queues a relcache invalidation of the table, which
 * every backend receives when the change commits (and this one at once).
 */
Datum
shorturl_invalidate_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as a trigger", name)));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/* config_cache_invalidate is the body of a relcache callback */
void
config_cache_invalidate(config_cache *cache, Oid relid)
{
	if (relid == InvalidOid || relid == cache->relid)
		cache->stale = true;
}
