/*-------------------------------------------------------------------------
 *
 * counters.h
 *	  The shared-memory table of click counters (counters.c).  The click
 *	  path is in clicks.c, the flush in flush.c, and the file that keeps
 *	  pending clicks across a clean restart in counters_file.c; all follow
 *	  the locking protocol stated at the top of counters.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_COUNTERS_H
#define SHORTURL_COUNTERS_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/*
 * A link is known by its database, its links table and its id.  No two
 * links of a table share an id; the table's OID tells an incarnation of the
 * extension (DROP and CREATE EXTENSION start the ids again) from the next.
 */
typedef struct counter_key
{
	Oid			dbid;
	Oid			relid;			/* shorturl.links */
	int64		link_id;
} counter_key;

typedef struct counter_entry
{
	counter_key key;			/* dbid InvalidOid: the slot is free */
	uint32		hash;
	slock_t		mutex;			/* guards the plain fields below */
	uint8		usage;			/* CLOCK reference count, 0..COUNTER_MAX_USAGE */
	bool		limited;		/* total is kept: the link has max_visits */
	bool		moving;			/* under the exclusive partition lock: a
								 * rebalance took the link away at moved_at
								 * (see clicks.c) */
	bool		move_open;		/* moving, and the move's transaction has
								 * not ended: moved_at is when it began */
	pg_atomic_uint64 pending;	/* clicks no flush has taken yet */
	pg_atomic_uint64 pending_bots;	/* of those, clicks by bots */
	pg_atomic_uint64 first_hour;	/* the hour of the oldest pending clicks
									 * and how many of them: COUNTER_HOUR_* */
	pg_atomic_uint32 gen;		/* changes whenever a flush takes or settles */
	TransactionId flush_xid;	/* the flush holding inflight */
	int64		inflight;		/* clicks taken by that flush, not settled */
	int64		inflight_bots;	/* of those, clicks by bots */
	int64		total;			/* limited links: visits so far, all told */
	pg_atomic_uint64 last_visit;	/* TimestampTz of the latest click */
	TimestampTz exhausted_at;	/* limited links: when total reached the max */
	TimestampTz moved_at;		/* see moving: when the move took the
								 * clicks, then when it committed */
} counter_entry;

/* How long a moved link's entry refuses clicks after its move commits (see
 * clicks.c) */
#define COUNTER_MOVE_FENCE_MS	10000

/*
 * counters_fenced tells whether a rebalance's move fences an entry at now:
 * while the move's transaction is open, and for COUNTER_MOVE_FENCE_MS after
 * it committed.  The partition lock is held.
 */
static inline bool
counters_fenced(const counter_entry *e, TimestampTz now)
{
	return e->moving &&
		(e->move_open || now < TimestampTzPlusMilliseconds(e->moved_at, COUNTER_MOVE_FENCE_MS));
}

#define COUNTER_MAX_USAGE	3

/*
 * first_hour packs an hour (since 2000-01-01 UTC) in its top 24 bits and a
 * count of clicks in that hour in the other 40; 0 when no click is pending.
 * The flush writes those clicks to that hour of a link's series and the
 * rest of its pending clicks to the hour of the latest (clicks.c).
 */
#define COUNTER_HOUR_SHIFT	40
#define COUNTER_HOUR_COUNT_MASK ((UINT64CONST(1) << COUNTER_HOUR_SHIFT) - 1)
#define COUNTER_HOUR_MAX	((UINT64CONST(1) << (64 - COUNTER_HOUR_SHIFT)) - 1)

extern void counters_request_shmem(void);
extern bool counters_init_shmem(void);
extern Size counters_shmem_size(void);
extern bool counters_available(void);

extern void counters_make_key(counter_key *key, Oid dbid, Oid relid, int64 link_id);
extern uint32 counters_hash(const counter_key *key);
extern LWLock *counters_lock_for(uint32 hash);
extern uint64 counters_evictions(uint32 hash);
extern counter_entry *counters_lookup(const counter_key *key, uint32 hash);
extern counter_entry *counters_enter(const counter_key *key, uint32 hash, bool *found);
extern uint64 counters_capacity(void);
extern void counters_delete(counter_entry *e);

/* walking the table: a partition at a time, under its lock */
extern int	counters_partitions(void);
extern LWLock *counters_partition_lock(int p);
typedef bool (*counters_visitor) (counter_entry *e, void *arg);
extern void counters_scan(int p, counters_visitor visit, void *arg);
extern int64 counters_discard_database(Oid dbid, bool every_other);
extern int64 counters_database_pending(Oid dbid);
extern int64 counters_discard_stale(int p, Oid dbid, Oid relid);

#endif							/* SHORTURL_COUNTERS_H */
