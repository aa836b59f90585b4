/* pg_shorturl 0.12 -> 0.13: read replicas count their clicks.  A hot
 * standby counts the clicks of links without max_visits in its shared
 * memory and ships them to the primary, which applies each batch once:
 * shorturl.apply_clicks() and shorturl.shipped_seq(), the record of each
 * standby's last batch (shorturl.standby_batches), and the shipping's
 * figures in shorturl.stats.  A link with max_visits is served from a
 * standby by claiming its visit on the primary: shorturl.claim_visit(). */

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.13'" to load this file. \quit

-------------------------------------------------------------------------
-- The primary's record of each standby's batches
-------------------------------------------------------------------------

CREATE TABLE shorturl.standby_batches (
    system_id bigint NOT NULL,
    standby text NOT NULL CHECK (pg_catalog.octet_length(standby) BETWEEN 1 AND 63),
    last_seq bigint NOT NULL CHECK (last_seq > 0),
    batches bigint NOT NULL DEFAULT 0,
    visits bigint NOT NULL DEFAULT 0,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (system_id, standby)
);

COMMENT ON TABLE shorturl.standby_batches IS
'the last batch of clicks the primary applied from each standby (shorturl.apply_clicks), written in the applying transaction, so a batch sent again is applied once';
COMMENT ON COLUMN shorturl.standby_batches.system_id IS 'the standby''s system identifier (a physical standby shares its primary''s)';
COMMENT ON COLUMN shorturl.standby_batches.standby IS 'the standby''s shorturl.standby_name, or its cluster_name';
COMMENT ON COLUMN shorturl.standby_batches.last_seq IS 'the number of the last batch applied; a batch numbered no higher is not applied again';
COMMENT ON COLUMN shorturl.standby_batches.batches IS 'batches applied';
COMMENT ON COLUMN shorturl.standby_batches.visits IS 'clicks shipped in them (those of links deleted meanwhile included)';
COMMENT ON COLUMN shorturl.standby_batches.applied_at IS 'when the last batch was applied';

REVOKE ALL ON shorturl.standby_batches FROM PUBLIC;

CREATE FUNCTION shorturl.apply_clicks(
    system_id bigint, standby text, seq bigint, links oid,
    link_ids bigint[], hours timestamptz[], visits bigint[], bots bigint[],
    last_visits timestamptz[],
    dim_link_ids bigint[] DEFAULT '{}', dim_days date[] DEFAULT '{}',
    dimensions text[] DEFAULT '{}', dim_values text[] DEFAULT '{}',
    dim_visits bigint[] DEFAULT '{}', dim_bots bigint[] DEFAULT '{}',
    visitor_link_ids bigint[] DEFAULT '{}', visitor_days date[] DEFAULT '{}',
    visitor_hashes bigint[] DEFAULT '{}')
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_apply_clicks'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.apply_clicks(bigint, text, bigint, oid, bigint[], timestamptz[], bigint[], bigint[], timestamptz[], bigint[], date[], text[], text[], bigint[], bigint[], bigint[], date[], bigint[]) IS
'applies a standby''s batch of clicks (visits of link_ids[i] in the hour hours[i], bots[i] of them by bots, the latest at last_visits[i]; links: the OID of the shorturl.links they were counted against, else they are dropped) to the counts and series in this transaction, unless shorturl.standby_batches shows that batch applied before; true when applied now. Their analytics (dim_visits[i] clicks, dim_bots[i] of them by bots, of link dim_link_ids[i] on the UTC day dim_days[i] with the value dim_values[i] of the dimension dimensions[i]; the visitor hashes visitor_hashes[i] of link visitor_link_ids[i] on visitor_days[i]) join this server''s pending analytics at commit';

CREATE FUNCTION shorturl.shipped_seq(system_id bigint, standby text)
RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT b.last_seq FROM shorturl.standby_batches b
                      WHERE b.system_id = $1 AND b.standby = $2), 0)
$$;

COMMENT ON FUNCTION shorturl.shipped_seq(bigint, text) IS
'the number of the last batch applied from a standby (0 for none); a standby asks it on each new connection';

