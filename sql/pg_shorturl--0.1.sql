/* pg_shorturl--0.1.sql: the base62 codec */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_shorturl" to load this file. \quit

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
