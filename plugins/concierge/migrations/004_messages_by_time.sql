-- Messages per day in GET /api/v1/concierge/stats read a time window of
-- concierge_messages: an index on created_at keeps that a range scan.
CREATE INDEX concierge_messages_created ON concierge_messages (created_at);
