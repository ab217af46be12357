#!/usr/bin/env bash
# Request-path benchmark: wrk against Switchboard's GET /healthz and
# against a bare Kore route (bench/bare) built with the same Kore binary,
# feature flags and compiler options, then against the authenticated
# GET /api/v1/users/me (JWT verification, the user/role/session lookup in
# PostgreSQL, the JSON profile).  Prints the figures and the ratios.
#
#   make bench            (builds first)
#   BENCH_DURATION=10s BENCH_CONNECTIONS=64 BENCH_THREADS=2 bench/run.sh
#
# Both servers run 2 workers on this machine's 2 cores beside wrk itself,
# so absolute figures are a floor; the ratio is the number to watch.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export SB_VAR=$ROOT/build/bench-var
DUR=${BENCH_DURATION:-10s}
CONN=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
OUT=$ROOT/build/bench-out
mkdir -p "$OUT" "$SB_VAR/chroot"

command -v wrk >/dev/null || { echo "bench: wrk is not installed (make deps)" >&2; exit 1; }

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	scripts/pg.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sandbox=()
if [[ $(id -u) -eq 0 ]]; then export SB_CHROOT=$SB_VAR/chroot; else export SB_CHROOT=""; sandbox=(-n -r); fi

wait_up() {
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: server on port $1 did not come up" >&2
	return 1
}

scripts/pg.sh start >/dev/null
export DATABASE_URL; DATABASE_URL=$(scripts/pg.sh url)
export SB_JWT_SECRET=bench-secret-0123456789abcdef0123456789abcdef
export SB_ADMIN_PASSWORD=bench-admin-password

# Switchboard as shipped, with the access log off (it would measure the
# terminal); the log line is measured separately below.
sb_port=$(free_port)
cat > "$OUT/switchboard.conf" <<CONF
[host]
access_log = no
rate_limit = 0
CONF
PORT=$sb_port SB_PIDFILE=$OUT/sb.pid scripts/kore-conf.sh kore.conf > "$OUT/sb-kore.conf"
SB_CONFIG=$OUT/switchboard.conf build/kore -f "${sandbox[@]}" -c "$OUT/sb-kore.conf" > "$OUT/sb.log" 2>&1 &
pids+=($!)

bare_port=$(free_port)
PORT=$bare_port SB_CHROOT="" SB_PIDFILE=$OUT/bare.pid scripts/kore-conf.sh bench/bare/kore.conf > "$OUT/bare-kore.conf"
build/kore -f -n -r -c "$OUT/bare-kore.conf" > "$OUT/bare.log" 2>&1 &
pids+=($!)

wait_up "$sb_port"
wait_up "$bare_port"

run() {
	local name=$1 port=$2 path=${3:-/healthz}
	shift 3 || shift $#
	wrk -t"$THREADS" -c"$CONN" -d5s "$@" "http://127.0.0.1:$port$path" >/dev/null	# warm-up
	wrk -t"$THREADS" -c"$CONN" -d"$DUR" --latency "$@" "http://127.0.0.1:$port$path" > "$OUT/$name.txt"
	if grep -q "Non-2xx" "$OUT/$name.txt"; then
		echo "bench: $name answered non-2xx responses:" >&2
		cat "$OUT/$name.txt" >&2
		exit 1
	fi
	sed -nE 's/^Requests\/sec: *([0-9.]+)/\1/p' "$OUT/$name.txt"
}

token=$(curl -fsS "http://127.0.0.1:$sb_port/api/v1/auth/login" -H 'content-type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$SB_ADMIN_PASSWORD\"}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

sb_rps=$(run switchboard "$sb_port" /healthz)
bare_rps=$(run bare "$bare_port" /healthz)
me_rps=$(run users-me "$sb_port" /api/v1/users/me -H "Authorization: Bearer $token")
lat() { awk '/Latency Distribution/{f=1} f && $1=="50%"{p50=$2} f && $1=="99%"{p99=$2} END{print "p50 " p50 ", p99 " p99}' "$OUT/$1.txt"; }

echo "wrk -t$THREADS -c$CONN -d$DUR http://127.0.0.1:PORT/healthz"
printf 'switchboard /healthz: %10.0f req/s  (%s)\n' "$sb_rps" "$(lat switchboard)"
printf 'bare kore /healthz:   %10.0f req/s  (%s)\n' "$bare_rps" "$(lat bare)"
awk -v a="$sb_rps" -v b="$bare_rps" 'BEGIN { printf "ratio switchboard/bare: %.2f\n", a / b }'
echo
echo "wrk -t$THREADS -c$CONN -d$DUR -H 'Authorization: Bearer <token>' http://127.0.0.1:PORT/api/v1/users/me"
printf 'switchboard /api/v1/users/me: %10.0f req/s  (%s)\n' "$me_rps" "$(lat users-me)"
awk -v a="$me_rps" -v b="$sb_rps" 'BEGIN { printf "ratio users-me/healthz: %.2f (the cost of authentication)\n", a / b }'
