/*-------------------------------------------------------------------------
 *
 * counters.c
 *	  Click counters in shared memory, and the flush that writes them to
 *	  shorturl.links.
 *
 * With shared_preload_libraries = 'pg_shorturl', a visit of a link in the
 * database the background worker serves bumps an entry of a shared hash
 * table keyed by (database, links table, code) instead of updating the
 * link's row: no row lock, no dead tuple, no WAL.  The worker (or
 * shorturl.flush()) later adds the pending clicks to the table in batches.
 *
 * An entry holds two counts.  "total" is the link's visits: the table's
 * value when the entry was made plus every click since, so max_visits is
 * checked against it exactly, whatever the flush is doing.  "pending" is
 * the part of total not yet written to the table.
 *
 * Locking protocol
 * ----------------
 * - state->lock, an LWLock, guards the hash table's shape: finding an entry
 *   needs it in shared mode, inserting or removing one needs it exclusive.
 * - Each entry's spinlock guards its counts (total, pending, last_visit).
 *   A click takes the LWLock shared, finds its entry and bumps it under the
 *   spinlock: the click path takes no exclusive lock unless it must create
 *   the entry.
 * - state->evictions counts removals; it changes only under the exclusive
 *   lock.  A backend that read a link's visits to create an entry checks it
 *   did not change meanwhile, since a removed entry's last flush could have
 *   landed after that read.
 * - Making an entry for a link, and counting a click of it synchronously
 *   when the table is full, are serialised per link by a heavyweight
 *   advisory lock (class SHORTURL_LOCK_LINK).  The creator holds it while it
 *   reads the link's visits and inserts the entry; a synchronous click holds
 *   it until its transaction ends.  So an entry's total never misses a
 *   synchronous click that is about to commit.  (A transaction that counts
 *   many distinct links synchronously therefore holds a lock per link:
 *   synchronous counting is the rare case of a table full of links with
 *   unflushed clicks, since a full table first gives up an entry with none.)
 * - Flushes are serialised by the advisory lock SHORTURL_LOCK_FLUSH, held
 *   to the end of the flushing transaction.  The deltas a flush applied are
 *   subtracted from pending in the commit callback, which runs after the
 *   commit record and before that lock is released; an aborted flush
 *   subtracts nothing, so it loses nothing.
 * - The statistics and the worker's identity are guarded by
 *   state->stats_lock, a spinlock; the database the worker serves, which
 *   every click reads, is an atomic variable instead.
 *
 * Restarts.  At a clean shutdown the postmaster, after every other process
 * has exited, writes the entries still pending to a file, and reads them
 * back at the next start, as pg_stat_statements does with its statistics.
 * After a crash nothing is read: the clicks since the last flush are lost.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_control.h"
#include "catalog/pg_type.h"
#include "common/controldata_utils.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "counters.h"
#include "pg_shorturl.h"
#include "validate.h"

/* Where a clean shutdown leaves the pending clicks for the next start */
#define COUNTERS_DUMP_FILE	"pg_stat/pg_shorturl_counters.stat"
#define COUNTERS_DUMP_MAGIC	0x53555243	/* "SURC" */
#define COUNTERS_DUMP_VERSION 1

/* Rows per UPDATE statement of a flush */
#define FLUSH_BATCH_SIZE	1000

/*
 * A backend that finds its entry removed while it made a new one starts
 * over; after this many tries it counts the click synchronously instead.
 */
#define MAX_CREATE_ATTEMPTS 3

#define LAST_ERROR_SIZE		256

typedef struct counter_key
{
	Oid			dbid;
	Oid			relid;			/* the shorturl.links it counts for */
	char		code[ALIAS_MAX_LENGTH + 1]; /* zero-padded */
} counter_key;

typedef struct counter_entry
{
	counter_key key;			/* hash key: must be first */
	slock_t		mutex;			/* guards the fields below */
	TimestampTz link_created;	/* the link's created_at */
	int64		total;			/* visits of the link, flushed or not */
	int64		pending;		/* visits not yet in the table */
	TimestampTz last_visit;
} counter_entry;

typedef struct counters_state
{
	LWLock	   *lock;
	uint64		evictions;		/* under lock */
	bool		flush_committing;	/* a flush applied deltas, not yet
									 * subtracted */
	bool		flush_requested;	/* a backend found the table full */
	bool		room_exhausted; /* every entry holds unflushed clicks */

	slock_t		stats_lock;		/* guards everything below */
	pg_atomic_uint32 served_dboid;	/* read on every click: no lock */
	int			worker_pid;
	Latch	   *worker_latch;
	Oid			dropping_dboid; /* DROP DATABASE under way for it */
	TimestampTz drop_requested_at;
	int64		flushed_visits;
	int64		flushes;
	TimestampTz last_flush_at;
	double		last_flush_ms;
	int64		purged;
	TimestampTz last_purge_at;
	int64		sync_fallbacks;
	int64		dropped_deltas;
	TimestampTz last_error_at;
	char		last_error[LAST_ERROR_SIZE];
} counters_state;

