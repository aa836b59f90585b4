/*-------------------------------------------------------------------------
 *
 * analytics.c
 *	  What a click tells beyond its count: its referrer, country and device,
 *	  and who the visitor was, held in shared memory until the flush writes
 *	  them to the daily tables.
 *
 * A link's hourly series needs no table here: it rides on the click
 * counters (first_hour in counters.h), so it adds up to the link's count
 * at every moment.  Dimensions and visitors are more numerous, and exact
 * only as far as memory goes, so they have two tables of their own:
 *	- dims: one entry per (link, UTC day, dimension, value), with the
 *	  clicks and bots' clicks not yet flushed;
 *	- visitors: one entry per (link, UTC day, visitor hash) not yet
 *	  flushed, so a visitor seen twice between flushes costs one entry.
 * Both are PostgreSQL shared hash tables of fixed size, partitioned as the
 * lock manager's is: a partition's LWLock in shared mode to bump an entry
 * (its counts are atomics), exclusive to add one.  When the dimensions'
 * table is fifteen sixteenths full, a value goes to its dimension's "other"
 * entry (the rest is kept for those), and when that cannot be made either,
 * the click's dimension is not kept (counted in shorturl.stats); the
 * link's count never depends on any of it.
 *
 * The flush (flush.c calls analytics_flush() in its transaction) takes
 * every entry of the database out of both tables (a copy under every
 * partition lock in shared mode, then removals a partition at a time; see
 * take_all()), keeps
 * aside those of links it cannot see yet (made by a transaction still in
 * progress: they go back at commit, as their counts do; decide_fates()),
 * then
 * adds the dimension counts to shorturl.link_visits_breakdown, keeping at
 * most shorturl.max_dimension_values values per link, day and dimension
 * (the rest go to "other"), and merges the visitors into each link-day's
 * HyperLogLog sketch in shorturl.link_visitors_daily (hll.c).  If the
 * transaction aborts, the entries go back into the tables.
 *
 * The worker writes them every shorturl.analytics_flush_interval (10 s),
 * or sooner when a table is half full (worker.c), not with every flush of
 * the counts: a busy link's values and sketch are rewritten less often.
 * A clean shutdown saves what is pending in the counters' file (the end
 * of this file); a crash loses at most one such interval of dimensions
 * and visitors, never a click's count or its hour.
 *
 * One concern, the two shared tables and their way to the tables on disk;
 * the file is long (about 1,200 lines) because taking, keeping aside and
 * giving back entries share the flush's per-transaction state, as in
 * flush.c.  Reading the analytics is in series.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "analytics.h"
#include "catalog.h"
#include "compat.h"
#include "dbstate.h"
#include "hll.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "spi_util.h"

/* Partitions of each table, as NUM_LOCK_PARTITIONS does for locks */
#define ANALYTICS_PARTITIONS	16

/* Dimension values per statement of a flush */
#define DIMS_BATCH_SIZE		5000

const char *const analytics_dim_names[ANALYTICS_DIMS] = {
	[DIM_REFERRER] = "referrer",
	[DIM_COUNTRY] = "country",
	[DIM_DEVICE] = "device",
};

/* Keys are hashed as bytes (HASH_BLOBS): no padding, and zeroed first */
typedef struct dim_key
{
	Oid			dbid;
	Oid			relid;
	int64		link_id;
	int32		day;			/* days since 2000-01-01, UTC */
	int32		dim;			/* analytics_dim */
	uint64		vhash;			/* of the value */
} dim_key;

typedef struct dim_entry
{
	dim_key		key;
	pg_atomic_uint64 visits;
	pg_atomic_uint64 bots;
	char		value[ANALYTICS_VALUE_SIZE];
} dim_entry;

typedef struct visitor_key
{
	Oid			dbid;
	Oid			relid;
	int64		link_id;
	int32		day;
	int32		unused;			/* always 0 */
	uint64		vhash;
} visitor_key;

/*
 * How many entries each table has.  A fixed-size shared hash table that is
 * full refuses a new entry only after looking through every freelist, each
 * under its spinlock, so a click checks these first.  The last sixteenth of
 * the dimension table is kept for "other" entries: a value that finds no
 * room is then counted as its dimension's "other" rather than lost.
 */
typedef struct analytics_counts
{
	pg_atomic_uint32 ndims;
	pg_atomic_uint32 nvisitors;
} analytics_counts;

static HTAB *dims = NULL;
static HTAB *visitors = NULL;
static LWLockPadded *locks = NULL;
static analytics_counts *counts = NULL;

/*
 * What the flush does with a taken entry, by its link (decide_fates()).  At
 * abort every entry goes back to shared memory; at commit all but those
 * written or dropped (one still undecided was never written).
 */
typedef enum entry_fate
{
	FATE_UNDECIDED,				/* decide_fates() has not run */
	FATE_WRITE,					/* the flush sees the link: written */
	FATE_KEEP,					/* the flush cannot see it yet: back at commit */
	FATE_DROP,					/* the link is gone for good */
} entry_fate;

/* What the flush of the current transaction took, to give back at abort */
static struct
{
	bool		active;
	dim_entry  *dims;			/* copies: visits and bots read out */
	char	   *dims_fate;		/* entry_fate of each */
	int			ndims;
	visitor_key *visitors;
	char	   *visitors_fate;
	int			nvisitors;
	bool		shipped;		/* a standby's (analytics_take_shipped()) */
} taken;

static SPIPlanPtr plan_dims;
static SPIPlanPtr plan_sketches;
static SPIPlanPtr plan_visitors;

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

/* analytics_shmem_size is the memory both tables need */
Size
analytics_shmem_size(void)
{
	return add_size(add_size(hash_estimate_size(shorturl_max_pending_dimensions, sizeof(dim_entry)),
							 hash_estimate_size(shorturl_max_pending_visitors, sizeof(visitor_key))),
					sizeof(analytics_counts));
}

void
analytics_request_shmem(void)
{
	RequestAddinShmemSpace(analytics_shmem_size());
	RequestNamedLWLockTranche("pg_shorturl analytics", 2 * ANALYTICS_PARTITIONS);
}

