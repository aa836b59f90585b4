/* pg_shorturl--0.2--0.3.sql: the short-URL store */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.3'" to load this file. \quit

--
-- The code generator: a sequence, and the key of the permutation.
--
CREATE SEQUENCE shorturl.link_id_seq AS bigint MINVALUE 0 START WITH 0 NO CYCLE;

COMMENT ON SEQUENCE shorturl.link_id_seq IS
'numbers generated codes: shorten() permutes the next value with the key in shorturl.code_key';

CREATE FUNCTION shorturl.new_code_key()
RETURNS bytea
AS 'MODULE_PATHNAME', 'shorturl_new_code_key'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.new_code_key() IS
'16 random bytes from the operating system''s strong random source: a fresh key for shorturl.code_key';

CREATE TABLE shorturl.code_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key bytea NOT NULL CHECK (octet_length(key) = 16),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.code_key IS
'the 128-bit key of the permutation that turns sequence numbers into codes; secret, one row, readable by the extension owner only';
COMMENT ON COLUMN shorturl.code_key.singleton IS 'always true: the table holds one row';
COMMENT ON COLUMN shorturl.code_key.key IS 'the SipHash-2-4 key of the Feistel permutation (16 bytes)';
COMMENT ON COLUMN shorturl.code_key.created_at IS 'when the key was made';

-- A restored key replaces the one CREATE EXTENSION made: pg_dump restores
-- the extension first (with a fresh key), then this table's row.
CREATE FUNCTION shorturl.code_key_replace()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM shorturl.code_key;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION shorturl.code_key_replace() IS
'trigger on shorturl.code_key: an inserted key replaces the current one (so pg_dump''s restore keeps the dumped key)';

CREATE TRIGGER code_key_replace
BEFORE INSERT ON shorturl.code_key
FOR EACH ROW EXECUTE FUNCTION shorturl.code_key_replace();

COMMENT ON TRIGGER code_key_replace ON shorturl.code_key IS
'an inserted key replaces the current one';

CREATE FUNCTION shorturl.code_key_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shorturl_code_key_changed'
LANGUAGE C;

COMMENT ON FUNCTION shorturl.code_key_changed() IS
'trigger on shorturl.code_key: makes every session reload the key when a change commits';

CREATE TRIGGER code_key_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shorturl.code_key
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.code_key_changed();

COMMENT ON TRIGGER code_key_changed ON shorturl.code_key IS
'invalidates the per-session cache of the key';

ALTER TABLE shorturl.code_key ENABLE ALWAYS TRIGGER code_key_changed;

INSERT INTO shorturl.code_key (key) SELECT shorturl.new_code_key();

--
-- The links.
--
CREATE TABLE shorturl.links (
    code text COLLATE "C" PRIMARY KEY,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at timestamptz,
    max_visits bigint CHECK (max_visits >= 1),
    visits bigint NOT NULL DEFAULT 0 CHECK (visits >= 0),
    last_visit_at timestamptz,
    exhausted_at timestamptz,
    is_alias boolean NOT NULL DEFAULT false,
    url_hash bigint NOT NULL GENERATED ALWAYS AS (shorturl.hash64(url)) STORED
);

COMMENT ON TABLE shorturl.links IS 'the short links: code -> url, with expiry by date and by visit count';
COMMENT ON COLUMN shorturl.links.code IS 'the short code (generated, or an alias); case-sensitive';
COMMENT ON COLUMN shorturl.links.url IS 'the target URL, as given to shorten()';
COMMENT ON COLUMN shorturl.links.created_at IS 'when the link was made';
COMMENT ON COLUMN shorturl.links.expires_at IS 'when the link stops resolving; NULL for never';
COMMENT ON COLUMN shorturl.links.max_visits IS 'how many visits the link serves; NULL for no limit';
COMMENT ON COLUMN shorturl.links.visits IS 'visits counted so far (visits() adds those not yet written here)';
COMMENT ON COLUMN shorturl.links.last_visit_at IS 'time of the latest visit counted here';
COMMENT ON COLUMN shorturl.links.exhausted_at IS 'when visits reached max_visits; NULL while the link has visits left';
COMMENT ON COLUMN shorturl.links.is_alias IS 'true for a code the caller chose, false for a generated one';
COMMENT ON COLUMN shorturl.links.url_hash IS 'hash64(url), indexed so shorten(reuse => true) finds a link by URL without a scan';

