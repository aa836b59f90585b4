--
-- analytics: a link's visits per hour, day, week and month; its
-- referrers, countries and devices; its unique visitors.  The labels and
-- privileges of the new functions, bad input (the SQLSTATE is echoed after
-- each expected error), the promise that a series adds up to visits() with
-- and without a flush, bots kept apart, the cap on values per day, owners,
-- reset and delete, the analytics job, and no WAL per click.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'
SET timezone = 'UTC';

-- labels, security, pinned search_path and a comment for every function
SELECT p.oid::regprocedure AS function, p.provolatile AS vol, p.proisstrict AS strict,
       p.proparallel AS par, p.prosecdef AS secdef, p.proconfig AS config,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
FROM pg_proc p
WHERE p.pronamespace = 'shorturl'::regnamespace
  AND p.proname IN ('resolve', 'device_class', 'visit_series', 'visit_breakdown',
                    'unique_visitors', '_visit_series', '_unique_visitors', 'purge_analytics')
ORDER BY p.oid::regprocedure::text;
-- every table and column commented, none readable by PUBLIC
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented,
       bool_and(col_description(c.oid, a.attnum) IS NOT NULL) AS columns_commented,
       has_table_privilege('public', c.oid, 'SELECT') AS public_select
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'shorturl'::regnamespace
  AND c.relname IN ('link_visits_hourly', 'link_visits_daily', 'link_visits_breakdown',
                    'link_visitors_daily', 'pending_visits', 'stats')
GROUP BY c.oid, c.relname ORDER BY c.relname;

--
-- device_class()
--
SELECT ua, shorturl.device_class(ua) FROM (VALUES
    ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'),
    ('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'),
    ('Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1'),
    ('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'),
    ('curl/8.4.0'),
    (''),
    (NULL)) AS t(ua);

--
-- resolve() with what the application knows of a visit
--
SELECT shorturl.shorten('https://example.com/a', alias => 'an-a', owner => 'acme') AS code;
SELECT shorturl.shorten('https://example.com/b', alias => 'an-b') AS code;
SELECT shorturl.resolve('an-a') IS NOT NULL AS plain;
SELECT count(shorturl.resolve('an-a', NULL, referrer => 'https://www.Example.COM:8443/path?q=1',
                              country => 'de', user_agent => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148',
                              visitor => 'visitor-' || (g % 3))) AS clicks
FROM generate_series(1, 6) g;
SELECT shorturl.resolve('an-a', NULL, referrer => 'not a url', user_agent => 'Googlebot/2.1 (+http://www.google.com/bot.html)',
                        visitor => 'a-bot') IS NOT NULL AS bot;
