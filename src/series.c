/*-------------------------------------------------------------------------
 *
 * series.c
 *	  Reading a link's analytics: its visits per hour, day, week or month
 *	  (with the clicks not yet flushed), its unique visitors, and the
 *	  device class of a user agent.
 *
 * The SQL functions visit_series(), visit_breakdown() and
 * unique_visitors() are PL/pgSQL in the extension script: they find the
 * link for its code and owner and call the internal functions here with
 * its id.
 *
 * A series is exact: its buckets add up to what visits() says at the same
 * moment.  It is read like visits() (clicks.c): the stored hours and days
 * at one snapshot, plus what shared memory holds beyond that snapshot,
 * with the same check that no flush moved in between.  Unflushed clicks
 * go to their hour as the flush would put them (note_hour() in clicks.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/formatting.h"
#include "utils/timestamp.h"

#include "clicks.h"
#include "compat.h"
#include "counters.h"
#include "hll.h"
#include "pg_shorturl.h"
#include "spi_util.h"
#include "visitdims.h"

/* A series has at most this many buckets (hourly: eleven years) */
#define MAX_BUCKETS		100000

typedef struct series
{
	int64		link_id;
	text	   *unit;			/* hour, day, week or month */
	bool		utc_hours;		/* the unit is hour: UTC hours (see bucket_trunc) */
	int			n;
	TimestampTz *start;			/* of each bucket, ascending */
	int64	   *visits;			/* every click, bots' included */
	int64	   *bots;
	TimestampTz lo;				/* start of the first bucket */
	TimestampTz hi;				/* end of the last */
} series;

static SPIPlanPtr plan_stored;

/*
 * bucket_trunc is date_trunc(unit, t) in the session's time zone, except
 * that hours are UTC hours: the stored hours are UTC hours, and they are
 * the session's own hours unless its offset from UTC is not a whole number
 * of hours (India, Nepal, Newfoundland...), where an hour bucket is a UTC
 * hour shown in the session's time (05:45 to 06:45 in Nepal).  A day, week
 * or month of such a zone holds the UTC hours that start in it.
 */
static TimestampTz
bucket_trunc(const series *s, TimestampTz t)
{
	if (s->utc_hours)
		return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_trunc_zone,
													   PointerGetDatum(s->unit),
													   TimestampTzGetDatum(t),
													   PointerGetDatum(cstring_to_text("UTC"))));
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_trunc,
												   PointerGetDatum(s->unit),
												   TimestampTzGetDatum(t)));
}

/*
 * bucket_of finds the bucket for clicks stored at t that stand for the
 * span [t, t + span) (a UTC hour or day), or -1 if the span is outside the
 * series.  A span that begins before the first bucket and ends in it counts
 * in the first (a day merged from hours, when the series starts with the
 * link's creation, later in that day).
 */