/* One delta a flush applies, kept until its transaction ends */
typedef struct flush_item
{
	counter_key key;
	TimestampTz link_created;
	int64		delta;
	TimestampTz last_visit;
	bool		applied;		/* the link was still there */
} flush_item;

/* The flush of the current transaction, if any */
static struct
{
	bool		active;
	SubTransactionId subid;
	flush_item *items;			/* in TopTransactionContext */
	int			nitems;
	TimestampTz started;
} flush_tx;

static counters_state *state = NULL;
static HTAB *counters_hash = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool callbacks_registered = false;

static void counters_shmem_request(void);
static void counters_shmem_startup(void);
static void counters_shmem_shutdown(int code, Datum arg);
static void flush_xact_callback(XactEvent event, void *arg);
static void flush_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

static Size
counters_memsize(void)
{
	return add_size(MAXALIGN(sizeof(counters_state)),
					hash_estimate_size(shorturl_max_pending_links,
									   sizeof(counter_entry)));
}

/*
 * counters_init installs the shared-memory hooks; called from _PG_init
 * while shared_preload_libraries is processed.
 */
void
counters_init(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = counters_shmem_request;
#else
	counters_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = counters_shmem_startup;
}

static void
counters_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(counters_memsize());
	RequestNamedLWLockTranche("pg_shorturl", 1);
}

/*
 * shut_down_cleanly tells whether the server last stopped with a shutdown
 * checkpoint (fast or smart shutdown), from the control file, which the
 * startup process has not yet touched when shared memory is made.
 */
static bool
shut_down_cleanly(void)
{
	bool		crc_ok;
	ControlFileData *control = get_controlfile(DataDir, &crc_ok);
	bool		clean = crc_ok && (control->state == DB_SHUTDOWNED ||
								   control->state == DB_SHUTDOWNED_IN_RECOVERY);

	pfree(control);
	return clean;
}

/*
 * load_dump reads the pending clicks a clean shutdown left (postmaster).
 * After an immediate shutdown the file may exist too, written from shared
 * memory that processes killed mid-update may have left inconsistent: it
 * is discarded, and the clicks since the last flush are lost, as after a
 * crash.
 */
static void
load_dump(void)
{
	FILE	   *file = AllocateFile(COUNTERS_DUMP_FILE, PG_BINARY_R);
	uint32		header[3];
	int64		loaded = 0;

	if (file != NULL && !shut_down_cleanly())
	{
		ereport(LOG,
				(errmsg("pg_shorturl: discarding unflushed visits saved by an unclean shutdown")));
		FreeFile(file);
		unlink(COUNTERS_DUMP_FILE);
		return;
	}
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", COUNTERS_DUMP_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, file) != 1 ||
		header[0] != COUNTERS_DUMP_MAGIC || header[1] != COUNTERS_DUMP_VERSION)
		goto bad;

	for (uint32 i = 0; i < header[2]; i++)
	{
		counter_entry saved;
		counter_entry *e;
		bool		found;

		if (fread(&saved, sizeof(saved), 1, file) != 1)
			goto bad;
		e = hash_search(counters_hash, &saved.key, HASH_ENTER_NULL, &found);
		if (e == NULL)
		{
			ereport(LOG,
					(errmsg("pg_shorturl: shorturl.max_pending_links is too small to hold the %u saved counters; the rest are lost",
							header[2])));
			break;
		}
		SpinLockInit(&e->mutex);
		e->link_created = saved.link_created;
		e->total = saved.total;
		e->pending = saved.pending;
		e->last_visit = saved.last_visit;
		loaded += saved.pending;
	}
	FreeFile(file);
	unlink(COUNTERS_DUMP_FILE);
	if (loaded > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: restored " INT64_FORMAT " unflushed visits saved at shutdown",
						loaded)));
	return;

bad:
	ereport(LOG,
			(errmsg("pg_shorturl: ignoring damaged file \"%s\"", COUNTERS_DUMP_FILE)));
	FreeFile(file);
	unlink(COUNTERS_DUMP_FILE);
}

