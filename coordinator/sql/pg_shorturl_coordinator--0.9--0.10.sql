-- pg_shorturl_coordinator 0.9 -> 0.10: a rebalance terminated while the
-- new shard commits a batch's copy loses no click.  The copy and the count
-- each copy carried were committed in two places: the links on the new
-- shard (postgres_fdw commits there first), the count in this database's
-- journal (shorturl.rebalance_moves) just after.  A rebalance terminated
-- (or cancelled) between the two left copies with no journal row; the run
-- after it journaled the old shard's count at that later time, so the
-- clicks the old shard had flushed in between were never carried over.
-- Now the copy writes each link's copied count on the new shard, in the
-- same transaction (shorturl.copied_links, pg_shorturl 0.11), and the
-- journal takes it from there.  The shards must run pg_shorturl 0.11
-- first.

\echo Use "ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.10'" to load this file. \quit

-------------------------------------------------------------------------
-- The shards first: the update refuses while a shard it can reach runs an
-- older pg_shorturl, and warns of one it cannot reach.
-------------------------------------------------------------------------

DO $$
DECLARE
    shard text;
    v text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        BEGIN
            PERFORM shorturl._deadline_start();
            v := shorturl._proxy_core_version(shorturl._position(shard));
            PERFORM shorturl._deadline_stop();
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'could not ask shard "%" for its version of pg_shorturl: %', shard, SQLERRM
                USING HINT = 'Run ALTER EXTENSION pg_shorturl UPDATE on it before it serves this coordinator.';
            CONTINUE;
        END;
        IF v IS NULL OR pg_catalog.string_to_array(v, '.')::integer[] < '{0,11}' THEN
            RAISE EXCEPTION 'shard "%" runs pg_shorturl %, and this update needs 0.11', shard, coalesce(v, '(none)')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run ALTER EXTENSION pg_shorturl UPDATE on every shard first.';
        END IF;
    END LOOP;
END
$$;

-- _copied_links_table makes a shard's foreign table on its
-- shorturl.copied_links; like the blocklist's, it is the deployment's, as
-- add_shard() makes it, not the extension's.  Without copied_at, which
-- postgres_fdw would send as NULL: the shard's default fills it in.
CREATE FUNCTION shorturl._copied_links_table(name text, server text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            id bigint NOT NULL,
            visits bigint NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'copied_links')$f$,
        _copied_links_table.name || '_copied_links', server);
END
$$;

COMMENT ON FUNCTION shorturl._copied_links_table(text, text) IS
'makes a shard''s foreign table on its shorturl.copied_links (<shard>_copied_links)';

REVOKE ALL ON FUNCTION shorturl._copied_links_table(text, text) FROM PUBLIC;

DO $$
DECLARE
    shard text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s LOOP
        PERFORM shorturl._copied_links_table(shard, 'shorturl_shard_' || shard);
        -- made by this script, it would be a member: as add_shard()'s, it is not
        EXECUTE pg_catalog.format('ALTER EXTENSION pg_shorturl_coordinator DROP FOREIGN TABLE shorturl_remote.%I',
                                  shard || '_copied_links');
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- add_shard() makes the copies' foreign table too, and refuses a shard
-- whose pg_shorturl is older than 0.11.
-------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION shorturl.add_shard(name text, conninfo text, weight double precision DEFAULT 1)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    server text := 'shorturl_shard_' || add_shard.name;
    server_opts text[] := '{}';
    mapping_opts text[] := '{}';
    kept text[] := '{}';
    o record;
    owner text := (SELECT e.extowner::pg_catalog.regrole::text FROM pg_catalog.pg_extension e
                   WHERE e.extname = 'pg_shorturl_coordinator');
    new_identity text;
    other text;
    v text;
    d text;
