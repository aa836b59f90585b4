#!/bin/bash
# test/bench/sharding.sh: the 0.6 coordinator (pg_shorturl_coordinator, on
# PL/Proxy) against calls sent straight to the shards, for resolve() and
# shorten(); the layers of a resolve through the coordinator; and the speed
# of a rebalance (issue 6).
#
# One coordinator and two shards (a third joins for the rebalance), each a
# throw-away server of its own on this machine, over Unix sockets.  The
# shards preload pg_shorturl and their workers serve their database
# "postgres", so clicks are counted in shared memory; the coordinator is the
# database "coord" of bench_start's server (whose database "postgres" only
# holds these figures), with pg_shorturl_coordinator, and add_shard() puts
# both shards in its PL/Proxy cluster shorturl_cluster.  The coordinator
# makes BENCH_LINKS links with shorten() (generated codes, spread over the
# shards by route()).  Every case is a pgbench run (-M prepared):
#
#   resolve  direct: a script that picks a random code among those a shard
#            owns (a lookup by a random number in a local table, bench.codes)
#            and calls resolve() on that shard, as an application routing
#            itself does; with 1 client on s1, with BENCH_CLIENTS on s1 and s2
#            at once (one pgbench each, half the clients each, TPS summed).
#            coordinator: the same pick among all codes, in the same kind of
#            table on the coordinator, and resolve() there, which PL/Proxy
#            carries to the owner.  Both sides do the same work but for the
#            hop.
#   shorten  direct: shorten(url) on a shard as on a single server (in a
#            database "solo" of the shard's server, prefilled with as many
#            links as the shard owns, so its codes do not mix with the
#            cluster's); with 1 client on s1, with BENCH_CLIENTS on s1 and s2
#            at once.  coordinator: shorten(url) there (cluster-wide id and
#            code, store_link() on the owner through PL/Proxy).  Every call
#            shortens a URL of its own (run, client id and a per-client
#            counter); synchronous_commit is on everywhere, as by default.
#   layers   where a resolve through the coordinator spends its time, 1
#            client, the same pick as above: a PL/Proxy function of ours that
#            routes like _proxy_resolve() but runs SELECT 1 on the owner (the
#            hop), and _proxy_resolve() itself (the hop and resolve() on the
#            owner, without the plpgsql wrapper shorturl.resolve() adds: its
#            retry loop's subtransaction, SECURITY DEFINER, SET search_path).
#
# For each run: TPS; mean and p99 latency (from pgbench's per-transaction
# log); CPU per call on the coordinator and on the shards (the CPU time of
# each server's processes, from /proc/<pid>/stat: the postmaster, its
# children and, once reaped, the children that exited, over the run, divided
# by the calls).  Every round runs every case once, in an order that rotates
# from round to round; figures are medians over rounds.  Between two runs
# the shards write their pending clicks, every database is vacuumed and
# every server checkpoints (autovacuum is off), so that no run pays for the
# writes of the one before it.
#
# Goals (from the issue): resolve and shorten through the coordinator at
# least 0.4x direct; reported with PASS/MISS, never enforced (a benchmark
# never fails on time).
#
# Then, if perf works here (Debian's linux-perf; installed if missing), two
# more 1-client resolve runs, direct to s1 and through the coordinator, are
# profiled: per call, the CPU time, system calls and context switches (perf
# stat) of the backend pgbench talks to and of the shard backends serving
# the coordinator's PL/Proxy connections; and from sampled call stacks
# (perf record, DWARF unwinding) their time by shared object, the
# coordinator backend's top symbols, and the top functions by time in them
# and their callees.  Last, the links the shorten cases made through the
# coordinator are deleted on the shards (so BENCH_LINKS links remain), a
# third shard s3 is added and CALL shorturl.rebalance(BENCH_BATCH) moves its
# share of them: links moved per second.
#
# This machine's cores are shared by every server and by pgbench, so it
# cannot show scale-out: on separate machines each shard's throughput adds
# up, and the hop costs latency and coordinator CPU (see the output).
#
#   BENCH_SECONDS          seconds per pgbench run (default 10)
#   BENCH_ROUNDS           rounds (default 5)
#   BENCH_CLIENTS          pgbench clients of the loaded cases (default 8,
#                          at least 2)
#   BENCH_LINKS            links (default 30000)
#   BENCH_BATCH            batch size of the rebalance (default 1000, the
#                          procedure's default)
#   BENCH_PROFILE_SECONDS  seconds perf records each profiled run (default
#                          BENCH_SECONDS; 0: no profile)
#   BENCH_OUT              the report, also written here (default
#                          test/bench/results/sharding-<date>.txt)
#   BENCH_PLOT             bar chart of TPS, PNG (default
#                          test/bench/results/sharding.png)
#   BENCH_NO_BUILD         set: use the installed extensions as they are
set -euo pipefail
. "$(dirname "$0")/lib.sh"
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
links=${BENCH_LINKS:-30000}
batch=${BENCH_BATCH:-1000}
profile_seconds=${BENCH_PROFILE_SECONDS:-$seconds}
out=${BENCH_OUT:-$BENCH_DIR/results/sharding-$(date -u +%Y-%m-%d).txt}
plot=${BENCH_PLOT:-$BENCH_DIR/results/sharding.png}
[ "$clients" -ge 2 ] || die "BENCH_CLIENTS must be at least 2 (the loaded direct cases split them over two shards)"

