#!/bin/bash
# test/package/run.sh: the Debian package (debian/), end to end.
#
# As root on Debian 12, from a checkout: builds the package from a copy of
# the tree with dpkg-buildpackage, refuses a build that printed a warning,
# checks that the .deb holds both extensions, their control files and
# every SQL script of the tree, and nothing outside PostgreSQL's and its
# own directories; installs it with apt-get, so that its dependencies
# resolve from Debian's archive; starts a fresh server that preloads the
# library, runs the walk-through (scripts/demo.sql) and checks some of its
# results, then a coordinator in front of a shard; runs a fast subset of
# the suites against the installed package (debian/tests/installcheck);
# stops the server, purges the package and checks that none of its files
# is left.  The pg_shorturl files a "make install" had put into PostgreSQL
# $PG_MAJOR's directories before are put back afterwards, so that the demo
# server and scripts/test.sh find what they left.  Exits non-zero on any
# failure; its temporary directories go even then.
#
#   PACKAGE_INSTALLCHECK_ARGS="..."   make arguments of the core's subset
#                                     (SHORTURL_INSTALLCHECK_ARGS of
#                                     debian/tests/installcheck)
#   PACKAGE_COORDINATOR_CHECK=0       skip the coordinator's pg_regress suite
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"

# The subset: the SQL suites of the codec, routing, the store and the
# shared-memory counters, one isolation spec and the TAP test of
# preloading, so that each kind of suite runs once against the package
# (about 40 s), then the coordinator's pg_regress suite (about 30 s).
core_args=${PACKAGE_INSTALLCHECK_ARGS:-"NO_COORDINATOR=1 REGRESS='base62 routing store counters' ISOLATION=max_visits PROVE_TESTS=test/t/001_preload.pl"}
coordinator_check=${PACKAGE_COORDINATOR_CHECK:-1}

package=postgresql-$PG_MAJOR-shorturl
ext_dir=/usr/share/postgresql/$PG_MAJOR/extension
lib_dir=/usr/lib/postgresql/$PG_MAJOR/lib

require_root
# dpkg-buildpackage checks the Build-Depends itself; these are what it
# needs to run at all, and what the package's tests need
ensure_packages dpkg-dev debhelper postgresql-server-dev-all "${BUILD_PACKAGES[@]}" libipc-run-perl

# Two runs at once (scripts/test.sh of two engineers) would install and
# purge the one package under each other: the second waits.
exec 9>/run/lock/pg_shorturl-package.lock
if ! flock -n 9; then
	echo "waiting for another test/package/run.sh to finish"
	flock -w 1800 9 || die "gave up waiting for the other test/package/run.sh"
fi

start=$SECONDS
work=$(mktemp -d /tmp/pg_shorturl-package.XXXXXX)
# apt-get reads the .deb as the user _apt, and the server's user must
# reach its directory
chmod 755 "$work"
server_started=
package_installed=
saved=

# fail MESSAGE [LOG] prints the end of LOG, if given, and stops.
fail() {
	if [ -n "${2:-}" ] && [ -s "$2" ]; then
		echo "---- ${2##*/} (last 60 lines)"
		tail -n 60 "$2"
	fi
	die "$1"
}

# installcheck_failed LOG WHAT prints the verdicts of the suites in LOG,
# then what debian/tests/installcheck printed about the failure, and stops.
installcheck_failed() {
	grep -E '^(test |t/|test/t/|Result:)|tests? (passed|failed)|Failed|Dubious' "$1" || true
	sed -n '/: FAILED ###$/,$p' "$1" | head -n 300
	die "debian/tests/installcheck failed ($2)"
}

# package_known tells whether dpkg has the package in any state but gone
# (installed, unpacked, half-installed, config files left).
package_known() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) || return 1
	[ -n "$status" ] && [ "$status" != not-installed ]
}

# cleanup runs on every exit: the server stops, the package goes, the
# files it replaced come back, and the temporary directory goes.
cleanup() {
	local rc=$?
	set +e
	[ -z "$server_started" ] || scratch_server_stop "$work/server"
	if [ -n "$package_installed" ] && package_known; then
		echo "(cleanup: purging $package)"
		apt-get purge -y -qq "$package" >/dev/null 2>&1 || dpkg --purge "$package" >/dev/null
	fi
	[ -z "$saved" ] || tar -C / -xf "$saved"
	rm -rf "$work"
	[ "$rc" -eq 0 ] || echo "FAILED: test/package/run.sh (after $((SECONDS - start)) s)" >&2
	exit "$rc"
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive

# A run stopped by force may have left the package installed: its files
# would be saved below as if a "make install" had put them there.
if package_known; then
	say "purging $package, left installed by an earlier run"
	apt-get purge -y -qq "$package" >/dev/null
fi

say "copying the tree to $work/src/pg-shorturl"
mkdir -p "$work/src/pg-shorturl"
tree=$work/src/pg-shorturl
# What git tracks, and what it would track (new files not yet committed,
# such as a new upgrade script, are part of the tree "make install"
# installs); nothing .gitignore names (builds, .demo), nor what builds and
# test runs leave that it does not name yet.
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$REPO" &&
		git -c safe.directory="$REPO" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		grep -zvE '^(coordinator/)?(tmp_check[^/]*|results|output_iso|log)/|^(coordinator/)?regression\.(diffs|out)$|^debian/(\.debhelper/|tmp/|postgresql-[0-9]+-shorturl(-dbgsym)?/|files$|debhelper-build-stamp$|.*\.substvars$|.*\.debhelper\.log$)' |
		tar --null -T - -cf -) | tar -C "$tree" -xf -
