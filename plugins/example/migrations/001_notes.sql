-- The example plugin's one table.
CREATE TABLE example_notes (
	id		bigserial PRIMARY KEY,
	text		text NOT NULL,
	priority	integer NOT NULL DEFAULT 0,
	author_id	bigint,
	created_at	timestamptz NOT NULL DEFAULT now()
);
