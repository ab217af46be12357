-- When the send job's request left (inflight set): a job that finds the
-- message still inflight after a lost worker asks the provider, once that
-- request can no longer be on its way, whether the message reached it
-- (Twilio's message list) instead of marking it unknown.
ALTER TABLE telephony_sms ADD COLUMN inflight_at timestamptz;

-- The daily cap per sender number ([plugin telephony] sms_daily_cap): SMS
-- each sender (by blind index) took per UTC day.  A send reserves one
-- before its request leaves and gives it back when the provider did not
-- take the message.
CREATE TABLE telephony_sender_day (
    sender_index    text NOT NULL,
    day             date NOT NULL,
    sent            integer NOT NULL,
    PRIMARY KEY (sender_index, day)
);
