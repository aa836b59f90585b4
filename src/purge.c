/*-------------------------------------------------------------------------
 *
 * purge.c
 *	  Deleting expired and exhausted links, in small batches.
 *
 * A batch deletes at most shorturl.purge_batch_size links, oldest first,
 * found through the partial indexes on expires_at and exhausted_at, and
 * skips rows another session holds locked (FOR UPDATE SKIP LOCKED), so a
 * purge never waits on, nor blocks, a link being written.  The worker runs
 * each batch in a transaction of its own and pauses between batches;
 * shorturl.purge_expired() runs batches in the caller's transaction for
 * those who schedule purges themselves (pg_cron).  Both callers pin
 * search_path to pg_catalog, pg_temp (the worker at start, the function by
 * its SET clause), so the statements below can use plain operators.
 *
 * Expired links go at once: resolve() has refused them since they expired.
 * Exhausted links (visits reached max_visits) stay shorturl.purge_grace, so
 * link_status() can answer "exhausted" (HTTP 410) for a while rather than
 * "unknown" (404).  Deleting a link, whoever does it, retires its alias for
 * good and deletes its counts (triggers on shorturl.links).
 *
 * A third kind of batch deletes orphaned counts: a flush that raced with
 * the deletion of a link can leave its shorturl.visit_counts row (or
 * analytics rows) behind.  Link ids are never reused, so such a row is
 * only dead weight.
 *
 * The analytics job (the fourth kind, run with the orphan sweep, hourly)
 * merges the hours of shorturl.link_visits_hourly older than
 * shorturl.hourly_retention into days of shorturl.link_visits_daily (and
 * the synchronously counted clicks of those days into one row per link and
 * day), and deletes days older than shorturl.analytics_retention from the
 * daily tables.  A merge moves counts from one table to the other in one
 * statement, so a series read at any snapshot adds up the same.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "dbstate.h"
#include "pg_shorturl.h"
#include "purge.h"
#include "spi_util.h"

static SPIPlanPtr plan_expired;
static SPIPlanPtr plan_exhausted;
static SPIPlanPtr plan_orphans;
static SPIPlanPtr plan_orphans_analytics;
static SPIPlanPtr plan_analytics;

/*
 * purge_analytics runs one batch of the analytics job (see the file
 * header): at most limit rows of each table, and returns the most any
 * statement touched, so the caller goes on while one of them is full.
 */
