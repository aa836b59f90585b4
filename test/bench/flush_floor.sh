#!/bin/bash
# test/bench/flush_floor.sh: what any write-back of one row per clicked link
# must pay, against what the flush's statements pay (issue 12).
#
# On a long tail nearly every click is its link's only one in a flush
# interval, so each flush writes a row version per clicked link, in
# shorturl.visit_counts and again in shorturl.link_visits_hourly.  This
# script measures, on tables shaped like those two (the same columns, keys
# and fillfactor, BENCH_ROWS rows each, 1,000,000), per row of a batch of
# BENCH_BATCH scattered keys (10,000, sorted, as the flush sends them):
#
#   probe    the batch joined to the table through its primary key (a
#            nested loop over unnest(), the generic plan, as the flush
#            runs): one B-tree descent and one heap page per row, the
#            least that finding the rows costs, whatever writes them
#   update   the flush's own UPDATE ... FROM unnest() (src/flush.c) on
#            another batch: the probe plus the new row version, its WAL and
#            the executor
#
# Each round draws fresh keys for each case, so no case finds the pages
# another one warmed; figures are medians over BENCH_ROUNDS rounds (9),
# in one session of a throw-away server with the tables prewarmed.  The
# difference, update - probe, bounds what any cheaper way of writing the
# same rows (the table access method directly, say) could save.
#
#   BENCH_ROWS    rows per table (default 1000000)
#   BENCH_BATCH   keys per batch (default 10000)
#   BENCH_ROUNDS  rounds (default 9)
#   BENCH_OUT     the report, also written here (default
#                 test/bench/results/flush_floor-<date>.txt)
#   BENCH_NO_BUILD  set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
rows=${BENCH_ROWS:-1000000}
batch=${BENCH_BATCH:-10000}
rounds=${BENCH_ROUNDS:-9}
out=${BENCH_OUT:-$BENCH_DIR/results/flush_floor-$(date -u +%Y-%m-%d).txt}

bench_start
say "making two tables of $rows rows"
bench_psql -q >/dev/null <<SQL
CREATE TABLE bench.counts (LIKE shorturl.visit_counts INCLUDING ALL) WITH (fillfactor = 50);
INSERT INTO bench.counts SELECT g, 1, now() FROM generate_series(1, $rows) g;
CREATE TABLE bench.hours (LIKE shorturl.link_visits_hourly INCLUDING ALL) WITH (fillfactor = 80);
INSERT INTO bench.hours SELECT g, date_trunc('hour', now()), 1, 0 FROM generate_series(1, $rows) g;
VACUUM ANALYZE bench.counts;
VACUUM ANALYZE bench.hours;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm('bench.counts'), pg_prewarm('bench.counts_pkey'),
       pg_prewarm('bench.hours'), pg_prewarm('bench.hours_pkey');
CHECKPOINT;
SQL

say "measuring: $rounds rounds of batches of $batch keys"
bench_psql -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE FUNCTION bench.keys(n int, lim int8) RETURNS int8[] LANGUAGE sql AS
\$\$ SELECT array_agg(k ORDER BY k) FROM (SELECT DISTINCT (random() * (lim - 1))::int8 + 1 AS k
                                         FROM generate_series(1, n)) s \$\$;
CREATE FUNCTION bench.probe_counts(ids int8[]) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE n bigint;
BEGIN
  SELECT sum(c.visits) INTO n FROM bench.counts c JOIN unnest(ids) AS d(link_id) ON c.link_id = d.link_id;
  RETURN n;
END \$\$;
CREATE FUNCTION bench.update_counts(ids int8[]) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE n bigint;
BEGIN
  UPDATE bench.counts AS c
     SET visits = c.visits + d.delta, last_visit_at = GREATEST(c.last_visit_at, d.visited)
    FROM ROWS FROM (unnest(ids), unnest(array_fill(1::int8, ARRAY[cardinality(ids)])),
                    unnest(array_fill(now(), ARRAY[cardinality(ids)]))) AS d(link_id, delta, visited)
   WHERE c.link_id = d.link_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END \$\$;
CREATE FUNCTION bench.probe_hours(ids int8[]) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE n bigint;
BEGIN
  SELECT sum(h.visits) INTO n FROM bench.hours h
    JOIN unnest(ids) AS d(link_id) ON h.link_id = d.link_id AND h.hour = date_trunc('hour', now());
  RETURN n;
END \$\$;
CREATE FUNCTION bench.update_hours(ids int8[]) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE n bigint;
BEGIN
  UPDATE bench.hours AS h SET visits = h.visits + 1, bots = h.bots + 0
    FROM unnest(ids) AS d(link_id)
   WHERE h.link_id = d.link_id AND h.hour = date_trunc('hour', now());
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END \$\$;
CREATE TABLE bench.floor (round int, tbl text, kind text, n int, us_per_row float8);
SQL

bench_psql -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET plan_cache_mode = force_generic_plan;
DO \$\$
DECLARE
  ids int8[];
  t0 timestamptz;
  n bigint;
  tbl text;
  kind text;
BEGIN
  FOR r IN 0..$rounds LOOP
    FOREACH tbl IN ARRAY ARRAY['counts', 'hours'] LOOP
      FOREACH kind IN ARRAY ARRAY['probe', 'update'] LOOP
        ids := bench.keys($batch, $rows);
        t0 := clock_timestamp();
        EXECUTE format('SELECT bench.%s_%s(\$1)', kind, tbl) INTO n USING ids;
        -- round 0 plans the statements and is not kept
        IF r > 0 THEN
          INSERT INTO bench.floor VALUES (r, tbl, kind, cardinality(ids),
            extract(epoch FROM clock_timestamp() - t0) * 1e6 / cardinality(ids));
        END IF;
      END LOOP;
    END LOOP;
  END LOOP;
END \$\$;
SQL

{
	echo "pg_shorturl flush floor (test/bench/flush_floor.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it"
	echo "$rows rows per table; batches of $batch scattered keys, sorted (about $batch distinct); $rounds rounds, medians; one session, generic plans"
	echo "counts: shaped like shorturl.visit_counts (fillfactor 50); hours: like shorturl.link_visits_hourly (fillfactor 80)"
	bench_psql -X -c "
	  SELECT tbl AS \"table\",
	         round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_row) FILTER (WHERE kind = 'probe')::numeric, 2) AS \"probe us/row\",
	         round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_row) FILTER (WHERE kind = 'update')::numeric, 2) AS \"update us/row\",
	         round((percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_row) FILTER (WHERE kind = 'update')
	              - percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_row) FILTER (WHERE kind = 'probe'))::numeric, 2) AS \"update - probe\",
	         round((percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_row) FILTER (WHERE kind = 'probe')
	              / percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_row) FILTER (WHERE kind = 'update'))::numeric, 2) AS \"probe / update\"
	    FROM bench.floor GROUP BY tbl ORDER BY tbl DESC"
} | tee "$out"
