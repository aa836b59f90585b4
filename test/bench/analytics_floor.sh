#!/bin/bash
# test/bench/analytics_floor.sh: how close to resolve(code) any write-back
# of the analytics' rows can bring resolve() with every fact (issue 14's
# goal: 0.9), on this machine, for the row layout the issue prescribes.
#
# With every fact, a click costs the machine what resolve(code) costs, plus
# the backend's own work on the facts (b), plus what the worker spends
# writing them (w).  On a saturated machine of C cores running at T clicks
# a second with resolve(code), the first is C / T seconds a click, so no
# implementation, however it writes, does better than
#
#     bound = (C / T) / (C / T + b + w_floor)
#
# where w_floor is what the rows the layout needs cost at the least.  This
# script measures each term:
#
# 1. The runs (the benchmark's shape, test/bench/analytics.sh): 100,000
#    links, 8 pgbench clients, BENCH_SECONDS (10) runs, resolve(code) and
#    resolve() with a referrer, a country, a user agent and a visitor,
#    alternating, BENCH_ROUNDS (3) rounds, uniform and Zipf s=1.001 keys.
#    Each workload starts with the analytics tables empty.  The server's
#    tables are large enough (BENCH_MAX_PENDING, 1,048,576
#    each) that no value and no visitor is dropped: the rows counted are
#    all the layout needs.  Per run: TPS; for the runs with facts, the row
#    versions written per click (pg_stat_user_tables, inserts and updates,
#    after a flush of what the run left pending) into
#    shorturl.link_visits_breakdown and shorturl.link_visitors_daily.
# 2. The floors, in one session, on tables shaped like those two (the same
#    columns, keys, indexes and fillfactor) holding BENCH_ROWS (1,000,000)
#    rows, per row of a batch of 10,000 sorted keys in one statement:
#    insert (new rows: heap, primary key, day index), and update (existing
#    rows found through the primary key: a probe and a new row version).
#    The sketch rows carry 16 bytes, the sketch of two visitors.  No
#    cardinality check, no count, no plan or executor beyond one statement:
#    the least that writing the rows costs.
# 3. b: 20,000 scattered clicks from one session, resolve(code) against
#    resolve() with every fact, flushes held back, each statement after a
#    flush (so every click makes its entries), after an untimed round.
#
#   BENCH_SECONDS, BENCH_ROUNDS, BENCH_CLIENTS, BENCH_THREADS, BENCH_LINKS
#   BENCH_WORKLOADS   (default "uniform zipf1.001")
#   BENCH_MAX_PENDING shorturl.max_pending_dimensions and _visitors
#   BENCH_ROWS        rows of the floor's tables (default 1000000)
#   BENCH_HUGE_PAGES  set: the server runs with huge_pages = on (the script
#                     reserves the pages and gives them back): a backend
#                     then takes no page fault for each page of the large
#                     shared tables it touches first
#   BENCH_STATEMENTS  set: the server also loads pg_stat_statements (track =
#                     all), and the report gives each statement's share of
#                     the flushes' time in the runs with every fact (the
#                     worker's during the run and the flush after it)
#   BENCH_OUT         the report (default
#                     test/bench/results/analytics_floor-<date>.txt)
#   BENCH_NO_BUILD    set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-100000}
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-uniform zipf1.001}"
pending=${BENCH_MAX_PENDING:-1048576}
statements=${BENCH_STATEMENTS:+on}
rows=${BENCH_ROWS:-1000000}
out=${BENCH_OUT:-$BENCH_DIR/results/analytics_floor-$(date -u +%Y-%m-%d).txt}
FIRST_CODE=1000000
SEED=12
VISITORS=1000000
BATCH=10000
FLOOR_ROUNDS=5
PERCALL_CLICKS=20000
GOAL=0.9

conf=$(mktemp /tmp/pg_shorturl-afloor.XXXXXX.conf)
{
	echo "shorturl.database = 'postgres'"
	echo "shorturl.max_pending_dimensions = $pending"
	echo "shorturl.max_pending_visitors = $pending"
	if [ "$statements" ]; then
		echo "shared_preload_libraries = 'pg_shorturl, pg_stat_statements'"
		echo "pg_stat_statements.track = all"
	fi
} >"$conf"
huge=${BENCH_HUGE_PAGES:+on}
if [ "$huge" ]; then
	require_root
	# 2 GB of shared_buffers, both analytics tables and the rest
	hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
	echo 1500 >/proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 1500 ] ||
		{ echo "$hugepages_before" >/proc/sys/vm/nr_hugepages; die "could not reserve 1500 huge pages"; }
	echo "huge_pages = on" >>"$conf"
