-- pg_shorturl_coordinator 0.6 -> 0.7: managing links through the
-- coordinator (issue 13).  The shards must run pg_shorturl 0.7 first: the
-- calls below use its management functions and the (code, domain) forms.
--
-- CREATE EXTENSION pg_shorturl_coordinator installs 0.6 and then runs this
-- script, so a fresh install and an updated one are the same.

\echo Use "ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.7'" to load this file. \quit

-------------------------------------------------------------------------
-- The shards first.  A 0.7 coordinator calls functions pg_shorturl 0.7
-- defines (store_link with owners, the (code, domain) forms, link_key):
-- the update refuses while a shard it can reach runs an older
-- pg_shorturl, and warns of one it cannot reach.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_core_version(shard integer)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_shorturl';
$$;

COMMENT ON FUNCTION shorturl._proxy_core_version(integer) IS
'PL/Proxy: the version of pg_shorturl on the shard at a partition';

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
        IF v IS NULL OR pg_catalog.string_to_array(v, '.')::integer[] < '{0,7}' THEN
            RAISE EXCEPTION 'shard "%" runs pg_shorturl %, and this update needs 0.7', shard, coalesce(v, '(none)')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run ALTER EXTENSION pg_shorturl UPDATE on every shard first.';
        END IF;
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- Keys.  A link's routing key is its code on the default domain, and
-- "domain/code" on another (an alias is unique per domain only): the
-- links of 0.6, all on the default domain, stay where they are.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.link_key(code text, domain text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN coalesce(domain, '') = '' THEN code ELSE lower(domain) || '/' || code END
$$;

COMMENT ON FUNCTION shorturl.link_key(text, text) IS
'the routing key of a link: its code on the default domain (NULL or ''''), lower(domain) || ''/'' || code on another';

-------------------------------------------------------------------------
-- QR codes, as on a single server: pure functions of pg_shorturl's
-- library, which every role may call.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.qr_svg(content text)
RETURNS text
AS '$libdir/pg_shorturl', 'shorturl_qr_svg'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.qr_svg(text) IS
'SVG document of a QR code of the text (as UTF-8, error correction level M), black on white with a 4-module quiet zone; its viewBox is one unit per module, so it scales to any size';

CREATE FUNCTION shorturl.qr_png(content text, scale integer DEFAULT 4)
RETURNS bytea
AS '$libdir/pg_shorturl', 'shorturl_qr_png'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.qr_png(text, integer) IS
'1-bit grayscale PNG of a QR code of the text (as UTF-8, error correction level M) with a 4-module quiet zone, scale (1..32) pixels per module: (modules + 8) * scale pixels square';

-------------------------------------------------------------------------
-- Short domains.  The coordinator's shorturl.domains is the list; each
-- change is made on every shard too (their foreign tables <shard>_domains,
-- in the same transaction), so a shard checks what it stores as a single
-- server would, and add_shard() gives a new shard the list.  A domain with
-- links on any shard cannot go: the shard's own trigger refuses (23503).
-------------------------------------------------------------------------

CREATE TABLE shorturl.domains (
    domain text COLLATE "C" PRIMARY KEY
        CONSTRAINT domains_host_name CHECK (
            pg_catalog.length(domain) <= 253
            AND domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'),
    added_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.domains IS
'short domains links may go on besides the default one; changes are made on every shard too (a domain with links cannot go)';
COMMENT ON COLUMN shorturl.domains.domain IS 'the host name, in lower-case ASCII (an internationalised one in its xn-- form)';
COMMENT ON COLUMN shorturl.domains.added_at IS 'when the row was added';

SELECT pg_catalog.pg_extension_config_dump('shorturl.domains', '');
REVOKE ALL ON shorturl.domains FROM PUBLIC;
GRANT SELECT ON shorturl.domains TO PUBLIC;

CREATE FUNCTION shorturl.domains_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'shorturl.domains cannot be truncated on a coordinator'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Delete the rows: each delete is made on every shard.';
    END IF;
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        IF TG_OP = 'UPDATE' AND OLD.domain = NEW.domain THEN
            EXECUTE pg_catalog.format('UPDATE shorturl_remote.%I SET added_at = $2 WHERE domain = $1',
                                      shard || '_domains')
                USING NEW.domain, NEW.added_at;
            CONTINUE;
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            EXECUTE pg_catalog.format('DELETE FROM shorturl_remote.%I WHERE domain = $1', shard || '_domains')
                USING OLD.domain;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            EXECUTE pg_catalog.format('INSERT INTO shorturl_remote.%I (domain, added_at) VALUES ($1, $2)'
                                      ' ON CONFLICT DO NOTHING', shard || '_domains')
                USING NEW.domain, NEW.added_at;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.domains_changed() IS
'trigger on shorturl.domains: makes each change on every shard too';

CREATE TRIGGER domains_changed
AFTER INSERT OR UPDATE OR DELETE ON shorturl.domains
FOR EACH ROW EXECUTE FUNCTION shorturl.domains_changed();

CREATE TRIGGER domains_truncated
BEFORE TRUNCATE ON shorturl.domains
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.domains_changed();

COMMENT ON TRIGGER domains_changed ON shorturl.domains IS 'makes each change on every shard too';
COMMENT ON TRIGGER domains_truncated ON shorturl.domains IS 'refuses TRUNCATE, which cannot be made on the shards';

-- _check_domain is a domain as stored: '' for the default one (NULL or
-- ''), else the lower-cased name, which must be in shorturl.domains
CREATE FUNCTION shorturl._check_domain(domain text)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d text := lower(coalesce(domain, ''));
BEGIN
    IF d <> '' AND NOT EXISTS (SELECT FROM shorturl.domains x WHERE x.domain = d) THEN
        RAISE EXCEPTION 'unknown domain "%"', domain
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The domains links may go on are the rows of shorturl.domains.';
    END IF;
    RETURN d;
END
$$;

COMMENT ON FUNCTION shorturl._check_domain(text) IS
'a domain as stored ('''' for the default one), or 22023 when it is not in shorturl.domains';

-- The shards added before this update get the foreign tables a 0.7
-- coordinator uses: the new columns of links, and domains.
DO $$
DECLARE
    shard text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s LOOP
        EXECUTE pg_catalog.format('ALTER FOREIGN TABLE shorturl_remote.%I'
                                  ' ADD COLUMN owner text COLLATE "C", ADD COLUMN title text,'
                                  ' ADD COLUMN tags text[] COLLATE "C"', shard || '_links');
        EXECUTE pg_catalog.format($f$
            CREATE FOREIGN TABLE shorturl_remote.%I (
                domain text COLLATE "C" NOT NULL,
                added_at timestamptz NOT NULL
            ) SERVER %I OPTIONS (schema_name 'shorturl', table_name 'domains')$f$,
            shard || '_domains', 'shorturl_shard_' || shard);
        -- a shard's objects are the deployment's, as add_shard() makes them,
        -- not the extension's: pg_dump keeps them, forget_shard() drops them
        EXECUTE pg_catalog.format('ALTER EXTENSION pg_shorturl_coordinator DROP FOREIGN TABLE shorturl_remote.%I',
                                  shard || '_domains');
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- Calls to the shards on a domain, routed by link_key()
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._proxy_resolve(code text, domain text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(shorturl.link_key(code, domain));
    SELECT shorturl.resolve(code, domain);
$$;

CREATE FUNCTION shorturl._proxy_link_status(code text, domain text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(shorturl.link_key(code, domain));
    SELECT shorturl.link_status(code, domain);
$$;

CREATE FUNCTION shorturl._proxy_visits(code text, domain text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(shorturl.link_key(code, domain));
    SELECT shorturl.visits(code, domain);
$$;

CREATE FUNCTION shorturl._proxy_resolve_on(shard integer, code text, domain text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.resolve(code, domain);
$$;

CREATE FUNCTION shorturl._proxy_link_status_on(shard integer, code text, domain text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.link_status(code, domain);
$$;

CREATE FUNCTION shorturl._proxy_visits_on(shard integer, code text, domain text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.visits(code, domain);
$$;

CREATE FUNCTION shorturl._proxy_store_link(shard integer, id bigint, code text, url text,
                                           expires_at timestamptz, max_visits bigint,
                                           is_alias boolean, domain text,
                                           owner text, title text, tags text[])
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.store_link(id, code, url, expires_at, max_visits, is_alias, domain, owner, title, tags);
$$;

CREATE FUNCTION shorturl._proxy_reusable_code(url text, expires_at timestamptz, max_visits bigint,
                                              alias text, domain text, owner text)
RETURNS SETOF text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON ALL;
    SELECT shorturl.reusable_code(url, expires_at, max_visits, alias, domain, owner);
$$;

CREATE FUNCTION shorturl._proxy_code_state_everywhere(code text, domain text)
RETURNS SETOF text
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON ALL;
    SELECT shorturl.code_state(code, domain);
$$;

DROP FUNCTION shorturl._proxy_store_link(integer, bigint, text, text, timestamptz, bigint, boolean, text);
DROP FUNCTION shorturl._proxy_reusable_code(text, timestamptz, bigint, text, text);

-- _elsewhere: during a rebalance, the partition of the shard other than
-- the key's owner that has a link, or NULL
CREATE FUNCTION shorturl._elsewhere(code text, domain text)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := (SELECT count(*) FROM shorturl.shards);
    owner integer := shorturl.route_position(shorturl.link_key(code, domain));
    d text;
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        CONTINUE WHEN i = owner;
        BEGIN
            IF shorturl._proxy_link_status_on(i, code, domain) <> 'unknown' THEN
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

COMMENT ON FUNCTION shorturl._elsewhere(text, text) IS
'during a rebalance: the PL/Proxy partition of the shard other than its key''s owner that has a link on a domain, or NULL';

-- resolve(), link_status() and visits() on a domain (NULL: the default
-- one), as their one-argument forms, routed by link_key()
CREATE FUNCTION shorturl.resolve(code text, domain text)
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
            url := shorturl._proxy_resolve(code, domain);
            -- between its old shard and its owner: as resolve(code)
            IF url IS NULL AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code, domain);
                IF other IS NOT NULL THEN
                    url := shorturl._proxy_resolve_on(other, code, domain);
                END IF;
                IF url IS NULL THEN
                    url := shorturl._proxy_resolve(code, domain);
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

COMMENT ON FUNCTION shorturl.resolve(text, text) IS
'URL of an active link on a short domain (NULL: the default one), counting one visit on the shard that owns its key; NULL for an unknown, expired, exhausted or disabled code or domain';

CREATE FUNCTION shorturl.link_status(code text, domain text)
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
            status := shorturl._proxy_link_status(code, domain);
            IF status = 'unknown' AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code, domain);
                IF other IS NOT NULL THEN
                    status := shorturl._proxy_link_status_on(other, code, domain);
                END IF;
                IF status = 'unknown' THEN
                    status := shorturl._proxy_link_status(code, domain);
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

COMMENT ON FUNCTION shorturl.link_status(text, text) IS
'active, expired, exhausted, disabled or unknown, for a code on a short domain (NULL: the default one), from the shard that owns its key, without counting a visit';

CREATE FUNCTION shorturl.visits(code text, domain text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    armed boolean;
    n bigint;
    d text;
    other integer;
BEGIN
    IF code IS NULL THEN
        RETURN NULL;
    END IF;
    armed := shorturl._deadline_start();
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            n := shorturl._proxy_visits(code, domain);
            IF n IS NULL AND shorturl._rebalance_pending() THEN
                other := shorturl._elsewhere(code, domain);
                IF other IS NOT NULL THEN
                    n := shorturl._proxy_visits_on(other, code, domain);
                END IF;
                IF n IS NULL THEN
                    n := shorturl._proxy_visits(code, domain);
                END IF;
            END IF;
            armed := shorturl._deadline_stop();
            RETURN n;
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

COMMENT ON FUNCTION shorturl.visits(text, text) IS
'visits of a link on a short domain (NULL: the default one) so far, from the shard that owns its key, unflushed ones included; NULL for an unknown code';

-------------------------------------------------------------------------
-- Carrying grants over a changed signature: shorten() gains arguments, so
-- it is dropped and made again, and the EXECUTE privileges granted on it
-- survive as in pg_shorturl's 0.6 -> 0.7 script (see there).
-------------------------------------------------------------------------

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

SELECT pg_catalog.set_config('pg_shorturl.acl_shorten',
    shorturl._acl_of('shorturl.shorten(text, timestamptz, bigint, text, boolean)'), true);

DROP FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean);

CREATE FUNCTION shorturl.shorten(url text,
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
'stores a link, with an owner, a title and tags, on a short domain (NULL: the default one), on the shard its key routes to, and returns its code: generated from the cluster''s sequence and key, or the alias given; reuse => true asks every shard for an existing active link of the same owner first';

REVOKE ALL ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text) FROM PUBLIC;

SELECT shorturl._carry_grants('shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text)',
                              pg_catalog.current_setting('pg_shorturl.acl_shorten'));

DROP FUNCTION shorturl._acl_of(regprocedure);
DROP FUNCTION shorturl._carry_grants(regprocedure, text);

-------------------------------------------------------------------------
-- Managing links.  Each function runs on the shard that has the link,
-- through PL/Proxy, as one transaction there (like shorten()): the
-- shard's own function checks the owner, the patch and the limits, so the
-- answers and errors are a single server's.  list_links() asks every
-- shard and merges their pages.
-------------------------------------------------------------------------

CREATE TYPE shorturl.link_info AS (
    code text,
    domain text,
    url text,
    status text,
    visits bigint,
    owner text,
    title text,
    tags text[],
    created_at timestamptz,
    expires_at timestamptz,
    max_visits bigint,
    exhausted_at timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    is_alias boolean
);

COMMENT ON TYPE shorturl.link_info IS
'a link as get_link(), list_links() and update_link() return it: its fields, its live visit count and its status as link_status() says it';

CREATE FUNCTION shorturl._proxy_get_link(shard integer, code text, owner text, domain text)
RETURNS SETOF shorturl.link_info
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT * FROM shorturl.get_link(code, owner, domain);
$$;

CREATE FUNCTION shorturl._proxy_list_links(owner text, tag text, search text, after text, lim integer,
                                           domain text)
RETURNS SETOF shorturl.link_info
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON ALL;
    SELECT * FROM shorturl.list_links(owner, tag, search, after, lim, domain);
$$;

CREATE FUNCTION shorturl._proxy_update_link(shard integer, code text, patch jsonb, owner text, domain text)
RETURNS SETOF shorturl.link_info
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT * FROM shorturl.update_link(code, patch, owner, domain);
$$;

CREATE FUNCTION shorturl._proxy_disable_link(shard integer, code text, reason text, owner text, domain text)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.disable_link(code, reason, owner, domain);
$$;

CREATE FUNCTION shorturl._proxy_enable_link(shard integer, code text, owner text, domain text)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.enable_link(code, owner, domain);
$$;

CREATE FUNCTION shorturl._proxy_delete_link(shard integer, code text, owner text, domain text)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.delete_link(code, owner, domain);
$$;

CREATE FUNCTION shorturl._proxy_reset_visits(shard integer, code text, owner text, domain text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT shorturl.reset_visits(code, owner, domain);
$$;

CREATE FUNCTION shorturl._proxy_import_link(shard integer, code text, url text, created_at timestamptz,
                                            visits bigint, expires_at timestamptz, owner text,
                                            title text, tags text[], domain text, link_id bigint,
                                            issued boolean, OUT outcome text, OUT detail text)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shard;
    SELECT * FROM shorturl._import_link(code, url, created_at, visits, expires_at, owner, title, tags,
                                        domain, link_id, issued);
$$;

-- _locate is the partition of the shard that has a link now: its key's
-- owner, or while a rebalance is due and the owner does not have it, the
-- shard it has not left yet.  While a rebalance is due it also takes the
-- batch lock in share mode for the rest of the transaction: a batch holds
-- it exclusively from its copy to its last step, so no link moves between
-- this answer and the call that follows.
CREATE FUNCTION shorturl._locate(code text, domain text)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer := shorturl.route_position(shorturl.link_key(code, domain));
    other integer;
    armed boolean;
    d text;
BEGIN
    IF shorturl._rebalance_pending() THEN
        -- (waiting for a batch is no shard failing to answer: no deadline yet)
        PERFORM pg_catalog.pg_advisory_xact_lock_shared(21250, 0);
        armed := shorturl._deadline_start();
        BEGIN
            IF shorturl._proxy_link_status_on(pos, code, domain) = 'unknown' THEN
                other := shorturl._elsewhere(code, domain);
                IF other IS NOT NULL THEN
                    pos := other;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
        END;
        armed := shorturl._deadline_stop();
    END IF;
    RETURN pos;
END
$$;

COMMENT ON FUNCTION shorturl._locate(text, text) IS
'the PL/Proxy partition of the shard that has a link now (its key''s owner, or during a rebalance the shard it has not left yet); holds moves off until the transaction ends';

-- _check_writable refuses a change in a read-only transaction, as a
-- single server does (25006): the call would commit on the shard at once
CREATE FUNCTION shorturl._check_writable(fn text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.current_setting('transaction_read_only')::boolean THEN
        RAISE EXCEPTION 'cannot execute %() in a read-only transaction', fn
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl._check_writable(text) IS
'raises 25006 in a read-only transaction (before a management call that changes a link on a shard)';

CREATE FUNCTION shorturl.get_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
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
        RETURN QUERY SELECT * FROM shorturl._proxy_get_link(pos, code, owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
END
$$;

COMMENT ON FUNCTION shorturl.get_link(text, text, text) IS
'one link with every field, its live visits and its status, from the shard that has it; no row for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.list_links(owner text DEFAULT NULL,
                                    tag text DEFAULT NULL,
                                    search text DEFAULT NULL,
                                    after text DEFAULT NULL,
                                    lim integer DEFAULT 100,
                                    domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d text;
    armed boolean;
BEGIN
    IF lim IS NULL OR lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 1000, not %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- each shard's first lim in code order; the first lim of all of them
    -- are the page (a link half moved is on two shards: the first copy wins)
    armed := shorturl._deadline_start();
    BEGIN
        RETURN QUERY
            SELECT (i).* FROM (
                SELECT DISTINCT ON (l.code COLLATE "C") l AS i
                FROM shorturl._proxy_list_links(owner, tag, search, after, lim, domain) l
                ORDER BY l.code COLLATE "C") x
            ORDER BY (i).code COLLATE "C" LIMIT lim;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, NULL);
    END;
    armed := shorturl._deadline_stop();
END
$$;

COMMENT ON FUNCTION shorturl.list_links(text, text, text, text, integer, text) IS
'links of a domain (NULL: the default one) on every shard, in code order, lim (1..1000) at a time after the code given (keyset pagination): all, one owner''s, those with a tag, or those whose URL, title or code contains a text';

CREATE FUNCTION shorturl.update_link(code text, patch jsonb, owner text DEFAULT NULL,
                                     domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer;
    d text;
    armed boolean;
BEGIN
    IF code IS NULL OR patch IS NULL THEN
        RAISE EXCEPTION 'code and patch must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM shorturl._check_writable('update_link');
    -- a time read here, in this session's time zone and DateStyle, not the
    -- shard connection's: sent with its offset
    IF jsonb_typeof(patch) = 'object' AND jsonb_typeof(patch -> 'expires_at') = 'string' THEN
        patch := jsonb_set(patch, '{expires_at}', to_jsonb((patch ->> 'expires_at')::timestamptz));
    END IF;
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        RETURN QUERY SELECT * FROM shorturl._proxy_update_link(pos, code, patch, owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
END
$$;

COMMENT ON FUNCTION shorturl.update_link(text, jsonb, text, text) IS
'changes the fields a JSON object names (url, expires_at, max_visits, title, tags; null clears) on the shard that has the link, checked as shorten() checks them; returns the link, or no row for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.disable_link(code text, reason text DEFAULT NULL, owner text DEFAULT NULL,
                                      domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer;
    d text;
    armed boolean;
    ok boolean;
BEGIN
    IF code IS NULL THEN
        RETURN false;
    END IF;
    PERFORM shorturl._check_writable('disable_link');
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        ok := shorturl._proxy_disable_link(pos, code, reason, owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
    RETURN ok;
END
$$;

COMMENT ON FUNCTION shorturl.disable_link(text, text, text, text) IS
'takes a link down on the shard that has it: it resolves to NULL and link_status() says disabled until enable_link(); false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.enable_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer;
    d text;
    armed boolean;
    ok boolean;
BEGIN
    IF code IS NULL THEN
        RETURN false;
    END IF;
    PERFORM shorturl._check_writable('enable_link');
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        ok := shorturl._proxy_enable_link(pos, code, owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
    RETURN ok;
END
$$;

COMMENT ON FUNCTION shorturl.enable_link(text, text, text) IS
'puts a disabled link back, on the shard that has it; false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.delete_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos integer;
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
    armed := shorturl._deadline_stop();
    RETURN ok;
END
$$;

COMMENT ON FUNCTION shorturl.delete_link(text, text, text) IS
'deletes a link and its counts on the shard that has it; its code is never issued again (a retired alias follows its key in a rebalance); false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.reset_visits(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
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
    PERFORM shorturl._check_writable('reset_visits');
    pos := shorturl._locate(code, domain);
    armed := shorturl._deadline_start();
    BEGIN
        n := shorturl._proxy_reset_visits(pos, code, owner, domain);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        PERFORM shorturl._reraise(SQLSTATE, SQLERRM, d, shorturl._shard_at(pos));
    END;
    armed := shorturl._deadline_stop();
    RETURN n;
END
$$;

COMMENT ON FUNCTION shorturl.reset_visits(text, text, text) IS
'sets a link''s visit count back to zero on the shard that has it, unflushed clicks included; returns the count it had, or NULL for an unknown code or another owner''s link';

-- import_links reads the source with the caller's rights, oldest row
-- first, and imports each row on the shard its key routes to, with an id
-- from the cluster's sequence (each row takes one, imported or not).
CREATE FUNCTION shorturl.import_links(source regclass)
RETURNS TABLE (code text, domain text, outcome text, detail text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    col text;
    r record;
    dom text;
    pos integer;
    issued boolean;
    states text[];
    armed boolean;
    e text;
BEGIN
    PERFORM shorturl._check_writable('import_links');
    SELECT array_agg(a.attname::text) INTO cols
    FROM pg_attribute a WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped;
    FOREACH col IN ARRAY ARRAY['code', 'url', 'created_at', 'visits'] LOOP
        IF cols IS NULL OR NOT col = ANY (cols) THEN
            RAISE EXCEPTION 'source % has no column "%"', source, col
                USING ERRCODE = 'undefined_column',
                      HINT = 'The columns are code, url, created_at and visits, and optionally expires_at, owner, title, tags and domain.';
        END IF;
    END LOOP;
    FOR r IN EXECUTE format(
        'SELECT s.code::text AS code, s.url::text AS url, s.created_at::timestamptz AS created_at,'
        '       s.visits::bigint AS visits, %s AS expires_at, %s AS owner, %s AS title, %s AS tags,'
        '       %s AS domain'
        '  FROM %s s ORDER BY s.created_at, s.code',
        CASE WHEN 'expires_at' = ANY (cols) THEN 's.expires_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'owner' = ANY (cols) THEN 's.owner::text' ELSE 'NULL::text' END,
        CASE WHEN 'title' = ANY (cols) THEN 's.title::text' ELSE 'NULL::text' END,
        CASE WHEN 'tags' = ANY (cols) THEN 's.tags::text[]' ELSE 'NULL::text[]' END,
        CASE WHEN 'domain' = ANY (cols) THEN 's.domain::text' ELSE 'NULL::text' END,
        source)
    LOOP
        code := r.code;
        domain := nullif(lower(r.domain), '');
        outcome := 'rejected';
        detail := NULL;
        dom := lower(coalesce(r.domain, ''));
        IF r.code IS NULL THEN
            detail := 'code and url must not be null';
            RETURN NEXT;
            CONTINUE;
        ELSIF dom <> '' AND NOT EXISTS (SELECT FROM shorturl.domains x WHERE x.domain = dom) THEN
            detail := format('unknown domain "%s"', r.domain);
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- during a rebalance an earlier import may still be on the shard
        -- it leaves (found there, it is unchanged), and the code may be
        -- retired on the shard its key leaves
        pos := shorturl._locate(r.code, dom);
        issued := coalesce(shorturl.decode_id(r.code) <= shorturl.last_link_id(), false);
        armed := shorturl._deadline_start();
        BEGIN
            states := NULL;
            IF shorturl._rebalance_pending() THEN
                states := ARRAY(SELECT st FROM shorturl._proxy_code_state_everywhere(r.code, dom) st);
            END IF;
            IF 'retired' = ANY (states) AND NOT 'taken' = ANY (states) THEN
                detail := format('alias "%s" is retired', r.code);
            ELSE
                SELECT i.outcome, i.detail INTO outcome, detail
                FROM shorturl._proxy_import_link(pos, r.code, r.url, r.created_at, r.visits, r.expires_at,
                                                 r.owner, r.title, r.tags, dom, shorturl.next_link_id(),
                                                 issued) i;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e = PG_EXCEPTION_DETAIL;
            PERFORM shorturl._reraise(SQLSTATE, SQLERRM, e, shorturl._shard_at(pos));
        END;
        armed := shorturl._deadline_stop();
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.import_links(regclass) IS
'imports the links of a table (code, url, created_at, visits; optionally expires_at, owner, title, tags, domain) as aliases with their counts, each on the shard its key routes to; one row per source row (its code and domain, NULL for the default one): imported, unchanged or rejected with the reason; running it again imports nothing twice';

-------------------------------------------------------------------------
-- Shards and rebalancing on keys.  add_shard() makes the foreign tables
-- with the new columns and domains, and gives the shard the list of
-- domains; rebalance_plan() and rebalance() route by link_key(), copy
-- owners, titles and tags, and move retired aliases with their domains.
-- A batch holds the batch lock (advisory lock 21250, 0) from its flush to
-- the commit of its copy, so a management call (_locate()) acts either on
-- the old shard before the copy, which copies the change, or on the new
-- one after it.
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

CREATE OR REPLACE FUNCTION shorturl.rebalance_plan()
RETURNS TABLE (source text, target text, links bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record := shorturl._active_map();
    shard text;
BEGIN
    FOR shard IN SELECT s.name FROM shorturl.shards s ORDER BY s.name COLLATE "C" LOOP
        -- each shard computes its own links' new owners (postgres_fdw ships the
        -- pure route and link_key, which pg_shorturl 0.7 defines there too)
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT %L::text, shorturl.route(shorturl.link_key(code, domain), $1, $2), count(*)'
            ' FROM shorturl_remote.%I'
            ' WHERE shorturl.route(shorturl.link_key(code, domain), $1, $2) <> %L GROUP BY 2 ORDER BY 2',
            shard, shard || '_links', shard)
            USING m.names, m.weights;
    END LOOP;
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
            -- 2. copy links and counts, and write the copied counts down
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

-------------------------------------------------------------------------
-- What the new PL/Proxy functions are, and who may call what.
-------------------------------------------------------------------------

COMMENT ON FUNCTION shorturl._proxy_resolve(text, text) IS 'PL/Proxy: resolve() on the shard that owns the key';
COMMENT ON FUNCTION shorturl._proxy_link_status(text, text) IS 'PL/Proxy: link_status() on the shard that owns the key';
COMMENT ON FUNCTION shorturl._proxy_visits(text, text) IS 'PL/Proxy: visits() on the shard that owns the key';
COMMENT ON FUNCTION shorturl._proxy_resolve_on(integer, text, text) IS 'PL/Proxy: resolve() on a domain, on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_link_status_on(integer, text, text) IS 'PL/Proxy: link_status() on a domain, on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_visits_on(integer, text, text) IS 'PL/Proxy: visits() on a domain, on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_store_link(integer, bigint, text, text, timestamptz, bigint, boolean, text, text, text, text[]) IS 'PL/Proxy: store_link() with owner, title and tags on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_reusable_code(text, timestamptz, bigint, text, text, text) IS 'PL/Proxy: reusable_code() of an owner on every shard';
COMMENT ON FUNCTION shorturl._proxy_code_state_everywhere(text, text) IS 'PL/Proxy: code_state() on a domain on every shard';
COMMENT ON FUNCTION shorturl._proxy_get_link(integer, text, text, text) IS 'PL/Proxy: get_link() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_list_links(text, text, text, text, integer, text) IS 'PL/Proxy: list_links() on every shard';
COMMENT ON FUNCTION shorturl._proxy_update_link(integer, text, jsonb, text, text) IS 'PL/Proxy: update_link() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_disable_link(integer, text, text, text, text) IS 'PL/Proxy: disable_link() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_enable_link(integer, text, text, text) IS 'PL/Proxy: enable_link() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_delete_link(integer, text, text, text) IS 'PL/Proxy: delete_link() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_reset_visits(integer, text, text, text) IS 'PL/Proxy: reset_visits() on the shard at a partition';
COMMENT ON FUNCTION shorturl._proxy_import_link(integer, text, text, timestamptz, bigint, timestamptz, text, text, text[], text, bigint, boolean) IS 'PL/Proxy: _import_link() on the shard at a partition';

-- as in 0.6: all but the pure functions (routes, keys, QR codes) are the
-- owner's until granted
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                          AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_shorturl_coordinator'
             WHERE p.proname NOT IN ('route', 'route_position', 'conninfo_options', 'link_key',
                                     'qr_svg', 'qr_png')
               AND p.proacl IS NULL
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END
$$;
