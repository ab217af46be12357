-- Cross-node events (src/cluster.c): each worker sends its events, in
-- order and in batches, to sb_events_notify(), which notifies them on the
-- channel sb_events as "<node id>\t<event JSON>".  A notification payload
-- must stay under 8000 bytes: a larger event is kept in event_spool and
-- notified by reference, "<node id>\t@<id>"; listeners read it by id.
-- Spooled events are for listeners that are connected right now, so a
-- few minutes is plenty: each spooling also deletes rows older than five.

CREATE TABLE event_spool (
	id		bigserial PRIMARY KEY,
	payload		text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX event_spool_created_at ON event_spool (created_at);

CREATE FUNCTION sb_events_notify(node text, VARIADIC events text[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
	e	text;
	ref	bigint;
	spooled	boolean := false;
BEGIN
	FOREACH e IN ARRAY events LOOP
		IF octet_length(node) + 1 + octet_length(e) < 7900 THEN
			PERFORM pg_notify('sb_events', node || E'\t' || e);
		ELSE
			INSERT INTO event_spool (payload) VALUES (e)
			    RETURNING id INTO ref;
			PERFORM pg_notify('sb_events', node || E'\t@' || ref);
			spooled := true;
		END IF;
	END LOOP;
	IF spooled THEN
		DELETE FROM event_spool
		    WHERE created_at < now() - interval '5 minutes';
	END IF;
END
$$;
