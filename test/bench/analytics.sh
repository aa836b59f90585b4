#!/bin/bash
# test/bench/analytics.sh: what visit analytics cost (issue 14): resolve()
# with everything the application knows of a visit against resolve(code),
# the flush of the series, dimensions and visitors, the size of the rollup
# tables, and a chart of one link's series.
#
# BENCH_LINKS links (100,000) are stored as aliases with decimal codes
# FIRST_CODE + 1 ... FIRST_CODE + N, and bench.plain (code text PRIMARY
# KEY, url text) holds the same codes and URLs.  The server preloads the
# library and its worker serves the database.  The visit facts come from
# test/bench/analytics-facts.sql: a referrer from 50 URLs, a country from
# 30 codes, a user agent from 10 (one bot), each picked uniformly, and a
# visitor random(1, BENCH_VISITORS) as text.
#
# 1. Throughput.  Workloads pick a rank r (uniform: random(0, N - 1);
#    zipfS: random_zipfian(0, N - 1, S)) and click the code
#    FIRST_CODE + 1 + permute(r, N, SEED), as longtail.sh does.  Cases:
#
#      plain    SELECT url FROM bench.plain WHERE code = $1
#      resolve  SELECT shorturl.resolve($1)
#      visit    SELECT shorturl.resolve($1, NULL, referrer, country,
#                                       user_agent, visitor)
#
#    (visit's strings are elements of constant arrays in the prepared
#    statement, picked by pgbench's random numbers: a subscript per fact,
#    well under a microsecond.)  Every case is a pgbench run (-M prepared,
#    over the Unix socket); every round runs every case once, in an order
#    that rotates from round to round; figures are medians over rounds.
#    Per run: TPS, its ratios to plain and to resolve, mean and p99
#    latency, WAL bytes per click (flushes included), the worker's share
#    of the server's CPU time, the worker's flushes, and the analytics'
#    shared-memory misses (shorturl.stats: dimension values counted as
#    "other" for want of room, values dropped, visitors dropped).  Each
#    run starts from a flush and a VACUUM of the tables the flush writes.
#    Phase 1 runs at the default settings; then (BENCH_MAX_PENDING_DIMENSIONS,
#    default 262144; 0 skips it) phase 2 runs the same cases on a second
#    server with that shorturl.max_pending_dimensions, which 2, 3, the
#    per-click cost and 4 use too.  Both servers start before anything is
#    measured, so both load the same build of the library (the report
#    names it, and says if it was reinstalled during the run).  The
#    analytics tables and counts are emptied before each phase, then a
#    3-second warm-up clicks with every fact and the tables are ANALYZEd:
#    the worker's flush plans are then made for tables with rows, as in
#    service (see 2 for what a plan made for an empty table costs).
#    Apart from the worker: the backend's own cost per click, 20,000
#    scattered clicks from one session (SELECT count(resolve(...)) over a
#    table of codes and facts, flushes held back, an untimed flush before
#    each), resolve(code) against resolve() with every fact, at phase 2's
#    settings.
#
# 2. The flush (at phase 2's settings): flushes held back
#    (shorturl.flush_interval = '1h', ALTER SYSTEM and a reload), n
#    distinct links (BENCH_FLUSH_LINKS: 10000 and 50000) clicked once each
#    in the current hour, with no facts (counts and the hourly series) or
#    with all four (plus 3 dimension values and, for non-bots, a visitor
#    each), then shorturl.flush() timed in a new session.  The tables hold
#    the rows of 3, moved a day back, and are ANALYZEd.  Three flushes per
#    mode and size: the first writes new link-hours and link-days (after a
#    CHECKPOINT), the next two add to them (updates; the visitors differ).
#    Then once more, new rows, BENCH_FLUSH_TRAP_LINKS links (5,000), into
#    tables emptied and VACUUMed while empty (reltuples 0): a plan made for
#    a table known to be empty must not scan it for every value it looks
#    up, or the flush is quadratic in the rows it adds (the first 0.8
#    flush's generic plan did: 7 to 9 s for these 5,000 links, against
#    about 0.6 s).  Everywhere else only tables that have pages are
#    VACUUMed, so that the other figures do not depend on it.
#
# 3. The rollup tables (run before 2): after emptying them,
#    BENCH_ROLLUP_CLICKS clicks (1,000,000) with every fact, Zipf s=1.001
#    over the links, flushed by the worker every second as in service (the
#    tables ANALYZEd once its first flush has committed, as autovacuum
#    would soon), then a last flush: rows and sizes (pg_total_relation_size)
#    of the tables, as written (after a VACUUM) and compacted (VACUUM
#    FULL), per million clicks; and checks that the series and each
#    dimension add up to the clicks.
#
# 4. A chart: a link "launch" with 7 days of synthetic hourly history
#    (a daily cycle, a launch peak, 6% bots) written into
#    shorturl.link_visits_hourly and shorturl.visit_counts, plus live
#    clicks with facts in the current hour (some flushed, some not), drawn
#    from visit_series('launch', now() - 7 days, now(), 'hour') with and
#    without bots.
#
# Goal (from the issue): resolve() with every fact at least 0.9x
# resolve(code).  A benchmark never fails on time: the goal is reported,
# not enforced.
#
#   BENCH_SECONDS                 seconds per pgbench run (default 10)
#   BENCH_ROUNDS                  rounds (default 3)
#   BENCH_CLIENTS                 pgbench clients (default 8)
#   BENCH_THREADS                 pgbench threads (default 2)
#   BENCH_LINKS                   links (default 100000)
#   BENCH_WORKLOADS               (default "uniform zipf1.001 zipf1.2")
#   BENCH_VISITORS                visitor pool (default 1000000)
#   BENCH_MAX_PENDING_DIMENSIONS  phase 2's setting (default 262144; 0: no
#                                 phase 2, and 2-4 run at the defaults)
#   BENCH_MAX_PENDING_VISITORS    phase 2's shorturl.max_pending_visitors
#                                 (default: the default)
#   BENCH_PHASE2_CONF             more lines for phase 2's postgresql.conf,
#                                 e.g. "shorturl.analytics_flush_interval =
#                                 '1s'" to compare a schedule (default none)
#   BENCH_FLUSH_LINKS             link counts of the flush measurement
#                                 (default "10000 50000")
#   BENCH_FLUSH_TRAP_LINKS        links of the flush into tables VACUUMed
#                                 while empty (default 5000; 0 skips it)
#   BENCH_ROLLUP_CLICKS           clicks of the size measurement (default
#                                 1000000)
#   BENCH_PLOT                    the ratios, PNG (default
#                                 test/bench/results/analytics.png)
#   BENCH_SERIES_PLOT             the series, PNG (default
#                                 test/bench/results/analytics-series.png)
#   BENCH_OUT                     the report, also written here (default
#                                 test/bench/results/analytics-<date>.txt)
#   BENCH_NO_BUILD                set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-100000}
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-uniform zipf1.001 zipf1.2}"
visitor_pool=${BENCH_VISITORS:-1000000}
big_dims=${BENCH_MAX_PENDING_DIMENSIONS:-262144}
big_visitors=${BENCH_MAX_PENDING_VISITORS:-}
read -r -a FLUSH_SIZES <<<"${BENCH_FLUSH_LINKS:-10000 50000}"
rollup_clicks=${BENCH_ROLLUP_CLICKS:-1000000}
TRAP_LINKS=${BENCH_FLUSH_TRAP_LINKS:-5000}
# scattered clicks from one session: 3 dimension values each, and a visitor
# for nine in ten (60,000 values, 18,000 visitors), fit phase 2's tables
PERCALL_CLICKS=$((links < 20000 ? links : 20000))
WARMUP_SECONDS=3
plot=${BENCH_PLOT:-$BENCH_DIR/results/analytics.png}
series_plot=${BENCH_SERIES_PLOT:-$BENCH_DIR/results/analytics-series.png}
out=${BENCH_OUT:-$BENCH_DIR/results/analytics-$(date -u +%Y-%m-%d).txt}

