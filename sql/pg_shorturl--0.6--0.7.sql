-- pg_shorturl 0.6 -> 0.7: managing links (issue 13).
--
-- CREATE EXTENSION pg_shorturl installs 0.6 and then runs this script, so
-- a fresh install and an updated one are the same.

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.7'" to load this file. \quit

-------------------------------------------------------------------------
-- Owners, titles and tags
-------------------------------------------------------------------------

ALTER TABLE shorturl.links
    ADD COLUMN owner text COLLATE "C",
    ADD COLUMN title text,
    ADD COLUMN tags text[] COLLATE "C";

COMMENT ON COLUMN shorturl.links.owner IS 'the application''s user or tenant the link belongs to; NULL for none';
COMMENT ON COLUMN shorturl.links.title IS 'a title for listing the link';
COMMENT ON COLUMN shorturl.links.tags IS 'tags for listing the link, each at most once';

-- Listing walks an owner's links in code order, and a tag's through GIN.
CREATE INDEX links_owner_idx ON shorturl.links (owner, domain, code) WHERE owner IS NOT NULL;
CREATE INDEX links_tags_idx ON shorturl.links USING gin (tags) WHERE tags IS NOT NULL;

COMMENT ON INDEX shorturl.links_owner_idx IS 'lists an owner''s links in code order (list_links(owner => ...))';
COMMENT ON INDEX shorturl.links_tags_idx IS 'finds the links with a tag (list_links(tag => ...))';

-------------------------------------------------------------------------
-- Short domains
-------------------------------------------------------------------------

