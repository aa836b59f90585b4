-- pg_shorturl_coordinator 0.8 -> 0.9: abuse protection through the
-- coordinator.  resolve() and link_status() pass the caller's client to
-- the shard, whose scan guard counts its misses and blocks it; the hosts
-- links may not point at are managed on every shard at once
-- (block_host(), unblock_host(), blocked_hosts()), and a shard added
-- later gets the list; shorten() with an owner takes a new link from the
-- owner's shorturl.shorten_quota on one shard.  The shards must run
-- pg_shorturl 0.9 first.
--
-- CREATE EXTENSION pg_shorturl_coordinator installs 0.6 and then runs the
-- updates, so a fresh install and an updated one are the same.

\echo Use "ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.9'" to load this file. \quit

-------------------------------------------------------------------------
-- The shards first.  A 0.9 coordinator calls functions and writes tables
-- pg_shorturl 0.9 defines (resolve() and link_status() with a client,
-- shorturl.blocked_hosts): the update refuses while a shard it can reach
-- runs an older pg_shorturl, and warns of one it cannot reach.
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
        IF v IS NULL OR pg_catalog.string_to_array(v, '.')::integer[] < '{0,9}' THEN
            RAISE EXCEPTION 'shard "%" runs pg_shorturl %, and this update needs 0.9', shard, coalesce(v, '(none)')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run ALTER EXTENSION pg_shorturl UPDATE on every shard first.';
        END IF;
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- resolve() and link_status() with the caller's client (its IP address or
-- API key).  They pass it to the shard, whose scan guard counts the
-- client's lookups of unknown codes and, past shorturl.scan_limit a
-- minute, answers NULL / unknown to it for every code for
-- shorturl.scan_cooldown, as on a single server.
--
-- The guard is each shard's, in its shared memory, with its own settings:
-- a client is blocked on the shards where it passed the limit, and only
-- there.  A scanner of random codes spreads its misses over the shards
-- (each miss lands on the shard its key routes to), so with n shards it
-- makes up to about n * scan_limit misses a minute before every shard has
-- blocked it, and until then the shards that have not go on answering it.
-- Set shorturl.scan_limit on the shards with that in mind.  Two
-- coordinators in front of the same shards share the shards' guards.
--
-- A client's misses during a rebalance.  While one is due, a link may
-- still be on the shard it leaves, where the shard its key routes to does
-- not know it: asked there first with the client, that shard would count
-- a miss against a client that named a real link.  So with a client and a
-- rebalance due, the coordinator first finds the link without the client
-- (link_status(), which counts nothing), then asks the shard that has it
-- with the client, once; a code that is nowhere is asked of its key's
-- owner, and counts one miss there, as on a single server.  That costs a
-- lookup with a client one call more while a rebalance is due (a link
-- on its owner: the probe and the call).  Without a client nothing is
-- counted, and the calls are 0.8's.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_resolve(code text, domain text, referrer text, country text,
                                        user_agent text, visitor text, client text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(shorturl.link_key(code, domain));
    SELECT shorturl.resolve(code, domain, referrer, country, user_agent, visitor, client);
$$;

COMMENT ON FUNCTION shorturl._proxy_resolve(text, text, text, text, text, text, text) IS
'PL/Proxy: resolve() with a visit''s dimensions and the caller''s client on the shard that owns the key';

