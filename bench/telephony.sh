#!/usr/bin/env bash
# Telephony SMS through Twilio, against the fake Twilio on this machine.
#
# Starts the fake (tests/fakes/twilio.mjs, as a process: bench/telephony-
# fake.mjs) and Switchboard (2 workers) with the customers and telephony
# plugins against the bench PostgreSQL; sms_per_minute = 0 and [host]
# rate_limit = 0, so no budget bites; public_url is set so that webhook
# signatures are checked over a known URL.  Then:
#
#   accept   wrk -t2 -c64 POST /api/v1/sms as admin (bearer token), a new
#            `to` for every request (bench/post-wrk.lua); every answer
#            must be 202.  The send jobs run behind it on the same workers;
#            the script then waits until none of these is queued.
#   flow     BENCH_SMS messages enqueued through the API from BENCH_CLIENTS
#            clients (bench/telephony-e2e.mjs) while the workers send them;
#            BENCH_SMS / (last leaves `queued` - first created), from the
#            telephony_sms timestamps, once none is queued and the fake has
#            accepted all of them.  Every one must end `sending` (Twilio's
#            "queued").
#   drain    another BENCH_SMS with the same schedule_at T, after the
#            enqueue has ended: BENCH_SMS / (last leaves `queued` - T), the
#            rate at which the workers empty a backlog.
#   inbound  wrk -t2 -c64 POST /api/v1/webhooks/twilio/sms cycling through
#            BENCH_WEBHOOKS signed inbound SMS (bench/telephony-bodies.mjs:
#            each its own MessageSid, from BENCH_FROMS numbers in turn);
#            every answer must be 200 and no body may be sent twice.  The
#            webhook answers from the durable inbox (telephony_inbox); the
#            script then waits until the drain has emptied it and checks
#            that every answered SMS was stored: "applied" is the stored
#            count / (last stored created_at - the run's start).
#   status   the same with a "sent" and a "delivered" status callback for
#            every message the fake accepted so far (no warm-up of its own:
#            the inbound runs came just before); bodies sent again once
#            they run out are counted ("repeated") and are replays, which
#            change nothing.  Applied as for inbound: events added / (last
#            event's time - the run's start), once the inbox is empty.
#
# Each wrk run but status follows a BENCH_WARMUP warm-up (its own numbers
# or webhook bodies); wrk's timeout is 30 s so that slow answers stay in
# its latency figures.  The load average is printed before and after.
#
#   make bench                   (runs this after bench/concierge.sh)
#   BENCH_DURATION=10s BENCH_WARMUP=5s BENCH_SMS=5000 BENCH_CLIENTS=16 \
#       BENCH_WEBHOOKS=60000 BENCH_FROMS=1000 bench/telephony.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DUR=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-5s}
N=${BENCH_SMS:-5000}
CLIENTS=${BENCH_CLIENTS:-16}
HOOKS=${BENCH_WEBHOOKS:-60000}
FROMS=${BENCH_FROMS:-1000}
PUBLIC=https://switchboard.bench.invalid
HOOK=/api/v1/webhooks/twilio/sms
TWILIO_FROM=+15005550006
for so in telephony customers; do
	[[ -f build/plugins/$so.so ]] || { echo "bench: build first (make build)" >&2; exit 1; }
done
for t in wrk node; do
	command -v $t >/dev/null || { echo "bench: $t is not installed (make deps)" >&2; exit 1; }
done
[[ -d node_modules ]] || { echo "bench: run npm ci first" >&2; exit 1; }

echo "load before: $(uptime)"
bench_init telephony
export SB_INDEX_KEY=bench-index-key-0123456789abcdef0123456789abcdef