static int64
purge_analytics(int limit)
{
	Oid			argtypes[3] = {INT4OID, INT4OID, INT4OID};
	Datum		values[3] = {Int32GetDatum(limit), Int32GetDatum(shorturl_hourly_retention),
	Int32GetDatum(shorturl_analytics_retention)};
	bool		isnull;
	int64		n;

	spi_begin();
	spi_run(spi_plan(&plan_analytics,
					 "WITH old AS (DELETE FROM shorturl.link_visits_hourly x WHERE (link_id, hour) IN ("
					 "               SELECT link_id, hour FROM shorturl.link_visits_hourly"
					 "                WHERE hour < pg_catalog.now() - pg_catalog.make_interval(secs => $2)"
					 "                ORDER BY hour LIMIT $1 FOR UPDATE SKIP LOCKED)"
					 "             RETURNING link_id, hour, visits, bots),"
					 "     merged AS (INSERT INTO shorturl.link_visits_daily AS d (link_id, day, visits, bots)"
					 "                SELECT link_id, (hour AT TIME ZONE 'UTC')::date, sum(visits), sum(bots)"
					 "                  FROM old GROUP BY 1, 2"
					 "                ON CONFLICT (link_id, day) DO UPDATE"
					 "                  SET visits = d.visits + excluded.visits, bots = d.bots + excluded.bots),"
					 "     many AS (SELECT link_id, (visited_at AT TIME ZONE 'UTC')::date AS day"
					 "                FROM shorturl.pending_visits"
					 "               WHERE visited_at < pg_catalog.now() - pg_catalog.make_interval(secs => $2)"
					 "               GROUP BY 1, 2 HAVING count(*) > 1 LIMIT $1),"
					 "     gone AS (DELETE FROM shorturl.pending_visits p USING many"
					 "               WHERE p.link_id = many.link_id"
					 "                 AND (p.visited_at AT TIME ZONE 'UTC')::date = many.day"
					 "                 AND p.visited_at < pg_catalog.now() - pg_catalog.make_interval(secs => $2)"
					 "               RETURNING p.link_id, p.visits, p.bots, p.visited_at, many.day),"
					 "     kept AS (INSERT INTO shorturl.pending_visits (link_id, visits, bots, visited_at)"
					 "              SELECT link_id, sum(visits), sum(bots), max(visited_at) FROM gone"
					 "               GROUP BY link_id, day),"
					 "     cutoff AS (SELECT (pg_catalog.now() - pg_catalog.make_interval(secs => $3))"
					 "                       AT TIME ZONE 'UTC' AS t),"
					 "     d AS (DELETE FROM shorturl.link_visits_daily WHERE (link_id, day) IN ("
					 "             SELECT link_id, day FROM shorturl.link_visits_daily"
					 "              WHERE day < (SELECT t::date FROM cutoff) ORDER BY day LIMIT $1)"
					 "           RETURNING 1),"
					 "     b AS (DELETE FROM shorturl.link_visits_breakdown"
					 "            WHERE (link_id, day, dimension, value) IN ("
					 "             SELECT link_id, day, dimension, value FROM shorturl.link_visits_breakdown"
					 "              WHERE day < (SELECT t::date FROM cutoff) ORDER BY day LIMIT $1)"
					 "           RETURNING 1),"
					 "     v AS (DELETE FROM shorturl.link_visitors_daily WHERE (link_id, day) IN ("
					 "             SELECT link_id, day FROM shorturl.link_visitors_daily"
					 "              WHERE day < (SELECT t::date FROM cutoff) ORDER BY day LIMIT $1)"
					 "           RETURNING 1)"
					 " SELECT GREATEST((SELECT count(*) FROM old), (SELECT count(*) FROM many),"
					 "                 (SELECT count(*) FROM d),"
					 "                 (SELECT count(*) FROM b), (SELECT count(*) FROM v))",
					 3, argtypes),
			values, NULL, false, SPI_OK_SELECT);
	n = DatumGetInt64(spi_result(0, 1, &isnull));
	SPI_finish();
	return n;
}

/*
 * purge_batch deletes up to limit links of one kind in the current
 * transaction and returns how many it deleted.
 */
