#!/bin/bash
# test/bench/scanner.sh: a simulated code scanner against resolve()'s scan
# limit (issue 15).
#
# BENCH_LINKS links (1,000,000) are made with shorturl.shorten(url) in one
# statement, after set_code_width(BENCH_WIDTH) (7, the default of a new
# database; the script checks that every generated code has that width).
# Then one client, 'scanner', guesses BENCH_GUESSES (1,000,000) codes drawn
# uniformly from the whole code space of that width: base62_encode(
# floor(random() * 62^w), w), the space generated codes fill, each through
# shorturl.resolve(code, NULL, client => ...), and the non-NULL answers are
# counted.  All of it server-side, in one PL/pgSQL call (bench.scan): the
# first BENCH_PROBE (10,000) guesses one at a time, reading
# shorturl.stats.scan_lookups_blocked after each, so the guess the block
# began at is known; the rest in one SELECT count(resolve(...)) over
# generate_series.  Two runs, each as its own client name (so one's misses
# do not count against the other):
#
#   no limit   SET shorturl.scan_limit = 0 (as the superuser), client
#              'scanner-off'
#   limit      the defaults, shorturl.scan_limit misses a minute and a
#              shorturl.scan_cooldown block, client 'scanner-on'; afterwards
#              a real code is resolved as 'scanner-on' (NULL while blocked)
#              and as another client (its URL)
#
# Per run: links found, the expected number from the code-space density,
# guesses x links / 62^w (the density is what estimate()'s max_guess_rate
# bounds; its min_code_length for these links is printed), the guess at
# which the block began, links found before it, blocked lookups and
# clients blocked (shorturl.stats, differences over the run), and the
# guessing rate.
#
# With BENCH_DENSE_WIDTH (default 4; 0 skips it) the same two runs follow in
# a second database, "dense", whose BENCH_LINKS links have codes of that
# width: at 1,000,000 links in 62^4 = 14,776,336 codes the density is 6.8%,
# so a scanner without a limit finds tens of thousands of links, and the
# block's effect is visible in the count.
#
# A benchmark never fails on time.  If the installed extension's resolve()
# has no client argument, only the no-limit runs are made, with
# resolve(code, NULL) (and the report says so).
#
#   BENCH_LINKS        links (default 1000000)
#   BENCH_GUESSES      guesses per run (default 1000000)
#   BENCH_WIDTH        code width of the links (default 7)
#   BENCH_DENSE_WIDTH  code width of the dense variant (default 4; 0: none)
#   BENCH_PROBE        guesses made one at a time, watching for the block
#                      (default 10000)
#   BENCH_OUT          the report, also written here (default
#                      test/bench/results/scanner-<date>.txt)
#   BENCH_NO_BUILD     set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
started=$(date +%s)
links=${BENCH_LINKS:-1000000}
guesses=${BENCH_GUESSES:-1000000}
width=${BENCH_WIDTH:-7}
dense_width=${BENCH_DENSE_WIDTH:-4}
probe=${BENCH_PROBE:-10000}
out=${BENCH_OUT:-$BENCH_DIR/results/scanner-$(date -u +%Y-%m-%d).txt}

