/*-------------------------------------------------------------------------
 *
 * ship.c
 *	  Read replicas: a hot standby's clicks, shipped to the primary exactly
 *	  once.
 *
 * On a standby, resolve() counts a click of a link without max_visits in
 * the shared counter table, as on a primary (clicks.c).  The database's
 * worker (worker.c) ships them every shorturl.ship_interval, over libpq, to
 * the primary's shorturl.apply_clicks() (apply.c):
 *	1. It numbers a batch (db->ship_seq), then takes the pending clicks of
 *	   every entry of its database into inflight, as a flush does.
 *	2. It sends the batch: one row per link and hour, with the standby's
 *	   identity (the system identifier, which a physical standby shares
 *	   with its primary, and its name), the number, and the OID of the
 *	   shorturl.links it counted against.
 *	3. The primary records the number in shorturl.standby_batches and adds
 *	   the clicks in one transaction, or, if that standby's last number is
 *	   not lower, does nothing: the batch was applied before.
 *	4. Once the primary has answered and this standby has replayed that
 *	   commit (its own standby_batches row shows the number), the entries'
 *	   inflight goes back to zero.  Waiting for the replay keeps a reader
 *	   of visits() here from missing the batch in between, and a promotion
 *	   from losing a batch the old primary answered but never streamed.
 * One batch is in flight at a time, sent again with the same number and
 * the same clicks until the primary answers: a lost answer makes the next
 * attempt a no-op, never a second count.  A new connection first asks the
 * primary for the standby's last number (shorturl.shipped_seq()), so a
 * batch applied whose answer was lost is not sent again.  A worker that
 * starts in a server that has not shipped yet numbers from the clock in
 * microseconds (or above the primary's last number), so its batches come
 * after any of an earlier life of the standby still on its way.
 *
 * A click's analytics (dimension values and visitor, analytics.c) go in
 * the batch too: the take moves them out of the standby's tables into the
 * worker's memory, and the primary adds them to its own tables when the
 * batch commits there.  They are the worker's alone: one that dies or
 * leaves with a batch the primary has not applied yet loses them (counted
 * as dropped once the batch built again is applied), never a click.
 *
 * One concern, the standby's half of shipping; the file passes 700 lines
 * because taking, numbering, sending and settling a batch share its state
 * (the static batch) and nothing else may touch it.
 *
 * The entries' inflight is the batch: a worker that starts while a batch
 * is in flight (its predecessor died) builds it again from them.  A reader
 * of visits() on the standby counts pending and inflight clicks on top of
 * the stored count, inflight until the replayed row shows the batch
 * (clicks.c).  After a promotion, the first flush settles the batch in
 * flight by that row (ship_promoted()): applied on the old primary, or
 * given back to pending, for the new primary's flushes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "catalog.h"
#include "clicks.h"
#include "counters.h"
#include "dbstate.h"
#include "flush.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "ship.h"
#include "upstream.h"

/* Rows a batch makes room for at first */
#define BATCH_INITIAL_ROWS	256

/* How often a failure to ship is logged at most (each is counted) */
#define FAILURE_LOG_MS		60000

/* The batch in flight, in the worker's memory */
typedef struct ship_batch
{
	uint64		seq;			/* 0: none */
	bool		answered;		/* the primary has applied it */
	char		name[NAMEDATALEN];	/* the standby's name when numbered */
	Oid			relid;			/* the shorturl.links counted against */
	int			n;
	int			cap;
	shipped_row *rows;
	int64		visits;
	bool		rebuilt;		/* from the entries' inflight, by a worker
								 * after the one that took it */
	/* the clicks' analytics (the worker's alone: lost if it dies) */
	analytics_shipped_dim *dims;
	int			ndims;
	analytics_shipped_visitor *visitors;
	int			nvisitors;
} ship_batch;

static ship_batch batch;
static upstream primary = {
	.application_name = "pg_shorturl shipper",
	.timeout_name = "shorturl.ship_timeout",
};

/* ---------------------------------------------------------------------
 * The standby's entries
 * ---------------------------------------------------------------------
 */

