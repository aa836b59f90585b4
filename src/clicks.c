/*-------------------------------------------------------------------------
 *
 * clicks.c
 *	  Counting a click, and reading a link's live visit count.
 *
 * Where a click goes depends on the server (clicks_mode):
 *	- With the library preloaded, on a primary, in a database the workers
 *	  serve: into the shared counter table (counters.c), to be flushed by
 *	  the database's worker.  A click of a link without max_visits is one
 *	  atomic add under a shared partition lock; its entry holds only the
 *	  clicks not yet flushed.  A link with max_visits needs its exact total
 *	  at every click, so its entry also keeps the total: the table's count
 *	  when the entry was made, plus every click since.  Such a click checks
 *	  and bumps the total under the entry's spinlock.
 *	- Otherwise (no preloading, or a database outside shorturl.database),
 *	  in the tables, in the caller's transaction: an unlimited link's click
 *	  appends a row to shorturl.pending_visits (no row lock, so concurrent
 *	  clicks never wait for each other).  Such a click is undone if the
 *	  caller's transaction rolls back, and nothing can tell beforehand
 *	  whether it will: a transaction block, a savepoint, a procedure's or DO
 *	  block's ROLLBACK, or a later row of the same statement failing after
 *	  this one reached the client (COPY, a streamed SELECT).  A limited
 *	  link's visit must never be served and then undone, so this path does
 *	  not serve limited links at all: they need shared memory, whose count
 *	  no rollback touches.
 *	- On a hot standby, in a database the workers serve, into the shared
 *	  counter table as on a primary, to be shipped to the primary by the
 *	  database's worker (ship.c).  Limited links are not served there: their
 *	  total lives on the primary.  When the link's partition is full, a
 *	  click is served uncounted at once (there is no table to fall back to,
 *	  and the room may come back only when the primary does), and counted
 *	  in stats.standby_dropped.  With shorturl.ship_interval = 0, without a
 *	  name to ship under, or without preloading, a standby counts nothing.
 *
 * When the shared table is full of entries with unflushed clicks, a click
 * asks the worker to flush and waits for room (backpressure), up to
 * ROOM_WAIT_MS; only then does it fall back to the table path (where a
 * limited link is refused: stats.refused_clicks).
 *
 * A link's live count combines the tables with shared memory.  A limited
 * link's entry has it.  For other links, it is the stored count at some
 * snapshot S plus the entry's pending and in-flight clicks, where in-flight
 * clicks count only if the flush holding them was not yet visible to S.  A
 * reader takes S between two reads of the entry's generation number, and
 * retries if a flush moved meanwhile (see the protocol in counters.c).
 * clicks_live_read() reads the parts of a series the same way.  Counting
 * and these reads share the entry protocol, which is why they are one
 * file (about 800 lines).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "claim.h"
#include "clicks.h"
#include "compat.h"
#include "counters.h"
#include "dbstate.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "spi_util.h"

/*
 * How long a click waits for the worker to make room in a full counter
 * table before counting in the tables instead: a few flush intervals of a
 * busy server (a flush of 100,000 links takes about a second here).
 */
#define ROOM_WAIT_MS		2000

/*
 * A backend that sees entries come and go while it makes a limited link's
 * entry starts over; after this many tries it counts in the tables.
 */
#define MAX_CREATE_ATTEMPTS 5

/* How often a reader retries before it holds flushes off with their lock */
#define MAX_READ_ATTEMPTS	3


/* ---------------------------------------------------------------------
 * Where clicks go
 * ---------------------------------------------------------------------
 */

/*
 * database_allowed tells whether a worker serves this backend's database:
 * no template, and shorturl.database (a comma-separated list of database
 * names, empty for all) includes it.
 */
