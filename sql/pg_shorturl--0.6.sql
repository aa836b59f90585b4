/* pg_shorturl--0.6.sql: base62 codes, shard routing, the links store,
 * write-behind click counters and their workers.  (The coordinator is the
 * extension pg_shorturl_coordinator.) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_shorturl" to load this file. \quit

-- The schema comes from the control file; applications need to see into it.
GRANT USAGE ON SCHEMA shorturl TO PUBLIC;

-------------------------------------------------------------------------
-- base62
-------------------------------------------------------------------------
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

-------------------------------------------------------------------------
-- Shard routing
-------------------------------------------------------------------------

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
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retiring boolean NOT NULL DEFAULT false
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
COMMENT ON COLUMN shorturl.shards.retiring IS
'true for a shard being removed from a cluster: route() gives it no keys, and a rebalance moves its links away, then drops it';

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

CREATE FUNCTION shorturl.route_position(key text)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_route_position_text'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route_position(text) IS
'position (from 0) of route(key) among all shards of shorturl.shards sorted by name, retiring ones included: how a coordinator numbers its PL/Proxy partitions';

-------------------------------------------------------------------------
-- The code generator: a sequence, and the key and widths of the code space.
-------------------------------------------------------------------------

CREATE SEQUENCE shorturl.link_id_seq AS bigint MINVALUE 0 START WITH 0 NO CYCLE;

COMMENT ON SEQUENCE shorturl.link_id_seq IS
'link ids: every link takes one, and a generated code is its id placed in the code space of shorturl.code_key';

CREATE FUNCTION shorturl.new_code_key()
RETURNS bytea
AS 'MODULE_PATHNAME', 'shorturl_new_code_key'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.new_code_key() IS
'16 random bytes from the operating system''s strong random source: a fresh key for shorturl.code_key';

-- The row is made by the first shorten() or set_code_width(), not here, so
-- that every restore path (data-only ones too) brings the dumped key back.
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
'the 128-bit key of the permutation that turns link ids into codes, and the code widths; secret, one row, readable by the extension owner only';
COMMENT ON COLUMN shorturl.code_key.singleton IS 'always true: the table holds one row';
COMMENT ON COLUMN shorturl.code_key.key IS 'the SipHash-2-4 key of the Feistel permutation (16 bytes)';
COMMENT ON COLUMN shorturl.code_key.created_at IS 'when the key was made';
COMMENT ON COLUMN shorturl.code_key.width_from IS 'first link id of each width segment (the first is 0); change with shorturl.set_code_width()';
COMMENT ON COLUMN shorturl.code_key.widths IS 'code width each segment starts at; ids then fill wider codes as each width is used up';

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

-------------------------------------------------------------------------
-- The links
-------------------------------------------------------------------------

CREATE TABLE shorturl.links (
    id bigint PRIMARY KEY,
    code text COLLATE "C" NOT NULL,
    domain text COLLATE "C" NOT NULL DEFAULT '',
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at timestamptz,
    max_visits bigint CHECK (max_visits >= 1),
    exhausted_at timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    is_alias boolean NOT NULL DEFAULT false,
    url_hash bigint NOT NULL GENERATED ALWAYS AS (shorturl.hash64(url)) STORED,
    CONSTRAINT links_code_key UNIQUE (code, domain)
);

COMMENT ON TABLE shorturl.links IS 'the short links: code (on a domain) -> url, with expiry by date and by visit count';
COMMENT ON COLUMN shorturl.links.id IS 'the link''s identity, from shorturl.link_id_seq: never shared by two links, even after one is deleted';
COMMENT ON COLUMN shorturl.links.code IS 'the short code (generated, or an alias); case-sensitive';
COMMENT ON COLUMN shorturl.links.domain IS 'the short domain the code lives on; '''' for the default one';
COMMENT ON COLUMN shorturl.links.url IS 'the target URL, as given to shorten() (a non-ASCII host in its ASCII form)';
COMMENT ON COLUMN shorturl.links.created_at IS 'when the link was made';
COMMENT ON COLUMN shorturl.links.expires_at IS 'when the link stops resolving; NULL for never';
COMMENT ON COLUMN shorturl.links.max_visits IS 'how many visits the link serves; NULL for no limit';
COMMENT ON COLUMN shorturl.links.exhausted_at IS 'when its visits reached max_visits; NULL while the link has visits left';
COMMENT ON COLUMN shorturl.links.disabled_at IS 'when the link was disabled; NULL while it is enabled';
COMMENT ON COLUMN shorturl.links.disabled_reason IS 'why the link was disabled';
COMMENT ON COLUMN shorturl.links.is_alias IS 'true for a code the caller chose, false for a generated one';
COMMENT ON COLUMN shorturl.links.url_hash IS 'hash64(url), indexed so shorten(reuse => true) finds a link by URL without a scan';
COMMENT ON INDEX shorturl.links_code_key IS 'finds a link by code and domain: the one probe resolve() makes';

-- Purging expired and exhausted links walks these, oldest first.
CREATE INDEX links_expires_at_idx ON shorturl.links (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX links_exhausted_at_idx ON shorturl.links (exhausted_at) WHERE exhausted_at IS NOT NULL;
CREATE INDEX links_url_hash_idx ON shorturl.links (url_hash, id);

COMMENT ON INDEX shorturl.links_expires_at_idx IS 'finds expired links for purging';
COMMENT ON INDEX shorturl.links_exhausted_at_idx IS 'finds exhausted links for purging';
COMMENT ON INDEX shorturl.links_url_hash_idx IS 'finds the newest links with a URL for shorten(reuse => true)';

--
-- Visit counts, apart from the links: a flush rewrites these narrow rows,
-- never a link's, so the rows resolve() reads stay put.  Each flush writes
-- a new version of every row clicked since the last one; half of each page
-- is left free so that version lands beside the old one (a HOT update, with
-- no new index entry), and the next visit to the page prunes the old.
--
CREATE TABLE shorturl.visit_counts (
    link_id bigint PRIMARY KEY,
    visits bigint NOT NULL CHECK (visits >= 0),
    last_visit_at timestamptz
) WITH (fillfactor = 50);

COMMENT ON TABLE shorturl.visit_counts IS
'visits of each link, as flushed from shared memory (shorturl.visits() adds those not yet written)';
COMMENT ON COLUMN shorturl.visit_counts.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.visit_counts.visits IS 'visits written so far';
COMMENT ON COLUMN shorturl.visit_counts.last_visit_at IS 'time of the latest visit written';

CREATE TABLE shorturl.pending_visits (
    link_id bigint NOT NULL,
    visits bigint NOT NULL DEFAULT 1 CHECK (visits >= 1),
    visited_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp()
);

CREATE INDEX pending_visits_link_id_idx ON shorturl.pending_visits (link_id);

COMMENT ON TABLE shorturl.pending_visits IS
'clicks counted synchronously (without shared memory) and not yet folded into shorturl.visit_counts by a flush; appending a row makes concurrent clicks of one link never wait for each other';
COMMENT ON COLUMN shorturl.pending_visits.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.pending_visits.visits IS 'clicks this row counts';
COMMENT ON COLUMN shorturl.pending_visits.visited_at IS 'when they happened';
COMMENT ON INDEX shorturl.pending_visits_link_id_idx IS 'adds up a link''s unfolded clicks';

--
-- Retired codes: the alias of a deleted link is never handed out again, so
-- a printed old link cannot land on a new page.  (A generated code needs no
-- row: the sequence has passed it.)
--
CREATE TABLE shorturl.retired_codes (
    code text COLLATE "C" NOT NULL,
    domain text COLLATE "C" NOT NULL DEFAULT '',
    retired_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (code, domain)
);

COMMENT ON TABLE shorturl.retired_codes IS
'aliases of deleted links, which shorten() never hands out again; the owner may delete a row to release an alias on purpose';
COMMENT ON COLUMN shorturl.retired_codes.code IS 'the alias';
COMMENT ON COLUMN shorturl.retired_codes.domain IS 'its domain; '''' for the default one';
COMMENT ON COLUMN shorturl.retired_codes.retired_at IS 'when its link was deleted';

-- What goes with a deleted link, whoever deletes it (purge, DELETE, a
-- management function): its alias is retired and its counts are deleted.
-- A rebalance moving links away (move_out(), which _moving() reports)
-- deletes without retiring: the links live on elsewhere.  SECURITY
-- DEFINER: whoever deletes, the retirement is written.
CREATE FUNCTION shorturl._moving()
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_moving'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl._moving() IS
'true while this session''s move_out() deletes the links it moves (for the links_deleted trigger)';

REVOKE ALL ON FUNCTION shorturl._moving() FROM PUBLIC;

CREATE FUNCTION shorturl.links_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT shorturl._moving() THEN
        INSERT INTO shorturl.retired_codes (code, domain)
        SELECT code, domain FROM gone WHERE is_alias
        ON CONFLICT DO NOTHING;
    END IF;
    DELETE FROM shorturl.visit_counts WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.pending_visits WHERE link_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_deleted() IS
'trigger on shorturl.links: retires the aliases of deleted links and deletes their counts';

CREATE TRIGGER links_deleted
AFTER DELETE ON shorturl.links
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.links_deleted();

COMMENT ON TRIGGER links_deleted ON shorturl.links IS
'retires the aliases of deleted links and deletes their counts, whoever deletes them';

CREATE FUNCTION shorturl.links_truncated()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO shorturl.retired_codes (code, domain)
    SELECT code, domain FROM shorturl.links WHERE is_alias
    ON CONFLICT DO NOTHING;
    TRUNCATE shorturl.visit_counts, shorturl.pending_visits;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_truncated() IS
'trigger on shorturl.links: retires every alias and empties the counts before a TRUNCATE';

CREATE TRIGGER links_truncated
BEFORE TRUNCATE ON shorturl.links
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.links_truncated();

COMMENT ON TRIGGER links_truncated ON shorturl.links IS
'retires every alias and empties the counts, so TRUNCATE keeps the promise that a code is never issued twice';

-- Not ENABLE ALWAYS: a logical replica gets retired_codes from its
-- publisher, and a data-only restore with --disable-triggers would reset
-- the setting anyway; session_replication_role = replica is a deliberate
-- bypass, as DISABLE TRIGGER is.

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
SELECT pg_catalog.pg_extension_config_dump('shorturl.visit_counts', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.pending_visits', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.code_key', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.link_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.reserved_aliases', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('shorturl.retired_codes', '');

--
-- Privileges: no direct writes for PUBLIC anywhere, no reads of links,
-- counts or key.
--
REVOKE ALL ON shorturl.links FROM PUBLIC;
REVOKE ALL ON shorturl.visit_counts FROM PUBLIC;
REVOKE ALL ON shorturl.pending_visits FROM PUBLIC;
REVOKE ALL ON shorturl.code_key FROM PUBLIC;
REVOKE ALL ON shorturl.link_id_seq FROM PUBLIC;
REVOKE ALL ON shorturl.reserved_aliases FROM PUBLIC;
REVOKE ALL ON shorturl.retired_codes FROM PUBLIC;
GRANT SELECT ON shorturl.reserved_aliases TO PUBLIC;

-------------------------------------------------------------------------
-- The API
-------------------------------------------------------------------------

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
-- click) runs as the tables' owner, with every name qualified
-- (src/catalog.c).  A SET search_path clause would cost each redirect a few
-- microseconds for nothing.  link_status and visits read shared memory
-- together with a fresh snapshot, which nothing in a parallel query may
-- take, the leader included: PARALLEL UNSAFE.
CREATE FUNCTION shorturl.resolve(code text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_resolve'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.resolve(text) IS
'URL of an active link, counting one visit; NULL for an unknown, expired, exhausted or disabled code, or any other text';

CREATE FUNCTION shorturl.link_status(code text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_link_status'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.link_status(text) IS
'active, expired, exhausted, disabled or unknown, without counting a visit (for answering 302, 410 or 404)';

CREATE FUNCTION shorturl.visits(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_visits'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.visits(text) IS
'visits of a link so far, counting those not yet flushed, or NULL for an unknown code';

CREATE FUNCTION shorturl.encode_id(id bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_encode_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.encode_id(bigint) IS
'the code the generator makes of a link id (for operators: reveals the permutation)';

CREATE FUNCTION shorturl.decode_id(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_decode_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.decode_id(text) IS
'the link id a generated code came from, or NULL (for operators: reveals how many links exist)';

CREATE FUNCTION shorturl.set_code_width(width integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_set_code_width'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.set_code_width(integer) IS
'sets the width (4..10) new generated codes start at; refuses a width the codes already issued have reached';

CREATE FUNCTION shorturl.reset_visits(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_reset_visits'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.reset_visits(text) IS
'sets a link''s visit count back to zero, unflushed clicks included, when the transaction commits; returns the count it had, or NULL for an unknown code';

REVOKE ALL ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.reset_visits(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.resolve(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_status(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.visits(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.encode_id(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.decode_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.set_code_width(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.new_code_key() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.code_key_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shards_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.links_deleted() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.links_truncated() FROM PUBLIC;

-------------------------------------------------------------------------
-- Counters and the workers
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_flush'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.flush() IS
'writes this database''s unflushed clicks (shared memory, shorturl.pending_visits) to shorturl.visit_counts now, in this transaction; returns the visits written';

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
    OUT room_waits bigint,
    OUT sync_fallbacks bigint,
    OUT refused_clicks bigint,
    OUT dropped_deltas bigint,
    OUT worker_pid integer,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT max_pending_links integer)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the worker of this database: mode, unflushed clicks, flushes, purges, waits, fallbacks, errors';
COMMENT ON COLUMN shorturl.stats.mode IS
'shared: clicks are counted in shared memory and flushed by a worker; sync: each click is written in the clicking transaction; standby: a hot standby, which counts nothing';
COMMENT ON COLUMN shorturl.stats.pending_links IS 'links of this database with clicks not yet written to shorturl.visit_counts';
COMMENT ON COLUMN shorturl.stats.pending_visits IS 'clicks of this database held in shared memory, not yet written';
COMMENT ON COLUMN shorturl.stats.flushed_visits IS 'clicks written by flushes since the server started';
COMMENT ON COLUMN shorturl.stats.flushes IS 'flushes committed since the server started';
COMMENT ON COLUMN shorturl.stats.last_flush_at IS 'when the latest flush committed';
COMMENT ON COLUMN shorturl.stats.last_flush_ms IS 'how long the latest flush took, in milliseconds';
COMMENT ON COLUMN shorturl.stats.purged IS 'links deleted by purges since the server started';
COMMENT ON COLUMN shorturl.stats.last_purge_at IS 'when the latest purge batch ran';
COMMENT ON COLUMN shorturl.stats.room_waits IS 'clicks that waited for a flush because the counter table was full';
COMMENT ON COLUMN shorturl.stats.sync_fallbacks IS 'clicks counted synchronously because the counter table stayed full';
COMMENT ON COLUMN shorturl.stats.refused_clicks IS 'clicks of limited links refused because they could only have been counted where a rollback could undo them';
COMMENT ON COLUMN shorturl.stats.dropped_deltas IS 'clicks dropped because their link was deleted before they were flushed';
COMMENT ON COLUMN shorturl.stats.worker_pid IS 'process id of the worker serving this database; NULL when none runs';
COMMENT ON COLUMN shorturl.stats.last_error IS 'message of the latest error of a flush or purge';
COMMENT ON COLUMN shorturl.stats.last_error_at IS 'when that error happened';
COMMENT ON COLUMN shorturl.stats.max_pending_links IS 'the setting shorturl.max_pending_links: links the counter table can hold';

GRANT SELECT ON shorturl.stats TO PUBLIC;

-------------------------------------------------------------------------
-- The shard side: what a coordinator (the extension
-- pg_shorturl_coordinator) calls on each shard through PL/Proxy.  Only
-- the owner may call them; a coordinator connects as the shard's owner.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.store_link(id bigint, code text, url text,
                                    expires_at timestamptz, max_visits bigint,
                                    is_alias boolean, domain text DEFAULT '')
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_store_link'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.store_link(bigint, text, text, timestamptz, bigint, boolean, text) IS
'shard side: stores a link whose id and code a coordinator chose; false if the code is taken';

CREATE FUNCTION shorturl.reusable_code(url text, expires_at timestamptz, max_visits bigint,
                                       alias text, domain text DEFAULT '')
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_reusable_code'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.reusable_code(text, timestamptz, bigint, text, text) IS
'shard side: the code shorten(reuse => true) would hand out again on this shard, or NULL';

CREATE TABLE shorturl.moved_links (
    id bigint PRIMARY KEY,
    code text COLLATE "C" NOT NULL,
    domain text COLLATE "C" NOT NULL,
    visits bigint NOT NULL,
    moved_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.moved_links IS
'links a rebalance moved to another shard, with their final count here, until the coordinator has added it to the new shard''s copy';
COMMENT ON COLUMN shorturl.moved_links.id IS 'the link';
COMMENT ON COLUMN shorturl.moved_links.code IS 'its code';
COMMENT ON COLUMN shorturl.moved_links.domain IS 'its domain';
COMMENT ON COLUMN shorturl.moved_links.visits IS 'its count here when it left, unflushed clicks included';
COMMENT ON COLUMN shorturl.moved_links.moved_at IS 'when it left';

SELECT pg_catalog.pg_extension_config_dump('shorturl.moved_links', '');
REVOKE ALL ON shorturl.moved_links FROM PUBLIC;

CREATE FUNCTION shorturl.move_out(ids bigint[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_move_out'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.move_out(bigint[]) IS
'shard side of a rebalance: deletes links copied to their new shard (their aliases move, so they are not retired), leaving their final counts in shorturl.moved_links';

CREATE TABLE shorturl.arrived_links (
    id bigint PRIMARY KEY,
    arrived_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.arrived_links IS
'links a rebalance moved here whose last clicks on the old shard were added (add_visits adds them once), until the coordinator forgets them';
COMMENT ON COLUMN shorturl.arrived_links.id IS 'the link';
COMMENT ON COLUMN shorturl.arrived_links.arrived_at IS 'when its last clicks were added';

SELECT pg_catalog.pg_extension_config_dump('shorturl.arrived_links', '');
REVOKE ALL ON shorturl.arrived_links FROM PUBLIC;

CREATE FUNCTION shorturl.add_visits(ids bigint[], visits bigint[])
RETURNS void
AS 'MODULE_PATHNAME', 'shorturl_add_visits'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.add_visits(bigint[], bigint[]) IS
'shard side of a rebalance: adds the last clicks moved links got on their old shard to their counts here, once per link';

CREATE FUNCTION shorturl.forget_arrived(ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM shorturl.arrived_links WHERE id = ANY (ids) RETURNING 1)
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION shorturl.forget_arrived(bigint[]) IS
'shard side of a rebalance: forgets that moved links arrived, once the coordinator is done with them';

CREATE FUNCTION shorturl.forget_moved(ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM shorturl.moved_links WHERE id = ANY (ids) RETURNING 1)
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION shorturl.forget_moved(bigint[]) IS
'shard side of a rebalance: forgets moved links once their counts have reached the new shard';

REVOKE ALL ON FUNCTION shorturl.store_link(bigint, text, text, timestamptz, bigint, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.reusable_code(text, timestamptz, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.move_out(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.add_visits(bigint[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.forget_moved(bigint[]) FROM PUBLIC;

-- What a coordinator asks a shard before it trusts it: whether a code is
-- free there, and which database the shard is (two names for one database
-- would lose links in a rebalance).
CREATE FUNCTION shorturl.code_state(code text, domain text DEFAULT '')
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT FROM shorturl.links l WHERE l.code = $1 AND l.domain = $2) THEN 'taken'
        WHEN EXISTS (SELECT FROM shorturl.retired_codes r WHERE r.code = $1 AND r.domain = $2) THEN 'retired'
        ELSE 'free'
    END
$$;

COMMENT ON FUNCTION shorturl.code_state(text, text) IS
'shard side: taken, retired or free, for a code on a domain';

CREATE FUNCTION shorturl.store_identity()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.system_identifier::text || '/' || d.oid::text
      FROM pg_catalog.pg_control_system() s, pg_catalog.pg_database d
     WHERE d.datname = pg_catalog.current_database()
$$;

COMMENT ON FUNCTION shorturl.store_identity() IS
'shard side: this database''s identity (the cluster''s system identifier and the database''s OID), so a coordinator can refuse one database under two shard names';

REVOKE ALL ON FUNCTION shorturl.code_state(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.store_identity() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.forget_arrived(bigint[]) FROM PUBLIC;

-------------------------------------------------------------------------
-- Capacity planning
-------------------------------------------------------------------------

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
    -- codes are at most 10 characters wide (62^10 < 2^63)
    widest_code CONSTANT integer := 10;
    urls double precision;
BEGIN
    -- NaN compares equal to itself and greater than every number in
    -- PostgreSQL, so it is refused by name
    IF 'NaN' IN (urls_per_user_per_day, read_write_ratio, retention_years,
                 peak_factor, max_guess_rate)
       OR 'Infinity' IN (urls_per_user_per_day, read_write_ratio, retention_years, peak_factor)
       OR daily_active_users < 0 OR urls_per_user_per_day < 0 OR read_write_ratio < 0
       OR avg_url_bytes < 0 OR retention_years < 0 OR peak_factor < 1
       OR NOT (max_guess_rate > 0 AND max_guess_rate <= 1) THEN
        RAISE EXCEPTION 'invalid capacity estimate input'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Counts, ratios, sizes and years must be finite and not negative, peak_factor must be at least 1, and max_guess_rate must be in (0, 1].';
    END IF;

    write_qps := daily_active_users * urls_per_user_per_day / seconds_per_day;
    read_qps := write_qps * read_write_ratio;
    peak_write_qps := write_qps * peak_factor;
    peak_read_qps := read_qps * peak_factor;
    urls := daily_active_users * urls_per_user_per_day * days_per_year * retention_years;
    IF urls >= 9.2e18 THEN
        RAISE EXCEPTION 'capacity estimate out of range: % URLs', urls
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    total_urls := round(urls)::bigint;
    storage_bytes := total_urls::numeric * avg_url_bytes;
    write_bytes_per_s := write_qps * avg_url_bytes;
    read_bytes_per_s := read_qps * avg_url_bytes;
    -- the narrowest width L whose space makes a random guess hit a link
    -- with probability total_urls / 62^L of at most max_guess_rate, in
    -- numeric, which neither rounds nor overflows
    min_code_length := 1;
    WHILE total_urls::numeric / 62::numeric ^ min_code_length > max_guess_rate::numeric LOOP
        min_code_length := min_code_length + 1;
        IF min_code_length > widest_code THEN
            RAISE EXCEPTION 'no code width up to % characters keeps the guess rate at or below %',
                            widest_code, max_guess_rate
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Raise max_guess_rate, or plan for fewer links.';
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.estimate(bigint, double precision, double precision, integer, double precision, double precision, double precision) IS
'back-of-envelope capacity estimate for a shortener: QPS, peaks, URL count, storage, bandwidth, and the shortest code length that keeps a random guess below max_guess_rate';

COMMENT ON SCHEMA shorturl IS
'pg_shorturl: short codes, shard routing, the links store and its click counts';
COMMENT ON INDEX shorturl.shards_pkey IS 'one row per shard name';
COMMENT ON INDEX shorturl.code_key_pkey IS 'keeps shorturl.code_key to one row';
COMMENT ON INDEX shorturl.links_pkey IS 'finds a link by id: flushes, counts and moves go through it';
COMMENT ON INDEX shorturl.visit_counts_pkey IS 'finds a link''s stored count';
COMMENT ON INDEX shorturl.retired_codes_pkey IS 'finds whether a code was ever handed out';
COMMENT ON INDEX shorturl.reserved_aliases_pkey IS 'one row per reserved word';
COMMENT ON INDEX shorturl.moved_links_pkey IS 'one row per link moved away';
COMMENT ON INDEX shorturl.arrived_links_pkey IS 'one row per link that arrived';
