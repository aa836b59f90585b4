/*-------------------------------------------------------------------------
 *
 * config_cache.c
 *	  The engine behind per-backend caches of small configuration tables.
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
 * The owner of a cache (routing_sql.c, codes.c) does the reading itself;
 * this file only decides when, and with which snapshot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "config_cache.h"

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
	/* the surest sign of a new commit: it counts every transaction's end */
	id.completions = compat_snapshot_completions(snap);
	id.curcid = snap->curcid;
	return id;
}

/* same_snapshot tells whether two snapshot identities are equal */
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
	if (cache->transient && cache->loaded_in != compat_my_lxid())
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
	cache->loaded_in = compat_my_lxid();
}

/* config_cache_invalidate is the body of a relcache callback */
void
config_cache_invalidate(config_cache *cache, Oid relid)
{
	if (relid == InvalidOid || relid == cache->relid)
		cache->stale = true;
}
