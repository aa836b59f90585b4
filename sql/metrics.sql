--
-- metrics: shorturl.metrics(), shorturl.stats and the number of links in
-- the Prometheus text format.  Its labels and privileges first, then the
-- format (a HELP and a TYPE line before each sample, counters named
-- _total, the datname label), then every value against shorturl.stats
-- after known traffic and a flush, then a database the workers do not
-- serve (NaN for what shorturl.stats leaves NULL) whose name needs
-- escaping.  Values are compared in SQL, never printed, so the output
-- holds no timestamps or pids.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'

-- labels, security, pinned settings and a comment; pg_monitor may call
-- it, PUBLIC may not
SELECT p.oid::regprocedure AS function, p.provolatile AS vol, p.proisstrict AS strict,
       p.proparallel AS par, p.prosecdef AS secdef, p.proconfig AS config,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
       has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS monitor_exec
FROM pg_proc p
WHERE p.oid = 'shorturl.metrics()'::regprocedure;

-- a plain role cannot read the metrics (42501)
CREATE ROLE regress_metrics_plain;
SET ROLE regress_metrics_plain;
SELECT shorturl.metrics() IS NOT NULL AS plain_reads;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a member of pg_monitor, not a superuser, can
CREATE ROLE regress_metrics_monitor IN ROLE pg_monitor;
SET ROLE regress_metrics_monitor;
SELECT shorturl.metrics() LIKE '%' || E'\nshorturl_mode_info{datname="contrib_regression",mode="shared"} 1\n' || '%'
       AS monitor_reads;
RESET ROLE;

-- wait for the worker, which starts once the extension is created (and
-- flushes at once: the figures below are deltas, whoever flushed)
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity
                          WHERE backend_type = 'pg_shorturl worker'
                            AND datname = current_database());
        PERFORM pg_sleep(0.1);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END $$;
SELECT mode, worker_pid IS NOT NULL AS worker_runs FROM shorturl.stats;
CREATE TEMP TABLE before AS SELECT * FROM shorturl.stats;

-- known traffic: three links, eight clicks of two of them, a miss that
-- counts nothing, then a flush
SELECT shorturl.shorten('https://example.com/m' || i, alias => 'metrics-' || i) AS code
FROM generate_series(1, 3) i;
SELECT count(shorturl.resolve('metrics-1')) AS clicks FROM generate_series(1, 5);
SELECT count(shorturl.resolve('metrics-2')) AS clicks FROM generate_series(1, 3);
SELECT shorturl.resolve('metrics-none') AS miss;
SELECT shorturl.flush() >= 0 AS flushed;
-- this session's inserts reach the statistics system when it goes idle
SELECT pg_stat_force_next_flush();

-- The metrics and shorturl.stats, read in one transaction that holds the
-- flush lock (a flush of nothing), so that no flush of the worker comes
-- in between: both see the same figures.
BEGIN;
SELECT shorturl.flush() AS nothing_left;
CREATE TEMP TABLE metric_text AS SELECT shorturl.metrics() AS t;
CREATE TEMP TABLE stats_now AS SELECT * FROM shorturl.stats;
CREATE TEMP TABLE links_now AS SELECT count(*) AS counted FROM shorturl.links;
COMMIT;

-- the text's lines, and what each says
CREATE TEMP TABLE lines AS
SELECT l.n, l.line,
       regexp_match(l.line, '^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$') AS help,
       regexp_match(l.line, '^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$') AS type,
       regexp_match(l.line, '^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} ([^ ]+)$') AS sample
FROM metric_text, regexp_split_to_table(rtrim(t, E'\n'), E'\n') WITH ORDINALITY AS l(line, n);
CREATE TEMP TABLE samples AS
SELECT n, sample[1] AS name, sample[2] AS labels, sample[3] AS value
FROM lines WHERE sample IS NOT NULL;

-- the text ends with a line feed, has no empty line, and every line is a
-- HELP, a TYPE or a sample
SELECT right(t, 1) = E'\n' AS ends_with_newline, strpos(t, E'\n\n') = 0 AS no_empty_line,
       (SELECT count(*) FROM lines WHERE help IS NULL AND type IS NULL AND sample IS NULL) AS other_lines,
       (SELECT count(*) FROM samples) AS samples,
       (SELECT count(DISTINCT name) FROM samples) AS names
FROM metric_text;
-- no HELP or TYPE without its sample, none twice
SELECT l.line FROM lines l
WHERE l.sample IS NULL
  AND (NOT EXISTS (SELECT FROM samples s WHERE s.name = coalesce(l.help[1], l.type[1]))
       OR (SELECT count(*) FROM lines o WHERE o.help[1] = l.help[1] OR o.type[1] = l.type[1]) > 1);

