#!/bin/bash
# test/bench/ratelimit.sh: shorturl.rate_limit() (issue 15) against
# SELECT 1, against the token bucket teams write as a plain UPDATE on a
# table, and against a Lua token bucket in Redis.
#
# Three workloads, each one limit on a set of keys:
#
#   hot         one key, rate 1e9/s, burst 1e9: a limit that never refuses,
#               so the machinery of an allowed call is measured
#   hot_refuse  one key, rate 100/s, burst 100: all but about 100 calls a
#               second are refused (the refusal path)
#   keys100k    BENCH_KEYS (100,000) keys, key = random(1, N)::text, rate
#               1000/day (1000/86400 a second), burst 1000: each call moves
#               a key's state 86.4 s ahead, so every key touched stays live
#               (a bucket that is full again could be forgotten), and no key
#               gets near 1000 calls in a run, so nothing is refused
#
# and per workload three limiters:
#
#   rate_limit  SELECT allowed FROM shorturl.rate_limit(key, rate, burst)
#               (GCRA in shared memory; the library is preloaded)
#   table       one statement on a logged table bench.buckets (key text
#               PRIMARY KEY, tokens float8, updated_at timestamptz), as a
#               team writes it without Redis: INSERT ... ON CONFLICT (key)
#               DO UPDATE that refills min(burst, tokens + rate * elapsed)
#               (elapsed from one clock_timestamp(), passed in as
#               EXCLUDED.updated_at) and takes the cost, WHERE the refilled
#               bucket holds the cost; a row RETURNed means allowed.  A
#               refusal writes nothing but still locks the row.
#               synchronous_commit on, as the default is.
#   redis       a private redis-server (Debian's, installed if missing),
#               started as the unprivileged user on a Unix socket in the
#               run's directory, no persistence (save '', appendonly no),
#               driven by redis-benchmark (one thread, BENCH_CLIENTS
#               connections, no pipelining) with EVALSHA of a Lua token
#               bucket: TIME, HMGET tokens/ts, refill, take the cost, HSET,
#               PEXPIRE burst / rate (so idle buckets go away); the 100k
#               keys through redis-benchmark's __rand_int__ and -r N
#
# and the floor: select1, SELECT 1; and select_key, \set k random(1, N)
# and SELECT :k::text, the floor with keys100k's pgbench variable and
# parameter (a reference only: the goal is against SELECT 1).  Every
# PostgreSQL case is a pgbench run
# (-M prepared, over the Unix socket, BENCH_CLIENTS clients, BENCH_THREADS
# threads, BENCH_SECONDS seconds); a redis case is a redis-benchmark run of
# as many requests as take BENCH_SECONDS seconds at the rate of the case's
# run before (redis-benchmark has no time limit).  Before the rounds every
# case runs once for 3 s untimed (keys made, caches warm, Redis's first
# request counts); the table and rate_limit() get every key of keys100k
# once beforehand.  Every round runs every case once, in an order that
# rotates from round to round; figures are medians over rounds.  Per run:
# TPS (calls a second; the range over the rounds is printed too), its ratio
# to SELECT 1, mean and p99 latency (pgbench's per-transaction log;
# redis-benchmark's own figures, measured in its client the same way) and
# WAL bytes per call (pg_current_wal_insert_lsn() around the run), and
# CPU time per call: the server's (all of PostgreSQL's processes, from
# /proc, the backends reaped by the postmaster included; or redis-server's)
# and the client's (pgbench's or redis-benchmark's, bash's time).  Their
# sum for SELECT 1 over a case's is the TPS ratio the case would have on a
# CPU-bound machine doing nothing else, a figure other work on the machine
# disturbs far less than TPS.
#
# Goal (issue 15): rate_limit() at least 0.8x SELECT 1's TPS on the hot key
# and on 100,000 keys.  rate_limit against the table and against Redis is
# reported as a ratio.  A benchmark never fails on time: the goal is
# reported, not enforced.  If the installed extension has no rate_limit()
# the rate_limit cases are left out (and the report says so).
#
#   BENCH_SECONDS   seconds per run (default 10)
#   BENCH_ROUNDS    rounds (default 5)
#   BENCH_CLIENTS   clients (pgbench clients, redis-benchmark connections;
#                   default 8)
#   BENCH_THREADS   pgbench threads (default 2)
#   BENCH_KEYS      keys of keys100k (default 100000)
#   BENCH_NO_REDIS  set: leave out the Redis cases
#   BENCH_PLOT      bar chart of the ratios to SELECT 1, PNG (default
#                   test/bench/results/ratelimit.png)
#   BENCH_OUT       the report, also written here (default
#                   test/bench/results/ratelimit-<date>.txt)
#   BENCH_NO_BUILD  set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
keys=${BENCH_KEYS:-100000}
plot=${BENCH_PLOT:-$BENCH_DIR/results/ratelimit.png}
out=${BENCH_OUT:-$BENCH_DIR/results/ratelimit-$(date -u +%Y-%m-%d).txt}
with_redis=1
[ "${BENCH_NO_REDIS:-}" ] && with_redis=

