#!/bin/bash
# test/bench/store.sh: the links store under load (issue 4), with pgbench.
#
# Side by side, in one run, each pair on the same server and the same keys:
#
#   write  shorten(url) against a plain INSERT ... RETURNING id into a table
#          built as a team would write shorturl.links by hand: the same
#          columns (id, code, domain, url, created_at, expires_at,
#          max_visits, exhausted_at, disabled_at, disabled_reason,
#          is_alias), a bigint key from a sequence, and codes unique per
#          domain; it lacks shorturl.links's url_hash and the partial
#          indexes the purge walks.  Two such tables: in one the code is
#          the base62 digits of the id (a generated column), so new codes
#          land at the right edge of the unique index; in the other it is
#          a random 7-character code (ON CONFLICT DO NOTHING), landing
#          anywhere in the index, as shorten()'s unguessable codes do.
#          shorten() is compared with the second (issue 12's anchor).
#          Once with synchronous_commit on, where the commit's WAL flush
#          dominates, and once off, where the work of the call shows;
#   read   resolve(code) against the same lookup as a plain
#          SELECT url FROM shorturl.links WHERE code = $1 AND domain = '',
#          over uniformly random keys among BENCH_LINKS links.  This runs
#          in a database the workers do not serve (shorturl.database names
#          only "postgres"), so resolve() counts each click in the tables
#          (mode "sync"): a link without max_visits, as these are, appends a
#          row to shorturl.pending_visits.  That is the limit of counting
#          without the shared-memory counters (test/bench/counters.sh
#          measures those).  resolve() is also run with synchronous_commit
#          off, to separate the commit's flush from the INSERT.
#
# Every case is a pgbench run (-M prepared, over the Unix socket) of
# BENCH_SECONDS seconds; every round runs every case once, in an order that
# rotates from round to round; figures are medians over rounds.  p99 is
# computed from pgbench's per-transaction log.
#
# Goal (issues 4 and 12): shorten at least 0.8x the rate of the plain
# INSERT with a random code.
# A benchmark never fails on time: the goal is reported, not enforced.
#
#   BENCH_SECONDS  seconds per pgbench run (default 10)
#   BENCH_ROUNDS   rounds (default 5)
#   BENCH_CLIENTS  pgbench clients (default 8)
#   BENCH_THREADS  pgbench threads (default 2)
#   BENCH_LINKS    links the read cases pick from (default 100000)
#   BENCH_OUT      the report, also written here (default
#                  test/bench/results/store-<date>.txt)
#   BENCH_NO_BUILD set: use the installed extension as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_before=$(bench_load)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
threads=${BENCH_THREADS:-2}
links=${BENCH_LINKS:-100000}
out=${BENCH_OUT:-$BENCH_DIR/results/store-$(date -u +%Y-%m-%d).txt}

# The goal from the issue: shorten's rate as a multiple of the plain INSERT's
SHORTEN_GOAL=0.8

# Codes of the read cases are decimal numbers from FIRST_CODE on, so a
# pgbench script can make one with \set; 1000000 gives 7 characters, the
# width of generated codes.
FIRST_CODE=1000000

# The database the cases run in: left out of shorturl.database (which,
# empty, would have the workers serve every database), so not served
DB=store

conf=$(mktemp /tmp/pg_shorturl-store.XXXXXX.conf)
echo "shorturl.database = 'postgres'" >"$conf"
bench_start "$conf"
rm -f "$conf"
bench_psql -q -c "CREATE DATABASE $DB"
bench_psql -q -d "$DB" <<SQL
CREATE EXTENSION pg_shorturl;

-- What a team writes by hand: the columns of shorturl.links, a bigint key
-- from a sequence, codes unique per domain.  In plain_links the code is the
-- id's base62 digits, so the INSERT names only the URL; in plain_random it
-- is random.
CREATE TABLE plain_random (
    id bigserial PRIMARY KEY,
    code text COLLATE "C" NOT NULL,
    domain text COLLATE "C" NOT NULL DEFAULT '',
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    max_visits bigint CHECK (max_visits >= 1),
    exhausted_at timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    is_alias boolean NOT NULL DEFAULT false,
    UNIQUE (code, domain)
);
CREATE TABLE plain_links (
    id bigserial PRIMARY KEY,
    code text COLLATE "C" NOT NULL GENERATED ALWAYS AS (shorturl.base62_encode(id)) STORED,
    domain text COLLATE "C" NOT NULL DEFAULT '',
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    max_visits bigint CHECK (max_visits >= 1),
    exhausted_at timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    is_alias boolean NOT NULL DEFAULT false,
    UNIQUE (code, domain)
);

