-- The svcy test plugin's own rows, written beside svcx's in one transaction.
CREATE TABLE svcy_rows (
	id	bigserial PRIMARY KEY,
	label	text NOT NULL,
	at	timestamptz NOT NULL DEFAULT now()
);
