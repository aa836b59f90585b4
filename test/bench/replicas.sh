#!/bin/bash
# test/bench/replicas.sh: read replicas (issue 18): resolve() on a hot
# standby against a plain SELECT there, and what the standby's shipped
# clicks cost the primary in CPU and WAL against the primary's own clicks.
#
# One primary (test/bench/bench.conf, the library preloaded, its worker
# serving the database postgres) and one streaming hot standby made from it
# with pg_basebackup -R, both on this machine, over Unix sockets in
# directories of their own, on distinct ports (5432 and 5433).  The standby
# keeps the extension's defaults: it ships every shorturl.ship_interval
# (1 s) over its primary_conninfo, under its cluster_name.  Before the
# backup, BENCH_LINKS links (100,000) are stored as aliases with decimal
# codes FIRST_CODE + 1 ... FIRST_CODE + N, bench.plain (code text PRIMARY
# KEY, url text) holds the same codes and URLs, and every link is clicked
# once on the primary and flushed, so that every run updates count rows
# rather than inserting the first ones.  Both servers prewarm the tables.
#
# Two workloads pick a rank r (uniform: random(0, N - 1); zipf1.001:
# random_zipfian(0, N - 1, 1.001)) and click the code
# FIRST_CODE + 1 + permute(r, N, SEED), as longtail.sh does.  Five cases
# per workload:
#
#   standby plain    SELECT url FROM bench.plain WHERE code = $1, on the standby
#   standby resolve  SELECT shorturl.resolve($1), on the standby
#   standby uncached the same with the URL cache off (PGOPTIONS sets
#                    shorturl.url_cache = off): what the cache buys there
#   primary plain    the plain SELECT on the primary
#   primary resolve  resolve() on the primary
#
# Every case is a pgbench run (-M prepared, over the Unix socket); every
# round runs every case once, in an order that rotates from round to round;
# figures are medians over rounds.  Each run starts from a flush and a
# VACUUM of shorturl.visit_counts and shorturl.link_visits_hourly on the
# primary, once the standby has replayed them and has nothing unshipped.
# Its window then runs from before pgbench to the moment its last click is
# stored on the primary: on the standby, until stats.unshipped_visits is 0
# (the primary acknowledged every batch; the time after pgbench's end is
# "settle s"); on the primary, until stats.pending_visits is 0 (the
# worker's flush committed).  Per run:
#
#   - TPS, mean and p99 latency (pgbench's per-transaction log);
#   - the exactness check: the primary's total visits (sum of
#     shorturl.visit_counts after a shorturl.flush()) grow by exactly the
#     clicks pgbench made (transactions processed; 0 for a plain case), and
#     on the standby stats.shipped_visits and the primary's
#     shorturl.standby_batches.visits grow by as much;
#   - the primary's CPU time (/proc/<pid>/stat, utime + stime) over the
#     window: all its processes (the postmaster, its live children and its
#     reaped ones), and apart the backend of the standby's shipping
#     connection (application_name 'pg_shorturl shipper'), the walsender
#     and the primary's worker; and the standby's worker and its startup
#     process (the replay of the primary's WAL); per click in µs.
#     The standby's plain runs give the primary's idle CPU per second,
#     which "net of idle" subtracts;
#   - the primary's WAL: pg_current_wal_insert_lsn() before pgbench and at
#     the window's end, per click (full-page images, pruning, the batch
#     record in standby_batches and autovacuum included), and apart the
#     bytes of records and of full-page images (pg_waldump --stats over the
#     window).  Each window starts at a CHECKPOINT, so each pays the images
#     of the pages it touches first, whichever case ran before it.
#
# So that the cost of shipping reads against the primary's own: for the
# standby's resolve runs, the primary's CPU and WAL per shipped click; for
# the primary's resolve runs, its worker's CPU per click (its flushes) and
# its WAL per click, same workloads.
#
# Goal (from the issue): resolve() on the standby at least 0.9x the plain
# SELECT on the standby.  A benchmark never fails on time: the goal is
# reported, not enforced.  Both servers share this machine's cores with
# pgbench, so the standby's TPS pays for the primary's applying too.
#
#   BENCH_SECONDS      seconds per pgbench run (default 10)
#   BENCH_ROUNDS       rounds (default 3)
#   BENCH_CLIENTS      pgbench clients (default 8)
#   BENCH_THREADS      pgbench threads (default 2)
#   BENCH_LINKS        links (default 100000)
#   BENCH_HUGE_PAGES   set: both servers run with huge_pages = on (the script
#                      reserves vm.nr_hugepages for the run, and gives them back)
#   BENCH_PLOT         TPS per case, PNG (default
#                      test/bench/results/replicas.png)
#   BENCH_OUT          the report, also written here (default
#                      test/bench/results/replicas-<date>.txt)
#   BENCH_NO_BUILD     set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-100000}
plot=${BENCH_PLOT:-$BENCH_DIR/results/replicas.png}
out=${BENCH_OUT:-$BENCH_DIR/results/replicas-$(date -u +%Y-%m-%d).txt}

