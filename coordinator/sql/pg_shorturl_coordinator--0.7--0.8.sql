-- pg_shorturl_coordinator 0.7 -> 0.8: visit analytics through the
-- coordinator.  resolve() passes the visit's referrer, country, user agent
-- and visitor to the shard; visit_series(), visit_breakdown() and
-- unique_visitors() run on the shard that has the link, with the caller's
-- settings that change their answers; a rebalance carries each link's
-- analytics with its count.  The shards must run pg_shorturl 0.8 first.
--
-- CREATE EXTENSION pg_shorturl_coordinator installs 0.6 and then runs the
-- updates, so a fresh install and an updated one are the same.

\echo Use "ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.8'" to load this file. \quit

-------------------------------------------------------------------------
-- The shards first.  A 0.8 coordinator calls functions and reads tables
-- pg_shorturl 0.8 defines (resolve() with a visit's dimensions, the
-- analytics functions and tables): the update refuses while a shard it
-- can reach runs an older pg_shorturl, and warns of one it cannot reach.
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
        IF v IS NULL OR pg_catalog.string_to_array(v, '.')::integer[] < '{0,8}' THEN
            RAISE EXCEPTION 'shard "%" runs pg_shorturl %, and this update needs 0.8', shard, coalesce(v, '(none)')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run ALTER EXTENSION pg_shorturl UPDATE on every shard first.';
        END IF;
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- resolve() with what the application knows of the visit.  It gains
-- referrer, country, user_agent and visitor, as on a single server, and
-- passes them to the shard's resolve(); NULL is "not known" there as here.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_resolve(code text, domain text, referrer text, country text,
                                        user_agent text, visitor text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(shorturl.link_key(code, domain));
    SELECT shorturl.resolve(code, domain, referrer, country, user_agent, visitor);
$$;

COMMENT ON FUNCTION shorturl._proxy_resolve(text, text, text, text, text, text) IS
'PL/Proxy: resolve() with a visit''s dimensions on the shard that owns the key';

CREATE FUNCTION shorturl._proxy_resolve_on(shard integer, code text, domain text, referrer text,
                                           country text, user_agent text, visitor text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.resolve(code, domain, referrer, country, user_agent, visitor);
$$;

COMMENT ON FUNCTION shorturl._proxy_resolve_on(integer, text, text, text, text, text, text) IS
'PL/Proxy: resolve() with a visit''s dimensions on the shard at a partition';

-- Carrying grants over a changed signature, as 0.7 did for shorten() (see
-- there): the grants on resolve(text, text), each by its grantor, with
-- its grant option, recorded as the DBA's rather than the extension's.
CREATE FUNCTION shorturl._acl_of(f regprocedure)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(p.proacl::text, '') FROM pg_proc p WHERE p.oid = f
$$;

CREATE FUNCTION shorturl._carry_grants(f regprocedure, old_acl text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fresh aclitem[] := (SELECT p.proacl FROM pg_proc p WHERE p.oid = f);
    fn_owner oid := (SELECT p.proowner FROM pg_proc p WHERE p.oid = f);
    grantors oid[];
    grantees oid[];
    grantable boolean[];
    done boolean[];
    progress boolean := true;
BEGIN
    IF old_acl = '' THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(a.grantor), '{}'), coalesce(array_agg(a.grantee), '{}'),
           coalesce(array_agg(a.is_grantable), '{}'), coalesce(array_agg(false), '{}')
    INTO grantors, grantees, grantable, done
    FROM aclexplode(old_acl::aclitem[]) a
    WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> fn_owner;
    -- a grant by a role other than the owner needs that role's grant
    -- option first: grant in passes until nothing more can be
    WHILE progress LOOP
        progress := false;
        FOR i IN 1 .. cardinality(grantors) LOOP
            CONTINUE WHEN done[i];
            CONTINUE WHEN grantors[i] <> fn_owner
                AND NOT has_function_privilege(grantors[i], f, 'EXECUTE WITH GRANT OPTION');
            IF grantors[i] <> fn_owner THEN
                EXECUTE format('SET LOCAL ROLE %I', pg_get_userbyid(grantors[i]));
            END IF;
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f,
                           CASE WHEN grantees[i] = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantees[i])) END,
                           CASE WHEN grantable[i] THEN ' WITH GRANT OPTION' ELSE '' END);
            IF grantors[i] <> fn_owner THEN
                RESET ROLE;
            END IF;
            done[i] := true;
            progress := true;
        END LOOP;
    END LOOP;
    -- the grants were the DBA's, not the extension's
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh
        WHERE i.objoid = f AND i.classoid = 'pg_catalog.pg_proc'::regclass AND i.objsubid = 0;
    END IF;
END
$$;

SELECT pg_catalog.set_config('pg_shorturl.acl_resolve',
    shorturl._acl_of('shorturl.resolve(text, text)'), true);

