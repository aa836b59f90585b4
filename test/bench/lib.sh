# test/bench/lib.sh: what every benchmark script shares.  Sourced.
#
# bench_start starts a throw-away server (test/bench/bench.conf) in a fresh
# directory owned by the unprivileged user and loads the timing harness;
# bench_psql runs psql against it; the server stops when the script exits.
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

BENCH_DIR=$REPO/test/bench

bench_start() {
	require_root
	ensure_packages "${BUILD_PACKAGES[@]}" gnuplot-nox
	[ "${BENCH_NO_BUILD:-}" ] || build_and_install
	BENCH_WORK=$(mktemp -d /tmp/pg_shorturl-bench.XXXXXX)
	trap 'scratch_server_stop "$BENCH_WORK"; rm -rf "$BENCH_WORK"' EXIT
	scratch_server_start "$BENCH_WORK" "$BENCH_DIR/bench.conf" "$@"
	export PGHOST=$BENCH_WORK PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
	bench_psql -q -c 'CREATE EXTENSION pg_shorturl'
	bench_psql -q -f "$BENCH_DIR/harness.sql"
}

bench_psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 "$@"; }

# bench_machine prints one line describing the machine the figures come from.
bench_machine() {
	local cpu
	cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
	printf 'machine: %s, %s cores, %s GiB RAM, %s\n' "$cpu" "$(nproc)" \
		"$(awk '/MemTotal/ {printf "%d", $2 / 1048576}' /proc/meminfo)" \
		"$("$PG_BIN/postgres" --version)"
}

# bench_load prints the load averages over 1, 5 and 15 minutes (call it
# before the server starts, to record the load a run began under).
bench_load() { cut -d' ' -f1-3 /proc/loadavg; }

# bench_make_links N FIRST_CODE stores N links as aliases with the decimal
# codes FIRST_CODE + 1 .. FIRST_CODE + N (so a pgbench script can make a
# code) and URLs of a realistic length (61 bytes), and bench.plain
# (code text PRIMARY KEY, url text), the same codes and URLs in a plain table.
bench_make_links() {
	bench_psql -q >/dev/null <<SQL
INSERT INTO shorturl.links (id, code, url, is_alias)
SELECT nextval('shorturl.link_id_seq'), ($2 + i)::text,
       'https://example.com/articles/' || md5(i::text), true
FROM generate_series(1, $1) i;
CREATE TABLE bench.plain (code text PRIMARY KEY, url text);
INSERT INTO bench.plain SELECT code, url FROM shorturl.links;
VACUUM ANALYZE shorturl.links;
VACUUM ANALYZE bench.plain;
SQL
}

# bench_keys WORKLOAD LINKS FIRST_CODE SEED prints the two lines of a pgbench
# script that pick a link of bench_make_links as :c, its decimal code: a
# rank :r drawn as the workload says (uniform; zipfS, Zipf with exponent S;
# hot, rank 0 only), spread over the codes by permute() with SEED.
bench_keys() {
	local pick
	case $1 in
	uniform) pick="random(0, $(($2 - 1)))" ;;
	zipf*) pick="random_zipfian(0, $(($2 - 1)), ${1#zipf})" ;;
	hot) pick=0 ;;
	*) die "unknown workload $1" ;;
	esac
	printf '\\set r %s\n\\set c %d + permute(:r, %d, %d)' "$pick" $(($3 + 1)) "$2" "$4"
}

# bench_settle loads the tables and indexes of the schemas shorturl and
# bench into shared buffers, writes the load's dirty pages now rather than
# by a checkpoint during the runs, and waits for the worker.
bench_settle() {
	bench_psql -q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
WHERE c.relnamespace IN ('shorturl'::regnamespace, 'bench'::regnamespace) AND c.relkind IN ('r', 'i', 't');
CHECKPOINT;
SQL
	bench_wait_worker
}

# bench_wait_worker waits for the worker of the database, which must count
# clicks in shared mode.
bench_wait_worker() {
	local i mode
	for ((i = 0; i < 100; i++)); do
		[ -n "$(bench_psql -Atc 'SELECT worker_pid FROM shorturl.stats')" ] && break
		sleep 0.1
	done
	mode=$(bench_psql -Atc 'SELECT mode FROM shorturl.stats')
	[ "$mode" = shared ] || die "the bench database counts clicks in mode \"$mode\", not shared"
}

# bench_make_standby DIR PORT NAME makes a streaming hot standby of the
# bench server with pg_basebackup -R in DIR/server, listening on PORT and a
# Unix socket in DIR, under cluster_name NAME, starts it and checks it is
# in recovery; scratch_server_stop DIR stops it.
bench_make_standby() {
	mkdir "$1"
	chown "$RUN_USER:" "$1"
	as_user "$PG_BIN/pg_basebackup" -h "$BENCH_WORK" -p 5432 -U postgres -D "$1/server" -R -X stream -c fast
	{
		echo "port = $2"
		echo "unix_socket_directories = '$1'"
		echo "cluster_name = '$3'"
	} >>"$1/server/postgresql.conf"
	as_user "$PG_BIN/pg_ctl" -D "$1/server" -l "$1/server.log" -w start >/dev/null
	[ "$(PGHOST=$1 PGPORT=$2 bench_psql -Atc 'SELECT pg_is_in_recovery()')" = t ] ||
		die "the standby in $1 is not in recovery"
}