# Goals from the issue: the coordinator's rate as a multiple of direct calls'
RESOLVE_GOAL=0.4
SHORTEN_GOAL=0.4

# Four servers share the machine: smaller buffers than bench.conf's (the
# links of every shard still fit many times over).  Every link clicked
# between two flushes fits in the counters.  The workers serve "postgres"
# only: on the shards the cluster's links, on the coordinator's server the
# figures (not "coord", which has no pg_shorturl).  No autovacuum: the
# script vacuums and checkpoints between runs (settle), so that what one
# run wrote costs nothing in the next.
conf=$(mktemp /tmp/pg_shorturl-sharding.XXXXXX.conf)
cat >"$conf" <<'EOF'
shared_buffers = '256MB'
autovacuum = off
shorturl.database = 'postgres'
shorturl.max_pending_links = 100000
EOF

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The coordinator is the database "coord" of bench_start's server; the
# shards are servers in subdirectories of its directory.
bench_start "$conf"
shards=(s1 s2 s3)
trap 'for s in "${shards[@]}"; do scratch_server_stop "$BENCH_WORK/$s"; done
      scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK" "$conf"' EXIT
bench_psql -q -c 'CREATE DATABASE coord'
# on_coord ARGS... runs psql on the coordinator; on_shard S ARGS... on shard S
on_coord() { bench_psql -d coord "$@"; }
on_shard() { PGHOST=$BENCH_WORK/$1 bench_psql "${@:2}"; }
on_coord -q -c 'SET client_min_messages = warning' \
	-c 'CREATE EXTENSION pg_shorturl_coordinator CASCADE' -c 'CREATE SCHEMA bench'
for s in "${shards[@]}"; do
	mkdir "$BENCH_WORK/$s"
	scratch_server_start "$BENCH_WORK/$s" "$BENCH_DIR/bench.conf" "$conf"
	on_shard "$s" -q -c 'CREATE EXTENSION pg_shorturl' -c 'CREATE SCHEMA bench' -c 'CREATE DATABASE solo'
	on_shard "$s" -q -d solo -c 'CREATE EXTENSION pg_shorturl'
done
rm -f "$conf"
for s in "${shards[@]}"; do
	for ((i = 0; ; i++)); do
		[ "$(on_shard "$s" -Atc "SELECT mode = 'shared' AND worker_pid IS NOT NULL FROM shorturl.stats")" = t ] && break
		[ "$i" -lt 200 ] || die "no worker serves shard $s"
		sleep 0.1
	done
done

# conninfo S is the connection string of shard S
conninfo() { echo "host=$BENCH_WORK/$1 port=5432 dbname=postgres user=postgres"; }

# The cluster: s1 and s2 now, s3 joins for the rebalance.  The second
# shard makes a rebalance due; with no link yet it moves nothing.
for s in s1 s2; do
	on_coord -q -c "SELECT shorturl.add_shard('$s', '$(conninfo "$s")', 1)" >/dev/null
done
on_coord -q -c 'SET client_min_messages = warning' -c 'CALL shorturl.rebalance()'
[ "$(on_coord -Atc 'SELECT pending FROM shorturl.rebalance_state')" = f ] ||
	die "a rebalance is still due on the empty cluster"