static bool
database_allowed(void)
{
	static int	allowed = -1;
	char	   *name;
	char	   *list;
	char	   *item;
	char	   *save;

	HeapTuple	tup;
	bool		template;

	if (allowed >= 0)
		return allowed;
	/* no worker ever connects to a template (it would block CREATE DATABASE) */
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (!HeapTupleIsValid(tup))
		return false;
	template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
	ReleaseSysCache(tup);
	if (template)
		return (allowed = 0);
	if (shorturl_database == NULL || shorturl_database[0] == '\0')
		return (allowed = 1);
	name = get_database_name(MyDatabaseId);
	if (name == NULL)
		return false;
	allowed = 0;
	list = pstrdup(shorturl_database);
	for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
	{
		while (*item == ' ')
			item++;
		for (char *end = item + strlen(item); end > item && end[-1] == ' ';)
			*--end = '\0';
		if (strcmp(item, name) == 0)
			allowed = 1;
	}
	pfree(list);
	return allowed;
}

/* clicks_mode tells where this backend counts clicks */
click_mode
clicks_mode(void)
{
	bool		shared = counters_available() && database_allowed() &&
		dbstate_mine() != NULL;

	/* a standby counts what it can ship: it needs a name to ship under */
	if (RecoveryInProgress())
		return shared && shorturl_ship_interval > 0 && lookup_standby_name() != NULL ?
			CLICKS_STANDBY : CLICKS_NONE;
	return shared ? CLICKS_SHARED : CLICKS_TABLE;
}

/*
 * clicks_stats_slot returns the slot whose statistics a guard counts in
 * (ratelimit.c, resolve.c): the database's when its clicks count in shared
 * memory, else NULL.  It never adds a slot for a database the workers do
 * not serve.
 */
db_state *
clicks_stats_slot(void)
{
	click_mode	mode = clicks_mode();

	return mode == CLICKS_SHARED || mode == CLICKS_STANDBY ? dbstate_mine() : NULL;
}

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

typedef enum shared_result
{
	SHARED_COUNTED,
	SHARED_EXHAUSTED,
	SHARED_NO_ROOM,
	SHARED_GONE					/* moved to another shard */
} shared_result;

/*
 * clicks_hour is the hour of a time, as first_hour keeps it: hours since
 * 2000-01-01 UTC, within the 24 bits it has (until the year 3913).
 */
uint64
clicks_hour(TimestampTz t)
{
	if (t <= 0)
		return 0;
	return Min((uint64) (t / USECS_PER_HOUR), COUNTER_HOUR_MAX);
}

/*
 * note_hour counts a click in the entry's first pending hour, if that is
 * its hour or none is set (see first_hour in counters.h).  A click of any
 * other hour is left to the flush, which gives the pending clicks beyond
 * the first hour's to the hour of the latest click: with a flush every
 * second, that is exact unless a flush is more than an hour late or a
 * click races the turn of the hour.  The caller counts the click in
 * pending after this, and a flush takes pending before first_hour, so a
 * flush never takes a first-hour count whose click it leaves pending.
 */
static void
note_hour(counter_entry *e, TimestampTz now)
{
	uint64		hour = clicks_hour(now);
	uint64		old = pg_atomic_read_u64(&e->first_hour);

	for (;;)
	{
		uint64		count = old & COUNTER_HOUR_COUNT_MASK;
		uint64		new;

		if (count == 0)
			new = (hour << COUNTER_HOUR_SHIFT) | 1;
		else if ((old >> COUNTER_HOUR_SHIFT) == hour && count < COUNTER_HOUR_COUNT_MASK)
			new = old + 1;
		else
			return;
		if (pg_atomic_compare_exchange_u64(&e->first_hour, &old, new))
			return;
	}
}

/*
 * bump counts one click in an entry, unless the link is used up.  The
 * partition lock is held (shared is enough: limited only changes under the
 * exclusive lock).
 */
