#!/usr/bin/env bash
# Render the runtime kore.conf from the committed one, to stdout.
#
#   scripts/kore-conf.sh [SOURCE]       (default: kore.conf)
#
# Environment: SB_BIND (127.0.0.1), PORT (8080), SB_WORKERS (keep),
# SB_CHROOT (keep `root`; "" drops root/runas for -n -r runs),
# SB_PIDFILE (kore.pid in the current directory), SB_HOST_SO (keep `load`).
# Everything else is the committed file, line for line.
set -euo pipefail

src=${1:-kore.conf}
[[ -r $src ]] || { echo "kore-conf.sh: cannot read $src" >&2; exit 1; }
port=${PORT:-8080}
bind=${SB_BIND:-127.0.0.1}
if ! [[ $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
	echo "kore-conf.sh: PORT must be a TCP port number, got '$port'" >&2
	exit 1
fi
[[ $bind =~ ^[0-9A-Za-z.:_-]+$ ]] || { echo "kore-conf.sh: bad SB_BIND '$bind'" >&2; exit 1; }
[[ -z ${SB_WORKERS:-} || $SB_WORKERS =~ ^[1-9][0-9]{0,2}$ ]] ||
	{ echo "kore-conf.sh: SB_WORKERS must be a number" >&2; exit 1; }

awk -v bind="$bind" -v port="$port" -v workers="${SB_WORKERS:-}" \
    -v chroot="${SB_CHROOT-__keep__}" -v pidfile="${SB_PIDFILE:-}" \
    -v hostso="${SB_HOST_SO:-}" -v src="$src" '
BEGIN { print "# Rendered by scripts/kore-conf.sh from " src "." }
/^[ \t]*bind[ \t]/ && !bound { sub(/bind[ \t].*/, "bind\t" bind " " port); bound = 1 }
/^workers[ \t]/ && workers != "" { $0 = "workers\t\t\t" workers }
/^load[ \t]/ && hostso != "" { $0 = "load\t\t" hostso }
/^(root|runas)[ \t]/ && chroot == "" { next }
/^root[ \t]/ && chroot != "__keep__" { $0 = "root\t\t" chroot }
/^pidfile[ \t]/ { next }
{ print }
END { if (pidfile != "") print "pidfile\t" pidfile }
' "$src"