CREATE FUNCTION shorturl._proxy_resolve_on(shard integer, code text, domain text, referrer text,
                                           country text, user_agent text, visitor text, client text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.resolve(code, domain, referrer, country, user_agent, visitor, client);
$$;

COMMENT ON FUNCTION shorturl._proxy_resolve_on(integer, text, text, text, text, text, text, text) IS
'PL/Proxy: resolve() with a visit''s dimensions and the caller''s client on the shard at a partition';

CREATE FUNCTION shorturl._proxy_link_status(code text, domain text, client text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(shorturl.link_key(code, domain));
    SELECT shorturl.link_status(code, domain, client);
$$;

COMMENT ON FUNCTION shorturl._proxy_link_status(text, text, text) IS
'PL/Proxy: link_status() with the caller''s client on the shard that owns the key';

-- (the probes of _elsewhere() and _locate() keep calling
-- _proxy_link_status_on(shard, code, domain): without a client, they
-- count nothing against anyone)
CREATE FUNCTION shorturl._proxy_link_status_on(shard integer, code text, domain text, client text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.link_status(code, domain, client);
$$;

COMMENT ON FUNCTION shorturl._proxy_link_status_on(integer, text, text, text) IS
'PL/Proxy: link_status() with the caller''s client on the shard at a partition';

-- _where_now: during a rebalance, the partition of the shard that has a
-- link now, found without a client (so no miss is counted); its key's
-- owner when no shard has it
CREATE FUNCTION shorturl._where_now(code text, domain text)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer := shorturl.route_position(shorturl.link_key(code, domain));
BEGIN
    IF shorturl._proxy_link_status_on(pos, code, domain) = 'unknown' THEN
        pos := coalesce(shorturl._elsewhere(code, domain), pos);
    END IF;
    RETURN pos;
END
$$;

COMMENT ON FUNCTION shorturl._where_now(text, text) IS
'during a rebalance: the PL/Proxy partition of the shard that has a link now, asked without a client (no miss is counted), or its key''s owner when none has it';

-- Carrying grants over a changed signature, as 0.8 did for resolve() (see
-- there): the grants on resolve(text, text, text, text, text, text) and
-- link_status(text, text), each by its grantor, with its grant option,
-- recorded as the DBA's rather than the extension's.
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
    shorturl._acl_of('shorturl.resolve(text, text, text, text, text, text)'), true);
SELECT pg_catalog.set_config('pg_shorturl.acl_link_status',
    shorturl._acl_of('shorturl.link_status(text, text)'), true);

DROP FUNCTION shorturl.resolve(text, text, text, text, text, text);
DROP FUNCTION shorturl.link_status(text, text);
DROP FUNCTION shorturl._proxy_resolve(text, text, text, text, text, text);
DROP FUNCTION shorturl._proxy_resolve_on(integer, text, text, text, text, text, text);
DROP FUNCTION shorturl._proxy_link_status(text, text);

-- as 0.8's resolve(): the owner of the key, then while a rebalance is due
-- the shard the link has not left yet and the owner once more (with a
-- client, found first; see above); a shard that restarted is asked again
-- once
CREATE FUNCTION shorturl.resolve(code text, domain text, referrer text DEFAULT NULL,
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
                    other := shorturl._elsewhere(code, domain);
                    IF other IS NOT NULL THEN
                        url := shorturl._proxy_resolve_on(other, code, domain, referrer, country, user_agent,
                                                          visitor, client);
                    END IF;
                    IF url IS NULL THEN
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

COMMENT ON FUNCTION shorturl.resolve(text, text, text, text, text, text, text) IS
'URL of an active link on a short domain (NULL: the default one), counting one visit with its referrer, country, user agent and visitor (each optional) on the shard that owns its key; NULL for an unknown, expired, exhausted, disabled or blocked code or domain, and for every code on a shard where the client (the caller''s IP or API key, optional) is blocked for scanning';

CREATE FUNCTION shorturl.link_status(code text, domain text, client text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    status text;
    d text;
    other integer;
BEGIN
    IF code IS NULL THEN
        RETURN NULL;
    END IF;
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            IF client IS NOT NULL AND shorturl._rebalance_pending() THEN
                -- as resolve(): the shard that has it, asked with the client once
                other := shorturl._where_now(code, domain);
                status := shorturl._proxy_link_status_on(other, code, domain, client);
                IF status = 'unknown' AND other <> shorturl.route_position(shorturl.link_key(code, domain))
                   AND shorturl._proxy_link_status_on(other, code, domain) = 'unknown' THEN
                    status := shorturl._proxy_link_status(code, domain, client);
                END IF;
            ELSE
                status := shorturl._proxy_link_status(code, domain, client);
                IF status = 'unknown' AND shorturl._rebalance_pending() THEN
                    other := shorturl._elsewhere(code, domain);
                    IF other IS NOT NULL THEN
                        status := shorturl._proxy_link_status_on(other, code, domain, client);
                    END IF;
                    IF status = 'unknown' THEN
                        status := shorturl._proxy_link_status(code, domain, client);
                    END IF;
                END IF;
            END IF;
            armed := shorturl._deadline_stop();
            RETURN status;
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

COMMENT ON FUNCTION shorturl.link_status(text, text, text) IS
'active, expired, exhausted, disabled, blocked or unknown, for a code on a short domain (NULL: the default one), from the shard that owns its key, without counting a visit; unknown for every code on a shard where the client (optional) is blocked for scanning';

REVOKE ALL ON FUNCTION shorturl.resolve(text, text, text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_status(text, text, text) FROM PUBLIC;

SELECT shorturl._carry_grants('shorturl.resolve(text, text, text, text, text, text, text)',
                              pg_catalog.current_setting('pg_shorturl.acl_resolve'));
SELECT shorturl._carry_grants('shorturl.link_status(text, text, text)',
                              pg_catalog.current_setting('pg_shorturl.acl_link_status'));

DROP FUNCTION shorturl._acl_of(regprocedure);
DROP FUNCTION shorturl._carry_grants(regprocedure, text);

-------------------------------------------------------------------------
-- Blocked hosts.  Each shard has its own shorturl.blocked_hosts, which its
-- shorten(), store_link(), update_link() and import check and its
-- resolve() and link_status() read (from the statement after a change
-- commits there).  The coordinator reaches them through foreign tables,
-- "<shard>_blocked_hosts", made by add_shard() and, for the shards added
-- before this update, here, as it reaches the shards' domains:
--   - block_host() and unblock_host() change every shard's table in the
--     caller's transaction, so every shard has the change when it
--     commits, and none if it fails (a shard that cannot be reached fails
--     it: 08006).  postgres_fdw commits the shards one after the other,
--     without two-phase commit: a shard that fails at that very moment
--     can miss a change that the others have, which blocked_hosts() shows
--     and a second call mends.
--   - blocked_hosts() lists the union, with the shards that have each
--     pattern: the shards are the list (a row added on a shard directly
--     counts too).
--   - add_shard() gives a new shard the union of the others' lists.
-- The shards' user (in the user mappings) needs SELECT, INSERT, UPDATE
-- and DELETE on shorturl.blocked_hosts, as it has on shorturl.domains.
-- There is no coordinator-side table to keep in step, and no TRUNCATE.
-------------------------------------------------------------------------

-- _host_pattern: a pattern as the shards store it (pg_shorturl's own
-- function), so that a pattern is found on every shard in the form it has
-- there, and a bad one is refused (22023) before any shard is asked
CREATE FUNCTION shorturl._host_pattern(pattern text)
RETURNS text
AS '$libdir/pg_shorturl', 'shorturl_host_pattern'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl._host_pattern(text) IS
'a host pattern as shorturl.blocked_hosts stores it on the shards: lower-case ASCII (xn-- for an internationalised name), no final dot; 22023 for anything that is not a host';

-- _blocklist_table makes a shard's foreign table on its blocklist; it is
-- the deployment's, as add_shard() makes it, not the extension's: pg_dump
-- keeps it, and dropping the shard's server drops it
CREATE FUNCTION shorturl._blocklist_table(name text, server text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format($f$
        CREATE FOREIGN TABLE shorturl_remote.%I (
            pattern text COLLATE "C" NOT NULL,
            reason text,
            created_at timestamptz NOT NULL
        ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'blocked_hosts')$f$,
        _blocklist_table.name || '_blocked_hosts', server);
END
$$;

COMMENT ON FUNCTION shorturl._blocklist_table(text, text) IS
'makes a shard''s foreign table on its shorturl.blocked_hosts (<shard>_blocked_hosts)';

DO $$
DECLARE
    shard text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s LOOP
        PERFORM shorturl._blocklist_table(shard, 'shorturl_shard_' || shard);
        -- made by this script, it would be a member: as add_shard()'s, it is not
        EXECUTE pg_catalog.format('ALTER EXTENSION pg_shorturl_coordinator DROP FOREIGN TABLE shorturl_remote.%I',
                                  shard || '_blocked_hosts');
    END LOOP;
END
$$;

CREATE FUNCTION shorturl.block_host(pattern text, reason text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p text;
    shard text;
    present boolean;
    old_reason text;
    n integer;
    changed integer := 0;
    d text;
BEGIN
    IF block_host.pattern IS NULL THEN
        RAISE EXCEPTION 'pattern must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM shorturl._check_writable('block_host');
    p := shorturl._host_pattern(block_host.pattern);
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        n := 0;
        BEGIN
            EXECUTE pg_catalog.format('SELECT true, b.reason FROM shorturl_remote.%I b WHERE b.pattern = $1',
                                      shard || '_blocked_hosts')
                INTO present, old_reason USING p;
            IF present IS NULL THEN
                -- one time for the row on every shard: the transaction's
                EXECUTE pg_catalog.format('INSERT INTO shorturl_remote.%I (pattern, reason, created_at)'
                                          ' VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
                                          shard || '_blocked_hosts')
                    USING p, block_host.reason, pg_catalog.now();
                GET DIAGNOSTICS n = ROW_COUNT;
            ELSIF old_reason IS DISTINCT FROM block_host.reason THEN
                EXECUTE pg_catalog.format('UPDATE shorturl_remote.%I b SET reason = $2 WHERE b.pattern = $1',
                                          shard || '_blocked_hosts')
                    USING p, block_host.reason;
                GET DIAGNOSTICS n = ROW_COUNT;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shard);
        END;
        changed := changed + least(n, 1);
    END LOOP;
    RETURN changed;
END
$$;

COMMENT ON FUNCTION shorturl.block_host(text, text) IS
'blocks a host (and its subdomains) or an IP address on every shard, in this transaction: from the statement after it commits, shorten() and update_link() refuse it (22023) and existing links to it resolve to NULL with status blocked; a pattern already there gets the reason given; returns the number of shards it changed';

CREATE FUNCTION shorturl.unblock_host(pattern text)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p text;
    shard text;
    n integer;
    changed integer := 0;
    d text;
BEGIN
    IF unblock_host.pattern IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM shorturl._check_writable('unblock_host');
    p := shorturl._host_pattern(unblock_host.pattern);
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        BEGIN
            EXECUTE pg_catalog.format('DELETE FROM shorturl_remote.%I b WHERE b.pattern = $1',
                                      shard || '_blocked_hosts')
                USING p;
            GET DIAGNOSTICS n = ROW_COUNT;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shard);
        END;
        changed := changed + least(n, 1);
    END LOOP;
    RETURN changed;
END
$$;

COMMENT ON FUNCTION shorturl.unblock_host(text) IS
'removes a pattern from every shard''s blocklist, in this transaction (the links to its hosts resolve again from the statement after it commits); returns the number of shards that had it';

CREATE FUNCTION shorturl.blocked_hosts()
RETURNS TABLE (pattern text, reason text, created_at timestamptz, shards text[])
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard text;
    d text;
    ps text[];
    rs text[];
    cs timestamptz[];
    all_p text[] := '{}';
    all_r text[] := '{}';
    all_c timestamptz[] := '{}';
    all_s text[] := '{}';
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        BEGIN
            EXECUTE pg_catalog.format('SELECT coalesce(array_agg(b.pattern), ''{}''), coalesce(array_agg(b.reason), ''{}''),'
                                      ' coalesce(array_agg(b.created_at), ''{}'') FROM shorturl_remote.%I b',
                                      shard || '_blocked_hosts')
                INTO ps, rs, cs;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shard);
        END;
        all_p := all_p || ps;
        all_r := all_r || rs;
        all_c := all_c || cs;
        all_s := all_s || array_fill(shard, ARRAY[cardinality(ps)]);
    END LOOP;
    -- the earliest row's reason, and when the first shard had it
    RETURN QUERY
        SELECT x.p, (array_agg(x.r ORDER BY x.c, x.s COLLATE "C"))[1], min(x.c),
               array_agg(x.s ORDER BY x.s COLLATE "C")
          FROM unnest(all_p, all_r, all_c, all_s) x(p, r, c, s)
         GROUP BY x.p
         ORDER BY x.p COLLATE "C";
END
$$;

COMMENT ON FUNCTION shorturl.blocked_hosts() IS
'the patterns of every shard''s blocklist: each once, with the reason and time of its earliest row and the shards that have it (a pattern missing from some shards is blocked on the others only; block_host() gives it to all)';

-------------------------------------------------------------------------
-- add_shard() makes the blocklist's foreign table too, and gives the new
-- shard the union of the others' lists before any link can reach it; it
-- refuses a shard whose pg_shorturl is older than 0.9, whose resolve()
-- and link_status() would refuse every call with a client.
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
    IF v IS NULL OR pg_catalog.string_to_array(v, '.')::integer[] < '{0,9}' THEN
        RAISE EXCEPTION 'shard "%" runs pg_shorturl %, and this coordinator needs 0.9', add_shard.name,
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
'adds a shard running pg_shorturl 0.9 or later: a postgres_fdw server and foreign tables for data moves, the short domains and the blocklist, its partition of the PL/Proxy cluster, and its row in shorturl.shards; the connection string''s user and password go to user mappings; the new shard gets the domains and the hosts the other shards block';

-------------------------------------------------------------------------
-- Quotas through the coordinator.  A shard's shorten() takes one link from
-- its owner's shorturl.shorten_quota, but the coordinator stores links
-- with store_link(), which takes none.  So its shorten(), given an owner
-- and about to store a new link (not when reuse => true returns an
-- existing one), first asks one shard, the one the key 'owner:' || owner
-- routes to, to check the URL, owner, title and tags (_check_url(),
-- _check_meta(): a call the shard would refuse anyway takes nothing, as
-- on a single server) and then to take a link from the owner's bucket
-- (_check_quota()), all in one call.  A refusal there, 53400 (owner "x"
-- has made its N links per hour, DETAIL retry_after: ..., naming the
-- shard), comes before the link is stored, before an id is drawn: it
-- makes nothing.
--
-- The quota that applies is that shard's, and the bucket is in its shared
-- memory: set shorturl.shorten_quota on every shard (ALTER SYSTEM SET
-- shorturl.shorten_quota = '100/hour' and pg_reload_conf(), which the
-- coordinator's open connections take at their next call; or ALTER ROLE
-- <the shards' user> SET ..., as a superuser, which only new connections
-- take); the coordinator's own setting is not read.  Every link of an
-- owner, whichever shard it lands on, and every coordinator in front of
-- the shards, draw on the one bucket.  Changing the shards (add_shard(),
-- remove_shard(), set_shard_weight()) moves some owners' keys to another
-- shard, whose bucket for them starts full: such an owner may make up to
-- one more quota's worth of links in the period.  The shards need
-- pg_shorturl in shared_preload_libraries for a quota (55000 otherwise)
-- and 0.9 (_check_quota()).  As on a single server, a link refused after
-- the quota was taken (an alias that is malformed, reserved, taken or
-- retired, which the alias's shard finds; expires_at in the past;
-- max_visits below 1; a shard that fails to store it) and a link made in a
-- transaction that rolls back have still taken their token.
-------------------------------------------------------------------------

-- (the checks are the WHERE of a query without FROM: a one-time filter,
-- which runs before the quota of the SELECT list is taken; an unused
-- column of a subquery would not run at all)
CREATE FUNCTION shorturl._proxy_check_quota_on(shard integer, owner text, url text, title text, tags text[])
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl._check_quota(owner)
     WHERE shorturl._check_url(url) IS NOT NULL
       AND coalesce(pg_catalog.cardinality(shorturl._check_meta(owner, title, tags)), 0) >= 0;
$$;

COMMENT ON FUNCTION shorturl._proxy_check_quota_on(integer, text, text, text, text[]) IS
'PL/Proxy: on the shard at a partition, checks a new link''s URL, owner, title and tags as shorten() does, then takes one link from the owner''s shorturl.shorten_quota there (53400 past it)';

-- _take_quota: the owner's shard takes one link from its quota, or the
-- call raises its error (53400, 55000, or 22023 for what it checked)
CREATE FUNCTION shorturl._take_quota(owner text, url text, title text, tags text[])
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text := 'owner:' || owner;
    d text;
BEGIN
    PERFORM shorturl._proxy_check_quota_on(shorturl.route_position(key), owner, url, title, tags);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl.route(key));
END
$$;

COMMENT ON FUNCTION shorturl._take_quota(text, text, text, text[]) IS
'for shorten(): the shard that the key ''owner:'' || owner routes to checks a new link''s URL and metadata and takes one link from the owner''s shorturl.shorten_quota, or its error is raised again (53400 past it), naming the shard';

-- as 0.7's shorten() (with 0.8's DateStyle), the quota taken before a new
-- link is stored
CREATE OR REPLACE FUNCTION shorturl.shorten(url text,
                                            expires_at timestamptz DEFAULT NULL,
                                            max_visits bigint DEFAULT NULL,
                                            alias text DEFAULT NULL,
                                            reuse boolean DEFAULT false,
                                            owner text DEFAULT NULL,
                                            title text DEFAULT NULL,
                                            tags text[] DEFAULT NULL,
                                            domain text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO'
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
    dom text;
    shard text;
    stored boolean;
BEGIN
    IF url IS NULL THEN
        RAISE EXCEPTION 'url must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    dom := shorturl._check_domain(domain);
    armed := shorturl._deadline_start();
    -- links live where their keys route, not their URLs: ask every shard
    IF reuse THEN
        -- serialise reuse of one URL, as a single server does
        PERFORM pg_catalog.pg_advisory_xact_lock(21249, pg_catalog.hashtext(url));
        BEGIN
            SELECT min(r) INTO found
              FROM shorturl._proxy_reusable_code(url, expires_at, max_visits, alias, dom, owner) r;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, NULL);
        END;
        IF found IS NOT NULL THEN
            -- an existing link takes nothing from the owner's quota
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
        shard := shorturl.route(shorturl.link_key(alias, dom));
        -- while a rebalance is due the alias may live on the shard it leaves
        IF shorturl._rebalance_pending() THEN
            BEGIN
                SELECT min(st) INTO found
                  FROM shorturl._proxy_code_state_everywhere(alias, dom) st WHERE st <> 'free';
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
        -- a new link: one from the owner's quota first (see above)
        IF owner IS NOT NULL THEN
            PERFORM shorturl._take_quota(owner, url, title, tags);
        END IF;
        BEGIN
            stored := shorturl._proxy_store_link(shorturl.route_position(shorturl.link_key(alias, dom)),
                                                 shorturl.next_link_id(), alias, url, expires_at,
                                                 max_visits, true, dom, owner, title, tags);
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

    -- a new link: one from the owner's quota first, before an id is drawn
    IF owner IS NOT NULL THEN
        PERFORM shorturl._take_quota(owner, url, title, tags);
    END IF;
    -- the key: made by the first link, as on a single server
    IF NOT EXISTS (SELECT FROM shorturl.code_key) THEN
        INSERT INTO shorturl.code_key (key) VALUES (shorturl.new_code_key())
        ON CONFLICT (singleton) DO NOTHING;
    END IF;
    FOR attempt IN 1 .. max_attempts LOOP
        id := shorturl.next_link_id();
        code := shorturl.encode_id(id);
        shard := shorturl.route(shorturl.link_key(code, dom));
        BEGIN
            stored := shorturl._proxy_store_link(shorturl.route_position(shorturl.link_key(code, dom)),
                                                 id, code, url, expires_at, max_visits, false, dom,
                                                 owner, title, tags);
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

COMMENT ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text) IS
'stores a link, with an owner, a title and tags, on a short domain (NULL: the default one), on the shard its key routes to, and returns its code: generated from the cluster''s sequence and key, or the alias given; reuse => true asks every shard for an existing active link of the same owner first; a new link with an owner takes one from the owner''s shorturl.shorten_quota on the shard that ''owner:'' || owner routes to first (53400 past it, and nothing is made)';

-------------------------------------------------------------------------
-- Who may call what: as in 0.8, all but the pure functions (routes, keys,
-- QR codes, device classes) are the owner's until granted.  block_host(),
-- unblock_host() and blocked_hosts() are SECURITY DEFINER (the shards are
-- reached with the owner's user mappings), so they can be granted to a
-- role that handles abuse reports.
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
