-- The donor's device for push notifications (an FCM registration token
-- given when the query is opened).  Never returned by the API; the
-- notifications plugin reads it and clears it when FCM says the token is
-- no longer registered.
ALTER TABLE concierge_queries ADD COLUMN donor_fcm_token text
    CHECK (length(donor_fcm_token) BETWEEN 1 AND 4096);
CREATE INDEX concierge_queries_fcm ON concierge_queries (donor_fcm_token)
    WHERE donor_fcm_token IS NOT NULL;