/* add_row adds one row (a link's clicks in an hour) to the batch */
static void
add_row(int64 link_id, TimestampTz hour, int64 visits, int64 bots, TimestampTz last_visit)
{
	shipped_row *r;

	if (visits <= 0)
		return;
	if (batch.n == batch.cap)
	{
		batch.cap = Max(BATCH_INITIAL_ROWS, batch.cap * 2);
		batch.rows = batch.rows == NULL ?
			MemoryContextAlloc(TopMemoryContext, batch.cap * sizeof(shipped_row)) :
			repalloc(batch.rows, batch.cap * sizeof(shipped_row));
	}
	r = &batch.rows[batch.n++];
	r->link_id = link_id;
	r->hour = hour;
	r->visits = visits;
	r->bots = Min(bots, visits);
	r->last_visit = last_visit;
	batch.visits += visits;
}

/*
 * add_rows adds an entry's clicks to the batch: the first pending hour's
 * share to that hour, the rest to the hour of the latest click, and the
 * bots' to the latest hour first, as a flush does (apply_series()).
 */
static void
add_rows(int64 link_id, int64 delta, int64 bots, uint64 first_hour, TimestampTz last_visit)
{
	uint64		last = clicks_hour(last_visit);
	uint64		first_at = first_hour >> COUNTER_HOUR_SHIFT;
	int64		first = Min((int64) (first_hour & COUNTER_HOUR_COUNT_MASK), delta);
	int64		rest = delta - first;
	int64		rest_bots = Min(bots, rest);

	if (first > 0 && first_at == last)
	{
		rest += first;
		rest_bots = bots;
		first = 0;
	}
	add_row(link_id, (TimestampTz) first_at * USECS_PER_HOUR, first, bots - rest_bots, last_visit);
	add_row(link_id, (TimestampTz) last * USECS_PER_HOUR, rest, rest_bots, last_visit);
}

/* What the walks over the entries need */
typedef struct ship_walk
{
	Oid			relid;			/* shorturl.links */
	bool		applied;		/* settle_visit: the batch is in the tables */
	bool		stale;			/* take_visit: saw clicks of an earlier links */
} ship_walk;

/* take_visit moves an entry's pending clicks into the batch (a counters_scan visitor) */
static bool
take_visit(counter_entry *e, void *arg)
{
	ship_walk  *w = arg;
	uint64		delta;
	uint64		first_hour;
	uint64		bots;

	if (e->key.dbid != MyDatabaseId || pg_atomic_read_u64(&e->pending) == 0)
		return true;
	if (e->key.relid != w->relid)
	{
		/* an earlier incarnation's: ship_now() discards them */
		w->stale = true;
		return true;
	}
	delta = pg_atomic_exchange_u64(&e->pending, 0);
	if (delta == 0)
		return true;
	/* pending first: see note_hour() in clicks.c */
	first_hour = pg_atomic_exchange_u64(&e->first_hour, 0);
	bots = Min(pg_atomic_exchange_u64(&e->pending_bots, 0), delta);
	add_rows(e->key.link_id, (int64) delta, (int64) bots, first_hour,
			 (TimestampTz) pg_atomic_read_u64(&e->last_visit));

	SpinLockAcquire(&e->mutex);
	e->inflight += (int64) delta;
	e->inflight_bots += (int64) bots;
	e->flush_xid = InvalidTransactionId;
	pg_atomic_write_u32(&e->gen, pg_atomic_read_u32(&e->gen) + 1);
	SpinLockRelease(&e->mutex);
	return true;
}

/*
 * rebuild_visit adds an entry's in-flight clicks to the batch again, for a
 * worker that finds a batch in flight its predecessor numbered.  Their
 * hours are gone with that worker: they go to the hour of the latest
 * click (a series may show them an hour late; the counts are exact).
 */
