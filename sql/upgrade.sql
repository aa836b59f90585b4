--
-- upgrade: a database that installed 0.5, the last version that landed,
-- reaches 0.6 with ALTER EXTENSION pg_shorturl UPDATE, and keeps every link
-- resolvable with its count; the result has the same members as a fresh
-- install.  The 0.5 data is made the way 0.5 made it: generated codes are
-- the published test vectors of the pinned key (ids 0..4 at width 7).
--
\pset null '(null)'
SELECT version, superuser, relocatable, schema FROM pg_available_extension_versions
WHERE name = 'pg_shorturl' ORDER BY version;

CREATE EXTENSION pg_shorturl VERSION '0.5';
UPDATE shorturl.code_key SET key = '\x000102030405060708090a0b0c0d0e0f';
INSERT INTO shorturl.links (code, url, expires_at, max_visits, visits, last_visit_at, exhausted_at, is_alias)
VALUES ('f5JN1HB', 'https://example.com/0', NULL, NULL, 12, now(), NULL, false),
       ('8JGNLpL', 'https://example.com/1', now() + interval '1 day', NULL, 0, NULL, NULL, false),
       ('uRCW0H1', 'https://example.com/2', NULL, 5, 3, now(), NULL, false),
       ('eTJtVg5', 'https://example.com/3', NULL, 2, 2, now(), now(), false),
       ('spring-sale', 'https://example.com/spring', NULL, NULL, 40, now(), NULL, true);
SELECT setval('shorturl.link_id_seq', 4);
INSERT INTO shorturl.alias_quarantine (alias, released_at) VALUES ('gone-alias', now() + interval '30 days');

-- Before the update, the new library refuses the old tables with a clear
-- error instead of misreading them (55000).
SELECT shorturl.resolve('f5JN1HB');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/too-early');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

ALTER EXTENSION pg_shorturl UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_shorturl') AS at_default
FROM pg_extension WHERE extname = 'pg_shorturl';

-- every link resolves (or refuses) as before, with its count carried over
SELECT code, shorturl.link_status(code) AS status, shorturl.visits(code) AS visits
FROM shorturl.links ORDER BY id;
SELECT shorturl.resolve('f5JN1HB') AS url, shorturl.resolve('spring-sale') AS alias_url,
       shorturl.resolve('eTJtVg5') AS exhausted;
SELECT shorturl.flush() AS flushed;
SELECT l.code, c.visits FROM shorturl.links l JOIN shorturl.visit_counts c ON c.link_id = l.id ORDER BY l.id;
-- generated codes got the ids they were made from; the alias a fresh one
SELECT code, id, shorturl.decode_id(code) AS decoded, is_alias FROM shorturl.links ORDER BY id;
-- the quarantined alias is retired for good
SELECT code, domain FROM shorturl.retired_codes;
SELECT shorturl.shorten('https://evil.example.net/', alias => 'gone-alias');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- new links take the next ids, at the width 0.5 used
SELECT shorturl.decode_id(shorturl.shorten('https://example.com/new')) = currval('shorturl.link_id_seq') AS next_id;
SELECT widths, width_from FROM shorturl.code_key;

