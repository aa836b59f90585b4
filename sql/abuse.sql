--
-- abuse: rate_limit() (GCRA in shared memory), the guard against clients
-- scanning for codes in resolve() and link_status(), the host blocklist,
-- and per-owner quotas of shorten().  Labels and privileges first, then
-- bad input (the SQLSTATE is echoed after each expected error), then each
-- feature.  Limits use rates so slow (or so fast) that the time a test
-- takes changes no figure.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'

-- labels, security and a comment for every new function
SELECT p.oid::regprocedure AS function, p.provolatile AS vol, p.proisstrict AS strict,
       p.proparallel AS par, p.prosecdef AS secdef,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('rate_limit', 'resolve', 'link_status', '_host_pattern', '_url_blocked',
                    'hosts_changed', 'blocked_hosts_normalize', '_check_quota')
ORDER BY p.oid::regprocedure::text;
-- the blocklist is commented and not readable by PUBLIC
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented,
       bool_and(col_description(c.oid, a.attnum) IS NOT NULL) AS columns_commented,
       has_table_privilege('public', c.oid, 'SELECT') AS public_select
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = 'shorturl.blocked_hosts'::regclass
GROUP BY c.oid, c.relname;
-- the new settings, with their defaults
SELECT name, setting, unit, context FROM pg_settings
WHERE name IN ('shorturl.scan_limit', 'shorturl.scan_cooldown', 'shorturl.shorten_quota',
               'shorturl.rate_limit_when_full', 'shorturl.max_rate_keys')
ORDER BY name;