RESOLVE_GOAL=0.9
FIRST_CODE=1000000
SEED=12
WORKLOADS=(uniform zipf1.001)
# the standby's port (the primary's is lib.sh's 5432) and cluster_name,
# which is the name it ships under
STANDBY_PORT=5433
STANDBY_NAME=bench_standby
# how long a run's last clicks may take to reach the primary's tables
# before the run is marked unsettled (shipping every 1 s, it takes about 1 s)
SETTLE_TIMEOUT=60
# how often the end of a window is polled, in seconds
POLL=0.05
# the warm-up clicks every link once, this many links per flush (the
# default shorturl.max_pending_links is 100,000 for both servers)
WARMUP_CHUNK=20000
# the primary's clicks whose shipping connection is opened before the runs
SHIPPER_WARMUP_CLICKS=1000
HZ=$(getconf CLK_TCK)
# 2 MB pages for each server's shared_buffers (2 GB), counters and the rest
HUGE_PAGES_PER_SERVER=1400

conf=$(mktemp /tmp/pg_shorturl-replicas.XXXXXX.conf)
{
	echo "shorturl.database = 'postgres'"
	echo "log_line_prefix = '%m [%p] %b '"
	# each window starts at a CHECKPOINT of its own (see pgb), and keeps its
	# WAL for pg_waldump: no other checkpoint, no WAL recycled meanwhile
	echo "checkpoint_timeout = '1h'"
	echo "max_wal_size = '16GB'"
	echo "wal_keep_size = '16GB'"
} >"$conf"
huge=${BENCH_HUGE_PAGES:+on}
hugepages_before=
if [ "$huge" ]; then
	hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
	echo $((2 * HUGE_PAGES_PER_SERVER)) >/proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge $((2 * HUGE_PAGES_PER_SERVER)) ] ||
		die "could not reserve $((2 * HUGE_PAGES_PER_SERVER)) huge pages"
	echo "huge_pages = on" >>"$conf"
fi
bench_start "$conf"
rm -f "$conf"
PRIMARY=$BENCH_WORK
STANDBY=$BENCH_WORK/standby
cleanup() {
	scratch_server_stop "$STANDBY"
	scratch_server_stop "$PRIMARY"
	rm -rf "$BENCH_WORK"
	if [ "$hugepages_before" ]; then echo "$hugepages_before" >/proc/sys/vm/nr_hugepages; fi
}
trap cleanup EXIT

# sb_psql runs psql against the standby (bench_psql: the primary).
sb_psql() { PGHOST=$STANDBY PGPORT=$STANDBY_PORT bench_psql "$@"; }

# PREWARM_SQL reads the tables and indexes the cases use into shared buffers.
PREWARM_SQL="SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
             WHERE c.relnamespace IN ('shorturl'::regnamespace, 'bench'::regnamespace)
               AND c.relkind IN ('r', 'i', 't')"

# wait_until PSQL QUERY TIMEOUT polls QUERY with PSQL (bench_psql or
# sb_psql) until it returns t; returns whether it did within TIMEOUT seconds.
wait_until() {
	local deadline
	deadline=$(($(date +%s) + $3))
	while [ "$(date +%s)" -le "$deadline" ]; do
		[ "$("$1" -Atc "$2" 2>/dev/null)" = t ] && return 0
		sleep "$POLL"
	done
	return 1
}

# wait_replay waits until the standby has replayed all the WAL the primary
# has flushed, so that no replay of the previous run's writes overlaps a run.
wait_replay() {
	local lsn
	lsn=$(bench_psql -Atc 'SELECT pg_current_wal_flush_lsn()')
	wait_until sb_psql "SELECT pg_last_wal_replay_lsn() >= '$lsn'" 60 ||
		die "the standby did not replay the primary's WAL up to $lsn within 60 s"
}

# cpu_ticks DATADIR [PID...] prints the CPU ticks (utime + stime) of all the
# processes of the server in DATADIR (the postmaster's own and its reaped
# children's, and its live children's), then those of each PID named among
# its children (0 if it is not one).
cpu_ticks() {
	local pm f rest pid want total=0 fields
	local -A of=()
	pm=$(head -n1 "$1/postmaster.pid")
	shift
	for f in /proc/[0-9]*/stat; do
		{ read -r rest <"$f"; } 2>/dev/null || continue
		pid=${rest%% *}
		# fields after "pid (comm) ": state ppid ... utime(12th) stime cutime cstime
		read -r -a fields <<<"${rest##*') '}"
		if [ "$pid" = "$pm" ]; then
			total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
		elif [ "${fields[1]}" = "$pm" ]; then
			total=$((total + fields[11] + fields[12]))
			of[$pid]=$((fields[11] + fields[12]))
		fi
	done
	printf '%s' "$total"
	for want; do printf ' %s' "${of[$want]:-0}"; done
	echo
}