say "making $links links through the coordinator"
t0=$(date +%s.%N)
on_coord -q <<SQL
CREATE TABLE bench.codes (n int PRIMARY KEY, code text NOT NULL);
INSERT INTO bench.codes
SELECT i, shorturl.shorten('https://example.com/articles/' || md5(i::text))
FROM generate_series(1, $links) i;
SQL
t1=$(date +%s.%N)
shorten_rate=$(awk -v n="$links" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
on_coord -q -c 'VACUUM ANALYZE bench.codes'

# Each shard's own codes, numbered, on that shard; the database "solo" of
# each shard's server gets as many links of its own
declare -A owned
for s in s1 s2; do
	on_shard "$s" -q <<'SQL'
CREATE TABLE bench.codes AS
SELECT row_number() OVER (ORDER BY code)::int AS n, code FROM shorturl.links;
ALTER TABLE bench.codes ADD PRIMARY KEY (n);
VACUUM ANALYZE bench.codes;
VACUUM ANALYZE shorturl.links;
SQL
	owned[$s]=$(on_shard "$s" -Atc 'SELECT count(*) FROM bench.codes')
	on_shard "$s" -q -d solo -c "SELECT count(shorturl.shorten('https://example.com/articles/' || md5(i::text)))
	                             FROM generate_series(1, ${owned[$s]}) i" -c 'VACUUM ANALYZE shorturl.links' >/dev/null
done
[ $((owned[s1] + owned[s2])) = "$links" ] || die "the shards hold $((owned[s1] + owned[s2])) links, not $links"
[ "$(on_coord -Atc 'SELECT count(DISTINCT code) FROM bench.codes')" = "$links" ] ||
	die "the coordinator did not hand out $links distinct codes"

# The layers: a PL/Proxy function routed like _proxy_resolve() that runs
# SELECT 1 on the owner
on_coord -q <<'SQL'
CREATE FUNCTION bench.proxy_noop(code text) RETURNS integer
LANGUAGE plproxy AS $$
    CLUSTER 'shorturl_cluster';
    RUN ON shorturl.route_position(code);
    SELECT 1;
$$;
SQL

# The pgbench scripts
S=$BENCH_WORK/scripts
mkdir -p "$S"
# pick N CALL: a random one of N codes from bench.codes, and CALL on it
pick() { printf '\\set n random(1, %d)\nSELECT %s FROM bench.codes WHERE n = :n;\n' "$1" "$2"; }
pick "$links" 'shorturl.resolve(code)' >"$S/resolve_coord.sql"
pick "$links" 'bench.proxy_noop(code)' >"$S/noop_coord.sql"
pick "$links" 'shorturl._proxy_resolve(code)' >"$S/proxy_coord.sql"
for s in s1 s2; do pick "${owned[$s]}" 'shorturl.resolve(code)' >"$S/resolve_$s.sql"; done
# a URL of its own per call: the run (-D run=...), the client and its
# counter (-D i=0, incremented by every transaction of the client)
cat >"$S/shorten.sql" <<'EOF'
\set i :i + 1
SELECT shorturl.shorten('https://example.com/new/' || :run::text || '/' || :client_id::text || '/' || :i::text);
EOF
# sanity: both sides answer every call
[ "$(on_coord -Atc 'SELECT count(shorturl.resolve(code)) FROM bench.codes WHERE n % 100 = 0')" = $((links / 100)) ] ||
	die "the coordinator does not resolve every code"
[ "$(on_coord -Atc 'SELECT count(*) FROM bench.codes WHERE n % 100 = 0 AND bench.proxy_noop(code) = 1')" = $((links / 100)) ] ||
	die "bench.proxy_noop() does not answer"

# cpu_ticks DIR... prints the CPU time so far, in clock ticks, of the servers
# in the DIRs: their postmasters, their children that have exited (reaped
# into the postmaster's cutime and cstime), and those still running.
cpu_ticks() {
	local dir pm c
	for dir in "$@"; do
		pm=$(head -n1 "$dir/server/postmaster.pid")
		awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
		for c in $(pgrep -P "$pm"); do
			awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true
		done
	done | awk '{s += $1} END {print s}'
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
shard_dirs=("$BENCH_WORK/s1" "$BENCH_WORK/s2" "$BENCH_WORK/s3")

# The cases: group, label, clients, the case whose TPS it is compared with
# (by number), and the pgbench runs, as server:database:script:clients
# (several run at once and their TPS add up)
groups=() labels=() nclients=() refs=() runs=()
add_case() { groups+=("$1"); labels+=("$2"); nclients+=("$3"); refs+=("$4"); runs+=("$5"); }
half=$((clients / 2)) rest=$((clients - clients / 2))
add_case resolve 'direct to the owner (s1)' 1 0 's1:postgres:resolve_s1.sql:1'
add_case resolve 'through the coordinator' 1 0 'coord:coord:resolve_coord.sql:1'
add_case resolve 'direct to the owners (s1 + s2)' "$clients" 2 \
	"s1:postgres:resolve_s1.sql:$half s2:postgres:resolve_s2.sql:$rest"
add_case resolve 'through the coordinator' "$clients" 2 "coord:coord:resolve_coord.sql:$clients"
add_case shorten 'direct on a shard (s1)' 1 4 's1:solo:shorten.sql:1'
add_case shorten 'through the coordinator' 1 4 'coord:coord:shorten.sql:1'
add_case shorten 'direct on the shards (s1 + s2)' "$clients" 6 \
	"s1:solo:shorten.sql:$half s2:solo:shorten.sql:$rest"
add_case shorten 'through the coordinator' "$clients" 6 "coord:coord:shorten.sql:$clients"
add_case layers 'PL/Proxy hop: SELECT 1 on the owner' 1 0 'coord:coord:noop_coord.sql:1'
add_case layers 'PL/Proxy _proxy_resolve(), no wrapper' 1 0 'coord:coord:proxy_coord.sql:1'
n=${#labels[@]}

# settle leaves no work of one run to the next (the shorten cases write
# tens of thousands of rows, the resolve cases count clicks): the shards write
# their pending clicks, every database that changed is vacuumed and
# analyzed, and every server checkpoints.
settle() {
	local s dir
	for s in s1 s2; do
		on_shard "$s" -q -c 'SELECT shorturl.flush()' -c 'VACUUM ANALYZE' >/dev/null
		on_shard "$s" -q -d solo -c 'VACUUM ANALYZE'
	done
	on_coord -q -c 'VACUUM ANALYZE'
	for dir in "$BENCH_WORK" "${shard_dirs[@]}"; do PGHOST=$dir bench_psql -q -c CHECKPOINT; done
}

# Figures go to a file during the rounds (no session on the coordinator's
# server between two runs), into bench.pgb at the end.
figures=$BENCH_WORK/pgb.tsv
: >"$figures"

# pgb ID ROUND runs case ID once and records its figures
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 run server db script c host k=0 pids=()
	local tps=0 tx=0 lat c0 c1 s0 s1
	mkdir -p "$log"
	c0=$(cpu_ticks "$BENCH_WORK")
	s0=$(cpu_ticks "${shard_dirs[@]}")
	for run in ${runs[$id]}; do
		IFS=: read -r server db script c <<<"$run"
		host=$BENCH_WORK
		[ "$server" = coord ] || host=$BENCH_WORK/$server
		PGHOST=$host PGDATABASE=$db "$PG_BIN/pgbench" -n -M prepared -c "$c" -j "$((c < 2 ? 1 : 2))" \
			-T "$seconds" -D run="$id.$round.$k" -D i=0 \
			-l --log-prefix="$log/tx$k" -f "$S/$script" >"$log/out$k" 2>&1 &
		pids+=($!)
		k=$((k + 1))
	done
	for ((k = 0; k < ${#pids[@]}; k++)); do
		wait "${pids[$k]}" || { cat "$log/out$k" >&2; die "pgbench failed in case \"${labels[$id]}\""; }
		grep -q '^number of failed transactions: 0 ' "$log/out$k" ||
			! grep -q '^number of failed transactions' "$log/out$k" ||
			{ cat "$log/out$k" >&2; die "failed transactions in case \"${labels[$id]}\""; }
		tps=$(awk -v t="$tps" '/^tps = / {print t + $3}' "$log/out$k")
		tx=$(awk -v t="$tx" '/^number of transactions actually processed/ {split($NF, a, "/"); print t + a[1]}' "$log/out$k")
	done
	# the coordinator's sessions, and the shards' sessions serving its
	# PL/Proxy connections, exit and are reaped
	sleep 1
	c1=$(cpu_ticks "$BENCH_WORK")
	s1=$(cpu_ticks "${shard_dirs[@]}")
	# column 3 of the log is the transaction's latency in microseconds
	lat=$(cat "$log"/tx* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1; s += $1}
		     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
		          printf "%.3f\t%.3f", s / NR / 1000, v[i] / 1000}')
	rm -rf "$log"
	printf '%d\t%d\t%s\t%s\t%d\t%d\t%d\n' "$id" "$round" "$tps" "$lat" "$tx" $((c1 - c0)) $((s1 - s0)) >>"$figures"
	settle
}

say "$n cases x $rounds rounds x ${seconds}s"
settle
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		pgb $(((k + r) % n)) "$r"
	done
done

# The profile: two more 1-client resolve runs, direct to s1 and through the
# coordinator, during which perf counts, per process, CPU time, system calls
# and context switches (perf stat; divided by the calls the pgbench log shows
# in the window) and samples call stacks (perf record, DWARF unwinding, as
# Debian's PostgreSQL has no frame pointers): of the backend pgbench talks
# to and, through the coordinator, of the shard backends serving its
# PL/Proxy connections (stacks: the one on s1).
profile_note=
profile_dir=$BENCH_WORK/profile
mkdir -p "$profile_dir"
if [ "$profile_seconds" = 0 ]; then
	profile_note='not asked for (BENCH_PROFILE_SECONDS=0)'
else
	(ensure_packages linux-perf) >/dev/null 2>&1 || true
	if ! command -v perf >/dev/null; then
		profile_note='perf is not installed (Debian package linux-perf) and could not be installed'
	elif ! perf record -q -o "$profile_dir/probe.data" -- sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i + 1)); done' \
		>"$profile_dir/probe.out" 2>&1 ||
		! perf report -i "$profile_dir/probe.data" --stdio >"$profile_dir/probe.txt" 2>/dev/null ||
		! grep -q '^ *[0-9.]*%' "$profile_dir/probe.txt"; then
		profile_note="perf cannot sample in this machine: $(head -n3 "$profile_dir/probe.out" | tr '\n' ' ')"
	fi
fi

# backend_pids SERVER DB APP prints the pids, comma-separated, of the
# sessions of application APP in database DB of a server (coord, s1, s2)
backend_pids() {
	local host=$BENCH_WORK
	[ "$1" = coord ] || host=$BENCH_WORK/$1
	PGHOST=$host bench_psql -d "$2" -Atc "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
	                                      WHERE datname = '$2' AND application_name = '$3'"
}

# profile TAG SERVER DB SCRIPT profiles a 1-client run of SCRIPT on SERVER
profile() {
	local tag=$1 server=$2 db=$3 script=$4 host=$BENCH_WORK main shards= t0 t1 pids=() p
	[ "$server" = coord ] || host=$BENCH_WORK/$server
	PGHOST=$host PGDATABASE=$db "$PG_BIN/pgbench" -n -M prepared -c 1 -T $((profile_seconds + 3)) -D i=0 \
		-l --log-prefix="$profile_dir/$tag.tx" -f "$S/$script" >"$profile_dir/$tag.pgbench" 2>&1 &
	local bench=$!
	sleep 1
	main=$(backend_pids "$server" "$db" pgbench)
	[ "$server" = coord ] &&
		shards=$(for s in s1 s2; do backend_pids "$s" postgres 'pg_shorturl coordinator'; done | paste -sd,)
	t0=$(date +%s.%N)
	perf stat -x, -e task-clock,raw_syscalls:sys_enter,context-switches -p "$main" \
		-o "$profile_dir/$tag.main.stat" -- sleep "$profile_seconds" >/dev/null 2>&1 &
	pids+=($!)
	perf record -q -F 499 --call-graph dwarf,16384 -p "$main" -o "$profile_dir/$tag.main.data" \
		-- sleep "$profile_seconds" >/dev/null 2>&1 &
	pids+=($!)
	if [ -n "$shards" ]; then
		perf stat -x, -e task-clock,raw_syscalls:sys_enter,context-switches -p "$shards" \
			-o "$profile_dir/$tag.shards.stat" -- sleep "$profile_seconds" >/dev/null 2>&1 &
		pids+=($!)
		perf record -q -F 499 --call-graph dwarf,16384 -p "${shards%%,*}" -o "$profile_dir/$tag.shard.data" \
			-- sleep "$profile_seconds" >/dev/null 2>&1 &
		pids+=($!)
	fi
	# perf counts for the sleep's seconds from about t0 on
	t1=$(awk -v a="$t0" -v n="$profile_seconds" 'BEGIN {printf "%.6f", a + n}')
	for p in "${pids[@]}"; do wait "$p" || true; done
	wait "$bench" || { cat "$profile_dir/$tag.pgbench" >&2; die "pgbench failed while profiling"; }
	# the calls in the window: column 5 and 6 of the log are the end of a
	# transaction, in seconds and microseconds
	cat "$profile_dir/$tag".tx* | awk -v a="$t0" -v b="$t1" '{t = $5 + $6 / 1e6} t >= a && t <= b {n++} END {print n + 0}' \
		>"$profile_dir/$tag.calls"
}
if [ -z "$profile_note" ]; then
	say "profiling resolve, direct and through the coordinator, ${profile_seconds}s each"
	profile direct s1 postgres resolve_s1.sql
	profile coord coord coord resolve_coord.sql
fi

# The rebalance: the links the shorten cases made through the coordinator
# go, then a third shard of the same weight takes a third of the links
say "adding shard s3 and rebalancing"
for s in s1 s2; do
	[ "$(on_shard "$s" -Atc "SELECT count(*) = count(DISTINCT url) AND count(*) > 0 FROM shorturl.links
	                        WHERE url LIKE 'https://example.com/new/%'")" = t ] ||
		die "the shorten cases through the coordinator did not make distinct URLs on $s"
	on_shard "$s" -q -c "DELETE FROM shorturl.links WHERE url LIKE 'https://example.com/new/%'" \
		-c 'VACUUM ANALYZE shorturl.links' -c 'VACUUM ANALYZE shorturl.visit_counts'
done
before=$(($(on_shard s1 -Atc 'SELECT count(*) FROM shorturl.links') + $(on_shard s2 -Atc 'SELECT count(*) FROM shorturl.links')))
[ "$before" = "$links" ] || die "the shards hold $before links after the cleanup, not $links"
on_coord -q -c "SELECT shorturl.add_shard('s3', '$(conninfo s3)', 1)" >/dev/null
planned=$(on_coord -Atc 'SELECT coalesce(sum(links), 0) FROM shorturl.rebalance_plan()')
t0=$(date +%s.%N)
on_coord -q -c 'SET client_min_messages = warning' -c "CALL shorturl.rebalance($batch)"
t1=$(date +%s.%N)
IFS='|' read -r moved state_s < <(on_coord -Atc \
	'SELECT moved, round(extract(epoch FROM finished_at - started_at)::numeric, 2) FROM shorturl.rebalance_state')
declare -A after
for s in "${shards[@]}"; do after[$s]=$(on_shard "$s" -Atc 'SELECT count(*) FROM shorturl.links'); done
left=$(on_coord -Atc 'SELECT coalesce(sum(links), 0) FROM shorturl.rebalance_plan()')
served=$(on_coord -Atc 'SELECT count(shorturl.resolve(code)) FROM bench.codes WHERE n % 10 = 0')
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

bench_psql -q <<SQL
CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, grp text, label text, clients int, reference int);
CREATE TABLE bench.pgb (id int, round int, tps float8, mean_ms float8, p99_ms float8,
                        tx bigint, coord_ticks bigint, shard_ticks bigint);
\copy bench.pgb FROM '$figures'
CREATE VIEW bench.pgb_report AS
WITH m AS (
    SELECT c.id, c.grp, c.label, c.clients, c.reference, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps) AS tps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.mean_ms) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.coord_ticks::float8 / p.tx) * $TICK_US AS coord_us,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.shard_ticks::float8 / p.tx) * $TICK_US AS shard_us
    FROM bench.pgb_cases c JOIN bench.pgb p USING (id)
    GROUP BY c.id, c.grp, c.label, c.clients, c.reference
)
SELECT m.*, m.tps / r.tps AS ratio FROM m JOIN m r ON r.id = m.reference;
SQL
for ((i = 0; i < n; i++)); do
	printf "INSERT INTO bench.pgb_cases VALUES (%d, '%s', '%s', %d, %d);\\n" \
		"$i" "${groups[$i]}" "${labels[$i]}" "${nclients[$i]}" "${refs[$i]}"
