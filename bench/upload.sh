#!/usr/bin/env bash
# Large uploads: a 100 MB multipart upload, BENCH_UPLOADS times, through
# api->req_parts.  Bodies over [host] body_memory_max (1 MiB by default)
# are streamed by Kore to a file in the workers' body directory and the
# uploader test plugin (tests/plugins/uploader.c) reads its part back with
# pread() in 64 KiB chunks and hashes it, so each upload is received,
# written, parsed and read in full.
#
# Printed per upload: MB/s (body bytes / curl's total time, upload and
# answer) and the growth of the workers' peak resident memory (the sum of
# VmHWM, the high-water mark of VmRSS, over the workers, from /proc,
# against the figure before the first upload): a peak, so memory held
# during a request and freed after it counts.  The goal is growth under 16 MB: nothing of the body is
# held in memory.
#
#   BENCH_UPLOADS=5 BENCH_MB=100 bench/upload.sh
#   BENCH_MEMORY_MAX=268435456 bench/upload.sh   (bodies kept in memory,
#                                                 for comparison)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
UPLOADS=${BENCH_UPLOADS:-5}
SIZE_MB=${BENCH_MB:-100}
[[ -f build/tests/plugins/uploader.so ]] || { echo "bench: build first (make build)" >&2; exit 1; }

bench_init upload

cat > "$OUT/upload.conf" <<CONF
[host]
access_log = no
rate_limit = 0
body_memory_max = ${BENCH_MEMORY_MAX:-1048576}

[plugin uploader]
path = $ROOT/build/tests/plugins/uploader.so
source_dir = $ROOT/tests/plugins
CONF

bench_start upload

file=$OUT/upload.bin
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$file"
want=$(sha256sum "$file" | cut -d' ' -f1)

# The workers are the server's children.
rss() {
	local total=0 w kb
	for w in $(ps --ppid "$pid" -o pid=); do
		kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$w/status" 2>/dev/null || echo 0)
		total=$((total + ${kb:-0}))
	done
	echo "$total"
}

url=http://127.0.0.1:$port/api/v1/uploader/parts
# One small upload first: what a first request allocates is not growth.
curl -fsS -o /dev/null -F "f=@$ROOT/VERSION" "$url"
base=$(rss)
echo "workers' peak RSS (VmHWM) before: $base kB"
worst=0
for i in $(seq 1 "$UPLOADS"); do
	out=$(curl -fsS -w '\n%{time_total} %{size_upload}' -F "f=@$file;type=application/octet-stream" "$url")
	read -r secs bytes <<<"$(tail -n1 <<<"$out")"
	got=$(head -n1 <<<"$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["parts"][0]["sha256"])')
	[[ $got == "$want" ]] || { echo "bench: upload $i read back a different hash" >&2; exit 1; }
	now=$(rss)
	growth=$((now - base))
	((growth > worst)) && worst=$growth
	python3 -c "print(f'upload $i: {$bytes / 1e6 / $secs:.0f} MB/s ({$bytes / 1e6:.0f} MB in {$secs:.2f} s), workers\\' peak RSS growth {$growth} kB')"
done
echo "largest peak RSS growth over $UPLOADS uploads of $SIZE_MB MiB: $worst kB (goal: under 16 MB)"
rm -f "$file"
