/*-------------------------------------------------------------------------
 *
 * config_cache.h
 *	  Per-backend caches of small configuration tables (the shard map, the
 *	  code key), kept coherent by relcache invalidations; see
 *	  config_cache.c for the rules.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CONFIG_CACHE_H
#define SHORTURL_CONFIG_CACHE_H

#include "storage/lock.h"
#include "utils/snapshot.h"

/* enough of a snapshot to tell whether a later one is the same */
typedef struct config_snapshot_id
{
	TransactionId xmin;
	TransactionId xmax;
	uint32		xcnt;
	int32		subxcnt;
	uint64		completions;	/* transactions ended before it (14+) */
	CommandId	curcid;
} config_snapshot_id;

typedef struct config_cache
{
	bool		loaded;
	bool		stale;			/* an invalidation arrived since the load */
	bool		transient;		/* loaded with a statement's snapshot */
	Oid			relid;			/* the table, when loaded */
	config_snapshot_id loaded_at;
	config_snapshot_id checked_at;
	LocalTransactionId loaded_in;	/* the transaction that loaded it */
} config_cache;

extern bool config_cache_needs_load(config_cache *cache);
extern Snapshot config_cache_snapshot(config_cache *cache);
extern void config_cache_loaded(config_cache *cache, Oid relid);
extern void config_cache_invalidate(config_cache *cache, Oid relid);

#endif							/* SHORTURL_CONFIG_CACHE_H */