done | bench_psql -q

# per_call TAG WHICH prints CPU us, system calls and context switches per
# call from a profile's perf stat
per_call() {
	awk -F, -v calls="$(cat "$profile_dir/$1.calls")" -v what="$3" '
		$3 == "task-clock" {cpu = $1 * 1000 / calls}
		$3 == "raw_syscalls:sys_enter" {sc = $1 / calls}
		$3 == "context-switches" {cs = $1 / calls}
		END {printf "  %-58s %7.1f us CPU  %5.2f system calls  %5.2f context switches\n", what, cpu, sc, cs}
	' "$profile_dir/$1.$2.stat"
}

# by_dso DATA prints one line of a profile's self time by shared object
by_dso() {
	perf report -i "$profile_dir/$1" --stdio --no-children --sort dso -g none >"$profile_dir/$1.dso" 2>/dev/null || true
	awk '/^ +[0-9.]+%/ {sub(/\.so.*/, "", $2); sub(/^\[kernel\.kallsyms\]$/, "kernel", $2);
	                    l = l sep $2 " " $1; sep = ", "} END {print l}' "$profile_dir/$1.dso"
}

# top_self DATA N prints a profile's N top symbols by self time;
# top_children DATA N its N top named user-space functions by the time
# spent in them and what they call (the process's start-up frames left out)
top_self() {
	perf report -i "$profile_dir/$1" --stdio --no-children --sort dso,sym -g none >"$profile_dir/$1.self" 2>/dev/null || true
	awk -v n="$2" '/^ +[0-9.]+%/ && k++ < n {sub(/^ +/, "    "); sub(/ +$/, ""); print}' "$profile_dir/$1.self"
}
top_children() {
	perf report -i "$profile_dir/$1" --stdio --children --sort dso,sym -g none >"$profile_dir/$1.children" 2>/dev/null || true
	awk -v n="$2" '/^ +[0-9.]+% +[0-9.]+% / && $4 == "[.]" && $5 !~ /^0x/ &&
	               $5 !~ /^(main|_start|PostmasterMain|PostgresMain|ServerLoop|BackendRun|BackendStartup|__libc_start_call_main|__libc_start_main_impl)$/ &&
	               k++ < n {sub(/^ +/, "    "); sub(/ +$/, ""); print}' "$profile_dir/$1.children"
}

