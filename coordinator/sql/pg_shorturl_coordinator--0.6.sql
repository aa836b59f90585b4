/* pg_shorturl_coordinator--0.6.sql: a coordinator in front of pg_shorturl
 * shards.  Applications call the same functions here as on a single server
 * (shorten, resolve, link_status, visits); each call runs on the shard that
 * owns the code, through PL/Proxy. */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_shorturl_coordinator" to load this file. \quit

-- A coordinator holds no links: it must not be a pg_shorturl store too
-- (both offer the same functions in the schema shorturl).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_shorturl') THEN
        RAISE EXCEPTION 'pg_shorturl is installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A coordinator and a store offer the same functions in the schema shorturl; a database is one or the other.',
                  HINT = 'Make the coordinator in a database of its own.';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA shorturl TO PUBLIC;

CREATE SCHEMA shorturl_remote;
COMMENT ON SCHEMA shorturl_remote IS
'the coordinator''s foreign tables on its shards (made by shorturl.add_shard(), not members of the extension, so pg_dump keeps them)';
REVOKE ALL ON SCHEMA shorturl_remote FROM PUBLIC;

-------------------------------------------------------------------------
-- What the coordinator computes itself, with pg_shorturl's library: the
-- shard map and routing, and the code generator (one sequence and one key
-- for the whole cluster, so generated codes stay unique).
-------------------------------------------------------------------------

CREATE TABLE shorturl.shards (
    name text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_]{1,40}$'),
    weight double precision NOT NULL CHECK (weight BETWEEN 1e-9 AND 1e9),
    conninfo text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retiring boolean NOT NULL DEFAULT false
);

COMMENT ON TABLE shorturl.shards IS
'the cluster''s shards and their weights; change it with add_shard(), remove_shard() and set_shard_weight()';
COMMENT ON COLUMN shorturl.shards.name IS 'shard name (case-sensitive); part of the routing formula, so renaming a shard moves its keys';
COMMENT ON COLUMN shorturl.shards.weight IS 'relative share of keys, from 1e-9 to 1e9';
COMMENT ON COLUMN shorturl.shards.conninfo IS 'libpq connection string of the shard, without its password (that is in the user mappings)';
COMMENT ON COLUMN shorturl.shards.created_at IS 'when the shard was added';
COMMENT ON COLUMN shorturl.shards.retiring IS 'true for a shard being removed: it takes no new keys, and a rebalance empties it, then drops it';

SELECT pg_catalog.pg_extension_config_dump('shorturl.shards', '');
REVOKE ALL ON shorturl.shards FROM PUBLIC;
GRANT SELECT ON shorturl.shards TO PUBLIC;

CREATE FUNCTION shorturl.shards_changed()
RETURNS trigger
AS '$libdir/pg_shorturl', 'shorturl_shards_changed'
LANGUAGE C;

COMMENT ON FUNCTION shorturl.shards_changed() IS
'trigger on shorturl.shards: makes every session drop its cached shard map when a change commits';

CREATE TRIGGER shards_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shorturl.shards
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.shards_changed();

COMMENT ON TRIGGER shards_changed ON shorturl.shards IS
'invalidates the per-session shard map cache of shorturl.route(key)';

ALTER TABLE shorturl.shards ENABLE ALWAYS TRIGGER shards_changed;

CREATE FUNCTION shorturl.route(key text)
RETURNS text
AS '$libdir/pg_shorturl', 'shorturl_route_text'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(text) IS
'name of the shard that owns a code (weighted rendezvous hashing, as pg_shorturl''s route())';

CREATE FUNCTION shorturl.route(key text, names text[], weights double precision[])
RETURNS text
AS '$libdir/pg_shorturl', 'shorturl_route_map_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(text, text[], double precision[]) IS
'name of the shard that owns a code under the given map: the pure form, which a shard computes for a rebalance plan';

CREATE FUNCTION shorturl.route_position(key text)
RETURNS integer
AS '$libdir/pg_shorturl', 'shorturl_route_position_text'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route_position(text) IS
'position (from 0) of route(key) among all shards sorted by name: the PL/Proxy partition the call goes to';

CREATE SEQUENCE shorturl.link_id_seq AS bigint MINVALUE 0 START WITH 0 NO CYCLE;

COMMENT ON SEQUENCE shorturl.link_id_seq IS
'link ids of the whole cluster: every link takes one, and a generated code is its id placed in the code space of shorturl.code_key';

CREATE TABLE shorturl.code_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key bytea NOT NULL CHECK (octet_length(key) = 16),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    width_from bigint[] NOT NULL DEFAULT '{0}',
    widths integer[] NOT NULL DEFAULT '{7}',
    CHECK (pg_catalog.cardinality(width_from) = pg_catalog.cardinality(widths)
           AND pg_catalog.cardinality(widths) BETWEEN 1 AND 10
           AND width_from[1] = 0)
);

COMMENT ON TABLE shorturl.code_key IS
'the key of the permutation that turns link ids into codes, and the code widths, for the whole cluster; secret';
COMMENT ON COLUMN shorturl.code_key.singleton IS 'always true: the table holds one row';
COMMENT ON COLUMN shorturl.code_key.key IS 'the SipHash-2-4 key of the Feistel permutation (16 bytes)';
COMMENT ON COLUMN shorturl.code_key.created_at IS 'when the key was made';
COMMENT ON COLUMN shorturl.code_key.width_from IS 'first link id of each width segment';
COMMENT ON COLUMN shorturl.code_key.widths IS 'code width each segment starts at';

CREATE FUNCTION shorturl.code_key_changed()
RETURNS trigger
AS '$libdir/pg_shorturl', 'shorturl_code_key_changed'
LANGUAGE C;

