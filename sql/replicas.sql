--
-- replicas: the primary's half of a standby's shipping,
-- shorturl.apply_clicks() and shorturl.shipped_seq(): a batch applied once
-- (a retry or an older number does nothing), its clicks in the counts, the
-- series and a limited link's total at once, a deleted link's dropped, and
-- every malformed batch refused with its SQLSTATE; shorturl.claim_visit(),
-- which counts a limited link's visit for a standby up to max_visits and
-- answers with the link's state here.  The standby's half (counting,
-- shipping, claiming, retries, promotion) needs servers: TAP
-- 018_read_replicas.
--
CREATE EXTENSION pg_shorturl;
\set VERBOSITY sqlstate
SELECT system_identifier AS sysid FROM pg_control_system() \gset
SELECT 'shorturl.links'::regclass::oid AS links \gset
SELECT shorturl.shorten('https://example.com/r1', alias => 'r1') AS code,
       shorturl.shorten('https://example.com/r2', alias => 'r2', max_visits => 10) AS limited,
       shorturl.shorten('https://example.com/r3', alias => 'r3') AS doomed;
SELECT id AS r1 FROM shorturl.links WHERE code = 'r1' \gset
SELECT id AS r2 FROM shorturl.links WHERE code = 'r2' \gset
SELECT id AS r3 FROM shorturl.links WHERE code = 'r3' \gset
SELECT date_bin('1 hour', now(), '2000-01-01 00:00+00') AS h \gset
-- a limited link's total lives in shared memory: 3 clicks here first
SELECT count(shorturl.resolve('r2')) AS limited_clicks FROM generate_series(1, 3);
SELECT shorturl.delete_link('r3') AS deleted;

-- batch 1: r1 in two hours, r2 once, the deleted r3 (dropped)
SELECT shorturl.apply_clicks(:sysid, 'sb1', 1, :links,
         ARRAY[:r1, :r1, :r2, :r3],
         ARRAY[:'h'::timestamptz - interval '1 hour', :'h', :'h', :'h'],
         '{2,3,4,5}', '{0,1,0,0}', ARRAY[now(), now(), now(), now()]) AS applied;
