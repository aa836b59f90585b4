#!/bin/bash
# test/bench/counters.sh: click counting in shared memory (issue 5) against
# the limit, a plain lookup, and against naive counting in the table.
#
# The server preloads the library and its worker serves the bench database
# (shorturl.database = 'postgres', flushes every second, the default), so
# resolve() counts a click in shared memory.  Every case is a pgbench run
# (-M prepared, over the Unix socket):
#
#   uniform keys over BENCH_LINKS links
#     limit    SELECT url FROM shorturl.links WHERE code = $1
#     resolve  SELECT shorturl.resolve($1)
#     naive    BEGIN; SELECT url ...; UPDATE ... SET visits = visits + 1; COMMIT
#              on a plain table: shorturl.links's columns and indexes, plus
#              the count in the row (visits, last_visit_at), as 0.5 had it
#   one hot link
#     limit    the plain SELECT of that row
#     resolve  resolve() of that code
#     naive    UPDATE ... SET visits = visits + 1 ... RETURNING url, with
#              synchronous_commit on, and again off
#
# For each run: TPS, p99 latency (from pgbench's per-transaction log), WAL
# bytes per click (pg_current_wal_insert_lsn() before the run and after a
# shorturl.flush() that writes the run's last clicks, so the worker's
# flushes are included), row versions written per click and dead tuples
# after the run in the table the case writes (pg_stat_user_tables, inserts
# plus updates: shorturl.visit_counts, where resolve()'s flushes add to a
# link's count, the plain table for naive counting; autovacuum is off for
# the tables and each run starts from a VACUUM).  Every round runs every case once, in an order that
# rotates from round to round; figures are medians over rounds.  Then a
# dedicated measurement: the WAL of 10,000 clicks by themselves (flushes
# held back by shorturl.flush_interval = 1h, pages already logged since the
# last checkpoint by a warm-up batch), and that of the flush that follows.
#
# Goals (from the issue): resolve at least 0.9x its plain-SELECT limit,
# uniform and hot alike; WAL per click near zero (naive counting: about
# 170 bytes).  Also reported: resolve's multiple of naive hot-row counting
# with synchronous_commit on and off.  A benchmark never fails on time: the
# goals are reported, not enforced.
#
#   BENCH_SECONDS      seconds per pgbench run (default 10)
#   BENCH_ROUNDS       rounds (default 5)
#   BENCH_CLIENTS      pgbench clients (default 8)
#   BENCH_THREADS      pgbench threads (default 2)
#   BENCH_LINKS        links of the uniform cases (default 100000)
#   BENCH_MAX_PENDING  shorturl.max_pending_links (default 200000: the
#                      links clicked between two flushes must fit, see the
#                      output's note)
#   BENCH_PLOT         bar chart of TPS, PNG (default
#                      test/bench/results/counters.png)
#   BENCH_OUT          the report, also written here (default
#                      test/bench/results/counters-<date>.txt)
#   BENCH_NO_BUILD     set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-100000}
max_pending=${BENCH_MAX_PENDING:-200000}
plot=${BENCH_PLOT:-$BENCH_DIR/results/counters.png}
out=${BENCH_OUT:-$BENCH_DIR/results/counters-$(date -u +%Y-%m-%d).txt}

# Goals from the issue: resolve's rate as a multiple of the plain SELECT's,
# and the WAL a click may write by itself (bytes; "near zero")
RESOLVE_GOAL=0.9
WAL_GOAL=1

# Clicks of the dedicated WAL measurement
WAL_CLICKS=10000

# Codes are decimal numbers from FIRST_CODE on, so a pgbench script can make
# one with \set; 1000000 gives 7 characters, the width of generated codes.
# The hot link is the first.
FIRST_CODE=1000000
HOT=$((FIRST_CODE + 1))

conf=$(mktemp /tmp/pg_shorturl-counters.XXXXXX.conf)
cat >"$conf" <<EOF
shorturl.database = 'postgres'
shorturl.max_pending_links = $max_pending
EOF
bench_start "$conf"
rm -f "$conf"

