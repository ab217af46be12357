#!/usr/bin/env bash
# Build the libFuzzer harnesses in tests/fuzz/ and run each for
# FUZZ_SECONDS (default 30).
#
#   scripts/fuzz.sh              every harness
#   scripts/fuzz.sh edge router  the named ones (tests/fuzz/fuzz_<name>.c)
#
# A harness fuzzes src/<name>.c (with src/text.c) unless it names its
# sources itself with a line "/* fuzz-sources: a.c b.c */", and links
# with jansson alone unless it names more libraries with a line
# "/* fuzz-libs: -lcrypto */".
#
# Each harness starts from its committed corpus, tests/fuzz/corpus/<name>/
# (read only), and writes what it finds new to build/fuzz/<name>/corpus/.
# A crash, leak or timeout leaves its input in build/fuzz/<name>/ and
# fails the run; `make test` runs every harness this way (30 s each), and
# `make fuzz` runs them longer (FUZZ_SECONDS=300 by default there).
# Refresh the committed corpus from a long run with:
#   build/fuzz/<name>/fuzz_<name> -merge=1 tests/fuzz/corpus/<name> build/fuzz/<name>/corpus
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
secs=${FUZZ_SECONDS:-30}
flags=(-std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -Iinclude -Isrc $(pkg-config --cflags jansson))

names=("$@")
if ((${#names[@]} == 0)); then
	for h in tests/fuzz/fuzz_*.c; do names+=("$(basename "$h" .c)"); done
	names=("${names[@]#fuzz_}")
fi

failed=0
for sub in "${names[@]}"; do
	name=fuzz_$sub
	out=build/fuzz/$name
	seeds=tests/fuzz/corpus/$sub
	mkdir -p "$out/corpus"
	# A C++ subsystem (src/phone.cc) is compiled by clang++ with the
	# same sanitizers and linked with its libraries.
	srcs=("src/$sub.c" src/text.c)
	extra=()
	# A harness of code outside src/ names it on a line of its own:
	#   /* fuzz-sources: plugins/media/probe.c plugins/media/zipcheck.c */
	if decl=$(sed -nE 's|^/\* fuzz-sources: (.*) \*/$|\1|p' "tests/fuzz/$name.c") &&
	    [[ -n $decl ]]; then
		read -ra srcs <<<"$decl"
	fi
	libs=()
	if decl=$(sed -nE 's|^/\* fuzz-libs: (.*) \*/$|\1|p' "tests/fuzz/$name.c") &&
	    [[ -n $decl ]]; then
		read -ra libs <<<"$decl"
	fi
	if [[ -f src/$sub.cc ]]; then
		srcs=("$out/$sub.o")
		extra=(-fsanitize-link-c++-runtime -lphonenumber -lprotobuf -lstdc++)
		if ! clang++ -std=gnu++17 -D_GNU_SOURCE -g -O1 \
		    -fsanitize=fuzzer-no-link,address,undefined \
		    -fno-sanitize-recover=all -Isrc -c "src/$sub.cc" -o "$out/$sub.o"; then
			echo "FAIL fuzz $sub: does not build"
			failed=$((failed + 1))
			continue
		fi
	fi
	if ! clang "${flags[@]}" -o "$out/$name" "tests/fuzz/$name.c" "${srcs[@]}" \
	    $(pkg-config --libs jansson) "${extra[@]}" "${libs[@]}"; then
		echo "FAIL fuzz $sub: does not build"
		failed=$((failed + 1))
		continue
	fi
	dirs=("$out/corpus")
	[[ -d $seeds ]] && dirs+=("$seeds")
	if "$out/$name" -max_total_time="$secs" -max_len=8192 -timeout=10 \
	    -artifact_prefix="$out/" "${dirs[@]}" >"$out/$name.log" 2>&1; then
		runs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$out/$name.log" | tail -n1)
		echo "ok   fuzz $sub (${secs}s, ${runs:-?} runs)"
	else
		echo "FAIL fuzz $sub: a finding, see $out/$name.log and $out/crash-*"
		tail -n 30 "$out/$name.log"
		failed=$((failed + 1))
	fi
done
((failed == 0))
