/* pg_shorturl--0.1--0.2.sql: shard routing */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.2'" to load this file. \quit

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
