#!/usr/bin/env bash
# Build every libFuzzer harness in tests/fuzz/ and run each for
# FUZZ_SECONDS (default 30).  Crashes land in build/fuzz/<name>/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
secs=${FUZZ_SECONDS:-30}
flags=(-std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -Iinclude -Isrc $(pkg-config --cflags jansson))
for h in tests/fuzz/fuzz_*.c; do
	name=$(basename "$h" .c)
	sub=${name#fuzz_}
	out=build/fuzz/$name
	mkdir -p "$out/corpus"
	clang "${flags[@]}" -o "$out/$name" "$h" "src/$sub.c" src/text.c $(pkg-config --libs jansson)
	echo "fuzzing $name for ${secs}s"
	(cd "$out" && "./$name" -max_total_time="$secs" -max_len=8192 corpus >/dev/null 2>"$name.log") ||
		{ echo "$name found a crash: see $out/$name.log" >&2; exit 1; }
done
echo "fuzz: no findings"