static void
counters_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	state = ShmemInitStruct("pg_shorturl", sizeof(counters_state), &found);
	if (!found)
	{
		memset(state, 0, sizeof(*state));
		state->lock = &(GetNamedLWLockTranche("pg_shorturl"))->lock;
		SpinLockInit(&state->stats_lock);
		pg_atomic_init_u32(&state->served_dboid, InvalidOid);
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(counter_key);
	info.entrysize = sizeof(counter_entry);
	/*
	 * HASH_FIXED_SIZE: the table never takes more shared memory than it
	 * asked for at start, which the lock manager and others need.
	 */
	counters_hash = ShmemInitHash("pg_shorturl counters",
								  shorturl_max_pending_links,
								  shorturl_max_pending_links,
								  &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);

	/* the postmaster restores saved clicks and saves them at shutdown */
	if (!IsUnderPostmaster)
	{
		if (!found)
			load_dump();
		on_shmem_exit(counters_shmem_shutdown, (Datum) 0);
	}
}

/*
 * counters_shmem_shutdown runs in the postmaster when it exits, after all
 * other processes are gone.  It saves pending clicks unless the exit is a
 * crash (shared memory may be inconsistent) or a flush was caught between
 * its commit and its subtraction (its clicks would be counted twice).
 */
static void
counters_shmem_shutdown(int code, Datum arg pg_attribute_unused())
{
	FILE	   *file;
	HASH_SEQ_STATUS seq;
	counter_entry *e;
	uint32		header[3] = {COUNTERS_DUMP_MAGIC, COUNTERS_DUMP_VERSION, 0};
	const char *tmp = COUNTERS_DUMP_FILE ".tmp";

	if (code != 0 || state == NULL || counters_hash == NULL)
		return;
	if (state->flush_committing)
	{
		ereport(LOG,
				(errmsg("pg_shorturl: not saving unflushed visits: a flush was interrupted")));
		return;
	}

	hash_seq_init(&seq, counters_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->pending > 0)
			header[2]++;
	if (header[2] == 0)
		return;

	file = AllocateFile(tmp, PG_BINARY_W);
	if (file == NULL)
		goto error;
	if (fwrite(header, sizeof(header), 1, file) != 1)
		goto error;
	hash_seq_init(&seq, counters_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->pending > 0 && fwrite(e, sizeof(*e), 1, file) != 1)
		{
			hash_seq_term(&seq);
			goto error;
		}
	}
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(tmp, COUNTERS_DUMP_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", tmp)));
	if (file)
		FreeFile(file);
	unlink(tmp);
}

/*
 * counters_serving tells whether clicks in this database go to shared
 * memory: the library is preloaded and the worker serves this database (so
 * someone flushes them).  resolve() checks for a standby before asking.
 */
bool
counters_serving(void)
{
	if (state == NULL)
		return false;
	/* every click asks: an atomic read, not the statistics' spinlock */
	return OidIsValid(MyDatabaseId) &&
		(Oid) pg_atomic_read_u32(&state->served_dboid) == MyDatabaseId;
}

/* ---------------------------------------------------------------------
 * Clicks
 * ---------------------------------------------------------------------
 */

static void
make_key(counter_key *key, Oid relid, const char *code, int code_len)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->relid = relid;
	memcpy(key->code, code, Min(code_len, ALIAS_MAX_LENGTH));
}

/* bump_entry counts one click in an entry, unless the link is used up */
static counter_result
bump_entry(counter_entry *e, const counter_link *link, TimestampTz now)
{
	counter_result r = COUNTER_COUNTED;

	SpinLockAcquire(&e->mutex);
	if (link->has_max && e->total >= link->max_visits)
		r = COUNTER_EXHAUSTED;
	else
	{
		e->total++;
		e->pending++;
		e->last_visit = now;
	}
	SpinLockRelease(&e->mutex);
	return r;
}

/*
 * lock_link takes the per-link advisory lock of the protocol above, at
 * transaction level, so an error releases it.
 */
static void
lock_link(const counter_key *key, LOCKTAG *tag)
{
	uint64		h = hash_bytes_extended((const unsigned char *) key, sizeof(*key), 0);

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 SHORTURL_LOCK_LINK);
	(void) LockAcquire(tag, ExclusiveLock, false, false);
}

/*
 * wake_worker asks the worker to flush (and so make room) now.  The request
 * is a flag beside the latch: latches are also set for reasons of
 * PostgreSQL's own, which must not cause a flush.
 */
static void
wake_worker(void)
{
	Latch	   *latch;

	SpinLockAcquire(&state->stats_lock);
	state->flush_requested = true;
	latch = state->worker_latch;
	SpinLockRelease(&state->stats_lock);
	if (latch)
		SetLatch(latch);
}