VISIT_GOAL=0.9
FIRST_CODE=1000000
SEED=12
# resolve() keeps three dimension values per click (referrer, country, device)
DIMS_PER_CLICK=3
# the chart's link: its hours of synthetic history, and its live clicks
SERIES_HOURS=167
SERIES_LIVE_CLICKS=1500
SERIES_LIVE_VISITORS=700
ANALYTICS_TABLES='shorturl.link_visits_hourly, shorturl.link_visits_daily, shorturl.link_visits_breakdown, shorturl.link_visitors_daily'

for s in "${FLUSH_SIZES[@]}"; do
	[ "$s" -le "$links" ] || die "BENCH_FLUSH_LINKS: $s is more than the $links links"
done

# lib_id names the installed library, which a server loads when it starts.
# Both servers (phase 1's and phase 2's) start before anything is measured,
# so a reinstall during the run cannot split the figures between builds.
lib_path=$("$PG_BIN/pg_config" --pkglibdir)/pg_shorturl.so
lib_id() { printf '%s (md5 %s, installed %s)' "$lib_path" "$(md5sum "$lib_path" | cut -c1-12)" "$(date -u -r "$lib_path" '+%Y-%m-%d %H:%M:%S UTC')"; }

conf=$(mktemp /tmp/pg_shorturl-analytics.XXXXXX.conf)
echo "shorturl.database = 'postgres'" >"$conf"
bench_start "$conf"
lib_start=$(lib_id)
lib_big=$lib_start
SERVER1=$BENCH_WORK
SERVER2=$BENCH_WORK
if [ "$big_dims" -gt 0 ]; then
	# phase 2's server, in a directory of its own (its own socket)
	SERVER2=$BENCH_WORK/big
	mkdir "$SERVER2"
	{
		echo "shorturl.max_pending_dimensions = $big_dims"
		[ -z "$big_visitors" ] || echo "shorturl.max_pending_visitors = $big_visitors"
		[ -z "${BENCH_PHASE2_CONF:-}" ] || echo "$BENCH_PHASE2_CONF"
	} >>"$conf"
	trap 'scratch_server_stop "$SERVER2"; scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK"' EXIT
	scratch_server_start "$SERVER2" "$BENCH_DIR/bench.conf" "$conf"
	lib_big=$(lib_id)
fi
rm -f "$conf"

# use_server DIR sends what follows (psql, pgbench) to the server in DIR.
use_server() {
	SERVER=$1
	export PGHOST=$1
}

# wait_worker waits for the worker to serve the database and checks that
# clicks are counted in shared memory.
wait_worker() {
	bench_wait_worker
	bench_psql -Atc 'SELECT worker_pid FROM shorturl.stats' | grep -q . || die "no worker serves the database"
}

# prewarm reads the tables and indexes the cases use into shared buffers.
prewarm() {
	bench_psql -q -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS pg_prewarm' -c "
	    SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
	    WHERE c.relnamespace IN ('shorturl'::regnamespace, 'bench'::regnamespace)
	      AND c.relkind IN ('r', 'i', 't')" >/dev/null
}

# empty_analytics writes what shared memory holds, then empties the counts
# and every analytics table (their sizes and flushes start from nothing).
empty_analytics() {
	bench_psql -q -c 'SELECT shorturl.flush()' \
		-c "TRUNCATE shorturl.visit_counts, shorturl.pending_visits, $ANALYTICS_TABLES" >/dev/null
}