-- Purging expired and exhausted links walks these, oldest first.
CREATE INDEX links_expires_at_idx ON shorturl.links (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX links_exhausted_at_idx ON shorturl.links (exhausted_at) WHERE exhausted_at IS NOT NULL;
CREATE INDEX links_url_hash_idx ON shorturl.links (url_hash);

COMMENT ON INDEX shorturl.links_expires_at_idx IS 'finds expired links for purging';
COMMENT ON INDEX shorturl.links_exhausted_at_idx IS 'finds exhausted links for purging';
COMMENT ON INDEX shorturl.links_url_hash_idx IS 'finds links by URL for shorten(reuse => true)';

--
-- Quarantine: the alias of a deleted link stays unavailable for a while, so
-- a printed old link cannot land on a new owner's target.
--
CREATE TABLE shorturl.alias_quarantine (
    alias text COLLATE "C" PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    released_at timestamptz NOT NULL
);

COMMENT ON TABLE shorturl.alias_quarantine IS
'aliases of deleted links, unavailable to shorten() until released_at (shorturl.alias_quarantine after the deletion)';
COMMENT ON COLUMN shorturl.alias_quarantine.alias IS 'the alias';
COMMENT ON COLUMN shorturl.alias_quarantine.deleted_at IS 'when its link was deleted';
COMMENT ON COLUMN shorturl.alias_quarantine.released_at IS 'from when shorten() may give the alias out again';

CREATE FUNCTION shorturl.quarantine_aliases()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- links a rebalance moves to another shard (shorturl.move_out, 0.5) are
    -- not deleted, only moved
    IF pg_catalog.current_setting('pg_shorturl.moving', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO shorturl.alias_quarantine (alias, released_at)
    SELECT code, pg_catalog.now() + COALESCE(
               pg_catalog.current_setting('shorturl.alias_quarantine', true), '30 days')::interval
    FROM gone WHERE is_alias
    ON CONFLICT (alias) DO UPDATE
        SET deleted_at = EXCLUDED.deleted_at,
            released_at = GREATEST(shorturl.alias_quarantine.released_at, EXCLUDED.released_at);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.quarantine_aliases() IS
'trigger on shorturl.links: puts the aliases of deleted links in shorturl.alias_quarantine';

CREATE TRIGGER quarantine_aliases
AFTER DELETE ON shorturl.links
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.quarantine_aliases();

COMMENT ON TRIGGER quarantine_aliases ON shorturl.links IS
'quarantines the aliases of deleted links, whoever deletes them';

--
-- Reserved aliases: words that would shadow pages of a shortener's site.
--
CREATE TABLE shorturl.reserved_aliases (
    alias text COLLATE "C" PRIMARY KEY,
    builtin boolean NOT NULL DEFAULT false
);

CREATE UNIQUE INDEX reserved_aliases_lower_idx ON shorturl.reserved_aliases (pg_catalog.lower(alias));

COMMENT ON TABLE shorturl.reserved_aliases IS
'aliases shorten() refuses, compared without regard to case; the owner may add and delete rows';
COMMENT ON COLUMN shorturl.reserved_aliases.alias IS 'the reserved word';
COMMENT ON COLUMN shorturl.reserved_aliases.builtin IS 'true for the words CREATE EXTENSION put in (pg_dump keeps only the others)';
COMMENT ON INDEX shorturl.reserved_aliases_lower_idx IS 'looks up reserved words without regard to case';

INSERT INTO shorturl.reserved_aliases (alias, builtin)
SELECT w, true FROM unnest(ARRAY[
    'about', 'account', 'admin', 'api', 'app', 'assets', 'auth', 'blog',
    'css', 'dashboard', 'docs', 'favicon', 'health', 'help', 'img', 'js',
    'login', 'logout', 'metrics', 'new', 'privacy', 'register', 'robots',
    'settings', 'shorten', 'signin', 'signup', 'sitemap', 'static', 'stats',
    'status', 'support', 'terms', 'well-known', 'www'
]) AS w;

--
-- Keep user data and the key in pg_dump.
--
SELECT pg_catalog.pg_extension_config_dump('shorturl.links', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.code_key', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.link_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.reserved_aliases', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('shorturl.alias_quarantine', '');

--
-- Privileges: no direct writes for PUBLIC anywhere, no reads of links or key.
--
REVOKE ALL ON shorturl.links FROM PUBLIC;
REVOKE ALL ON shorturl.code_key FROM PUBLIC;
REVOKE ALL ON shorturl.link_id_seq FROM PUBLIC;
REVOKE ALL ON shorturl.reserved_aliases FROM PUBLIC;
REVOKE ALL ON shorturl.alias_quarantine FROM PUBLIC;
GRANT SELECT ON shorturl.reserved_aliases TO PUBLIC;

--
-- The API.
--
CREATE FUNCTION shorturl.shorten(url text,
                                 expires_at timestamptz DEFAULT NULL,
                                 max_visits bigint DEFAULT NULL,
                                 alias text DEFAULT NULL,
                                 reuse boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_shorten'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean) IS
'stores a link to an http(s) URL and returns its code: a generated unguessable code, or the alias given; reuse => true returns an existing active link with the same URL and limits instead';

-- resolve, link_status and visits are not SECURITY DEFINER: on every call
-- they read the link through its index and count in shared memory, which
-- needs no privilege (EXECUTE is the gate).  Their rare SQL (a synchronous
-- click; a coordinator's call to a shard) runs as the table's owner, with
-- every name qualified (src/links.c, become_owner).  A SET search_path
-- clause would cost each redirect a few microseconds for nothing.
CREATE FUNCTION shorturl.resolve(code text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_resolve'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.resolve(text) IS
'URL of an active link, counting one visit; NULL for an unknown, expired or exhausted code, or any other text';

CREATE FUNCTION shorturl.link_status(code text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_link_status'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.link_status(text) IS
'active, expired, exhausted or unknown, without counting a visit (for answering 302, 410 or 404)';

CREATE FUNCTION shorturl.visits(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_visits'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.visits(text) IS
'visits of a link so far, or NULL for an unknown code';

CREATE FUNCTION shorturl.encode_id(id bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_encode_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.encode_id(bigint) IS
'the code the generator makes of a sequence number (for operators: reveals the permutation)';

CREATE FUNCTION shorturl.decode_id(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_decode_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.decode_id(text) IS
'the sequence number a generated code came from, or NULL (for operators: reveals how many links exist)';

REVOKE ALL ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.resolve(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_status(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.visits(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.encode_id(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.decode_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.new_code_key() FROM PUBLIC;

--
-- Capacity planning.
--
CREATE FUNCTION shorturl.estimate(daily_active_users bigint,
                                  urls_per_user_per_day double precision,
                                  read_write_ratio double precision,
                                  avg_url_bytes integer,
                                  retention_years double precision,
                                  peak_factor double precision DEFAULT 3,
                                  max_guess_rate double precision DEFAULT 1e-4,
                                  OUT write_qps double precision,
                                  OUT read_qps double precision,
                                  OUT peak_write_qps double precision,
                                  OUT peak_read_qps double precision,
                                  OUT total_urls bigint,
                                  OUT storage_bytes numeric,
                                  OUT write_bytes_per_s double precision,
                                  OUT read_bytes_per_s double precision,
                                  OUT min_code_length integer)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    seconds_per_day CONSTANT double precision := 86400;
    days_per_year CONSTANT double precision := 365;
    urls double precision;
BEGIN
    IF daily_active_users < 0 OR urls_per_user_per_day < 0 OR read_write_ratio < 0
       OR avg_url_bytes < 0 OR retention_years < 0 OR peak_factor < 1
       OR NOT (max_guess_rate > 0 AND max_guess_rate <= 1) THEN
        RAISE EXCEPTION 'invalid capacity estimate input'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Counts, ratios, sizes and years must not be negative, peak_factor must be at least 1, and max_guess_rate must be in (0, 1].';
    END IF;

    write_qps := daily_active_users * urls_per_user_per_day / seconds_per_day;
    read_qps := write_qps * read_write_ratio;
    peak_write_qps := write_qps * peak_factor;
    peak_read_qps := read_qps * peak_factor;
    urls := daily_active_users * urls_per_user_per_day * days_per_year * retention_years;
    total_urls := round(urls)::bigint;
    storage_bytes := total_urls::numeric * avg_url_bytes;
    write_bytes_per_s := write_qps * avg_url_bytes;
    read_bytes_per_s := read_qps * avg_url_bytes;
    -- the narrowest width whose space makes a random guess hit a link
    -- with probability total_urls / 62^L of at most max_guess_rate
    min_code_length := 1;
    WHILE total_urls / 62::double precision ^ min_code_length > max_guess_rate LOOP
        min_code_length := min_code_length + 1;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.estimate(bigint, double precision, double precision, integer, double precision, double precision, double precision) IS
'back-of-envelope capacity estimate for a shortener: QPS, peaks, URL count, storage, bandwidth, and the shortest code length that keeps a random guess below max_guess_rate';