bench_psql -q <<SQL
-- The links, with URLs of a realistic length (61 bytes), stored as
-- aliases would be.
INSERT INTO shorturl.links (id, code, url, is_alias)
SELECT nextval('shorturl.link_id_seq'), ($FIRST_CODE + i)::text,
       'https://example.com/articles/' || md5(i::text), true
FROM generate_series(1, $links) i;

-- Naive counting's table: the same columns, indexes and rows, and the
-- count in the row, where 0.5 kept it (shorturl.links has no count since
-- 0.6: it lives in shorturl.visit_counts).
CREATE TABLE bench.plain_links (LIKE shorturl.links INCLUDING ALL);
ALTER TABLE bench.plain_links
    ADD COLUMN visits bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_visit_at timestamptz;
INSERT INTO bench.plain_links (id, code, domain, url, created_at, is_alias)
SELECT id, code, domain, url, created_at, is_alias FROM shorturl.links;

-- Dead tuples are counted per run: no autovacuum in between.
ALTER TABLE shorturl.links SET (autovacuum_enabled = off);
ALTER TABLE shorturl.visit_counts SET (autovacuum_enabled = off);
ALTER TABLE bench.plain_links SET (autovacuum_enabled = off);
VACUUM ANALYZE shorturl.links;
VACUUM ANALYZE shorturl.visit_counts;
VACUUM ANALYZE bench.plain_links;
SQL
mode=$(bench_psql -Atc 'SELECT mode FROM shorturl.stats')
[ "$mode" = shared ] || die "the bench database counts clicks in mode \"$mode\", not shared"

# The pgbench scripts
S=$BENCH_WORK/scripts
mkdir -p "$S"
uniform="\\set i random($((FIRST_CODE + 1)), $((FIRST_CODE + links)))"
# (every lookup names the domain too, as resolve() does: codes are unique per domain)
printf "%s\nSELECT url FROM shorturl.links WHERE code = :i AND domain = '';\n" "$uniform" >"$S/select_u.sql"
printf '%s\nSELECT shorturl.resolve(:i);\n' "$uniform" >"$S/resolve_u.sql"
printf "%s\nBEGIN;\nSELECT url FROM bench.plain_links WHERE code = :i AND domain = '';\nUPDATE bench.plain_links SET visits = visits + 1 WHERE code = :i AND domain = '';\nCOMMIT;\n" \
	"$uniform" >"$S/naive_u.sql"
printf "SELECT url FROM shorturl.links WHERE code = '%s' AND domain = '';\n" "$HOT" >"$S/select_h.sql"
printf "SELECT shorturl.resolve('%s');\n" "$HOT" >"$S/resolve_h.sql"
printf "UPDATE bench.plain_links SET visits = visits + 1 WHERE code = '%s' AND domain = '' RETURNING url;\n" "$HOT" >"$S/naive_h.sql"

# The cases: group, label, short label (chart), script, synchronous_commit,
# the table the case writes (or, for the limit, reads), and the case it is
# compared with (its limit, by number).
groups=() labels=() shorts=() files=() syncs=() tables=() refs=()
add_case() {
	groups+=("$1"); labels+=("$2"); shorts+=("$3"); files+=("$4"); syncs+=("$5")
	tables+=("$6"); refs+=("$7")
}
add_case uniform 'limit: SELECT url ... WHERE code' 'limit (SELECT)' select_u.sql on shorturl.links 0
add_case uniform 'resolve(code)' 'resolve' resolve_u.sql on shorturl.visit_counts 0
add_case uniform 'naive: SELECT, UPDATE visits + 1' 'naive SELECT+UPDATE' naive_u.sql on bench.plain_links 0
add_case hot 'limit: SELECT url ... WHERE code' 'limit (SELECT)' select_h.sql on shorturl.links 3
add_case hot 'resolve(code)' 'resolve' resolve_h.sql on shorturl.visit_counts 3
add_case hot 'naive: UPDATE ... RETURNING, sync on' 'naive UPDATE, sync on' naive_h.sql on bench.plain_links 3
add_case hot 'naive: UPDATE ... RETURNING, sync off' 'naive UPDATE, sync off' naive_h.sql off bench.plain_links 3
n=${#labels[@]}

{
	echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, grp text, label text, short text, reference int);'
	echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, p99_ms float8, tx bigint,
	        wal_bytes numeric, updated bigint, dead bigint, fallbacks bigint);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.pgb_cases VALUES (%d, '%s', '%s', '%s', %d);\\n" \
			"$i" "${groups[$i]}" "${labels[$i]}" "${shorts[$i]}" "${refs[$i]}"
	done
} | bench_psql -q

