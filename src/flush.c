/*-------------------------------------------------------------------------
 *
 * flush.c
 *	  Writing the clicks held in shared memory to the tables, exactly once.
 *
 * A flush runs in a transaction (the worker's, or the caller's of
 * shorturl.flush()) and holds the database's flush lock (the advisory lock
 * SHORTURL_LOCK_FLUSH) to its end, so flushes of a database never overlap.
 *	1. It takes each entry's pending clicks of this database: under the
 *	   entry's spinlock they move to inflight, tagged with the flushing
 *	   transaction's id, and the entry's generation number changes.
 *	2. It adds them to shorturl.visit_counts, a few thousand links per
 *	   statement (an UPDATE of the rows there, then an INSERT of the rows
 *	   new to the table), for the links that still exist
 *	   (the deltas of links deleted meanwhile are dropped and counted),
 *	   sets exhausted_at on the links that reached their max_visits, and
 *	   adds them to the links' hours in shorturl.link_visits_hourly, and
 *	   compacts the rows of shorturl.pending_visits to one per link and hour.
 *	3. At commit, a transaction callback settles the entries: inflight goes
 *	   back to zero.  At abort (of the transaction, or of the subtransaction
 *	   that ran the flush) the clicks go back to pending, so a flush that
 *	   fails loses nothing.
 * Between the commit record and the settlement, a reader that sees the
 * flush's transaction as committed knows the table already holds the
 * in-flight clicks (see clicks.c), so nothing is ever counted twice.
 *
 * Resets and moves (manage.c) take a link's clicks through the same state
 * and settlement, which is why they live here, and so do the links' hours
 * (apply_series()), written with the counts: the file is longer than our
 * others (about 1,400 lines, of which some 80 are the statements for a 0.7
 * schema until ALTER EXTENSION UPDATE), but the per-transaction flush state
 * and its invariants stay in one place.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "catalog.h"
#include "clicks.h"
#include "compat.h"
#include "counters.h"
#include "dbstate.h"
#include "flush.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "ship.h"
#include "spi_util.h"

/* Links per statement of a flush */
#define FLUSH_BATCH_SIZE	5000

/* One delta a flush applies, kept until its transaction ends */
typedef struct flush_item
{
	int64		link_id;
	int64		delta;
	int64		bots;			/* of delta, clicks by bots */
	uint64		first_hour;		/* the entry's, taken with delta */
	TimestampTz last_visit;
	TimestampTz exhausted_at;
	bool		applied;		/* the link was still there */
	bool		kept;			/* not applied, but the link may still be
								 * committed: back to pending */
	bool		reset;			/* taken by a reset: dropped, not applied */
	bool		move;			/* the reset of a link moving away */
	bool		limited;		/* its entry keeps a limited link's total */
	bool		shipped;		/* a standby's (flush_apply_shipped()): no
								 * entry of ours holds it */
	SubTransactionId subid;		/* the subtransaction that took it */
} flush_item;

/* The flush of the current transaction, if any */
static struct
{
	bool		active;
	bool		collected;		/* flush_clicks() ran in this transaction */
	bool		shipped;		/* or flush_apply_shipped() did */
	SubTransactionId subid;		/* where the flush began (and took the lock) */
	SubTransactionId collected_subid;	/* where flush_clicks() ran */
	SubTransactionId newest_subid;	/* the newest that added anything */
	flush_item *items;			/* in TopTransactionContext, by link_id */
	int			nitems;
	int			cap;
	Oid			relid;			/* shorturl.links */
	int64		stale;			/* clicks of an earlier shorturl.links */
	int64	   *reset_ids;		/* links reset or moved: analytics to forget */
	SubTransactionId *reset_subids;	/* where each was reset */
	int			nreset_ids;
	int64	   *adjust_ids;		/* limited totals to raise at commit */
	int64	   *adjust_by;
	SubTransactionId *adjust_subids;	/* where each was noted */
	int			nadjust;
	TimestampTz started;
} flush_tx;

static bool callbacks_registered = false;
static SPIPlanPtr plan_update;
static SPIPlanPtr plan_insert;
static SPIPlanPtr plan_exhausted;
static SPIPlanPtr plan_compact;
static SPIPlanPtr plan_compact_07;	/* before ALTER EXTENSION UPDATE to 0.8 */
static SPIPlanPtr plan_series;

static void flush_xact_callback(XactEvent event, void *arg);
static void flush_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

/* flush_partitions is how many parts the counter table flushes in */
int
flush_partitions(void)
{
	return counters_partitions();
}

/* What collect_visit needs to know */
typedef struct collect_arg
{
	TransactionId xid;			/* the flushing transaction */
	int			nreset;			/* items[0..nreset): links reset in it, sorted */
} collect_arg;

static int	by_link_id(const void *a, const void *b);

/*
 * adding_subid is the current subtransaction, for what it adds to the
 * transaction's flush: undone if it aborts (undo_since()).
 */
static inline SubTransactionId
adding_subid(void)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (subid > flush_tx.newest_subid)
		flush_tx.newest_subid = subid;
	return subid;
}

static int
by_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* collect_visit takes one entry's pending clicks (a counters_scan visitor) */
static bool
collect_visit(counter_entry *e, void *arg)
{
	collect_arg *c = arg;
	flush_item *item;
	uint64		delta;
	uint64		first_hour;
	uint64		bots;

	if (e->key.dbid != MyDatabaseId || pg_atomic_read_u64(&e->pending) == 0)
		return true;
	if (c->nreset > 0)
	{
		flush_item	key = {.link_id = e->key.link_id};

		/* a link reset in this transaction: its new clicks wait for the next flush */
		if (bsearch(&key, flush_tx.items, c->nreset, sizeof(flush_item), by_link_id))
			return true;
	}
	if (e->key.relid != flush_tx.relid)
	{
		/* an earlier incarnation's: drop_stale() removes it */
		flush_tx.stale++;
		return true;
	}
	delta = pg_atomic_exchange_u64(&e->pending, 0);
	if (delta == 0)
		return true;
	/* pending first: see note_hour() in clicks.c */
	first_hour = pg_atomic_exchange_u64(&e->first_hour, 0);
	bots = pg_atomic_exchange_u64(&e->pending_bots, 0);
	bots = Min(bots, delta);
	if (flush_tx.nitems == flush_tx.cap)
	{
		flush_tx.cap *= 2;
		flush_tx.items = repalloc(flush_tx.items, flush_tx.cap * sizeof(flush_item));
	}
	item = &flush_tx.items[flush_tx.nitems++];
	item->link_id = e->key.link_id;
	item->delta = (int64) delta;
	item->bots = (int64) bots;
	item->first_hour = first_hour;
	item->last_visit = (TimestampTz) pg_atomic_read_u64(&e->last_visit);
	item->applied = false;
	item->kept = false;
	item->reset = false;
	item->move = false;
	item->subid = adding_subid();
	item->shipped = false;

	SpinLockAcquire(&e->mutex);
	e->inflight += (int64) delta;
	e->inflight_bots += (int64) bots;
	e->flush_xid = c->xid;
	item->exhausted_at = e->exhausted_at;
	item->limited = e->limited;
	pg_atomic_write_u32(&e->gen, pg_atomic_read_u32(&e->gen) + 1);
	SpinLockRelease(&e->mutex);
	return true;
}

