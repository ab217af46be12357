-- Voice calls of the telephony plugin (calls.c).  Numbers are stored only
-- sealed (api->seal) with a keyed blind index (domain "phone"); the number
-- or SIP user a call is bridged to and the message it speaks are sealed
-- too.
CREATE TABLE telephony_calls (
    id                  bigserial PRIMARY KEY,
    direction           text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    to_sealed           text NOT NULL,
    to_index            text NOT NULL,
    from_sealed         text,
    from_index          text,
    connect_to_sealed   text,
    message_sealed      text,
    record              boolean NOT NULL DEFAULT false,
    provider            text,
    provider_call_id    text,
    customer_id         bigint,
    status              text NOT NULL CHECK (status IN ('queued', 'initiated',
                        'ringing', 'in-progress', 'completed', 'busy',
                        'no-answer', 'failed', 'canceled')),
    started_at          timestamptz,
    answered_at         timestamptz,
    ended_at            timestamptz,
    duration_s          integer CHECK (duration_s >= 0),
    hangup_cause        text,
    recording_url       text,
    error_code          text,
    error_message       text,
    initiated_by        bigint,
    -- The place job's request may have left for this provider: a job that
    -- finds it set after a lost worker never places the call again.
    inflight            boolean NOT NULL DEFAULT false,
    -- A hangup was asked for before the provider had the call.
    hangup_requested    boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX telephony_calls_provider_id ON telephony_calls
    (provider, provider_call_id) WHERE provider_call_id IS NOT NULL;
CREATE INDEX telephony_calls_customer ON telephony_calls
    (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX telephony_calls_to ON telephony_calls (to_index);
CREATE INDEX telephony_calls_from ON telephony_calls (from_index);
CREATE INDEX telephony_calls_created ON telephony_calls (created_at);

-- Every status a call went through; `callback` names the provider
-- callback that caused it ("twilio:ringing"): a replay adds nothing.
CREATE TABLE telephony_call_events (
    id          bigserial PRIMARY KEY,
    call_id     bigint NOT NULL REFERENCES telephony_calls (id) ON DELETE CASCADE,
    status      text NOT NULL,
    detail      text,
    callback    text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telephony_call_events_call ON telephony_call_events (call_id, id);
CREATE UNIQUE INDEX telephony_call_events_callback ON telephony_call_events
    (call_id, callback) WHERE callback IS NOT NULL;

-- Call status callbacks that came before the place job recorded the
-- provider's call id (Twilio may call back before its answer to the
-- create is handled); applied by the job, purged with the retention
-- "pending_callbacks".
CREATE TABLE telephony_call_pending (
    id                  bigserial PRIMARY KEY,
    provider            text NOT NULL,
    provider_call_id    text NOT NULL,
    status              text NOT NULL,
    fields              jsonb NOT NULL DEFAULT '{}',
    received_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_call_id, status)
);
CREATE INDEX telephony_call_pending_received ON telephony_call_pending (received_at);

-- The calls-per-second pace of each provider account: the next free
-- start slot.  A call takes the slot and its place job runs then.
CREATE TABLE telephony_pace (
    provider    text PRIMARY KEY,
    next_at     timestamptz NOT NULL
);

-- API.md "Common rules for the channel plugins": AGENT and ADMIN read
-- and place calls.
UPDATE roles SET permissions = array_append(permissions, 'voice.read')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('voice.read' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'voice.place')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('voice.place' = ANY (permissions));