static bool
rebuild_visit(counter_entry *e, void *arg)
{
	ship_walk  *w = arg;
	int64		inflight;
	int64		bots;

	if (e->key.dbid != MyDatabaseId || e->key.relid != w->relid)
		return true;
	SpinLockAcquire(&e->mutex);
	inflight = e->inflight;
	bots = e->inflight_bots;
	SpinLockRelease(&e->mutex);
	if (inflight > 0)
	{
		TimestampTz last = (TimestampTz) pg_atomic_read_u64(&e->last_visit);

		add_row(e->key.link_id, (TimestampTz) clicks_hour(last) * USECS_PER_HOUR,
				inflight, bots, last);
	}
	return true;
}

/*
 * settle_visit ends an entry's part of the batch: applied, its in-flight
 * clicks are the primary's now; otherwise they go back to pending, before
 * inflight drops, as a flush's settlement does.
 */
static bool
settle_visit(counter_entry *e, void *arg)
{
	ship_walk  *w = arg;
	int64		inflight;
	int64		bots;

	if (e->key.dbid != MyDatabaseId)
		return true;
	SpinLockAcquire(&e->mutex);
	inflight = e->inflight;
	bots = e->inflight_bots;
	SpinLockRelease(&e->mutex);
	if (inflight == 0)
		return true;
	if (!w->applied)
	{
		pg_atomic_fetch_add_u64(&e->pending_bots, (uint64) bots);
		pg_atomic_fetch_add_u64(&e->pending, (uint64) inflight);
	}
	SpinLockAcquire(&e->mutex);
	e->inflight -= inflight;
	e->inflight_bots -= bots;
	pg_atomic_write_u32(&e->gen, pg_atomic_read_u32(&e->gen) + 1);
	SpinLockRelease(&e->mutex);
	return true;
}

/* walk runs a visitor over every entry, a partition at a time */
static void
walk(counters_visitor visit, ship_walk *w)
{
	for (int p = 0; p < counters_partitions(); p++)
	{
		LWLock	   *lock = counters_partition_lock(p);

		LWLockAcquire(lock, LW_SHARED);
		counters_scan(p, visit, w);
		LWLockRelease(lock);
	}
}

/* forget_batch empties the worker's copy of the batch */
static void
forget_batch(void)
{
	batch.seq = 0;
	batch.answered = false;
	batch.n = 0;
	batch.visits = 0;
	batch.rebuilt = false;
	if (batch.dims != NULL)
		pfree(batch.dims);
	if (batch.visitors != NULL)
		pfree(batch.visitors);
	batch.dims = NULL;
	batch.visitors = NULL;
	batch.ndims = batch.nvisitors = 0;
}

/*
 * note_batch_analytics publishes what of the batch's analytics the worker
 * holds: stats counts it unshipped, and lost_analytics() dropped.
 */
static void
note_batch_analytics(db_state *db, uint64 dims, uint64 dim_visits, uint64 visitors)
{
	pg_atomic_write_u64(&db->ship_dims, dims);
	pg_atomic_write_u64(&db->ship_dim_visits, dim_visits);
	pg_atomic_write_u64(&db->ship_visitors, visitors);
}

/*
 * take_analytics takes the pending dimensions and visitors into the batch,
 * noting in shared memory how much of them it holds: what a worker that
 * dies takes with it (lost_analytics()).
 */
static void
take_analytics(db_state *db, Oid relid)
{
	uint64		visits = 0;

	StartTransactionCommand();
	analytics_take_for_ship(relid, &batch.dims, &batch.ndims, &batch.visitors, &batch.nvisitors);
	CommitTransactionCommand();
	for (int i = 0; i < batch.ndims; i++)
		visits += (uint64) batch.dims[i].visits;
	note_batch_analytics(db, (uint64) batch.ndims, visits, (uint64) batch.nvisitors);
}

/*
 * lost_analytics counts the analytics of a batch as dropped: the primary
 * first applied it as built again without them, after the worker that
 * took them died or left, or a promotion found them in no one's hands.
 */
static void
lost_analytics(db_state *db)
{
	pg_atomic_write_u64(&db->ship_dims, 0);
	pg_atomic_fetch_add_u64(&db->analytics_dropped,
							pg_atomic_exchange_u64(&db->ship_dim_visits, 0));
	pg_atomic_fetch_add_u64(&db->visitors_dropped,
							pg_atomic_exchange_u64(&db->ship_visitors, 0));
}

