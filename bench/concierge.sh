#!/usr/bin/env bash
# Concierge: a donor query read and a message post through the API, beside
# pgbench running the same SQL straight against the same database.
#
# Starts Switchboard (2 workers) with the concierge plugin against the bench
# PostgreSQL, logs in as admin, opens one donor query (public POST
# /api/v1/donor-queries) and accepts it, then:
#
#   read   wrk -t2 -c64 GET /api/v1/donor-queries/{id} with the staff token,
#          against pgbench -c 64 -j 2 running bench/concierge-read.sql (the
#          plugin's query_load() SELECT) and bench/concierge-read-auth.sql
#          (the host's per-request token check, then that SELECT).
#   write  wrk -t2 -c64 POST /api/v1/donor-queries/{id}/messages, against
#          bench/concierge-write.sql (the plugin's statements for a message)
#          and bench/concierge-write-auth.sql (the token check first).
#
# Each wrk run follows a BENCH_WARMUP warm-up and counts non-2xx responses
# in bench/concierge-wrk.lua; any non-2xx response, socket error or failed
# pgbench transaction fails the run.  wrk's timeout is raised to 30 s so
# that slow responses stay in its latency figures (with the default 2 s
# they would be counted as socket timeouts and left out).  pgbench's
# figure is tps without the initial connection time.
#
#   make bench                   (runs this after bench/jobs.sh)
#   BENCH_DURATION=10s BENCH_WARMUP=5s bench/concierge.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DUR=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-5s}
MSG="Thank you, we are looking into it."
[[ -f build/plugins/concierge.so ]] || { echo "bench: build first (make build)" >&2; exit 1; }
for t in wrk pgbench; do
	command -v $t >/dev/null || { echo "bench: $t is not installed (make deps)" >&2; exit 1; }
done
case $DUR in
*m) secs=$((${DUR%m} * 60)) ;;
*s) secs=${DUR%s} ;;
*) secs=$DUR ;;
esac
[[ $secs =~ ^[0-9]+$ ]] || { echo "bench: BENCH_DURATION must be <n>s or <n>m" >&2; exit 1; }

bench_init concierge

cat > "$OUT/concierge.conf" <<CONF
[host]
access_log = no
rate_limit = 0

[plugin concierge]
enabled = yes
path = $ROOT/build/plugins/concierge.so
source_dir = $ROOT/plugins/concierge
CONF
bench_start concierge

# Log in, open a query as a donor, accept it as admin.  Prints the access
# token, the query id and the session id in the token's claims.
read -r token qid jwt_sid < <(python3 - "$port" "$SB_ADMIN_PASSWORD" <<'PY'
import base64, json, sys, urllib.request
port, pw = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json",
                 **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

token = call("POST", "/api/v1/auth/login", {"username": "admin", "password": pw})["access_token"]
r = call("POST", "/api/v1/donor-queries", {"donor": "Bench Donor", "donor_id": "bench-donor-1",
    "test": "CBC", "content": "When will my results be ready?"})
assert r["donor_token"], r
qid = r["query"]["id"]
q = call("PATCH", f"/api/v1/donor-queries/{qid}/accept", token=token)
assert q["status"] == "IN_PROGRESS" and q["assigned_to"], q
claims = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
print(token, qid, claims["sid"])
PY
)
[[ -n ${token:-} && -n ${qid:-} ]] || { echo "bench: setup failed" >&2; exit 1; }

# The pgbench parameters: the admin's user id and the session its token
# carries, read from the database (and checked against the token).
sql() { scripts/pg.sh psql -d "$db" -qtAc "$1"; }
uid=$(sql "SELECT id FROM users WHERE username = 'admin'")
sid=$(sql "SELECT max(id) FROM auth_sessions WHERE user_id = $uid AND revoked_at IS NULL AND expires_at > now()")
[[ $sid == "$jwt_sid" ]] || { echo "bench: session $sid in the database, $jwt_sid in the token" >&2; exit 1; }
[[ $(sql "SELECT assigned_to FROM concierge_queries WHERE id = $qid") == "$uid" ]] ||
	{ echo "bench: query $qid is not assigned to user $uid" >&2; exit 1; }

url=http://127.0.0.1:$port/api/v1/donor-queries/$qid
body=$(python3 -c 'import json,sys; print(json.dumps({"content": sys.argv[1]}))' "$MSG")

