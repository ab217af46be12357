-- The timeline probe's own items: what a channel plugin (SMS, calls)
-- would keep about its exchanges with a customer.
CREATE TABLE timeline_probe_items (
	id		bigserial PRIMARY KEY,
	channel		text NOT NULL CHECK (channel IN ('alpha', 'beta')),
	customer_id	bigint NOT NULL,
	direction	text NOT NULL,
	status		text NOT NULL,
	summary		text NOT NULL,
	at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX timeline_probe_items_customer ON timeline_probe_items
    (customer_id, channel, at DESC, id DESC);