--
-- rate_limit(): bad input
--
-- a rate must be positive, finite and at most one token a nanosecond
SELECT * FROM shorturl.rate_limit('k', 0, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.rate_limit('k', 'NaN', 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.rate_limit('k', 2e9, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a burst must be positive and finite
SELECT * FROM shorturl.rate_limit('k', 1, -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.rate_limit('k', 1, 'Infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a cost may be 0, never negative, never more than the bucket holds
SELECT * FROM shorturl.rate_limit('k', 1, 1, -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.rate_limit('k', 1, 5, 6);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a bucket must refill within ten years, and not in less than a nanosecond
SELECT * FROM shorturl.rate_limit('k', 1e-9, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.rate_limit('k', 1e9, 0.1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- STRICT: a NULL argument gives NULL
SELECT * FROM shorturl.rate_limit(NULL, 1, 1);

--
-- rate_limit(): a bucket of 5 that refills once a day allows 5, then
-- refuses and says when the next token comes
--
SELECT i, r.allowed, r.remaining, r.retry_after > interval '23 hours 59 minutes' AS about_a_day
FROM generate_series(1, 7) i,
     LATERAL shorturl.rate_limit(CASE WHEN i > 0 THEN 'daily' END, 1.0 / 86400, 5) r;
-- a cost takes that many tokens; a cost of 0 only looks
SELECT allowed, remaining FROM shorturl.rate_limit('costly', 1.0 / 86400, 10, 4);
SELECT allowed, remaining FROM shorturl.rate_limit('costly', 1.0 / 86400, 10, 4);
SELECT allowed, remaining, retry_after > interval '1 day' AS over_a_day FROM shorturl.rate_limit('costly', 1.0 / 86400, 10, 4);
SELECT allowed, remaining FROM shorturl.rate_limit('costly', 1.0 / 86400, 10, 0);
-- keys are separate, and so are rate_limit() keys and the other kinds
SELECT allowed, remaining FROM shorturl.rate_limit('daily2', 1.0 / 86400, 5);
-- a fast bucket refills: 1,000,000 a second, 2 at once; 3 quick calls may
-- drain it, but after a millisecond it is full again
SELECT count(*) FILTER (WHERE r.allowed) >= 2 AS at_least_burst
FROM generate_series(1, 3) i,
     LATERAL shorturl.rate_limit(CASE WHEN i > 0 THEN 'fast' END, 1e6, 2) r;
SELECT pg_sleep(0.001);
SELECT allowed, remaining FROM shorturl.rate_limit('fast', 1e6, 2);
-- keys of any length take one entry each
SELECT allowed FROM shorturl.rate_limit(repeat('x', 100000), 1, 1);
SELECT allowed FROM shorturl.rate_limit(repeat('x', 100000), 1, 1);
-- it writes no WAL and takes no lock beyond the query's own: 10,000 calls on
-- 100 keys write less WAL than one record per call would (the server's
-- own background records may fall in the window), then the locks a
-- transaction holds after calls on new keys
CHECKPOINT;
SELECT pg_current_wal_insert_lsn() AS before \gset
SELECT count(*) FILTER (WHERE r.allowed) AS allowed
FROM generate_series(1, 10000) i, LATERAL shorturl.rate_limit('wal' || i % 100, 1e6, 1e6) r;
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'before') < 10000 AS no_wal_per_call;
BEGIN;
SELECT count(*) FROM generate_series(1, 10) i, LATERAL shorturl.rate_limit('lock' || i, 1, 1) r;
SELECT locktype, mode FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype <> 'virtualxid'
  AND NOT (locktype = 'relation' AND relation = 'pg_locks'::regclass);
COMMIT;
-- PUBLIC may not call it
CREATE ROLE regress_abuse_app;
SET ROLE regress_abuse_app;
SELECT * FROM shorturl.rate_limit('k', 1, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

--
-- The scan guard: with a client, unknown codes count as misses; past
-- shorturl.scan_limit a minute the client gets NULL and unknown for every
-- code, real ones included, for shorturl.scan_cooldown
--
SELECT shorturl.shorten('https://example.com/real', alias => 'real') AS code;
SET shorturl.scan_limit = 3;
SET shorturl.scan_cooldown = '2s';
-- three misses are allowed; the fourth blocks the client
SELECT i, shorturl.resolve('nope' || i, NULL, client => '192.0.2.7') AS url
FROM generate_series(1, 4) i;
SELECT shorturl.resolve('real', NULL, client => '192.0.2.7') AS blocked_client,
       shorturl.link_status('real', NULL, '192.0.2.7') AS blocked_status,
       shorturl.resolve('real', NULL, client => '192.0.2.8') AS other_client,
       shorturl.resolve('real') AS no_client;
SELECT scan_clients_blocked, scan_lookups_blocked FROM shorturl.stats;
-- misses count in link_status() too, and codes that cannot exist count
SELECT shorturl.link_status(c, NULL, '198.51.100.1') AS status
FROM unnest(ARRAY['x1', 'x2', 'bad code!', 'x4', 'real']) c;
-- the block ends after the cooldown
SELECT pg_sleep(2.1);
SELECT shorturl.resolve('real', NULL, client => '192.0.2.7') AS after_cooldown;
-- without a client nothing is counted, and 0 turns the guard off
SELECT count(shorturl.resolve('nope' || i, NULL)) FROM generate_series(1, 10) i;
SET shorturl.scan_limit = 0;
SELECT count(shorturl.resolve('nope' || i, NULL, client => '203.0.113.9')) AS found,
       shorturl.resolve('real', NULL, client => '203.0.113.9') AS still_served
FROM generate_series(1, 10) i;
RESET shorturl.scan_limit;
RESET shorturl.scan_cooldown;
-- the guard is a superuser's setting: a client cannot turn it off
SET ROLE regress_abuse_app;
SET shorturl.scan_limit = 0;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

--
-- The host blocklist
--
-- patterns are stored lower-case, without a final dot, internationalised
-- names in their xn-- form; anything else is refused
INSERT INTO shorturl.blocked_hosts (pattern, reason) VALUES
    ('Phish.Example.', 'phishing'), ('XN--Bcher-kva.example', 'test'), ('192.0.2.1', NULL), ('zip', 'the whole TLD');
SELECT pattern, reason FROM shorturl.blocked_hosts ORDER BY pattern;
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('https://evil.example/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('evil.example:8080');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a pattern that differs only in case is the same pattern
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('PHISH.example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- shorten() refuses a blocked host, its subdomains and any case, with the reason
SELECT shorturl.shorten('https://phish.example/login');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://WWW.Phish.Example./login');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://files.zip/a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://xn--bcher-kva.EXAMPLE/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://192.0.2.1:8080/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- every spelling of a blocked address is that address (decimal, octal,
-- hex and short IPv4 forms as browsers read them; IPv6 in any form, and
-- IPv4-mapped IPv6); extra final dots and a host too long to list change
-- nothing
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('127.0.0.1'), ('[0:0::1]');
SELECT pattern FROM shorturl.blocked_hosts WHERE pattern LIKE '%1%' ORDER BY 1;
SELECT shorturl.shorten('http://2130706433/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://0x7f000001/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://0177.0.0.1/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://127.1/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://[0:0:0:0:0:0:0:1]/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://[::ffff:127.0.0.1]/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://phish.example../');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('http://' || repeat('a.', 200) || 'phish.example/');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- patterns have no wildcards or empty labels
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('*.evil.example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('a..evil.example');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('..');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM shorturl.blocked_hosts WHERE pattern IN ('127.0.0.1', '[::1]');
-- a host that only ends like a pattern is not blocked, nor is an address
-- that ends like one
SELECT shorturl.shorten('https://notphish.example/', alias => 'near1') AS code;
SELECT shorturl.shorten('http://10.192.0.2.1/', alias => 'near2') AS code;
SELECT shorturl.shorten('https://zipper.example/', alias => 'near3') AS code;
-- update_link() refuses it too, and so does import_links()
SELECT code, url FROM shorturl.update_link('near1', '{"url": "https://a.phish.example/"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- links made before a pattern stop resolving once it is added
SELECT shorturl.shorten('https://later.example/a', alias => 'later') AS code;
SELECT shorturl.resolve('later') AS url, shorturl.link_status('later') AS status;
INSERT INTO shorturl.blocked_hosts (pattern, reason) VALUES ('later.example', 'reported');
SELECT shorturl.resolve('later') AS url, shorturl.link_status('later') AS status,
       shorturl.resolve('later', NULL, client => 'c1') AS with_client,
       (SELECT status FROM shorturl.get_link('later')) AS get_link_status;
-- a blocked link counts no visit: the one visit is the resolve before
SELECT shorturl.visits('later') AS visits;
SELECT host_lookups_blocked > 0 AS counted FROM shorturl.stats;
-- and resolve again when it is removed
DELETE FROM shorturl.blocked_hosts WHERE pattern = 'later.example';
SELECT shorturl.resolve('later') AS url, shorturl.link_status('later') AS status;
-- a change rolled back changes nothing
BEGIN;
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('later.example');
SELECT shorturl.link_status('later') AS in_transaction;
ROLLBACK;
SELECT shorturl.link_status('later') AS after_rollback;
-- TRUNCATE clears it
TRUNCATE shorturl.blocked_hosts;
SELECT shorturl.shorten('https://phish.example/ok-now', alias => 'phish') AS code;
-- disabled is reported before blocked
INSERT INTO shorturl.blocked_hosts (pattern) VALUES ('phish.example');
SELECT shorturl.disable_link('phish');
SELECT shorturl.link_status('phish') AS status;
-- PUBLIC can neither read nor change the list
SET ROLE regress_abuse_app;
SELECT count(*) FROM shorturl.blocked_hosts;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- short links may not point at this deployment's short domains
INSERT INTO shorturl.domains (domain) VALUES ('sho.rt');
SELECT shorturl.shorten('https://SHO.RT/abc');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://www.sho.rt/abc', alias => 'sub') AS subdomain_is_not_ours;
DELETE FROM shorturl.domains;

--
-- Quotas of shorten() per owner
--
SET shorturl.shorten_quota = '2/hour';
SELECT shorturl.shorten('https://example.com/q1', owner => 'alice') IS NOT NULL AS made;
SELECT shorturl.shorten('https://example.com/q2', owner => 'alice') IS NOT NULL AS made;
SELECT shorturl.shorten('https://example.com/q3', owner => 'alice');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the refused call made no link
SELECT count(*) FROM shorturl.links WHERE owner = 'alice';
-- a call refused for another reason takes nothing from the quota
SELECT shorturl.shorten('https://example.com/d1', owner => 'dave', alias => 'real');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(shorturl.shorten('https://example.com/d' || i, owner => 'dave')) AS made
FROM generate_series(2, 3) i;
-- another owner has a quota of its own; a call without an owner has none
SELECT shorturl.shorten('https://example.com/q1', owner => 'bob') IS NOT NULL AS made;
SELECT count(shorturl.shorten('https://example.com/n' || i)) FROM generate_series(1, 5) i;
-- reuse => true that hands out an existing link takes nothing
SELECT shorturl.shorten('https://example.com/q1', owner => 'alice', reuse => true) IS NOT NULL AS reused;
-- _check_quota() takes from the same bucket, for a coordinator
SELECT shorturl._check_quota('carol'), shorturl._check_quota('carol');
SELECT shorturl._check_quota('carol');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://example.com/c', owner => 'carol');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- bad settings are refused when set
SET shorturl.shorten_quota = '100';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET shorturl.shorten_quota = '0/hour';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET shorturl.shorten_quota = '5/fortnight';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET shorturl.shorten_quota = ' 10 / Minutes ';
SHOW shorturl.shorten_quota;
RESET shorturl.shorten_quota;
-- an owner cannot lift it
SET ROLE regress_abuse_app;
SET shorturl.shorten_quota = '';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

--
-- A full table of keys (this suite's server holds 1000): while no key
-- can be forgotten, new keys get what shorturl.rate_limit_when_full says;
-- once buckets are full again they are reclaimed
--
CREATE TEMP TABLE fill AS
SELECT i, (shorturl.rate_limit('fill' || i, 1, 1)).* FROM generate_series(1, 1100) i;
SELECT count(*) FILTER (WHERE remaining IS NULL) > 0 AS some_found_it_full,
       bool_and(allowed) FILTER (WHERE remaining IS NULL) IS FALSE AS refused_when_full
FROM fill;
SELECT rate_keys = max_rate_keys AS full_table, rate_keys_full > 0 AS counted FROM shorturl.stats;
SELECT allowed, remaining, retry_after FROM shorturl.rate_limit('one more', 1, 1);
SET shorturl.rate_limit_when_full = 'allow';
SELECT allowed, remaining, retry_after FROM shorturl.rate_limit('one more', 1, 1);
RESET shorturl.rate_limit_when_full;
-- a second later every bucket is full again, and a new key finds room
SELECT pg_sleep(1.1);
SELECT allowed, remaining FROM shorturl.rate_limit('one more', 1, 1);
SELECT rate_keys < max_rate_keys AS room_again, rate_keys_reclaimed > 0 AS reclaimed FROM shorturl.stats;

DROP EXTENSION pg_shorturl;
DROP ROLE regress_abuse_app;
