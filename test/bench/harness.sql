-- test/bench/harness.sql: interleaved timing of SQL statements, in SQL.
--
-- A benchmark registers cases in bench.cases, calls bench.run(rounds), and
-- prints bench.report.  Every round runs every case once, in an order that
-- rotates from round to round, so drift (caches, frequency scaling, the other
-- core) spreads over all cases alike.  Figures are medians over rounds.
--
--   label      name of the case
--   grp        cases compared with each other
--   query      the statement timed
--   calls      how many calls of the function under test the query makes
--   baseline   label of the case that does the same work minus those calls
--              (its time is subtracted to give the net cost per call)
--   reference  label of the case this one is compared against (the built-in)
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

CREATE TABLE bench.cases (
    label text PRIMARY KEY,
    grp text NOT NULL,
    query text NOT NULL,
    calls bigint NOT NULL,
    baseline text,
    reference text,
    ord serial
);

CREATE TABLE bench.timings (label text, round int, ms float8);

CREATE PROCEDURE bench.run(rounds int)
LANGUAGE plpgsql AS $$
DECLARE
    n int := (SELECT count(*) FROM bench.cases);
    c record;
    t0 timestamptz;
BEGIN
    FOR r IN 1..rounds LOOP
        FOR c IN SELECT * FROM bench.cases ORDER BY (ord + r) % n LOOP
            t0 := clock_timestamp();
            EXECUTE c.query;
            INSERT INTO bench.timings
                VALUES (c.label, r, extract(epoch FROM clock_timestamp() - t0) * 1000);
        END LOOP;
        COMMIT;
    END LOOP;
END $$;

CREATE VIEW bench.medians AS
SELECT c.label, c.grp, c.calls, c.baseline, c.reference, c.ord,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms) AS ms,
       count(*) AS rounds
FROM bench.cases c JOIN bench.timings t USING (label)
GROUP BY c.label, c.grp, c.calls, c.baseline, c.reference, c.ord;

CREATE VIEW bench.report AS
WITH net AS (
    SELECT m.*, (m.ms - coalesce(b.ms, 0)) * 1e6 / m.calls AS ns_per_call
    FROM bench.medians m LEFT JOIN bench.medians b ON b.label = m.baseline
)
SELECT n.grp AS "group", n.label AS "case", n.rounds,
       round(n.ms::numeric, 1) AS "median ms",
       round(n.ns_per_call::numeric, 1) AS "net ns/call",
       round((n.ns_per_call / nullif(r.ns_per_call, 0))::numeric, 2) AS "net ratio",
       round((n.ms / nullif(r.ms, 0))::numeric, 2) AS "total ratio"
FROM net n LEFT JOIN net r ON r.label = n.reference
WHERE n.baseline IS NOT NULL
ORDER BY n.ord;