/*
 * settle_batch ends the batch in flight (db->ship_seq): in the tables
 * (applied) or given back to pending.
 */
static void
settle_batch(db_state *db, bool applied)
{
	ship_walk	w = {InvalidOid, applied, false};

	walk(settle_visit, &w);
	if (applied && batch.seq != 0)
	{
		pg_atomic_fetch_add_u64(&db->shipped_visits, (uint64) batch.visits);
		pg_atomic_fetch_add_u64(&db->ship_batches, 1);
		pg_atomic_write_u64(&db->last_ship_at, (uint64) GetCurrentTimestamp());
	}
	pg_atomic_write_u64(&db->ship_seq, 0);
	note_batch_analytics(db, 0, 0, 0);
	forget_batch();
	/* clicks waiting for room may go on */
	dbstate_room_made();
}

/* ---------------------------------------------------------------------
 * The connection to the primary
 * ---------------------------------------------------------------------
 */

void
ship_disconnect(void)
{
	upstream_close(&primary);
}

/*
 * note_failure counts a failed attempt, keeps its message in the
 * database's slot, logs it now and then, and drops the connection: the
 * next attempt starts afresh.
 */
static void
note_failure(db_state *db, const char *what, const char *detail)
{
	static TimestampTz logged_at = 0;
	char	   *message = psprintf("could not ship clicks to the primary: %s%s%s", what,
								   detail ? ": " : "", detail ? detail : "");

	pg_atomic_fetch_add_u64(&db->ship_failures, 1);
	dbstate_note_error(db, message);
	/* the primary may be down for long */
	if (TimestampDifferenceExceeds(logged_at, GetCurrentTimestamp(), FAILURE_LOG_MS))
	{
		logged_at = GetCurrentTimestamp();
		ereport(LOG, (errmsg("pg_shorturl: %s", message)));
	}
	pfree(message);
	ship_disconnect();
}

/*
 * call_typed runs one statement on the primary within shorturl.ship_timeout,
 * with upstream_call_typed()'s types, lengths and formats, and returns its
 * single value (palloc'd), or NULL after a failure (noted, disconnected).
 * call is the same with text parameters.
 */
static char *
call_typed(db_state *db, const char *sql, int nparams, const Oid *types,
		   const char *const *params, const int *lengths, const int *formats)
{
	char	   *value = upstream_call_typed(&primary, sql, nparams, types, params,
											lengths, formats,
											upstream_deadline(shorturl_ship_timeout));

	if (value == NULL)
		note_failure(db, primary.why, NULL);
	return value;
}

static char *
call(db_state *db, const char *sql, int nparams, const char *const *params)
{
	return call_typed(db, sql, nparams, NULL, params, NULL, NULL);
}

/*
 * A batch's array as array_recv() reads it on the primary, so that the
 * primary parses no text of times and numbers (a third of what applying a
 * click cost it): the elements (each its length, then its bytes in network
 * order) gather in elems, and wire_finish() puts the header before them.
 */
typedef struct wire_array
{
	Oid			elem_type;
	int32		n;
	StringInfoData elems;
	StringInfoData out;
} wire_array;

static void
wire_int8(wire_array *a, int64 v)
{
	pq_sendint32(&a->elems, sizeof(int64));
	pq_sendint64(&a->elems, (uint64) v);
	a->n++;
}

static void
wire_int4(wire_array *a, int32 v)
{
	pq_sendint32(&a->elems, sizeof(int32));
	pq_sendint32(&a->elems, (uint32) v);
	a->n++;
}

static void
wire_text(wire_array *a, const char *v)
{
	int			len = (int) strlen(v);

	pq_sendint32(&a->elems, (uint32) len);
	pq_sendbytes(&a->elems, v, len);
	a->n++;
}

