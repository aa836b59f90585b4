/*-------------------------------------------------------------------------
 *
 * dbstate.c
 *	  Per-database state in shared memory.
 *
 * One slot per database of the server (up to shorturl.max_databases): the
 * launcher fills and frees slots as databases come and go, a backend finds
 * its own once and keeps a pointer, and the worker that serves a database
 * publishes itself in its slot.  The slot also carries the database's
 * statistics (shorturl.stats) and the flags by which backends ask for a
 * flush (the counter table is full) or for a worker (clicks are pending
 * and none runs).
 *
 * Locking: the LWLock guards the identity fields (dboid, ext, dropping,
 * worker_pid, worker_latch, the schedule and the error text).  Flags and
 * statistics are atomics, read and bumped without a lock.  A backend reads
 * its slot's dboid without the lock after finding it: a slot is freed only
 * when its database is gone, and no backend is connected to a database
 * that is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "dbstate.h"
#include "pg_shorturl.h"

typedef struct dbstate_shared
{
	LWLock	   *lock;
	int			launcher_pid;
	Latch	   *launcher_latch;
	ConditionVariable room_cv;	/* broadcast when a flush makes room */
	pg_atomic_uint32 waiting;	/* databases waiting for a worker slot */
	int			ndb;			/* slots */
	db_state	db[FLEXIBLE_ARRAY_MEMBER];
} dbstate_shared;

static dbstate_shared *shared = NULL;

/* this backend's slot, once found */
static db_state *my_slot = NULL;
static Oid	my_slot_db = InvalidOid;

Size
dbstate_shmem_size(void)
{
	return add_size(offsetof(dbstate_shared, db),
					mul_size(shorturl_max_databases, sizeof(db_state)));
}

/* dbstate_request_shmem asks for the slots' memory and lock */
void
dbstate_request_shmem(void)
{
	RequestAddinShmemSpace(dbstate_shmem_size());
	RequestNamedLWLockTranche("pg_shorturl databases", 1);
}

/* init_slot makes a slot free and its statistics zero */
static void
init_slot(db_state *db)
{
	memset(db, 0, sizeof(*db));
	pg_atomic_init_u32(&db->flush_requested, 0);
	pg_atomic_init_u32(&db->worker_wanted, 0);
	pg_atomic_init_u64(&db->flushed_visits, 0);
	pg_atomic_init_u64(&db->flushes, 0);
	pg_atomic_init_u64(&db->last_flush_at, 0);
	pg_atomic_init_u64(&db->last_flush_us, 0);
	pg_atomic_init_u64(&db->purged, 0);
	pg_atomic_init_u64(&db->last_purge_at, 0);
	pg_atomic_init_u64(&db->room_waits, 0);
	pg_atomic_init_u64(&db->analytics_overflow, 0);
	pg_atomic_init_u64(&db->analytics_dropped, 0);
	pg_atomic_init_u64(&db->visitors_dropped, 0);
	pg_atomic_init_u64(&db->scan_clients_blocked, 0);
	pg_atomic_init_u64(&db->scan_lookups_blocked, 0);
	pg_atomic_init_u64(&db->host_lookups_blocked, 0);
	pg_atomic_init_u64(&db->sync_fallbacks, 0);
	pg_atomic_init_u64(&db->refused_clicks, 0);
	pg_atomic_init_u64(&db->dropped_deltas, 0);
	pg_atomic_init_u64(&db->ship_seq, 0);
	memset(db->ship_name, 0, sizeof(db->ship_name));
	pg_atomic_init_u64(&db->ship_next, 0);
	pg_atomic_init_u64(&db->shipped_visits, 0);
	pg_atomic_init_u64(&db->ship_batches, 0);
	pg_atomic_init_u64(&db->ship_failures, 0);
	pg_atomic_init_u64(&db->last_ship_at, 0);
	pg_atomic_init_u64(&db->standby_dropped, 0);
	pg_atomic_init_u64(&db->ship_dims, 0);
	pg_atomic_init_u64(&db->ship_dim_visits, 0);
	pg_atomic_init_u64(&db->ship_visitors, 0);
}

