--
-- base62: the codec's SQL surface.  Boundaries and bad inputs first, then
-- the happy path.  After each error the SQLSTATE is echoed, so the test
-- pins the error class as well as the message.
--
CREATE EXTENSION pg_shorturl;

-- Function properties: IMMUTABLE, STRICT, PARALLEL SAFE, commented.
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict,
       p.proparallel, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace AND p.proname LIKE 'base62%'
ORDER BY 1;

-- encode: a negative value is out of range (22003).
SELECT shorturl.base62_encode(-1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.base62_encode(-9223372036854775808);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- encode: min_width outside 0..64 is an invalid parameter (22023).
SELECT shorturl.base62_encode(1, -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.base62_encode(1, 65);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- encode: min_width 64 is the widest accepted, padded with '0'.
SELECT shorturl.base62_encode(1, 64) = repeat('0', 63) || '1' AS widest_padding;

-- decode: the empty string is invalid text (22P02).
SELECT shorturl.base62_decode('');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- decode: each character outside the alphabet is named with its position (22P02).
SELECT shorturl.base62_decode('abc!');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.base62_decode(' 1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.base62_decode('-1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.base62_decode('+1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.base62_decode(E'ab\tc');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a non-ASCII character is named whole, not as a lone byte
SELECT shorturl.base62_decode('ab€c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- decode: 2^63 ("AzL8n0Y58m8", one past the largest bigint) is out of range (22003).
SELECT shorturl.base62_decode('AzL8n0Y58m8');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- decode: every 12-digit code without a leading zero is out of range (22003).
SELECT shorturl.base62_decode('100000000000');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- decode: a bad character is reported even after the digits already overflow.
SELECT shorturl.base62_decode('zzzzzzzzzzzzzz!');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- NULL in, NULL out (STRICT), for every argument.
SELECT shorturl.base62_encode(NULL) IS NULL AS encode_null,
       shorturl.base62_encode(1, NULL) IS NULL AS encode_null_width,
       shorturl.base62_decode(NULL) IS NULL AS decode_null;

-- The boundaries of one, two and three digits, and the largest bigint.
SELECT v, shorturl.base62_encode(v) AS code,
       shorturl.base62_decode(shorturl.base62_encode(v)) = v AS round_trip
FROM (VALUES (0::bigint), (61), (62), (3843), (3844),
             (9223372036854775807)) AS t(v);

-- 11 characters: the largest code is 2^63-1; 12 characters decode only with a leading zero.
SELECT shorturl.base62_decode('AzL8n0Y58m7') = 9223372036854775807 AS eleven_chars,
       shorturl.base62_decode('0AzL8n0Y58m7') = 9223372036854775807 AS twelve_chars,
       shorturl.base62_decode('zzzzzzzzzz') = 839299365868340223 AS ten_z_is_62_pow_10_minus_1;

-- Leading zeros are accepted and do not change the value.
SELECT shorturl.base62_decode('000000000000000000000000000000000000000000000000000000000000000000001z') AS many_zeros;

-- Codes are case-sensitive: 'a' and 'A' differ.
SELECT shorturl.base62_decode('a') AS lower_a, shorturl.base62_decode('A') AS upper_a;

-- Padding to a width keeps the value and gives the width.
SELECT shorturl.base62_encode(62, 7) AS padded, length(shorturl.base62_encode(62, 7)) AS width,
       shorturl.base62_encode(3844, 2) AS wider_than_min_width;

-- Equal-width codes sort like their numbers under COLLATE "C" (10,000 random values).
WITH v AS (
  SELECT (random() * 9223372036854775807)::bigint AS n FROM generate_series(1, 10000)
)
SELECT count(*) AS disordered FROM (
  SELECT n, lag(n) OVER (ORDER BY shorturl.base62_encode(n, 11) COLLATE "C") AS prev FROM v
) s WHERE prev > n;

-- decode(encode(n)) = n across magnitudes (every power-of-two boundary).
SELECT count(*) FILTER (WHERE shorturl.base62_decode(shorturl.base62_encode(n)) <> n) AS mismatches,
       count(*) AS checked
FROM (SELECT (2::numeric ^ e - d)::bigint AS n
      FROM generate_series(0, 62) e, generate_series(0, 1) d
      UNION ALL SELECT 9223372036854775807) s;

DROP EXTENSION pg_shorturl;