/* wire_finish writes the header (one dimension from 1, no NULLs), then the elements */
static void
wire_finish(wire_array *a)
{
	initStringInfo(&a->out);
	pq_sendint32(&a->out, a->n > 0 ? 1 : 0);
	pq_sendint32(&a->out, 0);
	pq_sendint32(&a->out, a->elem_type);
	if (a->n > 0)
	{
		pq_sendint32(&a->out, (uint32) a->n);
		pq_sendint32(&a->out, 1);
	}
	appendBinaryStringInfo(&a->out, a->elems.data, a->elems.len);
}

/*
 * The arrays of a batch: link_ids, hours, visits, bots and last_visits of
 * the clicks; link_ids, days, dimensions, values, visits and bots of the
 * dimension values; link_ids, days and hashes of the visitors
 */
#define SHIP_ARRAYS		14

static const Oid ship_array_types[SHIP_ARRAYS][2] = {
	{INT8ARRAYOID, INT8OID}, {TIMESTAMPTZARRAYOID, TIMESTAMPTZOID},
	{INT8ARRAYOID, INT8OID}, {INT8ARRAYOID, INT8OID},
	{TIMESTAMPTZARRAYOID, TIMESTAMPTZOID},
	{INT8ARRAYOID, INT8OID}, {DATEARRAYOID, DATEOID}, {TEXTARRAYOID, TEXTOID},
	{TEXTARRAYOID, TEXTOID}, {INT8ARRAYOID, INT8OID}, {INT8ARRAYOID, INT8OID},
	{INT8ARRAYOID, INT8OID}, {DATEARRAYOID, DATEOID}, {INT8ARRAYOID, INT8OID},
};

/*
 * send_batch asks the primary to apply the batch; true once it has (now,
 * or before: a no-op).  The four scalars go as text, the arrays in binary.
 */
static bool
send_batch(db_state *db, const char *id)
{
	wire_array arr[SHIP_ARRAYS];
	char		seq[32];
	char		relid[16];
	const char *params[4 + SHIP_ARRAYS];
	Oid			types[4 + SHIP_ARRAYS];
	int			lengths[4 + SHIP_ARRAYS];
	int			formats[4 + SHIP_ARRAYS];
	char	   *answer;

	for (int a = 0; a < SHIP_ARRAYS; a++)
	{
		arr[a].elem_type = ship_array_types[a][1];
		arr[a].n = 0;
		initStringInfo(&arr[a].elems);
	}
	for (int i = 0; i < batch.n; i++)
	{
		const shipped_row *r = &batch.rows[i];

		wire_int8(&arr[0], r->link_id);
		wire_int8(&arr[1], r->hour);
		wire_int8(&arr[2], r->visits);
		wire_int8(&arr[3], r->bots);
		wire_int8(&arr[4], r->last_visit);
	}
	for (int i = 0; i < batch.ndims; i++)
	{
		const analytics_shipped_dim *d = &batch.dims[i];

		wire_int8(&arr[5], d->link_id);
		wire_int4(&arr[6], d->day);
		wire_text(&arr[7], analytics_dim_names[d->dim]);
		wire_text(&arr[8], d->value);
		wire_int8(&arr[9], d->visits);
		wire_int8(&arr[10], d->bots);
	}
	for (int i = 0; i < batch.nvisitors; i++)
	{
		const analytics_shipped_visitor *v = &batch.visitors[i];

		wire_int8(&arr[11], v->link_id);
		wire_int4(&arr[12], v->day);
		/* (the hash's bits, as a bigint) */
		wire_int8(&arr[13], (int64) v->vhash);
	}
	snprintf(seq, sizeof(seq), UINT64_FORMAT, batch.seq);
	snprintf(relid, sizeof(relid), "%u", batch.relid);
	params[0] = id;
	params[1] = batch.name;
	params[2] = seq;
	params[3] = relid;
	for (int p = 0; p < 4; p++)
	{
		types[p] = InvalidOid;
		lengths[p] = 0;
		formats[p] = 0;
	}
	for (int a = 0; a < SHIP_ARRAYS; a++)
	{
		wire_finish(&arr[a]);
		pfree(arr[a].elems.data);
		types[4 + a] = ship_array_types[a][0];
		params[4 + a] = arr[a].out.data;
		lengths[4 + a] = arr[a].out.len;
		formats[4 + a] = 1;
	}
	answer = call_typed(db,
						"SELECT shorturl.apply_clicks($1::bigint, $2, $3::bigint, $4::oid,"
						" $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
						4 + SHIP_ARRAYS, types, params, lengths, formats);
	for (int a = 0; a < SHIP_ARRAYS; a++)
		pfree(arr[a].out.data);
	if (answer == NULL)
		return false;
	/*
	 * A batch built again that the primary applies only now never reached
	 * it with its analytics; one it had applied before did.
	 */
	if (batch.rebuilt && strcmp(answer, "t") == 0)
		lost_analytics(db);
	pfree(answer);
	return true;
}

