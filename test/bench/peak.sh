#!/bin/bash
# test/bench/peak.sh: the design guide's load at a fixed rate (issue 12),
# with the headroom above it, against the same mix of plain statements.
#
# shorturl.estimate(10000000, 0.1, 100, 500, 5) gives a peak of 3,472 reads
# per second.  BENCH_LINKS links (1,000,000) are stored as aliases with
# decimal codes, and bench.plain (code text PRIMARY KEY, url text) holds the
# same codes and URLs.  The server preloads the library and its worker
# serves the database, at the default settings (printed); a CHECKPOINT
# follows the load, so that its dirty pages are written before the runs.
# Two mixes, as
# pgbench weighted scripts (-M prepared, over the Unix socket):
#
#   A  99%  SELECT shorturl.resolve(code)
#       1%  SELECT shorturl.shorten('https://example.com/articles/' || random)
#   B  99%  SELECT url FROM bench.plain WHERE code = $1
#       1%  INSERT INTO bench.plain_ins (code, url) VALUES (12 random hex
#           digits, the same URL) RETURNING code: a bigserial key and a
#           unique random text code
#
# Reads pick the code FIRST_CODE + 1 + permute(random_zipfian(0, N - 1,
# 1.001), N, SEED), the same keys for both mixes.  Latency is pgbench's
# per-transaction log's total time, which with --rate counts from the
# transaction's scheduled start: schedule lag included.  pgbench is run
# without --latency-limit, so it skips nothing; a transaction is "late" when
# its latency exceeds P99_LIMIT_MS.  Transactions scheduled in a run's first
# BENCH_WARMUP_SECONDS (new connections, cold caches: p99s of 15-35 ms in
# that second on this machine) are left out of the latency figures; the
# achieved rate is pgbench's, over the whole run.
#
#   0. A warm-up, not recorded: each mix at 3472/s for WARMUP_RUN seconds.
#   1. Each mix at --rate 3472 for BENCH_PEAK_SECONDS: p50, p99, p99.9 and
#      max latency, late transactions, the writes' own p99.  For mix A, the
#      worker's flushes are recorded (shorturl.stats polled every 0.2 s) to
#      tell whether latency spikes come with them: per 1-second bucket p99s,
#      the share of seconds whose p99 exceeds twice the median per-second
#      p99, and the share of the slowest 1% of transactions that overlapped
#      a flush against the share of all transactions that did.
#   2. Steps: both mixes at each rate of BENCH_STEP_RATES, BENCH_STEP_SECONDS
#      each, alternating which mix goes first, up to a mix's first miss; a
#      rate is sustained when p99 < P99_LIMIT_MS and the achieved rate is at
#      least 98% of the target.  Then BENCH_STEP_REFINE bisections between a
#      mix's highest sustained rate and its first miss.  Headroom is the
#      highest sustained rate / 3472.
#
# Goals (from the issue): mix A sustains at least 0.9x mix B's rate (the
# ratio of their headrooms), and A's p99 at 3,472/s is within 1.5x of B's.
# A benchmark never fails on time: the goals are reported, not enforced.
#
#   BENCH_PEAK_SECONDS  seconds of each mix at 3472/s (default 60)
#   BENCH_STEP_SECONDS  seconds per step (default 20)
#   BENCH_STEP_RATES    the rates stepped through (default 3472 7000 10000
#                       14000 18000 22000 26000 30000 35000 40000 45000 50000)
#   BENCH_STEP_REFINE   bisections after the first miss (default 2)
#   BENCH_WARMUP_SECONDS  transactions scheduled in a run's first seconds
#                       are left out of its latency figures (default 1)
#   BENCH_CLIENTS       pgbench clients (default 8)
#   BENCH_THREADS       pgbench threads (default 2)
#   BENCH_LINKS         links (default 1000000)
#   BENCH_PLOT          latency distribution at 3472/s, PNG (default
#                       test/bench/results/peak.png)
#   BENCH_OUT           the report, also written here (default
#                       test/bench/results/peak-<date>.txt)
#   BENCH_NO_BUILD      set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
peak_seconds=${BENCH_PEAK_SECONDS:-60}
step_seconds=${BENCH_STEP_SECONDS:-20}
read -r -a step_rates <<<"${BENCH_STEP_RATES:-3472 7000 10000 14000 18000 22000 26000 30000 35000 40000 45000 50000}"
refine=${BENCH_STEP_REFINE:-2}
warmup=${BENCH_WARMUP_SECONDS:-1}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-1000000}
plot=${BENCH_PLOT:-$BENCH_DIR/results/peak.png}
out=${BENCH_OUT:-$BENCH_DIR/results/peak-$(date -u +%Y-%m-%d).txt}

