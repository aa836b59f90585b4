#!/bin/bash
# test/bench/sharding.sh: resolve() through a coordinator against resolve()
# sent straight to the shard that owns the code, and the speed of a
# rebalance (issue 6).
#
# One coordinator and two shards, each a throw-away server of its own on
# this machine (Unix sockets, loopback), each preloading the library with a
# worker serving its database, so clicks are counted in the shard's shared
# memory.  The coordinator makes BENCH_LINKS links with shorten() (generated
# codes, spread over the shards by route()).
#
#   direct       a pgbench whose script picks a random code among those a
#                given shard owns and calls resolve() on that shard, as an
#                application routing itself (README, "How applications
#                route themselves") does; per shard, and both shards at once
#                (one pgbench each, half the clients each, TPS summed)
#   coordinator  the same pick among all codes, resolve() on the coordinator,
#                which calls the owner through dblink
#
# Both pick their code with the same lookup in a local table (bench.codes,
# by a random number), on the node they call, so they do the same work but
# for the hop.  With 1 client the latency difference is the hop's cost;
# with BENCH_CLIENTS the TPS are compared.  CPU per call is the CPU time
# of each server's processes (from /proc) over the run, divided by the
# calls.  Every round runs every case once, in an order that rotates from
# round to round; figures are medians over rounds.
#
# Then a third shard is added and CALL shorturl.rebalance() moves its share
# of the links: links moved per second.
#
# This machine's cores are shared by every server and by pgbench, so it
# cannot show scale-out: on separate machines each shard's throughput adds
# up, and the hop costs latency and coordinator CPU (see the output).
# A benchmark never fails on time.
#
#   BENCH_SECONDS  seconds per pgbench run (default 10)
#   BENCH_ROUNDS   rounds (default 5)
#   BENCH_CLIENTS  pgbench clients of the loaded cases (default 8)
#   BENCH_LINKS    links (default 30000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
links=${BENCH_LINKS:-30000}

# Four servers share the machine: smaller buffers than bench.conf's (the
# links of every shard still fit many times over).  Every link clicked
# between two flushes fits in the counters.
conf=$(mktemp /tmp/pg_shorturl-sharding.XXXXXX.conf)
cat >"$conf" <<'EOF'
shared_buffers = '256MB'
shorturl.database = 'postgres'
shorturl.max_pending_links = 100000
EOF

# The coordinator is bench_start's server; the shards are servers in
# subdirectories of its directory.
bench_start "$conf"
shards=(s1 s2 s3)
trap 'for s in "${shards[@]}"; do scratch_server_stop "$BENCH_WORK/$s"; done
      scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK" "$conf"' EXIT
# on_shard S ARGS... runs psql on shard S
on_shard() { PGHOST=$BENCH_WORK/$1 bench_psql "${@:2}"; }
for s in "${shards[@]}"; do
	mkdir "$BENCH_WORK/$s"
	scratch_server_start "$BENCH_WORK/$s" "$BENCH_DIR/bench.conf" "$conf"
	on_shard "$s" -q -c 'CREATE EXTENSION pg_shorturl' -c 'CREATE SCHEMA bench'
done
rm -f "$conf"

# conninfo S is the connection string of shard S
conninfo() { echo "host=$BENCH_WORK/$1 port=5432 dbname=postgres user=postgres"; }

# The cluster: s1 and s2 now, s3 joins for the rebalance
for s in s1 s2; do
	bench_psql -q -c "SELECT shorturl.add_shard('$s', '$(conninfo $s)', 1)" >/dev/null
done

say "making $links links through the coordinator"
t0=$(date +%s.%N)
bench_psql -q -c "SELECT count(shorturl.shorten('https://example.com/articles/' || md5(i::text)))
                  FROM generate_series(1, $links) i" >/dev/null