static int
by_link_id(const void *a, const void *b)
{
	int64		x = ((const flush_item *) a)->link_id;
	int64		y = ((const flush_item *) b)->link_id;

	return (x > y) - (x < y);
}

/* find_item returns the item of a link (items are sorted by link_id) */
static flush_item *
find_item(int64 link_id)
{
	flush_item	key = {.link_id = link_id};

	return bsearch(&key, flush_tx.items, flush_tx.nitems, sizeof(flush_item), by_link_id);
}

/*
 * mark_applied marks the items whose link ids the last statement returned
 * (its first column), and returns how many it marked.
 */
static int
mark_applied(void)
{
	int			marked = 0;

	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		flush_item *item = find_item(DatumGetInt64(spi_result((int) r, 1, &isnull)));

		if (item && !item->applied)
		{
			item->applied = true;
			marked++;
		}
	}
	return marked;
}

/*
 * apply_batch adds items[from..to) to shorturl.visit_counts and marks those
 * it wrote.  Most links clicked in a flush interval already have their
 * row, so an UPDATE adds to those first: it writes one row version each
 * and nothing else, where INSERT ... ON CONFLICT DO UPDATE would also log
 * a row lock per link.  The table's fillfactor leaves room for the new
 * version on the same page (a HOT update: no index entry).  The UPDATE
 * does not look the links up: a deleted link's row goes with it (the
 * links_deleted trigger, in the deleting transaction; an UPDATE that
 * waited for it then skips the row), so a row found is a live link's, or
 * an orphan the worker's sweep deletes.  That saves a probe of
 * links_pkey per link, a third of the statement's time (3 of 8.5 us a
 * link on 10,000 scattered rows).  The links left, clicked for the first
 * time (or whose row a concurrent reset_visits() removed), are inserted
 * if their link still exists; ON CONFLICT covers a row made meanwhile by a
 * synchronous click's compaction.
 */
static void
apply_batch(int from, int to)
{
	Oid			argtypes[3] = {INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	int			n = to - from;
	Datum	   *ids = palloc(n * sizeof(Datum));
	Datum	   *deltas = palloc(n * sizeof(Datum));
	Datum	   *visited = palloc(n * sizeof(Datum));
	Datum		values[3];
	int			left;

	n = 0;
	for (int i = from; i < to; i++)
	{
		flush_item *item = &flush_tx.items[i];

		/* a reset's clicks are dropped, not applied */
		if (item->reset)
			continue;
		ids[n] = Int64GetDatum(item->link_id);
		deltas[n] = Int64GetDatum(item->delta);
		visited[n] = TimestampTzGetDatum(item->last_visit);
		n++;
	}
	if (n == 0)
		return;
	values[0] = spi_array(ids, n, INT8OID);
	values[1] = spi_array(deltas, n, INT8OID);
	values[2] = spi_array(visited, n, TIMESTAMPTZOID);

	spi_run(spi_plan_generic(&plan_update,
					 "UPDATE shorturl.visit_counts AS c"
					 "   SET visits = c.visits + d.delta,"
					 "       last_visit_at = GREATEST(c.last_visit_at, d.visited)"
					 "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
					 "                  pg_catalog.unnest($3)) AS d(link_id, delta, visited)"
					 " WHERE c.link_id = d.link_id"
					 " RETURNING c.link_id",
					 3, argtypes),
			values, NULL, false, SPI_OK_UPDATE_RETURNING);
	left = n - mark_applied();

	if (left > 0)
	{
		int			k = 0;

		for (int i = 0; i < n; i++)
		{
			flush_item *item = find_item(DatumGetInt64(ids[i]));

			if (item->applied)
				continue;
			ids[k] = ids[i];
			deltas[k] = deltas[i];
			visited[k] = visited[i];
			k++;
		}
		values[0] = spi_array(ids, k, INT8OID);
		values[1] = spi_array(deltas, k, INT8OID);
		values[2] = spi_array(visited, k, TIMESTAMPTZOID);
		spi_run(spi_plan_generic(&plan_insert,
						 "INSERT INTO shorturl.visit_counts AS c (link_id, visits, last_visit_at)"
						 " SELECT d.link_id, d.delta, d.visited"
						 "   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
						 "                   pg_catalog.unnest($3)) AS d(link_id, delta, visited)"
						 "  WHERE EXISTS (SELECT FROM shorturl.links l WHERE l.id = d.link_id)"
						 " ON CONFLICT (link_id) DO UPDATE"
						 "   SET visits = c.visits + excluded.visits,"
						 "       last_visit_at = GREATEST(c.last_visit_at, excluded.last_visit_at)"
						 " RETURNING c.link_id",
						 3, argtypes),
				values, NULL, false, SPI_OK_INSERT_RETURNING);
		(void) mark_applied();
	}
	pfree(ids);
	pfree(deltas);
	pfree(visited);
}

/*
 * apply_series_batch adds n link-hours to shorturl.link_visits_hourly, as
 * apply_batch() adds counts: an UPDATE of the rows there (most of a flush's
 * links were clicked in the same hour at the last flush), which writes one
 * row version each, then an INSERT of the rest.
 */
static void
apply_series_batch(Datum *ids, Datum *hours, Datum *visits, Datum *bots, int n)
{
	static SPIPlanPtr plan_series_update;
	Oid			argtypes[4] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[4];
	bool	   *done = palloc0(n * sizeof(bool));
	int			left = n;

	values[0] = spi_array(ids, n, INT8OID);
	values[1] = spi_array(hours, n, TIMESTAMPTZOID);
	values[2] = spi_array(visits, n, INT8OID);
	values[3] = spi_array(bots, n, INT8OID);
	spi_run(spi_plan_generic(&plan_series_update,
					 "UPDATE shorturl.link_visits_hourly AS h"
					 "   SET visits = h.visits + d.visits, bots = h.bots + d.bots"
					 "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
					 "                  pg_catalog.unnest($3), pg_catalog.unnest($4))"
					 "       WITH ORDINALITY AS d(link_id, hour, visits, bots, i)"
					 " WHERE h.link_id = d.link_id AND h.hour = d.hour"
					 " RETURNING d.i",
					 4, argtypes),
			values, NULL, false, SPI_OK_UPDATE_RETURNING);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		i = DatumGetInt64(spi_result((int) r, 1, &isnull));

		if (i >= 1 && i <= n && !done[i - 1])
		{
			done[i - 1] = true;
			left--;
		}
	}
	if (left > 0)
	{
		int			k = 0;

		for (int i = 0; i < n; i++)
		{
			if (done[i])
				continue;
			ids[k] = ids[i];
			hours[k] = hours[i];
			visits[k] = visits[i];
			bots[k] = bots[i];
			k++;
		}
		values[0] = spi_array(ids, k, INT8OID);
		values[1] = spi_array(hours, k, TIMESTAMPTZOID);
		values[2] = spi_array(visits, k, INT8OID);
		values[3] = spi_array(bots, k, INT8OID);
		spi_run(spi_plan_generic(&plan_series,
						 "INSERT INTO shorturl.link_visits_hourly AS h (link_id, hour, visits, bots)"
						 " SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
						 "                          pg_catalog.unnest($3), pg_catalog.unnest($4))"
						 " ON CONFLICT (link_id, hour) DO UPDATE"
						 "   SET visits = h.visits + excluded.visits, bots = h.bots + excluded.bots",
						 4, argtypes),
				values, NULL, false, SPI_OK_INSERT);
	}
	pfree(done);
}