PEAK=3472
P99_LIMIT_MS=5
ACHIEVED_MIN=0.98
HEADROOM_GOAL=0.9
P99_GOAL=1.5
FIRST_CODE=1000000
SEED=12
WARMUP_RUN=20

conf=$(mktemp /tmp/pg_shorturl-peak.XXXXXX.conf)
echo "shorturl.database = 'postgres'" >"$conf"
bench_start "$conf"
rm -f "$conf"

say "making $links links"
bench_make_links "$links" "$FIRST_CODE"
bench_psql -q >/dev/null <<SQL
CREATE TABLE bench.plain_ins (id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, url text NOT NULL);
SQL
bench_settle
settings=$(bench_psql -Atc "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
                            FROM pg_settings WHERE name IN ('shorturl.max_pending_links', 'shorturl.flush_interval')")

# The pgbench scripts: MIX.read.sql and MIX.write.sql
S=$BENCH_WORK/scripts
mkdir -p "$S"
keys="\\set r random_zipfian(0, $((links - 1)), 1.001)
\\set c $((FIRST_CODE + 1)) + permute(:r, $links, $SEED)"
url="\\set i random(1, 1000000000)"
printf '%s\nSELECT shorturl.resolve(:c);\n' "$keys" >"$S/A.read.sql"
printf "%s\nSELECT shorturl.shorten('https://example.com/articles/' || :i);\n" "$url" >"$S/A.write.sql"
printf '%s\nSELECT url FROM bench.plain WHERE code = :c;\n' "$keys" >"$S/B.read.sql"
printf "%s\nINSERT INTO bench.plain_ins (code, url) VALUES (substr(md5(random()::text), 1, 12), 'https://example.com/articles/' || :i) RETURNING code;\n" \
	"$url" >"$S/B.write.sql"
echo "SELECT extract(epoch FROM last_flush_at), last_flush_ms FROM shorturl.stats \\watch 0.2" >"$S/poll.sql"

bench_psql -q -c 'CREATE TABLE bench.runs (id serial, mix text, stage text, rate int, seconds int, tx bigint,
                  achieved float8, mean_ms float8, p50_ms float8, p99_ms float8, p999_ms float8, max_ms float8,
                  late bigint, measured bigint, lag_avg_ms float8, lag_max_ms float8, write_p99_ms float8, read_p99_ms float8, exec_p99_ms float8, fallbacks bigint, checkpoints bigint,
                  pass boolean)'

# counters prints the sync fallbacks and the checkpoints so far
counters() {
	bench_psql -At -F ' ' -c 'SELECT (SELECT sync_fallbacks FROM shorturl.stats), checkpoints_timed + checkpoints_req
	                          FROM pg_stat_bgwriter'
}

# p99_of LOG WHAT prints the p99 (ms) of a log's reads' (script 0) or
# writes' (script 1) latencies, or of all latencies minus schedule lag (exec)
p99_of() {
	awk -v what="$2" 'what == "exec" {print $3 - $7; next}
	                  (what == "reads" && $4 == 0) || (what == "writes" && $4 == 1) {print $3}' "$1" | sort -n |
		awk '{v[NR] = $1} END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; printf "%.3f", NR ? v[i] / 1000 : 0}'
}

