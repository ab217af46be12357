#!/usr/bin/env bash
# WhatsApp: Meta's signed webhook (POST /api/v1/whatsapp/webhook).
#
# Starts Switchboard (2 workers) with the customers, media and whatsapp
# plugins against the bench PostgreSQL; messages_per_minute = 0 and [host]
# rate_limit = 0, so no budget bites.  Nothing in the run sends to Graph,
# so graph_api_url is a closed local port.  Then:
#
#   inbound  wrk -t2 -c64 POSTs cycling through BENCH_WEBHOOKS signed
#            deliveries of 5 text messages each (bench/whatsapp-bodies.mjs:
#            the fake's builders, each message its own wamid and timestamp,
#            from BENCH_FROMS numbers in turn); every answer must be 200 and
#            no body may be sent twice.  The webhook answers once the
#            messages are in the durable inbox (whatsapp_inbox); the script
#            then waits until the drain has emptied it (polled every 50 ms)
#            and checks that every message answered was stored (the bodies
#            wrk sent, less at most one a connection still in flight when
#            it stopped counting, and no more than all it sent).
#            "applied" is stored / (the moment the inbox was seen empty -
#            the run's start): created_at of an inbound message is Meta's
#            timestamp, not when the drain wrote it.
#   status   the same with deliveries of 5 statuses each (sent, delivered,
#            read) for outbound messages.  The messages are written by SQL
#            as the send job leaves them (status sent, Graph's wamid, the
#            queued and sent events, biz_opaque "sb:<id>"; text sealed: an
#            inbound message's copied) in the inbound run's conversations:
#            sending tens of thousands through the API and the fake first
#            would take minutes.  A distinct "sent" adds nothing (the send
#            job recorded it; one event per message and status), so the
#            check is on "delivered" and "read" events: one per such status
#            answered (bounded as for inbound).  Applied as for inbound.
#
# Each measured run follows a BENCH_WARMUP warm-up with its own bodies (and
# messages); wrk's timeout is 30 s so that slow answers stay in its latency
# figures.  The load average is printed before and after.
#
#   make bench                   (runs this after bench/telephony.sh)
#   BENCH_DURATION=10s BENCH_WARMUP=5s BENCH_WEBHOOKS=60000 BENCH_FROMS=1000 \
#       bench/whatsapp.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DUR=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-5s}
HOOKS=${BENCH_WEBHOOKS:-60000}
FROMS=${BENCH_FROMS:-1000}
HOOK=/api/v1/whatsapp/webhook
PNID=106540352242922
APP_SECRET=bench-app-secret-0123456789abcdef
PER=5
for so in whatsapp media customers; do
	[[ -f build/plugins/$so.so ]] || { echo "bench: build first (make build)" >&2; exit 1; }
done
for t in wrk node; do
	command -v $t >/dev/null || { echo "bench: $t is not installed (make deps)" >&2; exit 1; }
done

echo "load before: $(uptime)"
bench_init whatsapp
export SB_INDEX_KEY=bench-index-key-0123456789abcdef0123456789abcdef
rm -rf "$OUT/whatsapp-media" "$OUT/whatsapp-spool"
mkdir -p "$OUT/whatsapp-media" "$OUT/whatsapp-spool"
# A port nobody listens on: a send would fail at once, and none is made.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat > "$OUT/whatsapp.conf" <<CONF
[host]
access_log = no
rate_limit = 0

[plugin customers]
enabled = yes
path = $ROOT/build/plugins/customers.so
source_dir = $ROOT/plugins/customers

[plugin media]
enabled = yes
path = $ROOT/build/plugins/media.so
source_dir = $ROOT/plugins/media
dir = $OUT/whatsapp-media

[plugin whatsapp]
enabled = yes
path = $ROOT/build/plugins/whatsapp.so
source_dir = $ROOT/plugins/whatsapp
app_secret = $APP_SECRET
phone_number_id = $PNID
access_token = bench-access-token
graph_api_url = http://127.0.0.1:$closed
messages_per_minute = 0
spool_dir = $OUT/whatsapp-spool
CONF
bench_start whatsapp

# applied_since T0: seconds from T0 to the moment the inbox is seen empty.
applied_since() {
	until_empty whatsapp_inbox
	sql "SELECT extract(epoch FROM clock_timestamp() - '$1'::timestamptz)"
}
inbound_n() { sql "SELECT count(*) FROM whatsapp_messages WHERE direction = 'inbound'"; }
# events_n: the delivered and read events (those a status delivery adds).
events_n() { sql "SELECT count(*) FROM whatsapp_message_events WHERE status IN ('delivered', 'read')"; }
# count RUN PATTERN: "<low> <high>", the matches of PATTERN in the bodies
# of RUN that were answered (bench/whatsapp-bodies.mjs count).
count() { node bench/whatsapp-bodies.mjs count "$OUT/whatsapp-$1.tsv" "$OUT/whatsapp-$1.txt" "$2" 64; }
hook() { bench_wrk "$1" "$2" hook 200 "$HOOK" BENCH_BODIES="$OUT/whatsapp-$1.tsv" \
	BENCH_SIG_HEADER=X-Hub-Signature-256 BENCH_CONTENT_TYPE=application/json; }

# 1. inbound messages
node bench/whatsapp-bodies.mjs inbound "$OUT/whatsapp-inbound-warmup.tsv" "$APP_SECRET" "$PNID" \
	$((HOOKS / 4)) "$FROMS" "w$$" >/dev/null
