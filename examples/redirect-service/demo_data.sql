-- demo_data.sql: a link with ten days of believable traffic, for the
-- statistics page (screenshot.sh makes docs/redirect-stats.png from it).
-- Run as the extension's owner, in a scratch database whose worker serves
-- it: it writes the analytics tables directly, which only a demo may do.
--
-- - days before today: hourly visits (a daily cycle, quieter weekends, a
--   launch six days ago that decays over a day) written into
--   shorturl.link_visits_hourly and shorturl.visit_counts, as
--   test/bench/analytics.sh writes its history; their referrers, countries
--   and devices into shorturl.link_visits_breakdown;
-- - their unique visitors are real sketches: a scratch link per day is
--   clicked by that day's visitors through resolve(), flushed, and its
--   sketch row moved to the day of the demo link;
-- - today: real clicks through resolve() with every fact, flushed.
\set ON_ERROR_STOP 1
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT setseed(0.42);

SELECT shorturl.shorten('https://www.example.com/blog/2026/launching-our-new-api', alias => 'launch',
                        title => 'Launching our new API', tags => ARRAY['blog', 'launch']);
UPDATE shorturl.links SET created_at = date_trunc('day', now()) - interval '9 days' + interval '8 hours'
WHERE code = 'launch';

-- the facts' shares: referrer hosts, countries, devices
CREATE TEMP TABLE demo_facts (dimension text, value text, share float8);
INSERT INTO demo_facts VALUES
    ('referrer', 't.co', 0.24), ('referrer', 'direct', 0.20),
    ('referrer', 'news.ycombinator.com', 0.18), ('referrer', 'www.google.com', 0.12),
    ('referrer', 'www.linkedin.com', 0.08), ('referrer', 'www.reddit.com', 0.07),
    ('referrer', 'mail.google.com', 0.05), ('referrer', 'duckduckgo.com', 0.03), ('referrer', 'lobste.rs', 0.03),
    ('country', 'US', 0.32), ('country', 'DE', 0.12), ('country', 'GB', 0.09), ('country', 'IN', 0.08),
    ('country', 'FR', 0.06), ('country', 'CA', 0.05), ('country', 'NL', 0.04), ('country', 'BR', 0.04),
    ('country', 'JP', 0.04), ('country', 'SE', 0.03), ('country', 'PL', 0.03), ('country', 'unknown', 0.10),
    ('device', 'desktop', 0.58), ('device', 'mobile', 0.34), ('device', 'tablet', 0.05), ('device', 'other', 0.03);

-- hours from the link's creation to the hour before this one
CREATE TEMP TABLE demo_hours AS
SELECT h, greatest(0, round((16 + 13 * sin(2 * pi() * (extract(hour FROM h) - 9) / 24))
                            * CASE WHEN extract(isodow FROM h) >= 6 THEN 0.55 ELSE 1 END
                            + CASE WHEN h >= launch THEN 380 * exp(-extract(epoch FROM h - launch) / 3600 / 12) ELSE 0 END
                            + 5 * random()))::bigint AS v
FROM (SELECT date_trunc('day', now()) - interval '6 days' + interval '14 hours' AS launch) a,
     generate_series((SELECT created_at FROM shorturl.links WHERE code = 'launch'),
                     date_trunc('hour', now()) - interval '1 hour', interval '1 hour') h
WHERE h < date_trunc('day', now());

-- 4% of the visits are bots': counted, kept apart
INSERT INTO shorturl.link_visits_hourly (link_id, hour, visits, bots)
SELECT l.id, h, v, round(v * 0.04) FROM demo_hours, shorturl.links l WHERE l.code = 'launch';
INSERT INTO shorturl.visit_counts (link_id, visits, last_visit_at)
SELECT l.id, sum(v), max(h) + interval '59 minutes' FROM demo_hours, shorturl.links l WHERE l.code = 'launch'
GROUP BY l.id;
INSERT INTO shorturl.link_visits_breakdown (link_id, day, dimension, value, visits, bots)
SELECT l.id, d.day, f.dimension, f.value, round(d.v * f.share * (0.85 + 0.3 * random())), 0
FROM (SELECT h::date AS day, sum(v - round(v * 0.04)) AS v FROM demo_hours GROUP BY 1) d,
     demo_facts f, shorturl.links l
WHERE l.code = 'launch';

-- real sketches: about 60% of a day's visits are distinct visitors, some
-- of them back from an earlier day
CREATE TEMP TABLE demo_days AS
SELECT h::date AS day, 'demo-scratch-' || row_number() OVER (ORDER BY h::date) AS scratch,
       round(sum(v) * 0.6)::int AS visitors
FROM demo_hours GROUP BY 1;
SELECT count(shorturl.shorten('https://example.com/' || scratch, alias => scratch)) FROM demo_days;
SELECT count(shorturl.resolve(d.scratch, NULL,
                              visitor => 'visitor-' || CASE WHEN i % 7 = 0 THEN i ELSE (current_date - d.day) * 100000 + i END))
FROM demo_days d, generate_series(1, d.visitors) i;
SELECT shorturl.flush();
UPDATE shorturl.link_visitors_daily v
SET link_id = (SELECT id FROM shorturl.links WHERE code = 'launch'), day = d.day
FROM demo_days d JOIN shorturl.links s ON s.code = d.scratch
WHERE v.link_id = s.id;
SELECT count(shorturl.delete_link(scratch)) FROM demo_days;

-- today: real clicks with every fact
CREATE TEMP TABLE demo_agents (device text, agent text);
INSERT INTO demo_agents VALUES
    ('desktop', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'),
    ('mobile', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1'),
    ('tablet', 'Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1'),
    ('other', 'Wget/1.21');
-- pick(dimension) draws a value by its share
CREATE FUNCTION pg_temp.pick(dim text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT value FROM (SELECT value, sum(share) OVER (ORDER BY value) / sum(share) OVER () AS upto
                       FROM demo_facts WHERE dimension = dim) s, (SELECT random() AS r) x
    WHERE upto >= r ORDER BY upto LIMIT 1
$$;
SELECT count(shorturl.resolve('launch', NULL,
                              referrer => CASE WHEN r = 'direct' THEN NULL ELSE 'https://' || r || '/' END,
                              country => NULLIF(c, 'unknown'),
                              user_agent => (SELECT agent FROM demo_agents WHERE device = dv),
                              visitor => 'today-' || (random() * 260)::int))
FROM (SELECT pg_temp.pick('referrer') AS r, pg_temp.pick('country') AS c, pg_temp.pick('device') AS dv
      FROM generate_series(1, (extract(hour FROM now()) * 14 + 40)::int)) t;
SELECT shorturl.flush();
SELECT shorturl.visits('launch') AS visits, shorturl.unique_visitors('launch') AS unique_visitors;