# rate_run MIX RATE SECONDS STAGE runs mix MIX at RATE/s for SECONDS and
# records its figures; prints "t" when the rate was sustained.  The log is
# kept as $BENCH_WORK/MIX.STAGE.log (columns: client, transaction, latency
# in µs, script, completion time in s and µs, schedule lag in µs).
rate_run() {
	local mix=$1 rate=$2 secs=$3 stage=$4 dir=$BENCH_WORK/run fb0 fb1 ck0 ck1 tx tps lag_avg lag_max stats wp99 rp99 xp99
	rm -rf "$dir"
	mkdir -p "$dir"
	read -r fb0 ck0 < <(counters)
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$secs" --rate "$rate" \
		-l --log-prefix="$dir/tx" -f "$S/$mix.read.sql@99" -f "$S/$mix.write.sql@1" >"$dir/out" 2>&1 ||
		{ cat "$dir/out" >&2; die "pgbench failed: mix $mix at $rate/s"; }
	read -r fb1 ck1 < <(counters)
	# left out: transactions scheduled (completion - latency) in the warm-up
	# seconds, when the connections are new
	cat "$dir"/tx.* | awk -v w="$warmup" '
	    {t = $5 + $6 / 1e6 - $3 / 1e6; line[NR] = $0; at[NR] = t; if (NR == 1 || t < t0) t0 = t}
	    END {for (i = 1; i <= NR; i++) if (at[i] >= t0 + w) print line[i]}' >"$BENCH_WORK/$mix.$stage.log"
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$dir/out")
	# the achieved rate: pgbench's, without the time taken to connect
	tps=$(awk '/^tps = / {print $3}' "$dir/out")
	read -r lag_avg lag_max < <(sed -n 's/^rate limit schedule lag: avg \([0-9.]*\) (max \([0-9.]*\)) ms$/\1 \2/p' "$dir/out")
	# the latencies, sorted: mean, p50, p99, p99.9, max, late, how many
	stats=$(awk '{print $3}' "$BENCH_WORK/$mix.$stage.log" | sort -n |
		awk -v limit=$((P99_LIMIT_MS * 1000)) '
		    function q(p,  i) { i = int(NR * p + 0.999); if (i < 1) i = 1; return v[i] / 1000 }
		    {v[NR] = $1; s += $1; if ($1 > limit) late++}
		    END {printf "%.3f, %.3f, %.3f, %.3f, %.3f, %d, %d", s / NR / 1000, q(0.5), q(0.99), q(0.999), v[NR] / 1000, late, NR}')
	wp99=$(p99_of "$BENCH_WORK/$mix.$stage.log" writes)
	rp99=$(p99_of "$BENCH_WORK/$mix.$stage.log" reads)
	xp99=$(p99_of "$BENCH_WORK/$mix.$stage.log" exec)
	bench_psql -qAt -c "INSERT INTO bench.runs (mix, stage, rate, seconds, tx, achieved, mean_ms, p50_ms, p99_ms,
	                       p999_ms, max_ms, late, measured, lag_avg_ms, lag_max_ms, write_p99_ms, read_p99_ms, exec_p99_ms, fallbacks, checkpoints, pass)
	                   SELECT *, p99 < $P99_LIMIT_MS AND achieved >= $ACHIEVED_MIN * $rate
	                   FROM (VALUES ('$mix', '$stage', $rate, $secs, $tx, $tps::float8, $stats,
	                                 ${lag_avg:-0}, ${lag_max:-0}, $wp99, $rp99, $xp99, $fb1 - $fb0, $ck1 - $ck0))
	                        v(m, s, r, secs, tx, achieved, mean, p50, p99, p999, mx, late, measured, la, lm, w, rd, x, f, ck)
	                   RETURNING pass"
	rm -rf "$dir"
}

# A warm-up, not recorded: each mix at the peak for WARMUP_RUN seconds, so
# that both are measured in the same state (the hot links' counters and
# count rows made, the pages they write logged once since the CHECKPOINT)
say "warm-up: mix A, then mix B, at $PEAK/s for ${WARMUP_RUN}s"
rate_run A "$PEAK" "$WARMUP_RUN" warmup >/dev/null
rate_run B "$PEAK" "$WARMUP_RUN" warmup >/dev/null
bench_psql -q -c "DELETE FROM bench.runs WHERE stage = 'warmup'"

# 1. The design guide's peak, 3472/s, mix A with the worker's flushes recorded
say "mix A, then mix B, at $PEAK/s for ${peak_seconds}s"
"$PG_BIN/psql" -X -At -F ' ' -f "$S/poll.sql" >"$BENCH_WORK/flushes" 2>/dev/null &
poll=$!
rate_run A "$PEAK" "$peak_seconds" peak >/dev/null
kill -INT "$poll"
wait "$poll" || true
rate_run B "$PEAK" "$peak_seconds" peak >/dev/null

