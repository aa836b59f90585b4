/*-------------------------------------------------------------------------
 *
 * apply.c
 *	  Read replicas, the primary's half: shorturl.apply_clicks(), which
 *	  applies a standby's batch of clicks once, and shorturl.claim_visit(),
 *	  which counts a visit of a limited link served from a standby.
 *
 * A standby's worker (ship.c) sends its clicks in numbered batches.  Here
 * the batch is checked, its number recorded in shorturl.standby_batches
 * (unless that standby's last number is not lower: then the batch was
 * applied before, and the call does nothing), and its clicks added with
 * the flush's own statements (flush_apply_shipped()), all in the caller's
 * transaction, so the number and the clicks commit together.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "clicks.h"
#include "flush.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "spi_util.h"

/* The longest standby name the primary keeps (its CHECK says the same) */
#define STANDBY_NAME_MAX	63

/* elems deconstructs a bigint[] or timestamptz[] argument without NULLs */
static Datum *
elems(ArrayType *a, Oid type, const char *what, int *n)
{
	Datum	   *values;
	bool	   *nulls;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(a, type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &values, &nulls, n);
	for (int i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
	return values;
}

/*
 * check_primary refuses a standby's call (to do what) on a standby, or
 * from a server of another cluster (what came).
 */
static void
check_primary(int64 system_id, const char *what, const char *came)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s on a standby", what),
				 errhint("Connect to the primary: shorturl.primary_conninfo names it.")));
	if ((uint64) system_id != GetSystemIdentifier())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s from another cluster", came),
				 errdetail("The standby's system identifier is " UINT64_FORMAT ", this server's " UINT64_FORMAT "; a standby ships to the primary it replicates.",
						   (uint64) system_id, GetSystemIdentifier())));
}

PG_FUNCTION_INFO_V1(shorturl_apply_clicks);

/*
 * shorturl_apply_clicks implements apply_clicks(system_id, standby, seq,
 * links, link_ids, hours, visits, bots, last_visits) RETURNS boolean: a
 * standby's batch, applied once (true), or found applied before (false).
 * links is the OID of the shorturl.links the standby counted against.
 */