/*
 * apply_series adds the applied items' clicks to their links' hours in
 * shorturl.link_visits_hourly, in the same transaction as their counts, so
 * a link's series always adds up to its count.  An item's first-hour
 * clicks go to that hour, the rest to the hour of its latest click (see
 * note_hour() in clicks.c), and its bots' clicks to the latest hour as far
 * as it has clicks, then to the first.
 */
static void
apply_series(void)
{
	int			cap = 2 * flush_tx.nitems;
	Datum	   *ids;
	Datum	   *hours;
	Datum	   *visits;
	Datum	   *bots;
	int			n = 0;

	/* a schema older than the library has no series (until ALTER EXTENSION UPDATE) */
	if (flush_tx.nitems == 0 || !catalog_tables()->analytics)
		return;
	ids = palloc(cap * sizeof(Datum));
	hours = palloc(cap * sizeof(Datum));
	visits = palloc(cap * sizeof(Datum));
	bots = palloc(cap * sizeof(Datum));
	for (int i = 0; i < flush_tx.nitems; i++)
	{
		flush_item *item = &flush_tx.items[i];
		uint64		last_hour = clicks_hour(item->last_visit);
		uint64		first_hour = item->first_hour >> COUNTER_HOUR_SHIFT;
		int64		first = Min((int64) (item->first_hour & COUNTER_HOUR_COUNT_MASK), item->delta);
		int64		rest = item->delta - first;
		int64		rest_bots = Min(item->bots, rest);

		if (!item->applied || item->reset || item->shipped)
			continue;
		if (first > 0 && first_hour == last_hour)
		{
			rest += first;
			rest_bots = item->bots;
			first = 0;
		}
		if (first > 0)
		{
			ids[n] = Int64GetDatum(item->link_id);
			hours[n] = TimestampTzGetDatum((TimestampTz) first_hour * USECS_PER_HOUR);
			visits[n] = Int64GetDatum(first);
			bots[n] = Int64GetDatum(item->bots - rest_bots);
			n++;
		}
		if (rest > 0)
		{
			ids[n] = Int64GetDatum(item->link_id);
			hours[n] = TimestampTzGetDatum((TimestampTz) last_hour * USECS_PER_HOUR);
			visits[n] = Int64GetDatum(rest);
			bots[n] = Int64GetDatum(rest_bots);
			n++;
		}
	}
	for (int from = 0; from < n; from += FLUSH_BATCH_SIZE)
		apply_series_batch(ids + from, hours + from, visits + from, bots + from,
						   Min(n - from, FLUSH_BATCH_SIZE));
	pfree(ids);
	pfree(hours);
	pfree(visits);
	pfree(bots);
}

/*
 * mark_exhausted sets exhausted_at on the links that reached max_visits:
 * those whose last click reached it, and any other limited link whose
 * count now does (update_link() may have lowered the limit under a click
 * that read the old one; that link's clicks are refused from then on, so
 * no later click would reach the limit exactly).  It checks the limit
 * against the count just written: update_link() may also have raised it
 * since the click that reached the old one (the UPDATE rereads a row
 * changed meanwhile), and an exhausted_at set wrongly would have the purge
 * delete a link with visits left.
 */
static void
mark_exhausted(void)
{
	Oid			argtypes[2] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum	   *ids = palloc(flush_tx.nitems * sizeof(Datum));
	Datum	   *at = palloc(flush_tx.nitems * sizeof(Datum));
	Datum		values[2];
	int			n = 0;

	for (int i = 0; i < flush_tx.nitems; i++)
	{
		flush_item *item = &flush_tx.items[i];

		if ((item->exhausted_at == 0 && !item->limited) || !item->applied)
			continue;
		ids[n] = Int64GetDatum(item->link_id);
		at[n] = TimestampTzGetDatum(item->exhausted_at != 0 ? item->exhausted_at : item->last_visit);
		n++;
	}
	if (n > 0)
	{
		values[0] = spi_array(ids, n, INT8OID);
		values[1] = spi_array(at, n, TIMESTAMPTZOID);
		spi_run(spi_plan_generic(&plan_exhausted,
						 "UPDATE shorturl.links l SET exhausted_at = d.at"
						 "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(link_id, at)"
						 " WHERE l.id = d.link_id AND l.exhausted_at IS NULL"
						 "   AND l.max_visits <= (SELECT c.visits FROM shorturl.visit_counts c"
						 "                         WHERE c.link_id = l.id)",
						 2, argtypes),
				values, NULL, false, SPI_OK_UPDATE);
	}
	pfree(ids);
	pfree(at);
}

