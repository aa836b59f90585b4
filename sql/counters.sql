--
-- counters: the shared-memory click counters as SQL sees them: the stats
-- view, shorturl.flush(), shorturl.purge_expired() and the settings.  The
-- test server preloads the library and its worker serves this database,
-- flushing and purging only hourly (test/pg_shorturl.conf), so this file
-- decides when flushes and purges happen.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'

-- wait for the worker, which starts a second after the database appears
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity
                          WHERE backend_type = 'pg_shorturl worker'
                            AND datname = current_database());
        PERFORM pg_sleep(0.1);
        -- pg_stat_activity is read once per transaction unless cleared
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END $$;

-- The view: one row, every column commented; this database is served.
SELECT mode, worker_pid IS NOT NULL AS worker_runs, max_pending_links FROM shorturl.stats;
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = 'shorturl.stats'::regclass AND a.attnum > 0
  AND col_description(a.attrelid, a.attnum) IS NULL;
-- the worker shows in pg_stat_activity under its own name
SELECT backend_type, application_name, datname = current_database() AS here
FROM pg_stat_activity WHERE backend_type LIKE 'pg_shorturl%' ORDER BY 1;

-- Every setting exists, with its context and unit.
SELECT name, setting, unit, context, short_desc <> '' AS described
FROM pg_settings WHERE name LIKE 'shorturl.%' ORDER BY name;

-- purge_expired: max_rows must not be negative (22023)
SELECT shorturl.purge_expired(-1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- flush and purge are the owner's, like the tables (42501 for others)
CREATE ROLE regress_shorturl_cron;
SET ROLE regress_shorturl_cron;
SELECT shorturl.flush();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.purge_expired();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- but anyone may read the statistics
SELECT mode FROM shorturl.stats;
RESET ROLE;
DROP ROLE regress_shorturl_cron;

-- Clicks wait in shared memory; the table learns of them at a flush.
SELECT shorturl.flush() >= 0 AS clean_start;
SELECT shorturl.shorten('https://example.com/hot', alias => 'hot');
SELECT count(shorturl.resolve('hot')) AS clicks FROM generate_series(1, 1000);
SELECT shorturl.visits('hot') AS live, visits AS in_table FROM shorturl.links WHERE code = 'hot';
SELECT pending_links, pending_visits FROM shorturl.stats;
SELECT shorturl.flush() AS flushed;
SELECT shorturl.visits('hot') AS live, visits AS in_table, last_visit_at IS NOT NULL AS visited
FROM shorturl.links WHERE code = 'hot';
SELECT pending_links, pending_visits FROM shorturl.stats;
-- nothing left: the next flush writes nothing
SELECT shorturl.flush() AS flushed;

-- A second flush in the same transaction writes nothing more (the first one's
-- clicks leave shared memory only when it commits).
BEGIN;
SELECT count(shorturl.resolve('hot')) AS clicks FROM generate_series(1, 5);
SELECT shorturl.flush() AS first, shorturl.flush() AS second;
COMMIT;
SELECT shorturl.visits('hot') AS live, visits AS in_table FROM shorturl.links WHERE code = 'hot';

-- A flush in a subtransaction that rolls back writes nothing and loses nothing.
SELECT count(shorturl.resolve('hot')) AS clicks FROM generate_series(1, 7);
BEGIN;
SAVEPOINT s;
SELECT shorturl.flush() AS in_savepoint;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT shorturl.visits('hot') AS live, visits AS in_table FROM shorturl.links WHERE code = 'hot';
SELECT shorturl.flush() AS flushed_after;
SELECT visits AS in_table FROM shorturl.links WHERE code = 'hot';

-- A click counts even if the resolving transaction rolls back: a redirect
-- that was served was a visit.
BEGIN;
SELECT shorturl.resolve('hot') IS NOT NULL AS served;
ROLLBACK;
SELECT shorturl.visits('hot') AS live;

-- Reaching max_visits marks the link exhausted in the table at the flush.
SELECT shorturl.shorten('https://example.com/three', max_visits => 3, alias => 'three');
SELECT count(shorturl.resolve('three')) AS served FROM generate_series(1, 5);
SELECT exhausted_at IS NULL AS not_yet_marked FROM shorturl.links WHERE code = 'three';
SELECT shorturl.flush() AS flushed;
SELECT visits, exhausted_at IS NOT NULL AS marked FROM shorturl.links WHERE code = 'three';

-- purge_expired: expired links go at once, exhausted ones after purge_grace.
SELECT shorturl.shorten('https://example.com/e' || i, expires_at => now() + interval '1 hour') IS NOT NULL
FROM generate_series(1, 5) i;
UPDATE shorturl.links SET expires_at = now() - interval '1 minute' WHERE url LIKE 'https://example.com/e%';
SET shorturl.purge_batch_size = 2;
-- max_rows bounds one call
SELECT shorturl.purge_expired(3) AS purged;
-- the rest, in batches of two; 'three' is exhausted but within its grace
SELECT shorturl.purge_expired() AS purged;
SELECT shorturl.link_status('three');
SET shorturl.purge_grace = 0;
SELECT shorturl.purge_expired() AS purged;
SELECT shorturl.link_status('three');
RESET shorturl.purge_grace;
RESET shorturl.purge_batch_size;
SELECT purged >= 6 AS counted FROM shorturl.stats;

-- The alias of a purged link is quarantined for shorturl.alias_quarantine;
-- with the quarantine at zero it is free again at once.
SELECT alias, released_at - deleted_at AS quarantine FROM shorturl.alias_quarantine;
\set VERBOSITY terse
SELECT shorturl.shorten('https://example.com/new-owner', alias => 'three');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SET shorturl.alias_quarantine = 0;
DELETE FROM shorturl.links WHERE code = 'hot';
SELECT shorturl.shorten('https://example.com/new-hot', alias => 'hot');
RESET shorturl.alias_quarantine;
-- the new link starts from zero: nothing of the old one's count carries over
SELECT shorturl.visits('hot') AS new_link_visits;

DROP EXTENSION pg_shorturl;
