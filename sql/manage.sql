--
-- manage: owners, titles and tags; get_link, list_links, update_link,
-- disable_link, enable_link, delete_link and reset_visits, with and
-- without an owner; their labels, privileges, bad input (the SQLSTATE is
-- echoed after each expected error) and plans at a million links.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'
-- a known key, so that generated codes are the same on every run
SELECT shorturl.set_code_width(7) AS width;
UPDATE shorturl.code_key SET key = '\xfedcba98765432100123456789abcdef';

-- labels, security, pinned search_path and a comment for every function
SELECT p.oid::regprocedure AS function, p.provolatile AS vol, p.proisstrict AS strict,
       p.proparallel AS par, p.prosecdef AS secdef, p.proconfig AS config,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('shorten', 'get_link', 'list_links', 'update_link', 'disable_link',
                    'enable_link', 'delete_link', 'reset_visits', '_live_visits',
                    '_reset_link', '_check_url', '_check_meta', '_info', '_find', '_list_sql',
                    'import_links', '_import_link', '_check_alias')
ORDER BY p.oid::regprocedure::text;
SELECT obj_description('shorturl.link_info'::regtype, 'pg_type') IS NOT NULL AS type_commented;

--
-- shorten() with an owner, a title and tags
--
SELECT shorturl.shorten('https://example.com/a', alias => 'acme-a', owner => 'acme',
                        title => 'Spring sale', tags => ARRAY['sale', 'spring', 'sale']) AS code;
SELECT shorturl.shorten('https://example.com/b', alias => 'acme-b', owner => 'acme',
                        tags => ARRAY['spring']) AS code;
SELECT shorturl.shorten('https://example.com/c', alias => 'globex-c', owner => 'globex',
                        title => 'Globex home') AS code;
SELECT shorturl.shorten('https://example.com/d', alias => 'nobody-d') AS code;
-- tags are stored once each, in the order first given
SELECT code, owner, title, tags FROM shorturl.links ORDER BY code;

-- bad owners, titles and tags (22023, 22004 for a NULL tag, 2202E for a
-- two-dimensional array)
SELECT shorturl.shorten('https://example.com/', owner => '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', owner => repeat('o', 201));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', title => repeat('t', 501));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', title => E'line\nbreak');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', tags => ARRAY['ok', E'bad\u0085']);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', tags => ARRAY['ok', NULL]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', tags => ARRAY['']);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', tags => ARRAY[repeat('x', 65)]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', tags => ARRAY(SELECT 't' || i FROM generate_series(1, 33) i));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', tags => ARRAY[['a', 'b'], ['c', 'd']]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- 32 distinct tags are the most; 500 characters of title, 200 of owner too
SELECT length(shorturl.shorten('https://example.com/many', tags => ARRAY(SELECT 't' || (i % 32) FROM generate_series(1, 64) i)))
       > 0 AS ok;
SELECT length(shorturl.shorten('https://example.com/long', owner => repeat('é', 200), title => repeat('é', 500))) > 0 AS ok;
SELECT cardinality(tags) FROM shorturl.links WHERE url = 'https://example.com/many';

-- reuse => true finds only the same owner's link
SELECT shorturl.shorten('https://example.com/r', owner => 'acme', reuse => true)
     = shorturl.shorten('https://example.com/r', owner => 'acme', reuse => true) AS same_owner_reuses,
       shorturl.shorten('https://example.com/r', owner => 'globex', reuse => true)
    <> shorturl.shorten('https://example.com/r', owner => 'acme', reuse => true) AS other_owner_does_not,
       shorturl.shorten('https://example.com/r', reuse => true)
    <> shorturl.shorten('https://example.com/r', owner => 'acme', reuse => true) AS no_owner_does_not;

--
-- get_link
--
SELECT code, domain, url, status, visits, owner, title, tags, expires_at, max_visits,
       exhausted_at, disabled_at, disabled_reason, is_alias, created_at <= now() AS created
FROM shorturl.get_link('acme-a');
SELECT shorturl.resolve('acme-a') AS url;
SELECT code, visits, status FROM shorturl.get_link('acme-a', owner => 'acme');
-- another owner's link reads as unknown: no row, as for a code that does not exist
SELECT count(*) AS other_owner FROM shorturl.get_link('acme-a', owner => 'globex');
SELECT count(*) AS unknown FROM shorturl.get_link('no-such-code');
SELECT count(*) AS null_code FROM shorturl.get_link(NULL);