SELECT shorturl.visits('r1') AS r1, shorturl.visits('r2') AS r2;
SELECT count(*) AS r1_hours, sum(visits) AS r1_visits, sum(bots) AS r1_bots
FROM shorturl.link_visits_hourly WHERE link_id = :r1;
-- (the series leaves the bot's click out: shorturl.count_bots is off)
SELECT sum(visits) AS r1_series FROM shorturl.visit_series('r1', now() - interval '1 day', now() + interval '1 hour', 'hour');
SELECT last_seq, batches, visits FROM shorturl.standby_batches WHERE standby = 'sb1';
-- the same number again: nothing
SELECT shorturl.apply_clicks(:sysid, 'sb1', 1, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{7}', '{0}', ARRAY[now()]) AS again;
SELECT shorturl.visits('r1') AS r1_unchanged;
-- another standby keeps its own numbers
SELECT shorturl.apply_clicks(:sysid, 'sb2', 1, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{1}', '{0}', ARRAY[now()]) AS sb2_first;
SELECT standby, last_seq FROM shorturl.standby_batches ORDER BY standby;
SELECT shorturl.shipped_seq(:sysid, 'sb1') AS sb1, shorturl.shipped_seq(:sysid, 'sb2') AS sb2,
       shorturl.shipped_seq(:sysid, 'nobody') AS nobody;
-- a limited link's total counts the shipped clicks: 3 + 4 + 3 = 10 reaches
-- max_visits, so the next click is refused; the link is marked exhausted
-- once the tables hold all 10 (the flush of the 3 clicks made here)
SELECT shorturl.apply_clicks(:sysid, 'sb1', 2, :links, ARRAY[:r2], ARRAY[:'h'::timestamptz], '{3}', '{0}', ARRAY[now()]) AS applied;
SELECT shorturl.visits('r2') AS r2, shorturl.resolve('r2') AS refused;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT exhausted_at IS NOT NULL AS exhausted FROM shorturl.links WHERE code = 'r2';
-- an older number: nothing
SELECT shorturl.apply_clicks(:sysid, 'sb1', 1, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{7}', '{0}', ARRAY[now()]) AS older;
-- an empty batch still moves the number on
SELECT shorturl.apply_clicks(:sysid, 'sb1', 3, :links, '{}', '{}', '{}', '{}', '{}') AS empty;
SELECT shorturl.shipped_seq(:sysid, 'sb1') AS sb1;
-- a flush in the same transaction is refused, before or after
BEGIN;
SELECT shorturl.apply_clicks(:sysid, 'sb1', 4, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{1}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 5, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{1}', '{0}', ARRAY[now()]);
ROLLBACK;
-- (5, and 1 from sb2)
SELECT shorturl.shipped_seq(:sysid, 'sb1') AS sb1_rolled_back, shorturl.visits('r1') AS r1_rolled_back;

-- a link twice in one hour (rows merged), and a batch counted against
-- another shorturl.links (an extension dropped and made again since): its
-- number is kept, its clicks dropped
SELECT shorturl.apply_clicks(:sysid, 'sb3', 1, :links, ARRAY[:r1, :r1], ARRAY[:'h'::timestamptz, :'h'],
         '{1,2}', '{0,0}', ARRAY[now(), now()]) AS merged,
       shorturl.visits('r1') AS r1_plus_3;
SELECT shorturl.apply_clicks(:sysid, 'sb3', 2, 1, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{5}', '{0}', ARRAY[now()]) AS other_links;
SELECT shorturl.visits('r1') AS r1_unchanged, shorturl.shipped_seq(:sysid, 'sb3') AS sb3;

-- a batch's analytics: its dimension values and visitors join this
-- server's at commit, and a flush writes them as if clicked here (a
-- value with a quote and a backslash, a bot's clicks left out of the
-- breakdown); a batch applied before, or rolled back, adds none
SELECT shorturl.shorten('https://example.com/a1', alias => 'a1') AS a1;
SELECT id AS a1 FROM shorturl.links WHERE code = 'a1' \gset
SELECT (now() AT TIME ZONE 'UTC')::date AS today \gset
SELECT shorturl.apply_clicks(:sysid, 'sb4', 1, :links, ARRAY[:a1], ARRAY[:'h'::timestamptz], '{5}', '{1}', ARRAY[now()],
         ARRAY[:a1, :a1, :a1, :a1], ARRAY[:'today'::date, :'today', :'today', :'today'],
         '{referrer,referrer,country,device}', '{news.example,"odd\"host\\",DE,mobile}',
         '{3,2,5,5}', '{1,0,1,1}',
         ARRAY[:a1, :a1, :a1], ARRAY[:'today'::date, :'today', :'today'],
         '{1234567890123456789,-987654321987654321,5555555555555555555}') AS applied;
SELECT shorturl.apply_clicks(:sysid, 'sb4', 1, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{country}', '{FR}', '{7}', '{0}',
         ARRAY[:a1], ARRAY[:'today'::date], '{77}') AS again;
BEGIN;
SAVEPOINT s;
SELECT shorturl.apply_clicks(:sysid, 'sb4', 2, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{country}', '{IT}', '{7}', '{0}',
         ARRAY[:a1], ARRAY[:'today'::date], '{78}') AS rolled_back;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT * FROM shorturl.visit_breakdown('a1', 'referrer');
SELECT * FROM shorturl.visit_breakdown('a1', 'country');
SELECT * FROM shorturl.visit_breakdown('a1', 'device');
SELECT shorturl.unique_visitors('a1', now() - interval '1 day', now() + interval '1 day') AS a1_visitors;
-- a batch of analytics alone (their clicks went in the batch before)
SELECT shorturl.apply_clicks(:sysid, 'sb4', 2, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{country}', '{DE}', '{2}', '{0}',
         ARRAY[:a1], ARRAY[:'today'::date], '{1234567890123456789}') AS analytics_alone;
SELECT shorturl.flush() >= 0 AS flushed;
SELECT * FROM shorturl.visit_breakdown('a1', 'country');
SELECT shorturl.unique_visitors('a1', now() - interval '1 day', now() + interval '1 day') AS a1_visitors_same;

-- malformed batches
SELECT shorturl.apply_clicks(:sysid + 1, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}');
SELECT shorturl.apply_clicks(:sysid, '', 9, :links, '{}', '{}', '{}', '{}', '{}');
SELECT shorturl.apply_clicks(:sysid, repeat('x', 64), 9, :links, '{}', '{}', '{}', '{}', '{}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 0, :links, '{}', '{}', '{}', '{}', '{}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], '{}', '{1}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{1,2}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{0}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{1}', '{2}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz + interval '1 minute'], '{1}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], ARRAY['infinity'::timestamptz], '{1}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1], ARRAY[:'h'::timestamptz], '{1}', '{0}', ARRAY['infinity'::timestamptz]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[NULL::bigint], ARRAY[:'h'::timestamptz], '{1}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{{1}}', ARRAY[:'h'::timestamptz], '{1}', '{0}', ARRAY[now()]);
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, ARRAY[:r1, :r1], ARRAY[:'h'::timestamptz, :'h'], '{9223372036854775807,1}', '{0,0}', ARRAY[now(), now()]);
-- malformed analytics
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], '{}', '{country}', '{DE}', '{1}', '{0}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{browser}', '{x}', '{1}', '{0}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{country}', '{""}', '{1}', '{0}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{referrer}', ARRAY[repeat('x', 64)], '{1}', '{0}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY[:'today'::date], '{country}', '{DE}', '{1}', '{2}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1], ARRAY['infinity'::date], '{country}', '{DE}', '{1}', '{0}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         ARRAY[:a1, :a1], ARRAY[:'today'::date, :'today'], '{country,device}', '{DE,mobile}',
         '{9223372036854775807,1}', '{0,0}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         '{}', '{}', '{}', '{}', '{}', '{}', ARRAY[:a1], '{}', '{1}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}',
         '{}', '{}', '{}', '{}', '{}', '{}', ARRAY[:a1], ARRAY[NULL::date], '{1}');
