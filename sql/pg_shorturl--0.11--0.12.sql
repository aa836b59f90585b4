/* pg_shorturl 0.11 -> 0.12: the URL cache's figures in shorturl.metrics()
 * (and in monitoring/postgres_exporter.yaml), so that a Prometheus server
 * sees the cache's hit rate; a deleted link's shorturl.copied_links row
 * goes with it. */

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.12'" to load this file. \quit

-- The same function with nine more metrics, from the columns 0.11 added
-- to shorturl.stats.  CREATE OR REPLACE keeps its grants (pg_monitor) and
-- its comment.
CREATE OR REPLACE FUNCTION shorturl.metrics()
RETURNS text
LANGUAGE sql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1
AS $$
SELECT pg_catalog.string_agg(
           pg_catalog.format(E'# HELP %1$s %2$s\n# TYPE %1$s %3$s\n%1$s{datname="%4$s"%5$s} %6$s\n',
                             m.name,
                             pg_catalog.replace(pg_catalog.replace(m.help, E'\\', E'\\\\'), E'\n', E'\\n'),
                             m.type, e.datname, m.labels,
                             coalesce(m.value::text, 'NaN')),
           '' ORDER BY m.name)
FROM shorturl.stats() s
-- label values escaped as the format says: backslash, double quote, line feed
CROSS JOIN LATERAL (
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               pg_catalog.current_database(), E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n'),
           pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               s.mode, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
) e(datname, mode)
CROSS JOIN LATERAL (VALUES
    ('shorturl_mode_info', 'gauge', 1::double precision, ',mode="' || e.mode || '"',
     'How this database counts clicks, in the label mode: shared (in shared memory, written by flushes), sync (in the clicking transaction) or standby (a hot standby, which counts nothing). Always 1. Outside shared mode the figures of shared memory are NaN.'),
    ('shorturl_links', 'gauge',
     CASE WHEN pg_catalog.pg_is_in_recovery()
          THEN (SELECT NULLIF(c.reltuples, -1)::double precision FROM pg_catalog.pg_class c
                WHERE c.oid = 'shorturl.links'::pg_catalog.regclass)
          ELSE pg_catalog.pg_stat_get_live_tuples('shorturl.links'::pg_catalog.regclass)::double precision END, '',
     'Links in shorturl.links, estimated without counting them: the statistics system''s live-row count (pg_stat_get_live_tuples; too low after a crash until the next VACUUM or ANALYZE), on a standby pg_class.reltuples as of the primary''s latest VACUUM or ANALYZE (NaN before the first).'),
    ('shorturl_pending_links', 'gauge', s.pending_links, '',
     'Links of this database with clicks in shared memory not yet written to shorturl.visit_counts.'),
    ('shorturl_pending_visits', 'gauge', s.pending_visits, '',
     'Clicks of this database held in shared memory, not yet written to the tables.'),
    ('shorturl_flushed_visits_total', 'counter', s.flushed_visits, '',
     'Clicks written to the tables by flushes.'),
    ('shorturl_flushes_total', 'counter', s.flushes, '',
     'Flushes committed, by the worker and by shorturl.flush(), empty ones included.'),
    ('shorturl_last_flush_timestamp_seconds', 'gauge', extract(epoch FROM s.last_flush_at)::double precision, '',
     'When the latest flush committed, in seconds since the Unix epoch; NaN before the first.'),
    ('shorturl_last_flush_duration_seconds', 'gauge', s.last_flush_ms / 1000, '',
     'How long the latest flush took, in seconds.'),
    ('shorturl_purged_links_total', 'counter', s.purged, '',
     'Expired and exhausted links deleted by purges, by the worker and by shorturl.purge_expired().'),
    ('shorturl_last_purge_timestamp_seconds', 'gauge', extract(epoch FROM s.last_purge_at)::double precision, '',
     'When the latest purge batch ran (even one that deleted nothing), in seconds since the Unix epoch; NaN before the first.'),
    ('shorturl_room_waits_total', 'counter', s.room_waits, '',
     'Clicks that found the shared counter table full and waited for a flush (see shorturl.max_pending_links).'),
    ('shorturl_sync_fallbacks_total', 'counter', s.sync_fallbacks, '',
     'Clicks counted in the tables because the shared counter table stayed full for 2 seconds.'),
    ('shorturl_refused_clicks_total', 'counter', s.refused_clicks, '',
     'Clicks of links with max_visits refused during such a fallback, since the tables cannot count them where a rollback could undo them.'),
    ('shorturl_dropped_visits_total', 'counter', s.dropped_deltas, '',
     'Unflushed clicks dropped because their link was deleted (or never committed) before a flush wrote them.'),
    ('shorturl_worker_pid', 'gauge', s.worker_pid, '',
     'Process id of the worker serving this database; NaN while none runs (databases take turns when shorturl.max_workers is short).'),
    ('shorturl_last_error_timestamp_seconds', 'gauge', extract(epoch FROM s.last_error_at)::double precision, '',
     'When a flush or purge of the worker last failed, in seconds since the Unix epoch (the message is in shorturl.stats.last_error and the server log); NaN if none has.'),
    ('shorturl_max_pending_links', 'gauge', s.max_pending_links, '',
     'The setting shorturl.max_pending_links: links the shared counter table can hold, for all databases together.'),
    ('shorturl_pending_dimension_values', 'gauge', s.pending_dimension_values, '',
     'Analytics dimension values (link, day, dimension, value) of this database held in shared memory, not yet written.'),
    ('shorturl_pending_visitors', 'gauge', s.pending_visitors, '',
     'Unique-visitor entries (link, day, visitor) of this database held in shared memory, not yet written.'),
    ('shorturl_dimension_overflow_total', 'counter', s.dimension_overflow, '',
     'Dimension values counted under other because shared memory had no room for them (see shorturl.max_pending_dimensions).'),
    ('shorturl_dimension_dropped_total', 'counter', s.dimension_dropped, '',
     'Dimension values not kept because shared memory had no room even for other (their clicks still count).'),
    ('shorturl_visitors_dropped_total', 'counter', s.visitors_dropped, '',
     'Visitors not kept for unique_visitors() because shared memory had no room (their clicks still count; see shorturl.max_pending_visitors).'),
    ('shorturl_max_pending_dimensions', 'gauge', s.max_pending_dimensions, '',
     'The setting shorturl.max_pending_dimensions: dimension values shared memory can hold, for all databases together.'),
    ('shorturl_max_pending_visitors', 'gauge', s.max_pending_visitors, '',
     'The setting shorturl.max_pending_visitors: visitors shared memory can hold, for all databases together.'),
    ('shorturl_scan_clients_blocked_total', 'counter', s.scan_clients_blocked, '',
     'Times a client looked up more unknown codes than shorturl.scan_limit allows and was blocked.'),
    ('shorturl_scan_lookups_blocked_total', 'counter', s.scan_lookups_blocked, '',
     'Lookups answered NULL or unknown because their client was blocked for scanning.'),
    ('shorturl_host_lookups_blocked_total', 'counter', s.host_lookups_blocked, '',
     'Lookups of links whose host is in shorturl.blocked_hosts (answered NULL or blocked).'),
    ('shorturl_rate_keys', 'gauge', s.rate_keys, '',
     'Keys in the shared rate-limit table, of every database: rate_limit() keys, clients of the scan guard, owners with a quota.'),
    ('shorturl_rate_keys_reclaimed_total', 'counter', s.rate_keys_reclaimed, '',
     'Keys with full buckets forgotten to make room in the rate-limit table, every database.'),
    ('shorturl_rate_keys_full_total', 'counter', s.rate_keys_full, '',
     'Requests of new keys the full rate-limit table had no room for, answered as shorturl.rate_limit_when_full says, every database.'),
    ('shorturl_max_rate_keys', 'gauge', s.max_rate_keys, '',
     'The setting shorturl.max_rate_keys: keys the rate-limit table can hold.'),
    ('shorturl_url_cache_hits_total', 'counter', s.url_cache_hits, '',
     'Lookups of resolve(), link_status() and visits() the URL cache answered, every database of the server; NaN without a cache (shorturl.url_cache_size = 0, a standby, or the library not preloaded).'),
    ('shorturl_url_cache_misses_total', 'counter', s.url_cache_misses, '',
     'Lookups the URL cache could not answer, which read shorturl.links, every database.'),
    ('shorturl_url_cache_fills_total', 'counter', s.url_cache_fills, '',
     'Links put into the URL cache after a miss, every database.'),
    ('shorturl_url_cache_rejected_total', 'counter', s.url_cache_rejected, '',
     'Links not put into the full URL cache because they were asked for less often than the entry they would have replaced (TinyLFU), every database.'),
    ('shorturl_url_cache_evictions_total', 'counter', s.url_cache_evictions, '',
     'Entries pushed out of the full URL cache to make room, every database.'),
    ('shorturl_url_cache_invalidations_total', 'counter', s.url_cache_invalidations, '',
     'Entries of links that committing transactions updated or deleted, plus whole-database clears, every database.'),
    ('shorturl_url_cache_entries', 'gauge', s.url_cache_entries, '',
     'Links in the URL cache now, every database.'),
    ('shorturl_url_cache_used_bytes', 'gauge', s.url_cache_bytes, '',
     'Bytes of the URL cache its entries use now, every database.'),
    ('shorturl_url_cache_size_bytes', 'gauge', s.url_cache_size, '',
     'Bytes of shared memory the URL cache has (shorturl.url_cache_size with its index and frequency sketch).')
) m(name, type, value, labels, help)
$$;

