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
-- Carrying grants over a changed signature
--
-- shorten() and reset_visits() gain arguments, so they are dropped and
-- made again; the EXECUTE privileges granted on them (to the application
-- role) must survive ALTER EXTENSION UPDATE.  _grantees_of() lists them
-- before the DROP, _grant_execute() gives them back after the CREATE;
-- both are dropped at the end of this script.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._grantees_of(f regprocedure)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                             ELSE quote_ident(r.rolname) END, ', '), '')
    FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
         LEFT JOIN pg_roles r ON r.oid = a.grantee
    WHERE p.oid = f AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
$$;

CREATE FUNCTION shorturl._grant_execute(f regprocedure, grantees text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grantees <> '' THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, grantees);
    END IF;
END
$$;

SELECT pg_catalog.set_config('pg_shorturl.grantees_shorten',
    shorturl._grantees_of('shorturl.shorten(text, timestamptz, bigint, text, boolean)'), true);
SELECT pg_catalog.set_config('pg_shorturl.grantees_reset_visits',
    shorturl._grantees_of('shorturl.reset_visits(text)'), true);

DROP FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean);
DROP FUNCTION shorturl.reset_visits(text);

CREATE FUNCTION shorturl.shorten(url text,
                                 expires_at timestamptz DEFAULT NULL,
                                 max_visits bigint DEFAULT NULL,
                                 alias text DEFAULT NULL,
                                 reuse boolean DEFAULT false,
                                 owner text DEFAULT NULL,
                                 title text DEFAULT NULL,
                                 tags text[] DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_shorten'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[]) IS
'stores a link to an http(s) URL, with an owner, a title and tags, and returns its code: a generated unguessable code, or the alias given; reuse => true returns an existing active link of the same owner with the same URL and limits instead';

REVOKE ALL ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[]) FROM PUBLIC;

-------------------------------------------------------------------------
-- Managing links
--
-- The management functions are SECURITY DEFINER, so an application role
-- needs no table privilege.  Each takes an optional owner: given, it acts
-- only on that owner's links, and another owner's link reads as unknown
-- (the answer for a code that does not exist), so no tenant can probe
-- another's codes.  They find a link by (code, domain) through
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
-- code on the default domain, or another owner's link.
CREATE FUNCTION shorturl._find(code text, owner text, for_update boolean)
RETURNS shorturl.links
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links;
BEGIN
    IF for_update THEN
        SELECT * INTO l FROM shorturl.links k
        WHERE k.code = _find.code AND k.domain = ''
          AND (_find.owner IS NULL OR k.owner = _find.owner)
        FOR UPDATE;
    ELSE
        SELECT * INTO l FROM shorturl.links k
        WHERE k.code = _find.code AND k.domain = ''
          AND (_find.owner IS NULL OR k.owner = _find.owner);
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN l;
END
$$;

COMMENT ON FUNCTION shorturl._find(text, text, boolean) IS
'the link a management call names (on the default domain, of the owner if one is given), locked if asked; NULL when there is none';

REVOKE ALL ON FUNCTION shorturl._find(text, text, boolean) FROM PUBLIC;

