#!/bin/bash
# test/bench/longtail.sh: resolve() on a long tail of links (issue 12),
# against a plain lookup and against naive counting in the table.
#
# BENCH_LINKS links (1,000,000) are stored as aliases with decimal codes
# FIRST_CODE + 1 ... FIRST_CODE + N, so a pgbench script can make a code;
# bench.plain (code text PRIMARY KEY, url text) holds the same codes and
# URLs, and bench.naive the same plus a visits column.  The server preloads
# the library and its worker serves the database; the extension's settings
# are the defaults (printed in the report); a CHECKPOINT follows the load.
# Four workloads pick a rank r:
#
#   uniform   random(0, N - 1)
#   zipf1.001 random_zipfian(0, N - 1, 1.001)
#   zipf1.2   random_zipfian(0, N - 1, 1.2)
#   hot       r = 0: one link
#
# and click the code FIRST_CODE + 1 + permute(r, N, SEED), so the hot ranks
# are spread over the index (SEED is fixed: the same links are hot in every
# run).  For each workload, three cases:
#
#   plain    SELECT url FROM bench.plain WHERE code = $1
#   resolve  SELECT shorturl.resolve($1)
#   naive    UPDATE bench.naive SET visits = visits + 1 WHERE code = $1
#            RETURNING url (synchronous_commit on)
#
# Every case is a pgbench run (-M prepared, over the Unix socket); every
# round runs every case once, in an order that rotates from round to round;
# figures are medians over rounds.  Per run: TPS, its ratio to the plain
# SELECT of the same workload, mean and p99 latency (pgbench's
# per-transaction log), WAL bytes per click (pg_current_wal_insert_lsn()
# before the run and after a shorturl.flush() that writes the run's last
# clicks; worker flushes, pruning and full-page images included), the
# worker's share of the CPU time of all the server's processes during the
# run (/proc/<pid>/stat: utime + stime of the worker over those of the
# postmaster, its children and its reaped children), the counters' sync
# fallbacks, room waits and refused clicks, and the flushes (the worker's
# and the closing flush()).  Each run starts from a flush and a VACUUM of
# shorturl.visit_counts and bench.naive; autovacuum stays on.
#
# With BENCH_MAX_PENDING (default: links + 10%; 0 skips it) the server is
# then restarted with shorturl.max_pending_links that large, and the plain
# and resolve cases run again, as a second variant.
#
# A dedicated flush measurement (at the default settings): flushes held
# back (shorturl.flush_interval = '1h', ALTER SYSTEM and a reload), FLUSH_LINKS
# distinct links clicked once each, then shorturl.flush() timed and its WAL
# measured (and the WAL of the clicks themselves): once right after a CHECKPOINT (full-page images), then three
# times with the pages already logged (median).
#
# Goals (from the issue): resolve at least 0.9x the plain SELECT for
# uniform, Zipf s=1.001 and hot.  A benchmark never fails on time: the goals
# are reported, not enforced.
#
#   BENCH_SECONDS      seconds per pgbench run (default 10)
#   BENCH_ROUNDS       rounds (default 5)
#   BENCH_CLIENTS      pgbench clients (default 8)
#   BENCH_THREADS      pgbench threads (default 2)
#   BENCH_LINKS        links (default 1000000)
#   BENCH_NO_NAIVE     set: leave out the naive UPDATE cases (whose WAL and
#                      VACUUMs change what the cases after them pay)
#   BENCH_HUGE_PAGES   set: the server runs with huge_pages = on (the script
#                      reserves vm.nr_hugepages for the run, and gives them back)
#   BENCH_MAX_PENDING  shorturl.max_pending_links of the second variant
#                      (default links + 10%; 0: no second variant)
#   BENCH_PLOT         bar chart of the ratios, PNG (default
#                      test/bench/results/longtail.png)
#   BENCH_OUT          the report, also written here (default
#                      test/bench/results/longtail-<date>.txt)
#   BENCH_NO_BUILD     set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-1000000}
big_pending=${BENCH_MAX_PENDING:-$((links + links / 10))}
plot=${BENCH_PLOT:-$BENCH_DIR/results/longtail.png}
out=${BENCH_OUT:-$BENCH_DIR/results/longtail-$(date -u +%Y-%m-%d).txt}

RESOLVE_GOAL=0.9
with_naive=1
if [ "${BENCH_NO_NAIVE:-}" ]; then
	with_naive=
