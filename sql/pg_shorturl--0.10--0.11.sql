/* pg_shorturl 0.10 -> 0.11: a cache of hot links in shared memory
 * (shorturl.url_cache_size), kept right by triggers on shorturl.links, and
 * its figures in shorturl.stats; shorturl.copied_links, where a
 * coordinator's rebalance writes down the count each copy carries. */

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.11'" to load this file. \quit

-------------------------------------------------------------------------
-- The URL cache's invalidation (src/urlcache.c has the protocol)
--
-- One trigger function for two triggers: per row before an UPDATE or a
-- DELETE it remembers the link's key, which the transaction evicts just
-- before its commit becomes visible (and until it ends, it does not use
-- the cache); before a TRUNCATE it does the same for the whole database.  ENABLE ALWAYS: a
-- session with session_replication_role = replica (a logical replication
-- apply worker, pg_restore --disable-triggers aside) fires them too.  The
-- cache is used only while links_url_cache is there and fires always, so
-- a disabled trigger turns it off instead of leaving it stale.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._url_cache_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shorturl_url_cache_invalidate'
LANGUAGE C;

COMMENT ON FUNCTION shorturl._url_cache_invalidate() IS
'internal: the triggers links_url_cache and links_url_cache_truncate on shorturl.links, which keep the URL cache from answering with a changed link''s old state';

REVOKE ALL ON FUNCTION shorturl._url_cache_invalidate() FROM PUBLIC;

CREATE TRIGGER links_url_cache
    BEFORE UPDATE OR DELETE ON shorturl.links
    FOR EACH ROW EXECUTE FUNCTION shorturl._url_cache_invalidate();
ALTER TABLE shorturl.links ENABLE ALWAYS TRIGGER links_url_cache;

CREATE TRIGGER links_url_cache_truncate
    BEFORE TRUNCATE ON shorturl.links
    FOR EACH STATEMENT EXECUTE FUNCTION shorturl._url_cache_invalidate();
ALTER TABLE shorturl.links ENABLE ALWAYS TRIGGER links_url_cache_truncate;

CREATE FUNCTION shorturl._url_cache_reset()
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_url_cache_reset'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._url_cache_reset() IS
'internal: forgets this database''s entries in the URL cache, now and when the transaction commits; every update script of pg_shorturl calls it last; false when the server has no cache';

REVOKE ALL ON FUNCTION shorturl._url_cache_reset() FROM PUBLIC;

-- An ALTER TABLE of shorturl.links (disabling and enabling the trigger
-- above, above all: changes made while it is disabled evict nothing) forgets
-- the database's entries when it commits.
CREATE FUNCTION shorturl._url_cache_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- by name, not by a regclass cast, which would need USAGE on the schema
    -- from whoever alters any table of the database
    IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c
               WHERE c.object_type = 'table' AND c.object_identity = 'shorturl.links') THEN
        PERFORM shorturl._url_cache_reset();
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl._url_cache_ddl() IS
'internal: the event trigger pg_shorturl_url_cache, which forgets the database''s URL cache entries when an ALTER TABLE of shorturl.links commits (a trigger disabled and enabled again leaves changes made meanwhile uninvalidated)';

REVOKE ALL ON FUNCTION shorturl._url_cache_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER pg_shorturl_url_cache ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION shorturl._url_cache_ddl();
ALTER EVENT TRIGGER pg_shorturl_url_cache ENABLE ALWAYS;

-------------------------------------------------------------------------
-- shorturl.stats gains the URL cache's figures
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
    OUT url_cache_size bigint)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the worker of this database: mode, unflushed clicks and analytics, flushes, purges, waits, fallbacks, errors; the guards against scanners and blocked hosts; the rate-limit table; the URL cache';
COMMENT ON COLUMN shorturl.stats.mode IS
'shared: clicks are counted in shared memory and flushed by a worker; sync: each click is written in the clicking transaction; standby: a hot standby, which counts nothing';
COMMENT ON COLUMN shorturl.stats.pending_links IS 'links of this database with clicks not yet written to shorturl.visit_counts';
COMMENT ON COLUMN shorturl.stats.pending_visits IS 'clicks of this database held in shared memory, not yet written';
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

GRANT SELECT ON shorturl.stats TO PUBLIC;

-------------------------------------------------------------------------
-- The new shard's record of a rebalance's copies.  A coordinator copies a
-- batch of links here through postgres_fdw, and writes down in its own
-- journal the count each copy carried; postgres_fdw commits the copy here
-- before the coordinator commits its journal, so a coordinator terminated
-- between the two left copies with no record of their counts, and the
-- run after it lost the clicks the old shard counted meanwhile.  From
-- pg_shorturl_coordinator 0.10 on, the copy writes each link's copied
-- count here, in the same transaction as the copy, and the journal takes
-- it from here; forget_arrived() forgets it with the rest.
-------------------------------------------------------------------------

CREATE TABLE shorturl.copied_links (
    id bigint PRIMARY KEY,
    visits bigint NOT NULL CHECK (visits >= 0),
    copied_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.copied_links IS
'links a coordinator''s rebalance copied here, with the count each copy carried, until the coordinator forgets them (forget_arrived)';
COMMENT ON COLUMN shorturl.copied_links.id IS 'the link';
COMMENT ON COLUMN shorturl.copied_links.visits IS 'its count on the old shard that the copy carried (the clicks after it arrive with add_visits)';
COMMENT ON COLUMN shorturl.copied_links.copied_at IS 'when it was copied';
COMMENT ON INDEX shorturl.copied_links_pkey IS 'one row per link copied here';

SELECT pg_catalog.pg_extension_config_dump('shorturl.copied_links', '');
REVOKE ALL ON shorturl.copied_links FROM PUBLIC;

CREATE OR REPLACE FUNCTION shorturl.forget_arrived(ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH copied AS (DELETE FROM shorturl.copied_links WHERE id = ANY (ids)),
         gone AS (DELETE FROM shorturl.arrived_links WHERE id = ANY (ids) RETURNING 1)
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION shorturl.forget_arrived(bigint[]) IS
'shard side of a rebalance: forgets that moved links were copied here and arrived, once the coordinator is done with them';

-------------------------------------------------------------------------
-- Last, as every update script from this one on: whatever the cache holds
-- for this database was read under the old definitions.
-------------------------------------------------------------------------

SELECT shorturl._url_cache_reset();