# primary_state flushes the primary's pending clicks and prints its total
# visits, the visits of its standby_batches rows, and the pids of the
# shipping connection's backend, the walsender and its worker (0: none).
primary_state() {
	bench_psql -At -F ' ' -c 'SELECT shorturl.flush()' -c "
	    SELECT (SELECT coalesce(sum(visits), 0) FROM shorturl.visit_counts),
	           (SELECT coalesce(sum(visits), 0) FROM shorturl.standby_batches),
	           coalesce((SELECT min(pid) FROM pg_stat_activity WHERE application_name = 'pg_shorturl shipper'), 0),
	           coalesce((SELECT min(pid) FROM pg_stat_replication), 0),
	           coalesce((SELECT worker_pid FROM shorturl.stats), 0)" | tail -n1
}

# standby_state prints the standby's shipping figures, its worker's pid and
# the pid of its startup process (the replay).
standby_state() {
	sb_psql -At -F ' ' -c "SELECT shipped_visits, ship_batches, ship_failures, standby_dropped,
	                              unshipped_visits, coalesce(worker_pid, 0),
	                              coalesce((SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'), 0)
	                       FROM shorturl.stats"
}

say "making $links links"
bench_make_links "$links" "$FIRST_CODE"
bench_wait_worker
# every link clicked once and flushed: the runs update count rows
for ((k = 0; k < links / WARMUP_CHUNK + 1; k++)); do
	bench_psql -q -c "SELECT count(shorturl.resolve(code)) FROM shorturl.links
	                  WHERE id % $((links / WARMUP_CHUNK + 1)) = $k" -c 'SELECT shorturl.flush()' >/dev/null
done
bench_psql -q -c 'VACUUM ANALYZE shorturl.visit_counts' -c 'VACUUM ANALYZE shorturl.link_visits_hourly'
bench_settle

say "making the standby (pg_basebackup -R)"
bench_make_standby "$STANDBY" "$STANDBY_PORT" "$STANDBY_NAME"
wait_until sb_psql "SELECT worker_pid IS NOT NULL AND mode = 'standby' FROM shorturl.stats" 20 ||
	die "no worker in mode standby on the standby: $(sb_psql -Atc 'SELECT mode, worker_pid, last_error FROM shorturl.stats')"
wait_replay
sb_psql -q -c "$PREWARM_SQL" >/dev/null
# the shipping connection opened before the first window
sb_psql -q -c "SELECT count(shorturl.resolve(code)) FROM shorturl.links WHERE id <= $SHIPPER_WARMUP_CLICKS" >/dev/null
wait_until sb_psql 'SELECT unshipped_visits = 0 AND ship_batches > 0 FROM shorturl.stats' 30 ||
	die "the standby did not ship its warm-up clicks: $(sb_psql -Atc 'SELECT unshipped_visits, ship_failures, last_error FROM shorturl.stats')"
settings=$(sb_psql -Atc "SELECT string_agg(name || ' = ' || CASE WHEN setting = '' THEN '''''' ELSE setting END
                                           || coalesce(unit, ''), ', ' ORDER BY name)
                         FROM pg_settings WHERE name IN ('shorturl.ship_interval', 'shorturl.ship_timeout',
                              'shorturl.primary_conninfo', 'shorturl.standby_name', 'shorturl.max_pending_links',
                              'shorturl.flush_interval', 'cluster_name', 'hot_standby_feedback')")

# The pgbench scripts: WORKLOAD.CASE
S=$BENCH_WORK/scripts
mkdir -p "$S"
chown "$RUN_USER:" "$S"
for w in "${WORKLOADS[@]}"; do
	keys=$(bench_keys "$w" "$links" "$FIRST_CODE" "$SEED")
	printf '%s\nSELECT url FROM bench.plain WHERE code = :c;\n' "$keys" >"$S/$w.plain.sql"
	printf '%s\nSELECT shorturl.resolve(:c);\n' "$keys" >"$S/$w.resolve.sql"
	cp "$S/$w.resolve.sql" "$S/$w.uncached.sql"
done

# The cases: node, workload, case, and the case it is compared with (the
# plain SELECT on the same node, by number).
nodes=() works=() kinds=() refs=()
add_case() { nodes+=("$1"); works+=("$2"); kinds+=("$3"); refs+=("$4"); }
for w in "${WORKLOADS[@]}"; do
	for node in standby primary; do
		add_case "$node" "$w" plain ${#kinds[@]}
		add_case "$node" "$w" resolve $((${#kinds[@]} - 1))
		# what the URL cache buys on the standby: resolve() with it off
		if [ "$node" = standby ]; then add_case "$node" "$w" uncached $((${#kinds[@]} - 2)); fi
	done
done
n=${#kinds[@]}
{
	echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, node text, workload text, kind text, reference int);'
	echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, mean_ms float8, p99_ms float8, tx bigint,
	        window_s float8, settle_s float8, settled bool, wal_bytes numeric, wal_record_bytes numeric, wal_fpi_bytes numeric,
	        cpu_all bigint, cpu_shipper bigint, cpu_walsender bigint, cpu_worker bigint,
	        cpu_sb_all bigint, cpu_sb_worker bigint, cpu_sb_replay bigint,
	        shipper_kept bool, shipped bigint, batches bigint, flushes bigint, failures bigint, dropped bigint,
	        primary_delta bigint, applied_delta bigint);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.pgb_cases VALUES (%d, '%s', '%s', '%s', %d);\n" \
			"$i" "${nodes[$i]}" "${works[$i]}" "${kinds[$i]}" "${refs[$i]}"
	done
} | bench_psql -q

# pgb ID ROUND runs case ID once and records its figures.
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 file host port
	local total0 applied0 shipper0 walsender worker total1 applied1 shipper1 ws1 wk1
	local shipped0 batches0 failures0 dropped0 unshipped0 sbworker sbstartup shipped1 batches1 failures1 dropped1 unshipped1 sbw1 sbs1
	local all0 cs0 cw0 ck0 all1 cs1 cw1 ck1 sball0 sball1 sb0 sb1 sr0 sr1 t0 t_end t1 lsn0 lsn1 flushes0 flushes1 settled=true tps tx p99 mean
	local wal_records=0 wal_record_bytes=0 wal_fpi_bytes=0
	file=$S/${works[$id]}.${kinds[$id]}.sql
	if [ "${nodes[$id]}" = standby ]; then host=$STANDBY port=$STANDBY_PORT; else host=$PRIMARY port=5432; fi
	mkdir -p "$log"
	chown "$RUN_USER:" "$log"
	# a clean start: no clicks pending or unshipped, no dead tuples, no
	# replay left over on the standby
	bench_psql -q -c 'SELECT shorturl.flush()' -c 'VACUUM shorturl.visit_counts' \
		-c 'VACUUM shorturl.link_visits_hourly' >/dev/null
	# every window pays the full-page images of the pages it touches first:
	# a checkpoint at its start makes that the same for every case
	bench_psql -q -c 'CHECKPOINT' >/dev/null
	wait_until sb_psql 'SELECT unshipped_visits = 0 FROM shorturl.stats' "$SETTLE_TIMEOUT" ||
		say "warning: the standby still has $(sb_psql -Atc 'SELECT unshipped_visits FROM shorturl.stats') clicks unshipped before a run"
	wait_replay
	read -r total0 applied0 shipper0 walsender worker < <(primary_state)
	read -r shipped0 batches0 failures0 dropped0 unshipped0 sbworker sbstartup < <(standby_state)
	read -r lsn0 flushes0 < <(bench_psql -At -F ' ' -c 'SELECT pg_current_wal_insert_lsn(), flushes FROM shorturl.stats')
	read -r all0 cs0 cw0 ck0 < <(cpu_ticks "$PRIMARY/server" "$shipper0" "$walsender" "$worker")
	read -r sball0 sb0 sr0 < <(cpu_ticks "$STANDBY/server" "$sbworker" "$sbstartup")
	t0=$(date +%s.%N)
	PGOPTIONS=$([ "${kinds[$id]}" = uncached ] && echo '-c shorturl.url_cache=off') \
		PGHOST=$host PGPORT=$port "$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-l --log-prefix="$log/tx" -f "$file" >"$log/out" 2>&1 ||
		{
			cat "$log/out" >&2
			tail -n 20 "$STANDBY/server.log" >&2
			die "pgbench failed in case ${nodes[$id]} ${works[$id]} ${kinds[$id]}"
		}
	t_end=$(date +%s.%N)
	# the window ends when the run's last click is in the primary's tables
	if [ "${nodes[$id]}" = standby ]; then
		wait_until sb_psql 'SELECT unshipped_visits = 0 FROM shorturl.stats' "$SETTLE_TIMEOUT" || settled=false
	else
		wait_until bench_psql 'SELECT pending_visits = 0 FROM shorturl.stats' "$SETTLE_TIMEOUT" || settled=false
	fi
	t1=$(date +%s.%N)
	read -r all1 cs1 cw1 ck1 < <(cpu_ticks "$PRIMARY/server" "$shipper0" "$walsender" "$worker")
	read -r sball1 sb1 sr1 < <(cpu_ticks "$STANDBY/server" "$sbworker" "$sbstartup")
	read -r lsn1 flushes1 < <(bench_psql -At -F ' ' -c 'SELECT pg_current_wal_insert_lsn(), flushes FROM shorturl.stats')
	read -r total1 applied1 shipper1 ws1 wk1 < <(primary_state)
	# the window's WAL by kind: records and full-page images
	read -r wal_records wal_record_bytes wal_fpi_bytes < <("$PG_BIN/pg_waldump" -p "$PRIMARY/server/pg_wal" \
		-s "$lsn0" -e "$lsn1" --stats 2>/dev/null | awk '$1 == "Total" {print $2, $3, $5}') ||
		say "warning: pg_waldump could not read the window's WAL ($lsn0 to $lsn1)"
	read -r shipped1 batches1 failures1 dropped1 unshipped1 sbw1 sbs1 < <(standby_state)
	tps=$(awk '/^tps = / {print $3}' "$log/out")
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$log/out")
	# column 3 of the log is the transaction's latency in microseconds
	read -r p99 mean < <(cat "$log"/tx.* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1; s += $1}
		     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
		          printf "%.3f %.3f\n", v[i] / 1000, s / NR / 1000}')
	rm -rf "$log"
	if [ "$settled" = false ]; then
		say "warning: case ${nodes[$id]} ${works[$id]} ${kinds[$id]}, round $round: not settled within ${SETTLE_TIMEOUT}s (standby: $(sb_psql -Atc 'SELECT unshipped_visits, ship_failures, last_error FROM shorturl.stats'))"
	fi
	bench_psql -q -c "INSERT INTO bench.pgb VALUES ($id, $round, $tps, $mean, $p99, $tx,
	                  $t1 - $t0, $t1 - $t_end, $settled, pg_wal_lsn_diff('$lsn1', '$lsn0'),
	                  ${wal_record_bytes:-0}, ${wal_fpi_bytes:-0},
	                  $all1 - $all0, $cs1 - $cs0, $cw1 - $cw0, $ck1 - $ck0, $sball1 - $sball0, $sb1 - $sb0, $sr1 - $sr0,
	                  $shipper0 = $shipper1 AND $walsender = $ws1 AND $worker = $wk1 AND $sbworker = $sbw1
	                  AND $sbstartup = $sbs1,
	                  $shipped1 - $shipped0, $batches1 - $batches0, $flushes1 - $flushes0,
	                  $failures1 - $failures0, $dropped1 - $dropped0,
	                  $total1 - $total0, $applied1 - $applied0)"
}

say "${#kinds[@]} cases x $rounds rounds x ${seconds}s"
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		pgb $(((k + r) % n)) "$r"
	done
done

bench_psql -q <<SQL
-- the primary's CPU ticks per second while the standby served plain SELECTs
CREATE VIEW bench.idle AS
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY p.cpu_all / p.window_s) AS ticks_per_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.wal_bytes / p.window_s) AS wal_per_s
FROM bench.pgb p JOIN bench.pgb_cases c USING (id) WHERE c.node = 'standby' AND c.kind = 'plain';

CREATE VIEW bench.pgb_report AS
WITH runs AS (
    -- clicks: those pgbench made (all of a resolve run's)
    SELECT p.*, CASE WHEN c.kind IN ('resolve', 'uncached') THEN p.tx END AS clicks,
           1e6 / $HZ AS us_per_tick
    FROM bench.pgb p JOIN bench.pgb_cases c USING (id)
), m AS (
    SELECT c.id, c.node, c.workload, c.kind, c.reference, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.tps) AS tps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.mean_ms) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.p99_ms) AS p99,
           string_agg(round(r.tps)::text, ' ' ORDER BY r.round) AS tps_rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE c.node WHEN 'standby' THEN r.cpu_sb_all ELSE r.cpu_all END
                                                       * r.us_per_tick / r.tx) AS cpu_node,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.cpu_sb_all + r.cpu_all) * r.us_per_tick / r.tx) AS cpu_both,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.settle_s) AS settle,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wal_bytes / r.clicks) AS wal,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wal_record_bytes / r.clicks) AS wal_records,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wal_fpi_bytes / r.clicks) AS wal_fpi,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_all * r.us_per_tick / r.clicks) AS cpu_all,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.cpu_all - i.ticks_per_s * r.window_s) * r.us_per_tick / r.clicks) AS cpu_net,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_shipper * r.us_per_tick / r.clicks) AS cpu_shipper,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_walsender * r.us_per_tick / r.clicks) AS cpu_walsender,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_worker * r.us_per_tick / r.clicks) AS cpu_worker,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_sb_worker * r.us_per_tick / r.clicks) AS cpu_sb_worker,
           -- per transaction, for the plain cases too
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_sb_replay * r.us_per_tick / r.tx) AS cpu_sb_replay,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE c.node WHEN 'standby' THEN r.cpu_sb_worker ELSE r.cpu_worker END
                                                       * r.us_per_tick / r.tx) AS cpu_node_worker,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.batches) AS batches,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.shipped::float8 / nullif(r.batches, 0)) AS per_batch,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.flushes) AS flushes,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.tx::float8 / nullif(r.flushes, 0)) AS per_flush,
           sum(r.tx) AS tx, sum(r.shipped) AS shipped, sum(r.applied_delta) AS applied,
           sum(r.primary_delta) AS primary_delta, sum(r.failures) AS failures, sum(r.dropped) AS dropped,
           count(*) FILTER (WHERE r.primary_delta = coalesce(r.clicks, 0)
                              AND r.shipped = CASE WHEN c.node = 'standby' THEN coalesce(r.clicks, 0) ELSE 0 END
                              AND r.applied_delta = r.shipped AND r.settled) AS exact_runs,
           bool_and(r.shipper_kept) AS kept
    FROM bench.pgb_cases c JOIN runs r USING (id) CROSS JOIN bench.idle i
    GROUP BY c.id, c.node, c.workload, c.kind, c.reference
)
SELECT m.*, m.tps / p.tps AS ratio_raw, p.cpu_node / m.cpu_node AS cpu_ratio_node,
       p.cpu_both / m.cpu_both AS cpu_ratio_both,
       CASE m.kind WHEN 'plain' THEN 'SELECT url FROM bench.plain WHERE code = \$1'
                   ELSE 'SELECT shorturl.resolve(\$1)' END AS "statement"
