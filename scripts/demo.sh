#!/bin/bash
# scripts/demo.sh: the main job (README command 1).
#
# As root on Debian 12, from a checkout: installs what is missing, builds
# and installs pg_shorturl, starts a local PostgreSQL 15 server that
# preloads it (data directory .demo/ inside the checkout, owned by the
# unprivileged postgres user, on a free port), creates the extension and
# runs a short walk-through.  Run it again to rebuild and restart the same
# server; "scripts/demo.sh stop" stops it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_root

state=$REPO/.demo
# The data directory must be reachable by the unprivileged user; a checkout
# under a private home directory is not, so fall back to its home.
if ! as_user test -x "$REPO"; then
	state=/var/lib/postgresql/pg_shorturl-demo
	echo "note: $RUN_USER cannot enter $REPO; using $state for the server"
fi
data=$state/data

pg_ctl() { as_user "$PG_BIN/pg_ctl" -D "$data" "$@"; }
running() { [ -f "$data/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1; }

if [ "${1:-}" = stop ]; then
	if running; then pg_ctl -m fast stop; else echo "the demo server is not running"; fi
	exit 0
fi

ensure_packages "${BUILD_PACKAGES[@]}"
build_and_install

mkdir -p "$state"
chown "$RUN_USER:" "$state"
chmod 700 "$state"

if [ ! -f "$data/PG_VERSION" ]; then
	say "creating a cluster in $data"
	as_user "$PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	echo "include 'pg_shorturl_demo.conf'" >>"$data/postgresql.conf"
fi

if running; then
	port=$(cat "$state/port")
	say "restarting the demo server on port $port (to load the new build)"
	pg_ctl -l "$state/server.log" -m fast -w restart >/dev/null
else
	port=$(free_port "$(cat "$state/port" 2>/dev/null || echo 5433)")
	echo "$port" >"$state/port"
	cat >"$data/pg_shorturl_demo.conf" <<CONF
# written by scripts/demo.sh
port = $port
listen_addresses = 'localhost'
unix_socket_directories = '$state'
unix_socket_permissions = 0700
shared_preload_libraries = 'pg_shorturl'
shorturl.database = 'postgres'
CONF
	chown "$RUN_USER:" "$data/pg_shorturl_demo.conf"
	say "starting the demo server on port $port"
	pg_ctl -l "$state/server.log" -w start >/dev/null
fi

psql_demo() { "$PG_BIN/psql" -h "$state" -p "$port" -U postgres -X -v ON_ERROR_STOP=1 "$@"; }

say "walk-through (scripts/demo.sql)"
# Keep what an earlier run (or the user) stored: create once, then update.
psql_demo -d postgres -q -c 'SET client_min_messages = warning' \
	-c 'CREATE EXTENSION IF NOT EXISTS pg_shorturl' -c 'ALTER EXTENSION pg_shorturl UPDATE'
psql_demo -d postgres -f "$REPO/scripts/demo.sql"

cat <<DONE

==> the demo server is running (data: $data, log: $state/server.log)
    connect:  $PG_BIN/psql -h $state -p $port -U postgres postgres
    stop:     $REPO/scripts/demo.sh stop
DONE
