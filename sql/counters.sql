--
-- counters: the shared-memory click counters as SQL sees them: the stats
-- view, shorturl.flush(), shorturl.purge_expired(), shorturl.reset_visits()
-- and the settings.  The test server preloads the library and a worker
-- serves this database, flushing and purging only hourly
-- (test/pg_shorturl.conf), so this file decides when flushes and purges
-- happen.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'
-- what the tables hold, next to the live count
CREATE FUNCTION pg_temp.stored(c text) RETURNS TABLE (live bigint, in_table bigint, visited boolean, exhausted boolean)
LANGUAGE sql AS $$
    SELECT shorturl.visits(c), coalesce(v.visits, 0) +
           coalesce((SELECT sum(p.visits) FROM shorturl.pending_visits p WHERE p.link_id = l.id), 0),
           v.last_visit_at IS NOT NULL, l.exhausted_at IS NOT NULL
    FROM shorturl.links l LEFT JOIN shorturl.visit_counts v ON v.link_id = l.id
    WHERE l.code = c
$$;

-- wait for the worker, which starts once the extension is created
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

-- Every setting exists, with its default, context and unit (the defaults,
-- not this server's values, which test/pg_shorturl.conf and a suite run
-- with another configuration change).
SELECT name, boot_val, unit, context, short_desc <> '' AS described
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
SELECT live, in_table FROM pg_temp.stored('hot');
SELECT pending_links, pending_visits FROM shorturl.stats;
SELECT shorturl.flush() AS flushed;
SELECT live, in_table, visited FROM pg_temp.stored('hot');
SELECT pending_links, pending_visits FROM shorturl.stats;
-- nothing left: the next flush writes nothing
SELECT shorturl.flush() AS flushed;

-- A second flush in the same transaction writes nothing more (the first one's
-- clicks leave shared memory only when it commits).
BEGIN;
SELECT count(shorturl.resolve('hot')) AS clicks FROM generate_series(1, 5);
SELECT shorturl.flush() AS first, shorturl.flush() AS second;
COMMIT;
SELECT live, in_table FROM pg_temp.stored('hot');

-- A flush in a subtransaction that rolls back writes nothing and loses nothing.
SELECT count(shorturl.resolve('hot')) AS clicks FROM generate_series(1, 7);
BEGIN;
SAVEPOINT s;
SELECT shorturl.flush() AS in_savepoint;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT live, in_table FROM pg_temp.stored('hot');
SELECT shorturl.flush() AS flushed_after;
SELECT in_table FROM pg_temp.stored('hot');