/*
 * keep_unseen marks the items whose link this flush could not see but that
 * may still exist: made by a transaction still in progress (its clicks came
 * before its commit), or deleted by one that may yet roll back.  Their
 * clicks go back to pending at commit instead of being dropped.
 */
static void
keep_unseen(void)
{
	for (int i = 0; i < flush_tx.nitems; i++)
	{
		flush_item *item = &flush_tx.items[i];

		if (!item->applied && !item->reset && !item->shipped &&
			lookup_link_may_exist(item->link_id))
			item->kept = true;
	}
}

/*
 * compact_pending merges the rows of shorturl.pending_visits (clicks
 * counted synchronously) into one row per link and hour, so they keep
 * their place in the link's series (the analytics job merges older ones
 * into one per day).  They stay in that table, part of the stored count:
 * moving them into shorturl.visit_counts would make rows there that a
 * restore in progress may still be about to load.  Returns how many rows
 * it merged away.
 */
static int64
compact_pending(void)
{
	bool		isnull;
	Datum		d;

	if (catalog_tables()->analytics)
		spi_run(spi_plan(&plan_compact,
						 "WITH many AS (SELECT link_id, pg_catalog.date_bin('1 hour', visited_at,"
						 "                              '2000-01-01 00:00+00') AS hour"
						 "                FROM shorturl.pending_visits"
						 "               GROUP BY 1, 2 HAVING count(*) > 1),"
						 "     gone AS (DELETE FROM shorturl.pending_visits p USING many"
						 "               WHERE p.link_id = many.link_id"
						 "                 AND pg_catalog.date_bin('1 hour', p.visited_at,"
						 "                                         '2000-01-01 00:00+00') = many.hour"
						 "               RETURNING p.link_id, p.visits, p.bots, p.visited_at, many.hour),"
						 "     kept AS (INSERT INTO shorturl.pending_visits (link_id, visits, bots, visited_at)"
						 "              SELECT link_id, sum(visits), sum(bots), max(visited_at) FROM gone"
						 "               GROUP BY link_id, hour RETURNING 1)"
						 " SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)",
						 0, NULL),
				NULL, NULL, false, SPI_OK_SELECT);
	else
		spi_run(spi_plan(&plan_compact_07,
						 "WITH many AS (SELECT link_id FROM shorturl.pending_visits"
						 "               GROUP BY link_id HAVING count(*) > 1),"
						 "     gone AS (DELETE FROM shorturl.pending_visits p USING many"
						 "               WHERE p.link_id = many.link_id"
						 "               RETURNING p.link_id, p.visits, p.visited_at),"
						 "     kept AS (INSERT INTO shorturl.pending_visits (link_id, visits, visited_at)"
						 "              SELECT link_id, sum(visits), max(visited_at) FROM gone"
						 "               GROUP BY link_id RETURNING 1)"
						 " SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)",
						 0, NULL),
				NULL, NULL, false, SPI_OK_SELECT);
	d = spi_result(0, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * drop_stale removes this database's entries of an earlier shorturl.links
 * (the extension was dropped and created again): their clicks have no
 * table to go to, and their ids may come again.
 */
static void
drop_stale(void)
{
	db_state   *db = dbstate_mine();
	int64		dropped = 0;

	for (int p = 0; p < counters_partitions(); p++)
		dropped += counters_discard_stale(p, MyDatabaseId, flush_tx.relid);
	if (db != NULL)
		pg_atomic_fetch_add_u64(&db->dropped_deltas, (uint64) dropped);
}

/*
 * begin_flush takes the database's flush lock for the rest of the
 * transaction and makes the transaction's flush state ready for items.
 */
static void
begin_flush(void)
{
	LOCKTAG		tag;

	if (!callbacks_registered)
	{
		RegisterXactCallback(flush_xact_callback, NULL);
		RegisterSubXactCallback(flush_subxact_callback, NULL);
		callbacks_registered = true;
	}
	/* one flush of this database at a time, to the end of its transaction */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, SHORTURL_LOCK_FLUSH);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	/* promoted with a standby's batch in flight: settle it before taking any */
	if (counters_available() && !RecoveryInProgress())
	{
		db_state   *db = dbstate_mine();

		if (db != NULL && pg_atomic_read_u64(&db->ship_seq) != 0)
			ship_promoted(db);
	}
	if (flush_tx.active)
		return;
	flush_tx.started = GetCurrentTimestamp();
	flush_tx.cap = 256;
	flush_tx.nitems = 0;
	flush_tx.items = MemoryContextAlloc(TopTransactionContext, flush_tx.cap * sizeof(flush_item));
	flush_tx.subid = GetCurrentSubTransactionId();
	flush_tx.newest_subid = flush_tx.subid;
	flush_tx.relid = catalog_tables()->links;
	flush_tx.stale = 0;
	flush_tx.nadjust = 0;
	flush_tx.reset_ids = NULL;
	flush_tx.reset_subids = NULL;
	flush_tx.nreset_ids = 0;
	flush_tx.adjust_ids = NULL;
	flush_tx.adjust_by = NULL;
	flush_tx.adjust_subids = NULL;
	flush_tx.collected = false;
	flush_tx.shipped = false;
	flush_tx.active = true;
}

/*
 * flush_clicks writes this database's pending clicks held in partitions
 * [first, first + n) of the counter table to shorturl.visit_counts within
 * the current transaction, compacts shorturl.pending_visits, and returns
 * how many visits it wrote; with analytics (and from the first partition),
 * the dimensions and visitors too.  The shared entries are settled when
 * the transaction ends.  A second call in the same
 * transaction finds nothing more to do and returns 0; links reset earlier
 * in the transaction keep their new clicks for the next flush.
 */
int64
flush_clicks(int first, int n, bool analytics)
{
	int64		applied = 0;
	click_mode	mode = clicks_mode();

	if (mode == CLICKS_NONE || mode == CLICKS_STANDBY ||
		(flush_tx.active && flush_tx.collected))
		return 0;

	/* the transaction may have reset links already: their items come first */
	begin_flush();
	flush_tx.collected = true;
	flush_tx.collected_subid = adding_subid();

	/* a database no longer served may have clicks left there too */
	if (counters_available())
	{
		collect_arg c;

		/* readers compare against the transaction that will commit */
		c.xid = GetTopTransactionId();
		c.nreset = flush_tx.nitems;
		qsort(flush_tx.items, flush_tx.nitems, sizeof(flush_item), by_link_id);
		for (int p = first; p < first + n && p < counters_partitions(); p++)
		{
			LWLock	   *lock = counters_partition_lock(p);

			LWLockAcquire(lock, LW_SHARED);
			counters_scan(p, collect_visit, &c);
			LWLockRelease(lock);
		}
		qsort(flush_tx.items, flush_tx.nitems, sizeof(flush_item), by_link_id);
		if (flush_tx.stale > 0)
			drop_stale();
	}

	spi_begin();
	for (int from = 0; from < flush_tx.nitems; from += FLUSH_BATCH_SIZE)
		apply_batch(from, Min(from + FLUSH_BATCH_SIZE, flush_tx.nitems));
	apply_series();
	mark_exhausted();
	keep_unseen();
	(void) compact_pending();
	if (analytics && first == 0 && catalog_tables()->analytics)
		analytics_flush(flush_tx.relid);
	SPI_finish();

	for (int i = 0; i < flush_tx.nitems; i++)
		if (flush_tx.items[i].applied)
			applied += flush_tx.items[i].delta;
	return applied;
}

/*
 * give_back returns an item's clicks to its entry's pending clicks (a flush
 * or reset that rolled back, or a link the flush could not see yet), in
 * the order a click counts them (note_hour() in clicks.c).  Their first
 * hour goes back too unless later clicks have set another; then the flush
 * that takes them gives them to the hour of the latest click.
 */
static void
give_back(counter_entry *e, const flush_item *item)
{
	uint64		none = 0;

	if (item->first_hour != 0)
		(void) pg_atomic_compare_exchange_u64(&e->first_hour, &none, item->first_hour);
	if (item->bots > 0)
		pg_atomic_fetch_add_u64(&e->pending_bots, (uint64) item->bots);
	pg_atomic_fetch_add_u64(&e->pending, (uint64) item->delta);
}

/*
 * end_inflight takes an item's clicks off its entry's in-flight count; the
 * caller holds the entry's mutex and moves the clicks where they belong.
 */
static inline void
end_inflight(counter_entry *e, const flush_item *item)
{
	e->inflight -= item->delta;
	e->inflight_bots -= item->bots;
	if (e->inflight == 0)
		e->flush_xid = InvalidTransactionId;
}

/*
 * settle_reset ends a reset of one link's count.  At commit the clicks it
 * took are gone with the stored count, and a limited entry's total starts
 * again from the clicks made since; the exclusive lock keeps clicks out
 * while the total is set.  At abort the clicks go back to pending.
 */
static void
settle_reset(flush_item *item, const counter_key *key, uint32 hash, bool committed)
{
	LWLock	   *lock = counters_lock_for(hash);
	counter_entry *e;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = counters_lookup(key, hash);
	if (e != NULL)
	{
		if (!committed)
			give_back(e, item);
		SpinLockAcquire(&e->mutex);
		end_inflight(e, item);
		if (committed)
		{
			e->total = (int64) pg_atomic_read_u64(&e->pending);
			e->exhausted_at = 0;
		}
		if (committed && item->move)
		{
			/* if the link comes back, its total is read afresh */
			e->limited = false;
			e->total = 0;
		}
		pg_atomic_write_u32(&e->gen, pg_atomic_read_u32(&e->gen) + 1);
		SpinLockRelease(&e->mutex);
		if (item->move)
		{
			/*
			 * A move that rolls back lets the link count here again; one
			 * that commits fences it for a while from now (clicks.c).
			 */
			if (!committed)
				e->moving = false;
			else
				e->moved_at = GetCurrentTimestamp();
			e->move_open = false;
		}
	}
	LWLockRelease(lock);
}

/*
 * settle_item ends one item of the transaction's flush: at commit its clicks
 * are in the table (or back in pending, if kept), at abort they go back to
 * pending; a reset's go as settle_reset() says.  Must not fail.
 */
static void
settle_item(flush_item *item, bool committed)
{
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	counter_entry *e;

	/* a standby's clicks: no entry of ours holds them */
	if (item->shipped)
		return;
	counters_make_key(&key, MyDatabaseId, flush_tx.relid, item->link_id);
	hash = counters_hash(&key);
	if (item->reset)
	{
		settle_reset(item, &key, hash, committed);
		return;
	}
	lock = counters_lock_for(hash);
	LWLockAcquire(lock, LW_SHARED);
	/* an entry with clicks in flight is never removed */
	e = counters_lookup(&key, hash);
	if (e != NULL)
	{
		/*
		 * Back to pending before inflight drops: a reader in between counts
		 * them twice, but sees the generation change and reads again; the
		 * other order would let it miss them.
		 */
		if (!committed || item->kept)
			give_back(e, item);
		SpinLockAcquire(&e->mutex);
		end_inflight(e, item);
		pg_atomic_write_u32(&e->gen, pg_atomic_read_u32(&e->gen) + 1);
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(lock);
}

/*
 * settle ends the transaction's flush: at commit the in-flight clicks are
 * in the table; at abort they go back to pending.  It runs inside
 * CommitTransaction or AbortTransaction and must not fail.
 */
static void
settle(bool committed)
{
	db_state   *db = dbstate_mine();
	int64		flushed = 0;
	int64		dropped = 0;
	bool		gone = false;

	for (int i = 0; i < flush_tx.nitems; i++)
	{
		flush_item *item = &flush_tx.items[i];

		settle_item(item, committed);
		if (!committed || item->reset)
			continue;
		if (item->shipped)
		{
			/* in the tables, or its link is gone (the standby keeps nothing) */
			if (!item->applied)
				dropped += item->delta;
		}
		else if (item->applied)
			flushed += item->delta;
		else if (!item->kept)
		{
			dropped += item->delta;
			gone = true;
		}
	}

	/* visits added to the table raise a limited link's total with them */
	for (int i = 0; committed && counters_available() && i < flush_tx.nadjust; i++)
	{
		counter_key key;
		uint32		hash;
		LWLock	   *lock;
		counter_entry *e;

		counters_make_key(&key, MyDatabaseId, flush_tx.relid, flush_tx.adjust_ids[i]);
		hash = counters_hash(&key);
		lock = counters_lock_for(hash);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		e = counters_lookup(&key, hash);
		if (e != NULL)
		{
			SpinLockAcquire(&e->mutex);
			if (e->limited)
				e->total += flush_tx.adjust_by[i];
			pg_atomic_write_u32(&e->gen, pg_atomic_read_u32(&e->gen) + 1);
			SpinLockRelease(&e->mutex);
			/* the link has come back: the fence of its earlier move ends */
			e->moving = false;
			e->move_open = false;
		}
		LWLockRelease(lock);
	}

	/* the entries of deleted links hold nothing worth keeping */
	if (gone)
	{
		for (int i = 0; i < flush_tx.nitems; i++)
		{
			if (!flush_tx.items[i].applied && !flush_tx.items[i].reset &&
				!flush_tx.items[i].kept && !flush_tx.items[i].shipped)
				clicks_forget(flush_tx.items[i].link_id);
		}
	}

	if (committed && db != NULL)
	{
		TimestampTz now = GetCurrentTimestamp();

		pg_atomic_fetch_add_u64(&db->flushed_visits, (uint64) flushed);
		pg_atomic_fetch_add_u64(&db->dropped_deltas, (uint64) dropped);
		/* a reset or a move alone is no flush */
		if (flush_tx.collected && !flush_tx.shipped)
		{
			pg_atomic_fetch_add_u64(&db->flushes, 1);
			pg_atomic_write_u64(&db->last_flush_at, (uint64) now);
			pg_atomic_write_u64(&db->last_flush_us, (uint64) (now - flush_tx.started));
		}
		/* entries with nothing pending again: clicks waiting for room may go on */
		dbstate_room_made();
	}
	/* reset links' unflushed dimensions and visitors go with their counts */
	if (committed && flush_tx.nreset_ids > 0)
	{
		qsort(flush_tx.reset_ids, flush_tx.nreset_ids, sizeof(int64), by_int64);
		analytics_forget_links(flush_tx.reset_ids, flush_tx.nreset_ids);
	}
	flush_tx.nreset_ids = 0;
	analytics_settle(committed);
	flush_tx.active = false;
	flush_tx.items = NULL;
	flush_tx.nitems = 0;
}

/*
 * undo_since undoes, when subtransaction subid aborts, what it and the
 * subtransactions begun inside it added to the transaction's flush: their
 * items go back as at an abort, their resets and adjustments are
 * forgotten, and a collection made there may be made again.  What was
 * added before subid began stays for the transaction's end.  Subtransaction
 * ids grow, so what subid holds is what has an id from subid on, and the
 * arrays filled in order hold it at their ends.  Must not fail.
 */
static void
undo_since(SubTransactionId subid)
{
	int			kept = 0;

	/* (a savepoint that added nothing costs no walk over the items) */
	if (subid > flush_tx.newest_subid)
		return;
	for (int i = 0; i < flush_tx.nitems; i++)
	{
		if (flush_tx.items[i].subid >= subid)
			settle_item(&flush_tx.items[i], false);
		else
			flush_tx.items[kept++] = flush_tx.items[i];
	}
	flush_tx.nitems = kept;
	while (flush_tx.nreset_ids > 0 && flush_tx.reset_subids[flush_tx.nreset_ids - 1] >= subid)
		flush_tx.nreset_ids--;
	while (flush_tx.nadjust > 0 && flush_tx.adjust_subids[flush_tx.nadjust - 1] >= subid)
		flush_tx.nadjust--;
	if (flush_tx.collected && flush_tx.collected_subid >= subid)
	{
		/*
		 * shipped goes with collected: flush_apply_shipped() runs only in a
		 * flush that holds nothing else, so its items were all added since
		 * subid too and have just gone.
		 */
		flush_tx.collected = false;
		flush_tx.shipped = false;
		analytics_settle(false);
	}
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
			settle(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			settle(false);
			break;
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that flushed, reset or moved click counts")));
			break;
		default:
			break;
	}
}

static void
flush_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid pg_attribute_unused(),
					   void *arg pg_attribute_unused())
{
	if (!flush_tx.active || event != SUBXACT_EVENT_ABORT_SUB)
		return;

	/*
	 * A subtransaction that aborts while the flush is on is open, so one
	 * older than the subtransaction where the flush began holds it: the
	 * whole flush is rolled back, and its lock released.  A younger one
	 * began inside what holds the flush: only what it added goes.
	 */
	if (mySubid <= flush_tx.subid)
		settle(false);
	else
		undo_since(mySubid);
}

/*
 * take_link takes the clicks shared memory holds for a link into the
 * transaction's flush as a reset item: they are gone if the transaction
 * commits (the caller has written the link's count itself) and back in
 * pending if it aborts.  Returns how many it took.  The flush lock is held.
 *
 * For a link moving away (move), the entry also becomes a fence: from now
 * on no click counts here (clicks.c), so none can come after the take and
 * be lost with the deleted link.  An entry is made for the fence if there
 * is none; a rollback lifts it.
 */
static int64
take_link(int64 link_id, bool move)
{
	counter_key key;
	uint32		hash;
	LWLock	   *lock;
	counter_entry *e;
	TransactionId xid;
	int64		taken = 0;

	if (!counters_available() || RecoveryInProgress())
		return 0;
	xid = GetTopTransactionId();
	/* (room for it now: the commit callback that uses it must not fail) */
	if (flush_tx.reset_ids == NULL)
	{
		flush_tx.reset_ids = MemoryContextAlloc(TopTransactionContext, 64 * sizeof(int64));
		flush_tx.reset_subids = MemoryContextAlloc(TopTransactionContext, 64 * sizeof(SubTransactionId));
	}
	else if (flush_tx.nreset_ids % 64 == 0)
	{
		flush_tx.reset_ids = repalloc(flush_tx.reset_ids, (flush_tx.nreset_ids + 64) * sizeof(int64));
		flush_tx.reset_subids = repalloc(flush_tx.reset_subids,
										 (flush_tx.nreset_ids + 64) * sizeof(SubTransactionId));
	}
	flush_tx.reset_subids[flush_tx.nreset_ids] = adding_subid();
	flush_tx.reset_ids[flush_tx.nreset_ids++] = link_id;
	counters_make_key(&key, MyDatabaseId, flush_tx.relid, link_id);
	hash = counters_hash(&key);
	lock = counters_lock_for(hash);
	LWLockAcquire(lock, move ? LW_EXCLUSIVE : LW_SHARED);
	e = counters_lookup(&key, hash);
	if (e == NULL && move)
	{
		bool		found;

		/* NULL when the partition is full: then there is no fence */
		e = counters_enter(&key, hash, &found);
	}
	if (e != NULL)
	{
		int			before = flush_tx.nitems;
		collect_arg c = {xid, 0};

		(void) collect_visit(e, &c);
		/* an entry with nothing pending still needs its total reset */
		if (flush_tx.nitems == before)
		{
			if (flush_tx.nitems == flush_tx.cap)
			{
				flush_tx.cap *= 2;
				flush_tx.items = repalloc(flush_tx.items, flush_tx.cap * sizeof(flush_item));
			}
			memset(&flush_tx.items[flush_tx.nitems], 0, sizeof(flush_item));
			flush_tx.items[flush_tx.nitems].subid = adding_subid();
			flush_tx.items[flush_tx.nitems++].link_id = link_id;
		}
		flush_tx.items[flush_tx.nitems - 1].reset = true;
		flush_tx.items[flush_tx.nitems - 1].move = move;
		taken = flush_tx.items[flush_tx.nitems - 1].delta;
		if (move)
		{
			e->moving = true;
			e->move_open = true;
			e->moved_at = GetCurrentTimestamp();
		}
	}
	LWLockRelease(lock);
	return taken;
}

/*
 * flush_reset_here tells whether the current transaction reset a link's
 * count (reset_visits()): until it commits, the link's live count is the
 * clicks made since, which clicks_live_visits() cannot know.
 */
bool
flush_reset_here(int64 link_id)
{
	if (!flush_tx.active)
		return false;
	for (int i = 0; i < flush_tx.nitems; i++)
		if (flush_tx.items[i].link_id == link_id && flush_tx.items[i].reset)
			return true;
	return false;
}

/*
 * flush_reset_link sets a link's count back to zero in the current
 * transaction: its stored rows go (its analytics too), and the clicks
 * shared memory holds for it go with them if the transaction commits (back
 * if it aborts).  Clicks
 * after this call count from zero.  Returns the count it removed.  Takes
 * the flush lock, so no flush of the database is in flight.
 */
int64
flush_reset_link(int64 link_id)
{
	static SPIPlanPtr plan_reset;
	static SPIPlanPtr plan_reset_07;	/* before ALTER EXTENSION UPDATE to 0.8 */
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(link_id)};
	int64		removed;
	bool		isnull;

	begin_flush();
	removed = take_link(link_id, false);
	spi_begin();
	if (catalog_tables()->analytics)
		spi_run(spi_plan(&plan_reset,
						 "WITH c AS (DELETE FROM shorturl.visit_counts WHERE link_id = $1 RETURNING visits),"
						 "     p AS (DELETE FROM shorturl.pending_visits WHERE link_id = $1 RETURNING visits),"
						 "     u AS (UPDATE shorturl.links SET exhausted_at = NULL WHERE id = $1),"
						 "     h AS (DELETE FROM shorturl.link_visits_hourly WHERE link_id = $1),"
						 "     d AS (DELETE FROM shorturl.link_visits_daily WHERE link_id = $1),"
						 "     b AS (DELETE FROM shorturl.link_visits_breakdown WHERE link_id = $1),"
						 "     v AS (DELETE FROM shorturl.link_visitors_daily WHERE link_id = $1)"
						 " SELECT (coalesce((SELECT pg_catalog.sum(visits) FROM c), 0)"
						 "       + coalesce((SELECT pg_catalog.sum(visits) FROM p), 0))::bigint",
						 1, argtypes),
				values, NULL, false, SPI_OK_SELECT);
	else
		spi_run(spi_plan(&plan_reset_07,
						 "WITH c AS (DELETE FROM shorturl.visit_counts WHERE link_id = $1 RETURNING visits),"
						 "     p AS (DELETE FROM shorturl.pending_visits WHERE link_id = $1 RETURNING visits),"
						 "     u AS (UPDATE shorturl.links SET exhausted_at = NULL WHERE id = $1)"
						 " SELECT (coalesce((SELECT pg_catalog.sum(visits) FROM c), 0)"
						 "       + coalesce((SELECT pg_catalog.sum(visits) FROM p), 0))::bigint",
						 1, argtypes),
				values, NULL, false, SPI_OK_SELECT);
	removed += DatumGetInt64(spi_result(0, 1, &isnull));
	SPI_finish();
	return removed;
}