FROM m JOIN m p ON p.id = m.reference;
SQL

# report prints the figures (kept in $out too)
report() {
	echo "pg_shorturl $(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'") read replicas benchmark (test/bench/replicas.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "one primary and one streaming hot standby (pg_basebackup -R) on this machine, Unix sockets, ports 5432 and $STANDBY_PORT"
	echo "pgbench -M prepared over the Unix socket, $clients clients, $threads threads, ${seconds}s per run, $rounds rounds (medians), cases interleaved"
	echo "$links links; code = $((FIRST_CODE + 1)) + permute(rank, $links, $SEED); uniform: random(0, N-1); zipfS: random_zipfian(0, N-1, S)"
	echo "huge_pages: ${huge:-off}"
	echo "the standby's settings: $settings"
	echo
	echo "1. TPS on the standby and on the primary (x plain: against the plain SELECT on the same node and keys). CPU µs/tx:"
	echo "   /proc utime + stime per transaction over the run's window (see 2) of every process of the node served, and of both"
	echo "   servers (a standby's resolve() then includes the primary's applying; the primary's cases the standby's replay);"
	echo "   x plain by CPU: the plain SELECT's CPU per transaction over the case's (less disturbed by other work than TPS)"
	bench_psql -c 'SELECT node, workload, kind AS "case", rounds, round(tps::numeric, 0) AS "median TPS",
	                      round(ratio_raw::numeric, 2) AS "x plain", tps_rounds AS "TPS by round",
	                      round(mean::numeric, 3) AS "mean ms", round(p99::numeric, 3) AS "p99 ms",
	                      round(cpu_node::numeric, 1) AS "CPU µs/tx, node", round(cpu_both::numeric, 1) AS "both servers",
	                      round(cpu_ratio_node::numeric, 2) AS "x plain by CPU, node",
	                      round(cpu_ratio_both::numeric, 2) AS "both servers", "statement"
	               FROM bench.pgb_report ORDER BY workload, node DESC, kind'
	echo "goal: resolve() on the standby >= $RESOLVE_GOAL x the plain SELECT on the standby"
	bench_psql -At <<SQL
SELECT format('  %-10s standby resolve %s x standby plain (%s vs %s TPS; by CPU %s x, both servers %s x), p99 %s vs %s ms  %s',
              r.workload || ':', round(r.ratio_raw::numeric, 2), round(r.tps::numeric), round(p.tps::numeric),
              round(r.cpu_ratio_node::numeric, 2), round(r.cpu_ratio_both::numeric, 2),
              round(r.p99::numeric, 3), round(p.p99::numeric, 3),
              CASE WHEN r.ratio_raw >= $RESOLVE_GOAL THEN 'PASS' ELSE 'MISS' END)
FROM bench.pgb_report r JOIN bench.pgb_report p ON p.id = r.reference
WHERE r.node = 'standby' AND r.kind = 'resolve' ORDER BY r.workload;
SQL
	echo "where a node's CPU per transaction goes: its startup process (the replay, on the standby), its worker (the"
	echo "shipping on the standby, the flushes on the primary), and the rest (the backends, pgbench's connections, the"
	echo "checkpointer and the like)"
	bench_psql -At <<'SQL'
SELECT format('  %-10s %-7s %-8s %5s µs/tx: replay %5s, worker %5s, the rest %5s',
              workload || ':', node, kind, round(cpu_node::numeric, 1),
              CASE node WHEN 'standby' THEN round(cpu_sb_replay::numeric, 1)::text ELSE '-' END,
              round(coalesce(cpu_node_worker, 0)::numeric, 1),
              round((cpu_node - CASE node WHEN 'standby' THEN cpu_sb_replay ELSE 0 END
                     - coalesce(cpu_node_worker, 0))::numeric, 1))
FROM bench.pgb_report WHERE kind IN ('plain', 'resolve') ORDER BY workload, node DESC, kind;
SQL
	echo
	echo "   exactness: over each window the primary's total visits (sum of visit_counts after flush()) grow by exactly"
	echo "   the clicks pgbench made, and the standby's shipped_visits and the primary's standby_batches.visits by as much"
	bench_psql <<'SQL'
SELECT node, workload, kind AS "case", tx AS "pgbench clicks", CASE WHEN kind = 'plain' THEN 0 ELSE tx END AS "expected",
       primary_delta AS "primary's total grew", shipped AS "standby shipped", applied AS "standby_batches grew",
       failures AS "ship failures", dropped AS "standby dropped", exact_runs || ' / ' || rounds AS "exact runs",
       CASE WHEN exact_runs = rounds THEN 'PASS' ELSE 'FAIL' END AS "check"
FROM bench.pgb_report ORDER BY workload, node DESC, kind;
SQL
	bench_psql -At <<'SQL'
SELECT format('   standby clicks, all runs: %s made by pgbench, %s arrived in the primary''s totals: %s',
              sum(tx), sum(primary_delta),
              CASE WHEN sum(tx) = sum(primary_delta) AND bool_and(exact_runs = rounds) THEN 'PASS' ELSE 'FAIL' END)
FROM bench.pgb_report WHERE node = 'standby' AND kind = 'resolve';
SELECT CASE WHEN bool_and(kept) THEN '   (the shipping connection, walsender and workers kept their processes through every window)'
            ELSE '   note: a shipping backend, walsender or worker changed process during a window (its CPU is then in "all" only)' END
FROM bench.pgb_report;
SQL
	echo
	echo "2. CPU per click, µs (/proc utime + stime over the window: from pgbench's start until the run's last click is stored"
	echo "   on the primary). Primary, all: every process of the primary; net of idle: minus the primary's CPU per second during"
	echo "   the standby's plain runs ($(bench_psql -Atc "SELECT round((ticks_per_s * 1000 / $HZ)::numeric, 1) FROM bench.idle") ms/s) times the window; shipper: the backend of the standby's"
	echo "   connection; worker: the primary's worker (its flushes of its own clicks); standby worker: the shipping on the standby;"
	echo "   batches: the standby's batches the primary acknowledged (standby rows), flushes: the primary's worker's (primary rows)"
	bench_psql <<'SQL'
SELECT workload, node || ' resolve' AS "clicks on", round(tps::numeric, 0) AS "median TPS",
       round(CASE node WHEN 'standby' THEN batches ELSE flushes END::numeric, 0) AS "batches or flushes/run",
       round(CASE node WHEN 'standby' THEN per_batch ELSE per_flush END::numeric, 0) AS "clicks each",
       round(settle::numeric, 2) AS "settle s",
       round(cpu_all::numeric, 2) AS "primary, all", round(cpu_net::numeric, 2) AS "net of idle",
       CASE node WHEN 'standby' THEN round(cpu_shipper::numeric, 2) END AS "shipper",
       round(cpu_worker::numeric, 2) AS "primary worker", round(cpu_walsender::numeric, 2) AS "walsender",
       CASE node WHEN 'standby' THEN round(cpu_sb_worker::numeric, 2) END AS "standby worker",
       round(wal::numeric, 1) AS "WAL B/click"
FROM bench.pgb_report WHERE kind = 'resolve' ORDER BY workload, node DESC;
SQL
	bench_psql -At <<'SQL'
SELECT format('   %-10s the primary applies a shipped click for %s µs (shipper backend; all its processes, net of idle: %s µs);'
              || ' its worker flushes one of its own for %s µs: %s x',
              s.workload || ':', round(s.cpu_shipper::numeric, 2), round(s.cpu_net::numeric, 2),
              round(p.cpu_worker::numeric, 2), round((s.cpu_shipper / nullif(p.cpu_worker, 0))::numeric, 2))
FROM bench.pgb_report s JOIN bench.pgb_report p ON p.workload = s.workload AND p.node = 'primary' AND p.kind = 'resolve'
WHERE s.node = 'standby' AND s.kind = 'resolve' ORDER BY s.workload;
SQL
	echo
	echo "3. WAL on the primary per click, bytes (pg_current_wal_insert_lsn() from pgbench's start until the run's last click is"
	echo "   stored, each window starting at a CHECKPOINT; records and full-page images apart by pg_waldump --stats; the"
	echo "   primary's WAL per second during the standby's plain runs: $(bench_psql -Atc 'SELECT round(wal_per_s::numeric, 0) FROM bench.idle') B/s)"
	bench_psql -At <<'SQL'
SELECT format('   %-10s shipped from the standby %s B/click (%s clicks a batch); the primary''s own clicks after its flushes'
              || ' %s B/click (%s clicks a flush): %s x; records alone %s vs %s B/click: %s x; full-page images %s vs %s B/click',
              s.workload || ':', round(s.wal::numeric, 1), round(s.per_batch::numeric), round(p.wal::numeric, 1),
              round(p.per_flush::numeric), round((s.wal / nullif(p.wal, 0))::numeric, 2),
              round(s.wal_records::numeric, 1), round(p.wal_records::numeric, 1),
              round((s.wal_records / nullif(p.wal_records, 0))::numeric, 2),
              round(s.wal_fpi::numeric, 1), round(p.wal_fpi::numeric, 1))
FROM bench.pgb_report s JOIN bench.pgb_report p ON p.workload = s.workload AND p.node = 'primary' AND p.kind = 'resolve'
WHERE s.node = 'standby' AND s.kind = 'resolve' ORDER BY s.workload;
SQL
	echo
	sb_psql -At -c "SELECT format('the standby''s queries cancelled by recovery conflicts (pg_stat_database_conflicts): %s',
	                              confl_tablespace + confl_lock + confl_snapshot + confl_bufferpin + confl_deadlock)
	                FROM pg_stat_database_conflicts WHERE datname = 'postgres'"
	# the URL cache on a hot standby checks each hit's row version (rule 4
	# in urlcache.c) unless nothing was replayed since its last check
	echo "the URL cache since each server's start (shorturl.stats, hits / misses):" \
		"primary $(bench_psql -Atc "SELECT coalesce(url_cache_hits::text, '-') || ' / ' || coalesce(url_cache_misses::text, '-') FROM shorturl.stats")," \
		"standby $(sb_psql -Atc "SELECT coalesce(url_cache_hits::text, '-') || ' / ' || coalesce(url_cache_misses::text, '-') FROM shorturl.stats")"
	echo "the servers' logs: lines at WARNING or above"
	for srv in primary standby; do
		if [ $srv = primary ]; then f=$PRIMARY/server.log; else f=$STANDBY/server.log; fi
		echo "   $srv: $(grep -cE '(WARNING|ERROR|FATAL|PANIC):' "$f" || true) lines"
		# the same message once, with how often it came (time and pid cut)
		grep -E '(WARNING|ERROR|FATAL|PANIC):' "$f" | sed -E 's/^[^[]*\[[0-9]+\] //' | sort | uniq -c |
			sort -rn | head -n 10 | sed 's/^/    /' || true
	done
}
mkdir -p "$(dirname "$out")"
report | tee "$out"

