-- The webhooks' durable inbox: a verified provider callback (an SMS
-- status callback or an inbound SMS) is written here in one statement
-- and answered; the drain job (telephony.c) applies the rows in batches
-- and deletes them in the same transaction.  `dedupe` is the sid and the
-- status of a status callback, the sid of an inbound SMS: a replay while
-- the first is still here adds nothing (and applying is idempotent after
-- it).  `fields` holds no number or body in clear: those are sealed
-- (api->seal) with their blind index, as in telephony_sms.
CREATE TABLE telephony_inbox (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('status', 'inbound')),
    dedupe      text NOT NULL,
    fields      jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, kind, dedupe)
);