/*
 * ask_primary connects and asks for this standby's last number there;
 * false after a failure.  A server in recovery (a cascaded standby's
 * upstream) is refused here, with the reason.
 */
static bool
ask_primary(db_state *db, const char *dbname, const char *id, const char *name,
			uint64 *applied)
{
	const char *params[2] = {id, name};
	char	   *last;
	int64		v;

	if (!upstream_connect(&primary, dbname, upstream_deadline(shorturl_ship_timeout)))
	{
		note_failure(db, primary.why, NULL);
		return false;
	}
	last = call(db, "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN -1"
				" ELSE shorturl.shipped_seq($1::bigint, $2) END", 2, params);
	if (last == NULL)
		return false;
	v = strtoi64(last, NULL, 10);
	pfree(last);
	if (v < 0)
	{
		note_failure(db, "cannot apply shipped clicks on a standby",
					 "the server it connects to is in recovery; set shorturl.primary_conninfo to the primary");
		return false;
	}
	*applied = (uint64) v;
	return true;
}

/*
 * ship_now is one round of the worker on a standby: settle the batch in
 * flight once the primary has it and this standby has replayed that, send
 * it again if the primary has not answered, else take the pending clicks
 * and send them.  Runs outside a transaction, and starts its own to read
 * the catalog.  Returns false after a failure to reach the primary.
 */
