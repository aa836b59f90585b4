/* pg_shorturl--0.3--0.4.sql: click counters in shared memory, flush and purge */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.4'" to load this file. \quit

CREATE FUNCTION shorturl.flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_flush'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.flush() IS
'writes this database''s click counters from shared memory to shorturl.links now, in this transaction; returns the visits written';

CREATE FUNCTION shorturl.purge_expired(max_rows integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_purge_expired'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.purge_expired(integer) IS
'deletes expired links, and links exhausted longer than shorturl.purge_grace ago, in batches of shorturl.purge_batch_size within this transaction; at most max_rows (NULL: all); returns the links deleted';

REVOKE ALL ON FUNCTION shorturl.flush() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.purge_expired(integer) FROM PUBLIC;

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
    OUT sync_fallbacks bigint,
    OUT dropped_deltas bigint,
    OUT worker_pid integer,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT max_pending_links integer)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the background worker: mode, pending clicks, flushes, purges, fallbacks, errors';
COMMENT ON COLUMN shorturl.stats.mode IS
'shared: clicks in this database are counted in shared memory and flushed by the worker; sync: each click updates its row';
COMMENT ON COLUMN shorturl.stats.pending_links IS 'links of this database with clicks not yet written to shorturl.links';
COMMENT ON COLUMN shorturl.stats.pending_visits IS 'clicks of this database not yet written to shorturl.links';
COMMENT ON COLUMN shorturl.stats.flushed_visits IS 'clicks written to the table by flushes since the server started';
COMMENT ON COLUMN shorturl.stats.flushes IS 'flushes committed since the server started';
COMMENT ON COLUMN shorturl.stats.last_flush_at IS 'when the latest flush committed';
COMMENT ON COLUMN shorturl.stats.last_flush_ms IS 'how long the latest flush took, in milliseconds';
COMMENT ON COLUMN shorturl.stats.purged IS 'links deleted by purges since the server started';
COMMENT ON COLUMN shorturl.stats.last_purge_at IS 'when the latest purge batch ran';
COMMENT ON COLUMN shorturl.stats.sync_fallbacks IS 'clicks counted synchronously because the counter table was full';
COMMENT ON COLUMN shorturl.stats.dropped_deltas IS 'clicks dropped because their link was deleted before they were flushed';
COMMENT ON COLUMN shorturl.stats.worker_pid IS 'process id of the worker; NULL when none runs';
COMMENT ON COLUMN shorturl.stats.last_error IS 'message of the latest error of a flush or purge';
COMMENT ON COLUMN shorturl.stats.last_error_at IS 'when that error happened';
COMMENT ON COLUMN shorturl.stats.max_pending_links IS 'the setting shorturl.max_pending_links: links the counter table can hold';

GRANT SELECT ON shorturl.stats TO PUBLIC;