bench_fake bench/telephony-fake.mjs
read -r tw_url tw_sid tw_token tw_control < <(python3 -c 'import json,sys; f=json.load(sys.stdin);
print(f["url"], f["accountSid"], f["authToken"], f["control"])' < "$fake_json")

cat > "$OUT/telephony.conf" <<CONF
[host]
access_log = no
rate_limit = 0

[plugin customers]
enabled = yes
path = $ROOT/build/plugins/customers.so
source_dir = $ROOT/plugins/customers

[plugin telephony]
enabled = yes
path = $ROOT/build/plugins/telephony.so
source_dir = $ROOT/plugins/telephony
routing = sms:*=twilio
sms_per_minute = 0
public_url = $PUBLIC
twilio_account_sid = $tw_sid
twilio_auth_token = $tw_token
twilio_from = $TWILIO_FROM
twilio_api_url = $tw_url
CONF
bench_start telephony

token=$(curl -fsS "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$SB_ADMIN_PASSWORD\"}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

accepted() { curl -fsS "$tw_control/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])'; }

# The status run re-sends its bodies once they run out (replays, counted).
wrk_repeats_ok=status

# until_sent FIRST LAST ACCEPTED: wait until no message in FIRST..LAST is
# queued and the fake has accepted ACCEPTED messages in all.
until_sent() {
	local t0=$SECONDS
	while (($(sql "SELECT count(*) FROM telephony_sms WHERE id BETWEEN $1 AND $2 AND status = 'queued'") > 0)) ||
	    (($(accepted) < $3)); do
		((SECONDS - t0 < 600)) || { echo "bench: messages $1..$2 still queued after 600 s" >&2; exit 1; }
		sleep 0.05
	done
}
not_sending() { sql "SELECT count(*) FROM telephony_sms WHERE id BETWEEN $1 AND $2 AND status <> 'sending'"; }

# 1. accept
bench_wrk sms-warmup "$WARMUP" sms 202 /api/v1/sms BENCH_TOKEN="$token" BENCH_DIGIT=2
first=$(sql "SELECT coalesce(max(id), 0) + 1 FROM telephony_sms")
bench_wrk sms "$DUR" sms 202 /api/v1/sms BENCH_TOKEN="$token" BENCH_DIGIT=4
read -r last sms_n < <(sql "SELECT max(id), count(*) FROM telephony_sms WHERE id >= $first" | tr '|' ' ')
until_sent 1 "$last" "$(sql "SELECT count(*) FROM telephony_sms")"
sms_flow=$(sql "SELECT extract(epoch FROM max(updated_at) - min(created_at)) FROM telephony_sms WHERE id BETWEEN $first AND $last")
[[ $(not_sending 1 "$last") == 0 ]] || { echo "bench: some accepted messages did not end sending" >&2; exit 1; }

# 2. end to end: flow, then drain
before=$(accepted)
read -r f1 f2 fn fsecs fpast < <(node bench/telephony-e2e.mjs "$port" "$SB_ADMIN_PASSWORD" "$N" "$CLIENTS" 6)
until_sent "$f1" "$f2" $((before + N))
[[ $fn == "$N" && $(not_sending "$f1" "$f2") == 0 ]] || { echo "bench: flow: not all $N ended sending" >&2; exit 1; }
read -r flow_span flow_avg flow_max < <(sql "SELECT extract(epoch FROM max(updated_at) - min(created_at)),
	avg(extract(epoch FROM updated_at - created_at)) * 1000, max(extract(epoch FROM updated_at - created_at)) * 1000
	FROM telephony_sms WHERE id BETWEEN $f1 AND $f2" | tr '|' ' ')
due=$(python3 -c "import datetime,sys; print((datetime.datetime.now(datetime.timezone.utc) +
	datetime.timedelta(seconds=float(sys.argv[1]) * 2 + 2)).isoformat(timespec='milliseconds'))" "$fsecs")
before=$(accepted)
read -r d1 d2 dn dsecs dpast < <(node bench/telephony-e2e.mjs "$port" "$SB_ADMIN_PASSWORD" "$N" "$CLIENTS" 7 "$due")
[[ $(sql "SELECT now() < '$due'::timestamptz") == t ]] || { echo "bench: the delayed enqueue overran its due time" >&2; exit 1; }
until_sent "$d1" "$d2" $((before + N))
[[ $dn == "$N" && $(not_sending "$d1" "$d2") == 0 ]] || { echo "bench: drain: not all $N ended sending" >&2; exit 1; }
drain_span=$(sql "SELECT extract(epoch FROM max(updated_at) - '$due'::timestamptz) FROM telephony_sms WHERE id BETWEEN $d1 AND $d2")

# 3. webhooks: inbound SMS, then status callbacks
node bench/telephony-bodies.mjs inbound "$OUT/telephony-inbound-warmup.tsv" "$PUBLIC$HOOK" "$tw_token" "$tw_sid" \
	"$TWILIO_FROM" $((HOOKS / 4)) "$FROMS" >/dev/null
node bench/telephony-bodies.mjs inbound "$OUT/telephony-inbound.tsv" "$PUBLIC$HOOK" "$tw_token" "$tw_sid" \
	"$TWILIO_FROM" "$HOOKS" "$FROMS" >/dev/null
bench_wrk inbound-warmup "$WARMUP" hook 200 "$HOOK" BENCH_BODIES="$OUT/telephony-inbound-warmup.tsv"
until_empty telephony_inbox
in0=$(sql "SELECT count(*) FROM telephony_sms WHERE direction = 'inbound'")
inmax0=$(sql "SELECT coalesce(max(id), 0) FROM telephony_sms")
in_t0=$(sql "SELECT clock_timestamp()")
bench_wrk inbound "$DUR" hook 200 "$HOOK" BENCH_BODIES="$OUT/telephony-inbound.tsv"
until_empty telephony_inbox
in1=$(sql "SELECT count(*) FROM telephony_sms WHERE direction = 'inbound'")
in_applied=$(sql "SELECT extract(epoch FROM max(created_at) - '$in_t0'::timestamptz) FROM telephony_sms
	WHERE direction = 'inbound' AND id > $inmax0")
in_resp=$(wrk_responses inbound)
# Stored: every answered one, and at most one per connection more (the
# requests in flight when wrk stopped counting).
(((in1 - in0) >= in_resp && (in1 - in0) <= in_resp + 64)) ||
	{ echo "bench: $in_resp inbound answers but $((in1 - in0)) stored" >&2; exit 1; }
ncb=$(node bench/telephony-bodies.mjs status "$OUT/telephony-status.tsv" "$PUBLIC$HOOK" "$tw_token" "$tw_sid" "$tw_control")
ev0=$(sql "SELECT count(*) FROM telephony_sms_events WHERE status IN ('sent', 'delivered')")
evmax0=$(sql "SELECT coalesce(max(id), 0) FROM telephony_sms_events")
st_t0=$(sql "SELECT clock_timestamp()")
bench_wrk status "$DUR" hook 200 "$HOOK" BENCH_BODIES="$OUT/telephony-status.tsv"
until_empty telephony_inbox
ev1=$(sql "SELECT count(*) FROM telephony_sms_events WHERE status IN ('sent', 'delivered')")
st_applied=$(sql "SELECT extract(epoch FROM max(at) - '$st_t0'::timestamptz) FROM telephony_sms_events
	WHERE id > $evmax0 AND status IN ('sent', 'delivered')")
st_resp=$(wrk_responses status)
# Every distinct callback answered was applied: one event each.
st_distinct=$(sed -nE 's/^post-wrk: responses ([0-9]+) unexpected 0 repeated ([0-9]+)$/\1 \2/p' "$OUT/telephony-status.txt" |
	awk '{print $1 - $2}')
(((ev1 - ev0) >= st_distinct && (ev1 - ev0) <= st_distinct + 64)) ||
	{ echo "bench: $st_distinct distinct status callbacks answered but $((ev1 - ev0)) events added" >&2; exit 1; }
st_line=$(grep '^post-wrk: responses' "$OUT/telephony-status.txt")
echo "load after: $(uptime)"

echo "bench/telephony.sh: ${BENCH_WORKERS:-2} workers; wrk -t2 -c64 -d$DUR --timeout 30s (after a $WARMUP warm-up but status)"
printf 'accept  POST /api/v1/sms: %.0f req/s (%s), %d messages, all 202\n' "$(wrk_rps sms)" "$(wrk_lat sms)" "$sms_n"
awk -v n="$sms_n" -v s="$sms_flow" 'BEGIN { printf "        ... and sent to the fake by the workers meanwhile and after: %d in %.2f s from the first created (%.0f/s)\n", n, s, n / s }'
awk -v n="$N" -v s="$flow_span" -v e="$fsecs" -v c="$CLIENTS" -v a="$flow_avg" -v m="$flow_max" -v p="$fpast" 'BEGIN {
	printf "flow    %d enqueued (%d clients, %.2f s) -> all left queued in %.2f s: %.0f sends/s (created -> sending avg %.0f ms, max %.0f ms; %d answers already said sending)\n", n, c, e, s, n / s, a, m, p }'
awk -v n="$N" -v s="$drain_span" 'BEGIN { printf "drain   a backlog of %d due at one moment, all left queued in %.2f s: %.0f sends/s\n", n, s, n / s }'
printf 'inbound POST %s: %.0f req/s answered (%s), %d new inbound SMS stored, all 200\n' "$HOOK" "$(wrk_rps inbound)" "$(wrk_lat inbound)" "$((in1 - in0))"
awk -v n="$((in1 - in0))" -v s="$in_applied" 'BEGIN { printf "        ... applied by the drain: %d in %.2f s from the run'"'"'s start (%.0f/s)\n", n, s, n / s }'
printf 'status  POST %s: %.0f req/s answered (%s), %d distinct callbacks, %d events added; %s\n' "$HOOK" "$(wrk_rps status)" "$(wrk_lat status)" "$ncb" "$((ev1 - ev0))" "$st_line"
awk -v n="$((ev1 - ev0))" -v s="$st_applied" 'BEGIN { printf "        ... applied by the drain: %d in %.2f s from the run'"'"'s start (%.0f/s)\n", n, s, n / s }'