/*
 * flush_take_link takes, for a link about to leave this database (a
 * rebalance moving it to another shard), the clicks shared memory holds
 * for it, and returns them; the caller adds them to the count it carries
 * away.  Takes the flush lock.
 */
int64
flush_take_link(int64 link_id)
{
	begin_flush();
	return take_link(link_id, true);
}

/*
 * note_adjust notes visits to add to a limited link's total in shared
 * memory when the transaction commits (settle()).
 */
static void
note_adjust(int64 link_id, int64 visits)
{
	if (flush_tx.adjust_ids == NULL)
	{
		flush_tx.adjust_ids = MemoryContextAlloc(TopTransactionContext, 64 * sizeof(int64));
		flush_tx.adjust_by = MemoryContextAlloc(TopTransactionContext, 64 * sizeof(int64));
		flush_tx.adjust_subids = MemoryContextAlloc(TopTransactionContext, 64 * sizeof(SubTransactionId));
	}
	else if (flush_tx.nadjust % 64 == 0)
	{
		flush_tx.adjust_ids = repalloc(flush_tx.adjust_ids, (flush_tx.nadjust + 64) * sizeof(int64));
		flush_tx.adjust_by = repalloc(flush_tx.adjust_by, (flush_tx.nadjust + 64) * sizeof(int64));
		flush_tx.adjust_subids = repalloc(flush_tx.adjust_subids,
										  (flush_tx.nadjust + 64) * sizeof(SubTransactionId));
	}
	flush_tx.adjust_subids[flush_tx.nadjust] = adding_subid();
	flush_tx.adjust_ids[flush_tx.nadjust] = link_id;
	flush_tx.adjust_by[flush_tx.nadjust++] = visits;
}