void
analytics_init_shmem(void)
{
	HASHCTL		info;
	int			flags = HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE;
	bool		found;

	counts = ShmemInitStruct("pg_shorturl analytics counts", sizeof(analytics_counts), &found);
	if (!found)
	{
		pg_atomic_init_u32(&counts->ndims, 0);
		pg_atomic_init_u32(&counts->nvisitors, 0);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(dim_key);
	info.entrysize = sizeof(dim_entry);
	info.num_partitions = ANALYTICS_PARTITIONS;
	dims = ShmemInitHash("pg_shorturl dimensions", shorturl_max_pending_dimensions,
						 shorturl_max_pending_dimensions, &info, flags);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(visitor_key);
	info.entrysize = sizeof(visitor_key);
	info.num_partitions = ANALYTICS_PARTITIONS;
	visitors = ShmemInitHash("pg_shorturl visitors", shorturl_max_pending_visitors,
							 shorturl_max_pending_visitors, &info, flags);
	locks = GetNamedLWLockTranche("pg_shorturl analytics");
}

static LWLock *
dims_lock(uint32 hash)
{
	return &locks[hash % ANALYTICS_PARTITIONS].lock;
}

static LWLock *
visitors_lock(uint32 hash)
{
	return &locks[ANALYTICS_PARTITIONS + hash % ANALYTICS_PARTITIONS].lock;
}

/* analytics_day is the UTC day of a time, in days since 2000-01-01 */
int32
analytics_day(TimestampTz t)
{
	int64		day = t / USECS_PER_DAY;

	if (t < 0 && t % USECS_PER_DAY != 0)
		day--;
	return (int32) Max(Min(day, PG_INT32_MAX), PG_INT32_MIN);
}

/*
 * add_dim adds clicks to an entry, making it if need be.  False when the
 * table has no room for it: with reserve, a new value but "other" finds
 * none once the table is fifteen sixteenths full.  (Clicks given back by a
 * flush that did not write them may use the reserve: they had room once.)
 */
static bool
add_dim(const dim_key *key, const char *value, uint64 visits, uint64 bots, bool reserve)
{
	uint32		hash = get_hash_value(dims, key);
	LWLock	   *lock = dims_lock(hash);
	dim_entry  *e;
	bool		found;
	uint32		room = (uint32) shorturl_max_pending_dimensions;

	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(dims, key, hash, HASH_FIND, NULL);
	if (e != NULL)
	{
		pg_atomic_fetch_add_u64(&e->visits, visits);
		if (bots > 0)
			pg_atomic_fetch_add_u64(&e->bots, bots);
		LWLockRelease(lock);
		return true;
	}
	LWLockRelease(lock);

	if (reserve && strcmp(value, ANALYTICS_OTHER) != 0)
		room -= room / 16;
	if (pg_atomic_read_u32(&counts->ndims) >= room)
		return false;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(dims, key, hash, HASH_ENTER_NULL, &found);
	if (e != NULL)
	{
		if (!found)
		{
			pg_atomic_init_u64(&e->visits, 0);
			pg_atomic_init_u64(&e->bots, 0);
			strlcpy(e->value, value, sizeof(e->value));
			pg_atomic_fetch_add_u32(&counts->ndims, 1);
		}
		pg_atomic_fetch_add_u64(&e->visits, visits);
		if (bots > 0)
			pg_atomic_fetch_add_u64(&e->bots, bots);
	}
	LWLockRelease(lock);
	return e != NULL;
}

/* add_visitor notes a visitor of a link-day; false when there is no room */
static bool
add_visitor(const visitor_key *key)
{
	uint32		hash = get_hash_value(visitors, key);
	LWLock	   *lock = visitors_lock(hash);
	bool		found;
	void	   *e;

	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(visitors, key, hash, HASH_FIND, NULL);
	LWLockRelease(lock);
	if (e != NULL)
		return true;
	if (pg_atomic_read_u32(&counts->nvisitors) >= (uint32) shorturl_max_pending_visitors)
		return false;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(visitors, key, hash, HASH_ENTER_NULL, &found);
	if (e != NULL && !found)
		pg_atomic_fetch_add_u32(&counts->nvisitors, 1);
	LWLockRelease(lock);
	return e != NULL;
}

static void
make_dim_key(dim_key *key, Oid relid, int64 link_id, int32 day, analytics_dim dim,
			 const char *value)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->relid = relid;
	key->link_id = link_id;
	key->day = day;
	key->dim = (int32) dim;
	key->vhash = hll_hash(value, strlen(value));
}

static void
make_visitor_key(visitor_key *key, Oid relid, int64 link_id, int32 day, uint64 vhash)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->relid = relid;
	key->link_id = link_id;
	key->day = day;
	key->vhash = vhash;
}

/* What add_dim_or_other did with a value's clicks */
typedef enum dim_added
{
	DIM_KEPT,					/* in the value's own entry */
	DIM_OTHER,					/* no room: in its dimension's "other" */
	DIM_LOST					/* no room for either */
} dim_added;

/*
 * add_dim_or_other adds clicks to a value's entry or, when the table has no
 * room for it, to its dimension's "other" (see add_dim for reserve).
 */
static dim_added
add_dim_or_other(const dim_key *key, const char *value, uint64 visits, uint64 bots, bool reserve)
{
	dim_key		other;

	if (add_dim(key, value, visits, bots, reserve))
		return DIM_KEPT;
	if (strcmp(value, ANALYTICS_OTHER) == 0)
		return DIM_LOST;
	/* the key's own database: the postmaster restores entries too */
	other = *key;
	other.vhash = hll_hash(ANALYTICS_OTHER, strlen(ANALYTICS_OTHER));
	return add_dim(&other, ANALYTICS_OTHER, visits, bots, reserve) ? DIM_OTHER : DIM_LOST;
}

/* What values and visitors that are given back or taken in found no room for */
typedef struct analytics_losses
{
	uint64		overflow;		/* clicks of values sent to "other" */
	uint64		dropped;		/* clicks of values not kept */
	uint64		visitors;		/* visitors not kept */
} analytics_losses;

/* add_counted adds clicks as add_dim_or_other() does, tallying what had no room */
static void
add_counted(const dim_key *key, const char *value, uint64 visits, uint64 bots, bool reserve,
			analytics_losses *losses)
{
	switch (add_dim_or_other(key, value, visits, bots, reserve))
	{
		case DIM_KEPT:
			break;
		case DIM_OTHER:
			losses->overflow += visits;
			break;
		case DIM_LOST:
			losses->dropped += visits;
			break;
	}
}

/* note_losses adds a tally to the database's figures in shorturl.stats */
static void
note_losses(const analytics_losses *losses)
{
	db_state   *db = dbstate_mine();

	if (db == NULL)
		return;
	pg_atomic_fetch_add_u64(&db->analytics_dropped, losses->dropped);
	pg_atomic_fetch_add_u64(&db->analytics_overflow, losses->overflow);
	pg_atomic_fetch_add_u64(&db->visitors_dropped, losses->visitors);
}

/*
 * analytics_record keeps what a counted click tells: a value for each
 * dimension (values[d] NULL: none) and, unless it is a bot's, its visitor
 * (has_visitor).  Only where clicks go to shared memory.
 */