else
	tar -C "$REPO" --exclude=./.git --exclude=./.demo --exclude=./.build --exclude='tmp_check*' \
		--exclude=./test/fuzz/build --exclude=./test/unit/build --exclude='*.o' --exclude='*.so' \
		--exclude='*.bc' -cf - . | tar -C "$tree" -xf -
fi
[ -f "$tree/debian/control" ] || die "$tree has no debian/control"
echo "$(find "$tree" -type f | wc -l) files"

say "building the package (dpkg-buildpackage -us -uc -b)"
t0=$SECONDS
(cd "$tree" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	fail "dpkg-buildpackage failed" "$work/build.log"
if grep -qi 'warning:' "$work/build.log"; then
	grep -i -B3 'warning:' "$work/build.log"
	fail "the package build printed warnings (above, with the lines before them)"
fi
version=$(cd "$tree" && dpkg-parsechangelog -S Version)
deb=$work/src/${package}_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || fail "no $deb was built" "$work/build.log"
echo "built ${deb##*/} in $((SECONDS - t0)) s, no warnings: $(stat -c %s "$deb") bytes"

say "checking the contents of ${deb##*/}"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' | sort >"$work/contents"
expected=("$lib_dir/pg_shorturl.so" "$lib_dir/pg_shorturl_coordinator.so"
	"$ext_dir/pg_shorturl.control" "$ext_dir/pg_shorturl_coordinator.control"
	"/usr/share/doc/$package/copyright"
	"/usr/share/doc/$package/examples/postgres_exporter.yaml"
	"/usr/share/doc/$package/examples/redirect-service/redirect_service.py")
for f in "$tree"/sql/pg_shorturl--*.sql "$tree"/coordinator/sql/pg_shorturl_coordinator--*.sql; do
	expected+=("$ext_dir/${f##*/}")
done
# a file, not a pipe into grep -q: with pipefail, printf killed by SIGPIPE
# when grep stops at an early match fails the test (it did, under load)
printf '%s\n' "${expected[@]}" >"$work/expected"
missing=0
for f in "${expected[@]}"; do
	grep -qxF "$f" "$work/contents" || { echo "missing: $f"; missing=1; }
done
# nothing else in the extension directory (a stray script would be
# offered to ALTER EXTENSION UPDATE), nothing outside the package's places
while read -r f; do
	case $f in
		"$ext_dir"/*) grep -qxF "$f" "$work/expected" || { echo "unexpected: $f"; missing=1; } ;;
		"$lib_dir"/pg_shorturl*.so | "$lib_dir"/bitcode/pg_shorturl* | /usr/share/doc/"$package"/*) ;;
		*) echo "unexpected: $f"; missing=1 ;;
	esac
done <"$work/contents"
[ "$missing" -eq 0 ] || fail "the package does not hold what the tree installs"
fields=$(dpkg-deb -f "$deb" Depends Recommends)
grep -q "^Depends:.*postgresql-$PG_MAJOR\b" <<<"$fields" || fail "the package does not depend on postgresql-$PG_MAJOR: $fields"
grep -q "^Recommends:.*postgresql-$PG_MAJOR-plproxy" <<<"$fields" || fail "the package does not recommend PL/Proxy: $fields"
printf '%s files: 2 libraries, %s SQL scripts, 2 control files, %s bitcode files, %s documents\n' \
	"$(wc -l <"$work/contents")" "$(grep -c '\.sql$' "$work/contents")" \
	"$(grep -c '/bitcode/' "$work/contents")" "$(grep -c '^/usr/share/doc/' "$work/contents")"

# what a "make install" put where the package goes, to put it back after
# the purge (tar keeps paths, modes and owners)
(cd / && find "${lib_dir#/}" "${ext_dir#/}" -maxdepth 2 -name 'pg_shorturl*' -print0 |
	tar --null -T - -cf "$work/saved.tar")
saved=$work/saved.tar

say "installing ${deb##*/} (apt-get install)"
package_installed=1
(cd "$work/src" && apt-get install -y "./${deb##*/}") >"$work/apt.log" 2>&1 ||
	fail "apt-get could not install the package" "$work/apt.log"