static shared_result
bump(counter_entry *e, bool has_max, int64 max_visits, TimestampTz now, bool bot)
{
	/*
	 * A rebalance moved the link away (move_out() took its clicks): a click
	 * that found the link before the move committed must not count here,
	 * where no one would carry it over.  The fence holds while the move's
	 * transaction runs, however long its commit takes, and for long enough
	 * after it for any click that still saw the link; it ends early if the
	 * link comes back.
	 */
	if (counters_fenced(e, now))
		return SHARED_GONE;
	if (e->limited)
	{
		bool		exhausted = false;

		SpinLockAcquire(&e->mutex);
		if (has_max && e->total >= max_visits)
			exhausted = true;
		else
		{
			e->total++;
			if (has_max && e->total == max_visits)
				e->exhausted_at = now;
		}
		SpinLockRelease(&e->mutex);
		if (exhausted)
			return SHARED_EXHAUSTED;
	}
	note_hour(e, now);
	if (bot)
		pg_atomic_fetch_add_u64(&e->pending_bots, 1);
	pg_atomic_fetch_add_u64(&e->pending, 1);
	pg_atomic_write_u64(&e->last_visit, (uint64) now);
	if (e->usage < COUNTER_MAX_USAGE)
		e->usage++;
	return SHARED_COUNTED;
}

/*
 * xid_visible tells whether what a flushing transaction wrote is visible
 * to a snapshot: its commit is, or it is our own transaction (a read after
 * shorturl.flush() in the same transaction sees its rows).
 */
static bool
xid_visible(TransactionId xid, Snapshot snapshot)
{
	if (!TransactionIdIsValid(xid))
		return false;
	if (TransactionIdIsCurrentTransactionId(xid))
		return true;
	return !XidInMVCCSnapshot(xid, snapshot) && TransactionIdDidCommit(xid);
}

/*
 * inflight_visible tells whether an entry's in-flight clicks are in the
 * stored counts a snapshot sees: on a primary, those of a flush whose
 * transaction it sees committed; on a standby, those of a batch whose
 * apply on the primary it has replayed (ship.c).
 */
static bool
inflight_visible(TransactionId xid, uint64 ship_seq, const char *ship_name,
				 Snapshot snapshot)
{
	if (RecoveryInProgress())
		return lookup_batch_applied(ship_name, ship_seq, snapshot);
	return xid_visible(xid, snapshot);
}

/*
 * lock_link takes the advisory lock that serialises the making of a
 * limited link's entry, so one backend reads the stored count and the
 * others find the entry made.
 */
static void
lock_link(int64 link_id, LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) ((uint64) link_id >> 32),
						 (uint32) link_id, SHORTURL_LOCK_LINK);
	(void) LockAcquire(tag, ExclusiveLock, false, false);
}

/*
 * make_limited makes (or converts) a limited link's entry, whose total
 * must start from the link's exact count, and counts the click, under the
 * link's advisory lock.
 */
static shared_result
make_limited(db_state *db, const counter_key *key, uint32 hash, int64 max_visits,
			 TimestampTz now, bool bot)
{
	LWLock	   *lock = counters_lock_for(hash);
	LOCKTAG		tag;
	shared_result r = SHARED_NO_ROOM;

	lock_link(key->link_id, &tag);
	for (int attempt = 0; attempt < MAX_CREATE_ATTEMPTS; attempt++)
	{
		counter_entry *e;
		bool		had_entry;
		bool		found;
		uint32		gen = 0;
		int64		inflight = 0;
		TransactionId xid = InvalidTransactionId;
		uint64		evictions;
		Snapshot	snapshot;
		int64		stored;

		LWLockAcquire(lock, LW_SHARED);
		e = counters_lookup(key, hash);
		if (e != NULL && e->limited)
		{
			r = bump(e, true, max_visits, now, bot);
			LWLockRelease(lock);
			break;
		}
		had_entry = (e != NULL);
		if (had_entry)
		{
			SpinLockAcquire(&e->mutex);
			gen = pg_atomic_read_u32(&e->gen);
			inflight = e->inflight;
			xid = e->flush_xid;
			SpinLockRelease(&e->mutex);
		}
		evictions = counters_evictions(hash);
		LWLockRelease(lock);

		snapshot = RegisterSnapshot(GetLatestSnapshot());
		stored = lookup_stored_visits(key->link_id, snapshot);

		LWLockAcquire(lock, LW_EXCLUSIVE);
		if (counters_evictions(hash) != evictions)
		{
			/* an entry went away meanwhile: its last flush may postdate the read */
			LWLockRelease(lock);
			UnregisterSnapshot(snapshot);
			continue;
		}
		e = counters_enter(key, hash, &found);
		if (e == NULL)
		{
			LWLockRelease(lock);
			UnregisterSnapshot(snapshot);
			r = SHARED_NO_ROOM;
			break;
		}
		if (found && e->limited)
		{
			/* another backend made it meanwhile */
			r = bump(e, true, max_visits, now, bot);
			LWLockRelease(lock);
			UnregisterSnapshot(snapshot);
			break;
		}
		if (found != had_entry || (found && pg_atomic_read_u32(&e->gen) != gen))
		{
			LWLockRelease(lock);
			UnregisterSnapshot(snapshot);
			continue;
		}
		if (found)
			stored += (int64) pg_atomic_read_u64(&e->pending) +
				(xid_visible(xid, snapshot) ? 0 : inflight);
		SpinLockAcquire(&e->mutex);
		e->limited = true;
		e->total = stored;
		SpinLockRelease(&e->mutex);
		r = bump(e, true, max_visits, now, bot);
		LWLockRelease(lock);
		UnregisterSnapshot(snapshot);
		break;
	}
	LockRelease(&tag, ExclusiveLock, false);

	/* a database whose worker does not run gets one */
	if (r == SHARED_COUNTED && db->worker_pid == 0)
		dbstate_request_flush(db);
	return r;
}

