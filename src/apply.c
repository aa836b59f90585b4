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
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "catalog.h"
#include "clicks.h"
#include "flush.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "spi_util.h"

/* The longest standby name the primary keeps (its CHECK says the same) */
#define STANDBY_NAME_MAX	63

/* elems deconstructs an array argument without NULLs */
static Datum *
elems(ArrayType *a, Oid type, const char *what, int *n)
{
	Datum	   *values;
	bool	   *nulls;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	if (ARR_ELEMTYPE(a) != type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s has the wrong element type", what)));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(a, type, typlen, typbyval, typalign, &values, &nulls, n);
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

/* same_length refuses an array shorter or longer than its group's first */
static void
same_length(int k, int n, const char *first, const char *what)
{
	if (k != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s and %s must have the same length", first, what)));
}

/*
 * column deconstructs argument arg, an array of n elements like its group's
 * first (named first)
 */
static Datum *
column(FunctionCallInfo fcinfo, int arg, Oid type, const char *what, int n, const char *first)
{
	int			k;
	Datum	   *values = elems(PG_GETARG_ARRAYTYPE_P(arg), type, what, &k);

	same_length(k, n, first, what);
	return values;
}

/* shipped_day checks a shipped date: a finite one */
static int32
shipped_day(Datum d, const char *what, int i)
{
	DateADT		day = DatumGetDateADT(d);

	if (DATE_NOT_FINITE(day))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d] must be finite", what, i + 1)));
	return (int32) day;
}

/*
 * shipped_dims reads the batch's dimension values (arguments 9 to 14): a
 * value's clicks and bots' clicks in a link-day.
 */
static analytics_shipped_dim *
shipped_dims(FunctionCallInfo fcinfo, int *n)
{
	Datum	   *ids = elems(PG_GETARG_ARRAYTYPE_P(9), INT8OID, "dim_link_ids", n);
	Datum	   *days = column(fcinfo, 10, DATEOID, "dim_days", *n, "dim_link_ids");
	Datum	   *names = column(fcinfo, 11, TEXTOID, "dimensions", *n, "dim_link_ids");
	Datum	   *values = column(fcinfo, 12, TEXTOID, "dim_values", *n, "dim_link_ids");
	Datum	   *visits = column(fcinfo, 13, INT8OID, "dim_visits", *n, "dim_link_ids");
	Datum	   *bots = column(fcinfo, 14, INT8OID, "dim_bots", *n, "dim_link_ids");
	analytics_shipped_dim *out;
	int64		total = 0;

	out = palloc(Max(*n, 1) * sizeof(analytics_shipped_dim));
	for (int i = 0; i < *n; i++)
	{
		analytics_shipped_dim *d = &out[i];
		char	   *name = TextDatumGetCString(names[i]);
		text	   *value = DatumGetTextPP(values[i]);
		int			len = VARSIZE_ANY_EXHDR(value);

		d->link_id = DatumGetInt64(ids[i]);
		d->day = shipped_day(days[i], "dim_days", i);
		d->dim = -1;
		for (int a = 0; a < ANALYTICS_DIMS; a++)
			if (strcmp(name, analytics_dim_names[a]) == 0)
				d->dim = a;
		if (d->dim < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dimensions[%d] is not a dimension: \"%s\"", i + 1, name),
					 errhint("The dimensions are referrer, country and device.")));
		if (len == 0 || len >= ANALYTICS_VALUE_SIZE ||
			memchr(VARDATA_ANY(value), '\0', len) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dim_values[%d] must have 1 to %d bytes", i + 1, ANALYTICS_VALUE_SIZE - 1)));
		memcpy(d->value, VARDATA_ANY(value), len);
		d->value[len] = '\0';
		d->visits = DatumGetInt64(visits[i]);
		d->bots = DatumGetInt64(bots[i]);
		if (d->visits <= 0 || d->bots < 0 || d->bots > d->visits)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dim_visits[%d] must be positive, and dim_bots[%d] between 0 and it", i + 1, i + 1)));
		/* (the flush adds them to stored bigints: refused here, not there) */
		if (pg_add_s64_overflow(total, d->visits, &total))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the batch's dimension visits are out of range")));
		pfree(name);
	}
	return out;
}

/* shipped_visitors reads the batch's visitors (arguments 15 to 17) */
static analytics_shipped_visitor *
shipped_visitors(FunctionCallInfo fcinfo, int *n)
{
	Datum	   *ids = elems(PG_GETARG_ARRAYTYPE_P(15), INT8OID, "visitor_link_ids", n);
	Datum	   *days = column(fcinfo, 16, DATEOID, "visitor_days", *n, "visitor_link_ids");
	Datum	   *hashes = column(fcinfo, 17, INT8OID, "visitor_hashes", *n, "visitor_link_ids");
	analytics_shipped_visitor *out;

	out = palloc(Max(*n, 1) * sizeof(analytics_shipped_visitor));
	for (int i = 0; i < *n; i++)
	{
		out[i].link_id = DatumGetInt64(ids[i]);
		out[i].day = shipped_day(days[i], "visitor_days", i);
		out[i].vhash = (uint64) DatumGetInt64(hashes[i]);
	}
	return out;
}

PG_FUNCTION_INFO_V1(shorturl_apply_clicks);

/*
 * shorturl_apply_clicks implements apply_clicks(system_id, standby, seq,
 * links, link_ids, hours, visits, bots, last_visits, dim_link_ids,
 * dim_days, dimensions, dim_values, dim_visits, dim_bots,
 * visitor_link_ids, visitor_days, visitor_hashes) RETURNS boolean: a
 * standby's batch, applied once (true), or found applied before (false).
 * links is the OID of the shorturl.links the standby counted against.  The
 * clicks' dimension values and visitors go to this server's tables in
 * shared memory at commit (analytics_take_shipped()), to be written by
 * its flushes as if clicked here.
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
	Datum	   *ids = elems(PG_GETARG_ARRAYTYPE_P(4), INT8OID, "link_ids", &n);
	Datum	   *hours;
	Datum	   *visits;
	Datum	   *bots;
	Datum	   *last;
	shipped_row *rows;
	analytics_shipped_dim *dims;
	int			ndims;
	analytics_shipped_visitor *visitors;
	int			nvisitors;
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
	hours = column(fcinfo, 5, TIMESTAMPTZOID, "hours", n, "link_ids");
	visits = column(fcinfo, 6, INT8OID, "visits", n, "link_ids");
	bots = column(fcinfo, 7, INT8OID, "bots", n, "link_ids");
	last = column(fcinfo, 8, TIMESTAMPTZOID, "last_visits", n, "link_ids");
	dims = shipped_dims(fcinfo, &ndims);
	visitors = shipped_visitors(fcinfo, &nvisitors);

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
	{
		(void) flush_apply_shipped(rows, n);
		/* their dimensions and visitors join this server's at commit */
		analytics_take_shipped(links, dims, ndims, visitors, nvisitors);
	}
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
