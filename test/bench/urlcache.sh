#!/bin/bash
# test/bench/urlcache.sh: the URL cache (issue 17): resolve() with the cache
# in front of shorturl.links, resolve() without it, and the plain indexed
# SELECT, on a hot link, on Zipf's law and on a uniform spread over more
# links than the cache holds; Redis in front of the plain table as an
# anchor; and the cache's hit rate against its size.
#
# BENCH_LINKS links (1,000,000) are stored as aliases with decimal codes
# FIRST_CODE + 1 ... FIRST_CODE + N (bench_make_links), and bench.plain
# (code text PRIMARY KEY, url text) holds the same codes and URLs.  One
# throw-away server preloads the library, its worker serves the database,
# the extension's settings are the defaults but shorturl.url_cache_size
# (printed in the report); the tables are prewarmed and a CHECKPOINT
# follows the load (bench_settle), and again after every restart.
# Workloads pick a rank r:
#
#   hot        r = 0: one link
#   zipfS      random_zipfian(0, N - 1, S), S = 1.001 and 1.2
#   uniform    random(0, N - 1)
#
# and ask for the code FIRST_CODE + 1 + permute(r, N, SEED), so the hot
# ranks are spread over the index (SEED is fixed: the same links are hot in
# every run).  Three cases per workload, the same server:
#
#   plain            SELECT url FROM bench.plain WHERE code = $1
#   resolve_nocache  SELECT shorturl.resolve($1), with
#                    PGOPTIONS='-c shorturl.url_cache=off' for the run
#                    (the session neither reads nor fills the cache)
#   resolve_cache    SELECT shorturl.resolve($1), the cache on (default)
#   floor            SELECT $1::text, on the hot workload only: the round
#                    trip, parse-free execution and the row sent back with
#                    no table at all, the most any lookup could gain over
#                    the plain SELECT on this machine
#
# Every case is a pgbench run (-M prepared, over the Unix socket); every
# round runs every case once, in an order that rotates from round to round;
# figures are medians over rounds.  Each run starts from a flush of the
# clicks and a VACUUM of shorturl.visit_counts.  The cache is warm when a
# cache case is measured: before a part's first round, BENCH_PREWARM_SECONDS
# (15) of its widest workload (uniform, else the smallest Zipf exponent:
# the hot links of zipf1.2 and hot are zipf1.001's too), BATCH resolve()
# calls a statement so that it sends several times the requests a second;
# and before each resolve_cache run an untimed run of BENCH_WARM_SECONDS
# (3) of the same script (so the cache holds this workload's links, not
# the last case's), before the flush.  Per run: TPS, its ratios to plain
# and to resolve_nocache, mean and p99 latency (pgbench's per-transaction
# log), the server's CPU time per transaction (utime + stime of the
# postmaster, its live and its reaped children, from /proc, over the run:
# less swayed than TPS by other work on the machine) and the load
# generator's (pgbench's, or the C client's: the shell's reaped children,
# which share the cores with the server), and the cache's figures over the
# measured run (deltas of shorturl.stats, which are cluster-wide: only the
# run's sessions use the server meanwhile): hit rate = hits / (hits +
# misses), fills, admissions TinyLFU refused, evictions, invalidations
# (none expected: nothing changes a link) and the entries held after the
# last round.
#
#   1. url_cache_size = BENCH_CACHE_SIZE (64MB, the default: about 335,000
#      entries of a 7-byte code and a 61-byte URL, a third of the links):
#      hot, zipf1.001, zipf1.2 (BENCH_WORKLOADS).
#   2. The server restarted with url_cache_size = BENCH_SMALL_CACHE (16MB,
#      about 84,000 entries, 8% of the links): uniform
#      (BENCH_SMALL_WORKLOADS).  Most lookups miss and pay the probe, the
#      frequency sketch and the refused admissions on top of the index
#      read: the goal is not to lose to resolve_nocache there.
#   3. The Redis anchor (BENCH_REDIS_WORKLOAD, zipf1.001; empty: skipped),
#      run between 1 and 2: the server restarted at 1's size, so the URL
#      cache starts empty, as Redis does.  Debian's redis-server, our own
#      instance on a Unix socket (no TCP port, no persistence, maxmemory =
#      the URL cache's bytes, policy BENCH_REDIS_POLICY, allkeys-lfu, the
#      closest to the cache's TinyLFU), started for this part only.
#      pgbench cannot speak to Redis, so test/bench/urlcache_redis.c (built
#      here with gcc -O2 against libpq and hiredis, Redis's own C client)
#      runs all three cases of this part, so their ratios compare one
#      client with itself: BENCH_CLIENTS threads, each with one libpq
#      connection and one hiredis connection over the Unix sockets,
#      redirects back to back for BENCH_SECONDS:
#        c_plain    the plain SELECT (prepared)
#        c_resolve  SELECT shorturl.resolve($1) (prepared; the cache on)
#        c_redis    GET code; on a miss the plain SELECT, then SET code url
#                   (cache-aside, as an application would put Redis in
#                   front of its table)
#      Ranks are drawn as pgbench's random_zipfian() draws them and
#      scattered by a bijection of the client's own (r * M mod N; see the
#      C file).  A hiredis GET is one round trip, as a prepared statement
#      is: neither side is favoured by its protocol.  What is not equal:
#      resolve() also counts the click (shared memory, flushed by the
#      worker), which the Redis path does not, and Redis is a third process
#      on the same two cores.  Both caches are prewarmed by the client's own
#      requests (BENCH_PREWARM_SECONDS each), and the c_resolve and c_redis
#      runs follow the warm-up; Redis's hit rate is its own (GETs answered /
#      GETs), counted by the client; its server CPU adds Redis's.
#   4. Hit rate against size: for each of BENCH_SWEEP_SIZES (8MB 16MB 64MB)
#      the server restarted with that url_cache_size (an empty cache),
#      BENCH_SWEEP_WARM_SECONDS (20) of resolve() untimed, BATCH calls a
#      statement, then one measured run of BENCH_SECONDS, per workload of
#      BENCH_SWEEP_WORKLOADS (zipf1.001).  Beside the measured hit rate,
#      the best any cache of as many entries could do on that
#      distribution: the share of requests for the top-k ranks, k = the
#      entries it held (sum of i^-S for i <= k over i <= N).  A cache
#      larger than the links the warm-up asked for is not full: its hit
#      rate is that of a server after so many requests (the table gives
#      them), not a steady state; the policy simulator
#      test/bench/cache_policy.sh gives steady states apart from the
#      server.
#
# Goals (from the issue): with the cache, resolve() at least 1.3x the
# plain SELECT on the hot link and 1.2x on Zipf s=1.001, and never below
# resolve_nocache on uniform with the small cache (reported as MET when
# the median ratio, to two places, is >= 1.00).  A benchmark never fails
# on time: the goals are reported, not enforced.  The server is restarted
# (parts 2, 3 and 4) rather than a second one started: the links are
# loaded once; the library is the one installed at each start, and the
# report names each (its md5) and says if they differ.
#
# Installs what it needs (redis-server and libhiredis-dev with part 3).
# Installing redis-server may start Debian's own Redis service on
# 127.0.0.1:6379; this script neither uses nor stops it.
#
#   BENCH_SECONDS             seconds per measured run (default 10)
#   BENCH_ROUNDS              rounds (default 3)
#   BENCH_CLIENTS             pgbench clients, and the C client's threads
#                             (default 8)
#   BENCH_THREADS             pgbench threads (default 2)
#   BENCH_LINKS               links (default 1000000)
#   BENCH_WARM_SECONDS        the untimed run before each cache case
#                             (default 3)
#   BENCH_PREWARM_SECONDS     the prewarm before a part's rounds (default
#                             15; 0: none)
#   BENCH_CACHE_SIZE          url_cache_size of 1 and 3 (default 64MB)
#   BENCH_SMALL_CACHE         url_cache_size of 2 (default 16MB)
#   BENCH_WORKLOADS           1's workloads (default "hot zipf1.001 zipf1.2")
#   BENCH_SMALL_WORKLOADS     2's workloads (default "uniform")
#   BENCH_REDIS_WORKLOAD      3's workload (default zipf1.001; empty: no 3)
#   BENCH_REDIS_POLICY        Redis's maxmemory-policy (default allkeys-lfu)
#   BENCH_SWEEP_SIZES         4's sizes (default "8MB 16MB 64MB"; empty:
#                             no 4)
#   BENCH_SWEEP_WORKLOADS     4's workloads (default zipf1.001)
#   BENCH_SWEEP_WARM_SECONDS  4's untimed run per size and workload
#                             (default 20)
#   BENCH_PLOT                bar chart of the ratios, PNG (default
#                             test/bench/results/urlcache.png)
#   BENCH_HIT_PLOT            hit rate against size, PNG (default
#                             test/bench/results/urlcache-hit-rate.png)
#   BENCH_OUT                 the report, also written here (default
#                             test/bench/results/urlcache-<date>.txt)
#   BENCH_HUGE_PAGES          set: the server runs with huge_pages = on
#                             (the script reserves vm.nr_hugepages for the
#                             run, and gives them back)
#   BENCH_NO_BUILD            set: use the installed extension as it is
#   BENCH_SERVER_CONF         more lines for the server's configuration
#                             (printf %b: "\n" separates them), e.g. the
#                             worker's flushes held off for the run with
#                             "shorturl.flush_interval = '1h'\n
#                             shorturl.max_pending_links = 1100000"; the
#                             report's settings line shows them
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-1000000}
warm=${BENCH_WARM_SECONDS:-3}
prewarm_seconds=${BENCH_PREWARM_SECONDS:-15}
cache_size=${BENCH_CACHE_SIZE:-64MB}
small_cache=${BENCH_SMALL_CACHE:-16MB}
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-hot zipf1.001 zipf1.2}"
read -r -a SMALL_WORKLOADS <<<"${BENCH_SMALL_WORKLOADS:-uniform}"
redis_workload=${BENCH_REDIS_WORKLOAD-zipf1.001}
redis_policy=${BENCH_REDIS_POLICY:-allkeys-lfu}
read -r -a SWEEP_SIZES <<<"${BENCH_SWEEP_SIZES-8MB 16MB 64MB}"
read -r -a SWEEP_WORKLOADS <<<"${BENCH_SWEEP_WORKLOADS:-zipf1.001}"
sweep_warm=${BENCH_SWEEP_WARM_SECONDS:-20}
plot=${BENCH_PLOT:-$BENCH_DIR/results/urlcache.png}
hit_plot=${BENCH_HIT_PLOT:-$BENCH_DIR/results/urlcache-hit-rate.png}
out=${BENCH_OUT:-$BENCH_DIR/results/urlcache-$(date -u +%Y-%m-%d).txt}