CREATE FUNCTION shorturl.get_link(code text, owner text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links := shorturl._find(code, owner, false);
BEGIN
    IF l.id IS NOT NULL THEN
        RETURN NEXT shorturl._info(l);
    END IF;
END
$$;

COMMENT ON FUNCTION shorturl.get_link(text, text) IS
'one link with every field, its live visits and its status; no row for an unknown code or another owner''s link';

-- _list_sql is the query list_links() runs for the conditions it was
-- given: only those go in, so each kind of call gets a plan of its own
-- (the keyset order through links_owner_idx or links_code_key, a tag
-- through links_tags_idx).  Its parameters are owner, tag, search, after
-- and lim, in that order.  A function of its own so that tests can
-- EXPLAIN exactly what runs.
CREATE FUNCTION shorturl._list_sql(by_owner boolean, by_tag boolean, by_search boolean,
                                   after_code boolean)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'SELECT i.* FROM (SELECT k AS l FROM shorturl.links k WHERE k.domain = '''''
        || CASE WHEN by_owner THEN ' AND k.owner = $1' ELSE '' END
        || CASE WHEN by_tag THEN ' AND k.tags @> ARRAY[$2] AND k.tags IS NOT NULL' ELSE '' END
        || CASE WHEN by_search
                THEN ' AND (strpos(lower(k.url), lower($3)) > 0 OR strpos(lower(k.title), lower($3)) > 0'
                     ' OR strpos(lower(k.code), lower($3)) > 0)'
                ELSE '' END
        || CASE WHEN after_code THEN ' AND k.code > $4' ELSE '' END
        || ' ORDER BY k.code LIMIT $5) s CROSS JOIN LATERAL shorturl._info(s.l) i ORDER BY i.code'
$$;

COMMENT ON FUNCTION shorturl._list_sql(boolean, boolean, boolean, boolean) IS
'the query list_links() runs for the conditions given (for EXPLAIN)';

REVOKE ALL ON FUNCTION shorturl._list_sql(boolean, boolean, boolean, boolean) FROM PUBLIC;

CREATE FUNCTION shorturl.list_links(owner text DEFAULT NULL,
                                    tag text DEFAULT NULL,
                                    search text DEFAULT NULL,
                                    after text DEFAULT NULL,
                                    lim integer DEFAULT 100)
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
        USING owner, tag, search, after, lim;
END
$$;

COMMENT ON FUNCTION shorturl.list_links(text, text, text, text, integer) IS
'links of the default domain in code order, lim (1..1000) at a time after the code given (keyset pagination): all, one owner''s, those with a tag, or those whose URL, title or code contains a text (without regard to case)';

CREATE FUNCTION shorturl.update_link(code text, patch jsonb, owner text DEFAULT NULL)
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

    l := shorturl._find(code, owner, true);
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
        ELSIF jsonb_typeof(v) = 'number' AND (v #>> '{}') ~ '^[0-9]{1,18}$' AND (v #>> '{}')::bigint >= 1 THEN
            l.max_visits := (v #>> '{}')::bigint;
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

COMMENT ON FUNCTION shorturl.update_link(text, jsonb, text) IS
'changes a link with PATCH semantics (keys url, expires_at, max_visits, title, tags; JSON null clears a field) and returns it; no row for an unknown code or another owner''s link';

-- The changes below are one statement each: an UPDATE or DELETE finds the
-- link as _find() does and locks its row itself.
CREATE FUNCTION shorturl.disable_link(code text, reason text DEFAULT NULL, owner text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH changed AS (
        UPDATE shorturl.links k
        SET disabled_at = coalesce(k.disabled_at, now()), disabled_reason = disable_link.reason
        WHERE k.code = disable_link.code AND k.domain = ''
          AND (disable_link.owner IS NULL OR k.owner = disable_link.owner)
        RETURNING 1)
    SELECT EXISTS (SELECT FROM changed)
$$;

COMMENT ON FUNCTION shorturl.disable_link(text, text, text) IS
'takes a link down: it resolves to NULL and link_status() says disabled until enable_link(); false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.enable_link(code text, owner text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH changed AS (
        UPDATE shorturl.links k SET disabled_at = NULL, disabled_reason = NULL
        WHERE k.code = enable_link.code AND k.domain = ''
          AND (enable_link.owner IS NULL OR k.owner = enable_link.owner)
        RETURNING 1)
    SELECT EXISTS (SELECT FROM changed)
$$;

COMMENT ON FUNCTION shorturl.enable_link(text, text) IS
'puts a disabled link back; false for an unknown code or another owner''s link';

-- The links_deleted trigger retires an alias and deletes the counts.
CREATE FUNCTION shorturl.delete_link(code text, owner text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM shorturl.links k
        WHERE k.code = delete_link.code AND k.domain = ''
          AND (delete_link.owner IS NULL OR k.owner = delete_link.owner)
        RETURNING 1)
    SELECT EXISTS (SELECT FROM gone)
$$;

COMMENT ON FUNCTION shorturl.delete_link(text, text) IS
'deletes a link and its counts; its code is never issued again; false for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.reset_visits(code text, owner text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT shorturl._reset_link(l.id) FROM shorturl._find(code, owner, true) l WHERE l.id IS NOT NULL
$$;

COMMENT ON FUNCTION shorturl.reset_visits(text, text) IS
'sets a link''s visit count back to zero, unflushed clicks included, when the transaction commits; returns the count it had, or NULL for an unknown code or another owner''s link';

REVOKE ALL ON FUNCTION shorturl.get_link(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.list_links(text, text, text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.update_link(text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.disable_link(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.enable_link(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.delete_link(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.reset_visits(text, text) FROM PUBLIC;

-- the grants the old signatures had
SELECT shorturl._grant_execute('shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[])',
                               pg_catalog.current_setting('pg_shorturl.grantees_shorten'));
SELECT shorturl._grant_execute('shorturl.reset_visits(text, text)',
                               pg_catalog.current_setting('pg_shorturl.grantees_reset_visits'));
DROP FUNCTION shorturl._grantees_of(regprocedure);
DROP FUNCTION shorturl._grant_execute(regprocedure, text);

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
