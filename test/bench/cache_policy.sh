#!/bin/bash
# test/bench/cache_policy.sh: hit rates of LRU, CLOCK, CLOCK with a 2-bit
# usage count, CLOCK with TinyLFU admission (src/tinylfu.c) and a light
# W-TinyLFU, for the URL cache of issue 17.  See cache_policy.c.
#
# A simulation, not a server benchmark: 1,000,000 links; five workloads
# (uniform, Zipf s = 1.001, Zipf s = 1.2, Zipf 1.001 with 30% one-hit
# wonders, Zipf 1.001 whose hot links all change every million requests);
# caches of 1%, 5%, 10% and 20% of the links.  Each policy replays the
# same seeded sequence of requests: 5,000,000 of warm-up, then 10,000,000
# counted.  The table gives each policy's hit rate beside the best static
# cache (the C most probable links, the most a policy can keep on such
# traffic) and beside two variants of TinyLFU that test its details (no
# flood guard; a CLOCK hand that waits at a victim that refused a
# candidate), then TinyLFU's hit rate over LRU's and CLOCK's, and its
# misses (the lookups that still reach the table) over CLOCK's.  The
# figures are deterministic: only the time taken depends on the machine.
#
# Needs no server and no root (unless gnuplot is missing: then it installs
# gnuplot-nox, through sudo if need be): it builds the program with gcc -O2
# into a temporary directory and runs one process per workload, as many at
# a time as there are cores.  Each prints its time to stderr: 8 to 45 s
# of CPU per workload (uniform, whose requests miss the CPU's caches, the
# most), about 2 minutes in all, so about a minute on 2 idle cores; other
# work on the machine stretches it (3 to 7 minutes at loads of 7 to 8).
#
#   BENCH_JOBS    workloads simulated at once (default: the number of cores)
#   BENCH_OUT     the table (default test/bench/results/cache-policy-<date>.txt)
#   BENCH_PLOT    the chart (default test/bench/results/cache-policy.png)
#   BENCH_CFLAGS  extra compiler flags (default none)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

here=$REPO/test/bench
workloads=(uniform zipf1.001 zipf1.2 onehit churn)
titles=("uniform" "Zipf s = 1.001" "Zipf s = 1.2" "Zipf s = 1.001 + 30% one-hit wonders"
	"Zipf s = 1.001, hot links change every 1M requests")
jobs=${BENCH_JOBS:-$(nproc)}
out=${BENCH_OUT:-$here/results/cache-policy-$(date -u +%Y-%m-%d).txt}
plot=${BENCH_PLOT:-$here/results/cache-policy.png}

if ! command -v gnuplot >/dev/null; then
	require_root
	ensure_packages gnuplot-nox
fi

work=$(mktemp -d /tmp/pg_shorturl-cache-policy.XXXXXX)
trap 'rm -rf "$work"' EXIT

# -O2, as PGXS builds the extension, so the sketch costs what it costs there
gcc -std=c11 -O2 -Wall -Wextra -Werror ${BENCH_CFLAGS:-} -I"$REPO/src" -I"$here" \
	"$here/cache_policy.c" "$REPO/src/tinylfu.c" -o "$work/cache_policy" -lm

# The slowest first (uniform traffic misses the CPU's caches most), so
# that the last to start are the quickest; the table keeps its own order
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
printf '%s\n' uniform onehit zipf1.001 churn zipf1.2 |
	xargs -P "$jobs" -I{} sh -c '"$1/cache_policy" "$2" "$1/$2.tsv" >"$1/$2.txt"' _ "$work" {}
elapsed=$(($(date +%s) - started))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$(dirname "$out")" "$(dirname "$plot")"
{
	echo "pg_shorturl URL cache policies: hit rates (test/bench/cache_policy.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'machine: %s, %s cores, gcc %s; %s workloads at a time, %d s in all\n' \
		"$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" "$(nproc)" \
		"$(gcc -dumpfullversion)" "$jobs" "$elapsed"
	echo "load average (1, 5, 15 min): $load_before before the run, $load_after after it (other work on this machine stretches the time, never the hit rates)"
	"$work/cache_policy" header
	for w in "${workloads[@]}"; do cat "$work/$w.txt"; done
} | tee "$out"

# One panel per workload: hit rate against cache size, a line per policy;
# the sixth panel holds the key
lines=("1:2 with linespoints lt 1 title 'best static (C most probable links)'"
	"1:3 with linespoints lt 2 title 'LRU'"
	"1:4 with linespoints lt 3 title 'CLOCK'"
	"1:5 with linespoints lt 4 title 'CLOCK-2bit'"
	"1:6 with linespoints lt 5 title 'CLOCK + TinyLFU'"
	"1:9 with linespoints lt 6 title 'W-TinyLFU (1% window)'")
plot_cmd=""
for i in "${!workloads[@]}"; do
	plot_cmd+="set title \"${titles[$i]}\"
plot '$work/${workloads[$i]}.tsv' using ${lines[0]}"
	for ((j = 1; j < ${#lines[@]}; j++)); do plot_cmd+=", '' using ${lines[$j]}"; done
	plot_cmd+=$'\n'
done
key_cmd="plot NaN with linespoints lt 1 title 'best static (C most probable links)'"
for ((j = 1; j < ${#lines[@]}; j++)); do key_cmd+=", NaN ${lines[$j]#1:? }"; done
gnuplot <<GNUPLOT
set terminal pngcairo size 1500,900 font ",10" noenhanced
set output "$plot"
set datafile separator "\t"
set multiplot layout 2,3 title "pg_shorturl URL cache: hit rate by policy, 1,000,000 links, 10M requests after 5M of warm-up (test/bench/cache_policy.sh)"
set logscale x
set xtics ("1%%" 1, "5%%" 5, "10%%" 10, "20%%" 20)
set xrange [0.8:25]
set xlabel "cache size (share of links)"
set ylabel "hit rate (%)"
set grid
unset key
set linetype 1 lc rgb "#999999" dt 2 pt 0
set linetype 2 lc rgb "#4477aa" pt 7
set linetype 3 lc rgb "#66ccee" pt 5
set linetype 4 lc rgb "#ccbb44" pt 9
set linetype 5 lc rgb "#cc3311" pt 7 lw 3
set linetype 6 lc rgb "#228833" pt 13 dt 3
$plot_cmd
unset title
unset border
unset tics
unset xlabel
unset ylabel
unset grid
unset logscale x
set xrange [0:1]
set yrange [0:1]
set key center center box spacing 1.5 width 2
$key_cmd
unset multiplot
GNUPLOT
echo "table: $out"
echo "chart: $plot"