int64
purge_batch(purge_kind kind, int limit)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(limit), Int32GetDatum(shorturl_purge_grace)};
	SPIPlanPtr	plan = NULL;
	int64		deleted;
	db_state   *db;

	spi_begin();
	switch (kind)
	{
		case PURGE_EXPIRED:
			plan = spi_plan(&plan_expired,
							"DELETE FROM shorturl.links WHERE id = ANY (ARRAY("
							"  SELECT id FROM shorturl.links"
							"   WHERE expires_at <= pg_catalog.clock_timestamp()"
							"   ORDER BY expires_at LIMIT $1"
							"   FOR UPDATE SKIP LOCKED))",
							1, argtypes);
			break;
		case PURGE_EXHAUSTED:
			plan = spi_plan(&plan_exhausted,
							"DELETE FROM shorturl.links WHERE id = ANY (ARRAY("
							"  SELECT id FROM shorturl.links"
							"   WHERE exhausted_at <= pg_catalog.clock_timestamp()"
							"                         - pg_catalog.make_interval(secs => $2)"
							"   ORDER BY exhausted_at LIMIT $1"
							"   FOR UPDATE SKIP LOCKED))",
							2, argtypes);
			break;
		case PURGE_ORPHANS:
			plan = spi_plan(&plan_orphans,
							"DELETE FROM shorturl.visit_counts WHERE link_id = ANY (ARRAY("
							"  SELECT c.link_id FROM shorturl.visit_counts c"
							"   WHERE NOT EXISTS (SELECT FROM shorturl.links l WHERE l.id = c.link_id)"
							"   LIMIT $1))",
							1, argtypes);
			break;
		case PURGE_ANALYTICS:
			SPI_finish();
			return catalog_tables()->analytics ? purge_analytics(limit) : 0;
	}
	spi_run(plan, values, NULL, false, SPI_OK_DELETE);
	deleted = (int64) SPI_processed;
	if (kind == PURGE_ORPHANS && catalog_tables()->analytics)
	{
		/* the orphans' analytics, as many rows of each table at most */
		spi_run(spi_plan(&plan_orphans_analytics,
						 "WITH h AS (DELETE FROM shorturl.link_visits_hourly x WHERE (link_id, hour) IN ("
						 "             SELECT link_id, hour FROM shorturl.link_visits_hourly y"
						 "              WHERE NOT EXISTS (SELECT FROM shorturl.links l WHERE l.id = y.link_id)"
						 "              LIMIT $1) RETURNING 1),"
						 "     d AS (DELETE FROM shorturl.link_visits_daily x WHERE (link_id, day) IN ("
						 "             SELECT link_id, day FROM shorturl.link_visits_daily y"
						 "              WHERE NOT EXISTS (SELECT FROM shorturl.links l WHERE l.id = y.link_id)"
						 "              LIMIT $1) RETURNING 1),"
						 "     b AS (DELETE FROM shorturl.link_visits_breakdown x"
						 "            WHERE (link_id, day, dimension, value) IN ("
						 "             SELECT link_id, day, dimension, value FROM shorturl.link_visits_breakdown y"
						 "              WHERE NOT EXISTS (SELECT FROM shorturl.links l WHERE l.id = y.link_id)"
						 "              LIMIT $1) RETURNING 1),"
						 "     v AS (DELETE FROM shorturl.link_visitors_daily x WHERE (link_id, day) IN ("
						 "             SELECT link_id, day FROM shorturl.link_visitors_daily y"
						 "              WHERE NOT EXISTS (SELECT FROM shorturl.links l WHERE l.id = y.link_id)"
						 "              LIMIT $1) RETURNING 1)"
						 " SELECT GREATEST((SELECT count(*) FROM h), (SELECT count(*) FROM d),"
						 "                 (SELECT count(*) FROM b), (SELECT count(*) FROM v))",
						 1, argtypes),
				values, NULL, false, SPI_OK_SELECT);
		{
			bool		isnull;

			deleted = Max(deleted, DatumGetInt64(spi_result(0, 1, &isnull)));
		}
	}
	SPI_finish();

	db = dbstate_mine();
	if (db != NULL && kind != PURGE_ORPHANS && kind != PURGE_ANALYTICS)
	{
		pg_atomic_fetch_add_u64(&db->purged, (uint64) deleted);
		pg_atomic_write_u64(&db->last_purge_at, (uint64) GetCurrentTimestamp());
	}
	return deleted;
}

PG_FUNCTION_INFO_V1(shorturl_purge_expired);

/*
 * shorturl_purge_expired implements purge_expired(max_rows integer DEFAULT
 * NULL) RETURNS bigint: batches of expired, then exhausted links, in this
 * transaction, until none are left or max_rows are gone.
 */
Datum
shorturl_purge_expired(PG_FUNCTION_ARGS)
{
	int64		max_rows = PG_ARGISNULL(0) ? PG_INT64_MAX : PG_GETARG_INT32(0);
	int64		total = 0;

	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must not be negative, not " INT64_FORMAT, max_rows)));

	for (int pass = 0; pass < 2; pass++)
	{
		for (;;)
		{
			int			limit = (int) Min((int64) shorturl_purge_batch_size, max_rows - total);
			int64		n;

			if (limit <= 0)
				break;
			n = purge_batch(pass == 0 ? PURGE_EXPIRED : PURGE_EXHAUSTED, limit);
			total += n;
			if (n < limit)
				break;
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_RETURN_INT64(total);
}

PG_FUNCTION_INFO_V1(shorturl_purge_analytics);

/*
 * shorturl_purge_analytics implements purge_analytics() RETURNS bigint:
 * the worker's analytics job, run now in this transaction (for those who
 * schedule it themselves, or after lowering shorturl.hourly_retention or
 * shorturl.analytics_retention in the session): batches until none is
 * full.  Returns the rows it merged or deleted.
 */
Datum
shorturl_purge_analytics(PG_FUNCTION_ARGS)
{
	int64		total = 0;

	for (;;)
	{
		int64		n = purge_batch(PURGE_ANALYTICS, shorturl_purge_batch_size);

		total += n;
		if (n < shorturl_purge_batch_size)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_INT64(total);
}