/*
 * flush_add_visits adds visits to a link's stored count in the current
 * transaction (the last clicks of a link that moved here), and to its
 * series at the current hour, and to its total in shared memory when the
 * transaction commits.  Takes the flush
 * lock.
 */
void
flush_add_visits(int64 link_id, int64 visits)
{
	static SPIPlanPtr plan_add;
	static SPIPlanPtr plan_add_07;	/* before ALTER EXTENSION UPDATE to 0.8 */
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(link_id), Int64GetDatum(visits)};

	begin_flush();
	spi_begin();
	if (catalog_tables()->analytics)
		spi_run(spi_plan(&plan_add,
						 "WITH c AS (INSERT INTO shorturl.visit_counts AS c (link_id, visits)"
						 "            SELECT $1, $2 WHERE EXISTS (SELECT FROM shorturl.links WHERE id = $1)"
						 "            ON CONFLICT (link_id) DO UPDATE SET visits = c.visits + excluded.visits"
						 "            RETURNING link_id)"
						 " INSERT INTO shorturl.link_visits_hourly AS h (link_id, hour, visits)"
						 " SELECT link_id, pg_catalog.date_bin('1 hour', pg_catalog.now(), '2000-01-01 00:00+00'), $2"
						 "   FROM c"
						 " ON CONFLICT (link_id, hour) DO UPDATE SET visits = h.visits + excluded.visits",
						 2, argtypes),
				values, NULL, false, SPI_OK_INSERT);
	else
		spi_run(spi_plan(&plan_add_07,
						 "INSERT INTO shorturl.visit_counts AS c (link_id, visits)"
						 " SELECT $1, $2 WHERE EXISTS (SELECT FROM shorturl.links WHERE id = $1)"
						 " ON CONFLICT (link_id) DO UPDATE SET visits = c.visits + excluded.visits",
						 2, argtypes),
				values, NULL, false, SPI_OK_INSERT);
	SPI_finish();
	note_adjust(link_id, visits);
}