-- The domains links may go on besides the default one (domain ''): a
-- host name in lower-case ASCII (an internationalised one in its xn--
-- form).  The owner adds and removes rows; a domain with links cannot be
-- removed or renamed, so a link's domain is always known.
CREATE TABLE shorturl.domains (
    domain text COLLATE "C" PRIMARY KEY
        CONSTRAINT domains_host_name CHECK (
            pg_catalog.length(domain) <= 253
            AND domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'),
    added_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.domains IS
'short domains links may go on besides the default one; the owner adds and removes rows (a domain with links cannot go)';
COMMENT ON COLUMN shorturl.domains.domain IS 'the host name, in lower-case ASCII (an internationalised one in its xn-- form)';
COMMENT ON COLUMN shorturl.domains.added_at IS 'when the row was added';

CREATE FUNCTION shorturl.domains_removed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    orphan text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        SELECT l.domain INTO orphan FROM shorturl.links l WHERE l.domain <> '' LIMIT 1;
    ELSE
        SELECT l.domain INTO orphan FROM shorturl.links l
        WHERE l.domain IN (SELECT g.domain FROM gone g)
          AND NOT EXISTS (SELECT FROM shorturl.domains d WHERE d.domain = l.domain)
        LIMIT 1;
    END IF;
    IF orphan IS NOT NULL THEN
        RAISE EXCEPTION 'domain "%" still has links', orphan
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Delete its links first (delete_link(), or DELETE FROM shorturl.links WHERE domain = ...).';
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.domains_removed() IS
'trigger on shorturl.domains: refuses to remove or rename a domain that still has links';

REVOKE ALL ON FUNCTION shorturl.domains_removed() FROM PUBLIC;

CREATE TRIGGER domains_deleted
AFTER DELETE ON shorturl.domains
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.domains_removed();

CREATE TRIGGER domains_updated
AFTER UPDATE ON shorturl.domains
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.domains_removed();

CREATE TRIGGER domains_truncated
BEFORE TRUNCATE ON shorturl.domains
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.domains_removed();

COMMENT ON TRIGGER domains_deleted ON shorturl.domains IS 'refuses to delete a domain that still has links';
COMMENT ON TRIGGER domains_updated ON shorturl.domains IS 'refuses to rename a domain that still has links';
COMMENT ON TRIGGER domains_truncated ON shorturl.domains IS 'refuses to empty the table while links are on a domain of it';

-- Listing a domain's links in code order (the default domain's walk
-- links_code_key); only links on other domains pay for this index.
CREATE INDEX links_domain_idx ON shorturl.links (domain, code) WHERE domain <> '';

COMMENT ON INDEX shorturl.links_domain_idx IS 'lists the links of a domain other than the default one in code order (list_links(domain => ...))';

SELECT pg_catalog.pg_extension_config_dump('shorturl.domains', '');
REVOKE ALL ON shorturl.domains FROM PUBLIC;
GRANT SELECT ON shorturl.domains TO PUBLIC;

-- resolve(), link_status() and visits() on a domain; the one-argument
-- forms are the default domain's.  Not STRICT: a NULL domain is the
-- default one.
CREATE FUNCTION shorturl.resolve(code text, domain text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_resolve'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.resolve(text, text) IS
'URL of an active link on a short domain (NULL or '''': the default one), counting one visit; NULL for an unknown, expired, exhausted or disabled code or domain';

CREATE FUNCTION shorturl.link_status(code text, domain text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_link_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.link_status(text, text) IS
'active, expired, exhausted, disabled or unknown, for a code on a short domain (NULL or '''': the default one), without counting a visit';

CREATE FUNCTION shorturl.visits(code text, domain text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_visits'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.visits(text, text) IS
'visits of a link on a short domain (NULL or '''': the default one) so far, counting those not yet flushed, or NULL for an unknown code';

REVOKE ALL ON FUNCTION shorturl.resolve(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_status(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.visits(text, text) FROM PUBLIC;

-------------------------------------------------------------------------
-- Carrying grants over a changed signature
--
-- shorten() and reset_visits() gain arguments, so they are dropped and
-- made again; the EXECUTE privileges granted on them (to the application
-- role, maybe with grant option, maybe by a role that had one) must
-- survive ALTER EXTENSION UPDATE, and stay the DBA's: pg_dump dumps the
-- privileges that differ from an extension object's initial ones
-- (pg_init_privs), and a GRANT run by this script would count as initial.
-- _acl_of() keeps the old ACL before the DROP; _carry_grants() grants the
-- same again after the CREATE, each as its grantor, and sets the initial
-- privileges back to those of a fresh install.  Both are dropped at the
-- end of this script.
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
SELECT pg_catalog.set_config('pg_shorturl.acl_reset_visits',
    shorturl._acl_of('shorturl.reset_visits(text)'), true);

DROP FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean);
DROP FUNCTION shorturl.reset_visits(text);

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
AS 'MODULE_PATHNAME', 'shorturl_shorten'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text) IS
'stores a link to an http(s) URL, with an owner, a title and tags, on a short domain (NULL: the default one), and returns its code: a generated unguessable code, or the alias given; reuse => true returns an existing active link of the same owner with the same URL and limits instead';

REVOKE ALL ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text) FROM PUBLIC;

-------------------------------------------------------------------------
-- Managing links
--
-- The management functions are SECURITY DEFINER, so an application role
-- needs no table privilege.  Each takes an optional owner: given, it acts
-- only on that owner's links, and another owner's link reads as unknown
-- (the answer for a code that does not exist), so no tenant can probe
-- another's codes.  Each also takes an optional domain (NULL: the
-- default one).  They find a link by (code, domain) through
-- links_code_key, as resolve() does.
-------------------------------------------------------------------------

-- What the C code checks and counts for the functions below; none is for
-- direct use, so PUBLIC may not call them.
CREATE FUNCTION shorturl._live_visits(link_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_live_visits'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._live_visits(bigint) IS
'visits of the link with this id so far, counting those not yet flushed (for get_link, list_links and update_link)';

CREATE FUNCTION shorturl._reset_link(link_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_reset_link'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._reset_link(bigint) IS
'sets the count of the link with this id back to zero at commit, unflushed clicks included; returns the count it had (for reset_visits)';

CREATE FUNCTION shorturl._check_url(url text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_check_url'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl._check_url(text) IS
'the URL as shorten() would store it, or the error shorten() would raise (for update_link)';

CREATE FUNCTION shorturl._check_meta(owner text, title text, tags text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'shorturl_check_meta'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION shorturl._check_meta(text, text, text[]) IS
'checks an owner, a title and tags as shorten() does, and returns the tags as stored (each once, in the order given)';

REVOKE ALL ON FUNCTION shorturl._live_visits(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl._reset_link(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl._check_url(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl._check_meta(text, text, text[]) FROM PUBLIC;

-- A link as the management functions return it.
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

-- _info makes a link_info of a row of shorturl.links.  The status is
-- link_status()'s, checked in the same order: disabled, expired (by the
-- clock), exhausted (by the live count), active.
CREATE FUNCTION shorturl._info(l shorturl.links)
RETURNS shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint := shorturl._live_visits(l.id);
BEGIN
    RETURN ROW(l.code, nullif(l.domain, ''), l.url,
               CASE WHEN l.disabled_at IS NOT NULL THEN 'disabled'
                    WHEN l.expires_at <= clock_timestamp() THEN 'expired'
                    WHEN n >= l.max_visits THEN 'exhausted'
                    ELSE 'active' END,
               n, l.owner, l.title, l.tags, l.created_at, l.expires_at, l.max_visits,
               l.exhausted_at, l.disabled_at, l.disabled_reason, l.is_alias)::shorturl.link_info;
END
$$;

COMMENT ON FUNCTION shorturl._info(shorturl.links) IS
'a row of shorturl.links as a link_info, with its live visits and status';

REVOKE ALL ON FUNCTION shorturl._info(shorturl.links) FROM PUBLIC;

-- _find returns the link a management call names, locked FOR UPDATE when
-- asked (so that changes of one link are serialised), or NULL: no such
-- code on the domain (NULL: the default one), or another owner's link.
CREATE FUNCTION shorturl._find(code text, owner text, domain text, for_update boolean)
RETURNS shorturl.links
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links;
BEGIN
    IF for_update THEN
        SELECT * INTO l FROM shorturl.links k
        WHERE k.code = _find.code AND k.domain = lower(coalesce(_find.domain, ''))
          AND (_find.owner IS NULL OR k.owner = _find.owner)
        FOR UPDATE;
    ELSE
        SELECT * INTO l FROM shorturl.links k
        WHERE k.code = _find.code AND k.domain = lower(coalesce(_find.domain, ''))
          AND (_find.owner IS NULL OR k.owner = _find.owner);
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN l;
END
$$;

COMMENT ON FUNCTION shorturl._find(text, text, text, boolean) IS
'the link a management call names (on the domain, of the owner if one is given), locked if asked; NULL when there is none';

REVOKE ALL ON FUNCTION shorturl._find(text, text, text, boolean) FROM PUBLIC;

CREATE FUNCTION shorturl.get_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links := shorturl._find(code, owner, domain, false);
BEGIN
    IF l.id IS NOT NULL THEN
        RETURN NEXT shorturl._info(l);
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl.get_link(text, text, text) IS
'one link with every field, its live visits and its status; no row for an unknown code or another owner''s link';

-- _list_sql is the query list_links() runs for the conditions it was
-- given: only those go in, so each kind of call gets a plan of its own
-- (the keyset order through links_owner_idx or links_code_key, a tag
-- through links_tags_idx).  Its parameters are owner, tag, search, after,
-- lim and the domain ('' for the default one), in that order.  A function of its own so that tests can
-- EXPLAIN exactly what runs.
CREATE FUNCTION shorturl._list_sql(by_owner boolean, by_tag boolean, by_search boolean,
                                   after_code boolean)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'SELECT i.* FROM (SELECT k AS l FROM shorturl.links k WHERE k.domain = $6'
        || CASE WHEN by_owner THEN ' AND k.owner = $1' ELSE '' END
        || CASE WHEN by_tag THEN ' AND k.tags @> ARRAY[$2] AND k.tags IS NOT NULL' ELSE '' END
        || CASE WHEN by_search
                THEN ' AND (strpos(lower(k.url), lower($3)) > 0 OR strpos(lower(k.title), lower($3)) > 0'
                     ' OR strpos(lower(k.code), lower($3)) > 0)'
                ELSE '' END
        || CASE WHEN after_code THEN ' AND k.code > $4' ELSE '' END
        || ' ORDER BY k.code LIMIT $5) s CROSS JOIN LATERAL shorturl._info(s.l) i ORDER BY i.code COLLATE "C"'
$$;

COMMENT ON FUNCTION shorturl._list_sql(boolean, boolean, boolean, boolean) IS
'the query list_links() runs for the conditions given (for EXPLAIN)';

REVOKE ALL ON FUNCTION shorturl._list_sql(boolean, boolean, boolean, boolean) FROM PUBLIC;

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
BEGIN
    IF lim IS NULL OR lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 1000, not %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY EXECUTE shorturl._list_sql(owner IS NOT NULL, tag IS NOT NULL, search IS NOT NULL,
                                            after IS NOT NULL)
        USING owner, tag, search, after, lim, lower(coalesce(domain, ''));
END
$$;

COMMENT ON FUNCTION shorturl.list_links(text, text, text, text, integer, text) IS
'links of a domain (NULL: the default one) in code order, lim (1..1000) at a time after the code given (keyset pagination): all, one owner''s, those with a tag, or those whose URL, title or code contains a text (without regard to case)';

CREATE FUNCTION shorturl.update_link(code text, patch jsonb, owner text DEFAULT NULL,
                                     domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links;
    key text;
    v jsonb;
    n bigint;
BEGIN
    IF code IS NULL OR patch IS NULL THEN
        RAISE EXCEPTION 'code and patch must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(patch) <> 'object' THEN
        RAISE EXCEPTION 'patch must be a JSON object, not %', jsonb_typeof(patch)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR key IN SELECT jsonb_object_keys(patch) LOOP
        IF key NOT IN ('url', 'expires_at', 'max_visits', 'title', 'tags') THEN
            RAISE EXCEPTION 'unknown key "%" in patch', key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The keys are url, expires_at, max_visits, title and tags.';
        END IF;
    END LOOP;

    l := shorturl._find(code, owner, domain, true);
    IF l.id IS NULL THEN
        RETURN;
    END IF;

    IF patch ? 'url' THEN
        v := patch -> 'url';
        IF jsonb_typeof(v) <> 'string' THEN
            RAISE EXCEPTION 'url must be a JSON string, not %', jsonb_typeof(v)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        l.url := shorturl._check_url(v #>> '{}');
    END IF;
    IF patch ? 'expires_at' THEN
        v := patch -> 'expires_at';
        IF jsonb_typeof(v) = 'null' THEN
            l.expires_at := NULL;
        ELSIF jsonb_typeof(v) = 'string' THEN
            l.expires_at := (v #>> '{}')::timestamptz;
            IF l.expires_at <= clock_timestamp() THEN
                RAISE EXCEPTION 'expires_at must be in the future'
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('It is %s; the time is now %s.', l.expires_at, clock_timestamp());
            END IF;
        ELSE
            RAISE EXCEPTION 'expires_at must be a JSON string or null, not %', jsonb_typeof(v)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF patch ? 'max_visits' THEN
        v := patch -> 'max_visits';
        IF jsonb_typeof(v) = 'null' THEN
            l.max_visits := NULL;
        ELSIF jsonb_typeof(v) = 'number' AND (v #>> '{}')::numeric BETWEEN 1 AND 999999999999999999
              AND (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric) THEN
            l.max_visits := (v #>> '{}')::numeric;
        ELSE
            RAISE EXCEPTION 'max_visits must be a whole number from 1 to 999999999999999999, or null, not %', v
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF patch ? 'title' THEN
        v := patch -> 'title';
        IF jsonb_typeof(v) NOT IN ('string', 'null') THEN
            RAISE EXCEPTION 'title must be a JSON string or null, not %', jsonb_typeof(v)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        l.title := v #>> '{}';
    END IF;
    IF patch ? 'tags' THEN
        v := patch -> 'tags';
        IF jsonb_typeof(v) = 'null' THEN
            l.tags := NULL;
        ELSIF jsonb_typeof(v) = 'array'
              AND NOT EXISTS (SELECT FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string') THEN
            l.tags := ARRAY(SELECT e FROM jsonb_array_elements_text(v) e);
        ELSE
            RAISE EXCEPTION 'tags must be a JSON array of strings, or null'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    l.tags := shorturl._check_meta(l.owner, l.title, l.tags);

    -- A new limit at or below the count makes the link exhausted now; one
    -- above it gives an exhausted link its visits back.  The row lock
    -- keeps the flush from marking the link exhausted meanwhile, and the
    -- flush rechecks the limit against the count when it does (flush.c).
    n := shorturl._live_visits(l.id);
    IF l.max_visits IS NULL OR n < l.max_visits THEN
        l.exhausted_at := NULL;
    ELSE
        l.exhausted_at := coalesce(l.exhausted_at, now());
    END IF;

    UPDATE shorturl.links k
    SET url = l.url, expires_at = l.expires_at, max_visits = l.max_visits,
        exhausted_at = l.exhausted_at, title = l.title, tags = l.tags
    WHERE k.id = l.id;
    RETURN NEXT shorturl._info(l);
END
$$;

COMMENT ON FUNCTION shorturl.update_link(text, jsonb, text, text) IS
'changes a link with PATCH semantics (keys url, expires_at, max_visits, title, tags; JSON null clears a field) and returns it; no row for an unknown code or another owner''s link';

-- The changes below are one statement each: an UPDATE or DELETE finds the
-- link as _find() does and locks its row itself.
CREATE FUNCTION shorturl.disable_link(code text, reason text DEFAULT NULL, owner text DEFAULT NULL,
                                      domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH changed AS (
        UPDATE shorturl.links k
        SET disabled_at = coalesce(k.disabled_at, now()), disabled_reason = disable_link.reason
        WHERE k.code = disable_link.code AND k.domain = lower(coalesce(disable_link.domain, ''))
          AND (disable_link.owner IS NULL OR k.owner = disable_link.owner)
        RETURNING 1)
    SELECT EXISTS (SELECT FROM changed)
$$;

COMMENT ON FUNCTION shorturl.disable_link(text, text, text, text) IS
'takes a link down: it resolves to NULL and link_status() says disabled until enable_link(); false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.enable_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH changed AS (
        UPDATE shorturl.links k SET disabled_at = NULL, disabled_reason = NULL
        WHERE k.code = enable_link.code AND k.domain = lower(coalesce(enable_link.domain, ''))
          AND (enable_link.owner IS NULL OR k.owner = enable_link.owner)
        RETURNING 1)
    SELECT EXISTS (SELECT FROM changed)
$$;

COMMENT ON FUNCTION shorturl.enable_link(text, text, text) IS
'puts a disabled link back; false for an unknown code or another owner''s link';

-- The links_deleted trigger retires an alias and deletes the counts.
CREATE FUNCTION shorturl.delete_link(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM shorturl.links k
        WHERE k.code = delete_link.code AND k.domain = lower(coalesce(delete_link.domain, ''))
          AND (delete_link.owner IS NULL OR k.owner = delete_link.owner)
        RETURNING 1)
    SELECT EXISTS (SELECT FROM gone)
$$;

COMMENT ON FUNCTION shorturl.delete_link(text, text, text) IS
'deletes a link and its counts; its code is never issued again; false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.reset_visits(code text, owner text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT shorturl._reset_link(l.id) FROM shorturl._find(code, owner, domain, true) l WHERE l.id IS NOT NULL
$$;

COMMENT ON FUNCTION shorturl.reset_visits(text, text, text) IS
'sets a link''s visit count back to zero, unflushed clicks included, when the transaction commits; returns the count it had, or NULL for an unknown code or another owner''s link';

REVOKE ALL ON FUNCTION shorturl.get_link(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.list_links(text, text, text, text, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.update_link(text, jsonb, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.disable_link(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.enable_link(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.delete_link(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.reset_visits(text, text, text) FROM PUBLIC;

-- the grants the old signatures had
SELECT shorturl._carry_grants('shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text)',
                              pg_catalog.current_setting('pg_shorturl.acl_shorten'));
SELECT shorturl._carry_grants('shorturl.reset_visits(text, text, text)',
                              pg_catalog.current_setting('pg_shorturl.acl_reset_visits'));
DROP FUNCTION shorturl._acl_of(regprocedure);
DROP FUNCTION shorturl._carry_grants(regprocedure, text);

-------------------------------------------------------------------------
-- Importing links from another shortener
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._check_alias(alias text, domain text)
RETURNS void
AS 'MODULE_PATHNAME', 'shorturl_check_alias'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._check_alias(text, text) IS
'raises the error shorten() would raise for this alias before inserting it: malformed, reserved, retired, or a generated code already handed out (for import_links)';

REVOKE ALL ON FUNCTION shorturl._check_alias(text, text) FROM PUBLIC;

-- _import_link imports one link, as an alias with its count, and says how
-- it went: imported; unchanged (the code is there with this URL: an
-- earlier import); or rejected, with the reason.  A rejection is an
-- answer, not an error, so one bad row does not abort the batch; the
-- checks run in a subtransaction that writes nothing.  A coordinator
-- passes the link's id, from the cluster's sequence, and whether the code
-- is one the cluster handed out.
CREATE FUNCTION shorturl._import_link(code text, url text, created_at timestamptz, visits bigint,
                                      expires_at timestamptz, owner text, title text, tags text[],
                                      domain text, OUT outcome text, OUT detail text,
                                      link_id bigint DEFAULT NULL, issued boolean DEFAULT false)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored_url text;
    checked_tags text[];
    new_id bigint;
    d text := lower(coalesce(domain, ''));
BEGIN
    outcome := 'rejected';
    IF d <> '' AND NOT EXISTS (SELECT FROM shorturl.domains x WHERE x.domain = d) THEN
        detail := format('unknown domain "%s"', domain);
        RETURN;
    ELSIF code IS NULL OR url IS NULL THEN
        detail := 'code and url must not be null';
        RETURN;
    ELSIF visits < 0 THEN
        detail := format('visits must not be negative, not %s', visits);
        RETURN;
    ELSIF visits > 1000000000000000 THEN
        -- counting on from near 2^63 would overflow at a flush
        detail := format('visits must be at most 1000000000000000, not %s', visits);
        RETURN;
    END IF;
    BEGIN
        stored_url := shorturl._check_url(url);
        checked_tags := shorturl._check_meta(owner, title, tags);
    EXCEPTION WHEN others THEN
        detail := SQLERRM;
        RETURN;
    END;
    -- imported before (idempotence), or taken by another link
    IF EXISTS (SELECT FROM shorturl.links l WHERE l.code = _import_link.code AND l.domain = d) THEN
        IF EXISTS (SELECT FROM shorturl.links l
                   WHERE l.code = _import_link.code AND l.domain = d AND l.url = stored_url) THEN
            outcome := 'unchanged';
        ELSE
            detail := format('code "%s" is taken by a link to another URL', code);
        END IF;
        RETURN;
    END IF;
    -- (the coordinator knows whether the code is one it handed out)
    IF issued THEN
        detail := format('alias "%s" is already taken: it is a generated code that was handed out before', code);
        RETURN;
    END IF;
    BEGIN
        PERFORM shorturl._check_alias(code, d);
    EXCEPTION WHEN others THEN
        detail := SQLERRM;
        RETURN;
    END;
    INSERT INTO shorturl.links AS l (id, code, domain, url, created_at, expires_at, is_alias, owner, title, tags)
    VALUES (coalesce(link_id, nextval('shorturl.link_id_seq')), code, d, stored_url,
            coalesce(created_at, now()), expires_at,
            true, owner, title, checked_tags)
    ON CONFLICT DO NOTHING
    RETURNING l.id INTO new_id;
    IF new_id IS NULL THEN
        detail := format('code "%s" was taken meanwhile', code);
        RETURN;
    END IF;
    IF visits > 0 THEN
        INSERT INTO shorturl.visit_counts (link_id, visits) VALUES (new_id, visits);
    END IF;
    outcome := 'imported';
    detail := NULL;
END
$$;

COMMENT ON FUNCTION shorturl._import_link(text, text, timestamptz, bigint, timestamptz, text, text, text[], text, bigint, boolean) IS
'imports one link as an alias with its visit count: imported, unchanged (there already, with this URL) or rejected with the reason (for import_links)';

REVOKE ALL ON FUNCTION shorturl._import_link(text, text, timestamptz, bigint, timestamptz, text, text, text[], text, bigint, boolean) FROM PUBLIC;

-- import_links reads the source with the caller's rights (it is not
-- SECURITY DEFINER: nobody imports a table they may not read), oldest row
-- first, and imports each through _import_link().
CREATE FUNCTION shorturl.import_links(source regclass)
RETURNS TABLE (code text, domain text, outcome text, detail text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    col text;
BEGIN
    SELECT array_agg(a.attname::text) INTO cols
    FROM pg_attribute a WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped;
    FOREACH col IN ARRAY ARRAY['code', 'url', 'created_at', 'visits'] LOOP
        IF cols IS NULL OR NOT col = ANY (cols) THEN
            RAISE EXCEPTION 'source % has no column "%"', source, col
                USING ERRCODE = 'undefined_column',
                      HINT = 'The columns are code, url, created_at and visits, and optionally expires_at, owner, title, tags and domain.';
        END IF;
    END LOOP;
    RETURN QUERY EXECUTE format(
        'SELECT s.code::text, nullif(lower(%s), ''''), i.outcome, i.detail'
        '  FROM (SELECT * FROM %s ORDER BY created_at, code) s,'
        '       LATERAL shorturl._import_link(s.code::text, s.url::text, s.created_at::timestamptz,'
        '                                     s.visits::bigint, %s, %s, %s, %s, %s) i',
        CASE WHEN 'domain' = ANY (cols) THEN 's.domain::text' ELSE 'NULL::text' END,
        source,
        CASE WHEN 'expires_at' = ANY (cols) THEN 's.expires_at::timestamptz' ELSE 'NULL' END,
        CASE WHEN 'owner' = ANY (cols) THEN 's.owner::text' ELSE 'NULL' END,
        CASE WHEN 'title' = ANY (cols) THEN 's.title::text' ELSE 'NULL' END,
        CASE WHEN 'tags' = ANY (cols) THEN 's.tags::text[]' ELSE 'NULL' END,
        CASE WHEN 'domain' = ANY (cols) THEN 's.domain::text' ELSE 'NULL' END);
END
$$;

COMMENT ON FUNCTION shorturl.import_links(regclass) IS
'imports the links of a table (code, url, created_at, visits; optionally expires_at, owner, title, tags, domain) as aliases with their counts; one row per source row (its code and domain, NULL for the default one): imported, unchanged or rejected with the reason; running it again imports nothing twice';

REVOKE ALL ON FUNCTION shorturl.import_links(regclass) FROM PUBLIC;

-------------------------------------------------------------------------
-- Keys and the shard side of a 0.7 coordinator
-------------------------------------------------------------------------

-- The routing key of a link: its code on the default domain, and
-- "domain/code" on another, since an alias is unique per domain only.  A
-- coordinator routes by it; postgres_fdw ships it to the shards when a
-- rebalance plans its moves, so it is defined on both sides.
CREATE FUNCTION shorturl.link_key(code text, domain text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN coalesce(domain, '') = '' THEN code ELSE lower(domain) || '/' || code END
$$;

COMMENT ON FUNCTION shorturl.link_key(text, text) IS
'the routing key of a link: its code on the default domain (NULL or ''''), lower(domain) || ''/'' || code on another';

CREATE FUNCTION shorturl.store_link(id bigint, code text, url text,
                                    expires_at timestamptz, max_visits bigint,
                                    is_alias boolean, domain text,
                                    owner text, title text, tags text[])
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_store_link'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.store_link(bigint, text, text, timestamptz, bigint, boolean, text, text, text, text[]) IS
'shard side: stores a link whose id and code a coordinator chose, with its owner, title and tags; false if the code is taken';

CREATE FUNCTION shorturl.reusable_code(url text, expires_at timestamptz, max_visits bigint,
                                       alias text, domain text, owner text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_reusable_code'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.reusable_code(text, timestamptz, bigint, text, text, text) IS
'shard side: the code shorten(reuse => true, owner => ...) would hand out again on this shard, or NULL';

REVOKE ALL ON FUNCTION shorturl.store_link(bigint, text, text, timestamptz, bigint, boolean, text, text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.reusable_code(text, timestamptz, bigint, text, text, text) FROM PUBLIC;

-------------------------------------------------------------------------
-- QR codes
-------------------------------------------------------------------------

-- qr_svg and qr_png are pure functions of their arguments, like
-- base62_encode: every role may call them.

CREATE FUNCTION shorturl.qr_svg(content text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_qr_svg'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.qr_svg(text) IS
'SVG document of a QR code of the text (as UTF-8, error correction level M), black on white with a 4-module quiet zone; its viewBox is one unit per module, so it scales to any size';

CREATE FUNCTION shorturl.qr_png(content text, scale integer DEFAULT 4)
RETURNS bytea
AS 'MODULE_PATHNAME', 'shorturl_qr_png'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.qr_png(text, integer) IS
'1-bit grayscale PNG of a QR code of the text (as UTF-8, error correction level M) with a 4-module quiet zone, scale (1..32) pixels per module: (modules + 8) * scale pixels square';