void
analytics_record(int64 link_id, TimestampTz when, const char *const values[ANALYTICS_DIMS],
				 bool has_visitor, uint64 visitor_hash, bool bot)
{
	Oid			relid = catalog_tables()->links;
	int32		day = analytics_day(when);
	db_state   *db = dbstate_mine();

	if (dims == NULL || db == NULL)
		return;
	for (int d = 0; d < ANALYTICS_DIMS; d++)
	{
		dim_key		key;

		if (values[d] == NULL)
			continue;
		make_dim_key(&key, relid, link_id, day, (analytics_dim) d, values[d]);
		switch (add_dim_or_other(&key, values[d], 1, bot ? 1 : 0, true))
		{
			case DIM_KEPT:
				break;
			case DIM_OTHER:
				pg_atomic_fetch_add_u64(&db->analytics_overflow, 1);
				break;
			case DIM_LOST:
				pg_atomic_fetch_add_u64(&db->analytics_dropped, 1);
				break;
		}
	}
	if (has_visitor && !bot)
	{
		visitor_key key;

		make_visitor_key(&key, relid, link_id, day, visitor_hash);
		if (!add_visitor(&key))
			pg_atomic_fetch_add_u64(&db->visitors_dropped, 1);
	}
}

/*
 * analytics_pending counts this database's entries in both tables (for
 * shorturl.stats).
 */
void
analytics_pending(int64 *ndims, int64 *nvisitors)
{
	HASH_SEQ_STATUS status;
	dim_entry  *d;
	visitor_key *v;

	*ndims = *nvisitors = 0;
	if (dims == NULL)
		return;
	for (int i = 0; i < 2 * ANALYTICS_PARTITIONS; i++)
		LWLockAcquire(&locks[i].lock, LW_SHARED);
	hash_seq_init(&status, dims);
	while ((d = hash_seq_search(&status)) != NULL)
		if (d->key.dbid == MyDatabaseId)
			(*ndims)++;
	hash_seq_init(&status, visitors);
	while ((v = hash_seq_search(&status)) != NULL)
		if (v->dbid == MyDatabaseId)
			(*nvisitors)++;
	for (int i = 2 * ANALYTICS_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&locks[i].lock);
}

/*
 * analytics_filling tells whether either table is half full: the worker
 * then writes them with its flush, whatever their interval says.
 */
bool
analytics_filling(void)
{
	if (dims == NULL)
		return false;
	return pg_atomic_read_u32(&counts->ndims) >= (uint32) shorturl_max_pending_dimensions / 2 ||
		pg_atomic_read_u32(&counts->nvisitors) >= (uint32) shorturl_max_pending_visitors / 2;
}

static int	by_int64(const void *a, const void *b);
static int	by_dim_key(const void *a, const void *b);
static int	by_link_day(const void *a, const void *b);

/*
 * remove_where removes the entries of both tables that match a database
 * (and, when links is not NULL, one of its nlinks links, sorted), under
 * every partition lock, and returns how many it removed.  It cannot fail:
 * callers run in transaction callbacks.
 */
static int64
remove_where(Oid dbid, const int64 *links, int nlinks)
{
	HASH_SEQ_STATUS status;
	dim_entry  *d;
	visitor_key *v;
	int64		removed = 0;

	if (dims == NULL)
		return 0;
	for (int i = 0; i < 2 * ANALYTICS_PARTITIONS; i++)
		LWLockAcquire(&locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&status, dims);
	while ((d = hash_seq_search(&status)) != NULL)
	{
		if (d->key.dbid == dbid &&
			(links == NULL || bsearch(&d->key.link_id, links, nlinks, sizeof(int64), by_int64)))
		{
			(void) hash_search(dims, &d->key, HASH_REMOVE, NULL);
			pg_atomic_fetch_sub_u32(&counts->ndims, 1);
			removed++;
		}
	}
	hash_seq_init(&status, visitors);
	while ((v = hash_seq_search(&status)) != NULL)
	{
		if (v->dbid == dbid &&
			(links == NULL || bsearch(&v->link_id, links, nlinks, sizeof(int64), by_int64)))
		{
			(void) hash_search(visitors, v, HASH_REMOVE, NULL);
			pg_atomic_fetch_sub_u32(&counts->nvisitors, 1);
			removed++;
		}
	}
	for (int i = 2 * ANALYTICS_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&locks[i].lock);
	return removed;
}

/*
 * analytics_discard_database removes a database's entries: it was dropped,
 * or its extension was (its worker found it gone), so no flush will take
 * them, and they would hold room other databases need.
 */
int64
analytics_discard_database(Oid dbid)
{
	return remove_where(dbid, NULL, 0);
}

/*
 * analytics_forget_links removes the entries of links of this database
 * (links[0..n), sorted): their counts were reset (or they moved away), and
 * what they had not flushed goes with the counts.  From a commit callback:
 * cannot fail.
 */
void
analytics_forget_links(const int64 *links, int n)
{
	if (n > 0)
		(void) remove_where(MyDatabaseId, links, n);
}

/* ---------------------------------------------------------------------
 * The flush
 * ---------------------------------------------------------------------
 */

/*
 * take_all takes this database's entries out of both tables, without
 * holding clicks off for long:
 *	1. under every partition lock in shared mode (clicks that add to an
 *	   existing entry go on; only new entries wait), it copies the entries
 *	   and takes their counts (an atomic exchange with zero);
 *	2. then, a partition at a time under its exclusive lock, it removes
 *	   the dimension entries still at zero (one clicked meanwhile stays,
 *	   for the next flush) and the visitors it copied (a visitor seen again
 *	   meanwhile is in the copy already).
 * Entries of an earlier shorturl.links (the extension was dropped and
 * created again) are taken and dropped.  An error in between (out of
 * memory) releases the locks with the transaction's abort, which gives
 * back what was taken (analytics_settle()).
 */
