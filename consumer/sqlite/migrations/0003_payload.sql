-- The shop's payload of an order (item, size, quantity…), as the gate
-- kept it: JSON text of an object, NULL for an order sent without one.
-- The shop reads it with json_extract; sluice never looks inside.
ALTER TABLE orders ADD COLUMN payload TEXT CHECK (payload IS NULL OR json_valid(payload));