DROP FUNCTION shorturl.resolve(text, text);
DROP FUNCTION shorturl._proxy_resolve(text, text);
DROP FUNCTION shorturl._proxy_resolve_on(integer, text, text);

-- as 0.7's resolve(code, domain): the owner of the key, then while a
-- rebalance is due the shard the link has not left yet and the owner once
-- more; a shard that restarted is asked again once
CREATE FUNCTION shorturl.resolve(code text, domain text, referrer text DEFAULT NULL,
                                 country text DEFAULT NULL, user_agent text DEFAULT NULL,
                                 visitor text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    url text;
    d text;
    other integer;
BEGIN
    IF code IS NULL THEN
        RETURN NULL;
    END IF;
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            -- (a shard counts the visit only where the link resolves: once)
            url := shorturl._proxy_resolve(code, domain, referrer, country, user_agent, visitor);
            IF url IS NULL AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code, domain);
                IF other IS NOT NULL THEN
                    url := shorturl._proxy_resolve_on(other, code, domain, referrer, country, user_agent, visitor);
                END IF;
                IF url IS NULL THEN
                    url := shorturl._proxy_resolve(code, domain, referrer, country, user_agent, visitor);
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

COMMENT ON FUNCTION shorturl.resolve(text, text, text, text, text, text) IS
'URL of an active link on a short domain (NULL: the default one), counting one visit with its referrer, country, user agent and visitor (each optional) on the shard that owns its key; NULL for an unknown, expired, exhausted or disabled code or domain';

REVOKE ALL ON FUNCTION shorturl.resolve(text, text, text, text, text, text) FROM PUBLIC;

SELECT shorturl._carry_grants('shorturl.resolve(text, text, text, text, text, text)',
                              pg_catalog.current_setting('pg_shorturl.acl_resolve'));

DROP FUNCTION shorturl._acl_of(regprocedure);
DROP FUNCTION shorturl._carry_grants(regprocedure, text);

-------------------------------------------------------------------------
-- Times sent to the shards.  PL/Proxy sends a timestamptz as text in the
-- caller's DateStyle, and the shard reads it in its own: a 0.7
-- coordinator under DateStyle 'SQL, DMY' and TimeZone 'Asia/Kolkata' sent
-- shorten()'s expires_at 2030-02-01 12:00 UTC as "01/02/2030 17:30:00
-- IST", which a shard with the default settings stored as 2030-01-02
-- 15:30 UTC (it reads the month first, and IST as Israel's time).  The functions that
-- send times run with DateStyle ISO, whose times carry a numeric offset
-- and read alike on any shard; only the output style changes, so a time
-- they read from text (import_links' source) is read in the caller's
-- order as before.
-------------------------------------------------------------------------

ALTER FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text)
    SET DateStyle = 'ISO';
ALTER FUNCTION shorturl.import_links(regclass)
    SET DateStyle = 'ISO';

-------------------------------------------------------------------------
-- Reading the analytics.  Each function runs on the shard that has the
-- link (found as get_link() finds it), where the shard's own function
-- checks the owner and the arguments, so the answers and errors are a
-- single server's.
--
-- PL/Proxy carries no setting of the caller's session but client_encoding,
-- and sends every value as text: so the calls pass what changes an answer
-- and depend on no setting of the shard's session.
--   - visit_series() buckets in the caller's TimeZone and counts bots as
--     the caller's shorturl.count_bots says; visit_breakdown() counts bots
--     so too.  The shard's query sets them with set_config(..., true),
--     local to its statement (PL/Proxy runs each call as a statement of
--     its own), so nothing stays on the cached connection.  The function
--     reads them after they are set: it takes an argument from the
--     subquery that sets them, a lateral reference, which makes the
--     subquery the outer side of the join (and a subquery with volatile
--     functions is never merged into the query).
--   - times go as text in this session's DateStyle: the functions run
--     with DateStyle ISO (see "Times sent to the shards" above), and the
--     series comes back in DateStyle ISO too, which the coordinator reads
--     alike whatever the caller's.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_visit_series(shard integer, code text, from_time timestamptz,
                                             to_time timestamptz, bucket text, owner text, domain text,
                                             time_zone text, count_bots text)
RETURNS TABLE (bucket_start timestamptz, visits bigint)
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT v.*
      FROM (SELECT pg_catalog.set_config('TimeZone', time_zone, true) AS tz,
                   pg_catalog.set_config('shorturl.count_bots', count_bots, true) AS bots,
                   pg_catalog.set_config('DateStyle', 'ISO', true) AS ds,
                   bucket AS b) s,
           LATERAL shorturl.visit_series(code, from_time, to_time, s.b, owner, domain) v;
$$;