static void
take_all(Oid relid)
{
	HASH_SEQ_STATUS status;
	dim_entry  *d;
	visitor_key *v;
	int			cap_dims = 64;
	int			cap_visitors = 64;
	int			nstale = 0;
	dim_key    *stale = NULL;
	uint32	   *dim_hashes;
	uint32	   *visitor_hashes;

	taken.dims = MemoryContextAlloc(TopTransactionContext, cap_dims * sizeof(dim_entry));
	taken.visitors = MemoryContextAlloc(TopTransactionContext, cap_visitors * sizeof(visitor_key));
	taken.ndims = taken.nvisitors = 0;

	/* 1. all partitions, in order, as the lock manager's status view does */
	for (int i = 0; i < 2 * ANALYTICS_PARTITIONS; i++)
		LWLockAcquire(&locks[i].lock, LW_SHARED);
	hash_seq_init(&status, dims);
	while ((d = hash_seq_search(&status)) != NULL)
	{
		uint64		visits;
		uint64		bots;

		if (d->key.dbid != MyDatabaseId)
			continue;
		visits = pg_atomic_exchange_u64(&d->visits, 0);
		bots = pg_atomic_exchange_u64(&d->bots, 0);
		if (d->key.relid != relid)
		{
			/* (removed in step 2 with the rest) */
			if (nstale % 64 == 0)
				stale = stale == NULL ? palloc(64 * sizeof(dim_key)) :
					repalloc(stale, (nstale + 64) * sizeof(dim_key));
			stale[nstale++] = d->key;
			continue;
		}
		if (visits == 0 && bots == 0)
			continue;
		if (taken.ndims == cap_dims)
		{
			cap_dims *= 2;
			taken.dims = repalloc(taken.dims, cap_dims * sizeof(dim_entry));
		}
		memcpy(&taken.dims[taken.ndims].key, &d->key, sizeof(dim_key));
		memcpy(taken.dims[taken.ndims].value, d->value, sizeof(d->value));
		pg_atomic_init_u64(&taken.dims[taken.ndims].visits, visits);
		pg_atomic_init_u64(&taken.dims[taken.ndims].bots, bots);
		taken.ndims++;
	}
	hash_seq_init(&status, visitors);
	while ((v = hash_seq_search(&status)) != NULL)
	{
		if (v->dbid != MyDatabaseId)
			continue;
		if (taken.nvisitors == cap_visitors)
		{
			cap_visitors *= 2;
			taken.visitors = repalloc(taken.visitors, cap_visitors * sizeof(visitor_key));
		}
		taken.visitors[taken.nvisitors++] = *v;
	}
	for (int i = 2 * ANALYTICS_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&locks[i].lock);

	/* 2. a partition at a time */
	dim_hashes = palloc((taken.ndims + nstale + 1) * sizeof(uint32));
	for (int i = 0; i < taken.ndims + nstale; i++)
		dim_hashes[i] = get_hash_value(dims, i < taken.ndims ? &taken.dims[i].key : &stale[i - taken.ndims]);
	visitor_hashes = palloc((taken.nvisitors + 1) * sizeof(uint32));
	for (int i = 0; i < taken.nvisitors; i++)
		visitor_hashes[i] = get_hash_value(visitors, &taken.visitors[i]);
	for (int p = 0; p < ANALYTICS_PARTITIONS; p++)
	{
		LWLockAcquire(&locks[p].lock, LW_EXCLUSIVE);
		for (int i = 0; i < taken.ndims + nstale; i++)
		{
			const dim_key *key = i < taken.ndims ? &taken.dims[i].key : &stale[i - taken.ndims];
			uint32		hash = dim_hashes[i];

			if (hash % ANALYTICS_PARTITIONS != (uint32) p)
				continue;
			d = hash_search_with_hash_value(dims, key, hash, HASH_FIND, NULL);
			if (d != NULL && pg_atomic_read_u64(&d->visits) == 0 &&
				pg_atomic_read_u64(&d->bots) == 0)
			{
				(void) hash_search_with_hash_value(dims, key, hash, HASH_REMOVE, NULL);
				pg_atomic_fetch_sub_u32(&counts->ndims, 1);
			}
		}
		LWLockRelease(&locks[p].lock);
		LWLockAcquire(&locks[ANALYTICS_PARTITIONS + p].lock, LW_EXCLUSIVE);
		for (int i = 0; i < taken.nvisitors; i++)
		{
			uint32		hash = visitor_hashes[i];

			if (hash % ANALYTICS_PARTITIONS == (uint32) p &&
				hash_search_with_hash_value(visitors, &taken.visitors[i], hash,
											HASH_REMOVE, NULL) != NULL)
				pg_atomic_fetch_sub_u32(&counts->nvisitors, 1);
		}
		LWLockRelease(&locks[ANALYTICS_PARTITIONS + p].lock);
	}
	/* a stale incarnation's visitors are dropped, not written */
	{
		int			k = 0;

		for (int i = 0; i < taken.nvisitors; i++)
			if (taken.visitors[i].relid == relid)
				taken.visitors[k++] = taken.visitors[i];
		taken.nvisitors = k;
	}
	if (stale != NULL)
		pfree(stale);
	pfree(dim_hashes);
	pfree(visitor_hashes);
	/* in index order, so that the statements' probes go through it in order */
	qsort(taken.dims, taken.ndims, sizeof(dim_entry), by_dim_key);
	qsort(taken.visitors, taken.nvisitors, sizeof(visitor_key), by_link_day);
	taken.dims_fate = MemoryContextAllocZero(TopTransactionContext, Max(taken.ndims, 1));
	taken.visitors_fate = MemoryContextAllocZero(TopTransactionContext, Max(taken.nvisitors, 1));
}

static int
by_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* by_dim_key orders dimension entries as the table's primary key, nearly */
static int
by_dim_key(const void *a, const void *b)
{
	const dim_key *x = &((const dim_entry *) a)->key;
	const dim_key *y = &((const dim_entry *) b)->key;

	if (x->link_id != y->link_id)
		return (x->link_id > y->link_id) - (x->link_id < y->link_id);
	if (x->day != y->day)
		return (x->day > y->day) - (x->day < y->day);
	if (x->dim != y->dim)
		return (x->dim > y->dim) - (x->dim < y->dim);
	return (x->vhash > y->vhash) - (x->vhash < y->vhash);
}

/*
 * decide_fates looks the taken entries' links up, once for all of them.
 * The entries of links the flush cannot see but that may still exist (made
 * by a transaction still in progress, or deleted by one that may roll
 * back) are kept: they go back to shared memory when the flush commits, as
 * their clicks' counts do (flush.c).  The entries of links gone for good
 * are dropped.  The rest are written, without a second look: a link
 * deleted meanwhile leaves orphaned rows, which the worker's sweep deletes
 * (purge.c), as it does the counts'.
 */