GOAL=0.8
WARMUP_SECONDS=3
WORKLOADS=(hot hot_refuse keys100k)
# per workload: the key (a pgbench expression's variable, or a literal),
# rate (tokens a second) and burst
declare -A RATE=([hot]=1e9 [hot_refuse]=100 [keys100k]=$(awk 'BEGIN {printf "%.17g", 1000 / 86400}'))
declare -A BURST=([hot]=1e9 [hot_refuse]=100 [keys100k]=1000)
declare -A KEY=([hot]=hot [hot_refuse]=hot-refuse)

[ "$with_redis" ] && ensure_packages redis-server
bench_start
rl_sig='shorturl.rate_limit(text, float8, float8, float8)'
has_rl=$(bench_psql -Atc "SELECT to_regprocedure('$rl_sig') IS NOT NULL")
ext_version=$(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'")
lib_file=$("$PG_BIN/pg_config" --pkglibdir)/pg_shorturl.so
lib_id="$lib_file, $(stat -c '%s bytes, modified %y' "$lib_file" | cut -d. -f1) UTC"

# The private Redis, stopped when the script exits (before the server)
REDIS_DIR=$BENCH_WORK/redis
REDIS_SOCK=$REDIS_DIR/redis.sock
redis_stop() {
	[ -S "$REDIS_SOCK" ] || return 0
	redis-cli -s "$REDIS_SOCK" shutdown nosave >/dev/null 2>&1 ||
		kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
}
trap 'redis_stop; scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK"' EXIT
if [ "$with_redis" ]; then
	mkdir -p "$REDIS_DIR"
	chown "$RUN_USER:" "$REDIS_DIR"
	as_user redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
		--save '' --appendonly no --daemonize yes --dir "$REDIS_DIR" \
		--pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
	for ((i = 0; i < 100; i++)); do
		redis-cli -s "$REDIS_SOCK" ping 2>/dev/null | grep -q PONG && break
		sleep 0.1
	done
	redis-cli -s "$REDIS_SOCK" ping | grep -q PONG || die "the private redis-server did not start"
	redis_version=$(redis-server --version | sed 's/ sha=.*//')
	# The token bucket: KEYS[1] the bucket, ARGV rate (tokens a second),
	# burst and cost; returns {allowed (1 or 0), tokens left}
	cat >"$REDIS_DIR/bucket.lua" <<'LUA'
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
if tokens == nil then
	tokens = burst
else
	tokens = math.min(burst, tokens + math.max(0, now - tonumber(b[2])) * rate)
end
local allowed = 0
if tokens >= cost then
	tokens = tokens - cost
	allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000))
return {allowed, tostring(tokens)}
LUA
	REDIS_SHA=$(redis-cli -s "$REDIS_SOCK" SCRIPT LOAD "$(cat "$REDIS_DIR/bucket.lua")")
	# a check: a bucket of 2 allows two calls, then refuses
	check=$(for i in 1 2 3; do redis-cli -s "$REDIS_SOCK" EVALSHA "$REDIS_SHA" 1 check 0.001 2 1 | head -n1; done | tr '\n' ' ')
	[ "$check" = "1 1 0 " ] || die "the Lua token bucket answered $check, not 1 1 0"
	redis-cli -s "$REDIS_SOCK" DEL check >/dev/null
