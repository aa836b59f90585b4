#!/bin/bash
# test/bench/base62.sh: base62_encode against bigint::text and base62_decode
# against text::bigint, each over several million rows, interleaved rounds.
#
#   BENCH_ROWS    rows per query (default 5000000)
#   BENCH_ROUNDS  rounds (default 7)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rows=${BENCH_ROWS:-5000000}
rounds=${BENCH_ROUNDS:-7}

bench_start
bench_psql -q <<SQL
CREATE TABLE bench.src AS
SELECT i, shorturl.base62_encode(i) AS code, i::text AS dec
FROM (SELECT (random() * 9223372036854775807)::bigint AS i
      FROM generate_series(1, $rows)) s;
VACUUM ANALYZE bench.src;
-- warm the buffer cache
\o /dev/null
SELECT count(*) FROM bench.src;
\o

INSERT INTO bench.cases (label, grp, query, calls, baseline, reference) VALUES
 ('scan (i)',               'encode', 'SELECT count(i) FROM bench.src', $rows, NULL, NULL),
 ('i::text',                'encode', 'SELECT count(i::text) FROM bench.src', $rows, 'scan (i)', 'i::text'),
 ('base62_encode(i)',       'encode', 'SELECT count(shorturl.base62_encode(i)) FROM bench.src', $rows, 'scan (i)', 'i::text'),
 ('scan (text)',            'decode', 'SELECT count(code) FROM bench.src', $rows, NULL, NULL),
 ('dec::bigint',            'decode', 'SELECT count(dec::bigint) FROM bench.src', $rows, 'scan (text)', 'dec::bigint'),
 ('base62_decode(code)',    'decode', 'SELECT count(shorturl.base62_decode(code)) FROM bench.src', $rows, 'scan (text)', 'dec::bigint');
SQL
bench_psql -q -c "CALL bench.run($rounds)"
bench_machine
echo "rows per query: $rows, rounds: $rounds (medians); random bigints, 11-digit codes mostly"
bench_psql -c 'SELECT * FROM bench.report'