static void
decide_fates(void)
{
	static SPIPlanPtr plan_seen;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	int64	   *ids = palloc((taken.ndims + taken.nvisitors + 1) * sizeof(int64));
	Datum	   *datums;
	int64	   *seen;
	char	   *unseen;
	int			n = 0;
	int			nseen;

	for (int i = 0; i < taken.ndims; i++)
		ids[n++] = taken.dims[i].key.link_id;
	for (int i = 0; i < taken.nvisitors; i++)
		ids[n++] = taken.visitors[i].link_id;
	if (n == 0)
		return;
	qsort(ids, n, sizeof(int64), by_int64);
	{
		int			k = 1;

		for (int i = 1; i < n; i++)
			if (ids[i] != ids[k - 1])
				ids[k++] = ids[i];
		n = k;
	}
	unseen = palloc(n);
	datums = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
		datums[i] = Int64GetDatum(ids[i]);
	values[0] = spi_array(datums, n, INT8OID);
	spi_run(spi_plan(&plan_seen,
					 "SELECT id FROM shorturl.links WHERE id = ANY ($1) ORDER BY id",
					 1, argtypes),
			values, NULL, false, SPI_OK_SELECT);
	nseen = (int) SPI_processed;
	seen = palloc((nseen + 1) * sizeof(int64));
	for (int i = 0; i < nseen; i++)
	{
		bool		isnull;

		seen[i] = DatumGetInt64(spi_result(i, 1, &isnull));
	}
	/* ids becomes the unseen links: each may exist, or is gone for good */
	{
		int			k = 0;

		for (int i = 0; i < n; i++)
			if (!bsearch(&ids[i], seen, nseen, sizeof(int64), by_int64))
			{
				unseen[k] = lookup_link_may_exist(ids[i]) ? FATE_KEEP : FATE_DROP;
				ids[k++] = ids[i];
			}
		n = k;
	}
	for (int i = 0; i < taken.ndims; i++)
	{
		int64	   *at = n > 0 ? bsearch(&taken.dims[i].key.link_id, ids, n, sizeof(int64), by_int64) : NULL;

		taken.dims_fate[i] = at != NULL ? unseen[at - ids] : FATE_WRITE;
	}
	for (int i = 0; i < taken.nvisitors; i++)
	{
		int64	   *at = n > 0 ? bsearch(&taken.visitors[i].link_id, ids, n, sizeof(int64), by_int64) : NULL;

		taken.visitors_fate[i] = at != NULL ? unseen[at - ids] : FATE_WRITE;
	}
	pfree(unseen);
	pfree(ids);
	pfree(datums);
	pfree(seen);
}

/*
 * write_dims adds taken dimension counts [from, to) to
 * shorturl.link_visits_breakdown.  As the flush does for counts, an UPDATE
 * adds to the values the table has (most of a busy link's values, once its
 * day has begun), and only the rest are inserted.  A value new to its
 * link, day and dimension gets a row of its own while they have fewer than
 * shorturl.max_dimension_values; the new values of a batch take the free
 * places in order of their clicks, and the rest go to "other".  Only the
 * entries to write (decide_fates()) are written.
 */
static void
write_dims(int from, int to)
{
	static SPIPlanPtr plan_update;
	Oid			argtypes[7] = {INT8ARRAYOID, DATEARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, INT4OID};
	int			n = 0;
	int		   *at = palloc((to - from) * sizeof(int));
	bool	   *done;
	Datum	   *cols[6];
	Datum		values[7];
	int			k;

	for (int i = from; i < to; i++)
		if (taken.dims_fate[i] == FATE_WRITE)
			at[n++] = i;
	if (n == 0)
		return;
	done = palloc0(n * sizeof(bool));
	for (int c = 0; c < 6; c++)
		cols[c] = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
	{
		dim_entry  *d = &taken.dims[at[i]];

		cols[0][i] = Int64GetDatum(d->key.link_id);
		/* PostgreSQL's dates count from 2000-01-01 too */
		cols[1][i] = DateADTGetDatum((DateADT) d->key.day);
		cols[2][i] = CStringGetTextDatum(analytics_dim_names[d->key.dim]);
		cols[3][i] = CStringGetTextDatum(d->value);
		cols[4][i] = Int64GetDatum((int64) pg_atomic_read_u64(&d->visits));
		cols[5][i] = Int64GetDatum((int64) pg_atomic_read_u64(&d->bots));
	}
	values[0] = spi_array(cols[0], n, INT8OID);
	values[1] = spi_array(cols[1], n, DATEOID);
	values[2] = spi_array(cols[2], n, TEXTOID);
	values[3] = spi_array(cols[3], n, TEXTOID);
	values[4] = spi_array(cols[4], n, INT8OID);
	values[5] = spi_array(cols[5], n, INT8OID);
	spi_run(spi_plan(&plan_update,
					 "UPDATE shorturl.link_visits_breakdown AS b"
					 "   SET visits = b.visits + d.visits, bots = b.bots + d.bots"
					 "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
					 "                  pg_catalog.unnest($3), pg_catalog.unnest($4),"
					 "                  pg_catalog.unnest($5), pg_catalog.unnest($6))"
					 "       WITH ORDINALITY AS d(link_id, day, dimension, value, visits, bots, i)"
					 " WHERE b.link_id = d.link_id AND b.day = d.day"
					 "   AND b.dimension = d.dimension AND b.value = d.value"
					 " RETURNING d.i",
					 6, argtypes),
			values, NULL, false, SPI_OK_UPDATE_RETURNING);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		i = DatumGetInt64(spi_result((int) r, 1, &isnull));

		if (i >= 1 && i <= n)
			done[i - 1] = true;
	}

	/* the values new to the table */
	k = 0;
	for (int i = 0; i < n; i++)
	{
		if (done[i])
			continue;
		for (int c = 0; c < 6; c++)
			cols[c][k] = cols[c][i];
		k++;
	}
	if (k > 0)
	{
		values[0] = spi_array(cols[0], k, INT8OID);
		values[1] = spi_array(cols[1], k, DATEOID);
		values[2] = spi_array(cols[2], k, TEXTOID);
		values[3] = spi_array(cols[3], k, TEXTOID);
		values[4] = spi_array(cols[4], k, INT8OID);
		values[5] = spi_array(cols[5], k, INT8OID);
		values[6] = Int32GetDatum(shorturl_max_dimension_values);
		spi_run(spi_plan(&plan_dims,
						 "WITH d AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
						 "                                    pg_catalog.unnest($3), pg_catalog.unnest($4),"
						 "                                    pg_catalog.unnest($5), pg_catalog.unnest($6))"
						 "                  AS d(link_id, day, dimension, value, visits, bots)),"
						 "     k AS (SELECT DISTINCT link_id, day, dimension FROM d),"
						 "     have AS (SELECT k.*, (SELECT pg_catalog.count(*) FROM shorturl.link_visits_breakdown b"
						 "                            WHERE b.link_id = k.link_id AND b.day = k.day"
						 "                              AND b.dimension = k.dimension"
						 "                              AND b.value <> '" ANALYTICS_OTHER "') AS n"
						 "                FROM k),"
						 "     r AS (SELECT d.*, h.n, pg_catalog.row_number() OVER (PARTITION BY d.link_id, d.day,"
						 "                         d.dimension ORDER BY d.value = '" ANALYTICS_OTHER "',"
						 "                         d.visits DESC, d.value) AS rank"
						 "             FROM d JOIN have h USING (link_id, day, dimension))"
						 " INSERT INTO shorturl.link_visits_breakdown AS b"
						 "        (link_id, day, dimension, value, visits, bots)"
						 " SELECT link_id, day, dimension,"
						 "        CASE WHEN value <> '" ANALYTICS_OTHER "' AND n + rank <= $7 THEN value"
						 "             ELSE '" ANALYTICS_OTHER "' END,"
						 "        pg_catalog.sum(visits), pg_catalog.sum(bots)"
						 "   FROM r GROUP BY 1, 2, 3, 4"
						 " ON CONFLICT (link_id, day, dimension, value) DO UPDATE"
						 "   SET visits = b.visits + excluded.visits, bots = b.bots + excluded.bots",
						 7, argtypes),
				values, NULL, false, SPI_OK_INSERT);
	}
	for (int c = 0; c < 6; c++)
		pfree(cols[c]);
	pfree(done);
	pfree(at);
}