# the issue's goals: resolve() with the cache against the plain SELECT (hot,
# zipf1.001), and against resolve() without it (uniform, small cache)
HOT_GOAL=1.3
ZIPF_GOAL=1.2
UNIFORM_GOAL=1.00
FIRST_CODE=1000000
SEED=12
CLIENT=$BENCH_DIR/urlcache_redis.c
# resolve() calls per statement of the prewarm: fewer round trips, so more
# requests a second
BATCH=50
# BENCH_HUGE_PAGES: 2 MB pages for 2 GB of shared_buffers, a cache of up
# to 256 MB and the rest
HUGE_PAGES_NEEDED=1300

[ -z "$redis_workload" ] || ensure_packages redis-server libhiredis-dev

# lib_id names the installed library, which a server loads when it starts
lib_path=$("$PG_BIN/pg_config" --pkglibdir)/pg_shorturl.so
lib_id() { printf 'md5 %s, installed %s' "$(md5sum "$lib_path" | cut -c1-12)" "$(date -u -r "$lib_path" '+%Y-%m-%d %H:%M:%S UTC')"; }
lib_starts=()

conf=$(mktemp /tmp/pg_shorturl-urlcache.XXXXXX.conf)
{
	echo "shorturl.database = 'postgres'"
	echo "shorturl.url_cache_size = '$cache_size'"
	[ -z "${BENCH_SERVER_CONF:-}" ] || printf '%b\n' "$BENCH_SERVER_CONF"
} >"$conf"
huge=${BENCH_HUGE_PAGES:+on}
if [ "$huge" ]; then
	require_root
	# 2 MB pages for shared_buffers (2 GB), the largest cache of the run and the rest
	hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
	echo "$HUGE_PAGES_NEEDED" >/proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge "$HUGE_PAGES_NEEDED" ] ||
		{ echo "$hugepages_before" >/proc/sys/vm/nr_hugepages; die "could not reserve $HUGE_PAGES_NEEDED huge pages"; }
	echo "huge_pages = on" >>"$conf"
