-- An order the shop cancels after it was confirmed reads 'cancelled'; its
-- item is back in sales.remaining. SQLite cannot change a CHECK in place:
-- the table is made again with the new one.
CREATE TABLE orders_new (
    order_id    TEXT PRIMARY KEY,
    sale        TEXT NOT NULL REFERENCES sales (sale),
    buyer_id    TEXT NOT NULL,
    buyer_slot  INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'rejected', 'cancelled')),
    reason      TEXT,
    seq         INTEGER NOT NULL,
    admitted_at TEXT NOT NULL,
    decided_at  TEXT NOT NULL
);
INSERT INTO orders_new SELECT order_id, sale, buyer_id, buyer_slot, status, reason, seq, admitted_at, decided_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE UNIQUE INDEX orders_buyer_slot ON orders (sale, buyer_id, buyer_slot);
CREATE INDEX orders_sale_status ON orders (sale, status);