dpkg-query -W -f='${Status} ${Version}\n' "$package"
# the package's files, to check that the purge removes them
dpkg -L "$package" | while read -r f; do [ -d "$f" ] || echo "$f"; done >"$work/installed"

say "starting a fresh PostgreSQL $PG_MAJOR that preloads pg_shorturl"
mkdir "$work/server"
echo "shared_preload_libraries = 'pg_shorturl'" >"$work/preload.conf"
server_started=1
scratch_server_start "$work/server" "$work/preload.conf"
psql_at() {
	local db=$1
	shift
	"$PG_BIN/psql" -h "$work/server" -p 5432 -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}
# check WHAT GOT WANT
check() {
	[ "$2" = "$3" ] || die "$1: got '$2', want '$3'"
	echo "ok: $1 ($2)"
}

say "walk-through (scripts/demo.sql, as scripts/demo.sh runs it)"
psql_at postgres -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION pg_shorturl'
psql_at postgres -f "$tree/scripts/demo.sql" >"$work/demo.out" 2>&1 ||
	fail "the walk-through failed" "$work/demo.out"
echo "$(wc -l <"$work/demo.out") lines of output, no unexpected error"
# A few results of the walk-through (its alias and its 10,000 clicks:
# change these with scripts/demo.sql), and what a user tries first.
control_version() { sed -n "s/^default_version = '\(.*\)'/\1/p" "$1"; }
check "installed version" "$(psql_at postgres -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'")" \
	"$(control_version "$tree/pg_shorturl.control")"
check "counting mode (the library is preloaded)" "$(psql_at postgres -Atc 'SELECT mode FROM shorturl.stats')" shared
check "visits of the demo's alias (its 10,000 clicks)" "$(psql_at postgres -Atc "SELECT shorturl.visits('spring-sale')")" 10000
check "the demo's alias resolves" "$(psql_at postgres -Atc "SELECT shorturl.resolve('spring-sale')")" \
	https://example.com/spring-sale
code=$(psql_at postgres -Atc "SELECT shorturl.shorten('https://www.debian.org/')")
check "a new link ($code) resolves" "$(psql_at postgres -Atc "SELECT shorturl.resolve('$code')")" https://www.debian.org/
check "a QR code is a PNG" "$(psql_at postgres -Atc "SELECT encode(substr(shorturl.qr_png('https://sho.rt/$code'), 2, 3), 'escape')")" PNG

say "a coordinator in front of one shard (PL/Proxy, postgres_fdw)"
psql_at postgres -c 'CREATE DATABASE shard1' -c 'CREATE DATABASE coordinator'
psql_at shard1 -c 'CREATE EXTENSION pg_shorturl'
psql_at coordinator -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION pg_shorturl_coordinator CASCADE' \
	-Atc "SELECT shorturl.add_shard('s1', 'host=$work/server port=5432 dbname=shard1')" >/dev/null
check "coordinator version" "$(psql_at coordinator -Atc "SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'")" \
	"$(control_version "$tree/coordinator/pg_shorturl_coordinator.control")"
code=$(psql_at coordinator -Atc "SELECT shorturl.shorten('https://packages.debian.org/')")
check "a link made through the coordinator is on the shard" \
	"$(psql_at shard1 -Atc "SELECT url FROM shorturl.links WHERE code = '$code'")" https://packages.debian.org/
check "and resolves through it" "$(psql_at coordinator -Atc "SELECT shorturl.resolve('$code')")" https://packages.debian.org/

say "the suites against the installed package (debian/tests/installcheck)"
echo "core: $core_args"
(cd "$tree" && SHORTURL_INSTALLCHECK_ARGS=$core_args debian/tests/installcheck) >"$work/installcheck.log" 2>&1 ||
	installcheck_failed "$work/installcheck.log" core
grep -E '^(test |ok |not ok |t/|test/t/|Result:)|tests passed' "$work/installcheck.log" || true
if [ "$coordinator_check" != 0 ]; then
	echo "coordinator: -C coordinator TAP_TESTS="
	(cd "$tree" && SHORTURL_INSTALLCHECK_ARGS='-C coordinator TAP_TESTS=' debian/tests/installcheck) \
		>"$work/installcheck-coordinator.log" 2>&1 ||
		installcheck_failed "$work/installcheck-coordinator.log" coordinator
	grep -E '^test |tests passed' "$work/installcheck-coordinator.log" || true
fi

say "stopping the server, purging $package"
scratch_server_stop "$work/server"
server_started=
apt-get purge -y -qq "$package" >"$work/purge.log" 2>&1 || fail "apt-get purge failed" "$work/purge.log"
package_installed=
! package_known || die "$package is still known to dpkg after the purge"
left=$(while read -r f; do [ ! -e "$f" ] || echo "$f"; done <"$work/installed")
[ -z "$left" ] || die "the purge left files of the package: $left"
echo "gone: its $(wc -l <"$work/installed") files"

say "package test passed in $((SECONDS - start)) s"