static int
by_link_day(const void *a, const void *b)
{
	const visitor_key *x = a;
	const visitor_key *y = b;

	if (x->link_id != y->link_id)
		return (x->link_id > y->link_id) - (x->link_id < y->link_id);
	if (x->day != y->day)
		return (x->day > y->day) - (x->day < y->day);
	return (x->vhash > y->vhash) - (x->vhash < y->vhash);
}

/*
 * write_visitors merges the taken visitors into their link-days' sketches.
 * Flushes of a database never overlap, so reading the sketches and writing
 * them back in one transaction loses no visitor.
 */
static void
write_visitors(void)
{
	Oid			argtypes[3] = {INT8ARRAYOID, DATEARRAYOID, BYTEAARRAYOID};
	Datum	   *ids;
	Datum	   *days;
	Datum	   *sketches;
	Datum		values[3];
	int			ngroups = 0;
	hll_sketch *sketch;
	uint64		proc;
	visitor_key *w = palloc((taken.nvisitors + 1) * sizeof(visitor_key));
	int			nw = 0;

	/* the visitors to write, in order of link and day (take_all()) */
	for (int i = 0; i < taken.nvisitors; i++)
		if (taken.visitors_fate[i] == FATE_WRITE)
			w[nw++] = taken.visitors[i];
	if (nw == 0)
		return;
	ids = palloc(nw * sizeof(Datum));
	days = palloc(nw * sizeof(Datum));
	sketches = palloc(nw * sizeof(Datum));
	for (int i = 0; i < nw; i++)
	{
		if (i > 0 && w[i].link_id == w[i - 1].link_id && w[i].day == w[i - 1].day)
			continue;
		ids[ngroups] = Int64GetDatum(w[i].link_id);
		days[ngroups] = DateADTGetDatum((DateADT) w[i].day);
		ngroups++;
	}

	/* the sketches the link-days have, in the order of the groups */
	sketch = palloc(sizeof(hll_sketch));
	values[0] = spi_array(ids, ngroups, INT8OID);
	values[1] = spi_array(days, ngroups, DATEOID);
	spi_run(spi_plan_generic(&plan_sketches,
					 "SELECT v.sketch FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
					 "                     WITH ORDINALITY AS d(link_id, day, n)"
					 "  LEFT JOIN shorturl.link_visitors_daily v"
					 "         ON v.link_id = d.link_id AND v.day = d.day"
					 " ORDER BY d.n",
					 2, argtypes),
			values, NULL, false, SPI_OK_SELECT);
	proc = SPI_processed;
	for (int g = 0, i = 0; g < ngroups && (uint64) g < proc; g++)
	{
		bool		isnull;
		Datum		old = spi_result(g, 1, &isnull);
		bytea	   *out;

		hll_init(sketch);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPP(old);
			size_t		bad_offset;
			hll_status	err = hll_deserialize((const uint8 *) VARDATA_ANY(b),
											  VARSIZE_ANY_EXHDR(b), sketch, &bad_offset);

			if (err != HLL_OK)
			{
				/* only a hand-made row can be bad: it starts again */
				ereport(WARNING,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("pg_shorturl: the visitor sketch of link " INT64_FORMAT " is damaged; it starts again",
								DatumGetInt64(ids[g])),
						 errdetail("%s", hll_error_message(err))));
				hll_init(sketch);
			}
		}
		for (; i < nw && w[i].link_id == DatumGetInt64(ids[g]) &&
			 w[i].day == (int32) DatumGetDateADT(days[g]); i++)
			hll_add(sketch, w[i].vhash);
		out = palloc(VARHDRSZ + hll_serialized_size(sketch));
		SET_VARSIZE(out, VARHDRSZ + hll_serialized_size(sketch));
		hll_serialize(sketch, (uint8 *) VARDATA(out));
		sketches[g] = PointerGetDatum(out);
	}

	values[0] = spi_array(ids, ngroups, INT8OID);
	values[1] = spi_array(days, ngroups, DATEOID);
	values[2] = spi_array(sketches, ngroups, BYTEAOID);
	spi_run(spi_plan_generic(&plan_visitors,
					 "INSERT INTO shorturl.link_visitors_daily AS v (link_id, day, sketch)"
					 " SELECT d.* FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
					 "                            pg_catalog.unnest($3)) AS d(link_id, day, sketch)"
					 " ON CONFLICT (link_id, day) DO UPDATE SET sketch = excluded.sketch",
					 3, argtypes),
			values, NULL, false, SPI_OK_INSERT);
	pfree(sketch);
}

/*
 * analytics_flush writes this database's dimensions and visitors in the
 * current transaction (flush.c's, which holds the flush lock and has SPI
 * connected).  They leave shared memory now and come back if the
 * transaction aborts (analytics_settle()).
 */
void
analytics_flush(Oid relid)
{
	if (dims == NULL || taken.active)
		return;
	taken.active = true;
	take_all(relid);
	decide_fates();
	for (int from = 0; from < taken.ndims; from += DIMS_BATCH_SIZE)
		write_dims(from, Min(from + DIMS_BATCH_SIZE, taken.ndims));
	if (taken.nvisitors > 0)
		write_visitors();
}

/* written_or_dropped tells whether a committed flush is done with an entry */
static bool
written_or_dropped(const char *fate, int i)
{
	return fate != NULL && (fate[i] == FATE_WRITE || fate[i] == FATE_DROP);
}

/*
 * analytics_settle ends the transaction's flush: at abort, what it took
 * goes back (as far as there is room).  Runs in a transaction callback:
 * must not fail.
 */
