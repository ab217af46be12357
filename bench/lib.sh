# Sourced by the bench scripts: what each of them needs before measuring.
#
#   bench_init NAME     ROOT, OUT (build/bench-out), SB_VAR (build/bench-var);
#                       the bench PostgreSQL started, a throwaway database
#                       sbbench_NAME_<pid> created, DATABASE_URL and the
#                       secrets exported, a free port in $port; on exit the
#                       server is stopped, the database dropped and
#                       PostgreSQL stopped.
#   bench_start NAME    Switchboard with $BENCH_WORKERS (2) workers and $OUT/NAME.conf (which
#                       the script writes between the two calls), in the
#                       sandbox when run as root; returns once /healthz
#                       answers, or exits with the server's log.
#   bench_fake SCRIPT   a fake provider (bench/NAME-fake.mjs, node) started;
#                       returns once it has printed its one JSON line into
#                       $fake_json, or exits with its log; stopped on exit.
#   sql QUERY           one statement in the bench database (unaligned,
#                       tuples only).
#   bench_wrk RUN DURATION MODE EXPECT PATH [VAR=VALUE...]
#                       wrk -t2 -c64 --timeout 30s with bench/post-wrk.lua
#                       (MODE, EXPECT and the VARs are its environment) into
#                       $OUT/NAME-RUN.txt; exits on an unexpected status, a
#                       socket error or, unless RUN ends in "warmup" or
#                       matches the glob $wrk_repeats_ok, a body sent twice.
#   wrk_rps RUN, wrk_lat RUN, wrk_responses RUN
#                       requests/s; "avg A, p50 B, p90 C, p99 D, max E";
#                       the answers counted by post-wrk.lua.
#   until_empty TABLE   returns once TABLE has no row (polled every 50 ms;
#                       exits after 600 s).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export SB_VAR=$ROOT/build/bench-var
OUT=$ROOT/build/bench-out
pid=
db=
fake_pid=
bench_name=
wrk_repeats_ok=

bench_cleanup() {
	if [[ -n $fake_pid ]]; then kill -TERM "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null || true; fi
	if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	if [[ -n $db ]]; then
		scripts/pg.sh psql -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	scripts/pg.sh stop >/dev/null 2>&1 || true
}

bench_init() {
	local base
	mkdir -p "$OUT" "$SB_VAR/chroot"
	bench_name=$1
	db=sbbench_$1_$$
	trap bench_cleanup EXIT
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	sandbox=()
	if [[ $(id -u) -eq 0 ]]; then export SB_CHROOT=$SB_VAR/chroot; else export SB_CHROOT=""; sandbox=(-n -r); fi
	scripts/pg.sh start >/dev/null
	base=$(scripts/pg.sh url)
	scripts/pg.sh psql -qc "CREATE DATABASE $db" >/dev/null
	export DATABASE_URL=${base/dbname=switchboard/dbname=$db}
	export SB_JWT_SECRET=bench-secret-0123456789abcdef0123456789abcdef
	export SB_DATA_KEY=bench-data-key-0123456789abcdef0123456789abcdef
	export SB_ADMIN_PASSWORD=bench-admin-password
}

bench_start() {
	local name=$1 up=
	PORT=$port SB_WORKERS=${BENCH_WORKERS:-2} SB_PIDFILE=$OUT/$name.pid scripts/kore-conf.sh kore.conf > "$OUT/$name-kore.conf"
	SB_CONFIG=$OUT/$name.conf build/kore -f "${sandbox[@]}" -c "$OUT/$name-kore.conf" > "$OUT/$name.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && { up=1; break; }
		sleep 0.1
	done
	[[ -n $up ]] || { echo "bench: the server did not come up:" >&2; cat "$OUT/$name.log" >&2; exit 1; }
}

bench_fake() {
	local log=$OUT/$bench_name-fake.log
	fake_json=$OUT/$bench_name-fake.json
	rm -f "$fake_json"
	node "$1" > "$fake_json" 2> "$log" &
	fake_pid=$!
	for _ in $(seq 1 100); do
		[[ -s $fake_json ]] && return 0
		sleep 0.1
	done
	echo "bench: the fake ($1) did not start:" >&2
	cat "$log" >&2
	exit 1
}

sql() { scripts/pg.sh psql -d "$db" -qtAc "$1"; }

bench_wrk() {
	local run=$1 d=$2 mode=$3 expect=$4 path=$5 f
	shift 5
	f=$OUT/$bench_name-$run.txt
	env "$@" BENCH_MODE="$mode" BENCH_EXPECT="$expect" BENCH_THREADS=2 \
	    wrk -t2 -c64 -d"$d" --timeout 30s --latency -s bench/post-wrk.lua \
	    "http://127.0.0.1:$port$path" > "$f"
	if ! grep -qE '^post-wrk: responses [1-9][0-9]* unexpected 0 ' "$f" ||
	    grep -qE 'Socket errors' "$f" ||
	    { [[ $run != *warmup && ( -z $wrk_repeats_ok || $run != $wrk_repeats_ok ) ]] &&
	    ! grep -qE ' repeated 0$' "$f"; }; then
		echo "bench: $run had failures:" >&2
		cat "$f" >&2
		exit 1
	fi
}

wrk_rps() { sed -nE 's/^Requests\/sec: *([0-9.]+)/\1/p' "$OUT/$bench_name-$1.txt"; }
wrk_lat() { awk '$1=="Latency" && NF>2 {avg=$2; max=$4} /Latency Distribution/{f=1} f && $1=="50%"{p50=$2}
	f && $1=="90%"{p90=$2} f && $1=="99%"{p99=$2} END{print "avg " avg ", p50 " p50 ", p90 " p90 ", p99 " p99 ", max " max}' \
	"$OUT/$bench_name-$1.txt"; }
wrk_responses() { sed -nE 's/^post-wrk: responses ([0-9]+) .*/\1/p' "$OUT/$bench_name-$1.txt"; }

until_empty() {
	local t0=$SECONDS
	while (($(sql "SELECT count(*) FROM $1") > 0)); do
		((SECONDS - t0 < 600)) || { echo "bench: $1 is not empty after 600 s" >&2; exit 1; }
		sleep 0.05
	done
}
