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
 * "unknown" (404).  Deleting an alias quarantines it (a trigger on
 * shorturl.links), whoever deletes it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "counters.h"
#include "pg_shorturl.h"

static SPIPlanPtr plan_expired;
static SPIPlanPtr plan_exhausted;
static SPIPlanPtr plan_quarantine_done;

/* prepare_once prepares and keeps a plan the first time it is needed */
static SPIPlanPtr
prepare_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		*plan = p;
	}
	return *plan;
}

/*
 * purge_batch deletes up to limit expired links (or, with exhausted, links
 * exhausted longer than shorturl.purge_grace ago) in the current
 * transaction and returns how many it deleted.  The expired pass also
 * forgets quarantined aliases whose time is up.
 */
int64
purge_batch(bool exhausted, int limit)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(limit), Int32GetDatum(shorturl_purge_grace)};
	SPIPlanPtr	plan;
	int			rc;
	int64		deleted;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (exhausted)
		plan = prepare_once(&plan_exhausted,
							"DELETE FROM shorturl.links WHERE code = ANY (ARRAY("
							"  SELECT code FROM shorturl.links"
							"   WHERE exhausted_at <="
							"         pg_catalog.now() - pg_catalog.make_interval(secs => $2)"
							"   ORDER BY exhausted_at LIMIT $1"
							"   FOR UPDATE SKIP LOCKED))",
							2, argtypes);
	else
		plan = prepare_once(&plan_expired,
							"DELETE FROM shorturl.links WHERE code = ANY (ARRAY("
							"  SELECT code FROM shorturl.links"
							"   WHERE expires_at <= pg_catalog.now()"
							"   ORDER BY expires_at LIMIT $1"
							"   FOR UPDATE SKIP LOCKED))",
							1, argtypes);

	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "purge failed: %s", SPI_result_code_string(rc));
	deleted = (int64) SPI_processed;

	if (!exhausted)
	{
		rc = SPI_execute_plan(prepare_once(&plan_quarantine_done,
										   "DELETE FROM shorturl.alias_quarantine"
										   " WHERE released_at <= pg_catalog.now()",
										   0, NULL),
							  NULL, NULL, false, 0);
		if (rc != SPI_OK_DELETE)
			elog(ERROR, "purge of the alias quarantine failed: %s",
				 SPI_result_code_string(rc));
	}

	SPI_finish();
	counters_note_purge(deleted);
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
			n = purge_batch(pass == 1, limit);
			total += n;
			if (n < limit)
				break;
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_RETURN_INT64(total);
}
