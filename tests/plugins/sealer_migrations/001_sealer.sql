-- What the sealer test plugin keeps: values it sealed (api->seal) with
-- their plaintext beside them (a test plugin: it checks what opens) and
-- the blind index of each.
CREATE TABLE sealer_values (
	id		bigserial PRIMARY KEY,
	label		text NOT NULL,
	sealed		text NOT NULL,
	idx		text NOT NULL
);
CREATE INDEX sealer_values_idx ON sealer_values (idx);
