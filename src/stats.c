/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  shorturl.stats: how this database's clicks are counted, flushed and
 *	  purged.
 *
 * The figures live in the database's slot (dbstate.c) as atomics, and the
 * unflushed clicks in the counter table (counters.c); this file only reads
 * them.  The row is filled by column name, so an older definition of the
 * view (before ALTER EXTENSION UPDATE) still gets a correct row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "catalog.h"
#include "clicks.h"
#include "compat.h"
#include "counters.h"
#include "dbstate.h"
#include "pg_shorturl.h"
#include "ratelimit.h"
#include "urlcache.h"

/* What the scan of the counter table finds for this database */
typedef struct pending_count
{
	Oid			relid;			/* entries of this shorturl.links only */
	int64		links;
	int64		visits;			/* pending and in flight */
	int64		inflight;
} pending_count;

static bool
count_pending(counter_entry *e, void *arg)
{
	pending_count *c = arg;
	int64		n;

	if (e->key.dbid != MyDatabaseId || e->key.relid != c->relid)
		return true;
	SpinLockAcquire(&e->mutex);
	n = e->inflight;
	SpinLockRelease(&e->mutex);
	c->inflight += n;
	n += (int64) pg_atomic_read_u64(&e->pending);
	if (n > 0)
	{
		c->links++;
		c->visits += n;
	}
	return true;
}

/* A column of the row: its value, or none */
typedef struct stat_value
{
	const char *name;
	Datum		value;
	bool		isnull;
} stat_value;

static stat_value
int8_value(const char *name, pg_atomic_uint64 *v)
{
	stat_value	s = {name, Int64GetDatum((int64) pg_atomic_read_u64(v)), false};

	return s;
}

static stat_value
ts_value(const char *name, pg_atomic_uint64 *v)
{
	TimestampTz ts = (TimestampTz) pg_atomic_read_u64(v);
	stat_value	s = {name, TimestampTzGetDatum(ts), ts == 0};

	return s;
}

PG_FUNCTION_INFO_V1(shorturl_stats);

/*
 * shorturl_stats returns the one row of the shorturl.stats view.
 */