# 2. The steps
declare -A last_pass=() first_miss=()
k=0
for rate in "${step_rates[@]}"; do
	if [ $((k++ % 2)) -eq 0 ]; then order=(A B); else order=(B A); fi
	for mix in "${order[@]}"; do
		[ -n "${first_miss[$mix]:-}" ] && continue
		say "step: mix $mix at $rate/s for ${step_seconds}s"
		if [ "$(rate_run "$mix" "$rate" "$step_seconds" step)" = t ]; then
			last_pass[$mix]=$rate
		else
			first_miss[$mix]=$rate
		fi
	done
done
for ((k = 0; k < refine; k++)); do
	for mix in A B; do
		if [ -z "${first_miss[$mix]:-}" ] || [ -z "${last_pass[$mix]:-}" ]; then continue; fi
		# the midpoint, rounded down to a multiple of 100
		rate=$(((last_pass[$mix] + first_miss[$mix]) / 2))
		rate=$((rate - rate % 100))
		[ "$rate" -gt "${last_pass[$mix]}" ] || continue
		say "step: mix $mix at $rate/s for ${step_seconds}s (bisection)"
		if [ "$(rate_run "$mix" "$rate" "$step_seconds" step)" = t ]; then
			last_pass[$mix]=$rate
		else
			first_miss[$mix]=$rate
		fi
	done
done

# per_second MIX prints the per-second p99s (ms) of mix MIX at the peak,
# leaving out the last second (partial).
per_second() {
	awk '{print $5, $3}' "$BENCH_WORK/$1.peak.log" | sort -n -k1,1 -k2,2 |
		awk 'function out(  i) { if (n) { i = int(n * 0.99 + 0.999); print s, v[i] / 1000 } }
		     $1 != s {out(); s = $1; n = 0} {v[++n] = $2} END {out()}' | sed '$d'
}
# spikes MIX prints: seconds, median per-second p99, max per-second p99,
# seconds whose p99 exceeds twice the median
spikes() {
	per_second "$1" | awk '{print $2}' | sort -n |
		awk '{v[NR] = $1} END {m = v[int((NR + 1) / 2)]; for (i = 1; i <= NR; i++) if (v[i] > 2 * m) k++;
		                       printf "%d %.3f %.3f %d\n", NR, m, v[NR], k}'
}
# flush_overlap prints, for mix A at the peak: flushes seen, their mean and
# max ms, the share of the time they covered, the share of all transactions
# that overlapped one, and that of the slowest 1%.
flush_overlap() {
	local p99
	p99=$(bench_psql -Atc "SELECT p99_ms * 1000 FROM bench.runs WHERE mix = 'A' AND stage = 'peak'")
	awk 'NF == 2 && $1 != "" {print}' "$BENCH_WORK/flushes" | sort -u |
		awk -v p99="$p99" -v secs="$peak_seconds" '
		    FILENAME == "-" {e[++nw] = $1; b[nw] = $1 - $2 / 1000; ms += $2; if ($2 > mx) mx = $2; next}
		    { end = $5 + $6 / 1e6; start = end - $3 / 1e6; hit = 0
		      for (i = 1; i <= nw; i++) if (start < e[i] && end > b[i]) { hit = 1; break }
		      all++; hits += hit; if ($3 >= p99) { slow++; slowhits += hit } }
		    END { printf "%d %.1f %.1f %.1f %.1f %.1f\n", nw, nw ? ms / nw : 0, mx,
		                 ms / 10 / secs, all ? 100 * hits / all : 0, slow ? 100 * slowhits / slow : 0 }
		' - "$BENCH_WORK/A.peak.log"
}