COMMENT ON FUNCTION shorturl.code_key_changed() IS
'trigger on shorturl.code_key: makes every session reload the key when a change commits';

CREATE TRIGGER code_key_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shorturl.code_key
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.code_key_changed();

COMMENT ON TRIGGER code_key_changed ON shorturl.code_key IS
'invalidates the per-session cache of the key';

ALTER TABLE shorturl.code_key ENABLE ALWAYS TRIGGER code_key_changed;

CREATE FUNCTION shorturl.new_code_key()
RETURNS bytea
AS '$libdir/pg_shorturl', 'shorturl_new_code_key'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.new_code_key() IS
'16 random bytes from the operating system''s strong random source';

CREATE FUNCTION shorturl.encode_id(id bigint)
RETURNS text
AS '$libdir/pg_shorturl', 'shorturl_encode_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.encode_id(bigint) IS
'the code the generator makes of a link id';

CREATE FUNCTION shorturl.decode_id(code text)
RETURNS bigint
AS '$libdir/pg_shorturl', 'shorturl_decode_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.decode_id(text) IS
'the link id a generated code came from, or NULL';

CREATE FUNCTION shorturl.set_code_width(width integer)
RETURNS integer
AS '$libdir/pg_shorturl', 'shorturl_set_code_width'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.set_code_width(integer) IS
'sets the width (4..10) new generated codes start at; refuses a width the codes already issued have reached';