t1=$(date +%s.%N)
shorten_rate=$(awk -v n="$links" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')

# The codes, numbered: all of them on the coordinator, each shard's own on
# that shard
bench_psql -q <<'SQL'
CREATE TABLE bench.codes AS
SELECT row_number() OVER (ORDER BY code)::int AS n, code FROM shorturl.links;
ALTER TABLE bench.codes ADD PRIMARY KEY (n);
VACUUM ANALYZE bench.codes;
SQL
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
	[ "$(on_shard "$s" -Atc 'SELECT mode FROM shorturl.stats')" = shared ] ||
		die "shard $s does not count clicks in shared memory"
done
total=$(bench_psql -Atc 'SELECT count(*) FROM bench.codes')
[ "$total" = "$links" ] || die "the coordinator sees $total links, not $links"
[ $((owned[s1] + owned[s2])) = "$links" ] || die "the shards hold $((owned[s1] + owned[s2])) links, not $links"

S=$BENCH_WORK/scripts
mkdir -p "$S"
pick() { printf '\\set n random(1, %d)\nSELECT shorturl.resolve(code) FROM bench.codes WHERE n = :n;\n' "$1"; }
pick "$total" >"$S/coordinator.sql"
for s in s1 s2; do pick "${owned[$s]}" >"$S/$s.sql"; done

# cpu_ticks DIR prints the CPU time so far, in clock ticks, of the server in
# DIR: its postmaster, its children that have exited (reaped into the
# postmaster's cutime and cstime), and those still running.
cpu_ticks() {
	local pm
	pm=$(head -n1 "$1/server/postmaster.pid")
	{
		awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
		for c in $(pgrep -P "$pm"); do
			awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true
		done
	} | awk '{s += $1} END {print s}'
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# The cases: label, clients, and the pgbench runs, as target:script:clients
# (several run at once and their TPS add up)
labels=() nclients=() runs=()
add_case() { labels+=("$1"); nclients+=("$2"); runs+=("$3"); }
half=$((clients / 2))
add_case 'direct to s1' 1 's1:s1.sql:1'
add_case 'through the coordinator' 1 'coord:coordinator.sql:1'
add_case 'direct to s1' "$clients" "s1:s1.sql:$clients"
add_case 'direct to s2' "$clients" "s2:s2.sql:$clients"
add_case 'direct to s1 and s2 at once' "$clients" "s1:s1.sql:$half s2:s2.sql:$((clients - half))"
add_case 'through the coordinator' "$clients" "coord:coordinator.sql:$clients"
n=${#labels[@]}

{
	echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, label text, clients int);'
	echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, mean_ms float8, p99_ms float8,
	        tx bigint, coord_ticks bigint, shard_ticks bigint);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.pgb_cases VALUES (%d, '%s', %d);\\n" "$i" "${labels[$i]}" "${nclients[$i]}"
	done
} | bench_psql -q

# pgb ID ROUND runs case ID once and records its figures
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 run target script c host k=0 pids=()
	local tps=0 tx=0 lat c0 c1 s0 s1
	mkdir -p "$log"
	c0=$(cpu_ticks "$BENCH_WORK")
	s0=$(($(cpu_ticks "$BENCH_WORK/s1") + $(cpu_ticks "$BENCH_WORK/s2")))
	for run in ${runs[$id]}; do
		IFS=: read -r target script c <<<"$run"
		host=$BENCH_WORK
		[ "$target" = coord ] || host=$BENCH_WORK/$target
		PGHOST=$host "$PG_BIN/pgbench" -n -M prepared -c "$c" -j "$((c < 2 ? 1 : 2))" \
			-T "$seconds" -l --log-prefix="$log/tx$k" -f "$S/$script" >"$log/out$k" 2>&1 &
		pids+=($!)
		k=$((k + 1))
	done
	for ((k = 0; k < ${#pids[@]}; k++)); do
		wait "${pids[$k]}" || { cat "$log/out$k" >&2; die "pgbench failed in case \"${labels[$id]}\""; }
		tps=$(awk -v t="$tps" '/^tps = / {print t + $3}' "$log/out$k")
		tx=$(awk -v t="$tx" '/^number of transactions actually processed/ {print t + $NF}' "$log/out$k")
	done
	# the coordinator's sessions, and the shards' sessions serving its
	# dblink connections, exit and are reaped
	sleep 1
	c1=$(cpu_ticks "$BENCH_WORK")
	s1=$(($(cpu_ticks "$BENCH_WORK/s1") + $(cpu_ticks "$BENCH_WORK/s2")))
	# column 3 of the log is the transaction's latency in microseconds
	lat=$(cat "$log"/tx* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1; s += $1}
		     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
		          printf "%.3f, %.3f", s / NR / 1000, v[i] / 1000}')
	rm -rf "$log"
	bench_psql -q -c "INSERT INTO bench.pgb VALUES ($id, $round, $tps, $lat, $tx, $((c1 - c0)), $((s1 - s0)))"
}

say "$n cases x $rounds rounds x ${seconds}s"
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		pgb $(((k + r) % n)) "$r"
	done
done

# The rebalance: a third shard of the same weight takes a third of the links
say "adding shard s3 and rebalancing"
bench_psql -q -c "SELECT shorturl.add_shard('s3', '$(conninfo s3)', 1)" >/dev/null
planned=$(bench_psql -Atc 'SELECT coalesce(sum(links), 0) FROM shorturl.rebalance_plan()')
t0=$(date +%s.%N)
bench_psql -q -c 'SET client_min_messages = warning' -c 'CALL shorturl.rebalance()'
t1=$(date +%s.%N)
IFS='|' read -r moved state_s < <(bench_psql -Atc \
	'SELECT moved, round(extract(epoch FROM finished_at - started_at)::numeric, 2) FROM shorturl.rebalance_state')
on_s3=$(on_shard s3 -Atc 'SELECT count(*) FROM shorturl.links')
after=$(bench_psql -Atc 'SELECT count(*) FROM shorturl.links')
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')

bench_machine
echo "1 coordinator + 2 shards (then 3), each its own server on this machine, over Unix sockets (loopback);"
echo "$links links made through the coordinator with shorten() at $shorten_rate links/s (one session);"
echo "shard s1 owns ${owned[s1]}, s2 owns ${owned[s2]}.  pgbench -M prepared, ${seconds}s per run, $rounds rounds (medians), cases interleaved;"
echo "each call picks a uniformly random code from bench.codes on the node it calls.  CPU us/call: CPU time of each server's processes / calls."
bench_psql -q <<'SQL'
CREATE VIEW bench.pgb_report AS
SELECT c.id, c.label AS "case", c.clients, count(*) AS rounds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps) AS tps,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.mean_ms) AS mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.p99_ms) AS p99,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.coord_ticks::float8 / p.tx) AS coord_ticks,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.shard_ticks::float8 / p.tx) AS shard_ticks
FROM bench.pgb_cases c JOIN bench.pgb p USING (id)
GROUP BY c.id, c.label, c.clients;
SQL
bench_psql <<SQL
SELECT r."case", r.clients, r.rounds,
       round(r.tps::numeric) AS "median TPS",
       round((r.tps / d.tps)::numeric, 2) AS "x direct to s1",
       round(r.mean::numeric, 3) AS "mean ms",
       round(r.p99::numeric, 3) AS "p99 ms",
       round((r.coord_ticks * $TICK_US)::numeric, 1) AS "CPU us/call, coordinator",
       round((r.shard_ticks * $TICK_US)::numeric, 1) AS "CPU us/call, shards"
