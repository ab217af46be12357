-- Rows the svcx test plugin writes when another plugin calls its service.
CREATE TABLE svcx_rows (
	id	bigserial PRIMARY KEY,
	label	text NOT NULL,
	at	timestamptz NOT NULL DEFAULT now()
);