# counts TABLE prints the row versions written into the table so far
# (inserts and updates: a flush inserts a link's first count, then updates
# it) and the server's
# synchronous fallbacks, once the statistics of finished sessions and of
# the worker's latest flush are in (the worker reports its statistics after
# each flush, at most once a second).
counts() {
	sleep 2
	bench_psql -At -F ' ' -c "SELECT n_tup_ins + n_tup_upd, (SELECT sync_fallbacks FROM shorturl.stats)
	                          FROM pg_stat_user_tables WHERE relid = '$1'::regclass"
}

# pgb ID ROUND runs case ID once and records its figures.
pgb() {
	local id=$1 round=$2 table=${tables[$1]} log=$BENCH_WORK/log.$1.$2
	local lsn0 lsn1 upd0 upd1 fb0 fb1 dead tps tx p99
	mkdir -p "$log"
	# a clean start: no clicks pending, no dead tuples
	bench_psql -q -c 'SELECT shorturl.flush()' -c "VACUUM $table" >/dev/null
	read -r upd0 fb0 < <(counts "$table")
	lsn0=$(bench_psql -Atc 'SELECT pg_current_wal_insert_lsn()')
	PGOPTIONS="-c synchronous_commit=${syncs[$id]}" \
		"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-l --log-prefix="$log/tx" -f "$S/${files[$id]}" >"$log/out" 2>&1 ||
		{ cat "$log/out" >&2; die "pgbench failed in case \"${labels[$id]}\""; }
	# the run's clicks still in shared memory are part of its WAL
	lsn1=$(bench_psql -At -c 'SELECT shorturl.flush()' -c 'SELECT pg_current_wal_insert_lsn()' | tail -n1)
	read -r upd1 fb1 < <(counts "$table")
	dead=$(bench_psql -Atc "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = '$table'::regclass")
	tps=$(awk '/^tps = / {print $3}' "$log/out")
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$log/out")
	# column 3 of the log is the transaction's latency in microseconds
	p99=$(cat "$log"/tx.* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1} END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; printf "%.3f", v[i] / 1000}')
	rm -rf "$log"
	bench_psql -q -c "INSERT INTO bench.pgb VALUES ($id, $round, $tps, $p99, $tx,
	                  pg_wal_lsn_diff('$lsn1', '$lsn0'), $upd1 - $upd0, $dead, $fb1 - $fb0)"
}

say "$n cases x $rounds rounds x ${seconds}s"
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		pgb $(((k + r) % n)) "$r"
	done
done

# The dedicated WAL measurement: WAL_CLICKS clicks with flushes held back,
# then the flush.  A warm-up batch first logs the pages the clicks touch
# (the first change of a page after a checkpoint logs the whole page), and a
# VACUUM removes the row versions its flush left.
bench_psql -q -c "ALTER SYSTEM SET shorturl.flush_interval = '1h'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
bench_psql -q -c 'CREATE TABLE bench.wal (id int, clicks bigint, click_bytes numeric, flush_bytes numeric)'
bench_psql -q -c 'SELECT shorturl.flush()' -c 'VACUUM shorturl.links' -c 'VACUUM shorturl.visit_counts' \
	-c 'VACUUM bench.plain_links' -c CHECKPOINT >/dev/null