fi
FLUSH_LINKS=$((links < 10000 ? links : 10000))
FIRST_CODE=1000000
SEED=12
WORKLOADS=(uniform zipf1.001 zipf1.2 hot)

conf=$(mktemp /tmp/pg_shorturl-longtail.XXXXXX.conf)
echo "shorturl.database = 'postgres'" >"$conf"
huge=${BENCH_HUGE_PAGES:+on}
if [ "$huge" ]; then
	# 2 MB pages for shared_buffers (2 GB), the larger counter table and the rest
	hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
	echo 1400 >/proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 1400 ] || die "could not reserve 1400 huge pages"
	echo "huge_pages = on" >>"$conf"
fi
bench_start "$conf"
rm -f "$conf"
if [ "$huge" ]; then
	trap 'scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK"; echo "$hugepages_before" >/proc/sys/vm/nr_hugepages' EXIT
fi

# wait_worker waits for the worker to serve the database and checks that
# clicks are counted in shared memory.
wait_worker() {
	local i mode
	for ((i = 0; i < 100; i++)); do
		[ -n "$(bench_psql -Atc 'SELECT worker_pid FROM shorturl.stats')" ] && break
		sleep 0.1
	done
	mode=$(bench_psql -Atc 'SELECT mode FROM shorturl.stats')
	[ "$mode" = shared ] || die "the bench database counts clicks in mode \"$mode\", not shared"
	bench_psql -Atc 'SELECT worker_pid FROM shorturl.stats' | grep -q . || die "no worker serves the database"
}

# prewarm reads the tables and indexes the cases use into shared buffers.
prewarm() {
	bench_psql -q -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS pg_prewarm' -c "
	    SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
	    WHERE c.relnamespace IN ('shorturl'::regnamespace, 'bench'::regnamespace)
	      AND c.relkind IN ('r', 'i', 't')" >/dev/null
}

