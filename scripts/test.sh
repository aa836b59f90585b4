#!/bin/bash
# scripts/test.sh: the whole pg_shorturl test suite (README command 2).
#
# As root on Debian 12, from a checkout: installs what is missing, runs the
# pure-core unit tests and fuzzers, checks the PGXN metadata and archive,
# builds the Debian package and tries it on a clean server (test/package),
# then for each PostgreSQL version of the
# matrix (15 from Debian's archive, 18.3 built once from the vendored
# source into a cache, see scripts/build-pg18.sh) builds pg_shorturl and
# its coordinator with -Werror, installs them, and runs "make installcheck"
# (pg_regress, isolation, TAP, the upgrade chain) as the unprivileged
# postgres user; each suite starts throw-away servers of its own.  Then
# it runs them all again without the URL cache (test/url_cache_off.conf),
# which every test must pass too.  Exits non-zero on any failure, naming
# the version, and prints the diffs.
#
#   PG_VERSIONS="15"   run one version only (default "15 18")
#   URL_CACHE_OFF_VERSIONS="15 18"  versions that also run without the cache
#                      (default "15": the path without a cache is the one
#                      every version ran before 0.11, and the second run
#                      costs 8 to 10 minutes; empty: none)
#   FUZZ_RUNS=...      executions per fuzz target (see test/fuzz/run.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_root
ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

say "pure-core unit tests"
"$REPO/test/unit/run.sh"

say "fuzzing the pure cores"
"$REPO/test/fuzz/run.sh"

say "PGXN: META.json against the meta spec, and the archive of make dist"
"$REPO/test/meta/run.sh"

say "the Debian package: build, install on a clean server, walk through it"
"$REPO/test/package/run.sh"

# run_suites VERSION PG_CONFIG WORK CONF runs "make installcheck" in WORK/tree
# (with SHORTURL_TEST_CONF=CONF unless empty); on a failure it prints the
# diffs and the failed TAP tests' logs and exits.
run_suites() {
	local version=$1 pg_config=$2 work=$3 conf=$4 rc=0 t f log
	log=$work/installcheck${conf:+-$(basename "$conf" .conf)}.log
	as_user make -C "$work/tree" -s installcheck PG_CONFIG="$pg_config" \
		${conf:+SHORTURL_TEST_CONF="$conf"} 2>&1 | tee "$log" || rc=$?
	[ "$rc" -eq 0 ] && return 0
	for f in "$work"/tree/regression.diffs "$work"/tree/output_iso/regression.diffs \
		"$work"/tree/coordinator/regression.diffs; do
		[ -s "$f" ] && { say "[PostgreSQL $version] $f"; cat "$f"; }
	done
	# the logs of the TAP tests prove reports as failed
	for t in $(sed -n 's|^\(coordinator/\)\{0,1\}\(test/\)\{0,1\}t/\([^ ]*\)\.pl .*(Wstat.*|\3|p' "$log"); do
		for f in "$work"/tree/tmp_check/log/regress_log_$t "$work"/tree/coordinator/tmp_check/log/regress_log_$t; do
			[ -s "$f" ] && { say "[PostgreSQL $version] $f (last 80 lines)"; tail -n 80 "$f"; }
		done
	done
	for f in "$work"/tree/tmp_check_regress/log/postmaster.log "$work"/tree/tmp_check_iso/log/postmaster.log; do
		[ -s "$f" ] && { say "[PostgreSQL $version] $f (last 60 lines)"; tail -n 60 "$f"; }
	done
	echo
	echo "FAILED on PostgreSQL $version${conf:+ with $conf}: the work tree is kept in $work"
	exit "$rc"
}

# test_version VERSION PG_CONFIG runs the suites against one PostgreSQL.
test_version() {
	local version=$1 pg_config=$2 work
	build_and_install werror "$pg_config"

	# pg_regress and TAP write their output into the source tree, and
	# initdb refuses root: work on a copy the unprivileged user owns.
	work=$(mktemp -d /tmp/pg_shorturl-test-$version.XXXXXX)
	mkdir "$work/tree"
	tar -C "$REPO" --exclude=./.git --exclude=./.demo --exclude=./test/fuzz/build \
		--exclude=./test/unit/build -cf - . | tar -C "$work/tree" -xf -
	chown -R "$RUN_USER:" "$work"

	say "[PostgreSQL $version] make installcheck (pg_regress, isolation, TAP)"
	run_suites "$version" "$pg_config" "$work" ""
	# the same suites without the URL cache (test/url_cache_off.conf)
	if [[ " ${URL_CACHE_OFF_VERSIONS-15} " == *" $version "* ]]; then
		say "[PostgreSQL $version] make installcheck again, shorturl.url_cache_size = 0"
		run_suites "$version" "$pg_config" "$work" test/url_cache_off.conf
	fi
	rm -rf "$work"
	say "[PostgreSQL $version] all suites passed"
}

ensure_test_locale
for version in ${PG_VERSIONS:-15 18}; do
	case $version in
		15) test_version 15 "$PG_BIN/pg_config" ;;
		18) test_version 18 "$("$REPO/scripts/build-pg18.sh")" ;;
		*) die "PG_VERSIONS: no version $version here (15 or 18)" ;;
	esac
done
# leave the system's PostgreSQL 15 with the build the demo uses
[ "${PG_VERSIONS:-15 18}" = 15 ] || build_and_install "" "$PG_BIN/pg_config" >/dev/null
say "all tests passed (PostgreSQL ${PG_VERSIONS:-15 18})"
