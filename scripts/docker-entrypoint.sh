#!/usr/bin/env bash
# Container entrypoint (see Dockerfile).
#
#   docker-entrypoint.sh              render the runtime kore.conf, exec Kore in the foreground
#   docker-entrypoint.sh healthcheck  exit 0 when GET /healthz answers 2xx (used by HEALTHCHECK)
#   docker-entrypoint.sh CMD [ARG...] run another command in the image (e.g. bash)
#
# Environment:
#   DATABASE_URL     libpq URL or conninfo (required)
#   SB_JWT_SECRET    JWT signing secret (required: a generated one would differ per
#                    container and change on every restart)
#   SB_DATA_KEY      the key plugins seal stored secrets with (meeting tokens,
#                    provider credentials): at least 32 characters, stable and
#                    identical across replicas; without it such plugins answer 503
#   SB_<PLUGIN>_<KEY> any plugin setting, e.g. SB_CALLS_DAILY_API_KEY
#   SB_ADMIN_PASSWORD, SB_CONFIG   passed through to the host (SB_CONFIG defaults to
#                    conf/switchboard.conf of the application; mount your own copy)
#   PORT             listening port (default 8080)
#   SB_BIND          listening address (default 0.0.0.0: the container's network
#                    namespace is the boundary; publish the port on 127.0.0.1 of the host
#                    and put the TLS proxy in front)
#   SB_KORE_CONF     source kore.conf (default: kore.conf of the application)
#   SB_RUNTIME_DIR   writable directory for the rendered kore.conf and the pid file
#                    (default /run/switchboard; with --read-only, mount a tmpfs there)
#
# The image already runs as an unprivileged user, so Kore gets -n -r (no chroot, no
# privilege drop): its seccomp sandbox still applies to the workers.  The runtime
# kore.conf is rendered by scripts/kore-conf.sh, as for `make run`: `bind $SB_BIND $PORT`,
# no `root`/`runas`, the pid file in $SB_RUNTIME_DIR.
set -euo pipefail

die() { printf 'docker-entrypoint: error: %s\n' "$*" >&2; exit 1; }

APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PORT=${PORT:-8080}
SB_BIND=${SB_BIND:-0.0.0.0}

healthcheck() {
	local host=$SB_BIND
	case $host in
	0.0.0.0 | '*') host=127.0.0.1 ;;
	:: | '[::]') host='[::1]' ;;
	*:*) host="[$host]" ;;
	esac
	exec curl -fsS -o /dev/null --max-time 4 "http://$host:$PORT/healthz"
}

serve() {
	local src rundir kore conf
	(($(id -u) != 0)) || die "refusing to run Kore as root with -n -r: run the image as its default user (switchboard)"
	[[ -n ${DATABASE_URL:-} ]] || die "DATABASE_URL is not set (a libpq URL or conninfo of the PostgreSQL server)"
	[[ -n ${SB_DATA_KEY:-} ]] || echo "switchboard: SB_DATA_KEY is not set: plugins that store secrets will answer 503" >&2
	[[ -n ${SB_JWT_SECRET:-} ]] || die "SB_JWT_SECRET is not set (e.g. openssl rand -hex 32; keep it stable and identical across replicas)"

	cd "$APP"
	SB_CONFIG=${SB_CONFIG:-$APP/conf/switchboard.conf}
	export DATABASE_URL SB_JWT_SECRET PORT SB_BIND SB_CONFIG

	src=${SB_KORE_CONF:-$APP/kore.conf}
	[[ -r $src ]] || die "cannot read $src"
	kore=${SB_KORE_BIN:-$APP/build/kore}
	[[ -x $kore ]] || die "$kore is missing"

	rundir=${SB_RUNTIME_DIR:-/run/switchboard}
	if ! { mkdir -p "$rundir" 2>/dev/null && [[ -w $rundir ]]; }; then
		rundir=$(mktemp -d "${TMPDIR:-/tmp}/switchboard.XXXXXX") ||
			die "no writable runtime directory: mount a tmpfs at ${SB_RUNTIME_DIR:-/run/switchboard}"
	fi
	# The same renderer as `make run`: bind $SB_BIND $PORT, no root/runas, pid file here.
	conf=$rundir/kore.conf
	SB_CHROOT='' SB_PIDFILE=$rundir/kore.pid "$APP/scripts/kore-conf.sh" "$src" >"$conf.tmp" ||
		die "could not render $conf from $src"
	mv -f "$conf.tmp" "$conf"

	# Kore logs with printf to stdout, block-buffered on a pipe: line-buffer it so that
	# `docker logs` keeps up.  exec: Kore becomes PID 1 and gets SIGTERM on `docker stop`.
	if command -v stdbuf >/dev/null 2>&1; then
		exec stdbuf -oL -eL "$kore" -f -n -r -c "$conf"
	fi
	exec "$kore" -f -n -r -c "$conf"
}

case ${1:-} in
'') serve ;;
healthcheck) healthcheck ;;
*) exec "$@" ;;
esac