# vacuum_written VACUUMs the counts and the analytics tables, those that
# have pages: a VACUUM of an empty table records it as empty (reltuples 0),
# and the flush's cached plans, made then, may scan it for every value they
# look up however large it grows (measured on its own in 2).
vacuum_written() {
	local tables
	tables=$(bench_psql -Atc "SELECT string_agg(t::text, ', ') FROM unnest('{shorturl.visit_counts, $ANALYTICS_TABLES}'::regclass[]) t
	                          WHERE pg_relation_size(t) > 0")
	[ -z "$tables" ] || bench_psql -q -c "VACUUM $*$tables"
}

# warm_up clicks for WARMUP_SECONDS with every fact (the first workload),
# flushes, and ANALYZEs the tables, so that the worker's flush plans are
# made for tables that have rows, as they are in service.  A table just
# emptied is estimated at 10 pages: the flush's plan for the dimensions
# then hashes the whole table for every batch of values it writes.
warm_up() {
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$WARMUP_SECONDS" \
		-f "$S/${WORKLOADS[0]}.visit.sql" >"$BENCH_WORK/warm_up.out" 2>&1 ||
		{ cat "$BENCH_WORK/warm_up.out" >&2; die "pgbench failed in the warm-up"; }
	bench_psql -q -c 'SELECT shorturl.flush()' >/dev/null
	vacuum_written "ANALYZE "
}

# settings prints the extension's memory and flush settings.
settings() {
	bench_psql -Atc "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
	                 FROM pg_settings WHERE name IN ('shorturl.max_pending_links', 'shorturl.max_pending_dimensions',
	                     'shorturl.max_pending_visitors', 'shorturl.flush_interval', 'shorturl.max_dimension_values',
	                     'shorturl.analytics_flush_interval')"
}

# load_links stores the links and the facts in the current server.
load_links() {
	bench_make_links "$links" "$FIRST_CODE"
	bench_psql -q -f "$BENCH_DIR/analytics-facts.sql"
	bench_psql -q -c 'ANALYZE bench.referrers, bench.countries, bench.user_agents'
	wait_worker
	prewarm
	bench_psql -q -c CHECKPOINT
}

say "making $links links"
if [ "$SERVER2" != "$SERVER1" ]; then
	use_server "$SERVER2"
	bench_psql -q -c 'CREATE EXTENSION pg_shorturl'
	bench_psql -q -f "$BENCH_DIR/harness.sql"
	load_links
	settings2=$(settings)
fi
use_server "$SERVER1"
load_links
nref=$(bench_psql -Atc 'SELECT count(*) FROM bench.referrers')
ncty=$(bench_psql -Atc 'SELECT count(*) FROM bench.countries')
nua=$(bench_psql -Atc 'SELECT count(*) FROM bench.user_agents')
# the device classes resolve() will record, against those the list expects
ua_classes=$(bench_psql -Atc "SELECT string_agg(n || ': ' || shorturl.device_class(agent)
                                  || CASE WHEN shorturl.device_class(agent) <> expected_class
                                          THEN ' (expected ' || expected_class || ')' ELSE '' END, ', ' ORDER BY n)
                              FROM bench.user_agents")
bot_share=$(bench_psql -Atc "SELECT round(avg((shorturl.device_class(agent) = 'bot')::int), 3) FROM bench.user_agents")
settings1=$(settings)

# The pgbench scripts: WORKLOAD.CASE.  The facts are elements of constant
# arrays (folded into the prepared statement), picked by subscripts.
array_of() { bench_psql -Atc "SELECT 'ARRAY[' || string_agg(quote_literal($1), ', ' ORDER BY n) || ']' FROM $2"; }
ref_array=$(array_of url bench.referrers)
cty_array=$(array_of code bench.countries)
ua_array=$(array_of agent bench.user_agents)
S=$BENCH_WORK/scripts
mkdir -p "$S"
for w in "${WORKLOADS[@]}"; do
	keys=$(bench_keys "$w" "$links" "$FIRST_CODE" "$SEED")
	printf '%s\nSELECT url FROM bench.plain WHERE code = :c;\n' "$keys" >"$S/$w.plain.sql"
	printf '%s\nSELECT shorturl.resolve(:c);\n' "$keys" >"$S/$w.resolve.sql"
	printf '%s\n\\set ri random(1, %d)\n\\set ci random(1, %d)\n\\set ui random(1, %d)\n\\set v random(1, %d)\nSELECT shorturl.resolve(:c, NULL, (%s)[:ri], (%s)[:ci], (%s)[:ui], :v);\n' \
		"$keys" "$nref" "$ncty" "$nua" "$visitor_pool" "$ref_array" "$cty_array" "$ua_array" >"$S/$w.visit.sql"
done

# The cases: phase, workload, case, and the plain and resolve cases of the
# same phase and workload (by number).
phases=() works=() kinds=() plain_ids=() resolve_ids=()
add_case() { phases+=("$1"); works+=("$2"); kinds+=("$3"); plain_ids+=("$4"); resolve_ids+=("$5"); }
for p in 1 2; do
	[ "$p" = 2 ] && [ "$big_dims" -le 0 ] && break
	for w in "${WORKLOADS[@]}"; do
		k=${#kinds[@]}
		add_case "$p" "$w" plain "$k" $((k + 1))
		add_case "$p" "$w" resolve "$k" $((k + 1))
		add_case "$p" "$w" visit "$k" $((k + 1))
	done
done
n=${#kinds[@]}
# the cases and their runs' figures, in both servers (phase 1's runs are
# copied to phase 2's server, which reports)
for srv in $(printf '%s\n' "$SERVER1" "$SERVER2" | sort -u); do
	use_server "$srv"
	{
		echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, phase int, workload text, kind text, plain_id int, resolve_id int);'
		echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, mean_ms float8, p99_ms float8, tx bigint,
		        wal_bytes numeric, worker_cpu float8, flushes bigint, room_waits bigint, fallbacks bigint,
		        dim_overflow bigint, dim_dropped bigint, visitors_dropped bigint);'
		for ((i = 0; i < n; i++)); do
			printf "INSERT INTO bench.pgb_cases VALUES (%d, %d, '%s', '%s', %d, %d);\n" \
				"$i" "${phases[$i]}" "${works[$i]}" "${kinds[$i]}" "${plain_ids[$i]}" "${resolve_ids[$i]}"
		done
	} | bench_psql -q
done
use_server "$SERVER1"

# pg_cpu prints the CPU ticks of the worker and of all the server's
# processes: the postmaster's own and its reaped children's, and those of
# its live children (pgbench's backends end with the run and are reaped).
pg_cpu() {
	local pm wpid pid rest f fields total=0 worker=0
	pm=$(head -n1 "$SERVER/server/postmaster.pid")
	wpid=$(bench_psql -Atc 'SELECT worker_pid FROM shorturl.stats')
	for f in /proc/[0-9]*/stat; do
		{ read -r rest <"$f"; } 2>/dev/null || continue
		pid=${rest%% *}
		# fields after "pid (comm) ": state ppid ... utime(12th) stime cutime cstime
		read -r -a fields <<<"${rest##*') '}"
		if [ "$pid" = "$pm" ]; then
			total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
		elif [ "${fields[1]}" = "$pm" ]; then
			total=$((total + fields[11] + fields[12]))
			[ "$pid" = "$wpid" ] && worker=$((fields[11] + fields[12]))
		fi
	done
	echo "$worker $total"
}

counters() {
	bench_psql -At -F ' ' -c 'SELECT flushes, room_waits, sync_fallbacks, dimension_overflow, dimension_dropped,
	                                 visitors_dropped FROM shorturl.stats'
}

# pgb ID ROUND runs case ID once and records its figures.
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 file
	local lsn0 lsn1 w0 t0 w1 t1 tps tx p99 mean
	local fl0 rw0 fb0 ov0 dd0 vd0 fl1 rw1 fb1 ov1 dd1 vd1
	file=$S/${works[$id]}.${kinds[$id]}.sql
	mkdir -p "$log"
	# a clean start: nothing pending, no dead tuples where the flush writes
	bench_psql -q -c 'SELECT shorturl.flush()' >/dev/null
	vacuum_written
	read -r fl0 rw0 fb0 ov0 dd0 vd0 < <(counters)
	read -r w0 t0 < <(pg_cpu)
	lsn0=$(bench_psql -Atc 'SELECT pg_current_wal_insert_lsn()')
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-l --log-prefix="$log/tx" -f "$file" >"$log/out" 2>&1 ||
		{ cat "$log/out" >&2; die "pgbench failed in case ${works[$id]} ${kinds[$id]}"; }
	sleep 0.3
	read -r w1 t1 < <(pg_cpu)
	# the run's clicks still in shared memory are part of its WAL
	lsn1=$(bench_psql -At -c 'SELECT shorturl.flush()' -c 'SELECT pg_current_wal_insert_lsn()' | tail -n1)
	read -r fl1 rw1 fb1 ov1 dd1 vd1 < <(counters)
	tps=$(awk '/^tps = / {print $3}' "$log/out")
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$log/out")
	# column 3 of the log is the transaction's latency in microseconds
	read -r p99 mean < <(cat "$log"/tx.* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1; s += $1}
		     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
		          printf "%.3f %.3f\n", v[i] / 1000, s / NR / 1000}')
	rm -rf "$log"
	bench_psql -q -c "INSERT INTO bench.pgb VALUES ($id, $round, $tps, $mean, $p99, $tx,
	                  pg_wal_lsn_diff('$lsn1', '$lsn0'), ($w1 - $w0)::float8 / greatest($t1 - $t0, 1),
	                  $fl1 - $fl0, $rw1 - $rw0, $fb1 - $fb0, $ov1 - $ov0, $dd1 - $dd0, $vd1 - $vd0)"
}