CREATE FUNCTION shorturl.claim_visit(
    system_id bigint, links oid, link_id bigint, take boolean, bot boolean)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_claim_visit'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.claim_visit(bigint, oid, bigint, boolean, boolean) IS
'how the link link_id of the shorturl.links whose OID is links stands here (active, exhausted, expired, disabled or unknown), counting one visit of it (a bot''s if bot) when take and active, as resolve() would (refused when resolve() here would give NULL all the same: the click could not be counted where it would stick); a standby calls it to serve a link with max_visits';

REVOKE ALL ON FUNCTION shorturl.apply_clicks(bigint, text, bigint, oid, bigint[], timestamptz[], bigint[], bigint[], timestamptz[], bigint[], date[], text[], text[], bigint[], bigint[], bigint[], date[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shipped_seq(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.claim_visit(bigint, oid, bigint, boolean, boolean) FROM PUBLIC;

COMMENT ON FUNCTION shorturl.link_status(text) IS
'active, expired, exhausted, disabled, blocked or unknown, without counting a visit (for answering 302, 410 or 404); on a standby, a link with max_visits stands as the primary says, or is unreachable when the primary does not answer within shorturl.claim_timeout';

COMMENT ON FUNCTION shorturl.link_status(text, text, text) IS
'active, expired, exhausted, disabled, blocked or unknown, for a code on a short domain (NULL or '''': the default one), without counting a visit; unknown for every code while the client (optional) is blocked for scanning; on a standby, a link with max_visits stands as the primary says, or is unreachable when the primary does not answer within shorturl.claim_timeout';

-------------------------------------------------------------------------
-- shorturl.stats gains the shipping's figures, and shorturl.metrics()
-- with them
-------------------------------------------------------------------------

DROP VIEW shorturl.stats;
DROP FUNCTION shorturl.stats();

CREATE FUNCTION shorturl.stats(
    OUT mode text,
    OUT pending_links bigint,
    OUT pending_visits bigint,
    OUT flushed_visits bigint,
    OUT flushes bigint,
    OUT last_flush_at timestamptz,
    OUT last_flush_ms double precision,
    OUT purged bigint,
    OUT last_purge_at timestamptz,
    OUT room_waits bigint,
    OUT sync_fallbacks bigint,
    OUT refused_clicks bigint,
    OUT dropped_deltas bigint,
    OUT worker_pid integer,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT max_pending_links integer,
    OUT pending_dimension_values bigint,
    OUT pending_visitors bigint,
    OUT dimension_overflow bigint,
    OUT dimension_dropped bigint,
    OUT visitors_dropped bigint,
    OUT max_pending_dimensions integer,
    OUT max_pending_visitors integer,
    OUT scan_clients_blocked bigint,
    OUT scan_lookups_blocked bigint,
    OUT host_lookups_blocked bigint,
    OUT rate_keys bigint,
    OUT rate_keys_reclaimed bigint,
    OUT rate_keys_full bigint,
    OUT max_rate_keys integer,
    OUT url_cache_hits bigint,
    OUT url_cache_misses bigint,
    OUT url_cache_fills bigint,
    OUT url_cache_rejected bigint,
    OUT url_cache_evictions bigint,
    OUT url_cache_invalidations bigint,
    OUT url_cache_entries bigint,
    OUT url_cache_bytes bigint,
    OUT url_cache_size bigint,
    OUT unshipped_visits bigint,
    OUT shipped_visits bigint,
    OUT ship_batches bigint,
    OUT ship_failures bigint,
    OUT last_ship_at timestamptz,
    OUT standby_dropped bigint)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the worker of this database: mode, unflushed clicks and analytics, flushes, purges, waits, fallbacks, errors; the guards against scanners and blocked hosts; the rate-limit table; the URL cache; on a standby, the shipping of its clicks to the primary';
COMMENT ON COLUMN shorturl.stats.mode IS
'shared: clicks are counted in shared memory and flushed by a worker; sync: each click is written in the clicking transaction; standby: a hot standby, which counts clicks in shared memory and ships them to the primary (with shorturl.ship_interval = 0 or without preloading: counts nothing)';
COMMENT ON COLUMN shorturl.stats.pending_links IS 'links of this database with clicks not yet written to shorturl.visit_counts';
COMMENT ON COLUMN shorturl.stats.pending_visits IS 'clicks of this database held in shared memory, not yet written; on a standby, not yet taken into a batch for the primary';
COMMENT ON COLUMN shorturl.stats.flushed_visits IS 'clicks written by flushes since the server started';
COMMENT ON COLUMN shorturl.stats.flushes IS 'flushes committed since the server started';
COMMENT ON COLUMN shorturl.stats.last_flush_at IS 'when the latest flush committed';
COMMENT ON COLUMN shorturl.stats.last_flush_ms IS 'how long the latest flush took, in milliseconds';
COMMENT ON COLUMN shorturl.stats.purged IS 'links deleted by purges since the server started';
COMMENT ON COLUMN shorturl.stats.last_purge_at IS 'when the latest purge batch ran';
COMMENT ON COLUMN shorturl.stats.room_waits IS 'clicks that waited for a flush because the counter table was full';
COMMENT ON COLUMN shorturl.stats.sync_fallbacks IS 'clicks counted synchronously because the counter table stayed full';
COMMENT ON COLUMN shorturl.stats.refused_clicks IS 'clicks of limited links refused because they could only have been counted where a rollback could undo them';
COMMENT ON COLUMN shorturl.stats.dropped_deltas IS 'clicks dropped because their link was deleted before they were flushed';
COMMENT ON COLUMN shorturl.stats.worker_pid IS 'process id of the worker serving this database; NULL when none runs';
COMMENT ON COLUMN shorturl.stats.last_error IS 'message of the latest error of a flush or purge';
COMMENT ON COLUMN shorturl.stats.last_error_at IS 'when that error happened';
COMMENT ON COLUMN shorturl.stats.max_pending_links IS 'the setting shorturl.max_pending_links: links the counter table can hold';
COMMENT ON COLUMN shorturl.stats.pending_dimension_values IS 'dimension values (link, day, dimension, value) of this database held in shared memory, not yet written';
COMMENT ON COLUMN shorturl.stats.pending_visitors IS 'visitors (link, day, visitor) of this database held in shared memory, not yet written';
COMMENT ON COLUMN shorturl.stats.dimension_overflow IS 'dimension values counted as "other" because shared memory had no room for them';
COMMENT ON COLUMN shorturl.stats.dimension_dropped IS 'dimension values not kept because shared memory had no room, not even for "other" (the clicks still count)';
COMMENT ON COLUMN shorturl.stats.visitors_dropped IS 'visitors not kept for unique_visitors() because shared memory had no room (the clicks still count)';
COMMENT ON COLUMN shorturl.stats.max_pending_dimensions IS 'shorturl.max_pending_dimensions: the dimension values shared memory can hold';
COMMENT ON COLUMN shorturl.stats.max_pending_visitors IS 'shorturl.max_pending_visitors: the visitors shared memory can hold';
COMMENT ON COLUMN shorturl.stats.scan_clients_blocked IS 'times a client of resolve() or link_status() passed shorturl.scan_limit and was blocked, since the server started';
COMMENT ON COLUMN shorturl.stats.scan_lookups_blocked IS 'lookups answered NULL or unknown because their client was blocked for scanning';
COMMENT ON COLUMN shorturl.stats.host_lookups_blocked IS 'lookups of links whose host is in shorturl.blocked_hosts (answered NULL or blocked)';
COMMENT ON COLUMN shorturl.stats.rate_keys IS 'keys in the rate-limit table, of every database: rate_limit() keys, scanning clients, owners with a quota';
COMMENT ON COLUMN shorturl.stats.rate_keys_reclaimed IS 'keys with full buckets forgotten to make room, since the server started (every database)';
COMMENT ON COLUMN shorturl.stats.rate_keys_full IS 'requests of new keys the full table had no room for, answered by shorturl.rate_limit_when_full (every database)';
COMMENT ON COLUMN shorturl.stats.max_rate_keys IS 'shorturl.max_rate_keys: the keys the rate-limit table can hold';
COMMENT ON COLUMN shorturl.stats.url_cache_hits IS 'lookups of resolve(), link_status() and visits() the URL cache answered, since the server started (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_misses IS 'lookups the URL cache could not answer, which read shorturl.links (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_fills IS 'links put into the URL cache after a miss (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_rejected IS 'links not put into the full URL cache because they were asked for less often than the entry they would have replaced (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_evictions IS 'entries pushed out of the full URL cache to make room (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_invalidations IS 'links whose entries committing transactions evicted because they updated or deleted them, plus whole-database clears (a TRUNCATE, an ALTER TABLE of shorturl.links, an update script, over 10,000 links in one transaction) (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_entries IS 'links in the URL cache now (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_bytes IS 'bytes of the URL cache that its entries use now (every database)';
COMMENT ON COLUMN shorturl.stats.url_cache_size IS 'bytes of shared memory the URL cache has (shorturl.url_cache_size with its index and frequency sketch); NULL when there is no cache';

COMMENT ON COLUMN shorturl.stats.unshipped_visits IS 'on a standby: clicks counted here that the primary has not acknowledged yet (pending and in flight); NULL on a primary';
COMMENT ON COLUMN shorturl.stats.shipped_visits IS 'on a standby: clicks the primary acknowledged, since the server started';
COMMENT ON COLUMN shorturl.stats.ship_batches IS 'on a standby: batches the primary acknowledged, since the server started';
COMMENT ON COLUMN shorturl.stats.ship_failures IS 'on a standby: attempts to ship that failed (no connection, no answer within shorturl.ship_timeout, an error), since the server started';
COMMENT ON COLUMN shorturl.stats.last_ship_at IS 'on a standby: when the primary last acknowledged a batch';
COMMENT ON COLUMN shorturl.stats.standby_dropped IS 'on a standby: clicks served but not counted, because shared memory was full (the primary unreachable for long)';

GRANT SELECT ON shorturl.stats TO PUBLIC;

-- The same function with six more metrics, from the columns above, and
-- the help of shorturl_mode_info for a standby that counts.  CREATE OR
-- REPLACE keeps its grants (pg_monitor) and its comment.
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
     'How this database counts clicks, in the label mode: shared (in shared memory, written by flushes), sync (in the clicking transaction) or standby (a hot standby, which counts clicks in shared memory and ships them to the primary; with shorturl.ship_interval = 0 or without preloading it counts nothing). Always 1. In sync mode, and on a standby that does not ship, the figures of shared memory are NaN.'),
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
     'Lookups of resolve(), link_status() and visits() the URL cache answered, every database of the server; NaN without a cache (shorturl.url_cache_size = 0, or the library not preloaded).'),
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
     'Bytes of shared memory the URL cache has (shorturl.url_cache_size with its index and frequency sketch).'),
    ('shorturl_ship_unshipped_visits', 'gauge', s.unshipped_visits, '',
     'On a standby: clicks counted there that the primary has not acknowledged yet (pending and in flight); NaN on a primary.'),
    ('shorturl_ship_visits_total', 'counter', s.shipped_visits, '',
     'On a standby: clicks the primary acknowledged.'),
    ('shorturl_ship_batches_total', 'counter', s.ship_batches, '',
     'On a standby: batches of clicks the primary acknowledged.'),
    ('shorturl_ship_failures_total', 'counter', s.ship_failures, '',
     'On a standby: attempts to ship that failed (no connection, no answer within shorturl.ship_timeout, an error of the primary).'),
    ('shorturl_ship_last_timestamp_seconds', 'gauge', extract(epoch FROM s.last_ship_at)::double precision, '',
     'On a standby: when the primary last acknowledged a batch, in seconds since the Unix epoch; NaN before the first.'),
    ('shorturl_ship_dropped_visits_total', 'counter', s.standby_dropped, '',
     'On a standby: clicks served but not counted because the shared counter table was full (the primary unreachable for long).')
) m(name, type, value, labels, help)
$$;
