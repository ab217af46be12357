-- Customers: the people the channel plugins (SMS, voice, WhatsApp) talk to,
-- found by phone number.  The phone number and the WhatsApp id (which is a
-- phone number too) are never stored in clear: *_sealed holds
-- api->seal() of the value and *_index api->blind_index() of it, which is
-- what equality lookups and the uniqueness of a number use.
CREATE TABLE customers (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL DEFAULT '',
	phone_sealed	text,
	phone_index	text UNIQUE,
	email		text,
	wa_id_sealed	text,
	wa_id_index	text,
	tags		text[] NOT NULL DEFAULT '{}',
	notes		text NOT NULL DEFAULT '',
	attributes	jsonb NOT NULL DEFAULT '{}'
			CHECK (jsonb_typeof(attributes) = 'object'),
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CHECK ((phone_sealed IS NULL) = (phone_index IS NULL)),
	CHECK ((wa_id_sealed IS NULL) = (wa_id_index IS NULL))
);
CREATE INDEX customers_wa_id ON customers (wa_id_index)
    WHERE wa_id_index IS NOT NULL;
-- ?tag= is an array containment test.
CREATE INDEX customers_tags ON customers USING gin (tags);

-- API.md "Common rules for the channel plugins": AGENT reads customers,
-- ADMIN reads and manages them.
UPDATE roles SET permissions = array_append(permissions, 'customers.read')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('customers.read' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'customers.manage')
    WHERE name = 'ADMIN'
    AND NOT ('customers.manage' = ANY (permissions));
