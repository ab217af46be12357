#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, kept under var/.
#
#   scripts/pg.sh start          init on first use, start, wait until it accepts connections
#   scripts/pg.sh stop           fast shutdown (no-op when stopped)
#   scripts/pg.sh status         exit 0 when running, 3 otherwise
#   scripts/pg.sh url            print the libpq conninfo the host should use (DATABASE_URL)
#   scripts/pg.sh psql [args]    psql as role switchboard on database switchboard
#
# Environment:
#   SB_VAR      state directory (default: <repo>/var)
#   SB_PG_DIR   cluster directory (default: $SB_VAR/pg): data/, run/ (socket), log, port
#   SB_PG_USER  system user that owns and runs the cluster when invoked as root
#               (default: switchboard, created on demand)
#   SB_PG_BIN   directory with initdb, pg_ctl, psql, pg_isready
#               (default: /usr/lib/postgresql/<version>/bin)
#
# Why it is built this way:
# - Kore workers chroot and drop privileges, so the host reaches the server over TCP on
#   127.0.0.1 only; the port is picked once (54329 upward) and kept in $SB_PG_DIR/port.
#   The unix socket lives in $SB_PG_DIR/run (mode 0700), never in /var/run/postgresql.
# - Role "switchboard" (LOGIN CREATEDB, not a superuser) owns database "switchboard" and
#   logs in with scram-sha-256.  Its password is generated once into
#   $SB_VAR/secrets/pg_password (file 0600, directory 0700, owned by whoever runs this
#   script); the server never reads that file.  Each start re-applies it, so the file
#   stays the single source of truth.
# - The bootstrap superuser "postgres" has no password: it can only connect through the
#   private socket with peer authentication, as the OS user running the server.  This
#   script uses it to create or repair the role and the database.
# - PostgreSQL refuses to run as root.  As root, the cluster runs as $SB_PG_USER and
#   $SB_PG_DIR belongs to it; that user needs search (x) permission on every parent
#   directory of $SB_PG_DIR, and nothing else outside it.
set -euo pipefail
umask 022

readonly FIRST_PORT=54329 LAST_PORT=54429 WAIT_SECONDS=30
readonly DB_NAME=switchboard DB_ROLE=switchboard