/* counters_take_flush_request tells the worker whether a flush was asked for */
bool
counters_take_flush_request(void)
{
	bool		requested;

	SpinLockAcquire(&state->stats_lock);
	requested = state->flush_requested;
	state->flush_requested = false;
	SpinLockRelease(&state->stats_lock);
	return requested;
}

/*
 * How many entries make_room gives up at once: a 64th of the table, so its
 * scan runs once per that many new links rather than for each.
 */
#define ROOM_BATCH_DIVISOR 64

/*
 * make_room removes entries with nothing pending, of any database, when the
 * table is full, so the caller can insert.  Such an entry's clicks are all
 * in its table, and flushes copy only entries with clicks pending, so none
 * is in flight.  When none is found, the table stays marked exhausted until
 * the next flush, so the clicks until then fall back to counting
 * synchronously without scanning the table again.  Caller holds the lock
 * exclusively.
 */
static void
make_room(void)
{
	HASH_SEQ_STATUS seq;
	counter_entry *e;
	int			wanted = Max(1, shorturl_max_pending_links / ROOM_BATCH_DIVISOR);

	if (hash_get_num_entries(counters_hash) < shorturl_max_pending_links ||
		state->room_exhausted)
		return;
	hash_seq_init(&seq, counters_hash);
	while (wanted > 0 && (e = hash_seq_search(&seq)) != NULL)
	{
		if (e->pending == 0)
		{
			/* removing the current entry is allowed during a scan */
			hash_search(counters_hash, &e->key, HASH_REMOVE, NULL);
			state->evictions++;
			wanted--;
		}
	}
	if (wanted > 0)
		state->room_exhausted = hash_get_num_entries(counters_hash) >= shorturl_max_pending_links;
	else
		hash_seq_term(&seq);
}

/*
 * counters_bump counts one click of an active link in shared memory.  The
 * caller checked that the link exists and has not expired; this checks
 * max_visits against the live total.
 */
counter_result
counters_bump(const counter_link *link)
{
	counter_key key;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	make_key(&key, link->relid, link->code, link->code_len);

	for (int attempt = 0; attempt < MAX_CREATE_ATTEMPTS; attempt++)
	{
		counter_entry *e;
		uint64		evictions;
		int64		base;
		bool		found;
		LOCKTAG		tag;
		counter_result r;

		/* the common case: the entry exists */
		LWLockAcquire(state->lock, LW_SHARED);
		e = hash_search(counters_hash, &key, HASH_FIND, NULL);
		if (e != NULL && e->link_created == link->created_at)
		{
			r = bump_entry(e, link, now);
			LWLockRelease(state->lock);
			return r;
		}
		LWLockRelease(state->lock);

		/* make the entry, under the link's lock */
		lock_link(&key, &tag);
		LWLockAcquire(state->lock, LW_SHARED);
		e = hash_search(counters_hash, &key, HASH_FIND, NULL);
		if (e != NULL && e->link_created == link->created_at)
		{
			r = bump_entry(e, link, now);
			LWLockRelease(state->lock);
			LockRelease(&tag, ExclusiveLock, false);
			return r;
		}
		evictions = state->evictions;
		LWLockRelease(state->lock);

		if (!links_latest_visits(link->relid, link->code, link->code_len,
								 link->created_at, &base))
		{
			LockRelease(&tag, ExclusiveLock, false);
			return COUNTER_GONE;
		}

		LWLockAcquire(state->lock, LW_EXCLUSIVE);
		if (state->evictions != evictions)
		{
			/* an entry went away meanwhile: its flush may postdate base */
			LWLockRelease(state->lock);
			LockRelease(&tag, ExclusiveLock, false);
			continue;
		}
		e = hash_search(counters_hash, &key, HASH_FIND, NULL);
		if (e != NULL)
		{
			/* an entry of an earlier link with this code: drop its clicks */
			SpinLockAcquire(&state->stats_lock);
			state->dropped_deltas += e->pending;
			SpinLockRelease(&state->stats_lock);
			hash_search(counters_hash, &key, HASH_REMOVE, NULL);
			state->evictions++;
		}
		make_room();
		e = NULL;
		if (hash_get_num_entries(counters_hash) < shorturl_max_pending_links)
			e = hash_search(counters_hash, &key, HASH_ENTER_NULL, &found);
		if (e == NULL)
		{
			/* full: the caller counts synchronously, still holding the lock */
			LWLockRelease(state->lock);
			SpinLockAcquire(&state->stats_lock);
			state->sync_fallbacks++;
			SpinLockRelease(&state->stats_lock);
			wake_worker();
			return COUNTER_FULL;
		}
		SpinLockInit(&e->mutex);
		e->link_created = link->created_at;
		e->total = base;
		e->pending = 0;
		e->last_visit = 0;
		r = bump_entry(e, link, now);
		LWLockRelease(state->lock);
		LockRelease(&tag, ExclusiveLock, false);
		return r;
	}

	/*
	 * Entries keep going away under us: count this click synchronously,
	 * under the link's lock, unless an entry appeared meanwhile.
	 */
	{
		LOCKTAG		tag;
		counter_entry *e;

		lock_link(&key, &tag);
		LWLockAcquire(state->lock, LW_SHARED);
		e = hash_search(counters_hash, &key, HASH_FIND, NULL);
		if (e != NULL && e->link_created == link->created_at)
		{
			counter_result r = bump_entry(e, link, now);

			LWLockRelease(state->lock);
			LockRelease(&tag, ExclusiveLock, false);
			return r;
		}
		LWLockRelease(state->lock);
		SpinLockAcquire(&state->stats_lock);
		state->sync_fallbacks++;
		SpinLockRelease(&state->stats_lock);
		return COUNTER_FULL;
	}
}