void
analytics_settle(bool committed)
{
	analytics_losses losses = {0, 0, 0};

	if (!taken.active)
		return;
	/* a standby's batch that did not commit: the standby sends it again */
	if (taken.shipped && !committed)
		taken.ndims = taken.nvisitors = 0;
	for (int i = 0; i < taken.ndims; i++)
	{
		dim_entry  *d = &taken.dims[i];
		uint64		visits = pg_atomic_read_u64(&d->visits);

		if (committed && written_or_dropped(taken.dims_fate, i))
			continue;
		/* a standby's values are new here: they keep out of the reserve */
		add_counted(&d->key, d->value, visits, pg_atomic_read_u64(&d->bots), taken.shipped,
					&losses);
	}
	for (int i = 0; i < taken.nvisitors; i++)
	{
		if (committed && written_or_dropped(taken.visitors_fate, i))
			continue;
		if (!add_visitor(&taken.visitors[i]))
			losses.visitors++;
	}
	note_losses(&losses);
	taken.active = false;
	taken.shipped = false;
	taken.dims = NULL;
	taken.visitors = NULL;
	taken.dims_fate = taken.visitors_fate = NULL;
	taken.ndims = taken.nvisitors = 0;
}

/* ---------------------------------------------------------------------
 * Read replicas: a standby's analytics, shipped with its clicks
 * ---------------------------------------------------------------------
 */

/*
 * analytics_take_for_ship takes this database's dimensions and visitors out
 * of a standby's tables for the batch of clicks its worker ships next
 * (ship.c), in arrays of TopMemoryContext.  Entries of an earlier
 * shorturl.links are dropped.  Runs in a transaction of its own.
 */
void
analytics_take_for_ship(Oid relid, analytics_shipped_dim **out_dims, int *ndims,
						analytics_shipped_visitor **out_visitors, int *nvisitors)
{
	analytics_shipped_dim *d;
	analytics_shipped_visitor *v;

	*out_dims = NULL;
	*out_visitors = NULL;
	*ndims = *nvisitors = 0;
	if (dims == NULL || taken.active ||
		(pg_atomic_read_u32(&counts->ndims) == 0 && pg_atomic_read_u32(&counts->nvisitors) == 0))
		return;
	take_all(relid);
	d = MemoryContextAlloc(TopMemoryContext, Max(taken.ndims, 1) * sizeof(*d));
	v = MemoryContextAlloc(TopMemoryContext, Max(taken.nvisitors, 1) * sizeof(*v));
	for (int i = 0; i < taken.ndims; i++)
	{
		dim_entry  *e = &taken.dims[i];

		d[i].link_id = e->key.link_id;
		d[i].day = e->key.day;
		d[i].dim = e->key.dim;
		d[i].visits = (int64) pg_atomic_read_u64(&e->visits);
		d[i].bots = (int64) pg_atomic_read_u64(&e->bots);
		memcpy(d[i].value, e->value, sizeof(d[i].value));
	}
	for (int i = 0; i < taken.nvisitors; i++)
	{
		v[i].link_id = taken.visitors[i].link_id;
		v[i].day = taken.visitors[i].day;
		v[i].vhash = taken.visitors[i].vhash;
	}
	*out_dims = d;
	*ndims = taken.ndims;
	*out_visitors = v;
	*nvisitors = taken.nvisitors;
	/* (taken's arrays go with the transaction) */
	taken.dims = NULL;
	taken.visitors = NULL;
	taken.dims_fate = taken.visitors_fate = NULL;
	taken.ndims = taken.nvisitors = 0;
}

/*
 * add_shipped adds shipped dimensions and visitors to this server's tables,
 * counting what finds no room.  Must not fail.
 */
static void
add_shipped(Oid relid, const analytics_shipped_dim *d, int nd,
			const analytics_shipped_visitor *v, int nv)
{
	analytics_losses losses = {0, 0, 0};

	for (int i = 0; i < nd; i++)
	{
		dim_key		key;

		make_dim_key(&key, relid, d[i].link_id, d[i].day, (analytics_dim) d[i].dim, d[i].value);
		add_counted(&key, d[i].value, (uint64) d[i].visits, (uint64) d[i].bots, false, &losses);
	}
	for (int i = 0; i < nv; i++)
	{
		visitor_key key;

		make_visitor_key(&key, relid, v[i].link_id, v[i].day, v[i].vhash);
		if (!add_visitor(&key))
			losses.visitors++;
	}
	note_losses(&losses);
}

/*
 * analytics_give_back puts what a batch took back into the tables: a
 * promoted standby's batch the old primary never applied.
 */
void
analytics_give_back(Oid relid, const analytics_shipped_dim *d, int nd,
					const analytics_shipped_visitor *v, int nv)
{
	if (dims != NULL)
		add_shipped(relid, d, nd, v, nv);
}

/*
 * analytics_take_shipped takes a standby's dimensions and visitors into
 * the transaction that applies its batch (apply.c, after
 * flush_apply_shipped(), whose settlement calls analytics_settle()): they
 * join this server's tables at commit, for its flushes to write as its
 * own, and are forgotten at abort, for the standby sends the batch again.
 */
void
analytics_take_shipped(Oid relid, const analytics_shipped_dim *d, int nd,
					   const analytics_shipped_visitor *v, int nv)
{
	if (dims == NULL || taken.active || (nd == 0 && nv == 0))
		return;
	taken.dims = MemoryContextAlloc(TopTransactionContext, Max(nd, 1) * sizeof(dim_entry));
	taken.visitors = MemoryContextAlloc(TopTransactionContext, Max(nv, 1) * sizeof(visitor_key));
	for (int i = 0; i < nd; i++)
	{
		dim_entry  *e = &taken.dims[i];

		make_dim_key(&e->key, relid, d[i].link_id, d[i].day, (analytics_dim) d[i].dim, d[i].value);
		pg_atomic_init_u64(&e->visits, (uint64) d[i].visits);
		pg_atomic_init_u64(&e->bots, (uint64) d[i].bots);
		strlcpy(e->value, d[i].value, sizeof(e->value));
	}
	for (int i = 0; i < nv; i++)
		make_visitor_key(&taken.visitors[i], relid, v[i].link_id, v[i].day, v[i].vhash);
	taken.ndims = nd;
	taken.nvisitors = nv;
	taken.dims_fate = taken.visitors_fate = NULL;
	taken.shipped = true;
	taken.active = true;
}

/* ---------------------------------------------------------------------
 * Across a clean restart: a section of the counters' file
 * (counters_file.c), written and read by the postmaster alone
 * ---------------------------------------------------------------------
 */

/* A dimension entry as saved: its counts read out */
typedef struct saved_dim
{
	dim_key		key;
	uint64		visits;
	uint64		bots;
	char		value[ANALYTICS_VALUE_SIZE];
} saved_dim;

/* What the section says about itself, before its records */
typedef struct saved_header
{
	uint32		dim_size;		/* sizeof(saved_dim): the layout */
	uint32		visitor_size;	/* sizeof(visitor_key) */
	uint64		ndims;
	uint64		nvisitors;
} saved_header;

