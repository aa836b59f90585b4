/* pg_shorturl--0.5.sql: pg_shorturl 0.5 as it was released to main: base62, routing,
 * the store, counters and the coordinator.  Frozen: the upgrade to 0.6 starts here,
 * and the upgrade test installs it.  (0.1 to 0.5 were squashed into this file; their
 * scripts were never released on their own.) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_shorturl VERSION '0.5'" to load this file. \quit

-------- from pg_shorturl--0.1.sql --------


-- The schema comes from the control file; applications need to see into it.
GRANT USAGE ON SCHEMA shorturl TO PUBLIC;

CREATE FUNCTION shorturl.base62_encode(value bigint, min_width integer DEFAULT 0)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_base62_encode'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.base62_encode(bigint, integer) IS
'base62 digits (0-9A-Za-z) of a non-negative bigint, left-padded with 0 to at least min_width (0..64) characters';

CREATE FUNCTION shorturl.base62_decode(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_base62_decode'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.base62_decode(text) IS
'bigint value of a base62 code (0-9A-Za-z, case-sensitive, leading zeros allowed); errors on any other character or a value above 2^63-1';

-------- from pg_shorturl--0.1--0.2.sql --------


--
-- hash64: XXH64 (seed 0) of the key's bytes, as a signed bigint.
--
CREATE FUNCTION shorturl.hash64(key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_hash64_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.hash64(text) IS
'XXH64 (seed 0) of the text''s bytes in the database encoding, reinterpreted as a signed bigint; stable across versions and platforms';

CREATE FUNCTION shorturl.hash64(key bytea)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_hash64_bytea'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.hash64(bytea) IS
'XXH64 (seed 0) of the bytes, reinterpreted as a signed bigint; stable across versions and platforms';

CREATE FUNCTION shorturl.hash64(key bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_hash64_int8'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.hash64(bigint) IS
'XXH64 (seed 0) of the 8-byte little-endian two''s-complement form of the value, reinterpreted as a signed bigint';

--
-- shard_mod: the unsigned hash modulo shard_count.
--
CREATE FUNCTION shorturl.shard_mod(key text, shard_count integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_shard_mod_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.shard_mod(text, integer) IS
'shard 0..shard_count-1 of a key: unsigned hash64(key) modulo shard_count; changing shard_count moves almost every key';

CREATE FUNCTION shorturl.shard_mod(key bytea, shard_count integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_shard_mod_bytea'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.shard_mod(bytea, integer) IS
'shard 0..shard_count-1 of a key: unsigned hash64(key) modulo shard_count; changing shard_count moves almost every key';

CREATE FUNCTION shorturl.shard_mod(key bigint, shard_count integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_shard_mod_int8'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.shard_mod(bigint, integer) IS
'shard 0..shard_count-1 of a key: unsigned hash64(key) modulo shard_count; changing shard_count moves almost every key';

--
-- jump_hash: Lamping & Veach's jump consistent hash of the unsigned hash.
--
CREATE FUNCTION shorturl.jump_hash(key text, bucket_count integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_jump_hash_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.jump_hash(text, integer) IS
'bucket 0..bucket_count-1 of a key by jump consistent hashing of hash64(key); growing to N+1 buckets moves 1/(N+1) of the keys, all into the new bucket';

CREATE FUNCTION shorturl.jump_hash(key bytea, bucket_count integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_jump_hash_bytea'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.jump_hash(bytea, integer) IS
'bucket 0..bucket_count-1 of a key by jump consistent hashing of hash64(key); growing to N+1 buckets moves 1/(N+1) of the keys, all into the new bucket';

CREATE FUNCTION shorturl.jump_hash(key bigint, bucket_count integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_jump_hash_int8'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.jump_hash(bigint, integer) IS
'bucket 0..bucket_count-1 of a key by jump consistent hashing of hash64(key); growing to N+1 buckets moves 1/(N+1) of the keys, all into the new bucket';

--
-- The weighted shard map and rendezvous routing over it.
--
CREATE TABLE shorturl.shards (
    name text COLLATE "C" PRIMARY KEY CHECK (name <> ''),
    weight double precision NOT NULL CHECK (weight BETWEEN 1e-9 AND 1e9),
    conninfo text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.shards IS
'the weighted shard map shorturl.route(key) routes over; a key goes to the shard with the highest weighted rendezvous score';
COMMENT ON COLUMN shorturl.shards.name IS
'shard name (case-sensitive); part of the routing formula, so renaming a shard moves its keys';
COMMENT ON COLUMN shorturl.shards.weight IS
'relative share of keys, from 1e-9 to 1e9: a shard receives weight / sum(weight) of them';
COMMENT ON COLUMN shorturl.shards.conninfo IS
'libpq connection string of the shard, for applications and tools that connect to it; not used by routing';
COMMENT ON COLUMN shorturl.shards.created_at IS
'when the shard was added';

-- The map is configuration the owner maintains: keep it in pg_dump.
SELECT pg_catalog.pg_extension_config_dump('shorturl.shards', '');

-- Readable by all (routing is public knowledge); writable by the owner only.
REVOKE ALL ON shorturl.shards FROM PUBLIC;
GRANT SELECT ON shorturl.shards TO PUBLIC;

CREATE FUNCTION shorturl.shards_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shorturl_shards_changed'
LANGUAGE C;

COMMENT ON FUNCTION shorturl.shards_changed() IS
'trigger on shorturl.shards: makes every session drop its cached shard map when a change commits';

CREATE TRIGGER shards_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shorturl.shards
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.shards_changed();

COMMENT ON TRIGGER shards_changed ON shorturl.shards IS
'invalidates the per-session shard map cache of shorturl.route(key)';

-- Fire under session_replication_role = replica too (logical replication,
-- restores), or sessions would keep routing over an old map.
ALTER TABLE shorturl.shards ENABLE ALWAYS TRIGGER shards_changed;

CREATE FUNCTION shorturl.route(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_route_text'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(text) IS
'name of the shard in shorturl.shards that owns a key (weighted rendezvous hashing of hash64(key)); equals route(key, names, weights) over the current map';

CREATE FUNCTION shorturl.route(key bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_route_bytea'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(bytea) IS
'name of the shard in shorturl.shards that owns a key (weighted rendezvous hashing of hash64(key)); equals route(key, names, weights) over the current map';

CREATE FUNCTION shorturl.route(key bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_route_int8'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(bigint) IS
'name of the shard in shorturl.shards that owns a key (weighted rendezvous hashing of hash64(key)); equals route(key, names, weights) over the current map';

CREATE FUNCTION shorturl.route(key text, names text[], weights double precision[])
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_route_map_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(text, text[], double precision[]) IS
'name of the shard that owns a key under the given map (names and weights, same length): the pure form of route(key), for what-if analysis';

CREATE FUNCTION shorturl.route(key bytea, names text[], weights double precision[])
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_route_map_bytea'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(bytea, text[], double precision[]) IS
'name of the shard that owns a key under the given map (names and weights, same length): the pure form of route(key), for what-if analysis';

CREATE FUNCTION shorturl.route(key bigint, names text[], weights double precision[])
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_route_map_int8'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route(bigint, text[], double precision[]) IS
'name of the shard that owns a key under the given map (names and weights, same length): the pure form of route(key), for what-if analysis';

-------- from pg_shorturl--0.2--0.3.sql --------


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

-------- from pg_shorturl--0.3--0.4.sql --------


CREATE FUNCTION shorturl.flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_flush'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.flush() IS
'writes this database''s click counters from shared memory to shorturl.links now, in this transaction; returns the visits written';

CREATE FUNCTION shorturl.purge_expired(max_rows integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_purge_expired'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.purge_expired(integer) IS
'deletes expired links, and links exhausted longer than shorturl.purge_grace ago, in batches of shorturl.purge_batch_size within this transaction; at most max_rows (NULL: all); returns the links deleted';

REVOKE ALL ON FUNCTION shorturl.flush() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.purge_expired(integer) FROM PUBLIC;

CREATE FUNCTION shorturl.stats(
    OUT mode text,
    OUT pending_links bigint,
    OUT pending_visits bigint,
    OUT flushed_visits bigint,
    OUT flushes bigint,
    OUT last_flush_at timestamptz,
    OUT last_flush_ms double precision,
    OUT purged bigint,
    OUT last_purge_at timestamptz,
    OUT sync_fallbacks bigint,
    OUT dropped_deltas bigint,
    OUT worker_pid integer,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT max_pending_links integer)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the background worker: mode, pending clicks, flushes, purges, fallbacks, errors';
COMMENT ON COLUMN shorturl.stats.mode IS
'shared: clicks in this database are counted in shared memory and flushed by the worker; sync: each click updates its row';
COMMENT ON COLUMN shorturl.stats.pending_links IS 'links of this database with clicks not yet written to shorturl.links';
COMMENT ON COLUMN shorturl.stats.pending_visits IS 'clicks of this database not yet written to shorturl.links';
COMMENT ON COLUMN shorturl.stats.flushed_visits IS 'clicks written to the table by flushes since the server started';
COMMENT ON COLUMN shorturl.stats.flushes IS 'flushes committed since the server started';
COMMENT ON COLUMN shorturl.stats.last_flush_at IS 'when the latest flush committed';
COMMENT ON COLUMN shorturl.stats.last_flush_ms IS 'how long the latest flush took, in milliseconds';
COMMENT ON COLUMN shorturl.stats.purged IS 'links deleted by purges since the server started';
COMMENT ON COLUMN shorturl.stats.last_purge_at IS 'when the latest purge batch ran';
COMMENT ON COLUMN shorturl.stats.sync_fallbacks IS 'clicks counted synchronously because the counter table was full';
COMMENT ON COLUMN shorturl.stats.dropped_deltas IS 'clicks dropped because their link was deleted before they were flushed';
COMMENT ON COLUMN shorturl.stats.worker_pid IS 'process id of the worker; NULL when none runs';
COMMENT ON COLUMN shorturl.stats.last_error IS 'message of the latest error of a flush or purge';
COMMENT ON COLUMN shorturl.stats.last_error_at IS 'when that error happened';
COMMENT ON COLUMN shorturl.stats.max_pending_links IS 'the setting shorturl.max_pending_links: links the counter table can hold';

GRANT SELECT ON shorturl.stats TO PUBLIC;

-------- from pg_shorturl--0.4--0.5.sql --------


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