/*
 * counters_peek gives the live total of a link if shared memory has an
 * entry for it; otherwise the table's value is the live count.
 */
bool
counters_peek(const counter_link *link, int64 *total)
{
	counter_key key;
	counter_entry *e;
	bool		found = false;

	if (state == NULL)
		return false;
	make_key(&key, link->relid, link->code, link->code_len);
	LWLockAcquire(state->lock, LW_SHARED);
	e = hash_search(counters_hash, &key, HASH_FIND, NULL);
	if (e != NULL && e->link_created == link->created_at)
	{
		SpinLockAcquire(&e->mutex);
		*total = e->total;
		SpinLockRelease(&e->mutex);
		found = true;
	}
	LWLockRelease(state->lock);
	return found;
}

/* ---------------------------------------------------------------------
 * Flush
 * ---------------------------------------------------------------------
 */

/*
 * collect_deltas copies the pending deltas of this database's entries into
 * flush_tx, under the shared lock (clicks go on meanwhile), then removes
 * the entries of an earlier incarnation of the links table (a dropped and
 * recreated extension), whose clicks have nowhere to go.  Entries with
 * nothing pending stay: they keep the link's total for the next click, and
 * make_room() gives them up when the table is full.
 */
static void
collect_deltas(Oid relid)
{
	HASH_SEQ_STATUS seq;
	counter_entry *e;
	int			cap = 64;
	int			nstale = 0;
	int			stale_cap = 0;
	counter_key *stale = NULL;
	int64		dropped = 0;

	flush_tx.items = MemoryContextAlloc(TopTransactionContext, cap * sizeof(flush_item));
	flush_tx.nitems = 0;

	LWLockAcquire(state->lock, LW_SHARED);
	hash_seq_init(&seq, counters_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		flush_item *item;
		int64		pending;
		TimestampTz last_visit;

		if (e->key.dbid != MyDatabaseId)
			continue;
		if (e->key.relid != relid)
		{
			if (nstale == stale_cap)
			{
				stale_cap = Max(64, stale_cap * 2);
				stale = stale ? repalloc(stale, stale_cap * sizeof(counter_key))
					: palloc(stale_cap * sizeof(counter_key));
			}
			stale[nstale++] = e->key;
			continue;
		}
		SpinLockAcquire(&e->mutex);
		pending = e->pending;
		last_visit = e->last_visit;
		SpinLockRelease(&e->mutex);
		if (pending == 0)
			continue;
		if (flush_tx.nitems == cap)
		{
			cap *= 2;
			flush_tx.items = repalloc(flush_tx.items, cap * sizeof(flush_item));
		}
		item = &flush_tx.items[flush_tx.nitems++];
		item->key = e->key;
		item->link_created = e->link_created;
		item->delta = pending;
		item->last_visit = last_visit;
		item->applied = false;
	}
	LWLockRelease(state->lock);

	if (nstale == 0)
		return;
	LWLockAcquire(state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < nstale; i++)
	{
		e = hash_search(counters_hash, &stale[i], HASH_FIND, NULL);
		if (e == NULL)
			continue;
		dropped += e->pending;
		hash_search(counters_hash, &stale[i], HASH_REMOVE, NULL);
		state->evictions++;
	}
	LWLockRelease(state->lock);
	pfree(stale);

	SpinLockAcquire(&state->stats_lock);
	state->dropped_deltas += dropped;
	SpinLockRelease(&state->stats_lock);
}

/*
 * apply_batch adds items[from..to) to the table in one UPDATE and marks
 * those whose link was still there.
 */