CREATE TEMP TABLE walked AS
SELECT pg_describe_object(classid, objid, objsubid) AS object
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl')
  -- (18 lists each table's row type too; a table stands for its row type)
  AND NOT (classid = 'pg_type'::regclass AND EXISTS (SELECT FROM pg_type t WHERE t.oid = objid AND t.typrelid <> 0))
  AND NOT (classid = 'pg_type'::regclass AND EXISTS (SELECT FROM pg_type t JOIN pg_type e ON e.oid = t.typelem
                                                     WHERE t.oid = objid AND e.typrelid <> 0));
DROP EXTENSION pg_shorturl;

-- the latest, directly
CREATE EXTENSION pg_shorturl;
CREATE TEMP TABLE direct AS
SELECT pg_describe_object(classid, objid, objsubid) AS object
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl')
  -- (18 lists each table's row type too; a table stands for its row type)
  AND NOT (classid = 'pg_type'::regclass AND EXISTS (SELECT FROM pg_type t WHERE t.oid = objid AND t.typrelid <> 0))
  AND NOT (classid = 'pg_type'::regclass AND EXISTS (SELECT FROM pg_type t JOIN pg_type e ON e.oid = t.typelem
                                                     WHERE t.oid = objid AND e.typrelid <> 0));

-- the same members either way
SELECT count(*) AS members FROM direct;
(SELECT object FROM walked EXCEPT SELECT object FROM direct)
UNION ALL
(SELECT object FROM direct EXCEPT SELECT object FROM walked);

-- and the same columns, constraints, defaults and privileges in every table
-- (the update rebuilds tables that a fresh install creates at once)
CREATE TEMP TABLE direct_shape AS
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS def, c.relacl::text AS acl
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relnamespace = 'shorturl'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped;
CREATE TEMP TABLE direct_constraints AS
SELECT conrelid::regclass::text AS rel, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
WHERE connamespace = 'shorturl'::regnamespace;
CREATE TEMP TABLE direct_indexes AS
SELECT indexrelid::regclass::text AS index, pg_get_indexdef(indexrelid) AS def FROM pg_index
WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'shorturl'::regnamespace);
DROP EXTENSION pg_shorturl;
CREATE EXTENSION pg_shorturl VERSION '0.5';
ALTER EXTENSION pg_shorturl UPDATE;
CREATE TEMP TABLE walked_shape AS
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS def, c.relacl::text AS acl
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relnamespace = 'shorturl'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped;
(SELECT relname, attname, type, attnotnull, def, acl FROM walked_shape
 EXCEPT SELECT relname, attname, type, attnotnull, def, acl FROM direct_shape)
UNION ALL
(SELECT relname, attname, type, attnotnull, def, acl FROM direct_shape
 EXCEPT SELECT relname, attname, type, attnotnull, def, acl FROM walked_shape);
-- constraints and indexes: the same definitions (names may differ only where
-- PostgreSQL numbers an unnamed CHECK)
(SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'shorturl'::regnamespace
 EXCEPT SELECT rel, def FROM direct_constraints)
UNION ALL
(SELECT rel, def FROM direct_constraints
 EXCEPT SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'shorturl'::regnamespace);
(SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'shorturl'::regnamespace)
 EXCEPT SELECT index, def FROM direct_indexes)
UNION ALL
(SELECT index, def FROM direct_indexes
 EXCEPT SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'shorturl'::regnamespace));
DROP EXTENSION pg_shorturl;

-- the members, for review when a version adds some
SELECT object FROM direct ORDER BY object;

-- A 0.5 shard: its coordinator made its generated codes with the
-- coordinator's key, and its own sequence issued none.  Its links take ids
-- in the negative range, from a hash of the code, so they meet neither
-- another shard's nor any id a 0.6 coordinator issues; counts carry over.
CREATE EXTENSION pg_shorturl VERSION '0.5';
INSERT INTO shorturl.links (code, url, visits, last_visit_at, is_alias)
VALUES ('f5JN1HB', 'https://example.com/s0', 7, now(), false),
       ('8JGNLpL', 'https://example.com/s1', 0, NULL, false),
       ('shard-alias', 'https://example.com/sa', 3, now(), true);
ALTER EXTENSION pg_shorturl UPDATE;
SELECT code, id = -1 - (shorturl.hash64(code) & 9223372036854775807) AS id_from_hash,
       shorturl.resolve(code) AS url, shorturl.visits(code) AS visits
FROM shorturl.links ORDER BY code;
DROP EXTENSION pg_shorturl;

-- A 0.5 coordinator cannot be updated in place; it is told how to move
-- (0A000), and stays as it was.
CREATE EXTENSION pg_shorturl VERSION '0.5';
SELECT shorturl.make_coordinator();
\set SHOW_CONTEXT never
ALTER EXTENSION pg_shorturl UPDATE;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT errors
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
DROP EXTENSION pg_shorturl CASCADE;
DROP EXTENSION dblink;
DROP EXTENSION postgres_fdw;
DROP SCHEMA shorturl_remote;

