-- scripts/demo.sql: the walk-through scripts/demo.sh runs on the demo server.
-- It can run again and again: it only adds links.
\pset footer off
\set ON_ERROR_STOP 1

\echo
\echo '--- base62: ids to short codes and back (alphabet 0-9A-Za-z) ---'
SELECT n AS id, shorturl.base62_encode(n) AS code, shorturl.base62_encode(n, 7) AS code_width_7,
       shorturl.base62_decode(shorturl.base62_encode(n, 7)) AS decoded
FROM (VALUES (0::bigint), (61), (62), (3844), (1000000007), (9223372036854775807)) AS t(n);

\echo '--- a bad code is refused with the character and its position ---'
\set ON_ERROR_STOP 0
SELECT shorturl.base62_decode('abc-12');
\set ON_ERROR_STOP 1

\echo
\echo '--- shard routing: the public hash, mod, jump, and a weighted map ---'
SELECT k AS key, shorturl.hash64(k) AS hash64, shorturl.shard_mod(k, 16) AS mod_16,
       shorturl.jump_hash(k, 16) AS jump_16,
       shorturl.route(k, '{alpha,bravo,charlie}', '{1,1,2}') AS route_1_1_2
FROM (VALUES (''), ('abc'), ('aZ3kP9q')) AS t(k);
\echo 'shares of 300,000 keys under weights 1/1/2:'
SELECT r AS shard, round(100.0 * count(*) / 300000, 2) AS percent
FROM (SELECT shorturl.route(i, '{alpha,bravo,charlie}', '{1,1,2}') AS r
      FROM generate_series(1, 300000) i) s
GROUP BY r ORDER BY r;
\echo 'adding shard delta (weight 1) moves keys only to delta:'
SELECT shorturl.route(i, '{alpha,bravo,charlie}', '{1,1,2}') AS before,
       shorturl.route(i, '{alpha,bravo,charlie,delta}', '{1,1,2,1}') AS after,
       count(*) AS keys
FROM generate_series(1, 300000) i
GROUP BY 1, 2 HAVING shorturl.route(i, '{alpha,bravo,charlie}', '{1,1,2}')
                  <> shorturl.route(i, '{alpha,bravo,charlie,delta}', '{1,1,2,1}')
ORDER BY 1;

\echo
\echo '--- the links store: consecutive links get unrelated codes ---'
SELECT n, shorturl.shorten('https://example.com/article/' || n) AS code
FROM generate_series(1, 5) n;
\echo 'an alias, a link that expires, a one-time link (reuse => true makes these idempotent):'
SELECT shorturl.shorten('https://example.com/spring-sale', alias => 'spring-sale', reuse => true) AS alias,
       shorturl.shorten('https://example.com/offer', expires_at => date_trunc('day', now()) + interval '30 days', reuse => true) AS expiring,
       shorturl.shorten('https://example.com/secret', max_visits => 1) AS one_time \gset
SELECT :'alias' AS alias, :'expiring' AS expiring, :'one_time' AS one_time;
\echo 'resolving the one-time link twice: the second time it is gone'
SELECT shorturl.resolve(:'one_time') AS first_resolve;
SELECT shorturl.resolve(:'one_time') AS second_resolve, shorturl.link_status(:'one_time') AS status;
\echo 'bad input is refused with the rule that failed:'
\set ON_ERROR_STOP 0
SELECT shorturl.shorten('javascript:alert(1)');
SELECT shorturl.shorten('https://example.com/', alias => 'admin');
\set ON_ERROR_STOP 1
SELECT shorturl.resolve('favicon.ico') AS arbitrary_path, shorturl.link_status('nosuchcode') AS status;
\echo 'look-alike hosts and hidden characters are refused too:'
\set ON_ERROR_STOP 0
SELECT shorturl.shorten('https://good.example:443@evil.example/');
SELECT shorturl.shorten(U&'https://p\0430ypal.com/');
\set ON_ERROR_STOP 1
\echo 'a code once issued is never issued again, even after its link is deleted:'
SELECT shorturl.shorten('https://example.com/old', max_visits => 1) AS old_code \gset
DELETE FROM shorturl.links WHERE code = :'old_code';
\set ON_ERROR_STOP 0
SELECT shorturl.shorten('https://evil.example/', alias => :'old_code');
\set ON_ERROR_STOP 1