# run_phase P runs the rounds of the cases of phase P.
run_phase() {
	local ids=() r k
	for ((k = 0; k < n; k++)); do [ "${phases[$k]}" = "$1" ] && ids+=("$k"); done
	say "phase $1: ${#ids[@]} cases x $rounds rounds x ${seconds}s"
	for ((r = 1; r <= rounds; r++)); do
		for ((k = 0; k < ${#ids[@]}; k++)); do
			pgb "${ids[$(((k + r) % ${#ids[@]}))]}" "$r"
		done
	done
}

# 1, at the default settings
empty_analytics
warm_up
run_phase 1

if [ "$SERVER2" != "$SERVER1" ]; then
	say "phase 2's server: shorturl.max_pending_dimensions = $big_dims${big_visitors:+, max_pending_visitors = $big_visitors}"
	bench_psql -q -c "\\copy bench.pgb TO '$BENCH_WORK/pgb.phase1'"
	scratch_server_stop "$SERVER1"
	use_server "$SERVER2"
	bench_psql -q -c "\\copy bench.pgb FROM '$BENCH_WORK/pgb.phase1'"
	prewarm
else
	settings2=$settings1
fi

# 3. The rollup tables after ROLLUP_CLICKS clicks with facts, Zipf s=1.001
say "rollup: $rollup_clicks clicks with facts, Zipf s=1.001 over $links links"
empty_analytics
bench_psql -q -c CHECKPOINT
rollup_file=$S/rollup.sql
sed 's/^\\set r .*/\\set r random_zipfian(0, '$((links - 1))', 1.001)/' "$S/${WORKLOADS[0]}.visit.sql" >"$rollup_file"
read -r -a rollup_before < <(counters)
rollup_t0=$(date +%s)
"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -t $((rollup_clicks / clients)) \
	-f "$rollup_file" >"$BENCH_WORK/rollup.out" 2>&1 &
rollup_pid=$!
# once the worker's first flush has committed rows, the ANALYZE that
# autovacuum would soon make (see warm_up)
for ((i = 0; i < 100; i++)); do
	[ "$(bench_psql -Atc 'SELECT EXISTS (SELECT FROM shorturl.link_visits_breakdown)')" = t ] && break
	sleep 0.2
done
vacuum_written "ANALYZE "
wait "$rollup_pid" || { cat "$BENCH_WORK/rollup.out" >&2; die "pgbench failed in the rollup run"; }
rollup_clicks=$(awk '/^number of transactions actually processed/ {print $NF}' "$BENCH_WORK/rollup.out" | cut -d/ -f1)
bench_psql -q -c 'SELECT shorturl.flush()' >/dev/null
rollup_s=$(($(date +%s) - rollup_t0))
read -r -a rollup_after < <(counters)
rollup_misses="dimension_overflow $((rollup_after[3] - rollup_before[3])), dimension_dropped $((rollup_after[4] - rollup_before[4])), visitors_dropped $((rollup_after[5] - rollup_before[5])), room_waits $((rollup_after[1] - rollup_before[1])), sync_fallbacks $((rollup_after[2] - rollup_before[2]))"
rollup_flushes=$((rollup_after[0] - rollup_before[0]))
bench_psql -q <<SQL
CREATE TABLE bench.rollup (stage int, tbl regclass, rows bigint, total_bytes bigint, heap_bytes bigint,
                           index_bytes bigint, toast_bytes bigint);
CREATE TABLE bench.rollup_checks (what text, value numeric);
VACUUM ANALYZE shorturl.visit_counts, $ANALYTICS_TABLES;
CREATE PROCEDURE bench.rollup_sizes(stage int) LANGUAGE sql AS \$\$
INSERT INTO bench.rollup
SELECT stage, t, (SELECT reltuples::bigint FROM pg_class WHERE oid = t), pg_total_relation_size(t),
       pg_relation_size(t), pg_indexes_size(t), pg_table_size(t) - pg_relation_size(t)
FROM unnest('{shorturl.link_visits_hourly, shorturl.link_visits_breakdown, shorturl.link_visitors_daily,
              shorturl.link_visits_daily, shorturl.visit_counts}'::regclass[]) t
\$\$;
CALL bench.rollup_sizes(1);
VACUUM FULL shorturl.visit_counts, shorturl.link_visits_hourly, shorturl.link_visits_breakdown, shorturl.link_visitors_daily;
ANALYZE shorturl.visit_counts, $ANALYTICS_TABLES;
CALL bench.rollup_sizes(2);
INSERT INTO bench.rollup_checks VALUES
    ('clicks in visit_counts', (SELECT sum(visits) FROM shorturl.visit_counts)),
    ('clicks in link_visits_hourly', (SELECT sum(visits) FROM shorturl.link_visits_hourly)),
    ('bots'' clicks in link_visits_hourly', (SELECT sum(bots) FROM shorturl.link_visits_hourly)),
    ('clicks by referrer', (SELECT sum(visits) FROM shorturl.link_visits_breakdown WHERE dimension = 'referrer')),
    ('clicks by country', (SELECT sum(visits) FROM shorturl.link_visits_breakdown WHERE dimension = 'country')),
    ('clicks by device', (SELECT sum(visits) FROM shorturl.link_visits_breakdown WHERE dimension = 'device')),
    ('links clicked', (SELECT count(*) FROM shorturl.visit_counts)),
    ('link-hours', (SELECT count(*) FROM shorturl.link_visits_hourly)),
    ('breakdown rows "other"', (SELECT count(*) FROM shorturl.link_visits_breakdown WHERE value = 'other')),
    ('link-days with a visitor sketch', (SELECT count(*) FROM shorturl.link_visitors_daily)),
    ('  of them 3,074 bytes (384 visitors or more)', (SELECT count(*) FROM shorturl.link_visitors_daily WHERE octet_length(sketch) > 3072)),
    ('  mean sketch bytes', (SELECT round(avg(octet_length(sketch)), 1) FROM shorturl.link_visitors_daily)),
    ('estimated visitors, summed over link-days', (SELECT sum(shorturl._unique_visitors(link_id, day, day + 1)) FROM shorturl.link_visitors_daily));
SQL

# 2. The flush of n distinct links, with and without facts
say "flush of ${FLUSH_SIZES[*]} links, with and without facts"
bench_psql -q -c "ALTER SYSTEM SET shorturl.flush_interval = '1h'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 2
bench_psql -q -c 'CREATE TABLE bench.flush (mode text, links int, k int, flushed bigint, pending_dims bigint,
                  pending_visitors bigint, wal_bytes numeric, stmt_ms float8, flush_ms float8)'
# flush_links MODE N K clicks N links spread over all, once each, and
# times the flush that writes them (in a new session: its plans are made
# for the tables as they are now).
flush_links() {
	local mode=$1 size=$2 k=$3 step=$(($links / $2)) click
	if [ "$mode" = counts ]; then
		click="SELECT count(shorturl.resolve(($FIRST_CODE + 1 + i * $step)::text)) FROM generate_series(0, $size - 1) i"
	else
		click="SELECT count(shorturl.resolve(($FIRST_CODE + 1 + i * $step)::text, NULL, r.url, c.code, u.agent,
		                                     (i * 3 + $k)::text))
		       FROM generate_series(0, $size - 1) i
		       JOIN bench.referrers r ON r.n = 1 + i % $nref
		       JOIN bench.countries c ON c.n = 1 + i % $ncty
		       JOIN bench.user_agents u ON u.n = 1 + i % $nua"
	fi
	bench_psql -q <<SQL
$click \gset
SQL
	bench_psql -q <<SQL
SELECT pending_dimension_values AS pd, pending_visitors AS pv FROM shorturl.stats \gset
SELECT pg_current_wal_insert_lsn() AS l0, clock_timestamp() AS t0 \gset
SELECT shorturl.flush() AS flushed \gset
INSERT INTO bench.flush
SELECT '$mode', $size, $k, :flushed, :pd, :pv, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0'),
       extract(epoch FROM clock_timestamp() - :'t0') * 1000, (SELECT last_flush_ms FROM shorturl.stats);
SQL
	vacuum_written
}
# the rollup's rows (3.) a day back, so that the flushes below write new
# link-hours and link-days into tables of that size
bench_psql -q <<'SQL'
UPDATE shorturl.link_visits_hourly SET hour = hour - interval '1 day';
UPDATE shorturl.link_visits_breakdown SET day = day - 1;
UPDATE shorturl.link_visitors_daily SET day = day - 1;
SQL
for mode in counts facts; do
	for size in "${FLUSH_SIZES[@]}"; do
		# the rows the last measurement wrote today go
		bench_psql -q <<'SQL'