-- 0.6, the last version that landed, reaches 0.7 with ALTER EXTENSION
-- UPDATE: every link resolves with its count, shared-memory clicks not yet
-- flushed included, and the EXECUTE grants the application role had on
-- shorten() and reset_visits(), whose signatures grew, carry over.
CREATE ROLE regress_upgrade_app;
CREATE EXTENSION pg_shorturl VERSION '0.6';
SELECT shorturl.shorten('https://example.com/six', alias => 'six') AS code;
SELECT shorturl.shorten('https://example.com/limited', alias => 'limited', max_visits => 3) AS code;
SELECT shorturl.shorten('https://example.com/generated') AS generated \gset
SELECT shorturl.resolve('six') IS NOT NULL AS c1, shorturl.resolve('six') IS NOT NULL AS c2,
       shorturl.resolve('limited') IS NOT NULL AS c3, shorturl.resolve(:'generated') IS NOT NULL AS c4;
SELECT shorturl.flush() AS flushed;
-- clicks the update finds in shared memory
SELECT shorturl.resolve('six') IS NOT NULL AS c5, shorturl.resolve('limited') IS NOT NULL AS c6;
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean),
                          shorturl.reset_visits(text), shorturl.resolve(text)
      TO regress_upgrade_app;
-- one with grant option, who grants on; and PUBLIC
CREATE ROLE regress_upgrade_lead;
CREATE ROLE regress_upgrade_member;
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean)
      TO regress_upgrade_lead WITH GRANT OPTION;
SET ROLE regress_upgrade_lead;
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean) TO regress_upgrade_member;
RESET ROLE;
GRANT EXECUTE ON FUNCTION shorturl.reset_visits(text) TO PUBLIC;
CREATE TEMP TABLE acl_before AS
SELECT p.proname, a.grantor::regrole::text AS grantor, a.grantee, a.is_grantable
FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.pronamespace = 'shorturl'::regnamespace AND p.proname IN ('shorten', 'reset_visits');
-- the new library still runs on the 0.6 tables until the update
SELECT shorturl.shorten('https://example.com/before-update', alias => 'before-update') AS code;
ALTER EXTENSION pg_shorturl UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
SELECT CASE WHEN i.is_alias THEN i.code WHEN i.code = :'generated' THEN '(the generated one)' END AS code, i.status, i.visits, i.max_visits, i.owner, i.title, i.tags
FROM shorturl.links l, LATERAL shorturl.get_link(l.code) i ORDER BY l.id;
SELECT shorturl.resolve('limited') IS NOT NULL AS third, shorturl.resolve('limited') AS fourth;
SELECT has_function_privilege('regress_upgrade_app',
           'shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text)', 'EXECUTE') AS shorten,
       has_function_privilege('regress_upgrade_app', 'shorturl.reset_visits(text, text, text)', 'EXECUTE') AS reset_visits,
       has_function_privilege('public',
           'shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text)', 'EXECUTE') AS public_shorten;
SET ROLE regress_upgrade_app;
SELECT shorturl.shorten('https://example.com/after', alias => 'after', owner => 'app') AS code;
SELECT shorturl.reset_visits('six') AS had;
RESET ROLE;
-- every grant as it was: grantee, grantor and grant option
SELECT p.proname, CASE WHEN a.grantor = p.proowner THEN '(the owner)' ELSE a.grantor::regrole::text END AS grantor,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee, a.is_grantable
FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.pronamespace = 'shorturl'::regnamespace AND p.proname IN ('shorten', 'reset_visits')
  AND a.grantee <> p.proowner
ORDER BY 1, 3;
(SELECT proname, grantor, grantee, is_grantable FROM acl_before
 EXCEPT
 SELECT p.proname, a.grantor::regrole::text, a.grantee, a.is_grantable
 FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.pronamespace = 'shorturl'::regnamespace AND p.proname IN ('shorten', 'reset_visits'));