BEGIN
    IF add_shard.name !~ '^[A-Za-z0-9_]{1,40}$' THEN
        RAISE EXCEPTION 'invalid shard name "%"', add_shard.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Shard names are 1 to 40 characters of A-Z, a-z, 0-9 and "_".';
    END IF;
    IF EXISTS (SELECT FROM shorturl.shards s WHERE s.name = add_shard.name) THEN
        RAISE EXCEPTION 'shard "%" already exists', add_shard.name USING ERRCODE = 'duplicate_object';
    END IF;

    FOR o IN SELECT * FROM shorturl.conninfo_options(add_shard.conninfo) LOOP
        IF shorturl._is_secret(o.keyword) THEN
            mapping_opts := mapping_opts || pg_catalog.format('%I %L', o.keyword, o.value);
        ELSE
            server_opts := server_opts || pg_catalog.format('%I %L', o.keyword, o.value);
            kept := kept || shorturl._conninfo_pair(o.keyword, o.value);
        END IF;
    END LOOP;
    -- ship shorturl.route(code, names, weights) to the shard when planning moves
    server_opts := server_opts || pg_catalog.format('%I %L', 'extensions', 'pg_shorturl_coordinator')
                               || pg_catalog.format('%I %L', 'batch_size', '500');

    -- data moves (rebalance) go through postgres_fdw
    EXECUTE pg_catalog.format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw %s',
                              server, shorturl._options(server_opts));
    EXECUTE pg_catalog.format('CREATE USER MAPPING FOR %s SERVER %I %s', owner, server,
                              shorturl._options(mapping_opts));
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            id bigint NOT NULL,
            code text COLLATE "C" NOT NULL,
            domain text COLLATE "C" NOT NULL,
            url text NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            max_visits bigint,
            exhausted_at timestamptz,
            disabled_at timestamptz,
            disabled_reason text,
            is_alias boolean NOT NULL,
            owner text COLLATE "C",
            title text,
            tags text[] COLLATE "C"
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'links')$f$,
        add_shard.name || '_links', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            link_id bigint NOT NULL,
            visits bigint NOT NULL,
            last_visit_at timestamptz
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'visit_counts')$f$,
        add_shard.name || '_visit_counts', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            id bigint NOT NULL,
            code text COLLATE "C" NOT NULL,
            domain text COLLATE "C" NOT NULL,
            visits bigint NOT NULL,
            moved_at timestamptz NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'moved_links')$f$,
        add_shard.name || '_moved_links', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            code text COLLATE "C" NOT NULL,
            domain text COLLATE "C" NOT NULL,
            retired_at timestamptz NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'retired_codes')$f$,
        add_shard.name || '_retired_codes', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            domain text COLLATE "C" NOT NULL,
            added_at timestamptz NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'domains')$f$,
        add_shard.name || '_domains', server);
    PERFORM shorturl._analytics_tables(add_shard.name, server);
    PERFORM shorturl._blocklist_table(add_shard.name, server);
    PERFORM shorturl._copied_links_table(add_shard.name, server);

    INSERT INTO shorturl.shards (name, weight, conninfo)
    VALUES (add_shard.name, add_shard.weight, array_to_string(kept, ' '));
    PERFORM shorturl.sync_cluster();

    -- the new shard must answer, and be no other shard's database: two names
    -- for one database would lose links in a rebalance
    BEGIN
        new_identity := shorturl._proxy_store_identity(shorturl._position(add_shard.name));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, add_shard.name);
    END;
    FOR other IN SELECT s.name FROM shorturl.shards s WHERE s.name <> add_shard.name LOOP
        BEGIN
            IF shorturl._proxy_store_identity(shorturl._position(other)) = new_identity THEN
                RAISE EXCEPTION 'shard "%" is the same database as shard "%"', add_shard.name, other
                    USING ERRCODE = 'duplicate_object',
                          HINT = 'Each shard must be a database of its own.';
            END IF;
        EXCEPTION WHEN duplicate_object THEN
            RAISE;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, other);
        END;
    END LOOP;

    -- the new shard runs the pg_shorturl this coordinator calls
    BEGIN
        v := shorturl._proxy_core_version(shorturl._position(add_shard.name));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, add_shard.name);
    END;
    IF v IS NULL OR pg_catalog.string_to_array(v, '.')::integer[] < '{0,11}' THEN
        RAISE EXCEPTION 'shard "%" runs pg_shorturl %, and this coordinator needs 0.11', add_shard.name,
                coalesce(v, '(none)')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run ALTER EXTENSION pg_shorturl UPDATE on it first.';
    END IF;

    -- the new shard knows the short domains
    EXECUTE pg_catalog.format('INSERT INTO shorturl_remote.%I (domain, added_at)'
                              ' SELECT domain, added_at FROM shorturl.domains ON CONFLICT DO NOTHING',
                              add_shard.name || '_domains');

    -- and the hosts the others block (a pattern it has already stays as it is)
    FOR other IN SELECT s.name FROM shorturl.shards s WHERE s.name <> add_shard.name
                  ORDER BY s.name COLLATE "C" LOOP
        BEGIN
            EXECUTE pg_catalog.format('INSERT INTO shorturl_remote.%I (pattern, reason, created_at)'
                                      ' SELECT pattern, reason, created_at FROM shorturl_remote.%I'
                                      ' ON CONFLICT DO NOTHING',
                                      add_shard.name || '_blocked_hosts', other || '_blocked_hosts');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, other);
        END;
    END LOOP;

    -- the second shard onwards moves keys: a rebalance is due
    IF (SELECT count(*) FROM shorturl.shards) > 1 THEN
        INSERT INTO shorturl.rebalance_state (pending) VALUES (true)
        ON CONFLICT (singleton) DO UPDATE SET pending = true;
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl.add_shard(text, text, double precision) IS
'adds a shard running pg_shorturl 0.11 or later: a postgres_fdw server and foreign tables for data moves (links, counts, copies, moved links), the short domains and the blocklist, its partition of the PL/Proxy cluster, and its row in shorturl.shards; the connection string''s user and password go to user mappings; the new shard gets the domains and the hosts the other shards block';

-------------------------------------------------------------------------
-- Quotas through the coordinator.  A shard's shorten() takes one link from

-------------------------------------------------------------------------
-- rebalance(): step 2 writes the copied counts on the new shard, with the
-- copies, and journals them from there.
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
    IF other_pid IS NOT NULL AND other_pid <> pg_catalog.pg_backend_pid() AND EXISTS (
        SELECT FROM pg_catalog.pg_stat_activity a WHERE a.pid = other_pid) THEN
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