profile_report() {
	echo " per call (perf stat; CPU is on-CPU time of the processes named):"
	per_call direct main 'direct: the shard backend'
	per_call coord main 'through the coordinator: the coordinator backend'
	per_call coord shards 'through the coordinator: the shard backends (s1 + s2)'
	echo " self time by shared object (kernel time lands mostly on pvm_irq_enable in this VM: the"
	echo " sample is taken when interrupts come back on, after a context switch or a system call):"
	echo "  direct, the shard backend:                 $(by_dso direct.main.data)"
	echo "  the coordinator backend:                   $(by_dso coord.main.data)"
	echo "  the shard backend (s1) serving PL/Proxy:   $(by_dso coord.shard.data)"
	echo " the coordinator backend, top symbols by self time:"
	top_self coord.main.data 15
	echo " the coordinator backend, top functions by time in them and their callees (overhead columns: with"
	echo " callees, self; stacks DWARF-unwound without debug symbols, so some chains break and undercount):"
	top_children coord.main.data 22
	echo " the shard backend (s1) serving PL/Proxy, the same:"
	top_children coord.shard.data 16
}

# report prints what the run found
report() {
	echo "pg_shorturl sharding benchmark (test/bench/sharding.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $load_after after it (other work on this machine perturbs the figures)"
	echo "1 coordinator (pg_shorturl_coordinator $(on_coord -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'"), PL/Proxy $(on_coord -Atc "SELECT extversion FROM pg_extension WHERE extname = 'plproxy'"))"
	echo "  + 2 shards (pg_shorturl $(on_shard s1 -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'"), clicks in shared memory), then 3; each its own server on this machine, over Unix sockets."
	echo "$links links made through the coordinator with shorten() at $shorten_rate links/s (one session, one statement);"
	echo "s1 owns ${owned[s1]}, s2 owns ${owned[s2]}.  pgbench -M prepared, ${seconds}s per run, $rounds rounds (medians), cases interleaved."
	echo "resolve: each call picks a uniformly random code from bench.codes on the node it calls; shorten: a new URL per call."
	echo "x direct: TPS over that of the direct case with as many clients.  CPU us/call: CPU time of each server's processes / calls."
	bench_psql -c "SELECT grp AS \"call\", label AS \"case\", clients, rounds,
	                      round(tps::numeric) AS \"median TPS\", round(ratio::numeric, 2) AS \"x direct\",
	                      round(mean::numeric, 3) AS \"mean ms\", round(p99::numeric, 3) AS \"p99 ms\",
	                      round(coord_us::numeric, 1) AS \"CPU us/call, coordinator\",
	                      round(shard_us::numeric, 1) AS \"CPU us/call, shards\"
	               FROM bench.pgb_report ORDER BY id"
	echo "goals (from the issue):"
	bench_psql -At <<SQL
