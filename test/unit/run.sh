#!/bin/bash
# test/unit/run.sh: build and run the unit tests of the pure cores, with
# AddressSanitizer and UndefinedBehaviorSanitizer.  They need no server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${UNIT_BUILD:-$here/build}
mkdir -p "$build"

# test -> pure-core sources it links, and libraries
declare -A sources=(
	[test_base62]="src/base62.c"
	[test_routing]="src/routing.c"
	[test_permute]="src/permute.c"
	[test_validate]="src/validate.c src/idn.c"
	[test_hll]="src/hll.c"
	[test_visitdims]="src/visitdims.c"
	[test_gcra]="src/gcra.c"
	[test_tinylfu]="src/tinylfu.c"
)
declare -A libs=(
	[test_base62]=""
	[test_routing]="-lm"
	[test_permute]="-lsodium"
	[test_validate]="-licuuc -licui18n"
	[test_hll]="-lxxhash -lm"
	[test_visitdims]=""
	[test_gcra]="-lm"
	[test_tinylfu]="-pthread"
)

for t in "${!sources[@]}"; do
	srcs=()
	for s in ${sources[$t]}; do srcs+=("$repo/$s"); done
	gcc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
		-fno-sanitize-recover=all -I"$repo/src" -I"$here" \
		"$here/$t.c" "${srcs[@]}" -o "$build/$t" ${libs[$t]}
	"$build/$t"
done