SELECT shorturl.resolve('an-a', '', referrer => '') IS NOT NULL AS direct;
-- a country is two letters or NULL; checked even for an unknown code
SELECT shorturl.resolve('an-a', NULL, country => 'Germany');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.resolve('no-such-code', NULL, country => '1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a visitor's headers never make an error
SELECT shorturl.resolve('an-a', NULL, referrer => repeat('x', 10000), user_agent => repeat('y', 10000))
       IS NOT NULL AS hostile_headers;
-- nothing for an unknown code or a NULL one
SELECT shorturl.resolve('no-such-code', NULL, referrer => 'https://a.example/') AS unknown,
       shorturl.resolve(NULL, NULL, referrer => 'https://a.example/') AS null_code;
SELECT shorturl.visits('an-a') AS visits;

--
-- visit_series(): unflushed clicks included, adding up to visits()
--
SELECT shorturl.link_status('an-a') AS status;
-- bots are left out unless shorturl.count_bots is on
SELECT sum(visits) AS humans FROM shorturl.visit_series('an-a', NULL, NULL, 'hour');
SET shorturl.count_bots = on;
SELECT sum(visits) = shorturl.visits('an-a') AS adds_up, count(*) > 0 AS buckets
FROM shorturl.visit_series('an-a', NULL, NULL, 'hour');
SELECT shorturl.flush() >= 0 AS flushed;
SELECT sum(visits) = shorturl.visits('an-a') AS adds_up_after_flush
FROM shorturl.visit_series('an-a', NULL, NULL, 'hour');
SELECT visits, bots, hour BETWEEN now() - interval '2 hours' AND now() AS recent_hour
FROM shorturl.link_visits_hourly h JOIN shorturl.links l ON l.id = h.link_id WHERE l.code = 'an-a';
-- more clicks, not flushed: the stored hour plus shared memory
SELECT count(shorturl.resolve('an-a')) FROM generate_series(1, 5);
SELECT sum(visits) = shorturl.visits('an-a') AS adds_up, shorturl.visits('an-a') AS visits
FROM shorturl.visit_series('an-a', NULL, NULL, 'day');
RESET shorturl.count_bots;

-- empty buckets are there, with 0, in the session's time zone
SELECT * FROM shorturl.visit_series('an-b', '2026-03-28 22:30+00', '2026-03-31 01:00+00', 'day');
SET timezone = 'Europe/Berlin';
-- (a day of 23 hours: the clocks go forward on 2026-03-29)
SELECT bucket_start, visits, lead(bucket_start) OVER (ORDER BY bucket_start) - bucket_start AS length
FROM shorturl.visit_series('an-b', '2026-03-28 12:00+01', '2026-03-31 00:00+02', 'day');
SELECT * FROM shorturl.visit_series('an-b', '2026-01-15', '2026-04-01', 'month');
SELECT * FROM shorturl.visit_series('an-b', '2026-03-01', '2026-03-16', 'week');
-- where the clocks go forward at midnight the day starts at 01:00, and the
-- next one at 00:00 again
SET timezone = 'America/Santiago';
SELECT * FROM shorturl.visit_series('an-b', '2026-09-04', '2026-09-08', 'DAY');
-- a zone 5:45 ahead of UTC: an hour bucket is a UTC hour, shown in local time
SET timezone = 'Asia/Kathmandu';
SELECT * FROM shorturl.visit_series('an-b', '2026-03-01 10:00+05:45', '2026-03-01 12:00+05:45', 'hour');
SET shorturl.count_bots = on;
SELECT sum(visits) = shorturl.visits('an-a') AS adds_up_in_kathmandu
FROM shorturl.visit_series('an-a', NULL, NULL, 'hour');
SELECT sum(visits) = shorturl.visits('an-a') AS adds_up_by_day_in_kathmandu
FROM shorturl.visit_series('an-a', NULL, NULL, 'day');
RESET shorturl.count_bots;
SET timezone = 'UTC';
SELECT count(*) AS hours FROM shorturl.visit_series('an-b', '2026-03-01', '2026-03-02', 'hour');
-- "to" is excluded; "to" at or before "from" gives nothing
SELECT count(*) AS none FROM shorturl.visit_series('an-b', '2026-03-02', '2026-03-02', 'hour');
SELECT count(*) AS none FROM shorturl.visit_series('an-b', '2026-03-02', '2026-03-01', 'hour');
-- bad input
SELECT * FROM shorturl.visit_series('an-b', '2026-03-01', '2026-03-02', 'fortnight');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.visit_series('an-b', '2000-01-01', '2026-03-02', 'hour');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.visit_series('an-b', '-infinity', '2026-03-02', 'day');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an unknown code, or another owner's link: no rows
SELECT count(*) AS unknown FROM shorturl.visit_series('no-such-code', NULL, NULL);
SELECT count(*) AS other_owner FROM shorturl.visit_series('an-a', NULL, NULL, owner => 'globex');
SELECT count(*) > 0 AS own FROM shorturl.visit_series('an-a', NULL, NULL, owner => 'acme');

--
-- visit_breakdown(): flushed values, largest first
--
SELECT * FROM shorturl.visit_breakdown('an-a', 'referrer');
SELECT * FROM shorturl.visit_breakdown('an-a', 'country');
SELECT * FROM shorturl.visit_breakdown('an-a', 'device');
SET shorturl.count_bots = on;
SELECT * FROM shorturl.visit_breakdown('an-a', 'device');
RESET shorturl.count_bots;
-- days outside the range count nothing
SELECT count(*) AS none FROM shorturl.visit_breakdown('an-a', 'device', now() + interval '2 days', NULL);
SELECT * FROM shorturl.visit_breakdown('an-a', 'browser');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS other_owner FROM shorturl.visit_breakdown('an-a', 'device', owner => 'globex');

-- at most shorturl.max_dimension_values values per link, day and
-- dimension: the busiest new ones get the free places, the rest "other"
ALTER SYSTEM SET shorturl.max_dimension_values = 3;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW shorturl.max_dimension_values;
SELECT shorturl.shorten('https://example.com/c', alias => 'an-c') AS code;
SELECT count(shorturl.resolve('an-c', NULL, referrer => 'https://r' || r || '.example/'))
FROM generate_series(1, 5) r, generate_series(1, r) n;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT * FROM shorturl.visit_breakdown('an-c', 'referrer');
-- a value already kept still counts under its name
SELECT count(shorturl.resolve('an-c', NULL, referrer => 'https://r' || r || '.example/'))
FROM generate_series(1, 5) r;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT * FROM shorturl.visit_breakdown('an-c', 'referrer');
SELECT (SELECT sum(visits) FROM shorturl.visit_breakdown('an-c', 'referrer')) = shorturl.visits('an-c') AS all_counted;
ALTER SYSTEM RESET shorturl.max_dimension_values;
SELECT pg_reload_conf();

--
-- unique_visitors(): exact for small counts, bots left out
--
SELECT shorturl.unique_visitors('an-a') AS visitors;
SELECT shorturl.shorten('https://example.com/d', alias => 'an-d') AS code;
SELECT count(shorturl.resolve('an-d', NULL, visitor => 'v' || (g % 300))) FROM generate_series(1, 900) g;
SELECT shorturl.unique_visitors('an-d') AS not_flushed_yet;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT shorturl.unique_visitors('an-d') AS exact;
-- past the exact range (384 visitors) the sketch estimates (1.6% standard
-- error): 3,100 more visitors, 300 seen before
SELECT count(shorturl.resolve('an-d', NULL, visitor => 'v' || g)) FROM generate_series(1, 3400) g;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT shorturl.unique_visitors('an-d') BETWEEN 3400 * 0.95 AND 3400 * 1.05 AS estimate_within_5pct;
SELECT length(sketch) AS sketch_bytes FROM shorturl.link_visitors_daily v JOIN shorturl.links l ON l.id = v.link_id
WHERE l.code = 'an-d';
SELECT shorturl.unique_visitors('an-d', now() + interval '1 day', NULL) AS later_days;
SELECT shorturl.unique_visitors('no-such-code') AS unknown,
       shorturl.unique_visitors('an-a', owner => 'globex') AS other_owner;
-- a damaged sketch is an error, not a wrong answer
UPDATE shorturl.link_visitors_daily SET sketch = '\x0102', day = '2026-01-01'
WHERE link_id = (SELECT id FROM shorturl.links WHERE code = 'an-d');
SELECT shorturl.unique_visitors('an-d');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

--
-- reset_visits() and delete_link() take the analytics with them
--
-- (unflushed dimensions and visitors go too)
SELECT count(shorturl.resolve('an-a', NULL, country => 'IT', visitor => 'late')) AS unflushed;
SELECT shorturl.reset_visits('an-a', owner => 'acme') > 0 AS reset;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT (SELECT count(*) FROM shorturl.link_visits_hourly WHERE link_id = l.id) AS hours,
       (SELECT count(*) FROM shorturl.link_visits_breakdown WHERE link_id = l.id) AS values,
       (SELECT count(*) FROM shorturl.link_visitors_daily WHERE link_id = l.id) AS sketches
FROM shorturl.links l WHERE l.code = 'an-a';
SELECT coalesce(sum(visits), 0) AS series, shorturl.visits('an-a') AS visits
FROM shorturl.visit_series('an-a', NULL, NULL, 'hour');
SELECT count(*) AS countries FROM shorturl.visit_breakdown('an-a', 'country');
SELECT shorturl.unique_visitors('an-a') AS visitors;
-- within the resetting transaction, a limited link counts from zero too
SELECT shorturl.shorten('https://example.com/g', alias => 'an-g', max_visits => 100) AS code;
SELECT count(shorturl.resolve('an-g')) AS clicks FROM generate_series(1, 3);
BEGIN;
SELECT shorturl.reset_visits('an-g') AS had;
SELECT count(shorturl.resolve('an-g')) AS clicks FROM generate_series(1, 2);
SET LOCAL shorturl.count_bots = on;
SELECT shorturl.visits('an-g') AS visits, sum(visits) AS series
FROM shorturl.visit_series('an-g', NULL, NULL, 'hour');
COMMIT;
SELECT shorturl.delete_link('an-c') AS deleted;
SELECT count(*) AS left_behind FROM shorturl.link_visits_breakdown b
WHERE NOT EXISTS (SELECT FROM shorturl.links l WHERE l.id = b.link_id);

--
-- the analytics job: hours past shorturl.hourly_retention become UTC days,
-- days past shorturl.analytics_retention go; a series adds up the same
--
SELECT shorturl.shorten('https://example.com/e', alias => 'an-e') AS code;
INSERT INTO shorturl.visit_counts (link_id, visits)
SELECT id, 60 FROM shorturl.links WHERE code = 'an-e';
INSERT INTO shorturl.link_visits_hourly (link_id, hour, visits, bots)
SELECT l.id, h, 10, 1 FROM shorturl.links l,
       generate_series(now()::date - 20 + interval '22 hours', now()::date - 20 + interval '27 hours', interval '1 hour') h
WHERE l.code = 'an-e';
UPDATE shorturl.links SET created_at = now() - interval '30 days' WHERE code = 'an-e';
SET shorturl.count_bots = on;
SELECT sum(visits) AS before FROM shorturl.visit_series('an-e', NULL, NULL, 'day');
SELECT shorturl.purge_analytics() AS merged;
SELECT day - (now()::date - 20) AS day, visits, bots FROM shorturl.link_visits_daily d
JOIN shorturl.links l ON l.id = d.link_id WHERE l.code = 'an-e' ORDER BY day;
SELECT sum(visits) AS after, shorturl.visits('an-e') AS visits FROM shorturl.visit_series('an-e', NULL, NULL, 'day');
SELECT count(*) AS hours_left FROM shorturl.link_visits_hourly h JOIN shorturl.links l ON l.id = h.link_id
WHERE l.code = 'an-e';
SET shorturl.analytics_retention = '19d';
SELECT shorturl.purge_analytics() AS deleted;
SELECT day - (now()::date - 20) AS day, visits FROM shorturl.link_visits_daily d
JOIN shorturl.links l ON l.id = d.link_id WHERE l.code = 'an-e' ORDER BY day;
RESET shorturl.analytics_retention;
-- a link made late in a UTC day whose hours were merged into that day: the
-- day counts in the series' first bucket, in any zone
SELECT shorturl.shorten('https://example.com/h', alias => 'an-h') AS code;
SELECT count(shorturl.resolve('an-h')) AS clicks FROM generate_series(1, 7);
SELECT shorturl.flush() >= 0 AS flushed;
UPDATE shorturl.links SET created_at = date_trunc('day', now()) - interval '3 days' + interval '20 hours'
WHERE code = 'an-h';
UPDATE shorturl.link_visits_hourly h SET hour = date_trunc('day', now()) - interval '3 days' + interval '21 hours'
FROM shorturl.links l WHERE l.id = h.link_id AND l.code = 'an-h';
SET shorturl.hourly_retention = '1h';
SELECT shorturl.purge_analytics() > 0 AS merged;
RESET shorturl.hourly_retention;
SELECT z AS timezone, unit,
       (SELECT sum(visits) FROM shorturl.visit_series('an-h', NULL, NULL, unit)) AS series
FROM (VALUES ('UTC'), ('Asia/Tokyo'), ('America/New_York')) AS t(z),
     (VALUES ('hour'), ('day')) AS u(unit),
     LATERAL (SELECT set_config('timezone', z, true)) AS s
ORDER BY 1, 2;
SET timezone = 'UTC';
-- imported visits go to the hour the link was made in
CREATE TABLE imported (code text, url text, created_at timestamptz, visits bigint);
INSERT INTO imported VALUES ('an-imported', 'https://example.com/i', now() - interval '30 days', 1234);
SELECT code, outcome FROM shorturl.import_links('imported');
SELECT shorturl.visits('an-imported') AS visits,
       (SELECT sum(visits) FROM shorturl.visit_series('an-imported', NULL, NULL, 'day')) AS series;
DROP TABLE imported;
RESET shorturl.count_bots;
-- (the message differs between versions; the SQLSTATE does not)
DO $$
BEGIN
    PERFORM set_config('shorturl.hourly_retention', '1min', false);
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'an hourly retention under an hour: SQLSTATE %', SQLSTATE;
END
$$;

--
-- a click with every dimension writes no WAL; the flush writes the rollups
--
SELECT shorturl.shorten('https://example.com/f', alias => 'an-f') AS code;
-- (a first read sets the new row's hint bits, which 18's default data
-- checksums would log once after the checkpoint)
SELECT shorturl.link_status('an-f') AS status;
SELECT shorturl.flush() >= 0 AS flushed;
CHECKPOINT;
SELECT pg_current_wal_insert_lsn() AS before \gset
SELECT count(shorturl.resolve('an-f', NULL, referrer => 'https://t.co/x', country => 'FR',
                              user_agent => 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0',
                              visitor => 'w' || g)) AS clicks
FROM generate_series(1, 10000) g;
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'before') AS wal_bytes;
SELECT s.pending_visits, s.pending_dimension_values, s.pending_visitors FROM shorturl.stats s;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT s.pending_dimension_values, s.pending_visitors, s.dimension_overflow, s.dimension_dropped,
       s.visitors_dropped FROM shorturl.stats s;
SELECT * FROM shorturl.visit_breakdown('an-f', 'device');
SELECT shorturl.unique_visitors('an-f') BETWEEN 9500 AND 10500 AS about_ten_thousand;

DROP EXTENSION pg_shorturl;
