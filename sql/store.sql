--
-- store: the links table, shorten / resolve / link_status / visits, code
-- generation, aliases, validation, capacity estimates and privileges.
-- Bad inputs first, then the happy path.  After each expected error the
-- SQLSTATE is echoed.  Codes depend on the random key, so the test prints
-- their properties, except where it pins the key to check the permutation.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'

-- Every store function has the right volatility, strictness, parallel
-- label, security and a pinned search_path, and a comment.
SELECT p.oid::regprocedure AS function, p.provolatile AS vol, p.proisstrict AS strict,
       p.proparallel AS par, p.prosecdef AS secdef, p.proconfig AS config,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('shorten', 'resolve', 'link_status', 'visits', 'encode_id',
                    'decode_id', 'new_code_key', 'estimate', 'code_key_replace',
                    'code_key_changed')
ORDER BY 1;

-- Every table, view, sequence and column users touch carries a comment.
SELECT c.relname, c.relkind
FROM pg_class c
WHERE c.relnamespace = 'shorturl'::regnamespace AND c.relkind IN ('r', 'v', 'S')
  AND obj_description(c.oid, 'pg_class') IS NULL
ORDER BY 1;
SELECT a.attrelid::regclass, a.attname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'shorturl'::regnamespace AND c.relkind = 'r'
  AND a.attnum > 0 AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) IS NULL
ORDER BY 1, 2;

-- pg_dump keeps the links, the key, the sequence, the owner's reserved words and the shard map.
SELECT unnest(extconfig)::regclass AS dumped, unnest(extcondition) AS filter
FROM pg_extension WHERE extname = 'pg_shorturl' ORDER BY 1::text;

-- Codes are case-sensitive: the key column collates as "C".
SELECT attcollation::regcollation FROM pg_attribute
WHERE attrelid = 'shorturl.links'::regclass AND attname = 'code';

