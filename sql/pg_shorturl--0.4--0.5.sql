/* pg_shorturl--0.4--0.5.sql: links sharded over several servers */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.5'" to load this file. \quit

--
-- The map: a shard leaving the cluster keeps its row, taking no keys,
-- until a rebalance has moved its links away.
--
ALTER TABLE shorturl.shards ADD COLUMN retiring boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN shorturl.shards.retiring IS
'true for a shard being removed: route() gives it no keys, and shorturl.rebalance() moves its links away, then drops it';

-------------------------------------------------------------------------
-- The shard side: what a coordinator calls on each shard.  Every node has
-- these; only the coordinator's owner calls them (through dblink).
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.store_link(code text, url text,
                                    expires_at timestamptz DEFAULT NULL,
                                    max_visits bigint DEFAULT NULL,
                                    is_alias boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF store_link.is_alias AND EXISTS (
        SELECT 1 FROM shorturl.alias_quarantine q
        WHERE q.alias = store_link.code AND q.released_at > pg_catalog.now()) THEN
        RAISE EXCEPTION 'alias "%" is quarantined', store_link.code
            USING ERRCODE = 'unique_violation',
                  HINT = 'The waiting time is the setting shorturl.alias_quarantine.';
    END IF;
    INSERT INTO shorturl.links (code, url, expires_at, max_visits, is_alias)
    VALUES (store_link.code, store_link.url, store_link.expires_at,
            store_link.max_visits, store_link.is_alias)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;

COMMENT ON FUNCTION shorturl.store_link(text, text, timestamptz, bigint, boolean) IS
'shard side: stores a link with a code the coordinator chose; false if the code is taken';

CREATE FUNCTION shorturl.resolve_here(code text, OUT status text, OUT url text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    url := shorturl.resolve(resolve_here.code);
    status := CASE WHEN url IS NOT NULL THEN 'active'
                   ELSE shorturl.link_status(resolve_here.code) END;
END
$$;

COMMENT ON FUNCTION shorturl.resolve_here(text) IS
'shard side: resolve() with the link''s status, so a coordinator can tell a link this shard does not have (unknown) from one it refuses';

CREATE FUNCTION shorturl.link_here(code text, OUT status text, OUT visits bigint)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    status := shorturl.link_status(link_here.code);
    visits := shorturl.visits(link_here.code);
END
$$;

COMMENT ON FUNCTION shorturl.link_here(text) IS
'shard side: link_status() and visits() of a link in one call';

CREATE FUNCTION shorturl.forget_counters(codes text[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_forget_counters'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.forget_counters(text[]) IS
'shard side: drops the shared-memory counters of links that left this shard; returns the unflushed clicks dropped';

REVOKE ALL ON FUNCTION shorturl.forget_counters(text[]) FROM PUBLIC;

CREATE FUNCTION shorturl.move_out(codes text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- the aliases move to another shard: they are not deleted, so no quarantine
    PERFORM pg_catalog.set_config('pg_shorturl.moving', 'on', true);
    DELETE FROM shorturl.links WHERE code = ANY (move_out.codes);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_catalog.set_config('pg_shorturl.moving', '', true);
    -- the counters go too: if a link comes back, it comes back with its count
    PERFORM shorturl.forget_counters(move_out.codes);
    RETURN n;
END
$$;

COMMENT ON FUNCTION shorturl.move_out(text[]) IS
'shard side: deletes links a rebalance has copied to their new shard, without quarantining their aliases';

REVOKE ALL ON FUNCTION shorturl.store_link(text, text, timestamptz, bigint, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.resolve_here(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_here(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.move_out(text[]) FROM PUBLIC;

-------------------------------------------------------------------------
-- The coordinator side.
--
-- A coordinator keeps, per shard, a postgres_fdw foreign server
-- shorturl_shard_<name> (with a user mapping for the extension's owner)
-- and a foreign table shorturl_remote.<name>_links on the shard's
-- shorturl.links.  Its own shorturl.links becomes a table partitioned over
-- those foreign tables, by the hash operator class below, so a lookup by
-- code prunes to the shard that owns it.  The API functions (shorten,
-- resolve, link_status, visits) hand over to the coordinator_* functions
-- here, which call the owning shard through dblink.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.conninfo_options(conninfo text, OUT keyword text, OUT value text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'shorturl_conninfo_options'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.conninfo_options(text) IS
'the options a libpq connection string sets, as libpq parses it';

CREATE FUNCTION shorturl.lock_rebalance(exclusive boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'shorturl_lock_rebalance'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.lock_rebalance(boolean) IS
'the transaction-level lock a coordinator''s lookups take shared and a rebalance takes exclusively while it copies a batch';

REVOKE ALL ON FUNCTION shorturl.lock_rebalance(boolean) FROM PUBLIC;

CREATE FUNCTION shorturl.shard_partition_hash(code text, seed bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_shard_partition_hash'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.shard_partition_hash(text, bigint) IS
'support function of shorturl.code_shard_ops: makes hash partitioning put a code in the partition of the shard route() gives it';

CREATE FUNCTION shorturl.shard_partition_hash32(code text)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_shard_partition_hash32'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.shard_partition_hash32(text) IS
'support function 1 of shorturl.code_shard_ops (the 32-bit form)';

CREATE OPERATOR CLASS shorturl.code_shard_ops FOR TYPE text USING hash AS
    OPERATOR 1 pg_catalog.= (text, text),
    FUNCTION 1 shorturl.shard_partition_hash32(text),
    FUNCTION 2 shorturl.shard_partition_hash(text, bigint);

COMMENT ON OPERATOR CLASS shorturl.code_shard_ops USING hash IS
'partitions a coordinator''s shorturl.links by owning shard; valid only with the partition bounds shorturl.add_shard() maintains';

CREATE TABLE shorturl.rebalance_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pending boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    finished_at timestamptz,
    planned bigint NOT NULL DEFAULT 0,
    moved bigint NOT NULL DEFAULT 0,
    running_pid integer
);

COMMENT ON TABLE shorturl.rebalance_state IS 'a coordinator''s rebalance: due, under way, done';
COMMENT ON COLUMN shorturl.rebalance_state.singleton IS 'always true: the table holds one row';
COMMENT ON COLUMN shorturl.rebalance_state.pending IS 'the map changed and some links may still be on their old shard';
COMMENT ON COLUMN shorturl.rebalance_state.started_at IS 'when the latest rebalance started';
COMMENT ON COLUMN shorturl.rebalance_state.finished_at IS 'when it finished; NULL while it runs (or if it was stopped)';
COMMENT ON COLUMN shorturl.rebalance_state.planned IS 'links it found to move';
COMMENT ON COLUMN shorturl.rebalance_state.moved IS 'links it has moved so far';
COMMENT ON COLUMN shorturl.rebalance_state.running_pid IS 'the backend running it';

INSERT INTO shorturl.rebalance_state DEFAULT VALUES;
REVOKE ALL ON shorturl.rebalance_state FROM PUBLIC;
GRANT SELECT ON shorturl.rebalance_state TO PUBLIC;

-- shard_connection returns the name of the dblink connection to a shard,
-- opening it (through the shard's foreign server) if need be.
CREATE FUNCTION shorturl.shard_connection(shard text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    conn text := 'shorturl_' || shard;
BEGIN
    IF conn = ANY (COALESCE(shorturl_remote.dblink_get_connections(), '{}')) THEN
        RETURN conn;
    END IF;
    -- a failure raises SQLSTATE class 08, which the callers report with the shard's name
    PERFORM shorturl_remote.dblink_connect(conn, 'shorturl_shard_' || shard);
    RETURN conn;
END
$$;

COMMENT ON FUNCTION shorturl.shard_connection(text) IS
'coordinator: the open dblink connection to a shard (opened on first use)';

-- shard_failed forgets a shard's connection after an error on it, so the
-- next call connects again, and reports the error with the shard's name.
CREATE FUNCTION shorturl.shard_failed(shard text, message text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        PERFORM shorturl_remote.dblink_disconnect('shorturl_' || shard);
    EXCEPTION WHEN OTHERS THEN
        NULL;   -- it was not open
    END;
    RAISE EXCEPTION 'shard "%" is unavailable', shard
        USING ERRCODE = 'connection_failure', DETAIL = message,
              HINT = 'Is the shard''s server running? Its connection options are those of the foreign server shorturl_shard_' || shard || '.';
END
$$;

COMMENT ON FUNCTION shorturl.shard_failed(text, text) IS
'coordinator: drops a shard''s broken connection and reports the failure, naming the shard';

-- shard_query runs a query on a shard and returns its first row as jsonb
-- (NULL for none); every call of the coordinator goes through it.  A
-- connection that the shard closed while idle (it was restarted) fails the
-- first query sent on it with "terminating connection due to administrator
-- command", before the shard ran anything: that one error is retried once
-- on a new connection.  Any other connection error is reported with the
-- shard's name, without retry, since the shard may have run the query.
CREATE FUNCTION shorturl.shard_query(shard text, sql text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    FOR attempt IN 1..2 LOOP
        BEGIN
            SELECT t.j INTO result
            FROM shorturl_remote.dblink(shorturl.shard_connection(shard),
                                        'SELECT pg_catalog.to_jsonb(q) FROM (' || sql || ') q')
                 AS t(j jsonb);
            RETURN result;
        EXCEPTION WHEN connection_exception OR admin_shutdown THEN
            IF attempt = 2 OR SQLERRM NOT LIKE '%terminating connection due to administrator command%' THEN
                PERFORM shorturl.shard_failed(shard, SQLERRM);
            END IF;
            BEGIN
                PERFORM shorturl_remote.dblink_disconnect('shorturl_' || shard);
            EXCEPTION WHEN OTHERS THEN
                NULL;   -- it was not open
            END;
        END;
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.shard_query(text, text) IS
'coordinator: runs a query on a shard (committed there at once) and returns its first row as jsonb';

CREATE FUNCTION shorturl.shard_resolve(shard text, code text, OUT status text, OUT url text)
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r jsonb := shorturl.shard_query(shard, pg_catalog.format('SELECT * FROM shorturl.resolve_here(%L)', code));
BEGIN
    status := r->>'status';
    url := r->>'url';
END
$$;

COMMENT ON FUNCTION shorturl.shard_resolve(text, text) IS
'coordinator: resolve_here() on a shard';

CREATE FUNCTION shorturl.shard_link(shard text, code text, OUT status text, OUT visits bigint)
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r jsonb := shorturl.shard_query(shard, pg_catalog.format('SELECT * FROM shorturl.link_here(%L)', code));
BEGIN
    status := r->>'status';
    visits := (r->>'visits')::bigint;
END
$$;

COMMENT ON FUNCTION shorturl.shard_link(text, text) IS
'coordinator: link_here() on a shard';

CREATE FUNCTION shorturl.shard_store(shard text, code text, url text, expires_at timestamptz,
                                     max_visits bigint, is_alias boolean)
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (shorturl.shard_query(shard,
                pg_catalog.format('SELECT shorturl.store_link(%L, %L, %L, %L, %L) AS stored',
                                  code, url, expires_at, max_visits, is_alias))->>'stored')::boolean
$$;

COMMENT ON FUNCTION shorturl.shard_store(text, text, text, timestamptz, bigint, boolean) IS
'coordinator: store_link() on a shard';

CREATE FUNCTION shorturl.rebalance_pending()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pending FROM shorturl.rebalance_state $$;

COMMENT ON FUNCTION shorturl.rebalance_pending() IS
'coordinator: whether some links may still be on a shard the map no longer gives them';

--
-- The coordinator's API: shorten, resolve, link_status and visits call
-- these when shorturl.links is partitioned over the shards.
--
CREATE FUNCTION shorturl.coordinator_resolve(code text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner text;
    r record;
    other text;
BEGIN
    -- a rebalance copying this link waits for us, or we for it
    PERFORM shorturl.lock_rebalance(false);
    owner := shorturl.route(coordinator_resolve.code);
    r := shorturl.shard_resolve(owner, coordinator_resolve.code);
    IF r.status <> 'unknown' OR NOT shorturl.rebalance_pending() THEN
        RETURN r.url;
    END IF;
    -- the map changed: the link may still be on the shard that had it
    FOR other IN SELECT s.name FROM shorturl.shards s WHERE s.name <> owner ORDER BY s.name LOOP
        r := shorturl.shard_resolve(other, coordinator_resolve.code);
        IF r.status <> 'unknown' THEN
            RETURN r.url;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.coordinator_resolve(text) IS
'coordinator: resolve() on the shard that owns the code (or, while a rebalance is due, on the shard that still has it)';

CREATE FUNCTION shorturl.coordinator_link(code text, OUT status text, OUT visits bigint)
LANGUAGE plpgsql VOLATILE STRICT
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner text;
    r record;
    other text;
BEGIN
    PERFORM shorturl.lock_rebalance(false);
    owner := shorturl.route(coordinator_link.code);
    r := shorturl.shard_link(owner, coordinator_link.code);
    IF r.status = 'unknown' AND shorturl.rebalance_pending() THEN
        FOR other IN SELECT s.name FROM shorturl.shards s WHERE s.name <> owner ORDER BY s.name LOOP
            r := shorturl.shard_link(other, coordinator_link.code);
            EXIT WHEN r.status <> 'unknown';
        END LOOP;
    END IF;
    status := r.status;
    visits := r.visits;
END
$$;

COMMENT ON FUNCTION shorturl.coordinator_link(text) IS
'coordinator: link_here() on the shard that has the code';

CREATE FUNCTION shorturl.coordinator_link_status(code text)
RETURNS text
LANGUAGE sql VOLATILE STRICT
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT status FROM shorturl.coordinator_link(code) $$;

COMMENT ON FUNCTION shorturl.coordinator_link_status(text) IS
'coordinator: link_status() on the shard that has the code';

CREATE FUNCTION shorturl.coordinator_visits(code text)
RETURNS bigint
LANGUAGE sql VOLATILE STRICT
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT visits FROM shorturl.coordinator_link(code) $$;

COMMENT ON FUNCTION shorturl.coordinator_visits(text) IS
'coordinator: visits() on the shard that has the code';

CREATE FUNCTION shorturl.coordinator_shorten(url text, expires_at timestamptz, max_visits bigint,
                                             alias text, reuse boolean)
RETURNS text
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner text;
    code text;
    found_code text;
    j jsonb;
    other text;
BEGIN
    -- shorten() has checked the URL, the limits and the alias's form
    IF alias IS NOT NULL THEN
        owner := shorturl.route(alias);
        IF reuse THEN
            j := shorturl.shard_query(owner, pg_catalog.format(
                'SELECT url, expires_at, max_visits, shorturl.link_status(code) AS status'
                ' FROM shorturl.links WHERE code = %L', alias));
            IF j IS NOT NULL AND j->>'url' = coordinator_shorten.url
               AND (j->>'expires_at')::timestamptz IS NOT DISTINCT FROM coordinator_shorten.expires_at
               AND (j->>'max_visits')::bigint IS NOT DISTINCT FROM coordinator_shorten.max_visits
               AND j->>'status' = 'active' THEN
                RETURN alias;
            END IF;
        END IF;
        -- while a rebalance is due, the alias (or its quarantine) may still be
        -- on the shard that had it
        IF shorturl.rebalance_pending() THEN
            FOR other IN SELECT s.name FROM shorturl.shards s WHERE s.name <> owner ORDER BY s.name LOOP
                j := shorturl.shard_query(other, pg_catalog.format(
                    'SELECT EXISTS (SELECT 1 FROM shorturl.links WHERE code = %L) AS taken,'
                    ' EXISTS (SELECT 1 FROM shorturl.alias_quarantine'
                    '         WHERE alias = %L AND released_at > pg_catalog.now()) AS quarantined',
                    alias, alias));
                IF (j->>'taken')::boolean THEN
                    RAISE EXCEPTION 'alias "%" is already taken', alias
                        USING ERRCODE = 'unique_violation',
                              HINT = 'Choose another alias, or omit it to get a generated code.';
                END IF;
                IF (j->>'quarantined')::boolean THEN
                    RAISE EXCEPTION 'alias "%" is quarantined', alias
                        USING ERRCODE = 'unique_violation',
                              HINT = 'The waiting time is the setting shorturl.alias_quarantine.';
                END IF;
            END LOOP;
        END IF;
        IF NOT shorturl.shard_store(owner, alias, url, expires_at, max_visits, true) THEN
            RAISE EXCEPTION 'alias "%" is already taken', alias
                USING ERRCODE = 'unique_violation',
                      HINT = 'Choose another alias, or omit it to get a generated code.';
        END IF;
        RETURN alias;
    END IF;

    IF reuse THEN
        -- every shard looks through its index on url_hash
        FOR found_code IN
            SELECT l.code FROM shorturl.links l
            WHERE l.url_hash = shorturl.hash64(coordinator_shorten.url)
              AND l.url = coordinator_shorten.url AND NOT l.is_alias
              AND l.expires_at IS NOT DISTINCT FROM coordinator_shorten.expires_at
              AND l.max_visits IS NOT DISTINCT FROM coordinator_shorten.max_visits
            ORDER BY l.created_at, l.code
        LOOP
            IF shorturl.coordinator_link_status(found_code) = 'active' THEN
                RETURN found_code;
            END IF;
        END LOOP;
    END IF;

    -- one sequence and one key for the whole cluster: codes stay unique
    FOR attempt IN 1..10 LOOP
        code := shorturl.encode_id(pg_catalog.nextval('shorturl.link_id_seq'));
        IF shorturl.shard_store(shorturl.route(code), code, url, expires_at, max_visits, false) THEN
            RETURN code;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'could not find a free code in 10 attempts'
        USING ERRCODE = 'program_limit_exceeded';
END
$$;

COMMENT ON FUNCTION shorturl.coordinator_shorten(text, timestamptz, bigint, text, boolean) IS
'coordinator: shorten() on the shard that owns the new code';

--
-- Setting a coordinator up.
--
CREATE FUNCTION shorturl.make_coordinator()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c
        WHERE c.oid = 'shorturl.links'::pg_catalog.regclass) = 'p' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM shorturl.links) THEN
        RAISE EXCEPTION 'this database holds links, so it cannot become a coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A coordinator starts empty: its links live on the shards.';
    END IF;

    CREATE SCHEMA IF NOT EXISTS shorturl_remote;
    REVOKE ALL ON SCHEMA shorturl_remote FROM PUBLIC;
    CREATE EXTENSION IF NOT EXISTS postgres_fdw SCHEMA shorturl_remote;
    CREATE EXTENSION IF NOT EXISTS dblink SCHEMA shorturl_remote;
    IF (SELECT e.extnamespace::pg_catalog.regnamespace::text FROM pg_catalog.pg_extension e
        WHERE e.extname = 'dblink') <> 'shorturl_remote' THEN
        RAISE EXCEPTION 'dblink is installed in another schema'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A coordinator calls it as shorturl_remote.dblink: run ALTER EXTENSION dblink SET SCHEMA shorturl_remote.';
    END IF;

    -- the extension's own (empty) table stays, renamed; shorturl.links becomes
    -- the partitioned view of every shard's links
    ALTER TABLE shorturl.links RENAME TO links_unsharded;
    CREATE TABLE shorturl.links (
        code text COLLATE "C" NOT NULL,
        url text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        max_visits bigint,
        visits bigint NOT NULL,
        last_visit_at timestamptz,
        exhausted_at timestamptz,
        is_alias boolean NOT NULL,
        url_hash bigint GENERATED ALWAYS AS (shorturl.hash64(url)) STORED
    ) PARTITION BY HASH (code shorturl.code_shard_ops);
    COMMENT ON TABLE shorturl.links IS
        'a coordinator''s links: partitioned over the shards'' tables; WHERE code = ... reads only the shard that owns the code';
    REVOKE ALL ON shorturl.links FROM PUBLIC;
END
$$;

COMMENT ON FUNCTION shorturl.make_coordinator() IS
'turns this (empty) database into a coordinator: shorturl.links becomes partitioned over the shards';

-- repartition attaches every shard's table, in name order, as the partition
-- of remainder = position, modulus = number of shards: the order
-- shorturl.shard_partition_hash() assumes.
CREATE FUNCTION shorturl.repartition()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part regclass;
    shard text;
    n integer := (SELECT count(*) FROM shorturl.shards);
    i integer := 0;
BEGIN
    FOR part IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i
                WHERE i.inhparent = 'shorturl.links'::pg_catalog.regclass LOOP
        EXECUTE pg_catalog.format('ALTER TABLE shorturl.links DETACH PARTITION %s', part);
    END LOOP;
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        EXECUTE pg_catalog.format(
            'ALTER TABLE shorturl.links ATTACH PARTITION shorturl_remote.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
            shard || '_links', n, i);
        i := i + 1;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.repartition() IS
'coordinator: rebuilds the partition bounds of shorturl.links from shorturl.shards';

CREATE FUNCTION shorturl.add_shard(name text, conninfo text, weight double precision DEFAULT 1)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    server text := 'shorturl_shard_' || add_shard.name;
    server_opts text[] := '{}';
    mapping_opts text[] := '{}';
    kept text[] := '{}';
    o record;
    owner text;
    had_shards boolean := EXISTS (SELECT 1 FROM shorturl.shards);
BEGIN
    IF add_shard.name !~ '^[A-Za-z0-9_]{1,40}$' THEN
        RAISE EXCEPTION 'invalid shard name "%"', add_shard.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Shard names are 1 to 40 characters of A-Z, a-z, 0-9 and "_".';
    END IF;
    IF EXISTS (SELECT 1 FROM shorturl.shards s WHERE s.name = add_shard.name) THEN
        RAISE EXCEPTION 'shard "%" already exists', add_shard.name USING ERRCODE = 'duplicate_object';
    END IF;

    PERFORM shorturl.make_coordinator();

    FOR o IN SELECT * FROM shorturl.conninfo_options(add_shard.conninfo) LOOP
        IF o.keyword IN ('user', 'password', 'sslkey', 'sslcert', 'sslpassword') THEN
            mapping_opts := mapping_opts || pg_catalog.format('%I %L', o.keyword, o.value);
        ELSE
            server_opts := server_opts || pg_catalog.format('%I %L', o.keyword, o.value);
        END IF;
        IF o.keyword <> 'password' THEN
            kept := kept || (o.keyword || '=''' ||
                             replace(replace(o.value, '\', '\\'), '''', '\''') || '''');
        END IF;
    END LOOP;
    -- a shard that does not answer must fail a lookup, not hang it: give up
    -- connecting after 5 s, and notice a dead host on an open connection
    -- after about 25 s (TCP keepalives), unless the connection string says
    -- otherwise
    FOR o IN SELECT * FROM (VALUES ('connect_timeout', '5'), ('keepalives_idle', '10'),
                                   ('keepalives_interval', '5'), ('keepalives_count', '3')) d(keyword, value)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM shorturl.conninfo_options(add_shard.conninfo) c
                       WHERE c.keyword = o.keyword) THEN
            server_opts := server_opts || pg_catalog.format('%I %L', o.keyword, o.value);
        END IF;
    END LOOP;
    -- ship shorturl.route(code, names, weights) to the shard when planning moves
    server_opts := server_opts || '"extensions" ''pg_shorturl'''::text;
    server_opts := server_opts || '"batch_size" ''500'''::text;

    EXECUTE pg_catalog.format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s)',
                              server, array_to_string(server_opts, ', '));
    owner := (SELECT e.extowner::pg_catalog.regrole::text FROM pg_catalog.pg_extension e
              WHERE e.extname = 'pg_shorturl');
    EXECUTE pg_catalog.format('CREATE USER MAPPING FOR %s SERVER %I %s', owner, server,
                              CASE WHEN cardinality(mapping_opts) = 0 THEN ''
                                   ELSE 'OPTIONS (' || array_to_string(mapping_opts, ', ') || ')' END);
    IF current_user <> owner THEN
        EXECUTE pg_catalog.format('CREATE USER MAPPING FOR CURRENT_USER SERVER %I %s', server,
                                  CASE WHEN cardinality(mapping_opts) = 0 THEN ''
                                       ELSE 'OPTIONS (' || array_to_string(mapping_opts, ', ') || ')' END);
    END IF;
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            code text COLLATE "C" NOT NULL,
            url text NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            max_visits bigint,
            visits bigint NOT NULL,
            last_visit_at timestamptz,
            exhausted_at timestamptz,
            is_alias boolean NOT NULL,
            url_hash bigint GENERATED ALWAYS AS (shorturl.hash64(url)) STORED
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'links')$f$,
        add_shard.name || '_links', server);
    -- the shard's quarantined aliases follow their keys when the map changes
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            alias text COLLATE "C" NOT NULL,
            deleted_at timestamptz NOT NULL,
            released_at timestamptz NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'alias_quarantine')$f$,
        add_shard.name || '_quarantine', server);

    INSERT INTO shorturl.shards (name, weight, conninfo)
    VALUES (add_shard.name, add_shard.weight, array_to_string(kept, ' '));
    PERFORM shorturl.repartition();
    IF had_shards THEN
        UPDATE shorturl.rebalance_state SET pending = true;
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl.add_shard(text, text, double precision) IS
'coordinator: adds a shard (a server running pg_shorturl, reached with a libpq connection string) with a weight; then CALL shorturl.rebalance() to move its share of links to it';

CREATE FUNCTION shorturl.drop_shard(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        PERFORM shorturl_remote.dblink_disconnect('shorturl_' || drop_shard.name);
    EXCEPTION WHEN OTHERS THEN
        NULL;   -- it was not open
    END;
    DELETE FROM shorturl.shards s WHERE s.name = drop_shard.name;
    PERFORM shorturl.repartition();
    EXECUTE pg_catalog.format('DROP FOREIGN TABLE shorturl_remote.%I, shorturl_remote.%I',
                              drop_shard.name || '_links', drop_shard.name || '_quarantine');
    -- and the server with its user mappings
    PERFORM pg_catalog.set_config('client_min_messages', 'warning', true);
    EXECUTE pg_catalog.format('DROP SERVER %I CASCADE', 'shorturl_shard_' || drop_shard.name);
END
$$;

COMMENT ON FUNCTION shorturl.drop_shard(text) IS
'coordinator: forgets an empty shard (rebalance() calls it for a retiring shard it has emptied)';

CREATE FUNCTION shorturl.remove_shard(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE shorturl.shards s SET retiring = true WHERE s.name = remove_shard.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shard "%" does not exist', remove_shard.name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM shorturl.shards s WHERE NOT s.retiring) THEN
        RAISE EXCEPTION 'cannot remove the last shard' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE shorturl.rebalance_state SET pending = true;
END
$$;

COMMENT ON FUNCTION shorturl.remove_shard(text) IS
'coordinator: retires a shard: it takes no new keys, and CALL shorturl.rebalance() moves its links away and then forgets it';

CREATE FUNCTION shorturl.set_shard_weight(name text, weight double precision)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE shorturl.shards s SET weight = set_shard_weight.weight WHERE s.name = set_shard_weight.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shard "%" does not exist', set_shard_weight.name USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE shorturl.rebalance_state SET pending = true;
END
$$;

COMMENT ON FUNCTION shorturl.set_shard_weight(text, double precision) IS
'coordinator: changes a shard''s weight; then CALL shorturl.rebalance()';

-- the current map's names and weights, for the pure route(key, names, weights)
CREATE FUNCTION shorturl.active_map(OUT names text[], OUT weights double precision[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(s.name ORDER BY s.name COLLATE "C"), array_agg(s.weight ORDER BY s.name COLLATE "C")
    FROM shorturl.shards s WHERE NOT s.retiring
$$;

COMMENT ON FUNCTION shorturl.active_map() IS
'the shard map route(key) uses, as arrays for the pure route(key, names, weights)';

CREATE FUNCTION shorturl.rebalance_plan()
RETURNS TABLE (source text, target text, links bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record := shorturl.active_map();
    shard text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        -- the shard itself computes the new owners (postgres_fdw ships the pure route)
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT %L::text, shorturl.route(code, $1, $2), count(*) FROM shorturl_remote.%I'
            ' WHERE shorturl.route(code, $1, $2) <> %L GROUP BY 2 ORDER BY 2',
            shard, shard || '_links', shard)
            USING m.names, m.weights;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.rebalance_plan() IS
'coordinator: the dry run of a rebalance: how many links would move, from which shard to which';

CREATE PROCEDURE shorturl.rebalance(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    m record;
    shard text;
    pair record;
    batch text[];
    n_planned bigint;
    n_moved bigint := 0;
    arrived bigint;
    other_pid integer;
BEGIN
    -- procedures that COMMIT cannot have a SET clause: pin the path by hand
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.running_pid INTO other_pid FROM shorturl.rebalance_state r FOR UPDATE;
    IF other_pid IS NOT NULL AND other_pid <> pg_catalog.pg_backend_pid() AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = other_pid) THEN
        RAISE EXCEPTION 'a rebalance is already running (pid %)', other_pid
            USING ERRCODE = 'object_in_use';
    END IF;

    m := shorturl.active_map();
    IF pg_catalog.to_regclass('pg_temp.shorturl_moves') IS NULL THEN
        CREATE TEMP TABLE shorturl_moves (code text COLLATE "C", source text, target text);
    END IF;
    TRUNCATE shorturl_moves;
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        EXECUTE pg_catalog.format(
            'INSERT INTO shorturl_moves SELECT code, %L, shorturl.route(code, $1, $2)'
            ' FROM shorturl_remote.%I WHERE shorturl.route(code, $1, $2) <> %L',
            shard, shard || '_links', shard)
            USING m.names, m.weights;
    END LOOP;
    SELECT count(*) INTO n_planned FROM shorturl_moves;
    UPDATE shorturl.rebalance_state
       SET started_at = pg_catalog.now(), finished_at = NULL, planned = n_planned,
           moved = 0, running_pid = pg_catalog.pg_backend_pid();
    COMMIT;
    RAISE NOTICE 'rebalance: % links to move', n_planned;

    FOR pair IN SELECT DISTINCT mv.source, mv.target FROM shorturl_moves mv ORDER BY 1, 2 LOOP
        LOOP
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            SELECT array_agg(x.code) INTO batch FROM (
                SELECT mv.code FROM shorturl_moves mv
                WHERE mv.source = pair.source AND mv.target = pair.target
                ORDER BY mv.code LIMIT batch_size) x;
            EXIT WHEN batch IS NULL;

            -- 1. no coordinator lookup runs while the batch is between shards
            PERFORM shorturl.lock_rebalance(true);
            -- 2. the old shard writes its pending clicks to its table
            PERFORM shorturl.shard_query(pair.source, 'SELECT shorturl.flush()');
            -- 3. copy (a rerun finds the copies already there and keeps them)
            EXECUTE pg_catalog.format(
                'INSERT INTO shorturl_remote.%I (code, url, created_at, expires_at, max_visits,'
                '  visits, last_visit_at, exhausted_at, is_alias)'
                ' SELECT code, url, created_at, expires_at, max_visits, visits, last_visit_at,'
                '  exhausted_at, is_alias FROM shorturl_remote.%I WHERE code = ANY ($1)'
                ' ON CONFLICT DO NOTHING',
                pair.target || '_links', pair.source || '_links')
                USING batch;
            COMMIT;     -- the new shard has them: lookups find them there now

            -- 4. verify: every link arrived, the same link
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            EXECUTE pg_catalog.format(
                'SELECT count(*) FROM shorturl_remote.%I t JOIN shorturl_remote.%I f USING (code)'
                ' WHERE code = ANY ($1) AND t.url = f.url AND t.created_at = f.created_at',
                pair.target || '_links', pair.source || '_links')
                INTO arrived USING batch;
            IF arrived <> cardinality(batch) THEN
                RAISE EXCEPTION 'rebalance: % of % links did not arrive on shard "%" as they left shard "%"',
                    cardinality(batch) - arrived, cardinality(batch), pair.target, pair.source
                    USING ERRCODE = 'data_exception';
            END IF;

            -- 5. delete from the old shard (its aliases moved: no quarantine)
            PERFORM shorturl.shard_query(pair.source,
                pg_catalog.format('SELECT shorturl.move_out(%L::text[])', batch));
            DELETE FROM shorturl_moves mv WHERE mv.code = ANY (batch);
            n_moved := n_moved + cardinality(batch);
            UPDATE shorturl.rebalance_state SET moved = n_moved;
            COMMIT;
            RAISE NOTICE 'rebalance: moved % of % links (last batch % -> %)',
                n_moved, n_planned, pair.source, pair.target;
        END LOOP;
    END LOOP;

    -- quarantined aliases follow their keys, so a moved key stays refused
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        FOR pair IN EXECUTE pg_catalog.format(
            'SELECT shorturl.route(alias, $1, $2) AS target, array_agg(alias) AS aliases'
            ' FROM shorturl_remote.%I WHERE shorturl.route(alias, $1, $2) <> %L GROUP BY 1',
            shard || '_quarantine', shard) USING m.names, m.weights
        LOOP
            EXECUTE pg_catalog.format(
                'INSERT INTO shorturl_remote.%I (alias, deleted_at, released_at)'
                ' SELECT alias, deleted_at, released_at FROM shorturl_remote.%I'
                ' WHERE alias = ANY ($1) ON CONFLICT DO NOTHING',
                pair.target || '_quarantine', shard || '_quarantine') USING pair.aliases;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            EXECUTE pg_catalog.format('DELETE FROM shorturl_remote.%I WHERE alias = ANY ($1)',
                                      shard || '_quarantine') USING pair.aliases;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
    END LOOP;

    -- retiring shards that are empty now leave the cluster
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR shard IN SELECT s.name FROM shorturl.shards s WHERE s.retiring LOOP
        EXECUTE pg_catalog.format('SELECT count(*) FROM shorturl_remote.%I', shard || '_links') INTO arrived;
        IF arrived = 0 THEN
            PERFORM shorturl.drop_shard(shard);
            RAISE NOTICE 'rebalance: shard "%" is empty and has left the cluster', shard;
        END IF;
    END LOOP;
    -- a map changed while we ran leaves links to move: say so, stay pending
    IF (shorturl.active_map()).names IS DISTINCT FROM m.names
       OR (shorturl.active_map()).weights IS DISTINCT FROM m.weights THEN
        RAISE NOTICE 'rebalance: the shard map changed while it ran; run it again';
    END IF;
    UPDATE shorturl.rebalance_state
       SET pending = EXISTS (SELECT 1 FROM shorturl.shards s WHERE s.retiring)
                     OR (shorturl.active_map()).names IS DISTINCT FROM m.names
                     OR (shorturl.active_map()).weights IS DISTINCT FROM m.weights,
           finished_at = pg_catalog.now(), running_pid = NULL;
    COMMIT;
END
$$;

COMMENT ON PROCEDURE shorturl.rebalance(integer) IS
'coordinator: moves exactly the links whose shard changed with the map, in batches: copy to the new shard, verify, delete from the old; safe to stop and run again';

REVOKE ALL ON FUNCTION shorturl.conninfo_options(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shard_connection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shard_failed(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shard_query(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shard_resolve(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shard_link(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shard_store(text, text, text, timestamptz, bigint, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.coordinator_resolve(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.coordinator_link(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.coordinator_link_status(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.coordinator_visits(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.coordinator_shorten(text, timestamptz, bigint, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.make_coordinator() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.repartition() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.add_shard(text, text, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.drop_shard(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.remove_shard(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.set_shard_weight(text, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.rebalance_plan() FROM PUBLIC;
REVOKE ALL ON PROCEDURE shorturl.rebalance(integer) FROM PUBLIC;
