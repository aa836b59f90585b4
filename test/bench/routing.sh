#!/bin/bash
# test/bench/routing.sh: the routing functions against PostgreSQL's own
# hashtext() and hashint8() on the same keys, interleaved rounds.
#
# The keys are 7-character base62 codes (text) and the bigints behind them.
# hash64, shard_mod and jump_hash are compared with hashtext (hash64 of a
# bigint with hashint8); route(key) runs over shorturl.shards holding 4, 16
# and 64 shards, once with equal weights (route_pick's best case: one log()
# for the whole map) and once with all-distinct weights (its worst case: one
# log() per shard), and the pure route(key, names, weights) over 16 shards.
# Goals (from the issue): hash64 and jump_hash at most 1.2x hashtext, route
# over 16 shards at most 3x.  A benchmark never fails on time: the goals are
# reported, not enforced.
#
#   BENCH_ROWS    rows per query (default 5000000)
#   BENCH_ROUNDS  rounds (default 7)
#   BENCH_PLOT    bar chart of net ns/call, PNG (default
#                 test/bench/results/routing.png)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rows=${BENCH_ROWS:-5000000}
rounds=${BENCH_ROUNDS:-7}
plot=${BENCH_PLOT:-$BENCH_DIR/results/routing.png}

# Goals from the issue, as multiples of the built-in's net cost per call
# (hashtext; hashint8 for hash64 of a bigint)
HASH_GOAL=1.2
ROUTE_GOAL=3

# pure_map N prints the names and weights arrays of the pure route form
pure_map() {
	echo "ARRAY(SELECT format('shard%s', lpad(g::text, 2, '0')) FROM generate_series(1, $1) g),
	      ARRAY(SELECT 1::float8 FROM generate_series(1, $1) g)"
}

bench_start
bench_psql -q <<SQL
-- random ids below 62^7, so every code has exactly 7 characters
CREATE TABLE bench.src AS
SELECT i, shorturl.base62_encode(i, 7) AS code
FROM (SELECT (random() * (62::float8 ^ 7 - 1))::bigint AS i
      FROM generate_series(1, $rows)) s;
VACUUM ANALYZE bench.src;

-- The pure form's arrays, pasted into its query as constants, as an
-- application would write them.
CREATE TABLE bench.pure (names text[], weights float8[]);
INSERT INTO bench.pure SELECT $(pure_map 16);

-- use_map fills shorturl.shards with n shards named shard01, shard02, ...
-- of weight 1 each, or of weights 1, 2, ..., n.  Its trigger invalidates
-- route()'s cached map at the end of the statement, so the next statement of
-- the same case routes over the new map.
CREATE FUNCTION bench.use_map(n int, distinct_weights bool) RETURNS int
LANGUAGE sql AS \$\$
    DELETE FROM shorturl.shards;
    INSERT INTO shorturl.shards (name, weight)
    SELECT format('shard%s', lpad(g::text, 2, '0')),
           CASE WHEN distinct_weights THEN g ELSE 1 END
    FROM generate_series(1, n) g;
    SELECT n;
\$\$;

-- warm the buffer cache
\o /dev/null
SELECT count(*) FROM bench.src;
\o
SQL

# A route case runs two statements: use_map, then the timed scan.  Its
# baseline does the same with use_map(64, true) and a plain scan, so the net
# cost per call leaves out the map swap (about 2 ms; that 64 shards or 4 are
# swapped in changes the net figure by well under 1 ns per call).
route_case() {
	local n=$1 dist=$2 label=$3
	printf " ('%s', 'route', 'SELECT bench.use_map(%d, %s); SELECT count(shorturl.route(code)) FROM bench.src', %d, 'scan (code), swap map', 'hashtext(code)'),\n" \
		"$label" "$n" "$dist" "$rows"
}

bench_psql -q <<SQL
INSERT INTO bench.cases (label, grp, query, calls, baseline, reference) VALUES
 ('scan (code)',             'hash text', 'SELECT count(code) FROM bench.src', $rows, NULL, NULL),
 ('hashtext(code)',          'hash text', 'SELECT count(hashtext(code)) FROM bench.src', $rows, 'scan (code)', 'hashtext(code)'),
 ('hash64(code)',            'hash text', 'SELECT count(shorturl.hash64(code)) FROM bench.src', $rows, 'scan (code)', 'hashtext(code)'),
 ('scan (i)',                'hash bigint', 'SELECT count(i) FROM bench.src', $rows, NULL, NULL),
 ('hashint8(i)',             'hash bigint', 'SELECT count(hashint8(i)) FROM bench.src', $rows, 'scan (i)', 'hashint8(i)'),
 ('hash64(i)',               'hash bigint', 'SELECT count(shorturl.hash64(i)) FROM bench.src', $rows, 'scan (i)', 'hashint8(i)'),
 ('shard_mod(code, 16)',     'shard', 'SELECT count(shorturl.shard_mod(code, 16)) FROM bench.src', $rows, 'scan (code)', 'hashtext(code)'),
 ('jump_hash(code, 16)',     'shard', 'SELECT count(shorturl.jump_hash(code, 16)) FROM bench.src', $rows, 'scan (code)', 'hashtext(code)'),
 ('scan (code), swap map',   'route', 'SELECT bench.use_map(64, true); SELECT count(code) FROM bench.src', $rows, NULL, NULL),