Datum
shorturl_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	stat_value	v[64];
	int			n = 0;
	click_mode	mode = clicks_mode();
	db_state   *db = (mode == CLICKS_SHARED || mode == CLICKS_STANDBY) ? dbstate_mine() : NULL;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	v[n++] = (stat_value)
	{
		"mode", CStringGetTextDatum(mode == CLICKS_SHARED ? "shared" :
									mode == CLICKS_TABLE ? "sync" : "standby"), false
	};
	if (db != NULL)
	{
		const shorturl_tables *t = catalog_tables_if_installed();
		pending_count pc = {t ? t->links : InvalidOid, 0, 0, 0};
		uint64		flush_us = pg_atomic_read_u64(&db->last_flush_us);
		char		error[DBSTATE_ERROR_SIZE];
		TimestampTz error_at;
		int			worker_pid;

		for (int p = 0; p < counters_partitions(); p++)
		{
			LWLockAcquire(counters_partition_lock(p), LW_SHARED);
			counters_scan(p, count_pending, &pc);
			LWLockRelease(counters_partition_lock(p));
		}
		dbstate_lock(false);
		strlcpy(error, db->last_error, sizeof(error));
		error_at = db->last_error_at;
		worker_pid = db->worker_pid;
		dbstate_unlock();

		v[n++] = (stat_value) {"pending_links", Int64GetDatum(pc.links), false};
		/* on a standby, the clicks in flight are the batch's: unshipped_visits */
		v[n++] = (stat_value) {"pending_visits",
		Int64GetDatum(mode == CLICKS_STANDBY ? pc.visits - pc.inflight : pc.visits), false};
		v[n++] = int8_value("flushed_visits", &db->flushed_visits);
		v[n++] = int8_value("flushes", &db->flushes);
		v[n++] = ts_value("last_flush_at", &db->last_flush_at);
		v[n++] = (stat_value) {"last_flush_ms", Float8GetDatum(flush_us / 1000.0),
		pg_atomic_read_u64(&db->last_flush_at) == 0};
		v[n++] = int8_value("purged", &db->purged);
		v[n++] = ts_value("last_purge_at", &db->last_purge_at);
		v[n++] = int8_value("room_waits", &db->room_waits);
		v[n++] = int8_value("sync_fallbacks", &db->sync_fallbacks);
		v[n++] = int8_value("refused_clicks", &db->refused_clicks);
		v[n++] = int8_value("dropped_deltas", &db->dropped_deltas);
		if (mode == CLICKS_STANDBY)
		{
			v[n++] = (stat_value) {"unshipped_visits", Int64GetDatum(pc.visits), false};
			v[n++] = int8_value("shipped_visits", &db->shipped_visits);
			v[n++] = int8_value("ship_batches", &db->ship_batches);
			v[n++] = int8_value("ship_failures", &db->ship_failures);
			v[n++] = ts_value("last_ship_at", &db->last_ship_at);
			v[n++] = int8_value("standby_dropped", &db->standby_dropped);
		}
		v[n++] = (stat_value) {"worker_pid", Int32GetDatum(worker_pid), worker_pid == 0};
		v[n++] = (stat_value) {"last_error", CStringGetTextDatum(error), error[0] == '\0'};
		v[n++] = (stat_value) {"last_error_at", TimestampTzGetDatum(error_at), error_at == 0};
		v[n++] = (stat_value) {"max_pending_links", Int32GetDatum(shorturl_max_pending_links), false};
		{
			int64		ndims;
			int64		nvisitors;

			analytics_pending(&ndims, &nvisitors);
			/* on a standby, unshipped: the batch in flight's too */
			if (mode == CLICKS_STANDBY)
			{
				ndims += (int64) pg_atomic_read_u64(&db->ship_dims);
				nvisitors += (int64) pg_atomic_read_u64(&db->ship_visitors);
			}
			v[n++] = (stat_value) {"pending_dimension_values", Int64GetDatum(ndims), false};
			v[n++] = (stat_value) {"pending_visitors", Int64GetDatum(nvisitors), false};
		}
		v[n++] = int8_value("dimension_overflow", &db->analytics_overflow);
		v[n++] = int8_value("dimension_dropped", &db->analytics_dropped);
		v[n++] = int8_value("visitors_dropped", &db->visitors_dropped);
		v[n++] = (stat_value) {"max_pending_dimensions", Int32GetDatum(shorturl_max_pending_dimensions), false};
		v[n++] = (stat_value) {"max_pending_visitors", Int32GetDatum(shorturl_max_pending_visitors), false};
		v[n++] = int8_value("scan_clients_blocked", &db->scan_clients_blocked);
		v[n++] = int8_value("scan_lookups_blocked", &db->scan_lookups_blocked);
		v[n++] = int8_value("host_lookups_blocked", &db->host_lookups_blocked);
	}
	{
		int64		in_use;
		int64		reclaimed;
		int64		full;

		if (ratelimit_stats(&in_use, &reclaimed, &full))
		{
			v[n++] = (stat_value) {"rate_keys", Int64GetDatum(in_use), false};
			v[n++] = (stat_value) {"rate_keys_reclaimed", Int64GetDatum(reclaimed), false};
			v[n++] = (stat_value) {"rate_keys_full", Int64GetDatum(full), false};
			v[n++] = (stat_value) {"max_rate_keys", Int32GetDatum(shorturl_max_rate_keys), false};
		}
	}

	{
		urlcache_figures f;

		if (urlcache_stats(&f))
		{
			v[n++] = (stat_value) {"url_cache_hits", Int64GetDatum(f.hits), false};
			v[n++] = (stat_value) {"url_cache_misses", Int64GetDatum(f.misses), false};
			v[n++] = (stat_value) {"url_cache_fills", Int64GetDatum(f.fills), false};
			v[n++] = (stat_value) {"url_cache_rejected", Int64GetDatum(f.rejected), false};
			v[n++] = (stat_value) {"url_cache_evictions", Int64GetDatum(f.evictions), false};
			v[n++] = (stat_value) {"url_cache_invalidations", Int64GetDatum(f.invalidations), false};
			v[n++] = (stat_value) {"url_cache_entries", Int64GetDatum(f.entries), false};
			v[n++] = (stat_value) {"url_cache_bytes", Int64GetDatum(f.bytes), false};
			v[n++] = (stat_value) {"url_cache_size", Int64GetDatum(f.size), false};
		}
	}

	values = palloc0(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));
	for (int i = 0; i < desc->natts; i++)
	{
		const char *name = NameStr(TupleDescAttr(desc, i)->attname);

		nulls[i] = true;
		for (int j = 0; j < n; j++)
		{
			if (strcmp(v[j].name, name) == 0)
			{
				values[i] = v[j].value;
				nulls[i] = v[j].isnull;
				break;
			}
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
