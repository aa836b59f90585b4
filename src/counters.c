/*-------------------------------------------------------------------------
 *
 * counters.c
 *	  The shared-memory table of click counters.
 *
 * With shared_preload_libraries = 'pg_shorturl', a click of a link bumps a
 * counter here instead of updating a row: no row lock, no dead tuple, no
 * WAL.  The worker of the link's database later adds the pending clicks to
 * shorturl.visit_counts (flush.c).  This file is the table itself: its
 * memory and its slots.  clicks.c, flush.c and counters_file.c (which
 * keeps the pending clicks across a clean restart) use it.
 *
 * Shape.  The table is split into COUNTER_PARTITIONS partitions, as
 * PostgreSQL splits its buffer mapping and lock tables, each with its own
 * LWLock, its own array of slots (open addressing, linear probing, deletion
 * by backward shift) and its own CLOCK hand.  A key's hash picks the
 * partition and the first slot.  A partition holds at most its share of
 * shorturl.max_pending_links entries, in an array a quarter larger, so
 * probes stay short.
 *
 * Locking protocol
 * ----------------
 * - A partition's LWLock guards which slots hold which keys.  Finding an
 *   entry needs it in shared mode; adding or removing one (and so moving
 *   others: backward shift) needs it exclusive.  Pointers to entries are
 *   valid only while the lock is held.
 * - pending and last_visit are atomics: an unlimited link's click adds to
 *   pending under the shared lock, with no other lock at all.
 * - An entry's spinlock guards its plain fields (inflight, flush_xid,
 *   total, exhausted_at, usage, limited).  Only loads and stores happen
 *   under it.  gen is an atomic that changes, under the spinlock, whenever
 *   a flush moves clicks from pending to inflight or settles them; readers
 *   that combine shared memory with the table use it to detect that a flush
 *   moved under them (clicks.c).
 * - An entry may be removed only while nothing is pending or in flight:
 *   all of its clicks are then in the table, committed.  Each partition
 *   counts its removals (evictions); a backend that read a link's visits
 *   from the table before creating its entry checks that none happened
 *   meanwhile, since a removed entry's last flush may postdate the read.
 * - Flushes of a database are serialised by the advisory lock
 *   SHORTURL_LOCK_FLUSH, held to the end of the flushing transaction, and
 *   a limited link's entry is created under the advisory lock
 *   SHORTURL_LOCK_LINK (see clicks.c and flush.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "counters.h"
#include "pg_shorturl.h"

/* Partitions of the table; a power of two, like NUM_LOCK_PARTITIONS */
#define COUNTER_PARTITIONS	64

/*
 * Slots per entry a partition may hold: with linear probing, a table at
 * most 80% full keeps a probe to a few slots.
 */
#define SLOTS_PER_ENTRY_NUM 5
#define SLOTS_PER_ENTRY_DEN 4

typedef struct counter_partition
{
	uint32		used;			/* entries held, under the lock */
	uint32		hand;			/* CLOCK hand, under the exclusive lock */
	uint64		evictions;		/* removals, under the exclusive lock */
} counter_partition;

typedef struct counters_shared
{
	uint32		slots;			/* slots per partition */
	uint32		limit;			/* entries per partition */
	counter_partition part[COUNTER_PARTITIONS];
	/* then COUNTER_PARTITIONS * slots entries */
} counters_shared;

static counters_shared *shared = NULL;
static counter_entry *slots = NULL;
static LWLockPadded *locks = NULL;

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

/* slots_per_partition is the size of a partition's slot array */
static uint32
slots_per_partition(void)
{
	uint64		entries = ((uint64) shorturl_max_pending_links + COUNTER_PARTITIONS - 1) /
		COUNTER_PARTITIONS;

	return (uint32) (entries * SLOTS_PER_ENTRY_NUM / SLOTS_PER_ENTRY_DEN + 1);
}

/* counters_shmem_size is the shared memory the table needs */
Size
counters_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(counters_shared)),
					mul_size(mul_size(COUNTER_PARTITIONS, slots_per_partition()),
							 sizeof(counter_entry)));
}

