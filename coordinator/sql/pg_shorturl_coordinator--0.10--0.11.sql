-- pg_shorturl_coordinator 0.10 -> 0.11: two rebalance bugs found by a
-- hostile test (t/009_rebalance_hostile.pl, bugs A and B).
--
-- A. A rebalance cancelled or timed out kept shorturl.rebalance_state's
--    running_pid while its session stayed connected, and every other
--    session's rebalance was refused (55006) until that session ended.  A
--    run's backend now counts as running only while it runs a statement.
-- B. A link deleted through the coordinator while its batch was half moved
--    (the copy committed on the new shard, the run stopped before it moved
--    on) was deleted on the new shard only: the old copy went on being
--    served, and the next run copied it back.  While a rebalance is due,
--    delete_link() now deletes the link on every shard that has it.
--    Likewise a link disabled then (on its owner, where disable_link()
--    finds it) was served from the old copy, since resolve() looked
--    elsewhere whenever the owner answered NULL: now only when the owner
--    does not have the link.

\echo Use "ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.11'" to load this file. \quit

-- _rebalance_running: whether the backend a rebalance recorded still runs
-- it.  A run that ended by an error (a cancel, a statement_timeout) leaves
-- running_pid behind, since it commits as it goes; its session, if still
-- connected, is then idle or runs something else.  Only an idle one counts
-- as stopped: one busy with another statement, or whose state this role
-- may not see (or that pg_stat_activity does not track), counts as running,
-- since a guess must not let two runs move the same links.  The snapshot of
-- pg_stat_activity a transaction keeps is dropped first: it may be older
-- than the other run.
CREATE FUNCTION shorturl._rebalance_running(pid integer)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_stat_clear_snapshot();
    SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                    WHERE a.pid = _rebalance_running.pid
                      AND a.pid <> pg_catalog.pg_backend_pid()
                      AND (a.state IS NULL OR a.state NOT IN ('idle', 'idle in transaction',
                                                              'idle in transaction (aborted)')))
$$;

COMMENT ON FUNCTION shorturl._rebalance_running(integer) IS
'whether the backend a rebalance recorded is still running a statement (a cancelled run''s idle session is not)';

REVOKE ALL ON FUNCTION shorturl._rebalance_running(integer) FROM PUBLIC;

-------------------------------------------------------------------------
-- rebalance(): a run an error ended no longer blocks the next (bug A)
-------------------------------------------------------------------------

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
            IF cardinality(arrived) < cardinality(batch) THEN
                n_stranded := n_stranded + cardinality(batch) - cardinality(arrived);
                RAISE WARNING 'rebalance: % links cannot move from "%" to "%": their codes are taken there',
                    cardinality(batch) - cardinality(arrived), pair.source, pair.target
                    USING DETAIL = 'They stay on "' || pair.source || '", where lookups find them while a rebalance is due.',
                          HINT = 'Find them with: SELECT * FROM shorturl.rebalance_plan();';
            END IF;
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

-------------------------------------------------------------------------
-- delete_link(): while a rebalance is due, on every shard that has the
-- link (bug B)
-------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION shorturl.delete_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer;
    n integer;
    d text;
    armed boolean;
    ok boolean;
BEGIN
    IF code IS NULL THEN
        RETURN false;
    END IF;
    PERFORM shorturl._check_writable('delete_link');
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        ok := shorturl._proxy_delete_link(pos, code, owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    -- A batch a stopped run left half moved has the link on two shards:
    -- its copy on the new one (which _locate() picks) and the original on
    -- the old one, which resolve() falls back to and the next run would
    -- copy back.  Both go.  (_locate() holds batches off meanwhile.)
    IF shorturl._rebalance_pending() THEN
        n := (SELECT pg_catalog.count(*) FROM shorturl.shards);
        FOR i IN 0 .. n - 1 LOOP
            CONTINUE WHEN i = pos;
            BEGIN
                IF shorturl._proxy_link_status_on(i, code, domain) <> 'unknown' THEN
                    ok := shorturl._proxy_delete_link(i, code, owner, domain) OR ok;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(i));
            END;
        END LOOP;
    END IF;
    armed := shorturl._deadline_stop();
    RETURN ok;