DELETE FROM shorturl.link_visits_hourly WHERE hour >= date_trunc('day', now(), 'UTC');
DELETE FROM shorturl.link_visits_breakdown WHERE day >= (now() AT TIME ZONE 'UTC')::date;
DELETE FROM shorturl.link_visitors_daily WHERE day >= (now() AT TIME ZONE 'UTC')::date;
SQL
		vacuum_written "ANALYZE "
		bench_psql -q -c CHECKPOINT
		for k in 1 2 3; do
			flush_links "$mode" "$size" "$k"
		done
	done
done
# The same with facts, new rows, but the tables VACUUMed while empty
if [ "$TRAP_LINKS" -gt 0 ]; then
	say "flush of $TRAP_LINKS links with facts into tables VACUUMed while empty"
	empty_analytics
	bench_psql -q -c "VACUUM shorturl.visit_counts, $ANALYTICS_TABLES" -c CHECKPOINT
	flush_links 'facts, tables vacuumed empty' "$TRAP_LINKS" 1
fi

# The backend's cost per click, without the worker: PERCALL_CLICKS
# scattered clicks from one session, resolve(code) and resolve() with every
# fact, in a rotating order, each after an untimed flush
say "the backend's cost per click"
bench_psql -q <<SQL
SELECT setseed(0.5) \gset
CREATE TABLE bench.percall_clicks AS
SELECT ($FIRST_CODE + 1 + floor(random() * $links))::text AS code, r.url AS referrer, c.code AS country,
       u.agent AS user_agent, (1 + floor(random() * $visitor_pool))::text AS visitor
FROM (SELECT 1 + floor(random() * $nref)::int AS ri, 1 + floor(random() * $ncty)::int AS ci,
             1 + floor(random() * $nua)::int AS ui FROM generate_series(1, $PERCALL_CLICKS)) p