say "making $links links"
bench_make_links "$links" "$FIRST_CODE"
bench_psql -q <<SQL
CREATE TABLE bench.naive (code text PRIMARY KEY, url text, visits bigint NOT NULL DEFAULT 0);
INSERT INTO bench.naive (code, url) SELECT code, url FROM shorturl.links;
VACUUM ANALYZE bench.naive;
SQL
wait_worker
prewarm
# the load's dirty pages written now, not by a checkpoint during the runs
bench_psql -q -c CHECKPOINT
settings=$(bench_psql -Atc "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
                            FROM pg_settings WHERE name IN ('shorturl.max_pending_links', 'shorturl.flush_interval')")

# The pgbench scripts: WORKLOAD CASE
S=$BENCH_WORK/scripts
mkdir -p "$S"
for w in "${WORKLOADS[@]}"; do
	keys=$(bench_keys "$w" "$links" "$FIRST_CODE" "$SEED")
	printf '%s\nSELECT url FROM bench.plain WHERE code = :c;\n' "$keys" >"$S/$w.plain.sql"
	printf '%s\nSELECT shorturl.resolve(:c);\n' "$keys" >"$S/$w.resolve.sql"
	printf '%s\nUPDATE bench.naive SET visits = visits + 1 WHERE code = :c RETURNING url;\n' "$keys" >"$S/$w.naive.sql"
done

# The cases: phase (1: default settings, 2: the large counter table),
# workload, case, and the case it is compared with (by number).
phases=() works=() kinds=() refs=()
add_case() { phases+=("$1"); works+=("$2"); kinds+=("$3"); refs+=("$4"); }
for w in "${WORKLOADS[@]}"; do
	add_case 1 "$w" plain ${#kinds[@]}
	add_case 1 "$w" resolve $((${#kinds[@]} - 1))
	if [ "$with_naive" ]; then
		add_case 1 "$w" naive $((${#kinds[@]} - 2))
	fi
done
if [ "$big_pending" -gt 0 ]; then
	for w in "${WORKLOADS[@]}"; do
		add_case 2 "$w" plain ${#kinds[@]}
		add_case 2 "$w" resolve $((${#kinds[@]} - 1))
	done
fi
n=${#kinds[@]}
{
	echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, phase int, workload text, kind text, reference int);'
	echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, mean_ms float8, p99_ms float8, tx bigint,
	        wal_bytes numeric, worker_cpu float8, fallbacks bigint, room_waits bigint, refused bigint, flushes bigint);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.pgb_cases VALUES (%d, %d, '%s', '%s', %d);\n" \
			"$i" "${phases[$i]}" "${works[$i]}" "${kinds[$i]}" "${refs[$i]}"
	done
} | bench_psql -q

# pg_cpu prints the CPU ticks of the worker and of all the server's
# processes: the postmaster's own and its reaped children's, and those of
# its live children (pgbench's backends end with the run and are reaped).
pg_cpu() {
	local pm wpid pid rest f fields total=0 worker=0
	pm=$(head -n1 "$BENCH_WORK/server/postmaster.pid")
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

counters() { bench_psql -At -F ' ' -c 'SELECT sync_fallbacks, room_waits, refused_clicks, flushes FROM shorturl.stats'; }

# pgb ID ROUND runs case ID once and records its figures.
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 file
	local lsn0 lsn1 fb0 rw0 rf0 fl0 fb1 rw1 rf1 fl1 w0 t0 w1 t1 tps tx p99 mean
	file=$S/${works[$id]}.${kinds[$id]}.sql
	mkdir -p "$log"
	# a clean start: no clicks pending, no dead tuples
	bench_psql -q -c 'SELECT shorturl.flush()' -c 'VACUUM shorturl.visit_counts' -c 'VACUUM bench.naive' >/dev/null
	read -r fb0 rw0 rf0 fl0 < <(counters)
	read -r w0 t0 < <(pg_cpu)
	lsn0=$(bench_psql -Atc 'SELECT pg_current_wal_insert_lsn()')
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-l --log-prefix="$log/tx" -f "$file" >"$log/out" 2>&1 ||
		{ cat "$log/out" >&2; die "pgbench failed in case ${works[$id]} ${kinds[$id]}"; }
	sleep 0.3
	read -r w1 t1 < <(pg_cpu)
	# the run's clicks still in shared memory are part of its WAL
	lsn1=$(bench_psql -At -c 'SELECT shorturl.flush()' -c 'SELECT pg_current_wal_insert_lsn()' | tail -n1)
	read -r fb1 rw1 rf1 fl1 < <(counters)
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
	                  $fb1 - $fb0, $rw1 - $rw0, $rf1 - $rf0, $fl1 - $fl0)"
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

run_phase 1

# The flush of FLUSH_LINKS distinct links, every (links / FLUSH_LINKS)-th
say "flush of $FLUSH_LINKS links"
bench_psql -q -c "ALTER SYSTEM SET shorturl.flush_interval = '1h'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 2
bench_psql -q -c 'SELECT shorturl.flush()' -c 'VACUUM shorturl.visit_counts' -c CHECKPOINT >/dev/null
bench_psql -q -c 'CREATE TABLE bench.flush (k int, links bigint, had_rows bigint, click_wal numeric, wal_bytes numeric, stmt_ms float8, flush_ms float8)'
step=$((links / FLUSH_LINKS))
for k in 1 2 3 4; do
	bench_psql -q <<SQL
SELECT count(*) AS had_rows FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
WHERE l.code IN (SELECT ($FIRST_CODE + 1 + i * $step)::text FROM generate_series(0, $FLUSH_LINKS - 1) i) \gset
SELECT pg_current_wal_insert_lsn() AS c0 \gset
SELECT count(shorturl.resolve(($FIRST_CODE + 1 + i * $step)::text)) FROM generate_series(0, $FLUSH_LINKS - 1) i \gset
SELECT pg_current_wal_insert_lsn() AS l0, clock_timestamp() AS t0 \gset
SELECT shorturl.flush() AS links \gset
INSERT INTO bench.flush
SELECT $k, :links, :had_rows, pg_wal_lsn_diff(:'l0', :'c0'), pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0'),
       extract(epoch FROM clock_timestamp() - :'t0') * 1000, (SELECT last_flush_ms FROM shorturl.stats);
VACUUM shorturl.visit_counts;
SQL
done
bench_psql -q -c 'ALTER SYSTEM RESET shorturl.flush_interval' -c 'SELECT pg_reload_conf()' >/dev/null

if [ "$big_pending" -gt 0 ]; then
	say "restarting with shorturl.max_pending_links = $big_pending"
	bench_psql -q -c "ALTER SYSTEM SET shorturl.max_pending_links = $big_pending"
	as_user "$PG_BIN/pg_ctl" -D "$BENCH_WORK/server" -l "$BENCH_WORK/server.log" -w restart >/dev/null
	wait_worker
	prewarm
	big_setting=$(bench_psql -Atc 'SELECT max_pending_links FROM shorturl.stats')
	run_phase 2
fi

bench_psql -q <<'SQL'
CREATE VIEW bench.pgb_report AS
WITH m AS (
    SELECT c.id, c.phase, c.workload, c.kind, c.reference, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps) AS tps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.mean_ms) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.wal_bytes / p.tx) AS wal,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.worker_cpu) AS cpu,
           sum(p.fallbacks) AS fallbacks, sum(p.room_waits) AS room_waits,
           sum(p.refused) AS refused, sum(p.flushes) AS flushes, sum(p.tx) AS tx
    FROM bench.pgb_cases c JOIN bench.pgb p USING (id)
    GROUP BY c.id, c.phase, c.workload, c.kind, c.reference
)
SELECT m.id, m.phase, m.workload, m.kind, m.rounds,
       CASE m.kind WHEN 'plain' THEN 'SELECT url FROM bench.plain WHERE code = $1'
                   WHEN 'resolve' THEN 'SELECT shorturl.resolve($1)'
                   ELSE 'UPDATE naive SET visits = visits + 1 RETURNING url' END AS "case",
       round(m.tps::numeric, 0) AS "median TPS",
       round((m.tps / r.tps)::numeric, 2) AS "x plain",
       round(m.mean::numeric, 3) AS "mean ms", round(m.p99::numeric, 3) AS "p99 ms",
       round(m.wal::numeric, 1) AS "WAL B/click",
       round((m.cpu * 100)::numeric, 1) AS "worker CPU %",
       m.fallbacks AS "sync fallbacks", m.room_waits AS "room waits", m.refused AS "refused",
       m.flushes AS "flushes", m.tps / r.tps AS ratio_raw
FROM m JOIN m r ON r.id = m.reference;
SQL

# report prints the figures (kept in $out too)
report() {
	local cols='workload, "case", rounds, "median TPS", "x plain", "mean ms", "p99 ms", "WAL B/click",
	            "worker CPU %", "sync fallbacks", "room waits", refused, flushes'
	echo "pg_shorturl $(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'") long-tail benchmark (test/bench/longtail.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "pgbench -M prepared over the Unix socket, $clients clients, $threads threads, ${seconds}s per run, $rounds rounds (medians), cases interleaved"
	echo "$links links; code = $((FIRST_CODE + 1)) + permute(rank, $links, $SEED); uniform: random(0, N-1); zipfS: random_zipfian(0, N-1, S); hot: rank 0"
	echo "WAL B/click: all WAL from the run's start to after a flush() of its last clicks; worker CPU %: the worker's share of all server"
	echo "processes' CPU time during the run; sync fallbacks, room waits, refused clicks and flushes: summed over the rounds"
	echo
	echo "huge_pages: ${huge:-off}"
	echo "default settings: $settings"
	bench_psql -c "SELECT $cols FROM bench.pgb_report WHERE phase = 1 ORDER BY id"
	if [ "$big_pending" -gt 0 ]; then
		echo "second variant: shorturl.max_pending_links = $big_setting (restarted; the ratio is to this phase's plain SELECT)"
		bench_psql -c "SELECT $cols FROM bench.pgb_report WHERE phase = 2 ORDER BY id"
	fi
	echo "the flush of $FLUSH_LINKS distinct links clicked once each (codes $((FIRST_CODE + 1)) + $step i; flush_interval = 1h; VACUUM before each):"
	bench_psql <<'SQL'
SELECT CASE WHEN k = 1 THEN 'first after a CHECKPOINT' ELSE 'pages already logged, #' || (k - 1) END AS "flush",
       links AS "links flushed", had_rows AS "with a count row before", click_wal AS "clicks' WAL bytes",
       wal_bytes AS "flush's WAL bytes",
       round(wal_bytes / nullif(links, 0), 1) AS "B/link", round(stmt_ms::numeric, 1) AS "flush() ms",
       round(flush_ms::numeric, 1) AS "last_flush_ms", round((stmt_ms * 1000 / nullif(links, 0))::numeric, 2) AS "µs/link"
FROM bench.flush ORDER BY k;
SQL
	bench_psql -At <<'SQL'
SELECT format('  median of the flushes with pages already logged: %s B and %s µs per link',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wal_bytes / nullif(links, 0))::numeric, 1),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY stmt_ms * 1000 / nullif(links, 0))::numeric, 2))
FROM bench.flush WHERE k > 1;
SQL
	echo "goals:"
	bench_psql -At <<SQL
SELECT format('  resolve, %-10s %s x the plain SELECT (%s vs %s TPS)  goal >= %s x  %s',
              r.workload || ':', r."x plain", r."median TPS", l."median TPS", $RESOLVE_GOAL,
              CASE WHEN r.workload = 'zipf1.2' THEN '(no goal)'
                   WHEN r.ratio_raw >= $RESOLVE_GOAL THEN 'PASS' ELSE 'MISS' END)
FROM bench.pgb_report r JOIN bench.pgb_report l ON l.id = (SELECT reference FROM bench.pgb_cases WHERE id = r.id)
WHERE r.kind = 'resolve' AND r.phase = 1 ORDER BY r.id;
SELECT format('  (second variant, max_pending_links = $big_pending: resolve, %-10s %s x)', workload || ':', "x plain")
FROM bench.pgb_report WHERE kind = 'resolve' AND phase = 2 ORDER BY id;
SQL
}
mkdir -p "$(dirname "$out")"
report | tee "$out"

# The chart: the ratio to the plain SELECT per workload, grouped bars
mkdir -p "$(dirname "$plot")"
data=$BENCH_WORK/longtail.dat
bench_psql -At -F $'\t' >"$data" <<'SQL'
SELECT w.workload,
       coalesce((SELECT ratio_raw FROM bench.pgb_report WHERE workload = w.workload AND kind = 'resolve' AND phase = 1)::text, 'NaN'),
       coalesce((SELECT ratio_raw FROM bench.pgb_report WHERE workload = w.workload AND kind = 'resolve' AND phase = 2)::text, 'NaN'),
       coalesce((SELECT ratio_raw FROM bench.pgb_report WHERE workload = w.workload AND kind = 'naive')::text, 'NaN')
FROM (SELECT DISTINCT ON (workload) workload, id FROM bench.pgb_cases ORDER BY workload, id) w ORDER BY w.id
SQL
# the series (columns of $data) and their bars' offsets within a group
cols=(2 3 4) titles=("resolve (max_pending_links default)" "resolve (max_pending_links $big_pending)"
	"naive UPDATE, sync commit on") colors=("#228833" "#66ccee" "#cc3311")
if [ "$big_pending" -le 0 ]; then cols=(2 4) titles=("${titles[0]}" "${titles[2]}") colors=("${colors[0]}" "${colors[2]}"); fi
plot_cmd="plot '$data' using ${cols[0]}:xtic(1) lc rgb '${colors[0]}' title '${titles[0]}'"
for ((j = 1; j < ${#cols[@]}; j++)); do
	plot_cmd+=", '' using ${cols[$j]} lc rgb '${colors[$j]}' title '${titles[$j]}'"
done
for ((j = 0; j < ${#cols[@]}; j++)); do
	x="(\$0 + ($j - (${#cols[@]} - 1) / 2.0) / (${#cols[@]} + 1))"
	plot_cmd+=", '' using $x:(\$${cols[$j]} + 0.03):(sprintf('%.2f', \$${cols[$j]})) with labels notitle"
done
plot_cmd+=", $RESOLVE_GOAL with lines lc rgb '#000000' dt 2 title 'goal $RESOLVE_GOAL x'"
plot_cmd+=", 1 with lines lc rgb '#999999' title 'plain SELECT = 1'"
ymax=$(awk -F '\t' '{for (i = 2; i <= 4; i++) if ($i != "NaN" && $i > m) m = $i} END {print (m > 1.2 ? m : 1.2) + 0.15}' "$data")
gnuplot <<GNUPLOT
set terminal pngcairo size 1000,600 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl on a long tail of $links links: TPS / plain SELECT (median of $rounds runs of ${seconds}s, $clients clients)"
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:$ymax]
set ylabel "TPS ratio to the plain SELECT of the same keys"
set grid ytics
set key below
$plot_cmd
GNUPLOT
echo "chart: $plot"