-- and they are the DBA's, not the extension's: the initial privileges are
-- a fresh install's, so pg_dump keeps the grants
SELECT p.proname, i.initprivs = (SELECT c.proacl FROM pg_proc c WHERE c.oid = p.oid) AS grants_are_initial,
       array_length(i.initprivs, 1) AS initial_entries
FROM pg_proc p JOIN pg_init_privs i ON i.objoid = p.oid AND i.classoid = 'pg_proc'::regclass
WHERE p.pronamespace = 'shorturl'::regnamespace AND p.proname IN ('shorten', 'reset_visits')
ORDER BY 1;
-- the helpers the update used are gone
SELECT count(*) AS helpers FROM pg_proc
WHERE pronamespace = 'shorturl'::regnamespace AND proname IN ('_acl_of', '_carry_grants');
DROP EXTENSION pg_shorturl;
DROP ROLE regress_upgrade_app, regress_upgrade_lead, regress_upgrade_member;

-- 0.7, the last version that landed, reaches 0.8 with ALTER EXTENSION
-- UPDATE: counts carry over, each link's earlier visits become one hour
-- of its series (the hour of its latest visit), clicks still in shared
-- memory are flushed into the series too, and the grants on
-- resolve(code, domain), whose signature grew, carry over.
CREATE ROLE regress_upgrade_app;
CREATE EXTENSION pg_shorturl VERSION '0.7';
SELECT shorturl.shorten('https://example.com/seven', alias => 'seven') AS code;
SELECT shorturl.shorten('https://example.com/never', alias => 'never') AS code;
SELECT count(shorturl.resolve('seven', NULL)) AS clicks FROM generate_series(1, 4);
SELECT shorturl.flush() >= 0 AS flushed;
-- clicks the update finds in shared memory
SELECT count(shorturl.resolve('seven')) AS clicks FROM generate_series(1, 3);
GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text) TO regress_upgrade_app WITH GRANT OPTION;
-- one role granted by two grantors keeps both grants
CREATE ROLE regress_upgrade_member;
GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text) TO regress_upgrade_member;
SET ROLE regress_upgrade_app;
GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text) TO regress_upgrade_member;
RESET ROLE;
-- the new library counts on the 0.7 tables until the update
SELECT shorturl.resolve('seven', NULL) IS NOT NULL AS before_update;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT count(shorturl.resolve('seven')) AS clicks FROM generate_series(1, 2);
ALTER EXTENSION pg_shorturl UPDATE TO '0.8';
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
SET shorturl.count_bots = on;
SELECT code, shorturl.visits(code) AS visits,
       (SELECT sum(visits) FROM shorturl.visit_series(code, NULL, NULL, 'hour')) AS series
FROM shorturl.links ORDER BY id;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT code, shorturl.visits(code) AS visits,
       (SELECT sum(visits) FROM shorturl.visit_series(code, NULL, NULL, 'hour')) AS series
FROM shorturl.links ORDER BY id;
RESET shorturl.count_bots;
SELECT has_function_privilege('regress_upgrade_app', 'shorturl.resolve(text, text, text, text, text, text)',
                              'EXECUTE WITH GRANT OPTION') AS carried,
       has_function_privilege('public', 'shorturl.resolve(text, text, text, text, text, text)', 'EXECUTE') AS public_exec;
SELECT CASE WHEN a.grantor = p.proowner THEN '(the owner)' ELSE a.grantor::regrole::text END AS grantor,
       a.grantee::regrole::text AS grantee, a.is_grantable
FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.oid = 'shorturl.resolve(text, text, text, text, text, text)'::regprocedure AND a.grantee <> p.proowner
ORDER BY 2, 1;
SET ROLE regress_upgrade_app;
SELECT shorturl.resolve('seven', NULL, referrer => 'https://news.example/', country => 'NL') AS url;
RESET ROLE;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT * FROM shorturl.visit_breakdown('seven', 'country');
SELECT pending_dimension_values, max_pending_dimensions > 0 AS sized FROM shorturl.stats;
DROP EXTENSION pg_shorturl;
DROP ROLE regress_upgrade_app, regress_upgrade_member;

