-- An order the shop cancels after it was confirmed reads 'cancelled'; its
-- item is back in sales.remaining.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('confirmed', 'rejected', 'cancelled'));