die() { printf 'pg.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf 'pg.sh: %s\n' "$*"; }

abspath() {
	case $1 in
	/*) printf '%s' "$1" ;;
	*) printf '%s/%s' "$PWD" "$1" ;;
	esac
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SB_VAR=$(abspath "${SB_VAR:-$repo/var}")
SB_PG_DIR=$(abspath "${SB_PG_DIR:-$SB_VAR/pg}")
DATA=$SB_PG_DIR/data
RUN=$SB_PG_DIR/run
LOG=$SB_PG_DIR/log
PORT_FILE=$SB_PG_DIR/port
SECRET_DIR=$SB_VAR/secrets
SECRET_FILE=$SECRET_DIR/pg_password
PG_USER=
PG_BIN=
PORT=
PW=

# The server binaries, matching an existing cluster's major version when there is one.
find_pg_bin() {
	local d ver
	if [[ -n ${SB_PG_BIN:-} ]]; then
		PG_BIN=$SB_PG_BIN
	elif [[ -r $DATA/PG_VERSION ]] && ver=$(<"$DATA/PG_VERSION") &&
		[[ -x /usr/lib/postgresql/$ver/bin/postgres ]]; then
		PG_BIN=/usr/lib/postgresql/$ver/bin
	else
		PG_BIN=
		for d in /usr/lib/postgresql/*/bin; do
			[[ -x $d/postgres ]] || continue
			if [[ -z $PG_BIN ]] || [[ $(printf '%s\n%s\n' "$PG_BIN" "$d" | sort -V | tail -n 1) == "$d" ]]; then
				PG_BIN=$d
			fi
		done
		if [[ -z $PG_BIN ]] && d=$(command -v pg_ctl 2>/dev/null); then
			PG_BIN=$(dirname "$(readlink -f "$d")")
		fi
	fi
	[[ -n $PG_BIN && -x $PG_BIN/pg_ctl ]] ||
		die "PostgreSQL server binaries not found (apt-get install -y postgresql, or set SB_PG_BIN)"
	local tool
	for tool in initdb pg_ctl postgres psql pg_isready; do
		[[ -x $PG_BIN/$tool ]] || die "$PG_BIN/$tool is missing (apt-get install -y postgresql postgresql-client)"
	done
}

# Runs a command as the cluster's OS user, from /, without our lock descriptor (a
# postmaster inheriting fd 9 would hold the lock for its whole life).
as_pg() {
	if ((EUID == 0)); then
		(cd / && exec runuser -u "$PG_USER" -- "$@") 9>&-
	else
		(cd / && exec "$@") 9>&-
	fi
}

# Writes (pg_write) or appends (pg_append) stdin to a file as the cluster's OS user, so
# that the server owns what it reads; new files get mode 0600.
# shellcheck disable=SC2016 # $1 is expanded by the inner sh, on purpose
pg_write() {
	as_pg sh -c 'umask 077 && cat >"$1"' sh "$1"
}

# shellcheck disable=SC2016
pg_append() {
	as_pg sh -c 'umask 077 && cat >>"$1"' sh "$1"
}

initialized() { [[ -f $DATA/PG_VERSION ]]; }

# Decides which OS user owns the cluster: the data directory's owner once it exists.
resolve_user() {
	local owner
	if ((EUID == 0)); then
		command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is required when running as root"
		if initialized; then
			owner=$(stat -c %U "$DATA")
			[[ $owner != root && $owner != UNKNOWN ]] ||
				die "$DATA is owned by '$owner'; PostgreSQL cannot run as root (chown it to ${SB_PG_USER:-switchboard})"
			PG_USER=$owner
		else
			PG_USER=${SB_PG_USER:-switchboard}
			[[ $PG_USER != root ]] || die "SB_PG_USER cannot be root"
			if ! id -u "$PG_USER" >/dev/null 2>&1; then
				useradd --system --user-group --no-create-home --home-dir /nonexistent \
					--shell /usr/sbin/nologin --comment "Switchboard" "$PG_USER" ||
					die "could not create system user $PG_USER"
			fi
		fi
	else
		PG_USER=$(id -un 2>/dev/null) || die "uid $EUID has no user name (peer authentication needs one)"
		if [[ -e $DATA ]] && [[ $(stat -c %u "$DATA") != "$EUID" ]]; then
			die "the cluster in $DATA belongs to $(stat -c %U "$DATA"); run as that user or as root"
		fi
	fi
}

running() {
	initialized && as_pg "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

port_in_use() {
	local p=$1
	if command -v ss >/dev/null 2>&1 && [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then
		return 0
	fi
	# Without ss (minimal images), a successful connect means someone listens.
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

read_port() {
	[[ -r $PORT_FILE ]] || die "no port recorded in $PORT_FILE: run '$0 start' first"
	PORT=$(<"$PORT_FILE")
	if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT < 1 || PORT > 65535)); then
		die "$PORT_FILE does not hold a port number"
	fi
}

pick_port() {
	local p
	for ((p = FIRST_PORT; p <= LAST_PORT; p++)); do
		if ! port_in_use "$p"; then
			printf '%s\n' "$p" | pg_write "$PORT_FILE"
			PORT=$p
			return 0
		fi
	done
	die "no free TCP port on 127.0.0.1 between $FIRST_PORT and $LAST_PORT"
}

ensure_secret() {
	local pw tmp
	if [[ ! -d $SECRET_DIR ]]; then
		mkdir -p "$SB_VAR"
		mkdir -m 0700 "$SECRET_DIR"
	fi
	chmod 0700 "$SECRET_DIR"
	if [[ ! -s $SECRET_FILE ]]; then
		pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
		[[ ${#pw} -eq 48 ]] || die "could not read /dev/urandom"
		tmp=$SECRET_FILE.tmp.$$
		if ! (umask 077 && printf '%s\n' "$pw" >"$tmp" && mv -f "$tmp" "$SECRET_FILE"); then
			rm -f "$tmp"
			die "could not write $SECRET_FILE"
		fi
	fi
	chmod 0600 "$SECRET_FILE"
}

read_secret() {
	[[ -r $SECRET_FILE ]] || die "cannot read $SECRET_FILE (run '$0 start' as the user who created it, or as root)"
	IFS= read -r PW <"$SECRET_FILE" || true
	# Restricted so that it needs no quoting in SQL or in a conninfo string.
	[[ $PW =~ ^[A-Za-z0-9._~+/=-]{16,}$ ]] ||
		die "$SECRET_FILE must hold one line of at least 16 characters from [A-Za-z0-9._~+/=-]"
}

# Directories the server writes to, owned by its user; parents only need to be searchable.
ensure_dirs() {
	mkdir -p "$SB_PG_DIR" "$DATA" "$RUN"
	chmod 0750 "$SB_PG_DIR"
	chmod 0700 "$DATA" "$RUN"
	if ((EUID == 0)); then
		chown "$PG_USER:$(id -gn "$PG_USER")" "$SB_PG_DIR" "$DATA" "$RUN"
		if ! as_pg test -w "$DATA"; then
			# Name the first directory on the way that it may not search.
			local d=/ part parts
			IFS=/ read -ra parts <<<"${SB_PG_DIR#/}"
			for part in "${parts[@]}"; do
				as_pg test -x "$d" || break
				d=${d%/}/$part
			done
			die "user $PG_USER cannot reach $SB_PG_DIR: it may not search $d (chmod o+x it, or set SB_PG_DIR elsewhere)"
		fi
	fi
}

init_cluster() {
	local locale out
	if [[ -n $(ls -A "$DATA") ]]; then
		die "$DATA is not empty but holds no cluster (no PG_VERSION); move it away and retry"
	fi
	locale=(--no-locale)
	if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
		locale=(--locale=C.UTF-8)
	fi
	out=$(as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --encoding=UTF8 "${locale[@]}" \
		--auth-local=peer --auth-host=scram-sha-256 --data-checksums 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "initdb failed in $DATA"; }

	pg_write "$DATA/pg_hba.conf" <<'EOF'
# Written by scripts/pg.sh.
# The superuser only through the private socket, as the OS user running the server;
# everything else over TCP on loopback with a password.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer map=owner
host    all       all       127.0.0.1/32   scram-sha-256
EOF
	printf '# Written by scripts/pg.sh.\nowner  %s  postgres\n' "$PG_USER" | pg_write "$DATA/pg_ident.conf"
	pg_append "$DATA/postgresql.conf" <<'EOF'

# ---- scripts/pg.sh: a small development/CI server (edit freely, kept across starts) ----
max_connections = 100			# a connection per Kore worker, plus jobs, tests, psql
shared_buffers = 128MB
effective_cache_size = 512MB
work_mem = 4MB
maintenance_work_mem = 64MB
min_wal_size = 80MB
max_wal_size = 512MB
checkpoint_completion_target = 0.9
fsync = on				# never off: tests must see the durability the host relies on
synchronous_commit = on
full_page_writes = on
password_encryption = scram-sha-256
ssl = off				# loopback only
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_lock_waits = on
# Address, port and socket directory: rewritten by scripts/pg.sh at every start
# (from $SB_PG_DIR/port and the cluster's current path), so they come last.
include_if_exists = 'switchboard-local.conf'
EOF
}

write_local_conf() {
	pg_write "$DATA/switchboard-local.conf" <<EOF
# Written by scripts/pg.sh at every start: change the port in $PORT_FILE instead.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '${RUN//\'/\'\'}'
unix_socket_permissions = 0700
EOF
}

wait_ready() {
	local deadline=$((SECONDS + WAIT_SECONDS))
	until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "server not accepting connections on 127.0.0.1:$PORT after ${WAIT_SECONDS}s (see $LOG)"
		sleep 0.2
	done
}

# Creates the role and database if missing and (re)applies the password from the file.
ensure_role_db() {
	local out
	out=$(as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres -d postgres 2>&1 <<EOF
SET log_statement = 'none';
SET log_min_error_statement = panic;
DO \$sb\$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_ROLE') THEN
		CREATE ROLE $DB_ROLE LOGIN CREATEDB PASSWORD '$PW';
	ELSE
		ALTER ROLE $DB_ROLE LOGIN PASSWORD '$PW';
	END IF;
END
\$sb\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_ROLE TEMPLATE template0 ENCODING ''UTF8'''
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
EOF
	) || { printf '%s\n' "$out" >&2; die "could not create role/database $DB_ROLE/$DB_NAME"; }
}

take_lock() {
	exec 9>"$SB_PG_DIR/.lock" || die "cannot write $SB_PG_DIR/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 120 9 || die "another pg.sh is working on $SB_PG_DIR"
	fi
}

cmd_start() {
	local fresh=0
	# The socket path (plus "/.s.PGSQL.NNNNN.lock") must fit in sun_path (108 bytes).
	((${#RUN} + 21 <= 107)) || die "$RUN is too long for a unix socket path: set SB_PG_DIR to a shorter path"
	mkdir -p "$SB_PG_DIR"
	take_lock
	resolve_user
	find_pg_bin
	if ! initialized; then
		ensure_dirs
		init_cluster
		fresh=1
	fi
	if running; then
		read_port
		info "already running on 127.0.0.1:$PORT"
		return 0
	fi
	ensure_dirs
	ensure_secret
	read_secret
	if [[ -s $PORT_FILE ]]; then
		read_port
		! port_in_use "$PORT" ||
			die "port $PORT is taken by another process: stop it, or put a free port in $PORT_FILE"
	else
		pick_port
	fi
	write_local_conf
	if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$WAIT_SECONDS" -s start >/dev/null 2>&1; then
		tail -n 20 "$LOG" >&2 2>/dev/null || true
		die "PostgreSQL did not start (log: $LOG)"
	fi
	wait_ready
	ensure_role_db
	((fresh)) && info "initialized a new cluster in $DATA (password in $SECRET_FILE)"
	info "running on 127.0.0.1:$PORT (log: $LOG)"
}

cmd_stop() {
	if ! initialized; then
		info "no cluster in $DATA"
		return 0
	fi
	take_lock
	resolve_user
	find_pg_bin
	if ! running; then
		info "not running"
		return 0
	fi
	as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 -s stop >/dev/null ||
		die "PostgreSQL did not stop (log: $LOG)"
	info "stopped"
}

cmd_status() {
	if ! initialized; then
		info "no cluster in $DATA"
		return 3
	fi
	resolve_user
	find_pg_bin
	if running; then
		read_port
		info "running on 127.0.0.1:$PORT (pid $(head -n 1 "$DATA/postmaster.pid"))"
		return 0
	fi
	info "stopped"
	return 3
}

cmd_url() {
	read_port
	read_secret
	printf 'host=127.0.0.1 port=%s dbname=%s user=%s password=%s gssencmode=disable sslmode=disable\n' \
		"$PORT" "$DB_NAME" "$DB_ROLE" "$PW"
}

cmd_psql() {
	read_port
	read_secret
	find_pg_bin
	# Defaults through the environment, so that the caller's own -d/-U/-h still work.
	PGHOST=127.0.0.1 PGPORT=$PORT PGDATABASE=$DB_NAME PGUSER=$DB_ROLE PGPASSWORD=$PW \
		PGSSLMODE=disable PGGSSENCMODE=disable exec "$PG_BIN/psql" "$@"
}

usage() {
	printf 'usage: %s start|stop|status|url|psql [psql args...]\n' "$0" >&2
	exit 2
}

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
start) (($# == 0)) || usage; cmd_start ;;
stop) (($# == 0)) || usage; cmd_stop ;;
status) (($# == 0)) || usage; cmd_status ;;
url) (($# == 0)) || usage; cmd_url ;;
psql) cmd_psql "$@" ;;
*) usage ;;
esac
