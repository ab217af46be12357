-- Where the probe plugin records the events each worker received.
CREATE TABLE probe_received (
	token	text NOT NULL,
	pid	integer NOT NULL,
	at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX probe_received_token ON probe_received (token);