SELECT format('  %s via coordinator >= %s x direct, %s client%s: %s x (%s vs %s TPS)  %s',
              c.grp, g.goal, c.clients, CASE WHEN c.clients = 1 THEN ' ' ELSE 's' END,
              round(c.ratio::numeric, 3), round(c.tps::numeric), round(d.tps::numeric),
              CASE WHEN c.ratio >= g.goal THEN 'PASS' ELSE 'MISS' END)
FROM bench.pgb_report c JOIN bench.pgb_report d ON d.id = c.reference
JOIN (VALUES ('resolve', $RESOLVE_GOAL), ('shorten', $SHORTEN_GOAL)) g (grp, goal) ON g.grp = c.grp
WHERE c.label = 'through the coordinator' ORDER BY c.id;
SQL
	bench_psql -At <<SQL
SELECT format('  the same CPU per call, on machines of their own (an estimate, not measured): one coordinator core for about %s resolves/s'
              ' or %s shortens/s; one shard core, called directly, for about %s resolves/s or %s shortens/s ($clients clients)',
              round(1e6 / r.coord_us), round(1e6 / w.coord_us),
              round(1e6 / rd.shard_us), round(1e6 / wd.shard_us))
FROM bench.pgb_report r, bench.pgb_report w, bench.pgb_report rd, bench.pgb_report wd
WHERE r.id = 3 AND w.id = 7 AND rd.id = 2 AND wd.id = 6;
SQL
	echo "where a resolve through the coordinator goes (1 client; medians; each layer minus the one above it):"
	bench_psql <<'SQL'
