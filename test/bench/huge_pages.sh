#!/bin/bash
# test/bench/huge_pages.sh: resolve() on a long tail with the server's shared
# memory in 4 kB pages and in 2 MB huge pages (huge_pages = on), with the
# default counter table (shorturl.max_pending_links 100,000) and with one
# larger than the links (1,100,000).  A last case keeps the worker from
# flushing during the runs (shorturl.flush_interval 1 h, 1,100,000 slots):
# what resolve() costs by itself, without writing the clicks back.
#
# BENCH_LINKS links (1,000,000) as in longtail.sh, clicked uniformly
# (random rank through pgbench's permute()); a plain table of the same codes
# and URLs is the anchor.  For each configuration the server is restarted
# with it, the tables are prewarmed, and each round runs the plain SELECT
# and resolve() once each (pgbench -M prepared, 8 clients, 2 threads,
# BENCH_SECONDS each), counting the page faults of the whole machine during
# the resolve run (perf stat).  Figures are medians over BENCH_ROUNDS.
#
# Needs root: it reserves the huge pages it needs (vm.nr_hugepages) for the
# run and gives them back after.
#
#   BENCH_SECONDS  seconds per pgbench run (default 8)
#   BENCH_ROUNDS   rounds (default 3)
#   BENCH_LINKS    links (default 1000000)
#   BENCH_OUT      the report, also written here (default
#                  test/bench/results/huge_pages-<date>.txt)
#   BENCH_NO_BUILD set: use the installed extension as it is
#   BENCH_CASES    the configurations, huge_pages:max_pending_links:flush_interval
#                  separated by spaces (default: the five above)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
seconds=${BENCH_SECONDS:-8}
rounds=${BENCH_ROUNDS:-3}
links=${BENCH_LINKS:-1000000}
out=${BENCH_OUT:-$BENCH_DIR/results/huge_pages-$(date -u +%Y-%m-%d).txt}
FIRST_CODE=1000000
# 2 MB pages for shared_buffers (512 MB), the counter table and the rest
HUGE_PAGES_NEEDED=600

require_root
ensure_packages "${BUILD_PACKAGES[@]}" linux-perf bc
[ "${BENCH_NO_BUILD:-}" ] || build_and_install
hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
work=$(mktemp -d /tmp/pg_shorturl-huge.XXXXXX)
trap 'scratch_server_stop "$work"; rm -rf "$work"; echo "$hugepages_before" >/proc/sys/vm/nr_hugepages' EXIT
echo "$HUGE_PAGES_NEEDED" >/proc/sys/vm/nr_hugepages
[ "$(cat /proc/sys/vm/nr_hugepages)" -ge "$HUGE_PAGES_NEEDED" ] ||
	die "could not reserve $HUGE_PAGES_NEEDED huge pages"

conf=$work/bench.conf
cat >"$conf" <<EOF
shared_preload_libraries = 'pg_shorturl'
shared_buffers = 512MB
jit = off
max_wal_size = 8GB
include_if_exists = '$work/case.conf'
EOF
echo "huge_pages = off" >"$work/case.conf"
chmod 644 "$conf" "$work/case.conf"
scratch_server_start "$work" "$conf"
export PGHOST=$work PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
bench_psql -q -c 'CREATE EXTENSION pg_shorturl' -c 'CREATE SCHEMA bench' -c 'CREATE EXTENSION pg_prewarm'
say "making $links links"
bench_make_links "$links" "$FIRST_CODE"

S=$work/scripts
mkdir -p "$S"
pick="\\set c $((FIRST_CODE + 1)) + permute(random(0, $((links - 1))), $links, 12)"
printf '%s\nSELECT url FROM bench.plain WHERE code = :c::text;\n' "$pick" >"$S/select.sql"
printf '%s\nSELECT shorturl.resolve(:c::text);\n' "$pick" >"$S/resolve.sql"
chmod -R a+rX "$S"

# run SCRIPT prints pgbench's TPS
run() {
	"$PG_BIN/pgbench" -n -M prepared -c 8 -j 2 -T "$seconds" -f "$S/$1" 2>&1 |
		awk '/^tps = / {printf "%d\n", $3}'
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

load_before=$(bench_load)
table=$(printf '%-10s %-17s %-14s %10s %11s %8s %20s\n' huge_pages max_pending_links flush_interval 'SELECT TPS' 'resolve TPS' 'x plain' 'page faults/s, resolve'
for cfg in ${BENCH_CASES:-off:100000:1s off:1100000:1s on:100000:1s on:1100000:1s on:1100000:1h}; do
	IFS=: read -r hp slots interval <<<"$cfg"
	printf 'huge_pages = %s\nshorturl.max_pending_links = %s\nshorturl.flush_interval = %s\n' \
		"$hp" "$slots" "$interval" >"$work/case.conf"
	scratch_server_stop "$work"
	as_user "$PG_BIN/pg_ctl" -D "$work/server" -l "$work/server.log" -w start >/dev/null
	bench_psql -Atq -c "SELECT pg_prewarm(c.oid) FROM pg_class c
	    WHERE c.relnamespace IN ('shorturl'::regnamespace, 'bench'::regnamespace)
	      AND c.relkind IN ('r', 'i')" >/dev/null
	sel=() res=() flt=()
	for ((r = 1; r <= rounds; r++)); do
		sel+=("$(run select.sql)")
		perf stat -a -x, -e page-faults -o "$work/stat" -- sleep "$((seconds - 1))" >/dev/null 2>&1 &
		res+=("$(run resolve.sql)")
		wait
		flt+=("$(awk -F, -v s="$((seconds - 1))" '$3 == "page-faults" {printf "%d\n", $1 / s}' "$work/stat")")
	done
	s=$(printf '%s\n' "${sel[@]}" | median)
	v=$(printf '%s\n' "${res[@]}" | median)
	f=$(printf '%s\n' "${flt[@]}" | median)
	printf '%-10s %-17s %-14s %10s %11s %8.2f %20s\n' "$hp" "$slots" "$interval" "$s" "$v" "$(echo "$v / $s" | bc -l)" "$f"
done)

mkdir -p "$(dirname "$out")"
{
	echo "pg_shorturl huge pages benchmark (test/bench/huge_pages.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the runs, $(bench_load) after them"
	echo "$links links, uniform clicks (permute of a random rank); pgbench -M prepared, 8 clients, 2 threads, ${seconds}s per run, $rounds rounds (medians)"
	echo "page faults/s: of the whole machine during the resolve() runs (perf stat -a)"
	echo "$table"
} | tee "$out"