# report prints the figures (kept in $out too)
report() {
	local cols='mix, rate AS "target /s", round(achieved::numeric) AS "achieved /s", round(mean_ms::numeric, 3) AS "mean ms",
	            round(p50_ms::numeric, 3) AS "p50 ms", round(p99_ms::numeric, 3) AS "p99 ms",
	            round(p999_ms::numeric, 3) AS "p99.9 ms", round(max_ms::numeric, 3) AS "max ms",
	            late AS "late > '"$P99_LIMIT_MS"' ms", round(100.0 * late / measured, 3) AS "late %",
	            lag_avg_ms AS "lag avg ms", lag_max_ms AS "lag max ms"'
	local hA hB s_a s_b f
	echo "pg_shorturl $(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'") peak-load benchmark (test/bench/peak.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "pgbench -M prepared --rate over the Unix socket, $clients clients, $threads threads; $links links; settings: $settings"
	echo "reads: code = $((FIRST_CODE + 1)) + permute(random_zipfian(0, N-1, 1.001), N, $SEED)"
	echo "  A: 99% SELECT shorturl.resolve(code), 1% SELECT shorturl.shorten(url)"
	echo "  B: 99% SELECT url FROM bench.plain WHERE code = \$1, 1% INSERT INTO bench.plain_ins (bigserial id, unique random text code)"
	echo "latency: pgbench's per-transaction total time, from the scheduled start (schedule lag included); no --latency-limit, so"
	echo "no transaction is skipped; transactions scheduled in a run's first ${warmup}s (new connections) are left out of the
latency figures; late: latency > $P99_LIMIT_MS ms; lag: pgbench's schedule lag (avg, max); p99 - lag: p99 of the latency"
	echo "minus the schedule lag (from the transaction's actual start); checkpoints: begun during"
	echo "the run (pg_stat_bgwriter; a CHECKPOINT followed the load, then a ${WARMUP_RUN}s warm-up of each mix at $PEAK/s, not recorded)"
	echo
	echo "at $PEAK/s for ${peak_seconds}s:"
	bench_psql -c "SELECT $cols, round(read_p99_ms::numeric, 3) AS \"reads' p99 ms\",
	                      round(write_p99_ms::numeric, 3) AS \"writes' p99 ms\", round(exec_p99_ms::numeric, 3) AS \"p99 - lag ms\", fallbacks AS \"sync fallbacks\",
	                      checkpoints FROM bench.runs WHERE stage = 'peak' ORDER BY id"
	echo "steps of ${step_seconds}s (sustained: p99 < $P99_LIMIT_MS ms and achieved >= $ACHIEVED_MIN x target; each mix stops at its first miss, then bisects):"
	bench_psql -c "SELECT $cols, round(exec_p99_ms::numeric, 3) AS \"p99 - lag ms\", checkpoints, CASE WHEN pass THEN 'yes' ELSE 'no' END AS sustained
	               FROM bench.runs WHERE stage = 'step' ORDER BY mix, rate"
	hA=${last_pass[A]:-0} hB=${last_pass[B]:-0}
	awk -v a="$hA" -v b="$hB" -v p="$PEAK" 'BEGIN {
	    printf "highest sustained rate: A %d/s (headroom %.2f x %d), B %d/s (headroom %.2f x), A/B %.2f\n",
	           a, a / p, p, b, b / p, (b > 0 ? a / b : 0) }'
	[ -n "${first_miss[A]:-}" ] || echo "  (mix A never missed: its headroom is at least the last rate stepped)"
	[ -n "${first_miss[B]:-}" ] || echo "  (mix B never missed: its headroom is at least the last rate stepped)"
	echo
	echo "latency spikes at $PEAK/s (per 1-second bucket of completion time; the last, partial, second left out):"
	read -r s_a < <(spikes A)
	read -r s_b < <(spikes B)
	awk -v a="$s_a" -v b="$s_b" 'BEGIN {
	    split(a, x, " "); split(b, y, " ")
	    printf "  mix A: %d s, median per-second p99 %.3f ms, max %.3f ms, %d s (%.1f%%) with p99 > 2x the median\n", x[1], x[2], x[3], x[4], (x[1] ? 100 * x[4] / x[1] : 0)
	    printf "  mix B: %d s, median per-second p99 %.3f ms, max %.3f ms, %d s (%.1f%%) with p99 > 2x the median\n", y[1], y[2], y[3], y[4], (y[1] ? 100 * y[4] / y[1] : 0) }'
	read -r -a f < <(flush_overlap)
	echo "  mix A's flushes (shorturl.stats polled every 0.2 s): ${f[0]} in ${peak_seconds}s, mean ${f[1]} ms, max ${f[2]} ms, covering ${f[3]}% of the time;"
	echo "  transactions overlapping a flush: ${f[4]}% of all, ${f[5]}% of the slowest 1% (latency >= the run's p99)"
	echo "  mix A's per-second p99s (ms), in order:"
	per_second A | awk '{printf "%s%.2f", (NR % 15 == 1 ? (NR > 1 ? "\n" : "") "   " : " "), $2} END {print ""}'
	echo
	echo "goals:"
	bench_psql -At <<SQL