fi
bench_start "$conf"
rm -f "$conf"
lib_starts+=("start, url_cache_size $cache_size: $(lib_id)")
REDIS_PID_FILE=$BENCH_WORK/redis.pid
REDIS_SOCKET=$BENCH_WORK/redis.sock

# stop_redis stops the Redis this script started, if it runs
stop_redis() {
	local pid i
	[ -f "$REDIS_PID_FILE" ] || return 0
	pid=$(cat "$REDIS_PID_FILE")
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$REDIS_PID_FILE"
}
trap 'stop_redis; scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK"; [ -z "$huge" ] || echo "$hugepages_before" >/proc/sys/vm/nr_hugepages' EXIT

# restart_with SIZE restarts the server with that url_cache_size (an
# empty cache), prewarms and waits for the worker.
restart_with() {
	bench_psql -q -c "ALTER SYSTEM SET shorturl.url_cache_size = '$1'"
	as_user "$PG_BIN/pg_ctl" -D "$BENCH_WORK/server" -l "$BENCH_WORK/server.log" -w restart >/dev/null
	bench_settle
	lib_starts+=("restart, url_cache_size $1: $(lib_id)")
}

say "making $links links"
bench_make_links "$links" "$FIRST_CODE"
bench_settle
settings=$(bench_psql -Atc "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
                            FROM pg_settings WHERE name IN ('shorturl.max_pending_links', 'shorturl.flush_interval',
                                                            'shorturl.url_cache')")
cache_bytes=$(bench_psql -Atc 'SELECT url_cache_size FROM shorturl.stats')
small_bytes=
version=$(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'")
[[ $cache_bytes =~ ^[1-9] ]] ||
	die "the server has no URL cache (shorturl.stats.url_cache_size is not positive)"

# The pgbench scripts: WORKLOAD.plain.sql and WORKLOAD.resolve.sql
S=$BENCH_WORK/scripts
mkdir -p "$S"
pick_of() {
	case $1 in
	uniform) echo "random(0, $((links - 1)))" ;;
	zipf*) echo "random_zipfian(0, $((links - 1)), ${1#zipf})" ;;
	hot) echo 0 ;;
	*) die "unknown workload $1" ;;
	esac
}
for w in $(printf '%s\n' "${WORKLOADS[@]}" "${SMALL_WORKLOADS[@]}" "${SWEEP_WORKLOADS[@]}" | sort -u); do
	keys="\\set r $(pick_of "$w")
\\set c $((FIRST_CODE + 1)) + permute(:r, $links, $SEED)"
	printf '%s\nSELECT url FROM bench.plain WHERE code = :c;\n' "$keys" >"$S/$w.plain.sql"
	printf '%s\nSELECT shorturl.resolve(:c);\n' "$keys" >"$S/$w.resolve.sql"
	printf '%s\nSELECT :c::text;\n' "$keys" >"$S/$w.floor.sql"
	# the prewarm's: BATCH resolve() calls per statement
	for ((i = 1; i <= BATCH; i++)); do
		printf '\\set r%d %s\n\\set c%d %d + permute(:r%d, %d, %d)\n' "$i" "$(pick_of "$w")" "$i" $((FIRST_CODE + 1)) "$i" "$links" "$SEED"
	done >"$S/$w.batch.sql"
	echo "SELECT $(for ((i = 1; i <= BATCH; i++)); do echo "shorturl.resolve(:c$i)"; done | paste -sd,);" >>"$S/$w.batch.sql"
done

# The Redis anchor's client
if [ -n "$redis_workload" ]; then
	gcc -std=c11 -O2 -Wall -Wextra -Werror -I"$("$PG_BIN/pg_config" --includedir)" \
		-o "$BENCH_WORK/urlcache_redis" "$CLIENT" -lpq -lhiredis -lpthread -lm
	redis_version=$(redis-server --version | sed 's/ sha=.*//')
fi