per_client=$((WAL_CLICKS / clients))
for id in 1 2 4 5 6; do
	batch() {
		PGOPTIONS="-c synchronous_commit=${syncs[$id]}" \
			"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -t "$per_client" \
			-f "$S/${files[$id]}" >"$BENCH_WORK/wal.out" 2>&1 ||
			{ cat "$BENCH_WORK/wal.out" >&2; die "pgbench failed in case \"${labels[$id]}\""; }
	}
	batch
	# VACUUM, so the batch does not prune the dead row versions the warm-up's
	# flush left (a read that prunes a page writes WAL)
	lsn0=$(bench_psql -At -c 'SELECT shorturl.flush()' -c "VACUUM ${tables[$id]}" \
		-c 'SELECT pg_current_wal_insert_lsn()' | tail -n1)
	batch
	lsn1=$(bench_psql -Atc 'SELECT pg_current_wal_insert_lsn()')
	lsn2=$(bench_psql -At -c 'SELECT shorturl.flush()' -c 'SELECT pg_current_wal_insert_lsn()' | tail -n1)
	bench_psql -q -c "INSERT INTO bench.wal VALUES ($id, $((per_client * clients)),
	                  pg_wal_lsn_diff('$lsn1', '$lsn0'), pg_wal_lsn_diff('$lsn2', '$lsn1'))"
done
bench_psql -q -c 'ALTER SYSTEM RESET shorturl.flush_interval' -c 'SELECT pg_reload_conf()' >/dev/null

bench_psql -q <<'SQL'
CREATE VIEW bench.pgb_report AS
WITH m AS (
    SELECT c.id, c.grp, c.label, c.short, c.reference, count(*) AS rounds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps) AS tps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.wal_bytes / p.tx) AS wal,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.updated::float8 / p.tx) AS upd,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.dead) AS dead,
           sum(p.fallbacks) AS fallbacks
    FROM bench.pgb_cases c JOIN bench.pgb p USING (id)
    GROUP BY c.id, c.grp, c.label, c.short, c.reference
)
SELECT m.id, m.grp AS "keys", m.label AS "case", m.short, m.rounds,
       round(m.tps::numeric, 0) AS "median TPS",
       round((m.tps / r.tps)::numeric, 2) AS "x limit",
       round(m.p99::numeric, 3) AS "p99 ms",
       round(m.wal::numeric, 1) AS "WAL B/click",
       round(m.upd::numeric, 3) AS "rows/click",
       round(m.dead::numeric, 0) AS "dead tuples after",
       m.fallbacks AS "sync fallbacks",
       m.tps AS tps_raw
FROM m JOIN m r ON r.id = m.reference;
SQL