fi

# The table of the plain-SQL limiter, checked the same way
bench_psql -q -c 'CREATE TABLE bench.buckets (key text PRIMARY KEY, tokens float8 NOT NULL, updated_at timestamptz NOT NULL)'
# table_sql KEY RATE BURST: the statement (cost 1)
table_sql() {
	cat <<SQL
INSERT INTO bench.buckets AS b (key, tokens, updated_at)
VALUES ($1, $3 - 1, clock_timestamp())
ON CONFLICT (key) DO UPDATE
SET tokens = least($3, b.tokens + $2 * extract(epoch FROM excluded.updated_at - b.updated_at)) - 1,
    updated_at = excluded.updated_at
WHERE least($3, b.tokens + $2 * extract(epoch FROM excluded.updated_at - b.updated_at)) >= 1
RETURNING true AS allowed;
SQL
}
check=$(for i in 1 2 3; do table_sql "'check'" 0.001 2 | bench_psql -qAt | grep -c . || true; done | tr '\n' ' ')
[ "$check" = "1 1 0 " ] || die "the table's token bucket answered $check, not 1 1 0"
bench_psql -q -c "DELETE FROM bench.buckets"
if [ "$has_rl" = t ]; then
	check=$(bench_psql -At -c "SELECT allowed FROM shorturl.rate_limit('check', 0.001, 2)" \
		-c "SELECT allowed FROM shorturl.rate_limit('check', 0.001, 2)" \
		-c "SELECT allowed FROM shorturl.rate_limit('check', 0.001, 2)" | tr '\n' ' ')
	[ "$check" = "t t f " ] || die "rate_limit() answered $check, not t t f"
fi

# The pgbench scripts: LIMITER.WORKLOAD.sql, and select1.sql
S=$BENCH_WORK/scripts
mkdir -p "$S"
echo 'SELECT 1;' >"$S/select1.sql"
printf '\\set k random(1, %s)\nSELECT :k::text;\n' "$keys" >"$S/select_key.keys100k.sql"
for w in "${WORKLOADS[@]}"; do
	if [ "$w" = keys100k ]; then
		pre="\\set k random(1, $keys)"$'\n' key=':k::text'
	else
		pre='' key="'${KEY[$w]}'"
	fi
	printf '%sSELECT allowed FROM shorturl.rate_limit(%s, %s, %s);\n' "$pre" "$key" "${RATE[$w]}" "${BURST[$w]}" >"$S/rate_limit.$w.sql"
	{ printf '%s' "$pre"; table_sql "$key" "${RATE[$w]}" "${BURST[$w]}"; } >"$S/table.$w.sql"
done

# The cases: limiter and workload ("-" for select1)
limiters=(select1 select_key) works=(- keys100k)
for w in "${WORKLOADS[@]}"; do
	if [ "$has_rl" = t ]; then limiters+=(rate_limit) works+=("$w"); fi
	limiters+=(table) works+=("$w")
	if [ "$with_redis" ]; then limiters+=(redis) works+=("$w"); fi
done
n=${#limiters[@]}
{
	echo 'CREATE TABLE bench.rl_cases (id int PRIMARY KEY, limiter text, workload text);'
	echo 'CREATE TABLE bench.rl (id int, round int, tps float8, mean_ms float8, p99_ms float8, tx bigint, wal_bytes numeric,
	        server_cpu_us float8, client_cpu_us float8);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.rl_cases VALUES (%d, '%s', '%s');\n" "$i" "${limiters[$i]}" "${works[$i]}"
	done
} | bench_psql -q

# every key of keys100k once, in the table and in rate_limit()
bench_psql -q -c "INSERT INTO bench.buckets SELECT k::text, ${BURST[keys100k]}, clock_timestamp() FROM generate_series(1, $keys) k" \
	-c 'VACUUM ANALYZE bench.buckets'