# The cases: phase (1: url_cache_size BENCH_CACHE_SIZE, 2: BENCH_SMALL_CACHE,
# 3: the Redis anchor, C client), workload, case, and the cases it is
# compared with (by number): the plain SELECT, and resolve_nocache (1, 2)
# or c_resolve (3).
phases=() works=() kinds=() plain_ids=() second_ids=()
add_case() { phases+=("$1"); works+=("$2"); kinds+=("$3"); plain_ids+=("$4"); second_ids+=("$5"); }
for w in "${WORKLOADS[@]}"; do
	k=${#kinds[@]}
	for kind in plain resolve_nocache resolve_cache; do add_case 1 "$w" "$kind" "$k" $((k + 1)); done
	[ "$w" != hot ] || add_case 1 "$w" floor "$k" $((k + 1))
done
for w in "${SMALL_WORKLOADS[@]}"; do
	k=${#kinds[@]}
	for kind in plain resolve_nocache resolve_cache; do add_case 2 "$w" "$kind" "$k" $((k + 1)); done
done
if [ -n "$redis_workload" ]; then
	k=${#kinds[@]}
	for kind in c_plain c_resolve c_redis; do add_case 3 "$redis_workload" "$kind" "$k" $((k + 1)); done
fi
n=${#kinds[@]}
{
	echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, phase int, workload text, kind text, plain_id int, second_id int);'
	echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, mean_ms float8, p99_ms float8, tx bigint, cpu_us float8, client_us float8,
	        hits bigint, misses bigint, fills bigint, rejected bigint, evictions bigint, invalidations bigint, entries bigint);'
	echo 'CREATE TABLE bench.sweep (size text, bytes bigint, workload text, before bigint, tps float8, hits bigint, misses bigint,
	        fills bigint, rejected bigint, evictions bigint, entries bigint, ideal float8);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.pgb_cases VALUES (%d, %d, '%s', '%s', %d, %d);\n" \
			"$i" "${phases[$i]}" "${works[$i]}" "${kinds[$i]}" "${plain_ids[$i]}" "${second_ids[$i]}"
	done
} | bench_psql -q

# cache_stats prints the URL cache's cluster-wide figures
cache_stats() {
	bench_psql -At -F ' ' -c 'SELECT url_cache_hits, url_cache_misses, url_cache_fills, url_cache_rejected,
	                                 url_cache_evictions, url_cache_invalidations, url_cache_entries FROM shorturl.stats'
}

# pgbench_run SCRIPT SECONDS [ARGS...] runs pgbench, the session settings
# in PGOPTIONS as they are.
pgbench_run() {
	local file=$1 secs=$2
	shift 2
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$secs" "$@" -f "$file"
}

# client_run KIND WORKLOAD SECONDS runs the C client
client_run() {
	"$BENCH_WORK/urlcache_redis" "${1#c_}" "$2" "$3" "$clients" "$links" "$FIRST_CODE" "$REDIS_SOCKET"
}

# server_cpu prints the CPU ticks of the server: the postmaster's own and
# its reaped children's (pgbench's backends end with the run and are
# reaped), those of its live children, and (c_redis) Redis's.
server_cpu() {
	local pm pid rest f fields total=0 redis=
	pm=$(head -n1 "$BENCH_WORK/server/postmaster.pid")
	[ "${1:-}" != c_redis ] || redis=$(cat "$REDIS_PID_FILE")
	for f in /proc/[0-9]*/stat; do
		{ read -r rest <"$f"; } 2>/dev/null || continue
		pid=${rest%% *}
		# fields after "pid (comm) ": state ppid ... utime(12th) stime cutime cstime
		read -r -a fields <<<"${rest##*') '}"
		if [ "$pid" = "$pm" ]; then
			total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
		elif [ "${fields[1]}" = "$pm" ] || [ "$pid" = "$redis" ]; then
			total=$((total + fields[11] + fields[12]))
		fi
	done
	echo "$total"
}
CLOCK_TICKS=$(getconf CLK_TCK)

# client_cpu prints the CPU ticks of this shell's reaped children: read
# just before and after pgbench (or the C client), the load generator's
# CPU time, which shares the two cores with the server.
client_cpu() {
	local rest fields
	read -r rest </proc/$$/stat
	read -r -a fields <<<"${rest##*') '}"
	echo $((fields[13] + fields[14]))
}

# clean_start writes the pending clicks and VACUUMs their table
clean_start() {
	bench_psql -q -c 'SELECT shorturl.flush()' -c 'VACUUM shorturl.visit_counts' >/dev/null
}

# pgb ID ROUND runs case ID once and records its figures.
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 w=${works[$1]} kind=${kinds[$1]} file opts=
	local tps tx p99 mean h0 m0 f0 r0 e0 i0 x0 h1 m1 f1 r1 e1 i1 x1 hits misses cpu0 cpu1 cl0 cl1
	case $kind in
	plain) file=$S/$w.plain.sql ;;
	floor) file=$S/$w.floor.sql ;;
	resolve_nocache) file=$S/$w.resolve.sql opts='-c shorturl.url_cache=off' ;;
	*) file=$S/$w.resolve.sql ;;
	esac
	mkdir -p "$log"
	# the warm-up: the cache (or Redis) holds this workload's links
	case $kind in
	resolve_cache) PGOPTIONS=$opts pgbench_run "$file" "$warm" >"$log/warm" 2>&1 ||
		{ cat "$log/warm" >&2; die "pgbench failed in the warm-up of $w $kind"; } ;;
	c_resolve | c_redis) client_run "$kind" "$w" "$warm" >"$log/warm" 2>&1 ||
		{ cat "$log/warm" >&2; die "the client failed in the warm-up of $w $kind"; } ;;
	esac
	clean_start
	read -r h0 m0 f0 r0 e0 i0 x0 < <(cache_stats)
	cpu0=$(server_cpu "$kind")
	cl0=$(client_cpu)
	if [[ $kind == c_* ]]; then
		client_run "$kind" "$w" "$seconds" >"$log/out" 2>&1 ||
			{ cat "$log/out" >&2; die "the client failed in case $w $kind"; }
		cl1=$(client_cpu)
		read -r tx tps mean p99 < <(awk '{print $2, $6, $8, $10}' "$log/out")
	else
		PGOPTIONS=$opts pgbench_run "$file" "$seconds" -l --log-prefix="$log/tx" >"$log/out" 2>&1 ||
			{ cat "$log/out" >&2; die "pgbench failed in case $w $kind"; }
		cl1=$(client_cpu)
		tps=$(awk '/^tps = / {print $3}' "$log/out")
		tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$log/out")
		# column 3 of the log is the transaction's latency in microseconds
		read -r p99 mean < <(cat "$log"/tx.* | awk '{print $3}' | sort -n |
			awk '{v[NR] = $1; s += $1}
			     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
			          printf "%.3f %.3f\n", v[i] / 1000, s / NR / 1000}')
	fi
	sleep 0.3
	cpu1=$(server_cpu "$kind")
	read -r h1 m1 f1 r1 e1 i1 x1 < <(cache_stats)
	hits=$((h1 - h0)) misses=$((m1 - m0))
	# c_redis: Redis's own hits and misses, counted by the client
	[ "$kind" != c_redis ] || read -r hits misses < <(awk '{print $12, $14}' "$log/out")
	rm -rf "$log"
	bench_psql -q -c "INSERT INTO bench.pgb VALUES ($id, $round, $tps, $mean, $p99, $tx,
	                  ($cpu1 - $cpu0) * 1e6 / $CLOCK_TICKS / $tx, ($cl1 - $cl0) * 1e6 / $CLOCK_TICKS / $tx,
	                  $hits, $misses, $f1 - $f0, $r1 - $r0, $e1 - $e0, $i1 - $i0, $x1)"
}

