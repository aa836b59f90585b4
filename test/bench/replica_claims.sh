#!/bin/bash
# test/bench/replica_claims.sh: what a link with max_visits costs on a hot
# standby (issue 18), where each resolve() claims its visit on the primary
# in one round trip (src/claim.c).
#
# One primary (test/bench/bench.conf, the library preloaded, its worker
# serving the database postgres) and one streaming hot standby made from it
# with pg_basebackup -R, both on this machine, over Unix sockets; the
# standby claims over its primary_conninfo (a Unix socket too).  BENCH_LINKS
# links (20,000) are stored as aliases with decimal codes FIRST_CODE + 1
# ... FIRST_CODE + N; the upper half gets a max_visits no run reaches
# (limited), the lower half has none (unlimited); bench.plain holds the same
# codes and URLs.  Every script picks its code uniformly in its half.
# Four cases:
#
#   standby plain              SELECT url FROM bench.plain WHERE code = $1
#   standby resolve unlimited  resolve() of an unlimited link: counted in
#                              the standby's shared memory, shipped later
#   standby resolve limited    resolve() of a limited link: a claim on the
#                              primary (shorturl.claim_visit()) per call
#   primary resolve limited    resolve() of a limited link on the primary
#
# Every case is a pgbench run (-M prepared), every round runs each case
# once, in an order that rotates from round to round, and the figures are
# medians over rounds: TPS and mean latency, and the primary's CPU per
# click over the run (/proc, all its processes).  The exactness check: the
# limited links' visits on the primary (visits(), so unflushed ones count)
# grow by exactly the transactions of each limited run.
#
#   BENCH_SECONDS   seconds per pgbench run (default 10)
#   BENCH_ROUNDS    rounds (default 3)
#   BENCH_CLIENTS   pgbench clients (default 8)
#   BENCH_THREADS   pgbench threads (default 2)
#   BENCH_LINKS     links (default 20000)
#   BENCH_OUT       the report, also written here (default
#                   test/bench/results/replica-claims-<date>.txt)
#   BENCH_NO_BUILD  set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-20000}
out=${BENCH_OUT:-$BENCH_DIR/results/replica-claims-$(date -u +%Y-%m-%d).txt}

FIRST_CODE=1000000
STANDBY_PORT=5433
HZ=$(getconf CLK_TCK)
half=$((links / 2))

conf=$(mktemp /tmp/pg_shorturl-claims.XXXXXX.conf)
echo "shorturl.database = 'postgres'" >"$conf"
bench_start "$conf"
rm -f "$conf"
PRIMARY=$BENCH_WORK
STANDBY=$BENCH_WORK/standby
cleanup() {
	scratch_server_stop "$STANDBY"
	scratch_server_stop "$PRIMARY"
	rm -rf "$BENCH_WORK"
}
trap cleanup EXIT
sb_psql() { PGHOST=$STANDBY PGPORT=$STANDBY_PORT bench_psql "$@"; }

# cpu_ticks DATADIR prints the CPU ticks of all the processes of the server
# in DATADIR: the postmaster's own and its reaped children's, and its live
# children's.
cpu_ticks() {
	local pm f rest fields total=0
	pm=$(head -n1 "$1/postmaster.pid")
	for f in /proc/[0-9]*/stat; do
		{ read -r rest <"$f"; } 2>/dev/null || continue
		read -r -a fields <<<"${rest##*') '}"
		if [ "${rest%% *}" = "$pm" ]; then
			total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
		elif [ "${fields[1]}" = "$pm" ]; then
			total=$((total + fields[11] + fields[12]))
		fi
	done
	echo "$total"
}

# limited_visits prints the primary's live visits of the limited links.
limited_visits() {
	bench_psql -Atc "SELECT sum(shorturl.visits(code)) FROM shorturl.links WHERE max_visits IS NOT NULL"
}

say "making $links links, $half of them limited"
bench_make_links "$links" "$FIRST_CODE"
bench_psql -q -c "UPDATE shorturl.links SET max_visits = 1000000000000 WHERE code::bigint > $((FIRST_CODE + half))" \
	-c 'VACUUM ANALYZE shorturl.links'
bench_settle

say "making the standby (pg_basebackup -R)"
bench_make_standby "$STANDBY" "$STANDBY_PORT" bench_standby
for ((i = 0; i < 100; i++)); do
	[ "$(sb_psql -Atc "SELECT mode = 'standby' FROM shorturl.stats")" = t ] && break
	sleep 0.1
done
[ "$(sb_psql -Atc "SELECT mode FROM shorturl.stats")" = standby ] || die "the standby does not count in mode standby"
sb_psql -q -c "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
               WHERE c.relnamespace IN ('shorturl'::regnamespace, 'bench'::regnamespace)
                 AND c.relkind IN ('r', 'i', 't')" >/dev/null