static void
apply_batch(int from, int to)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	int			n = to - from;
	Datum	   *codes = palloc(n * sizeof(Datum));
	Datum	   *created = palloc(n * sizeof(Datum));
	Datum	   *deltas = palloc(n * sizeof(Datum));
	Datum	   *visited = palloc(n * sizeof(Datum));
	Datum		values[4];
	int			rc;

	for (int i = 0; i < n; i++)
	{
		flush_item *item = &flush_tx.items[from + i];

		codes[i] = PointerGetDatum(cstring_to_text(item->key.code));
		created[i] = TimestampTzGetDatum(item->link_created);
		deltas[i] = Int64GetDatum(item->delta);
		visited[i] = TimestampTzGetDatum(item->last_visit);
	}
	values[0] = PointerGetDatum(construct_array(codes, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(created, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(deltas, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(visited, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(
									"UPDATE shorturl.links AS l"
									"   SET visits = l.visits + d.delta,"
									"       last_visit_at = GREATEST(l.last_visit_at, d.visited),"
									"       exhausted_at = CASE"
									"         WHEN l.exhausted_at IS NULL AND l.max_visits IS NOT NULL"
									"          AND l.visits + d.delta >= l.max_visits"
									"         THEN d.visited ELSE l.exhausted_at END"
									"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
									"                  pg_catalog.unnest($3), pg_catalog.unnest($4))"
									"       WITH ORDINALITY AS d(code, created, delta, visited, i)"
									" WHERE l.code = d.code"
									"   AND l.created_at = d.created"
									" RETURNING d.i",
									4, argtypes);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the flush statement: %s",
				 SPI_result_code_string(SPI_result));
		plan = p;
	}

	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "flush UPDATE failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		i = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
												   SPI_tuptable->tupdesc, 1, &isnull));

		flush_tx.items[from + i - 1].applied = true;
	}
}

/*
 * counters_flush writes the pending clicks of this database to
 * shorturl.links within the current transaction and returns how many
 * visits it wrote.  They are subtracted from shared memory when the
 * transaction commits.  A second call in the same transaction finds
 * nothing more to do and returns 0.
 */
int64
counters_flush(void)
{
	LOCKTAG		tag;
	Oid			relid;
	int64		applied = 0;

	if (!counters_serving() || flush_tx.active)
		return 0;

	if (!callbacks_registered)
	{
		RegisterXactCallback(flush_xact_callback, NULL);
		RegisterSubXactCallback(flush_subxact_callback, NULL);
		callbacks_registered = true;
	}

	relid = shorturl_relid("links");

	/* one flush at a time, to the end of its transaction */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, SHORTURL_LOCK_FLUSH);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	flush_tx.started = GetCurrentTimestamp();
	collect_deltas(relid);
	flush_tx.subid = GetCurrentSubTransactionId();
	flush_tx.active = true;

	if (flush_tx.nitems > 0)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		for (int from = 0; from < flush_tx.nitems; from += FLUSH_BATCH_SIZE)
			apply_batch(from, Min(from + FLUSH_BATCH_SIZE, flush_tx.nitems));
		SPI_finish();

		state->flush_committing = true;
	}

	for (int i = 0; i < flush_tx.nitems; i++)
		if (flush_tx.items[i].applied)
			applied += flush_tx.items[i].delta;
	return applied;
}

PG_FUNCTION_INFO_V1(shorturl_flush);

/*
 * shorturl_flush implements flush() RETURNS bigint: write this database's
 * pending clicks to shorturl.links now, in this transaction; they leave
 * shared memory when it commits.  Returns the visits written (0 where
 * clicks are counted synchronously, since none are pending there).
 */
Datum
shorturl_flush(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(counters_flush());
}

/*
 * finish_flush subtracts, at commit, what the transaction's flush wrote:
 * its deltas leave pending, deltas of links deleted meanwhile are dropped.
 * It runs inside CommitTransaction and must not fail.
 */
static void
finish_flush(bool committed)
{
	int64		flushed = 0;
	int64		dropped = 0;

	if (committed && flush_tx.nitems > 0)
	{
		LWLockAcquire(state->lock, LW_SHARED);
		for (int i = 0; i < flush_tx.nitems; i++)
		{
			flush_item *item = &flush_tx.items[i];
			counter_entry *e = hash_search(counters_hash, &item->key, HASH_FIND, NULL);

			if (item->applied)
				flushed += item->delta;
			else
				dropped += item->delta;
			if (e == NULL || e->link_created != item->link_created)
				continue;
			SpinLockAcquire(&e->mutex);
			e->pending -= item->delta;
			SpinLockRelease(&e->mutex);
		}
		/* entries with nothing pending again: the table has room to give */
		state->room_exhausted = false;
		LWLockRelease(state->lock);
	}

	if (committed)
	{
		TimestampTz now = GetCurrentTimestamp();

		SpinLockAcquire(&state->stats_lock);
		state->flushed_visits += flushed;
		state->dropped_deltas += dropped;
		state->flushes++;
		state->last_flush_at = now;
		state->last_flush_ms = (double) (now - flush_tx.started) / 1000.0;
		SpinLockRelease(&state->stats_lock);
	}

	state->flush_committing = false;
	flush_tx.active = false;
	flush_tx.items = NULL;
	flush_tx.nitems = 0;
}

