#!/usr/bin/env bash
# `make run`: quick-start command one.
#
# Installs what is missing, builds, provisions a private PostgreSQL under
# var/ when DATABASE_URL is unset, generates development secrets into
# var/secrets (mode 0600, reused), and runs Switchboard in the foreground.
# Migrations and the first super-admin happen inside the server at start.
# Ctrl-C stops everything this script started.
#
# Knobs: DATABASE_URL, PORT (8080), SB_BIND (127.0.0.1), SB_ADMIN_PASSWORD,
# SB_JWT_SECRET, SB_DATA_KEY, SB_DATA_KEYS_RETIRED, SB_INDEX_KEY, SB_CONFIG (conf/switchboard.conf), SB_WORKERS,
# and SB_<PLUGIN>_<KEY> for any plugin setting (e.g. SB_CALLS_DAILY_API_KEY).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
VAR=${SB_VAR:-$ROOT/var}
export SB_VAR=$VAR

say() { printf 'switchboard: %s\n' "$*"; }

scripts/deps.sh
make -s build

mkdir -p "$VAR/secrets" "$VAR/run" "$VAR/chroot"
chmod 0700 "$VAR/secrets"

# A development secret, generated once and reused: production sets its own.
secret() {
	local file=$VAR/secrets/$1
	if [[ ! -s $file ]]; then
		(umask 077 && openssl rand -hex 32 > "$file")
		say "generated a development secret in $file (production must set its own)" >&2
	fi
	cat "$file"
}

if [[ -z ${SB_JWT_SECRET:-} ]]; then
	SB_JWT_SECRET=$(secret jwt_secret)
	export SB_JWT_SECRET
fi
# The key plugins seal stored secrets with: losing it loses them.
if [[ -z ${SB_DATA_KEY:-} ]]; then
	SB_DATA_KEY=$(secret data_key)
	export SB_DATA_KEY
fi
# The media plugin's store and the whatsapp plugin's spool, beside the
# other state.
export SB_MEDIA_DIR=${SB_MEDIA_DIR:-$VAR/media}
export SB_WHATSAPP_SPOOL_DIR=${SB_WHATSAPP_SPOOL_DIR:-$VAR/whatsapp}
# The key of blind indexes (equality lookups on sealed values): separate
# from the data key, so that rotating the data key keeps every index.
if [[ -z ${SB_INDEX_KEY:-} ]]; then
	SB_INDEX_KEY=$(secret index_key)
	export SB_INDEX_KEY
fi

started_pg=0
if [[ -z ${DATABASE_URL:-} ]]; then
	if ! scripts/pg.sh status >/dev/null 2>&1; then
		scripts/pg.sh start
		started_pg=1
	fi
	DATABASE_URL=$(scripts/pg.sh url)
	export DATABASE_URL
fi

PORT=${PORT:-8080}
export PORT
FLAGS=(-f)
if [[ $(id -u) -eq 0 ]]; then
	# The worker sandbox: chroot into var/chroot, drop to `switchboard`.
	id switchboard >/dev/null 2>&1 ||
		useradd --system --no-create-home --shell /usr/sbin/nologin switchboard
	export SB_CHROOT=$VAR/chroot
else
	say "not running as root: workers keep this user and skip the chroot (seccomp stays on)"
	export SB_CHROOT=""
	FLAGS+=(-n -r)
fi
SB_PIDFILE=$VAR/run/kore.pid scripts/kore-conf.sh kore.conf > "$VAR/run/kore.conf"

cleanup() {
	if [[ -n ${kore_pid:-} ]] && kill -0 "$kore_pid" 2>/dev/null; then
		kill -TERM "$kore_pid" 2>/dev/null || true
		wait "$kore_pid" 2>/dev/null || true
	fi
	if ((started_pg)); then
		scripts/pg.sh stop || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat <<MSG

  Switchboard is starting on http://${SB_BIND:-127.0.0.1}:$PORT/
  Open the console there and sign in as "admin": the password is
  SB_ADMIN_PASSWORD if you set it, or printed below the first time.
  Donors: http://127.0.0.1:$PORT/donor   From a shell:
    curl -s http://127.0.0.1:$PORT/api/v1/auth/login \\
      -H 'content-type: application/json' \\
      -d '{"username":"admin","password":"..."}'
  API reference: http://127.0.0.1:$PORT/docs   Stop with Ctrl-C.

MSG

# stdbuf: Kore's own log lines are printf'd, block-buffered into a pipe.
stdbuf -oL build/kore "${FLAGS[@]}" -c "$VAR/run/kore.conf" &
kore_pid=$!
wait "$kore_pid"
