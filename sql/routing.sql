--
-- routing: hash64, shard_mod, jump_hash and route, and the shard map in
-- shorturl.shards.  Boundaries and bad inputs first, then the happy path:
-- published XXH64 vectors and values from an independent implementation,
-- distribution, movement, and the per-session cache of the map.  After each
-- error the SQLSTATE is echoed.  Every key is generated, never random(), so
-- the output is the same on every run.  Non-ASCII text assumes a UTF8
-- database (scripts/test.sh creates one).
--
CREATE EXTENSION pg_shorturl;

-- Function properties: the hashes and the pure route are IMMUTABLE, route(key)
-- is STABLE (it reads the table), all are STRICT and PARALLEL SAFE and
-- commented; the trigger function is none of these.
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict,
       p.proparallel, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('hash64', 'shard_mod', 'jump_hash', 'route', 'shards_changed')
ORDER BY p.proname, p.oid::regprocedure::text;

-- The shard map table: columns, the C collation of name, and comments.
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       c.collname, col_description(a.attrelid, a.attnum) IS NOT NULL AS commented
FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
WHERE a.attrelid = 'shorturl.shards'::regclass AND a.attnum > 0
ORDER BY a.attnum;

-- shard_mod: a shard count of zero or less is an invalid parameter (22023), for every key type.
SELECT shorturl.shard_mod('a'::text, 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shard_mod('\x61'::bytea, -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shard_mod(1::bigint, -2147483648);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- jump_hash: a bucket count of zero or less is an invalid parameter (22023), for every key type.
SELECT shorturl.jump_hash('a'::text, 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.jump_hash('\x61'::bytea, -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.jump_hash(1::bigint, -2147483648);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key) over an empty shard map is object_not_in_prerequisite_state (55000), for every key type.
SELECT shorturl.route('a'::text);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('\x61'::bytea);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route(1::bigint);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): an empty map is an invalid parameter (22023).
SELECT shorturl.route('a'::text, '{}', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): arrays of different lengths are an invalid parameter (22023).
SELECT shorturl.route('\x61'::bytea, '{a,b}', '{1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route(1::bigint, '{a}', '{1,2}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): a NULL name or weight is null_value_not_allowed (22004).
SELECT shorturl.route('a'::text, ARRAY['a', NULL], '{1,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route(1::bigint, '{a,b}', ARRAY[1, NULL]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): a weight that is zero, negative, NaN or infinite is an invalid parameter (22023).
SELECT shorturl.route('a'::text, '{a,b}', '{1,0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{-1,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{1,-0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{1,NaN}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{Infinity,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{1,-Infinity}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): a finite weight outside [1e-9, 1e9] is an invalid parameter
-- (22023): the smallest and largest doubles, 1e-10 and 2e9, and the doubles just outside
-- each bound (9.999999999999999e-10 and 1000000000.0000001; %g rounds them in the message).
SELECT shorturl.route('a'::text, '{a,b}', '{1,5e-324}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{1.7976931348623157e308,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('\x61'::bytea, '{a,b}', '{1e-10,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route(1::bigint, '{a,b}', '{1,2e9}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{9.999999999999999e-10,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{1,1000000000.0000001}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): a name given twice is an invalid parameter (22023), even with other weights.
SELECT shorturl.route('a'::text, '{a,b,a}', '{1,2,3}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): names are case-sensitive, so 'a' and 'A' are two shards.
SELECT shorturl.route('a'::text, '{a,A}', '{1,1}') IS NOT NULL AS case_sensitive_names;

-- route(key, names, weights): an empty name is an invalid parameter (22023).
SELECT shorturl.route('a'::text, '{a,""}', '{1,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- route(key, names, weights): multi-dimensional arrays are an invalid parameter (22023).
SELECT shorturl.route('a'::text, '{{a},{b}}', '{1,1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.route('a'::text, '{a,b}', '{{1},{1}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- shorturl.shards refuses what route could not use: an empty name, a duplicate
-- (23505), a weight that is zero, negative, NaN, infinite or outside [1e-9, 1e9]
-- (23514; the smallest and largest doubles and the doubles just outside each
-- bound), no weight (23502).  Terse errors: the failing row's created_at would
-- differ from run to run.
\set VERBOSITY terse
INSERT INTO shorturl.shards (name, weight) VALUES ('', 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', 1), ('a', 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', 'Infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', '5e-324');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', '1.7976931348623157e308');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', '9.999999999999999e-10');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('a', '1000000000.0000001');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name) VALUES ('a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- shorturl.shards accepts weights of exactly 1e-9 and 1e9, and route(key) over
-- them agrees with the pure form (1,000 keys).
INSERT INTO shorturl.shards (name, weight) VALUES ('lo', '1e-9'), ('hi', '1e9');
SELECT name, weight FROM shorturl.shards ORDER BY name;
SELECT count(*) FILTER (WHERE shorturl.route(k) <> shorturl.route(k, '{lo,hi}', '{1e-9,1e9}')) AS mismatches
FROM generate_series(1::bigint, 1000) k;
DELETE FROM shorturl.shards;

-- NULL in, NULL out (STRICT), for every argument of every function, even
-- where the other arguments are invalid (route(NULL) over an empty map).
SELECT shorturl.hash64(NULL::text) IS NULL AS hash64_text,
       shorturl.hash64(NULL::bytea) IS NULL AS hash64_bytea,
       shorturl.hash64(NULL::bigint) IS NULL AS hash64_bigint,
       shorturl.shard_mod(NULL::text, 3) IS NULL AS shard_mod_key,
       shorturl.shard_mod(1::bigint, NULL) IS NULL AS shard_mod_count,
       shorturl.jump_hash(NULL::bytea, 3) IS NULL AS jump_hash_key,
       shorturl.jump_hash('a'::text, NULL) IS NULL AS jump_hash_count,
       shorturl.route(NULL::text) IS NULL AS route_key,
       shorturl.route(NULL::bigint, '{a}', '{1}') IS NULL AS route_map_key,
       shorturl.route('a'::text, NULL, '{1}') IS NULL AS route_map_names,
       shorturl.route('\x61'::bytea, '{a}', NULL) IS NULL AS route_map_weights;

-- hash64: published XXH64 vectors (seed 0).  Empty input is 0xEF46DB3751D8E999
-- (xxHash's specification), -1205034819632174695 as a signed bigint, for text
-- and bytea alike; "Nobody inspects the spammish repetition" is
-- 0xfbcea83c8a378bf1 (python-xxhash's README); "a" and "abc" are
-- 0xd24ec4f1a98c6e5b and 0x44bc2cf5ad770999 (widely quoted test vectors).
SELECT shorturl.hash64(''::text) = -1205034819632174695 AS empty_text,
       shorturl.hash64(''::bytea) = -1205034819632174695 AS empty_bytea,
       to_hex(shorturl.hash64(''::text)) AS empty_hex,
       shorturl.hash64('a'::text) = x'd24ec4f1a98c6e5b'::bigint AS a,
       shorturl.hash64('abc'::text) = x'44bc2cf5ad770999'::bigint AS abc,
       shorturl.hash64('Nobody inspects the spammish repetition'::text)
         = x'fbcea83c8a378bf1'::bigint AS spammish;

-- hash64: text keys, ASCII and UTF-8, against values computed by an independent
-- implementation (python3-xxhash 3.2.0, xxhash.xxh64_intdigest, seed 0, as
-- signed; also checked against a from-the-specification Python XXH64).
SELECT k, shorturl.hash64(k) = want AS matches_python_xxhash
FROM (VALUES ('https://example.com/a?b=c', 7221325786184677828),
             ('héllo wörld €', 1831578311587795239),
             ('日本語', 8176744303664166369),
             ('🙂', 585552020754485715)) AS t(k, want);

-- hash64: bytea keys, NUL bytes included, against python3-xxhash (as above).
SELECT k, shorturl.hash64(k) = want AS matches_python_xxhash
FROM (VALUES ('\x00'::bytea, -1642502924627794072),
             ('\x00000000', 4246796580750024372),
             ('\xdeadbeef', 3455896672613871464)) AS t(k, want);

-- hash64: bigint keys, extremes and negatives, against python3-xxhash over
-- struct.pack('<q', v) (the 8-byte little-endian two's complement).
SELECT k, shorturl.hash64(k) = want AS matches_python_xxhash
FROM (VALUES (0::bigint, 3803688792395291579),
             (1, -6977822845260490347),
             (-1, -8804195676797548855),
             (42, -5379971487550586029),
             (9223372036854775807, -40307683044198644),
             (-9223372036854775808, 4558309869707674848)) AS t(k, want);

-- hash64: a bigint hashes as its 8 little-endian bytes, whatever the host's byte order.
SELECT shorturl.hash64(1::bigint) = shorturl.hash64('\x0100000000000000'::bytea) AS one,
       shorturl.hash64(-1::bigint) = shorturl.hash64('\xffffffffffffffff'::bytea) AS minus_one,
       shorturl.hash64(x'0102030405060708'::bigint) = shorturl.hash64('\x0807060504030201'::bytea) AS byte_order,
       shorturl.hash64((-9223372036854775808)::bigint) = shorturl.hash64('\x0000000000000080'::bytea) AS min,
       shorturl.hash64(9223372036854775807::bigint) = shorturl.hash64('\xffffffffffffff7f'::bytea) AS max;

-- hash64: a bigint is not hashed as its decimal text.
SELECT shorturl.hash64(42::bigint) <> shorturl.hash64('42'::text) AS bigint_is_not_text;

-- hash64: text hashes as its bytes in the database encoding: equal to the bytea
-- of the same bytes (10,000 keys, ASCII and not), and not to any other.
SELECT count(*) FILTER (WHERE shorturl.hash64(k) <> shorturl.hash64(convert_to(k, 'UTF8'))) AS mismatches,
       count(DISTINCT shorturl.hash64(k)) AS distinct_hashes,
       count(*) AS checked
FROM (SELECT 'clé-' || i || '-€' AS k FROM generate_series(1, 5000) i
      UNION ALL SELECT md5(i::text) FROM generate_series(1, 5000) i) s;

-- hash64: long keys hash by their content however they are stored: 120,000
-- characters ('pg_shorturl ' 10,000 times) compressed in line, and 128,000 (the
-- md5 hex digests of 1..4000 joined) out of line in the TOAST table, against
-- python3-xxhash over the same strings.
CREATE TABLE routing_long (k text);
INSERT INTO routing_long VALUES (repeat('pg_shorturl ', 10000));
INSERT INTO routing_long SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 4000) i;
SELECT length(k), pg_column_size(k) < octet_length(k) AS compressed,
       shorturl.hash64(k) = CASE length(k) WHEN 120000 THEN -5318446668210782799
                                           WHEN 128000 THEN -8915925668779826419 END AS matches_python_xxhash,
       shorturl.hash64(k) = shorturl.hash64(convert_to(k, 'UTF8')) AS same_as_bytea
FROM routing_long ORDER BY 1;
SELECT pg_relation_size(reltoastrelid) > 0 AS toast_table_used
FROM pg_class WHERE oid = 'routing_long'::regclass;
DROP TABLE routing_long;

-- shard_mod and jump_hash: one bucket always gives 0; the largest count gives a
-- bucket below it; values against the Python reference (test/route_reference.py
-- over python3-xxhash) for counts 1, 2, 7, 1000 and 2147483647.
SELECT k, shorturl.shard_mod(k, 1) = 0 AND shorturl.shard_mod(k, 2) = 0
       AND shorturl.shard_mod(k, 7) = 3 AND shorturl.shard_mod(k, 1000) = 828
       AND shorturl.shard_mod(k, 2147483647) = 492213467 AS shard_mod_ok,
       shorturl.jump_hash(k, 1) = 0 AND shorturl.jump_hash(k, 2) = 1
       AND shorturl.jump_hash(k, 7) = 3 AND shorturl.jump_hash(k, 1000) = 149
       AND shorturl.jump_hash(k, 2147483647) = 650010588 AS jump_hash_ok
FROM (VALUES ('https://example.com/a?b=c'::text)) AS t(k);
SELECT k, shorturl.shard_mod(k, 1) = 0 AND shorturl.shard_mod(k, 2) = 0
       AND shorturl.shard_mod(k, 7) = 6 AND shorturl.shard_mod(k, 1000) = 464
       AND shorturl.shard_mod(k, 2147483647) = 260460246 AS shard_mod_ok,
       shorturl.jump_hash(k, 1) = 0 AND shorturl.jump_hash(k, 2) = 0
       AND shorturl.jump_hash(k, 7) = 0 AND shorturl.jump_hash(k, 1000) = 191
       AND shorturl.jump_hash(k, 2147483647) = 691490399 AS jump_hash_ok
FROM (VALUES ('\xdeadbeef'::bytea)) AS t(k);
SELECT k, shorturl.shard_mod(k, 1) = 0 AND shorturl.shard_mod(k, 2) = 1
       AND shorturl.shard_mod(k, 7) = 4 AND shorturl.shard_mod(k, 1000) = 587
       AND shorturl.shard_mod(k, 2147483647) = 561923125 AS shard_mod_ok,
       shorturl.jump_hash(k, 1) = 0 AND shorturl.jump_hash(k, 2) = 1
       AND shorturl.jump_hash(k, 7) = 4 AND shorturl.jump_hash(k, 1000) = 190
       AND shorturl.jump_hash(k, 2147483647) = 772152337 AS jump_hash_ok
FROM (VALUES (42::bigint)) AS t(k);
SELECT k, shorturl.shard_mod(k, 1) = 0 AND shorturl.shard_mod(k, 2) = 0
       AND shorturl.shard_mod(k, 7) = 5 AND shorturl.shard_mod(k, 1000) = 848
       AND shorturl.shard_mod(k, 2147483647) = 1855586874 AS shard_mod_ok,
       shorturl.jump_hash(k, 1) = 0 AND shorturl.jump_hash(k, 2) = 0
       AND shorturl.jump_hash(k, 7) = 6 AND shorturl.jump_hash(k, 1000) = 792
       AND shorturl.jump_hash(k, 2147483647) = 1028424675 AS jump_hash_ok
FROM (VALUES ((-9223372036854775808)::bigint)) AS t(k);

-- shard_mod is the unsigned hash modulo the count (checked in numeric over 10,000 keys).
SELECT count(*) FILTER (WHERE shorturl.shard_mod(k, n) <>
         ((shorturl.hash64(k)::numeric + 18446744073709551616) % 18446744073709551616) % n) AS mismatches
FROM generate_series(1, 10000) k, (VALUES (3), (1000), (2147483647)) AS c(n);

-- shard_mod and jump_hash stay in [0, count) for every count from 1 to 64 (64,000 keys each).
SELECT bool_and(shorturl.shard_mod(k, n) BETWEEN 0 AND n - 1) AS shard_mod_in_range,
       bool_and(shorturl.jump_hash(k, n) BETWEEN 0 AND n - 1) AS jump_hash_in_range
FROM generate_series(1, 1000) k, generate_series(1, 64) n;

-- route(key, names, weights) against the Python reference (test/route_reference.py):
-- alpha, bravo, charlie, delta weighted 1, 2, 3, 4; bigint keys and text keys.
SELECT k, shorturl.route(k, '{alpha,bravo,charlie,delta}', '{1,2,3,4}') AS shard,
       shorturl.route(k, '{alpha,bravo,charlie,delta}', '{1,2,3,4}') = want AS matches_python
FROM (VALUES (1::bigint, 'delta'), (2, 'delta'), (3, 'delta'), (4, 'delta'),
             (5, 'delta'), (6, 'delta'), (7, 'charlie'), (8, 'delta')) AS t(k, want);
SELECT k, shorturl.route(k, '{alpha,bravo,charlie,delta}', '{1,2,3,4}') AS shard,
       shorturl.route(k, '{alpha,bravo,charlie,delta}', '{1,2,3,4}') = want AS matches_python
FROM (VALUES ('k1'::text, 'bravo'), ('k2', 'charlie'), ('k3', 'bravo'), ('k4', 'delta'),
             ('k5', 'delta'), ('k6', 'charlie'), ('k7', 'alpha'), ('k8', 'charlie')) AS t(k, want);

-- route(key, names, weights) with non-ASCII shard names (hashed as UTF-8) and
-- fractional weights, against the Python reference; bytea keys.
SELECT k, shorturl.route(k, '{zürich,東京,alpha}', '{1.5,1.5,0.25}') AS shard,
       shorturl.route(k, '{zürich,東京,alpha}', '{1.5,1.5,0.25}') = want AS matches_python
FROM (VALUES ('\x01'::bytea, 'zürich'), ('\x02', '東京'), ('\x03', 'zürich'), ('\x04', '東京'),
             ('\x05', 'zürich'), ('\x06', 'zürich'), ('\x07', '東京'), ('\x08', 'zürich')) AS t(k, want);

-- route(key, names, weights) with weights at and just inside the bounds (1e9,
-- 999999999.9999999, 1e-9), against the Python reference; bigint keys.
SELECT k, shorturl.route(k, '{x,y,z}', '{1e9,999999999.9999999,1e-9}') AS shard,
       shorturl.route(k, '{x,y,z}', '{1e9,999999999.9999999,1e-9}') = want AS matches_python
FROM (VALUES (1::bigint, 'y'), (2, 'x'), (3, 'x'), (4, 'x'), (5, 'y'), (6, 'y'),
             (7, 'x'), (8, 'y'), (9, 'y'), (10, 'y'), (11, 'y'), (12, 'x')) AS t(k, want);

-- route(key, names, weights): weights 1e-9 and 1e9 (a share of 1e-18 for lo): lo
-- gets none of 100,000 keys, as in the Python reference.
SELECT count(*) FILTER (WHERE shorturl.route(k, '{lo,hi}', '{1e-9,1e9}') = 'lo') AS to_lo,
       count(*) FILTER (WHERE shorturl.route(k, '{lo,hi}', '{1e-9,1e9}') = 'hi') AS to_hi
FROM generate_series(1::bigint, 100000) k;

-- route(key, names, weights): equal scores go to the larger node hash (h >> 11),
-- then to the name that sorts first.  For bigint keys 2 to 7 the weight of b is
-- the double (found with test/route_reference.py) at which b's score equals a's
-- (weight 1) exactly: one double below it a wins, one above it b wins, and at
-- the tie the node with the larger hash wins, a for keys 3, 5 and 7 and b (whose
-- name sorts last) for keys 2, 4 and 6.
SELECT k, shorturl.route(k, '{a,b}', ARRAY[1, below]) AS below_tie,
       shorturl.route(k, '{a,b}', ARRAY[1, tie]) AS at_tie,
       shorturl.route(k, '{a,b}', ARRAY[1, above]) AS above_tie
FROM (VALUES (2::bigint, '0.7369746608927705'::float8, '0.7369746608927706'::float8, '0.7369746608927707'::float8),
             (3, '5.478092300320643', '5.478092300320644', '5.478092300320645'),
             (4, '0.7532678389503464', '0.7532678389503465', '0.7532678389503467'),
             (5, '4.025233543990887', '4.025233543990888', '4.025233543990889'),
             (6, '0.08247311212739439', '0.0824731121273944', '0.08247311212739442'),
             (7, '3.288908135935795', '3.2889081359357952', '3.2889081359357957')) AS t(k, below, tie, above)
ORDER BY k;

-- route(key, names, weights): one shard takes every key.
SELECT count(*) FILTER (WHERE shorturl.route(k, '{only}', '{0.001}') <> 'only') AS elsewhere
FROM generate_series(1, 1000) k;

-- route(key, names, weights) does not depend on the order of the map's entries
-- (10,000 keys, the map given in two orders).
SELECT count(*) FILTER (WHERE shorturl.route(k, '{alpha,bravo,charlie,delta}', '{1,2,3,4}')
                           <> shorturl.route(k, '{delta,bravo,alpha,charlie}', '{4,2,1,3}')) AS mismatches
FROM generate_series(1, 10000) k;

-- route(key, names, weights) with a map that changes from row to row answers for each
-- row's own map (the prepared map cached between calls is rebuilt when the arrays change).
SELECT count(*) FILTER (WHERE shorturl.route(k, n, w) <>
         CASE WHEN k % 2 = 0 THEN shorturl.route(k, '{alpha,bravo}', '{1,3}')
              ELSE shorturl.route(k, '{alpha,bravo,charlie}', '{1,3,2}') END) AS mismatches,
       count(DISTINCT shorturl.route(k, n, w)) AS shards_seen
FROM (SELECT k,
             CASE WHEN k % 2 = 0 THEN '{alpha,bravo}'::text[] ELSE '{alpha,bravo,charlie}' END AS n,
             CASE WHEN k % 2 = 0 THEN '{1,3}'::float8[] ELSE '{1,3,2}' END AS w
      FROM generate_series(1, 10000) k) s;

-- Distribution: shard_mod over 210,000 text keys into 7 shards.  Each share is
-- within 1 percentage point of 1/7, and the chi-square statistic is below the
-- 0.1% critical value for 6 degrees of freedom (22.458).
WITH c AS (
  SELECT shorturl.shard_mod('key-' || i, 7) AS b, count(*) AS n
  FROM generate_series(1, 210000) i GROUP BY 1
)
SELECT count(*) AS buckets,
       max(abs(n / 210000.0 - 1 / 7.0)) < 0.01 AS max_deviation_under_1pp,
       sum((n - 30000.0) ^ 2 / 30000.0) < 22.458 AS chi_square_ok
FROM c;

-- Distribution: shard_mod over 200,000 bigint keys into 10 shards (chi-square
-- 0.1% critical value for 9 degrees of freedom: 27.877).
WITH c AS (
  SELECT shorturl.shard_mod(i, 10) AS b, count(*) AS n
  FROM generate_series(1::bigint, 200000) i GROUP BY 1
)
SELECT count(*) AS buckets,
       max(abs(n / 200000.0 - 0.1)) < 0.01 AS max_deviation_under_1pp,
       sum((n - 20000.0) ^ 2 / 20000.0) < 27.877 AS chi_square_ok
FROM c;

-- Distribution: jump_hash over 200,000 bigint keys into 10 buckets (27.877 as above).
WITH c AS (
  SELECT shorturl.jump_hash(i, 10) AS b, count(*) AS n
  FROM generate_series(1::bigint, 200000) i GROUP BY 1
)
SELECT count(*) AS buckets, min(b) AS first, max(b) AS last,
       max(abs(n / 200000.0 - 0.1)) < 0.01 AS max_deviation_under_1pp,
       sum((n - 20000.0) ^ 2 / 20000.0) < 27.877 AS chi_square_ok
FROM c;

-- Distribution: jump_hash over 150,000 bytea keys into 5 buckets (chi-square
-- 0.1% critical value for 4 degrees of freedom: 18.467).
WITH c AS (
  SELECT shorturl.jump_hash(int8send(i), 5) AS b, count(*) AS n
  FROM generate_series(1::bigint, 150000) i GROUP BY 1
)
SELECT count(*) AS buckets,
       max(abs(n / 150000.0 - 0.2)) < 0.01 AS max_deviation_under_1pp,
       sum((n - 30000.0) ^ 2 / 30000.0) < 18.467 AS chi_square_ok
FROM c;

-- Movement: growing jump_hash from 10 to 11 buckets moves keys only into the new
-- bucket 10, and about 1/11 of them (100,000 keys; within half a point of 9.09%).
SELECT count(*) FILTER (WHERE a <> b AND b <> 10) AS moved_elsewhere,
       abs(count(*) FILTER (WHERE a <> b) / 100000.0 - 1 / 11.0) < 0.005 AS moved_about_one_eleventh
FROM (SELECT shorturl.jump_hash(k, 10) AS a, shorturl.jump_hash(k, 11) AS b
      FROM generate_series(1::bigint, 100000) k) s;

-- Movement: from every count n to n + 1 (1..32), a key that moves goes to bucket n,
-- and text keys move like bigint keys.
SELECT count(*) FILTER (WHERE shorturl.jump_hash(k, n + 1) NOT IN (shorturl.jump_hash(k, n), n)) AS moved_elsewhere,
       count(*) FILTER (WHERE shorturl.jump_hash('u' || k, n + 1) NOT IN (shorturl.jump_hash('u' || k, n), n)) AS text_moved_elsewhere
FROM generate_series(1, 10000) k, generate_series(1, 32) n;

-- Movement: shard_mod is not consistent: going from 10 to 11 shards moves most keys (about 10/11).
SELECT count(*) FILTER (WHERE shorturl.shard_mod(k, 10) <> shorturl.shard_mod(k, 11)) / 100000.0 > 0.85 AS most_keys_move
FROM generate_series(1::bigint, 100000) k;

-- Distribution: route(key) over the table, 300,000 bigint keys, weights 1, 2, 3, 4.
-- Each share is within 1 percentage point of weight / sum(weights), and the
-- chi-square statistic is below the 0.1% critical value for 3 degrees of freedom (16.266).
INSERT INTO shorturl.shards (name, weight) VALUES ('alpha', 1), ('bravo', 2), ('charlie', 3), ('delta', 4);
WITH c AS (
  SELECT shorturl.route(k) AS shard, count(*) AS n
  FROM generate_series(1::bigint, 300000) k GROUP BY 1
), e AS (
  SELECT c.shard, c.n, 300000 * s.weight / sum(s.weight) OVER () AS expected
  FROM c JOIN shorturl.shards s ON s.name = c.shard
)
SELECT count(*) AS shards,
       max(abs(n - expected)) / 300000 < 0.01 AS max_deviation_under_1pp,
       sum((n - expected) ^ 2 / expected) < 16.266 AS chi_square_ok
FROM e;

-- Distribution: route(key, names, weights), 300,000 text keys, five equal weights
-- and one of 2.5 (shares 13.3% and 33.3%; 0.1% critical value for 5 degrees of
-- freedom: 20.515).
WITH m(name, weight) AS (
  VALUES ('s1', 1.0::float8), ('s2', 1), ('s3', 1), ('s4', 1), ('s5', 1), ('s6', 2.5)
), c AS (
  SELECT shorturl.route('https://example.com/' || k, '{s1,s2,s3,s4,s5,s6}', '{1,1,1,1,1,2.5}') AS shard,
         count(*) AS n
  FROM generate_series(1, 300000) k GROUP BY 1
), e AS (
  SELECT c.shard, c.n, 300000 * m.weight / sum(m.weight) OVER () AS expected
  FROM c JOIN m ON m.name = c.shard
)
SELECT count(*) AS shards,
       max(abs(n - expected)) / 300000 < 0.01 AS max_deviation_under_1pp,
       sum((n - expected) ^ 2 / expected) < 20.515 AS chi_square_ok
FROM e;

-- route(key) equals route(key, names, weights) over the table's current map
-- (100,000 keys of each type).
WITH m AS (
  SELECT array_agg(name ORDER BY name) AS names, array_agg(weight ORDER BY name) AS weights
  FROM shorturl.shards
)
SELECT count(*) FILTER (WHERE shorturl.route(k) <> shorturl.route(k, m.names, m.weights)) AS bigint_mismatches,
       count(*) FILTER (WHERE shorturl.route(k::text) <> shorturl.route(k::text, m.names, m.weights)) AS text_mismatches,
       count(*) FILTER (WHERE shorturl.route(int4send(k::int)) <> shorturl.route(int4send(k::int), m.names, m.weights)) AS bytea_mismatches
FROM m, generate_series(1::bigint, 100000) k;

-- Movement: adding a shard (delta, weight 2, to alpha 1, bravo 2, charlie 3) moves
-- keys only to it, about its new share 2/8 of them (100,000 keys).
SELECT count(*) FILTER (WHERE a <> b AND b <> 'delta') AS moved_elsewhere,
       abs(count(*) FILTER (WHERE a <> b) / 100000.0 - 2 / 8.0) < 0.01 AS moved_about_its_share
FROM (SELECT shorturl.route(k, '{alpha,bravo,charlie}', '{1,2,3}') AS a,
             shorturl.route(k, '{alpha,bravo,charlie,delta}', '{1,2,3,2}') AS b
      FROM generate_series(1::bigint, 100000) k) s;

-- Movement: removing a shard (bravo, from alpha 1, bravo 2, charlie 3) moves only
-- its own keys, and they spread over the others by weight (1/4 to alpha, 3/4 to charlie).
SELECT count(*) FILTER (WHERE a <> b AND a <> 'bravo') AS others_moved,
       count(*) FILTER (WHERE a = 'bravo' AND b = 'bravo') AS still_on_removed,
       abs(count(*) FILTER (WHERE a = 'bravo' AND b = 'alpha')::numeric
           / count(*) FILTER (WHERE a = 'bravo') - 0.25) < 0.01 AS spread_by_weight
FROM (SELECT shorturl.route(k, '{alpha,bravo,charlie}', '{1,2,3}') AS a,
             shorturl.route(k, '{alpha,charlie}', '{1,3}') AS b
      FROM generate_series(1::bigint, 100000) k) s;

-- Movement: raising a weight (charlie 3 -> 6) moves keys only to that shard
-- (share 1/2 -> 2/3: about 1/6 of keys move); lowering it (3 -> 1) moves keys
-- only away from it (share 1/2 -> 1/4: about 1/4 move).
SELECT count(*) FILTER (WHERE a <> up AND up <> 'charlie') AS raise_moved_elsewhere,
       abs(count(*) FILTER (WHERE a <> up) / 100000.0 - 1 / 6.0) < 0.01 AS raise_moved_about_a_sixth,
       count(*) FILTER (WHERE a <> down AND a <> 'charlie') AS lower_moved_others,
       abs(count(*) FILTER (WHERE a <> down) / 100000.0 - 0.25) < 0.01 AS lower_moved_about_a_quarter
FROM (SELECT shorturl.route(k, '{alpha,bravo,charlie}', '{1,2,3}') AS a,
             shorturl.route(k, '{alpha,bravo,charlie}', '{1,2,6}') AS up,
             shorturl.route(k, '{alpha,bravo,charlie}', '{1,2,1}') AS down
      FROM generate_series(1::bigint, 100000) k) s;

-- Movement through the table: adding, reweighting and removing rows of
-- shorturl.shards moves keys exactly as the pure form predicts, and route(key)
-- sees each change at the next statement of this session.
CREATE TABLE routing_before AS
  SELECT k, shorturl.route(k) AS shard FROM generate_series(1::bigint, 50000) k;
INSERT INTO shorturl.shards (name, weight) VALUES ('echo', 5);
SELECT count(*) FILTER (WHERE shorturl.route(k) <> shard AND shorturl.route(k) <> 'echo') AS moved_elsewhere,
       count(*) FILTER (WHERE shorturl.route(k) <> shard) > 0 AS some_moved_to_echo
FROM routing_before;
DELETE FROM shorturl.shards WHERE name = 'echo';
SELECT count(*) FILTER (WHERE shorturl.route(k) <> shard) AS differ_after_removal
FROM routing_before;
DROP TABLE routing_before;

-- The cache in one session: every change to the table is seen at the next
-- statement (insert, weight update, delete, TRUNCATE), including this
-- transaction's own uncommitted changes, and a ROLLBACK (or ROLLBACK TO
-- SAVEPOINT) restores the previous answer.  Key 7 routes to charlie under
-- alpha 1, bravo 2, charlie 3, delta 4 (route_reference.py); each edit below
-- moves it.
TRUNCATE shorturl.shards;
SELECT shorturl.route(7::bigint);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards (name, weight) VALUES ('alpha', 1);
SELECT shorturl.route(7::bigint) AS after_insert_alpha;
INSERT INTO shorturl.shards (name, weight) VALUES ('bravo', 2), ('charlie', 3), ('delta', 4);
SELECT shorturl.route(7::bigint) AS after_insert_three;
UPDATE shorturl.shards SET weight = 0.5 WHERE name = 'charlie';
SELECT shorturl.route(7::bigint) AS after_lowering_charlie;
UPDATE shorturl.shards SET weight = 3 WHERE name = 'charlie';
SELECT shorturl.route(7::bigint) AS after_restoring_charlie;
DELETE FROM shorturl.shards WHERE name = 'charlie';
SELECT shorturl.route(7::bigint) AS after_deleting_charlie;
BEGIN;
INSERT INTO shorturl.shards (name, weight) VALUES ('charlie', 3);
SELECT shorturl.route(7::bigint) AS own_uncommitted_insert;
ROLLBACK;
SELECT shorturl.route(7::bigint) AS after_rollback;
BEGIN;
INSERT INTO shorturl.shards (name, weight) VALUES ('charlie', 3);
SAVEPOINT s;
DELETE FROM shorturl.shards WHERE name = 'charlie';
SELECT shorturl.route(7::bigint) AS deleted_in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT shorturl.route(7::bigint) AS after_rollback_to_savepoint;
COMMIT;
SELECT shorturl.route(7::bigint) AS after_commit;
-- Statements sent in one query string are statements too: the change is seen
-- by the next one in the string.
DELETE FROM shorturl.shards WHERE name = 'charlie' \; SELECT shorturl.route(7::bigint) AS same_query_string;
INSERT INTO shorturl.shards (name, weight) VALUES ('charlie', 3);
-- Under REPEATABLE READ the transaction's own change is seen at its next
-- statement too, and ROLLBACK restores the previous answer.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT shorturl.route(7::bigint) AS rr_before;
DELETE FROM shorturl.shards WHERE name = 'charlie';
SELECT shorturl.route(7::bigint) AS rr_own_delete;
ROLLBACK;
SELECT shorturl.route(7::bigint) AS rr_after_rollback;
-- The trigger is ENABLE ALWAYS, so it also fires under session_replication_role
-- = replica, as logical replication and restores write the map: a change is
-- still seen at the next statement (insert, delete, TRUNCATE).
SELECT tgenabled FROM pg_trigger
WHERE tgrelid = 'shorturl.shards'::regclass AND tgname = 'shards_changed';
SET session_replication_role = replica;
SELECT shorturl.route(7::bigint) AS replica_before;
DELETE FROM shorturl.shards WHERE name = 'charlie';
SELECT shorturl.route(7::bigint) AS replica_after_delete;
INSERT INTO shorturl.shards (name, weight) VALUES ('charlie', 3);
SELECT shorturl.route(7::bigint) AS replica_after_insert;
TRUNCATE shorturl.shards;
SELECT shorturl.route(7::bigint);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET session_replication_role;
INSERT INTO shorturl.shards (name, weight) VALUES ('alpha', 1);
SELECT shorturl.route(7::bigint) AS after_replica_truncate;
TRUNCATE shorturl.shards;
SELECT shorturl.route(7::bigint);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- The cache and the pure form agree after each kind of change (10,000 keys).
INSERT INTO shorturl.shards (name, weight) VALUES ('alpha', 1), ('bravo', 2), ('charlie', 3);
UPDATE shorturl.shards SET weight = 7 WHERE name = 'alpha';
DELETE FROM shorturl.shards WHERE name = 'bravo';
INSERT INTO shorturl.shards (name, weight) VALUES ('zulu', 0.5);
SELECT count(*) FILTER (WHERE shorturl.route(k) <> shorturl.route(k, '{alpha,charlie,zulu}', '{7,3,0.5}')) AS mismatches
FROM generate_series(1::bigint, 10000) k;

-- Within one statement, a later command of a function sees an earlier one's change.
CREATE FUNCTION routing_add_and_route(k bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO shorturl.shards (name, weight) VALUES ('yankee', 1000000);
  RETURN shorturl.route(k);
END $$;
SELECT routing_add_and_route(7) AS routed_after_insert_in_function;
DROP FUNCTION routing_add_and_route(bigint);
DELETE FROM shorturl.shards WHERE name = 'yankee';

-- route(key, names, weights) answers the same in parallel workers (it is PARALLEL SAFE).
CREATE TABLE routing_keys AS SELECT k FROM generate_series(1::bigint, 20000) k;
ANALYZE routing_keys;
SELECT count(*) AS serial_alpha FROM routing_keys
WHERE shorturl.route(k, '{alpha,charlie,zulu}', '{7,3,0.5}') = 'alpha' \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM routing_keys WHERE shorturl.route(k, '{alpha,charlie,zulu}', '{7,3,0.5}') = 'alpha';
SELECT count(*) = :serial_alpha AS same_as_serial
FROM routing_keys WHERE shorturl.route(k, '{alpha,charlie,zulu}', '{7,3,0.5}') = 'alpha';

-- route(key) in a parallel plan: the leader may not take a new snapshot there
-- (an earlier version did, and failed), so the leader and the workers (which
-- start with empty caches) load the map with the statement's snapshot.  Each
-- query below follows a change to the map, so the leader's cache is stale when
-- it starts.  With parallel_leader_participation off the workers route every
-- row and the leader routes key 4 (alpha before each change, charlie after it,
-- per route_reference.py) in the final aggregate.  The plan, run with
-- EXPLAIN ANALYZE, shows that both workers ran.
CREATE FUNCTION routing_parallel_plan(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || query LOOP
    CONTINUE WHEN line ~ 'Rows Removed by Filter';
    RETURN NEXT regexp_replace(line, ' \(actual rows=[0-9.]+ loops=\d+\)', '');
  END LOOP;
END $$;
SET parallel_leader_participation = off;
UPDATE shorturl.shards SET weight = 6 WHERE name = 'charlie';
SELECT routing_parallel_plan($$
  SELECT shorturl.route(4::bigint) AS leader, count(*) AS worker_mismatches FROM routing_keys
  WHERE shorturl.route(k) <> shorturl.route(k, '{alpha,charlie,zulu}', '{7,6,0.5}')$$);
UPDATE shorturl.shards SET weight = 3 WHERE name = 'charlie';
SELECT shorturl.route(4::bigint) AS leader, count(*) AS worker_mismatches FROM routing_keys
WHERE shorturl.route(k) <> shorturl.route(k, '{alpha,charlie,zulu}', '{7,3,0.5}');
UPDATE shorturl.shards SET weight = 6 WHERE name = 'charlie';
SELECT shorturl.route(4::bigint) AS leader, count(*) AS worker_mismatches FROM routing_keys
WHERE shorturl.route(k) <> shorturl.route(k, '{alpha,charlie,zulu}', '{7,6,0.5}');
-- With the leader participating: leader and workers agree with the pure form.
RESET parallel_leader_participation;
UPDATE shorturl.shards SET weight = 3 WHERE name = 'charlie';
SELECT count(*) FILTER (WHERE shorturl.route(k) <> shorturl.route(k, '{alpha,charlie,zulu}', '{7,3,0.5}')) AS mismatches
FROM routing_keys;
DROP FUNCTION routing_parallel_plan(text);
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE routing_keys;

-- A cache filled before the extension is dropped does not outlive the table:
-- after DROP and CREATE EXTENSION the new, empty map is used (55000).
SELECT shorturl.route(7::bigint) AS before_drop;
DROP EXTENSION pg_shorturl;
CREATE EXTENSION pg_shorturl;
SELECT shorturl.route(7::bigint);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

DROP EXTENSION pg_shorturl;