WITH d AS (SELECT * FROM bench.pgb_report WHERE id = 0),
     a AS (SELECT * FROM bench.pgb_report WHERE id = 8),
     b AS (SELECT * FROM bench.pgb_report WHERE id = 9),
     c AS (SELECT * FROM bench.pgb_report WHERE id = 1)
SELECT layer, round(ms::numeric, 3) AS "mean ms", round(coord::numeric, 1) AS "CPU us, coordinator",
       round(shard::numeric, 1) AS "CPU us, shard"
FROM (
    SELECT 1, 'direct: pick + resolve() on the shard', d.mean, d.coord_us, d.shard_us FROM d
    UNION ALL
    SELECT 2, 'hop: PL/Proxy call, SELECT 1 on the owner (+ pick)', a.mean, a.coord_us, a.shard_us FROM a
    UNION ALL
    SELECT 3, 'resolve() on the owner, over SELECT 1', b.mean - a.mean, b.coord_us - a.coord_us, b.shard_us - a.shard_us FROM a, b
    UNION ALL
    SELECT 4, 'wrapper: shorturl.resolve() around _proxy_resolve()', c.mean - b.mean, c.coord_us - b.coord_us, c.shard_us - b.shard_us FROM b, c
    UNION ALL
    SELECT 5, 'total through the coordinator', c.mean, c.coord_us, c.shard_us FROM c
) x (k, layer, ms, coord, shard) ORDER BY k;
SQL
	echo "profile of a resolve, 1 client, perf over ${profile_seconds}s (one run each, perturbed by perf itself):"
	if [ -n "$profile_note" ]; then
		echo "  none: $profile_note"
	else
		profile_report
	fi
	printf 'rebalance to 3 shards, CALL shorturl.rebalance(%s): %s links planned, %s moved in %s s (%s s by rebalance_state): %s links/s\n' \
		"$batch" "$planned" "$moved" "$wall" "$state_s" \
		"$(awk -v m="$moved" -v w="$wall" 'BEGIN {printf "%.0f", m / w}')"
	printf '  after it: s1 %s, s2 %s, s3 %s links (%s in all, were %s); left to move by rebalance_plan(): %s; resolved through the coordinator: %s of %s sampled codes\n' \
		"${after[s1]}" "${after[s2]}" "${after[s3]}" $((after[s1] + after[s2] + after[s3])) "$links" "$left" \
		"$served" $((links / 10))
	echo "note: every server and pgbench share this machine's $(nproc) cores, so more shards here only split the same CPU:"
	echo "  this run cannot show scale-out.  On separate machines each shard serves its own share (per-node TPS adds up),"
	echo "  and going through the coordinator costs the hop's latency and the coordinator's CPU per call (above)."
}
mkdir -p "$(dirname "$out")"
report | tee "$out"