/* counters_request_shmem asks for the table's memory and locks */
void
counters_request_shmem(void)
{
	RequestAddinShmemSpace(counters_shmem_size());
	RequestNamedLWLockTranche("pg_shorturl counters", COUNTER_PARTITIONS);
}

/*
 * counters_init_shmem attaches to (or, first, creates) the table; from the
 * shmem_startup_hook.  Returns whether it created it.
 */
bool
counters_init_shmem(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_shorturl counters", counters_shmem_size(), &found);
	slots = (counter_entry *) ((char *) shared + MAXALIGN(sizeof(counters_shared)));
	locks = GetNamedLWLockTranche("pg_shorturl counters");
	if (!found)
	{
		uint64		nslots;

		shared->slots = slots_per_partition();
		shared->limit = (uint32) (((uint64) shorturl_max_pending_links + COUNTER_PARTITIONS - 1) /
								  COUNTER_PARTITIONS);
		memset(shared->part, 0, sizeof(shared->part));
		nslots = (uint64) COUNTER_PARTITIONS * shared->slots;
		for (uint64 i = 0; i < nslots; i++)
		{
			memset(&slots[i], 0, sizeof(counter_entry));
			SpinLockInit(&slots[i].mutex);
			pg_atomic_init_u64(&slots[i].pending, 0);
			pg_atomic_init_u64(&slots[i].pending_bots, 0);
			pg_atomic_init_u64(&slots[i].first_hour, 0);
			pg_atomic_init_u32(&slots[i].gen, 0);
			pg_atomic_init_u64(&slots[i].last_visit, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
	return !found;
}

/* counters_available tells whether the table exists (library preloaded) */
bool
counters_available(void)
{
	return shared != NULL;
}

/* ---------------------------------------------------------------------
 * Slots
 * ---------------------------------------------------------------------
 */

/* counters_make_key fills a key */
void
counters_make_key(counter_key *key, Oid dbid, Oid relid, int64 link_id)
{
	key->dbid = dbid;
	key->relid = relid;
	key->link_id = link_id;
}

/*
 * counters_hash mixes a key into 32 bits (the finaliser of SplitMix64):
 * link ids are sequential, so their low bits alone would cluster.
 */
uint32
counters_hash(const counter_key *key)
{
	uint64		h = (uint64) key->link_id ^ ((uint64) key->dbid << 40) ^
		((uint64) key->relid << 20);

	h ^= h >> 30;
	h *= UINT64CONST(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64CONST(0x94d049bb133111eb);
	h ^= h >> 31;
	return (uint32) h;
}

/* partition_of: the low bits pick the partition */
static inline int
partition_of(uint32 hash)
{
	return (int) (hash % COUNTER_PARTITIONS);
}

/* home_slot: the rest of the hash picks the first slot to probe */
static inline uint32
home_slot(uint32 hash)
{
	return (hash / COUNTER_PARTITIONS) % shared->slots;
}

static inline counter_entry *
slot_at(int p, uint32 i)
{
	return &slots[(uint64) p * shared->slots + i];
}

/* counters_lock_for is the lock of the partition a hash falls in */
LWLock *
counters_lock_for(uint32 hash)
{
	return &locks[partition_of(hash)].lock;
}

/* counters_evictions counts removals from a hash's partition (under its lock) */
uint64
counters_evictions(uint32 hash)
{
	return shared->part[partition_of(hash)].evictions;
}

static inline bool
key_equal(const counter_key *a, const counter_key *b)
{
	return a->link_id == b->link_id && a->relid == b->relid && a->dbid == b->dbid;
}

/* counters_lookup finds a key's entry; the caller holds the partition lock */
counter_entry *
counters_lookup(const counter_key *key, uint32 hash)
{
	int			p = partition_of(hash);
	uint32		i = home_slot(hash);

	for (uint32 n = 0; n < shared->slots; n++)
	{
		counter_entry *e = slot_at(p, i);

		if (e->key.dbid == InvalidOid)
			return NULL;
		if (e->hash == hash && key_equal(&e->key, key))
			return e;
		if (++i == shared->slots)
			i = 0;
	}
	return NULL;
}

/*
 * remove_slot empties slot i of partition p and shifts the entries after
 * it back, so every entry stays reachable from its home slot (deletion in
 * linear probing without tombstones).  Exclusive lock held.
 */
static void
remove_slot(int p, uint32 i)
{
	uint32		hole = i;
	uint32		j = i;

	for (;;)
	{
		counter_entry *e;
		uint32		home;

		if (++j == shared->slots)
			j = 0;
		e = slot_at(p, j);
		if (e->key.dbid == InvalidOid)
			break;
		home = home_slot(e->hash);
		/* can e move to the hole?  only if its home is not in (hole, j] */
		if ((hole <= j) ? (home <= hole || home > j) : (home <= hole && home > j))
		{
			counter_entry *h = slot_at(p, hole);

			h->key = e->key;
			h->hash = e->hash;
			h->usage = e->usage;
			h->limited = e->limited;
			pg_atomic_write_u64(&h->pending, pg_atomic_read_u64(&e->pending));
			pg_atomic_write_u64(&h->pending_bots, pg_atomic_read_u64(&e->pending_bots));
			pg_atomic_write_u64(&h->first_hour, pg_atomic_read_u64(&e->first_hour));
			h->inflight_bots = e->inflight_bots;
			h->moving = e->moving;
			h->move_open = e->move_open;
			h->moved_at = e->moved_at;
			pg_atomic_write_u32(&h->gen, pg_atomic_read_u32(&e->gen));
			h->flush_xid = e->flush_xid;
			h->inflight = e->inflight;
			h->total = e->total;
			pg_atomic_write_u64(&h->last_visit, pg_atomic_read_u64(&e->last_visit));
			h->exhausted_at = e->exhausted_at;
			hole = j;
		}
	}
	slot_at(p, hole)->key.dbid = InvalidOid;
	shared->part[p].used--;
	shared->part[p].evictions++;
}

/* counters_delete removes an entry; exclusive lock held */
void
counters_delete(counter_entry *e)
{
	uint64		index = (uint64) (e - slots);

	remove_slot((int) (index / shared->slots), (uint32) (index % shared->slots));
}

/*
 * evict_one gives up the least recently used entry of a partition that has
 * nothing pending or in flight, and is not the fence of a link moving away
 * (CLOCK: each pass lowers usage counts until one reaches zero).  False if
 * every entry holds unflushed clicks or a fence.  Exclusive lock held, so
 * no click can land on the victim meanwhile.
 */
static bool
evict_one(int p)
{
	counter_partition *part = &shared->part[p];
	uint32		scanned = 0;
	uint32		limit = shared->slots * (COUNTER_MAX_USAGE + 1);
	TimestampTz now = 0;

	while (scanned++ < limit)
	{
		uint32		i = part->hand;
		counter_entry *e = slot_at(p, i);

		if (++part->hand == shared->slots)
			part->hand = 0;
		if (e->key.dbid == InvalidOid)
			continue;
		if (pg_atomic_read_u64(&e->pending) != 0 || e->inflight != 0)
			continue;
		/* without its entry, a moved link would count here again (clicks.c) */
		if (e->moving)
		{
			if (now == 0)
				now = GetCurrentTimestamp();
			if (counters_fenced(e, now))
				continue;
		}
		if (e->usage > 0)
		{
			e->usage--;
			continue;
		}
		remove_slot(p, i);
		return true;
	}
	return false;
}

/*
 * counters_enter finds or adds a key's entry, giving up an idle entry of
 * the partition if it is full.  NULL when the partition is full of entries
 * with unflushed clicks.  A new entry is zeroed; *found tells which.
 * Exclusive lock held.
 */
counter_entry *
counters_enter(const counter_key *key, uint32 hash, bool *found)
{
	int			p = partition_of(hash);
	uint32		i;
	counter_entry *e = counters_lookup(key, hash);

	*found = (e != NULL);
	if (e != NULL)
		return e;
	if (shared->part[p].used >= shared->limit && !evict_one(p))
		return NULL;

	for (i = home_slot(hash);; i = (i + 1 == shared->slots) ? 0 : i + 1)
	{
		e = slot_at(p, i);
		if (e->key.dbid == InvalidOid)
			break;
	}
	e->key = *key;
	e->hash = hash;
	e->usage = 1;
	e->limited = false;
	pg_atomic_write_u64(&e->pending, 0);
	pg_atomic_write_u64(&e->pending_bots, 0);
	pg_atomic_write_u64(&e->first_hour, 0);
	e->flush_xid = InvalidTransactionId;
	e->inflight = 0;
	e->inflight_bots = 0;
	e->total = 0;
	pg_atomic_write_u64(&e->last_visit, 0);
	e->exhausted_at = 0;
	e->moving = false;
	e->move_open = false;
	e->moved_at = 0;
	shared->part[p].used++;
	return e;
}

/* counters_capacity is the number of entries the table can hold */
uint64
counters_capacity(void)
{
	return (uint64) COUNTER_PARTITIONS * shared->limit;
}

/* counters_partitions is the number of partitions */
int
counters_partitions(void)
{
	return COUNTER_PARTITIONS;
}

/* counters_partition_lock is partition p's lock */
LWLock *
counters_partition_lock(int p)
{
	return &locks[p].lock;
}

/*
 * counters_scan calls visit on every entry of partition p until it returns
 * false.  The caller holds the partition's lock, and visit must not add or
 * remove entries.
 */
void
counters_scan(int p, counters_visitor visit, void *arg)
{
	for (uint32 i = 0; i < shared->slots; i++)
	{
		counter_entry *e = slot_at(p, i);

		if (e->key.dbid != InvalidOid && !visit(e, arg))
			return;
	}
}

/*
 * counters_discard_database removes the entries of a database (or, with
 * every_other, of every database but it) and returns the clicks they held
 * unflushed: nobody will flush them now.  For a dropped database, and for
 * clicks restored for a database that no longer exists.
 */
int64
counters_discard_database(Oid dbid, bool every_other)
{
	int64		dropped = 0;

	if (shared == NULL)
		return 0;
	for (int p = 0; p < COUNTER_PARTITIONS; p++)
	{
		LWLockAcquire(&locks[p].lock, LW_EXCLUSIVE);
		for (uint32 i = 0; i < shared->slots;)
		{
			counter_entry *e = slot_at(p, i);

			if (e->key.dbid != InvalidOid && ((e->key.dbid == dbid) != every_other))
			{
				dropped += (int64) pg_atomic_read_u64(&e->pending) + e->inflight;
				/* the shift may move another entry into slot i: look again */
				remove_slot(p, i);
				continue;
			}
			i++;
		}
		LWLockRelease(&locks[p].lock);
	}
	return dropped;
}

/*
 * counters_database_pending returns the clicks a database's entries hold
 * unflushed.
 */
int64
counters_database_pending(Oid dbid)
{
	int64		pending = 0;

	if (shared == NULL)
		return 0;
	for (int p = 0; p < COUNTER_PARTITIONS; p++)
	{
		LWLockAcquire(&locks[p].lock, LW_SHARED);
		for (uint32 i = 0; i < shared->slots; i++)
		{
			counter_entry *e = slot_at(p, i);

			if (e->key.dbid == dbid)
			{
				pending += (int64) pg_atomic_read_u64(&e->pending);
				SpinLockAcquire(&e->mutex);
				pending += e->inflight;
				SpinLockRelease(&e->mutex);
			}
		}
		LWLockRelease(&locks[p].lock);
	}
	return pending;
}

/*
 * counters_discard_stale removes partition p's entries of database dbid
 * whose links table is not relid, and returns the clicks they held.
 */
int64
counters_discard_stale(int p, Oid dbid, Oid relid)
{
	int64		dropped = 0;

	LWLockAcquire(&locks[p].lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < shared->slots;)
	{
		counter_entry *e = slot_at(p, i);

		if (e->key.dbid == dbid && e->key.relid != relid && e->inflight == 0)
		{
			dropped += (int64) pg_atomic_read_u64(&e->pending);
			/* the shift may move another entry into slot i: look again */
			remove_slot(p, i);
			continue;
		}
		i++;
	}
	LWLockRelease(&locks[p].lock);
	return dropped;
}