if [ "$has_rl" = t ]; then
	bench_psql -q -c "SELECT count(*) FILTER (WHERE allowed) FROM generate_series(1, $keys) k,
	                  shorturl.rate_limit(k::text, ${RATE[keys100k]}, ${BURST[keys100k]})" >/dev/null
fi
bench_psql -q -c CHECKPOINT

# redis_args WORKLOAD: the arguments of redis-benchmark's EVALSHA
redis_args() {
	local key=rl:${KEY[$1]:-}
	[ "$1" = keys100k ] && key='rl:__rand_int__'
	echo "-r $keys EVALSHA $REDIS_SHA 1 $key ${RATE[$1]} ${BURST[$1]} 1"
}
# pg_ticks prints the CPU ticks of all the server's processes: the
# postmaster's own and its reaped children's (pgbench's backends end with
# the run), and those of its live children
pg_ticks() {
	local pm pid rest f fields total=0
	pm=$(head -n1 "$BENCH_WORK/server/postmaster.pid")
	for f in /proc/[0-9]*/stat; do
		{ read -r rest <"$f"; } 2>/dev/null || continue
		pid=${rest%% *}
		# fields after "pid (comm) ": state ppid ... utime(12th) stime cutime cstime
		read -r -a fields <<<"${rest##*') '}"
		if [ "$pid" = "$pm" ]; then
			total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
		elif [ "${fields[1]}" = "$pm" ]; then
			total=$((total + fields[11] + fields[12]))
		fi
	done
	echo "$total"
}
# redis_ticks prints the CPU ticks of the private redis-server
redis_ticks() {
	local rest fields
	read -r rest <"/proc/$(cat "$REDIS_DIR/redis.pid")/stat"
	read -r -a fields <<<"${rest##*') '}"
	echo $((fields[11] + fields[12]))
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# the client's CPU seconds (user + system), as bash's time prints them
TIMEFORMAT='%3U %3S'

# redis_run WORKLOAD REQUESTS TIMEFILE: one redis-benchmark run; prints its
# CSV line (test, rps, avg, min, p50, p95, p99, max latency in ms) and
# writes the client's CPU seconds to TIMEFILE
redis_run() {
	# shellcheck disable=SC2046
	{ time redis-benchmark -s "$REDIS_SOCK" -c "$clients" -n "$2" --csv $(redis_args "$1") >"$3.out"; } 2>"$3"
	tail -n1 "$3.out" | tr -d '"'
}
declare -A REDIS_N=()

# run_case ID ROUND SECONDS: runs case ID once; ROUND 0 is the warm-up (not
# recorded), which also calibrates the Redis cases' request counts
run_case() {
	local id=$1 round=$2 secs=$3 log=$BENCH_WORK/log.$1.$2 lsn0 lsn1 tps tx p99 mean file csv
	local l=${limiters[$id]} w=${works[$id]} t0 t1 cu cs
	mkdir -p "$log"
	if [ "$l" = redis ]; then
		if [ "$round" = 0 ]; then
			# 3 s at 50,000 calls a second, then the count that takes $seconds
			csv=$(redis_run "$w" $((secs * 50000)) "$log/time")
			REDIS_N[$w]=$(awk -F, -v s="$seconds" '{printf "%d", $2 * s}' <<<"$csv")
			rm -rf "$log"
			return
		fi
		t0=$(redis_ticks)
		csv=$(redis_run "$w" "${REDIS_N[$w]}" "$log/time")
		t1=$(redis_ticks)
		read -r cu cs <"$log/time"
		IFS=, read -r _ tps mean _ _ _ p99 _ <<<"$csv"
		bench_psql -q -c "INSERT INTO bench.rl VALUES ($id, $round, $tps, $mean, $p99, ${REDIS_N[$w]}, NULL,
		                  ($t1 - $t0) * $TICK_US, ($cu + $cs) * 1e6)"
		# the next run's count from this one's rate (the machine's load drifts)
		REDIS_N[$w]=$(awk -v r="$tps" -v s="$seconds" 'BEGIN {printf "%d", r * s}')
		rm -rf "$log"
		return
	fi
	if [ "$l" = select1 ]; then file=$S/select1.sql; else file=$S/$l.$w.sql; fi
	lsn0=$(bench_psql -Atc 'SELECT pg_current_wal_insert_lsn()')
	t0=$(pg_ticks)
	{ time "$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$secs" \
		-l --log-prefix="$log/tx" -f "$file" >"$log/out" 2>&1; } 2>"$log/time" ||
		{ cat "$log/out" >&2; die "pgbench failed in case $l $w"; }
	# the backends' exits, so that the postmaster has reaped them
	sleep 0.3
	t1=$(pg_ticks)
	lsn1=$(bench_psql -Atc 'SELECT pg_current_wal_insert_lsn()')
	if [ "$round" = 0 ]; then
		rm -rf "$log"
		return
	fi
	read -r cu cs <"$log/time"
	tps=$(awk '/^tps = / {print $3}' "$log/out")
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$log/out")
	# column 3 of the log is the transaction's latency in microseconds
	read -r p99 mean < <(cat "$log"/tx.* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1; s += $1}
		     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
		          printf "%.3f %.3f\n", v[i] / 1000, s / NR / 1000}')
	rm -rf "$log"
	bench_psql -q -c "INSERT INTO bench.rl VALUES ($id, $round, $tps, $mean, $p99, $tx, pg_wal_lsn_diff('$lsn1', '$lsn0'),
	                  ($t1 - $t0) * $TICK_US, ($cu + $cs) * 1e6)"
}

