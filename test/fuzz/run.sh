#!/bin/bash
# test/fuzz/run.sh: build every libFuzzer target in test/fuzz and run each
# for a bounded number of executions; any finding fails the run.
#
#   FUZZ_RUNS   executions per target (default 1000000, the least: six targets
#               at 2,000,000 took 8 of the 45 minutes CI may take)
#   FUZZ_BUILD  build directory (default test/fuzz/build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${FUZZ_RUNS:-1000000}
build=${FUZZ_BUILD:-$here/build}
mkdir -p "$build"

# target -> pure-core sources it drives, and libraries it links
declare -A sources=(
	[fuzz_base62]="src/base62.c"
	[fuzz_validate]="src/validate.c src/idn.c"
	[fuzz_hll]="src/hll.c"
	[fuzz_visitdims]=""	# it includes src/visitdims.c itself
	[fuzz_gcra]="src/gcra.c"
	[fuzz_tinylfu]="src/tinylfu.c"
)
declare -A libs=(
	[fuzz_base62]=""
	[fuzz_validate]="-licuuc -licui18n"
	[fuzz_hll]="-lxxhash -lm"
	[fuzz_visitdims]=""
	[fuzz_gcra]="-lm"
	[fuzz_tinylfu]=""
)

for target in "${!sources[@]}"; do
	srcs=()
	for s in ${sources[$target]}; do srcs+=("$repo/$s"); done
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Wall -Wextra -Werror -I"$repo/src" \
		"$here/$target.c" "${srcs[@]}" -o "$build/$target" ${libs[$target]}
	corpus="$build/corpus-$target"
	mkdir -p "$corpus"
	[ -d "$here/seeds/$target" ] && cp -n "$here/seeds/$target"/* "$corpus/" 2>/dev/null || true
	echo "fuzzing $target for $runs executions"
	log="$build/$target.log"
	if ! (cd "$build" && "./$target" -runs="$runs" -max_len=256 -print_final_stats=1 \
		"$corpus" >"$log" 2>&1); then
		tail -n 80 "$log"
		echo "FAILED: fuzz target $target found a problem (log: $log)"
		exit 1
	fi
	grep -E '^(INFO: Seed|stat::number_of_executed_units|stat::new_units_added)' "$log"
done