static void
flush_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	if (!flush_tx.active)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			finish_flush(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			finish_flush(false);
			break;
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that ran shorturl.flush()")));
			break;
		default:
			break;
	}
}

static void
flush_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg pg_attribute_unused())
{
	if (!flush_tx.active || mySubid != flush_tx.subid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		finish_flush(false);	/* its UPDATEs are rolled back */
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		flush_tx.subid = parentSubid;
}

/* ---------------------------------------------------------------------
 * Worker state and statistics
 * ---------------------------------------------------------------------
 */

void
counters_set_served_database(Oid dboid)
{
	if (state == NULL)
		return;
	pg_atomic_write_u32(&state->served_dboid, dboid);
}

Oid
counters_served_database(void)
{
	if (state == NULL)
		return InvalidOid;
	return (Oid) pg_atomic_read_u32(&state->served_dboid);
}

/*
 * counters_claim_worker makes the calling process the worker, unless a live
 * worker already is one.
 */
bool
counters_claim_worker(int pid, Latch *latch)
{
	bool		claimed = false;

	SpinLockAcquire(&state->stats_lock);
	if (state->worker_pid == 0 || kill(state->worker_pid, 0) != 0)
	{
		state->worker_pid = pid;
		state->worker_latch = latch;
		claimed = true;
	}
	SpinLockRelease(&state->stats_lock);
	return claimed;
}

/* counters_release_worker frees the worker slot the caller holds */
void
counters_release_worker(int pid)
{
	SpinLockAcquire(&state->stats_lock);
	if (state->worker_pid == pid)
	{
		state->worker_pid = 0;
		state->worker_latch = NULL;
	}
	SpinLockRelease(&state->stats_lock);
}

/* counters_worker_pid is the worker's pid, or 0 when there is none */
int
counters_worker_pid(void)
{
	int			pid;

	SpinLockAcquire(&state->stats_lock);
	pid = state->worker_pid;
	SpinLockRelease(&state->stats_lock);
	return pid;
}

/*
 * counters_note_database_drop records that DROP DATABASE began for a
 * database and asks the worker connected to it to leave; the launcher then
 * waits before connecting a new worker to that database.
 */
void
counters_note_database_drop(Oid dboid)
{
	int			pid = 0;

	if (state == NULL)
		return;
	SpinLockAcquire(&state->stats_lock);
	state->dropping_dboid = dboid;
	state->drop_requested_at = GetCurrentTimestamp();
	if ((Oid) pg_atomic_read_u32(&state->served_dboid) == dboid)
		pid = state->worker_pid;
	SpinLockRelease(&state->stats_lock);
	if (pid != 0)
		kill(pid, SIGTERM);
}

/*
 * counters_discard_except drops every entry of a database other than keep
 * (InvalidOid: of every database), counting their pending clicks as
 * dropped: nobody will flush them.
 */
void
counters_discard_except(Oid keep)
{
	HASH_SEQ_STATUS seq;
	counter_entry *e;
	int64		dropped = 0;

	if (state == NULL)
		return;
	LWLockAcquire(state->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, counters_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->key.dbid == keep)
			continue;
		dropped += e->pending;
		hash_search(counters_hash, &e->key, HASH_REMOVE, NULL);
		state->evictions++;
	}
	LWLockRelease(state->lock);
	if (dropped > 0)
	{
		SpinLockAcquire(&state->stats_lock);
		state->dropped_deltas += dropped;
		SpinLockRelease(&state->stats_lock);
		ereport(LOG,
				(errmsg("pg_shorturl: dropped " INT64_FORMAT " unflushed visits of a database the worker no longer serves",
						dropped)));
	}
}

/* counters_database_drop_pending: a drop of dboid began in the last minute */
bool
counters_database_drop_pending(Oid dboid)
{
	bool		pending;

	SpinLockAcquire(&state->stats_lock);
	pending = state->dropping_dboid == dboid &&
		!TimestampDifferenceExceeds(state->drop_requested_at, GetCurrentTimestamp(),
									SHORTURL_DROP_GRACE_MS);
	SpinLockRelease(&state->stats_lock);
	return pending;
}