$(route_case 4 false 'route(code), 4 equal')
$(route_case 4 true 'route(code), 4 distinct')
$(route_case 16 false 'route(code), 16 equal')
$(route_case 16 true 'route(code), 16 distinct')
$(route_case 64 false 'route(code), 64 equal')
$(route_case 64 true 'route(code), 64 distinct' | sed '$ s/,$/;/')
INSERT INTO bench.cases (label, grp, query, calls, baseline, reference)
SELECT 'route(code, names, weights), 16 equal', 'route',
       format('SELECT count(shorturl.route(code, %L::text[], %L::float8[])) FROM bench.src',
              names, weights),
       $rows, 'scan (code)', 'hashtext(code)'
FROM bench.pure;
SQL

# Check that a route case really routes over the map it installs.
check=$(bench_psql -Atc "SELECT bench.use_map(4, true); SELECT count(DISTINCT shorturl.route(code)) FROM (SELECT code FROM bench.src LIMIT 10000) s")
[ "$(tail -n1 <<<"$check")" = 4 ] || die "route cases do not see the map use_map installs"

bench_psql -q -c "CALL bench.run($rounds)"
bench_machine
echo "rows per query: $rows, rounds: $rounds (medians); keys: random 7-character base62 codes and the bigints behind them"
bench_psql -c 'SELECT * FROM bench.report'

echo
echo "goals (net ratio: net ns/call against the built-in's on the same keys):"
bench_psql -At <<SQL
SELECT format('  %-40s %6s x (%s vs %s ns/call)  goal <= %s x  %s',
              c."case", c."net ratio", c."net ns/call", r."net ns/call", g.goal,
              CASE WHEN c."net ratio" <= g.goal THEN 'met'
                   ELSE format('missed: %s x the goal', round(c."net ratio" / g.goal, 1)) END)
FROM (VALUES (1, 'hash64(code)', 'hashtext(code)', $HASH_GOAL),
             (2, 'hash64(i)', 'hashint8(i)', $HASH_GOAL),
             (3, 'jump_hash(code, 16)', 'hashtext(code)', $HASH_GOAL),
             (4, 'route(code), 16 equal', 'hashtext(code)', $ROUTE_GOAL),
             (5, 'route(code), 16 distinct', 'hashtext(code)', $ROUTE_GOAL),
             (6, 'route(code, names, weights), 16 equal', 'hashtext(code)', $ROUTE_GOAL))
     g(ord, "case", ref, goal)
JOIN bench.report c USING ("case")
JOIN bench.report r ON r."case" = g.ref
ORDER BY g.ord;
SQL
echo "  (a net figure of a few ns is within the noise of a shared machine; repeat runs and compare medians)"

# The chart: net ns/call per case on a log scale, coloured by group, with
# the goals drawn as lines at 1.2x and 3x hashtext's net cost.
mkdir -p "$(dirname "$plot")"
data=$BENCH_WORK/routing.dat
bench_psql -At -F $'\t' >"$data" <<SQL
SELECT "case", greatest("net ns/call", 0.1),
       CASE "group" WHEN 'hash text' THEN 1 WHEN 'hash bigint' THEN 2
                    WHEN 'shard' THEN 3 ELSE 4 END
FROM bench.report
SQL
ref=$(bench_psql -Atc "SELECT \"net ns/call\" FROM bench.report WHERE \"case\" = 'hashtext(code)'")
gnuplot <<GNUPLOT
set terminal pngcairo size 1280,760 font ",10" noenhanced
set output "$plot"
set title "pg_shorturl routing: net ns per call, median of $rounds rounds over $rows rows"
set datafile separator "\t"
set style fill solid 0.85 border -1
set boxwidth 0.7
set logscale y
set yrange [0.1:*]
set xrange [-0.6:*]
set ylabel "net ns/call (log scale)"
set xtics rotate by -35 left nomirror
set grid ytics
set bmargin 13
set rmargin 24
set key top left
set palette defined (1 "#4477aa", 2 "#66ccee", 3 "#228833", 4 "#ee6677")
unset colorbox
plot "$data" using 0:2:3:xtic(1) with boxes lc palette notitle, \
     "" using 0:(\$2 * 1.2):(sprintf("%.1f", \$2)) with labels notitle, \
     $ref * $HASH_GOAL with lines dt 2 lw 1.5 lc rgb "#228833" title "1.2 x hashtext: goal of hash64, jump_hash", \
     $ref * $ROUTE_GOAL with lines dt 2 lw 1.5 lc rgb "#cc3311" title "3 x hashtext: goal of route over 16 shards"
GNUPLOT
echo "chart: $plot"