JOIN bench.referrers r ON r.n = p.ri JOIN bench.countries c ON c.n = p.ci JOIN bench.user_agents u ON u.n = p.ui;
CREATE TABLE bench.percall (kind text, round int, ms float8, dims_dropped bigint, visitors_dropped bigint);
SQL
percall_kinds=(resolve visit)
for ((r = 1; r <= rounds; r++)); do
	for ((j = 0; j < ${#percall_kinds[@]}; j++)); do
		kind=${percall_kinds[$(((j + r) % ${#percall_kinds[@]}))]}
		if [ "$kind" = resolve ]; then
			call='shorturl.resolve(code)'
		else
			call='shorturl.resolve(code, NULL, referrer, country, user_agent, visitor)'
		fi
		bench_psql -q <<SQL
SELECT shorturl.flush() \gset
SELECT dimension_dropped AS d0, visitors_dropped AS v0, clock_timestamp() AS t0 FROM shorturl.stats \gset
SELECT count($call) FROM bench.percall_clicks \gset
INSERT INTO bench.percall
SELECT '$kind', $r, extract(epoch FROM clock_timestamp() - :'t0') * 1000, dimension_dropped - :d0, visitors_dropped - :v0
FROM shorturl.stats;
SQL
	done
done
bench_psql -q -c 'SELECT shorturl.flush()' >/dev/null
bench_psql -q -c 'ALTER SYSTEM RESET shorturl.flush_interval' -c 'SELECT pg_reload_conf()' >/dev/null

# 1, at phase 2's settings
if [ "$big_dims" -gt 0 ]; then
	empty_analytics
	warm_up
	run_phase 2
fi

# 4. One link's series: synthetic history, live clicks, visit_series()
say "the series chart"
# the history's oldest hour must stay an hour (the analytics job merges
# hours older than shorturl.hourly_retention into days)
bench_psql -q -c "ALTER SYSTEM SET shorturl.hourly_retention = '8d'" -c 'SELECT pg_reload_conf()' >/dev/null
series_data=$BENCH_WORK/series.dat
bench_psql -q <<SQL
INSERT INTO shorturl.links (id, code, url, is_alias, created_at)
VALUES (nextval('shorturl.link_id_seq'), 'launch', 'https://example.com/launch', true, now() - interval '8 days');
-- a daily cycle (low at 04:00 UTC, high at 16:00), weekends at 60%, a
-- launch 3 days ago whose peak decays over a day, some noise; 6% bots
INSERT INTO shorturl.link_visits_hourly (link_id, hour, visits, bots)
SELECT l.id, x.h, x.v, round(x.v * 0.06)
FROM shorturl.links l,
     (SELECT h, round((40 + 35 * sin(2 * pi() * (extract(hour FROM h AT TIME ZONE 'UTC') - 10) / 24))
                      * CASE WHEN extract(isodow FROM h AT TIME ZONE 'UTC') >= 6 THEN 0.6 ELSE 1 END
                      + CASE WHEN h >= launch THEN 600 * exp(-extract(epoch FROM h - launch) / 3600 / 6) ELSE 0 END
                      + 10 * random())::bigint AS v
      FROM (SELECT date_trunc('hour', now()) - interval '3 days' AS launch) a,
           generate_series(date_trunc('hour', now()) - interval '$SERIES_HOURS hours',
                           date_trunc('hour', now()) - interval '1 hour', interval '1 hour') h) x
WHERE l.code = 'launch';
INSERT INTO shorturl.visit_counts (link_id, visits, last_visit_at)
SELECT link_id, sum(visits), max(hour) + interval '59 minutes' FROM shorturl.link_visits_hourly h
WHERE link_id = (SELECT id FROM shorturl.links WHERE code = 'launch') GROUP BY link_id;
SQL
# the live clicks' facts, picked at random (with a fixed seed) and kept,
# so that the breakdown and the visitors can be checked
bench_psql -q <<SQL
SELECT setseed(0.14) \gset
CREATE TABLE bench.live AS
SELECT i, 1 + floor(random() * $nref)::int AS ri, 1 + floor(random() * $ncty)::int AS ci,
       1 + floor(random() * $nua)::int AS ui, (1 + floor(random() * $SERIES_LIVE_VISITORS))::text AS v
FROM generate_series(1, $SERIES_LIVE_CLICKS) i;
SQL
live_sql() {
	echo "SELECT count(shorturl.resolve('launch', NULL, r.url, c.code, u.agent, l.v))
	      FROM bench.live l JOIN bench.referrers r ON r.n = l.ri JOIN bench.countries c ON c.n = l.ci
	      JOIN bench.user_agents u ON u.n = l.ui WHERE $1"
}
# half the live clicks flushed, half (most likely) still in shared memory
bench_psql -q -c "$(live_sql "i % 2 = 0")" -c 'SELECT shorturl.flush()' -c "$(live_sql "i % 2 = 1")" >/dev/null
series_check=$(bench_psql -qAt <<'SQL'
SET shorturl.count_bots = on;
SELECT format('sum of visit_series(''launch'', NULL, now(), ''hour'') with bots: %s; visits(''launch''): %s (%s); clicks pending then (all links): %s',
              s, v, CASE WHEN s = v THEN 'equal' ELSE 'DIFFERENT' END, (SELECT pending_visits FROM shorturl.stats))
FROM (SELECT sum(visits) AS s FROM shorturl.visit_series('launch', NULL, now(), 'hour')) a,
     (SELECT shorturl.visits('launch') AS v) b;
SQL
)
series_breakdown=$(bench_psql -qAt <<'SQL'
SELECT shorturl.flush() \gset
SELECT format('device, flushed live clicks, bots excluded: %s (expected %s)', b.got, e.want)
FROM (SELECT string_agg(value || ' ' || visits, ', ' ORDER BY value) AS got
      FROM shorturl.visit_breakdown('launch', 'device')) b,
     (SELECT string_agg(d || ' ' || n, ', ' ORDER BY d) AS want
      FROM (SELECT shorturl.device_class(u.agent) AS d, count(*) AS n
            FROM bench.live l JOIN bench.user_agents u ON u.n = l.ui
            GROUP BY 1 HAVING shorturl.device_class(u.agent) <> 'bot') x) e;
SELECT format('referrer: %s rows (at most shorturl.max_dimension_values = %s hosts and "other"), top 5: %s',
              count(*), current_setting('shorturl.max_dimension_values'),
              string_agg(value || ' ' || visits, ', ') FILTER (WHERE rn <= 5))
FROM (SELECT *, row_number() OVER () AS rn FROM shorturl.visit_breakdown('launch', 'referrer')) b;
SELECT format('unique_visitors(''launch''): %s; distinct visitors of the live clicks, bots excluded: %s (%s %%)',
              shorturl.unique_visitors('launch'), n,
              round(100.0 * (shorturl.unique_visitors('launch') - n) / n, 1))
FROM (SELECT count(DISTINCT l.v) AS n FROM bench.live l JOIN bench.user_agents u ON u.n = l.ui
      WHERE shorturl.device_class(u.agent) <> 'bot') x;
SQL
)
# the two series, with bots (count_bots on) and without
bench_psql -qAt -F $'\t' >"$series_data" <<'SQL'
SET shorturl.count_bots = on;
CREATE TEMP TABLE with_bots AS
SELECT * FROM shorturl.visit_series('launch', now() - interval '7 days', now(), 'hour');
RESET shorturl.count_bots;
CREATE TEMP TABLE s AS
SELECT extract(epoch FROM b.bucket_start)::bigint AS t, b.visits AS with_bots, h.visits
FROM with_bots b JOIN shorturl.visit_series('launch', now() - interval '7 days', now(), 'hour') h USING (bucket_start);
-- the last bucket again at its end, so that its step is drawn
SELECT * FROM s UNION ALL (SELECT t + 3600, with_bots, visits FROM s ORDER BY t DESC LIMIT 1) ORDER BY 1;
SQL
series_buckets=$(($(grep -c . "$series_data") - 1))
bench_psql -q -c 'ALTER SYSTEM RESET shorturl.hourly_retention' -c 'SELECT pg_reload_conf()' >/dev/null

bench_psql -q <<SQL
CREATE VIEW bench.pgb_report AS
WITH m AS (
    SELECT c.id, c.phase, c.workload, c.kind, c.plain_id, c.resolve_id, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps) AS tps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.mean_ms) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.wal_bytes / p.tx) AS wal,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.worker_cpu) AS cpu,
           sum(p.flushes) AS flushes, sum(p.room_waits) AS room_waits, sum(p.fallbacks) AS fallbacks,
           sum(p.dim_overflow) AS overflow, sum(p.dim_dropped) AS dropped,
           sum(p.visitors_dropped) AS vdropped, sum(p.tx) AS tx
    FROM bench.pgb_cases c JOIN bench.pgb p USING (id)
    GROUP BY c.id, c.phase, c.workload, c.kind, c.plain_id, c.resolve_id
)
SELECT m.id, m.phase, m.workload, m.kind, m.rounds,
       round(m.tps::numeric, 0) AS "median TPS",
       round((m.tps / p.tps)::numeric, 2) AS "x plain",
       CASE WHEN m.kind = 'visit' THEN round((m.tps / r.tps)::numeric, 2) END AS "x resolve",
       round(m.mean::numeric, 3) AS "mean ms", round(m.p99::numeric, 3) AS "p99 ms",
       round(m.wal::numeric, 1) AS "WAL B/click",
       round((m.cpu * 100)::numeric, 1) AS "worker CPU %",
       m.flushes AS "flushes", m.room_waits + m.fallbacks AS "room waits+fallbacks",
       CASE WHEN m.kind = 'visit' THEN m.overflow END AS "dim overflow",
       CASE WHEN m.kind = 'visit' THEN round(100.0 * m.overflow / ($DIMS_PER_CLICK * m.tx), 2) END AS "overflow %",
       CASE WHEN m.kind = 'visit' THEN m.dropped END AS "dim dropped",
       CASE WHEN m.kind = 'visit' THEN round(100.0 * m.dropped / ($DIMS_PER_CLICK * m.tx), 2) END AS "dropped %",
       CASE WHEN m.kind = 'visit' THEN m.vdropped END AS "visitors dropped",
       CASE WHEN m.kind = 'visit' THEN round(100.0 * m.vdropped / ((1 - $bot_share) * m.tx), 2) END AS "vis. dropped %",
       m.tps / p.tps AS plain_raw, m.tps / r.tps AS resolve_raw
FROM m JOIN m p ON p.id = m.plain_id JOIN m r ON r.id = m.resolve_id;
SQL

# report prints the figures (kept in $out too)
report() {
	local cols='workload, kind AS "case", rounds, "median TPS", "x plain", "x resolve", "mean ms", "p99 ms", "WAL B/click",
	            "worker CPU %", flushes, "room waits+fallbacks", "dim overflow", "overflow %", "dim dropped", "dropped %",
	            "visitors dropped", "vis. dropped %"'
	local phase2_note=
	[ "$big_dims" -gt 0 ] && phase2_note=" (phase 2's settings)"
	echo "pg_shorturl $(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'") analytics benchmark (test/bench/analytics.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "library: $lib_start"
	if [ "$lib_big" != "$lib_start" ]; then
		echo "WARNING: the library was reinstalled between the two servers' starts: phase 2's server loaded $lib_big"
	fi
	if [ "$(lib_id)" != "$lib_big" ]; then
		echo "note: the library was reinstalled during the run ($(lib_id)); the servers kept the build they had loaded"
	fi
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "pgbench -M prepared over the Unix socket, $clients clients, $threads threads, ${seconds}s per run, $rounds rounds (medians), cases interleaved"
	echo "$links links; code = $((FIRST_CODE + 1)) + permute(rank, $links, $SEED); uniform: random(0, N-1); zipfS: random_zipfian(0, N-1, S)"
	echo "cases: plain   SELECT url FROM bench.plain WHERE code = \$1"
	echo "       resolve SELECT shorturl.resolve(\$1)"
	echo "       visit   SELECT shorturl.resolve(\$1, NULL, referrer, country, user_agent, visitor): referrer one of $nref URLs,"
	echo "               country one of $ncty, user agent one of $nua (device classes $ua_classes),"
	echo "               visitor random(1, $visitor_pool)::text; every pick uniform (test/bench/analytics-facts.sql)"
	echo "WAL B/click: all WAL from the run's start to after a flush() of its last clicks; worker CPU %: the worker's share of all"
	echo "server processes' CPU time during the run; flushes, room waits + sync fallbacks (counter table) and the analytics' misses"
	echo "(shorturl.stats: dimension_overflow, dimension_dropped, visitors_dropped): summed over the rounds; overflow % and dropped %"
	echo "of the $DIMS_PER_CLICK values a click records, visitors dropped % of the clicks by non-bots"
	echo
	echo "1. resolve() with every fact against resolve(code)"
	echo "phase 1, default settings: $settings1"
	bench_psql -c "SELECT $cols FROM bench.pgb_report WHERE phase = 1 ORDER BY id"
	if [ "$big_dims" -gt 0 ]; then
		echo "phase 2 (a second server, started with phase 1's; ratios to this phase's cases): $settings2"
		bench_psql -c "SELECT $cols FROM bench.pgb_report WHERE phase = 2 ORDER BY id"
	fi
	echo "goal: visit >= $VISIT_GOAL x resolve(code)"
	bench_psql -At <<SQL
SELECT format('  phase %s, %-10s visit %s x resolve (%s vs %s TPS), %s x plain; resolve %s x plain  %s',
              v.phase, v.workload || ':', v."x resolve", v."median TPS", r."median TPS", v."x plain", r."x plain",
              CASE WHEN v.resolve_raw >= $VISIT_GOAL THEN 'PASS' ELSE 'MISS' END)
FROM bench.pgb_report v JOIN bench.pgb_report r ON r.phase = v.phase AND r.workload = v.workload AND r.kind = 'resolve'
WHERE v.kind = 'visit' ORDER BY v.phase, v.id;
SQL
	echo "the backend's own cost per click$phase2_note: $PERCALL_CLICKS scattered clicks from one session (SELECT count(...) over a"
	echo "table of codes and facts; flushes held back, an untimed flush before each), median of $rounds:"
	bench_psql -At <<'SQL'
WITH m AS (SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms, sum(dims_dropped) AS dd,
                  sum(visitors_dropped) AS vd
           FROM bench.percall GROUP BY kind)
SELECT format('  %-8s %s ms, %s us per click%s', m.kind, round(m.ms::numeric, 1),
              round((m.ms * 1000 / (SELECT count(*) FROM bench.percall_clicks))::numeric, 2),
              CASE WHEN m.kind = 'visit'
                   THEN format(': +%s us (%s x), %s dimension values and %s visitors dropped',
                               round(((m.ms - r.ms) * 1000 / (SELECT count(*) FROM bench.percall_clicks))::numeric, 2),
                               round((m.ms / r.ms)::numeric, 2), m.dd, m.vd)
                   ELSE '' END)
FROM m, m r WHERE r.kind = 'resolve' ORDER BY m.kind = 'visit';
SQL
	echo
	echo "2. the flush of n distinct links clicked once each in the current hour (n link-hours)$phase2_note; flush_interval = 1h;"
	echo "   counts: resolve(code), so counts and hourly series; facts: also $DIMS_PER_CLICK dimension values and (non-bots) a visitor"
	echo "   per link; the tables hold the rows of 3, a day back, ANALYZEd; #1 new link-hours and link-days (after a CHECKPOINT),"
	echo "   #2 and #3 adding to them; last, new rows into tables VACUUMed while empty (a plan made then must not scan them per value)"
	bench_psql <<'SQL'
SELECT mode, links, CASE WHEN k = 1 THEN '#1 new rows' ELSE '#' || k || ' updates' END AS "flush",
       flushed AS "links flushed", pending_dims AS "dim values", pending_visitors AS "visitors",
       round(stmt_ms::numeric, 1) AS "flush() ms", round(flush_ms::numeric, 1) AS "last_flush_ms",
       round((stmt_ms * 10000 / links)::numeric, 1) AS "ms / 10k link-hours",
       round(wal_bytes / links, 0) AS "WAL B / link-hour"
FROM bench.flush ORDER BY mode, links, k;
SQL
	echo "   ms per 10,000 link-hours (the largest n; new rows, and the median of the updates):"
	bench_psql -At <<'SQL'
SELECT format('     %-7s %s ms new, %s ms updates  (%s)', mode,
              round(max(stmt_ms * 10000 / links) FILTER (WHERE k = 1)::numeric, 1),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY stmt_ms * 10000 / links) FILTER (WHERE k > 1)::numeric, 1),
              CASE mode WHEN 'counts' THEN 'counts and hourly series' ELSE 'counts, series, dimensions and visitors' END)
FROM bench.flush WHERE links = (SELECT max(links) FROM bench.flush) GROUP BY mode ORDER BY mode;
SQL
	echo
	echo "3. the rollup tables after $rollup_clicks clicks with every fact, Zipf s=1.001 over $links links$phase2_note, flushed"
	echo "   every second by the worker (${rollup_s} s in all, $rollup_flushes flushes; ANALYZE after the first), misses: $rollup_misses"
	echo "   rows: pg_class.reltuples; as written: after VACUUM; compacted: after VACUUM FULL; toast includes the free space and visibility maps"
	bench_psql <<SQL
SELECT a.tbl AS "table", b.rows, round(b.rows * 1e6 / $rollup_clicks) AS "rows / M clicks",
       pg_size_pretty(a.total_bytes) AS "total, as written", pg_size_pretty(b.total_bytes) AS "total, compacted",
       round(a.total_bytes * 1e6 / $rollup_clicks / 1048576, 1) AS "MiB / M clicks, as written",
       round(b.total_bytes * 1e6 / $rollup_clicks / 1048576, 1) AS "MiB / M clicks, compacted",
       pg_size_pretty(b.heap_bytes) AS "heap", pg_size_pretty(b.index_bytes) AS "indexes",
       pg_size_pretty(b.toast_bytes) AS "toast etc.",
       round(b.total_bytes::numeric / nullif(b.rows, 0), 0) AS "B / row, compacted"
FROM bench.rollup a JOIN bench.rollup b ON b.tbl = a.tbl AND b.stage = 2
WHERE a.stage = 1 ORDER BY a.ctid;
SQL
	bench_psql -At -c "SELECT format('   %-46s %s', what || ':', value) FROM bench.rollup_checks ORDER BY ctid"
	echo
	echo "4. the series chart: link 'launch', $SERIES_HOURS hours of synthetic history in link_visits_hourly (+ visit_counts),"
	echo "   $SERIES_LIVE_CLICKS live clicks with facts (half flushed); visit_series('launch', now() - 7 days, now(), 'hour'): $series_buckets buckets"
	echo "   $series_check"
	echo "$series_breakdown" | sed 's/^/   /'
}
mkdir -p "$(dirname "$out")" "$(dirname "$plot")" "$(dirname "$series_plot")"
report | tee "$out"

# The ratio chart: per workload and phase, resolve / plain and visit / resolve
data=$BENCH_WORK/analytics.dat
bench_psql -At -F $'\t' >"$data" <<'SQL'
SELECT w.workload,
       coalesce((SELECT plain_raw FROM bench.pgb_report WHERE workload = w.workload AND kind = 'resolve' AND phase = 1)::text, 'NaN'),
       coalesce((SELECT resolve_raw FROM bench.pgb_report WHERE workload = w.workload AND kind = 'visit' AND phase = 1)::text, 'NaN'),
       coalesce((SELECT resolve_raw FROM bench.pgb_report WHERE workload = w.workload AND kind = 'visit' AND phase = 2)::text, 'NaN')
FROM (SELECT workload, min(id) AS id FROM bench.pgb_cases GROUP BY workload) w ORDER BY w.id
SQL
cols=(2 3 4) titles=("resolve(code) / plain SELECT" "resolve with facts / resolve(code), default settings"
	"resolve with facts / resolve(code), max_pending_dimensions $big_dims") colors=("#228833" "#cc3311" "#66ccee")
if [ "$big_dims" -le 0 ]; then cols=(2 3) titles=("${titles[0]}" "${titles[1]}") colors=("${colors[0]}" "${colors[1]}"); fi
plot_cmd="plot '$data' using ${cols[0]}:xtic(1) lc rgb '${colors[0]}' title '${titles[0]}'"
for ((j = 1; j < ${#cols[@]}; j++)); do
	plot_cmd+=", '' using ${cols[$j]} lc rgb '${colors[$j]}' title '${titles[$j]}'"
done
for ((j = 0; j < ${#cols[@]}; j++)); do
	x="(\$0 + ($j - (${#cols[@]} - 1) / 2.0) / (${#cols[@]} + 1))"
	plot_cmd+=", '' using $x:(\$${cols[$j]} + 0.03):(sprintf('%.2f', \$${cols[$j]})) with labels notitle"
done
plot_cmd+=", $VISIT_GOAL with lines lc rgb '#000000' dt 2 title 'goal $VISIT_GOAL x'"
plot_cmd+=", 1 with lines lc rgb '#999999' notitle"
gnuplot <<GNUPLOT
set terminal pngcairo size 1000,600 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl visit analytics, $links links: TPS ratios (median of $rounds runs of ${seconds}s, $clients clients)"
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:1.35]
set ylabel "TPS ratio"
set grid ytics
set key below
$plot_cmd
GNUPLOT
echo "chart: $plot"

# The series chart
gnuplot <<GNUPLOT
set terminal pngcairo size 1100,500 font ",10" noenhanced
set output "$series_plot"
set title "visit_series('launch', now() - 7 days, now(), 'hour'): 7 days of synthetic history + $SERIES_LIVE_CLICKS live clicks in the last hour"
set datafile separator "\t"
set xdata time
set autoscale xfix
set timefmt "%s"
set format x "%a %d\n%H:00"
set xlabel "hour (UTC)"
set ylabel "visits per hour"
set grid
set key top left
plot "$series_data" using 1:2 with steps lw 1 lc rgb '#999999' title 'with bots (shorturl.count_bots = on)', \
     "$series_data" using 1:3 with steps lw 1.5 lc rgb '#0077bb' title 'without bots (default)'
GNUPLOT
echo "chart: $series_plot"
