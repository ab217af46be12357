-- SMS of the telephony plugin (plugins/telephony).  Phone numbers and
-- bodies are stored only sealed (api->seal); the numbers have a keyed
-- blind index (api->blind_index, domain "phone") for equality lookups.
CREATE TABLE telephony_sms (
    id                  bigserial PRIMARY KEY,
    direction           text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    to_sealed           text NOT NULL,
    to_index            text NOT NULL,
    from_sealed         text,
    from_index          text,
    body_sealed         text NOT NULL,
    provider            text,
    provider_message_id text,
    sim_card_id         bigint,
    device_id           bigint,
    customer_id         bigint,
    segments            integer NOT NULL CHECK (segments BETWEEN 0 AND 10),
    encoding            text NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
    status              text NOT NULL CHECK (status IN ('queued', 'sending',
                        'sent', 'delivered', 'undelivered', 'failed',
                        'unknown', 'received')),
    error_code          text,
    error_message       text,
    sent_by             bigint,
    -- The send job's request may have left for this provider: a job that
    -- finds it set after a lost worker marks the message unknown and never
    -- sends it again.
    inflight            boolean NOT NULL DEFAULT false,
    schedule_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX telephony_sms_provider_id ON telephony_sms
    (provider, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX telephony_sms_direction ON telephony_sms (direction, id DESC);
CREATE INDEX telephony_sms_customer ON telephony_sms (customer_id, created_at DESC)
    WHERE customer_id IS NOT NULL;
CREATE INDEX telephony_sms_to ON telephony_sms (to_index);
CREATE INDEX telephony_sms_from ON telephony_sms (from_index);
CREATE INDEX telephony_sms_created ON telephony_sms (created_at);

-- Every status a message went through.  `callback` names the provider
-- callback that caused it ("twilio:delivered"): the same callback twice
-- adds nothing the second time.
CREATE TABLE telephony_sms_events (
    id          bigserial PRIMARY KEY,
    sms_id      bigint NOT NULL REFERENCES telephony_sms (id) ON DELETE CASCADE,
    status      text NOT NULL,
    detail      text,
    callback    text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telephony_sms_events_sms ON telephony_sms_events (sms_id, id);
CREATE UNIQUE INDEX telephony_sms_events_callback ON telephony_sms_events
    (sms_id, callback) WHERE callback IS NOT NULL;

-- API.md "Common rules for the channel plugins": AGENT and ADMIN read
-- and send SMS.
UPDATE roles SET permissions = array_append(permissions, 'sms.read')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('sms.read' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'sms.send')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('sms.send' = ANY (permissions));