say "warm-up: $n cases x ${WARMUP_SECONDS}s"
for ((k = 0; k < n; k++)); do run_case "$k" 0 "$WARMUP_SECONDS"; done
say "$n cases x $rounds rounds x ${seconds}s"
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		run_case $(((k + r) % n)) "$r" "$seconds"
	done
done

bench_psql -q <<'SQL'
CREATE VIEW bench.rl_report AS
WITH m AS (
    SELECT c.id, c.limiter, c.workload, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.tps) AS tps, min(r.tps) AS tps_min, max(r.tps) AS tps_max,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.mean_ms) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wal_bytes / r.tx) AS wal,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.server_cpu_us / r.tx) AS scpu,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.client_cpu_us / r.tx) AS ccpu,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.server_cpu_us + r.client_cpu_us) / r.tx) AS cpu
    FROM bench.rl_cases c JOIN bench.rl r USING (id)
    GROUP BY c.id, c.limiter, c.workload
)
SELECT m.id, m.limiter, m.workload, m.rounds,
       round(m.tps::numeric, 0) AS "median TPS", round(m.tps_min) || '-' || round(m.tps_max) AS "TPS range",
       round((m.tps / s.tps)::numeric, 2) AS "x SELECT 1",
       round((rl.tps / m.tps)::numeric, 2) AS "rate_limit / this",
       round(m.mean::numeric, 3) AS "mean ms", round(m.p99::numeric, 3) AS "p99 ms",
       round(m.wal::numeric, 1) AS "WAL B/call",
       round(m.scpu::numeric, 1) AS "server CPU us/call", round(m.ccpu::numeric, 1) AS "client CPU us/call",
       round((s.cpu / m.cpu)::numeric, 2) AS "x SELECT 1 by CPU",
       m.tps AS tps_raw, m.tps / s.tps AS select1_raw, rl.tps / m.tps AS rl_raw, m.cpu / rl.cpu AS rl_cpu_raw
FROM m CROSS JOIN (SELECT tps, cpu FROM m WHERE limiter = 'select1') s
LEFT JOIN m rl ON rl.limiter = 'rate_limit' AND rl.workload = m.workload;
SQL