SELECT format('  sustained rate, A / B: %s x (A %s/s, B %s/s)  goal >= $HEADROOM_GOAL x  %s',
              coalesce(round(a::numeric / nullif(b, 0), 2)::text, '-'), a, b, CASE WHEN a >= $HEADROOM_GOAL * b AND b > 0 THEN 'PASS' ELSE 'MISS' END)
FROM (VALUES ($hA, $hB)) v(a, b);
SELECT format('  p99 at $PEAK/s, A / B: %s x (%s vs %s ms)  goal <= $P99_GOAL x  %s',
              round((a.p99_ms / b.p99_ms)::numeric, 2), round(a.p99_ms::numeric, 3), round(b.p99_ms::numeric, 3),
              CASE WHEN a.p99_ms <= $P99_GOAL * b.p99_ms THEN 'PASS' ELSE 'MISS' END)
FROM bench.runs a, bench.runs b WHERE a.stage = 'peak' AND b.stage = 'peak' AND a.mix = 'A' AND b.mix = 'B';
SQL
}
mkdir -p "$(dirname "$out")"
report | tee "$out"

# The chart: the latency distribution of both mixes at the peak, as a CDF
# and as the share of transactions slower than x (both log x)
mkdir -p "$(dirname "$plot")"
for mix in A B; do
	awk '{print $3 / 1000}' "$BENCH_WORK/$mix.peak.log" | sort -g >"$BENCH_WORK/$mix.sorted"
	awk -v n="$(wc -l <"$BENCH_WORK/$mix.sorted")" \
		'NR == 1 || NR % int(n / 2000 + 1) == 0 || NR > n - 2000 {print $1, NR / n, (n - NR + 1) / n}' \
		"$BENCH_WORK/$mix.sorted" >"$BENCH_WORK/$mix.cdf"
done
gnuplot <<GNUPLOT
set terminal pngcairo size 1200,550 font ",10" noenhanced
set output "$plot"
set multiplot layout 1,2 title "pg_shorturl at the design guide's peak, $PEAK/s for ${peak_seconds}s ($clients clients; latency from the scheduled start)"
set logscale x
set xlabel "latency, ms (log)"
set grid
set key bottom right
set title "CDF"
set ylabel "share of transactions <= x"
set yrange [0:1]
set arrow 1 from $P99_LIMIT_MS, graph 0 to $P99_LIMIT_MS, graph 1 nohead dt 2 lc rgb "#000000"
set label 1 "$P99_LIMIT_MS ms" at $P99_LIMIT_MS, graph 0.5 offset 0.5, 0
plot "$BENCH_WORK/A.cdf" using 1:2 with lines lw 2 lc rgb "#228833" title "A: 99% resolve + 1% shorten", \
     "$BENCH_WORK/B.cdf" using 1:2 with lines lw 2 lc rgb "#999999" title "B: 99% SELECT + 1% INSERT"
set title "tail: share of transactions >= x"
set logscale y
set yrange [*:1]
set format y "%g"
set ylabel "share of transactions >= x (log)"
set key top right
plot "$BENCH_WORK/A.cdf" using 1:3 with lines lw 2 lc rgb "#228833" title "A: 99% resolve + 1% shorten", \
     "$BENCH_WORK/B.cdf" using 1:3 with lines lw 2 lc rgb "#999999" title "B: 99% SELECT + 1% INSERT", \
     0.01 with lines dt 3 lc rgb "#000000" title "p99"
unset multiplot
GNUPLOT
echo "chart: $plot"
