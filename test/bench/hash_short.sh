#!/bin/bash
# test/bench/hash_short.sh: hash64's hash (XXH64) against hashtext's
# (PostgreSQL's hash_bytes) on short keys, outside SQL.  See hash_short.c.
#
# Needs no server and no root: it builds the program with gcc -O2 into a
# temporary directory, against the server's libpgcommon.a, and runs it.
# Needs gcc, libxxhash-dev and postgresql-server-dev-15.
#
#   PG_CONFIG     the server whose libpgcommon.a to link (default: 15's)
#   BENCH_CFLAGS  extra compiler flags (default none)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

work=$(mktemp -d /tmp/pg_shorturl-hash-short.XXXXXX)
trap 'rm -rf "$work"' EXIT

# -O2, as PGXS builds the extension (and the server its libpgcommon)
gcc -std=c11 -O2 -Wall -Wextra -Werror ${BENCH_CFLAGS:-} -I"$repo/src" \
	"$here/hash_short.c" "$repo/src/routing.c" \
	"$("$pg_config" --pkglibdir)/libpgcommon.a" -o "$work/hash_short" -lm

printf 'machine: %s, %s cores, gcc %s\n' \
	"$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" "$(nproc)" \
	"$(gcc -dumpfullversion)"
"$work/hash_short"