SELECT pg_catalog.pg_extension_config_dump('shorturl.code_key', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.link_id_seq', '');
REVOKE ALL ON shorturl.code_key FROM PUBLIC;
REVOKE ALL ON shorturl.link_id_seq FROM PUBLIC;

-------------------------------------------------------------------------
-- Calls to the shards, on PL/Proxy.  The cluster "shorturl_cluster" is a
-- foreign server of the plproxy wrapper whose partitions p0..pN-1 are the
-- shards sorted by name (shorturl.sync_cluster() writes it), so
-- RUN ON route_position(code) reaches the shard that owns the code.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_resolve(code text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(code);
    SELECT shorturl.resolve(code);
$$;

CREATE FUNCTION shorturl._proxy_link_status(code text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(code);
    SELECT shorturl.link_status(code);
$$;

CREATE FUNCTION shorturl._proxy_visits(code text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(code);
    SELECT shorturl.visits(code);
$$;

-- the same, on every shard: while a rebalance is due, a link may still be
-- on the shard it is leaving
CREATE FUNCTION shorturl._proxy_status_everywhere(code text)
RETURNS SETOF text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON ALL;
    SELECT shorturl.link_status(code);
$$;

CREATE FUNCTION shorturl._proxy_resolve_on(shard integer, code text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.resolve(code);
$$;

CREATE FUNCTION shorturl._proxy_link_status_on(shard integer, code text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.link_status(code);
$$;

CREATE FUNCTION shorturl._proxy_visits_on(shard integer, code text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.visits(code);
$$;

CREATE FUNCTION shorturl._proxy_store_link(shard integer, id bigint, code text, url text,
                                           expires_at timestamptz, max_visits bigint,
                                           is_alias boolean, domain text)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.store_link(id, code, url, expires_at, max_visits, is_alias, domain);
$$;

CREATE FUNCTION shorturl._proxy_reusable_code(url text, expires_at timestamptz, max_visits bigint,
                                              alias text, domain text)
RETURNS SETOF text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON ALL;
    SELECT shorturl.reusable_code(url, expires_at, max_visits, alias, domain);
$$;

CREATE FUNCTION shorturl._proxy_flush(shard integer)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.flush();
$$;

CREATE FUNCTION shorturl._proxy_move_out(shard integer, ids bigint[])
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.move_out(ids);
$$;

CREATE FUNCTION shorturl._proxy_add_visits(shard integer, ids bigint[], visits bigint[])
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.add_visits(ids, visits);
$$;

CREATE FUNCTION shorturl._proxy_forget_moved(shard integer, ids bigint[])
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.forget_moved(ids);
$$;

-- while a rebalance is due, an alias may still live on the shard it is
-- leaving: a new alias must be free on every shard
CREATE FUNCTION shorturl._proxy_code_state_everywhere(code text)
RETURNS SETOF text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON ALL;
    SELECT shorturl.code_state(code, '');
$$;

CREATE FUNCTION shorturl._proxy_store_identity(shard integer)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.store_identity();
$$;

-- Errors of those calls, classified by SQLSTATE and raised again with the
-- shard's name (src/coordinator.c).
CREATE FUNCTION shorturl._reraise(sqlstate text, message text, detail text, shard text)
RETURNS void
AS 'MODULE_PATHNAME', 'shorturl_reraise'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._reraise(text, text, text, text) IS
'raises again the error of a call to a shard: 08006 when the shard is unavailable or did not answer, else the shard''s own SQLSTATE and message, naming the shard';

-- The deadline of an API call: shorturl.remote_timeout, which PL/Proxy
-- alone does not enforce against a shard that never answers.
CREATE FUNCTION shorturl._deadline_start()
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_deadline_start'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._deadline_start() IS
'arms the deadline of an API call: shorturl.remote_timeout from now';

CREATE FUNCTION shorturl._deadline_stop()
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_deadline_stop'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._deadline_stop() IS
'disarms the deadline of an API call';

CREATE FUNCTION shorturl.conninfo_options(conninfo text, OUT keyword text, OUT value text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'shorturl_conninfo_options'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.conninfo_options(text) IS
'the options a libpq connection string sets, as libpq parses it';

-- shard_at names the shard at a PL/Proxy partition
CREATE FUNCTION shorturl._shard_at(pos integer)
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT name FROM shorturl.shards ORDER BY name COLLATE "C" OFFSET pos LIMIT 1
$$;

COMMENT ON FUNCTION shorturl._shard_at(integer) IS
'the shard at a PL/Proxy partition of shorturl_cluster (shards sorted by name)';

-------------------------------------------------------------------------
-- Where link ids come from.  One coordinator owns the sequence (and made
-- the key); any other coordinator of the same shards takes its ids from
-- that one (shorturl.set_id_source), so generated codes stay unique
-- however many coordinators hand them out.
-------------------------------------------------------------------------

CREATE TABLE shorturl.id_source (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    conninfo text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.id_source IS
'the coordinator this one takes link ids from (and whose key it uses); empty on the coordinator that owns the sequence';
COMMENT ON COLUMN shorturl.id_source.singleton IS 'always true: the table holds at most one row';
COMMENT ON COLUMN shorturl.id_source.conninfo IS 'connection string of that coordinator, without its password';
COMMENT ON COLUMN shorturl.id_source.set_at IS 'when it was set';

SELECT pg_catalog.pg_extension_config_dump('shorturl.id_source', '');
REVOKE ALL ON shorturl.id_source FROM PUBLIC;

CREATE FUNCTION shorturl._proxy_next_link_id()
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_id_source';
    RUN ON 0;
    SELECT shorturl.next_link_id();
$$;

CREATE FUNCTION shorturl._proxy_last_link_id()
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_id_source';
    RUN ON 0;
    SELECT shorturl.last_link_id();
$$;

CREATE FUNCTION shorturl.next_link_id()
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM shorturl.id_source) THEN
        BEGIN
            RETURN shorturl._proxy_next_link_id();
        EXCEPTION WHEN OTHERS THEN
            DECLARE d text;
            BEGIN
                GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, 'id source');
            END;
        END;
    END IF;
    RETURN pg_catalog.nextval('shorturl.link_id_seq'::pg_catalog.regclass);
END
$$;

COMMENT ON FUNCTION shorturl.next_link_id() IS
'the next link id of the cluster: from this coordinator''s sequence, or from its id source';

CREATE FUNCTION shorturl.last_link_id()
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM shorturl.id_source) THEN
        BEGIN
            RETURN shorturl._proxy_last_link_id();
        EXCEPTION WHEN OTHERS THEN
            DECLARE d text;
            BEGIN
                GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, 'id source');
            END;
        END;
    END IF;
    RETURN pg_catalog.pg_sequence_last_value('shorturl.link_id_seq'::pg_catalog.regclass);
END
$$;

COMMENT ON FUNCTION shorturl.last_link_id() IS
'the last link id the cluster handed out, or NULL if none';

-------------------------------------------------------------------------
-- The cluster's definition: runtime objects, not members of the
-- extension, so pg_dump keeps them and a restored coordinator works.
-------------------------------------------------------------------------

-- A rebalance is due from a change of the map until a rebalance finishes.
CREATE TABLE shorturl.rebalance_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pending boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    finished_at timestamptz,
    planned bigint NOT NULL DEFAULT 0,
    moved bigint NOT NULL DEFAULT 0,
    running_pid integer
);

COMMENT ON TABLE shorturl.rebalance_state IS
'this coordinator''s rebalance: due, under way, done (no row before the first change of the map)';
COMMENT ON COLUMN shorturl.rebalance_state.singleton IS 'always true: the table holds at most one row';
COMMENT ON COLUMN shorturl.rebalance_state.pending IS 'the map changed and some links may still be on their old shard';
COMMENT ON COLUMN shorturl.rebalance_state.started_at IS 'when the latest rebalance started';
COMMENT ON COLUMN shorturl.rebalance_state.finished_at IS 'when it finished; NULL while it runs (or if it was stopped)';
COMMENT ON COLUMN shorturl.rebalance_state.planned IS 'links it found to move';
COMMENT ON COLUMN shorturl.rebalance_state.moved IS 'links it has moved so far';
COMMENT ON COLUMN shorturl.rebalance_state.running_pid IS 'the backend running it';

SELECT pg_catalog.pg_extension_config_dump('shorturl.rebalance_state', '');
REVOKE ALL ON shorturl.rebalance_state FROM PUBLIC;
GRANT SELECT ON shorturl.rebalance_state TO PUBLIC;

-- Links copied to their new shard whose last clicks on the old one have
-- not reached the copy yet: a rebalance killed midway finishes them.
CREATE TABLE shorturl.rebalance_moves (
    id bigint PRIMARY KEY,
    source text COLLATE "C" NOT NULL,
    target text COLLATE "C" NOT NULL,
    copied_visits bigint NOT NULL
);

COMMENT ON TABLE shorturl.rebalance_moves IS
'links a rebalance copied to their new shard, with the count it copied, until their last clicks on the old shard are added';
COMMENT ON COLUMN shorturl.rebalance_moves.id IS 'the link';
COMMENT ON COLUMN shorturl.rebalance_moves.source IS 'the shard it leaves';
COMMENT ON COLUMN shorturl.rebalance_moves.target IS 'the shard it goes to';
COMMENT ON COLUMN shorturl.rebalance_moves.copied_visits IS 'its count when it was copied';

SELECT pg_catalog.pg_extension_config_dump('shorturl.rebalance_moves', '');
REVOKE ALL ON shorturl.rebalance_moves FROM PUBLIC;

CREATE FUNCTION shorturl._rebalance_pending()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT pending FROM shorturl.rebalance_state), false)
$$;

COMMENT ON FUNCTION shorturl._rebalance_pending() IS
'whether a rebalance is due, so a code not on its owner may be on another shard';

CREATE FUNCTION shorturl._options(opts text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN coalesce(cardinality(opts), 0) = 0 THEN ''
                ELSE 'OPTIONS (' || array_to_string(opts, ', ') || ')' END
$$;

COMMENT ON FUNCTION shorturl._options(text[]) IS
'an OPTIONS clause of foreign-server DDL from "name ''value''" items';

-- libpq options that belong in a user mapping (secrets), not in a server
CREATE FUNCTION shorturl._is_secret(keyword text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT keyword IN ('user', 'password', 'sslkey', 'sslcert', 'sslpassword', 'passfile')
$$;

COMMENT ON FUNCTION shorturl._is_secret(text) IS
'whether a libpq option goes into a user mapping rather than a server definition';

-- conninfo_quote writes one libpq key=value pair
CREATE FUNCTION shorturl._conninfo_pair(keyword text, value text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT keyword || '=''' || replace(replace(value, '\', '\\'), '''', '\''') || ''''
$$;

COMMENT ON FUNCTION shorturl._conninfo_pair(text, text) IS
'one key=value pair of a libpq connection string, quoted';

CREATE FUNCTION shorturl.sync_cluster()
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- PL/Proxy counts timeouts in whole seconds
    timeout_s integer := greatest(1, ceil(extract(epoch FROM coalesce(
        pg_catalog.current_setting('shorturl.remote_timeout', true)::interval, '5 s'))))::integer;
    opts text[] := ARRAY[pg_catalog.format('modular_mapping %L', '1'),
                         pg_catalog.format('query_timeout %L', timeout_s),
                         pg_catalog.format('disable_binary %L', '1')];
    s record;
    i integer := 0;
    owner text := (SELECT e.extowner::pg_catalog.regrole::text FROM pg_catalog.pg_extension e
                   WHERE e.extname = 'pg_shorturl_coordinator');
BEGIN
    PERFORM pg_catalog.set_config('client_min_messages', 'warning', true);
    EXECUTE 'DROP SERVER IF EXISTS shorturl_cluster CASCADE';
    FOR s IN SELECT sh.name, sh.conninfo FROM shorturl.shards sh ORDER BY sh.name COLLATE "C" LOOP
        opts := opts || pg_catalog.format('p%s %L', i,
            concat_ws(' ', s.conninfo,
                      shorturl._conninfo_pair('connect_timeout', timeout_s::text),
                      shorturl._conninfo_pair('application_name', 'pg_shorturl coordinator')));
        i := i + 1;
    END LOOP;
    EXECUTE pg_catalog.format('CREATE SERVER shorturl_cluster FOREIGN DATA WRAPPER plproxy %s',
                              shorturl._options(opts));
    -- the shards' user and password: those of the first shard's mapping
    -- (a PL/Proxy cluster has one user mapping for all its partitions)
    EXECUTE pg_catalog.format('CREATE USER MAPPING FOR %s SERVER shorturl_cluster %s', owner,
        shorturl._options(ARRAY(
            SELECT pg_catalog.format('%I %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1))
              FROM pg_catalog.pg_user_mappings um, unnest(um.umoptions) o
             WHERE um.srvname = (SELECT 'shorturl_shard_' || sh.name FROM shorturl.shards sh
                                 ORDER BY sh.name COLLATE "C" LIMIT 1)
               AND um.usename = owner)));
    EXECUTE pg_catalog.format('GRANT USAGE ON FOREIGN SERVER shorturl_cluster TO %s', owner);
END
$$;

COMMENT ON FUNCTION shorturl.sync_cluster() IS
'writes the PL/Proxy cluster shorturl_cluster from shorturl.shards: partitions in name order, modular mapping, shorturl.remote_timeout as connect and query timeout';

CREATE FUNCTION shorturl.add_shard(name text, conninfo text, weight double precision DEFAULT 1)
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
            is_alias boolean NOT NULL
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

    -- the second shard onwards moves keys: a rebalance is due
    IF (SELECT count(*) FROM shorturl.shards) > 1 THEN
        INSERT INTO shorturl.rebalance_state (pending) VALUES (true)
        ON CONFLICT (singleton) DO UPDATE SET pending = true;
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl.add_shard(text, text, double precision) IS
'adds a shard: a postgres_fdw server and foreign tables for data moves, its partition of the PL/Proxy cluster, and its row in shorturl.shards; the connection string''s user and password go to user mappings';

CREATE FUNCTION shorturl._drop_shard(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM shorturl.shards s WHERE s.name = _drop_shard.name;
    PERFORM pg_catalog.set_config('client_min_messages', 'warning', true);
    EXECUTE pg_catalog.format('DROP SERVER %I CASCADE', 'shorturl_shard_' || _drop_shard.name);
    PERFORM shorturl.sync_cluster();
END
$$;

COMMENT ON FUNCTION shorturl._drop_shard(text) IS
'forgets an empty retiring shard: its row, its foreign server and tables, its partition';

CREATE FUNCTION shorturl.remove_shard(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE shorturl.shards s SET retiring = true WHERE s.name = remove_shard.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shard "%" does not exist', remove_shard.name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM shorturl.shards s WHERE NOT s.retiring) THEN
        RAISE EXCEPTION 'cannot remove the last shard' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO shorturl.rebalance_state (pending) VALUES (true)
    ON CONFLICT (singleton) DO UPDATE SET pending = true;
END
$$;

COMMENT ON FUNCTION shorturl.remove_shard(text) IS
'retires a shard: it takes no new keys, and shorturl.rebalance() moves its links away, then forgets it';

CREATE FUNCTION shorturl.forget_shard(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM shorturl.shards s WHERE s.name = forget_shard.name) THEN
        RAISE EXCEPTION 'shard "%" does not exist', forget_shard.name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT (SELECT s.retiring FROM shorturl.shards s WHERE s.name = forget_shard.name) THEN
        RAISE EXCEPTION 'shard "%" is not retiring', forget_shard.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run shorturl.remove_shard() first; shorturl.rebalance() then moves its links away.  forget_shard() is for a retiring shard that is gone for good.';
    END IF;
    RAISE WARNING 'shard "%" leaves the cluster with the links still on it', forget_shard.name;
    DELETE FROM shorturl.rebalance_moves j WHERE j.source = forget_shard.name OR j.target = forget_shard.name;
    PERFORM shorturl._drop_shard(forget_shard.name);
END
$$;

COMMENT ON FUNCTION shorturl.forget_shard(text) IS
'drops a retiring shard that cannot be reached, without moving its links: they are lost to the cluster';

CREATE FUNCTION shorturl.set_shard_weight(name text, weight double precision)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE shorturl.shards s SET weight = set_shard_weight.weight WHERE s.name = set_shard_weight.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shard "%" does not exist', set_shard_weight.name USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO shorturl.rebalance_state (pending) VALUES (true)
    ON CONFLICT (singleton) DO UPDATE SET pending = true;
END
$$;

COMMENT ON FUNCTION shorturl.set_shard_weight(text, double precision) IS
'changes a shard''s weight; a rebalance then moves the links whose owner changed';

CREATE FUNCTION shorturl.set_id_source(conninfo text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    server_opts text[] := ARRAY['modular_mapping ''1'''];
    mapping_opts text[] := '{}';
    kept text[] := '{}';
    o record;
    owner text := (SELECT e.extowner::pg_catalog.regrole::text FROM pg_catalog.pg_extension e
                   WHERE e.extname = 'pg_shorturl_coordinator');
BEGIN
    IF pg_catalog.pg_sequence_last_value('shorturl.link_id_seq'::pg_catalog.regclass) IS NOT NULL THEN
        RAISE EXCEPTION 'this coordinator has handed out link ids of its own'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a coordinator that has made no link may take its ids from another.';
    END IF;
    FOR o IN SELECT * FROM shorturl.conninfo_options(set_id_source.conninfo) LOOP
        IF shorturl._is_secret(o.keyword) THEN
            mapping_opts := mapping_opts || pg_catalog.format('%I %L', o.keyword, o.value);
        ELSE
            kept := kept || shorturl._conninfo_pair(o.keyword, o.value);
        END IF;
    END LOOP;
    PERFORM pg_catalog.set_config('client_min_messages', 'warning', true);
    EXECUTE 'DROP SERVER IF EXISTS shorturl_id_source CASCADE';
    EXECUTE pg_catalog.format('CREATE SERVER shorturl_id_source FOREIGN DATA WRAPPER plproxy %s',
        shorturl._options(server_opts || pg_catalog.format('p0 %L', array_to_string(kept, ' '))));
    EXECUTE pg_catalog.format('CREATE USER MAPPING FOR %s SERVER shorturl_id_source %s', owner,
                              shorturl._options(mapping_opts));
    -- the same key and widths as the coordinator the ids come from
    EXECUTE pg_catalog.format('CREATE SERVER shorturl_id_source_fdw FOREIGN DATA WRAPPER postgres_fdw %s',
        shorturl._options(ARRAY(SELECT pg_catalog.format('%I %L', c.keyword, c.value)
                                FROM shorturl.conninfo_options(set_id_source.conninfo) c
                                WHERE NOT shorturl._is_secret(c.keyword))));
    EXECUTE pg_catalog.format('CREATE USER MAPPING FOR %s SERVER shorturl_id_source_fdw %s', owner,
                              shorturl._options(mapping_opts));
    EXECUTE 'CREATE FOREIGN TABLE pg_temp.source_code_key (key bytea, created_at timestamptz,
                 width_from bigint[], widths integer[])
             SERVER shorturl_id_source_fdw OPTIONS (schema_name ''shorturl'', table_name ''code_key'')';
    DELETE FROM shorturl.code_key;
    INSERT INTO shorturl.code_key (key, created_at, width_from, widths)
    SELECT key, created_at, width_from, widths FROM pg_temp.source_code_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the coordinator at "%" has no code key yet', array_to_string(kept, ' ')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Make a first link there, or call shorturl.set_code_width() there, then try again.';
    END IF;
    DROP FOREIGN TABLE pg_temp.source_code_key;
    EXECUTE 'DROP SERVER shorturl_id_source_fdw CASCADE';
    INSERT INTO shorturl.id_source (conninfo) VALUES (array_to_string(kept, ' '))
    ON CONFLICT (singleton) DO UPDATE SET conninfo = excluded.conninfo, set_at = pg_catalog.now();
END
$$;

COMMENT ON FUNCTION shorturl.set_id_source(text) IS
'makes this coordinator take link ids from another coordinator of the same shards, with its key: generated codes stay unique with several coordinators';

-------------------------------------------------------------------------
-- The API: the same functions as on a single server.  Each runs on the
-- shard that owns the code.  A shard that restarted since this session's
-- last call (SQLSTATE 57P01..57P03: its connection was closed before our
-- query ran) is asked once more; any other failure is raised again naming
-- the shard.  While a rebalance is due, a code its owner does not know is
-- looked for on the other shards.  SECURITY DEFINER: the calls connect as
-- the extension owner's user mapping, so an application role needs only
-- EXECUTE.
-------------------------------------------------------------------------

-- elsewhere finds the shard other than the owner that has a code (during a
-- rebalance), as a PL/Proxy partition, or NULL
CREATE FUNCTION shorturl._elsewhere(code text)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner integer := shorturl.route_position(code);
    n integer := (SELECT count(*) FROM shorturl.shards);
    d text;
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        CONTINUE WHEN i = owner;
        BEGIN
            IF shorturl._proxy_link_status_on(i, code) <> 'unknown' THEN
                RETURN i;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- a shard we cannot ask might have the link: no answer is a guess
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(i));
        END;
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl._elsewhere(text) IS
'during a rebalance: the PL/Proxy partition of the shard other than its owner that has a code, or NULL';

CREATE FUNCTION shorturl.resolve(code text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    url text;
    d text;
    other integer;
BEGIN
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            url := shorturl._proxy_resolve(code);
            -- during a rebalance the link may be between its old shard and
            -- its owner: look where it is, then ask the owner once more in
            -- case it arrived there meanwhile (each copy precedes a delete)
            IF url IS NULL AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code);
                IF other IS NOT NULL THEN
                    url := shorturl._proxy_resolve_on(other, code);
                END IF;
                IF url IS NULL THEN
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

COMMENT ON FUNCTION shorturl.resolve(text) IS
'URL of an active link, counting one visit on the shard that owns it; NULL for an unknown, expired, exhausted or disabled code';

CREATE FUNCTION shorturl.link_status(code text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    status text;
    d text;
    other integer;
BEGIN
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            status := shorturl._proxy_link_status(code);
            -- during a rebalance the link may be between its old shard and
            -- its owner: look where it is, then ask the owner once more in
            -- case it arrived there meanwhile (each copy precedes a delete)
            IF status = 'unknown' AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code);
                IF other IS NOT NULL THEN
                    status := shorturl._proxy_link_status_on(other, code);
                END IF;
                IF status = 'unknown' THEN
                    status := shorturl._proxy_link_status(code);
                END IF;
            END IF;
            armed := shorturl._deadline_stop();
            RETURN status;
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

COMMENT ON FUNCTION shorturl.link_status(text) IS
'active, expired, exhausted, disabled or unknown, from the shard that owns the code, without counting a visit';

CREATE FUNCTION shorturl.visits(code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    n bigint;
    d text;
    other integer;
BEGIN
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            n := shorturl._proxy_visits(code);
            -- during a rebalance the link may be between its old shard and
            -- its owner: look where it is, then ask the owner once more in
            -- case it arrived there meanwhile (each copy precedes a delete)
            IF n IS NULL AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code);
                IF other IS NOT NULL THEN
                    n := shorturl._proxy_visits_on(other, code);
                END IF;
                IF n IS NULL THEN
                    n := shorturl._proxy_visits(code);
                END IF;
            END IF;
            armed := shorturl._deadline_stop();
            RETURN n;
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

COMMENT ON FUNCTION shorturl.visits(text) IS
'visits of a link so far, from the shard that owns it, unflushed ones included; NULL for an unknown code';

CREATE FUNCTION shorturl.shorten(url text,
                                 expires_at timestamptz DEFAULT NULL,
                                 max_visits bigint DEFAULT NULL,
                                 alias text DEFAULT NULL,
                                 reuse boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    -- an alias that equals a generated code costs an id: ten in a row mean
    -- the code space is nearly full
    max_attempts CONSTANT integer := 10;
    id bigint;
    code text;
    found text;
    d text;
    shard text;
    stored boolean;
BEGIN
    IF url IS NULL THEN
        RAISE EXCEPTION 'url must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    armed := shorturl._deadline_start();
    -- links live where their codes route, not their URLs: ask every shard
    IF reuse THEN
        -- serialise reuse of one URL, as a single server does
        PERFORM pg_catalog.pg_advisory_xact_lock(21249, pg_catalog.hashtext(url));
        BEGIN
            SELECT min(r) INTO found
              FROM shorturl._proxy_reusable_code(url, expires_at, max_visits, alias, '') r;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, NULL);
        END;
        IF found IS NOT NULL THEN
            armed := shorturl._deadline_stop();
            RETURN found;
        END IF;
    END IF;

    IF alias IS NOT NULL THEN
        -- the code of an id the cluster handed out is never handed out again
        IF shorturl.decode_id(alias) <= shorturl.last_link_id() THEN
            RAISE EXCEPTION 'alias "%" is already taken', alias
                USING ERRCODE = 'unique_violation',
                      DETAIL = 'It is a generated code that was handed out before; a code is never handed out twice.',
                      HINT = 'Choose another alias, or omit it to get a generated code.';
        END IF;
        shard := shorturl.route(alias);
        -- while a rebalance is due the alias may live on the shard it leaves
        IF shorturl._rebalance_pending() THEN
            BEGIN
                SELECT min(st) INTO found
                  FROM shorturl._proxy_code_state_everywhere(alias) st WHERE st <> 'free';
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, NULL);
            END;
            IF found IS NOT NULL THEN
                armed := shorturl._deadline_stop();
                RAISE EXCEPTION 'alias "%" is %', alias,
                        CASE found WHEN 'retired' THEN 'retired' ELSE 'already taken' END
                    USING ERRCODE = 'unique_violation',
                          HINT = 'Choose another alias, or omit it to get a generated code.';
            END IF;
        END IF;
        BEGIN
            stored := shorturl._proxy_store_link(shorturl.route_position(alias), shorturl.next_link_id(),
                                                 alias, url, expires_at, max_visits, true, '');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shard);
        END;
        armed := shorturl._deadline_stop();
        IF NOT stored THEN
            RAISE EXCEPTION 'alias "%" is already taken', alias
                USING ERRCODE = 'unique_violation',
                      HINT = 'Choose another alias, or omit it to get a generated code.';
        END IF;
        RETURN alias;
    END IF;

    -- the key: made by the first link, as on a single server
    IF NOT EXISTS (SELECT FROM shorturl.code_key) THEN
        INSERT INTO shorturl.code_key (key) VALUES (shorturl.new_code_key())
        ON CONFLICT (singleton) DO NOTHING;
    END IF;
    FOR attempt IN 1 .. max_attempts LOOP
        id := shorturl.next_link_id();
        code := shorturl.encode_id(id);
        shard := shorturl.route(code);
        BEGIN
            stored := shorturl._proxy_store_link(shorturl.route_position(code), id, code, url,
                                                 expires_at, max_visits, false, '');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shard);
        END;
        IF stored THEN
            armed := shorturl._deadline_stop();
            RETURN code;
        END IF;
    END LOOP;
    armed := shorturl._deadline_stop();
    RAISE EXCEPTION 'could not find a free code in % attempts', max_attempts
        USING ERRCODE = 'program_limit_exceeded',
              DETAIL = 'Every generated code tried was already taken.',
              HINT = 'The code space may be nearly full: shorturl.set_code_width() can widen it.';
END
$$;

COMMENT ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean) IS
'stores a link on the shard its code routes to and returns the code: generated from the cluster''s sequence and key, or the alias given; reuse => true asks every shard for an existing active link first';

REVOKE ALL ON FUNCTION shorturl.resolve(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_status(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.visits(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean) FROM PUBLIC;

-------------------------------------------------------------------------
-- Rebalancing.  Changing the map moves nothing by itself; rebalance_plan()
-- says what would move, and CALL rebalance() moves it, in batches, each a
-- few transactions, so that a link is never on no shard, and nothing is
-- counted twice or lost, however the run is interrupted:
--   1. the old shard flushes its clicks;
--   2. the batch is copied to the new shard, links and counts, and the
--      copied counts are written down here (rebalance_moves), in one
--      commit: from now on lookups find the links on the new shard;
--   3. the old shard deletes the batch, leaving each link's final count
--      there in shorturl.moved_links (its last clicks, made by clients
--      that still routed to it, included);
--   4. the new shard adds final minus copied to each count, once
--      (add_visits remembers what arrived), and both sides forget.
-- A rerun starts by finishing step 4 for whatever step 3 left.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_forget_arrived(shard integer, ids bigint[])
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.forget_arrived(ids);
$$;

-- the map that routes new keys: shards that are not retiring, by name
CREATE FUNCTION shorturl._active_map(OUT names text[], OUT weights double precision[])
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(name ORDER BY name COLLATE "C"), array_agg(weight ORDER BY name COLLATE "C")
    FROM shorturl.shards WHERE NOT retiring
$$;

COMMENT ON FUNCTION shorturl._active_map() IS
'the names and weights of the shards that take keys, sorted by name';

CREATE FUNCTION shorturl.rebalance_plan()
RETURNS TABLE (source text, target text, links bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record := shorturl._active_map();
    shard text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        -- each shard computes its own links' new owners (postgres_fdw ships the pure route)
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT %L::text, shorturl.route(code, $1, $2), count(*) FROM shorturl_remote.%I'
            ' WHERE shorturl.route(code, $1, $2) <> %L GROUP BY 2 ORDER BY 2',
            shard, shard || '_links', shard)
            USING m.names, m.weights;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.rebalance_plan() IS
'the dry run of a rebalance: how many links would move from which shard to which';

-- finish_moves does step 4 for the links a shard has left (moved_links)
CREATE FUNCTION shorturl._finish_moves(source text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    total bigint := 0;
    journaled bigint[];
    still_there bigint[];
    done bigint[];
BEGIN
    -- the links the source has moved out: their last clicks there join
    -- their copies (add_visits counts each link once, however often asked)
    FOR t IN EXECUTE pg_catalog.format(
        'SELECT j.target, array_agg(j.id ORDER BY j.id) AS ids,'
        '       array_agg(greatest(m.visits - j.copied_visits, 0) ORDER BY j.id) AS deltas'
        '  FROM shorturl.rebalance_moves j JOIN shorturl_remote.%I m ON m.id = j.id'
        ' WHERE j.source = %L GROUP BY j.target',
        source || '_moved_links', source)
    LOOP
        PERFORM shorturl._proxy_add_visits(shorturl._position(t.target), t.ids, t.deltas);
        PERFORM shorturl._proxy_forget_moved(shorturl._position(source), t.ids);
        DELETE FROM shorturl.rebalance_moves WHERE id = ANY (t.ids);
        PERFORM shorturl._proxy_forget_arrived(shorturl._position(t.target), t.ids);
        total := total + cardinality(t.ids);
    END LOOP;

    -- journal rows left without a moved_links row: a link the source still
    -- has is not moved out yet (its batch runs again); one it no longer has
    -- was finished by a run stopped before its journal row went
    SELECT array_agg(j.id) INTO journaled FROM shorturl.rebalance_moves j WHERE j.source = _finish_moves.source;
    IF journaled IS NOT NULL THEN
        EXECUTE pg_catalog.format('SELECT array_agg(id) FROM shorturl_remote.%I WHERE id = ANY ($1)',
                                  source || '_links')
            INTO still_there USING journaled;
        done := ARRAY(SELECT unnest(journaled) EXCEPT SELECT unnest(coalesce(still_there, '{}')));
        FOR t IN SELECT j.target, array_agg(j.id) AS ids FROM shorturl.rebalance_moves j
                  WHERE j.id = ANY (done) GROUP BY j.target
        LOOP
            PERFORM shorturl._proxy_forget_arrived(shorturl._position(t.target), t.ids);
        END LOOP;
        DELETE FROM shorturl.rebalance_moves j WHERE j.id = ANY (done);
    END IF;
    RETURN total;
END
$$;

COMMENT ON FUNCTION shorturl._finish_moves(text) IS
'rebalance step 4 for the links a shard has left: their last clicks there join their copies, once';

CREATE FUNCTION shorturl._position(shard text)
RETURNS integer
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer FROM shorturl.shards s WHERE s.name < shard COLLATE "C"
$$;

COMMENT ON FUNCTION shorturl._position(text) IS
'the PL/Proxy partition of a shard (its position among the shards sorted by name)';

CREATE PROCEDURE shorturl.rebalance(batch_size integer DEFAULT 1000)
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
    arrived bigint[];
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
            'INSERT INTO shorturl_moves SELECT id, %L, shorturl.route(code, $1, $2)'
            ' FROM shorturl_remote.%I WHERE shorturl.route(code, $1, $2) <> %L',
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

            -- 1. the old shard writes its pending clicks to its table
            PERFORM shorturl._proxy_flush(shorturl._position(pair.source));
            -- 2. copy links and counts, and write the copied counts down
            EXECUTE pg_catalog.format(
                'INSERT INTO shorturl_remote.%I (id, code, domain, url, created_at, expires_at,'
                '  max_visits, exhausted_at, disabled_at, disabled_reason, is_alias)'
                ' SELECT id, code, domain, url, created_at, expires_at, max_visits, exhausted_at,'
                '  disabled_at, disabled_reason, is_alias FROM shorturl_remote.%I WHERE id = ANY ($1)'
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
            EXECUTE pg_catalog.format(
                'INSERT INTO shorturl.rebalance_moves (id, source, target, copied_visits)'
                ' SELECT l.id, %L, %L, coalesce(c.visits, 0) FROM shorturl_remote.%I l'
                ' LEFT JOIN shorturl_remote.%I c ON c.link_id = l.id'
                ' WHERE l.id = ANY ($1) ON CONFLICT (id) DO NOTHING',
                pair.source, pair.target, pair.source || '_links', pair.source || '_visit_counts')
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
            'SELECT shorturl.route(code, $1, $2) AS target, array_agg(code) AS codes'
            ' FROM shorturl_remote.%I WHERE shorturl.route(code, $1, $2) <> %L GROUP BY 1',
            shard || '_retired_codes', shard) USING m.names, m.weights
        LOOP
            EXECUTE pg_catalog.format(
                'INSERT INTO shorturl_remote.%I (code, domain, retired_at)'
                ' SELECT code, domain, retired_at FROM shorturl_remote.%I'
                ' WHERE code = ANY ($1) ON CONFLICT DO NOTHING',
                pair.target || '_retired_codes', shard || '_retired_codes') USING pair.codes;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            EXECUTE pg_catalog.format('DELETE FROM shorturl_remote.%I WHERE code = ANY ($1)',
                                      shard || '_retired_codes') USING pair.codes;
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
            RAISE NOTICE 'rebalance: shard "%" is empty and has left the cluster', shard;
        END IF;
    END LOOP;
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
'moves the links whose owner changed with the map, batch by batch; safe to interrupt and run again';

-------------------------------------------------------------------------
-- What the PL/Proxy functions are, and who may call what.
-------------------------------------------------------------------------

COMMENT ON FUNCTION shorturl._proxy_resolve(text) IS 'PL/Proxy: resolve() on the shard that owns the code';
COMMENT ON FUNCTION shorturl._proxy_link_status(text) IS 'PL/Proxy: link_status() on the shard that owns the code';
COMMENT ON FUNCTION shorturl._proxy_visits(text) IS 'PL/Proxy: visits() on the shard that owns the code';
COMMENT ON FUNCTION shorturl._proxy_status_everywhere(text) IS 'PL/Proxy: link_status() on every shard';
COMMENT ON FUNCTION shorturl._proxy_resolve_on(integer, text) IS 'PL/Proxy: resolve() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_link_status_on(integer, text) IS 'PL/Proxy: link_status() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_visits_on(integer, text) IS 'PL/Proxy: visits() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_store_link(integer, bigint, text, text, timestamptz, bigint, boolean, text) IS 'PL/Proxy: store_link() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_reusable_code(text, timestamptz, bigint, text, text) IS 'PL/Proxy: reusable_code() on every shard';
COMMENT ON FUNCTION shorturl._proxy_flush(integer) IS 'PL/Proxy: flush() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_move_out(integer, bigint[]) IS 'PL/Proxy: move_out() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_add_visits(integer, bigint[], bigint[]) IS 'PL/Proxy: add_visits() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_forget_moved(integer, bigint[]) IS 'PL/Proxy: forget_moved() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_forget_arrived(integer, bigint[]) IS 'PL/Proxy: forget_arrived() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_code_state_everywhere(text) IS 'PL/Proxy: code_state() on every shard';
COMMENT ON FUNCTION shorturl._proxy_store_identity(integer) IS 'PL/Proxy: store_identity() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_next_link_id() IS 'PL/Proxy: next_link_id() on the coordinator that owns the sequence';
COMMENT ON FUNCTION shorturl._proxy_last_link_id() IS 'PL/Proxy: last_link_id() on the coordinator that owns the sequence';

-- Everything but the pure routing functions is the owner's; an application
-- role is granted the API as on a single server.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                          AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_shorturl_coordinator'
             WHERE p.proname NOT IN ('route', 'route_position', 'conninfo_options')
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END
$$;