-- The links the read cases resolve, with URLs of a realistic length
-- (61 bytes), stored as aliases would be.
INSERT INTO shorturl.links (id, code, url, is_alias)
SELECT nextval('shorturl.link_id_seq'), ($FIRST_CODE + i)::text,
       'https://example.com/articles/' || md5(i::text), true
FROM generate_series(1, $links) i;
VACUUM ANALYZE shorturl.links;
SQL
mode=$(bench_psql -d "$DB" -Atc 'SELECT mode FROM shorturl.stats')
[ "$mode" = sync ] || die "database $DB counts clicks in mode \"$mode\", not sync"

# The pgbench scripts.  A URL differs per call, as real ones do; both write
# cases build it the same way.
S=$BENCH_WORK/scripts
mkdir -p "$S"
cat >"$S/shorten.sql" <<'EOF'
\set i random(1, 1000000000)
SELECT shorturl.shorten('https://example.com/articles/' || :i);
EOF
cat >"$S/insert.sql" <<'EOF'
\set i random(1, 1000000000)
INSERT INTO plain_links (url) VALUES ('https://example.com/articles/' || :i) RETURNING id;
EOF
# a random code below 62^7, so of 7 characters
cat >"$S/insert_random.sql" <<'EOF'
\set i random(1, 1000000000)
\set r random(0, 3521614606206)
INSERT INTO plain_random (code, url)
VALUES (shorturl.base62_encode(:r, 7), 'https://example.com/articles/' || :i)
ON CONFLICT DO NOTHING RETURNING id;
EOF
cat >"$S/resolve.sql" <<EOF
\set i random($((FIRST_CODE + 1)), $((FIRST_CODE + links)))
SELECT shorturl.resolve(:i);
EOF
cat >"$S/select.sql" <<EOF
\set i random($((FIRST_CODE + 1)), $((FIRST_CODE + links)))
SELECT url FROM shorturl.links WHERE code = :i AND domain = '';
EOF

# The cases: pair, label, pgbench script, synchronous_commit, and the case
# it is compared with (its reference, by number; a reference is its own).
pairs=() labels=() files=() syncs=() refs=()
add_case() { pairs+=("$1"); labels+=("$2"); files+=("$3"); syncs+=("$4"); refs+=("$5"); }
add_case 'write, synchronous_commit on'  'INSERT, code from the id'  insert.sql        on  0
add_case 'write, synchronous_commit on'  'INSERT, random code'       insert_random.sql on  0
add_case 'write, synchronous_commit on'  'shorten(url)'              shorten.sql       on  1
add_case 'write, synchronous_commit off' 'INSERT, code from the id'  insert.sql        off 3
add_case 'write, synchronous_commit off' 'INSERT, random code'       insert_random.sql off 3
add_case 'write, synchronous_commit off' 'shorten(url)'              shorten.sql       off 4
add_case 'read, uniform keys'            'SELECT url ... WHERE code' select.sql        on  6
add_case 'read, uniform keys'            'resolve(code), sync mode'  resolve.sql       on  6
add_case 'read, uniform keys'            'resolve(code), sync mode, synchronous_commit off' resolve.sql off 6
n=${#labels[@]}

{
	echo 'CREATE TABLE bench.pgb_cases (id int PRIMARY KEY, pair text, label text, reference int);'
	echo 'CREATE TABLE bench.pgb (id int, round int, tps float8, p99_ms float8, avg_ms float8, tx bigint);'
	for ((i = 0; i < n; i++)); do
		printf "INSERT INTO bench.pgb_cases VALUES (%d, '%s', '%s', %d);\n" \
			"$i" "${pairs[$i]}" "${labels[$i]}" "${refs[$i]}"
	done
} | bench_psql -q

# pgb ID ROUND runs case ID once and records its figures: pgbench's tps,
# and the p99 and mean of the per-transaction latencies of its log.
pgb() {
	local id=$1 round=$2 log=$BENCH_WORK/log.$1.$2 tps tx p99 avg
	mkdir -p "$log"
	PGOPTIONS="-c synchronous_commit=${syncs[$id]}" \
		"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
		-l --log-prefix="$log/tx" -f "$S/${files[$id]}" "$DB" >"$log/out" 2>&1 ||
		{ cat "$log/out" >&2; die "pgbench failed in case \"${labels[$id]}\""; }
	tps=$(awk '/^tps = / {print $3}' "$log/out")
	tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$log/out")
	# column 3 of the log is the transaction's latency in microseconds
	read -r p99 avg < <(cat "$log"/tx.* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1; s += $1}
		     END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1;
		          printf "%.3f %.3f\n", v[i] / 1000, s / NR / 1000}')
	rm -rf "$log"
	bench_psql -q -c "INSERT INTO bench.pgb VALUES ($id, $round, $tps, $p99, $avg, $tx)"
}