# report prints the figures (kept in $out too)
report() {
	echo "pg_shorturl $ext_version rate-limit benchmark (test/bench/ratelimit.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "library: $lib_id"
	[ "$with_redis" ] && echo "redis: $redis_version (private, Unix socket, save '' appendonly no; redis-benchmark, 1 thread, no pipelining)"
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "$clients clients, ${seconds}s per run, $rounds rounds (medians), cases interleaved; pgbench -M prepared over the Unix socket,"
	echo "$threads threads; redis-benchmark: requests per run calibrated to ${seconds}s by the run before"
	echo "workloads: hot        key 'hot', rate 1e9/s, burst 1e9 (never refuses)"
	echo "           hot_refuse key 'hot-refuse', rate 100/s, burst 100 (refuses all but ~100 calls a second)"
	echo "           keys100k   key random(1, $keys)::text, rate 1000/day, burst 1000 (every key stays live, nothing refused)"
	echo "limiters:  rate_limit SELECT allowed FROM shorturl.rate_limit(key, rate, burst)"
	echo "           table      INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE refilled >= 1 RETURNING (logged table, synchronous_commit on)"
	echo "           redis      EVALSHA of a Lua token bucket (TIME, HMGET, HSET, PEXPIRE)"
	echo "           select1    SELECT 1 (pgbench)"
	echo "           select_key \\set k random(1, $keys) and SELECT :k::text (SELECT 1 with keys100k's variable and parameter)"
	echo "rate_limit / this: the rate_limit case's TPS over this one's, same workload; p99 and mean: pgbench's per-transaction log or"
	echo "redis-benchmark's (client-side, both); WAL B/call: pg_current_wal_insert_lsn() around the run over the calls;"
	echo "server CPU us/call: CPU time of all the server's processes (PostgreSQL: postmaster, backends, worker, WAL writer,"
	echo "autovacuum...; Redis: redis-server) over the calls; client: pgbench's or redis-benchmark's; x SELECT 1 by CPU: SELECT 1's"
	echo "server + client CPU per call over this case's, the TPS ratio of a CPU-bound machine doing nothing else (other work on the"
	echo "machine disturbs it far less than it disturbs TPS)"
	bench_psql -Atc "SELECT 'settings: ' || coalesce(string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name), '(none)')
	                 FROM pg_settings WHERE name ~ '^shorturl\.(max_rate_keys|rate_limit_when_full)'"
	[ "$has_rl" = t ] || echo "NOTE: the installed pg_shorturl $ext_version has no $rl_sig: its cases were left out"
	echo
	bench_psql -c 'SELECT workload, limiter, rounds, "median TPS", "TPS range", "x SELECT 1", "rate_limit / this", "mean ms", "p99 ms", "WAL B/call",
	                      "server CPU us/call", "client CPU us/call", "x SELECT 1 by CPU"
	               FROM bench.rl_report ORDER BY id'
	echo "goal: rate_limit() >= $GOAL x SELECT 1"
	bench_psql -At <<SQL
SELECT format('  %-11s %s x SELECT 1 (%s vs %s TPS; by CPU %s x)  %s', workload || ':', "x SELECT 1", "median TPS",
              round(tps_raw / select1_raw), "x SELECT 1 by CPU", CASE WHEN workload = 'hot_refuse' THEN '(no goal)'
                                                 WHEN select1_raw >= $GOAL THEN 'PASS' ELSE 'MISS' END)
FROM bench.rl_report WHERE limiter = 'rate_limit' ORDER BY id;
SELECT format('  keys100k:   rate_limit %s x SELECT :k::text (by CPU %s x)', "rate_limit / this", round(rl_cpu_raw::numeric, 2))
FROM bench.rl_report WHERE limiter = 'select_key' AND rl_raw IS NOT NULL;
SELECT format('  rate_limit / table, %-11s %s x (by CPU %s x)   rate_limit / redis: %s x (by CPU %s x)', t.workload || ':',
              t."rate_limit / this", round(t.rl_cpu_raw::numeric, 2),
              coalesce(r."rate_limit / this"::text, '-'), coalesce(round(r.rl_cpu_raw::numeric, 2)::text, '-'))
FROM bench.rl_report t LEFT JOIN bench.rl_report r ON r.workload = t.workload AND r.limiter = 'redis'
WHERE t.limiter = 'table' AND t.rl_raw IS NOT NULL ORDER BY t.id;
SELECT format('  (no rate_limit: redis / table, %-11s %s x)', t.workload || ':', round((r.tps_raw / t.tps_raw)::numeric, 2))
FROM bench.rl_report t JOIN bench.rl_report r ON r.workload = t.workload AND r.limiter = 'redis'
WHERE t.limiter = 'table' AND t.rl_raw IS NULL ORDER BY t.id;
SQL
	echo "table bench.buckets after the runs: $(bench_psql -Atc "SELECT count(*) || ' rows, ' || pg_size_pretty(pg_total_relation_size('bench.buckets'))
	                                                             || ', n_dead_tup ' || (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'bench.buckets'::regclass)
	                                                             FROM bench.buckets")"
	if [ "$has_rl" = t ]; then
		bench_psql -Atc "SELECT 'rate-limit table after the runs (shorturl.stats): ' || rate_keys || ' keys, ' || rate_keys_full
		                        || ' requests of new keys found it full' FROM shorturl.stats"
	fi
	if [ "$with_redis" ]; then
		echo "redis after the runs: $(redis-cli -s "$REDIS_SOCK" dbsize) keys, used_memory $(redis-cli -s "$REDIS_SOCK" info memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r')"
	fi
}
mkdir -p "$(dirname "$out")" "$(dirname "$plot")"
report | tee "$out"

