#!/usr/bin/env bash
# `make test`: quick-start command two.  Builds, starts a private test
# PostgreSQL under build/test-var, runs every test layer and ends with one
# line "N passed, N failed".
#
#   layers: C unit tests (cmocka, normal and ASan/UBSan builds) -> the
#           unit tests under valgrind -> every libFuzzer harness for 30 s
#           -> black-box HTTP tests (node --test)
#           against the normal build -> the same black-box suite against
#           the ASan/UBSan build (SB_TEST_SANITIZE=0 skips it) -> the
#           console end to end in headless Chromium (tests/browser/),
#           on both builds.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export SB_VAR=$ROOT/build/test-var
RESULTS=$ROOT/build/test-results
passed=0
failed=0

say() { printf '\n== %s\n' "$*"; }

scripts/deps.sh || exit 1
make -s build || { echo "0 passed, 1 failed"; exit 1; }
if [[ ${SB_TEST_SANITIZE:-1} != 0 ]]; then
	make -s sanitize || { echo "0 passed, 1 failed"; exit 1; }
fi
mkdir -p "$RESULTS"

# --- C unit tests -------------------------------------------------------
say "unit tests (cmocka)"
units=(build/tests/test_*)
if [[ ${SB_TEST_SANITIZE:-1} != 0 ]]; then units+=(build/asan/tests/test_*); fi
for t in "${units[@]}"; do
	[[ -x $t && $t != *_asan ]] || continue
	echo "-- $t"
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -E '^\[ *(PASSED|FAILED|  OK|RUN|ERROR) *\]|^\[==========\]' | grep -v '^\[ RUN' | tail -n 4
	p=$(printf '%s\n' "$out" | sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' | tail -n1)
	f=$(printf '%s\n' "$out" | sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*/\1/p' | tail -n1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [[ $rc -ne 0 && -z $f ]]; then
		echo "$t exited $rc"
		failed=$((failed + 1))
	fi
done

# --- valgrind over the unit tests ---------------------------------------
# Any memory error fails; of leaks, definite and indirect ones do (memory
# still reachable at exit, e.g. in forked test children, is not a leak).
say "valgrind (unit tests)"
for t in build/tests/test_*; do
	[[ -x $t ]] || continue
	if valgrind -q --error-exitcode=99 --leak-check=full \
	    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	    "$t" >"$RESULTS/valgrind-$(basename "$t").log" 2>&1; then
		echo "ok   valgrind $t"
		passed=$((passed + 1))
	else
		echo "FAIL valgrind $t (see $RESULTS/valgrind-$(basename "$t").log)"
		failed=$((failed + 1))
	fi
done

# --- libFuzzer: every harness in tests/fuzz, bounded ----------------------
# From the committed corpus, SB_TEST_FUZZ_SECONDS (30) each; a crash, leak
# or timeout fails.  `make fuzz` runs them longer.
say "fuzz (libFuzzer, ${SB_TEST_FUZZ_SECONDS:-30}s per harness)"
for h in tests/fuzz/fuzz_*.c; do
	sub=$(basename "$h" .c)
	sub=${sub#fuzz_}
	if FUZZ_SECONDS=${SB_TEST_FUZZ_SECONDS:-30} scripts/fuzz.sh "$sub"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done

# --- PostgreSQL for the black-box tests ---------------------------------
say "test database"
scripts/pg.sh start || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }
SB_TEST_DATABASE_URL=$(scripts/pg.sh url)
export SB_TEST_DATABASE_URL
trap 'scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT

run_node() {
	local build=$1 tap=$RESULTS/$3-$2.tap dir=tests/$3/
	say "black-box $3 tests against $build"
	SB_BUILD=$build node --test --test-concurrency=1 \
		--test-reporter=spec --test-reporter-destination=stdout \
		--test-reporter=tap --test-reporter-destination="$tap" \
		"$dir"
	local rc=$?
	local p f
	p=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$tap" | tail -n1)
	f=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$tap" | tail -n1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [[ $rc -ne 0 && ${f:-0} -eq 0 ]]; then
		echo "node --test exited $rc"
		failed=$((failed + 1))
	fi
}

run_node build normal http
if [[ ${SB_TEST_SANITIZE:-1} != 0 ]]; then
	run_node build/asan asan http
fi
# The console end to end in headless Chromium (screenshots under
# $RESULTS/screenshots): the normal build, then the ASan/UBSan one, so
# the flows the console drives run under the sanitizers too.
rm -rf "$RESULTS/screenshots"
run_node build normal browser
if [[ ${SB_TEST_SANITIZE:-1} != 0 ]]; then
	run_node build/asan asan browser
fi

echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