fi
bench_start "$conf"
rm -f "$conf"
[ -z "$huge" ] || trap 'scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK"; echo "$hugepages_before" >/proc/sys/vm/nr_hugepages' EXIT
cores=$(nproc)

say "making $links links"
bench_make_links "$links" "$FIRST_CODE"
bench_psql -q -f "$BENCH_DIR/analytics-facts.sql"
bench_settle
nref=$(bench_psql -Atc 'SELECT count(*) FROM bench.referrers')
ncty=$(bench_psql -Atc 'SELECT count(*) FROM bench.countries')
nua=$(bench_psql -Atc 'SELECT count(*) FROM bench.user_agents')
array_of() { bench_psql -Atc "SELECT 'ARRAY[' || string_agg(quote_literal($1), ', ' ORDER BY n) || ']' FROM $2"; }
S=$BENCH_WORK/scripts
mkdir -p "$S"
for w in "${WORKLOADS[@]}"; do
	keys=$(bench_keys "$w" "$links" "$FIRST_CODE" "$SEED")
	printf '%s\nSELECT shorturl.resolve(:c);\n' "$keys" >"$S/$w.resolve.sql"
	printf '%s\n\\set ri random(1, %d)\n\\set ci random(1, %d)\n\\set ui random(1, %d)\n\\set v random(1, %d)\nSELECT shorturl.resolve(:c, NULL, (%s)[:ri], (%s)[:ci], (%s)[:ui], :v);\n' \
		"$keys" "$nref" "$ncty" "$nua" "$VISITORS" "$(array_of url bench.referrers)" \
		"$(array_of code bench.countries)" "$(array_of agent bench.user_agents)" >"$S/$w.visit.sql"
done

bench_psql -q -c 'CREATE TABLE bench.statements (workload text, query text, ms float8, calls bigint, rows bigint)'
[ -z "$statements" ] || bench_psql -q -c 'CREATE EXTENSION pg_stat_statements'
bench_psql -q -c 'CREATE TABLE bench.runs (workload text, kind text, round int, tps float8, clicks bigint,
                  b_ins bigint, b_upd bigint, s_ins bigint, s_upd bigint,
                  dropped bigint)'

# written prints the row versions written so far: inserts and updates
# (HOT or not) of the breakdown and of the sketches, and the values and
# visitors dropped for want of room.
written() {
	sleep 1.5 # the worker's and the backends' statistics reach the counters
	bench_psql -At -F ' ' -c 'SELECT pg_stat_clear_snapshot()' -c "
	    SELECT b.n_tup_ins, b.n_tup_upd, s.n_tup_ins, s.n_tup_upd,
	           (SELECT dimension_dropped + dimension_overflow + visitors_dropped FROM shorturl.stats)
	    FROM pg_stat_user_tables b, pg_stat_user_tables s
	    WHERE b.relid = 'shorturl.link_visits_breakdown'::regclass
	      AND s.relid = 'shorturl.link_visitors_daily'::regclass" | tail -n1
}

# run WORKLOAD KIND ROUND
run() {
	local a b tps tx
	bench_psql -q -c 'SELECT shorturl.flush()' >/dev/null
	read -r -a a < <(written)
	[ -z "$statements" ] || bench_psql -q -c 'SELECT pg_stat_statements_reset()' >/dev/null
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-f "$S/$1.$2.sql" >"$BENCH_WORK/out" 2>&1 || { cat "$BENCH_WORK/out" >&2; die "pgbench failed"; }
	bench_psql -q -c 'SELECT shorturl.flush()' >/dev/null
	read -r -a b < <(written)
	# the flushes' statements: those on the extension's tables, not the
	# calls of its functions that ran them
	[ -z "$statements" ] || [ "$2" != visit ] || bench_psql -q -c "
	    INSERT INTO bench.statements
	    SELECT '$1', left(regexp_replace(query, '\s+', ' ', 'g'), 80), total_exec_time, calls, rows
	    FROM pg_stat_statements
	    WHERE query ~ 'shorturl\.(link|visit|pending)' AND query !~* '^\s*SELECT (shorturl|pg_)'"
	tps=$(awk '/^tps = / {print $3}' "$BENCH_WORK/out")
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$BENCH_WORK/out")
	bench_psql -q -c "INSERT INTO bench.runs VALUES ('$1', '$2', $3, $tps, $tx,
	                  $((b[0] - a[0])), $((b[1] - a[1])), $((b[2] - a[2])), $((b[3] - a[3])), $((b[4] - a[4])))"
}