COMMENT ON FUNCTION shorturl._proxy_visit_series(integer, text, timestamptz, timestamptz, text, text, text, text, text) IS
'PL/Proxy: visit_series() on the shard at a partition, in the caller''s time zone and with the caller''s shorturl.count_bots';

CREATE FUNCTION shorturl._proxy_visit_breakdown(shard integer, code text, dimension text,
                                                from_time timestamptz, to_time timestamptz, owner text,
                                                domain text, count_bots text)
RETURNS TABLE (value text, visits bigint)
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT v.*
      FROM (SELECT pg_catalog.set_config('shorturl.count_bots', count_bots, true) AS bots,
                   dimension AS dim) s,
           LATERAL shorturl.visit_breakdown(code, s.dim, from_time, to_time, owner, domain) v;
$$;

COMMENT ON FUNCTION shorturl._proxy_visit_breakdown(integer, text, text, timestamptz, timestamptz, text, text, text) IS
'PL/Proxy: visit_breakdown() on the shard at a partition, with the caller''s shorturl.count_bots';

CREATE FUNCTION shorturl._proxy_unique_visitors(shard integer, code text, from_time timestamptz,
                                                to_time timestamptz, owner text, domain text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.unique_visitors(code, from_time, to_time, owner, domain);
$$;

COMMENT ON FUNCTION shorturl._proxy_unique_visitors(integer, text, timestamptz, timestamptz, text, text) IS
'PL/Proxy: unique_visitors() on the shard at a partition';

-- _count_bots is the caller's shorturl.count_bots (off when the session
-- has not loaded pg_shorturl's library and set none)
CREATE FUNCTION shorturl._count_bots()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.current_setting('shorturl.count_bots', true), 'off')
$$;

COMMENT ON FUNCTION shorturl._count_bots() IS
'the caller''s shorturl.count_bots, as the analytics calls pass it to a shard';

CREATE FUNCTION shorturl.visit_series(code text, "from" timestamptz, "to" timestamptz,
                                      bucket text DEFAULT 'day', owner text DEFAULT NULL,
                                      domain text DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, visits bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO'
AS $$
DECLARE
    pos integer;
    d text;
    armed boolean;
BEGIN
    IF code IS NULL THEN
        RETURN;
    END IF;
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        RETURN QUERY SELECT * FROM shorturl._proxy_visit_series(
            pos, code, "from", "to", bucket, owner, domain,
            pg_catalog.current_setting('TimeZone'), shorturl._count_bots());
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
END
$$;

COMMENT ON FUNCTION shorturl.visit_series(text, timestamptz, timestamptz, text, text, text) IS
'a link''s visits per hour, day, week or month of the caller''s time zone, from the shard that has it, from the bucket holding "from" (NULL: the link''s creation) to the one before "to" (NULL: now), empty buckets included, unflushed clicks included; bots'' only when the caller''s shorturl.count_bots is on; no rows for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.visit_breakdown(code text, dimension text, "from" timestamptz DEFAULT NULL,
                                         "to" timestamptz DEFAULT NULL, owner text DEFAULT NULL,
                                         domain text DEFAULT NULL)
