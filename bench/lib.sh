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
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export SB_VAR=$ROOT/build/bench-var
OUT=$ROOT/build/bench-out
pid=
db=

bench_cleanup() {
	if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	if [[ -n $db ]]; then
		scripts/pg.sh psql -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	scripts/pg.sh stop >/dev/null 2>&1 || true
}

bench_init() {
	local base
	mkdir -p "$OUT" "$SB_VAR/chroot"
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