for w in "${WORKLOADS[@]}"; do
	say "$w: $rounds rounds of resolve(code) and with every fact, ${seconds}s each"
	# each workload starts its day's analytics from nothing, then a warm-up
	# with facts, so that the worker's plans are made for tables with rows
	bench_psql -q -c 'SELECT shorturl.flush()' \
		-c 'TRUNCATE shorturl.link_visits_breakdown, shorturl.link_visitors_daily' >/dev/null
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T 3 -f "$S/$w.visit.sql" >/dev/null 2>&1
	bench_psql -q -c 'SELECT shorturl.flush()' -c 'ANALYZE shorturl.link_visits_breakdown, shorturl.link_visitors_daily' >/dev/null
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then run "$w" resolve "$r"; run "$w" visit "$r"; else run "$w" visit "$r"; run "$w" resolve "$r"; fi
	done
done

say "the floors: batches of $BATCH rows into tables of $rows"
bench_psql -q >/dev/null <<SQL
CREATE TABLE bench.breakdown (LIKE shorturl.link_visits_breakdown INCLUDING ALL) WITH (fillfactor = 80);
INSERT INTO bench.breakdown
SELECT 1 + i / 10, current_date - 1, 'referrer', 'v' || (i % 10), 1, 0
FROM generate_series(0, $rows - 1) i;
CREATE TABLE bench.sketches (LIKE shorturl.link_visitors_daily INCLUDING ALL);
INSERT INTO bench.sketches SELECT i, current_date - 1 - (i % 10), '\\x00112233445566778899aabbccddeeff'::bytea
FROM generate_series(1, $rows) i;
VACUUM ANALYZE bench.breakdown;
VACUUM ANALYZE bench.sketches;
SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.relnamespace = 'bench'::regnamespace AND c.relkind IN ('r', 'i');
CHECKPOINT;
CREATE TABLE bench.floor (tbl text, kind text, round int, us_per_row float8);
SQL
bench_psql -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET plan_cache_mode = force_generic_plan;
DO \$\$
DECLARE
  t0 timestamptz;
  ids int8[];
  n bigint;
  maxid int8 := $rows / 10;
BEGIN
  FOR r IN 0..$FLOOR_ROUNDS LOOP
    -- new rows: a day no row has yet, scattered links
    SELECT array_agg(k ORDER BY k) INTO ids
      FROM (SELECT DISTINCT 1 + (random() * (maxid - 1))::int8 AS k FROM generate_series(1, $BATCH * 2)) s;
    ids := ids[1:$BATCH];
    t0 := clock_timestamp();
    INSERT INTO bench.breakdown SELECT d.id, current_date + r, 'referrer', 'new', 1, 0 FROM unnest(ids) d(id);
    IF r > 0 THEN
      INSERT INTO bench.floor VALUES ('breakdown', 'insert', r,
        extract(epoch FROM clock_timestamp() - t0) * 1e6 / $BATCH);
    END IF;
    t0 := clock_timestamp();
    UPDATE bench.breakdown b SET visits = b.visits + 1, bots = b.bots + 0
      FROM unnest(ids) d(id)
     WHERE b.link_id = d.id AND b.day = current_date - 1 AND b.dimension = 'referrer' AND b.value = 'v3';
    GET DIAGNOSTICS n = ROW_COUNT;
    IF r > 0 THEN
      INSERT INTO bench.floor VALUES ('breakdown', 'update', r,
        extract(epoch FROM clock_timestamp() - t0) * 1e6 / greatest(n, 1));
    END IF;
    t0 := clock_timestamp();
    INSERT INTO bench.sketches SELECT d.id, current_date + r, '\\x00112233445566778899aabbccddeeff'::bytea
      FROM unnest(ids) d(id);
    IF r > 0 THEN
      INSERT INTO bench.floor VALUES ('sketches', 'insert', r,
        extract(epoch FROM clock_timestamp() - t0) * 1e6 / $BATCH);
    END IF;
    t0 := clock_timestamp();
    UPDATE bench.sketches s SET sketch = '\\xffeeddccbbaa99887766554433221100'::bytea
      FROM unnest(ids) d(id) WHERE s.link_id = d.id AND s.day = current_date - 1 - (d.id % 10)::int;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF r > 0 THEN
      INSERT INTO bench.floor VALUES ('sketches', 'update', r,
        extract(epoch FROM clock_timestamp() - t0) * 1e6 / greatest(n, 1));
    END IF;
  END LOOP;
