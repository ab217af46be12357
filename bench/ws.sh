#!/usr/bin/env bash
# WebSocket fan-out benchmark: N connections (default 5,000) to one
# Switchboard node with 2 workers, all in one room; events published at a
# steady rate through HTTP; prints delivery latency (p50/p99), delivery
# counts and memory per idle connection.  See bench/ws.mjs.
#
#   make build && bench/ws.sh
#   WS_CONNECTIONS=5000 WS_EVENTS=200 WS_RATE=10 WS_CLIENTS=2 bench/ws.sh
#
# Starts its own PostgreSQL under build/bench-var, loads the test plugin
# roomy (build/tests/plugins/roomy.so) for its publish route, and raises
# the file-descriptor limit for itself and the client processes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export SB_VAR=$ROOT/build/bench-var
OUT=$ROOT/build/bench-out
mkdir -p "$OUT" "$SB_VAR/chroot"

N=${WS_CONNECTIONS:-5000}
# Client sockets, the server's sockets when on this machine, and slack.
need=$((N + 2048))
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < need)); then
	echo "bench: the hard file-descriptor limit ($hard) is below $need: raise it (ulimit -Hn) first" >&2
	exit 1
fi
ulimit -n "$need"

[[ -x build/kore && -f build/switchboard.so && -f build/tests/plugins/roomy.so ]] ||
	{ echo "bench: run 'make build' first" >&2; exit 1; }

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

scripts/pg.sh start >/dev/null
export DATABASE_URL; DATABASE_URL=$(scripts/pg.sh url)
export SB_JWT_SECRET=bench-secret-0123456789abcdef0123456789abcdef
export SB_ADMIN_PASSWORD=bench-admin-password

port=$(free_port)
cat > "$OUT/ws-switchboard.conf" <<CONF
[host]
access_log = no
rate_limit = 0
ws_max_per_user = $((N + 100))

[plugin roomy]
path = $ROOT/build/tests/plugins/roomy.so
source_dir = $ROOT/tests/plugins
CONF
PORT=$port SB_WORKERS=${WS_WORKERS:-2} SB_PIDFILE=$OUT/ws.pid scripts/kore-conf.sh kore.conf > "$OUT/ws-kore.conf"
SB_CONFIG=$OUT/ws-switchboard.conf build/kore -f "${sandbox[@]}" -c "$OUT/ws-kore.conf" > "$OUT/ws.log" 2>&1 &
kore_pid=$!
pids+=("$kore_pid")

for _ in $(seq 1 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
	sleep 0.1
done

WS_PORT=$port WS_KORE_PID=$kore_pid WS_CONNECTIONS=$N node bench/ws.mjs
