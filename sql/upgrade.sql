--
-- upgrade: every version installs and works, each update script applies on
-- top of the one before, and walking the chain from the first version gives
-- the same members as installing the latest directly.  (Today a direct
-- install also walks the chain; once a release ships a consolidated
-- pg_shorturl--X.sql, this comparison guards it against drifting.)
--
SELECT version, superuser, relocatable, schema FROM pg_available_extension_versions
WHERE name = 'pg_shorturl' ORDER BY version;

-- the chain from 0.1
CREATE EXTENSION pg_shorturl VERSION '0.1';
SELECT shorturl.base62_encode(3844);
ALTER EXTENSION pg_shorturl UPDATE TO '0.2';
SELECT shorturl.jump_hash(1::bigint, 10) BETWEEN 0 AND 9 AS routes;
ALTER EXTENSION pg_shorturl UPDATE TO '0.3';
SELECT length(shorturl.shorten('https://example.com/')) AS shortens;
ALTER EXTENSION pg_shorturl UPDATE TO '0.4';
SELECT shorturl.flush() >= 0 AS flushes;
ALTER EXTENSION pg_shorturl UPDATE TO '0.5';
-- links made before the update still resolve after it
SELECT shorturl.resolve(code) IS NOT NULL AS resolves FROM shorturl.links LIMIT 1;
ALTER EXTENSION pg_shorturl UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_shorturl') AS at_default
FROM pg_extension WHERE extname = 'pg_shorturl';

CREATE TEMP TABLE walked AS
SELECT pg_describe_object(classid, objid, objsubid) AS object
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl');
DROP EXTENSION pg_shorturl;

-- the latest, directly
CREATE EXTENSION pg_shorturl;
CREATE TEMP TABLE direct AS
SELECT pg_describe_object(classid, objid, objsubid) AS object
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl');

-- the same members either way
SELECT count(*) AS members FROM direct;
(SELECT object FROM walked EXCEPT SELECT object FROM direct)
UNION ALL
(SELECT object FROM direct EXCEPT SELECT object FROM walked);

-- the members, for review when a version adds some
SELECT object FROM direct ORDER BY object;

DROP EXTENSION pg_shorturl;