END \$\$;
SQL

say "the backend's cost per click: $PERCALL_CLICKS clicks from one session"
bench_psql -q -c "ALTER SYSTEM SET shorturl.flush_interval = '1h'" \
	-c "ALTER SYSTEM SET shorturl.analytics_flush_interval = '1h'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
bench_psql -q >/dev/null <<SQL
SELECT setseed(0.5);
CREATE TABLE bench.percall_clicks AS
SELECT ($FIRST_CODE + 1 + floor(random() * $links))::text AS code, r.url AS referrer, c.code AS country,
       u.agent AS user_agent, (1 + floor(random() * $VISITORS))::text AS visitor
FROM (SELECT 1 + floor(random() * $nref)::int AS ri, 1 + floor(random() * $ncty)::int AS ci,
             1 + floor(random() * $nua)::int AS ui FROM generate_series(1, $PERCALL_CLICKS)) p
JOIN bench.referrers r ON r.n = p.ri JOIN bench.countries c ON c.n = p.ci JOIN bench.user_agents u ON u.n = p.ui;
CREATE TABLE bench.percall (kind text, round int, us float8);
SQL
# one session: its first clicks with facts are a warm-up, not kept
{
	for ((r = 0; r <= rounds; r++)); do
		for kind in resolve visit; do
			if [ "$kind" = resolve ]; then
				call='shorturl.resolve(code)'
			else
				call='shorturl.resolve(code, NULL, referrer, country, user_agent, visitor)'
			fi
			echo "SELECT shorturl.flush();"
			echo "SELECT clock_timestamp() AS t0 \\gset"
			echo "SELECT count($call) FROM bench.percall_clicks;"
			[ "$r" = 0 ] || echo "INSERT INTO bench.percall SELECT '$kind', $r, extract(epoch FROM clock_timestamp() - :'t0') * 1e6 / $PERCALL_CLICKS;"
		done
	done
} | bench_psql -q >/dev/null

