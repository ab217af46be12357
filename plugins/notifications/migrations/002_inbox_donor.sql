-- Inbox entries name the donor whose query they are about in
-- data.donor_id (notifications.c, inbox_data()): the privacy hooks find
-- a donor's entries by it.  Entries written before: filled in from their
-- query while it exists.  Guarded: migrations run in configuration order,
-- and concierge's table may not exist yet on a fresh database (then there
-- are no entries to fill in either).
DO $$
BEGIN
	IF to_regclass('concierge_queries') IS NOT NULL THEN
		UPDATE notifications_inbox i
		    SET data = i.data || jsonb_build_object('donor_id',
			q.donor_id)
		    FROM concierge_queries q
		    WHERE NOT (i.data ? 'donor_id')
		    AND jsonb_typeof(i.data->'query_id') = 'number'
		    AND q.id = (i.data->>'query_id')::bigint;
	END IF;
END
$$;

CREATE INDEX notifications_inbox_donor ON notifications_inbox
    ((data->>'donor_id')) WHERE data ? 'donor_id';