/* by_row_link orders shipped rows by link, then hour */
static int
by_row_link(const void *a, const void *b)
{
	const shipped_row *x = a;
	const shipped_row *y = b;

	if (x->link_id != y->link_id)
		return (x->link_id > y->link_id) - (x->link_id < y->link_id);
	return (x->hour > y->hour) - (x->hour < y->hour);
}

/*
 * flush_apply_shipped adds a standby's shipped clicks (ship.c) to the
 * tables in the current transaction, through a flush's own statements, so
 * they cost the WAL of the primary's own clicks: the counts with
 * apply_batch(), the rows' hours as they came, and at commit a limited
 * link's total in shared memory.  A link may have a row per hour.  The
 * clicks of links deleted meanwhile are dropped (stats.dropped_deltas).
 * Returns the clicks applied.  Takes the flush lock; a transaction applies
 * one batch, and no flush, reset or move beside it.
 */
int64
flush_apply_shipped(shipped_row *rows, int n)
{
	int64		applied = 0;
	int			nseries = 0;
	Datum	   *ids;
	Datum	   *hours;
	Datum	   *visits;
	Datum	   *bots;

	begin_flush();
	if (flush_tx.nitems > 0 || flush_tx.collected)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot apply shipped clicks in a transaction that flushed, reset, moved or applied click counts")));
	/* not a flush of ours, but no flush in this transaction after it */
	flush_tx.collected = true;
	flush_tx.collected_subid = adding_subid();
	flush_tx.shipped = true;
	qsort(rows, n, sizeof(shipped_row), by_row_link);
	/* one row per link and hour: an upsert may touch a row once */
	if (n > 0)
	{
		int			k = 0;

		for (int i = 1; i < n; i++)
		{
			if (rows[i].link_id == rows[k].link_id && rows[i].hour == rows[k].hour)
			{
				rows[k].visits += rows[i].visits;
				rows[k].bots += rows[i].bots;
				rows[k].last_visit = Max(rows[k].last_visit, rows[i].last_visit);
			}
			else
				rows[++k] = rows[i];
		}
		n = k + 1;
	}
	for (int i = 0; i < n; i++)
	{
		flush_item *item;

		if (i > 0 && rows[i].link_id == rows[i - 1].link_id)
		{
			item = &flush_tx.items[flush_tx.nitems - 1];
			item->delta += rows[i].visits;
			item->bots += rows[i].bots;
			item->last_visit = Max(item->last_visit, rows[i].last_visit);
			continue;
		}
		if (flush_tx.nitems == flush_tx.cap)
		{
			flush_tx.cap *= 2;
			flush_tx.items = repalloc(flush_tx.items, flush_tx.cap * sizeof(flush_item));
		}
		item = &flush_tx.items[flush_tx.nitems++];
		memset(item, 0, sizeof(*item));
		item->subid = adding_subid();
		item->link_id = rows[i].link_id;
		item->delta = rows[i].visits;
		item->bots = rows[i].bots;
		item->last_visit = rows[i].last_visit;
		item->shipped = true;
		/* the link may have become limited since: mark_exhausted() checks */
		item->limited = true;
	}

	spi_begin();
	for (int from = 0; from < flush_tx.nitems; from += FLUSH_BATCH_SIZE)
		apply_batch(from, Min(from + FLUSH_BATCH_SIZE, flush_tx.nitems));
	ids = palloc(Max(n, 1) * sizeof(Datum));
	hours = palloc(Max(n, 1) * sizeof(Datum));
	visits = palloc(Max(n, 1) * sizeof(Datum));
	bots = palloc(Max(n, 1) * sizeof(Datum));
	for (int i = 0; i < n; i++)
	{
		flush_item *item = find_item(rows[i].link_id);

		if (item == NULL || !item->applied)
			continue;
		ids[nseries] = Int64GetDatum(rows[i].link_id);
		hours[nseries] = TimestampTzGetDatum(rows[i].hour);
		visits[nseries] = Int64GetDatum(rows[i].visits);
		bots[nseries] = Int64GetDatum(rows[i].bots);
		nseries++;
	}
	if (catalog_tables()->analytics)
		for (int from = 0; from < nseries; from += FLUSH_BATCH_SIZE)
			apply_series_batch(ids + from, hours + from, visits + from, bots + from,
							   Min(nseries - from, FLUSH_BATCH_SIZE));
	mark_exhausted();
	SPI_finish();
	for (int i = 0; i < flush_tx.nitems; i++)
	{
		if (!flush_tx.items[i].applied)
			continue;
		applied += flush_tx.items[i].delta;
		note_adjust(flush_tx.items[i].link_id, flush_tx.items[i].delta);
	}
	return applied;
}

PG_FUNCTION_INFO_V1(shorturl_flush);

/*
 * shorturl_flush implements flush() RETURNS bigint: write this database's
 * unflushed clicks, dimensions and visitors to the tables now, in this
 * transaction; they leave shared memory when it commits.  Returns the
 * visits written.
 */
Datum
shorturl_flush(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(flush_clicks(0, flush_partitions(), true));
}