END
$$;

-------------------------------------------------------------------------
-- resolve(): while a rebalance is due, a link its owner has is not looked
-- for elsewhere.  A link disabled through the coordinator while its batch
-- was half moved (disable_link() finds it on its owner) was served from
-- the copy its old shard still had.
-------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION shorturl.resolve(code text, domain text, referrer text DEFAULT NULL,
                                 country text DEFAULT NULL, user_agent text DEFAULT NULL,
                                 visitor text DEFAULT NULL, client text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    url text;
    d text;
    other integer;
    owner_status text;
BEGIN
    IF code IS NULL THEN
        RETURN NULL;
    END IF;
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            IF client IS NOT NULL AND shorturl._rebalance_pending() THEN
                -- the shard that has it, asked with the client once
                other := shorturl._where_now(code, domain);
                url := shorturl._proxy_resolve_on(other, code, domain, referrer, country, user_agent,
                                                  visitor, client);
                -- unless it left that shard for its owner in between
                IF url IS NULL AND other <> shorturl.route_position(shorturl.link_key(code, domain))
                   AND shorturl._proxy_link_status_on(other, code, domain) = 'unknown' THEN
                    url := shorturl._proxy_resolve(code, domain, referrer, country, user_agent, visitor, client);
                END IF;
            ELSE
                -- (a shard counts the visit only where the link resolves: once)
                url := shorturl._proxy_resolve(code, domain, referrer, country, user_agent, visitor, client);
                IF url IS NULL AND shorturl._rebalance_pending() THEN
                    -- an owner that has the link answers for it (disabled
                    -- there, it is not served from a copy left behind)
                    owner_status := shorturl._proxy_link_status_on(
                        shorturl.route_position(shorturl.link_key(code, domain)), code, domain);
                    IF owner_status = 'unknown' THEN
                        other := shorturl._elsewhere(code, domain);
                        IF other IS NOT NULL THEN
                            url := shorturl._proxy_resolve_on(other, code, domain, referrer, country, user_agent,
                                                              visitor, client);
                        END IF;
                    END IF;
                    -- (it may have arrived at its owner meanwhile)
                    IF url IS NULL AND owner_status IN ('unknown', 'active') THEN
                        url := shorturl._proxy_resolve(code, domain, referrer, country, user_agent, visitor, client);
                    END IF;
                END IF;
            END IF;
            armed := shorturl._deadline_stop();
            RETURN url;
        EXCEPTION WHEN OTHERS THEN
            IF SQLSTATE NOT IN ('57P01', '57P02', '57P03') OR attempt = 2 THEN
                GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl.route(shorturl.link_key(code, domain)));
            END IF;
        END;
    END LOOP;
    armed := shorturl._deadline_stop();
    RETURN NULL;
END
$$;


CREATE OR REPLACE FUNCTION shorturl.resolve(code text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    url text;
    d text;
    other integer;
    owner_status text;
BEGIN
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            url := shorturl._proxy_resolve(code);
            -- during a rebalance the link may be between its old shard and
            -- its owner: look where it is, then ask the owner once more in
            -- case it arrived there meanwhile (each copy precedes a delete)
            IF url IS NULL AND shorturl._rebalance_pending() THEN
                -- an owner that has the link answers for it
                owner_status := shorturl._proxy_link_status_on(shorturl.route_position(code), code);
                IF owner_status = 'unknown' THEN
                    other := shorturl._elsewhere(code);
                    IF other IS NOT NULL THEN
                        url := shorturl._proxy_resolve_on(other, code);
                    END IF;
                END IF;
                IF url IS NULL AND owner_status IN ('unknown', 'active') THEN
                    url := shorturl._proxy_resolve(code);
                END IF;
            END IF;
            armed := shorturl._deadline_stop();
            RETURN url;
        EXCEPTION WHEN OTHERS THEN
            IF SQLSTATE NOT IN ('57P01', '57P02', '57P03') OR attempt = 2 THEN
                GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl.route(code));
            END IF;
        END;
    END LOOP;
    armed := shorturl._deadline_stop();
    RETURN NULL;
END
$$;

