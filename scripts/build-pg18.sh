#!/bin/bash
# scripts/build-pg18.sh: builds PostgreSQL 18.3 (and PL/Proxy 2.12.0 for it)
# from the vendored sources, once per machine, into a cache outside the
# checkout, and prints the path of its pg_config.  A build already in the
# cache is reused.
#
#   scripts/build-pg18.sh            build if needed, print .../bin/pg_config
#
# The sources are ../shared/vendor/postgresql-18.3.tar.xz and
# plproxy-2.12.0.tar.gz next to the checkout (or $PG_SHORTURL_VENDOR); their
# SHA-256 files are checked before anything is unpacked.  The cache is
# $PG_SHORTURL_CACHE (default /var/cache/pg_shorturl).  Needs root for the
# packages (bison, flex) and the cache directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG18_VERSION=18.3
PLPROXY_VERSION=2.12.0
VENDOR=${PG_SHORTURL_VENDOR:-$(cd "$REPO/.." && pwd)/shared/vendor}
CACHE=${PG_SHORTURL_CACHE:-/var/cache/pg_shorturl}
PREFIX=$CACHE/pg$PG18_VERSION
STAMP=$PREFIX/.complete
# The configure options: a cache built with others is built again.  NLS so
# that tests can run a server in another language (lc_messages).
CONFIGURE_OPTS="--enable-tap-tests --enable-nls --without-icu --without-readline --without-zlib"
RECIPE="postgresql-$PG18_VERSION $CONFIGURE_OPTS plproxy-$PLPROXY_VERSION"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] && [ -x "$PREFIX/bin/pg_config" ]; then
	echo "$PREFIX/bin/pg_config"
	exit 0
fi

require_root
ensure_packages make gcc bison flex gettext libperl-dev libipc-run-perl libxxhash-dev libsodium-dev >&2
[ -f "$VENDOR/postgresql-$PG18_VERSION.tar.xz" ] ||
	die "no PostgreSQL $PG18_VERSION source at $VENDOR (set PG_SHORTURL_VENDOR)"
(cd "$VENDOR" && sha256sum --quiet -c "postgresql-$PG18_VERSION.tar.xz.sha256" &&
	sha256sum --quiet -c "plproxy-$PLPROXY_VERSION.tar.gz.sha256") >&2 ||
	die "checksum mismatch in $VENDOR"

build=$(mktemp -d /tmp/pg18-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
say "building PostgreSQL $PG18_VERSION into $PREFIX (about 5 minutes)" >&2
rm -rf "$PREFIX"
tar -C "$build" -xJf "$VENDOR/postgresql-$PG18_VERSION.tar.xz"
(
	cd "$build/postgresql-$PG18_VERSION"
	# shellcheck disable=SC2086
	./configure --prefix="$PREFIX" $CONFIGURE_OPTS >configure.log 2>&1 ||
		{ tail -30 configure.log; exit 1; }
	make -s -j"$(nproc)" >make.log 2>&1 || { tail -40 make.log; exit 1; }
	make -s install >/dev/null
	for d in contrib/postgres_fdw contrib/dblink src/test/isolation; do
		make -s -C "$d" -j"$(nproc)" >/dev/null && make -s -C "$d" install >/dev/null
	done
) >&2

say "building PL/Proxy $PLPROXY_VERSION for it" >&2
tar -C "$build" -xzf "$VENDOR/plproxy-$PLPROXY_VERSION.tar.gz"
(
	cd "$build"/plproxy-*/
	make -s PG_CONFIG="$PREFIX/bin/pg_config" >make.log 2>&1 || { tail -30 make.log; exit 1; }
	make -s PG_CONFIG="$PREFIX/bin/pg_config" install >/dev/null
) >&2
echo "$RECIPE" >"$STAMP"
echo "$PREFIX/bin/pg_config"