# widest W... prints the workload of those that asks for the most links:
# uniform, else the Zipf with the smallest exponent, else none (hot)
widest() {
	printf '%s\n' "$@" | { grep -v '^hot$' || true; } | sed 's/^uniform$/zipf0/' | sort -t f -k2 -g | head -n1 | sed 's/^zipf0$/uniform/'
}

# prewarm_phase P fills the cache before the phase's rounds, once: the
# phase's widest workload for BENCH_PREWARM_SECONDS, BATCH calls a
# statement (pgbench; its hot links are those of the other workloads
# too), or the C client's own requests, per cache (phase 3).
prewarm_phase() {
	local ws=() k w
	for ((k = 0; k < n; k++)); do [ "${phases[$k]}" = "$1" ] && ws+=("${works[$k]}"); done
	w=$(widest "${ws[@]}")
	[ -n "$w" ] && [ "$prewarm_seconds" -gt 0 ] || return 0
	if [ "$1" = 3 ]; then
		for k in c_resolve c_redis; do
			client_run "$k" "$w" "$prewarm_seconds" >"$BENCH_WORK/prewarm.out" 2>&1 ||
				{ cat "$BENCH_WORK/prewarm.out" >&2; die "the client failed in the prewarm ($k)"; }
		done
	else
		pgbench_run "$S/$w.batch.sql" "$prewarm_seconds" >"$BENCH_WORK/prewarm.out" 2>&1 ||
			{ cat "$BENCH_WORK/prewarm.out" >&2; die "pgbench failed in the prewarm ($w)"; }
	fi
}