static int
bucket_of(const series *s, TimestampTz t, int64 span)
{
	TimestampTz start;
	int			lo = 0;
	int			hi = s->n - 1;

	if (t >= s->hi || t + span <= s->lo)
		return -1;
	start = bucket_trunc(s, Max(t, s->lo));
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (s->start[mid] == start)
			return mid;
		if (s->start[mid] < start)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/*
 * read_stored adds up the link's stored hours, days and synchronously
 * counted clicks per bucket, at a snapshot (a clicks_stored_reader).
 */
static void
read_stored(Snapshot snapshot, void *arg)
{
	series	   *s = arg;
	Oid			argtypes[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	int			rc;

	memset(s->visits, 0, s->n * sizeof(int64));
	memset(s->bots, 0, s->n * sizeof(int64));
	values[0] = Int64GetDatum(s->link_id);
	values[1] = TimestampTzGetDatum(s->lo);
	values[2] = TimestampTzGetDatum(s->hi);

	spi_begin();
	/* each row: when, the span it stands for (us), visits, bots */
	rc = SPI_execute_snapshot(spi_plan(&plan_stored,
									   "SELECT hour, 3600000000::bigint, visits, bots FROM shorturl.link_visits_hourly"
									   " WHERE link_id = $1 AND hour > $2 - interval '1 hour' AND hour < $3"
									   " UNION ALL"
									   " SELECT day::timestamp AT TIME ZONE 'UTC', 86400000000::bigint, visits, bots"
									   "   FROM shorturl.link_visits_daily"
									   "  WHERE link_id = $1 AND day >= ($2 AT TIME ZONE 'UTC')::date"
									   "    AND day::timestamp AT TIME ZONE 'UTC' < $3"
									   " UNION ALL"
									   " SELECT visited_at, 1::bigint, visits, bots FROM shorturl.pending_visits"
									   "  WHERE link_id = $1 AND visited_at >= $2 AND visited_at < $3",
									   3, argtypes),
							  values, NULL, snapshot, InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		TimestampTz at = DatumGetTimestampTz(spi_result((int) r, 1, &isnull));
		int			b = bucket_of(s, at, DatumGetInt64(spi_result((int) r, 2, &isnull)));

		if (b < 0)
			continue;
		s->visits[b] += DatumGetInt64(spi_result((int) r, 3, &isnull));
		s->bots[b] += DatumGetInt64(spi_result((int) r, 4, &isnull));
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
}

/* add_at adds clicks to the bucket of an hour (clicks_hour()) */
static void
add_at(series *s, uint64 hour, int64 visits, int64 bots)
{
	int			b;

	if (visits <= 0)
		return;
	b = bucket_of(s, (TimestampTz) hour * USECS_PER_HOUR, USECS_PER_HOUR);
	if (b < 0)
		return;
	s->visits[b] += visits;
	s->bots[b] += bots;
}

/*
 * add_unflushed adds what shared memory holds beyond the stored rows, as
 * the flush will write it: the first hour's clicks to that hour, the rest
 * (and those in flight) to the hour of the latest click, bots' clicks to
 * the latest hour as far as it has clicks.
 */
static void
add_unflushed(series *s, const clicks_live_parts *p)
{
	int64		first = Min((int64) (p->first_hour & COUNTER_HOUR_COUNT_MASK), p->pending);
	uint64		first_hour = p->first_hour >> COUNTER_HOUR_SHIFT;
	uint64		last_hour = clicks_hour(p->last_visit);
	int64		rest = p->pending - first + p->inflight;
	int64		bots = Min(p->pending_bots + p->inflight_bots, p->pending + p->inflight);
	int64		rest_bots = Min(bots, rest);

	add_at(s, first_hour, first, bots - rest_bots);
	add_at(s, last_hour, rest, rest_bots);
}

/* unit_step is the interval between two buckets of a unit */
static Interval *
unit_step(const char *unit)
{
	Interval   *step = palloc0(sizeof(Interval));

	if (strcmp(unit, "hour") == 0)
		step->time = USECS_PER_HOUR;
	else if (strcmp(unit, "day") == 0)
		step->day = 1;
	else if (strcmp(unit, "week") == 0)
		step->day = 7;
	else if (strcmp(unit, "month") == 0)
		step->month = 1;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown bucket \"%s\"", unit),
				 errhint("A bucket is hour, day, week or month.")));
	return step;
}

PG_FUNCTION_INFO_V1(shorturl_visit_series_by_id);

/*
 * shorturl_visit_series_by_id implements _visit_series(link_id bigint,
 * from timestamptz, to timestamptz, bucket text) RETURNS TABLE
 * (bucket_start timestamptz, visits bigint): a link's visits in each
 * bucket of the session's time zone from the one holding "from" to the
 * one holding the last moment before "to", empty ones included, with
 * bots' clicks unless shorturl.count_bots is off.
 */