say "$n cases x $rounds rounds x ${seconds}s"
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		pgb $(((k + r) % n)) "$r"
	done
done

bench_psql -q <<'SQL'
CREATE VIEW bench.pgb_report AS
WITH m AS (
    SELECT c.id, c.pair, c.label, c.reference,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps) AS tps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.p99_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.avg_ms) AS avg,
           count(*) AS rounds
    FROM bench.pgb_cases c JOIN bench.pgb p USING (id)
    GROUP BY c.id, c.pair, c.label, c.reference
)
SELECT m.id, m.pair, m.label AS "case", m.rounds,
       round(m.tps::numeric, 0) AS "median TPS",
       round((m.tps / r.tps)::numeric, 2) AS "TPS ratio",
       round(m.avg::numeric, 3) AS "mean ms",
       round(m.p99::numeric, 3) AS "p99 ms",
       round((m.p99 / r.p99)::numeric, 2) AS "p99 ratio"
FROM m JOIN m r ON r.id = m.reference;
SQL

# report prints the figures (kept in $out too)
report() {
	echo "pg_shorturl $(bench_psql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'") store benchmark (test/bench/store.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
	bench_machine
	echo "load average (1, 5, 15 min): $load_before before the run, $(bench_load) after it (other work on this machine perturbs the figures)"
	echo "pgbench -M prepared over the Unix socket, $clients clients, $threads threads, ${seconds}s per run, $rounds rounds (medians), cases interleaved"
	echo "read cases: uniform random keys over $links links, in a database the workers do not serve (resolve() counts with an INSERT into shorturl.pending_visits)"
	bench_psql <<'SQL'
SELECT pair, "case", rounds, "median TPS", "TPS ratio", "mean ms", "p99 ms", "p99 ratio"
FROM bench.pgb_report ORDER BY id;
SQL
	echo "TPS ratio: against the case it is compared with (its reference): the INSERT with a code from the id, except shorten(url): the INSERT with a random code"
	echo "goals:"
	bench_psql -At <<SQL
SELECT format('  %-46s %5s x the INSERT rate (random code)  goal >= %s x  %s', r."case" || ', ' || r.pair,
              r."TPS ratio", $SHORTEN_GOAL,
              CASE WHEN r."TPS ratio" >= $SHORTEN_GOAL THEN 'met'
                   ELSE format('missed by %s%%', round((1 - r."TPS ratio" / $SHORTEN_GOAL) * 100)) END)
FROM bench.pgb_report r WHERE r."case" = 'shorten(url)' ORDER BY r.id;
SELECT format('  %-46s %5s x the plain SELECT  (no goal: the limit of counting in the tables)',
              r."case", r."TPS ratio")
FROM bench.pgb_report r WHERE r."case" LIKE 'resolve%' ORDER BY r.id;
SQL
}
mkdir -p "$(dirname "$out")"
report | tee "$out"