/*
 * count_shared counts a click in shared memory; SHARED_NO_ROOM when the
 * link's partition is full of entries with unflushed clicks.
 */
static shared_result
count_shared(db_state *db, int64 link_id, bool has_max, int64 max_visits, bool bot)
{
	TimestampTz now = GetCurrentStatementStartTimestamp();
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	counter_entry *e;
	shared_result r;
	bool		found;

	counters_make_key(&key, MyDatabaseId, catalog_tables()->links, link_id);
	hash = counters_hash(&key);
	lock = counters_lock_for(hash);

	/* the common case: the entry exists */
	LWLockAcquire(lock, LW_SHARED);
	e = counters_lookup(&key, hash);
	if (e != NULL && (!has_max || e->limited))
	{
		r = bump(e, has_max, max_visits, now, bot);
		LWLockRelease(lock);
		return r;
	}
	LWLockRelease(lock);

	if (has_max)
		return make_limited(db, &key, hash, max_visits, now, bot);

	/* an unlimited link needs no count to start from: just an entry */
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = counters_enter(&key, hash, &found);
	r = e ? bump(e, false, 0, now, bot) : SHARED_NO_ROOM;
	LWLockRelease(lock);
	if (r == SHARED_COUNTED && !found && db->worker_pid == 0)
		dbstate_request_flush(db);
	return r;
}

/* ---------------------------------------------------------------------
 * The tables
 * ---------------------------------------------------------------------
 */

/*
 * count_in_tables counts a click in the caller's transaction (see the
 * rules in the file header).
 */
static click_result
count_in_tables(int64 link_id, bool has_max, bool bot)
{
	static SPIPlanPtr plan_pending_insert;
	static SPIPlanPtr plan_pending_insert_07;	/* before ALTER EXTENSION UPDATE */
	Datum		values[2];
	Oid			argtypes[2] = {INT8OID, INT8OID};
	as_owner	saved;

	/* a limited link's click here could be rolled back after it was served */
	if (has_max)
		return CLICK_REFUSED;
	if (XactReadOnly)
		return CLICK_COUNTED;	/* served, not counted */

	values[0] = Int64GetDatum(link_id);
	values[1] = Int64GetDatum(bot ? 1 : 0);
	saved = catalog_become_owner();
	spi_begin();
	if (catalog_tables()->analytics)
		spi_run(spi_plan(&plan_pending_insert,
						 "INSERT INTO shorturl.pending_visits (link_id, visits, bots, visited_at)"
						 " VALUES ($1, 1, $2, pg_catalog.statement_timestamp())",
						 2, argtypes),
				values, NULL, false, SPI_OK_INSERT);
	else
		spi_run(spi_plan(&plan_pending_insert_07,
						 "INSERT INTO shorturl.pending_visits (link_id, visits, visited_at)"
						 " VALUES ($1, 1, pg_catalog.statement_timestamp())",
						 1, argtypes),
				values, NULL, false, SPI_OK_INSERT);
	SPI_finish();
	catalog_back_from_owner(saved);
	return CLICK_COUNTED;
}