{
	echo "pg_shorturl analytics floor (test/bench/analytics_floor.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it"
	echo "$links links; pgbench -M prepared, $clients clients, ${seconds}s runs, $rounds rounds, medians;" \
		"max_pending_dimensions = max_pending_visitors = $pending; huge_pages = ${huge:-off}"
	bench_psql -X <<SQL
CREATE FUNCTION pg_temp.med(float8[]) RETURNS float8 LANGUAGE sql AS
\$\$ SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(\$1) x \$\$;
CREATE TEMP TABLE f AS
SELECT tbl, kind, pg_temp.med(array_agg(us_per_row)) AS us FROM bench.floor GROUP BY 1, 2;
\\echo 'The floors, per row written (one session, one statement of $BATCH rows, $rows rows in the table):'
SELECT tbl AS "table", kind, round(us::numeric, 2) AS "us per row" FROM f ORDER BY 1, 2;
CREATE TEMP TABLE p AS SELECT kind, pg_temp.med(array_agg(us)) AS us FROM bench.percall GROUP BY 1;
\\echo 'The backend, per click (one session, $PERCALL_CLICKS scattered clicks, flushes held back):'
SELECT kind, round(us::numeric, 2) AS "us per click" FROM p ORDER BY 1;
CREATE TEMP TABLE w AS
SELECT workload,
       pg_temp.med(array_agg(tps) FILTER (WHERE kind = 'resolve')) AS tps_resolve,
       pg_temp.med(array_agg(tps) FILTER (WHERE kind = 'visit')) AS tps_visit,
       sum(b_ins) FILTER (WHERE kind = 'visit')::float8 / sum(clicks) FILTER (WHERE kind = 'visit') AS b_ins,
       sum(b_upd) FILTER (WHERE kind = 'visit')::float8 / sum(clicks) FILTER (WHERE kind = 'visit') AS b_upd,
       sum(s_ins) FILTER (WHERE kind = 'visit')::float8 / sum(clicks) FILTER (WHERE kind = 'visit') AS s_ins,
       sum(s_upd) FILTER (WHERE kind = 'visit')::float8 / sum(clicks) FILTER (WHERE kind = 'visit') AS s_upd,
       sum(dropped) FILTER (WHERE kind = 'visit') AS dropped
FROM bench.runs GROUP BY 1;
\\echo 'The runs: row versions written per click with every fact (by the worker, or by the flush after the run):'
SELECT workload, round(tps_resolve) AS "TPS resolve(code)", round(tps_visit) AS "TPS every fact",
       round((tps_visit / tps_resolve)::numeric, 3) AS "measured ratio",
       round(b_ins::numeric, 3) AS "breakdown ins", round(b_upd::numeric, 3) AS "breakdown upd",
       round(s_ins::numeric, 3) AS "sketch ins", round(s_upd::numeric, 3) AS "sketch upd",
       dropped AS "values and visitors dropped"
FROM w ORDER BY 1 DESC;
\\echo 'The bound: C / T is the machine time of a resolve(code) click ($cores cores), b the backend''s extra,'
\\echo 'w_ins the floor of the rows inserted alone (needed whatever the interval), w_all with the updates too:'
SELECT workload,
       round(($cores * 1e6 / tps_resolve)::numeric, 2) AS "C/T us",
       round(((SELECT us FROM p WHERE kind = 'visit') - (SELECT us FROM p WHERE kind = 'resolve'))::numeric, 2) AS "b us",
       round((b_ins * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'insert')
            + s_ins * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'insert'))::numeric, 2) AS "w_ins us",
       round((b_ins * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'insert')
            + s_ins * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'insert')
            + b_upd * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'update')
            + s_upd * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'update'))::numeric, 2) AS "w_all us",
       round(($cores * 1e6 / tps_resolve / ($cores * 1e6 / tps_resolve
            + (SELECT us FROM p WHERE kind = 'visit') - (SELECT us FROM p WHERE kind = 'resolve')
            + b_ins * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'insert')
            + s_ins * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'insert')))::numeric, 3) AS "bound, inserts",
       round(($cores * 1e6 / tps_resolve / ($cores * 1e6 / tps_resolve
            + (SELECT us FROM p WHERE kind = 'visit') - (SELECT us FROM p WHERE kind = 'resolve')
            + b_ins * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'insert')
            + s_ins * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'insert')
            + b_upd * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'update')
            + s_upd * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'update')))::numeric, 3) AS "bound, all",
       round(($cores * 1e6 / tps_resolve / ($cores * 1e6 / tps_resolve
            + b_ins * (SELECT us FROM f WHERE tbl = 'breakdown' AND kind = 'insert')
            + s_ins * (SELECT us FROM f WHERE tbl = 'sketches' AND kind = 'insert')))::numeric, 3) AS "bound, b = 0, inserts",
       $GOAL AS goal
FROM w ORDER BY 1 DESC;
SQL
	[ -z "$statements" ] || bench_psql -X <<'SQL'
\echo 'The flushes'' statements in the runs with every fact, by share of their time:'
SELECT workload, round((100 * sum(ms) / sum(sum(ms)) OVER (PARTITION BY workload))::numeric, 1) AS "% of time",
       round((sum(ms) * 1000 / nullif(sum(rows), 0))::numeric, 2) AS "us per row", sum(calls) AS calls, sum(rows) AS rows, query
FROM bench.statements GROUP BY workload, query ORDER BY workload DESC, 2 DESC;
SQL
} | tee "$out"