# one claim, so that the standby's path is known to work before the runs
[ -n "$(sb_psql -Atc "SELECT shorturl.resolve('$((FIRST_CODE + links))')")" ] ||
	die "a limited link does not resolve on the standby: $(sb_psql -Atc "SELECT shorturl.link_status('$((FIRST_CODE + links))')")"

S=$BENCH_WORK/scripts
mkdir -p "$S"
chown "$RUN_USER:" "$S"
unlimited="\\set c $((FIRST_CODE + 1)) + random(0, $((half - 1)))"
limited="\\set c $((FIRST_CODE + half + 1)) + random(0, $((links - half - 1)))"
printf '%s\nSELECT url FROM bench.plain WHERE code = :c;\n' "$unlimited" >"$S/plain.sql"
printf '%s\nSELECT shorturl.resolve(:c);\n' "$unlimited" >"$S/unlimited.sql"
printf '%s\nSELECT 1 / (shorturl.resolve(:c) IS NOT NULL)::int;\n' "$limited" >"$S/limited.sql"

names=("standby plain" "standby resolve unlimited" "standby resolve limited" "primary resolve limited")
scripts=(plain unlimited limited limited)
nodes=(standby standby standby primary)
n=${#names[@]}
results=$BENCH_WORK/results
: >"$results"

# run ID ROUND runs case ID once and appends its figures to $results
run() {
	local id=$1 round=$2 host=$PRIMARY port=5432 log v0 v1 c0 c1 tx tps lat exact=-
	[ "${nodes[$id]}" = standby ] && host=$STANDBY port=$STANDBY_PORT
	log=$BENCH_WORK/out.$id.$round
	v0=$(limited_visits)
	c0=$(cpu_ticks "$PRIMARY/server")
	PGHOST=$host PGPORT=$port "$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-f "$S/${scripts[$id]}.sql" >"$log" 2>&1 || { cat "$log" >&2; die "pgbench failed: ${names[$id]}"; }
	c1=$(cpu_ticks "$PRIMARY/server")
	v1=$(limited_visits)
	tx=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' "$log")
	tps=$(awk '/^tps = / {print $3}' "$log")
	lat=$(awk '/^latency average/ {print $4}' "$log")
	if [ "${scripts[$id]}" = limited ]; then
		if [ $((v1 - v0)) -eq "$tx" ]; then exact=yes; else exact="no: $((v1 - v0)) counted, $tx served"; fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$round" "$tps" "$lat" "$tx" \
		"$(awk -v t=$((c1 - c0)) -v x="$tx" -v hz="$HZ" 'BEGIN {printf "%.1f", t / hz * 1e6 / x}')" "$exact" >>"$results"
}

for ((r = 0; r < rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		id=$(((k + r) % n))
		say "round $((r + 1))/$rounds: ${names[$id]}"
		run "$id" "$r"
	done
done

# median ID COLUMN prints the median of a column of case ID's rounds
median() {
	awk -F'\t' -v id="$1" -v col="$2" '$1 == id {print $col}' "$results" | sort -g |
		awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

{
	echo "# pg_shorturl: a limited link on a hot standby, claimed on the primary ($(date -u +%Y-%m-%d))"
	bench_machine
	echo "load before: $load_before"
	echo "$links links ($half limited), uniform; pgbench -M prepared over Unix sockets, $clients clients, $threads threads,"
	echo "${seconds}s per run, $rounds rounds (medians), cases interleaved; one primary and one standby on this machine"
	echo
	printf '%-28s %10s %12s %16s %8s\n' case "median TPS" "mean ms" "primary CPU µs/tx" "exact"
	for ((i = 0; i < n; i++)); do
		exact=$(awk -F'\t' -v id="$i" '$1 == id {print $7}' "$results" | sort -u | paste -sd, -)
		printf '%-28s %10.0f %12.3f %16.1f %8s\n' "${names[$i]}" "$(median "$i" 3)" "$(median "$i" 4)" \
			"$(median "$i" 6)" "$exact"
	done
	echo
	plain=$(median 0 3)
	printf 'standby resolve limited / standby plain:          %.2f\n' "$(awk -v a="$(median 2 3)" -v b="$plain" 'BEGIN {print a / b}')"
	printf 'standby resolve limited / standby resolve unlimited: %.2f\n' "$(awk -v a="$(median 2 3)" -v b="$(median 1 3)" 'BEGIN {print a / b}')"
	printf 'standby resolve limited / primary resolve limited:  %.2f\n' "$(awk -v a="$(median 2 3)" -v b="$(median 3 3)" 'BEGIN {print a / b}')"
	printf 'added latency of a claim (limited - unlimited, mean): %.3f ms\n' "$(awk -v a="$(median 2 4)" -v b="$(median 1 4)" 'BEGIN {print a - b}')"
	echo
	echo "per run: case, round, TPS, mean ms, transactions, primary CPU µs/tx, exact"
	sort -k1,1n -k2,2n "$results"
} | tee "$out"
