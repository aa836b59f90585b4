#!/bin/bash
# screenshot.sh: docs/redirect-stats.png, the statistics page of a link
# with ten days of demo traffic (demo_data.sql), as headless chromium draws
# it.  Run as root from a checkout, with the extension installed for
# PostgreSQL 15 (scripts/demo.sh does that): it starts a scratch server and
# the service, and stops both.
#
#   sudo examples/redirect-service/screenshot.sh [OUTPUT.png]
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"
require_root
ensure_packages chromium python3-psycopg python3-psycopg-pool python3-aiohttp
HERE=$REPO/examples/redirect-service
out=$(realpath -m "${1:-$REPO/docs/redirect-stats.png}")
work=$(mktemp -d /tmp/pg_shorturl-screenshot.XXXXXX)
conf=$work/extra.conf
echo "shared_preload_libraries = 'pg_shorturl'" >"$conf"
service=
trap '[ -n "$service" ] && kill "$service" 2>/dev/null; scratch_server_stop "$work"; rm -rf "$work"' EXIT
scratch_server_start "$work" "$conf"
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p 5432 -U postgres -d postgres "$@"; }
psql -c 'CREATE EXTENSION pg_shorturl' -f "$HERE/grants.sql"
psql -f "$HERE/demo_data.sql"
port=$(free_port 8090)
chown "$RUN_USER:" "$work"
as_user env SHORTURL_DSN="host=$work port=5432 dbname=postgres user=shorturl_app" SHORTURL_LISTEN="127.0.0.1:$port" \
	SHORTURL_WORKERS=1 SHORTURL_STATS_ACCESS=public SHORTURL_BASE_URL=https://sho.rt SHORTURL_ACCESS_LOG=off \
	bash -c "echo \$\$ >'$work/service.pid'; exec /usr/bin/python3 '$HERE/redirect_service.py'" >"$work/service.log" 2>&1 &
for ((i = 0; i < 100; i++)); do
	[ -s "$work/service.pid" ] && break
	sleep 0.1
done
service=$(cat "$work/service.pid")
for ((i = 0; i < 100; i++)); do
	curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
	sleep 0.1
done
mkdir -p "$(dirname "$out")"
HOME=$work chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
	--hide-scrollbars --user-data-dir="$work/chromium" --run-all-compositor-stages-before-draw \
	--window-size=1280,1080 --screenshot="$out" "http://127.0.0.1:$port/launch+" 2>/dev/null
echo "$out: $(stat -c %s "$out") bytes"