struct analytics_saved
{
	saved_header h;				/* as written */
	uint64		ndims;			/* read: no more than the tables hold */
	uint64		nvisitors;
	saved_dim  *dims;
	visitor_key *visitors;
};

/*
 * analytics_unsaved counts the entries of both tables: a clean shutdown
 * saves those with clicks when there is any
 */
uint64
analytics_unsaved(void)
{
	if (dims == NULL)
		return 0;
	return (uint64) hash_get_num_entries(dims) + (uint64) hash_get_num_entries(visitors);
}

/*
 * analytics_file_write writes both tables' entries (the postmaster at
 * exit, when no other process is left: no lock); false if a write failed.
 */
bool
analytics_file_write(FILE *file)
{
	saved_header h = {sizeof(saved_dim), sizeof(visitor_key), 0, 0};
	HASH_SEQ_STATUS status;
	dim_entry  *d;
	visitor_key *v;

	if (dims != NULL)
	{
		hash_seq_init(&status, dims);
		while ((d = hash_seq_search(&status)) != NULL)
			if (pg_atomic_read_u64(&d->visits) > 0 || pg_atomic_read_u64(&d->bots) > 0)
				h.ndims++;
		h.nvisitors = (uint64) hash_get_num_entries(visitors);
	}
	if (fwrite(&h, sizeof(h), 1, file) != 1)
		return false;
	if (dims == NULL)
		return true;
	hash_seq_init(&status, dims);
	while ((d = hash_seq_search(&status)) != NULL)
	{
		saved_dim	r;

		if (pg_atomic_read_u64(&d->visits) == 0 && pg_atomic_read_u64(&d->bots) == 0)
			continue;
		memset(&r, 0, sizeof(r));
		r.key = d->key;
		r.visits = pg_atomic_read_u64(&d->visits);
		r.bots = pg_atomic_read_u64(&d->bots);
		strlcpy(r.value, d->value, sizeof(r.value));
		if (fwrite(&r, sizeof(r), 1, file) != 1)
		{
			hash_seq_term(&status);
			return false;
		}
	}
	hash_seq_init(&status, visitors);
	while ((v = hash_seq_search(&status)) != NULL)
		if (fwrite(v, sizeof(*v), 1, file) != 1)
		{
			hash_seq_term(&status);
			return false;
		}
	return true;
}

/*
 * analytics_file_read reads the section written by analytics_file_write,
 * to restore once the file is gone: no more entries than the tables hold
 * (settings may have shrunk them), the rest skipped and logged as lost by
 * analytics_file_restore().  NULL, with *why, if the section is damaged.
 */
analytics_saved *
analytics_file_read(FILE *file, const char **why)
{
	analytics_saved *saved = palloc0(sizeof(analytics_saved));
	struct stat st;
	off_t		at;
	uint64		rest = 0;

	if (fread(&saved->h, sizeof(saved->h), 1, file) != 1)
		*why = "it is truncated";
	else if (saved->h.dim_size != sizeof(saved_dim) || saved->h.visitor_size != sizeof(visitor_key))
		*why = "it was written by another version of pg_shorturl";
	else if (fstat(fileno(file), &st) != 0 || (at = ftello(file)) < 0 || st.st_size < at)
		*why = "it cannot be measured";
	/* the rest of the file is the records: exactly, checked before any allocation */
	else if ((rest = (uint64) (st.st_size - at)) / sizeof(saved_dim) < saved->h.ndims ||
			 rest / sizeof(visitor_key) < saved->h.nvisitors ||
			 saved->h.ndims * sizeof(saved_dim) + saved->h.nvisitors * sizeof(visitor_key) != rest)
		*why = "it is truncated";
	else
	{
		/* no more than the tables hold: the rest is skipped, and counted */
		saved->ndims = Min(saved->h.ndims, (uint64) shorturl_max_pending_dimensions);
		saved->nvisitors = Min(saved->h.nvisitors, (uint64) shorturl_max_pending_visitors);
		saved->dims = palloc_extended((saved->ndims + 1) * sizeof(saved_dim),
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
		saved->visitors = palloc_extended((saved->nvisitors + 1) * sizeof(visitor_key),
										  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
		if (saved->dims == NULL || saved->visitors == NULL)
			*why = "there is not enough memory to read it";
		else if (fread(saved->dims, sizeof(saved_dim), saved->ndims, file) != saved->ndims ||
				 fseeko(file, (off_t) ((saved->h.ndims - saved->ndims) * sizeof(saved_dim)), SEEK_CUR) != 0 ||
				 fread(saved->visitors, sizeof(visitor_key), saved->nvisitors, file) != saved->nvisitors)
			*why = "it is truncated";
		else
		{
			for (uint64 i = 0; i < saved->ndims && *why == NULL; i++)
				if (saved->dims[i].key.dim < 0 || saved->dims[i].key.dim >= ANALYTICS_DIMS)
					*why = "it is damaged";
			if (*why == NULL)
				return saved;
		}
	}
	if (saved->dims)
		pfree(saved->dims);
	if (saved->visitors)
		pfree(saved->visitors);
	pfree(saved);
	return NULL;
}

/*
 * analytics_file_restore puts what analytics_file_read read into the
 * tables just made (the postmaster, before any other process starts), as
 * far as they have room, and frees it.
 */
void
analytics_file_restore(analytics_saved *saved)
{
	uint64		lost = saved->h.ndims - saved->ndims;
	uint64		lost_visitors = saved->h.nvisitors - saved->nvisitors;

	for (uint64 i = 0; i < saved->ndims; i++)
	{
		saved_dim  *r = &saved->dims[i];

		r->value[sizeof(r->value) - 1] = '\0';
		if (add_dim_or_other(&r->key, r->value, r->visits, r->bots, false) == DIM_LOST)
			lost++;
	}
	for (uint64 i = 0; i < saved->nvisitors; i++)
		if (!add_visitor(&saved->visitors[i]))
			lost_visitors++;
	if (saved->h.ndims > 0 || saved->h.nvisitors > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: restored " UINT64_FORMAT " unflushed dimension values and " UINT64_FORMAT " visitors saved at shutdown",
						saved->h.ndims - lost, saved->h.nvisitors - lost_visitors)));
	if (lost > 0 || lost_visitors > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: the analytics tables are too small to restore every saved entry: "
						UINT64_FORMAT " dimension values and " UINT64_FORMAT " visitors are lost",
						lost, lost_visitors),
				 errhint("Raise shorturl.max_pending_dimensions or shorturl.max_pending_visitors.")));
	pfree(saved->dims);
	pfree(saved->visitors);
	pfree(saved);
}