node bench/whatsapp-bodies.mjs inbound "$OUT/whatsapp-inbound.tsv" "$APP_SECRET" "$PNID" \
	"$HOOKS" "$FROMS" "m$$" >/dev/null
hook inbound-warmup "$WARMUP"
until_empty whatsapp_inbox
in0=$(inbound_n)
in_t0=$(sql "SELECT clock_timestamp()")
hook inbound "$DUR"
in_secs=$(applied_since "$in_t0")
in1=$(inbound_n)
in_resp=$(wrk_responses inbound)
read -r in_low in_high < <(count inbound '"type":"text"')
(((in1 - in0) >= in_low && (in1 - in0) <= in_high)) ||
	{ echo "bench: $in_low..$in_high messages answered but $((in1 - in0)) stored" >&2; exit 1; }

# 2. statuses of outbound messages: enough for every delivery to be new.
# seed FILE N TAG: N outbound messages as the send job leaves them, their
# "<id>\t<wamid>" lines in FILE.
seed() {
	sql "WITH c AS (SELECT id, customer_id, row_number() OVER (ORDER BY id) - 1 AS k,
		count(*) OVER () AS n FROM whatsapp_conversations WHERE status <> 'CLOSED'),
	t AS (SELECT text_sealed FROM whatsapp_messages WHERE direction = 'inbound' LIMIT 1),
	a AS (SELECT id FROM users WHERE username = 'admin'),
	m AS (INSERT INTO whatsapp_messages (conversation_id, customer_id, direction, type, text_sealed,
		wa_message_id, status, sent_by, attempts, sent_at)
		SELECT c.id, c.customer_id, 'outbound', 'text', t.text_sealed,
		'wamid.HBgL' || encode(sha256(('$3:' || g)::bytea), 'base64'), 'sent', a.id, 1, now()
		FROM generate_series(0, $2 - 1) AS g JOIN c ON c.k = g % c.n CROSS JOIN t CROSS JOIN a
		RETURNING id, wa_message_id),
	e AS (INSERT INTO whatsapp_message_events (message_id, status)
		SELECT id, s FROM m CROSS JOIN (VALUES ('queued'), ('sent')) AS v (s))
	SELECT id || chr(9) || wa_message_id FROM m ORDER BY id" > "$1"
	[[ $(wc -l < "$1") == "$2" ]] || { echo "bench: seeding $2 outbound messages failed" >&2; exit 1; }
}
# 3 statuses a message, 5 a delivery.
seed "$OUT/whatsapp-outbound-warmup.txt" $((HOOKS / 4 * PER / 3)) "w$$"
seed "$OUT/whatsapp-outbound.txt" $((HOOKS * PER / 3)) "m$$"
node bench/whatsapp-bodies.mjs status "$OUT/whatsapp-status-warmup.tsv" "$APP_SECRET" "$PNID" \
	"$OUT/whatsapp-outbound-warmup.txt" >/dev/null
nst=$(node bench/whatsapp-bodies.mjs status "$OUT/whatsapp-status.tsv" "$APP_SECRET" "$PNID" \
	"$OUT/whatsapp-outbound.txt")
hook status-warmup "$WARMUP"
until_empty whatsapp_inbox
ev0=$(events_n)
st_t0=$(sql "SELECT clock_timestamp()")
hook status "$DUR"
st_secs=$(applied_since "$st_t0")
ev1=$(events_n)
st_resp=$(wrk_responses status)
# Every delivered and read status answered added its event.
read -r st_low st_high < <(count status '"status":"(delivered|read)"')
(((ev1 - ev0) >= st_low && (ev1 - ev0) <= st_high)) ||
	{ echo "bench: $st_low..$st_high delivered/read statuses answered but $((ev1 - ev0)) events added" >&2; exit 1; }
echo "load after: $(uptime)"

echo "bench/whatsapp.sh: ${BENCH_WORKERS:-2} workers; wrk -t2 -c64 -d$DUR --timeout 30s (each after a $WARMUP warm-up); $PER items a delivery"
printf 'inbound POST %s: %.0f deliveries/s answered = %.0f messages/s (%s), %d answered, %d messages stored, all 200\n' \
	"$HOOK" "$(wrk_rps inbound)" "$(awk -v r="$(wrk_rps inbound)" -v p=$PER 'BEGIN { print r * p }')" \
	"$(wrk_lat inbound)" "$in_resp" "$((in1 - in0))"
awk -v n="$((in1 - in0))" -v s="$in_secs" 'BEGIN { printf "        ... applied by the drain: %d in %.2f s from the run'"'"'s start to the inbox seen empty (%.0f messages/s)\n", n, s, n / s }'
printf 'status  POST %s: %.0f deliveries/s answered = %.0f statuses/s (%s), %d answered of %d bodies, all 200\n' \
	"$HOOK" "$(wrk_rps status)" "$(awk -v r="$(wrk_rps status)" -v p=$PER 'BEGIN { print r * p }')" \
	"$(wrk_lat status)" "$st_resp" "$nst"
awk -v n="$((st_resp * PER))" -v e="$((ev1 - ev0))" -v s="$st_secs" 'BEGIN { printf "        ... applied by the drain: %d statuses answered (%d delivered/read events added, the sent ones no-ops) in %.2f s from the run'"'"'s start to the inbox seen empty (%.0f statuses/s)\n", n, e, s, n / s }'