# The chart: per workload, each limiter's TPS over SELECT 1's
data=$BENCH_WORK/ratelimit.dat
bench_psql -At -F $'\t' >"$data" <<'SQL'
SELECT w, coalesce((SELECT select1_raw FROM bench.rl_report WHERE workload = w AND limiter = 'rate_limit')::text, 'NaN'),
          coalesce((SELECT select1_raw FROM bench.rl_report WHERE workload = w AND limiter = 'table')::text, 'NaN'),
          coalesce((SELECT select1_raw FROM bench.rl_report WHERE workload = w AND limiter = 'redis')::text, 'NaN')
FROM unnest(ARRAY['hot', 'hot_refuse', 'keys100k']) w
SQL
cols=() titles=() colors=()
if [ "$has_rl" = t ]; then cols+=(2) titles+=("shorturl.rate_limit()") colors+=("#228833"); fi
cols+=(3) titles+=("table: INSERT ... ON CONFLICT DO UPDATE") colors+=("#cc3311")
if [ "$with_redis" ]; then cols+=(4) titles+=("Redis: Lua token bucket (redis-benchmark)") colors+=("#4477aa"); fi
plot_cmd="'$data' using ${cols[0]}:xtic(1) lc rgb '${colors[0]}' title '${titles[0]}'"
for ((j = 1; j < ${#cols[@]}; j++)); do
	plot_cmd+=", '' using ${cols[$j]} lc rgb '${colors[$j]}' title '${titles[$j]}'"
done
for ((j = 0; j < ${#cols[@]}; j++)); do
	x="(\$0 + ($j - (${#cols[@]} - 1) / 2.0) / (${#cols[@]} + 1))"
	plot_cmd+=", '' using $x:(\$${cols[$j]} + 0.03):(sprintf('%.2f', \$${cols[$j]})) with labels notitle"
done
plot_cmd+=", $GOAL with lines lc rgb '#000000' dt 2 title 'goal $GOAL x', 1 with lines lc rgb '#999999' title 'SELECT 1 = 1'"
ymax=$(awk -F '\t' '{for (i = 2; i <= 4; i++) if ($i != "NaN" && $i > m) m = $i} END {print (m > 1.2 ? m : 1.2) + 0.15}' "$data")
gnuplot <<GNUPLOT
set terminal pngcairo size 1000,600 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl rate limiting: TPS / SELECT 1 (median of $rounds runs of ${seconds}s, $clients clients; SELECT 1: $(bench_psql -Atc "SELECT \"median TPS\" FROM bench.rl_report WHERE limiter = 'select1'") TPS)"
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:$ymax]
set ylabel "TPS ratio to SELECT 1"
set grid ytics
set key below
plot $plot_cmd
GNUPLOT
echo "chart: $plot"