# api NAME METHOD PATH: warm-up, then the measured wrk run; prints req/s.
api() {
	local name=$1 method=$2 path=$3 f
	for f in warmup run; do
		local d=$DUR lat=(--latency)
		[[ $f == warmup ]] && { d=$WARMUP; lat=(); }
		BENCH_METHOD=$method BENCH_BODY=$body BENCH_TOKEN=$token \
		    wrk -t2 -c64 -d"$d" --timeout 30s "${lat[@]}" -s bench/concierge-wrk.lua "$url$path" \
		    > "$OUT/concierge-$name-$f.txt"
		if ! grep -qE '^concierge-wrk: responses [1-9][0-9]* non-2xx 0$' "$OUT/concierge-$name-$f.txt" ||
		    grep -qE 'Non-2xx|Socket errors' "$OUT/concierge-$name-$f.txt"; then
			echo "bench: $method $path ($f) had failures:" >&2
			cat "$OUT/concierge-$name-$f.txt" >&2
			exit 1
		fi
	done
	sed -nE 's/^Requests\/sec: *([0-9.]+)/\1/p' "$OUT/concierge-$name-run.txt"
}
lat() { awk '$1=="Latency" && NF>2 {avg=$2; max=$4} /Latency Distribution/{f=1} f && $1=="50%"{p50=$2} f && $1=="99%"{p99=$2} END{print "avg " avg ", p50 " p50 ", p99 " p99 ", max " max}' "$OUT/concierge-$1-run.txt"; }

# pgb NAME: bench/concierge-NAME.sql with the ids set in front; prints tps.
pgb() {
	local name=$1 f=$OUT/concierge-pgbench-$1
	{ printf '\\set id %s\n\\set uid %s\n\\set sid %s\n' "$qid" "$uid" "$sid"; cat "bench/concierge-$name.sql"; } > "$f.sql"
	# The server's session settings (src/db.c), so that nothing differs.
	if ! PGOPTIONS="-c statement_timeout=5000 -c TimeZone=UTC -c DateStyle=ISO" \
	    pgbench -n -M prepared -c 64 -j 2 -T "$secs" -D content="$MSG" -D mtype=CHAT \
	    -D stype=STAFF -f "$f.sql" "$DATABASE_URL" > "$f.txt" 2>&1 ||
	    ! grep -q '^number of failed transactions: 0 ' "$f.txt" || grep -qi 'abort' "$f.txt"; then
		echo "bench: pgbench $name failed:" >&2
		cat "$f.txt" >&2
		exit 1
	fi
	sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$f.txt"
}
pglat() { sed -nE 's/^latency average = (.*)/avg \1/p' "$OUT/concierge-pgbench-$1.txt"; }
nstmt() { grep -v '^--' "bench/concierge-$1.sql" | grep -c ';$'; }

read_rps=$(api read GET "")
read_tps=$(pgb read)
read_auth_tps=$(pgb read-auth)
write_rps=$(api write POST /messages)
write_tps=$(pgb write)
write_auth_tps=$(pgb write-auth)
msgs=$(sql "SELECT count(*) FROM concierge_messages WHERE query_id = $qid AND message_type = 'CHAT'")

st() { local n; n=$(nstmt "$1"); [[ $n == 1 ]] && echo "1 statement" || echo "$n statements"; }
echo "bench/concierge.sh: wrk -t2 -c64 -d$DUR (after a $WARMUP warm-up) against 2 workers;" \
	"pgbench -n -M prepared -c 64 -j 2 -T $secs; query $qid, user $uid, session $sid"
printf 'read  API GET /api/v1/donor-queries/%s: %.0f req/s (%s)\n' "$qid" "$read_rps" "$(lat read)"
printf 'read  pgbench plugin SQL (%s): %.0f tps (%s)\n' "$(st read)" "$read_tps" "$(pglat read)"
printf 'read  pgbench auth + plugin SQL (%s): %.0f tps (%s)\n' "$(st read-auth)" "$read_auth_tps" "$(pglat read-auth)"
awk -v a="$read_rps" -v b="$read_tps" -v c="$read_auth_tps" 'BEGIN {
	printf "read  ratio API / pgbench: %.2f (plugin SQL), %.2f (auth + plugin SQL)\n", a / b, a / c }'
printf 'write API POST /api/v1/donor-queries/%s/messages: %.0f req/s (%s)\n' "$qid" "$write_rps" "$(lat write)"
printf 'write pgbench plugin SQL (%s): %.0f tps (%s)\n' "$(st write)" "$write_tps" "$(pglat write)"
printf 'write pgbench auth + plugin SQL (%s): %.0f tps (%s)\n' "$(st write-auth)" "$write_auth_tps" "$(pglat write-auth)"
awk -v a="$write_rps" -v b="$write_tps" -v c="$write_auth_tps" 'BEGIN {
	printf "write ratio API / pgbench: %.2f (plugin SQL), %.2f (auth + plugin SQL)\n", a / b, a / c }'
echo "($msgs CHAT messages on query $qid at the end)"