RETURNS TABLE (value text, visits bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO'
AS $$
DECLARE
    pos integer;
    d text;
    armed boolean;
BEGIN
    -- a NULL code is no link on any shard: the first one answers, checking
    -- the dimension as a single server does
    IF code IS NULL THEN
        pos := 0;
    ELSE
        pos := shorturl._locate(code, domain);
    END IF;
    armed := shorturl._deadline_start();
    BEGIN
        RETURN QUERY SELECT * FROM shorturl._proxy_visit_breakdown(
            pos, code, dimension, "from", "to", owner, domain, shorturl._count_bots());
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
END
$$;

COMMENT ON FUNCTION shorturl.visit_breakdown(text, text, timestamptz, timestamptz, text, text) IS
'a link''s flushed visits by referrer, country or device over the UTC days that overlap ["from", "to") (NULL: no bound), largest first, from the shard that has it; bots'' only when the caller''s shorturl.count_bots is on; no rows for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.unique_visitors(code text, "from" timestamptz DEFAULT NULL,
                                         "to" timestamptz DEFAULT NULL, owner text DEFAULT NULL,
                                         domain text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO'
AS $$
DECLARE
    pos integer;
    d text;
    armed boolean;
    n bigint;
BEGIN
    IF code IS NULL THEN
        RETURN NULL;
    END IF;
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        n := shorturl._proxy_unique_visitors(pos, code, "from", "to", owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
    RETURN n;
END
$$;

COMMENT ON FUNCTION shorturl.unique_visitors(text, timestamptz, timestamptz, text, text) IS
'estimated distinct visitors (resolve()''s visitor, bots excluded) of a link over the UTC days that overlap ["from", "to") (NULL: no bound), from the shard that has it; NULL for an unknown code or another owner''s link';

-- device_class, as on a single server: a pure function of pg_shorturl's
-- library, which every role may call
CREATE FUNCTION shorturl.device_class(user_agent text)
RETURNS text
AS '$libdir/pg_shorturl', 'shorturl_device_class'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.device_class(text) IS
'desktop, mobile, tablet, bot or other: the device class of a User-Agent header, as resolve() records it on the shard';

-------------------------------------------------------------------------
-- A link's analytics move with it.  Each shard has foreign tables on its
-- four analytics tables, "<shard>_link_visits_hourly" and the rest, made
-- by add_shard() and, for the shards added before this update, here; a
-- rebalance copies a batch's rows with its counts (see rebalance()).
-------------------------------------------------------------------------

-- _analytics_tables makes a shard's foreign tables on its analytics
-- tables; they are the deployment's, as add_shard() makes them, not the
-- extension's: pg_dump keeps them, and dropping the shard's server drops
-- them
CREATE FUNCTION shorturl._analytics_tables(name text, server text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            link_id bigint NOT NULL,
            hour timestamptz NOT NULL,
            visits bigint NOT NULL,
            bots bigint NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'link_visits_hourly')$f$,
        _analytics_tables.name || '_link_visits_hourly', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            link_id bigint NOT NULL,
            day date NOT NULL,
            visits bigint NOT NULL,
            bots bigint NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'link_visits_daily')$f$,
        _analytics_tables.name || '_link_visits_daily', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            link_id bigint NOT NULL,
            day date NOT NULL,
            dimension text NOT NULL,
            value text NOT NULL,
            visits bigint NOT NULL,
            bots bigint NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'link_visits_breakdown')$f$,
        _analytics_tables.name || '_link_visits_breakdown', server);
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            link_id bigint NOT NULL,
            day date NOT NULL,
            sketch bytea NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'link_visitors_daily')$f$,
        _analytics_tables.name || '_link_visitors_daily', server);
END
$$;

COMMENT ON FUNCTION shorturl._analytics_tables(text, text) IS
'makes a shard''s foreign tables on its analytics tables (<shard>_link_visits_hourly, _link_visits_daily, _link_visits_breakdown, _link_visitors_daily)';

DO $$
DECLARE
    shard text;
    t text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s LOOP
        PERFORM shorturl._analytics_tables(shard, 'shorturl_shard_' || shard);
        -- made by this script, they would be members: as add_shard()'s, they are not
        FOREACH t IN ARRAY ARRAY['link_visits_hourly', 'link_visits_daily', 'link_visits_breakdown',
                                 'link_visitors_daily'] LOOP
            EXECUTE pg_catalog.format('ALTER EXTENSION pg_shorturl_coordinator DROP FOREIGN TABLE shorturl_remote.%I',
                                      shard || '_' || t);
        END LOOP;
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- add_shard() makes the analytics foreign tables too; rebalance() copies
-- a batch's analytics in step 2, with its counts and in the same remote
-- transaction (see there), so a moved link's series still adds up to its
-- count on its new shard.
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

    -- the new shard knows the short domains
    EXECUTE pg_catalog.format('INSERT INTO shorturl_remote.%I (domain, added_at)'
                              ' SELECT domain, added_at FROM shorturl.domains ON CONFLICT DO NOTHING',
                              add_shard.name || '_domains');

    -- the second shard onwards moves keys: a rebalance is due
    IF (SELECT count(*) FROM shorturl.shards) > 1 THEN
        INSERT INTO shorturl.rebalance_state (pending) VALUES (true)
        ON CONFLICT (singleton) DO UPDATE SET pending = true;
    END IF;
END
$$;

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
            -- 2. copy links and counts, and write the copied counts down;
            --    copy the analytics of the links that arrive
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
            -- Their analytics come from the snapshot their counts came from
            -- (postgres_fdw reads the old shard in one repeatable-read
            -- transaction), so each series adds up to its copied count; the
            -- clicks after it come in step 4, at the hour they arrive.  A link
            -- the journal has for this target was copied by a run that stopped
            -- before step 3: its rows are there, and the rows flushed on the
            -- old shard since hold clicks that step 4 adds, so none is copied
            -- twice.
            fresh := ARRAY(SELECT a.id FROM unnest(arrived) a(id)
                           WHERE NOT EXISTS (SELECT FROM shorturl.rebalance_moves j
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
-- Who may call what: as in 0.7, all but the pure functions (routes, keys,
-- QR codes, device classes) are the owner's until granted.
-------------------------------------------------------------------------

DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                          AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_shorturl_coordinator'
             WHERE p.proname NOT IN ('route', 'route_position', 'conninfo_options', 'link_key',
                                     'qr_svg', 'qr_png', 'device_class')
               AND p.proacl IS NULL
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END
$$;