FROM bench.pgb_report r
JOIN bench.pgb_report d ON d."case" = 'direct to s1' AND d.clients = r.clients
ORDER BY r.id;
SQL
bench_psql -At <<SQL
SELECT format('hop overhead (1 client): %s ms mean (%s -> %s ms), %s ms at p99 (%s -> %s ms)',
              round((c.mean - d.mean)::numeric, 3), round(d.mean::numeric, 3), round(c.mean::numeric, 3),
              round((c.p99 - d.p99)::numeric, 3), round(d.p99::numeric, 3), round(c.p99::numeric, 3))
FROM bench.pgb_report c, bench.pgb_report d
WHERE c.clients = 1 AND c."case" = 'through the coordinator'
  AND d.clients = 1 AND d."case" = 'direct to s1';
SELECT format('CPU per resolve ($clients clients): direct %s us on the shard; through the coordinator %s us on the coordinator + %s us on the shard',
              round((d.shard_ticks * $TICK_US)::numeric, 1), round((c.coord_ticks * $TICK_US)::numeric, 1),
              round((c.shard_ticks * $TICK_US)::numeric, 1))
FROM bench.pgb_report c, bench.pgb_report d
WHERE c.clients = $clients AND c."case" = 'through the coordinator'
  AND d.clients = $clients AND d."case" = 'direct to s1 and s2 at once';
SQL
printf 'rebalance to 3 shards: %s links planned, %s moved (%s now on s3; %s links in all, was %s) in %s s (%s s by rebalance_state): %s links/s\n' \
	"$planned" "$moved" "$on_s3" "$after" "$links" "$wall" "$state_s" \
	"$(awk -v m="$moved" -v w="$wall" 'BEGIN {printf "%.0f", m / w}')"
echo "note: every server and pgbench share this machine's $(nproc) cores, so more shards here only split the same CPU:"
echo "  this run cannot show scale-out.  On separate machines each shard serves its own share (per-node TPS adds up),"
echo "  and going through the coordinator costs the hop's latency and the coordinator's CPU per call (above)."