-- What shorturl.stats says for each metric: NULL is NaN, as
-- postgres_exporter reports a NULL column
CREATE TEMP TABLE expected AS
SELECT e.name, coalesce(e.value, 'NaN') AS value
FROM stats_now s, links_now l, LATERAL (VALUES
    ('shorturl_mode_info', 1::float8),
    ('shorturl_links', l.counted),
    ('shorturl_pending_links', s.pending_links),
    ('shorturl_pending_visits', s.pending_visits),
    ('shorturl_flushed_visits_total', s.flushed_visits),
    ('shorturl_flushes_total', s.flushes),
    ('shorturl_last_flush_timestamp_seconds', extract(epoch FROM s.last_flush_at)),
    ('shorturl_last_flush_duration_seconds', s.last_flush_ms / 1000),
    ('shorturl_purged_links_total', s.purged),
    ('shorturl_last_purge_timestamp_seconds', extract(epoch FROM s.last_purge_at)),
    ('shorturl_room_waits_total', s.room_waits),
    ('shorturl_sync_fallbacks_total', s.sync_fallbacks),
    ('shorturl_refused_clicks_total', s.refused_clicks),
    ('shorturl_dropped_visits_total', s.dropped_deltas),
    ('shorturl_worker_pid', s.worker_pid),
    ('shorturl_last_error_timestamp_seconds', extract(epoch FROM s.last_error_at)),
    ('shorturl_max_pending_links', s.max_pending_links),
    ('shorturl_pending_dimension_values', s.pending_dimension_values),
    ('shorturl_pending_visitors', s.pending_visitors),
    ('shorturl_dimension_overflow_total', s.dimension_overflow),
    ('shorturl_dimension_dropped_total', s.dimension_dropped),
    ('shorturl_visitors_dropped_total', s.visitors_dropped),
    ('shorturl_max_pending_dimensions', s.max_pending_dimensions),
    ('shorturl_max_pending_visitors', s.max_pending_visitors),
    ('shorturl_scan_clients_blocked_total', s.scan_clients_blocked),
    ('shorturl_scan_lookups_blocked_total', s.scan_lookups_blocked),
    ('shorturl_host_lookups_blocked_total', s.host_lookups_blocked),
    ('shorturl_rate_keys', s.rate_keys),
    ('shorturl_rate_keys_reclaimed_total', s.rate_keys_reclaimed),
    ('shorturl_rate_keys_full_total', s.rate_keys_full),
    ('shorturl_max_rate_keys', s.max_rate_keys),
    ('shorturl_url_cache_hits_total', s.url_cache_hits),
    ('shorturl_url_cache_misses_total', s.url_cache_misses),
    ('shorturl_url_cache_fills_total', s.url_cache_fills),
    ('shorturl_url_cache_rejected_total', s.url_cache_rejected),
    ('shorturl_url_cache_evictions_total', s.url_cache_evictions),
    ('shorturl_url_cache_invalidations_total', s.url_cache_invalidations),
    ('shorturl_url_cache_entries', s.url_cache_entries),
    ('shorturl_url_cache_used_bytes', s.url_cache_bytes),
    ('shorturl_url_cache_size_bytes', s.url_cache_size),
    ('shorturl_ship_unshipped_visits', s.unshipped_visits),
    ('shorturl_ship_visits_total', s.shipped_visits),
    ('shorturl_ship_batches_total', s.ship_batches),
    ('shorturl_ship_failures_total', s.ship_failures),
    ('shorturl_ship_last_timestamp_seconds', extract(epoch FROM s.last_ship_at)),
    ('shorturl_ship_dropped_visits_total', s.standby_dropped)) e(name, value);

-- Each metric: its type; a HELP and a TYPE line before its sample; the
-- counters, and only they, named _total; its labels; its value what
-- shorturl.stats says (shorturl_links: what count(*) says, the
-- statistics system being up to date here)
SELECT s.name, t.type[2] AS type,
       h.n < s.n AND t.n < s.n AS described,
       (t.type[2] = 'counter') = (s.name LIKE '%\_total') AS total_iff_counter,
       s.labels,
       s.value::float8 = e.value AS equals_stats
FROM samples s
LEFT JOIN lines h ON h.help[1] = s.name
LEFT JOIN lines t ON t.type[1] = s.name
FULL JOIN expected e ON e.name = s.name
ORDER BY coalesce(s.name, e.name);
-- HELP says something for each
SELECT count(*) AS helpless FROM lines WHERE help IS NOT NULL AND length(help[2]) < 20;

