-- scripts/demo.sql: the walk-through scripts/demo.sh runs on the demo server.
\pset footer off
\echo
\echo '--- base62: ids to short codes and back (alphabet 0-9A-Za-z) ---'
SELECT n AS id, shorturl.base62_encode(n) AS code, shorturl.base62_encode(n, 7) AS code_width_7,
       shorturl.base62_decode(shorturl.base62_encode(n, 7)) AS decoded
FROM (VALUES (0::bigint), (61), (62), (3844), (1000000007), (9223372036854775807)) AS t(n);

\echo '--- a bad code is refused with the character and its position ---'
\set ON_ERROR_STOP 0
SELECT shorturl.base62_decode('abc-12');
\set ON_ERROR_STOP 1