bench_start
ext_version=$(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'")
lib_file=$("$PG_BIN/pg_config" --pkglibdir)/pg_shorturl.so
lib_id="$lib_file, $(stat -c '%s bytes, modified %y' "$lib_file" | cut -d. -f1) UTC"
has_client=$(bench_psql -Atc "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'resolve'
                                             AND pronamespace = 'shorturl'::regnamespace AND 'client' = ANY (proargnames))")
has_stats=$(bench_psql -Atc "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'stats'
                                            AND pronamespace = 'shorturl'::regnamespace
                                            AND 'scan_lookups_blocked' = ANY (proargnames))")
if [ "$has_client" = t ]; then
	resolve_call='shorturl.resolve(%s, NULL, client => client)'
	settings=$(bench_psql -Atc "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
	                            FROM pg_settings WHERE name ~ '^shorturl\.scan'")
else
	resolve_call='shorturl.resolve(%s, NULL)'
	settings='(none: no scan limit in this version)'
fi
if [ "$has_stats" = t ]; then
	blocked_expr='(SELECT scan_lookups_blocked FROM shorturl.stats())'
	clients_expr='(SELECT scan_clients_blocked FROM shorturl.stats())'
else
	blocked_expr='NULL::bigint' clients_expr='NULL::bigint'
fi
# shellcheck disable=SC2059
guess_call=$(printf "$resolve_call" 'shorturl.base62_encode(floor(random() * space)::bigint, width)')

# setup_db DB WIDTH: the extension (in a second database), the links, and
# bench.scan(), the scanner
setup_db() {
	local db=$1 w=$2 widths
	if [ "$db" != postgres ]; then
		bench_psql -q -c "CREATE DATABASE $db"
		bench_psql -q -d "$db" -c 'CREATE EXTENSION pg_shorturl' -c 'CREATE SCHEMA bench'
	fi
	say "$db: $links links with codes of width $w"
	bench_psql -q -d "$db" >/dev/null <<SQL
SELECT shorturl.set_code_width($w);
SELECT count(shorturl.shorten('https://example.com/articles/' || md5(i::text))) FROM generate_series(1, $links) i;
VACUUM ANALYZE shorturl.links;
CHECKPOINT;
SQL
	widths=$(bench_psql -d "$db" -Atc "SELECT string_agg(w || ': ' || n, ', ' ORDER BY w) FROM
	                                   (SELECT length(code) AS w, count(*) AS n FROM shorturl.links GROUP BY 1) x")
	[ "$widths" = "$w: $links" ] || die "the codes of $db have widths (width: count) $widths, not $w: $links"
	bench_psql -q -d "$db" <<SQL
CREATE FUNCTION bench.scan(guesses int, width int, client text, probe int,
                           OUT hits bigint, OUT blocked_at int, OUT found_before_block bigint,
                           OUT blocked_lookups bigint, OUT clients_blocked bigint, OUT ms float8)
LANGUAGE plpgsql AS \$\$
DECLARE
    space CONSTANT float8 := 62::float8 ^ width;
    b0 CONSTANT bigint := $blocked_expr;
    c0 CONSTANT bigint := $clients_expr;
    t0 CONSTANT timestamptz := clock_timestamp();
    i int := 0;
BEGIN
    hits := 0;
    -- one at a time, watching for the first blocked lookup
    WHILE i < least(probe, guesses) AND blocked_at IS NULL LOOP
        i := i + 1;
        IF $guess_call IS NOT NULL THEN
            hits := hits + 1;
        END IF;
        IF $blocked_expr > b0 THEN
            blocked_at := i;
            found_before_block := hits;
        END IF;
    END LOOP;
    -- the rest in one statement
    hits := hits + (SELECT count($guess_call) FROM generate_series(i + 1, guesses));
    blocked_lookups := $blocked_expr - b0;
    clients_blocked := $clients_expr - c0;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END \$\$;
SQL
}

bench_psql -q -c 'CREATE TABLE bench.scan_runs (scenario text, db text, width int, links bigint, guesses bigint, lim text,
                                                 found bigint, blocked_at int, found_before_block bigint,
                                                 blocked_lookups bigint, clients_blocked bigint, ms float8,
                                                 min_code_length int, blocked_real text, other_real text, ord serial)'

# scan_run SCENARIO DB WIDTH LIMIT: one run of the scanner
scan_run() {
	local scenario=$1 db=$2 w=$3 lim=$4 client set='' row code blocked_real=NULL other_real=NULL est
	if [ "$lim" = off ]; then
		client=scanner-off
		[ "$has_client" = t ] && set='SET shorturl.scan_limit = 0'
	else
		client=scanner-on
	fi
	say "$scenario: $guesses guesses as '$client', limit $lim"
	row=$(bench_psql -d "$db" -qAt -F , ${set:+-c "$set"} \
		-c "SELECT * FROM bench.scan($guesses, $w, '$client', $probe)")
	if [ "$lim" = on ]; then
		# a real code, as the blocked client and as another one
		code=$(bench_psql -d "$db" -Atc 'SELECT code FROM shorturl.links ORDER BY id LIMIT 1')
		blocked_real=$(bench_psql -d "$db" -Atc "SELECT quote_literal('$code -> ' || coalesce(shorturl.resolve('$code', NULL, client => '$client'), 'NULL'))")
		other_real=$(bench_psql -d "$db" -Atc "SELECT quote_literal('$code -> ' || coalesce(shorturl.resolve('$code', NULL, client => 'someone-else'), 'NULL'))")
	fi
	est=$(bench_psql -Atc "SELECT min_code_length FROM shorturl.estimate($links, 1, 1, 100, 1 / 365.0)")
	IFS=, read -r found blocked_at fbb bl cb ms <<<"$row"
	bench_psql -q -c "INSERT INTO bench.scan_runs (scenario, db, width, links, guesses, lim, found, blocked_at, found_before_block,
	                                               blocked_lookups, clients_blocked, ms, min_code_length, blocked_real, other_real)
	                  VALUES ('$scenario', '$db', $w, $links, $guesses, '$lim', $found, ${blocked_at:-NULL}, ${fbb:-NULL},
	                          ${bl:-NULL}, ${cb:-NULL}, $ms, $est, $blocked_real, $other_real)"
}

setup_db postgres "$width"
scan_run "width $width" postgres "$width" off
if [ "$has_client" = t ]; then scan_run "width $width" postgres "$width" on; fi
if [ "$dense_width" -gt 0 ]; then
	setup_db dense "$dense_width"
	scan_run "dense, width $dense_width" dense "$dense_width" off
	if [ "$has_client" = t ]; then scan_run "dense, width $dense_width" dense "$dense_width" on; fi
fi

report() {
	echo "pg_shorturl $ext_version scanner benchmark (test/bench/scanner.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - started) / 60)) min"
	bench_machine
	echo "library: $lib_id"
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it"
	echo "settings: $settings"
	[ "$has_client" = t ] || echo "NOTE: the installed resolve() has no client argument: no limited runs, resolve(code, NULL) guessed"
	echo "one client guesses codes uniformly from the 62^w codes of the links' width (base62_encode(floor(random() * 62^w), w)),"
	echo "through resolve(code, NULL, client => ...), server-side (PL/pgSQL: the first $probe one at a time, watching"
	echo "stats.scan_lookups_blocked, the rest in one SELECT); expected = guesses x links / 62^w (the code-space density);"
	echo "before the block: guesses made before the first blocked lookup, and the links they found (expected: x density);"
	echo "blocked lookups, clients blocked: shorturl.stats, over the run; no limit: SET shorturl.scan_limit = 0"
	echo
	bench_psql <<'SQL'
SELECT scenario, links, width, guesses, CASE lim WHEN 'off' THEN 'no limit' ELSE 'limit' END AS "scan limit",
       found AS "links found",
       round((guesses * links / 62::numeric ^ width), 3) AS "expected",
       trim(to_char(links / 62::float8 ^ width, '9.99EEEE')) AS "density",
       blocked_at - 1 AS "guesses before block", found_before_block AS "found before block",
       round(((blocked_at - 1) * links / 62::numeric ^ width), 6) AS "expected before block",
       blocked_lookups AS "blocked lookups", clients_blocked AS "clients blocked",
       round((ms / 1000)::numeric, 1) AS "s", round(guesses * 1000 / ms) AS "guesses/s"
FROM bench.scan_runs ORDER BY ord;
SQL
	bench_psql -At <<'SQL'
SELECT format('%s: estimate(%s URLs) gives min_code_length %s (density <= 1e-4); at width %s the density is %s, so %s guesses'
              ' expect %s links (Poisson: at least one with probability %s %%)',
              scenario, links, min_code_length, width, trim(to_char(links / 62::float8 ^ width, '9.99EEEE')), guesses,
              round(guesses * links / 62::numeric ^ width, 3),
              round((100 * (1 - exp(-least(guesses * links / 62::float8 ^ width, 700))))::numeric, 1))
FROM bench.scan_runs WHERE lim = 'off' ORDER BY ord;
SELECT format('%s: a patient client that misses at most shorturl.scan_limit = %s times a minute is never blocked: %s misses,'
              ' so %s guesses a day, which at this density find %s links a day; %s guesses take %s days (per client'
              ' name: many names multiply it)',
              scenario, s.scan_limit, s.scan_limit * 1440, round(g.per_day), round((g.per_day * d.density)::numeric, 4), guesses,
              round((guesses / g.per_day)::numeric, 1))
FROM bench.scan_runs,
     (SELECT nullif(current_setting('shorturl.scan_limit', true), '')::int AS scan_limit) s,
     LATERAL (SELECT links / 62::float8 ^ width AS density) d,
     LATERAL (SELECT s.scan_limit * 1440 / (1 - d.density) AS per_day) g
WHERE lim = 'on' AND s.scan_limit > 0 ORDER BY ord;
SELECT format('%s, after the limited run: a real code as the blocked client: %s; as another client: %s',
              scenario, coalesce(blocked_real, 'NULL'), coalesce(other_real, 'NULL'))
FROM bench.scan_runs WHERE lim = 'on' ORDER BY ord;
SELECT format('%s: the limit cut the links found from %s to %s (%s of the no-limit count)', o.scenario, o.found, l.found,
              CASE WHEN o.found > 0 THEN round(100.0 * l.found / o.found, 3) || ' %' ELSE '-' END)
FROM bench.scan_runs o JOIN bench.scan_runs l ON l.scenario = o.scenario AND l.lim = 'on' WHERE o.lim = 'off' ORDER BY o.ord;
SQL
}
mkdir -p "$(dirname "$out")"
report | tee "$out"