-- the known traffic, as the metrics show it
SELECT (SELECT value::float8 FROM samples WHERE name = 'shorturl_flushed_visits_total')
         - b.flushed_visits AS visits_flushed,
       (SELECT value::float8 FROM samples WHERE name = 'shorturl_flushes_total')
         > b.flushes AS flushes_grew,
       (SELECT value FROM samples WHERE name = 'shorturl_pending_visits') AS pending_visits,
       (SELECT value FROM samples WHERE name = 'shorturl_pending_links') AS pending_links,
       (SELECT value FROM samples WHERE name = 'shorturl_links') AS links,
       (SELECT value FROM samples WHERE name = 'shorturl_last_flush_timestamp_seconds')
         <> 'NaN' AS flush_time_known
FROM before b;

-- Whatever the session set, a double prints in full (the function pins
-- extra_float_digits): the timestamp reads back as the same double
SET extra_float_digits = -15;
SELECT (SELECT v[1]::float8 FROM regexp_split_to_table(shorturl.metrics(), E'\n') l,
               regexp_match(l, '^shorturl_last_flush_timestamp_seconds\{.*\} (.*)$') v
         WHERE v IS NOT NULL)
       = extract(epoch FROM last_flush_at)::float8 AS exact_timestamp
FROM shorturl.stats;
RESET extra_float_digits;

--
-- A database the workers do not serve (sync mode), whose name needs
-- escaping: a quote, a backslash and a line feed
--
CREATE DATABASE "regress_metrics ""sync"" \ db
two";
SELECT datname AS sync_db FROM pg_database WHERE datname LIKE 'regress\_metrics %' \gset
\c :"sync_db"
CREATE EXTENSION pg_shorturl;
-- the datname label escaped per the format, the mode sync
SELECT l AS line FROM regexp_split_to_table(shorturl.metrics(), E'\n') l
WHERE l LIKE 'shorturl\_mode\_info{%';
-- shorturl.stats is NULL in sync mode but for the rate-limit table and
-- the URL cache (the server's): 31 metrics are NaN (the six of shipping too); the others say what
-- shorturl.stats and the statistics system say
SELECT count(*) AS nan FROM regexp_split_to_table(shorturl.metrics(), E'\n') l
WHERE l LIKE '% NaN' AND l NOT LIKE 'shorturl\_url\_cache\_%';
-- the URL cache's nine: the server's figures, NaN only where it has no
-- cache (the suite runs with and without one)
SELECT count(*) AS url_cache_metrics,
       bool_and(v[2]::float8 = coalesce((CASE v[1]
           WHEN 'shorturl_url_cache_hits_total' THEN s.url_cache_hits
           WHEN 'shorturl_url_cache_misses_total' THEN s.url_cache_misses
           WHEN 'shorturl_url_cache_fills_total' THEN s.url_cache_fills
           WHEN 'shorturl_url_cache_rejected_total' THEN s.url_cache_rejected
           WHEN 'shorturl_url_cache_evictions_total' THEN s.url_cache_evictions
           WHEN 'shorturl_url_cache_invalidations_total' THEN s.url_cache_invalidations
           WHEN 'shorturl_url_cache_entries' THEN s.url_cache_entries
           WHEN 'shorturl_url_cache_used_bytes' THEN s.url_cache_bytes
           WHEN 'shorturl_url_cache_size_bytes' THEN s.url_cache_size END)::float8, 'NaN'))
         AS equal_stats,
       bool_and((v[2] = 'NaN') = (s.url_cache_size IS NULL)) AS nan_iff_no_cache
FROM shorturl.stats s, regexp_split_to_table(shorturl.metrics(), E'\n') l,
     regexp_match(l, '^(shorturl_url_cache_[a-z_]+)\{.*\} (.*)$') v
WHERE v IS NOT NULL;
SELECT v[1] AS name, v[2]::float8 = CASE v[1]
           WHEN 'shorturl_mode_info' THEN 1
           WHEN 'shorturl_links' THEN pg_stat_get_live_tuples('shorturl.links'::regclass)
           WHEN 'shorturl_rate_keys' THEN s.rate_keys
           WHEN 'shorturl_rate_keys_reclaimed_total' THEN s.rate_keys_reclaimed
           WHEN 'shorturl_rate_keys_full_total' THEN s.rate_keys_full
           WHEN 'shorturl_max_rate_keys' THEN s.max_rate_keys END AS equals_stats
FROM shorturl.stats s, regexp_split_to_table(shorturl.metrics(), E'\n') l,
     regexp_match(l, '^([a-z_]+)\{.*\} (.*)$') v
WHERE v[2] <> 'NaN' AND v[1] NOT LIKE 'shorturl\_url\_cache\_%'
ORDER BY 1;
\c contrib_regression
DROP DATABASE :"sync_db";

DROP EXTENSION pg_shorturl;
DROP ROLE regress_metrics_plain;
DROP ROLE regress_metrics_monitor;