/* ---------------------------------------------------------------------
 * The API of this file
 * ---------------------------------------------------------------------
 */

/*
 * clicks_count counts one click of an active link (the caller checked that
 * it exists, is enabled and has not expired), unless it has reached
 * max_visits.  A bot's click counts like any other; the link's series
 * keeps how many were bots'.
 */
click_result
clicks_count(int64 link_id, bool has_max, int64 max_visits, bool bot)
{
	db_state   *db;

	switch (clicks_mode())
	{
		case CLICKS_NONE:
			/* a standby serves unlimited links uncounted, and no others */
			return has_max ? CLICK_REFUSED : CLICK_COUNTED;
		case CLICKS_TABLE:
			return count_in_tables(link_id, has_max, bot);
		case CLICKS_STANDBY:
			/* a limited link's total is the primary's: claim it there */
			if (has_max)
				switch (claim_visit(link_id, true, bot))
				{
					case CLAIM_ACTIVE:
						return CLICK_COUNTED;
					case CLAIM_EXHAUSTED:
						return CLICK_EXHAUSTED;
					default:
						return CLICK_REFUSED;
				}
			break;
		case CLICKS_SHARED:
			/* promoted: the connection to the old primary has no use */
			claim_forget();
			break;
	}

	db = dbstate_mine();
	switch (count_shared(db, link_id, has_max, max_visits, bot))
	{
		case SHARED_COUNTED:
			return CLICK_COUNTED;
		case SHARED_EXHAUSTED:
			return CLICK_EXHAUSTED;
		case SHARED_GONE:
			return CLICK_REFUSED;
		case SHARED_NO_ROOM:
			break;
	}

	/*
	 * The table is full: ask for a flush and wait for room, trying again
	 * each time a flush makes some.  The click registers on the condition
	 * variable before it tries again, so a flush that ends in between
	 * still wakes it.  A standby does not wait: its room comes back only
	 * when the primary has a batch, which may be long if it is down, and
	 * a redirect must stay fast; the click is served uncounted.
	 */
	if (RecoveryInProgress())
	{
		dbstate_request_flush(db);
		pg_atomic_fetch_add_u64(&db->standby_dropped, 1);
		return CLICK_COUNTED;
	}
	pg_atomic_fetch_add_u64(&db->room_waits, 1);
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   ROOM_WAIT_MS);
		shared_result r = SHARED_NO_ROOM;

		ConditionVariablePrepareToSleep(dbstate_room_cv());
		for (;;)
		{
			long		left;

			r = count_shared(db, link_id, has_max, max_visits, bot);
			if (r != SHARED_NO_ROOM)
				break;
			dbstate_request_flush(db);
			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (left <= 0)
				break;
			/* wakes when any database's flush makes room */
			(void) ConditionVariableTimedSleep(dbstate_room_cv(), left,
											   PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
		if (r == SHARED_COUNTED)
			return CLICK_COUNTED;
		if (r == SHARED_EXHAUSTED)
			return CLICK_EXHAUSTED;
		if (r == SHARED_GONE)
			return CLICK_REFUSED;
	}
	pg_atomic_fetch_add_u64(&db->sync_fallbacks, 1);
	{
		click_result r = count_in_tables(link_id, has_max, bot);

		if (r == CLICK_REFUSED)
			pg_atomic_fetch_add_u64(&db->refused_clicks, 1);
		return r;
	}
}

/*
 * clicks_live_visits is a link's exact visit count at some moment during
 * the call: stored plus unflushed (see the file header).
 */