--
-- list_links: keyset pagination in code order
--
SELECT code, owner, visits FROM shorturl.list_links(owner => 'acme');
SELECT code FROM shorturl.list_links(tag => 'spring');
SELECT code FROM shorturl.list_links(owner => 'acme', tag => 'sale');
SELECT code FROM shorturl.list_links(search => 'GLOBEX');
SELECT code FROM shorturl.list_links(search => 'example.com/d');
-- pages of two, each after the last code of the one before
SELECT string_agg(code, ' ' ORDER BY code) AS page1 FROM shorturl.list_links(search => '-', lim => 2);
SELECT string_agg(code, ' ' ORDER BY code) AS page2 FROM shorturl.list_links(search => '-', after => 'acme-b', lim => 2);
SELECT string_agg(code, ' ' ORDER BY code) AS page3 FROM shorturl.list_links(search => '-', after => 'nobody-d', lim => 2);
SELECT count(*) AS other_owner_tag FROM shorturl.list_links(owner => 'globex', tag => 'spring');
SELECT * FROM shorturl.list_links(lim => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.list_links(lim => 1001);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.list_links(lim => NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

--
-- update_link: PATCH semantics
--
SELECT code, url, title, tags FROM shorturl.update_link('acme-a', '{"url": "https://example.com/a2", "title": null}');
SELECT shorturl.resolve('acme-a') AS new_url;
-- absent keys keep their fields; tags are replaced, stored once each
SELECT code, url, title, tags FROM shorturl.update_link('acme-a', '{"tags": ["x", "y", "x"]}');
SELECT code, tags FROM shorturl.update_link('acme-a', '{"tags": null, "title": "Back"}');
-- no tags is NULL, however it is written
SELECT tags FROM shorturl.update_link('acme-a', '{"tags": []}');
-- an internationalised host is stored in its ASCII form, as by shorten()
SELECT url FROM shorturl.update_link('acme-a', '{"url": "https://bücher.example/"}');
-- expiry: set, then cleared
SELECT status, expires_at > now() AS later FROM shorturl.update_link('acme-b', '{"expires_at": "2999-01-01T00:00:00Z"}');
SELECT status, expires_at FROM shorturl.update_link('acme-b', '{"expires_at": null}');
-- another owner's link: no row, and nothing changes
SELECT count(*) AS other_owner FROM shorturl.update_link('acme-a', '{"title": "pwned"}', owner => 'globex');
SELECT count(*) AS unknown FROM shorturl.update_link('no-such-code', '{"title": "x"}');
SELECT title FROM shorturl.links WHERE code = 'acme-a';
-- bad patches
SELECT * FROM shorturl.update_link('acme-a', '{"url": "javascript:alert(1)"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"url": null}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"code": "x"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '[1]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT * FROM shorturl.update_link('acme-a', '{"expires_at": "2001-01-01"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT * FROM shorturl.update_link('acme-a', '{"expires_at": "soon"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"expires_at": 5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"max_visits": 0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"max_visits": 1.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"max_visits": "3"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"max_visits": 99999999999999999999}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"title": 7}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"title": ""}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"tags": ["a", 1]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('acme-a', '{"tags": "a"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- max_visits below the count makes the link exhausted, never negative;
-- raising it gives the visits back; clearing it lifts the limit
SELECT shorturl.resolve('acme-b') IS NOT NULL AS v1, shorturl.resolve('acme-b') IS NOT NULL AS v2,
       shorturl.resolve('acme-b') IS NOT NULL AS v3;
SELECT status, visits, max_visits, exhausted_at IS NOT NULL AS exhausted
FROM shorturl.update_link('acme-b', '{"max_visits": 2}');
SELECT shorturl.resolve('acme-b') AS refused, shorturl.link_status('acme-b') AS status,
       shorturl.visits('acme-b') AS visits;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT exhausted_at IS NOT NULL AS still_exhausted FROM shorturl.links WHERE code = 'acme-b';
SELECT status, visits, exhausted_at FROM shorturl.update_link('acme-b', '{"max_visits": 4}');
SELECT shorturl.resolve('acme-b') IS NOT NULL AS fourth, shorturl.resolve('acme-b') AS fifth;
-- the flush marks it exhausted now that the count reached the new limit
SELECT shorturl.flush() >= 0 AS flushed;
SELECT exhausted_at IS NOT NULL AS exhausted FROM shorturl.links WHERE code = 'acme-b';
SELECT status, visits, max_visits, exhausted_at FROM shorturl.update_link('acme-b', '{"max_visits": null}');
SELECT shorturl.resolve('acme-b') IS NOT NULL AS unlimited;
-- a limit raised after its clicks reached the old one, before a flush: the
-- flush must not mark the link exhausted against the new limit
SELECT shorturl.shorten('https://example.com/once', alias => 'once', max_visits => 1) AS code;
SELECT shorturl.resolve('once') IS NOT NULL AS served;
SELECT status FROM shorturl.update_link('once', '{"max_visits": 10}');
SELECT shorturl.flush() >= 0 AS flushed;
SELECT exhausted_at, shorturl.link_status('once') AS status FROM shorturl.links WHERE code = 'once';

-- a reset and an edit in one transaction: the edit sees the count the
-- reset leaves, so the link is not marked exhausted
SELECT shorturl.shorten('https://example.com/re', alias => 'reset-edit', max_visits => 2) AS code;
SELECT shorturl.resolve('reset-edit') IS NOT NULL AS v1, shorturl.resolve('reset-edit') IS NOT NULL AS v2;
BEGIN;
SELECT shorturl.reset_visits('reset-edit') AS had;
SELECT shorturl.resolve('reset-edit') IS NOT NULL AS after_reset;
SELECT status, visits, exhausted_at FROM shorturl.update_link('reset-edit', '{"title": "edited"}');
COMMIT;
SELECT exhausted_at, shorturl.link_status('reset-edit') AS status, shorturl.visits('reset-edit') AS visits
FROM shorturl.links WHERE code = 'reset-edit';
-- max_visits is a whole number however it is written
SELECT max_visits FROM shorturl.update_link('reset-edit', '{"max_visits": 1.0}');
SELECT max_visits FROM shorturl.update_link('reset-edit', '{"max_visits": 1e2}');
SELECT max_visits FROM shorturl.update_link('reset-edit', '{"max_visits": 100e-2}');

--
-- disable_link and enable_link
--
SELECT shorturl.disable_link('globex-c', 'phishing report #12') AS disabled;
SELECT shorturl.resolve('globex-c') AS url, shorturl.link_status('globex-c') AS status;
SELECT status, disabled_reason, disabled_at IS NOT NULL AS since FROM shorturl.get_link('globex-c');
-- disabling again keeps the first time, takes the new reason
SELECT shorturl.disable_link('globex-c', 'confirmed') AS again;
SELECT disabled_reason FROM shorturl.links WHERE code = 'globex-c';
SELECT shorturl.enable_link('globex-c', owner => 'acme') AS other_owner,
       shorturl.link_status('globex-c') AS status;
SELECT shorturl.enable_link('globex-c', owner => 'globex') AS enabled;
SELECT shorturl.resolve('globex-c') AS url;
SELECT disabled_at, disabled_reason FROM shorturl.links WHERE code = 'globex-c';
SELECT shorturl.disable_link('no-such-code') AS unknown, shorturl.enable_link('no-such-code') AS unknown,
       shorturl.disable_link('acme-a', owner => 'globex') AS other_owner;

--
-- reset_visits with an owner
--
SELECT shorturl.visits('globex-c') AS before;
SELECT shorturl.reset_visits('globex-c', owner => 'acme') AS other_owner;
SELECT shorturl.reset_visits('globex-c', owner => 'globex') AS had, shorturl.visits('globex-c') AS now;
SELECT shorturl.reset_visits('no-such-code') AS unknown;

--
-- delete_link
--
SELECT shorturl.delete_link('acme-b', owner => 'globex') AS other_owner;
SELECT shorturl.delete_link('acme-b', owner => 'acme') AS deleted;
SELECT shorturl.delete_link('acme-b') AS again;
SELECT shorturl.resolve('acme-b') AS url, shorturl.link_status('acme-b') AS status;
-- its code is never issued again
SELECT shorturl.shorten('https://evil.example.net/', alias => 'acme-b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a generated code's too: the sequence has passed its id
SELECT shorturl.shorten('https://example.com/gen', owner => 'acme') AS gen \gset
SELECT shorturl.delete_link(:'gen') AS deleted;
SELECT shorturl.shorten('https://example.com/next', alias => :'gen');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

--
-- Privileges: an application role with EXECUTE on the API, and no table
-- privilege, manages its links; PUBLIC may call none of it.
--
CREATE ROLE regress_manage_app;
SET ROLE regress_manage_app;
SELECT * FROM shorturl.get_link('acme-a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl._live_visits(1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text),
                          shorturl.get_link(text, text, text), shorturl.list_links(text, text, text, text, integer, text),
                          shorturl.update_link(text, jsonb, text, text), shorturl.disable_link(text, text, text, text),
                          shorturl.enable_link(text, text, text), shorturl.delete_link(text, text, text),
                          shorturl.reset_visits(text, text, text)
      TO regress_manage_app;
SET ROLE regress_manage_app;
SELECT shorturl.shorten('https://example.com/app', alias => 'app-1', owner => 'initech') AS code;
SELECT code, title FROM shorturl.update_link('app-1', '{"title": "App"}', owner => 'initech');
SELECT code, status FROM shorturl.list_links(owner => 'initech');
SELECT shorturl.disable_link('app-1', owner => 'initech') AS disabled,
       shorturl.delete_link('app-1', owner => 'initech') AS deleted;
-- the helpers stay out of reach
SELECT shorturl._reset_link(1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl._find('acme-a', NULL, NULL, false);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM shorturl.links;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT p.proname FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND has_function_privilege('public', p.oid, 'EXECUTE')
  AND p.proname IN ('get_link', 'list_links', 'update_link', 'disable_link', 'enable_link',
                    'delete_link', 'reset_visits', '_live_visits', '_reset_link', '_check_url',
                    '_check_meta', '_info', '_find', '_list_sql', 'import_links', '_import_link',
                    '_check_alias')
ORDER BY 1;
DROP OWNED BY regress_manage_app;
DROP ROLE regress_manage_app;

--
-- Short domains
--
INSERT INTO shorturl.domains (domain) VALUES ('go.example'), ('acme.link');
-- a host name in lower-case ASCII (23514)
\set VERBOSITY terse
INSERT INTO shorturl.domains (domain) VALUES ('Go.Example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.domains (domain) VALUES ('localhost');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.domains (domain) VALUES ('bad_host.example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- an alias is unique per domain
SELECT shorturl.shorten('https://example.com/go-sale', alias => 'sale', domain => 'go.example') AS go,
       shorturl.shorten('https://example.com/acme-sale', alias => 'sale', domain => 'ACME.link') AS acme,
       shorturl.shorten('https://example.com/default-sale', alias => 'sale') AS default_domain,
       shorturl.shorten('https://example.com/default-sale', alias => 'sale', domain => '', reuse => true) AS empty_is_default;
SELECT shorturl.shorten('https://example.com/other', alias => 'sale', domain => 'go.example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', domain => 'unknown.example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT code, domain, url FROM shorturl.links WHERE code = 'sale' ORDER BY domain;
-- resolve, link_status and visits on a domain (compared in lower case); NULL
-- or '' is the default one
SELECT shorturl.resolve('sale', 'go.example') AS go, shorturl.resolve('sale', 'Acme.Link') AS acme,
       shorturl.resolve('sale', NULL) AS null_domain, shorturl.resolve('sale', '') AS empty_domain,
       shorturl.resolve('sale') AS one_argument;
SELECT shorturl.resolve('sale', 'unknown.example') AS unknown, shorturl.resolve(NULL, 'go.example') AS null_code,
       shorturl.link_status('sale', 'unknown.example') AS status, shorturl.visits('sale', 'unknown.example') AS visits;
SELECT shorturl.link_status('sale', 'go.example') AS status, shorturl.visits('sale', 'go.example') AS go_visits,
       shorturl.visits('sale', 'acme.link') AS acme_visits, shorturl.visits('sale') AS default_visits;
-- generated codes are unique across all domains
SELECT shorturl.shorten('https://example.com/gen-go', domain => 'go.example') AS gen_go \gset
SELECT shorturl.shorten('https://example.com/x', alias => :'gen_go', domain => 'acme.link');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- reuse looks on the domain asked for only
SELECT shorturl.shorten('https://example.com/gen-go', domain => 'go.example', reuse => true) = :'gen_go' AS reused,
       shorturl.shorten('https://example.com/gen-go', reuse => true) <> :'gen_go' AS not_on_default;
-- management on a domain
SELECT code, domain, url FROM shorturl.get_link('sale', domain => 'go.example');
SELECT count(*) AS default_domain_link FROM shorturl.get_link(:'gen_go');
SELECT code, domain FROM shorturl.list_links(domain => 'GO.example');
SELECT code, domain, title FROM shorturl.update_link('sale', '{"title": "Go sale"}', domain => 'go.example');
SELECT shorturl.disable_link('sale', 'gone', domain => 'acme.link') AS disabled;
SELECT shorturl.resolve('sale', 'acme.link') AS acme, shorturl.resolve('sale', 'go.example') AS go;
SELECT shorturl.delete_link('sale', domain => 'acme.link') AS deleted;
-- the alias is retired on that domain only
SELECT shorturl.shorten('https://example.com/again', alias => 'sale', domain => 'acme.link');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.resolve('sale', 'go.example') AS go, shorturl.resolve('sale') AS default_domain;
-- a domain with links cannot go (23503); one without can
DELETE FROM shorturl.domains WHERE domain = 'go.example';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE shorturl.domains SET domain = 'go2.example' WHERE domain = 'go.example';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
TRUNCATE shorturl.domains;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM shorturl.domains WHERE domain = 'acme.link';
SELECT domain FROM shorturl.domains;

--
-- import_links: links of another shortener, as aliases with their counts
--
CREATE TABLE import_src (code text, url text, created_at timestamptz, visits bigint,
                         owner text, tags text[], domain text);
INSERT INTO import_src VALUES
    ('yourls-1', 'https://example.com/y1', '2020-01-01', 42, 'acme', ARRAY['imported', 'yourls'], NULL),
    ('yourls-2', 'https://bücher.example/y2', '2020-01-02', 0, NULL, NULL, ''),
    ('yourls-1', 'https://example.com/y1-again', '2020-01-03', 5, NULL, NULL, NULL),
    ('bad code', 'https://example.com/b', '2020-01-04', 1, NULL, NULL, NULL),
    ('bad-url', 'ftp://example.com/', '2020-01-05', 1, NULL, NULL, NULL),
    ('acme-a', 'https://example.com/not-acme', '2020-01-06', 1, NULL, NULL, NULL),
    ('admin', 'https://example.com/admin', '2020-01-07', 1, NULL, NULL, NULL),
    ('acme-b', 'https://example.com/was-deleted', '2020-01-08', 1, NULL, NULL, NULL),
    ('neg', 'https://example.com/neg', '2020-01-09', -1, NULL, NULL, NULL),
    ('huge', 'https://example.com/huge', '2020-01-09', 9223372036854775807, NULL, NULL, NULL),
    ('dom', 'https://example.com/dom', '2020-01-10', 1, NULL, NULL, 'Go.Example'),
    ('dom', 'https://example.com/dom', '2020-01-10 12:00', 1, NULL, NULL, 'nowhere.example'),
    ('bad-tag', 'https://example.com/t', '2020-01-11', 1, NULL, ARRAY[''], NULL),
    (NULL, 'https://example.com/null', '2020-01-12', 1, NULL, NULL, NULL),
    (:'gen', 'https://example.com/issued', '2020-01-13', 1, NULL, NULL, NULL);
SELECT * FROM shorturl.import_links('import_src');
SELECT code, url, visits, owner, tags, created_at = '2020-01-01' AS created_kept, is_alias
FROM shorturl.get_link('yourls-1');
SELECT code, url, visits FROM shorturl.get_link('yourls-2');
SELECT shorturl.resolve('yourls-1') AS url, shorturl.visits('yourls-1') AS visits;
-- a second run imports nothing new
SELECT outcome, count(*) FROM shorturl.import_links('import_src') GROUP BY 1 ORDER BY 1;
SELECT shorturl.visits('yourls-1') AS visits;
-- the source must have the columns; import reads it with the caller's rights
CREATE TABLE import_bad (code text, url text);
SELECT * FROM shorturl.import_links('import_bad');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE ROLE regress_importer;
GRANT EXECUTE ON FUNCTION shorturl.import_links(regclass),
    shorturl._import_link(text, text, timestamptz, bigint, timestamptz, text, text, text[], text, bigint, boolean)
    TO regress_importer;
SET ROLE regress_importer;
\set VERBOSITY terse
SELECT * FROM shorturl.import_links('import_src');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
DROP OWNED BY regress_importer;
DROP ROLE regress_importer;
-- 100,000 rows: every code and count is kept, and a second run changes nothing
CREATE TABLE import_big AS
SELECT 'imp-' || i AS code, 'https://example.com/imported/' || i AS url,
       timestamptz '2021-01-01' + i * interval '1 minute' AS created_at, (i % 1000)::bigint AS visits
FROM generate_series(1, 100000) i;
SELECT outcome, count(*) FROM shorturl.import_links('import_big') GROUP BY 1 ORDER BY 1;
SELECT count(*) AS kept FROM import_big s JOIN shorturl.links l
    ON l.code = s.code AND l.domain = '' AND l.url = s.url AND l.created_at = s.created_at AND l.is_alias
WHERE shorturl._live_visits(l.id) = s.visits;
SELECT outcome, count(*) FROM shorturl.import_links('import_big') GROUP BY 1 ORDER BY 1;
SELECT sum(shorturl._live_visits(l.id)) = (SELECT sum(visits) FROM import_big) AS counts_once
FROM shorturl.links l WHERE l.code LIKE 'imp-%';
DROP TABLE import_src, import_bad, import_big;

--
-- Plans at a million links: each listing walks an index in code order, or
-- finds a tag's links through GIN; get_link probes links_code_key.  The
-- query text is the one list_links() builds (_list_sql).
--
SET client_min_messages = warning;
TRUNCATE shorturl.links;
RESET client_min_messages;
INSERT INTO shorturl.links (id, code, url, owner, tags)
SELECT i, 'c' || i, 'https://example.com/' || i, 'owner' || (i % 1000),
       CASE WHEN i % 10000 = 0 THEN ARRAY['rare'] END
FROM generate_series(1, 1000000) i;
ANALYZE shorturl.links;
INSERT INTO shorturl.links (id, code, domain, url)
SELECT 2000000 + i, 'g' || i, 'go.example', 'https://example.com/go/' || i
FROM generate_series(1, 1000) i;
ANALYZE shorturl.links;
SELECT shorturl._list_sql(false, false, false, false) AS q \gset
PREPARE all_links(text, text, text, text, integer, text) AS :q;
EXPLAIN (COSTS OFF) EXECUTE all_links(NULL, NULL, NULL, NULL, 100, '');
EXPLAIN (COSTS OFF) EXECUTE all_links(NULL, NULL, NULL, NULL, 100, 'go.example');
SELECT shorturl._list_sql(true, false, false, true) AS q \gset
PREPARE owner_links(text, text, text, text, integer, text) AS :q;
EXPLAIN (COSTS OFF) EXECUTE owner_links('owner7', NULL, NULL, 'c5', 100, '');
SELECT shorturl._list_sql(false, true, false, false) AS q \gset
PREPARE tag_links(text, text, text, text, integer, text) AS :q;
EXPLAIN (COSTS OFF) EXECUTE tag_links(NULL, 'rare', NULL, NULL, 100, '');
SELECT count(*) AS pages_agree FROM (
    SELECT code FROM shorturl.list_links(owner => 'owner7', after => 'c5', lim => 5)
    INTERSECT
    SELECT code FROM shorturl.links WHERE owner = 'owner7' AND code > 'c5' ORDER BY code LIMIT 5) s;
SELECT count(*) AS rare FROM shorturl.list_links(tag => 'rare', lim => 1000);
-- get_link() and the others find a link as _find() does, with a generic plan
SET plan_cache_mode = force_generic_plan;
PREPARE find(text, text, text) AS
SELECT * FROM shorturl.links k
WHERE k.code = $1 AND k.domain = lower(coalesce($3, '')) AND ($2 IS NULL OR k.owner = $2);
EXPLAIN (COSTS OFF) EXECUTE find('c42', 'owner42', NULL);
RESET plan_cache_mode;
SET client_min_messages = warning;
TRUNCATE shorturl.links;
RESET client_min_messages;

DROP EXTENSION pg_shorturl;

-- Labels are checked as characters in any server encoding: in LATIN1, byte
-- 0x85 is the C1 control NEL, and a character of two UTF-8 bytes is one.
SET client_min_messages = warning;
CREATE DATABASE regress_manage_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
RESET client_min_messages;
\c regress_manage_latin1
CREATE EXTENSION pg_shorturl;
SELECT shorturl.shorten('https://example.com/', title => 'x' || chr(133));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/', title => repeat(chr(176), 501));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT length(shorturl.shorten('https://example.com/', title => repeat(chr(176), 500), owner => repeat(chr(233), 200))) > 0 AS ok;
\c contrib_regression
SET client_min_messages = warning;
DROP DATABASE regress_manage_latin1;
RESET client_min_messages;