-- 0.8, the last version that landed, reaches 0.9 with ALTER EXTENSION
-- UPDATE: links and counts carry over; resolve(code, domain, ...) and
-- link_status(code, domain), which gain a client, keep their grants; the
-- new library serves the 0.8 functions until the update (no blocklist
-- table yet: nothing is blocked).
CREATE ROLE regress_upgrade_app;
CREATE EXTENSION pg_shorturl VERSION '0.8';
SELECT shorturl.shorten('https://example.com/eight', alias => 'eight') AS code;
SELECT count(shorturl.resolve('eight', NULL, referrer => 'https://news.example/')) AS clicks
FROM generate_series(1, 3);
GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text, text, text, text, text) TO regress_upgrade_app;
GRANT EXECUTE ON FUNCTION shorturl.link_status(text, text) TO regress_upgrade_app WITH GRANT OPTION;
SELECT shorturl.resolve('eight', NULL) AS url, shorturl.link_status('eight', NULL) AS status;
ALTER EXTENSION pg_shorturl UPDATE TO '0.9';
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
SELECT shorturl.visits('eight') AS visits;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT shorturl.visits('eight') AS visits,
       (SELECT sum(visits) FROM shorturl.visit_series('eight', NULL, NULL, 'hour')) AS series;
SELECT has_function_privilege('regress_upgrade_app', 'shorturl.resolve(text, text, text, text, text, text, text)',
                              'EXECUTE') AS resolve_carried,
       has_function_privilege('regress_upgrade_app', 'shorturl.link_status(text, text, text)',
                              'EXECUTE WITH GRANT OPTION') AS status_carried,
       has_function_privilege('public', 'shorturl.resolve(text, text, text, text, text, text, text)',
                              'EXECUTE') AS public_resolve,
       has_function_privilege('public', 'shorturl.link_status(text, text, text)', 'EXECUTE') AS public_status;
SET ROLE regress_upgrade_app;
SELECT shorturl.resolve('eight', NULL, client => '192.0.2.1') AS url,
       shorturl.link_status('eight', NULL, '192.0.2.1') AS status;
RESET ROLE;
-- the blocklist works at once
INSERT INTO shorturl.blocked_hosts (pattern, reason) VALUES ('example.com', 'test');
SELECT shorturl.resolve('eight', NULL) AS url, shorturl.link_status('eight') AS status;
SELECT host_lookups_blocked > 0 AS blocked_counted, max_rate_keys > 0 AS sized
FROM shorturl.stats;
DROP EXTENSION pg_shorturl;
DROP ROLE regress_upgrade_app;

-- 0.9 reaches 0.10 with ALTER EXTENSION UPDATE: links, counts and the
-- blocklist carry over; the update adds metrics(), for pg_monitor and not
-- for PUBLIC, and it reports what the stats view says.
CREATE EXTENSION pg_shorturl VERSION '0.9';
SELECT shorturl.shorten('https://example.com/nine', alias => 'nine') AS code;
SELECT count(shorturl.resolve('nine')) AS clicks FROM generate_series(1, 4);
INSERT INTO shorturl.blocked_hosts (pattern, reason) VALUES ('blocked.example', 'test');
SELECT count(*) AS metrics_functions FROM pg_proc
WHERE proname = 'metrics' AND pronamespace = 'shorturl'::regnamespace;
ALTER EXTENSION pg_shorturl UPDATE TO '0.10';
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
SELECT shorturl.visits('nine') AS visits, shorturl.flush() >= 0 AS flushed, shorturl.visits('nine') AS after_flush;
SELECT pattern FROM shorturl.blocked_hosts;
SELECT has_function_privilege('public', 'shorturl.metrics()', 'EXECUTE') AS public_metrics,
       has_function_privilege('pg_monitor', 'shorturl.metrics()', 'EXECUTE') AS monitor_metrics;
