-- Stock per sale: the database has the last word on it.
CREATE TABLE sales (
    sale       TEXT PRIMARY KEY,
    stock      INTEGER NOT NULL CHECK (stock >= 0),
    remaining  INTEGER NOT NULL CHECK (remaining >= 0),
    updated_at TEXT NOT NULL
);

-- One row per order the drain decided, confirmed or rejected. The order id
-- is the key, so a redelivered order finds its row and changes nothing.
-- buyer_slot numbers a buyer's confirmed orders in a sale (0 when a sale
-- allows one); NULL for a rejected order. The unique index keeps at most
-- one confirmed order per (sale, buyer, slot).
CREATE TABLE orders (
    order_id    TEXT PRIMARY KEY,
    sale        TEXT NOT NULL REFERENCES sales (sale),
    buyer_id    TEXT NOT NULL,
    buyer_slot  INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'rejected')),
    reason      TEXT,
    seq         INTEGER NOT NULL,
    admitted_at TEXT NOT NULL,
    decided_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_buyer_slot ON orders (sale, buyer_id, buyer_slot);
CREATE INDEX orders_sale_status ON orders (sale, status);
