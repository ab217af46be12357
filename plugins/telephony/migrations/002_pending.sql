-- Provider status callbacks that arrived before the send job recorded the
-- provider's message id (the provider may call back before its answer to
-- the send is handled).  The job applies and deletes them when it records
-- the id; the rest (not ours) go with the retention "pending_callbacks".
CREATE TABLE telephony_sms_pending (
    id                  bigserial PRIMARY KEY,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    status              text NOT NULL,
    error_code          text,
    error_message       text,
    received_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_message_id, status)
);
CREATE INDEX telephony_sms_pending_received ON telephony_sms_pending (received_at);
