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
 * the deletion of a link can leave its shorturl.visit_counts row behind.
 * Link ids are never reused, so such a row is only dead weight.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "dbstate.h"
#include "pg_shorturl.h"
#include "purge.h"
#include "spi_util.h"

static SPIPlanPtr plan_expired;
static SPIPlanPtr plan_exhausted;
static SPIPlanPtr plan_orphans;

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
	}
	spi_run(plan, values, NULL, false, SPI_OK_DELETE);
	deleted = (int64) SPI_processed;
	SPI_finish();

	db = dbstate_mine();
	if (db != NULL && kind != PURGE_ORPHANS)
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