\echo
\echo '--- click counters: 10,000 clicks in shared memory, no WAL, then one flush ---'
SELECT pg_current_wal_lsn() AS lsn_before \gset
SELECT count(shorturl.resolve('spring-sale')) AS clicks FROM generate_series(1, 10000);
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :'lsn_before') AS wal_bytes_for_10000_clicks,
       shorturl.visits('spring-sale') AS live_visits,
       coalesce((SELECT c.visits FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
                 WHERE l.code = 'spring-sale'), 0) AS in_table;
SELECT shorturl.flush() AS flushed;
SELECT shorturl.visits('spring-sale') AS live_visits,
       (SELECT c.visits FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
        WHERE l.code = 'spring-sale') AS in_table;
SELECT mode, pending_links, pending_visits, flushes, flushed_visits, worker_pid IS NOT NULL AS worker_running
FROM shorturl.stats;

\echo
\echo '--- the URL cache: hot links answered from shared memory, and never stale ---'
SELECT shorturl.shorten('https://example.com/cache-demo') AS cached_code \gset
SELECT coalesce(url_cache_hits, 0) AS hits_before, coalesce(url_cache_misses, 0) AS misses_before
FROM shorturl.stats \gset
SELECT count(shorturl.resolve(:'cached_code')) AS lookups FROM generate_series(1, 1000);
-- (without a cache, shorturl.url_cache_size = 0, its figures are NULL)
SELECT url_cache_hits - :hits_before AS hits, url_cache_misses - :misses_before AS misses,
       url_cache_entries AS entries, pg_size_pretty(url_cache_size) AS cache_size
FROM shorturl.stats;
\echo 'an edit is seen by the next statement, with no invalidation code in the application:'
SELECT url FROM shorturl.update_link(:'cached_code', '{"url": "https://example.com/cache-demo-edited"}');
SELECT shorturl.resolve(:'cached_code') AS resolves_to;
\echo 'and Prometheus sees the hit rate (shorturl.metrics(), or postgres_exporter):'
SELECT l AS metric FROM regexp_split_to_table(shorturl.metrics(), E'\n') l
WHERE l ~ '^shorturl_url_cache_(hits|misses)_total';

\echo
\echo '--- managing links: an owner, an edit with PATCH semantics, a takedown, a QR code ---'
SELECT shorturl.shorten('https://example.com/team', owner => 'acme', title => 'Team page',
                        tags => ARRAY['about']) AS team \gset
SELECT code, url, status, title, tags
FROM shorturl.update_link(:'team', '{"url": "https://example.com/team-2026", "tags": ["about", "2026"]}',
                          owner => 'acme');
SELECT shorturl.resolve(:'team') AS resolves_to;
\echo 'another tenant cannot see it, change it or learn that it exists:'
SELECT count(*) AS globex_sees, shorturl.disable_link(:'team', owner => 'globex') AS globex_disables
FROM shorturl.get_link(:'team', owner => 'globex');
SELECT shorturl.disable_link(:'team', 'legal takedown', owner => 'acme') AS acme_disables;
SELECT shorturl.resolve(:'team') AS resolves_to, shorturl.link_status(:'team') AS status;
SELECT shorturl.enable_link(:'team', owner => 'acme') AS enabled;
SELECT code, status, visits, title, tags FROM shorturl.get_link(:'team', owner => 'acme');
SELECT length(shorturl.qr_png('https://sho.rt/' || :'team')) AS qr_png_bytes,
       substr(shorturl.qr_svg('https://sho.rt/' || :'team'), 40, 60) AS qr_svg_starts;

