/* pg_shorturl 0.9 -> 0.10: metrics in the Prometheus text format
 * (shorturl.metrics()), for setups without postgres_exporter; the queries
 * file in monitoring/ exports the same metrics through the exporter. */

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.10'" to load this file. \quit

-------------------------------------------------------------------------
-- Prometheus metrics
--
-- metrics() renders shorturl.stats and the number of links in the
-- Prometheus text exposition format 0.0.4: each metric a HELP line, a
-- TYPE line and one sample labelled with the database, in the order of
-- their names.  A NULL figure (in sync and standby mode, see
-- shorturl.stats) is NaN, as postgres_exporter reports a NULL column.
-- The VALUES list below is the only list of the metrics in the
-- extension; monitoring/postgres_exporter.yaml exports the same names,
-- types, help and values through the exporter, and test/t/014_metrics.pl
-- checks that the two agree with each other and with shorturl.stats.
--
-- The number of links is not counted (a count(*) of a billion rows reads
-- them all): it is the statistics system's live-row count of
-- shorturl.links, and on a standby, whose statistics know nothing of the
-- primary's writes, pg_class.reltuples, which the primary's VACUUM and
-- ANALYZE set and WAL carries.  extra_float_digits = 1 prints every
-- double in its shortest exact form, whatever the session set, so a
-- value reads back as the double the exporter reports.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.metrics()
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
     'The setting shorturl.max_rate_keys: keys the rate-limit table can hold.')
) m(name, type, value, labels, help)
$$;

COMMENT ON FUNCTION shorturl.metrics() IS
'shorturl.stats and the number of links of this database in the Prometheus text format (0.0.4), the metrics monitoring/postgres_exporter.yaml exports, for serving as they are (psql -At -c ''SELECT shorturl.metrics()''); NULL figures are NaN';

REVOKE ALL ON FUNCTION shorturl.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shorturl.metrics() TO pg_monitor;

-- 0.9's comment left out REPEATABLE READ, where a transaction keeps the
-- blocklist it first read until it ends (as the README says).
COMMENT ON TABLE shorturl.blocked_hosts IS
'hosts links may not point at: shorten() and update_link() refuse them, and existing links to them resolve to NULL with status blocked, from the statement after the change commits (under REPEATABLE READ, from the next transaction)';