-- the sample of flushed_visits equals the view's column
SELECT (regexp_match(shorturl.metrics(),
                     '\nshorturl_flushed_visits_total\{[^}]*\} ([0-9]+)\n'))[1]::bigint
       = (SELECT flushed_visits FROM shorturl.stats) AS metrics_agree;
DROP EXTENSION pg_shorturl;

-- 0.10 reaches 0.11 with ALTER EXTENSION UPDATE.  A library of 0.11 or
-- later serving a 0.10 schema finds no invalidation trigger, so it leaves
-- the cache alone; the update adds the triggers (firing always) and the
-- cache's columns of shorturl.stats, and an edit made after it is seen at
-- once by a link the cache holds.
CREATE EXTENSION pg_shorturl VERSION '0.10';
SELECT shorturl.shorten('https://example.com/ten', alias => 'ten') AS code;
SELECT count(shorturl.resolve('ten')) AS clicks FROM generate_series(1, 3);
ALTER EXTENSION pg_shorturl UPDATE TO '0.11';
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
SELECT tgname, tgenabled FROM pg_trigger
WHERE tgrelid = 'shorturl.links'::regclass AND tgname LIKE 'links_url_cache%' ORDER BY tgname;
SELECT has_function_privilege('public', 'shorturl._url_cache_invalidate()', 'EXECUTE') AS public_trigger_fn,
       has_function_privilege('public', 'shorturl._url_cache_reset()', 'EXECUTE') AS public_reset;
-- (the suite also runs without a cache: test/url_cache_off.conf)
SELECT coalesce(url_cache_fills, 0) AS fills_before, coalesce(url_cache_hits, 0) AS hits_before
FROM shorturl.stats \gset
SELECT shorturl.resolve('ten') AS url, shorturl.resolve('ten') AS cached;
SELECT url_cache_size IS NULL
       OR (url_cache_fills > :fills_before AND url_cache_hits > :hits_before) AS filled_and_hit
FROM shorturl.stats;
SELECT (shorturl.update_link('ten', '{"url": "https://example.com/ten-edited"}')).url AS edited;
SELECT shorturl.resolve('ten') AS url;
SELECT shorturl.visits('ten') AS visits;
-- the update also adds shorturl.copied_links, where a coordinator's
-- rebalance writes the count each copy carried: not PUBLIC's, dumped, and
-- forgotten by forget_arrived() with the arrival
SELECT has_table_privilege('public', 'shorturl.copied_links', 'SELECT') AS public_reads_copies,
       'shorturl.copied_links'::regclass = ANY (extconfig) AS dumped
FROM pg_extension WHERE extname = 'pg_shorturl';
INSERT INTO shorturl.copied_links (id, visits) VALUES (7001, 5), (7002, 0);
INSERT INTO shorturl.arrived_links (id) VALUES (7001);
SELECT shorturl.forget_arrived('{7001}') AS arrivals_forgotten;
SELECT array_agg(id) AS copies_left FROM shorturl.copied_links;
DROP EXTENSION pg_shorturl;

-- 0.11 reaches 0.12 with ALTER EXTENSION
-- UPDATE: shorturl.metrics() gains the URL cache's nine metrics, equal to
-- the columns of shorturl.stats (NaN where there is no cache), and keeps
-- its grants: pg_monitor's, not PUBLIC's.
CREATE EXTENSION pg_shorturl VERSION '0.11';
SELECT count(*) AS cache_metrics_before FROM regexp_split_to_table(shorturl.metrics(), E'\n') l
WHERE l LIKE 'shorturl\_url\_cache\_%{%';
ALTER EXTENSION pg_shorturl UPDATE TO '0.12';
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
-- (metrics checks every value against shorturl.stats; here, one)
SELECT count(*) AS cache_metrics,
       bool_and(v[1] <> 'shorturl_url_cache_size_bytes'
                OR v[2]::float8 = coalesce(s.url_cache_size::float8, 'NaN')) AS size_equals_stats
FROM shorturl.stats s, regexp_split_to_table(shorturl.metrics(), E'\n') l,
     regexp_match(l, '^(shorturl_url_cache_[a-z_]+)\{.*\} (.*)$') v