\echo
\echo '--- visit analytics: 1,000 clicks with referrer, country, device and visitor, still no WAL ---'
SELECT shorturl.shorten('https://example.com/launch', owner => 'acme') AS launch \gset
SELECT pg_current_wal_lsn() AS lsn_before \gset
SELECT count(shorturl.resolve(:'launch', NULL,
           referrer => (ARRAY['https://news.ycombinator.com/item?id=1', 'https://t.co/abc', ''])[1 + g % 3],
           country => (ARRAY['DE', 'US', 'FR', 'JP'])[1 + g % 4],
           user_agent => (ARRAY['Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148',
                                'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0',
                                'Googlebot/2.1 (+http://www.google.com/bot.html)'])[1 + g % 7 % 3],
           visitor => 'visitor-' || g % 250)) AS clicks
FROM generate_series(1, 1000) g;
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :'lsn_before') AS wal_bytes_for_1000_clicks;
\echo 'the hourly series includes unflushed clicks; bots are left out unless shorturl.count_bots is on:'
SELECT * FROM shorturl.visit_series(:'launch', now() - interval '2 hours', now(), 'hour', owner => 'acme');
SELECT shorturl.flush() AS flushed;
SELECT * FROM shorturl.visit_breakdown(:'launch', 'referrer', owner => 'acme');
SELECT * FROM shorturl.visit_breakdown(:'launch', 'device', owner => 'acme');
SELECT shorturl.unique_visitors(:'launch', owner => 'acme') AS unique_visitors;

\echo
\echo '--- abuse protection: a rate limit, a scanner blocked, a host blocked, a quota ---'
\echo 'a bucket of 3 that refills at 1 a second, asked 5 times at once:'
SELECT i, r.allowed, r.remaining, r.retry_after
FROM generate_series(1, 5) i,
     LATERAL shorturl.rate_limit(CASE WHEN i > 0 THEN 'login:203.0.113.7' END, rate => 1, burst => 3) r;
\echo 'a client that guesses 31 codes in a minute is blocked; a real visitor is not:'
SELECT count(shorturl.resolve('guess' || i, NULL, client => '198.51.100.23')) AS found
FROM generate_series(1, 31) i;
SELECT shorturl.resolve(:'launch', NULL, client => '198.51.100.23') AS scanner_gets,
       shorturl.link_status(:'launch', NULL, '198.51.100.23') AS scanner_status,
       shorturl.resolve(:'launch', NULL, client => '192.0.2.10') AS visitor_gets;
SELECT scan_clients_blocked, scan_lookups_blocked FROM shorturl.stats;
\echo 'a blocked host: new links are refused, existing ones stop at once:'
INSERT INTO shorturl.blocked_hosts (pattern, reason) VALUES ('example.com', 'demo: reported as phishing');
\set ON_ERROR_STOP 0
SELECT shorturl.shorten('https://login.example.com/');
\set ON_ERROR_STOP 1
SELECT shorturl.resolve(:'launch') AS resolves_to, shorturl.link_status(:'launch') AS status;
DELETE FROM shorturl.blocked_hosts;
SELECT shorturl.link_status(:'launch') AS status_after_unblocking;
\echo 'a quota of 2 links an hour per owner:'
SET shorturl.shorten_quota = '2/hour';
SELECT shorturl.shorten('https://example.org/q' || i, owner => 'initech') IS NOT NULL AS made
FROM generate_series(1, 2) i;
\set ON_ERROR_STOP 0
SELECT shorturl.shorten('https://example.org/q3', owner => 'initech');
\set ON_ERROR_STOP 1
RESET shorturl.shorten_quota;

\echo
\echo '--- capacity estimate: 10M daily users, 0.1 links each a day, 100 reads per write, 500 B, 5 years ---'
SELECT round(write_qps::numeric, 2) AS write_qps, round(read_qps::numeric, 2) AS read_qps,
       round(peak_read_qps::numeric, 2) AS peak_read_qps, total_urls,
       pg_size_pretty(storage_bytes) AS storage, min_code_length
FROM shorturl.estimate(10000000, 0.1, 100, 500, 5);
