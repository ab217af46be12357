#!/usr/bin/env bash
# The media plugin's images (issue 15):
#
# (a) Thumbnail time per image: BENCH_IMAGES camera-size JPEGs (4000 x
#     3000, made here with the vips command from blurred colour noise,
#     quality 90, 4-5 MB each) through the plugin's own code
#     (plugins/media/image.c media_image_thumb, linked into
#     bench/media_thumb.c with libvips set up as the workers have it: one
#     thread, no ORC vector code, no cache) against the `vipsthumbnail`
#     command on the same files in the same run, one invocation for all
#     files (so its start-up is shared), once as the workers run libvips
#     (VIPS_CONCURRENCY=1 VIPS_NOVECTOR=1) and once with its defaults.
#     Rounds alternate the three; each prints the mean per image.  The
#     plugin's time covers reading the file, decoding with shrink-on-load,
#     shrinking and encoding (not writing); vipsthumbnail's also writes
#     its output.  Also timed: the upload path's re-encoding of the same
#     files (media_image_store), for scale.
# (b) Uploads per second of ~200 KB JPEGs (1280 x 960, quality 82) with
#     thumbnails: Switchboard with 2 workers and the media plugin,
#     BENCH_CONCURRENCY clients (node, loopback) uploading for
#     BENCH_SECONDS, then the time until every thumbnail is made.
#
#   make build && bench/media.sh
#   BENCH_IMAGES=12 BENCH_ROUNDS=3 BENCH_SECONDS=20 BENCH_CONCURRENCY=4 bench/media.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${BENCH_IMAGES:-12}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-20}
CONC=${BENCH_CONCURRENCY:-4}
command -v vips >/dev/null && command -v vipsthumbnail >/dev/null ||
	{ echo "bench: the vips commands are missing (make deps: libvips-tools)" >&2; exit 1; }
[[ -f build/plugins/media.so ]] || { echo "bench: build first (make build)" >&2; exit 1; }
mkdir -p "$OUT"

# photo W H SEED QUALITY OUT: blurred colour noise, photo-like to a JPEG coder
photo() {
	local w=$1 h=$2 s=$3 q=$4 out=$5 d c
	d=$(mktemp -d)
	for c in 0 1 2; do
		vips gaussnoise "$d/n$c.v" "$w" "$h" --sigma 50 --mean 128 --seed $((s * 3 + c))
		vips gaussblur "$d/n$c.v" "$d/b$c.v" 1.5
	done
	vips bandjoin "$d/b0.v $d/b1.v $d/b2.v" "$d/j.v"
	vips cast "$d/j.v" "$d/u.v" uchar
	vips copy "$d/u.v" "$out[Q=$q]"
	rm -rf "$d"
}

big=$OUT/media-photos
small=$OUT/media-small
mkdir -p "$big" "$small" "$OUT/media-vt"
for i in $(seq 1 "$N"); do
	[[ -f $big/cam$i.jpg ]] || photo 4000 3000 "$i" 90 "$big/cam$i.jpg"
done
for i in $(seq 1 20); do
	[[ -f $small/s$i.jpg ]] || photo 1280 960 $((100 + i)) 82 "$small/s$i.jpg"
done
files=()
for i in $(seq 1 "$N"); do files+=("$big/cam$i.jpg"); done

cc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$OUT/media_thumb" \
	bench/media_thumb.c plugins/media/image.c $(pkg-config --cflags --libs vips)

ms_per() {	# command...: wall milliseconds per file
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo "scale=1; ($t1 - $t0) / 1000000 / $N" | bc
}

echo "(a) thumbnails into 320 x 320 of $N JPEGs of 4000 x 3000 ($(du -ch "${files[@]}" | tail -1 | cut -f1) in all), ms per image"
printf '%-6s %-10s %-22s %-18s %s\n' round plugin "vipsthumbnail 1 thr" "vipsthumbnail" "ratio plugin/1-thr"
for r in $(seq 1 "$ROUNDS"); do
	p=$("$OUT/media_thumb" "${files[@]}" | awk '/^mean/ { print $2 }')
	v1=$(VIPS_CONCURRENCY=1 VIPS_NOVECTOR=1 ms_per vipsthumbnail -s 320 -o "$OUT/media-vt/%s.jpg[Q=80,strip]" "${files[@]}")
	vd=$(ms_per vipsthumbnail -s 320 -o "$OUT/media-vt/%s.jpg[Q=80,strip]" "${files[@]}")
	printf '%-6s %-10s %-22s %-18s %s\n' "$r" "$p" "$v1" "$vd" "$(echo "scale=2; $p / $v1" | bc)"
done
echo "upload path, re-encoding the same files (media_image_store): $("$OUT/media_thumb" -s "${files[@]}" | awk '/^mean/ { print $2 }') ms per image"

echo
echo "(b) uploads of ~200 KB JPEGs with thumbnails, $CONC clients for $SECS s"
bench_init media
store=$OUT/media-store
rm -rf "$store"
mkdir -p "$store"
[[ $(id -u) -eq 0 ]] && chown switchboard:switchboard "$store"
cat > "$OUT/media.conf" <<CONF
[host]
access_log = no
rate_limit = 0

[plugin media]
path = $ROOT/build/plugins/media.so
source_dir = $ROOT/plugins/media
dir = $store
CONF
bench_start media
node bench/media-upload.mjs "$port" "$SB_ADMIN_PASSWORD" "$small" "$SECS" "$CONC"