-------------------------------------------------------------------------
-- A copy's record goes with its link
--
-- shorturl.copied_links tells a coordinator's rebalance what count a copy
-- carried here.  forget_arrived() clears it once the move is done; but a
-- copy whose move never got journaled (the rebalance cancelled or timed
-- out in the copy's commit) may leave again instead, taken back to the
-- shard it came from by a rerun under a changed shard map, and its row
-- stayed: the day the link moved here for good, the rebalance took the
-- stale row for its copy's count (too low, so the new shard got the clicks
-- since then twice) and did not copy its analytics.  A link deleted here,
-- by a move away or by a user, now takes its row along.
-------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION shorturl.links_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT shorturl._moving() THEN
        INSERT INTO shorturl.retired_codes (code, domain)
        SELECT code, domain FROM gone WHERE is_alias
        ON CONFLICT DO NOTHING;
    END IF;
    DELETE FROM shorturl.visit_counts WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.pending_visits WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visits_hourly WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visits_daily WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visits_breakdown WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visitors_daily WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.copied_links WHERE id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_deleted() IS
'trigger on shorturl.links: retires the aliases of deleted links (not of links moving away) and deletes their counts, analytics and copy records';

CREATE OR REPLACE FUNCTION shorturl.links_truncated()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO shorturl.retired_codes (code, domain)
    SELECT code, domain FROM shorturl.links WHERE is_alias
    ON CONFLICT DO NOTHING;
    TRUNCATE shorturl.visit_counts, shorturl.pending_visits, shorturl.link_visits_hourly,
             shorturl.link_visits_daily, shorturl.link_visits_breakdown, shorturl.link_visitors_daily,
             shorturl.copied_links;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_truncated() IS
'trigger on shorturl.links: retires every alias and empties the counts, analytics and copy records before a TRUNCATE';

COMMENT ON TABLE shorturl.copied_links IS
'links a coordinator''s rebalance copied here, with the count each copy carried, until the coordinator forgets them (forget_arrived) or the link leaves (deleted, or moved away)';

-------------------------------------------------------------------------
-- Last, as every update script from 0.11 on: whatever the cache holds
-- for this database was read under the old definitions.
-------------------------------------------------------------------------

SELECT shorturl._url_cache_reset();