# The chart: TPS per case, direct beside coordinator, log scale
mkdir -p "$(dirname "$plot")"
data=$BENCH_WORK/sharding.dat
bench_psql -At -F $'\t' >"$data" <<'SQL'
SELECT id + id / 2, tps, CASE WHEN label LIKE 'through%' THEN 2 ELSE 1 END,
       grp || ', ' || clients || CASE WHEN clients = 1 THEN ' client: ' ELSE ' clients: ' END
       || CASE WHEN label LIKE 'through%' THEN 'coordinator' ELSE 'direct' END
FROM bench.pgb_report WHERE grp <> 'layers' ORDER BY id
SQL
gnuplot <<GNUPLOT
set terminal png size 1100,650 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl sharding: TPS direct to the shards and through the coordinator (median of $rounds runs of ${seconds}s; log scale)"
set datafile separator "\t"
set style fill solid 0.85 border -1
set boxwidth 0.8
set logscale y
set yrange [10:*]
set xrange [-0.7:11.7]
set ylabel "transactions per second"
set xtics rotate by -30 left nomirror
set grid ytics
set bmargin 10
set rmargin 12
set linetype 1 lc rgb "#228833"
set linetype 2 lc rgb "#cc3311"
set key top right
plot "$data" using 1:2:3:xtic(4) with boxes lc variable notitle, \
     "" using 1:(\$2 * 1.2):(sprintf("%.0f", \$2)) with labels notitle, \
     NaN with boxes lt 1 title "direct to the shards", \
     NaN with boxes lt 2 title "through the coordinator"
GNUPLOT
echo "chart: $plot"
echo "report: $out"
