#!/bin/bash
# scripts/test.sh: the whole pg_shorturl test suite (README command 2).
#
# As root on Debian 12, from a checkout: installs what is missing, builds
# with -Werror, installs, runs the pure-core unit tests and the fuzzers,
# then runs "make installcheck" (pg_regress, isolation, TAP) as the
# unprivileged postgres user against a throw-away server that preloads the
# library.  Exits non-zero on any failure and prints the diffs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_root
ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
build_and_install werror

say "pure-core unit tests"
"$REPO/test/unit/run.sh"

say "fuzzing the pure cores"
"$REPO/test/fuzz/run.sh"

# pg_regress and TAP write their output into the source tree, and initdb
# refuses root: work on a copy the unprivileged user owns.
work=$(mktemp -d /tmp/pg_shorturl-test.XXXXXX)
mkdir "$work/tree"
tar -C "$REPO" --exclude=./.git --exclude=./.demo --exclude=./test/fuzz/build \
	--exclude=./test/unit/build -cf - . | tar -C "$work/tree" -xf -
chown -R "$RUN_USER:" "$work"

trap 'scratch_server_stop "$work"' EXIT

say "starting a test server (shared_preload_libraries = 'pg_shorturl')"
scratch_server_start "$work" "$REPO/test/pg_shorturl.conf"

say "make installcheck (pg_regress, isolation, TAP)"
rc=0
as_user env PGHOST="$work" PGPORT=5432 PGUSER=postgres make -C "$work/tree" -s installcheck 2>&1 |
	tee "$work/installcheck.log" || rc=$?

if [ "$rc" -ne 0 ]; then
	for f in "$work/tree/regression.diffs" "$work/tree/output_iso/regression.diffs"; do
		[ -s "$f" ] && { say "$f"; cat "$f"; }
	done
	# the logs of the TAP tests prove reports as failed
	for t in $(sed -n 's|^test/t/\([^ ]*\)\.pl .*(Wstat.*|\1|p' "$work/installcheck.log"); do
		f="$work/tree/tmp_check/log/regress_log_$t"
		[ -s "$f" ] && { say "$f (last 80 lines)"; tail -n 80 "$f"; }
	done
	say "server log (last 60 lines)"
	tail -n 60 "$work/server.log"
	echo
	echo "FAILED: the work tree is kept in $work"
	exit "$rc"
fi

rm -rf "$work"
say "all tests passed"
