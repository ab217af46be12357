#!/usr/bin/env bash
# Durable-job throughput: jobs per second from enqueue to done.
#
# Starts Switchboard (2 workers) with the jobber test plugin against the
# bench PostgreSQL, enqueues BENCH_JOBS jobber.sink jobs (which finish at
# once) through POST /api/v1/jobber/enqueue-bulk, BENCH_BATCH per request
# and transaction, from BENCH_CLIENTS clients at once, and waits until
# all are done.  Two figures, both from the jobs table's own timestamps:
#
#   flow   jobs / (last finished_at - first created_at): enqueueing and
#          running at the same time, the whole path (enqueue, claim, run,
#          mark done).  The per-job latency (enqueue -> done) comes from
#          GET /api/v1/jobs/stats.
#   drain  the same number enqueued with a delay so that all become due
#          at one moment T: jobs / (last finished_at - T), the rate at
#          which the workers empty a backlog (claim, run, mark done).
#   single one job per HTTP request and transaction, from wrk (-t2 -c32,
#          BENCH_DURATION): jobs done / (last finished_at - first
#          created_at), with the enqueue -> done latency from the table.
#
#   make bench                   (runs this after bench/run.sh)
#   BENCH_JOBS=20000 BENCH_BATCH=500 BENCH_CLIENTS=2 bench/jobs.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
JOBS=${BENCH_JOBS:-20000}
DUR=${BENCH_DURATION:-10s}
BATCH=${BENCH_BATCH:-500}
CLIENTS=${BENCH_CLIENTS:-2}
[[ -f build/tests/plugins/jobber.so ]] || { echo "bench: build first (make build)" >&2; exit 1; }

bench_init jobs

cat > "$OUT/jobs.conf" <<CONF
[host]
access_log = no
rate_limit = 0

[plugin jobber]
path = $ROOT/build/tests/plugins/jobber.so
source_dir = $ROOT/tests/plugins
CONF
bench_start jobs

python3 - "$port" "$JOBS" "$BATCH" "$CLIENTS" "$SB_ADMIN_PASSWORD" <<'PY'
import json, sys, threading, time, urllib.request
port, jobs, batch, clients, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json",
                 **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)

token = call("POST", "/api/v1/auth/login", {"username": "admin", "password": pw})["access_token"]
todo = [batch] * (jobs // batch) + ([jobs % batch] if jobs % batch else [])
lock = threading.Lock()
def client():
    while True:
        with lock:
            if not todo:
                return
            n = todo.pop()
        call("POST", "/api/v1/jobber/enqueue-bulk", {"n": n})
t0 = time.time()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
t_enq = time.time() - t0
while True:
    s = call("GET", "/api/v1/jobs/stats", token=token)
    if s["counts"]["queued"] == 0 and s["counts"]["running"] == 0 and s["counts"]["done"] >= jobs:
        break
    if time.time() - t0 > 300:
        sys.exit("bench: jobs did not finish in 300 s: %s" % s["counts"])
    time.sleep(0.05)
lat = s["node"]["latency_ms"]
print(f"enqueue: {jobs} jobs in {t_enq:.2f} s ({jobs / t_enq:.0f}/s, {clients} clients x {batch} per transaction)")
print(f"latency enqueue->done: avg {lat['avg']:.0f} ms, max {lat['max']} ms")

# Drain: everything due at one moment, well after the enqueue ends.
due = time.time() + t_enq * 2 + 2
todo = [batch] * (jobs // batch) + ([jobs % batch] if jobs % batch else [])
def delayed():
    while True:
        with lock:
            if not todo:
                return
            n = todo.pop()
        call("POST", "/api/v1/jobber/enqueue-bulk",
             {"n": n, "tag": "drain", "delay_ms": max(0, int((due - time.time()) * 1000))})
threads = [threading.Thread(target=delayed) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
if time.time() >= due:
    sys.exit("bench: the delayed enqueue overran its due time")
while True:
    s = call("GET", "/api/v1/jobs/stats", token=token)
    if s["counts"]["queued"] == 0 and s["counts"]["running"] == 0 and s["counts"]["done"] >= 2 * jobs:
        break
    if time.time() - due > 300:
        sys.exit("bench: the backlog did not drain in 300 s: %s" % s["counts"])
    time.sleep(0.05)
PY

span=$(scripts/pg.sh psql -d "$db" -qtAc "SELECT extract(epoch FROM \
	max(finished_at) - min(created_at)) FROM jobs WHERE kind = 'jobber.sink' \
	AND payload->>'tag' IS NULL")
drain=$(scripts/pg.sh psql -d "$db" -qtAc "SELECT extract(epoch FROM \
	max(finished_at) - max(run_at)) FROM jobs WHERE payload->>'tag' = 'drain'")
single=
if command -v wrk >/dev/null; then
	cat > "$OUT/enqueue.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"kind":"jobber.sink","payload":{"tag":"single"}}'
wrk.headers["Content-Type"] = "application/json"
LUA
	wrk -t2 -c32 -d"$DUR" -s "$OUT/enqueue.lua" \
	    "http://127.0.0.1:$port/api/v1/jobber/enqueue" > "$OUT/jobs-single.txt"
	grep -q "Non-2xx" "$OUT/jobs-single.txt" && { cat "$OUT/jobs-single.txt" >&2; exit 1; }
	for _ in $(seq 1 100); do
		left=$(scripts/pg.sh psql -d "$db" -qtAc "SELECT count(*) FROM jobs \
			WHERE status IN ('queued', 'running')")
		[[ $left == 0 ]] && break
		sleep 0.1
	done
	single=$(scripts/pg.sh psql -d "$db" -qtAF ' ' -c "SELECT count(*), \
		extract(epoch FROM max(finished_at) - min(created_at)), \
		avg(extract(epoch FROM finished_at - created_at)) * 1000, \
		max(extract(epoch FROM finished_at - created_at)) * 1000 \
		FROM jobs WHERE payload->>'tag' = 'single' AND status = 'done'")
fi
echo "BENCH_JOBS=$JOBS BENCH_BATCH=$BATCH BENCH_CLIENTS=$CLIENTS bench/jobs.sh (2 workers, jobber.sink)"
awk -v n="$JOBS" -v s="$span" 'BEGIN { printf "flow:  %d jobs enqueued -> done in %.2f s: %.0f jobs/s\n", n, s, n / s }'
awk -v n="$JOBS" -v s="$drain" 'BEGIN { printf "drain: a backlog of %d due jobs done in %.2f s: %.0f jobs/s\n", n, s, n / s }'
[[ -n $single ]] && echo "$single" | awk '{ printf "single: %d jobs, one per request (wrk -t2 -c32), done in %.2f s: %.0f jobs/s (enqueue->done avg %.1f ms, max %.0f ms)\n", $1, $2, $1 / $2, $3, $4 }'