Datum
shorturl_visit_series_by_id(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	series		s;
	TimestampTz from;
	TimestampTz to;
	TimestampTz last;
	Interval   *step;
	char	   *unit;
	int			cap = 64;
	clicks_live_parts parts;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("_visit_series() takes no NULL argument")));
	s.link_id = PG_GETARG_INT64(0);
	from = PG_GETARG_TIMESTAMPTZ(1);
	to = PG_GETARG_TIMESTAMPTZ(2);
	/* date_trunc() takes its unit in any case, and so does this */
	unit = asc_tolower(VARDATA_ANY(PG_GETARG_TEXT_PP(3)), VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(3)));
	step = unit_step(unit);
	s.unit = cstring_to_text(unit);
	s.utc_hours = (strcmp(unit, "hour") == 0);
	if (TIMESTAMP_NOT_FINITE(from) || TIMESTAMP_NOT_FINITE(to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a series needs finite bounds")));

	compat_init_materialized_srf(fcinfo);
	if (to <= from)
		PG_RETURN_NULL();

	/*
	 * The buckets, stepped in the session's time zone from one bucket's
	 * start to the next's (a day may start at 01:00 where the clocks go
	 * forward at midnight; the next day starts at 00:00 again).
	 */
	s.n = 0;
	s.start = palloc(cap * sizeof(TimestampTz));
	last = bucket_trunc(&s, to - 1);
	for (TimestampTz t = bucket_trunc(&s, from); t <= last;)
	{
		TimestampTz next;

		if (s.n == MAX_BUCKETS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a series has at most %d buckets", MAX_BUCKETS),
					 errhint("Ask for a shorter range or a larger bucket.")));
		if (s.n == cap)
		{
			cap *= 2;
			s.start = repalloc(s.start, cap * sizeof(TimestampTz));
		}
		s.start[s.n++] = t;
		next = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													   TimestampTzGetDatum(t),
													   PointerGetDatum(step)));
		t = bucket_trunc(&s, next);
		if (t <= s.start[s.n - 1])
			t = next;			/* (never: a bucket is longer than a step's shortfall) */
		CHECK_FOR_INTERRUPTS();
	}
	s.lo = s.start[0];
	s.hi = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(s.start[s.n - 1]),
												   PointerGetDatum(step)));
	s.visits = palloc(s.n * sizeof(int64));
	s.bots = palloc(s.n * sizeof(int64));

	clicks_live_read(s.link_id, read_stored, &s, &parts);
	add_unflushed(&s, &parts);

	for (int b = 0; b < s.n; b++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = TimestampTzGetDatum(s.start[b]);
		values[1] = Int64GetDatum(s.visits[b] - (shorturl_count_bots ? 0 : s.bots[b]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(shorturl_unique_visitors_by_id);

/*
 * shorturl_unique_visitors_by_id implements _unique_visitors(link_id
 * bigint, from date, to date) RETURNS bigint: the estimated number of
 * distinct visitors of a link on the UTC days [from, to), from their
 * flushed sketches merged.
 */
Datum
shorturl_unique_visitors_by_id(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan_days;
	Oid			argtypes[3] = {INT8OID, DATEOID, DATEOID};
	Datum		values[3] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};
	hll_sketch *all = palloc(sizeof(hll_sketch));
	hll_sketch *day = palloc(sizeof(hll_sketch));
	double		estimate;

	hll_init(all);
	spi_begin();
	spi_run(spi_plan(&plan_days,
					 "SELECT sketch, day FROM shorturl.link_visitors_daily"
					 " WHERE link_id = $1 AND day >= $2 AND day < $3",
					 3, argtypes),
			values, NULL, true, SPI_OK_SELECT);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		bytea	   *b = DatumGetByteaPP(spi_result((int) r, 1, &isnull));
		size_t		bad_offset;
		hll_status	err;

		err = hll_deserialize((const uint8 *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), day,
							  &bad_offset);
		if (err != HLL_OK)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the visitor sketch of link " INT64_FORMAT " on %s is damaged",
							DatumGetInt64(values[0]),
							DatumGetCString(DirectFunctionCall1(date_out,
																spi_result((int) r, 2, &isnull)))),
					 errdetail("%s (byte %zu)", hll_error_message(err), bad_offset)));
		hll_merge(all, day);
	}
	SPI_finish();
	estimate = hll_estimate(all);
	pfree(all);
	pfree(day);
	PG_RETURN_INT64((int64) (estimate + 0.5));
}

PG_FUNCTION_INFO_V1(shorturl_device_class);

/*
 * shorturl_device_class implements device_class(user_agent text) RETURNS
 * text: desktop, mobile, tablet, bot or other (visitdims.c).
 */
Datum
shorturl_device_class(PG_FUNCTION_ARGS)
{
	text	   *ua = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(visit_device_name(visit_device_class(VARDATA_ANY(ua),
																		  VARSIZE_ANY_EXHDR(ua)))));
}
