--
-- sharding: a coordinator over two shards.  The shards are two other
-- databases of the test server, reached through its Unix socket, so this
-- file runs wherever the suite runs; test/t/007_sharding.pl does the same
-- with four servers and 100,000 links.
--
\pset null '(null)'
-- CONTEXT lines would pin PL/pgSQL line numbers
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
CREATE EXTENSION pg_shorturl;
SET client_min_messages = warning;

-- how this server is reached, for the shards' connection strings
SELECT format('host=%s port=%s dbname=', split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port')) AS server \gset

-- The setup functions are the owner's (superuser's) alone.
SELECT p.oid::regprocedure AS function, p.prosecdef AS secdef,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('add_shard', 'remove_shard', 'set_shard_weight', 'rebalance', 'rebalance_plan',
                    'store_link', 'move_out', 'resolve_here', 'link_here', 'coordinator_resolve')
ORDER BY 1;

-- conninfo_options splits a connection string as libpq does (22023 if it cannot)
SELECT * FROM shorturl.conninfo_options('host=db1 port=5433 dbname=app user=u password=''s e''');
SELECT * FROM shorturl.conninfo_options('postgresql://u@db2:5434/app');
SELECT * FROM shorturl.conninfo_options('host=');
SELECT * FROM shorturl.conninfo_options('nonsense');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- add_shard refuses a bad name (22023)
SELECT shorturl.add_shard('no spaces', :'server' || 'regress_shard_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a database that holds links cannot become a coordinator (55000)
SELECT shorturl.shorten('https://example.com/local', alias => 'local') AS local_link;
SELECT shorturl.add_shard('a', :'server' || 'regress_shard_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM shorturl.links;
DELETE FROM shorturl.alias_quarantine;

-- Two shards, weights 1 and 2.
SELECT shorturl.add_shard('a', :'server' || 'regress_shard_a' || ' user=' || current_user, 1);
SELECT shorturl.add_shard('b', :'server' || 'regress_shard_b', 2);
-- a shard name is taken once (42710)
SELECT shorturl.add_shard('b', :'server' || 'regress_shard_b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the map keeps the connection string without its password; the server keeps the rest
SELECT name, weight, conninfo LIKE '%dbname=''regress_shard_%' AS conninfo_kept, retiring FROM shorturl.shards ORDER BY name;
SELECT srvname, 'extensions=pg_shorturl' = ANY (srvoptions) AS ships_route,
       'connect_timeout=5' = ANY (srvoptions) AS times_out
FROM pg_foreign_server ORDER BY 1;
-- shorturl.links is now partitioned over the shards; the extension's own table is empty
SELECT relkind FROM pg_class WHERE oid = 'shorturl.links'::regclass;
SELECT inhrelid::regclass AS partition, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE inhparent = 'shorturl.links'::regclass ORDER BY 1;
SELECT count(*) AS local_rows FROM shorturl.links_unsharded;

-- shorten, resolve, link_status and visits go to the shard that owns the code
CREATE TEMP TABLE made AS
SELECT i, shorturl.shorten('https://example.com/item/' || i) AS code FROM generate_series(1, 1200) i;
SELECT count(*) AS links, count(DISTINCT code) AS distinct_codes FROM made;
-- shares follow the weights 1:2 (within 5 points over 1,200 random codes)
SELECT tableoid::regclass AS shard,
       abs(100.0 * count(*) / 1200 - CASE WHEN tableoid::regclass::text LIKE '%.a_links' THEN 100.0 / 3
                                          ELSE 200.0 / 3 END) < 5 AS share_follows_weight
FROM shorturl.links GROUP BY 1 ORDER BY 1;
SELECT count(*) AS misplaced FROM shorturl.links
WHERE tableoid::regclass::text <> 'shorturl_remote.' || shorturl.route(code) || '_links';
-- a lookup by code reads one shard (the plan has one foreign scan), a full scan all
CREATE FUNCTION pg_temp.foreign_scans(query text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    line text;
    n bigint := 0;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        IF line LIKE '%Foreign Scan%' THEN n := n + 1; END IF;
    END LOOP;
    RETURN n;
END $$;
SELECT code AS some_code FROM made WHERE i = 1 \gset
SELECT pg_temp.foreign_scans(format('SELECT url FROM shorturl.links WHERE code = %L', :'some_code')) AS by_code,
       pg_temp.foreign_scans('SELECT url FROM shorturl.links') AS full_scan;
SELECT shorturl.resolve(:'some_code') AS url, shorturl.visits(:'some_code') AS visits,
       shorturl.link_status(:'some_code') AS status;
SELECT shorturl.resolve('nosuchcode') AS unknown, shorturl.link_status('nosuchcode') AS status;
-- aliases, limits and reuse work as on one server
SELECT shorturl.shorten('https://example.com/spring', alias => 'spring-sale', max_visits => 2);
SELECT shorturl.shorten('https://example.com/other', alias => 'spring-sale');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/spring', alias => 'spring-sale', max_visits => 2, reuse => true) AS idempotent;
SELECT count(shorturl.resolve('spring-sale')) AS served_of_5 FROM generate_series(1, 5);
SELECT shorturl.link_status('spring-sale') AS status, shorturl.visits('spring-sale') AS visits;
SELECT shorturl.shorten('https://example.com/item/7', reuse => true) = (SELECT code FROM made WHERE i = 7) AS reused;

-- A third shard: the plan says what moves, the rebalance moves exactly that.
SELECT count(shorturl.shorten('https://example.com/alias/' || i, alias => 'alias-' || i)) AS aliases
FROM generate_series(1, 60) i;
CREATE TEMP TABLE before AS
SELECT code, url, shorturl.route(code) AS owner, shorturl.visits(code) AS visits FROM shorturl.links;
SELECT shorturl.add_shard('c', :'server' || 'regress_shard_c', 1);
SELECT pending FROM shorturl.rebalance_state;
CREATE TEMP TABLE expected_moves AS
SELECT b.owner AS source, shorturl.route(b.code, m.names, m.weights) AS target, count(*) AS links
FROM before b, shorturl.active_map() m
WHERE shorturl.route(b.code, m.names, m.weights) <> b.owner GROUP BY 1, 2;
SELECT count(*) AS plan_differences FROM (
    (SELECT * FROM shorturl.rebalance_plan() EXCEPT SELECT * FROM expected_moves)
    UNION ALL
    (SELECT * FROM expected_moves EXCEPT SELECT * FROM shorturl.rebalance_plan())) d;
SELECT sum(links) > 0 AS some_move FROM expected_moves;
-- links not moved yet still resolve, from their old shard
SELECT count(*) FILTER (WHERE shorturl.link_status(code) = 'unknown') AS not_found_mid_move FROM before;
CALL shorturl.rebalance(200);
SELECT pending, planned = moved AS all_moved, finished_at IS NOT NULL AS finished FROM shorturl.rebalance_state;
SELECT count(*) AS misplaced FROM shorturl.links
WHERE tableoid::regclass::text <> 'shorturl_remote.' || shorturl.route(code) || '_links';
-- nothing lost, nothing duplicated, counters intact, only the planned links moved
SELECT count(*) AS links, count(DISTINCT code) AS distinct_codes FROM shorturl.links;
SELECT count(*) AS lost FROM before b LEFT JOIN shorturl.links l USING (code) WHERE l.url IS DISTINCT FROM b.url;
SELECT count(*) FILTER (WHERE shorturl.visits(code) <> visits) AS visits_changed FROM before;
SELECT (SELECT count(*) FROM before b JOIN shorturl.links l USING (code)
        WHERE l.tableoid::regclass::text <> 'shorturl_remote.' || b.owner || '_links')
     = (SELECT sum(links) FROM expected_moves) AS moved_exactly_the_plan;
-- moved aliases are not quarantined on the shards they left
SELECT count(*) > 0 AS aliases_moved FROM before b JOIN shorturl.links l USING (code)
WHERE l.is_alias AND l.tableoid::regclass::text <> 'shorturl_remote.' || b.owner || '_links';
SELECT s.name, q.n AS quarantined
FROM shorturl.shards s,
     LATERAL shorturl_remote.dblink(shorturl.shard_connection(s.name),
                                    'SELECT count(*) FROM shorturl.alias_quarantine') AS q(n bigint)
ORDER BY 1;

-- Retiring a shard: it takes no new keys, and the rebalance empties and forgets it.
SELECT shorturl.remove_shard('a');
SELECT shorturl.remove_shard('nosuch');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FILTER (WHERE shorturl.route(code) = 'a') AS routed_to_a FROM before;
CALL shorturl.rebalance();
SELECT name, retiring FROM shorturl.shards ORDER BY name;
SELECT count(*) AS links, count(DISTINCT code) AS distinct_codes FROM shorturl.links;
SELECT count(*) FILTER (WHERE shorturl.visits(code) <> visits) AS visits_changed FROM before;
-- the last shard cannot go (55000)
SELECT shorturl.remove_shard('b');
SELECT shorturl.remove_shard('c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- the coordinator's connections to the shards end with the session, or here
SELECT count(shorturl_remote.dblink_disconnect(c)) AS disconnected
FROM unnest(shorturl_remote.dblink_get_connections()) c;
DROP EXTENSION pg_shorturl CASCADE;
DROP SCHEMA shorturl_remote CASCADE;
DROP DATABASE regress_shard_a;
DROP DATABASE regress_shard_b;
DROP DATABASE regress_shard_c;