/* dbstate_init_shmem attaches to the slots; from the shmem_startup_hook */
void
dbstate_init_shmem(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_shorturl databases", dbstate_shmem_size(), &found);
	if (!found)
	{
		shared->lock = &(GetNamedLWLockTranche("pg_shorturl databases"))->lock;
		shared->launcher_pid = 0;
		shared->launcher_latch = NULL;
		ConditionVariableInit(&shared->room_cv);
		pg_atomic_init_u32(&shared->waiting, 0);
		shared->ndb = shorturl_max_databases;
		for (int i = 0; i < shared->ndb; i++)
			init_slot(&shared->db[i]);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* dbstate_available tells whether the slots exist (library preloaded) */
bool
dbstate_available(void)
{
	return shared != NULL;
}

void
dbstate_lock(bool exclusive)
{
	LWLockAcquire(shared->lock, exclusive ? LW_EXCLUSIVE : LW_SHARED);
}

void
dbstate_unlock(void)
{
	LWLockRelease(shared->lock);
}

/* dbstate_count is the number of slots, free or not */
int
dbstate_count(void)
{
	return shared ? shared->ndb : 0;
}

/* dbstate_at is slot i (for the launcher and the statistics) */
db_state *
dbstate_at(int i)
{
	return &shared->db[i];
}

/* dbstate_find returns a database's slot, or NULL; lock held */
db_state *
dbstate_find(Oid dboid)
{
	for (int i = 0; i < shared->ndb; i++)
		if (shared->db[i].dboid == dboid)
			return &shared->db[i];
	return NULL;
}

/*
 * dbstate_add returns a database's slot, taking a free one if it has none;
 * NULL when every slot is taken.  Exclusive lock held.
 */
db_state *
dbstate_add(Oid dboid)
{
	db_state   *db = dbstate_find(dboid);

	if (db != NULL)
		return db;
	for (int i = 0; i < shared->ndb; i++)
	{
		if (shared->db[i].dboid == InvalidOid)
		{
			init_slot(&shared->db[i]);
			shared->db[i].dboid = dboid;
			return &shared->db[i];
		}
	}
	return NULL;
}

/* dbstate_remove frees a slot; exclusive lock held */
void
dbstate_remove(db_state *db)
{
	init_slot(db);
}

/*
 * dbstate_mine returns the slot of the database this backend is connected
 * to, adding one if need be; NULL when the library is not preloaded, the
 * backend has no database, or every slot is taken (the database then
 * counts synchronously, and the server log says so once).
 */
db_state *
dbstate_mine(void)
{
	static bool warned = false;

	if (shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	/* the launcher may have freed a slot whose database it does not serve */
	if (my_slot != NULL && my_slot_db == MyDatabaseId && my_slot->dboid == MyDatabaseId)
		return my_slot;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	my_slot = dbstate_add(MyDatabaseId);
	LWLockRelease(shared->lock);
	my_slot_db = MyDatabaseId;
	if (my_slot == NULL && !warned)
	{
		warned = true;
		ereport(LOG,
				(errmsg("pg_shorturl: no room for database %u in shared memory; its clicks are counted synchronously",
						MyDatabaseId),
				 errhint("Raise shorturl.max_databases.")));
	}
	return my_slot;
}

/* dbstate_set_launcher publishes the launcher's latch (NULL: it exits) */
void
dbstate_set_launcher(Latch *latch, int pid)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->launcher_latch = latch;
	shared->launcher_pid = pid;
	LWLockRelease(shared->lock);
}

/* dbstate_wake_launcher sets the launcher's latch, if one runs */
void
dbstate_wake_launcher(void)
{
	Latch	   *latch;

	LWLockAcquire(shared->lock, LW_SHARED);
	latch = shared->launcher_latch;
	if (latch)
		SetLatch(latch);
	LWLockRelease(shared->lock);
}

/*
 * dbstate_request_flush asks the database's worker to flush now (the
 * counter table is full), or the launcher for a worker if none runs.  The
 * request is a flag beside the latch: latches are also set for reasons of
 * PostgreSQL's own, which must not cause a flush.
 */
void
dbstate_request_flush(db_state *db)
{
	Latch	   *latch;

	pg_atomic_write_u32(&db->flush_requested, 1);
	LWLockAcquire(shared->lock, LW_SHARED);
	latch = db->worker_latch;
	if (latch)
		SetLatch(latch);
	else
	{
		pg_atomic_write_u32(&db->worker_wanted, 1);
		if (shared->launcher_latch)
			SetLatch(shared->launcher_latch);
	}
	LWLockRelease(shared->lock);
}

/*
 * dbstate_room_cv is the condition variable a click sleeps on while the
 * counter table is full (clicks.c); every flush broadcasts it.
 */
ConditionVariable *
dbstate_room_cv(void)
{
	return &shared->room_cv;
}

/* dbstate_room_made wakes the clicks waiting for room */
void
dbstate_room_made(void)
{
	if (shared != NULL)
		ConditionVariableBroadcast(&shared->room_cv);
}

/* dbstate_note_error keeps the latest error of a flush or purge */
void
dbstate_note_error(db_state *db, const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(db->last_error, message, sizeof(db->last_error));
	db->last_error_at = now;
	LWLockRelease(shared->lock);
}

/*
 * dbstate_set_ship_batch publishes the batch a standby's worker puts in
 * flight (seq, 0 for none) with the standby name it ships it under.
 * shorturl.standby_batches keys the primary's apply by that name, and
 * shorturl.standby_name may change (a reload) while the batch is in
 * flight, so readers of the batch (clicks.c, ship_promoted()) look it up
 * under this name, not the setting.  The name is written before the number
 * is published, and only when it changes: a new name can only come with a
 * new batch, so a reader whose number goes with an older batch (which it
 * then reads again, the entry's generation having moved) may at worst copy
 * a name half written.
 */
void
dbstate_set_ship_batch(db_state *db, uint64 seq, const char *name)
{
	if (seq != 0 && strncmp(db->ship_name, name, NAMEDATALEN) != 0)
		strlcpy(db->ship_name, name, NAMEDATALEN);
	pg_write_barrier();
	pg_atomic_write_u64(&db->ship_seq, seq);
}

/*
 * dbstate_ship_batch returns the number of the batch in flight (0 for
 * none) and copies the name it went under into name (NAMEDATALEN bytes)
 */
uint64
dbstate_ship_batch(db_state *db, char *name)
{
	uint64		seq = pg_atomic_read_u64(&db->ship_seq);

	pg_read_barrier();
	memcpy(name, db->ship_name, NAMEDATALEN);
	name[NAMEDATALEN - 1] = '\0';
	return seq;
}

/*
 * dbstate_note_drop records that DROP DATABASE began for a database and
 * wakes the launcher, which stops the worker connected to it (DROP
 * DATABASE waits a few seconds for other sessions to leave) and waits
 * before serving that database again, in case the drop fails.
 */
void
dbstate_note_drop(Oid dboid)
{
	db_state   *db;
	TimestampTz now = GetCurrentTimestamp();

	if (shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	/* a slot even for a database not served yet, so none starts serving it */
	db = dbstate_add(dboid);
	if (db != NULL)
	{
		db->dropping = true;
		db->drop_at = now;
	}
	if (shared->launcher_latch)
		SetLatch(shared->launcher_latch);
	LWLockRelease(shared->lock);
}

/*
 * dbstate_set_waiting and dbstate_waiting: how many databases wait for a
 * worker because shorturl.max_workers are busy.  A worker that finishes a
 * round while others wait leaves, so the launcher can serve them in turn.
 */
void
dbstate_set_waiting(uint32 n)
{
	pg_atomic_write_u32(&shared->waiting, n);
}

uint32
dbstate_waiting(void)
{
	return shared ? pg_atomic_read_u32(&shared->waiting) : 0;
}