int64
clicks_live_visits(int64 link_id)
{
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	LOCKTAG		tag;
	bool		flushes_held = false;
	int64		visits = 0;
	bool		served;
	db_state   *db;

	/*
	 * Shared memory may hold clicks of a database no longer served (see
	 * clicks_leftover()), so it is read whenever it exists.
	 */
	if (!counters_available())
	{
		/* a parallel worker may not take a fresh snapshot */
		Snapshot	snapshot = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot()
												: GetLatestSnapshot());

		visits = lookup_stored_visits(link_id, snapshot);
		UnregisterSnapshot(snapshot);
		return visits;
	}

	/* a limited link's total is kept only where clicks go to shared memory */
	served = clicks_mode() == CLICKS_SHARED;
	/* a standby's batch in flight: its number tells when the primary has it */
	db = RecoveryInProgress() ? dbstate_mine() : NULL;
	counters_make_key(&key, MyDatabaseId, catalog_tables()->links, link_id);
	hash = counters_hash(&key);
	lock = counters_lock_for(hash);
	for (int attempt = 0;; attempt++)
	{
		counter_entry *e;
		uint32		gen = 0;
		int64		inflight = 0;
		TransactionId xid = InvalidTransactionId;
		uint64		evictions;
		Snapshot	snapshot;
		bool		stable;
		int64		pending = 0;
		uint64		ship_seq = 0;
		char		ship_name[NAMEDATALEN] = "";

		if (attempt == MAX_READ_ATTEMPTS && !flushes_held)
		{
			/* flushes keep moving under us: hold them off for one read */
			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, SHORTURL_LOCK_FLUSH);
			(void) LockAcquire(&tag, ShareLock, false, false);
			flushes_held = true;
		}

		LWLockAcquire(lock, LW_SHARED);
		e = counters_lookup(&key, hash);
		if (e != NULL)
		{
			SpinLockAcquire(&e->mutex);
			if (e->limited && served)
			{
				visits = e->total;
				SpinLockRelease(&e->mutex);
				LWLockRelease(lock);
				break;
			}
			gen = pg_atomic_read_u32(&e->gen);
			inflight = e->inflight;
			xid = e->flush_xid;
			SpinLockRelease(&e->mutex);
			/* after the entry: the batch that took its clicks is numbered first */
			if (db != NULL)
				ship_seq = dbstate_ship_batch(db, ship_name);
		}
		evictions = counters_evictions(hash);
		LWLockRelease(lock);

		snapshot = RegisterSnapshot(GetLatestSnapshot());
		visits = lookup_stored_visits(link_id, snapshot);
		if (e == NULL)
		{
			/*
			 * No entry: every click is in the tables or came later.  The
			 * result lies between the count when we looked and the count at
			 * the snapshot, since counts only grow.
			 */
			UnregisterSnapshot(snapshot);
			break;
		}

		LWLockAcquire(lock, LW_SHARED);
		e = counters_lookup(&key, hash);
		stable = e != NULL && counters_evictions(hash) == evictions &&
			pg_atomic_read_u32(&e->gen) == gen;
		if (stable)
			pending = (int64) pg_atomic_read_u64(&e->pending);
		LWLockRelease(lock);
		if (stable)
			visits += pending + (inflight_visible(xid, ship_seq, ship_name, snapshot) ? 0 : inflight);
		UnregisterSnapshot(snapshot);
		if (stable)
			break;
	}
	if (flushes_held)
		LockRelease(&tag, ShareLock, false);
	return visits;
}

/*
 * clicks_live_read reads a link's stored analytics with read(snapshot, arg)
 * and returns in *out what shared memory holds beyond them, for the same
 * moment: the reader and the parts together count every click once, as
 * clicks_live_visits() does (the same generation protocol).  read() may
 * run more than once (a flush moved meanwhile): it must start afresh each
 * time.
 */
