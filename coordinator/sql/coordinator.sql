--
-- coordinator: pg_shorturl_coordinator in front of three shards, each a
-- database of this test server with pg_shorturl.  Applications call the
-- same functions as on a single server; each call runs on the shard that
-- owns the code, through PL/Proxy.  (TAP tests in coordinator/t run shards
-- on servers of their own.)
--
\pset null '(null)'
-- no CONTEXT lines: they carry the line numbers of the PL/pgSQL functions
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE DATABASE regress_shard_a;
CREATE DATABASE regress_shard_b;
CREATE DATABASE regress_shard_c;
\c regress_shard_a
CREATE EXTENSION pg_shorturl;
\c regress_shard_b
CREATE EXTENSION pg_shorturl;
\c regress_shard_c
CREATE EXTENSION pg_shorturl;
\c contrib_regression
RESET client_min_messages;

-- A coordinator and a store are different databases: the two extensions
-- offer the same functions in the schema shorturl.
CREATE EXTENSION pg_shorturl;
CREATE EXTENSION pg_shorturl_coordinator CASCADE;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP EXTENSION pg_shorturl;
CREATE EXTENSION pg_shorturl_coordinator CASCADE;
SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1;

-- Every function has a comment; only the pure routing functions are public.
SELECT p.oid::regprocedure FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT p.proname FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
GROUP BY 1 ORDER BY 1;
-- the API functions: volatile, PARALLEL UNSAFE (they call other servers),
-- SECURITY DEFINER with a pinned path (the calls use the owner's mappings)
SELECT p.oid::regprocedure, p.provolatile, p.proparallel, p.prosecdef, p.proconfig
FROM pg_proc p WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('shorten', 'resolve', 'link_status', 'visits', 'get_link', 'list_links',
                    'update_link', 'disable_link', 'enable_link', 'delete_link', 'reset_visits',
                    'visit_series', 'visit_breakdown', 'unique_visitors',
                    'block_host', 'unblock_host', 'blocked_hosts')
ORDER BY 1;

-- add_shard checks its arguments.
SELECT shorturl.add_shard('bad name', 'dbname=regress_shard_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.add_shard('a', 'this is not a connection string');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.add_shard('a', 'dbname=''unterminated');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.add_shard('a', 'dbname=regress_shard_a');
SELECT shorturl.add_shard('a', 'dbname=regress_shard_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.add_shard('b', 'dbname=regress_shard_b');

-- What add_shard made: runtime objects, none a member of the extension, so
-- pg_dump keeps them (the extension's own objects are never altered).
SELECT srvname, (SELECT fdwname FROM pg_foreign_data_wrapper w WHERE w.oid = s.srvfdw) AS wrapper
FROM pg_foreign_server s ORDER BY 1;
-- the PL/Proxy cluster: a partition per shard, any number of them, and
-- shorturl.remote_timeout (5 s) as the time a shard may take
SELECT array_agg(split_part(o, '=', 1) ORDER BY o) AS partitions FROM pg_foreign_server s, unnest(s.srvoptions) o
WHERE s.srvname = 'shorturl_cluster' AND o ~ '^p[0-9]+=';
SELECT array_agg(o ORDER BY o) AS options FROM pg_foreign_server s, unnest(s.srvoptions) o
WHERE s.srvname = 'shorturl_cluster' AND o !~ '^p[0-9]+=';
SELECT count(*) AS runtime_objects_in_extension
FROM pg_depend d WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl_coordinator')
  AND d.deptype = 'e' AND d.classid IN ('pg_foreign_server'::regclass, 'pg_user_mapping'::regclass)
   OR (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT ftrelid FROM pg_foreign_table)
       AND d.deptype = 'e');

--
-- The API, through the coordinator.
--
-- a known key, so that the codes (and which shard each lands on) are the same
-- on every run
SELECT shorturl.set_code_width(7) AS width;
UPDATE shorturl.code_key SET key = '\x000102030405060708090a0b0c0d0e0f';
SELECT count(shorturl.shorten('https://example.com/' || i)) AS made FROM generate_series(1, 20) i;
SELECT shorturl.shorten('https://example.com/spring', alias => 'spring-sale');
-- every link went to the shard its code routes to, and only there
SELECT (SELECT count(*) FROM shorturl_remote.a_links) + (SELECT count(*) FROM shorturl_remote.b_links) AS links,
       (SELECT count(*) FROM shorturl_remote.a_links WHERE shorturl.route(code) <> 'a')
     + (SELECT count(*) FROM shorturl_remote.b_links WHERE shorturl.route(code) <> 'b') AS misplaced;
-- resolve counts on the owner; link_status and visits read it there
SELECT shorturl.resolve('spring-sale') AS url, shorturl.resolve('spring-sale') AS again;
SELECT shorturl.visits('spring-sale') AS visits, shorturl.link_status('spring-sale') AS status;
SELECT shorturl.resolve('nosuchcode') AS unknown, shorturl.link_status('nosuchcode') AS status,
       shorturl.visits('nosuchcode') AS visits;
-- any text resolves to NULL, never an error
SELECT shorturl.resolve('') AS empty, shorturl.resolve(repeat('z', 10000)) AS huge,
       shorturl.resolve('ünïcödé') AS non_ascii;
-- max_visits stays exact: the owner counts
SELECT shorturl.shorten('https://example.com/twice', max_visits => 2, alias => 'twice');
SELECT count(shorturl.resolve('twice')) AS served FROM generate_series(1, 5);
SELECT shorturl.link_status('twice');
-- reuse asks every shard
SELECT shorturl.shorten('https://example.com/reused', reuse => true) = shorturl.shorten('https://example.com/reused', reuse => true) AS reused;

-- A shard's error keeps its SQLSTATE and message, and names the shard.
SELECT shorturl.shorten('ftp://example.com/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', alias => 'admin');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/other', alias => 'spring-sale');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a code the cluster handed out is never handed out again, as an alias
SELECT shorturl.shorten('https://evil.example.net/', alias => shorturl.encode_id(0));
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Parallel plans: the API functions are PARALLEL UNSAFE, so a forced
-- parallel query runs them in the leader and works.
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', false) AS forced;
SELECT shorturl.link_status(c), shorturl.visits(c) FROM (VALUES ('spring-sale'), ('twice')) v(c);
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', false) AS unforced;

-- add_shard refuses a second name for a shard's database (a rebalance
-- would then lose links), and a shard it cannot reach; the map stays.
SELECT shorturl.add_shard('a2', 'dbname=regress_shard_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT shorturl.add_shard('x', 'dbname=regress_no_such_database');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT string_agg(name, ',' ORDER BY name) AS shards FROM shorturl.shards;

-- aliases, some of which a third shard will take
SELECT count(shorturl.shorten('https://example.com/al/' || i, alias => 'al-' || i)) AS aliases
FROM generate_series(1, 30) i;

--
-- Rebalancing: a third shard takes its share; nothing is lost or counted twice.
--
CREATE TEMP TABLE before AS
SELECT code, shorturl.visits(code) AS visits FROM (
    SELECT code FROM shorturl_remote.a_links UNION ALL SELECT code FROM shorturl_remote.b_links) c;
SELECT shorturl.add_shard('c', 'dbname=regress_shard_c');
SELECT pending FROM shorturl.rebalance_state;
-- while it is due, an alias may still live on the shard it leaves: a new
-- link cannot take it on its new owner, nor a retired one (a hostile test
-- took both, and the rebalance then deleted the original link)
SELECT code AS moving_alias FROM shorturl_remote.a_links WHERE is_alias AND shorturl.route(code) = 'c'
UNION ALL
SELECT code FROM shorturl_remote.b_links WHERE is_alias AND shorturl.route(code) = 'c'
ORDER BY 1 LIMIT 1 \gset
SELECT shorturl.shorten('https://evil.example/hijack', alias => :'moving_alias');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT code AS retired_alias FROM shorturl_remote.a_links WHERE is_alias AND shorturl.route(code) = 'c'
UNION ALL
SELECT code FROM shorturl_remote.b_links WHERE is_alias AND shorturl.route(code) = 'c'
ORDER BY 1 DESC LIMIT 1 \gset
DELETE FROM shorturl_remote.a_links WHERE code = :'retired_alias';
DELETE FROM shorturl_remote.b_links WHERE code = :'retired_alias';
DELETE FROM before WHERE code = :'retired_alias';
SELECT shorturl.shorten('https://evil.example/hijack', alias => :'retired_alias');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT url = 'https://example.com/al/' || substr(:'moving_alias', 4) AS still_the_original
FROM (SELECT code, url FROM shorturl_remote.a_links UNION ALL SELECT code, url FROM shorturl_remote.b_links) l
WHERE code = :'moving_alias';
-- while it is due, every link stays reachable through the coordinator
SELECT count(*) FILTER (WHERE shorturl.visits(code) = visits) AS reachable, count(*) FROM before;
SELECT sum(links) AS to_move FROM shorturl.rebalance_plan();
SET client_min_messages = warning;
CALL shorturl.rebalance(7);
RESET client_min_messages;
SELECT pending, planned = moved AS all_moved FROM shorturl.rebalance_state;
SELECT count(*) AS left_to_move FROM shorturl.rebalance_plan();
SELECT count(*) FILTER (WHERE shorturl.visits(code) = visits) AS exact, count(*) FROM before;
-- their analytics moved with them: each series adds up to its count
SET shorturl.count_bots = on;
SELECT count(*) FILTER (WHERE (SELECT coalesce(sum(s.visits), 0)
                               FROM shorturl.visit_series(code, NULL, NULL, 'hour') s) = visits) AS series_exact,
       count(*)
FROM before;
RESET shorturl.count_bots;
SELECT (SELECT count(*) FROM shorturl_remote.c_links) > 0 AS c_has_links,
       (SELECT count(*) FROM shorturl_remote.a_links WHERE shorturl.route(code) <> 'a')
     + (SELECT count(*) FROM shorturl_remote.b_links WHERE shorturl.route(code) <> 'b')
     + (SELECT count(*) FROM shorturl_remote.c_links WHERE shorturl.route(code) <> 'c') AS misplaced;
-- removing a shard empties it, then forgets it
SELECT shorturl.remove_shard('b');
SET client_min_messages = warning;
CALL shorturl.rebalance();
RESET client_min_messages;
SELECT name, retiring FROM shorturl.shards ORDER BY name;
SELECT count(*) FILTER (WHERE shorturl.visits(code) = visits) AS exact, count(*) FROM before;
SELECT shorturl.remove_shard('a');
SELECT shorturl.remove_shard('c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A shard that cannot be reached fails the calls for its codes, naming it
-- (08006); codes on the other shards go on.
SET client_min_messages = warning;
CREATE DATABASE regress_shard_d;
\c regress_shard_d
CREATE EXTENSION pg_shorturl;
\c contrib_regression
SET client_min_messages = warning;
SELECT shorturl.add_shard('d', 'dbname=regress_shard_d');
CALL shorturl.rebalance();
RESET client_min_messages;
SELECT code AS d_code FROM shorturl_remote.d_links LIMIT 1 \gset
SELECT code AS c_code FROM shorturl_remote.c_links LIMIT 1 \gset
ALTER DATABASE regress_shard_d ALLOW_CONNECTIONS false;
SELECT count(pg_terminate_backend(pid)) >= 0 AS closed FROM pg_stat_activity WHERE datname = 'regress_shard_d';
SELECT pg_sleep(0.2);
\set VERBOSITY terse
SELECT shorturl.resolve(:'d_code');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT shorturl.link_status(:'c_code') AS other_shards_answer;
ALTER DATABASE regress_shard_d ALLOW_CONNECTIONS true;
SELECT shorturl.link_status(:'d_code') AS back;

-- A retiring shard that is gone for good cannot be emptied; forget_shard()
-- drops it, links and all, once it is retiring.
SELECT shorturl.forget_shard('d');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.remove_shard('d');
ALTER DATABASE regress_shard_d ALLOW_CONNECTIONS false;
SELECT count(pg_terminate_backend(pid)) >= 0 AS closed FROM pg_stat_activity WHERE datname = 'regress_shard_d';
SELECT pg_sleep(0.2);
\set VERBOSITY terse
CALL shorturl.rebalance();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT shorturl.forget_shard('d');
SELECT string_agg(name, ',' ORDER BY name) AS shards FROM shorturl.shards;
SELECT shorturl.link_status(:'c_code') AS still_answers;
ALTER DATABASE regress_shard_d ALLOW_CONNECTIONS true;

-- An application role needs EXECUTE on the API, nothing else.
CREATE ROLE regress_coord_app;
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text),
                          shorturl.resolve(text), shorturl.link_status(text), shorturl.visits(text)
      TO regress_coord_app;
SET ROLE regress_coord_app;
SELECT shorturl.resolve('spring-sale') AS app_resolves;
SELECT shorturl.add_shard('x', 'dbname=x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY regress_coord_app;
DROP ROLE regress_coord_app;

-- cleanup
SET client_min_messages = warning;
DROP EXTENSION pg_shorturl_coordinator CASCADE;
DROP SCHEMA IF EXISTS shorturl_remote CASCADE;
DROP SERVER IF EXISTS shorturl_cluster CASCADE;
DROP EXTENSION plproxy;
DROP EXTENSION postgres_fdw CASCADE;
DROP DATABASE regress_shard_a WITH (FORCE);
DROP DATABASE regress_shard_b WITH (FORCE);
DROP DATABASE regress_shard_c WITH (FORCE);
DROP DATABASE regress_shard_d WITH (FORCE);
