#!/bin/bash
# test/bench/route_methods.sh: weighted rendezvous hashing (route()'s method,
# src/routing.c) against a consistent-hash ring with 16 to 1024 virtual
# nodes per unit of weight: balance, cost, memory and movement when a node
# joins, for maps of 4, 16 and 64 nodes.  See route_methods.c.
#
# Needs no server and no root: it builds the program with gcc -O2 into a
# temporary directory and runs it.  Needs gcc and libxxhash-dev.
#
#   BENCH_CFLAGS  extra compiler flags (default none)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

work=$(mktemp -d /tmp/pg_shorturl-route-methods.XXXXXX)
trap 'rm -rf "$work"' EXIT

# -O2, as PGXS builds the extension, so route_pick costs what it costs there
gcc -std=c11 -O2 -Wall -Wextra -Werror ${BENCH_CFLAGS:-} -I"$repo/src" \
	"$here/route_methods.c" "$repo/src/routing.c" "$repo/src/base62.c" \
	-o "$work/route_methods" -lm

printf 'machine: %s, %s cores, gcc %s\n' \
	"$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" "$(nproc)" \
	"$(gcc -dumpfullversion)"
"$work/route_methods"
