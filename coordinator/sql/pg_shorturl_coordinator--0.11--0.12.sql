-- pg_shorturl_coordinator 0.11 -> 0.12: rebalance() retries a batch that a
-- shard refused with a serialization failure.
--
-- postgres_fdw works on each shard in a REPEATABLE READ transaction.  A
-- rerun that copies again a link an earlier, interrupted run had already
-- copied (its copy is live on the new shard, and clicked there) met 40001
-- "could not serialize access due to concurrent update" when the new
-- shard's worker flushed that copy's count after the batch's snapshot
-- (TAP coordinator/t/010_rebalance_retry.pl).  The batch's copy step now
-- rolls back and begins again in a new transaction, up to ten times.

\echo Use "ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.12'" to load this file. \quit

CREATE OR REPLACE PROCEDURE shorturl.rebalance(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    m record;
    shard text;
    pair record;
    batch bigint[];
    n_planned bigint;
    n_moved bigint := 0;
    n_stranded bigint := 0;
    n_dropped integer := 0;
    arrived bigint[];
    fresh bigint[];
    copied bigint[];
    tab record;
    other_pid integer;
    attempts integer;
    copied_all boolean;
BEGIN
    -- procedures that COMMIT cannot have a SET clause: pin the path by hand
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO shorturl.rebalance_state DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT r.running_pid INTO other_pid FROM shorturl.rebalance_state r FOR UPDATE;
    IF other_pid IS NOT NULL AND shorturl._rebalance_running(other_pid) THEN
        RAISE EXCEPTION 'a rebalance is already running (pid %)', other_pid
            USING ERRCODE = 'object_in_use';
    END IF;
    UPDATE shorturl.rebalance_state SET running_pid = pg_catalog.pg_backend_pid(),
           started_at = pg_catalog.now(), finished_at = NULL;
    COMMIT;

    -- what a killed run left half done
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR shard IN SELECT DISTINCT j.source FROM shorturl.rebalance_moves j LOOP
        IF EXISTS (SELECT FROM shorturl.shards s WHERE s.name = shard) THEN
            PERFORM shorturl._finish_moves(shard);
        ELSE
            -- (a shard is dropped only once its moves are finished)
            DELETE FROM shorturl.rebalance_moves j WHERE j.source = shard;
        END IF;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;

    m := shorturl._active_map();
    IF pg_catalog.to_regclass('pg_temp.shorturl_moves') IS NULL THEN
        CREATE TEMP TABLE shorturl_moves (id bigint, source text COLLATE "C", target text COLLATE "C");
    END IF;
    TRUNCATE shorturl_moves;
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        EXECUTE pg_catalog.format(
            'INSERT INTO shorturl_moves SELECT id, %L, shorturl.route(shorturl.link_key(code, domain), $1, $2)'
            ' FROM shorturl_remote.%I WHERE shorturl.route(shorturl.link_key(code, domain), $1, $2) <> %L',
            shard, shard || '_links', shard)
            USING m.names, m.weights;
    END LOOP;
    SELECT count(*) INTO n_planned FROM shorturl_moves;
    UPDATE shorturl.rebalance_state SET planned = n_planned, moved = 0;
    COMMIT;
    RAISE NOTICE 'rebalance: % links to move', n_planned;

    FOR pair IN SELECT DISTINCT mv.source, mv.target FROM shorturl_moves mv ORDER BY 1, 2 LOOP
        LOOP
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            SELECT array_agg(x.id) INTO batch FROM (
                SELECT mv.id FROM shorturl_moves mv
                WHERE mv.source = pair.source AND mv.target = pair.target
                ORDER BY mv.id LIMIT batch_size) x;
            EXIT WHEN batch IS NULL;

            -- Steps 1 and 2 in one transaction, retried from the start when
            -- a shard answers with a serialization failure.  postgres_fdw
            -- reads and writes a shard in a REPEATABLE READ transaction, so
            -- a copy that an earlier, interrupted run left on the new shard
            -- and whose counts that shard flushed after this transaction's
            -- snapshot fails the ON CONFLICT check with 40001.  Only a new
            -- transaction has a new snapshot there: the sub-block rolls the
            -- attempt back, the ROLLBACK after it ends the shards' remote
            -- transactions, and the batch begins again.
            attempts := 0;
            LOOP
                attempts := attempts + 1;
                PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
                BEGIN
                    -- management calls (_locate()) wait until the copy commits
                    PERFORM pg_catalog.pg_advisory_xact_lock(21250, 0);
                    -- 1. the old shard writes its pending clicks to its table
                    PERFORM shorturl._proxy_flush(shorturl._position(pair.source));
                    -- 2. copy links, counts and analytics, and write down on the new
                    --    shard, in the same transaction, the count each copy carried
                    --    (shorturl.copied_links); the journal takes the counts from
                    --    there.  postgres_fdw commits the new shard's part before
                    --    this database's: a run terminated in between leaves copies
                    --    with no journal row, and the run after it must journal
                    --    what those copies carried, not the old shard's count by
                    --    then, or the clicks flushed there in between would be lost.
                    EXECUTE pg_catalog.format('SELECT coalesce(array_agg(k.id), ''{}'') FROM shorturl_remote.%I k'
                                              ' WHERE k.id = ANY ($1)', pair.target || '_copied_links')
                        INTO copied USING batch;
                    EXECUTE pg_catalog.format(
                        'INSERT INTO shorturl_remote.%I (id, code, domain, url, created_at, expires_at,'
                        '  max_visits, exhausted_at, disabled_at, disabled_reason, is_alias, owner, title, tags)'
                        ' SELECT id, code, domain, url, created_at, expires_at, max_visits, exhausted_at,'
                        '  disabled_at, disabled_reason, is_alias, owner, title, tags'
                        ' FROM shorturl_remote.%I WHERE id = ANY ($1)'
                        ' ON CONFLICT DO NOTHING',
                        pair.target || '_links', pair.source || '_links') USING batch;
                    EXECUTE pg_catalog.format(
                        'INSERT INTO shorturl_remote.%I (link_id, visits, last_visit_at)'
                        ' SELECT link_id, visits, last_visit_at FROM shorturl_remote.%I'
                        ' WHERE link_id = ANY ($1) ON CONFLICT DO NOTHING',
                        pair.target || '_visit_counts', pair.source || '_visit_counts') USING batch;
                    -- only links whose copy is there leave: a code taken on the
                    -- target by another link keeps its link where it is
                    EXECUTE pg_catalog.format('SELECT coalesce(array_agg(t.id), ''{}'') FROM shorturl_remote.%I t'
                                              ' WHERE t.id = ANY ($1)', pair.target || '_links')
                        INTO arrived USING batch;
                    -- what each copy carried, from the snapshot the copied counts
                    -- came from (postgres_fdw reads the old shard in one
                    -- repeatable-read transaction); a copy made by an earlier run
                    -- keeps its row, as it keeps its count
                    EXECUTE pg_catalog.format(
                        'INSERT INTO shorturl_remote.%I (id, visits)'
                        ' SELECT l.id, coalesce(c.visits, 0) FROM shorturl_remote.%I l'
                        ' LEFT JOIN shorturl_remote.%I c ON c.link_id = l.id'
                        ' WHERE l.id = ANY ($1) ON CONFLICT DO NOTHING',
                        pair.target || '_copied_links', pair.source || '_links', pair.source || '_visit_counts')
                        USING arrived;
                    -- Their analytics come from the same snapshot, so each series
                    -- adds up to its copied count; the clicks after it come in step
                    -- 4, at the hour they arrive.  A link an earlier run copied
                    -- (its copied_links row was there before this batch, or the
                    -- journal has it for this target) has its rows there, and the
                    -- rows flushed on the old shard since hold clicks that step 4
                    -- adds, so none is copied twice.
                    fresh := ARRAY(SELECT a.id FROM unnest(arrived) a(id)
                                   WHERE a.id <> ALL (copied)
                                     AND NOT EXISTS (SELECT FROM shorturl.rebalance_moves j
                                                     WHERE j.id = a.id AND j.target = pair.target));
                    IF cardinality(fresh) > 0 THEN
                        FOR tab IN SELECT * FROM (VALUES
                                ('link_visits_hourly', 'link_id, hour, visits, bots'),
                                ('link_visits_daily', 'link_id, day, visits, bots'),
                                ('link_visits_breakdown', 'link_id, day, dimension, value, visits, bots'),
                                ('link_visitors_daily', 'link_id, day, sketch')) x(name, columns) LOOP
                            EXECUTE pg_catalog.format(
                                'INSERT INTO shorturl_remote.%I (%s) SELECT %s FROM shorturl_remote.%I'
                                ' WHERE link_id = ANY ($1) ON CONFLICT DO NOTHING',
                                pair.target || '_' || tab.name, tab.columns, tab.columns, pair.source || '_' || tab.name)
                                USING fresh;
                        END LOOP;
                    END IF;
                    EXECUTE pg_catalog.format(
                        'INSERT INTO shorturl.rebalance_moves (id, source, target, copied_visits)'
                        ' SELECT k.id, %L, %L, k.visits FROM shorturl_remote.%I k'
                        ' WHERE k.id = ANY ($1) ON CONFLICT (id) DO NOTHING',
                        pair.source, pair.target, pair.target || '_copied_links')
                        USING arrived;
                    copied_all := true;
                EXCEPTION WHEN serialization_failure OR deadlock_detected THEN
                    IF attempts >= 10 THEN
                        RAISE;
                    END IF;
                    RAISE NOTICE 'rebalance: a shard could not serialize the batch from "%" to "%" (%), trying again',
                        pair.source, pair.target, SQLERRM;
                    copied_all := false;
                END;
                EXIT WHEN copied_all;
                ROLLBACK;
                PERFORM pg_catalog.pg_sleep(0.05 * attempts);
            END LOOP;
            IF cardinality(arrived) < cardinality(batch) THEN
                n_stranded := n_stranded + cardinality(batch) - cardinality(arrived);
                RAISE WARNING 'rebalance: % links cannot move from "%" to "%": their codes are taken there',
                    cardinality(batch) - cardinality(arrived), pair.source, pair.target
                    USING DETAIL = 'They stay on "' || pair.source || '", where lookups find them while a rebalance is due.',
                          HINT = 'Find them with: SELECT * FROM shorturl.rebalance_plan();';
            END IF;
            COMMIT;     -- the new shard has them: lookups find them there now

            -- 3. the old shard lets them go, keeping their final counts
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            PERFORM shorturl._proxy_move_out(shorturl._position(pair.source), arrived);
            -- 4. the last clicks there join the copies
            PERFORM shorturl._finish_moves(pair.source);
            DELETE FROM shorturl_moves mv WHERE mv.id = ANY (batch);
            n_moved := n_moved + cardinality(arrived);
            UPDATE shorturl.rebalance_state SET moved = n_moved;
            COMMIT;
            RAISE NOTICE 'rebalance: moved % of % links (last batch % -> %)',
                n_moved, n_planned, pair.source, pair.target;
        END LOOP;
    END LOOP;

    -- retired aliases follow their keys, so a moved key stays refused
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        FOR pair IN EXECUTE pg_catalog.format(
            'SELECT shorturl.route(shorturl.link_key(code, domain), $1, $2) AS target,'
            '       array_agg(code) AS codes, domain'
            ' FROM shorturl_remote.%I WHERE shorturl.route(shorturl.link_key(code, domain), $1, $2) <> %L'
            ' GROUP BY 1, 3',
            shard || '_retired_codes', shard) USING m.names, m.weights
        LOOP
            EXECUTE pg_catalog.format(
                'INSERT INTO shorturl_remote.%I (code, domain, retired_at)'
                ' SELECT code, domain, retired_at FROM shorturl_remote.%I'
                ' WHERE code = ANY ($1) AND domain = $2 ON CONFLICT DO NOTHING',
                pair.target || '_retired_codes', shard || '_retired_codes') USING pair.codes, pair.domain;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            EXECUTE pg_catalog.format('DELETE FROM shorturl_remote.%I WHERE code = ANY ($1) AND domain = $2',
                                      shard || '_retired_codes') USING pair.codes, pair.domain;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
    END LOOP;

    -- retiring shards that are empty now leave the cluster
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR shard IN SELECT s.name FROM shorturl.shards s WHERE s.retiring
                  AND NOT EXISTS (SELECT FROM shorturl.rebalance_moves j
                                  WHERE j.source = s.name OR j.target = s.name) LOOP
        EXECUTE pg_catalog.format('SELECT count(*) FROM shorturl_remote.%I', shard || '_links') INTO n_planned;
        IF n_planned = 0 THEN
            PERFORM shorturl._drop_shard(shard);
            n_dropped := n_dropped + 1;
            RAISE NOTICE 'rebalance: shard "%" is empty and has left the cluster', shard;
        END IF;
    END LOOP;
    -- A drop renumbers the PL/Proxy partitions.  A call that straddles its
    -- commit may route with the new map through the old cluster (PL/Proxy
    -- reads its cluster before route_position() reads the map), reach the
    -- wrong shard and get NULL; it then looks elsewhere only while a
    -- rebalance is due.  So the drop commits with pending still set, and
    -- pending is cleared only once every call begun before the drop has
    -- passed that check: API calls end within shorturl.remote_timeout (and
    -- a second, PL/Proxy's interrupt check), here taken as at most a minute.
    IF n_dropped > 0 THEN
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.pg_sleep(2 + least(60, coalesce(extract(epoch FROM
            pg_catalog.current_setting('shorturl.remote_timeout', true)::interval), 5)));
    END IF;
    -- a map changed while we ran leaves links to move: say so, stay pending
    IF (shorturl._active_map()).names IS DISTINCT FROM m.names
       OR (shorturl._active_map()).weights IS DISTINCT FROM m.weights THEN
        RAISE NOTICE 'rebalance: the shard map changed while it ran; run it again';
    END IF;
    UPDATE shorturl.rebalance_state
       SET pending = n_stranded > 0
                     OR EXISTS (SELECT FROM shorturl.shards s WHERE s.retiring)
                     OR (shorturl._active_map()).names IS DISTINCT FROM m.names
                     OR (shorturl._active_map()).weights IS DISTINCT FROM m.weights,
           finished_at = pg_catalog.now(), running_pid = NULL;
    COMMIT;
END
$$;

COMMENT ON PROCEDURE shorturl.rebalance(integer) IS
'moves the links whose owner changed with the map, batch by batch, with their counts and analytics; safe to interrupt and run again';