# run_phase P runs the rounds of the cases of phase P.
run_phase() {
	local ids=() r k
	for ((k = 0; k < n; k++)); do [ "${phases[$k]}" = "$1" ] && ids+=("$k"); done
	[ ${#ids[@]} -gt 0 ] || return 0
	say "phase $1: ${#ids[@]} cases x $rounds rounds x ${seconds}s"
	prewarm_phase "$1"
	for ((r = 1; r <= rounds; r++)); do
		for ((k = 0; k < ${#ids[@]}; k++)); do
			pgb "${ids[$(((k + r) % ${#ids[@]}))]}" "$r"
		done
	done
}

# start_redis starts our Redis on a Unix socket, as large as the URL cache
start_redis() {
	local i
	as_user bash -c "echo \$\$ >'$REDIS_PID_FILE'; exec redis-server --port 0 --unixsocket '$REDIS_SOCKET' \
		--unixsocketperm 700 --save '' --appendonly no --maxmemory $cache_bytes \
		--maxmemory-policy $redis_policy --dir '$BENCH_WORK' --logfile '$BENCH_WORK/redis.log'" &
	for ((i = 0; i < 100; i++)); do
		[ "$(redis-cli -s "$REDIS_SOCKET" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	cat "$BENCH_WORK/redis.log" >&2
	die "redis-server did not start"
}

# 1. the large cache
run_phase 1
# 3. the Redis anchor, at the same url_cache_size
if [ -n "$redis_workload" ]; then
	say "restarting with shorturl.url_cache_size = $cache_size (an empty cache, as Redis starts)"
	restart_with "$cache_size"
	start_redis
	run_phase 3
	redis_info=$(redis-cli -s "$REDIS_SOCKET" info memory | awk -F: '/^used_memory_human|^maxmemory_human/ {gsub("\r", ""); printf "%s %s, ", $1, $2}')
	redis_info+="keys $(redis-cli -s "$REDIS_SOCKET" dbsize)"
	stop_redis
fi
# 2. the small cache
if [ ${#SMALL_WORKLOADS[@]} -gt 0 ]; then
	say "restarting with shorturl.url_cache_size = $small_cache"
	restart_with "$small_cache"
	small_bytes=$(bench_psql -Atc 'SELECT url_cache_size FROM shorturl.stats')
	run_phase 2
fi

# 4. hit rate against size
for size in "${SWEEP_SIZES[@]}"; do
	say "hit rate: url_cache_size = $size"
	restart_with "$size"
	for w in "${SWEEP_WORKLOADS[@]}"; do
		pgbench_run "$S/$w.batch.sql" "$sweep_warm" >"$BENCH_WORK/sweep.out" 2>&1 ||
			{ cat "$BENCH_WORK/sweep.out" >&2; die "pgbench failed in the sweep's warm-up"; }
		clean_start
		read -r h0 m0 f0 r0 e0 i0 x0 < <(cache_stats)
		pgbench_run "$S/$w.resolve.sql" "$seconds" >"$BENCH_WORK/sweep.out" 2>&1 ||
			{ cat "$BENCH_WORK/sweep.out" >&2; die "pgbench failed in the sweep"; }
		read -r h1 m1 f1 r1 e1 i1 x1 < <(cache_stats)
		tps=$(awk '/^tps = / {print $3}' "$BENCH_WORK/sweep.out")
		ideal=NULL
		[[ $w != zipf* ]] || ideal="(SELECT sum(power(i, -${w#zipf})) FILTER (WHERE i <= $x1) / sum(power(i, -${w#zipf}))
		                             FROM generate_series(1, $links) i)"
		bench_psql -q -c "INSERT INTO bench.sweep VALUES ('$size', (SELECT url_cache_size FROM shorturl.stats), '$w', $h0 + $m0, $tps,
		                  $h1 - $h0, $m1 - $m0, $f1 - $f0, $r1 - $r0, $e1 - $e0, $x1, $ideal)"
	done
done

bench_psql -q <<'SQL'
CREATE VIEW bench.pgb_report AS
WITH r AS (
    SELECT p.*, p.hits::float8 / nullif(p.hits + p.misses, 0) AS hit_rate FROM bench.pgb p
), m AS (
    SELECT c.id, c.phase, c.workload, c.kind, c.plain_id, c.second_id, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.tps) AS tps,
           min(r.tps) AS tps_min, max(r.tps) AS tps_max,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.mean_ms) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.cpu_us) AS cpu_us,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.client_us) AS client_us,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.hit_rate) AS hit_rate,
           string_agg(round((r.hit_rate * 100)::numeric, 1)::text, ' ' ORDER BY r.round) AS hit_rates,
           sum(r.fills) AS fills, sum(r.rejected) AS rejected, sum(r.evictions) AS evictions,
           sum(r.invalidations) AS invalidations, (array_agg(r.entries ORDER BY r.round DESC))[1] AS entries
    FROM bench.pgb_cases c JOIN r USING (id)
    GROUP BY c.id, c.phase, c.workload, c.kind, c.plain_id, c.second_id
)
SELECT m.id, m.phase, m.workload, m.kind, m.rounds,
       CASE m.kind WHEN 'plain' THEN 'SELECT url FROM bench.plain WHERE code = $1'
                   WHEN 'floor' THEN 'SELECT $1::text (no table: the floor)'
                   WHEN 'resolve_nocache' THEN 'resolve($1), url_cache = off'
                   WHEN 'resolve_cache' THEN 'resolve($1), url_cache = on'
                   WHEN 'c_plain' THEN 'SELECT url FROM bench.plain WHERE code = $1'
                   WHEN 'c_resolve' THEN 'resolve($1), url_cache = on'
                   ELSE 'Redis GET; on a miss SELECT, SET' END AS "case",
       round(m.tps::numeric, 0) AS "median TPS",
       round(m.tps_min::numeric, 0) || '-' || round(m.tps_max::numeric, 0) AS "TPS range",
       round((m.tps / p.tps)::numeric, 2) AS "x plain",
       round(((p.cpu_us + p.client_us) / (m.cpu_us + m.client_us))::numeric, 2) AS "x plain by CPU",
       CASE WHEN m.phase < 3 AND m.kind <> 'plain' THEN round((m.tps / s.tps)::numeric, 2) END AS "x nocache",
       CASE WHEN m.phase = 3 AND m.kind <> 'c_plain' THEN round((m.tps / s.tps)::numeric, 2) END AS "x resolve",
       round(m.mean::numeric, 3) AS "mean ms", round(m.p99::numeric, 3) AS "p99 ms",
       round(m.cpu_us::numeric, 1) AS "server CPU us/tx", round(m.client_us::numeric, 1) AS "client CPU us/tx",
       round((m.hit_rate * 100)::numeric, 1) AS "hit %", m.hit_rates AS "hit % by round",
       m.fills AS "fills", m.rejected AS "rejected", m.evictions AS "evictions",
       m.invalidations AS "invalidations",
       CASE WHEN m.kind IN ('resolve_cache', 'c_resolve') THEN m.entries END AS "entries after",
       m.tps / p.tps AS plain_raw, m.tps / s.tps AS second_raw,
       (s.cpu_us + s.client_us) / (m.cpu_us + m.client_us) AS second_cpu_raw, m.tps AS tps_raw, m.hit_rate AS hit_raw
FROM m JOIN m p ON p.id = m.plain_id JOIN m s ON s.id = m.second_id;
SQL

# report prints the figures (kept in $out too)
report() {
	local cols='workload, "case", rounds, "median TPS", "TPS range", "x plain", "x nocache", "x plain by CPU", "mean ms", "p99 ms",
	            "server CPU us/tx", "client CPU us/tx", "hit %", "hit % by round", fills, rejected, evictions, invalidations, "entries after"'
	echo "pg_shorturl $version URL cache benchmark (test/bench/urlcache.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "library $lib_path:"
	printf '  %s\n' "${lib_starts[@]}"
	if [ "$(printf '%s\n' "${lib_starts[@]}" | sed 's/.*: //' | sort -u | wc -l)" -gt 1 ]; then
		echo "  THE LIBRARY CHANGED DURING THE RUN: the parts ran different builds"
	fi
	echo "pgbench -M prepared over the Unix socket, $clients clients, $threads threads, ${seconds}s per run, $rounds rounds (medians), cases interleaved"
	echo "$links links; code = $((FIRST_CODE + 1)) + permute(rank, $links, $SEED); uniform: random(0, N-1); zipfS: random_zipfian(0, N-1, S); hot: rank 0"
	echo "resolve_nocache: PGOPTIONS='-c shorturl.url_cache=off'.  Warm cache: before a part's rounds, ${prewarm_seconds}s of its widest workload"
	echo "($BATCH resolve() calls a statement); before each resolve_cache run, an untimed ${warm}s run of its script"
	echo "server CPU us/tx: CPU time of all the server's processes (and Redis's for the Redis case) over the run, per transaction;"
	echo "client CPU us/tx: pgbench's (or the C client's); both share the $(nproc) cores, so TPS <= $(nproc) s / (server + client CPU per tx);"
	echo "x plain by CPU: the plain SELECT's server + client CPU per tx over this case's, the TPS ratio of a saturated machine"
	echo "that ran nothing else (the TPS ratios move with the other work on this one)"
	echo "hit %: url_cache_hits / (hits + misses) over the measured run (shorturl.stats deltas); fills, rejected (TinyLFU"
	echo "refused the admission), evictions, invalidations: summed over the rounds' measured runs; entries after: after the last round"
	echo "settings: $settings; huge_pages: ${huge:-off}"
	echo
	echo "1. url_cache_size = $cache_size ($cache_bytes bytes of shared memory, shorturl.stats.url_cache_size)"
	bench_psql -c "SELECT $cols FROM bench.pgb_report WHERE phase = 1 ORDER BY id"
	if [ ${#SMALL_WORKLOADS[@]} -gt 0 ]; then
		echo "2. url_cache_size = $small_cache ($small_bytes bytes), smaller than the set of links (the server restarted)"
		bench_psql -c "SELECT $cols FROM bench.pgb_report WHERE phase = 2 ORDER BY id"
	fi
	if [ -n "$redis_workload" ]; then
		echo "3. the Redis anchor, $redis_workload, url_cache_size = $cache_size (restarted: both caches start empty, and the client"
		echo "   prewarms each for ${prewarm_seconds}s): all three cases by test/bench/urlcache_redis.c ($clients threads, one libpq and one"
		echo "   hiredis connection each, over Unix sockets; ranks scattered by the client's own bijection, so other links are hot"
		echo "   than in 1); $redis_version, maxmemory = the cache's $cache_bytes bytes, $redis_policy, no persistence;"
		echo "   at the end: $redis_info.  hit % of the Redis case: Redis's GETs answered / GETs; resolve() also counts the click"
		bench_psql -c 'SELECT workload, "case", rounds, "median TPS", "TPS range", "x plain", "x resolve", "x plain by CPU", "mean ms", "p99 ms",
		                      "server CPU us/tx", "client CPU us/tx", "hit %", "hit % by round", fills, rejected, evictions, "entries after"
		               FROM bench.pgb_report WHERE phase = 3 ORDER BY id'
	fi
	if [ ${#SWEEP_SIZES[@]} -gt 0 ]; then
		echo "4. hit rate against url_cache_size: a restart per size (empty cache), ${sweep_warm}s of resolve() untimed ($BATCH a statement),"
		echo "   then one measured run of ${seconds}s; lookups before: since the restart; top-k ideal: the share of requests for the k"
		echo "   most frequent links, k = the entries held (a cache not yet full is short of its steady state: see lookups before)"
		bench_psql <<'SQL'
SELECT size AS "url_cache_size", pg_size_pretty(bytes) AS "shared memory", workload, before AS "lookups before",
       hits + misses AS "lookups measured", entries AS "entries held",
       round((hits * 100.0 / nullif(hits + misses, 0))::numeric, 1) AS "hit %",
       round((ideal * 100)::numeric, 1) AS "top-k ideal %", round(tps::numeric, 0) AS "TPS",
       fills, rejected, evictions
FROM bench.sweep ORDER BY workload, bytes;
SQL
	fi
	echo "goals:"
	bench_psql -At <<SQL
SELECT CASE WHEN r.workload = 'uniform'
            THEN format('  resolve with the cache, %-10s %s x resolve without it (%s vs %s TPS; %s x plain)  goal >= %s x  %s  (by CPU per tx: %s x)',
                        r.workload || ' (' || CASE r.phase WHEN 1 THEN '$cache_size' ELSE '$small_cache' END || '):',
                        r."x nocache", r."median TPS", s."median TPS", r."x plain", $UNIFORM_GOAL,
                        CASE WHEN round(r.second_raw::numeric, 2) >= $UNIFORM_GOAL THEN 'MET' ELSE 'MISS' END,
                        round(r.second_cpu_raw::numeric, 2))
            ELSE format('  resolve with the cache, %-10s %s x the plain SELECT (%s vs %s TPS; %s x nocache, hit rate %s %%)  goal >= %s x  %s  (by CPU per tx: %s x)',
                        r.workload || ':', r."x plain", r."median TPS", p."median TPS", r."x nocache", r."hit %",
                        CASE r.workload WHEN 'hot' THEN $HOT_GOAL ELSE $ZIPF_GOAL END,
                        CASE WHEN round(r.plain_raw::numeric, 2) >= CASE r.workload WHEN 'hot' THEN $HOT_GOAL ELSE $ZIPF_GOAL END
                             THEN 'MET' ELSE 'MISS' END, r."x plain by CPU")
       END
FROM bench.pgb_report r
JOIN bench.pgb_cases c ON c.id = r.id
JOIN bench.pgb_report p ON p.id = c.plain_id JOIN bench.pgb_report s ON s.id = c.second_id
WHERE r.kind = 'resolve_cache' AND r.workload IN ('hot', 'zipf1.001', 'uniform') ORDER BY r.phase, r.id;
SELECT format('  (no goal) resolve with the cache, %-10s %s x plain, %s x nocache', workload || ':', "x plain", "x nocache")
FROM bench.pgb_report WHERE kind = 'resolve_cache' AND workload NOT IN ('hot', 'zipf1.001', 'uniform') ORDER BY phase, id;
SELECT format('  the floor, SELECT \$1::text with no table: %s x the plain SELECT (by CPU per tx: %s x): no lookup can beat the plain SELECT by more on this machine',
              "x plain", "x plain by CPU")
FROM bench.pgb_report WHERE kind = 'floor';
SELECT format('  Redis anchor, %s: resolve with the cache %s x the Redis mix (%s vs %s TPS; by CPU per tx: %s x); hit rates: URL cache %s %%, Redis %s %%',
              r.workload, round((1 / x.second_raw)::numeric, 2), r."median TPS", x."median TPS",
              round((1 / x.second_cpu_raw)::numeric, 2), r."hit %", x."hit %")
FROM bench.pgb_report r JOIN bench.pgb_report x ON x.phase = 3 AND x.kind = 'c_redis'
WHERE r.phase = 3 AND r.kind = 'c_resolve';
SQL
}
mkdir -p "$(dirname "$out")"
report | tee "$out"

# The chart: per workload, resolve() without and with the cache (and, in
# the anchor's group, Redis) as ratios to the plain SELECT, with the goals
mkdir -p "$(dirname "$plot")"
data=$BENCH_WORK/urlcache.dat
bench_psql -At -F $'\t' >"$data" <<SQL
SELECT CASE g.phase WHEN 1 THEN g.workload
                    WHEN 2 THEN g.workload || ', $small_cache cache'
                    ELSE g.workload || ', C client' END,
       coalesce((SELECT plain_raw FROM bench.pgb_report WHERE phase = g.phase AND workload = g.workload AND kind = 'resolve_nocache')::text, 'NaN'),
       coalesce((SELECT plain_raw FROM bench.pgb_report WHERE phase = g.phase AND workload = g.workload AND kind IN ('resolve_cache', 'c_resolve'))::text, 'NaN'),
       coalesce((SELECT plain_raw FROM bench.pgb_report WHERE phase = g.phase AND workload = g.workload AND kind = 'c_redis')::text, 'NaN'),
       CASE WHEN g.phase = 3 THEN 'NaN'
            WHEN g.workload = 'hot' THEN '$HOT_GOAL'
            WHEN g.workload = 'zipf1.001' THEN '$ZIPF_GOAL'
            WHEN g.workload = 'uniform'
            THEN coalesce((SELECT plain_raw * $UNIFORM_GOAL FROM bench.pgb_report
                           WHERE phase = g.phase AND workload = g.workload AND kind = 'resolve_nocache')::text, 'NaN')
            ELSE 'NaN' END
FROM (SELECT phase, workload, min(id) AS id FROM bench.pgb_cases GROUP BY phase, workload) g
ORDER BY g.phase = 3, g.id
SQL
cols=(2 3 4) titles=("resolve(), url_cache = off" "resolve(), url_cache = on"
	"Redis GET; on a miss SELECT + SET (C client)") colors=("#cc3311" "#228833" "#0077bb")
plot_cmd="plot '$data' using 2:xtic(1) lc rgb '${colors[0]}' title '${titles[0]}'"
for ((j = 1; j < ${#cols[@]}; j++)); do
	plot_cmd+=", '' using ${cols[$j]} lc rgb '${colors[$j]}' title '${titles[$j]}'"
done
for ((j = 0; j < ${#cols[@]}; j++)); do
	x="(\$0 + ($j - (${#cols[@]} - 1) / 2.0) / (${#cols[@]} + 1))"
	plot_cmd+=", '' using $x:(\$${cols[$j]} + 0.03):(sprintf('%.2f', \$${cols[$j]})) with labels notitle"
done
# the goal of each group, a black bar across its cache bar (the middle one)
plot_cmd+=", '' using 0:5:(0.15) with xerrorbars pt 0 lw 2.5 lc rgb '#000000' title 'goal of resolve() with the cache'"
plot_cmd+=", 1 with lines lc rgb '#999999' title 'plain SELECT = 1'"
ymax=$(awk -F '\t' '{for (i = 2; i <= 5; i++) if ($i != "NaN" && $i > m) m = $i} END {print (m > 1.4 ? m : 1.4) + 0.15}' "$data")
gnuplot <<GNUPLOT
set terminal pngcairo size 1100,600 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl URL cache, $links links: TPS / plain SELECT (median of $rounds runs of ${seconds}s, $clients clients; cache $cache_size unless named${huge:+; huge pages})"
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:$ymax]
set xrange [-0.6:*]
set ylabel "TPS ratio to the plain SELECT of the same keys"
set grid ytics
set key below
$plot_cmd
GNUPLOT
echo "chart: $plot"

# The hit rate against the cache's size, measured and top-k ideal
if [ ${#SWEEP_SIZES[@]} -gt 0 ]; then
	mkdir -p "$(dirname "$hit_plot")"
	plot_cmd="plot"
	j=0
	for w in "${SWEEP_WORKLOADS[@]}"; do
		bench_psql -At -F $'\t' >"$BENCH_WORK/hit.$w.dat" <<SQL
SELECT bytes / 1048576.0, hits * 100.0 / nullif(hits + misses, 0), coalesce((ideal * 100)::text, 'NaN'), size, entries
FROM bench.sweep WHERE workload = '$w' ORDER BY bytes
SQL
		[ $j -eq 0 ] || plot_cmd+=","
		plot_cmd+=" '$BENCH_WORK/hit.$w.dat' using 1:2 with linespoints lw 2 pt 7 lc $((j + 1)) title '$w: measured (shorturl.stats)',"
		plot_cmd+=" '' using 1:3 with linespoints lw 1 dt 2 pt 6 lc $((j + 1)) title '$w: top-k ideal for the entries held',"
		plot_cmd+=" '' using 1:(\$2 - 4):(sprintf('%.1f %%', \$2)) with labels notitle"
		j=$((j + 1))
	done
	gnuplot <<GNUPLOT
set terminal pngcairo size 900,560 font ",10" noenhanced
set output "$hit_plot"
set title "URL cache hit rate against shorturl.url_cache_size, $links links\n(the server: ${sweep_warm}s of batched resolve() from an empty cache, then ${seconds}s measured)"
set datafile separator "\t"
set datafile missing "NaN"
set logscale x 2
set offsets graph 0.08, graph 0.08, 0, 0
set xlabel "shorturl.url_cache_size (MB)"
set ylabel "hit rate (%)"
set yrange [0:100]
set grid
set key bottom right
$plot_cmd
GNUPLOT
	echo "chart: $hit_plot"
fi
