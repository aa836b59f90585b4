/*-------------------------------------------------------------------------
 *
 * dbstate.h
 *	  Per-database state in shared memory: which databases have the
 *	  extension, which worker serves each, flush requests, and statistics
 *	  (dbstate.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_DBSTATE_H
#define SHORTURL_DBSTATE_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"

/* What is known of a database's extension */
typedef enum db_extension
{
	DBEXT_UNKNOWN = 0,			/* not looked yet: a worker will look */
	DBEXT_ABSENT,				/* pg_shorturl is not installed there */
	DBEXT_PRESENT				/* installed: a worker serves it */
} db_extension;

#define DBSTATE_ERROR_SIZE 256

typedef struct db_state
{
	/* under dbstate's lock */
	Oid			dboid;			/* InvalidOid: the slot is free */
	db_extension ext;
	bool		dropping;		/* DROP DATABASE began */
	bool		leaving;		/* no longer served: flush once and leave */
	TimestampTz drop_at;
	int			worker_pid;		/* the worker serving it, 0 if none */
	Latch	   *worker_latch;
	TimestampTz due_at;			/* when it next needs a worker's round */
	TimestampTz served_at;		/* when a worker last started for it */

	/* flags set by backends, taken by the worker or the launcher */
	pg_atomic_uint32 flush_requested;
	pg_atomic_uint32 worker_wanted;

	/* statistics: atomics, so no lock is needed to bump or read them */
	pg_atomic_uint64 flushed_visits;
	pg_atomic_uint64 flushes;
	pg_atomic_uint64 last_flush_at;
	pg_atomic_uint64 last_flush_us;
	pg_atomic_uint64 purged;
	pg_atomic_uint64 last_purge_at;
	pg_atomic_uint64 room_waits;
	pg_atomic_uint64 sync_fallbacks;
	pg_atomic_uint64 refused_clicks;
	pg_atomic_uint64 dropped_deltas;
	/* a hot standby's shipping of its clicks (ship.c) */
	pg_atomic_uint64 ship_seq;	/* the batch in flight, 0 for none */
	char		ship_name[NAMEDATALEN];	/* the standby name it went under
										 * (dbstate_ship_batch()) */
	pg_atomic_uint64 ship_next; /* the next batch's number, 0 before the
								 * first connection */
	pg_atomic_uint64 shipped_visits;	/* acknowledged by the primary */
	pg_atomic_uint64 ship_batches;
	pg_atomic_uint64 ship_failures;
	pg_atomic_uint64 last_ship_at;
	pg_atomic_uint64 standby_dropped;	/* served uncounted: no room */
	pg_atomic_uint64 ship_dims;	/* the batch in flight's dimension values
								 * (its worker holds them) */
	pg_atomic_uint64 ship_dim_visits;	/* their clicks */
	pg_atomic_uint64 ship_visitors; /* and its visitors */
	pg_atomic_uint64 analytics_overflow;	/* values sent to "other": no room */
	pg_atomic_uint64 analytics_dropped;	/* dimension values lost: no room */
	pg_atomic_uint64 visitors_dropped;	/* visitors lost: no room */
	pg_atomic_uint64 scan_clients_blocked;	/* blocks of scanning clients */
	pg_atomic_uint64 scan_lookups_blocked;	/* lookups refused to them */
	pg_atomic_uint64 host_lookups_blocked;	/* resolves of blocked hosts */

	/* under dbstate's lock */
	TimestampTz last_error_at;
	char		last_error[DBSTATE_ERROR_SIZE];
} db_state;

extern Size dbstate_shmem_size(void);
extern void dbstate_request_shmem(void);
extern void dbstate_init_shmem(void);
extern bool dbstate_available(void);

extern db_state *dbstate_mine(void);
extern db_state *dbstate_find(Oid dboid);
extern db_state *dbstate_add(Oid dboid);
extern void dbstate_remove(db_state *db);
extern int	dbstate_count(void);
extern db_state *dbstate_at(int i);
extern void dbstate_lock(bool exclusive);
extern void dbstate_unlock(void);

extern void dbstate_set_launcher(Latch *latch, int pid);
extern void dbstate_wake_launcher(void);
extern void dbstate_request_flush(db_state *db);
extern ConditionVariable *dbstate_room_cv(void);
extern void dbstate_room_made(void);
extern void dbstate_note_error(db_state *db, const char *message);
extern void dbstate_set_ship_batch(db_state *db, uint64 seq, const char *name);
extern uint64 dbstate_ship_batch(db_state *db, char *name);
extern void dbstate_note_drop(Oid dboid);
extern void dbstate_set_waiting(uint32 n);
extern uint32 dbstate_waiting(void);

#endif							/* SHORTURL_DBSTATE_H */