--
-- URL validation: each rule fails with 22023 and names itself.
--
-- a NULL url is an error, not a NULL result (22004)
SELECT shorturl.shorten(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the scheme must be http or https
SELECT shorturl.shorten('ftp://example.com/file');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('javascript:alert(1)');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a host must be present
SELECT shorturl.shorten('https:///path');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://user@/path');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- no spaces, no control characters
SELECT shorturl.shorten('https://example.com/a b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten(E'https://example.com/\r\nSet-Cookie: x=1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the host may not hold characters a browser reads as a path ("\")
SELECT shorturl.shorten('https://evil.example\@good.example/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a port is 1..65535
SELECT shorturl.shorten('https://example.com:0/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com:65536/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com:80a/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the length limit is shorturl.max_url_length bytes (2048 by default)
SHOW shorturl.max_url_length;
SELECT shorturl.shorten('https://example.com/' || repeat('a', 2029));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET shorturl.max_url_length = 30;
SELECT length(shorturl.shorten('https://example.com/0123456789')) AS exactly_30_bytes_ok;
SELECT shorturl.shorten('https://example.com/01234567890');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET shorturl.max_url_length;

--
-- Limits: expires_at in the future, max_visits at least 1 (22023).
--
-- (terse: the detail shows the times, which change from run to run)
\set VERBOSITY terse
SELECT shorturl.shorten('https://example.com/', expires_at => now() - interval '1 second');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', expires_at => now());
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT shorturl.shorten('https://example.com/', max_visits => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', max_visits => -5);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

--
-- Aliases: 1-64 of [A-Za-z0-9_-], not reserved (22023), not taken (23505).
--
SELECT shorturl.shorten('https://example.com/', alias => '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', alias => repeat('a', 65));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', alias => 'has space');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', alias => 'café');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', alias => 'a/b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- reserved words are refused in any case
SELECT shorturl.shorten('https://example.com/', alias => 'admin');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', alias => 'LogIn');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the owner can reserve more words
INSERT INTO shorturl.reserved_aliases (alias) VALUES ('pricing');
SELECT shorturl.shorten('https://example.com/', alias => 'Pricing');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- 64 characters is the longest alias
SELECT length(shorturl.shorten('https://example.com/long', alias => repeat('x', 64))) AS longest_alias;
-- a taken alias is a unique violation; aliases are case-sensitive
SELECT shorturl.shorten('https://example.com/spring', alias => 'spring-sale');
SELECT shorturl.shorten('https://example.com/other', alias => 'spring-sale');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/upper', alias => 'Spring-Sale');

--
-- Generated codes.
--
-- they are shorturl.code_length (7) base62 characters
CREATE TEMP TABLE made AS
SELECT n, shorturl.shorten('https://example.com/item/' || n) AS code
FROM generate_series(1, 1000) n;
SELECT count(*) AS codes, count(DISTINCT code) AS distinct_codes,
       min(length(code)) AS min_len, max(length(code)) AS max_len,
       bool_and(code ~ '^[0-9A-Za-z]{7}$') AS base62_only
FROM made;
-- consecutive links do not get neighbouring codes: the median distance between
-- the numbers behind consecutive codes is a sizeable part of the 62^7 space
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(d)) > 62::float8 ^ 7 / 10 AS scattered
FROM (SELECT shorturl.base62_decode(code) - lag(shorturl.base62_decode(code)) OVER (ORDER BY n) AS d
      FROM made) s WHERE d IS NOT NULL;
-- each code decodes to the sequence number it was made from, in creation order
SELECT bool_and(shorturl.decode_id(code) = first_id + n - 1) AS ids_in_order
FROM made, (SELECT shorturl.decode_id(code) AS first_id FROM made WHERE n = 1) f;
-- an alias, or a string that is no generated code, decodes to NULL
SELECT shorturl.decode_id('spring-sale') AS alias_id, shorturl.decode_id('abc') AS short_id;
-- encode_id refuses negative ids (22003)
SELECT shorturl.encode_id(-1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- With a known key the permutation is pinned: these codes must never change
-- across versions (the key below replaces the random one; the trigger keeps one row).
INSERT INTO shorturl.code_key (key) VALUES ('\x000102030405060708090a0b0c0d0e0f');
SELECT count(*) AS keys FROM shorturl.code_key;
SELECT i, shorturl.encode_id(i) AS code, shorturl.decode_id(shorturl.encode_id(i)) = i AS round_trip
FROM generate_series(0, 4) i;
-- the width grows once the 7-character space (62^7 ids) is used up
SELECT shorturl.encode_id(3521614606207) AS last_7, shorturl.encode_id(3521614606208) AS first_8,
       shorturl.decode_id(shorturl.encode_id(3521614606208)) AS first_8_id;
-- a narrower code_length, for small deployments, starts at that width
SET shorturl.code_length = 4;
SELECT shorturl.encode_id(0) AS w4, shorturl.encode_id(14776335) AS last_4, shorturl.encode_id(14776336) AS first_5;
RESET shorturl.code_length;
-- past the 10-character space the generator refuses (54000)
SELECT shorturl.encode_id(9223372036854775807);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- code_length is a superuser setting between 4 and 10
SET shorturl.code_length = 3;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A generated code that collides with an alias takes the next sequence value:
-- reserve the next code as an alias first, then shorten.
SELECT shorturl.shorten('https://example.com/squatter',
                        alias => shorturl.encode_id(nextval('shorturl.link_id_seq') + 1)) IS NOT NULL AS squatted;
SELECT shorturl.decode_id(shorturl.shorten('https://example.com/after-squat'))
       = currval('shorturl.link_id_seq') AS skipped_to_next;

--
-- reuse => true returns an active link with the same URL and limits.
--
SELECT shorturl.shorten('https://example.com/reuse', reuse => true) = shorturl.shorten('https://example.com/reuse', reuse => true) AS reused;
SELECT shorturl.shorten('https://example.com/reuse', reuse => true) <> shorturl.shorten('https://example.com/reuse') AS without_reuse_new;
SELECT shorturl.shorten('https://example.com/reuse', max_visits => 5, reuse => true)
    <> shorturl.shorten('https://example.com/reuse', reuse => true) AS limits_differ;
-- an alias is only reused as itself: same URL and limits return it, anything else is taken
SELECT shorturl.shorten('https://example.com/spring', alias => 'spring-sale', reuse => true) AS same_alias;
SELECT shorturl.shorten('https://example.com/autumn', alias => 'spring-sale', reuse => true);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the lookup goes through the index on url_hash
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT code FROM shorturl.links WHERE url_hash = shorturl.hash64('https://example.com/reuse'::text) AND url = 'https://example.com/reuse';
RESET enable_seqscan;

--
-- resolve, link_status, visits.
--
-- any text at all resolves to NULL, never an error
SELECT shorturl.resolve('') AS empty, shorturl.resolve('favicon.ico') AS favicon,
       shorturl.resolve(repeat('z', 100000)) AS huge, shorturl.resolve('ünïcödé') AS non_ascii,
       shorturl.resolve('../../etc/passwd') AS path, shorturl.resolve('nosuchcode') AS unknown,
       shorturl.resolve(NULL) AS null_code;
SELECT shorturl.link_status('nosuchcode') AS unknown, shorturl.link_status('') AS empty,
       shorturl.visits('nosuchcode') AS unknown_visits;
-- an active link resolves and counts each visit
SELECT shorturl.shorten('https://example.com/counted', alias => 'counted');
SELECT shorturl.resolve('counted') FROM generate_series(1, 3);
SELECT shorturl.visits('counted') AS visits, shorturl.link_status('counted') AS status;
-- max_visits: served exactly N times, then exhausted
SELECT shorturl.shorten('https://example.com/twice', max_visits => 2, alias => 'twice');
SELECT shorturl.resolve('twice') AS first;
SELECT shorturl.resolve('twice') AS second;
SELECT shorturl.resolve('twice') AS third;
SELECT shorturl.visits('twice') AS visits, shorturl.link_status('twice') AS status;
-- a resolve of an exhausted link does not count
SELECT shorturl.resolve('twice') AS fourth, shorturl.visits('twice') AS still_two;
-- expiry is checked at read time, before anything purges the link
SELECT shorturl.shorten('https://example.com/soon', expires_at => now() + interval '1 hour', alias => 'soon');
SELECT shorturl.link_status('soon') AS before, shorturl.resolve('soon') AS resolves;
UPDATE shorturl.links SET expires_at = now() - interval '1 second' WHERE code = 'soon';
SELECT shorturl.link_status('soon') AS after, shorturl.resolve('soon') AS resolves, shorturl.visits('soon') AS visits;
-- an expired link that was also used up reports expired
UPDATE shorturl.links SET expires_at = now() - interval '1 second' WHERE code = 'twice';
SELECT shorturl.link_status('twice');

--
-- Capacity estimates: the reference example (10M daily users, 0.1 links each
-- a day, 100 reads per write, 500-byte rows, 5 years).
--
SELECT round(write_qps::numeric, 2) AS write_qps, round(read_qps::numeric, 2) AS read_qps,
       round(peak_write_qps::numeric, 2) AS peak_write, round(peak_read_qps::numeric, 2) AS peak_read,
       total_urls, storage_bytes, round(write_bytes_per_s::numeric) AS write_bps,
       round(read_bytes_per_s::numeric) AS read_bps, min_code_length
FROM shorturl.estimate(10000000, 0.1, 100, 500, 5);
-- 62^8 = 2.2e14 codes keep a guess below 1e-4 for 1.8e9 links; 62^7 does not
SELECT min_code_length FROM shorturl.estimate(10000000, 0.1, 100, 500, 5, max_guess_rate => 1e-3);
SELECT shorturl.estimate(-1, 0.1, 100, 500, 5);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

--
-- Privileges: a fresh role gets nothing of the store until granted.
--
CREATE ROLE regress_shorturl_app;
SET ROLE regress_shorturl_app;
-- the pure functions are public
SELECT shorturl.base62_encode(62) AS pure_ok, shorturl.hash64('x'::text) IS NOT NULL AS hash_ok;
-- the store is not
SELECT shorturl.shorten('https://example.com/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.resolve('counted');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM shorturl.links;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT key FROM shorturl.code_key;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.links (code, url) VALUES ('mine', 'https://example.com/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT nextval('shorturl.link_id_seq');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- what the README tells a DBA to grant an application role
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean),
                          shorturl.resolve(text), shorturl.link_status(text),
                          shorturl.visits(text)
      TO regress_shorturl_app;
SET ROLE regress_shorturl_app;
SELECT length(shorturl.shorten('https://example.com/app')) AS app_shortens,
       shorturl.resolve('counted') AS app_resolves, shorturl.link_status('counted') AS status;
-- still no direct access to the tables, the key or the operator functions
UPDATE shorturl.links SET visits = 0;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM shorturl.links;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.decode_id('counted');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.encode_id(1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.reserved_aliases VALUES ('x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.shards VALUES ('x', 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- but the reserved words and the shard map are readable
SELECT count(*) > 0 AS sees_reserved FROM shorturl.reserved_aliases;
RESET ROLE;
DROP OWNED BY regress_shorturl_app;
DROP ROLE regress_shorturl_app;
DROP EXTENSION pg_shorturl;

--
-- Synchronous counting, by an application role.  In a database the worker
-- does not serve, resolve() counts with an UPDATE it runs as the tables'
-- owner (resolve is not SECURITY DEFINER).  A caller's search_path must
-- not change what that UPDATE means: the role puts an operator of its own
-- for bigint + integer first in its path, and it must never run.
--
SET client_min_messages = warning;
CREATE DATABASE regress_store_sync;
\c regress_store_sync
CREATE EXTENSION pg_shorturl;
CREATE ROLE regress_shorturl_app;
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean),
                          shorturl.resolve(text), shorturl.link_status(text),
                          shorturl.visits(text)
      TO regress_shorturl_app;
CREATE SCHEMA regress_trap AUTHORIZATION regress_shorturl_app;
SET ROLE regress_shorturl_app;
CREATE FUNCTION regress_trap.trap_plus(bigint, integer) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the trap operator ran'; END $$;
CREATE OPERATOR regress_trap.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = regress_trap.trap_plus);
SET search_path = regress_trap, public, pg_catalog;
SELECT mode FROM shorturl.stats;
SELECT shorturl.shorten('https://example.com/sync', max_visits => 2, alias => 'sync2');
SELECT shorturl.resolve('sync2') AS first, shorturl.resolve('sync2') AS second,
       shorturl.resolve('sync2') AS third;
SELECT shorturl.visits('sync2') AS visits, shorturl.link_status('sync2') AS status;
-- and still no direct access to the table
SELECT visits FROM shorturl.links;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET search_path;
RESET ROLE;
SELECT visits, exhausted_at IS NOT NULL AS exhausted FROM shorturl.links WHERE code = 'sync2';
\c contrib_regression
SET client_min_messages = warning;
DROP DATABASE regress_store_sync;
DROP ROLE regress_shorturl_app;