-- A click counts even if the resolving transaction rolls back: a redirect
-- that was served was a visit.
BEGIN;
SELECT shorturl.resolve('hot') IS NOT NULL AS served;
ROLLBACK;
SELECT shorturl.visits('hot') AS live;
-- so a limited link cannot be served again by rolling its clicks back: 0.5
-- served a max_visits = 1 link 100 times from a loop that raised an error
-- after each resolve (where clicks were counted with an UPDATE)
SELECT shorturl.shorten('https://example.com/once', max_visits => 1, alias => 'once');
CREATE FUNCTION pg_temp.served_in_loop(c text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE served integer := 0;
BEGIN
    FOR i IN 1..100 LOOP
        BEGIN
            IF shorturl.resolve(c) IS NOT NULL THEN
                served := served + 1;
            END IF;
            RAISE EXCEPTION 'roll the click back';
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
    RETURN served;
END $$;
SELECT pg_temp.served_in_loop('once') AS served, shorturl.visits('once') AS visits;
-- and a read-only transaction counts in shared memory, without an error
SELECT shorturl.shorten('https://example.com/ro', max_visits => 5, alias => 'ro');
BEGIN READ ONLY;
SELECT shorturl.resolve('ro') AS read_only;
COMMIT;
SELECT shorturl.visits('ro') AS visits;

-- Reaching max_visits marks the link exhausted in the table at the flush.
SELECT shorturl.shorten('https://example.com/three', max_visits => 3, alias => 'three');
SELECT count(shorturl.resolve('three')) AS served FROM generate_series(1, 5);
SELECT NOT exhausted AS not_yet_marked FROM pg_temp.stored('three');
SELECT shorturl.flush() AS flushed;
SELECT in_table, exhausted AS marked FROM pg_temp.stored('three');

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

-- The alias of a purged link is retired for good (23505).
SELECT code FROM shorturl.retired_codes ORDER BY code;
SELECT shorturl.shorten('https://example.com/new-owner', alias => 'three');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Counters know a link by its id, which no other link ever has.  0.5 keyed
-- them by code and creation time, equal within a transaction, so an alias
-- deleted and made again in one transaction inherited the old link's
-- unflushed clicks and was born exhausted.
SELECT shorturl.shorten('https://example.com/first', alias => 'reborn', max_visits => 3);
SELECT count(shorturl.resolve('reborn')) AS clicks FROM generate_series(1, 3);
BEGIN;
DELETE FROM shorturl.links WHERE code = 'reborn';
-- (the owner releases a retired alias on purpose)
DELETE FROM shorturl.retired_codes WHERE code = 'reborn';
SELECT shorturl.shorten('https://example.com/second', alias => 'reborn', max_visits => 3);
SELECT shorturl.visits('reborn') AS new_link_visits, shorturl.link_status('reborn') AS status;
COMMIT;
SELECT shorturl.resolve('reborn') AS resolves, shorturl.visits('reborn') AS visits;
-- the old link's clicks were dropped at the flush, and counted as such
SELECT dropped_deltas AS before_flush FROM shorturl.stats \gset
SELECT shorturl.flush() AS flushed;
SELECT dropped_deltas - :before_flush AS dropped FROM shorturl.stats;

-- Resetting a count: the tables and shared memory hold parts of it, so the
-- owner resets it with reset_visits(), exactly (0.5 kept the shared count
-- after an UPDATE of the table, until a restart).
SELECT shorturl.shorten('https://example.com/reset', alias => 'reset-me', max_visits => 10);
SELECT count(shorturl.resolve('reset-me')) AS clicks FROM generate_series(1, 4);
SELECT shorturl.flush() > 0 AS flushed;
SELECT count(shorturl.resolve('reset-me')) AS more_clicks FROM generate_series(1, 3);
-- a reset that rolls back loses nothing
BEGIN;
SELECT shorturl.reset_visits('reset-me') AS had;
ROLLBACK;
SELECT live, in_table FROM pg_temp.stored('reset-me');
-- a reset that commits counts from zero: unflushed clicks included
SELECT shorturl.reset_visits('reset-me') AS had;
SELECT live, in_table FROM pg_temp.stored('reset-me');
-- the limit counts from zero again too: 10 more visits, then exhausted
SELECT count(shorturl.resolve('reset-me')) AS served FROM generate_series(1, 12);
SELECT shorturl.visits('reset-me') AS visits, shorturl.link_status('reset-me') AS status;
SELECT shorturl.reset_visits('no-such-code') AS unknown;
-- a flush in the transaction of a reset writes the other links' clicks;
-- the reset link's new clicks wait for the next flush; a reset alone is
-- no flush in the statistics
SELECT shorturl.shorten('https://example.com/other', alias => 'other-link'),
       shorturl.shorten('https://example.com/third', alias => 'third-link');
SELECT count(shorturl.resolve(c)) AS clicks
FROM unnest('{other-link,third-link}'::text[]) AS c, generate_series(1, 5);
SELECT flushes AS flushes_before FROM shorturl.stats \gset
BEGIN;
SELECT shorturl.reset_visits('third-link') AS had;
SELECT count(shorturl.resolve('third-link')) AS new_clicks FROM generate_series(1, 2);
SELECT shorturl.flush() AS flushed;
COMMIT;
SELECT live, in_table FROM pg_temp.stored('other-link');
SELECT live, in_table FROM pg_temp.stored('third-link');
SELECT flushes - :flushes_before AS flushes_counted FROM shorturl.stats;
SELECT shorturl.reset_visits('other-link') AS had;
SELECT flushes - :flushes_before AS flushes_counted FROM shorturl.stats;

-- What a subtransaction adds to the transaction's flush goes with it when it
-- rolls back, and nothing else does (0.12 settled the flush as a whole by
-- the subtransaction where it began: a flush rolled back in a savepoint
-- after a reset in the same transaction was taken as written at the
-- commit, and a reset rolled back after a flush as made; both lost
-- clicks).  A flush in a savepoint that rolls back, after a reset:
SELECT count(shorturl.resolve(c)) AS clicks
FROM unnest('{other-link,third-link}'::text[]) AS c, generate_series(1, 3);
SELECT live AS third_live, in_table AS third_in_table FROM pg_temp.stored('third-link') \gset
BEGIN;
SELECT shorturl.reset_visits('other-link') AS had;
SAVEPOINT s;
SELECT shorturl.flush() > 0 AS flushed_in_savepoint;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT live, in_table FROM pg_temp.stored('other-link');
SELECT live - :third_live AS live_change, in_table - :third_in_table AS stored_change
FROM pg_temp.stored('third-link');
-- ... and the flush after it writes them
SELECT shorturl.flush() > 0 AS flushed;
SELECT live - :third_live AS live_change, in_table - :third_in_table AS stored_change
FROM pg_temp.stored('third-link');
-- a reset in a savepoint that rolls back, after a flush: the count stands
SELECT count(shorturl.resolve('third-link')) AS clicks FROM generate_series(1, 2);
SELECT live AS third_live FROM pg_temp.stored('third-link') \gset
BEGIN;
SELECT shorturl.flush() > 0 AS flushed;
SAVEPOINT s;
SELECT shorturl.reset_visits('third-link') AS had;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT live - :third_live AS live_change, live = in_table AS all_stored FROM pg_temp.stored('third-link');
-- the same in PL/pgSQL: a flush in a block that fails, in a function that
-- reset a link first; then the flush of the outer transaction, made again
SELECT count(shorturl.resolve(c)) AS clicks
FROM unnest('{other-link,third-link}'::text[]) AS c, generate_series(1, 4);
SELECT live AS third_live FROM pg_temp.stored('third-link') \gset
CREATE FUNCTION pg_temp.reset_then_fail(c text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE flushed bigint;
BEGIN
    PERFORM shorturl.reset_visits(c);
    BEGIN
        PERFORM shorturl.flush();
        RAISE EXCEPTION 'roll the flush back';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    SELECT shorturl.flush() INTO flushed;
    RETURN flushed;
END $$;
SELECT pg_temp.reset_then_fail('other-link') AS flushed_after_the_block;
SELECT live, in_table FROM pg_temp.stored('other-link');
SELECT live - :third_live AS live_change, live = in_table AS all_stored FROM pg_temp.stored('third-link');

DROP FUNCTION pg_temp.stored(text);
DROP EXTENSION pg_shorturl;