# The chart: median TPS per case, grouped by workload; the standby's ratio
# in the group's label
mkdir -p "$(dirname "$plot")"
data=$BENCH_WORK/replicas.dat
bench_psql -At -F $'\t' >"$data" <<'SQL'
SELECT format('%s: standby resolve %s x plain', w.workload,
              (SELECT round(ratio_raw::numeric, 2) FROM bench.pgb_report
               WHERE workload = w.workload AND node = 'standby' AND kind = 'resolve')),
       (SELECT tps FROM bench.pgb_report WHERE workload = w.workload AND node = 'standby' AND kind = 'plain'),
       (SELECT tps FROM bench.pgb_report WHERE workload = w.workload AND node = 'standby' AND kind = 'resolve'),
       (SELECT tps FROM bench.pgb_report WHERE workload = w.workload AND node = 'primary' AND kind = 'plain'),
       (SELECT tps FROM bench.pgb_report WHERE workload = w.workload AND node = 'primary' AND kind = 'resolve')
FROM (SELECT workload, min(id) AS id FROM bench.pgb_cases GROUP BY workload) w ORDER BY w.id
SQL
ymax=$(awk -F '\t' '{for (i = 2; i <= 5; i++) if ($i > m) m = $i} END {printf "%d", m * 1.15}' "$data")
plot_cmd="plot '$data' using 2:xtic(1) lc rgb '#bbbbbb' title 'standby: plain SELECT'"
plot_cmd+=", '' using 3 lc rgb '#228833' title 'standby: resolve()'"
plot_cmd+=", '' using 4 lc rgb '#dddddd' title 'primary: plain SELECT'"
plot_cmd+=", '' using 5 lc rgb '#66ccee' title 'primary: resolve()'"
for j in 0 1 2 3; do
	x="(\$0 + ($j - 1.5) / 5.0)"
	plot_cmd+=", '' using $x:(\$$((j + 2)) + $ymax * 0.02):(sprintf('%.0f', \$$((j + 2)))) with labels notitle"
done
gnuplot <<GNUPLOT
set terminal pngcairo size 1000,600 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl read replicas, $links links: median TPS of $rounds runs of ${seconds}s, $clients clients, one primary and one standby on $(nproc) cores"
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:$ymax]
set ylabel "transactions per second"
set grid ytics
set key below
$plot_cmd
GNUPLOT
echo "chart: $plot"
