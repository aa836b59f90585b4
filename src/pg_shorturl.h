/*-------------------------------------------------------------------------
 *
 * pg_shorturl.h
 *	  Declarations shared by the PostgreSQL-facing files of pg_shorturl.
 *
 * The pure cores (base62.h and friends) have their own headers and never
 * include this one.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHORTURL_H
#define PG_SHORTURL_H

#include "fmgr.h"
#include "utils/snapshot.h"

/* the extension's fixed schema (pg_shorturl.control) */
#define SHORTURL_SCHEMA "shorturl"

/*
 * Classes (locktag_field4) of pg_shorturl's advisory locks, chosen apart
 * from the 1 and 2 of pg_advisory_lock(), so they never meet users' locks.
 * They show in pg_locks as advisory locks with these objsubid values.
 */
#define SHORTURL_LOCK_REUSE		0x5301	/* shorten(reuse => true), per URL hash */
#define SHORTURL_LOCK_LINK		0x5302	/* making a link's counter, per link */
#define SHORTURL_LOCK_FLUSH		0x5303	/* a flush, per database */
#define SHORTURL_LOCK_REBALANCE	0x5304	/* a coordinator's lookups and moves */

/*
 * After DROP DATABASE begins for the database the worker serves, the
 * launcher waits this long before connecting a worker to it again, in case
 * the drop fails and the database stays.
 */
#define SHORTURL_DROP_GRACE_MS	10000

/* pg_shorturl.c: settings */
extern int	shorturl_max_url_length;
extern int	shorturl_code_length;
extern int	shorturl_max_pending_links;
extern char *shorturl_database;
extern int	shorturl_flush_interval;
extern int	shorturl_purge_interval;
extern int	shorturl_purge_grace;
extern int	shorturl_purge_batch_size;
extern int	shorturl_alias_quarantine;

/* pg_shorturl.c: helpers */
extern Oid	shorturl_relid(const char *relname);

/*
 * A per-backend cache of a small configuration table (the shard map, the
 * code key), kept coherent by relcache invalidations that a statement
 * trigger on the table queues; see pg_shorturl.c.
 */
typedef struct config_snapshot_id
{
	TransactionId xmin;
	TransactionId xmax;
	uint32		xcnt;
	int32		subxcnt;
	uint64		completions;	/* transactions ended before it (PG 14+) */
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
extern Datum shorturl_invalidate_trigger(FunctionCallInfo fcinfo, const char *name);

/* base62_sql.c */
extern char *shorturl_describe_char(const char *p, int len);

/* routing_sql.c */
extern void routing_init(void);

/* links.c */
extern void links_init(void);

/* worker.c */
extern void worker_init(void);

/* purge.c */
extern int64 purge_batch(bool exhausted, int limit);

#endif							/* PG_SHORTURL_H */