WHERE v IS NOT NULL;
SELECT has_function_privilege('public', 'shorturl.metrics()', 'EXECUTE') AS public_metrics,
       has_function_privilege('pg_monitor', 'shorturl.metrics()', 'EXECUTE') AS monitor_metrics,
       obj_description('shorturl.metrics()'::regprocedure, 'pg_proc') IS NOT NULL AS commented;
-- and a link deleted here, or moved away, takes its copy record along (a
-- stale one made a later rebalance take a wrong count): by a delete, by a
-- move_out(), by a TRUNCATE
SELECT shorturl.shorten('https://example.com/eleven-' || g, alias => 'eleven-' || g) AS code
FROM generate_series(1, 3) g;
INSERT INTO shorturl.copied_links (id, visits)
SELECT id, 3 FROM shorturl.links WHERE code LIKE 'eleven-%';
INSERT INTO shorturl.copied_links (id, visits) VALUES (7003, 1);
SELECT shorturl.delete_link('eleven-1') AS deleted,
       shorturl.move_out(ARRAY(SELECT id FROM shorturl.links WHERE code = 'eleven-2')) AS moved;
SELECT count(*) AS copies_left, count(*) FILTER (WHERE id = 7003) AS unrelated_left
FROM shorturl.copied_links;
TRUNCATE shorturl.links;
SELECT count(*) AS copies_after_truncate FROM shorturl.copied_links;
DROP EXTENSION pg_shorturl;

-- 0.12, the last version that landed, reaches 0.13 with ALTER EXTENSION
-- UPDATE: shorturl.standby_batches and the two functions a standby ships
-- its clicks with, none of them PUBLIC's; the stats view gains the
-- shipping's columns (NULL on a primary).  A batch applied once adds its
-- clicks to the counts and the series at once; sent again, it is a no-op.
CREATE EXTENSION pg_shorturl VERSION '0.12';
SELECT shorturl.shorten('https://example.com/twelve', alias => 'twelve') AS code;
SELECT count(shorturl.resolve('twelve')) AS clicks FROM generate_series(1, 2);
ALTER EXTENSION pg_shorturl UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl';
SELECT has_table_privilege('public', 'shorturl.standby_batches', 'SELECT') AS public_reads_batches,
       has_function_privilege('public', 'shorturl.apply_clicks(bigint, text, bigint, oid, bigint[], timestamptz[], bigint[], bigint[], timestamptz[], bigint[], date[], text[], text[], bigint[], bigint[], bigint[], date[], bigint[])', 'EXECUTE') AS public_applies,
       has_function_privilege('public', 'shorturl.shipped_seq(bigint, text)', 'EXECUTE') AS public_asks;
SELECT mode <> 'standby' AS primary_mode, unshipped_visits IS NULL AS no_unshipped,
       shipped_visits IS NULL AS no_shipped FROM shorturl.stats;
SELECT system_identifier AS sysid FROM pg_control_system() \gset
SELECT 'shorturl.links'::regclass::oid AS links \gset
SELECT shorturl.shipped_seq(:sysid, 'sb-upgrade') AS before_any;
SELECT shorturl.apply_clicks(:sysid, 'sb-upgrade', 1, :links,
         ARRAY[(SELECT id FROM shorturl.links WHERE code = 'twelve')],
         ARRAY[date_bin('1 hour', now(), '2000-01-01 00:00+00')], '{5}', '{1}', ARRAY[now()]) AS applied,
       shorturl.apply_clicks(:sysid, 'sb-upgrade', 1, :links,
         ARRAY[(SELECT id FROM shorturl.links WHERE code = 'twelve')],
         ARRAY[date_bin('1 hour', now(), '2000-01-01 00:00+00')], '{5}', '{1}', ARRAY[now()]) AS again;
SELECT shorturl.visits('twelve') AS visits, shorturl.shipped_seq(:sysid, 'sb-upgrade') AS last_seq;
DROP EXTENSION pg_shorturl;