# report prints the figures (kept in $out too)
report() {
	echo "pg_shorturl $(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'") click counters benchmark (test/bench/counters.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "pgbench -M prepared over the Unix socket, $clients clients, $threads threads, ${seconds}s per run, $rounds rounds (medians), cases interleaved"
	echo "uniform: random keys over $links links; hot: one link.  shorturl.flush_interval = 1s, shorturl.max_pending_links = $max_pending"
	echo "WAL B/click: all WAL from the run's start to after a flush() of its last clicks (worker flushes, full-page images and checkpoints included);"
	echo "rows/click: row versions written per click (n_tup_ins + n_tup_upd; resolve: of shorturl.visit_counts, naive: of the plain table);"
	echo "dead tuples after: n_dead_tup of that table at the end (what HOT pruning left)"
	bench_psql -c 'SELECT "keys", "case", rounds, "median TPS", "x limit", "p99 ms", "WAL B/click",
	                      "rows/click", "dead tuples after", "sync fallbacks"
	               FROM bench.pgb_report ORDER BY id'
	echo "WAL of $((per_client * clients)) clicks by themselves (flushes held back; after a warm-up batch and a VACUUM), then of the flush that writes them:"
	bench_psql -c 'SELECT c.grp AS "keys", c.label AS "case", w.clicks,
	                      w.click_bytes AS "WAL bytes, clicks", round(w.click_bytes / w.clicks, 2) AS "B/click",
	                      w.flush_bytes AS "WAL bytes, flush", round(w.flush_bytes / w.clicks, 2) AS "flush B/click"
	               FROM bench.wal w JOIN bench.pgb_cases c USING (id) ORDER BY w.id'
	echo "goals:"
	bench_psql -At <<SQL
SELECT format('  resolve, %-7s keys: %s x its plain-SELECT limit (%s vs %s TPS)  goal >= %s x  %s',
              r."keys", r."x limit", r."median TPS", l."median TPS", $RESOLVE_GOAL,
              CASE WHEN r."x limit" >= $RESOLVE_GOAL THEN 'met'
                   ELSE format('missed by %s%%', round((1 - r."x limit" / $RESOLVE_GOAL) * 100)) END)
FROM bench.pgb_report r JOIN bench.pgb_report l ON l.id = (SELECT reference FROM bench.pgb_cases WHERE id = r.id)
WHERE r."case" = 'resolve(code)' ORDER BY r.id;
SELECT format('  WAL per click, %-7s keys: resolve %s B, naive %s B (%s)  goal: near zero (<= %s B)  %s',
              c.grp, round(r.click_bytes / r.clicks, 2), round(n.click_bytes / n.clicks, 1),
              c2.label, $WAL_GOAL,
              CASE WHEN r.click_bytes / r.clicks <= $WAL_GOAL THEN 'met' ELSE 'missed' END)
FROM bench.wal r JOIN bench.pgb_cases c ON c.id = r.id
JOIN bench.wal n ON n.id = CASE r.id WHEN 1 THEN 2 ELSE 5 END
JOIN bench.pgb_cases c2 ON c2.id = n.id
WHERE r.id IN (1, 4) ORDER BY r.id;
SELECT format('  resolve over naive counting: uniform %s x SELECT+UPDATE; hot %s x UPDATE with sync commit on, %s x with it off',
              round((SELECT tps_raw FROM bench.pgb_report WHERE id = 1)::numeric
                    / (SELECT tps_raw FROM bench.pgb_report WHERE id = 2)::numeric, 1),
              round((SELECT tps_raw FROM bench.pgb_report WHERE id = 4)::numeric
                    / (SELECT tps_raw FROM bench.pgb_report WHERE id = 5)::numeric, 1),
              round((SELECT tps_raw FROM bench.pgb_report WHERE id = 4)::numeric
                    / (SELECT tps_raw FROM bench.pgb_report WHERE id = 6)::numeric, 1));
SQL
	echo "  note: the counters must hold every link clicked between two flushes (shorturl.max_pending_links >= distinct links"
	echo "  clicked per flush_interval); when they are full, clicks are counted in the tables (column \"sync fallbacks\")"
}
mkdir -p "$(dirname "$out")"
report | tee "$out"

# The chart: TPS per case, grouped uniform / hot, log scale
mkdir -p "$(dirname "$plot")"
data=$BENCH_WORK/counters.dat
bench_psql -At -F $'\t' >"$data" <<'SQL'
SELECT id + CASE WHEN "keys" = 'hot' THEN 1 ELSE 0 END, tps_raw,
       CASE WHEN "case" LIKE 'limit%' THEN 1 WHEN "case" LIKE 'resolve%' THEN 2
            WHEN "case" LIKE '%sync off' THEN 4 ELSE 3 END,
       "keys" || ': ' || short
FROM bench.pgb_report ORDER BY id
SQL
gnuplot <<GNUPLOT
set terminal png size 1100,650 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl click counting: TPS (median of $rounds runs of ${seconds}s, $clients clients; log scale)"
set datafile separator "\t"
set style fill solid 0.85 border -1
set boxwidth 0.7
set logscale y
set yrange [100:300000]
set xrange [-0.7:7.7]
set ylabel "transactions per second"
set xtics rotate by -30 left nomirror
set grid ytics
set bmargin 11
set rmargin 12
set linetype 1 lc rgb "#999999"
set linetype 2 lc rgb "#228833"
set linetype 3 lc rgb "#cc3311"
set linetype 4 lc rgb "#ee9977"
set key top right
plot "$data" using 1:2:3:xtic(4) with boxes lc variable notitle, \
     "" using 1:(\$2 * 1.25):(sprintf("%.0f", \$2)) with labels notitle, \
     NaN with boxes lt 1 title "limit: plain SELECT", \
     NaN with boxes lt 2 title "resolve (shared-memory counters)", \
     NaN with boxes lt 3 title "naive counting, sync commit on", \
     NaN with boxes lt 4 title "naive counting, sync commit off"
GNUPLOT
echo "chart: $plot"