void
counters_note_purge(int64 rows)
{
	if (state == NULL)
		return;
	SpinLockAcquire(&state->stats_lock);
	state->purged += rows;
	state->last_purge_at = GetCurrentTimestamp();
	SpinLockRelease(&state->stats_lock);
}

void
counters_note_error(const char *message)
{
	if (state == NULL)
		return;
	SpinLockAcquire(&state->stats_lock);
	strlcpy(state->last_error, message, sizeof(state->last_error));
	state->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&state->stats_lock);
}

PG_FUNCTION_INFO_V1(shorturl_forget_counters);

/*
 * shorturl_forget_counters implements forget_counters(codes text[]): drops
 * the counters of links that left this shard (a rebalance moved them), so
 * a link that comes back later starts from its row, not from a stale total.
 * Returns the unflushed clicks dropped with them (the rebalance flushed
 * before it copied, so normally none).
 */
Datum
shorturl_forget_counters(PG_FUNCTION_ARGS)
{
	ArrayType  *codes = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int64		dropped = 0;
	Oid			relid;

	if (state == NULL)
		PG_RETURN_INT64(0);
	relid = shorturl_relid("links");
	deconstruct_array(codes, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);

	LWLockAcquire(state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		counter_key key;
		counter_entry *e;
		text	   *code;

		if (nulls[i])
			continue;
		code = DatumGetTextPP(elems[i]);
		make_key(&key, relid, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code));
		e = hash_search(counters_hash, &key, HASH_FIND, NULL);
		if (e == NULL)
			continue;
		dropped += e->pending;
		hash_search(counters_hash, &key, HASH_REMOVE, NULL);
		state->evictions++;
	}
	LWLockRelease(state->lock);

	if (dropped > 0)
	{
		SpinLockAcquire(&state->stats_lock);
		state->dropped_deltas += dropped;
		SpinLockRelease(&state->stats_lock);
	}
	PG_RETURN_INT64(dropped);
}

PG_FUNCTION_INFO_V1(shorturl_stats);

/*
 * shorturl_stats returns the one row of the shorturl.stats view.
 */
Datum
shorturl_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[15];
	bool		nulls[15];
	counters_state snap;
	int64		pending_links = 0;
	int64		pending_visits = 0;
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));

	if (state != NULL)
	{
		HASH_SEQ_STATUS seq;
		counter_entry *e;

		LWLockAcquire(state->lock, LW_SHARED);
		hash_seq_init(&seq, counters_hash);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			int64		pending;

			if (e->key.dbid != MyDatabaseId)
				continue;
			SpinLockAcquire(&e->mutex);
			pending = e->pending;
			SpinLockRelease(&e->mutex);
			if (pending > 0)
			{
				pending_links++;
				pending_visits += pending;
			}
		}
		LWLockRelease(state->lock);

		SpinLockAcquire(&state->stats_lock);
		memcpy(&snap, state, sizeof(snap));
		SpinLockRelease(&state->stats_lock);
	}

	values[i++] = CStringGetTextDatum(counters_serving() ? "shared" : "sync");
	if (state == NULL)
	{
		/* not preloaded: only the mode means anything */
		for (; i < desc->natts; i++)
			nulls[i] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
	}

#define TS_OR_NULL(ts) \
	do { if ((ts) == 0) nulls[i++] = true; else values[i++] = TimestampTzGetDatum(ts); } while (0)

	values[i++] = Int64GetDatum(pending_links);
	values[i++] = Int64GetDatum(pending_visits);
	values[i++] = Int64GetDatum(snap.flushed_visits);
	values[i++] = Int64GetDatum(snap.flushes);
	TS_OR_NULL(snap.last_flush_at);
	if (snap.last_flush_at == 0)
		nulls[i++] = true;
	else
		values[i++] = Float8GetDatum(snap.last_flush_ms);
	values[i++] = Int64GetDatum(snap.purged);
	TS_OR_NULL(snap.last_purge_at);
	values[i++] = Int64GetDatum(snap.sync_fallbacks);
	values[i++] = Int64GetDatum(snap.dropped_deltas);
	if (snap.worker_pid == 0)
		nulls[i++] = true;
	else
		values[i++] = Int32GetDatum(snap.worker_pid);
	if (snap.last_error[0] == '\0')
		nulls[i++] = true;
	else
		values[i++] = CStringGetTextDatum(snap.last_error);
	TS_OR_NULL(snap.last_error_at);
	values[i++] = Int32GetDatum(shorturl_max_pending_links);
#undef TS_OR_NULL

	Assert(i == desc->natts);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