void
clicks_live_read(int64 link_id, clicks_stored_reader read, void *arg, clicks_live_parts *out)
{
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	LOCKTAG		tag;
	bool		flushes_held = false;
	db_state   *db;

	memset(out, 0, sizeof(*out));
	if (!counters_available())
	{
		Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());

		read(snapshot, arg);
		UnregisterSnapshot(snapshot);
		return;
	}
	db = RecoveryInProgress() ? dbstate_mine() : NULL;
	counters_make_key(&key, MyDatabaseId, catalog_tables()->links, link_id);
	hash = counters_hash(&key);
	lock = counters_lock_for(hash);
	for (int attempt = 0;; attempt++)
	{
		counter_entry *e;
		uint32		gen = 0;
		TransactionId xid = InvalidTransactionId;
		uint64		evictions;
		Snapshot	snapshot;
		bool		stable;
		clicks_live_parts parts;
		uint64		ship_seq = 0;
		char		ship_name[NAMEDATALEN] = "";

		if (attempt == MAX_READ_ATTEMPTS && !flushes_held)
		{
			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, SHORTURL_LOCK_FLUSH);
			(void) LockAcquire(&tag, ShareLock, false, false);
			flushes_held = true;
		}

		memset(&parts, 0, sizeof(parts));
		LWLockAcquire(lock, LW_SHARED);
		e = counters_lookup(&key, hash);
		if (e != NULL)
		{
			SpinLockAcquire(&e->mutex);
			gen = pg_atomic_read_u32(&e->gen);
			parts.inflight = e->inflight;
			parts.inflight_bots = e->inflight_bots;
			xid = e->flush_xid;
			SpinLockRelease(&e->mutex);
			if (db != NULL)
				ship_seq = dbstate_ship_batch(db, ship_name);
			/* first_hour before pending: see note_hour() */
			parts.first_hour = pg_atomic_read_u64(&e->first_hour);
			parts.pending_bots = (int64) pg_atomic_read_u64(&e->pending_bots);
			parts.pending = (int64) pg_atomic_read_u64(&e->pending);
			parts.last_visit = (TimestampTz) pg_atomic_read_u64(&e->last_visit);
		}
		evictions = counters_evictions(hash);
		LWLockRelease(lock);

		snapshot = RegisterSnapshot(GetLatestSnapshot());
		read(snapshot, arg);
		if (e == NULL)
		{
			UnregisterSnapshot(snapshot);
			break;
		}
		if (inflight_visible(xid, ship_seq, ship_name, snapshot))
			parts.inflight = parts.inflight_bots = 0;

		LWLockAcquire(lock, LW_SHARED);
		e = counters_lookup(&key, hash);
		stable = e != NULL && counters_evictions(hash) == evictions &&
			pg_atomic_read_u32(&e->gen) == gen;
		LWLockRelease(lock);
		UnregisterSnapshot(snapshot);
		if (stable)
		{
			*out = parts;
			break;
		}
	}
	if (flushes_held)
		LockRelease(&tag, ShareLock, false);
}

/*
 * clicks_pending returns the clicks shared memory holds for a link and no
 * flush has taken: after a reset in the current transaction, the clicks
 * made since (see flush_reset_here()).
 */
int64
clicks_pending(int64 link_id)
{
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	counter_entry *e;
	int64		pending = 0;

	if (!counters_available())
		return 0;
	counters_make_key(&key, MyDatabaseId, catalog_tables()->links, link_id);
	hash = counters_hash(&key);
	lock = counters_lock_for(hash);
	LWLockAcquire(lock, LW_SHARED);
	e = counters_lookup(&key, hash);
	if (e != NULL)
		pending = (int64) pg_atomic_read_u64(&e->pending);
	LWLockRelease(lock);
	return pending;
}

/*
 * clicks_forget drops a link's entry, with whatever it holds unflushed:
 * for a caller that has just written the link's count itself (a reset, a
 * move to another shard).  The caller holds the database's flush lock, so
 * nothing of the link is in flight.
 */
void
clicks_forget(int64 link_id)
{
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	counter_entry *e;

	if (!counters_available())
		return;
	counters_make_key(&key, MyDatabaseId, catalog_tables()->links, link_id);
	hash = counters_hash(&key);
	lock = counters_lock_for(hash);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = counters_lookup(&key, hash);
	if (e != NULL)
		counters_delete(e);
	LWLockRelease(lock);
}