bool
ship_now(db_state *db)
{
	const char *setting;
	char		name[NAMEDATALEN];
	char		dbname[NAMEDATALEN];
	char	   *db_name;
	char		id[32];
	Oid			relid;
	bool		replayed = false;
	ship_walk	w;

	/* promoted: the first flush settles the batch (ship_promoted()) */
	if (!RecoveryInProgress())
		return true;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	relid = catalog_tables()->links;
	setting = lookup_standby_name();
	strlcpy(name, setting ? setting : "", sizeof(name));
	if (batch.seq != 0 && batch.answered)
		replayed = lookup_batch_applied(batch.name, batch.seq, GetActiveSnapshot());
	db_name = get_database_name(MyDatabaseId);
	strlcpy(dbname, db_name ? db_name : "", sizeof(dbname));
	PopActiveSnapshot();
	CommitTransactionCommand();

	if (name[0] == '\0')
	{
		note_failure(db, "neither shorturl.standby_name nor cluster_name is set", NULL);
		return false;
	}
	snprintf(id, sizeof(id), INT64_FORMAT, (int64) GetSystemIdentifier());
	w.relid = relid;
	w.applied = false;
	w.stale = false;

	/*
	 * A batch in flight from a worker before us: build it again, under the
	 * name it went under (the setting may have changed since)
	 */
	if (batch.seq == 0 && pg_atomic_read_u64(&db->ship_seq) != 0)
	{
		forget_batch();
		batch.relid = relid;
		walk(rebuild_visit, &w);
		batch.seq = dbstate_ship_batch(db, batch.name);
		/* its dimensions and visitors went with that worker (send_batch()) */
		batch.rebuilt = true;
	}
	if (batch.seq != 0 && batch.relid != relid)
	{
		/* the extension was dropped and made again: those links are gone */
		settle_batch(db, true);
	}
	if (batch.seq != 0 && batch.answered)
	{
		if (!replayed)
			return true;		/* the primary has it; wait for the replay */
		settle_batch(db, true);
	}
	/* (an error cut the last exchange short: its answer may still come) */
	if (primary.conn == NULL || primary.busy)
	{
		uint64		applied;
		uint64		next = pg_atomic_read_u64(&db->ship_next);

		if (dbname[0] == '\0' || !ask_primary(db, dbname, id, batch.seq ? batch.name : name, &applied))
			return false;
		if (batch.seq != 0 && batch.seq <= applied)
			batch.answered = true;
		/* a server that has not shipped yet numbers from the clock */
		if (next == 0)
			next = (uint64) GetCurrentTimestamp();
		next = Max(next, Max(applied, batch.seq) + 1);
		pg_atomic_write_u64(&db->ship_next, next);
		if (batch.answered)
			return true;
	}

	if (batch.seq == 0)
	{
		/*
		 * Numbered before the take: a reader that sees clicks in flight
		 * sees the number of the batch that holds them (clicks.c).
		 */
		uint64		seq = pg_atomic_read_u64(&db->ship_next);

		dbstate_set_ship_batch(db, seq, name);
		batch.relid = relid;
		strlcpy(batch.name, name, sizeof(batch.name));
		walk(take_visit, &w);
		/* entries of an earlier shorturl.links have nowhere to go */
		for (int p = 0; w.stale && p < counters_partitions(); p++)
			(void) counters_discard_stale(p, MyDatabaseId, relid);
		take_analytics(db, relid);
		if (batch.n == 0 && batch.ndims == 0 && batch.nvisitors == 0)
		{
			pg_atomic_write_u64(&db->ship_seq, 0);
			forget_batch();
			return true;
		}
		batch.seq = seq;
		pg_atomic_write_u64(&db->ship_next, seq + 1);
	}
	if (!send_batch(db, id))
		return false;
	batch.answered = true;
	return true;
}

/*
 * ship_hand_over is the last act of a standby's worker when the standby is
 * promoted: the batch's analytics it holds go back to this server's tables
 * unless the old primary applied the batch (its replayed
 * shorturl.standby_batches row says so, for good now).  The batch's clicks
 * are settled by the first flush (ship_promoted()), by the same row.
 */
void
ship_hand_over(db_state *db)
{
	uint64		seq = pg_atomic_read_u64(&db->ship_seq);
	bool		applied;

	if (seq == 0 || batch.seq != seq || RecoveryInProgress())
		return;
	StartTransactionCommand();
	applied = lookup_batch_applied(batch.name, seq, GetLatestSnapshot());
	CommitTransactionCommand();
	if (!applied)
		analytics_give_back(batch.relid, batch.dims, batch.ndims,
							batch.visitors, batch.nvisitors);
	note_batch_analytics(db, 0, 0, 0);
	forget_batch();
}

/*
 * ship_promoted settles the batch a standby had in flight when it was
 * promoted, by the replicated shorturl.standby_batches: the old primary
 * applied it (its commit has been replayed here), or its clicks go back to
 * pending, for this server's flushes.  The first flush after the promotion
 * runs it, holding the flush lock before it takes anything.
 */
void
ship_promoted(db_state *db)
{
	char		name[NAMEDATALEN];
	uint64		seq = dbstate_ship_batch(db, name);
	bool		applied;
	ship_walk	w = {InvalidOid, false, false};

	if (seq == 0)
		return;
	/* under the name the batch went under, which a reload may have changed */
	applied = lookup_batch_applied(name, seq, GetLatestSnapshot());
	ereport(LOG,
			(errmsg("pg_shorturl: promoted with a batch of clicks in flight: %s",
					applied ? "the old primary applied it" : "counted here")));
	w.applied = applied;
	walk(settle_visit, &w);
	/* its analytics, unless the worker handed them over (ship_hand_over()) */
	if (applied)
	{
		note_batch_analytics(db, 0, 0, 0);
	}
	else
		lost_analytics(db);
	pg_atomic_write_u64(&db->ship_seq, 0);
}