Datum
shorturl_apply_clicks(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	int64		system_id = PG_GETARG_INT64(0);
	text	   *standby = PG_GETARG_TEXT_PP(1);
	int64		seq = PG_GETARG_INT64(2);
	Oid			links = PG_GETARG_OID(3);
	int			n;
	int			k;
	Datum	   *ids = elems(PG_GETARG_ARRAYTYPE_P(4), INT8OID, "link_ids", &n);
	Datum	   *hours = elems(PG_GETARG_ARRAYTYPE_P(5), TIMESTAMPTZOID, "hours", &k);
	Datum	   *visits;
	Datum	   *bots;
	Datum	   *last;
	shipped_row *rows;
	int64		total = 0;
	Oid			argtypes[4] = {INT8OID, TEXTOID, INT8OID, INT8OID};
	Datum		values[4];
	bool		fresh;

	check_primary(system_id, "apply shipped clicks", "clicks shipped");
	if (VARSIZE_ANY_EXHDR(standby) == 0 || VARSIZE_ANY_EXHDR(standby) > STANDBY_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a standby's name must have 1 to %d bytes", STANDBY_NAME_MAX)));
	if (seq <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a batch's number must be positive")));
	if (k != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("link_ids and hours must have the same length")));
	visits = elems(PG_GETARG_ARRAYTYPE_P(6), INT8OID, "visits", &k);
	if (k != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("link_ids and visits must have the same length")));
	bots = elems(PG_GETARG_ARRAYTYPE_P(7), INT8OID, "bots", &k);
	if (k != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("link_ids and bots must have the same length")));
	last = elems(PG_GETARG_ARRAYTYPE_P(8), TIMESTAMPTZOID, "last_visits", &k);
	if (k != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("link_ids and last_visits must have the same length")));

	rows = palloc(Max(n, 1) * sizeof(shipped_row));
	for (int i = 0; i < n; i++)
	{
		shipped_row *r = &rows[i];

		r->link_id = DatumGetInt64(ids[i]);
		r->hour = DatumGetTimestampTz(hours[i]);
		r->visits = DatumGetInt64(visits[i]);
		r->bots = DatumGetInt64(bots[i]);
		r->last_visit = DatumGetTimestampTz(last[i]);
		if (r->visits <= 0 || r->bots < 0 || r->bots > r->visits)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("visits[%d] must be positive, and bots[%d] between 0 and it", i + 1, i + 1)));
		if (TIMESTAMP_NOT_FINITE(r->hour) || r->hour % USECS_PER_HOUR != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hours[%d] is not the start of an hour", i + 1)));
		if (TIMESTAMP_NOT_FINITE(r->last_visit))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("last_visits[%d] must be finite", i + 1)));
		if (pg_add_s64_overflow(total, r->visits, &total))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the batch's visits are out of range")));
	}

	/* the number first: a second apply of it waits here, then does nothing */
	values[0] = Int64GetDatum(system_id);
	values[1] = PointerGetDatum(standby);
	values[2] = Int64GetDatum(seq);
	values[3] = Int64GetDatum(total);
	spi_begin();
	spi_run(spi_plan(&plan,
					 "INSERT INTO shorturl.standby_batches AS b"
					 "       (system_id, standby, last_seq, batches, visits, applied_at)"
					 " VALUES ($1, $2, $3, 1, $4, pg_catalog.now())"
					 " ON CONFLICT (system_id, standby) DO UPDATE"
					 "   SET last_seq = excluded.last_seq, batches = b.batches + 1,"
					 "       visits = b.visits + excluded.visits, applied_at = excluded.applied_at"
					 " WHERE b.last_seq < excluded.last_seq"
					 " RETURNING 1",
					 4, argtypes),
			values, NULL, false, SPI_OK_INSERT_RETURNING);
	fresh = SPI_processed == 1;
	SPI_finish();
	/*
	 * Counted against another shorturl.links (the extension was dropped
	 * and made again since the standby took them): their ids name other
	 * links now, so the clicks go, and the number with them.
	 */
	if (fresh && links == catalog_tables()->links)
		(void) flush_apply_shipped(rows, n);
	PG_RETURN_BOOL(fresh);
}

PG_FUNCTION_INFO_V1(shorturl_claim_visit);

/*
 * shorturl_claim_visit implements claim_visit(system_id, links, link_id,
 * take, bot) RETURNS text: how a link stands here (active, exhausted,
 * expired, disabled or unknown), counting one visit of it (a bot's, if
 * bot) when take is set and it is active, as resolve() would; refused
 * when resolve() here would give NULL for such a link all the same (the
 * click could not be counted where it would stick).  A standby
 * calls it to serve a link with max_visits (claim.c).  links is the OID of
 * the shorturl.links the standby read the link from: under another, the
 * id may name another link, and the answer is unknown.
 */
Datum
shorturl_claim_visit(PG_FUNCTION_ARGS)
{
	int64		system_id = PG_GETARG_INT64(0);
	Oid			links = PG_GETARG_OID(1);
	int64		link_id = PG_GETARG_INT64(2);
	bool		take = PG_GETARG_BOOL(3);
	bool		bot = PG_GETARG_BOOL(4);
	link_row	row;
	const char *state = "unknown";

	check_primary(system_id, "claim a visit", "a claim");
	if (links != catalog_tables()->links ||
		!lookup_link_by_id(link_id, GetActiveSnapshot(), &row))
		state = "unknown";
	else if (row.disabled)
		state = "disabled";
	else if (row.has_expiry && row.expires_at <= GetCurrentTimestamp())
		state = "expired";
	else if (!take)
		state = row.has_max && clicks_live_visits(link_id) >= row.max_visits ?
			"exhausted" : "active";
	else
		switch (clicks_count(link_id, row.has_max, row.max_visits, bot))
		{
			case CLICK_COUNTED:
				state = "active";
				break;
			case CLICK_EXHAUSTED:
				state = "exhausted";
				break;
			case CLICK_REFUSED:
				/* (not in shared memory here, or the link just went) */
				state = "refused";
				break;
		}
	PG_RETURN_TEXT_P(cstring_to_text(state));
}