SELECT shorturl.apply_clicks(:sysid, 'sb1', NULL, :links, '{}', '{}', '{}', '{}', '{}') IS NULL AS strict;
SELECT shorturl.shipped_seq(:sysid, 'sb1') AS sb1_unchanged;

-- claim_visit: a limited link's visits taken one by one up to max_visits
-- (3 of 3), then exhausted; asked without taking, it counts nothing; an
-- unlimited link is counted too; a link of another shorturl.links, a
-- deleted one, a disabled one and an expired one are not
SELECT shorturl.shorten('https://example.com/c1', alias => 'c1', max_visits => 3) AS c1,
       shorturl.shorten('https://example.com/c2', alias => 'c2', max_visits => 1) AS c2;
SELECT id AS c1 FROM shorturl.links WHERE code = 'c1' \gset
SELECT id AS c2 FROM shorturl.links WHERE code = 'c2' \gset
SELECT shorturl.claim_visit(:sysid, :links, :c1, false, false) AS asked,
       shorturl.visits('c1') AS c1_none_taken;
SELECT g, shorturl.claim_visit(:sysid, :links, :c1, true, g = 2) AS taken
FROM generate_series(1, 4) g;
SELECT shorturl.visits('c1') AS c1_three, shorturl.link_status('c1') AS c1_status,
       shorturl.claim_visit(:sysid, :links, :c1, false, false) AS asked;
SELECT shorturl.visits('r1') AS r1_before \gset
SELECT shorturl.claim_visit(:sysid, :links, :r1, true, false) AS unlimited,
       shorturl.visits('r1') - :r1_before AS r1_one_more;
SELECT shorturl.claim_visit(:sysid, 1, :c2, true, false) AS other_links,
       shorturl.claim_visit(:sysid, :links, :r3, true, false) AS deleted,
       shorturl.claim_visit(:sysid, :links, -1, true, false) AS no_such;
SELECT shorturl.disable_link('c2') AS disabled \gset
SELECT shorturl.claim_visit(:sysid, :links, :c2, true, false) AS c2_disabled;
SELECT shorturl.enable_link('c2') AS enabled \gset
UPDATE shorturl.links SET expires_at = now() - interval '1 second' WHERE code = 'c2';
SELECT shorturl.claim_visit(:sysid, :links, :c2, true, false) AS c2_expired,
       shorturl.visits('c2') AS c2_none;
SELECT shorturl.claim_visit(:sysid + 1, :links, :c1, true, false);
SELECT shorturl.claim_visit(:sysid, :links, :c1, NULL, false) IS NULL AS strict;

-- not PUBLIC's
CREATE ROLE replicas_stranger;
SET ROLE replicas_stranger;
SELECT shorturl.apply_clicks(:sysid, 'sb1', 9, :links, '{}', '{}', '{}', '{}', '{}');
SELECT shorturl.shipped_seq(:sysid, 'sb1');
SELECT shorturl.claim_visit(:sysid, :links, :c1, false, false);
SELECT * FROM shorturl.standby_batches;
RESET ROLE;
DROP ROLE replicas_stranger;
DROP EXTENSION pg_shorturl;
